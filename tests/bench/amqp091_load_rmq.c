/* amqp091_load_rmq.c — the load generator's librabbitmq engine (`--client
 * librabbitmq`): the run driven through a stock 0-9-1 client library the
 * broker did not write (Debian's librabbitmq-dev), as a cross-check of the
 * raw engine's figures. librabbitmq writes each publish and each ack in
 * syscalls of their own and reads in small pieces, so on a machine the
 * broker shares it measures the client as much as the broker.
 *
 * Two threads, each with its own connection (librabbitmq connections are
 * not thread-safe). Never hangs: socket, handshake and RPC timeouts, 200 ms
 * waits that watch the run's deadline, and a broker that refuses a method
 * (a channel or connection close) fails the run with the broker's words.
 */
#include <amqp.h>
#include <amqp_tcp_socket.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>

#include "tests/bench/amqp091_load.h"

/* What an RPC reply says, for the log: the broker's close, or the library's error. */
static const char *describe(amqp_rpc_reply_t rep, char *buf, size_t len, const char **reason)
{
    *reason = "error";
    if (rep.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION) {
        *reason = "refused";
        if (rep.reply.id == AMQP_CHANNEL_CLOSE_METHOD || rep.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
            const amqp_channel_close_t *c = rep.reply.decoded; /* the two closes share their first fields */
            snprintf(buf, len, "%s closed by the broker: %u %.*s",
                     rep.reply.id == AMQP_CHANNEL_CLOSE_METHOD ? "channel" : "connection", c->reply_code,
                     (int)c->reply_text.len, (const char *)c->reply_text.bytes);
        } else {
            snprintf(buf, len, "broker answered with method 0x%08x", rep.reply.id);
        }
    } else if (rep.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION) {
        if (rep.library_error == AMQP_STATUS_TIMEOUT || rep.library_error == AMQP_STATUS_SOCKET_ERROR)
            *reason = "timeout";
        snprintf(buf, len, "%s", amqp_error_string2(rep.library_error));
    } else {
        snprintf(buf, len, "no reply");
    }
    return buf;
}

static bool rpc_ok(l91_run *r, amqp_connection_state_t c, const char *what)
{
    amqp_rpc_reply_t rep = amqp_get_rpc_reply(c);
    if (rep.reply_type == AMQP_RESPONSE_NORMAL)
        return true;
    char buf[400];
    const char *reason;
    describe(rep, buf, sizeof buf, &reason);
    l91_fail(r, reason, "%s: %s", what, buf);
    return false;
}

static amqp_connection_state_t open_conn(l91_run *r, const char *who)
{
    amqp_connection_state_t c = amqp_new_connection();
    amqp_socket_t *s = c ? amqp_tcp_socket_new(c) : NULL;
    struct timeval tv = {5, 0};
    if (!s) {
        l91_fail(r, "error", "%s: out of memory", who);
        goto bad;
    }
    int rc = amqp_socket_open_noblock(s, r->o.host, r->o.port, &tv);
    if (rc != AMQP_STATUS_OK) {
        l91_fail(r, "connect", "%s: cannot connect to %s:%d: %s", who, r->o.host, r->o.port, amqp_error_string2(rc));
        goto bad;
    }
    /* a broker that stops reading must not block a send for ever */
    setsockopt(amqp_get_sockfd(c), SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    amqp_set_handshake_timeout(c, &tv);
    amqp_set_rpc_timeout(c, &tv);
    amqp_rpc_reply_t rep = amqp_login(c, r->o.vhost, 0, 131072, 0, AMQP_SASL_METHOD_PLAIN, r->o.user, r->o.pass);
    if (rep.reply_type != AMQP_RESPONSE_NORMAL) {
        char buf[400];
        const char *reason;
        describe(rep, buf, sizeof buf, &reason);
        l91_fail(r, "connect", "%s: login: %s", who, buf);
        goto bad;
    }
    amqp_channel_open(c, 1);
    if (!rpc_ok(r, c, "channel.open"))
        goto bad;
    return c;
bad:
    if (c)
        amqp_destroy_connection(c);
    return NULL;
}

static void close_conn(amqp_connection_state_t c, bool clean)
{
    if (clean) {
        amqp_channel_close(c, 1, AMQP_REPLY_SUCCESS);
        amqp_connection_close(c, AMQP_REPLY_SUCCESS);
    }
    amqp_destroy_connection(c);
}

/* A frame that is not a delivery, in the consumer: a close ends the run. */
static void consumer_other_frame(l91_run *r, amqp_connection_state_t c)
{
    amqp_frame_t f;
    struct timeval tv = {0, 200000};
    int rc = amqp_simple_wait_frame_noblock(c, &f, &tv);
    if (rc == AMQP_STATUS_TIMEOUT)
        return;
    if (rc != AMQP_STATUS_OK) {
        l91_fail(r, "error", "consumer: %s", amqp_error_string2(rc));
        return;
    }
    if (f.frame_type == AMQP_FRAME_METHOD &&
        (f.payload.method.id == AMQP_CHANNEL_CLOSE_METHOD || f.payload.method.id == AMQP_CONNECTION_CLOSE_METHOD)) {
        const amqp_channel_close_t *cl = f.payload.method.decoded;
        l91_fail(r, "refused", "consumer: closed by the broker: %u %.*s", cl->reply_code, (int)cl->reply_text.len,
                 (const char *)cl->reply_text.bytes);
    }
}

static void *rmq_consumer(void *arg)
{
    l91_run *r = arg;
    amqp_connection_state_t c = open_conn(r, "consumer");
    if (!c) {
        l91_set_ready(r, -1);
        return NULL;
    }
    amqp_bytes_t q = amqp_cstring_bytes(r->o.queue);
    amqp_queue_declare(c, 1, q, 0, 0, 0, 0, amqp_empty_table);
    if (!rpc_ok(r, c, "queue.declare"))
        goto out;
    amqp_queue_purge(c, 1, q);
    if (!rpc_ok(r, c, "queue.purge"))
        goto out;
    amqp_basic_qos(c, 1, 0, (uint16_t)r->o.prefetch, 0);
    if (!rpc_ok(r, c, "basic.qos"))
        goto out;
    amqp_basic_consume(c, 1, q, amqp_empty_bytes, 0, 0, 0, amqp_empty_table);
    if (!rpc_ok(r, c, "basic.consume"))
        goto out;
    l91_set_ready(r, 1);
    int unacked = 0;
    while (r->received < r->o.count && !atomic_load(&r->stop)) {
        if (l91_now() > r->deadline) {
            l91_fail(r, "timeout", "consumer: %" PRIu64 " of %" PRIu64 " messages received in %d s", r->received,
                     r->o.count, r->o.timeout_s);
            break;
        }
        amqp_maybe_release_buffers(c);
        amqp_envelope_t env;
        struct timeval tv = {0, 200000};
        amqp_rpc_reply_t rep = amqp_consume_message(c, &env, &tv, 0);
        if (rep.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION && rep.library_error == AMQP_STATUS_TIMEOUT)
            continue;
        if (rep.reply_type == AMQP_RESPONSE_LIBRARY_EXCEPTION && rep.library_error == AMQP_STATUS_UNEXPECTED_STATE) {
            consumer_other_frame(r, c);
            continue;
        }
        if (rep.reply_type != AMQP_RESPONSE_NORMAL) {
            char buf[400];
            const char *reason;
            describe(rep, buf, sizeof buf, &reason);
            l91_fail(r, reason, "consumer: %s", buf);
            break;
        }
        if (!l91_receive(r, env.message.body.bytes, env.message.body.len, l91_now())) {
            amqp_destroy_envelope(&env);
            break;
        }
        if (++unacked >= r->o.ack_every || r->received == r->o.count) {
            if (amqp_basic_ack(c, 1, env.delivery_tag, 1) != AMQP_STATUS_OK) {
                l91_fail(r, "error", "consumer: basic.ack could not be sent");
                amqp_destroy_envelope(&env);
                break;
            }
            unacked = 0;
        }
        amqp_destroy_envelope(&env);
    }
    r->t_con_end = l91_now();
out:
    l91_set_ready(r, -1);                  /* the publisher must not wait for a consumer that gave up */
    close_conn(c, !atomic_load(&r->stop)); /* stop is set by a failure only */
    return NULL;
}

static void *rmq_publisher(void *arg)
{
    l91_run *r = arg;
    if (!l91_wait_ready(r))
        return NULL;
    amqp_connection_state_t c = open_conn(r, "publisher");
    if (!c)
        return NULL;
    uint8_t *body = calloc(r->o.size, 1);
    if (!body) {
        l91_fail(r, "error", "publisher: out of memory");
        goto out;
    }
    amqp_confirm_select(c, 1);
    if (!rpc_ok(r, c, "confirm.select"))
        goto out;
    for (size_t i = 16; i < r->o.size; i++)
        body[i] = (uint8_t)('a' + i % 26);
    amqp_basic_properties_t props = {._flags = AMQP_BASIC_DELIVERY_MODE_FLAG, .delivery_mode = 1};
    amqp_bytes_t q = amqp_cstring_bytes(r->o.queue), bb = {r->o.size, body};
    r->t_start = l91_now();
    while (r->confirmed < r->o.count && !atomic_load(&r->stop)) {
        while (r->published < r->o.count && r->published - r->confirmed < (uint64_t)r->o.inflight) {
            l91_stamp(body, r->published);
            int rc = amqp_basic_publish(c, 1, amqp_empty_bytes, q, 0, 0, &props, bb);
            if (rc != AMQP_STATUS_OK) {
                l91_fail(r, rc == AMQP_STATUS_SOCKET_ERROR ? "timeout" : "error", "publisher: basic.publish: %s",
                         amqp_error_string2(rc));
                goto out;
            }
            r->published++;
        }
        if (l91_now() > r->deadline) {
            l91_fail(r, "timeout", "publisher: %" PRIu64 " of %" PRIu64 " messages confirmed in %d s", r->confirmed,
                     r->o.count, r->o.timeout_s);
            break;
        }
        /* Wait for confirms only when nothing more may be sent; then take
         * whatever else is already there without waiting. */
        bool full = r->published == r->o.count || r->published - r->confirmed >= (uint64_t)r->o.inflight;
        struct timeval tv = {0, full ? 200000 : 0};
        for (;;) {
            amqp_frame_t f;
            int rc = amqp_simple_wait_frame_noblock(c, &f, &tv);
            if (rc == AMQP_STATUS_TIMEOUT)
                break;
            if (rc != AMQP_STATUS_OK) {
                l91_fail(r, "error", "publisher: %s", amqp_error_string2(rc));
                goto out;
            }
            tv.tv_usec = 0;
            if (f.frame_type != AMQP_FRAME_METHOD)
                continue;
            amqp_method_number_t id = f.payload.method.id;
            if (id == AMQP_BASIC_ACK_METHOD) {
                const amqp_basic_ack_t *a = f.payload.method.decoded;
                l91_confirm(r, a->delivery_tag, a->multiple);
            } else if (id == AMQP_BASIC_NACK_METHOD) {
                l91_fail(r, "nack", "publisher: the broker nacked message %" PRIu64,
                         ((const amqp_basic_nack_t *)f.payload.method.decoded)->delivery_tag);
                goto out;
            } else if (id == AMQP_CHANNEL_CLOSE_METHOD || id == AMQP_CONNECTION_CLOSE_METHOD) {
                const amqp_channel_close_t *cl = f.payload.method.decoded;
                l91_fail(r, "refused", "publisher: closed by the broker: %u %.*s", cl->reply_code,
                         (int)cl->reply_text.len, (const char *)cl->reply_text.bytes);
                goto out;
            }
        }
        amqp_maybe_release_buffers(c);
    }
    r->t_pub_end = l91_now();
out:
    free(body);
    close_conn(c, !atomic_load(&r->stop)); /* stop is set by a failure only */
    return NULL;
}

const l91_engine l91_librabbitmq = {"librabbitmq", rmq_consumer, rmq_publisher};
