/* rt_internal.h — shared by the files of routing/ only. */
#ifndef PLEXUS_RT_INTERNAL_H
#define PLEXUS_RT_INTERNAL_H

#include <sys/types.h>

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

/* logfmt.c: the on-disk form of a durable queue's log (see there). */
#define RT__SEG_HDR 16   /* segment header bytes */
#define RT__REC_HDR 8    /* record header: length, CRC */
#define RT__MSG_FIXED 24 /* MSG payload bytes before the routing key */
enum { RT__REC_MSG = 1, RT__REC_ACK, RT__REC_DCOUNT, RT__REC_MARK };
typedef struct rt__rec {
    uint8_t type;
    uint32_t dc;             /* MSG, DCOUNT */
    uint64_t seq;            /* MSG, DCOUNT */
    int64_t expires;         /* MSG: ms since the epoch, 0: never */
    uint64_t mark, next_seq; /* MARK */
    uint32_t n;              /* ACK: how many seqs (rt__rec_ack_at) */
    const unsigned char *acks;
    const char *rkey; /* MSG: routing key (not NUL-terminated) */
    uint16_t rkey_len;
    const unsigned char *msg; /* MSG: the encoded message */
    uint32_t msg_len;
} rt__rec;
void rt__seg_header(unsigned char out[RT__SEG_HDR], uint32_t segno);
int rt__seg_header_check(const unsigned char *buf, size_t len, uint32_t *segno);
size_t rt__rec_msg_size(size_t rkey_len, size_t msg_len);
size_t rt__rec_ack_size(uint32_t n);
size_t rt__rec_dcount_size(void);
size_t rt__rec_mark_size(void);
/* Encoders write a whole record at out and return its size; a MSG record's
 * message bytes are not copied: rt__rec_msg_head writes the record up to
 * them (its return value) and the caller writes msg right after. */
size_t rt__rec_msg_head(unsigned char *out, uint64_t seq, uint32_t dc, int64_t expires, const char *rkey,
                        uint16_t rkey_len, const void *msg, uint32_t msg_len);
size_t rt__rec_ack(unsigned char *out, const uint64_t *seqs, uint32_t n);
size_t rt__rec_dcount(unsigned char *out, uint64_t seq, uint32_t dc);
size_t rt__rec_mark(unsigned char *out, uint64_t mark, uint64_t next_seq);
/* The record at buf: its size (> 0); 0 if avail holds only part of one;
 * -EBADMSG if it is not a record (bad length, CRC, type, flags or padding). */
ssize_t rt__rec_decode(const unsigned char *buf, size_t avail, rt__rec *r);
uint64_t rt__rec_ack_at(const rt__rec *r, uint32_t i);
/* Reading a whole segment that may be damaged (recovery). After damage the
 * next record is searched for at every offset; a candidate's CRC would cost
 * the length it claims, so once a search begins the segment gets CRC
 * checkpoints that give the CRC of any span in constant time: the whole
 * read stays linear in the segment's size, whatever the damage. */
#define RT__SEGSCAN_OPS 512
typedef struct rt__segscan {
    const unsigned char *buf;
    size_t len;
    uint32_t *pre;                     /* the CRC of buf up to each checkpoint */
    uint32_t ops[2 * RT__SEGSCAN_OPS]; /* zlib's combine operators for checkpoint distances */
    bool built;                        /* tried (pre stays NULL if memory ran out: plain CRCs then) */
} rt__segscan;
void rt__segscan_init(rt__segscan *sc, const unsigned char *buf, size_t len);
/* rt__rec_decode of the record at pos (within the segment). */
ssize_t rt__segscan_decode(rt__segscan *sc, size_t pos, rt__rec *r);
/* The first offset after pos at which a whole record checks out, or len. */
size_t rt__segscan_resync(rt__segscan *sc, size_t pos);
void rt__segscan_free(rt__segscan *sc);

/* store.c, recovery.c: the message store's threads (see store.c). A
 * queue's log is an rt__slog that the queue creates, hands to its store
 * thread with RT__S_LOAD, and gives up with RT__S_CLOSE; in between only
 * that thread touches it. */
#define RT__READ_FDS 4
typedef struct rt__slog rt__slog;
enum {
    RT__S_LOAD = 0x52530001, /* rt__s_load: open the log, answer with RT__S_LOADED chunks */
    RT__S_WRITE,             /* rt__s_write: append; RT__S_SYNCED once durable (if asked) or failed */
    RT__S_READ,              /* rt__s_read: messages back, RT__S_READ_DONE */
    RT__S_UNLINK,            /* rt__s_seg: delete a segment */
    RT__S_RESET,             /* rt__s_seg: after a failure, writes may go on (a new segment first) */
    RT__S_CLOSE,             /* rt__s_seg: sync and free the log */
    RT__S_DESTROY,           /* NUL-terminated directory: remove it and what is in it */
    RT__S_FILE,              /* rt__s_file: replace a file atomically */
    RT__S_STOP,
    RT__S_LOADED,    /* store -> queue: rt__s_loaded */
    RT__S_SYNCED,    /* store -> queue: rt__s_synced */
    RT__S_READ_DONE, /* store -> queue: rt__s_read, entries filled */
    RT__S_FILE_DONE, /* store -> asker: a file replaced (status: 0 or the error) */
};
typedef struct rt__wop {
    uint8_t type; /* RT__REC_*, or 0: start segment `seg` */
    uint32_t seg;
    uint64_t off; /* where the record goes (checked against the log's end) */
    uint32_t dc;
    uint64_t seq;
    int64_t expires; /* ms since the epoch */
    uint64_t mark, next_seq;
    rt_msg *m;      /* MSG: a reference the store drops once written (or gives back on failure) */
    uint64_t *acks; /* ACK: malloc'd, freed by the store */
    uint32_t nacks;
} rt__wop;
typedef struct rt__s_write {
    rt__slog *log;
    uint64_t token; /* echoed in the answer */
    bool sync;      /* answer once it is on disk */
    uint32_t n;
    rt__wop ops[];
} rt__s_write;
typedef struct rt__back {
    uint64_t seq;
    rt_msg *m;
} rt__back;
typedef struct rt__s_synced {
    uint64_t token;
    int status; /* 0: durable; else the error, and the MSG records' messages come back */
    rt__slog *log;
    uint32_t n;
    rt__back back[];
} rt__s_synced;
typedef struct rt__rent {
    uint64_t seq, off;
    uint32_t seg, len; /* the whole record */
    int status;
    rt_msg *m; /* filled by the store */
} rt__rent;
typedef struct rt__s_read {
    rt__slog *log;
    uint64_t token;
    uint32_t n;
    rt__rent e[];
} rt__s_read;
typedef struct rt__s_seg {
    rt__slog *log;
    uint32_t seg;
} rt__s_seg;
typedef struct rt__s_file {
    char path[4096];
    sv_pid reply_to; /* none: no answer; else RT__S_FILE_DONE, status in the message */
    uint32_t len;
    unsigned char data[];
} rt__s_file;
typedef struct rt__s_load {
    rt__slog *log;
    uint64_t window;   /* bytes of messages to read into memory, from the head */
    uint32_t meta_len; /* the queue's definition, kept as queue.meta beside its log */
    char meta[];
} rt__s_load;
typedef struct rt__lent {
    uint64_t seq, off;
    int64_t expires;   /* ms since the epoch, 0: never */
    uint32_t seg, len; /* the record */
    uint32_t size;     /* the message's bytes */
    uint32_t dc;
    bool bumped; /* dc went up at recovery (the queue logs the new count) */
    rt_msg *m;   /* read for the first window; NULL: on disk only */
} rt__lent;
typedef struct rt__s_loaded {
    int status;
    bool last; /* the last chunk: n == 0, and nsegs segment numbers follow in e's place */
    uint32_t n;
    uint64_t next_seq, mark, corrupt;
    uint32_t nsegs;
    rt__lent e[];
} rt__s_loaded;

int rt__store_start(sv_proc *sup, const sv_spawn_opts *opts, void *arg, sv_pid *pid);
const char *rt__store_dir(void);              /* the data directory; NULL: no store */
#define RT_DEFS_FILE "definitions.json"       /* in the data directory: durable exchanges and bindings */
sv_pid rt__store_pid(const char *queue_name); /* the thread for this queue; none: no store */
int rt__store_send(sv_pid store, sv_msg *m);  /* owed: the store's input is bounded by credit */
rt__slog *rt__slog_new(const char *dir);
void rt__slog_free_unused(rt__slog *l); /* one never handed to a store thread */
const char *rt__slog_dir(const rt__slog *l);
int rt__slog_open_dir(rt__slog *l);
void rt__seg_path(char *out, size_t len, const char *dir, uint32_t seg);
void rt__read_entries(rt__s_read *r);
/* Reading a log back (recovery.c), a step at a time: start keeps the LOAD
 * request; each step does a bounded piece and returns true once the last
 * answer went to the queue and r is freed. abort frees r unfinished (the
 * queue closed its log meanwhile). */
typedef struct rt__recovery rt__recovery;
rt__recovery *
rt__recover_start(sv_msg *load_req); /* NULL: out of memory, answered so; the request stays the caller's */
bool rt__recover_step(rt__recovery *r);
void rt__recovery_abort(rt__recovery *r);
rt__slog *rt__recovery_log(const rt__recovery *r);
rt__recovery **rt__recovery_next(rt__recovery *r); /* the link of the store thread's list */
int rt__msg_from_rec(const rt__rec *r, rt_msg **out);
/* The directory of a durable queue's log: data_dir/queues/<hash of name>. */
int rt__queue_dir(const char *name, char *out, size_t len);

/* manager.c */
const rt_config *rt__config(void);
/* memory.c: queues report what they take and let go of, in batches. */
void rt__held_add(int64_t bytes);

#endif
