/* test_amqp091_codec.c — the AMQP 0-9-1 codec (amqp/amqp091*.c): frames,
 * protocol headers, every method's round trip, content headers, field tables,
 * against bytes python3-pika wrote (amqp091_vectors.h) and bytes built by
 * hand from the spec's wire format, and every error path: truncation at each
 * offset, overlong payloads, bad frame-end, oversized frames, bad table tags,
 * nesting depth, shortstr length, bit packing. */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check_main.h"
#include "amqp/amqp091.h"
#include "amqp091_vectors.h"

#define S(lit) ((amqp91_bytes){(const uint8_t *)(lit), sizeof(lit) - 1})

static bool bytes_is(amqp91_bytes b, const char *s) { return b.len == strlen(s) && memcmp(b.p, s, b.len) == 0; }

/* A copy in a buffer of exactly n bytes, so ASan sees any read past it. */
static uint8_t *exact(const uint8_t *p, size_t n)
{
    uint8_t *c = malloc(n ? n : 1);
    ck_assert_ptr_nonnull(c);
    if (n)
        memcpy(c, p, n);
    return c;
}

/* Reads a whole frame vector; checks it is exactly one frame. */
static amqp91_frame frame_of(const uint8_t *b, size_t n)
{
    amqp91_frame f;
    const char *why = NULL;
    int rc = amqp91_frame_read(b, n, 131072, &f, &why);
    ck_assert_msg(rc == 1, "frame refused: %d %s", rc, why ? why : "");
    ck_assert_uint_eq(f.len, n);
    return f;
}

/* Decodes a method frame vector, re-encodes it, wants the same bytes. */
static amqp91_method method_roundtrip(const uint8_t *b, size_t n, uint32_t id)
{
    amqp91_frame f = frame_of(b, n);
    ck_assert_uint_eq(f.type, AMQP91_FRAME_METHOD);
    amqp91_method m;
    const char *why = NULL;
    int rc = amqp91_method_decode(f.payload, f.size, &m, &why);
    ck_assert_msg(rc == 0, "method refused: %d %s", rc, why ? why : "");
    ck_assert_uint_eq(m.id, id);
    uint8_t out[1024];
    int len = amqp91_method_frame(f.channel, &m, out, sizeof out);
    ck_assert_int_eq(len, (int)n);
    ck_assert_msg(memcmp(out, b, n) == 0, "%s: re-encoded bytes differ", m.desc->name);
    return m;
}

/* ------------------------------------------------------ protocol header */

START_TEST(test_proto_header_classified)
{
    const uint8_t *h = (const uint8_t *)"AMQP\0\0\x09\x01";
    ck_assert_int_eq(amqp91_proto_classify(client_protocol_header, 8), AMQP91_PROTO_091);
    ck_assert_int_eq(amqp91_proto_classify(h, 8), AMQP91_PROTO_091);
    ck_assert_int_eq(memcmp(amqp91_proto_header, h, 8), 0);
    ck_assert_int_eq(amqp91_proto_classify((const uint8_t *)"AMQP\0\1\0\0", 8), AMQP91_PROTO_10);
    ck_assert_int_eq(amqp91_proto_classify((const uint8_t *)"AMQP\3\1\0\0", 8), AMQP91_PROTO_10_SASL);
    ck_assert_int_eq(amqp91_proto_classify((const uint8_t *)"AMQP\2\1\0\0", 8), AMQP91_PROTO_10_TLS);
    /* 0-9's class/instance form, which Net::AMQP sends for 0-9-1 (as RabbitMQ takes it) */
    ck_assert_int_eq(amqp91_proto_classify((const uint8_t *)"AMQP\1\1\0\x09", 8), AMQP91_PROTO_091);
    ck_assert_int_eq(amqp91_proto_classify((const uint8_t *)"AMQP\1\1\x08\0", 8), AMQP91_PROTO_OTHER); /* 0-8 */
    ck_assert_int_eq(amqp91_proto_classify((const uint8_t *)"AMQP\0\0\x09\x02", 8), AMQP91_PROTO_OTHER);
    ck_assert_int_eq(amqp91_proto_classify((const uint8_t *)"GET / HTTP/1.1", 8), AMQP91_PROTO_NOT_AMQP);
    ck_assert_int_eq(amqp91_proto_classify((const uint8_t *)"AMX", 3), AMQP91_PROTO_NOT_AMQP);
    for (size_t n = 0; n < 8; n++) {
        uint8_t *c = exact(h, n);
        ck_assert_int_eq(amqp91_proto_classify(c, n), AMQP91_PROTO_NEED_MORE);
        free(c);
    }
}
END_TEST

/* --------------------------------------------------------------- frames */

static const struct {
    const uint8_t *b;
    size_t n;
} vectors[] = {
#define V(x)                                                                                                           \
    {                                                                                                                  \
        x, sizeof x                                                                                                    \
    }
    V(server_connection_start), V(client_start_ok),           V(server_connection_tune),     V(client_tune_ok),
    V(client_connection_open),  V(server_connection_open_ok), V(client_channel_open),        V(server_channel_open_ok),
    V(client_basic_publish),    V(client_content_header),     V(client_content_body),        V(client_channel_close),
    V(server_channel_close_ok), V(client_connection_close),   V(server_connection_close_ok),
#undef V
};
#define NVEC (sizeof vectors / sizeof vectors[0])

START_TEST(test_frame_every_prefix_needs_more)
{
    for (size_t v = 0; v < NVEC; v++) {
        frame_of(vectors[v].b, vectors[v].n);
        for (size_t n = 0; n < vectors[v].n; n++) {
            uint8_t *c = exact(vectors[v].b, n);
            amqp91_frame f;
            ck_assert_msg(amqp91_frame_read(c, n, 131072, &f, NULL) == 0, "vector %zu, %zu bytes", v, n);
            free(c);
        }
    }
}
END_TEST

START_TEST(test_frame_errors_are_501)
{
    amqp91_frame f;
    const char *why = NULL;
    uint8_t b[16];
    memcpy(b, server_connection_tune, 12);
    /* bad frame-end octet */
    uint8_t bad_end[sizeof server_connection_tune];
    memcpy(bad_end, server_connection_tune, sizeof bad_end);
    bad_end[sizeof bad_end - 1] = 0xCD;
    ck_assert_int_eq(amqp91_frame_read(bad_end, sizeof bad_end, 0, &f, &why), -AMQP91_FRAME_ERROR);
    ck_assert_str_eq(why, "frame-end octet is not 0xCE");
    /* over frame_max, known from the header alone: 12 bytes payload + 8 > 19 */
    ck_assert_int_eq(amqp91_frame_read(server_connection_tune, 7, 19, &f, &why), -AMQP91_FRAME_ERROR);
    ck_assert_int_eq(amqp91_frame_read(server_connection_tune, 20, 20, &f, &why), 1);
    /* a huge size with no frame_max waits for its bytes; with one it is refused */
    const uint8_t huge[7] = {3, 0, 1, 0xff, 0xff, 0xff, 0xff};
    ck_assert_int_eq(amqp91_frame_read(huge, 7, 0, &f, &why), 0);
    ck_assert_int_eq(amqp91_frame_read(huge, 7, 131072, &f, &why), -AMQP91_FRAME_ERROR);
    /* unknown type, from its first byte */
    b[0] = 4;
    ck_assert_int_eq(amqp91_frame_read(b, 1, 0, &f, &why), -AMQP91_FRAME_ERROR);
    ck_assert_str_eq(why, "unknown frame type");
    b[0] = 0;
    ck_assert_int_eq(amqp91_frame_read(b, 1, 0, &f, &why), -AMQP91_FRAME_ERROR);
    /* heartbeats: channel 0, no payload */
    const uint8_t hb1[8] = {8, 0, 1, 0, 0, 0, 0, 0xCE}, hbp[9] = {8, 0, 0, 0, 0, 0, 1, 0, 0xCE};
    ck_assert_int_eq(amqp91_frame_read(hb1, 8, 0, &f, &why), -AMQP91_FRAME_ERROR);
    ck_assert_int_eq(amqp91_frame_read(hbp, 9, 0, &f, &why), -AMQP91_FRAME_ERROR);
    ck_assert_str_eq(amqp91_reply_name(-AMQP91_FRAME_ERROR), "FRAME_ERROR");
    ck_assert_str_eq(amqp91_reply_name(AMQP91_NOT_IMPLEMENTED), "NOT_IMPLEMENTED");
    ck_assert_str_eq(amqp91_reply_name(999), "UNKNOWN");
}
END_TEST

START_TEST(test_frame_write_heartbeat_and_body)
{
    uint8_t out[64];
    const uint8_t hb[8] = {8, 0, 0, 0, 0, 0, 0, 0xCE};
    ck_assert_int_eq(amqp91_heartbeat_write(out, sizeof out), 8);
    ck_assert_int_eq(memcmp(out, hb, 8), 0);
    ck_assert_int_eq(amqp91_heartbeat_write(out, 7), -ENOSPC);
    amqp91_frame f = frame_of(client_content_body, sizeof client_content_body);
    ck_assert_uint_eq(f.type, AMQP91_FRAME_BODY);
    ck_assert_uint_eq(f.channel, 1);
    ck_assert_int_eq(memcmp(f.payload, "{\"id\": 1, \"sku\": \"a-1\"}", f.size), 0);
    int n = amqp91_frame_write(AMQP91_FRAME_BODY, 1, f.payload, f.size, out, sizeof out);
    ck_assert_int_eq(n, (int)sizeof client_content_body);
    ck_assert_int_eq(memcmp(out, client_content_body, (size_t)n), 0);
    for (size_t cap = 0; cap < (size_t)n; cap++)
        ck_assert_int_eq(amqp91_frame_write(AMQP91_FRAME_BODY, 1, f.payload, f.size, out, cap), -ENOSPC);
}
END_TEST

/* ------------------------------------------------- pika's bytes, decoded */

START_TEST(test_pika_handshake_methods)
{
    amqp91_method m =
        method_roundtrip(server_connection_start, sizeof server_connection_start, AMQP91_CONNECTION_START);
    ck_assert_uint_eq(m.a.connection_start.version_major, 0);
    ck_assert_uint_eq(m.a.connection_start.version_minor, 9);
    ck_assert(bytes_is(m.a.connection_start.mechanisms, "AMQPLAIN PLAIN"));
    ck_assert(bytes_is(m.a.connection_start.locales, "en_US"));
    m = method_roundtrip(client_start_ok, sizeof client_start_ok, AMQP91_CONNECTION_START_OK);
    ck_assert(bytes_is(m.a.connection_start_ok.mechanism, "PLAIN"));
    ck_assert_uint_eq(m.a.connection_start_ok.response.len, 12);
    ck_assert_int_eq(memcmp(m.a.connection_start_ok.response.p, "\0guest\0guest", 12), 0);
    ck_assert(bytes_is(m.a.connection_start_ok.locale, "en_US"));
    /* the client properties: pika's capabilities, a nested table of booleans */
    amqp91_table *t = NULL;
    amqp91_bytes cp = m.a.connection_start_ok.client_properties;
    ck_assert_int_eq(amqp91_table_parse(cp.p, cp.len, &t, NULL), 0);
    bool found = false;
    for (uint32_t i = 0; i < t->n; i++) {
        if (bytes_is(t->f[i].name, "product")) {
            ck_assert_int_eq(t->f[i].value.type, 'S');
            ck_assert(bytes_is(t->f[i].value.v.str, "Pika Python Client Library"));
        }
        if (bytes_is(t->f[i].name, "capabilities")) {
            ck_assert_int_eq(t->f[i].value.type, 'F');
            amqp91_table *c = t->f[i].value.v.F;
            for (uint32_t j = 0; j < c->n; j++)
                if (bytes_is(c->f[j].name, "publisher_confirms"))
                    found = c->f[j].value.type == 't' && c->f[j].value.v.t;
        }
    }
    ck_assert_msg(found, "no capabilities.publisher_confirms = true in pika's client properties");
    uint8_t out[512];
    ck_assert_int_eq(amqp91_table_encode(t, out, sizeof out), (int)cp.len);
    ck_assert_int_eq(memcmp(out, cp.p, cp.len), 0);
    amqp91_table_free(t);

    m = method_roundtrip(server_connection_tune, sizeof server_connection_tune, AMQP91_CONNECTION_TUNE);
    ck_assert_uint_eq(m.a.connection_tune.channel_max, 2047);
    ck_assert_uint_eq(m.a.connection_tune.frame_max, 131072);
    ck_assert_uint_eq(m.a.connection_tune.heartbeat, 60);
    m = method_roundtrip(client_tune_ok, sizeof client_tune_ok, AMQP91_CONNECTION_TUNE_OK);
    ck_assert_uint_eq(m.a.connection_tune_ok.frame_max, 131072);
    m = method_roundtrip(client_connection_open, sizeof client_connection_open, AMQP91_CONNECTION_OPEN);
    ck_assert(bytes_is(m.a.connection_open.virtual_host, "/"));
    method_roundtrip(server_connection_open_ok, sizeof server_connection_open_ok, AMQP91_CONNECTION_OPEN_OK);
    method_roundtrip(client_channel_open, sizeof client_channel_open, AMQP91_CHANNEL_OPEN);
    method_roundtrip(server_channel_open_ok, sizeof server_channel_open_ok, AMQP91_CHANNEL_OPEN_OK);
    m = method_roundtrip(client_channel_close, sizeof client_channel_close, AMQP91_CHANNEL_CLOSE);
    ck_assert_uint_eq(m.a.channel_close.reply_code, 200);
    method_roundtrip(server_channel_close_ok, sizeof server_channel_close_ok, AMQP91_CHANNEL_CLOSE_OK);
    method_roundtrip(client_connection_close, sizeof client_connection_close, AMQP91_CONNECTION_CLOSE);
    method_roundtrip(server_connection_close_ok, sizeof server_connection_close_ok, AMQP91_CONNECTION_CLOSE_OK);
}
END_TEST

START_TEST(test_pika_publish_and_header)
{
    amqp91_method m = method_roundtrip(client_basic_publish, sizeof client_basic_publish, AMQP91_BASIC_PUBLISH);
    ck_assert(m.desc->flags & AMQP91_M_CONTENT);
    ck_assert(bytes_is(m.a.basic_publish.exchange, "amq.topic"));
    ck_assert(bytes_is(m.a.basic_publish.routing_key, "orders.new"));
    ck_assert(m.a.basic_publish.mandatory);
    ck_assert(!m.a.basic_publish.immediate);

    amqp91_frame f = frame_of(client_content_header, sizeof client_content_header);
    ck_assert_uint_eq(f.type, AMQP91_FRAME_HEADER);
    amqp91_header h;
    const char *why = NULL;
    ck_assert_int_eq(amqp91_header_decode(f.payload, f.size, &h, &why), 0);
    ck_assert_uint_eq(h.class_id, 60);
    ck_assert_uint_eq(h.body_size, sizeof client_content_body - 8);
    amqp91_props *p = &h.props;
    ck_assert_uint_eq(p->flags, 0xfff8); /* all 13 but the reserved 14th (cluster-id) */
    ck_assert(bytes_is(p->content_type, "application/json"));
    ck_assert(bytes_is(p->content_encoding, "utf-8"));
    ck_assert_uint_eq(p->delivery_mode, 2);
    ck_assert_uint_eq(p->priority, 5);
    ck_assert(bytes_is(p->correlation_id, "corr-1"));
    ck_assert(bytes_is(p->reply_to, "amq.rabbitmq.reply-to"));
    ck_assert(bytes_is(p->expiration, "60000"));
    ck_assert(bytes_is(p->message_id, "msg-1"));
    ck_assert_uint_eq(p->timestamp, 1700000000);
    ck_assert(bytes_is(p->type, "order"));
    ck_assert(bytes_is(p->user_id, "guest"));
    ck_assert(bytes_is(p->app_id, "shop"));
    uint8_t out[512];
    ck_assert_int_eq(amqp91_header_encode(&h, out, sizeof out), (int)f.size);
    ck_assert_int_eq(memcmp(out, f.payload, f.size), 0);

    /* the headers table: every type pika writes */
    amqp91_table *t = NULL;
    ck_assert_int_eq(amqp91_table_parse(p->headers.p, p->headers.len, &t, NULL), 0);
    ck_assert_uint_eq(t->n, 7);
    ck_assert(bytes_is(t->f[0].name, "x-n"));
    ck_assert_int_eq(t->f[0].value.type, 'I');
    ck_assert_int_eq(t->f[0].value.v.I, 1);
    ck_assert_int_eq(t->f[1].value.type, 't');
    ck_assert(t->f[1].value.v.t);
    ck_assert_int_eq(t->f[2].value.type, 'F');
    amqp91_table *nested = t->f[2].value.v.F;
    ck_assert_uint_eq(nested->n, 1);
    ck_assert_int_eq(nested->f[0].value.type, 'A');
    amqp91_array *a = nested->f[0].value.v.A;
    ck_assert_uint_eq(a->n, 3);
    ck_assert_int_eq(a->v[0].type, 'I');
    ck_assert_int_eq(a->v[1].type, 'S');
    ck_assert(bytes_is(a->v[1].v.str, "two"));
    ck_assert_int_eq(a->v[2].type, 't');
    ck_assert(!a->v[2].v.t);
    ck_assert_int_eq(t->f[3].value.type, 'D');
    ck_assert_uint_eq(t->f[3].value.v.D.scale, 1); /* pika writes 3.50 as 35e-1 */
    ck_assert_int_eq(t->f[3].value.v.D.value, 35);
    ck_assert_int_eq(t->f[4].value.type, 'l');
    ck_assert_int_eq(t->f[4].value.v.l, (int64_t)1 << 40);
    ck_assert_int_eq(t->f[5].value.type, 'V');
    ck_assert_int_eq(t->f[6].value.type, 'T');
    ck_assert_uint_eq(t->f[6].value.v.T, 1700000000);
    ck_assert_int_eq(amqp91_table_encode(t, out, sizeof out), (int)p->headers.len);
    ck_assert_int_eq(memcmp(out, p->headers.p, p->headers.len), 0);
    amqp91_table_free(t);
}
END_TEST

/* ------------------------------------------- bytes built from the spec */

START_TEST(test_spec_bytes_basic_deliver)
{
    /* Basic.Deliver on channel 1 (4.2.3 general frame format; 1.8.9 basic):
     * consumer-tag "ctag", delivery-tag 7, redelivered, exchange "", routing-key "rk". */
    static const uint8_t want[] = {1,   0, 1, 0, 0, 0, 22, 0, 60, 0, 60, 4, 'c', 't', 'a',
                                   'g', 0, 0, 0, 0, 0, 0,  0, 7,  1, 0,  2, 'r', 'k', 0xCE};
    amqp91_method m = {.id = AMQP91_BASIC_DELIVER};
    m.a.basic_deliver.consumer_tag = S("ctag");
    m.a.basic_deliver.delivery_tag = 7;
    m.a.basic_deliver.redelivered = true;
    m.a.basic_deliver.routing_key = S("rk");
    uint8_t out[64];
    ck_assert_int_eq(amqp91_method_frame(1, &m, out, sizeof out), (int)sizeof want);
    ck_assert_int_eq(memcmp(out, want, sizeof want), 0);
    method_roundtrip(want, sizeof want, AMQP91_BASIC_DELIVER);
}
END_TEST

START_TEST(test_spec_bits_packed_lsb_first)
{
    /* Queue.Declare: ticket, queue "q", then passive durable exclusive
     * auto-delete no-wait in one octet, bit 0 first; then an empty table. */
    static const uint8_t payload[] = {0, 50, 0, 10, 0, 0, 1, 'q', 0x15, 0, 0, 0, 0};
    amqp91_method m;
    ck_assert_int_eq(amqp91_method_decode(payload, sizeof payload, &m, NULL), 0);
    amqp91_queue_declare *q = &m.a.queue_declare;
    ck_assert(q->passive && !q->durable && q->exclusive && !q->auto_delete && q->no_wait);
    uint8_t out[32];
    ck_assert_int_eq(amqp91_method_encode(&m, out, sizeof out), (int)sizeof payload);
    ck_assert_int_eq(memcmp(out, payload, sizeof payload), 0);
    /* a bit beyond the five set: a syntax error, not ignored */
    uint8_t bad[sizeof payload];
    memcpy(bad, payload, sizeof bad);
    bad[8] = 0x35;
    const char *why = NULL;
    ck_assert_int_eq(amqp91_method_decode(bad, sizeof bad, &m, &why), -AMQP91_SYNTAX_ERROR);
    ck_assert_str_eq(why, "bits set beyond a method's bit fields");
    /* Basic.Nack's two bits follow a longlong; Exchange.Declare's five share an octet */
    static const uint8_t nack[] = {0, 60, 0, 120, 0, 0, 0, 0, 0, 0, 0, 9, 0x03};
    ck_assert_int_eq(amqp91_method_decode(nack, sizeof nack, &m, NULL), 0);
    ck_assert(m.a.basic_nack.multiple && m.a.basic_nack.requeue);
    ck_assert_uint_eq(m.a.basic_nack.delivery_tag, 9);
}
END_TEST

/* ------------------------------------------------ every method, both ways */

static uint8_t small_table[] = {1, 'k', 'S', 0, 0, 0, 1, 'v', 1, 'n', 'A', 0, 0, 0, 2, 'b', 0xff};

/* Fills every field of m from seed, so that no two fields look alike. */
static void fill(amqp91_method *m, unsigned seed)
{
    static char strs[16][32];
    const amqp91_mdesc *d = m->desc;
    for (unsigned i = 0; i < d->nfields; i++) {
        char *dst = (char *)&m->a + d->fields[i].off;
        unsigned v = seed * 31 + i;
        switch (d->fields[i].type) {
        case AMQP91_T_BIT: *(bool *)dst = (v % 3) != 0; break;
        case AMQP91_T_OCTET: *(uint8_t *)dst = (uint8_t)(v + 1); break;
        case AMQP91_T_SHORT: *(uint16_t *)dst = (uint16_t)(v * 257 + 1); break;
        case AMQP91_T_LONG: *(uint32_t *)dst = v * 65537u + 3; break;
        case AMQP91_T_LONGLONG:
        case AMQP91_T_TIMESTAMP: *(uint64_t *)dst = (uint64_t)v << 40 | 5; break;
        case AMQP91_T_SHORTSTR:
        case AMQP91_T_LONGSTR:
            snprintf(strs[i % 16], sizeof strs[0], "%s-%u", d->fields[i].name, v);
            *(amqp91_bytes *)dst = (amqp91_bytes){(const uint8_t *)strs[i % 16], (uint32_t)strlen(strs[i % 16])};
            break;
        case AMQP91_T_TABLE: *(amqp91_bytes *)dst = (amqp91_bytes){small_table, sizeof small_table}; break;
        }
    }
}

static void same_args(const amqp91_method *a, const amqp91_method *b)
{
    const amqp91_mdesc *d = a->desc;
    for (unsigned i = 0; i < d->nfields; i++) {
        const char *x = (const char *)&a->a + d->fields[i].off, *y = (const char *)&b->a + d->fields[i].off;
        size_t n = 0;
        switch (d->fields[i].type) {
        case AMQP91_T_BIT: n = sizeof(bool); break;
        case AMQP91_T_OCTET: n = 1; break;
        case AMQP91_T_SHORT: n = 2; break;
        case AMQP91_T_LONG: n = 4; break;
        case AMQP91_T_LONGLONG:
        case AMQP91_T_TIMESTAMP: n = 8; break;
        default: {
            const amqp91_bytes *s = (const amqp91_bytes *)x, *t = (const amqp91_bytes *)y;
            ck_assert_msg(s->len == t->len && memcmp(s->p, t->p, s->len) == 0, "%s.%s differs", d->name,
                          d->fields[i].name);
            continue;
        }
        }
        ck_assert_msg(memcmp(x, y, n) == 0, "%s.%s differs", d->name, d->fields[i].name);
    }
}

START_TEST(test_every_method_round_trips)
{
    ck_assert_int_ge(AMQP91_METHOD_COUNT, 50);
    for (unsigned k = 0; k < AMQP91_METHOD_COUNT; k++) {
        for (unsigned seed = 0; seed < 3; seed++) {
            amqp91_method m;
            memset(&m, 0, sizeof m);
            m.id = amqp91_methods[k].id;
            m.desc = &amqp91_methods[k];
            fill(&m, seed);
            uint8_t out[1024];
            int n = amqp91_method_frame(3, &m, out, sizeof out);
            ck_assert_msg(n > 0, "%s: encode %d", m.desc->name, n);
            amqp91_frame f = frame_of(out, (size_t)n);
            ck_assert_uint_eq(f.channel, 3);
            amqp91_method back;
            const char *why = NULL;
            ck_assert_msg(amqp91_method_decode(f.payload, f.size, &back, &why) == 0, "%s: %s", m.desc->name, why);
            ck_assert_uint_eq(back.id, m.id);
            ck_assert_ptr_eq(back.desc, m.desc);
            same_args(&m, &back);
            /* every truncation of the payload is a syntax error, and so is one byte more */
            for (size_t cut = 0; cut < f.size; cut++) {
                uint8_t *c = exact(f.payload, cut);
                int rc = amqp91_method_decode(c, cut, &back, &why);
                ck_assert_msg(rc == -AMQP91_SYNTAX_ERROR, "%s cut at %zu: %d", m.desc->name, cut, rc);
                free(c);
            }
            uint8_t longer[1024];
            memcpy(longer, f.payload, f.size);
            longer[f.size] = 0;
            ck_assert_int_eq(amqp91_method_decode(longer, f.size + 1, &back, &why), -AMQP91_SYNTAX_ERROR);
            /* and a buffer too small is -ENOSPC at every size */
            for (size_t cap = 0; cap < (size_t)n; cap++)
                ck_assert_int_eq(amqp91_method_frame(3, &m, out, cap), -ENOSPC);
        }
    }
}
END_TEST

START_TEST(test_server_methods_exist)
{
    static const uint32_t server_sends[] = {
        AMQP91_CONNECTION_START,     AMQP91_CONNECTION_TUNE,     AMQP91_CONNECTION_OPEN_OK,
        AMQP91_CONNECTION_CLOSE,     AMQP91_CONNECTION_CLOSE_OK, AMQP91_CONNECTION_BLOCKED,
        AMQP91_CONNECTION_UNBLOCKED, AMQP91_CHANNEL_OPEN_OK,     AMQP91_CHANNEL_CLOSE,
        AMQP91_CHANNEL_CLOSE_OK,     AMQP91_CHANNEL_FLOW,        AMQP91_EXCHANGE_DECLARE_OK,
        AMQP91_EXCHANGE_DELETE_OK,   AMQP91_EXCHANGE_BIND_OK,    AMQP91_EXCHANGE_UNBIND_OK,
        AMQP91_QUEUE_DECLARE_OK,     AMQP91_QUEUE_BIND_OK,       AMQP91_QUEUE_UNBIND_OK,
        AMQP91_QUEUE_PURGE_OK,       AMQP91_QUEUE_DELETE_OK,     AMQP91_BASIC_QOS_OK,
        AMQP91_BASIC_CONSUME_OK,     AMQP91_BASIC_CANCEL_OK,     AMQP91_BASIC_DELIVER,
        AMQP91_BASIC_GET_OK,         AMQP91_BASIC_GET_EMPTY,     AMQP91_BASIC_ACK,
        AMQP91_BASIC_NACK,           AMQP91_BASIC_RETURN,        AMQP91_BASIC_CANCEL,
        AMQP91_BASIC_RECOVER_OK,     AMQP91_CONFIRM_SELECT_OK,   AMQP91_TX_SELECT_OK,
    };
    for (size_t i = 0; i < sizeof server_sends / sizeof server_sends[0]; i++) {
        const amqp91_mdesc *d = amqp91_method_desc(server_sends[i]);
        ck_assert_ptr_nonnull(d);
        ck_assert_msg(d->flags & AMQP91_M_TO_CLIENT, "%s not marked as sent to clients", d->name);
    }
    ck_assert(amqp91_method_desc(AMQP91_BASIC_PUBLISH)->flags & AMQP91_M_TO_SERVER);
    ck_assert(!(amqp91_method_desc(AMQP91_BASIC_PUBLISH)->flags & AMQP91_M_TO_CLIENT));
    ck_assert_str_eq(amqp91_method_desc(AMQP91_CONNECTION_BLOCKED)->name, "connection.blocked");
}
END_TEST

START_TEST(test_unknown_method_not_implemented)
{
    const char *why = NULL;
    amqp91_method m;
    static const uint8_t unknown_class[] = {0, 99, 0, 10}, unknown_method[] = {0, 60, 0, 99}, short_id[] = {0, 60, 0};
    ck_assert_int_eq(amqp91_method_decode(unknown_class, 4, &m, &why), -AMQP91_NOT_IMPLEMENTED);
    ck_assert_str_eq(why, "unknown class or method id");
    ck_assert_int_eq(amqp91_method_decode(unknown_method, 4, &m, &why), -AMQP91_NOT_IMPLEMENTED);
    ck_assert_int_eq(amqp91_method_decode(short_id, 3, &m, &why), -AMQP91_SYNTAX_ERROR);
    m.id = 0x00630001;
    uint8_t out[16];
    ck_assert_int_eq(amqp91_method_encode(&m, out, sizeof out), -EINVAL);
}
END_TEST

START_TEST(test_shortstr_over_255_refused)
{
    char big[300];
    memset(big, 'x', sizeof big);
    amqp91_method m = {.id = AMQP91_BASIC_CONSUME_OK};
    m.a.basic_consume_ok.consumer_tag = (amqp91_bytes){(const uint8_t *)big, 256};
    uint8_t out[512];
    ck_assert_int_eq(amqp91_method_encode(&m, out, sizeof out), -EINVAL);
    m.a.basic_consume_ok.consumer_tag.len = 255;
    ck_assert_int_eq(amqp91_method_encode(&m, out, sizeof out), 4 + 1 + 255);
    /* a longstr of 300 is fine */
    m.id = AMQP91_CONNECTION_SECURE;
    m.a.connection_secure.challenge = (amqp91_bytes){(const uint8_t *)big, 300};
    ck_assert_int_eq(amqp91_method_encode(&m, out, sizeof out), 4 + 4 + 300);
    /* a table field that is not a valid table is not sent */
    m.id = AMQP91_CONNECTION_START;
    memset(&m.a, 0, sizeof m.a);
    m.a.connection_start.server_properties = (amqp91_bytes){(const uint8_t *)"\3abcZ", 5};
    ck_assert_int_eq(amqp91_method_encode(&m, out, sizeof out), -EINVAL);
}
END_TEST

/* ------------------------------------------------------- content header */

START_TEST(test_header_all_properties_round_trip)
{
    amqp91_header h = {.class_id = 60, .body_size = 0x123456789aULL};
    amqp91_props *p = &h.props;
    p->flags = 0xfffc; /* all 14 */
    p->content_type = S("text/plain");
    p->content_encoding = S("gzip");
    p->headers = (amqp91_bytes){small_table, sizeof small_table};
    p->delivery_mode = 1;
    p->priority = 9;
    p->correlation_id = S("c");
    p->reply_to = S("r");
    p->expiration = S("1000");
    p->message_id = S("m");
    p->timestamp = 42;
    p->type = S("t");
    p->user_id = S("u");
    p->app_id = S("a");
    p->reserved = S("cluster");
    uint8_t out[256];
    int n = amqp91_header_encode(&h, out, sizeof out);
    ck_assert_int_gt(n, 14);
    amqp91_header back;
    const char *why = NULL;
    ck_assert_int_eq(amqp91_header_decode(out, (size_t)n, &back, &why), 0);
    ck_assert_uint_eq(back.body_size, h.body_size);
    ck_assert_uint_eq(back.props.flags, 0xfffc);
    ck_assert(bytes_is(back.props.reserved, "cluster"));
    ck_assert_uint_eq(back.props.timestamp, 42);
    ck_assert_uint_eq(back.props.headers.len, sizeof small_table);
    for (size_t cut = 0; cut < (size_t)n; cut++) {
        uint8_t *c = exact(out, cut);
        ck_assert_int_eq(amqp91_header_decode(c, cut, &back, &why), -AMQP91_SYNTAX_ERROR);
        free(c);
    }
    out[n] = 0;
    ck_assert_int_eq(amqp91_header_decode(out, (size_t)n + 1, &back, &why), -AMQP91_SYNTAX_ERROR);
    /* no properties at all */
    h.props.flags = 0;
    ck_assert_int_eq(amqp91_header_encode(&h, out, sizeof out), 14);
    ck_assert_int_eq(amqp91_header_decode(out, 14, &back, &why), 0);
    /* what cannot be encoded */
    h.props.flags = 1;
    ck_assert_int_eq(amqp91_header_encode(&h, out, sizeof out), -EINVAL);
    h.props.flags = 0;
    h.class_id = 10;
    ck_assert_int_eq(amqp91_header_encode(&h, out, sizeof out), -EINVAL);
}
END_TEST

START_TEST(test_header_errors)
{
    /* class 60, weight 0, size 5, flags: content-type only; "a" */
    uint8_t ok[] = {0, 60, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5, 0x80, 0x00, 1, 'a'};
    amqp91_header h;
    const char *why = NULL;
    ck_assert_int_eq(amqp91_header_decode(ok, sizeof ok, &h, &why), 0);
    uint8_t b[sizeof ok];
    memcpy(b, ok, sizeof b);
    b[3] = 1; /* weight */
    ck_assert_int_eq(amqp91_header_decode(b, sizeof b, &h, &why), -AMQP91_SYNTAX_ERROR);
    ck_assert_str_eq(why, "content header weight is not 0");
    memcpy(b, ok, sizeof b);
    b[13] = 0x01; /* continuation */
    ck_assert_int_eq(amqp91_header_decode(b, sizeof b, &h, &why), -AMQP91_SYNTAX_ERROR);
    b[13] = 0x02; /* the unused bit after the 14th property */
    ck_assert_int_eq(amqp91_header_decode(b, sizeof b, &h, &why), -AMQP91_SYNTAX_ERROR);
    memcpy(b, ok, sizeof b);
    b[1] = 10; /* connection has no content */
    ck_assert_int_eq(amqp91_header_decode(b, sizeof b, &h, &why), -AMQP91_NOT_IMPLEMENTED);
    memcpy(b, ok, sizeof b);
    b[14] = 2; /* the shortstr runs past the payload */
    ck_assert_int_eq(amqp91_header_decode(b, sizeof b, &h, &why), -AMQP91_SYNTAX_ERROR);
    /* a headers table with a bad tag inside */
    uint8_t bt[] = {0, 60, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5, 0x20, 0x00, 0, 0, 0, 3, 1, 'k', 'Z'};
    ck_assert_int_eq(amqp91_header_decode(bt, sizeof bt, &h, &why), -AMQP91_SYNTAX_ERROR);
    ck_assert_str_eq(why, "unknown field table value type");
}
END_TEST

/* --------------------------------------------------------- field tables */

START_TEST(test_table_every_type)
{
    /* one value a line */
    /* clang-format off */
    static const uint8_t t[] = {
        1, 't', 't', 1,                                  /* bool */
        1, 'b', 'b', 0x80,                               /* int8 -128 */
        1, 'B', 'B', 0xff,                               /* uint8 */
        1, 's', 's', 0xff, 0xfe,                         /* int16 -2 */
        1, 'u', 'u', 0xff, 0xfe,                         /* uint16 */
        1, 'I', 'I', 0xff, 0xff, 0xff, 0xfd,             /* int32 -3 */
        1, 'i', 'i', 0xff, 0xff, 0xff, 0xfd,             /* uint32 */
        1, 'l', 'l', 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xfc,
        1, 'f', 'f', 0x3f, 0xc0, 0, 0,                   /* 1.5f */
        1, 'd', 'd', 0x40, 0x04, 0, 0, 0, 0, 0, 0,       /* 2.5 */
        1, 'D', 'D', 2, 0xff, 0xff, 0xff, 0xff,          /* -0.01 */
        1, 'S', 'S', 0, 0, 0, 2, 'h', 'i',
        1, 'x', 'x', 0, 0, 0, 1, 0,
        1, 'T', 'T', 0, 0, 0, 0, 0x65, 0x53, 0xf1, 0x00,
        1, 'V', 'V',
        1, 'F', 'F', 0, 0, 0, 0,
        1, 'A', 'A', 0, 0, 0, 4, 'V', 'b', 1, 'V',
    };
    /* clang-format on */
    amqp91_table *tab = NULL;
    const char *why = NULL;
    ck_assert_int_eq(amqp91_table_check(t, sizeof t, &why), 0);
    ck_assert_int_eq(amqp91_table_parse(t, sizeof t, &tab, &why), 0);
    ck_assert_uint_eq(tab->n, 17);
    for (uint32_t i = 0; i < tab->n; i++)
        ck_assert_int_eq(tab->f[i].value.type, tab->f[i].name.p[0]);
    ck_assert(tab->f[0].value.v.t);
    ck_assert_int_eq(tab->f[1].value.v.b, -128);
    ck_assert_int_eq(tab->f[3].value.v.s, -2);
    ck_assert_uint_eq(tab->f[4].value.v.u, 0xfffe);
    ck_assert_int_eq(tab->f[5].value.v.I, -3);
    ck_assert_uint_eq(tab->f[6].value.v.i, 0xfffffffd);
    ck_assert_int_eq(tab->f[7].value.v.l, -4);
    ck_assert(tab->f[8].value.v.f == 1.5f);
    ck_assert(tab->f[9].value.v.d == 2.5);
    ck_assert_int_eq(tab->f[10].value.v.D.value, -1);
    ck_assert(bytes_is(tab->f[11].value.v.str, "hi"));
    ck_assert_uint_eq(tab->f[16].value.v.A->n, 3);
    ck_assert_int_eq(tab->f[16].value.v.A->v[1].v.b, 1);
    uint8_t out[256];
    ck_assert_int_eq(amqp91_table_encode(tab, out, sizeof out), (int)sizeof t);
    ck_assert_int_eq(memcmp(out, t, sizeof t), 0);
    for (size_t cap = 0; cap < sizeof t; cap++)
        ck_assert_int_eq(amqp91_table_encode(tab, out, cap), -ENOSPC);
    amqp91_table_free(tab);
    /* every prefix: valid at a field boundary, a syntax error inside one, never a crash */
    for (size_t n = 0; n < sizeof t; n++) {
        uint8_t *c = exact(t, n);
        int rc = amqp91_table_parse(c, n, &tab, &why);
        ck_assert_msg(rc == 0 || rc == -AMQP91_SYNTAX_ERROR, "prefix %zu: %d", n, rc);
        ck_assert_int_eq(amqp91_table_check(c, n, NULL), rc);
        if (rc == 0)
            amqp91_table_free(tab);
        else
            ck_assert_ptr_null(tab);
        free(c);
    }
}
END_TEST

START_TEST(test_table_bad_bytes)
{
    const char *why = NULL;
    amqp91_table *t = NULL;
    static const uint8_t bad_tag[] = {1, 'k', 'L', 0, 0, 0, 0, 0, 0, 0, 0}; /* 'L' is not RabbitMQ's */
    ck_assert_int_eq(amqp91_table_parse(bad_tag, sizeof bad_tag, &t, &why), -AMQP91_SYNTAX_ERROR);
    ck_assert_str_eq(why, "unknown field table value type");
    static const uint8_t bad_bool[] = {1, 'k', 't', 2};
    ck_assert_int_eq(amqp91_table_check(bad_bool, sizeof bad_bool, &why), -AMQP91_SYNTAX_ERROR);
    static const uint8_t long_str[] = {1, 'k', 'S', 0, 0, 0, 9, 'a'}; /* 9 bytes promised, 1 there */
    ck_assert_int_eq(amqp91_table_check(long_str, sizeof long_str, &why), -AMQP91_SYNTAX_ERROR);
    static const uint8_t long_name[] = {5, 'k', 'S'};
    ck_assert_int_eq(amqp91_table_check(long_name, sizeof long_name, &why), -AMQP91_SYNTAX_ERROR);
    /* a nested table whose length runs past the outer one */
    static const uint8_t nested[] = {1, 'k', 'F', 0, 0, 0, 4, 1, 'j', 'V'};
    ck_assert_int_eq(amqp91_table_check(nested, sizeof nested, &why), -AMQP91_SYNTAX_ERROR);
    /* a bad value deep inside an array inside a table */
    static const uint8_t deep_bad[] = {1, 'k', 'A', 0, 0, 0, 8, 'F', 0, 0, 0, 3, 1, 'j', '?'};
    ck_assert_int_eq(amqp91_table_parse(deep_bad, sizeof deep_bad, &t, &why), -AMQP91_SYNTAX_ERROR);
    ck_assert_str_eq(why, "unknown field table value type");
}
END_TEST

/* Tables nested depth deep (the outer one counted), each inside the last
 * under the name "n". */
static size_t nested_tables(uint8_t *b, int depth)
{
    if (depth == 1)
        return 0;
    b[0] = 1;
    b[1] = 'n';
    b[2] = 'F';
    size_t in = nested_tables(b + 7, depth - 1);
    b[3] = 0;
    b[4] = 0;
    b[5] = 0;
    b[6] = (uint8_t)in;
    return 7 + in;
}

START_TEST(test_table_depth_bound)
{
    uint8_t b[256];
    const char *why = NULL;
    size_t n = nested_tables(b, AMQP91_TABLE_MAX_DEPTH);
    amqp91_table *t = NULL;
    ck_assert_int_eq(amqp91_table_parse(b, n, &t, &why), 0);
    uint8_t out[256];
    ck_assert_int_eq(amqp91_table_encode(t, out, sizeof out), (int)n);
    ck_assert_int_eq(memcmp(out, b, n), 0);
    /* one level more: refused on decode, and on encode */
    amqp91_table *inner = t;
    while (inner->n)
        inner = inner->f[0].value.v.F;
    amqp91_table extra = {0, NULL};
    amqp91_field f = {S("n"), {.type = 'F', .v.F = &extra}};
    inner->n = 1;
    inner->f = &f;
    ck_assert_int_eq(amqp91_table_encode(t, out, sizeof out), -EINVAL);
    inner->n = 0;
    inner->f = NULL;
    amqp91_table_free(t);
    n = nested_tables(b, AMQP91_TABLE_MAX_DEPTH + 1);
    ck_assert_int_eq(amqp91_table_check(b, n, &why), -AMQP91_SYNTAX_ERROR);
    ck_assert_str_eq(why, "field tables nested too deep");
    ck_assert_int_eq(amqp91_table_parse(b, n, &t, &why), -AMQP91_SYNTAX_ERROR);
    ck_assert_ptr_null(t);
}
END_TEST

START_TEST(test_table_encode_refuses)
{
    char big[300];
    memset(big, 'n', sizeof big);
    amqp91_field f = {{(const uint8_t *)big, 256}, {.type = 'V'}};
    amqp91_table t = {1, &f};
    uint8_t out[512];
    ck_assert_int_eq(amqp91_table_encode(&t, out, sizeof out), -EINVAL);
    f.name.len = 255;
    ck_assert_int_eq(amqp91_table_encode(&t, out, sizeof out), 1 + 255 + 1);
    f.value.type = 'L';
    ck_assert_int_eq(amqp91_table_encode(&t, out, sizeof out), -EINVAL);
    f.value.type = 'F'; /* with no table */
    f.value.v.F = NULL;
    ck_assert_int_eq(amqp91_table_encode(&t, out, sizeof out), -EINVAL);
}
END_TEST

static Suite *codec_suite(void)
{
    Suite *s = suite_create("amqp/amqp091");
    TCase *tc = tcase_create("codec");
    tcase_add_test(tc, test_proto_header_classified);
    tcase_add_test(tc, test_frame_every_prefix_needs_more);
    tcase_add_test(tc, test_frame_errors_are_501);
    tcase_add_test(tc, test_frame_write_heartbeat_and_body);
    tcase_add_test(tc, test_pika_handshake_methods);
    tcase_add_test(tc, test_pika_publish_and_header);
    tcase_add_test(tc, test_spec_bytes_basic_deliver);
    tcase_add_test(tc, test_spec_bits_packed_lsb_first);
    tcase_add_test(tc, test_every_method_round_trips);
    tcase_add_test(tc, test_server_methods_exist);
    tcase_add_test(tc, test_unknown_method_not_implemented);
    tcase_add_test(tc, test_shortstr_over_255_refused);
    tcase_add_test(tc, test_header_all_properties_round_trip);
    tcase_add_test(tc, test_header_errors);
    tcase_add_test(tc, test_table_every_type);
    tcase_add_test(tc, test_table_bad_bytes);
    tcase_add_test(tc, test_table_depth_bound);
    tcase_add_test(tc, test_table_encode_refuses);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return run_suite(codec_suite()); }
