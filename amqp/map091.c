/* map091.c — the one message model, 0-9-1 side in: a 0-9-1 publish (basic
 * properties and body) as the AMQP 1.0 message bytes Plexus keeps, following
 * RabbitMQ 4's documented conversions so messages look the same to clients
 * moving between the two brokers (map091_deliver.c is the way back). The
 * mapping table is in DESIGN.md ("AMQP 0-9-1 message mapping", in the AMQP
 * front end section).
 *
 * A direct encoder (no pn_data_t, no allocation beyond the rt_msg): one
 * pass sizes the sections the properties need, the second writes them into
 * the rt_msg, then the head of one data section the body is copied behind.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "amqp/amqp_internal.h"
#include "amqp/map091.h"

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
        int hi = amqp__m91_hexval(p[i]), lo = amqp__m91_hexval(p[i + 1]);
        if (hi < 0 || lo < 0)
            return false;
        out[o++] = (uint8_t)(hi << 4 | lo);
        i += 2;
    }
    return true;
}

/* Address characters left as they are: RFC 3986 unreserved and the
 * sub-delims and ':' '@' that amqp_addr_queue also leaves (the same address
 * a queue's name gets everywhere in Plexus). */
static bool addr_plain(uint8_t c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           (c && strchr("-._~!$&'()*+,;=:@", c));
}

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
    uint8_t b[3] = {0x00, RT_C_SMALLULONG, code};
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
        return r->end - r->p >= 9 && amqp__m91_be_get(r->p + 1, 8) <= (uint64_t)TS_MAX_S;
    return true;
}

static void v91_to_10(amqp91__rd *r, w10 *w);

/* A table's content as a map with symbol keys (RabbitMQ's from_091). */
static void table_to_10(amqp91__rd *r, w10 *w)
{
    size_t at = w_open(w, RT_C_MAP32);
    uint32_t count = 0;
    while (r->ok && r->p < r->end) {
        amqp91_bytes name = amqp91__span(r, (size_t)amqp91__be(r, 1));
        if (!r->ok)
            break;
        w_var(w, RT_C_SYM8, name.p, name.len);
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
        w_u8(w, RT_C_NULL);
        return;
    }
    uint8_t tag = (uint8_t)amqp91__be(r, 1);
    switch (tag) {
    case 't': w_u8(w, amqp91__be(r, 1) ? RT_C_TRUE : RT_C_FALSE); break;
    case 'b':
        w_u8(w, RT_C_BYTE);
        w_be(w, amqp91__be(r, 1), 1);
        break;
    case 'B':
        w_u8(w, RT_C_UBYTE);
        w_be(w, amqp91__be(r, 1), 1);
        break;
    case 's':
        w_u8(w, RT_C_SHORT);
        w_be(w, amqp91__be(r, 2), 2);
        break;
    case 'u':
        w_u8(w, RT_C_USHORT);
        w_be(w, amqp91__be(r, 2), 2);
        break;
    case 'I':
        w_u8(w, RT_C_INT);
        w_be(w, amqp91__be(r, 4), 4);
        break;
    case 'i':
        w_u8(w, RT_C_UINT);
        w_be(w, amqp91__be(r, 4), 4);
        break;
    case 'l':
        w_u8(w, RT_C_LONG);
        w_be(w, amqp91__be(r, 8), 8);
        break;
    case 'f':
        w_u8(w, RT_C_FLOAT);
        w_be(w, amqp91__be(r, 4), 4);
        break; /* both IEEE 754, big-endian */
    case 'd':
        w_u8(w, RT_C_DOUBLE);
        w_be(w, amqp91__be(r, 8), 8);
        break;
    case 'T':
        w_u8(w, RT_C_TIMESTAMP);
        w_be(w, amqp91__be(r, 8) * 1000, 8);
        break; /* seconds to ms */
    case 'V': w_u8(w, RT_C_NULL); break;
    case 'S':
    case 'x': {
        amqp91_bytes s = amqp91__span(r, (size_t)amqp91__be(r, 4));
        /* RabbitMQ's rule: a longstr that passes as a shortstr is a string,
         * anything else binary (checking long ones for UTF-8 costs). */
        w_var(w, tag == 'S' && amqp__m91_shortstr_ok(s.p, s.len) ? RT_C_STR8 : RT_C_VBIN8, s.p, s.len);
        break;
    }
    case 'F': {
        amqp91_bytes b = amqp91__span(r, (size_t)amqp91__be(r, 4));
        if (!r->ok || !b.len) {
            if (tag == 'F')
                table_to_10(&(amqp91__rd){NULL, NULL, false}, w);
            else
                w_close(w, w_open(w, RT_C_LIST32), 0);
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
                w_close(w, w_open(w, RT_C_LIST32), 0);
            break;
        }
        amqp91__rd in = {b.p, b.p + b.len, true};
        size_t at = w_open(w, RT_C_LIST32);
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
        bool x = amqp__m91_is_x(name.p, name.len), cc = amqp__m91_name_is(name.p, name.len, "CC") && tag == 'A';
        bool take =
            annotations ? (x && !amqp__m91_reserved_ma(name.p, name.len)) || cc : !x && !cc && tag != 'A' && tag != 'F';
        if (!take || !v91_convertible(&r)) {
            v91_skip(&r);
            continue;
        }
        if (annotations) {
            if (cc)
                w_var(w, RT_C_SYM8, (const uint8_t *)"x-cc", 4);
            else
                w_var(w, RT_C_SYM8, name.p, name.len);
        } else {
            w_var(w, RT_C_STR8, name.p, name.len);
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
        w_section(w, RT_SEC_HEADER);
        size_t at = w_open(w, RT_C_LIST32);
        uint32_t n = 1;
        /* durable only if delivery-mode was there: null reads as false in
         * 1.0 and as no delivery-mode on the way back */
        w_u8(w, !(f & AMQP91_P_DELIVERY_MODE) ? RT_C_NULL : p->delivery_mode == 2 ? RT_C_TRUE : RT_C_FALSE);
        if (f & (AMQP91_P_PRIORITY | AMQP91_P_EXPIRATION)) {
            n++;
            if (f & AMQP91_P_PRIORITY) {
                w_u8(w, RT_C_UBYTE);
                w_u8(w, p->priority);
            } else {
                w_u8(w, RT_C_NULL);
            }
        }
        if (f & AMQP91_P_EXPIRATION) {
            n++;
            w_u8(w, RT_C_UINT);
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
        w_section(w, RT_SEC_MESSAGE_ANN);
        at = w_open(w, RT_C_MAP32);
        if (b->exchange) {
            w_var(w, RT_C_SYM8, (const uint8_t *)"x-exchange", 10);
            w_var(w, RT_C_STR8, (const uint8_t *)b->exchange, strlen(b->exchange));
        }
        if (b->rkey) {
            w_var(w, RT_C_SYM8, (const uint8_t *)"x-routing-key", 13);
            w_var(w, RT_C_STR8, (const uint8_t *)b->rkey, strlen(b->rkey));
        }
        if (f & AMQP91_P_TYPE) {
            w_var(w, RT_C_SYM8, (const uint8_t *)"x-basic-type", 12);
            w_str_field(w, RT_C_STR8, p->type);
        }
        if (f & AMQP91_P_HEADERS)
            headers_to_10(b, w, true);
        w_close(w, at, b->n_ma);
    }
    /* properties */
    static const uint16_t pflag[P_NFIELDS] = {
        [P_MESSAGE_ID] = AMQP91_P_MESSAGE_ID,     [P_USER_ID] = AMQP91_P_USER_ID,
        [P_REPLY_TO] = AMQP91_P_REPLY_TO,         [P_CORRELATION_ID] = AMQP91_P_CORRELATION_ID,
        [P_CONTENT_TYPE] = AMQP91_P_CONTENT_TYPE, [P_CONTENT_ENCODING] = AMQP91_P_CONTENT_ENCODING,
        [P_CREATION_TIME] = AMQP91_P_TIMESTAMP,   [P_GROUP_ID] = AMQP91_P_APP_ID,
    };
    int last = -1;
    for (int i = 0; i < P_NFIELDS; i++)
        if (pflag[i] & f)
            last = i;
    if (last >= 0) {
        w_section(w, RT_SEC_PROPERTIES);
        at = w_open(w, RT_C_LIST32);
        for (int i = 0; i <= last; i++) {
            if (!(pflag[i] & f)) {
                w_u8(w, RT_C_NULL);
                continue;
            }
            switch (i) {
            case P_MESSAGE_ID:
            case P_CORRELATION_ID: {
                bool u = i == P_MESSAGE_ID ? b->has_uuid_mid : b->has_uuid_cid;
                if (u) {
                    w_u8(w, RT_C_UUID);
                    w_put(w, i == P_MESSAGE_ID ? b->mid : b->cid, 16);
                } else {
                    w_str_field(w, RT_C_STR8, i == P_MESSAGE_ID ? p->message_id : p->correlation_id);
                }
                break;
            }
            case P_USER_ID: w_str_field(w, RT_C_VBIN8, p->user_id); break;
            case P_REPLY_TO: {
                /* RabbitMQ 4: a 0-9-1 reply-to names a queue; 1.0 wants its address. */
                size_t len = strlen(MAP_QUEUES);
                for (uint32_t k = 0; k < p->reply_to.len; k++)
                    len += addr_plain(p->reply_to.p[k]) ? 1 : 3;
                if (len <= 255) {
                    w_u8(w, RT_C_STR8);
                    w_u8(w, (uint8_t)len);
                } else {
                    w_u8(w, RT_C_STR32);
                    w_be(w, len, 4);
                }
                w_put(w, MAP_QUEUES, strlen(MAP_QUEUES));
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
            case P_CONTENT_TYPE: w_str_field(w, RT_C_SYM8, p->content_type); break;
            case P_CONTENT_ENCODING: w_str_field(w, RT_C_SYM8, p->content_encoding); break;
            case P_CREATION_TIME:
                w_u8(w, RT_C_TIMESTAMP);
                w_be(w, p->timestamp * 1000, 8);
                break;
            case P_GROUP_ID: w_str_field(w, RT_C_STR8, p->app_id); break; /* as RabbitMQ 4 does */
            }
        }
        w_close(w, at, (uint32_t)last + 1);
    }
    /* application properties */
    if (b->n_ap) {
        w_section(w, RT_SEC_APP_PROPS);
        at = w_open(w, RT_C_MAP32);
        headers_to_10(b, w, false);
        w_close(w, at, b->n_ap);
    }
    /* the data section's head; the body follows */
    w_section(w, RT_SEC_DATA);
    if (b->body_size <= 255) {
        w_u8(w, RT_C_VBIN8);
        w_u8(w, (uint8_t)b->body_size);
    } else {
        w_u8(w, RT_C_VBIN32);
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
    b.has_uuid_cid =
        (p->flags & AMQP91_P_CORRELATION_ID) && urn_uuid(p->correlation_id.p, p->correlation_id.len, b.cid);
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
