/* amqp091_load.c — the AMQP 0-9-1 half of `make bench` (issue 10): publishes
 * and consumes --count messages of --size bytes through one queue of any
 * 0-9-1 broker, with publisher confirms and manual acks, the way a 0-9-1
 * daemon does at-least-once, and prints the rate and the end-to-end latency
 * on one RESULT line (the same keys as amqp_bench's). Built on librabbitmq
 * (Debian's librabbitmq-dev): a client library the broker did not write.
 *
 * Two threads, each with its own connection (librabbitmq connections are
 * not thread-safe): the consumer declares and purges the queue, sets its
 * prefetch, consumes with manual acks (one multiple ack every --ack-every
 * deliveries) and then lets the publisher start; the publisher selects
 * confirms and keeps at most --inflight messages unconfirmed. Each body
 * carries its send time and sequence number: latency is receipt minus send
 * (queueing included), and every sequence number must arrive. The rate is
 * messages over the time from the first publish to the last receipt or
 * confirm, whichever is later.
 *
 * Never hangs: socket, handshake and RPC timeouts, 200 ms waits that watch
 * one deadline (--timeout), and a broker that refuses a method (a channel or
 * connection close) ends the run with status=FAIL and the broker's words.
 *
 *   amqp091_load --port 5672 --count 200000 --size 256 --target rabbitmq
 */
#include <amqp.h>
#include <amqp_tcp_socket.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

typedef struct opts {
    const char *host, *user, *pass, *vhost, *queue, *target;
    int port;
    uint64_t count;
    size_t size;
    int inflight, prefetch, ack_every, timeout_s;
} opts;

typedef struct run {
    opts o;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int consumer_ready; /* 0: not yet, 1: consuming, -1: gave up */
    atomic_bool stop;
    double deadline, t_start, t_pub_end, t_con_end;
    uint64_t published, confirmed, received, dups;
    uint32_t *lat_us; /* per received message */
    uint8_t *seen;    /* per sequence number */
    const char *reason;
    char why[512];
} run;

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* The first failure wins; every loop then ends at its next wait. */
static void fail(run *r, const char *reason, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void fail(run *r, const char *reason, const char *fmt, ...)
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

/* What an RPC reply says, for the log: the broker's close, or the library's error. */
static const char *describe(amqp_rpc_reply_t rep, char *buf, size_t len, const char **reason)
{
    *reason = "error";
    if (rep.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION) {
        *reason = "refused";
        if (rep.reply.id == AMQP_CHANNEL_CLOSE_METHOD || rep.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
            const amqp_channel_close_t *c = rep.reply.decoded; /* the two closes share their first fields */
            snprintf(buf, len, "%s closed by the broker: %u %.*s",
                     rep.reply.id == AMQP_CHANNEL_CLOSE_METHOD ? "channel" : "connection", c->reply_code,
                     (int)c->reply_text.len, (const char *)c->reply_text.bytes);
        } else {
            snprintf(buf, len, "broker answered with method 0x%08x", rep.reply.id);
        }
    } else if (rep.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION) {
        if (rep.library_error == AMQP_STATUS_TIMEOUT || rep.library_error == AMQP_STATUS_SOCKET_ERROR)
            *reason = "timeout";
        snprintf(buf, len, "%s", amqp_error_string2(rep.library_error));
    } else {
        snprintf(buf, len, "no reply");
    }
    return buf;
}

static bool rpc_ok(run *r, amqp_connection_state_t c, const char *what)
{
    amqp_rpc_reply_t rep = amqp_get_rpc_reply(c);
    if (rep.reply_type == AMQP_RESPONSE_NORMAL)
        return true;
    char buf[400];
    const char *reason;
    describe(rep, buf, sizeof buf, &reason);
    fail(r, reason, "%s: %s", what, buf);
    return false;
}

static amqp_connection_state_t open_conn(run *r, const char *who)
{
    amqp_connection_state_t c = amqp_new_connection();
    amqp_socket_t *s = c ? amqp_tcp_socket_new(c) : NULL;
    struct timeval tv = {5, 0};
    if (!s) {
        fail(r, "error", "%s: out of memory", who);
        goto bad;
    }
    int rc = amqp_socket_open_noblock(s, r->o.host, r->o.port, &tv);
    if (rc != AMQP_STATUS_OK) {
        fail(r, "connect", "%s: cannot connect to %s:%d: %s", who, r->o.host, r->o.port, amqp_error_string2(rc));
        goto bad;
    }
    /* a broker that stops reading must not block a send for ever */
    setsockopt(amqp_get_sockfd(c), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    amqp_set_handshake_timeout(c, &tv);
    amqp_set_rpc_timeout(c, &tv);
    amqp_rpc_reply_t rep = amqp_login(c, r->o.vhost, 0, 131072, 0, AMQP_SASL_METHOD_PLAIN, r->o.user, r->o.pass);
    if (rep.reply_type != AMQP_RESPONSE_NORMAL) {
        char buf[400];
        const char *reason;
        describe(rep, buf, sizeof buf, &reason);
        fail(r, "connect", "%s: login: %s", who, buf);
        goto bad;
    }
    amqp_channel_open(c, 1);
    if (!rpc_ok(r, c, "channel.open"))
        goto bad;
    return c;
bad:
    if (c)
        amqp_destroy_connection(c);
    return NULL;
}

static void close_conn(amqp_connection_state_t c, bool clean)
{
    if (clean) {
        amqp_channel_close(c, 1, AMQP_REPLY_SUCCESS);
        amqp_connection_close(c, AMQP_REPLY_SUCCESS);
    }
    amqp_destroy_connection(c);
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

static void set_ready(run *r, int v)
{
    pthread_mutex_lock(&r->mu);
    r->consumer_ready = v;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

/* A frame that is not a delivery, in the consumer: a close ends the run. */
static void consumer_other_frame(run *r, amqp_connection_state_t c)
{
    amqp_frame_t f;
    struct timeval tv = {0, 200000};
    int rc = amqp_simple_wait_frame_noblock(c, &f, &tv);
    if (rc == AMQP_STATUS_TIMEOUT)
        return;
    if (rc != AMQP_STATUS_OK) {
        fail(r, "error", "consumer: %s", amqp_error_string2(rc));
        return;
    }
    if (f.frame_type == AMQP_FRAME_METHOD &&
        (f.payload.method.id == AMQP_CHANNEL_CLOSE_METHOD || f.payload.method.id == AMQP_CONNECTION_CLOSE_METHOD)) {
        const amqp_channel_close_t *cl = f.payload.method.decoded;
        fail(r, "refused", "consumer: closed by the broker: %u %.*s", cl->reply_code, (int)cl->reply_text.len,
             (const char *)cl->reply_text.bytes);
    }
}

static void *consumer(void *arg)
{
    run *r = arg;
    amqp_connection_state_t c = open_conn(r, "consumer");
    if (!c) {
        set_ready(r, -1);
        return NULL;
    }
    amqp_bytes_t q = amqp_cstring_bytes(r->o.queue);
    amqp_queue_declare(c, 1, q, 0, 0, 0, 0, amqp_empty_table);
    if (!rpc_ok(r, c, "queue.declare"))
        goto out;
    amqp_queue_purge(c, 1, q);
    if (!rpc_ok(r, c, "queue.purge"))
        goto out;
    amqp_basic_qos(c, 1, 0, (uint16_t)r->o.prefetch, 0);
    if (!rpc_ok(r, c, "basic.qos"))
        goto out;
    amqp_basic_consume(c, 1, q, amqp_empty_bytes, 0, 0, 0, amqp_empty_table);
    if (!rpc_ok(r, c, "basic.consume"))
        goto out;
    set_ready(r, 1);
    int unacked = 0;
    while (r->received < r->o.count && !atomic_load(&r->stop)) {
        if (now() > r->deadline) {
            fail(r, "timeout", "consumer: %" PRIu64 " of %" PRIu64 " messages received in %d s", r->received,
                 r->o.count, r->o.timeout_s);
            break;
        }
        amqp_maybe_release_buffers(c);
        amqp_envelope_t env;
        struct timeval tv = {0, 200000};
        amqp_rpc_reply_t rep = amqp_consume_message(c, &env, &tv, 0);
        if (rep.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION && rep.library_error == AMQP_STATUS_TIMEOUT)
            continue;
        if (rep.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION && rep.library_error == AMQP_STATUS_UNEXPECTED_STATE) {
            consumer_other_frame(r, c);
            continue;
        }
        if (rep.reply_type != AMQP_RESPONSE_NORMAL) {
            char buf[400];
            const char *reason;
            describe(rep, buf, sizeof buf, &reason);
            fail(r, reason, "consumer: %s", buf);
            break;
        }
        double t = now();
        amqp_bytes_t b = env.message.body;
        if (b.len != r->o.size || b.len < 16) {
            fail(r, "error", "consumer: a body of %zu bytes, not %zu", b.len, r->o.size);
            amqp_destroy_envelope(&env);
            break;
        }
        uint64_t sent_ns = get_u64(b.bytes), seq = get_u64((const uint8_t *)b.bytes + 8);
        if (seq >= r->o.count) {
            fail(r, "error", "consumer: sequence number %" PRIu64 " was never sent", seq);
            amqp_destroy_envelope(&env);
            break;
        }
        if (r->seen[seq]) {
            r->dups++;
        } else {
            r->seen[seq] = 1;
            double lat = t - (double)sent_ns / 1e9;
            r->lat_us[r->received++] = lat > 0 ? (uint32_t)(lat * 1e6) : 0;
        }
        if (++unacked >= r->o.ack_every || r->received == r->o.count) {
            if (amqp_basic_ack(c, 1, env.delivery_tag, 1) != AMQP_STATUS_OK) {
                fail(r, "error", "consumer: basic.ack could not be sent");
                amqp_destroy_envelope(&env);
                break;
            }
            unacked = 0;
        }
        amqp_destroy_envelope(&env);
    }
    r->t_con_end = now();
out:
    pthread_mutex_lock(&r->mu);
    if (r->consumer_ready == 0)
        r->consumer_ready = -1; /* the publisher must not wait for a consumer that gave up */
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
    close_conn(c, !r->reason);
    return NULL;
}

/* Confirms: acked[tag] once confirmed (tags count from 1). */
static void confirm(run *r, uint8_t *acked, uint64_t *low, uint64_t tag, bool multiple)
{
    if (tag == 0 || tag > r->published)
        return;
    for (uint64_t t = multiple ? *low : tag; t <= tag; t++)
        if (!acked[t]) {
            acked[t] = 1;
            r->confirmed++;
        }
    while (*low <= r->published && acked[*low])
        (*low)++;
}

static void *publisher(void *arg)
{
    run *r = arg;
    pthread_mutex_lock(&r->mu);
    while (r->consumer_ready == 0 && !atomic_load(&r->stop))
        pthread_cond_wait(&r->cv, &r->mu);
    bool go = r->consumer_ready == 1 && !atomic_load(&r->stop);
    pthread_mutex_unlock(&r->mu);
    if (!go)
        return NULL;
    amqp_connection_state_t c = open_conn(r, "publisher");
    if (!c)
        return NULL;
    uint8_t *acked = calloc(r->o.count + 2, 1), *body = calloc(r->o.size, 1);
    if (!acked || !body) {
        fail(r, "error", "publisher: out of memory");
        goto out;
    }
    amqp_confirm_select(c, 1);
    if (!rpc_ok(r, c, "confirm.select"))
        goto out;
    for (size_t i = 16; i < r->o.size; i++)
        body[i] = (uint8_t)('a' + i % 26);
    amqp_basic_properties_t props = {._flags = AMQP_BASIC_DELIVERY_MODE_FLAG, .delivery_mode = 1};
    amqp_bytes_t q = amqp_cstring_bytes(r->o.queue), bb = {r->o.size, body};
    uint64_t low = 1;
    r->t_start = now();
    while (r->confirmed < r->o.count && !atomic_load(&r->stop)) {
        while (r->published < r->o.count && r->published - r->confirmed < (uint64_t)r->o.inflight) {
            put_u64(body, (uint64_t)(now() * 1e9));
            put_u64(body + 8, r->published);
            int rc = amqp_basic_publish(c, 1, amqp_empty_bytes, q, 0, 0, &props, bb);
            if (rc != AMQP_STATUS_OK) {
                fail(r, rc == AMQP_STATUS_SOCKET_ERROR ? "timeout" : "error", "publisher: basic.publish: %s",
                     amqp_error_string2(rc));
                goto out;
            }
            r->published++;
        }
        if (now() > r->deadline) {
            fail(r, "timeout", "publisher: %" PRIu64 " of %" PRIu64 " messages confirmed in %d s", r->confirmed,
                 r->o.count, r->o.timeout_s);
            break;
        }
        /* Wait for confirms only when nothing more may be sent; then take
         * whatever else is already there without waiting. */
        bool full = r->published == r->o.count || r->published - r->confirmed >= (uint64_t)r->o.inflight;
        struct timeval tv = {0, full ? 200000 : 0};
        for (;;) {
            amqp_frame_t f;
            int rc = amqp_simple_wait_frame_noblock(c, &f, &tv);
            if (rc == AMQP_STATUS_TIMEOUT)
                break;
            if (rc != AMQP_STATUS_OK) {
                fail(r, "error", "publisher: %s", amqp_error_string2(rc));
                goto out;
            }
            tv.tv_usec = 0;
            if (f.frame_type != AMQP_FRAME_METHOD)
                continue;
            amqp_method_number_t id = f.payload.method.id;
            if (id == AMQP_BASIC_ACK_METHOD) {
                const amqp_basic_ack_t *a = f.payload.method.decoded;
                confirm(r, acked, &low, a->delivery_tag, a->multiple);
            } else if (id == AMQP_BASIC_NACK_METHOD) {
                fail(r, "nack", "publisher: the broker nacked message %" PRIu64,
                     ((const amqp_basic_nack_t *)f.payload.method.decoded)->delivery_tag);
                goto out;
            } else if (id == AMQP_CHANNEL_CLOSE_METHOD || id == AMQP_CONNECTION_CLOSE_METHOD) {
                const amqp_channel_close_t *cl = f.payload.method.decoded;
                fail(r, "refused", "publisher: closed by the broker: %u %.*s", cl->reply_code, (int)cl->reply_text.len,
                     (const char *)cl->reply_text.bytes);
                goto out;
            }
        }
        amqp_maybe_release_buffers(c);
    }
    r->t_pub_end = now();
out:
    free(acked);
    free(body);
    close_conn(c, !r->reason);
    return NULL;
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
               "  --target NAME       the name the RESULT line gives the broker (default broker)\n");
}

int main(int argc, char **argv)
{
    static run r;
    r.o = (opts){"127.0.0.1", "guest", "guest", "/", "bench091", "broker", 5672, 200000, 256, 2000, 1000, 100, 120};
    static const struct option longs[] = {{"host", 1, 0, 'h'},     {"port", 1, 0, 'p'},      {"user", 1, 0, 'u'},
                                          {"pass", 1, 0, 'w'},     {"vhost", 1, 0, 'v'},     {"queue", 1, 0, 'q'},
                                          {"count", 1, 0, 'n'},    {"size", 1, 0, 's'},      {"inflight", 1, 0, 'i'},
                                          {"prefetch", 1, 0, 'f'}, {"ack-every", 1, 0, 'a'}, {"timeout", 1, 0, 't'},
                                          {"target", 1, 0, 'T'},   {"help", 0, 0, 'H'},      {0, 0, 0, 0}};
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
    r.lat_us = calloc(r.o.count, sizeof *r.lat_us);
    r.seen = calloc(r.o.count, 1);
    if (!r.lat_us || !r.seen) {
        fprintf(stderr, "amqp091_load: out of memory\n");
        return 1;
    }
    pthread_mutex_init(&r.mu, NULL);
    pthread_cond_init(&r.cv, NULL);
    r.deadline = now() + r.o.timeout_s;
    pthread_t tc, tp;
    if (pthread_create(&tc, NULL, consumer, &r) || pthread_create(&tp, NULL, publisher, &r)) {
        fprintf(stderr, "amqp091_load: cannot start threads\n");
        return 1;
    }
    pthread_join(tp, NULL);
    pthread_join(tc, NULL);
    if (!r.reason && r.received != r.o.count)
        fail(&r, "exactly-once", "%" PRIu64 " of %" PRIu64 " messages received", r.received, r.o.count);
    printf("RESULT mode=throughput091 target=%s size=%zu count=%" PRIu64 " inflight=%d prefetch=%d", r.o.target,
           r.o.size, r.o.count, r.o.inflight, r.o.prefetch);
    if (r.reason) {
        printf(" status=FAIL reason=%s\n", r.reason);
        fprintf(stderr, "amqp091_load: %s\n", r.why);
        return 1;
    }
    double end = r.t_con_end > r.t_pub_end ? r.t_con_end : r.t_pub_end, secs = end - r.t_start;
    qsort(r.lat_us, r.received, sizeof *r.lat_us, cmp_u32);
    double rate = (double)r.o.count / secs;
    printf(" msgs_per_s=%.0f mb_per_s=%.1f p50_us=%u p99_us=%u dups=%" PRIu64 " status=ok\n", rate,
           rate * (double)r.o.size / 1e6, r.lat_us[r.received / 2], r.lat_us[(size_t)((double)r.received * 0.99)],
           r.dups);
    return 0;
}
