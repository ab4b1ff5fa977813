/* store.c — the message store's threads: all disk I/O of durable queues.
 *
 * Queue processes run on schedulers, which must never wait for a disk, so a
 * queue sends its log's writes, reads and deletions here as messages and
 * carries on. Each store thread serves the logs of the queues hashed to it
 * (so one queue's requests are carried out in the order it sent them), in
 * rounds: it takes every request that has arrived and carries each out in
 * order, then makes the round's writes durable with one fdatasync per log
 * written, and only then answers the writes that asked to be told. However
 * many publishers a queue has, that is one sync per queue per round: group
 * commit, with rounds as long as a sync takes.
 *
 * The threads are plain threads with inboxes (requests are runtime
 * messages); the "store" server process under the routing supervisor
 * starts them in its init and stops them in its terminate, after the
 * queues (routing is rest_for_one: the store starts first and stops last).
 *
 * A write that fails (disk full, I/O error) is cut back off the file, and
 * every later write to that log fails too until its queue, told so, resets
 * it onto a fresh segment: a log never has a hole. A full disk also raises
 * the disk alarm (publishers get no credit) until free space is back. The
 * files of one log (segments, their reads and writes) are segment.c's.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <openssl/evp.h>
#include <unistd.h>

#include "routing/store_internal.h"

#define MAX_THREADS 16
#define ROUND_MAX 4096 /* requests per round at most, so answers are not held back for long */
#define CHECK_EVERY_MS 1000

typedef struct store_thread {
    pthread_t th;
    int index;
    bool running;
    _Atomic(sv_pid *) pid; /* its inbox, once open */
    atomic_bool failed;    /* it could not open its inbox, and has ended */
    sv_msg *answers;       /* sync answers held until the round's syncs are done */
    rt__slog *round;       /* logs written this round */
    rt__recovery *recs;    /* logs being read back, a step after each round, in turn */
} store_thread;

static store_thread threads[MAX_THREADS];
static atomic_int nthreads;
static char data_dir[PATH_MAX];
static uint64_t disk_free_limit;
static atomic_bool disk_alarm;

bool rt_disk_alarm(void) { return atomic_load_explicit(&disk_alarm, memory_order_relaxed); }

static void set_disk_alarm(bool on, uint64_t free_bytes)
{
    if (atomic_exchange(&disk_alarm, on) != on)
        sv_log(SV_LOG_WARNING,
               on ? "disk alarm: %llu MiB free in %s (limit %llu MiB); publishers are blocked"
                  : "disk alarm cleared: %llu MiB free in %s (limit %llu MiB); publishers resume",
               (unsigned long long)(free_bytes >> 20), data_dir, (unsigned long long)(disk_free_limit >> 20));
}

static void check_disk(void)
{
    struct statvfs v;
    if (statvfs(data_dir, &v) < 0)
        return;
    uint64_t free_bytes = (uint64_t)v.f_bavail * v.f_frsize;
    set_disk_alarm(free_bytes < disk_free_limit, free_bytes);
}

const char *rt__store_dir(void) { return data_dir[0] ? data_dir : NULL; }

int rt__queue_dir(const char *name, char *out, size_t len)
{
    /* Names may hold any character and run to 255 bytes: the directory is
     * named by a hash (queue.meta inside says whose it is). */
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (!data_dir[0] || !EVP_Digest(name, strlen(name), md, &mdlen, EVP_sha256(), NULL) || mdlen < 16)
        return -EINVAL;
    int n = snprintf(out, len, "%s/queues/", data_dir);
    for (int i = 0; i < 16 && n >= 0 && (size_t)n + 3 <= len; i++)
        n += snprintf(out + n, len - (size_t)n, "%02x", md[i]);
    return n > 0 && (size_t)n < len ? 0 : -ENAMETOOLONG;
}

sv_pid rt__store_pid(const char *queue_name)
{
    int n = atomic_load(&nthreads);
    if (!n)
        return SV_PID_NONE;
    uint32_t h = sv_hash32(queue_name);
    sv_pid *pid = atomic_load(&threads[h % (uint32_t)n].pid);
    return pid ? *pid : SV_PID_NONE;
}

static void join_round(store_thread *t, rt__slog *l)
{
    if (!l->in_round) {
        l->in_round = true;
        l->next_in_round = t->round;
        t->round = l;
    }
}

/* What a failed write gives back: the messages of its MSG records. */
static sv_msg *failure_answer(const rt__s_write *w, int status)
{
    uint32_t nm = 0;
    for (uint32_t i = 0; i < w->n; i++)
        nm += w->ops[i].type == RT__REC_MSG;
    sv_msg *a = sv_msg_new(RT__S_SYNCED, NULL, sizeof(rt__s_synced) + nm * sizeof(rt__back));
    if (!a)
        return NULL;
    rt__s_synced *s = (rt__s_synced *)(void *)a->data;
    s->token = w->token;
    s->status = status;
    for (uint32_t i = 0; i < w->n; i++)
        if (w->ops[i].type == RT__REC_MSG)
            s->back[s->n++] = (rt__back){w->ops[i].seq, w->ops[i].m};
    return a;
}

static void free_ops(rt__s_write *w, bool msgs)
{
    for (uint32_t i = 0; i < w->n; i++) {
        if (msgs && w->ops[i].m)
            rt_msg_unref(w->ops[i].m);
        free(w->ops[i].acks);
    }
}

static void on_write(store_thread *t, sv_msg *req)
{
    rt__s_write *w = (rt__s_write *)(void *)req->data;
    rt__slog *l = w->log;
    int rc = l->failed;
    for (uint32_t i = 0; i < w->n && rc == 0;) {
        rt__wop *o = &w->ops[i];
        if (o->type == 0) { /* a new segment */
            rc = rt__seg_open(l, o->seg);
            if (rc == 0)
                join_round(t, l);
            i++;
            continue;
        }
        if (o->seg != l->seg || l->fd < 0) {
            sv_log(SV_LOG_ERROR, "store: %s: write to segment %u, but %u is open", l->dir, o->seg, l->seg);
            rc = -EIO;
            break;
        }
        uint32_t j = i;
        while (j < w->n && w->ops[j].type != 0)
            j++;
        uint64_t before = l->tail;
        rc = rt__seg_write_run(l, w->ops, i, j);
        if (rc < 0 && l->fd >= 0 && ftruncate(l->fd, (off_t)before) == 0)
            l->tail = before; /* cut the torn part off: the log ends where it did */
        i = j;
        l->need_sync = true;
        join_round(t, l);
    }
    if (rc < 0) {
        if (!l->failed)
            sv_log(SV_LOG_ERROR, "store: %s: cannot write: %s", l->dir, strerror(-rc));
        l->failed = rc;
        if (rc == -ENOSPC || rc == -EDQUOT)
            set_disk_alarm(true, 0);
        sv_msg *a = failure_answer(w, rc);
        free_ops(w, a == NULL);
        if (a && sv_send_owed(req->from, a) < 0) {
            rt__s_synced *s = (rt__s_synced *)(void *)a->data;
            for (uint32_t i = 0; i < s->n; i++)
                rt_msg_unref(s->back[i].m);
            sv_msg_free(a);
        }
        return;
    }
    free_ops(w, true);
    if (w->sync) {
        sv_msg *a = sv_msg_new(RT__S_SYNCED, NULL, sizeof(rt__s_synced));
        if (a) {
            rt__s_synced *s = (rt__s_synced *)(void *)a->data;
            s->token = w->token;
            s->log = l;
            a->from = req->from; /* where it goes, once the round is synced */
            a->next = t->answers;
            t->answers = a;
        }
    }
}

static void on_read(sv_msg *req)
{
    rt__s_read *r = (rt__s_read *)(void *)req->data;
    rt__read_entries(r);
    sv_msg *a = sv_msg_new(RT__S_READ_DONE, req->data, req->len);
    if (!a || sv_send_owed(req->from, a) < 0) {
        for (uint32_t i = 0; i < r->n; i++)
            rt_msg_unref(r->e[i].m);
        sv_msg_free(a);
    }
}

/* A segment goes only after the round's writes are on disk: the records
 * that made it unneeded (ACKs, copies written by compaction) may be in
 * them. */
static void on_unlink(store_thread *t, rt__slog *l, uint32_t seg)
{
    if (seg == l->seg)
        return; /* never the one being written */
    if (!rt__slog_add_unlink(l, seg))
        return; /* it stays; the queue forgets it, a restart deletes it */
    join_round(t, l);
}

static void on_file(sv_msg *req)
{
    rt__s_file *f = (rt__s_file *)(void *)req->data;
    if (req->len < sizeof *f || req->len < sizeof *f + f->len)
        return;
    f->path[sizeof f->path - 1] = '\0';
    int rc = sv_file_replace(f->path, f->data, f->len);
    if (rc < 0)
        sv_log(SV_LOG_ERROR, "store: cannot write %s: %s", f->path, strerror(-rc));
    if (sv_pid_is_none(f->reply_to))
        return;
    sv_msg *done = sv_msg_new(RT__S_FILE_DONE, NULL, 0);
    if (done) {
        done->status = rc;
        if (sv_send_owed(f->reply_to, done) < 0)
            sv_msg_free(done);
    }
}

/* Ends the round: sync what was written, then answer. */
static void finish_round(store_thread *t)
{
    for (rt__slog *l = t->round; l; l = l->next_in_round) {
        l->in_round = false;
        int rc = rt__slog_sync(l);
        l->round_err = rc;
        if (rc == 0)
            rt__slog_do_unlinks(l);
        if (rc < 0) {
            sv_log(SV_LOG_ERROR, "store: %s: cannot sync: %s", l->dir, strerror(-rc));
            if (!l->failed)
                l->failed = rc; /* what the sync covered may not be on disk */
        }
    }
    /* answers in the order the writes came */
    sv_msg *rev = NULL;
    for (sv_msg *a = t->answers, *next; a; a = next) {
        next = a->next;
        a->next = rev;
        rev = a;
    }
    t->answers = NULL;
    for (sv_msg *a = rev, *next; a; a = next) {
        next = a->next;
        a->next = NULL;
        sv_pid to = a->from;
        rt__s_synced *s = (rt__s_synced *)(void *)a->data;
        s->status = s->log->round_err;
        if (sv_send_owed(to, a) < 0)
            sv_msg_free(a); /* the queue is gone */
    }
    for (rt__slog *l = t->round, *next; l; l = next) {
        next = l->next_in_round;
        l->round_err = 0;
    }
    t->round = NULL;
}

static void drop_answers(store_thread *t, const rt__slog *l)
{
    sv_msg **pp = &t->answers;
    while (*pp) {
        sv_msg *a = *pp;
        if (((rt__s_synced *)(void *)a->data)->log == l) {
            *pp = a->next;
            sv_msg_free(a);
        } else {
            pp = &a->next;
        }
    }
}

/* The recovery of log l, taken off the thread's list; NULL if none. */
static rt__recovery *take_recovery(store_thread *t, const rt__slog *l)
{
    for (rt__recovery **pp = &t->recs; *pp; pp = rt__recovery_next(*pp)) {
        rt__recovery *r = *pp;
        if (rt__recovery_log(r) == l) {
            *pp = *rt__recovery_next(r);
            return r;
        }
    }
    return NULL;
}

static void add_recovery(store_thread *t, rt__recovery *r)
{
    rt__recovery **pp = &t->recs;
    while (*pp)
        pp = rt__recovery_next(*pp);
    *pp = r;
}

/* One step of the first recovery waiting, which then goes to the back. */
static void step_recovery(store_thread *t)
{
    rt__recovery *r = t->recs;
    t->recs = *rt__recovery_next(r);
    *rt__recovery_next(r) = NULL;
    if (!rt__recover_step(r)) /* true: done, and freed */
        add_recovery(t, r);
}

/* Returns true if it kept m (a LOAD: its recovery holds it). */
static bool handle(store_thread *t, sv_msg *m, bool *stop)
{
    switch (m->tag) {
    case RT__S_WRITE:
        if (m->len >= sizeof(rt__s_write))
            on_write(t, m);
        break;
    case RT__S_READ:
        if (m->len >= sizeof(rt__s_read))
            on_read(m);
        break;
    case RT__S_LOAD: {
        rt__recovery *r = m->len >= sizeof(rt__s_load) ? rt__recover_start(m) : NULL;
        if (!r)
            break; /* out of memory: the queue was told */
        add_recovery(t, r);
        return true;
    }
    case RT__S_UNLINK: {
        rt__s_seg *u = (rt__s_seg *)(void *)m->data;
        if (m->len >= sizeof *u)
            on_unlink(t, u->log, u->seg);
        break;
    }
    case RT__S_RESET: {
        rt__s_seg *u = (rt__s_seg *)(void *)m->data;
        if (m->len >= sizeof *u) {
            u->log->failed = 0;
            if (u->log->fd >= 0) {
                close(u->log->fd); /* the next write opens a fresh segment */
                u->log->fd = -1;
                u->log->seg = 0;
            }
        }
        break;
    }
    case RT__S_CLOSE: {
        rt__s_seg *u = (rt__s_seg *)(void *)m->data;
        if (m->len >= sizeof *u) {
            rt__slog *l = u->log;
            rt__recovery *r = take_recovery(t, l);
            if (r)
                rt__recovery_abort(r); /* closed while being read back: its queue is gone */
            drop_answers(t, l);        /* its queue is gone: nobody to tell */
            if (l->in_round) {         /* sync it now: it leaves the round */
                rt__slog **pp = &t->round;
                while (*pp != l)
                    pp = &(*pp)->next_in_round;
                *pp = l->next_in_round;
                if (rt__slog_sync(l) < 0)
                    l->nunlinks = 0; /* not synced: keep what the writes may need */
                rt__slog_do_unlinks(l);
            }
            rt__slog_free(l);
        }
        break;
    }
    case RT__S_DESTROY: {
        m->data[m->len ? m->len - 1 : 0] = '\0';
        int rc = rt__remove_tree((const char *)m->data);
        if (rc < 0)
            sv_log(SV_LOG_WARNING, "store: cannot remove %s: %s", (const char *)m->data, strerror(-rc));
        break;
    }
    case RT__S_FILE: on_file(m); break;
    case RT__S_STOP: *stop = true; break;
    }
    return false;
}

static void *store_main(void *arg)
{
    store_thread *t = arg;
    sv_proc *inbox = sv_inbox_open();
    sv_pid *pid = inbox ? malloc(sizeof *pid) : NULL;
    if (!pid) {
        sv_log(SV_LOG_ERROR, "store: thread %d cannot open its inbox", t->index);
        sv_inbox_close(inbox);
        atomic_store(&t->failed, true);
        return NULL;
    }
    *pid = sv_self(inbox);
    atomic_store(&t->pid, pid);
    uint64_t next_check = 0;
    bool stop = false;
    while (!stop) {
        sv_msg *m = sv_recv(inbox, t->recs ? 0 : CHECK_EVERY_MS, NULL, NULL);
        for (int n = 0; m && n < ROUND_MAX; n++) {
            if (!handle(t, m, &stop))
                sv_msg_free(m);
            m = n + 1 < ROUND_MAX ? sv_recv(inbox, 0, NULL, NULL) : NULL;
        }
        finish_round(t);
        if (t->recs && !stop)
            step_recovery(t); /* between rounds: writes to other logs do not wait for a long read */
        if (t->index == 0 && sv_now_ms() >= next_check) {
            check_disk();
            next_check = sv_now_ms() + CHECK_EVERY_MS;
        }
    }
    while (t->recs) {
        rt__recovery *r = t->recs;
        t->recs = *rt__recovery_next(r);
        rt__recovery_abort(r);
    }
    atomic_store(&t->pid, NULL);
    sv_inbox_close(inbox);
    sv_retire(pid, free);
    return NULL;
}

/* ------------------------------------------------------- the store process */

/* Stops and joins the store threads: in terminate, and in an init that
 * fails after starting some (terminate does not run then: sv.h). */
static void stop_threads(void)
{
    int n = nthreads;
    nthreads = 0; /* queues started from now on find no store */
    for (int i = 0; i < n; i++) {
        store_thread *t = &threads[i];
        if (!t->running)
            continue;
        sv_pid *pid;
        /* One still opening its inbox is waited for: it must hear STOP. */
        while (!(pid = atomic_load(&t->pid)) && !atomic_load(&t->failed))
            usleep(100);
        if (pid) {
            sv_msg *stop = sv_msg_new(RT__S_STOP, NULL, 0);
            if (stop && sv_send_owed(*pid, stop) < 0)
                sv_msg_free(stop);
        }
        pthread_join(t->th, NULL);
        t->running = false;
    }
}

static int store_init(sv_proc *self, void *arg)
{
    const rt_config *c = arg;
    (void)self;
    if (!c || !c->data_dir || !c->data_dir[0]) {
        nthreads = 0; /* no data directory: durable queues are kept in memory only */
        sv_log(SV_LOG_WARNING, "store: no data directory; durable queues will not survive a restart");
        return 0;
    }
    snprintf(data_dir, sizeof data_dir, "%s", c->data_dir);
    disk_free_limit = c->disk_free_limit;
    char qdir[PATH_MAX + 16];
    snprintf(qdir, sizeof qdir, "%s/queues", data_dir);
    if (mkdir(qdir, 0750) < 0 && errno != EEXIST) {
        int err = errno; /* before the log can change it */
        sv_log(SV_LOG_ERROR, "store: cannot create %s: %s", qdir, strerror(err));
        return -err;
    }
    int want = c->store_threads > 0 ? c->store_threads : 1;
    if (want > MAX_THREADS)
        want = MAX_THREADS;
    check_disk();
    for (int i = 0; i < want; i++) {
        store_thread *t = &threads[i];
        *t = (store_thread){.index = i};
        atomic_init(&t->pid, NULL);
        if (pthread_create(&t->th, NULL, store_main, t) != 0) {
            sv_log(SV_LOG_ERROR, "store: cannot start thread %d", i);
            break;
        }
        t->running = true;
        nthreads = i + 1;
    }
    if (!nthreads)
        return -EAGAIN;
    /* wait until every inbox is open, so queues can send at once */
    int rc = -ETIMEDOUT;
    for (int tries = 0; tries < 10000; tries++) {
        int ready = 0, failed = 0;
        for (int i = 0; i < nthreads; i++) {
            ready += atomic_load(&threads[i].pid) != NULL;
            failed += atomic_load(&threads[i].failed);
        }
        if (ready == nthreads)
            return 0;
        if (ready + failed == nthreads) {
            rc = -ENOMEM;
            break;
        }
        usleep(100);
    }
    stop_threads(); /* terminate does not run after a failed init (sv.h) */
    return rc;
}

static void store_terminate(sv_proc *self, int reason)
{
    (void)self;
    (void)reason;
    stop_threads();
}

static int store_info(sv_proc *self, sv_msg *m)
{
    (void)self;
    (void)m;
    return 0;
}

static const sv_server_ops store_ops = {
    .name = "store",
    .init = store_init,
    .handle_info = store_info,
    .terminate = store_terminate,
};

int rt__store_start(sv_proc *sup, const sv_spawn_opts *opts, void *arg, sv_pid *pid)
{
    return sv_spawn(sup, &store_ops, arg, opts, pid);
}

int rt__store_send(sv_pid store, sv_msg *m)
{
    if (sv_pid_is_none(store))
        return -ESRCH;
    return sv_send_owed(store, m);
}
