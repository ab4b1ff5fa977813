/* logfmt.c — the on-disk form of a durable queue's log.
 *
 * A queue's log is a directory of segment files, each a 16-byte header and
 * then records. Every record carries its length and a CRC-32 of its
 * payload, so a torn write (a crash mid-append) or a flipped bit is found
 * when the log is read, never served as a message. Integers are
 * little-endian; nothing is aligned (records are read with memcpy).
 *
 *   segment header   "PLXLOG01" | u32 segno | u32 crc32 of the 12 bytes before
 *   record           u32 len | u32 crc32(payload) | payload (len bytes)
 *   payload          u8 type, then by type:
 *     MSG     u8 flags (1: has a key) | u16 rkey_len | u32 delivery_count | u64 seq |
 *             i64 expires (ms since the epoch, 0: never) | rkey | message
 *     ACK     3 pad | u32 n | n x u64 seq          (settled: gone for good)
 *     DCOUNT  3 pad | u32 delivery_count | u64 seq (returned, counted again)
 *     MARK    7 pad | u64 mark | u64 next_seq      (see qlog.c)
 *
 * Padding is written as zeros. The CRC is zlib's crc32: a maintained,
 * vectorised implementation.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "routing/rt_internal.h"

#define MSG_HAS_RKEY 1 /* MSG flags: a routing key follows (it may be empty) */

static const char magic[8] = {'P', 'L', 'X', 'L', 'O', 'G', '0', '1'};

static void put32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static void put64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static uint32_t get32(const unsigned char *p)
{
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static uint64_t get64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static uint32_t crc(uint32_t c, const void *p, size_t n)
{
    /* zlib takes uInt lengths: feed big buffers in pieces */
    const unsigned char *b = p;
    while (n) {
        uInt k = n > (1u << 30) ? 1u << 30 : (uInt)n;
        c = (uint32_t)crc32(c, b, k);
        b += k;
        n -= k;
    }
    return c;
}

void rt__seg_header(unsigned char out[RT__SEG_HDR], uint32_t segno)
{
    memcpy(out, magic, 8);
    put32(out + 8, segno);
    put32(out + 12, crc(0, out, 12));
}

int rt__seg_header_check(const unsigned char *buf, size_t len, uint32_t *segno)
{
    if (len < RT__SEG_HDR || memcmp(buf, magic, 8) != 0 || get32(buf + 12) != crc(0, buf, 12))
        return -EBADMSG;
    *segno = get32(buf + 8);
    return 0;
}

size_t rt__rec_msg_size(size_t rkey_len, size_t msg_len) { return RT__REC_HDR + RT__MSG_FIXED + rkey_len + msg_len; }
size_t rt__rec_ack_size(uint32_t n) { return RT__REC_HDR + 8 + (size_t)n * 8; }
size_t rt__rec_dcount_size(void) { return RT__REC_HDR + 16; }
size_t rt__rec_mark_size(void) { return RT__REC_HDR + 24; }

/* The record header: length and CRC of the payload that follows. */
static void seal(unsigned char *rec, size_t payload_len, uint32_t c)
{
    put32(rec, (uint32_t)payload_len);
    put32(rec + 4, c);
}

size_t rt__rec_msg_head(unsigned char *out, uint64_t seq, uint32_t dc, int64_t expires, const char *rkey,
                        uint16_t rkey_len, const void *msg, uint32_t msg_len)
{
    unsigned char *p = out + RT__REC_HDR;
    p[0] = RT__REC_MSG;
    p[1] = rkey ? MSG_HAS_RKEY : 0;
    p[2] = (unsigned char)rkey_len;
    p[3] = (unsigned char)(rkey_len >> 8);
    put32(p + 4, dc);
    put64(p + 8, seq);
    put64(p + 16, (uint64_t)expires);
    if (rkey_len)
        memcpy(p + RT__MSG_FIXED, rkey, rkey_len);
    size_t head = RT__MSG_FIXED + rkey_len;
    seal(out, head + msg_len, crc(crc(0, p, head), msg, msg_len));
    return RT__REC_HDR + head;
}

size_t rt__rec_ack(unsigned char *out, const uint64_t *seqs, uint32_t n)
{
    unsigned char *p = out + RT__REC_HDR;
    memset(p, 0, 4);
    p[0] = RT__REC_ACK;
    put32(p + 4, n);
    for (uint32_t i = 0; i < n; i++)
        put64(p + 8 + 8 * i, seqs[i]);
    size_t len = 8 + (size_t)n * 8;
    seal(out, len, crc(0, p, len));
    return RT__REC_HDR + len;
}

size_t rt__rec_dcount(unsigned char *out, uint64_t seq, uint32_t dc)
{
    unsigned char *p = out + RT__REC_HDR;
    memset(p, 0, 4);
    p[0] = RT__REC_DCOUNT;
    put32(p + 4, dc);
    put64(p + 8, seq);
    seal(out, 16, crc(0, p, 16));
    return RT__REC_HDR + 16;
}

size_t rt__rec_mark(unsigned char *out, uint64_t mark, uint64_t next_seq)
{
    unsigned char *p = out + RT__REC_HDR;
    memset(p, 0, 8);
    p[0] = RT__REC_MARK;
    put64(p + 8, mark);
    put64(p + 16, next_seq);
    seal(out, 24, crc(0, p, 24));
    return RT__REC_HDR + 24;
}

/* Everything about the record at buf but its CRC. Cheap, so the search for
 * the next record after damage turns most offsets down before paying for a
 * CRC; and strict, so that it accepts only what the store writes (padding
 * is written as zeros). */
static ssize_t shape(const unsigned char *buf, size_t avail, rt__rec *r)
{
    if (avail < RT__REC_HDR)
        return 0;
    uint32_t len = get32(buf);
    if (len == 0 || len > avail - RT__REC_HDR)
        return len == 0 ? -EBADMSG : 0; /* zeros (preallocated, never written) are not a record */
    const unsigned char *p = buf + RT__REC_HDR;
    if (p[0] < RT__REC_MSG || p[0] > RT__REC_MARK)
        return -EBADMSG; /* first, as most offsets in damage fail here */
    memset(r, 0, sizeof *r);
    r->type = p[0];
    switch (r->type) {
    case RT__REC_MSG:
        if (len < RT__MSG_FIXED)
            return -EBADMSG;
        r->rkey_len = (uint16_t)(p[2] | p[3] << 8);
        if (RT__MSG_FIXED + (size_t)r->rkey_len > len)
            return -EBADMSG;
        if ((p[1] & ~MSG_HAS_RKEY) || (!(p[1] & MSG_HAS_RKEY) && r->rkey_len))
            return -EBADMSG; /* flags, or key bytes without a key: the store never writes them */
        r->dc = get32(p + 4);
        r->seq = get64(p + 8);
        r->expires = (int64_t)get64(p + 16);
        r->rkey = p[1] & MSG_HAS_RKEY ? (const char *)p + RT__MSG_FIXED : NULL;
        r->msg = p + RT__MSG_FIXED + r->rkey_len;
        r->msg_len = len - RT__MSG_FIXED - r->rkey_len;
        break;
    case RT__REC_ACK:
        if (len < 8 || p[1] || p[2] || p[3])
            return -EBADMSG;
        r->n = get32(p + 4);
        if ((size_t)len != 8 + (size_t)r->n * 8)
            return -EBADMSG;
        r->acks = p + 8;
        break;
    case RT__REC_DCOUNT:
        if (len != 16 || p[1] || p[2] || p[3])
            return -EBADMSG;
        r->dc = get32(p + 4);
        r->seq = get64(p + 8);
        break;
    case RT__REC_MARK:
        if (len != 24 || get64(p) != RT__REC_MARK)
            return -EBADMSG; /* the type byte, then seven zeros */
        r->mark = get64(p + 8);
        r->next_seq = get64(p + 16);
        break;
    default: return -EBADMSG;
    }
    return (ssize_t)(RT__REC_HDR + len);
}

ssize_t rt__rec_decode(const unsigned char *buf, size_t avail, rt__rec *r)
{
    ssize_t n = shape(buf, avail, r);
    if (n > 0 && crc(0, buf + RT__REC_HDR, (size_t)n - RT__REC_HDR) != get32(buf + 4))
        return -EBADMSG;
    return n;
}

/* Segment scans. zlib's CRC-32 is linear: with P(i) the CRC of the first i
 * bytes, the CRC of bytes [a, b) is P(b) ^ op(b - a)(P(a)), where op(n) is
 * zlib's combine operator for n bytes (crc32_combine_gen/_op). Keeping P
 * at every SPAN_K bytes (4 bytes per SPAN_K: 256 KiB for a 16 MiB segment,
 * built once per damaged segment in one pass), and op for every distance
 * between checkpoints as two small tables, makes any span's CRC three
 * operator applications and at most 2 SPAN_K bytes of plain CRC. */
#define SPAN_K 256
#define OPS RT__SEGSCAN_OPS

void rt__segscan_init(rt__segscan *sc, const unsigned char *buf, size_t len)
{
    sc->buf = buf;
    sc->len = len;
    sc->pre = NULL;
    sc->built = false;
}

void rt__segscan_free(rt__segscan *sc)
{
    free(sc->pre);
    sc->pre = NULL;
    sc->built = false;
}

static void checkpoints(rt__segscan *sc)
{
    sc->built = true;
    size_t nk = sc->len / SPAN_K + 1;
    sc->pre = malloc(nk * sizeof *sc->pre);
    if (!sc->pre)
        return; /* plain CRCs: slower on damage, still right */
    sc->pre[0] = 0;
    for (size_t j = 1; j < nk; j++)
        sc->pre[j] = crc(sc->pre[j - 1], sc->buf + (j - 1) * SPAN_K, SPAN_K);
    /* op(jK) = op((j % OPS)K) after op((j / OPS) OPS K): two small tables */
    sc->ops[0] = sc->ops[OPS] = (uint32_t)crc32_combine_gen(0);
    sc->ops[1] = (uint32_t)crc32_combine_gen(SPAN_K);
    sc->ops[OPS + 1] = (uint32_t)crc32_combine_gen((z_off_t)SPAN_K * OPS);
    for (size_t j = 2; j < OPS; j++) {
        sc->ops[j] = (uint32_t)crc32_combine_op(sc->ops[j - 1], 0, sc->ops[1]);
        sc->ops[OPS + j] = (uint32_t)crc32_combine_op(sc->ops[OPS + j - 1], 0, sc->ops[OPS + 1]);
    }
}

/* The CRC of buf[s, e). */
static uint32_t span_crc(const rt__segscan *sc, size_t s, size_t e)
{
    size_t a = (s + SPAN_K - 1) / SPAN_K, b = e / SPAN_K; /* the checkpoints inside the span */
    size_t d = b - a;
    if (!sc->pre || e - s <= 4 * SPAN_K || a >= b || d / OPS >= OPS)
        return crc(0, sc->buf + s, e - s);
    uLong op = crc32_combine_op(sc->ops[d % OPS], 0, sc->ops[OPS + d / OPS]);  /* op((b - a)K) */
    uint32_t mid = sc->pre[b] ^ (uint32_t)crc32_combine_op(sc->pre[a], 0, op); /* CRC of the checkpointed middle */
    uint32_t c = crc(0, sc->buf + s, a * SPAN_K - s);
    c = (uint32_t)crc32_combine_op(c, mid, op);
    return crc(c, sc->buf + b * SPAN_K, e - b * SPAN_K);
}

ssize_t rt__segscan_decode(rt__segscan *sc, size_t pos, rt__rec *r)
{
    if (pos >= sc->len)
        return 0;
    ssize_t n = shape(sc->buf + pos, sc->len - pos, r);
    /* before any damage a record is checked the plain way (its bytes are
     * read once anyway); after it, in constant time, so a run of records
     * that each claim most of the segment cannot make the scan quadratic */
    if (n > 0 && span_crc(sc, pos + RT__REC_HDR, pos + (size_t)n) != get32(sc->buf + pos + 4))
        return -EBADMSG;
    return n;
}

size_t rt__segscan_resync(rt__segscan *sc, size_t pos)
{
    rt__rec r;
    for (size_t q = pos + 1; q + RT__REC_HDR < sc->len; q++) { /* a record has a payload byte at least */
        unsigned type = sc->buf[q + RT__REC_HDR];
        if (type < RT__REC_MSG || type > RT__REC_MARK)
            continue; /* what shape() would say, in fewer steps: most damaged offsets end here */
        ssize_t n = shape(sc->buf + q, sc->len - q, &r);
        if (n <= 0)
            continue;
        if (!sc->built)
            checkpoints(sc);
        if (span_crc(sc, q + RT__REC_HDR, q + (size_t)n) == get32(sc->buf + q + 4))
            return q;
    }
    return sc->len;
}

uint64_t rt__rec_ack_at(const rt__rec *r, uint32_t i) { return get64(r->acks + 8 * (size_t)i); }
