/* encoding.c — holds an AMQP 1.0 encoded value to the sizes it declares.
 *
 * Proton has two decoders that disagree on bad sizes: pn_data_decode, the
 * frame checker's, reads a list's or map's elements by their count and
 * does not hold them to the byte size the list declares, while the
 * transport's own performative decoder does, and reads a list that is
 * short of its fields as missing them (a sasl-init with no mechanism, an
 * attach with no handle). A frame that is one thing to the checker and
 * another to proton defeats the check, so the checker first walks the
 * bytes here: every compound's and array's declared size must be exactly
 * what its elements take (part 1.6 of the spec gives each type's width).
 * Counts never drive a loop by themselves, so a small frame declaring 2^32
 * elements costs nothing (pn_data_decode would build them).
 */
#include <errno.h>

#include "amqp/amqp_internal.h"

#define SHORT (-1)   /* the bytes end inside the value */
#define BAD (-2)     /* sizes that do not add up, or an unknown type */
#define MAX_DEPTH 64 /* nesting: deeper than any performative needs */

static ssize_t item(const uint8_t *p, size_t n, int depth);

static size_t get(const uint8_t *p, size_t w)
{
    return w == 1 ? p[0] : (size_t)p[0] << 24 | (size_t)p[1] << 16 | (size_t)p[2] << 8 | p[3];
}

/* The fixed width of a constructor's values, or -1 if it has none. */
static int fixed_width(uint8_t code)
{
    static const int widths[16] = {-1, -1, -1, -1, 0, 1, 2, 4, 8, 16, -1, -1, -1, -1, -1, -1};
    return widths[code >> 4];
}

/* The bytes of the value of constructor code at p (after the code). */
static ssize_t body(uint8_t code, const uint8_t *p, size_t n, int depth)
{
    if (depth > MAX_DEPTH)
        return BAD;
    int fw = fixed_width(code);
    if (fw >= 0)
        return n >= (size_t)fw ? fw : SHORT;
    unsigned cat = code >> 4, sub = code & 0x0f;
    if (cat < 0xa || (cat <= 0xb && sub != 0 && sub != 1 && sub != 3) || (cat >= 0xc && sub > (cat >= 0xe ? 0u : 1u)))
        return BAD;                /* binary, string, symbol; lists and maps; arrays */
    size_t sw = (cat & 1) ? 4 : 1; /* 0xa, 0xc, 0xe: one-byte sizes; 0xb, 0xd, 0xf: four */
    if (n < sw)
        return SHORT;
    size_t size = get(p, sw);
    if (cat <= 0xb) /* binary, string, symbol */
        return size <= n - sw ? (ssize_t)(sw + size) : SHORT;
    if (size < sw)
        return BAD; /* the size counts the count field */
    if (size > n - sw)
        return SHORT;
    const uint8_t *q = p + sw;
    size_t left = size, count = get(q, sw);
    q += sw;
    left -= sw;
    if (cat == 0xc || cat == 0xd) {
        if (count > left)
            return BAD; /* every element takes a byte at least */
        for (size_t i = 0; i < count; i++) {
            ssize_t k = item(q, left, depth + 1);
            if (k < 0)
                return BAD; /* within the declared size: short is bad */
            q += k;
            left -= (size_t)k;
        }
        return left ? BAD : (ssize_t)(sw + size);
    }
    /* An array: one constructor (maybe described), then count bare values. */
    if (!left)
        return BAD;
    uint8_t ec = *q++;
    left--;
    if (ec == 0x00) {
        ssize_t k = item(q, left, depth + 1); /* the descriptor */
        if (k < 0 || (size_t)k >= left)
            return BAD;
        q += k;
        left -= (size_t)k;
        ec = *q++;
        left--;
    }
    int ew = fixed_width(ec);
    if (ew == 0) /* nulls and the like carry no bytes: refused in bulk */
        return count == 0 && !left ? (ssize_t)(sw + size) : BAD;
    if (ew > 0)
        return count == left / (size_t)ew && left % (size_t)ew == 0 ? (ssize_t)(sw + size) : BAD;
    if (count > left)
        return BAD;
    for (size_t i = 0; i < count; i++) {
        ssize_t k = body(ec, q, left, depth + 1);
        if (k < 0)
            return BAD;
        q += k;
        left -= (size_t)k;
    }
    return left ? BAD : (ssize_t)(sw + size);
}

static ssize_t item(const uint8_t *p, size_t n, int depth)
{
    if (!n)
        return SHORT;
    if (depth > MAX_DEPTH)
        return BAD;
    if (p[0] == 0x00) { /* described: descriptor, then value */
        ssize_t d = item(p + 1, n - 1, depth + 1);
        if (d < 0)
            return d;
        ssize_t v = item(p + 1 + d, n - 1 - (size_t)d, depth + 1);
        return v < 0 ? v : 1 + d + v;
    }
    ssize_t b = body(p[0], p + 1, n - 1, depth);
    return b < 0 ? b : 1 + b;
}

ssize_t amqp__enc_size(const void *p, size_t n)
{
    ssize_t k = item(p, n, 0);
    return k == SHORT ? 0 : k == BAD ? -EBADMSG : k;
}
