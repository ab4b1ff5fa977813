/* conn091.c — an AMQP 0-9-1 connection: handshake, channels, heartbeats
 * and closes, on the connection process the listener started.
 *
 * Both protocols share port 5672: every connection starts as the AMQP 1.0
 * one (connection.c, with its socket, registry entry and connection limit),
 * and when the client's protocol header is "AMQP 0 0 9 1" that process
 * hands the socket over to this file, which reads frames with the codec
 * (amqp091.c) and answers them. So far it serves the connection and channel
 * life cycle only: every other channel method closes its channel with 540
 * NOT_IMPLEMENTED and leaves the connection up. Input and output buffers
 * are bounded by the negotiated frame_max and OUT_CAP.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "amqp/amqp_internal.h"

#define OUT_CAP (64u << 10)                  /* output waiting for the socket; reading stops past half of it */
#define HANDSHAKE_MS 10000                   /* header to Open-Ok, as RabbitMQ's handshake_timeout */
#define CLOSE_WAIT_MS 3000                   /* for the client's Close-Ok after our Close */
#define CHANNEL_MAX 2047                     /* RabbitMQ's default */
#define PRE_TUNE_FRAME AMQP91_FRAME_MIN_SIZE /* frames before Tune-Ok (spec: frame-min-size) */

enum { S_START, S_TUNE, S_OPEN_WAIT, S_OPEN, S_CLOSING, S_DONE };
enum { CH_CLOSED, CH_OPEN, CH_CLOSING };

typedef struct amqp__c91 {
    int state;
    uint8_t *in; /* frames read, not yet handled */
    size_t ilen, icap;
    uint8_t out[OUT_CAP];
    size_t olen;
    amqp__091_limits ours, agreed;
    uint8_t *chan;       /* agreed.channel_max + 1 states, from Tune-Ok on */
    uint64_t last_recv;  /* ms: anything read (any frame counts as a heartbeat) */
    uint64_t last_send;  /* ms: anything written */
    uint64_t deadline;   /* ms: the handshake's or our Close's end; 0: none */
    bool flush_then_end; /* nothing more to read or say: end once out is written */
    bool fail_close;     /* the client's authentication_failure_close */
    char user[128];
    char client[128];
    const char *mech;
} amqp__c91;

/* ---------------------------------------------------------------- output */

static void put_method(amqp__conn *c, uint16_t ch, amqp91_method *m)
{
    amqp__c91 *k = c->c91;
    int n = amqp91_method_frame(ch, m, k->out + k->olen, OUT_CAP - k->olen);
    if (n < 0) {
        /* The client reads nothing of what we answer: nothing more to say. */
        sv_log(SV_LOG_WARNING, "connection %s: AMQP 0-9-1 output not read by the client (%zu bytes waiting); closed",
               c->peer, k->olen);
        k->flush_then_end = true;
        k->state = S_DONE;
        return;
    }
    k->olen += (size_t)n;
}

static void write_out(amqp__conn *c)
{
    amqp__c91 *k = c->c91;
    size_t off = 0;
    c->writing = false;
    while (off < k->olen) {
        ssize_t n = amqp__sock_send(c, k->out + off, k->olen - off);
        if (n == 0) { /* the socket is full: on when it is writable */
            c->writing = true;
            break;
        }
        if (n < 0) { /* broken: nobody to write to */
            k->olen = off = 0;
            k->flush_then_end = true;
            k->state = S_DONE;
            break;
        }
        off += (size_t)n;
        k->last_send = uv_now(c->loop);
    }
    if (off) {
        memmove(k->out, k->out + off, k->olen - off);
        k->olen -= off;
    }
}

/* Connection.Close with a reply code and text; then the client's Close-Ok
 * is awaited (or, after a framing error, when input cannot be read on,
 * the socket closes once the Close is out). */
static void conn_close(amqp__conn *c, int code, uint32_t method, bool framing, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static void conn_close(amqp__conn *c, int code, uint32_t method, bool framing, const char *fmt, ...)
{
    amqp__c91 *k = c->c91;
    if (k->state >= S_CLOSING)
        return;
    char text[256];
    va_list ap;
    va_start(ap, fmt);
    int len = vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    if (len < 0)
        len = 0;
    if ((size_t)len >= sizeof text)
        len = sizeof text - 1;
    if (code != AMQP91_REPLY_SUCCESS && code != AMQP91_CONNECTION_FORCED)
        sv_log(SV_LOG_WARNING, "connection %s: AMQP 0-9-1 close %d %s: %s", c->peer, code, amqp91_reply_name(code),
               text);
    char full[300];
    int flen = snprintf(full, sizeof full, "%s - %s", amqp91_reply_name(code), text);
    if (flen < 0 || flen > 255)
        flen = 255; /* a shortstr */
    amqp91_method m = {.id = AMQP91_CONNECTION_CLOSE};
    m.a.connection_close.reply_code = (uint16_t)code;
    m.a.connection_close.reply_text = (amqp91_bytes){(const uint8_t *)full, (uint32_t)flen};
    m.a.connection_close.class_id = (uint16_t)(method >> 16);
    m.a.connection_close.method_id = (uint16_t)method;
    put_method(c, 0, &m);
    if (k->state == S_DONE)
        return;
    k->state = S_CLOSING;
    k->deadline = uv_now(c->loop) + CLOSE_WAIT_MS;
    if (framing)
        k->flush_then_end = true;
}

static void chan_close(amqp__conn *c, uint16_t ch, int code, uint32_t method, const char *text)
{
    amqp__c91 *k = c->c91;
    char full[256];
    int flen = snprintf(full, sizeof full, "%s - %s", amqp91_reply_name(code), text);
    if (flen < 0 || flen > 255)
        flen = 255;
    amqp91_method m = {.id = AMQP91_CHANNEL_CLOSE};
    m.a.channel_close.reply_code = (uint16_t)code;
    m.a.channel_close.reply_text = (amqp91_bytes){(const uint8_t *)full, (uint32_t)flen};
    m.a.channel_close.class_id = (uint16_t)(method >> 16);
    m.a.channel_close.method_id = (uint16_t)method;
    put_method(c, ch, &m);
    k->chan[ch] = CH_CLOSING;
}

static void simple(amqp__conn *c, uint16_t ch, uint32_t id)
{
    amqp91_method m = {.id = id};
    put_method(c, ch, &m);
}

/* ------------------------------------------------------------- handshake */

static void send_start(amqp__conn *c)
{
    uint8_t props[512];
    int n = amqp__091_server_props(props, sizeof props);
    amqp91_method m = {.id = AMQP91_CONNECTION_START};
    m.a.connection_start.version_major = 0;
    m.a.connection_start.version_minor = 9;
    m.a.connection_start.server_properties = (amqp91_bytes){props, n > 0 ? (uint32_t)n : 0};
    m.a.connection_start.mechanisms = (amqp91_bytes){(const uint8_t *)"PLAIN AMQPLAIN", 14};
    m.a.connection_start.locales = (amqp91_bytes){(const uint8_t *)"en_US", 5};
    put_method(c, 0, &m);
}

static void on_start_ok(amqp__conn *c, const amqp91_connection_start_ok *a)
{
    amqp__c91 *k = c->c91;
    k->fail_close = amqp__091_client_cap(a->client_properties, "authentication_failure_close");
    amqp__091_client_name(a->client_properties, k->client, sizeof k->client);
    char user[128], pass[256], out[128];
    const char *why = "";
    int rc = amqp__091_credentials(a->mechanism, a->response, user, sizeof user, pass, sizeof pass, &why);
    k->mech = a->mechanism.len == 8 ? "AMQPLAIN" : "PLAIN";
    if (rc == 0 && (!c->cfg->auth || c->cfg->auth(c->cfg->auth_ctx, "PLAIN", user, pass,
                                                  (const struct sockaddr *)&c->sasl.peer, out, sizeof out) < 0)) {
        rc = -EACCES;
        why = "wrong user or password, or not allowed from here";
    }
    memset(pass, 0, sizeof pass);
    if (rc < 0) {
        char who[128], mech[24];
        amqp__091_printable((const uint8_t *)user, rc == -EACCES ? strlen(user) : 0, who, sizeof who);
        amqp__091_printable(a->mechanism.p, a->mechanism.len, mech, sizeof mech);
        sv_log(SV_LOG_WARNING, "connection %s: AMQP 0-9-1 authentication failed for %s (%s): %s", c->peer,
               who[0] ? who : "?", mech, why);
        if (k->fail_close) {
            conn_close(c, AMQP91_ACCESS_REFUSED, AMQP91_CONNECTION_START_OK, true,
                       "Login was refused using authentication mechanism %s", rc == -ENOTSUP ? "?" : k->mech);
        } else { /* the spec's way, for clients that cannot take a Close here */
            k->state = S_DONE;
            k->flush_then_end = true;
        }
        return;
    }
    snprintf(k->user, sizeof k->user, "%s", out);
    amqp91_method m = {.id = AMQP91_CONNECTION_TUNE};
    m.a.connection_tune.channel_max = k->ours.channel_max;
    m.a.connection_tune.frame_max = k->ours.frame_max;
    m.a.connection_tune.heartbeat = k->ours.heartbeat;
    put_method(c, 0, &m);
    k->state = S_TUNE;
}

static void on_tune_ok(amqp__conn *c, const amqp91_connection_tune_ok *a)
{
    amqp__c91 *k = c->c91;
    char why[160];
    if (amqp__091_tune(&k->ours, a->channel_max, a->frame_max, a->heartbeat, &k->agreed, why, sizeof why) < 0) {
        conn_close(c, AMQP91_NOT_ALLOWED, AMQP91_CONNECTION_TUNE_OK, false, "%s", why);
        return;
    }
    uint8_t *in = realloc(k->in, k->agreed.frame_max);
    uint8_t *chan = calloc((size_t)k->agreed.channel_max + 1, 1);
    if (!in || !chan) {
        if (in)
            k->in = in;
        free(chan);
        conn_close(c, AMQP91_INTERNAL_ERROR, AMQP91_CONNECTION_TUNE_OK, false, "out of memory");
        return;
    }
    k->in = in;
    k->icap = k->agreed.frame_max;
    k->chan = chan;
    k->state = S_OPEN_WAIT;
}

static void on_open(amqp__conn *c, const amqp91_connection_open *a)
{
    amqp__c91 *k = c->c91;
    if (!(a->virtual_host.len == 1 && a->virtual_host.p[0] == '/')) {
        char vh[64];
        amqp__091_printable(a->virtual_host.p, a->virtual_host.len, vh, sizeof vh);
        conn_close(c, AMQP91_NOT_ALLOWED, AMQP91_CONNECTION_OPEN, false,
                   "virtual host '%s' does not exist: Plexus serves the virtual host '/' only", vh);
        return;
    }
    if (c->refuse) {
        conn_close(c, AMQP91_NOT_ALLOWED, AMQP91_CONNECTION_OPEN, false, "too many connections (at most %u)",
                   c->cfg->max_connections);
        return;
    }
    simple(c, 0, AMQP91_CONNECTION_OPEN_OK);
    k->state = S_OPEN;
    k->deadline = 0;
    amqp__reg_opened(&c->reg, k->user, k->client, k->mech);
    sv_log(SV_LOG_INFO, "connection %s open (AMQP 0-9-1, user %s, client %s, heartbeat %us, frame_max %u)", c->peer,
           k->user, k->client[0] ? k->client : "-", k->agreed.heartbeat, k->agreed.frame_max);
}

/* ----------------------------------------------------------------- frames */

/* A method on channel 0. */
static void on_conn_method(amqp__conn *c, const amqp91_method *m)
{
    amqp__c91 *k = c->c91;
    if (m->id == AMQP91_CONNECTION_CLOSE) { /* in any state */
        if (k->state < S_DONE)
            simple(c, 0, AMQP91_CONNECTION_CLOSE_OK);
        k->state = S_DONE;
        k->flush_then_end = true;
        return;
    }
    if (m->id == AMQP91_CONNECTION_CLOSE_OK) {
        if (k->state == S_CLOSING) {
            k->state = S_DONE;
            k->flush_then_end = true;
        }
        return;
    }
    if (k->state == S_CLOSING)
        return; /* after our Close, only Close and Close-Ok count (spec 4.2.2) */
    static const uint32_t expect[] = {[S_START] = AMQP91_CONNECTION_START_OK,
                                      [S_TUNE] = AMQP91_CONNECTION_TUNE_OK,
                                      [S_OPEN_WAIT] = AMQP91_CONNECTION_OPEN};
    if (k->state < S_OPEN && m->id != expect[k->state]) {
        conn_close(c, AMQP91_COMMAND_INVALID, m->id, false, "expected %s, got %s",
                   amqp91_method_desc(expect[k->state])->name, m->desc->name);
        return;
    }
    switch (m->id) {
    case AMQP91_CONNECTION_START_OK: on_start_ok(c, &m->a.connection_start_ok); break;
    case AMQP91_CONNECTION_TUNE_OK: on_tune_ok(c, &m->a.connection_tune_ok); break;
    case AMQP91_CONNECTION_OPEN: on_open(c, &m->a.connection_open); break;
    case AMQP91_CONNECTION_UPDATE_SECRET:
        conn_close(c, AMQP91_NOT_IMPLEMENTED, m->id, false, "%s is not implemented yet", m->desc->name);
        break;
    default: conn_close(c, AMQP91_COMMAND_INVALID, m->id, false, "%s is not valid now", m->desc->name); break;
    }
}

/* A method on channel ch (1..channel_max). */
static void on_chan_method(amqp__conn *c, uint16_t ch, const amqp91_method *m)
{
    amqp__c91 *k = c->c91;
    uint8_t st = k->chan[ch];
    if (m->id == AMQP91_CHANNEL_OPEN) {
        if (st != CH_CLOSED) {
            conn_close(c, AMQP91_CHANNEL_ERROR, m->id, false, "channel %u is open already", ch);
            return;
        }
        k->chan[ch] = CH_OPEN;
        if (amqp__reg_chan_open(&c->reg, ch) < 0)
            sv_log(SV_LOG_WARNING, "connection %s: channel %u: no memory to list it", c->peer, ch);
        simple(c, ch, AMQP91_CHANNEL_OPEN_OK);
        return;
    }
    if (st == CH_CLOSED && m->id == AMQP91_CHANNEL_CLOSE_OK)
        return; /* both sides closed at once: we answered its Close already */
    if (st == CH_CLOSED) {
        conn_close(c, AMQP91_CHANNEL_ERROR, m->id, false, "%s on channel %u, which is not open", m->desc->name, ch);
        return;
    }
    if (m->id == AMQP91_CHANNEL_CLOSE) { /* open, or closing both ways at once */
        simple(c, ch, AMQP91_CHANNEL_CLOSE_OK);
        k->chan[ch] = CH_CLOSED;
        amqp__reg_chan_close(&c->reg, ch);
        return;
    }
    if (m->id == AMQP91_CHANNEL_CLOSE_OK) {
        if (st == CH_CLOSING) {
            k->chan[ch] = CH_CLOSED;
            amqp__reg_chan_close(&c->reg, ch);
        }
        return;
    }
    if (st == CH_CLOSING)
        return; /* after our Channel.Close: dropped until its Close-Ok (spec 4.2.2) */
    switch (m->id) {
    case AMQP91_CHANNEL_FLOW: {
        /* Nothing flows to the client on a channel yet: acknowledged. */
        amqp91_method r = {.id = AMQP91_CHANNEL_FLOW_OK};
        r.a.channel_flow_ok.active = m->a.channel_flow.active;
        put_method(c, ch, &r);
        break;
    }
    case AMQP91_CHANNEL_FLOW_OK: break; /* Plexus sends no Flow */
    default: {
        char text[200];
        snprintf(text, sizeof text, "%s is not implemented yet", m->desc->name);
        sv_log(SV_LOG_INFO, "connection %s: channel %u: %s", c->peer, ch, text);
        chan_close(c, ch, AMQP91_NOT_IMPLEMENTED, m->id, text);
        break;
    }
    }
}

static void on_frame(amqp__conn *c, const amqp91_frame *f)
{
    amqp__c91 *k = c->c91;
    if (f->type == AMQP91_FRAME_HEARTBEAT)
        return;
    if (k->state == S_CLOSING && f->type != AMQP91_FRAME_METHOD)
        return;
    if (f->channel && (k->state < S_OPEN || f->channel > k->agreed.channel_max)) {
        conn_close(c, AMQP91_CHANNEL_ERROR, 0, false, "frame on channel %u %s", f->channel,
                   k->state < S_OPEN ? "before the connection is open" : "beyond channel_max");
        return;
    }
    if (f->type != AMQP91_FRAME_METHOD) { /* content header or body */
        if (!f->channel)
            conn_close(c, AMQP91_CHANNEL_ERROR, 0, false, "content frame on channel 0");
        else if (k->chan[f->channel] == CH_CLOSED)
            conn_close(c, AMQP91_CHANNEL_ERROR, 0, false, "content frame on channel %u, which is not open", f->channel);
        else if (k->chan[f->channel] == CH_OPEN)
            conn_close(c, AMQP91_UNEXPECTED_FRAME, 0, false, "content frame on channel %u without a content method",
                       f->channel);
        /* closing: the rest of a refused publish, dropped */
        return;
    }
    amqp91_method m;
    const char *why = "";
    int rc = amqp91_method_decode(f->payload, f->size, &m, &why);
    if (rc < 0) {
        uint32_t id = f->size >= 4 ? (uint32_t)f->payload[0] << 24 | (uint32_t)f->payload[1] << 16 |
                                         (uint32_t)f->payload[2] << 8 | f->payload[3]
                                   : 0;
        conn_close(c, -rc, id, false, "%s", why);
        return;
    }
    if (!(m.desc->flags & AMQP91_M_TO_SERVER)) {
        conn_close(c, AMQP91_COMMAND_INVALID, m.id, false, "%s is sent by servers only", m.desc->name);
        return;
    }
    bool conn_class = (m.id >> 16) == 10;
    if (!f->channel && !conn_class)
        conn_close(c, AMQP91_CHANNEL_ERROR, m.id, false, "%s on channel 0, which carries connection methods only",
                   m.desc->name);
    else if (f->channel && conn_class)
        conn_close(c, AMQP91_CHANNEL_ERROR, m.id, false, "%s on channel %u: connection methods go on channel 0",
                   m.desc->name, f->channel);
    else if (!f->channel)
        on_conn_method(c, &m);
    else if (k->state == S_OPEN)
        on_chan_method(c, f->channel, &m);
}

/* Handles the whole frames in the input buffer. */
static void handle_input(amqp__conn *c)
{
    amqp__c91 *k = c->c91;
    size_t off = 0;
    while (k->state < S_DONE && !k->flush_then_end && off < k->ilen) {
        amqp91_frame f;
        const char *why = "";
        /* The buffer is one frame: PRE_TUNE_FRAME until Tune-Ok, then frame_max. */
        uint32_t max = (uint32_t)k->icap;
        int rc = amqp91_frame_read(k->in + off, k->ilen - off, max, &f, &why);
        if (rc < 0) {
            conn_close(c, AMQP91_FRAME_ERROR, 0, true, "%s", why);
            break;
        }
        if (rc == 0)
            break;
        on_frame(c, &f);
        off += f.len;
    }
    if (k->flush_then_end)
        off = k->ilen; /* nothing more is read */
    memmove(k->in, k->in + off, k->ilen - off);
    k->ilen -= off;
}

static void read_input(amqp__conn *c)
{
    amqp__c91 *k = c->c91;
    for (int i = 0; i < 8 && c->reading && !k->flush_then_end; i++) {
        ssize_t n = amqp__sock_recv(c, k->in + k->ilen, k->icap - k->ilen);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n <= 0) { /* gone */
            if (k->state < S_DONE)
                sv_log(SV_LOG_INFO, "connection %s: AMQP 0-9-1 client went away%s", c->peer,
                       k->state < S_OPEN ? " during the handshake" : "");
            k->state = S_DONE;
            k->olen = 0;
            k->flush_then_end = true;
            return;
        }
        c->counts.recv_oct += (uint64_t)n;
        k->last_recv = uv_now(c->loop);
        k->ilen += (size_t)n;
        handle_input(c);
    }
}

/* ----------------------------------------------------------------- rounds */

void amqp__091_work(amqp__conn *c)
{
    amqp__c91 *k = c->c91;
    if (c->finished)
        return;
    uint64_t now = uv_now(c->loop);
    uint32_t hb_ms = k->state >= S_OPEN_WAIT ? (uint32_t)k->agreed.heartbeat * 1000 : 0;
    if (k->deadline && now >= k->deadline && !k->flush_then_end) {
        sv_log(SV_LOG_WARNING, "connection %s: AMQP 0-9-1 %s", c->peer,
               k->state == S_CLOSING ? "client did not answer Close in time; closed"
                                     : "handshake not done in time; closed");
        k->state = S_DONE;
        k->flush_then_end = true;
    }
    if (hb_ms && k->state < S_DONE && !k->flush_then_end) {
        if (now - k->last_recv >= 2ull * hb_ms) {
            sv_log(SV_LOG_WARNING,
                   "connection %s: AMQP 0-9-1 client missed heartbeats (silent %llu ms, heartbeat %u s)", c->peer,
                   (unsigned long long)(now - k->last_recv), k->agreed.heartbeat);
            k->state = S_DONE;
            k->olen = 0;
            k->flush_then_end = true;
        } else if (now - k->last_send >= hb_ms / 2 && !k->olen) { /* output waiting says enough */
            int n = amqp91_heartbeat_write(k->out + k->olen, OUT_CAP - k->olen);
            if (n > 0)
                k->olen += (size_t)n;
        }
    }
    write_out(c);
    if (k->flush_then_end && !c->writing) {
        amqp__conn_finish(c);
        return;
    }
    c->reading = !k->flush_then_end && k->olen < OUT_CAP / 2;
    amqp__sock_update_poll(c);
    /* The next thing due: a heartbeat to send, the client's silence, a deadline. */
    uint64_t at = k->deadline;
    if (hb_ms && !k->flush_then_end) {
        uint64_t send_at = k->last_send + hb_ms / 2, dead_at = k->last_recv + 2ull * hb_ms;
        uint64_t due = send_at < dead_at && !k->olen ? send_at : dead_at;
        if (!at || due < at)
            at = due;
    }
    if (at)
        uv_timer_start(&c->timer, amqp__conn_on_timer, at > now ? at - now : 1, 0);
    else
        uv_timer_stop(&c->timer);
    amqp__reg_flush(&c->reg, &c->counts);
}

void amqp__091_poll(amqp__conn *c, int status, int events)
{
    amqp__c91 *k = c->c91;
    if (status < 0) { /* the socket is broken */
        k->state = S_DONE;
        k->olen = 0;
        k->flush_then_end = true;
    } else if (events & UV_READABLE) {
        read_input(c);
    }
    amqp__091_work(c);
}

void amqp__091_info(amqp__conn *c, sv_msg *m)
{
    if (m->tag == AMQP__TAG_CLOSE) { /* from the admin API */
        conn_close(c, AMQP91_CONNECTION_FORCED, 0, false, "%.*s", (int)(m->len < 200 ? m->len : 200),
                   (const char *)m->data);
    } else if (m->kind == SV_MSG_EXIT && sv_pid_eq(m->from, sv_parent(c->self))) {
        conn_close(c, AMQP91_CONNECTION_FORCED, 0, false, "the broker is shutting down");
    }
    amqp__091_work(c);
}

void amqp__091_begin(amqp__conn *c, const uint8_t *rest, size_t n)
{
    amqp__c91 *k = calloc(1, sizeof *k);
    uint8_t *in = malloc(PRE_TUNE_FRAME);
    if (!k || !in) {
        free(k);
        free(in);
        sv_log(SV_LOG_ERROR, "connection %s: out of memory for an AMQP 0-9-1 connection; closed", c->peer);
        c->reading = false;
        amqp__conn_finish(c);
        return;
    }
    c->c91 = k;
    c->reading = true;
    k->in = in;
    k->icap = PRE_TUNE_FRAME;
    k->ours.channel_max = CHANNEL_MAX;
    /* At least the spec's minimum, at most what the broker takes. */
    k->ours.frame_max = c->cfg->max_frame_size > AMQP91_FRAME_MIN_SIZE ? c->cfg->max_frame_size : AMQP91_FRAME_MIN_SIZE;
    /* Ours is the idle timeout the broker uses for AMQP 1.0, in seconds. */
    uint32_t hb = (c->cfg->idle_timeout_ms + 999) / 1000;
    k->ours.heartbeat = (uint16_t)(hb > 65535 ? 65535 : hb);
    k->last_recv = k->last_send = uv_now(c->loop);
    k->deadline = k->last_recv + HANDSHAKE_MS;
    amqp__reg_protocol(&c->reg, "AMQP 0-9-1");
    send_start(c);
    /* What came with the header: at most what was read at once, so it may
     * be more than a pre-tune frame; taken in pieces. */
    while (n && !k->flush_then_end && k->state < S_DONE) {
        size_t take = n < k->icap - k->ilen ? n : k->icap - k->ilen;
        memcpy(k->in + k->ilen, rest, take);
        k->ilen += take;
        rest += take;
        n -= take;
        handle_input(c);
        if (take == 0)
            break;
    }
}

void amqp__091_free(amqp__conn *c)
{
    amqp__c91 *k = c->c91;
    if (!k)
        return;
    free(k->in);
    free(k->chan);
    free(k);
    c->c91 = NULL;
}
