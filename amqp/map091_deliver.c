/* map091_deliver.c — the one message model, 0-9-1 side out: a stored AMQP
 * 1.0 message delivered to a 0-9-1 client, as RabbitMQ 4 converts it (the
 * table is in DESIGN.md, "AMQP 0-9-1 message mapping"). The content header
 * is read off the message's sections by a direct decoder (no pn_data_t, no
 * allocation) and the body handed out as views of its bytes, never copied.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "amqp/amqp_internal.h"
#include "amqp/map091.h"

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
        k = n >= 4 ? 4 + (size_t)amqp__m91_be_get(p, 4) : SIZE_MAX;
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
    case RT_C_LIST0: it->p = it->end = p; return true;
    case RT_C_LIST8:
    case RT_C_MAP8:
        if (n < 2 || p[0] < 1 || (size_t)p[0] + 1 > n)
            return false;
        it->p = p + 2;
        it->end = p + 1 + p[0];
        it->left = p[1];
        return true;
    case RT_C_LIST32:
    case RT_C_MAP32: {
        if (n < 8)
            return false;
        uint64_t size = amqp__m91_be_get(p, 4);
        if (size < 4 || size + 4 > n)
            return false;
        it->p = p + 8;
        it->end = p + 4 + size;
        it->left = (uint32_t)amqp__m91_be_get(p + 4, 4);
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
    if (n >= 2 && (v[0] == RT_C_VBIN8 || v[0] == RT_C_STR8 || v[0] == RT_C_SYM8) && (size_t)v[1] + 2 <= n) {
        *code8 = v[0];
        *s = v + 2;
        *len = v[1];
        return true;
    }
    if (n >= 5 && (v[0] == RT_C_VBIN32 || v[0] == RT_C_STR32 || v[0] == RT_C_SYM32) &&
        amqp__m91_be_get(v + 1, 4) + 5 <= n) {
        *code8 = (uint8_t)(v[0] - 0x10);
        *s = v + 5;
        *len = (size_t)amqp__m91_be_get(v + 1, 4);
        return true;
    }
    return false;
}

static bool ulong_of(const uint8_t *v, size_t n, uint64_t *out)
{
    if (n >= 1 && v[0] == RT_C_ULONG0)
        *out = 0;
    else if (n >= 2 && v[0] == RT_C_SMALLULONG)
        *out = v[1];
    else if (n >= 9 && v[0] == RT_C_ULONG)
        *out = amqp__m91_be_get(v + 1, 8);
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
    case RT_C_NULL: amqp91__put_be(w, 'V', 1); return true;
    case RT_C_TRUE:
    case RT_C_FALSE:
        amqp91__put_be(w, 't', 1);
        amqp91__put_be(w, code == RT_C_TRUE, 1);
        return true;
    case RT_C_BOOL:
        amqp91__put_be(w, 't', 1);
        amqp91__put_be(w, p[0] != 0, 1);
        return true;
    case RT_C_UBYTE:
        amqp91__put_be(w, 'B', 1);
        amqp91__put(w, p, 1);
        return true;
    case RT_C_BYTE:
        amqp91__put_be(w, 'b', 1);
        amqp91__put(w, p, 1);
        return true;
    case RT_C_USHORT:
        amqp91__put_be(w, 'u', 1);
        amqp91__put(w, p, 2);
        return true;
    case RT_C_SHORT:
        amqp91__put_be(w, 's', 1);
        amqp91__put(w, p, 2);
        return true;
    case RT_C_UINT:
        amqp91__put_be(w, 'i', 1);
        amqp91__put(w, p, 4);
        return true;
    case RT_C_SMALLUINT:
        amqp91__put_be(w, 'i', 1);
        amqp91__put_be(w, p[0], 4);
        return true;
    case RT_C_UINT0:
        amqp91__put_be(w, 'i', 1);
        amqp91__put_be(w, 0, 4);
        return true;
    case RT_C_INT:
        amqp91__put_be(w, 'I', 1);
        amqp91__put(w, p, 4);
        return true;
    case RT_C_SMALLINT:
        amqp91__put_be(w, 'I', 1);
        amqp91__put_be(w, (uint32_t)(int32_t)(int8_t)p[0], 4);
        return true;
    case RT_C_ULONG: /* RabbitMQ: ulong to long, values over 2^63 wrap */
    case RT_C_LONG:
        amqp91__put_be(w, 'l', 1);
        amqp91__put(w, p, 8);
        return true;
    case RT_C_SMALLULONG:
        amqp91__put_be(w, 'l', 1);
        amqp91__put_be(w, p[0], 8);
        return true;
    case RT_C_ULONG0:
        amqp91__put_be(w, 'l', 1);
        amqp91__put_be(w, 0, 8);
        return true;
    case RT_C_SMALLLONG:
        amqp91__put_be(w, 'l', 1);
        amqp91__put_be(w, (uint64_t)(int64_t)(int8_t)p[0], 8);
        return true;
    case RT_C_FLOAT:
        amqp91__put_be(w, 'f', 1);
        amqp91__put(w, p, 4);
        return true;
    case RT_C_DOUBLE:
        amqp91__put_be(w, 'd', 1);
        amqp91__put(w, p, 8);
        return true;
    case RT_C_TIMESTAMP: {
        int64_t ms = (int64_t)amqp__m91_be_get(p, 8);
        if (ms < 0)
            return false; /* 0-9-1 timestamps are unsigned */
        amqp91__put_be(w, 'T', 1);
        amqp91__put_be(w, (uint64_t)ms / 1000, 8);
        return true;
    }
    case RT_C_VBIN8:
    case RT_C_VBIN32:
    case RT_C_STR8:
    case RT_C_STR32:
    case RT_C_SYM8:
    case RT_C_SYM32: {
        size_t hl = (code >> 4) == 0xa ? 1 : 4;
        amqp91__put_be(w, (code & 0x0f) == 0 ? 'x' : 'S', 1);
        amqp91__put_be(w, (uint64_t)k - hl, 4);
        amqp91__put(w, p + hl, (size_t)k - hl);
        return true;
    }
    case RT_C_LIST0:
    case RT_C_LIST8:
    case RT_C_LIST32:
    case RT_C_MAP8:
    case RT_C_MAP32: {
        if (depth + 1 > AMQP91_TABLE_MAX_DEPTH) {
            *deep = true;
            return false;
        }
        it10 it;
        const uint8_t *v, *kv;
        size_t vn, kn;
        if (!it_open_body(code, p, (size_t)k, &it))
            return false;
        bool map = code == RT_C_MAP8 || code == RT_C_MAP32;
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
            if (!str_of(kv, kn, &s, &sl, &c8) || c8 == RT_C_VBIN8 || sl > 255)
                continue; /* a table's names are short strings */
            put_shortstr(w, s, sl);
            nested_to_091(v, vn, w, depth + 1, deep);
        }
        w_close91(w, at);
        return true;
    }
    case RT_C_ARRAY8:
    case RT_C_ARRAY32: {
        if (depth + 1 > AMQP91_TABLE_MAX_DEPTH) {
            *deep = true;
            return false;
        }
        size_t sw = code == RT_C_ARRAY8 ? 1 : 4;
        if ((size_t)k < 2 * sw + 1)
            return false;
        uint64_t count = amqp__m91_be_get(p + sw, (unsigned)sw);
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
    } syms[] = {{"amqp:header:list", RT_SEC_HEADER},
                {"amqp:delivery-annotations:map", RT_SEC_DELIVERY_ANN},
                {"amqp:message-annotations:map", RT_SEC_MESSAGE_ANN},
                {"amqp:properties:list", RT_SEC_PROPERTIES},
                {"amqp:application-properties:map", RT_SEC_APP_PROPS},
                {"amqp:data:binary", RT_SEC_DATA},
                {"amqp:amqp-sequence:list", RT_SEC_SEQUENCE},
                {"amqp:amqp-value:*", RT_SEC_VALUE},
                {"amqp:footer:map", RT_SEC_FOOTER}};
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
        if (u >= RT_SEC_HEADER && u <= RT_SEC_FOOTER)
            code = (int)u;
    } else if (str_of(d, (size_t)dk, &s, &sl, &c8) && c8 == RT_C_SYM8) {
        for (size_t i = 0; i < sizeof syms / sizeof syms[0]; i++)
            if (amqp__m91_name_is(s, sl, syms[i].name))
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
        if (code >= RT_SEC_DATA && code <= RT_SEC_VALUE) {
            if (!body) {
                body = true;
                in->first = off;
            }
            nbody++;
            const uint8_t *s;
            size_t sl;
            uint8_t c8;
            if (code == RT_SEC_DATA) {
                if (!str_of(v, vn, &s, &sl, &c8) || c8 != RT_C_VBIN8)
                    return -EBADMSG;
                if (in->kind == BODY_DATA)
                    in->body_size += sl;
                else
                    in->kind = BODY_ENCODED;
            } else if (code == RT_SEC_VALUE && nbody == 1 && str_of(v, vn, &s, &sl, &c8) && c8 != RT_C_SYM8) {
                in->kind = BODY_VALUE; /* a string or binary: its bytes are the body */
                in->value = s;
                in->value_n = sl;
            } else {
                in->kind = BODY_ENCODED;
            }
        } else if (code == RT_SEC_FOOTER) {
            footer = true;
        } else if (body) {
            return -EBADMSG; /* the bare message's sections come before the body */
        } else if (code == RT_SEC_HEADER) {
            in->hdr = v, in->hdr_n = vn;
        } else if (code == RT_SEC_MESSAGE_ANN) {
            in->ma = v, in->ma_n = vn;
        } else if (code == RT_SEC_PROPERTIES) {
            in->props = v, in->props_n = vn;
        } else if (code == RT_SEC_APP_PROPS) {
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
        if (v[0] != RT_C_NULL) {
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
    } else if (vn == 17 && v[0] == RT_C_UUID) {
        uuid_urn(v + 1, c->text);
        c->p = (const uint8_t *)c->text;
        c->n = 45;
        c->prop = true;
    } else if (str_of(v, vn, &s, &sl, &c8) && c8 != RT_C_SYM8) {
        c->p = s;
        c->n = sl;
        c->prop = c8 == RT_C_STR8 && sl <= 255;
        c->header_bin = c8 == RT_C_VBIN8;
    }
}

/* A string property as a shortstr, if it is one. */
static bool prop_str(const uint8_t *v, size_t vn, const uint8_t **s, size_t *sl)
{
    uint8_t c8;
    return v && str_of(v, vn, s, sl, &c8) && c8 != RT_C_VBIN8 && *sl <= 255;
}

static void put_longstr(amqp91__wr *w, const void *p, size_t n)
{
    amqp91__put_be(w, 'S', 1);
    amqp91__put_be(w, n, 4);
    amqp91__put(w, p, n);
}

/* One entry of x-opt-deaths (a map: constructor code, bytes p[0..n)) as
 * the table RabbitMQ 4 puts in x-death, its fields in RabbitMQ's order:
 * original-expiration (the ttl taken off, as text) if there was one,
 * count (l), reason, queue (S), time (T, the first death's, in seconds),
 * exchange (S), routing-keys (A). An entry without queue, reason or count
 * is left out. */
static void death_table(uint8_t code, const uint8_t *p, size_t n, amqp91__wr *w)
{
    it10 it;
    if (!it_open_body(code, p, n, &it))
        return;
    const uint8_t *k, *v, *s, *queue = NULL, *reason = NULL, *exchange = NULL, *rkeys = NULL;
    size_t kn, vn, sl, queue_n = 0, reason_n = 0, exchange_n = 0, rkeys_n = 0;
    uint8_t c8;
    uint64_t count = 0, first = 0, ttl = 0;
    bool has_count = false, has_first = false, has_ttl = false;
    while (it_next(&it, &k, &kn) && it_next(&it, &v, &vn)) {
        if (!str_of(k, kn, &s, &sl, &c8) || c8 != RT_C_SYM8)
            continue;
        const uint8_t *t;
        size_t tn;
        uint8_t t8;
        bool text = str_of(v, vn, &t, &tn, &t8) && t8 != RT_C_VBIN8;
        if (amqp__m91_name_is(s, sl, "queue") && text)
            queue = t, queue_n = tn;
        else if (amqp__m91_name_is(s, sl, "reason") && text)
            reason = t, reason_n = tn;
        else if (amqp__m91_name_is(s, sl, "exchange") && text)
            exchange = t, exchange_n = tn;
        else if (amqp__m91_name_is(s, sl, "count") && ulong_of(v, vn, &count))
            has_count = true;
        else if (amqp__m91_name_is(s, sl, "first-time") && vn == 9 && v[0] == RT_C_TIMESTAMP &&
                 (int64_t)amqp__m91_be_get(v + 1, 8) >= 0)
            has_first = true, first = amqp__m91_be_get(v + 1, 8);
        else if (amqp__m91_name_is(s, sl, "routing-keys"))
            rkeys = v, rkeys_n = vn;
        else if (amqp__m91_name_is(s, sl, "ttl") && vn == 5 && v[0] == RT_C_UINT)
            has_ttl = true, ttl = amqp__m91_be_get(v + 1, 4);
        else if (amqp__m91_name_is(s, sl, "ttl") && vn == 2 && v[0] == RT_C_SMALLUINT)
            has_ttl = true, ttl = v[1];
        else if (amqp__m91_name_is(s, sl, "ttl") && vn == 1 && v[0] == RT_C_UINT0)
            has_ttl = true, ttl = 0;
    }
    if (!queue || !reason || !has_count)
        return;
    amqp91__put_be(w, 'F', 1);
    size_t at = w_open91(w);
    if (has_ttl) {
        char e[12];
        put_shortstr(w, "original-expiration", 19);
        put_longstr(w, e, (size_t)snprintf(e, sizeof e, "%" PRIu64, ttl));
    }
    put_shortstr(w, "count", 5);
    amqp91__put_be(w, 'l', 1);
    amqp91__put_be(w, count, 8);
    put_shortstr(w, "reason", 6);
    put_longstr(w, reason, reason_n);
    put_shortstr(w, "queue", 5);
    put_longstr(w, queue, queue_n);
    if (has_first) {
        put_shortstr(w, "time", 4);
        amqp91__put_be(w, 'T', 1);
        amqp91__put_be(w, first / 1000, 8);
    }
    if (exchange) {
        put_shortstr(w, "exchange", 8);
        put_longstr(w, exchange, exchange_n);
    }
    if (rkeys) {
        size_t mark = w->len;
        bool deep = false;
        put_shortstr(w, "routing-keys", 12);
        if (!item_to_091(rkeys, rkeys_n, w, 3, &deep) || deep)
            w->len = w->full ? w->len : mark;
    }
    w_close91(w, at);
}

/* x-opt-deaths, RabbitMQ 4's death history for AMQP 1.0 (an array of maps,
 * newest first), as the x-death header RabbitMQ 4 gives 0-9-1 clients: an
 * array of tables in the same order. False if it is not such an array. */
static bool deaths_to_091(const uint8_t *v, size_t vn, amqp91__wr *w)
{
    if (vn < 1 || (v[0] != RT_C_ARRAY8 && v[0] != RT_C_ARRAY32))
        return false;
    ssize_t k = elem_size(v[0], v + 1, vn - 1);
    size_t sw = v[0] == RT_C_ARRAY8 ? 1 : 4;
    if (k < 0 || (size_t)k < 2 * sw + 1)
        return false;
    const uint8_t *p = v + 1, *q = p + 2 * sw, *end = p + k;
    uint64_t count = amqp__m91_be_get(p + sw, (unsigned)sw);
    uint8_t ec = *q++;
    if (ec != RT_C_MAP8 && ec != RT_C_MAP32)
        return false;
    amqp91__put_be(w, 'A', 1);
    size_t at = w_open91(w);
    for (uint64_t i = 0; i < count; i++) {
        ssize_t e = q < end ? elem_size(ec, q, (size_t)(end - q)) : -1;
        if (e < 0)
            return false;
        death_table(ec, q, (size_t)e, w);
        q += e;
    }
    w_close91(w, at);
    return true;
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
        if (!str_of(k, kn, &s, &sl, &c8) || c8 != RT_C_SYM8 || sl > 255 || !amqp__m91_is_x(s, sl))
            continue;
        if (amqp__m91_name_is(s, sl, "x-basic-type")) {
            const uint8_t *t;
            size_t tn;
            if (prop_str(v, vn, &t, &tn)) {
                *type = t;
                *type_n = tn;
            }
            continue;
        }
        if (amqp__m91_reserved_ma(s, sl) || amqp__m91_name_is(s, sl, "x-death"))
            continue;
        size_t mark = w->len;
        if (amqp__m91_name_is(s, sl, "x-opt-deaths")) {
            put_shortstr(w, "x-death", 7);
            if (!deaths_to_091(v, vn, w))
                w->len = w->full ? w->len : mark;
            continue;
        }
        if (amqp__m91_name_is(s, sl, "x-cc"))
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
        if (!str_of(k, kn, &s, &sl, &c8) || c8 != RT_C_STR8 || sl > 255)
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
            int hi = amqp__m91_hexval(s[i + 1]), lo = amqp__m91_hexval(s[i + 2]);
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
            if (i == 0 && (v[0] == RT_C_TRUE || v[0] == RT_C_FALSE || (v[0] == RT_C_BOOL && vn == 2))) {
                has_dm = true; /* durable given: 2, or 1 (RabbitMQ 4's delivery-mode for a header's durable) */
                dm = v[0] == RT_C_TRUE || (v[0] == RT_C_BOOL && v[1]) ? 2 : 1;
            } else if (i == 1 && v[0] == RT_C_UBYTE && vn == 2)
                has_prio = true, prio = v[1];
            else if (i == 2 && v[0] == RT_C_UINT && vn == 5)
                has_ttl = true, ttl = (uint32_t)amqp__m91_be_get(v + 1, 4);
            else if (i == 2 && v[0] == RT_C_SMALLUINT && vn == 2)
                has_ttl = true, ttl = v[1];
            else if (i == 2 && v[0] == RT_C_UINT0)
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
    if (f[P_REPLY_TO] && str_of(f[P_REPLY_TO], fn[P_REPLY_TO], &s, &sl, &c8) && c8 != RT_C_VBIN8) {
        /* A queue's address may be longer than 255 bytes (escapes), its name not. */
        char q[256];
        size_t qn;
        if (sl >= strlen(MAP_QUEUES) && memcmp(s, MAP_QUEUES, strlen(MAP_QUEUES)) == 0) {
            if (queue_name(s + strlen(MAP_QUEUES), sl - strlen(MAP_QUEUES), q, &qn)) {
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
    if (ct && fn[P_CREATION_TIME] == 9 && ct[0] == RT_C_TIMESTAMP && (int64_t)amqp__m91_be_get(ct + 1, 8) >= 0) {
        flags |= AMQP91_P_TIMESTAMP;
        amqp91__put_be(&w, amqp__m91_be_get(ct + 1, 8) / 1000, 8);
    }
    if (in.kind == BODY_ENCODED) {
        type = (const uint8_t *)MAP_AMQP10_TYPE;
        type_n = strlen(MAP_AMQP10_TYPE);
    }
    if (type) {
        flags |= AMQP91_P_TYPE;
        put_shortstr(&w, type, type_n);
    }
    if (f[P_USER_ID] && str_of(f[P_USER_ID], fn[P_USER_ID], &s, &sl, &c8) && amqp__m91_shortstr_ok(s, sl)) {
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
    if (off >= n || section_at(data + off, n - off, false, &size, &v, &vn) != RT_SEC_DATA ||
        !str_of(v, vn, &s, &sl, &c8)) {
        *pos = SIZE_MAX;
        return false;
    }
    *p = s;
    *len = sl;
    *pos = off + size + 1;
    return true;
}

/* The exchange a message was published to, from its x-exchange message
 * annotation (0-9-1 and RabbitMQ-converted messages carry it): false if it
 * has none, as AMQP 1.0 publishes do. */
bool amqp__091_msg_exchange(const rt_msg *m, amqp91_bytes *out)
{
    in10 in;
    it10 it;
    if (scan(m->buf.data, m->buf.len, true, &in) < 0 || !in.ma || !it_open(in.ma, in.ma_n, &it))
        return false;
    const uint8_t *k, *v, *s, *x;
    size_t kn, vn, sl, xn;
    uint8_t c8;
    while (it_next(&it, &k, &kn) && it_next(&it, &v, &vn))
        if (str_of(k, kn, &s, &sl, &c8) && c8 == RT_C_SYM8 && amqp__m91_name_is(s, sl, "x-exchange") &&
            prop_str(v, vn, &x, &xn) && xn <= 255) {
            *out = (amqp91_bytes){x, (uint32_t)xn};
            return true;
        }
    return false;
}
