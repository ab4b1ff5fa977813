/* api_messages.c — POST /api/exchanges/V/X/publish and
 * POST /api/queues/V/Q/get: poke the broker with curl.
 *
 * Publishing builds an AMQP 1.0 message (the payload as a data section,
 * RabbitMQ's properties mapped onto AMQP's: headers become application
 * properties, delivery_mode 2 durable, the routing key the subject), has
 * the reader route it, and sends it to each queue from the HTTP thread.
 * Getting is a short-lived consumer: the HTTP thread's inbox attaches to
 * the queue with credit for `count` messages and a drain, takes what
 * comes, settles each as ackmode says, and cancels — the queue protocol
 * every AMQP connection speaks, so nothing in the queue is special-cased.
 */
#include <errno.h>
#include <microhttpd.h>
#include <openssl/evp.h>
#include <proton/codec.h>
#include <proton/message.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin/adm_internal.h"

#define GET_MAX 1000     /* messages one get may take (the message in parse_get says so too) */
#define GET_WAIT_MS 5000 /* for the queue's answer */

static atomic_uint next_consumer = 0x41000000; /* ids no connection hands out to this inbox */

/* ------------------------------------------------------------- publish */

static int put_string(pn_data_t *d, const json_t *v)
{
    if (!json_is_string(v))
        return -EINVAL;
    return pn_data_put_string(d, pn_bytes(json_string_length(v), json_string_value(v)));
}

/* RabbitMQ's message properties onto an AMQP 1.0 message. */
static int set_properties(pn_message_t *pm, const json_t *props, char *err, size_t len)
{
    if (!props || json_is_null(props))
        return 0;
    if (!json_is_object(props)) {
        snprintf(err, len, "properties must be an object");
        return -EINVAL;
    }
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)props, k, v)
    {
        int rc = 0;
        const char *s = json_string_value(v);
        if (!strcmp(k, "delivery_mode") && json_is_integer(v))
            pn_message_set_durable(pm, json_integer_value(v) == 2);
        else if (!strcmp(k, "priority") && json_is_integer(v) && json_integer_value(v) >= 0 &&
                 json_integer_value(v) <= 255)
            pn_message_set_priority(pm, (uint8_t)json_integer_value(v));
        else if (!strcmp(k, "expiration") && s && strspn(s, "0123456789") == strlen(s) && *s)
            pn_message_set_ttl(pm, (pn_millis_t)strtoul(s, NULL, 10));
        else if (!strcmp(k, "content_type") && s)
            rc = pn_message_set_content_type(pm, s);
        else if (!strcmp(k, "content_encoding") && s)
            rc = pn_message_set_content_encoding(pm, s);
        else if (!strcmp(k, "reply_to") && s)
            rc = pn_message_set_reply_to(pm, s);
        else if (!strcmp(k, "message_id") && s)
            rc = put_string(pn_message_id(pm), v);
        else if (!strcmp(k, "correlation_id") && s)
            rc = put_string(pn_message_correlation_id(pm), v);
        else if (!strcmp(k, "headers") && json_is_object(v)) {
            json_t *h;
            const char *hk;
            json_object_foreach(v, hk, h)
            {
                if (json_is_object(h) || json_is_array(h)) {
                    snprintf(err, len, "header %s: AMQP 1.0 application properties are simple values", hk);
                    return -EINVAL;
                }
            }
            rc = rt_json_put(pn_message_properties(pm), v, err, len);
        } else {
            snprintf(err, len, "property %s: unknown, or not of its type", k);
            return -EINVAL;
        }
        if (rc < 0) {
            if (!err[0])
                snprintf(err, len, "property %s cannot be set", k);
            return -EINVAL;
        }
    }
    return 0;
}

/* The payload's bytes, decoded from base64 if so encoded (a new buffer). */
static unsigned char *payload_bytes(const json_t *body, size_t *n, char *err, size_t len)
{
    const json_t *p = json_object_get(body, "payload");
    const char *enc = json_string_value(json_object_get(body, "payload_encoding"));
    if (!json_is_string(p)) {
        snprintf(err, len, "payload must be a string");
        return NULL;
    }
    size_t plen = json_string_length(p);
    unsigned char *out = malloc(plen + 4);
    if (!out)
        return NULL;
    if (!enc || !strcmp(enc, "string")) {
        memcpy(out, json_string_value(p), plen);
        *n = plen;
        return out;
    }
    /* EVP_DecodeBlock takes '=' anywhere as zero bits and counts padding
     * as bytes: allow two at the end only, and take them off the count
     * (four took "====" to -1 bytes, a publish of SIZE_MAX bytes). */
    const char *text = json_string_value(p);
    size_t pad = 0;
    while (pad < 2 && pad < plen && text[plen - 1 - pad] == '=')
        pad++;
    int got = strcmp(enc, "base64") || plen % 4 || memchr(text, '=', plen - pad)
                  ? -1
                  : EVP_DecodeBlock(out, (const unsigned char *)text, (int)plen);
    if (got < (int)pad) {
        free(out);
        snprintf(err, len, "payload_encoding must be string or base64 (and the payload valid base64)");
        return NULL;
    }
    *n = (size_t)got - pad;
    return out;
}

int adm__build_message(const json_t *body, const char *key, rt_msg **out, char *err, size_t len)
{
    size_t n = 0;
    unsigned char *payload = payload_bytes(body, &n, err, len);
    if (!payload)
        return err[0] ? -EINVAL : -ENOMEM;
    pn_message_t *pm = pn_message();
    int rc = pm ? set_properties(pm, json_object_get(body, "properties"), err, len) : -ENOMEM;
    if (rc == 0) {
        if (*key)
            pn_message_set_subject(pm, key);
        pn_data_put_binary(pn_message_body(pm), pn_bytes(n, (const char *)payload));
        size_t cap = n + 1024;
        char *buf = malloc(cap);
        while (buf && (rc = pn_message_encode(pm, buf, &cap)) == PN_OVERFLOW) {
            char *nb = realloc(buf, cap *= 2);
            if (!nb)
                break;
            buf = nb;
        }
        rc = !buf ? -ENOMEM : rc ? -EINVAL : rt_msg_new(buf, cap, out);
        if (rc == 0 && (rc = rt_msg_set_rkey(*out, key)) < 0)
            rt_msg_unref(*out);
        free(buf);
    }
    if (pm)
        pn_message_free(pm);
    free(payload);
    return rc;
}

typedef struct route_ctx {
    const char *exchange;
    const char *key;
    const rt_msg *m;
    sv_pid *pids;
    int n, cap;
    int rc;
} route_ctx;

static void read_route(adm__reader *rd, void *ctx)
{
    (void)rd;
    route_ctx *c = ctx;
    rt_exchange *x = NULL;
    if (c->exchange[0] && !(x = rt_exchange_find(c->exchange))) {
        c->rc = -ENOENT;
        return;
    }
    if (x && x->internal) {
        c->rc = -EPERM;
        return;
    }
    rt_queue *qs[256];
    int n = rt_route(x, c->m, c->key, qs, 256);
    c->n = n < 256 ? n : 256; /* a message fanned out to more than 256 queues over HTTP: the first 256 */
    for (int i = 0; i < c->n && i < c->cap; i++)
        c->pids[i] = rt_queue_pid(qs[i]);
}

/* The confirms of one HTTP publish: tags base + i, i < 2^16. */
typedef struct confirm_wait {
    uint64_t base;
    int waiting, accepted, full, store;
} confirm_wait;

static bool is_confirm(const sv_msg *m, void *ctx)
{
    (void)ctx;
    return m->tag == RT_Q_CONFIRM;
}

/* true once every queue answered. A confirm left over from a request that
 * timed out carries another base: it is dropped here, so none pile up. */
static bool wait_confirms(sv_proc *inbox, confirm_wait *w)
{
    uint64_t deadline = sv_now_ms() + ADM_CALL_MS;
    while (w->waiting > 0) {
        uint64_t now = sv_now_ms();
        sv_msg *m = now < deadline ? sv_recv(inbox, (int)(deadline - now), is_confirm, NULL) : NULL;
        if (!m)
            return false;
        const rt_confirm_batch *cb = (const rt_confirm_batch *)(const void *)m->data;
        for (uint32_t i = 0; m->len >= sizeof *cb && i < cb->n && sizeof *cb + (i + 1) * sizeof cb->c[0] <= m->len;
             i++) {
            if ((cb->c[i].tag >> 16) != (w->base >> 16))
                continue; /* a late answer to an earlier request */
            w->waiting--;
            if (cb->c[i].outcome == RT_ACCEPTED)
                w->accepted++;
            else if (cb->c[i].why == RT_WHY_STORE)
                w->store++;
            else
                w->full++;
        }
        sv_msg_free(m);
    }
    return true;
}

void adm__exchange_publish(adm_req *q, adm_resp *r)
{
    if (!adm__vhost_ok(q->segs[1], r) || !adm__may(q, r, AMQP_PERM_WRITE, "exchange", q->segs[2]))
        return;
    json_t *body = adm__body_object(q, r);
    if (!body)
        return;
    const char *key = json_string_value(json_object_get(body, "routing_key"));
    if (!key || strlen(key) > RT_NAME_MAX) {
        json_decref(body);
        adm__fail(r, MHD_HTTP_BAD_REQUEST, "bad_request", "routing_key must be a string of at most 255 bytes");
        return;
    }
    char err[300] = "", keybuf[RT_NAME_MAX + 1];
    snprintf(keybuf, sizeof keybuf, "%s", key);
    rt_msg *m = NULL;
    int rc = adm__build_message(body, keybuf, &m, err, sizeof err);
    json_decref(body);
    if (rc < 0) {
        if (rc == -EINVAL)
            adm__fail(r, MHD_HTTP_BAD_REQUEST, "bad_request", "%s", err[0] ? err : "the message cannot be encoded");
        else
            adm__fail_rc(r, rc, "the message");
        return;
    }
    if (rt_memory_alarm()) {
        rt_msg_unref(m);
        adm__fail(r, MHD_HTTP_SERVICE_UNAVAILABLE, "resource_alarm", "the memory alarm is on: publishers wait");
        return;
    }
    sv_pid pids[256];
    route_ctx c = {!strcmp(q->segs[2], "amq.default") ? "" : q->segs[2], keybuf, m, pids, 0, 256, 0};
    rc = adm__read(q, read_route, &c);
    /* Each queue confirms, so the answer says the message is there (on
     * disk, for a persistent message in a durable queue): a script that
     * publishes and then reads the queue finds it. */
    static _Atomic uint64_t pub_seq;
    confirm_wait w = {(atomic_fetch_add(&pub_seq, 1) + 1) << 16, 0, 0, 0, 0};
    int full = 0;
    for (int i = 0; rc == 0 && c.rc == 0 && i < c.n; i++) {
        sv_msg *b = sv_msg_new(RT_Q_PUBLISH, NULL, sizeof(rt_pub_batch) + sizeof(rt_pub));
        if (!b)
            break;
        rt_pub_batch *pb = (rt_pub_batch *)(void *)b->data;
        pb->n = 1;
        pb->confirms = 1;
        pb->p[0] = (rt_pub){rt_msg_ref(m), w.base + (uint64_t)i, true};
        int src = sv_send(pids[i], b);
        if (src < 0) {
            rt_msg_unref(m);
            sv_msg_free(b);
            full += src == -EAGAIN;
        } else {
            w.waiting++;
        }
    }
    rt_msg_unref(m);
    bool answered = wait_confirms(q->inbox, &w);
    if (rc < 0 || c.rc < 0)
        adm__fail_rc(r, rc < 0 ? rc : c.rc, "exchange");
    else if (!answered)
        adm__fail(r, MHD_HTTP_SERVICE_UNAVAILABLE, "timeout",
                  "no queue answered in time; the message may be there or not");
    else if (!w.accepted && w.store)
        adm__fail(r, MHD_HTTP_SERVICE_UNAVAILABLE, "resource_alarm",
                  "the message store cannot take it (disk full or failing); try again later");
    else if (!w.accepted && (full || w.full))
        adm__fail(r, MHD_HTTP_SERVICE_UNAVAILABLE, "resource_limit", "the queues are full; try again");
    else
        adm__ok(r, json_pack("{s:b}", "routed", w.accepted > 0));
}

/* ----------------------------------------------------------------- get */

typedef struct find_ctx {
    const char *name;
    sv_pid pid;
    uint64_t ready;
    bool found;
} find_ctx;

static void read_queue(adm__reader *rd, void *ctx)
{
    (void)rd;
    find_ctx *f = ctx;
    rt_queue *q = rt_queue_find(f->name);
    if (q) {
        f->found = true;
        f->pid = rt_queue_pid(q);
        f->ready = atomic_load_explicit(&q->ready, memory_order_relaxed);
    }
}

typedef enum { ACK, REQUEUE, REJECT } ackmode;

static int refuse(char *err, size_t len, const char *why)
{
    snprintf(err, len, "%s", why);
    return -EINVAL;
}

static int parse_get(const json_t *body, int *count, ackmode *mode, bool *base64, size_t *truncate, char *err,
                     size_t len)
{
    const json_t *c = json_object_get(body, "count"), *t = json_object_get(body, "truncate");
    const char *am = json_string_value(json_object_get(body, "ackmode"));
    const char *enc = json_string_value(json_object_get(body, "encoding"));
    *count = c ? (int)json_integer_value(c) : 1;
    if (c && (!json_is_integer(c) || json_integer_value(c) < 1 || json_integer_value(c) > GET_MAX))
        return refuse(err, len, "count must be an integer from 1 to 1000");
    if (!am || !strcmp(am, "ack_requeue_true") || !strcmp(am, "reject_requeue_true"))
        *mode = REQUEUE;
    else if (!strcmp(am, "ack_requeue_false"))
        *mode = ACK;
    else if (!strcmp(am, "reject_requeue_false"))
        *mode = REJECT;
    else
        return refuse(err, len,
                      "ackmode must be ack_requeue_true, ack_requeue_false, reject_requeue_true or "
                      "reject_requeue_false");
    if (enc && strcmp(enc, "auto") && strcmp(enc, "base64"))
        return refuse(err, len, "encoding must be auto or base64");
    *base64 = enc && !strcmp(enc, "base64");
    if (t && (!json_is_integer(t) || json_integer_value(t) < 0))
        return refuse(err, len, "truncate must be a non-negative integer");
    *truncate = t ? (size_t)json_integer_value(t) : SIZE_MAX;
    return 0;
}

static json_t *data_json(pn_data_t *d)
{
    pn_data_rewind(d);
    return pn_data_next(d) ? rt_json_get(d) : NULL;
}

static json_t *payload_json(const char *p, size_t n, bool base64, size_t truncate, json_t *o)
{
    size_t shown = n < truncate ? n : truncate;
    json_t *text = base64 ? NULL : json_stringn(p, shown);
    if (!text) { /* not UTF-8 (or asked for): base64 */
        unsigned char *b = malloc(4 * ((shown + 2) / 3) + 1);
        if (b) {
            EVP_EncodeBlock(b, (const unsigned char *)p, (int)shown);
            text = json_string((char *)b);
            free(b);
        }
        json_object_set_new(o, "payload_encoding", json_string("base64"));
    } else {
        json_object_set_new(o, "payload_encoding", json_string("string"));
    }
    json_object_set_new(o, "payload", text ? text : json_string(""));
    json_object_set_new(o, "payload_bytes", json_integer((json_int_t)n));
    return o;
}

/* One delivered message as RabbitMQ's get shows it. */
static json_t *message_json(const rt_delivery *d, uint64_t left, bool base64, size_t truncate)
{
    pn_message_t *pm = pn_message();
    json_t *o = json_pack("{s:b, s:s, s:s, s:I}", "redelivered", d->delivery_count > 0, "exchange", "", "routing_key",
                          d->m->rkey ? d->m->rkey : "", "message_count", (json_int_t)left);
    if (!pm || !o || pn_message_decode(pm, (const char *)d->m->buf.data, d->m->buf.len) != 0) {
        if (pm)
            pn_message_free(pm);
        return o ? payload_json((const char *)d->m->buf.data, d->m->buf.len, true, truncate, o) : NULL;
    }
    json_t *props = json_object();
    json_object_set_new(props, "delivery_mode", json_integer(pn_message_is_durable(pm) ? 2 : 1));
    json_object_set_new(props, "priority", json_integer(pn_message_get_priority(pm)));
    const char *s;
    if ((s = pn_message_get_content_type(pm)))
        json_object_set_new(props, "content_type", json_string(s));
    if ((s = pn_message_get_content_encoding(pm)))
        json_object_set_new(props, "content_encoding", json_string(s));
    if ((s = pn_message_get_reply_to(pm)))
        json_object_set_new(props, "reply_to", json_string(s));
    if ((s = pn_message_get_subject(pm)))
        json_object_set_new(props, "subject", json_string(s));
    if (pn_message_get_ttl(pm)) {
        char ttl[24];
        snprintf(ttl, sizeof ttl, "%u", (unsigned)pn_message_get_ttl(pm));
        json_object_set_new(props, "expiration", json_string(ttl));
    }
    json_t *v;
    if ((v = data_json(pn_message_id(pm))) && !json_is_null(v))
        json_object_set_new(props, "message_id", v);
    else
        json_decref(v);
    if ((v = data_json(pn_message_correlation_id(pm))) && !json_is_null(v))
        json_object_set_new(props, "correlation_id", v);
    else
        json_decref(v);
    if ((v = data_json(pn_message_properties(pm))))
        json_object_set_new(props, "headers", v);
    json_object_set_new(o, "properties", props);
    pn_data_t *body = pn_message_body(pm);
    pn_data_rewind(body);
    if (pn_data_next(body) && (pn_data_type(body) == PN_BINARY || pn_data_type(body) == PN_STRING)) {
        pn_bytes_t b = pn_data_type(body) == PN_BINARY ? pn_data_get_binary(body) : pn_data_get_string(body);
        payload_json(b.start, b.size, base64, truncate, o);
    } else {
        /* An amqp-value of another type, or sequences: shown as JSON. */
        json_t *bv = data_json(body);
        char *text = bv ? json_dumps(bv, JSON_ENCODE_ANY | JSON_COMPACT) : NULL;
        payload_json(text ? text : "", text ? strlen(text) : 0, base64, truncate, o);
        free(text);
        json_decref(bv);
    }
    pn_message_free(pm);
    return o;
}

typedef struct from_queue {
    sv_pid pid;
} from_queue;

static bool is_from_queue(const sv_msg *m, void *ctx)
{
    const from_queue *f = ctx;
    return sv_pid_eq(m->from, f->pid) &&
           (m->tag == RT_Q_DELIVER || m->tag == RT_Q_DRAINED || m->tag == RT_Q_CONSUMER_GONE);
}

static int send_to(sv_pid pid, uint32_t tag, const void *data, size_t len)
{
    sv_msg *m = sv_msg_new(tag, data, len);
    if (!m)
        return -ENOMEM;
    /* Not counted against the queue's bound: one request, a few messages,
     * and a settlement must never be refused. */
    int rc = sv_send_owed(pid, m);
    if (rc < 0)
        sv_msg_free(m);
    return rc;
}

static bool is_queue_msg(const sv_msg *m, void *ctx)
{
    (void)ctx;
    return m->tag == RT_Q_DELIVER || m->tag == RT_Q_DRAINED || m->tag == RT_Q_CONSUMER_GONE;
}

/* What an earlier get that timed out left in this thread's inbox: its
 * deliveries hold message references, and its queue took them back when
 * that consumer was cancelled. */
static void drop_strays(sv_proc *inbox)
{
    sv_msg *m;
    while ((m = sv_recv(inbox, 0, is_queue_msg, NULL))) {
        rt_deliver_batch *b = m->tag == RT_Q_DELIVER ? SV_MSG_AS(m, rt_deliver_batch) : NULL;
        for (uint32_t i = 0; b && i < b->n; i++)
            rt_msg_unref(b->d[i].m);
        sv_msg_free(m);
    }
}

/* Takes up to count deliveries: consume with that credit, drain, collect. */
static int fetch(adm_req *q, sv_pid pid, uint32_t id, int count, rt_delivery *out, int *n)
{
    rt_consume c = {.consumer = id, .credit = (uint32_t)count};
    rt_credit drain = {.consumer = id, .credit = 0, .drain = true};
    drop_strays(q->inbox);
    int rc = send_to(pid, RT_Q_CONSUME, &c, sizeof c);
    if (rc == 0)
        rc = send_to(pid, RT_Q_CREDIT, &drain, sizeof drain);
    from_queue f = {pid};
    uint64_t deadline = sv_now_ms() + GET_WAIT_MS;
    while (rc == 0) {
        uint64_t now = sv_now_ms();
        sv_msg *m = now < deadline ? sv_recv(q->inbox, (int)(deadline - now), is_from_queue, &f) : NULL;
        if (!m)
            return -ETIMEDOUT;
        if (m->tag == RT_Q_DELIVER) {
            rt_deliver_batch *b = SV_MSG_AS(m, rt_deliver_batch);
            for (uint32_t i = 0; b && b->consumer == id && i < b->n; i++) {
                if (*n < count)
                    out[(*n)++] = b->d[i];
                else
                    rt_msg_unref(b->d[i].m); /* cannot happen: the queue keeps to the credit */
            }
        }
        bool done = m->tag != RT_Q_DELIVER;
        int status = m->tag == RT_Q_CONSUMER_GONE ? (m->status < 0 ? m->status : -ENOENT) : 0;
        sv_msg_free(m);
        if (done)
            return status;
    }
    return rc;
}

/* POST /api/queues/%2F/NAME/get {"count": 5, "ackmode": "ack_requeue_true", "encoding": "auto"} */
void adm__queue_fetch(adm_req *q, adm_resp *r)
{
    /* RabbitMQ parses both as integers or strings of digits (rabbitmqadmin
     * sends "count": "1"). */
    static const char *const ints[] = {"count", "truncate", NULL};
    if (!adm__vhost_ok(q->segs[1], r) || !adm__may(q, r, AMQP_PERM_READ, "queue", q->segs[2]))
        return;
    json_t *body = adm__body_coerced(q, r, NULL, ints);
    if (!body)
        return;
    int count;
    ackmode mode;
    bool base64;
    size_t truncate;
    char err[200];
    int rc = parse_get(body, &count, &mode, &base64, &truncate, err, sizeof err);
    json_decref(body);
    if (rc < 0) {
        adm__fail(r, MHD_HTTP_BAD_REQUEST, "bad_request", "%s", err);
        return;
    }
    find_ctx f = {.name = q->segs[2]};
    rc = adm__read(q, read_queue, &f);
    if (rc < 0 || !f.found || sv_pid_is_none(f.pid)) {
        adm__fail_rc(r, rc < 0 ? rc : f.found ? -EAGAIN : -ENOENT, "queue");
        return;
    }
    rt_delivery *got = calloc((size_t)count, sizeof *got);
    int n = 0;
    uint32_t id = atomic_fetch_add(&next_consumer, 1);
    rc = got ? fetch(q, f.pid, id, count, got, &n) : -ENOMEM;
    json_t *arr = json_array();
    for (int i = 0; i < n; i++)
        json_array_append_new(arr, message_json(&got[i], f.ready > (uint64_t)(i + 1) ? f.ready - (uint64_t)(i + 1) : 0,
                                                base64, truncate));
    /* Settle what came, then cancel (which returns anything unsettled). */
    if (n) {
        size_t len = sizeof(rt_settle_batch) + (size_t)n * sizeof(rt_settle);
        rt_settle_batch *sb = calloc(1, len);
        if (sb) {
            sb->n = (uint32_t)n;
            sb->consumer = id;
            /* Requeued as modified/delivery-failed: the next consumer sees
             * it redelivered, as RabbitMQ's requeue marks it. */
            uint8_t outcome = mode == ACK ? RT_ACCEPTED : mode == REJECT ? RT_REJECTED : RT_MODIFIED;
            for (int i = 0; i < n; i++) /* requeued ones go back where they stood */
                sb->s[i] = (rt_settle){.id = got[i].id, .outcome = outcome, .failed = true};
            send_to(f.pid, RT_Q_SETTLE, sb, len);
            free(sb);
        }
    }
    rt_credit cancel = {.consumer = id};
    send_to(f.pid, RT_Q_CANCEL, &cancel, sizeof cancel);
    for (int i = 0; i < n; i++)
        rt_msg_unref(got[i].m);
    free(got);
    if (rc < 0) {
        json_decref(arr);
        adm__fail_rc(r, rc == -EBUSY ? -EBUSY : rc, "queue");
        return;
    }
    adm__ok(r, arr);
}
