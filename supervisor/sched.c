/* sched.c — schedulers: one OS thread and one libuv loop each.
 *
 * A scheduler alternates between running processes that have work and
 * polling its loop for I/O and timers. A process made runnable by its own
 * scheduler goes straight onto the local run queue; one made runnable from
 * another thread goes through a short locked input list, and only a
 * scheduler that has announced it is going to sleep is woken (uv_async_send,
 * itself coalesced), so busy schedulers never pay for wake-ups. Before it
 * sleeps, a scheduler that has not been busy spins briefly (see spin()):
 * work that arrives meanwhile, from another scheduler or a socket, starts
 * in about a microsecond instead of after a thread wake-up.
 */
#include <errno.h>
#include <sched.h>
#include <stdlib.h>

#include "sv_internal.h"

#define RUN_BATCH 128 /* process turns between two polls of the loop */

static void local_push(sv__sched *s, sv_proc *p)
{
    p->run_next = NULL;
    if (s->run_tail)
        s->run_tail->run_next = p;
    else
        s->run_head = p;
    s->run_tail = p;
}

void sv__sched_ready(sv_proc *p)
{
    sv__sched *s = p->sched;
    if (s == sv__tls_sched) {
        local_push(s, p);
        /* A timer or I/O callback inside uv_run made work: don't let this
         * iteration block in poll. (Outside uv_run, a stop would make the
         * next poll skip I/O altogether.) */
        if (s->in_uv)
            uv_stop(&s->loop);
        return;
    }
    pthread_mutex_lock(&s->in_lock);
    p->run_next = NULL;
    if (s->in_tail)
        s->in_tail->run_next = p;
    else
        s->in_head = p;
    s->in_tail = p;
    atomic_store_explicit(&s->has_input, 1, memory_order_seq_cst);
    pthread_mutex_unlock(&s->in_lock);
    /* Pairs with the scheduler's store of `sleeping` then load of
     * `has_input`: one of the two sides sees the other's store. */
    if (atomic_load_explicit(&s->sleeping, memory_order_seq_cst)) {
        __atomic_fetch_add(&s->wakeups, 1, __ATOMIC_RELAXED);
        uv_async_send(&s->wake);
    }
}

static void take_input(sv__sched *s)
{
    if (!atomic_load_explicit(&s->has_input, memory_order_acquire))
        return;
    pthread_mutex_lock(&s->in_lock);
    sv_proc *h = s->in_head, *t = s->in_tail;
    s->in_head = s->in_tail = NULL;
    atomic_store_explicit(&s->has_input, 0, memory_order_relaxed);
    pthread_mutex_unlock(&s->in_lock);
    if (!h)
        return;
    if (s->run_tail)
        s->run_tail->run_next = h;
    else
        s->run_head = h;
    s->run_tail = t;
}

static void run_batch(sv__sched *s)
{
    for (int i = 0; i < RUN_BATCH && s->run_head; i++) {
        sv_proc *p = s->run_head;
        s->run_head = p->run_next;
        if (!s->run_head)
            s->run_tail = NULL;
        sv__proc_run(p);
    }
}

static void on_wake(uv_async_t *h) { (void)h; /* the point was to return from poll */ }

#define STOP_GRACE_MS 3000

static void close_any(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

static void on_grace_over(uv_timer_t *t)
{
    /* Something never closed: close it without its callback (a small leak
     * at exit beats a shutdown that hangs). */
    uv_walk(t->loop, close_any, NULL);
}

/* The processes are gone, but handles they closed on their way out (a
 * socket lingering to send its last frames) may still be closing: let
 * them finish, so their owners' close callbacks free what they own. */
static void drain_loop(sv__sched *s)
{
    uv_timer_t grace;
    uv_close((uv_handle_t *)&s->wake, NULL);
    uv_timer_init(&s->loop, &grace);
    uv_timer_start(&grace, on_grace_over, STOP_GRACE_MS, 0);
    uv_unref((uv_handle_t *)&grace); /* does not keep the loop alive by itself */
    uv_run(&s->loop, UV_RUN_DEFAULT);
    if (!uv_is_closing((uv_handle_t *)&grace))
        uv_close((uv_handle_t *)&grace, NULL);
    uv_run(&s->loop, UV_RUN_DEFAULT);
}

/* How busy a scheduler has been: the share of the last window it spent
 * neither sleeping nor spinning. */
#define BUSY_WINDOW_NS 10000000ull /* 10 ms */
#define SPIN_BUSY_MAX 50           /* percent of one scheduler, summed over all: a busier node does not spin */

static void count_idle(sv__sched *s, uint64_t from, uint64_t to)
{
    s->win_idle += to - from;
    if (to - s->win_start >= BUSY_WINDOW_NS) {
        uint64_t span = to - s->win_start;
        atomic_store_explicit(&s->busy_pct, s->win_idle < span ? (int)(100 * (span - s->win_idle) / span) : 0,
                              memory_order_relaxed);
        s->win_start = to;
        s->win_idle = 0;
    }
}

/* Before it sleeps, an idle scheduler spins for a while, watching both its
 * input list and its loop (sockets, timers), so that work arriving within
 * the spin starts at once instead of after the wake-up of a sleeping
 * thread: on a VM that wake-up can be tens of microseconds, most of a
 * request/reply round trip. The spin yields the CPU at every turn, so a
 * client thread waiting for this core runs first; and on a node that has
 * been busy (throughput, where CPU is what counts, and schedulers seldom
 * sleep anyway) no scheduler spins at all.
 * True if work came. */
static bool spin(sv__sched *s)
{
    int busy = 0;
    for (int i = 0; i < sv__n.nsched; i++)
        busy += atomic_load_explicit(&sv__n.sched[i].busy_pct, memory_order_relaxed);
    if (busy >= SPIN_BUSY_MAX)
        return false;
    uint64_t start = uv_hrtime();
    uint64_t until = start + (uint64_t)sv__n.spin_us * 1000;
    uint64_t entered = s->entered;
    bool work = false;
    for (unsigned i = 1;; i++) {
        if (atomic_load_explicit(&s->has_input, memory_order_relaxed)) {
            work = true;
            break;
        }
        sched_yield();
        if ((i & 3) == 0) {
            s->in_uv = true;
            uv_run(&s->loop, UV_RUN_NOWAIT);
            s->in_uv = false;
            if (s->run_head || s->entered != entered) { /* a callback ran a process */
                work = true;
                break;
            }
            if (uv_hrtime() > until)
                break;
        }
    }
    uint64_t end = uv_hrtime(); /* however the spin ended */
    count_idle(s, start, end);
    __atomic_store_n(&s->spin_ns, s->spin_ns + (end - start), __ATOMIC_RELAXED);
    return work;
}

static void sched_main(void *arg)
{
    sv__sched *s = arg;
    sv__tls_sched = s;
    while (!atomic_load_explicit(&s->stop, memory_order_acquire)) {
        /* No process code runs here: a quiescent point for sv_retire.
         * The debt is cleared before the pass is counted: a retirer that
         * sees this pass (acquire) also sees the clear, so a debt it sets
         * after its snapshot is never wiped out unpaid. */
        atomic_store_explicit(&s->owes_pass, 0, memory_order_relaxed);
        atomic_store_explicit(&s->passes, atomic_load_explicit(&s->passes, memory_order_relaxed) + 1,
                              memory_order_release);
        sv__retire_poll();
        take_input(s);
        run_batch(s);
        if (s->run_head) {
            s->in_uv = true;
            uv_run(&s->loop, UV_RUN_NOWAIT); /* busy: look at I/O without blocking */
            s->in_uv = false;
            continue;
        }
        if (sv__n.spin_us > 0 && spin(s))
            continue;
        /* The same pairing as with senders (sv__sched_ready) holds for
         * sv_retire's owes_pass: a retirement that came after this
         * scheduler's last pass either sees `sleeping` and wakes it, or
         * is seen here, and the loop goes round once more to pass. */
        atomic_store_explicit(&s->sleeping, 1, memory_order_seq_cst);
        if (atomic_load_explicit(&s->has_input, memory_order_seq_cst) ||
            atomic_load_explicit(&s->owes_pass, memory_order_seq_cst) ||
            atomic_load_explicit(&s->stop, memory_order_acquire)) {
            atomic_store_explicit(&s->sleeping, 0, memory_order_relaxed);
            continue;
        }
        uint64_t slept = uv_hrtime();
        s->in_uv = true;
        uv_run(&s->loop, UV_RUN_ONCE);
        s->in_uv = false;
        atomic_store_explicit(&s->sleeping, 0, memory_order_relaxed);
        count_idle(s, slept, uv_hrtime());
    }
    drain_loop(s);
    sv__tls_sched = NULL;
}

sv__sched *sv__sched_pick(sv_proc *spawner, int which)
{
    if (which == SV_SCHED_SELF) {
        if (spawner && spawner->sched)
            return spawner->sched;
        if (sv__tls_sched)
            return sv__tls_sched;
        which = SV_SCHED_ANY;
    }
    if (which == SV_SCHED_ANY)
        return &sv__n.sched[atomic_fetch_add_explicit(&sv__n.rr, 1, memory_order_relaxed) % (unsigned)sv__n.nsched];
    if (which < 1 || which > sv__n.nsched)
        return NULL;
    return &sv__n.sched[which - 1];
}

int sv__sched_start_all(void)
{
    sv__n.sched = calloc((size_t)sv__n.nsched, sizeof *sv__n.sched);
    if (!sv__n.sched)
        return -ENOMEM;
    for (int i = 0; i < sv__n.nsched; i++) {
        sv__sched *s = &sv__n.sched[i];
        s->index = i;
        pthread_mutex_init(&s->in_lock, NULL);
        int rc = uv_loop_init(&s->loop);
        if (rc < 0)
            goto fail;
        if ((rc = uv_async_init(&s->loop, &s->wake, on_wake)) < 0) {
            uv_loop_close(&s->loop);
            goto fail;
        }
        if ((rc = uv_thread_create(&s->thread, sched_main, s)) < 0) {
            uv_close((uv_handle_t *)&s->wake, NULL);
            uv_run(&s->loop, UV_RUN_DEFAULT);
            uv_loop_close(&s->loop);
            goto fail;
        }
        continue;
    fail:
        pthread_mutex_destroy(&s->in_lock);
        sv__n.nsched = i; /* stop the ones already running */
        sv__sched_stop_all();
        return rc;
    }
    return 0;
}

static void close_cb(uv_handle_t *h, void *arg)
{
    (void)arg;
    if (!uv_is_closing(h))
        uv_close(h, NULL);
}

void sv__sched_stop_all(void)
{
    for (int i = 0; i < sv__n.nsched; i++) {
        sv__sched *s = &sv__n.sched[i];
        atomic_store(&s->stop, true);
        uv_async_send(&s->wake);
    }
    for (int i = 0; i < sv__n.nsched; i++) {
        sv__sched *s = &sv__n.sched[i];
        uv_thread_join(&s->thread); /* it has drained its loop (drain_loop) */
        uv_walk(&s->loop, close_cb, NULL);
        uv_run(&s->loop, UV_RUN_DEFAULT);
        uv_loop_close(&s->loop);
        pthread_mutex_destroy(&s->in_lock);
    }
    free(sv__n.sched);
    sv__n.sched = NULL;
    sv__n.nsched = 0;
}
