/* fuzz_msg.c — feeds an encoded AMQP 1.0 message (what a client sends as
 * a transfer's payload, or what a damaged store hands back) to rt_msg_new
 * (routing/msg.c), and an accepted one on to the application-properties
 * reader and their JSON form (routing/json.c, the admin API's headers).
 *
 * Checked: a refused message leaves nothing behind (LeakSanitizer); an
 * accepted one has a header only if its first section's descriptor is the
 * header's; it round-trips through redelivery: rt_msg_wire's new header
 * in front of the rest of the bytes decodes again, with the same
 * properties and header fields and the new delivery count; and the same
 * bytes built up piecewise (rt_msg_alloc, rt_msg_grow, rt_msg_finish, as
 * the connection reads a transfer) decode to the same message; and its
 * dead-lettered copy (rt_msg_dead) reads again with the bare message kept.
 */
#include <jansson.h>
#include <proton/codec.h>
#include <string.h>

#include "routing/rt.h"
#include "tests/fuzz/fuzz.h"

static bool same_str(const char *a, const char *b) { return (!a && !b) || (a && b && strcmp(a, b) == 0); }

static bool header_descriptor(const uint8_t *p, size_t n)
{
    static const uint8_t small[] = {0x00, 0x53, 0x70}, full[] = {0x00, 0x80, 0, 0, 0, 0, 0, 0, 0, 0x70};
    static const char sym[] = "amqp:header:list";
    if (n >= sizeof small && !memcmp(p, small, sizeof small))
        return true;
    if (n >= sizeof full && !memcmp(p, full, sizeof full))
        return true;
    /* symbolic: 0x00, sym8 (0xa3) or sym32 (0xb3), then the name */
    if (n >= 3 + sizeof sym - 1 && p[0] == 0x00 && p[1] == 0xa3 && p[2] == sizeof sym - 1)
        return !memcmp(p + 3, sym, sizeof sym - 1);
    if (n >= 6 + sizeof sym - 1 && p[0] == 0x00 && p[1] == 0xb3 && !p[2] && !p[3] && !p[4] && p[5] == sizeof sym - 1)
        return !memcmp(p + 6, sym, sizeof sym - 1);
    return false;
}

static void same_fields(const rt_msg *a, const rt_msg *b)
{
    FUZZ_CHECK(a->durable == b->durable);
    FUZZ_CHECK(a->has_priority == b->has_priority);
    FUZZ_CHECK(!a->has_priority || a->priority == b->priority);
    FUZZ_CHECK(a->ttl == b->ttl && a->has_ttl == b->has_ttl);
    FUZZ_CHECK(a->absolute_expiry == b->absolute_expiry);
    FUZZ_CHECK(same_str(a->to, b->to));
    FUZZ_CHECK(same_str(a->subject, b->subject));
    FUZZ_CHECK(same_str(a->reply_to, b->reply_to));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    rt_msg *m = NULL;
    if (rt_msg_new(data, size, &m) < 0)
        return 0;
    FUZZ_CHECK(m->buf.len == size && memcmp(m->buf.data, data, size) == 0);
    FUZZ_CHECK(m->hdr_len <= size);
    if (m->hdr_len) /* read as a header only if its descriptor is the header's, in one of its two forms */
        FUZZ_CHECK(header_descriptor(data, size));
    FUZZ_CHECK((size_t)m->ap_off + m->ap_len <= size);

    /* Piecewise, as a connection reads it. */
    rt_msg *p = rt_msg_alloc(size / 2 + 1);
    FUZZ_CHECK(p);
    memcpy(rt_msg_bytes(p), data, size / 2);
    FUZZ_CHECK(rt_msg_grow(&p, size + 1) == 0);
    memcpy(rt_msg_bytes(p) + size / 2, data + size / 2, size - size / 2);
    FUZZ_CHECK(rt_msg_finish(&p, size) == 0);
    same_fields(m, p);
    FUZZ_CHECK(p->delivery_count == m->delivery_count && p->hdr_len == m->hdr_len);
    rt_msg_unref(p);

    /* A redelivery's wire form decodes to the same message, counted once more. */
    char hdr[RT_HDR_MAX];
    size_t hlen, rest;
    uint32_t dc = m->delivery_count + 1;
    rt_msg_wire(m, dc, hdr, &hlen, &rest);
    FUZZ_CHECK(hlen > 0 && hlen <= RT_HDR_MAX && rest == m->hdr_len);
    unsigned char *again = malloc(hlen + size - rest + 1);
    FUZZ_CHECK(again);
    memcpy(again, hdr, hlen);
    memcpy(again + hlen, data + rest, size - rest);
    rt_msg *w = NULL;
    FUZZ_CHECK(rt_msg_new(again, hlen + size - rest, &w) == 0);
    same_fields(m, w);
    FUZZ_CHECK(w->delivery_count == dc && !w->first_acquirer && w->hdr_len == hlen);
    rt_msg_wire(w, dc, hdr, &hlen, &rest);
    FUZZ_CHECK(hlen == 0 && rest == 0); /* unchanged: sent as it is */
    rt_msg_unref(w);
    free(again);

    /* The routing key is the subject unless given. */
    FUZZ_CHECK(rt_msg_set_rkey(m, m->subject) == 0 && same_str(m->rkey, m->subject));
    FUZZ_CHECK(rt_msg_set_rkey(m, "other.key") == 0 && strcmp(m->rkey, "other.key") == 0);

    /* Application properties, as a headers exchange and the admin API read them. */
    pn_data_t *ap = rt_msg_app_props(m);
    if (ap) {
        json_t *j = rt_json_get(ap);
        json_decref(j);
        pn_data_free(ap);
    }

    /* Dead-lettered (routing/deaths.c): the death is recorded or refused,
     * never a crash; the copy decodes again, keeps the bare message (its
     * application properties and body the same bytes), has no ttl, and can
     * die again, which then is a cycle for the queue it left. */
    rt_death d = {.queue = "q", .reason = RT_DEATH_EXPIRED, .rkey = "k", .exchange = "x", .key = "k2", .now_ms = 1};
    rt_msg *c = NULL, *c2 = NULL, *c3 = NULL;
    if (rt_msg_dead(m, &d, &c) == 0) {
        FUZZ_CHECK(!c->has_ttl && c->durable == m->durable && c->body_len == m->body_len);
        FUZZ_CHECK(c->ap_len == m->ap_len && !memcmp(c->buf.data + c->ap_off, m->buf.data + m->ap_off, m->ap_len));
        FUZZ_CHECK(same_str(c->subject, m->subject) && same_str(c->to, m->to) && strcmp(c->rkey, "k2") == 0);
        FUZZ_CHECK(rt_msg_death_cycle(c, "q")); /* its newest entry: q, expired */
        FUZZ_CHECK(rt_msg_dead(c, &d, &c2) == 0 && rt_msg_dead(c2, &d, &c3) == 0);
        FUZZ_CHECK(c3->buf.len == c2->buf.len); /* counted up in place: the same size */
        rt_msg_unref(c3);
        rt_msg_unref(c2);
        rt_msg_unref(c);
    }
    rt_msg_unref(m);
    return 0;
}
