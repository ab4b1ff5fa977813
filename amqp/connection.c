/* connection.c — one client connection: a process, its socket, its proton
 * connection driver.
 *
 * Everything the connection does happens in rounds: bytes arrive (or a
 * queue sends deliveries, or a timer fires), proton turns them into events,
 * the events are handled, and only then is the round's work sent out: one
 * batch per queue (publishes, settlements) and one write to the socket.
 * The socket's reads and writes are socket.c's, the batches for queues
 * outbox.c's; this file is the process, its links and its rounds.
 */
#include <arpa/inet.h>
#include <netinet/tcp.h>
#include <errno.h>
#include <proton/condition.h>
#include <proton/connection.h>
#include <proton/delivery.h>
#include <proton/event.h>
#include <proton/link.h>
#include <proton/session.h>
#include <proton/terminus.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "amqp/amqp_internal.h"

#define TICK_FLOOR_MS 100        /* however short the peer's idle timeout, no more empty frames than this */
#define RETRY_MS 1               /* a full queue mailbox is tried again this soon */
#define HELD_MS 5                /* held-back credit (alarm, slow-down) is reconsidered this often */
#define WRITE_BACKLOG (4u << 20) /* stop reading while this much output waits for the socket */
#define FEED_BYTES (256u << 10)  /* deliveries handed to proton at a time, as the socket drains */

atomic_uint amqp__nconns;
static const amqp_config *conn_cfg;

/* ---------------------------------------------------------------- links */

amqp__link *amqp__link_new(amqp__conn *c, pn_link_t *link, amqp__link_kind kind)
{
    amqp__link *l = calloc(1, sizeof *l);
    if (!l)
        return NULL;
    l->kind = kind;
    l->link = link;
    l->c = c;
    l->refs = 1;
    l->next = c->links;
    if (c->links)
        c->links->prev = l;
    c->links = l;
    pn_link_set_context(link, l);
    c->nlinks++;
    return l;
}

static void link_free(amqp__link *l)
{
    amqp__conn *c = l->c;
    if (l->prev)
        l->prev->next = l->next;
    else if (c->links == l)
        c->links = l->next;
    if (l->next)
        l->next->prev = l->prev;
    if (l->link)
        pn_link_set_context(l->link, NULL);
    c->nlinks--;
    if (l->kind == AMQP__CON)
        amqp__reg_con_remove(&l->con_reg); /* if it ended without a close */
    rt_msg_unref(l->cur);
    free(l->relay_ok);
    free(l->bind_req);
    free(l);
}

void amqp__link_unref(amqp__link *l)
{
    if (--l->refs == 0)
        link_free(l);
}

/* Answers an attach with a refusal: an attach with null source and
 * target (proton sends an unconfigured terminus as an empty one, not null),
 * then the detach that says why. */
static void refuse(pn_link_t *link, const char *cond, const char *desc)
{
    pn_condition_t *pc = pn_link_condition(link);
    pn_condition_set_name(pc, cond);
    pn_condition_set_description(pc, desc);
    if (pn_link_state(link) & PN_LOCAL_UNINIT) {
        pn_link_set_snd_settle_mode(link, pn_link_remote_snd_settle_mode(link));
        pn_link_set_rcv_settle_mode(link, pn_link_remote_rcv_settle_mode(link));
        pn_terminus_set_type(pn_link_source(link), PN_UNSPECIFIED);
        pn_terminus_set_type(pn_link_target(link), PN_UNSPECIFIED);
        pn_link_open(link);
    }
    pn_link_close(link);
}

void amqp__link_refuse(pn_link_t *link, const char *cond, const char *fmt, ...)
{
    char desc[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(desc, sizeof desc, fmt, ap);
    va_end(ap);
    refuse(link, cond, desc);
}

void amqp__link_fail(amqp__link *l, const char *cond, const char *fmt, ...)
{
    char desc[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(desc, sizeof desc, fmt, ap);
    va_end(ap);
    bool was_closed = l->closed;
    l->closed = true;
    if (!l->link || was_closed)
        return;
    refuse(l->link, cond, desc);
    sv_log(SV_LOG_INFO, "connection %s: link '%s' refused or closed: %s: %s", l->c->peer, pn_link_name(l->link), cond,
           desc);
    if (l->kind == AMQP__PUB)
        amqp__pub_closed(l->c, l);
    else
        amqp__consumer_closed(l->c, l);
}

bool amqp__link_may(amqp__link *l, amqp_perm what, const char *kind, const char *name)
{
    char why[300];
    if (amqp__perm(l->c, what, kind, name, why, sizeof why) == 0)
        return true;
    amqp__link_fail(l, "amqp:unauthorized-access", "%s", why);
    return false;
}

int amqp__call_manager(amqp__conn *c, amqp__link *l, rt_req_kind kind, const void *req, size_t len)
{
    sv_msg *m = rt_req(kind, req, len);
    if (!m)
        return -ENOMEM;
    uint64_t ref;
    int rc = sv_call_async(c->self, rt_manager(), m, 10000, &ref);
    if (rc < 0) {
        sv_msg_free(m);
        return rc;
    }
    amqp__ref *e = sv_map_put(&c->calls, 0, ref);
    if (!e)
        return -ENOMEM; /* the reply will find no link and be dropped */
    e->l = l;
    e->kind = kind;
    l->refs++;
    return 0;
}

static void on_reply(amqp__conn *c, sv_msg *m)
{
    amqp__ref e;
    if (!sv_map_del(&c->calls, 0, m->ref, &e))
        return;
    if (e.l->kind == AMQP__PUB)
        amqp__pub_reply(c, e.l, m);
    else
        amqp__consumer_reply(c, e.l, m);
    amqp__link_unref(e.l);
}

/* --------------------------------------------------------------- events */

static void put_symbol_array(pn_data_t *d, const char *sym)
{
    pn_data_put_array(d, false, PN_SYMBOL);
    pn_data_enter(d);
    pn_data_put_symbol(d, pn_bytes(strlen(sym), sym));
    pn_data_exit(d);
}

static void put_string_pair(pn_data_t *d, const char *k, const char *v)
{
    pn_data_put_symbol(d, pn_bytes(strlen(k), k));
    pn_data_put_string(d, pn_bytes(strlen(v), v));
}

static void on_connection_init(amqp__conn *c, pn_connection_t *pc)
{
    pn_connection_set_container(pc, c->cfg->container_id ? c->cfg->container_id : "plexus");
    put_symbol_array(pn_connection_offered_capabilities(pc), "ANONYMOUS-RELAY");
    pn_data_t *props = pn_connection_properties(pc);
    pn_data_put_map(props);
    pn_data_enter(props);
    put_string_pair(props, "product", "plexus");
    put_string_pair(props, "version", PLEXUS_VERSION);
    pn_data_exit(props);
}

static void on_remote_open(amqp__conn *c, pn_connection_t *pc)
{
    if (!c->sasl.done) {
        /* No SASL: anonymous, with the anonymous user's limits. */
        const struct sockaddr *peer = (const struct sockaddr *)&c->sasl.peer;
        if (!c->cfg->auth ||
            c->cfg->auth(c->cfg->auth_ctx, "ANONYMOUS", NULL, NULL, peer, c->sasl.user, sizeof c->sasl.user) < 0) {
            pn_condition_format(pn_connection_condition(pc), "amqp:unauthorized-access",
                                "anonymous access is not allowed from here; log in with SASL PLAIN");
            pn_connection_open(pc);
            pn_connection_close(pc);
            sv_log(SV_LOG_WARNING, "connection %s: authentication failed for anonymous (no SASL)", c->peer);
            return;
        }
        c->sasl.done = c->sasl.ok = true;
    }
    if (c->refuse) {
        pn_condition_t *cond = pn_connection_condition(pc);
        pn_condition_set_name(cond, "amqp:resource-limit-exceeded");
        pn_condition_format(cond, "amqp:resource-limit-exceeded", "too many connections (at most %u)",
                            c->cfg->max_connections);
        pn_connection_open(pc);
        pn_connection_close(pc);
        sv_log(SV_LOG_WARNING, "connection %s refused: too many connections (at most %u)", c->peer,
               c->cfg->max_connections);
        return;
    }
    char why[300];
    if (amqp__perm(c, AMQP_PERM_VHOST, NULL, NULL, why, sizeof why) < 0) {
        /* RabbitMQ's first check: a user with no permissions on the vhost
         * may not open it. */
        pn_condition_format(pn_connection_condition(pc), "amqp:unauthorized-access", "%s", why);
        pn_connection_open(pc);
        pn_connection_close(pc);
        sv_log(SV_LOG_WARNING, "connection %s refused: %s", c->peer, why);
        return;
    }
    pn_connection_open(pc);
    amqp__reg_opened(&c->reg, c->sasl.user, pn_connection_remote_container(pc), c->sasl.mech);
    sv_log(SV_LOG_INFO, "connection %s open (user %s, container %s)", c->peer, c->sasl.user[0] ? c->sasl.user : "-",
           pn_connection_remote_container(pc) ? pn_connection_remote_container(pc) : "-");
}

static void on_link_open(amqp__conn *c, pn_link_t *link)
{
    if (!(pn_link_state(link) & PN_LOCAL_UNINIT))
        return;
    if (c->nlinks >= c->cfg->max_links) {
        amqp__link_refuse(link, "amqp:resource-limit-exceeded", "too many links on this connection (at most %u)",
                          c->cfg->max_links);
        return;
    }
    if (pn_link_is_sender(link))
        amqp__consumer_attach(c, link);
    else
        amqp__pub_attach(c, link);
}

static void on_link_close(amqp__conn *c, pn_link_t *link)
{
    amqp__link *l = pn_link_get_context(link);
    if (l && !l->closed) {
        l->closed = true;
        if (l->kind == AMQP__PUB)
            amqp__pub_closed(c, l);
        else
            amqp__consumer_closed(c, l);
    }
    if (!(pn_link_state(link) & PN_LOCAL_CLOSED))
        pn_link_close(link);
    /* Closed both ways: let proton free it (and its deliveries) once the
     * detach is out; PN_LINK_FINAL then frees our context. Once only: the
     * link's own close and its session's may both come here. */
    if (!l || !l->freed) {
        if (l)
            l->freed = true;
        pn_link_free(link);
    }
}

/* A delivery on a link we refused or closed: read and forget it. */
static void discard(pn_delivery_t *d)
{
    pn_link_t *link = pn_delivery_link(d);
    if (pn_link_is_receiver(link) && pn_delivery_readable(d)) {
        char sink[4096];
        while (pn_link_recv(link, sink, sizeof sink) > 0)
            ;
        if (!pn_delivery_partial(d)) {
            pn_delivery_update(d, PN_RELEASED);
            pn_delivery_settle(d);
        }
    } else if (pn_delivery_updated(d) && pn_delivery_settled(d)) {
        pn_delivery_settle(d);
    }
}

static void log_transport_error(amqp__conn *c, pn_transport_t *t)
{
    pn_condition_t *cond = pn_transport_condition(t);
    if (c->rejecting || (c->tls && amqp__tls_failed(c)))
        return; /* said already, when the bad frame came or TLS failed */
    if (c->sasl.done && !c->sasl.ok) {
        sv_log(SV_LOG_WARNING, "connection %s: authentication failed for %s (%s)", c->peer,
               c->sasl.refused[0] ? c->sasl.refused : "?", c->sasl.mech ? c->sasl.mech : "?");
        return;
    }
    if (pn_condition_is_set(cond))
        sv_log(SV_LOG_WARNING, "connection %s: %s: %s", c->peer, pn_condition_get_name(cond),
               pn_condition_get_description(cond) ? pn_condition_get_description(cond) : "");
}

static void handle_event(amqp__conn *c, pn_event_t *e)
{
    switch (pn_event_type(e)) {
    case PN_CONNECTION_INIT: on_connection_init(c, pn_event_connection(e)); break;
    case PN_CONNECTION_REMOTE_OPEN: on_remote_open(c, pn_event_connection(e)); break;
    case PN_CONNECTION_REMOTE_CLOSE:
        if (!(pn_connection_state(pn_event_connection(e)) & PN_LOCAL_CLOSED))
            pn_connection_close(pn_event_connection(e));
        break;
    case PN_SESSION_REMOTE_OPEN: {
        pn_session_t *ssn = pn_event_session(e);
        if (!pn_session_get_context(ssn)) {
            /* The number the admin API shows for it: 1, 2, ... in the
             * order the client began them (0 is skipped on wrapping, as
             * it stands for "none"). Without memory it is not listed. */
            if (!++c->next_session)
                c->next_session = 1;
            if (amqp__reg_chan_open(&c->reg, c->next_session) == 0)
                pn_session_set_context(ssn, (void *)(uintptr_t)c->next_session);
        }
        if (pn_session_state(ssn) & PN_LOCAL_UNINIT)
            pn_session_open(ssn);
        break;
    }
    case PN_SESSION_REMOTE_CLOSE: {
        pn_session_t *ssn = pn_event_session(e);
        /* Its links end with it. */
        for (amqp__link *l = c->links, *next; l; l = next) {
            next = l->next;
            if (l->link && pn_link_session(l->link) == ssn)
                on_link_close(c, l->link);
        }
        if (!(pn_session_state(ssn) & PN_LOCAL_CLOSED))
            pn_session_close(ssn);
        if (pn_session_get_context(ssn))
            amqp__reg_chan_close(&c->reg, (uint16_t)(uintptr_t)pn_session_get_context(ssn));
        pn_session_set_context(ssn, NULL);
        pn_session_free(ssn);
        break;
    }
    case PN_LINK_REMOTE_OPEN: on_link_open(c, pn_event_link(e)); break;
    case PN_LINK_REMOTE_CLOSE:
    case PN_LINK_REMOTE_DETACH: on_link_close(c, pn_event_link(e)); break;
    case PN_LINK_FLOW: {
        pn_link_t *link = pn_event_link(e);
        amqp__link *l = pn_link_get_context(link);
        if (l && !l->closed && pn_link_is_sender(link))
            amqp__consumer_flow(c, l);
        break;
    }
    case PN_DELIVERY: {
        pn_delivery_t *d = pn_event_delivery(e);
        pn_link_t *link = pn_delivery_link(d);
        amqp__link *l = pn_link_get_context(link);
        if (!l || l->closed)
            discard(d);
        else if (pn_link_is_receiver(link))
            amqp__pub_delivery(c, l, d);
        else
            amqp__consumer_disposition(c, l, d);
        break;
    }
    case PN_LINK_FINAL: {
        amqp__link *l = pn_link_get_context(pn_event_link(e));
        if (l) {
            if (!l->closed) {
                l->closed = true;
                if (l->kind == AMQP__PUB)
                    amqp__pub_closed(c, l);
                else
                    amqp__consumer_closed(c, l);
            }
            pn_link_set_context(l->link, NULL);
            l->link = NULL;
            amqp__link_unref(l);
        }
        break;
    }
    case PN_TRANSPORT_ERROR: log_transport_error(c, pn_event_transport(e)); break;
    default: break;
    }
}

/* ---------------------------------------------------- logins, permissions */

int amqp__perm(amqp__conn *c, amqp_perm what, const char *kind, const char *name, char *why, size_t len)
{
    if (!c->cfg->perm)
        return 0;
    /* One vhost for now: where virtual hosts come, the connection's. */
    return c->cfg->perm(c->cfg->perm_ctx, c->sasl.user, AMQP_VHOST_DEFAULT, what, kind, name, why, len);
}

void amqp__login_refused(amqp__conn *c)
{
    if (c->sasl.hold_decided)
        return;
    c->sasl.hold_decided = true;
    uint32_t ms = c->cfg->auth_delay ? c->cfg->auth_delay(c->cfg->auth_ctx, (struct sockaddr *)&c->sasl.peer) : 0;
    c->sasl.hold_until = ms ? uv_now(c->loop) + ms : 0;
}

bool amqp__login_held(amqp__conn *c)
{
    if (!c->sasl.hold_until)
        return false;
    uint64_t now = uv_now(c->loop);
    if (now >= c->sasl.hold_until) {
        c->sasl.hold_until = 0; /* over: the refusal goes out this round */
        return false;
    }
    /* Nothing read (what a guesser sends next waits in the socket) and
     * nothing written (the refusal waits in our buffer) until then. */
    amqp__sock_read_stop(c);
    c->writing = false;
    amqp__sock_update_poll(c);
    uv_timer_start(&c->timer, amqp__conn_on_timer, c->sasl.hold_until - now, 0);
    return true;
}

/* -------------------------------------------------------------- rounds */

void amqp__conn_on_timer(uv_timer_t *t)
{
    amqp__conn *c = t->data;
    if (c->finished)
        return;
    sv_enter(c->self);
    c->retry_armed = false;
    if (c->c91)
        amqp__091_work(c);
    else
        amqp__conn_work(c);
    sv_leave(c->self);
}

static void arm_timer(amqp__conn *c, bool retry, bool held)
{
    uint64_t now = uv_now(c->loop), at = 0;
    if (c->deadline)
        at = c->deadline > now + TICK_FLOOR_MS ? c->deadline : now + TICK_FLOOR_MS;
    if (retry && (!at || now + RETRY_MS < at))
        at = now + RETRY_MS;
    if (held && (!at || now + HELD_MS < at))
        at = now + HELD_MS;
    if (at)
        uv_timer_start(&c->timer, amqp__conn_on_timer, at - now, 0);
    else
        uv_timer_stop(&c->timer);
}

/* The connection has ended (closed by either side, or broken): free what
 * it holds in queues' names and end the process. Queues monitor their
 * consumers' connections and return unsettled messages themselves. */
void amqp__conn_finish(amqp__conn *c)
{
    if (c->finished)
        return;
    c->finished = true;
    amqp__sock_read_stop(c);
    c->writing = false;
    amqp__sock_update_poll(c); /* level-triggered: watch nothing until the lingering close */
    uv_timer_stop(&c->timer);
    pn_condition_t *cond = pn_transport_condition(c->d.transport);
    sv_log(SV_LOG_INFO, "connection %s closed%s%s", c->peer, pn_condition_is_set(cond) ? ": " : "",
           pn_condition_is_set(cond) ? pn_condition_get_name(cond) : "");
    sv_stop(c->self, SV_NORMAL);
}

void amqp__conn_work(amqp__conn *c)
{
    if (c->finished)
        return;
    if (c->sasl.done && !c->sasl.ok)
        amqp__login_refused(c); /* once: the delay the broker gives this address */
    if (amqp__login_held(c))
        return;
    c->deadline = (uint64_t)pn_transport_tick(c->d.transport, (int64_t)uv_now(c->loop));
    if (c->credit_held)
        amqp__pub_refresh(c);
    bool waiting;
    do { /* writing can raise events (transport closed): until quiet */
        pn_event_t *e;
        while ((e = pn_connection_driver_next_event(&c->d)))
            handle_event(c, e);
        waiting = amqp__outbox_flush(c);
        amqp__sock_write_out(c);
        /* The socket took it all (or most): hand proton the next deliveries. */
        if (c->out_len && (!c->writing || c->wlen < FEED_BYTES / 2)) {
            amqp__consumer_feed(c, FEED_BYTES);
            amqp__sock_write_out(c);
        }
        /* After a bad frame, once our close is out (proton has closed its
         * write side), input is over. */
        if (c->rejecting && !c->writing && pn_connection_driver_write_closed(&c->d) &&
            !pn_connection_driver_read_closed(&c->d))
            pn_connection_driver_read_close(&c->d);
        /* Input over and all output written: nothing more can happen
         * (proton leaves the write side open after some SASL errors). */
        if (pn_connection_driver_read_closed(&c->d) && !c->writing && !pn_connection_driver_write_buffer(&c->d).size &&
            !pn_connection_driver_write_closed(&c->d))
            pn_connection_driver_write_close(&c->d);
    } while (pn_connection_driver_has_event(&c->d) || (c->out_len && !c->writing));
    if (pn_connection_driver_finished(&c->d) && !c->writing) {
        amqp__conn_finish(c);
        return;
    }
    bool held = !c->rejecting && !amqp__pub_may_read(c);
    if ((c->writing && c->wlen > WRITE_BACKLOG) || c->rejecting || held) {
        amqp__sock_read_stop(c); /* the client is not reading: stop making more to write; or publishes are held */
        if (held && !c->idle_off) {
            /* Not reading is our doing, not the client's silence: no idle
             * timeout meanwhile (back once the client is read again). */
            pn_transport_set_idle_timeout(c->d.transport, 0);
            c->idle_off = true;
        }
    } else {
        amqp__sock_read_start(c);
    }
    amqp__sock_update_poll(c);
    arm_timer(c, waiting, c->credit_held);
    c->counts.links = c->nlinks;
    amqp__reg_flush(&c->reg, &c->counts);
}

/* ------------------------------------------------------------- process */

/* host and port of a socket address, as text. */
static void addr_str(const struct sockaddr_storage *ss, char *host, size_t hlen, int *port)
{
    snprintf(host, hlen, "?");
    *port = 0;
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)ss;
        inet_ntop(AF_INET, &a->sin_addr, host, (socklen_t)hlen);
        *port = ntohs(a->sin_port);
    } else if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ss;
        inet_ntop(AF_INET6, &a->sin6_addr, host, (socklen_t)hlen);
        *port = ntohs(a->sin6_port);
    }
}

/* Names the connection as RabbitMQ does, "peer -> local", for logs and
 * the admin API. */
static void describe_peer(amqp__conn *c)
{
    struct sockaddr_storage ss = {0}, ls = {0};
    socklen_t len = sizeof ss, llen = sizeof ls;
    amqp_conn_info *i = &c->reg.info;
    if (getpeername(c->fd, (struct sockaddr *)&ss, &len) == 0)
        c->sasl.peer = ss;
    addr_str(&ss, i->peer_host, sizeof i->peer_host, &i->peer_port);
    if (getsockname(c->fd, (struct sockaddr *)&ls, &llen) < 0)
        ls.ss_family = AF_UNSPEC;
    addr_str(&ls, i->host, sizeof i->host, &i->port);
    const char *fmt = ss.ss_family == AF_INET6 ? "[%s]:%d" : "%s:%d";
    snprintf(c->peer, sizeof c->peer, fmt, i->peer_host, i->peer_port);
    char local[80];
    snprintf(local, sizeof local, ls.ss_family == AF_INET6 ? "[%s]:%d" : "%s:%d", i->host, i->port);
    snprintf(c->name, sizeof c->name, "%s -> %s", c->peer, local);
}

static int conn_init(sv_proc *self, void *arg)
{
    int fd = (int)((intptr_t)arg & ~(intptr_t)AMQP__FD_TLS);
    bool tls = (intptr_t)arg & AMQP__FD_TLS;
    amqp__conn *c = calloc(1, sizeof *c);
    if (!c) {
        close(fd);
        return -ENOMEM;
    }
    c->self = self;
    c->cfg = conn_cfg;
    c->tags = SV_MAP_INIT(amqp__tag);
    c->outboxes = SV_MAP_INIT(amqp__outbox);
    c->consumers = SV_MAP_INIT(amqp__ref);
    c->calls = SV_MAP_INIT(amqp__ref);
    c->loop = sv_loop(self);
    c->fd = fd;
    int rc = uv_poll_init_socket(c->loop, &c->poll, fd);
    if (rc < 0) {
        close(fd);
        free(c);
        return rc;
    }
    uv_timer_init(c->loop, &c->timer);
    c->poll.data = c->timer.data = c;
    c->handles = 2;
    int one = 1, idle = 60;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
    setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
    describe_peer(c);
    /* TLS below both front ends: they read and write plaintext (tls.c). */
    if (tls && (!c->cfg->tls_ctx || amqp__tls_start(c, c->cfg->tls_ctx) < 0)) {
        amqp__sock_close(c); /* frees c */
        return -ENOMEM;
    }
    c->reg.info.ssl = tls; /* before it is listed: fixed for its life */
    amqp__reg_add(&c->reg, sv_self(self), c->name);
    c->counted = true;
    if (atomic_fetch_add(&amqp__nconns, 1) + 1 > c->cfg->max_connections)
        c->refuse = true;

    /* NULLs: the driver makes both, and frees what it made if it fails. */
    if (pn_connection_driver_init(&c->d, NULL, NULL) != 0) {
        /* terminate does not run after a failed init (sv.h): undo here.
         * The handles' close frees c, so it must be out of the registry. */
        amqp__reg_remove(&c->reg);
        atomic_fetch_sub(&amqp__nconns, 1);
        amqp__sock_close(c);
        return -ENOMEM;
    }
    pn_transport_t *t = c->d.transport;
    pn_transport_set_server(t);
    /* A client that skips SASL (as proton-c clients do unless told
     * otherwise) is an anonymous client: let in only where ANONYMOUS is,
     * and checked as the anonymous user when it opens (on_remote_open). */
    pn_transport_require_auth(t, !c->cfg->anonymous);
    pn_transport_set_max_frame(t, c->cfg->max_frame_size);
    pn_transport_set_idle_timeout(t, c->cfg->idle_timeout_ms);
    amqp__fcheck_init(&c->fv, c->cfg->max_frame_size);
    /* Links refused over max_links stay attached until the client's detach:
     * room for those, but not for an endless stream of attaches. */
    c->fv.max_handles = c->cfg->max_links * 2 + 64;
    c->sasl.cfg = c->cfg;
    amqp__sasl_setup(t, &c->sasl);
    pn_connection_driver_bind(&c->d);
    sv_set_state(self, c);
    sv_set_label(self, c->peer);
    sv_trap_exit(self, true);
    amqp__conn_work(c);
    return 0;
}

/* Closes the AMQP connection with a reason the client sees. */
void amqp__conn_close_with(amqp__conn *c, const char *cond, const char *desc)
{
    pn_connection_t *pc = c->d.connection;
    if (!(pn_connection_state(pc) & PN_LOCAL_CLOSED)) {
        pn_condition_format(pn_connection_condition(pc), cond, "%s", desc);
        if (pn_connection_state(pc) & PN_LOCAL_UNINIT)
            pn_connection_open(pc);
        pn_connection_close(pc);
    }
}

/* Deliveries the connection will never hand on: their references go. */
static void conn_discard(sv_msg *m)
{
    rt_deliver_batch *db = m->tag == RT_Q_DELIVER ? SV_MSG_AS(m, rt_deliver_batch) : NULL;
    if (db && m->len >= sizeof *db + (size_t)db->n * sizeof(rt_delivery))
        for (uint32_t i = 0; i < db->n; i++)
            rt_msg_unref(db->d[i].m);
}

static int conn_info(sv_proc *self, sv_msg *m)
{
    amqp__conn *c = sv_state(self);
    if (c->finished) {
        conn_discard(m); /* the queue gets them back when it hears we are gone */
        return 0;
    }
    if (c->c91) {
        amqp__091_info(c, m);
        if (m->kind == SV_MSG_EXIT && sv_pid_eq(m->from, sv_parent(self)))
            sv_stop(self, m->status);
        return 0;
    }
    switch (m->tag) {
    case RT_Q_DELIVER: amqp__consumer_deliver(c, m); break;
    case RT_Q_CONFIRM: amqp__pub_confirm(c, m); break;
    case RT_Q_DRAINED: amqp__consumer_drained(c, m); break;
    case RT_Q_CONSUMER_GONE: amqp__consumer_gone(c, m); break;
    case AMQP__TAG_CLOSE: { /* from the admin API */
        char reason[256];
        snprintf(reason, sizeof reason, "%.*s", (int)m->len, (char *)m->data);
        amqp__conn_close_with(c, "amqp:connection:forced", reason);
        break;
    }
    default:
        if (m->kind == SV_MSG_REPLY)
            on_reply(c, m);
        else if (m->kind == SV_MSG_EXIT && sv_pid_eq(m->from, sv_parent(self)))
            amqp__conn_close_with(c, "amqp:connection:forced", "the broker is shutting down");
        break;
    }
    amqp__conn_work(c);
    if (m->kind == SV_MSG_EXIT && sv_pid_eq(m->from, sv_parent(self)))
        sv_stop(self, m->status); /* what could be written was; don't hold the shutdown up */
    return 0;
}

static void conn_terminate(sv_proc *self, int reason)
{
    amqp__conn *c = sv_state(self);
    if (!c->finished && reason != SV_NORMAL) {
        char rb[96];
        sv_log(SV_LOG_WARNING, "connection %s ended: %s", c->peer, sv_reason_str(reason, rb, sizeof rb));
    }
    c->finished = true;
    amqp__reg_remove(&c->reg);
    amqp__outbox_free_all(c);
    amqp__consumer_free_out(c);
    for (uint32_t i = 0; i < c->tags.cap; i++) {
        amqp__tag *t = sv_map_at(&c->tags, i);
        (void)t; /* deliveries die with the driver; nothing else is held */
    }
    sv_map_free(&c->tags);
    sv_map_free(&c->consumers);
    sv_map_free(&c->calls);
    while (c->links)
        link_free(c->links);
    pn_connection_driver_destroy(&c->d);
    amqp__fcheck_free(&c->fv);
    amqp__091_free(c);
    if (c->counted)
        atomic_fetch_sub(&amqp__nconns, 1);
    amqp__sock_read_stop(c);
    uv_timer_stop(&c->timer);
    amqp__sock_linger(c); /* c is freed when both handles have closed */
}

const sv_server_ops amqp__conn_ops = {
    .name = "amqp_connection",
    .init = conn_init,
    .handle_info = conn_info,
    .terminate = conn_terminate,
    .discard = conn_discard,
};

int amqp__conn_start(sv_proc *sup, const sv_spawn_opts *opts, void *arg, sv_pid *pid)
{
    int rc = sv_spawn(sup, &amqp__conn_ops, arg, opts, pid);
    if (rc < 0)
        close((int)((intptr_t)arg & ~(intptr_t)AMQP__FD_TLS)); /* init never ran: the socket is ours to close */
    return rc;
}

void amqp__conn_configure(const amqp_config *cfg) { conn_cfg = cfg; }

uint32_t amqp_connections(void) { return atomic_load(&amqp__nconns); }
