/* msg.c — rt_msg: an AMQP 1.0 message as the bytes it arrived in.
 *
 * One allocation holds the struct, the encoded bytes and copies of the few
 * property strings routing needs. Sections are decoded with proton's
 * decoder one at a time, and only up to the first body section: a 16 MiB
 * body is copied once (off the socket) and never decoded. A redelivery only
 * re-encodes the small header section in front of the original bytes.
 */
#include <errno.h>
#include <pthread.h>
#include <proton/codec.h>
#include <proton/message.h>
#include <stdlib.h>
#include <string.h>

#include "routing/rt.h"

#define F_RKEY_OWNED 1u

/* One decoder per thread, reused: creating a pn_data_t per message costs
 * more than the decoding. The key frees it when the thread ends. */
static _Thread_local pn_data_t *tls_data;
static pthread_key_t data_key;
static pthread_once_t data_once = PTHREAD_ONCE_INIT;

static void data_free(void *d) { pn_data_free(d); }
static void data_key_init(void) { pthread_key_create(&data_key, data_free); }

static pn_data_t *scratch(void)
{
    if (!tls_data) {
        pthread_once(&data_once, data_key_init);
        tls_data = pn_data(16);
        pthread_setspecific(data_key, tls_data);
    } else {
        pn_data_clear(tls_data);
    }
    return tls_data;
}

/* The section code of the described value at p, without decoding it: the
 * constructor 0x00, then a small-ulong (0x53 code) or ulong (0x80, 8 bytes)
 * descriptor. Symbolic descriptors give 0 ("decode to find out"). */
static int peek_section(const unsigned char *p, size_t len)
{
    if (len >= 3 && p[0] == 0x00 && p[1] == 0x53)
        return p[2];
    if (len >= 10 && p[0] == 0x00 && p[1] == 0x80)
        return memcmp(p + 2, "\0\0\0\0\0\0\0", 7) ? RT_SEC_DATA : p[9]; /* no section code is that large */
    return 0;
}

static int section_of_symbol(pn_bytes_t s)
{
    static const struct {
        const char *name;
        int code;
    } syms[] = {{"amqp:header:list", RT_SEC_HEADER},
                {"amqp:delivery-annotations:map", RT_SEC_DELIVERY_ANN},
                {"amqp:message-annotations:map", RT_SEC_MESSAGE_ANN},
                {"amqp:properties:list", RT_SEC_PROPERTIES},
                {"amqp:application-properties:map", RT_SEC_APP_PROPS}};
    for (size_t i = 0; i < sizeof syms / sizeof syms[0]; i++)
        if (s.size == strlen(syms[i].name) && memcmp(s.start, syms[i].name, s.size) == 0)
            return syms[i].code;
    return RT_SEC_DATA;
}

/* Positions d on the section's value (a list or map); returns its code. */
static int enter_section(pn_data_t *d)
{
    pn_data_rewind(d);
    if (!pn_data_next(d) || pn_data_type(d) != PN_DESCRIBED)
        return -1;
    pn_data_enter(d);
    if (!pn_data_next(d))
        return -1;
    int code;
    if (pn_data_type(d) == PN_ULONG) /* not cast down: 0x100000070 is no header */
        code = pn_data_get_ulong(d) < RT_SEC_DATA ? (int)pn_data_get_ulong(d) : RT_SEC_DATA;
    else if (pn_data_type(d) == PN_SYMBOL)
        code = section_of_symbol(pn_data_get_symbol(d));
    else
        return -1;
    if (!pn_data_next(d))
        return -1;
    return code;
}

/* The encoded value at p: its whole length and the length of its
 * constructor and size fields (so a string's or binary's bytes are what
 * follows them); 0 if it does not fit in n. */
static size_t enc_len(const unsigned char *p, size_t n, size_t *hdr)
{
    if (!n)
        return 0;
    uint8_t c = p[0];
    size_t h = 1, body;
    switch (c >> 4) {
    case 0x4: body = 0; break;
    case 0x5: body = 1; break;
    case 0x6: body = 2; break;
    case 0x7: body = 4; break;
    case 0x8: body = 8; break;
    case 0x9: body = 16; break;
    case 0xa:
    case 0xc:
    case 0xe: /* one-byte size */
        if (n < 2)
            return 0;
        h = 2;
        body = p[1];
        break;
    case 0xb:
    case 0xd:
    case 0xf: /* four-byte size */
        if (n < 5)
            return 0;
        h = 5;
        body = (size_t)p[1] << 24 | (size_t)p[2] << 16 | (size_t)p[3] << 8 | p[4];
        break;
    default: return 0;
    }
    if (body > n - h)
        return 0;
    *hdr = h; /* lists, maps, arrays: the size field counts what follows it, as for strings */
    return h + body;
}

/* The body's bytes, as RabbitMQ counts a message for x-max-length-bytes:
 * the data sections' payloads, a string or binary amqp-value's bytes, or
 * the encoded value of any other body; the footer does not count. What
 * cannot be walked counts whole. */
static uint32_t body_bytes(const unsigned char *p, size_t n)
{
    uint64_t total = 0;
    size_t off = 0;
    while (off < n) {
        const unsigned char *s = p + off;
        size_t left = n - off, d, h;
        if (left < 3 || s[0] != 0x00)
            return (uint32_t)n;
        int code = -1;
        if (s[1] == RT_C_SMALLULONG) {
            code = s[2];
            d = 3;
        } else if (s[1] == RT_C_ULONG && left >= 10) {
            code = memcmp(s + 2, "\0\0\0\0\0\0\0", 7) ? -1 : s[9];
            d = 10;
        } else if ((d = enc_len(s + 1, left - 1, &h)) > 0 && (s[1] == RT_C_SYM8 || s[1] == RT_C_SYM32)) {
            if (d - h == 15 && !memcmp(s + 1 + h, "amqp:footer:map", 15))
                code = RT_SEC_FOOTER;
            else if (d - h == 16 && !memcmp(s + 1 + h, "amqp:data:binary", 16))
                code = RT_SEC_DATA;
            d += 1;
        } else {
            return (uint32_t)n;
        }
        if (code == RT_SEC_FOOTER)
            break;
        size_t v = enc_len(s + d, left - d, &h);
        if (!v)
            return (uint32_t)n;
        uint8_t t = s[d];
        bool bytes = t == RT_C_VBIN8 || t == RT_C_VBIN32 || t == RT_C_STR8 || t == RT_C_STR32 || t == RT_C_SYM8 ||
                     t == RT_C_SYM32;
        total += bytes && (code == RT_SEC_DATA || code == RT_SEC_VALUE) ? v - h : v;
        off += d + v;
    }
    return total > UINT32_MAX ? UINT32_MAX : (uint32_t)total;
}

typedef struct parsed {
    bool durable, first_acquirer, has_priority, has_ttl;
    uint8_t priority;
    uint32_t ttl, delivery_count;
    int64_t absolute_expiry;
    pn_bytes_t to, subject, reply_to;
    uint32_t hdr_len, ap_off, ap_len;
    uint32_t body_len;
} parsed;

static void read_header(pn_data_t *d, parsed *p)
{
    if (pn_data_type(d) != PN_LIST)
        return;
    pn_data_enter(d);
    for (int field = 0; pn_data_next(d); field++) {
        pn_type_t t = pn_data_type(d);
        if (field == 0 && t == PN_BOOL)
            p->durable = pn_data_get_bool(d);
        else if (field == 1 && t == PN_UBYTE) {
            p->priority = pn_data_get_ubyte(d);
            p->has_priority = true;
        } else if (field == 2 && t == PN_UINT) {
            p->ttl = pn_data_get_uint(d);
            p->has_ttl = true;
        } else if (field == 3 && t == PN_BOOL)
            p->first_acquirer = pn_data_get_bool(d);
        else if (field == 4 && t == PN_UINT)
            p->delivery_count = pn_data_get_uint(d);
    }
    pn_data_exit(d);
}

static pn_bytes_t string_of(pn_data_t *d)
{
    pn_type_t t = pn_data_type(d);
    if (t == PN_STRING)
        return pn_data_get_string(d);
    if (t == PN_SYMBOL)
        return pn_data_get_symbol(d);
    return pn_bytes(0, NULL);
}

static void read_properties(pn_data_t *d, parsed *p)
{
    if (pn_data_type(d) != PN_LIST)
        return;
    pn_data_enter(d);
    for (int field = 0; pn_data_next(d); field++) {
        if (field == 2)
            p->to = string_of(d);
        else if (field == 3)
            p->subject = string_of(d);
        else if (field == 4)
            p->reply_to = string_of(d);
        else if (field == 8 && pn_data_type(d) == PN_TIMESTAMP)
            p->absolute_expiry = pn_data_get_timestamp(d);
    }
    pn_data_exit(d);
}

/* Decodes the sections before the body; strings in p point into the
 * thread's decoder and are copied by the caller before the next decode. */
static int parse(const unsigned char *data, size_t len, parsed *p, char *strbuf, size_t *strlen_out, size_t strcap)
{
    memset(p, 0, sizeof *p);
    size_t off = 0, used = 0;
    while (off < len) {
        int code = peek_section(data + off, len - off);
        if (code >= RT_SEC_DATA) {
            p->body_len = body_bytes(data + off, len - off);
            break;
        }
        pn_data_t *d = scratch();
        ssize_t n = pn_data_decode(d, (const char *)data + off, len - off);
        if (n <= 0)
            return -EBADMSG;
        code = enter_section(d);
        if (code < 0)
            return -EBADMSG;
        if (code >= RT_SEC_DATA) {
            p->body_len = body_bytes(data + off, len - off);
            break;
        }
        if (code == RT_SEC_HEADER && off == 0) {
            read_header(d, p);
            if (n > UINT16_MAX)
                return -EBADMSG; /* five small fields: no header is that long */
            p->hdr_len = (uint32_t)n;
        } else if (code == RT_SEC_PROPERTIES) {
            read_properties(d, p);
            /* Copy the strings now: the decoder is reused for the next section. */
            pn_bytes_t *fields[] = {&p->to, &p->subject, &p->reply_to};
            for (int i = 0; i < 3; i++) {
                if (!fields[i]->start)
                    continue;
                if (strbuf) {
                    if (used + fields[i]->size + 1 > strcap)
                        return -EBADMSG;
                    memcpy(strbuf + used, fields[i]->start, fields[i]->size);
                    strbuf[used + fields[i]->size] = '\0';
                    fields[i]->start = strbuf + used;
                }
                used += fields[i]->size + 1;
            }
        } else if (code == RT_SEC_APP_PROPS) {
            p->ap_off = (uint32_t)off;
            p->ap_len = (uint32_t)n;
        }
        off += (size_t)n;
    }
    *strlen_out = used;
    return 0;
}

static void msg_release(sv_buf *b)
{
    rt_msg *m = (rt_msg *)b;
    if (m->buf.flags & F_RKEY_OWNED)
        free((char *)m->rkey);
    free(m);
}

rt_msg *rt_msg_alloc(size_t cap)
{
    rt_msg *m = malloc(sizeof *m + cap);
    if (!m)
        return NULL;
    memset(m, 0, sizeof *m);
    atomic_init(&m->buf.refs, 1);
    m->buf.data = (unsigned char *)(m + 1);
    m->buf.release = msg_release;
    return m;
}

int rt_msg_grow(rt_msg **mp, size_t cap)
{
    rt_msg *m = realloc(*mp, sizeof *m + cap);
    if (!m)
        return -ENOMEM;
    m->buf.data = (unsigned char *)(m + 1);
    *mp = m;
    return 0;
}

int rt_msg_finish(rt_msg **mp, size_t len)
{
    if (len > UINT32_MAX)
        return -EMSGSIZE;
    rt_msg *m = *mp;
    /* First pass: how much room the property strings need after the bytes. */
    parsed p;
    size_t strsize = 0;
    int rc = parse(m->buf.data, len, &p, NULL, &strsize, 0);
    if (rc < 0)
        return rc;
    if ((rc = rt_msg_grow(mp, len + strsize)) < 0)
        return rc;
    m = *mp;
    if (strsize && (rc = parse(m->buf.data, len, &p, (char *)m->buf.data + len, &strsize, strsize)) < 0)
        return rc;
    m->buf.len = len;
    m->hdr_len = p.hdr_len;
    m->durable = p.durable;
    m->first_acquirer = p.first_acquirer;
    m->has_priority = p.has_priority;
    m->priority = p.priority;
    m->has_ttl = p.has_ttl;
    m->ttl = p.ttl;
    m->delivery_count = p.delivery_count;
    m->absolute_expiry = p.absolute_expiry;
    m->to = p.to.start;
    m->subject = p.subject.start;
    m->reply_to = p.reply_to.start;
    m->ap_off = p.ap_off;
    m->ap_len = p.ap_len;
    m->body_len = p.body_len;
    return 0;
}

int rt_msg_new(const void *data, size_t len, rt_msg **out)
{
    rt_msg *m = rt_msg_alloc(len);
    if (!m)
        return -ENOMEM;
    if (len)
        memcpy(m->buf.data, data, len);
    int rc = rt_msg_finish(&m, len);
    if (rc < 0) {
        free(m);
        return rc;
    }
    *out = m;
    return 0;
}

int rt_msg_set_rkey(rt_msg *m, const char *key)
{
    char *copy = NULL;
    if (key && !(m->subject && strcmp(key, m->subject) == 0) && !(copy = strdup(key)))
        return -ENOMEM; /* the old key stays */
    if (m->buf.flags & F_RKEY_OWNED)
        free((char *)m->rkey);
    m->buf.flags &= ~F_RKEY_OWNED;
    m->rkey = copy ? copy : key ? m->subject : NULL;
    if (copy)
        m->buf.flags |= F_RKEY_OWNED;
    return 0;
}

int rt_msg_from_body(const void *body, size_t len, const char *subject, bool durable, rt_msg **out)
{
    pn_message_t *pm = pn_message();
    if (!pm)
        return -ENOMEM;
    pn_message_set_durable(pm, durable);
    if (subject)
        pn_message_set_subject(pm, subject);
    pn_data_put_binary(pn_message_body(pm), pn_bytes(len, body));
    size_t cap = len + 256;
    char *buf = malloc(cap);
    int rc = buf ? pn_message_encode(pm, buf, &cap) : -ENOMEM;
    if (rc == 0)
        rc = rt_msg_new(buf, cap, out);
    else if (rc != -ENOMEM)
        rc = -EINVAL;
    free(buf);
    pn_message_free(pm);
    return rc;
}

void rt_msg_wire(const rt_msg *m, uint32_t dc, char *hdr, size_t *hdr_len, size_t *rest_off)
{
    *hdr_len = 0;
    *rest_off = 0;
    if (dc == m->delivery_count)
        return; /* unchanged: the original bytes go out as they came */
    pn_data_t *d = scratch();
    pn_data_put_described(d);
    pn_data_enter(d);
    pn_data_put_ulong(d, RT_SEC_HEADER);
    pn_data_put_list(d);
    pn_data_enter(d);
    pn_data_put_bool(d, m->durable);
    if (m->has_priority)
        pn_data_put_ubyte(d, m->priority);
    else
        pn_data_put_null(d);
    if (m->has_ttl)
        pn_data_put_uint(d, m->ttl);
    else
        pn_data_put_null(d);
    pn_data_put_bool(d, false); /* delivered before: not the first acquirer */
    pn_data_put_uint(d, dc);
    pn_data_exit(d);
    pn_data_exit(d);
    ssize_t n = pn_data_encode(d, hdr, RT_HDR_MAX);
    if (n <= 0)
        return; /* cannot happen for five scalars; send the original then */
    *hdr_len = (size_t)n;
    *rest_off = m->hdr_len;
}

pn_data_t *rt_msg_app_props(const rt_msg *m)
{
    if (!m->ap_len)
        return NULL;
    pn_data_t *d = pn_data(8);
    if (!d)
        return NULL;
    if (pn_data_decode(d, (const char *)m->buf.data + m->ap_off, m->ap_len) <= 0 || enter_section(d) < 0 ||
        pn_data_type(d) != PN_MAP) {
        pn_data_free(d);
        return NULL;
    }
    /* Leave d positioned on the map itself. */
    return d;
}
