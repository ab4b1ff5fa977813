/* conn091_defs.c — AMQP 0-9-1's exchange and queue classes: declare,
 * delete, bind, unbind and purge, as calls to the routing manager (or, for
 * purge, to the queue), answered with the method's -Ok once the call is.
 *
 * The checks and texts follow RabbitMQ's, so clients that look at them see
 * what they know: a redeclaration with other properties is 406
 * "inequivalent arg", another connection's exclusive queue is 405, the
 * default exchange and the reserved "amq." names are 403, a missing queue
 * or exchange is 404. Deletes and unbinds of what is not there succeed, as
 * in RabbitMQ. Each refusal is a channel exception (the connection stays).
 */
#include <errno.h>
#include <proton/codec.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "amqp/amqp_internal.h"

#define VHOST "/" /* the one virtual host so far */

static bool reserved(const char *name) { return !strncmp(name, "amq.", 4); }

/* ------------------------------------------------------------ arguments */

/* Queue arguments RabbitMQ knows that Plexus does not do: refused, so a
 * client never believes it has them. Others unknown are ignored, as
 * RabbitMQ ignores them. */
static const char *const unsupported[] = {
    "x-max-priority", "x-single-active-consumer", "x-delivery-limit", "x-queue-master-locator", "x-queue-version", NULL,
};

static bool known(const char *name)
{
    static const char *const ours[] = {"x-max-length",
                                       "x-max-length-bytes",
                                       "x-overflow",
                                       "x-message-ttl",
                                       "x-dead-letter-exchange",
                                       "x-dead-letter-routing-key",
                                       "x-queue-type",
                                       "x-expires",
                                       NULL};
    for (int i = 0; ours[i]; i++)
        if (!strcmp(name, ours[i]))
            return true;
    return false;
}

static bool int_value(const amqp91_value *v, int64_t *out)
{
    switch (v->type) {
    case 'b': *out = v->v.b; return true;
    case 'B': *out = v->v.B; return true;
    case 's': *out = v->v.s; return true;
    case 'u': *out = v->v.u; return true;
    case 'I': *out = v->v.I; return true;
    case 'i': *out = v->v.i; return true;
    case 'l': *out = v->v.l; return true;
    default: return false;
    }
}

int amqp__091_qargs(amqp91_bytes table, rt_qargs *a, char *err, size_t len)
{
    if (!table.len)
        return 0;
    amqp91_table *t = NULL;
    const char *why = "";
    if (amqp91_table_parse(table.p, table.len, &t, &why) < 0) {
        snprintf(err, len, "arguments: %s", why);
        return -EINVAL;
    }
    int rc = 0;
    for (uint32_t i = 0; i < t->n && rc == 0; i++) {
        char name[256], sval[RT_NAME_MAX + 1];
        amqp__091_name(t->f[i].name, name);
        const amqp91_value *v = &t->f[i].value;
        int64_t ival = 0;
        bool is_int = int_value(v, &ival);
        for (int u = 0; unsupported[u]; u++)
            if (!strcmp(name, unsupported[u])) {
                snprintf(err, len, "argument '%s' is not supported by Plexus", name);
                rc = -EINVAL;
            }
        if (rc < 0 || !known(name))
            continue;
        if (v->type == 'S' || v->type == 'x') {
            if (v->v.str.len > RT_NAME_MAX) {
                snprintf(err, len, "argument '%s' is longer than %d bytes", name, RT_NAME_MAX);
                rc = -EINVAL;
                break;
            }
            memcpy(sval, v->v.str.p, v->v.str.len);
            sval[v->v.str.len] = '\0';
        }
        rc = rt_qargs_set(a, name, v->type == 'S' || v->type == 'x' ? sval : NULL, ival, is_int, err, len);
    }
    amqp91_table_free(t);
    return rc;
}

/* A field table as the AMQP 1.0 map the routing manager takes for binding
 * arguments (headers exchanges match on them): simple values only, which
 * is what header matching compares. */
static int table_map(amqp91_bytes table, char *out, size_t cap, size_t *n, char *err, size_t len)
{
    *n = 0;
    if (!table.len)
        return 0;
    amqp91_table *t = NULL;
    const char *why = "";
    if (amqp91_table_parse(table.p, table.len, &t, &why) < 0) {
        snprintf(err, len, "arguments: %s", why);
        return -EINVAL;
    }
    pn_data_t *d = pn_data(16);
    if (!d) {
        amqp91_table_free(t);
        return -ENOMEM;
    }
    pn_data_put_map(d);
    pn_data_enter(d);
    for (uint32_t i = 0; i < t->n; i++) {
        const amqp91_value *v = &t->f[i].value;
        pn_data_put_string(d, pn_bytes(t->f[i].name.len, (const char *)t->f[i].name.p));
        int64_t iv;
        if (v->type == 'S' || v->type == 'x')
            pn_data_put_string(d, pn_bytes(v->v.str.len, (const char *)v->v.str.p));
        else if (v->type == 't')
            pn_data_put_bool(d, v->v.t);
        else if (int_value(v, &iv))
            pn_data_put_long(d, iv);
        else if (v->type == 'd')
            pn_data_put_double(d, v->v.d);
        else if (v->type == 'f')
            pn_data_put_float(d, v->v.f);
        else if (v->type == 'T')
            pn_data_put_timestamp(d, (int64_t)v->v.T * 1000);
        else
            pn_data_put_null(d); /* tables, arrays, decimals: matched by name only */
    }
    pn_data_exit(d);
    ssize_t w = pn_data_encode(d, out, cap);
    pn_data_free(d);
    amqp91_table_free(t);
    if (w < 0) {
        snprintf(err, len, "arguments too large");
        return -EINVAL;
    }
    *n = (size_t)w;
    return 0;
}

/* ----------------------------------------------------------------- checks */

bool amqp__091_allowed(amqp__conn *c, amqp__091_chan *ch, uint32_t method, amqp_perm what, const char *kind,
                       const char *name)
{
    char why[256];
    if (amqp__perm(c, what, kind, name, why, sizeof why) == 0)
        return true;
    amqp__091_chan_close(c, ch->number, AMQP91_ACCESS_REFUSED, method, "%s", why);
    return false;
}

/* A declaration is a use of the queue, as in RabbitMQ: x-expires starts again. */
static void touch(amqp__conn *c, rt_queue *q)
{
    sv_pid pid = q->args.expires >= 0 ? rt_queue_pid(q) : SV_PID_NONE;
    sv_msg *m = sv_pid_is_none(pid) ? NULL : sv_msg_new(RT_Q_TOUCH, NULL, 0);
    if (m)
        amqp__outbox_push(c, pid, m);
}

bool amqp__091_queue_ok(amqp__conn *c, amqp__091_chan *ch, uint32_t method, const char *name, rt_queue **out)
{
    rt_queue *q = rt_queue_find(name);
    if (!q) {
        amqp__091_chan_close(c, ch->number, AMQP91_NOT_FOUND, method, "no queue '%s' in vhost '" VHOST "'", name);
        return false;
    }
    if (q->args.exclusive && !sv_pid_eq(q->owner, sv_self(c->self))) {
        amqp__091_chan_close(c, ch->number, AMQP91_RESOURCE_LOCKED, method,
                             "cannot obtain exclusive access to locked queue '%s' in vhost '" VHOST "'", name);
        return false;
    }
    if (out)
        *out = q;
    return true;
}

/* "" in a queue field means the channel's last declared queue. */
static bool queue_name(amqp__conn *c, amqp__091_chan *ch, uint32_t method, amqp91_bytes b, char *out)
{
    amqp__091_name(b, out);
    if (out[0])
        return true;
    if (!ch->last_queue[0]) {
        amqp__091_chan_close(c, ch->number, AMQP91_NOT_FOUND, method, "no previously declared queue");
        return false;
    }
    memcpy(out, ch->last_queue, RT_NAME_MAX + 1);
    return true;
}

static void unreachable(amqp__conn *c, amqp__091_chan *ch, uint32_t method)
{
    amqp__091_chan_close(c, ch->number, AMQP91_INTERNAL_ERROR, method, "cannot reach the routing manager");
}

/* A call to the manager; req (size len) is kept with it, for the reply. */
static amqp__091_call *mgr_call(amqp__conn *c, amqp__091_chan *ch, uint32_t method, rt_req_kind kind, void *req,
                                size_t len, bool nowait)
{
    void *copy = malloc(len);
    amqp__091_call *call = copy ? amqp__091_call_to(c, ch->number, method, rt_manager(), rt_req(kind, req, len)) : NULL;
    if (!call) {
        free(copy);
        unreachable(c, ch, method);
        return NULL;
    }
    memcpy(copy, req, len);
    call->req = copy;
    call->nowait = nowait;
    return call;
}

/* ------------------------------------------------------------- exchanges */

static void exchange_declare(amqp__conn *c, amqp__091_chan *ch, const amqp91_exchange_declare *a)
{
    rt_req_exchange r = {0};
    amqp__091_name(a->exchange, r.name);
    char type[64];
    snprintf(type, sizeof type, "%.*s", (int)(a->type.len < 60 ? a->type.len : 60), (const char *)a->type.p);
    if (!r.name[0]) {
        amqp__091_chan_close(c, ch->number, AMQP91_ACCESS_REFUSED, AMQP91_EXCHANGE_DECLARE,
                             "operation not permitted on the default exchange");
        return;
    }
    if (a->passive) {
        rt_exchange *x = rt_exchange_find(r.name);
        if (!x)
            amqp__091_chan_close(c, ch->number, AMQP91_NOT_FOUND, AMQP91_EXCHANGE_DECLARE,
                                 "no exchange '%s' in vhost '" VHOST "'", r.name);
        else if (!a->no_wait)
            amqp__091_simple(c, ch->number, AMQP91_EXCHANGE_DECLARE_OK);
        return;
    }
    if (rt_xtype_parse(type, &r.type) < 0) {
        /* A connection exception in RabbitMQ too. */
        char shown[64];
        amqp__091_printable(a->type.p, a->type.len, shown, sizeof shown);
        amqp__091_conn_close(c, AMQP91_COMMAND_INVALID, AMQP91_EXCHANGE_DECLARE,
                             "unknown exchange type '%s' (Plexus has direct, fanout, topic and headers)", shown);
        return;
    }
    if (reserved(r.name) && !rt_exchange_find(r.name)) {
        amqp__091_chan_close(c, ch->number, AMQP91_ACCESS_REFUSED, AMQP91_EXCHANGE_DECLARE,
                             "exchange name '%s' contains reserved prefix 'amq.*'", r.name);
        return;
    }
    if (!amqp__091_allowed(c, ch, AMQP91_EXCHANGE_DECLARE, AMQP_PERM_CONFIGURE, "exchange", r.name))
        return;
    r.durable = a->durable;
    r.auto_delete = a->auto_delete;
    r.internal = a->internal;
    mgr_call(c, ch, AMQP91_EXCHANGE_DECLARE, RT_REQ_DECLARE_EXCHANGE, &r, sizeof r, a->no_wait);
}

static void exchange_delete(amqp__conn *c, amqp__091_chan *ch, const amqp91_exchange_delete *a)
{
    rt_req_exchange r = {0};
    amqp__091_name(a->exchange, r.name);
    if (!r.name[0] || reserved(r.name)) {
        amqp__091_chan_close(c, ch->number, AMQP91_ACCESS_REFUSED, AMQP91_EXCHANGE_DELETE,
                             r.name[0] ? "exchange '%s' is built in and cannot be deleted"
                                       : "operation not permitted on the default exchange%s",
                             r.name);
        return;
    }
    if (!amqp__091_allowed(c, ch, AMQP91_EXCHANGE_DELETE, AMQP_PERM_CONFIGURE, "exchange", r.name))
        return;
    r.if_unused = a->if_unused;
    mgr_call(c, ch, AMQP91_EXCHANGE_DELETE, RT_REQ_DELETE_EXCHANGE, &r, sizeof r, a->no_wait);
}

/* Queue.Bind/Unbind and Exchange.Bind/Unbind. */
static void bind_req(amqp__conn *c, amqp__091_chan *ch, uint32_t method, bool to_exchange, const char *dest,
                     amqp91_bytes source, amqp91_bytes key, amqp91_bytes args, bool nowait)
{
    char err[200], enc[4096];
    size_t alen = 0;
    rt_req_bind hdr = {0};
    amqp__091_name(source, hdr.source);
    amqp__091_name(key, hdr.key);
    snprintf(hdr.dest, sizeof hdr.dest, "%s", dest);
    hdr.to_exchange = to_exchange;
    bool unbind = method == AMQP91_QUEUE_UNBIND || method == AMQP91_EXCHANGE_UNBIND;
    if (!hdr.source[0] || (to_exchange && !dest[0])) {
        amqp__091_chan_close(c, ch->number, AMQP91_ACCESS_REFUSED, method,
                             "operation not permitted on the default exchange");
        return;
    }
    rt_exchange *x = rt_exchange_find(hdr.source);
    if (!x) {
        amqp__091_chan_close(c, ch->number, AMQP91_NOT_FOUND, method, "no exchange '%s' in vhost '" VHOST "'",
                             hdr.source);
        return;
    }
    if (to_exchange ? !rt_exchange_find(dest) : !amqp__091_queue_ok(c, ch, method, dest, NULL)) {
        if (to_exchange)
            amqp__091_chan_close(c, ch->number, AMQP91_NOT_FOUND, method, "no exchange '%s' in vhost '" VHOST "'",
                                 dest);
        return;
    }
    /* RabbitMQ's rule: write on the destination, read on the source. */
    if (!amqp__091_allowed(c, ch, method, AMQP_PERM_WRITE, to_exchange ? "exchange" : "queue", dest) ||
        !amqp__091_allowed(c, ch, method, AMQP_PERM_READ, "exchange", hdr.source))
        return;
    int rc = x->type == RT_HEADERS ? table_map(args, enc, sizeof enc, &alen, err, sizeof err) : 0;
    if (rc < 0) {
        amqp__091_chan_close(c, ch->number, AMQP91_PRECONDITION_FAILED, method, "%s", err);
        return;
    }
    rt_req_bind *b = calloc(1, sizeof *b + alen);
    if (!b) {
        unreachable(c, ch, method);
        return;
    }
    *b = hdr;
    b->args_len = (uint32_t)alen;
    memcpy(b + 1, enc, alen);
    mgr_call(c, ch, method, unbind ? RT_REQ_UNBIND : RT_REQ_BIND, b, sizeof *b + alen, nowait);
    free(b);
}

/* ---------------------------------------------------------------- queues */

static void count_ok(amqp__conn *c, uint16_t ch, const char *name, uint64_t ready, uint64_t consumers)
{
    amqp91_method m = {.id = AMQP91_QUEUE_DECLARE_OK};
    m.a.queue_declare_ok.queue = (amqp91_bytes){(const uint8_t *)name, (uint32_t)strlen(name)};
    m.a.queue_declare_ok.message_count = ready > UINT32_MAX ? UINT32_MAX : (uint32_t)ready;
    m.a.queue_declare_ok.consumer_count = consumers > UINT32_MAX ? UINT32_MAX : (uint32_t)consumers;
    amqp__091_method(c, ch, &m);
}

/* Declare-Ok with the queue's counts. A durable queue reading its log
 * back after a restart has counted only part of it: the queue answers
 * once it has all (RT_Q_COUNT), so a client never sees a count short. */
static void declare_ok_send(amqp__conn *c, amqp__091_chan *ch, rt_queue *q, const char *name)
{
    sv_pid pid = q ? rt_queue_pid(q) : SV_PID_NONE;
    if (q && atomic_load(&q->loading) && !sv_pid_is_none(pid)) {
        amqp__091_call *call =
            amqp__091_call_to(c, ch->number, AMQP91_QUEUE_DECLARE, pid, sv_msg_new(RT_Q_COUNT, NULL, 0));
        if (call) {
            call->step = 1;
            snprintf(call->name, sizeof call->name, "%s", name);
            return;
        }
    }
    count_ok(c, ch->number, name, q ? atomic_load(&q->ready) : 0, q ? atomic_load(&q->consumers) : 0);
}

static void queue_declare(amqp__conn *c, amqp__091_chan *ch, const amqp91_queue_declare *a)
{
    rt_req_queue r = {0};
    char err[200];
    amqp__091_name(a->queue, r.name);
    rt_qargs_init(&r.args);
    if (a->passive) {
        if (!r.name[0] && !(memcpy(r.name, ch->last_queue, sizeof r.name), r.name[0])) {
            amqp__091_chan_close(c, ch->number, AMQP91_NOT_FOUND, AMQP91_QUEUE_DECLARE, "no previously declared queue");
            return;
        }
        rt_queue *q;
        if (!amqp__091_queue_ok(c, ch, AMQP91_QUEUE_DECLARE, r.name, &q))
            return;
        snprintf(ch->last_queue, sizeof ch->last_queue, "%s", r.name);
        touch(c, q);
        if (!a->no_wait)
            declare_ok_send(c, ch, q, r.name);
        return;
    }
    if (reserved(r.name) && !rt_queue_find(r.name)) {
        amqp__091_chan_close(c, ch->number, AMQP91_ACCESS_REFUSED, AMQP91_QUEUE_DECLARE,
                             "queue name '%s' contains reserved prefix 'amq.*'", r.name);
        return;
    }
    if (amqp__091_qargs(a->arguments, &r.args, err, sizeof err) < 0) {
        amqp__091_chan_close(c, ch->number, AMQP91_PRECONDITION_FAILED, AMQP91_QUEUE_DECLARE,
                             "invalid arguments for queue '%s' in vhost '" VHOST "': %s", r.name, err);
        return;
    }
    /* Configure on the queue (a server-named one under its amq.gen- name);
     * with a dead-letter exchange, write on it and read on the queue. */
    const char *pname = r.name[0] ? r.name : "amq.gen-";
    if (!amqp__091_allowed(c, ch, AMQP91_QUEUE_DECLARE, AMQP_PERM_CONFIGURE, "queue", pname) ||
        (r.args.has_dlx && (!amqp__091_allowed(c, ch, AMQP91_QUEUE_DECLARE, AMQP_PERM_WRITE, "exchange", r.args.dlx) ||
                            !amqp__091_allowed(c, ch, AMQP91_QUEUE_DECLARE, AMQP_PERM_READ, "queue", pname))))
        return;
    r.args.durable = a->durable;
    r.args.exclusive = a->exclusive;
    r.args.auto_delete = a->auto_delete;
    r.owner = a->exclusive ? sv_self(c->self) : SV_PID_NONE;
    r.scheduler = SV_SCHED_ON(sv_scheduler_of(c->self));
    mgr_call(c, ch, AMQP91_QUEUE_DECLARE, RT_REQ_DECLARE_QUEUE, &r, sizeof r, a->no_wait);
}

/* RabbitMQ's check of a redeclaration: the same properties and arguments,
 * or 406 naming the first that differs. */
static const char *inequivalent(const rt_qargs *want, const rt_qargs *have, char *got, char *cur, size_t len)
{
#define DIFF(field, name, fmt)                                                                                         \
    if (want->field != have->field) {                                                                                  \
        snprintf(got, len, fmt, (long long)want->field);                                                               \
        snprintf(cur, len, fmt, (long long)have->field);                                                               \
        return name;                                                                                                   \
    }
#define BOOL_DIFF(field, name)                                                                                         \
    if (want->field != have->field) {                                                                                  \
        snprintf(got, len, "%s", want->field ? "true" : "false");                                                      \
        snprintf(cur, len, "%s", have->field ? "true" : "false");                                                      \
        return name;                                                                                                   \
    }
    BOOL_DIFF(durable, "durable")
    BOOL_DIFF(auto_delete, "auto_delete")
    DIFF(max_length, "x-max-length", "%lld")
    DIFF(max_length_bytes, "x-max-length-bytes", "%lld")
    DIFF(message_ttl, "x-message-ttl", "%lld")
    DIFF(expires, "x-expires", "%lld")
    if (want->overflow != have->overflow) {
        snprintf(got, len, "%s", want->overflow == RT_REJECT_PUBLISH ? "reject-publish" : "drop-head");
        snprintf(cur, len, "%s", have->overflow == RT_REJECT_PUBLISH ? "reject-publish" : "drop-head");
        return "x-overflow";
    }
    if (want->has_dlx != have->has_dlx || (want->has_dlx && strcmp(want->dlx, have->dlx))) {
        snprintf(got, len, "%s", want->has_dlx ? want->dlx : "none");
        snprintf(cur, len, "%s", have->has_dlx ? have->dlx : "none");
        return "x-dead-letter-exchange";
    }
    if (want->has_dlk != have->has_dlk || (want->has_dlk && strcmp(want->dlk, have->dlk))) {
        snprintf(got, len, "%s", want->has_dlk ? want->dlk : "none");
        snprintf(cur, len, "%s", have->has_dlk ? have->dlk : "none");
        return "x-dead-letter-routing-key";
    }
#undef DIFF
#undef BOOL_DIFF
    return NULL;
}

static void declare_ok(amqp__conn *c, amqp__091_call *call, amqp__091_chan *ch, sv_msg *reply)
{
    const rt_req_queue *want = call->req;
    const rt_req_queue *got = SV_MSG_AS(reply, rt_req_queue);
    if (!got) {
        unreachable(c, ch, call->method);
        return;
    }
    char name[RT_NAME_MAX + 1], a[300], b[300];
    snprintf(name, sizeof name, "%s", got->name);
    const char *diff = got->exists ? inequivalent(&want->args, &got->args, a, b, 300) : NULL;
    if (diff) {
        /* Keep the text under a shortstr: names may be long. */
        amqp__091_chan_close(c, ch->number, AMQP91_PRECONDITION_FAILED, call->method,
                             "inequivalent arg '%s' for queue '%.80s' in vhost '" VHOST
                             "': received '%.40s' but current is '%.40s'",
                             diff, name, a, b);
        return;
    }
    snprintf(ch->last_queue, sizeof ch->last_queue, "%s", name);
    rt_queue *q = rt_queue_find(name);
    if (q && got->exists)
        touch(c, q);
    if (!call->nowait)
        declare_ok_send(c, ch, q, name);
}

static void queue_delete(amqp__conn *c, amqp__091_chan *ch, const amqp91_queue_delete *a)
{
    rt_req_queue r = {0};
    if (!queue_name(c, ch, AMQP91_QUEUE_DELETE, a->queue, r.name))
        return;
    rt_queue *q = rt_queue_find(r.name);
    if ((q && !amqp__091_queue_ok(c, ch, AMQP91_QUEUE_DELETE, r.name, NULL)) ||
        !amqp__091_allowed(c, ch, AMQP91_QUEUE_DELETE, AMQP_PERM_CONFIGURE, "queue", r.name))
        return;
    r.if_unused = a->if_unused;
    r.if_empty = a->if_empty;
    amqp__091_call *call = mgr_call(c, ch, AMQP91_QUEUE_DELETE, RT_REQ_DELETE_QUEUE, &r, sizeof r, a->no_wait);
    if (call)
        call->count = q ? (uint32_t)atomic_load(&q->ready) : 0;
}

static void queue_purge(amqp__conn *c, amqp__091_chan *ch, const amqp91_queue_purge *a)
{
    char name[RT_NAME_MAX + 1];
    rt_queue *q;
    if (!queue_name(c, ch, AMQP91_QUEUE_PURGE, a->queue, name) ||
        !amqp__091_queue_ok(c, ch, AMQP91_QUEUE_PURGE, name, &q) ||
        !amqp__091_allowed(c, ch, AMQP91_QUEUE_PURGE, AMQP_PERM_READ, "queue", name))
        return;
    sv_pid pid = rt_queue_pid(q);
    amqp__091_call *call = sv_pid_is_none(pid) ? NULL
                                               : amqp__091_call_to(c, ch->number, AMQP91_QUEUE_PURGE, pid,
                                                                   sv_msg_new(RT_Q_PURGE, NULL, 0));
    if (!call) {
        amqp__091_chan_close(c, ch->number, AMQP91_INTERNAL_ERROR, AMQP91_QUEUE_PURGE, "queue '%s' is not running",
                             name);
        return;
    }
    call->nowait = a->no_wait;
    snprintf(call->name, sizeof call->name, "%s", name);
}

void amqp__091_defs_method(amqp__conn *c, amqp__091_chan *ch, const amqp91_method *m)
{
    char dest[RT_NAME_MAX + 1];
    switch (m->id) {
    case AMQP91_EXCHANGE_DECLARE: exchange_declare(c, ch, &m->a.exchange_declare); break;
    case AMQP91_EXCHANGE_DELETE: exchange_delete(c, ch, &m->a.exchange_delete); break;
    case AMQP91_EXCHANGE_BIND: {
        const amqp91_exchange_bind *a = &m->a.exchange_bind;
        amqp__091_name(a->destination, dest);
        bind_req(c, ch, m->id, true, dest, a->source, a->routing_key, a->arguments, a->no_wait);
        break;
    }
    case AMQP91_EXCHANGE_UNBIND: {
        const amqp91_exchange_unbind *a = &m->a.exchange_unbind;
        amqp__091_name(a->destination, dest);
        bind_req(c, ch, m->id, true, dest, a->source, a->routing_key, a->arguments, a->no_wait);
        break;
    }
    case AMQP91_QUEUE_DECLARE: queue_declare(c, ch, &m->a.queue_declare); break;
    case AMQP91_QUEUE_BIND: {
        const amqp91_queue_bind *a = &m->a.queue_bind;
        if (queue_name(c, ch, m->id, a->queue, dest))
            bind_req(c, ch, m->id, false, dest, a->exchange, a->routing_key, a->arguments, a->no_wait);
        break;
    }
    case AMQP91_QUEUE_UNBIND: {
        const amqp91_queue_unbind *a = &m->a.queue_unbind;
        if (queue_name(c, ch, m->id, a->queue, dest))
            bind_req(c, ch, m->id, false, dest, a->exchange, a->routing_key, a->arguments, false);
        break;
    }
    case AMQP91_QUEUE_PURGE: queue_purge(c, ch, &m->a.queue_purge); break;
    case AMQP91_QUEUE_DELETE: queue_delete(c, ch, &m->a.queue_delete); break;
    default:
        amqp__091_chan_close(c, ch->number, AMQP91_NOT_IMPLEMENTED, m->id, "%s is not implemented", m->desc->name);
        break;
    }
}

/* ---------------------------------------------------------------- replies */

static void refused(amqp__conn *c, amqp__091_call *call, amqp__091_chan *ch, int status)
{
    uint32_t id = call->method;
    const rt_req_exchange *x = call->req;
    const rt_req_queue *q = call->req;
    const rt_req_bind *b = call->req;
    bool is_x = id == AMQP91_EXCHANGE_DECLARE || id == AMQP91_EXCHANGE_DELETE;
    bool is_bind = id == AMQP91_QUEUE_BIND || id == AMQP91_QUEUE_UNBIND || id == AMQP91_EXCHANGE_BIND ||
                   id == AMQP91_EXCHANGE_UNBIND;
    const char *name = id == AMQP91_QUEUE_PURGE ? call->name : is_x ? x->name : is_bind ? b->dest : q->name;
    const char *what = is_x ? "exchange" : "queue";
    switch (status) {
    case -ENOENT:
        if (is_bind)
            amqp__091_chan_close(c, ch->number, AMQP91_NOT_FOUND, id,
                                 "no exchange '%.100s' or %s '%.100s' in vhost '" VHOST "'", b->source,
                                 b->to_exchange ? "exchange" : "queue", b->dest);
        else
            amqp__091_chan_close(c, ch->number, AMQP91_NOT_FOUND, id, "no %s '%s' in vhost '" VHOST "'", what, name);
        break;
    case -EEXIST: {
        rt_exchange *cur = rt_exchange_find(x->name);
        amqp__091_chan_close(c, ch->number, AMQP91_PRECONDITION_FAILED, id,
                             "inequivalent arg 'type' for exchange '%.100s' in vhost '" VHOST
                             "': received '%s' but current is '%s'",
                             x->name, rt_xtype_name(x->type), cur ? rt_xtype_name(cur->type) : "?");
        break;
    }
    case -EBUSY:
        if (id == AMQP91_QUEUE_DECLARE)
            amqp__091_chan_close(c, ch->number, AMQP91_RESOURCE_LOCKED, id,
                                 "cannot obtain exclusive access to locked queue '%s' in vhost '" VHOST "'", name);
        else
            amqp__091_chan_close(c, ch->number, AMQP91_PRECONDITION_FAILED, id, "%s '%s' in vhost '" VHOST "' in use",
                                 what, name);
        break;
    case -ENOTEMPTY:
        amqp__091_chan_close(c, ch->number, AMQP91_PRECONDITION_FAILED, id,
                             "queue '%s' in vhost '" VHOST "' is not empty", name);
        break;
    case -EPERM:
        amqp__091_chan_close(c, ch->number, AMQP91_ACCESS_REFUSED, id, "operation not permitted on %s '%s'", what,
                             name[0] ? name : "the default exchange");
        break;
    case -EINVAL:
        amqp__091_chan_close(c, ch->number, AMQP91_PRECONDITION_FAILED, id, "invalid arguments for %s '%s'", what,
                             name);
        break;
    case -EAGAIN:
        amqp__091_chan_close(c, ch->number, AMQP91_RESOURCE_ERROR, id, "%s '%s' is still loading; try again", what,
                             name);
        break;
    default:
        amqp__091_chan_close(c, ch->number, AMQP91_INTERNAL_ERROR, id, "%s '%s': %s", what, name,
                             strerror(status < 0 ? -status : EIO));
        break;
    }
}

void amqp__091_defs_reply(amqp__conn *c, amqp__091_call *call, sv_msg *reply)
{
    amqp__091_chan *ch = amqp__091_chan_get(c, call->channel, call->epoch);
    uint32_t id = call->method;
    if (!ch)
        return; /* closed meanwhile: nobody to tell */
    int status = reply->status;
    if (id == AMQP91_QUEUE_DECLARE && call->step == 1) {
        /* The counts of a queue that was loading; if it could not say
         * (it stopped meanwhile), what its counters say. */
        const rt_qcount *n = status == 0 ? SV_MSG_AS(reply, rt_qcount) : NULL;
        rt_queue *q = n ? NULL : rt_queue_find(call->name);
        count_ok(c, ch->number, call->name,
                 n   ? n->ready
                 : q ? atomic_load(&q->ready)
                     : 0,
                 n   ? n->consumers
                 : q ? atomic_load(&q->consumers)
                     : 0);
        return;
    }
    /* Deletes and unbinds of what is not there are done, as in RabbitMQ. */
    if (status == -ENOENT && (id == AMQP91_QUEUE_DELETE || id == AMQP91_EXCHANGE_DELETE || id == AMQP91_QUEUE_UNBIND ||
                              id == AMQP91_EXCHANGE_UNBIND))
        status = 0;
    if (status < 0) {
        refused(c, call, ch, status);
        return;
    }
    if (id == AMQP91_EXCHANGE_DECLARE) {
        const rt_req_exchange *x = call->req;
        rt_exchange *cur = rt_exchange_find(x->name);
        if (cur && cur->durable != x->durable) {
            amqp__091_chan_close(c, ch->number, AMQP91_PRECONDITION_FAILED, id,
                                 "inequivalent arg 'durable' for exchange '%.100s' in vhost '" VHOST
                                 "': received '%s' but current is '%s'",
                                 x->name, x->durable ? "true" : "false", cur->durable ? "true" : "false");
            return;
        }
    }
    if (id == AMQP91_QUEUE_DECLARE) {
        declare_ok(c, call, ch, reply);
        return;
    }
    if (call->nowait)
        return;
    amqp91_method m = {.id = id + 1}; /* every -Ok is its method's id + 1 */
    if (id == AMQP91_QUEUE_DELETE)
        m.a.queue_delete_ok.message_count = call->count;
    if (id == AMQP91_QUEUE_PURGE) {
        const uint64_t *n = SV_MSG_AS(reply, uint64_t);
        m.a.queue_purge_ok.message_count = n ? (uint32_t)*n : 0;
    }
    if (id == AMQP91_EXCHANGE_UNBIND)
        m.id = AMQP91_EXCHANGE_UNBIND_OK; /* the one exception: exchange.unbind-ok is 51 */
    amqp__091_method(c, ch->number, &m);
}
