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
 * It also follows the state machines the client drives (part 2.4-2.6):
 * open first and once, a begin on a free channel, frames on a channel
 * only while it has a session, attaches on a free handle, transfers,
 * flows and detaches only on attached handles, transfers only from the
 * sending end. Proton 0.37 lets some of these through (a second open or
 * begin, a reused handle, a transfer from a receiver) and names others
 * with conditions that are not the spec's. Performatives split across
 * reads are gathered in a small buffer; the common case, a whole frame in
 * one read, is checked in place.
 */
#include <errno.h>
#include <proton/codec.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "amqp/amqp_internal.h"

enum { PH_HEADER, PH_FRAMES };

#define MIN_MAX_FRAME 512 /* the smallest max-frame-size a peer may announce (2.7.1) */

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

/* A table, one entry a line: */
/* clang-format off */
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
/* clang-format on */

static const char *const kind_names[] = {
    "",       "uint", "ushort",         "ubyte", "ulong", "boolean", "string", "symbol", "symbol or symbol array",
    "binary", "map",  "described value"};

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

/* The values of a performative's numeric and boolean fields, by index. */
typedef struct perf_vals {
    uint32_t has; /* bit i: field i is there */
    uint64_t v[16];
} perf_vals;

static uint64_t number(pn_data_t *d)
{
    switch (pn_data_type(d)) {
    case PN_UINT: return pn_data_get_uint(d);
    case PN_USHORT: return pn_data_get_ushort(d);
    case PN_UBYTE: return pn_data_get_ubyte(d);
    case PN_ULONG: return pn_data_get_ulong(d);
    case PN_BOOL: return pn_data_get_bool(d);
    default: return 0;
    }
}

static int state(amqp__fcheck *v, const perf_def *def, const perf_vals *pv, const char **cond, char *err, size_t len);

/* Checks the performative decoded into v->data, then whether it may come
 * now. 0, or <0 with a condition and a reason. */
static int check(amqp__fcheck *v, const char **cond, char *err, size_t len)
{
    pn_data_t *d = v->data;
    bool sasl = v->sasl;
    *cond = "amqp:decode-error";
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
    perf_vals pv = {0};
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
        pv.has |= 1u << i;
        pv.v[i] = number(d);
    }
    return sasl ? 0 : state(v, def, &pv, cond, err, len);
}

/* Decodes and checks one performative at p. >0: its encoded size; 0: more
 * bytes needed; <0: bad (err says why). */
static ssize_t check_at(amqp__fcheck *v, const char *p, size_t n, bool last, const char **cond, char *err, size_t len)
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
    int rc = check(v, cond, err, len);
    return rc < 0 ? rc : used;
}

void amqp__fcheck_init(amqp__fcheck *v, uint32_t max_frame)
{
    memset(v, 0, sizeof *v);
    v->max_frame = max_frame;
    v->ends = SV_MAP_INIT(amqp__fcheck_end);
}

void amqp__fcheck_free(amqp__fcheck *v)
{
    if (v->data)
        pn_data_free(v->data);
    free(v->pbuf);
    sv_map_free(&v->ends);
    v->data = NULL;
    v->pbuf = NULL;
}

/* The 8 bytes of a protocol header. First SASL or AMQP 1.0; after SASL,
 * AMQP 1.0. Anything else is answered, as the spec's protocol negotiation
 * says (2.2), with the header Plexus would serve there, then a close: the
 * connection does that, on -EPROTONOSUPPORT; AMQP 0-9-1 as the first header
 * (v->amqp091) is handed to its own front end there instead (conn091.c). */
static int on_header(amqp__fcheck *v, const uint8_t *h)
{
    amqp__hdr_kind k = amqp__header_classify(h);
    bool first = v->phase == PH_HEADER;
    if (k == AMQP__HDR_AMQP || (first && k == AMQP__HDR_SASL)) {
        v->sasl = k == AMQP__HDR_SASL;
        v->phase = PH_FRAMES;
        v->hlen = 0;
        return 0;
    }
    memcpy(v->refused, h, 8);
    v->amqp091 = first && k == AMQP__HDR_AMQP091;
    memcpy(v->reply, first ? "AMQP\x03\x01\x00\x00" : "AMQP\x00\x01\x00\x00", 8);
    return -EPROTONOSUPPORT;
}

/* ------------------------------------------------------------- states */

static amqp__fcheck_end *end_get(amqp__fcheck *v, uint16_t ch, uint64_t handle_plus_1)
{
    return sv_map_get(&v->ends, (uint64_t)ch + 1, handle_plus_1);
}

/* Ends a session: it and its links are forgotten (the channel is free). */
static void end_session(amqp__fcheck *v, uint16_t ch)
{
    sv_map_del(&v->ends, (uint64_t)ch + 1, 0, NULL);
    for (uint32_t i = 0; i < v->ends.cap;) {
        amqp__fcheck_end *e = sv_map_at(&v->ends, i);
        if (e && e->k1 == (uint64_t)ch + 1) {
            sv_map_del(&v->ends, e->k1, e->k2, NULL); /* may move a later entry here: look again */
            v->nhandles--;
        } else {
            i++;
        }
    }
}

#define FAIL(c, ...)                                                                                                   \
    do {                                                                                                               \
        *cond = (c);                                                                                                   \
        snprintf(err, len, __VA_ARGS__);                                                                               \
        return -EPROTO;                                                                                                \
    } while (0)

/* Whether this performative may come now, from the client, on this
 * channel; and what it changes. Conditions: the spec's where it names one
 * (2.8.15-2.8.17), else amqp:illegal-state ("a frame that is not
 * permitted in the current state") or amqp:not-allowed for a channel with
 * no session (as proton names it). Every one closes the connection. */
static int state(amqp__fcheck *v, const perf_def *def, const perf_vals *pv, const char **cond, char *err, size_t len)
{
    uint16_t ch = (uint16_t)(v->hdr[6] << 8 | v->hdr[7]);
    uint64_t code = def->code;
    if (code == 0x10) { /* open */
        if (v->opened)
            FAIL("amqp:illegal-state", "a second open on an open connection");
        if ((pv->has & 1u << 2) && pv->v[2] < MIN_MAX_FRAME)
            FAIL("amqp:invalid-field", "open: max-frame-size %llu is below the minimum of %u",
                 (unsigned long long)pv->v[2], MIN_MAX_FRAME);
        v->opened = true;
        return 0;
    }
    if (code == 0x18) /* close: always allowed, proton answers it */
        return 0;
    if (!v->opened)
        FAIL("amqp:illegal-state", "%s before open", def->name);
    amqp__fcheck_end *ssn = end_get(v, ch, 0);
    if (code == 0x11) { /* begin */
        if (ssn)
            FAIL("amqp:illegal-state", "begin on channel %u, which already has a session", ch);
        /* A remote-channel (a reply to a begin of ours: Plexus sends none)
         * and a channel above channel-max are proton's to refuse. */
        if (!sv_map_put(&v->ends, (uint64_t)ch + 1, 0))
            FAIL("amqp:internal-error", "out of memory");
        return 0;
    }
    if (!ssn)
        FAIL("amqp:not-allowed", "%s on channel %u, which has no session", def->name, ch);
    if (code == 0x17) { /* end */
        end_session(v, ch);
        return 0;
    }
    if (code == 0x15) /* disposition: names deliveries, not links */
        return 0;
    /* attach, flow, transfer, detach: the handle */
    int hi = code == 0x13 ? 4 : code == 0x12 ? 1 : 0;
    if (!(pv->has & 1u << hi)) /* a flow for the session alone */
        return 0;
    uint64_t handle = pv->v[hi];
    amqp__fcheck_end *link = end_get(v, ch, handle + 1);
    if (code == 0x12) { /* attach */
        if (link)
            FAIL("amqp:session:handle-in-use", "attach: handle %llu is in use by a link still attached",
                 (unsigned long long)handle);
        if (v->max_handles && v->nhandles >= v->max_handles)
            FAIL("amqp:resource-limit-exceeded", "attach: more than %u links attached at once", v->max_handles);
        if (!(link = sv_map_put(&v->ends, (uint64_t)ch + 1, handle + 1)))
            FAIL("amqp:internal-error", "out of memory");
        link->receiver = pv->v[2] != 0;
        v->nhandles++;
        return 0;
    }
    if (!link)
        FAIL("amqp:session:unattached-handle", "%s on handle %llu, which is not attached", def->name,
             (unsigned long long)handle);
    if (code == 0x14 && link->receiver)
        FAIL("amqp:illegal-state", "transfer on handle %llu, a link on which the client receives",
             (unsigned long long)handle);
    if (code == 0x16) { /* detach: the handle is free again */
        sv_map_del(&v->ends, (uint64_t)ch + 1, handle + 1, NULL);
        v->nhandles--;
    }
    return 0;
}

int amqp__fcheck_feed(amqp__fcheck *v, const char *p, size_t n, const char **cond, char *err, size_t len)
{
    *cond = "amqp:decode-error";
    while (n) {
        if (v->hlen < 8) { /* a protocol header or a frame header */
            size_t k = (size_t)(8 - v->hlen) < n ? (size_t)(8 - v->hlen) : n;
            memcpy(v->hdr + v->hlen, p, k);
            v->hlen += (uint8_t)k;
            p += k;
            n -= k;
            if (v->hlen < 8)
                return 0;
            if (v->phase == PH_HEADER || (v->sasl && !memcmp(v->hdr, "AMQP", 4))) {
                int rc = on_header(v, v->hdr);
                if (rc < 0)
                    return rc;
                continue;
            }
            if (!memcmp(v->hdr, "AMQP", 4)) {
                *cond = "amqp:connection:framing-error";
                snprintf(err, len, "a protocol header where a frame was expected");
                return -EBADMSG;
            }
            uint32_t size =
                (uint32_t)v->hdr[0] << 24 | (uint32_t)v->hdr[1] << 16 | (uint32_t)v->hdr[2] << 8 | v->hdr[3];
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
            continue; /* the read may end here: nothing of the body to look at yet */
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
                used = check_at(v, p, avail, avail == v->body, cond, err, len);
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
                ssize_t r = check_at(v, v->pbuf, v->plen + avail, avail == v->body, cond, err, len);
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
