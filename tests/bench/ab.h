/* ab.h — the internal header of amqp_bench, the AMQP 1.0 benchmark client
 * (tests/bench/ab_*.c): the options, the per-run state every file shares
 * (bench, conn_ctx, the stamp) and the functions one file offers another.
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
 *
 * Where things are: ab_main.c (command line), ab_run.c (one run: proactor,
 * threads, deadline, outcome), ab_conn.c (connections, links, the event
 * dispatch), ab_stamp.c (stamp, template, exactly-once check), ab_report.c
 * (what a run prints), and one file per mode: ab_throughput.c (also the
 * producer and consumer the other stamped modes use), ab_fanout.c,
 * ab_reqrep.c, ab_direct.c, ab_fill.c (fill and drain), ab_idle.c.
 */
#ifndef PLEXUS_AB_H
#define PLEXUS_AB_H

#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/types.h>
#include <time.h>

#include <proton/condition.h>
#include <proton/connection.h>
#include <proton/delivery.h>
#include <proton/event.h>
#include <proton/link.h>
#include <proton/listener.h>
#include <proton/message.h>
#include <proton/proactor.h>
#include <proton/session.h>

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
    bool tls; /* amqps://: TLS, the broker's certificate not checked (a benchmark on loopback) */
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
    uint64_t sent_ns; /* CLOCK_MONOTONIC: sender and receiver share the clock */
} stamp;
_Static_assert(sizeof(stamp) == STAMP_SIZE, "stamp layout");

/* ------------------------------------------------------------ run state */

typedef enum {
    ROLE_PRODUCER,
    ROLE_CONSUMER,  /* throughput consumer, fanout subscriber */
    ROLE_RR_SERVER, /* reqrep responder on a broker */
    ROLE_RR_CLIENT,
    ROLE_DIRECT_PEER, /* the listening side of --direct */
    ROLE_IDLE         /* idle mode: SASL and open, nothing else */
} conn_role;

extern const char *const ab_role_name[]; /* by conn_role, for messages */

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
    char target_addr[512]; /* where producers (or the reqrep client) send */
    char source_addr[512]; /* where consumers (or the reqrep server) receive */
    char named_reply[512]; /* reqrep reply address when not dynamic */
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

static inline uint64_t ab_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* idle: at most IDLE_OPENING opens in flight. Opening all N at once would
 * overrun the broker's accept backlog (a dropped SYN costs a 1 s
 * retransmit) and hold thousands of half-made transports. */
#define IDLE_OPENING 256

typedef struct run_result {
    bool ok, conn_failed;
} run_result;

/* What a finished run's report works from, for every mode's lines. */
typedef struct ab_totals {
    uint64_t sent, accepted, released, no_outcome; /* the producers' (or the reqrep client's) */
    uint64_t got;                                  /* received once (drain: accepted, good or not) */
    size_t size;                                   /* drain: the fill's */
    double rate;                                   /* got per second */
    double p50, p99;                               /* latency, us */
    bool filled; /* fill: every message accepted (or sent, and the broker read them) */
} ab_totals;

/* seen[] after a run: how many slots never arrived and how many more than
 * once, and the first of each (UINT64_MAX: none). */
typedef struct ab_seen_scan {
    uint64_t missing, dup_slots, first_missing, first_dup;
} ab_seen_scan;

/* ---- ab_run.c: one run, its outcome and deadlines */
run_result ab_run_one(const options *o, bench_mode mode, size_t size, qos_level qos, uint64_t count);
const char *ab_mode_name(bench_mode m);
void ab_finish_locked(bench *b);
void ab_maybe_stop_locked(bench *b);
void ab_fail_locked(bench *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void ab_check_complete_locked(bench *b);
void ab_tick(bench *b);
void ab_cond_text(pn_condition_t *c, char *out, size_t n);
int ab_grow(void **p, size_t *cap, size_t need, size_t elem);
int ab_push_u64(uint64_t **v, size_t *n, size_t *cap, uint64_t x);

#define FAIL(b, ...)                                                                                                   \
    do {                                                                                                               \
        pthread_mutex_lock(&(b)->lock);                                                                                \
        ab_fail_locked((b), __VA_ARGS__);                                                                              \
        pthread_mutex_unlock(&(b)->lock);                                                                              \
    } while (0)

static inline bool ab_is_finishing(bench *b) { return __atomic_load_n(&b->finishing, __ATOMIC_ACQUIRE); }

/* ---- ab_conn.c: connections, links, the event dispatch */
conn_ctx *ab_ctx_new_locked(bench *b, conn_role role, int index);
void ab_ctx_free(conn_ctx *c);
pn_link_t *ab_make_sender(bench *b, pn_session_t *s, const char *name, const char *target);
int ab_ctx_connect_locked(bench *b, conn_ctx *c);
void ab_connect_role_locked(bench *b, conn_role role, int n);
void ab_start_producers_locked(bench *b);
void ab_settle_incoming(pn_delivery_t *d, uint64_t outcome);
void ab_handle(bench *b, pn_event_t *e);

/* ---- ab_stamp.c: the stamp, the template, the exactly-once check */
int ab_find_body(const uint8_t *p, size_t n, size_t *off, size_t *len);
int ab_build_template(bench *b);
void ab_consume_stamped(bench *b, conn_ctx *c, const uint8_t *p, size_t got, size_t total);
void ab_note_bad(bench *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void ab_scan_seen(const bench *b, ab_seen_scan *s);
void ab_print_exactly_once(const bench *b, const ab_seen_scan *s, bool verified, bool in_order, bool checked);

/* ---- ab_report.c */
double ab_cpu_seconds(void);
void ab_print_config(const bench *b, const char *label);
bool ab_report(bench *b, const char *label, double cpu);

/* ---- ab_throughput.c: the stamped producer and consumer */
void ab_producer_pump(bench *b, conn_ctx *c);
void ab_producer_disposition(bench *b, conn_ctx *c, pn_delivery_t *d);
void ab_refill_credit(bench *b, pn_link_t *l);
void ab_consumer_delivery(bench *b, conn_ctx *c, pn_link_t *l, pn_delivery_t *d);
void ab_throughput_report(bench *b, const ab_totals *t);
void ab_throughput_result(const bench *b, const ab_totals *t);

/* ---- ab_fanout.c */
int ab_fanout_address(bench *b);
void ab_fanout_report(bench *b, const ab_totals *t);
void ab_fanout_result(const bench *b, const ab_totals *t);

/* ---- ab_reqrep.c */
int ab_rr_client_send(bench *b, conn_ctx *c);
void ab_rr_client_reply(bench *b, conn_ctx *c, pn_link_t *l, pn_delivery_t *d);
void ab_rr_flush_pending(bench *b, conn_ctx *c, pn_link_t *l);
void ab_rr_server_request(bench *b, conn_ctx *c, pn_link_t *l, pn_delivery_t *d);
void ab_rr_check_relay(bench *b, conn_ctx *c, pn_connection_t *conn);
void ab_reqrep_report(bench *b, const ab_totals *t);
void ab_reqrep_result(const bench *b, const ab_totals *t);

/* ---- ab_direct.c */
void ab_direct_listen_locked(bench *b);
void ab_direct_link_open(bench *b, conn_ctx *c, pn_link_t *l);
void ab_direct_listener_open(bench *b, pn_listener_t *lis);
void ab_direct_listener_accept(bench *b, pn_listener_t *lis);
void ab_direct_listener_close(bench *b, pn_listener_t *lis);

/* ---- ab_fill.c: fill and drain */
bool ab_drain_take_nonce(bench *b, const stamp *st);
void ab_drain_note_order(bench *b, const stamp *st);
void ab_drain_print_config(const bench *b, const char *label);
void ab_fill_report(bench *b, const ab_totals *t);
void ab_drain_report(bench *b, const ab_totals *t);
void ab_fill_result(const bench *b, const ab_totals *t);

/* ---- ab_idle.c */
void ab_idle_print_config(const bench *b, const char *label);
void ab_idle_connect_more_locked(bench *b);
void ab_idle_opened(bench *b, conn_ctx *c);
void ab_idle_tick_locked(bench *b, uint64_t t, uint64_t u);
int ab_idle_raise_nofile(bench *b);
bool ab_idle_report(bench *b, const char *label, double cpu);

#endif
