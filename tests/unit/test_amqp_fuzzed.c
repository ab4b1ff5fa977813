/* test_amqp_fuzzed.c — regressions the fuzzer (tests/fuzz/fuzz_frames)
 * found in amqp/, each with the bytes that showed it: in the frame checker
 * (frames.c), a verdict must not depend on where TCP cuts the stream, and
 * a value must take the bytes it declares (encoding.c); in the SASL layer
 * (sasl.c), a malformed sasl-init is refused, not a crash. */
#include <check.h>
#include <errno.h>
#include <proton/connection.h>
#include <proton/transport.h>
#include <string.h>

#include "check_main.h"
#include "amqp/amqp_internal.h"

/* AMQP 1.0 header, then an open frame: container-id "c" (list8 of one
 * str8), 17 bytes in all. */
static const char stream[] = "AMQP\x00\x01\x00\x00"
                             "\x00\x00\x00\x11\x02\x00\x00\x00"
                             "\x00\x53\x10\xc0\x04\x01\xa1\x01\x63";
#define STREAM_LEN (sizeof stream - 1)

/* Feeds the stream cut at the given offsets; the first refusal's code. */
static int feed_cut(const size_t *cuts, size_t ncuts)
{
    amqp__fcheck v;
    amqp__fcheck_init(&v, 4096);
    size_t off = 0;
    int rc = 0;
    for (size_t i = 0; i <= ncuts && rc == 0; i++) {
        size_t end = i < ncuts ? cuts[i] : STREAM_LEN;
        const char *cond;
        char err[200];
        rc = amqp__fcheck_feed(&v, stream + off, end - off, &cond, err, sizeof err);
        off = end;
    }
    amqp__fcheck_free(&v);
    return rc;
}

/* Found by the fuzzer: a read that ended exactly after a frame header had
 * the checker gather zero body bytes into a buffer it had not allocated
 * yet (memcpy to NULL: undefined, and UBSan aborts under make asan). */
START_TEST(test_read_ending_with_a_frame_header)
{
    size_t cuts[] = {16};
    ck_assert_int_eq(feed_cut(cuts, 1), 0);
    size_t both[] = {8, 16};
    ck_assert_int_eq(feed_cut(both, 2), 0);
}
END_TEST

/* The invariant the fuzzer checks, on one stream: every single cut, and
 * one byte per read, get the verdict of one read. */
START_TEST(test_any_cut_gives_the_same_verdict)
{
    ck_assert_int_eq(feed_cut(NULL, 0), 0);
    for (size_t c = 1; c < STREAM_LEN; c++) {
        size_t cuts[] = {c};
        ck_assert_msg(feed_cut(cuts, 1) == 0, "cut at %zu", c);
    }
    size_t each[STREAM_LEN - 1];
    for (size_t i = 0; i < STREAM_LEN - 1; i++)
        each[i] = i + 1;
    ck_assert_int_eq(feed_cut(each, STREAM_LEN - 1), 0);
}
END_TEST

/* And a bad frame is refused however it is cut: the same open whose
 * container-id is a symbol (0xa3) where the spec says string. */
START_TEST(test_a_bad_frame_is_refused_however_cut)
{
    char bad[STREAM_LEN];
    memcpy(bad, stream, STREAM_LEN);
    bad[STREAM_LEN - 3] = (char)0xa3;
    for (size_t c = 0; c < STREAM_LEN; c++) {
        amqp__fcheck v;
        amqp__fcheck_init(&v, 4096);
        const char *cond;
        char err[200] = "";
        int rc = c ? amqp__fcheck_feed(&v, bad, c, &cond, err, sizeof err) : 0;
        if (rc == 0)
            rc = amqp__fcheck_feed(&v, bad + c, STREAM_LEN - c, &cond, err, sizeof err);
        ck_assert_msg(rc == -EBADMSG, "cut at %zu: %d", c, rc);
        ck_assert_str_eq(cond, "amqp:decode-error");
        amqp__fcheck_free(&v);
    }
}
END_TEST

static int feed_all(const char *bytes, size_t n, const char **cond)
{
    amqp__fcheck v;
    amqp__fcheck_init(&v, 4096);
    char err[200] = "";
    int rc = amqp__fcheck_feed(&v, bytes, n, cond, err, sizeof err);
    amqp__fcheck_free(&v);
    return rc;
}

/* The sasl-init below: its list32 declares 7 bytes and holds 12. */
static const char short_init[] = "AMQP\x03\x01\x00\x00"
                                 "\x00\x00\x00\x1f\x02\x01\x00\x00"
                                 "\x00\x53\x41\xd0\x00\x00\x00\x07\x00\x00\x00\x01"
                                 "\xa3\x09YANNMOOUS";

/* Found by the fuzzer (the crash below): the checker took that frame,
 * because pn_data_decode reads lists by count, while proton's transport
 * reads it by size as a sasl-init without a mechanism. The checker now
 * holds every value to its declared sizes (encoding.c) and refuses it. */
START_TEST(test_checker_refuses_a_list_shorter_than_its_fields)
{
    const char *cond = NULL;
    ck_assert_int_eq(feed_all(short_init, sizeof short_init - 1, &cond), -EBADMSG);
    ck_assert_str_eq(cond, "amqp:decode-error");
}
END_TEST

/* An array's count must fit its size too: an open whose hostname is an
 * array32 of a million nulls in 10 bytes. */
START_TEST(test_checker_refuses_an_array_whose_count_outruns_its_size)
{
    static const char open[] = "AMQP\x00\x01\x00\x00"
                               "\x00\x00\x00\x1b\x02\x00\x00\x00"
                               "\x00\x53\x10\xc0\x0e\x02\xa1\x01\x63"
                               "\xf0\x00\x00\x00\x05\x00\x10\x00\x00\x40";
    const char *cond = NULL;
    ck_assert_int_eq(feed_all(open, sizeof open - 1, &cond), -EBADMSG);
}
END_TEST

START_TEST(test_enc_size_holds_values_to_their_sizes)
{
    ck_assert_int_eq(amqp__enc_size("\x45", 1), 1);                            /* list0 */
    ck_assert_int_eq(amqp__enc_size("\xc0\x01\x00", 3), 3);                    /* list8, empty */
    ck_assert_int_eq(amqp__enc_size("\xc0\x03\x01\x50\x07", 5), 5);            /* [ubyte 7] */
    ck_assert_int_eq(amqp__enc_size("\xc0\x03\x01\x50", 4), 0);                /* more bytes to come */
    ck_assert_int_eq(amqp__enc_size("\xc0\x02\x01\x50\x07", 5), -EBADMSG);     /* size short of its element */
    ck_assert_int_eq(amqp__enc_size("\xc0\x04\x01\x50\x07\x00", 6), -EBADMSG); /* size past it */
    ck_assert_int_eq(amqp__enc_size("\xe0\x04\x02\x50\x01\x02", 6), 6);        /* array of two ubytes */
    ck_assert_int_eq(amqp__enc_size("\xe0\x04\x03\x50\x01\x02", 6), -EBADMSG);
    ck_assert_int_eq(amqp__enc_size("\x00\x53\x10\x45", 4), 4); /* described */
    ck_assert_int_eq(amqp__enc_size("\xa1\x05"
                                    "abc",
                                    5),
                     0);
    ck_assert_int_eq(amqp__enc_size("\xff", 1), -EBADMSG);
}
END_TEST

/* What a client's bytes do to a server transport with Plexus's SASL. */
static amqp__sasl push_sasl(const char *bytes, size_t n)
{
    static amqp_config cfg;
    amqp_config_init(&cfg);
    cfg.anonymous = true;
    amqp__sasl s = {.cfg = &cfg};
    pn_transport_t *t = pn_transport();
    pn_connection_t *c = pn_connection();
    ck_assert_ptr_nonnull(t);
    ck_assert_ptr_nonnull(c);
    pn_transport_set_server(t);
    amqp__sasl_setup(t, &s);
    ck_assert_int_eq(pn_transport_bind(t, c), 0);
    ck_assert_int_ge(pn_transport_push(t, bytes, n), 0);
    pn_transport_pending(t); /* lets proton answer, as the connection's write would */
    pn_transport_unbind(t);
    pn_transport_free(t);
    pn_connection_free(c);
    return s;
}

/* Found by the fuzzer: a sasl-init whose list32 says 7 bytes but holds an
 * 11-byte mechanism symbol passes the frame checker (proton's pn_data
 * decoder reads past the list's size) while proton's transport reads it as
 * no mechanism at all and hands Plexus's SASL a NULL mechanism: strcmp on
 * it crashed the broker before any login. Now it is a refused login. */
START_TEST(test_sasl_init_without_a_mechanism_is_refused)
{
    amqp__sasl s = push_sasl(short_init, sizeof short_init - 1); /* as if the checker had let it by */
    ck_assert(s.done);
    ck_assert(!s.ok);
    ck_assert_str_eq(s.refused, "(sasl-init without a mechanism)");
}
END_TEST

/* The same exchange, well-formed, still logs in (the test above can fail). */
START_TEST(test_sasl_init_anonymous_logs_in)
{
    static const char bytes[] = "AMQP\x03\x01\x00\x00"
                                "\x00\x00\x00\x1a\x02\x01\x00\x00"
                                "\x00\x53\x41\xc0\x0d\x02"
                                "\xa3\x09"
                                "ANONYMOUS\x40"; /* split: 'A' would extend the \x escape */
    amqp__sasl s = push_sasl(bytes, sizeof bytes - 1);
    ck_assert(s.done);
    ck_assert_str_eq(s.mech, "ANONYMOUS");
    ck_assert_str_eq(s.refused, "anonymous"); /* no auth function here: decided, and refused */
}
END_TEST

/* Found by the fuzzer: PLAIN with no initial response (proton gives a
 * NULL start) had split_plain compute NULL + 0, undefined behaviour that
 * UBSan aborts on under make asan. It is a malformed PLAIN response. */
START_TEST(test_sasl_plain_without_a_response_is_refused)
{
    static const char bytes[] = "AMQP\x03\x01\x00\x00"
                                "\x00\x00\x00\x15\x02\x01\x00\x00"
                                "\x00\x53\x41\xc0\x08\x01"
                                "\xa3\x05PLAIN";
    amqp__sasl s = push_sasl(bytes, sizeof bytes - 1);
    ck_assert(s.done);
    ck_assert(!s.ok);
    ck_assert_str_eq(s.mech, "PLAIN");
    ck_assert_str_eq(s.refused, "(malformed PLAIN response)");
}
END_TEST

static Suite *frames_suite(void)
{
    Suite *s = suite_create("amqp_fuzzed");
    TCase *tc = tcase_create("cuts");
    tcase_add_test(tc, test_read_ending_with_a_frame_header);
    tcase_add_test(tc, test_any_cut_gives_the_same_verdict);
    tcase_add_test(tc, test_a_bad_frame_is_refused_however_cut);
    suite_add_tcase(s, tc);
    TCase *te = tcase_create("sizes");
    tcase_add_test(te, test_checker_refuses_a_list_shorter_than_its_fields);
    tcase_add_test(te, test_checker_refuses_an_array_whose_count_outruns_its_size);
    tcase_add_test(te, test_enc_size_holds_values_to_their_sizes);
    suite_add_tcase(s, te);
    TCase *ts = tcase_create("sasl");
    tcase_add_test(ts, test_sasl_init_without_a_mechanism_is_refused);
    tcase_add_test(ts, test_sasl_init_anonymous_logs_in);
    tcase_add_test(ts, test_sasl_plain_without_a_response_is_refused);
    suite_add_tcase(s, ts);
    return s;
}

int main(void) { return run_suite(frames_suite()); }
