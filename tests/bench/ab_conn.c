/* ab_conn.c — amqp_bench's connections: a conn_ctx per connection, its
 * SASL, session and links made to its role's needs, and the event dispatch
 * that hands each proactor event to the role's code (ab_throughput.c,
 * ab_reqrep.c, ab_direct.c, ab_idle.c) and closes connections when the run
 * ends. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <proton/disposition.h>
#include <proton/sasl.h>
#include <proton/ssl.h>
#include <proton/terminus.h>
#include <proton/transport.h>

#include "tests/bench/ab.h"

const char *const ab_role_name[] = {"producer", "consumer", "reqrep-server", "reqrep-client", "direct-peer", "idle"};

/* A new conn_ctx, listed in b->conns (freed when the run ends). */
conn_ctx *ab_ctx_new_locked(bench *b, conn_role role, int index)
{
    conn_ctx *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    c->b = b;
    c->role = role;
    c->index = index;
    c->next = b->conns;
    b->conns = c;
    return c;
}

void ab_ctx_free(conn_ctx *c)
{
    free(c->retry);
    free(c->lat);
    free(c->buf);
    free(c->out);
    for (size_t i = 0; i < c->pend_n; i++)
        free(c->pend[i].bytes);
    free(c->pend);
    if (c->msg)
        pn_message_free(c->msg);
    free(c);
}

static void setup_sasl(bench *b, pn_connection_t *conn, pn_transport_t *t)
{
    pn_sasl_t *s = pn_sasl(t);
    if (b->o->have_user && !b->o->direct) {
        pn_connection_set_user(conn, b->o->user);
        pn_connection_set_password(conn, b->o->password);
        /* PLAIN over plain TCP: this is a benchmark on loopback */
        pn_sasl_set_allow_insecure_mechs(s, true);
        pn_sasl_allowed_mechs(s, "PLAIN");
    } else {
        pn_sasl_allowed_mechs(s, "ANONYMOUS");
    }
}

pn_link_t *ab_make_sender(bench *b, pn_session_t *s, const char *name, const char *target)
{
    pn_link_t *l = pn_sender(s, name);
    if (!l)
        return NULL;
    pn_terminus_set_address(pn_link_target(l), target); /* NULL: anonymous relay */
    /* Persistent runs ask for a durable terminus: RabbitMQ 3's AMQP 1.0
     * plugin declares /queue/Q durable only then (Plexus's named queues
     * are durable either way). Both ends ask alike, or RabbitMQ refuses
     * the second declare as inequivalent. */
    if (b->o->persistent && target)
        pn_terminus_set_durability(pn_link_target(l), PN_DELIVERIES);
    pn_link_set_snd_settle_mode(l, b->qos == QOS_AMO ? PN_SND_SETTLED : PN_SND_UNSETTLED);
    pn_link_set_rcv_settle_mode(l, PN_RCV_FIRST);
    return l;
}

static pn_link_t *make_receiver(bench *b, pn_session_t *s, const char *name, const char *source, bool dynamic)
{
    pn_link_t *l = pn_receiver(s, name);
    if (!l)
        return NULL;
    if (dynamic)
        pn_terminus_set_dynamic(pn_link_source(l), true);
    else
        pn_terminus_set_address(pn_link_source(l), source);
    if (b->o->persistent && !dynamic)
        pn_terminus_set_durability(pn_link_source(l), PN_DELIVERIES);
    pn_link_set_snd_settle_mode(l, b->qos == QOS_AMO ? PN_SND_SETTLED : PN_SND_UNSETTLED);
    pn_link_set_rcv_settle_mode(l, PN_RCV_FIRST);
    return l;
}

/* Create a client connection for c, open its session and links (proton
 * queues the frames until the transport is bound) and connect it. */
int ab_ctx_connect_locked(bench *b, conn_ctx *c)
{
    pn_connection_t *conn = pn_connection();
    pn_transport_t *t = pn_transport();
    if (!conn || !t) {
        if (conn)
            pn_connection_free(conn);
        if (t)
            pn_transport_free(t);
        return -ENOMEM;
    }
    char cid[128], name[160];
    snprintf(cid, sizeof cid, "amqp-bench-%ld-%08x-%s-%d", (long)getpid(), b->nonce, ab_role_name[c->role], c->index);
    pn_connection_set_container(conn, cid);
    pn_connection_set_context(conn, c);
    if (!b->o->direct)
        pn_connection_set_hostname(conn, b->o->host);
    setup_sasl(b, conn, t);
    if (b->o->tls && !b->o->direct) {
        /* One client domain for every connection (connects run under
         * b->lock); the certificate is not checked: the point is what TLS
         * costs on the wire, on loopback. */
        static pn_ssl_domain_t *dom;
        if (!dom && (dom = pn_ssl_domain(PN_SSL_MODE_CLIENT)))
            pn_ssl_domain_set_peer_authentication(dom, PN_SSL_ANONYMOUS_PEER, NULL);
        if (!dom || pn_ssl_init(pn_ssl(t), dom, NULL) != 0) {
            pn_connection_free(conn);
            pn_transport_free(t);
            return -ENOMEM;
        }
    }
    if (b->o->max_frame)
        pn_transport_set_max_frame(t, b->o->max_frame);

    if (c->role == ROLE_IDLE) { /* SASL and open: the least a client costs */
        pn_connection_open(conn);
        c->conn = conn;
        b->live++;
        pn_proactor_connect2(b->proactor, conn, t, b->connect_addr);
        return 0;
    }
    pn_session_t *s = pn_session(conn);
    if (!s) {
        pn_connection_free(conn);
        pn_transport_free(t);
        return -ENOMEM;
    }
    c->session = s;
    pn_connection_open(conn);
    pn_session_open(s);
    snprintf(name, sizeof name, "%s-%s", cid, "out");
    switch (c->role) {
    case ROLE_PRODUCER: c->sender = ab_make_sender(b, s, name, b->target_addr); break;
    case ROLE_CONSUMER:
        snprintf(name, sizeof name, "%s-%s", cid, "in");
        c->receiver = make_receiver(b, s, name, b->source_addr, false);
        break;
    case ROLE_RR_SERVER:
        /* the anonymous-relay sender replies to any reply-to; with
         * --reply-via link, reply links are made per address on demand */
        if (b->reply == REPLY_ANON)
            c->sender = ab_make_sender(b, s, name, NULL);
        snprintf(name, sizeof name, "%s-%s", cid, "in");
        c->receiver = make_receiver(b, s, name, b->source_addr, false);
        break;
    case ROLE_RR_CLIENT:
        c->sender = ab_make_sender(b, s, name, b->target_addr);
        snprintf(name, sizeof name, "%s-%s", cid, "in");
        c->receiver = make_receiver(b, s, name, b->named_reply, b->rsource == RSRC_DYNAMIC);
        break;
    case ROLE_DIRECT_PEER:
    case ROLE_IDLE: break;
    }
    if ((c->role != ROLE_CONSUMER && c->role != ROLE_DIRECT_PEER && c->role != ROLE_RR_SERVER && !c->sender) ||
        (c->role == ROLE_RR_SERVER && b->reply == REPLY_ANON && !c->sender) ||
        (c->role != ROLE_PRODUCER && !c->receiver)) {
        pn_connection_free(conn);
        pn_transport_free(t);
        return -ENOMEM;
    }
    if (c->sender)
        pn_link_open(c->sender);
    if (c->receiver) {
        pn_link_open(c->receiver);
        uint32_t w = b->credit;
        if (b->mode == MODE_DRAIN) { /* never credit beyond the count: the rest stays queued */
            if (w > b->count)
                w = (uint32_t)b->count;
            b->granted = w;
        }
        pn_link_flow(c->receiver, (int)w);
    }
    c->conn = conn;
    b->live++;
    pn_proactor_connect2(b->proactor, conn, t, b->connect_addr);
    return 0;
}

/* Connect n connections of one role, indexes 0..n-1. */
void ab_connect_role_locked(bench *b, conn_role role, int n)
{
    for (int i = 0; i < n && !b->finishing; i++) {
        conn_ctx *c = ab_ctx_new_locked(b, role, i);
        if (!c) {
            ab_fail_locked(b, "out of memory creating a %s connection", ab_role_name[role]);
            return;
        }
        /* set before connecting: from then on c's events run on any worker */
        if (role == ROLE_PRODUCER) /* the remainder of N goes to the first producers */
            c->to_send = b->base[i + 1] - b->base[i];
        if (role == ROLE_RR_CLIENT)
            c->rr_target = b->count;
        if (ab_ctx_connect_locked(b, c) < 0) {
            ab_fail_locked(b, "out of memory creating a %s connection", ab_role_name[role]);
            return;
        }
    }
}

/* Start the producers (or the reqrep client), once. */
void ab_start_producers_locked(bench *b)
{
    if (b->producers_started || b->finishing)
        return;
    b->producers_started = true;
    if (b->mode == MODE_REQREP)
        ab_connect_role_locked(b, ROLE_RR_CLIENT, 1);
    else
        ab_connect_role_locked(b, ROLE_PRODUCER, b->n_producers);
}

/* Receivers (or the reqrep server) announce they are attached; producers
 * start only when all are, so nothing is published to a fanout exchange
 * before every subscriber's queue is bound. */
static void link_ready(bench *b, conn_ctx *c)
{
    bool need_sender = c->role == ROLE_RR_SERVER && b->reply == REPLY_ANON;
    if (c->counted_ready || !c->receiver_ready || (need_sender && !c->sender_ready))
        return;
    c->counted_ready = true;
    pthread_mutex_lock(&b->lock);
    if (++b->ready >= b->n_receivers)
        ab_start_producers_locked(b);
    pthread_mutex_unlock(&b->lock);
}

/* Presettled deliveries (at-most-once) take no outcome, only our settle. */
void ab_settle_incoming(pn_delivery_t *d, uint64_t outcome)
{
    if (!pn_delivery_settled(d))
        pn_delivery_update(d, outcome);
    pn_delivery_settle(d);
}

/* The peer answered an attach: the link is usable (or, refused, its
 * detach with the reason follows). */
static void on_link_remote_open(bench *b, conn_ctx *c, pn_link_t *l)
{
    if (c->role == ROLE_DIRECT_PEER) {
        ab_direct_link_open(b, c, l);
        return;
    }
    if (pn_link_is_sender(l)) {
        /* a refused attach comes back with a null target, then a detach
         * that carries the reason: wait for that */
        if (pn_terminus_get_type(pn_link_remote_target(l)) == PN_UNSPECIFIED)
            return;
        if (l == c->sender)
            c->sender_ready = true;
        if (c->role == ROLE_PRODUCER)
            ab_producer_pump(b, c);
        else if (c->role == ROLE_RR_SERVER) {
            link_ready(b, c);
            ab_rr_flush_pending(b, c, l);
        } else if (c->role == ROLE_RR_CLIENT && ab_rr_client_send(b, c) < 0)
            FAIL(b, "reqrep client: cannot send a request");
        return;
    }
    pn_terminus_t *src = pn_link_remote_source(l);
    if (pn_terminus_get_type(src) == PN_UNSPECIFIED)
        return;
    if (c->role == ROLE_RR_CLIENT) {
        const char *a = pn_terminus_get_address(src);
        if (b->rsource == RSRC_DYNAMIC) {
            if (!a || !*a) {
                FAIL(b, "reqrep client: the peer attached the dynamic reply source without an address "
                        "(no dynamic sources there? try --reply-source named)");
                return;
            }
            snprintf(c->reply_addr, sizeof c->reply_addr, "%s", a);
        } else {
            snprintf(c->reply_addr, sizeof c->reply_addr, "%s", b->named_reply);
        }
        if (b->o->verbose)
            fprintf(stderr, "amqp_bench: reply address %s\n", c->reply_addr);
        if (ab_rr_client_send(b, c) < 0)
            FAIL(b, "reqrep client: cannot send a request");
        return;
    }
    c->receiver_ready = true;
    if (b->mode == MODE_DRAIN)
        __atomic_store_n(&b->t_first_send, ab_now_ns(), __ATOMIC_RELAXED); /* the clock starts */
    link_ready(b, c);
}

static void on_delivery(bench *b, conn_ctx *c, pn_event_t *e)
{
    pn_delivery_t *d = pn_event_delivery(e);
    pn_link_t *l = pn_delivery_link(d);
    if (pn_link_is_sender(l)) {
        if (c->role == ROLE_PRODUCER) {
            ab_producer_disposition(b, c, d);
        } else if (pn_delivery_settled(d) ||
                   (pn_delivery_remote_state(d) && pn_delivery_remote_state(d) != PN_RECEIVED)) {
            if (pn_delivery_remote_state(d) == PN_REJECTED) {
                char why[512];
                ab_cond_text(pn_disposition_condition(pn_delivery_remote(d)), why, sizeof why);
                FAIL(b, "%s: message rejected by the peer (%s)", ab_role_name[c->role], why);
            }
            pn_delivery_settle(d);
        }
        return;
    }
    switch (c->role) {
    case ROLE_CONSUMER: ab_consumer_delivery(b, c, l, d); break;
    case ROLE_RR_SERVER: ab_rr_server_request(b, c, l, d); break;
    case ROLE_RR_CLIENT: ab_rr_client_reply(b, c, l, d); break;
    case ROLE_DIRECT_PEER:
        if (b->mode == MODE_REQREP)
            ab_rr_server_request(b, c, l, d);
        else
            ab_consumer_delivery(b, c, l, d);
        break;
    case ROLE_PRODUCER:
    case ROLE_IDLE: /* no links of ours: nothing should arrive */ ab_settle_incoming(d, PN_REJECTED); break;
    }
}

static void check_remote_close(bench *b, conn_ctx *c, const char *what, pn_condition_t *cond)
{
    if (ab_is_finishing(b) && !pn_condition_is_set(cond))
        return;
    char why[512];
    ab_cond_text(cond, why, sizeof why);
    if (!ab_is_finishing(b))
        FAIL(b, "%s %d: %s closed by the peer (%s)", ab_role_name[c->role], c->index, what, why);
}

/* Every event of a run, on whichever worker thread got it. */
void ab_handle(bench *b, pn_event_t *e)
{
    pn_event_type_t type = pn_event_type(e);
    switch (type) {
    case PN_PROACTOR_TIMEOUT: ab_tick(b); return;
    case PN_LISTENER_OPEN: ab_direct_listener_open(b, pn_event_listener(e)); return;
    case PN_LISTENER_ACCEPT: ab_direct_listener_accept(b, pn_event_listener(e)); return;
    case PN_LISTENER_CLOSE: ab_direct_listener_close(b, pn_event_listener(e)); return;
    default: break;
    }

    pn_connection_t *conn = pn_event_connection(e);
    conn_ctx *c = conn ? pn_connection_get_context(conn) : NULL;
    if (!c)
        return;

    switch (type) {
    case PN_CONNECTION_REMOTE_OPEN:
        if (c->role == ROLE_DIRECT_PEER)
            pn_connection_open(conn);
        c->opened = true;
        ab_rr_check_relay(b, c, conn);
        if (!__atomic_load_n(&b->any_open, __ATOMIC_RELAXED)) {
            pthread_mutex_lock(&b->lock);
            __atomic_store_n(&b->any_open, true, __ATOMIC_RELAXED);
            pthread_mutex_unlock(&b->lock);
        }
        if (c->role == ROLE_IDLE)
            ab_idle_opened(b, c);
        break;
    case PN_SESSION_REMOTE_OPEN: {
        pn_session_t *s = pn_event_session(e);
        if (!(pn_session_state(s) & PN_LOCAL_ACTIVE)) {
            pn_session_open(s);
            c->session = s;
        }
        break;
    }
    case PN_LINK_REMOTE_OPEN: on_link_remote_open(b, c, pn_event_link(e)); break;
    case PN_LINK_FLOW: {
        pn_link_t *l = pn_event_link(e);
        if (!pn_link_is_sender(l))
            break;
        if (c->role == ROLE_PRODUCER)
            ab_producer_pump(b, c);
        else if (c->role == ROLE_RR_CLIENT && c->rr_want_send) {
            if (ab_rr_client_send(b, c) < 0)
                FAIL(b, "reqrep client: cannot send a request");
        } else if (c->pend_n)
            ab_rr_flush_pending(b, c, l);
        break;
    }
    case PN_DELIVERY: on_delivery(b, c, e); break;
    case PN_CONNECTION_WAKE:
        if (ab_is_finishing(b) && !(pn_connection_state(conn) & PN_LOCAL_CLOSED)) {
            /* detach every link with closed=true first: RabbitMQ 3.10 deletes
             * a subscriber's temporary queue on the link's close, not on the
             * connection's, and would otherwise keep one per subscriber */
            for (pn_link_t *l = pn_link_head(conn, PN_LOCAL_ACTIVE); l; l = pn_link_next(l, PN_LOCAL_ACTIVE))
                pn_link_close(l);
            for (pn_session_t *s = pn_session_head(conn, PN_LOCAL_ACTIVE); s; s = pn_session_next(s, PN_LOCAL_ACTIVE))
                pn_session_close(s);
            pn_connection_close(conn);
        }
        break;
    case PN_LINK_REMOTE_CLOSE:
    case PN_LINK_REMOTE_DETACH: {
        pn_link_t *l = pn_event_link(e);
        const char *a = pn_link_is_sender(l) ? pn_terminus_get_address(pn_link_target(l))
                                             : pn_terminus_get_address(pn_link_source(l));
        char what[700];
        snprintf(what, sizeof what, "%s link %s%s%s", pn_link_is_sender(l) ? "sending" : "receiving", a ? "'" : "",
                 a ? a : (pn_link_is_sender(l) ? "(anonymous relay)" : "(dynamic)"), a ? "'" : "");
        check_remote_close(b, c, what, pn_link_remote_condition(l));
        if (type == PN_LINK_REMOTE_CLOSE)
            pn_link_close(l);
        else
            pn_link_detach(l);
        break;
    }
    case PN_SESSION_REMOTE_CLOSE:
        check_remote_close(b, c, "session", pn_session_remote_condition(pn_event_session(e)));
        pn_session_close(pn_event_session(e));
        break;
    case PN_CONNECTION_REMOTE_CLOSE:
        check_remote_close(b, c, "connection", pn_connection_remote_condition(conn));
        if (ab_is_finishing(b) && !pn_condition_is_set(pn_connection_remote_condition(conn)) &&
            (c->role == ROLE_IDLE || b->mode == MODE_FILL)) {
            /* the broker answered our close: it has read all we sent */
            pthread_mutex_lock(&b->lock);
            if (c->role == ROLE_IDLE)
                b->idle_closed++;
            else
                b->t_closed = ab_now_ns();
            pthread_mutex_unlock(&b->lock);
        }
        pn_connection_close(conn);
        break;
    case PN_TRANSPORT_CLOSED: {
        pn_condition_t *cond = pn_transport_condition(pn_event_transport(e));
        pthread_mutex_lock(&b->lock);
        if (!b->finishing) {
            char why[512];
            ab_cond_text(cond, why, sizeof why);
            if (!b->any_open)
                b->conn_failed = true;
            if (c->opened)
                ab_fail_locked(b, "%s %d: connection to %s lost (%s)", ab_role_name[c->role], c->index, b->connect_addr,
                               why);
            else
                ab_fail_locked(b, "%s %d: cannot connect to %s (%s)", ab_role_name[c->role], c->index, b->connect_addr,
                               why);
        }
        c->conn = NULL;
        b->live--;
        ab_maybe_stop_locked(b);
        pthread_mutex_unlock(&b->lock);
        break;
    }
    default: break;
    }
}
