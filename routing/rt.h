/* rt.h — routing: messages, exchanges and bindings, queues. The one public
 * header of routing/.
 *
 * Routing is the broker's protocol-neutral core. A message is kept as the
 * AMQP 1.0 bytes it arrived in, in one reference-counted rt_msg shared by
 * every queue that holds it; only the few header and property fields that
 * routing needs are decoded, once. Exchanges, bindings and the queue
 * directory are read-mostly tables: any process reads them without locks
 * (valid until the end of its current callback; see sv_retire), and one
 * process, the routing manager, changes them. Each queue is a process.
 */
#ifndef PLEXUS_RT_H
#define PLEXUS_RT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "supervisor/sv.h"

#define RT_NAME_MAX 255 /* queue, exchange and routing key names, in bytes */

/* ---------------------------------------------------- AMQP 1.0 encoding */

/* The codes of AMQP 1.0's message sections (part 3.2) and of the type
 * constructors (part 1.6) that Plexus's direct encoders and decoders of
 * message bytes use, here (dead-letter history) and in amqp/ (the 0-9-1
 * mapping): stated once. */
enum {
    RT_SEC_HEADER = 0x70,
    RT_SEC_DELIVERY_ANN = 0x71,
    RT_SEC_MESSAGE_ANN = 0x72,
    RT_SEC_PROPERTIES = 0x73,
    RT_SEC_APP_PROPS = 0x74,
    RT_SEC_DATA = 0x75, /* the first body section code */
    RT_SEC_SEQUENCE = 0x76,
    RT_SEC_VALUE = 0x77,
    RT_SEC_FOOTER = 0x78,
};
enum {
    RT_C_NULL = 0x40,
    RT_C_TRUE = 0x41,
    RT_C_FALSE = 0x42,
    RT_C_UINT0 = 0x43,
    RT_C_ULONG0 = 0x44,
    RT_C_LIST0 = 0x45,
    RT_C_UBYTE = 0x50,
    RT_C_BYTE = 0x51,
    RT_C_SMALLUINT = 0x52,
    RT_C_SMALLULONG = 0x53,
    RT_C_SMALLINT = 0x54,
    RT_C_SMALLLONG = 0x55,
    RT_C_BOOL = 0x56,
    RT_C_USHORT = 0x60,
    RT_C_SHORT = 0x61,
    RT_C_UINT = 0x70,
    RT_C_INT = 0x71,
    RT_C_FLOAT = 0x72,
    RT_C_ULONG = 0x80,
    RT_C_LONG = 0x81,
    RT_C_DOUBLE = 0x82,
    RT_C_TIMESTAMP = 0x83,
    RT_C_UUID = 0x98,
    RT_C_VBIN8 = 0xa0,
    RT_C_STR8 = 0xa1,
    RT_C_SYM8 = 0xa3,
    RT_C_VBIN32 = 0xb0,
    RT_C_STR32 = 0xb1,
    RT_C_SYM32 = 0xb3,
    RT_C_LIST8 = 0xc0,
    RT_C_MAP8 = 0xc1,
    RT_C_LIST32 = 0xd0,
    RT_C_MAP32 = 0xd1,
    RT_C_ARRAY8 = 0xe0,
    RT_C_ARRAY32 = 0xf0,
};

/* ---------------------------------------------------------------- messages */

/* Packed to 64 bytes after buf: every message held by a queue pays for it
 * (a backlog of a million is measured against 2x its payload). */
typedef struct rt_msg {
    sv_buf buf;       /* refs; data/len: the encoded message as received */
    uint16_t hdr_len; /* bytes of the header section at the start (0: none; a larger one is refused) */
    uint8_t priority;
    bool durable : 1;
    bool first_acquirer : 1;
    bool has_priority : 1;   /* the header gave one (0 is a priority; absent means 4) */
    bool has_ttl : 1;        /* the header gives a ttl (0 is one: expire unless delivered at once) */
    uint32_t ttl;            /* header ttl in ms */
    uint32_t delivery_count; /* header delivery-count as received */
    uint32_t body_len;       /* the body's bytes (data payloads, or the value): what x-max-length-bytes
                              * counts, as RabbitMQ counts message bytes */
    int64_t absolute_expiry; /* properties absolute-expiry-time (ms since epoch), 0: none */
    const char *to;          /* properties fields, NUL-terminated, or NULL */
    const char *subject;
    const char *reply_to;
    const char *rkey;        /* the routing key it was published with (set by rt_msg_set_rkey) */
    uint32_t ap_off, ap_len; /* the application-properties section within data, if any */
} rt_msg;

/* Copies len bytes of an encoded AMQP 1.0 message into a new rt_msg and
 * decodes its header and properties (never the body). -EBADMSG if the
 * sections cannot be decoded; -EMSGSIZE above UINT32_MAX. */
int rt_msg_new(const void *data, size_t len, rt_msg **out);
/* Building a message as its bytes arrive: allocate, grow while reading
 * into rt_msg_bytes(m), then finish (decodes; may move the message). On a
 * finish error the caller still owns (and frees with rt_msg_unref) *m. */
rt_msg *rt_msg_alloc(size_t cap);
int rt_msg_grow(rt_msg **m, size_t cap);
int rt_msg_finish(rt_msg **m, size_t len);
static inline unsigned char *rt_msg_bytes(rt_msg *m) { return m->buf.data; }
/* A message built from a body (an AMQP data section of len bytes) and an
 * optional subject, for the broker's own use (dead letters, admin publish). */
int rt_msg_from_body(const void *body, size_t len, const char *subject, bool durable, rt_msg **out);
static inline rt_msg *rt_msg_ref(rt_msg *m) { return (rt_msg *)sv_buf_ref(&m->buf); }
static inline void rt_msg_unref(rt_msg *m)
{
    if (m)
        sv_buf_unref(&m->buf);
}
/* Records the routing key once, before the message is shared. */
int rt_msg_set_rkey(rt_msg *m, const char *key);
/* The wire form of a delivery of m with delivery-count dc: if the header is
 * unchanged the caller sends data as is (*hdr_len = 0, *rest_off = 0);
 * otherwise hdr receives a fresh header section (at most RT_HDR_MAX bytes)
 * and the caller sends hdr then data + *rest_off. */
#define RT_HDR_MAX 64
void rt_msg_wire(const rt_msg *m, uint32_t dc, char *hdr, size_t *hdr_len, size_t *rest_off);
/* The application properties as a pn_data_t (NULL if none), for headers
 * exchanges. Caller frees with pn_data_free. */
struct pn_data_t *rt_msg_app_props(const rt_msg *m);

/* Dead-lettering records the death in the message, as RabbitMQ 4 does for
 * AMQP 1.0 (deaths.c): message annotation x-opt-deaths, an array of maps
 * newest first, one per (queue, reason) with a count; x-first-death-* once,
 * x-last-death-* each time; x-exchange and x-routing-key name where it goes
 * now; the header's ttl is taken off (kept in the entry as ttl). */
typedef enum rt_death_reason { RT_DEATH_REJECTED, RT_DEATH_EXPIRED, RT_DEATH_MAXLEN } rt_death_reason;
const char *rt_death_reason_name(rt_death_reason r);
#define RT_DEATHS_MAX 64 /* entries kept in x-opt-deaths; the oldest go first */
typedef struct rt_death {
    const char *queue; /* the queue it leaves */
    rt_death_reason reason;
    const char *rkey;     /* the routing key it had there */
    const char *exchange; /* the dead-letter exchange it goes to now */
    const char *key;      /* the routing key it goes on under */
    int64_t now_ms;       /* wall clock, ms since the epoch */
} rt_death;
/* A copy of m with the death d recorded (its routing key set to d->key):
 * only the message annotations and the header's ttl are rewritten, every
 * other section is kept byte for byte. -EBADMSG if m's sections or its
 * x-opt-deaths cannot be read (the caller forwards m unchanged), -ENOMEM. */
int rt_msg_dead(const rt_msg *m, const rt_death *d, rt_msg **out);
/* Whether dead-lettering m (its death recorded) into queue would close a
 * cycle with no rejection in it, as RabbitMQ judges: queue is in its
 * history and no entry up to that one (newest first) is `rejected`. Such
 * a message is dropped rather than sent round again. */
bool rt_msg_death_cycle(const rt_msg *m, const char *queue);

/* ------------------------------------------------------------ queue records */

typedef enum rt_overflow { RT_DROP_HEAD, RT_REJECT_PUBLISH } rt_overflow;

typedef struct rt_qargs {
    bool durable, exclusive, auto_delete;
    int64_t max_length;       /* ready messages; -1: unbounded */
    int64_t max_length_bytes; /* ready bytes; -1: unbounded */
    rt_overflow overflow;
    int64_t message_ttl; /* ms; -1: none */
    int64_t expires;     /* ms unused (no consumers) before the queue deletes itself; -1: never */
    bool has_dlx, has_dlk;
    char dlx[RT_NAME_MAX + 1]; /* dead-letter exchange ("" is the default exchange) */
    char dlk[RT_NAME_MAX + 1]; /* dead-letter routing key; none: the message's own */
} rt_qargs;

void rt_qargs_init(rt_qargs *a);
/* Parses a RabbitMQ-style argument ("x-max-length", "x-overflow", ...)
 * given as a string or integer; -EINVAL with a reason in err. */
int rt_qargs_set(rt_qargs *a, const char *name, const char *sval, int64_t ival, bool is_int, char *err, size_t errlen);

/* A queue as the directory knows it. Read-only to everyone but the
 * manager; freed by sv_retire after it leaves the directory. */
typedef struct rt_queue {
    char *name;
    rt_qargs args;
    sv_pid owner;                   /* exclusive owner (a connection), or none */
    int scheduler;                  /* where its process runs: SV_SCHED_ON(i) or SV_SCHED_ANY */
    _Atomic(sv_pid *) pid;          /* the queue process; swapped when it restarts */
    atomic_int refs;                /* the manager's, plus one per running queue process */
    atomic_bool slow;               /* consumed and behind: publishers pause (see rt_queue_slow) */
    atomic_bool exclusive_consumer; /* an exclusive consumer has it (AMQP 0-9-1) */
    atomic_bool loading;            /* its log is being read back: the counters are not whole yet (RT_Q_COUNT waits) */
    /* Live counters, written by the queue process, read by anyone. */
    atomic_uint_fast64_t ready, unacked, consumers, bytes;
    atomic_uint_fast64_t published, delivered, acked;
    atomic_uint_fast64_t corrupt; /* damaged places found in its log at the last recovery */
    bool fresh; /* declared just now (not found again): its first start waits until its log is on disk */
} rt_queue;

/* The queue process's pid now (SV_PID_NONE while it restarts). */
sv_pid rt_queue_pid(const rt_queue *q);
/* Whether the queue confirms a publish of m: one that may refuse messages
 * (reject-publish with a bound) has a verdict to give, and a durable one
 * confirms a persistent message once it is on disk. Otherwise the queue
 * takes whatever its mailbox takes, so a publisher may count m accepted
 * once the queue's mailbox has it. */
static inline bool rt_queue_confirms(const rt_queue *q, const rt_msg *m)
{
    return (m->durable && q->args.durable && !q->args.exclusive) ||
           (q->args.overflow == RT_REJECT_PUBLISH && (q->args.max_length >= 0 || q->args.max_length_bytes >= 0));
}
/* Consumed, and a backlog past a few thousand: publishers to it should
 * hold back for a moment, so producers do not run far ahead of consumers. */
static inline bool rt_queue_slow(const rt_queue *q)
{
    return atomic_load_explicit(&((rt_queue *)q)->slow, memory_order_relaxed);
}

/* ---------------------------------------------------- exchanges, bindings */

typedef enum rt_xtype { RT_DIRECT, RT_FANOUT, RT_TOPIC, RT_HEADERS } rt_xtype;
const char *rt_xtype_name(rt_xtype t);
int rt_xtype_parse(const char *s, rt_xtype *t);

typedef struct rt_exchange rt_exchange;

/* A binding, immutable once made; shared by successive binding sets. */
typedef struct rt_binding {
    char *key;              /* routing key or pattern */
    bool to_exchange;       /* destination is an exchange (e2e binding) */
    char *dest;             /* queue or exchange name */
    char *args;             /* arguments as text ("" if none): part of its identity */
    struct rt_hdrmatch *hm; /* headers exchanges: parsed arguments */
} rt_binding;

/* An immutable set of an exchange's bindings; replaced whole on change. */
typedef struct rt_bindset {
    uint32_t n;
    rt_binding *b[];
} rt_bindset;

struct rt_exchange {
    char *name;
    rt_xtype type;
    bool durable, auto_delete, internal;
    _Atomic(rt_bindset *) bindings;
};

/* ------------------------------------------------------ topic and headers */

/* AMQP 0-9-1 topic matching: words separated by '.', '*' one word, '#'
 * zero or more words. */
bool rt_topic_match(const char *pattern, const char *key);

typedef struct rt_hdrmatch rt_hdrmatch;
/* Binding arguments for a headers exchange: a pn_data_t map of header name
 * to value with an optional "x-match" of "all" (default) or "any"; keys
 * starting with "x-" other than x-match are ignored. */
int rt_hdrmatch_new(struct pn_data_t *args, rt_hdrmatch **out, char *err, size_t errlen);
void rt_hdrmatch_free(rt_hdrmatch *h);
/* Matches against a message's application properties: a pn_data_t
 * positioned on the map (as rt_msg_app_props leaves it), or NULL. */
bool rt_hdrmatch_test(const rt_hdrmatch *h, struct pn_data_t *app_props);
/* The arguments again, as "x-match=all,a=1" (for listings). */
void rt_hdrmatch_str(const rt_hdrmatch *h, char *buf, size_t len);
/* The arguments again, as the AMQP map they were given as (x-match
 * first), written into out: for definitions and the admin API. */
int rt_hdrmatch_put(const rt_hdrmatch *h, struct pn_data_t *out);

/* -------------------------------------------------------------- directory */

/* Lock-free lookups, valid until the end of the caller's turn. */
rt_queue *rt_queue_find(const char *name);
rt_exchange *rt_exchange_find(const char *name);
/* Every queue / exchange, for listings (the admin API). fn returns false to stop. */
void rt_queue_each(bool (*fn)(rt_queue *q, void *ctx), void *ctx);
void rt_exchange_each(bool (*fn)(rt_exchange *x, void *ctx), void *ctx);

/* Where a message goes from exchange x (NULL: the default exchange) with
 * routing key key: up to max distinct queues in out; returns how many (may
 * exceed max: the caller sizes again). Follows exchange-to-exchange
 * bindings, each exchange once. */
int rt_route(const rt_exchange *x, const rt_msg *m, const char *key, rt_queue **out, int max);

/* ---------------------------------------------------------- the manager */

/* The routing subtree for the broker's supervision tree: the manager (owner
 * of every definition) and the queue supervisor. */
int rt_start_fn(sv_proc *sup, const sv_spawn_opts *opts, void *arg, sv_pid *pid);

/* After sv_node_stop: frees the directory (queues, exchanges, bindings). */
void rt_cleanup(void);

typedef struct rt_config {
    uint32_t queue_mailbox;   /* mailbox bound of a queue process */
    uint32_t queue_max_batch; /* deliveries per batch to a consumer */
    uint64_t memory_limit;    /* bytes of messages queues may hold; 0: 40% of RAM */
    /* The message store (storage.*): durable queues keep their persistent
     * messages in data_dir/queues (NULL: no store, nothing survives). */
    const char *data_dir;
    int store_threads;        /* disk I/O threads */
    uint64_t segment_size;    /* bytes per log segment file */
    uint64_t queue_window;    /* bytes of a durable queue's backlog kept in memory */
    uint64_t disk_free_limit; /* below this much free space: the disk alarm */
} rt_config;

/* Bytes of messages held by all queues (ready and unsettled), and whether
 * that is over the memory limit: publishers then get no credit until it
 * falls below 90% of it. Cheap; callable from any thread. */
uint64_t rt_held_bytes(void);
bool rt_memory_alarm(void);
/* The disk holding the data directory is (nearly) full: publishers get no
 * credit until there is room again. */
bool rt_disk_alarm(void);
static inline bool rt_alarm(void) { return rt_memory_alarm() || rt_disk_alarm(); }

/* Requests to the manager (name "rt_manager"), answered with status 0 or a
 * negative code; from a process use sv_call_async with rt_req_*. */
typedef enum rt_req_kind {
    RT_REQ_DECLARE_QUEUE = 0x52540001, /* payload: rt_req_queue; reply: rt_req_queue (name filled) */
    RT_REQ_DELETE_QUEUE,               /* payload: rt_req_queue (if_unused, if_empty) */
    RT_REQ_DECLARE_EXCHANGE,           /* payload: rt_req_exchange */
    RT_REQ_DELETE_EXCHANGE,            /* payload: rt_req_exchange */
    RT_REQ_BIND,                       /* payload: rt_req_bind (+ headers args encoded after) */
    RT_REQ_UNBIND,
    RT_REQ_PURGE_QUEUE,
} rt_req_kind;

typedef struct rt_req_queue {
    char name[RT_NAME_MAX + 1]; /* empty: generate one ("amq.gen-...") */
    rt_qargs args;
    sv_pid owner;             /* exclusive queues: the owning connection */
    int scheduler;            /* where to run it (the declarer's: SV_SCHED_ON(i)); 0: anywhere */
    bool passive;             /* only check it exists */
    bool if_unused, if_empty; /* delete */
    bool exists;              /* in the reply: it existed already */
} rt_req_queue;

typedef struct rt_req_exchange {
    char name[RT_NAME_MAX + 1];
    rt_xtype type;
    bool durable, auto_delete, internal, passive;
    bool if_unused;
} rt_req_exchange;

typedef struct rt_req_bind {
    char source[RT_NAME_MAX + 1];
    char dest[RT_NAME_MAX + 1];
    char key[RT_NAME_MAX + 1];
    bool to_exchange;
    uint32_t args_len; /* encoded pn_data map of binding arguments after this struct */
} rt_req_bind;

sv_msg *rt_req(rt_req_kind kind, const void *payload, size_t len);
/* From an inbox: one request, one answer. reply_out (may be NULL) receives
 * the reply payload (for DECLARE_QUEUE: the rt_req_queue with the name). */
int rt_call(sv_proc *inbox, rt_req_kind kind, const void *payload, size_t len, void *reply_out, size_t reply_len,
            int timeout_ms);
sv_pid rt_manager(void);

/* ------------------------------------------------------ the queue protocol */

/* Messages between connections and queue processes. All batches carry
 * rt_msg pointers whose references travel with the message. */
enum {
    RT_Q_PUBLISH = 0x52510001, /* conn -> queue: rt_pub_batch */
    RT_Q_CONFIRM,              /* queue -> conn: rt_confirm_batch */
    RT_Q_CONSUME,              /* conn -> queue: rt_consume */
    RT_Q_CREDIT,               /* conn -> queue: rt_credit */
    RT_Q_CANCEL,               /* conn -> queue: rt_credit (consumer only) */
    RT_Q_SETTLE,               /* conn -> queue: rt_settle_batch */
    RT_Q_DELIVER,              /* queue -> conn: rt_deliver_batch */
    RT_Q_DRAINED,              /* queue -> conn: rt_credit (credit: what was left) */
    RT_Q_CONSUMER_GONE,        /* queue -> conn: rt_credit (consumer; status in msg: why) */
    RT_Q_PURGE,                /* a call to the queue: drop its ready messages; reply: uint64_t how many */
    RT_Q_TOUCH,                /* conn -> queue (no payload): declared again, which is a use (x-expires) */
    RT_Q_COUNT,                /* a call to the queue: its counts, once its log is read back; reply: rt_qcount */
};

typedef struct rt_qcount {
    uint64_t ready, consumers;
} rt_qcount;

typedef struct rt_pub {
    rt_msg *m;
    uint64_t tag; /* the publisher's own reference, echoed in the confirm */
    bool confirm; /* it wants one (rt_queue_confirms): else accepted once sent */
} rt_pub;
typedef struct rt_pub_batch {
    uint32_t n;
    uint32_t confirms; /* how many entries want a confirm */
    rt_pub p[];
} rt_pub_batch;

typedef enum rt_outcome { RT_ACCEPTED, RT_REJECTED, RT_RELEASED, RT_MODIFIED } rt_outcome;

/* Why a publish was refused. */
typedef enum rt_why { RT_WHY_NONE, RT_WHY_FULL, RT_WHY_STORE } rt_why;

typedef struct rt_confirm {
    uint64_t tag;
    uint8_t outcome; /* rt_outcome: RT_ACCEPTED, RT_RELEASED, or RT_REJECTED (see why) */
    uint8_t why;     /* rt_why: RT_WHY_FULL (reject-publish), RT_WHY_STORE (cannot be logged) */
} rt_confirm;
typedef struct rt_confirm_batch {
    uint32_t n;
    rt_confirm c[];
} rt_confirm_batch;

typedef struct rt_consume {
    uint32_t consumer; /* the connection's id for the link */
    uint32_t credit;
    bool presettled;   /* at most once: forget each message as it is sent */
    bool exclusive_ok; /* the connection owns the queue (exclusive) */
    bool exclusive;    /* the only consumer: refused (RT_Q_CONSUMER_GONE, -EPERM) if there are
                        * others, and others are refused while it consumes */
    bool get;          /* a 0-9-1 Basic.Get's: no consumer as RabbitMQ counts them (consumer
                        * count, exclusive use, auto-delete), but a use for x-expires */
} rt_consume;

typedef struct rt_credit {
    uint32_t consumer;
    uint32_t credit; /* RT_Q_CREDIT: credit to add; RT_Q_DRAINED: credit left unused */
    bool drain;
} rt_credit;

typedef struct rt_settle {
    uint64_t id;     /* the queue's delivery id */
    uint8_t outcome; /* rt_outcome */
    bool failed;     /* modified: delivery-failed (delivery-count + 1) */
    bool elsewhere;  /* modified: undeliverable-here (not to this consumer again) */
} rt_settle;
typedef struct rt_settle_batch {
    uint32_t n;        /* first, as in every batch */
    uint32_t consumer; /* unused: a delivery id names its message */
    rt_settle s[];
} rt_settle_batch;

typedef struct rt_delivery {
    rt_msg *m;
    uint64_t id; /* settle with this */
    uint32_t delivery_count;
} rt_delivery;
typedef struct rt_deliver_batch {
    uint32_t consumer;
    uint32_t n;
    rt_delivery d[];
} rt_deliver_batch;

/* ---------------------------------------------- JSON and AMQP values */

/* JSON (jansson) values as AMQP values and back, for queue and binding
 * arguments in definitions and for message headers in the admin API. */
struct json_t;
/* Writes v into d: strings as strings, integers as longs, reals as
 * doubles, true/false, null, objects as maps with string keys, arrays as
 * lists. -EINVAL (with a reason) for nesting deeper than 16. */
int rt_json_put(struct pn_data_t *d, const struct json_t *v, char *err, size_t errlen);
/* The value d is positioned on as JSON (a new reference; NULL when out of
 * memory): numbers as numbers, strings and symbols as strings, binary as
 * a string if it is UTF-8 and as base64 otherwise, timestamps as
 * milliseconds, maps as objects (keys as text), lists and arrays as arrays. */
struct json_t *rt_json_get(struct pn_data_t *d);

/* The message store's work since the node started: log syncs
 * (fdatasync) and bytes written to logs. */
typedef struct rt_store_stat {
    uint64_t syncs, bytes_written;
} rt_store_stat;
void rt_store_stats(rt_store_stat *out);

/* ------------------------------------------------------------ definitions */

/* Writes a reason into err (printf-style) and returns -EINVAL: how the
 * definitions parsers, here and in broker/, refuse bad input. */
int rt_bad(char *err, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* The definitions of one broker (queues, exchanges, bindings) in
 * RabbitMQ's definitions format, as `rabbitmqctl export_definitions` and
 * the management API write them, so documents move between the two.
 *
 * Shared by the admin API (GET/POST /api/definitions) and durability
 * (which persists definitions as this same document): export reads the
 * lock-free directory, so call it from a process (a scheduler thread);
 * parse is pure and turns a document into the manager's own requests
 * (RT_REQ_DECLARE_EXCHANGE, RT_REQ_DECLARE_QUEUE, RT_REQ_BIND payloads),
 * which the caller applies in that order with rt_call or sv_call_async.
 * Exclusive queues belong to a connection and are never exported; the
 * built-in amq.* exchanges and the default exchange are not either. The
 * arrays are sorted by name (bindings by source, destination, key), so two
 * brokers with the same definitions export the same document. */
typedef struct rt_def_bind {
    rt_req_bind *req; /* the RT_REQ_BIND payload: the struct, then req->args_len bytes of arguments */
    size_t len;       /* sizeof *req + req->args_len */
} rt_def_bind;

typedef struct rt_defs {
    rt_req_exchange *exchanges;
    size_t nexchanges;
    rt_req_queue *queues;
    size_t nqueues;
    rt_def_bind *bindings;
    size_t nbindings;
} rt_defs;

/* {"queues": [...], "exchanges": [...], "bindings": [...]}, with vhost "/"
 * in each entry; durable_only leaves out transient queues and exchanges and
 * the bindings that touch them. NULL when out of memory. */
struct json_t *rt_definitions_export(bool durable_only);
/* Reads the "queues", "exchanges" and "bindings" arrays of doc (each may
 * be missing; other keys are ignored, so a whole RabbitMQ export is fine).
 * -EINVAL with a reason naming the entry ("queues[2].arguments: ...") in
 * err; on success *out holds the requests, freed with rt_defs_free. */
int rt_definitions_parse(const struct json_t *doc, rt_defs *out, char *err, size_t errlen);
void rt_defs_free(rt_defs *d);
/* One entry of a document as its request (the admin API's PUT and POST
 * bodies are such entries). name, if not NULL, stands in for the entry's
 * "name" (it comes from the URL); where prefixes the reasons in err. */
int rt_queue_req_json(const struct json_t *o, const char *name, rt_req_queue *r, const char *where, char *err,
                      size_t errlen);
int rt_exchange_req_json(const struct json_t *o, const char *name, rt_req_exchange *r, const char *where, char *err,
                         size_t errlen);
/* out->req is allocated (free it); its arguments are encoded after it. */
int rt_binding_req_json(const struct json_t *o, rt_def_bind *out, const char *where, char *err, size_t errlen);

/* One queue, exchange or binding as its definitions entry (new reference). */
struct json_t *rt_queue_json(const char *name, const rt_qargs *a);
struct json_t *rt_qargs_json(const rt_qargs *a); /* the "arguments" object */
struct json_t *rt_exchange_json(const rt_exchange *x);
struct json_t *rt_binding_json(const char *source, const rt_binding *b);

#endif
