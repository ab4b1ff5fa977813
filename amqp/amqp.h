/* amqp.h — the AMQP 1.0 front end: listener, connections, SASL, addresses.
 * The one public header of amqp/.
 *
 * Each client connection is one process that owns its socket and a
 * qpid-proton connection driver (the engine, fed by libuv; no proactor).
 * It resolves each link's address once, at attach, routes what publishers
 * send itself (routing tables are shared and lock-free) and passes
 * deliveries from queue processes to consumers, against link credit.
 */
#ifndef PLEXUS_AMQP_H
#define PLEXUS_AMQP_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "routing/rt.h"
#include "supervisor/sv.h"

/* ------------------------------------------------------------- addresses */

typedef enum amqp_addr_kind {
    AMQP_ADDR_QUEUE,        /* /queues/NAME, or a plain NAME */
    AMQP_ADDR_EXCHANGE,     /* /exchanges/NAME: the key is each message's subject */
    AMQP_ADDR_EXCHANGE_KEY, /* /exchanges/NAME/KEY */
} amqp_addr_kind;

typedef struct amqp_addr {
    amqp_addr_kind kind;
    char name[RT_NAME_MAX + 1]; /* percent-decoded; "" for the default exchange */
    char key[RT_NAME_MAX + 1];  /* percent-decoded */
} amqp_addr;

/* Parses an address as DESIGN.md describes (RabbitMQ 4's v2 format, plus
 * plain queue names). -EINVAL for anything else: bad percent-encoding, an
 * empty or too long name, an unknown prefix. */
int amqp_addr_parse(const char *s, amqp_addr *out);
/* Formats /queues/NAME with NAME percent-encoded; returns out. */
const char *amqp_addr_queue(const char *name, char *out, size_t len);

/* "host:port" or "[v6]:port" -> host (brackets removed) and port. -1 on
 * bad syntax or a port outside 0..65535. */
int amqp_hostport_parse(const char *s, char *host, size_t hostlen, int *port);

/* ---------------------------------------------------------- authentication */

/* Decides a SASL login: mechanism "PLAIN" (user and password given),
 * "ANONYMOUS" (user and password NULL) or "EXTERNAL" (user: the subject CN
 * of the client's TLS certificate, which the TLS layer verified; password
 * NULL). peer is the client's address.
 * Returns 0 and the user's name in user_out, or -EACCES. Called on the
 * connection's scheduler: it must be quick and thread-safe. */
typedef int (*amqp_auth_fn)(void *ctx, const char *mech, const char *user, const char *password,
                            const struct sockaddr *peer, char *user_out, size_t user_len);

/* Seen by the front ends after a refused login from peer: how long (ms)
 * to hold back the refusal, so that a password cannot be guessed at line
 * rate. The connection neither sleeps nor reads meanwhile: its answer
 * waits for a timer. Any thread. */
typedef uint32_t (*amqp_auth_delay_fn)(void *ctx, const struct sockaddr *peer);

/* ------------------------------------------------------------ permissions */

/* RabbitMQ's three permissions on a resource (configure: declare, delete;
 * write: publish to; read: consume, get, purge, bind from), and access to
 * a virtual host as such (kind and name unused). */
typedef enum amqp_perm { AMQP_PERM_CONFIGURE, AMQP_PERM_WRITE, AMQP_PERM_READ, AMQP_PERM_VHOST } amqp_perm;

/* The vhost every connection uses until virtual hosts exist. */
#define AMQP_VHOST_DEFAULT "/"

/* Whether user may do what on the resource kind ("queue", "exchange")
 * called name in vhost ("" names the default exchange): 0, or -EACCES
 * with RabbitMQ's reason in why ("write access to exchange 'x' in vhost
 * '/' refused for user 'u'"). Called at attach and open, from any thread;
 * it must be cheap. */
typedef int (*amqp_perm_fn)(void *ctx, const char *user, const char *vhost, amqp_perm what, const char *kind,
                            const char *name, char *why, size_t len);

/* -------------------------------------------------------------------- TLS */

/* AMQPS: a second listener whose connections speak TLS (OpenSSL) below
 * both front ends, so AMQP 1.0 and 0-9-1 clients alike see it. Off unless
 * a certificate is configured. */
typedef struct amqp_tls_config {
    char listen[256];              /* HOST:PORT; "" with a certificate: amqp.listen's host, port 5671 */
    char cert_file[4096];          /* PEM: the server's certificate (and chain) */
    char key_file[4096];           /* PEM: its private key */
    char ca_file[4096];            /* PEM: CAs whose client certificates are trusted */
    char min_version[8];           /* "1.2" (default) or "1.3"; 1.0 and 1.1 are refused */
    uint32_t handshake_timeout_ms; /* a handshake not done by then closes the connection */
    bool verify_peer;              /* ask clients for a certificate and check it against ca_file */
    bool fail_if_no_peer_cert;     /* ... and refuse clients that have none */
} amqp_tls_config;

/* --------------------------------------------------------------- listener */

typedef struct amqp_config {
    char listen[256];          /* HOST:PORT */
    uint32_t max_connections;  /* beyond it: amqp:resource-limit-exceeded */
    uint32_t max_links;        /* per connection */
    uint32_t max_frame_size;   /* bytes; larger frames are a framing error */
    uint64_t max_message_size; /* bytes; larger messages detach their link */
    uint32_t idle_timeout_ms;  /* ours (0: none); the peer's is honoured with a floor */
    uint32_t credit_window;    /* credit per publishing link */
    bool anonymous;            /* offer SASL ANONYMOUS */
    bool auto_create_queues;   /* a link to an unknown queue creates it */
    amqp_auth_fn auth;
    void *auth_ctx;
    amqp_auth_delay_fn auth_delay; /* NULL: refusals are answered at once */
    amqp_perm_fn perm;             /* NULL: everyone may do everything (unit tests) */
    void *perm_ctx;
    const char *container_id; /* this node's name, sent in open */
    amqp_tls_config tls;      /* tls.* */
    void *tls_ctx;            /* OpenSSL's SSL_CTX once amqp_tls_prepare made it; NULL: no TLS */
} amqp_config;

void amqp_config_init(amqp_config *c);
/* Checks the tls.* settings and loads the certificate, key and CAs into
 * c->tls_ctx (nothing to do without a certificate). On a bad setting or
 * file (missing, unreadable, not PEM, key not matching the certificate)
 * returns -1 with one line naming it in err. Fills tls.listen's default. */
int amqp_tls_prepare(amqp_config *c, char *err, size_t len);
void amqp_tls_release(amqp_config *c);
/* Whether cert and key (PEM files) can serve TLS: readable, parsed, the
 * key the certificate's. 0, or -1 with one line naming setting.cert_file or
 * setting.key_file in err. Warns (log) if the certificate has expired. */
int amqp_tls_check_pair(const char *setting, const char *cert, const char *key, char *err, size_t len);
/* The TLS version a "1.2"/"1.3" setting stands for, as OpenSSL numbers
 * it; -1 for anything else (1.0 and 1.1 included). */
int amqp_tls_version(const char *s);

/* The listeners subtree for the broker's tree: the connection supervisor
 * and the AMQP 1.0 listener. arg: an amqp_config that outlives the node. */
int amqp_start_fn(sv_proc *sup, const sv_spawn_opts *opts, void *arg, sv_pid *pid);
/* The port the listener is bound to (useful with port 0), 0 before it is. */
int amqp_listen_port(void);
/* The same for the TLS listener; 0 when there is none. */
int amqp_listen_tls_port(void);
/* Connections open now. */
uint32_t amqp_connections(void);

/* ------------------------------------------------- connections, observed */

/* One open connection as the admin API lists it (RabbitMQ's field names
 * where they apply). */
typedef struct amqp_conn_info {
    char name[160];          /* "127.0.0.1:40112 -> 127.0.0.1:5672": unique while open */
    sv_pid pid;              /* its process */
    char user[128];          /* who logged in ("" until the client's open) */
    char container[128];     /* the client's container id */
    char auth_mechanism[16]; /* PLAIN, AMQPLAIN, ANONYMOUS, or "" (no SASL: anonymous) */
    char protocol[16];       /* "AMQP 1.0" or "AMQP 0-9-1" */
    char peer_host[64];
    int peer_port;
    char host[64];
    int port;
    int64_t connected_at; /* ms since the epoch */
    bool opened;          /* the AMQP open was accepted */
    bool ssl;             /* it came in on the TLS listener */
    uint32_t links;
    uint32_t channels;           /* AMQP 1.0 sessions or 0-9-1 channels open */
    uint64_t recv_oct, send_oct; /* bytes read and written */
    uint64_t recv_cnt, send_cnt; /* messages received from publishers, sent to consumers */
} amqp_conn_info;

/* From any thread: fills up to max entries, returns how many connections
 * are open (may exceed max; counters are as of each one's last round). */
int amqp_conn_list(amqp_conn_info *out, int max);
/* Closes the connection of that name with amqp:connection:forced and the
 * reason as its description (the client sees it). -ENOENT if none. */
int amqp_conn_close(const char *name, const char *reason);

/* What channels and consumers carry of their connection (RabbitMQ's
 * channel_details). */
typedef struct amqp_chan_conn {
    char name[160]; /* the connection's */
    char user[128];
    char peer_host[64];
    int peer_port;
} amqp_chan_conn;

/* One channel: an AMQP 1.0 session (numbered in the order the client
 * began them, from 1) or an AMQP 0-9-1 channel (its number). */
typedef struct amqp_channel_info {
    amqp_chan_conn conn;
    uint16_t number;
    uint32_t consumers; /* consumers on it now */
} amqp_channel_info;

/* One consumer: an AMQP 1.0 link that receives from a queue. */
typedef struct amqp_consumer_info {
    amqp_chan_conn conn;
    uint16_t channel;
    char tag[128];   /* the link's name (cut to fit) */
    char queue[256]; /* its queue */
    bool ack_required, exclusive;
    uint32_t credit; /* as of the connection's last flow from the client */
} amqp_consumer_info;

/* From any thread, as amqp_conn_list: up to max entries, returns how many
 * there are. */
int amqp_channel_list(amqp_channel_info *out, int max);
int amqp_consumer_list(amqp_consumer_info *out, int max);

#endif
