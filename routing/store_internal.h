/* store_internal.h — shared by the message store's two files only:
 * store.c (the threads and their rounds of writes, syncs and answers) and
 * segment.c (the files of one log).
 */
#ifndef PLEXUS_RT_STORE_INTERNAL_H
#define PLEXUS_RT_STORE_INTERNAL_H

#include "routing/rt_internal.h"

struct rt__slog {
    char *dir; /* the queue's directory */
    int dirfd;
    uint32_t seg; /* the segment written to (0: none open) */
    int fd;
    uint64_t tail; /* its size */
    struct {
        uint32_t seg;
        int fd;
    } rd[RT__READ_FDS];
    int failed; /* the first write error since the last reset, 0: none */
    bool need_sync, dir_dirty, in_round;
    int round_err;     /* this round's sync failed with it */
    uint32_t *unlinks; /* segments to delete once the round's writes are synced */
    uint32_t nunlinks, capunlinks;
    rt__slog *next_in_round;
};

/* segment.c. Each returns 0 or -errno unless it says otherwise. */
void rt__slog_free(rt__slog *l);
/* Syncs what was written to l's tail, and its directory, since the last
 * sync, if anything. */
int rt__slog_sync(rt__slog *l);
/* Starts segment seg: the old tail is synced and closed, the new file gets
 * its header; its directory entry is synced with the next rt__slog_sync. */
int rt__seg_open(rt__slog *l, uint32_t seg);
/* Writes ops[from..to), all for the open segment, at its tail. */
int rt__seg_write_run(rt__slog *l, rt__wop *ops, uint32_t from, uint32_t to);
/* Segment seg is to go once the writes made so far are synced; false: out
 * of memory (it stays; a restart deletes it). */
bool rt__slog_add_unlink(rt__slog *l, uint32_t seg);
void rt__slog_do_unlinks(rt__slog *l); /* after a successful rt__slog_sync */
int rt__remove_tree(const char *dir);  /* a log's directory, with its files */

#endif
