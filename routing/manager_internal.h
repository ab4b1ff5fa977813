/* manager_internal.h — shared by the routing manager's three files only.
 *
 * manager.c is the process (requests, queues, init and terminate, the
 * routing subtree); manager_defs.c keeps durable definitions on disk and
 * brings them back at boot; manager_bindings.c declares and deletes
 * exchanges and bindings. All of it runs on the manager's turn: nothing
 * here is for another process to call.
 */
#ifndef PLEXUS_RT_MANAGER_INTERNAL_H
#define PLEXUS_RT_MANAGER_INTERNAL_H

#include "routing/rt_internal.h"

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
    uint64_t gen;            /* for generated queue names */
    bool defs_dirty;         /* durable definitions changed since the last write began */
    bool saving;             /* a write is with the store */
    waitlist next, inflight; /* answered when the next write, or the one under way, is on disk */
    pending_bind *pending;   /* while not empty the file is not rewritten: it holds these */
} manager;

/* manager.c */
void rt__mgr_answer(sv_from to, const void *data, size_t len);
rt_queue *rt__mgr_queue_new(const rt_req_queue *r);
/* Asks the queue supervisor to start q's process; w (if any) is answered
 * when it has. */
int rt__mgr_start_process(sv_proc *self, manager *mg, rt_queue *q, waiter *w);
starting *rt__mgr_find_starting(manager *mg, const char *name);

/* manager_defs.c: the definitions file (DATA/definitions.json) and boot. */
void rt__mgr_defs_changed(sv_proc *self, manager *mg, const sv_from *from);
void rt__mgr_answer_change(sv_proc *self, manager *mg, sv_msg *req, bool durable);
void rt__mgr_answer_all(waitlist *w, int status);
void rt__mgr_save_defs(sv_proc *self, manager *mg);
void rt__mgr_restore_bindings(sv_proc *self, manager *mg, const char *queue, bool up);
void rt__mgr_recover_queues(sv_proc *self, manager *mg);
void rt__mgr_restore_defs(manager *mg);

/* manager_bindings.c: each request handler answers req itself. */
void rt__mgr_declare_exchange(sv_proc *self, manager *mg, sv_msg *req);
void rt__mgr_delete_exchange(sv_proc *self, manager *mg, sv_msg *req);
void rt__mgr_bind(sv_proc *self, manager *mg, sv_msg *req);
void rt__mgr_unbind(sv_proc *self, manager *mg, sv_msg *req);
int rt__mgr_exchange_declare(rt_req_exchange *r);                   /* 1: created, 0: there already, or an error */
int rt__mgr_binding_add(rt_req_bind *b, size_t len, bool *durable); /* 1: bound, 0: bound already, or an error */
/* Drops every binding whose destination is the queue (or exchange) name. */
void rt__mgr_unbind_dest(const char *name, bool to_exchange);

#endif
