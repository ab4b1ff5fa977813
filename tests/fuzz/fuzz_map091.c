/* fuzz_map091.c — feeds the 0-9-1 <-> AMQP 1.0 message mapping
 * (amqp/map091.c, amqp/map091_deliver.c) from both sides; the first byte
 * picks the side.
 *
 * Even: the rest is an AMQP 1.0 message as a 1.0 client (or a damaged store)
 * hands it over, unchecked, to amqp__091_msg_header and amqp__091_body_next.
 * Checked: only -EBADMSG or -ENOSPC as errors; an accepted header decodes
 * with the 0-9-1 codec (headers table included) and names the body size the
 * views add up to; every view lies inside the message; and the properties
 * mapped back to 1.0 (amqp__091_msg_new) and out again come back the same.
 *
 * Odd: the rest makes basic properties (a flag word, then each flagged
 * field: a length byte and its bytes, headers with a two-byte length) and a
 * body. Checked: amqp__091_msg_new refuses with a 0-9-1 code and a reason,
 * or makes bytes that rt_msg_finish (proton's decoder) takes, whose
 * delivery gives back the body byte for byte and the properties that have
 * a 1.0 form.
 */
#include <string.h>
#include <strings.h>

#include "amqp/amqp_internal.h"
#include "tests/fuzz/fuzz.h"

static uint8_t out1[1 << 16], out2[1 << 16];

static bool same(amqp91_bytes a, amqp91_bytes b) { return a.len == b.len && (!a.len || !memcmp(a.p, b.p, a.len)); }

static bool same_ci(amqp91_bytes a, amqp91_bytes b)
{
    return a.len == b.len && (!a.len || !strncasecmp((const char *)a.p, (const char *)b.p, a.len));
}

static uint64_t number(amqp91_bytes s)
{
    uint64_t v = 0;
    for (uint32_t i = 0; i < s.len; i++)
        v = v * 10 + (uint64_t)(s.p[i] - '0');
    return v;
}

/* What a 0-9-1 client is handed for m: the header decoded, the body checked. */
static int deliver(const rt_msg *m, uint8_t *out, size_t cap, amqp91_header *h, const uint8_t *want_body,
                   size_t want_len)
{
    uint64_t size = 0;
    int n = amqp__091_msg_header(m, out, cap, &size);
    if (n < 0) {
        FUZZ_CHECK(n == -EBADMSG || n == -ENOSPC);
        return n;
    }
    FUZZ_CHECK((size_t)n <= cap);
    const char *why = NULL;
    FUZZ_CHECK(amqp91_header_decode(out, (size_t)n, h, &why) == 0);
    FUZZ_CHECK(h->body_size == size);
    if (h->props.flags & AMQP91_P_HEADERS) {
        amqp91_table *t = NULL;
        FUZZ_CHECK(amqp91_table_parse(h->props.headers.p, h->props.headers.len, &t, &why) == 0);
        amqp91_table_free(t);
    }
    size_t pos = 0, len, got = 0;
    const uint8_t *p;
    while (amqp__091_body_next(m, &pos, &p, &len)) {
        FUZZ_CHECK(p >= m->buf.data && p + len <= m->buf.data + m->buf.len);
        FUZZ_CHECK(got + len <= size);
        if (want_body)
            FUZZ_CHECK(!memcmp(p, want_body + got, len));
        got += len;
    }
    FUZZ_CHECK(got == size);
    if (want_body)
        FUZZ_CHECK(got == want_len);
    return n;
}

static rt_msg *publish(const amqp91_props *p, const uint8_t *body, size_t n)
{
    rt_msg *m = NULL;
    size_t off = 0, total = 0;
    const char *why = NULL;
    int rc = amqp__091_msg_new(p, n, "ex", "rk", &m, &off, &total, &why);
    if (rc < 0) {
        FUZZ_CHECK(why != NULL && !m);
        FUZZ_CHECK(rc == -AMQP91_PRECONDITION_FAILED || rc == -AMQP91_SYNTAX_ERROR || rc == -ENOMEM);
        return NULL;
    }
    FUZZ_CHECK(total == off + n);
    if (n)
        memcpy(rt_msg_bytes(m) + off, body, n);
    rc = rt_msg_finish(&m, total);
    FUZZ_CHECK(rc == 0); /* what we write, proton reads */
    return m;
}

/* Properties the mapping carries both ways unchanged. */
static void same_props(const amqp91_props *a, const amqp91_props *b)
{
    uint16_t both = AMQP91_P_CONTENT_TYPE | AMQP91_P_CONTENT_ENCODING | AMQP91_P_PRIORITY | AMQP91_P_REPLY_TO |
                    AMQP91_P_EXPIRATION | AMQP91_P_TIMESTAMP | AMQP91_P_TYPE | AMQP91_P_APP_ID |
                    AMQP91_P_DELIVERY_MODE | AMQP91_P_MESSAGE_ID | AMQP91_P_CORRELATION_ID;
    /* a queue name with a NUL has no address: such a reply-to is dropped */
    if ((a->flags & AMQP91_P_REPLY_TO) && a->reply_to.len && memchr(a->reply_to.p, 0, a->reply_to.len))
        both &= (uint16_t)~AMQP91_P_REPLY_TO;
    FUZZ_CHECK((a->flags & both) == (b->flags & both));
    uint16_t f = a->flags & both;
    FUZZ_CHECK(!(f & AMQP91_P_CONTENT_TYPE) || same(a->content_type, b->content_type));
    FUZZ_CHECK(!(f & AMQP91_P_CONTENT_ENCODING) || same(a->content_encoding, b->content_encoding));
    FUZZ_CHECK(!(f & AMQP91_P_PRIORITY) || a->priority == b->priority);
    FUZZ_CHECK(!(f & AMQP91_P_DELIVERY_MODE) || (a->delivery_mode == 2) == (b->delivery_mode == 2));
    /* ids: urn:uuid texts come back in lower case */
    FUZZ_CHECK(!(f & AMQP91_P_MESSAGE_ID) || same_ci(a->message_id, b->message_id));
    FUZZ_CHECK(!(f & AMQP91_P_CORRELATION_ID) || same_ci(a->correlation_id, b->correlation_id));
    FUZZ_CHECK(!(f & AMQP91_P_REPLY_TO) || same(a->reply_to, b->reply_to));
    FUZZ_CHECK(!(f & AMQP91_P_EXPIRATION) || number(a->expiration) == number(b->expiration));
    FUZZ_CHECK(!(f & AMQP91_P_TIMESTAMP) || a->timestamp == b->timestamp);
    FUZZ_CHECK(!(f & AMQP91_P_TYPE) || same(a->type, b->type));
    FUZZ_CHECK(!(f & AMQP91_P_APP_ID) || same(a->app_id, b->app_id));
}

static void from_10(const uint8_t *data, size_t size, size_t cap)
{
    rt_msg *m = rt_msg_alloc(size);
    if (!m)
        return;
    if (size)
        memcpy(rt_msg_bytes(m), data, size);
    m->buf.len = size;
    amqp91_header h;
    int n = deliver(m, out1, cap, &h, NULL, 0);
    if (n > 0) {
        /* Mapped back to 1.0 and out again: the same properties. The body
         * bytes do not matter here: zeros, as many (up to 4096). */
        size_t bs = h.body_size > 4096 ? 4096 : (size_t)h.body_size;
        uint8_t *zero = calloc(1, bs + 1);
        rt_msg *m2 = zero ? publish(&h.props, zero, bs) : NULL;
        if (m2) {
            amqp91_header h2;
            FUZZ_CHECK(deliver(m2, out2, sizeof out2, &h2, zero, bs) > 0);
            same_props(&h.props, &h2.props);
            rt_msg_unref(m2);
        }
        free(zero);
    }
    rt_msg_unref(m);
}

/* Takes a length-prefixed field from the input. */
static amqp91_bytes take(const uint8_t **p, const uint8_t *end, unsigned lenbytes)
{
    amqp91_bytes b = {NULL, 0};
    if ((size_t)(end - *p) < lenbytes)
        return b;
    size_t n = lenbytes == 1 ? (*p)[0] : (size_t)((*p)[0] << 8 | (*p)[1]);
    *p += lenbytes;
    if (n > (size_t)(end - *p))
        n = (size_t)(end - *p);
    b.p = *p;
    b.len = (uint32_t)n;
    *p += n;
    return b;
}

static void from_091(const uint8_t *data, size_t size)
{
    const uint8_t *p = data, *end = data + size;
    if (size < 3)
        return;
    amqp91_props pr;
    memset(&pr, 0, sizeof pr);
    pr.flags = (uint16_t)((p[0] << 8 | p[1]) & ~7u);
    p += 2;
    amqp91_bytes *str[] = {&pr.content_type,   &pr.content_encoding, &pr.headers,    NULL,           NULL,
                           &pr.correlation_id, &pr.reply_to,         &pr.expiration, &pr.message_id, NULL,
                           &pr.type,           &pr.user_id,          &pr.app_id};
    for (unsigned i = 0; i < 13; i++) {
        if (!(pr.flags & (1u << (15 - i))))
            continue;
        if (i == 3 || i == 4) {
            uint8_t v = p < end ? *p++ : 0;
            *(i == 3 ? &pr.delivery_mode : &pr.priority) = v;
        } else if (i == 9) {
            for (int k = 0; k < 8; k++)
                pr.timestamp = pr.timestamp << 8 | (p < end ? *p++ : 0);
        } else {
            *str[i] = take(&p, end, i == 2 ? 2 : 1);
        }
    }
    size_t body = (size_t)(end - p);
    rt_msg *m = publish(&pr, p, body);
    if (!m)
        return;
    amqp91_header h;
    int n = deliver(m, out1, sizeof out1, &h, p, body);
    FUZZ_CHECK(n > 0);
    same_props(&pr, &h.props);
    rt_msg_unref(m);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!size)
        return 0;
    if (data[0] & 1)
        from_091(data + 1, size - 1);
    else
        from_10(data + 1, size - 1, data[0] & 2 ? 4088 : sizeof out1);
    return 0;
}
