/* amqp_bench.c — AMQP 1.0 benchmark client for Plexus and any other AMQP 1.0
 * broker, plus a direct client-to-client run with no broker at all.
 *
 * What it measures (tests/bench/README.md has the details):
 *   throughput  N messages of S bytes from P producers to C consumers (each a
 *               connection of its own) through one queue, at-least-once
 *               (unsettled sends, only accepted ones count) or at-most-once
 *               (presettled); msgs/s, MB/s, end-to-end latency p50/p99, and
 *               an exactly-once check of every (producer, seq).
 *   fanout      one producer to an exchange address, K subscribers attached
 *               to the same address, each getting its own copy; deliveries/s
 *               and an exactly-once check per subscriber.
 *   reqrep      a server consumes a request queue and answers each request's
 *               reply-to through an anonymous-relay sender; a client with a
 *               dynamic (or named) reply source sends one request at a time;
 *               round trip p50/p99.
 *   --direct    no broker: the bench listens itself and its own receivers
 *               accept the links, so the figures are the bound this machine
 *               and qpid-proton put on any broker.
 *   fill        one producer puts N stamped messages into a queue nobody
 *               consumes and waits until all are accepted (or, at-most-once,
 *               sent and the broker has read them); msgs/s and MB/s.
 *   drain       one consumer takes exactly N messages out of that queue, in
 *               a later run of this program, granting credit for no more
 *               than N; checks every seq 0..N-1 arrives once and in order,
 *               under the fill run's nonce (taken from the first message).
 *   idle        N connections that do SASL and open, nothing else, opened a
 *               bounded number at a time; `READY connections=N` once all
 *               are open, held for --hold seconds, then closed cleanly. For
 *               measuring the broker's memory per connection from outside.
 *
 * How it is shaped:
 *   - One run is one fresh pn_proactor driven by --threads worker threads
 *     (default: one per core). Every connection has a conn_ctx holding its
 *     role and counters. A connection's events never run on two threads at
 *     once, so a conn_ctx needs no lock; what a run shares is either atomic
 *     (the seen[] counters and totals on the per-message path) or guarded by
 *     b->lock (start barriers, the list of live connections, the outcome).
 *   - The throughput and fanout paths never build a pn_message per message:
 *     the message is encoded once as a template whose body is a data section
 *     of S bytes, and each send writes the template's prefix, a 32-byte stamp
 *     (magic, run nonce, producer, size, seq, CLOCK_MONOTONIC send time) and
 *     the filler with pn_link_send. Receivers walk the AMQP sections
 *     themselves to find the stamp, so broker-added header or annotation
 *     sections are skipped, not trusted. Request/reply uses pn_message on
 *     purpose: there the cost of a real decode/encode is part of the figure.
 *   - A run ends when everything expected has arrived (and, at-least-once,
 *     every send is settled), or fails on the first error; either way every
 *     connection is woken and closed, and the run's proactor goes inactive.
 *     A 100 ms timer enforces the overall deadline (--deadline), gives up
 *     when nothing arrives for --idle seconds after the producers finished
 *     (the exactly-once check then names what is missing), and forces the
 *     close when a peer does not answer it.
 *   - Errors are return codes; bad input never aborts.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <proton/codec.h>
#include <proton/condition.h>
#include <proton/connection.h>
#include <proton/delivery.h>
#include <proton/disposition.h>
#include <proton/event.h>
#include <proton/link.h>
#include <proton/listener.h>
#include <proton/message.h>
#include <proton/netaddr.h>
#include <proton/proactor.h>
#include <proton/sasl.h>
#include <proton/session.h>
#include <proton/terminus.h>
#include <proton/transport.h>

/* ------------------------------------------------------------ options */

typedef enum { MODE_THROUGHPUT, MODE_FANOUT, MODE_REQREP, MODE_FILL, MODE_DRAIN, MODE_IDLE } bench_mode;
typedef enum { STYLE_PLEXUS, STYLE_RABBITMQ310, STYLE_PLAIN } addr_style;
typedef enum { QOS_ALO, QOS_AMO } qos_level;
typedef enum { REPLY_AUTO, REPLY_ANON, REPLY_LINK } reply_via;
typedef enum { RSRC_AUTO, RSRC_DYNAMIC, RSRC_NAMED } reply_source;
typedef enum { INJECT_NONE, INJECT_DUP, INJECT_SKIP } inject_fault;

typedef struct options {
    char url[1024];
    char host[256], port[32];
    char user[256], password[256];
    bool have_user;
    bool mode_all;
    bench_mode mode;
    uint64_t count;
    bool count_set;
    size_t size;
    bool size_set;
    qos_level qos;
    bool qos_set;
    int producers, consumers, subscribers;
    bool direct;
    char listen_host[256], listen_port[32];
    addr_style style;
    uint32_t credit, window;
    double deadline_s, idle_s, connect_s, hold_s;
    int threads;
    bool threads_set;
    const char *queue, *exchange, *key, *label;
    reply_via reply;
    reply_source rsource;
    uint32_t max_frame;
    inject_fault inject;
    bool verbose;
    bool persistent; /* header durable=true: brokers keep such messages on disk */
} options;

/* The stamp at the start of every body (native byte order: only this
 * program writes and reads it, and brokers never touch body bytes). */
#define STAMP_MAGIC 0x31425850u /* "PXB1" */
#define STAMP_SIZE 32
typedef struct stamp {
    uint32_t magic;
    uint32_t nonce;    /* per run, so leftovers of an earlier run are recognised */
    uint32_t producer; /* fanout and reqrep: 0 */
    uint32_t size;     /* body size the producer meant */
    uint64_t seq;
    uint64_t sent_ns;  /* CLOCK_MONOTONIC: sender and receiver share the clock */
} stamp;
_Static_assert(sizeof(stamp) == STAMP_SIZE, "stamp layout");

/* ------------------------------------------------------------ run state */

typedef enum {
    ROLE_PRODUCER,
    ROLE_CONSUMER,   /* throughput consumer, fanout subscriber */
    ROLE_RR_SERVER,  /* reqrep responder on a broker */
    ROLE_RR_CLIENT,
    ROLE_DIRECT_PEER, /* the listening side of --direct */
    ROLE_IDLE         /* idle mode: SASL and open, nothing else */
} conn_role;

static const char *role_name[] = {"producer", "consumer", "reqrep-server", "reqrep-client", "direct-peer", "idle"};

typedef struct pending_reply { /* a reply waiting for credit on its link */
    pn_link_t *link;
    char *bytes;
    size_t len;
} pending_reply;

typedef struct bench bench;

typedef struct conn_ctx {
    bench *b;
    conn_role role;
    int index;
    pn_connection_t *conn; /* NULL once the transport closed (under b->lock) */
    pn_session_t *session;
    pn_link_t *sender, *receiver;
    struct conn_ctx *next;
    bool opened; /* the peer's AMQP open arrived */
    bool sender_ready, receiver_ready, counted_ready;

    /* producer */
    uint64_t to_send, next_seq, sent, accepted, released, no_outcome;
    uint64_t inflight, tag;
    uint64_t *retry;
    size_t retry_n, retry_cap;
    bool done, injected;

    /* consumer */
    uint64_t received, drained; /* drained: deliveries accepted (drain) */
    uint64_t *lat;
    size_t lat_n, lat_cap;
    char *buf;
    size_t buf_cap;

    /* request/reply */
    pn_message_t *msg;
    char *out;
    size_t out_cap;
    pending_reply *pend;
    size_t pend_n, pend_cap;
    char reply_addr[512];
    uint64_t rr_seq, rr_sent_ns, rr_done, rr_target;
    bool rr_waiting, rr_want_send;
    int dyn_counter;
} conn_ctx;

struct bench {
    const options *o;
    bench_mode mode;
    size_t size;
    qos_level qos;
    uint64_t count;
    uint32_t credit, window; /* this run's, after the size-based defaults */
    reply_via reply;
    reply_source rsource;
    pn_proactor_t *proactor;
    pn_proactor_t *peer_proactor; /* --direct: the listening side's, with its own thread */
    uint32_t nonce;
    char target_addr[512];  /* where producers (or the reqrep client) send */
    char source_addr[512];  /* where consumers (or the reqrep server) receive */
    char named_reply[512];  /* reqrep reply address when not dynamic */
    char connect_addr[PN_MAX_ADDR];

    /* the message template: prefix + stamp + filler is one encoded message */
    char *prefix;
    size_t prefix_len;
    char *filler;

    int n_producers, n_receivers;
    uint64_t expected; /* unique deliveries that make the run complete */
    uint8_t *seen;     /* receipts per (producer, seq) or (subscriber, seq); a
                        * byte, as more than 255 copies of one message is
                        * beyond what the report needs (dups counts them all) */
    uint64_t *base;    /* producer index -> first slot in seen[] */

    /* per-message counters, atomic; fill counts accepted (or, at-most-once,
     * sent) messages in unique, idle the connections opened */
    uint64_t unique, dups, stale, bad;
    uint64_t t_first_send; /* drain: when the receiver's attach was answered */
    int threads;           /* proactor workers of this run */

    /* drain: one consumer connection, so only its events touch these */
    bool drain_stamp_known; /* the fill run's nonce (and size) taken from the first message */
    uint64_t granted;       /* credit granted in all: never more than count */
    uint64_t next_seq, out_of_order, extra;
    char order_example[160];

    /* idle (under lock) */
    int idle_next, idle_opening; /* next index to connect, opens in flight */
    uint64_t idle_closed;        /* closes the broker answered */
    uint64_t t_ready, t_closed;  /* t_closed: fill at-most-once, the broker's close */
    uint64_t close_grace_ns;     /* how long closes may take before we cut the rest */
    uint64_t t_disconnect;       /* when that cut came */

    pthread_mutex_t lock; /* everything below */
    conn_ctx *conns;
    int live, ready, producers_done, dyn_peer;
    bool producers_started, finishing, stopping, failed, conn_failed, disconnected, any_open, timed_out, idle_stop;
    char error[1024];
    char bad_example[256];
    uint64_t t_start, t_end, t_finish, deadline_ns, last_progress_ns, last_unique;
    uint64_t next_verbose_ns;
};

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* ------------------------------------------------------------ outcome */

static void maybe_stop_locked(bench *b);

/* Start closing every connection; the run's outcome is already decided. */
static void finish_locked(bench *b)
{
    if (b->finishing) return;
    __atomic_store_n(&b->finishing, true, __ATOMIC_RELEASE); /* read unlocked by is_finishing */
    b->t_finish = now_ns();
    if (!b->t_end) b->t_end = b->t_finish;
    for (conn_ctx *c = b->conns; c; c = c->next)
        if (c->conn) pn_connection_wake(c->conn);
    /* No pn_proactor_disconnect here, even when nobody ever spoke AMQP to
     * us: proton 0.37's epoll proactor loses connections whose connect is
     * still in flight when disconnect comes (no PN_TRANSPORT_CLOSED ever,
     * so the run never ended). A refused connect closes by itself; one
     * that hangs is cut by the tick after close_grace_ns. */
    maybe_stop_locked(b);
}

/* Once everything is closed, let the proactor go inactive: no timer, and
 * disconnect drops the listener of a direct run. */
static void maybe_stop_locked(bench *b)
{
    if (b->finishing && b->live == 0 && !b->stopping) {
        b->stopping = true;
        pn_proactor_cancel_timeout(b->proactor);
        pn_proactor_disconnect(b->proactor, NULL);
        if (b->peer_proactor) pn_proactor_disconnect(b->peer_proactor, NULL);
    }
}

static void fail_locked(bench *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail_locked(bench *b, const char *fmt, ...)
{
    if (!b->failed && !b->finishing) { /* the first word on the outcome stands */
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(b->error, sizeof b->error, fmt, ap);
        va_end(ap);
        b->failed = true;
        fprintf(stderr, "amqp_bench: error: %s\n", b->error);
    }
    finish_locked(b);
}

#define FAIL(b, ...)                              \
    do {                                          \
        pthread_mutex_lock(&(b)->lock);           \
        fail_locked((b), __VA_ARGS__);            \
        pthread_mutex_unlock(&(b)->lock);         \
    } while (0)

static bool is_finishing(bench *b)
{
    return __atomic_load_n(&b->finishing, __ATOMIC_ACQUIRE);
}

/* The run is complete when every expected delivery arrived once and every
 * producer is done (at-least-once: all its sends settled). Fill expects
 * its accepted messages; drain ends on its count of deliveries, idle after
 * the hold (both elsewhere). */
static void check_complete_locked(bench *b)
{
    if (b->finishing || b->mode == MODE_REQREP || b->mode == MODE_DRAIN || b->mode == MODE_IDLE) return;
    if (__atomic_load_n(&b->unique, __ATOMIC_ACQUIRE) >= b->expected && b->producers_done >= b->n_producers) {
        b->t_end = now_ns();
        finish_locked(b);
    }
}

static void cond_text(pn_condition_t *c, char *out, size_t n)
{
    if (c && pn_condition_is_set(c)) {
        const char *name = pn_condition_get_name(c), *desc = pn_condition_get_description(c);
        snprintf(out, n, "%s%s%s", name ? name : "(no name)", desc ? ": " : "", desc ? desc : "");
    } else {
        snprintf(out, n, "no error condition given");
    }
}

/* ------------------------------------------------------------ AMQP section walking */

/* Size of the encoded value at p. Returns 1 and sets *sz, 0 when more bytes
 * are needed to tell, -1 when the bytes are not an AMQP value. */
static int value_size(const uint8_t *p, size_t n, size_t *sz, int depth)
{
    if (n < 1) return 0;
    if (depth > 8) return -1;
    uint8_t code = p[0];
    if (code == 0x00) { /* described: descriptor then value */
        size_t d, v;
        int r = value_size(p + 1, n - 1, &d, depth + 1);
        if (r <= 0) return r;
        r = value_size(p + 1 + d, n - 1 - d, &v, depth + 1);
        if (r <= 0) return r;
        *sz = 1 + d + v;
        return 1;
    }
    size_t need;
    switch (code >> 4) {
    case 0x4: need = 1; break;
    case 0x5: need = 2; break;
    case 0x6: need = 3; break;
    case 0x7: need = 5; break;
    case 0x8: need = 9; break;
    case 0x9: need = 17; break;
    case 0xa: case 0xc: case 0xe:
        if (n < 2) return 0;
        need = 2 + (size_t)p[1];
        break;
    case 0xb: case 0xd: case 0xf:
        if (n < 5) return 0;
        need = 5 + (((size_t)p[1] << 24) | ((size_t)p[2] << 16) | ((size_t)p[3] << 8) | p[4]);
        break;
    default: return -1;
    }
    if (need > n) return 0;
    *sz = need;
    return 1;
}

/* Find the body of an encoded message: a data section, or an amqp-value
 * section holding binary. Returns 1 with *off and *len set, 0 when more bytes are
 * needed, -1 when malformed or the body is not binary. */
static int find_body(const uint8_t *p, size_t n, size_t *off, size_t *len)
{
    size_t o = 0;
    while (o < n) {
        if (p[o] != 0x00) return -1;
        if (o + 2 > n) return 0;
        uint64_t code = 0;
        size_t dlen;
        uint8_t dc = p[o + 1];
        if (dc == 0x53) {
            if (o + 3 > n) return 0;
            code = p[o + 2];
            dlen = 2;
        } else if (dc == 0x80) {
            if (o + 10 > n) return 0;
            for (int i = 0; i < 8; i++) code = (code << 8) | p[o + 2 + i];
            dlen = 9;
        } else if (dc == 0xa3 || dc == 0xb3) { /* symbolic descriptor */
            size_t ds;
            int r = value_size(p + o + 1, n - o - 1, &ds, 0);
            if (r <= 0) return r;
            size_t hs = dc == 0xa3 ? 2 : 5;
            const char *sym = (const char *)p + o + 1 + hs;
            size_t sl = ds - hs;
            if (sl == 16 && !memcmp(sym, "amqp:data:binary", 16)) code = 0x75;
            else if (sl == 17 && !memcmp(sym, "amqp:amqp-value:*", 17)) code = 0x77;
            dlen = ds;
        } else {
            return -1;
        }
        size_t v = o + 1 + dlen;
        if (code == 0x75 || code == 0x77) {
            if (v >= n) return 0;
            if (p[v] == 0xa0) {
                if (v + 2 > n) return 0;
                *len = p[v + 1];
                *off = v + 2;
                return 1;
            }
            if (p[v] == 0xb0) {
                if (v + 5 > n) return 0;
                *len = ((size_t)p[v + 1] << 24) | ((size_t)p[v + 2] << 16) | ((size_t)p[v + 3] << 8) | p[v + 4];
                *off = v + 5;
                return 1;
            }
            return -1;
        }
        size_t vs;
        int r = value_size(p + v, n - v, &vs, 0);
        if (r <= 0) return r;
        o = v + vs;
    }
    return 0;
}

/* ------------------------------------------------------------ small helpers */

static int grow(void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap) return 0;
    size_t nc = *cap ? *cap : 16;
    while (nc < need) nc *= 2;
    void *np = realloc(*p, nc * elem);
    if (!np) return -ENOMEM;
    *p = np;
    *cap = nc;
    return 0;
}

static int push_u64(uint64_t **v, size_t *n, size_t *cap, uint64_t x)
{
    if (grow((void **)v, cap, *n + 1, sizeof **v)) return -ENOMEM;
    (*v)[(*n)++] = x;
    return 0;
}

/* Read the whole current delivery of l into c->buf. */
static ssize_t read_all(conn_ctx *c, pn_link_t *l, pn_delivery_t *d)
{
    size_t pending = pn_delivery_pending(d);
    if (grow((void **)&c->buf, &c->buf_cap, pending + 1, 1)) return -ENOMEM;
    size_t got = 0;
    while (got < pending) {
        ssize_t r = pn_link_recv(l, c->buf + got, pending - got);
        if (r <= 0) break;
        got += (size_t)r;
    }
    return (ssize_t)got;
}

/* Encode m into c->out, growing it as proton asks. */
static ssize_t encode_msg(conn_ctx *c, pn_message_t *m)
{
    if (!c->out_cap && grow((void **)&c->out, &c->out_cap, 1024, 1)) return -ENOMEM;
    for (;;) {
        size_t len = c->out_cap;
        int rc = pn_message_encode(m, c->out, &len);
        if (rc == 0) return (ssize_t)len;
        if (rc != PN_OVERFLOW) return rc;
        if (grow((void **)&c->out, &c->out_cap, c->out_cap * 2, 1)) return -ENOMEM;
    }
}

static void set_ulong_atom(pn_atom_t *a, uint64_t v)
{
    memset(a, 0, sizeof *a);
    a->type = PN_ULONG;
    a->u.as_ulong = v;
}

/* ------------------------------------------------------------ connections */

static conn_ctx *ctx_new_locked(bench *b, conn_role role, int index)
{
    conn_ctx *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->b = b;
    c->role = role;
    c->index = index;
    c->next = b->conns;
    b->conns = c;
    return c;
}

static void ctx_free(conn_ctx *c)
{
    free(c->retry);
    free(c->lat);
    free(c->buf);
    free(c->out);
    for (size_t i = 0; i < c->pend_n; i++) free(c->pend[i].bytes);
    free(c->pend);
    if (c->msg) pn_message_free(c->msg);
    free(c);
}

static void setup_sasl(bench *b, pn_connection_t *conn, pn_transport_t *t)
{
    pn_sasl_t *s = pn_sasl(t);
    if (b->o->have_user && !b->o->direct) {
        pn_connection_set_user(conn, b->o->user);
        pn_connection_set_password(conn, b->o->password);
        /* PLAIN over plain TCP: this is a benchmark on loopback */
        pn_sasl_set_allow_insecure_mechs(s, true);
        pn_sasl_allowed_mechs(s, "PLAIN");
    } else {
        pn_sasl_allowed_mechs(s, "ANONYMOUS");
    }
}

static pn_link_t *make_sender(bench *b, pn_session_t *s, const char *name, const char *target)
{
    pn_link_t *l = pn_sender(s, name);
    if (!l) return NULL;
    pn_terminus_set_address(pn_link_target(l), target); /* NULL: anonymous relay */
    /* Persistent runs ask for a durable terminus: RabbitMQ 3's AMQP 1.0
     * plugin declares /queue/Q durable only then (Plexus's named queues
     * are durable either way). Both ends ask alike, or RabbitMQ refuses
     * the second declare as inequivalent. */
    if (b->o->persistent && target)
        pn_terminus_set_durability(pn_link_target(l), PN_DELIVERIES);
    pn_link_set_snd_settle_mode(l, b->qos == QOS_AMO ? PN_SND_SETTLED : PN_SND_UNSETTLED);
    pn_link_set_rcv_settle_mode(l, PN_RCV_FIRST);
    return l;
}

static pn_link_t *make_receiver(bench *b, pn_session_t *s, const char *name, const char *source, bool dynamic)
{
    pn_link_t *l = pn_receiver(s, name);
    if (!l) return NULL;
    if (dynamic) pn_terminus_set_dynamic(pn_link_source(l), true);
    else pn_terminus_set_address(pn_link_source(l), source);
    if (b->o->persistent && !dynamic)
        pn_terminus_set_durability(pn_link_source(l), PN_DELIVERIES);
    pn_link_set_snd_settle_mode(l, b->qos == QOS_AMO ? PN_SND_SETTLED : PN_SND_UNSETTLED);
    pn_link_set_rcv_settle_mode(l, PN_RCV_FIRST);
    return l;
}

/* Create a client connection for c, open its session and links (proton
 * queues the frames until the transport is bound) and connect it. */
static int ctx_connect_locked(bench *b, conn_ctx *c)
{
    pn_connection_t *conn = pn_connection();
    pn_transport_t *t = pn_transport();
    if (!conn || !t) {
        if (conn) pn_connection_free(conn);
        if (t) pn_transport_free(t);
        return -ENOMEM;
    }
    char cid[128], name[160];
    snprintf(cid, sizeof cid, "amqp-bench-%ld-%08x-%s-%d", (long)getpid(), b->nonce, role_name[c->role], c->index);
    pn_connection_set_container(conn, cid);
    pn_connection_set_context(conn, c);
    if (!b->o->direct) pn_connection_set_hostname(conn, b->o->host);
    setup_sasl(b, conn, t);
    if (b->o->max_frame) pn_transport_set_max_frame(t, b->o->max_frame);

    if (c->role == ROLE_IDLE) { /* SASL and open: the least a client costs */
        pn_connection_open(conn);
        c->conn = conn;
        b->live++;
        pn_proactor_connect2(b->proactor, conn, t, b->connect_addr);
        return 0;
    }
    pn_session_t *s = pn_session(conn);
    if (!s) {
        pn_connection_free(conn);
        pn_transport_free(t);
        return -ENOMEM;
    }
    c->session = s;
    pn_connection_open(conn);
    pn_session_open(s);
    snprintf(name, sizeof name, "%s-%s", cid, "out");
    switch (c->role) {
    case ROLE_PRODUCER:
        c->sender = make_sender(b, s, name, b->target_addr);
        break;
    case ROLE_CONSUMER:
        snprintf(name, sizeof name, "%s-%s", cid, "in");
        c->receiver = make_receiver(b, s, name, b->source_addr, false);
        break;
    case ROLE_RR_SERVER:
        /* the anonymous-relay sender replies to any reply-to; with
         * --reply-via link, reply links are made per address on demand */
        if (b->reply == REPLY_ANON) c->sender = make_sender(b, s, name, NULL);
        snprintf(name, sizeof name, "%s-%s", cid, "in");
        c->receiver = make_receiver(b, s, name, b->source_addr, false);
        break;
    case ROLE_RR_CLIENT:
        c->sender = make_sender(b, s, name, b->target_addr);
        snprintf(name, sizeof name, "%s-%s", cid, "in");
        c->receiver = make_receiver(b, s, name, b->named_reply, b->rsource == RSRC_DYNAMIC);
        break;
    case ROLE_DIRECT_PEER:
    case ROLE_IDLE:
        break;
    }
    if ((c->role != ROLE_CONSUMER && c->role != ROLE_DIRECT_PEER && c->role != ROLE_RR_SERVER && !c->sender) ||
        (c->role == ROLE_RR_SERVER && b->reply == REPLY_ANON && !c->sender) ||
        (c->role != ROLE_PRODUCER && !c->receiver)) {
        pn_connection_free(conn);
        pn_transport_free(t);
        return -ENOMEM;
    }
    if (c->sender) pn_link_open(c->sender);
    if (c->receiver) {
        pn_link_open(c->receiver);
        uint32_t w = b->credit;
        if (b->mode == MODE_DRAIN) { /* never credit beyond the count: the rest stays queued */
            if (w > b->count) w = (uint32_t)b->count;
            b->granted = w;
        }
        pn_link_flow(c->receiver, (int)w);
    }
    c->conn = conn;
    b->live++;
    pn_proactor_connect2(b->proactor, conn, t, b->connect_addr);
    return 0;
}

static void connect_role_locked(bench *b, conn_role role, int n)
{
    for (int i = 0; i < n && !b->finishing; i++) {
        conn_ctx *c = ctx_new_locked(b, role, i);
        if (!c) {
            fail_locked(b, "out of memory creating a %s connection", role_name[role]);
            return;
        }
        /* set before connecting: from then on c's events run on any worker */
        if (role == ROLE_PRODUCER) /* the remainder of N goes to the first producers */
            c->to_send = b->base[i + 1] - b->base[i];
        if (role == ROLE_RR_CLIENT) c->rr_target = b->count;
        if (ctx_connect_locked(b, c) < 0) {
            fail_locked(b, "out of memory creating a %s connection", role_name[role]);
            return;
        }
    }
}

/* idle: at most IDLE_OPENING opens in flight. Opening all N at once would
 * overrun the broker's accept backlog (a dropped SYN costs a 1 s
 * retransmit) and hold thousands of half-made transports; each open that
 * completes starts the next. */
#define IDLE_OPENING 256

static void idle_connect_more_locked(bench *b)
{
    while (!b->finishing && b->idle_opening < IDLE_OPENING && (uint64_t)b->idle_next < b->count) {
        conn_ctx *c = ctx_new_locked(b, ROLE_IDLE, b->idle_next);
        if (!c || ctx_connect_locked(b, c) < 0) {
            fail_locked(b, "out of memory creating idle connection %d", b->idle_next);
            return;
        }
        b->idle_next++;
        b->idle_opening++;
    }
}

/* idle: the broker's open arrived on c; when it is the last, say READY. */
static void idle_opened(bench *b, conn_ctx *c)
{
    (void)c;
    pthread_mutex_lock(&b->lock);
    b->idle_opening--;
    uint64_t n = __atomic_add_fetch(&b->unique, 1, __ATOMIC_RELAXED);
    if (n == b->count && !b->finishing) {
        b->t_ready = b->t_end = now_ns();
        printf("READY connections=%" PRIu64 "\n", n);
        fflush(stdout);
    }
    idle_connect_more_locked(b);
    pthread_mutex_unlock(&b->lock);
}

static void start_producers_locked(bench *b)
{
    if (b->producers_started || b->finishing) return;
    b->producers_started = true;
    if (b->mode == MODE_REQREP) connect_role_locked(b, ROLE_RR_CLIENT, 1);
    else connect_role_locked(b, ROLE_PRODUCER, b->n_producers);
}

/* Receivers (or the reqrep server) announce they are attached; producers
 * start only when all are, so nothing is published to a fanout exchange
 * before every subscriber's queue is bound. */
static void link_ready(bench *b, conn_ctx *c)
{
    bool need_sender = c->role == ROLE_RR_SERVER && b->reply == REPLY_ANON;
    if (c->counted_ready || !c->receiver_ready || (need_sender && !c->sender_ready)) return;
    c->counted_ready = true;
    pthread_mutex_lock(&b->lock);
    if (++b->ready >= b->n_receivers) start_producers_locked(b);
    pthread_mutex_unlock(&b->lock);
}

/* ------------------------------------------------------------ producer */

static void producer_done_check(bench *b, conn_ctx *c)
{
    if (c->done || c->next_seq < c->to_send || c->retry_n) return;
    if (b->qos == QOS_ALO && c->inflight) return;
    c->done = true;
    pthread_mutex_lock(&b->lock);
    b->producers_done++;
    check_complete_locked(b);
    pthread_mutex_unlock(&b->lock);
}

static int send_stamped(bench *b, conn_ctx *c, pn_link_t *l, uint64_t seq)
{
    uint64_t tag = ++c->tag;
    pn_delivery_t *d = pn_delivery(l, pn_dtag((const char *)&tag, sizeof tag));
    if (!d) return -ENOMEM;
    /* seq + 1, so a context of 0 never looks like seq 0 */
    pn_delivery_set_context(d, (void *)(uintptr_t)(seq + 1));
    stamp st = {STAMP_MAGIC, b->nonce, (uint32_t)c->index, (uint32_t)b->size, seq, now_ns()};
    if (!__atomic_load_n(&b->t_first_send, __ATOMIC_RELAXED)) {
        uint64_t zero = 0;
        __atomic_compare_exchange_n(&b->t_first_send, &zero, st.sent_ns, false, __ATOMIC_RELAXED, __ATOMIC_RELAXED);
    }
    /* three appends to the delivery's buffer: no per-message encode */
    if (pn_link_send(l, b->prefix, b->prefix_len) < 0 || pn_link_send(l, (const char *)&st, STAMP_SIZE) < 0 ||
        (b->size > STAMP_SIZE && pn_link_send(l, b->filler, b->size - STAMP_SIZE) < 0))
        return -EIO;
    pn_link_advance(l);
    if (b->qos == QOS_AMO) {
        pn_delivery_settle(d);
        if (b->mode == MODE_FILL) __atomic_fetch_add(&b->unique, 1, __ATOMIC_RELAXED);
    } else {
        c->inflight++;
    }
    c->sent++;
    return 0;
}

static void producer_pump(bench *b, conn_ctx *c)
{
    pn_link_t *l = c->sender;
    if (!l || !c->sender_ready || is_finishing(b)) return;
    /* --window bounds unsettled sends; at-most-once has none, so there only
     * the receiver's credit paces the producer */
    while (pn_link_credit(l) > 0 && (b->qos == QOS_AMO || c->inflight < b->window)) {
        uint64_t seq;
        if (c->retry_n) seq = c->retry[--c->retry_n];
        else if (c->next_seq < c->to_send) seq = c->next_seq++;
        else break;
        /* --inject: break the stream on purpose, to see the check catch it */
        bool fault = b->o->inject && !c->injected && c->index == 0 && seq == c->to_send / 2;
        if (fault) c->injected = true;
        if (fault && b->o->inject == INJECT_SKIP) continue;
        if (send_stamped(b, c, l, seq) < 0 || (fault && send_stamped(b, c, l, seq) < 0)) {
            FAIL(b, "producer %d: cannot send (out of memory)", c->index);
            return;
        }
    }
    producer_done_check(b, c);
}

static void producer_disposition(bench *b, conn_ctx *c, pn_delivery_t *d)
{
    uint64_t st = pn_delivery_remote_state(d);
    bool settled = pn_delivery_settled(d);
    if (!settled && (st == 0 || st == PN_RECEIVED)) return; /* not an outcome yet */
    uint64_t seq = (uint64_t)(uintptr_t)pn_delivery_get_context(d) - 1;
    switch (st) {
    case PN_ACCEPTED:
        c->accepted++;
        if (b->mode == MODE_FILL) __atomic_fetch_add(&b->unique, 1, __ATOMIC_RELAXED);
        break;
    case PN_REJECTED: {
        char why[512];
        cond_text(pn_disposition_condition(pn_delivery_remote(d)), why, sizeof why);
        pn_delivery_settle(d);
        c->inflight--;
        FAIL(b, "producer %d: message seq %" PRIu64 " rejected by the peer (%s)", c->index, seq, why);
        return;
    }
    case PN_RELEASED:
    case PN_MODIFIED:
        /* not delivered: at-least-once means send it again */
        c->released++;
        if (push_u64(&c->retry, &c->retry_n, &c->retry_cap, seq)) {
            FAIL(b, "producer %d: out of memory", c->index);
            return;
        }
        break;
    default:
        /* settled with no outcome: the peer took it, count it as accepted */
        c->accepted++;
        c->no_outcome++;
        if (b->mode == MODE_FILL) __atomic_fetch_add(&b->unique, 1, __ATOMIC_RELAXED);
        break;
    }
    pn_delivery_settle(d);
    c->inflight--;
    producer_pump(b, c);
}

/* ------------------------------------------------------------ consumer */

static void refill_credit(bench *b, pn_link_t *l)
{
    /* grant in windows: one flow frame per half window, not per message */
    int w = (int)b->credit, cr = pn_link_credit(l);
    if (cr > w / 2) return;
    int add = w - cr;
    if (b->mode == MODE_DRAIN) { /* exactly count in all, so nothing more leaves the queue */
        uint64_t left = b->count - b->granted;
        if ((uint64_t)add > left) add = (int)left;
        b->granted += (uint64_t)add;
    }
    if (add > 0) pn_link_flow(l, add);
}

static void note_bad(bench *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note_bad(bench *b, const char *fmt, ...)
{
    if (__atomic_fetch_add(&b->bad, 1, __ATOMIC_RELAXED) == 0) {
        pthread_mutex_lock(&b->lock);
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(b->bad_example, sizeof b->bad_example, fmt, ap);
        va_end(ap);
        pthread_mutex_unlock(&b->lock);
    }
}

/* Check one received stamped message and count it: latency sample, its
 * seen[] slot, and whether that completes the run. */
static void consume_stamped(bench *b, conn_ctx *c, const uint8_t *p, size_t got, size_t total)
{
    size_t off = 0, len = 0;
    int r = find_body(p, got, &off, &len);
    if (r <= 0 || off + STAMP_SIZE > got) {
        note_bad(b, "%s %d: %s (%zu bytes)", role_name[c->role], c->index,
                 r < 0 ? "message body is not one binary section" : "message too short for a stamp", total);
        return;
    }
    stamp st;
    memcpy(&st, p + off, STAMP_SIZE);
    if (st.magic != STAMP_MAGIC) {
        note_bad(b, "%s %d: body does not start with the bench stamp", role_name[c->role], c->index);
        return;
    }
    if (b->mode == MODE_DRAIN) { /* the messages are an earlier run's: take its nonce */
        if (!b->drain_stamp_known) {
            b->drain_stamp_known = true;
            b->nonce = st.nonce;
            if (!b->size) b->size = st.size; /* no --size: the fill's */
            if (b->o->verbose)
                fprintf(stderr, "amqp_bench: drain: fill run nonce %08x, size %u\n", st.nonce, st.size);
        } else if (st.nonce != b->nonce) {
            note_bad(b, "consumer: a message of another fill run (nonce %08x after %08x): the queue holds more "
                        "than one fill",
                     st.nonce, b->nonce);
            return;
        }
    }
    if (st.nonce != b->nonce) { /* left in the queue by an earlier run */
        __atomic_fetch_add(&b->stale, 1, __ATOMIC_RELAXED);
        return;
    }
    if (len != b->size || off + len != total || st.size != b->size) {
        note_bad(b, "%s %d: body of %zu bytes (message %zu), expected %zu", role_name[c->role], c->index, len,
                 total, b->size);
        return;
    }
    uint64_t slot;
    if (b->mode == MODE_DRAIN) {
        if (st.producer != 0 || st.seq >= b->count) goto out_of_range;
        slot = st.seq;
        if (st.seq != b->next_seq && b->out_of_order++ == 0)
            snprintf(b->order_example, sizeof b->order_example, "seq %" PRIu64 " arrived where %" PRIu64 " was next",
                     st.seq, b->next_seq);
        b->next_seq = st.seq + 1;
        c->received++;
        goto count;
    } else if (b->mode == MODE_FANOUT) {
        if (st.producer != 0 || st.seq >= b->count) goto out_of_range;
        slot = (uint64_t)c->index * b->count + st.seq;
    } else {
        if (st.producer >= (uint32_t)b->n_producers) goto out_of_range;
        uint64_t n = b->base[st.producer + 1] - b->base[st.producer];
        if (st.seq >= n) goto out_of_range;
        slot = b->base[st.producer] + st.seq;
    }
    uint64_t t = now_ns();
    if (push_u64(&c->lat, &c->lat_n, &c->lat_cap, t - st.sent_ns)) {
        FAIL(b, "%s %d: out of memory for latency samples", role_name[c->role], c->index);
        return;
    }
    c->received++;
count:
    if (__atomic_fetch_add(&b->seen[slot], 1, __ATOMIC_RELAXED) == 0) {
        if (__atomic_add_fetch(&b->unique, 1, __ATOMIC_ACQ_REL) == b->expected) {
            pthread_mutex_lock(&b->lock);
            check_complete_locked(b);
            pthread_mutex_unlock(&b->lock);
        }
    } else {
        __atomic_fetch_add(&b->dups, 1, __ATOMIC_RELAXED);
    }
    return;
out_of_range:
    note_bad(b, "%s %d: stamp names producer %u seq %" PRIu64 ", outside this run", role_name[c->role], c->index,
             st.producer, st.seq);
}

/* Presettled deliveries (at-most-once) take no outcome, only our settle. */
static void settle_incoming(pn_delivery_t *d, uint64_t outcome)
{
    if (!pn_delivery_settled(d)) pn_delivery_update(d, outcome);
    pn_delivery_settle(d);
}

static void consumer_delivery(bench *b, conn_ctx *c, pn_link_t *l, pn_delivery_t *d)
{
    if (pn_delivery_aborted(d)) {
        pn_delivery_settle(d);
        if (b->mode == MODE_DRAIN && b->granted) b->granted--; /* the message is still queued: ask again */
        refill_credit(b, l);
        return;
    }
    if (!pn_delivery_readable(d) || pn_delivery_partial(d)) return; /* wait for the rest */
    if (b->mode == MODE_DRAIN && c->drained >= b->count) {
        /* beyond the credit we granted: leave it in the queue */
        b->extra++;
        pn_link_advance(l);
        settle_incoming(d, PN_RELEASED);
        return;
    }
    size_t total = pn_delivery_pending(d);
    /* read only as far as the stamp: a 64 KiB filler need not be copied */
    uint8_t head[2048];
    size_t want = total < sizeof head ? total : sizeof head;
    ssize_t got = pn_link_recv(l, (char *)head, want);
    if (got < 0) got = 0;
    size_t off, len;
    int r = find_body(head, (size_t)got, &off, &len);
    if (r == 0 || (r == 1 && off + STAMP_SIZE > (size_t)got && (size_t)got < total)) {
        /* big annotations: take the whole message */
        if (grow((void **)&c->buf, &c->buf_cap, total + 1, 1)) {
            FAIL(b, "%s %d: out of memory", role_name[c->role], c->index);
            return;
        }
        memcpy(c->buf, head, (size_t)got);
        size_t have = (size_t)got;
        while (have < total) {
            ssize_t n = pn_link_recv(l, c->buf + have, total - have);
            if (n <= 0) break;
            have += (size_t)n;
        }
        consume_stamped(b, c, (const uint8_t *)c->buf, have, total);
    } else {
        consume_stamped(b, c, head, (size_t)got, total);
    }
    pn_link_advance(l);
    settle_incoming(d, PN_ACCEPTED);
    if (b->mode == MODE_DRAIN && ++c->drained == b->count) {
        pthread_mutex_lock(&b->lock);
        b->t_end = now_ns();
        finish_locked(b); /* the close follows the last disposition on the wire */
        pthread_mutex_unlock(&b->lock);
        return;
    }
    refill_credit(b, l);
}

/* ------------------------------------------------------------ request/reply */

static int rr_client_send(bench *b, conn_ctx *c)
{
    if (!c->sender || !c->sender_ready || !c->reply_addr[0] || c->rr_waiting || c->rr_done >= c->rr_target ||
        is_finishing(b))
        return 0;
    if (pn_link_credit(c->sender) <= 0) {
        c->rr_want_send = true;
        return 0;
    }
    c->rr_want_send = false;
    if (!c->msg && !(c->msg = pn_message())) return -ENOMEM;
    pn_message_clear(c->msg);
    uint64_t seq = c->rr_seq++;
    pn_atom_t id;
    set_ulong_atom(&id, seq);
    pn_message_set_id(c->msg, id);
    pn_message_set_correlation_id(c->msg, id);
    pn_message_set_reply_to(c->msg, c->reply_addr);
    pn_message_set_address(c->msg, b->target_addr);
    pn_message_set_inferred(c->msg, true); /* binary body as a data section */
    stamp st = {STAMP_MAGIC, b->nonce, 0, (uint32_t)b->size, seq, now_ns()};
    memcpy(b->filler, &st, STAMP_SIZE); /* only the client writes the filler here */
    pn_data_put_binary(pn_message_body(c->msg), pn_bytes(b->size, b->filler));
    ssize_t len = encode_msg(c, c->msg);
    if (len < 0) return (int)len;
    uint64_t tag = ++c->tag;
    pn_delivery_t *d = pn_delivery(c->sender, pn_dtag((const char *)&tag, sizeof tag));
    if (!d) return -ENOMEM;
    c->rr_sent_ns = st.sent_ns;
    if (!__atomic_load_n(&b->t_first_send, __ATOMIC_RELAXED))
        __atomic_store_n(&b->t_first_send, st.sent_ns, __ATOMIC_RELAXED);
    if (pn_link_send(c->sender, c->out, (size_t)len) < 0) return -EIO;
    pn_link_advance(c->sender);
    if (b->qos == QOS_AMO) pn_delivery_settle(d);
    c->sent++;
    c->rr_waiting = true;
    return 0;
}

static void rr_client_reply(bench *b, conn_ctx *c, pn_link_t *l, pn_delivery_t *d)
{
    if (!pn_delivery_readable(d) || pn_delivery_partial(d)) return;
    uint64_t t = now_ns();
    ssize_t n = read_all(c, l, d);
    pn_link_advance(l);
    settle_incoming(d, PN_ACCEPTED);
    refill_credit(b, l);
    if (n < 0) {
        FAIL(b, "reqrep client: out of memory");
        return;
    }
    if (!c->msg && !(c->msg = pn_message())) {
        FAIL(b, "reqrep client: out of memory");
        return;
    }
    pn_message_clear(c->msg);
    if (pn_message_decode(c->msg, c->buf, (size_t)n) != 0) {
        note_bad(b, "reqrep client: reply does not decode as an AMQP message");
        return;
    }
    pn_atom_t cid = pn_message_get_correlation_id(c->msg);
    size_t off, len;
    if (find_body((const uint8_t *)c->buf, (size_t)n, &off, &len) == 1 && off + STAMP_SIZE <= (size_t)n) {
        stamp st;
        memcpy(&st, c->buf + off, STAMP_SIZE);
        if (st.magic == STAMP_MAGIC && st.nonce != b->nonce) { /* an old run's reply */
            __atomic_fetch_add(&b->stale, 1, __ATOMIC_RELAXED);
            return;
        }
    }
    if (!c->rr_waiting || cid.type != PN_ULONG || cid.u.as_ulong != c->rr_seq - 1) {
        note_bad(b, "reqrep client: reply with an unexpected correlation-id (waiting for %" PRIu64 ")",
                 c->rr_seq - 1);
        return;
    }
    c->rr_waiting = false;
    c->received++;
    c->rr_done++;
    __atomic_fetch_add(&b->unique, 1, __ATOMIC_RELAXED);
    if (push_u64(&c->lat, &c->lat_n, &c->lat_cap, t - c->rr_sent_ns)) {
        FAIL(b, "reqrep client: out of memory");
        return;
    }
    if (c->rr_done >= c->rr_target) {
        pthread_mutex_lock(&b->lock);
        b->t_end = t;
        finish_locked(b);
        pthread_mutex_unlock(&b->lock);
        return;
    }
    if (rr_client_send(b, c) < 0) FAIL(b, "reqrep client: cannot send a request");
}

static void rr_flush_pending(bench *b, conn_ctx *c, pn_link_t *l)
{
    size_t w = 0;
    for (size_t i = 0; i < c->pend_n; i++) {
        pending_reply *p = &c->pend[i];
        if (p->link == l && pn_link_credit(l) > 0) {
            uint64_t tag = ++c->tag;
            pn_delivery_t *d = pn_delivery(l, pn_dtag((const char *)&tag, sizeof tag));
            if (d) {
                pn_link_send(l, p->bytes, p->len);
                pn_link_advance(l);
                if (b->qos == QOS_AMO) pn_delivery_settle(d);
                c->sent++;
            }
            free(p->bytes);
        } else {
            c->pend[w++] = *p;
        }
    }
    c->pend_n = w;
}

/* Which link carries a reply to addr: the anonymous relay, the direct
 * peer's link whose source is addr, or a link made for addr. */
static pn_link_t *rr_reply_link(bench *b, conn_ctx *c, const char *addr)
{
    if (c->role == ROLE_DIRECT_PEER) {
        for (pn_link_t *l = pn_link_head(c->conn, PN_LOCAL_ACTIVE); l; l = pn_link_next(l, PN_LOCAL_ACTIVE)) {
            const char *a = pn_terminus_get_address(pn_link_source(l));
            if (pn_link_is_sender(l) && a && !strcmp(a, addr)) return l;
        }
        return NULL;
    }
    if (b->reply == REPLY_ANON) return c->sender;
    for (pn_link_t *l = pn_link_head(c->conn, PN_LOCAL_ACTIVE); l; l = pn_link_next(l, PN_LOCAL_ACTIVE)) {
        const char *a = pn_terminus_get_address(pn_link_target(l));
        if (pn_link_is_sender(l) && a && !strcmp(a, addr)) return l;
    }
    char name[640];
    snprintf(name, sizeof name, "amqp-bench-%08x-reply-%d", b->nonce, c->dyn_counter++);
    pn_link_t *l = make_sender(b, c->session, name, addr);
    if (l) pn_link_open(l);
    return l;
}

static void rr_server_request(bench *b, conn_ctx *c, pn_link_t *l, pn_delivery_t *d)
{
    if (!pn_delivery_readable(d) || pn_delivery_partial(d)) return;
    ssize_t n = read_all(c, l, d);
    pn_link_advance(l);
    if (n < 0 || (!c->msg && !(c->msg = pn_message()))) {
        settle_incoming(d, PN_RELEASED);
        FAIL(b, "reqrep server: out of memory");
        return;
    }
    pn_message_clear(c->msg);
    if (pn_message_decode(c->msg, c->buf, (size_t)n) != 0) {
        settle_incoming(d, PN_REJECTED);
        refill_credit(b, l);
        note_bad(b, "reqrep server: request does not decode as an AMQP message");
        return;
    }
    const char *rt = pn_message_get_reply_to(c->msg);
    if (!rt || !*rt) {
        settle_incoming(d, PN_REJECTED);
        refill_credit(b, l);
        note_bad(b, "reqrep server: request without reply-to");
        return;
    }
    char reply_to[512];
    snprintf(reply_to, sizeof reply_to, "%s", rt);
    /* copy the correlation-id (or the message-id) before the message
     * changes: a string id points into the message's own storage */
    pn_atom_t cid = pn_message_get_correlation_id(c->msg);
    if (cid.type == PN_NULL) cid = pn_message_get_id(c->msg);
    char idbuf[256];
    if (cid.type == PN_STRING || cid.type == PN_BINARY || cid.type == PN_SYMBOL) {
        size_t k = cid.u.as_bytes.size < sizeof idbuf ? cid.u.as_bytes.size : sizeof idbuf;
        memcpy(idbuf, cid.u.as_bytes.start, k);
        cid.u.as_bytes.start = idbuf;
        cid.u.as_bytes.size = k;
    }
    pn_atom_t null_atom;
    memset(&null_atom, 0, sizeof null_atom);
    null_atom.type = PN_NULL;
    pn_message_set_correlation_id(c->msg, cid);
    pn_message_set_id(c->msg, null_atom);
    pn_message_set_reply_to(c->msg, NULL);
    pn_message_set_address(c->msg, reply_to); /* `to`: what an anonymous relay routes on */
    ssize_t len = encode_msg(c, c->msg);       /* the body goes back as it came */
    if (len < 0) {
        settle_incoming(d, PN_RELEASED);
        FAIL(b, "reqrep server: cannot encode a reply (%zd)", len);
        return;
    }
    pn_link_t *out = rr_reply_link(b, c, reply_to);
    if (!out) {
        settle_incoming(d, PN_REJECTED);
        refill_credit(b, l);
        note_bad(b, "reqrep server: no link for reply-to %s", reply_to);
        return;
    }
    char *copy = malloc((size_t)len);
    if (!copy || grow((void **)&c->pend, &c->pend_cap, c->pend_n + 1, sizeof *c->pend)) {
        free(copy);
        settle_incoming(d, PN_RELEASED);
        FAIL(b, "reqrep server: out of memory");
        return;
    }
    memcpy(copy, c->out, (size_t)len);
    c->pend[c->pend_n++] = (pending_reply){out, copy, (size_t)len};
    rr_flush_pending(b, c, out);
    c->received++;
    settle_incoming(d, PN_ACCEPTED);
    refill_credit(b, l);
}

/* ------------------------------------------------------------ events */

static void direct_peer_link_open(bench *b, conn_ctx *c, pn_link_t *l)
{
    if (pn_link_state(l) & PN_LOCAL_ACTIVE) return;
    pn_terminus_copy(pn_link_source(l), pn_link_remote_source(l));
    pn_terminus_copy(pn_link_target(l), pn_link_remote_target(l));
    if (pn_link_is_sender(l)) {
        /* the client's reply receiver: a dynamic source gets an address of
         * our making, which the client then uses as reply-to */
        if (pn_terminus_is_dynamic(pn_link_remote_source(l))) {
            char addr[64];
            pthread_mutex_lock(&b->lock);
            snprintf(addr, sizeof addr, "/dynamic/%d", ++b->dyn_peer);
            pthread_mutex_unlock(&b->lock);
            pn_terminus_set_address(pn_link_source(l), addr);
        }
        pn_link_open(l);
    } else {
        pn_link_open(l);
        pn_link_flow(l, (int)b->credit);
        c->receiver = l;
    }
}

static void on_link_remote_open(bench *b, conn_ctx *c, pn_link_t *l)
{
    if (c->role == ROLE_DIRECT_PEER) {
        direct_peer_link_open(b, c, l);
        return;
    }
    if (pn_link_is_sender(l)) {
        /* a refused attach comes back with a null target, then a detach
         * that carries the reason: wait for that */
        if (pn_terminus_get_type(pn_link_remote_target(l)) == PN_UNSPECIFIED) return;
        if (l == c->sender) c->sender_ready = true;
        if (c->role == ROLE_PRODUCER) producer_pump(b, c);
        else if (c->role == ROLE_RR_SERVER) {
            link_ready(b, c);
            rr_flush_pending(b, c, l);
        } else if (c->role == ROLE_RR_CLIENT && rr_client_send(b, c) < 0)
            FAIL(b, "reqrep client: cannot send a request");
        return;
    }
    pn_terminus_t *src = pn_link_remote_source(l);
    if (pn_terminus_get_type(src) == PN_UNSPECIFIED) return;
    if (c->role == ROLE_RR_CLIENT) {
        const char *a = pn_terminus_get_address(src);
        if (b->rsource == RSRC_DYNAMIC) {
            if (!a || !*a) {
                FAIL(b, "reqrep client: the peer attached the dynamic reply source without an address "
                        "(no dynamic sources there? try --reply-source named)");
                return;
            }
            snprintf(c->reply_addr, sizeof c->reply_addr, "%s", a);
        } else {
            snprintf(c->reply_addr, sizeof c->reply_addr, "%s", b->named_reply);
        }
        if (b->o->verbose) fprintf(stderr, "amqp_bench: reply address %s\n", c->reply_addr);
        if (rr_client_send(b, c) < 0) FAIL(b, "reqrep client: cannot send a request");
        return;
    }
    c->receiver_ready = true;
    if (b->mode == MODE_DRAIN) __atomic_store_n(&b->t_first_send, now_ns(), __ATOMIC_RELAXED); /* the clock starts */
    link_ready(b, c);
}

static void on_delivery(bench *b, conn_ctx *c, pn_event_t *e)
{
    pn_delivery_t *d = pn_event_delivery(e);
    pn_link_t *l = pn_delivery_link(d);
    if (pn_link_is_sender(l)) {
        if (c->role == ROLE_PRODUCER) {
            producer_disposition(b, c, d);
        } else if (pn_delivery_settled(d) || (pn_delivery_remote_state(d) && pn_delivery_remote_state(d) != PN_RECEIVED)) {
            if (pn_delivery_remote_state(d) == PN_REJECTED) {
                char why[512];
                cond_text(pn_disposition_condition(pn_delivery_remote(d)), why, sizeof why);
                FAIL(b, "%s: message rejected by the peer (%s)", role_name[c->role], why);
            }
            pn_delivery_settle(d);
        }
        return;
    }
    switch (c->role) {
    case ROLE_CONSUMER: consumer_delivery(b, c, l, d); break;
    case ROLE_RR_SERVER: rr_server_request(b, c, l, d); break;
    case ROLE_RR_CLIENT: rr_client_reply(b, c, l, d); break;
    case ROLE_DIRECT_PEER:
        if (b->mode == MODE_REQREP) rr_server_request(b, c, l, d);
        else consumer_delivery(b, c, l, d);
        break;
    case ROLE_PRODUCER:
    case ROLE_IDLE: /* no links of ours: nothing should arrive */
        settle_incoming(d, PN_REJECTED);
        break;
    }
}

/* Does the peer's open offer capability cap (a symbol, or an array of them)? */
static bool offers(pn_connection_t *conn, const char *cap)
{
    pn_data_t *d = pn_connection_remote_offered_capabilities(conn);
    size_t n = strlen(cap);
    if (!d) return false;
    pn_data_rewind(d);
    if (!pn_data_next(d)) return false;
    bool array = pn_data_type(d) == PN_ARRAY;
    if (array) {
        pn_data_enter(d);
        if (!pn_data_next(d)) return false;
    }
    do {
        if (pn_data_type(d) == PN_SYMBOL) {
            pn_bytes_t s = pn_data_get_symbol(d);
            if (s.size == n && !memcmp(s.start, cap, n)) return true;
        }
    } while (array && pn_data_next(d));
    return false;
}

static void on_listener_open(bench *b, pn_listener_t *lis)
{
    char host[256] = "", port[32] = "";
    pn_netaddr_host_port(pn_listener_addr(lis), host, sizeof host, port, sizeof port);
    pthread_mutex_lock(&b->lock);
    pn_proactor_addr(b->connect_addr, sizeof b->connect_addr, b->o->listen_host, port);
    if (b->o->verbose) fprintf(stderr, "amqp_bench: direct: listening on %s\n", b->connect_addr);
    start_producers_locked(b);
    pthread_mutex_unlock(&b->lock);
}

static void on_listener_accept(bench *b, pn_listener_t *lis)
{
    pn_connection_t *conn = pn_connection();
    pn_transport_t *t = pn_transport();
    pthread_mutex_lock(&b->lock);
    conn_ctx *c = conn && t ? ctx_new_locked(b, ROLE_DIRECT_PEER, b->n_receivers) : NULL;
    if (!c) {
        if (conn) pn_connection_free(conn);
        if (t) pn_transport_free(t);
        fail_locked(b, "direct: out of memory accepting a connection");
        pthread_mutex_unlock(&b->lock);
        return;
    }
    b->n_receivers++;
    c->conn = conn;
    b->live++;
    pn_connection_set_context(conn, c);
    pn_connection_set_container(conn, "amqp-bench-direct-peer");
    pn_transport_set_server(t); /* before pn_sasl: it decides the SASL role */
    pn_sasl_allowed_mechs(pn_sasl(t), "ANONYMOUS");
    if (b->o->max_frame) pn_transport_set_max_frame(t, b->o->max_frame);
    pn_listener_accept2(lis, conn, t);
    if (b->finishing) pn_connection_wake(conn);
    pthread_mutex_unlock(&b->lock);
}

static void on_tick(bench *b)
{
    pthread_mutex_lock(&b->lock);
    uint64_t t = now_ns();
    uint64_t u = __atomic_load_n(&b->unique, __ATOMIC_RELAXED);
    if (u != b->last_unique) {
        b->last_unique = u;
        b->last_progress_ns = t;
    }
    if (!b->finishing) {
        if (t >= b->deadline_ns) {
            b->timed_out = true;
            fail_locked(b, "timeout: the run did not finish within %.0f s (%" PRIu64 " of %" PRIu64 " received)",
                        b->o->deadline_s, u, b->expected);
        } else if (!b->any_open && t - b->t_start >= (uint64_t)(b->o->connect_s * 1e9)) {
            b->conn_failed = true;
            fail_locked(b, "no AMQP open from %s within %.0f s", b->connect_addr, b->o->connect_s);
        } else if (b->mode == MODE_IDLE) {
            if (b->t_ready && t - b->t_ready >= (uint64_t)(b->o->hold_s * 1e9)) {
                finish_locked(b); /* held long enough: close them all */
            } else if (!b->t_ready && t - b->last_progress_ns >= (uint64_t)(b->o->connect_s * 1e9)) {
                fail_locked(b, "no connection opened for %.0f s (%" PRIu64 " of %" PRIu64 " open, %d opening)",
                            b->o->connect_s, u, b->count, b->idle_opening);
            }
        } else if (b->mode == MODE_FILL && b->any_open && b->producers_done < b->n_producers &&
                   t - b->last_progress_ns >= (uint64_t)(b->o->idle_s * 1e9)) {
            fail_locked(b, "the broker took no message for %.1f s (%" PRIu64 " of %" PRIu64 " %s)", b->o->idle_s, u,
                        b->expected, b->qos == QOS_ALO ? "accepted" : "sent");
        } else if (b->mode != MODE_REQREP && b->mode != MODE_FILL && b->producers_started &&
                   b->producers_done >= b->n_producers && t - b->last_progress_ns >= (uint64_t)(b->o->idle_s * 1e9)) {
            /* the producers are done and nothing arrives any more: stop and
             * let the exactly-once check name what is missing */
            b->t_end = b->last_progress_ns;
            b->idle_stop = true;
            if (b->mode == MODE_DRAIN)
                fail_locked(b, "nothing received for %.1f s (%" PRIu64 " of %" PRIu64 " received; does the queue "
                               "hold that many?)", b->o->idle_s, u, b->expected);
            else
                fail_locked(b, "nothing received for %.1f s after the producers finished (%" PRIu64 " of %" PRIu64
                               " received)", b->o->idle_s, u, b->expected);
        }
        if (b->o->verbose && t >= b->next_verbose_ns) {
            fprintf(stderr, "amqp_bench: %" PRIu64 "/%" PRIu64 " %s\n", u, b->expected,
                    b->mode == MODE_IDLE   ? "connections open"
                    : b->mode == MODE_FILL ? (b->qos == QOS_ALO ? "accepted" : "sent")
                                           : "received");
            b->next_verbose_ns = t + 1000000000ull;
        }
    } else if (!b->disconnected && t - b->t_finish > b->close_grace_ns) {
        /* a peer that does not answer our close: cut it */
        b->disconnected = true;
        b->t_disconnect = t;
        pn_proactor_disconnect(b->proactor, NULL);
        if (b->peer_proactor) pn_proactor_disconnect(b->peer_proactor, NULL);
    } else if (b->disconnected && !b->stopping && t - b->t_disconnect > 2000000000ull) {
        /* connections the disconnect lost (see finish_locked): stop waiting
         * for them; pn_proactor_free releases them */
        fprintf(stderr, "amqp_bench: note: %d connection%s never reported closing; abandoning %s\n", b->live,
                b->live == 1 ? "" : "s", b->live == 1 ? "it" : "them");
        b->stopping = true;
        pn_proactor_interrupt(b->proactor);
        if (b->peer_proactor) pn_proactor_interrupt(b->peer_proactor);
    }
    if (!b->stopping) pn_proactor_set_timeout(b->proactor, 100);
    pthread_mutex_unlock(&b->lock);
}

static void check_remote_close(bench *b, conn_ctx *c, const char *what, pn_condition_t *cond)
{
    if (is_finishing(b) && !pn_condition_is_set(cond)) return;
    char why[512];
    cond_text(cond, why, sizeof why);
    if (!is_finishing(b)) FAIL(b, "%s %d: %s closed by the peer (%s)", role_name[c->role], c->index, what, why);
}

static void handle(bench *b, pn_event_t *e)
{
    pn_event_type_t type = pn_event_type(e);
    switch (type) {
    case PN_PROACTOR_TIMEOUT: on_tick(b); return;
    case PN_LISTENER_OPEN: on_listener_open(b, pn_event_listener(e)); return;
    case PN_LISTENER_ACCEPT: on_listener_accept(b, pn_event_listener(e)); return;
    case PN_LISTENER_CLOSE: {
        pn_condition_t *cond = pn_listener_condition(pn_event_listener(e));
        if (pn_condition_is_set(cond)) {
            char why[512];
            cond_text(cond, why, sizeof why);
            pthread_mutex_lock(&b->lock);
            b->conn_failed = true;
            fail_locked(b, "direct: cannot listen on %s:%s (%s)", b->o->listen_host, b->o->listen_port, why);
            pthread_mutex_unlock(&b->lock);
        }
        return;
    }
    default: break;
    }

    pn_connection_t *conn = pn_event_connection(e);
    conn_ctx *c = conn ? pn_connection_get_context(conn) : NULL;
    if (!c) return;

    switch (type) {
    case PN_CONNECTION_REMOTE_OPEN:
        if (c->role == ROLE_DIRECT_PEER) pn_connection_open(conn);
        c->opened = true;
        if (c->role == ROLE_RR_SERVER && b->reply == REPLY_ANON && !offers(conn, "ANONYMOUS-RELAY"))
            fprintf(stderr, "amqp_bench: note: the broker does not offer ANONYMOUS-RELAY; if the reply sender is "
                            "refused, try --reply-via link\n");
        if (!__atomic_load_n(&b->any_open, __ATOMIC_RELAXED)) {
            pthread_mutex_lock(&b->lock);
            __atomic_store_n(&b->any_open, true, __ATOMIC_RELAXED);
            pthread_mutex_unlock(&b->lock);
        }
        if (c->role == ROLE_IDLE) idle_opened(b, c);
        break;
    case PN_SESSION_REMOTE_OPEN: {
        pn_session_t *s = pn_event_session(e);
        if (!(pn_session_state(s) & PN_LOCAL_ACTIVE)) {
            pn_session_open(s);
            c->session = s;
        }
        break;
    }
    case PN_LINK_REMOTE_OPEN: on_link_remote_open(b, c, pn_event_link(e)); break;
    case PN_LINK_FLOW: {
        pn_link_t *l = pn_event_link(e);
        if (!pn_link_is_sender(l)) break;
        if (c->role == ROLE_PRODUCER) producer_pump(b, c);
        else if (c->role == ROLE_RR_CLIENT && c->rr_want_send) {
            if (rr_client_send(b, c) < 0) FAIL(b, "reqrep client: cannot send a request");
        } else if (c->pend_n) rr_flush_pending(b, c, l);
        break;
    }
    case PN_DELIVERY: on_delivery(b, c, e); break;
    case PN_CONNECTION_WAKE:
        if (is_finishing(b) && !(pn_connection_state(conn) & PN_LOCAL_CLOSED)) {
            /* detach every link with closed=true first: RabbitMQ 3.10 deletes
             * a subscriber's temporary queue on the link's close, not on the
             * connection's, and would otherwise keep one per subscriber */
            for (pn_link_t *l = pn_link_head(conn, PN_LOCAL_ACTIVE); l; l = pn_link_next(l, PN_LOCAL_ACTIVE))
                pn_link_close(l);
            for (pn_session_t *s = pn_session_head(conn, PN_LOCAL_ACTIVE); s; s = pn_session_next(s, PN_LOCAL_ACTIVE))
                pn_session_close(s);
            pn_connection_close(conn);
        }
        break;
    case PN_LINK_REMOTE_CLOSE:
    case PN_LINK_REMOTE_DETACH: {
        pn_link_t *l = pn_event_link(e);
        const char *a = pn_link_is_sender(l) ? pn_terminus_get_address(pn_link_target(l))
                                             : pn_terminus_get_address(pn_link_source(l));
        char what[700];
        snprintf(what, sizeof what, "%s link %s%s%s", pn_link_is_sender(l) ? "sending" : "receiving",
                 a ? "'" : "", a ? a : (pn_link_is_sender(l) ? "(anonymous relay)" : "(dynamic)"), a ? "'" : "");
        check_remote_close(b, c, what, pn_link_remote_condition(l));
        if (type == PN_LINK_REMOTE_CLOSE) pn_link_close(l);
        else pn_link_detach(l);
        break;
    }
    case PN_SESSION_REMOTE_CLOSE:
        check_remote_close(b, c, "session", pn_session_remote_condition(pn_event_session(e)));
        pn_session_close(pn_event_session(e));
        break;
    case PN_CONNECTION_REMOTE_CLOSE:
        check_remote_close(b, c, "connection", pn_connection_remote_condition(conn));
        if (is_finishing(b) && !pn_condition_is_set(pn_connection_remote_condition(conn)) &&
            (c->role == ROLE_IDLE || b->mode == MODE_FILL)) {
            /* the broker answered our close: it has read all we sent */
            pthread_mutex_lock(&b->lock);
            if (c->role == ROLE_IDLE) b->idle_closed++;
            else b->t_closed = now_ns();
            pthread_mutex_unlock(&b->lock);
        }
        pn_connection_close(conn);
        break;
    case PN_TRANSPORT_CLOSED: {
        pn_condition_t *cond = pn_transport_condition(pn_event_transport(e));
        pthread_mutex_lock(&b->lock);
        if (!b->finishing) {
            char why[512];
            cond_text(cond, why, sizeof why);
            if (!b->any_open) b->conn_failed = true;
            if (c->opened)
                fail_locked(b, "%s %d: connection to %s lost (%s)", role_name[c->role], c->index, b->connect_addr,
                            why);
            else
                fail_locked(b, "%s %d: cannot connect to %s (%s)", role_name[c->role], c->index, b->connect_addr,
                            why);
        }
        c->conn = NULL;
        b->live--;
        maybe_stop_locked(b);
        pthread_mutex_unlock(&b->lock);
        break;
    }
    default: break;
    }
}

typedef struct worker_arg {
    bench *b;
    pn_proactor_t *p;
} worker_arg;

static void *worker(void *arg)
{
    bench *b = ((worker_arg *)arg)->b;
    pn_proactor_t *p = ((worker_arg *)arg)->p;
    for (;;) {
        pn_event_batch_t *batch = pn_proactor_wait(p);
        bool stop = false;
        pn_event_t *e;
        while ((e = pn_event_batch_next(batch))) {
            pn_event_type_t t = pn_event_type(e);
            if (t == PN_PROACTOR_INACTIVE || t == PN_PROACTOR_INTERRUPT) stop = true;
            else handle(b, e);
        }
        pn_proactor_done(p, batch);
        if (stop) {
            pn_proactor_interrupt(p); /* pass it on to the next worker */
            return NULL;
        }
    }
}

/* ------------------------------------------------------------ one run */

typedef struct run_result {
    bool ok, conn_failed;
} run_result;

static const char *style_name(addr_style s)
{
    return s == STYLE_PLEXUS ? "plexus" : s == STYLE_RABBITMQ310 ? "rabbitmq310" : "plain";
}

static const char *mode_name(bench_mode m)
{
    static const char *names[] = {"throughput", "fanout", "reqrep", "fill", "drain", "idle"};
    return names[m];
}

static int queue_address(const options *o, const char *name, char *out, size_t n)
{
    int k;
    switch (o->style) {
    case STYLE_PLEXUS: k = snprintf(out, n, "/queues/%s", name); break;
    case STYLE_RABBITMQ310: k = snprintf(out, n, "/queue/%s", name); break;
    default: k = snprintf(out, n, "%s", name); break;
    }
    return k < 0 || (size_t)k >= n ? -1 : 0;
}

static int build_template(bench *b)
{
    b->filler = malloc(b->size);
    if (!b->filler) return -ENOMEM;
    for (size_t i = 0; i < b->size; i++) b->filler[i] = (char)('a' + i % 26);
    if (b->mode == MODE_REQREP) return 0;
    pn_message_t *m = pn_message();
    if (!m) return -ENOMEM;
    pn_message_set_inferred(m, true); /* a binary body is a data section */
    pn_message_set_durable(m, b->o->persistent);
    pn_data_put_binary(pn_message_body(m), pn_bytes(b->size, b->filler));
    size_t cap = b->size + 256;
    char *buf = NULL;
    int rc;
    for (;;) {
        char *nb = realloc(buf, cap);
        if (!nb) {
            rc = -ENOMEM;
            break;
        }
        buf = nb;
        size_t len = cap;
        rc = pn_message_encode(m, buf, &len);
        if (rc == PN_OVERFLOW) {
            cap *= 2;
            continue;
        }
        if (rc == 0) {
            /* the body is the message's last bytes; everything before it is
             * the prefix sent ahead of each stamp */
            size_t off, blen;
            if (len < b->size || find_body((uint8_t *)buf, len, &off, &blen) != 1 || blen != b->size ||
                off != len - b->size) {
                rc = -EPROTO;
                break;
            }
            b->prefix = buf;
            b->prefix_len = off;
            buf = NULL;
        }
        break;
    }
    free(buf);
    pn_message_free(m);
    return rc;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static double pct_us(const uint64_t *v, size_t n, double p)
{
    if (!n) return 0;
    size_t i = (size_t)(p * (double)n);
    if (i > 0 && (double)i == p * (double)n) i--; /* nearest-rank */
    if (i >= n) i = n - 1;
    return (double)v[i] / 1000.0;
}

static double cpu_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

static void print_config(const bench *b, const char *label)
{
    const options *o = b->o;
    if (b->mode == MODE_IDLE) {
        printf("== idle  target=%s  connections=%" PRIu64 "  hold=%g s  threads=%d  (at most %d opening at once)\n",
               label, b->count, o->hold_s, b->threads, IDLE_OPENING);
        fflush(stdout);
        return;
    }
    if (b->mode == MODE_DRAIN) {
        printf("== drain  target=%s  ", label);
        if (b->size) printf("size=%zu B", b->size);
        else printf("size=(the fill's)");
        printf("  count=%" PRIu64 "  credit=%" PRIu64 "\n   address      receive %s\n", b->count,
               b->credit < b->count ? (uint64_t)b->credit : b->count, b->source_addr);
        fflush(stdout);
        return;
    }
    printf("== %s%s  target=%s  size=%zu B  qos=%s", mode_name(b->mode), o->persistent ? " (persistent)" : "", label, b->size,
           b->qos == QOS_ALO ? "at-least-once" : "at-most-once");
    if (b->mode == MODE_THROUGHPUT)
        printf("  producers=%d consumers=%d", b->n_producers, o->direct ? b->n_producers : o->consumers);
    if (b->mode == MODE_FANOUT) printf("  subscribers=%d", o->subscribers);
    if (b->mode == MODE_FILL) printf("  count=%" PRIu64, b->count); /* the broker grants the credit */
    else printf("  count=%" PRIu64 "  credit=%u", b->count, b->credit);
    if (b->mode != MODE_REQREP && b->qos == QOS_ALO) printf("  window=%u", b->window);
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

/* idle: one descriptor a connection, and 64 spare for the proactor and
 * stdio. Raises the soft limit to the hard one; fails the run, saying so,
 * when even that is too few. */
static int raise_nofile(bench *b)
{
    struct rlimit rl;
    uint64_t need = b->count + 64;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0) {
        snprintf(b->error, sizeof b->error, "getrlimit(RLIMIT_NOFILE): %s", strerror(errno));
    } else {
        if (rl.rlim_cur < rl.rlim_max) {
            struct rlimit want = {rl.rlim_max, rl.rlim_max};
            if (setrlimit(RLIMIT_NOFILE, &want) == 0) rl = want;
        }
        if (rl.rlim_cur == RLIM_INFINITY || need <= (uint64_t)rl.rlim_cur) return 0;
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
static bool report_idle(bench *b, const char *label, double cpu)
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
    if (b->failed) printf("   FAILED       %s\n", b->error);
    printf("RESULT mode=idle target=%s connections=%" PRIu64 " open_s=%.3f hold_s=%g status=%s", label, n, open_s,
           b->o->hold_s, ok ? "ok" : "FAIL");
    if (!ok)
        printf(" opened=%" PRIu64 " reason=%s", opened, b->conn_failed ? "connect" : b->timed_out ? "timeout" : "error");
    printf("\n");
    fflush(stdout);
    return ok;
}

static run_result run_one(const options *o, bench_mode mode, size_t size, qos_level qos, uint64_t count)
{
    run_result res = {false, false};
    bench *b = calloc(1, sizeof *b);
    if (!b) {
        fprintf(stderr, "amqp_bench: out of memory\n");
        return res;
    }
    pthread_mutex_init(&b->lock, NULL);
    b->o = o;
    b->mode = mode;
    b->size = size;
    b->qos = qos;
    b->count = count;
    /* Credit in messages, sized by bytes unless given: 512 KiB worth, 8 to
     * 1000 messages. What is in flight must stay in cache: on the 2-core
     * machine (2 MiB L2 a core) 64 KiB messages go direct at 3.9 GB/s with
     * 8 in flight but 1.9 GB/s with 16 and 1 GB/s with 1000. Brokers may
     * like more (RabbitMQ 3.10: 0.41 GB/s with 8, 0.54 with 32): --credit. */
    b->credit = o->credit ? o->credit : (uint32_t)(size >= 65536 ? 8 : size <= 524 ? 1000 : 524288 / size);
    b->window = o->window ? o->window : 2 * b->credit;
    b->nonce = (uint32_t)(now_ns() ^ ((uint64_t)getpid() << 16)) | 1u;
    const char *label = o->label ? o->label : o->direct ? "direct" : style_name(o->style);

    /* reply path defaults: dynamic source + anonymous relay where the
     * address scheme has them (plexus, direct), a named queue and one link
     * per reply address elsewhere */
    b->rsource = o->rsource != RSRC_AUTO ? o->rsource
                 : (o->direct || o->style == STYLE_PLEXUS) ? RSRC_DYNAMIC
                                                           : RSRC_NAMED;
    b->reply = o->reply != REPLY_AUTO ? o->reply : (!o->direct && o->style == STYLE_PLEXUS) ? REPLY_ANON : REPLY_LINK;

    char qname[300];
    int bad_addr = 0;
    if (mode == MODE_FANOUT) {
        int k = o->style == STYLE_PLEXUS ? snprintf(b->target_addr, sizeof b->target_addr, "/exchanges/%s/%s",
                                                    o->exchange, o->key)
                                         : snprintf(b->target_addr, sizeof b->target_addr, "/exchange/%s/%s",
                                                    o->exchange, o->key);
        bad_addr = k < 0 || (size_t)k >= sizeof b->target_addr;
        snprintf(b->source_addr, sizeof b->source_addr, "%s", b->target_addr);
    } else {
        snprintf(qname, sizeof qname, "%s%s", o->queue, mode == MODE_REQREP ? "-rpc" : "");
        bad_addr = queue_address(o, qname, b->target_addr, sizeof b->target_addr) < 0;
        snprintf(b->source_addr, sizeof b->source_addr, "%s", b->target_addr);
        snprintf(qname, sizeof qname, "reply-%s-%ld", o->queue, (long)getpid());
        bad_addr |= queue_address(o, qname, b->named_reply, sizeof b->named_reply) < 0;
    }
    if (bad_addr) {
        fprintf(stderr, "amqp_bench: queue or exchange name too long\n");
        goto out;
    }

    b->n_producers = mode == MODE_THROUGHPUT ? o->producers : mode == MODE_DRAIN || mode == MODE_IDLE ? 0 : 1;
    b->n_receivers = o->direct ? 0
                     : mode == MODE_THROUGHPUT                 ? o->consumers
                     : mode == MODE_FANOUT                     ? o->subscribers
                     : mode == MODE_FILL || mode == MODE_IDLE ? 0
                                                               : 1;
    b->expected = mode == MODE_FANOUT ? count * (uint64_t)o->subscribers : count;
    if (mode == MODE_DRAIN && !o->size_set) b->size = 0; /* taken from the first message */
    /* idle: one thread is plenty for connections that do nothing */
    b->threads = mode == MODE_IDLE && !o->threads_set ? 1 : o->threads;
    b->close_grace_ns = 3000000000ull + (mode == MODE_IDLE ? count * 1000000ull : 0); /* 1 ms a connection */
    if (mode != MODE_REQREP && mode != MODE_IDLE) {
        /* fill receives nothing: its seen[] stays empty and unread */
        b->seen = calloc(b->expected && mode != MODE_FILL ? b->expected : 1, 1);
        b->base = calloc((size_t)b->n_producers + 1, sizeof *b->base);
        if (!b->seen || !b->base) {
            fprintf(stderr, "amqp_bench: out of memory for %" PRIu64 " receipts\n", b->expected);
            goto out;
        }
        for (int i = 0; i < b->n_producers; i++) {
            uint64_t per = count / (uint64_t)b->n_producers, rem = count % (uint64_t)b->n_producers;
            b->base[i + 1] = b->base[i] + per + ((uint64_t)i < rem ? 1 : 0);
        }
    }
    int rc = mode == MODE_DRAIN || mode == MODE_IDLE ? 0 : build_template(b);
    if (rc) {
        fprintf(stderr, "amqp_bench: cannot build the message template (%d)\n", rc);
        goto out;
    }
    if (mode == MODE_IDLE && raise_nofile(b) < 0) {
        res.ok = report_idle(b, label, 0);
        goto out;
    }
    print_config(b, label);

    b->proactor = pn_proactor();
    if (!b->proactor) {
        fprintf(stderr, "amqp_bench: cannot create a proactor\n");
        goto out;
    }
    double cpu0 = cpu_seconds();
    pthread_mutex_lock(&b->lock);
    b->t_start = b->last_progress_ns = now_ns();
    /* idle: --deadline bounds opening and closing; the hold comes on top */
    b->deadline_ns = b->t_start + (uint64_t)((o->deadline_s + (mode == MODE_IDLE ? o->hold_s : 0)) * 1e9);
    pn_proactor_set_timeout(b->proactor, 100);
    if (o->direct) {
        char la[PN_MAX_ADDR];
        pn_proactor_addr(la, sizeof la, o->listen_host, o->listen_port);
        snprintf(b->connect_addr, sizeof b->connect_addr, "%s", la);
        pn_listener_t *lis = pn_listener();
        b->peer_proactor = pn_proactor();
        if (!lis || !b->peer_proactor) {
            if (lis) pn_listener_free(lis);
            fail_locked(b, "out of memory creating the listener");
        } else {
            pn_proactor_listen(b->peer_proactor, lis, la, 16);
        }
    } else {
        pn_proactor_addr(b->connect_addr, sizeof b->connect_addr, o->host, o->port);
        if (mode == MODE_REQREP) connect_role_locked(b, ROLE_RR_SERVER, 1);
        else if (mode == MODE_IDLE) idle_connect_more_locked(b);
        else if (mode == MODE_FILL) start_producers_locked(b); /* no receiver to wait for */
        else connect_role_locked(b, ROLE_CONSUMER, b->n_receivers);
    }
    pthread_mutex_unlock(&b->lock);

    /* --direct: the listening side has a proactor and a thread of its own,
     * as a second process would, and the rest of --threads (at least one)
     * drive the connecting side. With one proactor for both, one thread
     * sometimes serves both ends back to back with the data hot in its
     * cache, and the figures swing twofold from run to run. */
    int nt = b->threads + (b->peer_proactor && b->threads < 2);
    pthread_t *th = calloc((size_t)nt, sizeof *th);
    worker_arg main_arg = {b, b->proactor}, peer_arg = {b, b->peer_proactor};
    int started = 0;
    if (th)
        for (; started < nt - 1; started++)
            if (pthread_create(&th[started], NULL, worker, started == 0 && b->peer_proactor ? &peer_arg : &main_arg))
                break;
    if (b->peer_proactor && started == 0) { /* no thread for the listener: nothing can run */
        pthread_mutex_lock(&b->lock);
        fail_locked(b, "cannot start a thread for the listening side");
        pthread_mutex_unlock(&b->lock);
    } else {
        worker(&main_arg); /* the main thread is a worker too */
    }
    for (int i = 0; i < started; i++) pthread_join(th[i], NULL);
    free(th);
    double cpu = cpu_seconds() - cpu0;
    pn_proactor_free(b->proactor);
    b->proactor = NULL;
    if (b->peer_proactor) pn_proactor_free(b->peer_proactor);
    b->peer_proactor = NULL;

    /* ---- the report: counters are final now, no thread runs */
    if (mode == MODE_IDLE) {
        res.ok = report_idle(b, label, cpu);
        res.conn_failed = b->conn_failed;
        goto out;
    }
    size = b->size; /* drain: the fill's */
    uint64_t sent = 0, accepted = 0, released = 0, no_outcome = 0;
    size_t nlat = 0;
    for (conn_ctx *c = b->conns; c; c = c->next) {
        if (c->role == ROLE_PRODUCER || c->role == ROLE_RR_CLIENT) {
            sent += c->sent;
            accepted += c->accepted;
            released += c->released;
            no_outcome += c->no_outcome;
        }
        nlat += c->lat_n;
    }
    uint64_t *lat = malloc((nlat ? nlat : 1) * sizeof *lat);
    size_t k = 0;
    if (lat)
        for (conn_ctx *c = b->conns; c; c = c->next) {
            if (c->lat_n) memcpy(lat + k, c->lat, c->lat_n * sizeof *lat);
            k += c->lat_n;
        }
    else
        nlat = 0;
    qsort(lat, nlat, sizeof *lat, cmp_u64);
    double p50 = pct_us(lat, nlat, 0.50), p99 = pct_us(lat, nlat, 0.99);
    free(lat);

    uint64_t t0 = b->t_first_send ? b->t_first_send : b->t_start;
    uint64_t t1 = b->t_end > t0 ? b->t_end : now_ns();
    /* fill at-most-once: until the broker answered our close, so it has
     * read every transfer; at-least-once: until the last acceptance */
    if (mode == MODE_FILL && qos == QOS_AMO && b->t_closed > t0) t1 = b->t_closed;
    double secs = (double)(t1 - t0) / 1e9;
    if (secs <= 0) secs = 1e-9;

    /* exactly-once: every slot received once */
    uint64_t missing = 0, dup_slots = 0, first_missing = UINT64_MAX, first_dup = UINT64_MAX;
    if (b->seen && mode != MODE_FILL) /* fill's seen[] is a placeholder */
        for (uint64_t i = 0; i < b->expected; i++) {
            if (b->seen[i] == 0) {
                if (!missing++) first_missing = i;
            } else if (b->seen[i] > 1) {
                if (!dup_slots++) first_dup = i;
            }
        }
    bool verified = mode == MODE_REQREP ? (b->bad == 0 && b->unique == b->count)
                    : mode == MODE_FILL ? true /* nothing received: the drain checks */
                                        : (missing == 0 && dup_slots == 0 && b->dups == 0 && b->bad == 0);
    bool in_order = mode != MODE_DRAIN || b->out_of_order == 0;
    /* fill: every message accepted (or sent, and the broker read them) */
    bool filled = mode != MODE_FILL || (b->unique == count && (qos == QOS_ALO || b->t_closed));
    bool ok = !b->failed && verified && in_order && filled && b->extra == 0;
    bool checked = b->t_first_send != 0 || b->unique || b->bad;

    uint64_t got = b->unique;
    if (mode == MODE_DRAIN) /* every delivery accepted, good or not */
        for (conn_ctx *c = b->conns; c; c = c->next)
            if (c->role == ROLE_CONSUMER) got = c->drained;
    double rate = (double)got / secs;
    if (mode == MODE_FILL) {
        if (qos == QOS_ALO)
            printf("   messages     %" PRIu64 " sent, %" PRIu64 " accepted and queued (no consumer)\n", sent, accepted);
        else
            printf("   messages     %" PRIu64 " sent presettled; %s\n", sent,
                   b->t_closed ? "the broker answered our close after reading them all"
                               : "the broker did not answer our close (no telling what it read)");
        if (released) printf("   released     %" PRIu64 " (sent again, after later ones: the queue is out of seq "
                             "order now)\n", released);
        if (no_outcome) printf("   no outcome   %" PRIu64 " settled by the peer without an outcome\n", no_outcome);
        printf("   rate         %.0f msgs/s (first send to the last %s)\n", rate,
               qos == QOS_ALO ? "acceptance" : "byte read by the broker");
        printf("   bandwidth    %.1f MB/s (payload; 1 MB = 10^6 bytes)\n", rate * (double)size / 1e6);
        if (!filled && !b->failed) {
            snprintf(b->error, sizeof b->error, "only %" PRIu64 " of %" PRIu64 " messages %s", b->unique, count,
                     qos == QOS_ALO ? "accepted" : "known to be read by the broker");
            b->failed = true;
            fprintf(stderr, "amqp_bench: error: %s\n", b->error);
        }
    } else if (mode == MODE_DRAIN) {
        printf("   messages     %" PRIu64 " of %" PRIu64 " received and accepted", got, count);
        if (b->drain_stamp_known) printf(" (fill run %08x, %zu B)", b->nonce, size);
        printf("\n   rate         %.0f msgs/s (attach to the last message)\n", rate);
        printf("   bandwidth    %.1f MB/s (payload; 1 MB = 10^6 bytes)\n", rate * (double)size / 1e6);
        if (b->extra && !b->failed) {
            snprintf(b->error, sizeof b->error,
                     "the broker sent %" PRIu64 " messages beyond the credit granted (released again)", b->extra);
            b->failed = true;
            fprintf(stderr, "amqp_bench: error: %s\n", b->error);
        }
    } else if (mode == MODE_THROUGHPUT) {
        printf("   messages     %" PRIu64 " sent, %" PRIu64 " accepted%s, %" PRIu64 " received once\n", sent,
               qos == QOS_ALO ? accepted : 0, qos == QOS_ALO ? "" : " (presettled: no outcomes)", got);
        if (released) printf("   released     %" PRIu64 " (sent again)\n", released);
        if (no_outcome) printf("   no outcome   %" PRIu64 " settled by the peer without an outcome\n", no_outcome);
        printf("   rate         %.0f msgs/s\n", rate);
        printf("   bandwidth    %.1f MB/s (payload; 1 MB = 10^6 bytes)\n", rate * (double)size / 1e6);
        printf("   latency      p50 %.1f us, p99 %.1f us (end to end: send to receive)\n", p50, p99);
    } else if (mode == MODE_FANOUT) {
        printf("   messages     %" PRIu64 " published, %" PRIu64 " deliveries to %d subscribers\n", sent, got,
               o->subscribers);
        printf("   rate         %.0f deliveries/s (all subscribers), %.0f published msgs/s\n", rate,
               rate / (double)o->subscribers);
        printf("   bandwidth    %.1f MB/s delivered (payload)\n", rate * (double)size / 1e6);
        printf("   latency      p50 %.1f us, p99 %.1f us (end to end: publish to delivery)\n", p50, p99);
    } else {
        printf("   round trips  %" PRIu64 " of %" PRIu64 ", one at a time\n", got, count);
        printf("   latency      p50 %.1f us, p99 %.1f us (request sent to reply received)\n", p50, p99);
        printf("   rate         %.0f round trips/s\n", rate);
    }
    if (checked) printf("   elapsed      %.3f s, client cpu %.2f s (%.0f%% of one core)\n", secs, cpu, 100.0 * cpu / secs);
    if (b->stale) printf("   stale        %" PRIu64 " messages from an earlier run drained and ignored\n", b->stale);
    if (mode == MODE_DRAIN && !checked) {
        printf("   exactly-once not checked: nothing was received\n");
    } else if (mode != MODE_REQREP && mode != MODE_FILL && !checked) {
        printf("   exactly-once not checked: nothing was sent\n");
    } else if (mode != MODE_REQREP && mode != MODE_FILL) {
        if (verified && mode == MODE_DRAIN) {
            printf("   exactly-once ok: every seq 0..%" PRIu64 " received exactly once%s\n", count - 1,
                   in_order ? ", in order" : "");
        } else if (verified) {
            printf("   exactly-once ok: every %s received exactly once\n",
                   mode == MODE_FANOUT ? "(subscriber, seq)" : "(producer, seq)");
        } else {
            const char *unit = mode == MODE_FANOUT ? "subscriber" : "producer";
            char where[256] = "";
            uint64_t firsts[2] = {first_missing, first_dup};
            const char *what[2] = {"first missing", "first duplicated"};
            for (int f = 0; f < 2; f++) {
                if (firsts[f] == UINT64_MAX) continue;
                uint64_t who = 0, seq;
                if (mode == MODE_FANOUT) {
                    who = firsts[f] / count;
                    seq = firsts[f] % count;
                } else {
                    while (who + 1 < (uint64_t)b->n_producers && b->base[who + 1] <= firsts[f]) who++;
                    seq = firsts[f] - b->base[who];
                }
                size_t wl = strlen(where);
                if (mode == MODE_DRAIN)
                    snprintf(where + wl, sizeof where - wl, "%s%s: seq %" PRIu64, wl ? ", " : " (", what[f], seq);
                else
                    snprintf(where + wl, sizeof where - wl, "%s%s: %s %" PRIu64 " seq %" PRIu64, wl ? ", " : " (",
                             what[f], unit, who, seq);
            }
            if (where[0]) strncat(where, ")", sizeof where - strlen(where) - 1);
            char msg[512];
            snprintf(msg, sizeof msg,
                     "*** EXACTLY-ONCE VIOLATED: %" PRIu64 " missing, %" PRIu64 " duplicated (%" PRIu64
                     " extra copies), %" PRIu64 " malformed%s ***",
                     missing, dup_slots, b->dups, b->bad, where);
            printf("   %s\n", msg);
            fprintf(stderr, "amqp_bench: %s\n", msg);
            fflush(stdout);
        }
        if (!in_order) {
            char msg[320];
            snprintf(msg, sizeof msg, "*** ORDER VIOLATED: %" PRIu64 " messages out of sequence, first %s ***",
                     b->out_of_order, b->order_example);
            printf("   %s\n", msg);
            fprintf(stderr, "amqp_bench: %s\n", msg);
            fflush(stdout);
        }
    }
    if (b->bad && b->bad_example[0]) printf("   malformed    %" PRIu64 ", e.g. %s\n", b->bad, b->bad_example);
    if (b->failed) printf("   FAILED       %s\n", b->error);

    printf("RESULT mode=%s target=%s size=%zu qos=%s", mode_name(mode), label, size, qos == QOS_ALO ? "alo" : "amo");
    if (mode == MODE_THROUGHPUT)
        printf(" producers=%d consumers=%d count=%" PRIu64 " msgs_per_s=%.0f mb_per_s=%.1f", b->n_producers,
               o->direct ? b->n_receivers : o->consumers, count, rate, rate * (double)size / 1e6);
    else if (mode == MODE_FANOUT)
        printf(" producers=1 subscribers=%d count=%" PRIu64 " deliveries_per_s=%.0f msgs_per_s=%.0f mb_per_s=%.1f",
               o->subscribers, count, rate, rate / (double)o->subscribers, rate * (double)size / 1e6);
    else if (mode == MODE_FILL || mode == MODE_DRAIN)
        printf(" count=%" PRIu64 " msgs_per_s=%.0f mb_per_s=%.1f", count, rate, rate * (double)size / 1e6);
    else
        printf(" round_trips=%" PRIu64 " rtt_per_s=%.0f", got, rate);
    if (mode != MODE_FILL && mode != MODE_DRAIN) printf(" p50_us=%.1f p99_us=%.1f", p50, p99);
    printf(" status=%s", ok ? "ok" : "FAIL");
    if (!ok) /* one word, for scripts: why it failed */
        printf(" reason=%s", b->conn_failed                           ? "connect"
                             : b->timed_out                           ? "timeout"
                             : !verified && (!b->failed || b->idle_stop) ? "exactly-once"
                             : !in_order && (!b->failed || b->idle_stop) ? "order"
                                                                       : "error");
    printf("\n");
    fflush(stdout);
    res.ok = ok;
    res.conn_failed = b->conn_failed;

out:
    while (b->conns) {
        conn_ctx *c = b->conns;
        b->conns = c->next;
        ctx_free(c);
    }
    if (b->proactor) pn_proactor_free(b->proactor);
    if (b->peer_proactor) pn_proactor_free(b->peer_proactor);
    free(b->prefix);
    free(b->filler);
    free(b->seen);
    free(b->base);
    pthread_mutex_destroy(&b->lock);
    free(b);
    return res;
}

/* ------------------------------------------------------------ command line */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: amqp_bench [options]\n"
            "Benchmark an AMQP 1.0 broker (or, with --direct, two proton peers with no broker).\n"
            "\n"
            "  --url URL           broker, amqp://[user:password@]host[:port] (default amqp://127.0.0.1:5672);\n"
            "                      with a user SASL PLAIN is used, otherwise ANONYMOUS\n"
            "  --mode M            throughput | fanout | reqrep | all (default all); or fill | drain | idle,\n"
            "                      which are never part of `all` (see below)\n"
            "  --count N           messages (throughput/fanout/fill/drain), round trips (reqrep) or\n"
            "                      connections (idle); default by size: throughput and fill 200000 (fewer\n"
            "                      above 6 KiB, 20000 at 64 KiB), fanout a quarter of that, reqrep 10000,\n"
            "                      idle 1000; drain has no default\n"
            "  --size S            message body bytes, at least %d (default 256; `all` runs 256 and 65536)\n"
            "  --qos Q             alo (at-least-once: unsettled, only accepted count) | amo (presettled)\n"
            "                      (default alo; `all` runs both for 256 B)\n"
            "  --producers P       throughput producers, each its own connection (default 1)\n"
            "  --consumers C       throughput consumers, each its own connection (default 1)\n"
            "  --subscribers K     fanout subscribers (default 4)\n"
            "  --credit W          receiver credit window in messages, topped up at half (default: 512 KiB\n"
            "                      worth, between 8 and 1000: 1000 for 256 B, 8 for 64 KiB)\n"
            "  --window U          most unsettled at-least-once sends per producer (default 2 x credit)\n"
            "  --direct            no broker: listen on --listen and let the producers connect to us\n"
            "  --listen HOST:PORT  address for --direct (default 127.0.0.1:0, any free port)\n"
            "  --addr-style S      plexus (/queues/Q, /exchanges/X/K, dynamic reply source; default),\n"
            "                      rabbitmq310 (/queue/Q, /exchange/X/K, named reply queue),\n"
            "                      plain (bare queue names; no exchanges)\n"
            "  --queue NAME        queue name (default amqp-bench; reqrep uses NAME-rpc)\n"
            "  --exchange NAME     fanout exchange (default amq.fanout)\n"
            "  --key KEY           fanout routing key (default bench)\n"
            "  --reply-via V       anon (anonymous-relay sender, `to` = reply-to) | link (a sender per reply\n"
            "                      address); default anon for plexus, link otherwise\n"
            "  --reply-source S    dynamic | named; default dynamic for plexus and --direct, named otherwise\n"
            "  --threads T         proactor worker threads (default: online cores)\n"
            "  --max-frame B       AMQP max frame size to offer (default: proton's, unlimited)\n"
            "  --hold SEC          idle: keep the connections open SEC seconds once all are (default 5)\n"
            "  --deadline SEC      give up on a run after SEC seconds (default 120; idle: plus --hold)\n"
            "  --idle SEC          give up when nothing arrives for SEC after the producers finish (default 5)\n"
            "  --connect-timeout SEC  give up when no AMQP open arrives within SEC (default 10)\n"
            "  --label NAME        target name in the output (default: direct or the address style)\n"
            "  --inject F          test the exactly-once check: producer 0 sends its middle message twice\n"
            "                      (dup) or not at all (skip); the run must then FAIL\n"
            "  --verbose           progress on stderr\n"
            "  --persistent        send persistent messages (header durable=true; throughput, fanout, fill)\n"
            "  --help              this text\n"
            "\n"
            "A queue's backlog and a broker's connections, to watch its memory from outside:\n"
            "  --mode fill --queue NAME --count N --size S [--qos alo|amo] [--credit W]\n"
            "                      one producer puts N messages into the queue (no consumer) and waits until\n"
            "                      all are accepted (alo) or sent and read by the broker (amo); the broker\n"
            "                      grants the credit, --credit W only sets the default --window (2 x W)\n"
            "  --mode drain --queue NAME --count N [--credit W] [--size S]\n"
            "                      one consumer accepts exactly N messages of an earlier fill (credit never\n"
            "                      beyond N); every seq 0..N-1 must come once and in order, all with the\n"
            "                      first message's run nonce (and --size, if given)\n"
            "  --mode idle --count N [--hold SEC]\n"
            "                      N connections, SASL and open only, at most %d opening at once; prints\n"
            "                      `READY connections=N` once all are open, holds them SEC seconds, closes\n"
            "                      them; one proactor thread unless --threads; needs N + 64 open files\n"
            "\n"
            "Each run prints one line per figure and a final `RESULT key=value ...` line.\n"
            "Exit status: 0 all runs ok, 1 a run failed (error, timeout, exactly-once violation), 2 bad usage.\n",
            STAMP_SIZE, IDLE_OPENING);
}

static int parse_u64(const char *s, uint64_t *out, uint64_t min, uint64_t max)
{
    char *end;
    if (!s || !*s || *s == '-') return -1;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || v < min || v > max) return -1;
    *out = v;
    return 0;
}

static int parse_seconds(const char *s, double *out, bool zero_ok)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v > 0 || (zero_ok && v == 0)) || v > 86400) return -1;
    *out = v;
    return 0;
}

static int hexval(char ch)
{
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
    return -1;
}

/* Percent-decode n bytes of s into out (user names and passwords in URLs). */
static int pct_decode(const char *s, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (ch == '%') {
            if (i + 2 >= n || hexval(s[i + 1]) < 0 || hexval(s[i + 2]) < 0) return -1;
            ch = (char)(hexval(s[i + 1]) * 16 + hexval(s[i + 2]));
            i += 2;
        }
        if (o + 1 >= cap) return -1;
        out[o++] = ch;
    }
    out[o] = 0;
    return 0;
}

/* amqp://[user[:password]@]host[:port][/...] ; host may be [v6]. */
static int parse_url(options *o, const char *url)
{
    snprintf(o->url, sizeof o->url, "%s", url);
    const char *p = url;
    if (!strncmp(p, "amqp://", 7)) p += 7;
    else if (!strncmp(p, "amqps://", 8)) {
        fprintf(stderr, "amqp_bench: amqps:// (TLS) is not supported by this bench\n");
        return -1;
    } else if (strstr(p, "://")) {
        fprintf(stderr, "amqp_bench: --url must start with amqp://\n");
        return -1;
    }
    const char *end = p + strcspn(p, "/?#");
    const char *at = NULL;
    for (const char *q = p; q < end; q++)
        if (*q == '@') at = q;
    o->have_user = false;
    if (at) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        size_t ul = colon ? (size_t)(colon - p) : (size_t)(at - p);
        if (pct_decode(p, ul, o->user, sizeof o->user) < 0 ||
            (colon && pct_decode(colon + 1, (size_t)(at - colon - 1), o->password, sizeof o->password) < 0)) {
            fprintf(stderr, "amqp_bench: bad user or password in --url\n");
            return -1;
        }
        if (!colon) o->password[0] = 0;
        o->have_user = o->user[0] != 0;
        p = at + 1;
    }
    const char *hs = p, *he, *port = NULL;
    if (*p == '[') {
        const char *rb = memchr(p, ']', (size_t)(end - p));
        if (!rb) {
            fprintf(stderr, "amqp_bench: bad IPv6 host in --url\n");
            return -1;
        }
        hs = p + 1;
        he = rb;
        if (rb + 1 < end && rb[1] == ':') port = rb + 2;
        else if (rb + 1 != end) {
            fprintf(stderr, "amqp_bench: bad --url after the host\n");
            return -1;
        }
    } else {
        const char *colon = memchr(p, ':', (size_t)(end - p));
        he = colon ? colon : end;
        if (colon) port = colon + 1;
    }
    if (he == hs || (size_t)(he - hs) >= sizeof o->host) {
        fprintf(stderr, "amqp_bench: --url has no host\n");
        return -1;
    }
    memcpy(o->host, hs, (size_t)(he - hs));
    o->host[he - hs] = 0;
    if (port) {
        uint64_t v;
        char tmp[32];
        size_t pl = (size_t)(end - port);
        if (pl == 0 || pl >= sizeof tmp) {
            fprintf(stderr, "amqp_bench: bad port in --url\n");
            return -1;
        }
        memcpy(tmp, port, pl);
        tmp[pl] = 0;
        if (parse_u64(tmp, &v, 1, 65535)) {
            fprintf(stderr, "amqp_bench: bad port '%s' in --url\n", tmp);
            return -1;
        }
        snprintf(o->port, sizeof o->port, "%s", tmp);
    } else {
        snprintf(o->port, sizeof o->port, "5672");
    }
    return 0;
}

static int parse_hostport(const char *s, char *host, size_t hn, char *port, size_t pn)
{
    const char *colon = strrchr(s, ':');
    if (!colon) return -1;
    const char *hs = s, *he = colon;
    if (*s == '[' && colon > s && colon[-1] == ']') {
        hs = s + 1;
        he = colon - 1;
    }
    if ((size_t)(he - hs) >= hn) return -1;
    memcpy(host, hs, (size_t)(he - hs));
    host[he - hs] = 0;
    uint64_t v;
    if (parse_u64(colon + 1, &v, 0, 65535)) return -1;
    snprintf(port, pn, "%s", colon + 1);
    return 0;
}

static uint64_t default_count(bench_mode m, size_t size)
{
    if (m == MODE_REQREP) return size <= 4096 ? 10000 : 2000;
    /* ~1.3 GB of payload at most, so 64 KiB runs stay a few seconds */
    uint64_t n = 1310720000ull / size;
    if (n > 200000) n = 200000;
    if (n < 1000) n = 1000;
    if (m == MODE_FANOUT) n /= 4;
    return n;
}

enum {
    OPT_URL = 256, OPT_MODE, OPT_COUNT, OPT_SIZE, OPT_QOS, OPT_PRODUCERS, OPT_CONSUMERS, OPT_SUBSCRIBERS,
    OPT_DIRECT, OPT_LISTEN, OPT_STYLE, OPT_CREDIT, OPT_WINDOW, OPT_DEADLINE, OPT_IDLE, OPT_CONNECT, OPT_THREADS,
    OPT_QUEUE, OPT_EXCHANGE, OPT_KEY, OPT_LABEL, OPT_REPLY_VIA, OPT_REPLY_SOURCE, OPT_MAX_FRAME, OPT_INJECT, OPT_VERBOSE, OPT_PERSISTENT,
    OPT_HOLD, OPT_HELP
};

static int parse_args(options *o, int argc, char **argv)
{
    static const struct option longopts[] = {
        {"url", required_argument, NULL, OPT_URL},
        {"mode", required_argument, NULL, OPT_MODE},
        {"count", required_argument, NULL, OPT_COUNT},
        {"size", required_argument, NULL, OPT_SIZE},
        {"qos", required_argument, NULL, OPT_QOS},
        {"producers", required_argument, NULL, OPT_PRODUCERS},
        {"consumers", required_argument, NULL, OPT_CONSUMERS},
        {"subscribers", required_argument, NULL, OPT_SUBSCRIBERS},
        {"direct", no_argument, NULL, OPT_DIRECT},
        {"listen", required_argument, NULL, OPT_LISTEN},
        {"addr-style", required_argument, NULL, OPT_STYLE},
        {"credit", required_argument, NULL, OPT_CREDIT},
        {"window", required_argument, NULL, OPT_WINDOW},
        {"deadline", required_argument, NULL, OPT_DEADLINE},
        {"idle", required_argument, NULL, OPT_IDLE},
        {"connect-timeout", required_argument, NULL, OPT_CONNECT},
        {"threads", required_argument, NULL, OPT_THREADS},
        {"queue", required_argument, NULL, OPT_QUEUE},
        {"exchange", required_argument, NULL, OPT_EXCHANGE},
        {"key", required_argument, NULL, OPT_KEY},
        {"label", required_argument, NULL, OPT_LABEL},
        {"reply-via", required_argument, NULL, OPT_REPLY_VIA},
        {"reply-source", required_argument, NULL, OPT_REPLY_SOURCE},
        {"max-frame", required_argument, NULL, OPT_MAX_FRAME},
        {"inject", required_argument, NULL, OPT_INJECT},
        {"verbose", no_argument, NULL, OPT_VERBOSE},
        {"persistent", no_argument, NULL, OPT_PERSISTENT},
        {"hold", required_argument, NULL, OPT_HOLD},
        {"help", no_argument, NULL, OPT_HELP},
        {NULL, 0, NULL, 0},
    };
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    memset(o, 0, sizeof *o);
    o->mode_all = true;
    o->size = 256;
    o->qos = QOS_ALO;
    o->producers = o->consumers = 1;
    o->subscribers = 4;
    o->deadline_s = 120;
    o->idle_s = 5;
    o->connect_s = 10;
    o->hold_s = 5;
    o->threads = cores > 0 && cores < 64 ? (int)cores : 2;
    o->queue = "amqp-bench";
    o->exchange = "amq.fanout";
    o->key = "bench";
    snprintf(o->listen_host, sizeof o->listen_host, "127.0.0.1");
    snprintf(o->listen_port, sizeof o->listen_port, "0");
    if (parse_url(o, "amqp://127.0.0.1:5672") < 0) return 2;

    opterr = 0;
    int ch, li = -1;
    uint64_t v;
    /* the leading ':' makes a missing value ':' rather than '?' */
    while ((li = -1, ch = getopt_long(argc, argv, ":", longopts, &li)) != -1) {
        const char *a = optarg;
        char optname[64];
        snprintf(optname, sizeof optname, "--%s", li >= 0 ? longopts[li].name : "?");
        switch (ch) {
        case OPT_URL:
            if (parse_url(o, a) < 0) return 2;
            break;
        case OPT_MODE:
            o->mode_all = false;
            if (!strcmp(a, "throughput")) o->mode = MODE_THROUGHPUT;
            else if (!strcmp(a, "fanout")) o->mode = MODE_FANOUT;
            else if (!strcmp(a, "reqrep")) o->mode = MODE_REQREP;
            else if (!strcmp(a, "fill")) o->mode = MODE_FILL;
            else if (!strcmp(a, "drain")) o->mode = MODE_DRAIN;
            else if (!strcmp(a, "idle")) o->mode = MODE_IDLE;
            else if (!strcmp(a, "all")) o->mode_all = true;
            else goto bad;
            break;
        case OPT_COUNT:
            if (parse_u64(a, &v, 1, 1000000000ull)) goto bad;
            o->count = v;
            o->count_set = true;
            break;
        case OPT_SIZE:
            if (parse_u64(a, &v, STAMP_SIZE, 256u << 20)) {
                fprintf(stderr, "amqp_bench: --size must be %d..%u bytes (the body carries a %d-byte stamp)\n",
                        STAMP_SIZE, 256u << 20, STAMP_SIZE);
                return 2;
            }
            o->size = (size_t)v;
            o->size_set = true;
            break;
        case OPT_QOS:
            if (!strcmp(a, "alo")) o->qos = QOS_ALO;
            else if (!strcmp(a, "amo")) o->qos = QOS_AMO;
            else goto bad;
            o->qos_set = true;
            break;
        case OPT_PRODUCERS:
            if (parse_u64(a, &v, 1, 1000)) goto bad;
            o->producers = (int)v;
            break;
        case OPT_CONSUMERS:
            if (parse_u64(a, &v, 1, 1000)) goto bad;
            o->consumers = (int)v;
            break;
        case OPT_SUBSCRIBERS:
            if (parse_u64(a, &v, 1, 1000)) goto bad;
            o->subscribers = (int)v;
            break;
        case OPT_DIRECT: o->direct = true; break;
        case OPT_LISTEN:
            if (parse_hostport(a, o->listen_host, sizeof o->listen_host, o->listen_port, sizeof o->listen_port))
                goto bad;
            break;
        case OPT_STYLE:
            if (!strcmp(a, "plexus")) o->style = STYLE_PLEXUS;
            else if (!strcmp(a, "rabbitmq310")) o->style = STYLE_RABBITMQ310;
            else if (!strcmp(a, "plain")) o->style = STYLE_PLAIN;
            else goto bad;
            break;
        case OPT_CREDIT:
            if (parse_u64(a, &v, 1, 1000000)) goto bad;
            o->credit = (uint32_t)v;
            break;
        case OPT_WINDOW:
            if (parse_u64(a, &v, 1, 10000000)) goto bad;
            o->window = (uint32_t)v;
            break;
        case OPT_DEADLINE:
            if (parse_seconds(a, &o->deadline_s, false)) goto bad;
            break;
        case OPT_IDLE:
            if (parse_seconds(a, &o->idle_s, false)) goto bad;
            break;
        case OPT_CONNECT:
            if (parse_seconds(a, &o->connect_s, false)) goto bad;
            break;
        case OPT_HOLD:
            if (parse_seconds(a, &o->hold_s, true)) goto bad;
            break;
        case OPT_THREADS:
            if (parse_u64(a, &v, 1, 64)) goto bad;
            o->threads = (int)v;
            o->threads_set = true;
            break;
        case OPT_QUEUE:
            if (!*a) goto bad;
            o->queue = a;
            break;
        case OPT_EXCHANGE:
            if (!*a) goto bad;
            o->exchange = a;
            break;
        case OPT_KEY: o->key = a; break;
        case OPT_LABEL:
            if (!*a || strchr(a, ' ')) goto bad;
            o->label = a;
            break;
        case OPT_REPLY_VIA:
            if (!strcmp(a, "anon")) o->reply = REPLY_ANON;
            else if (!strcmp(a, "link")) o->reply = REPLY_LINK;
            else goto bad;
            break;
        case OPT_REPLY_SOURCE:
            if (!strcmp(a, "dynamic")) o->rsource = RSRC_DYNAMIC;
            else if (!strcmp(a, "named")) o->rsource = RSRC_NAMED;
            else goto bad;
            break;
        case OPT_MAX_FRAME:
            if (parse_u64(a, &v, 512, UINT32_MAX)) goto bad;
            o->max_frame = (uint32_t)v;
            break;
        case OPT_INJECT:
            if (!strcmp(a, "dup")) o->inject = INJECT_DUP;
            else if (!strcmp(a, "skip")) o->inject = INJECT_SKIP;
            else goto bad;
            break;
        case OPT_VERBOSE: o->verbose = true; break;
        case OPT_PERSISTENT: o->persistent = true; break;
        case OPT_HELP: usage(stdout); return 1;
        case ':':
            fprintf(stderr, "amqp_bench: %s needs a value (see --help)\n", argv[optind - 1]);
            return 2;
        default:
            fprintf(stderr, "amqp_bench: unknown option '%s' (see --help)\n", argv[optind - 1]);
            return 2;
        }
        continue;
    bad:
        fprintf(stderr, "amqp_bench: bad value '%s' for %s (see --help)\n", a, optname);
        return 2;
    }
    if (optind < argc) {
        fprintf(stderr, "amqp_bench: unexpected argument '%s' (see --help)\n", argv[optind]);
        return 2;
    }
    if (o->direct && o->have_user)
        fprintf(stderr, "amqp_bench: note: --direct ignores the user in --url (the peers use ANONYMOUS)\n");
    return 0;
}

typedef struct planned {
    bench_mode mode;
    size_t size;
    qos_level qos;
} planned;

int main(int argc, char **argv)
{
    options o;
    int rc = parse_args(&o, argc, argv);
    if (rc == 1) return 0; /* --help */
    if (rc) return 2;

    bool broker_only = !o.mode_all && (o.mode == MODE_FILL || o.mode == MODE_DRAIN || o.mode == MODE_IDLE);
    if (broker_only && o.direct) {
        fprintf(stderr, "amqp_bench: --mode %s measures a broker; it has no --direct form\n", mode_name(o.mode));
        return 2;
    }
    if (!o.mode_all && o.mode == MODE_DRAIN) {
        if (!o.count_set) {
            fprintf(stderr, "amqp_bench: --mode drain needs --count: how many messages the fill put there\n");
            return 2;
        }
        if (o.qos_set && o.qos == QOS_AMO) {
            fprintf(stderr, "amqp_bench: --mode drain accepts every message; --qos amo does not apply\n");
            return 2;
        }
    }
    if (!o.mode_all && o.mode == MODE_FANOUT) {
        if (o.direct) {
            fprintf(stderr, "amqp_bench: fanout needs a broker's exchange; it has no --direct form\n");
            return 2;
        }
        if (o.style == STYLE_PLAIN) {
            fprintf(stderr, "amqp_bench: fanout needs exchange addresses; --addr-style plain has none\n");
            return 2;
        }
    }

    /* `all`: the standard figures, unless --size/--qos pin them */
    planned plan[8];
    int np = 0;
    if (o.mode_all) {
        if (o.size_set || o.qos_set) {
            plan[np++] = (planned){MODE_THROUGHPUT, o.size, o.qos};
        } else {
            plan[np++] = (planned){MODE_THROUGHPUT, 256, QOS_ALO};
            plan[np++] = (planned){MODE_THROUGHPUT, 256, QOS_AMO};
            plan[np++] = (planned){MODE_THROUGHPUT, 65536, QOS_ALO};
        }
        if (!o.direct && o.style != STYLE_PLAIN) plan[np++] = (planned){MODE_FANOUT, o.size, o.qos};
        plan[np++] = (planned){MODE_REQREP, o.size, o.qos};
    } else {
        plan[np++] = (planned){o.mode, o.size, o.qos};
    }

    int failed = 0;
    for (int i = 0; i < np; i++) {
        uint64_t n = o.count_set ? o.count : plan[i].mode == MODE_IDLE ? 1000 : default_count(plan[i].mode, plan[i].size);
        run_result r = run_one(&o, plan[i].mode, plan[i].size, plan[i].qos, n);
        if (!r.ok) failed++;
        if (r.conn_failed) {
            fprintf(stderr, "amqp_bench: cannot reach %s; skipping the remaining runs\n",
                    o.direct ? "the direct listener" : o.url);
            break;
        }
        if (i + 1 < np) printf("\n");
    }
    if (o.mode_all && (o.direct || o.style == STYLE_PLAIN))
        printf("(fanout skipped: %s)\n", o.direct ? "it needs a broker's exchange" : "plain addresses have no exchanges");
    return failed ? 1 : 0;
}
