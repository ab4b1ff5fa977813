/* inbox.c — mailboxes for threads that are not schedulers.
 *
 * The main thread, tests and tools take part in the runtime through an
 * inbox: a process-table entry whose messages are read by a blocking,
 * selective sv_recv instead of a scheduler. An inbox always traps exits (a
 * thread cannot be killed by a signal from a linked process).
 */
#include <errno.h>
#include <stdlib.h>
#include <time.h>

#include "sv_internal.h"

#define F_FILTERED (1 << 8) /* went through sv__filter once already */

sv_proc *sv_inbox_open(void)
{
    if (sv__tls_sched || sv__tls_proc || !atomic_load(&sv__n.running))
        return NULL; /* one inbox per thread, and never on a scheduler */
    sv_proc *p = sv__proc_alloc();
    pthread_cond_t *cond = malloc(sizeof *cond);
    if (!p || !cond) {
        free(p);
        free(cond);
        return NULL;
    }
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(cond, &ca);
    pthread_condattr_destroy(&ca);
    p->cond = cond;
    p->cap = sv__n.mailbox_cap;
    p->trap_exit = true;
    p->status = SV__LIVE;
    if (sv__table_alloc(p) < 0) {
        pthread_cond_destroy(cond);
        free(cond);
        free(p);
        return NULL;
    }
    atomic_fetch_add(&sv__n.inboxes, 1);
    sv__tls_proc = p;
    return p;
}

void sv_inbox_close(sv_proc *p)
{
    if (!p)
        return;
    sv__slot *s = p->slot;
    pthread_mutex_lock(&s->lock);
    s->gen++;
    s->proc = NULL;
    sv__mq_splice(&p->sigs, &p->in_sigs);
    sv__mq_splice(&p->msgs, &p->in_msgs);
    pthread_mutex_unlock(&s->lock);
    sv_msg *m;
    while ((m = sv__mq_pop(&p->sigs))) {
        if (m->kind == SV__SIG_LINK)
            sv__send_system(m->from, p, SV__SIG_EXIT, 0, SV_NORMAL, SV__F_LINKED);
        else if (m->kind == SV__SIG_MONITOR)
            sv__send_system(m->from, p, SV_MSG_DOWN, m->ref, SV_NORMAL, 0);
        sv_msg_free(m);
    }
    while ((m = sv__mq_pop(&p->msgs)))
        sv_msg_free(m);
    sv__registry_drop_pid(p->pid);
    sv__proc_notify_exit(p, SV_NORMAL);
    sv__table_release(s, p->pid.index);
    pthread_cond_destroy(p->cond);
    free(p->cond);
    sv__proc_free(p);
    atomic_fetch_sub(&sv__n.inboxes, 1);
    if (sv__tls_proc == p)
        sv__tls_proc = NULL;
}

/* Moves what arrived to the private lists; the caller holds the slot lock. */
static void inbox_take(sv_proc *p)
{
    sv__mq_splice(&p->sigs, &p->in_sigs);
    sv__mq_splice(&p->msgs, &p->in_msgs);
}

static sv_msg *inbox_scan(sv_proc *p, sv_match_fn match, void *ctx)
{
    sv_msg *m;
    int unused;
    while ((m = sv__mq_pop(&p->sigs)))
        sv__handle_signal(p, m, &unused); /* an inbox traps: exits become messages */
    sv_msg *prev = NULL;
    for (m = p->msgs.head; m;) {
        sv_msg *next = m->next;
        bool keep = true;
        if (!(m->flags & F_FILTERED)) {
            m->flags |= F_FILTERED;
            keep = sv__filter(p, m);
        }
        if (!keep || !match || match(m, ctx)) {
            if (prev)
                prev->next = next;
            else
                p->msgs.head = next;
            if (p->msgs.tail == m)
                p->msgs.tail = prev;
            m->next = NULL;
            if (!(m->flags & SV__F_SYSTEM))
                atomic_fetch_sub_explicit(&p->count, 1, memory_order_relaxed);
            if (keep) {
                m->flags &= ~F_FILTERED;
                return m;
            }
            sv_msg_free(m);
        } else {
            prev = m;
        }
        m = next;
    }
    return NULL;
}

sv_msg *sv_recv(sv_proc *p, int timeout_ms, sv_match_fn match, void *ctx)
{
    if (!p || !p->cond)
        return NULL;
    struct timespec deadline;
    clock_gettime(CLOCK_MONOTONIC, &deadline);
    if (timeout_ms >= 0) {
        deadline.tv_sec += timeout_ms / 1000;
        deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
        if (deadline.tv_nsec >= 1000000000L) {
            deadline.tv_sec++;
            deadline.tv_nsec -= 1000000000L;
        }
    }
    for (;;) {
        sv_msg *m = inbox_scan(p, match, ctx);
        if (m)
            return m;
        pthread_mutex_lock(&p->slot->lock);
        int rc = 0;
        while (!p->in_msgs.head && !p->in_sigs.head && rc == 0) {
            if (timeout_ms < 0)
                pthread_cond_wait(p->cond, &p->slot->lock);
            else
                rc = pthread_cond_timedwait(p->cond, &p->slot->lock, &deadline);
        }
        inbox_take(p);
        pthread_mutex_unlock(&p->slot->lock);
        if (rc != 0)
            return inbox_scan(p, match, ctx); /* timed out: one last look */
    }
}
