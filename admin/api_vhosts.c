/* api_vhosts.c — /api/vhosts and /api/permissions: what is true today,
 * in RabbitMQ's shapes.
 *
 * Plexus has one virtual host, "/", and no permission model yet: every
 * user may configure, write and read everything in "/" (".*" three
 * times, as RabbitMQ writes full access). Scripts that list vhosts or
 * permissions, or that declare what already holds (the vhost "/", ".*"
 * permissions), work unchanged; anything that would need more vhosts or
 * narrower permissions is refused with a 400 that says it is not
 * implemented yet, rather than accepted and ignored.
 */
#include <errno.h>
#include <microhttpd.h>
#include <stdio.h>
#include <string.h>

#include "admin/adm_internal.h"

#define FULL ".*"

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

/* Whether user exists (a 404 in r if not). */
static bool user_exists(const char *user, adm_resp *r)
{
    json_t *all = brk_users_export(), *u;
    size_t i;
    bool found = false;
    json_array_foreach(all, i, u) { found = found || !strcmp(json_string_value(json_object_get(u, "name")), user); }
    if (!all)
        adm__fail_rc(r, -ENOMEM, "the users");
    else if (!found)
        adm__fail(r, MHD_HTTP_NOT_FOUND, "not_found", "user %s not found", user);
    json_decref(all);
    return found;
}

static json_t *permission_json(const char *user)
{
    return json_pack("{s:s, s:s, s:s, s:s, s:s}", "user", user, "vhost", "/", "configure", FULL, "write", FULL, "read",
                     FULL);
}

/* GET /api/permissions, /api/vhosts/%2F/permissions, /api/users/NAME/permissions */
void adm__permissions_list(adm_req *q, adm_resp *r)
{
    const char *only = NULL;
    if (!strcmp(q->segs[0], "vhosts") && !adm__vhost_ok(q->segs[1], r))
        return;
    if (!strcmp(q->segs[0], "users")) {
        if (!user_exists(q->segs[1], r))
            return;
        only = q->segs[1];
    }
    json_t *users = brk_users_export(), *out = users ? json_array() : NULL, *u;
    size_t i;
    json_array_foreach(users, i, u)
    {
        const char *name = json_string_value(json_object_get(u, "name"));
        if (out && (!only || !strcmp(only, name)) && json_array_append_new(out, permission_json(name)) < 0) {
            json_decref(out);
            out = NULL;
        }
    }
    json_decref(users);
    adm__ok(r, out);
}

/* GET /api/permissions/%2F/USER */
void adm__permission_get(adm_req *q, adm_resp *r)
{
    if (adm__vhost_ok(q->segs[1], r) && user_exists(q->segs[2], r))
        adm__ok(r, permission_json(q->segs[2]));
}

/* PUT /api/permissions/%2F/USER {"configure": ".*", "write": ".*", "read": ".*"}:
 * full access is what every user has (204); anything narrower cannot be
 * kept yet. */
void adm__permission_put(adm_req *q, adm_resp *r)
{
    if (!adm__vhost_ok(q->segs[1], r) || !user_exists(q->segs[2], r))
        return;
    json_t *body = adm__body_object(q, r);
    if (!body)
        return;
    static const char *const kinds[] = {"configure", "write", "read"};
    const char *narrower = NULL, *bad = NULL;
    for (size_t i = 0; i < 3; i++) {
        const char *v = json_string_value(json_object_get(body, kinds[i]));
        if (!v)
            bad = bad ? bad : kinds[i];
        else if (strcmp(v, FULL) != 0)
            narrower = narrower ? narrower : kinds[i];
    }
    json_decref(body);
    if (bad)
        adm__fail(r, MHD_HTTP_BAD_REQUEST, "bad_request", "%s must be a string (a regular expression)", bad);
    else if (narrower)
        not_implemented(r, "permissions are not implemented yet: every user may configure, write and read "
                           "everything in \"/\" (\".*\"), and only that can be declared");
    else
        adm__no_content(r);
}

/* DELETE /api/permissions/%2F/USER */
void adm__permission_delete(adm_req *q, adm_resp *r)
{
    if (adm__vhost_ok(q->segs[1], r) && user_exists(q->segs[2], r))
        not_implemented(r, "permissions are not implemented yet: every user may configure, write and read "
                           "everything in \"/\", and that cannot be taken away yet");
}
