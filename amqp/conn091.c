/* conn091.c — an AMQP 0-9-1 connection: handshake, channels, heartbeats
 * and closes, on the connection process the listener started.
 *
 * Both protocols share port 5672: every connection starts as the AMQP 1.0
 * one (connection.c, with its socket, registry entry and connection limit),
 * and when the client's protocol header is "AMQP 0 0 9 1" that process
 * hands the socket over to this file, which reads frames with the codec
 * (amqp091.c) and answers them. This file has the connection and channel
 * life cycle, frames in and out, and hands channel methods to
 * conn091_defs.c (exchanges, queues, bindings), conn091_publish.c and
 * conn091_consume.c (the basic class). Input waits while a call it made
 * (to the routing manager, a queue) is under way, so a client's methods
 * are answered in the order they came. Input is bounded by the negotiated
 * frame_max; output stops taking deliveries and reading stops past
 * OUT_SOFT, and a client that reads nothing past OUT_HARD is closed.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "amqp/amqp_internal.h"

#define OUT_SOFT AMQP__091_OUT_SOFT
#define OUT_HARD (64u << 20)                 /* output the client does not read: closed past it */
#define HANDSHAKE_MS 10000                   /* header to Open-Ok, as RabbitMQ's handshake_timeout */
#define CLOSE_WAIT_MS 3000                   /* for the client's Close-Ok after our Close */
#define CHANNEL_MAX 2047                     /* RabbitMQ's default */
#define PRE_TUNE_FRAME AMQP91_FRAME_MIN_SIZE /* frames before Tune-Ok (spec: frame-min-size) */
#define ALARM_POLL_MS 100                    /* how often a connection held by an alarm looks again */

enum { S_START, S_TUNE, S_OPEN_WAIT, S_OPEN, S_CLOSING, S_DONE };

/* ---------------------------------------------------------------- output */

/* The client reads nothing of what we say: nothing more to say. */
static void not_read(amqp__conn *c)
{
    amqp__c91 *k = c->c91;
    sv_log(SV_LOG_WARNING, "connection %s: AMQP 0-9-1 output not read by the client (%zu bytes waiting); closed",
           c->peer, k->olen);
    k->flush_then_end = true;
    k->state = S_DONE;
}

/* Room for n more bytes of output: false (and the connection ends) past
 * OUT_HARD or without memory. */
static bool reserve(amqp__conn *c, size_t n)
{
    amqp__c91 *k = c->c91;
    if (k->state == S_DONE)
        return false;
    if (k->ocap - k->olen >= n)
        return true;
    /* What waits unread counts, not what comes: one delivery may be as
     * large as max_message_size (128 MiB by default), more than OUT_HARD,
     * and deliveries are only written while less than OUT_SOFT waits. */
    if (k->olen > OUT_HARD) {
        not_read(c);
        return false;
    }
    size_t cap = k->ocap ? k->ocap : 4096;
    while (cap - k->olen < n)
        cap *= 2;
    uint8_t *o = realloc(k->out, cap);
    if (!o) {
        sv_log(SV_LOG_ERROR, "connection %s: out of memory for AMQP 0-9-1 output; closed", c->peer);
        k->flush_then_end = true;
        k->state = S_DONE;
        return false;
    }
    k->out = o;
    k->ocap = cap;
    return true;
}

static void put_method(amqp__conn *c, uint16_t ch, amqp91_method *m)
{
    amqp__c91 *k = c->c91;
    /* Methods are small but for their tables (server-properties, which
     * has its own buffer): a frame_max is room enough. */
    size_t want = 512;
    for (;;) {
        if (!reserve(c, want))
            return;
        int n = amqp91_method_frame(ch, m, k->out + k->olen, k->ocap - k->olen);
        if (n >= 0) {
            k->olen += (size_t)n;
            return;
        }
        if (n != -ENOSPC || want >= (1u << 20)) {
            sv_log(SV_LOG_ERROR, "connection %s: cannot encode %s (%d)", c->peer,
                   amqp91_method_desc(m->id) ? amqp91_method_desc(m->id)->name : "a method", n);
            return;
        }
        want *= 4;
    }
}

void amqp__091_method(amqp__conn *c, uint16_t ch, amqp91_method *m) { put_method(c, ch, m); }

int amqp__091_content(amqp__conn *c, uint16_t ch, amqp91_method *m, const rt_msg *msg)
{
    amqp__c91 *k = c->c91;
    uint32_t fmax = k->agreed.frame_max;
    uint64_t body = 0;
    /* Method frame, then the content header in a frame of its own. */
    put_method(c, ch, m);
    if (k->state == S_DONE || !reserve(c, fmax))
        return -EPIPE;
    uint8_t *hdr = k->out + k->olen + 7;
    int hn = amqp__091_msg_header(msg, hdr, fmax - AMQP91_FRAME_OVERHEAD, &body);
    if (hn < 0) {
        /* The method went out: the client must get content to go with it.
         * Properties too large for one frame (an AMQP 1.0 publisher's:
         * 0-9-1 ones came in a frame) are left out; the body still goes. */
        size_t pos = 0, len;
        const uint8_t *p;
        body = 0;
        while (hn == -ENOSPC && amqp__091_body_next(msg, &pos, &p, &len))
            body += len;
        amqp91_header h = {.class_id = 60, .body_size = body};
        hn = amqp91_header_encode(&h, hdr, fmax - AMQP91_FRAME_OVERHEAD);
        sv_log(SV_LOG_WARNING, "connection %s: a message's properties do not fit a 0-9-1 frame of %u bytes: %s",
               c->peer, fmax, body ? "sent without them" : "sent without them or its body (unreadable)");
        if (hn < 0)
            return hn;
    }
    size_t fl = (size_t)amqp91_frame_write(AMQP91_FRAME_HEADER, ch, hdr, (uint32_t)hn, k->out + k->olen, fmax);
    k->olen += fl;
    if (!body)
        return 0;
    if (!reserve(c, body + (body / (fmax - AMQP91_FRAME_OVERHEAD) + 1) * AMQP91_FRAME_OVERHEAD))
        return -EPIPE;
    /* Body frames of at most frame_max, filled from the message's spans. */
    size_t pos = 0, room = 0;
    uint8_t *frame = NULL;
    const uint8_t *p;
    size_t len;
    uint64_t left = body;
    while (left && amqp__091_body_next(msg, &pos, &p, &len)) {
        while (len && left) {
            if (!room) {
                frame = k->out + k->olen;
                uint64_t fsz = left < fmax - AMQP91_FRAME_OVERHEAD ? left : fmax - AMQP91_FRAME_OVERHEAD;
                frame[0] = AMQP91_FRAME_BODY;
                frame[1] = (uint8_t)(ch >> 8);
                frame[2] = (uint8_t)ch;
                frame[3] = (uint8_t)(fsz >> 24);
                frame[4] = (uint8_t)(fsz >> 16);
                frame[5] = (uint8_t)(fsz >> 8);
                frame[6] = (uint8_t)fsz;
                k->olen += 7;
                room = (size_t)fsz;
            }
            size_t take = len < room ? len : room;
            memcpy(k->out + k->olen, p, take);
            k->olen += take;
            p += take;
            len -= take;
            room -= take;
            left -= take;
            if (!room)
                k->out[k->olen++] = AMQP91_FRAME_END;
        }
    }
    if (room || left) { /* the spans held less than the header said: pad, the frame sizes are out */
        while (left) {
            if (!room) {
                uint64_t fsz = left < fmax - AMQP91_FRAME_OVERHEAD ? left : fmax - AMQP91_FRAME_OVERHEAD;
                uint8_t h7[7] = {AMQP91_FRAME_BODY,    (uint8_t)(ch >> 8),  (uint8_t)ch, (uint8_t)(fsz >> 24),
                                 (uint8_t)(fsz >> 16), (uint8_t)(fsz >> 8), (uint8_t)fsz};
                memcpy(k->out + k->olen, h7, 7);
                k->olen += 7;
                room = (size_t)fsz;
            }
            memset(k->out + k->olen, 0, room);
            k->olen += room;
            left -= room;
            room = 0;
            k->out[k->olen++] = AMQP91_FRAME_END;
        }
        if (room) {
            memset(k->out + k->olen, 0, room);
            k->olen += room;
            k->out[k->olen++] = AMQP91_FRAME_END;
        }
        sv_log(SV_LOG_ERROR, "connection %s: a message's body was shorter than its size", c->peer);
    }
    (void)frame;
    return 0;
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
static void conn_closev(amqp__conn *c, int code, uint32_t method, bool framing, const char *fmt, va_list ap)
{
    amqp__c91 *k = c->c91;
    if (k->state >= S_CLOSING)
        return;
    char text[256];
    int len = vsnprintf(text, sizeof text, fmt, ap);
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

static void conn_close(amqp__conn *c, int code, uint32_t method, bool framing, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static void conn_close(amqp__conn *c, int code, uint32_t method, bool framing, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    conn_closev(c, code, method, framing, fmt, ap);
    va_end(ap);
}

void amqp__091_conn_close(amqp__conn *c, int code, uint32_t method, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    conn_closev(c, code, method, false, fmt, ap);
    va_end(ap);
}

static void chan_free(amqp__conn *c, uint16_t n)
{
    amqp__c91 *k = c->c91;
    amqp__091_chan *ch = k->ch ? k->ch[n] : NULL;
    if (!ch)
        return;
    amqp__091_consume_chan_free(c, ch);
    amqp__091_pub_chan_free(c, ch);
    free(ch);
    k->ch[n] = NULL;
    amqp__reg_chan_close(&c->reg, n);
}

/* A channel exception: Channel.Close; the channel is gone for us at once
 * (its consumers cancelled, its unsettled deliveries back in their
 * queues), and what the client sends on it until Close-Ok is dropped. */
void amqp__091_chan_close(amqp__conn *c, uint16_t n, int code, uint32_t method, const char *fmt, ...)
{
    amqp__c91 *k = c->c91;
    amqp__091_chan *ch = k->ch ? k->ch[n] : NULL;
    if (!ch || ch->state != AMQP__CH_OPEN)
        return;
    char text[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    sv_log(SV_LOG_INFO, "connection %s: channel %u closed: %d %s: %s", c->peer, n, code, amqp91_reply_name(code), text);
    char full[300];
    int flen = snprintf(full, sizeof full, "%s - %s", amqp91_reply_name(code), text);
    if (flen < 0 || flen > 255)
        flen = 255;
    amqp91_method m = {.id = AMQP91_CHANNEL_CLOSE};
    m.a.channel_close.reply_code = (uint16_t)code;
    m.a.channel_close.reply_text = (amqp91_bytes){(const uint8_t *)full, (uint32_t)flen};
    m.a.channel_close.class_id = (uint16_t)(method >> 16);
    m.a.channel_close.method_id = (uint16_t)method;
    put_method(c, n, &m);
    amqp__091_consume_chan_free(c, ch);
    amqp__091_pub_chan_free(c, ch);
    ch->state = AMQP__CH_CLOSING;
}

amqp__091_chan *amqp__091_chan_get(amqp__conn *c, uint16_t n, uint64_t epoch)
{
    amqp__c91 *k = c->c91;
    amqp__091_chan *ch = k->ch && n <= k->agreed.channel_max ? k->ch[n] : NULL;
    return ch && ch->state == AMQP__CH_OPEN && (!epoch || ch->epoch == epoch) ? ch : NULL;
}

static void simple(amqp__conn *c, uint16_t ch, uint32_t id)
{
    amqp91_method m = {.id = id};
    put_method(c, ch, &m);
}

void amqp__091_simple(amqp__conn *c, uint16_t ch, uint32_t id) { simple(c, ch, id); }

void amqp__091_name(amqp91_bytes b, char *out)
{
    size_t n = b.len < RT_NAME_MAX ? b.len : RT_NAME_MAX;
    if (n)
        memcpy(out, b.p, n);
    out[n] = '\0';
}

amqp__091_call *amqp__091_call_to(amqp__conn *c, uint16_t ch, uint32_t method, sv_pid to, sv_msg *req)
{
    amqp__c91 *k = c->c91;
    uint64_t ref;
    if (!req || sv_call_async(c->self, to, req, 10000, &ref) < 0) {
        sv_msg_free(req);
        return NULL;
    }
    amqp__091_call *e = sv_map_put(&k->calls, 0, ref);
    if (!e)
        return NULL; /* its answer finds nothing: the channel is closed by the caller */
    e->channel = ch;
    e->method = method;
    e->epoch = k->ch[ch] ? k->ch[ch]->epoch : 0;
    k->waiting++;
    return e;
}

/* ------------------------------------------------------------- handshake */

static void send_start(amqp__conn *c)
{
    uint8_t props[1024];
    int n = amqp__091_server_props(props, sizeof props);
    amqp91_method m = {.id = AMQP91_CONNECTION_START};
    m.a.connection_start.version_major = 0;
    m.a.connection_start.version_minor = 9;
    m.a.connection_start.server_properties = (amqp91_bytes){props, n > 0 ? (uint32_t)n : 0};
    /* EXTERNAL where a verified client certificate named someone (tls.c). */
    const char *mechs = c->sasl.external[0] ? "EXTERNAL PLAIN AMQPLAIN" : "PLAIN AMQPLAIN";
    m.a.connection_start.mechanisms = (amqp91_bytes){(const uint8_t *)mechs, (uint32_t)strlen(mechs)};
    m.a.connection_start.locales = (amqp91_bytes){(const uint8_t *)"en_US", 5};
    put_method(c, 0, &m);
}

static void on_start_ok(amqp__conn *c, const amqp91_connection_start_ok *a)
{
    amqp__c91 *k = c->c91;
    k->fail_close = amqp__091_client_cap(a->client_properties, "authentication_failure_close");
    k->cap_cancel = amqp__091_client_cap(a->client_properties, "consumer_cancel_notify");
    k->cap_blocked = amqp__091_client_cap(a->client_properties, "connection.blocked");
    amqp__091_client_name(a->client_properties, k->client, sizeof k->client);
    char user[128] = "", pass[256] = "", out[128];
    const char *why = "";
    const struct sockaddr *peer = (const struct sockaddr *)&c->sasl.peer;
    int rc;
    bool external = a->mechanism.len == 8 && !memcmp(a->mechanism.p, "EXTERNAL", 8) && c->sasl.external[0];
    if (external) {
        /* The certificate's CN is the user; the response, if any, is an
         * authorization identity, which must be that same name. */
        k->mech = "EXTERNAL";
        snprintf(user, sizeof user, "%s", c->sasl.external);
        bool same =
            !a->response.len || (a->response.len == strlen(user) && !memcmp(a->response.p, user, a->response.len));
        rc = same && c->cfg->auth && c->cfg->auth(c->cfg->auth_ctx, "EXTERNAL", user, NULL, peer, out, sizeof out) == 0
                 ? 0
                 : -EACCES;
        why = same ? "no such user as the certificate names" : "asked to act as another user than the certificate's";
    } else {
        rc = amqp__091_credentials(a->mechanism, a->response, user, sizeof user, pass, sizeof pass, &why);
        k->mech = a->mechanism.len == 8 ? "AMQPLAIN" : "PLAIN";
        if (rc == 0 &&
            (!c->cfg->auth || c->cfg->auth(c->cfg->auth_ctx, "PLAIN", user, pass, peer, out, sizeof out) < 0)) {
            rc = -EACCES;
            why = "wrong user or password, or not allowed from here";
        }
    }
    memset(pass, 0, sizeof pass);
    if (rc < 0) {
        char who[128], mech[24];
        amqp__091_printable((const uint8_t *)user, rc == -EACCES ? strlen(user) : 0, who, sizeof who);
        amqp__091_printable(a->mechanism.p, a->mechanism.len, mech, sizeof mech);
        sv_log(SV_LOG_WARNING, "connection %s: AMQP 0-9-1 authentication failed for %s (%s): %s", c->peer,
               who[0] ? who : "?", mech, why);
        amqp__login_refused(c); /* the answer waits: a growing delay per address (amqp__091_work) */
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
    snprintf(c->sasl.user, sizeof c->sasl.user, "%s", out); /* whose permissions count (amqp__perm) */
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
    amqp__091_chan **chan = calloc((size_t)k->agreed.channel_max + 1, sizeof *chan);
    if (!in || !chan) {
        if (in)
            k->in = in;
        free(chan);
        conn_close(c, AMQP91_INTERNAL_ERROR, AMQP91_CONNECTION_TUNE_OK, false, "out of memory");
        return;
    }
    k->in = in;
    k->icap = k->agreed.frame_max;
    k->ch = chan;
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
    char why[256];
    if (amqp__perm(c, AMQP_PERM_VHOST, NULL, NULL, why, sizeof why) < 0) {
        conn_close(c, AMQP91_NOT_ALLOWED, AMQP91_CONNECTION_OPEN, false, "%s", why);
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

static void chan_open(amqp__conn *c, uint16_t n)
{
    amqp__c91 *k = c->c91;
    amqp__091_chan *ch = calloc(1, sizeof *ch);
    if (!ch) {
        conn_close(c, AMQP91_INTERNAL_ERROR, AMQP91_CHANNEL_OPEN, false, "out of memory for channel %u", n);
        return;
    }
    ch->state = AMQP__CH_OPEN;
    ch->number = n;
    ch->epoch = ++k->epochs;
    ch->next_tag = ch->next_seq = 1;
    k->ch[n] = ch;
    if (amqp__reg_chan_open(&c->reg, n) < 0)
        sv_log(SV_LOG_WARNING, "connection %s: channel %u: no memory to list it", c->peer, n);
    simple(c, n, AMQP91_CHANNEL_OPEN_OK);
}

/* A method on channel n (1..channel_max). */
static void on_chan_method(amqp__conn *c, uint16_t n, const amqp91_method *m)
{
    amqp__c91 *k = c->c91;
    amqp__091_chan *ch = k->ch[n];
    if (m->id == AMQP91_CHANNEL_OPEN) {
        if (ch)
            conn_close(c, AMQP91_CHANNEL_ERROR, m->id, false, "channel %u is open already", n);
        else
            chan_open(c, n);
        return;
    }
    if (!ch && m->id == AMQP91_CHANNEL_CLOSE_OK)
        return; /* both sides closed at once: we answered its Close already */
    if (!ch) {
        conn_close(c, AMQP91_CHANNEL_ERROR, m->id, false, "%s on channel %u, which is not open", m->desc->name, n);
        return;
    }
    if (m->id == AMQP91_CHANNEL_CLOSE) { /* open, or closing both ways at once */
        simple(c, n, AMQP91_CHANNEL_CLOSE_OK);
        chan_free(c, n);
        return;
    }
    if (m->id == AMQP91_CHANNEL_CLOSE_OK) {
        if (ch->state == AMQP__CH_CLOSING)
            chan_free(c, n);
        return;
    }
    if (ch->state == AMQP__CH_CLOSING)
        return; /* after our Channel.Close: dropped until its Close-Ok (spec 4.2.2) */
    if (ch->pub) {
        conn_close(c, AMQP91_UNEXPECTED_FRAME, m->id, false, "%s on channel %u while a publish's content was due",
                   m->desc->name, n);
        return;
    }
    switch (m->id >> 16) {
    case 40: /* exchange */
    case 50: /* queue */ amqp__091_defs_method(c, ch, m); return;
    case 60: /* basic */
        if (m->id == AMQP91_BASIC_PUBLISH)
            amqp__091_publish(c, ch, &m->a.basic_publish);
        else
            amqp__091_basic_method(c, ch, m);
        return;
    case 85: /* confirm */
        ch->confirm = true;
        if (!m->a.confirm_select.nowait)
            simple(c, n, AMQP91_CONFIRM_SELECT_OK);
        return;
    default: break;
    }
    switch (m->id) {
    case AMQP91_CHANNEL_FLOW: {
        /* Flow false holds deliveries (in the connection, against credit
         * already given) until flow true. */
        ch->flow_off = !m->a.channel_flow.active;
        amqp91_method r = {.id = AMQP91_CHANNEL_FLOW_OK};
        r.a.channel_flow_ok.active = m->a.channel_flow.active;
        put_method(c, n, &r);
        break;
    }
    case AMQP91_CHANNEL_FLOW_OK: break; /* Plexus sends no Flow */
    default:
        amqp__091_chan_close(c, n, AMQP91_NOT_IMPLEMENTED, m->id, "%s is not implemented%s", m->desc->name,
                             (m->id >> 16) == 90 ? " (Plexus has no transactions; use publisher confirms)" : "");
        break;
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
        amqp__091_chan *ch = f->channel ? k->ch[f->channel] : NULL;
        if (!f->channel)
            conn_close(c, AMQP91_CHANNEL_ERROR, 0, false, "content frame on channel 0");
        else if (!ch)
            conn_close(c, AMQP91_CHANNEL_ERROR, 0, false, "content frame on channel %u, which is not open", f->channel);
        else if (ch->state == AMQP__CH_OPEN && !ch->pub)
            conn_close(c, AMQP91_UNEXPECTED_FRAME, 0, false, "content frame on channel %u without a content method",
                       f->channel);
        else if (ch->state == AMQP__CH_OPEN)
            amqp__091_content_frame(c, ch, f);
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

/* Handles the whole frames in the input buffer, until a call it made
 * must be answered first. */
void amqp__091_handle_input(amqp__conn *c)
{
    amqp__c91 *k = c->c91;
    size_t off = 0;
    while (k->state < S_DONE && !k->flush_then_end && !k->waiting && off < k->ilen) {
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
    for (int i = 0; i < 8 && c->reading && !k->flush_then_end && k->ilen < k->icap; i++) {
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
        amqp__091_handle_input(c);
        if (k->olen >= OUT_SOFT || !amqp__091_may_read(c))
            break;
    }
}

/* ----------------------------------------------------------------- rounds */

/* Connection.Blocked / Unblocked for clients that take them, as a
 * resource alarm starts and ends. */
static void tell_blocked(amqp__conn *c)
{
    amqp__c91 *k = c->c91;
    bool alarm = rt_alarm();
    if (!k->cap_blocked || k->state != S_OPEN || alarm == k->blocked)
        return;
    k->blocked = alarm;
    if (alarm) {
        static const char why[] = "low on memory or disk space";
        amqp91_method m = {.id = AMQP91_CONNECTION_BLOCKED};
        m.a.connection_blocked.reason = (amqp91_bytes){(const uint8_t *)why, sizeof why - 1};
        put_method(c, 0, &m);
    } else {
        simple(c, 0, AMQP91_CONNECTION_UNBLOCKED);
    }
}

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
    if (c->sasl.hold_until) {
        /* A refused login: its answer waits in our buffer, and nothing
         * is read, until the address's delay is over. */
        if (now < c->sasl.hold_until) {
            c->reading = c->writing = false;
            amqp__sock_update_poll(c);
            uv_timer_start(&c->timer, amqp__conn_on_timer, c->sasl.hold_until - now, 0);
            return;
        }
        c->sasl.hold_until = 0;
    }
    if (k->state == S_OPEN) {
        tell_blocked(c);
        amqp__091_credit(c);
        if (amqp__outbox_flush(c) && !c->retry_armed)
            c->retry_armed = true;  /* a queue's mailbox is full: the timer tries again */
        amqp__091_send_confirms(c); /* after the flush: queues that confirm nothing have taken theirs */
        amqp__091_feed(c);
    }
    if (hb_ms && k->state < S_DONE && !k->flush_then_end) {
        if (now - k->last_recv >= 2ull * hb_ms) {
            sv_log(SV_LOG_WARNING,
                   "connection %s: AMQP 0-9-1 client missed heartbeats (silent %llu ms, heartbeat %u s)", c->peer,
                   (unsigned long long)(now - k->last_recv), k->agreed.heartbeat);
            k->state = S_DONE;
            k->olen = 0;
            k->flush_then_end = true;
        } else if (now - k->last_send >= hb_ms / 2 && !k->olen && reserve(c, 8)) { /* output waiting says enough */
            int n = amqp91_heartbeat_write(k->out + k->olen, k->ocap - k->olen);
            if (n > 0)
                k->olen += (size_t)n;
        }
    }
    write_out(c);
    /* Deliveries are written while little waits for the socket: when the
     * socket took it all, write more now (a few times a round), or large
     * messages would wait for the client's next frame, which a client
     * holding back its acks until it has more never sends. */
    for (int i = 0; k->state == S_OPEN && !c->writing && k->out_q.len + k->nheld; i++) {
        if (i == 16) {
            c->retry_armed = true; /* the rest in a moment: other processes get the scheduler */
            break;
        }
        size_t before = k->olen;
        amqp__091_feed(c);
        if (k->olen == before)
            break; /* nothing could go (held by a channel's limits) */
        write_out(c);
    }
    if (k->flush_then_end && !c->writing) {
        amqp__conn_finish(c);
        return;
    }
    bool may_read = amqp__091_may_read(c);
    /* While a call is under way frames wait unhandled, but are still read
     * (up to a frame): the client's heartbeats keep counting. */
    c->reading = !k->flush_then_end && k->olen < OUT_SOFT && k->ilen < k->icap && may_read;
    amqp__sock_update_poll(c);
    /* The next thing due: a heartbeat to send, the client's silence, a
     * deadline, a retry (a full mailbox, an alarm holding reading). */
    uint64_t at = k->deadline;
    if (hb_ms && !k->flush_then_end) {
        uint64_t send_at = k->last_send + hb_ms / 2, dead_at = k->last_recv + 2ull * hb_ms;
        uint64_t due = send_at < dead_at && !k->olen ? send_at : dead_at;
        if (!at || due < at)
            at = due;
    }
    if (c->retry_armed || !may_read || k->blocked) {
        /* A full mailbox: soon; a pause for a slow queue: when it ends; an
         * alarm: every ALARM_POLL_MS. */
        uint64_t ms = ALARM_POLL_MS, wall = sv_now_ms();
        if (c->retry_armed)
            ms = 1;
        else if (k->paused_until > wall)
            ms = k->paused_until - wall < ALARM_POLL_MS ? k->paused_until - wall : ALARM_POLL_MS;
        if (!at || now + ms < at)
            at = now + ms;
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

/* The answer to a call: its channel hears it (if still the same opening),
 * then input goes on. */
static void on_reply(amqp__conn *c, sv_msg *m)
{
    amqp__c91 *k = c->c91;
    amqp__091_call call;
    if (!sv_map_del(&k->calls, 0, m->ref, &call))
        return;
    k->waiting--;
    if (call.method >> 16 == 60)
        amqp__091_consume_reply(c, &call, m);
    else
        amqp__091_defs_reply(c, &call, m);
    free(call.req);
}

void amqp__091_info(amqp__conn *c, sv_msg *m)
{
    amqp__c91 *k = c->c91;
    switch (m->tag) {
    case RT_Q_DELIVER: amqp__091_deliver(c, m); break;
    case RT_Q_CONFIRM: amqp__091_confirm(c, m); break;
    case RT_Q_DRAINED: amqp__091_drained(c, m); break;
    case RT_Q_CONSUMER_GONE: amqp__091_consumer_gone(c, m); break;
    case AMQP__TAG_CLOSE: /* from the admin API */
        conn_close(c, AMQP91_CONNECTION_FORCED, 0, false, "%.*s", (int)(m->len < 200 ? m->len : 200),
                   (const char *)m->data);
        break;
    default:
        if (m->kind == SV_MSG_REPLY)
            on_reply(c, m);
        else if (m->kind == SV_MSG_EXIT && sv_pid_eq(m->from, sv_parent(c->self)))
            conn_close(c, AMQP91_CONNECTION_FORCED, 0, false, "the broker is shutting down");
        break;
    }
    if (!k->waiting && k->ilen)
        amqp__091_handle_input(c); /* what waited for an answer */
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
    k->cons = SV_MAP_INIT(amqp__091_cref);
    k->tags = SV_MAP_INIT(amqp__091_tag);
    k->calls = SV_MAP_INIT(amqp__091_call);
    k->ours.channel_max = CHANNEL_MAX;
    /* At least the spec's minimum, at most what the broker takes. */
    k->ours.frame_max = c->cfg->max_frame_size > AMQP91_FRAME_MIN_SIZE ? c->cfg->max_frame_size : AMQP91_FRAME_MIN_SIZE;
    k->agreed.frame_max = PRE_TUNE_FRAME;
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
        amqp__091_handle_input(c);
        if (take == 0)
            break;
    }
}

void amqp__091_free(amqp__conn *c)
{
    amqp__c91 *k = c->c91;
    if (!k)
        return;
    for (uint32_t i = 0; k->ch && i <= k->agreed.channel_max; i++)
        if (k->ch[i]) {
            amqp__091_consume_chan_free(c, k->ch[i]);
            amqp__091_pub_chan_free(c, k->ch[i]);
            free(k->ch[i]);
        }
    for (uint32_t i = 0; i < k->calls.cap; i++) {
        amqp__091_call *e = sv_map_at(&k->calls, i);
        if (e)
            free(e->req);
    }
    amqp__091_ring_free(&k->out_q);
    sv_map_free(&k->cons);
    sv_map_free(&k->tags);
    sv_map_free(&k->calls);
    free(k->ch);
    free(k->in);
    free(k->out);
    free(k);
    c->c91 = NULL;
}
