/* bench_runtime.c — figures for the actor runtime (make bench).
 *
 * Prints, for this machine:
 *   - one-way throughput between two schedulers, with credit-based batching
 *     (the consumer hands back credit every CREDIT_EVERY messages);
 *   - ping-pong round trips on one scheduler and across two, median and p99,
 *     with the idle spin on and off (off shows the cost of waking a sleeping
 *     loop);
 *   - spawn + exit rate;
 *   - memory per idle process (RSS growth over 100 000 idle processes).
 * Nothing is asserted: this is a measurement, not a test.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "supervisor/sv.h"

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

enum { TAG_GO = 1, TAG_DATA, TAG_CREDIT, TAG_DONE, TAG_PING, TAG_PONG };

/* ------------------------------------------------------------ throughput */

#define CREDIT_EVERY 512
#define WINDOW 4096

typedef struct flow {
    sv_pid peer, report;
    uint64_t total, sent, got;
    int64_t credit;
} flow;

static int flow_init(sv_proc *self, void *arg)
{
    flow *f = calloc(1, sizeof *f);
    *f = *(flow *)arg;
    sv_set_state(self, f);
    return 0;
}

static void producer_pump(sv_proc *self, flow *f)
{
    (void)self;
    while (f->credit > 0 && f->sent < f->total) {
        sv_msg *m = sv_msg_new(TAG_DATA, &f->sent, sizeof f->sent);
        int rc = sv_send(f->peer, m);
        if (rc < 0) { /* cannot happen within credit; count it if it does */
            sv_msg_free(m);
            fprintf(stderr, "send refused: %d\n", rc);
            return;
        }
        f->sent++;
        f->credit--;
    }
}

static int producer_info(sv_proc *self, sv_msg *m)
{
    flow *f = sv_state(self);
    if (m->tag == TAG_GO) {
        f->peer = *SV_MSG_AS(m, sv_pid);
        f->credit = WINDOW;
    } else if (m->tag == TAG_CREDIT) {
        f->credit += *SV_MSG_AS(m, int64_t);
    }
    producer_pump(self, f);
    return 0;
}

static int consumer_info(sv_proc *self, sv_msg *m)
{
    (void)self;
    flow *f = sv_state(self);
    if (m->tag != TAG_DATA)
        return 0;
    f->got++;
    if (f->got % CREDIT_EVERY == 0) {
        int64_t c = CREDIT_EVERY;
        sv_send_tag(m->from, TAG_CREDIT, &c, sizeof c);
    }
    if (f->got == f->total)
        sv_send_tag(f->report, TAG_DONE, NULL, 0);
    return 0;
}

static void flow_term(sv_proc *self, int r)
{
    (void)r;
    free(sv_state(self));
}

static const sv_server_ops producer_ops = {
    .name = "producer", .init = flow_init, .handle_info = producer_info, .terminate = flow_term};
static const sv_server_ops consumer_ops = {
    .name = "consumer", .init = flow_init, .handle_info = consumer_info, .terminate = flow_term};

static bool is_tag(const sv_msg *m, void *ctx) { return m->tag == *(uint32_t *)ctx; }

static sv_msg *wait_tag(sv_proc *in, uint32_t tag)
{
    sv_msg *m = sv_recv(in, 60000, is_tag, &tag);
    if (!m) {
        fprintf(stderr, "bench: timed out waiting for tag %u\n", tag);
        exit(1);
    }
    return m;
}

static void bench_throughput(sv_proc *in, uint64_t n)
{
    flow a = {.total = n, .report = sv_self(in)};
    sv_pid prod, cons;
    sv_spawn_opts po = {.scheduler = SV_SCHED_ON(0)}, co = {.scheduler = SV_SCHED_ON(1), .mailbox_cap = WINDOW};
    sv_start(in, &producer_ops, &a, &po, 1000, &prod);
    sv_start(in, &consumer_ops, &a, &co, 1000, &cons);
    sv_node_stats s0, s1;
    sv_node_get_stats(&s0);
    uint64_t t0 = now_ns();
    sv_send_tag(prod, TAG_GO, &cons, sizeof cons);
    sv_msg_free(wait_tag(in, TAG_DONE));
    uint64_t dt = now_ns() - t0;
    sv_node_get_stats(&s1);
    printf("  cross-scheduler one-way:  %8.2f M msgs/s  (%llu msgs, %.0f ns each, %llu wake-ups)\n",
           (double)n * 1e3 / (double)dt, (unsigned long long)n, (double)dt / (double)n,
           (unsigned long long)(s1.wakeups - s0.wakeups));
    sv_exit(in, prod, SV_KILL);
    sv_exit(in, cons, SV_KILL);
}

/* -------------------------------------------------------------- ping-pong */

typedef struct pinger {
    sv_pid peer, report;
    int rounds, done;
    uint64_t t;
    uint64_t *lat;
} pinger;

static int pinger_info(sv_proc *self, sv_msg *m)
{
    pinger *p = sv_state(self);
    uint64_t now = now_ns();
    if (m->tag == TAG_GO) {
        p->peer = *SV_MSG_AS(m, sv_pid);
    } else if (m->tag == TAG_PONG) {
        p->lat[p->done++] = now - p->t;
        if (p->done == p->rounds) {
            sv_send_tag(p->report, TAG_DONE, NULL, 0);
            return 0;
        }
    } else {
        return 0;
    }
    p->t = now_ns();
    sv_send_tag(p->peer, TAG_PING, NULL, 0);
    return 0;
}

static int ponger_info(sv_proc *self, sv_msg *m)
{
    (void)self;
    if (m->tag == TAG_PING)
        sv_send_tag(m->from, TAG_PONG, NULL, 0);
    return 0;
}

static int pinger_init(sv_proc *self, void *arg)
{
    sv_set_state(self, arg);
    return 0;
}

static const sv_server_ops pinger_ops = {.name = "pinger", .init = pinger_init, .handle_info = pinger_info};
static const sv_server_ops ponger_ops = {.name = "ponger", .handle_info = ponger_info};

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void bench_pingpong(sv_proc *in, const char *what, int s_ping, int s_pong, int rounds)
{
    pinger p = {.report = sv_self(in), .rounds = rounds, .lat = calloc((size_t)rounds, sizeof(uint64_t))};
    sv_pid a, b;
    sv_spawn_opts ao = {.scheduler = SV_SCHED_ON(s_ping)}, bo = {.scheduler = SV_SCHED_ON(s_pong)};
    sv_start(in, &pinger_ops, &p, &ao, 1000, &a);
    sv_start(in, &ponger_ops, NULL, &bo, 1000, &b);
    sv_send_tag(a, TAG_GO, &b, sizeof b);
    sv_msg_free(wait_tag(in, TAG_DONE));
    qsort(p.lat, (size_t)rounds, sizeof *p.lat, cmp_u64);
    double med = (double)p.lat[rounds / 2] / 1000.0, p99 = (double)p.lat[rounds * 99 / 100] / 1000.0;
    printf("  %-26s round trip median %7.2f us, p99 %7.2f us (one-way median %.2f us)\n", what, med, p99, med / 2);
    sv_exit(in, a, SV_KILL);
    sv_exit(in, b, SV_KILL);
    usleep(10000);
    free(p.lat);
}

/* ----------------------------------------------------------- spawn + exit */

static int quitter_init(sv_proc *self, void *arg)
{
    (void)arg;
    sv_stop(self, SV_NORMAL);
    return 0;
}
static const sv_server_ops quitter_ops = {.name = "quitter", .init = quitter_init};

typedef struct spawner {
    int n;
    sv_pid report;
} spawner;

static int spawner_info(sv_proc *self, sv_msg *m)
{
    spawner *s = sv_state(self);
    if (m->tag != TAG_GO)
        return 0;
    sv_spawn_opts o = {.scheduler = SV_SCHED_SELF};
    for (int i = 0; i < s->n; i++) {
        sv_pid p;
        if (sv_spawn(self, &quitter_ops, NULL, &o, &p) < 0)
            return -ENOMEM;
    }
    sv_send_tag(s->report, TAG_DONE, NULL, 0);
    return 0;
}
static const sv_server_ops spawner_ops = {.name = "spawner", .init = pinger_init, .handle_info = spawner_info};

static void bench_spawn(sv_proc *in, int n)
{
    spawner s = {n, sv_self(in)};
    sv_pid sp;
    sv_spawn_opts o = {.scheduler = SV_SCHED_ON(0)};
    sv_start(in, &spawner_ops, &s, &o, 1000, &sp);
    sv_node_stats st;
    sv_node_get_stats(&st);
    uint64_t base = st.processes;
    uint64_t t0 = now_ns();
    sv_send_tag(sp, TAG_GO, NULL, 0);
    sv_msg_free(wait_tag(in, TAG_DONE));
    do {
        sv_node_get_stats(&st);
    } while (st.processes > base);
    uint64_t dt = now_ns() - t0;
    printf("  spawn + init + exit:      %8.2f M processes/s  (%d, %.0f ns each)\n", (double)n * 1e3 / (double)dt, n,
           (double)dt / n);
    sv_exit(in, sp, SV_KILL);
}

/* ----------------------------------------------------------------- memory */

static long rss_kib(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    long pages = 0, resident = 0;
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &resident) != 2)
            resident = 0;
        fclose(f);
    }
    return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

static const sv_server_ops idle_ops = {.name = "idle"};

static void bench_memory(sv_proc *in, int n)
{
    sv_pid *pids = malloc((size_t)n * sizeof *pids);
    long before = rss_kib();
    sv_spawn_opts o = {.scheduler = SV_SCHED_ANY};
    for (int i = 0; i < n; i++)
        sv_spawn(NULL, &idle_ops, NULL, &o, &pids[i]);
    /* Let every first turn run (each process joins its scheduler's list). */
    sv_pid last;
    sv_start(in, &idle_ops, NULL, NULL, 5000, &last);
    usleep(200000);
    long after = rss_kib();
    printf("  memory per idle process:  %8.0f bytes  (RSS +%ld KiB for %d processes)\n",
           (double)(after - before) * 1024.0 / n, after - before, n);
    for (int i = 0; i < n; i++)
        sv_exit(in, pids[i], SV_KILL);
    sv_exit(in, last, SV_KILL);
    free(pids);
}

static void run_node(int spin_us, bool all)
{
    sv_node_opts o = {.schedulers = 2, .spin_us = spin_us};
    sv_node_start(&o);
    sv_proc *in = sv_inbox_open();
    if (all) {
        bench_throughput(in, 10 * 1000 * 1000);
        bench_pingpong(in, "same scheduler:", 0, 0, 200000);
        bench_pingpong(in, "across schedulers (spin):", 0, 1, 100000);
        bench_spawn(in, 500000);
        bench_memory(in, 100000);
    } else {
        bench_pingpong(in, "across schedulers (sleep):", 0, 1, 20000);
    }
    sv_inbox_close(in);
    sv_node_stop();
}

int main(void)
{
    sv_log_set_level(SV_LOG_WARNING);
    printf("runtime (2 schedulers, %ld cores online)\n", sysconf(_SC_NPROCESSORS_ONLN));
    run_node(-1, true);
    run_node(0, false);
    return 0;
}
