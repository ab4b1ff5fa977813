/* fuzz_logfmt.c — feeds a durable queue's log segment, as a damaged disk
 * may hand it back, to the store's record decoder (routing/logfmt.c),
 * walking it as recovery does: record after record, and past damage one
 * byte at a time.
 *
 * Input: a settings byte (bit 0: give every record a correct CRC first,
 * so the fuzzer reaches the checks behind the CRC instead of stopping at
 * it), then the segment. Checked: a decoded record lies within the bytes
 * given; its fields are consistent; encoding it again with the store's
 * own encoders gives back the same bytes, so nothing is accepted that the
 * store would not have written; and the walk recovery makes (rt__segscan,
 * CRC checkpoints after damage) finds exactly the records this plain one
 * finds.
 */
#include <errno.h>
#include <string.h>
#include <zlib.h>

#include "routing/rt_internal.h"
#include "tests/fuzz/fuzz.h"

static uint32_t le32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put_le32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

/* Re-encodes r and compares it with the n bytes at rec. */
static void round_trip(const unsigned char *rec, size_t n, const rt__rec *r)
{
    unsigned char *out = calloc(1, n + 64);
    FUZZ_CHECK(out);
    size_t m = 0;
    switch (r->type) {
    case RT__REC_MSG:
        FUZZ_CHECK(r->msg + r->msg_len == rec + n);
        FUZZ_CHECK(r->rkey || !r->rkey_len); /* key bytes without a key: not the store's writing */
        FUZZ_CHECK(rt__rec_msg_size(r->rkey_len, r->msg_len) == n);
        m = rt__rec_msg_head(out, r->seq, r->dc, r->expires, r->rkey, r->rkey_len, r->msg, r->msg_len);
        memcpy(out + m, r->msg, r->msg_len);
        m += r->msg_len;
        FUZZ_CHECK(memcmp(out, rec, n) == 0);
        break;
    case RT__REC_ACK: {
        FUZZ_CHECK(rt__rec_ack_size(r->n) == n);
        uint64_t *seqs = malloc(((size_t)r->n + 1) * sizeof *seqs);
        FUZZ_CHECK(seqs);
        for (uint32_t i = 0; i < r->n; i++)
            seqs[i] = rt__rec_ack_at(r, i);
        m = rt__rec_ack(out, seqs, r->n);
        free(seqs);
        break;
    }
    case RT__REC_DCOUNT: m = rt__rec_dcount(out, r->seq, r->dc); break;
    case RT__REC_MARK: m = rt__rec_mark(out, r->mark, r->next_seq); break;
    default: FUZZ_CHECK(!"a record of unknown type was accepted");
    }
    FUZZ_CHECK(m == n);
    FUZZ_CHECK(memcmp(out, rec, n) == 0); /* padding too: the decoder takes only zeros */
    free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    size_t len = size - 1;
    unsigned char *buf = malloc(len ? len : 1);
    FUZZ_CHECK(buf);
    memcpy(buf, data + 1, len);
    uint32_t segno;
    if (rt__seg_header_check(buf, len, &segno) == 0) {
        unsigned char h[RT__SEG_HDR];
        rt__seg_header(h, segno);
        FUZZ_CHECK(memcmp(h, buf, RT__SEG_HDR) == 0);
    }
    if (data[0] & 1) { /* seal each record where its length says it ends */
        for (size_t pos = 0; pos + RT__REC_HDR <= len;) {
            uint32_t n = le32(buf + pos);
            if (!n || n > len - pos - RT__REC_HDR)
                break;
            put_le32(buf + pos + 4, (uint32_t)crc32(0, buf + pos + RT__REC_HDR, n));
            pos += RT__REC_HDR + n;
        }
    }
    size_t *found = malloc((len / (RT__REC_HDR + 1) + 1) * sizeof *found), nfound = 0;
    FUZZ_CHECK(found);
    for (size_t pos = 0; pos < len;) {
        rt__rec r;
        ssize_t n = rt__rec_decode(buf + pos, len - pos, &r);
        FUZZ_CHECK(n <= (ssize_t)(len - pos));
        if (n > 0) {
            FUZZ_CHECK(n >= RT__REC_HDR + 1);
            round_trip(buf + pos, (size_t)n, &r);
            found[nfound++] = pos;
            pos += (size_t)n;
        } else {
            FUZZ_CHECK(n == 0 || n == -EBADMSG);
            pos++; /* the plain search: the next offset where a record checks out */
        }
    }
    rt__segscan sc;
    rt__segscan_init(&sc, buf, len);
    size_t k = 0;
    for (size_t pos = 0; pos < len;) {
        rt__rec r;
        ssize_t n = rt__segscan_decode(&sc, pos, &r);
        if (n > 0) {
            FUZZ_CHECK(k < nfound && found[k] == pos);
            k++;
            pos += (size_t)n;
        } else {
            size_t next = rt__segscan_resync(&sc, pos);
            FUZZ_CHECK(next > pos && next <= len);
            pos = next;
        }
    }
    FUZZ_CHECK(k == nfound);
    rt__segscan_free(&sc);
    free(found);
    free(buf);
    return 0;
}
