/* amqp091_load_wire.c — the raw engine's connection: a non-blocking TCP
 * socket, read in large pieces into one buffer and written from another,
 * with frames, methods and tables through Plexus's 0-9-1 codec. The
 * handshake is the client's half of 0-9-1's (protocol header, Start-Ok with
 * PLAIN, Tune-Ok, Open, Channel.Open on channel 1).
 *
 * Every wait is a poll() of at most L91_WAIT_MS that then looks at the
 * run's deadline and stop flag, so no broker, silent or refusing, can hang
 * a run; what a broker says when it closes is what the run's failure says.
 */
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tests/bench/amqp091_load_wire.h"

#define IN_CAP (512u << 10) /* the read buffer: what one read() may take */
#define FRAME_MAX 131072u   /* what we offer in Tune-Ok (librabbitmq's default too) */
#define SETUP_S 10.0        /* each handshake step and synchronous method */
#define CLOSE_S 2.0         /* the broker's Close-Ok */

amqp91_bytes l91_bytes(const char *s) { return (amqp91_bytes){(const uint8_t *)s, (uint32_t)strlen(s)}; }

/* A failure of this connection; none once it is closing (the run's
 * outcome is known by then). */
static void cfail(l91_conn *c, const char *reason, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void cfail(l91_conn *c, const char *reason, const char *fmt, ...)
{
    if (c->quiet)
        return;
    char buf[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    l91_fail(c->r, reason, "%s: %s", c->who, buf);
}

static bool stopped(l91_conn *c, double until, const char *what)
{
    if (atomic_load(&c->r->stop) && !c->quiet)
        return true;
    if (l91_now() > until) {
        cfail(c, "timeout", "no %s from the broker in time", what);
        return true;
    }
    return false;
}

/* Non-blocking: false only when the connection broke. */
static bool write_some(l91_conn *c)
{
    while (c->out_off < c->out_len) {
        ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return true;
        if (n < 0) {
            cfail(c, c->open ? "error" : "connect", "cannot write to the broker: %s", strerror(errno));
            return false;
        }
        c->out_off += (size_t)n;
    }
    c->out_off = c->out_len = 0;
    return true;
}

bool l91_conn_write(l91_conn *c) { return write_some(c); }

uint32_t l91_method_id(const amqp91_frame *f)
{
    if (f->type != AMQP91_FRAME_METHOD || f->size < 4)
        return 0;
    const uint8_t *p = f->payload;
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

long l91_conn_pump(l91_conn *c, int timeout_ms)
{
    if (!write_some(c))
        return -1;
    struct pollfd p = {c->fd, POLLIN | (c->out_off < c->out_len ? POLLOUT : 0), 0};
    int rc = poll(&p, 1, timeout_ms);
    if (rc < 0 && errno != EINTR) {
        cfail(c, "error", "poll: %s", strerror(errno));
        return -1;
    }
    if (rc <= 0)
        return 0;
    if ((p.revents & POLLOUT) && !write_some(c))
        return -1;
    if (!(p.revents & (POLLIN | POLLHUP | POLLERR)))
        return 0;
    /* The unparsed rest (less than a frame) moves to the front. */
    if (c->in_off) {
        memmove(c->in, c->in + c->in_off, c->in_len - c->in_off);
        c->in_len -= c->in_off;
        c->in_off = 0;
    }
    if (c->in_len == c->in_cap) {
        cfail(c, "error", "a frame larger than the read buffer");
        return -1;
    }
    ssize_t n = recv(c->fd, c->in + c->in_len, c->in_cap - c->in_len, MSG_DONTWAIT);
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
        return 0;
    if (n <= 0) {
        const char *what = n < 0 ? strerror(errno) : "the broker closed the connection";
        cfail(c, c->open ? "error" : "connect", "%s%s", what, c->open ? "" : " during the handshake");
        return -1;
    }
    c->in_len += (size_t)n;
    return n;
}

int l91_conn_frame(l91_conn *c, amqp91_frame *f)
{
    const uint8_t *b = c->in + c->in_off;
    size_t n = c->in_len - c->in_off;
    const char *why = "bad frame";
    int rc = amqp91_frame_read(b, n, c->frame_max, f, &why);
    if (rc == 1) {
        c->in_off += f->len;
        return 1;
    }
    if (rc == 0)
        return 0;
    if (n >= 8 && memcmp(b, "AMQP", 4) == 0) /* a server answers a protocol it does not speak with its own header */
        cfail(c, "refused", "the broker does not speak AMQP 0-9-1: it answered with protocol header AMQP %u %u %u %u",
              b[4], b[5], b[6], b[7]);
    else
        cfail(c, "error", "the broker sent bytes that are not AMQP 0-9-1: %s", why);
    return -1;
}

/* The next frame, waiting until `until` at most. */
static bool next_frame(l91_conn *c, amqp91_frame *f, double until, const char *what)
{
    for (;;) {
        int rc = l91_conn_frame(c, f);
        if (rc != 0)
            return rc > 0;
        if (stopped(c, until, what) || l91_conn_pump(c, L91_WAIT_MS) < 0)
            return false;
    }
}

static bool flush(l91_conn *c, double until)
{
    while (c->out_off < c->out_len) {
        if (stopped(c, until, "room to write") || l91_conn_pump(c, L91_WAIT_MS) < 0)
            return false;
    }
    return true;
}

bool l91_conn_method(l91_conn *c, uint16_t ch, const amqp91_method *m)
{
    for (int tries = 0; tries < 2; tries++) {
        int n = amqp91_method_frame(ch, m, c->out + c->out_len, c->out_cap - c->out_len);
        if (n > 0) {
            c->out_len += (size_t)n;
            return true;
        }
        if (n != -ENOSPC)
            break;
        if (!flush(c, l91_now() + SETUP_S))
            return false;
    }
    const amqp91_mdesc *d = amqp91_method_desc(m->id);
    cfail(c, "error", "cannot encode %s (a name over 255 bytes?)", d ? d->name : "a method");
    return false;
}

static void send_close_ok(l91_conn *c, uint32_t id, uint16_t ch)
{
    amqp91_method ok = {.id = id};
    if (l91_conn_method(c, ch, &ok))
        write_some(c);
}

bool l91_conn_other(l91_conn *c, const amqp91_frame *f)
{
    if (f->type == AMQP91_FRAME_HEARTBEAT)
        return true;
    if (f->type != AMQP91_FRAME_METHOD) {
        cfail(c, "error", "a content frame (type %u) where a method was due", f->type);
        return false;
    }
    amqp91_method m;
    const char *why = "bad method";
    if (amqp91_method_decode(f->payload, f->size, &m, &why) < 0) {
        cfail(c, "error", "the broker sent a method the codec refuses: %s", why);
        return false;
    }
    switch (m.id) {
    case AMQP91_CONNECTION_CLOSE:
    case AMQP91_CHANNEL_CLOSE: {
        bool conn = m.id == AMQP91_CONNECTION_CLOSE;
        /* The two closes share their fields' layout. */
        const amqp91_connection_close *cl = &m.a.connection_close;
        const amqp91_mdesc *d = amqp91_method_desc((uint32_t)cl->class_id << 16 | cl->method_id);
        cfail(c, c->open ? "refused" : "connect", "%s closed by the broker: %u %.*s%s%s",
              conn ? "connection" : "channel", cl->reply_code, (int)cl->reply_text.len, (const char *)cl->reply_text.p,
              d ? ", after " : "", d ? d->name : "");
        send_close_ok(c, conn ? AMQP91_CONNECTION_CLOSE_OK : AMQP91_CHANNEL_CLOSE_OK, f->channel);
        return false;
    }
    case AMQP91_BASIC_CANCEL: cfail(c, "refused", "the broker cancelled the consumer"); return false;
    case AMQP91_CONNECTION_BLOCKED:
    case AMQP91_CONNECTION_UNBLOCKED: return true; /* a blocked publisher waits; the deadline bounds it */
    default: cfail(c, "error", "unexpected %s from the broker", m.desc->name); return false;
    }
}

/* Waits for the method `answer`; a close or anything else unexpected fails. */
static bool await_method(l91_conn *c, uint32_t answer, amqp91_method *reply, double until)
{
    const amqp91_mdesc *d = amqp91_method_desc(answer);
    for (;;) {
        amqp91_frame f;
        if (!next_frame(c, &f, until, d ? d->name : "answer"))
            return false;
        if (l91_method_id(&f) == answer) {
            const char *why = "bad method";
            if (amqp91_method_decode(f.payload, f.size, reply, &why) < 0) {
                cfail(c, "error", "the broker's %s: %s", d ? d->name : "answer", why);
                return false;
            }
            return true;
        }
        if (!l91_conn_other(c, &f))
            return false;
    }
}

bool l91_conn_rpc(l91_conn *c, const amqp91_method *m, uint32_t answer, amqp91_method *reply)
{
    double until = l91_now() + SETUP_S;
    return l91_conn_method(c, 1, m) && flush(c, until) && await_method(c, answer, reply, until);
}

static bool connect_to(l91_conn *c)
{
    char port[16];
    snprintf(port, sizeof port, "%d", c->r->o.port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai = NULL;
    int rc = getaddrinfo(c->r->o.host, port, &hints, &ai);
    if (rc != 0) {
        cfail(c, "connect", "%s: %s", c->r->o.host, gai_strerror(rc));
        return false;
    }
    int err = 0;
    for (struct addrinfo *a = ai; a && c->fd < 0; a = a->ai_next) {
        int fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
        if (fd < 0) {
            err = errno;
            continue;
        }
        if (connect(fd, a->ai_addr, a->ai_addrlen) < 0 && errno != EINPROGRESS) {
            err = errno;
            close(fd);
            continue;
        }
        struct pollfd p = {fd, POLLOUT, 0};
        socklen_t len = sizeof err;
        err = ETIMEDOUT;
        if (poll(&p, 1, 5000) == 1 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0) {
            c->fd = fd;
            break;
        }
        close(fd);
    }
    freeaddrinfo(ai);
    if (c->fd < 0) {
        cfail(c, "connect", "cannot connect to %s:%d: %s", c->r->o.host, c->r->o.port, strerror(err ? err : EINVAL));
        return false;
    }
    int one = 1; /* acks and confirms are small and wanted now; batches are already large */
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return true;
}

/* Start-Ok's client properties: what RabbitMQ needs to hear to close a
 * failed login with words (authentication_failure_close) and to tell a
 * consumer it was cancelled (consumer_cancel_notify). */
static int client_properties(uint8_t *out, size_t cap)
{
    amqp91_field caps[] = {
        {l91_bytes("authentication_failure_close"), {.type = 't', .v.t = true}},
        {l91_bytes("consumer_cancel_notify"), {.type = 't', .v.t = true}},
        {l91_bytes("connection.blocked"), {.type = 't', .v.t = true}},
    };
    amqp91_table ct = {sizeof caps / sizeof caps[0], caps};
    amqp91_field props[] = {
        {l91_bytes("product"), {.type = 'S', .v.str = l91_bytes("plexus amqp091_load")}},
        {l91_bytes("capabilities"), {.type = 'F', .v.F = &ct}},
    };
    amqp91_table pt = {sizeof props / sizeof props[0], props};
    return amqp91_table_encode(&pt, out, cap);
}

/* Whether a space-separated list of mechanisms names PLAIN. */
static bool offers_plain(amqp91_bytes list)
{
    size_t i = 0;
    while (i < list.len) {
        size_t j = i;
        while (j < list.len && list.p[j] != ' ')
            j++;
        if (j - i == 5 && memcmp(list.p + i, "PLAIN", 5) == 0)
            return true;
        i = j + 1;
    }
    return false;
}

static bool handshake(l91_conn *c)
{
    double until = l91_now() + SETUP_S;
    memcpy(c->out, amqp91_proto_header, sizeof amqp91_proto_header);
    c->out_len = sizeof amqp91_proto_header;
    amqp91_method m;
    if (!flush(c, until) || !await_method(c, AMQP91_CONNECTION_START, &m, until))
        return false;
    if (!offers_plain(m.a.connection_start.mechanisms)) {
        cfail(c, "connect", "the broker does not offer PLAIN (it offers %.*s)",
              (int)m.a.connection_start.mechanisms.len, (const char *)m.a.connection_start.mechanisms.p);
        return false;
    }
    uint8_t table[512], plain[600];
    int tn = client_properties(table, sizeof table);
    const char *user = c->r->o.user, *pass = c->r->o.pass;
    int pn = snprintf((char *)plain, sizeof plain, "%c%s%c%s", 0, user, 0, pass);
    if (tn < 0 || pn < 0 || (size_t)pn >= sizeof plain) {
        cfail(c, "error", "user and password too long");
        return false;
    }
    amqp91_method ok = {.id = AMQP91_CONNECTION_START_OK,
                        .a.connection_start_ok = {
                            {table, (uint32_t)tn}, l91_bytes("PLAIN"), {plain, (uint32_t)pn}, l91_bytes("en_US")}};
    if (!l91_conn_method(c, 0, &ok) || !flush(c, until) || !await_method(c, AMQP91_CONNECTION_TUNE, &m, until))
        return false;
    const amqp91_connection_tune *t = &m.a.connection_tune;
    c->frame_max = t->frame_max && t->frame_max < FRAME_MAX ? t->frame_max : FRAME_MAX;
    amqp91_method tune_ok = {.id = AMQP91_CONNECTION_TUNE_OK,
                             .a.connection_tune_ok = {1, c->frame_max, 0}}; /* channel 1 only, no heartbeats */
    amqp91_method open = {.id = AMQP91_CONNECTION_OPEN,
                          .a.connection_open = {l91_bytes(c->r->o.vhost), l91_bytes(""), false}};
    if (!l91_conn_method(c, 0, &tune_ok) || !l91_conn_method(c, 0, &open) || !flush(c, until) ||
        !await_method(c, AMQP91_CONNECTION_OPEN_OK, &m, until))
        return false;
    amqp91_method ch = {.id = AMQP91_CHANNEL_OPEN, .a.channel_open = {l91_bytes("")}};
    if (!l91_conn_rpc(c, &ch, AMQP91_CHANNEL_OPEN_OK, &m))
        return false;
    c->open = true;
    return true;
}

bool l91_conn_open(l91_conn *c, l91_run *r, const char *who, size_t out_cap)
{
    *c = (l91_conn){.r = r, .who = who, .fd = -1, .frame_max = IN_CAP, .in_cap = IN_CAP, .out_cap = out_cap};
    c->in = malloc(c->in_cap);
    c->out = malloc(c->out_cap);
    if (!c->in || !c->out || out_cap < 4096) {
        cfail(c, "error", "out of memory");
        return false;
    }
    return connect_to(c) && handshake(c);
}

void l91_conn_close(l91_conn *c, bool clean)
{
    if (clean && c->fd >= 0 && c->open) {
        c->quiet = true;
        double until = l91_now() + CLOSE_S;
        amqp91_method cl = {.id = AMQP91_CONNECTION_CLOSE,
                            .a.connection_close = {AMQP91_REPLY_SUCCESS, l91_bytes("done")}};
        c->out_off = c->out_len = 0;
        if (l91_conn_method(c, 0, &cl) && flush(c, until)) {
            for (;;) { /* deliveries and confirms still on their way are dropped */
                amqp91_frame f;
                if (!next_frame(c, &f, until, "Close-Ok"))
                    break;
                if (l91_method_id(&f) == AMQP91_CONNECTION_CLOSE_OK)
                    break;
            }
        }
    }
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    free(c->in);
    free(c->out);
    c->in = c->out = NULL;
}
