/* test_brk_perms.c — permissions (broker/perms.c) and failed logins
 * (broker/logins.c): RabbitMQ's regular-expression rules (unanchored, ""
 * for nothing, the default exchange as amq.default), its refusal texts,
 * the checks' life with the users (new users have none, deleted users
 * lose theirs), the migration of users.json files written before
 * permissions existed, and the per-address delay of failed logins. */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check_main.h"
#include "broker/brk.h"

static char err[400], why[400];

static brk_user user(const char *name)
{
    brk_user u;
    memset(&u, 0, sizeof u);
    snprintf(u.name, sizeof u.name, "%s", name);
    ck_assert_int_eq(brk_password_hash("pw", u.hash, sizeof u.hash), 0);
    return u;
}

static brk_permission perm(const char *u, const char *conf, const char *wr, const char *rd)
{
    brk_permission p;
    memset(&p, 0, sizeof p);
    snprintf(p.user, sizeof p.user, "%s", u);
    snprintf(p.vhost, sizeof p.vhost, "/");
    snprintf(p.configure, sizeof p.configure, "%s", conf);
    snprintf(p.write, sizeof p.write, "%s", wr);
    snprintf(p.read, sizeof p.read, "%s", rd);
    return p;
}

static int check(const char *u, amqp_perm what, const char *kind, const char *name)
{
    why[0] = '\0';
    return brk_perm_check(u, "/", what, kind, name, why, sizeof why);
}

static void two_users(void)
{
    brk_user u[2] = {user("admin"), user("app")};
    ck_assert_int_eq(brk_users_set(u, 2, NULL), 0);
}

static void teardown(void)
{
    brk_users_free();
    brk_logins_reset();
}

START_TEST(test_configured_users_have_full_access_to_the_default_vhost)
{
    two_users();
    ck_assert_int_eq(check("admin", AMQP_PERM_VHOST, NULL, NULL), 0);
    ck_assert_int_eq(check("app", AMQP_PERM_CONFIGURE, "queue", "anything"), 0);
    ck_assert_int_eq(check("app", AMQP_PERM_WRITE, "exchange", ""), 0);
    ck_assert_int_eq(check("app", AMQP_PERM_READ, "queue", "amq.gen-1"), 0);
    brk_permission p;
    ck_assert_int_eq(brk_perm_get("app", "/", &p), 0);
    ck_assert_str_eq(p.configure, ".*");
    ck_assert_str_eq(p.write, ".*");
    ck_assert_str_eq(p.read, ".*");
    /* Nobody else: no entry, no vhost. */
    ck_assert_int_eq(check("stranger", AMQP_PERM_VHOST, NULL, NULL), -EACCES);
    ck_assert_str_eq(why, "access to vhost '/' refused for user 'stranger'");
    ck_assert_int_eq(brk_perm_check("admin", "other", AMQP_PERM_VHOST, NULL, NULL, why, sizeof why), -EACCES);
    ck_assert_str_eq(why, "access to vhost 'other' refused for user 'admin'");
}
END_TEST

START_TEST(test_expressions_are_unanchored_and_empty_means_nothing)
{
    two_users();
    brk_permission p = perm("app", "^app\\.", "", "order");
    ck_assert_int_eq(brk_perm_set(&p, err, sizeof err), 0);
    ck_assert_int_eq(check("app", AMQP_PERM_CONFIGURE, "queue", "app.q1"), 0);
    ck_assert_int_eq(check("app", AMQP_PERM_CONFIGURE, "queue", "myapp.q1"), -EACCES); /* anchored by ^ */
    ck_assert_str_eq(why, "configure access to queue 'myapp.q1' in vhost '/' refused for user 'app'");
    ck_assert_int_eq(check("app", AMQP_PERM_CONFIGURE, "queue", "appXq"), -EACCES); /* \. is a dot */
    /* No ^ or $: anywhere in the name, as RabbitMQ's re:run. */
    ck_assert_int_eq(check("app", AMQP_PERM_READ, "queue", "orders"), 0);
    ck_assert_int_eq(check("app", AMQP_PERM_READ, "queue", "big.order.q"), 0);
    ck_assert_int_eq(check("app", AMQP_PERM_READ, "queue", "ord"), -EACCES);
    /* "" is "^$": nothing at all, the default exchange included. */
    ck_assert_int_eq(check("app", AMQP_PERM_WRITE, "exchange", "x"), -EACCES);
    ck_assert_str_eq(why, "write access to exchange 'x' in vhost '/' refused for user 'app'");
    ck_assert_int_eq(check("app", AMQP_PERM_WRITE, "exchange", ""), -EACCES);
    ck_assert_str_eq(why, "write access to exchange 'amq.default' in vhost '/' refused for user 'app'");
    /* Some permission on the vhost, even "" everywhere, opens it. */
    p = perm("app", "", "", "");
    ck_assert_int_eq(brk_perm_set(&p, err, sizeof err), 0);
    ck_assert_int_eq(check("app", AMQP_PERM_VHOST, NULL, NULL), 0);
    ck_assert_int_eq(check("app", AMQP_PERM_READ, "queue", "orders"), -EACCES);
}
END_TEST

START_TEST(test_the_default_exchange_is_checked_as_amq_default)
{
    two_users();
    brk_permission p = perm("app", "", "^amq\\.default$", "amq\\.gen-");
    ck_assert_int_eq(brk_perm_set(&p, err, sizeof err), 0);
    ck_assert_int_eq(check("app", AMQP_PERM_WRITE, "exchange", ""), 0);
    ck_assert_int_eq(check("app", AMQP_PERM_WRITE, "exchange", "amq.default"), 0);
    ck_assert_int_eq(check("app", AMQP_PERM_WRITE, "exchange", "amq.direct"), -EACCES);
    /* "" is only the default exchange's: a queue named "" is not renamed. */
    ck_assert_int_eq(check("app", AMQP_PERM_WRITE, "queue", "amq.default"), 0);
    /* Server-named queues are checked under their names. */
    ck_assert_int_eq(check("app", AMQP_PERM_READ, "queue", "amq.gen-0000-1"), 0);
    ck_assert_int_eq(check("app", AMQP_PERM_READ, "queue", "work"), -EACCES);
}
END_TEST

START_TEST(test_set_refuses_unknown_users_vhosts_and_bad_expressions)
{
    two_users();
    brk_permission p = perm("ghost", ".*", ".*", ".*");
    ck_assert_int_eq(brk_perm_set(&p, err, sizeof err), -ENOENT);
    ck_assert_str_eq(err, "no user 'ghost'");
    p = perm("app", ".*", ".*", ".*");
    snprintf(p.vhost, sizeof p.vhost, "staging");
    ck_assert_int_eq(brk_perm_set(&p, err, sizeof err), -EINVAL);
    ck_assert_str_eq(err, "no vhost 'staging'");
    p = perm("app", ".*", "a(b", ".*");
    ck_assert_int_eq(brk_perm_set(&p, err, sizeof err), -EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "write: \"a(b\" is not a regular expression"));
    /* Nothing changed. */
    ck_assert_int_eq(brk_perm_get("app", "/", &p), 0);
    ck_assert_str_eq(p.write, ".*");
    ck_assert_int_eq(brk_perm_delete("app", "/"), 0);
    ck_assert_int_eq(brk_perm_delete("app", "/"), -ENOENT);
    ck_assert_int_eq(brk_perm_get("app", "/", &p), -ENOENT);
    ck_assert_int_eq(check("app", AMQP_PERM_VHOST, NULL, NULL), -EACCES);
}
END_TEST

START_TEST(test_new_users_have_none_and_deleted_users_lose_theirs)
{
    two_users();
    brk_user u = user("late");
    ck_assert_int_eq(brk_user_put(&u), 0);
    ck_assert_int_eq(check("late", AMQP_PERM_VHOST, NULL, NULL), -EACCES); /* RabbitMQ's rule */
    brk_permission p = perm("late", ".*", ".*", ".*");
    ck_assert_int_eq(brk_perm_set(&p, err, sizeof err), 0);
    ck_assert_int_eq(check("late", AMQP_PERM_VHOST, NULL, NULL), 0);
    /* Replacing the user (a new password) keeps them. */
    ck_assert_int_eq(brk_user_put(&u), 0);
    ck_assert_int_eq(check("late", AMQP_PERM_VHOST, NULL, NULL), 0);
    ck_assert_int_eq(brk_user_delete("late"), 0);
    ck_assert_int_eq(brk_perm_get("late", "/", &p), -ENOENT);
    /* A user of that name made again starts with nothing. */
    ck_assert_int_eq(brk_user_put(&u), 0);
    ck_assert_int_eq(check("late", AMQP_PERM_VHOST, NULL, NULL), -EACCES);
}
END_TEST

START_TEST(test_export_and_parse_are_rabbitmq_shaped)
{
    two_users();
    brk_permission p = perm("app", "^app\\.", "", ".*");
    ck_assert_int_eq(brk_perm_set(&p, err, sizeof err), 0);
    json_t *arr = brk_perms_export();
    char *text = json_dumps(arr, JSON_COMPACT);
    ck_assert_str_eq(text,
                     "[{\"user\":\"admin\",\"vhost\":\"/\",\"configure\":\".*\",\"write\":\".*\",\"read\":\".*\"},"
                     "{\"user\":\"app\",\"vhost\":\"/\",\"configure\":\"^app\\\\.\",\"write\":\"\",\"read\":\".*\"}]");
    free(text);
    json_t *doc = json_pack("{s:o}", "permissions", arr);
    brk_permission *out;
    size_t n;
    bool present;
    ck_assert_int_eq(brk_perms_parse(doc, &out, &n, &present, err, sizeof err), 0);
    ck_assert(present);
    ck_assert_uint_eq(n, 2);
    ck_assert_str_eq(out[1].configure, "^app\\.");
    free(out);
    json_decref(doc);
    const char *bad[] = {
        "{\"permissions\": {}}",
        "{\"permissions\": [{\"user\": \"app\", \"vhost\": \"/\", \"configure\": \".*\", \"write\": \".*\"}]}",
        "{\"permissions\": [{\"user\": \"app\", \"vhost\": \"/\", \"configure\": 1, \"write\": \".*\", \"read\": "
        "\"\"}]}",
        "{\"permissions\": [{\"vhost\": \"/\", \"configure\": \"\", \"write\": \"\", \"read\": \"\"}]}",
        "{\"permissions\": [{\"user\": \"a\", \"vhost\": \"/\", \"configure\": \"[\", \"write\": \"\", \"read\": "
        "\"\"}]}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        json_error_t je;
        doc = json_loads(bad[i], 0, &je);
        ck_assert_ptr_nonnull(doc);
        ck_assert_int_eq(brk_perms_parse(doc, &out, &n, &present, err, sizeof err), -EINVAL);
        ck_assert_ptr_null(out);
        json_decref(doc);
    }
    doc = json_object();
    ck_assert_int_eq(brk_perms_parse(doc, &out, &n, &present, err, sizeof err), 0);
    ck_assert(!present);
    json_decref(doc);
}
END_TEST

/* A fresh data directory with users.json holding text (NULL: none). */
static void data_dir(char *dir, size_t len, const char *text)
{
    snprintf(dir, len, "/tmp/plexus-perms-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    if (!text)
        return;
    char path[300];
    snprintf(path, sizeof path, "%s/users.json", dir);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
}

static void remove_dir(const char *dir)
{
    char path[300];
    snprintf(path, sizeof path, "%s/users.json", dir);
    unlink(path);
    rmdir(dir);
}

static char *users_json(void)
{
    char hash[BRK_HASH_MAX];
    ck_assert_int_eq(brk_password_hash("pw", hash, sizeof hash), 0);
    char *s = malloc(1024);
    snprintf(s, 1024, "{\"name\": \"old\", \"password_hash\": \"%s\", \"tags\": \"administrator\"}", hash);
    return s;
}

START_TEST(test_a_users_file_from_before_permissions_gives_full_access)
{
    char *u = users_json(), text[1200], dir[64];
    /* The form Plexus wrote before: a bare array of users. */
    snprintf(text, sizeof text, "[%s]", u);
    data_dir(dir, sizeof dir, text);
    ck_assert_int_eq(brk_users_load(dir, NULL, err, sizeof err), 1);
    ck_assert_int_eq(check("old", AMQP_PERM_CONFIGURE, "queue", "q"), 0);
    ck_assert_int_eq(check("old", AMQP_PERM_WRITE, "exchange", ""), 0);
    /* The next change writes them down, and they load as written. */
    brk_permission p = perm("old", "^mine$", ".*", ".*");
    ck_assert_int_eq(brk_perm_set(&p, err, sizeof err), 0);
    brk_users_free();
    ck_assert_int_eq(brk_users_load(dir, NULL, err, sizeof err), 1);
    ck_assert_int_eq(check("old", AMQP_PERM_CONFIGURE, "queue", "mine"), 0);
    ck_assert_int_eq(check("old", AMQP_PERM_CONFIGURE, "queue", "q"), -EACCES);
    /* Taking them away is kept too: no entry, no access after a restart. */
    ck_assert_int_eq(brk_perm_delete("old", "/"), 0);
    brk_users_free();
    ck_assert_int_eq(brk_users_load(dir, NULL, err, sizeof err), 1);
    ck_assert_int_eq(check("old", AMQP_PERM_VHOST, NULL, NULL), -EACCES);
    remove_dir(dir);
    /* A document without "permissions": the same migration. */
    snprintf(text, sizeof text, "{\"users\": [%s]}", u);
    data_dir(dir, sizeof dir, text);
    ck_assert_int_eq(brk_users_load(dir, NULL, err, sizeof err), 1);
    ck_assert_int_eq(check("old", AMQP_PERM_READ, "queue", "q"), 0);
    remove_dir(dir);
    free(u);
}
END_TEST

START_TEST(test_a_users_file_with_bad_permissions_is_refused)
{
    char *u = users_json(), text[1400], dir[64];
    const char *perms[] = {
        "[{\"user\": \"ghost\", \"vhost\": \"/\", \"configure\": \"\", \"write\": \"\", \"read\": \"\"}]",
        "[{\"user\": \"old\", \"vhost\": \"elsewhere\", \"configure\": \"\", \"write\": \"\", \"read\": \"\"}]",
        "[{\"user\": \"old\", \"vhost\": \"/\", \"configure\": \"(\", \"write\": \"\", \"read\": \"\"}]",
    };
    const char *want[] = {"no user 'ghost'", "no vhost 'elsewhere'", "not a regular expression"};
    for (size_t i = 0; i < 3; i++) {
        snprintf(text, sizeof text, "{\"users\": [%s], \"permissions\": %s}", u, perms[i]);
        data_dir(dir, sizeof dir, text);
        ck_assert_int_eq(brk_users_load(dir, NULL, err, sizeof err), -EINVAL);
        ck_assert_msg(strstr(err, want[i]) && strstr(err, "users.json"), "%s", err);
        remove_dir(dir);
    }
    free(u);
}
END_TEST

static atomic_bool stop_checking; /* read by the checker threads */

static void *checker(void *arg)
{
    (void)arg;
    char w[200];
    long n = 0;
    while (!atomic_load(&stop_checking)) {
        int rc = brk_perm_check("app", "/", AMQP_PERM_READ, "queue", "app.q", w, sizeof w);
        ck_assert(rc == 0 || rc == -EACCES);
        n++;
    }
    return (void *)n;
}

START_TEST(test_checks_from_many_threads_while_entries_change)
{
    two_users();
    pthread_t t[4];
    atomic_store(&stop_checking, false);
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(pthread_create(&t[i], NULL, checker, NULL), 0);
    for (int i = 0; i < 2000; i++) {
        brk_permission p = perm("app", ".*", ".*", i % 2 ? "^app\\." : "^other$");
        ck_assert_int_eq(brk_perm_set(&p, err, sizeof err), 0);
        if (i % 7 == 0)
            brk_perm_delete("app", "/");
    }
    atomic_store(&stop_checking, true);
    for (int i = 0; i < 4; i++) {
        void *n;
        pthread_join(t[i], &n);
        ck_assert_int_gt((long)n, 0);
    }
}
END_TEST

static struct sockaddr_in v4(const char *ip)
{
    struct sockaddr_in a = {.sin_family = AF_INET};
    inet_pton(AF_INET, ip, &a.sin_addr);
    return a;
}

START_TEST(test_failed_logins_double_the_delay_per_address_up_to_a_cap)
{
    struct sockaddr_in a = v4("192.0.2.1"), b = v4("192.0.2.2");
    uint64_t now = sv_now_ms() + 1;
    uint32_t want[] = {100, 200, 400, 800, 1600, 3200, 3200, 3200};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        ck_assert_uint_eq(brk_login_failed((struct sockaddr *)&a, "guest", "test", now + i), want[i]);
    ck_assert_uint_eq(brk_login_delay(NULL, (struct sockaddr *)&a), BRK_LOGIN_DELAY_MAX_MS);
    /* Another address is not slowed by the first one's failures. */
    ck_assert_uint_eq(brk_login_delay(NULL, (struct sockaddr *)&b), 0);
    ck_assert_uint_eq(brk_login_failed((struct sockaddr *)&b, "guest", "test", now), 100);
    /* The port is not part of it: a new connection is the same address. */
    a.sin_port = htons(40000);
    ck_assert_uint_eq(brk_login_failed((struct sockaddr *)&a, "guest", "test", now + 10), 3200);
    /* A user name from the wire with control bytes is logged safely. */
    ck_assert_uint_eq(brk_login_failed((struct sockaddr *)&b, "a\nb\x1b", "test", now + 1), 200);
    /* Quiet long enough, it starts again (b too, quiet as long). */
    ck_assert_uint_eq(brk_login_failed((struct sockaddr *)&a, "guest", "test", now + 10 + BRK_LOGIN_FORGET_MS), 100);
    ck_assert_uint_eq(brk_login_delay(NULL, (struct sockaddr *)&b), 0);
    /* No address at all (a Unix socket): counted too. */
    ck_assert_uint_eq(brk_login_failed(NULL, "x", "test", now), 100);
}
END_TEST

START_TEST(test_the_address_table_is_bounded)
{
    uint64_t now = sv_now_ms() + 1;
    struct sockaddr_in6 a = {.sin6_family = AF_INET6};
    for (uint32_t i = 0; i < BRK_LOGIN_ADDRS + 100; i++) {
        a.sin6_addr.s6_addr[0] = 0x20;
        memcpy(&a.sin6_addr.s6_addr[12], &i, 4);
        ck_assert_uint_eq(brk_login_failed((struct sockaddr *)&a, "u", "test", now + i), 100);
    }
    ck_assert_uint_eq(brk_login_addrs(), BRK_LOGIN_ADDRS);
    /* The quietest went: the first address starts again, the last goes on. */
    uint32_t first = 0, last = BRK_LOGIN_ADDRS + 99;
    memcpy(&a.sin6_addr.s6_addr[12], &last, 4);
    ck_assert_uint_eq(brk_login_failed((struct sockaddr *)&a, "u", "test", now + last + 1), 200);
    memcpy(&a.sin6_addr.s6_addr[12], &first, 4);
    ck_assert_uint_eq(brk_login_failed((struct sockaddr *)&a, "u", "test", now + last + 2), 100);
}
END_TEST

START_TEST(test_wrong_passwords_are_counted_right_ones_are_not)
{
    brk_user u[1] = {user("app")};
    ck_assert_int_eq(brk_users_set(u, 1, "app"), 0);
    struct sockaddr_in a = v4("198.51.100.9");
    char out[64], tags[64];
    ck_assert_int_eq(brk_authenticate(NULL, "PLAIN", "app", "pw", (struct sockaddr *)&a, out, sizeof out), 0);
    ck_assert_uint_eq(brk_login_delay(NULL, (struct sockaddr *)&a), 0);
    ck_assert_int_eq(brk_authenticate(NULL, "PLAIN", "app", "bad", (struct sockaddr *)&a, out, sizeof out), -EACCES);
    ck_assert_uint_eq(brk_login_delay(NULL, (struct sockaddr *)&a), 100);
    ck_assert_int_eq(brk_user_login("app", "bad", (struct sockaddr *)&a, tags, sizeof tags), -EACCES);
    ck_assert_uint_eq(brk_login_delay(NULL, (struct sockaddr *)&a), 200);
    /* The right password still works at once (the delay is the refusal's). */
    ck_assert_int_eq(brk_user_login("app", "pw", (struct sockaddr *)&a, tags, sizeof tags), 0);
    ck_assert_uint_eq(brk_login_delay(NULL, (struct sockaddr *)&a), 200);
    /* ANONYMOUS refused is no password guess. */
    brk_users_set(u, 1, "nobody");
    ck_assert_int_eq(brk_authenticate(NULL, "ANONYMOUS", NULL, NULL, (struct sockaddr *)&a, out, sizeof out), -EACCES);
    ck_assert_uint_eq(brk_login_delay(NULL, (struct sockaddr *)&a), 200);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("broker/perms");
    TCase *tc = tcase_create("perms");
    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_configured_users_have_full_access_to_the_default_vhost);
    tcase_add_test(tc, test_expressions_are_unanchored_and_empty_means_nothing);
    tcase_add_test(tc, test_the_default_exchange_is_checked_as_amq_default);
    tcase_add_test(tc, test_set_refuses_unknown_users_vhosts_and_bad_expressions);
    tcase_add_test(tc, test_new_users_have_none_and_deleted_users_lose_theirs);
    tcase_add_test(tc, test_export_and_parse_are_rabbitmq_shaped);
    tcase_add_test(tc, test_a_users_file_from_before_permissions_gives_full_access);
    tcase_add_test(tc, test_a_users_file_with_bad_permissions_is_refused);
    tcase_add_test(tc, test_checks_from_many_threads_while_entries_change);
    tcase_add_test(tc, test_failed_logins_double_the_delay_per_address_up_to_a_cap);
    tcase_add_test(tc, test_the_address_table_is_bounded);
    tcase_add_test(tc, test_wrong_passwords_are_counted_right_ones_are_not);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    sv_log_set_level(SV_LOG_ERROR); /* each failed login logs a warning: a thousand of them here */
    return run_suite(suite());
}
