/* rt_internal.h — shared by the files of routing/ only. */
#ifndef PLEXUS_RT_INTERNAL_H
#define PLEXUS_RT_INTERNAL_H

#include "routing/rt.h"

enum { RT__QUEUES, RT__EXCHANGES };

/* directory.c: lock-free reads; add/remove by the manager only. */
void *rt__dir_find(int which, const char *name);
void rt__dir_each(int which, bool (*fn)(void *obj, void *ctx), void *ctx);
int rt__dir_add(int which, const char *name, void *obj);
void *rt__dir_remove(int which, const char *name);
void rt__dir_clear(void (*free_queue)(void *), void (*free_exchange)(void *));

/* exchange.c */
rt_exchange *rt__exchange_new(const char *name, rt_xtype type, bool durable, bool auto_delete, bool internal);
void rt__exchange_free(void *x); /* with its bindings, at once: the caller retires */
rt_binding *rt__binding_new(const char *key, const char *dest, bool to_exchange, rt_hdrmatch *hm);
void rt__binding_free(void *b);
bool rt__binding_same(const rt_binding *a, const rt_binding *b);
/* Binding sets are copied on write: each returns a new set (NULL: out of
 * memory) and the caller publishes it and retires the old one. */
rt_bindset *rt__bindset_add(const rt_bindset *old, rt_binding *b);
/* Without the bindings for which drop() is true; they go to *dropped (an
 * array the caller frees, after retiring each binding). */
rt_bindset *rt__bindset_filter(const rt_bindset *old, bool (*drop)(const rt_binding *b, const void *ctx),
                               const void *ctx, rt_binding ***dropped, uint32_t *ndropped);

/* queue.c: a queue process's init takes its rt_queue record. */
extern const sv_server_ops rt__queue_ops;
void rt__queue_free(void *q);
/* Drops a reference; the last one retires the record (readers may still
 * hold it for the rest of their turn). The manager's reference goes when
 * the queue leaves the directory, a process's when it ends: the record
 * outlives both, whichever is last. */
void rt__queue_unref(rt_queue *q);

/* manager.c */
const rt_config *rt__config(void);
/* memory.c: queues report what they take and let go of, in batches. */
void rt__held_add(int64_t bytes);

#endif
