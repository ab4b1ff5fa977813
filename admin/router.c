/* router.c — which handler answers a method and path.
 *
 * Paths are matched segment by segment against a table, with "*" for a
 * segment that is a name; each segment is percent-decoded on its own,
 * after splitting, so a vhost "/" (%2F) or a queue named "a/b" (a%2Fb)
 * stays one segment. (libmicrohttpd is told not to decode the path: it
 * would decode %2F before we split.) A path that exists with another
 * method is a 405 that names the methods it takes; one that does not is a
 * 404. After a GET, RabbitMQ's sort= and columns= arguments shape the
 * answer (listing.c).
 */
#include <microhttpd.h>
#include <stdio.h>
#include <string.h>

#include "admin/adm_internal.h"

typedef struct route {
    const char *method;
    const char *pattern;
    adm_handler fn;
} route;

static const route routes[] = {
    {"GET", "overview", adm__overview},
    {"GET", "nodes", adm__nodes},
    {"GET", "supervisors", adm__supervisors},
    {"GET", "whoami", adm__whoami},
    {"GET", "queues", adm__queues_list},
    {"GET", "queues/*", adm__queues_list},
    {"GET", "queues/*/*", adm__queue_get},
    {"PUT", "queues/*/*", adm__queue_put},
    {"DELETE", "queues/*/*", adm__queue_delete},
    {"DELETE", "queues/*/*/contents", adm__queue_purge},
    {"POST", "queues/*/*/get", adm__queue_fetch},
    {"GET", "exchanges", adm__exchanges_list},
    {"GET", "exchanges/*", adm__exchanges_list},
    {"GET", "exchanges/*/*", adm__exchange_get},
    {"PUT", "exchanges/*/*", adm__exchange_put},
    {"DELETE", "exchanges/*/*", adm__exchange_delete},
    {"POST", "exchanges/*/*/publish", adm__exchange_publish},
    {"GET", "bindings", adm__bindings_list},
    {"GET", "bindings/*", adm__bindings_list},
    {"GET", "bindings/*/e/*/q/*", adm__bindings_between},
    {"POST", "bindings/*/e/*/q/*", adm__binding_post},
    {"GET", "bindings/*/e/*/q/*/*", adm__binding_get},
    {"DELETE", "bindings/*/e/*/q/*/*", adm__binding_delete},
    {"GET", "bindings/*/e/*/e/*", adm__bindings_between},
    {"POST", "bindings/*/e/*/e/*", adm__binding_post},
    {"GET", "bindings/*/e/*/e/*/*", adm__binding_get},
    {"DELETE", "bindings/*/e/*/e/*/*", adm__binding_delete},
    {"GET", "connections", adm__connections_list},
    {"GET", "connections/*", adm__connection_get},
    {"DELETE", "connections/*", adm__connection_delete},
    {"GET", "connections/*/channels", adm__connection_channels},
    {"GET", "channels", adm__channels_list},
    {"GET", "consumers", adm__consumers_list},
    {"GET", "consumers/*", adm__consumers_list},
    {"GET", "users", adm__users_list},
    {"GET", "users/*", adm__user_get},
    {"PUT", "users/*", adm__user_put},
    {"DELETE", "users/*", adm__user_delete},
    {"GET", "users/*/permissions", adm__permissions_list},
    {"GET", "vhosts", adm__vhosts_list},
    {"GET", "vhosts/*", adm__vhost_get},
    {"PUT", "vhosts/*", adm__vhost_put},
    {"DELETE", "vhosts/*", adm__vhost_delete},
    {"GET", "vhosts/*/permissions", adm__permissions_list},
    {"GET", "permissions", adm__permissions_list},
    {"GET", "permissions/*/*", adm__permission_get},
    {"PUT", "permissions/*/*", adm__permission_put},
    {"DELETE", "permissions/*/*", adm__permission_delete},
    {"GET", "definitions", adm__definitions_get},
    {"POST", "definitions", adm__definitions_post},
    {"GET", "definitions/*", adm__definitions_get},
    {"POST", "definitions/*", adm__definitions_post},
};
#define NROUTES (sizeof routes / sizeof routes[0])

/* Whether the request's segments fit the pattern ("*" stands for any one segment). */
static bool matches(const char *pattern, const adm_req *q)
{
    int i = 0;
    for (const char *p = pattern; *p; i++) {
        const char *end = strchr(p, '/');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        if (i >= q->nsegs)
            return false;
        if (!(n == 1 && *p == '*') && (strlen(q->segs[i]) != n || strncmp(q->segs[i], p, n) != 0))
            return false;
        p += n + (end ? 1 : 0);
    }
    return i == q->nsegs;
}

bool adm__split_path(char *path, adm_req *q, adm_resp *r)
{
    size_t n = strlen(path);
    if (n && path[n - 1] == '/')
        path[n - 1] = '\0'; /* /api/queues/ is /api/queues */
    q->nsegs = 0;
    for (char *p = path; *p || q->nsegs == 0;) {
        char *end = strchr(p, '/');
        if (end)
            *end = '\0';
        if (q->nsegs == ADM_MAX_SEGS) {
            adm__fail(r, MHD_HTTP_NOT_FOUND, "not_found", "no such API path");
            return false;
        }
        if (adm__pct_decode(p, false) < 0) {
            adm__fail(r, MHD_HTTP_BAD_REQUEST, "bad_request", "bad percent-encoding in the path");
            return false;
        }
        q->segs[q->nsegs++] = p;
        if (!end)
            break;
        p = end + 1;
    }
    return true;
}

adm_handler adm__route_find(const adm_req *q, char *allow, size_t allow_len)
{
    const char *method = strcmp(q->method, "HEAD") == 0 ? "GET" : q->method;
    allow[0] = '\0';
    for (size_t i = 0; i < NROUTES; i++) {
        if (!matches(routes[i].pattern, q))
            continue;
        if (strcmp(routes[i].method, method) == 0)
            return routes[i].fn;
        size_t used = strlen(allow);
        snprintf(allow + used, allow_len - used, "%s%s", used ? ", " : "", routes[i].method);
    }
    return NULL;
}

/* sort= and columns= on a GET's JSON answer (the request's query string). */
static void shape(adm_req *q, adm_resp *r)
{
    char key[256], cols[1024], rev[8];
    if (!q->conn || r->status != MHD_HTTP_OK || !r->json)
        return;
    if (adm__arg(q, "sort", key, sizeof key) && key[0])
        adm__list_sort(r->json, key, adm__arg(q, "sort_reverse", rev, sizeof rev) && !strcmp(rev, "true"));
    if (adm__arg(q, "columns", cols, sizeof cols) && cols[0]) {
        json_t *picked = adm__columns(r->json, cols);
        if (picked) {
            json_decref(r->json);
            r->json = picked;
        }
    }
}

void adm__route(adm_req *q, adm_resp *r)
{
    adm_handler fn = adm__route_find(q, r->allow, sizeof r->allow);
    if (fn) {
        r->allow[0] = '\0';
        fn(q, r);
        if (!strcmp(q->method, "GET") || !strcmp(q->method, "HEAD"))
            shape(q, r);
    } else if (r->allow[0]) {
        adm__fail(r, MHD_HTTP_METHOD_NOT_ALLOWED, "method_not_allowed", "%s is not allowed here (allowed: %s)",
                  q->method, r->allow);
    } else {
        adm__fail(r, MHD_HTTP_NOT_FOUND, "not_found", "no such API path");
    }
}
