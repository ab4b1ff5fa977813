/* amqp091.c — the AMQP 0-9-1 codec's frames, protocol header, methods and
 * content headers (field tables are in amqp091_table.c).
 *
 * Methods and basic's properties are not decoded by hand-written code per
 * method: amqp091_methods.c (generated from the spec) lists each one's fields
 * with their wire types and struct offsets, and one small interpreter here
 * reads and writes them all. So every method gets the same bounds checks,
 * and the spec, not a typist, decides the field order.
 */
#include <errno.h>
#include <stddef.h>
#include <string.h>

#include "amqp/amqp091.h"

const uint8_t amqp91_proto_header[8] = {'A', 'M', 'Q', 'P', 0, 0, 9, 1};

#define FAIL(code, text)                                                                                               \
    do {                                                                                                               \
        if (why)                                                                                                       \
            *why = (text);                                                                                             \
        return -(code);                                                                                                \
    } while (0)

/* ------------------------------------------------------ protocol header */

amqp91_proto amqp91_proto_classify(const uint8_t *b, size_t n)
{
    static const struct {
        uint8_t v[4];
        amqp91_proto p;
    } known[] = {{{0, 0, 9, 1}, AMQP91_PROTO_091},
                 {{1, 1, 0, 9}, AMQP91_PROTO_091}, /* Net::AMQP's header for 0-9-1, as RabbitMQ takes it */
                 {{0, 1, 0, 0}, AMQP91_PROTO_10},
                 {{3, 1, 0, 0}, AMQP91_PROTO_10_SASL},
                 {{2, 1, 0, 0}, AMQP91_PROTO_10_TLS}};
    if (memcmp(b, "AMQP", n < 4 ? n : 4) != 0)
        return AMQP91_PROTO_NOT_AMQP;
    if (n < 8)
        return AMQP91_PROTO_NEED_MORE;
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (memcmp(b + 4, known[i].v, 4) == 0)
            return known[i].p;
    return AMQP91_PROTO_OTHER;
}

/* --------------------------------------------------------------- frames */

int amqp91_frame_read(const uint8_t *b, size_t n, uint32_t frame_max, amqp91_frame *f, const char **why)
{
    if (n < 1)
        return 0;
    uint8_t type = b[0];
    if (type != AMQP91_FRAME_METHOD && type != AMQP91_FRAME_HEADER && type != AMQP91_FRAME_BODY &&
        type != AMQP91_FRAME_HEARTBEAT)
        FAIL(AMQP91_FRAME_ERROR, "unknown frame type");
    if (n < 7)
        return 0;
    uint16_t ch = (uint16_t)(b[1] << 8 | b[2]);
    uint32_t size = (uint32_t)b[3] << 24 | (uint32_t)b[4] << 16 | (uint32_t)b[5] << 8 | b[6];
    if (frame_max && (uint64_t)size + AMQP91_FRAME_OVERHEAD > frame_max)
        FAIL(AMQP91_FRAME_ERROR, "frame larger than the negotiated frame-max");
    if (type == AMQP91_FRAME_HEARTBEAT && ch != 0)
        FAIL(AMQP91_FRAME_ERROR, "heartbeat frame on a channel other than 0");
    if (type == AMQP91_FRAME_HEARTBEAT && size != 0)
        FAIL(AMQP91_FRAME_ERROR, "heartbeat frame with a payload");
    size_t len = (size_t)size + AMQP91_FRAME_OVERHEAD;
    if (n < len)
        return 0;
    if (b[len - 1] != AMQP91_FRAME_END)
        FAIL(AMQP91_FRAME_ERROR, "frame-end octet is not 0xCE");
    f->type = type;
    f->channel = ch;
    f->size = size;
    f->payload = b + 7;
    f->len = len;
    return 1;
}

int amqp91_frame_write(uint8_t type, uint16_t channel, const uint8_t *payload, uint32_t size, uint8_t *out, size_t cap)
{
    amqp91__wr w = {out, 0, cap, false};
    amqp91__put_be(&w, type, 1);
    amqp91__put_be(&w, channel, 2);
    amqp91__put_be(&w, size, 4);
    amqp91__put(&w, payload, size);
    amqp91__put_be(&w, AMQP91_FRAME_END, 1);
    return w.full || w.len > INT32_MAX ? -ENOSPC : (int)w.len;
}

int amqp91_heartbeat_write(uint8_t *out, size_t cap)
{
    return amqp91_frame_write(AMQP91_FRAME_HEARTBEAT, 0, NULL, 0, out, cap);
}

/* ------------------------------------------------------ the interpreter */

const amqp91_mdesc *amqp91_method_desc(uint32_t id)
{
    size_t lo = 0, hi = AMQP91_METHOD_COUNT;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (amqp91_methods[mid].id == id)
            return &amqp91_methods[mid];
        if (amqp91_methods[mid].id < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

/* One field of any type but bit into dst; false with *why on bad bytes. */
static bool field_read(amqp91__rd *r, uint8_t type, char *dst, const char **why)
{
    amqp91_bytes *s = (amqp91_bytes *)dst;
    switch (type) {
    case AMQP91_T_OCTET: *(uint8_t *)dst = (uint8_t)amqp91__be(r, 1); break;
    case AMQP91_T_SHORT: *(uint16_t *)dst = (uint16_t)amqp91__be(r, 2); break;
    case AMQP91_T_LONG: *(uint32_t *)dst = (uint32_t)amqp91__be(r, 4); break;
    case AMQP91_T_LONGLONG:
    case AMQP91_T_TIMESTAMP: *(uint64_t *)dst = amqp91__be(r, 8); break;
    case AMQP91_T_SHORTSTR: *s = amqp91__span(r, (size_t)amqp91__be(r, 1)); break;
    case AMQP91_T_LONGSTR: *s = amqp91__span(r, (size_t)amqp91__be(r, 4)); break;
    case AMQP91_T_TABLE:
        *s = amqp91__span(r, (size_t)amqp91__be(r, 4));
        if (r->ok && amqp91_table_check(s->p, s->len, why) < 0) {
            r->ok = false;
            return false;
        }
        break;
    }
    if (!r->ok && why)
        *why = "frame payload ends inside a field";
    return r->ok;
}

static int fields_decode(amqp91__rd *r, const amqp91_fdesc *f, unsigned nf, void *base, const char **why)
{
    unsigned bit = 8; /* next bit in the open bit octet; 8: none open */
    unsigned bits = 0;
    for (unsigned i = 0; i <= nf; i++) {
        bool is_bit = i < nf && f[i].type == AMQP91_T_BIT;
        if (!is_bit && bit < 8 && (bits >> bit) != 0)
            FAIL(AMQP91_SYNTAX_ERROR, "bits set beyond a method's bit fields");
        if (i == nf)
            break;
        char *dst = (char *)base + f[i].off;
        if (is_bit) {
            if (bit == 8) {
                bits = (unsigned)amqp91__be(r, 1);
                bit = 0;
                if (!r->ok)
                    FAIL(AMQP91_SYNTAX_ERROR, "frame payload ends inside a field");
            }
            *(bool *)dst = (bits >> bit++) & 1;
            continue;
        }
        bit = 8;
        const char *w = NULL;
        if (!field_read(r, f[i].type, dst, &w))
            FAIL(AMQP91_SYNTAX_ERROR, w);
    }
    return 0;
}

/* -EINVAL for what the wire cannot carry; a full buffer shows in w->full. */
static int field_write(amqp91__wr *w, uint8_t type, const char *src)
{
    const amqp91_bytes *s = (const amqp91_bytes *)src;
    switch (type) {
    case AMQP91_T_OCTET: amqp91__put_be(w, *(const uint8_t *)src, 1); break;
    case AMQP91_T_SHORT: amqp91__put_be(w, *(const uint16_t *)src, 2); break;
    case AMQP91_T_LONG: amqp91__put_be(w, *(const uint32_t *)src, 4); break;
    case AMQP91_T_LONGLONG:
    case AMQP91_T_TIMESTAMP: amqp91__put_be(w, *(const uint64_t *)src, 8); break;
    case AMQP91_T_SHORTSTR:
        if (s->len > 255)
            return -EINVAL;
        amqp91__put_be(w, s->len, 1);
        amqp91__put(w, s->p, s->len);
        break;
    case AMQP91_T_TABLE:
        if (s->len && amqp91_table_check(s->p, s->len, NULL) < 0)
            return -EINVAL;
        amqp91__put_be(w, s->len, 4); /* as a longstr */
        amqp91__put(w, s->p, s->len);
        break;
    case AMQP91_T_LONGSTR:
        amqp91__put_be(w, s->len, 4);
        amqp91__put(w, s->p, s->len);
        break;
    }
    return 0;
}

static int fields_encode(amqp91__wr *w, const amqp91_fdesc *f, unsigned nf, const void *base)
{
    unsigned bit = 0, bits = 0;
    for (unsigned i = 0; i < nf; i++) {
        const char *src = (const char *)base + f[i].off;
        if (f[i].type == AMQP91_T_BIT) {
            bits |= (unsigned)*(const bool *)src << bit;
            if (++bit == 8 || i + 1 == nf || f[i + 1].type != AMQP91_T_BIT) {
                amqp91__put_be(w, bits, 1);
                bit = bits = 0;
            }
            continue;
        }
        int rc = field_write(w, f[i].type, src);
        if (rc < 0)
            return rc;
    }
    return w->full ? -ENOSPC : 0;
}

/* -------------------------------------------------------------- methods */

int amqp91_method_decode(const uint8_t *p, size_t n, amqp91_method *m, const char **why)
{
    amqp91__rd r = {p, p + n, true};
    uint32_t id = (uint32_t)amqp91__be(&r, 4);
    if (!r.ok)
        FAIL(AMQP91_SYNTAX_ERROR, "method frame shorter than its class and method ids");
    const amqp91_mdesc *d = amqp91_method_desc(id);
    if (!d)
        FAIL(AMQP91_NOT_IMPLEMENTED, "unknown class or method id");
    memset(m, 0, sizeof *m);
    m->id = id;
    m->desc = d;
    int rc = fields_decode(&r, d->fields, d->nfields, &m->a, why);
    if (rc < 0)
        return rc;
    if (r.p != r.end)
        FAIL(AMQP91_SYNTAX_ERROR, "bytes left over after a method's last field");
    return 0;
}

int amqp91_method_encode(const amqp91_method *m, uint8_t *out, size_t cap)
{
    const amqp91_mdesc *d = amqp91_method_desc(m->id);
    if (!d)
        return -EINVAL;
    amqp91__wr w = {out, 0, cap, false};
    amqp91__put_be(&w, m->id, 4);
    int rc = fields_encode(&w, d->fields, d->nfields, &m->a);
    if (rc < 0)
        return rc;
    return w.len > INT32_MAX ? -ENOSPC : (int)w.len;
}

int amqp91_method_frame(uint16_t ch, const amqp91_method *m, uint8_t *out, size_t cap)
{
    if (cap < AMQP91_FRAME_OVERHEAD)
        return -ENOSPC;
    int n = amqp91_method_encode(m, out + 7, cap - AMQP91_FRAME_OVERHEAD);
    if (n < 0)
        return n;
    amqp91__wr w = {out, 0, cap, false};
    amqp91__put_be(&w, AMQP91_FRAME_METHOD, 1);
    amqp91__put_be(&w, ch, 2);
    amqp91__put_be(&w, (uint32_t)n, 4);
    out[7 + n] = AMQP91_FRAME_END;
    return n + (int)AMQP91_FRAME_OVERHEAD;
}

/* ------------------------------------------------------- content header */

int amqp91_header_decode(const uint8_t *p, size_t n, amqp91_header *h, const char **why)
{
    amqp91__rd r = {p, p + n, true};
    memset(h, 0, sizeof *h);
    h->class_id = (uint16_t)amqp91__be(&r, 2);
    uint16_t weight = (uint16_t)amqp91__be(&r, 2);
    h->body_size = amqp91__be(&r, 8);
    uint16_t flags = (uint16_t)amqp91__be(&r, 2);
    if (!r.ok)
        FAIL(AMQP91_SYNTAX_ERROR, "content header shorter than its fixed fields");
    if (h->class_id != AMQP91_BASIC_CLASS)
        FAIL(AMQP91_NOT_IMPLEMENTED, "content header for a class other than basic");
    if (weight != 0)
        FAIL(AMQP91_SYNTAX_ERROR, "content header weight is not 0");
    if (flags & 1)
        FAIL(AMQP91_SYNTAX_ERROR, "content header flag continuation: basic has no 15th property");
    if (flags & (1u << (15 - AMQP91_PROP_COUNT)))
        FAIL(AMQP91_SYNTAX_ERROR, "content header flags an unused property bit");
    h->props.flags = flags;
    for (unsigned i = 0; i < AMQP91_PROP_COUNT; i++) {
        if (!(flags & (1u << (15 - i))))
            continue;
        const char *w = NULL;
        if (!field_read(&r, amqp91_prop_fields[i].type, (char *)&h->props + amqp91_prop_fields[i].off, &w))
            FAIL(AMQP91_SYNTAX_ERROR, w);
    }
    if (r.p != r.end)
        FAIL(AMQP91_SYNTAX_ERROR, "bytes left over after a content header's last property");
    return 0;
}

int amqp91_header_encode(const amqp91_header *h, uint8_t *out, size_t cap)
{
    uint16_t flags = h->props.flags;
    if (h->class_id != AMQP91_BASIC_CLASS || (flags & ((1u << (16 - AMQP91_PROP_COUNT)) - 1)))
        return -EINVAL;
    amqp91__wr w = {out, 0, cap, false};
    amqp91__put_be(&w, h->class_id, 2);
    amqp91__put_be(&w, 0, 2);
    amqp91__put_be(&w, h->body_size, 8);
    amqp91__put_be(&w, flags, 2);
    for (unsigned i = 0; i < AMQP91_PROP_COUNT; i++) {
        if (!(flags & (1u << (15 - i))))
            continue;
        int rc = field_write(&w, amqp91_prop_fields[i].type, (const char *)&h->props + amqp91_prop_fields[i].off);
        if (rc < 0)
            return rc;
    }
    return w.full || w.len > INT32_MAX ? -ENOSPC : (int)w.len;
}
