/* ab_reqrep.c — request/reply mode of amqp_bench: a server consumes the
 * request queue and answers each request's reply-to (through an anonymous
 * relay, or a link per reply address), and a client with a dynamic or named
 * reply source sends one request at a time; the figure is the round trip.
 * Here pn_message is used on purpose: a real decode and encode per message
 * is part of what a request/reply service costs. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <proton/codec.h>
#include <proton/terminus.h>

#include "tests/bench/ab.h"

/* Read the whole current delivery of l into c->buf. */
static ssize_t read_all(conn_ctx *c, pn_link_t *l, pn_delivery_t *d)
{
    size_t pending = pn_delivery_pending(d);
    if (ab_grow((void **)&c->buf, &c->buf_cap, pending + 1, 1))
        return -ENOMEM;
    size_t got = 0;
    while (got < pending) {
        ssize_t r = pn_link_recv(l, c->buf + got, pending - got);
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    return (ssize_t)got;
}

/* Encode m into c->out, growing it as proton asks. */
static ssize_t encode_msg(conn_ctx *c, pn_message_t *m)
{
    if (!c->out_cap && ab_grow((void **)&c->out, &c->out_cap, 1024, 1))
        return -ENOMEM;
    for (;;) {
        size_t len = c->out_cap;
        int rc = pn_message_encode(m, c->out, &len);
        if (rc == 0)
            return (ssize_t)len;
        if (rc != PN_OVERFLOW)
            return rc;
        if (ab_grow((void **)&c->out, &c->out_cap, c->out_cap * 2, 1))
            return -ENOMEM;
    }
}

static void set_ulong_atom(pn_atom_t *a, uint64_t v)
{
    memset(a, 0, sizeof *a);
    a->type = PN_ULONG;
    a->u.as_ulong = v;
}

/* The client sends its next request, one at a time: when the reply
 * address is known, no reply is awaited and there is credit. */
int ab_rr_client_send(bench *b, conn_ctx *c)
{
    if (!c->sender || !c->sender_ready || !c->reply_addr[0] || c->rr_waiting || c->rr_done >= c->rr_target ||
        ab_is_finishing(b))
        return 0;
    if (pn_link_credit(c->sender) <= 0) {
        c->rr_want_send = true;
        return 0;
    }
    c->rr_want_send = false;
    if (!c->msg && !(c->msg = pn_message()))
        return -ENOMEM;
    pn_message_clear(c->msg);
    uint64_t seq = c->rr_seq++;
    pn_atom_t id;
    set_ulong_atom(&id, seq);
    pn_message_set_id(c->msg, id);
    pn_message_set_correlation_id(c->msg, id);
    pn_message_set_reply_to(c->msg, c->reply_addr);
    pn_message_set_address(c->msg, b->target_addr);
    pn_message_set_inferred(c->msg, true); /* binary body as a data section */
    stamp st = {STAMP_MAGIC, b->nonce, 0, (uint32_t)b->size, seq, ab_now_ns()};
    memcpy(b->filler, &st, STAMP_SIZE); /* only the client writes the filler here */
    pn_data_put_binary(pn_message_body(c->msg), pn_bytes(b->size, b->filler));
    ssize_t len = encode_msg(c, c->msg);
    if (len < 0)
        return (int)len;
    uint64_t tag = ++c->tag;
    pn_delivery_t *d = pn_delivery(c->sender, pn_dtag((const char *)&tag, sizeof tag));
    if (!d)
        return -ENOMEM;
    c->rr_sent_ns = st.sent_ns;
    if (!__atomic_load_n(&b->t_first_send, __ATOMIC_RELAXED))
        __atomic_store_n(&b->t_first_send, st.sent_ns, __ATOMIC_RELAXED);
    if (pn_link_send(c->sender, c->out, (size_t)len) < 0)
        return -EIO;
    pn_link_advance(c->sender);
    if (b->qos == QOS_AMO)
        pn_delivery_settle(d);
    c->sent++;
    c->rr_waiting = true;
    return 0;
}

/* A reply arrived at the client: a round trip done, the next request. */
void ab_rr_client_reply(bench *b, conn_ctx *c, pn_link_t *l, pn_delivery_t *d)
{
    if (!pn_delivery_readable(d) || pn_delivery_partial(d))
        return;
    uint64_t t = ab_now_ns();
    ssize_t n = read_all(c, l, d);
    pn_link_advance(l);
    ab_settle_incoming(d, PN_ACCEPTED);
    ab_refill_credit(b, l);
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
        ab_note_bad(b, "reqrep client: reply does not decode as an AMQP message");
        return;
    }
    pn_atom_t cid = pn_message_get_correlation_id(c->msg);
    size_t off, len;
    if (ab_find_body((const uint8_t *)c->buf, (size_t)n, &off, &len) == 1 && off + STAMP_SIZE <= (size_t)n) {
        stamp st;
        memcpy(&st, c->buf + off, STAMP_SIZE);
        if (st.magic == STAMP_MAGIC && st.nonce != b->nonce) { /* an old run's reply */
            __atomic_fetch_add(&b->stale, 1, __ATOMIC_RELAXED);
            return;
        }
    }
    if (!c->rr_waiting || cid.type != PN_ULONG || cid.u.as_ulong != c->rr_seq - 1) {
        ab_note_bad(b, "reqrep client: reply with an unexpected correlation-id (waiting for %" PRIu64 ")",
                    c->rr_seq - 1);
        return;
    }
    c->rr_waiting = false;
    c->received++;
    c->rr_done++;
    __atomic_fetch_add(&b->unique, 1, __ATOMIC_RELAXED);
    if (ab_push_u64(&c->lat, &c->lat_n, &c->lat_cap, t - c->rr_sent_ns)) {
        FAIL(b, "reqrep client: out of memory");
        return;
    }
    if (c->rr_done >= c->rr_target) {
        pthread_mutex_lock(&b->lock);
        b->t_end = t;
        ab_finish_locked(b);
        pthread_mutex_unlock(&b->lock);
        return;
    }
    if (ab_rr_client_send(b, c) < 0)
        FAIL(b, "reqrep client: cannot send a request");
}

/* Send the replies waiting for credit on l. */
void ab_rr_flush_pending(bench *b, conn_ctx *c, pn_link_t *l)
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
                if (b->qos == QOS_AMO)
                    pn_delivery_settle(d);
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
            if (pn_link_is_sender(l) && a && !strcmp(a, addr))
                return l;
        }
        return NULL;
    }
    if (b->reply == REPLY_ANON)
        return c->sender;
    for (pn_link_t *l = pn_link_head(c->conn, PN_LOCAL_ACTIVE); l; l = pn_link_next(l, PN_LOCAL_ACTIVE)) {
        const char *a = pn_terminus_get_address(pn_link_target(l));
        if (pn_link_is_sender(l) && a && !strcmp(a, addr))
            return l;
    }
    char name[640];
    snprintf(name, sizeof name, "amqp-bench-%08x-reply-%d", b->nonce, c->dyn_counter++);
    pn_link_t *l = ab_make_sender(b, c->session, name, addr);
    if (l)
        pn_link_open(l);
    return l;
}

/* A request arrived at the server (or the direct peer): the body goes back
 * to its reply-to, with its correlation-id (or message-id). */
void ab_rr_server_request(bench *b, conn_ctx *c, pn_link_t *l, pn_delivery_t *d)
{
    if (!pn_delivery_readable(d) || pn_delivery_partial(d))
        return;
    ssize_t n = read_all(c, l, d);
    pn_link_advance(l);
    if (n < 0 || (!c->msg && !(c->msg = pn_message()))) {
        ab_settle_incoming(d, PN_RELEASED);
        FAIL(b, "reqrep server: out of memory");
        return;
    }
    pn_message_clear(c->msg);
    if (pn_message_decode(c->msg, c->buf, (size_t)n) != 0) {
        ab_settle_incoming(d, PN_REJECTED);
        ab_refill_credit(b, l);
        ab_note_bad(b, "reqrep server: request does not decode as an AMQP message");
        return;
    }
    const char *rt = pn_message_get_reply_to(c->msg);
    if (!rt || !*rt) {
        ab_settle_incoming(d, PN_REJECTED);
        ab_refill_credit(b, l);
        ab_note_bad(b, "reqrep server: request without reply-to");
        return;
    }
    char reply_to[512];
    snprintf(reply_to, sizeof reply_to, "%s", rt);
    /* copy the correlation-id (or the message-id) before the message
     * changes: a string id points into the message's own storage */
    pn_atom_t cid = pn_message_get_correlation_id(c->msg);
    if (cid.type == PN_NULL)
        cid = pn_message_get_id(c->msg);
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
    ssize_t len = encode_msg(c, c->msg);      /* the body goes back as it came */
    if (len < 0) {
        ab_settle_incoming(d, PN_RELEASED);
        FAIL(b, "reqrep server: cannot encode a reply (%zd)", len);
        return;
    }
    pn_link_t *out = rr_reply_link(b, c, reply_to);
    if (!out) {
        ab_settle_incoming(d, PN_REJECTED);
        ab_refill_credit(b, l);
        ab_note_bad(b, "reqrep server: no link for reply-to %s", reply_to);
        return;
    }
    char *copy = malloc((size_t)len);
    if (!copy || ab_grow((void **)&c->pend, &c->pend_cap, c->pend_n + 1, sizeof *c->pend)) {
        free(copy);
        ab_settle_incoming(d, PN_RELEASED);
        FAIL(b, "reqrep server: out of memory");
        return;
    }
    memcpy(copy, c->out, (size_t)len);
    c->pend[c->pend_n++] = (pending_reply){out, copy, (size_t)len};
    ab_rr_flush_pending(b, c, out);
    c->received++;
    ab_settle_incoming(d, PN_ACCEPTED);
    ab_refill_credit(b, l);
}

/* Does the peer's open offer capability cap (a symbol, or an array of them)? */
static bool offers(pn_connection_t *conn, const char *cap)
{
    pn_data_t *d = pn_connection_remote_offered_capabilities(conn);
    size_t n = strlen(cap);
    if (!d)
        return false;
    pn_data_rewind(d);
    if (!pn_data_next(d))
        return false;
    bool array = pn_data_type(d) == PN_ARRAY;
    if (array) {
        pn_data_enter(d);
        if (!pn_data_next(d))
            return false;
    }
    do {
        if (pn_data_type(d) == PN_SYMBOL) {
            pn_bytes_t s = pn_data_get_symbol(d);
            if (s.size == n && !memcmp(s.start, cap, n))
                return true;
        }
    } while (array && pn_data_next(d));
    return false;
}

/* The reqrep server replies through an anonymous relay: say so when the
 * broker does not offer one, before its refusal of our sender comes. */
void ab_rr_check_relay(bench *b, conn_ctx *c, pn_connection_t *conn)
{
    if (c->role == ROLE_RR_SERVER && b->reply == REPLY_ANON && !offers(conn, "ANONYMOUS-RELAY"))
        fprintf(stderr, "amqp_bench: note: the broker does not offer ANONYMOUS-RELAY; if the reply sender is "
                        "refused, try --reply-via link\n");
}

void ab_reqrep_report(bench *b, const ab_totals *t)
{
    printf("   round trips  %" PRIu64 " of %" PRIu64 ", one at a time\n", t->got, b->count);
    printf("   latency      p50 %.1f us, p99 %.1f us (request sent to reply received)\n", t->p50, t->p99);
    printf("   rate         %.0f round trips/s\n", t->rate);
}

/* reqrep's keys of the RESULT line. */
void ab_reqrep_result(const bench *b, const ab_totals *t)
{
    (void)b;
    printf(" round_trips=%" PRIu64 " rtt_per_s=%.0f", t->got, t->rate);
}
