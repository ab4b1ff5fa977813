/* test_rt_deaths.c — a dead-lettered message's death history
 * (routing/deaths.c, rt_msg_dead): the first death, the same queue and
 * reason counted again, another reason added newest first, the cap on
 * entries, the header ttl taken off (and a ttl of 0 kept as a ttl), the
 * bare message kept byte for byte, and malformed histories refused (the
 * queue then forwards the message unchanged).
 *
 * Input is encoded and output decoded with proton's pn_message_t, an
 * independent codec, so the bytes are checked as a 1.0 client reads them. */
#include <check.h>
#include <errno.h>
#include <proton/codec.h>
#include <proton/message.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check_main.h"
#include "routing/rt.h"

#define T0 1700000000123LL

/* --------------------------------------------------------------- helpers */

static rt_msg *encode(pn_message_t *pm)
{
    static char buf[1 << 20];
    size_t n = sizeof buf;
    ck_assert_int_eq(pn_message_encode(pm, buf, &n), 0);
    rt_msg *m = NULL;
    ck_assert_int_eq(rt_msg_new(buf, n, &m), 0);
    return m;
}

static pn_message_t *decode(const rt_msg *m)
{
    pn_message_t *pm = pn_message();
    int rc = pn_message_decode(pm, (const char *)m->buf.data, m->buf.len);
    ck_assert_msg(rc == 0, "proton cannot decode it: %d", rc);
    return pm;
}

static void put_sym(pn_data_t *d, const char *s) { pn_data_put_symbol(d, pn_bytes(strlen(s), s)); }
static void put_str(pn_data_t *d, const char *s) { pn_data_put_string(d, pn_bytes(strlen(s), s)); }

/* A message as a 0-9-1 publish to exchange "orders" leaves it: ttl 30 s,
 * annotations x-exchange, x-routing-key and x-app, properties,
 * application properties and a data body. */
static pn_message_t *published(bool with_ttl)
{
    pn_message_t *pm = pn_message();
    pn_message_set_durable(pm, true);
    pn_message_set_priority(pm, 7);
    if (with_ttl)
        pn_message_set_ttl(pm, 30000);
    pn_message_set_id(pm, (pn_atom_t){.type = PN_STRING, .u.as_bytes = pn_bytes(3, "m-1")});
    pn_message_set_subject(pm, "order.created");
    pn_data_t *ma = pn_message_annotations(pm);
    pn_data_put_map(ma);
    pn_data_enter(ma);
    put_sym(ma, "x-exchange");
    put_str(ma, "orders");
    put_sym(ma, "x-routing-key");
    put_str(ma, "order.created");
    put_sym(ma, "x-app");
    put_str(ma, "shop");
    pn_data_exit(ma);
    pn_data_t *ap = pn_message_properties(pm);
    pn_data_put_map(ap);
    pn_data_enter(ap);
    put_str(ap, "n");
    pn_data_put_int(ap, 3);
    pn_data_exit(ap);
    pn_message_set_inferred(pm, true);
    pn_data_put_binary(pn_message_body(pm), pn_bytes(7, "{\"a\":1}"));
    return pm;
}

static rt_death death(const char *queue, rt_death_reason r, int64_t now)
{
    return (rt_death){
        .queue = queue, .reason = r, .rkey = "order.created", .exchange = "dlx", .key = "dead", .now_ms = now};
}

static rt_msg *dead(const rt_msg *m, rt_death d)
{
    rt_msg *c = NULL;
    int rc = rt_msg_dead(m, &d, &c);
    ck_assert_msg(rc == 0, "rt_msg_dead: %d", rc);
    ck_assert_ptr_nonnull(c);
    return c;
}

/* Positions d (a map) on the value of symbol key; false if absent. */
static bool find(pn_data_t *d, const char *key)
{
    pn_data_rewind(d);
    if (!pn_data_next(d) || pn_data_type(d) != PN_MAP)
        return false;
    pn_data_enter(d);
    while (pn_data_next(d)) {
        bool hit = pn_data_type(d) == PN_SYMBOL && pn_data_get_symbol(d).size == strlen(key) &&
                   !memcmp(pn_data_get_symbol(d).start, key, strlen(key));
        if (!pn_data_next(d))
            return false;
        if (hit)
            return true;
    }
    return false;
}

static bool str_is(pn_data_t *d, const char *s)
{
    pn_bytes_t b = pn_data_type(d) == PN_STRING ? pn_data_get_string(d) : pn_bytes(0, NULL);
    return b.start && b.size == strlen(s) && !memcmp(b.start, s, b.size);
}

static bool ann_str(pn_data_t *ma, const char *key, const char *want) { return find(ma, key) && str_is(ma, want); }

/* One x-opt-deaths entry as a 1.0 client reads it. */
typedef struct entry {
    char queue[64], reason[32], exchange[64], rkey0[64];
    pn_type_t reason_type;
    uint64_t count;
    int64_t first, last;
    bool has_ttl;
    uint32_t ttl;
    size_t nrkeys, npairs;
} entry;

static void copy(char *out, size_t cap, pn_bytes_t b)
{
    size_t n = b.size < cap - 1 ? b.size : cap - 1;
    memcpy(out, b.start, n);
    out[n] = '\0';
}

/* The entries of x-opt-deaths in ma, newest first; returns how many. */
static size_t deaths(pn_data_t *ma, entry *e, size_t max)
{
    if (!find(ma, "x-opt-deaths"))
        return 0;
    ck_assert_int_eq(pn_data_type(ma), PN_ARRAY);
    ck_assert_int_eq(pn_data_get_array_type(ma), PN_MAP);
    size_t n = pn_data_get_array(ma);
    ck_assert_uint_le(n, max);
    pn_data_enter(ma);
    for (size_t i = 0; i < n; i++) {
        ck_assert(pn_data_next(ma));
        ck_assert_int_eq(pn_data_type(ma), PN_MAP);
        memset(&e[i], 0, sizeof e[i]);
        pn_data_enter(ma);
        while (pn_data_next(ma)) {
            ck_assert_int_eq(pn_data_type(ma), PN_SYMBOL);
            pn_bytes_t k = pn_data_get_symbol(ma);
            char key[32];
            copy(key, sizeof key, k);
            ck_assert(pn_data_next(ma));
            e[i].npairs++;
            pn_type_t t = pn_data_type(ma);
            if (!strcmp(key, "queue") && t == PN_STRING)
                copy(e[i].queue, sizeof e[i].queue, pn_data_get_string(ma));
            else if (!strcmp(key, "reason")) {
                e[i].reason_type = t;
                if (t == PN_SYMBOL)
                    copy(e[i].reason, sizeof e[i].reason, pn_data_get_symbol(ma));
            } else if (!strcmp(key, "exchange") && t == PN_STRING)
                copy(e[i].exchange, sizeof e[i].exchange, pn_data_get_string(ma));
            else if (!strcmp(key, "count") && t == PN_ULONG)
                e[i].count = pn_data_get_ulong(ma);
            else if (!strcmp(key, "first-time") && t == PN_TIMESTAMP)
                e[i].first = pn_data_get_timestamp(ma);
            else if (!strcmp(key, "last-time") && t == PN_TIMESTAMP)
                e[i].last = pn_data_get_timestamp(ma);
            else if (!strcmp(key, "ttl") && t == PN_UINT)
                e[i].has_ttl = true, e[i].ttl = pn_data_get_uint(ma);
            else if (!strcmp(key, "routing-keys") && t == PN_ARRAY) {
                ck_assert_int_eq(pn_data_get_array_type(ma), PN_STRING);
                e[i].nrkeys = pn_data_get_array(ma);
                pn_data_enter(ma);
                if (pn_data_next(ma))
                    copy(e[i].rkey0, sizeof e[i].rkey0, pn_data_get_string(ma));
                pn_data_exit(ma);
            } else
                ck_abort_msg("unexpected key %s (type %d)", key, t);
        }
        pn_data_exit(ma);
    }
    pn_data_exit(ma);
    return n;
}

/* The bytes from the properties section on (the bare message). */
static size_t bare_at(const rt_msg *m)
{
    pn_data_t *d = pn_data(8);
    size_t off = 0;
    for (;;) {
        const unsigned char *p = m->buf.data + off;
        if (p[0] == 0x00 && p[1] == 0x53 && p[2] >= 0x73)
            break;
        pn_data_clear(d);
        ssize_t n = pn_data_decode(d, (const char *)p, m->buf.len - off);
        ck_assert_int_gt(n, 0);
        off += (size_t)n;
    }
    pn_data_free(d);
    return off;
}

static void same_bare(const rt_msg *a, const rt_msg *b)
{
    size_t x = bare_at(a), y = bare_at(b);
    ck_assert_uint_eq(a->buf.len - x, b->buf.len - y);
    ck_assert(memcmp(a->buf.data + x, b->buf.data + y, a->buf.len - x) == 0);
}

/* ----------------------------------------------------------------- tests */

START_TEST(test_first_death_is_recorded_as_rabbitmq_4_does)
{
    pn_message_t *pm = published(true);
    rt_msg *m = encode(pm);
    ck_assert(m->has_ttl);
    rt_msg *c = dead(m, death("work", RT_DEATH_REJECTED, T0));
    ck_assert_str_eq(c->rkey, "dead");
    ck_assert(!c->has_ttl); /* taken off: it must not expire again where it goes */
    ck_assert(c->durable);
    ck_assert_uint_eq(c->priority, 7);
    same_bare(m, c);

    pn_message_t *out = decode(c);
    ck_assert_uint_eq(pn_message_get_ttl(out), 0);
    ck_assert(pn_message_is_durable(out));
    pn_data_t *ma = pn_message_annotations(out);
    ck_assert(ann_str(ma, "x-app", "shop"));
    ck_assert(ann_str(ma, "x-exchange", "dlx"));
    ck_assert(ann_str(ma, "x-routing-key", "dead"));
    ck_assert(ann_str(ma, "x-first-death-queue", "work"));
    ck_assert(ann_str(ma, "x-first-death-reason", "rejected"));
    ck_assert(ann_str(ma, "x-first-death-exchange", "orders"));
    ck_assert(ann_str(ma, "x-last-death-queue", "work"));
    ck_assert(ann_str(ma, "x-last-death-reason", "rejected"));
    ck_assert(ann_str(ma, "x-last-death-exchange", "orders"));
    entry e[4];
    ck_assert_uint_eq(deaths(ma, e, 4), 1);
    ck_assert_str_eq(e[0].queue, "work");
    ck_assert_int_eq(e[0].reason_type, PN_SYMBOL);
    ck_assert_str_eq(e[0].reason, "rejected");
    ck_assert_uint_eq(e[0].count, 1);
    ck_assert_int_eq(e[0].first, T0);
    ck_assert_int_eq(e[0].last, T0);
    ck_assert_str_eq(e[0].exchange, "orders");
    ck_assert_uint_eq(e[0].nrkeys, 1);
    ck_assert_str_eq(e[0].rkey0, "order.created");
    ck_assert(e[0].has_ttl);
    ck_assert_uint_eq(e[0].ttl, 30000);
    ck_assert_uint_eq(e[0].npairs, 8);
    pn_message_free(out);
    rt_msg_unref(c);
    rt_msg_unref(m);
    pn_message_free(pm);
}
END_TEST

START_TEST(test_same_queue_and_reason_counts_again)
{
    pn_message_t *pm = published(true);
    rt_msg *m = encode(pm);
    rt_msg *c1 = dead(m, death("work", RT_DEATH_REJECTED, T0));
    rt_msg *c2 = dead(c1, death("work", RT_DEATH_REJECTED, T0 + 5000));
    rt_msg *c3 = dead(c2, death("work", RT_DEATH_REJECTED, T0 + 9000));
    same_bare(m, c3);
    pn_message_t *out = decode(c3);
    pn_data_t *ma = pn_message_annotations(out);
    entry e[4];
    ck_assert_uint_eq(deaths(ma, e, 4), 1);
    ck_assert_uint_eq(e[0].count, 3);
    ck_assert_int_eq(e[0].first, T0);
    ck_assert_int_eq(e[0].last, T0 + 9000);
    ck_assert_str_eq(e[0].exchange, "orders"); /* the first death's, kept */
    ck_assert(e[0].has_ttl);
    ck_assert_uint_eq(e[0].ttl, 30000);
    /* the later deaths saw x-exchange "dlx": the last-death exchange says so */
    ck_assert(ann_str(ma, "x-first-death-exchange", "orders"));
    ck_assert(ann_str(ma, "x-last-death-exchange", "dlx"));
    pn_message_free(out);
    rt_msg_unref(c3);
    rt_msg_unref(c2);
    rt_msg_unref(c1);
    rt_msg_unref(m);
    pn_message_free(pm);
}
END_TEST

START_TEST(test_another_reason_adds_an_entry_newest_first)
{
    pn_message_t *pm = published(true);
    rt_msg *m = encode(pm);
    rt_msg *c1 = dead(m, death("work", RT_DEATH_REJECTED, T0));
    rt_msg *c2 = dead(c1, death("retry", RT_DEATH_EXPIRED, T0 + 100));
    rt_msg *c3 = dead(c2, death("work", RT_DEATH_MAXLEN, T0 + 200));
    rt_msg *c4 = dead(c3, death("retry", RT_DEATH_EXPIRED, T0 + 300));
    pn_message_t *out = decode(c4);
    pn_data_t *ma = pn_message_annotations(out);
    entry e[4];
    ck_assert_uint_eq(deaths(ma, e, 4), 3);
    ck_assert_str_eq(e[0].queue, "retry"); /* counted again, and moved to the front */
    ck_assert_str_eq(e[0].reason, "expired");
    ck_assert_uint_eq(e[0].count, 2);
    ck_assert_int_eq(e[0].first, T0 + 100);
    ck_assert_int_eq(e[0].last, T0 + 300);
    ck_assert(!e[0].has_ttl); /* the ttl was gone after the first death */
    ck_assert_str_eq(e[0].exchange, "dlx");
    ck_assert_str_eq(e[0].rkey0, "order.created");
    ck_assert_str_eq(e[1].queue, "work");
    ck_assert_str_eq(e[1].reason, "maxlen");
    ck_assert_uint_eq(e[1].count, 1);
    ck_assert_str_eq(e[2].queue, "work");
    ck_assert_str_eq(e[2].reason, "rejected");
    ck_assert(e[2].has_ttl);
    ck_assert(ann_str(ma, "x-first-death-queue", "work"));
    ck_assert(ann_str(ma, "x-first-death-reason", "rejected"));
    ck_assert(ann_str(ma, "x-last-death-queue", "retry"));
    ck_assert(ann_str(ma, "x-last-death-reason", "expired"));
    same_bare(m, c4);
    pn_message_free(out);
    rt_msg *all[] = {c4, c3, c2, c1, m};
    for (int i = 0; i < 5; i++)
        rt_msg_unref(all[i]);
    pn_message_free(pm);
}
END_TEST

START_TEST(test_entries_are_capped_oldest_dropped)
{
    pn_message_t *pm = published(false);
    rt_msg *m = encode(pm);
    char q[32];
    for (int i = 0; i < RT_DEATHS_MAX + 10; i++) {
        snprintf(q, sizeof q, "q%d", i);
        rt_msg *c = dead(m, death(q, RT_DEATH_EXPIRED, T0 + i));
        rt_msg_unref(m);
        m = c;
    }
    pn_message_t *out = decode(m);
    pn_data_t *ma = pn_message_annotations(out);
    static entry e[RT_DEATHS_MAX];
    ck_assert_uint_eq(deaths(ma, e, RT_DEATHS_MAX), RT_DEATHS_MAX);
    snprintf(q, sizeof q, "q%d", RT_DEATHS_MAX + 9);
    ck_assert_str_eq(e[0].queue, q);
    snprintf(q, sizeof q, "q%d", 10);
    ck_assert_str_eq(e[RT_DEATHS_MAX - 1].queue, q);
    ck_assert(ann_str(ma, "x-first-death-queue", "q0")); /* never modified */
    ck_assert_uint_lt(m->buf.len, 64 * 1024);
    pn_message_free(out);
    rt_msg_unref(m);
    pn_message_free(pm);
}
END_TEST

START_TEST(test_no_header_no_annotations_gets_them)
{
    pn_message_t *pm = pn_message();
    pn_message_set_inferred(pm, true);
    pn_data_put_binary(pn_message_body(pm), pn_bytes(2, "hi"));
    char buf[256];
    size_t n = sizeof buf;
    ck_assert_int_eq(pn_message_encode(pm, buf, &n), 0);
    /* proton writes a header; the message as an AMQP 1.0 client may send
     * it has only its body */
    size_t body = 0;
    while (!(buf[body] == 0x00 && buf[body + 1] == 0x53 && buf[body + 2] == 0x75))
        body++;
    rt_msg *m = NULL;
    ck_assert_int_eq(rt_msg_new(buf + body, n - body, &m), 0);
    ck_assert_uint_eq(m->hdr_len, 0);
    rt_msg *c = dead(m, death("work", RT_DEATH_MAXLEN, T0));
    ck_assert_uint_eq(c->hdr_len, 0);
    ck_assert(memcmp(c->buf.data + c->buf.len - m->buf.len, m->buf.data, m->buf.len) == 0);
    pn_message_t *out = decode(c);
    pn_data_t *ma = pn_message_annotations(out);
    entry e[2];
    ck_assert_uint_eq(deaths(ma, e, 2), 1);
    ck_assert_str_eq(e[0].reason, "maxlen");
    ck_assert_str_eq(e[0].exchange, ""); /* no x-exchange: a 1.0 publish, recorded as the default exchange */
    ck_assert(!e[0].has_ttl);
    ck_assert(ann_str(ma, "x-first-death-exchange", ""));
    pn_message_free(out);
    rt_msg_unref(c);
    rt_msg_unref(m);
    pn_message_free(pm);
}
END_TEST

START_TEST(test_header_without_ttl_is_kept_byte_for_byte)
{
    pn_message_t *pm = published(false);
    rt_msg *m = encode(pm);
    ck_assert(!m->has_ttl);
    ck_assert_uint_gt(m->hdr_len, 0);
    rt_msg *c = dead(m, death("work", RT_DEATH_REJECTED, T0));
    ck_assert_uint_eq(c->hdr_len, m->hdr_len);
    ck_assert(memcmp(c->buf.data, m->buf.data, m->hdr_len) == 0);
    rt_msg_unref(c);
    rt_msg_unref(m);
    pn_message_free(pm);
}
END_TEST

START_TEST(test_ttl_zero_is_a_ttl)
{
    pn_message_t *pm = published(false);
    pn_message_set_ttl(pm, 0);
    rt_msg *m = encode(pm);
    /* proton leaves a ttl of 0 out: write the header as a 0-9-1
     * expiration "0" is written, ttl uint 0 */
    rt_msg_unref(m);
    static const unsigned char hdr0[] = {0x00, 0x53, 0x70, 0xc0, 0x04, 0x03, 0x41, 0x40, 0x43};
    static const unsigned char body[] = {0x00, 0x53, 0x75, 0xa0, 0x02, 'h', 'i'};
    unsigned char b[sizeof hdr0 + sizeof body];
    memcpy(b, hdr0, sizeof hdr0);
    memcpy(b + sizeof hdr0, body, sizeof body);
    ck_assert_int_eq(rt_msg_new(b, sizeof b, &m), 0);
    ck_assert(m->has_ttl);
    ck_assert_uint_eq(m->ttl, 0);
    rt_msg *c = dead(m, death("work", RT_DEATH_EXPIRED, T0));
    ck_assert(!c->has_ttl);
    pn_message_t *out = decode(c);
    entry e[2];
    ck_assert_uint_eq(deaths(pn_message_annotations(out), e, 2), 1);
    ck_assert(e[0].has_ttl);
    ck_assert_uint_eq(e[0].ttl, 0);
    pn_message_free(out);
    rt_msg_unref(c);
    rt_msg_unref(m);
    pn_message_free(pm);
}
END_TEST

/* A message whose annotations carry value v (written by fill) under key. */
static rt_msg *with_annotation(const char *key, void (*fill)(pn_data_t *d))
{
    pn_message_t *pm = published(false);
    pn_data_t *ma = pn_message_annotations(pm);
    pn_data_clear(ma);
    pn_data_put_map(ma);
    pn_data_enter(ma);
    put_sym(ma, key);
    fill(ma);
    pn_data_exit(ma);
    rt_msg *m = encode(pm);
    pn_message_free(pm);
    return m;
}

static void fill_string(pn_data_t *d) { put_str(d, "not a history"); }

static void fill_entry_without_count(pn_data_t *d)
{
    pn_data_put_array(d, false, PN_MAP);
    pn_data_enter(d);
    pn_data_put_map(d);
    pn_data_enter(d);
    put_sym(d, "queue");
    put_str(d, "work");
    put_sym(d, "reason");
    put_sym(d, "rejected");
    pn_data_exit(d);
    pn_data_exit(d);
}

static void fill_list_of_strings(pn_data_t *d)
{
    pn_data_put_array(d, false, PN_STRING);
    pn_data_enter(d);
    put_str(d, "a");
    pn_data_exit(d);
}

/* A history a client wrote the way RabbitMQ does (proton's encoding of
 * it, map8 entries): read, counted on, written again. */
static void fill_client_history(pn_data_t *d)
{
    pn_data_put_array(d, false, PN_MAP);
    pn_data_enter(d);
    pn_data_put_map(d);
    pn_data_enter(d);
    put_sym(d, "queue");
    put_str(d, "work");
    put_sym(d, "reason");
    put_sym(d, "rejected");
    put_sym(d, "count");
    pn_data_put_ulong(d, 41);
    put_sym(d, "first-time");
    pn_data_put_timestamp(d, 1000);
    put_sym(d, "last-time");
    pn_data_put_timestamp(d, 2000);
    put_sym(d, "exchange");
    put_str(d, "ex");
    put_sym(d, "routing-keys");
    pn_data_put_array(d, false, PN_STRING);
    pn_data_enter(d);
    put_str(d, "k1");
    put_str(d, "k2");
    pn_data_exit(d);
    pn_data_exit(d);
    pn_data_exit(d);
}

START_TEST(test_malformed_history_is_refused_and_message_untouched)
{
    void (*fills[])(pn_data_t *) = {fill_string, fill_entry_without_count, fill_list_of_strings};
    for (size_t i = 0; i < sizeof fills / sizeof fills[0]; i++) {
        rt_msg *m = with_annotation("x-opt-deaths", fills[i]);
        unsigned char *before = malloc(m->buf.len);
        memcpy(before, m->buf.data, m->buf.len);
        rt_msg *c = (rt_msg *)&c;
        rt_death d = death("work", RT_DEATH_REJECTED, T0);
        ck_assert_int_eq(rt_msg_dead(m, &d, &c), -EBADMSG);
        ck_assert_ptr_eq(c, (rt_msg *)&c); /* *out untouched */
        ck_assert(memcmp(before, m->buf.data, m->buf.len) == 0);
        free(before);
        rt_msg_unref(m);
    }
}
END_TEST

START_TEST(test_sections_of_the_wrong_type_are_refused)
{
    /* header, then a message-annotations section holding a list */
    static const unsigned char b[] = {0x00, 0x53, 0x72, 0xc0, 0x03, 0x01, 0x50,
                                      0x01, 0x00, 0x53, 0x75, 0xa0, 0x01, 'x'};
    rt_msg *m = NULL;
    ck_assert_int_eq(rt_msg_new(b, sizeof b, &m), 0);
    rt_msg *c = NULL;
    rt_death d = death("work", RT_DEATH_REJECTED, T0);
    ck_assert_int_eq(rt_msg_dead(m, &d, &c), -EBADMSG);
    ck_assert_ptr_null(c);
    rt_msg_unref(m);
    /* a header that is a map, not a list (routing reads no fields from it;
     * written again as a list it would say something): refused too (the
     * fuzzer found it) */
    static const unsigned char h[] = {0x00, 0x53, 0x70, 0xc1, 0x03, 0x02, 0x41,
                                      0x43, 0x00, 0x53, 0x75, 0xa0, 0x01, 'x'};
    ck_assert_int_eq(rt_msg_new(h, sizeof h, &m), 0);
    ck_assert(!m->durable && !m->has_ttl);
    ck_assert_int_eq(rt_msg_dead(m, &d, &c), -EBADMSG);
    ck_assert_ptr_null(c);
    rt_msg_unref(m);
    /* a header list whose size runs past its five fields: proton reads the
     * fields by count and takes the rest for sections; rewritten by size
     * it would be another message (the fuzzer found it) */
    static const unsigned char g[] = {0x00, 0x53, 0x70, 0xc0, 0x2d, 0x05, 0x45, 0x50, 0x07, 0x70, 0x00, 0x00, 0x05,
                                      0x00, 0x53, 0x45, 0x00, 0x53, 0x70, 0x45, 0x00, 0x53, 0x77, 0xa1, 0x05, 0x2d,
                                      0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x69,
                                      0x00, 0x80, 0x00, 0x83, 0x00, 0x70, 0x45, 0x00, 0x02, 0x70, 0x45, 0x00, 0x53,
                                      0xff, 0xff, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00,
                                      0x00, 0x00, 0x00, 0x53, 0x73, 0x00, 0x00, 0x6e, 0xf4};
    ck_assert_int_eq(rt_msg_new(g, sizeof g, &m), 0);
    ck_assert_int_eq(rt_msg_dead(m, &d, &c), -EBADMSG);
    ck_assert_ptr_null(c);
    rt_msg_unref(m);
}
END_TEST

START_TEST(test_names_over_255_bytes_are_refused)
{
    pn_message_t *pm = published(false);
    rt_msg *m = encode(pm);
    char big[300];
    memset(big, 'q', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    rt_msg *c = NULL;
    rt_death d = death(big, RT_DEATH_REJECTED, T0);
    ck_assert_int_eq(rt_msg_dead(m, &d, &c), -EINVAL);
    ck_assert_ptr_null(c);
    rt_msg_unref(m);
    pn_message_free(pm);
}
END_TEST

START_TEST(test_client_history_is_counted_on)
{
    rt_msg *m = with_annotation("x-opt-deaths", fill_client_history);
    rt_msg *c = dead(m, death("work", RT_DEATH_REJECTED, T0));
    pn_message_t *out = decode(c);
    pn_data_t *ma = pn_message_annotations(out);
    entry e[2];
    ck_assert_uint_eq(deaths(ma, e, 2), 1);
    ck_assert_uint_eq(e[0].count, 42);
    ck_assert_int_eq(e[0].first, 1000);
    ck_assert_int_eq(e[0].last, T0);
    ck_assert_str_eq(e[0].exchange, "ex");
    ck_assert_uint_eq(e[0].nrkeys, 2);
    ck_assert_str_eq(e[0].rkey0, "k1");
    /* a history there already: no x-first-death-* are made up */
    ck_assert(!find(ma, "x-first-death-queue"));
    ck_assert(ann_str(ma, "x-last-death-queue", "work"));
    /* and a new (queue, reason) in front of the client's map8 entry */
    rt_msg *c2 = dead(c, death("other", RT_DEATH_EXPIRED, T0 + 1));
    pn_message_t *out2 = decode(c2);
    ck_assert_uint_eq(deaths(pn_message_annotations(out2), e, 2), 2);
    ck_assert_str_eq(e[0].queue, "other");
    ck_assert_uint_eq(e[1].count, 42);
    pn_message_free(out2);
    pn_message_free(out);
    rt_msg_unref(c2);
    rt_msg_unref(c);
    rt_msg_unref(m);
}
END_TEST

START_TEST(test_cycle_without_rejection_is_found)
{
    pn_message_t *pm = published(false);
    rt_msg *m = encode(pm);
    ck_assert(!rt_msg_death_cycle(m, "a")); /* no history */
    rt_msg *c1 = dead(m, death("a", RT_DEATH_EXPIRED, T0));
    ck_assert(rt_msg_death_cycle(c1, "a"));
    ck_assert(!rt_msg_death_cycle(c1, "b"));
    rt_msg *c2 = dead(c1, death("b", RT_DEATH_MAXLEN, T0 + 1));
    ck_assert(rt_msg_death_cycle(c2, "a")); /* b maxlen, a expired: no rejection */
    ck_assert(rt_msg_death_cycle(c2, "b"));
    rt_msg *c3 = dead(c2, death("c", RT_DEATH_REJECTED, T0 + 2));
    ck_assert(!rt_msg_death_cycle(c3, "a")); /* a client rejected it on the way */
    ck_assert(!rt_msg_death_cycle(c3, "c"));
    rt_msg *c4 = dead(c3, death("d", RT_DEATH_EXPIRED, T0 + 3));
    ck_assert(rt_msg_death_cycle(c4, "d"));
    ck_assert(!rt_msg_death_cycle(c4, "c"));
    ck_assert(!rt_msg_death_cycle(c4, "a"));
    rt_msg *all[] = {c4, c3, c2, c1, m};
    for (int i = 0; i < 5; i++)
        rt_msg_unref(all[i]);
    pn_message_free(pm);
    /* an unreadable history is no cycle */
    rt_msg *bad = with_annotation("x-opt-deaths", fill_string);
    ck_assert(!rt_msg_death_cycle(bad, "a"));
    rt_msg_unref(bad);
}
END_TEST

START_TEST(test_reason_names)
{
    ck_assert_str_eq(rt_death_reason_name(RT_DEATH_REJECTED), "rejected");
    ck_assert_str_eq(rt_death_reason_name(RT_DEATH_EXPIRED), "expired");
    ck_assert_str_eq(rt_death_reason_name(RT_DEATH_MAXLEN), "maxlen");
}
END_TEST

static Suite *deaths_suite(void)
{
    Suite *s = suite_create("rt_deaths");
    TCase *tc = tcase_create("deaths");
    tcase_add_test(tc, test_first_death_is_recorded_as_rabbitmq_4_does);
    tcase_add_test(tc, test_same_queue_and_reason_counts_again);
    tcase_add_test(tc, test_another_reason_adds_an_entry_newest_first);
    tcase_add_test(tc, test_entries_are_capped_oldest_dropped);
    tcase_add_test(tc, test_no_header_no_annotations_gets_them);
    tcase_add_test(tc, test_header_without_ttl_is_kept_byte_for_byte);
    tcase_add_test(tc, test_ttl_zero_is_a_ttl);
    tcase_add_test(tc, test_client_history_is_counted_on);
    tcase_add_test(tc, test_reason_names);
    tcase_add_test(tc, test_cycle_without_rejection_is_found);
    suite_add_tcase(s, tc);
    TCase *tb = tcase_create("bad input");
    tcase_add_test(tb, test_malformed_history_is_refused_and_message_untouched);
    tcase_add_test(tb, test_sections_of_the_wrong_type_are_refused);
    tcase_add_test(tb, test_names_over_255_bytes_are_refused);
    suite_add_tcase(s, tb);
    return s;
}

int main(void) { return run_suite(deaths_suite()); }
