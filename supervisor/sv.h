/* sv.h — the Plexus actor runtime: the one public header of supervisor/.
 *
 * Everything in Plexus that has state and can fail is a process: a small
 * callback-driven state machine with a pid, a bounded mailbox, links and
 * monitors, living on one scheduler (an OS thread running its own libuv
 * loop). Processes are stackless: a handler runs to completion and returns,
 * so an idle process costs a few hundred bytes and a "blocking" request
 * between processes is a message plus a reply (sv_call_async). Threads that
 * are not schedulers (main, tests, tools) take part through an inbox, a
 * mailbox they read with a blocking sv_recv, and may use the synchronous
 * sv_call.
 *
 * Conventions (as in libuv): functions return 0 or a negative errno code and
 * never abort on bad input; a function that fails leaves ownership of its
 * arguments with the caller (for messages, see "Who owns a message"; for
 * a process's init, "Life cycle"). Exit reasons are ints: the small
 * non-negative SV_* constants below, or a negative errno code for a
 * failure.
 */
#ifndef PLEXUS_SV_H
#define PLEXUS_SV_H

#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ------------------------------------------------------------------ pids */

/* A pid names a process anywhere in a cluster. `creation` changes each time
 * a node starts and `gen` each time a table slot is reused, so a pid of a
 * process that has ended is never mistaken for a newer one. */
typedef struct sv_pid {
    uint32_t node;     /* node id within the cluster; 0 means "no process" */
    uint32_t creation; /* incarnation of that node */
    uint32_t index;    /* slot in the node's process table */
    uint32_t gen;      /* generation of that slot */
} sv_pid;

#define SV_PID_NONE ((sv_pid){0, 0, 0, 0})
#define SV_PID_FMT_LEN 48

static inline bool sv_pid_eq(sv_pid a, sv_pid b)
{
    return a.node == b.node && a.creation == b.creation && a.index == b.index && a.gen == b.gen;
}
static inline bool sv_pid_is_none(sv_pid p) { return p.node == 0; }

/* Writes "<node.index.gen>" into buf (SV_PID_FMT_LEN bytes suffice); returns buf. */
const char *sv_pid_str(sv_pid p, char *buf, size_t len);
bool sv_pid_is_local(sv_pid p);
/* True while the (local) process runs; a hint only, it may end at once after. */
bool sv_is_alive(sv_pid p);

/* --------------------------------------------------------------- reasons */

enum {
    SV_NORMAL = 0,       /* ended by choice; links ignore it unless trapping */
    SV_SHUTDOWN = 1,     /* asked to stop by its supervisor or the node */
    SV_KILL = 2,         /* sent with sv_exit: ends the target even if it traps exits */
    SV_KILLED = 3,       /* the reason of a process ended by SV_KILL */
    SV_NOPROC = 4,       /* the process was not there (link or monitor to a dead pid) */
    SV_NOCONNECTION = 5, /* its node is unreachable */
    SV_MAX_RESTARTS = 6, /* a supervisor exceeded its restart intensity */
};

/* "normal", "shutdown", ..., or the strerror() text of a negative code. */
const char *sv_reason_str(int reason, char *buf, size_t len);
/* Normal and shutdown are not failures: transient children stay down. */
static inline bool sv_reason_is_failure(int r) { return r != SV_NORMAL && r != SV_SHUTDOWN; }

/* ------------------------------------------------- reference-counted data */

/* A buffer shared by every message and queue that holds it: a 16 MiB body
 * fanned out to four consumers exists once. Immutable once shared. */
typedef struct sv_buf {
    atomic_uint refs;
    uint32_t flags;
    size_t len;
    unsigned char *data;
    void (*release)(struct sv_buf *b); /* NULL: data lives inline after the header */
    void *ctx;                         /* for release */
} sv_buf;

sv_buf *sv_buf_new(size_t len); /* NULL when out of memory */
static inline sv_buf *sv_buf_ref(sv_buf *b)
{
    atomic_fetch_add_explicit(&b->refs, 1, memory_order_relaxed);
    return b;
}
void sv_buf_unref(sv_buf *b); /* NULL is fine */

/* -------------------------------------------------------------- messages */

typedef enum sv_kind {
    SV_MSG_INFO = 0, /* sv_send */
    SV_MSG_CAST,     /* sv_cast */
    SV_MSG_CALL,     /* a request; answer it with sv_reply */
    SV_MSG_REPLY,    /* the answer to sv_call_async: status 0, -ETIMEDOUT, or the callee's exit reason */
    SV_MSG_EXIT,     /* a trapped exit signal: from is the sender, status the reason */
    SV_MSG_DOWN,     /* a monitored process ended: ref is the monitor, status the reason */
    SV_MSG_ACK,      /* a child spawned with opts.ack finished init successfully */
    SV_MSG__SIGNAL,  /* first internal kind; handlers never see these */
} sv_kind;

/* One message. The header is fixed; `data` holds an inline copy of a small
 * payload, `buf` an optional shared one. A handler borrows the message for
 * the duration of the call; the runtime frees it afterwards. */
typedef struct sv_msg {
    struct sv_msg *next; /* mailbox link, owned by the runtime */
    uint16_t kind;       /* sv_kind */
    uint16_t flags;      /* internal */
    uint32_t tag;        /* application-defined message type */
    sv_pid from;         /* the sender, or the process that ended (EXIT, DOWN) */
    uint64_t ref;        /* call, reply, monitor or timer reference */
    int32_t status;      /* REPLY status, EXIT/DOWN reason */
    uint32_t len;        /* bytes in data[] */
    sv_buf *buf;         /* shared payload, unref'd when the message is freed */
    unsigned char data[];
} sv_msg;

/* A message with tag and an inline copy of len bytes (data may be NULL to
 * leave them zeroed). NULL when out of memory. */
sv_msg *sv_msg_new(uint32_t tag, const void *data, size_t len);
void sv_msg_free(sv_msg *m); /* NULL is fine; drops the buf reference */
/* Called by a handler on the message it was given: it keeps m after it
 * returns (to handle later, say), and frees or sends it on itself. m->next
 * is then the handler's to use. */
void sv_take(sv_msg *m);
/* The inline payload as a T*, or NULL if it is too short to hold one. */
#define SV_MSG_AS(m, T) ((m)->len >= sizeof(T) ? (T *)(void *)(m)->data : (T *)NULL)

/* --------------------------------------------------------- small hash maps */

/* An open-addressing hash map of caller-defined entries, each a struct that
 * starts with its 128-bit key `uint64_t k1, k2` (not both zero). Owned by
 * one thread; pointers to entries are valid until the next put or del. */
typedef struct sv_map {
    void *e;
    uint32_t cap, n;
    uint32_t esize;
} sv_map;

#define SV_MAP_INIT(T) ((sv_map){NULL, 0, 0, sizeof(T)})
void *sv_map_get(const sv_map *m, uint64_t k1, uint64_t k2);
void *sv_map_put(sv_map *m, uint64_t k1, uint64_t k2);           /* existing or new (zeroed); NULL: out of memory */
bool sv_map_del(sv_map *m, uint64_t k1, uint64_t k2, void *out); /* copies the entry to out if set */
void sv_map_free(sv_map *m);
/* Iterate: for (i = 0; i < m->cap; i++) if ((e = sv_map_at(m, i))) ... (no put/del meanwhile) */
void *sv_map_at(const sv_map *m, uint32_t i);

/* --------------------------------------------------------------- processes */

typedef struct sv_proc sv_proc; /* a process, or an inbox; handlers get their own as `self` */

/* sv_take for work put off (a process busy loading its state, say): the
 * message keeps its place in self's mailbox bound until sv_unhold, so
 * senders still meet -EAGAIN and the put-off work stays bounded. Call
 * sv_unhold (on the same process) before handling or freeing it. */
void sv_hold(sv_proc *self, sv_msg *m);
void sv_unhold(sv_proc *self, sv_msg *m);

/* The behaviour of a process (OTP's gen_server). Every callback is
 * optional. A callback returning a negative code ends the process with that
 * reason ("let it crash"); sv_stop ends it after the callback returns.
 *
 * Life cycle, the one rule every process follows:
 * - Once sv_spawn has returned 0, init runs exactly once and owns its arg
 *   (it must release what arg carries whatever it returns); if sv_spawn
 *   fails, init never runs and arg stays the spawner's.
 * - init that fails (returns a negative code) must itself undo what it did
 *   (free its state, close its handles, drop the names and entries it
 *   added) before it returns: terminate is NOT called after a failed init.
 *   The runtime clears what it keeps for the process (links, monitors,
 *   timers, registered names, the mailbox through discard) as for any exit.
 * - Once init has returned 0 or SV_INIT_DEFER, the process is live and
 *   terminate runs exactly once when it ends, whatever the reason (kill,
 *   a deferred init reported failed with sv_init_ack, sv_stop inside init
 *   included): terminate is the destructor and frees the state.
 * Why this way round (as libuv's *_init and OTP's init/1): only the failing
 * init knows how far it got, so it is the one place that can undo exactly
 * that, while terminate may then assume a whole state and need not guess
 * at partial ones. */
typedef struct sv_server_ops {
    const char *name; /* for logs and the supervision tree */
    /* 0: ready (the spawner gets its ACK); SV_INIT_DEFER: call sv_init_ack
     * later; negative: the process ends with that reason, without
     * terminate (see above). NULL: as if it returned 0. */
    int (*init)(sv_proc *self, void *arg);
    int (*handle_call)(sv_proc *self, sv_msg *req); /* answer with sv_reply, now or later */
    int (*handle_cast)(sv_proc *self, sv_msg *m);
    int (*handle_info)(sv_proc *self, sv_msg *m); /* INFO, EXIT, DOWN, REPLY, ACK, timers */
    void (*terminate)(sv_proc *self, int reason);
    /* Optional: for each message still in the mailbox when the process has
     * ended (after terminate), releases what the message carries beyond
     * its own memory (references, answers owed to its sender). The runtime
     * frees m afterwards. */
    void (*discard)(sv_msg *m);
} sv_server_ops;

#define SV_INIT_DEFER 1
#define SV_SCHED_SELF 0          /* the spawner's scheduler (ANY from a non-scheduler thread) */
#define SV_SCHED_ANY (-1)        /* spread new processes over the schedulers */
#define SV_SCHED_ON(i) ((i) + 1) /* scheduler number i, counted from 0 */

typedef struct sv_spawn_opts {
    int scheduler;        /* SV_SCHED_SELF (0, the default), SV_SCHED_ANY or SV_SCHED_ON(i) */
    uint32_t mailbox_cap; /* bound on queued messages; 0 takes the node's default */
    bool link;            /* link the new process to the spawner, atomically */
    bool ack;             /* send the spawner SV_MSG_ACK when init succeeds */
    bool trap_exit;       /* start trapping exits */
    uint64_t *monitor;    /* if set, monitor the new process atomically and store the ref */
    const char *label;    /* instance label for logs and the tree (copied) */
} sv_spawn_opts;

/* Starts a process running ops with arg. self is the spawner (a process or an
 * inbox) and may be NULL when neither link, ack nor monitor is asked. The new
 * process runs init on its scheduler before any message. */
int sv_spawn(sv_proc *self, const sv_server_ops *ops, void *arg, const sv_spawn_opts *opts, sv_pid *pid);
/* From an inbox: spawn and wait until init has run; returns init's error, or
 * -ETIMEDOUT (the process is then killed). */
int sv_start(sv_proc *inbox, const sv_server_ops *ops, void *arg, const sv_spawn_opts *opts, int timeout_ms,
             sv_pid *pid);
/* After init returned SV_INIT_DEFER: report the outcome (a failure ends the
 * process with that reason; it was live, so terminate runs). */
void sv_init_ack(sv_proc *self, int status);

sv_pid sv_self(sv_proc *self);
sv_pid sv_parent(sv_proc *self); /* the spawner, SV_PID_NONE if none */
void *sv_state(sv_proc *self);
void sv_set_state(sv_proc *self, void *state);
const char *sv_label(sv_proc *self);
void sv_set_label(sv_proc *self, const char *label); /* copied */
int sv_scheduler_of(sv_proc *self);                  /* index, -1 for an inbox */

/* Ends self with reason once the current callback returns. */
void sv_stop(sv_proc *self, int reason);
void sv_trap_exit(sv_proc *self, bool on);

/* ----------------------------------------------------------------- sending */

/* Who owns a message handed to the runtime: the one rule.
 *
 * sv_send, sv_cast, sv_send_owed, sv_send_after, sv_reply and sv_call_async
 * take the message only when they return 0. From then on it is the
 * receiver's (and the runtime frees it if the receiver ends first, after
 * its discard callback). When they return an error, nothing was queued and
 * the message is still the caller's, to free, or to keep and try again:
 *   -EAGAIN        the receiver's mailbox is full (retry later, drop with a
 *                  log, or stop taking input: the DESIGN's backpressure);
 *   -ESRCH         no such process (it ended, or the pid is stale or none);
 *   -EHOSTUNREACH  its node is not connected;
 *   -EINVAL        a bad argument (m NULL, a call from the wrong thread);
 *   -ENOMEM        the runtime's own bookkeeping failed.
 * sv_call is the one exception, and takes req in every case: it is a send
 * and a wait, and may fail after the callee has the request (-ETIMEDOUT,
 * the callee's exit or error answer), when there is nothing to give back;
 * a request it could not queue it frees itself. An answer that arrives
 * after its call ended is dropped by the runtime. The *_tag / *_data
 * helpers build the message themselves and free it on failure. */

/* Queues m for `to` (m->from is set to the calling process, if any). */
int sv_send(sv_pid to, sv_msg *m);
int sv_cast(sv_pid to, sv_msg *m);
/* Convenience: build, send, and free on failure. */
int sv_send_tag(sv_pid to, uint32_t tag, const void *data, size_t len);
/* A message the receiver asked for (deliveries against the credit it
 * granted, answers to its requests): not counted against its mailbox bound,
 * because the receiver bounds these itself by what it asks for. Otherwise
 * as sv_send. */
int sv_send_owed(sv_pid to, sv_msg *m);

/* ----------------------------------------------------------- call / reply */

/* Where a reply goes; kept by a server that answers later. */
typedef struct sv_from {
    sv_pid pid;
    uint64_t ref;
} sv_from;

static inline sv_from sv_from_of(const sv_msg *req) { return (sv_from){req->from, req->ref}; }
/* Sends reply to the caller of req; -ESRCH when the caller has gone (its
 * call timed out, say): reply is then still yours, as for any send. */
int sv_reply(sv_from to, sv_msg *reply);
/* Convenience: an answer of len bytes, built, sent, and freed on failure. */
int sv_reply_data(sv_from to, const void *data, size_t len);
/* Answers with a failure: the caller's sv_call returns status (negative). */
int sv_reply_error(sv_from to, int status);

/* Synchronous call, for inboxes only: a scheduler thread must not block
 * (-EDEADLK). Monitors the callee, so its death ends the wait at once with
 * its exit reason. On 0, *reply is the answer, to be freed by the caller.
 * req is taken in every case (the exception to the rule above).
 * timeout_ms < 0 waits forever. */
int sv_call(sv_proc *inbox, sv_pid to, sv_msg *req, int timeout_ms, sv_msg **reply);
/* Asynchronous call, for processes: on 0 (req taken), exactly one
 * SV_MSG_REPLY with *ref will arrive in handle_info: the answer (status
 * 0), -ETIMEDOUT, or the callee's exit reason. On an error no REPLY comes
 * and req is still the caller's. */
int sv_call_async(sv_proc *self, sv_pid to, sv_msg *req, int timeout_ms, uint64_t *ref);

/* --------------------------------------------------- links and monitors */

/* Links are two-way: when one side ends abnormally the other gets an exit
 * signal, which ends it too unless it traps exits (then it is an
 * SV_MSG_EXIT). Linking a dead pid gives an SV_NOPROC exit signal. */
int sv_link(sv_proc *self, sv_pid other);
int sv_unlink(sv_proc *self, sv_pid other);
/* One-way: SV_MSG_DOWN with the returned ref when `other` ends (at once,
 * with SV_NOPROC, if it is not alive). 0 when out of memory. */
uint64_t sv_monitor(sv_proc *self, sv_pid other);
void sv_demonitor(sv_proc *self, uint64_t ref); /* no DOWN for ref arrives afterwards */
/* Sends an exit signal to `to` as if from self (may be NULL): reason SV_KILL
 * ends it unconditionally, others as a link's signal would. */
int sv_exit(sv_proc *self, sv_pid to, int reason);

/* ------------------------------------------------------------------ timers */

/* Sends m to `to` after ms milliseconds (m taken on 0 only, as for any
 * send; if `to` has gone when it fires, the runtime frees it). The timer
 * belongs to self (a scheduled process) and is cancelled, m freed, if self
 * ends first. Timer messages are not counted against the mailbox bound:
 * their number is bounded by the timers the sender armed. */
int sv_send_after(sv_proc *self, uint64_t ms, sv_pid to, sv_msg *m, uint64_t *tref);
/* 0 if cancelled before it fired, -ENOENT if it fired or is unknown. */
int sv_cancel_timer(sv_proc *self, uint64_t tref);
/* Monotonic milliseconds (for deadlines and ages, not dates). */
uint64_t sv_now_ms(void);

/* -------------------------------------------------------- libuv integration */

/* The libuv loop of self's scheduler, for handles a process owns. */
struct uv_loop_s *sv_loop(sv_proc *self);
/* A libuv callback that acts for a process brackets its work with these, so
 * sends carry the right sender and an sv_stop inside takes effect safely. */
void sv_enter(sv_proc *self);
void sv_leave(sv_proc *self);

/* ------------------------------------------------- shared read-mostly data */

/* Frees ptr with free_fn once no process can still be reading it: every
 * scheduler has finished the turn it was in. Readers need no lock, but must
 * not keep such a pointer past the end of their current callback. Any
 * thread may retire. */
void sv_retire(void *ptr, void (*free_fn)(void *));

/* ---------------------------------------------------------------- inboxes */

/* A mailbox for the calling (non-scheduler) thread, so it can spawn, link,
 * monitor, call and receive. It traps exits. Close it on the same thread. */
sv_proc *sv_inbox_open(void);
void sv_inbox_close(sv_proc *inbox);
typedef bool (*sv_match_fn)(const sv_msg *m, void *ctx);
/* The first message that matches (all if match is NULL), waiting up to
 * timeout_ms (< 0: forever). NULL on timeout. The caller frees it. */
sv_msg *sv_recv(sv_proc *inbox, int timeout_ms, sv_match_fn match, void *ctx);

/* -------------------------------------------------------------- registry */

/* Node-local names for well-known processes. A name is dropped when its
 * process ends. -EEXIST if taken by a live process. */
int sv_register(const char *name, sv_pid pid);
void sv_unregister(const char *name);
sv_pid sv_whereis(const char *name); /* SV_PID_NONE if unknown */

/* ------------------------------------------------------------ supervisors */

typedef enum sv_restart {
    SV_PERMANENT, /* always restarted */
    SV_TRANSIENT, /* restarted after a failure, not after normal or shutdown */
    SV_TEMPORARY, /* never restarted, forgotten when it ends */
} sv_restart;

typedef enum sv_strategy {
    SV_ONE_FOR_ONE,  /* restart the child that ended */
    SV_ONE_FOR_ALL,  /* stop the others (in reverse), restart all (in order) */
    SV_REST_FOR_ONE, /* stop those started after it, restart it and them */
} sv_strategy;

#define SV_BRUTAL_KILL 0 /* shutdown_ms: kill at once */
#define SV_SHUTDOWN_INFINITY (-1)

typedef struct sv_child_spec {
    const char *id; /* unique within the supervisor (copied) */
    /* Starts the child: spawn it with *opts (they link it to the supervisor
     * and ask for an ACK) and store its pid. */
    int (*start)(sv_proc *sup, const sv_spawn_opts *opts, void *arg, sv_pid *pid);
    void *arg;
    sv_restart restart;
    int shutdown_ms; /* SV_BRUTAL_KILL, a grace period, or SV_SHUTDOWN_INFINITY */
    bool is_supervisor;
} sv_child_spec;

typedef struct sv_sup_flags {
    sv_strategy strategy;
    int intensity; /* at most this many restarts ... */
    int period_ms; /* ... within this window, or the supervisor gives up */
} sv_sup_flags;

/* Spawns a supervisor that starts children in order (each after the previous
 * one's init succeeded) and acks its spawner when all are up. */
int sv_sup_spawn(sv_proc *self, const char *name, sv_sup_flags flags, const sv_child_spec *children, size_t n,
                 const sv_spawn_opts *opts, sv_pid *pid);
/* A child_spec start function for a supervisor child: arg is an sv_sup_def. */
typedef struct sv_sup_def {
    const char *name;
    sv_sup_flags flags;
    const sv_child_spec *children;
    size_t n;
} sv_sup_def;
int sv_sup_start_fn(sv_proc *sup, const sv_spawn_opts *opts, void *arg, sv_pid *pid);

/* Calls to a supervisor. From an inbox use sv_sup_*; a process sends the
 * same requests with sv_call_async and the request builders. */
int sv_sup_start_child(sv_proc *inbox, sv_pid sup, const sv_child_spec *spec, int timeout_ms, sv_pid *pid);
/* Stops a child; it stays listed (temporary children excepted). */
int sv_sup_terminate_child(sv_proc *inbox, sv_pid sup, const char *id, int timeout_ms);
/* Stops a child if it runs and forgets it (OTP's terminate + delete_child). */
int sv_sup_delete_child(sv_proc *inbox, sv_pid sup, const char *id, int timeout_ms);
sv_msg *sv_sup_start_child_req(const sv_child_spec *spec);
sv_msg *sv_sup_terminate_child_req(const char *id, bool remove);
/* The answer to a start-child request: the new pid (status 0 in the reply). */
sv_pid sv_sup_reply_pid(const sv_msg *reply);

typedef struct sv_child_info {
    char id[64];
    sv_pid pid; /* SV_PID_NONE when not running */
    uint32_t restarts;
    bool is_supervisor;
    uint32_t mailbox;      /* queued messages at the time of the query */
    const char *behaviour; /* its sv_server_ops name (static), NULL when not running */
    sv_restart restart;
} sv_child_info;
/* Fills up to max entries, returns how many children there are (may exceed max). */
int sv_sup_which_children(sv_proc *inbox, sv_pid sup, sv_child_info *out, int max, int timeout_ms);

/* A supervisor as the admin API shows it (like OTP's count_children plus
 * the flags): for observing a live tree. */
typedef struct sv_sup_info {
    char name[64];
    sv_sup_flags flags;
    uint64_t restarts; /* children restarted since it started */
    uint32_t children;
} sv_sup_info;
int sv_sup_get_info(sv_proc *inbox, sv_pid sup, sv_sup_info *out, int timeout_ms);

/* ------------------------------------------------------------------- node */

typedef struct sv_node_opts {
    uint32_t node_id;     /* 0: 1 (a lone node) */
    int schedulers;       /* 0: one per core */
    uint32_t mailbox_cap; /* default bound per process; 0: 4096 */
    int spin_us;          /* how long an idle scheduler spins before sleeping; <0: default */
} sv_node_opts;

int sv_node_start(const sv_node_opts *opts);
/* Kills every process still running, stops the schedulers, frees all. */
void sv_node_stop(void);
uint32_t sv_node_id(void);
int sv_node_schedulers(void);

typedef struct sv_node_stats {
    uint64_t processes; /* alive now */
    uint64_t spawned;   /* since start */
    uint64_t messages;  /* delivered to handlers since start */
    uint64_t wakeups;   /* sleeping schedulers woken by another thread */
    uint64_t spin_ns;   /* time schedulers have spent spinning before sleeping, summed */
} sv_node_stats;
void sv_node_get_stats(sv_node_stats *st);
uint32_t sv_mailbox_len(sv_pid pid); /* queued messages of a local process, 0 if none */

/* What the runtime knows of a live local process, for observers (the
 * admin API's tree); a snapshot that may be stale at once. */
typedef struct sv_proc_info {
    const char *behaviour; /* its sv_server_ops name (static), "inbox" for an inbox */
    uint32_t mailbox;      /* ordinary messages queued */
    int scheduler;         /* index, -1 for an inbox */
} sv_proc_info;
int sv_process_info(sv_pid pid, sv_proc_info *out); /* -ESRCH if it is not running here */

/* ---------------------------------------------------------- small helpers */

/* Hashes of a string, for spreading names over tables and threads (not
 * for security): FNV-1a, and a 128-bit key (k1, k2; never both zero) for
 * sv_map where two names must not share a key in practice. */
uint32_t sv_hash32(const char *s);
void sv_hash128(const char *s, uint64_t *k1, uint64_t *k2);
/* Makes room for need elements of size bytes in *p (capacity *cap,
 * doubled as it grows). -ENOMEM leaves both as they were. */
int sv_grow(void **p, size_t *cap, size_t need, size_t size);
/* Writes all of buf (EINTR retried); 0 or -errno. */
int sv_write_all(int fd, const void *buf, size_t len);
/* fsyncs the directory that holds path, so a rename or unlink in it is
 * durable. */
int sv_sync_dir_of(const char *path);
/* Replaces the file at path with data, atomically and durably (a
 * temporary file, fsync, rename, fsync of the directory): after a crash
 * the file holds the old or the new contents, whole. Blocks on the disk:
 * not for a scheduler thread (the store and the admin API use it). */
int sv_file_replace(const char *path, const void *data, size_t len);

/* -------------------------------------------------------------- allocator */

/* "jemalloc 5.3.0", "libc", or "asan" (the AddressSanitizer build, whose
 * allocator keeps freed memory on purpose). */
const char *sv_allocator(void);
/* What the allocator holds, in bytes: allocated by the program, in active
 * pages, resident (RSS that is the allocator's, metadata included), and
 * retained (address space kept but given back to the kernel). -ENOTSUP
 * (all zero) when the allocator does not say. */
typedef struct sv_alloc_stats {
    uint64_t allocated, active, resident, retained;
} sv_alloc_stats;
int sv_alloc_get_stats(sv_alloc_stats *st);

/* -------------------------------------------------------------------- log */

typedef enum sv_log_level { SV_LOG_ERROR, SV_LOG_WARNING, SV_LOG_INFO, SV_LOG_DEBUG } sv_log_level;

void sv_log_set_level(sv_log_level level);
sv_log_level sv_log_get_level(void);
int sv_log_parse_level(const char *s, sv_log_level *out); /* "error" ... "debug" */
bool sv_log_enabled(sv_log_level level);
void sv_log(sv_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sv_vlog(sv_log_level level, const char *fmt, va_list ap);

#endif
