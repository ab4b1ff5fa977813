/* recovery.c — reading a durable queue's log back (on a store thread).
 *
 * A queue process starting (at boot, or restarted after a crash) asks its
 * store thread to load its log. The whole log is read once: every MSG
 * record is a message unless an ACK names its seq; a message written twice
 * (moved by compaction) is the later copy; its delivery count is the
 * highest any record gives, plus one if the last MARK says it may have
 * been out with a consumer when the broker stopped (see qlog.c). What is
 * left, in seq order, goes back to the queue in chunks: every entry's
 * place in the log, and the message itself for the first `window` bytes
 * (the rest stays on disk until the queue needs it).
 *
 * The store thread does this a step at a time between its rounds (a
 * segment, the sort, a few chunks), so other logs on the thread go on being
 * written while a long one is read back.
 *
 * A record that fails its check at the very end of the newest segment is a
 * torn write: the segment is cut there. Anywhere else it is damage: the
 * bytes are skipped up to the next record that checks out, counted, and
 * logged; the queue serves what is intact. Finding that record tries every
 * offset, in constant time each (rt__segscan): a damaged segment is read in
 * time linear in its size, as an intact one.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "routing/rt_internal.h"

#define CHUNK 4096 /* entries per answer */

typedef struct dcount {
    uint64_t seq;
    uint32_t dc;
} dcount;

typedef struct scan {
    const char *dir;
    rt__lent *e;
    size_t ne, cap_e;
    uint64_t *acks;
    size_t nacks, cap_acks;
    dcount *dcs;
    size_t ndcs, cap_dcs;
    uint64_t mark, next_seq, max_seq, corrupt;
} scan;

int rt__msg_from_rec(const rt__rec *r, rt_msg **out)
{
    rt_msg *m;
    int rc = rt_msg_new(r->msg, r->msg_len, &m);
    if (rc < 0)
        return rc;
    if (r->rkey) {
        char key[RT_NAME_MAX + 1];
        size_t n = r->rkey_len < sizeof key - 1 ? r->rkey_len : sizeof key - 1;
        memcpy(key, r->rkey, n);
        key[n] = '\0';
        if ((rc = rt_msg_set_rkey(m, key)) < 0) {
            rt_msg_unref(m);
            return rc;
        }
    }
    *out = m;
    return 0;
}

static int take(scan *s, uint32_t seg, uint64_t off, size_t len, const rt__rec *r)
{
    switch (r->type) {
    case RT__REC_MSG:
        if (sv_grow((void **)&s->e, &s->cap_e, s->ne + 1, sizeof *s->e) < 0)
            return -ENOMEM;
        s->e[s->ne++] = (rt__lent){.seq = r->seq,
                                   .off = off,
                                   .expires = r->expires,
                                   .seg = seg,
                                   .len = (uint32_t)len,
                                   .size = r->msg_len,
                                   .dc = r->dc};
        if (r->seq > s->max_seq)
            s->max_seq = r->seq;
        return 0;
    case RT__REC_ACK:
        if (sv_grow((void **)&s->acks, &s->cap_acks, s->nacks + r->n, sizeof *s->acks) < 0)
            return -ENOMEM;
        for (uint32_t i = 0; i < r->n; i++) {
            s->acks[s->nacks] = rt__rec_ack_at(r, i);
            if (s->acks[s->nacks] > s->max_seq)
                s->max_seq = s->acks[s->nacks]; /* seqs are never used twice, even for messages long gone */
            s->nacks++;
        }
        return 0;
    case RT__REC_DCOUNT:
        if (sv_grow((void **)&s->dcs, &s->cap_dcs, s->ndcs + 1, sizeof *s->dcs) < 0)
            return -ENOMEM;
        s->dcs[s->ndcs++] = (dcount){r->seq, r->dc};
        return 0;
    case RT__REC_MARK:
        s->mark = r->mark; /* the last one counts */
        if (r->next_seq > s->next_seq)
            s->next_seq = r->next_seq;
        return 0;
    }
    return 0;
}

static int read_file(int fd, unsigned char **out, size_t *len)
{
    struct stat st;
    if (fstat(fd, &st) < 0)
        return -errno;
    size_t n = (size_t)st.st_size;
    unsigned char *buf = malloc(n ? n : 1);
    if (!buf)
        return -ENOMEM;
    size_t got = 0;
    while (got < n) {
        ssize_t r = pread(fd, buf + got, n - got, (off_t)got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            free(buf);
            return r < 0 ? -errno : -EIO;
        }
        got += (size_t)r;
    }
    *out = buf;
    *len = n;
    return 0;
}

static int scan_segment(scan *s, uint32_t seg, bool newest)
{
    char path[PATH_MAX + 16];
    rt__seg_path(path, sizeof path, s->dir, seg);
    int fd = open(path, O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    unsigned char *buf;
    size_t len;
    int rc = read_file(fd, &buf, &len);
    if (rc < 0) {
        close(fd);
        return rc;
    }
    uint32_t hdr_seg;
    if (rt__seg_header_check(buf, len, &hdr_seg) < 0 || hdr_seg != seg) {
        if (newest && len <= RT__SEG_HDR) {
            /* created, then the crash: nothing was in it */
            sv_log(SV_LOG_INFO, "store: %s: empty segment %u from an interrupted start; removed", s->dir, seg);
            unlink(path);
        } else {
            sv_log(SV_LOG_WARNING, "store: %s: segment %u has a damaged header; its %zu bytes are skipped", s->dir, seg,
                   len);
            s->corrupt++;
        }
        free(buf);
        close(fd);
        return 0;
    }
    size_t pos = RT__SEG_HDR;
    rt__segscan sc;
    rt__segscan_init(&sc, buf, len);
    while (pos < len && rc == 0) {
        rt__rec r;
        ssize_t n = rt__segscan_decode(&sc, pos, &r);
        if (n > 0) {
            rc = take(s, seg, pos, (size_t)n, &r);
            pos += (size_t)n;
            continue;
        }
        size_t next = rt__segscan_resync(&sc, pos);
        if (next == len && newest) {
            sv_log(SV_LOG_WARNING, "store: %s: segment %u ends in a torn write (%zu bytes at %zu); cut off", s->dir,
                   seg, len - pos, pos);
            if (ftruncate(fd, (off_t)pos) < 0 || fdatasync(fd) < 0)
                rc = -errno;
            break;
        }
        sv_log(SV_LOG_WARNING, "store: %s: segment %u: %zu damaged bytes at %zu skipped", s->dir, seg, next - pos, pos);
        s->corrupt++;
        pos = next;
    }
    rt__segscan_free(&sc);
    free(buf);
    close(fd);
    return rc;
}

static int cmp_seg(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static int cmp_dcount(const void *a, const void *b)
{
    return cmp_u64(&((const dcount *)a)->seq, &((const dcount *)b)->seq);
}

/* By seq, and for one seq by place in the log. */
static int cmp_ent(const void *a, const void *b)
{
    const rt__lent *x = a, *y = b;
    if (x->seq != y->seq)
        return x->seq < y->seq ? -1 : 1;
    if (x->seg != y->seg)
        return x->seg < y->seg ? -1 : 1;
    return x->off < y->off ? -1 : x->off > y->off;
}

static int list_segments(const char *dir, uint32_t **out, uint32_t *n)
{
    DIR *d = opendir(dir);
    if (!d)
        return -errno;
    uint32_t *segs = NULL;
    size_t cap = 0, k = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        unsigned seg;
        char tail[8];
        if (strlen(e->d_name) != 12 || sscanf(e->d_name, "%8x%7s", &seg, tail) != 2 || strcmp(tail, ".seg") != 0 ||
            seg == 0)
            continue;
        if (sv_grow((void **)&segs, &cap, k + 1, sizeof *segs) < 0) {
            closedir(d);
            free(segs);
            return -ENOMEM;
        }
        segs[k++] = seg;
    }
    closedir(d);
    if (k)
        qsort(segs, k, sizeof *segs, cmp_seg);
    *out = segs;
    *n = (uint32_t)k;
    return 0;
}

/* Keeps beside the log what the queue is (for starting it again at boot). */
static int keep_meta(const char *dir, const char *meta, size_t len)
{
    char path[PATH_MAX + 16];
    snprintf(path, sizeof path, "%s/queue.meta", dir);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
        unsigned char *old;
        size_t olen;
        int rc = read_file(fd, &old, &olen);
        close(fd);
        if (rc == 0) {
            bool same = olen == len && memcmp(old, meta, len) == 0;
            free(old);
            if (same)
                return 0;
        }
    }
    return sv_file_replace(path, meta, len);
}

/* Filters s->e down to the live messages, in seq order; returns how many. */
static size_t settle_index(scan *s)
{
    if (!s->ne)
        return 0;
    qsort(s->e, s->ne, sizeof *s->e, cmp_ent);
    if (s->nacks)
        qsort(s->acks, s->nacks, sizeof *s->acks, cmp_u64);
    if (s->ndcs)
        qsort(s->dcs, s->ndcs, sizeof *s->dcs, cmp_dcount);
    size_t out = 0, ai = 0, di = 0;
    for (size_t i = 0; i < s->ne; i++) {
        rt__lent e = s->e[i];
        /* a later copy of the same message wins, keeping the highest count */
        while (i + 1 < s->ne && s->e[i + 1].seq == e.seq) {
            uint32_t dc = e.dc > s->e[i + 1].dc ? e.dc : s->e[i + 1].dc;
            e = s->e[++i];
            e.dc = dc;
        }
        while (ai < s->nacks && s->acks[ai] < e.seq)
            ai++;
        if (ai < s->nacks && s->acks[ai] == e.seq)
            continue; /* settled */
        while (di < s->ndcs && s->dcs[di].seq < e.seq)
            di++;
        for (; di < s->ndcs && s->dcs[di].seq == e.seq; di++)
            if (s->dcs[di].dc > e.dc)
                e.dc = s->dcs[di].dc;
        if (e.seq <= s->mark) {
            e.dc++; /* it may have been with a consumer: count that delivery */
            e.bumped = true;
        }
        s->e[out++] = e;
    }
    return out;
}

static int send_chunk(sv_pid to, const void *data, size_t len)
{
    sv_msg *m = sv_msg_new(RT__S_LOADED, data, len);
    if (!m)
        return -ENOMEM;
    int rc = sv_send_owed(to, m);
    if (rc < 0)
        sv_msg_free(m);
    return rc;
}

/* Reads the first window's messages into the entries (in place). */
static void load_window(rt__slog *log, rt__lent *e, size_t n, uint64_t window)
{
    uint64_t took = 0;
    size_t i = 0;
    while (i < n && took < window) {
        /* a READ request's worth at a time, reusing the store's reader */
        size_t k = 0;
        uint64_t b = 0;
        while (i + k < n && k < CHUNK && took + b < window)
            b += e[i + k++].size;
        sv_msg *req = sv_msg_new(RT__S_READ, NULL, sizeof(rt__s_read) + k * sizeof(rt__rent));
        if (!req)
            return;
        rt__s_read *r = (rt__s_read *)(void *)req->data;
        r->log = log;
        r->n = (uint32_t)k;
        for (size_t j = 0; j < k; j++)
            r->e[j] = (rt__rent){.seq = e[i + j].seq, .off = e[i + j].off, .seg = e[i + j].seg, .len = e[i + j].len};
        rt__read_entries(r);
        for (size_t j = 0; j < k; j++) {
            if (r->e[j].status < 0)
                sv_log(SV_LOG_WARNING, "store: %s: message %llu cannot be read back (%s); it stays on disk",
                       rt__slog_dir(log), (unsigned long long)r->e[j].seq, strerror(-r->e[j].status));
            e[i + j].m = r->e[j].m;
        }
        sv_msg_free(req);
        took += b;
        i += k;
    }
}

/* A recovery under way: the store thread runs it a step at a time between
 * its rounds, so the other logs on the thread keep being written while a
 * long one is read (a step is one segment, the sort, or a few chunks). */
struct rt__recovery {
    sv_msg *req; /* the LOAD request */
    rt__slog *log;
    scan s;
    uint32_t *segs, nsegs, next; /* the segments, the next to scan */
    enum { R_SCAN, R_SETTLE, R_SEND, R_FINISH } phase;
    int rc;
    size_t live, sent;
    rt__recovery *next_rec; /* the store thread's list */
};

#define SEND_CHUNKS_PER_STEP 8

rt__recovery *rt__recover_start(sv_msg *req)
{
    rt__recovery *r = calloc(1, sizeof *r);
    if (!r) {
        rt__s_loaded last = {.last = true, .status = -ENOMEM};
        send_chunk(req->from, &last, sizeof last); /* the queue works in memory only, and says so */
        return NULL;
    }
    rt__s_load *ld = (rt__s_load *)(void *)req->data;
    r->req = req;
    r->log = ld->log;
    r->s.dir = rt__slog_dir(r->log);
    r->rc = rt__slog_open_dir(r->log);
    if (r->rc == 0 && req->len >= sizeof *ld + ld->meta_len && ld->meta_len)
        r->rc = keep_meta(r->s.dir, ld->meta, ld->meta_len);
    if (r->rc == 0)
        r->rc = list_segments(r->s.dir, &r->segs, &r->nsegs);
    r->phase = r->rc < 0 ? R_FINISH : R_SCAN;
    return r;
}

rt__slog *rt__recovery_log(const rt__recovery *r) { return r->log; }
rt__recovery **rt__recovery_next(rt__recovery *r) { return &r->next_rec; }

static void recovery_free(rt__recovery *r)
{
    for (size_t i = r->sent; i < r->live; i++)
        rt_msg_unref(r->s.e[i].m); /* not delivered: the queue is gone or failed */
    free(r->segs);
    free(r->s.e);
    free(r->s.acks);
    free(r->s.dcs);
    sv_msg_free(r->req);
    free(r);
}

void rt__recovery_abort(rt__recovery *r) { recovery_free(r); }

static void finish(rt__recovery *r)
{
    sv_pid to = r->req->from;
    rt__s_loaded last = {.last = true, .status = r->rc, .mark = r->s.mark, .corrupt = r->s.corrupt};
    last.next_seq = r->s.next_seq > r->s.max_seq ? r->s.next_seq : r->s.max_seq + 1;
    last.nsegs = r->rc == 0 ? r->nsegs : 0;
    size_t bytes = sizeof last + (size_t)last.nsegs * sizeof(uint32_t);
    rt__s_loaded *l = malloc(bytes);
    if (l) {
        *l = last;
        if (last.nsegs)
            memcpy((void *)l->e, r->segs, last.nsegs * sizeof(uint32_t));
        send_chunk(to, l, bytes);
        free(l);
    } else {
        last.nsegs = 0;
        last.status = r->rc ? r->rc : -ENOMEM;
        send_chunk(to, &last, sizeof last);
    }
    if (r->rc < 0)
        sv_log(SV_LOG_ERROR, "store: %s: cannot load the log: %s", r->s.dir, strerror(-r->rc));
}

bool rt__recover_step(rt__recovery *r)
{
    switch (r->phase) {
    case R_SCAN:
        if (r->next < r->nsegs) {
            r->rc = scan_segment(&r->s, r->segs[r->next], r->next + 1 == r->nsegs);
            r->next++;
        }
        if (r->rc < 0)
            r->phase = R_FINISH;
        else if (r->next >= r->nsegs)
            r->phase = R_SETTLE;
        return false;
    case R_SETTLE:
        r->live = settle_index(&r->s);
        load_window(r->log, r->s.e, r->live, ((rt__s_load *)(void *)r->req->data)->window);
        if (r->s.corrupt)
            sv_log(SV_LOG_WARNING, "store: %s: %llu damaged places in the log; the rest recovered", r->s.dir,
                   (unsigned long long)r->s.corrupt);
        /* what is there now (a segment may have been removed while scanning) */
        free(r->segs);
        r->segs = NULL;
        r->nsegs = 0;
        r->rc = list_segments(r->s.dir, &r->segs, &r->nsegs);
        r->phase = R_SEND;
        return false;
    case R_SEND:
        for (int k = 0; k < SEND_CHUNKS_PER_STEP && r->rc == 0 && r->sent < r->live; k++) {
            size_t n = r->live - r->sent < CHUNK ? r->live - r->sent : CHUNK;
            size_t bytes = sizeof(rt__s_loaded) + n * sizeof(rt__lent);
            rt__s_loaded *c = malloc(bytes);
            if (!c) {
                r->rc = -ENOMEM;
                break;
            }
            *c = (rt__s_loaded){.n = (uint32_t)n};
            memcpy(c->e, r->s.e + r->sent, n * sizeof(rt__lent));
            r->rc = send_chunk(r->req->from, c, bytes);
            free(c);
            if (r->rc == 0)
                r->sent += n; /* the messages went with it */
        }
        if (r->rc < 0 || r->sent == r->live)
            r->phase = R_FINISH;
        return false;
    case R_FINISH:
        finish(r);
        recovery_free(r);
        return true;
    }
    return true;
}
