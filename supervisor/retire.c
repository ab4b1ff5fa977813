/* retire.c — deferred freeing of shared read-mostly data (QSBR).
 *
 * Routing tables are read by every connection on every publish and changed
 * rarely, so readers take no lock and touch no shared counter: a pointer
 * read from a shared table is valid until the end of the reader's turn.
 * A writer that replaces something retires the old version here; it is
 * freed once every scheduler has passed the top of its loop (a point where
 * no process code runs) since the retirement. Each scheduler is told it
 * owes a pass (owes_pass), and a sleeping one is woken to make it: without
 * the debt, a scheduler just about to sleep missed the wake-up and held
 * the retired version until something else woke it (seen in
 * test_sv_runtime's retire test: the last versions stayed unfreed).
 */
#include <errno.h>
#include <stdlib.h>

#include "sv_internal.h"

typedef struct retired {
    void *ptr;
    void (*free_fn)(void *);
    struct retired *next;
    uint64_t seen[]; /* each scheduler's pass count at retirement */
} retired;

static pthread_mutex_t ret_lock = PTHREAD_MUTEX_INITIALIZER;
static retired *ret_head;
static atomic_int ret_pending;

void sv_retire(void *ptr, void (*free_fn)(void *))
{
    if (!ptr)
        return;
    if (!atomic_load(&sv__n.running) || sv__n.nsched == 0) {
        free_fn(ptr); /* no scheduler can be reading */
        return;
    }
    retired *r = malloc(sizeof *r + (size_t)sv__n.nsched * sizeof(uint64_t));
    if (!r) {
        /* Out of memory: leaking one old version beats freeing it under a
         * reader's feet. */
        sv_log(SV_LOG_ERROR, "sv_retire: out of memory, leaking %p", ptr);
        return;
    }
    r->ptr = ptr;
    r->free_fn = free_fn;
    for (int i = 0; i < sv__n.nsched; i++)
        r->seen[i] = atomic_load_explicit(&sv__n.sched[i].passes, memory_order_acquire);
    pthread_mutex_lock(&ret_lock);
    r->next = ret_head;
    ret_head = r;
    pthread_mutex_unlock(&ret_lock);
    atomic_store(&ret_pending, 1);
    /* seq_cst store of the debt, then load of `sleeping`: paired with the
     * scheduler's store of `sleeping`, then load of the debt (sched.c). */
    for (int i = 0; i < sv__n.nsched; i++) {
        atomic_store(&sv__n.sched[i].owes_pass, 1);
        if (atomic_load(&sv__n.sched[i].sleeping))
            uv_async_send(&sv__n.sched[i].wake);
    }
}

/* Called by each scheduler at the top of its loop when something waits. */
void sv__retire_poll(void)
{
    if (!atomic_load_explicit(&ret_pending, memory_order_relaxed))
        return;
    retired *done = NULL;
    pthread_mutex_lock(&ret_lock);
    for (retired **pp = &ret_head; *pp;) {
        retired *r = *pp;
        bool passed = true;
        for (int i = 0; i < sv__n.nsched && passed; i++)
            passed = atomic_load_explicit(&sv__n.sched[i].passes, memory_order_acquire) != r->seen[i];
        if (passed) {
            *pp = r->next;
            r->next = done;
            done = r;
        } else {
            pp = &r->next;
        }
    }
    if (!ret_head)
        atomic_store(&ret_pending, 0);
    pthread_mutex_unlock(&ret_lock);
    while (done) {
        retired *r = done;
        done = r->next;
        r->free_fn(r->ptr);
        free(r);
    }
}

/* At node stop: nobody reads any more. */
void sv__retire_flush(void)
{
    pthread_mutex_lock(&ret_lock);
    retired *r = ret_head;
    ret_head = NULL;
    atomic_store(&ret_pending, 0);
    pthread_mutex_unlock(&ret_lock);
    while (r) {
        retired *next = r->next;
        r->free_fn(r->ptr);
        free(r);
        r = next;
    }
}
