/* test_amqp091_map.c — the 0-9-1 <-> AMQP 1.0 message mapping (amqp/map091*.c):
 * every basic property both ways, checked against proton's own decoder and
 * encoder (pn_message), field-table types from each application-property
 * type, round trips 0-9-1 -> 1.0 -> 0-9-1, bodies byte for byte (JSON, many
 * data sections, amqp-value, amqp-sequence), and bad input: expirations,
 * sizes, tables, truncated and garbage 1.0 bytes. */
#include <check.h>
#include <errno.h>
#include <math.h>
#include <proton/codec.h>
#include <proton/message.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check_main.h"
#include "amqp/amqp_internal.h"

#define B(lit) ((amqp91_bytes){(const uint8_t *)(lit), sizeof(lit) - 1})

static const char JSON[] = "{\"order\": 17, \"items\": [\"caf\xc3\xa9\", null, 1.5e3], \"note\": \"\\u00e9\\n\"}";

/* ------------------------------------------------------------- helpers */

static rt_msg *publish(const amqp91_props *p, const void *body, size_t n, const char *x, const char *rk)
{
    rt_msg *m = NULL;
    size_t off = 0, total = 0;
    const char *why = NULL;
    int rc = amqp__091_msg_new(p, n, x, rk, &m, &off, &total, &why);
    ck_assert_msg(rc == 0, "msg_new: %d %s", rc, why ? why : "");
    ck_assert_uint_eq(total, off + n);
    if (n)
        memcpy(rt_msg_bytes(m) + off, body, n);
    rc = rt_msg_finish(&m, total);
    ck_assert_int_eq(rc, 0);
    return m;
}

static pn_message_t *decode10(const rt_msg *m)
{
    pn_message_t *pm = pn_message();
    int rc = pn_message_decode(pm, (const char *)m->buf.data, m->buf.len);
    ck_assert_msg(rc == 0, "proton cannot decode it: %d", rc);
    return pm;
}

static rt_msg *encode10(pn_message_t *pm)
{
    char buf[65536];
    size_t n = sizeof buf;
    ck_assert_int_eq(pn_message_encode(pm, buf, &n), 0);
    rt_msg *m = NULL;
    ck_assert_int_eq(rt_msg_new(buf, n, &m), 0);
    return m;
}

/* A message from raw bytes, not checked by rt_msg_finish. */
static rt_msg *raw(const void *b, size_t n)
{
    rt_msg *m = rt_msg_alloc(n);
    ck_assert_ptr_nonnull(m);
    if (n)
        memcpy(rt_msg_bytes(m), b, n);
    m->buf.len = n;
    return m;
}

typedef struct delivery {
    uint8_t frame[4088];
    amqp91_header h;
    amqp91_table *headers;
    uint8_t *body;
    size_t body_len;
} delivery;

static void deliver(const rt_msg *m, delivery *d)
{
    memset(d, 0, sizeof *d);
    uint64_t size = 0;
    int n = amqp__091_msg_header(m, d->frame, sizeof d->frame, &size);
    ck_assert_msg(n > 0, "msg_header: %d", n);
    const char *why = NULL;
    int rc = amqp91_header_decode(d->frame, (size_t)n, &d->h, &why);
    ck_assert_msg(rc == 0, "our header does not decode: %s", why ? why : "");
    ck_assert_uint_eq(d->h.body_size, size);
    if (d->h.props.flags & AMQP91_P_HEADERS)
        ck_assert_int_eq(amqp91_table_parse(d->h.props.headers.p, d->h.props.headers.len, &d->headers, &why), 0);
    d->body = malloc(size + 1);
    size_t pos = 0, len;
    const uint8_t *p;
    while (amqp__091_body_next(m, &pos, &p, &len)) {
        ck_assert_uint_le(d->body_len + len, size);
        memcpy(d->body + d->body_len, p, len);
        d->body_len += len;
    }
    ck_assert_uint_eq(d->body_len, size);
    ck_assert(!amqp__091_body_next(m, &pos, &p, &len));
}

static void delivery_free(delivery *d)
{
    amqp91_table_free(d->headers);
    free(d->body);
}

static const amqp91_value *hdr(const delivery *d, const char *name)
{
    for (uint32_t i = 0; d->headers && i < d->headers->n; i++)
        if (d->headers->f[i].name.len == strlen(name) && memcmp(d->headers->f[i].name.p, name, strlen(name)) == 0)
            return &d->headers->f[i].value;
    return NULL;
}

static bool bytes_is(amqp91_bytes b, const char *s) { return b.len == strlen(s) && memcmp(b.p, s, b.len) == 0; }

/* Finds key in a pn_data map positioned on the map; leaves d on its value. */
static bool map_find(pn_data_t *d, const char *key)
{
    pn_data_rewind(d);
    if (!pn_data_next(d) || pn_data_type(d) != PN_MAP)
        return false;
    pn_data_enter(d);
    while (pn_data_next(d)) {
        pn_type_t t = pn_data_type(d);
        pn_bytes_t k = t == PN_STRING ? pn_data_get_string(d) : t == PN_SYMBOL ? pn_data_get_symbol(d) : pn_bytes(0, 0);
        if (!pn_data_next(d))
            return false;
        if (k.start && k.size == strlen(key) && memcmp(k.start, key, k.size) == 0)
            return true;
    }
    return false;
}

static pn_type_t key_type(pn_data_t *d, const char *key)
{
    pn_data_rewind(d);
    pn_data_next(d);
    pn_data_enter(d);
    while (pn_data_next(d)) {
        pn_type_t t = pn_data_type(d);
        pn_bytes_t k = t == PN_STRING ? pn_data_get_string(d) : t == PN_SYMBOL ? pn_data_get_symbol(d) : pn_bytes(0, 0);
        if (k.start && k.size == strlen(key) && memcmp(k.start, key, k.size) == 0)
            return t;
        pn_data_next(d);
    }
    return PN_INVALID;
}

static void put_be(uint8_t *b, size_t *n, uint64_t v, int k)
{
    for (int i = k - 1; i >= 0; i--)
        b[(*n)++] = (uint8_t)(v >> (8 * i));
}

/* A headers table with one field of each 0-9-1 type, written by hand. */
static size_t headers_all(uint8_t *b)
{
    size_t n = 0;
#define NAME(s) (b[n++] = (uint8_t)strlen(s), memcpy(b + n, s, strlen(s)), n += strlen(s))
#define U8(v) (b[n++] = (uint8_t)(v))
#define BE(v, k) put_be(b, &n, (uint64_t)(v), k)
    NAME("bool"), U8('t'), U8(1);
    NAME("i8"), U8('b'), U8(0xfe);
    NAME("u8"), U8('B'), U8(200);
    NAME("i16"), U8('s'), BE(-300 & 0xffff, 2);
    NAME("u16"), U8('u'), BE(60000, 2);
    NAME("i32"), U8('I'), BE((uint32_t)-70000, 4);
    NAME("u32"), U8('i'), BE(4000000000u, 4);
    NAME("i64"), U8('l'), BE((uint64_t)-5000000000ll, 8);
    float fl = 1.5f;
    uint32_t fb;
    memcpy(&fb, &fl, 4);
    NAME("f"), U8('f'), BE(fb, 4);
    double db = -2.25;
    uint64_t dbb;
    memcpy(&dbb, &db, 8);
    NAME("d"), U8('d'), BE(dbb, 8);
    NAME("str"), U8('S'), BE(5, 4), memcpy(b + n, "hello", 5), n += 5;
    NAME("bin"), U8('x'), BE(3, 4), memcpy(b + n, "\x00\x01\x02", 3), n += 3;
    NAME("ts"), U8('T'), BE(1700000000, 8);
    NAME("void"), U8('V');
    NAME("dec"), U8('D'), U8(2), BE(12345, 4);                      /* no 1.0 form: left out */
    NAME("tbl"), U8('F'), BE(4, 4), NAME("k"), U8('t'), U8(0);      /* not simple: left out */
    NAME("arr"), U8('A'), BE(2, 4), U8('t'), U8(1);                 /* not simple: left out */
    NAME("x-tbl"), U8('F'), BE(7, 4), NAME("k"), U8('I'), BE(7, 4); /* x-: an annotation, nested */
    NAME("x-arr"), U8('A'), BE(7, 4), U8('S'), BE(2, 4), memcpy(b + n, "ab", 2), n += 2;
    NAME("x-custom"), U8('S'), BE(3, 4), memcpy(b + n, "yes", 3), n += 3;
    NAME("x-exchange"), U8('S'), BE(4, 4), memcpy(b + n, "fake", 4), n += 4; /* RabbitMQ's own: left out */
    NAME("CC"), U8('A'), BE(6, 4), U8('S'), BE(1, 4), U8('q');
    return n;
}

static amqp91_props all_props(uint8_t *tbl, size_t tn)
{
    amqp91_props p;
    memset(&p, 0, sizeof p);
    p.flags = AMQP91_P_CONTENT_TYPE | AMQP91_P_CONTENT_ENCODING | AMQP91_P_HEADERS | AMQP91_P_DELIVERY_MODE |
              AMQP91_P_PRIORITY | AMQP91_P_CORRELATION_ID | AMQP91_P_REPLY_TO | AMQP91_P_EXPIRATION |
              AMQP91_P_MESSAGE_ID | AMQP91_P_TIMESTAMP | AMQP91_P_TYPE | AMQP91_P_USER_ID | AMQP91_P_APP_ID;
    p.content_type = B("application/json");
    p.content_encoding = B("gzip");
    p.headers = (amqp91_bytes){tbl, (uint32_t)tn};
    p.delivery_mode = 2;
    p.priority = 7;
    p.correlation_id = B("corr-1");
    p.reply_to = B("amq.gen-reply q");
    p.expiration = B("60000");
    p.message_id = B("urn:uuid:550e8400-e29b-41d4-a716-446655440000");
    p.timestamp = 1700000000;
    p.type = B("order.created");
    p.user_id = B("guest");
    p.app_id = B("shop");
    return p;
}

/* ----------------------------------------------------- 0-9-1 -> 1.0 */

START_TEST(publish_every_property)
{
    uint8_t tbl[512];
    size_t tn = headers_all(tbl);
    amqp91_props p = all_props(tbl, tn);
    rt_msg *m = publish(&p, JSON, strlen(JSON), "orders", "order.created");
    ck_assert(m->durable);
    ck_assert(m->has_priority);
    ck_assert_uint_eq(m->priority, 7);
    ck_assert_uint_eq(m->ttl, 60000);
    ck_assert_str_eq(m->reply_to, "/queues/amq.gen-reply%20q");
    pn_message_t *pm = decode10(m);
    ck_assert(pn_message_is_durable(pm));
    ck_assert_uint_eq(pn_message_get_priority(pm), 7);
    ck_assert_uint_eq(pn_message_get_ttl(pm), 60000);
    pn_msgid_t id = pn_message_get_id(pm);
    ck_assert_int_eq(id.type, PN_UUID);
    ck_assert_mem_eq(id.u.as_uuid.bytes, "\x55\x0e\x84\x00\xe2\x9b\x41\xd4\xa7\x16\x44\x66\x55\x44\x00\x00", 16);
    pn_msgid_t cid = pn_message_get_correlation_id(pm);
    ck_assert_int_eq(cid.type, PN_STRING);
    ck_assert_uint_eq(cid.u.as_bytes.size, 6);
    ck_assert_mem_eq(cid.u.as_bytes.start, "corr-1", 6);
    pn_bytes_t uid = pn_message_get_user_id(pm);
    ck_assert_uint_eq(uid.size, 5);
    ck_assert_mem_eq(uid.start, "guest", 5);
    ck_assert_str_eq(pn_message_get_content_type(pm), "application/json");
    ck_assert_str_eq(pn_message_get_content_encoding(pm), "gzip");
    ck_assert_int_eq(pn_message_get_creation_time(pm), 1700000000000ll);
    ck_assert_str_eq(pn_message_get_group_id(pm), "shop");
    ck_assert_ptr_null(pn_message_get_address(pm));
    ck_assert_ptr_null(pn_message_get_subject(pm));
    /* message annotations */
    pn_data_t *ma = pn_message_annotations(pm);
    ck_assert(map_find(ma, "x-exchange"));
    ck_assert_mem_eq(pn_data_get_string(ma).start, "orders", 6);
    ck_assert(map_find(ma, "x-routing-key"));
    ck_assert_mem_eq(pn_data_get_string(ma).start, "order.created", 13);
    ck_assert(map_find(ma, "x-basic-type"));
    ck_assert_int_eq(pn_data_type(ma), PN_STRING);
    ck_assert_mem_eq(pn_data_get_string(ma).start, "order.created", 13);
    ck_assert_int_eq(key_type(ma, "x-basic-type"), PN_SYMBOL);
    ck_assert(map_find(ma, "x-custom"));
    ck_assert_mem_eq(pn_data_get_string(ma).start, "yes", 3);
    ck_assert(map_find(ma, "x-tbl"));
    ck_assert_int_eq(pn_data_type(ma), PN_MAP);
    ck_assert(map_find(ma, "x-arr"));
    ck_assert_int_eq(pn_data_type(ma), PN_LIST);
    ck_assert(map_find(ma, "x-cc"));
    ck_assert_int_eq(pn_data_type(ma), PN_LIST);
    /* the client's x-exchange did not make a second key */
    int nx = 0;
    pn_data_rewind(ma);
    pn_data_next(ma);
    pn_data_enter(ma);
    while (pn_data_next(ma)) {
        if (pn_data_type(ma) == PN_SYMBOL && pn_data_get_symbol(ma).size == 10 &&
            memcmp(pn_data_get_symbol(ma).start, "x-exchange", 10) == 0)
            nx++;
        pn_data_next(ma);
    }
    ck_assert_int_eq(nx, 1);
    /* application properties: one 1.0 type per 0-9-1 type */
    pn_data_t *ap = pn_message_properties(pm);
    struct {
        const char *k;
        pn_type_t t;
    } want[] = {{"bool", PN_BOOL},  {"i8", PN_BYTE},    {"u8", PN_UBYTE},     {"i16", PN_SHORT}, {"u16", PN_USHORT},
                {"i32", PN_INT},    {"u32", PN_UINT},   {"i64", PN_LONG},     {"f", PN_FLOAT},   {"d", PN_DOUBLE},
                {"str", PN_STRING}, {"bin", PN_BINARY}, {"ts", PN_TIMESTAMP}, {"void", PN_NULL}};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        ck_assert_msg(map_find(ap, want[i].k), "%s missing", want[i].k);
        ck_assert_msg(pn_data_type(ap) == want[i].t, "%s is %s", want[i].k, pn_type_name(pn_data_type(ap)));
        ck_assert_int_eq(key_type(ap, want[i].k), PN_STRING);
    }
    ck_assert(map_find(ap, "i8") && pn_data_get_byte(ap) == -2);
    ck_assert(map_find(ap, "i16") && pn_data_get_short(ap) == -300);
    ck_assert(map_find(ap, "i32") && pn_data_get_int(ap) == -70000);
    ck_assert(map_find(ap, "u32") && pn_data_get_uint(ap) == 4000000000u);
    ck_assert(map_find(ap, "i64") && pn_data_get_long(ap) == -5000000000ll);
    ck_assert(map_find(ap, "f") && pn_data_get_float(ap) == 1.5f);
    ck_assert(map_find(ap, "d") && pn_data_get_double(ap) == -2.25);
    ck_assert(map_find(ap, "ts") && pn_data_get_timestamp(ap) == 1700000000000ll);
    for (const char **k = (const char *[]){"dec", "tbl", "arr", "CC", "x-custom", NULL}; *k; k++)
        ck_assert_msg(!map_find(ap, *k), "%s should not be an application property", *k);
    /* the body: one data section, the bytes as sent */
    pn_data_t *body = pn_message_body(pm);
    pn_data_rewind(body);
    ck_assert(pn_data_next(body));
    ck_assert_int_eq(pn_data_type(body), PN_BINARY);
    ck_assert_uint_eq(pn_data_get_binary(body).size, strlen(JSON));
    ck_assert_mem_eq(pn_data_get_binary(body).start, JSON, strlen(JSON));
    pn_message_free(pm);
    rt_msg_unref(m);
}
END_TEST

START_TEST(publish_minimal)
{
    amqp91_props p;
    memset(&p, 0, sizeof p);
    rt_msg *m = publish(&p, "x", 1, NULL, NULL);
    /* nothing but the data section */
    ck_assert_uint_eq(m->buf.len, 6);
    ck_assert_mem_eq(m->buf.data, "\x00\x53\x75\xa0\x01x", 6);
    ck_assert_uint_eq(m->hdr_len, 0);
    rt_msg_unref(m);
    /* delivery-mode 1 alone: a header saying not durable */
    p.flags = AMQP91_P_DELIVERY_MODE;
    p.delivery_mode = 1;
    m = publish(&p, "", 0, "", "k");
    ck_assert(!m->durable);
    ck_assert_uint_gt(m->hdr_len, 0);
    pn_message_t *pm = decode10(m);
    pn_data_t *ma = pn_message_annotations(pm);
    ck_assert(map_find(ma, "x-exchange"));
    ck_assert_uint_eq(pn_data_get_string(ma).size, 0);
    pn_message_free(pm);
    rt_msg_unref(m);
}
END_TEST

/* Headers with nothing to map (an empty table, only a decimal) make no
 * sections: the message is exactly as long as it says (the fuzzer found the
 * writing pass starting a section it then took back, past the end; ASan
 * sees it in `make asan`). */
START_TEST(publish_headers_nothing_maps)
{
    amqp91_props p;
    memset(&p, 0, sizeof p);
    p.flags = AMQP91_P_HEADERS | AMQP91_P_PRIORITY;
    p.priority = 3;
    for (int i = 0; i < 2; i++) {
        p.headers = i ? B("\x03"
                          "dec"
                          "D\x02\x00\x00\x00\x01")
                      : (amqp91_bytes){NULL, 0};
        rt_msg *m = publish(&p, "", 0, NULL, NULL);
        pn_message_t *pm = decode10(m);
        ck_assert_int_eq(pn_data_size(pn_message_properties(pm)), 0);
        ck_assert_int_eq(pn_data_size(pn_message_annotations(pm)), 0);
        pn_message_free(pm);
        delivery d;
        deliver(m, &d);
        /* priority without delivery-mode: no delivery-mode back */
        ck_assert_uint_eq(d.h.props.flags, AMQP91_P_PRIORITY);
        ck_assert_uint_eq(d.h.props.priority, 3);
        delivery_free(&d);
        rt_msg_unref(m);
    }
}
END_TEST

START_TEST(publish_ids)
{
    amqp91_props p;
    memset(&p, 0, sizeof p);
    p.flags = AMQP91_P_MESSAGE_ID | AMQP91_P_CORRELATION_ID;
    p.message_id = B("urn:uuid:550e8400-e29b-41d4-a716-44665544000g"); /* not hex: a string */
    p.correlation_id = B("urn:uuid:550E8400-E29B-41D4-A716-446655440000");
    rt_msg *m = publish(&p, "", 0, NULL, NULL);
    pn_message_t *pm = decode10(m);
    ck_assert_int_eq(pn_message_get_id(pm).type, PN_STRING);
    ck_assert_int_eq(pn_message_get_correlation_id(pm).type, PN_UUID);
    pn_message_free(pm);
    delivery d;
    deliver(m, &d);
    ck_assert(bytes_is(d.h.props.message_id, "urn:uuid:550e8400-e29b-41d4-a716-44665544000g"));
    ck_assert(bytes_is(d.h.props.correlation_id, "urn:uuid:550e8400-e29b-41d4-a716-446655440000")); /* lower case */
    delivery_free(&d);
    rt_msg_unref(m);
}
END_TEST

START_TEST(publish_long_body_and_reply_to)
{
    size_t n = 70000;
    char *body = malloc(n);
    for (size_t i = 0; i < n; i++)
        body[i] = (char)(i * 7);
    amqp91_props p;
    memset(&p, 0, sizeof p);
    p.flags = AMQP91_P_REPLY_TO;
    uint8_t rt[255];
    memset(rt, '/', sizeof rt); /* each one escaped: an address over 255 bytes */
    p.reply_to = (amqp91_bytes){rt, sizeof rt};
    rt_msg *m = publish(&p, body, n, "x", "y");
    ck_assert_uint_eq(strlen(m->reply_to), 8 + 3 * 255);
    delivery d;
    deliver(m, &d);
    ck_assert_uint_eq(d.body_len, n);
    ck_assert_mem_eq(d.body, body, n);
    ck_assert_uint_eq(d.h.props.reply_to.len, 255);
    ck_assert_mem_eq(d.h.props.reply_to.p, rt, 255);
    delivery_free(&d);
    rt_msg_unref(m);
    free(body);
}
END_TEST

/* ----------------------------------------------------- 1.0 -> 0-9-1 */

START_TEST(deliver_every_property)
{
    pn_message_t *pm = pn_message();
    pn_message_set_durable(pm, true);
    pn_message_set_priority(pm, 9);
    pn_message_set_ttl(pm, 1234);
    pn_message_set_id(pm, (pn_msgid_t){.type = PN_ULONG, .u.as_ulong = 42});
    pn_uuid_t u = {{0x55, 0x0e, 0x84, 0x00, 0xe2, 0x9b, 0x41, 0xd4, 0xa7, 0x16, 0x44, 0x66, 0x55, 0x44, 0, 0}};
    pn_message_set_correlation_id(pm, (pn_msgid_t){.type = PN_UUID, .u.as_uuid = u});
    pn_message_set_user_id(pm, pn_bytes(5, "alice"));
    pn_message_set_address(pm, "/queues/work");
    pn_message_set_subject(pm, "subj");
    pn_message_set_reply_to(pm, "/queues/reply%2Fq%20x");
    pn_message_set_content_type(pm, "application/json");
    pn_message_set_content_encoding(pm, "utf-8");
    pn_message_set_creation_time(pm, 1700000000999);
    pn_message_set_group_id(pm, "app");
    pn_data_t *ma = pn_message_annotations(pm);
    pn_data_put_map(ma);
    pn_data_enter(ma);
    pn_data_put_symbol(ma, pn_bytes(12, "x-basic-type"));
    pn_data_put_string(ma, pn_bytes(4, "kind"));
    pn_data_put_symbol(ma, pn_bytes(10, "x-exchange"));
    pn_data_put_string(ma, pn_bytes(2, "ex"));
    pn_data_put_symbol(ma, pn_bytes(13, "x-routing-key"));
    pn_data_put_string(ma, pn_bytes(2, "rk"));
    pn_data_put_symbol(ma, pn_bytes(5, "x-foo"));
    pn_data_put_int(ma, 5);
    pn_data_put_symbol(ma, pn_bytes(4, "x-cc"));
    pn_data_put_list(ma);
    pn_data_enter(ma);
    pn_data_put_string(ma, pn_bytes(2, "k1"));
    pn_data_exit(ma);
    pn_data_put_symbol(ma, pn_bytes(5, "other"));
    pn_data_put_int(ma, 1); /* not x-: dropped */
    pn_data_exit(ma);
    pn_data_t *ap = pn_message_properties(pm);
    pn_data_put_map(ap);
    pn_data_enter(ap);
#define KEY(s) pn_data_put_string(ap, pn_bytes(strlen(s), s))
    KEY("null"), pn_data_put_null(ap);
    KEY("bool"), pn_data_put_bool(ap, true);
    KEY("ubyte"), pn_data_put_ubyte(ap, 250);
    KEY("byte"), pn_data_put_byte(ap, -5);
    KEY("ushort"), pn_data_put_ushort(ap, 65000);
    KEY("short"), pn_data_put_short(ap, -32000);
    KEY("uint"), pn_data_put_uint(ap, 4000000000u);
    KEY("uint-small"), pn_data_put_uint(ap, 7);
    KEY("uint-zero"), pn_data_put_uint(ap, 0);
    KEY("int"), pn_data_put_int(ap, -2000000000);
    KEY("int-small"), pn_data_put_int(ap, -3);
    KEY("ulong"), pn_data_put_ulong(ap, 1ull << 40);
    KEY("ulong-small"), pn_data_put_ulong(ap, 9);
    KEY("long"), pn_data_put_long(ap, -(1ll << 40));
    KEY("long-small"), pn_data_put_long(ap, -100);
    KEY("float"), pn_data_put_float(ap, 0.5f);
    KEY("double"), pn_data_put_double(ap, 3.25);
    KEY("ts"), pn_data_put_timestamp(ap, 1700000000123);
    KEY("str"), pn_data_put_string(ap, pn_bytes(3, "abc"));
    KEY("sym"), pn_data_put_symbol(ap, pn_bytes(3, "def"));
    KEY("bin"), pn_data_put_binary(ap, pn_bytes(2, "\xff\x00"));
    KEY("uuid"), pn_data_put_uuid(ap, u);   /* no 0-9-1 form: left out */
    KEY("char"), pn_data_put_char(ap, 'c'); /* no 0-9-1 form: left out */
    KEY("list"), pn_data_put_list(ap);
    pn_data_enter(ap);
    pn_data_put_int(ap, 1);
    pn_data_put_uuid(ap, u); /* void inside */
    pn_data_exit(ap);
    KEY("map"), pn_data_put_map(ap);
    pn_data_enter(ap);
    pn_data_put_symbol(ap, pn_bytes(1, "a"));
    pn_data_put_bool(ap, false);
    pn_data_exit(ap);
    KEY("array"), pn_data_put_array(ap, false, PN_INT);
    pn_data_enter(ap);
    pn_data_put_int(ap, 10);
    pn_data_put_int(ap, 20);
    pn_data_exit(ap);
    pn_data_exit(ap);
    pn_data_put_binary(pn_message_body(pm), pn_bytes(strlen(JSON), JSON));
    rt_msg *m = encode10(pm);
    pn_message_free(pm);

    delivery d;
    deliver(m, &d);
    amqp91_props *p = &d.h.props;
    ck_assert_uint_eq(p->delivery_mode, 2);
    ck_assert_uint_eq(p->priority, 9);
    ck_assert(bytes_is(p->expiration, "1234"));
    ck_assert(bytes_is(p->message_id, "42"));
    ck_assert(bytes_is(p->correlation_id, "urn:uuid:550e8400-e29b-41d4-a716-446655440000"));
    ck_assert(bytes_is(p->user_id, "alice"));
    ck_assert(bytes_is(p->reply_to, "reply/q x"));
    ck_assert(bytes_is(p->content_type, "application/json"));
    ck_assert(bytes_is(p->content_encoding, "utf-8"));
    ck_assert_uint_eq(p->timestamp, 1700000000);
    ck_assert(bytes_is(p->app_id, "app"));
    ck_assert(bytes_is(p->type, "kind"));
    ck_assert_uint_eq(p->flags & AMQP91_P_RESERVED, 0);
    struct {
        const char *k;
        char t;
    } want[] = {{"null", 'V'},      {"bool", 't'},   {"ubyte", 'B'},       {"byte", 'b'},      {"ushort", 'u'},
                {"short", 's'},     {"uint", 'i'},   {"uint-small", 'i'},  {"uint-zero", 'i'}, {"int", 'I'},
                {"int-small", 'I'}, {"ulong", 'l'},  {"ulong-small", 'l'}, {"long", 'l'},      {"long-small", 'l'},
                {"float", 'f'},     {"double", 'd'}, {"ts", 'T'},          {"str", 'S'},       {"sym", 'S'},
                {"bin", 'x'},       {"list", 'A'},   {"map", 'F'},         {"array", 'A'},     {"x-foo", 'I'},
                {"CC", 'A'}};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const amqp91_value *v = hdr(&d, want[i].k);
        ck_assert_msg(v, "header %s missing", want[i].k);
        ck_assert_msg(v->type == want[i].t, "header %s is '%c'", want[i].k, v->type);
    }
    ck_assert(hdr(&d, "bool")->v.t);
    ck_assert_uint_eq(hdr(&d, "ubyte")->v.B, 250);
    ck_assert_int_eq(hdr(&d, "byte")->v.b, -5);
    ck_assert_uint_eq(hdr(&d, "ushort")->v.u, 65000);
    ck_assert_int_eq(hdr(&d, "short")->v.s, -32000);
    ck_assert_uint_eq(hdr(&d, "uint")->v.i, 4000000000u);
    ck_assert_uint_eq(hdr(&d, "uint-small")->v.i, 7);
    ck_assert_int_eq(hdr(&d, "int")->v.I, -2000000000);
    ck_assert_int_eq(hdr(&d, "int-small")->v.I, -3);
    ck_assert_int_eq(hdr(&d, "ulong")->v.l, 1ll << 40);
    ck_assert_int_eq(hdr(&d, "ulong-small")->v.l, 9);
    ck_assert_int_eq(hdr(&d, "long")->v.l, -(1ll << 40));
    ck_assert_int_eq(hdr(&d, "long-small")->v.l, -100);
    ck_assert(hdr(&d, "float")->v.f == 0.5f);
    ck_assert(hdr(&d, "double")->v.d == 3.25);
    ck_assert_uint_eq(hdr(&d, "ts")->v.T, 1700000000);
    ck_assert(bytes_is(hdr(&d, "str")->v.str, "abc"));
    ck_assert(bytes_is(hdr(&d, "sym")->v.str, "def"));
    ck_assert_uint_eq(hdr(&d, "bin")->v.str.len, 2);
    ck_assert_uint_eq(hdr(&d, "list")->v.A->n, 2);
    ck_assert_int_eq(hdr(&d, "list")->v.A->v[0].type, 'I');
    ck_assert_int_eq(hdr(&d, "list")->v.A->v[1].type, 'V');
    ck_assert_uint_eq(hdr(&d, "map")->v.F->n, 1);
    ck_assert(bytes_is(hdr(&d, "map")->v.F->f[0].name, "a"));
    ck_assert_uint_eq(hdr(&d, "array")->v.A->n, 2);
    ck_assert_int_eq(hdr(&d, "array")->v.A->v[1].v.I, 20);
    ck_assert_int_eq(hdr(&d, "x-foo")->v.I, 5);
    ck_assert(bytes_is(hdr(&d, "CC")->v.A->v[0].v.str, "k1"));
    for (const char **k =
             (const char *[]){"uuid", "char", "other", "x-exchange", "x-routing-key", "x-basic-type", NULL};
         *k; k++)
        ck_assert_msg(!hdr(&d, *k), "%s should not be a header", *k);
    ck_assert_uint_eq(d.body_len, strlen(JSON));
    ck_assert_mem_eq(d.body, JSON, strlen(JSON));
    delivery_free(&d);
    rt_msg_unref(m);
}
END_TEST

START_TEST(deliver_ids_to_headers)
{
    pn_message_t *pm = pn_message();
    pn_message_set_id(pm, (pn_msgid_t){.type = PN_BINARY, .u.as_bytes = pn_bytes(3, "\x01\x02\x03")});
    char longid[300];
    memset(longid, 'z', sizeof longid);
    pn_message_set_correlation_id(pm, (pn_msgid_t){.type = PN_STRING, .u.as_bytes = pn_bytes(300, longid)});
    pn_message_set_user_id(pm, pn_bytes(2, "\xff\xfe")); /* not UTF-8: dropped */
    pn_message_set_reply_to(pm, "/queues/bad%zz");       /* bad escape: dropped */
    rt_msg *m = encode10(pm);
    pn_message_free(pm);
    delivery d;
    deliver(m, &d);
    ck_assert_uint_eq(
        d.h.props.flags & (AMQP91_P_MESSAGE_ID | AMQP91_P_CORRELATION_ID | AMQP91_P_USER_ID | AMQP91_P_REPLY_TO), 0);
    ck_assert_int_eq(hdr(&d, "x-message-id")->type, 'x');
    ck_assert_int_eq(hdr(&d, "x-correlation-id")->type, 'S');
    ck_assert_uint_eq(hdr(&d, "x-correlation-id")->v.str.len, 300);
    delivery_free(&d);
    rt_msg_unref(m);
    /* another address form stays as it is */
    pm = pn_message();
    pn_message_set_reply_to(pm, "/exchanges/amq.direct/key");
    m = encode10(pm);
    pn_message_free(pm);
    deliver(m, &d);
    ck_assert(bytes_is(d.h.props.reply_to, "/exchanges/amq.direct/key"));
    delivery_free(&d);
    rt_msg_unref(m);
}
END_TEST

/* ----------------------------------------------------- round trips */

START_TEST(roundtrip_091)
{
    uint8_t tbl[512];
    size_t tn = headers_all(tbl);
    amqp91_props p = all_props(tbl, tn);
    p.message_id = B("msg-1");
    rt_msg *m = publish(&p, JSON, strlen(JSON), "ex", "rk");
    delivery d;
    deliver(m, &d);
    amqp91_props *q = &d.h.props;
    ck_assert_uint_eq(q->flags, p.flags);
    ck_assert(bytes_is(q->content_type, "application/json"));
    ck_assert(bytes_is(q->content_encoding, "gzip"));
    ck_assert_uint_eq(q->delivery_mode, 2);
    ck_assert_uint_eq(q->priority, 7);
    ck_assert(bytes_is(q->correlation_id, "corr-1"));
    ck_assert(bytes_is(q->reply_to, "amq.gen-reply q"));
    ck_assert(bytes_is(q->expiration, "60000"));
    ck_assert(bytes_is(q->message_id, "msg-1"));
    ck_assert_uint_eq(q->timestamp, 1700000000);
    ck_assert(bytes_is(q->type, "order.created"));
    ck_assert(bytes_is(q->user_id, "guest"));
    ck_assert(bytes_is(q->app_id, "shop"));
    /* every header that has a 1.0 form comes back with its type and value */
    amqp91_table *in = NULL;
    const char *why;
    ck_assert_int_eq(amqp91_table_parse(tbl, tn, &in, &why), 0);
    for (uint32_t i = 0; i < in->n; i++) {
        char name[64];
        snprintf(name, sizeof name, "%.*s", (int)in->f[i].name.len, (const char *)in->f[i].name.p);
        const amqp91_value *a = &in->f[i].value, *b = hdr(&d, name);
        bool dropped =
            !strcmp(name, "dec") || !strcmp(name, "tbl") || !strcmp(name, "arr") || !strcmp(name, "x-exchange");
        if (dropped) {
            ck_assert_msg(!b, "%s came back", name);
            continue;
        }
        ck_assert_msg(b, "%s lost", name);
        ck_assert_msg(a->type == b->type, "%s: '%c' became '%c'", name, a->type, b->type);
        switch (a->type) {
        case 'S':
        case 'x': ck_assert(a->v.str.len == b->v.str.len && !memcmp(a->v.str.p, b->v.str.p, a->v.str.len)); break;
        case 'F': ck_assert_uint_eq(a->v.F->n, b->v.F->n); break;
        case 'A': ck_assert_uint_eq(a->v.A->n, b->v.A->n); break;
        case 'f': ck_assert(a->v.f == b->v.f); break;
        case 'd': ck_assert(a->v.d == b->v.d); break;
        default: ck_assert_msg(a->v.l == b->v.l || a->v.T == b->v.T || a->v.i == b->v.i, "%s differs", name); break;
        }
    }
    ck_assert_uint_eq(d.h.props.headers.len > 0, 1);
    amqp91_table_free(in);
    ck_assert_uint_eq(d.body_len, strlen(JSON));
    ck_assert_mem_eq(d.body, JSON, strlen(JSON));
    delivery_free(&d);
    rt_msg_unref(m);
    /* and with nothing set, nothing comes back */
    memset(&p, 0, sizeof p);
    m = publish(&p, "", 0, "ex", "rk");
    deliver(m, &d);
    ck_assert_uint_eq(d.h.props.flags, 0);
    ck_assert_uint_eq(d.body_len, 0);
    delivery_free(&d);
    rt_msg_unref(m);
}
END_TEST

/* A 0-9-1 message as a 1.0 client sees it, sent back by that client (proton
 * decodes and re-encodes it), to a 0-9-1 consumer: the JSON is untouched. */
START_TEST(json_through_proton)
{
    amqp91_props p;
    memset(&p, 0, sizeof p);
    p.flags = AMQP91_P_CONTENT_TYPE;
    p.content_type = B("application/json");
    rt_msg *m = publish(&p, JSON, strlen(JSON), "", "q");
    pn_message_t *pm = decode10(m);
    rt_msg *m2 = encode10(pm);
    pn_message_free(pm);
    delivery d;
    deliver(m2, &d);
    ck_assert_uint_eq(d.body_len, strlen(JSON));
    ck_assert_mem_eq(d.body, JSON, strlen(JSON));
    ck_assert(bytes_is(d.h.props.content_type, "application/json"));
    delivery_free(&d);
    rt_msg_unref(m);
    rt_msg_unref(m2);
}
END_TEST

/* ----------------------------------------------------- bodies */

START_TEST(body_many_data_sections)
{
    /* properties (content-type), three data sections (one empty, one long), a footer */
    uint8_t b[1024];
    size_t n = 0;
    memcpy(b + n, "\x00\x53\x73\xc0\x09\x07\x40\x40\x40\x40\x40\x40\xa3\x00", 14), n += 14;
    memcpy(b + n, "\x00\x53\x75\xa0\x03{\"a", 8), n += 8;
    memcpy(b + n, "\x00\x53\x75\xa0\x00", 5), n += 5;
    memcpy(b + n, "\x00\x53\x75\xb0\x00\x00\x01\x2c", 8), n += 8;
    size_t big = n;
    memset(b + n, 'v', 300), n += 300;
    memcpy(b + n, "\x00\x53\x78\xc1\x01\x00", 6), n += 6;
    /* the same with symbolic descriptors */
    rt_msg *m = NULL;
    ck_assert_int_eq(rt_msg_new(b, n, &m), 0);
    delivery d;
    deliver(m, &d);
    ck_assert_uint_eq(d.body_len, 303);
    ck_assert_mem_eq(d.body, "{\"a", 3);
    ck_assert_mem_eq(d.body + 3, b + big, 300);
    ck_assert_uint_eq(d.h.props.flags & AMQP91_P_TYPE, 0);
    ck_assert_uint_eq(d.h.props.flags & AMQP91_P_CONTENT_TYPE, AMQP91_P_CONTENT_TYPE);
    /* views into the message, three of them */
    size_t pos = 0, len, views = 0;
    const uint8_t *p;
    while (amqp__091_body_next(m, &pos, &p, &len)) {
        ck_assert(p >= m->buf.data && p + len <= m->buf.data + m->buf.len);
        views++;
    }
    ck_assert_uint_eq(views, 3);
    delivery_free(&d);
    rt_msg_unref(m);
    uint8_t s[64];
    n = 0;
    memcpy(s + n,
           "\x00\xa3\x10"
           "amqp:data:binary"
           "\xa0\x02hi",
           23),
        n += 23;
    memcpy(s + n, "\x00\x80\x00\x00\x00\x00\x00\x00\x00\x75\xa0\x01!", 13), n += 13;
    ck_assert_int_eq(rt_msg_new(s, n, &m), 0);
    deliver(m, &d);
    ck_assert_uint_eq(d.body_len, 3);
    ck_assert_mem_eq(d.body, "hi!", 3);
    delivery_free(&d);
    rt_msg_unref(m);
}
END_TEST

START_TEST(body_amqp_value)
{
    /* a string: its bytes */
    pn_message_t *pm = pn_message();
    pn_data_put_string(pn_message_body(pm), pn_bytes(strlen(JSON), JSON));
    rt_msg *m = encode10(pm);
    pn_message_free(pm);
    delivery d;
    deliver(m, &d);
    ck_assert_uint_eq(d.body_len, strlen(JSON));
    ck_assert_mem_eq(d.body, JSON, strlen(JSON));
    ck_assert_uint_eq(d.h.props.flags & AMQP91_P_TYPE, 0);
    delivery_free(&d);
    rt_msg_unref(m);
    /* a binary value: its bytes */
    uint8_t b[] = "\x00\x53\x77\xa0\x03"
                  "abc";
    ck_assert_int_eq(rt_msg_new(b, sizeof b - 1, &m), 0);
    deliver(m, &d);
    ck_assert_uint_eq(d.body_len, 3);
    ck_assert_mem_eq(d.body, "abc", 3);
    delivery_free(&d);
    rt_msg_unref(m);
    /* an int: the encoded section, type amqp-1.0 (as RabbitMQ 4) */
    uint8_t iv[] = "\x00\x53\x70\xc0\x02\x01\x41"
                   "\x00\x53\x77\x71\x00\x00\x00\x2a";
    ck_assert_int_eq(rt_msg_new(iv, sizeof iv - 1, &m), 0);
    deliver(m, &d);
    ck_assert(bytes_is(d.h.props.type, "amqp-1.0"));
    ck_assert_uint_eq(d.h.props.delivery_mode, 2);
    ck_assert_uint_eq(d.body_len, 8);
    ck_assert_mem_eq(d.body, iv + 7, 8);
    delivery_free(&d);
    rt_msg_unref(m);
    /* an amqp-sequence, and a footer: the encoded sections from the body on */
    uint8_t sq[] = "\x00\x53\x76\xc0\x03\x01\x50\x07"
                   "\x00\x53\x78\xc1\x01\x00";
    ck_assert_int_eq(rt_msg_new(sq, sizeof sq - 1, &m), 0);
    deliver(m, &d);
    ck_assert(bytes_is(d.h.props.type, "amqp-1.0"));
    ck_assert_uint_eq(d.body_len, sizeof sq - 1);
    ck_assert_mem_eq(d.body, sq, sizeof sq - 1);
    delivery_free(&d);
    rt_msg_unref(m);
    /* a data section then an amqp-value: not one body kind, so encoded */
    uint8_t mix[] = "\x00\x53\x75\xa0\x01x"
                    "\x00\x53\x77\xa1\x01y";
    ck_assert_int_eq(rt_msg_new(mix, sizeof mix - 1, &m), 0);
    deliver(m, &d);
    ck_assert(bytes_is(d.h.props.type, "amqp-1.0"));
    ck_assert_uint_eq(d.body_len, sizeof mix - 1);
    delivery_free(&d);
    rt_msg_unref(m);
}
END_TEST

/* ----------------------------------------------------- bad input */

START_TEST(bad_publish)
{
    amqp91_props p;
    memset(&p, 0, sizeof p);
    rt_msg *m = (rt_msg *)1;
    size_t off = 7, total = 7;
    const char *why = NULL;
    p.flags = AMQP91_P_EXPIRATION;
    const char *bad[] = {"", "abc", "-1", "1.5", " 5", "4294967296", "99999999999", "1e3"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        p.expiration = (amqp91_bytes){(const uint8_t *)bad[i], (uint32_t)strlen(bad[i])};
        why = NULL;
        ck_assert_int_eq(amqp__091_msg_new(&p, 1, NULL, NULL, &m, &off, &total, &why), -AMQP91_PRECONDITION_FAILED);
        ck_assert_ptr_nonnull(why);
        ck_assert_ptr_null(m);
    }
    p.expiration = B("4294967295");
    ck_assert_int_eq(amqp__091_msg_new(&p, 1, NULL, NULL, &m, &off, &total, &why), 0);
    rt_msg_unref(m);
    p.expiration = B("0");
    ck_assert_int_eq(amqp__091_msg_new(&p, 1, NULL, NULL, &m, &off, &total, &why), 0);
    rt_msg_unref(m);
    /* sizes */
    memset(&p, 0, sizeof p);
    ck_assert_int_eq(amqp__091_msg_new(&p, (uint64_t)UINT32_MAX + 1, NULL, NULL, &m, &off, &total, &why),
                     -AMQP91_PRECONDITION_FAILED);
    ck_assert_int_eq(amqp__091_msg_new(&p, UINT64_MAX, NULL, NULL, &m, &off, &total, &why),
                     -AMQP91_PRECONDITION_FAILED);
    ck_assert_int_eq(amqp__091_msg_new(&p, UINT32_MAX - 3, NULL, NULL, &m, &off, &total, &why),
                     -AMQP91_PRECONDITION_FAILED);
    /* a timestamp whose milliseconds do not fit */
    p.flags = AMQP91_P_TIMESTAMP;
    p.timestamp = UINT64_MAX / 1000;
    ck_assert_int_eq(amqp__091_msg_new(&p, 0, NULL, NULL, &m, &off, &total, &why), -AMQP91_PRECONDITION_FAILED);
    /* a bad table */
    p.flags = AMQP91_P_HEADERS;
    p.headers = B("\x01"
                  "aZ");
    ck_assert_int_eq(amqp__091_msg_new(&p, 0, NULL, NULL, &m, &off, &total, &why), -AMQP91_SYNTAX_ERROR);
    p.headers = B("\x01"
                  "aS\x00\x00\x00\x09x");
    ck_assert_int_eq(amqp__091_msg_new(&p, 0, NULL, NULL, &m, &off, &total, &why), -AMQP91_SYNTAX_ERROR);
}
END_TEST

START_TEST(bad_delivery)
{
    uint8_t tbl[512];
    size_t tn = headers_all(tbl);
    amqp91_props p = all_props(tbl, tn);
    rt_msg *good = publish(&p, JSON, strlen(JSON), "orders", "k");
    uint8_t out[4088];
    uint64_t size;
    /* every truncation: refused, or (cut between sections) a shorter message */
    for (size_t n = 0; n < good->buf.len; n++) {
        rt_msg *m = raw(good->buf.data, n);
        int rc = amqp__091_msg_header(m, out, sizeof out, &size);
        ck_assert_msg(rc == -EBADMSG || rc > 0, "cut at %zu: %d", n, rc);
        size_t pos = 0, len, got = 0;
        const uint8_t *b;
        while (amqp__091_body_next(m, &pos, &b, &len))
            got += len;
        if (rc > 0)
            ck_assert_uint_eq(got, size);
        rt_msg_unref(m);
    }
    /* garbage, and bytes flipped one at a time */
    static const struct {
        const char *b;
        size_t n;
    } junk[] = {
#define J(lit) {lit, sizeof(lit) - 1}
        J("hello"),
        J("\x00"),
        J("\x00\x53"),
        J("\x00\x53\x75"),
        J("\x00\x53\x75\xa0\x05x"),
        J("\x00\x53\x99\x40"),                             /* no such section */
        J("\x00\x53\x75\x71\x00\x00\x00\x01"),             /* a data section holding an int */
        J("\x00\x53\x78\xc1\x01\x00\x00\x53\x75\xa0\x00"), /* a section after the footer */
        J("\x00\x53\x75\xa0\x00\x00\x53\x73\x45"),         /* properties after the body */
        J("\x00\x53\x72\xc1\x05\x02\xa3\x01x"),            /* a map whose size is not its contents */
    };
    for (size_t i = 0; i < sizeof junk / sizeof junk[0]; i++) {
        rt_msg *m = raw(junk[i].b, junk[i].n);
        ck_assert_msg(amqp__091_msg_header(m, out, sizeof out, &size) == -EBADMSG, "junk %zu accepted", i);
        size_t pos = 0, len;
        const uint8_t *b;
        ck_assert(!amqp__091_body_next(m, &pos, &b, &len));
        rt_msg_unref(m);
    }
    for (size_t i = 0; i < good->buf.len; i++) {
        for (int bit = 0; bit < 8; bit += 3) {
            rt_msg *m = raw(good->buf.data, good->buf.len);
            m->buf.data[i] ^= (uint8_t)(1u << bit);
            int rc = amqp__091_msg_header(m, out, sizeof out, &size);
            ck_assert(rc == -EBADMSG || rc > 0);
            if (rc > 0) {
                amqp91_header h;
                const char *why;
                ck_assert_int_eq(amqp91_header_decode(out, (size_t)rc, &h, &why), 0);
            }
            size_t pos = 0, len;
            const uint8_t *b;
            while (amqp__091_body_next(m, &pos, &b, &len))
                ck_assert(b >= m->buf.data && b + len <= m->buf.data + m->buf.len);
            rt_msg_unref(m);
        }
    }
    /* too small an output: ENOSPC, at every size short of the header */
    int need = amqp__091_msg_header(good, out, sizeof out, &size);
    ck_assert_int_gt(need, 0);
    for (int cap = 0; cap < need; cap++)
        ck_assert_int_eq(amqp__091_msg_header(good, out, (size_t)cap, &size), -ENOSPC);
    ck_assert_int_eq(amqp__091_msg_header(good, out, (size_t)need, &size), need);
    rt_msg_unref(good);
}
END_TEST

/* Application properties nested deeper than a 0-9-1 table may be are left
 * out, so what a 0-9-1 client gets always parses. */
START_TEST(deep_nesting)
{
    pn_message_t *pm = pn_message();
    pn_data_t *ap = pn_message_properties(pm);
    pn_data_put_map(ap);
    pn_data_enter(ap);
    pn_data_put_string(ap, pn_bytes(4, "deep"));
    for (int i = 0; i < 40; i++) {
        pn_data_put_list(ap);
        pn_data_enter(ap);
    }
    pn_data_put_int(ap, 1);
    for (int i = 0; i < 40; i++)
        pn_data_exit(ap);
    pn_data_put_string(ap, pn_bytes(2, "ok"));
    pn_data_put_int(ap, 2);
    pn_data_exit(ap);
    rt_msg *m = encode10(pm);
    pn_message_free(pm);
    delivery d;
    deliver(m, &d);
    ck_assert_ptr_null(hdr(&d, "deep"));
    ck_assert_int_eq(hdr(&d, "ok")->v.I, 2);
    delivery_free(&d);
    rt_msg_unref(m);
}
END_TEST

/* A table's field by name (NULL: absent). */
static const amqp91_value *field(const amqp91_table *t, const char *name)
{
    for (uint32_t i = 0; t && i < t->n; i++)
        if (bytes_is(t->f[i].name, name))
            return &t->f[i].value;
    return NULL;
}

/* A 0-9-1 publish with expiration "60000" to exchange "orders", rejected
 * from "work", then expired from "retry" (routing/deaths.c): its x-opt-deaths
 * reach a 0-9-1 consumer as the x-death header RabbitMQ 4 gives, an array
 * of tables newest first, with the x-first/last-death-* headers. */
START_TEST(deliver_deaths_as_x_death)
{
    amqp91_props p;
    memset(&p, 0, sizeof p);
    p.flags = AMQP91_P_EXPIRATION | AMQP91_P_DELIVERY_MODE;
    p.expiration = B("60000");
    p.delivery_mode = 2;
    rt_msg *m = publish(&p, "job", 3, "orders", "jobs.new");
    rt_death d1 = {.queue = "work",
                   .reason = RT_DEATH_REJECTED,
                   .rkey = "jobs.new",
                   .exchange = "dlx",
                   .key = "retry",
                   .now_ms = 1700000000999};
    rt_msg *c1 = NULL, *c2 = NULL;
    ck_assert_int_eq(rt_msg_dead(m, &d1, &c1), 0);
    rt_death d2 = {.queue = "retry",
                   .reason = RT_DEATH_EXPIRED,
                   .rkey = "retry",
                   .exchange = "",
                   .key = "work",
                   .now_ms = 1700000005000};
    ck_assert_int_eq(rt_msg_dead(c1, &d2, &c2), 0);

    delivery d;
    deliver(c2, &d);
    ck_assert(!(d.h.props.flags & AMQP91_P_EXPIRATION)); /* taken off by the first death */
    ck_assert_uint_eq(d.h.props.delivery_mode, 2);
    const amqp91_value *x = hdr(&d, "x-death");
    ck_assert_ptr_nonnull(x);
    ck_assert_int_eq(x->type, 'A');
    ck_assert_uint_eq(x->v.A->n, 2);
    const amqp91_value *e0 = &x->v.A->v[0], *e1 = &x->v.A->v[1];
    ck_assert_int_eq(e0->type, 'F');
    ck_assert_int_eq(e1->type, 'F');
    const amqp91_table *t = e0->v.F;
    /* RabbitMQ's fields and order: count, reason, queue, time, exchange, routing-keys */
    ck_assert_uint_eq(t->n, 6);
    ck_assert(bytes_is(t->f[0].name, "count"));
    ck_assert_int_eq(t->f[0].value.type, 'l');
    ck_assert_int_eq(t->f[0].value.v.l, 1);
    ck_assert(bytes_is(t->f[1].name, "reason"));
    ck_assert_int_eq(t->f[1].value.type, 'S');
    ck_assert(bytes_is(t->f[1].value.v.str, "expired"));
    ck_assert(bytes_is(field(t, "queue")->v.str, "retry"));
    ck_assert_int_eq(field(t, "time")->type, 'T');
    ck_assert_uint_eq(field(t, "time")->v.T, 1700000005);
    ck_assert(bytes_is(field(t, "exchange")->v.str, "dlx"));
    const amqp91_value *rk = field(t, "routing-keys");
    ck_assert_int_eq(rk->type, 'A');
    ck_assert_uint_eq(rk->v.A->n, 1);
    ck_assert_int_eq(rk->v.A->v[0].type, 'S');
    ck_assert(bytes_is(rk->v.A->v[0].v.str, "retry"));
    ck_assert_ptr_null(field(t, "original-expiration"));
    t = e1->v.F;
    ck_assert_uint_eq(t->n, 7);
    ck_assert(bytes_is(t->f[0].name, "original-expiration"));
    ck_assert_int_eq(t->f[0].value.type, 'S');
    ck_assert(bytes_is(t->f[0].value.v.str, "60000"));
    ck_assert(bytes_is(field(t, "reason")->v.str, "rejected"));
    ck_assert(bytes_is(field(t, "queue")->v.str, "work"));
    ck_assert(bytes_is(field(t, "exchange")->v.str, "orders"));
    ck_assert_uint_eq(field(t, "time")->v.T, 1700000000);
    ck_assert(bytes_is(field(t, "routing-keys")->v.A->v[0].v.str, "jobs.new"));
    const char *strs[][2] = {{"x-first-death-queue", "work"},      {"x-first-death-reason", "rejected"},
                             {"x-first-death-exchange", "orders"}, {"x-last-death-queue", "retry"},
                             {"x-last-death-reason", "expired"},   {"x-last-death-exchange", "dlx"}};
    for (size_t i = 0; i < 6; i++) {
        const amqp91_value *v = hdr(&d, strs[i][0]);
        ck_assert_msg(v && v->type == 'S' && bytes_is(v->v.str, strs[i][1]), "%s", strs[i][0]);
    }
    /* the broker's own annotations are not headers; the exchange it came
     * through last is the dead-letter one */
    ck_assert_ptr_null(hdr(&d, "x-opt-deaths"));
    ck_assert_ptr_null(hdr(&d, "x-exchange"));
    amqp91_bytes ex;
    ck_assert(amqp__091_msg_exchange(c2, &ex));
    ck_assert_uint_eq(ex.len, 0);
    ck_assert_mem_eq(d.body, "job", 3);
    delivery_free(&d);
    rt_msg_unref(c2);
    rt_msg_unref(c1);
    rt_msg_unref(m);
}
END_TEST

/* An x-opt-deaths that is not RabbitMQ's array of maps gives no x-death
 * (nor does an entry without count); the rest of the message is delivered. */
START_TEST(deliver_bad_deaths_leave_no_x_death)
{
    pn_message_t *pm = pn_message();
    pn_data_t *ma = pn_message_annotations(pm);
    pn_data_put_map(ma);
    pn_data_enter(ma);
    pn_data_put_symbol(ma, pn_bytes(12, "x-opt-deaths"));
    pn_data_put_string(ma, pn_bytes(3, "bad"));
    pn_data_put_symbol(ma, pn_bytes(5, "x-app"));
    pn_data_put_string(ma, pn_bytes(4, "shop"));
    pn_data_exit(ma);
    pn_message_set_inferred(pm, true);
    pn_data_put_binary(pn_message_body(pm), pn_bytes(2, "hi"));
    rt_msg *m = encode10(pm);
    delivery d;
    deliver(m, &d);
    ck_assert_ptr_null(hdr(&d, "x-death"));
    ck_assert_ptr_nonnull(hdr(&d, "x-app"));
    delivery_free(&d);
    rt_msg_unref(m);

    /* an array of one map without count: an empty x-death array */
    pn_data_clear(ma);
    pn_data_put_map(ma);
    pn_data_enter(ma);
    pn_data_put_symbol(ma, pn_bytes(12, "x-opt-deaths"));
    pn_data_put_array(ma, false, PN_MAP);
    pn_data_enter(ma);
    pn_data_put_map(ma);
    pn_data_enter(ma);
    pn_data_put_symbol(ma, pn_bytes(5, "queue"));
    pn_data_put_string(ma, pn_bytes(1, "q"));
    pn_data_put_symbol(ma, pn_bytes(6, "reason"));
    pn_data_put_symbol(ma, pn_bytes(7, "expired"));
    pn_data_exit(ma);
    pn_data_exit(ma);
    pn_data_exit(ma);
    m = encode10(pm);
    deliver(m, &d);
    const amqp91_value *x = hdr(&d, "x-death");
    ck_assert_ptr_nonnull(x);
    ck_assert_int_eq(x->type, 'A');
    ck_assert_uint_eq(x->v.A->n, 0);
    delivery_free(&d);
    rt_msg_unref(m);
    pn_message_free(pm);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("amqp091_map");
    TCase *t = tcase_create("map");
    tcase_add_test(t, publish_every_property);
    tcase_add_test(t, publish_minimal);
    tcase_add_test(t, publish_headers_nothing_maps);
    tcase_add_test(t, publish_ids);
    tcase_add_test(t, publish_long_body_and_reply_to);
    tcase_add_test(t, deliver_every_property);
    tcase_add_test(t, deliver_ids_to_headers);
    tcase_add_test(t, roundtrip_091);
    tcase_add_test(t, json_through_proton);
    tcase_add_test(t, body_many_data_sections);
    tcase_add_test(t, body_amqp_value);
    tcase_add_test(t, bad_publish);
    tcase_add_test(t, bad_delivery);
    tcase_add_test(t, deep_nesting);
    tcase_add_test(t, deliver_deaths_as_x_death);
    tcase_add_test(t, deliver_bad_deaths_leave_no_x_death);
    suite_add_tcase(s, t);
    return s;
}

int main(void) { return run_suite(suite()); }
