/* amqp_internal.h — shared by the files of amqp/ only. */
#ifndef PLEXUS_AMQP_INTERNAL_H
#define PLEXUS_AMQP_INTERNAL_H

#include <netinet/in.h>
#include <proton/transport.h>

#include "amqp/amqp.h"
#include "amqp/amqp091.h"

/* sasl.c: the outcome of one connection's SASL exchange. */
typedef struct amqp__sasl {
    const amqp_config *cfg;
    struct sockaddr_storage peer;
    char user[128];     /* who logged in */
    char refused[128];  /* who was refused, for the log */
    const char *mech;   /* the mechanism tried */
    char external[128]; /* TLS: the CN of the client's verified certificate, for EXTERNAL ("": none) */
    bool done, ok;
    uint64_t hold_until; /* ms (the loop's clock): a refused login's answer waits until then */
    bool hold_decided;   /* hold_until was set for this refusal */
} amqp__sasl;

/* Installs Plexus's server-side SASL (PLAIN against the broker's users,
 * ANONYMOUS if allowed) on t. s must outlive t. */
void amqp__sasl_setup(pn_transport_t *t, amqp__sasl *s);

/* header.c: what a client's 8-byte protocol header asks for. */
typedef enum amqp__hdr_kind {
    AMQP__HDR_OTHER,   /* not an AMQP header, or a version nobody serves */
    AMQP__HDR_AMQP,    /* AMQP 0 1 0 0: AMQP 1.0 */
    AMQP__HDR_TLS,     /* AMQP 2 1 0 0: TLS before AMQP 1.0 */
    AMQP__HDR_SASL,    /* AMQP 3 1 0 0: SASL before AMQP 1.0 */
    AMQP__HDR_AMQP091, /* AMQP 0 0 9 1 */
} amqp__hdr_kind;

amqp__hdr_kind amqp__header_classify(const uint8_t h[8]);
const char *amqp__header_name(amqp__hdr_kind k);

/* frames.c: the check of what a client sends, before proton reads it:
 * framing, field types, and which performative may come in which state
 * (the connection, session and link state machines, as the client drives
 * them). */
typedef struct amqp__fcheck {
    uint8_t phase;
    uint8_t hdr[8], hlen; /* protocol or frame header being read */
    bool sasl;            /* frames are SASL frames */
    bool checked;         /* the current frame's performative passed */
    bool opened;          /* the client's open came */
    uint8_t refused[8];   /* a protocol header not served here (-EPROTONOSUPPORT) */
    bool amqp091;         /* ... and it is AMQP 0-9-1, first thing: for conn091.c */
    uint8_t reply[8];     /* the header to answer it with */
    uint32_t skip, body;  /* extended header and body bytes left in the frame */
    uint32_t max_frame;
    uint32_t max_handles; /* links attached at once (0: no bound) */
    uint32_t nhandles;
    char *pbuf; /* a performative split across reads */
    size_t plen, pcap;
    struct pn_data_t *data;
    sv_map ends; /* amqp__fcheck_end: the client's sessions and links */
} amqp__fcheck;

/* An entry of amqp__fcheck.ends: k1 = channel + 1; k2 = 0 for the session,
 * handle + 1 for a link attached on it. */
typedef struct amqp__fcheck_end {
    uint64_t k1, k2;
    bool receiver; /* a link's role, as the client attached it */
} amqp__fcheck_end;

void amqp__fcheck_init(amqp__fcheck *v, uint32_t max_frame);
void amqp__fcheck_free(amqp__fcheck *v);
/* 0; or <0 with the AMQP condition (*cond) and reason (err) to close the
 * connection with; or -EPROTONOSUPPORT: the protocol header in v->refused
 * is not served here: answer with v->reply and close (no frames). */
int amqp__fcheck_feed(amqp__fcheck *v, const char *p, size_t n, const char **cond, char *err, size_t len);
/* encoding.c: the size of the encoded value at p if every size it
 * declares adds up; 0 if the n bytes end inside it; -EBADMSG if not. */
ssize_t amqp__enc_size(const void *p, size_t n);

/* ------------------------------------------------------------ connections */

#include <proton/connection_driver.h>
#include <uv.h>

/* Messages for one queue process, sent in order: batches being filled this
 * round, then whatever its mailbox refused, retried until it has room. */
typedef struct amqp__outbox {
    uint64_t k1, k2; /* the queue process's pid */
    sv_pid pid;
    sv_msg *pub;         /* publish batch being filled */
    sv_msg *settle;      /* settle batch being filled */
    sv_msg *head, *tail; /* ready to send, oldest first (linked by ->next) */
} amqp__outbox;

/* What the connection remembers of a publish until every queue confirms. */
typedef struct amqp__tag {
    uint64_t k1, k2;  /* k2: the tag */
    pn_delivery_t *d; /* NULL: presettled by the client, or its link is gone */
    struct amqp__link *l;
    uint32_t remaining; /* queues yet to confirm */
    uint32_t size;
    uint8_t outcome; /* the worst so far */
    uint8_t why;     /* rt_why of a rejection */
} amqp__tag;

/* A consumer's entry, part of its link; linked into its connection's
 * entry while the link consumes. */
typedef struct amqp__reg_con {
    struct amqp__reg_con *prev, *next;
    struct amqp__reg *r; /* NULL: not linked */
    uint16_t channel;
    bool ack_required, exclusive;
    char tag[128];
    char queue[RT_NAME_MAX + 1];
    atomic_uint credit;
} amqp__reg_con;

typedef enum { AMQP__PUB, AMQP__CON } amqp__link_kind;

struct amqp__link;
/* An entry of the consumers map (k2: consumer id) and the calls map (k2:
 * a manager call's ref). */
typedef struct amqp__ref {
    uint64_t k1, k2;
    struct amqp__link *l;
    rt_req_kind kind; /* calls: what was asked */
} amqp__ref;

typedef struct amqp__link {
    amqp__link_kind kind;
    pn_link_t *link; /* NULL once proton has finalised it */
    struct amqp__conn *c;
    int refs;      /* proton's link, plus pending manager calls */
    bool attached; /* we answered the attach */
    bool closed;   /* detached, by either side */
    bool freed;    /* handed back to proton (pn_link_free) */
    /* publishers (client -> broker) */
    amqp_addr addr;
    bool relay;            /* null target: each message names its own */
    uint32_t inflight;     /* routed, not yet confirmed by every queue */
    uint64_t avg_size;     /* moving average of message sizes, for byte-sized credit */
    uint64_t paused_until; /* ms: a queue it feeds asked publishers to slow down */
    char *relay_ok;        /* the relay: the last exchange ("" default) the user may write to */
    rt_msg *cur;           /* the delivery being read, if it spans frames */
    size_t cur_len, cur_cap;
    /* consumers (broker -> client) */
    uint32_t id; /* our consumer id, known to the queue */
    sv_pid qpid;
    char qname[RT_NAME_MAX + 1];
    uint32_t outstanding; /* credit passed to the queue and not yet used */
    bool presettled;      /* at most once */
    bool dynamic;         /* its queue was made for it and goes with it */
    bool consuming;       /* RT_Q_CONSUME sent */
    bool drain_pending;   /* a drain went to the queue; its RT_Q_DRAINED is due */
    bool owns_queue;      /* a dynamic or subscription queue, deleted if never consumed */
    uint8_t step;         /* attach progress: what the manager is doing for it */
    void *bind_req;       /* subscriptions: the binding to make once the queue exists */
    size_t bind_len;
    amqp__reg_con con_reg;          /* its entry for the admin API, while consuming */
    struct amqp__link *prev, *next; /* every link of the connection */
} amqp__link;

/* registry.c: the table of open connections (for amqp_conn_list). */
#define AMQP__TAG_CLOSE 0x414d5101 /* to a connection: close, the payload is the reason */

typedef struct amqp__counts {
    uint64_t recv_oct, send_oct, recv_cnt, send_cnt;
    uint32_t links;
} amqp__counts;

struct amqp__reg_chan; /* registry.c's: one per open channel */

typedef struct amqp__reg {
    struct amqp__reg *prev, *next;
    amqp_conn_info info; /* strings and fixed fields: under the table's lock */
    atomic_uint_fast64_t recv_oct, send_oct, recv_cnt, send_cnt;
    atomic_uint links;
    struct amqp__reg_chan *chans; /* under the lock; freed with the entry */
    amqp__reg_con *cons;          /* under the lock */
} amqp__reg;

void amqp__reg_add(amqp__reg *r, sv_pid pid, const char *name);
void amqp__reg_remove(amqp__reg *r);
void amqp__reg_opened(amqp__reg *r, const char *user, const char *container, const char *mech);
void amqp__reg_protocol(amqp__reg *r, const char *protocol); /* "AMQP 1.0" until told otherwise */
/* The connection's own counts, published once per round. */
void amqp__reg_flush(amqp__reg *r, const amqp__counts *n);
/* A channel (session) opened / closed: 0 or -ENOMEM. Each is bounded by
 * the connection's channel limit; amqp__reg_remove drops what is left. */
int amqp__reg_chan_open(amqp__reg *r, uint16_t number);
void amqp__reg_chan_close(amqp__reg *r, uint16_t number);
/* A consumer starts (e filled in but for the links) / ends (no-op if not
 * linked). amqp__reg_remove unlinks what is left. */
void amqp__reg_con_add(amqp__reg *r, amqp__reg_con *e);
void amqp__reg_con_remove(amqp__reg_con *e);

typedef struct amqp__conn {
    sv_proc *self;
    const amqp_config *cfg;
    uv_loop_t *loop;
    int fd;         /* the socket, non-blocking */
    uv_poll_t poll; /* readable/writable, as update_poll decides */
    int events;     /* what poll watches now */
    uv_timer_t timer;
    int handles; /* open libuv handles; the struct is freed with the last */
    pn_connection_driver_t d;
    amqp__fcheck fv;
    amqp__sasl sasl;
    char peer[64];
    char name[160]; /* "peer -> local", for logs and the admin API */
    bool refuse;    /* over max_connections: say so in close */
    bool reading;   /* wants input */
    bool writing;   /* proton has output the socket would not take: wait for writable */
    bool finished, counted, lingering;
    bool rejecting;     /* a bad frame came: closing, reading no more */
    bool credit_held;   /* some publisher is owed credit (memory alarm, slow-down) */
    uint64_t pub_bytes; /* publishes read and not yet taken by every queue */
    bool idle_off;      /* reading held back (amqp__pub_may_read): no idle timeout */
    size_t wlen;        /* output waiting for the socket */
    /* Deliveries from queues not yet handed to proton: fed as the socket
     * drains, so proton (which copies each one) holds little at a time. */
    struct amqp__out *out;
    uint32_t out_head, out_len, out_cap;
    uint64_t next_tag;
    sv_map tags;       /* amqp__tag */
    sv_map outboxes;   /* amqp__outbox */
    sv_map consumers;  /* amqp__ref: consumer id -> link */
    sv_map calls;      /* amqp__ref: manager call ref -> link */
    amqp__link *links; /* all, so none outlives the connection */
    uint32_t next_consumer;
    uint16_t next_session; /* AMQP 1.0 sessions, numbered for the admin API */
    uint32_t nlinks;
    uint64_t deadline; /* proton's next tick, ms */
    bool retry_armed;
    amqp__reg reg;         /* its entry in the table of open connections */
    amqp__counts counts;   /* bytes and messages, kept here, published to reg each round */
    struct amqp__c91 *c91; /* set once the client spoke AMQP 0-9-1: conn091.c has the connection */
    struct amqp__tls *tls; /* a TLS connection's session (tls.c); NULL on the plain port */
} amqp__conn;

/* The start argument of a connection: the accepted fd, with this bit set
 * when it came from the TLS listener (fds stay far below it). */
#define AMQP__FD_TLS (1 << 30)

/* address.c */
int amqp__queue_args(pn_data_t *props, rt_qargs *a, char *err, size_t errlen);

/* connection.c */
extern const sv_server_ops amqp__conn_ops;
/* The start function of a connection child: arg carries the accepted fd. */
int amqp__conn_start(sv_proc *sup, const sv_spawn_opts *opts, void *arg, sv_pid *pid);
extern atomic_uint amqp__nconns;
void amqp__conn_configure(const amqp_config *cfg);
void amqp__conn_work(amqp__conn *c); /* a round: proton's events handled, then the round's work sent */
/* The connection's timer: a round of whichever front end has it. */
void amqp__conn_on_timer(uv_timer_t *t);
/* The connection has ended: its process stops (terminate closes the socket). */
void amqp__conn_finish(amqp__conn *c);
/* Closes the connection with an AMQP error condition and its text. */
void amqp__conn_close_with(amqp__conn *c, const char *cond, const char *desc);
/* Whether the connection's user may do what on a resource of its vhost
 * (cfg->perm; everything when there is none): 0, or -EACCES with the
 * reason in why. */
int amqp__perm(amqp__conn *c, amqp_perm what, const char *kind, const char *name, char *why, size_t len);
/* A login was refused: its answer is held back for cfg->auth_delay's
 * delay (each front end calls this once per refusal, then stops reading). */
void amqp__login_refused(amqp__conn *c);
/* While a refusal is held back: reads and writes nothing, sets the timer
 * for the end of the hold and returns true (the round ends there). Each
 * front end's round starts with it. */
bool amqp__login_held(amqp__conn *c);

/* socket.c */
/* Reads what the socket has into buf (plaintext on a TLS connection), as
 * read() does: bytes (fewer than n: nothing more for now), 0 at the end
 * of input, -1 with errno (EAGAIN: nothing yet). Both front ends read
 * through it. */
ssize_t amqp__sock_recv(amqp__conn *c, void *buf, size_t n);
/* What the socket says (a uv_poll status and events), handled by
 * whichever front end has the connection. */
void amqp__sock_event(amqp__conn *c, int status, int events);
void amqp__sock_read_start(amqp__conn *c);
void amqp__sock_read_stop(amqp__conn *c);
void amqp__sock_update_poll(amqp__conn *c); /* watch for what the connection wants now */
/* Sends what the socket takes of p (n > 0) and counts it: bytes sent, 0
 * when the socket is full, -errno when it is broken. */
ssize_t amqp__sock_send(amqp__conn *c, const void *p, size_t n);
void amqp__sock_write_out(amqp__conn *c); /* proton's output to the socket, as much as it takes */
void amqp__sock_linger(amqp__conn *c);    /* half-close, drain briefly, then close */
void amqp__sock_close(amqp__conn *c);     /* the handles; the last one frees c */

/* tls.c: TLS below both front ends (see there). start: the session for a
 * connection from the TLS listener (ctx: amqp_config.tls_ctx); it adds a
 * handle (a timer) to c. recv and send behave as amqp__sock_recv and
 * amqp__sock_send. */
typedef struct amqp__tls amqp__tls;
int amqp__tls_start(amqp__conn *c, void *ctx);
ssize_t amqp__tls_recv(amqp__conn *c, void *buf, size_t n);
ssize_t amqp__tls_send(amqp__conn *c, const void *p, size_t n);
int amqp__tls_poll_events(amqp__conn *c, int ev); /* what to watch for, given what the front end wants */
bool amqp__tls_read_blocked(amqp__conn *c);       /* reading waits for the socket to be writable */
bool amqp__tls_failed(amqp__conn *c);             /* the handshake or the session failed (logged) */
void amqp__tls_broken(amqp__conn *c, int status); /* the socket broke (poll status): why, if in the handshake */
void amqp__tls_after_round(amqp__conn *c);        /* reads on if OpenSSL holds input */
void amqp__tls_shutdown(amqp__conn *c);           /* close_notify; nothing more in or out */
void amqp__tls_close(amqp__conn *c, uv_close_cb cb);
void amqp__tls_free(amqp__conn *c);

/* outbox.c */
bool amqp__outbox_flush(amqp__conn *c); /* true: something still waits (a mailbox was full) */
void amqp__outbox_free_all(amqp__conn *c);
/* Queues m for pid after anything already waiting for it (m is taken). */
void amqp__outbox_push(amqp__conn *c, sv_pid pid, sv_msg *m);
/* The publish / settle batch being filled for pid, with room for one more.
 * Entries the queue will not confirm (rt_queue_confirms) count as accepted
 * once its mailbox takes the batch. */
rt_pub_batch *amqp__outbox_pub(amqp__conn *c, sv_pid pid);
rt_settle_batch *amqp__outbox_settle(amqp__conn *c, sv_pid pid);
/* A publish of m (the connection's tag) added to each of the n queues'
 * batches, for both front ends: how many have it (the rest: no memory).
 * *paused_until (ms) moves out by AMQP__SLOW_DOWN_MS when a queue is
 * consumed and behind (rt_queue_slow). */
#define AMQP__SLOW_DOWN_MS 5
uint32_t amqp__outbox_publish(amqp__conn *c, rt_queue **qs, int n, rt_msg *m, uint64_t tag, uint64_t *paused_until);
/* A new link context for a proton link (one reference: proton's). */
amqp__link *amqp__link_new(amqp__conn *c, pn_link_t *link, amqp__link_kind kind);
/* A manager call for l; its reply goes to pub_reply / con_reply. */
int amqp__call_manager(amqp__conn *c, amqp__link *l, rt_req_kind kind, const void *req, size_t len);
void amqp__link_unref(amqp__link *l);
/* Refuses an attach that has no context (no memory, too many links). */
void amqp__link_refuse(pn_link_t *link, const char *cond, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* Whether the connection's user may do what on the resource; if not,
 * refuses l with amqp:unauthorized-access and the reason (the connection
 * stays up). */
bool amqp__link_may(amqp__link *l, amqp_perm what, const char *kind, const char *name);
/* Refuses or ends a link with an AMQP error condition. */
void amqp__link_fail(amqp__link *l, const char *cond, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* publish.c: links on which the client sends. */
void amqp__pub_attach(amqp__conn *c, pn_link_t *link);
void amqp__pub_delivery(amqp__conn *c, amqp__link *l, pn_delivery_t *d);
void amqp__pub_confirm(amqp__conn *c, sv_msg *m);
/* The queue's mailbox took these publishes, and it confirms none. */
void amqp__pub_taken(amqp__conn *c, const rt_pub *p, uint32_t n);
void amqp__pub_reply(amqp__conn *c, amqp__link *l, sv_msg *reply);
void amqp__pub_closed(amqp__conn *c, amqp__link *l);
/* Tops up credit on links it was held back from (alarm over, pause over). */
void amqp__pub_refresh(amqp__conn *c);
/* Whether the connection may read more: false while its publishes not yet
 * taken by their queues hold too many bytes, or, under the memory or disk
 * alarm, while it only publishes. */
bool amqp__pub_may_read(amqp__conn *c);

/* consume.c: links on which the client receives. */
void amqp__consumer_attach(amqp__conn *c, pn_link_t *link);
void amqp__consumer_flow(amqp__conn *c, amqp__link *l);
void amqp__consumer_disposition(amqp__conn *c, amqp__link *l, pn_delivery_t *d);
void amqp__consumer_deliver(amqp__conn *c, sv_msg *m);
/* Hands waiting deliveries to proton, up to about budget bytes. */
void amqp__consumer_feed(amqp__conn *c, size_t budget);
void amqp__consumer_free_out(amqp__conn *c);
void amqp__consumer_drained(amqp__conn *c, sv_msg *m);
void amqp__consumer_gone(amqp__conn *c, sv_msg *m);
void amqp__consumer_reply(amqp__conn *c, amqp__link *l, sv_msg *reply);
void amqp__consumer_closed(amqp__conn *c, amqp__link *l);

/* conn091_login.c: the handshake's pure parts. */
typedef struct amqp__091_limits {
    uint16_t channel_max;
    uint32_t frame_max;
    uint16_t heartbeat; /* seconds; 0: none */
} amqp__091_limits;
/* The server-properties table of Connection.Start (content, no length). */
int amqp__091_server_props(uint8_t *out, size_t cap);
/* Whether the client-properties table's capabilities say cap is true. */
bool amqp__091_client_cap(amqp91_bytes props, const char *cap);
/* Bytes from the client as text for the log: control bytes become '?', cut to len - 1. */
void amqp__091_printable(const uint8_t *p, size_t n, char *out, size_t len);
/* The client's connection_name (else product) as printable text, or "". */
void amqp__091_client_name(amqp91_bytes props, char *out, size_t len);
/* User and password from a Start-Ok response: 0; -EINVAL (malformed) or
 * -ENOTSUP (mechanism not offered), with *why. */
int amqp__091_credentials(amqp91_bytes mech, amqp91_bytes resp, char *user, size_t ulen, char *pass, size_t plen,
                          const char **why);
/* The client's Tune-Ok against the server's Tune: 0 and the limits agreed,
 * or -AMQP91_NOT_ALLOWED with why. */
int amqp__091_tune(const amqp__091_limits *ours, uint16_t channel_max, uint32_t frame_max, uint16_t heartbeat,
                   amqp__091_limits *out, char *why, size_t len);
/* The heartbeat delay agreed: 0 if the client wants none, else the lower
 * non-zero of the two. */
uint16_t amqp__091_heartbeat(uint16_t ours, uint16_t theirs);

/* map091.c (publish), map091_deliver.c (deliver): the one message model, 0-9-1 content <-> AMQP 1.0 message bytes
 * (the table is in DESIGN.md, "AMQP 0-9-1 message mapping"). */
/* A 0-9-1 publish as an AMQP 1.0 message: allocates an rt_msg holding the
 * sections p maps to (exchange and rkey, if not NULL, as the annotations
 * x-exchange and x-routing-key), then the head of one data section of
 * body_size bytes. The caller copies the body to rt_msg_bytes(*out) +
 * *body_off and calls rt_msg_finish(out, *total); it bounds body_size by the
 * broker's message size first (the whole message is allocated here). 0, or
 * a negative 0-9-1 reply code with a static reason in *why:
 * -AMQP91_PRECONDITION_FAILED (a bad expiration, a timestamp past int64
 * milliseconds, a message over 4 GiB), -AMQP91_SYNTAX_ERROR (a bad headers
 * table); or -ENOMEM. */
int amqp__091_msg_new(const amqp91_props *p, uint64_t body_size, const char *exchange, const char *rkey, rt_msg **out,
                      size_t *body_off, size_t *total, const char **why);
/* A delivery of m to a 0-9-1 client: writes the content header frame's
 * payload (class 60, weight 0, body size, the properties mapped back,
 * headers as a field table) into out[0..cap) and returns its length;
 * -ENOSPC if it does not fit, -EBADMSG if m's bytes are not an AMQP 1.0
 * message. *body_size: the bytes amqp__091_body_next will hand out. */
int amqp__091_msg_header(const rt_msg *m, uint8_t *out, size_t cap, uint64_t *body_size);
/* The body, as views into m's bytes in order (any number of data sections;
 * an amqp-value string or binary; otherwise the encoded body sections).
 * Start with *pos = 0; false once all is out. */
bool amqp__091_body_next(const rt_msg *m, size_t *pos, const uint8_t **p, size_t *len);
/* The exchange m was published to (its x-exchange annotation), as a view
 * into m; false if it names none (AMQP 1.0 publishes). */
bool amqp__091_msg_exchange(const rt_msg *m, amqp91_bytes *out);

/* ------------------------------------------ AMQP 0-9-1 (conn091*.c files) */

/* conn091.c: the AMQP 0-9-1 front end. The connection process (same
 * socket, registry entry and limits) hands itself over once the client's
 * protocol header says 0-9-1; rest holds the bytes read after the header. */
void amqp__091_begin(amqp__conn *c, const uint8_t *rest, size_t n);
void amqp__091_poll(amqp__conn *c, int status, int events);
void amqp__091_work(amqp__conn *c); /* a round: timers checked, output written, poll set */
void amqp__091_info(amqp__conn *c, sv_msg *m);
void amqp__091_free(amqp__conn *c);

enum { AMQP__CH_CLOSED, AMQP__CH_OPEN, AMQP__CH_CLOSING };
#define AMQP__091_OUT_SOFT (64u << 10) /* output waiting: no more deliveries written, no reading past it */

/* A consumer (Basic.Consume, or the one a Basic.Get uses for a while).
 * Its credit with the queue plus its unacknowledged deliveries stay
 * within its window, which is how prefetch is kept. */
typedef struct amqp__091_cons {
    uint32_t id; /* the connection's consumer id, known to the queue */
    uint16_t channel;
    bool no_ack;
    bool get;       /* Basic.Get's: lives while a get or its deliveries are unsettled */
    bool exclusive; /* Basic.Consume exclusive */
    bool cancelled; /* Basic.Cancel came, or the queue went: late deliveries go back */
    bool notify;    /* tell the client with Basic.Cancel when the queue goes */
    bool listed;    /* in the admin API's consumers */
    bool getting;   /* a Basic.Get is under way on it */
    bool got;       /* ... and its message came */
    sv_pid qpid;
    uint32_t window;      /* credit + unacked it may have */
    uint32_t outstanding; /* credit with the queue, not yet used */
    uint32_t unacked;     /* delivered, not yet settled by the client */
    char tag[256];
    char queue[RT_NAME_MAX + 1];
    amqp__reg_con reg;
    struct amqp__091_cons *next; /* the channel's */
} amqp__091_cons;

/* A delivery waiting in the connection: to be written, or (held) for the
 * channel's global prefetch or Channel.Flow. */
typedef struct amqp__091_out {
    uint32_t consumer;
    rt_delivery d;
} amqp__091_out;

typedef struct amqp__091_ring {
    amqp__091_out *v;
    uint32_t head, len, cap;
} amqp__091_ring;

/* A delivery the client has not settled yet, by delivery tag. */
typedef struct amqp__091_ua {
    uint64_t tag; /* the channel's delivery tag */
    uint64_t id;  /* the queue's delivery id */
    sv_pid qpid;  /* the queue's process, to settle with */
    uint32_t consumer;
    bool done; /* settled out of order: dropped when it reaches the front */
} amqp__091_ua;

typedef struct amqp__091_chan {
    uint8_t state; /* AMQP__CH_OPEN or AMQP__CH_CLOSING (closed: no struct) */
    uint16_t number;
    uint64_t epoch;              /* which opening of the channel number this is */
    bool confirm;                /* Confirm.Select came */
    bool flow_off;               /* the client's Channel.Flow false: nothing is delivered */
    uint16_t prefetch, global;   /* Basic.Qos: per new consumer, and for the channel (0: none) */
    uint64_t next_tag, next_seq; /* delivery tags; publish sequence numbers (confirm mode) */
    /* Confirms in sequence order: the state of each from conf_base on
     * (0 due, 1 ack, 2 nack), a ring; sent as runs once a round. */
    uint8_t *conf;
    uint32_t conf_head, conf_len, conf_cap;
    uint64_t conf_base;
    amqp__091_ua *ua; /* unsettled, oldest first: a ring */
    uint32_t ua_head, ua_len, ua_cap, ua_live;
    amqp__091_ring held;
    amqp__091_cons *cons;
    char last_queue[RT_NAME_MAX + 1];  /* "" in a method means this one */
    char reply_queue[RT_NAME_MAX + 1]; /* direct reply-to's queue, once consumed */
    /* The last exchange it was allowed to publish to ("" the default one,
     * valid if may_write): checked once, not per message, as 1.0 links
     * are checked at attach. A permission taken away shows on new channels. */
    bool may_write;
    char write_x[RT_NAME_MAX + 1];
    /* The publish being read: its method, then header, then body. */
    uint8_t pub; /* 0: none; 1: header due; 2: body due */
    bool mandatory, skip;
    rt_msg *msg;
    size_t body_off, total;
    uint64_t body_left;
    char exchange[RT_NAME_MAX + 1], rkey[RT_NAME_MAX + 1];
} amqp__091_chan;

/* A publish until every queue has it (or has said no). */
typedef struct amqp__091_tag {
    uint64_t k1, k2; /* k2: the connection's tag */
    uint64_t epoch;  /* the channel's, so a reopened channel gets no stale confirm */
    uint64_t seq;    /* 0: no confirm wanted */
    uint32_t remaining, size;
    uint16_t channel;
    uint8_t outcome, why;
} amqp__091_tag;

/* A call under way (the routing manager's, a queue's purge, a get): the
 * channel reads nothing more until it is answered, so methods keep their
 * order. */
typedef struct amqp__091_call {
    uint64_t k1, k2; /* k2: the call's ref (or a get's consumer id, k1 = 1) */
    uint64_t epoch;
    uint32_t method;
    uint16_t channel;
    bool nowait;
    uint8_t step; /* declare then bind, for direct reply-to */
    char name[RT_NAME_MAX + 1];
    char tag[256];
    uint32_t count;
    void *req;
} amqp__091_call;

typedef struct amqp__c91 {
    int state;
    uint8_t *in; /* frames read, not yet handled */
    size_t ilen, icap;
    uint8_t *out; /* written, not yet taken by the socket */
    size_t olen, ocap;
    amqp__091_limits ours, agreed;
    amqp__091_chan **ch; /* agreed.channel_max + 1, from Tune-Ok on */
    uint64_t epochs;
    uint64_t last_recv;    /* ms: anything read (any frame counts as a heartbeat) */
    uint64_t last_send;    /* ms: anything written */
    uint64_t deadline;     /* ms: the handshake's or our Close's end; 0: none */
    bool flush_then_end;   /* nothing more to read or say: end once out is written */
    bool fail_close;       /* the client's authentication_failure_close */
    bool cap_cancel;       /* consumer_cancel_notify */
    bool cap_blocked;      /* connection.blocked */
    bool blocked;          /* Connection.Blocked sent */
    bool published;        /* it has published: the memory alarm holds its reading */
    bool confirms_due;     /* some channel has confirms to send */
    uint64_t paused_until; /* ms (sv_now_ms): a queue it feeds is consumed and behind; reading waits */
    uint32_t waiting;      /* calls under way: input waits */
    uint32_t nconsumers;
    char user[128];
    char client[128];
    const char *mech;
    sv_map cons;          /* amqp__091_cref: consumer id -> consumer */
    sv_map tags;          /* amqp__091_tag */
    sv_map calls;         /* amqp__091_call */
    amqp__091_ring out_q; /* deliveries to write */
    uint32_t nheld;       /* deliveries held in channels */
} amqp__c91;

typedef struct amqp__091_cref {
    uint64_t k1, k2;
    amqp__091_cons *p;
} amqp__091_cref;

/* conn091.c, for the others */
void amqp__091_method(amqp__conn *c, uint16_t ch, amqp91_method *m);
void amqp__091_simple(amqp__conn *c, uint16_t ch, uint32_t id);
/* Method, content header and body frames of one message. */
int amqp__091_content(amqp__conn *c, uint16_t ch, amqp91_method *m, const rt_msg *msg);
void amqp__091_conn_close(amqp__conn *c, int code, uint32_t method, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void amqp__091_chan_close(amqp__conn *c, uint16_t ch, int code, uint32_t method, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
/* The channel if open (not closing), else NULL. */
amqp__091_chan *amqp__091_chan_get(amqp__conn *c, uint16_t ch, uint64_t epoch);
/* A call to pid for channel ch (input waits for its answer). */
amqp__091_call *amqp__091_call_to(amqp__conn *c, uint16_t ch, uint32_t method, sv_pid to, sv_msg *req);
void amqp__091_handle_input(amqp__conn *c);
/* Name as text: a shortstr from the client, cut at RT_NAME_MAX. */
void amqp__091_name(amqp91_bytes b, char *out);

/* conn091_defs.c: exchanges, queues and bindings. */
void amqp__091_defs_method(amqp__conn *c, amqp__091_chan *ch, const amqp91_method *m);
void amqp__091_defs_reply(amqp__conn *c, amqp__091_call *call, sv_msg *reply);
/* Queue arguments from a field table (the x-* RabbitMQ takes). */
int amqp__091_qargs(amqp91_bytes table, rt_qargs *a, char *err, size_t len);
/* Whether the connection's user has what on the resource: true, or the
 * channel closes with 403 and the reason (RabbitMQ's rules: DESIGN.md). */
bool amqp__091_allowed(amqp__conn *c, amqp__091_chan *ch, uint32_t method, amqp_perm what, const char *kind,
                       const char *name);
/* Whether q can be used by this connection (exclusive queues: its owner's). */
bool amqp__091_queue_ok(amqp__conn *c, amqp__091_chan *ch, uint32_t method, const char *name, rt_queue **out);

/* conn091_publish.c */
void amqp__091_publish(amqp__conn *c, amqp__091_chan *ch, const amqp91_basic_publish *a);
void amqp__091_content_frame(amqp__conn *c, amqp__091_chan *ch, const amqp91_frame *f);
void amqp__091_confirm(amqp__conn *c, sv_msg *m);
void amqp__091_taken(amqp__conn *c, const rt_pub *p, uint32_t n);
bool amqp__091_may_read(amqp__conn *c);
/* Sends the confirms decided since the last round, as few frames as the
 * order allows (Basic.Ack multiple for runs). */
void amqp__091_send_confirms(amqp__conn *c);
void amqp__091_pub_chan_free(amqp__conn *c, amqp__091_chan *ch);

/* conn091_consume.c */
void amqp__091_basic_method(amqp__conn *c, amqp__091_chan *ch, const amqp91_method *m);
void amqp__091_consume_reply(amqp__conn *c, amqp__091_call *call, sv_msg *reply);
void amqp__091_deliver(amqp__conn *c, sv_msg *m);
void amqp__091_drained(amqp__conn *c, sv_msg *m);
void amqp__091_consumer_gone(amqp__conn *c, sv_msg *m);
/* Writes waiting deliveries while the output is short. */
void amqp__091_feed(amqp__conn *c);
/* Sends credit owed to queues (acks freed room), once a round. */
void amqp__091_credit(amqp__conn *c);
void amqp__091_consume_chan_free(amqp__conn *c, amqp__091_chan *ch);
void amqp__091_ring_free(amqp__091_ring *r);

#endif
