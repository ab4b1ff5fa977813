/* definitions.c — queues, exchanges and bindings as RabbitMQ's definitions
 * document, and back.
 *
 * One format for the admin API's export and import and for durability's
 * record of what was declared, so the two never drift apart: export walks
 * the lock-free directory (from a process, whose turn keeps what it reads
 * alive) and sorts by name, so equal brokers give equal documents; parse is
 * pure and strict — every field is checked and named in the error — and
 * yields the manager's own request structs, so applying a document is the
 * same code path as a client declaring things.
 */
#include <errno.h>
#include <jansson.h>
#include <proton/codec.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "routing/rt_internal.h"

#define VHOST "/"

/* ------------------------------------------------------------------ export */

json_t *rt_qargs_json(const rt_qargs *a)
{
    json_t *o = json_object();
    if (!o)
        return NULL;
    if (a->max_length >= 0)
        json_object_set_new(o, "x-max-length", json_integer(a->max_length));
    if (a->max_length_bytes >= 0)
        json_object_set_new(o, "x-max-length-bytes", json_integer(a->max_length_bytes));
    if (a->overflow == RT_REJECT_PUBLISH)
        json_object_set_new(o, "x-overflow", json_string("reject-publish"));
    if (a->message_ttl >= 0)
        json_object_set_new(o, "x-message-ttl", json_integer(a->message_ttl));
    if (a->expires >= 0)
        json_object_set_new(o, "x-expires", json_integer(a->expires));
    if (a->has_dlx)
        json_object_set_new(o, "x-dead-letter-exchange", json_string(a->dlx));
    if (a->has_dlk)
        json_object_set_new(o, "x-dead-letter-routing-key", json_string(a->dlk));
    return o;
}

json_t *rt_queue_json(const char *name, const rt_qargs *a)
{
    return json_pack("{s:s, s:s, s:b, s:b, s:o}", "name", name, "vhost", VHOST, "durable", a->durable, "auto_delete",
                     a->auto_delete, "arguments", rt_qargs_json(a));
}

json_t *rt_exchange_json(const rt_exchange *x)
{
    return json_pack("{s:s, s:s, s:s, s:b, s:b, s:b, s:{}}", "name", x->name, "vhost", VHOST, "type",
                     rt_xtype_name(x->type), "durable", x->durable, "auto_delete", x->auto_delete, "internal",
                     x->internal, "arguments");
}

/* A headers binding's arguments as the object they were given as. */
static json_t *binding_args(const rt_binding *b)
{
    if (!b->hm)
        return json_object();
    pn_data_t *d = pn_data(16);
    json_t *o = NULL;
    if (d && rt_hdrmatch_put(b->hm, d) == 0) {
        pn_data_rewind(d);
        if (pn_data_next(d))
            o = rt_json_get(d);
    }
    if (d)
        pn_data_free(d);
    return o;
}

json_t *rt_binding_json(const char *source, const rt_binding *b)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:o*}", "source", source, "vhost", VHOST, "destination", b->dest,
                     "destination_type", b->to_exchange ? "exchange" : "queue", "routing_key", b->key, "arguments",
                     binding_args(b));
}

typedef struct collect {
    bool durable_only;
    json_t *queues, *exchanges, *bindings;
    bool failed;
} collect;

static bool add_queue(rt_queue *q, void *ctx)
{
    collect *c = ctx;
    if (q->args.exclusive || (c->durable_only && !q->args.durable))
        return true;
    if (json_array_append_new(c->queues, rt_queue_json(q->name, &q->args)) < 0)
        c->failed = true;
    return !c->failed;
}

static bool builtin(const char *name) { return !name[0] || !strncmp(name, "amq.", 4); }

/* A binding is durable when both its ends are (as in RabbitMQ). */
static bool binding_durable(const rt_binding *b)
{
    if (b->to_exchange) {
        rt_exchange *x = rt_exchange_find(b->dest);
        return x && x->durable;
    }
    rt_queue *q = rt_queue_find(b->dest);
    return q && q->args.durable && !q->args.exclusive;
}

static bool add_exchange(rt_exchange *x, void *ctx)
{
    collect *c = ctx;
    if (c->durable_only && !x->durable)
        return true;
    if (!builtin(x->name) && json_array_append_new(c->exchanges, rt_exchange_json(x)) < 0)
        c->failed = true;
    rt_bindset *bs = atomic_load_explicit(&x->bindings, memory_order_acquire);
    for (uint32_t i = 0; bs && i < bs->n && !c->failed; i++) {
        const rt_binding *b = bs->b[i];
        if (!b->to_exchange) {
            rt_queue *q = rt_queue_find(b->dest);
            if (!q || q->args.exclusive)
                continue; /* goes with its connection */
        }
        if (c->durable_only && !binding_durable(b))
            continue;
        if (json_array_append_new(c->bindings, rt_binding_json(x->name, b)) < 0)
            c->failed = true;
    }
    return !c->failed;
}

static const char *str_of(const json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

static int by_name(const void *a, const void *b)
{
    return strcmp(str_of(*(json_t *const *)a, "name"), str_of(*(json_t *const *)b, "name"));
}

static int by_binding(const void *a, const void *b)
{
    const json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;
    static const char *const keys[] = {"source", "destination_type", "destination", "routing_key"};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        int c = strcmp(str_of(x, keys[i]), str_of(y, keys[i]));
        if (c)
            return c;
    }
    char *ax = json_dumps(json_object_get(x, "arguments"), JSON_SORT_KEYS | JSON_COMPACT);
    char *ay = json_dumps(json_object_get(y, "arguments"), JSON_SORT_KEYS | JSON_COMPACT);
    int c = strcmp(ax ? ax : "", ay ? ay : "");
    free(ax);
    free(ay);
    return c;
}

/* jansson has no sort: take the elements out, qsort, put them back. */
static int sort_array(json_t *arr, int (*cmp)(const void *, const void *))
{
    size_t n = json_array_size(arr);
    if (n < 2)
        return 0;
    json_t **v = malloc(n * sizeof *v);
    if (!v)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++)
        v[i] = json_incref(json_array_get(arr, i));
    qsort(v, n, sizeof *v, cmp);
    json_array_clear(arr);
    int rc = 0;
    for (size_t i = 0; i < n; i++)
        if (json_array_append_new(arr, v[i]) < 0)
            rc = -ENOMEM;
    free(v);
    return rc;
}

json_t *rt_definitions_export(bool durable_only)
{
    collect c = {durable_only, json_array(), json_array(), json_array(), false};
    json_t *doc = json_object();
    if (!doc || !c.queues || !c.exchanges || !c.bindings)
        goto fail;
    rt_queue_each(add_queue, &c);
    rt_exchange_each(add_exchange, &c);
    if (c.failed || sort_array(c.queues, by_name) < 0 || sort_array(c.exchanges, by_name) < 0 ||
        sort_array(c.bindings, by_binding) < 0)
        goto fail;
    if (json_object_set_new(doc, "queues", c.queues) < 0 || json_object_set_new(doc, "exchanges", c.exchanges) < 0 ||
        json_object_set_new(doc, "bindings", c.bindings) < 0) {
        c.queues = c.exchanges = c.bindings = NULL; /* set_new took them, even on failure */
        goto fail;
    }
    return doc;
fail:
    json_decref(c.queues);
    json_decref(c.exchanges);
    json_decref(c.bindings);
    json_decref(doc);
    return NULL;
}

/* ------------------------------------------------------------------- parse */

int rt_bad(char *err, size_t len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, len, fmt, ap);
    va_end(ap);
    return -EINVAL;
}

/* A name field: a string of 1..255 bytes (or 0.., where allow_empty). */
static int get_name(const json_t *o, const char *key, char *out, bool allow_empty, const char *where, char *err,
                    size_t len)
{
    const json_t *v = json_object_get(o, key);
    if (!json_is_string(v))
        return rt_bad(err, len, "%s.%s must be a string", where, key);
    size_t n = json_string_length(v);
    if ((!n && !allow_empty) || n > RT_NAME_MAX || memchr(json_string_value(v), '\0', n))
        return rt_bad(err, len, "%s.%s must be %s to %d bytes with no NUL", where, key, allow_empty ? "0" : "1",
                      RT_NAME_MAX);
    memcpy(out, json_string_value(v), n + 1);
    return 0;
}

/* An optional boolean; *out keeps its default when absent. */
static int get_bool(const json_t *o, const char *key, bool *out, const char *where, char *err, size_t len)
{
    const json_t *v = json_object_get(o, key);
    if (!v)
        return 0;
    if (!json_is_boolean(v))
        return rt_bad(err, len, "%s.%s must be true or false", where, key);
    *out = json_is_true(v);
    return 0;
}

/* The name given (from a URL path), else the entry's "name". */
static int set_name(const json_t *o, const char *name, char *out, const char *where, char *err, size_t len)
{
    if (!name)
        return get_name(o, "name", out, false, where, err, len);
    size_t n = strlen(name);
    if (!n || n > RT_NAME_MAX)
        return rt_bad(err, len, "%s: a name must be 1 to %d bytes", where, RT_NAME_MAX);
    memcpy(out, name, n + 1);
    return 0;
}

static int check_vhost(const json_t *o, const char *where, char *err, size_t len)
{
    const json_t *v = json_object_get(o, "vhost");
    if (v && (!json_is_string(v) || strcmp(json_string_value(v), VHOST) != 0))
        return rt_bad(err, len, "%s.vhost: only the vhost \"/\" exists", where);
    return 0;
}

static int check_object(const json_t *o, const char *where, char *err, size_t len)
{
    return json_is_object(o) ? 0 : rt_bad(err, len, "%s must be an object", where);
}

static int qargs_from_json(const json_t *args, rt_qargs *a, const char *where, char *err, size_t len)
{
    if (!args || json_is_null(args))
        return 0;
    if (!json_is_object(args))
        return rt_bad(err, len, "%s.arguments must be an object", where);
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)args, k, v)
    {
        char why[256];
        int rc;
        if (json_is_integer(v))
            rc = rt_qargs_set(a, k, NULL, (int64_t)json_integer_value(v), true, why, sizeof why);
        else if (json_is_string(v))
            rc = rt_qargs_set(a, k, json_string_value(v), 0, false, why, sizeof why);
        else if (json_is_boolean(v))
            rc = rt_qargs_set(a, k, json_is_true(v) ? "true" : "false", 0, false, why, sizeof why);
        else
            rc = rt_bad(why, sizeof why, "queue argument %s must be a string or an integer", k);
        if (rc < 0)
            return rt_bad(err, len, "%s.arguments: %s", where, why);
    }
    return 0;
}

int rt_queue_req_json(const json_t *o, const char *name, rt_req_queue *r, const char *where, char *err, size_t len)
{
    memset(r, 0, sizeof *r);
    rt_qargs_init(&r->args);
    int rc = check_object(o, where, err, len);
    if (rc == 0)
        rc = set_name(o, name, r->name, where, err, len);
    if (rc == 0)
        rc = check_vhost(o, where, err, len);
    if (rc == 0)
        rc = get_bool(o, "durable", &r->args.durable, where, err, len);
    if (rc == 0)
        rc = get_bool(o, "auto_delete", &r->args.auto_delete, where, err, len);
    if (rc == 0)
        rc = qargs_from_json(json_object_get(o, "arguments"), &r->args, where, err, len);
    if (rc == 0 && r->args.exclusive)
        rc = rt_bad(err, len, "%s: an exclusive queue belongs to a connection and cannot be declared here", where);
    return rc;
}

int rt_exchange_req_json(const json_t *o, const char *name, rt_req_exchange *r, const char *where, char *err,
                         size_t len)
{
    memset(r, 0, sizeof *r);
    r->durable = true;
    int rc = check_object(o, where, err, len);
    if (rc == 0)
        rc = set_name(o, name, r->name, where, err, len);
    if (rc == 0)
        rc = check_vhost(o, where, err, len);
    if (rc == 0 && rt_xtype_parse(json_string_value(json_object_get(o, "type")), &r->type) < 0)
        rc = rt_bad(err, len, "%s.type must be direct, fanout, topic or headers", where);
    if (rc == 0)
        rc = get_bool(o, "durable", &r->durable, where, err, len);
    if (rc == 0)
        rc = get_bool(o, "auto_delete", &r->auto_delete, where, err, len);
    if (rc == 0)
        rc = get_bool(o, "internal", &r->internal, where, err, len);
    const json_t *args = json_object_get(o, "arguments");
    if (rc == 0 && args && !json_is_null(args) && (!json_is_object(args) || json_object_size(args)))
        rc = rt_bad(err, len, "%s.arguments: exchanges take no arguments here (alternate exchanges are not supported)",
                    where);
    return rc;
}

/* v as encoded AMQP bytes in a new buffer. */
static int encode_json(const json_t *v, char **out, size_t *n, char *err, size_t len)
{
    pn_data_t *d = pn_data(16);
    if (!d)
        return -ENOMEM;
    int rc = rt_json_put(d, v, err, len);
    size_t cap = 256;
    char *buf = NULL;
    while (rc == 0) {
        char *nb = realloc(buf, cap);
        if (!nb) {
            rc = -ENOMEM;
            break;
        }
        buf = nb;
        ssize_t got = pn_data_encode(d, buf, cap);
        if (got >= 0) {
            *out = buf;
            *n = (size_t)got;
            buf = NULL;
            break;
        }
        if (got != PN_OVERFLOW || cap >= (1u << 20))
            rc = rt_bad(err, len, "too large to encode");
        cap *= 2;
    }
    free(buf);
    pn_data_free(d);
    return rc;
}

int rt_binding_req_json(const json_t *o, rt_def_bind *out, const char *where, char *err, size_t len)
{
    rt_req_bind b = {0};
    int rc = check_object(o, where, err, len);
    if (rc == 0)
        rc = get_name(o, "source", b.source, false, where, err, len);
    if (rc == 0)
        rc = get_name(o, "destination", b.dest, false, where, err, len);
    if (rc == 0)
        rc = check_vhost(o, where, err, len);
    const char *dt = json_string_value(json_object_get(o, "destination_type"));
    if (rc == 0 && (!dt || (strcmp(dt, "queue") && strcmp(dt, "exchange"))))
        rc = rt_bad(err, len, "%s.destination_type must be queue or exchange", where);
    if (rc < 0)
        return rc;
    b.to_exchange = !strcmp(dt, "exchange");
    if (json_object_get(o, "routing_key") && (rc = get_name(o, "routing_key", b.key, true, where, err, len)) < 0)
        return rc;
    /* Arguments travel encoded after the struct, as the manager takes them. */
    const json_t *args = json_object_get(o, "arguments");
    char *enc = NULL;
    size_t elen = 0;
    if (args && !json_is_null(args) && !json_is_object(args))
        return rt_bad(err, len, "%s.arguments must be an object", where);
    if (args && json_object_size(args)) {
        char why[200] = "out of memory";
        if ((rc = encode_json(args, &enc, &elen, why, sizeof why)) < 0)
            return rc == -ENOMEM ? rc : rt_bad(err, len, "%s.arguments: %s", where, why);
    }
    out->len = sizeof b + elen;
    out->req = malloc(out->len);
    if (!out->req) {
        free(enc);
        return -ENOMEM;
    }
    b.args_len = (uint32_t)elen;
    memcpy(out->req, &b, sizeof b);
    if (elen)
        memcpy(out->req + 1, enc, elen);
    free(enc);
    return 0;
}

/* The array doc[key] (missing: none), and room for its entries. */
static int section(const json_t *doc, const char *key, size_t esize, void **arr, size_t *n, char *err, size_t len)
{
    const json_t *a = json_object_get(doc, key);
    *n = 0;
    *arr = NULL;
    if (!a || json_is_null(a))
        return 0;
    if (!json_is_array(a))
        return rt_bad(err, len, "%s must be an array", key);
    if (!json_array_size(a))
        return 0;
    *arr = calloc(json_array_size(a), esize);
    return *arr ? 0 : -ENOMEM;
}

int rt_definitions_parse(const json_t *doc, rt_defs *out, char *err, size_t len)
{
    memset(out, 0, sizeof *out);
    if (!json_is_object(doc))
        return rt_bad(err, len, "the definitions must be a JSON object");
    int rc;
    char where[64];
    size_t n;
    if ((rc = section(doc, "exchanges", sizeof *out->exchanges, (void **)&out->exchanges, &n, err, len)) < 0)
        goto fail;
    for (size_t i = 0; i < json_array_size(json_object_get(doc, "exchanges")); i++, out->nexchanges++) {
        snprintf(where, sizeof where, "exchanges[%zu]", i);
        rc = rt_exchange_req_json(json_array_get(json_object_get(doc, "exchanges"), i), NULL, &out->exchanges[i], where,
                                  err, len);
        if (rc < 0)
            goto fail;
    }
    if ((rc = section(doc, "queues", sizeof *out->queues, (void **)&out->queues, &n, err, len)) < 0)
        goto fail;
    for (size_t i = 0; i < json_array_size(json_object_get(doc, "queues")); i++, out->nqueues++) {
        snprintf(where, sizeof where, "queues[%zu]", i);
        rc = rt_queue_req_json(json_array_get(json_object_get(doc, "queues"), i), NULL, &out->queues[i], where, err,
                               len);
        if (rc < 0)
            goto fail;
    }
    if ((rc = section(doc, "bindings", sizeof *out->bindings, (void **)&out->bindings, &n, err, len)) < 0)
        goto fail;
    for (size_t i = 0; i < json_array_size(json_object_get(doc, "bindings")); i++) {
        snprintf(where, sizeof where, "bindings[%zu]", i);
        rc = rt_binding_req_json(json_array_get(json_object_get(doc, "bindings"), i), &out->bindings[i], where, err,
                                 len);
        if (rc < 0)
            goto fail;
        out->nbindings++;
    }
    return 0;
fail:
    if (rc == -ENOMEM)
        snprintf(err, len, "out of memory");
    rt_defs_free(out);
    return rc;
}

void rt_defs_free(rt_defs *d)
{
    for (size_t i = 0; i < d->nbindings; i++)
        free(d->bindings[i].req);
    free(d->bindings);
    free(d->queues);
    free(d->exchanges);
    memset(d, 0, sizeof *d);
}
