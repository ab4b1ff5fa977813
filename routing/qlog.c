/* qlog.c — a durable queue's side of its log.
 *
 * The queue decides what goes into its log and where; its store thread
 * (store.c) only writes, syncs, reads and deletes. Every persistent message
 * on a durable queue gets a MSG record; a message that leaves the queue for
 * good gets an ACK; one that comes back with a higher delivery count, a
 * DCOUNT. The records of a turn go to the store in one write at the turn's
 * end; publishers' confirms wait until the store says it is on disk.
 *
 * Segments. The queue appends to one segment at a time and counts, per
 * segment, the messages whose latest record is there. Segments are deleted
 * oldest first, once nothing in them is live: an ACK in a later segment may
 * be all that says a message in an earlier one is gone, so a segment never
 * goes before those older than it. When old segments linger for a few live
 * messages (a consumer that holds one message for hours), those messages
 * are written again at the tail and the old segment goes (compaction).
 *
 * Deliveries on record. After a crash, a message that was out with a
 * consumer must come back marked as delivered before (delivery-count + 1),
 * or a duplicate would look new. Logging each delivery would cost a write
 * per message, so the queue logs a MARK instead: "messages up to seq N may
 * have been delivered", kept a few thousand seqs ahead of the deliveries
 * and written (synced) before any delivery passes it. Recovery counts one
 * more delivery for messages at or below the last mark: for most of them
 * that is exact, for a few it counts once too often, never too few. Every
 * segment starts with a MARK, so the last one survives segment deletion.
 *
 * Memory window. A durable queue keeps at most `queue_window` bytes of its
 * ready persistent messages in memory; beyond that only their records'
 * places (48 bytes each), and it reads messages back, in order, as the
 * head comes near them.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "routing/queue_state.h"

#define MARK_LEASE 4096       /* seqs a MARK runs ahead of the deliveries */
#define READ_BATCH 1024       /* messages per read-back */
#define RETRY_MS 1000         /* after a failed write, before trying again */
#define COMPACT_SEGS 4        /* segments behind the oldest live one before compaction */
#define COMPACT_MAX_LIVE 1024 /* live messages an old segment may have to be compacted */
#define MAX_RECORD (1u << 30) /* bigger messages are not logged (refused if persistent) */

static int64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t to_wall(int64_t mono) { return mono ? mono - (int64_t)sv_now_ms() + wall_ms() : 0; }
static int64_t to_mono(int64_t wall)
{
    if (!wall)
        return 0;
    int64_t m = wall - wall_ms() + (int64_t)sv_now_ms();
    return m > 0 ? m : 1; /* expired while we were down: due at once */
}

/* ------------------------------------------------------------ segments */

static qseg *seg_find(qlog *l, uint32_t no)
{
    uint32_t lo = 0, hi = l->nsegs;
    while (lo < hi) {
        uint32_t mid = (lo + hi) / 2;
        if (l->segs[mid].no < no)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < l->nsegs && l->segs[lo].no == no ? &l->segs[lo] : NULL;
}

/* A message's latest record joins (+1) or leaves (-1) segment no. */
static void seg_live(qlog *l, uint32_t no, int delta, uint32_t rlen)
{
    qseg *g = seg_find(l, no);
    if (!g)
        return;
    g->live = (uint32_t)((int64_t)g->live + delta);
    g->live_bytes = delta > 0 ? g->live_bytes + rlen : g->live_bytes - (g->live_bytes >= rlen ? rlen : g->live_bytes);
}

static rt__wop *new_op(qlog *l)
{
    if (sv_grow((void **)&l->ops, &l->capops, l->nops + 1, sizeof *l->ops) < 0)
        return NULL;
    rt__wop *o = &l->ops[l->nops++];
    memset(o, 0, sizeof *o);
    return o;
}

static int place_raw(qlog *l, uint32_t size, uint32_t *seg, uint32_t *off);

/* Room for a record of size bytes: where it goes (a new segment if the
 * tail is full; each starts with a MARK). -ENOMEM leaves nothing half done. */
static int place(queue *s, uint32_t size, uint32_t *seg, uint32_t *off)
{
    qlog *l = &s->log;
    if (l->tail_seg && !(l->tail_off + (uint64_t)size > l->seg_size && l->tail_off > RT__SEG_HDR))
        return place_raw(l, size, seg, off);
    if (sv_grow((void **)&l->segs, &l->capsegs, l->nsegs + 1, sizeof *l->segs) < 0 ||
        sv_grow((void **)&l->ops, &l->capops, l->nops + 2, sizeof *l->ops) < 0)
        return -ENOMEM;
    uint32_t no = l->next_seg++;
    rt__wop *o = new_op(l);
    o->type = 0;
    o->seg = no;
    l->segs[l->nsegs++] = (qseg){no, 0, 0};
    l->tail_seg = no;
    l->tail_off = RT__SEG_HDR;
    rt__wop *mk = new_op(l);
    mk->type = RT__REC_MARK;
    mk->seg = no;
    mk->off = l->tail_off;
    mk->mark = l->mark_asked;
    mk->next_seq = s->next_seq + 1;
    l->tail_off += (uint32_t)rt__rec_mark_size();
    return place_raw(l, size, seg, off);
}

static int place_raw(qlog *l, uint32_t size, uint32_t *seg, uint32_t *off)
{
    *seg = l->tail_seg;
    *off = l->tail_off;
    l->tail_off += size;
    return 0;
}

/* ------------------------------------------------------------- records */

static int log_msg(queue *s, qent *e, rt_msg *m)
{
    qlog *l = &s->log;
    size_t rkey = m->rkey ? strlen(m->rkey) : 0;
    size_t size = rt__rec_msg_size(rkey, m->buf.len);
    if (size > MAX_RECORD)
        return -EFBIG;
    uint32_t seg, off;
    if (sv_grow((void **)&l->ops, &l->capops, l->nops + 3, sizeof *l->ops) < 0 ||
        place(s, (uint32_t)size, &seg, &off) < 0)
        return -ENOMEM;
    rt__wop *o = new_op(l); /* room was made above */
    o->type = RT__REC_MSG;
    o->seg = seg;
    o->off = off;
    o->seq = e->seq;
    o->dc = e->dc;
    o->expires = to_wall(e->expires);
    o->m = rt_msg_ref(m);
    e->seg = seg;
    e->off = off;
    e->rlen = (uint32_t)size;
    seg_live(l, seg, +1, e->rlen);
    return 0;
}

static void log_small(queue *s, uint8_t type, uint64_t seq, uint32_t dc, uint64_t mark)
{
    qlog *l = &s->log;
    size_t size = type == RT__REC_DCOUNT ? rt__rec_dcount_size() : rt__rec_mark_size();
    uint32_t seg, off;
    if (sv_grow((void **)&l->ops, &l->capops, l->nops + 3, sizeof *l->ops) < 0 ||
        place(s, (uint32_t)size, &seg, &off) < 0) {
        sv_log(SV_LOG_WARNING, "queue %s: out of memory logging a record", s->q->name);
        return;
    }
    rt__wop *o = new_op(l);
    o->type = type;
    o->seg = seg;
    o->off = off;
    o->seq = seq;
    o->dc = dc;
    o->mark = mark;
    o->next_seq = s->next_seq + 1;
}

/* ------------------------------------------------------------- public */

static void meta_text(const queue *s, char *buf, size_t len)
{
    const rt_qargs *a = &s->q->args;
    /* One line of JSON: what the manager needs to declare it again. */
    int n = snprintf(buf, len, "{\"name\":\"");
    for (const char *p = s->q->name; *p && (size_t)n + 8 < len; p++) {
        unsigned char c = (unsigned char)*p;
        if (c == '"' || c == '\\')
            n += snprintf(buf + n, len - (size_t)n, "\\%c", c);
        else if (c < 0x20)
            n += snprintf(buf + n, len - (size_t)n, "\\u%04x", c);
        else
            buf[n++] = (char)c;
    }
    snprintf(buf + n, len - (size_t)n,
             "\",\"auto_delete\":%s,\"x-max-length\":%lld,\"x-max-length-bytes\":%lld,"
             "\"x-overflow\":\"%s\",\"x-message-ttl\":%lld,\"x-expires\":%lld%s%s%s%s%s%s}\n",
             a->auto_delete ? "true" : "false", (long long)a->max_length, (long long)a->max_length_bytes,
             a->overflow == RT_REJECT_PUBLISH ? "reject-publish" : "drop-head", (long long)a->message_ttl,
             (long long)a->expires, a->has_dlx ? ",\"x-dead-letter-exchange\":\"" : "", a->has_dlx ? a->dlx : "",
             a->has_dlx ? "\"" : "", a->has_dlk ? ",\"x-dead-letter-routing-key\":\"" : "", a->has_dlk ? a->dlk : "",
             a->has_dlk ? "\"" : "");
}

int rt__qlog_init(sv_proc *self, queue *s)
{
    qlog *l = &s->log;
    (void)self;
    const rt_qargs *a = &s->q->args;
    if (!a->durable || a->exclusive)
        return 0;
    l->store = rt__store_pid(s->q->name);
    if (sv_pid_is_none(l->store))
        return 0; /* no data directory: in memory only (logged once, at start) */
    char dir[4096];
    int rc = rt__queue_dir(s->q->name, dir, sizeof dir);
    if (rc < 0)
        return rc;
    l->slog = rt__slog_new(dir);
    char meta[1400];
    meta_text(s, meta, sizeof meta);
    size_t mlen = strlen(meta);
    sv_msg *req = l->slog ? sv_msg_new(RT__S_LOAD, NULL, sizeof(rt__s_load) + mlen) : NULL;
    if (!req) {
        rt__slog_free_unused(l->slog);
        l->slog = NULL;
        return -ENOMEM;
    }
    rt__s_load *ld = (rt__s_load *)(void *)req->data;
    ld->log = l->slog;
    ld->window = s->cfg->queue_window;
    ld->meta_len = (uint32_t)mlen;
    memcpy(ld->meta, meta, mlen);
    if ((rc = rt__store_send(l->store, req)) < 0) {
        sv_msg_free(req);
        rt__slog_free_unused(l->slog);
        l->slog = NULL;
        return rc;
    }
    l->on = true;
    l->loading = true;
    atomic_store(&s->q->loading, true);
    l->seg_size = s->cfg->segment_size ? s->cfg->segment_size : 16u << 20;
    l->window = s->cfg->queue_window;
    l->next_seg = 1;
    return 0;
}

bool rt__qlog_defer(sv_proc *self, queue *s, sv_msg *m)
{
    qlog *l = &s->log;
    if (!l->loading || m->tag == RT__S_LOADED || m->tag == RT__S_SYNCED || m->tag == RT__S_READ_DONE)
        return false;
    sv_hold(self, m); /* still counted in the mailbox bound: publishers meet it while the log loads */
    m->next = NULL;
    if (l->deferred_tail)
        l->deferred_tail->next = m;
    else
        l->deferred = m;
    l->deferred_tail = m;
    return true;
}

/* A chunk of the recovered log: its messages join the queue in order. */
static void on_loaded(sv_proc *self, queue *s, sv_msg *m)
{
    qlog *l = &s->log;
    rt__s_loaded *c = SV_MSG_AS(m, rt__s_loaded);
    if (!c || !l->loading)
        return;
    if (!c->last) {
        if (m->len < sizeof *c + (size_t)c->n * sizeof(rt__lent))
            return;
        for (uint32_t i = 0; i < c->n; i++) {
            rt__lent *le = &c->e[i];
            qent e = {.m = le->m,
                      .seq = le->seq,
                      .expires = to_mono(le->expires),
                      .dc = le->dc,
                      .size = le->size,
                      .body = le->m ? le->m->body_len : le->size, /* on disk only: counted whole */
                      .seg = le->seg,
                      .off = (uint32_t)le->off,
                      .rlen = le->len};
            le->m = NULL;
            if (rt__q_push_back(s, e) < 0) {
                sv_log(SV_LOG_ERROR, "queue %s: out of memory loading its log; message %llu stays on disk", s->q->name,
                       (unsigned long long)e.seq);
                rt_msg_unref(e.m);
                continue;
            }
            if (e.m) {
                s->held_delta += e.size;
                l->mem_ready += e.size;
            } else {
                l->npaged++;
            }
        }
        return;
    }
    /* the end: segments, where seqs go on, and the work that waited */
    l->loading = false;
    atomic_store(&s->q->loading, false);
    if (s->init_waits) { /* a fresh durable queue: declared now, or not at all */
        s->init_waits = false;
        sv_init_ack(self, c->status < 0 ? c->status : 0);
        if (c->status < 0)
            return;
    }
    if (c->status < 0) {
        sv_log(SV_LOG_ERROR, "queue %s: its log could not be read (%s); it works in memory only", s->q->name,
               strerror(-c->status));
        l->on = false; /* CLOSE still goes to the store: it has the log */
    } else {
        uint32_t *segs = (uint32_t *)(void *)c->e;
        if (m->len >= sizeof *c + (size_t)c->nsegs * sizeof(uint32_t) &&
            sv_grow((void **)&l->segs, &l->capsegs, c->nsegs, sizeof *l->segs) == 0) {
            for (uint32_t i = 0; i < c->nsegs; i++)
                l->segs[i] = (qseg){segs[i], 0, 0};
            l->nsegs = c->nsegs;
            if (c->nsegs)
                l->next_seg = segs[c->nsegs - 1] + 1;
        }
        for (uint32_t i = 0; i < s->len; i++) {
            qent *e = &s->ring[(s->head + i) & (s->cap - 1)];
            if (e->seg)
                seg_live(l, e->seg, +1, e->rlen);
        }
        if (c->next_seq > s->next_seq)
            s->next_seq = c->next_seq - 1; /* the queue hands out ++next_seq */
        l->corrupt = c->corrupt;
        atomic_store(&s->q->corrupt, c->corrupt);
        /* New records go to a new segment (whose opening MARK still says
         * the old mark): first the counts recovery gave, then a MARK of
         * nothing delivered yet, so the next recovery adds none again. */
        l->mark_asked = c->mark;
        l->tail_seg = 0;
        for (uint32_t i = 0; i < s->len; i++) {
            qent *e = &s->ring[(s->head + i) & (s->cap - 1)];
            if (e->seg && e->seq <= c->mark)
                log_small(s, RT__REC_DCOUNT, e->seq, e->dc, 0);
        }
        l->mark_asked = l->mark_durable = 0;
        log_small(s, RT__REC_MARK, 0, 0, 0);
        l->want_sync = true;
        if (s->len)
            sv_log(SV_LOG_INFO, "queue %s: %u messages recovered from its log", s->q->name, s->len);
    }
    /* what arrived meanwhile, in order */
    sv_msg *d = l->deferred;
    l->deferred = l->deferred_tail = NULL;
    while (d) {
        sv_msg *next = d->next;
        d->next = NULL;
        sv_unhold(self, d);
        rt__q_handle(self, s, d);
        sv_msg_free(d);
        d = next;
    }
    rt__q_pump(self, s);
}

/* A message whose record did not reach the disk. Its publisher hears
 * "rejected", so a ready one leaves the queue; one already with a
 * consumer stays there, in memory only. back is the write's reference. */
static void unlog(queue *s, uint64_t seq, rt_msg *back)
{
    qlog *l = &s->log;
    rt_msg_unref(back);
    qent e;
    if (rt__q_remove_ready(s, seq, &e)) {
        if (e.seg)
            seg_live(l, e.seg, -1, e.rlen);
        if (e.m) {
            s->held_delta -= e.size;
            if (e.seg)
                l->mem_ready -= l->mem_ready >= e.size ? e.size : l->mem_ready;
            rt_msg_unref(e.m);
        } else if (e.rlen) {
            l->npaged--;
        }
        return;
    }
    for (uint32_t i = 0; i < s->unacked.cap; i++) {
        unacked *u = sv_map_at(&s->unacked, i);
        if (u && u->e.seq == seq && u->e.seg) {
            seg_live(l, u->e.seg, -1, u->e.rlen);
            u->e.seg = 0;
        }
    }
}

static void on_synced(sv_proc *self, queue *s, sv_msg *m)
{
    qlog *l = &s->log;
    rt__s_synced *y = SV_MSG_AS(m, rt__s_synced);
    if (!y)
        return;
    if (y->status < 0) {
        /* Not on disk: its messages stay, in memory only (they may already
         * be with consumers); writing resumes on a new segment a little
         * later. (A write nobody waits for is answered too, when it fails.) */
        if (!l->failed)
            sv_log(SV_LOG_ERROR, "queue %s: its log cannot be written (%s); persistent messages are refused",
                   s->q->name, strerror(-y->status));
        l->failed = true;
        l->reset_at = (int64_t)sv_now_ms() + RETRY_MS;
        if (m->len >= sizeof *y + (size_t)y->n * sizeof(rt__back))
            for (uint32_t i = 0; i < y->n; i++)
                unlog(s, y->back[i].seq, y->back[i].m);
    }
    /* answers come in the order of the writes */
    uint32_t w = 0;
    while (w < l->nwaits && l->waits[w].token != y->token)
        w++;
    if (w < l->nwaits) {
        qwait done = l->waits[w];
        memmove(&l->waits[w], &l->waits[w + 1], (l->nwaits - w - 1) * sizeof *l->waits);
        l->nwaits--;
        if (y->status == 0 && done.mark > l->mark_durable)
            l->mark_durable = done.mark;
        /* its publishers hear whether it is on disk */
        rt__q_send_confirms(s, done.conf, done.nconf, y->status == 0 ? RT_ACCEPTED : RT_REJECTED,
                            y->status == 0 ? RT_WHY_NONE : RT_WHY_STORE);
        free(done.conf);
    }
    rt__q_pump(self, s);
}

static void on_read(sv_proc *self, queue *s, sv_msg *m)
{
    qlog *l = &s->log;
    rt__s_read *r = SV_MSG_AS(m, rt__s_read);
    l->reading = false;
    if (!r || m->len < sizeof *r + (size_t)r->n * sizeof(rt__rent))
        return;
    uint32_t from = 0;
    for (uint32_t i = 0; i < r->n; i++) {
        rt__rent *re = &r->e[i];
        qent *e = NULL;
        /* in seq order, like the ring: go on from the last one found */
        for (uint32_t k = from; k < s->len; k++) {
            qent *c = &s->ring[(s->head + k) & (s->cap - 1)];
            if (c->seq == re->seq) {
                e = c;
                from = k + 1;
                break;
            }
        }
        if (!e || e->m) {
            rt_msg_unref(re->m); /* gone meanwhile (purged, dropped) */
            continue;
        }
        if (re->status < 0 || !re->m) {
            sv_log(SV_LOG_ERROR, "queue %s: message %llu cannot be read back (%s); it is dropped", s->q->name,
                   (unsigned long long)re->seq, strerror(-re->status));
            e->rlen = 0; /* unreadable: the pump drops it when it reaches it */
            l->npaged--;
            continue;
        }
        e->m = re->m;
        re->m = NULL;
        l->npaged--;
        l->mem_ready += e->size;
        s->held_delta += e->size;
    }
    rt__q_pump(self, s);
}

bool rt__qlog_handle(sv_proc *self, queue *s, sv_msg *m)
{
    switch (m->tag) {
    case RT__S_LOADED: on_loaded(self, s, m); return true;
    case RT__S_SYNCED: on_synced(self, s, m); return true;
    case RT__S_READ_DONE: on_read(self, s, m); return true;
    }
    return false;
}

int rt__qlog_publish(queue *s, qent *e, sv_pid from, uint64_t tag, bool confirm)
{
    qlog *l = &s->log;
    rt_msg *m = e->m;
    if (!l->on || !m->durable)
        return 0;
    if (l->failed) {
        if ((int64_t)sv_now_ms() < l->reset_at)
            return -EIO; /* refused: the log cannot take it now */
        /* try again, on a new segment */
        sv_msg *rs = sv_msg_new(RT__S_RESET, &(rt__s_seg){l->slog, 0}, sizeof(rt__s_seg));
        if (!rs || rt__store_send(l->store, rs) < 0) {
            sv_msg_free(rs);
            return -EIO;
        }
        l->failed = false;
        l->tail_seg = 0;
    }
    int rc = log_msg(s, e, m);
    if (rc < 0)
        return rc == -EFBIG ? -EFBIG : 0; /* out of memory: kept in memory only */
    if (l->npaged || l->mem_ready + e->size > l->window) {
        /* beyond the window: only the record stays; the write holds the message */
        e->m = NULL;
        l->npaged++;
        rt_msg_unref(m);
    } else {
        l->mem_ready += e->size;
    }
    if (!confirm)
        return 0;
    if (sv_grow((void **)&l->conf, &l->capconf, l->nconf + 1, sizeof *l->conf) < 0)
        return 0; /* confirmed at once, before the disk: better than never */
    l->conf[l->nconf++] = (qconf){from, tag, e->seq};
    l->want_sync = true;
    return 1;
}

void rt__qlog_gone(queue *s, const qent *e)
{
    qlog *l = &s->log;
    if (!l->on || !e->seg)
        return;
    seg_live(l, e->seg, -1, e->rlen);
    if (sv_grow((void **)&l->acks, &l->capacks, l->nacks + 1, sizeof *l->acks) == 0)
        l->acks[l->nacks++] = e->seq;
    /* out of memory: the message comes back after a restart, as delivered once more */
}

void rt__qlog_dcount(queue *s, const qent *e)
{
    if (s->log.on && e->seg)
        log_small(s, RT__REC_DCOUNT, e->seq, e->dc, 0);
}

void rt__qlog_ready_mem(queue *s, const qent *e, bool joins)
{
    qlog *l = &s->log;
    if (!l->on || !e->seg || !e->m)
        return;
    if (joins)
        l->mem_ready += e->size;
    else
        l->mem_ready -= l->mem_ready >= e->size ? e->size : l->mem_ready;
}

bool rt__qlog_may_deliver(queue *s, const qent *e)
{
    qlog *l = &s->log;
    if (!l->on || !e->seg || e->seq <= l->mark_durable)
        return true;
    if (l->failed)
        return true; /* the log cannot record it: serving reads matters more (a crash now may
                      * bring this message back unmarked) */
    if (l->mark_asked < e->seq + MARK_LEASE / 2) {
        l->mark_asked = e->seq + MARK_LEASE;
        log_small(s, RT__REC_MARK, 0, 0, l->mark_asked);
        l->turn_mark = l->mark_asked;
        l->want_sync = true;
    }
    return false;
}

/* Old segments that hold only settled messages go; one that holds a few
 * live ones, with several segments behind it, has them written again. */
static void tidy_segments(queue *s)
{
    qlog *l = &s->log;
    while (l->nsegs > 1 && l->segs[0].live == 0 && l->segs[0].no != l->tail_seg) {
        sv_msg *u = sv_msg_new(RT__S_UNLINK, &(rt__s_seg){l->slog, l->segs[0].no}, sizeof(rt__s_seg));
        if (!u || rt__store_send(l->store, u) < 0) {
            sv_msg_free(u);
            return;
        }
        memmove(&l->segs[0], &l->segs[1], (l->nsegs - 1) * sizeof *l->segs);
        l->nsegs--;
    }
    /* only a mostly settled segment is worth writing again: a backlog's
     * segments are full of live messages and stay as they are */
    if (l->tail_seg < l->gc_after || l->nsegs < COMPACT_SEGS || l->segs[0].live > COMPACT_MAX_LIVE ||
        l->segs[0].live_bytes * 4 > l->seg_size)
        return;
    uint32_t old = l->segs[0].no;
    l->gc_after = l->tail_seg + 2; /* whatever happens, not again before two more segments */
    /* the live messages of the oldest segment: all must be in memory */
    for (uint32_t i = 0; i < s->len; i++) {
        qent *e = &s->ring[(s->head + i) & (s->cap - 1)];
        if (e->seg == old && !e->m)
            return; /* still on disk only: the queue will reach it */
    }
    uint32_t moved = 0;
    for (uint32_t i = 0; i < s->len; i++) {
        qent *e = &s->ring[(s->head + i) & (s->cap - 1)];
        if (e->seg == old) {
            seg_live(l, old, -1, e->rlen);
            if (log_msg(s, e, e->m) < 0)
                return;
            moved++;
        }
    }
    for (uint32_t i = 0; i < s->unacked.cap; i++) {
        unacked *u = sv_map_at(&s->unacked, i);
        if (u && u->e.seg == old) {
            seg_live(l, old, -1, u->e.rlen);
            if (log_msg(s, &u->e, u->e.m) < 0)
                return;
            moved++;
        }
    }
    if (moved)
        sv_log(SV_LOG_DEBUG, "queue %s: %u messages of segment %u written again", s->q->name, moved, old);
}

/* Reads back the next messages on disk once the ones in memory run low. */
static void read_ahead(queue *s)
{
    qlog *l = &s->log;
    if (l->reading || !l->npaged || l->mem_ready > l->window / 2)
        return;
    uint32_t k = 0;
    uint64_t bytes = 0;
    rt__rent batch[READ_BATCH];
    for (uint32_t i = 0; i < s->len && k < READ_BATCH && bytes < l->window / 2 + 1; i++) {
        qent *e = &s->ring[(s->head + i) & (s->cap - 1)];
        if (e->m || !e->seg)
            continue;
        batch[k++] = (rt__rent){.seq = e->seq, .off = e->off, .seg = e->seg, .len = e->rlen};
        bytes += e->size;
    }
    if (!k)
        return;
    sv_msg *req = sv_msg_new(RT__S_READ, NULL, sizeof(rt__s_read) + k * sizeof(rt__rent));
    if (!req)
        return;
    rt__s_read *r = (rt__s_read *)(void *)req->data;
    r->log = l->slog;
    r->n = k;
    memcpy(r->e, batch, k * sizeof *batch);
    if (rt__store_send(l->store, req) < 0) {
        sv_msg_free(req);
        return;
    }
    l->reading = true;
}

void rt__qlog_flush(sv_proc *self, queue *s)
{
    qlog *l = &s->log;
    if (!l->on || l->loading)
        return;
    if (self)
        tidy_segments(s); /* not while closing */
    if (l->nacks) {
        uint32_t seg, off;
        size_t size = rt__rec_ack_size(l->nacks);
        if (sv_grow((void **)&l->ops, &l->capops, l->nops + 3, sizeof *l->ops) == 0 &&
            place(s, (uint32_t)size, &seg, &off) == 0) {
            rt__wop *o = new_op(l);
            o->type = RT__REC_ACK;
            o->seg = seg;
            o->off = off;
            o->acks = l->acks; /* the store frees it */
            o->nacks = l->nacks;
            l->acks = NULL;
            l->nacks = l->capacks = 0;
        }
    }
    if (l->nops) {
        sv_msg *w = sv_msg_new(RT__S_WRITE, NULL, sizeof(rt__s_write) + l->nops * sizeof(rt__wop));
        int rc = w && sv_grow((void **)&l->waits, &l->capwaits, l->nwaits + 1, sizeof *l->waits) == 0 ? 0 : -ENOMEM;
        if (rc == 0) {
            rt__s_write *wr = (rt__s_write *)(void *)w->data;
            wr->log = l->slog;
            wr->token = ++l->token;
            wr->sync = l->want_sync || l->nconf;
            wr->n = l->nops;
            memcpy(wr->ops, l->ops, l->nops * sizeof *l->ops);
            rc = rt__store_send(l->store, w);
        }
        if (rc < 0) {
            /* Nothing was written: as if the write had failed. */
            sv_msg_free(w);
            sv_log(SV_LOG_ERROR, "queue %s: cannot send its records to the store (%s)", s->q->name, strerror(-rc));
            rt__q_send_confirms(s, l->conf, l->nconf, RT_REJECTED, RT_WHY_STORE);
            l->nconf = 0;
            for (uint32_t i = 0; i < l->nops; i++) {
                if (l->ops[i].type == RT__REC_MSG)
                    unlog(s, l->ops[i].seq, l->ops[i].m);
                free(l->ops[i].acks);
            }
            l->failed = true;
            l->reset_at = (int64_t)sv_now_ms() + RETRY_MS;
        } else if (l->want_sync || l->nconf) {
            l->waits[l->nwaits++] = (qwait){l->token, l->turn_mark, l->conf, l->nconf};
            l->conf = NULL;
            l->nconf = l->capconf = 0;
        }
        l->nops = 0;
    }
    l->want_sync = false;
    l->turn_mark = 0;
    if (self)
        read_ahead(s);
}

void rt__qlog_close(queue *s)
{
    qlog *l = &s->log;
    if (!l->slog)
        return;
    if (!l->loading)
        rt__qlog_flush(NULL, s);
    /* Confirms still waiting for the disk will not come: their publishers
     * hear "released" (the message may be on disk after all: a duplicate
     * then, never a loss). */
    for (uint32_t i = 0; i < l->nwaits; i++) {
        rt__q_send_confirms(s, l->waits[i].conf, l->waits[i].nconf, RT_RELEASED, RT_WHY_NONE);
        free(l->waits[i].conf);
    }
    rt__q_send_confirms(s, l->conf, l->nconf, RT_RELEASED, RT_WHY_NONE);
    sv_msg *c = sv_msg_new(RT__S_CLOSE, &(rt__s_seg){l->slog, 0}, sizeof(rt__s_seg));
    if (!c || rt__store_send(l->store, c) < 0) {
        sv_msg_free(c);
        sv_log(SV_LOG_WARNING, "queue %s: its log could not be closed", s->q->name);
    }
    for (sv_msg *d = l->deferred, *next; d; d = next) {
        next = d->next;
        rt__q_drop_msg(s, d); /* what waited for the load: publishes hear "released" */
    }
    free(l->segs);
    free(l->ops);
    free(l->acks);
    free(l->conf);
    free(l->waits);
    memset(l, 0, sizeof *l);
}
