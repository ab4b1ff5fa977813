/* queue_state.h — a queue process's state, shared by queue.c (the queue)
 * and qlog.c (its log on disk, for durable queues). Private to those two. */
#ifndef PLEXUS_QUEUE_STATE_H
#define PLEXUS_QUEUE_STATE_H

#include "routing/rt_internal.h"

/* A message in the queue. With a log, a persistent message on a durable
 * queue also has its record's place (seg > 0), and beyond the queue's
 * memory window only that: m is NULL until it is read back. */
typedef struct qent {
    rt_msg *m;       /* NULL: on disk only */
    uint64_t seq;    /* enqueue order, kept across redeliveries and restarts */
    int64_t expires; /* ms on the monotonic clock, 0: never */
    uint32_t dc;     /* delivery count */
    uint32_t avoid;  /* consumer slot + 1 that must not get it again (undeliverable-here) */
    uint32_t size;   /* the message's bytes */
    uint32_t body;   /* its body's bytes (rt_msg.body_len): what s->bytes and x-max-length-bytes count */
    uint32_t seg;    /* its record's segment, 0: not in the log */
    uint32_t off;    /* and offset in it */
    uint32_t rlen;   /* and length */
} qent;

typedef struct unacked {
    uint64_t k1, k2; /* k2: delivery id */
    qent e;
    uint32_t slot; /* consumer slot + 1 */
} unacked;

typedef struct consumer {
    sv_pid conn;
    uint32_t id;
    uint32_t credit;
    uint64_t mref;
    bool presettled;
    bool used;
    bool exclusive;
    bool get;        /* a Basic.Get's (rt_consume.get): not counted in active */
    bool drain_wait; /* a drain waits for the head, which the log is reading back or recording */
    sv_msg *batch;   /* deliveries gathered this turn; holds one reference per message */
} consumer;

typedef struct dl_pending {
    sv_pid to;
    rt_msg *m;
} dl_pending;

/* ------------------------------------------------------------- the log */

typedef struct qseg {
    uint32_t no;
    uint32_t live;       /* messages whose latest record is in it */
    uint64_t live_bytes; /* and their records' bytes */
} qseg;

typedef struct qconf {
    sv_pid to;
    uint64_t tag;
    uint64_t seq; /* the message it confirms */
} qconf;

/* A write on its way to disk and what waits for it. */
typedef struct qwait {
    uint64_t token;
    uint64_t mark; /* a MARK it carries (0: none) */
    qconf *conf;
    uint32_t nconf;
} qwait;

typedef struct qlog {
    bool on;      /* a durable queue with a store */
    bool loading; /* its log is being read back: other work waits */
    bool failed;  /* a write failed: persistent publishes are refused until reset_at */
    rt__slog *slog;
    sv_pid store;
    uint64_t seg_size, window;
    uint32_t tail_seg; /* 0: none open, the next write starts one */
    uint32_t tail_off;
    uint32_t next_seg;
    qseg *segs; /* oldest first; the last is the tail */
    uint32_t nsegs;
    size_t capsegs;
    /* this turn's records, sent at its end */
    rt__wop *ops;
    uint32_t nops;
    size_t capops;
    uint64_t *acks;
    uint32_t nacks;
    size_t capacks;
    qconf *conf; /* confirms that wait for this turn's write */
    uint32_t nconf;
    size_t capconf;
    bool want_sync;
    uint64_t turn_mark;
    /* writes outstanding, oldest first */
    qwait *waits;
    uint32_t nwaits;
    size_t capwaits;
    uint64_t token;
    uint64_t mark_durable, mark_asked; /* deliveries up to mark_durable are on record */
    uint64_t mem_ready;                /* bytes of logged ready messages held in memory */
    uint64_t npaged;                   /* ready messages on disk only */
    bool reading;                      /* a read-back is outstanding */
    int64_t reset_at;                  /* failed: when to try writing again */
    sv_msg *deferred, *deferred_tail;  /* what arrived while loading */
    uint64_t corrupt;
    uint32_t gc_after; /* compaction is considered again once the tail segment gets here */
} qlog;

typedef struct queue {
    rt_queue *q;
    int64_t held_delta; /* bytes taken (+) and let go of (-) this turn, for rt__held_add */
    const rt_config *cfg;
    qent *ring;
    uint32_t cap, head, len;
    uint64_t bytes; /* of ready messages */
    uint64_t next_seq, next_id;
    sv_map unacked;
    consumer *cons;
    uint32_t ncons, rr, active;
    bool had_consumer, deleting;
    uint64_t ttl_tref;
    int64_t ttl_at;
    sv_from *count_waiters; /* RT_Q_COUNT calls made while the log loads */
    uint32_t ncount_waiters;
    uint64_t exp_tref; /* x-expires: the timer, and when it was last in use */
    int64_t last_used;
    dl_pending *dl;
    uint32_t ndl;
    uint64_t dl_tref;
    bool warned_paged_dl;
    bool init_waits; /* init deferred until the log exists on disk (a fresh durable queue) */
    qlog log;
} queue;

/* queue.c, for qlog.c */
int rt__q_push_back(queue *s, qent e);
/* Takes the ready message seq out of the queue, wherever it is; false if
 * it is not there (delivered, or gone). */
bool rt__q_remove_ready(queue *s, uint64_t seq, qent *out);
void rt__q_pump(sv_proc *self, queue *s);
int rt__q_handle(sv_proc *self, queue *s, sv_msg *m);
void rt__q_send_confirms(queue *s, const qconf *c, uint32_t n, uint8_t outcome, uint8_t why);
/* A message the queue will not handle (it is ending): frees it, releasing
 * what it carries. */
void rt__q_drop_msg(queue *s, sv_msg *m);

/* qlog.c: a durable queue's log (see there). All no-ops without one. */
int rt__qlog_init(sv_proc *self, queue *s);
/* While loading, messages other than the store's wait: true if m was kept. */
bool rt__qlog_defer(sv_proc *self, queue *s, sv_msg *m);
/* The store's answers; false if m is not one. */
bool rt__qlog_handle(sv_proc *self, queue *s, sv_msg *m);
/* A persistent message joins the queue: logs it (and may leave only its
 * record in memory). 1: its publisher's confirm waits for the disk; 0: it
 * may be confirmed now; < 0: refuse it (the log cannot take it). */
int rt__qlog_publish(queue *s, qent *e, sv_pid from, uint64_t tag, bool confirm);
/* The message left the queue for good (settled, dropped, expired, dead-lettered). */
void rt__qlog_gone(queue *s, const qent *e);
/* Its delivery count went up. */
void rt__qlog_dcount(queue *s, const qent *e);
/* Whether the head may go to a consumer now (its delivery is on record). */
bool rt__qlog_may_deliver(queue *s, const qent *e);
/* A ready message in memory leaves the ready set (delivered) or joins it (returned). */
void rt__qlog_ready_mem(queue *s, const qent *e, bool joins);
/* End of a turn: send this turn's records; read ahead; tidy the segments. */
void rt__qlog_flush(sv_proc *self, queue *s);
void rt__qlog_close(queue *s);

#endif
