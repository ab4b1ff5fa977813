/* consume.c — links on which a client receives messages from the broker.
 *
 * A receiving link consumes from one queue: a named one, a dynamic one made
 * for the link (the reply queue of request/reply), or a subscription (a
 * queue of its own bound to an exchange). The connection passes the link's
 * credit on to the queue process, which sends deliveries back in batches;
 * dispositions go back to the queue in batches too. The queue delivery id
 * is the AMQP delivery tag, so a disposition names its message directly.
 */
#include <errno.h>
#include <proton/codec.h>
#include <proton/connection.h>
#include <proton/condition.h>
#include <proton/delivery.h>
#include <proton/disposition.h>
#include <proton/link.h>
#include <proton/session.h>
#include <proton/terminus.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "amqp/amqp_internal.h"

enum { STEP_NONE, STEP_DECLARE, STEP_BIND };

/* The registered AMQP filter for headers-exchange bindings. */
#define HEADERS_FILTER_SYM "apache.org:legacy-amqp-headers-binding:map"
#define HEADERS_FILTER_CODE 0x0000468C00000002ULL

static void consume_start(amqp__conn *c, amqp__link *l);

static void fail_status(amqp__link *l, int status, const char *what)
{
    const char *cond = status == -EBUSY    ? "amqp:resource-locked"
                       : status == -ENOENT ? "amqp:not-found"
                       : status == -EPERM  ? "amqp:unauthorized-access"
                                           : "amqp:internal-error";
    amqp__link_fail(l, cond, "%s: %s", what, strerror(-status));
}

static void declare(amqp__conn *c, amqp__link *l, const char *name, bool durable, bool exclusive, bool auto_delete)
{
    rt_req_queue r = {0};
    char err[160];
    snprintf(r.name, sizeof r.name, "%s", name);
    rt_qargs_init(&r.args);
    r.args.durable = durable;
    r.args.exclusive = exclusive;
    r.args.auto_delete = auto_delete;
    /* The link that creates a queue may give its arguments as properties;
     * what makes it dynamic, exclusive or a subscription stays ours. */
    if (amqp__queue_args(pn_link_remote_properties(l->link), &r.args, err, sizeof err) < 0) {
        amqp__link_fail(l, "amqp:invalid-field", "%s", err);
        return;
    }
    r.args.exclusive = exclusive || (!l->owns_queue && r.args.exclusive);
    if (l->owns_queue) {
        r.args.durable = durable;
        r.args.auto_delete = auto_delete;
    }
    r.owner = r.args.exclusive ? sv_self(c->self) : SV_PID_NONE;
    r.scheduler = SV_SCHED_ON(sv_scheduler_of(c->self));
    l->step = STEP_DECLARE;
    if (amqp__call_manager(c, l, RT_REQ_DECLARE_QUEUE, &r, sizeof r) < 0)
        amqp__link_fail(l, "amqp:internal-error", "cannot reach the routing manager");
}

/* The binding arguments of a headers filter on the source, encoded, or 0
 * bytes if there is none. */
static size_t headers_filter(pn_terminus_t *src, char *out, size_t cap)
{
    pn_data_t *f = pn_terminus_filter(src);
    pn_data_rewind(f);
    if (!pn_data_next(f) || pn_data_type(f) != PN_MAP)
        return 0;
    size_t len = 0;
    pn_data_enter(f);
    while (!len && pn_data_next(f)) { /* key */
        if (!pn_data_next(f) || pn_data_type(f) != PN_DESCRIBED)
            continue;
        pn_data_enter(f);
        pn_data_next(f);
        bool ours = (pn_data_type(f) == PN_ULONG && pn_data_get_ulong(f) == HEADERS_FILTER_CODE) ||
                    (pn_data_type(f) == PN_SYMBOL && pn_data_get_symbol(f).size == strlen(HEADERS_FILTER_SYM) &&
                     !memcmp(pn_data_get_symbol(f).start, HEADERS_FILTER_SYM, strlen(HEADERS_FILTER_SYM)));
        if (ours && pn_data_next(f) && pn_data_type(f) == PN_MAP) {
            pn_data_t *args = pn_data(8);
            pn_data_put_map(args);
            pn_data_enter(args);
            pn_data_enter(f);
            while (pn_data_next(f))
                pn_data_put_atom(args, pn_data_get_atom(f)); /* simple keys and values only */
            pn_data_exit(f);
            pn_data_exit(args);
            ssize_t n = pn_data_encode(args, out, cap);
            len = n > 0 ? (size_t)n : 0;
            pn_data_free(args);
        }
        pn_data_exit(f);
    }
    pn_data_exit(f);
    return len;
}

/* What a link that makes its own queue needs on it, as RabbitMQ's
 * queue.declare, queue.bind and basic.consume do: configure, write (if it
 * is bound), read. */
static bool may_own(amqp__link *l, const char *queue)
{
    return amqp__link_may(l, AMQP_PERM_CONFIGURE, "queue", queue) &&
           (!l->bind_req || amqp__link_may(l, AMQP_PERM_WRITE, "queue", queue)) &&
           amqp__link_may(l, AMQP_PERM_READ, "queue", queue);
}

static void subscribe(amqp__conn *c, amqp__link *l, const amqp_addr *a)
{
    rt_exchange *x = a->name[0] ? rt_exchange_find(a->name) : NULL;
    if (!x) {
        amqp__link_fail(l, "amqp:not-found",
                        a->name[0] ? "no exchange '%s'"
                                   : "%sthe default exchange routes to queues by "
                                     "name: consume from /queues/NAME",
                        a->name);
        return;
    }
    /* Binding from the exchange needs read on it (RabbitMQ's queue.bind). */
    if (!amqp__link_may(l, AMQP_PERM_READ, "exchange", x->name))
        return;
    pn_terminus_t *src = pn_link_remote_source(l->link);
    char args[4096];
    size_t alen = x->type == RT_HEADERS ? headers_filter(src, args, sizeof args) : 0;
    rt_req_bind *b = calloc(1, sizeof *b + alen);
    if (!b) {
        amqp__link_fail(l, "amqp:internal-error", "out of memory");
        return;
    }
    snprintf(b->source, sizeof b->source, "%s", x->name);
    const char *key = a->kind == AMQP_ADDR_EXCHANGE_KEY ? a->key : x->type == RT_TOPIC ? "#" : "";
    snprintf(b->key, sizeof b->key, "%s", key);
    b->args_len = (uint32_t)alen;
    memcpy(b + 1, args, alen);
    l->bind_req = b;
    l->bind_len = sizeof *b + alen;
    /* A durable terminus that never expires is a durable subscription: a
     * queue named after the container and link, which outlives the link. */
    bool durable =
        pn_terminus_get_durability(src) != PN_NONDURABLE && pn_terminus_get_expiry_policy(src) == PN_EXPIRE_NEVER;
    if (durable) {
        char name[RT_NAME_MAX + 1];
        const char *cid = pn_connection_remote_container(c->d.connection);
        snprintf(name, sizeof name, "%s.%s", cid ? cid : "anonymous", pn_link_name(l->link));
        if (may_own(l, name))
            declare(c, l, name, true, false, false);
    } else {
        l->owns_queue = true;
        declare(c, l, "", false, true, true);
    }
}

void amqp__consumer_attach(amqp__conn *c, pn_link_t *link)
{
    amqp__link *l = amqp__link_new(c, link, AMQP__CON);
    if (!l) {
        amqp__link_refuse(link, "amqp:internal-error", "out of memory");
        return;
    }
    l->id = ++c->next_consumer;
    l->presettled = pn_link_remote_snd_settle_mode(link) == PN_SND_SETTLED;
    pn_terminus_t *src = pn_link_remote_source(link);
    if (pn_terminus_is_dynamic(src)) {
        /* The callback queue of request/reply: exclusive to this
         * connection, gone with the link. */
        l->dynamic = l->owns_queue = true;
        declare(c, l, "", false, true, true);
        return;
    }
    const char *addr = pn_terminus_get_address(src);
    amqp_addr a;
    if (!addr) {
        amqp__link_fail(l, "amqp:invalid-field", "a receiving link needs a source address (or a dynamic source)");
        return;
    }
    if (amqp_addr_parse(addr, &a) < 0) {
        amqp__link_fail(l, "amqp:not-found", "no such address '%.200s' (use /queues/NAME or /exchanges/NAME[/KEY])",
                        addr);
        return;
    }
    if (a.kind != AMQP_ADDR_QUEUE) {
        subscribe(c, l, &a);
        return;
    }
    snprintf(l->qname, sizeof l->qname, "%s", a.name);
    if (!amqp__link_may(l, AMQP_PERM_READ, "queue", a.name))
        return;
    rt_queue *q = rt_queue_find(a.name);
    if (q) {
        if (q->args.exclusive && !sv_pid_eq(q->owner, sv_self(c->self)))
            amqp__link_fail(l, "amqp:resource-locked", "queue '%s' is exclusive to another connection", a.name);
        else
            consume_start(c, l);
    } else if (c->cfg->auto_create_queues) {
        if (amqp__link_may(l, AMQP_PERM_CONFIGURE, "queue", a.name))
            declare(c, l, a.name, true, false, false);
    } else {
        amqp__link_fail(l, "amqp:not-found", "no queue '%s'", a.name);
    }
}

/* Deletes a queue made for a link that closed before it could consume. */
static void forget_queue(amqp__conn *c, const char *name)
{
    rt_req_queue r = {0};
    snprintf(r.name, sizeof r.name, "%s", name);
    sv_msg *m = rt_req(RT_REQ_DELETE_QUEUE, &r, sizeof r);
    uint64_t ref;
    if (m && sv_call_async(c->self, rt_manager(), m, 10000, &ref) < 0)
        sv_msg_free(m);
}

void amqp__consumer_reply(amqp__conn *c, amqp__link *l, sv_msg *reply)
{
    if (l->step == STEP_DECLARE && reply->status == 0) {
        const rt_req_queue *r = SV_MSG_AS(reply, rt_req_queue);
        if (r)
            snprintf(l->qname, sizeof l->qname, "%s", r->name);
    }
    if (l->closed) {
        if (l->owns_queue && l->qname[0] && reply->status == 0)
            forget_queue(c, l->qname);
        return;
    }
    if (reply->status < 0) {
        fail_status(l, reply->status, l->step == STEP_BIND ? "cannot bind the subscription" : "cannot use the queue");
        return;
    }
    if (l->step == STEP_DECLARE && l->owns_queue && !may_own(l, l->qname)) {
        /* A server-named queue (amq.gen-...) is checked under the name it
         * was given, as RabbitMQ does; refused, it goes at once. */
        forget_queue(c, l->qname);
        return;
    }
    if (l->step == STEP_DECLARE && l->bind_req) {
        rt_req_bind *b = l->bind_req;
        snprintf(b->dest, sizeof b->dest, "%s", l->qname);
        l->step = STEP_BIND;
        if (amqp__call_manager(c, l, RT_REQ_BIND, b, l->bind_len) < 0)
            amqp__link_fail(l, "amqp:internal-error", "cannot reach the routing manager");
        return;
    }
    l->step = STEP_NONE;
    consume_start(c, l);
}

static void consume_start(amqp__conn *c, amqp__link *l)
{
    pn_link_t *link = l->link;
    rt_queue *q = rt_queue_find(l->qname);
    sv_pid pid = q ? rt_queue_pid(q) : SV_PID_NONE;
    if (sv_pid_is_none(pid)) {
        amqp__link_fail(l, "amqp:internal-error", "queue '%s' is not running", l->qname);
        return;
    }
    pn_terminus_t *src = pn_link_source(link);
    pn_terminus_copy(src, pn_link_remote_source(link));
    if (l->dynamic) {
        char addr[RT_NAME_MAX * 3 + 16];
        pn_terminus_set_address(src, amqp_addr_queue(l->qname, addr, sizeof addr));
    }
    /* Only the headers filter is applied: say so by echoing nothing else. */
    if (!l->bind_req || !((rt_req_bind *)l->bind_req)->args_len)
        pn_data_clear(pn_terminus_filter(src));
    pn_terminus_copy(pn_link_target(link), pn_link_remote_target(link));
    /* The settle modes the client asked for, echoed (clients such as
     * go-amqp refuse a link answered with another). Mixed is sent as
     * unsettled; rcv-settle-mode second is what a consumer gets anyway:
     * the broker settles a delivery once the client's outcome is in, and
     * the client settles after that. */
    pn_link_set_snd_settle_mode(link, pn_link_remote_snd_settle_mode(link));
    pn_link_set_rcv_settle_mode(link, pn_link_remote_rcv_settle_mode(link));
    pn_link_open(link);
    l->attached = true;
    amqp__ref *e = sv_map_put(&c->consumers, 0, l->id);
    if (!e) {
        amqp__link_fail(l, "amqp:internal-error", "out of memory");
        return;
    }
    e->l = l;
    l->qpid = pid;
    int credit = pn_link_credit(link);
    rt_consume rc = {.consumer = l->id, .credit = credit > 0 ? (uint32_t)credit : 0, .presettled = l->presettled};
    sv_msg *m = sv_msg_new(RT_Q_CONSUME, &rc, sizeof rc);
    if (!m) {
        amqp__link_fail(l, "amqp:internal-error", "out of memory");
        return;
    }
    amqp__outbox_push(c, pid, m);
    l->outstanding = rc.credit;
    l->consuming = true;
    /* Seen by the admin API from now until it stops consuming. */
    amqp__reg_con *rg = &l->con_reg;
    pn_session_t *ssn = pn_link_session(link);
    rg->channel = (uint16_t)(uintptr_t)pn_session_get_context(ssn);
    rg->ack_required = !l->presettled;
    rg->exclusive = false; /* AMQP 1.0 has no exclusive consumers */
    snprintf(rg->tag, sizeof rg->tag, "%s", pn_link_name(link));
    memcpy(rg->queue, l->qname, sizeof rg->queue);
    atomic_store_explicit(&rg->credit, rc.credit, memory_order_relaxed);
    amqp__reg_con_add(&c->reg, rg);
    l->owns_queue = false; /* consuming now: an auto-delete queue goes by itself */
}

static void send_credit(amqp__conn *c, amqp__link *l, uint32_t credit, bool drain)
{
    rt_credit cr = {.consumer = l->id, .credit = credit, .drain = drain};
    sv_msg *m = sv_msg_new(RT_Q_CREDIT, &cr, sizeof cr);
    if (m)
        amqp__outbox_push(c, l->qpid, m);
}

void amqp__consumer_flow(amqp__conn *c, amqp__link *l)
{
    if (!l->consuming)
        return; /* the credit goes with RT_Q_CONSUME once the queue is known */
    int credit = pn_link_credit(l->link);
    atomic_store_explicit(&l->con_reg.credit, credit > 0 ? (uint32_t)credit : 0, memory_order_relaxed);
    uint32_t add = credit > (int)l->outstanding ? (uint32_t)credit - l->outstanding : 0;
    bool drain = pn_link_get_drain(l->link) && !l->drain_pending;
    if (!add && !drain)
        return;
    send_credit(c, l, add, drain);
    l->outstanding += add;
    if (drain)
        l->drain_pending = true;
}

static amqp__link *consumer(amqp__conn *c, uint32_t id)
{
    amqp__ref *e = sv_map_get(&c->consumers, 0, id);
    return e && !e->l->closed && e->l->link ? e->l : NULL;
}

/* A delivery waiting to be handed to proton. */
typedef struct amqp__out {
    uint32_t consumer;
    rt_delivery d;
} amqp__out;

void amqp__consumer_deliver(amqp__conn *c, sv_msg *m)
{
    rt_deliver_batch *db = SV_MSG_AS(m, rt_deliver_batch);
    if (!db || m->len < sizeof *db + db->n * sizeof(rt_delivery))
        return;
    if (c->out_len + db->n > c->out_cap) {
        /* Bounded by the credit the connection passed on to queues. */
        uint32_t ncap = c->out_cap ? c->out_cap : 64;
        while (ncap < c->out_len + db->n)
            ncap *= 2;
        amqp__out *nq = malloc(ncap * sizeof *nq);
        if (!nq) {
            for (uint32_t i = 0; i < db->n; i++)
                rt_msg_unref(db->d[i].m); /* unsettled: the queue redelivers them when the link goes */
            sv_log(SV_LOG_ERROR, "connection %s: out of memory; %u deliveries dropped", c->peer, db->n);
            return;
        }
        for (uint32_t i = 0; i < c->out_len; i++)
            nq[i] = c->out[(c->out_head + i) % c->out_cap];
        free(c->out);
        c->out = nq;
        c->out_cap = ncap;
        c->out_head = 0;
    }
    for (uint32_t i = 0; i < db->n; i++) {
        c->out[(c->out_head + c->out_len) % c->out_cap] = (amqp__out){db->consumer, db->d[i]};
        c->out_len++;
        db->d[i].m = NULL; /* the reference moved to the queue of outgoing */
    }
}

void amqp__consumer_feed(amqp__conn *c, size_t budget)
{
    size_t fed = 0;
    while (c->out_len && fed < budget) {
        amqp__out *o = &c->out[c->out_head];
        c->out_head = (c->out_head + 1) % c->out_cap;
        c->out_len--;
        amqp__link *l = consumer(c, o->consumer);
        rt_delivery *d = &o->d;
        if (l) {
            pn_delivery_t *dl = pn_delivery(l->link, pn_dtag((const char *)&d->id, sizeof d->id));
            char hdr[RT_HDR_MAX];
            size_t hlen, off;
            rt_msg_wire(d->m, d->delivery_count, hdr, &hlen, &off);
            if (hlen)
                pn_link_send(l->link, hdr, hlen);
            pn_link_send(l->link, (const char *)d->m->buf.data + off, d->m->buf.len - off);
            pn_link_advance(l->link);
            c->counts.send_cnt++;
            if (l->presettled)
                pn_delivery_settle(dl);
            if (l->outstanding)
                l->outstanding--;
            fed += d->m->buf.len + hlen;
        }
        /* Without a link (it closed) the queue has these back already. */
        rt_msg_unref(d->m);
    }
}

void amqp__consumer_free_out(amqp__conn *c)
{
    while (c->out_len) {
        rt_msg_unref(c->out[c->out_head].d.m);
        c->out_head = (c->out_head + 1) % c->out_cap;
        c->out_len--;
    }
    free(c->out);
    c->out = NULL;
    c->out_cap = 0;
}

void amqp__consumer_drained(amqp__conn *c, sv_msg *m)
{
    rt_credit *cr = SV_MSG_AS(m, rt_credit);
    amqp__link *l = cr ? consumer(c, cr->consumer) : NULL;
    if (!l)
        return;
    l->drain_pending = false;
    l->outstanding = l->outstanding > cr->credit ? l->outstanding - cr->credit : 0;
    /* Everything there was has been sent: use up the rest and echo the flow. */
    pn_link_drained(l->link);
    if (pn_link_get_drain(l->link) && pn_link_credit(l->link) > (int)l->outstanding)
        amqp__consumer_flow(c, l); /* the client asked again meanwhile */
}

void amqp__consumer_gone(amqp__conn *c, sv_msg *m)
{
    rt_credit *cr = SV_MSG_AS(m, rt_credit);
    amqp__link *l = cr ? consumer(c, cr->consumer) : NULL;
    if (!l)
        return;
    l->consuming = false; /* nothing to cancel: the queue has let go */
    sv_map_del(&c->consumers, 0, l->id, NULL);
    if (m->status == -ENOENT)
        amqp__link_fail(l, "amqp:resource-deleted", "queue '%s' was deleted", l->qname);
    else if (m->status == -EBUSY)
        amqp__link_fail(l, "amqp:resource-locked", "queue '%s' is exclusive to another connection", l->qname);
    else
        amqp__link_fail(l, "amqp:internal-error", "queue '%s' stopped (%s); attach again", l->qname,
                        strerror(m->status < 0 ? -m->status : EIO));
}

void amqp__consumer_disposition(amqp__conn *c, amqp__link *l, pn_delivery_t *d)
{
    uint64_t state = pn_delivery_remote_state(d);
    bool settled = pn_delivery_settled(d);
    if (l->presettled) {
        if (settled)
            pn_delivery_settle(d);
        return;
    }
    rt_settle s = {0};
    switch (state) {
    case PN_ACCEPTED: s.outcome = RT_ACCEPTED; break;
    case PN_REJECTED: s.outcome = RT_REJECTED; break;
    case PN_RELEASED: s.outcome = RT_RELEASED; break;
    case PN_MODIFIED:
        s.outcome = RT_MODIFIED;
        s.failed = pn_disposition_is_failed(pn_delivery_remote(d));
        s.elsewhere = pn_disposition_is_undeliverable(pn_delivery_remote(d));
        break;
    default:
        if (!settled)
            return;              /* no outcome yet (e.g. only "received") */
        s.outcome = RT_ACCEPTED; /* settled without an outcome: taken */
        break;
    }
    pn_delivery_tag_t tag = pn_delivery_tag(d);
    if (tag.size != sizeof s.id) {
        pn_delivery_settle(d);
        return;
    }
    memcpy(&s.id, tag.start, sizeof s.id);
    if (l->consuming) {
        rt_settle_batch *sb = amqp__outbox_settle(c, l->qpid);
        if (sb)
            sb->s[sb->n++] = s;
    }
    pn_delivery_settle(d);
}

void amqp__consumer_closed(amqp__conn *c, amqp__link *l)
{
    if (l->consuming) {
        rt_credit cr = {.consumer = l->id};
        sv_msg *m = sv_msg_new(RT_Q_CANCEL, &cr, sizeof cr);
        if (m)
            amqp__outbox_push(c, l->qpid, m);
        l->consuming = false;
        sv_map_del(&c->consumers, 0, l->id, NULL);
        amqp__reg_con_remove(&l->con_reg);
    }
}
