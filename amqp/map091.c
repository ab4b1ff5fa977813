/* map091.c — the one message model: AMQP 0-9-1 content (basic properties and
 * body) to the AMQP 1.0 message bytes Plexus keeps, and back for 0-9-1
 * deliveries, following RabbitMQ 4's documented conversions so messages look
 * the same to clients moving between the two brokers. The mapping table is
 * in DESIGN.md ("AMQP 0-9-1 message mapping", in the AMQP front end section).
 *
 * Both directions are direct encoders and decoders over the bytes (no
 * pn_data_t, no allocation beyond the rt_msg): a publish writes the sections
 * its properties need, then the head of one data section the body is copied
 * behind; a delivery's content header is read off the message's sections and
 * its body handed out as views of the data sections, never copied.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "amqp/amqp_internal.h"

enum {
    SEC_HEADER = 0x70,
    SEC_DELIVERY_ANN = 0x71,
    SEC_MESSAGE_ANN = 0x72,
    SEC_PROPERTIES = 0x73,
    SEC_APP_PROPS = 0x74,
    SEC_DATA = 0x75,
    SEC_SEQUENCE = 0x76,
    SEC_VALUE = 0x77,
    SEC_FOOTER = 0x78,
};

/* AMQP 1.0 constructors used here (part 1.6 of the spec). */
enum {
    C_NULL = 0x40,
    C_TRUE = 0x41,
    C_FALSE = 0x42,
    C_UINT0 = 0x43,
    C_ULONG0 = 0x44,
    C_LIST0 = 0x45,
    C_UBYTE = 0x50,
    C_BYTE = 0x51,
    C_SMALLUINT = 0x52,
    C_SMALLULONG = 0x53,
    C_SMALLINT = 0x54,
    C_SMALLLONG = 0x55,
    C_BOOL = 0x56,
    C_USHORT = 0x60,
    C_SHORT = 0x61,
    C_UINT = 0x70,
    C_INT = 0x71,
    C_FLOAT = 0x72,
    C_ULONG = 0x80,
    C_LONG = 0x81,
    C_DOUBLE = 0x82,
    C_TIMESTAMP = 0x83,
    C_UUID = 0x98,
    C_VBIN8 = 0xa0,
    C_STR8 = 0xa1,
    C_SYM8 = 0xa3,
    C_VBIN32 = 0xb0,
    C_STR32 = 0xb1,
    C_SYM32 = 0xb3,
    C_LIST8 = 0xc0,
    C_MAP8 = 0xc1,
    C_LIST32 = 0xd0,
    C_MAP32 = 0xd1,
    C_ARRAY8 = 0xe0,
    C_ARRAY32 = 0xf0,
};

/* The properties list's fields (1.0 spec 3.2.4). */
enum { P_MESSAGE_ID, P_USER_ID, P_TO, P_SUBJECT, P_REPLY_TO, P_CORRELATION_ID, P_CONTENT_TYPE,
       P_CONTENT_ENCODING, P_ABSOLUTE_EXPIRY, P_CREATION_TIME, P_GROUP_ID, P_NFIELDS };

static const char AMQP10_TYPE[] = "amqp-1.0"; /* basic.type of a body that is AMQP 1.0 encoded sections */
static const char QUEUES[] = "/queues/";

/* ------------------------------------------------------------ small helpers */

static bool name_is(const uint8_t *p, size_t n, const char *s) { return n == strlen(s) && memcmp(p, s, n) == 0; }
static bool is_x(const uint8_t *p, size_t n) { return n >= 2 && p[0] == 'x' && p[1] == '-'; }

/* Well-formed UTF-8 (no overlongs, no surrogates, at most U+10FFFF). */
static bool utf8_ok(const uint8_t *p, size_t n, bool nul_ok)
{
    size_t i = 0;
    while (i < n) {
        uint8_t c = p[i];
        if (c < 0x80) {
            if (!c && !nul_ok)
                return false;
            i++;
            continue;
        }
        size_t k = c >= 0xf0 ? 3 : c >= 0xe0 ? 2 : c >= 0xc2 ? 1 : 0;
        if (!k || c > 0xf4 || n - i <= k)
            return false;
        uint8_t c1 = p[i + 1];
        if ((c == 0xe0 && c1 < 0xa0) || (c == 0xed && c1 > 0x9f) || (c == 0xf0 && c1 < 0x90) || (c == 0xf4 && c1 > 0x8f))
            return false;
        for (size_t j = 1; j <= k; j++)
            if ((p[i + j] & 0xc0) != 0x80)
                return false;
        i += k + 1;
    }
    return true;
}

/* RabbitMQ's "shortstr" condition: under 256 bytes, UTF-8, no NUL. */
static bool shortstr_ok(const uint8_t *p, size_t n) { return n < 256 && utf8_ok(p, n, false); }

static int hexval(uint8_t c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* "urn:uuid:xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx" to 16 bytes. */
static bool urn_uuid(const uint8_t *p, size_t n, uint8_t out[16])
{
    if (n != 45 || memcmp(p, "urn:uuid:", 9) != 0)
        return false;
    p += 9;
    for (int i = 0, o = 0; i < 36;) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (p[i++] != '-')
                return false;
            continue;
        }
        int hi = hexval(p[i]), lo = hexval(p[i + 1]);
        if (hi < 0 || lo < 0)
            return false;
        out[o++] = (uint8_t)(hi << 4 | lo);
        i += 2;
    }
    return true;
}

static void uuid_urn(const uint8_t u[16], char out[46])
{
    static const char hex[] = "0123456789abcdef";
    memcpy(out, "urn:uuid:", 9);
    size_t o = 9;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[o++] = '-';
        out[o++] = hex[u[i] >> 4];
        out[o++] = hex[u[i] & 15];
    }
    out[o] = '\0';
}

/* Address characters left as they are: RFC 3986 unreserved and the
 * sub-delims and ':' '@' that amqp_addr_queue also leaves (the same address
 * a queue's name gets everywhere in Plexus). */
static bool addr_plain(uint8_t c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c && strchr("-._~!$&'()*+,;=:@", c));
}

static uint64_t be_get(const uint8_t *p, unsigned n)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

/* ============================================ 0-9-1 -> AMQP 1.0 (publish) */

/* A writer that only counts when p is NULL: the first pass sizes the
 * message, the second writes it into the rt_msg. */
typedef struct w10 {
    uint8_t *p;
    size_t len;
} w10;

static void w_put(w10 *w, const void *b, size_t n)
{
    if (w->p && n)
        memcpy(w->p + w->len, b, n);
    w->len += n;
}
static void w_u8(w10 *w, uint8_t v) { w_put(w, &v, 1); }
static void w_be(w10 *w, uint64_t v, unsigned n)
{
    uint8_t b[8];
    for (unsigned i = 0; i < n; i++)
        b[i] = (uint8_t)(v >> (8 * (n - 1 - i)));
    w_put(w, b, n);
}
static void w_section(w10 *w, uint8_t code)
{
    uint8_t b[3] = {0x00, C_SMALLULONG, code};
    w_put(w, b, 3);
}
/* Variable-width value: the one-byte size form when it fits. */
static void w_var(w10 *w, uint8_t code8, const uint8_t *p, size_t n)
{
    if (n <= 255) {
        w_u8(w, code8);
        w_u8(w, (uint8_t)n);
    } else {
        w_u8(w, (uint8_t)(code8 + 0x10)); /* a0 -> b0, a1 -> b1, a3 -> b3 */
        w_be(w, n, 4);
    }
    w_put(w, p, n);
}
/* Lists and maps are written in their 4-byte form and patched once their
 * elements are out: one pass, a few bytes more than the 1-byte form. */
static size_t w_open(w10 *w, uint8_t code)
{
    w_u8(w, code);
    size_t at = w->len;
    w_be(w, 0, 8);
    return at;
}
static void w_close(w10 *w, size_t at, uint32_t count)
{
    if (!w->p)
        return;
    uint64_t size = w->len - at - 4;
    for (int i = 0; i < 4; i++) {
        w->p[at + (size_t)i] = (uint8_t)(size >> (24 - 8 * i));
        w->p[at + 4 + (size_t)i] = (uint8_t)(count >> (24 - 8 * i));
    }
}

/* A field value's bytes read so far are checked by amqp91_table_check, so
 * every read below is within bounds; the reader still refuses to overrun. */
static const int64_t TS_MAX_S = INT64_MAX / 1000;

/* Whether a top-level header value has an AMQP 1.0 form: decimals do not
 * (1.0's decimals are IEEE 754-2008, 0-9-1's a scale and an integer), nor
 * timestamps past what milliseconds in an int64 hold. Nested, such values
 * become null so list positions keep. */
static bool v91_convertible(const amqp91__rd *r)
{
    if (r->end - r->p < 1)
        return false;
    if (r->p[0] == 'D')
        return false;
    if (r->p[0] == 'T')
        return r->end - r->p >= 9 && be_get(r->p + 1, 8) <= (uint64_t)TS_MAX_S;
    return true;
}

static void v91_to_10(amqp91__rd *r, w10 *w);

/* A table's content as a map with symbol keys (RabbitMQ's from_091). */
static void table_to_10(amqp91__rd *r, w10 *w)
{
    size_t at = w_open(w, C_MAP32);
    uint32_t count = 0;
    while (r->ok && r->p < r->end) {
        amqp91_bytes name = amqp91__span(r, (size_t)amqp91__be(r, 1));
        if (!r->ok)
            break;
        w_var(w, C_SYM8, name.p, name.len);
        v91_to_10(r, w);
        count += 2;
    }
    w_close(w, at, count);
}

static void v91_to_10(amqp91__rd *r, w10 *w)
{
    if (!v91_convertible(r)) {
        uint8_t tag = (uint8_t)amqp91__be(r, 1);
        amqp91__be(r, tag == 'D' ? 5 : 8);
        w_u8(w, C_NULL);
        return;
    }
    uint8_t tag = (uint8_t)amqp91__be(r, 1);
    switch (tag) {
    case 't': w_u8(w, amqp91__be(r, 1) ? C_TRUE : C_FALSE); break;
    case 'b': w_u8(w, C_BYTE); w_be(w, amqp91__be(r, 1), 1); break;
    case 'B': w_u8(w, C_UBYTE); w_be(w, amqp91__be(r, 1), 1); break;
    case 's': w_u8(w, C_SHORT); w_be(w, amqp91__be(r, 2), 2); break;
    case 'u': w_u8(w, C_USHORT); w_be(w, amqp91__be(r, 2), 2); break;
    case 'I': w_u8(w, C_INT); w_be(w, amqp91__be(r, 4), 4); break;
    case 'i': w_u8(w, C_UINT); w_be(w, amqp91__be(r, 4), 4); break;
    case 'l': w_u8(w, C_LONG); w_be(w, amqp91__be(r, 8), 8); break;
    case 'f': w_u8(w, C_FLOAT); w_be(w, amqp91__be(r, 4), 4); break; /* both IEEE 754, big-endian */
    case 'd': w_u8(w, C_DOUBLE); w_be(w, amqp91__be(r, 8), 8); break;
    case 'T': w_u8(w, C_TIMESTAMP); w_be(w, amqp91__be(r, 8) * 1000, 8); break; /* seconds to ms */
    case 'V': w_u8(w, C_NULL); break;
    case 'S':
    case 'x': {
        amqp91_bytes s = amqp91__span(r, (size_t)amqp91__be(r, 4));
        /* RabbitMQ's rule: a longstr that passes as a shortstr is a string,
         * anything else binary (checking long ones for UTF-8 costs). */
        w_var(w, tag == 'S' && shortstr_ok(s.p, s.len) ? C_STR8 : C_VBIN8, s.p, s.len);
        break;
    }
    case 'F': {
        amqp91_bytes b = amqp91__span(r, (size_t)amqp91__be(r, 4));
        if (!r->ok || !b.len) {
            if (tag == 'F')
                table_to_10(&(amqp91__rd){NULL, NULL, false}, w);
            else
                w_close(w, w_open(w, C_LIST32), 0);
            break;
        }
        amqp91__rd in = {b.p, b.p + b.len, true};
        table_to_10(&in, w);
        break;
    }
    case 'A': {
        amqp91_bytes b = amqp91__span(r, (size_t)amqp91__be(r, 4));
        if (!r->ok || !b.len) {
            if (tag == 'F')
                table_to_10(&(amqp91__rd){NULL, NULL, false}, w);
            else
                w_close(w, w_open(w, C_LIST32), 0);
            break;
        }
        amqp91__rd in = {b.p, b.p + b.len, true};
        size_t at = w_open(w, C_LIST32);
        uint32_t count = 0;
        while (in.ok && in.p < in.end) {
            v91_to_10(&in, w);
            count++;
        }
        w_close(w, at, count);
        break;
    }
    default: r->ok = false; break; /* not after amqp91_table_check */
    }
}

/* Skips one field value (tag first). */
static void v91_skip(amqp91__rd *r)
{
    w10 none = {NULL, 0};
    if (r->end - r->p >= 1 && r->p[0] == 'D') {
        amqp91__be(r, 6);
        return;
    }
    v91_to_10(r, &none);
}

/* Header names RabbitMQ 4 sets itself on a delivery (x-exchange,
 * x-routing-key) or derives from the basic properties (x-basic-*): a
 * client's header of that name would duplicate a key, so it is left out. */
static bool reserved_ma(const uint8_t *p, size_t n)
{
    return name_is(p, n, "x-exchange") || name_is(p, n, "x-routing-key") ||
           (n >= 8 && memcmp(p, "x-basic-", 8) == 0);
}

typedef struct pub {
    const amqp91_props *p;
    const char *exchange, *rkey;
    uint64_t body_size;
    bool has_uuid_mid, has_uuid_cid;
    uint8_t mid[16], cid[16];
    uint32_t ttl;
    /* entries of the message annotations and application properties, counted
     * by the sizing pass: a section is only started when it has some (the
     * writing pass has no room to start one and take it back) */
    uint32_t n_ma, n_ap;
} pub;

/* Headers to message annotations (x-*, and CC as x-cc) or to application
 * properties (the rest whose value is neither table nor array). */
static uint32_t headers_to_10(const pub *b, w10 *w, bool annotations)
{
    if (!b->p->headers.len)
        return 0;
    amqp91__rd r = {b->p->headers.p, b->p->headers.p + b->p->headers.len, true};
    uint32_t count = 0;
    while (r.ok && r.p < r.end) {
        amqp91_bytes name = amqp91__span(&r, (size_t)amqp91__be(&r, 1));
        if (!r.ok || r.p >= r.end)
            break;
        uint8_t tag = r.p[0];
        bool x = is_x(name.p, name.len), cc = name_is(name.p, name.len, "CC") && tag == 'A';
        bool take = annotations ? (x && !reserved_ma(name.p, name.len)) || cc
                                : !x && !cc && tag != 'A' && tag != 'F';
        if (!take || !v91_convertible(&r)) {
            v91_skip(&r);
            continue;
        }
        if (annotations) {
            if (cc)
                w_var(w, C_SYM8, (const uint8_t *)"x-cc", 4);
            else
                w_var(w, C_SYM8, name.p, name.len);
        } else {
            w_var(w, C_STR8, name.p, name.len);
        }
        v91_to_10(&r, w);
        count += 2;
    }
    return count;
}

static void w_str_field(w10 *w, uint8_t code8, amqp91_bytes s) { w_var(w, code8, s.p, s.len); }

/* The message up to the body's bytes. */
static void build(pub *b, w10 *w)
{
    const amqp91_props *p = b->p;
    uint16_t f = p->flags;
    /* header: present when a 0-9-1 field that lives there is (so an absent
     * delivery-mode stays absent on the way back). */
    if (f & (AMQP91_P_DELIVERY_MODE | AMQP91_P_PRIORITY | AMQP91_P_EXPIRATION)) {
        w_section(w, SEC_HEADER);
        size_t at = w_open(w, C_LIST32);
        uint32_t n = 1;
        /* durable only if delivery-mode was there: null reads as false in
         * 1.0 and as no delivery-mode on the way back */
        w_u8(w, !(f & AMQP91_P_DELIVERY_MODE) ? C_NULL : p->delivery_mode == 2 ? C_TRUE : C_FALSE);
        if (f & (AMQP91_P_PRIORITY | AMQP91_P_EXPIRATION)) {
            n++;
            if (f & AMQP91_P_PRIORITY) {
                w_u8(w, C_UBYTE);
                w_u8(w, p->priority);
            } else {
                w_u8(w, C_NULL);
            }
        }
        if (f & AMQP91_P_EXPIRATION) {
            n++;
            w_u8(w, C_UINT);
            w_be(w, b->ttl, 4);
        }
        w_close(w, at, n);
    }
    /* message annotations: where the message was published to, as RabbitMQ
     * 4 shows a 1.0 consumer, the type, and the x- headers. */
    if (!w->p) {
        w10 probe = {NULL, 0};
        b->n_ma = (b->exchange ? 2u : 0) + (b->rkey ? 2u : 0) + ((f & AMQP91_P_TYPE) ? 2u : 0) +
                  ((f & AMQP91_P_HEADERS) ? headers_to_10(b, &probe, true) : 0);
        b->n_ap = (f & AMQP91_P_HEADERS) ? headers_to_10(b, &probe, false) : 0;
    }
    size_t at;
    if (b->n_ma) {
        w_section(w, SEC_MESSAGE_ANN);
        at = w_open(w, C_MAP32);
        if (b->exchange) {
            w_var(w, C_SYM8, (const uint8_t *)"x-exchange", 10);
            w_var(w, C_STR8, (const uint8_t *)b->exchange, strlen(b->exchange));
        }
        if (b->rkey) {
            w_var(w, C_SYM8, (const uint8_t *)"x-routing-key", 13);
            w_var(w, C_STR8, (const uint8_t *)b->rkey, strlen(b->rkey));
        }
        if (f & AMQP91_P_TYPE) {
            w_var(w, C_SYM8, (const uint8_t *)"x-basic-type", 12);
            w_str_field(w, C_STR8, p->type);
        }
        if (f & AMQP91_P_HEADERS)
            headers_to_10(b, w, true);
        w_close(w, at, b->n_ma);
    }
    /* properties */
    static const uint16_t pflag[P_NFIELDS] = {
        [P_MESSAGE_ID] = AMQP91_P_MESSAGE_ID,   [P_USER_ID] = AMQP91_P_USER_ID,
        [P_REPLY_TO] = AMQP91_P_REPLY_TO,       [P_CORRELATION_ID] = AMQP91_P_CORRELATION_ID,
        [P_CONTENT_TYPE] = AMQP91_P_CONTENT_TYPE, [P_CONTENT_ENCODING] = AMQP91_P_CONTENT_ENCODING,
        [P_CREATION_TIME] = AMQP91_P_TIMESTAMP, [P_GROUP_ID] = AMQP91_P_APP_ID,
    };
    int last = -1;
    for (int i = 0; i < P_NFIELDS; i++)
        if (pflag[i] & f)
            last = i;
    if (last >= 0) {
        w_section(w, SEC_PROPERTIES);
        at = w_open(w, C_LIST32);
        for (int i = 0; i <= last; i++) {
            if (!(pflag[i] & f)) {
                w_u8(w, C_NULL);
                continue;
            }
            switch (i) {
            case P_MESSAGE_ID:
            case P_CORRELATION_ID: {
                bool u = i == P_MESSAGE_ID ? b->has_uuid_mid : b->has_uuid_cid;
                if (u) {
                    w_u8(w, C_UUID);
                    w_put(w, i == P_MESSAGE_ID ? b->mid : b->cid, 16);
                } else {
                    w_str_field(w, C_STR8, i == P_MESSAGE_ID ? p->message_id : p->correlation_id);
                }
                break;
            }
            case P_USER_ID: w_str_field(w, C_VBIN8, p->user_id); break;
            case P_REPLY_TO: {
                /* RabbitMQ 4: a 0-9-1 reply-to names a queue; 1.0 wants its address. */
                size_t len = strlen(QUEUES);
                for (uint32_t k = 0; k < p->reply_to.len; k++)
                    len += addr_plain(p->reply_to.p[k]) ? 1 : 3;
                if (len <= 255) {
                    w_u8(w, C_STR8);
                    w_u8(w, (uint8_t)len);
                } else {
                    w_u8(w, C_STR32);
                    w_be(w, len, 4);
                }
                w_put(w, QUEUES, strlen(QUEUES));
                for (uint32_t k = 0; k < p->reply_to.len; k++) {
                    uint8_t c = p->reply_to.p[k];
                    if (addr_plain(c)) {
                        w_u8(w, c);
                    } else {
                        char e[4];
                        snprintf(e, sizeof e, "%%%02X", c);
                        w_put(w, e, 3);
                    }
                }
                break;
            }
            case P_CONTENT_TYPE: w_str_field(w, C_SYM8, p->content_type); break;
            case P_CONTENT_ENCODING: w_str_field(w, C_SYM8, p->content_encoding); break;
            case P_CREATION_TIME:
                w_u8(w, C_TIMESTAMP);
                w_be(w, p->timestamp * 1000, 8);
                break;
            case P_GROUP_ID: w_str_field(w, C_STR8, p->app_id); break; /* as RabbitMQ 4 does */
            }
        }
        w_close(w, at, (uint32_t)last + 1);
    }
    /* application properties */
    if (b->n_ap) {
        w_section(w, SEC_APP_PROPS);
        at = w_open(w, C_MAP32);
        headers_to_10(b, w, false);
        w_close(w, at, b->n_ap);
    }
    /* the data section's head; the body follows */
    w_section(w, SEC_DATA);
    if (b->body_size <= 255) {
        w_u8(w, C_VBIN8);
        w_u8(w, (uint8_t)b->body_size);
    } else {
        w_u8(w, C_VBIN32);
        w_be(w, b->body_size, 4);
    }
}

/* 0-9-1 expiration: a non-negative decimal integer of milliseconds (as
 * RabbitMQ checks it), here at most what the 1.0 header's uint ttl holds. */
static bool parse_expiration(amqp91_bytes s, uint32_t *out)
{
    if (!s.len || s.len > 10)
        return false;
    uint64_t v = 0;
    for (uint32_t i = 0; i < s.len; i++) {
        if (s.p[i] < '0' || s.p[i] > '9')
            return false;
        v = v * 10 + (uint64_t)(s.p[i] - '0');
    }
    if (v > UINT32_MAX)
        return false;
    *out = (uint32_t)v;
    return true;
}

#define FAIL(code, text)                                                                                               \
    do {                                                                                                               \
        if (why)                                                                                                       \
            *why = (text);                                                                                             \
        return -(code);                                                                                                \
    } while (0)

int amqp__091_msg_new(const amqp91_props *p, uint64_t body_size, const char *exchange, const char *rkey, rt_msg **out,
                      size_t *body_off, size_t *total, const char **why)
{
    pub b = {.p = p, .exchange = exchange, .rkey = rkey, .body_size = body_size};
    *out = NULL;
    if (p->flags & AMQP91_P_HEADERS) {
        const char *w = NULL;
        if (p->headers.len && amqp91_table_check(p->headers.p, p->headers.len, &w) < 0)
            FAIL(AMQP91_SYNTAX_ERROR, w ? w : "bad headers table");
    }
    if ((p->flags & AMQP91_P_EXPIRATION) && !parse_expiration(p->expiration, &b.ttl))
        FAIL(AMQP91_PRECONDITION_FAILED, "invalid expiration: not a number of milliseconds up to 4294967295");
    if ((p->flags & AMQP91_P_TIMESTAMP) && p->timestamp > (uint64_t)TS_MAX_S)
        FAIL(AMQP91_PRECONDITION_FAILED, "timestamp out of range");
    b.has_uuid_mid = (p->flags & AMQP91_P_MESSAGE_ID) && urn_uuid(p->message_id.p, p->message_id.len, b.mid);
    b.has_uuid_cid = (p->flags & AMQP91_P_CORRELATION_ID) && urn_uuid(p->correlation_id.p, p->correlation_id.len, b.cid);
    if (body_size > UINT32_MAX)
        FAIL(AMQP91_PRECONDITION_FAILED, "message body larger than 4 GiB");
    w10 w = {NULL, 0};
    build(&b, &w);
    if (w.len + body_size > UINT32_MAX)
        FAIL(AMQP91_PRECONDITION_FAILED, "message larger than 4 GiB");
    size_t head = w.len;
    rt_msg *m = rt_msg_alloc(head + (size_t)body_size);
    if (!m) {
        if (why)
            *why = "out of memory";
        return -ENOMEM;
    }
    w.p = rt_msg_bytes(m);
    w.len = 0;
    build(&b, &w);
    *out = m;
    *body_off = head;
    *total = head + (size_t)body_size;
    return 0;
}

/* ============================================ AMQP 1.0 -> 0-9-1 (deliver) */

/* The bytes of a value after its constructor code (element widths inside
 * an array too), from the sizes it declares: O(1), bounded by n, but not a
 * check of what is inside (amqp__enc_size is). */
static ssize_t elem_size(uint8_t code, const uint8_t *p, size_t n)
{
    static const int fixed[16] = {-1, -1, -1, -1, 0, 1, 2, 4, 8, 16, -1, -1, -1, -1, -1, -1};
    if (code < 0x40)
        return -1; /* no such constructor */
    int fw = fixed[code >> 4];
    size_t k;
    if (fw >= 0)
        k = (size_t)fw;
    else if ((code >> 4) & 1) /* 0xb, 0xd, 0xf: 4-byte size */
        k = n >= 4 ? 4 + (size_t)be_get(p, 4) : SIZE_MAX;
    else
        k = n >= 1 ? 1 + (size_t)p[0] : SIZE_MAX;
    return k <= n ? (ssize_t)k : -1;
}

/* An item's bytes, constructor included: declared sizes for plain values,
 * amqp__enc_size for described ones. */
static ssize_t item_size(const uint8_t *p, size_t n)
{
    if (!n)
        return -1;
    if (p[0] != 0x00) {
        ssize_t k = elem_size(p[0], p + 1, n - 1);
        return k < 0 ? -1 : k + 1;
    }
    ssize_t k = amqp__enc_size(p, n);
    return k > 0 ? k : -1;
}

/* A list's or map's elements (the compound at p was size-checked). */
typedef struct it10 {
    const uint8_t *p, *end;
    uint32_t left;
} it10;

/* The compound whose constructor is code and whose bytes (after it) are
 * p[0..n): list0, list8/32, map8/32. */
static bool it_open_body(uint8_t code, const uint8_t *p, size_t n, it10 *it)
{
    memset(it, 0, sizeof *it);
    switch (code) {
    case C_LIST0: it->p = it->end = p; return true;
    case C_LIST8:
    case C_MAP8:
        if (n < 2 || p[0] < 1 || (size_t)p[0] + 1 > n)
            return false;
        it->p = p + 2;
        it->end = p + 1 + p[0];
        it->left = p[1];
        return true;
    case C_LIST32:
    case C_MAP32: {
        if (n < 8)
            return false;
        uint64_t size = be_get(p, 4);
        if (size < 4 || size + 4 > n)
            return false;
        it->p = p + 8;
        it->end = p + 4 + size;
        it->left = (uint32_t)be_get(p + 4, 4);
        return true;
    }
    default: return false;
    }
}

static bool it_open(const uint8_t *p, size_t n, it10 *it)
{
    if (!n) {
        memset(it, 0, sizeof *it);
        return false;
    }
    return it_open_body(p[0], p + 1, n - 1, it);
}

static bool it_next(it10 *it, const uint8_t **v, size_t *vn)
{
    if (!it->left || it->p >= it->end)
        return false;
    /* inside a section amqp__enc_size has checked: declared sizes suffice */
    ssize_t k = item_size(it->p, (size_t)(it->end - it->p));
    if (k <= 0)
        return false;
    *v = it->p;
    *vn = (size_t)k;
    it->p += k;
    it->left--;
    return true;
}

/* A binary, string or symbol's bytes; which of the three in *code8. */
static bool str_of(const uint8_t *v, size_t n, const uint8_t **s, size_t *len, uint8_t *code8)
{
    if (n >= 2 && (v[0] == C_VBIN8 || v[0] == C_STR8 || v[0] == C_SYM8) && (size_t)v[1] + 2 <= n) {
        *code8 = v[0];
        *s = v + 2;
        *len = v[1];
        return true;
    }
    if (n >= 5 && (v[0] == C_VBIN32 || v[0] == C_STR32 || v[0] == C_SYM32) && be_get(v + 1, 4) + 5 <= n) {
        *code8 = (uint8_t)(v[0] - 0x10);
        *s = v + 5;
        *len = (size_t)be_get(v + 1, 4);
        return true;
    }
    return false;
}

static bool ulong_of(const uint8_t *v, size_t n, uint64_t *out)
{
    if (n >= 1 && v[0] == C_ULONG0)
        *out = 0;
    else if (n >= 2 && v[0] == C_SMALLULONG)
        *out = v[1];
    else if (n >= 9 && v[0] == C_ULONG)
        *out = be_get(v + 1, 8);
    else
        return false;
    return true;
}

static void put_shortstr(amqp91__wr *w, const void *p, size_t n)
{
    amqp91__put_be(w, n, 1);
    amqp91__put(w, p, n);
}

static bool v10_to_091(uint8_t code, const uint8_t *p, size_t n, amqp91__wr *w, int depth, bool *deep);

/* An item (constructor at v) as a 0-9-1 field value; false: it has none. */
static bool item_to_091(const uint8_t *v, size_t n, amqp91__wr *w, int depth, bool *deep)
{
    if (!n || v[0] == 0x00)
        return false; /* described values have no 0-9-1 form */
    return v10_to_091(v[0], v + 1, n - 1, w, depth, deep);
}

/* Writes a value inside a table or array: a value with no 0-9-1 form
 * becomes void there, so positions keep. */
static void nested_to_091(const uint8_t *v, size_t n, amqp91__wr *w, int depth, bool *deep)
{
    size_t mark = w->len;
    if (!item_to_091(v, n, w, depth, deep)) {
        w->len = mark;
        amqp91__put_be(w, 'V', 1);
    }
}

static size_t w_open91(amqp91__wr *w)
{
    size_t at = w->len;
    amqp91__put_be(w, 0, 4);
    return at;
}
static void w_close91(amqp91__wr *w, size_t at)
{
    if (w->full)
        return;
    uint64_t size = w->len - at - 4;
    for (int i = 0; i < 4; i++)
        w->p[at + (size_t)i] = (uint8_t)(size >> (24 - 8 * i));
}

/* *deep: a list or map nested deeper than a 0-9-1 table may be was met;
 * the whole header is then left out, rather than cut. */
static bool v10_to_091(uint8_t code, const uint8_t *p, size_t n, amqp91__wr *w, int depth, bool *deep)
{
    ssize_t k = elem_size(code, p, n);
    if (k < 0)
        return false;
    switch (code) {
    case C_NULL: amqp91__put_be(w, 'V', 1); return true;
    case C_TRUE:
    case C_FALSE:
        amqp91__put_be(w, 't', 1);
        amqp91__put_be(w, code == C_TRUE, 1);
        return true;
    case C_BOOL:
        amqp91__put_be(w, 't', 1);
        amqp91__put_be(w, p[0] != 0, 1);
        return true;
    case C_UBYTE: amqp91__put_be(w, 'B', 1); amqp91__put(w, p, 1); return true;
    case C_BYTE: amqp91__put_be(w, 'b', 1); amqp91__put(w, p, 1); return true;
    case C_USHORT: amqp91__put_be(w, 'u', 1); amqp91__put(w, p, 2); return true;
    case C_SHORT: amqp91__put_be(w, 's', 1); amqp91__put(w, p, 2); return true;
    case C_UINT: amqp91__put_be(w, 'i', 1); amqp91__put(w, p, 4); return true;
    case C_SMALLUINT: amqp91__put_be(w, 'i', 1); amqp91__put_be(w, p[0], 4); return true;
    case C_UINT0: amqp91__put_be(w, 'i', 1); amqp91__put_be(w, 0, 4); return true;
    case C_INT: amqp91__put_be(w, 'I', 1); amqp91__put(w, p, 4); return true;
    case C_SMALLINT: amqp91__put_be(w, 'I', 1); amqp91__put_be(w, (uint32_t)(int32_t)(int8_t)p[0], 4); return true;
    case C_ULONG: /* RabbitMQ: ulong to long, values over 2^63 wrap */
    case C_LONG: amqp91__put_be(w, 'l', 1); amqp91__put(w, p, 8); return true;
    case C_SMALLULONG: amqp91__put_be(w, 'l', 1); amqp91__put_be(w, p[0], 8); return true;
    case C_ULONG0: amqp91__put_be(w, 'l', 1); amqp91__put_be(w, 0, 8); return true;
    case C_SMALLLONG: amqp91__put_be(w, 'l', 1); amqp91__put_be(w, (uint64_t)(int64_t)(int8_t)p[0], 8); return true;
    case C_FLOAT: amqp91__put_be(w, 'f', 1); amqp91__put(w, p, 4); return true;
    case C_DOUBLE: amqp91__put_be(w, 'd', 1); amqp91__put(w, p, 8); return true;
    case C_TIMESTAMP: {
        int64_t ms = (int64_t)be_get(p, 8);
        if (ms < 0)
            return false; /* 0-9-1 timestamps are unsigned */
        amqp91__put_be(w, 'T', 1);
        amqp91__put_be(w, (uint64_t)ms / 1000, 8);
        return true;
    }
    case C_VBIN8:
    case C_VBIN32:
    case C_STR8:
    case C_STR32:
    case C_SYM8:
    case C_SYM32: {
        size_t hl = (code >> 4) == 0xa ? 1 : 4;
        amqp91__put_be(w, (code & 0x0f) == 0 ? 'x' : 'S', 1);
        amqp91__put_be(w, (uint64_t)k - hl, 4);
        amqp91__put(w, p + hl, (size_t)k - hl);
        return true;
    }
    case C_LIST0:
    case C_LIST8:
    case C_LIST32:
    case C_MAP8:
    case C_MAP32: {
        if (depth + 1 > AMQP91_TABLE_MAX_DEPTH) {
            *deep = true;
            return false;
        }
        it10 it;
        const uint8_t *v, *kv;
        size_t vn, kn;
        if (!it_open_body(code, p, (size_t)k, &it))
            return false;
        bool map = code == C_MAP8 || code == C_MAP32;
        amqp91__put_be(w, map ? 'F' : 'A', 1);
        size_t at = w_open91(w);
        while (it_next(&it, map ? &kv : &v, map ? &kn : &vn)) {
            if (!map) {
                nested_to_091(v, vn, w, depth + 1, deep);
                continue;
            }
            if (!it_next(&it, &v, &vn))
                break;
            const uint8_t *s;
            size_t sl;
            uint8_t c8;
            if (!str_of(kv, kn, &s, &sl, &c8) || c8 == C_VBIN8 || sl > 255)
                continue; /* a table's names are short strings */
            put_shortstr(w, s, sl);
            nested_to_091(v, vn, w, depth + 1, deep);
        }
        w_close91(w, at);
        return true;
    }
    case C_ARRAY8:
    case C_ARRAY32: {
        if (depth + 1 > AMQP91_TABLE_MAX_DEPTH) {
            *deep = true;
            return false;
        }
        size_t sw = code == C_ARRAY8 ? 1 : 4;
        if ((size_t)k < 2 * sw + 1)
            return false;
        uint64_t count = be_get(p + sw, (unsigned)sw);
        const uint8_t *q = p + 2 * sw, *end = p + k;
        uint8_t ec = *q++;
        if (ec == 0x00)
            return false; /* described elements */
        amqp91__put_be(w, 'A', 1);
        size_t at = w_open91(w);
        for (uint64_t i = 0; i < count && q <= end; i++) {
            ssize_t e = elem_size(ec, q, (size_t)(end - q));
            if (e < 0)
                break;
            size_t mark = w->len;
            if (!v10_to_091(ec, q, (size_t)e, w, depth + 1, deep)) {
                w->len = mark;
                amqp91__put_be(w, 'V', 1);
            }
            q += e;
        }
        w_close91(w, at);
        return true;
    }
    default: return false; /* char, decimals, uuid: no 0-9-1 form RabbitMQ gives */
    }
}

/* What a 1.0 message's sections hold, as views into its bytes. */
enum { BODY_DATA, BODY_VALUE, BODY_ENCODED };

typedef struct in10 {
    const uint8_t *hdr, *ma, *props, *ap; /* the sections' values */
    size_t hdr_n, ma_n, props_n, ap_n;
    int kind;
    size_t first; /* offset of the first body section */
    uint64_t body_size;
    const uint8_t *value; /* BODY_VALUE: its bytes */
    size_t value_n;
} in10;

/* The section at p: its code, its size and value; -1 if not a section.
 * check: hold its whole content to its declared sizes (amqp__enc_size);
 * else only its own size is read (body_next, after msg_header checked). */
static int section_at(const uint8_t *p, size_t n, bool check, size_t *size, const uint8_t **v, size_t *vn)
{
    static const struct {
        const char *name;
        int code;
    } syms[] = {{"amqp:header:list", SEC_HEADER},
                {"amqp:delivery-annotations:map", SEC_DELIVERY_ANN},
                {"amqp:message-annotations:map", SEC_MESSAGE_ANN},
                {"amqp:properties:list", SEC_PROPERTIES},
                {"amqp:application-properties:map", SEC_APP_PROPS},
                {"amqp:data:binary", SEC_DATA},
                {"amqp:amqp-sequence:list", SEC_SEQUENCE},
                {"amqp:amqp-value:*", SEC_VALUE},
                {"amqp:footer:map", SEC_FOOTER}};
    ssize_t k;
    if (check) {
        k = amqp__enc_size(p, n);
    } else {
        ssize_t a = n ? item_size(p + 1, n - 1) : -1, b = a > 0 ? item_size(p + 1 + a, n - 1 - (size_t)a) : -1;
        k = b > 0 ? 1 + a + b : -1;
    }
    if (k <= 0 || p[0] != 0x00)
        return -1;
    const uint8_t *d = p + 1;
    size_t dn = (size_t)k - 1;
    ssize_t dk = item_size(d, dn);
    if (dk <= 0 || (size_t)dk >= dn)
        return -1;
    int code = -1;
    uint64_t u;
    const uint8_t *s;
    size_t sl;
    uint8_t c8;
    if (ulong_of(d, (size_t)dk, &u)) {
        if (u >= SEC_HEADER && u <= SEC_FOOTER)
            code = (int)u;
    } else if (str_of(d, (size_t)dk, &s, &sl, &c8) && c8 == C_SYM8) {
        for (size_t i = 0; i < sizeof syms / sizeof syms[0]; i++)
            if (name_is(s, sl, syms[i].name))
                code = syms[i].code;
    }
    *size = (size_t)k;
    *v = d + dk;
    *vn = dn - (size_t)dk;
    return code;
}

/* Reads the sections; -EBADMSG for bytes that are not an AMQP 1.0 message. */
static int scan(const uint8_t *data, size_t len, bool check, in10 *in)
{
    memset(in, 0, sizeof *in);
    in->kind = BODY_DATA;
    in->first = len;
    size_t off = 0;
    bool body = false, footer = false;
    int nbody = 0;
    while (off < len) {
        size_t size, vn;
        const uint8_t *v;
        int code = section_at(data + off, len - off, check, &size, &v, &vn);
        if (code < 0)
            return -EBADMSG;
        if (footer)
            return -EBADMSG; /* nothing follows the footer */
        if (code >= SEC_DATA && code <= SEC_VALUE) {
            if (!body) {
                body = true;
                in->first = off;
            }
            nbody++;
            const uint8_t *s;
            size_t sl;
            uint8_t c8;
            if (code == SEC_DATA) {
                if (!str_of(v, vn, &s, &sl, &c8) || c8 != C_VBIN8)
                    return -EBADMSG;
                if (in->kind == BODY_DATA)
                    in->body_size += sl;
                else
                    in->kind = BODY_ENCODED;
            } else if (code == SEC_VALUE && nbody == 1 && str_of(v, vn, &s, &sl, &c8) && c8 != C_SYM8) {
                in->kind = BODY_VALUE; /* a string or binary: its bytes are the body */
                in->value = s;
                in->value_n = sl;
            } else {
                in->kind = BODY_ENCODED;
            }
        } else if (code == SEC_FOOTER) {
            footer = true;
        } else if (body) {
            return -EBADMSG; /* the bare message's sections come before the body */
        } else if (code == SEC_HEADER) {
            in->hdr = v, in->hdr_n = vn;
        } else if (code == SEC_MESSAGE_ANN) {
            in->ma = v, in->ma_n = vn;
        } else if (code == SEC_PROPERTIES) {
            in->props = v, in->props_n = vn;
        } else if (code == SEC_APP_PROPS) {
            in->ap = v, in->ap_n = vn;
        }
        off += size;
    }
    if (in->kind == BODY_VALUE && nbody > 1)
        in->kind = BODY_ENCODED;
    if (in->kind == BODY_VALUE)
        in->body_size = in->value_n;
    else if (in->kind == BODY_ENCODED)
        in->body_size = len - in->first; /* the body sections and footer, encoded: RabbitMQ's "amqp-1.0" body */
    return 0;
}

/* The properties' fields as items (NULL: absent or null). */
static void props_fields(const in10 *in, const uint8_t *f[P_NFIELDS], size_t fn[P_NFIELDS])
{
    memset(f, 0, sizeof(f[0]) * P_NFIELDS);
    it10 it;
    if (!in->props || !it_open(in->props, in->props_n, &it))
        return;
    const uint8_t *v;
    size_t vn;
    for (int i = 0; i < P_NFIELDS && it_next(&it, &v, &vn); i++)
        if (v[0] != C_NULL) {
            f[i] = v;
            fn[i] = vn;
        }
}

/* message-id / correlation-id as RabbitMQ 4 converts them: a shortstr
 * property when they have a short text form, else a header (binary ids,
 * strings over 255 bytes); other types are dropped. */
typedef struct idconv {
    char text[46];
    const uint8_t *p;
    size_t n;
    bool prop, header_bin;
} idconv;

static void id_conv(const uint8_t *v, size_t vn, idconv *c)
{
    memset(c, 0, sizeof *c);
    uint64_t u;
    const uint8_t *s;
    size_t sl;
    uint8_t c8;
    if (!v)
        return;
    if (ulong_of(v, vn, &u)) {
        snprintf(c->text, sizeof c->text, "%" PRIu64, u);
        c->p = (const uint8_t *)c->text;
        c->n = strlen(c->text);
        c->prop = true;
    } else if (vn == 17 && v[0] == C_UUID) {
        uuid_urn(v + 1, c->text);
        c->p = (const uint8_t *)c->text;
        c->n = 45;
        c->prop = true;
    } else if (str_of(v, vn, &s, &sl, &c8) && c8 != C_SYM8) {
        c->p = s;
        c->n = sl;
        c->prop = c8 == C_STR8 && sl <= 255;
        c->header_bin = c8 == C_VBIN8;
    }
}

/* A string property as a shortstr, if it is one. */
static bool prop_str(const uint8_t *v, size_t vn, const uint8_t **s, size_t *sl)
{
    uint8_t c8;
    return v && str_of(v, vn, s, sl, &c8) && c8 != C_VBIN8 && *sl <= 255;
}

/* Headers from message annotations: x-cc as CC, the other x- keys but the
 * ones RabbitMQ keeps to itself. */
static void ma_headers(const in10 *in, amqp91__wr *w, const uint8_t **type, size_t *type_n)
{
    it10 it;
    if (!in->ma || !it_open(in->ma, in->ma_n, &it))
        return;
    const uint8_t *k, *v, *s;
    size_t kn, vn, sl;
    uint8_t c8;
    while (it_next(&it, &k, &kn) && it_next(&it, &v, &vn)) {
        if (!str_of(k, kn, &s, &sl, &c8) || c8 != C_SYM8 || sl > 255 || !is_x(s, sl))
            continue;
        if (name_is(s, sl, "x-basic-type")) {
            const uint8_t *t;
            size_t tn;
            if (prop_str(v, vn, &t, &tn)) {
                *type = t;
                *type_n = tn;
            }
            continue;
        }
        if (reserved_ma(s, sl) || name_is(s, sl, "x-death") || name_is(s, sl, "x-opt-deaths"))
            continue;
        size_t mark = w->len;
        if (name_is(s, sl, "x-cc"))
            put_shortstr(w, "CC", 2);
        else
            put_shortstr(w, s, sl);
        bool deep = false;
        if (!item_to_091(v, vn, w, 1, &deep) || deep)
            w->len = w->full ? w->len : mark;
    }
}

static void ap_headers(const in10 *in, amqp91__wr *w)
{
    it10 it;
    if (!in->ap || !it_open(in->ap, in->ap_n, &it))
        return;
    const uint8_t *k, *v, *s;
    size_t kn, vn, sl;
    uint8_t c8;
    while (it_next(&it, &k, &kn) && it_next(&it, &v, &vn)) {
        if (!str_of(k, kn, &s, &sl, &c8) || c8 != C_STR8 || sl > 255)
            continue;
        size_t mark = w->len;
        put_shortstr(w, s, sl);
        bool deep = false;
        if (!item_to_091(v, vn, w, 1, &deep) || deep)
            w->len = w->full ? w->len : mark;
    }
}

/* Percent-decodes a /queues/ address's name; false for a bad escape, an
 * encoded NUL or a name over 255 bytes. */
static bool queue_name(const uint8_t *s, size_t n, char out[256], size_t *outn)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = s[i];
        if (c == '%') {
            if (i + 2 >= n)
                return false;
            int hi = hexval(s[i + 1]), lo = hexval(s[i + 2]);
            if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
                return false;
            c = (uint8_t)(hi << 4 | lo);
            i += 2;
        }
        if (o == 255 || !c)
            return false;
        out[o++] = (char)c;
    }
    *outn = o;
    return true;
}

int amqp__091_msg_header(const rt_msg *m, uint8_t *out, size_t cap, uint64_t *body_size)
{
    in10 in;
    int rc = scan(m->buf.data, m->buf.len, true, &in);
    if (rc < 0)
        return rc;
    *body_size = in.body_size;

    /* header */
    bool has_dm = false, has_prio = false, has_ttl = false;
    uint8_t dm = 0, prio = 0;
    uint32_t ttl = 0;
    it10 it;
    if (in.hdr && it_open(in.hdr, in.hdr_n, &it)) {
        const uint8_t *v;
        size_t vn;
        for (int i = 0; i < 3 && it_next(&it, &v, &vn); i++) {
            if (i == 0 && (v[0] == C_TRUE || v[0] == C_FALSE || (v[0] == C_BOOL && vn == 2))) {
                has_dm = true; /* durable given: 2, or 1 (RabbitMQ 4's delivery-mode for a header's durable) */
                dm = v[0] == C_TRUE || (v[0] == C_BOOL && v[1]) ? 2 : 1;
            }
            else if (i == 1 && v[0] == C_UBYTE && vn == 2)
                has_prio = true, prio = v[1];
            else if (i == 2 && v[0] == C_UINT && vn == 5)
                has_ttl = true, ttl = (uint32_t)be_get(v + 1, 4);
            else if (i == 2 && v[0] == C_SMALLUINT && vn == 2)
                has_ttl = true, ttl = v[1];
            else if (i == 2 && v[0] == C_UINT0)
                has_ttl = true, ttl = 0;
        }
    }
    const uint8_t *f[P_NFIELDS];
    size_t fn[P_NFIELDS];
    props_fields(&in, f, fn);
    idconv mid, cid;
    id_conv(f[P_MESSAGE_ID], fn[P_MESSAGE_ID], &mid);
    id_conv(f[P_CORRELATION_ID], fn[P_CORRELATION_ID], &cid);

    amqp91__wr w = {out, 0, cap, false};
    amqp91__put_be(&w, AMQP91_BASIC_CLASS, 2);
    amqp91__put_be(&w, 0, 2);
    amqp91__put_be(&w, in.body_size, 8);
    size_t flags_at = w.len;
    amqp91__put_be(&w, 0, 2);
    uint16_t flags = 0;
    const uint8_t *s;
    size_t sl;

    if (prop_str(f[P_CONTENT_TYPE], fn[P_CONTENT_TYPE], &s, &sl)) {
        flags |= AMQP91_P_CONTENT_TYPE;
        put_shortstr(&w, s, sl);
    }
    if (prop_str(f[P_CONTENT_ENCODING], fn[P_CONTENT_ENCODING], &s, &sl)) {
        flags |= AMQP91_P_CONTENT_ENCODING;
        put_shortstr(&w, s, sl);
    }
    /* headers */
    const uint8_t *type = NULL;
    size_t type_n = 0;
    size_t hat = w_open91(&w);
    ma_headers(&in, &w, &type, &type_n);
    ap_headers(&in, &w);
    if (mid.p && !mid.prop) {
        put_shortstr(&w, "x-message-id", 12);
        amqp91__put_be(&w, mid.header_bin ? 'x' : 'S', 1);
        amqp91__put_be(&w, mid.n, 4);
        amqp91__put(&w, mid.p, mid.n);
    }
    if (cid.p && !cid.prop) {
        put_shortstr(&w, "x-correlation-id", 16);
        amqp91__put_be(&w, cid.header_bin ? 'x' : 'S', 1);
        amqp91__put_be(&w, cid.n, 4);
        amqp91__put(&w, cid.p, cid.n);
    }
    if (!w.full && w.len > hat + 4) {
        flags |= AMQP91_P_HEADERS;
        w_close91(&w, hat);
    } else if (!w.full) {
        w.len = hat;
    }
    if (has_dm) {
        flags |= AMQP91_P_DELIVERY_MODE;
        amqp91__put_be(&w, dm, 1);
    }
    if (has_prio) {
        flags |= AMQP91_P_PRIORITY;
        amqp91__put_be(&w, prio, 1);
    }
    if (cid.prop) {
        flags |= AMQP91_P_CORRELATION_ID;
        put_shortstr(&w, cid.p, cid.n);
    }
    uint8_t c8;
    if (f[P_REPLY_TO] && str_of(f[P_REPLY_TO], fn[P_REPLY_TO], &s, &sl, &c8) && c8 != C_VBIN8) {
        /* A queue's address may be longer than 255 bytes (escapes), its name not. */
        char q[256];
        size_t qn;
        if (sl >= strlen(QUEUES) && memcmp(s, QUEUES, strlen(QUEUES)) == 0) {
            if (queue_name(s + strlen(QUEUES), sl - strlen(QUEUES), q, &qn)) {
                flags |= AMQP91_P_REPLY_TO;
                put_shortstr(&w, q, qn);
            }
        } else if (sl <= 255) {
            flags |= AMQP91_P_REPLY_TO; /* other addresses as they are, as RabbitMQ 4 does */
            put_shortstr(&w, s, sl);
        }
    }
    if (has_ttl) {
        char e[12];
        flags |= AMQP91_P_EXPIRATION;
        put_shortstr(&w, e, (size_t)snprintf(e, sizeof e, "%" PRIu32, ttl));
    }
    if (mid.prop) {
        flags |= AMQP91_P_MESSAGE_ID;
        put_shortstr(&w, mid.p, mid.n);
    }
    const uint8_t *ct = f[P_CREATION_TIME];
    if (ct && fn[P_CREATION_TIME] == 9 && ct[0] == C_TIMESTAMP && (int64_t)be_get(ct + 1, 8) >= 0) {
        flags |= AMQP91_P_TIMESTAMP;
        amqp91__put_be(&w, be_get(ct + 1, 8) / 1000, 8);
    }
    if (in.kind == BODY_ENCODED) {
        type = (const uint8_t *)AMQP10_TYPE;
        type_n = strlen(AMQP10_TYPE);
    }
    if (type) {
        flags |= AMQP91_P_TYPE;
        put_shortstr(&w, type, type_n);
    }
    if (f[P_USER_ID] && str_of(f[P_USER_ID], fn[P_USER_ID], &s, &sl, &c8) && shortstr_ok(s, sl)) {
        flags |= AMQP91_P_USER_ID;
        put_shortstr(&w, s, sl);
    }
    if (prop_str(f[P_GROUP_ID], fn[P_GROUP_ID], &s, &sl)) {
        flags |= AMQP91_P_APP_ID;
        put_shortstr(&w, s, sl);
    }
    if (w.full || w.len > INT32_MAX)
        return -ENOSPC;
    out[flags_at] = (uint8_t)(flags >> 8);
    out[flags_at + 1] = (uint8_t)flags;
    return (int)w.len;
}

/* *pos: 0 to start; then 1 + the offset of the next data section, or
 * SIZE_MAX once the body is out. */
bool amqp__091_body_next(const rt_msg *m, size_t *pos, const uint8_t **p, size_t *len)
{
    const uint8_t *data = m->buf.data;
    size_t n = m->buf.len;
    if (*pos == SIZE_MAX)
        return false;
    size_t off;
    if (*pos == 0) {
        in10 in;
        if (scan(data, n, false, &in) < 0) {
            *pos = SIZE_MAX;
            return false;
        }
        if (in.kind != BODY_DATA) {
            *pos = SIZE_MAX;
            *p = in.kind == BODY_VALUE ? in.value : data + in.first;
            *len = (size_t)in.body_size;
            return true;
        }
        off = in.first;
    } else {
        off = *pos - 1;
    }
    size_t size, vn, sl;
    const uint8_t *v, *s;
    uint8_t c8;
    if (off >= n || section_at(data + off, n - off, false, &size, &v, &vn) != SEC_DATA || !str_of(v, vn, &s, &sl, &c8)) {
        *pos = SIZE_MAX;
        return false;
    }
    *p = s;
    *len = sl;
    *pos = off + size + 1;
    return true;
}
