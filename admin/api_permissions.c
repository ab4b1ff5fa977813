/* api_permissions.c — /api/permissions: who may configure, write and read
 * what, per user and vhost, in RabbitMQ's shapes; and the check every
 * admin call that acts on a resource makes (adm__may).
 *
 * The entries are the broker's (broker/perms.c, kept with the users). An
 * administrator may use the API, but what it declares, deletes, publishes
 * or reads is held to the same permissions as over AMQP, as with
 * RabbitMQ's management API: a refusal is a 403 with RabbitMQ's reason.
 */
#include <errno.h>
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin/adm_internal.h"

bool adm__may(adm_req *q, adm_resp *r, amqp_perm what, const char *kind, const char *name)
{
    char why[400];
    const char *vhost = q->nsegs > 1 ? q->segs[1] : AMQP_VHOST_DEFAULT;
    if (brk_perm_check(q->user, vhost, what, kind, name, why, sizeof why) == 0)
        return true;
    adm__fail(r, MHD_HTTP_FORBIDDEN, "access_refused", "%s", why);
    return false;
}

/* Whether user exists (a 404 in r if not). */
static bool user_exists(const char *user, adm_resp *r)
{
    brk_user *list;
    size_t n;
    if (brk_users_get(&list, &n) < 0) {
        adm__fail_rc(r, -ENOMEM, "the users");
        return false;
    }
    bool found = false;
    for (size_t i = 0; !found && i < n; i++)
        found = !strcmp(list[i].name, user);
    free(list);
    if (!found)
        adm__fail(r, MHD_HTTP_NOT_FOUND, "not_found", "user %s not found", user);
    return found;
}

/* GET /api/permissions, /api/vhosts/%2F/permissions, /api/users/NAME/permissions */
void adm__permissions_list(adm_req *q, adm_resp *r)
{
    bool by_vhost = !strcmp(q->segs[0], "vhosts"), by_user = !strcmp(q->segs[0], "users");
    if (by_vhost && !adm__vhost_ok(q->segs[1], r))
        return;
    if (by_user && !user_exists(q->segs[1], r))
        return;
    json_t *all = brk_perms_export(), *out = all ? json_array() : NULL, *p;
    size_t i;
    json_array_foreach(all, i, p)
    {
        const char *field = by_vhost ? "vhost" : "user";
        if (out && (!(by_vhost || by_user) || !strcmp(json_string_value(json_object_get(p, field)), q->segs[1])) &&
            json_array_append(out, p) < 0) {
            json_decref(out);
            out = NULL;
        }
    }
    json_decref(all);
    adm__ok(r, out);
}

/* GET /api/permissions/VHOST/USER */
void adm__permission_get(adm_req *q, adm_resp *r)
{
    if (!adm__vhost_ok(q->segs[1], r) || !user_exists(q->segs[2], r))
        return;
    brk_permission p;
    if (brk_perm_get(q->segs[2], q->segs[1], &p) < 0) {
        adm__fail(r, MHD_HTTP_NOT_FOUND, "not_found", "user %s has no permissions in vhost %s", q->segs[2], q->segs[1]);
        return;
    }
    adm__ok(r, json_pack("{s:s, s:s, s:s, s:s, s:s}", "user", p.user, "vhost", p.vhost, "configure", p.configure,
                         "write", p.write, "read", p.read));
}

/* PUT /api/permissions/VHOST/USER {"configure": "^app\\.", "write": ".*", "read": ".*"} */
void adm__permission_put(adm_req *q, adm_resp *r)
{
    if (!adm__vhost_ok(q->segs[1], r) || !user_exists(q->segs[2], r))
        return;
    json_t *body = adm__body_object(q, r);
    if (!body)
        return;
    brk_permission p, old;
    char err[400];
    int rc = brk_perm_from_json(body, q->segs[2], q->segs[1], &p, err, sizeof err);
    json_decref(body);
    if (rc < 0) {
        adm__fail(r, MHD_HTTP_BAD_REQUEST, "bad_request", "%s", err);
        return;
    }
    bool existed = brk_perm_get(p.user, p.vhost, &old) == 0;
    rc = brk_perm_set(&p, err, sizeof err);
    if (rc == -EINVAL || rc == -ENOENT)
        adm__fail(r, rc == -ENOENT ? MHD_HTTP_NOT_FOUND : MHD_HTTP_BAD_REQUEST,
                  rc == -ENOENT ? "not_found" : "bad_request", "%s", err);
    else if (rc < 0)
        adm__fail_rc(r, rc, "the permissions");
    else
        r->status = existed ? MHD_HTTP_NO_CONTENT : MHD_HTTP_CREATED;
}

/* DELETE /api/permissions/VHOST/USER */
void adm__permission_delete(adm_req *q, adm_resp *r)
{
    if (!adm__vhost_ok(q->segs[1], r) || !user_exists(q->segs[2], r))
        return;
    int rc = brk_perm_delete(q->segs[2], q->segs[1]);
    if (rc == -ENOENT)
        adm__fail(r, MHD_HTTP_NOT_FOUND, "not_found", "user %s has no permissions in vhost %s", q->segs[2], q->segs[1]);
    else if (rc < 0)
        adm__fail_rc(r, rc, "the permissions");
    else
        adm__no_content(r);
}
