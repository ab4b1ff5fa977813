/* test_rt_logfmt.c — the on-disk record format of durable queues' logs:
 * every record decodes to what was encoded, and anything else — a torn
 * tail, a flipped bit, zeros, a bad type or length — is refused, never
 * mistaken for a message. */
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "check_main.h"
#include "routing/rt_internal.h"

static unsigned char buf[4096];

static size_t msg_record(uint64_t seq, uint32_t dc, int64_t expires, const char *rkey, const char *msg)
{
    size_t head =
        rt__rec_msg_head(buf, seq, dc, expires, rkey, (uint16_t)(rkey ? strlen(rkey) : 0), msg, (uint32_t)strlen(msg));
    memcpy(buf + head, msg, strlen(msg));
    return head + strlen(msg);
}

START_TEST(msg_round_trip)
{
    size_t n = msg_record(42, 3, 1700000000123LL, "orders.eu", "{\"id\": 7}");
    ck_assert_uint_eq(n, rt__rec_msg_size(strlen("orders.eu"), strlen("{\"id\": 7}")));
    rt__rec r;
    ck_assert_int_eq(rt__rec_decode(buf, n, &r), (ssize_t)n);
    ck_assert_int_eq(r.type, RT__REC_MSG);
    ck_assert_uint_eq(r.seq, 42);
    ck_assert_uint_eq(r.dc, 3);
    ck_assert_int_eq(r.expires, 1700000000123LL);
    ck_assert_uint_eq(r.rkey_len, 9);
    ck_assert(memcmp(r.rkey, "orders.eu", 9) == 0);
    ck_assert_uint_eq(r.msg_len, 9);
    ck_assert(memcmp(r.msg, "{\"id\": 7}", 9) == 0);
}
END_TEST

START_TEST(msg_without_and_with_empty_key)
{
    size_t n = msg_record(1, 0, 0, NULL, "x");
    rt__rec r;
    ck_assert_int_eq(rt__rec_decode(buf, n, &r), (ssize_t)n);
    ck_assert_ptr_null(r.rkey); /* no key is not the empty key */
    n = msg_record(1, 0, 0, "", "x");
    ck_assert_int_eq(rt__rec_decode(buf, n, &r), (ssize_t)n);
    ck_assert_ptr_nonnull(r.rkey);
    ck_assert_uint_eq(r.rkey_len, 0);
}
END_TEST

START_TEST(small_records_round_trip)
{
    uint64_t seqs[3] = {5, 6, 1ull << 40};
    size_t n = rt__rec_ack(buf, seqs, 3);
    ck_assert_uint_eq(n, rt__rec_ack_size(3));
    rt__rec r;
    ck_assert_int_eq(rt__rec_decode(buf, n, &r), (ssize_t)n);
    ck_assert_int_eq(r.type, RT__REC_ACK);
    ck_assert_uint_eq(r.n, 3);
    ck_assert_uint_eq(rt__rec_ack_at(&r, 2), 1ull << 40);

    n = rt__rec_dcount(buf, 99, 4);
    ck_assert_uint_eq(n, rt__rec_dcount_size());
    ck_assert_int_eq(rt__rec_decode(buf, n, &r), (ssize_t)n);
    ck_assert_int_eq(r.type, RT__REC_DCOUNT);
    ck_assert_uint_eq(r.seq, 99);
    ck_assert_uint_eq(r.dc, 4);

    n = rt__rec_mark(buf, 5000, 1234);
    ck_assert_uint_eq(n, rt__rec_mark_size());
    ck_assert_int_eq(rt__rec_decode(buf, n, &r), (ssize_t)n);
    ck_assert_int_eq(r.type, RT__REC_MARK);
    ck_assert_uint_eq(r.mark, 5000);
    ck_assert_uint_eq(r.next_seq, 1234);
}
END_TEST

START_TEST(torn_record_is_incomplete)
{
    size_t n = msg_record(7, 0, 0, "k", "a message that was being written");
    rt__rec r;
    for (size_t cut = 0; cut < n; cut++)
        ck_assert_int_eq(rt__rec_decode(buf, cut, &r), 0); /* never a record, never an error to resync on */
}
END_TEST

START_TEST(every_flipped_bit_is_caught)
{
    size_t n = msg_record(7, 1, 0, "k", "payload");
    rt__rec r;
    for (size_t byte = 4; byte < n; byte++) { /* past the length: the CRC covers the rest */
        for (int bit = 0; bit < 8; bit++) {
            buf[byte] ^= (unsigned char)(1 << bit);
            ck_assert_int_lt(rt__rec_decode(buf, n, &r), 0);
            buf[byte] ^= (unsigned char)(1 << bit);
        }
    }
    ck_assert_int_eq(rt__rec_decode(buf, n, &r), (ssize_t)n);
}
END_TEST

START_TEST(zeros_and_bad_lengths_are_not_records)
{
    rt__rec r;
    memset(buf, 0, 64);
    ck_assert_int_eq(rt__rec_decode(buf, 64, &r), -EBADMSG); /* preallocated, never written */
    size_t n = rt__rec_dcount(buf, 1, 1);
    buf[0] = 0xff; /* a length past the end: only part of a record, as far as anyone can tell */
    ck_assert_int_eq(rt__rec_decode(buf, n, &r), 0);
}
END_TEST

START_TEST(wrong_type_or_shape_is_refused)
{
    /* a valid CRC over a payload of an unknown type */
    size_t n = rt__rec_dcount(buf, 1, 1);
    rt__rec r;
    buf[RT__REC_HDR] = 9;
    ck_assert_int_lt(rt__rec_decode(buf, n, &r), 0);
    /* an ACK whose count does not match its length */
    uint64_t seqs[2] = {1, 2};
    n = rt__rec_ack(buf, seqs, 2);
    buf[RT__REC_HDR + 4] = 3;
    ck_assert_int_lt(rt__rec_decode(buf, n, &r), 0);
}
END_TEST

/* Reseals the record at buf (n bytes) after a change to its payload. */
static void reseal(size_t n)
{
    uint32_t c = (uint32_t)crc32(0, buf + RT__REC_HDR, (uInt)(n - RT__REC_HDR));
    for (int i = 0; i < 4; i++)
        buf[4 + i] = (unsigned char)(c >> (8 * i));
}

/* Found by the fuzzer (fuzz_logfmt, records resealed so the CRC holds): a
 * MSG record with flag bits the store never sets, or key bytes without the
 * key flag (rkey NULL, rkey_len 3), decoded as a message; re-encoding it
 * could not give the same record back. Not a record of ours: refused. */
START_TEST(msg_flags_the_store_never_writes_are_refused)
{
    size_t n = msg_record(1, 0, 0, "a.b", "m");
    rt__rec r;
    ck_assert_int_eq(rt__rec_decode(buf, n, &r), (ssize_t)n);
    buf[RT__REC_HDR + 1] = 0x81; /* an unknown flag beside the key flag */
    reseal(n);
    ck_assert_int_eq(rt__rec_decode(buf, n, &r), -EBADMSG);
    buf[RT__REC_HDR + 1] = 0x00; /* no key flag, yet three key bytes */
    reseal(n);
    ck_assert_int_eq(rt__rec_decode(buf, n, &r), -EBADMSG);
    buf[RT__REC_HDR + 1] = 0x01; /* as written: fine again */
    reseal(n);
    ck_assert_int_eq(rt__rec_decode(buf, n, &r), (ssize_t)n);
}
END_TEST

START_TEST(segment_header)
{
    unsigned char h[RT__SEG_HDR];
    rt__seg_header(h, 0x1234);
    uint32_t seg = 0;
    ck_assert_int_eq(rt__seg_header_check(h, sizeof h, &seg), 0);
    ck_assert_uint_eq(seg, 0x1234);
    ck_assert_int_lt(rt__seg_header_check(h, sizeof h - 1, &seg), 0);
    h[9] ^= 1;
    ck_assert_int_lt(rt__seg_header_check(h, sizeof h, &seg), 0);
    h[9] ^= 1;
    h[0] = 'Q';
    ck_assert_int_lt(rt__seg_header_check(h, sizeof h, &seg), 0);
}
END_TEST

START_TEST(records_follow_one_another)
{
    size_t a = msg_record(1, 0, 0, "k", "first");
    unsigned char two[4096];
    memcpy(two, buf, a);
    size_t b = rt__rec_ack(two + a, (uint64_t[]){1}, 1);
    rt__rec r;
    ck_assert_int_eq(rt__rec_decode(two, a + b, &r), (ssize_t)a);
    ck_assert_int_eq(rt__rec_decode(two + a, b, &r), (ssize_t)b);
    ck_assert_int_eq(r.type, RT__REC_ACK);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("rt_logfmt");
    TCase *tc = tcase_create("records");
    tcase_add_test(tc, msg_round_trip);
    tcase_add_test(tc, msg_without_and_with_empty_key);
    tcase_add_test(tc, small_records_round_trip);
    tcase_add_test(tc, torn_record_is_incomplete);
    tcase_add_test(tc, every_flipped_bit_is_caught);
    tcase_add_test(tc, zeros_and_bad_lengths_are_not_records);
    tcase_add_test(tc, wrong_type_or_shape_is_refused);
    tcase_add_test(tc, msg_flags_the_store_never_writes_are_refused);
    tcase_add_test(tc, segment_header);
    tcase_add_test(tc, records_follow_one_another);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
