/* api_channels.c — /api/channels and /api/consumers, in RabbitMQ's shape.
 *
 * Both come from the AMQP front end's table of open connections, where
 * each connection keeps its channels (AMQP 1.0 sessions, 0-9-1 channels)
 * and its consumers (AMQP 1.0 links receiving from a queue); any thread
 * may read it. There is one vhost, "/".
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin/adm_internal.h"

/* RabbitMQ names a channel after its connection and number. */
static void chan_name(const amqp_chan_conn *c, unsigned number, char *out, size_t len)
{
    snprintf(out, len, "%s (%u)", c->name, number);
}

static json_t *channel_json(const amqp_channel_info *ch, const char *node)
{
    char name[200];
    chan_name(&ch->conn, ch->number, name, sizeof name);
    return json_pack("{s:s, s:s, s:i, s:s, s:s, s:s, s:i, s:i, s:b, s:{s:s, s:s, s:i}}", "name", name, "node", node,
                     "number", (int)ch->number, "user", ch->conn.user, "vhost", "/", "state", "running",
                     "consumer_count", (int)ch->consumers, "prefetch_count", 0, "transactional", 0,
                     "connection_details", "name", ch->conn.name, "peer_host", ch->conn.peer_host, "peer_port",
                     ch->conn.peer_port);
}

static json_t *consumer_json(const amqp_consumer_info *e)
{
    char name[200];
    chan_name(&e->conn, e->channel, name, sizeof name);
    return json_pack("{s:{s:s, s:s}, s:s, s:{s:s, s:s, s:i, s:s, s:i, s:s}, s:b, s:i, s:b, s:b, s:s, s:{}}", "queue",
                     "name", e->queue, "vhost", "/", "consumer_tag", e->tag, "channel_details", "connection_name",
                     e->conn.name, "name", name, "number", (int)e->channel, "peer_host", e->conn.peer_host, "peer_port",
                     e->conn.peer_port, "user", e->conn.user, "ack_required", (int)e->ack_required, "prefetch_count",
                     (int)e->credit, "active", 1, "exclusive", (int)e->exclusive, "activity_status", "up", "arguments");
}

static int channels_fn(void *v, int cap) { return amqp_channel_list(v, cap); }

static int consumers_fn(void *v, int cap) { return amqp_consumer_list(v, cap); }

/* Every channel, or those of the connection named conn. */
static void channels(adm_req *q, adm_resp *r, const char *conn)
{
    int n;
    amqp_channel_info *v = adm__copy_table(channels_fn, sizeof *v, 64, &n);
    json_t *arr = v ? json_array() : NULL;
    for (int i = 0; arr && i < n; i++)
        if (!conn || !strcmp(v[i].conn.name, conn))
            json_array_append_new(arr, channel_json(&v[i], q->cfg->node_name));
    free(v);
    if (arr)
        adm__ok(r, arr);
    else
        adm__fail_rc(r, -ENOMEM, "channels");
}

void adm__channels_list(adm_req *q, adm_resp *r) { channels(q, r, NULL); }

void adm__connection_channels(adm_req *q, adm_resp *r) { channels(q, r, q->segs[1]); }

void adm__consumers_list(adm_req *q, adm_resp *r)
{
    if (q->nsegs == 2 && !adm__vhost_ok(q->segs[1], r))
        return;
    int n;
    amqp_consumer_info *v = adm__copy_table(consumers_fn, sizeof *v, 64, &n);
    json_t *arr = v ? json_array() : NULL;
    for (int i = 0; arr && i < n; i++)
        json_array_append_new(arr, consumer_json(&v[i]));
    free(v);
    if (arr)
        adm__ok(r, arr);
    else
        adm__fail_rc(r, -ENOMEM, "consumers");
}
