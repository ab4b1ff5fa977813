/* call.c — request and reply between processes (OTP's gen_server:call).
 *
 * A call is a monitor plus a message, both under one ref: the reply, the
 * callee's DOWN, or the timeout, whichever comes first, ends it, and the
 * other two are then dropped by the filter in proc.c. An inbox waits for the
 * answer; a process gets it later as SV_MSG_REPLY, because a scheduler
 * thread must never block.
 */
#include <errno.h>

#include "sv_internal.h"

int sv__call_timer(sv_proc *self, uint64_t ms, uint64_t call_ref, uint64_t *tref);

static int call_begin(sv_proc *self, sv_pid to, sv_msg *req, uint64_t *ref)
{
    uint64_t r = sv_monitor(self, to);
    if (!r)
        return -ENOMEM;
    if (!sv_map_put(&self->calls, 0, r)) {
        sv_demonitor(self, r);
        return -ENOMEM;
    }
    req->kind = SV_MSG_CALL;
    req->flags = 0;
    req->from = self->pid;
    req->ref = r;
    int rc = sv__deliver(to, req);
    if (rc < 0) {
        sv_map_del(&self->calls, 0, r, NULL);
        sv_demonitor(self, r);
        return rc;
    }
    *ref = r;
    return 0;
}

static bool is_answer(const sv_msg *m, void *ctx) { return m->kind == SV_MSG_REPLY && m->ref == *(uint64_t *)ctx; }

int sv_call(sv_proc *inbox, sv_pid to, sv_msg *req, int timeout_ms, sv_msg **reply)
{
    *reply = NULL;
    if (!req)
        return -EINVAL;
    if (!inbox || inbox->sched || sv__tls_sched) {
        sv_msg_free(req);
        return -EDEADLK;
    }
    uint64_t ref;
    int rc = call_begin(inbox, to, req, &ref);
    if (rc < 0) {
        sv_msg_free(req);
        return rc;
    }
    sv_msg *m = sv_recv(inbox, timeout_ms, is_answer, &ref);
    if (!m) {
        sv_map_del(&inbox->calls, 0, ref, NULL);
        sv_demonitor(inbox, ref);
        return -ETIMEDOUT;
    }
    if (m->status < 0) {
        rc = m->status;
        sv_msg_free(m);
        return rc;
    }
    *reply = m;
    return 0;
}

int sv_call_async(sv_proc *self, sv_pid to, sv_msg *req, int timeout_ms, uint64_t *ref)
{
    if (!self || !req || !ref || !self->sched || self != sv__tls_proc)
        return -EINVAL;
    uint64_t r;
    int rc = call_begin(self, to, req, &r);
    if (rc < 0)
        return rc;
    if (timeout_ms >= 0) {
        uint64_t tref = 0;
        /* Cannot fail but for memory; the call then simply has no deadline. */
        sv__ent *call = sv_map_get(&self->calls, 0, r);
        if (sv__call_timer(self, (uint64_t)timeout_ms, r, &tref) == 0)
            call->aux = tref;
    }
    *ref = r;
    return 0;
}

static bool is_started(const sv_msg *m, void *ctx)
{
    const sv_msg *want = ctx; /* from: the child, ref: its monitor */
    return (m->kind == SV_MSG_ACK && sv_pid_eq(m->from, want->from)) || (m->kind == SV_MSG_DOWN && m->ref == want->ref);
}

int sv_start(sv_proc *inbox, const sv_server_ops *ops, void *arg, const sv_spawn_opts *opts, int timeout_ms,
             sv_pid *pid)
{
    if (!inbox || inbox->sched || sv__tls_sched)
        return -EDEADLK;
    sv_spawn_opts o = opts ? *opts : (sv_spawn_opts){0};
    uint64_t mref = 0;
    o.ack = true;
    o.monitor = &mref;
    sv_msg want = {0};
    int rc = sv_spawn(inbox, ops, arg, &o, &want.from);
    if (rc < 0)
        return rc;
    want.ref = mref;
    sv_msg *m = sv_recv(inbox, timeout_ms, is_started, &want);
    if (!m) {
        sv_demonitor(inbox, mref);
        sv_exit(inbox, want.from, SV_KILL);
        return -ETIMEDOUT;
    }
    if (m->kind == SV_MSG_DOWN) {
        rc = m->status < 0 ? m->status : -ECHILD; /* init failed, or ended before its ACK */
        sv_msg_free(m);
        return rc;
    }
    sv_msg_free(m);
    sv_demonitor(inbox, mref);
    if (pid)
        *pid = want.from;
    return 0;
}
