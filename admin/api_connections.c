/* api_connections.c — /api/connections: list, inspect, close.
 *
 * From the AMQP front end's table of open connections (amqp_conn_list),
 * which any thread may read; closing sends the connection process a
 * message, and the client sees amqp:connection:forced with the reason
 * given in the X-Reason header (as with RabbitMQ's API).
 */
#include <errno.h>
#include <microhttpd.h>
#include <stdlib.h>
#include <string.h>

#include "admin/adm_internal.h"

static json_t *conn_json(const amqp_conn_info *c, const char *node)
{
    char pb[SV_PID_FMT_LEN];
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:i, s:s, s:i, s:I, s:s, s:{s:s}, s:i, s:i, s:I, s:I, "
                     "s:I, s:I, s:b}",
                     "name", c->name, "node", node, "pid", sv_pid_str(c->pid, pb, sizeof pb), "user", c->user, "vhost",
                     "/", "protocol", c->protocol, "state", c->opened ? "running" : "starting", "peer_host",
                     c->peer_host, "peer_port", c->peer_port, "host", c->host, "port", c->port, "connected_at",
                     (json_int_t)c->connected_at, "auth_mechanism", c->auth_mechanism, "client_properties",
                     "container_id", c->container, "links", (int)c->links, "channels", (int)c->channels, "recv_oct",
                     (json_int_t)c->recv_oct, "send_oct", (json_int_t)c->send_oct, "recv_cnt", (json_int_t)c->recv_cnt,
                     "send_cnt", (json_int_t)c->send_cnt, "ssl", (int)c->ssl);
}

void *adm__copy_table(int (*fill)(void *, int), size_t size, int cap, int *n)
{
    for (;; cap = *n + 16) {
        void *v = malloc((size_t)cap * size);
        if (!v)
            return NULL;
        *n = fill(v, cap);
        if (*n <= cap)
            return v;
        free(v); /* more opened meanwhile */
    }
}

static int conns_fill(void *v, int cap) { return amqp_conn_list(v, cap); }

/* Every open connection, as a fresh array the caller frees. */
static amqp_conn_info *list(int *n)
{
    return adm__copy_table(conns_fill, sizeof(amqp_conn_info), (int)amqp_connections() + 16, n);
}

static int by_name(const void *a, const void *b)
{
    return strcmp(((const amqp_conn_info *)a)->name, ((const amqp_conn_info *)b)->name);
}

void adm__connections_list(adm_req *q, adm_resp *r)
{
    int n;
    amqp_conn_info *v = list(&n);
    json_t *arr = v ? json_array() : NULL;
    if (v)
        qsort(v, (size_t)n, sizeof *v, by_name);
    for (int i = 0; arr && i < n; i++)
        json_array_append_new(arr, conn_json(&v[i], q->cfg->node_name));
    free(v);
    adm__ok(r, arr);
}

void adm__connection_get(adm_req *q, adm_resp *r)
{
    int n;
    amqp_conn_info *v = list(&n);
    json_t *found = NULL;
    for (int i = 0; v && i < n && !found; i++)
        if (!strcmp(v[i].name, q->segs[1]))
            found = conn_json(&v[i], q->cfg->node_name);
    free(v);
    if (found)
        adm__ok(r, found);
    else
        adm__fail_rc(r, v ? -ENOENT : -ENOMEM, "connection");
}

void adm__connection_delete(adm_req *q, adm_resp *r)
{
    const char *reason = MHD_lookup_connection_value(q->conn, MHD_HEADER_KIND, "X-Reason");
    int rc = amqp_conn_close(q->segs[1], reason ? reason : "closed through the admin API");
    if (rc < 0)
        adm__fail_rc(r, rc, "connection");
    else
        adm__no_content(r);
}
