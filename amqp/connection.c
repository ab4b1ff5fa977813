/* connection.c — one client connection: a process, its socket, its proton
 * connection driver.
 *
 * Everything the connection does happens in rounds: bytes arrive (or a
 * queue sends deliveries, or a timer fires), proton turns them into events,
 * the events are handled, and only then is the round's work sent out: one
 * batch per queue (publishes, settlements) and one write to the socket.
 * Reads go straight into proton's input buffer; writes go straight out of
 * proton's output buffer, and only what the socket refuses is copied.
 * Messages for a queue whose mailbox is full wait in that queue's outbox,
 * in order, and the publishing links get no new credit meanwhile: that is
 * the broker's back-pressure.
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

#define TICK_FLOOR_MS 100       /* however short the peer's idle timeout, no more empty frames than this */
#define RETRY_MS 1              /* a full queue mailbox is tried again this soon */
#define HELD_MS 5               /* held-back credit (alarm, slow-down) is reconsidered this often */
#define WRITE_BACKLOG (4u << 20) /* stop reading while this much output waits for the socket */
#define FEED_BYTES (256u << 10)  /* deliveries handed to proton at a time, as the socket drains */
#define PUB_BATCH 256           /* publishes per batch message */
#define SETTLE_BATCH 256

atomic_uint amqp__nconns;
static const amqp_config *conn_cfg;

static void conn_work(amqp__conn *c);

/* ------------------------------------------------------------- handles */

/* The socket is ours (read and written with read/write), watched with a
 * uv_poll: proton's own buffers are the only buffers. Output the socket
 * does not take stays in proton's buffer until the socket is writable
 * again, so nothing is ever copied on its way out. */

static void on_poll(uv_poll_t *p, int status, int events);

static void on_handle_closed(uv_handle_t *h)
{
    amqp__conn *c = h->data;
    if (--c->handles == 0) {
        close(c->fd); /* after the poll handle: libuv must not watch a closed fd */
        free(c);
    }
}

static void close_handles(amqp__conn *c)
{
    c->lingering = false;
    if (!uv_is_closing((uv_handle_t *)&c->timer)) {
        uv_timer_stop(&c->timer);
        uv_close((uv_handle_t *)&c->timer, on_handle_closed);
    }
    if (!uv_is_closing((uv_handle_t *)&c->poll))
        uv_close((uv_handle_t *)&c->poll, on_handle_closed);
}

/* Watches the socket for what the connection can use now. */
static void update_poll(amqp__conn *c)
{
    int ev = c->lingering ? UV_READABLE : (c->reading ? UV_READABLE : 0) | (c->writing ? UV_WRITABLE : 0);
    if (ev == c->events)
        return;
    if (ev ? uv_poll_start(&c->poll, ev, on_poll) == 0 : uv_poll_stop(&c->poll) == 0)
        c->events = ev;
}

/* A lingering close: after the last write, half-close and read (and drop)
 * what the client still sends, briefly, before closing. Closing a socket
 * with unread input makes the kernel send RST, and the client may then
 * lose our last frames: the close that says why. */
#define LINGER_MS 1000

static void linger_input(amqp__conn *c)
{
    char sink[16384];
    for (;;) {
        ssize_t n = read(c->fd, sink, sizeof sink);
        if (n > 0)
            continue;
        if (n < 0 && errno == EINTR)
            continue;
        if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK))
            close_handles(c); /* the client has gone too */
        return;
    }
}

static void linger_over(uv_timer_t *t)
{
    amqp__conn *c = t->data;
    if (c->lingering)
        close_handles(c);
}

static void linger(amqp__conn *c)
{
    c->lingering = true;
    if (shutdown(c->fd, SHUT_WR) < 0) {
        close_handles(c);
        return;
    }
    update_poll(c);
    uv_timer_start(&c->timer, linger_over, LINGER_MS, 0);
}

/* ---------------------------------------------------------------- input */

static void read_start(amqp__conn *c)
{
    if (!c->finished && !c->rejecting && !pn_connection_driver_read_closed(&c->d))
        c->reading = true;
}

static void read_stop(amqp__conn *c) { c->reading = false; }

static void close_with(amqp__conn *c, const char *cond, const char *desc);

/* Proton never sees a bad frame; the client gets a close that says what
 * was wrong (in SASL, where there is no close, an EOF). */
static void reject_input(amqp__conn *c, const char *cond, const char *why)
{
    sv_log(SV_LOG_WARNING, "connection %s: %s: %s", c->peer, cond, why);
    c->rejecting = true;
    read_stop(c);
    if (pn_connection_state(c->d.connection) & PN_REMOTE_ACTIVE) {
        close_with(c, cond, why);
    } else {
        /* Before the client's open proton sends no close of ours, but its
         * own error path does: the condition on the transport, input ended. */
        pn_connection_driver_errorf(&c->d, cond, "%s", why);
        pn_connection_driver_read_close(&c->d);
    }
}

/* Reads what the socket has, straight into proton's input buffer, each
 * chunk checked by the frame validator first. */
static void read_input(amqp__conn *c)
{
    for (int i = 0; i < 8 && c->reading; i++) {
        pn_rwbytes_t rb = pn_connection_driver_read_buffer(&c->d);
        if (!rb.size)
            return; /* proton holds all it can take: the next round reads on */
        ssize_t n = read(c->fd, rb.start, rb.size);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n <= 0) {
            if (n < 0)
                sv_log(SV_LOG_DEBUG, "connection %s: read: %s", c->peer, strerror(errno));
            read_stop(c);
            pn_connection_driver_read_close(&c->d);
            return;
        }
        const char *cond;
        char why[200];
        if (amqp__fv_feed(&c->fv, rb.start, (size_t)n, &cond, why, sizeof why) < 0) {
            reject_input(c, cond, why);
            return;
        }
        pn_connection_driver_read_done(&c->d, (size_t)n);
        c->counts.recv_oct += (uint64_t)n;
        if ((size_t)n < rb.size)
            return; /* the socket is empty */
    }
}

/* --------------------------------------------------------------- output */

/* Writes what proton has for the socket, from proton's own buffer; what the
 * socket does not take waits there until it is writable. */
static void write_out(amqp__conn *c)
{
    c->writing = false;
    for (;;) {
        pn_bytes_t wb = pn_connection_driver_write_buffer(&c->d);
        if (!wb.size)
            return;
        ssize_t n = send(c->fd, wb.start, wb.size, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            c->writing = true;
            c->wlen = wb.size;
            return;
        }
        if (n < 0) {
            pn_connection_driver_write_close(&c->d);
            return;
        }
        pn_connection_driver_write_done(&c->d, (size_t)n);
        c->counts.send_oct += (uint64_t)n;
        if ((size_t)n < wb.size) {
            c->writing = true;
            c->wlen = wb.size - (size_t)n;
            return;
        }
    }
}

static void on_poll(uv_poll_t *p, int status, int events)
{
    amqp__conn *c = p->data;
    if (c->lingering) {
        linger_input(c);
        return;
    }
    if (c->finished)
        return;
    sv_enter(c->self);
    if (status < 0) { /* the socket is broken */
        read_stop(c);
        pn_connection_driver_read_close(&c->d);
        pn_connection_driver_write_close(&c->d);
    } else if (events & UV_READABLE) {
        read_input(c);
    }
    conn_work(c);
    sv_leave(c->self);
}

/* -------------------------------------------------------------- outboxes */

static amqp__outbox *outbox(amqp__conn *c, sv_pid pid)
{
    uint64_t k1 = ((uint64_t)pid.node << 32) | pid.creation, k2 = ((uint64_t)pid.index << 32) | pid.gen;
    amqp__outbox *o = sv_map_put(&c->outboxes, k1, k2);
    if (o && sv_pid_is_none(o->pid))
        o->pid = pid;
    return o;
}

static void ob_append(amqp__outbox *o, sv_msg *m)
{
    m->next = NULL;
    if (o->tail)
        o->tail->next = m;
    else
        o->head = m;
    o->tail = m;
}

/* Ends the batches being filled: they join the line. */
static void ob_seal(amqp__outbox *o)
{
    if (o->pub) {
        ob_append(o, o->pub);
        o->pub = NULL;
    }
    if (o->settle) {
        ob_append(o, o->settle);
        o->settle = NULL;
    }
}

void amqp__outbox_push(amqp__conn *c, sv_pid pid, sv_msg *m)
{
    amqp__outbox *o = outbox(c, pid);
    if (!o) {
        sv_log(SV_LOG_ERROR, "connection %s: out of memory; a message for a queue is lost", c->peer);
        sv_msg_free(m);
        return;
    }
    ob_seal(o);
    ob_append(o, m);
}

/* The batch being filled in *slot, with room for one more entry: a full
 * one is sealed into the line and a new one started. Batches begin with
 * their entry count (rt_pub_batch, rt_settle_batch). */
static void *ob_batch(amqp__conn *c, sv_pid pid, bool settle, uint32_t tag, size_t head, size_t each, uint32_t cap)
{
    amqp__outbox *o = outbox(c, pid);
    if (!o)
        return NULL;
    sv_msg **slot = settle ? &o->settle : &o->pub;
    if (*slot && *(uint32_t *)(void *)(*slot)->data == cap)
        ob_seal(o);
    if (!*slot && !(*slot = sv_msg_new(tag, NULL, head + cap * each)))
        return NULL;
    return (*slot)->data;
}

rt_pub_batch *amqp__outbox_pub(amqp__conn *c, sv_pid pid)
{
    return ob_batch(c, pid, false, RT_Q_PUBLISH, sizeof(rt_pub_batch), sizeof(rt_pub), PUB_BATCH);
}

rt_settle_batch *amqp__outbox_settle(amqp__conn *c, sv_pid pid)
{
    return ob_batch(c, pid, true, RT_Q_SETTLE, sizeof(rt_settle_batch), sizeof(rt_settle), SETTLE_BATCH);
}

/* The references a refused or abandoned message holds. */
static void drop_queued(sv_msg *m)
{
    if (m->tag == RT_Q_PUBLISH) {
        rt_pub_batch *pb = (rt_pub_batch *)(void *)m->data;
        for (uint32_t i = 0; i < pb->n; i++)
            rt_msg_unref(pb->p[i].m);
    }
    sv_msg_free(m);
}

/* Publishes to a queue that is gone: their links learn it as "released". */
static void fail_publishes(amqp__conn *c, sv_msg *m)
{
    if (m->tag != RT_Q_PUBLISH)
        return;
    rt_pub_batch *pb = (rt_pub_batch *)(void *)m->data;
    sv_msg *conf = sv_msg_new(RT_Q_CONFIRM, NULL, sizeof(rt_confirm_batch) + pb->n * sizeof(rt_confirm));
    if (!conf)
        return;
    rt_confirm_batch *cb = (rt_confirm_batch *)(void *)conf->data;
    cb->n = pb->n;
    for (uint32_t i = 0; i < pb->n; i++)
        cb->c[i] = (rt_confirm){pb->p[i].tag, RT_RELEASED, RT_WHY_NONE};
    amqp__pub_confirm(c, conf);
    sv_msg_free(conf);
}

/* Sends every outbox's line, oldest first, until a mailbox says full.
 * True if something still waits. */
static bool flush_outboxes(amqp__conn *c)
{
    bool waiting = false;
    for (uint32_t i = 0; i < c->outboxes.cap; i++) {
        amqp__outbox *o = sv_map_at(&c->outboxes, i);
        if (!o)
            continue;
        ob_seal(o);
        while (o->head) {
            sv_msg *m = o->head, *next = m->next;
            /* Publishes the queue will not confirm are accepted once it has
             * them: note their tags first, the batch is the queue's after. */
            rt_pub taken[PUB_BATCH];
            uint32_t ntaken = 0;
            if (m->tag == RT_Q_PUBLISH) {
                rt_pub_batch *pb = (rt_pub_batch *)(void *)m->data;
                for (uint32_t k = 0; k < pb->n && pb->confirms < pb->n; k++)
                    if (!pb->p[k].confirm)
                        taken[ntaken++] = pb->p[k];
            }
            int rc = sv_send(o->pid, m);
            if (rc == 0 && ntaken)
                amqp__pub_taken(c, taken, ntaken);
            if (rc == -EAGAIN) {
                m->next = next; /* sv_send left it ours */
                waiting = true;
                break;
            }
            o->head = next;
            if (!next)
                o->tail = NULL;
            if (rc < 0) {
                /* The queue process is gone (deleted, or restarting):
                 * publishes are released, the rest no longer matters. */
                fail_publishes(c, m);
                drop_queued(m);
            }
        }
    }
    /* Empty outboxes go, so the map holds only queues with work. */
    for (uint32_t i = 0; i < c->outboxes.cap;) {
        amqp__outbox *o = sv_map_at(&c->outboxes, i);
        if (o && !o->head && !o->pub && !o->settle)
            sv_map_del(&c->outboxes, o->k1, o->k2, NULL); /* may move a later entry here: look again */
        else
            i++;
    }
    return waiting;
}

static void free_outboxes(amqp__conn *c)
{
    for (uint32_t i = 0; i < c->outboxes.cap; i++) {
        amqp__outbox *o = sv_map_at(&c->outboxes, i);
        if (!o)
            continue;
        ob_seal(o);
        while (o->head) {
            sv_msg *m = o->head;
            o->head = m->next;
            drop_queued(m);
        }
    }
    sv_map_free(&c->outboxes);
}

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
    rt_msg_unref(l->cur);
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
    sv_log(SV_LOG_INFO, "connection %s: link '%s' refused or closed: %s: %s", l->c->peer, pn_link_name(l->link),
           cond, desc);
    if (l->kind == AMQP__PUB)
        amqp__pub_closed(l->c, l);
    else
        amqp__con_closed(l->c, l);
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
        amqp__con_reply(c, e.l, m);
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
        if (!c->cfg->auth || c->cfg->auth(c->cfg->auth_ctx, "ANONYMOUS", NULL, NULL, peer, c->sasl.user,
                                          sizeof c->sasl.user) < 0) {
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
        amqp__con_attach(c, link);
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
            amqp__con_closed(c, l);
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
    if (c->rejecting)
        return; /* said already, when the bad frame came */
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
    case PN_CONNECTION_INIT:
        on_connection_init(c, pn_event_connection(e));
        break;
    case PN_CONNECTION_REMOTE_OPEN:
        on_remote_open(c, pn_event_connection(e));
        break;
    case PN_CONNECTION_REMOTE_CLOSE:
        if (!(pn_connection_state(pn_event_connection(e)) & PN_LOCAL_CLOSED))
            pn_connection_close(pn_event_connection(e));
        break;
    case PN_SESSION_REMOTE_OPEN:
        if (pn_session_state(pn_event_session(e)) & PN_LOCAL_UNINIT)
            pn_session_open(pn_event_session(e));
        break;
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
        pn_session_free(ssn);
        break;
    }
    case PN_LINK_REMOTE_OPEN:
        on_link_open(c, pn_event_link(e));
        break;
    case PN_LINK_REMOTE_CLOSE:
    case PN_LINK_REMOTE_DETACH:
        on_link_close(c, pn_event_link(e));
        break;
    case PN_LINK_FLOW: {
        pn_link_t *link = pn_event_link(e);
        amqp__link *l = pn_link_get_context(link);
        if (l && !l->closed && pn_link_is_sender(link))
            amqp__con_flow(c, l);
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
            amqp__con_disposition(c, l, d);
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
                    amqp__con_closed(c, l);
            }
            pn_link_set_context(l->link, NULL);
            l->link = NULL;
            amqp__link_unref(l);
        }
        break;
    }
    case PN_TRANSPORT_ERROR:
        log_transport_error(c, pn_event_transport(e));
        break;
    default:
        break;
    }
}

/* -------------------------------------------------------------- rounds */

static void on_timer(uv_timer_t *t)
{
    amqp__conn *c = t->data;
    if (c->finished)
        return;
    sv_enter(c->self);
    c->retry_armed = false;
    conn_work(c);
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
        uv_timer_start(&c->timer, on_timer, at - now, 0);
    else
        uv_timer_stop(&c->timer);
}

/* The connection has ended (closed by either side, or broken): free what
 * it holds in queues' names and end the process. Queues monitor their
 * consumers' connections and return unsettled messages themselves. */
static void finish(amqp__conn *c)
{
    if (c->finished)
        return;
    c->finished = true;
    read_stop(c);
    c->writing = false;
    update_poll(c); /* level-triggered: watch nothing until the lingering close */
    uv_timer_stop(&c->timer);
    pn_condition_t *cond = pn_transport_condition(c->d.transport);
    sv_log(SV_LOG_INFO, "connection %s closed%s%s", c->peer, pn_condition_is_set(cond) ? ": " : "",
           pn_condition_is_set(cond) ? pn_condition_get_name(cond) : "");
    sv_stop(c->self, SV_NORMAL);
}

static void conn_work(amqp__conn *c)
{
    if (c->finished)
        return;
    c->deadline = (uint64_t)pn_transport_tick(c->d.transport, (int64_t)uv_now(c->loop));
    if (c->credit_held)
        amqp__pub_refresh(c);
    bool waiting;
    do { /* writing can raise events (transport closed): until quiet */
        pn_event_t *e;
        while ((e = pn_connection_driver_next_event(&c->d)))
            handle_event(c, e);
        waiting = flush_outboxes(c);
        write_out(c);
        /* The socket took it all (or most): hand proton the next deliveries. */
        if (c->out_len && (!c->writing || c->wlen < FEED_BYTES / 2)) {
            amqp__con_feed(c, FEED_BYTES);
            write_out(c);
        }
        /* After a bad frame, once our close is out (proton has closed its
         * write side), input is over. */
        if (c->rejecting && !c->writing && pn_connection_driver_write_closed(&c->d) &&
            !pn_connection_driver_read_closed(&c->d))
            pn_connection_driver_read_close(&c->d);
        /* Input over and all output written: nothing more can happen
         * (proton leaves the write side open after some SASL errors). */
        if (pn_connection_driver_read_closed(&c->d) && !c->writing &&
            !pn_connection_driver_write_buffer(&c->d).size && !pn_connection_driver_write_closed(&c->d))
            pn_connection_driver_write_close(&c->d);
    } while (pn_connection_driver_has_event(&c->d) || (c->out_len && !c->writing));
    if (pn_connection_driver_finished(&c->d) && !c->writing) {
        finish(c);
        return;
    }
    if ((c->writing && c->wlen > WRITE_BACKLOG) || c->rejecting)
        read_stop(c); /* the client is not reading: stop making more to write */
    else
        read_start(c);
    update_poll(c);
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
    int fd = (int)(intptr_t)arg;
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
        close_handles(c);
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
    amqp__fv_init(&c->fv, c->cfg->max_frame_size);
    c->sasl.cfg = c->cfg;
    amqp__sasl_setup(t, &c->sasl);
    pn_connection_driver_bind(&c->d);
    sv_set_state(self, c);
    sv_set_label(self, c->peer);
    sv_trap_exit(self, true);
    conn_work(c);
    return 0;
}

/* Closes the AMQP connection with a reason the client sees. */
static void close_with(amqp__conn *c, const char *cond, const char *desc)
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
    switch (m->tag) {
    case RT_Q_DELIVER:
        amqp__con_deliver(c, m);
        break;
    case RT_Q_CONFIRM:
        amqp__pub_confirm(c, m);
        break;
    case RT_Q_DRAINED:
        amqp__con_drained(c, m);
        break;
    case RT_Q_CONSUMER_GONE:
        amqp__con_gone(c, m);
        break;
    case AMQP__TAG_CLOSE: { /* from the admin API */
        char reason[256];
        snprintf(reason, sizeof reason, "%.*s", (int)m->len, (char *)m->data);
        close_with(c, "amqp:connection:forced", reason);
        break;
    }
    default:
        if (m->kind == SV_MSG_REPLY)
            on_reply(c, m);
        else if (m->kind == SV_MSG_EXIT && sv_pid_eq(m->from, sv_parent(self)))
            close_with(c, "amqp:connection:forced", "the broker is shutting down");
        break;
    }
    conn_work(c);
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
    free_outboxes(c);
    amqp__con_free_out(c);
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
    amqp__fv_free(&c->fv);
    if (c->counted)
        atomic_fetch_sub(&amqp__nconns, 1);
    read_stop(c);
    uv_timer_stop(&c->timer);
    linger(c); /* c is freed when both handles have closed */
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
        close((int)(intptr_t)arg); /* init never ran: the socket is ours to close */
    return rc;
}

void amqp__conn_configure(const amqp_config *cfg) { conn_cfg = cfg; }

uint32_t amqp_connections(void) { return atomic_load(&amqp__nconns); }
