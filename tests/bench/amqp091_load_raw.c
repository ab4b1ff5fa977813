/* amqp091_load_raw.c — the load generator's default engine (`--client
 * raw`): the publisher and the consumer on Plexus's own 0-9-1 codec over
 * plain sockets (amqp091_load_wire.c), batching as the proton-c AMQP 1.0
 * client of amqp_bench does. On a 2-core machine the broker shares with its
 * clients, librabbitmq's write per frame and small reads cost the client
 * more CPU than the broker (1.9 s against 0.75 s for 300k messages), so the
 * figure measured the client; this engine costs a fraction of that.
 *
 * The publisher encodes one Basic.Publish + content header + body frame
 * triple once, then copies it into its write buffer once per message with a
 * fresh stamp, up to WRITE_BATCH bytes or the confirm window (--inflight
 * unconfirmed), and writes the batch with one send(); confirms (Basic.Ack,
 * usually multiple) come in large reads. The consumer reads deliveries in
 * large reads, parses every whole frame in its buffer, and after each read
 * sends one multiple Basic.Ack when --ack-every or more deliveries are
 * unacknowledged.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/bench/amqp091_load_wire.h"

#define WRITE_BATCH (64u << 10) /* a publish batch is written once it holds this many bytes */

/* ------------------------------------------------------------ consumer */

/* Where the consumer is in a delivery: a method, its header, its body. */
typedef struct delivery {
    enum { WANT_DELIVER, WANT_HEADER, WANT_BODY } state;
    uint64_t tag, last_tag; /* this delivery's, and the last one taken */
    uint64_t size, got;     /* body bytes announced and received */
    uint8_t head[16];       /* the body's first bytes: the stamp */
} delivery;

/* One frame of the delivery stream; false when the run failed. */
static bool consume_frame(l91_conn *c, delivery *d, const amqp91_frame *f, double t)
{
    l91_run *r = c->r;
    const char *why = "bad frame";
    if (d->state == WANT_DELIVER) {
        amqp91_method m;
        if (l91_method_id(f) != AMQP91_BASIC_DELIVER)
            return l91_conn_other(c, f);
        if (amqp91_method_decode(f->payload, f->size, &m, &why) < 0) {
            l91_fail(r, "error", "consumer: a Basic.Deliver the codec refuses: %s", why);
            return false;
        }
        d->tag = m.a.basic_deliver.delivery_tag;
        d->state = WANT_HEADER;
        return true;
    }
    if (f->type == AMQP91_FRAME_HEARTBEAT)
        return true;
    if (d->state == WANT_HEADER) {
        amqp91_header h;
        if (f->type != AMQP91_FRAME_HEADER) {
            l91_fail(r, "error", "consumer: frame type %u where a delivery's content header was due", f->type);
            return false;
        }
        if (amqp91_header_decode(f->payload, f->size, &h, &why) < 0) {
            l91_fail(r, "error", "consumer: a content header the codec refuses: %s", why);
            return false;
        }
        d->size = h.body_size;
        d->got = 0;
        d->state = WANT_BODY;
    } else {
        if (f->type != AMQP91_FRAME_BODY || d->got + f->size > d->size) {
            l91_fail(r, "error", "consumer: frame type %u (%u bytes) where %" PRIu64 " body bytes were due", f->type,
                     f->size, d->size - d->got);
            return false;
        }
        if (d->got < sizeof d->head) {
            size_t n = sizeof d->head - d->got < f->size ? sizeof d->head - d->got : f->size;
            memcpy(d->head + d->got, f->payload, n);
        }
        d->got += f->size;
    }
    if (d->got < d->size)
        return true;
    /* A whole message. A body too short to hold a stamp fails on its size. */
    d->state = WANT_DELIVER;
    d->last_tag = d->tag;
    return l91_receive(r, d->head, d->size, t);
}

static void *raw_consumer(void *arg)
{
    l91_run *r = arg;
    l91_conn c;
    if (!l91_conn_open(&c, r, "consumer", 64u << 10)) {
        l91_set_ready(r, -1);
        l91_conn_close(&c, false);
        return NULL;
    }
    amqp91_bytes q = l91_bytes(r->o.queue);
    amqp91_method m, reply;
    m = (amqp91_method){.id = AMQP91_QUEUE_DECLARE, .a.queue_declare = {.queue = q}};
    if (!l91_conn_rpc(&c, &m, AMQP91_QUEUE_DECLARE_OK, &reply))
        goto out;
    m = (amqp91_method){.id = AMQP91_QUEUE_PURGE, .a.queue_purge = {.queue = q}};
    if (!l91_conn_rpc(&c, &m, AMQP91_QUEUE_PURGE_OK, &reply))
        goto out;
    m = (amqp91_method){.id = AMQP91_BASIC_QOS, .a.basic_qos = {.prefetch_count = (uint16_t)r->o.prefetch}};
    if (!l91_conn_rpc(&c, &m, AMQP91_BASIC_QOS_OK, &reply))
        goto out;
    m = (amqp91_method){.id = AMQP91_BASIC_CONSUME, .a.basic_consume = {.queue = q}};
    if (!l91_conn_rpc(&c, &m, AMQP91_BASIC_CONSUME_OK, &reply))
        goto out;
    l91_set_ready(r, 1);
    delivery d = {.state = WANT_DELIVER};
    uint64_t acked_tag = 0, unacked = 0;
    /* Until every message is in and the last ack is written. */
    while ((r->received < r->o.count || c.out_len > c.out_off) && !atomic_load(&r->stop)) {
        if (l91_now() > r->deadline) {
            l91_fail(r, "timeout", "consumer: %" PRIu64 " of %" PRIu64 " messages received in %d s", r->received,
                     r->o.count, r->o.timeout_s);
            break;
        }
        long n = l91_conn_pump(&c, L91_WAIT_MS);
        if (n < 0)
            break;
        if (n == 0)
            continue;
        double t = l91_now();
        uint64_t before = r->received;
        amqp91_frame f;
        int rc;
        while ((rc = l91_conn_frame(&c, &f)) == 1 && consume_frame(&c, &d, &f, t))
            ;
        if (rc != 0)
            break; /* bad bytes or a failed delivery: the run has failed */
        unacked += r->received - before;
        if (r->received == r->o.count && !r->t_con_end)
            r->t_con_end = t;
        /* One multiple ack for everything taken so far, at most one per read. */
        if (d.last_tag > acked_tag && (unacked >= (uint64_t)r->o.ack_every || r->received == r->o.count)) {
            m = (amqp91_method){.id = AMQP91_BASIC_ACK, .a.basic_ack = {d.last_tag, true}};
            if (!l91_conn_method(&c, 1, &m))
                break;
            acked_tag = d.last_tag;
            unacked = 0;
        }
    }
out:
    l91_set_ready(r, -1);                       /* the publisher must not wait for a consumer that gave up */
    l91_conn_close(&c, !atomic_load(&r->stop)); /* stop is set by a failure only */
    return NULL;
}

/* ----------------------------------------------------------- publisher */

/* One message's three frames, encoded once; *stamp_at: where its body
 * starts. NULL (the run failed) if the codec refuses them. */
static uint8_t *publish_template(l91_run *r, uint32_t frame_max, size_t *len, size_t *stamp_at)
{
    size_t chunk = frame_max - AMQP91_FRAME_OVERHEAD, frames = (r->o.size + chunk - 1) / chunk;
    size_t cap = 1024 + r->o.size + frames * AMQP91_FRAME_OVERHEAD;
    uint8_t *t = malloc(cap), *body = malloc(r->o.size);
    if (!t || !body) {
        free(t);
        free(body);
        l91_fail(r, "error", "publisher: out of memory");
        return NULL;
    }
    for (size_t i = 0; i < r->o.size; i++)
        body[i] = (uint8_t)('a' + i % 26);
    amqp91_method pub = {.id = AMQP91_BASIC_PUBLISH, .a.basic_publish = {.routing_key = l91_bytes(r->o.queue)}};
    amqp91_header h = {AMQP91_BASIC_CLASS, r->o.size, {.flags = AMQP91_P_DELIVERY_MODE, .delivery_mode = 1}};
    uint8_t hp[64];
    int n = amqp91_method_frame(1, &pub, t, cap), hn = amqp91_header_encode(&h, hp, sizeof hp);
    size_t at = n > 0 ? (size_t)n : 0;
    int fn = n > 0 && hn > 0 ? amqp91_frame_write(AMQP91_FRAME_HEADER, 1, hp, (uint32_t)hn, t + at, cap - at) : -1;
    at += fn > 0 ? (size_t)fn : 0;
    *stamp_at = at + 7; /* the first body frame's payload */
    for (size_t off = 0; fn > 0 && off < r->o.size; off += chunk) {
        size_t k = r->o.size - off < chunk ? r->o.size - off : chunk;
        fn = amqp91_frame_write(AMQP91_FRAME_BODY, 1, body + off, (uint32_t)k, t + at, cap - at);
        at += fn > 0 ? (size_t)fn : 0;
    }
    free(body);
    if (fn <= 0) {
        l91_fail(r, "error", "publisher: cannot encode Basic.Publish to %s (a queue name over 255 bytes?)", r->o.queue);
        free(t);
        return NULL;
    }
    *len = at;
    return t;
}

/* The confirms and whatever else came in; false when the run failed. */
static bool take_confirms(l91_conn *c)
{
    amqp91_frame f;
    int rc;
    while ((rc = l91_conn_frame(c, &f)) == 1) {
        amqp91_method m;
        const char *why = "bad method";
        uint32_t id = l91_method_id(&f);
        if (id != AMQP91_BASIC_ACK && id != AMQP91_BASIC_NACK) {
            if (!l91_conn_other(c, &f))
                return false;
            continue;
        }
        if (amqp91_method_decode(f.payload, f.size, &m, &why) < 0) {
            l91_fail(c->r, "error", "publisher: a confirm the codec refuses: %s", why);
            return false;
        }
        if (m.id == AMQP91_BASIC_NACK) {
            l91_fail(c->r, "nack", "publisher: the broker nacked message %" PRIu64, m.a.basic_nack.delivery_tag);
            return false;
        }
        l91_confirm(c->r, m.a.basic_ack.delivery_tag, m.a.basic_ack.multiple);
    }
    return rc == 0;
}

static void *raw_publisher(void *arg)
{
    l91_run *r = arg;
    if (!l91_wait_ready(r))
        return NULL;
    l91_conn c;
    uint8_t *tmpl = NULL;
    size_t tlen = 0, stamp_at = 0;
    if (!l91_conn_open(&c, r, "publisher", 64u << 10))
        goto out;
    amqp91_method m = {.id = AMQP91_CONFIRM_SELECT}, reply;
    if (!l91_conn_rpc(&c, &m, AMQP91_CONFIRM_SELECT_OK, &reply))
        goto out;
    tmpl = publish_template(r, c.frame_max, &tlen, &stamp_at);
    uint8_t *grown = tmpl ? realloc(c.out, WRITE_BATCH + tlen) : NULL;
    if (!grown) {
        l91_fail(r, "error", "publisher: out of memory");
        goto out;
    }
    c.out = grown;
    c.out_cap = WRITE_BATCH + tlen;
    uint64_t window = (uint64_t)r->o.inflight;
    r->t_start = l91_now();
    while (r->confirmed < r->o.count && !atomic_load(&r->stop)) {
        if (l91_now() > r->deadline) {
            l91_fail(r, "timeout", "publisher: %" PRIu64 " of %" PRIu64 " messages confirmed in %d s", r->confirmed,
                     r->o.count, r->o.timeout_s);
            break;
        }
        /* A new batch once the last one is written: as many messages as
         * the window allows, up to WRITE_BATCH bytes. */
        if (c.out_off == c.out_len) {
            c.out_off = c.out_len = 0;
            while (r->published < r->o.count && r->published - r->confirmed < window && c.out_len < WRITE_BATCH) {
                memcpy(c.out + c.out_len, tmpl, tlen);
                l91_stamp(c.out + c.out_len + stamp_at, r->published);
                c.out_len += tlen;
                r->published++;
            }
        }
        /* Wait (for confirms, or for room in the socket) only when no new
         * batch could follow at once; otherwise just take what came in. */
        if (!l91_conn_write(&c))
            break;
        bool more = c.out_off == c.out_len && r->published < r->o.count && r->published - r->confirmed < window;
        if (l91_conn_pump(&c, more ? 0 : L91_WAIT_MS) < 0 || !take_confirms(&c))
            break;
        if (r->confirmed == r->o.count)
            r->t_pub_end = l91_now();
    }
out:
    free(tmpl);
    l91_conn_close(&c, !atomic_load(&r->stop)); /* stop is set by a failure only */
    return NULL;
}

const l91_engine l91_raw = {"raw", raw_consumer, raw_publisher};
