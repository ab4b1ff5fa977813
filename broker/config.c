/* config.c — the broker's configuration: embedded defaults and the file.
 *
 * The file is read with libconfig (comments, groups, typed values, line
 * numbers in errors). Every setting is checked against the schema below, so
 * a typo ("lisen") is an error that names the line, not a silently ignored
 * key.
 */
#include <errno.h>
#include <libconfig.h>
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
    c->log_level = SV_LOG_INFO;
    snprintf(c->amqp_listen, sizeof c->amqp_listen, "127.0.0.1:5672");
    snprintf(c->admin_listen, sizeof c->admin_listen, "127.0.0.1:15672");
    snprintf(c->data_dir, sizeof c->data_dir, "./var/plexus");
}

int brk_parse_hostport(const char *s, char *host, size_t hostlen, int *port)
{
    const char *colon;
    size_t hl;
    if (!s || !*s)
        return -1;
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (!close || close[1] != ':')
            return -1;
        hl = (size_t)(close - s - 1);
        s++;
        colon = close + 1;
    } else {
        colon = strrchr(s, ':');
        if (!colon || memchr(s, ':', (size_t)(colon - s)))
            return -1; /* a bare IPv6 address needs brackets */
        hl = (size_t)(colon - s);
    }
    if (hl == 0 || hl >= hostlen)
        return -1;
    char *end;
    errno = 0;
    long p = strtol(colon + 1, &end, 10);
    if (colon[1] == '\0' || *end || errno || p < 0 || p > 65535)
        return -1;
    memcpy(host, s, hl);
    host[hl] = '\0';
    *port = (int)p;
    return 0;
}

/* ------------------------------------------------------------- the schema */

typedef enum { T_STR, T_INT, T_LEVEL, T_ADDR } ktype;

typedef struct key {
    const char *group, *name;
    ktype type;
    size_t off, size; /* where in brk_config */
    long min, max;    /* T_INT */
} key;

#define STR(g, n, f) {g, n, T_STR, offsetof(brk_config, f), sizeof(((brk_config *)0)->f), 0, 0}
#define ADDR(g, n, f) {g, n, T_ADDR, offsetof(brk_config, f), sizeof(((brk_config *)0)->f), 0, 0}
#define INT(g, n, f, lo, hi) {g, n, T_INT, offsetof(brk_config, f), sizeof(((brk_config *)0)->f), lo, hi}

static const key schema[] = {
    STR("node", "name", node_name),
    INT("node", "schedulers", schedulers, 0, 256),
    INT("node", "mailbox_size", mailbox_size, 16, 1 << 24),
    {"log", "level", T_LEVEL, offsetof(brk_config, log_level), sizeof(sv_log_level), 0, 0},
    ADDR("amqp", "listen", amqp_listen),
    ADDR("admin", "listen", admin_listen),
    STR("storage", "data_dir", data_dir),
};
#define NKEYS (sizeof schema / sizeof schema[0])

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

static int apply(brk_config *c, const key *k, const config_setting_t *s, const char *path, char *err,
                 size_t len)
{
    void *field = (char *)c + k->off;
    int t = config_setting_type(s);
    if (k->type == T_INT) {
        if (t != CONFIG_TYPE_INT && t != CONFIG_TYPE_INT64)
            return fail(err, len, path, s, "%s.%s must be an integer", k->group, k->name);
        long long v = config_setting_get_int64(s);
        if (v < k->min || v > k->max)
            return fail(err, len, path, s, "%s.%s must be between %ld and %ld, not %lld", k->group, k->name,
                        k->min, k->max, v);
        if (k->size == sizeof(int))
            *(int *)field = (int)v;
        else
            *(uint32_t *)field = (uint32_t)v;
        return 0;
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
        if (brk_parse_hostport(v, host, sizeof host, &port) < 0)
            return fail(err, len, path, s, "%s.%s must be HOST:PORT (e.g. \"127.0.0.1:5672\"), not \"%s\"",
                        k->group, k->name, v);
    }
    if (!*v || strlen(v) >= k->size)
        return fail(err, len, path, s, "%s.%s must be a non-empty string of at most %zu bytes", k->group,
                    k->name, k->size - 1);
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
    if (config_read(&cf, f) != CONFIG_TRUE) {
        snprintf(err, len, "%s:%d: %s", path, config_error_line(&cf), config_error_text(&cf));
        rc = -1;
        goto out;
    }
    /* Work on a copy: a file with one bad setting changes nothing. */
    brk_config next = *c;
    config_setting_t *root = config_root_setting(&cf);
    for (int i = 0; rc == 0 && i < config_setting_length(root); i++) {
        config_setting_t *g = config_setting_get_elem(root, (unsigned)i);
        const char *gname = config_setting_name(g);
        if (!find_key(gname, NULL)) {
            rc = fail(err, len, path, g, "unknown section '%s' (known: node, log, amqp, admin, storage)", gname);
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
                rc = apply(&next, k, s, path, err, len);
        }
    }
    if (rc == 0)
        *c = next;
out:
    config_destroy(&cf);
    fclose(f);
    return rc;
}
