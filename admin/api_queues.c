/* api_queues.c — /api/queues: list, inspect, declare, delete, purge.
 *
 * Listings are the API's heaviest request (a dashboard polls them; with a
 * thousand queues each answer is ~0.5 MB of JSON), so the reader's turn
 * only copies each queue's record and counters into a flat array, and the
 * JSON is built here, on the HTTP thread: the scheduler spends
 * microseconds per request, not milliseconds.
 */
#include <errno.h>
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin/adm_internal.h"

/* Bytes a queued message costs besides its own: the rt_msg header and the
 * queue's ring entry (for the "memory" estimate). */
#define MSG_OVERHEAD (sizeof(rt_msg) + 32)

typedef adm__qsnap qsnap;

typedef struct qlist {
    const char *only; /* one queue, or NULL for all */
    qsnap *v;
    size_t n, cap;
    bool oom;
} qlist;

static bool snap_queue(rt_queue *q, adm__reader *rd, qlist *l)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        qsnap *nv = realloc(l->v, cap * sizeof *nv);
        if (!nv) {
            l->oom = true;
            return false;
        }
        l->v = nv;
        l->cap = cap;
    }
    qsnap *s = &l->v[l->n];
    if (!(s->name = strdup(q->name))) {
        l->oom = true;
        return false;
    }
    s->args = q->args;
    s->pid = rt_queue_pid(q);
    s->ready = atomic_load_explicit(&q->ready, memory_order_relaxed);
    s->unacked = atomic_load_explicit(&q->unacked, memory_order_relaxed);
    s->consumers = atomic_load_explicit(&q->consumers, memory_order_relaxed);
    s->bytes = atomic_load_explicit(&q->bytes, memory_order_relaxed);
    s->published = atomic_load_explicit(&q->published, memory_order_relaxed);
    s->delivered = atomic_load_explicit(&q->delivered, memory_order_relaxed);
    s->acked = atomic_load_explicit(&q->acked, memory_order_relaxed);
    s->damage = atomic_load_explicit(&q->corrupt, memory_order_relaxed);
    s->rates = adm__queue_rates(rd, q);
    l->n++;
    return true;
}

typedef struct each_ctx {
    adm__reader *rd;
    qlist *l;
} each_ctx;

static bool snap_each(rt_queue *q, void *ctx)
{
    each_ctx *e = ctx;
    return snap_queue(q, e->rd, e->l);
}

static void read_queues(adm__reader *rd, void *ctx)
{
    qlist *l = ctx;
    if (l->only) {
        rt_queue *q = rt_queue_find(l->only);
        if (q)
            snap_queue(q, rd, l);
        return;
    }
    each_ctx e = {rd, l};
    rt_queue_each(snap_each, &e);
}

static void qlist_free(qlist *l)
{
    for (size_t i = 0; i < l->n; i++)
        free(l->v[i].name);
    free(l->v);
}

static int by_name(const void *a, const void *b) { return strcmp(((const qsnap *)a)->name, ((const qsnap *)b)->name); }

int adm__queue_snapshot(adm_req *q, adm__qsnap **out, size_t *n)
{
    qlist l = {0};
    int rc = adm__read(q, read_queues, &l);
    if (rc < 0 || l.oom) {
        qlist_free(&l);
        return rc < 0 ? rc : -ENOMEM;
    }
    if (l.n)
        qsort(l.v, l.n, sizeof *l.v, by_name);
    *out = l.v;
    *n = l.n;
    return 0;
}

void adm__queue_snapshot_free(adm__qsnap *v, size_t n)
{
    qlist l = {.v = v, .n = n};
    qlist_free(&l);
}

static json_t *queue_json(const qsnap *s, const char *node)
{
    char pb[SV_PID_FMT_LEN];
    bool running = !sv_pid_is_none(s->pid);
    json_t *o = rt_queue_json(s->name, &s->args);
    if (!o)
        return NULL;
    json_t *more = json_pack(
        "{s:b, s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:o}", "exclusive", s->args.exclusive, "node", node,
        "state", running ? "running" : "restarting", "pid", running ? sv_pid_str(s->pid, pb, sizeof pb) : "",
        "messages", (json_int_t)(s->ready + s->unacked), "messages_ready", (json_int_t)s->ready,
        "messages_unacknowledged", (json_int_t)s->unacked, "consumers", (json_int_t)s->consumers, "message_bytes_ready",
        (json_int_t)s->bytes, "memory", (json_int_t)(s->bytes + (s->ready + s->unacked) * MSG_OVERHEAD + 512),
        "log_damage", (json_int_t)s->damage, "message_stats",
        adm__message_stats(s->published, s->delivered, s->acked, s->rates));
    if (!more || json_object_update_new(o, more) < 0) {
        json_decref(o);
        return NULL;
    }
    return o;
}

/* GET /api/queues, /api/queues/%2F */
void adm__queues_list(adm_req *q, adm_resp *r)
{
    if (q->nsegs == 2 && !adm__vhost_ok(q->segs[1], r))
        return;
    qsnap *v;
    size_t n;
    int rc = adm__queue_snapshot(q, &v, &n);
    if (rc < 0) {
        adm__fail_rc(r, rc, "the queues");
        return;
    }
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < n; i++)
        if (json_array_append_new(arr, queue_json(&v[i], q->cfg->node_name)) < 0) {
            json_decref(arr);
            arr = NULL;
        }
    adm__queue_snapshot_free(v, n);
    adm__ok(r, arr);
}

/* One queue's snapshot, or a 404 in r. */
static bool find_queue(adm_req *q, adm_resp *r, qlist *l)
{
    if (!adm__vhost_ok(q->segs[1], r))
        return false;
    *l = (qlist){.only = q->segs[2]};
    int rc = adm__read(q, read_queues, l);
    if (rc < 0 || !l->n) {
        char what[RT_NAME_MAX + 16];
        snprintf(what, sizeof what, "queue %s", q->segs[2]);
        adm__fail_rc(r, rc < 0 ? rc : l->oom ? -ENOMEM : -ENOENT, what);
        qlist_free(l);
        return false;
    }
    return true;
}

void adm__queue_get(adm_req *q, adm_resp *r)
{
    qlist l;
    if (!find_queue(q, r, &l))
        return;
    adm__ok(r, queue_json(&l.v[0], q->cfg->node_name));
    qlist_free(&l);
}

static bool same_args(const rt_qargs *a, const rt_qargs *b)
{
    return a->durable == b->durable && a->auto_delete == b->auto_delete && a->exclusive == b->exclusive &&
           a->max_length == b->max_length && a->max_length_bytes == b->max_length_bytes && a->overflow == b->overflow &&
           a->message_ttl == b->message_ttl && a->expires == b->expires && a->has_dlx == b->has_dlx &&
           (!a->has_dlx || !strcmp(a->dlx, b->dlx)) && a->has_dlk == b->has_dlk &&
           (!a->has_dlk || !strcmp(a->dlk, b->dlk));
}

/* PUT /api/queues/%2F/NAME {"durable": true, "auto_delete": false, "arguments": {...}} */
void adm__queue_put(adm_req *q, adm_resp *r)
{
    /* RabbitMQ parses these as true/false or "true"/"false" (rabbitmqadmin
     * sends the strings). */
    static const char *const bools[] = {"durable", "auto_delete", NULL};
    if (!adm__vhost_ok(q->segs[1], r))
        return;
    json_t *body = adm__body_coerced(q, r, bools, NULL);
    if (!body)
        return;
    rt_req_queue req, got = {0};
    char err[300];
    int rc = rt_queue_req_json(body, q->segs[2], &req, "queue", err, sizeof err);
    json_decref(body);
    if (rc < 0) {
        adm__fail(r, MHD_HTTP_BAD_REQUEST, "bad_request", "%s", err);
        return;
    }
    if (!strncmp(req.name, "amq.", 4)) {
        adm__fail(r, MHD_HTTP_FORBIDDEN, "access_refused", "queue names starting with amq. are reserved");
        return;
    }
    /* RabbitMQ's queue.declare: configure on the queue; with a
     * dead-letter exchange, also write on it and read on the queue. */
    if (!adm__may(q, r, AMQP_PERM_CONFIGURE, "queue", req.name) ||
        (req.args.has_dlx && (!adm__may(q, r, AMQP_PERM_WRITE, "exchange", req.args.dlx) ||
                              !adm__may(q, r, AMQP_PERM_READ, "queue", req.name))))
        return;
    rc = rt_call(q->inbox, RT_REQ_DECLARE_QUEUE, &req, sizeof req, &got, sizeof got, ADM_CALL_MS);
    char what[RT_NAME_MAX + 16];
    snprintf(what, sizeof what, "queue %s", req.name);
    if (rc < 0)
        adm__fail_rc(r, rc, what);
    else if (got.exists && !same_args(&got.args, &req.args))
        adm__fail(r, MHD_HTTP_BAD_REQUEST, "precondition_failed",
                  "queue %s exists with other arguments (delete it first to change them)", req.name);
    else
        r->status = got.exists ? MHD_HTTP_NO_CONTENT : MHD_HTTP_CREATED;
}

/* DELETE /api/queues/%2F/NAME[?if-empty=true&if-unused=true] */
void adm__queue_delete(adm_req *q, adm_resp *r)
{
    if (!adm__vhost_ok(q->segs[1], r))
        return;
    rt_req_queue req = {0};
    if (strlen(q->segs[2]) > RT_NAME_MAX) {
        adm__fail(r, MHD_HTTP_NOT_FOUND, "not_found", "queue not found");
        return;
    }
    snprintf(req.name, sizeof req.name, "%s", q->segs[2]);
    if (!adm__may(q, r, AMQP_PERM_CONFIGURE, "queue", req.name))
        return;
    req.if_empty = adm__arg_true(q, "if-empty");
    req.if_unused = adm__arg_true(q, "if-unused");
    int rc = rt_call(q->inbox, RT_REQ_DELETE_QUEUE, &req, sizeof req, NULL, 0, ADM_CALL_MS);
    char what[RT_NAME_MAX + 16];
    snprintf(what, sizeof what, "queue %s", req.name);
    if (rc < 0)
        adm__fail_rc(r, rc, what);
    else
        adm__no_content(r);
}

/* DELETE /api/queues/%2F/NAME/contents: ready messages go; unacked stay. */
void adm__queue_purge(adm_req *q, adm_resp *r)
{
    qlist l;
    if (!adm__vhost_ok(q->segs[1], r) || !adm__may(q, r, AMQP_PERM_READ, "queue", q->segs[2]))
        return;
    if (!find_queue(q, r, &l))
        return;
    sv_pid pid = l.v[0].pid;
    qlist_free(&l);
    sv_msg *req = sv_msg_new(RT_Q_PURGE, NULL, 0), *reply;
    int rc = req ? sv_call(q->inbox, pid, req, ADM_CALL_MS, &reply) : -ENOMEM;
    if (rc < 0) {
        adm__fail_rc(r, rc == -ESRCH ? -ENOENT : rc, "queue");
        return;
    }
    sv_msg_free(reply);
    adm__no_content(r);
}
