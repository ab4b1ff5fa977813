/* api_definitions.c — GET and POST /api/definitions: every exchange,
 * queue, binding, user and permission as one document, in RabbitMQ's
 * format.
 *
 * The document is routing's (rt_definitions_export) and the broker's
 * (brk_users_export) put together; importing parses all of it first and
 * applies nothing if any entry is wrong, then applies users, permissions,
 * exchanges, queues and bindings in that order through the same manager requests a
 * client's declarations use. Like RabbitMQ's import, it adds and updates;
 * it never deletes what the document does not mention. /definitions/%2F
 * is one vhost's part, as RabbitMQ has it: exchanges, queues and bindings,
 * without users, vhosts and permissions (ignored when imported there).
 */
#include <errno.h>
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin/adm_internal.h"

static void read_definitions(adm__reader *rd, void *ctx)
{
    (void)rd;
    *(json_t **)ctx = rt_definitions_export(false);
}

void adm__definitions_get(adm_req *q, adm_resp *r)
{
    json_t *doc = NULL;
    bool one_vhost = q->nsegs == 2;
    if (one_vhost && !adm__vhost_ok(q->segs[1], r))
        return;
    int rc = adm__read(q, read_definitions, &doc);
    if (rc == 0 && doc && one_vhost) {
        json_object_set_new(doc, "product_name", json_string("Plexus"));
        json_object_set_new(doc, "product_version", json_string(PLEXUS_VERSION));
        adm__ok(r, doc);
        return;
    }
    json_t *users = doc ? brk_users_export() : NULL;
    json_t *perms = users ? brk_perms_export() : NULL;
    if (rc < 0 || !perms) {
        json_decref(doc);
        json_decref(users);
        adm__fail_rc(r, rc < 0 ? rc : -ENOMEM, "the definitions");
        return;
    }
    json_object_set_new(doc, "product_name", json_string("Plexus"));
    json_object_set_new(doc, "product_version", json_string(PLEXUS_VERSION));
    json_object_set_new(doc, "users", users);
    json_object_set_new(doc, "vhosts", json_pack("[{s:s}]", "name", "/"));
    json_object_set_new(doc, "permissions", perms);
    adm__ok(r, doc);
}

/* Applies one request; on failure a 400 (or the call's status) naming it. */
static bool apply(adm_req *q, adm_resp *r, rt_req_kind kind, const void *req, size_t len, const char *what,
                  const char *name)
{
    int rc = rt_call(q->inbox, kind, req, len, NULL, 0, ADM_CALL_MS);
    if (rc == 0)
        return true;
    char w[RT_NAME_MAX + 64];
    snprintf(w, sizeof w, "%s %s", what, name);
    adm__fail_rc(r, rc, w);
    return false;
}

/* Each permission names a user of the document or one that exists, and
 * a vhost that exists: checked before anything is applied. */
static int perms_known(const brk_user *users, size_t nusers, const brk_permission *perms, size_t nperms, char *err,
                       size_t len)
{
    brk_user *now;
    size_t nnow;
    if (nperms && brk_users_get(&now, &nnow) < 0)
        return rt_bad(err, len, "out of memory");
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < nperms; i++) {
        bool known = false;
        for (size_t j = 0; !known && j < nusers; j++)
            known = !strcmp(users[j].name, perms[i].user);
        for (size_t j = 0; !known && j < nnow; j++)
            known = !strcmp(now[j].name, perms[i].user);
        if (!known)
            rc = rt_bad(err, len, "permissions[%zu]: no user '%s'", i, perms[i].user);
        else if (!brk_vhost_exists(perms[i].vhost))
            rc = rt_bad(err, len, "permissions[%zu]: no vhost '%s'", i, perms[i].vhost);
    }
    if (nperms)
        free(now);
    return rc;
}

void adm__definitions_post(adm_req *q, adm_resp *r)
{
    bool one_vhost = q->nsegs == 2;
    if (one_vhost && !adm__vhost_ok(q->segs[1], r))
        return;
    json_t *doc = adm__body_object(q, r);
    if (!doc)
        return;
    rt_defs d;
    brk_user *users = NULL;
    brk_permission *perms = NULL;
    size_t nusers = 0, nperms = 0;
    bool has_perms = false;
    char err[400];
    int rc = rt_definitions_parse(doc, &d, err, sizeof err);
    bool parsed = rc == 0;
    if (rc == 0 && !one_vhost && (rc = brk_users_parse(doc, &users, &nusers, err, sizeof err)) == 0 &&
        (rc = brk_perms_parse(doc, &perms, &nperms, &has_perms, err, sizeof err)) == 0)
        rc = perms_known(users, nusers, perms, nperms, err, sizeof err);
    if (rc < 0 && parsed)
        rt_defs_free(&d);
    json_decref(doc);
    if (rc < 0) {
        free(users);
        free(perms);
        adm__fail(r, MHD_HTTP_BAD_REQUEST, "bad_request", "%s", err);
        return;
    }
    bool ok = true;
    for (size_t i = 0; ok && i < nusers; i++)
        if ((rc = brk_user_put(&users[i])) < 0) {
            adm__fail_rc(r, rc, users[i].name);
            ok = false;
        }
    for (size_t i = 0; ok && i < nperms; i++)
        if ((rc = brk_perm_set(&perms[i], err, sizeof err)) < 0) {
            adm__fail(r, MHD_HTTP_BAD_REQUEST, "bad_request", "permissions[%zu]: %s", i, err);
            ok = false;
        }
    free(perms);
    for (size_t i = 0; ok && i < d.nexchanges; i++)
        ok = apply(q, r, RT_REQ_DECLARE_EXCHANGE, &d.exchanges[i], sizeof d.exchanges[i], "exchange",
                   d.exchanges[i].name);
    for (size_t i = 0; ok && i < d.nqueues; i++)
        ok = apply(q, r, RT_REQ_DECLARE_QUEUE, &d.queues[i], sizeof d.queues[i], "queue", d.queues[i].name);
    for (size_t i = 0; ok && i < d.nbindings; i++)
        ok = apply(q, r, RT_REQ_BIND, d.bindings[i].req, d.bindings[i].len, "binding from", d.bindings[i].req->source);
    free(users);
    rt_defs_free(&d);
    if (ok)
        adm__no_content(r);
}
