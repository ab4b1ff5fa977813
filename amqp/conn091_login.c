/* conn091_login.c — the pure parts of an AMQP 0-9-1 handshake: the server
 * properties Plexus announces in Connection.Start, what a client's
 * Connection.Start-Ok says (its credentials, PLAIN or AMQPLAIN; its
 * capabilities; its name) and the Tune negotiation. No sockets, no state,
 * so each piece is unit-tested on its own (tests/unit/test_amqp091_conn.c).
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "amqp/amqp_internal.h"

#define BYTES(s) ((amqp91_bytes){(const uint8_t *)(s), (uint32_t)strlen(s)})

static bool bytes_is(amqp91_bytes b, const char *s) { return b.len == strlen(s) && !memcmp(b.p, s, b.len); }

int amqp__091_server_props(uint8_t *out, size_t cap)
{
    /* The capabilities clients look for before they use a feature: each
     * is served (conn091*.c). */
    amqp91_field caps[] = {
        {BYTES("publisher_confirms"), {.type = 't', .v.t = true}},
        {BYTES("exchange_exchange_bindings"), {.type = 't', .v.t = true}},
        {BYTES("basic.nack"), {.type = 't', .v.t = true}},
        {BYTES("consumer_cancel_notify"), {.type = 't', .v.t = true}},
        {BYTES("connection.blocked"), {.type = 't', .v.t = true}},
        {BYTES("authentication_failure_close"), {.type = 't', .v.t = true}},
        {BYTES("per_consumer_qos"), {.type = 't', .v.t = true}},
        {BYTES("direct_reply_to"), {.type = 't', .v.t = true}},
    };
    amqp91_table capt = {sizeof caps / sizeof caps[0], caps};
    amqp91_field props[] = {
        {BYTES("product"), {.type = 'S', .v.str = BYTES("Plexus")}},
        {BYTES("version"), {.type = 'S', .v.str = BYTES(PLEXUS_VERSION)}},
        {BYTES("platform"), {.type = 'S', .v.str = BYTES("C (gnu11), libuv")}},
        {BYTES("information"), {.type = 'S', .v.str = BYTES("Plexus message broker: AMQP 1.0 and 0-9-1")}},
        {BYTES("capabilities"), {.type = 'F', .v.F = &capt}},
    };
    amqp91_table t = {sizeof props / sizeof props[0], props};
    return amqp91_table_encode(&t, out, cap);
}

void amqp__091_printable(const uint8_t *p, size_t n, char *out, size_t len)
{
    if (n > len - 1)
        n = len - 1;
    for (size_t i = 0; i < n; i++) /* for the log and JSON: no control bytes */
        out[i] = p[i] < 0x20 || p[i] == 0x7f ? '?' : (char)p[i];
    out[n] = 0;
}

/* The field of that name in t, or NULL. */
static const amqp91_value *field(const amqp91_table *t, const char *name)
{
    for (uint32_t i = 0; t && i < t->n; i++)
        if (bytes_is(t->f[i].name, name))
            return &t->f[i].value;
    return NULL;
}

bool amqp__091_client_cap(amqp91_bytes props, const char *cap)
{
    amqp91_table *t = NULL;
    if (amqp91_table_parse(props.p, props.len, &t, NULL) < 0)
        return false;
    const amqp91_value *caps = field(t, "capabilities");
    const amqp91_value *v = caps && caps->type == 'F' ? field(caps->v.F, cap) : NULL;
    bool on = v && v->type == 't' && v->v.t;
    amqp91_table_free(t);
    return on;
}

void amqp__091_client_name(amqp91_bytes props, char *out, size_t len)
{
    amqp91_table *t = NULL;
    out[0] = 0;
    if (amqp91_table_parse(props.p, props.len, &t, NULL) < 0)
        return;
    /* What the client calls this connection, else what the client is. */
    const amqp91_value *v = field(t, "connection_name");
    if (!v || v->type != 'S')
        v = field(t, "product");
    if (v && v->type == 'S')
        amqp__091_printable(v->v.str.p, v->v.str.len, out, len);
    amqp91_table_free(t);
}

/* Copies b as a C string: -EINVAL if it holds a NUL or does not fit. */
static int cstr(amqp91_bytes b, char *out, size_t len)
{
    if (b.len >= len || (b.len && memchr(b.p, 0, b.len)))
        return -EINVAL;
    if (b.len)
        memcpy(out, b.p, b.len);
    out[b.len] = 0;
    return 0;
}

int amqp__091_credentials(amqp91_bytes mech, amqp91_bytes resp, char *user, size_t ulen, char *pass, size_t plen,
                          const char **why)
{
    if (bytes_is(mech, "PLAIN")) {
        /* RFC 4616: [authzid] NUL authcid NUL passwd */
        const uint8_t *p = resp.p, *end = resp.p + resp.len;
        const uint8_t *n1 = resp.len ? memchr(p, 0, resp.len) : NULL;
        const uint8_t *n2 = n1 ? memchr(n1 + 1, 0, (size_t)(end - n1 - 1)) : NULL;
        if (!n2) {
            *why = "PLAIN response is not [authzid] NUL user NUL password";
            return -EINVAL;
        }
        amqp91_bytes u = {n1 + 1, (uint32_t)(n2 - n1 - 1)}, pw = {n2 + 1, (uint32_t)(end - n2 - 1)};
        if (cstr(u, user, ulen) < 0 || cstr(pw, pass, plen) < 0 || !u.len) {
            *why = "PLAIN user or password is empty, too long or holds a NUL";
            return -EINVAL;
        }
        return 0;
    }
    if (bytes_is(mech, "AMQPLAIN")) {
        /* A field table's content (no length prefix) with LOGIN and PASSWORD. */
        amqp91_table *t = NULL;
        if (amqp91_table_parse(resp.p, resp.len, &t, NULL) < 0) {
            *why = "AMQPLAIN response is not a field table";
            return -EINVAL;
        }
        const amqp91_value *u = field(t, "LOGIN"), *pw = field(t, "PASSWORD");
        int rc = u && pw && u->type == 'S' && pw->type == 'S' && u->v.str.len && cstr(u->v.str, user, ulen) == 0 &&
                         cstr(pw->v.str, pass, plen) == 0
                     ? 0
                     : -EINVAL;
        amqp91_table_free(t);
        if (rc < 0)
            *why = "AMQPLAIN response lacks LOGIN or PASSWORD as strings (or they are too long or hold a NUL)";
        return rc;
    }
    *why = "mechanism not offered (PLAIN and AMQPLAIN are)";
    return -ENOTSUP;
}

int amqp__091_tune(const amqp__091_limits *ours, uint16_t channel_max, uint32_t frame_max, uint16_t heartbeat,
                   amqp__091_limits *out, char *why, size_t len)
{
    /* 0 from the client: no limit of its own, so ours. */
    uint16_t ch = channel_max ? channel_max : ours->channel_max;
    uint32_t fm = frame_max ? frame_max : ours->frame_max;
    if (ch > ours->channel_max) {
        snprintf(why, len, "channel_max %u is over the server's %u", channel_max, ours->channel_max);
        return -AMQP91_NOT_ALLOWED;
    }
    if (fm > ours->frame_max || fm < AMQP91_FRAME_MIN_SIZE) {
        snprintf(why, len, "frame_max %u is outside %u..%u", frame_max, AMQP91_FRAME_MIN_SIZE, ours->frame_max);
        return -AMQP91_NOT_ALLOWED;
    }
    out->channel_max = ch;
    out->frame_max = fm;
    out->heartbeat = amqp__091_heartbeat(ours->heartbeat, heartbeat);
    return 0;
}

uint16_t amqp__091_heartbeat(uint16_t ours, uint16_t theirs)
{
    /* The client's tune-ok carries the delay it will keep to; a client that
     * says 0 sends none, so Plexus must not expect any (RabbitMQ agrees). */
    if (!theirs)
        return 0;
    return ours && ours < theirs ? ours : theirs;
}
