/* listener.c — the AMQP 1.0 listener and the connections supervisor.
 *
 *   listeners (rest_for_one)
 *   ├── connections (one_for_one, one temporary child per client)
 *   ├── amqp listener
 *   └── amqps listener (when a certificate is configured)
 *
 * The listener owns the listening socket (watched with uv_poll, accepted
 * with accept4) and asks the connections supervisor to start a connection
 * process for each client; the process, on whatever scheduler it lands,
 * takes the socket over by its fd (marked AMQP__FD_TLS when it came to the
 * TLS listener: the connection then speaks TLS below AMQP). Starts in flight are bounded: past the
 * bound the listener stops accepting until some have answered, so a
 * connection storm waits in the kernel's backlog instead of in memory.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <uv.h>

#include "amqp/amqp_internal.h"

#define CONN_SUP_NAME "amqp_conn_sup"
#define MAX_STARTING 256
#define BACKLOG 1024
#define EMFILE_PAUSE_MS 100

static atomic_int listen_port, listen_tls_port;

typedef struct listener {
    sv_proc *self;
    const amqp_config *cfg;
    bool tls; /* the AMQPS listener */
    int fd;
    uv_poll_t poll;
    uv_timer_t pause;
    bool polling;
    int handles;
    uint32_t starting;
    uint64_t next_id;
} listener;

int amqp_listen_port(void) { return atomic_load(&listen_port); }
int amqp_listen_tls_port(void) { return atomic_load(&listen_tls_port); }

void amqp_config_init(amqp_config *c)
{
    memset(c, 0, sizeof *c);
    snprintf(c->listen, sizeof c->listen, "127.0.0.1:5672");
    c->max_connections = 65536;
    c->max_links = 1024;
    c->max_frame_size = 1u << 20;
    c->max_message_size = 128u << 20;
    c->idle_timeout_ms = 60000;
    c->credit_window = 1000;
    c->anonymous = true;
    c->auto_create_queues = true;
    c->tls.handshake_timeout_ms = 5000; /* RabbitMQ's ssl_handshake_timeout */
    snprintf(c->tls.min_version, sizeof c->tls.min_version, "1.2");
}

static void poll_start(listener *ls);

static void on_pause_end(uv_timer_t *t)
{
    listener *ls = t->data;
    poll_start(ls);
}

static void start_connection(listener *ls, int fd)
{
    char id[32];
    snprintf(id, sizeof id, "conn-%llu", (unsigned long long)++ls->next_id);
    intptr_t arg = fd | (ls->tls ? AMQP__FD_TLS : 0);
    sv_child_spec spec = {
        .id = id, .start = amqp__conn_start, .arg = (void *)arg, .restart = SV_TEMPORARY, .shutdown_ms = 2000};
    sv_msg *req = sv_sup_start_child_req(&spec);
    uint64_t ref;
    if (!req || sv_call_async(ls->self, sv_whereis(CONN_SUP_NAME), req, 10000, &ref) < 0) {
        sv_msg_free(req);
        close(fd); /* nobody to hand it to: the client sees the connection reset */
        sv_log(SV_LOG_WARNING, "listener: could not start a connection process; connection dropped");
        return;
    }
    ls->starting++;
}

static void on_accept(uv_poll_t *p, int status, int events)
{
    (void)events;
    listener *ls = p->data;
    if (status < 0)
        return;
    sv_enter(ls->self);
    for (int i = 0; i < 64 && ls->starting < MAX_STARTING; i++) {
        int fd = accept4(ls->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) {
            start_connection(ls, fd);
            continue;
        }
        if (errno == EINTR || errno == ECONNABORTED)
            continue;
        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
            sv_log(SV_LOG_WARNING, "listener: cannot accept: %s; pausing %d ms", strerror(errno), EMFILE_PAUSE_MS);
            uv_poll_stop(&ls->poll);
            ls->polling = false;
            uv_timer_start(&ls->pause, on_pause_end, EMFILE_PAUSE_MS, 0);
        }
        break; /* EAGAIN: all taken */
    }
    if (ls->starting >= MAX_STARTING && ls->polling) {
        uv_poll_stop(&ls->poll); /* resumed as starts complete */
        ls->polling = false;
    }
    sv_leave(ls->self);
}

static void poll_start(listener *ls)
{
    if (!ls->polling && uv_poll_start(&ls->poll, UV_READABLE, on_accept) == 0)
        ls->polling = true;
}

static int open_socket(const char *spec, int *port_out, char *err, size_t errlen)
{
    char host[256];
    int port;
    if (amqp_hostport_parse(spec, host, sizeof host, &port) < 0) {
        snprintf(err, errlen, "bad listen address '%.256s'", spec);
        return -EINVAL;
    }
    char ps[8];
    snprintf(ps, sizeof ps, "%d", port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE}, *ai;
    int g = getaddrinfo(host, ps, &hints, &ai);
    if (g != 0) {
        snprintf(err, errlen, "cannot resolve %.256s: %s", host, gai_strerror(g));
        return -EINVAL;
    }
    int fd = -1, rc = -EADDRNOTAVAIL;
    for (struct addrinfo *a = ai; a && fd < 0; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            rc = -errno;
            continue;
        }
        int one = 1;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (bind(fd, a->ai_addr, a->ai_addrlen) < 0 || listen(fd, BACKLOG) < 0) {
            rc = -errno;
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(ai);
    if (fd < 0) {
        snprintf(err, errlen, "cannot listen on %.256s: %s", spec, strerror(-rc));
        return rc;
    }
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    *port_out = 0;
    if (getsockname(fd, (struct sockaddr *)&ss, &len) == 0)
        *port_out = ntohs(ss.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&ss)->sin6_port
                                                   : ((struct sockaddr_in *)&ss)->sin_port);
    return fd;
}

static void on_closed(uv_handle_t *h)
{
    listener *ls = h->data;
    if (--ls->handles == 0)
        free(ls);
}

static int listener_init(sv_proc *self, const amqp_config *cfg, bool tls)
{
    char err[640];
    int port;
    const char *where = tls ? cfg->tls.listen : cfg->listen;
    int fd = open_socket(where, &port, err, sizeof err);
    if (fd < 0) {
        sv_log(SV_LOG_ERROR, "%s listener: %s", tls ? "amqps" : "amqp", err);
        return fd;
    }
    listener *ls = calloc(1, sizeof *ls);
    if (!ls) {
        close(fd);
        return -ENOMEM;
    }
    ls->self = self;
    ls->cfg = cfg;
    ls->tls = tls;
    ls->fd = fd;
    int rc = uv_poll_init(sv_loop(self), &ls->poll, fd);
    if (rc < 0) { /* nothing registered with the loop yet: undo by hand (sv.h) */
        sv_log(SV_LOG_ERROR, "amqp listener: %s", uv_strerror(rc));
        close(fd);
        free(ls);
        return rc;
    }
    uv_timer_init(sv_loop(self), &ls->pause);
    ls->poll.data = ls->pause.data = ls;
    ls->handles = 2;
    sv_set_state(self, ls);
    poll_start(ls);
    atomic_store(tls ? &listen_tls_port : &listen_port, port);
    sv_log(SV_LOG_INFO, "%s listener on %s (port %d)", tls ? "amqps (TLS)" : "amqp", where, port);
    return 0;
}

static int listener_init_plain(sv_proc *self, void *arg) { return listener_init(self, arg, false); }
static int listener_init_tls(sv_proc *self, void *arg) { return listener_init(self, arg, true); }

static int listener_info(sv_proc *self, sv_msg *m)
{
    listener *ls = sv_state(self);
    if (m->kind == SV_MSG_REPLY) {
        /* A start answered; on failure the connection's own code has
         * closed the socket already. */
        ls->starting--;
        if (m->status < 0)
            sv_log(SV_LOG_WARNING, "listener: a connection did not start: %s", strerror(-m->status));
        poll_start(ls);
    }
    return 0;
}

static void listener_terminate(sv_proc *self, int reason)
{
    (void)reason;
    listener *ls = sv_state(self);
    atomic_store(ls->tls ? &listen_tls_port : &listen_port, 0);
    uv_poll_stop(&ls->poll);
    uv_close((uv_handle_t *)&ls->poll, on_closed);
    uv_close((uv_handle_t *)&ls->pause, on_closed);
    close(ls->fd); /* after uv_close: libuv must not poll a closed fd */
}

static const sv_server_ops listener_ops = {
    .name = "amqp_listener",
    .init = listener_init_plain,
    .handle_info = listener_info,
    .terminate = listener_terminate,
};

static const sv_server_ops tls_listener_ops = {
    .name = "amqps_listener",
    .init = listener_init_tls,
    .handle_info = listener_info,
    .terminate = listener_terminate,
};

static int conn_sup_start(sv_proc *sup, const sv_spawn_opts *opts, void *arg, sv_pid *pid)
{
    (void)arg;
    /* Connections are temporary children: they are never restarted, so
     * the intensity guards only the supervisor's own start plan. */
    sv_sup_flags f = {SV_ONE_FOR_ONE, 10, 10000};
    int rc = sv_sup_spawn(sup, "connections", f, NULL, 0, opts, pid);
    if (rc == 0)
        sv_register(CONN_SUP_NAME, *pid);
    return rc;
}

static int listener_start(sv_proc *sup, const sv_spawn_opts *opts, void *arg, sv_pid *pid)
{
    return sv_spawn(sup, &listener_ops, arg, opts, pid);
}

static int tls_listener_start(sv_proc *sup, const sv_spawn_opts *opts, void *arg, sv_pid *pid)
{
    return sv_spawn(sup, &tls_listener_ops, arg, opts, pid);
}

int amqp_start_fn(sv_proc *sup, const sv_spawn_opts *opts, void *arg, sv_pid *pid)
{
    const amqp_config *cfg = arg;
    amqp__conn_configure(cfg);
    sv_child_spec kids[] = {
        {.id = "connections",
         .start = conn_sup_start,
         .restart = SV_PERMANENT,
         .shutdown_ms = SV_SHUTDOWN_INFINITY,
         .is_supervisor = true},
        {.id = "amqp", .start = listener_start, .arg = arg, .restart = SV_PERMANENT, .shutdown_ms = 2000},
        {.id = "amqps", .start = tls_listener_start, .arg = arg, .restart = SV_PERMANENT, .shutdown_ms = 2000},
    };
    sv_sup_flags f = {SV_REST_FOR_ONE, 5, 10000};
    return sv_sup_spawn(sup, "listeners", f, kids, cfg->tls_ctx ? 3 : 2, opts, pid);
}
