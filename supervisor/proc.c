/* proc.c — a process's life: spawn, a turn on its scheduler, signals, exit.
 *
 * A turn takes everything queued for the process in one locked splice, then
 * handles signals (links, monitors, exit signals) before ordinary messages,
 * so an exit signal ends a busy process promptly while the order of
 * messages from any one sender is kept. A process ends only during its own
 * turn on its own thread: that is what makes its private state lock-free.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "sv_internal.h"

#define TURN_BUDGET 64 /* messages per turn before others get the thread */

_Thread_local sv__sched *sv__tls_sched;
_Thread_local sv_proc *sv__tls_proc;

uint64_t sv__new_ref(void) { return atomic_fetch_add_explicit(&sv__n.next_ref, 1, memory_order_relaxed); }

/* ---------------------------------------------------------------- spawn */

int sv_spawn(sv_proc *self, const sv_server_ops *ops, void *arg, const sv_spawn_opts *opts, sv_pid *pid)
{
    static const sv_spawn_opts defaults = {0};
    if (!opts)
        opts = &defaults;
    if (!ops || !atomic_load(&sv__n.running))
        return -EINVAL;
    if ((opts->link || opts->ack || opts->monitor) && (!self || self != sv__tls_proc))
        return -EINVAL; /* links and monitors are set up by the spawner's own thread */
    sv__sched *sched = sv__sched_pick(self, opts->scheduler);
    if (!sched)
        return -EINVAL;

    sv_proc *p = sv__proc_alloc();
    if (!p)
        return -ENOMEM;
    p->sched = sched;
    p->ops = ops;
    p->init_arg = arg;
    p->cap = opts->mailbox_cap ? opts->mailbox_cap : sv__n.mailbox_cap;
    p->trap_exit = opts->trap_exit;
    p->ack = opts->ack;
    p->parent = self ? self->pid : SV_PID_NONE;
    p->queued = true; /* the scheduler owns its first turn */
    if (opts->label && !(p->label = strdup(opts->label))) {
        free(p);
        return -ENOMEM;
    }
    int rc = sv__table_alloc(p);
    if (rc < 0) {
        free(p->label);
        free(p);
        return rc;
    }
    /* Nobody else knows the pid yet, so both sides of a link or monitor can
     * be written here without signals: the spawn is atomic with them. */
    if (opts->link) {
        if (!sv_map_put(&p->links, sv__pid_k1(self->pid), sv__pid_k2(self->pid)) ||
            !sv_map_put(&self->links, sv__pid_k1(p->pid), sv__pid_k2(p->pid)))
            goto oom;
    }
    if (opts->monitor) {
        uint64_t ref = sv__new_ref();
        sv__ent *w = sv_map_put(&p->watchers, 0, ref);
        sv__ent *m = w ? sv_map_put(&self->monitors, 0, ref) : NULL;
        if (!m)
            goto oom;
        w->pid = self->pid;
        m->pid = p->pid;
        *opts->monitor = ref;
    }
    atomic_fetch_add(&sv__n.processes, 1);
    atomic_fetch_add(&sv__n.spawned, 1);
    if (pid)
        *pid = p->pid;
    sv__sched_ready(p);
    return 0;

oom:
    if (opts->link)
        sv_map_del(&self->links, sv__pid_k1(p->pid), sv__pid_k2(p->pid), NULL);
    pthread_mutex_lock(&p->slot->lock);
    p->slot->gen++;
    p->slot->proc = NULL;
    pthread_mutex_unlock(&p->slot->lock);
    sv__table_release(p->slot, p->pid.index);
    sv__proc_free(p);
    return -ENOMEM;
}

sv_proc *sv__proc_alloc(void)
{
    sv_proc *p = calloc(1, sizeof *p);
    if (p)
        p->links = p->monitors = p->watchers = p->calls = p->timers = SV__TAB_INIT;
    return p;
}

void sv__proc_free(sv_proc *p)
{
    sv_map_free(&p->links);
    sv_map_free(&p->monitors);
    sv_map_free(&p->watchers);
    sv_map_free(&p->calls);
    sv_map_free(&p->timers);
    free(p->label);
    free(p);
}

/* ------------------------------------------------------------ accessors */

sv_pid sv_self(sv_proc *self) { return self ? self->pid : SV_PID_NONE; }
sv_pid sv_parent(sv_proc *self) { return self->parent; }
void *sv_state(sv_proc *self) { return self->state; }
void sv_set_state(sv_proc *self, void *state) { self->state = state; }
const char *sv_label(sv_proc *self) { return self->label ? self->label : self->ops ? self->ops->name : "inbox"; }
int sv_scheduler_of(sv_proc *self) { return self->sched ? self->sched->index : -1; }
struct uv_loop_s *sv_loop(sv_proc *self) { return self->sched ? &self->sched->loop : NULL; }
void sv_trap_exit(sv_proc *self, bool on) { self->trap_exit = on; }

void sv_set_label(sv_proc *self, const char *label)
{
    char *l = label ? strdup(label) : NULL;
    if (label && !l)
        return; /* keep the old label rather than fail a caller over a name */
    free(self->label);
    self->label = l;
}

void sv_stop(sv_proc *self, int reason)
{
    if (!self->stop_pending) {
        self->stop_pending = true;
        self->stop_reason = reason;
    }
}

void sv_enter(sv_proc *self)
{
    if (self->enter_depth++ == 0 && self->sched)
        self->sched->entered++;
    sv__tls_proc = self;
}

void sv_leave(sv_proc *self)
{
    if (--self->enter_depth > 0)
        return;
    sv__tls_proc = NULL;
    if (!self->stop_pending)
        return;
    /* Ending happens in a turn, never inside a libuv callback: queue one. */
    pthread_mutex_lock(&self->slot->lock);
    bool schedule = !self->queued;
    self->queued = true;
    pthread_mutex_unlock(&self->slot->lock);
    if (schedule)
        sv__sched_ready(self);
}

void sv_init_ack(sv_proc *self, int status)
{
    if (status < 0) {
        sv_stop(self, status);
        return;
    }
    if (self->ack) {
        self->ack = false;
        sv__send_system(self->parent, self, SV_MSG_ACK, 0, 0, 0);
    }
}

/* --------------------------------------------------- links and monitors */

int sv_link(sv_proc *self, sv_pid other)
{
    if (!self || sv_pid_eq(self->pid, other))
        return -EINVAL;
    if (!sv_map_put(&self->links, sv__pid_k1(other), sv__pid_k2(other)))
        return -ENOMEM;
    int rc = sv__send_system(other, self, SV__SIG_LINK, 0, 0, 0);
    if (rc < 0) {
        /* Linking the dead: the link breaks at once, as if it had ended. */
        int why = rc == -EHOSTUNREACH ? SV_NOCONNECTION : SV_NOPROC;
        sv_msg *m = sv_msg_new(0, NULL, 0);
        if (!m)
            return -ENOMEM;
        m->kind = SV__SIG_EXIT;
        m->flags = SV__F_SYSTEM | SV__F_LINKED;
        m->from = other;
        m->status = why;
        if (sv__deliver(self->pid, m) < 0)
            sv_msg_free(m);
    }
    return 0;
}

int sv_unlink(sv_proc *self, sv_pid other)
{
    if (sv_map_del(&self->links, sv__pid_k1(other), sv__pid_k2(other), NULL))
        sv__send_system(other, self, SV__SIG_UNLINK, 0, 0, 0);
    return 0;
}

uint64_t sv_monitor(sv_proc *self, sv_pid other)
{
    uint64_t ref = sv__new_ref();
    sv__ent *e = sv_map_put(&self->monitors, 0, ref);
    if (!e)
        return 0;
    e->pid = other;
    int rc = sv__send_system(other, self, SV__SIG_MONITOR, ref, 0, 0);
    if (rc < 0) {
        sv_msg *m = sv_msg_new(0, NULL, 0);
        if (!m) {
            sv_map_del(&self->monitors, 0, ref, NULL);
            return 0;
        }
        m->kind = SV_MSG_DOWN;
        m->flags = SV__F_SYSTEM;
        m->from = other;
        m->ref = ref;
        m->status = rc == -EHOSTUNREACH ? SV_NOCONNECTION : SV_NOPROC;
        if (sv__deliver(self->pid, m) < 0)
            sv_msg_free(m);
    }
    return ref;
}

void sv_demonitor(sv_proc *self, uint64_t ref)
{
    sv__ent e;
    if (sv_map_del(&self->monitors, 0, ref, &e))
        sv__send_system(e.pid, self, SV__SIG_DEMONITOR, ref, 0, 0);
}

int sv_exit(sv_proc *self, sv_pid to, int reason)
{
    sv_msg *m = sv_msg_new(0, NULL, 0);
    if (!m)
        return -ENOMEM;
    m->kind = SV__SIG_EXIT;
    m->flags = SV__F_SYSTEM;
    m->from = self ? self->pid : SV_PID_NONE;
    m->status = reason;
    int rc = sv__deliver(to, m);
    if (rc < 0)
        sv_msg_free(m);
    return rc;
}

/* -------------------------------------------------------------- signals */

bool sv__handle_signal(sv_proc *p, sv_msg *sig, int *reason)
{
    bool die = false;
    switch (sig->kind) {
    case SV__SIG_LINK: sv_map_put(&p->links, sv__pid_k1(sig->from), sv__pid_k2(sig->from)); break;
    case SV__SIG_UNLINK: sv_map_del(&p->links, sv__pid_k1(sig->from), sv__pid_k2(sig->from), NULL); break;
    case SV__SIG_MONITOR: {
        sv__ent *e = sv_map_put(&p->watchers, 0, sig->ref);
        if (e)
            e->pid = sig->from;
        break;
    }
    case SV__SIG_DEMONITOR: sv_map_del(&p->watchers, 0, sig->ref, NULL); break;
    case SV__SIG_EXIT:
        if (sig->flags & SV__F_LINKED) {
            /* A link's signal counts only while the link stands. */
            if (!sv_map_del(&p->links, sv__pid_k1(sig->from), sv__pid_k2(sig->from), NULL))
                break;
        } else if (sig->status == SV_KILL) {
            die = true;
            *reason = SV_KILLED;
            break;
        }
        if (p->trap_exit) {
            sig->kind = SV_MSG_EXIT;
            sv__mq_push(&p->msgs, sig);
            return false;
        }
        if (sig->status != SV_NORMAL) {
            die = true;
            *reason = sig->status;
        }
        break;
    }
    sv_msg_free(sig);
    return die;
}

static int call_status_of(int reason)
{
    if (reason < 0)
        return reason;
    if (reason == SV_NOPROC)
        return -ESRCH;
    if (reason == SV_NOCONNECTION)
        return -EHOSTUNREACH;
    return -ECONNABORTED; /* the callee ended without answering */
}

/* Ends a pending call: forget it, stop its timer and its monitor. */
static bool call_finish(sv_proc *p, uint64_t ref)
{
    sv__ent c;
    if (!sv_map_del(&p->calls, 0, ref, &c))
        return false;
    if (c.aux)
        sv_cancel_timer(p, c.aux);
    sv_demonitor(p, ref);
    return true;
}

bool sv__filter(sv_proc *p, sv_msg *m)
{
    switch (m->kind) {
    case SV_MSG_DOWN:
        if (!sv_map_del(&p->monitors, 0, m->ref, NULL))
            return false; /* demonitored meanwhile */
        if (sv_map_get(&p->calls, 0, m->ref)) {
            call_finish(p, m->ref);
            m->kind = SV_MSG_REPLY;
            m->status = call_status_of(m->status);
        }
        return true;
    case SV_MSG_REPLY: return call_finish(p, m->ref); /* a late answer to a call that timed out is dropped */
    case SV__MSG_CALL_TIMEOUT: {
        sv__ent *call = sv_map_get(&p->calls, 0, m->ref);
        if (!call)
            return false;
        call->aux = 0; /* its timer is this message */
        call_finish(p, m->ref);
        m->kind = SV_MSG_REPLY;
        m->status = -ETIMEDOUT;
        return true;
    }
    default: return true;
    }
}

/* ------------------------------------------------------------------ exit */

void sv__proc_notify_exit(sv_proc *p, int reason)
{
    sv__ent *e;
    for (uint32_t i = 0; i < p->links.cap; i++)
        if ((e = sv_map_at(&p->links, i)))
            sv__send_system(sv__pid_of(e), p, SV__SIG_EXIT, 0, reason, SV__F_LINKED);
    for (uint32_t i = 0; i < p->watchers.cap; i++)
        if ((e = sv_map_at(&p->watchers, i)))
            sv__send_system(e->pid, p, SV_MSG_DOWN, e->k2, reason, 0);
    for (uint32_t i = 0; i < p->monitors.cap; i++)
        if ((e = sv_map_at(&p->monitors, i)))
            sv__send_system(e->pid, p, SV__SIG_DEMONITOR, e->k2, 0, 0);
    sv__timers_cancel_all(p);
    sv_map_free(&p->links);
    sv_map_free(&p->watchers);
    sv_map_free(&p->monitors);
    sv_map_free(&p->calls);
}

/* Answers what was still queued: a link or monitor that arrived too late
 * learns of the exit as if it had been in place; other messages go to the
 * process's discard callback, if it has one. */
static void drain(sv_proc *p, sv__mq *q, int reason)
{
    sv_msg *m;
    while ((m = sv__mq_pop(q))) {
        if (m->kind == SV__SIG_LINK)
            sv__send_system(m->from, p, SV__SIG_EXIT, 0, reason, SV__F_LINKED);
        else if (m->kind == SV__SIG_MONITOR)
            sv__send_system(m->from, p, SV_MSG_DOWN, m->ref, reason, 0);
        else if (m->kind < SV_MSG__SIGNAL && p->ops && p->ops->discard)
            p->ops->discard(m);
        sv_msg_free(m);
    }
}

static void proc_die(sv_proc *p, int reason)
{
    bool was_live = p->status == SV__LIVE;
    p->status = SV__DEAD;
    if (was_live && p->ops->terminate)
        p->ops->terminate(p, reason);
    if (sv_log_enabled(SV_LOG_DEBUG)) {
        char pb[SV_PID_FMT_LEN], rb[96];
        sv_log(SV_LOG_DEBUG, "process %s %s ended: %s", sv_label(p), sv_pid_str(p->pid, pb, sizeof pb),
               sv_reason_str(reason, rb, sizeof rb));
    }

    sv__slot *s = p->slot;
    pthread_mutex_lock(&s->lock);
    s->gen++;
    s->proc = NULL;
    sv__mq_splice(&p->sigs, &p->in_sigs);
    sv__mq_splice(&p->msgs, &p->in_msgs);
    pthread_mutex_unlock(&s->lock);
    /* From here no sender can reach p. */
    sv__registry_drop_pid(p->pid); /* before anyone hears of the exit */
    drain(p, &p->sigs, reason);
    drain(p, &p->msgs, reason);
    sv__proc_notify_exit(p, reason);

    sv__sched *sc = p->sched;
    if (p->prev)
        p->prev->next = p->next;
    else if (sc->procs == p)
        sc->procs = p->next;
    if (p->next)
        p->next->prev = p->prev;
    sv__table_release(s, p->pid.index);
    sv__proc_free(p);
    atomic_fetch_sub(&sv__n.processes, 1);
}

/* ------------------------------------------------------------------ turn */

static void dispatch(sv_proc *p, sv_msg *m)
{
    const sv_server_ops *ops = p->ops;
    int rc = 0;
    switch (m->kind) {
    case SV_MSG_CALL:
        if (ops->handle_call)
            rc = ops->handle_call(p, m);
        else
            sv_reply_error(sv_from_of(m), -ENOTSUP);
        break;
    case SV_MSG_CAST:
        if (ops->handle_cast)
            rc = ops->handle_cast(p, m);
        break;
    default:
        if (ops->handle_info)
            rc = ops->handle_info(p, m);
        break;
    }
    if (rc < 0)
        sv_stop(p, rc);
}

static void first_turn(sv_proc *p)
{
    sv__sched *sc = p->sched;
    p->next = sc->procs;
    if (sc->procs)
        sc->procs->prev = p;
    sc->procs = p;
    p->status = SV__LIVE;
    int rc = p->ops->init ? p->ops->init(p, p->init_arg) : 0;
    if (rc < 0) {
        /* The rule in sv.h: a failed init has undone its own work, so
         * terminate does not run, and any state it left set is stale. */
        p->status = SV__NEW;
        p->state = NULL;
        sv_stop(p, rc);
        p->stop_reason = rc;
        return;
    }
    if (rc == 0 && !p->stop_pending)
        sv_init_ack(p, 0);
}

void sv__proc_run(sv_proc *p)
{
    sv__tls_proc = p;
    if (p->status == SV__NEW && !p->stop_pending)
        first_turn(p);
    if (p->stop_pending)
        goto die;

    pthread_mutex_lock(&p->slot->lock);
    sv__mq_splice(&p->sigs, &p->in_sigs);
    sv__mq_splice(&p->msgs, &p->in_msgs);
    pthread_mutex_unlock(&p->slot->lock);

    sv_msg *m;
    while ((m = sv__mq_pop(&p->sigs))) {
        int reason;
        if (sv__handle_signal(p, m, &reason)) {
            sv_stop(p, reason);
            p->stop_reason = reason; /* an exit signal overrides a pending stop */
            goto die;
        }
    }
    for (int n = 0; n < TURN_BUDGET && (m = sv__mq_pop(&p->msgs)); n++) {
        if (!(m->flags & SV__F_SYSTEM))
            atomic_fetch_sub_explicit(&p->count, 1, memory_order_relaxed);
        if (sv__filter(p, m)) {
            dispatch(p, m);
            /* Only this scheduler writes its count, but sv_node_get_stats
             * reads it from any thread (/metrics): a relaxed atomic store,
             * not a plain ++, or the read is a data race (seen by TSan). */
            __atomic_store_n(&p->sched->messages, p->sched->messages + 1, __ATOMIC_RELAXED);
        }
        if (m->flags & SV__F_TAKEN)
            m->flags &= (uint16_t)~SV__F_TAKEN; /* the handler's now */
        else
            sv_msg_free(m);
        if (p->stop_pending)
            goto die;
    }

    pthread_mutex_lock(&p->slot->lock);
    bool more = p->msgs.head || p->sigs.head || p->in_msgs.head || p->in_sigs.head;
    if (!more)
        p->queued = false;
    pthread_mutex_unlock(&p->slot->lock);
    sv__tls_proc = NULL;
    if (more)
        sv__sched_ready(p);
    return;

die:
    proc_die(p, p->stop_reason);
    sv__tls_proc = NULL;
}
