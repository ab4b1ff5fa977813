/* ab_report.c — what a run of amqp_bench prints: the head line before it
 * starts, and once no thread runs the figures, the exactly-once verdict and
 * the `RESULT key=value ...` line scripts parse (run_bench.py, admin_load.py).
 * Each mode's own lines come from its file; idle reports on its own. */
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "tests/bench/ab.h"

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static double pct_us(const uint64_t *v, size_t n, double p)
{
    if (!n)
        return 0;
    size_t i = (size_t)(p * (double)n);
    if (i > 0 && (double)i == p * (double)n)
        i--; /* nearest-rank */
    if (i >= n)
        i = n - 1;
    return (double)v[i] / 1000.0;
}

double ab_cpu_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

/* The run's head line(s): what it measures, against what, with which
 * counts and windows. */
void ab_print_config(const bench *b, const char *label)
{
    const options *o = b->o;
    if (b->mode == MODE_IDLE) {
        ab_idle_print_config(b, label);
        return;
    }
    if (b->mode == MODE_DRAIN) {
        ab_drain_print_config(b, label);
        return;
    }
    printf("== %s%s  target=%s  size=%zu B  qos=%s", ab_mode_name(b->mode), o->persistent ? " (persistent)" : "", label,
           b->size, b->qos == QOS_ALO ? "at-least-once" : "at-most-once");
    if (b->mode == MODE_THROUGHPUT)
        printf("  producers=%d consumers=%d", b->n_producers, o->direct ? b->n_producers : o->consumers);
    if (b->mode == MODE_FANOUT)
        printf("  subscribers=%d", o->subscribers);
    if (b->mode == MODE_FILL)
        printf("  count=%" PRIu64, b->count); /* the broker grants the credit */
    else
        printf("  count=%" PRIu64 "  credit=%u", b->count, b->credit);
    if (b->mode != MODE_REQREP && b->qos == QOS_ALO)
        printf("  window=%u", b->window);
    if (b->mode == MODE_FILL) {
        printf("\n   address      send %s (no consumer)\n", b->target_addr);
        fflush(stdout);
        return;
    }
    printf("\n   address      send %s, receive %s\n", b->target_addr,
           b->mode == MODE_REQREP && b->rsource == RSRC_DYNAMIC ? "(dynamic reply source)"
           : b->mode == MODE_REQREP                             ? b->named_reply
                                                                : b->source_addr);
    fflush(stdout);
}

/* The figures of a finished run (not idle's): counters are final, no
 * thread runs. Returns whether the run passed. */
bool ab_report(bench *b, const char *label, double cpu)
{
    bench_mode mode = b->mode;
    qos_level qos = b->qos;
    uint64_t count = b->count;
    ab_totals tot = {0};
    tot.size = b->size; /* drain: the fill's */
    size_t nlat = 0;
    for (conn_ctx *c = b->conns; c; c = c->next) {
        if (c->role == ROLE_PRODUCER || c->role == ROLE_RR_CLIENT) {
            tot.sent += c->sent;
            tot.accepted += c->accepted;
            tot.released += c->released;
            tot.no_outcome += c->no_outcome;
        }
        nlat += c->lat_n;
    }
    uint64_t *lat = malloc((nlat ? nlat : 1) * sizeof *lat);
    size_t k = 0;
    if (lat)
        for (conn_ctx *c = b->conns; c; c = c->next) {
            if (c->lat_n)
                memcpy(lat + k, c->lat, c->lat_n * sizeof *lat);
            k += c->lat_n;
        }
    else
        nlat = 0;
    qsort(lat, nlat, sizeof *lat, cmp_u64);
    tot.p50 = pct_us(lat, nlat, 0.50);
    tot.p99 = pct_us(lat, nlat, 0.99);
    free(lat);

    uint64_t t0 = b->t_first_send ? b->t_first_send : b->t_start;
    uint64_t t1 = b->t_end > t0 ? b->t_end : ab_now_ns();
    /* fill at-most-once: until the broker answered our close, so it has
     * read every transfer; at-least-once: until the last acceptance */
    if (mode == MODE_FILL && qos == QOS_AMO && b->t_closed > t0)
        t1 = b->t_closed;
    double secs = (double)(t1 - t0) / 1e9;
    if (secs <= 0)
        secs = 1e-9;

    /* exactly-once: every slot received once */
    ab_seen_scan scan;
    ab_scan_seen(b, &scan);
    bool verified = mode == MODE_REQREP ? (b->bad == 0 && b->unique == b->count)
                    : mode == MODE_FILL ? true /* nothing received: the drain checks */
                                        : (scan.missing == 0 && scan.dup_slots == 0 && b->dups == 0 && b->bad == 0);
    bool in_order = mode != MODE_DRAIN || b->out_of_order == 0;
    /* fill: every message accepted (or sent, and the broker read them) */
    tot.filled = mode != MODE_FILL || (b->unique == count && (qos == QOS_ALO || b->t_closed));
    bool ok = !b->failed && verified && in_order && tot.filled && b->extra == 0;
    bool checked = b->t_first_send != 0 || b->unique || b->bad;

    tot.got = b->unique;
    if (mode == MODE_DRAIN) /* every delivery accepted, good or not */
        for (conn_ctx *c = b->conns; c; c = c->next)
            if (c->role == ROLE_CONSUMER)
                tot.got = c->drained;
    tot.rate = (double)tot.got / secs;
    switch (mode) { /* fill and drain may fail the run here; ok is decided already */
    case MODE_FILL: ab_fill_report(b, &tot); break;
    case MODE_DRAIN: ab_drain_report(b, &tot); break;
    case MODE_THROUGHPUT: ab_throughput_report(b, &tot); break;
    case MODE_FANOUT: ab_fanout_report(b, &tot); break;
    default: ab_reqrep_report(b, &tot); break;
    }
    if (checked)
        printf("   elapsed      %.3f s, client cpu %.2f s (%.0f%% of one core)\n", secs, cpu, 100.0 * cpu / secs);
    if (b->stale)
        printf("   stale        %" PRIu64 " messages from an earlier run drained and ignored\n", b->stale);
    ab_print_exactly_once(b, &scan, verified, in_order, checked);
    if (b->bad && b->bad_example[0])
        printf("   malformed    %" PRIu64 ", e.g. %s\n", b->bad, b->bad_example);
    if (b->failed)
        printf("   FAILED       %s\n", b->error);

    printf("RESULT mode=%s target=%s size=%zu qos=%s", ab_mode_name(mode), label, tot.size,
           qos == QOS_ALO ? "alo" : "amo");
    switch (mode) {
    case MODE_THROUGHPUT: ab_throughput_result(b, &tot); break;
    case MODE_FANOUT: ab_fanout_result(b, &tot); break;
    case MODE_FILL:
    case MODE_DRAIN: ab_fill_result(b, &tot); break;
    default: ab_reqrep_result(b, &tot); break;
    }
    if (mode != MODE_FILL && mode != MODE_DRAIN)
        printf(" p50_us=%.1f p99_us=%.1f", tot.p50, tot.p99);
    printf(" status=%s", ok ? "ok" : "FAIL");
    if (!ok) /* one word, for scripts: why it failed */
        printf(" reason=%s", b->conn_failed                              ? "connect"
                             : b->timed_out                              ? "timeout"
                             : !verified && (!b->failed || b->idle_stop) ? "exactly-once"
                             : !in_order && (!b->failed || b->idle_stop) ? "order"
                                                                         : "error");
    printf("\n");
    fflush(stdout);
    return ok;
}
