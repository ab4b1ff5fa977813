/* manager.c — the routing manager: the one writer of every definition.
 *
 * Queues, exchanges and bindings change only here, one request at a time,
 * so the lock-free tables publishers read need no writer locks (and later,
 * for clustering, this is the one place that talks to Raft). Queue
 * processes run under the queue supervisor; the manager asks it to start
 * and delete them, asynchronously, answering the requester when that is
 * done. A manager restarted after a crash adopts what the directory holds:
 * the directory, not the manager's memory, is the truth.
 *
 *   routing (rest_for_one)
 *   ├── store            (the message store's threads: disk I/O of durable queues)
 *   ├── queue supervisor (one_for_one, one child per queue)
 *   └── manager          (restarted with the queues, restarts their processes)
 *
 * Durable queues are found again at boot from their logs' directories
 * (each holds a queue.meta naming the queue and its arguments); durable
 * exchanges and bindings from DATA/definitions.json, which the manager
 * rewrites after each change to them, answering the change once the file
 * holds it.
 */
#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <proton/codec.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "routing/rt_internal.h"

#define MANAGER_NAME "rt_manager"
#define QUEUE_SUP_NAME "rt_queue_sup"
#define SUP_TIMEOUT_MS 30000

static rt_config cfg = {.queue_mailbox = 0, .queue_max_batch = 256};

const rt_config *rt__config(void) { return &cfg; }

/* A declare waiting for its queue's process to start. */
typedef struct waiter {
    sv_from from;
    struct waiter *next;
} waiter;

typedef struct starting {
    uint64_t k1, k2; /* k2: the start_child call ref */
    rt_queue *q;
    waiter *waiters;
} starting;

typedef struct deleting {
    uint64_t k1, k2; /* k2: the delete_child call ref */
    rt_queue *q;
    sv_from from;
    bool reply;
} deleting;

typedef struct owner {
    uint64_t k1, k2; /* the owning connection's pid */
    uint64_t mref;
} owner;

/* A binding from the definitions file waiting for its durable queue to
 * start again (at boot, queues come back asynchronously). */
typedef struct pending_bind {
    rt_def_bind b;
    struct pending_bind *next;
} pending_bind;

/* Requesters waiting for the definitions file to hold their change. */
typedef struct waitlist {
    sv_from *v;
    size_t n, cap;
} waitlist;

typedef struct manager {
    sv_map starting, deleting, owners;
    uint64_t gen; /* for generated queue names */
    bool defs_dirty;          /* durable definitions changed since the last write began */
    bool saving;              /* a write is with the store */
    waitlist next, inflight;  /* answered when the next write, or the one under way, is on disk */
    pending_bind *pending;    /* while not empty the file is not rewritten: it holds these */
} manager;

sv_pid rt_manager(void) { return sv_whereis(MANAGER_NAME); }

sv_msg *rt_req(rt_req_kind kind, const void *payload, size_t len) { return sv_msg_new(kind, payload, len); }

int rt_call(sv_proc *inbox, rt_req_kind kind, const void *payload, size_t len, void *reply_out, size_t reply_len,
            int timeout_ms)
{
    sv_msg *req = rt_req(kind, payload, len), *r;
    if (!req)
        return -ENOMEM;
    int rc = sv_call(inbox, rt_manager(), req, timeout_ms, &r);
    if (rc < 0)
        return rc;
    if (reply_out)
        memcpy(reply_out, r->data, r->len < reply_len ? r->len : reply_len);
    sv_msg_free(r);
    return 0;
}

static void answer(sv_from to, const void *data, size_t len)
{
    sv_reply_data(to, data, len); /* a caller gone meanwhile has no use for it */
}

static void save_defs(sv_proc *self, manager *mg);

/* Durable definitions changed: the definitions file is written again,
 * like group commit: at once if no write is under way, else once that one
 * is done, for every change made meanwhile. from (if not NULL) is
 * answered when the file holds the change, so a declare-ok means the
 * declaration survives a crash. */
static void defs_changed(sv_proc *self, manager *mg, const sv_from *from)
{
    if (!rt__store_dir()) {
        if (from)
            answer(*from, NULL, 0);
        return;
    }
    mg->defs_dirty = true;
    if (from) {
        if (rt__grow((void **)&mg->next.v, &mg->next.cap, mg->next.n + 1, sizeof *mg->next.v) < 0)
            answer(*from, NULL, 0); /* out of memory: it is written, just not waited for */
        else
            mg->next.v[mg->next.n++] = *from;
    }
    if (!mg->saving && !mg->pending)
        save_defs(self, mg);
}

/* Answers a change request: at once, or (a durable change) once the
 * definitions file holds it. */
static void answer_change(sv_proc *self, manager *mg, sv_msg *req, bool durable)
{
    sv_from from = sv_from_of(req);
    if (durable)
        defs_changed(self, mg, &from);
    else
        answer(from, NULL, 0);
}

static void answer_all(waitlist *w, int status)
{
    for (size_t i = 0; i < w->n; i++) {
        if (status == 0)
            answer(w->v[i], NULL, 0);
        else
            sv_reply_error(w->v[i], status);
    }
    w->n = 0;
}

static int owner_key(sv_pid p, uint64_t *k1, uint64_t *k2)
{
    *k1 = ((uint64_t)p.node << 32) | p.creation;
    *k2 = ((uint64_t)p.index << 32) | p.gen;
    return 0;
}

/* ------------------------------------------------------------- queues */

static int queue_child_start(sv_proc *sup, const sv_spawn_opts *opts, void *arg, sv_pid *pid)
{
    const rt_queue *q = arg;
    sv_spawn_opts o = *opts;
    o.mailbox_cap = cfg.queue_mailbox;
    o.scheduler = q->scheduler;
    return sv_spawn(sup, &rt__queue_ops, arg, &o, pid);
}

static int start_process(sv_proc *self, manager *mg, rt_queue *q, waiter *w)
{
    sv_child_spec spec = {.id = q->name, .start = queue_child_start, .arg = q, .restart = SV_PERMANENT,
                          .shutdown_ms = 5000};
    sv_msg *req = sv_sup_start_child_req(&spec);
    if (!req)
        return -ENOMEM;
    uint64_t ref;
    int rc = sv_call_async(self, sv_whereis(QUEUE_SUP_NAME), req, SUP_TIMEOUT_MS, &ref);
    if (rc < 0) {
        sv_msg_free(req);
        return rc;
    }
    starting *st = sv_map_put(&mg->starting, 0, ref);
    if (!st)
        return -ENOMEM; /* the reply will find nothing; the queue stays unlisted */
    st->q = q;
    st->waiters = w;
    return 0;
}

static starting *find_starting(manager *mg, const char *name)
{
    for (uint32_t i = 0; i < mg->starting.cap; i++) {
        starting *st = sv_map_at(&mg->starting, i);
        if (st && strcmp(st->q->name, name) == 0)
            return st;
    }
    return NULL;
}

static bool is_deleting(manager *mg, const char *name)
{
    for (uint32_t i = 0; i < mg->deleting.cap; i++) {
        deleting *d = sv_map_at(&mg->deleting, i);
        if (d && strcmp(d->q->name, name) == 0)
            return true;
    }
    return false;
}

static void watch_owner(sv_proc *self, manager *mg, sv_pid pid)
{
    uint64_t k1, k2;
    owner_key(pid, &k1, &k2);
    if (sv_map_get(&mg->owners, k1, k2))
        return;
    owner *o = sv_map_put(&mg->owners, k1, k2);
    if (o)
        o->mref = sv_monitor(self, pid);
}

static rt_queue *queue_new(const rt_req_queue *r)
{
    rt_queue *q = calloc(1, sizeof *q);
    if (!q || !(q->name = strdup(r->name))) {
        free(q);
        return NULL;
    }
    q->args = r->args;
    q->owner = r->args.exclusive ? r->owner : SV_PID_NONE;
    /* Beside the connection that declared it: a reply queue next to its
     * consumer, a work queue next to whoever came first, so deliveries
     * need no cross-thread wake-up. */
    q->scheduler = r->scheduler > 0 && r->scheduler <= sv_node_schedulers() ? r->scheduler : SV_SCHED_ANY;
    atomic_init(&q->pid, NULL);
    atomic_init(&q->refs, 1); /* the manager's */
    return q;
}

static void reply_queue(sv_from to, const rt_queue *q, bool exists)
{
    rt_req_queue r = {0};
    snprintf(r.name, sizeof r.name, "%s", q->name);
    r.args = q->args;
    r.owner = q->owner;
    r.exists = exists;
    answer(to, &r, sizeof r);
}

static void declare_queue(sv_proc *self, manager *mg, sv_msg *req)
{
    rt_req_queue *r = SV_MSG_AS(req, rt_req_queue);
    if (!r) {
        sv_reply_error(sv_from_of(req), -EINVAL);
        return;
    }
    r->name[RT_NAME_MAX] = '\0';
    if (!r->name[0]) {
        if (r->passive) {
            sv_reply_error(sv_from_of(req), -EINVAL);
            return;
        }
        snprintf(r->name, sizeof r->name, "amq.gen-%08x-%llu", sv_self(self).creation,
                 (unsigned long long)++mg->gen);
    }
    rt_queue *q = rt_queue_find(r->name);
    starting *st = q ? NULL : find_starting(mg, r->name);
    if (q || st) {
        rt_queue *rec = q ? q : st->q;
        if (rec->args.exclusive && !sv_pid_eq(rec->owner, r->owner)) {
            sv_reply_error(sv_from_of(req), -EBUSY); /* amqp:resource-locked */
            return;
        }
        if (q) {
            reply_queue(sv_from_of(req), q, true);
            return;
        }
        waiter *w = malloc(sizeof *w);
        if (!w) {
            sv_reply_error(sv_from_of(req), -ENOMEM);
            return;
        }
        *w = (waiter){sv_from_of(req), st->waiters};
        st->waiters = w;
        return;
    }
    if (r->passive) {
        sv_reply_error(sv_from_of(req), -ENOENT);
        return;
    }
    if (is_deleting(mg, r->name)) {
        sv_reply_error(sv_from_of(req), -EBUSY);
        return;
    }
    if (r->args.exclusive && sv_pid_is_none(r->owner)) {
        sv_reply_error(sv_from_of(req), -EINVAL);
        return;
    }
    q = queue_new(r);
    waiter *w = q ? malloc(sizeof *w) : NULL;
    if (!w) {
        free(q ? q->name : NULL);
        free(q);
        sv_reply_error(sv_from_of(req), -ENOMEM);
        return;
    }
    *w = (waiter){sv_from_of(req), NULL};
    q->fresh = true; /* a durable one answers once its log is on disk */
    if (q->args.exclusive)
        watch_owner(self, mg, q->owner);
    int rc = start_process(self, mg, q, w);
    if (rc < 0) {
        free(w);
        rt__queue_unref(q);
        sv_reply_error(sv_from_of(req), rc);
    }
}

static void restore_bindings(sv_proc *self, manager *mg, const char *queue, bool up);

static void started(sv_proc *self, manager *mg, uint64_t ref, int status)
{
    starting st;
    if (!sv_map_del(&mg->starting, 0, ref, &st))
        return;
    if (status == -EEXIST)
        status = 0; /* adopted while the queue supervisor was restarting it: it runs */
    if (status == 0 && (status = rt__dir_add(RT__QUEUES, st.q->name, st.q)) == 0)
        sv_log(SV_LOG_DEBUG, "queue %s declared", st.q->name);
    bool first = true;
    for (waiter *w = st.waiters, *next; w; w = next) {
        next = w->next;
        if (status == 0)
            reply_queue(w->from, st.q, !first);
        else
            sv_reply_error(w->from, status);
        first = false;
        free(w);
    }
    bool durable = st.q->args.durable && !st.q->args.exclusive;
    if (mg->pending)
        restore_bindings(self, mg, st.q->name, status == 0);
    if (status < 0) {
        sv_log(SV_LOG_ERROR, "queue %s: its process did not start (%d)", st.q->name, status);
        rt__queue_unref(st.q);
    } else if (durable) {
        defs_changed(self, mg, NULL);
    }
}

static bool binds_queue(const rt_binding *b, const void *name) { return !b->to_exchange && !strcmp(b->dest, name); }
static bool binds_exchange(const rt_binding *b, const void *name) { return b->to_exchange && !strcmp(b->dest, name); }

static void retire_bindings(rt_binding **gone, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++)
        sv_retire(gone[i], rt__binding_free);
    free(gone);
}

/* Replaces x's bindings with those drop() leaves; how many went. */
static uint32_t drop_bindings(rt_exchange *x, bool (*drop)(const rt_binding *, const void *), const void *ctx)
{
    rt_bindset *old = atomic_load(&x->bindings);
    if (!old)
        return 0;
    rt_binding **gone;
    uint32_t n;
    rt_bindset *nbs = rt__bindset_filter(old, drop, ctx, &gone, &n);
    if (!nbs) {
        sv_log(SV_LOG_ERROR, "exchange %s: out of memory changing bindings", x->name);
        return 0;
    }
    if (!n) {
        free(nbs);
        free(gone);
        return 0;
    }
    atomic_store_explicit(&x->bindings, nbs, memory_order_release);
    sv_retire(old, free);
    retire_bindings(gone, n);
    return n;
}

typedef struct unbind_all {
    bool (*drop)(const rt_binding *, const void *);
    const char *name;
} unbind_all;

static bool unbind_each(rt_exchange *x, void *ctx)
{
    unbind_all *u = ctx;
    drop_bindings(x, u->drop, u->name);
    return true;
}

static int delete_queue(sv_proc *self, manager *mg, rt_req_queue *r, sv_from from, bool reply)
{
    rt_queue *q = rt_queue_find(r->name);
    if (!q)
        return -ENOENT;
    if (r->if_unused && atomic_load(&q->consumers) > 0)
        return -EBUSY;
    if (r->if_empty && atomic_load(&q->ready) + atomic_load(&q->unacked) > 0)
        return -ENOTEMPTY;
    rt__dir_remove(RT__QUEUES, q->name);
    unbind_all u = {binds_queue, q->name};
    rt_exchange_each(unbind_each, &u);
    if (q->args.durable && !q->args.exclusive)
        defs_changed(self, mg, NULL);
    sv_msg *req = sv_sup_terminate_child_req(q->name, true);
    uint64_t ref;
    if (!req || sv_call_async(self, sv_whereis(QUEUE_SUP_NAME), req, SUP_TIMEOUT_MS, &ref) < 0) {
        sv_msg_free(req);
        rt__queue_unref(q); /* no supervisor to ask: nothing runs it */
        return 0;
    }
    deleting *d = sv_map_put(&mg->deleting, 0, ref);
    if (!d) {
        rt__queue_unref(q);
        return 0;
    }
    d->q = q;
    d->from = from;
    d->reply = reply;
    return 1; /* answered later */
}

/* A deleted durable queue's log goes too: asked of the same store thread
 * the queue used, after its last requests. */
static void forget_log(const char *name)
{
    char dir[4096];
    if (rt__queue_dir(name, dir, sizeof dir) < 0)
        return;
    sv_msg *m = sv_msg_new(RT__S_DESTROY, dir, strlen(dir) + 1);
    if (m && rt__store_send(rt__store_pid(name), m) < 0)
        sv_msg_free(m);
}

static void deleted(manager *mg, uint64_t ref)
{
    deleting d;
    if (!sv_map_del(&mg->deleting, 0, ref, &d))
        return;
    sv_log(SV_LOG_DEBUG, "queue %s deleted", d.q->name);
    if (d.q->args.durable && !d.q->args.exclusive)
        forget_log(d.q->name);
    rt__queue_unref(d.q);
    if (d.reply)
        answer(d.from, NULL, 0);
}

typedef struct owned {
    sv_pid owner;
    char (*names)[RT_NAME_MAX + 1];
    uint32_t n, cap;
} owned;

static bool collect_owned(rt_queue *q, void *ctx)
{
    owned *o = ctx;
    if (!sv_pid_eq(q->owner, o->owner))
        return true;
    if (o->n == o->cap) {
        uint32_t ncap = o->cap ? o->cap * 2 : 8;
        void *nn = realloc(o->names, ncap * sizeof *o->names);
        if (!nn)
            return false;
        o->names = nn;
        o->cap = ncap;
    }
    snprintf(o->names[o->n++], RT_NAME_MAX + 1, "%s", q->name);
    return true;
}

/* An exclusive queue's owner is gone: so are its queues. */
static void owner_down(sv_proc *self, manager *mg, sv_pid pid)
{
    uint64_t k1, k2;
    owner_key(pid, &k1, &k2);
    sv_map_del(&mg->owners, k1, k2, NULL);
    owned o = {.owner = pid};
    rt_queue_each(collect_owned, &o);
    for (uint32_t i = 0; i < o.n; i++) {
        rt_req_queue r = {0};
        snprintf(r.name, sizeof r.name, "%s", o.names[i]);
        delete_queue(self, mg, &r, (sv_from){SV_PID_NONE, 0}, false);
    }
    free(o.names);
}

/* ------------------------------------------------------------ exchanges */

static bool reserved(const char *name) { return !name[0] || !strncmp(name, "amq.", 4); }

/* 1: created, 0: there already, or an error. */
static int exchange_declare(rt_req_exchange *r)
{
    if ((unsigned)r->type > RT_HEADERS)
        return -EINVAL;
    r->name[RT_NAME_MAX] = '\0';
    rt_exchange *x = rt_exchange_find(r->name);
    if (x) /* redeclaring with another type is a precondition failure */
        return !r->passive && x->type != r->type ? -EEXIST : 0;
    if (r->passive)
        return -ENOENT;
    if (reserved(r->name))
        return -EPERM;
    x = rt__exchange_new(r->name, r->type, r->durable, r->auto_delete, r->internal);
    if (!x || rt__dir_add(RT__EXCHANGES, x->name, x) < 0) {
        if (x)
            rt__exchange_free(x);
        return -ENOMEM;
    }
    return 1;
}

static void declare_exchange(sv_proc *self, manager *mg, sv_msg *req)
{
    rt_req_exchange *r = SV_MSG_AS(req, rt_req_exchange);
    int rc = r ? exchange_declare(r) : -EINVAL;
    if (rc < 0) {
        sv_reply_error(sv_from_of(req), rc);
        return;
    }
    answer_change(self, mg, req, rc == 1 && r->durable);
}

static bool has_bindings(rt_exchange *x)
{
    rt_bindset *bs = atomic_load(&x->bindings);
    return bs && bs->n;
}

typedef struct is_dest {
    const char *name;
    bool found;
} is_dest;

static bool find_as_dest(rt_exchange *x, void *ctx)
{
    is_dest *d = ctx;
    rt_bindset *bs = atomic_load(&x->bindings);
    for (uint32_t i = 0; bs && i < bs->n; i++)
        if (binds_exchange(bs->b[i], d->name))
            d->found = true;
    return !d->found;
}

static int exchange_remove(const char *name)
{
    rt_exchange *x = rt__dir_remove(RT__EXCHANGES, name);
    if (!x)
        return -ENOENT;
    unbind_all u = {binds_exchange, name};
    rt_exchange_each(unbind_each, &u);
    sv_retire(x, rt__exchange_free);
    return 0;
}

static void delete_exchange(sv_proc *self, manager *mg, sv_msg *req)
{
    rt_req_exchange *r = SV_MSG_AS(req, rt_req_exchange);
    if (!r) {
        sv_reply_error(sv_from_of(req), -EINVAL);
        return;
    }
    r->name[RT_NAME_MAX] = '\0';
    rt_exchange *x = rt_exchange_find(r->name);
    int rc = !x ? -ENOENT : reserved(r->name) ? -EPERM : 0;
    if (rc == 0 && r->if_unused) {
        is_dest d = {r->name, false};
        rt_exchange_each(find_as_dest, &d);
        if (has_bindings(x) || d.found)
            rc = -EBUSY;
    }
    bool durable = x && x->durable;
    if (rc == 0)
        rc = exchange_remove(r->name);
    if (rc < 0) {
        sv_reply_error(sv_from_of(req), rc);
        return;
    }
    answer_change(self, mg, req, durable);
}

/* ------------------------------------------------------------- bindings */

static int parse_binding(rt_req_bind *b, size_t len, rt_exchange **x, rt_hdrmatch **hm)
{
    if (!b || len < sizeof *b + b->args_len)
        return -EINVAL;
    b->source[RT_NAME_MAX] = b->dest[RT_NAME_MAX] = b->key[RT_NAME_MAX] = '\0';
    *x = rt_exchange_find(b->source);
    if (!*x)
        return b->source[0] ? -ENOENT : -EPERM; /* the default exchange takes no bindings */
    if (b->to_exchange ? !rt_exchange_find(b->dest) : !rt_queue_find(b->dest))
        return -ENOENT;
    *hm = NULL;
    if ((*x)->type != RT_HEADERS)
        return 0;
    pn_data_t *args = NULL;
    if (b->args_len) {
        args = pn_data(8);
        if (!args)
            return -ENOMEM;
        if (pn_data_decode(args, (const char *)(b + 1), b->args_len) <= 0) {
            pn_data_free(args);
            return -EINVAL;
        }
    }
    char err[128];
    int rc = rt_hdrmatch_new(args, hm, err, sizeof err);
    if (args)
        pn_data_free(args);
    return rc;
}

/* 1: bound, 0: bound already, or an error. *durable: whether it is a
 * binding the definitions file keeps (from a durable exchange). */
static int binding_add(rt_req_bind *b, size_t len, bool *durable)
{
    rt_exchange *x;
    rt_hdrmatch *hm = NULL;
    int rc = parse_binding(b, len, &x, &hm);
    if (rc < 0)
        return rc;
    *durable = x->durable;
    rt_binding *nb = rt__binding_new(b->key, b->dest, b->to_exchange, hm);
    if (!nb) {
        rt_hdrmatch_free(hm);
        return -ENOMEM;
    }
    rt_bindset *old = atomic_load(&x->bindings);
    for (uint32_t i = 0; old && i < old->n; i++) {
        if (rt__binding_same(old->b[i], nb)) { /* binding twice is binding once */
            rt__binding_free(nb);
            return 0;
        }
    }
    rt_bindset *nbs = rt__bindset_add(old, nb);
    if (!nbs) {
        rt__binding_free(nb);
        return -ENOMEM;
    }
    atomic_store_explicit(&x->bindings, nbs, memory_order_release);
    if (old)
        sv_retire(old, free);
    return 1;
}

static void bind(sv_proc *self, manager *mg, sv_msg *req)
{
    bool durable = false;
    int rc = binding_add(SV_MSG_AS(req, rt_req_bind), req->len, &durable);
    if (rc < 0) {
        sv_reply_error(sv_from_of(req), rc);
        return;
    }
    answer_change(self, mg, req, rc == 1 && durable);
}

static bool same_as(const rt_binding *b, const void *probe) { return rt__binding_same(b, probe); }

static void unbind(sv_proc *self, manager *mg, sv_msg *req)
{
    rt_req_bind *b = SV_MSG_AS(req, rt_req_bind);
    rt_exchange *x = NULL;
    rt_hdrmatch *hm = NULL;
    int rc = parse_binding(b, req->len, &x, &hm);
    if (rc == -ENOENT && b && (x = rt_exchange_find(b->source)) && x->type != RT_HEADERS)
        rc = 0; /* the destination may be gone already; its bindings went with it */
    if (rc < 0) {
        sv_reply_error(sv_from_of(req), rc);
        return;
    }
    rt_binding *probe = rt__binding_new(b->key, b->dest, b->to_exchange, hm);
    if (!probe) {
        rt_hdrmatch_free(hm);
        sv_reply_error(sv_from_of(req), -ENOMEM);
        return;
    }
    uint32_t n = drop_bindings(x, same_as, probe);
    rt__binding_free(probe);
    if (!n) {
        sv_reply_error(sv_from_of(req), -ENOENT);
        return;
    }
    bool durable = x->durable;
    if (x->auto_delete && !has_bindings(x))
        exchange_remove(x->name); /* its last binding went */
    answer_change(self, mg, req, durable);
}

/* --------------------------------------------------------------- process */

static int manager_call(sv_proc *self, sv_msg *req)
{
    manager *mg = sv_state(self);
    switch (req->tag) {
    case RT_REQ_DECLARE_QUEUE:
        declare_queue(self, mg, req);
        return 0;
    case RT_REQ_DELETE_QUEUE: {
        rt_req_queue *r = SV_MSG_AS(req, rt_req_queue);
        int rc = -EINVAL;
        if (r) {
            r->name[RT_NAME_MAX] = '\0';
            rc = delete_queue(self, mg, r, sv_from_of(req), true);
        }
        if (rc < 0)
            sv_reply_error(sv_from_of(req), rc);
        else if (rc == 0)
            answer(sv_from_of(req), NULL, 0);
        return 0;
    }
    case RT_REQ_DECLARE_EXCHANGE:
        declare_exchange(self, mg, req);
        return 0;
    case RT_REQ_DELETE_EXCHANGE:
        delete_exchange(self, mg, req);
        return 0;
    case RT_REQ_BIND:
        bind(self, mg, req);
        return 0;
    case RT_REQ_UNBIND:
        unbind(self, mg, req);
        return 0;
    default:
        sv_reply_error(sv_from_of(req), -ENOTSUP);
        return 0;
    }
}

static int manager_info(sv_proc *self, sv_msg *m)
{
    manager *mg = sv_state(self);
    if (m->kind == SV_MSG_REPLY) {
        started(self, mg, m->ref, m->status);
        deleted(mg, m->ref);
    } else if (m->kind == SV_MSG_DOWN) {
        owner_down(self, mg, m->from);
    } else if (m->tag == RT__S_FILE_DONE) {
        mg->saving = false;
        answer_all(&mg->inflight, m->status == 0 ? 0 : -EIO);
        if (mg->defs_dirty && !mg->pending)
            save_defs(self, mg);
    }
    return 0;
}

static bool booted; /* durable queues were found again (once per node start) */

/* One queue.meta: the queue it describes, as a declare would give it. */
static int read_meta(const char *path, rt_req_queue *r)
{
    json_error_t jerr;
    json_t *doc = json_load_file(path, 0, &jerr);
    if (!doc)
        return -EBADMSG;
    memset(r, 0, sizeof *r);
    rt_qargs_init(&r->args);
    r->args.durable = true;
    int rc = 0;
    const char *name = json_string_value(json_object_get(doc, "name"));
    if (!name || !name[0] || strlen(name) > RT_NAME_MAX)
        rc = -EBADMSG;
    else
        snprintf(r->name, sizeof r->name, "%s", name);
    r->args.auto_delete = json_is_true(json_object_get(doc, "auto_delete"));
    const char *key;
    json_t *v;
    json_object_foreach(doc, key, v) {
        if (rc < 0 || strncmp(key, "x-", 2) != 0)
            continue;
        char err[160];
        if (json_is_integer(v) && json_integer_value(v) >= 0)
            rc = rt_qargs_set(&r->args, key, NULL, json_integer_value(v), true, err, sizeof err);
        else if (json_is_string(v))
            rc = rt_qargs_set(&r->args, key, json_string_value(v), 0, false, err, sizeof err);
        if (rc < 0)
            sv_log(SV_LOG_WARNING, "%s: %s", path, err);
    }
    json_decref(doc);
    return rc;
}

/* Declares again every durable queue that has a log in the data
 * directory. This reads a few small files on the manager's scheduler, at
 * boot, before any client is let in; the logs themselves are read by the
 * store threads as each queue starts. */
static void recover_queues(sv_proc *self, manager *mg)
{
    const char *data = rt__store_dir();
    if (!data)
        return;
    char qdir[4096];
    snprintf(qdir, sizeof qdir, "%s/queues", data);
    DIR *d = opendir(qdir);
    if (!d)
        return;
    struct dirent *e;
    unsigned n = 0;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char path[4096 + 300];
        snprintf(path, sizeof path, "%s/%s/queue.meta", qdir, e->d_name);
        rt_req_queue r;
        if (read_meta(path, &r) < 0) {
            sv_log(SV_LOG_WARNING, "store: %s/%s has no readable queue.meta; left alone", qdir, e->d_name);
            continue;
        }
        char expect[4096];
        if (rt__queue_dir(r.name, expect, sizeof expect) == 0 && strcmp(strrchr(expect, '/') + 1, e->d_name) != 0) {
            sv_log(SV_LOG_WARNING, "store: %s/%s describes queue %s, whose log lives elsewhere; left alone", qdir,
                   e->d_name, r.name);
            continue;
        }
        rt_queue *q = queue_new(&r);
        if (!q || start_process(self, mg, q, NULL) < 0) {
            sv_log(SV_LOG_ERROR, "queue %s: cannot start it again", r.name);
            if (q)
                rt__queue_unref(q);
            continue;
        }
        n++;
    }
    closedir(d);
    if (n)
        sv_log(SV_LOG_INFO, "%u durable queue%s found in %s", n, n == 1 ? "" : "s", qdir);
}

/* ---------------------------------------------------- definitions file */

/* DATA/definitions.json: the durable exchanges, queues and bindings in
 * RabbitMQ's definitions format (rt_definitions_export), rewritten whole,
 * atomically, by a store thread after each change (changes made while a
 * write is under way share the next one). Queues come
 * back from their own logs (queue.meta), not from this file: a queue is
 * durable from its first message, a file written a moment later could be
 * behind. The file brings back the exchanges and the bindings. */
static void save_defs(sv_proc *self, manager *mg)
{
    const char *data = rt__store_dir();
    if (!mg->defs_dirty || mg->pending || mg->saving || !data)
        return;
    json_t *doc = rt_definitions_export(true);
    char *text = doc ? json_dumps(doc, JSON_INDENT(2) | JSON_SORT_KEYS) : NULL;
    json_decref(doc);
    size_t len = text ? strlen(text) : 0;
    sv_msg *m = text ? sv_msg_new(RT__S_FILE, NULL, sizeof(rt__s_file) + len) : NULL;
    if (m) {
        rt__s_file *f = (rt__s_file *)(void *)m->data;
        snprintf(f->path, sizeof f->path, "%s/" RT_DEFS_FILE, data);
        f->reply_to = sv_self(self);
        f->len = (uint32_t)len;
        memcpy(f->data, text, len);
        if (rt__store_send(rt__store_pid(RT_DEFS_FILE), m) < 0) {
            sv_msg_free(m);
            m = NULL;
        }
    }
    free(text);
    if (!m) {
        sv_log(SV_LOG_ERROR, "cannot write %s/%s (out of memory or no store); tried again at the next change", data,
               RT_DEFS_FILE);
        answer_all(&mg->next, -EIO);
        return;
    }
    mg->defs_dirty = false;
    mg->saving = true;
    waitlist t = mg->inflight; /* empty: the last write was answered */
    mg->inflight = mg->next;
    mg->next = t;
}

/* Queue `queue` started (up) or could not: the bindings to it that the
 * definitions file held are made, or dropped. */
static void restore_bindings(sv_proc *self, manager *mg, const char *queue, bool up)
{
    for (pending_bind **pp = &mg->pending; *pp;) {
        pending_bind *p = *pp;
        if (strcmp(p->b.req->dest, queue) != 0) {
            pp = &p->next;
            continue;
        }
        bool durable;
        int rc = up ? binding_add(p->b.req, p->b.len, &durable) : -ENOENT;
        if (rc < 0)
            sv_log(SV_LOG_WARNING, "%s: binding from %s to queue %s not restored: %s", RT_DEFS_FILE,
                   p->b.req->source, queue, strerror(-rc));
        *pp = p->next;
        free(p->b.req);
        free(p);
    }
    if (!mg->pending && mg->defs_dirty)
        save_defs(self, mg);
}

/* At boot, after the durable queues were started again: the exchanges and
 * bindings of the definitions file. A binding to a queue waits for that
 * queue's process (restore_bindings). */
static void restore_defs(manager *mg)
{
    const char *data = rt__store_dir();
    if (!data)
        return;
    char path[4096];
    snprintf(path, sizeof path, "%s/" RT_DEFS_FILE, data);
    json_error_t jerr;
    json_t *doc = json_load_file(path, 0, &jerr);
    if (!doc) {
        if (access(path, F_OK) == 0) { /* written atomically, so this is damage from outside: keep it for a person */
            char bad[4096 + 8];
            snprintf(bad, sizeof bad, "%s.bad", path);
            sv_log(SV_LOG_ERROR, "%s: line %d: %s; exchanges and bindings not restored (file moved to %s)", path,
                   jerr.line, jerr.text, bad);
            rename(path, bad);
        }
        return;
    }
    rt_defs d;
    char err[400];
    int rc = rt_definitions_parse(doc, &d, err, sizeof err);
    json_decref(doc);
    if (rc < 0) {
        sv_log(SV_LOG_ERROR, "%s: %s; exchanges and bindings not restored", path, err);
        return;
    }
    unsigned nx = 0, nb = 0;
    for (size_t i = 0; i < d.nexchanges; i++) {
        d.exchanges[i].passive = false;
        if ((rc = exchange_declare(&d.exchanges[i])) < 0)
            sv_log(SV_LOG_WARNING, "%s: exchange %s not restored: %s", path, d.exchanges[i].name, strerror(-rc));
        nx += rc == 1;
    }
    for (size_t i = 0; i < d.nbindings; i++) {
        rt_def_bind *b = &d.bindings[i];
        bool durable;
        if (!b->req->to_exchange && !rt_queue_find(b->req->dest)) {
            pending_bind *p = find_starting(mg, b->req->dest) ? malloc(sizeof *p) : NULL;
            if (!p) {
                sv_log(SV_LOG_WARNING, "%s: binding from %s to queue %s not restored: no such durable queue", path,
                       b->req->source, b->req->dest);
                continue;
            }
            *p = (pending_bind){*b, mg->pending};
            mg->pending = p;
            b->req = NULL; /* the pending list has it */
            nb++;
        } else if ((rc = binding_add(b->req, b->len, &durable)) < 0) {
            sv_log(SV_LOG_WARNING, "%s: binding from %s to %s not restored: %s", path, b->req->source, b->req->dest,
                   strerror(-rc));
        } else {
            nb++;
        }
    }
    rt_defs_free(&d);
    sv_log(SV_LOG_INFO, "%u exchange%s and %u binding%s restored from %s", nx, nx == 1 ? "" : "s", nb,
           nb == 1 ? "" : "s", path);
}

typedef struct adopt_ctx {
    sv_proc *self;
    manager *mg;
} adopt_ctx;

/* A restarted manager takes over what the directory lists. */
static bool adopt(rt_queue *q, void *ctx)
{
    adopt_ctx *a = ctx;
    if (!sv_pid_is_none(q->owner)) {
        if (!sv_is_alive(q->owner)) {
            owner_down(a->self, a->mg, q->owner);
            return true;
        }
        watch_owner(a->self, a->mg, q->owner);
    }
    if (sv_pid_is_none(rt_queue_pid(q))) {
        /* Its process went with the queue supervisor: start it again, as
         * the directory still lists it. */
        rt__dir_remove(RT__QUEUES, q->name);
        if (start_process(a->self, a->mg, q, NULL) < 0)
            rt__queue_unref(q);
    }
    return true;
}

static int manager_init(sv_proc *self, void *arg)
{
    (void)arg;
    manager *mg = calloc(1, sizeof *mg);
    if (!mg)
        return -ENOMEM;
    mg->starting = SV_MAP_INIT(starting);
    mg->deleting = SV_MAP_INIT(deleting);
    mg->owners = SV_MAP_INIT(owner);
    int rc = sv_register(MANAGER_NAME, sv_self(self));
    if (rc < 0)
        goto fail;
    static const struct {
        const char *name;
        rt_xtype type;
    } builtin[] = {{"amq.direct", RT_DIRECT}, {"amq.fanout", RT_FANOUT}, {"amq.topic", RT_TOPIC},
                   {"amq.headers", RT_HEADERS}, {"amq.match", RT_HEADERS}};
    for (size_t i = 0; i < sizeof builtin / sizeof builtin[0]; i++) {
        if (rt_exchange_find(builtin[i].name))
            continue;
        rt_exchange *x = rt__exchange_new(builtin[i].name, builtin[i].type, true, false, false);
        if (!x || rt__dir_add(RT__EXCHANGES, x->name, x) < 0) {
            if (x)
                rt__exchange_free(x);
            rc = -ENOMEM;
            goto fail;
        }
    }
    sv_set_state(self, mg);
    adopt_ctx a = {self, mg};
    rt_queue_each(adopt, &a);
    if (!booted) { /* at boot; a restarted manager adopts what the directory lists instead */
        booted = true;
        recover_queues(self, mg);
        restore_defs(mg);
    }
    return 0;

fail:
    /* terminate does not run after a failed init (sv.h). mg holds nothing
     * yet; the name goes with the process, and the exchanges already added
     * are the directory's, as they are after a crash. */
    free(mg);
    return rc;
}

static void manager_terminate(sv_proc *self, int reason)
{
    (void)reason;
    manager *mg = sv_state(self);
    if (!mg)
        return;
    for (uint32_t i = 0; i < mg->starting.cap; i++) {
        starting *st = sv_map_at(&mg->starting, i);
        if (!st)
            continue;
        for (waiter *w = st->waiters, *next; w; w = next) {
            next = w->next;
            sv_reply_error(w->from, -ESHUTDOWN);
            free(w);
        }
        rt__queue_unref(st->q); /* never listed; its process, if it started, holds its own */
    }
    for (uint32_t i = 0; i < mg->deleting.cap; i++) {
        deleting *d = sv_map_at(&mg->deleting, i);
        if (d)
            rt__queue_unref(d->q);
    }
    if (mg->defs_dirty && !mg->pending) {
        mg->saving = false; /* the last change goes after the write under way (one store thread, in order) */
        save_defs(self, mg);
    }
    free(mg->next.v); /* their calls end with the manager's exit */
    free(mg->inflight.v);
    for (pending_bind *p = mg->pending, *next; p; p = next) {
        next = p->next;
        free(p->b.req);
        free(p);
    }
    sv_map_free(&mg->starting);
    sv_map_free(&mg->deleting);
    sv_map_free(&mg->owners);
    free(mg);
}

static const sv_server_ops manager_ops = {
    .name = "rt_manager",
    .init = manager_init,
    .handle_call = manager_call,
    .handle_info = manager_info,
    .terminate = manager_terminate,
};

/* ------------------------------------------------------------- subtree */

static int queue_sup_start(sv_proc *sup, const sv_spawn_opts *opts, void *arg, sv_pid *pid)
{
    (void)arg;
    /* Many queues, each restarted on its own: a high intensity, so one
     * queue crashing in a loop does not take the others down. */
    sv_sup_flags f = {SV_ONE_FOR_ONE, 100, 10000};
    int rc = sv_sup_spawn(sup, "queues", f, NULL, 0, opts, pid);
    if (rc == 0)
        sv_register(QUEUE_SUP_NAME, *pid);
    return rc;
}

static int manager_start(sv_proc *sup, const sv_spawn_opts *opts, void *arg, sv_pid *pid)
{
    return sv_spawn(sup, &manager_ops, arg, opts, pid);
}

static int store_start(sv_proc *sup, const sv_spawn_opts *opts, void *arg, sv_pid *pid)
{
    (void)arg;
    return rt__store_start(sup, opts, &cfg, pid);
}

/* The store first: queues need it to load their logs, and it stops last. */
static const sv_child_spec routing_children[] = {
    {.id = "store", .start = store_start, .restart = SV_PERMANENT, .shutdown_ms = SV_SHUTDOWN_INFINITY},
    {.id = "queues", .start = queue_sup_start, .restart = SV_PERMANENT, .shutdown_ms = SV_SHUTDOWN_INFINITY,
     .is_supervisor = true},
    {.id = "manager", .start = manager_start, .restart = SV_PERMANENT, .shutdown_ms = 5000},
};

int rt_start_fn(sv_proc *sup, const sv_spawn_opts *opts, void *arg, sv_pid *pid)
{
    const rt_config *c = arg;
    if (c) {
        cfg = *c;
        if (!cfg.queue_max_batch)
            cfg.queue_max_batch = 256;
    }
    if (!cfg.segment_size)
        cfg.segment_size = 16u << 20;
    if (!cfg.queue_window)
        cfg.queue_window = 8u << 20;
    sv_sup_flags f = {SV_REST_FOR_ONE, 10, 10000};
    return sv_sup_spawn(sup, "routing", f, routing_children, 3, opts, pid);
}

void rt_cleanup(void)
{
    rt__dir_clear(rt__queue_free, rt__exchange_free);
    booted = false;
}
