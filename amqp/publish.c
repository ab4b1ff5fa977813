/* publish.c — links on which a client sends messages to the broker.
 *
 * At attach the target address is resolved once (a queue, an exchange with
 * a fixed key, an exchange keyed by subject, or the anonymous relay, where
 * each message's `to` says). Each message is read straight into its rt_msg,
 * routed here, on the connection's own thread, and added to one batch per
 * destination queue; the queues' confirms settle it (accepted, rejected
 * when a queue is full, released when nothing took it). Credit is topped
 * up only as confirms come back, so a publisher can never have more than
 * its window (in messages, and in bytes) inside the broker. The whole
 * window is granted at attach, before message sizes are known (clients
 * that send a batch in their first "sendable" callback need it): the bytes
 * are bounded by reading instead (amqp__pub_may_read).
 */
#include <errno.h>
#include <proton/condition.h>
#include <proton/delivery.h>
#include <proton/disposition.h>
#include <proton/link.h>
#include <proton/terminus.h>
#include <stdlib.h>
#include <string.h>

#include "amqp/amqp_internal.h"

#define BYTES_IN_FLIGHT (8u << 20) /* per link, on top of the message window */
#define MAX_FANOUT 4096            /* queues one message may reach */

/* Keeps the link's credit plus what it has in flight at its window. */
static void pub_credit(amqp__conn *c, amqp__link *l)
{
    if (!l->attached || l->closed || !l->link)
        return;
    /* Held back: the queues hold too much (memory alarm), or a queue this
     * link feeds has consumers and a backlog (it asked to slow down). The
     * connection's timer tries again (amqp__pub_refresh). */
    if (rt_alarm() || l->paused_until > sv_now_ms()) {
        c->credit_held = true;
        return;
    }
    uint32_t window = c->cfg->credit_window;
    if (l->avg_size) {
        uint64_t by_bytes = BYTES_IN_FLIGHT / l->avg_size;
        if (by_bytes < window)
            window = by_bytes ? (uint32_t)by_bytes : 1;
    }
    uint32_t have = (uint32_t)pn_link_credit(l->link) + l->inflight + (l->cur ? 1 : 0);
    uint32_t step = window / 4 ? window / 4 : 1; /* top up in steps: fewer flow frames */
    if (have + step <= window)
        pn_link_flow(l->link, (int)(window - have));
}

static void open_pub(amqp__conn *c, amqp__link *l)
{
    pn_link_t *link = l->link;
    pn_terminus_copy(pn_link_target(link), pn_link_remote_target(link));
    pn_terminus_copy(pn_link_source(link), pn_link_remote_source(link));
    /* The settle modes the client asked for, echoed (clients such as
     * go-amqp refuse a link answered with another); rcv-settle-mode
     * second was refused at attach. */
    pn_link_set_snd_settle_mode(link, pn_link_remote_snd_settle_mode(link));
    pn_link_set_rcv_settle_mode(link, PN_RCV_FIRST);
    pn_link_set_max_message_size(link, c->cfg->max_message_size);
    pn_link_open(link);
    l->attached = true;
    pub_credit(c, l);
}

void amqp__pub_attach(amqp__conn *c, pn_link_t *link)
{
    amqp__link *l = amqp__link_new(c, link, AMQP__PUB);
    if (!l) {
        amqp__link_refuse(link, "amqp:internal-error", "out of memory");
        return;
    }
    if (pn_link_remote_rcv_settle_mode(link) == PN_RCV_SECOND) {
        /* The broker settles a publish as it decides its outcome; waiting
         * for the client's settlement first is not done (yet). */
        amqp__link_fail(l, "amqp:not-implemented",
                        "rcv-settle-mode second is not supported on links that publish; use first");
        return;
    }
    pn_terminus_t *rt = pn_link_remote_target(link);
    if (pn_terminus_is_dynamic(rt)) {
        amqp__link_fail(l, "amqp:not-implemented", "dynamic targets are not supported; use a dynamic source");
        return;
    }
    const char *addr = pn_terminus_get_address(rt);
    if (!addr) {
        l->relay = true; /* the anonymous relay: each message's `to` (checked per exchange, see may_relay) */
        open_pub(c, l);
        return;
    }
    if (amqp_addr_parse(addr, &l->addr) < 0) {
        amqp__link_fail(l, "amqp:not-found", "no such address '%.200s' (use /queues/NAME or /exchanges/NAME[/KEY])",
                        addr);
        return;
    }
    /* RabbitMQ's rule: publishing needs write on the exchange only (a
     * queue's address publishes through the default exchange, checked as
     * amq.default); declaring the queue needs configure on it. */
    if (!amqp__link_may(l, AMQP_PERM_WRITE, "exchange", l->addr.kind == AMQP_ADDR_QUEUE ? "" : l->addr.name))
        return;
    if (l->addr.kind == AMQP_ADDR_QUEUE) {
        if (rt_queue_find(l->addr.name)) {
            open_pub(c, l);
        } else if (c->cfg->auto_create_queues) {
            if (!amqp__link_may(l, AMQP_PERM_CONFIGURE, "queue", l->addr.name))
                return;
            rt_req_queue r = {0};
            char err[160];
            snprintf(r.name, sizeof r.name, "%s", l->addr.name);
            rt_qargs_init(&r.args);
            if (amqp__queue_args(pn_link_remote_properties(link), &r.args, err, sizeof err) < 0) {
                amqp__link_fail(l, "amqp:invalid-field", "%s", err);
                return;
            }
            r.owner = r.args.exclusive ? sv_self(c->self) : SV_PID_NONE;
            r.scheduler = SV_SCHED_ON(sv_scheduler_of(c->self));
            if (amqp__call_manager(c, l, RT_REQ_DECLARE_QUEUE, &r, sizeof r) < 0)
                amqp__link_fail(l, "amqp:internal-error", "cannot reach the routing manager");
        } else {
            amqp__link_fail(l, "amqp:not-found", "no queue '%s'", l->addr.name);
        }
        return;
    }
    rt_exchange *x = l->addr.name[0] ? rt_exchange_find(l->addr.name) : NULL;
    if (l->addr.name[0] && !x)
        amqp__link_fail(l, "amqp:not-found", "no exchange '%s'", l->addr.name);
    else if (x && x->internal)
        amqp__link_fail(l, "amqp:unauthorized-access", "exchange '%s' is internal", x->name);
    else
        open_pub(c, l);
}

void amqp__pub_reply(amqp__conn *c, amqp__link *l, sv_msg *reply)
{
    if (l->closed)
        return;
    if (reply->status < 0)
        amqp__link_fail(l, reply->status == -EBUSY ? "amqp:resource-locked" : "amqp:not-found",
                        "cannot create queue '%s': %s", l->addr.name, strerror(-reply->status));
    else
        open_pub(c, l);
}

/* Settles a publish the broker decided on at once (nothing to route to, a
 * bad message). */
static void settle_now(pn_delivery_t *d, uint64_t outcome, const char *cond, const char *desc)
{
    if (pn_delivery_settled(d)) {
        pn_delivery_settle(d);
        return;
    }
    if (cond) {
        pn_condition_t *pc = pn_disposition_condition(pn_delivery_local(d));
        pn_condition_set_name(pc, cond);
        pn_condition_set_description(pc, desc);
    }
    pn_delivery_update(d, outcome);
    pn_delivery_settle(d);
}

/* Whether the relay link l may write to exchange x ("": the default),
 * with the reason in desc if not. The last exchange allowed is
 * remembered, so a relay that keeps sending to one place is checked once
 * (publishes are not checked one by one: the budget is 3 %). */
static bool may_relay(amqp__conn *c, amqp__link *l, const char *x, char *desc, size_t len)
{
    if (l->relay_ok && !strcmp(l->relay_ok, x))
        return true;
    if (amqp__perm(c, AMQP_PERM_WRITE, "exchange", x, desc, len) < 0)
        return false;
    free(l->relay_ok);
    l->relay_ok = strdup(x); /* NULL without memory: checked again next time */
    return true;
}

/* Where a message goes. Returns the queues (out may be reallocated by the
 * caller's second call when there are more than fit). */
static int route(amqp__conn *c, amqp__link *l, rt_msg *m, rt_queue **out, int max, const char **why, char *desc,
                 size_t dlen)
{
    amqp_addr relay;
    const amqp_addr *a = &l->addr;
    if (l->relay) {
        if (!m->to || amqp_addr_parse(m->to, &relay) < 0) {
            *why = m->to ? "amqp:not-found" : "amqp:precondition-failed";
            return -1;
        }
        a = &relay;
        if (!may_relay(c, l, a->kind == AMQP_ADDR_QUEUE ? "" : a->name, desc, dlen)) {
            *why = "amqp:unauthorized-access";
            return -1;
        }
    }
    rt_exchange *x = NULL;
    const char *key = a->name;
    if (a->kind != AMQP_ADDR_QUEUE) {
        key = a->kind == AMQP_ADDR_EXCHANGE_KEY ? a->key : m->subject ? m->subject : "";
        if (a->name[0] && !(x = rt_exchange_find(a->name))) {
            *why = "amqp:not-found";
            return -1;
        }
        if (x && rt_msg_set_rkey(m, key) < 0) {
            *why = "amqp:internal-error";
            return -1;
        }
    }
    return rt_route(x, m, key, out, max);
}

static void tag_done(amqp__conn *c, amqp__tag *t);

static void publish(amqp__conn *c, amqp__link *l, pn_delivery_t *d, rt_msg *m)
{
    rt_queue *fixed[16], **qs = fixed;
    const char *why = NULL;
    char desc[300];
    desc[0] = '\0';
    int n = route(c, l, m, qs, 16, &why, desc, sizeof desc);
    if (n > 16) {
        int want = n < MAX_FANOUT ? n : MAX_FANOUT;
        qs = malloc((size_t)want * sizeof *qs);
        n = qs ? route(c, l, m, qs, want, &why, desc, sizeof desc) : -1;
        if (n > want)
            n = want;
        if (!qs)
            why = "amqp:internal-error";
    }
    if (n <= 0) {
        /* Unroutable: released, as RabbitMQ does (the client may try
         * elsewhere); an unusable `to` or exchange is rejected. */
        if (n == 0)
            settle_now(d, PN_RELEASED, NULL, NULL);
        else
            settle_now(d, PN_REJECTED, why,
                       desc[0]    ? desc
                       : l->relay ? "the message's `to` names no queue or exchange"
                                  : "its exchange is gone");
        rt_msg_unref(m);
        if (qs != fixed)
            free(qs);
        pub_credit(c, l);
        return;
    }
    uint64_t tag = ++c->next_tag;
    amqp__tag *t = sv_map_put(&c->tags, 0, tag);
    if (!t) {
        settle_now(d, PN_RELEASED, NULL, NULL);
        rt_msg_unref(m);
        if (qs != fixed)
            free(qs);
        return;
    }
    bool presettled = pn_delivery_settled(d);
    t->d = presettled ? NULL : d;
    t->l = l;
    t->remaining = (uint32_t)n;
    t->outcome = RT_ACCEPTED;
    t->why = RT_WHY_NONE;
    t->size = (uint32_t)m->buf.len;
    c->pub_bytes += t->size;
    l->refs++;
    l->inflight++;
    uint32_t took = amqp__outbox_publish(c, qs, n, m, tag, &l->paused_until);
    if (took < (uint32_t)n) { /* out of memory: the queues that did not get it count as released */
        t->remaining = took;
        t->outcome = RT_RELEASED;
    }
    if (presettled)
        pn_delivery_settle(d);
    rt_msg_unref(m);
    if (qs != fixed)
        free(qs);
    if (t->remaining == 0)
        tag_done(c, t); /* nothing could be queued after all */
}

void amqp__pub_delivery(amqp__conn *c, amqp__link *l, pn_delivery_t *d)
{
    pn_link_t *link = l->link;
    if (pn_delivery_aborted(d)) {
        rt_msg_unref(l->cur);
        l->cur = NULL;
        l->cur_len = 0;
        pn_delivery_settle(d);
        return;
    }
    if (!pn_delivery_readable(d))
        return;
    size_t pending = pn_delivery_pending(d);
    size_t want = l->cur_len + pending;
    if (want > c->cfg->max_message_size) {
        rt_msg_unref(l->cur);
        l->cur = NULL;
        l->cur_len = 0;
        amqp__link_fail(l, "amqp:link:message-size-exceeded", "message larger than %llu bytes",
                        (unsigned long long)c->cfg->max_message_size);
        return;
    }
    if (!l->cur) {
        /* Most messages arrive whole: size the first buffer for this one. */
        l->cur_cap = pending > 256 ? pending : 256;
        if (!(l->cur = rt_msg_alloc(l->cur_cap))) {
            amqp__link_fail(l, "amqp:internal-error", "out of memory");
            return;
        }
    } else if (want > l->cur_cap) {
        size_t cap = l->cur_cap * 2 > want ? l->cur_cap * 2 : want;
        if (rt_msg_grow(&l->cur, cap) < 0) {
            amqp__link_fail(l, "amqp:internal-error", "out of memory");
            return;
        }
        l->cur_cap = cap;
    }
    ssize_t n = pn_link_recv(link, (char *)rt_msg_bytes(l->cur) + l->cur_len, pending);
    if (n > 0)
        l->cur_len += (size_t)n;
    if (pn_delivery_partial(d))
        return; /* more frames to come */
    rt_msg *m = l->cur;
    size_t len = l->cur_len;
    l->cur = NULL;
    l->cur_len = 0;
    pn_link_advance(link);
    if (rt_msg_finish(&m, len) < 0) {
        rt_msg_unref(m);
        settle_now(d, PN_REJECTED, "amqp:decode-error", "the message's sections cannot be decoded");
        pub_credit(c, l);
        return;
    }
    l->avg_size = l->avg_size ? (l->avg_size * 7 + len) / 8 : len;
    c->counts.recv_cnt++;
    publish(c, l, d, m);
}

static uint8_t worse(uint8_t a, uint8_t b)
{
    /* rejected > released > accepted */
    static const int rank[] = {[RT_ACCEPTED] = 0, [RT_RELEASED] = 1, [RT_MODIFIED] = 1, [RT_REJECTED] = 2};
    return rank[b] > rank[a] ? b : a;
}

static void tag_done(amqp__conn *c, amqp__tag *t)
{
    if (t->d) {
        if (t->outcome == RT_ACCEPTED)
            settle_now(t->d, PN_ACCEPTED, NULL, NULL);
        else if (t->outcome == RT_REJECTED && t->why == RT_WHY_STORE)
            settle_now(t->d, PN_REJECTED, "amqp:resource-limit-exceeded",
                       "the message store cannot take it (disk full or failing); try again later");
        else if (t->outcome == RT_REJECTED)
            settle_now(t->d, PN_REJECTED, "amqp:resource-limit-exceeded", "a queue is full (overflow reject-publish)");
        else
            settle_now(t->d, PN_RELEASED, NULL, NULL);
    }
    amqp__link *l = t->l;
    l->inflight--;
    c->pub_bytes -= t->size;
    sv_map_del(&c->tags, 0, t->k2, NULL);
    pub_credit(c, l);
    amqp__link_unref(l);
}

void amqp__pub_confirm(amqp__conn *c, sv_msg *m)
{
    rt_confirm_batch *cb = SV_MSG_AS(m, rt_confirm_batch);
    if (!cb || m->len < sizeof *cb + cb->n * sizeof(rt_confirm))
        return;
    for (uint32_t i = 0; i < cb->n; i++) {
        amqp__tag *t = sv_map_get(&c->tags, 0, cb->c[i].tag);
        if (!t)
            continue;
        if (cb->c[i].outcome == RT_REJECTED && t->outcome != RT_REJECTED)
            t->why = cb->c[i].why;
        t->outcome = worse(t->outcome, cb->c[i].outcome);
        if (--t->remaining == 0)
            tag_done(c, t);
    }
}

void amqp__pub_taken(amqp__conn *c, const rt_pub *p, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        amqp__tag *t = sv_map_get(&c->tags, 0, p[i].tag);
        if (t && --t->remaining == 0)
            tag_done(c, t);
    }
}

void amqp__pub_closed(amqp__conn *c, amqp__link *l)
{
    /* Its deliveries go with the link: confirms still due only count. */
    for (uint32_t i = 0; i < c->tags.cap; i++) {
        amqp__tag *t = sv_map_at(&c->tags, i);
        if (t && t->l == l)
            t->d = NULL;
    }
    rt_msg_unref(l->cur);
    l->cur = NULL;
    l->cur_len = 0;
}

bool amqp__pub_may_read(amqp__conn *c)
{
    if (c->pub_bytes < BYTES_IN_FLIGHT && !rt_alarm())
        return true; /* the common case, without a walk over the links */
    uint32_t npub = 0, ncon = 0;
    bool credit = false;
    for (amqp__link *l = c->links; l; l = l->next) {
        if (l->closed || !l->link)
            continue;
        if (l->kind == AMQP__PUB) {
            npub++;
            credit = credit || pn_link_credit(l->link) > 0 || l->cur;
        } else {
            ncon++;
        }
    }
    /* Read, not yet taken by every queue: about BYTES_IN_FLIGHT per link,
     * as top-ups keep it once sizes are known. Queues that do not take
     * are full or slow; more reading would only grow the outboxes. */
    if (c->pub_bytes >= (uint64_t)BYTES_IN_FLIGHT * (npub ? npub : 1))
        return false;
    /* Under the alarm credit is held, but what was granted at attach may
     * still bring a window of large messages: a connection that only
     * publishes is not read until the alarm is over (as RabbitMQ blocks
     * publishing connections). One that also consumes is read on, or its
     * settlements, which drain the queues, would never come: what it may
     * still bring is its outstanding credit. */
    if (credit && !ncon && rt_alarm()) {
        c->credit_held = true; /* the timer looks again */
        return false;
    }
    return true;
}

void amqp__pub_refresh(amqp__conn *c)
{
    c->credit_held = false;
    for (amqp__link *l = c->links; l; l = l->next)
        if (l->kind == AMQP__PUB)
            pub_credit(c, l);
}
