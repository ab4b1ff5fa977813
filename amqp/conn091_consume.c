/* conn091_consume.c — the rest of AMQP 0-9-1's basic class: Qos, Consume,
 * Cancel, Get, Ack, Nack, Reject and Recover, and the deliveries queues
 * send for them.
 *
 * A 0-9-1 consumer is a queue consumer like an AMQP 1.0 link, with credit:
 * its credit with the queue plus its unsettled deliveries stay within its
 * window (its prefetch count; the broker's credit_window when it has none
 * or acks nothing), and each ack gives the credit back. A channel's global
 * prefetch holds deliveries in the connection once the channel has that
 * many unacknowledged. Delivery tags are the channel's own, in order; each
 * names the queue delivery it settles. A cancelled consumer keeps what it
 * was given (the client may still ack it) and gives back what comes late.
 * Basic.Get uses a short-lived consumer with credit 1 and a drain: the
 * queue's answer is the message, or the drain's echo (Get-Empty).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "amqp/amqp_internal.h"

#define REPLY_TO_PSEUDO "amq.rabbitmq.reply-to"

/* ------------------------------------------------------------------ rings */

static int ring_push(amqp__091_ring *r, amqp__091_out o)
{
    if (r->len == r->cap) {
        uint32_t ncap = r->cap ? r->cap * 2 : 64;
        amqp__091_out *v = malloc(ncap * sizeof *v);
        if (!v)
            return -ENOMEM;
        for (uint32_t i = 0; i < r->len; i++)
            v[i] = r->v[(r->head + i) % r->cap];
        free(r->v);
        r->v = v;
        r->cap = ncap;
        r->head = 0;
    }
    r->v[(r->head + r->len) % r->cap] = o;
    r->len++;
    return 0;
}

static amqp__091_out ring_pop(amqp__091_ring *r)
{
    amqp__091_out o = r->v[r->head];
    r->head = (r->head + 1) % r->cap;
    r->len--;
    return o;
}

void amqp__091_ring_free(amqp__091_ring *r)
{
    while (r->len)
        rt_msg_unref(ring_pop(r).d.m);
    free(r->v);
    *r = (amqp__091_ring){0};
}

/* -------------------------------------------------------------- consumers */

static amqp__091_cons *cons_get(amqp__conn *c, uint32_t id)
{
    amqp__091_cref *e = sv_map_get(&c->c91->cons, 0, id);
    return e ? e->p : NULL;
}

static void to_queue(amqp__conn *c, sv_pid qpid, uint32_t tag, const void *p, size_t n)
{
    if (c->finished)
        return; /* the queue hears the connection is gone (it monitors it) */
    sv_msg *m = sv_msg_new(tag, p, n);
    if (m)
        amqp__outbox_push(c, qpid, m);
}

static amqp__091_cons *cons_new(amqp__conn *c, amqp__091_chan *ch, const char *queue, sv_pid qpid, bool no_ack,
                                uint32_t window, bool get)
{
    amqp__c91 *k = c->c91;
    amqp__091_cons *cn = calloc(1, sizeof *cn);
    if (!cn)
        return NULL;
    cn->id = ++c->next_consumer;
    amqp__091_cref *e = sv_map_put(&k->cons, 0, cn->id);
    if (!e) {
        free(cn);
        return NULL;
    }
    e->p = cn;
    cn->channel = ch->number;
    cn->no_ack = no_ack;
    cn->get = get;
    cn->qpid = qpid;
    cn->window = window;
    snprintf(cn->queue, sizeof cn->queue, "%s", queue);
    cn->next = ch->cons;
    ch->cons = cn;
    return cn;
}

/* Gone for good: unlinked from its channel and the map, and (tell) its
 * queue told. */
static void cons_end(amqp__conn *c, amqp__091_cons *cn, bool tell)
{
    amqp__c91 *k = c->c91;
    amqp__091_chan *ch = k->ch ? k->ch[cn->channel] : NULL;
    if (tell) {
        rt_credit cr = {.consumer = cn->id};
        to_queue(c, cn->qpid, RT_Q_CANCEL, &cr, sizeof cr);
    }
    if (ch)
        for (amqp__091_cons **p = &ch->cons; *p; p = &(*p)->next)
            if (*p == cn) {
                *p = cn->next;
                break;
            }
    if (cn->listed) {
        amqp__reg_con_remove(&cn->reg);
        k->nconsumers--;
    }
    if (ch && !cn->get && !strcmp(cn->queue, ch->reply_queue))
        ch->reply_queue[0] = '\0'; /* direct reply-to's consumer: the channel may consume it again */
    if (cn->getting) {
        k->waiting--; /* the get ends with its channel */
        cn->getting = false;
    }
    sv_map_del(&k->cons, 0, cn->id, NULL);
    free(cn);
}

/* A consumer that will take nothing more: gone once it has nothing the
 * client may still settle. */
static void cons_maybe_end(amqp__conn *c, amqp__091_cons *cn)
{
    if ((cn->cancelled || cn->get) && !cn->unacked && !cn->getting)
        cons_end(c, cn, true);
}

static void send_credit(amqp__conn *c, amqp__091_cons *cn, uint32_t credit, bool drain)
{
    rt_credit cr = {.consumer = cn->id, .credit = credit, .drain = drain};
    to_queue(c, cn->qpid, RT_Q_CREDIT, &cr, sizeof cr);
    cn->outstanding += credit;
}

void amqp__091_credit(amqp__conn *c)
{
    amqp__c91 *k = c->c91;
    for (uint32_t i = 0; i < k->cons.cap; i++) {
        amqp__091_cref *e = sv_map_at(&k->cons, i);
        amqp__091_cons *cn = e ? e->p : NULL;
        if (!cn || cn->cancelled || cn->get)
            continue;
        uint32_t used = cn->outstanding + cn->unacked;
        uint32_t room = used < cn->window ? cn->window - used : 0;
        uint32_t step = cn->window / 4 ? cn->window / 4 : 1; /* in steps: fewer credit messages */
        if (room >= step)
            send_credit(c, cn, room, false);
    }
}

/* ------------------------------------------------------------- deliveries */

/* Gives a delivery back to its queue untouched (its consumer was cancelled). */
static void give_back(amqp__conn *c, amqp__091_cons *cn, rt_delivery *d)
{
    if (!cn->no_ack) {
        rt_settle_batch *sb = c->finished ? NULL : amqp__outbox_settle(c, cn->qpid);
        if (sb)
            sb->s[sb->n++] = (rt_settle){.id = d->id, .outcome = RT_RELEASED};
    }
    rt_msg_unref(d->m);
    d->m = NULL;
}

static int ua_push(amqp__091_chan *ch, amqp__091_ua u)
{
    if (ch->ua_len == ch->ua_cap && ch->ua_live <= ch->ua_len / 2) {
        /* Mostly settled out of order behind an old unacked one: those
         * go now (order kept, tags stay sorted), rather than the ring
         * growing by one per delivery while the oldest stays unacked. */
        uint32_t n = 0;
        for (uint32_t i = 0; i < ch->ua_len; i++) {
            amqp__091_ua e = ch->ua[(ch->ua_head + i) % ch->ua_cap];
            if (!e.done)
                ch->ua[(ch->ua_head + n++) % ch->ua_cap] = e;
        }
        ch->ua_len = n;
    }
    if (ch->ua_len == ch->ua_cap) {
        uint32_t ncap = ch->ua_cap ? ch->ua_cap * 2 : 64;
        amqp__091_ua *v = malloc(ncap * sizeof *v);
        if (!v)
            return -ENOMEM;
        for (uint32_t i = 0; i < ch->ua_len; i++)
            v[i] = ch->ua[(ch->ua_head + i) % ch->ua_cap];
        free(ch->ua);
        ch->ua = v;
        ch->ua_cap = ncap;
        ch->ua_head = 0;
    }
    ch->ua[(ch->ua_head + ch->ua_len) % ch->ua_cap] = u;
    ch->ua_len++;
    ch->ua_live++;
    return 0;
}

static amqp__091_ua *ua_at(amqp__091_chan *ch, uint32_t i) { return &ch->ua[(ch->ua_head + i) % ch->ua_cap]; }

/* The routing key (and exchange) a delivery says it came with. */
static void route_of(const rt_msg *m, const amqp__091_cons *cn, amqp91_bytes *x, amqp91_bytes *key)
{
    const char *k = m->rkey ? m->rkey : cn->queue;
    *key = (amqp91_bytes){(const uint8_t *)k, (uint32_t)strlen(k)};
    if (!amqp__091_msg_exchange(m, x))
        *x = (amqp91_bytes){(const uint8_t *)"", 0};
}

/* Basic.Deliver (or Get-Ok) and the message; unsettled ones are noted. */
static void write_delivery(amqp__conn *c, amqp__091_chan *ch, amqp__091_cons *cn, rt_delivery *d)
{
    uint64_t tag = ch->next_tag++;
    if (!cn->no_ack && ua_push(ch, (amqp__091_ua){tag, d->id, cn->qpid, cn->id, false}) < 0) {
        give_back(c, cn, d); /* cannot be acked: better back in the queue */
        cn->unacked--;
        return;
    }
    if (cn->no_ack)
        cn->unacked--; /* written: nothing to settle */
    amqp91_method m;
    amqp91_bytes x, key;
    route_of(d->m, cn, &x, &key);
    if (cn->get) {
        rt_queue *q = rt_queue_find(cn->queue);
        m = (amqp91_method){.id = AMQP91_BASIC_GET_OK};
        m.a.basic_get_ok.delivery_tag = tag;
        m.a.basic_get_ok.redelivered = d->delivery_count > 0;
        m.a.basic_get_ok.exchange = x;
        m.a.basic_get_ok.routing_key = key;
        m.a.basic_get_ok.message_count = q ? (uint32_t)atomic_load(&q->ready) : 0;
    } else {
        m = (amqp91_method){.id = AMQP91_BASIC_DELIVER};
        m.a.basic_deliver.consumer_tag = (amqp91_bytes){(const uint8_t *)cn->tag, (uint32_t)strlen(cn->tag)};
        m.a.basic_deliver.delivery_tag = tag;
        m.a.basic_deliver.redelivered = d->delivery_count > 0;
        m.a.basic_deliver.exchange = x;
        m.a.basic_deliver.routing_key = key;
    }
    amqp__091_content(c, ch->number, &m, d->m);
    c->counts.send_cnt++;
    rt_msg_unref(d->m);
    d->m = NULL;
}

void amqp__091_deliver(amqp__conn *c, sv_msg *m)
{
    amqp__c91 *k = c->c91;
    rt_deliver_batch *db = SV_MSG_AS(m, rt_deliver_batch);
    if (!db || m->len < sizeof *db + (size_t)db->n * sizeof(rt_delivery))
        return;
    amqp__091_cons *cn = cons_get(c, db->consumer);
    for (uint32_t i = 0; i < db->n; i++) {
        rt_delivery d = db->d[i];
        db->d[i].m = NULL; /* the reference is ours now */
        if (!cn) {         /* ended: its queue has them back already */
            rt_msg_unref(d.m);
            continue;
        }
        if (cn->outstanding)
            cn->outstanding--;
        if (cn->cancelled) {
            give_back(c, cn, &d);
            continue;
        }
        cn->unacked++;
        amqp__091_chan *ch = k->ch[cn->channel];
        if (cn->get && cn->getting) { /* the get's answer: at once, the channel waits for it */
            cn->got = true;
            write_delivery(c, ch, cn, &d);
        } else if (ring_push(&k->out_q, (amqp__091_out){cn->id, d}) < 0) {
            cn->unacked--;
            give_back(c, cn, &d);
        }
    }
}

/* Whether the channel may take another delivery for cn now. */
static bool may_deliver(const amqp__091_chan *ch, const amqp__091_cons *cn)
{
    return !ch->flow_off && (cn->no_ack || !ch->global || ch->ua_live < ch->global);
}

/* One waiting delivery: written, held by its channel, or given back. */
static void feed_one(amqp__conn *c, amqp__091_out o, bool from_held)
{
    amqp__c91 *k = c->c91;
    amqp__091_cons *cn = cons_get(c, o.consumer);
    if (!cn) {
        rt_msg_unref(o.d.m);
        return;
    }
    amqp__091_chan *ch = k->ch[cn->channel];
    if (cn->cancelled || !ch || ch->state != AMQP__CH_OPEN) {
        cn->unacked--;
        give_back(c, cn, &o.d);
        cons_maybe_end(c, cn);
        return;
    }
    if (!from_held && (ch->held.len || !may_deliver(ch, cn))) {
        if (ring_push(&ch->held, o) == 0) {
            k->nheld++;
            return;
        }
        cn->unacked--;
        give_back(c, cn, &o.d);
        return;
    }
    write_delivery(c, ch, cn, &o.d);
}

void amqp__091_feed(amqp__conn *c)
{
    amqp__c91 *k = c->c91;
    /* Held ones first, each channel's in order, as far as its limits allow. */
    for (uint32_t i = 1; k->nheld && i <= k->agreed.channel_max; i++) {
        amqp__091_chan *ch = k->ch[i];
        while (ch && ch->held.len && k->olen < AMQP__091_OUT_SOFT) {
            amqp__091_out o = ch->held.v[ch->held.head];
            amqp__091_cons *cn = cons_get(c, o.consumer);
            if (cn && !cn->cancelled && !may_deliver(ch, cn))
                break;
            ring_pop(&ch->held);
            k->nheld--;
            feed_one(c, o, true);
        }
    }
    while (k->out_q.len && k->olen < AMQP__091_OUT_SOFT)
        feed_one(c, ring_pop(&k->out_q), false);
}

/* ---------------------------------------------------------- settlements */

static void settle(amqp__conn *c, amqp__091_chan *ch, amqp__091_ua *u, uint8_t outcome)
{
    rt_settle_batch *sb = amqp__outbox_settle(c, u->qpid);
    if (sb)
        sb->s[sb->n++] = (rt_settle){.id = u->id, .outcome = outcome, .failed = outcome == RT_MODIFIED};
    u->done = true;
    ch->ua_live--;
    amqp__091_cons *cn = cons_get(c, u->consumer);
    if (cn) {
        cn->unacked--;
        cons_maybe_end(c, cn);
    }
}

static void ua_trim(amqp__091_chan *ch)
{
    while (ch->ua_len && ua_at(ch, 0)->done) {
        ch->ua_head = (ch->ua_head + 1) % ch->ua_cap;
        ch->ua_len--;
    }
}

/* Ack, Nack, Reject: tag 0 with multiple is everything. */
static void on_settle(amqp__conn *c, amqp__091_chan *ch, uint32_t method, uint64_t tag, bool multiple, uint8_t outcome)
{
    if (multiple) {
        bool any = tag == 0;
        /* An unknown tag settles nothing (as in RabbitMQ): the channel
         * closes and every delivery goes back to its queue, rather than
         * those up to the tag being acked (or dropped) first. */
        for (uint32_t i = 0; i < ch->ua_len && !any && ua_at(ch, i)->tag <= tag; i++)
            any = ua_at(ch, i)->tag == tag;
        if (!any)
            goto unknown;
        for (uint32_t i = 0; i < ch->ua_len; i++) {
            amqp__091_ua *u = ua_at(ch, i);
            if (tag && u->tag > tag)
                break;
            if (!u->done)
                settle(c, ch, u, outcome);
        }
        ua_trim(ch);
        return;
    } else {
        /* Tags are in order in the ring: a binary search finds one. */
        uint32_t lo = 0, hi = ch->ua_len;
        while (lo < hi) {
            uint32_t mid = lo + (hi - lo) / 2;
            if (ua_at(ch, mid)->tag < tag)
                lo = mid + 1;
            else
                hi = mid;
        }
        if (lo < ch->ua_len && ua_at(ch, lo)->tag == tag && !ua_at(ch, lo)->done) {
            settle(c, ch, ua_at(ch, lo), outcome);
            ua_trim(ch);
            return;
        }
    }
unknown:
    amqp__091_chan_close(c, ch->number, AMQP91_PRECONDITION_FAILED, method, "unknown delivery tag %llu",
                         (unsigned long long)tag);
}

/* ---------------------------------------------------------------- methods */

static bool tag_in_use(amqp__091_chan *ch, const char *tag)
{
    for (amqp__091_cons *cn = ch->cons; cn; cn = cn->next)
        if (!cn->get && !cn->cancelled && !strcmp(cn->tag, tag))
            return true;
    return false;
}

static uint32_t window_of(amqp__conn *c, amqp__091_chan *ch, bool no_ack)
{
    uint32_t w = c->cfg->credit_window ? c->cfg->credit_window : 1000;
    if (no_ack)
        return w;
    if (ch->prefetch)
        w = ch->prefetch;
    if (ch->global && ch->global < w)
        w = ch->global;
    return w;
}

/* Starts consuming: credit to the queue, Consume-Ok, listed for the admin API. */
static void start(amqp__conn *c, amqp__091_chan *ch, const char *queue, const char *tag, bool no_ack, bool exclusive,
                  bool nowait)
{
    amqp__c91 *k = c->c91;
    rt_queue *q = rt_queue_find(queue);
    sv_pid pid = q ? rt_queue_pid(q) : SV_PID_NONE;
    if (sv_pid_is_none(pid)) {
        amqp__091_chan_close(c, ch->number, AMQP91_NOT_FOUND, AMQP91_BASIC_CONSUME,
                             "queue '%s' in vhost '/' is not running", queue);
        return;
    }
    amqp__091_cons *cn = cons_new(c, ch, queue, pid, no_ack, window_of(c, ch, no_ack), false);
    if (!cn) {
        amqp__091_chan_close(c, ch->number, AMQP91_INTERNAL_ERROR, AMQP91_BASIC_CONSUME, "out of memory");
        return;
    }
    if (tag[0])
        snprintf(cn->tag, sizeof cn->tag, "%s", tag);
    else
        snprintf(cn->tag, sizeof cn->tag, "amq.ctag-%08x-%u", sv_self(c->self).creation, cn->id);
    cn->exclusive = exclusive;
    cn->notify = k->cap_cancel;
    rt_consume rc = {.consumer = cn->id, .credit = cn->window, .presettled = no_ack, .exclusive = exclusive};
    to_queue(c, pid, RT_Q_CONSUME, &rc, sizeof rc);
    cn->outstanding = cn->window;
    if (!nowait) {
        amqp91_method m = {.id = AMQP91_BASIC_CONSUME_OK};
        m.a.basic_consume_ok.consumer_tag = (amqp91_bytes){(const uint8_t *)cn->tag, (uint32_t)strlen(cn->tag)};
        amqp__091_method(c, ch->number, &m);
    }
    amqp__reg_con *rg = &cn->reg;
    rg->channel = ch->number;
    rg->ack_required = !no_ack;
    rg->exclusive = exclusive;
    snprintf(rg->tag, sizeof rg->tag, "%.127s", cn->tag); /* the admin API shows 127 bytes of it */
    snprintf(rg->queue, sizeof rg->queue, "%s", queue);
    atomic_store_explicit(&rg->credit, cn->window, memory_order_relaxed);
    amqp__reg_con_add(&c->reg, rg);
    cn->listed = true;
    k->nconsumers++;
}

static void consume(amqp__conn *c, amqp__091_chan *ch, const amqp91_basic_consume *a)
{
    char queue[RT_NAME_MAX + 1], tag[256];
    amqp__091_name(a->queue, queue);
    snprintf(tag, sizeof tag, "%.*s", (int)a->consumer_tag.len, (const char *)a->consumer_tag.p);
    if (tag[0] && tag_in_use(ch, tag)) {
        amqp__091_conn_close(c, AMQP91_NOT_ALLOWED, AMQP91_BASIC_CONSUME, "attempt to reuse consumer tag '%.200s'",
                             tag);
        return;
    }
    if (!strcmp(queue, REPLY_TO_PSEUDO)) {
        /* Direct reply-to: replies come to an exclusive queue of this
         * connection's, which the pseudo-queue's name stands for in
         * reply_to (conn091_publish.c). */
        if (!a->no_ack) {
            amqp__091_chan_close(c, ch->number, AMQP91_PRECONDITION_FAILED, AMQP91_BASIC_CONSUME,
                                 "reply consumer cannot acknowledge");
            return;
        }
        if (ch->reply_queue[0]) {
            amqp__091_chan_close(c, ch->number, AMQP91_PRECONDITION_FAILED, AMQP91_BASIC_CONSUME,
                                 "reply consumer already set");
            return;
        }
        rt_req_queue r = {0};
        /* Unique to this connection's process (its slot and generation:
         * the node's creation alone is every connection's) and to this
         * consume (a number from the consumer ids: a channel may consume
         * again after a cancel, while its old queue is being deleted). */
        sv_pid me = sv_self(c->self);
        snprintf(r.name, sizeof r.name, REPLY_TO_PSEUDO ".%x.%08x.%x.%x.%u", me.node, me.creation, me.index, me.gen,
                 ++c->next_consumer);
        rt_qargs_init(&r.args);
        r.args.exclusive = r.args.auto_delete = true;
        r.owner = sv_self(c->self);
        r.scheduler = SV_SCHED_ON(sv_scheduler_of(c->self));
        amqp__091_call *call = amqp__091_call_to(c, ch->number, AMQP91_BASIC_CONSUME, rt_manager(),
                                                 rt_req(RT_REQ_DECLARE_QUEUE, &r, sizeof r));
        if (!call) {
            amqp__091_chan_close(c, ch->number, AMQP91_INTERNAL_ERROR, AMQP91_BASIC_CONSUME,
                                 "cannot reach the routing manager");
            return;
        }
        call->nowait = a->no_wait;
        snprintf(call->tag, sizeof call->tag, "%s", tag);
        snprintf(call->name, sizeof call->name, "%s", r.name);
        return;
    }
    if (!queue[0]) {
        if (!ch->last_queue[0]) {
            amqp__091_chan_close(c, ch->number, AMQP91_NOT_FOUND, AMQP91_BASIC_CONSUME, "no previously declared queue");
            return;
        }
        memcpy(queue, ch->last_queue, sizeof queue);
    }
    rt_queue *q;
    if (!amqp__091_queue_ok(c, ch, AMQP91_BASIC_CONSUME, queue, &q) ||
        !amqp__091_allowed(c, ch, AMQP91_BASIC_CONSUME, AMQP_PERM_READ, "queue", queue))
        return;
    if (atomic_load(&q->exclusive_consumer) || (a->exclusive && atomic_load(&q->consumers) > 0)) {
        amqp__091_chan_close(c, ch->number, AMQP91_ACCESS_REFUSED, AMQP91_BASIC_CONSUME,
                             "queue '%s' in vhost '/' in exclusive use", queue);
        return;
    }
    start(c, ch, queue, tag, a->no_ack, a->exclusive, a->no_wait);
}

void amqp__091_consume_reply(amqp__conn *c, amqp__091_call *call, sv_msg *reply)
{
    amqp__091_chan *ch = amqp__091_chan_get(c, call->channel, call->epoch);
    if (!ch)
        return;
    if (reply->status < 0) {
        amqp__091_chan_close(c, ch->number, AMQP91_INTERNAL_ERROR, AMQP91_BASIC_CONSUME,
                             "cannot make the reply queue: %s", strerror(-reply->status));
        return;
    }
    snprintf(ch->reply_queue, sizeof ch->reply_queue, "%s", call->name);
    start(c, ch, call->name, call->tag, true, false, call->nowait);
}

/* Writes what waits in the connection for a no-ack consumer (in the
 * connection's line and its channel's held ones; the others keep their
 * order): its queue has forgotten them, so they go to the client now. */
static void write_waiting(amqp__conn *c, amqp__091_chan *ch, amqp__091_cons *cn)
{
    amqp__c91 *k = c->c91;
    amqp__091_ring *rings[2] = {&ch->held, &k->out_q};
    for (int r = 0; r < 2; r++)
        for (uint32_t i = 0, n = rings[r]->len; i < n; i++) {
            amqp__091_out o = ring_pop(rings[r]);
            if (o.consumer != cn->id) {
                ring_push(rings[r], o); /* one was just taken: no growth, cannot fail */
                continue;
            }
            if (r == 0)
                k->nheld--;
            write_delivery(c, ch, cn, &o.d);
        }
}

static void cancel(amqp__conn *c, amqp__091_chan *ch, const amqp91_basic_cancel *a)
{
    char tag[256];
    snprintf(tag, sizeof tag, "%.*s", (int)a->consumer_tag.len, (const char *)a->consumer_tag.p);
    for (amqp__091_cons *cn = ch->cons; cn; cn = cn->next) {
        if (cn->get || cn->cancelled || strcmp(cn->tag, tag))
            continue;
        cn->cancelled = true;
        if (cn->listed) {
            amqp__reg_con_remove(&cn->reg);
            cn->listed = false;
            c->c91->nconsumers--;
        }
        if (cn->no_ack) {
            /* Its deliveries waiting here are written before the
             * Cancel-Ok (dropped, they were lost: the queue forgot them,
             * and a drain pulled more to drop); then the queue stops. */
            write_waiting(c, ch, cn);
            cons_end(c, cn, true);
        } else if (cn->unacked) {
            send_credit(c, cn, 0, true); /* no more; what it has stays its own */
        } else {
            cons_end(c, cn, true);
        }
        break;
    }
    if (!a->no_wait) { /* an unknown tag too, as in RabbitMQ */
        amqp91_method m = {.id = AMQP91_BASIC_CANCEL_OK};
        m.a.basic_cancel_ok.consumer_tag = a->consumer_tag;
        amqp__091_method(c, ch->number, &m);
    }
}

static void get(amqp__conn *c, amqp__091_chan *ch, const amqp91_basic_get *a)
{
    char queue[RT_NAME_MAX + 1];
    amqp__091_name(a->queue, queue);
    if (!queue[0]) {
        if (!ch->last_queue[0]) {
            amqp__091_chan_close(c, ch->number, AMQP91_NOT_FOUND, AMQP91_BASIC_GET, "no previously declared queue");
            return;
        }
        memcpy(queue, ch->last_queue, sizeof queue);
    }
    rt_queue *q;
    if (!amqp__091_queue_ok(c, ch, AMQP91_BASIC_GET, queue, &q) ||
        !amqp__091_allowed(c, ch, AMQP91_BASIC_GET, AMQP_PERM_READ, "queue", queue))
        return;
    sv_pid pid = rt_queue_pid(q);
    amqp__091_cons *cn = NULL;
    for (amqp__091_cons *e = ch->cons; e && !cn; e = e->next)
        if (e->get && !e->cancelled && e->no_ack == a->no_ack && !strcmp(e->queue, queue) && sv_pid_eq(e->qpid, pid))
            cn = e;
    if (!cn) {
        cn = sv_pid_is_none(pid) ? NULL : cons_new(c, ch, queue, pid, a->no_ack, 1, true);
        if (!cn) {
            amqp__091_chan_close(c, ch->number, AMQP91_INTERNAL_ERROR, AMQP91_BASIC_GET,
                                 "queue '%s' in vhost '/' is not running", queue);
            return;
        }
        rt_consume rc = {.consumer = cn->id, .credit = 1, .presettled = a->no_ack, .get = true};
        to_queue(c, pid, RT_Q_CONSUME, &rc, sizeof rc);
        cn->outstanding = 1;
        send_credit(c, cn, 0, true);
    } else {
        send_credit(c, cn, 1, true);
    }
    cn->getting = true;
    cn->got = false;
    c->c91->waiting++; /* until the queue answers */
}

void amqp__091_drained(amqp__conn *c, sv_msg *m)
{
    rt_credit *cr = SV_MSG_AS(m, rt_credit);
    amqp__091_cons *cn = cr ? cons_get(c, cr->consumer) : NULL;
    if (!cn)
        return;
    cn->outstanding = 0; /* the queue used it up */
    if (cn->getting) {
        cn->getting = false;
        c->c91->waiting--;
        amqp__091_chan *ch = amqp__091_chan_get(c, cn->channel, 0);
        if (ch && !cn->got) {
            amqp91_method e = {.id = AMQP91_BASIC_GET_EMPTY};
            amqp__091_method(c, ch->number, &e);
        }
    }
    cons_maybe_end(c, cn);
}

void amqp__091_consumer_gone(amqp__conn *c, sv_msg *m)
{
    rt_credit *cr = SV_MSG_AS(m, rt_credit);
    amqp__091_cons *cn = cr ? cons_get(c, cr->consumer) : NULL;
    if (!cn)
        return;
    amqp__091_chan *ch = amqp__091_chan_get(c, cn->channel, 0);
    if (cn->getting && !cn->got && ch) /* the queue went during a get: nothing to get (unless Get-Ok went) */
        amqp__091_simple(c, ch->number, AMQP91_BASIC_GET_EMPTY);
    if (ch && !cn->get && !cn->cancelled) {
        sv_log(SV_LOG_INFO, "connection %s: consumer '%s' on queue '%s' ended: %s", c->peer, cn->tag, cn->queue,
               m->status == -ENOENT                         ? "the queue was deleted"
               : m->status == -EPERM || m->status == -EBUSY ? "exclusive use refused"
                                                            : "the queue stopped");
        if (cn->notify) { /* consumer_cancel_notify */
            amqp91_method b = {.id = AMQP91_BASIC_CANCEL};
            b.a.basic_cancel.consumer_tag = (amqp91_bytes){(const uint8_t *)cn->tag, (uint32_t)strlen(cn->tag)};
            b.a.basic_cancel.no_wait = true;
            amqp__091_method(c, ch->number, &b);
        }
    }
    cons_end(c, cn, false); /* the queue has let go */
}

static void recover(amqp__conn *c, amqp__091_chan *ch, bool requeue, uint32_t method)
{
    if (!requeue) {
        amqp__091_chan_close(c, ch->number, AMQP91_NOT_IMPLEMENTED, method, "requeue=false is not supported");
        return;
    }
    for (uint32_t i = 0; i < ch->ua_len; i++)
        if (!ua_at(ch, i)->done)
            settle(c, ch, ua_at(ch, i), RT_MODIFIED);
    ua_trim(ch);
    if (method == AMQP91_BASIC_RECOVER)
        amqp__091_simple(c, ch->number, AMQP91_BASIC_RECOVER_OK);
}

static void qos(amqp__conn *c, amqp__091_chan *ch, const amqp91_basic_qos *a)
{
    if (a->prefetch_size) {
        amqp__091_chan_close(c, ch->number, AMQP91_NOT_IMPLEMENTED, AMQP91_BASIC_QOS, "prefetch_size!=0 (%u)",
                             a->prefetch_size);
        return;
    }
    if (a->global) {
        ch->global = a->prefetch_count;
    } else {
        ch->prefetch = a->prefetch_count;
    }
    /* Consumers already there take the new limit too (RabbitMQ applies a
     * per-consumer Qos to new consumers only; a lower window here just
     * stops credit until acks bring them under it). */
    for (amqp__091_cons *cn = ch->cons; cn; cn = cn->next)
        if (!cn->get && !cn->no_ack && (a->global || !cn->listed))
            cn->window = window_of(c, ch, false);
    amqp__091_simple(c, ch->number, AMQP91_BASIC_QOS_OK);
}

void amqp__091_basic_method(amqp__conn *c, amqp__091_chan *ch, const amqp91_method *m)
{
    switch (m->id) {
    case AMQP91_BASIC_QOS: qos(c, ch, &m->a.basic_qos); break;
    case AMQP91_BASIC_CONSUME: consume(c, ch, &m->a.basic_consume); break;
    case AMQP91_BASIC_CANCEL: cancel(c, ch, &m->a.basic_cancel); break;
    case AMQP91_BASIC_GET: get(c, ch, &m->a.basic_get); break;
    case AMQP91_BASIC_ACK:
        on_settle(c, ch, m->id, m->a.basic_ack.delivery_tag, m->a.basic_ack.multiple, RT_ACCEPTED);
        break;
    case AMQP91_BASIC_NACK:
        on_settle(c, ch, m->id, m->a.basic_nack.delivery_tag, m->a.basic_nack.multiple,
                  m->a.basic_nack.requeue ? RT_MODIFIED : RT_REJECTED);
        break;
    case AMQP91_BASIC_REJECT:
        on_settle(c, ch, m->id, m->a.basic_reject.delivery_tag, false,
                  m->a.basic_reject.requeue ? RT_MODIFIED : RT_REJECTED);
        break;
    case AMQP91_BASIC_RECOVER: recover(c, ch, m->a.basic_recover.requeue, m->id); break;
    case AMQP91_BASIC_RECOVER_ASYNC: recover(c, ch, m->a.basic_recover_async.requeue, m->id); break;
    default:
        amqp__091_chan_close(c, ch->number, AMQP91_NOT_IMPLEMENTED, m->id, "%s is not implemented", m->desc->name);
        break;
    }
}

void amqp__091_consume_chan_free(amqp__conn *c, amqp__091_chan *ch)
{
    amqp__c91 *k = c->c91;
    /* Held deliveries go back; then every consumer ends, and its queue
     * puts what the client never settled back, marked redelivered. */
    while (ch->held.len) {
        amqp__091_out o = ring_pop(&ch->held);
        k->nheld--;
        amqp__091_cons *cn = cons_get(c, o.consumer);
        if (cn)
            give_back(c, cn, &o.d);
        else
            rt_msg_unref(o.d.m);
    }
    amqp__091_ring_free(&ch->held);
    while (ch->cons)
        cons_end(c, ch->cons, true);
    free(ch->ua);
    ch->ua = NULL;
    ch->ua_len = ch->ua_cap = ch->ua_head = ch->ua_live = 0;
}
