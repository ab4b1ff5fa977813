/* check_helpers.h — shared by the runtime's Check suites: a node per test,
 * an inbox for the test's own thread, receive helpers, and the counter
 * server used to exercise supervisors.
 *
 * Check forks each test, so every test gets a fresh node and a leak in one
 * cannot hide in another.
 */
#ifndef PLEXUS_CHECK_HELPERS_H
#define PLEXUS_CHECK_HELPERS_H

#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "supervisor/sv.h"

static sv_proc *T; /* the test thread's inbox */

static void node_setup_with(uint32_t mailbox_cap)
{
    sv_node_opts o = {.schedulers = 2, .mailbox_cap = mailbox_cap, .spin_us = -1};
    ck_assert_int_eq(sv_node_start(&o), 0);
    T = sv_inbox_open();
    ck_assert_ptr_nonnull(T);
}
static void node_setup(void) { node_setup_with(0); }
static void node_teardown(void)
{
    sv_inbox_close(T);
    T = NULL;
    sv_node_stop();
}

static inline uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

typedef struct match_ctx {
    int kind;     /* -1: any */
    uint32_t tag; /* 0: any */
    uint64_t ref; /* 0: any */
    sv_pid from;  /* none: any */
} match_ctx;

static bool match_fn(const sv_msg *m, void *ctx)
{
    match_ctx *c = ctx;
    return (c->kind < 0 || m->kind == c->kind) && (!c->tag || m->tag == c->tag) && (!c->ref || m->ref == c->ref) &&
           (sv_pid_is_none(c->from) || sv_pid_eq(c->from, m->from));
}

static inline sv_msg *recv_match(int kind, uint32_t tag, uint64_t ref, sv_pid from, int timeout_ms)
{
    match_ctx c = {kind, tag, ref, from};
    return sv_recv(T, timeout_ms, match_fn, &c);
}

/* The DOWN for ref; fails the test if it does not come. Returns the reason. */
static inline int expect_down(uint64_t ref, int timeout_ms)
{
    sv_msg *m = recv_match(SV_MSG_DOWN, 0, ref, SV_PID_NONE, timeout_ms);
    ck_assert_msg(m != NULL, "no DOWN within %d ms", timeout_ms);
    int reason = m->status;
    sv_msg_free(m);
    return reason;
}

/* ------------------------------------------------------- counter server */

/* A counter: increment, read, reset. Reset at zero crashes on purpose.
 * terminate saves the count under the child's label and init restores it,
 * standing in for a process that persists its state. Every init and
 * terminate is appended to a journal, so tests can check the order in which
 * a supervisor started and stopped its children. */
enum { CNT_INC = 1, CNT_READ, CNT_RESET, CNT_STOP_NORMAL, CNT_HANG_ON_SHUTDOWN };

#define STORE_MAX 64
static struct {
    pthread_mutex_t lock;
    char key[STORE_MAX][32];
    int val[STORE_MAX];
    int n;
    char journal[64][40];
    int nj;
    int init_fail; /* >0: the next init_fail inits fail with -EIO */
} store = {.lock = PTHREAD_MUTEX_INITIALIZER};

static void journal(const char *what, const char *label)
{
    pthread_mutex_lock(&store.lock);
    if (store.nj < 64)
        snprintf(store.journal[store.nj++], sizeof store.journal[0], "%s %s", what, label);
    pthread_mutex_unlock(&store.lock);
}

/* The journal as one string: "init a,init b,term b". */
static inline void journal_str(char *out, size_t len)
{
    pthread_mutex_lock(&store.lock);
    out[0] = '\0';
    for (int i = 0; i < store.nj; i++) {
        if (i)
            strncat(out, ",", len - strlen(out) - 1);
        strncat(out, store.journal[i], len - strlen(out) - 1);
    }
    pthread_mutex_unlock(&store.lock);
}

static inline void journal_reset(void)
{
    pthread_mutex_lock(&store.lock);
    store.nj = 0;
    pthread_mutex_unlock(&store.lock);
}

static int *store_slot(const char *key)
{
    for (int i = 0; i < store.n; i++)
        if (strcmp(store.key[i], key) == 0)
            return &store.val[i];
    ck_assert_int_lt(store.n, STORE_MAX);
    snprintf(store.key[store.n], sizeof store.key[0], "%s", key);
    store.val[store.n] = 0;
    return &store.val[store.n++];
}

typedef struct counter {
    int count;
    bool hang; /* ignore shutdown requests (to test kill timeouts) */
} counter;

static int counter_init(sv_proc *self, void *arg)
{
    (void)arg;
    pthread_mutex_lock(&store.lock);
    bool fail = store.init_fail > 0;
    if (fail)
        store.init_fail--;
    pthread_mutex_unlock(&store.lock);
    if (fail)
        return -EIO;
    counter *c = calloc(1, sizeof *c);
    if (!c)
        return -ENOMEM;
    pthread_mutex_lock(&store.lock);
    c->count = *store_slot(sv_label(self));
    pthread_mutex_unlock(&store.lock);
    sv_set_state(self, c);
    sv_trap_exit(self, true); /* so terminate runs on shutdown, as in OTP */
    journal("init", sv_label(self));
    return 0;
}

static int reply_int(sv_msg *req, int v)
{
    sv_reply_data(sv_from_of(req), &v, sizeof v);
    return 0; /* a caller gone meanwhile is no reason to crash */
}

static int counter_call(sv_proc *self, sv_msg *req)
{
    counter *c = sv_state(self);
    switch (req->tag) {
    case CNT_INC: return reply_int(req, ++c->count);
    case CNT_READ: return reply_int(req, c->count);
    case CNT_RESET:
        if (c->count == 0)
            return -EDOM; /* the chosen crash */
        c->count = 0;
        return reply_int(req, 0);
    case CNT_STOP_NORMAL:
        reply_int(req, c->count);
        sv_stop(self, SV_NORMAL);
        return 0;
    case CNT_HANG_ON_SHUTDOWN: c->hang = true; return reply_int(req, 0);
    }
    return -EINVAL;
}

static int counter_info(sv_proc *self, sv_msg *m)
{
    counter *c = sv_state(self);
    if (m->kind == SV_MSG_EXIT && !c->hang) {
        sv_stop(self, m->status); /* a trapped shutdown from the supervisor */
        return 0;
    }
    return 0;
}

static void counter_terminate(sv_proc *self, int reason)
{
    (void)reason;
    counter *c = sv_state(self);
    pthread_mutex_lock(&store.lock);
    *store_slot(sv_label(self)) = c->count;
    pthread_mutex_unlock(&store.lock);
    journal("term", sv_label(self));
    free(c);
}

static const sv_server_ops counter_ops = {
    .name = "counter",
    .init = counter_init,
    .handle_call = counter_call,
    .handle_info = counter_info,
    .terminate = counter_terminate,
};

static inline int counter_start(sv_proc *sup, const sv_spawn_opts *opts, void *arg, sv_pid *pid)
{
    return sv_spawn(sup, &counter_ops, arg, opts, pid);
}

/* A call to a counter from the test thread; returns the int answer, or the
 * (negative) call error. */
static inline int counter_do(sv_pid pid, int op)
{
    sv_msg *r = NULL;
    int rc = sv_call(T, pid, sv_msg_new((uint32_t)op, NULL, 0), 2000, &r);
    if (rc < 0)
        return rc;
    int v = *SV_MSG_AS(r, int);
    sv_msg_free(r);
    return v;
}

#define COUNTER_SPEC(name, restart_type)                                                                               \
    {                                                                                                                  \
        .id = (name), .start = counter_start, .restart = (restart_type), .shutdown_ms = 2000                           \
    }

#endif
