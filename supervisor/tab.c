/* tab.c — the small hash table behind a process's links, monitors, calls and
 * timers.
 *
 * Open addressing with linear probing and backward-shift deletion (no
 * tombstones), so a table that sees endless add/remove churn, like a
 * supervisor of connections, never degrades. Empty tables own no memory.
 */
#include <stdlib.h>
#include <string.h>

#include "sv_internal.h"

static uint32_t tab_hash(uint64_t k1, uint64_t k2)
{
    uint64_t h = k1 * 0x9e3779b97f4a7c15ULL ^ k2;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    return (uint32_t)h;
}

sv__ent *sv__tab_get(const sv__tab *t, uint64_t k1, uint64_t k2)
{
    if (!t->n)
        return NULL;
    uint32_t mask = t->cap - 1;
    for (uint32_t i = tab_hash(k1, k2) & mask;; i = (i + 1) & mask) {
        sv__ent *e = &t->e[i];
        if (!sv__tab_used(e))
            return NULL;
        if (e->k1 == k1 && e->k2 == k2)
            return e;
    }
}

static int tab_grow(sv__tab *t)
{
    uint32_t ncap = t->cap ? t->cap * 2 : 4;
    sv__ent *ne = calloc(ncap, sizeof *ne);
    if (!ne)
        return -1;
    for (uint32_t j = 0; j < t->cap; j++) {
        sv__ent *o = &t->e[j];
        if (!sv__tab_used(o))
            continue;
        uint32_t i = tab_hash(o->k1, o->k2) & (ncap - 1);
        while (sv__tab_used(&ne[i]))
            i = (i + 1) & (ncap - 1);
        ne[i] = *o;
    }
    free(t->e);
    t->e = ne;
    t->cap = ncap;
    return 0;
}

sv__ent *sv__tab_put(sv__tab *t, uint64_t k1, uint64_t k2)
{
    sv__ent *e = sv__tab_get(t, k1, k2);
    if (e)
        return e;
    if ((t->n + 1) * 4 > t->cap * 3 && tab_grow(t) < 0)
        return NULL;
    uint32_t mask = t->cap - 1;
    uint32_t i = tab_hash(k1, k2) & mask;
    while (sv__tab_used(&t->e[i]))
        i = (i + 1) & mask;
    e = &t->e[i];
    memset(e, 0, sizeof *e);
    e->k1 = k1;
    e->k2 = k2;
    t->n++;
    return e;
}

bool sv__tab_del(sv__tab *t, uint64_t k1, uint64_t k2, sv__ent *out)
{
    sv__ent *e = sv__tab_get(t, k1, k2);
    if (!e)
        return false;
    if (out)
        *out = *e;
    uint32_t mask = t->cap - 1;
    uint32_t hole = (uint32_t)(e - t->e);
    /* Shift later members of the probe run back into the hole, so lookups
     * never need to skip deleted entries. */
    for (uint32_t i = (hole + 1) & mask; sv__tab_used(&t->e[i]); i = (i + 1) & mask) {
        uint32_t home = tab_hash(t->e[i].k1, t->e[i].k2) & mask;
        /* Move it if its home is not cyclically within (hole, i]. */
        bool between = hole <= i ? (home > hole && home <= i) : (home > hole || home <= i);
        if (!between) {
            t->e[hole] = t->e[i];
            hole = i;
        }
    }
    memset(&t->e[hole], 0, sizeof t->e[hole]);
    if (--t->n == 0)
        sv__tab_free(t);
    return true;
}

void sv__tab_free(sv__tab *t)
{
    free(t->e);
    t->e = NULL;
    t->cap = t->n = 0;
}
