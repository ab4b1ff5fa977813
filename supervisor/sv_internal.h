/* sv_internal.h — what the files of supervisor/ share and nobody else sees.
 *
 * The process table holds type-stable slots: a slot's memory is never freed
 * while the node runs, so a sender may always lock a slot named by a pid and
 * compare generations, whatever the process is doing. The slot lock is the
 * one short critical section of a send; everything else about a process is
 * touched only by the thread that runs it.
 */
#ifndef PLEXUS_SV_INTERNAL_H
#define PLEXUS_SV_INTERNAL_H

#include <pthread.h>
#include <uv.h>

#include "sv.h"

/* Internal message kinds, after the public ones. Signals go to a separate
 * list and are handled before ordinary messages. */
enum {
    SV__SIG_LINK = SV_MSG__SIGNAL,
    SV__SIG_UNLINK,
    SV__SIG_MONITOR,      /* ref: the monitor; from: the watcher */
    SV__SIG_DEMONITOR,    /* ref */
    SV__SIG_EXIT,         /* status: reason; flags: SV__F_LINKED if from a link */
    SV__MSG_CALL_TIMEOUT, /* a message, not a signal: ref is the call */
};

enum {
    SV__F_SYSTEM = 1 << 0, /* not counted against the mailbox bound */
    SV__F_LINKED = 1 << 1, /* an exit signal caused by a link */
    SV__F_TAKEN = 1 << 2,  /* its handler kept it (sv_take): not freed after dispatch */
    SV__F_HELD = 1 << 3,   /* kept with sv_hold: still counts against its mailbox bound */
};

static inline bool sv__is_signal(const sv_msg *m) { return m->kind >= SV__SIG_LINK && m->kind <= SV__SIG_EXIT; }

/* ------------------------------------------------------------ map entries */

/* The entry of a process's links, monitors, watchers, calls and timers
 * (sv_map): key a pid, or a ref in k2. */
typedef struct sv__ent {
    uint64_t k1, k2;
    sv_pid pid;
    uint64_t aux;
    void *ptr;
} sv__ent;

static inline uint64_t sv__pid_k1(sv_pid p) { return ((uint64_t)p.node << 32) | p.creation; }
static inline uint64_t sv__pid_k2(sv_pid p) { return ((uint64_t)p.index << 32) | p.gen; }
static inline sv_pid sv__pid_of(const sv__ent *e)
{
    return (sv_pid){(uint32_t)(e->k1 >> 32), (uint32_t)e->k1, (uint32_t)(e->k2 >> 32), (uint32_t)e->k2};
}
#define SV__TAB_INIT SV_MAP_INIT(sv__ent)

/* ------------------------------------------------------- message queues */

typedef struct sv__mq {
    sv_msg *head, *tail;
} sv__mq;

static inline void sv__mq_push(sv__mq *q, sv_msg *m)
{
    m->next = NULL;
    if (q->tail)
        q->tail->next = m;
    else
        q->head = m;
    q->tail = m;
}
static inline sv_msg *sv__mq_pop(sv__mq *q)
{
    sv_msg *m = q->head;
    if (m) {
        q->head = m->next;
        if (!q->head)
            q->tail = NULL;
        m->next = NULL;
    }
    return m;
}
/* Moves all of src to the tail of dst. */
static inline void sv__mq_splice(sv__mq *dst, sv__mq *src)
{
    if (!src->head)
        return;
    if (dst->tail)
        dst->tail->next = src->head;
    else
        dst->head = src->head;
    dst->tail = src->tail;
    src->head = src->tail = NULL;
}

/* ------------------------------------------------------------- processes */

typedef struct sv__sched sv__sched;

typedef struct sv__slot {
    pthread_mutex_t lock;
    uint32_t gen; /* generation of the current or next occupant */
    uint32_t next_free;
    sv_proc *proc; /* NULL while free */
} sv__slot;

enum { SV__NEW, SV__LIVE, SV__DEAD };

struct sv_proc {
    sv_pid pid;
    sv__sched *sched; /* NULL for an inbox */
    sv__slot *slot;
    const sv_server_ops *ops;
    void *state;
    void *init_arg;
    char *label;
    sv_pid parent;

    /* Shared with senders, under slot->lock. */
    sv__mq in_msgs, in_sigs;
    bool queued;          /* in a run queue or running: senders need not schedule it */
    pthread_cond_t *cond; /* an inbox's waiter */

    /* Owned by the running thread. */
    sv__mq msgs, sigs;
    atomic_uint count; /* ordinary messages queued, in and private */
    uint32_t cap;
    uint8_t status; /* SV__NEW, SV__LIVE, SV__DEAD */
    bool trap_exit;
    bool ack; /* send SV_MSG_ACK to the parent after init */
    bool stop_pending;
    int stop_reason;
    int enter_depth;
    sv_map links;    /* sv__ent, key pid */
    sv_map monitors; /* key ref -> pid watched (by us) */
    sv_map watchers; /* key ref -> pid watching us */
    sv_map calls;    /* key ref -> aux: timer ref (sv_call_async, sv_call) */
    sv_map timers;   /* key ref -> ptr: sv__timer */

    sv_proc *run_next;    /* run queue */
    sv_proc *prev, *next; /* the scheduler's list of its processes */
};

/* ------------------------------------------------------------ scheduler */

struct sv__sched {
    int index;
    uv_thread_t thread;
    uv_loop_t loop;
    uv_async_t wake;
    pthread_mutex_t in_lock; /* guards in_head/in_tail */
    sv_proc *in_head, *in_tail;
    atomic_int has_input; /* in_head != NULL, readable without the lock */
    atomic_int sleeping;  /* about to block in uv_run: senders must wake it */
    atomic_int owes_pass; /* a retirement waits for it to pass its loop top (retire.c) */
    atomic_bool stop;
    bool in_uv;                   /* inside uv_run: a local wake-up must uv_stop */
    sv_proc *run_head, *run_tail; /* owner thread only */
    sv_proc *procs;               /* owner thread only */
    atomic_uint_fast64_t passes;  /* times through the loop top: a quiescent point */
    uint64_t wakeups;             /* counted by wakers, approximate */
    uint64_t messages;            /* owner writes (relaxed atomic store), stats read */
    uint64_t entered;             /* sv_enter calls: I/O callbacks that did work */
    uint64_t spin_ns;             /* time spent spinning (owner writes, stats read) */
    uint64_t win_start, win_idle; /* the busy window (sched.c), ns */
    atomic_int busy_pct;          /* busy share of the last window, read by all */
};

/* ------------------------------------------------------------------ node */

typedef struct sv__node {
    uint32_t id, creation;
    int nsched;
    sv__sched *sched;
    uint32_t mailbox_cap;
    int spin_us;
    atomic_uint rr; /* round robin for SV_SCHED_ANY */
    atomic_uint_fast64_t next_ref;
    atomic_uint_fast64_t processes, spawned, inboxes;
    atomic_bool running;
} sv__node;

extern sv__node sv__n;

/* The scheduler and process running on this thread. */
extern _Thread_local sv__sched *sv__tls_sched;
extern _Thread_local sv_proc *sv__tls_proc;

uint64_t sv__new_ref(void);

/* proc_table.c */
int sv__table_init(void);
void sv__table_destroy(void);
sv__slot *sv__table_slot(uint32_t index); /* NULL if out of range */
int sv__table_alloc(sv_proc *p);          /* fills p->pid and p->slot */
void sv__table_release(sv__slot *s, uint32_t index);
uint32_t sv__table_size(void);

/* mailbox.c: find a live local process and queue m on it. */
int sv__deliver(sv_pid to, sv_msg *m);
/* A system message or signal from the runtime: never refused for lack of room. */
int sv__send_system(sv_pid to, sv_proc *sender, uint16_t kind, uint64_t ref, int status, uint16_t flags);

/* sched.c */
int sv__sched_start_all(void);
void sv__sched_stop_all(void);
void sv__sched_ready(sv_proc *p); /* p->queued was just set by the caller */
sv__sched *sv__sched_pick(sv_proc *spawner, int which);

/* proc.c */
void sv__proc_run(sv_proc *p); /* a scheduler runs p for one turn */
sv_proc *sv__proc_alloc(void); /* zeroed, maps ready */
void sv__proc_free(sv_proc *p);
/* Handles (and takes) one signal addressed to p (LINK, MONITOR, EXIT...);
 * true if p must end, with *reason. Shared with inboxes. */
bool sv__handle_signal(sv_proc *p, sv_msg *sig, int *reason);
/* Filters an ordinary message through p's monitors, calls and links; returns
 * true if it should reach the handler (maybe rewritten, e.g. DOWN to REPLY). */
bool sv__filter(sv_proc *p, sv_msg *m);
/* Notifies links and watchers that p ended and answers queued signals. */
void sv__proc_notify_exit(sv_proc *p, int reason);

/* timer.c */
void sv__timers_cancel_all(sv_proc *p);

/* retire.c */
void sv__retire_poll(void);
void sv__retire_flush(void);

/* registry.c */
void sv__registry_drop_pid(sv_pid pid);
void sv__registry_clear(void);

/* supervisor.c */
extern const sv_server_ops sv__sup_ops;

#endif
