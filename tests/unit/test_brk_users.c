/* test_brk_users.c — the users the admin API manages (broker/users.c,
 * broker/users_json.c): logins with tags, adding, replacing and deleting
 * users while logins go on, and users as RabbitMQ's definitions have
 * them (export, strict parse, tags as a string or an array). */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>

#include "check_main.h"
#include "broker/brk.h"

static char err[256];

static struct sockaddr_in v4(const char *ip)
{
    struct sockaddr_in a = {.sin_family = AF_INET};
    inet_pton(AF_INET, ip, &a.sin_addr);
    return a;
}

static brk_user user(const char *name, const char *pass, const char *tags, bool loopback_only)
{
    brk_user u;
    memset(&u, 0, sizeof u);
    snprintf(u.name, sizeof u.name, "%s", name);
    snprintf(u.tags, sizeof u.tags, "%s", tags);
    u.loopback_only = loopback_only;
    ck_assert_int_eq(brk_password_hash(pass, u.hash, sizeof u.hash), 0);
    return u;
}

static void teardown(void) { brk_users_free(); }

static json_t *parse_json(const char *text)
{
    json_error_t je;
    json_t *v = json_loads(text, 0, &je);
    ck_assert_msg(v != NULL, "test JSON: %s", je.text);
    return v;
}

START_TEST(test_login_gives_the_users_tags_and_obeys_loopback_only)
{
    brk_user u[2] = {user("admin", "s3cret", "administrator,management", false),
                     user("guest", "guest", "administrator", true)};
    ck_assert_int_eq(brk_users_set(u, 2, "guest"), 0);
    struct sockaddr_in lo = v4("127.0.0.1"), far = v4("192.0.2.7");
    char tags[BRK_NAME_MAX] = "";
    ck_assert_int_eq(brk_user_login("admin", "s3cret", (struct sockaddr *)&far, tags, sizeof tags), 0);
    ck_assert_str_eq(tags, "administrator,management");
    ck_assert_int_eq(brk_user_login("admin", "wrong", (struct sockaddr *)&lo, tags, sizeof tags), -EACCES);
    ck_assert_int_eq(brk_user_login("guest", "guest", (struct sockaddr *)&lo, tags, sizeof tags), 0);
    ck_assert_int_eq(brk_user_login("guest", "guest", (struct sockaddr *)&far, tags, sizeof tags), -EACCES);
    ck_assert_int_eq(brk_user_login("nobody", "x", (struct sockaddr *)&lo, tags, sizeof tags), -EACCES);
}
END_TEST

/* EXTERNAL: the TLS layer vouches for the name (a verified certificate's
 * CN); the user must exist and loopback_only still holds. */
START_TEST(test_external_logs_in_existing_users_only)
{
    brk_user u[2] = {user("alice", "s3cret", "", false), user("guest", "guest", "administrator", true)};
    ck_assert_int_eq(brk_users_set(u, 2, "guest"), 0);
    struct sockaddr_in lo = v4("127.0.0.1"), far = v4("192.0.2.7");
    char who[BRK_NAME_MAX] = "";
    ck_assert_int_eq(brk_authenticate(NULL, "EXTERNAL", "alice", NULL, (struct sockaddr *)&far, who, sizeof who), 0);
    ck_assert_str_eq(who, "alice");
    ck_assert_int_eq(brk_authenticate(NULL, "EXTERNAL", "mallory", NULL, (struct sockaddr *)&lo, who, sizeof who),
                     -EACCES);
    ck_assert_int_eq(brk_authenticate(NULL, "EXTERNAL", "guest", NULL, (struct sockaddr *)&far, who, sizeof who),
                     -EACCES);
    ck_assert_int_eq(brk_authenticate(NULL, "EXTERNAL", "", NULL, (struct sockaddr *)&lo, who, sizeof who), -EACCES);
    ck_assert_int_eq(brk_authenticate(NULL, "CRAM-MD5", "alice", NULL, (struct sockaddr *)&lo, who, sizeof who),
                     -EACCES);
}
END_TEST

START_TEST(test_tags_have_matches_whole_tags_only)
{
    ck_assert(brk_tags_have("administrator", "administrator"));
    ck_assert(brk_tags_have("management,administrator", "administrator"));
    ck_assert(brk_tags_have("administrator,management", "management"));
    ck_assert(!brk_tags_have("management", "administrator"));
    ck_assert(!brk_tags_have("notadministrator", "administrator"));
    ck_assert(!brk_tags_have("administrators", "administrator"));
    ck_assert(!brk_tags_have("", "administrator"));
}
END_TEST

START_TEST(test_put_adds_or_replaces_and_delete_removes_at_once)
{
    brk_user a = user("a", "one", "", false);
    ck_assert_int_eq(brk_users_set(&a, 1, NULL), 0);
    struct sockaddr_in lo = v4("127.0.0.1");
    char tags[BRK_NAME_MAX];
    brk_user b = user("b", "two", "management", false);
    ck_assert_int_eq(brk_user_put(&b), 0);
    ck_assert_int_eq(brk_user_login("b", "two", (struct sockaddr *)&lo, tags, sizeof tags), 0);
    ck_assert_str_eq(tags, "management");
    brk_user a2 = user("a", "changed", "administrator", false);
    ck_assert_int_eq(brk_user_put(&a2), 0);
    ck_assert_int_eq(brk_user_login("a", "one", (struct sockaddr *)&lo, tags, sizeof tags), -EACCES);
    ck_assert_int_eq(brk_user_login("a", "changed", (struct sockaddr *)&lo, tags, sizeof tags), 0);
    brk_user *list;
    size_t n;
    ck_assert_int_eq(brk_users_get(&list, &n), 0);
    ck_assert_uint_eq(n, 2);
    free(list);
    ck_assert_int_eq(brk_user_delete("a"), 0);
    ck_assert_int_eq(brk_user_delete("a"), -ENOENT);
    ck_assert_int_eq(brk_user_login("a", "changed", (struct sockaddr *)&lo, tags, sizeof tags), -EACCES);
    ck_assert_int_eq(brk_user_login("b", "two", (struct sockaddr *)&lo, tags, sizeof tags), 0);
}
END_TEST

START_TEST(test_put_refuses_beyond_the_user_limit)
{
    brk_users_set(NULL, 0, NULL);
    brk_user u = user("x", "p", "", false);
    for (int i = 0; i < BRK_MAX_USERS; i++) {
        snprintf(u.name, sizeof u.name, "user%d", i);
        ck_assert_int_eq(brk_user_put(&u), 0);
    }
    snprintf(u.name, sizeof u.name, "one-too-many");
    ck_assert_int_eq(brk_user_put(&u), -ENOSPC);
    snprintf(u.name, sizeof u.name, "user7"); /* replacing is fine */
    ck_assert_int_eq(brk_user_put(&u), 0);
}
END_TEST

START_TEST(test_export_is_rabbitmq_shaped_and_sorted)
{
    brk_user u[2] = {user("zoe", "z", "management", false), user("al", "a", "administrator,monitoring", true)};
    ck_assert_int_eq(brk_users_set(u, 2, NULL), 0);
    json_t *out = brk_users_export();
    ck_assert_uint_eq(json_array_size(out), 2);
    json_t *al = json_array_get(out, 0);
    ck_assert_str_eq(json_string_value(json_object_get(al, "name")), "al");
    ck_assert_str_eq(json_string_value(json_object_get(al, "password_hash")), u[1].hash);
    ck_assert_str_eq(json_string_value(json_object_get(al, "hashing_algorithm")), "rabbit_password_hashing_sha256");
    json_t *tags = json_object_get(al, "tags");
    ck_assert_uint_eq(json_array_size(tags), 2);
    ck_assert_str_eq(json_string_value(json_array_get(tags, 1)), "monitoring");
    ck_assert(json_is_true(json_object_get(al, "loopback_only")));

    /* And back: the same users. */
    json_t *doc = json_pack("{s:O}", "users", out);
    brk_user *back;
    size_t n;
    ck_assert_int_eq(brk_users_parse(doc, &back, &n, err, sizeof err), 0);
    ck_assert_uint_eq(n, 2);
    ck_assert_str_eq(back[0].hash, u[1].hash);
    ck_assert_str_eq(back[0].tags, "administrator,monitoring");
    ck_assert(back[0].loopback_only);
    ck_assert(!back[1].loopback_only);
    free(back);
    json_decref(doc);
    json_decref(out);
}
END_TEST

START_TEST(test_from_json_hashes_a_password_and_reads_tag_strings)
{
    json_t *o = parse_json("{\"password\": \"pw\", \"tags\": \"administrator, management\"}");
    brk_user u;
    ck_assert_int_eq(brk_user_from_json(o, "carol", &u, err, sizeof err), 0);
    ck_assert_str_eq(u.name, "carol");
    ck_assert_str_eq(u.tags, "administrator,management");
    ck_assert(brk_password_check("pw", u.hash));
    ck_assert(!u.loopback_only);
    json_decref(o);
    o = parse_json("{\"name\": \"dan\", \"password_hash\": \"\", \"tags\": []}");
    ck_assert_int_eq(brk_user_from_json(o, NULL, &u, err, sizeof err), -EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "password_hash"));
    json_decref(o);
    o = parse_json("{\"password\": \"x\", \"tags\": \"none\"}");
    ck_assert_int_eq(brk_user_from_json(o, "eve", &u, err, sizeof err), 0);
    ck_assert_str_eq(u.tags, "");
    json_decref(o);
}
END_TEST

START_TEST(test_from_json_refuses_what_it_cannot_keep)
{
    static const struct {
        const char *json, *says;
    } cases[] = {
        {"[]", "JSON object"},
        {"{\"tags\": \"\"}", "exactly one"},
        {"{\"password\": \"a\", \"password_hash\": \"b\"}", "exactly one"},
        {"{\"password\": 5}", "password"},
        {"{\"password\": \"\"}", "password"},
        {"{\"password\": \"a\", \"tags\": \"wizard\"}", "wizard"},
        {"{\"password\": \"a\", \"tags\": [1]}", "tags must be strings"},
        {"{\"password\": \"a\", \"tags\": {}}", "tags must be"},
        {"{\"password\": \"a\", \"hashing_algorithm\": \"md5\"}", "hashing_algorithm"},
        {"{\"password\": \"a\", \"loopback_only\": \"yes\"}", "loopback_only"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        json_t *o = parse_json(cases[i].json);
        brk_user u;
        err[0] = '\0';
        ck_assert_msg(brk_user_from_json(o, "f", &u, err, sizeof err) == -EINVAL, "case %zu accepted", i);
        ck_assert_msg(strstr(err, cases[i].says) != NULL, "case %zu: \"%s\" lacks \"%s\"", i, err, cases[i].says);
        json_decref(o);
    }
    json_t *o = parse_json("{\"password\": \"a\"}");
    brk_user u;
    ck_assert_int_eq(brk_user_from_json(o, NULL, &u, err, sizeof err), -EINVAL); /* no name anywhere */
    json_decref(o);
}
END_TEST

START_TEST(test_users_parse_names_the_bad_entry)
{
    json_t *doc = parse_json("{\"users\": [{\"name\": \"ok\", \"password\": \"p\"}, {\"name\": \"bad\"}]}");
    brk_user *out;
    size_t n;
    ck_assert_int_eq(brk_users_parse(doc, &out, &n, err, sizeof err), -EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "users[1]"));
    ck_assert_ptr_null(out);
    json_decref(doc);
    doc = parse_json("{\"users\": 3}");
    ck_assert_int_eq(brk_users_parse(doc, &out, &n, err, sizeof err), -EINVAL);
    json_decref(doc);
    doc = parse_json("{}");
    ck_assert_int_eq(brk_users_parse(doc, &out, &n, err, sizeof err), 0);
    ck_assert_uint_eq(n, 0);
    json_decref(doc);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("broker/users");
    TCase *tc = tcase_create("users");
    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_add_test(tc, test_login_gives_the_users_tags_and_obeys_loopback_only);
    tcase_add_test(tc, test_external_logs_in_existing_users_only);
    tcase_add_test(tc, test_tags_have_matches_whole_tags_only);
    tcase_add_test(tc, test_put_adds_or_replaces_and_delete_removes_at_once);
    tcase_add_test(tc, test_put_refuses_beyond_the_user_limit);
    tcase_add_test(tc, test_export_is_rabbitmq_shaped_and_sorted);
    tcase_add_test(tc, test_from_json_hashes_a_password_and_reads_tag_strings);
    tcase_add_test(tc, test_from_json_refuses_what_it_cannot_keep);
    tcase_add_test(tc, test_users_parse_names_the_bad_entry);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return run_suite(suite()); }
