/* proc_table.c — the node's process table: pid index -> slot.
 *
 * Slots live in chunks that are never freed while the node runs (type-stable
 * memory), so a sender can lock the slot of any pid without racing the
 * process's exit. Free slots are reused first-in first-out and the table
 * grows while fewer than a chunk's worth are free: a slot is reused only
 * after thousands of other spawns, so a generation counter of 32 bits never
 * wraps onto a pid still held somewhere.
 */
#include <errno.h>
#include <stdlib.h>

#include "sv_internal.h"

#define CHUNK_BITS 12
#define CHUNK_SIZE (1u << CHUNK_BITS)
#define MAX_CHUNKS 1024 /* 4 M processes */
#define NO_SLOT UINT32_MAX

static struct {
    pthread_mutex_t lock; /* guards the free list and growth */
    _Atomic(sv__slot *) chunks[MAX_CHUNKS];
    uint32_t nchunks;
    uint32_t free_head, free_tail, nfree;
} tab = {.lock = PTHREAD_MUTEX_INITIALIZER};

static int table_grow(void)
{
    if (tab.nchunks == MAX_CHUNKS)
        return -EAGAIN;
    sv__slot *c = calloc(CHUNK_SIZE, sizeof *c);
    if (!c)
        return -ENOMEM;
    uint32_t base = tab.nchunks << CHUNK_BITS;
    for (uint32_t i = 0; i < CHUNK_SIZE; i++) {
        pthread_mutex_init(&c[i].lock, NULL);
        c[i].gen = 1;
        c[i].next_free = i + 1 < CHUNK_SIZE ? base + i + 1 : NO_SLOT;
    }
    if (tab.free_tail != NO_SLOT)
        sv__table_slot(tab.free_tail)->next_free = base;
    else
        tab.free_head = base;
    tab.free_tail = base + CHUNK_SIZE - 1;
    tab.nfree += CHUNK_SIZE;
    atomic_store_explicit(&tab.chunks[tab.nchunks], c, memory_order_release);
    tab.nchunks++;
    return 0;
}

int sv__table_init(void)
{
    tab.free_head = tab.free_tail = NO_SLOT;
    tab.nfree = 0;
    tab.nchunks = 0;
    return table_grow();
}

void sv__table_destroy(void)
{
    for (uint32_t c = 0; c < tab.nchunks; c++) {
        sv__slot *s = atomic_load(&tab.chunks[c]);
        for (uint32_t i = 0; i < CHUNK_SIZE; i++)
            pthread_mutex_destroy(&s[i].lock);
        free(s);
        atomic_store(&tab.chunks[c], NULL);
    }
    tab.nchunks = 0;
    tab.free_head = tab.free_tail = NO_SLOT;
    tab.nfree = 0;
}

sv__slot *sv__table_slot(uint32_t index)
{
    uint32_t c = index >> CHUNK_BITS;
    if (c >= MAX_CHUNKS)
        return NULL;
    sv__slot *chunk = atomic_load_explicit(&tab.chunks[c], memory_order_acquire);
    return chunk ? &chunk[index & (CHUNK_SIZE - 1)] : NULL;
}

uint32_t sv__table_size(void)
{
    pthread_mutex_lock(&tab.lock);
    uint32_t n = tab.nchunks * CHUNK_SIZE;
    pthread_mutex_unlock(&tab.lock);
    return n;
}

int sv__table_alloc(sv_proc *p)
{
    pthread_mutex_lock(&tab.lock);
    if (tab.nfree < CHUNK_SIZE) {
        int rc = table_grow();
        if (rc < 0 && tab.nfree == 0) {
            pthread_mutex_unlock(&tab.lock);
            return rc;
        }
    }
    uint32_t index = tab.free_head;
    sv__slot *s = sv__table_slot(index);
    tab.free_head = s->next_free;
    if (tab.free_head == NO_SLOT)
        tab.free_tail = NO_SLOT;
    tab.nfree--;
    pthread_mutex_unlock(&tab.lock);

    pthread_mutex_lock(&s->lock);
    p->slot = s;
    p->pid = (sv_pid){sv__n.id, sv__n.creation, index, s->gen};
    s->proc = p;
    pthread_mutex_unlock(&s->lock);
    return 0;
}

/* The caller has already bumped s->gen and cleared s->proc under s->lock. */
void sv__table_release(sv__slot *s, uint32_t index)
{
    pthread_mutex_lock(&tab.lock);
    s->next_free = NO_SLOT;
    if (tab.free_tail != NO_SLOT)
        sv__table_slot(tab.free_tail)->next_free = index;
    else
        tab.free_head = index;
    tab.free_tail = index;
    tab.nfree++;
    pthread_mutex_unlock(&tab.lock);
}
