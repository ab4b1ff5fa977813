/* map.c — sv_map: the small hash table behind a process's links, monitors,
 * calls and timers, and behind a queue's unacknowledged deliveries.
 *
 * Open addressing with linear probing and backward-shift deletion (no
 * tombstones), so a table that sees endless add/remove churn, like a
 * supervisor of connections, never degrades. Entries are caller-defined
 * structs that start with the 128-bit key. A table that empties keeps its
 * memory up to KEEP_BYTES: maps that fill and empty every round (a
 * connection's publishes in flight, a queue's unacknowledged deliveries)
 * would otherwise grow again from four entries each time, rehashing into
 * fresh zeroed pages (profiled: a tenth of the broker's time under 0-9-1
 * load); larger ones give it back, so a burst's memory still returns.
 */
#include <stdlib.h>
#include <string.h>

#include "sv_internal.h"

#define KEEP_BYTES (256u << 10)

typedef struct key {
    uint64_t k1, k2;
} key;

static uint32_t map_hash(uint64_t k1, uint64_t k2)
{
    uint64_t h = k1 * 0x9e3779b97f4a7c15ULL ^ k2;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    return (uint32_t)h;
}

static inline key *slot(const sv_map *m, uint32_t i) { return (key *)((char *)m->e + (size_t)i * m->esize); }
static inline bool used(const key *k) { return k->k1 | k->k2; }

void *sv_map_at(const sv_map *m, uint32_t i)
{
    key *k = slot(m, i);
    return used(k) ? k : NULL;
}

void *sv_map_get(const sv_map *m, uint64_t k1, uint64_t k2)
{
    if (!m->n)
        return NULL;
    uint32_t mask = m->cap - 1;
    for (uint32_t i = map_hash(k1, k2) & mask;; i = (i + 1) & mask) {
        key *k = slot(m, i);
        if (!used(k))
            return NULL;
        if (k->k1 == k1 && k->k2 == k2)
            return k;
    }
}

static int map_grow(sv_map *m)
{
    uint32_t ncap = m->cap ? m->cap * 2 : 4;
    sv_map nm = {calloc(ncap, m->esize), ncap, m->n, m->esize};
    if (!nm.e)
        return -1;
    for (uint32_t j = 0; j < m->cap; j++) {
        key *o = slot(m, j);
        if (!used(o))
            continue;
        uint32_t i = map_hash(o->k1, o->k2) & (ncap - 1);
        while (used(slot(&nm, i)))
            i = (i + 1) & (ncap - 1);
        memcpy(slot(&nm, i), o, m->esize);
    }
    free(m->e);
    *m = nm;
    return 0;
}

void *sv_map_put(sv_map *m, uint64_t k1, uint64_t k2)
{
    key *k = sv_map_get(m, k1, k2);
    if (k)
        return k;
    if ((m->n + 1) * 4 > m->cap * 3 && map_grow(m) < 0)
        return NULL;
    uint32_t mask = m->cap - 1;
    uint32_t i = map_hash(k1, k2) & mask;
    while (used(slot(m, i)))
        i = (i + 1) & mask;
    k = slot(m, i);
    memset(k, 0, m->esize);
    k->k1 = k1;
    k->k2 = k2;
    m->n++;
    return k;
}

bool sv_map_del(sv_map *m, uint64_t k1, uint64_t k2, void *out)
{
    key *k = sv_map_get(m, k1, k2);
    if (!k)
        return false;
    if (out)
        memcpy(out, k, m->esize);
    uint32_t mask = m->cap - 1;
    uint32_t hole = (uint32_t)(((char *)k - (char *)m->e) / m->esize);
    /* Shift later members of the probe run back into the hole, so lookups
     * never need to skip deleted entries. */
    for (uint32_t i = (hole + 1) & mask; used(slot(m, i)); i = (i + 1) & mask) {
        uint32_t home = map_hash(slot(m, i)->k1, slot(m, i)->k2) & mask;
        /* Move it if its home is not cyclically within (hole, i]. */
        bool between = hole <= i ? (home > hole && home <= i) : (home > hole || home <= i);
        if (!between) {
            memcpy(slot(m, hole), slot(m, i), m->esize);
            hole = i;
        }
    }
    memset(slot(m, hole), 0, m->esize);
    if (--m->n == 0 && (size_t)m->cap * m->esize > KEEP_BYTES)
        sv_map_free(m);
    return true;
}

void sv_map_free(sv_map *m)
{
    free(m->e);
    m->e = NULL;
    m->cap = m->n = 0;
}
