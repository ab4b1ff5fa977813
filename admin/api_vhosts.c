/* api_vhosts.c — /api/vhosts: what is true today, in RabbitMQ's shapes.
 *
 * Plexus has one virtual host, "/". Scripts that list vhosts, or that
 * declare the one that exists, work unchanged; anything that would need
 * more vhosts is refused with a 400 that says it is not implemented yet,
 * rather than accepted and ignored. (Permissions: api_permissions.c.)
 */
#include <errno.h>
#include <microhttpd.h>
#include <stdio.h>
#include <string.h>

#include "admin/adm_internal.h"

static json_t *vhost_json(adm_req *q, const adm__ntotals *t)
{
    return json_pack("{s:s, s:s, s:[], s:b, s:{s:s}, s:I, s:I, s:I, s:o}", "name", "/", "description",
                     "the default (and, for now, only) virtual host", "tags", "tracing", 0, "cluster_state",
                     q->cfg->node_name, "running", "messages", (json_int_t)(t->ready + t->unacked), "messages_ready",
                     (json_int_t)t->ready, "messages_unacknowledged", (json_int_t)t->unacked, "message_stats",
                     adm__message_stats(t->msgs.publish, t->msgs.deliver, t->msgs.ack, t->msgs.rates));
}

/* GET /api/vhosts */
void adm__vhosts_list(adm_req *q, adm_resp *r)
{
    adm__ntotals t;
    int rc = adm__node_totals(q, &t);
    if (rc < 0) {
        adm__fail_rc(r, rc, "the vhosts");
        return;
    }
    json_t *v = vhost_json(q, &t);
    adm__ok(r, v ? json_pack("[o]", v) : NULL);
}

/* GET /api/vhosts/%2F */
void adm__vhost_get(adm_req *q, adm_resp *r)
{
    if (!adm__vhost_ok(q->segs[1], r))
        return;
    adm__ntotals t;
    int rc = adm__node_totals(q, &t);
    if (rc < 0)
        adm__fail_rc(r, rc, "the vhost");
    else
        adm__ok(r, vhost_json(q, &t));
}

static void not_implemented(adm_resp *r, const char *why)
{
    adm__fail(r, MHD_HTTP_BAD_REQUEST, "not_implemented", "%s", why);
}

/* PUT /api/vhosts/NAME: "/" exists (204); no other can be made yet. */
void adm__vhost_put(adm_req *q, adm_resp *r)
{
    static const char *const bools[] = {"tracing", NULL};
    if (strcmp(q->segs[1], "/") != 0) {
        not_implemented(r, "Plexus has one virtual host, \"/\", for now: declaring others is not implemented yet");
        return;
    }
    json_t *body = adm__body_coerced(q, r, bools, NULL);
    if (!body)
        return;
    bool tracing = json_is_true(json_object_get(body, "tracing"));
    json_decref(body);
    if (tracing)
        not_implemented(r, "message tracing is not implemented");
    else
        adm__no_content(r); /* it exists; a description or tags given are not kept */
}

/* DELETE /api/vhosts/NAME */
void adm__vhost_delete(adm_req *q, adm_resp *r)
{
    if (!adm__vhost_ok(q->segs[1], r))
        return;
    not_implemented(r, "the vhost \"/\" is Plexus's only one and cannot be deleted (more virtual hosts are not "
                       "implemented yet)");
}
