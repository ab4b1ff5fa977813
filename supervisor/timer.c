/* timer.c — send_after and cancel, on the owner's libuv loop.
 *
 * A timer belongs to the process that armed it and lives on that process's
 * scheduler, so arming and cancelling need no locks; when the owner ends,
 * its timers go with it. The message is built when the timer is armed, so
 * firing cannot fail for lack of memory.
 */
#include <errno.h>
#include <stdlib.h>

#include "sv_internal.h"

typedef struct sv__timer {
    uv_timer_t h;
    uint64_t ref;
    sv_pid to;
    sv_msg *m;
    sv_proc *owner;
} sv__timer;

static void timer_closed(uv_handle_t *h) { free(h->data); }

static void timer_fired(uv_timer_t *h)
{
    sv__timer *t = h->data;
    sv_map_del(&t->owner->timers, 0, t->ref, NULL);
    if (sv__deliver(t->to, t->m) < 0)
        sv_msg_free(t->m); /* the addressee is gone: nobody to tell */
    t->m = NULL;
    uv_close((uv_handle_t *)h, timer_closed);
}

static int timer_arm(sv_proc *self, uint64_t ms, sv_pid to, sv_msg *m, uint16_t kind, uint64_t *tref)
{
    if (!self || !m || !self->sched || self->sched != sv__tls_sched)
        return -EINVAL; /* only a process, on its own thread, owns timers */
    sv__timer *t = calloc(1, sizeof *t);
    if (!t)
        return -ENOMEM;
    t->ref = sv__new_ref();
    sv__ent *e = sv_map_put(&self->timers, 0, t->ref);
    if (!e) {
        free(t);
        return -ENOMEM;
    }
    e->ptr = t;
    uv_timer_init(&self->sched->loop, &t->h);
    /* The loop's clock is cached at its last poll, and a timer armed in a
     * turn (outside uv_run) counts from that: after a long batch, or on a
     * loaded machine, it fired early (80 ms after 72, seen under make
     * tsan). Count from now. */
    uv_update_time(&self->sched->loop);
    t->h.data = t;
    t->to = to;
    t->owner = self;
    t->m = m;
    m->kind = kind;
    m->flags = SV__F_SYSTEM;
    m->from = self->pid;
    uv_timer_start(&t->h, timer_fired, ms, 0);
    if (tref)
        *tref = t->ref;
    return 0;
}

int sv_send_after(sv_proc *self, uint64_t ms, sv_pid to, sv_msg *m, uint64_t *tref)
{
    return timer_arm(self, ms, to, m, SV_MSG_INFO, tref);
}

int sv__call_timer(sv_proc *self, uint64_t ms, uint64_t call_ref, uint64_t *tref)
{
    sv_msg *m = sv_msg_new(0, NULL, 0);
    if (!m)
        return -ENOMEM;
    m->ref = call_ref;
    int rc = timer_arm(self, ms, self->pid, m, SV__MSG_CALL_TIMEOUT, tref);
    if (rc < 0)
        sv_msg_free(m);
    return rc;
}

static void timer_drop(sv__timer *t)
{
    uv_timer_stop(&t->h);
    sv_msg_free(t->m);
    t->m = NULL;
    uv_close((uv_handle_t *)&t->h, timer_closed);
}

int sv_cancel_timer(sv_proc *self, uint64_t tref)
{
    sv__ent e;
    if (!self || !sv_map_del(&self->timers, 0, tref, &e))
        return -ENOENT;
    timer_drop(e.ptr);
    return 0;
}

void sv__timers_cancel_all(sv_proc *p)
{
    sv__ent *e;
    for (uint32_t i = 0; i < p->timers.cap; i++)
        if ((e = sv_map_at(&p->timers, i)))
            timer_drop(e->ptr);
    sv_map_free(&p->timers);
}

uint64_t sv_now_ms(void) { return uv_hrtime() / 1000000; }
