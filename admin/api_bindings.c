/* api_bindings.c — /api/bindings: list, bind, inspect and unbind by
 * properties key.
 *
 * A binding has no name, so RabbitMQ's API names it by a "properties key":
 * the routing key ("~" when empty), or, with arguments, the key, "~" and a
 * hash of the arguments. Ours are made the same way (the hash of the
 * arguments as the broker keeps them), so a client lists bindings and
 * deletes one by the properties_key it was shown. The default exchange's
 * implicit binding to every queue is listed as RabbitMQ lists it.
 */
#include <errno.h>
#include <microhttpd.h>
#include <proton/codec.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin/adm_internal.h"

typedef struct blist {
    const char *source, *dest; /* only these, when set */
    bool to_exchange;
    const char *props; /* only the binding with this properties key */
    json_t *arr;
    rt_def_bind found; /* the request that would remove it (props) */
    int rc;
} blist;

static void props_key(const rt_binding *b, char *out, size_t len)
{
    if (!b->args[0]) {
        snprintf(out, len, "%s", b->key[0] ? b->key : "~");
        return;
    }
    snprintf(out, len, "%s~%08x", b->key, sv_hash32(b->args));
}

static json_t *binding_json(const char *source, const rt_binding *b)
{
    char pk[RT_NAME_MAX + 16];
    props_key(b, pk, sizeof pk);
    json_t *o = rt_binding_json(source, b);
    if (o)
        json_object_set_new(o, "properties_key", json_string(pk));
    return o;
}

/* The unbind request for b (its arguments encoded as the manager takes them). */
static int unbind_req(const char *source, const rt_binding *b, rt_def_bind *out)
{
    json_t *o = rt_binding_json(source, b);
    char err[128];
    int rc = o ? rt_binding_req_json(o, out, "binding", err, sizeof err) : -ENOMEM;
    json_decref(o);
    return rc;
}

static bool list_exchange(rt_exchange *x, void *ctx)
{
    blist *l = ctx;
    if (l->source && strcmp(x->name, l->source) != 0)
        return true;
    rt_bindset *bs = atomic_load_explicit(&x->bindings, memory_order_acquire);
    for (uint32_t i = 0; bs && i < bs->n; i++) {
        const rt_binding *b = bs->b[i];
        if (l->dest && (strcmp(b->dest, l->dest) != 0 || b->to_exchange != l->to_exchange))
            continue;
        if (l->props) {
            char pk[RT_NAME_MAX + 16];
            props_key(b, pk, sizeof pk);
            if (strcmp(pk, l->props) != 0)
                continue;
            if (!l->found.req)
                l->rc = unbind_req(x->name, b, &l->found);
        }
        json_array_append_new(l->arr, binding_json(x->name, b));
    }
    return true;
}

/* The default exchange binds every queue by its name. */
static bool list_default(rt_queue *q, void *ctx)
{
    blist *l = ctx;
    json_array_append_new(l->arr, json_pack("{s:s, s:s, s:s, s:s, s:s, s:{}, s:s}", "source", "", "vhost", "/",
                                            "destination", q->name, "destination_type", "queue", "routing_key", q->name,
                                            "arguments", "properties_key", q->name));
    return true;
}

static void read_bindings(adm__reader *rd, void *ctx)
{
    (void)rd;
    blist *l = ctx;
    if (!l->source)
        rt_queue_each(list_default, l);
    if (l->source) {
        rt_exchange *x = rt_exchange_find(l->source);
        if (x)
            list_exchange(x, l);
        else
            l->rc = -ENOENT;
    } else {
        rt_exchange_each(list_exchange, l);
    }
}

static void respond_list(adm_req *q, adm_resp *r, blist *l)
{
    int rc = l->arr ? adm__read(q, read_bindings, l) : -ENOMEM;
    if (rc < 0 || l->rc < 0) {
        json_decref(l->arr);
        free(l->found.req);
        adm__fail_rc(r, rc < 0 ? rc : l->rc, "exchange");
        return;
    }
    adm__ok(r, l->arr);
}

/* GET /api/bindings, /api/bindings/%2F */
void adm__bindings_list(adm_req *q, adm_resp *r)
{
    if (q->nsegs == 2 && !adm__vhost_ok(q->segs[1], r))
        return;
    blist l = {.arr = json_array()};
    respond_list(q, r, &l);
}

/* The source, destination and kind named by .../e/SRC/(q|e)/DEST[/PROPS]. */
static bool between(adm_req *q, adm_resp *r, blist *l)
{
    if (!adm__vhost_ok(q->segs[1], r))
        return false;
    *l = (blist){.source = q->segs[3],
                 .dest = q->segs[5],
                 .to_exchange = !strcmp(q->segs[4], "e"),
                 .props = q->nsegs > 6 ? q->segs[6] : NULL,
                 .arr = json_array()};
    if (!strcmp(l->source, "amq.default"))
        l->source = "";
    return true;
}

/* GET /api/bindings/%2F/e/SRC/q/DEST: the bindings between two things. */
void adm__bindings_between(adm_req *q, adm_resp *r)
{
    blist l;
    if (!between(q, r, &l))
        return;
    if (!l.source[0]) {
        json_decref(l.arr);
        adm__fail_rc(r, -EPERM, "the default exchange's bindings");
        return;
    }
    respond_list(q, r, &l);
}

/* GET /api/bindings/%2F/e/SRC/q/DEST/PROPS */
void adm__binding_get(adm_req *q, adm_resp *r)
{
    blist l;
    if (!between(q, r, &l))
        return;
    int rc = l.source[0] ? adm__read(q, read_bindings, &l) : -ENOENT;
    free(l.found.req);
    if (rc < 0 || l.rc < 0 || json_array_size(l.arr) == 0) {
        json_decref(l.arr);
        adm__fail_rc(r, rc < 0 ? rc : l.rc < 0 ? l.rc : -ENOENT, "binding");
        return;
    }
    adm__ok(r, json_incref(json_array_get(l.arr, 0)));
    json_decref(l.arr);
}

/* POST /api/bindings/%2F/e/SRC/q/DEST {"routing_key": "...", "arguments": {...}} */
void adm__binding_post(adm_req *q, adm_resp *r)
{
    blist l;
    if (!between(q, r, &l))
        return;
    json_decref(l.arr);
    if (!l.source[0]) {
        adm__fail_rc(r, -EPERM, "the default exchange");
        return;
    }
    /* RabbitMQ's queue.bind / exchange.bind: write on the destination,
     * read on the source. */
    if (!adm__may(q, r, AMQP_PERM_WRITE, l.to_exchange ? "exchange" : "queue", l.dest) ||
        !adm__may(q, r, AMQP_PERM_READ, "exchange", l.source))
        return;
    json_t *body = adm__body_object(q, r);
    if (!body)
        return;
    json_t *key = json_object_get(body, "routing_key"), *args = json_object_get(body, "arguments");
    json_t *o = json_pack("{s:s, s:s, s:s, s:O*, s:O*}", "source", l.source, "destination", l.dest, "destination_type",
                          l.to_exchange ? "exchange" : "queue", "routing_key", key, "arguments", args);
    json_decref(body);
    rt_def_bind b = {0};
    char err[300];
    int rc = o ? rt_binding_req_json(o, &b, "binding", err, sizeof err) : -ENOMEM;
    json_decref(o);
    if (rc == -EINVAL) {
        adm__fail(r, MHD_HTTP_BAD_REQUEST, "bad_request", "%s", err);
        return;
    }
    if (rc == 0)
        rc = rt_call(q->inbox, RT_REQ_BIND, b.req, b.len, NULL, 0, ADM_CALL_MS);
    free(b.req);
    if (rc < 0)
        adm__fail_rc(r, rc, l.source[0] ? "the source or the destination" : "the default exchange");
    else
        r->status = MHD_HTTP_CREATED;
}

/* DELETE /api/bindings/%2F/e/SRC/q/DEST/PROPS */
void adm__binding_delete(adm_req *q, adm_resp *r)
{
    blist l;
    if (!between(q, r, &l))
        return;
    if (l.source[0] && (!adm__may(q, r, AMQP_PERM_WRITE, l.to_exchange ? "exchange" : "queue", l.dest) ||
                        !adm__may(q, r, AMQP_PERM_READ, "exchange", l.source))) {
        json_decref(l.arr);
        return;
    }
    int rc = l.source[0] ? adm__read(q, read_bindings, &l) : -EPERM;
    json_decref(l.arr);
    if (rc == 0)
        rc = l.rc < 0 ? l.rc : !l.found.req ? -ENOENT : 0;
    if (rc == 0)
        rc = rt_call(q->inbox, RT_REQ_UNBIND, l.found.req, l.found.len, NULL, 0, ADM_CALL_MS);
    free(l.found.req);
    if (rc < 0)
        adm__fail_rc(r, rc, "binding");
    else
        adm__no_content(r);
}
