/* headers.c — headers exchange bindings: match application properties.
 *
 * A binding's arguments are kept as atoms (type and value), with copies of
 * any string bytes, so matching a message compares its application
 * properties atom by atom: same name, same type, same value. A binding value
 * of null matches on presence alone. x-match is "all" (the default), "any",
 * or "all-with-x" / "any-with-x", which also compare x- headers.
 */
#include <errno.h>
#include <proton/codec.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "routing/rt.h"

typedef struct hdr {
    char *name;
    pn_atom_t value; /* string-like values point into bytes */
    char *bytes;
} hdr;

struct rt_hdrmatch {
    bool any, with_x;
    int n;
    hdr h[];
};

static bool string_like(pn_type_t t) { return t == PN_STRING || t == PN_SYMBOL || t == PN_BINARY; }

void rt_hdrmatch_free(rt_hdrmatch *m)
{
    if (!m)
        return;
    for (int i = 0; i < m->n; i++) {
        free(m->h[i].name);
        free(m->h[i].bytes);
    }
    free(m);
}

static pn_bytes_t key_of(pn_data_t *d)
{
    pn_type_t t = pn_data_type(d);
    return t == PN_STRING ? pn_data_get_string(d) : t == PN_SYMBOL ? pn_data_get_symbol(d) : pn_bytes(0, NULL);
}

static bool bytes_is(pn_bytes_t b, const char *s) { return b.size == strlen(s) && memcmp(b.start, s, b.size) == 0; }

int rt_hdrmatch_new(pn_data_t *args, rt_hdrmatch **out, char *err, size_t errlen)
{
    *out = NULL;
    size_t n = 0;
    if (args) {
        pn_data_rewind(args);
        if (!pn_data_next(args) || pn_data_type(args) != PN_MAP) {
            snprintf(err, errlen, "headers binding arguments must be a map");
            return -EINVAL;
        }
        n = pn_data_get_map(args) / 2;
    }
    rt_hdrmatch *m = calloc(1, sizeof *m + n * sizeof(hdr));
    if (!m)
        return -ENOMEM;
    if (!args) {
        *out = m;
        return 0;
    }
    pn_data_enter(args);
    while (pn_data_next(args)) {
        pn_bytes_t k = key_of(args);
        if (!k.start) {
            snprintf(err, errlen, "headers binding argument names must be strings");
            goto bad;
        }
        if (!pn_data_next(args))
            break;
        pn_atom_t v = pn_data_get_atom(args);
        if (bytes_is(k, "x-match")) {
            pn_bytes_t s = string_like(v.type) ? v.u.as_bytes : pn_bytes(0, NULL);
            if (bytes_is(s, "all") || bytes_is(s, "all-with-x")) {
                m->any = false;
            } else if (bytes_is(s, "any") || bytes_is(s, "any-with-x")) {
                m->any = true;
            } else {
                snprintf(err, errlen, "x-match must be all, any, all-with-x or any-with-x");
                goto bad;
            }
            m->with_x = s.size > 3;
            continue;
        }
        if (v.type == PN_DESCRIBED || v.type == PN_ARRAY || v.type == PN_LIST || v.type == PN_MAP) {
            snprintf(err, errlen, "headers binding value of '%.*s' must be a simple value", (int)k.size, k.start);
            goto bad;
        }
        hdr *h = &m->h[m->n];
        h->name = strndup(k.start, k.size);
        if (!h->name)
            goto oom;
        m->n++;
        h->value = v;
        if (string_like(v.type)) {
            h->bytes = malloc(v.u.as_bytes.size ? v.u.as_bytes.size : 1);
            if (!h->bytes)
                goto oom;
            memcpy(h->bytes, v.u.as_bytes.start, v.u.as_bytes.size);
            h->value.u.as_bytes.start = h->bytes;
        }
    }
    pn_data_exit(args);
    *out = m;
    return 0;
oom:
    rt_hdrmatch_free(m);
    return -ENOMEM;
bad:
    rt_hdrmatch_free(m);
    return -EINVAL;
}

static bool atom_eq(const pn_atom_t *a, const pn_atom_t *b)
{
    if (a->type != b->type)
        return false;
    if (string_like(a->type))
        return a->u.as_bytes.size == b->u.as_bytes.size &&
               memcmp(a->u.as_bytes.start, b->u.as_bytes.start, a->u.as_bytes.size) == 0;
    /* Each type through its own member: the union's other bytes are not
     * set by the decoder and hold whatever was there before. */
    switch (a->type) {
    case PN_NULL: return true;
    case PN_BOOL: return a->u.as_bool == b->u.as_bool;
    case PN_UBYTE: return a->u.as_ubyte == b->u.as_ubyte;
    case PN_BYTE: return a->u.as_byte == b->u.as_byte;
    case PN_USHORT: return a->u.as_ushort == b->u.as_ushort;
    case PN_SHORT: return a->u.as_short == b->u.as_short;
    case PN_UINT: return a->u.as_uint == b->u.as_uint;
    case PN_INT: return a->u.as_int == b->u.as_int;
    case PN_CHAR: return a->u.as_char == b->u.as_char;
    case PN_ULONG: return a->u.as_ulong == b->u.as_ulong;
    case PN_LONG: return a->u.as_long == b->u.as_long;
    case PN_TIMESTAMP: return a->u.as_timestamp == b->u.as_timestamp;
    case PN_FLOAT: return a->u.as_float == b->u.as_float;
    case PN_DOUBLE: return a->u.as_double == b->u.as_double;
    case PN_DECIMAL32: return a->u.as_decimal32 == b->u.as_decimal32;
    case PN_DECIMAL64: return a->u.as_decimal64 == b->u.as_decimal64;
    case PN_DECIMAL128: return !memcmp(a->u.as_decimal128.bytes, b->u.as_decimal128.bytes, 16);
    case PN_UUID: return !memcmp(a->u.as_uuid.bytes, b->u.as_uuid.bytes, 16);
    default: return false;
    }
}

/* Looks name up in the application properties map props is positioned on,
 * and leaves it there. */
static bool find_prop(pn_data_t *props, const char *name, pn_atom_t *out)
{
    if (pn_data_type(props) != PN_MAP)
        return false;
    pn_handle_t at = pn_data_point(props);
    pn_data_enter(props);
    bool found = false;
    while (pn_data_next(props)) {
        pn_bytes_t k = key_of(props);
        if (!pn_data_next(props))
            break;
        if (k.start && bytes_is(k, name)) {
            *out = pn_data_get_atom(props);
            found = true;
            break;
        }
    }
    pn_data_restore(props, at);
    return found;
}

bool rt_hdrmatch_test(const rt_hdrmatch *m, pn_data_t *props)
{
    for (int i = 0; i < m->n; i++) {
        const hdr *h = &m->h[i];
        if (!m->with_x && strncmp(h->name, "x-", 2) == 0)
            continue;
        pn_atom_t v;
        bool ok = props && find_prop(props, h->name, &v) && (h->value.type == PN_NULL || atom_eq(&h->value, &v));
        if (m->any && ok)
            return true;
        if (!m->any && !ok)
            return false;
    }
    /* all: every header matched (an empty binding matches everything);
     * any: none did (an empty binding matches nothing), as in RabbitMQ. */
    return !m->any;
}

/* A value as text: part of a binding's identity, so every value differs. */
static int value_str(const pn_atom_t *v, char *buf, size_t len)
{
    switch (v->type) {
    case PN_NULL: return snprintf(buf, len, "null");
    case PN_BOOL: return snprintf(buf, len, "%s", v->u.as_bool ? "true" : "false");
    case PN_UBYTE: return snprintf(buf, len, "%u", v->u.as_ubyte);
    case PN_BYTE: return snprintf(buf, len, "%d", v->u.as_byte);
    case PN_USHORT: return snprintf(buf, len, "%u", v->u.as_ushort);
    case PN_SHORT: return snprintf(buf, len, "%d", v->u.as_short);
    case PN_UINT: return snprintf(buf, len, "%u", v->u.as_uint);
    case PN_INT: return snprintf(buf, len, "%d", v->u.as_int);
    case PN_CHAR: return snprintf(buf, len, "'%u'", v->u.as_char);
    case PN_ULONG: return snprintf(buf, len, "%llu", (unsigned long long)v->u.as_ulong);
    case PN_LONG: return snprintf(buf, len, "%lld", (long long)v->u.as_long);
    case PN_TIMESTAMP: return snprintf(buf, len, "@%lld", (long long)v->u.as_timestamp);
    case PN_FLOAT: return snprintf(buf, len, "%.9g", (double)v->u.as_float);
    case PN_DOUBLE: return snprintf(buf, len, "%.17g", v->u.as_double);
    case PN_STRING:
    case PN_SYMBOL:
        return snprintf(buf, len, "%s\"%.*s\"", v->type == PN_SYMBOL ? ":" : "", (int)v->u.as_bytes.size,
                        v->u.as_bytes.start);
    default: {
        /* binary, uuid, decimals: hex of the bytes */
        const unsigned char *b =
            v->type == PN_BINARY ? (const unsigned char *)v->u.as_bytes.start : (const unsigned char *)&v->u;
        size_t n = v->type == PN_BINARY ? v->u.as_bytes.size : 16, o = 0;
        for (size_t i = 0; i < n && o + 3 < len; i++)
            o += (size_t)snprintf(buf + o, len - o, "%02x", b[i]);
        return (int)o;
    }
    }
}

void rt_hdrmatch_str(const rt_hdrmatch *m, char *buf, size_t len)
{
    size_t used = (size_t)snprintf(buf, len, "x-match=%s%s", m->any ? "any" : "all", m->with_x ? "-with-x" : "");
    for (int i = 0; i < m->n && used + 2 < len; i++) {
        used += (size_t)snprintf(buf + used, len - used, ",%s=", m->h[i].name);
        if (used < len)
            used += (size_t)value_str(&m->h[i].value, buf + used, len - used);
    }
    if (used >= len && len)
        buf[len - 1] = '\0';
}

int rt_hdrmatch_put(const rt_hdrmatch *m, pn_data_t *out)
{
    char xm[16];
    snprintf(xm, sizeof xm, "%s%s", m->any ? "any" : "all", m->with_x ? "-with-x" : "");
    pn_data_put_map(out);
    pn_data_enter(out);
    pn_data_put_string(out, pn_bytes(7, "x-match"));
    pn_data_put_string(out, pn_bytes(strlen(xm), xm));
    for (int i = 0; i < m->n; i++) {
        pn_data_put_string(out, pn_bytes(strlen(m->h[i].name), m->h[i].name));
        pn_data_put_atom(out, m->h[i].value);
    }
    pn_data_exit(out);
    return pn_data_errno(out) ? -ENOMEM : 0;
}
