/* ab_idle.c — idle mode of amqp_bench: N connections that do SASL and open
 * and nothing else, opened a bounded number at a time, held --hold seconds
 * once all are open (`READY connections=N` says when), then closed, each
 * close answered. For watching a broker's memory per connection from
 * outside (run_bench.py reads its RSS at READY). */
#include <errno.h>
#include <string.h>
#include <sys/resource.h>

#include "tests/bench/ab.h"

void ab_idle_print_config(const bench *b, const char *label)
{
    printf("== idle  target=%s  connections=%" PRIu64 "  hold=%g s  threads=%d  (at most %d opening at once)\n", label,
           b->count, b->o->hold_s, b->threads, IDLE_OPENING);
    fflush(stdout);
}

/* At most IDLE_OPENING (ab.h) opens in flight; each open that completes
 * starts the next. */
void ab_idle_connect_more_locked(bench *b)
{
    while (!b->finishing && b->idle_opening < IDLE_OPENING && (uint64_t)b->idle_next < b->count) {
        conn_ctx *c = ab_ctx_new_locked(b, ROLE_IDLE, b->idle_next);
        if (!c || ab_ctx_connect_locked(b, c) < 0) {
            ab_fail_locked(b, "out of memory creating idle connection %d", b->idle_next);
            return;
        }
        b->idle_next++;
        b->idle_opening++;
    }
}

/* idle: the broker's open arrived on c; when it is the last, say READY. */
void ab_idle_opened(bench *b, conn_ctx *c)
{
    (void)c;
    pthread_mutex_lock(&b->lock);
    b->idle_opening--;
    uint64_t n = __atomic_add_fetch(&b->unique, 1, __ATOMIC_RELAXED);
    if (n == b->count && !b->finishing) {
        b->t_ready = b->t_end = ab_now_ns();
        printf("READY connections=%" PRIu64 "\n", n);
        fflush(stdout);
    }
    ab_idle_connect_more_locked(b);
    pthread_mutex_unlock(&b->lock);
}

/* idle: one descriptor a connection, and 64 spare for the proactor and
 * stdio. Raises the soft limit to the hard one; fails the run, saying so,
 * when even that is too few. */
int ab_idle_raise_nofile(bench *b)
{
    struct rlimit rl;
    uint64_t need = b->count + 64;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0) {
        snprintf(b->error, sizeof b->error, "getrlimit(RLIMIT_NOFILE): %s", strerror(errno));
    } else {
        if (rl.rlim_cur < rl.rlim_max) {
            struct rlimit want = {rl.rlim_max, rl.rlim_max};
            if (setrlimit(RLIMIT_NOFILE, &want) == 0)
                rl = want;
        }
        if (rl.rlim_cur == RLIM_INFINITY || need <= (uint64_t)rl.rlim_cur)
            return 0;
        snprintf(b->error, sizeof b->error,
                 "%" PRIu64 " connections need %" PRIu64 " open files (64 spare), but the limit is %" PRIu64
                 " (hard limit %" PRIu64 "): lower --count or raise the hard limit (ulimit -Hn, limits.conf)",
                 b->count, need, (uint64_t)rl.rlim_cur, (uint64_t)rl.rlim_max);
    }
    b->failed = true;
    fprintf(stderr, "amqp_bench: error: %s\n", b->error);
    return -1;
}

/* idle: how long opening took, and whether the broker answered every close. */
bool ab_idle_report(bench *b, const char *label, double cpu)
{
    uint64_t n = b->count, opened = b->unique;
    double open_s = b->t_ready ? (double)(b->t_ready - b->t_start) / 1e9 : 0;
    bool ok = !b->failed && b->t_ready && b->idle_closed == n;
    if (b->t_ready) {
        printf("   opened       %" PRIu64 " connections in %.3f s (%.0f a second)\n", n, open_s,
               open_s > 0 ? (double)n / open_s : 0);
        if (b->t_finish > b->t_ready)
            printf("   held         %.1f s, then closed: the broker answered %" PRIu64 " of %" PRIu64 " closes\n",
                   (double)(b->t_finish - b->t_ready) / 1e9, b->idle_closed, n);
    } else {
        printf("   opened       %" PRIu64 " of %" PRIu64 " connections\n", opened, n);
    }
    printf("   client       %d thread%s, cpu %.2f s\n", b->threads, b->threads == 1 ? "" : "s", cpu);
    if (!b->failed && b->t_ready && b->idle_closed < n) {
        snprintf(b->error, sizeof b->error,
                 "%" PRIu64 " connections had no answer to their close within %.0f s and were cut", n - b->idle_closed,
                 (double)b->close_grace_ns / 1e9);
        b->failed = true;
        fprintf(stderr, "amqp_bench: error: %s\n", b->error);
    }
    if (b->failed)
        printf("   FAILED       %s\n", b->error);
    printf("RESULT mode=idle target=%s connections=%" PRIu64 " open_s=%.3f hold_s=%g status=%s", label, n, open_s,
           b->o->hold_s, ok ? "ok" : "FAIL");
    if (!ok)
        printf(" opened=%" PRIu64 " reason=%s", opened,
               b->conn_failed ? "connect"
               : b->timed_out ? "timeout"
                              : "error");
    printf("\n");
    fflush(stdout);
    return ok;
}

/* The tick's part for idle (under b->lock): close them all once held long
 * enough; fail when no connection opens for --connect-timeout. */
void ab_idle_tick_locked(bench *b, uint64_t t, uint64_t u)
{
    if (b->t_ready && t - b->t_ready >= (uint64_t)(b->o->hold_s * 1e9)) {
        ab_finish_locked(b); /* held long enough: close them all */
    } else if (!b->t_ready && t - b->last_progress_ns >= (uint64_t)(b->o->connect_s * 1e9)) {
        ab_fail_locked(b, "no connection opened for %.0f s (%" PRIu64 " of %" PRIu64 " open, %d opening)",
                       b->o->connect_s, u, b->count, b->idle_opening);
    }
}
