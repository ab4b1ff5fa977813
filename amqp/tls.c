/* tls.c — TLS on a connection's socket, below both protocol front ends.
 *
 * Port 5671's connections are the same connection processes as 5672's:
 * AMQP 1.0 (proton's driver) or AMQP 0-9-1 (conn091.c, which takes the
 * connection over when the header says so). Proton's own SSL layer would
 * serve only the first, so TLS sits here instead, in the socket path both
 * share (socket.c: amqp__sock_recv, amqp__sock_send): OpenSSL works on the
 * socket itself and both front ends read and write plaintext. Plain
 * connections never come here (c->tls is NULL).
 *
 * The handshake is bounded in time (tls.handshake_timeout); its failures (a client
 * certificate that does not verify, an expired one, a client that refused
 * ours, a plaintext client on this port) are logged with the peer and the
 * reason, and only that connection closes. OpenSSL may hold decrypted input
 * the socket no longer shows as readable: a zero timer reads it then.
 */
#include <errno.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "amqp/amqp_internal.h"

struct amqp__tls {
    SSL *ssl;
    uv_timer_t timer; /* the handshake's deadline; then: read what OpenSSL holds */
    bool established;
    bool failed;     /* the handshake or the session broke: nothing more in or out */
    bool eof;        /* the client ended its side */
    bool want_write; /* OpenSSL must write before it can read on */
    bool sniffed;    /* the first byte said TLS */
};

/* --------------------------------------------------------------- helpers */

/* Up to n bytes a client sent as text for the log. */
static void bytes_text(const uint8_t *h, size_t n, char *out, size_t len)
{
    size_t o = 0;
    out[0] = '\0';
    for (size_t i = 0; i < n && o + 5 < len; i++)
        o += (size_t)snprintf(out + o, len - o, h[i] >= 0x20 && h[i] < 0x7f && h[i] != '\\' ? "%c" : "\\x%02x", h[i]);
}

/* Why OpenSSL failed, in words: its last error, and for a client
 * certificate that did not verify, what was wrong with it. */
static void why_failed(amqp__conn *c, int err, char *out, size_t len)
{
    amqp__tls *t = c->tls;
    unsigned long e = ERR_peek_last_error();
    const char *r = e ? ERR_reason_error_string(e) : NULL;
    long v = SSL_get_verify_result(t->ssl);
    if ((err == SSL_ERROR_SYSCALL || err == SSL_ERROR_ZERO_RETURN) && !e)
        snprintf(out, len, "%s",
                 err == SSL_ERROR_SYSCALL && errno
                     ? strerror(errno)
                     : "the client closed the connection without a TLS alert (did it refuse our certificate?)");
    else if (v != X509_V_OK)
        snprintf(out, len, "%s (client certificate: %s)", r ? r : "certificate verify failed",
                 X509_verify_cert_error_string(v));
    else
        snprintf(out, len, "%s", r ? r : "unknown error");
    ERR_clear_error();
}

static void fail(amqp__conn *c, const char *what, int err)
{
    char why[256];
    why_failed(c, err, why, sizeof why);
    c->tls->failed = true;
    uv_timer_stop(&c->tls->timer);
    sv_log(SV_LOG_WARNING, "connection %s: %s: %s", c->peer, what, why);
}

/* The user a verified client certificate names (its subject's CN), for
 * SASL EXTERNAL; "" if there is none or it is not plain text. */
static void cert_user(amqp__conn *c, char *out, size_t len)
{
    out[0] = '\0';
    X509 *x = SSL_get0_peer_certificate(c->tls->ssl);
    if (!x || SSL_get_verify_result(c->tls->ssl) != X509_V_OK)
        return;
    X509_NAME *subj = X509_get_subject_name(x);
    int i = X509_NAME_get_index_by_NID(subj, NID_commonName, -1);
    if (i < 0)
        return;
    unsigned char *s = NULL;
    int n = ASN1_STRING_to_UTF8(&s, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subj, i)));
    if (n > 0 && (size_t)n < len && strlen((char *)s) == (size_t)n) /* no NUL inside */
        memcpy(out, s, (size_t)n + 1);
    OPENSSL_free(s);
}

static void established(amqp__conn *c)
{
    amqp__tls *t = c->tls;
    t->established = true;
    uv_timer_stop(&t->timer);
    cert_user(c, c->sasl.external, sizeof c->sasl.external);
    X509 *x = SSL_get0_peer_certificate(t->ssl);
    char subj[256] = "";
    if (x)
        X509_NAME_oneline(X509_get_subject_name(x), subj, sizeof subj);
    sv_log(SV_LOG_INFO, "connection %s: %s %s%s%s%s", c->peer, SSL_get_version(t->ssl), SSL_get_cipher_name(t->ssl),
           x ? ", client certificate " : ", no client certificate", subj,
           x ? (c->sasl.external[0] ? " (verified)" : " (no usable CN)") : "");
}

/* A plaintext client on the TLS port: what it sent is logged; an AMQP
 * client is answered with AMQP 1.0's TLS header ("AMQP 2 1 0 0": this
 * port speaks TLS), as the protocol negotiation of AMQP 1.0 (2.2) says. */
static void refuse_plaintext(amqp__conn *c)
{
    uint8_t h[8];
    ssize_t n = recv(c->fd, h, sizeof h, 0);
    char got[48];
    bytes_text(h, n > 0 ? (size_t)n : 0, got, sizeof got);
    bool amqp = n >= 4 && !memcmp(h, "AMQP", 4);
    if (amqp)
        (void)!send(c->fd, "AMQP\x02\x01\x00\x00", 8, MSG_NOSIGNAL);
    c->tls->failed = true;
    uv_timer_stop(&c->tls->timer);
    sv_log(SV_LOG_WARNING, "connection %s: not a TLS handshake on the TLS port: the client sent '%s'%s; closed",
           c->peer, got, amqp ? " (plaintext AMQP); answered 'AMQP 2 1 0 0' (TLS required)" : "");
}

/* The handshake, as far as the socket allows: 1 done, 0 not yet, -1 failed. */
static int handshake(amqp__conn *c)
{
    amqp__tls *t = c->tls;
    if (!t->sniffed) {
        uint8_t b;
        ssize_t n = recv(c->fd, &b, 1, MSG_PEEK);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
            return 0;
        if (n <= 0) {
            sv_log(SV_LOG_INFO, "connection %s: closed by the client before a TLS handshake", c->peer);
            t->failed = true;
            uv_timer_stop(&t->timer);
            return -1;
        }
        if (b != 0x16) { /* a TLS record of type handshake */
            refuse_plaintext(c);
            return -1;
        }
        t->sniffed = true;
    }
    ERR_clear_error();
    int r = SSL_do_handshake(t->ssl);
    if (r == 1) {
        t->want_write = false;
        established(c);
        return 1;
    }
    int e = SSL_get_error(t->ssl, r);
    t->want_write = e == SSL_ERROR_WANT_WRITE;
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
        return 0;
    fail(c, "TLS handshake failed", e);
    return -1;
}

/* ------------------------------------------------------------------ I/O */

ssize_t amqp__tls_recv(amqp__conn *c, void *buf, size_t n)
{
    amqp__tls *t = c->tls;
    if (t->failed) {
        errno = EPROTO;
        return -1;
    }
    if (!n || t->eof)
        return 0;
    if (!t->established) {
        int h = handshake(c);
        if (h <= 0) {
            errno = h < 0 ? EPROTO : EAGAIN;
            return -1;
        }
    }
    /* Record by record until the buffer is full or the socket is empty,
     * so that a short read means "nothing more now", as with read(). */
    size_t got = 0;
    ERR_clear_error();
    while (got < n) {
        size_t k;
        if (SSL_read_ex(t->ssl, (char *)buf + got, n - got, &k) == 1) {
            got += k;
            continue;
        }
        int e = SSL_get_error(t->ssl, 0);
        t->want_write = e == SSL_ERROR_WANT_WRITE;
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
            break;
        if (e == SSL_ERROR_ZERO_RETURN) {
            t->eof = true;
            return (ssize_t)got;
        }
        if (e == SSL_ERROR_SYSCALL && errno) { /* the socket's own error (a reset): as read() says it */
            int err = errno;
            t->failed = true;
            ERR_clear_error();
            if (got)
                return (ssize_t)got;
            errno = err;
            return -1;
        }
        fail(c, "TLS error", e);
        if (got)
            return (ssize_t)got;
        errno = EPROTO;
        return -1;
    }
    if (got)
        return (ssize_t)got;
    errno = EAGAIN;
    return -1;
}

ssize_t amqp__tls_send(amqp__conn *c, const void *p, size_t n)
{
    amqp__tls *t = c->tls;
    if (t->failed)
        return -EPIPE;
    if (!t->established)
        return 0; /* held where it is until the handshake is done */
    size_t off = 0;
    ERR_clear_error();
    while (off < n) {
        size_t k;
        /* A record the socket took only part of stays with OpenSSL; the
         * next call repeats the same bytes (they are the caller's first). */
        if (SSL_write_ex(t->ssl, (const char *)p + off, n - off, &k) == 1) {
            off += k;
            continue;
        }
        int e = SSL_get_error(t->ssl, 0);
        if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ)
            break;
        if (e == SSL_ERROR_SYSCALL && errno) {
            int err = errno;
            t->failed = true;
            ERR_clear_error();
            return off ? (ssize_t)off : -err;
        }
        fail(c, "TLS error while writing", e);
        return off ? (ssize_t)off : -EPIPE;
    }
    return (ssize_t)off;
}

/* ---------------------------------------------------------------- events */

/* Before the handshake is done the front ends' output waits (sends take
 * nothing): watching for writable then would only spin. */
int amqp__tls_poll_events(amqp__conn *c, int ev)
{
    amqp__tls *t = c->tls;
    if (!t->established && !t->failed)
        ev = (ev & ~UV_WRITABLE) | (ev ? UV_READABLE : 0);
    if (t->want_write && !t->failed)
        ev |= UV_WRITABLE;
    return ev;
}

bool amqp__tls_read_blocked(amqp__conn *c) { return c->tls->want_write && !c->tls->failed; }
bool amqp__tls_failed(amqp__conn *c) { return c->tls->failed; }

static void on_timer(uv_timer_t *tm)
{
    amqp__conn *c = tm->data;
    amqp__tls *t = c->tls;
    if (!t->established && !t->failed) {
        sv_log(SV_LOG_WARNING, "connection %s: TLS handshake not done in %u ms; closed", c->peer,
               c->cfg->tls.handshake_timeout_ms);
        t->failed = true;
    }
    amqp__sock_event(c, 0, UV_READABLE);
}

void amqp__tls_broken(amqp__conn *c, int status)
{
    amqp__tls *t = c->tls;
    if (t->established || t->failed)
        return;
    /* A client that gave up on the handshake (our certificate, say) sends
     * its alert and may reset the socket: read the alert for the log. */
    if (handshake(c) == 0) {
        sv_log(SV_LOG_WARNING, "connection %s: TLS handshake failed: the connection broke (%s)", c->peer,
               uv_strerror(status));
        t->failed = true;
        uv_timer_stop(&t->timer);
    }
}

/* After a round: input OpenSSL decrypted (or read) and the front end has
 * not taken yet is read now, as the socket will not say so. */
void amqp__tls_after_round(amqp__conn *c)
{
    amqp__tls *t = c->tls;
    if (t->established && !t->failed && c->reading && SSL_has_pending(t->ssl))
        uv_timer_start(&t->timer, on_timer, 0, 0);
}

/* ------------------------------------------------------------- lifetime */

int amqp__tls_start(amqp__conn *c, void *ctx)
{
    amqp__tls *t = calloc(1, sizeof *t);
    if (!t)
        return -ENOMEM;
    if (!(t->ssl = SSL_new(ctx)) || SSL_set_fd(t->ssl, c->fd) != 1) {
        SSL_free(t->ssl);
        free(t);
        ERR_clear_error();
        return -ENOMEM;
    }
    SSL_set_accept_state(t->ssl);
    uv_timer_init(c->loop, &t->timer);
    t->timer.data = c;
    c->handles++;
    c->tls = t;
    uv_timer_start(&t->timer, on_timer, c->cfg->tls.handshake_timeout_ms, 0);
    return 0;
}

void amqp__tls_shutdown(amqp__conn *c)
{
    amqp__tls *t = c->tls;
    if (t->established && !t->failed) {
        ERR_clear_error();
        SSL_shutdown(t->ssl); /* our close_notify, if the socket takes it; no wait for theirs */
        ERR_clear_error();
    }
    t->failed = true;
    uv_timer_stop(&t->timer);
}

void amqp__tls_close(amqp__conn *c, uv_close_cb cb)
{
    if (!uv_is_closing((uv_handle_t *)&c->tls->timer)) {
        uv_timer_stop(&c->tls->timer);
        uv_close((uv_handle_t *)&c->tls->timer, cb);
    }
}

void amqp__tls_free(amqp__conn *c)
{
    if (!c->tls)
        return;
    SSL_free(c->tls->ssl);
    free(c->tls);
    c->tls = NULL;
}
