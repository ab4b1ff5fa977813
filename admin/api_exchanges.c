/* api_exchanges.c — /api/exchanges: list, inspect, declare, delete.
 *
 * The default exchange is listed as RabbitMQ lists it (name "", direct,
 * durable) and answers to "amq.default" in paths, since an empty path
 * segment cannot name it; it cannot be declared or deleted.
 */
#include <errno.h>
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin/adm_internal.h"

typedef struct xlist {
    const char *only;
    json_t *arr;
    bool found;
} xlist;

static json_t *default_exchange(void)
{
    return json_pack("{s:s, s:s, s:s, s:b, s:b, s:b, s:{}}", "name", "", "vhost", "/", "type", "direct", "durable", 1,
                     "auto_delete", 0, "internal", 0, "arguments");
}

static bool add_exchange(rt_exchange *x, void *ctx)
{
    xlist *l = ctx;
    json_array_append_new(l->arr, rt_exchange_json(x));
    return true;
}

/* In the reader's turn: the exchange records are only safe to read there. */
static void read_exchanges(adm__reader *rd, void *ctx)
{
    (void)rd;
    xlist *l = ctx;
    if (!l->only) {
        rt_exchange_each(add_exchange, l);
        return;
    }
    rt_exchange *x = rt_exchange_find(l->only);
    if (x) {
        json_array_append_new(l->arr, rt_exchange_json(x));
        l->found = true;
    }
}

static int by_name(const void *a, const void *b)
{
    const char *x = json_string_value(json_object_get(*(json_t *const *)a, "name"));
    const char *y = json_string_value(json_object_get(*(json_t *const *)b, "name"));
    return strcmp(x ? x : "", y ? y : "");
}

/* GET /api/exchanges, /api/exchanges/%2F */
void adm__exchanges_list(adm_req *q, adm_resp *r)
{
    if (q->nsegs == 2 && !adm__vhost_ok(q->segs[1], r))
        return;
    xlist l = {NULL, json_array(), false};
    int rc = l.arr ? adm__read(q, read_exchanges, &l) : -ENOMEM;
    if (rc < 0) {
        json_decref(l.arr);
        adm__fail_rc(r, rc, "the exchanges");
        return;
    }
    json_array_append_new(l.arr, default_exchange());
    size_t n = json_array_size(l.arr);
    json_t **v = malloc((n ? n : 1) * sizeof *v);
    json_t *out = v ? json_array() : NULL;
    for (size_t i = 0; v && i < n; i++)
        v[i] = json_array_get(l.arr, i);
    if (v)
        qsort(v, n, sizeof *v, by_name);
    for (size_t i = 0; out && i < n; i++)
        json_array_append(out, v[i]);
    free(v);
    json_decref(l.arr);
    adm__ok(r, out);
}

static bool is_default(const char *name) { return !name[0] || !strcmp(name, "amq.default"); }

void adm__exchange_get(adm_req *q, adm_resp *r)
{
    if (!adm__vhost_ok(q->segs[1], r))
        return;
    if (is_default(q->segs[2])) {
        adm__ok(r, default_exchange());
        return;
    }
    xlist l = {q->segs[2], json_array(), false};
    int rc = l.arr ? adm__read(q, read_exchanges, &l) : -ENOMEM;
    if (rc < 0 || !l.found) {
        json_decref(l.arr);
        adm__fail_rc(r, rc < 0 ? rc : -ENOENT, "exchange");
        return;
    }
    adm__ok(r, json_incref(json_array_get(l.arr, 0)));
    json_decref(l.arr);
}

/* PUT /api/exchanges/%2F/NAME {"type": "topic", "durable": true, ...} */
void adm__exchange_put(adm_req *q, adm_resp *r)
{
    if (!adm__vhost_ok(q->segs[1], r))
        return;
    if (is_default(q->segs[2]) || !strncmp(q->segs[2], "amq.", 4)) {
        adm__fail(r, MHD_HTTP_FORBIDDEN, "access_refused", "exchange names starting with amq. are reserved");
        return;
    }
    if (!adm__may(q, r, AMQP_PERM_CONFIGURE, "exchange", q->segs[2]))
        return;
    static const char *const bools[] = {"durable", "auto_delete", "internal", NULL}; /* as for queues */
    json_t *body = adm__body_coerced(q, r, bools, NULL);
    if (!body)
        return;
    rt_req_exchange req;
    char err[300];
    int rc = rt_exchange_req_json(body, q->segs[2], &req, "exchange", err, sizeof err);
    json_decref(body);
    if (rc < 0) {
        adm__fail(r, MHD_HTTP_BAD_REQUEST, "bad_request", "%s", err);
        return;
    }
    xlist l = {q->segs[2], json_array(), false};
    if (l.arr)
        adm__read(q, read_exchanges, &l); /* only to answer 201 or 204 */
    json_decref(l.arr);
    rc = rt_call(q->inbox, RT_REQ_DECLARE_EXCHANGE, &req, sizeof req, NULL, 0, ADM_CALL_MS);
    if (rc < 0)
        adm__fail_rc(r, rc, "exchange");
    else
        r->status = l.found ? MHD_HTTP_NO_CONTENT : MHD_HTTP_CREATED;
}

/* DELETE /api/exchanges/%2F/NAME[?if-unused=true] */
void adm__exchange_delete(adm_req *q, adm_resp *r)
{
    if (!adm__vhost_ok(q->segs[1], r))
        return;
    rt_req_exchange req = {.if_unused = adm__arg_true(q, "if-unused")};
    if (is_default(q->segs[2])) {
        adm__fail_rc(r, -EPERM, "the default exchange");
        return;
    }
    if (strlen(q->segs[2]) > RT_NAME_MAX) {
        adm__fail_rc(r, -ENOENT, "exchange");
        return;
    }
    snprintf(req.name, sizeof req.name, "%s", q->segs[2]);
    if (!adm__may(q, r, AMQP_PERM_CONFIGURE, "exchange", req.name))
        return;
    int rc = rt_call(q->inbox, RT_REQ_DELETE_EXCHANGE, &req, sizeof req, NULL, 0, ADM_CALL_MS);
    if (rc < 0)
        adm__fail_rc(r, rc, "exchange");
    else
        adm__no_content(r);
}
