/* test_brk_config.c — the broker's configuration and users (broker/config.c,
 * broker/users.c): embedded defaults, the libconfig file with its checks and
 * messages, password hashes in RabbitMQ's format, and SASL decisions. */
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "check_main.h"
#include "broker/brk.h"

/* --------------------------------------------------------------- helpers */

static brk_config *C; /* the config under test (large: on the heap) */
static char path[64]; /* the temporary file */
static char err[512];

static void setup(void)
{
    C = malloc(sizeof *C);
    ck_assert_ptr_nonnull(C);
    brk_config_init(C);
    path[0] = '\0';
    err[0] = '\0';
}
static void teardown(void)
{
    if (path[0])
        unlink(path);
    free(C);
    brk_users_free();
}

/* Writes text to a new temporary file, named in path. */
static const char *file(const char *text)
{
    if (path[0])
        unlink(path);
    snprintf(path, sizeof path, "/tmp/plexus-test-XXXXXX");
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    size_t n = strlen(text);
    ck_assert_int_eq(write(fd, text, n), (ssize_t)n);
    close(fd);
    return path;
}

static int load(const char *text)
{
    err[0] = '\0';
    int rc = brk_config_load(C, file(text), err, sizeof err);
    unlink(path); /* gone even if the test fails next; path still names it */
    return rc;
}

/* text must be refused, leave C as it was, and say each of the words
 * (NULL-terminated) in its message, which starts with "path:line: ". */
static void refused_at(const char *text, int line, ...)
{
    brk_config *before = malloc(sizeof *before);
    memcpy(before, C, sizeof *C);
    ck_assert_msg(load(text) == -1, "accepted: %s", text);
    ck_assert_msg(memcmp(before, C, sizeof *C) == 0, "a refused file changed the config: %s", text);
    free(before);
    char where[128];
    snprintf(where, sizeof where, "%s:%d: ", path, line);
    ck_assert_msg(strncmp(err, where, strlen(where)) == 0, "message \"%s\" does not start with \"%s\"", err, where);
    va_list ap;
    va_start(ap, line);
    for (const char *w; (w = va_arg(ap, const char *));)
        ck_assert_msg(strstr(err, w) != NULL, "message \"%s\" does not say \"%s\"", err, w);
    va_end(ap);
}

static const brk_user *user(const char *name)
{
    for (size_t i = 0; i < C->nusers; i++)
        if (!strcmp(C->users[i].name, name))
            return &C->users[i];
    return NULL;
}

/* RabbitMQ's rabbit_password_hashing_sha256, built here with OpenSSL:
 * base64(salt[4] + SHA-256(salt[4] + password)). */
static void rabbit_hash(const unsigned char salt[4], const char *password, char out[BRK_HASH_MAX])
{
    unsigned char raw[4 + 32];
    memcpy(raw, salt, 4);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    ck_assert_ptr_nonnull(ctx);
    unsigned int n = 0;
    ck_assert_int_eq(EVP_DigestInit_ex(ctx, EVP_sha256(), NULL), 1);
    ck_assert_int_eq(EVP_DigestUpdate(ctx, salt, 4), 1);
    ck_assert_int_eq(EVP_DigestUpdate(ctx, password, strlen(password)), 1);
    ck_assert_int_eq(EVP_DigestFinal_ex(ctx, raw + 4, &n), 1);
    EVP_MD_CTX_free(ctx);
    ck_assert_uint_eq(n, 32);
    ck_assert_int_eq(EVP_EncodeBlock((unsigned char *)out, raw, sizeof raw), 48);
}

/* -------------------------------------------------------------- defaults */

START_TEST(test_config_defaults_are_the_documented_ones)
{
    ck_assert_str_eq(C->node_name, "plexus@localhost");
    ck_assert_int_eq(C->schedulers, 0);
    ck_assert_uint_eq(C->mailbox_size, 4096);
    ck_assert_int_eq(C->log_level, SV_LOG_INFO);
    ck_assert_str_eq(C->amqp.listen, "127.0.0.1:5672");
    ck_assert_uint_eq(C->amqp.max_connections, 65536);
    ck_assert_uint_eq(C->amqp.max_links, 1024);
    ck_assert_uint_eq(C->amqp.max_frame_size, 1u << 20);
    ck_assert_uint_eq(C->amqp.max_message_size, 128u << 20);
    ck_assert_uint_eq(C->amqp.idle_timeout_ms, 60000);
    ck_assert_uint_eq(C->amqp.credit_window, 1000);
    ck_assert(C->amqp.anonymous);
    ck_assert(C->amqp.auto_create_queues);
    ck_assert_str_eq(C->anonymous_user, "guest");
    ck_assert_uint_eq(C->routing.queue_mailbox, 0);
    ck_assert_uint_eq(C->routing.queue_max_batch, 256);
    ck_assert_str_eq(C->admin_listen, "127.0.0.1:15672");
    ck_assert_uint_eq(C->admin_max_connections, 64);
    ck_assert_uint_eq(C->admin_max_body, 16u << 20);
    ck_assert_int_eq(C->admin_timeout_s, 30);
    ck_assert_int_eq(C->admin_threads, 2);
    ck_assert_str_eq(C->data_dir, "./var/plexus");
}
END_TEST

START_TEST(test_config_default_user_is_guest_from_loopback_only)
{
    ck_assert_uint_eq(C->nusers, 1);
    const brk_user *g = &C->users[0];
    ck_assert_str_eq(g->name, "guest");
    ck_assert_str_eq(g->tags, "administrator");
    ck_assert(g->loopback_only);
    ck_assert(brk_hash_valid(g->hash));
    ck_assert(brk_password_check("guest", g->hash));
    ck_assert(!brk_password_check("Guest", g->hash));
}
END_TEST

START_TEST(test_config_example_file_is_the_defaults)
{
    brk_config *before = malloc(sizeof *before);
    memcpy(before, C, sizeof *C);
    ck_assert_msg(brk_config_load(C, "conf/plexus.conf", err, sizeof err) == 0, "%s", err);
    /* The file gives guest's password, hashed with a fresh salt: compare
     * the hashes by what they accept, and everything else byte for byte. */
    ck_assert_uint_eq(C->nusers, before->nusers);
    for (size_t i = 0; i < C->nusers; i++) {
        ck_assert(brk_password_check("guest", C->users[i].hash));
        memcpy(C->users[i].hash, before->users[i].hash, sizeof C->users[i].hash);
    }
    ck_assert_msg(memcmp(before, C, sizeof *C) == 0, "conf/plexus.conf differs from the embedded defaults");
    free(before);
}
END_TEST

/* ------------------------------------------------------------ every key */

START_TEST(test_config_every_key_is_applied)
{
    int rc = load("# every setting, none at its default\n"
                  "node = { name = \"plexus@box\"; schedulers = 3; mailbox_size = 128; };\n"
                  "log = { level = \"debug\"; };\n"
                  "amqp = {\n"
                  "  listen = \"[::1]:5673\";\n"
                  "  max_connections = 10;\n"
                  "  max_links = 7;\n"
                  "  max_frame_size = 65536;\n"
                  "  max_message_size = 17179869184L;\n"
                  "  idle_timeout = 0;\n"
                  "  credit_window = 50;\n"
                  "  anonymous = false;\n"
                  "  anonymous_user = \"nobody\";\n"
                  "  auto_create_queues = false;\n"
                  "};\n"
                  "routing = { queue_mailbox = 64; delivery_batch = 4096; };\n"
                  "admin = { listen = \"0.0.0.0:8080\"; max_connections = 5; max_body = 4294967296L;\n"
                  "          timeout = 7; threads = 3; };\n"
                  "storage = { data_dir = \"/var/lib/plexus\"; };\n");
    ck_assert_msg(rc == 0, "%s", err);
    ck_assert_str_eq(C->node_name, "plexus@box");
    ck_assert_int_eq(C->schedulers, 3);
    ck_assert_uint_eq(C->mailbox_size, 128);
    ck_assert_int_eq(C->log_level, SV_LOG_DEBUG);
    ck_assert_str_eq(C->amqp.listen, "[::1]:5673");
    ck_assert_uint_eq(C->amqp.max_connections, 10);
    ck_assert_uint_eq(C->amqp.max_links, 7);
    ck_assert_uint_eq(C->amqp.max_frame_size, 65536);
    ck_assert_uint_eq(C->amqp.max_message_size, UINT64_C(1) << 34);
    ck_assert_uint_eq(C->amqp.idle_timeout_ms, 0);
    ck_assert_uint_eq(C->amqp.credit_window, 50);
    ck_assert(!C->amqp.anonymous);
    ck_assert_str_eq(C->anonymous_user, "nobody");
    ck_assert(!C->amqp.auto_create_queues);
    ck_assert_uint_eq(C->routing.queue_mailbox, 64);
    ck_assert_uint_eq(C->routing.queue_max_batch, 4096);
    ck_assert_str_eq(C->admin_listen, "0.0.0.0:8080");
    ck_assert_uint_eq(C->admin_max_connections, 5);
    ck_assert_uint_eq(C->admin_max_body, UINT64_C(1) << 32);
    ck_assert_int_eq(C->admin_timeout_s, 7);
    ck_assert_int_eq(C->admin_threads, 3);
    ck_assert_str_eq(C->data_dir, "/var/lib/plexus");
    ck_assert_uint_eq(C->nusers, 1); /* no users section: the default guest stays */
}
END_TEST

START_TEST(test_config_file_changes_only_what_it_names)
{
    ck_assert_int_eq(load("amqp = { credit_window = 5; };\n"), 0);
    ck_assert_uint_eq(C->amqp.credit_window, 5);
    ck_assert_str_eq(C->amqp.listen, "127.0.0.1:5672");
    ck_assert_uint_eq(C->mailbox_size, 4096);
    /* A second file goes over the first. */
    ck_assert_int_eq(load("node = { schedulers = 2; };\n"), 0);
    ck_assert_uint_eq(C->amqp.credit_window, 5);
    ck_assert_int_eq(C->schedulers, 2);
    ck_assert_int_eq(load(""), 0); /* an empty file is fine */
    ck_assert_int_eq(C->schedulers, 2);
}
END_TEST

START_TEST(test_config_log_levels)
{
    const char *names[] = {"error", "warning", "info", "debug"};
    for (int i = 0; i < 4; i++) {
        char text[64];
        snprintf(text, sizeof text, "log = { level = \"%s\"; };\n", names[i]);
        ck_assert_msg(load(text) == 0, "%s", err);
        ck_assert_int_eq(C->log_level, (sv_log_level)i);
    }
    refused_at("log = {\n  level = \"verbose\";\n};\n", 2, "log.level", "verbose", NULL);
    refused_at("log = { level = 3; };\n", 1, "log.level", "string", NULL);
}
END_TEST

START_TEST(test_config_range_limits_are_inclusive)
{
    ck_assert_msg(load("node = { schedulers = 256; mailbox_size = 16; };\n"
                       "amqp = { max_frame_size = 4096; max_message_size = 1024; credit_window = 100000; "
                       "idle_timeout = 3600000; max_links = 65535; };\n"
                       "routing = { delivery_batch = 1; queue_mailbox = 0; };\n") == 0,
                  "%s", err);
    ck_assert_int_eq(C->schedulers, 256);
    ck_assert_uint_eq(C->mailbox_size, 16);
    ck_assert_uint_eq(C->amqp.max_frame_size, 4096);
    ck_assert_uint_eq(C->amqp.max_message_size, 1024);
    ck_assert_uint_eq(C->amqp.idle_timeout_ms, 3600000);
    ck_assert_uint_eq(C->routing.queue_max_batch, 1);
}
END_TEST

/* --------------------------------------------------------------- errors */

START_TEST(test_config_out_of_range_names_key_bounds_and_line)
{
    refused_at("node = {\n  schedulers = 257;\n};\n", 2, "node.schedulers", "0", "256", "257", NULL);
    refused_at("node = { schedulers = -1; };\n", 1, "node.schedulers", NULL);
    refused_at("\n\nnode = { mailbox_size = 15; };\n", 3, "node.mailbox_size", "16", NULL);
    refused_at("amqp = { max_frame_size = 4095; };\n", 1, "amqp.max_frame_size", NULL);
    refused_at("amqp = { max_message_size = 17179869185L; };\n", 1, "amqp.max_message_size", NULL);
    refused_at("amqp = { credit_window = 0; };\n", 1, "amqp.credit_window", NULL);
    refused_at("amqp = { idle_timeout = 3600001; };\n", 1, "amqp.idle_timeout", NULL);
    refused_at("amqp = { max_connections = 0; };\n", 1, "amqp.max_connections", NULL);
    refused_at("amqp = { max_links = 65536; };\n", 1, "amqp.max_links", NULL);
    refused_at("routing = { delivery_batch = 4097; };\n", 1, "routing.delivery_batch", NULL);
    refused_at("routing = { queue_mailbox = -1; };\n", 1, "routing.queue_mailbox", NULL);
    refused_at("admin = { max_connections = 0; };\n", 1, "admin.max_connections", NULL);
    refused_at("admin = { max_body = 1023; };\n", 1, "admin.max_body", "1024", NULL);
    refused_at("admin = { timeout = 0; };\n", 1, "admin.timeout", NULL);
    refused_at("admin = { threads = 65; };\n", 1, "admin.threads", "64", NULL);
}
END_TEST

START_TEST(test_config_wrong_types_name_key_and_line)
{
    refused_at("node = {\n  schedulers = \"4\";\n};\n", 2, "node.schedulers", "integer", NULL);
    refused_at("node = { schedulers = 1.5; };\n", 1, "node.schedulers", "integer", NULL);
    refused_at("amqp = {\n\n  anonymous = 1;\n};\n", 3, "amqp.anonymous", "true or false", NULL);
    refused_at("amqp = { auto_create_queues = \"yes\"; };\n", 1, "amqp.auto_create_queues", NULL);
    refused_at("node = { name = 5; };\n", 1, "node.name", "string", NULL);
    refused_at("storage = { data_dir = true; };\n", 1, "storage.data_dir", "string", NULL);
    refused_at("amqp = { listen = 5672; };\n", 1, "amqp.listen", "string", NULL);
}
END_TEST

START_TEST(test_config_bad_addresses_are_refused)
{
    refused_at("amqp = { listen = \"localhost\"; };\n", 1, "amqp.listen", "HOST:PORT", "localhost", NULL);
    refused_at("amqp = { listen = \"::1:5672\"; };\n", 1, "amqp.listen", NULL);
    refused_at("admin = {\n listen = \"127.0.0.1:99999\";\n};\n", 2, "admin.listen", NULL);
}
END_TEST

START_TEST(test_config_strings_must_be_non_empty_and_fit)
{
    refused_at("node = { name = \"\"; };\n", 1, "node.name", NULL);
    refused_at("amqp = { anonymous_user = \"\"; };\n", 1, "amqp.anonymous_user", NULL);
    char text[512], name[BRK_NAME_MAX + 1];
    memset(name, 'n', BRK_NAME_MAX - 1); /* 127 bytes: fits */
    name[BRK_NAME_MAX - 1] = '\0';
    snprintf(text, sizeof text, "node = { name = \"%s\"; };\n", name);
    ck_assert_msg(load(text) == 0, "%s", err);
    ck_assert_str_eq(C->node_name, name);
    strcat(name, "n"); /* 128: does not */
    snprintf(text, sizeof text, "node = { name = \"%s\"; };\n", name);
    refused_at(text, 1, "node.name", "127", NULL);
}
END_TEST

START_TEST(test_config_unknown_sections_and_keys_are_errors)
{
    refused_at("nodes = { name = \"x\"; };\n", 1, "unknown section", "nodes", NULL);
    refused_at("# comment\namqp = {\n  lisen = \"127.0.0.1:5672\";\n};\n", 3, "unknown setting", "amqp.lisen", NULL);
    refused_at("log = { name = \"x\"; };\n", 1, "log.name", NULL); /* a key of another section */
    refused_at("verbose = true;\n", 1, "unknown section", "verbose", NULL);
}
END_TEST

START_TEST(test_config_section_must_be_a_group) { refused_at("node = 5;\n", 1, "node", "group", NULL); }
END_TEST

START_TEST(test_config_syntax_error_names_line)
{
    refused_at("node = {\n  name = \"a\";\n  schedulers = ;\n};\n", 3, NULL);
    ck_assert_str_ne(err + strlen(path) + 4, "");
}
END_TEST

START_TEST(test_config_missing_file_is_an_error)
{
    brk_config *before = malloc(sizeof *before);
    memcpy(before, C, sizeof *C);
    ck_assert_int_eq(brk_config_load(C, "/nonexistent/plexus.conf", err, sizeof err), -1);
    ck_assert_ptr_nonnull(strstr(err, "/nonexistent/plexus.conf"));
    ck_assert_ptr_nonnull(strstr(err, strerror(ENOENT)));
    ck_assert_int_eq(memcmp(before, C, sizeof *C), 0);
    free(before);
}
END_TEST

START_TEST(test_config_bad_file_leaves_config_unchanged)
{
    /* Good settings before the bad one are not applied either. */
    refused_at("node = { name = \"changed\"; schedulers = 9; };\n"
               "amqp = { credit_window = 7; };\n"
               "users = ( { name = \"alice\"; password = \"pw\"; } );\n"
               "routing = { delivery_batch = 0; };\n",
               4, "routing.delivery_batch", NULL);
    ck_assert_str_eq(C->node_name, "plexus@localhost");
    ck_assert_uint_eq(C->nusers, 1);
    ck_assert_str_eq(C->users[0].name, "guest");
}
END_TEST

/* ----------------------------------------------------------------- users */

START_TEST(test_config_users_replace_the_default_guest)
{
    char hash[BRK_HASH_MAX];
    const unsigned char salt[4] = {1, 2, 3, 4};
    rabbit_hash(salt, "bob's password", hash);
    char text[1024];
    snprintf(text, sizeof text,
             "users = (\n"
             "  { name = \"alice\"; password = \"wonderland\"; tags = \"administrator\"; },\n"
             "  { name = \"bob\"; password_hash = \"%s\"; loopback_only = true; }\n"
             ");\n",
             hash);
    ck_assert_msg(load(text) == 0, "%s", err);
    ck_assert_uint_eq(C->nusers, 2);
    ck_assert_ptr_null(user("guest"));
    const brk_user *a = user("alice"), *b = user("bob");
    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_nonnull(b);
    ck_assert_str_eq(a->tags, "administrator");
    ck_assert(!a->loopback_only); /* the default for listed users */
    ck_assert(brk_hash_valid(a->hash));
    ck_assert(brk_password_check("wonderland", a->hash));
    ck_assert_ptr_null(strstr(a->hash, "wonderland")); /* never the password itself */
    ck_assert_str_eq(b->hash, hash);                   /* a given hash is kept as is */
    ck_assert_str_eq(b->tags, "");
    ck_assert(b->loopback_only);
    ck_assert(brk_password_check("bob's password", b->hash));
}
END_TEST

START_TEST(test_config_empty_users_list_leaves_no_users)
{
    ck_assert_msg(load("users = ();\n") == 0, "%s", err);
    ck_assert_uint_eq(C->nusers, 0);
}
END_TEST

START_TEST(test_config_user_needs_exactly_one_of_password_and_hash)
{
    char hash[BRK_HASH_MAX], text[512];
    const unsigned char salt[4] = {9, 9, 9, 9};
    rabbit_hash(salt, "x", hash);
    snprintf(text, sizeof text, "users = (\n  { name = \"carol\"; password = \"x\"; password_hash = \"%s\"; }\n);\n",
             hash);
    refused_at(text, 2, "carol", "exactly one of password or password_hash", NULL);
    refused_at("users = (\n  { name = \"dave\"; tags = \"\"; }\n);\n", 2, "dave", "exactly one", NULL);
}
END_TEST

START_TEST(test_config_user_errors_name_the_problem)
{
    refused_at("users = ( { name = \"a\"; password = \"1\"; },\n"
               "          { name = \"a\"; password = \"2\"; } );\n",
               2, "'a'", "twice", NULL);
    refused_at("users = ( { name = \"e\"; password_hash = \"not-a-hash\"; } );\n", 1, "'e'", "password_hash", NULL);
    refused_at("users = ( { name = \"f\"; password = \"x\"; loopback_only = \"yes\"; } );\n", 1, "loopback_only", NULL);
    refused_at("users = ( { name = \"g\"; passwd = \"x\"; } );\n", 1, "users.passwd", NULL);
    refused_at("users = ( { password = \"x\"; } );\n", 1, "name", NULL);
    refused_at("users = ( { name = \"\"; password = \"x\"; } );\n", 1, "name", NULL);
    refused_at("users = ( { name = \"h\"; password = 5; } );\n", 1, "password", "string", NULL);
    refused_at("users = ( \"i\" );\n", 1, "group", NULL);
    refused_at("users = { name = \"j\"; password = \"x\"; };\n", 1, "list", NULL);
}
END_TEST

START_TEST(test_config_user_name_and_tags_must_fit)
{
    char text[1024], name[BRK_NAME_MAX + 1];
    memset(name, 'u', BRK_NAME_MAX);
    name[BRK_NAME_MAX] = '\0'; /* 128 bytes: one too many */
    snprintf(text, sizeof text, "users = ( { name = \"%s\"; password = \"x\"; } );\n", name);
    refused_at(text, 1, "name", NULL);
    snprintf(text, sizeof text, "users = ( { name = \"k\"; password = \"x\"; tags = \"%s\"; } );\n", name);
    refused_at(text, 1, "tags", NULL);
}
END_TEST

/* ------------------------------------------------------------- passwords */

START_TEST(test_password_hash_is_salted_and_checks)
{
    char h1[BRK_HASH_MAX], h2[BRK_HASH_MAX];
    ck_assert_int_eq(brk_password_hash("secret", h1, sizeof h1), 0);
    ck_assert_int_eq(brk_password_hash("secret", h2, sizeof h2), 0);
    ck_assert_uint_eq(strlen(h1), 48);
    ck_assert(brk_hash_valid(h1));
    ck_assert_str_ne(h1, h2); /* a new salt each time */
    ck_assert(brk_password_check("secret", h1));
    ck_assert(brk_password_check("secret", h2));
    ck_assert(!brk_password_check("Secret", h1));
    ck_assert(!brk_password_check("secret ", h1));
    ck_assert(!brk_password_check("", h1));
    ck_assert_int_eq(brk_password_hash("secret", h1, BRK_HASH_MAX - 1), -EINVAL); /* buffer too small */
}
END_TEST

START_TEST(test_password_empty_and_long_passwords_hash_too)
{
    char h[BRK_HASH_MAX];
    ck_assert_int_eq(brk_password_hash("", h, sizeof h), 0);
    ck_assert(brk_password_check("", h));
    ck_assert(!brk_password_check("x", h));
    char big[4096];
    memset(big, 'p', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    ck_assert_int_eq(brk_password_hash(big, h, sizeof h), 0);
    ck_assert(brk_password_check(big, h));
    big[100] = 'q';
    ck_assert(!brk_password_check(big, h));
}
END_TEST

START_TEST(test_password_check_accepts_rabbitmq_format_hashes)
{
    /* A hash as RabbitMQ exports it, built independently of users.c. */
    const unsigned char salt[4] = {0xde, 0xad, 0xbe, 0xef};
    char hash[BRK_HASH_MAX];
    rabbit_hash(salt, "s3cr3t-p\xc3\xa4ss", hash);
    ck_assert(brk_hash_valid(hash));
    ck_assert(brk_password_check("s3cr3t-p\xc3\xa4ss", hash));
    ck_assert(!brk_password_check("s3cr3t-pass", hash));
    ck_assert(!brk_password_check("", hash));
    /* The salt is part of it: the same digest under another salt fails. */
    unsigned char raw[40];
    ck_assert_int_eq(EVP_DecodeBlock(raw, (const unsigned char *)hash, 48), 36);
    ck_assert_int_eq(memcmp(raw, salt, 4), 0);
    raw[3] ^= 1;
    char other[BRK_HASH_MAX];
    ck_assert_int_eq(EVP_EncodeBlock((unsigned char *)other, raw, 36), 48);
    ck_assert(brk_hash_valid(other));
    ck_assert(!brk_password_check("s3cr3t-p\xc3\xa4ss", other));
}
END_TEST

START_TEST(test_password_hash_made_here_matches_the_rabbitmq_formula)
{
    /* Ours, checked the other way round: decode, recompute with the salt. */
    char h[BRK_HASH_MAX], again[BRK_HASH_MAX];
    ck_assert_int_eq(brk_password_hash("guest", h, sizeof h), 0);
    unsigned char raw[40];
    ck_assert_int_eq(EVP_DecodeBlock(raw, (const unsigned char *)h, 48), 36);
    rabbit_hash(raw, "guest", again);
    ck_assert_str_eq(again, h);
}
END_TEST

START_TEST(test_hash_valid_needs_base64_of_36_bytes)
{
    const unsigned char salt[4] = {0, 0, 0, 0};
    char good[BRK_HASH_MAX];
    rabbit_hash(salt, "x", good);
    ck_assert(brk_hash_valid(good));

    ck_assert(!brk_hash_valid(""));
    ck_assert(!brk_hash_valid("abc"));
    char s[BRK_HASH_MAX + 8];
    snprintf(s, sizeof s, "%.47s", good); /* 47 characters */
    ck_assert(!brk_hash_valid(s));
    snprintf(s, sizeof s, "%sA", good); /* 49 */
    ck_assert(!brk_hash_valid(s));
    snprintf(s, sizeof s, "%s", good);
    s[10] = '*'; /* not base64 */
    ck_assert(!brk_hash_valid(s));
    /* base64 of 32 bytes (a bare SHA-256, no salt): 44 characters. */
    unsigned char raw[34] = {0};
    char b64[64];
    EVP_EncodeBlock((unsigned char *)b64, raw, 32);
    ck_assert(!brk_hash_valid(b64));
    ck_assert(!brk_password_check("x", b64));
}
END_TEST

START_TEST(test_hash_valid_refuses_48_characters_of_padded_shorter_data)
{
    /* base64 of 34 bytes is 48 characters ending "==": not 36 bytes. */
    unsigned char raw[34];
    memset(raw, 0x41, sizeof raw);
    char b64[64];
    ck_assert_int_eq(EVP_EncodeBlock((unsigned char *)b64, raw, sizeof raw), 48);
    ck_assert_str_eq(b64 + 46, "==");
    ck_assert_msg(!brk_hash_valid(b64), "\"%s\" (34 bytes) taken for a 36-byte hash", b64);
}
END_TEST

/* ------------------------------------------------------------------ login */

static struct sockaddr_in v4(const char *ip)
{
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons(40000);
    ck_assert_int_eq(inet_pton(AF_INET, ip, &a.sin_addr), 1);
    return a;
}
static struct sockaddr_in6 v6(const char *ip)
{
    struct sockaddr_in6 a;
    memset(&a, 0, sizeof a);
    a.sin6_family = AF_INET6;
    a.sin6_port = htons(40000);
    ck_assert_int_eq(inet_pton(AF_INET6, ip, &a.sin6_addr), 1);
    return a;
}

/* Users: alice/wonderland from anywhere; guest/guest from loopback only;
 * anon (no usable password) as the anonymous user. */
static void users_setup(const char *anonymous_user)
{
    brk_user u[3];
    memset(u, 0, sizeof u);
    snprintf(u[0].name, sizeof u[0].name, "alice");
    ck_assert_int_eq(brk_password_hash("wonderland", u[0].hash, sizeof u[0].hash), 0);
    snprintf(u[1].name, sizeof u[1].name, "guest");
    ck_assert_int_eq(brk_password_hash("guest", u[1].hash, sizeof u[1].hash), 0);
    u[1].loopback_only = true;
    snprintf(u[2].name, sizeof u[2].name, "anon");
    ck_assert_int_eq(brk_password_hash("unguessable", u[2].hash, sizeof u[2].hash), 0);
    ck_assert_int_eq(brk_users_set(u, 3, anonymous_user), 0);
    memset(u, 0, sizeof u); /* brk_users_set keeps its own copy */
}

static int login(const char *mech, const char *user, const char *pass, const void *peer, char *out)
{
    strcpy(out, "untouched");
    return brk_authenticate(NULL, mech, user, pass, (const struct sockaddr *)peer, out, BRK_NAME_MAX);
}

START_TEST(test_auth_plain_right_password_logs_in)
{
    users_setup("anon");
    struct sockaddr_in far = v4("10.0.0.1");
    char who[BRK_NAME_MAX];
    ck_assert_int_eq(login("PLAIN", "alice", "wonderland", &far, who), 0);
    ck_assert_str_eq(who, "alice");
}
END_TEST

START_TEST(test_auth_plain_wrong_password_or_unknown_user_is_eacces)
{
    users_setup("anon");
    struct sockaddr_in lo = v4("127.0.0.1");
    char who[BRK_NAME_MAX];
    ck_assert_int_eq(login("PLAIN", "alice", "Wonderland", &lo, who), -EACCES);
    ck_assert_int_eq(login("PLAIN", "alice", "", &lo, who), -EACCES);
    ck_assert_int_eq(login("PLAIN", "alice", NULL, &lo, who), -EACCES);
    ck_assert_int_eq(login("PLAIN", "mallory", "wonderland", &lo, who), -EACCES);
    ck_assert_int_eq(login("PLAIN", "", "", &lo, who), -EACCES);
    ck_assert_int_eq(login("PLAIN", NULL, "wonderland", &lo, who), -EACCES);
    ck_assert_int_eq(login("PLAIN", "ALICE", "wonderland", &lo, who), -EACCES); /* names are exact */
    ck_assert_str_eq(who, "untouched");
}
END_TEST

START_TEST(test_auth_loopback_only_user_is_refused_from_afar)
{
    users_setup("anon");
    struct sockaddr_in far = v4("10.0.0.1");
    struct sockaddr_in6 far6 = v6("2001:db8::1"), mapped_far = v6("::ffff:10.0.0.1");
    char who[BRK_NAME_MAX];
    ck_assert_int_eq(login("PLAIN", "guest", "guest", &far, who), -EACCES);
    ck_assert_int_eq(login("PLAIN", "guest", "guest", &far6, who), -EACCES);
    ck_assert_int_eq(login("PLAIN", "guest", "guest", &mapped_far, who), -EACCES);
    ck_assert_int_eq(login("PLAIN", "guest", "guest", NULL, who), -EACCES); /* unknown peer */
    ck_assert_str_eq(who, "untouched");
}
END_TEST

START_TEST(test_auth_loopback_only_user_is_accepted_from_loopback)
{
    users_setup("anon");
    struct sockaddr_in lo = v4("127.0.0.1"), lo2 = v4("127.1.2.3");
    struct sockaddr_in6 lo6 = v6("::1"), mapped = v6("::ffff:127.0.0.1");
    const void *peers[] = {&lo, &lo2, &lo6, &mapped};
    for (int i = 0; i < 4; i++) {
        char who[BRK_NAME_MAX];
        ck_assert_msg(login("PLAIN", "guest", "guest", peers[i], who) == 0, "peer %d refused", i);
        ck_assert_str_eq(who, "guest");
    }
    /* Loopback is no excuse for a wrong password. */
    char who[BRK_NAME_MAX];
    ck_assert_int_eq(login("PLAIN", "guest", "nope", &lo, who), -EACCES);
}
END_TEST

START_TEST(test_auth_anonymous_logs_in_as_the_anonymous_user)
{
    users_setup("anon");
    struct sockaddr_in far = v4("10.0.0.1");
    char who[BRK_NAME_MAX];
    ck_assert_int_eq(login("ANONYMOUS", NULL, NULL, &far, who), 0);
    ck_assert_str_eq(who, "anon");
}
END_TEST

START_TEST(test_auth_anonymous_obeys_loopback_only_of_its_user)
{
    users_setup("guest");
    struct sockaddr_in far = v4("10.0.0.1"), lo = v4("127.0.0.1");
    char who[BRK_NAME_MAX];
    ck_assert_int_eq(login("ANONYMOUS", NULL, NULL, &far, who), -EACCES);
    ck_assert_int_eq(login("ANONYMOUS", NULL, NULL, &lo, who), 0);
    ck_assert_str_eq(who, "guest");
}
END_TEST

START_TEST(test_auth_anonymous_without_a_known_user_is_eacces)
{
    struct sockaddr_in lo = v4("127.0.0.1");
    char who[BRK_NAME_MAX];
    users_setup("");
    ck_assert_int_eq(login("ANONYMOUS", NULL, NULL, &lo, who), -EACCES);
    users_setup(NULL);
    ck_assert_int_eq(login("ANONYMOUS", NULL, NULL, &lo, who), -EACCES);
    users_setup("ghost"); /* names no user */
    ck_assert_int_eq(login("ANONYMOUS", NULL, NULL, &lo, who), -EACCES);
}
END_TEST

START_TEST(test_auth_new_user_list_replaces_the_old)
{
    users_setup("anon");
    struct sockaddr_in lo = v4("127.0.0.1");
    char who[BRK_NAME_MAX];
    brk_user only;
    memset(&only, 0, sizeof only);
    snprintf(only.name, sizeof only.name, "zed");
    ck_assert_int_eq(brk_password_hash("z", only.hash, sizeof only.hash), 0);
    ck_assert_int_eq(brk_users_set(&only, 1, "zed"), 0);
    ck_assert_int_eq(login("PLAIN", "alice", "wonderland", &lo, who), -EACCES);
    ck_assert_int_eq(login("PLAIN", "zed", "z", &lo, who), 0);
    brk_users_free();
    ck_assert_int_eq(login("PLAIN", "zed", "z", &lo, who), -EACCES); /* nobody left */
}
END_TEST

START_TEST(test_auth_user_out_is_truncated_to_its_length)
{
    users_setup("anon");
    struct sockaddr_in lo = v4("127.0.0.1");
    char out[4];
    memset(out, 'Z', sizeof out);
    ck_assert_int_eq(brk_authenticate(NULL, "PLAIN", "alice", "wonderland", (struct sockaddr *)&lo, out, sizeof out),
                     0);
    ck_assert_str_eq(out, "ali");
}
END_TEST

static Suite *config_suite(void)
{
    Suite *s = suite_create("broker/config");
    TCase *tc = tcase_create("config");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, test_config_defaults_are_the_documented_ones);
    tcase_add_test(tc, test_config_default_user_is_guest_from_loopback_only);
    tcase_add_test(tc, test_config_example_file_is_the_defaults);
    tcase_add_test(tc, test_config_every_key_is_applied);
    tcase_add_test(tc, test_config_file_changes_only_what_it_names);
    tcase_add_test(tc, test_config_log_levels);
    tcase_add_test(tc, test_config_range_limits_are_inclusive);
    tcase_add_test(tc, test_config_out_of_range_names_key_bounds_and_line);
    tcase_add_test(tc, test_config_wrong_types_name_key_and_line);
    tcase_add_test(tc, test_config_bad_addresses_are_refused);
    tcase_add_test(tc, test_config_strings_must_be_non_empty_and_fit);
    tcase_add_test(tc, test_config_unknown_sections_and_keys_are_errors);
    tcase_add_test(tc, test_config_section_must_be_a_group);
    tcase_add_test(tc, test_config_syntax_error_names_line);
    tcase_add_test(tc, test_config_missing_file_is_an_error);
    tcase_add_test(tc, test_config_bad_file_leaves_config_unchanged);
    tcase_add_test(tc, test_config_users_replace_the_default_guest);
    tcase_add_test(tc, test_config_empty_users_list_leaves_no_users);
    tcase_add_test(tc, test_config_user_needs_exactly_one_of_password_and_hash);
    tcase_add_test(tc, test_config_user_errors_name_the_problem);
    tcase_add_test(tc, test_config_user_name_and_tags_must_fit);
    suite_add_tcase(s, tc);

    TCase *tp = tcase_create("passwords");
    tcase_add_checked_fixture(tp, setup, teardown);
    tcase_add_test(tp, test_password_hash_is_salted_and_checks);
    tcase_add_test(tp, test_password_empty_and_long_passwords_hash_too);
    tcase_add_test(tp, test_password_check_accepts_rabbitmq_format_hashes);
    tcase_add_test(tp, test_password_hash_made_here_matches_the_rabbitmq_formula);
    tcase_add_test(tp, test_hash_valid_needs_base64_of_36_bytes);
    tcase_add_test(tp, test_hash_valid_refuses_48_characters_of_padded_shorter_data);
    suite_add_tcase(s, tp);

    TCase *ta = tcase_create("authenticate");
    tcase_add_checked_fixture(ta, setup, teardown);
    tcase_add_test(ta, test_auth_plain_right_password_logs_in);
    tcase_add_test(ta, test_auth_plain_wrong_password_or_unknown_user_is_eacces);
    tcase_add_test(ta, test_auth_loopback_only_user_is_refused_from_afar);
    tcase_add_test(ta, test_auth_loopback_only_user_is_accepted_from_loopback);
    tcase_add_test(ta, test_auth_anonymous_logs_in_as_the_anonymous_user);
    tcase_add_test(ta, test_auth_anonymous_obeys_loopback_only_of_its_user);
    tcase_add_test(ta, test_auth_anonymous_without_a_known_user_is_eacces);
    tcase_add_test(ta, test_auth_new_user_list_replaces_the_old);
    tcase_add_test(ta, test_auth_user_out_is_truncated_to_its_length);
    suite_add_tcase(s, ta);
    return s;
}

int main(void) { return run_suite(config_suite()); }
