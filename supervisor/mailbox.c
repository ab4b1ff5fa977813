/* mailbox.c — the send path: pid -> slot -> bounded mailbox -> run queue.
 *
 * A send locks the target's slot for a few instructions: check the
 * generation, check the bound, append, and note whether the process must be
 * scheduled. Ordinary messages count against the bound and are refused with
 * -EAGAIN when it is reached; system messages (exit signals, DOWN, replies,
 * timer messages) are not counted, because each answers something the
 * receiver set up itself (a link, monitor, call or timer), which bounds them.
 */
#include <errno.h>
#include <string.h>

#include "sv_internal.h"

int sv__deliver(sv_pid to, sv_msg *m)
{
    if (to.node != sv__n.id)
        return sv_pid_is_none(to) ? -ESRCH : -EHOSTUNREACH;
    if (to.creation != sv__n.creation)
        return -ESRCH; /* a pid from an earlier run of this node */
    sv__slot *s = sv__table_slot(to.index);
    if (!s)
        return -ESRCH;

    bool counted = !(m->flags & SV__F_SYSTEM);
    pthread_mutex_lock(&s->lock);
    sv_proc *p = s->proc;
    if (!p || s->gen != to.gen) {
        pthread_mutex_unlock(&s->lock);
        return -ESRCH;
    }
    if (counted) {
        if (atomic_load_explicit(&p->count, memory_order_relaxed) >= p->cap) {
            pthread_mutex_unlock(&s->lock);
            return -EAGAIN;
        }
        atomic_fetch_add_explicit(&p->count, 1, memory_order_relaxed);
    }
    sv__mq_push(sv__is_signal(m) ? &p->in_sigs : &p->in_msgs, m);
    bool schedule = false;
    if (p->cond) {
        pthread_cond_signal(p->cond);
    } else if (!p->queued) {
        p->queued = true;
        schedule = true;
    }
    pthread_mutex_unlock(&s->lock);
    /* Safe after the unlock: a process that is not queued is not running,
     * so it cannot end before the scheduler has run it. */
    if (schedule)
        sv__sched_ready(p);
    return 0;
}

static sv_pid current_pid(void) { return sv__tls_proc ? sv__tls_proc->pid : SV_PID_NONE; }

static int send_kind(sv_pid to, sv_msg *m, uint16_t kind)
{
    if (!m)
        return -EINVAL;
    m->kind = kind;
    m->flags = 0;
    m->from = current_pid();
    return sv__deliver(to, m);
}

int sv_send(sv_pid to, sv_msg *m) { return send_kind(to, m, SV_MSG_INFO); }

int sv_send_owed(sv_pid to, sv_msg *m)
{
    if (!m)
        return -EINVAL;
    m->kind = SV_MSG_INFO;
    m->flags = SV__F_SYSTEM;
    m->from = current_pid();
    return sv__deliver(to, m);
}
int sv_cast(sv_pid to, sv_msg *m) { return send_kind(to, m, SV_MSG_CAST); }

int sv_send_tag(sv_pid to, uint32_t tag, const void *data, size_t len)
{
    sv_msg *m = sv_msg_new(tag, data, len);
    if (!m)
        return -ENOMEM;
    int rc = sv_send(to, m);
    if (rc < 0)
        sv_msg_free(m);
    return rc;
}

int sv__send_system(sv_pid to, sv_proc *sender, uint16_t kind, uint64_t ref, int status, uint16_t flags)
{
    sv_msg *m = sv_msg_new(0, NULL, 0);
    if (!m)
        return -ENOMEM;
    m->kind = kind;
    m->flags = flags | SV__F_SYSTEM;
    m->from = sender ? sender->pid : current_pid();
    m->ref = ref;
    m->status = status;
    int rc = sv__deliver(to, m);
    if (rc < 0)
        sv_msg_free(m);
    return rc;
}

/* Like every send, leaves reply with the caller on failure (sv.h). */
static int reply_with(sv_from to, sv_msg *reply, int status)
{
    reply->kind = SV_MSG_REPLY;
    reply->flags = SV__F_SYSTEM;
    reply->from = current_pid();
    reply->ref = to.ref;
    reply->status = status;
    return sv__deliver(to.pid, reply);
}

int sv_reply(sv_from to, sv_msg *reply) { return reply ? reply_with(to, reply, 0) : -EINVAL; }

int sv_reply_data(sv_from to, const void *data, size_t len)
{
    sv_msg *m = sv_msg_new(0, data, len);
    if (!m)
        return -ENOMEM;
    int rc = reply_with(to, m, 0);
    if (rc < 0)
        sv_msg_free(m);
    return rc;
}

int sv_reply_error(sv_from to, int status)
{
    sv_msg *m = sv_msg_new(0, NULL, 0);
    if (!m)
        return -ENOMEM;
    int rc = reply_with(to, m, status < 0 ? status : -EINVAL);
    if (rc < 0)
        sv_msg_free(m);
    return rc;
}

uint32_t sv_mailbox_len(sv_pid pid)
{
    if (!sv_pid_is_local(pid))
        return 0;
    sv__slot *s = sv__table_slot(pid.index);
    if (!s)
        return 0;
    uint32_t n = 0;
    pthread_mutex_lock(&s->lock);
    if (s->proc && s->gen == pid.gen)
        n = atomic_load_explicit(&s->proc->count, memory_order_relaxed);
    pthread_mutex_unlock(&s->lock);
    return n;
}

int sv_process_info(sv_pid pid, sv_proc_info *out)
{
    sv__slot *s = sv_pid_is_local(pid) ? sv__table_slot(pid.index) : NULL;
    if (!s)
        return -ESRCH;
    int rc = -ESRCH;
    pthread_mutex_lock(&s->lock);
    sv_proc *p = s->proc;
    if (p && s->gen == pid.gen) {
        /* ops and sched are set before a process is published in its
         * slot and never change: safe to read under the slot lock. */
        out->behaviour = p->ops && p->ops->name ? p->ops->name : p->cond ? "inbox" : "process";
        out->mailbox = atomic_load_explicit(&p->count, memory_order_relaxed);
        out->scheduler = p->sched ? p->sched->index : -1;
        rc = 0;
    }
    pthread_mutex_unlock(&s->lock);
    return rc;
}

bool sv_is_alive(sv_pid pid)
{
    if (!sv_pid_is_local(pid))
        return false;
    sv__slot *s = sv__table_slot(pid.index);
    if (!s)
        return false;
    pthread_mutex_lock(&s->lock);
    bool alive = s->proc && s->gen == pid.gen;
    pthread_mutex_unlock(&s->lock);
    return alive;
}
