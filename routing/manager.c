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
 * holds it (manager_defs.c); exchanges and bindings are changed in
 * manager_bindings.c.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "routing/manager_internal.h"

#define MANAGER_NAME "rt_manager"
#define QUEUE_SUP_NAME "rt_queue_sup"
#define SUP_TIMEOUT_MS 30000

static rt_config cfg = {.queue_mailbox = 0, .queue_max_batch = 256};

const rt_config *rt__config(void) { return &cfg; }

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

void rt__mgr_answer(sv_from to, const void *data, size_t len)
{
    sv_reply_data(to, data, len); /* a caller gone meanwhile has no use for it */
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

int rt__mgr_start_process(sv_proc *self, manager *mg, rt_queue *q, waiter *w)
{
    sv_child_spec spec = {
        .id = q->name, .start = queue_child_start, .arg = q, .restart = SV_PERMANENT, .shutdown_ms = 5000};
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

starting *rt__mgr_find_starting(manager *mg, const char *name)
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

rt_queue *rt__mgr_queue_new(const rt_req_queue *r)
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
    rt__mgr_answer(to, &r, sizeof r);
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
        snprintf(r->name, sizeof r->name, "amq.gen-%08x-%llu", sv_self(self).creation, (unsigned long long)++mg->gen);
    }
    rt_queue *q = rt_queue_find(r->name);
    starting *st = q ? NULL : rt__mgr_find_starting(mg, r->name);
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
    q = rt__mgr_queue_new(r);
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
    int rc = rt__mgr_start_process(self, mg, q, w);
    if (rc < 0) {
        free(w);
        rt__queue_unref(q);
        sv_reply_error(sv_from_of(req), rc);
    }
}

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
        rt__mgr_restore_bindings(self, mg, st.q->name, status == 0);
    if (status < 0) {
        sv_log(SV_LOG_ERROR, "queue %s: its process did not start (%d)", st.q->name, status);
        rt__queue_unref(st.q);
    } else if (durable) {
        rt__mgr_defs_changed(self, mg, NULL);
    }
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
    rt__mgr_unbind_dest(q->name, false);
    if (q->args.durable && !q->args.exclusive)
        rt__mgr_defs_changed(self, mg, NULL);
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
        rt__mgr_answer(d.from, NULL, 0);
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

/* --------------------------------------------------------------- process */

static int manager_call(sv_proc *self, sv_msg *req)
{
    manager *mg = sv_state(self);
    switch (req->tag) {
    case RT_REQ_DECLARE_QUEUE: declare_queue(self, mg, req); return 0;
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
            rt__mgr_answer(sv_from_of(req), NULL, 0);
        return 0;
    }
    case RT_REQ_DECLARE_EXCHANGE: rt__mgr_declare_exchange(self, mg, req); return 0;
    case RT_REQ_DELETE_EXCHANGE: rt__mgr_delete_exchange(self, mg, req); return 0;
    case RT_REQ_BIND: rt__mgr_bind(self, mg, req); return 0;
    case RT_REQ_UNBIND: rt__mgr_unbind(self, mg, req); return 0;
    default: sv_reply_error(sv_from_of(req), -ENOTSUP); return 0;
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
        rt__mgr_answer_all(&mg->inflight, m->status == 0 ? 0 : -EIO);
        if (mg->defs_dirty && !mg->pending)
            rt__mgr_save_defs(self, mg);
    }
    return 0;
}

static bool booted; /* durable queues were found again (once per node start) */

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
        if (rt__mgr_start_process(a->self, a->mg, q, NULL) < 0)
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
    } builtin[] = {{"amq.direct", RT_DIRECT},
                   {"amq.fanout", RT_FANOUT},
                   {"amq.topic", RT_TOPIC},
                   {"amq.headers", RT_HEADERS},
                   {"amq.match", RT_HEADERS}};
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
        rt__mgr_recover_queues(self, mg);
        rt__mgr_restore_defs(mg);
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
        rt__mgr_save_defs(self, mg);
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
    {.id = "queues",
     .start = queue_sup_start,
     .restart = SV_PERMANENT,
     .shutdown_ms = SV_SHUTDOWN_INFINITY,
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
