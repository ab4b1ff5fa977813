/* fuzz_frames.c — feeds a client's byte stream (protocol header, then
 * frames) to the frame checker (amqp/frames.c), then, as the connection
 * does, to a proton connection driver set up like the broker's (server,
 * Plexus's SASL, max-frame-size), whose deliveries go to rt_msg_new.
 *
 * Input: one byte of settings (max-frame-size, how the stream is cut into
 * reads), then the stream. Checked: the checker's verdict (error code and
 * condition) is the same whether the stream comes in one read or cut into
 * many, as TCP may cut it; a refusal always names a condition and a
 * reason; and nothing the checker lets through crashes proton or the
 * broker's message decoding.
 */
#include <errno.h>
#include <proton/connection.h>
#include <proton/connection_driver.h>
#include <proton/delivery.h>
#include <proton/event.h>
#include <proton/link.h>
#include <proton/session.h>
#include <proton/transport.h>
#include <string.h>

#include "amqp/amqp_internal.h"
#include "tests/fuzz/fuzz.h"

static const uint32_t max_frames[4] = {4096, 65536, 1u << 20, 512 * 1024};

/* The next read's size: a small generator seeded from the settings byte. */
static size_t next_cut(uint32_t *state, size_t left)
{
    *state = *state * 1103515245u + 12345u;
    size_t n = 1 + (*state >> 16) % 64;
    return n < left ? n : left;
}

typedef struct verdict {
    int rc;
    const char *cond;
    size_t at; /* bytes fed before the refusal */
} verdict;

static verdict check_stream(const char *p, size_t n, uint32_t max_frame, uint32_t seed, bool cut)
{
    amqp__fcheck v;
    amqp__fcheck_init(&v, max_frame);
    verdict out = {0, NULL, n};
    uint32_t state = seed;
    for (size_t off = 0; off < n;) {
        size_t k = cut ? next_cut(&state, n - off) : n - off;
        char err[200] = "";
        const char *cond = NULL;
        int rc = amqp__fcheck_feed(&v, p + off, k, &cond, err, sizeof err);
        if (rc == -EPROTONOSUPPORT) { /* a protocol header not served: answered with the one that is */
            FUZZ_CHECK(!memcmp(v.reply, "AMQP\x03\x01\x00\x00", 8) || !memcmp(v.reply, "AMQP\x00\x01\x00\x00", 8));
            out = (verdict){rc, "header", off};
            break;
        }
        if (rc < 0) {
            FUZZ_CHECK(cond && *cond);
            FUZZ_CHECK(err[0] && memchr(err, '\0', sizeof err));
            out = (verdict){rc, cond, off};
            break;
        }
        off += k;
    }
    amqp__fcheck_free(&v);
    return out;
}

static int auth_any(void *ctx, const char *mech, const char *user, const char *password, const struct sockaddr *peer,
                    char *user_out, size_t user_len)
{
    (void)ctx, (void)mech, (void)password, (void)peer;
    snprintf(user_out, user_len, "%s", user ? user : "guest");
    return 0;
}

/* What the broker does with the events that come of a client's frames,
 * without the routing: accept everything, and decode each whole message. */
static void handle(pn_event_t *e)
{
    switch (pn_event_type(e)) {
    case PN_CONNECTION_REMOTE_OPEN: pn_connection_open(pn_event_connection(e)); break;
    case PN_SESSION_REMOTE_OPEN: pn_session_open(pn_event_session(e)); break;
    case PN_LINK_REMOTE_OPEN: {
        pn_link_t *l = pn_event_link(e);
        pn_terminus_copy(pn_link_source(l), pn_link_remote_source(l));
        pn_terminus_copy(pn_link_target(l), pn_link_remote_target(l));
        pn_link_open(l);
        if (pn_link_is_receiver(l))
            pn_link_flow(l, 4);
        break;
    }
    case PN_DELIVERY: {
        pn_delivery_t *d = pn_event_delivery(e);
        pn_link_t *l = pn_delivery_link(d);
        if (!pn_link_is_receiver(l) || !pn_delivery_readable(d) || pn_delivery_partial(d))
            break;
        size_t n = pn_delivery_pending(d);
        char *buf = malloc(n ? n : 1);
        if (buf) {
            ssize_t got = pn_link_recv(l, buf, n);
            rt_msg *m = NULL;
            if (got >= 0 && rt_msg_new(buf, (size_t)got, &m) == 0)
                rt_msg_unref(m);
            free(buf);
        }
        pn_delivery_update(d, PN_ACCEPTED);
        pn_delivery_settle(d);
        pn_link_advance(l);
        pn_link_flow(l, 1);
        break;
    }
    case PN_SESSION_REMOTE_CLOSE: pn_session_close(pn_event_session(e)); break;
    case PN_LINK_REMOTE_CLOSE: pn_link_close(pn_event_link(e)); break;
    case PN_CONNECTION_REMOTE_CLOSE: pn_connection_close(pn_event_connection(e)); break;
    default: break;
    }
}

static void drive(const char *p, size_t n, uint32_t max_frame, uint32_t seed)
{
    pn_connection_driver_t d;
    if (pn_connection_driver_init(&d, NULL, NULL) != 0)
        return;
    amqp_config cfg;
    amqp_config_init(&cfg);
    cfg.anonymous = true;
    cfg.auth = auth_any;
    cfg.max_frame_size = max_frame;
    amqp__sasl sasl = {.cfg = &cfg};
    pn_transport_set_server(d.transport);
    pn_transport_require_auth(d.transport, false);
    pn_transport_set_max_frame(d.transport, max_frame);
    amqp__sasl_setup(d.transport, &sasl);
    pn_connection_driver_bind(&d);
    amqp__fcheck v;
    amqp__fcheck_init(&v, max_frame);
    uint32_t state = seed;
    for (size_t off = 0; off < n && !pn_connection_driver_read_closed(&d);) {
        pn_rwbytes_t rb = pn_connection_driver_read_buffer(&d);
        if (!rb.size)
            break;
        size_t k = next_cut(&state, n - off);
        if (k > rb.size)
            k = rb.size;
        memcpy(rb.start, p + off, k);
        const char *cond;
        char err[200];
        if (amqp__fcheck_feed(&v, rb.start, k, &cond, err, sizeof err) < 0)
            break; /* the broker closes here: proton never sees these bytes */
        pn_connection_driver_read_done(&d, k);
        off += k;
        pn_event_t *e;
        while ((e = pn_connection_driver_next_event(&d)))
            handle(e);
        pn_bytes_t wb = pn_connection_driver_write_buffer(&d);
        if (wb.size)
            pn_connection_driver_write_done(&d, wb.size);
    }
    pn_connection_driver_close(&d);
    pn_event_t *e;
    while ((e = pn_connection_driver_next_event(&d)))
        ;
    amqp__fcheck_free(&v);
    pn_connection_driver_destroy(&d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    uint32_t max_frame = max_frames[data[0] & 3];
    uint32_t seed = data[0] >> 2;
    const char *p = (const char *)data + 1;
    size_t n = size - 1;
    verdict whole = check_stream(p, n, max_frame, seed, false);
    verdict cut = check_stream(p, n, max_frame, seed, true);
    if (whole.rc != cut.rc || (whole.cond && strcmp(whole.cond, cut.cond) != 0)) {
        fprintf(stderr, "one read: %d %s; cut: %d %s (at %zu)\n", whole.rc, whole.cond ? whole.cond : "-", cut.rc,
                cut.cond ? cut.cond : "-", cut.at);
        FUZZ_CHECK(!"the verdict depends on how the stream is cut");
    }
    drive(p, n, max_frame, seed);
    return 0;
}
