/* test_rt_msg.c — rt_msg, a message kept as the AMQP 1.0 bytes it arrived
 * in (routing/msg.c): decoding of the header and properties, the exact
 * bytes kept, the wire form of a redelivery, application properties,
 * routing keys and reference counting.
 *
 * Messages are encoded with proton's own pn_message_t API, and redelivered
 * wire forms decoded with it again, so the tests check Plexus against an
 * independent codec rather than against itself. */
#include <check.h>
#include <errno.h>
#include <proton/codec.h>
#include <proton/message.h>
#include <stdlib.h>
#include <string.h>

#include "check_main.h"
#include "routing/rt.h"

/* --------------------------------------------------------------- helpers */

/* pn_message_encode into a malloc'd buffer of the right size. */
static char *encode(pn_message_t *pm, size_t *len)
{
    for (size_t cap = 256;; cap *= 2) {
        char *b = malloc(cap);
        ck_assert_ptr_nonnull(b);
        size_t n = cap;
        int rc = pn_message_encode(pm, b, &n);
        if (rc == 0) {
            *len = n;
            return b;
        }
        free(b);
        ck_assert_int_eq(rc, PN_OVERFLOW);
    }
}

/* Bytes of the first encoded value (a section) at b. */
static size_t section_len(const char *b, size_t len)
{
    pn_data_t *d = pn_data(8);
    ssize_t n = pn_data_decode(d, b, len);
    pn_data_free(d);
    ck_assert_int_gt(n, 0);
    return (size_t)n;
}

static void put_str(pn_data_t *d, const char *s) { pn_data_put_string(d, pn_bytes(strlen(s), s)); }

/* A message with every field routing reads, application properties
 * {format: "pdf", n: 3} and a data-section body "hello". */
static pn_message_t *full_message(void)
{
    pn_message_t *pm = pn_message();
    ck_assert_ptr_nonnull(pm);
    pn_message_set_durable(pm, true);
    pn_message_set_priority(pm, 7);
    pn_message_set_ttl(pm, 30000);
    pn_message_set_first_acquirer(pm, true);
    pn_message_set_delivery_count(pm, 2);
    pn_message_set_address(pm, "/queues/orders");
    pn_message_set_subject(pm, "order.created");
    pn_message_set_reply_to(pm, "/queues/replies");
    pn_message_set_expiry_time(pm, 1700000000123);
    pn_data_t *ap = pn_message_properties(pm);
    pn_data_put_map(ap);
    pn_data_enter(ap);
    put_str(ap, "format");
    put_str(ap, "pdf");
    put_str(ap, "n");
    pn_data_put_int(ap, 3);
    pn_data_exit(ap);
    pn_message_set_inferred(pm, true); /* a binary body goes in a data section */
    pn_data_put_binary(pn_message_body(pm), pn_bytes(5, "hello"));
    return pm;
}

static rt_msg *new_msg(const char *bytes, size_t len)
{
    rt_msg *m = NULL;
    int rc = rt_msg_new(bytes, len, &m);
    ck_assert_msg(rc == 0, "rt_msg_new: %d", rc);
    ck_assert_ptr_nonnull(m);
    return m;
}

/* proton's view of the body of pm: binary bytes. */
static pn_bytes_t body_bytes(pn_message_t *pm)
{
    pn_data_t *b = pn_message_body(pm);
    pn_data_rewind(b);
    ck_assert(pn_data_next(b));
    ck_assert_int_eq(pn_data_type(b), PN_BINARY);
    return pn_data_get_binary(b);
}

/* The wire form of m for delivery count dc, decoded by proton. */
static pn_message_t *wire_decode(const rt_msg *m, uint32_t dc, size_t *hdr_len_out)
{
    char hdr[RT_HDR_MAX];
    size_t hdr_len = 99, rest_off = 99;
    rt_msg_wire(m, dc, hdr, &hdr_len, &rest_off);
    ck_assert_uint_le(hdr_len, RT_HDR_MAX);
    ck_assert_uint_le(rest_off, m->buf.len);
    size_t total = hdr_len + m->buf.len - rest_off;
    char *w = malloc(total);
    ck_assert_ptr_nonnull(w);
    memcpy(w, hdr, hdr_len);
    memcpy(w + hdr_len, m->buf.data + rest_off, m->buf.len - rest_off);
    pn_message_t *pm = pn_message();
    int rc = pn_message_decode(pm, w, total);
    ck_assert_msg(rc == 0, "proton cannot decode the wire form: %d", rc);
    free(w);
    if (hdr_len_out)
        *hdr_len_out = hdr_len;
    return pm;
}

/* ------------------------------------------------------------- decoding */

START_TEST(test_msg_decodes_every_header_field)
{
    pn_message_t *pm = full_message();
    size_t len;
    char *b = encode(pm, &len);
    rt_msg *m = new_msg(b, len);
    ck_assert(m->durable);
    ck_assert_uint_eq(m->priority, 7);
    ck_assert_uint_eq(m->ttl, 30000);
    ck_assert(m->first_acquirer);
    ck_assert_uint_eq(m->delivery_count, 2);
    ck_assert_uint_eq(m->hdr_len, section_len(b, len));
    rt_msg_unref(m);
    free(b);
    pn_message_free(pm);
}
END_TEST

START_TEST(test_msg_decodes_to_subject_reply_to_and_expiry)
{
    pn_message_t *pm = full_message();
    size_t len;
    char *b = encode(pm, &len);
    rt_msg *m = new_msg(b, len);
    ck_assert_str_eq(m->to, "/queues/orders");
    ck_assert_str_eq(m->subject, "order.created");
    ck_assert_str_eq(m->reply_to, "/queues/replies");
    ck_assert_int_eq(m->absolute_expiry, 1700000000123);
    ck_assert_ptr_null(m->rkey);
    /* The strings live in the message, not in the caller's buffer. */
    memset(b, 0, len);
    free(b);
    ck_assert_str_eq(m->subject, "order.created");
    rt_msg_unref(m);
    pn_message_free(pm);
}
END_TEST

START_TEST(test_msg_keeps_the_exact_encoded_bytes)
{
    pn_message_t *pm = full_message();
    size_t len;
    char *b = encode(pm, &len);
    rt_msg *m = new_msg(b, len);
    ck_assert_uint_eq(m->buf.len, len);
    ck_assert_ptr_eq(rt_msg_bytes(m), m->buf.data);
    ck_assert_ptr_ne(m->buf.data, (unsigned char *)b); /* a copy */
    ck_assert_int_eq(memcmp(m->buf.data, b, len), 0);
    rt_msg_unref(m);
    free(b);
    pn_message_free(pm);
}
END_TEST

START_TEST(test_msg_absent_fields_are_zero_and_null)
{
    pn_message_t *pm = pn_message();
    pn_data_put_string(pn_message_body(pm), pn_bytes(2, "hi"));
    size_t len;
    char *b = encode(pm, &len);
    rt_msg *m = new_msg(b, len);
    ck_assert(!m->durable);
    ck_assert_uint_eq(m->ttl, 0);
    ck_assert_uint_eq(m->delivery_count, 0);
    ck_assert_int_eq(m->absolute_expiry, 0);
    ck_assert_ptr_null(m->to);
    ck_assert_ptr_null(m->subject);
    ck_assert_ptr_null(m->reply_to);
    ck_assert_uint_eq(m->ap_len, 0);
    ck_assert_ptr_null(rt_msg_app_props(m));
    ck_assert_uint_eq(m->buf.len, len);
    rt_msg_unref(m);
    free(b);
    pn_message_free(pm);
}
END_TEST

START_TEST(test_msg_without_header_section_is_accepted)
{
    pn_message_t *pm = full_message();
    size_t len;
    char *b = encode(pm, &len);
    /* proton always writes a header; drop it to get a header-less message. */
    size_t h = section_len(b, len);
    ck_assert_uint_eq((unsigned char)b[2], 0x70);
    rt_msg *m = new_msg(b + h, len - h);
    ck_assert_uint_eq(m->hdr_len, 0);
    ck_assert(!m->durable);
    ck_assert_uint_eq(m->priority, 0);
    ck_assert_uint_eq(m->ttl, 0);
    ck_assert_uint_eq(m->delivery_count, 0);
    ck_assert(!m->first_acquirer);
    ck_assert_str_eq(m->subject, "order.created"); /* properties still read */
    ck_assert_str_eq(m->to, "/queues/orders");
    ck_assert_uint_eq(m->buf.len, len - h);
    ck_assert_int_eq(memcmp(m->buf.data, b + h, len - h), 0);
    ck_assert_uint_gt(m->ap_len, 0);
    rt_msg_unref(m);
    free(b);
    pn_message_free(pm);
}
END_TEST

START_TEST(test_msg_amqp_value_body_with_annotations)
{
    pn_message_t *pm = pn_message();
    pn_message_set_subject(pm, "s.k");
    /* Delivery and message annotations sit between header and properties. */
    pn_data_t *da = pn_message_instructions(pm);
    pn_data_put_map(da);
    pn_data_enter(da);
    pn_data_put_symbol(da, pn_bytes(5, "x-dlv"));
    pn_data_put_int(da, 1);
    pn_data_exit(da);
    pn_data_t *ma = pn_message_annotations(pm);
    pn_data_put_map(ma);
    pn_data_enter(ma);
    pn_data_put_symbol(ma, pn_bytes(6, "x-opt1"));
    put_str(ma, "v");
    pn_data_exit(ma);
    pn_data_t *ap = pn_message_properties(pm);
    pn_data_put_map(ap);
    pn_data_enter(ap);
    put_str(ap, "k");
    put_str(ap, "v");
    pn_data_exit(ap);
    put_str(pn_message_body(pm), "a string body"); /* amqp-value */
    size_t len;
    char *b = encode(pm, &len);
    rt_msg *m = new_msg(b, len);
    ck_assert_str_eq(m->subject, "s.k");
    ck_assert_uint_gt(m->ap_len, 0);
    ck_assert_uint_le(m->ap_off + m->ap_len, len);
    ck_assert_uint_eq(m->ap_len, section_len(b + m->ap_off, len - m->ap_off));
    /* The section at ap_off is the application properties (descriptor 0x74). */
    ck_assert_uint_eq(m->buf.data[m->ap_off + 2], 0x74);
    ck_assert_uint_eq(m->buf.len, len);
    rt_msg_unref(m);
    free(b);
    pn_message_free(pm);
}
END_TEST

START_TEST(test_msg_one_mib_body_is_kept_whole)
{
    pn_message_t *pm = full_message();
    size_t blen = 1u << 20;
    char *body = malloc(blen);
    for (size_t i = 0; i < blen; i++)
        body[i] = (char)(i * 31 + 7);
    pn_data_t *bd = pn_message_body(pm);
    pn_data_clear(bd);
    pn_data_put_binary(bd, pn_bytes(blen, body));
    size_t len;
    char *b = encode(pm, &len);
    ck_assert_uint_gt(len, blen);
    rt_msg *m = new_msg(b, len);
    ck_assert_uint_eq(m->buf.len, len);
    ck_assert_int_eq(memcmp(m->buf.data, b, len), 0);
    ck_assert_str_eq(m->subject, "order.created");
    ck_assert_uint_eq(m->delivery_count, 2);
    /* And proton reads the body back from the kept bytes. */
    pn_message_t *back = pn_message();
    ck_assert_int_eq(pn_message_decode(back, (const char *)m->buf.data, m->buf.len), 0);
    pn_bytes_t got = body_bytes(back);
    ck_assert_uint_eq(got.size, blen);
    ck_assert_int_eq(memcmp(got.start, body, blen), 0);
    pn_message_free(back);
    rt_msg_unref(m);
    free(b);
    free(body);
    pn_message_free(pm);
}
END_TEST

START_TEST(test_msg_body_bytes_are_never_decoded)
{
    /* Routing decodes only the sections before the body: bytes after a
     * data section's start are not looked at. */
    pn_message_t *pm = pn_message();
    pn_message_set_subject(pm, "k");
    size_t len;
    char *b = encode(pm, &len); /* header, properties, null amqp-value */
    char *w = malloc(len + 8);
    memcpy(w, b, len);
    size_t h = section_len(b, len);
    size_t p = section_len(b + h, len - h);
    memcpy(w + h + p, "\x00\x53\x75\xff\xff\xff\xff\xff", 8); /* data section, then junk */
    rt_msg *m = new_msg(w, h + p + 8);
    ck_assert_str_eq(m->subject, "k");
    ck_assert_uint_eq(m->buf.len, h + p + 8);
    rt_msg_unref(m);
    free(w);
    free(b);
    pn_message_free(pm);
}
END_TEST

START_TEST(test_msg_garbage_is_ebadmsg)
{
    pn_message_t *pm = full_message();
    size_t len;
    char *good = encode(pm, &len);
    size_t h = section_len(good, len);
    struct {
        const char *what;
        const char *bytes;
        size_t len;
    } bad[] = {
        {"text", "hello world", 11},
        {"0xff bytes", "\xff\xff\xff\xff", 4},
        {"a bare string, not a section",
         "\xa1\x03"
         "abc",
         5},
        {"a described value with a string descriptor", "\x00\xa1\x01x\x45", 5},
        {"a header cut short", good, 4},
        {"properties cut short", good, h + 5},
        {"a header, then junk", NULL, 0},
    };
    char junk[64];
    memcpy(junk, good, h);
    memset(junk + h, 0xee, 8);
    bad[6].bytes = junk;
    bad[6].len = h + 8;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        rt_msg *m = (rt_msg *)&m; /* must stay untouched */
        int rc = rt_msg_new(bad[i].bytes, bad[i].len, &m);
        ck_assert_msg(rc == -EBADMSG, "%s: %d, not -EBADMSG", bad[i].what, rc);
        ck_assert_ptr_eq(m, (rt_msg *)&m);
    }
    free(good);
    pn_message_free(pm);
}
END_TEST

/* Found by the fuzzer: a section whose ulong descriptor is 0x70 plus high
 * bits (0x0000020000000070 below) was cast down to 0x70 and read as the
 * header (durable, priority, ttl from whatever list followed). A descriptor
 * no section has starts the body, as every other unknown one does. */
START_TEST(test_msg_large_ulong_descriptor_is_no_header)
{
    /* described, ulong 0x0000020000000070, list8 [true, ubyte 9] */
    static const char bytes[] = "\x00\x80\x00\x00\x02\x00\x00\x00\x00\x70"
                                "\xc0\x03\x02\x41\x50\x09";
    rt_msg *m = NULL;
    ck_assert_int_eq(rt_msg_new(bytes, sizeof bytes - 1, &m), 0);
    ck_assert_uint_eq(m->hdr_len, 0);
    ck_assert(!m->durable);
    ck_assert(!m->has_priority);
    rt_msg_unref(m);
    /* The same with the header's own descriptor is a header (the test can fail). */
    static const char header[] = "\x00\x80\x00\x00\x00\x00\x00\x00\x00\x70"
                                 "\xc0\x04\x02\x41\x50\x09";
    ck_assert_int_eq(rt_msg_new(header, sizeof header - 1, &m), 0);
    ck_assert_uint_eq(m->hdr_len, sizeof header - 1);
    ck_assert(m->durable);
    ck_assert(m->has_priority && m->priority == 9);
    rt_msg_unref(m);
}
END_TEST

START_TEST(test_msg_built_as_bytes_arrive_equals_msg_new)
{
    pn_message_t *pm = full_message();
    size_t len;
    char *b = encode(pm, &len);
    rt_msg *m = rt_msg_alloc(16);
    ck_assert_ptr_nonnull(m);
    size_t have = 0;
    for (size_t cap = 16; have < len; cap *= 2) { /* as a socket reader would */
        ck_assert_int_eq(rt_msg_grow(&m, cap), 0);
        size_t n = cap - have < len - have ? cap - have : len - have;
        memcpy(rt_msg_bytes(m) + have, b + have, n);
        have += n;
    }
    ck_assert_int_eq(rt_msg_finish(&m, len), 0);
    ck_assert_uint_eq(m->buf.len, len);
    ck_assert_int_eq(memcmp(m->buf.data, b, len), 0);
    ck_assert_str_eq(m->reply_to, "/queues/replies");
    ck_assert_uint_eq(m->priority, 7);
    ck_assert_uint_eq(atomic_load(&m->buf.refs), 1);
    rt_msg_unref(m);
    free(b);
    pn_message_free(pm);
}
END_TEST

START_TEST(test_msg_finish_error_leaves_the_message_to_the_caller)
{
    rt_msg *m = rt_msg_alloc(11);
    memcpy(rt_msg_bytes(m), "hello world", 11);
    ck_assert_int_eq(rt_msg_finish(&m, 11), -EBADMSG);
    ck_assert_ptr_nonnull(m);
    rt_msg_unref(m); /* frees it: ASan reports a leak or double free otherwise */
}
END_TEST

START_TEST(test_msg_from_body_is_a_data_section_message)
{
    rt_msg *m = NULL;
    ck_assert_int_eq(rt_msg_from_body("payload", 7, "dead.letter", true, &m), 0);
    ck_assert(m->durable);
    ck_assert_str_eq(m->subject, "dead.letter");
    pn_message_t *pm = pn_message();
    ck_assert_int_eq(pn_message_decode(pm, (const char *)m->buf.data, m->buf.len), 0);
    pn_bytes_t got = body_bytes(pm);
    ck_assert_uint_eq(got.size, 7);
    ck_assert_int_eq(memcmp(got.start, "payload", 7), 0);
    pn_message_free(pm);
    rt_msg_unref(m);
}
END_TEST

/* ------------------------------------------------------------- the wire */

START_TEST(test_msg_wire_same_count_sends_original_bytes)
{
    pn_message_t *pm = full_message();
    size_t len;
    char *b = encode(pm, &len);
    rt_msg *m = new_msg(b, len);
    char hdr[RT_HDR_MAX];
    size_t hdr_len = 99, rest_off = 99;
    rt_msg_wire(m, 2, hdr, &hdr_len, &rest_off);
    ck_assert_uint_eq(hdr_len, 0);
    ck_assert_uint_eq(rest_off, 0);
    rt_msg_unref(m);
    free(b);
    pn_message_free(pm);
}
END_TEST

START_TEST(test_msg_wire_higher_count_gets_a_new_header_proton_decodes)
{
    pn_message_t *pm = full_message();
    size_t len;
    char *b = encode(pm, &len);
    rt_msg *m = new_msg(b, len);
    size_t hdr_len;
    pn_message_t *w = wire_decode(m, 5, &hdr_len);
    ck_assert_uint_gt(hdr_len, 0);
    ck_assert_uint_eq(pn_message_get_delivery_count(w), 5);
    ck_assert(pn_message_is_durable(w));
    ck_assert_uint_eq(pn_message_get_priority(w), 7);
    ck_assert_uint_eq(pn_message_get_ttl(w), 30000);
    ck_assert(!pn_message_is_first_acquirer(w)); /* delivered before */
    ck_assert_str_eq(pn_message_get_subject(w), "order.created");
    ck_assert_str_eq(pn_message_get_address(w), "/queues/orders");
    ck_assert_int_eq(pn_message_get_expiry_time(w), 1700000000123);
    pn_bytes_t got = body_bytes(w);
    ck_assert_uint_eq(got.size, 5);
    ck_assert_int_eq(memcmp(got.start, "hello", 5), 0);
    /* The message itself is unchanged: the next delivery can start over. */
    ck_assert_uint_eq(m->delivery_count, 2);
    ck_assert_int_eq(memcmp(m->buf.data, b, len), 0);
    pn_message_free(w);
    rt_msg_unref(m);
    free(b);
    pn_message_free(pm);
}
END_TEST

START_TEST(test_msg_wire_of_headerless_message_prepends_a_header)
{
    pn_message_t *pm = full_message();
    size_t len;
    char *b = encode(pm, &len);
    size_t h = section_len(b, len);
    rt_msg *m = new_msg(b + h, len - h);
    char hdr[RT_HDR_MAX];
    size_t hdr_len, rest_off = 99;
    rt_msg_wire(m, 1, hdr, &hdr_len, &rest_off);
    ck_assert_uint_gt(hdr_len, 0);
    ck_assert_uint_eq(rest_off, 0); /* nothing of the original to skip */
    pn_message_t *w = wire_decode(m, 1, NULL);
    ck_assert_uint_eq(pn_message_get_delivery_count(w), 1);
    ck_assert(!pn_message_is_durable(w));
    ck_assert_uint_eq(pn_message_get_priority(w), 4); /* the AMQP default */
    ck_assert_str_eq(pn_message_get_subject(w), "order.created");
    pn_bytes_t got = body_bytes(w);
    ck_assert_int_eq(memcmp(got.start, "hello", 5), 0);
    pn_message_free(w);
    rt_msg_unref(m);
    free(b);
    pn_message_free(pm);
}
END_TEST

START_TEST(test_msg_wire_keeps_priority_zero)
{
    pn_message_t *pm = full_message();
    pn_message_set_priority(pm, 0); /* the lowest priority, written explicitly */
    size_t len;
    char *b = encode(pm, &len);
    rt_msg *m = new_msg(b, len);
    ck_assert_uint_eq(m->priority, 0);
    pn_message_t *w = wire_decode(m, 3, NULL);
    ck_assert_msg(pn_message_get_priority(w) == 0, "priority 0 redelivered as %u", pn_message_get_priority(w));
    pn_message_free(w);
    rt_msg_unref(m);
    free(b);
    pn_message_free(pm);
}
END_TEST

START_TEST(test_msg_wire_without_ttl_has_no_ttl)
{
    pn_message_t *pm = full_message();
    pn_message_set_ttl(pm, 0);
    pn_message_set_durable(pm, false);
    size_t len;
    char *b = encode(pm, &len);
    rt_msg *m = new_msg(b, len);
    pn_message_t *w = wire_decode(m, 9, NULL);
    ck_assert_uint_eq(pn_message_get_ttl(w), 0);
    ck_assert(!pn_message_is_durable(w));
    ck_assert_uint_eq(pn_message_get_delivery_count(w), 9);
    pn_message_free(w);
    rt_msg_unref(m);
    free(b);
    pn_message_free(pm);
}
END_TEST

/* A header ttl of 0 (0-9-1 expiration "0") is a TTL, not "none": read as
 * such, and a redelivery's header keeps it (proton would leave 0 out, so the
 * header is written by hand and the wire form read field by field). */
START_TEST(test_msg_ttl_zero_is_kept)
{
    static const unsigned char b[] = {0x00, 0x53, 0x70, 0xc0, 0x04, 0x03, 0x41, 0x40,
                                      0x43, 0x00, 0x53, 0x75, 0xa0, 0x02, 'h',  'i'};
    rt_msg *m = new_msg((const char *)b, sizeof b);
    ck_assert(m->has_ttl);
    ck_assert_uint_eq(m->ttl, 0);
    char hdr[RT_HDR_MAX];
    size_t hl, rest;
    rt_msg_wire(m, 3, hdr, &hl, &rest);
    ck_assert_uint_gt(hl, 0);
    ck_assert_uint_eq(rest, 9);
    pn_data_t *d = pn_data(8);
    ck_assert_int_eq(pn_data_decode(d, hdr, hl), (ssize_t)hl);
    pn_data_rewind(d);
    pn_data_next(d);
    pn_data_enter(d);
    pn_data_next(d); /* descriptor */
    pn_data_next(d);
    pn_data_enter(d);
    pn_data_next(d); /* durable */
    pn_data_next(d); /* priority */
    ck_assert(pn_data_next(d));
    ck_assert_int_eq(pn_data_type(d), PN_UINT);
    ck_assert_uint_eq(pn_data_get_uint(d), 0);
    pn_data_free(d);
    rt_msg_unref(m);
    /* and a header without one has none */
    static const unsigned char n[] = {0x00, 0x53, 0x70, 0xc0, 0x02, 0x01, 0x41, 0x00, 0x53, 0x75, 0xa0, 0x00};
    m = new_msg((const char *)n, sizeof n);
    ck_assert(!m->has_ttl);
    rt_msg_unref(m);
}
END_TEST

/* --------------------------------------------------- application properties */

START_TEST(test_msg_app_props_are_the_map_positioned_on_it)
{
    pn_message_t *pm = full_message();
    size_t len;
    char *b = encode(pm, &len);
    rt_msg *m = new_msg(b, len);
    pn_data_t *d = rt_msg_app_props(m);
    ck_assert_ptr_nonnull(d);
    ck_assert_int_eq(pn_data_type(d), PN_MAP);
    ck_assert_uint_eq(pn_data_get_map(d), 4); /* two keys, two values */
    pn_data_enter(d);
    ck_assert(pn_data_next(d));
    pn_bytes_t k = pn_data_get_string(d);
    ck_assert_int_eq(k.size, 6);
    ck_assert_int_eq(memcmp(k.start, "format", 6), 0);
    ck_assert(pn_data_next(d));
    pn_bytes_t v = pn_data_get_string(d);
    ck_assert_int_eq(memcmp(v.start, "pdf", 3), 0);
    ck_assert(pn_data_next(d));
    ck_assert(pn_data_next(d));
    ck_assert_int_eq(pn_data_type(d), PN_INT);
    ck_assert_int_eq(pn_data_get_int(d), 3);
    pn_data_free(d);
    rt_msg_unref(m);
    free(b);
    pn_message_free(pm);
}
END_TEST

START_TEST(test_msg_app_props_feed_a_headers_binding)
{
    pn_message_t *pm = full_message();
    size_t len;
    char *b = encode(pm, &len);
    rt_msg *m = new_msg(b, len);

    pn_data_t *args = pn_data(8);
    pn_data_put_map(args);
    pn_data_enter(args);
    put_str(args, "format");
    put_str(args, "pdf");
    pn_data_exit(args);
    rt_hdrmatch *h = NULL;
    char err[64];
    ck_assert_int_eq(rt_hdrmatch_new(args, &h, err, sizeof err), 0);
    pn_data_free(args);

    pn_data_t *d = rt_msg_app_props(m);
    ck_assert(rt_hdrmatch_test(h, d));
    pn_data_free(d);
    rt_hdrmatch_free(h);
    rt_msg_unref(m);
    free(b);
    pn_message_free(pm);
}
END_TEST

/* ------------------------------------------------------------ routing key */

START_TEST(test_msg_rkey_is_a_copy_of_the_callers_key)
{
    pn_message_t *pm = full_message();
    size_t len;
    char *b = encode(pm, &len);
    rt_msg *m = new_msg(b, len);
    char *k = strdup("explicit.key");
    ck_assert_int_eq(rt_msg_set_rkey(m, k), 0);
    ck_assert_ptr_ne(m->rkey, k); /* a copy: the caller's string may go */
    free(k);
    ck_assert_str_eq(m->rkey, "explicit.key");
    ck_assert_str_eq(m->subject, "order.created"); /* the subject stays */
    rt_msg_unref(m);
    free(b);
    pn_message_free(pm);
}
END_TEST

START_TEST(test_msg_rkey_equal_to_the_subject_shares_it)
{
    pn_message_t *pm = full_message();
    size_t len;
    char *b = encode(pm, &len);
    rt_msg *m = new_msg(b, len);
    ck_assert_int_eq(rt_msg_set_rkey(m, "order.created"), 0);
    ck_assert_ptr_eq(m->rkey, m->subject); /* no copy needed */
    rt_msg_unref(m);                       /* and none freed (ASan) */
    free(b);
    pn_message_free(pm);
}
END_TEST

START_TEST(test_msg_rkey_null_is_no_key)
{
    pn_message_t *pm = full_message();
    size_t len;
    char *b = encode(pm, &len);
    rt_msg *m = new_msg(b, len);
    ck_assert_int_eq(rt_msg_set_rkey(m, NULL), 0);
    ck_assert_ptr_null(m->rkey);
    rt_msg_unref(m);
    free(b);
    pn_message_free(pm);
}
END_TEST

/* rt.h says the key is recorded once, but rt_msg_set_rkey frees a copy it
 * made before (and publish() calls it once per routing attempt): setting
 * it again, to another key, the subject or none, must neither leak the
 * old copy nor free anything that is not one. */
START_TEST(test_msg_rkey_set_again_replaces_the_old_copy)
{
    pn_message_t *pm = full_message();
    size_t len;
    char *b = encode(pm, &len);
    rt_msg *m = new_msg(b, len);
    ck_assert_int_eq(rt_msg_set_rkey(m, "first.key"), 0);
    ck_assert_int_eq(rt_msg_set_rkey(m, "second.key"), 0); /* owned -> owned */
    ck_assert_str_eq(m->rkey, "second.key");
    ck_assert_int_eq(rt_msg_set_rkey(m, "order.created"), 0); /* owned -> the subject */
    ck_assert_ptr_eq(m->rkey, m->subject);
    rt_msg_unref(m); /* must not free m->subject, must free "second.key" */
    free(b);

    b = encode(pm, &len);
    m = new_msg(b, len);
    ck_assert_int_eq(rt_msg_set_rkey(m, "a.key"), 0);
    ck_assert_int_eq(rt_msg_set_rkey(m, NULL), 0); /* owned -> none */
    ck_assert_ptr_null(m->rkey);
    rt_msg_unref(m);
    free(b);
    pn_message_free(pm);
}
END_TEST

START_TEST(test_msg_rkey_is_freed_with_the_message)
{
    pn_message_t *pm = full_message();
    size_t len;
    char *b = encode(pm, &len);
    rt_msg *m = new_msg(b, len);
    ck_assert_int_eq(rt_msg_set_rkey(m, "a.key.to.free"), 0);
    rt_msg_unref(m); /* ASan reports a leak if the key is kept */
    free(b);
    pn_message_free(pm);
}
END_TEST

/* --------------------------------------------------------- reference count */

START_TEST(test_msg_refs_keep_it_until_the_last_unref)
{
    pn_message_t *pm = full_message();
    size_t len;
    char *b = encode(pm, &len);
    rt_msg *m = new_msg(b, len);
    ck_assert_uint_eq(atomic_load(&m->buf.refs), 1);
    rt_msg *r1 = rt_msg_ref(m), *r2 = rt_msg_ref(m);
    ck_assert_ptr_eq(r1, m);
    ck_assert_ptr_eq(r2, m);
    ck_assert_uint_eq(atomic_load(&m->buf.refs), 3);
    rt_msg_unref(r1);
    rt_msg_unref(m);
    /* One left: still readable (ASan reports a use after free otherwise). */
    ck_assert_uint_eq(atomic_load(&r2->buf.refs), 1);
    ck_assert_str_eq(r2->subject, "order.created");
    ck_assert_int_eq(memcmp(r2->buf.data, b, len), 0);
    rt_msg_unref(r2);
    rt_msg_unref(NULL); /* harmless */
    free(b);
    pn_message_free(pm);
}
END_TEST

/* x-max-length-bytes counts the body as RabbitMQ does: a data section's
 * bytes, a string value's bytes, another value encoded; never the header,
 * properties or footer. */
START_TEST(test_msg_body_len_counts_the_body_only)
{
    pn_message_t *pm = full_message(); /* properties, application properties, a 5-byte data section */
    size_t len;
    char *b = encode(pm, &len);
    rt_msg *m;
    ck_assert_int_eq(rt_msg_new(b, len, &m), 0);
    ck_assert_uint_eq(m->body_len, 5);
    ck_assert_uint_gt(m->buf.len, 50);
    rt_msg_unref(m);
    free(b);
    pn_message_free(pm);

    pm = pn_message();
    pn_message_set_inferred(pm, false); /* a string: an amqp-value */
    put_str(pn_message_body(pm), "{\"id\": 42}");
    b = encode(pm, &len);
    ck_assert_int_eq(rt_msg_new(b, len, &m), 0);
    ck_assert_uint_eq(m->body_len, 10);
    rt_msg_unref(m);
    free(b);
    pn_message_free(pm);

    /* Two data sections and a footer, by hand: 3 + 4 bytes count. */
    static const unsigned char two[] = {0x00, 0x53, 0x75, 0xa0, 3,   'a', 'b', 'c',  0x00, 0x53, 0x75, 0xb0, 0,
                                        0,    0,    4,    'w',  'x', 'y', 'z', 0x00, 0x53, 0x78, 0xc1, 1,    0};
    ck_assert_int_eq(rt_msg_new(two, sizeof two, &m), 0);
    ck_assert_uint_eq(m->body_len, 7);
    rt_msg_unref(m);
    /* A map value counts encoded (its constructor, size, count and items). */
    static const unsigned char map[] = {0x00, 0x53, 0x77, 0xc1, 5, 2, 0xa1, 1, 'k', 0x41};
    ck_assert_int_eq(rt_msg_new(map, sizeof map, &m), 0);
    ck_assert_uint_eq(m->body_len, 7);
    rt_msg_unref(m);
}
END_TEST

static Suite *msg_suite(void)
{
    Suite *s = suite_create("routing/msg");
    TCase *tc = tcase_create("decode");
    tcase_add_test(tc, test_msg_decodes_every_header_field);
    tcase_add_test(tc, test_msg_decodes_to_subject_reply_to_and_expiry);
    tcase_add_test(tc, test_msg_keeps_the_exact_encoded_bytes);
    tcase_add_test(tc, test_msg_absent_fields_are_zero_and_null);
    tcase_add_test(tc, test_msg_without_header_section_is_accepted);
    tcase_add_test(tc, test_msg_amqp_value_body_with_annotations);
    tcase_add_test(tc, test_msg_one_mib_body_is_kept_whole);
    tcase_add_test(tc, test_msg_body_bytes_are_never_decoded);
    tcase_add_test(tc, test_msg_garbage_is_ebadmsg);
    tcase_add_test(tc, test_msg_large_ulong_descriptor_is_no_header);
    tcase_add_test(tc, test_msg_built_as_bytes_arrive_equals_msg_new);
    tcase_add_test(tc, test_msg_finish_error_leaves_the_message_to_the_caller);
    tcase_add_test(tc, test_msg_from_body_is_a_data_section_message);
    suite_add_tcase(s, tc);

    TCase *tw = tcase_create("wire");
    tcase_add_test(tw, test_msg_wire_same_count_sends_original_bytes);
    tcase_add_test(tw, test_msg_wire_higher_count_gets_a_new_header_proton_decodes);
    tcase_add_test(tw, test_msg_wire_of_headerless_message_prepends_a_header);
    tcase_add_test(tw, test_msg_wire_keeps_priority_zero);
    tcase_add_test(tw, test_msg_wire_without_ttl_has_no_ttl);
    tcase_add_test(tw, test_msg_ttl_zero_is_kept);
    suite_add_tcase(s, tw);

    TCase *to = tcase_create("other");
    tcase_add_test(to, test_msg_app_props_are_the_map_positioned_on_it);
    tcase_add_test(to, test_msg_app_props_feed_a_headers_binding);
    tcase_add_test(to, test_msg_rkey_is_a_copy_of_the_callers_key);
    tcase_add_test(to, test_msg_rkey_equal_to_the_subject_shares_it);
    tcase_add_test(to, test_msg_rkey_null_is_no_key);
    tcase_add_test(to, test_msg_rkey_set_again_replaces_the_old_copy);
    tcase_add_test(to, test_msg_rkey_is_freed_with_the_message);
    tcase_add_test(to, test_msg_refs_keep_it_until_the_last_unref);
    tcase_add_test(to, test_msg_body_len_counts_the_body_only);
    suite_add_tcase(s, to);
    return s;
}

int main(void) { return run_suite(msg_suite()); }
