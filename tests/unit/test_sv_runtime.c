/* test_sv_runtime.c — processes, pids, mailboxes, calls, links, monitors,
 * timers and buffers of the actor runtime (supervisor/). */
#include <semaphore.h>
#include <sys/resource.h>
#include <stdatomic.h>
#include <unistd.h>

#include "check_main.h"
#include "check_helpers.h"

/* ------------------------------------------------------- test processes */

/* echo: answers every call with the request's payload; forwards infos to
 * the pid in its arg; a cast with tag 99 crashes it with -EIO. */
static int echo_init(sv_proc *self, void *arg)
{
    sv_pid *to = malloc(sizeof *to);
    if (!to)
        return -ENOMEM;
    *to = arg ? *(sv_pid *)arg : SV_PID_NONE;
    sv_set_state(self, to);
    return 0;
}
static int echo_call(sv_proc *self, sv_msg *req)
{
    (void)self;
    sv_msg *r = sv_msg_new(req->tag, req->data, req->len);
    if (!r)
        return -ENOMEM;
    if (sv_reply(sv_from_of(req), r) < 0)
        sv_msg_free(r); /* the caller has gone: the answer is still ours (sv.h) */
    return 0;
}
static int echo_cast(sv_proc *self, sv_msg *m)
{
    (void)self;
    return m->tag == 99 ? -EIO : 0;
}
static int echo_info(sv_proc *self, sv_msg *m)
{
    sv_pid *to = sv_state(self);
    if (sv_pid_is_none(*to))
        return 0;
    /* Report the message (kind, tag, status) to the watcher. */
    int rep[3] = {m->kind, (int)m->tag, m->status};
    sv_msg *f = sv_msg_new(1000 + m->kind, rep, sizeof rep);
    f->from = m->from;
    if (sv_send(*to, f) < 0)
        sv_msg_free(f);
    return 0;
}
static void echo_term(sv_proc *self, int reason)
{
    (void)reason;
    free(sv_state(self));
}
static const sv_server_ops echo_ops = {.name = "echo",
                                       .init = echo_init,
                                       .handle_call = echo_call,
                                       .handle_cast = echo_cast,
                                       .handle_info = echo_info,
                                       .terminate = echo_term};

static sv_pid spawn_echo(sv_pid report_to, bool trap, int sched)
{
    sv_pid pid;
    sv_spawn_opts o = {.scheduler = sched, .trap_exit = trap};
    ck_assert_int_eq(sv_start(T, &echo_ops, &report_to, &o, 2000, &pid), 0);
    return pid;
}

/* ------------------------------------------------------------------ pids */

START_TEST(test_pid_of_ended_process_is_stale)
{
    sv_pid a = spawn_echo(SV_PID_NONE, false, SV_SCHED_ANY);
    ck_assert(sv_is_alive(a));
    uint64_t ref = sv_monitor(T, a);
    ck_assert_int_eq(sv_exit(T, a, SV_KILL), 0);
    ck_assert_int_eq(expect_down(ref, 2000), SV_KILLED);
    ck_assert(!sv_is_alive(a));
    ck_assert_int_eq(sv_send_tag(a, 1, NULL, 0), -ESRCH);
    /* Many new processes later, none has a's pid, even on a reused slot. */
    for (int i = 0; i < 200; i++) {
        sv_pid b = spawn_echo(SV_PID_NONE, false, SV_SCHED_ANY);
        ck_assert(!sv_pid_eq(a, b));
        sv_exit(T, b, SV_KILL);
    }
    ck_assert_int_eq(sv_send_tag(a, 1, NULL, 0), -ESRCH);
    char buf[SV_PID_FMT_LEN];
    ck_assert_str_eq(sv_pid_str(SV_PID_NONE, buf, sizeof buf), "<none>");
    sv_pid_str(a, buf, sizeof buf);
    ck_assert(buf[0] == '<' && strchr(buf, '.'));
}
END_TEST

START_TEST(test_pid_of_other_node_or_creation_is_refused)
{
    sv_pid a = spawn_echo(SV_PID_NONE, false, SV_SCHED_ANY);
    sv_pid remote = a;
    remote.node = a.node + 1;
    ck_assert_int_eq(sv_send_tag(remote, 1, NULL, 0), -EHOSTUNREACH);
    sv_pid old = a;
    old.creation = a.creation + 1; /* the same slot in an earlier run of this node */
    ck_assert_int_eq(sv_send_tag(old, 1, NULL, 0), -ESRCH);
    ck_assert_int_eq(sv_send_tag(SV_PID_NONE, 1, NULL, 0), -ESRCH);
    uint64_t ref = sv_monitor(T, remote);
    ck_assert_int_eq(expect_down(ref, 1000), SV_NOCONNECTION);
}
END_TEST

/* -------------------------------------------------------------- mailbox */

static sem_t gate;

static int gated_info(sv_proc *self, sv_msg *m)
{
    (void)self;
    if (m->tag == 1)
        sem_wait(&gate); /* blocks its scheduler on purpose: a stuck consumer */
    return 0;
}
static const sv_server_ops gated_ops = {.name = "gated", .handle_info = gated_info};

START_TEST(test_full_mailbox_refuses_with_eagain_and_nothing_is_lost)
{
    sem_init(&gate, 0, 0);
    sv_pid p;
    sv_spawn_opts o = {.scheduler = SV_SCHED_ON(1), .mailbox_cap = 8};
    ck_assert_int_eq(sv_start(T, &gated_ops, NULL, &o, 2000, &p), 0);
    ck_assert_int_eq(sv_send_tag(p, 1, NULL, 0), 0);
    /* Wait until the handler holds the first one and the mailbox is empty. */
    for (int i = 0; i < 1000 && sv_mailbox_len(p) != 0; i++)
        usleep(1000);
    for (int i = 0; i < 8; i++)
        ck_assert_int_eq(sv_send_tag(p, 2, NULL, 0), 0);
    ck_assert_uint_eq(sv_mailbox_len(p), 8);
    sv_msg *m = sv_msg_new(2, "x", 1);
    ck_assert_int_eq(sv_send(p, m), -EAGAIN);
    /* Refused, the message is still the sender's: it can be sent later. */
    ck_assert_uint_eq(m->len, 1);
    ck_assert_uint_eq(sv_mailbox_len(p), 8);
    /* System messages are not refused: a monitor still gets through. */
    uint64_t ref = sv_monitor(T, p);
    sem_post(&gate);
    for (int i = 0; i < 1000 && sv_mailbox_len(p) != 0; i++)
        usleep(1000);
    ck_assert_uint_eq(sv_mailbox_len(p), 0);
    ck_assert_int_eq(sv_send(p, m), 0);
    sv_exit(T, p, SV_SHUTDOWN);
    ck_assert_int_eq(expect_down(ref, 2000), SV_SHUTDOWN);
    sem_destroy(&gate);
}
END_TEST

START_TEST(test_inbox_mailbox_is_bounded_too)
{
    /* node_setup_with(4): the inbox has room for 4 ordinary messages. */
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(sv_send_tag(sv_self(T), 7, &i, sizeof i), 0);
    ck_assert_int_eq(sv_send_tag(sv_self(T), 7, NULL, 0), -EAGAIN);
    for (int i = 0; i < 4; i++) {
        sv_msg *m = recv_match(-1, 7, 0, SV_PID_NONE, 100);
        ck_assert_ptr_nonnull(m);
        ck_assert_int_eq(*SV_MSG_AS(m, int), i); /* FIFO */
        sv_msg_free(m);
    }
    ck_assert_int_eq(sv_send_tag(sv_self(T), 7, NULL, 0), 0);
}
END_TEST

/* A sender on another thread pushes 20000 numbered messages; the receiver,
 * on another scheduler, must see them all, in order, despite the bound
 * forcing the sender to retry. */
typedef struct order_state {
    int next;
    bool ok;
    sv_pid report;
} order_state;
static int order_init(sv_proc *self, void *arg)
{
    order_state *s = calloc(1, sizeof *s);
    s->ok = true;
    s->report = *(sv_pid *)arg;
    sv_set_state(self, s);
    return 0;
}
static int order_info(sv_proc *self, sv_msg *m)
{
    order_state *s = sv_state(self);
    int v = *SV_MSG_AS(m, int);
    if (v != s->next)
        s->ok = false;
    s->next = v + 1;
    if (s->next == 20000) {
        int ok = s->ok;
        sv_send_tag(s->report, 5, &ok, sizeof ok);
    }
    return 0;
}
static void order_term(sv_proc *self, int r)
{
    (void)r;
    free(sv_state(self));
}
static const sv_server_ops order_ops = {
    .name = "order", .init = order_init, .handle_info = order_info, .terminate = order_term};

START_TEST(test_messages_from_one_sender_arrive_in_order)
{
    sv_pid me = sv_self(T), p;
    sv_spawn_opts o = {.scheduler = SV_SCHED_ON(1), .mailbox_cap = 64};
    ck_assert_int_eq(sv_start(T, &order_ops, &me, &o, 2000, &p), 0);
    int refused = 0;
    for (int i = 0; i < 20000; i++) {
        int rc;
        while ((rc = sv_send_tag(p, 1, &i, sizeof i)) == -EAGAIN) {
            refused++;
            sched_yield();
        }
        ck_assert_int_eq(rc, 0);
    }
    sv_msg *m = recv_match(-1, 5, 0, SV_PID_NONE, 5000);
    ck_assert_ptr_nonnull(m);
    ck_assert_int_eq(*SV_MSG_AS(m, int), 1);
    sv_msg_free(m);
}
END_TEST

/* ------------------------------------------------------------ call/reply */

static int silent_call(sv_proc *self, sv_msg *req)
{
    (void)self;
    (void)req;
    return 0; /* never answers */
}
static const sv_server_ops silent_ops = {.name = "silent", .handle_call = silent_call};

START_TEST(test_call_returns_the_reply)
{
    sv_pid p = spawn_echo(SV_PID_NONE, false, SV_SCHED_ANY);
    sv_msg *r = NULL;
    ck_assert_int_eq(sv_call(T, p, sv_msg_new(42, "hello", 6), 1000, &r), 0);
    ck_assert_uint_eq(r->tag, 42);
    ck_assert_str_eq((char *)r->data, "hello");
    ck_assert(sv_pid_eq(r->from, p));
    sv_msg_free(r);
}
END_TEST

START_TEST(test_call_times_out_and_late_reply_is_dropped)
{
    sv_pid p;
    ck_assert_int_eq(sv_start(T, &silent_ops, NULL, NULL, 1000, &p), 0);
    sv_msg *r = (sv_msg *)1;
    uint64_t t0 = now_ms();
    ck_assert_int_eq(sv_call(T, p, sv_msg_new(1, NULL, 0), 150, &r), -ETIMEDOUT);
    uint64_t took = now_ms() - t0;
    ck_assert_ptr_null(r);
    ck_assert_uint_ge(took, 150);
    ck_assert_uint_lt(took, 1000);
    /* The callee is still alive; nothing is left in our inbox. */
    ck_assert(sv_is_alive(p));
    ck_assert_ptr_null(sv_recv(T, 50, NULL, NULL));
}
END_TEST

START_TEST(test_call_to_dead_process_fails_at_once)
{
    sv_pid p = spawn_echo(SV_PID_NONE, false, SV_SCHED_ANY);
    uint64_t ref = sv_monitor(T, p);
    sv_exit(T, p, SV_KILL);
    expect_down(ref, 1000);
    sv_msg *r;
    uint64_t t0 = now_ms();
    ck_assert_int_eq(sv_call(T, p, sv_msg_new(1, NULL, 0), 5000, &r), -ESRCH);
    ck_assert_uint_lt(now_ms() - t0, 1000);
}
END_TEST

static int crash_call(sv_proc *self, sv_msg *req)
{
    (void)self;
    (void)req;
    return -EPIPE;
}
static const sv_server_ops crash_ops = {.name = "crasher", .handle_call = crash_call};

START_TEST(test_call_ends_with_callee_exit_reason)
{
    sv_pid p;
    ck_assert_int_eq(sv_start(T, &crash_ops, NULL, NULL, 1000, &p), 0);
    sv_msg *r;
    uint64_t t0 = now_ms();
    ck_assert_int_eq(sv_call(T, p, sv_msg_new(1, NULL, 0), 5000, &r), -EPIPE);
    ck_assert_uint_lt(now_ms() - t0, 1000); /* not the timeout: the monitor fired */
}
END_TEST

START_TEST(test_call_without_handle_call_is_enotsup)
{
    sv_pid p;
    ck_assert_int_eq(sv_start(T, &gated_ops, NULL, NULL, 1000, &p), 0);
    sv_msg *r;
    ck_assert_int_eq(sv_call(T, p, sv_msg_new(1, NULL, 0), 1000, &r), -ENOTSUP);
}
END_TEST

/* A process that calls another asynchronously and reports the outcome. */
typedef struct caller_arg {
    sv_pid target, report;
    int timeout;
} caller_arg;
static int caller_init(sv_proc *self, void *arg)
{
    caller_arg *a = malloc(sizeof *a);
    *a = *(caller_arg *)arg;
    sv_set_state(self, a);
    uint64_t ref;
    /* A blocking call from a scheduler thread is refused. */
    sv_msg *r;
    int dead = sv_call(self, a->target, sv_msg_new(1, NULL, 0), 10, &r);
    sv_send_tag(a->report, 3, &dead, sizeof dead);
    sv_msg *req = sv_msg_new(7, "q", 2);
    int rc = sv_call_async(self, a->target, req, a->timeout, &ref);
    if (rc < 0) {
        /* Refused at once (no such process): no REPLY will come. */
        sv_msg_free(req);
        int rep[2] = {rc, -1};
        sv_send_tag(a->report, 4, rep, sizeof rep);
    }
    return 0;
}
static int caller_info(sv_proc *self, sv_msg *m)
{
    caller_arg *a = sv_state(self);
    if (m->kind == SV_MSG_REPLY) {
        int rep[2] = {m->status, (int)m->tag};
        sv_send_tag(a->report, 4, rep, sizeof rep);
    }
    return 0;
}
static void caller_term(sv_proc *self, int r)
{
    (void)r;
    free(sv_state(self));
}
static const sv_server_ops caller_ops = {
    .name = "caller", .init = caller_init, .handle_info = caller_info, .terminate = caller_term};

static void check_async_call_on(int sched, sv_pid target, int timeout, int want_status, int want_tag)
{
    caller_arg a = {target, sv_self(T), timeout};
    sv_pid c;
    sv_spawn_opts o = {.scheduler = sched};
    ck_assert_int_eq(sv_start(T, &caller_ops, &a, &o, 1000, &c), 0);
    sv_msg *m = recv_match(-1, 3, 0, SV_PID_NONE, 1000);
    ck_assert_ptr_nonnull(m);
    ck_assert_int_eq(*SV_MSG_AS(m, int), -EDEADLK);
    sv_msg_free(m);
    m = recv_match(-1, 4, 0, SV_PID_NONE, 2000);
    ck_assert_ptr_nonnull(m);
    int *rep = SV_MSG_AS(m, int);
    ck_assert_int_eq(rep[0], want_status);
    ck_assert_int_eq(rep[1], want_tag);
    sv_msg_free(m);
    /* Exactly one REPLY per call. */
    ck_assert_ptr_null(recv_match(-1, 4, 0, SV_PID_NONE, 200));
    sv_exit(T, c, SV_KILL);
}
static void check_async_call(sv_pid target, int timeout, int want_status, int want_tag)
{
    check_async_call_on(SV_SCHED_ANY, target, timeout, want_status, want_tag);
}

START_TEST(test_async_call_gets_reply_timeout_or_exit)
{
    sv_pid echo = spawn_echo(SV_PID_NONE, false, SV_SCHED_ANY);
    check_async_call(echo, 1000, 0, 7);
    sv_pid silent;
    ck_assert_int_eq(sv_start(T, &silent_ops, NULL, NULL, 1000, &silent), 0);
    check_async_call(silent, 100, -ETIMEDOUT, 0);
    uint64_t ref = sv_monitor(T, silent);
    sv_exit(T, silent, SV_KILL);
    expect_down(ref, 1000);
    check_async_call(silent, 1000, -ESRCH, -1);
}
END_TEST

/* ------------------------------------------------- who owns a message */

/* The rule of sv.h: a refused send leaves the message with its sender;
 * sv_call takes its request in every case. Under ASan a message the
 * runtime had freed as well would be a use after free or a double free,
 * and one nobody freed a leak. */
START_TEST(test_each_refusal_leaves_the_message_with_its_sender)
{
    sv_pid p = spawn_echo(SV_PID_NONE, false, SV_SCHED_ANY);
    uint64_t ref = sv_monitor(T, p);
    sv_exit(T, p, SV_KILL);
    expect_down(ref, 1000);
    sv_pid remote = p;
    remote.node = 99;
    sv_from gone = {p, 1};

    sv_msg *m = sv_msg_new(3, "abc", 3);
    ck_assert_int_eq(sv_send(p, m), -ESRCH);
    ck_assert_int_eq(sv_cast(p, m), -ESRCH);
    ck_assert_int_eq(sv_send_owed(p, m), -ESRCH);
    ck_assert_int_eq(sv_send(SV_PID_NONE, m), -ESRCH);
    ck_assert_int_eq(sv_send(remote, m), -EHOSTUNREACH);
    ck_assert_int_eq(sv_reply(gone, m), -ESRCH); /* a caller that gave up */
    ck_assert_int_eq(sv_send(p, NULL), -EINVAL);
    ck_assert_int_eq(sv_reply(gone, NULL), -EINVAL);
    ck_assert_int_eq(sv_send_after(T, 1, p, m, NULL), -EINVAL); /* inboxes own no timers */
    ck_assert_int_eq(memcmp(m->data, "abc", 3), 0);
    /* Still the sender's: it can go elsewhere after all. */
    ck_assert_int_eq(sv_send(sv_self(T), m), 0);
    sv_msg *got = recv_match(-1, 3, 0, SV_PID_NONE, 1000);
    ck_assert_ptr_eq(got, m);
    sv_msg_free(got);

    /* The helpers build their own message and free it when refused. */
    ck_assert_int_eq(sv_send_tag(p, 1, "x", 1), -ESRCH);
    ck_assert_int_eq(sv_reply_data(gone, "x", 1), -ESRCH);
    ck_assert_int_eq(sv_reply_error(gone, -EIO), -ESRCH);

    /* sv_call takes its request whether it was refused at once ... */
    sv_msg *r = (sv_msg *)1;
    ck_assert_int_eq(sv_call(T, p, sv_msg_new(1, "x", 1), 1000, &r), -ESRCH);
    ck_assert_ptr_null(r);
    ck_assert_int_eq(sv_call(T, remote, sv_msg_new(1, "x", 1), 1000, &r), -EHOSTUNREACH);
    ck_assert_int_eq(sv_call(T, p, NULL, 1000, &r), -EINVAL);
    /* ... or failed once the callee had it (the callee ended, or never
     * answered: its late answer is dropped, not left in our inbox). */
    sv_pid crasher;
    ck_assert_int_eq(sv_start(T, &crash_ops, NULL, NULL, 1000, &crasher), 0);
    ck_assert_int_eq(sv_call(T, crasher, sv_msg_new(1, "x", 1), 1000, &r), -EPIPE);
    ck_assert_ptr_null(sv_recv(T, 50, NULL, NULL));
}
END_TEST

/* A process whose mailbox (8) is full, its scheduler (1) blocked in its
 * handler until sem_post(&gate). */
static sv_pid spawn_full(void)
{
    sem_init(&gate, 0, 0);
    sv_pid p;
    sv_spawn_opts o = {.scheduler = SV_SCHED_ON(1), .mailbox_cap = 8};
    ck_assert_int_eq(sv_start(T, &gated_ops, NULL, &o, 2000, &p), 0);
    ck_assert_int_eq(sv_send_tag(p, 1, NULL, 0), 0);
    for (int i = 0; i < 1000 && sv_mailbox_len(p) != 0; i++)
        usleep(1000);
    for (int i = 0; i < 8; i++)
        ck_assert_int_eq(sv_send_tag(p, 2, NULL, 0), 0);
    return p;
}

START_TEST(test_full_mailbox_refusals_follow_the_rule)
{
    sv_pid p = spawn_full();
    /* sv_call frees the request it could not queue (ASan: no leak) ... */
    sv_msg *r = (sv_msg *)1;
    ck_assert_int_eq(sv_call(T, p, sv_msg_new(1, NULL, 0), 1000, &r), -EAGAIN);
    ck_assert_ptr_null(r);
    ck_assert_int_eq(sv_send_tag(p, 2, NULL, 0), -EAGAIN);
    /* ... sv_call_async leaves it with its caller, who frees it, and no
     * REPLY comes (the caller runs on scheduler 0: 1 is blocked). */
    check_async_call_on(SV_SCHED_ON(0), p, 1000, -EAGAIN, -1);
    uint64_t ref = sv_monitor(T, p);
    sem_post(&gate);
    sv_exit(T, p, SV_SHUTDOWN);
    ck_assert_int_eq(expect_down(ref, 2000), SV_SHUTDOWN);
    sem_destroy(&gate);
}
END_TEST

/* --------------------------------------------------- links and monitors */

START_TEST(test_monitor_reports_exit_reason)
{
    sv_pid p = spawn_echo(SV_PID_NONE, false, SV_SCHED_ANY);
    uint64_t ref = sv_monitor(T, p);
    ck_assert_uint_ne(ref, 0);
    ck_assert_int_eq(sv_cast(p, sv_msg_new(99, NULL, 0)), 0); /* crash with -EIO */
    sv_msg *m = recv_match(SV_MSG_DOWN, 0, ref, SV_PID_NONE, 2000);
    ck_assert_ptr_nonnull(m);
    ck_assert_int_eq(m->status, -EIO);
    ck_assert(sv_pid_eq(m->from, p));
    sv_msg_free(m);
}
END_TEST

START_TEST(test_monitor_of_dead_pid_is_noproc_and_demonitor_silences)
{
    sv_pid p = spawn_echo(SV_PID_NONE, false, SV_SCHED_ANY);
    uint64_t r1 = sv_monitor(T, p);
    uint64_t r2 = sv_monitor(T, p);
    sv_demonitor(T, r2);
    sv_exit(T, p, SV_KILL);
    ck_assert_int_eq(expect_down(r1, 1000), SV_KILLED);
    ck_assert_ptr_null(recv_match(SV_MSG_DOWN, 0, r2, SV_PID_NONE, 200));
    uint64_t r3 = sv_monitor(T, p);
    ck_assert_int_eq(expect_down(r3, 1000), SV_NOPROC);
}
END_TEST

/* watcher: a process that links to or monitors its arg's target on init. */
typedef struct watch_arg {
    sv_pid target;
    bool link, trap;
    sv_pid report;
} watch_arg;
static int watch_init(sv_proc *self, void *arg)
{
    watch_arg *a = malloc(sizeof *a);
    *a = *(watch_arg *)arg;
    sv_set_state(self, a);
    sv_trap_exit(self, a->trap);
    if (a->link)
        return sv_link(self, a->target);
    return sv_monitor(self, a->target) ? 0 : -ENOMEM;
}
static int watch_info(sv_proc *self, sv_msg *m)
{
    watch_arg *a = sv_state(self);
    int rep[2] = {m->kind, m->status};
    sv_send_tag(a->report, 8, rep, sizeof rep);
    return 0;
}
static void watch_term(sv_proc *self, int r)
{
    (void)r;
    free(sv_state(self));
}
static const sv_server_ops watch_ops = {
    .name = "watcher", .init = watch_init, .handle_info = watch_info, .terminate = watch_term};

static sv_pid spawn_watcher(sv_pid target, bool link, bool trap)
{
    watch_arg a = {target, link, trap, sv_self(T)};
    sv_pid w;
    sv_spawn_opts o = {.scheduler = SV_SCHED_ANY};
    ck_assert_int_eq(sv_start(T, &watch_ops, &a, &o, 1000, &w), 0);
    return w;
}

START_TEST(test_link_propagates_failure_and_its_reason)
{
    sv_pid victim = spawn_echo(SV_PID_NONE, false, SV_SCHED_ON(0));
    sv_pid linked = spawn_watcher(victim, true, false);
    uint64_t ref = sv_monitor(T, linked);
    sv_cast(victim, sv_msg_new(99, NULL, 0));
    ck_assert_int_eq(expect_down(ref, 2000), -EIO); /* same reason, passed on */
}
END_TEST

START_TEST(test_trapping_process_gets_exit_message_and_lives)
{
    sv_pid victim = spawn_echo(SV_PID_NONE, false, SV_SCHED_ON(1));
    sv_pid trapper = spawn_watcher(victim, true, true);
    sv_cast(victim, sv_msg_new(99, NULL, 0));
    sv_msg *m = recv_match(-1, 8, 0, SV_PID_NONE, 2000);
    ck_assert_ptr_nonnull(m);
    int *rep = SV_MSG_AS(m, int);
    ck_assert_int_eq(rep[0], SV_MSG_EXIT);
    ck_assert_int_eq(rep[1], -EIO);
    sv_msg_free(m);
    usleep(20000);
    ck_assert(sv_is_alive(trapper));
}
END_TEST

START_TEST(test_normal_exit_does_not_kill_linked)
{
    sv_pid victim;
    ck_assert_int_eq(sv_start(T, &counter_ops, NULL, NULL, 1000, &victim), 0);
    sv_pid linked = spawn_watcher(victim, true, false);
    ck_assert_int_eq(counter_do(victim, CNT_STOP_NORMAL), 0);
    usleep(50000);
    ck_assert(!sv_is_alive(victim));
    ck_assert(sv_is_alive(linked));
}
END_TEST

START_TEST(test_link_to_dead_pid_gives_noproc)
{
    sv_pid victim = spawn_echo(SV_PID_NONE, false, SV_SCHED_ANY);
    uint64_t ref = sv_monitor(T, victim);
    sv_exit(T, victim, SV_KILL);
    expect_down(ref, 1000);
    sv_pid trapper = spawn_watcher(victim, true, true);
    sv_msg *m = recv_match(-1, 8, 0, SV_PID_NONE, 2000);
    ck_assert_ptr_nonnull(m);
    ck_assert_int_eq(SV_MSG_AS(m, int)[0], SV_MSG_EXIT);
    ck_assert_int_eq(SV_MSG_AS(m, int)[1], SV_NOPROC);
    sv_msg_free(m);
    sv_exit(T, trapper, SV_KILL);
}
END_TEST

START_TEST(test_kill_ends_even_a_trapping_process)
{
    sv_pid p = spawn_echo(SV_PID_NONE, true, SV_SCHED_ANY);
    uint64_t ref = sv_monitor(T, p);
    sv_exit(T, p, SV_SHUTDOWN); /* trapped: becomes a message */
    ck_assert_ptr_null(recv_match(SV_MSG_DOWN, 0, ref, SV_PID_NONE, 100));
    ck_assert(sv_is_alive(p));
    sv_exit(T, p, SV_KILL);
    ck_assert_int_eq(expect_down(ref, 1000), SV_KILLED);
}
END_TEST

START_TEST(test_spawn_link_from_inbox_delivers_exit)
{
    sv_pid p;
    sv_spawn_opts o = {.link = true, .ack = true, .scheduler = SV_SCHED_ANY};
    sv_pid none = SV_PID_NONE;
    ck_assert_int_eq(sv_spawn(T, &echo_ops, &none, &o, &p), 0);
    sv_msg *m = recv_match(SV_MSG_ACK, 0, 0, p, 1000);
    ck_assert_ptr_nonnull(m);
    sv_msg_free(m);
    sv_cast(p, sv_msg_new(99, NULL, 0));
    m = recv_match(SV_MSG_EXIT, 0, 0, p, 1000);
    ck_assert_ptr_nonnull(m);
    ck_assert_int_eq(m->status, -EIO);
    sv_msg_free(m);
}
END_TEST

static int failing_init(sv_proc *self, void *arg)
{
    (void)self;
    (void)arg;
    return -ENOENT;
}
static const sv_server_ops failing_ops = {.name = "failing", .init = failing_init};

START_TEST(test_start_reports_init_failure)
{
    sv_pid p;
    ck_assert_int_eq(sv_start(T, &failing_ops, NULL, NULL, 1000, &p), -ENOENT);
    ck_assert_int_eq(sv_spawn(NULL, NULL, NULL, NULL, &p), -EINVAL);
    sv_spawn_opts bad = {.scheduler = SV_SCHED_ON(7)};
    ck_assert_int_eq(sv_spawn(NULL, &echo_ops, NULL, &bad, &p), -EINVAL);
    sv_spawn_opts link_without_self = {.link = true};
    ck_assert_int_eq(sv_spawn(NULL, &echo_ops, NULL, &link_without_self, &p), -EINVAL);
}
END_TEST

/* A process for the init rule of sv.h: its init allocates its state and,
 * per mode, fails (after undoing its own work, and leaving work for the
 * runtime to undo: a name, a timer, a monitor), succeeds, defers, or stops
 * itself. terminate counts its runs and frees the state: were it called
 * after a failed init, it would free the state twice (ASan) and count. */
enum { LC_FAIL, LC_OK, LC_DEFER, LC_STOP_IN_INIT };
typedef struct lc_arg {
    int mode;
    sv_pid report;
} lc_arg;
static atomic_int lc_terms, lc_reason;
static int lc_init(sv_proc *self, void *arg)
{
    lc_arg *a = arg;
    int *st = malloc(sizeof *st);
    if (!st)
        return -ENOMEM;
    sv_set_state(self, st);
    switch (a->mode) {
    case LC_FAIL: {
        sv_register("lc", sv_self(self));
        sv_msg *t = sv_msg_new(77, NULL, 0);
        if (t && sv_send_after(self, 50, a->report, t, NULL) < 0)
            sv_msg_free(t);
        sv_monitor(self, a->report);
        free(st); /* the rule: a failed init undoes its own work */
        return -ENOENT;
    }
    case LC_DEFER: return SV_INIT_DEFER;
    case LC_STOP_IN_INIT: sv_stop(self, SV_NORMAL); return 0;
    }
    return 0;
}
static int lc_info(sv_proc *self, sv_msg *m)
{
    if (m->tag == 5)
        sv_init_ack(self, -EIO); /* the deferred init failed after all */
    return 0;
}
static void lc_term(sv_proc *self, int reason)
{
    atomic_fetch_add(&lc_terms, 1);
    atomic_store(&lc_reason, reason);
    free(sv_state(self));
}
static const sv_server_ops lc_ops = {.name = "lc", .init = lc_init, .handle_info = lc_info, .terminate = lc_term};

/* Spawns lc in mode, monitored; returns the monitor ref. */
static uint64_t spawn_lc(int mode, lc_arg *a, sv_pid *p)
{
    *a = (lc_arg){mode, sv_self(T)};
    atomic_store(&lc_terms, 0);
    atomic_store(&lc_reason, 12345);
    uint64_t ref = 0;
    sv_spawn_opts o = {.monitor = &ref};
    ck_assert_int_eq(sv_spawn(T, &lc_ops, a, &o, p), 0);
    return ref;
}

START_TEST(test_failed_init_gets_no_terminate_and_the_runtime_clears_the_rest)
{
    lc_arg a;
    sv_pid p;
    uint64_t ref = spawn_lc(LC_FAIL, &a, &p);
    ck_assert_int_eq(expect_down(ref, 1000), -ENOENT);
    ck_assert_int_eq(atomic_load(&lc_terms), 0);
    ck_assert(sv_pid_is_none(sv_whereis("lc")));                 /* its name went */
    ck_assert_ptr_null(recv_match(-1, 77, 0, SV_PID_NONE, 150)); /* its timer too */
    ck_assert(!sv_is_alive(p));
    /* sv_start reports the same failure, and the same rule holds there. */
    a.mode = LC_FAIL;
    ck_assert_int_eq(sv_start(T, &lc_ops, &a, NULL, 1000, &p), -ENOENT);
    ck_assert_int_eq(atomic_load(&lc_terms), 0);
}
END_TEST

START_TEST(test_live_process_gets_terminate_exactly_once)
{
    lc_arg a;
    sv_pid p;
    /* Deferred, then reported failed: it was live, so terminate runs. */
    uint64_t ref = spawn_lc(LC_DEFER, &a, &p);
    ck_assert_int_eq(sv_send_tag(p, 5, NULL, 0), 0);
    ck_assert_int_eq(expect_down(ref, 1000), -EIO);
    ck_assert_int_eq(atomic_load(&lc_terms), 1);
    ck_assert_int_eq(atomic_load(&lc_reason), -EIO);
    /* sv_stop inside an init that succeeded. */
    ref = spawn_lc(LC_STOP_IN_INIT, &a, &p);
    ck_assert_int_eq(expect_down(ref, 1000), SV_NORMAL);
    ck_assert_int_eq(atomic_load(&lc_terms), 1);
    ck_assert_int_eq(atomic_load(&lc_reason), SV_NORMAL);
    /* Killed. */
    ref = spawn_lc(LC_OK, &a, &p);
    ck_assert_int_eq(sv_exit(T, p, SV_KILL), 0);
    ck_assert_int_eq(expect_down(ref, 1000), SV_KILLED);
    ck_assert_int_eq(atomic_load(&lc_terms), 1);
    ck_assert_int_eq(atomic_load(&lc_reason), SV_KILLED);
}
END_TEST

/* ---------------------------------------------------------------- timers */

typedef struct timer_arg {
    sv_pid report;
    uint64_t fire, cancel; /* ms */
} timer_arg;
static int timer_init(sv_proc *self, void *arg)
{
    timer_arg *a = malloc(sizeof *a);
    if (!a)
        return -ENOMEM;
    *a = *(timer_arg *)arg;
    uint64_t t1, t2;
    sv_msg *m1 = sv_msg_new(11, NULL, 0), *m2 = sv_msg_new(12, NULL, 0);
    int rc = m1 && m2 ? 0 : -ENOMEM;
    if (rc == 0 && (rc = sv_send_after(self, a->fire, a->report, m1, &t1)) == 0)
        m1 = NULL; /* the timer's now */
    if (rc == 0 && (rc = sv_send_after(self, a->cancel, a->report, m2, &t2)) == 0)
        m2 = NULL;
    sv_msg_free(m1);
    sv_msg_free(m2);
    if (rc == 0)
        rc = sv_cancel_timer(self, t2);
    if (rc == 0 && sv_cancel_timer(self, t2) != -ENOENT)
        rc = -EINVAL;
    if (rc < 0) {
        free(a); /* a failed init undoes its own work (sv.h) */
        return rc;
    }
    sv_set_state(self, a);
    return 0;
}
static void timer_term(sv_proc *self, int r)
{
    (void)r;
    free(sv_state(self));
}
static const sv_server_ops timer_ops = {.name = "timer", .init = timer_init, .terminate = timer_term};

START_TEST(test_send_after_fires_and_cancel_prevents)
{
    timer_arg a = {sv_self(T), 80, 40};
    sv_pid p;
    uint64_t t0 = now_ms();
    ck_assert_int_eq(sv_start(T, &timer_ops, &a, NULL, 1000, &p), 0);
    sv_msg *m = recv_match(-1, 0, 0, SV_PID_NONE, 2000);
    ck_assert_ptr_nonnull(m);
    ck_assert_uint_eq(m->tag, 11); /* the cancelled one (12, due first) never came */
    ck_assert_uint_ge(now_ms() - t0, 75);
    sv_msg_free(m);
    ck_assert_ptr_null(recv_match(-1, 12, 0, SV_PID_NONE, 100));
    sv_msg *own = sv_msg_new(1, NULL, 0);
    ck_assert_int_eq(sv_send_after(T, 10, sv_self(T), own, NULL), -EINVAL); /* inboxes have no timers */
    sv_msg_free(own);
}
END_TEST

/* A timer armed late in a long turn counts from when it was armed, not
 * from the loop's last look at the clock (it fired that much early). */
static int late_timer_init(sv_proc *self, void *arg)
{
    uint64_t start = now_ms();
    while (now_ms() - start < 30) /* a long turn: the loop's clock goes stale */
        ;
    uint64_t armed = now_ms();
    return sv_send_after(self, 80, *(sv_pid *)arg, sv_msg_new(13, &armed, sizeof armed), NULL);
}
static const sv_server_ops late_timer_ops = {.name = "late_timer", .init = late_timer_init};

START_TEST(test_timer_armed_late_in_a_turn_counts_from_then)
{
    sv_pid me = sv_self(T), p;
    ck_assert_int_eq(sv_start(T, &late_timer_ops, &me, NULL, 2000, &p), 0);
    sv_msg *m = recv_match(-1, 13, 0, SV_PID_NONE, 2000);
    ck_assert_ptr_nonnull(m);
    uint64_t waited = now_ms() - *SV_MSG_AS(m, uint64_t);
    ck_assert_msg(waited >= 79, "an 80 ms timer fired after %llu ms", (unsigned long long)waited);
    sv_msg_free(m);
}
END_TEST

START_TEST(test_timers_die_with_their_owner)
{
    timer_arg a = {sv_self(T), 100, 50};
    sv_pid p;
    ck_assert_int_eq(sv_start(T, &timer_ops, &a, NULL, 1000, &p), 0);
    sv_exit(T, p, SV_KILL);
    ck_assert_ptr_null(recv_match(-1, 11, 0, SV_PID_NONE, 300));
}
END_TEST

/* --------------------------------------------------------------- buffers */

static atomic_int released;
static void count_release(sv_buf *b)
{
    atomic_fetch_add(&released, 1);
    free(b);
}

START_TEST(test_shared_buffer_is_passed_not_copied_and_released_once)
{
    atomic_store(&released, 0);
    sv_buf *b = sv_buf_new(1 << 20);
    b->release = count_release;
    memset(b->data, 'x', b->len);
    sv_pid p = spawn_echo(SV_PID_NONE, false, SV_SCHED_ANY);
    for (int i = 0; i < 4; i++) {
        sv_msg *m = sv_msg_new(1, NULL, 0);
        m->buf = sv_buf_ref(b);
        ck_assert_int_eq(sv_send(sv_self(T), m), 0);
    }
    for (int i = 0; i < 4; i++) {
        sv_msg *m = sv_recv(T, 100, NULL, NULL);
        ck_assert_ptr_eq(m->buf, b);
        ck_assert_ptr_eq(m->buf->data, b->data);
        sv_msg_free(m);
    }
    ck_assert_int_eq(atomic_load(&released), 0);
    sv_msg *m = sv_msg_new(1, NULL, 0);
    m->buf = b; /* our reference goes with it */
    ck_assert_int_eq(sv_send(p, m), 0);
    for (int i = 0; i < 100 && atomic_load(&released) == 0; i++)
        usleep(1000);
    ck_assert_int_eq(atomic_load(&released), 1);
}
END_TEST

/* -------------------------------------------------------------- registry */

START_TEST(test_registered_name_follows_the_process)
{
    sv_pid p = spawn_echo(SV_PID_NONE, false, SV_SCHED_ANY);
    ck_assert_int_eq(sv_register("echo", p), 0);
    ck_assert(sv_pid_eq(sv_whereis("echo"), p));
    ck_assert_int_eq(sv_register("echo", sv_self(T)), -EEXIST);
    ck_assert_int_eq(sv_register("", p), -EINVAL);
    uint64_t ref = sv_monitor(T, p);
    sv_exit(T, p, SV_KILL);
    expect_down(ref, 1000);
    ck_assert(sv_pid_is_none(sv_whereis("echo")));
}
END_TEST

/* -------------------------------------------------------------- lifetime */

START_TEST(test_thousands_of_processes_leave_nothing_behind)
{
    enum { N = 5000 };
    static sv_pid pids[N];
    for (int round = 0; round < 3; round++) {
        sv_pid none = SV_PID_NONE;
        for (int i = 0; i < N; i++) {
            sv_spawn_opts o = {.scheduler = SV_SCHED_ANY};
            ck_assert_int_eq(sv_spawn(T, &echo_ops, &none, &o, &pids[i]), 0);
        }
        sv_node_stats st;
        sv_node_get_stats(&st);
        ck_assert_uint_eq(st.processes, N);
        /* Half end by a crash, half are killed; a call proves each ran. */
        for (int i = 0; i < N; i++) {
            if (i % 2)
                ck_assert_int_eq(sv_cast(pids[i], sv_msg_new(99, NULL, 0)), 0);
            else
                ck_assert_int_eq(sv_exit(T, pids[i], SV_KILL), 0);
        }
        for (int i = 0; i < 2000; i++) {
            sv_node_get_stats(&st);
            if (st.processes == 0)
                break;
            usleep(1000);
        }
        ck_assert_uint_eq(st.processes, 0);
    }
    /* Memory is checked by ASan's leak report when the test process exits. */
}
END_TEST

/* ------------------------------------------------- sv_take and discard */

/* keeper: holds every info with tag 1 (sv_take) until one with tag 2, then
 * sends them all back to the test in order; a message still in its mailbox
 * when it ends goes to discard, which counts it. */
static atomic_int discarded;
typedef struct keeper {
    sv_msg *head, *tail;
} keeper;
static int keeper_init(sv_proc *self, void *arg)
{
    (void)arg;
    keeper *k = calloc(1, sizeof *k);
    if (!k)
        return -ENOMEM;
    sv_set_state(self, k);
    return 0;
}
static void keep(keeper *k, sv_msg *m)
{
    m->next = NULL;
    if (k->tail)
        k->tail->next = m;
    else
        k->head = m;
    k->tail = m;
}
static int keeper_info(sv_proc *self, sv_msg *m)
{
    keeper *k = sv_state(self);
    if (m->tag == 1) {
        sv_take(m);
        keep(k, m);
    } else if (m->tag == 2) {
        for (sv_msg *h = k->head, *next; h; h = next) {
            next = h->next;
            h->next = NULL;
            if (sv_send(m->from, h) < 0) /* kept messages are sent on as they are */
                sv_msg_free(h);
        }
        k->head = k->tail = NULL;
    } else if (m->tag == 4) { /* held: put off, still counted in the mailbox bound */
        sv_hold(self, m);
        keep(k, m);
    } else if (m->tag == 5) { /* release the held ones and send them back */
        for (sv_msg *h = k->head, *next; h; h = next) {
            next = h->next;
            h->next = NULL;
            sv_unhold(self, h);
            if (sv_send_owed(m->from, h) < 0)
                sv_msg_free(h);
        }
        k->head = k->tail = NULL;
    } else if (m->tag == 3) {
        usleep(200000); /* while it sleeps, more arrive; then it stops */
        sv_stop(self, SV_NORMAL);
    }
    return 0;
}
static void keeper_term(sv_proc *self, int reason)
{
    (void)reason;
    keeper *k = sv_state(self);
    for (sv_msg *h = k->head, *next; h; h = next) {
        next = h->next;
        sv_msg_free(h);
    }
    free(k);
}
static void keeper_discard(sv_msg *m)
{
    if (m->tag == 7)
        atomic_fetch_add(&discarded, 1);
}
static const sv_server_ops keeper_ops = {.name = "keeper",
                                         .init = keeper_init,
                                         .handle_info = keeper_info,
                                         .terminate = keeper_term,
                                         .discard = keeper_discard};

START_TEST(test_taken_messages_outlive_their_turn)
{
    sv_pid k;
    sv_spawn_opts o = {.scheduler = SV_SCHED_ANY};
    ck_assert_int_eq(sv_start(T, &keeper_ops, NULL, &o, 2000, &k), 0);
    for (int i = 0; i < 5; i++)
        ck_assert_int_eq(sv_send_tag(k, 1, &i, sizeof i), 0);
    ck_assert_int_eq(sv_send_tag(k, 2, NULL, 0), 0);
    for (int i = 0; i < 5; i++) {
        sv_msg *m = recv_match(SV_MSG_INFO, 1, 0, SV_PID_NONE, 2000);
        ck_assert_ptr_nonnull(m);
        ck_assert_int_eq(*(int *)m->data, i); /* intact, and in order */
        sv_msg_free(m);
    }
    uint64_t ref = sv_monitor(T, k);
    sv_exit(T, k, SV_SHUTDOWN);
    expect_down(ref, 2000);
}
END_TEST

START_TEST(test_held_messages_keep_counting_against_the_mailbox_bound)
{
    sv_pid k;
    sv_spawn_opts o = {.scheduler = SV_SCHED_ANY, .mailbox_cap = 4};
    ck_assert_int_eq(sv_start(T, &keeper_ops, NULL, &o, 2000, &k), 0);
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(sv_send_tag(k, 4, &i, sizeof i), 0);
    /* handled (held) or not, the four fill the bound: a fifth is refused */
    for (int t = 0; t < 20; t++) {
        ck_assert_int_eq(sv_send_tag(k, 4, NULL, 0), -EAGAIN);
        usleep(5000);
    }
    sv_msg *rel = sv_msg_new(5, NULL, 0);
    ck_assert_int_eq(sv_send_owed(k, rel), 0); /* not counted: it gets through */
    for (int i = 0; i < 4; i++) {
        sv_msg *m = recv_match(SV_MSG_INFO, 4, 0, SV_PID_NONE, 2000);
        ck_assert_ptr_nonnull(m);
        ck_assert_int_eq(*(int *)m->data, i);
        sv_msg_free(m);
    }
    ck_assert_int_eq(sv_send_tag(k, 4, NULL, 0), 0); /* released: room again */
    uint64_t ref = sv_monitor(T, k);
    sv_exit(T, k, SV_SHUTDOWN);
    expect_down(ref, 2000);
}
END_TEST

START_TEST(test_unhandled_messages_are_discarded_when_a_process_ends)
{
    atomic_store(&discarded, 0);
    sv_pid k;
    sv_spawn_opts o = {.scheduler = SV_SCHED_ANY};
    ck_assert_int_eq(sv_start(T, &keeper_ops, NULL, &o, 2000, &k), 0);
    uint64_t ref = sv_monitor(T, k);
    ck_assert_int_eq(sv_send_tag(k, 3, NULL, 0), 0);
    for (int i = 0; i < 10; i++)
        ck_assert_int_eq(sv_send_tag(k, 7, NULL, 0), 0); /* still queued when it stops */
    expect_down(ref, 2000);
    ck_assert_int_eq(atomic_load(&discarded), 10);
}
END_TEST

START_TEST(test_node_stop_ends_processes_still_running)
{
    sv_pid none = SV_PID_NONE;
    for (int i = 0; i < 100; i++) {
        sv_pid p;
        sv_spawn_opts o = {.scheduler = SV_SCHED_ANY};
        ck_assert_int_eq(sv_spawn(T, &echo_ops, &none, &o, &p), 0);
    }
    sv_inbox_close(T);
    T = NULL;
    sv_node_stop();
    sv_node_stats st;
    sv_node_get_stats(&st);
    ck_assert_uint_eq(st.processes, 0);
    ck_assert_int_eq(sv_node_start(NULL), 0); /* teardown stops it again */
    T = sv_inbox_open();
}
END_TEST

/* The idle spin (node.busy_wait_us) lasts a moment after work, then the
 * schedulers sleep: an idle node must not keep burning its cores. */
static double cpu_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) + (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

START_TEST(test_idle_schedulers_stop_spinning)
{
    node_teardown(); /* a node of its own, with a long spin */
    sv_node_opts o = {.schedulers = 2, .spin_us = 2000};
    ck_assert_int_eq(sv_node_start(&o), 0);
    T = sv_inbox_open();
    sv_pid a = spawn_echo(SV_PID_NONE, false, SV_SCHED_ON(0)), b = spawn_echo(SV_PID_NONE, false, SV_SCHED_ON(1));
    for (int i = 0; i < 2000; i++) { /* work on both schedulers, then none */
        sv_msg *r = NULL;
        ck_assert_int_eq(sv_call(T, i % 2 ? a : b, sv_msg_new(1, &i, sizeof i), 2000, &r), 0);
        sv_msg_free(r);
    }
    double before = cpu_seconds();
    usleep(400 * 1000);
    double used = cpu_seconds() - before;
    /* Spinning through it would be 0.8 s (two cores); asleep, next to 0. */
    ck_assert_msg(used < 0.1, "an idle node used %.3f s of CPU in 0.4 s", used);
}
END_TEST

/* ------------------------------------------------- races (make tsan) */

/* These run a path that crosses threads while another thread watches it,
 * so that the ThreadSanitizer build (make tsan) sees any unsynchronised
 * access on it; in a plain build they check the figures add up. */

/* bouncer: passes a counted-down message to its peer (tag 0 carries the
 * peer's pid); the one that gets tag 1 tells the test thread. */
typedef struct bouncer {
    sv_pid peer, report;
} bouncer;
static int bouncer_init(sv_proc *self, void *arg)
{
    bouncer *b = calloc(1, sizeof *b);
    if (!b)
        return -ENOMEM;
    b->report = *(sv_pid *)arg;
    b->peer = SV_PID_NONE;
    sv_set_state(self, b);
    return 0;
}
static int bouncer_info(sv_proc *self, sv_msg *m)
{
    bouncer *b = sv_state(self);
    if (m->tag == 0) {
        b->peer = *SV_MSG_AS(m, sv_pid);
        return 0;
    }
    return sv_send_tag(m->tag == 1 ? b->report : b->peer, m->tag == 1 ? 1 : m->tag - 1, NULL, 0);
}
static void bouncer_term(sv_proc *self, int reason)
{
    (void)reason;
    free(sv_state(self));
}
static const sv_server_ops bouncer_ops = {
    .name = "bouncer", .init = bouncer_init, .handle_info = bouncer_info, .terminate = bouncer_term};

/* The per-scheduler counts behind sv_node_get_stats (messages, wake-ups,
 * spin time) are written by each scheduler as it works and read by any
 * thread (/metrics, /api/overview): each write must be atomic. (The
 * message count was a plain ++ until TSan caught this test's reads.) */
START_TEST(test_stats_read_while_two_schedulers_work)
{
    node_teardown(); /* a node that spins too, so spin time moves as well */
    sv_node_opts no = {.schedulers = 2, .spin_us = 50};
    ck_assert_int_eq(sv_node_start(&no), 0);
    T = sv_inbox_open();
    sv_pid me = sv_self(T), a, b;
    sv_spawn_opts oa = {.scheduler = SV_SCHED_ON(0)}, ob = {.scheduler = SV_SCHED_ON(1)};
    ck_assert_int_eq(sv_start(T, &bouncer_ops, &me, &oa, 2000, &a), 0);
    ck_assert_int_eq(sv_start(T, &bouncer_ops, &me, &ob, 2000, &b), 0);
    ck_assert_int_eq(sv_send_tag(a, 0, &b, sizeof b), 0);
    ck_assert_int_eq(sv_send_tag(b, 0, &a, sizeof a), 0);
    sv_node_stats st;
    sv_node_get_stats(&st);
    uint64_t before = st.messages, seen = st.messages, reads = 0;
    enum { BOUNCES = 20000 };
    ck_assert_int_eq(sv_send_tag(a, BOUNCES, NULL, 0), 0);
    uint64_t deadline = now_ms() + 20000;
    sv_msg *done;
    while (!(done = recv_match(SV_MSG_INFO, 1, 0, SV_PID_NONE, 0))) {
        sv_node_get_stats(&st);
        ck_assert_uint_ge(st.messages, seen); /* counts only grow */
        seen = st.messages;
        reads++;
        ck_assert_msg(now_ms() < deadline, "the bouncing did not end within 20 s");
    }
    sv_msg_free(done);
    sv_node_get_stats(&st);
    ck_assert_uint_ge(st.messages - before, BOUNCES);
    ck_assert_uint_gt(reads, 0);
}
END_TEST

/* flooder: sends to every pid in its list, again and again (tag counts the
 * rounds down), and tells the test thread how many sends failed in a way a
 * send to a process that may be ending must not (anything but 0, -ESRCH
 * or -EAGAIN). */
#define FLOOD_PIDS 64
typedef struct flood {
    sv_pid to[FLOOD_PIDS];
    int bad;
} flood;
static int flooder_init(sv_proc *self, void *arg)
{
    flood *f = malloc(sizeof *f);
    if (!f)
        return -ENOMEM;
    *f = *(flood *)arg;
    sv_set_state(self, f);
    return 0;
}
static int flooder_info(sv_proc *self, sv_msg *m)
{
    flood *f = sv_state(self);
    for (int i = 0; i < FLOOD_PIDS; i++) {
        int rc = sv_send_tag(f->to[i], 5, NULL, 0);
        if (rc != 0 && rc != -ESRCH && rc != -EAGAIN)
            f->bad++;
    }
    if (m->tag > 1)
        return sv_send_tag(sv_self(self), m->tag - 1, NULL, 0);
    return sv_send_tag(sv_parent(self), 2, &f->bad, sizeof f->bad);
}
static void flooder_term(sv_proc *self, int reason)
{
    (void)reason;
    free(sv_state(self));
}
static const sv_server_ops flooder_ops = {
    .name = "flooder", .init = flooder_init, .handle_info = flooder_info, .terminate = flooder_term};

/* Sends from one scheduler race the ends of their addressees on the
 * other: the slot lock and generation decide, and every message is either
 * queued (then drained by the dying process) or refused with -ESRCH. */
START_TEST(test_sends_race_exits_on_another_scheduler)
{
    flood f = {.bad = 0};
    for (int i = 0; i < FLOOD_PIDS; i++)
        f.to[i] = spawn_echo(SV_PID_NONE, false, SV_SCHED_ON(1));
    sv_pid fl;
    sv_spawn_opts o = {.scheduler = SV_SCHED_ON(0)};
    ck_assert_int_eq(sv_spawn(T, &flooder_ops, &f, &o, &fl), 0);
    ck_assert_int_eq(sv_send_tag(fl, 200, NULL, 0), 0);
    uint64_t refs[FLOOD_PIDS];
    for (int i = 0; i < FLOOD_PIDS; i++) {
        refs[i] = sv_monitor(T, f.to[i]);
        ck_assert_int_eq(sv_exit(T, f.to[i], SV_KILL), 0);
        if (i % 8 == 0)
            usleep(1000); /* spread the exits over the flood */
    }
    sv_msg *m = recv_match(SV_MSG_INFO, 2, 0, fl, 20000);
    ck_assert_msg(m != NULL, "the flooder did not finish");
    ck_assert_int_eq(*SV_MSG_AS(m, int), 0);
    sv_msg_free(m);
    for (int i = 0; i < FLOOD_PIDS; i++) {
        ck_assert_int_eq(expect_down(refs[i], 5000), SV_KILLED);
        ck_assert(!sv_is_alive(f.to[i]));
    }
}
END_TEST

/* sv_retire's promise, watched from both sides: readers on two schedulers
 * load a shared pointer and read through it in their turns while the test
 * thread keeps replacing it and retiring the old one. A version freed
 * while a turn could still hold it is read after its free: the free_fn
 * poisons it first (a plain build sees the poison), and TSan reports the
 * free racing the read. */
#define SHARED_MAGIC 0x5eadu
typedef struct shared_ver {
    unsigned magic, n;
} shared_ver;
static _Atomic(shared_ver *) shared_now;
static atomic_int shared_freed;

static void shared_free(void *p)
{
    shared_ver *v = p;
    v->magic = 0;
    free(v);
    atomic_fetch_add(&shared_freed, 1);
}

static int shared_reader_info(sv_proc *self, sv_msg *m)
{
    int *bad = sv_state(self);
    shared_ver *v = atomic_load_explicit(&shared_now, memory_order_acquire);
    if (!v || v->magic != SHARED_MAGIC)
        (*bad)++;
    if (m->tag > 1)
        return sv_send_tag(sv_self(self), m->tag - 1, NULL, 0);
    return sv_send_tag(sv_parent(self), 1, bad, sizeof *bad);
}
static int shared_reader_init(sv_proc *self, void *arg)
{
    (void)arg;
    int *bad = calloc(1, sizeof *bad);
    if (!bad)
        return -ENOMEM;
    sv_set_state(self, bad);
    return 0;
}
static void shared_reader_term(sv_proc *self, int reason)
{
    (void)reason;
    free(sv_state(self));
}
static const sv_server_ops shared_reader_ops = {.name = "shared_reader",
                                                .init = shared_reader_init,
                                                .handle_info = shared_reader_info,
                                                .terminate = shared_reader_term};

static shared_ver *shared_new(unsigned n)
{
    shared_ver *v = malloc(sizeof *v);
    ck_assert_ptr_nonnull(v);
    v->magic = SHARED_MAGIC;
    v->n = n;
    return v;
}

START_TEST(test_retired_data_outlives_readers_on_two_schedulers)
{
    atomic_store(&shared_now, shared_new(0));
    atomic_store(&shared_freed, 0);
    sv_pid r[2];
    for (int i = 0; i < 2; i++) {
        sv_spawn_opts o = {.scheduler = SV_SCHED_ON(i)};
        ck_assert_int_eq(sv_spawn(T, &shared_reader_ops, NULL, &o, &r[i]), 0);
        ck_assert_int_eq(sv_send_tag(r[i], 20000, NULL, 0), 0);
    }
    unsigned versions = 0;
    int done = 0, bad = 0;
    uint64_t deadline = now_ms() + 20000;
    while (done < 2) {
        sv_retire(atomic_exchange(&shared_now, shared_new(++versions)), shared_free);
        sv_msg *m = recv_match(SV_MSG_INFO, 1, 0, SV_PID_NONE, 0);
        if (m) {
            bad += *SV_MSG_AS(m, int);
            done++;
            sv_msg_free(m);
        }
        if (versions % 64 == 0)
            usleep(100); /* let the schedulers pass their quiescent points now and then */
        ck_assert_msg(now_ms() < deadline, "the readers did not finish within 20 s");
    }
    ck_assert_int_eq(bad, 0);
    /* Then retirements that meet idle schedulers at every point of their
     * way to sleep (woken by the one before, spinning, asleep): each must
     * be freed with no other work to wake a scheduler. */
    for (unsigned round = 0; round < 100; round++) {
        sv_retire(atomic_exchange(&shared_now, shared_new(++versions)), shared_free);
        usleep(round % 20 * 10);
        sv_retire(atomic_exchange(&shared_now, shared_new(++versions)), shared_free);
        for (int i = 0; i < 200 && (unsigned)atomic_load(&shared_freed) < versions; i++)
            usleep(500);
        ck_assert_msg((unsigned)atomic_load(&shared_freed) == versions, "round %u: %d of %u versions freed", round,
                      atomic_load(&shared_freed), versions);
    }
    sv_retire(atomic_exchange(&shared_now, NULL), shared_free);
}
END_TEST

static void node_setup_small(void) { node_setup_with(4); }

static Suite *runtime_suite(void)
{
    Suite *s = suite_create("supervisor/runtime");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, node_setup, node_teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_pid_of_ended_process_is_stale);
    tcase_add_test(tc, test_pid_of_other_node_or_creation_is_refused);
    tcase_add_test(tc, test_full_mailbox_refuses_with_eagain_and_nothing_is_lost);
    tcase_add_test(tc, test_messages_from_one_sender_arrive_in_order);
    tcase_add_test(tc, test_call_returns_the_reply);
    tcase_add_test(tc, test_call_times_out_and_late_reply_is_dropped);
    tcase_add_test(tc, test_call_to_dead_process_fails_at_once);
    tcase_add_test(tc, test_call_ends_with_callee_exit_reason);
    tcase_add_test(tc, test_call_without_handle_call_is_enotsup);
    tcase_add_test(tc, test_async_call_gets_reply_timeout_or_exit);
    tcase_add_test(tc, test_each_refusal_leaves_the_message_with_its_sender);
    tcase_add_test(tc, test_full_mailbox_refusals_follow_the_rule);
    tcase_add_test(tc, test_monitor_reports_exit_reason);
    tcase_add_test(tc, test_monitor_of_dead_pid_is_noproc_and_demonitor_silences);
    tcase_add_test(tc, test_link_propagates_failure_and_its_reason);
    tcase_add_test(tc, test_trapping_process_gets_exit_message_and_lives);
    tcase_add_test(tc, test_normal_exit_does_not_kill_linked);
    tcase_add_test(tc, test_link_to_dead_pid_gives_noproc);
    tcase_add_test(tc, test_kill_ends_even_a_trapping_process);
    tcase_add_test(tc, test_spawn_link_from_inbox_delivers_exit);
    tcase_add_test(tc, test_start_reports_init_failure);
    tcase_add_test(tc, test_failed_init_gets_no_terminate_and_the_runtime_clears_the_rest);
    tcase_add_test(tc, test_live_process_gets_terminate_exactly_once);
    tcase_add_test(tc, test_send_after_fires_and_cancel_prevents);
    tcase_add_test(tc, test_timers_die_with_their_owner);
    tcase_add_test(tc, test_timer_armed_late_in_a_turn_counts_from_then);
    tcase_add_test(tc, test_shared_buffer_is_passed_not_copied_and_released_once);
    tcase_add_test(tc, test_registered_name_follows_the_process);
    tcase_add_test(tc, test_thousands_of_processes_leave_nothing_behind);
    tcase_add_test(tc, test_node_stop_ends_processes_still_running);
    tcase_add_test(tc, test_taken_messages_outlive_their_turn);
    tcase_add_test(tc, test_held_messages_keep_counting_against_the_mailbox_bound);
    tcase_add_test(tc, test_unhandled_messages_are_discarded_when_a_process_ends);
    tcase_add_test(tc, test_idle_schedulers_stop_spinning);
    tcase_add_test(tc, test_stats_read_while_two_schedulers_work);
    tcase_add_test(tc, test_retired_data_outlives_readers_on_two_schedulers);
    tcase_add_test(tc, test_sends_race_exits_on_another_scheduler);
    suite_add_tcase(s, tc);

    TCase *small = tcase_create("small-mailbox");
    tcase_add_checked_fixture(small, node_setup_small, node_teardown);
    tcase_add_test(small, test_inbox_mailbox_is_bounded_too);
    suite_add_tcase(s, small);
    return s;
}

int main(void) { return run_suite(runtime_suite()); }
