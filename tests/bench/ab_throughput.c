/* ab_throughput.c — throughput mode of amqp_bench, and the stamped
 * producer and consumer that fanout, fill and drain use as well: producers
 * send the template with a fresh stamp per message (at-least-once: resend
 * what comes back released), consumers find the stamp and count it once.
 * The throughput figures (msgs/s, MB/s, latency) are printed here too. */
#include <errno.h>
#include <string.h>

#include "tests/bench/ab.h"

/* ------------------------------------------------------------ producer */

static void producer_done_check(bench *b, conn_ctx *c)
{
    if (c->done || c->next_seq < c->to_send || c->retry_n)
        return;
    if (b->qos == QOS_ALO && c->inflight)
        return;
    c->done = true;
    pthread_mutex_lock(&b->lock);
    b->producers_done++;
    ab_check_complete_locked(b);
    pthread_mutex_unlock(&b->lock);
}

/* One stamped message on l: the template's prefix, the stamp, the filler. */
static int send_stamped(bench *b, conn_ctx *c, pn_link_t *l, uint64_t seq)
{
    uint64_t tag = ++c->tag;
    pn_delivery_t *d = pn_delivery(l, pn_dtag((const char *)&tag, sizeof tag));
    if (!d)
        return -ENOMEM;
    /* seq + 1, so a context of 0 never looks like seq 0 */
    pn_delivery_set_context(d, (void *)(uintptr_t)(seq + 1));
    stamp st = {STAMP_MAGIC, b->nonce, (uint32_t)c->index, (uint32_t)b->size, seq, ab_now_ns()};
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
        if (b->mode == MODE_FILL)
            __atomic_fetch_add(&b->unique, 1, __ATOMIC_RELAXED);
    } else {
        c->inflight++;
    }
    c->sent++;
    return 0;
}

void ab_producer_pump(bench *b, conn_ctx *c)
{
    pn_link_t *l = c->sender;
    if (!l || !c->sender_ready || ab_is_finishing(b))
        return;
    /* --window bounds unsettled sends; at-most-once has none, so there only
     * the receiver's credit paces the producer */
    while (pn_link_credit(l) > 0 && (b->qos == QOS_AMO || c->inflight < b->window)) {
        uint64_t seq;
        if (c->retry_n)
            seq = c->retry[--c->retry_n];
        else if (c->next_seq < c->to_send)
            seq = c->next_seq++;
        else
            break;
        /* --inject: break the stream on purpose, to see the check catch it */
        bool fault = b->o->inject && !c->injected && c->index == 0 && seq == c->to_send / 2;
        if (fault)
            c->injected = true;
        if (fault && b->o->inject == INJECT_SKIP)
            continue;
        if (send_stamped(b, c, l, seq) < 0 || (fault && send_stamped(b, c, l, seq) < 0)) {
            FAIL(b, "producer %d: cannot send (out of memory)", c->index);
            return;
        }
    }
    producer_done_check(b, c);
}

/* An outcome for one of our sends: accepted counts, released or modified
 * goes again, rejected fails the run. */
void ab_producer_disposition(bench *b, conn_ctx *c, pn_delivery_t *d)
{
    uint64_t st = pn_delivery_remote_state(d);
    bool settled = pn_delivery_settled(d);
    if (!settled && (st == 0 || st == PN_RECEIVED))
        return; /* not an outcome yet */
    uint64_t seq = (uint64_t)(uintptr_t)pn_delivery_get_context(d) - 1;
    switch (st) {
    case PN_ACCEPTED:
        c->accepted++;
        if (b->mode == MODE_FILL)
            __atomic_fetch_add(&b->unique, 1, __ATOMIC_RELAXED);
        break;
    case PN_REJECTED: {
        char why[512];
        ab_cond_text(pn_disposition_condition(pn_delivery_remote(d)), why, sizeof why);
        pn_delivery_settle(d);
        c->inflight--;
        FAIL(b, "producer %d: message seq %" PRIu64 " rejected by the peer (%s)", c->index, seq, why);
        return;
    }
    case PN_RELEASED:
    case PN_MODIFIED:
        /* not delivered: at-least-once means send it again */
        c->released++;
        if (ab_push_u64(&c->retry, &c->retry_n, &c->retry_cap, seq)) {
            FAIL(b, "producer %d: out of memory", c->index);
            return;
        }
        break;
    default:
        /* settled with no outcome: the peer took it, count it as accepted */
        c->accepted++;
        c->no_outcome++;
        if (b->mode == MODE_FILL)
            __atomic_fetch_add(&b->unique, 1, __ATOMIC_RELAXED);
        break;
    }
    pn_delivery_settle(d);
    c->inflight--;
    ab_producer_pump(b, c);
}

/* ------------------------------------------------------------ consumer */

void ab_refill_credit(bench *b, pn_link_t *l)
{
    /* grant in windows: one flow frame per half window, not per message */
    int w = (int)b->credit, cr = pn_link_credit(l);
    if (cr > w / 2)
        return;
    int add = w - cr;
    if (b->mode == MODE_DRAIN) { /* exactly count in all, so nothing more leaves the queue */
        uint64_t left = b->count - b->granted;
        if ((uint64_t)add > left)
            add = (int)left;
        b->granted += (uint64_t)add;
    }
    if (add > 0)
        pn_link_flow(l, add);
}

/* One stamped delivery on a consumer (or the direct peer's receiver). */
void ab_consumer_delivery(bench *b, conn_ctx *c, pn_link_t *l, pn_delivery_t *d)
{
    if (pn_delivery_aborted(d)) {
        pn_delivery_settle(d);
        if (b->mode == MODE_DRAIN && b->granted)
            b->granted--; /* the message is still queued: ask again */
        ab_refill_credit(b, l);
        return;
    }
    if (!pn_delivery_readable(d) || pn_delivery_partial(d))
        return; /* wait for the rest */
    if (b->mode == MODE_DRAIN && c->drained >= b->count) {
        /* beyond the credit we granted: leave it in the queue */
        b->extra++;
        pn_link_advance(l);
        ab_settle_incoming(d, PN_RELEASED);
        return;
    }
    size_t total = pn_delivery_pending(d);
    /* read only as far as the stamp: a 64 KiB filler need not be copied */
    uint8_t head[2048];
    size_t want = total < sizeof head ? total : sizeof head;
    ssize_t got = pn_link_recv(l, (char *)head, want);
    if (got < 0)
        got = 0;
    size_t off, len;
    int r = ab_find_body(head, (size_t)got, &off, &len);
    if (r == 0 || (r == 1 && off + STAMP_SIZE > (size_t)got && (size_t)got < total)) {
        /* big annotations: take the whole message */
        if (ab_grow((void **)&c->buf, &c->buf_cap, total + 1, 1)) {
            FAIL(b, "%s %d: out of memory", ab_role_name[c->role], c->index);
            return;
        }
        memcpy(c->buf, head, (size_t)got);
        size_t have = (size_t)got;
        while (have < total) {
            ssize_t n = pn_link_recv(l, c->buf + have, total - have);
            if (n <= 0)
                break;
            have += (size_t)n;
        }
        ab_consume_stamped(b, c, (const uint8_t *)c->buf, have, total);
    } else {
        ab_consume_stamped(b, c, head, (size_t)got, total);
    }
    pn_link_advance(l);
    ab_settle_incoming(d, PN_ACCEPTED);
    if (b->mode == MODE_DRAIN && ++c->drained == b->count) {
        pthread_mutex_lock(&b->lock);
        b->t_end = ab_now_ns();
        ab_finish_locked(b); /* the close follows the last disposition on the wire */
        pthread_mutex_unlock(&b->lock);
        return;
    }
    ab_refill_credit(b, l);
}

void ab_throughput_report(bench *b, const ab_totals *t)
{
    printf("   messages     %" PRIu64 " sent, %" PRIu64 " accepted%s, %" PRIu64 " received once\n", t->sent,
           b->qos == QOS_ALO ? t->accepted : 0, b->qos == QOS_ALO ? "" : " (presettled: no outcomes)", t->got);
    if (t->released)
        printf("   released     %" PRIu64 " (sent again)\n", t->released);
    if (t->no_outcome)
        printf("   no outcome   %" PRIu64 " settled by the peer without an outcome\n", t->no_outcome);
    printf("   rate         %.0f msgs/s\n", t->rate);
    printf("   bandwidth    %.1f MB/s (payload; 1 MB = 10^6 bytes)\n", t->rate * (double)t->size / 1e6);
    printf("   latency      p50 %.1f us, p99 %.1f us (end to end: send to receive)\n", t->p50, t->p99);
}

/* throughput's keys of the RESULT line. */
void ab_throughput_result(const bench *b, const ab_totals *t)
{
    printf(" producers=%d consumers=%d count=%" PRIu64 " msgs_per_s=%.0f mb_per_s=%.1f", b->n_producers,
           b->o->direct ? b->n_receivers : b->o->consumers, b->count, t->rate, t->rate * (double)t->size / 1e6);
}
