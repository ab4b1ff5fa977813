/* amqp091_load.h — what the AMQP 0-9-1 load generator's files share: the
 * options, one run's state and its bookkeeping (stamps, receipts, confirms,
 * the first failure). Two engines drive the same run: amqp091_load_rmq.c
 * (librabbitmq, a stock client) and amqp091_load_raw.c (Plexus's own codec
 * over plain sockets, batching its writes, so the client costs less CPU
 * than the broker it measures on a machine both share).
 */
#ifndef PLEXUS_AMQP091_LOAD_H
#define PLEXUS_AMQP091_LOAD_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct l91_opts {
    const char *host, *user, *pass, *vhost, *queue, *target, *client;
    int port;
    uint64_t count;
    size_t size;
    int inflight, prefetch, ack_every, timeout_s;
} l91_opts;

typedef struct l91_run {
    l91_opts o;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int consumer_ready; /* 0: not yet, 1: consuming, -1: gave up */
    atomic_bool stop;
    double deadline, t_start, t_pub_end, t_con_end;
    uint64_t published, confirmed, received, dups;
    uint64_t confirm_low; /* the lowest tag not yet confirmed (tags count from 1) */
    uint8_t *acked;       /* per publish tag, 1 once confirmed */
    uint32_t *lat_us;     /* per received message */
    uint8_t *seen;        /* per sequence number */
    const char *reason;
    char why[512];
} l91_run;

/* Seconds on CLOCK_MONOTONIC (the stamps' clock). */
double l91_now(void);

/* The first failure wins (reason: connect|refused|timeout|nack|error, why:
 * the words for stderr); every loop then ends at its next wait. */
void l91_fail(l91_run *r, const char *reason, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* The consumer tells the publisher it consumes (1) or gave up (-1); the
 * publisher waits for it (false: do not start). */
void l91_set_ready(l91_run *r, int v);
bool l91_wait_ready(l91_run *r);

/* A body's first 16 bytes: the send time (ns) and the sequence number. */
void l91_stamp(uint8_t *body, uint64_t seq);
/* One body received at t: its latency and the exactly-once bookkeeping.
 * False (and the run failed) for a body of the wrong size or a sequence
 * number never sent. */
bool l91_receive(l91_run *r, const uint8_t *body, size_t len, double t);
/* A confirm from the broker: Basic.Ack of tag, or of every tag up to it. */
void l91_confirm(l91_run *r, uint64_t tag, bool multiple);

/* An engine: the consumer and the publisher, each run on a thread of its
 * own with the l91_run as argument, each with its own connection. The
 * consumer declares and purges the queue, consumes, then l91_set_ready; the
 * publisher waits for that (l91_wait_ready). Both end when their part is
 * done or the run failed, with t_con_end / t_pub_end set on success. */
typedef struct l91_engine {
    const char *name; /* what --client says */
    void *(*consumer)(void *run);
    void *(*publisher)(void *run);
} l91_engine;

extern const l91_engine l91_librabbitmq, l91_raw;

#endif
