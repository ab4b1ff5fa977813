/* api_tree.c — GET /api/supervisors: the live supervision tree, like
 * Erlang's observer: every supervisor with its strategy and restarts,
 * every child with its pid, behaviour, restart type, restart count and
 * mailbox depth. It asks each supervisor in turn (sv_sup_get_info,
 * sv_sup_which_children) from the HTTP thread's inbox, so a child list
 * is each supervisor's own, consistent at the moment it answered.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin/adm_internal.h"

#define MAX_DEPTH 8

static const char *strategy_name(sv_strategy s)
{
    return s == SV_ONE_FOR_ALL ? "one_for_all" : s == SV_REST_FOR_ONE ? "rest_for_one" : "one_for_one";
}

static const char *restart_name(sv_restart r)
{
    return r == SV_TRANSIENT ? "transient" : r == SV_TEMPORARY ? "temporary" : "permanent";
}

typedef struct walk {
    adm_req *q;
    adm__sup *sups; /* when collecting supervisors */
    size_t n, cap;
    bool collect, failed;
} walk;

/* The children of sup, however many: asked again if they grew meanwhile. */
static sv_child_info *children_of(adm_req *q, sv_pid sup, int *n)
{
    int cap = 64;
    for (int tries = 0; tries < 4; tries++) {
        sv_child_info *kids = malloc((size_t)cap * sizeof *kids);
        if (!kids)
            return NULL;
        *n = sv_sup_which_children(q->inbox, sup, kids, cap, ADM_CALL_MS);
        if (*n >= 0 && *n <= cap)
            return kids;
        free(kids);
        if (*n < 0)
            return NULL;
        cap = *n + 64;
    }
    return NULL;
}

static json_t *visit(walk *w, sv_pid sup, const char *path, int depth)
{
    sv_sup_info info;
    char pb[SV_PID_FMT_LEN];
    if (sv_sup_get_info(w->q->inbox, sup, &info, ADM_CALL_MS) < 0)
        return json_pack("{s:b}", "gone", 1); /* ended meanwhile */
    if (w->collect) {
        if (w->n == w->cap) {
            size_t cap = w->cap ? w->cap * 2 : 16;
            adm__sup *ns = realloc(w->sups, cap * sizeof *ns);
            if (!ns) {
                w->failed = true;
                return NULL;
            }
            w->sups = ns;
            w->cap = cap;
        }
        snprintf(w->sups[w->n].path, sizeof w->sups[w->n].path, "%s", path);
        w->sups[w->n++].info = info;
    }
    json_t *node = json_pack("{s:s, s:s, s:i, s:i, s:I}", "name", info.name, "strategy",
                             strategy_name(info.flags.strategy), "intensity", info.flags.intensity, "period_ms",
                             info.flags.period_ms, "child_restarts", (json_int_t)info.restarts);
    int n;
    sv_child_info *kids = children_of(w->q, sup, &n);
    json_t *arr = json_array();
    for (int i = 0; kids && arr && i < n; i++) {
        const sv_child_info *k = &kids[i];
        json_t *c = json_pack("{s:s, s:s, s:s, s:b, s:I, s:I, s:s?}", "id", k->id, "pid",
                              sv_pid_is_none(k->pid) ? "" : sv_pid_str(k->pid, pb, sizeof pb), "restart",
                              restart_name(k->restart), "supervisor", k->is_supervisor, "restarts",
                              (json_int_t)k->restarts, "mailbox", (json_int_t)k->mailbox, "behaviour", k->behaviour);
        if (c && k->is_supervisor && !sv_pid_is_none(k->pid) && depth < MAX_DEPTH) {
            char sub[256];
            snprintf(sub, sizeof sub, "%s/%s", path, k->id);
            json_object_update_new(c, visit(w, k->pid, sub, depth + 1)); /* its strategy, children... */
        }
        if (c)
            json_array_append_new(arr, c);
    }
    free(kids);
    if (node && arr)
        json_object_set_new(node, "children", arr);
    else
        json_decref(arr);
    return node;
}

void adm__supervisors(adm_req *q, adm_resp *r)
{
    sv_pid root = sv_whereis("plexus");
    if (sv_pid_is_none(root)) {
        adm__fail(r, 503, "unavailable", "the supervision tree is not running");
        return;
    }
    walk w = {.q = q};
    char pb[SV_PID_FMT_LEN];
    json_t *tree =
        json_pack("{s:s, s:s, s:s, s:b, s:i, s:s}", "id", "plexus", "pid", sv_pid_str(root, pb, sizeof pb), "behaviour",
                  "supervisor", "supervisor", 1, "mailbox", (int)sv_mailbox_len(root), "restart", "permanent");
    if (tree)
        json_object_update_new(tree, visit(&w, root, "plexus", 0));
    adm__ok(r, tree);
}

int adm__walk_sups(adm_req *q, adm__sup **out, size_t *n)
{
    sv_pid root = sv_whereis("plexus");
    walk w = {.q = q, .collect = true};
    if (!sv_pid_is_none(root))
        json_decref(visit(&w, root, "plexus", 0));
    if (w.failed) {
        free(w.sups);
        return -ENOMEM;
    }
    *out = w.sups;
    *n = w.n;
    return 0;
}
