/* deaths.c — a dead-lettered message's death history, written into its
 * AMQP 1.0 bytes as RabbitMQ 4 writes it, so clients that read x-death
 * (0-9-1, mapped in amqp/map091_deliver.c) or x-opt-deaths (1.0) see what
 * RabbitMQ shows them. Only the message-annotations section and the
 * header's ttl are rewritten; the bare message is kept byte for byte, so
 * its hash and body stay as published. Bytes are read and written
 * directly: every size is checked against the bytes there, and anything
 * unreadable is an error (the caller then forwards the message unchanged).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "routing/rt.h"

#define MAX_DESCRIBED 8 /* described values nested in descriptors: deeper is refused */

const char *rt_death_reason_name(rt_death_reason r)
{
    switch (r) {
    case RT_DEATH_REJECTED: return "rejected";
    case RT_DEATH_EXPIRED: return "expired";
    case RT_DEATH_MAXLEN: return "maxlen";
    }
    return "rejected";
}

static uint64_t be_get(const uint8_t *p, unsigned n)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

/* Bytes of the value after constructor code at p (n bytes there); SIZE_MAX
 * if it does not fit or no such constructor exists. */
static size_t body_len(uint8_t code, const uint8_t *p, size_t n)
{
    size_t k;
    switch (code >> 4) {
    case 0x4: k = 0; break;
    case 0x5: k = 1; break;
    case 0x6: k = 2; break;
    case 0x7: k = 4; break;
    case 0x8: k = 8; break;
    case 0x9: k = 16; break;
    case 0xa:
    case 0xc:
    case 0xe: k = n >= 1 ? 1 + (size_t)p[0] : SIZE_MAX; break;
    case 0xb:
    case 0xd:
    case 0xf: k = n >= 4 ? 4 + (size_t)be_get(p, 4) : SIZE_MAX; break;
    default: return SIZE_MAX;
    }
    return k <= n ? k : SIZE_MAX;
}

/* The whole item at p, constructor included (a described value is its
 * descriptor and its value); 0 if it does not fit in n. */
static size_t item_len(const uint8_t *p, size_t n, int depth)
{
    if (!n)
        return 0;
    if (p[0] != 0x00) {
        size_t k = body_len(p[0], p + 1, n - 1);
        return k == SIZE_MAX ? 0 : 1 + k;
    }
    if (depth >= MAX_DESCRIBED)
        return 0;
    size_t d = item_len(p + 1, n - 1, depth + 1);
    if (!d)
        return 0;
    size_t v = item_len(p + 1 + d, n - 1 - d, depth + 1);
    return v ? 1 + d + v : 0;
}

/* A list's or map's items. */
typedef struct iter {
    const uint8_t *p, *end;
    uint32_t left;
} iter;

/* The compound with constructor code whose bytes after it are p[0..n). */
static bool open_body(uint8_t code, const uint8_t *p, size_t n, iter *it)
{
    memset(it, 0, sizeof *it);
    if (code == RT_C_LIST0) {
        it->p = it->end = p;
        return true;
    }
    size_t w = code == RT_C_LIST8 || code == RT_C_MAP8 ? 1 : code == RT_C_LIST32 || code == RT_C_MAP32 ? 4 : 0;
    if (!w || n < 2 * w)
        return false;
    uint64_t size = be_get(p, (unsigned)w);
    if (size < w || size > n - w)
        return false;
    it->p = p + 2 * w;
    it->end = p + w + size;
    it->left = (uint32_t)be_get(p + w, (unsigned)w);
    return true;
}

static bool open_item(const uint8_t *p, size_t n, iter *it) { return n && open_body(p[0], p + 1, n - 1, it); }

#define MAX_NESTING 32 /* compounds inside compounds in the sections read here */

/* Like item_len, but every list, map and array inside is held to its
 * declared count as well as its size: its items end exactly where its size
 * says. proton reads a compound by count, so where the two disagree it
 * would see other sections than these bytes' sizes say; such a message is
 * refused here (and forwarded as it is) rather than rewritten into
 * something else. 0 if not whole. */
static size_t whole_len(const uint8_t *p, size_t n, int depth)
{
    size_t k = item_len(p, n, 0);
    if (!k || depth > MAX_NESTING)
        return 0;
    if (p[0] == 0x00) {
        size_t d = whole_len(p + 1, n - 1, depth + 1);
        return d && whole_len(p + 1 + d, n - 1 - d, depth + 1) ? k : 0;
    }
    uint8_t c = p[0];
    if (c == RT_C_LIST8 || c == RT_C_LIST32 || c == RT_C_MAP8 || c == RT_C_MAP32) {
        size_t w = c == RT_C_LIST8 || c == RT_C_MAP8 ? 1 : 4;
        if (k < 1 + 2 * w)
            return 0;
        uint64_t count = be_get(p + 1 + w, (unsigned)w);
        if ((c == RT_C_MAP8 || c == RT_C_MAP32) && count % 2)
            return 0;
        size_t off = 1 + 2 * w;
        for (uint64_t i = 0; i < count; i++) {
            size_t e = off < k ? whole_len(p + off, k - off, depth + 1) : 0;
            if (!e)
                return 0;
            off += e;
        }
        return off == k ? k : 0;
    }
    if (c == RT_C_ARRAY8 || c == RT_C_ARRAY32) {
        size_t w = c == RT_C_ARRAY8 ? 1 : 4;
        if (k < 1 + 2 * w + 1)
            return 0;
        uint64_t count = be_get(p + 1 + w, (unsigned)w);
        size_t off = 1 + 2 * w;
        uint8_t ec = p[off++];
        if (ec == 0x00)
            return 0; /* described elements: not read here */
        for (uint64_t i = 0; i < count; i++) {
            size_t e = off < k ? body_len(ec, p + off, k - off) : SIZE_MAX;
            if (e == SIZE_MAX)
                return 0;
            if (ec == RT_C_ARRAY8 || ec == RT_C_ARRAY32)
                return 0; /* arrays of arrays: not read here */
            if (ec == RT_C_LIST8 || ec == RT_C_LIST32 || ec == RT_C_MAP8 ||
                ec == RT_C_MAP32) { /* each element whole too */
                iter it;
                if (!open_body(ec, p + off, e, &it) || ((ec == RT_C_MAP8 || ec == RT_C_MAP32) && it.left % 2))
                    return 0;
                const uint8_t *x = it.p;
                for (uint32_t j = 0; j < it.left; j++) {
                    size_t xe = x < it.end ? whole_len(x, (size_t)(it.end - x), depth + 1) : 0;
                    if (!xe)
                        return 0;
                    x += xe;
                }
                if (x != it.end)
                    return 0;
            }
            off += e;
        }
        return off == k ? k : 0;
    }
    return k;
}

/* The next item; false at the end. *bad is set when the declared count
 * and the bytes disagree. */
static bool next(iter *it, const uint8_t **v, size_t *vn, bool *bad)
{
    if (!it->left)
        return false;
    size_t k = it->p < it->end ? item_len(it->p, (size_t)(it->end - it->p), 0) : 0;
    if (!k) {
        *bad = true;
        return false;
    }
    *v = it->p;
    *vn = k;
    it->p += k;
    it->left--;
    return true;
}

/* A string or symbol's bytes; *sym says which. */
static bool str_of(const uint8_t *v, size_t n, const uint8_t **s, size_t *len, bool *sym)
{
    if (n >= 2 && (v[0] == RT_C_STR8 || v[0] == RT_C_SYM8) && (size_t)v[1] + 2 == n) {
        *s = v + 2, *len = v[1], *sym = v[0] == RT_C_SYM8;
        return true;
    }
    if (n >= 5 && (v[0] == RT_C_STR32 || v[0] == RT_C_SYM32) && be_get(v + 1, 4) + 5 == n) {
        *s = v + 5, *len = (size_t)be_get(v + 1, 4), *sym = v[0] == RT_C_SYM32;
        return true;
    }
    return false;
}

static bool key_is(const uint8_t *k, size_t kn, const char *name)
{
    const uint8_t *s;
    size_t sl;
    bool sym;
    return str_of(k, kn, &s, &sl, &sym) && sym && sl == strlen(name) && memcmp(s, name, sl) == 0;
}

static bool uint_of(const uint8_t *v, size_t n, uint64_t *out)
{
    if (n == 1 && (v[0] == RT_C_UINT0 || v[0] == RT_C_ULONG0))
        *out = 0;
    else if (n == 2 && (v[0] == RT_C_SMALLUINT || v[0] == RT_C_SMALLULONG))
        *out = v[1];
    else if (n == 5 && v[0] == RT_C_UINT)
        *out = be_get(v + 1, 4);
    else if (n == 9 && v[0] == RT_C_ULONG)
        *out = be_get(v + 1, 8);
    else
        return false;
    return true;
}

/* ---------------------------------------------------------------- output */

typedef struct wbuf {
    uint8_t *p;
    size_t len, cap;
    bool fail;
} wbuf;

static void put(wbuf *w, const void *p, size_t n)
{
    if (w->fail)
        return;
    if (n > w->cap - w->len) {
        size_t cap = w->cap * 2 > w->len + n ? w->cap * 2 : w->len + n + 256;
        uint8_t *q = realloc(w->p, cap);
        if (!q) {
            w->fail = true;
            return;
        }
        w->p = q;
        w->cap = cap;
    }
    if (n)
        memcpy(w->p + w->len, p, n);
    w->len += n;
}

static void put_be(wbuf *w, uint64_t v, unsigned n)
{
    uint8_t b[8];
    for (unsigned i = 0; i < n; i++)
        b[i] = (uint8_t)(v >> (8 * (n - 1 - i)));
    put(w, b, n);
}

static void put_str(wbuf *w, uint8_t code8, const void *s, size_t n)
{
    if (n < 256) {
        put_be(w, code8, 1);
        put_be(w, n, 1);
    } else {
        put_be(w, code8 + 0x10u, 1);
        put_be(w, n, 4);
    }
    put(w, s, n);
}

static void put_sym(wbuf *w, const char *s) { put_str(w, RT_C_SYM8, s, strlen(s)); }
static void put_utf8(wbuf *w, const char *s) { put_str(w, RT_C_STR8, s, strlen(s)); }

/* A compound with 4-byte size and count: open writes the placeholders,
 * close fills them in. */
static size_t open32(wbuf *w, uint8_t code)
{
    if (code)
        put_be(w, code, 1);
    size_t at = w->len;
    put_be(w, 0, 8);
    return at;
}

static void close32(wbuf *w, size_t at, uint32_t count)
{
    if (w->fail)
        return;
    uint64_t size = w->len - at - 4;
    if (size > UINT32_MAX) {
        w->fail = true;
        return;
    }
    for (int i = 0; i < 4; i++) {
        w->p[at + (size_t)i] = (uint8_t)(size >> (24 - 8 * i));
        w->p[at + 4 + (size_t)i] = (uint8_t)(count >> (24 - 8 * i));
    }
}

/* ---------------------------------------------------------------- deaths */

/* One entry of x-opt-deaths as read: views into the message. */
typedef struct death {
    const uint8_t *items; /* the map's pairs, as they are */
    size_t items_n;
    uint32_t count_field; /* the map's item count (2 per pair) */
    const uint8_t *queue, *reason, *exchange, *rkeys;
    size_t queue_n, reason_n, exchange_n, rkeys_n;
    uint64_t count;
    int64_t first_time;
    bool has_ttl;
    uint32_t ttl;
} death;

/* Reads one map of x-opt-deaths (constructor code, bytes p[0..n)). An
 * entry without queue, reason or count is not one RabbitMQ wrote: -1. */
static int read_death(uint8_t code, const uint8_t *p, size_t n, death *d)
{
    iter it;
    if ((code != RT_C_MAP8 && code != RT_C_MAP32) || !open_body(code, p, n, &it))
        return -1;
    memset(d, 0, sizeof *d);
    d->items = it.p;
    d->items_n = (size_t)(it.end - it.p);
    d->count_field = it.left;
    bool bad = false, has_count = false, sym;
    const uint8_t *k, *v, *s;
    size_t kn, vn, sl;
    while (next(&it, &k, &kn, &bad) && next(&it, &v, &vn, &bad)) {
        uint64_t u;
        if (key_is(k, kn, "queue") && str_of(v, vn, &s, &sl, &sym))
            d->queue = s, d->queue_n = sl;
        else if (key_is(k, kn, "reason") && str_of(v, vn, &s, &sl, &sym))
            d->reason = s, d->reason_n = sl;
        else if (key_is(k, kn, "exchange") && str_of(v, vn, &s, &sl, &sym))
            d->exchange = s, d->exchange_n = sl;
        else if (key_is(k, kn, "count") && uint_of(v, vn, &u))
            d->count = u, has_count = true;
        else if (key_is(k, kn, "first-time") && vn == 9 && v[0] == RT_C_TIMESTAMP)
            d->first_time = (int64_t)be_get(v + 1, 8);
        else if (key_is(k, kn, "routing-keys") && (v[0] == RT_C_ARRAY8 || v[0] == RT_C_ARRAY32 || v[0] == RT_C_LIST0 ||
                                                   v[0] == RT_C_LIST8 || v[0] == RT_C_LIST32))
            d->rkeys = v, d->rkeys_n = vn;
        else if (key_is(k, kn, "ttl") && uint_of(v, vn, &u) && u <= UINT32_MAX)
            d->has_ttl = true, d->ttl = (uint32_t)u;
    }
    if (bad || it.left || it.p != it.end || !d->queue || !d->reason || !has_count)
        return -1;
    return 0;
}

static bool same(const uint8_t *a, size_t an, const char *b) { return an == strlen(b) && memcmp(a, b, an) == 0; }

/* The entry for (queue, reason): new (count 1) or the old one counted
 * again, its first time, exchange, routing keys and ttl kept. */
static void write_death(wbuf *w, const death *old, const rt_death *d, const char *exchange, size_t exchange_n,
                        bool has_ttl, uint32_t ttl)
{
    size_t at = open32(w, 0);
    uint32_t n = 0;
    if (old ? old->has_ttl : has_ttl) {
        put_sym(w, "ttl");
        put_be(w, RT_C_UINT, 1);
        put_be(w, old ? old->ttl : ttl, 4);
        n += 2;
    }
    put_sym(w, "queue");
    put_utf8(w, d->queue);
    put_sym(w, "reason");
    put_sym(w, rt_death_reason_name(d->reason));
    put_sym(w, "count");
    put_be(w, RT_C_ULONG, 1);
    put_be(w, old ? old->count + 1 : 1, 8);
    put_sym(w, "first-time");
    put_be(w, RT_C_TIMESTAMP, 1);
    put_be(w, (uint64_t)(old ? old->first_time : d->now_ms), 8);
    put_sym(w, "last-time");
    put_be(w, RT_C_TIMESTAMP, 1);
    put_be(w, (uint64_t)d->now_ms, 8);
    put_sym(w, "exchange");
    if (old && old->exchange)
        put_str(w, RT_C_STR8, old->exchange, old->exchange_n);
    else
        put_str(w, RT_C_STR8, exchange, exchange_n);
    put_sym(w, "routing-keys");
    if (old && old->rkeys) {
        put(w, old->rkeys, old->rkeys_n);
    } else {
        /* an array of one string, its element constructor str32 */
        size_t ra = open32(w, RT_C_ARRAY32);
        put_be(w, RT_C_STR32, 1);
        put_be(w, strlen(d->rkey), 4);
        put(w, d->rkey, strlen(d->rkey));
        close32(w, ra, 1);
    }
    n += 14;
    close32(w, at, n);
}

/* Where the sections are. */
typedef struct layout {
    size_t hdr_off, hdr_n; /* whole sections; n 0: absent */
    size_t da_off, da_n;
    size_t ma_off, ma_n;
    const uint8_t *hdr_v, *ma_v; /* their values */
    size_t hdr_vn, ma_vn;
    size_t rest; /* where the bare message starts */
} layout;

static int section_code(const uint8_t *d, size_t dn)
{
    uint64_t u;
    const uint8_t *s;
    size_t sl;
    bool sym;
    if (uint_of(d, dn, &u))
        return u >= RT_SEC_HEADER && u <= RT_SEC_MESSAGE_ANN ? (int)u : 0x73;
    if (str_of(d, dn, &s, &sl, &sym) && sym) {
        if (same(s, sl, "amqp:header:list"))
            return RT_SEC_HEADER;
        if (same(s, sl, "amqp:delivery-annotations:map"))
            return RT_SEC_DELIVERY_ANN;
        if (same(s, sl, "amqp:message-annotations:map"))
            return RT_SEC_MESSAGE_ANN;
    }
    return 0x73; /* the bare message (or something past it) */
}

static int find_sections(const uint8_t *p, size_t n, layout *l)
{
    memset(l, 0, sizeof *l);
    size_t off = 0;
    int last = 0;
    while (off < n) {
        if (p[off] != 0x00)
            return -EBADMSG;
        size_t dk = item_len(p + off + 1, n - off - 1, 1);
        if (!dk)
            return -EBADMSG;
        int code = section_code(p + off + 1, dk);
        if (code > RT_SEC_MESSAGE_ANN)
            break;
        size_t vk = whole_len(p + off + 1 + dk, n - off - 1 - dk, 0);
        if (!vk || code <= last)
            return -EBADMSG; /* cut short, or out of order or twice */
        last = code;
        size_t size = 1 + dk + vk;
        if (code == RT_SEC_HEADER)
            l->hdr_off = off, l->hdr_n = size, l->hdr_v = p + off + 1 + dk, l->hdr_vn = vk;
        else if (code == RT_SEC_DELIVERY_ANN)
            l->da_off = off, l->da_n = size;
        else
            l->ma_off = off, l->ma_n = size, l->ma_v = p + off + 1 + dk, l->ma_vn = vk;
        off += size;
    }
    l->rest = off;
    return 0;
}

/* The header again with its ttl taken off (RabbitMQ: so it does not expire
 * again where it goes); as it was if it had none. */
static int write_header(wbuf *w, const layout *l, const uint8_t *data)
{
    if (!l->hdr_n)
        return 0;
    iter it;
    uint8_t c = l->hdr_v[0];
    if ((c != RT_C_LIST0 && c != RT_C_LIST8 && c != RT_C_LIST32) || !open_item(l->hdr_v, l->hdr_vn, &it))
        return -EBADMSG; /* a header that is no list: forwarded as it is */
    const uint8_t *v[5] = {0};
    size_t vn[5] = {0};
    uint32_t nf = 0;
    bool bad = false;
    const uint8_t *x;
    size_t xn;
    while (next(&it, &x, &xn, &bad)) {
        if (nf < 5)
            v[nf] = x, vn[nf] = xn;
        nf++;
    }
    if (bad || nf > 5 || it.p != it.end)
        return -EBADMSG; /* bytes past its fields: proton would read the sections after it otherwise */
    if (nf < 3 || v[2][0] == RT_C_NULL) {
        put(w, data + l->hdr_off, l->hdr_n);
        return 0;
    }
    put_be(w, 0x00, 1);
    put_be(w, RT_C_SMALLULONG, 1);
    put_be(w, RT_SEC_HEADER, 1);
    size_t at = open32(w, RT_C_LIST32);
    for (uint32_t i = 0; i < nf; i++) {
        if (i == 2)
            put_be(w, RT_C_NULL, 1);
        else
            put(w, v[i], vn[i]);
    }
    close32(w, at, nf);
    return 0;
}

static const char *const replaced[] = {"x-opt-deaths",          "x-last-death-queue", "x-last-death-reason",
                                       "x-last-death-exchange", "x-exchange",         "x-routing-key"};
static const char *const firsts[] = {"x-first-death-queue", "x-first-death-reason", "x-first-death-exchange"};

static bool one_of(const uint8_t *k, size_t kn, const char *const *names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (key_is(k, kn, names[i]))
            return true;
    return false;
}

/* The message annotations with the death recorded. */
static int write_ma(wbuf *w, const rt_msg *m, const layout *l, const rt_death *d)
{
    iter it;
    bool bad = false;
    const uint8_t *k, *v, *s;
    size_t kn, vn, sl;
    bool sym;
    /* First pass: the old history and the exchange it was published to. */
    const uint8_t *deaths = NULL, *exchange = (const uint8_t *)"";
    size_t deaths_n = 0, exchange_n = 0;
    if (l->ma_n) {
        if (!open_item(l->ma_v, l->ma_vn, &it) || (l->ma_v[0] != RT_C_MAP8 && l->ma_v[0] != RT_C_MAP32))
            return -EBADMSG;
        while (next(&it, &k, &kn, &bad) && next(&it, &v, &vn, &bad)) {
            if (key_is(k, kn, "x-opt-deaths"))
                deaths = v, deaths_n = vn;
            else if (key_is(k, kn, "x-exchange") && str_of(v, vn, &s, &sl, &sym) && sl <= RT_NAME_MAX)
                exchange = s, exchange_n = sl;
        }
        if (bad || it.left || it.p != it.end)
            return -EBADMSG;
    }
    /* The old entries: which one is (queue, reason), and the newest
     * RT_DEATHS_MAX - 1 of the others, kept as they are. */
    death kept[RT_DEATHS_MAX - 1], match, e;
    uint32_t nkept = 0;
    bool matched = false;
    if (deaths) {
        size_t sw = deaths[0] == RT_C_ARRAY8 ? 1 : deaths[0] == RT_C_ARRAY32 ? 4 : 0;
        if (!sw || deaths_n < 1 + 2 * sw + 1)
            return -EBADMSG;
        uint64_t count = be_get(deaths + 1 + sw, (unsigned)sw);
        const uint8_t *q = deaths + 1 + 2 * sw, *end = deaths + deaths_n;
        uint8_t ec = *q++;
        for (uint64_t i = 0; i < count; i++) {
            size_t ek = q < end ? body_len(ec, q, (size_t)(end - q)) : SIZE_MAX;
            if (ek == SIZE_MAX || read_death(ec, q, ek, &e) < 0)
                return -EBADMSG;
            q += ek;
            if (!matched && same(e.queue, e.queue_n, d->queue) &&
                same(e.reason, e.reason_n, rt_death_reason_name(d->reason))) {
                match = e;
                matched = true;
            } else if (nkept < RT_DEATHS_MAX - 1) {
                kept[nkept++] = e;
            }
        }
        if (q != end)
            return -EBADMSG;
    }
    bool first = !matched && !nkept; /* no history yet: x-first-death-* are written (again) */
    /* The section: what is not replaced as it was, then the new values. */
    put_be(w, 0x00, 1);
    put_be(w, RT_C_SMALLULONG, 1);
    put_be(w, RT_SEC_MESSAGE_ANN, 1);
    size_t at = open32(w, RT_C_MAP32);
    uint32_t n = 0;
    if (l->ma_n) {
        open_item(l->ma_v, l->ma_vn, &it);
        while (next(&it, &k, &kn, &bad) && next(&it, &v, &vn, &bad)) {
            if (one_of(k, kn, replaced, 6) || (first && one_of(k, kn, firsts, 3)))
                continue;
            put(w, k, kn);
            put(w, v, vn);
            n += 2;
        }
    }
    char ex[RT_NAME_MAX + 1];
    memcpy(ex, exchange, exchange_n);
    ex[exchange_n] = '\0';
    const char *reason = rt_death_reason_name(d->reason);
    if (first) {
        put_sym(w, "x-first-death-queue");
        put_utf8(w, d->queue);
        put_sym(w, "x-first-death-reason");
        put_utf8(w, reason);
        put_sym(w, "x-first-death-exchange");
        put_utf8(w, ex);
        n += 6;
    }
    put_sym(w, "x-last-death-queue");
    put_utf8(w, d->queue);
    put_sym(w, "x-last-death-reason");
    put_utf8(w, reason);
    put_sym(w, "x-last-death-exchange");
    put_utf8(w, ex);
    put_sym(w, "x-exchange");
    put_utf8(w, d->exchange);
    put_sym(w, "x-routing-key");
    put_utf8(w, d->key);
    put_sym(w, "x-opt-deaths");
    n += 12;
    /* An array of maps, newest first: the element constructor map32 for
     * all, so old map8 entries are written again with 4-byte sizes. */
    size_t aa = open32(w, RT_C_ARRAY32);
    put_be(w, RT_C_MAP32, 1);
    write_death(w, matched ? &match : NULL, d, ex, exchange_n, m->has_ttl, m->ttl);
    for (uint32_t i = 0; i < nkept; i++) {
        put_be(w, kept[i].items_n + 4, 4);
        put_be(w, kept[i].count_field, 4);
        put(w, kept[i].items, kept[i].items_n);
    }
    close32(w, aa, 1 + nkept);
    close32(w, at, n);
    return 0;
}

int rt_msg_dead(const rt_msg *m, const rt_death *d, rt_msg **out)
{
    const uint8_t *data = m->buf.data;
    size_t len = m->buf.len;
    if (strlen(d->queue) > RT_NAME_MAX || strlen(d->exchange) > RT_NAME_MAX || strlen(d->key) > RT_NAME_MAX ||
        strlen(d->rkey) > RT_NAME_MAX)
        return -EINVAL;
    layout l;
    int rc = find_sections(data, len, &l);
    if (rc < 0)
        return rc;
    wbuf w = {0};
    if ((rc = write_header(&w, &l, data)) == 0) {
        if (l.da_n)
            put(&w, data + l.da_off, l.da_n);
        rc = write_ma(&w, m, &l, d);
    }
    if (rc == 0)
        put(&w, data + l.rest, len - l.rest);
    if (rc == 0 && w.fail)
        rc = -ENOMEM;
    rt_msg *c = NULL;
    if (rc == 0 && (rc = rt_msg_new(w.p, w.len, &c)) == 0 && (rc = rt_msg_set_rkey(c, d->key)) < 0) {
        rt_msg_unref(c);
        c = NULL;
    }
    free(w.p);
    if (rc == 0)
        *out = c;
    return rc;
}

bool rt_msg_death_cycle(const rt_msg *m, const char *queue)
{
    layout l;
    iter it;
    bool bad = false;
    const uint8_t *k, *v, *deaths = NULL;
    size_t kn, vn, deaths_n = 0;
    if (find_sections(m->buf.data, m->buf.len, &l) < 0 || !l.ma_n || !open_item(l.ma_v, l.ma_vn, &it))
        return false;
    while (!deaths && next(&it, &k, &kn, &bad) && next(&it, &v, &vn, &bad))
        if (key_is(k, kn, "x-opt-deaths"))
            deaths = v, deaths_n = vn;
    size_t sw = !deaths ? 0 : deaths[0] == RT_C_ARRAY8 ? 1 : deaths[0] == RT_C_ARRAY32 ? 4 : 0;
    if (!sw || deaths_n < 1 + 2 * sw + 1)
        return false;
    uint64_t count = be_get(deaths + 1 + sw, (unsigned)sw);
    const uint8_t *q = deaths + 1 + 2 * sw, *end = deaths + deaths_n;
    uint8_t ec = *q++;
    death e;
    for (uint64_t i = 0; i < count; i++) {
        size_t ek = q < end ? body_len(ec, q, (size_t)(end - q)) : SIZE_MAX;
        if (ek == SIZE_MAX || read_death(ec, q, ek, &e) < 0)
            return false;
        q += ek;
        if (same(e.reason, e.reason_n, "rejected"))
            return false; /* a client's rejection breaks the cycle */
        if (same(e.queue, e.queue_n, queue))
            return true;
    }
    return false;
}
