/* config.c — the broker's configuration: embedded defaults and the file.
 *
 * The file is read with libconfig (comments, groups, typed values, line
 * numbers in errors). Every setting is checked against the schema below, so
 * a typo ("lisen") is an error that names the line, not a silently ignored
 * key; `users` is a list of groups, checked on its own.
 */
#include <errno.h>
#include <libconfig.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/brk.h"

void brk_config_init(brk_config *c)
{
    memset(c, 0, sizeof *c);
    snprintf(c->node_name, sizeof c->node_name, "plexus@localhost");
    c->schedulers = 0;
    c->mailbox_size = 4096;
    c->busy_wait_us = 200; /* see conf/plexus.conf */
    c->log_level = SV_LOG_INFO;
    amqp_config_init(&c->amqp);
    snprintf(c->anonymous_user, sizeof c->anonymous_user, "guest");
    c->routing.queue_mailbox = 0;
    c->routing.queue_max_batch = 256;
    snprintf(c->admin_listen, sizeof c->admin_listen, "127.0.0.1:15672");
    c->admin_max_connections = 64;
    c->admin_max_body = 16u << 20;
    c->admin_timeout_s = 30;
    c->admin_threads = 2;
    snprintf(c->data_dir, sizeof c->data_dir, "./var/plexus");
    c->routing.store_threads = 2;
    c->routing.segment_size = 16u << 20;
    c->routing.queue_window = 8u << 20;
    c->routing.disk_free_limit = 50u << 20;
    /* The default user, as in RabbitMQ: guest/guest, from this host only. */
    brk_user *g = &c->users[0];
    snprintf(g->name, sizeof g->name, "guest");
    snprintf(g->tags, sizeof g->tags, "administrator");
    g->loopback_only = true;
    if (brk_password_hash("guest", g->hash, sizeof g->hash) == 0)
        c->nusers = 1;
}

/* ------------------------------------------------------------- the schema */

typedef enum { T_STR, T_INT, T_BOOL, T_LEVEL, T_ADDR } ktype;

typedef struct key {
    const char *group, *name;
    ktype type;
    size_t off, size;   /* where in brk_config */
    long long min, max; /* T_INT */
    const char *doc;    /* the expected form, for messages */
} key;

#define F(f) offsetof(brk_config, f), sizeof(((brk_config *)0)->f)
/* A table, one entry a line: */
/* clang-format off */
#define STR(g, n, f) {g, n, T_STR, F(f), 0, 0, NULL}
#define ADDR(g, n, f) {g, n, T_ADDR, F(f), 0, 0, NULL}
#define BOOL(g, n, f) {g, n, T_BOOL, F(f), 0, 0, NULL}
#define INT(g, n, f, lo, hi) {g, n, T_INT, F(f), lo, hi, NULL}
/* clang-format on */

static const key schema[] = {
    STR("node", "name", node_name),
    INT("node", "schedulers", schedulers, 0, 256),
    INT("node", "mailbox_size", mailbox_size, 16, 1 << 24),
    INT("node", "busy_wait_us", busy_wait_us, 0, 10000),
    {"log", "level", T_LEVEL, F(log_level), 0, 0, NULL},
    ADDR("amqp", "listen", amqp.listen),
    INT("amqp", "max_connections", amqp.max_connections, 1, 10000000),
    INT("amqp", "max_links", amqp.max_links, 1, 65535),
    INT("amqp", "max_frame_size", amqp.max_frame_size, 4096, 0x7fffffff),
    INT("amqp", "max_message_size", amqp.max_message_size, 1024, 1LL << 34),
    INT("amqp", "idle_timeout", amqp.idle_timeout_ms, 0, 3600000),
    INT("amqp", "credit_window", amqp.credit_window, 1, 100000),
    BOOL("amqp", "anonymous", amqp.anonymous),
    STR("amqp", "anonymous_user", anonymous_user),
    BOOL("amqp", "auto_create_queues", amqp.auto_create_queues),
    INT("routing", "queue_mailbox", routing.queue_mailbox, 0, 1 << 24),
    INT("routing", "delivery_batch", routing.queue_max_batch, 1, 4096),
    INT("routing", "memory_limit", routing.memory_limit, 0, 1LL << 50),
    ADDR("admin", "listen", admin_listen),
    INT("admin", "max_connections", admin_max_connections, 1, 100000),
    INT("admin", "max_body", admin_max_body, 1024, 1LL << 32),
    INT("admin", "timeout", admin_timeout_s, 1, 3600),
    INT("admin", "threads", admin_threads, 1, 64),
    STR("admin", "cert_file", admin_cert_file),
    STR("admin", "key_file", admin_key_file),
    ADDR("tls", "listen", amqp.tls.listen),
    STR("tls", "cert_file", amqp.tls.cert_file),
    STR("tls", "key_file", amqp.tls.key_file),
    STR("tls", "ca_file", amqp.tls.ca_file),
    BOOL("tls", "verify_peer", amqp.tls.verify_peer),
    BOOL("tls", "fail_if_no_peer_cert", amqp.tls.fail_if_no_peer_cert),
    STR("tls", "min_version", amqp.tls.min_version),
    INT("tls", "handshake_timeout", amqp.tls.handshake_timeout_ms, 100, 600000),
    STR("storage", "data_dir", data_dir),
    INT("storage", "threads", routing.store_threads, 1, 16),
    INT("storage", "segment_size", routing.segment_size, 1 << 16, 1LL << 31),
    INT("storage", "queue_window", routing.queue_window, 1 << 16, 1LL << 40),
    INT("storage", "disk_free_limit", routing.disk_free_limit, 0, 1LL << 50),
};
#define NKEYS (sizeof schema / sizeof schema[0])
#define SECTIONS "node, log, amqp, tls, routing, admin, storage, users"

static int fail(char *err, size_t len, const char *path, const config_setting_t *s, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static int fail(char *err, size_t len, const char *path, const config_setting_t *s, const char *fmt, ...)
{
    int n = snprintf(err, len, "%s:%d: ", path, s ? (int)config_setting_source_line(s) : 0);
    if (n < 0 || (size_t)n >= len)
        return -1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err + n, len - (size_t)n, fmt, ap);
    va_end(ap);
    return -1;
}

static int apply(brk_config *c, const key *k, const config_setting_t *s, const char *path, char *err, size_t len)
{
    void *field = (char *)c + k->off;
    int t = config_setting_type(s);
    switch (k->type) {
    case T_INT: {
        if (t != CONFIG_TYPE_INT && t != CONFIG_TYPE_INT64)
            return fail(err, len, path, s, "%s.%s must be an integer", k->group, k->name);
        long long v = config_setting_get_int64(s);
        if (v < k->min || v > k->max)
            return fail(err, len, path, s, "%s.%s must be between %lld and %lld, not %lld", k->group, k->name, k->min,
                        k->max, v);
        if (k->size == sizeof(uint64_t))
            *(uint64_t *)field = (uint64_t)v;
        else if (k->size == sizeof(int))
            *(int *)field = (int)v;
        return 0;
    }
    case T_BOOL:
        if (t != CONFIG_TYPE_BOOL)
            return fail(err, len, path, s, "%s.%s must be true or false", k->group, k->name);
        *(bool *)field = config_setting_get_bool(s);
        return 0;
    default: break;
    }
    if (t != CONFIG_TYPE_STRING)
        return fail(err, len, path, s, "%s.%s must be a string", k->group, k->name);
    const char *v = config_setting_get_string(s);
    if (k->type == T_LEVEL) {
        if (sv_log_parse_level(v, field) < 0)
            return fail(err, len, path, s, "log.level must be error, warning, info or debug, not \"%s\"", v);
        return 0;
    }
    if (k->type == T_ADDR) {
        char host[BRK_ADDR_MAX];
        int port;
        if (amqp_hostport_parse(v, host, sizeof host, &port) < 0)
            return fail(err, len, path, s, "%s.%s must be HOST:PORT (e.g. \"127.0.0.1:5672\"), not \"%s\"", k->group,
                        k->name, v);
    }
    if (!*v || strlen(v) >= k->size)
        return fail(err, len, path, s, "%s.%s must be a non-empty string of at most %zu bytes", k->group, k->name,
                    k->size - 1);
    memcpy(field, v, strlen(v) + 1);
    return 0;
}

static const key *find_key(const char *group, const char *name)
{
    for (size_t i = 0; i < NKEYS; i++)
        if (strcmp(schema[i].group, group) == 0 && (!name || strcmp(schema[i].name, name) == 0))
            return &schema[i];
    return NULL;
}

/* users = ( { name = "..."; password = "..." | password_hash = "..."; tags = "..."; loopback_only = b; }, ... ); */
static int load_users(brk_config *c, config_setting_t *list, const char *path, char *err, size_t len)
{
    if (!config_setting_is_list(list))
        return fail(err, len, path, list, "users must be a list: users = ( { name = \"...\"; password = \"...\"; } );");
    int n = config_setting_length(list);
    if (n > BRK_MAX_USERS)
        return fail(err, len, path, list, "at most %d users", BRK_MAX_USERS);
    c->nusers = 0;
    for (int i = 0; i < n; i++) {
        config_setting_t *g = config_setting_get_elem(list, (unsigned)i);
        if (!config_setting_is_group(g))
            return fail(err, len, path, g, "each user must be a group { name = ...; password = ...; }");
        brk_user *u = &c->users[c->nusers];
        memset(u, 0, sizeof *u);
        const char *name = NULL, *pass = NULL, *hash = NULL, *tags = NULL;
        int loop = 0;
        for (int j = 0; j < config_setting_length(g); j++) {
            config_setting_t *s = config_setting_get_elem(g, (unsigned)j);
            const char *k = config_setting_name(s);
            bool is_str = config_setting_type(s) == CONFIG_TYPE_STRING;
            if (!strcmp(k, "loopback_only")) {
                if (config_setting_type(s) != CONFIG_TYPE_BOOL)
                    return fail(err, len, path, s, "users: loopback_only must be true or false");
                loop = config_setting_get_bool(s);
                continue;
            }
            if (strcmp(k, "name") && strcmp(k, "password") && strcmp(k, "password_hash") && strcmp(k, "tags"))
                return fail(err, len, path, s,
                            "unknown setting 'users.%s' (known: name, password, password_hash, "
                            "tags, loopback_only)",
                            k);
            if (!is_str)
                return fail(err, len, path, s, "users: %s must be a string", k);
            const char *v = config_setting_get_string(s);
            if (!strcmp(k, "name"))
                name = v;
            else if (!strcmp(k, "password"))
                pass = v;
            else if (!strcmp(k, "password_hash"))
                hash = v;
            else
                tags = v;
        }
        if (!name || !*name || strlen(name) >= sizeof u->name)
            return fail(err, len, path, g, "users: each user needs a name of 1 to %zu bytes", sizeof u->name - 1);
        for (size_t j = 0; j < c->nusers; j++)
            if (!strcmp(c->users[j].name, name))
                return fail(err, len, path, g, "users: '%s' is listed twice", name);
        if (!pass == !hash)
            return fail(err, len, path, g, "users: '%s' needs exactly one of password or password_hash", name);
        if (hash && !brk_hash_valid(hash))
            return fail(err, len, path, g,
                        "users: the password_hash of '%s' is not a salted SHA-256 hash "
                        "(base64 of 36 bytes, as RabbitMQ exports)",
                        name);
        if (tags && strlen(tags) >= sizeof u->tags)
            return fail(err, len, path, g, "users: tags of '%s' too long", name);
        snprintf(u->name, sizeof u->name, "%s", name);
        snprintf(u->tags, sizeof u->tags, "%s", tags ? tags : "");
        u->loopback_only = loop;
        if (hash)
            snprintf(u->hash, sizeof u->hash, "%s", hash);
        else if (brk_password_hash(pass, u->hash, sizeof u->hash) < 0)
            return fail(err, len, path, g, "users: cannot hash the password of '%s'", name);
        c->nusers++;
    }
    return 0;
}

int brk_config_load(brk_config *c, const char *path, char *err, size_t len)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, len, "%s: cannot read the configuration: %s", path, strerror(errno));
        return -1;
    }
    config_t cf;
    config_init(&cf);
    int rc = 0;
    brk_config *next = NULL;
    if (config_read(&cf, f) != CONFIG_TRUE) {
        snprintf(err, len, "%s:%d: %s", path, config_error_line(&cf), config_error_text(&cf));
        rc = -1;
        goto out;
    }
    /* Work on a copy: a file with one bad setting changes nothing. */
    if (!(next = malloc(sizeof *next))) {
        snprintf(err, len, "%s: out of memory", path);
        rc = -1;
        goto out;
    }
    *next = *c;
    config_setting_t *root = config_root_setting(&cf);
    for (int i = 0; rc == 0 && i < config_setting_length(root); i++) {
        config_setting_t *g = config_setting_get_elem(root, (unsigned)i);
        const char *gname = config_setting_name(g);
        if (!strcmp(gname, "users")) {
            rc = load_users(next, g, path, err, len);
            continue;
        }
        if (!find_key(gname, NULL)) {
            rc = fail(err, len, path, g, "unknown section '%s' (known: " SECTIONS ")", gname);
            break;
        }
        if (!config_setting_is_group(g)) {
            rc = fail(err, len, path, g, "'%s' must be a group: %s = { ... };", gname, gname);
            break;
        }
        for (int j = 0; rc == 0 && j < config_setting_length(g); j++) {
            config_setting_t *s = config_setting_get_elem(g, (unsigned)j);
            const key *k = find_key(gname, config_setting_name(s));
            if (!k)
                rc = fail(err, len, path, s, "unknown setting '%s.%s'", gname, config_setting_name(s));
            else
                rc = apply(next, k, s, path, err, len);
        }
    }
    if (rc == 0)
        *c = *next;
out:
    free(next);
    config_destroy(&cf);
    fclose(f);
    return rc;
}
