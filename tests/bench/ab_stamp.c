/* ab_stamp.c — the 32-byte stamp every stamped message carries, both ways:
 * the message template senders repeat, and on receipt the walk over the
 * AMQP sections to the body, the stamp's checks and the exactly-once count
 * in seen[], with the verdict the report prints. Brokers may add header or
 * annotation sections; they are skipped, never trusted. */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include <proton/codec.h>

#include "tests/bench/ab.h"

/* ------------------------------------------------------------ AMQP section walking */

/* Size of the encoded value at p. Returns 1 and sets *sz, 0 when more bytes
 * are needed to tell, -1 when the bytes are not an AMQP value. */
static int value_size(const uint8_t *p, size_t n, size_t *sz, int depth)
{
    if (n < 1)
        return 0;
    if (depth > 8)
        return -1;
    uint8_t code = p[0];
    if (code == 0x00) { /* described: descriptor then value */
        size_t d, v;
        int r = value_size(p + 1, n - 1, &d, depth + 1);
        if (r <= 0)
            return r;
        r = value_size(p + 1 + d, n - 1 - d, &v, depth + 1);
        if (r <= 0)
            return r;
        *sz = 1 + d + v;
        return 1;
    }
    size_t need;
    switch (code >> 4) {
    case 0x4: need = 1; break;
    case 0x5: need = 2; break;
    case 0x6: need = 3; break;
    case 0x7: need = 5; break;
    case 0x8: need = 9; break;
    case 0x9: need = 17; break;
    case 0xa:
    case 0xc:
    case 0xe:
        if (n < 2)
            return 0;
        need = 2 + (size_t)p[1];
        break;
    case 0xb:
    case 0xd:
    case 0xf:
        if (n < 5)
            return 0;
        need = 5 + (((size_t)p[1] << 24) | ((size_t)p[2] << 16) | ((size_t)p[3] << 8) | p[4]);
        break;
    default: return -1;
    }
    if (need > n)
        return 0;
    *sz = need;
    return 1;
}

/* Find the body of an encoded message: a data section, or an amqp-value
 * section holding binary. Returns 1 with *off and *len set, 0 when more bytes are
 * needed, -1 when malformed or the body is not binary. */
int ab_find_body(const uint8_t *p, size_t n, size_t *off, size_t *len)
{
    size_t o = 0;
    while (o < n) {
        if (p[o] != 0x00)
            return -1;
        if (o + 2 > n)
            return 0;
        uint64_t code = 0;
        size_t dlen;
        uint8_t dc = p[o + 1];
        if (dc == 0x53) {
            if (o + 3 > n)
                return 0;
            code = p[o + 2];
            dlen = 2;
        } else if (dc == 0x80) {
            if (o + 10 > n)
                return 0;
            for (int i = 0; i < 8; i++)
                code = (code << 8) | p[o + 2 + i];
            dlen = 9;
        } else if (dc == 0xa3 || dc == 0xb3) { /* symbolic descriptor */
            size_t ds;
            int r = value_size(p + o + 1, n - o - 1, &ds, 0);
            if (r <= 0)
                return r;
            size_t hs = dc == 0xa3 ? 2 : 5;
            const char *sym = (const char *)p + o + 1 + hs;
            size_t sl = ds - hs;
            if (sl == 16 && !memcmp(sym, "amqp:data:binary", 16))
                code = 0x75;
            else if (sl == 17 && !memcmp(sym, "amqp:amqp-value:*", 17))
                code = 0x77;
            dlen = ds;
        } else {
            return -1;
        }
        size_t v = o + 1 + dlen;
        if (code == 0x75 || code == 0x77) {
            if (v >= n)
                return 0;
            if (p[v] == 0xa0) {
                if (v + 2 > n)
                    return 0;
                *len = p[v + 1];
                *off = v + 2;
                return 1;
            }
            if (p[v] == 0xb0) {
                if (v + 5 > n)
                    return 0;
                *len = ((size_t)p[v + 1] << 24) | ((size_t)p[v + 2] << 16) | ((size_t)p[v + 3] << 8) | p[v + 4];
                *off = v + 5;
                return 1;
            }
            return -1;
        }
        size_t vs;
        int r = value_size(p + v, n - v, &vs, 0);
        if (r <= 0)
            return r;
        o = v + vs;
    }
    return 0;
}

/* Count a malformed message; the first one is kept as the example. */
void ab_note_bad(bench *b, const char *fmt, ...)
{
    if (__atomic_fetch_add(&b->bad, 1, __ATOMIC_RELAXED) == 0) {
        pthread_mutex_lock(&b->lock);
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(b->bad_example, sizeof b->bad_example, fmt, ap);
        va_end(ap);
        pthread_mutex_unlock(&b->lock);
    }
}

/* Check one received stamped message and count it: latency sample, its
 * seen[] slot, and whether that completes the run. */
void ab_consume_stamped(bench *b, conn_ctx *c, const uint8_t *p, size_t got, size_t total)
{
    size_t off = 0, len = 0;
    int r = ab_find_body(p, got, &off, &len);
    if (r <= 0 || off + STAMP_SIZE > got) {
        ab_note_bad(b, "%s %d: %s (%zu bytes)", ab_role_name[c->role], c->index,
                    r < 0 ? "message body is not one binary section" : "message too short for a stamp", total);
        return;
    }
    stamp st;
    memcpy(&st, p + off, STAMP_SIZE);
    if (st.magic != STAMP_MAGIC) {
        ab_note_bad(b, "%s %d: body does not start with the bench stamp", ab_role_name[c->role], c->index);
        return;
    }
    /* drain: the messages are an earlier run's, so take its nonce */
    if (b->mode == MODE_DRAIN && !ab_drain_take_nonce(b, &st))
        return;
    if (st.nonce != b->nonce) { /* left in the queue by an earlier run */
        __atomic_fetch_add(&b->stale, 1, __ATOMIC_RELAXED);
        return;
    }
    if (len != b->size || off + len != total || st.size != b->size) {
        ab_note_bad(b, "%s %d: body of %zu bytes (message %zu), expected %zu", ab_role_name[c->role], c->index, len,
                    total, b->size);
        return;
    }
    uint64_t slot;
    if (b->mode == MODE_DRAIN) {
        if (st.producer != 0 || st.seq >= b->count)
            goto out_of_range;
        slot = st.seq;
        ab_drain_note_order(b, &st);
        c->received++;
        goto count;
    } else if (b->mode == MODE_FANOUT) {
        if (st.producer != 0 || st.seq >= b->count)
            goto out_of_range;
        slot = (uint64_t)c->index * b->count + st.seq;
    } else {
        if (st.producer >= (uint32_t)b->n_producers)
            goto out_of_range;
        uint64_t n = b->base[st.producer + 1] - b->base[st.producer];
        if (st.seq >= n)
            goto out_of_range;
        slot = b->base[st.producer] + st.seq;
    }
    uint64_t t = ab_now_ns();
    if (ab_push_u64(&c->lat, &c->lat_n, &c->lat_cap, t - st.sent_ns)) {
        FAIL(b, "%s %d: out of memory for latency samples", ab_role_name[c->role], c->index);
        return;
    }
    c->received++;
count:
    if (__atomic_fetch_add(&b->seen[slot], 1, __ATOMIC_RELAXED) == 0) {
        if (__atomic_add_fetch(&b->unique, 1, __ATOMIC_ACQ_REL) == b->expected) {
            pthread_mutex_lock(&b->lock);
            ab_check_complete_locked(b);
            pthread_mutex_unlock(&b->lock);
        }
    } else {
        __atomic_fetch_add(&b->dups, 1, __ATOMIC_RELAXED);
    }
    return;
out_of_range:
    ab_note_bad(b, "%s %d: stamp names producer %u seq %" PRIu64 ", outside this run", ab_role_name[c->role], c->index,
                st.producer, st.seq);
}

/* The message template: encode one message whose body is a data section
 * of size bytes once, and keep what comes before the body as the prefix
 * each send repeats. reqrep encodes each request itself: only the filler. */
int ab_build_template(bench *b)
{
    b->filler = malloc(b->size);
    if (!b->filler)
        return -ENOMEM;
    for (size_t i = 0; i < b->size; i++)
        b->filler[i] = (char)('a' + i % 26);
    if (b->mode == MODE_REQREP)
        return 0;
    pn_message_t *m = pn_message();
    if (!m)
        return -ENOMEM;
    pn_message_set_inferred(m, true); /* a binary body is a data section */
    pn_message_set_durable(m, b->o->persistent);
    pn_data_put_binary(pn_message_body(m), pn_bytes(b->size, b->filler));
    size_t cap = b->size + 256;
    char *buf = NULL;
    int rc;
    for (;;) {
        char *nb = realloc(buf, cap);
        if (!nb) {
            rc = -ENOMEM;
            break;
        }
        buf = nb;
        size_t len = cap;
        rc = pn_message_encode(m, buf, &len);
        if (rc == PN_OVERFLOW) {
            cap *= 2;
            continue;
        }
        if (rc == 0) {
            /* the body is the message's last bytes; everything before it is
             * the prefix sent ahead of each stamp */
            size_t off, blen;
            if (len < b->size || ab_find_body((uint8_t *)buf, len, &off, &blen) != 1 || blen != b->size ||
                off != len - b->size) {
                rc = -EPROTO;
                break;
            }
            b->prefix = buf;
            b->prefix_len = off;
            buf = NULL;
        }
        break;
    }
    free(buf);
    pn_message_free(m);
    return rc;
}

/* exactly-once: which slots of seen[] arrived never, and which more than
 * once (fill's seen[] is a placeholder: nothing to scan). */
void ab_scan_seen(const bench *b, ab_seen_scan *s)
{
    s->missing = s->dup_slots = 0;
    s->first_missing = s->first_dup = UINT64_MAX;
    if (b->seen && b->mode != MODE_FILL)
        for (uint64_t i = 0; i < b->expected; i++) {
            if (b->seen[i] == 0) {
                if (!s->missing++)
                    s->first_missing = i;
            } else if (b->seen[i] > 1) {
                if (!s->dup_slots++)
                    s->first_dup = i;
            }
        }
}

/* The exactly-once (and, drain, in-order) verdict: ok, or the first
 * missing and duplicated message named, on stdout and stderr. */
void ab_print_exactly_once(const bench *b, const ab_seen_scan *s, bool verified, bool in_order, bool checked)
{
    bench_mode mode = b->mode;
    uint64_t count = b->count;
    if (mode == MODE_DRAIN && !checked) {
        printf("   exactly-once not checked: nothing was received\n");
    } else if (mode != MODE_REQREP && mode != MODE_FILL && !checked) {
        printf("   exactly-once not checked: nothing was sent\n");
    } else if (mode != MODE_REQREP && mode != MODE_FILL) {
        if (verified && mode == MODE_DRAIN) {
            printf("   exactly-once ok: every seq 0..%" PRIu64 " received exactly once%s\n", count - 1,
                   in_order ? ", in order" : "");
        } else if (verified) {
            printf("   exactly-once ok: every %s received exactly once\n",
                   mode == MODE_FANOUT ? "(subscriber, seq)" : "(producer, seq)");
        } else {
            const char *unit = mode == MODE_FANOUT ? "subscriber" : "producer";
            char where[256] = "";
            uint64_t firsts[2] = {s->first_missing, s->first_dup};
            const char *what[2] = {"first missing", "first duplicated"};
            for (int f = 0; f < 2; f++) {
                if (firsts[f] == UINT64_MAX)
                    continue;
                uint64_t who = 0, seq;
                if (mode == MODE_FANOUT) {
                    who = firsts[f] / count;
                    seq = firsts[f] % count;
                } else {
                    while (who + 1 < (uint64_t)b->n_producers && b->base[who + 1] <= firsts[f])
                        who++;
                    seq = firsts[f] - b->base[who];
                }
                size_t wl = strlen(where);
                if (mode == MODE_DRAIN)
                    snprintf(where + wl, sizeof where - wl, "%s%s: seq %" PRIu64, wl ? ", " : " (", what[f], seq);
                else
                    snprintf(where + wl, sizeof where - wl, "%s%s: %s %" PRIu64 " seq %" PRIu64, wl ? ", " : " (",
                             what[f], unit, who, seq);
            }
            if (where[0])
                strncat(where, ")", sizeof where - strlen(where) - 1);
            char msg[512];
            snprintf(msg, sizeof msg,
                     "*** EXACTLY-ONCE VIOLATED: %" PRIu64 " missing, %" PRIu64 " duplicated (%" PRIu64
                     " extra copies), %" PRIu64 " malformed%s ***",
                     s->missing, s->dup_slots, b->dups, b->bad, where);
            printf("   %s\n", msg);
            fprintf(stderr, "amqp_bench: %s\n", msg);
            fflush(stdout);
        }
        if (!in_order) {
            char msg[320];
            snprintf(msg, sizeof msg, "*** ORDER VIOLATED: %" PRIu64 " messages out of sequence, first %s ***",
                     b->out_of_order, b->order_example);
            printf("   %s\n", msg);
            fprintf(stderr, "amqp_bench: %s\n", msg);
            fflush(stdout);
        }
    }
}
