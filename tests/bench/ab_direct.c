/* ab_direct.c — the --direct form of amqp_bench: no broker; the bench
 * listens on a proactor and thread of its own and its direct-peer
 * connections accept every link, settle like a consumer and answer
 * requests, so the figures are the most any broker could reach here with
 * qpid-proton. */
#include <string.h>

#include <proton/netaddr.h>
#include <proton/sasl.h>
#include <proton/terminus.h>
#include <proton/transport.h>

#include "tests/bench/ab.h"

/* Listen on --listen with the peer's own proactor; the connecting side
 * connects once the listener is open (ab_direct_listener_open). */
void ab_direct_listen_locked(bench *b)
{
    const options *o = b->o;
    char la[PN_MAX_ADDR];
    pn_proactor_addr(la, sizeof la, o->listen_host, o->listen_port);
    snprintf(b->connect_addr, sizeof b->connect_addr, "%s", la);
    pn_listener_t *lis = pn_listener();
    b->peer_proactor = pn_proactor();
    if (!lis || !b->peer_proactor) {
        if (lis)
            pn_listener_free(lis);
        ab_fail_locked(b, "out of memory creating the listener");
    } else {
        pn_proactor_listen(b->peer_proactor, lis, la, 16);
    }
}

/* The peer accepts every link the client attaches: the producers' (and
 * the reqrep client's request) links as a consumer would, the client's
 * reply receiver as a sender from an address of our making. */
void ab_direct_link_open(bench *b, conn_ctx *c, pn_link_t *l)
{
    if (pn_link_state(l) & PN_LOCAL_ACTIVE)
        return;
    pn_terminus_copy(pn_link_source(l), pn_link_remote_source(l));
    pn_terminus_copy(pn_link_target(l), pn_link_remote_target(l));
    if (pn_link_is_sender(l)) {
        /* the client's reply receiver: a dynamic source gets an address of
         * our making, which the client then uses as reply-to */
        if (pn_terminus_is_dynamic(pn_link_remote_source(l))) {
            char addr[64];
            pthread_mutex_lock(&b->lock);
            snprintf(addr, sizeof addr, "/dynamic/%d", ++b->dyn_peer);
            pthread_mutex_unlock(&b->lock);
            pn_terminus_set_address(pn_link_source(l), addr);
        }
        pn_link_open(l);
    } else {
        pn_link_open(l);
        pn_link_flow(l, (int)b->credit);
        c->receiver = l;
    }
}

/* Listening: the connecting side may start, to the port we were given. */
void ab_direct_listener_open(bench *b, pn_listener_t *lis)
{
    char host[256] = "", port[32] = "";
    pn_netaddr_host_port(pn_listener_addr(lis), host, sizeof host, port, sizeof port);
    pthread_mutex_lock(&b->lock);
    pn_proactor_addr(b->connect_addr, sizeof b->connect_addr, b->o->listen_host, port);
    if (b->o->verbose)
        fprintf(stderr, "amqp_bench: direct: listening on %s\n", b->connect_addr);
    ab_start_producers_locked(b);
    pthread_mutex_unlock(&b->lock);
}

/* A client connected: a direct-peer connection of ours answers it. */
void ab_direct_listener_accept(bench *b, pn_listener_t *lis)
{
    pn_connection_t *conn = pn_connection();
    pn_transport_t *t = pn_transport();
    pthread_mutex_lock(&b->lock);
    conn_ctx *c = conn && t ? ab_ctx_new_locked(b, ROLE_DIRECT_PEER, b->n_receivers) : NULL;
    if (!c) {
        if (conn)
            pn_connection_free(conn);
        if (t)
            pn_transport_free(t);
        ab_fail_locked(b, "direct: out of memory accepting a connection");
        pthread_mutex_unlock(&b->lock);
        return;
    }
    b->n_receivers++;
    c->conn = conn;
    b->live++;
    pn_connection_set_context(conn, c);
    pn_connection_set_container(conn, "amqp-bench-direct-peer");
    pn_transport_set_server(t); /* before pn_sasl: it decides the SASL role */
    pn_sasl_allowed_mechs(pn_sasl(t), "ANONYMOUS");
    if (b->o->max_frame)
        pn_transport_set_max_frame(t, b->o->max_frame);
    pn_listener_accept2(lis, conn, t);
    if (b->finishing)
        pn_connection_wake(conn);
    pthread_mutex_unlock(&b->lock);
}

/* The listener closed: with an error, we could not listen at all. */
void ab_direct_listener_close(bench *b, pn_listener_t *lis)
{
    pn_condition_t *cond = pn_listener_condition(lis);
    if (pn_condition_is_set(cond)) {
        char why[512];
        ab_cond_text(cond, why, sizeof why);
        pthread_mutex_lock(&b->lock);
        b->conn_failed = true;
        ab_fail_locked(b, "direct: cannot listen on %s:%s (%s)", b->o->listen_host, b->o->listen_port, why);
        pthread_mutex_unlock(&b->lock);
    }
}
