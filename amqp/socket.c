/* socket.c — a connection's socket: reading into proton's input buffer,
 * writing out of its output buffer, and closing gently. On the TLS port the
 * bytes pass through tls.c on their way (amqp__sock_recv, amqp__sock_send),
 * for both front ends.
 *
 * The socket is the connection's own (plain read and write), watched with
 * a uv_poll, so proton's buffers are the only buffers: what the socket
 * does not take stays in proton's output buffer until it is writable
 * again, and nothing is copied on its way out. The first 8 bytes are the
 * protocol header, classified before proton sees them (header.c). A close
 * lingers (half-close, drain briefly) so the client reads the close frame
 * instead of a reset. What to do with the bytes is connection.c's.
 */
#include <errno.h>
#include <proton/connection.h>
#include <proton/transport.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "amqp/amqp_internal.h"

/* The socket is ours (read and written with read/write), watched with a
 * uv_poll: proton's own buffers are the only buffers. Output the socket
 * does not take stays in proton's buffer until the socket is writable
 * again, so nothing is ever copied on its way out. */

static void on_poll(uv_poll_t *p, int status, int events);

static void on_handle_closed(uv_handle_t *h)
{
    amqp__conn *c = h->data;
    if (--c->handles == 0) {
        amqp__tls_free(c);
        close(c->fd); /* after the poll handle: libuv must not watch a closed fd */
        free(c);
    }
}

void amqp__sock_close(amqp__conn *c)
{
    c->lingering = false;
    if (!uv_is_closing((uv_handle_t *)&c->timer)) {
        uv_timer_stop(&c->timer);
        uv_close((uv_handle_t *)&c->timer, on_handle_closed);
    }
    if (!uv_is_closing((uv_handle_t *)&c->poll))
        uv_close((uv_handle_t *)&c->poll, on_handle_closed);
    if (c->tls)
        amqp__tls_close(c, on_handle_closed);
}

/* Watches the socket for what the connection can use now. */
void amqp__sock_update_poll(amqp__conn *c)
{
    int ev = c->lingering ? UV_READABLE : (c->reading ? UV_READABLE : 0) | (c->writing ? UV_WRITABLE : 0);
    if (c->tls && !c->lingering) {
        ev = amqp__tls_poll_events(c, ev);
        amqp__tls_after_round(c);
    }
    if (ev == c->events)
        return;
    if (ev ? uv_poll_start(&c->poll, ev, on_poll) == 0 : uv_poll_stop(&c->poll) == 0)
        c->events = ev;
}

/* A lingering close: after the last write, half-close and read (and drop)
 * what the client still sends, briefly, before closing. Closing a socket
 * with unread input makes the kernel send RST, and the client may then
 * lose our last frames: the close that says why. */
#define LINGER_MS 1000

static void linger_input(amqp__conn *c)
{
    char sink[16384];
    for (;;) {
        ssize_t n = read(c->fd, sink, sizeof sink);
        if (n > 0)
            continue;
        if (n < 0 && errno == EINTR)
            continue;
        if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK))
            amqp__sock_close(c); /* the client has gone too */
        return;
    }
}

static void linger_over(uv_timer_t *t)
{
    amqp__conn *c = t->data;
    if (c->lingering)
        amqp__sock_close(c);
}

void amqp__sock_linger(amqp__conn *c)
{
    c->lingering = true;
    if (c->tls)
        amqp__tls_shutdown(c);
    if (shutdown(c->fd, SHUT_WR) < 0) {
        amqp__sock_close(c);
        return;
    }
    amqp__sock_update_poll(c);
    uv_timer_start(&c->timer, linger_over, LINGER_MS, 0);
}

/* ---------------------------------------------------------------- input */

void amqp__sock_read_start(amqp__conn *c)
{
    if (!c->finished && !c->rejecting && !pn_connection_driver_read_closed(&c->d))
        c->reading = true;
}

void amqp__sock_read_stop(amqp__conn *c) { c->reading = false; }

/* Proton never sees a bad frame; the client gets a close that says what
 * was wrong (in SASL, where there is no close, an EOF). */
static void reject_input(amqp__conn *c, const char *cond, const char *why)
{
    sv_log(SV_LOG_WARNING, "connection %s: %s: %s", c->peer, cond, why);
    c->rejecting = true;
    amqp__sock_read_stop(c);
    if (pn_connection_state(c->d.connection) & PN_REMOTE_ACTIVE) {
        amqp__conn_close_with(c, cond, why);
    } else {
        /* Before the client's open proton sends no close of ours, but its
         * own error path does: the condition on the transport, input ended. */
        pn_connection_driver_errorf(&c->d, cond, "%s", why);
        pn_connection_driver_read_close(&c->d);
    }
}

/* The 8 bytes as text for the log: "AMQP 2 1 0 0", or escaped. */
static void header_text(const uint8_t *h, char *out, size_t len)
{
    if (!memcmp(h, "AMQP", 4)) {
        snprintf(out, len, "AMQP %u %u %u %u", h[4], h[5], h[6], h[7]);
        return;
    }
    size_t o = 0;
    for (int i = 0; i < 8 && o + 5 < len; i++)
        o += (size_t)snprintf(out + o, len - o, h[i] >= 0x20 && h[i] < 0x7f && h[i] != '\\' ? "%c" : "\\x%02x", h[i]);
}

/* A protocol header Plexus does not serve (TLS on a plain port, another
 * protocol, garbage): the spec's negotiation (2.2) answers with the header
 * that would be served and closes the socket. Proton never sees it. */
static void refuse_header(amqp__conn *c)
{
    char got[48], sent[48];
    header_text(c->fv.refused, got, sizeof got);
    header_text(c->fv.reply, sent, sizeof sent);
    if (c->fv.refused[0] == 0x16 && c->fv.refused[1] == 0x03) /* a TLS record: handshake */
        sv_log(SV_LOG_WARNING,
               "connection %s: a TLS handshake on the plaintext AMQP port (TLS clients belong on the TLS "
               "port%s); answered '%s' and closed",
               c->peer, c->cfg->tls_ctx ? ", tls.listen" : ", which is off: no tls.cert_file", sent);
    else
        sv_log(SV_LOG_WARNING, "connection %s: protocol header '%s' (%s) is not served here; answered '%s' and closed",
               c->peer, got, amqp__header_name(amqp__header_classify(c->fv.refused)), sent);
    c->rejecting = true;
    amqp__sock_read_stop(c);
    /* Whatever proton wrote before (a SASL exchange) goes first. */
    amqp__sock_write_out(c);
    if (!c->writing)
        amqp__sock_send(c, c->fv.reply, 8);
    pn_connection_driver_read_close(&c->d);
    pn_connection_driver_write_close(&c->d);
}

ssize_t amqp__sock_recv(amqp__conn *c, void *buf, size_t n)
{
    if (c->tls)
        return amqp__tls_recv(c, buf, n);
    return read(c->fd, buf, n);
}

/* Reads what the socket has, straight into proton's input buffer, each
 * chunk checked by the frame validator first. */
static void read_input(amqp__conn *c)
{
    for (int i = 0; i < 8 && c->reading; i++) {
        pn_rwbytes_t rb = pn_connection_driver_read_buffer(&c->d);
        if (!rb.size)
            return; /* proton holds all it can take: the next round reads on */
        ssize_t n = amqp__sock_recv(c, rb.start, rb.size);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n <= 0) {
            if (n < 0)
                sv_log(SV_LOG_DEBUG, "connection %s: read: %s", c->peer, strerror(errno));
            amqp__sock_read_stop(c);
            pn_connection_driver_read_close(&c->d);
            return;
        }
        const char *cond;
        char why[200];
        uint8_t had = c->fv.hlen; /* header bytes from earlier reads */
        int rc = amqp__fcheck_feed(&c->fv, rb.start, (size_t)n, &cond, why, sizeof why);
        if (rc == -EPROTONOSUPPORT && c->fv.amqp091) {
            /* AMQP 0-9-1: its own front end takes the connection over, with
             * what came after the header. Proton never sees a byte of it. */
            c->counts.recv_oct += (uint64_t)n;
            size_t used = 8u - had;
            amqp__091_begin(c, (const uint8_t *)rb.start + used, (size_t)n - used);
            return;
        }
        if (rc == -EPROTONOSUPPORT) {
            refuse_header(c);
            return;
        }
        if (rc < 0) {
            reject_input(c, cond, why);
            return;
        }
        pn_connection_driver_read_done(&c->d, (size_t)n);
        c->counts.recv_oct += (uint64_t)n;
        if (c->idle_off) { /* read again: the next tick counts from these bytes */
            pn_transport_set_idle_timeout(c->d.transport, c->cfg->idle_timeout_ms);
            c->idle_off = false;
        }
        if ((size_t)n < rb.size)
            return; /* the socket is empty */
    }
}

/* --------------------------------------------------------------- output */

/* Writes what proton has for the socket, from proton's own buffer; what the
 * socket does not take waits there until it is writable. */
ssize_t amqp__sock_send(amqp__conn *c, const void *p, size_t n)
{
    if (c->tls) {
        ssize_t sent = amqp__tls_send(c, p, n);
        if (sent > 0)
            c->counts.send_oct += (uint64_t)sent;
        return sent;
    }
    for (;;) {
        ssize_t sent = send(c->fd, p, n, MSG_NOSIGNAL);
        if (sent < 0 && errno == EINTR)
            continue;
        if (sent < 0)
            return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -errno;
        c->counts.send_oct += (uint64_t)sent;
        return sent;
    }
}

void amqp__sock_write_out(amqp__conn *c)
{
    c->writing = false;
    for (;;) {
        pn_bytes_t wb = pn_connection_driver_write_buffer(&c->d);
        if (!wb.size)
            return;
        ssize_t n = amqp__sock_send(c, wb.start, wb.size);
        if (n < 0) {
            pn_connection_driver_write_close(&c->d);
            return;
        }
        if (n > 0)
            pn_connection_driver_write_done(&c->d, (size_t)n);
        if ((size_t)n < wb.size) {
            c->writing = true;
            c->wlen = wb.size - (size_t)n;
            return;
        }
    }
}

static void on_poll(uv_poll_t *p, int status, int events) { amqp__sock_event(p->data, status, events); }

void amqp__sock_event(amqp__conn *c, int status, int events)
{
    if (c->lingering) {
        linger_input(c);
        return;
    }
    if (c->finished)
        return;
    if (c->tls && (events & UV_WRITABLE) && amqp__tls_read_blocked(c))
        events |= UV_READABLE; /* OpenSSL had to write before reading on */
    if (c->tls && status < 0)
        amqp__tls_broken(c, status);
    sv_enter(c->self);
    if (c->c91) {
        amqp__091_poll(c, status, events);
        sv_leave(c->self);
        return;
    }
    if (status < 0) { /* the socket is broken */
        amqp__sock_read_stop(c);
        pn_connection_driver_read_close(&c->d);
        pn_connection_driver_write_close(&c->d);
    } else if (events & UV_READABLE) {
        read_input(c);
    }
    if (c->c91)
        amqp__091_work(c); /* the header said 0-9-1 just now */
    else
        amqp__conn_work(c);
    sv_leave(c->self);
}
