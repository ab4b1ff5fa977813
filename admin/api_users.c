/* api_users.c — /api/users: list, inspect, add or change, delete.
 *
 * Users are the broker's (broker/users.c); a change applies to the next
 * login, AMQP or HTTP, at once. Passwords arrive as "password" (hashed
 * here) or as a RabbitMQ "password_hash", and are never shown otherwise.
 */
#include <errno.h>
#include <microhttpd.h>
#include <string.h>

#include "admin/adm_internal.h"

void adm__users_list(adm_req *q, adm_resp *r)
{
    (void)q;
    adm__ok(r, brk_users_export());
}

/* The user's entry in the export, or NULL. */
static json_t *find(const char *name)
{
    json_t *all = brk_users_export(), *u;
    size_t i;
    json_t *found = NULL;
    json_array_foreach(all, i, u)
    {
        if (!strcmp(json_string_value(json_object_get(u, "name")), name)) {
            found = json_incref(u);
            break;
        }
    }
    json_decref(all);
    return found;
}

void adm__user_get(adm_req *q, adm_resp *r)
{
    json_t *u = find(q->segs[1]);
    if (u)
        adm__ok(r, u);
    else
        adm__fail_rc(r, -ENOENT, "user");
}

/* PUT /api/users/NAME {"password": "...", "tags": "administrator"} */
void adm__user_put(adm_req *q, adm_resp *r)
{
    json_t *body = adm__body_object(q, r);
    if (!body)
        return;
    brk_user u;
    char err[300];
    int rc = brk_user_from_json(body, q->segs[1], &u, err, sizeof err);
    json_decref(body);
    if (rc < 0) {
        adm__fail(r, MHD_HTTP_BAD_REQUEST, "bad_request", "%s", err);
        return;
    }
    json_t *existing = find(u.name);
    json_decref(existing);
    rc = brk_user_put(&u);
    if (rc < 0)
        adm__fail_rc(r, rc, "users");
    else
        r->status = existing ? MHD_HTTP_NO_CONTENT : MHD_HTTP_CREATED;
}

void adm__user_delete(adm_req *q, adm_resp *r)
{
    int rc = brk_user_delete(q->segs[1]);
    if (rc < 0)
        adm__fail_rc(r, rc, "user");
    else
        adm__no_content(r);
}
