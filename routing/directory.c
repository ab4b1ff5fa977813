/* directory.c — the names of queues and exchanges, readable without locks.
 *
 * Two hash tables (queues, exchanges) with one writer, the routing manager,
 * and any number of readers on any scheduler. A reader follows atomic
 * pointers; the writer links a new node in with one release store and
 * unlinks with another, and retires what it unlinked (sv_retire), so a
 * reader in the middle of a lookup never sees freed memory. Growing copies
 * every node into a new table and retires the old one whole.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "routing/rt_internal.h"

typedef struct dnode {
    _Atomic(struct dnode *) next;
    uint32_t hash;
    const char *name; /* the object's own name */
    void *obj;
} dnode;

typedef struct dtable {
    uint32_t mask, n;
    _Atomic(dnode *) b[];
} dtable;

static _Atomic(dtable *) tables[2]; /* RT__QUEUES, RT__EXCHANGES */

static dtable *table_new(uint32_t cap)
{
    dtable *t = calloc(1, sizeof *t + cap * sizeof t->b[0]);
    if (t)
        t->mask = cap - 1;
    return t;
}

/* Frees a table and its nodes (not the objects they name). */
static void table_free(void *p)
{
    dtable *t = p;
    for (uint32_t i = 0; i <= t->mask; i++) {
        dnode *n = atomic_load_explicit(&t->b[i], memory_order_relaxed);
        while (n) {
            dnode *next = atomic_load_explicit(&n->next, memory_order_relaxed);
            free(n);
            n = next;
        }
    }
    free(t);
}

void *rt__dir_find(int which, const char *name)
{
    dtable *t = atomic_load_explicit(&tables[which], memory_order_acquire);
    if (!t || !name)
        return NULL;
    uint32_t h = sv_hash32(name);
    for (dnode *n = atomic_load_explicit(&t->b[h & t->mask], memory_order_acquire); n;
         n = atomic_load_explicit(&n->next, memory_order_acquire))
        if (n->hash == h && strcmp(n->name, name) == 0)
            return n->obj;
    return NULL;
}

void rt__dir_each(int which, bool (*fn)(void *obj, void *ctx), void *ctx)
{
    dtable *t = atomic_load_explicit(&tables[which], memory_order_acquire);
    if (!t)
        return;
    for (uint32_t i = 0; i <= t->mask; i++)
        for (dnode *n = atomic_load_explicit(&t->b[i], memory_order_acquire); n;
             n = atomic_load_explicit(&n->next, memory_order_acquire))
            if (!fn(n->obj, ctx))
                return;
}

static int link_node(dtable *t, const char *name, void *obj, uint32_t h)
{
    dnode *n = malloc(sizeof *n);
    if (!n)
        return -ENOMEM;
    n->hash = h;
    n->name = name;
    n->obj = obj;
    atomic_store_explicit(&n->next, atomic_load_explicit(&t->b[h & t->mask], memory_order_relaxed),
                          memory_order_relaxed);
    atomic_store_explicit(&t->b[h & t->mask], n, memory_order_release);
    t->n++;
    return 0;
}

/* Writer only. name must stay valid as long as the object is listed. */
int rt__dir_add(int which, const char *name, void *obj)
{
    dtable *t = atomic_load_explicit(&tables[which], memory_order_relaxed);
    if (!t) {
        if (!(t = table_new(64)))
            return -ENOMEM;
        atomic_store_explicit(&tables[which], t, memory_order_release);
    }
    if ((t->n + 1) * 4 > (t->mask + 1) * 3) {
        dtable *nt = table_new((t->mask + 1) * 2);
        if (!nt)
            return -ENOMEM;
        for (uint32_t i = 0; i <= t->mask; i++)
            for (dnode *n = atomic_load_explicit(&t->b[i], memory_order_relaxed); n;
                 n = atomic_load_explicit(&n->next, memory_order_relaxed))
                if (link_node(nt, n->name, n->obj, n->hash) < 0) {
                    table_free(nt);
                    return -ENOMEM;
                }
        atomic_store_explicit(&tables[which], nt, memory_order_release);
        sv_retire(t, table_free);
        t = nt;
    }
    return link_node(t, name, obj, sv_hash32(name));
}

/* Writer only: unlinks name; the caller retires the object itself. */
void *rt__dir_remove(int which, const char *name)
{
    dtable *t = atomic_load_explicit(&tables[which], memory_order_relaxed);
    if (!t)
        return NULL;
    uint32_t h = sv_hash32(name);
    _Atomic(dnode *) *pp = &t->b[h & t->mask];
    for (dnode *n; (n = atomic_load_explicit(pp, memory_order_relaxed)); pp = &n->next) {
        if (n->hash == h && strcmp(n->name, name) == 0) {
            atomic_store_explicit(pp, atomic_load_explicit(&n->next, memory_order_relaxed), memory_order_release);
            t->n--;
            void *obj = n->obj;
            sv_retire(n, free);
            return obj;
        }
    }
    return NULL;
}

/* At node stop, after every process has ended. */
void rt__dir_clear(void (*free_queue)(void *), void (*free_exchange)(void *))
{
    void (*fns[2])(void *) = {free_queue, free_exchange};
    for (int w = 0; w < 2; w++) {
        dtable *t = atomic_exchange(&tables[w], NULL);
        if (!t)
            continue;
        for (uint32_t i = 0; i <= t->mask; i++)
            for (dnode *n = atomic_load(&t->b[i]); n; n = atomic_load(&n->next))
                fns[w](n->obj);
        table_free(t);
    }
}

rt_queue *rt_queue_find(const char *name) { return rt__dir_find(RT__QUEUES, name); }
rt_exchange *rt_exchange_find(const char *name) { return rt__dir_find(RT__EXCHANGES, name); }

typedef struct queue_each {
    bool (*fn)(rt_queue *q, void *ctx);
    void *ctx;
} queue_each;

typedef struct exchange_each {
    bool (*fn)(rt_exchange *x, void *ctx);
    void *ctx;
} exchange_each;

static bool each_queue(void *obj, void *c)
{
    queue_each *e = c;
    return e->fn(obj, e->ctx);
}

static bool each_exchange(void *obj, void *c)
{
    exchange_each *e = c;
    return e->fn(obj, e->ctx);
}

void rt_queue_each(bool (*fn)(rt_queue *q, void *ctx), void *ctx)
{
    queue_each e = {fn, ctx};
    rt__dir_each(RT__QUEUES, each_queue, &e);
}

void rt_exchange_each(bool (*fn)(rt_exchange *x, void *ctx), void *ctx)
{
    exchange_each e = {fn, ctx};
    rt__dir_each(RT__EXCHANGES, each_exchange, &e);
}
