/* frames.c — checks every performative a client sends before proton reads it.
 *
 * Proton's engine decodes leniently: an open whose container-id is a
 * number, an attach whose handle is a string, are taken as defaults, and
 * some undecodable frames end the connection without a word. Plexus wants
 * every bad frame answered with amqp:decode-error (or framing-error) and a
 * closed socket, so the connection runs the bytes it reads through this
 * check first: it follows the framing (protocol headers, frame sizes), has
 * proton's own decoder decode each performative (never a payload), and
 * compares field types with the AMQP 1.0 definitions (part 2.7 and 5.3).
 * Performatives split across reads are gathered in a small buffer; the
 * common case, a whole frame in one read, is checked in place.
 */
#include <errno.h>
#include <proton/codec.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "amqp/amqp_internal.h"

enum { PH_HEADER, PH_FRAMES, PH_OFF };

/* Field kinds: what a field may hold besides null. */
enum { F_END, F_UINT, F_USHORT, F_UBYTE, F_ULONG, F_BOOL, F_STRING, F_SYMBOL, F_SYMBOLS, F_BINARY, F_MAP, F_DESC };
#define MAND 0x80 /* the field must be there and not null */

typedef struct perf_def {
    uint64_t code;
    const char *name;
    bool sasl;          /* a SASL frame (type 1) */
    bool from_client;   /* clients may send it */
    uint8_t fields[16]; /* F_END-terminated */
} perf_def;

static const perf_def defs[] = {
    {0x10, "open", false, true,
     {F_STRING | MAND, F_STRING, F_UINT, F_USHORT, F_UINT, F_SYMBOLS, F_SYMBOLS, F_SYMBOLS, F_SYMBOLS, F_MAP}},
    {0x11, "begin", false, true,
     {F_USHORT, F_UINT | MAND, F_UINT | MAND, F_UINT | MAND, F_UINT, F_SYMBOLS, F_SYMBOLS, F_MAP}},
    {0x12, "attach", false, true,
     {F_STRING | MAND, F_UINT | MAND, F_BOOL | MAND, F_UBYTE, F_UBYTE, F_DESC, F_DESC, F_MAP, F_BOOL, F_UINT,
      F_ULONG, F_SYMBOLS, F_SYMBOLS, F_MAP}},
    {0x13, "flow", false, true,
     {F_UINT, F_UINT | MAND, F_UINT | MAND, F_UINT | MAND, F_UINT, F_UINT, F_UINT, F_UINT, F_BOOL, F_BOOL, F_MAP}},
    {0x14, "transfer", false, true,
     {F_UINT | MAND, F_UINT, F_BINARY, F_UINT, F_BOOL, F_BOOL, F_UBYTE, F_DESC, F_BOOL, F_BOOL, F_BOOL}},
    {0x15, "disposition", false, true, {F_BOOL | MAND, F_UINT | MAND, F_UINT, F_BOOL, F_DESC, F_BOOL}},
    {0x16, "detach", false, true, {F_UINT | MAND, F_BOOL, F_DESC}},
    {0x17, "end", false, true, {F_DESC}},
    {0x18, "close", false, true, {F_DESC}},
    {0x40, "sasl-mechanisms", true, false, {F_SYMBOLS | MAND}},
    {0x41, "sasl-init", true, true, {F_SYMBOL | MAND, F_BINARY, F_STRING}},
    {0x42, "sasl-challenge", true, false, {F_BINARY | MAND}},
    {0x43, "sasl-response", true, true, {F_BINARY | MAND}},
    {0x44, "sasl-outcome", true, false, {F_UBYTE | MAND, F_BINARY}},
};

static const char *const kind_names[] = {"", "uint", "ushort", "ubyte", "ulong", "boolean", "string",
                                         "symbol", "symbol or symbol array", "binary", "map", "described value"};

static const perf_def *find_def(pn_data_t *d)
{
    uint64_t code = 0;
    if (pn_data_type(d) == PN_ULONG) {
        code = pn_data_get_ulong(d);
    } else if (pn_data_type(d) == PN_SYMBOL) {
        /* "amqp:open:list" and friends */
        pn_bytes_t s = pn_data_get_symbol(d);
        for (size_t i = 0; i < sizeof defs / sizeof defs[0]; i++) {
            char want[48];
            snprintf(want, sizeof want, "amqp:%s:list", defs[i].name);
            if (s.size == strlen(want) && !memcmp(s.start, want, s.size))
                return &defs[i];
        }
        return NULL;
    }
    for (size_t i = 0; i < sizeof defs / sizeof defs[0]; i++)
        if (defs[i].code == code)
            return &defs[i];
    return NULL;
}

static bool kind_ok(pn_data_t *d, int kind)
{
    pn_type_t t = pn_data_type(d);
    switch (kind) {
    case F_UINT: return t == PN_UINT;
    case F_USHORT: return t == PN_USHORT;
    case F_UBYTE: return t == PN_UBYTE;
    case F_ULONG: return t == PN_ULONG;
    case F_BOOL: return t == PN_BOOL;
    case F_STRING: return t == PN_STRING;
    case F_SYMBOL: return t == PN_SYMBOL;
    case F_SYMBOLS: return t == PN_SYMBOL || (t == PN_ARRAY && pn_data_get_array_type(d) == PN_SYMBOL);
    case F_BINARY: return t == PN_BINARY;
    case F_MAP: return t == PN_MAP;
    case F_DESC: return t == PN_DESCRIBED;
    }
    return false;
}

/* Checks the performative decoded into d. 0, or -EBADMSG with a reason. */
static int check(pn_data_t *d, bool sasl, char *err, size_t len)
{
    pn_data_rewind(d);
    if (!pn_data_next(d) || pn_data_type(d) != PN_DESCRIBED) {
        snprintf(err, len, "a frame must hold a described performative");
        return -EBADMSG;
    }
    pn_data_enter(d);
    pn_data_next(d);
    const perf_def *def = find_def(d);
    if (!def) {
        snprintf(err, len, "unknown performative");
        return -EBADMSG;
    }
    if (def->sasl != sasl) {
        snprintf(err, len, "%s in a %s frame", def->name, sasl ? "SASL" : "AMQP");
        return -EBADMSG;
    }
    if (!def->from_client) {
        snprintf(err, len, "%s is not sent by clients", def->name);
        return -EBADMSG;
    }
    if (!pn_data_next(d) || pn_data_type(d) != PN_LIST) {
        snprintf(err, len, "%s: its fields must be a list", def->name);
        return -EBADMSG;
    }
    size_t n = pn_data_get_list(d);
    pn_data_enter(d);
    for (size_t i = 0; def->fields[i] != F_END; i++) {
        int kind = def->fields[i] & ~MAND;
        bool present = i < n && pn_data_next(d) && pn_data_type(d) != PN_NULL;
        if (!present) {
            if (def->fields[i] & MAND) {
                snprintf(err, len, "%s: field %zu is mandatory", def->name, i + 1);
                return -EBADMSG;
            }
            continue;
        }
        if (!kind_ok(d, kind)) {
            snprintf(err, len, "%s: field %zu must be a %s", def->name, i + 1, kind_names[kind]);
            return -EBADMSG;
        }
    }
    return 0;
}

/* Decodes and checks one performative at p. >0: its encoded size; 0: more
 * bytes needed; <0: bad (err says why). */
static ssize_t check_at(amqp__fv *v, const char *p, size_t n, bool last, char *err, size_t len)
{
    if (!v->data && !(v->data = pn_data(16))) {
        snprintf(err, len, "out of memory");
        return -ENOMEM;
    }
    pn_data_clear(v->data);
    /* Sizes first (encoding.c): proton's transport must read the bytes as
     * pn_data_decode does, and a huge count must not be built. */
    ssize_t size = amqp__enc_size(p, n);
    if (size == 0 && !last)
        return 0;
    ssize_t used = size > 0 ? pn_data_decode(v->data, p, (size_t)size) : PN_ERR;
    if (used <= 0 || used != size) {
        snprintf(err, len, "the performative cannot be decoded");
        return -EBADMSG;
    }
    int rc = check(v->data, v->sasl, err, len);
    return rc < 0 ? rc : used;
}

void amqp__fv_init(amqp__fv *v, uint32_t max_frame)
{
    memset(v, 0, sizeof *v);
    v->max_frame = max_frame;
}

void amqp__fv_free(amqp__fv *v)
{
    if (v->data)
        pn_data_free(v->data);
    free(v->pbuf);
    v->data = NULL;
    v->pbuf = NULL;
}

/* The 8 bytes of a protocol header: SASL or AMQP 1.0.0; anything else is
 * left to proton, which answers with its own header and closes. */
static void on_header(amqp__fv *v, const uint8_t *h)
{
    if (memcmp(h, "AMQP", 4) != 0 || (h[4] != 0 && h[4] != 3) || h[5] != 1 || h[6] != 0 || h[7] != 0) {
        v->phase = PH_OFF;
        return;
    }
    v->sasl = h[4] == 3;
    v->phase = PH_FRAMES;
    v->hlen = 0;
}

int amqp__fv_feed(amqp__fv *v, const char *p, size_t n, const char **cond, char *err, size_t len)
{
    *cond = "amqp:decode-error";
    while (n && v->phase != PH_OFF) {
        if (v->hlen < 8) { /* a protocol header or a frame header */
            size_t k = (size_t)(8 - v->hlen) < n ? (size_t)(8 - v->hlen) : n;
            memcpy(v->hdr + v->hlen, p, k);
            v->hlen += (uint8_t)k;
            p += k;
            n -= k;
            if (v->hlen < 8)
                return 0;
            if (v->phase == PH_HEADER || !memcmp(v->hdr, "AMQP", 4)) {
                on_header(v, v->hdr);
                continue;
            }
            uint32_t size = (uint32_t)v->hdr[0] << 24 | (uint32_t)v->hdr[1] << 16 | (uint32_t)v->hdr[2] << 8 | v->hdr[3];
            uint32_t doff = v->hdr[4];
            *cond = "amqp:connection:framing-error";
            if (size < 8 || doff < 2 || doff * 4 > size) {
                snprintf(err, len, "malformed frame header (size %u, data offset %u)", size, doff);
                return -EBADMSG;
            }
            if (v->max_frame && size > v->max_frame) {
                snprintf(err, len, "frame of %u bytes exceeds max-frame-size %u", size, v->max_frame);
                return -EMSGSIZE;
            }
            if (v->hdr[5] != (v->sasl ? 1 : 0)) {
                snprintf(err, len, "frame type %u where %s frames are expected", v->hdr[5], v->sasl ? "SASL" : "AMQP");
                return -EBADMSG;
            }
            *cond = "amqp:decode-error";
            v->skip = doff * 4 - 8;
            v->body = size - doff * 4;
            v->checked = v->body == 0; /* an empty frame: a heartbeat */
            v->plen = 0;
            continue; /* a read that ends with the header has no body to check yet */
        }
        if (v->skip) { /* extended header */
            size_t k = v->skip < n ? (size_t)v->skip : n;
            v->skip -= (uint32_t)k;
            p += k;
            n -= k;
            continue;
        }
        if (!v->checked) {
            size_t avail = v->body < n ? v->body : n;
            ssize_t used;
            if (!v->plen) {
                used = check_at(v, p, avail, avail == v->body, err, len);
                if (used < 0)
                    return (int)used;
                if (used == 0) { /* split: gather it */
                    if (avail > v->pcap) {
                        char *nb = realloc(v->pbuf, v->body);
                        if (!nb)
                            return -ENOMEM;
                        v->pbuf = nb;
                        v->pcap = v->body;
                    }
                    memcpy(v->pbuf, p, avail);
                    v->plen = avail;
                    used = (ssize_t)avail;
                }
            } else {
                if (v->plen + avail > v->pcap) {
                    char *nb = realloc(v->pbuf, v->plen + v->body);
                    if (!nb)
                        return -ENOMEM;
                    v->pbuf = nb;
                    v->pcap = v->plen + v->body;
                }
                memcpy(v->pbuf + v->plen, p, avail);
                ssize_t r = check_at(v, v->pbuf, v->plen + avail, avail == v->body, err, len);
                if (r < 0)
                    return (int)r;
                if (r == 0) {
                    v->plen += avail;
                    used = (ssize_t)avail;
                } else {
                    used = r - (ssize_t)v->plen; /* of this read's bytes */
                    v->plen = 0;
                    v->checked = true;
                }
            }
            if (used > 0 && !v->plen)
                v->checked = true;
            v->body -= (uint32_t)used;
            p += used;
            n -= (size_t)used;
            if (!v->body)
                v->hlen = 0; /* next frame */
            continue;
        }
        size_t k = v->body < n ? v->body : n; /* payload: not ours to look at */
        v->body -= (uint32_t)k;
        p += k;
        n -= k;
        if (!v->body)
            v->hlen = 0;
    }
    return 0;
}
