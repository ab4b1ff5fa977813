/* test_amqp_frames.c — the check of what a client sends, before proton
 * reads it (amqp/frames.c), and the protocol header classification
 * (amqp/header.c): well-formed performatives pass, every malformed one and
 * every frame out of its state is refused with its condition and reason,
 * however the bytes are split across reads. */
#include <check.h>
#include <errno.h>
#include <proton/codec.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check_main.h"
#include "amqp/amqp_internal.h"

static const char SASL_HDR[8] = "AMQP\x03\x01\x00\x00";
static const char AMQP_HDR[8] = "AMQP\x00\x01\x00\x00";

static amqp__fcheck V;
static const char *cond;
static char err[200];

static void setup(void) { amqp__fcheck_init(&V, 65536); }
static void teardown(void) { amqp__fcheck_free(&V); }

/* Feeds bytes in one read. */
static int feed(const void *p, size_t n)
{
    cond = NULL;
    err[0] = '\0';
    return amqp__fcheck_feed(&V, p, n, &cond, err, sizeof err);
}

/* Feeds bytes one at a time; the first error, or 0. */
static int feed_bytewise(const void *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int rc = feed((const char *)p + i, 1);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* ---------------------------------------------------------- frame builder */

static pn_data_t *D;

/* Starts a performative: described(ulong code, list[...]); fields follow. */
static pn_data_t *perf(uint64_t code)
{
    if (!D)
        D = pn_data(16);
    pn_data_clear(D);
    pn_data_put_described(D);
    pn_data_enter(D);
    pn_data_put_ulong(D, code);
    pn_data_put_list(D);
    pn_data_enter(D);
    return D;
}

/* The frame holding D's performative (and payload): into buf, its size. */
static size_t frame_of(pn_data_t *d, uint8_t type, uint16_t ch, const void *payload, size_t plen, char *buf, size_t cap)
{
    pn_data_rewind(d);
    ssize_t n = pn_data_encode(d, buf + 8, cap - 8 - plen);
    ck_assert_int_gt(n, 0);
    if (plen)
        memcpy(buf + 8 + n, payload, plen);
    uint32_t size = (uint32_t)(8 + n + plen);
    buf[0] = (char)(size >> 24);
    buf[1] = (char)(size >> 16);
    buf[2] = (char)(size >> 8);
    buf[3] = (char)size;
    buf[4] = 2;
    buf[5] = (char)type;
    buf[6] = (char)(ch >> 8);
    buf[7] = (char)ch;
    return size;
}

static char F[4096];

/* Sends the performative being built as an AMQP frame on channel ch. */
static int send_on(uint16_t ch)
{
    size_t n = frame_of(D, 0, ch, NULL, 0, F, sizeof F);
    return feed(F, n);
}
static int send_perf(void) { return send_on(0); }

static void open_conn(void)
{
    ck_assert_int_eq(feed(AMQP_HDR, 8), 0);
    pn_data_t *d = perf(0x10);
    pn_data_put_string(d, pn_bytes(6, "client"));
    ck_assert_int_eq(send_perf(), 0);
}

static void begin_on(uint16_t ch)
{
    pn_data_t *d = perf(0x11);
    pn_data_put_null(d);
    pn_data_put_uint(d, 0);
    pn_data_put_uint(d, 100);
    pn_data_put_uint(d, 100);
    ck_assert_int_eq(send_on(ch), 0);
}

static int attach(uint16_t ch, uint32_t handle, bool receiver, const char *name)
{
    pn_data_t *d = perf(0x12);
    pn_data_put_string(d, pn_bytes(strlen(name), name));
    pn_data_put_uint(d, handle);
    pn_data_put_bool(d, receiver);
    return send_on(ch);
}

static int transfer(uint16_t ch, uint32_t handle)
{
    pn_data_t *d = perf(0x14);
    pn_data_put_uint(d, handle);
    pn_data_put_uint(d, 0);
    pn_data_put_binary(d, pn_bytes(1, "t"));
    static const char body[] = "\x00\x53\x77\xa1\x01x"; /* amqp-value "x" */
    size_t n = frame_of(D, 0, ch, body, sizeof body - 1, F, sizeof F);
    return feed(F, n);
}

static int detach(uint16_t ch, uint32_t handle)
{
    pn_data_t *d = perf(0x16);
    pn_data_put_uint(d, handle);
    pn_data_put_bool(d, true);
    return send_on(ch);
}

static int flow_on(uint16_t ch, int64_t handle)
{
    pn_data_t *d = perf(0x13);
    pn_data_put_uint(d, 0);
    pn_data_put_uint(d, 100);
    pn_data_put_uint(d, 0);
    pn_data_put_uint(d, 100);
    if (handle >= 0) {
        pn_data_put_uint(d, (uint32_t)handle);
        pn_data_put_uint(d, 0);
        pn_data_put_uint(d, 10);
    }
    return send_on(ch);
}

static int end_on(uint16_t ch)
{
    perf(0x17);
    return send_on(ch);
}

#define REFUSED(rc, want_cond, text)                                                                                   \
    do {                                                                                                               \
        int rc_ = (rc);                                                                                                \
        ck_assert_msg(rc_ < 0, "accepted; wanted %s", want_cond);                                                      \
        ck_assert_msg(cond && !strcmp(cond, want_cond), "condition %s, not %s (%s)", cond ? cond : "-", want_cond,     \
                      err);                                                                                            \
        ck_assert_msg(strstr(err, text), "reason \"%s\" lacks \"%s\"", err, text);                                     \
    } while (0)

/* ---------------------------------------------------------- the headers */

START_TEST(test_header_classify)
{
    ck_assert_int_eq(amqp__header_classify((const uint8_t *)"AMQP\x00\x01\x00\x00"), AMQP__HDR_AMQP);
    ck_assert_int_eq(amqp__header_classify((const uint8_t *)"AMQP\x03\x01\x00\x00"), AMQP__HDR_SASL);
    ck_assert_int_eq(amqp__header_classify((const uint8_t *)"AMQP\x02\x01\x00\x00"), AMQP__HDR_TLS);
    ck_assert_int_eq(amqp__header_classify((const uint8_t *)"AMQP\x00\x00\x09\x01"), AMQP__HDR_AMQP091);
    ck_assert_int_eq(amqp__header_classify((const uint8_t *)"AMQP\x01\x01\x00\x00"), AMQP__HDR_OTHER);
    ck_assert_int_eq(amqp__header_classify((const uint8_t *)"AMQP\x00\x01\x00\x01"), AMQP__HDR_OTHER);
    ck_assert_int_eq(amqp__header_classify((const uint8_t *)"AMQP\x00\x00\x09\x00"), AMQP__HDR_OTHER);
    ck_assert_int_eq(amqp__header_classify((const uint8_t *)"GET / HT"), AMQP__HDR_OTHER);
    ck_assert_str_eq(amqp__header_name(AMQP__HDR_TLS), "AMQP 1.0 TLS");
    ck_assert_str_eq(amqp__header_name(AMQP__HDR_OTHER), "not an AMQP 1.0 header");
}
END_TEST

START_TEST(test_sasl_then_amqp_headers_pass)
{
    ck_assert_int_eq(feed(SASL_HDR, 8), 0);
    ck_assert(V.sasl);
    pn_data_t *d = perf(0x41); /* sasl-init */
    pn_data_put_symbol(d, pn_bytes(9, "ANONYMOUS"));
    size_t n = frame_of(d, 1, 0, NULL, 0, F, sizeof F);
    ck_assert_int_eq(feed(F, n), 0);
    ck_assert_int_eq(feed(AMQP_HDR, 8), 0);
    ck_assert(!V.sasl);
}
END_TEST

START_TEST(test_unserved_headers_are_answered_with_sasl)
{
    static const char *bad[] = {"AMQP\x02\x01\x00\x00", "AMQP\x00\x00\x09\x01", "AMQP\x09\x01\x00\x00",
                                "GET / HTTP/1.1\r\n"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        amqp__fcheck_free(&V);
        amqp__fcheck_init(&V, 65536);
        ck_assert_int_eq(feed(bad[i], 8), -EPROTONOSUPPORT);
        ck_assert(!memcmp(V.refused, bad[i], 8));
        ck_assert(!memcmp(V.reply, SASL_HDR, 8));
        ck_assert(V.amqp091 == (i == 1)); /* 0-9-1 first: for its own front end (conn091.c) */
    }
}
END_TEST

START_TEST(test_header_split_across_reads)
{
    ck_assert_int_eq(feed_bytewise("AMQP\x02\x01\x00\x00", 8), -EPROTONOSUPPORT);
    ck_assert(!memcmp(V.reply, SASL_HDR, 8));
}
END_TEST

START_TEST(test_after_sasl_only_the_amqp_header)
{
    ck_assert_int_eq(feed(SASL_HDR, 8), 0);
    ck_assert_int_eq(feed(SASL_HDR, 8), -EPROTONOSUPPORT);
    ck_assert(!memcmp(V.reply, AMQP_HDR, 8));
    ck_assert(!V.amqp091);
    amqp__fcheck_free(&V);
    amqp__fcheck_init(&V, 65536);
    ck_assert_int_eq(feed(SASL_HDR, 8), 0);
    ck_assert_int_eq(feed("AMQP\x00\x00\x09\x01", 8), -EPROTONOSUPPORT);
    ck_assert(!V.amqp091); /* 0-9-1 only as the first header */
}
END_TEST

START_TEST(test_header_among_amqp_frames_is_a_framing_error)
{
    open_conn();
    REFUSED(feed(AMQP_HDR, 8), "amqp:connection:framing-error", "a protocol header where a frame was expected");
}
END_TEST

/* ----------------------------------------------------------- framing */

START_TEST(test_every_performative_well_formed_passes)
{
    open_conn();
    begin_on(0);
    ck_assert_int_eq(attach(0, 0, false, "snd"), 0);
    ck_assert_int_eq(attach(0, 1, true, "rcv"), 0);
    ck_assert_int_eq(flow_on(0, 1), 0);
    ck_assert_int_eq(flow_on(0, -1), 0); /* the session's flow alone */
    ck_assert_int_eq(transfer(0, 0), 0);
    pn_data_t *d = perf(0x15); /* disposition */
    pn_data_put_bool(d, true);
    pn_data_put_uint(d, 0);
    ck_assert_int_eq(send_perf(), 0);
    ck_assert_int_eq(detach(0, 0), 0);
    ck_assert_int_eq(detach(0, 1), 0);
    ck_assert_int_eq(end_on(0), 0);
    perf(0x18);
    ck_assert_int_eq(send_perf(), 0);
}
END_TEST

START_TEST(test_empty_frame_is_a_heartbeat)
{
    open_conn();
    static const char hb[8] = {0, 0, 0, 8, 2, 0, 0, 0};
    ck_assert_int_eq(feed(hb, 8), 0);
    ck_assert_int_eq(feed_bytewise(hb, 8), 0);
    begin_on(0);
}
END_TEST

START_TEST(test_malformed_frame_headers)
{
    static const char small[8] = {0, 0, 0, 7, 2, 0, 0, 0};
    static const char doff[8] = {0, 0, 0, 8, 1, 0, 0, 0};
    static const char past[8] = {0, 0, 0, 8, 3, 0, 0, 0};
    const char *bad[] = {small, doff, past};
    for (int i = 0; i < 3; i++) {
        amqp__fcheck_free(&V);
        amqp__fcheck_init(&V, 65536);
        open_conn();
        REFUSED(feed(bad[i], 8), "amqp:connection:framing-error", "malformed frame header");
    }
}
END_TEST

START_TEST(test_frame_over_max_frame_size)
{
    open_conn();
    static const char big[8] = {0, 1, 0, 1, 2, 0, 0, 0}; /* 65537 */
    int rc = feed(big, 8);
    ck_assert_int_eq(rc, -EMSGSIZE);
    REFUSED(rc, "amqp:connection:framing-error", "exceeds max-frame-size 65536");
}
END_TEST

START_TEST(test_sasl_frame_among_amqp_frames)
{
    open_conn();
    pn_data_t *d = perf(0x11);
    pn_data_put_null(d);
    size_t n = frame_of(d, 1, 0, NULL, 0, F, sizeof F);
    REFUSED(feed(F, n), "amqp:connection:framing-error", "frame type 1 where AMQP frames are expected");
}
END_TEST

START_TEST(test_extended_header_is_skipped)
{
    open_conn();
    /* a begin with a data offset of 3: four bytes of extended header */
    pn_data_t *d = perf(0x11);
    pn_data_put_null(d);
    pn_data_put_uint(d, 0);
    pn_data_put_uint(d, 100);
    pn_data_put_uint(d, 100);
    size_t n = frame_of(d, 0, 0, NULL, 0, F + 4, sizeof F - 4);
    memmove(F, F + 4, 8);
    memset(F + 8, 0xee, 4);
    n += 4;
    F[0] = (char)(n >> 24), F[1] = (char)(n >> 16), F[2] = (char)(n >> 8), F[3] = (char)n;
    F[4] = 3;
    ck_assert_int_eq(feed_bytewise(F, n), 0);
    ck_assert_int_eq(end_on(0), 0); /* the begin counted */
    REFUSED(end_on(0), "amqp:not-allowed", "end on channel 0, which has no session");
}
END_TEST

/* ------------------------------------------------------ performatives */

START_TEST(test_undecodable_performative)
{
    open_conn();
    static const char bad[16] = {0,    0,    0,    16,         2,          0,          0,          0,
                                 0x00, 0x53, 0x10, (char)0xff, (char)0xff, (char)0xff, (char)0xff, (char)0xff};
    REFUSED(feed(bad, 16), "amqp:decode-error", "cannot be decoded");
}
END_TEST

START_TEST(test_performative_cut_short_by_its_frame)
{
    open_conn();
    pn_data_t *d = perf(0x10);
    pn_data_put_string(d, pn_bytes(20, "a-long-container-id!"));
    size_t n = frame_of(d, 0, 0, NULL, 0, F, sizeof F);
    n -= 5; /* the frame ends before the performative does */
    F[3] = (char)n;
    REFUSED(feed(F, n), "amqp:decode-error", "cannot be decoded");
}
END_TEST

START_TEST(test_not_described)
{
    open_conn();
    pn_data_clear(D ? D : (D = pn_data(16)));
    pn_data_put_uint(D, 7);
    REFUSED(send_perf(), "amqp:decode-error", "a frame must hold a described performative");
}
END_TEST

START_TEST(test_unknown_performative)
{
    open_conn();
    perf(0x77);
    REFUSED(send_perf(), "amqp:decode-error", "unknown performative");
    amqp__fcheck_free(&V);
    amqp__fcheck_init(&V, 65536);
    open_conn();
    pn_data_clear(D);
    pn_data_put_described(D);
    pn_data_enter(D);
    pn_data_put_symbol(D, pn_bytes(14, "amqp:nope:list"));
    pn_data_put_list(D);
    REFUSED(send_perf(), "amqp:decode-error", "unknown performative");
}
END_TEST

START_TEST(test_symbolic_descriptor)
{
    ck_assert_int_eq(feed(AMQP_HDR, 8), 0);
    pn_data_clear(D ? D : (D = pn_data(16)));
    pn_data_put_described(D);
    pn_data_enter(D);
    pn_data_put_symbol(D, pn_bytes(14, "amqp:open:list"));
    pn_data_put_list(D);
    pn_data_enter(D);
    pn_data_put_string(D, pn_bytes(1, "c"));
    ck_assert_int_eq(send_perf(), 0);
    ck_assert(V.opened);
}
END_TEST

START_TEST(test_wrong_layer_and_direction)
{
    open_conn();
    perf(0x41); /* sasl-init in an AMQP frame */
    REFUSED(send_perf(), "amqp:decode-error", "sasl-init in a AMQP frame");
    amqp__fcheck_free(&V);
    amqp__fcheck_init(&V, 65536);
    ck_assert_int_eq(feed(SASL_HDR, 8), 0);
    pn_data_t *d = perf(0x40); /* sasl-mechanisms: the server's */
    pn_data_put_symbol(d, pn_bytes(5, "PLAIN"));
    size_t n = frame_of(d, 1, 0, NULL, 0, F, sizeof F);
    REFUSED(feed(F, n), "amqp:decode-error", "sasl-mechanisms is not sent by clients");
    amqp__fcheck_free(&V);
    amqp__fcheck_init(&V, 65536);
    ck_assert_int_eq(feed(SASL_HDR, 8), 0);
    perf(0x10);
    n = frame_of(D, 1, 0, NULL, 0, F, sizeof F);
    REFUSED(feed(F, n), "amqp:decode-error", "open in a SASL frame");
}
END_TEST

START_TEST(test_fields_not_a_list)
{
    open_conn();
    pn_data_clear(D);
    pn_data_put_described(D);
    pn_data_enter(D);
    pn_data_put_ulong(D, 0x11);
    pn_data_put_map(D);
    REFUSED(send_perf(), "amqp:decode-error", "begin: its fields must be a list");
}
END_TEST

START_TEST(test_mandatory_fields)
{
    open_conn();
    pn_data_t *d = perf(0x11);
    pn_data_put_null(d);
    REFUSED(send_perf(), "amqp:decode-error", "begin: field 2 is mandatory");
    amqp__fcheck_free(&V);
    amqp__fcheck_init(&V, 65536);
    ck_assert_int_eq(feed(AMQP_HDR, 8), 0);
    perf(0x10); /* open without a container-id */
    REFUSED(send_perf(), "amqp:decode-error", "open: field 1 is mandatory");
}
END_TEST

/* One field of one performative with a value of the wrong type. */
static void wrong_type(uint64_t code, int index, void (*put)(pn_data_t *), const char *text)
{
    amqp__fcheck_free(&V);
    amqp__fcheck_init(&V, 65536);
    open_conn();
    begin_on(0);
    pn_data_t *d = perf(code);
    /* fields before it: nulls, or values of the right type where mandatory */
    for (int i = 0; i < index; i++) {
        if (code == 0x12 && i == 0)
            pn_data_put_string(d, pn_bytes(1, "n"));
        else if (code == 0x12 && i == 2)
            pn_data_put_bool(d, false);
        else if ((code == 0x12 && i == 1) || (code == 0x11 && i >= 1 && i <= 3) || (code == 0x14 && i == 0))
            pn_data_put_uint(d, 0);
        else
            pn_data_put_null(d);
    }
    put(d);
    REFUSED(send_perf(), "amqp:decode-error", text);
}

static void put_string(pn_data_t *d) { pn_data_put_string(d, pn_bytes(1, "s")); }
static void put_uint(pn_data_t *d) { pn_data_put_uint(d, 1); }
static void put_int(pn_data_t *d) { pn_data_put_int(d, 1); }
static void put_list(pn_data_t *d) { pn_data_put_list(d); }
static void put_int_array(pn_data_t *d)
{
    pn_data_put_array(d, false, PN_INT);
    pn_data_enter(d);
    pn_data_put_int(d, 1);
    pn_data_exit(d);
}

START_TEST(test_each_field_kind_is_checked)
{
    wrong_type(0x12, 1, put_string, "attach: field 2 must be a uint");
    wrong_type(0x11, 0, put_uint, "begin: field 1 must be a ushort");
    wrong_type(0x12, 3, put_uint, "attach: field 4 must be a ubyte");
    wrong_type(0x12, 10, put_uint, "attach: field 11 must be a ulong");
    wrong_type(0x12, 2, put_uint, "attach: field 3 must be a boolean");
    wrong_type(0x12, 0, put_uint, "attach: field 1 must be a string");
    wrong_type(0x12, 11, put_int_array, "attach: field 12 must be a symbol or symbol array");
    wrong_type(0x14, 2, put_string, "transfer: field 3 must be a binary");
    wrong_type(0x12, 7, put_list, "attach: field 8 must be a map");
    wrong_type(0x12, 5, put_int, "attach: field 6 must be a described value");
}
END_TEST

START_TEST(test_sasl_init_symbol_checked)
{
    ck_assert_int_eq(feed(SASL_HDR, 8), 0);
    pn_data_t *d = perf(0x41);
    pn_data_put_string(d, pn_bytes(5, "PLAIN"));
    size_t n = frame_of(d, 1, 0, NULL, 0, F, sizeof F);
    REFUSED(feed(F, n), "amqp:decode-error", "sasl-init: field 1 must be a symbol");
}
END_TEST

START_TEST(test_split_performative_is_still_checked)
{
    ck_assert_int_eq(feed(AMQP_HDR, 8), 0);
    pn_data_t *d = perf(0x10);
    pn_data_put_string(d, pn_bytes(6, "client"));
    size_t n = frame_of(d, 0, 0, NULL, 0, F, sizeof F);
    ck_assert_int_eq(feed_bytewise(F, n), 0);
    d = perf(0x11);
    pn_data_put_null(d);
    pn_data_put_string(d, pn_bytes(4, "zero"));
    n = frame_of(d, 0, 0, NULL, 0, F, sizeof F);
    REFUSED(feed_bytewise(F, n), "amqp:decode-error", "begin: field 2 must be a uint");
}
END_TEST

START_TEST(test_frame_header_alone_then_the_body)
{
    /* A read that ends exactly after a frame header, then the rest. */
    ck_assert_int_eq(feed(AMQP_HDR, 8), 0);
    pn_data_t *d = perf(0x10);
    pn_data_put_string(d, pn_bytes(6, "client"));
    size_t n = frame_of(d, 0, 0, NULL, 0, F, sizeof F);
    ck_assert_int_eq(feed(F, 8), 0);
    ck_assert_int_eq(feed(F + 8, n - 8), 0);
    ck_assert(V.opened);
    /* two frames in one read (a transfer with its payload, a detach),
     * then the same transfer again, a byte at a time: refused, the handle
     * is free now */
    begin_on(0);
    ck_assert_int_eq(attach(0, 0, false, "s"), 0);
    char two[512];
    pn_data_t *t = perf(0x14);
    pn_data_put_uint(t, 0);
    pn_data_put_uint(t, 0);
    pn_data_put_binary(t, pn_bytes(1, "t"));
    size_t tn = frame_of(t, 0, 0, "payload-bytes", 13, two, sizeof two);
    d = perf(0x16);
    pn_data_put_uint(d, 0);
    size_t dn = frame_of(d, 0, 0, NULL, 0, two + tn, sizeof two - tn);
    ck_assert_int_eq(feed(two, tn + dn), 0);
    REFUSED(feed_bytewise(two, tn), "amqp:session:unattached-handle", "transfer on handle 0");
}
END_TEST

/* -------------------------------------------------------------- states */

START_TEST(test_second_open)
{
    open_conn();
    pn_data_t *d = perf(0x10);
    pn_data_put_string(d, pn_bytes(5, "again"));
    REFUSED(send_perf(), "amqp:illegal-state", "a second open on an open connection");
}
END_TEST

START_TEST(test_open_max_frame_size_minimum)
{
    ck_assert_int_eq(feed(AMQP_HDR, 8), 0);
    pn_data_t *d = perf(0x10);
    pn_data_put_string(d, pn_bytes(1, "c"));
    pn_data_put_null(d);
    pn_data_put_uint(d, 511);
    REFUSED(send_perf(), "amqp:invalid-field", "max-frame-size 511 is below the minimum of 512");
    amqp__fcheck_free(&V);
    amqp__fcheck_init(&V, 65536);
    ck_assert_int_eq(feed(AMQP_HDR, 8), 0);
    d = perf(0x10);
    pn_data_put_string(d, pn_bytes(1, "c"));
    pn_data_put_null(d);
    pn_data_put_uint(d, 512);
    ck_assert_int_eq(send_perf(), 0);
}
END_TEST

START_TEST(test_frames_before_open)
{
    ck_assert_int_eq(feed(AMQP_HDR, 8), 0);
    pn_data_t *d = perf(0x11);
    pn_data_put_null(d);
    pn_data_put_uint(d, 0);
    pn_data_put_uint(d, 1);
    pn_data_put_uint(d, 1);
    REFUSED(send_perf(), "amqp:illegal-state", "begin before open");
    amqp__fcheck_free(&V);
    amqp__fcheck_init(&V, 65536);
    ck_assert_int_eq(feed(AMQP_HDR, 8), 0);
    perf(0x18); /* close before open: proton answers it */
    ck_assert_int_eq(send_perf(), 0);
}
END_TEST

START_TEST(test_begin_on_a_busy_channel)
{
    open_conn();
    begin_on(5);
    pn_data_t *d = perf(0x11);
    pn_data_put_null(d);
    pn_data_put_uint(d, 0);
    pn_data_put_uint(d, 1);
    pn_data_put_uint(d, 1);
    REFUSED(send_on(5), "amqp:illegal-state", "begin on channel 5, which already has a session");
}
END_TEST

START_TEST(test_end_frees_the_channel_and_its_handles)
{
    open_conn();
    begin_on(2);
    ck_assert_int_eq(attach(2, 7, false, "a"), 0);
    ck_assert_int_eq(V.nhandles, 1);
    ck_assert_int_eq(end_on(2), 0);
    ck_assert_int_eq(V.nhandles, 0);
    begin_on(2);
    ck_assert_int_eq(attach(2, 7, false, "a"), 0); /* free again */
    REFUSED(end_on(3), "amqp:not-allowed", "end on channel 3, which has no session");
}
END_TEST

START_TEST(test_frames_on_a_channel_without_session)
{
    open_conn();
    REFUSED(attach(4, 0, false, "x"), "amqp:not-allowed", "attach on channel 4, which has no session");
    amqp__fcheck_free(&V);
    amqp__fcheck_init(&V, 65536);
    open_conn();
    REFUSED(flow_on(4, -1), "amqp:not-allowed", "flow on channel 4, which has no session");
}
END_TEST

START_TEST(test_attach_on_a_handle_in_use)
{
    open_conn();
    begin_on(0);
    begin_on(1);
    ck_assert_int_eq(attach(0, 3, false, "a"), 0);
    ck_assert_int_eq(attach(1, 3, false, "b"), 0); /* handles are per session */
    REFUSED(attach(0, 3, true, "c"), "amqp:session:handle-in-use", "handle 3 is in use by a link still attached");
}
END_TEST

START_TEST(test_detach_frees_the_handle)
{
    open_conn();
    begin_on(0);
    ck_assert_int_eq(attach(0, 0, false, "a"), 0);
    ck_assert_int_eq(detach(0, 0), 0);
    ck_assert_int_eq(attach(0, 0, false, "b"), 0);
}
END_TEST

START_TEST(test_unattached_handles)
{
    open_conn();
    begin_on(0);
    REFUSED(transfer(0, 9), "amqp:session:unattached-handle", "transfer on handle 9, which is not attached");
    amqp__fcheck_free(&V);
    amqp__fcheck_init(&V, 65536);
    open_conn();
    begin_on(0);
    REFUSED(flow_on(0, 9), "amqp:session:unattached-handle", "flow on handle 9, which is not attached");
    amqp__fcheck_free(&V);
    amqp__fcheck_init(&V, 65536);
    open_conn();
    begin_on(0);
    ck_assert_int_eq(attach(0, 0, false, "a"), 0);
    ck_assert_int_eq(detach(0, 0), 0);
    REFUSED(detach(0, 0), "amqp:session:unattached-handle", "detach on handle 0, which is not attached");
}
END_TEST

START_TEST(test_transfer_from_the_receiving_end)
{
    open_conn();
    begin_on(0);
    ck_assert_int_eq(attach(0, 0, true, "r"), 0);
    ck_assert_int_eq(flow_on(0, 0), 0); /* a receiver's flow is fine */
    REFUSED(transfer(0, 0), "amqp:illegal-state", "transfer on handle 0, a link on which the client receives");
}
END_TEST

START_TEST(test_handles_are_bounded)
{
    V.max_handles = 3;
    open_conn();
    begin_on(0);
    for (uint32_t h = 0; h < 3; h++)
        ck_assert_int_eq(attach(0, h, false, "l"), 0);
    ck_assert_int_eq(detach(0, 0), 0);
    ck_assert_int_eq(attach(0, 3, false, "l"), 0); /* room again after a detach */
    REFUSED(attach(0, 4, false, "l"), "amqp:resource-limit-exceeded", "more than 3 links attached at once");
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("amqp_frames");
    TCase *t = tcase_create("frames");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_add_test(t, test_header_classify);
    tcase_add_test(t, test_sasl_then_amqp_headers_pass);
    tcase_add_test(t, test_unserved_headers_are_answered_with_sasl);
    tcase_add_test(t, test_header_split_across_reads);
    tcase_add_test(t, test_after_sasl_only_the_amqp_header);
    tcase_add_test(t, test_header_among_amqp_frames_is_a_framing_error);
    tcase_add_test(t, test_every_performative_well_formed_passes);
    tcase_add_test(t, test_empty_frame_is_a_heartbeat);
    tcase_add_test(t, test_malformed_frame_headers);
    tcase_add_test(t, test_frame_over_max_frame_size);
    tcase_add_test(t, test_sasl_frame_among_amqp_frames);
    tcase_add_test(t, test_extended_header_is_skipped);
    tcase_add_test(t, test_undecodable_performative);
    tcase_add_test(t, test_performative_cut_short_by_its_frame);
    tcase_add_test(t, test_not_described);
    tcase_add_test(t, test_unknown_performative);
    tcase_add_test(t, test_symbolic_descriptor);
    tcase_add_test(t, test_wrong_layer_and_direction);
    tcase_add_test(t, test_fields_not_a_list);
    tcase_add_test(t, test_mandatory_fields);
    tcase_add_test(t, test_each_field_kind_is_checked);
    tcase_add_test(t, test_sasl_init_symbol_checked);
    tcase_add_test(t, test_split_performative_is_still_checked);
    tcase_add_test(t, test_frame_header_alone_then_the_body);
    tcase_add_test(t, test_second_open);
    tcase_add_test(t, test_open_max_frame_size_minimum);
    tcase_add_test(t, test_frames_before_open);
    tcase_add_test(t, test_begin_on_a_busy_channel);
    tcase_add_test(t, test_end_frees_the_channel_and_its_handles);
    tcase_add_test(t, test_frames_on_a_channel_without_session);
    tcase_add_test(t, test_attach_on_a_handle_in_use);
    tcase_add_test(t, test_detach_frees_the_handle);
    tcase_add_test(t, test_unattached_handles);
    tcase_add_test(t, test_transfer_from_the_receiving_end);
    tcase_add_test(t, test_handles_are_bounded);
    suite_add_tcase(s, t);
    return s;
}

int main(void) { return run_suite(suite()); }
