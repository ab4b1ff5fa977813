/* reader.c — the admin subtree's reader: directory reads for the HTTP
 * threads, and message rates.
 *
 * The routing directory is read without locks, and what a reader sees
 * stays alive only until the end of a scheduler turn (sv_retire). HTTP
 * threads are not schedulers, so they ask this process to run a function
 * for them in its turn (adm__read) and wait for the answer; the functions
 * copy what they need and return. Once a second it also samples every
 * queue's message counters, which gives rates (the deltas over the
 * interval) and totals that do not fall when a queue is deleted (deltas
 * are added up, so a deleted queue's count stays in them).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "admin/adm_internal.h"

#define READER_NAME "adm_reader"

enum { TAG_READ = 0x41444d01, TAG_SAMPLE };

typedef struct counts {
    uint64_t publish, deliver, ack;
} counts;

typedef struct sample {
    uint64_t k1, k2; /* hashes of the queue's name */
    counts seen;     /* as last added to the totals */
    counts at_tick;  /* as at the last timed sample: rates are from these */
    adm__rates rates;
    uint64_t gen; /* the timed sample that last saw the queue */
} sample;

struct adm__reader {
    sv_proc *self;
    sv_map queues; /* sample, by name */
    uint64_t gen, last_ms;
    adm__totals totals;
};

typedef struct read_req {
    void (*fn)(adm__reader *rd, void *ctx);
    void *ctx;
} read_req;

/* Growth of a counter since the last sample; a smaller count means the
 * queue is a new one of the same name. */
static uint64_t delta(uint64_t now, uint64_t before) { return now >= before ? now - before : now; }

static counts counts_of(const rt_queue *q)
{
    return (counts){atomic_load_explicit(&((rt_queue *)q)->published, memory_order_relaxed),
                    atomic_load_explicit(&((rt_queue *)q)->delivered, memory_order_relaxed),
                    atomic_load_explicit(&((rt_queue *)q)->acked, memory_order_relaxed)};
}

typedef struct sampling {
    adm__reader *rd;
    double secs; /* since the last timed sample; 0: only bring the totals up to date */
    adm__rates sum;
} sampling;

/* Adds what the queue did since it was last seen to the totals and, on a
 * timed sample, sets its rates. */
static bool sample_queue(rt_queue *q, void *ctx)
{
    sampling *sp = ctx;
    adm__reader *rd = sp->rd;
    uint64_t k1, k2;
    sv_hash128(q->name, &k1, &k2);
    sample *e = sv_map_get(&rd->queues, k1, k2);
    if (!e && !(e = sv_map_put(&rd->queues, k1, k2)))
        return true; /* out of memory: this queue is not counted for now */
    counts c = counts_of(q);
    rd->totals.publish += delta(c.publish, e->seen.publish);
    rd->totals.deliver += delta(c.deliver, e->seen.deliver);
    rd->totals.ack += delta(c.ack, e->seen.ack);
    e->seen = c;
    if (sp->secs > 0) {
        e->rates =
            (adm__rates){delta(c.publish, e->at_tick.publish) / sp->secs,
                         delta(c.deliver, e->at_tick.deliver) / sp->secs, delta(c.ack, e->at_tick.ack) / sp->secs};
        e->at_tick = c;
        e->gen = rd->gen;
        sp->sum.publish += e->rates.publish;
        sp->sum.deliver += e->rates.deliver;
        sp->sum.ack += e->rates.ack;
    } else if (!e->gen) {
        e->gen = rd->gen; /* new since the last tick: not gone at the next */
    }
    return true;
}

static void sample_all(adm__reader *rd)
{
    uint64_t now = sv_now_ms();
    sampling sp = {rd, now > rd->last_ms ? (double)(now - rd->last_ms) / 1000.0 : 1.0, {0, 0, 0}};
    rd->gen++;
    rt_queue_each(sample_queue, &sp);
    rd->totals.rates = sp.sum;
    rd->last_ms = now;
    /* Queues not seen this time are gone; their counts stay in the totals.
     * (Keys first, deletions after: a map must not change under a walk.) */
    uint32_t n = 0;
    for (uint32_t i = 0; i < rd->queues.cap; i++) {
        sample *e = sv_map_at(&rd->queues, i);
        n += e && e->gen != rd->gen;
    }
    uint64_t(*gone)[2] = n ? malloc(n * sizeof *gone) : NULL;
    uint32_t k = 0;
    for (uint32_t i = 0; gone && i < rd->queues.cap; i++) {
        sample *e = sv_map_at(&rd->queues, i);
        if (e && e->gen != rd->gen) {
            gone[k][0] = e->k1;
            gone[k++][1] = e->k2;
        }
    }
    for (uint32_t i = 0; i < k; i++)
        sv_map_del(&rd->queues, gone[i][0], gone[i][1], NULL);
    free(gone);
}

adm__rates adm__queue_rates(adm__reader *rd, const rt_queue *q)
{
    uint64_t k1, k2;
    sv_hash128(q->name, &k1, &k2);
    sample *e = sv_map_get(&rd->queues, k1, k2);
    return e ? e->rates : (adm__rates){0, 0, 0};
}

adm__totals adm__message_totals(adm__reader *rd)
{
    /* Exact now, not as of the last tick; and kept, so a queue deleted
     * before the next tick keeps its messages in the totals. */
    sampling sp = {rd, 0, {0, 0, 0}};
    rt_queue_each(sample_queue, &sp);
    return rd->totals;
}

static void arm(adm__reader *rd)
{
    sv_msg *m = sv_msg_new(TAG_SAMPLE, NULL, 0);
    if (m && sv_send_after(rd->self, ADM_SAMPLE_MS, sv_self(rd->self), m, NULL) < 0)
        sv_msg_free(m);
}

static int reader_init(sv_proc *self, void *arg)
{
    (void)arg;
    adm__reader *rd = calloc(1, sizeof *rd);
    if (!rd)
        return -ENOMEM;
    rd->self = self;
    rd->queues = SV_MAP_INIT(sample);
    rd->last_ms = sv_now_ms();
    int rc = sv_register(READER_NAME, sv_self(self));
    if (rc < 0) {
        free(rd); /* terminate does not run after a failed init (sv.h) */
        return rc;
    }
    sv_set_state(self, rd);
    sample_all(rd);
    arm(rd);
    return 0;
}

static int reader_call(sv_proc *self, sv_msg *req)
{
    adm__reader *rd = sv_state(self);
    read_req *r = SV_MSG_AS(req, read_req);
    if (req->tag != TAG_READ || !r) {
        sv_reply_error(sv_from_of(req), -ENOTSUP);
        return 0;
    }
    r->fn(rd, r->ctx);
    sv_reply_data(sv_from_of(req), NULL, 0);
    return 0;
}

static int reader_info(sv_proc *self, sv_msg *m)
{
    adm__reader *rd = sv_state(self);
    if (m->tag == TAG_SAMPLE) {
        sample_all(rd);
        arm(rd);
    }
    return 0;
}

static void reader_terminate(sv_proc *self, int reason)
{
    (void)reason;
    adm__reader *rd = sv_state(self);
    if (!rd)
        return;
    sv_map_free(&rd->queues);
    free(rd);
}

const sv_server_ops adm__reader_ops = {
    .name = "adm_reader",
    .init = reader_init,
    .handle_call = reader_call,
    .handle_info = reader_info,
    .terminate = reader_terminate,
};

int adm__read(adm_req *q, void (*fn)(adm__reader *rd, void *ctx), void *ctx)
{
    read_req r = {fn, ctx};
    sv_msg *req = sv_msg_new(TAG_READ, &r, sizeof r), *reply;
    if (!req)
        return -ENOMEM;
    sv_pid reader = sv_whereis(READER_NAME);
    if (sv_pid_is_none(reader)) {
        sv_msg_free(req);
        return -ESRCH; /* restarting: the client may try again */
    }
    /* No timeout: fn uses the caller's stack, so the caller must not
     * return while the request may still run. The wait ends with the
     * reply or the reader's death (the call monitors it), and the reader
     * only ever does short, bounded reads. */
    int rc = sv_call(q->inbox, reader, req, -1, &reply);
    if (rc == 0)
        sv_msg_free(reply);
    return rc;
}
