/* test_rt_logfmt.c — the on-disk record format of durable queues' logs:
 * every record decodes to what was encoded, and anything else — a torn
 * tail, a flipped bit, zeros, a bad type, length or padding — is refused,
 * never mistaken for a message. A damaged segment is walked as recovery
 * walks it, finding the same records as a plain search, in linear time. */
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
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

/* The store writes padding as zeros: anything else, even under a good CRC,
 * is not a record of ours (and no offset inside damage passes for one). */
START_TEST(padding_the_store_never_writes_is_refused)
{
    rt__rec r;
    for (int kind = 0; kind < 3; kind++) {
        size_t n = kind == 0   ? rt__rec_ack(buf, (uint64_t[]){7}, 1)
                   : kind == 1 ? rt__rec_dcount(buf, 7, 2)
                               : rt__rec_mark(buf, 7, 8);
        size_t pad = kind == 2 ? 7 : 3;
        ck_assert_int_eq(rt__rec_decode(buf, n, &r), (ssize_t)n);
        for (size_t i = 1; i <= pad; i++) {
            buf[RT__REC_HDR + i] = 0x20;
            reseal(n);
            ck_assert_int_eq(rt__rec_decode(buf, n, &r), -EBADMSG);
            buf[RT__REC_HDR + i] = 0;
            reseal(n);
            ck_assert_int_eq(rt__rec_decode(buf, n, &r), (ssize_t)n);
        }
    }
}
END_TEST

static uint32_t lcg(uint32_t *x)
{
    *x = *x * 1103515245u + 12345u;
    return *x >> 8;
}

/* Records of every kind from offset 0 (MSG bodies up to ~3 KiB, so that
 * records span several CRC checkpoints, at every alignment); the starts of
 * the records in at[] if given; returns the bytes used. */
static size_t fill(unsigned char *seg, size_t cap, uint32_t seed, size_t body_max, size_t *at, size_t *nat)
{
    static unsigned char body[4096];
    for (size_t i = 0; i < sizeof body; i++)
        body[i] = (unsigned char)lcg(&seed);
    size_t pos = 0, k = 0;
    for (uint64_t seq = 1;; seq++) {
        uint32_t kind = lcg(&seed) % 8;
        uint32_t blen = body_max ? lcg(&seed) % (uint32_t)body_max : 0;
        size_t need = kind < 5 ? rt__rec_msg_size(3, blen) : rt__rec_ack_size(2);
        if (pos + need > cap)
            break;
        if (at)
            at[k] = pos;
        k++;
        if (kind < 5) {
            size_t h = rt__rec_msg_head(seg + pos, seq, kind, 0, kind ? "a.b" : NULL, kind ? 3 : 0, body, blen);
            memcpy(seg + pos + h, body, blen);
            pos += h + blen;
        } else if (kind == 5) {
            pos += rt__rec_ack(seg + pos, (uint64_t[]){seq - 1, seq - 2}, 2);
        } else if (kind == 6) {
            pos += rt__rec_dcount(seg + pos, seq - 1, 3);
        } else {
            pos += rt__rec_mark(seg + pos, seq + 4096, seq + 1);
        }
    }
    if (nat)
        *nat = k;
    return pos;
}

/* Walks seg as recovery did before rt__segscan: decode, and after damage
 * try the next offset with the plain decoder. Returns how many records. */
static size_t walk_plain(const unsigned char *seg, size_t len, size_t *found)
{
    size_t k = 0;
    for (size_t pos = 0; pos < len;) {
        rt__rec r;
        ssize_t n = rt__rec_decode(seg + pos, len - pos, &r);
        if (n > 0) {
            found[k++] = pos;
            pos += (size_t)n;
        } else {
            pos++;
        }
    }
    return k;
}

/* Walks seg as recovery does now. */
static size_t walk_scan(const unsigned char *seg, size_t len, size_t *found, size_t *skips)
{
    rt__segscan sc;
    rt__segscan_init(&sc, seg, len);
    size_t k = 0;
    *skips = 0;
    for (size_t pos = 0; pos < len;) {
        rt__rec r;
        ssize_t n = rt__segscan_decode(&sc, pos, &r);
        if (n > 0) {
            ck_assert_uint_le(pos + (size_t)n, len);
            found[k++] = pos;
            pos += (size_t)n;
        } else {
            size_t next = rt__segscan_resync(&sc, pos);
            ck_assert_uint_gt(next, pos);
            pos = next;
            ++*skips;
        }
    }
    rt__segscan_free(&sc);
    return k;
}

/* Damage of every kind recovery meets (random bytes, a zeroed CRC, a
 * length that claims the rest, one flipped bit, a torn tail): the walk
 * with CRC checkpoints finds exactly the records a plain search finds. */
START_TEST(a_damaged_segment_gives_the_records_a_plain_search_gives)
{
    size_t cap = 192 << 10;
    unsigned char *seg = malloc(cap);
    size_t *want = malloc(cap * sizeof *want), *got = malloc(cap * sizeof *got), *at = malloc(cap * sizeof *at);
    ck_assert(seg && want && got && at);
    for (uint32_t seed = 1; seed <= 12; seed++) {
        size_t nat, len = fill(seg, cap, seed, 3000, at, &nat);
        size_t intact = walk_plain(seg, len, want);
        ck_assert_uint_eq(intact, nat);
        uint32_t x = seed * 7919;
        for (int d = 0; d < 10; d++) {
            size_t rec = at[lcg(&x) % nat];
            switch ((d + seed) % 5) {
            case 0:
                for (size_t i = 0, n = 1 + lcg(&x) % 3000; i < n && rec + i < len; i++)
                    seg[rec + i] = (unsigned char)lcg(&x);
                break;
            case 1: memset(seg + rec + 4, 0, 4); break;
            case 2: {
                uint32_t claim = (uint32_t)(len - rec - RT__REC_HDR - lcg(&x) % 64);
                for (int i = 0; i < 4; i++)
                    seg[rec + i] = (unsigned char)(claim >> (8 * i));
                break;
            }
            case 3: seg[rec + RT__REC_HDR + 1 + lcg(&x) % 20] ^= 0x10; break;
            case 4: /* torn: the rest never written */
                if (rec > len / 2)
                    len = rec + 1 + lcg(&x) % 40;
                break;
            }
        }
        size_t nwant = walk_plain(seg, len, want), skips;
        size_t ngot = walk_scan(seg, len, got, &skips);
        ck_assert_uint_ge(skips, 1);
        ck_assert_uint_lt(nwant, intact); /* damage lost records... */
        ck_assert_uint_gt(nwant, 0);      /* ...not all of them */
        ck_assert_uint_eq(ngot, nwant);
        for (size_t i = 0; i < nwant; i++)
            ck_assert_uint_eq(got[i], want[i]);
    }
    free(seg);
    free(want);
    free(got);
    free(at);
}
END_TEST

static double cpu_seconds(void)
{
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* Damage crafted to be expensive: 1 MiB of bytes where every 8th offset
 * reads as a MSG header claiming 6 MiB, and then every other record of an
 * 8 MiB segment claiming the rest of it. Searched with a CRC of what each
 * offset claims (as before), this took minutes of CPU (2.5 min here);
 * with CRC checkpoints it is a few times an intact segment's scan. */
START_TEST(crafted_damage_is_skipped_in_linear_time)
{
    size_t cap = 8 << 20, crafted = 1 << 20;
    unsigned char *seg = malloc(cap);
    size_t *at = malloc(cap / 16 * sizeof *at),
           *got = malloc(cap / 16 * sizeof *got); /* records are 24 bytes or more */
    ck_assert(seg && at && got);
    size_t nat, len = fill(seg, cap, 99, 0, at, &nat); /* small records: many of them */
    ck_assert_uint_gt(nat, 100000);
    static const unsigned char header[8] = {0x01, 0x01, 0x60, 0x00, 0x01, 0x00, 0x00, 0x00}; /* len 0x600101 */
    for (size_t i = 0; i + 8 <= crafted; i += 8)
        memcpy(seg + i, header, 8);
    size_t first = 0, expect = 0;
    while (at[first] < crafted)
        first++;
    for (size_t i = first; i < nat; i++) {
        if ((i - first) % 2) {
            uint32_t claim = (uint32_t)(len - at[i] - RT__REC_HDR);
            for (int b = 0; b < 4; b++)
                seg[at[i] + b] = (unsigned char)(claim >> (8 * b));
        } else {
            expect++;
        }
    }
    double t0 = cpu_seconds();
    size_t skips, n = walk_scan(seg, len, got, &skips);
    double took = cpu_seconds() - t0;
    ck_assert_uint_eq(n, expect); /* every record left whole, and nothing else */
    for (size_t i = 0; i < n; i++)
        ck_assert_uint_eq(got[i], at[first + 2 * i]);
    ck_assert_uint_ge(skips, expect - 1);
    ck_assert_msg(took < 5.0, "walking 8 MiB of crafted damage took %.2f s of CPU", took);
    free(seg);
    free(at);
    free(got);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("rt_logfmt");
    TCase *tc = tcase_create("records");
    tcase_set_timeout(tc, 60); /* the walks of damaged segments, under sanitizers */
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
    tcase_add_test(tc, padding_the_store_never_writes_is_refused);
    tcase_add_test(tc, a_damaged_segment_gives_the_records_a_plain_search_gives);
    tcase_add_test(tc, crafted_damage_is_skipped_in_linear_time);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
