/* amqp091_load.c — the AMQP 0-9-1 half of `make bench` (issue 10): publishes
 * and consumes --count messages of --size bytes through one queue of any
 * 0-9-1 broker, with publisher confirms and manual acks, the way a 0-9-1
 * daemon does at-least-once, and prints the rate and the end-to-end latency
 * on one RESULT line (the same keys as amqp_bench's). This file is the
 * command line, the bookkeeping both engines share and the report; the
 * engines are amqp091_load_raw.c (the default, `--client raw`: Plexus's own
 * 0-9-1 codec over plain sockets, writing and reading in large batches as
 * the proton-c AMQP 1.0 client does, so the figure measures the broker
 * rather than the client) and amqp091_load_rmq.c (`--client librabbitmq`,
 * a stock client library, as a cross-check).
 *
 * Two threads, each with its own connection: the consumer declares and
 * purges the queue, sets its prefetch, consumes with manual acks (multiple
 * acks, one per --ack-every deliveries at most) and then lets the publisher
 * start; the publisher selects confirms and keeps at most --inflight
 * messages unconfirmed. Each body carries its send time and sequence
 * number: latency is receipt minus send (queueing included), and every
 * sequence number must arrive. The rate is messages over the time from the
 * first publish to the last receipt or confirm, whichever is later.
 *
 * Never hangs: every wait is bounded and watches one deadline (--timeout),
 * and a broker that refuses a method (a channel or connection close) ends
 * the run with status=FAIL and the broker's words.
 *
 *   amqp091_load --port 5672 --count 200000 --size 256 --target rabbitmq
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "tests/bench/amqp091_load.h"

double l91_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

void l91_fail(l91_run *r, const char *reason, const char *fmt, ...)
{
    pthread_mutex_lock(&r->mu);
    if (!r->reason) {
        r->reason = reason;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(r->why, sizeof r->why, fmt, ap);
        va_end(ap);
    }
    atomic_store(&r->stop, true);
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

void l91_set_ready(l91_run *r, int v)
{
    pthread_mutex_lock(&r->mu);
    if (v > 0 || r->consumer_ready == 0) /* giving up after consuming changes nothing: the run has failed */
        r->consumer_ready = v;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

bool l91_wait_ready(l91_run *r)
{
    pthread_mutex_lock(&r->mu);
    while (r->consumer_ready == 0 && !atomic_load(&r->stop))
        pthread_cond_wait(&r->cv, &r->mu);
    bool go = r->consumer_ready == 1 && !atomic_load(&r->stop);
    pthread_mutex_unlock(&r->mu);
    return go;
}

static void put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (56 - 8 * i));
}

static uint64_t get_u64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

void l91_stamp(uint8_t *body, uint64_t seq)
{
    put_u64(body, (uint64_t)(l91_now() * 1e9));
    put_u64(body + 8, seq);
}

bool l91_receive(l91_run *r, const uint8_t *body, size_t len, double t)
{
    if (len != r->o.size) {
        l91_fail(r, "error", "consumer: a body of %zu bytes, not %zu", len, r->o.size);
        return false;
    }
    uint64_t sent_ns = get_u64(body), seq = get_u64(body + 8);
    if (seq >= r->o.count) {
        l91_fail(r, "error", "consumer: sequence number %" PRIu64 " was never sent", seq);
        return false;
    }
    if (r->seen[seq]) {
        r->dups++;
    } else {
        r->seen[seq] = 1;
        double lat = t - (double)sent_ns / 1e9;
        r->lat_us[r->received++] = lat > 0 ? (uint32_t)(lat * 1e6) : 0;
    }
    return true;
}

void l91_confirm(l91_run *r, uint64_t tag, bool multiple)
{
    if (tag == 0 || tag > r->published)
        return;
    for (uint64_t t = multiple ? r->confirm_low : tag; t <= tag; t++)
        if (!r->acked[t]) {
            r->acked[t] = 1;
            r->confirmed++;
        }
    while (r->confirm_low <= r->published && r->acked[r->confirm_low])
        r->confirm_low++;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: amqp091_load [options]\n"
               "  --host H            broker host (default 127.0.0.1)\n"
               "  --port P            broker port (default 5672)\n"
               "  --user U --pass P   PLAIN credentials (default guest/guest)\n"
               "  --vhost V           virtual host (default /)\n"
               "  --queue Q           queue, declared (not durable) and purged first (default bench091)\n"
               "  --count N           messages (default 200000)\n"
               "  --size S            body bytes, at least 16 (default 256)\n"
               "  --inflight U        most unconfirmed publishes (default 2000)\n"
               "  --prefetch W        consumer prefetch count (default 1000)\n"
               "  --ack-every K       one multiple ack per K deliveries (default 100)\n"
               "  --timeout S         the whole run's deadline in seconds (default 120)\n"
               "  --target NAME       the name the RESULT line gives the broker (default broker)\n"
               "  --client C          raw (default): Plexus's 0-9-1 codec over sockets, batched writes;\n"
               "                      librabbitmq: the stock client library, one write per frame\n");
}

int main(int argc, char **argv)
{
    static l91_run r;
    r.o = (l91_opts){"127.0.0.1", "guest", "guest", "/",  "bench091", "broker", "raw",
                     5672,        200000,  256,     2000, 1000,       100,      120};
    static const struct option longs[] = {
        {"host", 1, 0, 'h'},     {"port", 1, 0, 'p'},     {"user", 1, 0, 'u'},      {"pass", 1, 0, 'w'},
        {"vhost", 1, 0, 'v'},    {"queue", 1, 0, 'q'},    {"count", 1, 0, 'n'},     {"size", 1, 0, 's'},
        {"inflight", 1, 0, 'i'}, {"prefetch", 1, 0, 'f'}, {"ack-every", 1, 0, 'a'}, {"timeout", 1, 0, 't'},
        {"target", 1, 0, 'T'},   {"client", 1, 0, 'c'},   {"help", 0, 0, 'H'},      {0, 0, 0, 0}};
    int ch;
    while ((ch = getopt_long(argc, argv, "", longs, NULL)) != -1) {
        long long v = optarg ? strtoll(optarg, NULL, 10) : 0;
        switch (ch) {
        case 'h': r.o.host = optarg; break;
        case 'p': r.o.port = (int)v; break;
        case 'u': r.o.user = optarg; break;
        case 'w': r.o.pass = optarg; break;
        case 'v': r.o.vhost = optarg; break;
        case 'q': r.o.queue = optarg; break;
        case 'n': r.o.count = (uint64_t)v; break;
        case 's': r.o.size = (size_t)v; break;
        case 'i': r.o.inflight = (int)v; break;
        case 'f': r.o.prefetch = (int)v; break;
        case 'a': r.o.ack_every = (int)v; break;
        case 't': r.o.timeout_s = (int)v; break;
        case 'T': r.o.target = optarg; break;
        case 'c': r.o.client = optarg; break;
        case 'H': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (optind != argc || r.o.count < 1 || r.o.size < 16 || r.o.inflight < 1 || r.o.prefetch < 1 ||
        r.o.prefetch > 65535 || r.o.ack_every < 1 || r.o.ack_every > r.o.prefetch || r.o.timeout_s < 1 ||
        r.o.port < 1 || r.o.port > 65535) {
        usage(stderr);
        return 2;
    }
    const l91_engine *eng = NULL;
    if (strcmp(r.o.client, l91_raw.name) == 0)
        eng = &l91_raw;
    else if (strcmp(r.o.client, l91_librabbitmq.name) == 0)
        eng = &l91_librabbitmq;
    if (!eng) {
        fprintf(stderr, "amqp091_load: --client is raw or librabbitmq, not %s\n", r.o.client);
        return 2;
    }
    r.lat_us = calloc(r.o.count, sizeof *r.lat_us);
    r.seen = calloc(r.o.count, 1);
    r.acked = calloc(r.o.count + 2, 1);
    r.confirm_low = 1;
    if (!r.lat_us || !r.seen || !r.acked) {
        fprintf(stderr, "amqp091_load: out of memory\n");
        return 1;
    }
    pthread_mutex_init(&r.mu, NULL);
    pthread_cond_init(&r.cv, NULL);
    r.deadline = l91_now() + r.o.timeout_s;
    pthread_t tc, tp;
    if (pthread_create(&tc, NULL, eng->consumer, &r) || pthread_create(&tp, NULL, eng->publisher, &r)) {
        fprintf(stderr, "amqp091_load: cannot start threads\n");
        return 1;
    }
    pthread_join(tp, NULL);
    pthread_join(tc, NULL);
    if (!r.reason && r.received != r.o.count)
        l91_fail(&r, "exactly-once", "%" PRIu64 " of %" PRIu64 " messages received", r.received, r.o.count);
    printf("RESULT mode=throughput091 target=%s client=%s size=%zu count=%" PRIu64 " inflight=%d prefetch=%d",
           r.o.target, eng->name, r.o.size, r.o.count, r.o.inflight, r.o.prefetch);
    if (r.reason) {
        printf(" status=FAIL reason=%s\n", r.reason);
        fprintf(stderr, "amqp091_load: %s\n", r.why);
        return 1;
    }
    double end = r.t_con_end > r.t_pub_end ? r.t_con_end : r.t_pub_end, secs = end - r.t_start;
    qsort(r.lat_us, r.received, sizeof *r.lat_us, cmp_u32);
    double rate = (double)r.o.count / secs;
    /* the client's own CPU: on a machine it shares with the broker, what it
     * costs is taken from the broker's figure */
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf(" msgs_per_s=%.0f mb_per_s=%.1f p50_us=%u p99_us=%u dups=%" PRIu64 " cpu_user_s=%.2f cpu_sys_s=%.2f"
           " status=ok\n",
           rate, rate * (double)r.o.size / 1e6, r.lat_us[r.received / 2], r.lat_us[(size_t)((double)r.received * 0.99)],
           r.dups, (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6,
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6);
    return 0;
}
