/* registry.c — node-local names for well-known processes ("routing_sup").
 *
 * A small table under one mutex: names are looked up when a connection or
 * the admin API needs a service, not per message, so simplicity wins.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "sv_internal.h"

typedef struct reg_entry {
    char *name;
    sv_pid pid;
    struct reg_entry *next;
} reg_entry;

static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static reg_entry *reg_head;
static atomic_int reg_count; /* lets the exit path skip the lock when nothing is named */

static reg_entry **reg_find(const char *name)
{
    reg_entry **pp = &reg_head;
    while (*pp && strcmp((*pp)->name, name) != 0)
        pp = &(*pp)->next;
    return pp;
}

int sv_register(const char *name, sv_pid pid)
{
    if (!name || !*name || sv_pid_is_none(pid))
        return -EINVAL;
    pthread_mutex_lock(&reg_lock);
    reg_entry **pp = reg_find(name);
    int rc = 0;
    if (*pp && sv_is_alive((*pp)->pid)) {
        rc = -EEXIST;
    } else if (*pp) {
        (*pp)->pid = pid; /* the old owner is dead but not yet dropped */
    } else {
        reg_entry *e = calloc(1, sizeof *e);
        if (!e || !(e->name = strdup(name))) {
            free(e);
            rc = -ENOMEM;
        } else {
            e->pid = pid;
            *pp = e;
            atomic_fetch_add(&reg_count, 1);
        }
    }
    pthread_mutex_unlock(&reg_lock);
    return rc;
}

static void reg_remove(reg_entry **pp)
{
    reg_entry *e = *pp;
    *pp = e->next;
    atomic_fetch_sub(&reg_count, 1);
    free(e->name);
    free(e);
}

void sv_unregister(const char *name)
{
    pthread_mutex_lock(&reg_lock);
    reg_entry **pp = reg_find(name);
    if (*pp)
        reg_remove(pp);
    pthread_mutex_unlock(&reg_lock);
}

sv_pid sv_whereis(const char *name)
{
    sv_pid pid = SV_PID_NONE;
    pthread_mutex_lock(&reg_lock);
    reg_entry **pp = reg_find(name);
    if (*pp)
        pid = (*pp)->pid;
    pthread_mutex_unlock(&reg_lock);
    return pid;
}

void sv__registry_drop_pid(sv_pid pid)
{
    if (atomic_load_explicit(&reg_count, memory_order_relaxed) == 0)
        return;
    pthread_mutex_lock(&reg_lock);
    for (reg_entry **pp = &reg_head; *pp;) {
        if (sv_pid_eq((*pp)->pid, pid))
            reg_remove(pp);
        else
            pp = &(*pp)->next;
    }
    pthread_mutex_unlock(&reg_lock);
}

void sv__registry_clear(void)
{
    pthread_mutex_lock(&reg_lock);
    while (reg_head)
        reg_remove(&reg_head);
    pthread_mutex_unlock(&reg_lock);
}
