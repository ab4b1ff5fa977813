/* queue.c — a queue: one process holding messages for its consumers.
 *
 * Ready messages sit in a ring (a deque: O(1) at both ends, because
 * released and returned messages go back to the head); messages sent to a
 * consumer and not yet settled sit in a hash map by delivery id. Consumers
 * are served round robin, only against the credit their connection passed
 * on, in batches (one message per consumer per turn, not one per delivery).
 * Publishes arrive in batches; a queue that confirms them (see
 * rt_queue_confirms) answers each batch once, at once or, for persistent
 * messages on a durable queue, once they are on disk. Deliveries, confirms
 * and notices go out with sv_send_owed: the connection asked for each.
 *
 * A durable queue also keeps a log (qlog.c): every change to its
 * persistent messages is recorded at the end of the turn that made it.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "routing/queue_state.h"

#define SLOW_DOWN_READY 4096 /* with consumers attached, a backlog past this paces publishers */
#define MAX_DL_PENDING 65536 /* dead letters waiting for room before they are dropped */

enum { TAG_TTL = 0x52515401, TAG_DL_RETRY, TAG_EXPIRES };

static int64_t now_ms(void) { return (int64_t)sv_now_ms(); }

sv_pid rt_queue_pid(const rt_queue *q)
{
    sv_pid *p = atomic_load_explicit(&((rt_queue *)q)->pid, memory_order_acquire);
    return p ? *p : SV_PID_NONE;
}

/* Publishes the queue process's pid in its directory record. */
static void set_pid(rt_queue *q, sv_pid pid)
{
    sv_pid *p = NULL;
    if (!sv_pid_is_none(pid) && (p = malloc(sizeof *p)))
        *p = pid;
    sv_retire(atomic_exchange(&q->pid, p), free);
}

/* ------------------------------------------------------------------ ring */

static int ring_resize(queue *s, uint32_t ncap)
{
    qent *r = malloc(ncap * sizeof *r);
    if (!r)
        return -ENOMEM;
    for (uint32_t i = 0; i < s->len; i++)
        r[i] = s->ring[(s->head + i) & (s->cap - 1)];
    free(s->ring);
    s->ring = r;
    s->cap = ncap;
    s->head = 0;
    return 0;
}

static int make_room(queue *s) { return s->len < s->cap ? 0 : ring_resize(s, s->cap ? s->cap * 2 : 64); }

static int push_back(queue *s, qent e)
{
    if (make_room(s) < 0)
        return -ENOMEM;
    s->ring[(s->head + s->len) & (s->cap - 1)] = e;
    s->len++;
    s->bytes += e.body;
    return 0;
}

int rt__q_push_back(queue *s, qent e) { return push_back(s, e); }

bool rt__q_remove_ready(queue *s, uint64_t seq, qent *out)
{
    for (uint32_t i = 0; i < s->len; i++) {
        qent *e = &s->ring[(s->head + i) & (s->cap - 1)];
        if (e->seq != seq)
            continue;
        *out = *e;
        for (uint32_t j = i; j + 1 < s->len; j++) /* rare (a failed write): the later ones move up */
            s->ring[(s->head + j) & (s->cap - 1)] = s->ring[(s->head + j + 1) & (s->cap - 1)];
        s->len--;
        s->bytes -= out->body;
        return true;
    }
    return false;
}

static int push_front(queue *s, qent e)
{
    if (make_room(s) < 0)
        return -ENOMEM;
    s->head = (s->head - 1) & (s->cap - 1);
    s->ring[s->head] = e;
    s->len++;
    s->bytes += e.body;
    return 0;
}

static qent *peek(queue *s) { return s->len ? &s->ring[s->head] : NULL; }

static qent pop_front(queue *s)
{
    qent e = s->ring[s->head];
    s->head = (s->head + 1) & (s->cap - 1);
    s->len--;
    s->bytes -= e.body;
    if (s->cap > 64 && s->len * 4 < s->cap)
        ring_resize(s, s->cap / 2); /* a failed shrink keeps the big ring */
    return e;
}

static void publish_stats(queue *s)
{
    rt_queue *q = s->q;
    atomic_store_explicit(&q->ready, s->len, memory_order_relaxed);
    atomic_store_explicit(&q->unacked, s->unacked.n, memory_order_relaxed);
    atomic_store_explicit(&q->bytes, s->bytes, memory_order_relaxed);
    atomic_store_explicit(&q->consumers, s->active, memory_order_relaxed);
    atomic_store_explicit(&q->slow, s->active > 0 && s->len > SLOW_DOWN_READY, memory_order_relaxed);
}

/* ---------------------------------------------------------- dead letters */

static int send_one(sv_pid to, rt_msg *m)
{
    sv_msg *b = sv_msg_new(RT_Q_PUBLISH, NULL, sizeof(rt_pub_batch) + sizeof(rt_pub));
    if (!b)
        return -ENOMEM;
    rt_pub_batch *pb = (rt_pub_batch *)(void *)b->data;
    pb->n = 1;
    pb->p[0].m = m;
    int rc = sv_send(to, b);
    if (rc < 0)
        sv_msg_free(b); /* m stays the caller's */
    return rc;
}

static void dl_retry_later(sv_proc *self, queue *s)
{
    if (s->dl_tref)
        return;
    sv_msg *t = sv_msg_new(TAG_DL_RETRY, NULL, 0);
    if (t && sv_send_after(self, 5, sv_self(self), t, &s->dl_tref) < 0)
        sv_msg_free(t);
}

/* Sends dead letters that waited for room; those still refused wait on. */
static void dl_flush(sv_proc *self, queue *s)
{
    uint32_t kept = 0;
    for (uint32_t i = 0; i < s->ndl; i++) {
        int rc = send_one(s->dl[i].to, s->dl[i].m);
        if (rc == -EAGAIN)
            s->dl[kept++] = s->dl[i];
        else if (rc < 0)
            rt_msg_unref(s->dl[i].m); /* the target queue is gone */
    }
    s->ndl = kept;
    if (kept)
        dl_retry_later(self, s);
}

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A message leaves the queue unconsumed (expired, rejected, dropped): to
 * the dead-letter exchange if there is one, else it is gone. It goes as a
 * copy that records its death (rt_msg_dead: x-opt-deaths, as RabbitMQ 4),
 * under the dead-letter routing key if the queue has one (what a 0-9-1
 * delivery of it says, as in RabbitMQ). Takes m. */
static void dead_letter(sv_proc *self, queue *s, rt_msg *m, rt_death_reason why)
{
    const rt_qargs *a = &s->q->args;
    s->held_delta -= (int64_t)m->buf.len; /* it leaves this queue, wherever it goes */
    rt_exchange *x = a->has_dlx && a->dlx[0] ? rt_exchange_find(a->dlx) : NULL;
    if (!a->has_dlx || (a->dlx[0] && !x)) {
        rt_msg_unref(m); /* no dead-letter exchange (or it is missing): dropped, as in RabbitMQ */
        return;
    }
    const char *key = a->has_dlk ? a->dlk : m->rkey ? m->rkey : s->q->name;
    rt_death death = {.queue = s->q->name,
                      .reason = why,
                      .rkey = m->rkey ? m->rkey : s->q->name,
                      .exchange = a->dlx,
                      .key = key,
                      .now_ms = wall_ms()};
    rt_msg *dead;
    bool recorded = false;
    if (rt_msg_dead(m, &death, &dead) == 0) {
        rt_msg_unref(m);
        m = dead;
        key = m->rkey; /* the old key may have been the old message's */
        recorded = true;
    } else if (a->has_dlk && !(m->rkey && !strcmp(m->rkey, key))) {
        /* Sections that cannot be read (or no memory): it goes on as it
         * is, with no death recorded, but under the dead-letter key: a
         * copy, since m is shared and its key set once. Without memory it
         * keeps its own. */
        rt_msg *c;
        if (rt_msg_new(m->buf.data, m->buf.len, &c) == 0) {
            if (rt_msg_set_rkey(c, key) == 0) {
                rt_msg_unref(m);
                m = c;
            } else {
                rt_msg_unref(c);
            }
        }
    }
    rt_queue *to[16];
    int n = rt_route(x, m, key, to, 16);
    for (int i = 0; i < n && i < 16; i++) {
        if (to[i] == s->q)
            continue; /* never into itself */
        if (recorded && why != RT_DEATH_REJECTED && rt_msg_death_cycle(m, to[i]->name)) {
            /* expired or pushed out all the way round, as RabbitMQ drops it */
            sv_log(SV_LOG_INFO, "queue %s: dead letter dropped: it would cycle back to queue %s with no rejection",
                   s->q->name, to[i]->name);
            continue;
        }
        sv_pid pid = rt_queue_pid(to[i]);
        rt_msg_ref(m);
        int rc = send_one(pid, m);
        if (rc == -EAGAIN && s->ndl < MAX_DL_PENDING) {
            dl_pending *d = realloc(s->dl, (s->ndl + 1) * sizeof *d);
            if (d) {
                s->dl = d;
                s->dl[s->ndl++] = (dl_pending){pid, m};
                dl_retry_later(self, s);
                continue;
            }
        }
        if (rc < 0) {
            if (rc == -EAGAIN)
                sv_log(SV_LOG_WARNING, "queue %s: dead-letter target is full, message dropped", s->q->name);
            rt_msg_unref(m);
        }
    }
    rt_msg_unref(m);
}

/* A ready or unsettled message leaves the queue unconsumed: on record, and
 * to the dead-letter exchange. One on disk only cannot be dead-lettered
 * without reading it back: it is dropped (said once per queue). */
static void drop_entry(sv_proc *self, queue *s, qent e, bool ready, rt_death_reason why)
{
    rt__qlog_gone(s, &e);
    if (ready)
        rt__qlog_ready_mem(s, &e, false);
    if (e.m) {
        dead_letter(self, s, e.m, why);
        return;
    }
    if (s->q->args.has_dlx && !s->warned_paged_dl) {
        s->warned_paged_dl = true;
        sv_log(SV_LOG_WARNING, "queue %s: messages dropped while on disk only are not dead-lettered", s->q->name);
    }
}

/* ------------------------------------------------------------------- TTL */

static void arm_ttl(sv_proc *self, queue *s)
{
    qent *h = peek(s);
    if (!h || !h->expires || (s->ttl_tref && s->ttl_at <= h->expires))
        return;
    if (s->ttl_tref)
        sv_cancel_timer(self, s->ttl_tref);
    s->ttl_tref = 0;
    int64_t wait = h->expires + 1 - now_ms(); /* it lives through its last ms (expire_head) */
    sv_msg *t = sv_msg_new(TAG_TTL, NULL, 0);
    if (!t || sv_send_after(self, wait > 0 ? (uint64_t)wait : 0, sv_self(self), t, &s->ttl_tref) < 0) {
        sv_msg_free(t);
        return;
    }
    s->ttl_at = h->expires;
}

/* Expired messages leave from the head, as in RabbitMQ: one behind a
 * longer-lived message waits for it. A message expires once its expiry ms
 * has passed: one with a TTL of 0 (expires = the ms it came in) goes to a
 * consumer that can take it in the turn it arrives, else it expires, as
 * RabbitMQ does with a TTL of 0. */
static void expire_head(sv_proc *self, queue *s, int64_t now)
{
    qent *h;
    while ((h = peek(s)) && h->expires && h->expires < now)
        drop_entry(self, s, pop_front(s), true, RT_DEATH_EXPIRED);
}

/* When a message published at now expires: the sooner of the queue's
 * x-message-ttl and the header's ttl (0 is a TTL: "now"); 0: never. */
static int64_t expiry_of(const queue *s, const rt_msg *m, int64_t now)
{
    int64_t e = s->q->args.message_ttl >= 0 ? now + s->q->args.message_ttl : 0;
    if (m->has_ttl && (!e || now + (int64_t)m->ttl < e))
        e = now + m->ttl;
    return e;
}

/* ------------------------------------------------------------ deliveries */

static void batch_free(sv_msg *b)
{
    if (!b)
        return;
    rt_deliver_batch *db = (rt_deliver_batch *)(void *)b->data;
    for (uint32_t i = 0; i < db->n; i++)
        rt_msg_unref(db->d[i].m);
    sv_msg_free(b);
}

static void flush_batch(consumer *c)
{
    sv_msg *b = c->batch;
    c->batch = NULL;
    if (b && sv_send_owed(c->conn, b) < 0)
        batch_free(b); /* the connection is gone; its DOWN returns the unsettled */
}

static rt_deliver_batch *batch_of(queue *s, consumer *c)
{
    uint32_t max = s->cfg->queue_max_batch;
    if (c->batch && ((rt_deliver_batch *)(void *)c->batch->data)->n == max)
        flush_batch(c);
    if (!c->batch) {
        c->batch = sv_msg_new(RT_Q_DELIVER, NULL, sizeof(rt_deliver_batch) + max * sizeof(rt_delivery));
        if (!c->batch)
            return NULL;
        ((rt_deliver_batch *)(void *)c->batch->data)->consumer = c->id;
    }
    return (rt_deliver_batch *)(void *)c->batch->data;
}

/* The head is there but not deliverable yet: on disk only and being read
 * back, or its delivery being put on record. A drain waits for it rather
 * than say "nothing" (a 0-9-1 Basic.Get would answer get-empty). */
static bool head_waits_for_log(queue *s)
{
    qent *h = peek(s);
    return h && ((!h->m && h->rlen) || (h->m && !rt__qlog_may_deliver(s, h)));
}

static void send_drained(consumer *c)
{
    rt_credit left = {.consumer = c->id, .credit = c->credit};
    c->credit = 0;
    c->drain_wait = false;
    sv_msg *d = sv_msg_new(RT_Q_DRAINED, &left, sizeof left);
    if (d && sv_send_owed(c->conn, d) < 0)
        sv_msg_free(d);
}

/* Hands ready messages to consumers with credit, round robin; now: the
 * time expiry is judged by (a publish's own, so a TTL of 0 has its turn). */
static void pump_at(sv_proc *self, queue *s, int64_t now)
{
    uint32_t passed = 0; /* consumers passed over in a row */
    expire_head(self, s, now);
    while (s->len && s->ncons && passed < s->ncons) {
        qent *h = peek(s);
        if (!h->m) {
            if (h->rlen)
                break;                                                 /* on disk only: it is being read back */
            drop_entry(self, s, pop_front(s), true, RT_DEATH_EXPIRED); /* could not be read back */
            continue;
        }
        if (!rt__qlog_may_deliver(s, h))
            break; /* its delivery is being put on record */
        s->rr = (s->rr + 1) % s->ncons;
        consumer *c = &s->cons[s->rr];
        if (!c->used || !c->credit || peek(s)->avoid == s->rr + 1) {
            passed++;
            continue;
        }
        rt_deliver_batch *db = batch_of(s, c);
        if (!db)
            break;
        passed = 0;
        qent e = pop_front(s);
        rt__qlog_ready_mem(s, &e, false);
        uint64_t id = ++s->next_id;
        db->d[db->n++] = (rt_delivery){e.m, id, e.dc};
        c->credit--;
        atomic_fetch_add_explicit(&s->q->delivered, 1, memory_order_relaxed);
        unacked *u = c->presettled ? NULL : sv_map_put(&s->unacked, 0, id);
        if (u) {
            u->e = e;
            u->e.m = rt_msg_ref(e.m);
            u->slot = s->rr + 1;
        } else {
            if (!c->presettled)
                sv_log(SV_LOG_WARNING, "queue %s: out of memory tracking a delivery; sent at most once", s->q->name);
            s->held_delta -= (int64_t)e.size; /* at most once: gone now */
            rt__qlog_gone(s, &e);
        }
        expire_head(self, s, now);
    }
    for (uint32_t i = 0; i < s->ncons; i++) {
        flush_batch(&s->cons[i]);
        if (s->cons[i].used && s->cons[i].drain_wait && (!s->cons[i].credit || !head_waits_for_log(s)))
            send_drained(&s->cons[i]);
    }
    arm_ttl(self, s);
    publish_stats(s);
}

static void pump(sv_proc *self, queue *s) { pump_at(self, s, now_ms()); }

/* Puts a message that was out with a consumer back where it stood: ahead
 * of every ready message published after it, behind those returned
 * earlier that were published before it (released one by one, 1 2 3 come
 * back as 1 2 3, not 3 2 1). Returned messages are the ring's first ones,
 * so the walk is over those only. */
static int push_in_order(queue *s, qent e)
{
    if (push_front(s, e) < 0)
        return -ENOMEM;
    uint32_t mask = s->cap - 1;
    for (uint32_t i = 0; i + 1 < s->len; i++) {
        qent *a = &s->ring[(s->head + i) & mask], *b = &s->ring[(s->head + i + 1) & mask];
        if (b->seq >= a->seq)
            break;
        qent t = *a;
        *a = *b;
        *b = t;
    }
    return 0;
}

static void return_entry(queue *s, qent e)
{
    if (push_in_order(s, e) < 0) {
        sv_log(SV_LOG_ERROR, "queue %s: out of memory returning a message; it is lost", s->q->name);
        s->held_delta -= (int64_t)e.size;
        rt__qlog_gone(s, &e);
        rt_msg_unref(e.m);
        return;
    }
    rt__qlog_ready_mem(s, &e, true);
}

static int cmp_seq_desc(const void *a, const void *b)
{
    uint64_t x = ((const qent *)a)->seq, y = ((const qent *)b)->seq;
    return x < y ? 1 : x > y ? -1 : 0;
}

/* Returns slot's unsettled messages to the head in their original order,
 * each counted as delivered once more. */
static void return_unsettled(queue *s, uint32_t slot)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < s->unacked.cap; i++) {
        unacked *u = sv_map_at(&s->unacked, i);
        n += u && u->slot == slot + 1;
    }
    if (!n)
        return;
    uint64_t *ids = malloc(n * sizeof *ids);
    qent *back = malloc(n * sizeof *back);
    if (!ids || !back) {
        free(ids);
        free(back);
        sv_log(SV_LOG_ERROR, "queue %s: out of memory returning %u messages; they stay unsettled", s->q->name, n);
        return;
    }
    uint32_t k = 0;
    for (uint32_t i = 0; i < s->unacked.cap && k < n; i++) {
        unacked *u = sv_map_at(&s->unacked, i);
        if (u && u->slot == slot + 1)
            ids[k++] = u->k2;
    }
    for (uint32_t i = 0; i < n; i++) {
        unacked u;
        sv_map_del(&s->unacked, 0, ids[i], &u);
        back[i] = u.e;
        back[i].dc++;
        back[i].avoid = 0;
        rt__qlog_dcount(s, &back[i]);
    }
    qsort(back, n, sizeof *back, cmp_seq_desc);
    for (uint32_t i = 0; i < n; i++)
        return_entry(s, back[i]);
    free(ids);
    free(back);
}

/* ------------------------------------------------------------- consumers */

static int find_consumer_slot(queue *s, sv_pid conn, uint32_t id)
{
    for (uint32_t i = 0; i < s->ncons; i++)
        if (s->cons[i].used && s->cons[i].id == id && sv_pid_eq(s->cons[i].conn, conn))
            return (int)i;
    return -1;
}

/* Tells a connection its consumer is no more (queue deleted, crashed, or
 * the consumer refused); status says why. */
static void notify_gone(sv_pid conn, uint32_t id, int status)
{
    rt_credit g = {.consumer = id};
    sv_msg *m = sv_msg_new(RT_Q_CONSUMER_GONE, &g, sizeof g);
    if (!m)
        return;
    m->status = status;
    if (sv_send_owed(conn, m) < 0)
        sv_msg_free(m);
}

static void ask_delete(sv_proc *self, queue *s)
{
    if (s->deleting)
        return;
    s->deleting = true;
    rt_req_queue r = {0};
    snprintf(r.name, sizeof r.name, "%s", s->q->name);
    sv_msg *req = rt_req(RT_REQ_DELETE_QUEUE, &r, sizeof r);
    uint64_t ref;
    if (req && sv_call_async(self, rt_manager(), req, -1, &ref) < 0)
        sv_msg_free(req);
}

/* x-expires: a queue unused (no consumers) for that long deletes itself,
 * as RabbitMQ's does; the timer looks again when it fires. */
static void arm_expires(sv_proc *self, queue *s)
{
    if (s->q->args.expires < 0 || s->active || s->exp_tref || s->deleting)
        return;
    int64_t wait = s->last_used + s->q->args.expires - now_ms();
    sv_msg *t = sv_msg_new(TAG_EXPIRES, NULL, 0);
    if (t && sv_send_after(self, wait > 0 ? (uint64_t)wait : 0, sv_self(self), t, &s->exp_tref) < 0)
        sv_msg_free(t);
}

static void on_expires(sv_proc *self, queue *s)
{
    s->exp_tref = 0;
    if (s->active)
        return; /* in use: the last consumer to go arms it again */
    if (now_ms() - s->last_used >= s->q->args.expires) {
        sv_log(SV_LOG_INFO, "queue %s: unused for %lld ms (x-expires); deleted", s->q->name,
               (long long)s->q->args.expires);
        ask_delete(self, s);
        return;
    }
    arm_expires(self, s);
}

static void drop_consumer(sv_proc *self, queue *s, uint32_t slot)
{
    consumer *c = &s->cons[slot];
    batch_free(c->batch);
    c->batch = NULL;
    if (c->mref)
        sv_demonitor(self, c->mref);
    c->used = false;
    if (!c->get)
        s->active--; /* a Basic.Get's was never counted */
    if (c->exclusive)
        atomic_store(&s->q->exclusive_consumer, false);
    return_unsettled(s, slot);
    if (!c->get && !s->active && s->had_consumer && s->q->args.auto_delete)
        ask_delete(self, s);
    s->last_used = now_ms();
    arm_expires(self, s);
}

static void add_consumer(sv_proc *self, queue *s, sv_pid conn, const rt_consume *rc)
{
    if (find_consumer_slot(s, conn, rc->consumer) >= 0)
        return;
    if (s->q->args.exclusive && !sv_pid_eq(s->q->owner, conn)) {
        notify_gone(conn, rc->consumer, -EBUSY);
        return;
    }
    /* A Basic.Get is no consumer for exclusive use (as in RabbitMQ). */
    if (!rc->get && (atomic_load(&s->q->exclusive_consumer) || (rc->exclusive && s->active))) {
        notify_gone(conn, rc->consumer, -EPERM); /* exclusive use */
        return;
    }
    uint32_t slot = 0;
    while (slot < s->ncons && s->cons[slot].used)
        slot++;
    if (slot == s->ncons) {
        consumer *nc = realloc(s->cons, (s->ncons + 1) * sizeof *nc);
        if (!nc) {
            notify_gone(conn, rc->consumer, -ENOMEM);
            return;
        }
        s->cons = nc;
        s->ncons++;
    }
    consumer *c = &s->cons[slot];
    *c = (consumer){.conn = conn,
                    .id = rc->consumer,
                    .credit = rc->credit,
                    .presettled = rc->presettled,
                    .used = true,
                    .exclusive = rc->exclusive && !rc->get,
                    .get = rc->get};
    if (c->exclusive)
        atomic_store(&s->q->exclusive_consumer, true);
    c->mref = sv_monitor(self, conn);
    if (rc->get) {
        /* Not a consumer as RabbitMQ counts them: an auto-delete queue
         * stays after a get, consumer_count and exclusive use ignore it;
         * but a get is a use (x-expires). */
        s->last_used = now_ms();
        return;
    }
    s->active++;
    s->had_consumer = true;
}

/* --------------------------------------------------------------- handlers */

static qent *last_entry(queue *s) { return &s->ring[(s->head + s->len - 1) & (s->cap - 1)]; }

static void pop_back(queue *s)
{
    s->len--;
    s->bytes -= s->ring[(s->head + s->len) & (s->cap - 1)].body;
}

static void on_publish(sv_proc *self, queue *s, sv_msg *m)
{
    rt_pub_batch *pb = SV_MSG_AS(m, rt_pub_batch);
    if (!pb || m->len < sizeof *pb + pb->n * sizeof(rt_pub))
        return;
    sv_msg *cm = NULL;
    rt_confirm_batch *cb = NULL;
    if (pb->confirms && (cm = sv_msg_new(RT_Q_CONFIRM, NULL, sizeof *cb + pb->n * sizeof(rt_confirm))))
        cb = (rt_confirm_batch *)(void *)cm->data;
    const rt_qargs *a = &s->q->args;
    int64_t now = now_ms();
    for (uint32_t i = 0; i < pb->n; i++) {
        rt_msg *msg = pb->p[i].m;
        pb->p[i].m = NULL; /* taken: the batch's references are ours now */
        uint8_t outcome = RT_ACCEPTED, why = RT_WHY_NONE;
        bool full = (a->max_length >= 0 && s->len >= (uint64_t)a->max_length) ||
                    (a->max_length_bytes >= 0 && s->bytes + msg->body_len > (uint64_t)a->max_length_bytes);
        qent e = {.m = msg,
                  .seq = s->next_seq + 1,
                  .expires = expiry_of(s, msg, now),
                  .dc = msg->delivery_count,
                  .size = (uint32_t)msg->buf.len,
                  .body = msg->body_len};
        int logged = 0;
        if ((full && a->overflow == RT_REJECT_PUBLISH) || push_back(s, e) < 0) {
            outcome = RT_REJECTED;
            why = RT_WHY_FULL;
            rt_msg_unref(msg);
        } else if ((logged = rt__qlog_publish(s, last_entry(s), m->from, pb->p[i].tag, pb->p[i].confirm)) < 0) {
            pop_back(s); /* the log cannot take it: refused */
            outcome = RT_REJECTED;
            why = RT_WHY_STORE;
            rt_msg_unref(msg);
        } else {
            s->next_seq++;
            if (last_entry(s)->m)
                s->held_delta += (int64_t)e.size; /* else only its record stays */
            atomic_fetch_add_explicit(&s->q->published, 1, memory_order_relaxed);
            /* drop-head: the oldest make room for the newest. */
            while ((a->max_length >= 0 && s->len > (uint64_t)a->max_length) ||
                   (a->max_length_bytes >= 0 && s->bytes > (uint64_t)a->max_length_bytes && s->len))
                drop_entry(self, s, pop_front(s), true, RT_DEATH_MAXLEN);
        }
        if (cb && pb->p[i].confirm && logged != 1) /* 1: confirmed once it is on disk */
            cb->c[cb->n++] = (rt_confirm){pb->p[i].tag, outcome, why};
    }
    if (cm && cb->n) {
        if (sv_send_owed(m->from, cm) < 0)
            sv_msg_free(cm);
    } else {
        sv_msg_free(cm);
    }
    pump_at(self, s, now); /* the publish's time: a TTL of 0 meets the consumers first */
}

void rt__q_send_confirms(queue *s, const qconf *c, uint32_t n, uint8_t outcome, uint8_t why)
{
    (void)s;
    /* one batch per run of the same publisher (they come in runs) */
    for (uint32_t i = 0; i < n;) {
        uint32_t j = i;
        while (j < n && sv_pid_eq(c[j].to, c[i].to))
            j++;
        sv_msg *cm = sv_msg_new(RT_Q_CONFIRM, NULL, sizeof(rt_confirm_batch) + (j - i) * sizeof(rt_confirm));
        if (cm) {
            rt_confirm_batch *cb = (rt_confirm_batch *)(void *)cm->data;
            for (uint32_t k = i; k < j; k++)
                cb->c[cb->n++] = (rt_confirm){c[k].tag, outcome, why};
            if (sv_send_owed(c[i].to, cm) < 0)
                sv_msg_free(cm);
        }
        i = j;
    }
}

/* What a message the queue never handled carries: message references, and
 * confirms its publisher waits for ("released": not taken, try again). A
 * consumer it never added hears the queue is gone, as those it had do:
 * a connection waits for a Basic.Get's answer, which would never come. */
static void discard(sv_msg *m)
{
    if (m->tag == RT_Q_CONSUME && m->len >= sizeof(rt_consume)) {
        notify_gone(m->from, ((rt_consume *)(void *)m->data)->consumer, -ENOENT);
    } else if (m->tag == RT__S_LOADED && m->len >= sizeof(rt__s_loaded)) {
        rt__s_loaded *c = (rt__s_loaded *)(void *)m->data;
        for (uint32_t i = 0; !c->last && i < c->n && m->len >= sizeof *c + (size_t)c->n * sizeof(rt__lent); i++)
            rt_msg_unref(c->e[i].m);
    } else if (m->tag == RT__S_READ_DONE && m->len >= sizeof(rt__s_read)) {
        rt__s_read *r = (rt__s_read *)(void *)m->data;
        for (uint32_t i = 0; i < r->n && m->len >= sizeof *r + (size_t)r->n * sizeof(rt__rent); i++)
            rt_msg_unref(r->e[i].m);
    } else if (m->tag == RT__S_SYNCED && m->len >= sizeof(rt__s_synced)) {
        rt__s_synced *y = (rt__s_synced *)(void *)m->data;
        for (uint32_t i = 0; i < y->n && m->len >= sizeof *y + (size_t)y->n * sizeof(rt__back); i++)
            rt_msg_unref(y->back[i].m);
    } else if (m->tag == RT_Q_PUBLISH && m->len >= sizeof(rt_pub_batch)) {
        rt_pub_batch *pb = (rt_pub_batch *)(void *)m->data;
        if (m->len >= sizeof *pb + pb->n * sizeof(rt_pub)) {
            sv_msg *cm = pb->confirms
                             ? sv_msg_new(RT_Q_CONFIRM, NULL, sizeof(rt_confirm_batch) + pb->n * sizeof(rt_confirm))
                             : NULL;
            rt_confirm_batch *cb = cm ? (rt_confirm_batch *)(void *)cm->data : NULL;
            for (uint32_t i = 0; i < pb->n; i++) {
                rt_msg_unref(pb->p[i].m);
                if (cb && pb->p[i].confirm)
                    cb->c[cb->n++] = (rt_confirm){pb->p[i].tag, RT_RELEASED, RT_WHY_NONE};
            }
            if (cm) {
                if (sv_send_owed(m->from, cm) < 0)
                    sv_msg_free(cm);
            }
        }
    }
}

void rt__q_drop_msg(queue *s, sv_msg *m)
{
    (void)s;
    discard(m);
    sv_msg_free(m);
}

static void on_settle(sv_proc *self, queue *s, sv_msg *m)
{
    rt_settle_batch *sb = SV_MSG_AS(m, rt_settle_batch);
    if (!sb || m->len < sizeof *sb + sb->n * sizeof(rt_settle))
        return;
    for (uint32_t i = 0; i < sb->n; i++) {
        const rt_settle *st = &sb->s[i];
        unacked u;
        if (!sv_map_del(&s->unacked, 0, st->id, &u))
            continue; /* already returned (its consumer left) or settled twice */
        switch (st->outcome) {
        case RT_ACCEPTED:
            s->held_delta -= (int64_t)u.e.size;
            rt__qlog_gone(s, &u.e);
            rt_msg_unref(u.e.m);
            atomic_fetch_add_explicit(&s->q->acked, 1, memory_order_relaxed);
            break;
        case RT_RELEASED:
            return_entry(s, u.e); /* unchanged */
            break;
        case RT_MODIFIED:
            if (st->failed) {
                u.e.dc++;
                rt__qlog_dcount(s, &u.e);
            }
            if (st->elsewhere)
                u.e.avoid = u.slot;
            return_entry(s, u.e);
            break;
        default: /* rejected */ drop_entry(self, s, u.e, false, RT_DEATH_REJECTED); break;
        }
    }
    pump(self, s);
}

static void on_credit(sv_proc *self, queue *s, sv_msg *m)
{
    rt_credit *cr = SV_MSG_AS(m, rt_credit);
    int slot = cr ? find_consumer_slot(s, m->from, cr->consumer) : -1;
    if (slot < 0)
        return;
    s->cons[slot].credit += cr->credit;
    pump(self, s);
    if (cr->drain) {
        /* Everything there is has gone out; the rest of the credit is used
         * up and the connection echoes the flow (pn_link_drained). */
        consumer *c = &s->cons[slot];
        if (c->credit && head_waits_for_log(s))
            c->drain_wait = true; /* pump answers once the head can go */
        else
            send_drained(c);
    }
}

static int queue_handle(sv_proc *self, queue *s, sv_msg *m);

static void answer_count(sv_from to, queue *s)
{
    rt_qcount n = {s->len, s->active};
    sv_reply_data(to, &n, sizeof n);
}

static int queue_info(sv_proc *self, sv_msg *m)
{
    queue *s = sv_state(self);
    int rc = 0;
    if (!rt__qlog_defer(self, s, m) && !rt__qlog_handle(self, s, m))
        rc = queue_handle(self, s, m);
    if (s->ncount_waiters && !s->log.loading) { /* its log is read back: the counts are whole */
        publish_stats(s);
        for (uint32_t i = 0; i < s->ncount_waiters; i++)
            answer_count(s->count_waiters[i], s);
        free(s->count_waiters);
        s->count_waiters = NULL;
        s->ncount_waiters = 0;
    }
    rt__qlog_flush(self, s); /* the turn's records go to disk */
    rt__held_add(s->held_delta);
    s->held_delta = 0;
    return rc;
}

int rt__q_handle(sv_proc *self, queue *s, sv_msg *m) { return queue_handle(self, s, m); }
void rt__q_pump(sv_proc *self, queue *s) { pump(self, s); }

static int queue_handle(sv_proc *self, queue *s, sv_msg *m)
{
    switch (m->tag) {
    case RT_Q_PUBLISH: on_publish(self, s, m); return 0;
    case RT_Q_SETTLE: on_settle(self, s, m); return 0;
    case RT_Q_CREDIT: on_credit(self, s, m); return 0;
    case RT_Q_CONSUME: {
        rt_consume *rc = SV_MSG_AS(m, rt_consume);
        if (rc) {
            add_consumer(self, s, m->from, rc);
            pump(self, s);
        }
        return 0;
    }
    case RT_Q_CANCEL: {
        rt_credit *cr = SV_MSG_AS(m, rt_credit);
        int slot = cr ? find_consumer_slot(s, m->from, cr->consumer) : -1;
        if (slot >= 0) {
            drop_consumer(self, s, (uint32_t)slot);
            pump(self, s);
        }
        return 0;
    }
    case TAG_TTL:
        s->ttl_tref = 0;
        pump(self, s); /* expires the head, hands out the rest, re-arms */
        return 0;
    case TAG_DL_RETRY:
        s->dl_tref = 0;
        dl_flush(self, s);
        return 0;
    case TAG_EXPIRES: on_expires(self, s); return 0;
    case RT_Q_TOUCH: s->last_used = now_ms(); return 0;
    }
    if (m->kind == SV_MSG_DOWN) {
        for (uint32_t i = 0; i < s->ncons; i++)
            if (s->cons[i].used && s->cons[i].mref == m->ref) {
                s->cons[i].mref = 0; /* already gone */
                drop_consumer(self, s, i);
            }
        pump(self, s);
    }
    return 0;
}

/* Purge (the admin API): the ready messages go, without dead-lettering,
 * as in RabbitMQ; unsettled ones stay with their consumers. */
static int queue_call(sv_proc *self, sv_msg *req)
{
    queue *s = sv_state(self);
    if (req->tag == RT_Q_COUNT) {
        /* Counts a client sees (Queue.Declare-Ok): once the log is read
         * back, not the part of it loaded so far. Waiters are bounded. */
        sv_from *w = NULL;
        if (!s->log.loading) {
            answer_count(sv_from_of(req), s);
        } else if (s->ncount_waiters < 1024 && (w = realloc(s->count_waiters, (s->ncount_waiters + 1) * sizeof *w))) {
            s->count_waiters = w;
            s->count_waiters[s->ncount_waiters++] = sv_from_of(req);
        } else {
            sv_reply_error(sv_from_of(req), -EAGAIN);
        }
        return 0;
    }
    if (req->tag != RT_Q_PURGE) {
        sv_reply_error(sv_from_of(req), -ENOTSUP);
        return 0;
    }
    if (s->log.loading) {
        sv_reply_error(sv_from_of(req), -EAGAIN); /* its log is still being read back */
        return 0;
    }
    uint64_t n = s->len;
    while (s->len) {
        qent e = pop_front(s);
        rt__qlog_gone(s, &e); /* settled on record: a restart does not bring it back */
        rt__qlog_ready_mem(s, &e, false);
        if (e.m) { /* else it was on disk only */
            s->held_delta -= (int64_t)e.m->buf.len;
            rt_msg_unref(e.m);
        }
    }
    rt__qlog_flush(self, s);
    rt__held_add(s->held_delta);
    s->held_delta = 0;
    publish_stats(s);
    sv_reply_data(sv_from_of(req), &n, sizeof n);
    return 0;
}

static int queue_init(sv_proc *self, void *arg)
{
    queue *s = calloc(1, sizeof *s);
    if (!s)
        return -ENOMEM;
    s->q = arg;
    s->cfg = rt__config();
    s->unacked = SV_MAP_INIT(unacked);
    sv_set_state(self, s);
    sv_set_label(self, s->q->name);
    atomic_fetch_add(&s->q->refs, 1);               /* dropped in terminate */
    atomic_store(&s->q->exclusive_consumer, false); /* consumers do not outlive a restart */
    atomic_store(&s->q->loading, false);            /* until its log says otherwise */
    int rc = rt__qlog_init(self, s);                /* a durable queue reads its log back first */
    if (rc < 0)
        sv_log(SV_LOG_ERROR, "queue %s: its log cannot be opened (%s); it works in memory only", s->q->name,
               strerror(-rc));
    set_pid(s->q, sv_self(self));
    publish_stats(s);
    s->last_used = now_ms();
    arm_expires(self, s);
    /* A fresh durable queue is declared once its log (queue.meta) is on
     * disk: a declare-ok then survives a crash. One found again at boot,
     * or restarted after a crash, has its log already. */
    s->init_waits = s->q->fresh && s->log.on;
    s->q->fresh = false;
    return s->init_waits ? SV_INIT_DEFER : 0;
}

static void queue_terminate(sv_proc *self, int reason)
{
    queue *s = sv_state(self);
    set_pid(s->q, SV_PID_NONE);
    for (uint32_t i = 0; i < s->ncount_waiters; i++)
        sv_reply_error(s->count_waiters[i], -ENOENT);
    free(s->count_waiters);
    int why = reason == SV_SHUTDOWN || reason == SV_NORMAL ? -ENOENT : reason < 0 ? reason : -ECONNABORTED;
    for (uint32_t i = 0; i < s->ncons; i++) {
        consumer *c = &s->cons[i];
        if (!c->used)
            continue;
        batch_free(c->batch);
        notify_gone(c->conn, c->id, why);
    }
    rt__qlog_close(s); /* what the turn logged goes to disk; the log stays for a restart */
    int64_t gone = 0;
    while (s->len) {
        qent e = pop_front(s);
        gone += e.m ? (int64_t)e.size : 0;
        rt_msg_unref(e.m);
    }
    for (uint32_t i = 0; i < s->unacked.cap; i++) {
        unacked *u = sv_map_at(&s->unacked, i);
        if (u) {
            gone += (int64_t)u->e.size;
            rt_msg_unref(u->e.m);
        }
    }
    rt__held_add(s->held_delta - gone);
    sv_map_free(&s->unacked);
    for (uint32_t i = 0; i < s->ndl; i++)
        rt_msg_unref(s->dl[i].m);
    free(s->dl);
    free(s->ring);
    free(s->cons);
    s->len = 0;
    s->bytes = 0;
    s->active = 0;
    publish_stats(s);
    rt__queue_unref(s->q);
    free(s);
}

const sv_server_ops rt__queue_ops = {
    .name = "queue",
    .init = queue_init,
    .handle_call = queue_call,
    .handle_info = queue_info,
    .terminate = queue_terminate,
    .discard = discard,
};

void rt__queue_unref(rt_queue *q)
{
    if (atomic_fetch_sub(&q->refs, 1) == 1)
        sv_retire(q, rt__queue_free);
}

void rt__queue_free(void *p)
{
    rt_queue *q = p;
    free(atomic_load(&q->pid));
    free(q->name);
    free(q);
}
