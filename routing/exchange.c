/* exchange.c — exchanges, bindings and the route of one message.
 *
 * An exchange's bindings are an immutable set, replaced whole by the
 * manager on every change and read without locks by publishers; binding
 * objects themselves are shared between successive sets, so a change copies
 * pointers, not bindings. rt_route walks the bindings of one exchange and
 * of any exchange bound to it (each once), collecting distinct queues.
 */
#include <errno.h>
#include <proton/codec.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "routing/rt_internal.h"

static const char *const xtype_names[] = {"direct", "fanout", "topic", "headers"};

const char *rt_xtype_name(rt_xtype t) { return (unsigned)t < 4 ? xtype_names[t] : "unknown"; }

int rt_xtype_parse(const char *s, rt_xtype *t)
{
    for (int i = 0; i < 4; i++)
        if (s && strcmp(s, xtype_names[i]) == 0) {
            *t = (rt_xtype)i;
            return 0;
        }
    return -EINVAL;
}

/* ------------------------------------------------------------ queue args */

void rt_qargs_init(rt_qargs *a)
{
    memset(a, 0, sizeof *a);
    a->durable = true;
    a->max_length = -1;
    a->max_length_bytes = -1;
    a->overflow = RT_DROP_HEAD;
    a->message_ttl = -1;
    a->expires = -1;
}

static int bad(char *err, size_t len, const char *what, const char *name)
{
    snprintf(err, len, "queue argument %s %s", name, what);
    return -EINVAL;
}

int rt_qargs_set(rt_qargs *a, const char *name, const char *sval, int64_t ival, bool is_int, char *err, size_t len)
{
    if (!strcmp(name, "x-max-length") || !strcmp(name, "x-max-length-bytes") || !strcmp(name, "x-message-ttl")) {
        if (!is_int || ival < 0)
            return bad(err, len, "must be a non-negative integer", name);
        if (!strcmp(name, "x-max-length"))
            a->max_length = ival;
        else if (!strcmp(name, "x-max-length-bytes"))
            a->max_length_bytes = ival;
        else
            a->message_ttl = ival;
        return 0;
    }
    if (!strcmp(name, "x-expires")) {
        if (!is_int || ival <= 0)
            return bad(err, len, "must be a positive integer (milliseconds)", name);
        a->expires = ival;
        return 0;
    }
    if (!strcmp(name, "x-overflow")) {
        if (is_int || !sval)
            return bad(err, len, "must be drop-head or reject-publish", name);
        if (!strcmp(sval, "drop-head"))
            a->overflow = RT_DROP_HEAD;
        else if (!strcmp(sval, "reject-publish"))
            a->overflow = RT_REJECT_PUBLISH;
        else
            return bad(err, len, "must be drop-head or reject-publish", name);
        return 0;
    }
    if (!strcmp(name, "x-dead-letter-exchange") || !strcmp(name, "x-dead-letter-routing-key")) {
        if (is_int || !sval || strlen(sval) > RT_NAME_MAX)
            return bad(err, len, "must be a string of at most 255 bytes", name);
        bool dlx = !strcmp(name, "x-dead-letter-exchange");
        snprintf(dlx ? a->dlx : a->dlk, RT_NAME_MAX + 1, "%s", sval);
        if (dlx)
            a->has_dlx = true;
        else
            a->has_dlk = true;
        return 0;
    }
    if (!strcmp(name, "x-queue-type")) {
        if (is_int || !sval || strcmp(sval, "classic") != 0)
            return bad(err, len, "must be classic (the only queue type so far)", name);
        return 0;
    }
    if (!strcmp(name, "durable") || !strcmp(name, "exclusive") || !strcmp(name, "auto-delete") ||
        !strcmp(name, "auto_delete")) {
        bool v = is_int ? ival != 0 : sval && !strcmp(sval, "true");
        if (!is_int && (!sval || (strcmp(sval, "true") && strcmp(sval, "false"))))
            return bad(err, len, "must be true or false", name);
        if (name[0] == 'd')
            a->durable = v;
        else if (name[0] == 'e')
            a->exclusive = v;
        else
            a->auto_delete = v;
        return 0;
    }
    return bad(err, len, "is not supported", name);
}

/* --------------------------------------------------------------- objects */

rt_exchange *rt__exchange_new(const char *name, rt_xtype type, bool durable, bool auto_delete, bool internal)
{
    rt_exchange *x = calloc(1, sizeof *x);
    if (!x || !(x->name = strdup(name))) {
        free(x);
        return NULL;
    }
    x->type = type;
    x->durable = durable;
    x->auto_delete = auto_delete;
    x->internal = internal;
    atomic_init(&x->bindings, NULL);
    return x;
}

void rt__exchange_free(void *p)
{
    rt_exchange *x = p;
    rt_bindset *bs = atomic_load(&x->bindings);
    if (bs) {
        for (uint32_t i = 0; i < bs->n; i++)
            rt__binding_free(bs->b[i]);
        free(bs);
    }
    free(x->name);
    free(x);
}

rt_binding *rt__binding_new(const char *key, const char *dest, bool to_exchange, rt_hdrmatch *hm)
{
    rt_binding *b = calloc(1, sizeof *b);
    char args[512] = "";
    if (hm)
        rt_hdrmatch_str(hm, args, sizeof args);
    if (!b || !(b->key = strdup(key ? key : "")) || !(b->dest = strdup(dest)) || !(b->args = strdup(args))) {
        if (b) {
            free(b->key);
            free(b->dest);
            free(b);
        }
        return NULL;
    }
    b->to_exchange = to_exchange;
    b->hm = hm;
    return b;
}

void rt__binding_free(void *p)
{
    rt_binding *b = p;
    rt_hdrmatch_free(b->hm);
    free(b->key);
    free(b->dest);
    free(b->args);
    free(b);
}

bool rt__binding_same(const rt_binding *a, const rt_binding *b)
{
    return a->to_exchange == b->to_exchange && !strcmp(a->key, b->key) && !strcmp(a->dest, b->dest) &&
           !strcmp(a->args, b->args);
}

rt_bindset *rt__bindset_add(const rt_bindset *old, rt_binding *b)
{
    uint32_t n = old ? old->n : 0;
    rt_bindset *bs = malloc(sizeof *bs + (n + 1) * sizeof bs->b[0]);
    if (!bs)
        return NULL;
    if (n)
        memcpy(bs->b, old->b, n * sizeof bs->b[0]);
    bs->b[n] = b;
    bs->n = n + 1;
    return bs;
}

rt_bindset *rt__bindset_filter(const rt_bindset *old, bool (*drop)(const rt_binding *b, const void *ctx),
                               const void *ctx, rt_binding ***dropped, uint32_t *ndropped)
{
    uint32_t n = old ? old->n : 0;
    rt_bindset *bs = malloc(sizeof *bs + n * sizeof bs->b[0]);
    rt_binding **gone = malloc((n ? n : 1) * sizeof *gone);
    if (!bs || !gone) {
        free(bs);
        free(gone);
        return NULL;
    }
    bs->n = 0;
    *ndropped = 0;
    for (uint32_t i = 0; i < n; i++) {
        if (drop(old->b[i], ctx))
            gone[(*ndropped)++] = old->b[i];
        else
            bs->b[bs->n++] = old->b[i];
    }
    *dropped = gone;
    return bs;
}

/* ---------------------------------------------------------------- routing */

#define MAX_HOPS 16 /* exchanges visited for one message */

typedef struct route {
    const rt_msg *m;
    const char *key;
    rt_queue **out;
    int max, n;
    const rt_exchange *seen[MAX_HOPS];
    int nseen;
    pn_data_t *props; /* decoded on first need */
    bool props_done;
} route;

static void add_queue(route *r, rt_queue *q)
{
    for (int i = 0; i < r->n && i < r->max; i++)
        if (r->out[i] == q)
            return;
    if (r->n < r->max)
        r->out[r->n] = q;
    else
        for (int i = r->max; i < r->n; i++) /* counted beyond max: cannot dedupe, overcount is fine */
            ;
    r->n++;
}

static bool matches(route *r, const rt_exchange *x, const rt_binding *b)
{
    switch (x->type) {
    case RT_FANOUT: return true;
    case RT_DIRECT: return strcmp(b->key, r->key) == 0;
    case RT_TOPIC: return rt_topic_match(b->key, r->key);
    case RT_HEADERS:
        if (!r->props_done) {
            r->props = r->m ? rt_msg_app_props(r->m) : NULL;
            r->props_done = true;
        }
        return b->hm && rt_hdrmatch_test(b->hm, r->props);
    }
    return false;
}

static void walk(route *r, const rt_exchange *x)
{
    for (int i = 0; i < r->nseen; i++)
        if (r->seen[i] == x)
            return;
    if (r->nseen == MAX_HOPS)
        return;
    r->seen[r->nseen++] = x;
    rt_bindset *bs = atomic_load_explicit(&((rt_exchange *)x)->bindings, memory_order_acquire);
    for (uint32_t i = 0; bs && i < bs->n; i++) {
        const rt_binding *b = bs->b[i];
        if (!matches(r, x, b))
            continue;
        if (b->to_exchange) {
            rt_exchange *dx = rt_exchange_find(b->dest);
            if (dx)
                walk(r, dx);
        } else {
            rt_queue *q = rt_queue_find(b->dest);
            if (q)
                add_queue(r, q);
        }
    }
}

int rt_route(const rt_exchange *x, const rt_msg *m, const char *key, rt_queue **out, int max)
{
    if (!key)
        key = "";
    if (!x || !x->name[0]) { /* the default exchange: by queue name */
        rt_queue *q = rt_queue_find(key);
        if (q && max > 0)
            out[0] = q;
        return q ? 1 : 0;
    }
    route r = {.m = m, .key = key, .out = out, .max = max};
    walk(&r, x);
    if (r.props)
        pn_data_free(r.props);
    return r.n;
}
