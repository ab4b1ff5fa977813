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
/* A new link context for a proton link (one reference: proton's). */
amqp__link *amqp__link_new(amqp__conn *c, pn_link_t *link, amqp__link_kind kind);
/* A manager call for l; its reply goes to pub_reply / con_reply. */
int amqp__call_manager(amqp__conn *c, amqp__link *l, rt_req_kind kind, const void *req, size_t len);
void amqp__link_unref(amqp__link *l);
/* Refuses an attach that has no context (no memory, too many links). */
void amqp__link_refuse(pn_link_t *link, const char *cond, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
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

/* conn091.c: the AMQP 0-9-1 front end. The connection process (same
 * socket, registry entry and limits) hands itself over once the client's
 * protocol header says 0-9-1; rest holds the bytes read after the header. */
void amqp__091_begin(amqp__conn *c, const uint8_t *rest, size_t n);
void amqp__091_poll(amqp__conn *c, int status, int events);
void amqp__091_work(amqp__conn *c); /* a round: timers checked, output written, poll set */
void amqp__091_info(amqp__conn *c, sv_msg *m);
void amqp__091_free(amqp__conn *c);

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

#endif
