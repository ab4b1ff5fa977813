/* manager_bindings.c — the routing manager's exchanges and bindings.
 *
 * Declares and deletes exchanges and adds and drops bindings. Binding sets
 * are copied on write and published with one atomic store, so publishers
 * reading them on other schedulers never take a lock; what a change
 * replaces is retired (sv_retire), not freed, since a reader may still
 * hold it for the rest of its turn. Runs on the manager's turn (manager.c).
 */
#include <errno.h>
#include <proton/codec.h>
#include <stdlib.h>
#include <string.h>

#include "routing/manager_internal.h"

static bool binds_queue(const rt_binding *b, const void *name) { return !b->to_exchange && !strcmp(b->dest, name); }
static bool binds_exchange(const rt_binding *b, const void *name) { return b->to_exchange && !strcmp(b->dest, name); }

static void retire_bindings(rt_binding **gone, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++)
        sv_retire(gone[i], rt__binding_free);
    free(gone);
}

/* Replaces x's bindings with those drop() leaves; how many went. */
static uint32_t drop_bindings(rt_exchange *x, bool (*drop)(const rt_binding *, const void *), const void *ctx)
{
    rt_bindset *old = atomic_load(&x->bindings);
    if (!old)
        return 0;
    rt_binding **gone;
    uint32_t n;
    rt_bindset *nbs = rt__bindset_filter(old, drop, ctx, &gone, &n);
    if (!nbs) {
        sv_log(SV_LOG_ERROR, "exchange %s: out of memory changing bindings", x->name);
        return 0;
    }
    if (!n) {
        free(nbs);
        free(gone);
        return 0;
    }
    atomic_store_explicit(&x->bindings, nbs, memory_order_release);
    sv_retire(old, free);
    retire_bindings(gone, n);
    return n;
}

typedef struct unbind_all {
    bool (*drop)(const rt_binding *, const void *);
    const char *name;
} unbind_all;

static bool unbind_each(rt_exchange *x, void *ctx)
{
    unbind_all *u = ctx;
    drop_bindings(x, u->drop, u->name);
    return true;
}

void rt__mgr_unbind_dest(const char *name, bool to_exchange)
{
    unbind_all u = {to_exchange ? binds_exchange : binds_queue, name};
    rt_exchange_each(unbind_each, &u);
}

/* ------------------------------------------------------------ exchanges */

static bool reserved(const char *name) { return !name[0] || !strncmp(name, "amq.", 4); }

/* 1: created, 0: there already, or an error. */
int rt__mgr_exchange_declare(rt_req_exchange *r)
{
    if ((unsigned)r->type > RT_HEADERS)
        return -EINVAL;
    r->name[RT_NAME_MAX] = '\0';
    rt_exchange *x = rt_exchange_find(r->name);
    if (x) /* redeclaring with another type is a precondition failure */
        return !r->passive && x->type != r->type ? -EEXIST : 0;
    if (r->passive)
        return -ENOENT;
    if (reserved(r->name))
        return -EPERM;
    x = rt__exchange_new(r->name, r->type, r->durable, r->auto_delete, r->internal);
    if (!x || rt__dir_add(RT__EXCHANGES, x->name, x) < 0) {
        if (x)
            rt__exchange_free(x);
        return -ENOMEM;
    }
    return 1;
}

void rt__mgr_declare_exchange(sv_proc *self, manager *mg, sv_msg *req)
{
    rt_req_exchange *r = SV_MSG_AS(req, rt_req_exchange);
    int rc = r ? rt__mgr_exchange_declare(r) : -EINVAL;
    if (rc < 0) {
        sv_reply_error(sv_from_of(req), rc);
        return;
    }
    rt__mgr_answer_change(self, mg, req, rc == 1 && r->durable);
}

static bool has_bindings(rt_exchange *x)
{
    rt_bindset *bs = atomic_load(&x->bindings);
    return bs && bs->n;
}

typedef struct is_dest {
    const char *name;
    bool found;
} is_dest;

static bool find_as_dest(rt_exchange *x, void *ctx)
{
    is_dest *d = ctx;
    rt_bindset *bs = atomic_load(&x->bindings);
    for (uint32_t i = 0; bs && i < bs->n; i++)
        if (binds_exchange(bs->b[i], d->name))
            d->found = true;
    return !d->found;
}

static int exchange_remove(const char *name)
{
    rt_exchange *x = rt__dir_remove(RT__EXCHANGES, name);
    if (!x)
        return -ENOENT;
    rt__mgr_unbind_dest(name, true);
    sv_retire(x, rt__exchange_free);
    return 0;
}

void rt__mgr_delete_exchange(sv_proc *self, manager *mg, sv_msg *req)
{
    rt_req_exchange *r = SV_MSG_AS(req, rt_req_exchange);
    if (!r) {
        sv_reply_error(sv_from_of(req), -EINVAL);
        return;
    }
    r->name[RT_NAME_MAX] = '\0';
    rt_exchange *x = rt_exchange_find(r->name);
    int rc = !x ? -ENOENT : reserved(r->name) ? -EPERM : 0;
    if (rc == 0 && r->if_unused) {
        is_dest d = {r->name, false};
        rt_exchange_each(find_as_dest, &d);
        if (has_bindings(x) || d.found)
            rc = -EBUSY;
    }
    bool durable = x && x->durable;
    if (rc == 0)
        rc = exchange_remove(r->name);
    if (rc < 0) {
        sv_reply_error(sv_from_of(req), rc);
        return;
    }
    rt__mgr_answer_change(self, mg, req, durable);
}

/* ------------------------------------------------------------- bindings */

static int parse_binding(rt_req_bind *b, size_t len, rt_exchange **x, rt_hdrmatch **hm)
{
    if (!b || len < sizeof *b + b->args_len)
        return -EINVAL;
    b->source[RT_NAME_MAX] = b->dest[RT_NAME_MAX] = b->key[RT_NAME_MAX] = '\0';
    *x = rt_exchange_find(b->source);
    if (!*x)
        return b->source[0] ? -ENOENT : -EPERM; /* the default exchange takes no bindings */
    if (b->to_exchange ? !rt_exchange_find(b->dest) : !rt_queue_find(b->dest))
        return -ENOENT;
    *hm = NULL;
    if ((*x)->type != RT_HEADERS)
        return 0;
    pn_data_t *args = NULL;
    if (b->args_len) {
        args = pn_data(8);
        if (!args)
            return -ENOMEM;
        if (pn_data_decode(args, (const char *)(b + 1), b->args_len) <= 0) {
            pn_data_free(args);
            return -EINVAL;
        }
    }
    char err[128];
    int rc = rt_hdrmatch_new(args, hm, err, sizeof err);
    if (args)
        pn_data_free(args);
    return rc;
}

/* 1: bound, 0: bound already, or an error. *durable: whether it is a
 * binding the definitions file keeps (from a durable exchange). */
int rt__mgr_binding_add(rt_req_bind *b, size_t len, bool *durable)
{
    rt_exchange *x;
    rt_hdrmatch *hm = NULL;
    int rc = parse_binding(b, len, &x, &hm);
    if (rc < 0)
        return rc;
    *durable = x->durable;
    rt_binding *nb = rt__binding_new(b->key, b->dest, b->to_exchange, hm);
    if (!nb) {
        rt_hdrmatch_free(hm);
        return -ENOMEM;
    }
    rt_bindset *old = atomic_load(&x->bindings);
    for (uint32_t i = 0; old && i < old->n; i++) {
        if (rt__binding_same(old->b[i], nb)) { /* binding twice is binding once */
            rt__binding_free(nb);
            return 0;
        }
    }
    rt_bindset *nbs = rt__bindset_add(old, nb);
    if (!nbs) {
        rt__binding_free(nb);
        return -ENOMEM;
    }
    atomic_store_explicit(&x->bindings, nbs, memory_order_release);
    if (old)
        sv_retire(old, free);
    return 1;
}

void rt__mgr_bind(sv_proc *self, manager *mg, sv_msg *req)
{
    bool durable = false;
    int rc = rt__mgr_binding_add(SV_MSG_AS(req, rt_req_bind), req->len, &durable);
    if (rc < 0) {
        sv_reply_error(sv_from_of(req), rc);
        return;
    }
    rt__mgr_answer_change(self, mg, req, rc == 1 && durable);
}

static bool same_as(const rt_binding *b, const void *probe) { return rt__binding_same(b, probe); }

void rt__mgr_unbind(sv_proc *self, manager *mg, sv_msg *req)
{
    rt_req_bind *b = SV_MSG_AS(req, rt_req_bind);
    rt_exchange *x = NULL;
    rt_hdrmatch *hm = NULL;
    int rc = parse_binding(b, req->len, &x, &hm);
    if (rc == -ENOENT && b && (x = rt_exchange_find(b->source)) && x->type != RT_HEADERS)
        rc = 0; /* the destination may be gone already; its bindings went with it */
    if (rc < 0) {
        sv_reply_error(sv_from_of(req), rc);
        return;
    }
    rt_binding *probe = rt__binding_new(b->key, b->dest, b->to_exchange, hm);
    if (!probe) {
        rt_hdrmatch_free(hm);
        sv_reply_error(sv_from_of(req), -ENOMEM);
        return;
    }
    uint32_t n = drop_bindings(x, same_as, probe);
    rt__binding_free(probe);
    if (!n) {
        sv_reply_error(sv_from_of(req), -ENOENT);
        return;
    }
    bool durable = x->durable;
    if (x->auto_delete && !has_bindings(x))
        exchange_remove(x->name); /* its last binding went */
    rt__mgr_answer_change(self, mg, req, durable);
}
