/* conn091_publish.c — Basic.Publish: the method, its content header and
 * body frames read into one rt_msg (map091.c lays out its AMQP 1.0
 * sections, the body is copied in as it comes), routed on the
 * connection's own thread and sent to each queue in the same batches AMQP
 * 1.0 publishes use (outbox.c).
 *
 * Confirms (Confirm.Select) follow the queues' own: a publish is acked
 * once every queue it reached has it (on disk, for a persistent message in
 * a durable queue), nacked if one refused it or went away. An unroutable
 * mandatory publish comes back with Basic.Return, then its ack, as in
 * RabbitMQ. Reading is the flow control: the connection stops reading
 * while more than BYTES_IN_FLIGHT of its publishes wait for queues, for a
 * moment when a queue it feeds is consumed and behind (as AMQP 1.0 links
 * are paced), and, under a memory or disk alarm, while it publishes and
 * does not consume.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "amqp/amqp_internal.h"

#define BYTES_IN_FLIGHT (16u << 20) /* per connection: its publishes not yet taken by every queue */
#define MAX_FANOUT 4096             /* queues one message may reach */
#define REPLY_TO_PSEUDO "amq.rabbitmq.reply-to"

void amqp__091_publish(amqp__conn *c, amqp__091_chan *ch, const amqp91_basic_publish *a)
{
    amqp__091_name(a->exchange, ch->exchange);
    amqp__091_name(a->routing_key, ch->rkey);
    ch->mandatory = a->mandatory;
    ch->pub = 1; /* the content comes, whatever we think of the method */
    c->c91->published = true;
    if (a->immediate) {
        amqp__091_chan_close(c, ch->number, AMQP91_NOT_IMPLEMENTED, AMQP91_BASIC_PUBLISH,
                             "immediate=true is not supported (RabbitMQ dropped it too)");
        return;
    }
    if (!(ch->may_write && !strcmp(ch->write_x, ch->exchange))) {
        if (!amqp__091_allowed(c, ch, AMQP91_BASIC_PUBLISH, AMQP_PERM_WRITE, "exchange", ch->exchange))
            return;
        ch->may_write = true;
        memcpy(ch->write_x, ch->exchange, sizeof ch->write_x);
    }
    rt_exchange *x = ch->exchange[0] ? rt_exchange_find(ch->exchange) : NULL;
    if (ch->exchange[0] && !x)
        amqp__091_chan_close(c, ch->number, AMQP91_NOT_FOUND, AMQP91_BASIC_PUBLISH, "no exchange '%s' in vhost '/'",
                             ch->exchange);
    else if (x && x->internal)
        amqp__091_chan_close(c, ch->number, AMQP91_ACCESS_REFUSED, AMQP91_BASIC_PUBLISH,
                             "cannot publish to internal exchange '%s' in vhost '/'", ch->exchange);
}

/* A new sequence number, its confirm due: 0 if there is no memory for it
 * (the publish is then refused). */
static uint64_t seq_new(amqp__091_chan *ch)
{
    if (ch->conf_len == ch->conf_cap) {
        uint32_t ncap = ch->conf_cap ? ch->conf_cap * 2 : 256;
        uint8_t *v = malloc(ncap);
        if (!v)
            return 0;
        for (uint32_t i = 0; i < ch->conf_len; i++)
            v[i] = ch->conf[(ch->conf_head + i) % ch->conf_cap];
        free(ch->conf);
        ch->conf = v;
        ch->conf_cap = ncap;
        ch->conf_head = 0;
    }
    if (!ch->conf_len)
        ch->conf_base = ch->next_seq;
    ch->conf[(ch->conf_head + ch->conf_len) % ch->conf_cap] = 0;
    ch->conf_len++;
    return ch->next_seq++;
}

static void confirm_one(amqp__conn *c, amqp__091_chan *ch, uint64_t seq, bool ack)
{
    if (seq < ch->conf_base || seq - ch->conf_base >= ch->conf_len)
        return;
    ch->conf[(ch->conf_head + (seq - ch->conf_base)) % ch->conf_cap] = ack ? 1 : 2;
    c->c91->confirms_due = true;
}

static void send_runs(amqp__conn *c, amqp__091_chan *ch)
{
    while (ch->conf_len) {
        uint32_t run = 0;
        while (run < ch->conf_len && ch->conf[(ch->conf_head + run) % ch->conf_cap] == 1)
            run++;
        uint8_t first = ch->conf[ch->conf_head];
        if (!run && first != 2)
            break; /* the oldest is still due: the rest wait, confirms keep their order */
        uint32_t n = run ? run : 1;
        amqp91_method m = {.id = run ? AMQP91_BASIC_ACK : AMQP91_BASIC_NACK};
        if (run) {
            m.a.basic_ack.delivery_tag = ch->conf_base + n - 1;
            m.a.basic_ack.multiple = n > 1;
        } else {
            m.a.basic_nack.delivery_tag = ch->conf_base;
        }
        amqp__091_method(c, ch->number, &m);
        ch->conf_head = (ch->conf_head + n) % ch->conf_cap;
        ch->conf_len -= n;
        ch->conf_base += n;
    }
}

void amqp__091_send_confirms(amqp__conn *c)
{
    amqp__c91 *k = c->c91;
    if (!k->confirms_due)
        return;
    k->confirms_due = false;
    for (uint32_t i = 1; k->ch && i <= k->agreed.channel_max; i++) {
        amqp__091_chan *ch = k->ch[i];
        if (ch && ch->state == AMQP__CH_OPEN && ch->conf_len)
            send_runs(c, ch);
    }
}

static void tag_done(amqp__conn *c, amqp__091_tag *t)
{
    amqp__c91 *k = c->c91;
    c->pub_bytes -= t->size;
    amqp__091_chan *ch = t->seq ? amqp__091_chan_get(c, t->channel, t->epoch) : NULL;
    if (ch)
        confirm_one(c, ch, t->seq, t->outcome == RT_ACCEPTED);
    sv_map_del(&k->tags, 0, t->k2, NULL);
}

/* An unroutable mandatory message goes back to its publisher. */
static void give_back(amqp__conn *c, amqp__091_chan *ch, const rt_msg *m)
{
    static const char text[] = "NO_ROUTE";
    amqp91_method r = {.id = AMQP91_BASIC_RETURN};
    r.a.basic_return.reply_code = 312;
    r.a.basic_return.reply_text = (amqp91_bytes){(const uint8_t *)text, sizeof text - 1};
    r.a.basic_return.exchange = (amqp91_bytes){(const uint8_t *)ch->exchange, (uint32_t)strlen(ch->exchange)};
    r.a.basic_return.routing_key = (amqp91_bytes){(const uint8_t *)ch->rkey, (uint32_t)strlen(ch->rkey)};
    amqp__091_content(c, ch->number, &r, m);
}

static void route(amqp__conn *c, amqp__091_chan *ch, rt_msg *m)
{
    amqp__c91 *k = c->c91;
    rt_exchange *x = ch->exchange[0] ? rt_exchange_find(ch->exchange) : NULL;
    if (ch->exchange[0] && !x) { /* deleted while the content came */
        rt_msg_unref(m);
        amqp__091_chan_close(c, ch->number, AMQP91_NOT_FOUND, AMQP91_BASIC_PUBLISH, "no exchange '%s' in vhost '/'",
                             ch->exchange);
        return;
    }
    uint64_t seq = ch->confirm ? seq_new(ch) : 0;
    c->counts.recv_cnt++;
    if (ch->confirm && !seq) {
        rt_msg_unref(m);
        amqp__091_chan_close(c, ch->number, AMQP91_INTERNAL_ERROR, AMQP91_BASIC_PUBLISH, "out of memory");
        return;
    }
    if (rt_msg_set_rkey(m, ch->rkey) < 0) {
        rt_msg_unref(m);
        if (seq)
            confirm_one(c, ch, seq, false);
        return;
    }
    rt_queue *fixed[16], **qs = fixed;
    int n = rt_route(x, m, ch->rkey, qs, 16);
    if (n > 16) {
        int want = n < MAX_FANOUT ? n : MAX_FANOUT;
        qs = malloc((size_t)want * sizeof *qs);
        n = qs ? rt_route(x, m, ch->rkey, qs, want) : -1;
        if (n > want)
            n = want;
    }
    if (n <= 0) {
        if (n == 0 && ch->mandatory)
            give_back(c, ch, m);
        if (seq) /* RabbitMQ acks what it routed nowhere; nacks what it could not handle */
            confirm_one(c, ch, seq, n == 0);
        rt_msg_unref(m);
        if (qs != fixed)
            free(qs);
        return;
    }
    uint64_t tag = ++c->next_tag;
    amqp__091_tag *t = sv_map_put(&k->tags, 0, tag);
    if (!t) {
        if (seq)
            confirm_one(c, ch, seq, false);
        rt_msg_unref(m);
        if (qs != fixed)
            free(qs);
        return;
    }
    t->epoch = ch->epoch;
    t->seq = seq;
    t->channel = ch->number;
    t->remaining = (uint32_t)n;
    t->outcome = RT_ACCEPTED;
    t->size = (uint32_t)m->buf.len;
    c->pub_bytes += t->size;
    /* A queue consumed and behind pauses reading (k->paused_until). */
    uint32_t took = amqp__outbox_publish(c, qs, n, m, tag, &k->paused_until);
    if (took < (uint32_t)n) { /* out of memory: the queues that did not get it count as released */
        t->remaining = took;
        t->outcome = RT_RELEASED;
    }
    rt_msg_unref(m);
    if (qs != fixed)
        free(qs);
    if (t->remaining == 0)
        tag_done(c, t);
}

static bool is_pseudo_reply_to(amqp91_bytes b)
{
    return b.len == sizeof REPLY_TO_PSEUDO - 1 && !memcmp(b.p, REPLY_TO_PSEUDO, b.len);
}

static void on_header(amqp__conn *c, amqp__091_chan *ch, const amqp91_frame *f)
{
    amqp91_header h;
    const char *why = "";
    int rc = amqp91_header_decode(f->payload, f->size, &h, &why);
    if (rc < 0) {
        amqp__091_conn_close(c, -rc, AMQP91_BASIC_PUBLISH, "%s", why);
        return;
    }
    if (h.body_size > c->cfg->max_message_size) {
        amqp__091_chan_close(c, ch->number, AMQP91_PRECONDITION_FAILED, AMQP91_BASIC_PUBLISH,
                             "message size %llu is larger than configured max size %llu",
                             (unsigned long long)h.body_size, (unsigned long long)c->cfg->max_message_size);
        return;
    }
    /* user_id, if given, must be who logged in (RabbitMQ's validated user id). */
    const char *user = c->c91->user;
    if ((h.props.flags & AMQP91_P_USER_ID) &&
        !(h.props.user_id.len == strlen(user) && !memcmp(h.props.user_id.p, user, h.props.user_id.len))) {
        char shown[64];
        amqp__091_printable(h.props.user_id.p, h.props.user_id.len, shown, sizeof shown);
        amqp__091_chan_close(c, ch->number, AMQP91_PRECONDITION_FAILED, AMQP91_BASIC_PUBLISH,
                             "user_id property set to '%s' but authenticated user was '%s'", shown, user);
        return;
    }
    /* Direct reply-to: the pseudo-queue's name becomes the real queue
     * this channel consumes its replies from. */
    if ((h.props.flags & AMQP91_P_REPLY_TO) && is_pseudo_reply_to(h.props.reply_to)) {
        if (!ch->reply_queue[0]) {
            amqp__091_chan_close(c, ch->number, AMQP91_PRECONDITION_FAILED, AMQP91_BASIC_PUBLISH,
                                 "fast reply consumer does not exist");
            return;
        }
        h.props.reply_to = (amqp91_bytes){(const uint8_t *)ch->reply_queue, (uint32_t)strlen(ch->reply_queue)};
    }
    rc = amqp__091_msg_new(&h.props, h.body_size, ch->exchange, ch->rkey, &ch->msg, &ch->body_off, &ch->total, &why);
    if (rc < 0) {
        ch->msg = NULL;
        amqp__091_chan_close(c, ch->number, rc == -ENOMEM ? AMQP91_INTERNAL_ERROR : -rc, AMQP91_BASIC_PUBLISH, "%s",
                             rc == -ENOMEM ? "out of memory" : why);
        return;
    }
    ch->body_left = h.body_size;
    ch->pub = 2;
}

static void finish(amqp__conn *c, amqp__091_chan *ch)
{
    rt_msg *m = ch->msg;
    ch->msg = NULL;
    ch->pub = 0;
    if (rt_msg_finish(&m, ch->total) < 0) {
        rt_msg_unref(m);
        amqp__091_chan_close(c, ch->number, AMQP91_INTERNAL_ERROR, AMQP91_BASIC_PUBLISH,
                             "the message could not be stored");
        return;
    }
    route(c, ch, m);
}

void amqp__091_content_frame(amqp__conn *c, amqp__091_chan *ch, const amqp91_frame *f)
{
    if (ch->pub == 1) {
        if (f->type != AMQP91_FRAME_HEADER) {
            amqp__091_conn_close(c, AMQP91_UNEXPECTED_FRAME, AMQP91_BASIC_PUBLISH,
                                 "expected a content header on channel %u, got a body frame", ch->number);
            return;
        }
        on_header(c, ch, f);
    } else {
        if (f->type != AMQP91_FRAME_BODY) {
            amqp__091_conn_close(c, AMQP91_UNEXPECTED_FRAME, AMQP91_BASIC_PUBLISH,
                                 "expected a content body on channel %u, got a content header", ch->number);
            return;
        }
        if (f->size > ch->body_left) {
            amqp__091_conn_close(c, AMQP91_FRAME_ERROR, AMQP91_BASIC_PUBLISH,
                                 "body frames on channel %u carry more than the content header's body-size",
                                 ch->number);
            return;
        }
        memcpy(rt_msg_bytes(ch->msg) + ch->body_off, f->payload, f->size);
        ch->body_off += f->size;
        ch->body_left -= f->size;
    }
    if (ch->pub == 2 && ch->body_left == 0 && ch->state == AMQP__CH_OPEN)
        finish(c, ch);
}

static uint8_t worse(uint8_t a, uint8_t b)
{
    static const int rank[] = {[RT_ACCEPTED] = 0, [RT_RELEASED] = 1, [RT_MODIFIED] = 1, [RT_REJECTED] = 2};
    return rank[b] > rank[a] ? b : a;
}

void amqp__091_confirm(amqp__conn *c, sv_msg *m)
{
    amqp__c91 *k = c->c91;
    rt_confirm_batch *cb = SV_MSG_AS(m, rt_confirm_batch);
    if (!cb || m->len < sizeof *cb + cb->n * sizeof(rt_confirm))
        return;
    for (uint32_t i = 0; i < cb->n; i++) {
        amqp__091_tag *t = sv_map_get(&k->tags, 0, cb->c[i].tag);
        if (!t)
            continue;
        t->outcome = worse(t->outcome, cb->c[i].outcome);
        if (--t->remaining == 0)
            tag_done(c, t);
    }
}

void amqp__091_taken(amqp__conn *c, const rt_pub *p, uint32_t n)
{
    amqp__c91 *k = c->c91;
    for (uint32_t i = 0; i < n; i++) {
        amqp__091_tag *t = sv_map_get(&k->tags, 0, p[i].tag);
        if (t && --t->remaining == 0)
            tag_done(c, t);
    }
}

bool amqp__091_may_read(amqp__conn *c)
{
    amqp__c91 *k = c->c91;
    if (c->pub_bytes >= BYTES_IN_FLIGHT)
        return false;
    if (k->paused_until && k->paused_until > sv_now_ms())
        return false;
    /* As RabbitMQ blocks publishing connections; one that consumes, or
     * holds deliveries (a get's) it has still to ack, reads on, or its
     * acks, which drain the queues, would never come. */
    if (!k->published || k->nconsumers || !rt_alarm())
        return true;
    for (uint32_t i = 1; k->ch && i <= k->agreed.channel_max; i++)
        if (k->ch[i] && k->ch[i]->ua_live)
            return true;
    return false;
}

void amqp__091_pub_chan_free(amqp__conn *c, amqp__091_chan *ch)
{
    (void)c;
    rt_msg_unref(ch->msg); /* a publish cut short; confirms still due find no channel */
    ch->msg = NULL;
    ch->pub = 0;
    free(ch->conf);
    ch->conf = NULL;
    ch->conf_len = ch->conf_cap = ch->conf_head = 0;
}
