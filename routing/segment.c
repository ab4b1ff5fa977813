/* segment.c — the files of one durable queue's log: its segments, read
 * and written by the log's store thread.
 *
 * A log is a directory of numbered segments; records are appended to the
 * newest with pwritev straight from the messages' buffers (no copy of a
 * body), read back with pread through a small cache of descriptors, and
 * whole segments are deleted once the syncs that made them unneeded are
 * done. When to sync, and whom to answer, is the store thread's business
 * (store.c): nothing here knows of rounds or queues.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "routing/store_internal.h"

#define IOV_BATCH 512 /* iovecs per pwritev */

/* What the store did, for /metrics and the benchmark: syncs of logs, and
 * bytes written to them (records and segment headers). */
static _Atomic uint64_t n_syncs, n_written;

void rt_store_stats(rt_store_stat *out)
{
    out->syncs = atomic_load_explicit(&n_syncs, memory_order_relaxed);
    out->bytes_written = atomic_load_explicit(&n_written, memory_order_relaxed);
}

static int data_sync(int fd)
{
    if (fdatasync(fd) < 0)
        return -1;
    atomic_fetch_add_explicit(&n_syncs, 1, memory_order_relaxed);
    return 0;
}

int rt__remove_tree(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return errno == ENOENT ? 0 : -errno;
    struct dirent *e;
    int rc = 0;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        if (unlinkat(dirfd(d), e->d_name, 0) < 0 && errno != ENOENT)
            rc = -errno;
    }
    closedir(d);
    if (rc == 0 && rmdir(dir) < 0 && errno != ENOENT)
        rc = -errno;
    if (rc == 0)
        rc = sv_sync_dir_of(dir);
    return rc;
}

rt__slog *rt__slog_new(const char *dir)
{
    rt__slog *l = calloc(1, sizeof *l);
    if (!l || !(l->dir = strdup(dir))) {
        free(l);
        return NULL;
    }
    l->dirfd = l->fd = -1;
    for (int i = 0; i < RT__READ_FDS; i++)
        l->rd[i].fd = -1;
    return l;
}

void rt__slog_free(rt__slog *l)
{
    if (l->fd >= 0)
        close(l->fd);
    if (l->dirfd >= 0)
        close(l->dirfd);
    for (int i = 0; i < RT__READ_FDS; i++)
        if (l->rd[i].fd >= 0)
            close(l->rd[i].fd);
    free(l->unlinks);
    free(l->dir);
    free(l);
}

const char *rt__slog_dir(const rt__slog *l) { return l->dir; }

void rt__slog_free_unused(rt__slog *l)
{
    if (l)
        rt__slog_free(l);
}

void rt__seg_path(char *out, size_t len, const char *dir, uint32_t seg) { snprintf(out, len, "%s/%08x.seg", dir, seg); }

/* The descriptor to read segment seg with (the tail's, or a cached one). */
static int read_fd(rt__slog *l, uint32_t seg)
{
    if (seg == l->seg && l->fd >= 0)
        return l->fd;
    for (int i = 0; i < RT__READ_FDS; i++)
        if (l->rd[i].fd >= 0 && l->rd[i].seg == seg)
            return l->rd[i].fd;
    char path[PATH_MAX + 16];
    rt__seg_path(path, sizeof path, l->dir, seg);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    int victim = (int)(seg % RT__READ_FDS);
    if (l->rd[victim].fd >= 0)
        close(l->rd[victim].fd);
    l->rd[victim].seg = seg;
    l->rd[victim].fd = fd;
    return fd;
}

static void forget_read_fd(rt__slog *l, uint32_t seg)
{
    for (int i = 0; i < RT__READ_FDS; i++)
        if (l->rd[i].fd >= 0 && l->rd[i].seg == seg) {
            close(l->rd[i].fd);
            l->rd[i].fd = -1;
        }
}

int rt__slog_sync(rt__slog *l)
{
    int rc = 0;
    if (l->need_sync && l->fd >= 0 && data_sync(l->fd) < 0)
        rc = -errno;
    if (rc == 0 && l->dir_dirty && fsync(l->dirfd) < 0)
        rc = -errno;
    l->need_sync = l->dir_dirty = false;
    return rc;
}

/* Starts segment seg: a new file with its header; the directory entry is
 * synced with the next rt__slog_sync. */
int rt__seg_open(rt__slog *l, uint32_t seg)
{
    if (l->fd >= 0) {
        /* the old tail stays readable through the read cache; sync it first
         * if this round wrote to it */
        if (l->need_sync && data_sync(l->fd) < 0)
            return -errno;
        close(l->fd);
        l->fd = -1;
    }
    char path[PATH_MAX + 16];
    rt__seg_path(path, sizeof path, l->dir, seg);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    if (fd < 0)
        return -errno;
    unsigned char hdr[RT__SEG_HDR];
    rt__seg_header(hdr, seg);
    int rc = sv_write_all(fd, hdr, sizeof hdr);
    if (rc < 0) {
        close(fd);
        unlink(path);
        return rc;
    }
    forget_read_fd(l, seg);
    l->fd = fd;
    l->seg = seg;
    l->tail = RT__SEG_HDR;
    l->dir_dirty = true;
    return 0;
}

/* Encodes ops[from..to) (one segment's, contiguous) and writes them with
 * as few pwritev calls as the iovec limit allows. Small records go through
 * a scratch buffer; message bytes are written from the messages. */
int rt__seg_write_run(rt__slog *l, rt__wop *ops, uint32_t from, uint32_t to)
{
    size_t scratch_len = 0;
    for (uint32_t i = from; i < to; i++) {
        rt__wop *o = &ops[i];
        scratch_len += o->type == RT__REC_MSG      ? rt__rec_msg_size(o->m->rkey ? strlen(o->m->rkey) : 0, 0)
                       : o->type == RT__REC_ACK    ? rt__rec_ack_size(o->nacks)
                       : o->type == RT__REC_DCOUNT ? rt__rec_dcount_size()
                                                   : rt__rec_mark_size();
    }
    unsigned char *scratch = malloc(scratch_len ? scratch_len : 1);
    if (!scratch)
        return -ENOMEM;
    struct iovec iov[IOV_BATCH];
    int niov = 0;
    size_t used = 0, batch_bytes = 0;
    uint64_t at = l->tail;
    int rc = 0;
    for (uint32_t i = from; i < to && rc == 0; i++) {
        rt__wop *o = &ops[i];
        unsigned char *p = scratch + used;
        size_t n, body = 0;
        if (o->type == RT__REC_MSG) {
            const char *rk = o->m->rkey;
            body = o->m->buf.len;
            n = rt__rec_msg_head(p, o->seq, o->dc, o->expires, rk, (uint16_t)(rk ? strlen(rk) : 0), o->m->buf.data,
                                 (uint32_t)body);
        } else if (o->type == RT__REC_ACK) {
            n = rt__rec_ack(p, o->acks, o->nacks);
        } else if (o->type == RT__REC_DCOUNT) {
            n = rt__rec_dcount(p, o->seq, o->dc);
        } else {
            n = rt__rec_mark(p, o->mark, o->next_seq);
        }
        used += n;
        if (o->off != at + batch_bytes) {
            sv_log(SV_LOG_ERROR, "store: %s: record for offset %llu, but the log ends at %llu", l->dir,
                   (unsigned long long)o->off, (unsigned long long)(at + batch_bytes));
            rc = -EIO;
            break;
        }
        iov[niov++] = (struct iovec){p, n};
        batch_bytes += n;
        if (body) {
            iov[niov++] = (struct iovec){o->m->buf.data, body};
            batch_bytes += body;
        }
        if (niov >= IOV_BATCH - 1 || i + 1 == to) {
            /* one pwritev; a short write goes on where it stopped */
            struct iovec *v = iov;
            int nv = niov;
            uint64_t pos = at;
            size_t left = batch_bytes;
            while (left && rc == 0) {
                ssize_t w = pwritev(l->fd, v, nv, (off_t)pos);
                if (w < 0 && errno == EINTR)
                    continue;
                if (w <= 0) {
                    rc = w < 0 ? -errno : -EIO;
                    break;
                }
                atomic_fetch_add_explicit(&n_written, (uint64_t)w, memory_order_relaxed);
                pos += (uint64_t)w;
                left -= (size_t)w;
                while (nv && (size_t)w >= v->iov_len) {
                    w -= (ssize_t)v->iov_len;
                    v++;
                    nv--;
                }
                if (nv && w) {
                    v->iov_base = (char *)v->iov_base + w;
                    v->iov_len -= (size_t)w;
                }
            }
            if (rc == 0) {
                at += batch_bytes;
                l->tail = at;
            }
            niov = 0;
            batch_bytes = 0;
        }
    }
    free(scratch);
    return rc;
}

/* Reads entries back in place: each becomes a message again, or gets a
 * status. */
void rt__read_entries(rt__s_read *r)
{
    rt__slog *l = r->log;
    unsigned char *buf = NULL;
    size_t cap = 0;
    for (uint32_t i = 0; i < r->n; i++) {
        rt__rent *e = &r->e[i];
        e->m = NULL;
        int fd = read_fd(l, e->seg);
        if (fd < 0) {
            e->status = fd;
            continue;
        }
        if (e->len > cap) {
            unsigned char *nb = realloc(buf, e->len);
            if (!nb) {
                e->status = -ENOMEM;
                continue;
            }
            buf = nb;
            cap = e->len;
        }
        ssize_t got = pread(fd, buf, e->len, (off_t)e->off);
        rt__rec rec;
        if (got != (ssize_t)e->len || rt__rec_decode(buf, e->len, &rec) != (ssize_t)e->len || rec.type != RT__REC_MSG ||
            rec.seq != e->seq) {
            e->status = got < 0 ? -errno : -EBADMSG;
            continue;
        }
        e->status = rt__msg_from_rec(&rec, &e->m);
    }
    free(buf);
}

bool rt__slog_add_unlink(rt__slog *l, uint32_t seg)
{
    if (l->nunlinks == l->capunlinks) {
        uint32_t ncap = l->capunlinks ? l->capunlinks * 2 : 8;
        uint32_t *nu = realloc(l->unlinks, ncap * sizeof *nu);
        if (!nu)
            return false;
        l->unlinks = nu;
        l->capunlinks = ncap;
    }
    l->unlinks[l->nunlinks++] = seg;
    return true;
}

void rt__slog_do_unlinks(rt__slog *l)
{
    for (uint32_t i = 0; i < l->nunlinks; i++) {
        forget_read_fd(l, l->unlinks[i]);
        char path[PATH_MAX + 16];
        rt__seg_path(path, sizeof path, l->dir, l->unlinks[i]);
        if (unlink(path) < 0 && errno != ENOENT)
            sv_log(SV_LOG_WARNING, "store: cannot delete %s: %s", path, strerror(errno));
    }
    if (l->nunlinks && l->dirfd >= 0)
        fsync(l->dirfd);
    l->nunlinks = 0;
}

int rt__slog_open_dir(rt__slog *l)
{
    if (l->dirfd >= 0)
        return 0;
    if (mkdir(l->dir, 0750) < 0 && errno != EEXIST)
        return -errno;
    l->dirfd = open(l->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (l->dirfd < 0)
        return -errno;
    return sv_sync_dir_of(l->dir);
}
