/* manager_defs.c — the routing manager's durable definitions: the
 * definitions file and what boot brings back.
 *
 * A durable change is answered once DATA/definitions.json holds it; the
 * file is rewritten whole by a store thread, like group commit (changes
 * made while a write is under way share the next one). At boot, durable
 * queues come back from their logs' queue.meta files and exchanges and
 * bindings from the definitions file; a binding to a queue waits for that
 * queue's process. Runs on the manager's turn (manager.c).
 */
#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "routing/manager_internal.h"

/* Durable definitions changed: the definitions file is written again,
 * like group commit: at once if no write is under way, else once that one
 * is done, for every change made meanwhile. from (if not NULL) is
 * answered when the file holds the change, so a declare-ok means the
 * declaration survives a crash. */
void rt__mgr_defs_changed(sv_proc *self, manager *mg, const sv_from *from)
{
    if (!rt__store_dir()) {
        if (from)
            rt__mgr_answer(*from, NULL, 0);
        return;
    }
    mg->defs_dirty = true;
    if (from) {
        if (sv_grow((void **)&mg->next.v, &mg->next.cap, mg->next.n + 1, sizeof *mg->next.v) < 0)
            rt__mgr_answer(*from, NULL, 0); /* out of memory: it is written, just not waited for */
        else
            mg->next.v[mg->next.n++] = *from;
    }
    if (!mg->saving && !mg->pending)
        rt__mgr_save_defs(self, mg);
}

/* Answers a change request: at once, or (a durable change) once the
 * definitions file holds it. */
void rt__mgr_answer_change(sv_proc *self, manager *mg, sv_msg *req, bool durable)
{
    sv_from from = sv_from_of(req);
    if (durable)
        rt__mgr_defs_changed(self, mg, &from);
    else
        rt__mgr_answer(from, NULL, 0);
}

void rt__mgr_answer_all(waitlist *w, int status)
{
    for (size_t i = 0; i < w->n; i++) {
        if (status == 0)
            rt__mgr_answer(w->v[i], NULL, 0);
        else
            sv_reply_error(w->v[i], status);
    }
    w->n = 0;
}

/* One queue.meta: the queue it describes, as a declare would give it. */
static int read_meta(const char *path, rt_req_queue *r)
{
    json_error_t jerr;
    json_t *doc = json_load_file(path, 0, &jerr);
    if (!doc)
        return -EBADMSG;
    memset(r, 0, sizeof *r);
    rt_qargs_init(&r->args);
    r->args.durable = true;
    int rc = 0;
    const char *name = json_string_value(json_object_get(doc, "name"));
    if (!name || !name[0] || strlen(name) > RT_NAME_MAX)
        rc = -EBADMSG;
    else
        snprintf(r->name, sizeof r->name, "%s", name);
    r->args.auto_delete = json_is_true(json_object_get(doc, "auto_delete"));
    const char *key;
    json_t *v;
    json_object_foreach(doc, key, v)
    {
        if (rc < 0 || strncmp(key, "x-", 2) != 0)
            continue;
        char err[160];
        if (json_is_integer(v) && json_integer_value(v) > (strcmp(key, "x-expires") ? -1 : 0))
            rc = rt_qargs_set(&r->args, key, NULL, json_integer_value(v), true, err, sizeof err);
        else if (json_is_string(v))
            rc = rt_qargs_set(&r->args, key, json_string_value(v), 0, false, err, sizeof err);
        if (rc < 0)
            sv_log(SV_LOG_WARNING, "%s: %s", path, err);
    }
    json_decref(doc);
    return rc;
}

/* Declares again every durable queue that has a log in the data
 * directory. This reads a few small files on the manager's scheduler, at
 * boot, before any client is let in; the logs themselves are read by the
 * store threads as each queue starts. */
void rt__mgr_recover_queues(sv_proc *self, manager *mg)
{
    const char *data = rt__store_dir();
    if (!data)
        return;
    char qdir[4096];
    snprintf(qdir, sizeof qdir, "%s/queues", data);
    DIR *d = opendir(qdir);
    if (!d)
        return;
    struct dirent *e;
    unsigned n = 0;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.')
            continue;
        char path[4096 + 300];
        snprintf(path, sizeof path, "%s/%s/queue.meta", qdir, e->d_name);
        rt_req_queue r;
        if (read_meta(path, &r) < 0) {
            sv_log(SV_LOG_WARNING, "store: %s/%s has no readable queue.meta; left alone", qdir, e->d_name);
            continue;
        }
        char expect[4096];
        if (rt__queue_dir(r.name, expect, sizeof expect) == 0 && strcmp(strrchr(expect, '/') + 1, e->d_name) != 0) {
            sv_log(SV_LOG_WARNING, "store: %s/%s describes queue %s, whose log lives elsewhere; left alone", qdir,
                   e->d_name, r.name);
            continue;
        }
        rt_queue *q = rt__mgr_queue_new(&r);
        if (!q || rt__mgr_start_process(self, mg, q, NULL) < 0) {
            sv_log(SV_LOG_ERROR, "queue %s: cannot start it again", r.name);
            if (q)
                rt__queue_unref(q);
            continue;
        }
        n++;
    }
    closedir(d);
    if (n)
        sv_log(SV_LOG_INFO, "%u durable queue%s found in %s", n, n == 1 ? "" : "s", qdir);
}

/* ---------------------------------------------------- definitions file */

/* DATA/definitions.json: the durable exchanges, queues and bindings in
 * RabbitMQ's definitions format (rt_definitions_export), rewritten whole,
 * atomically, by a store thread after each change (changes made while a
 * write is under way share the next one). Queues come
 * back from their own logs (queue.meta), not from this file: a queue is
 * durable from its first message, a file written a moment later could be
 * behind. The file brings back the exchanges and the bindings. */
void rt__mgr_save_defs(sv_proc *self, manager *mg)
{
    const char *data = rt__store_dir();
    if (!mg->defs_dirty || mg->pending || mg->saving || !data)
        return;
    json_t *doc = rt_definitions_export(true);
    char *text = doc ? json_dumps(doc, JSON_INDENT(2) | JSON_SORT_KEYS) : NULL;
    json_decref(doc);
    size_t len = text ? strlen(text) : 0;
    sv_msg *m = text ? sv_msg_new(RT__S_FILE, NULL, sizeof(rt__s_file) + len) : NULL;
    if (m) {
        rt__s_file *f = (rt__s_file *)(void *)m->data;
        snprintf(f->path, sizeof f->path, "%s/" RT_DEFS_FILE, data);
        f->reply_to = sv_self(self);
        f->len = (uint32_t)len;
        memcpy(f->data, text, len);
        if (rt__store_send(rt__store_pid(RT_DEFS_FILE), m) < 0) {
            sv_msg_free(m);
            m = NULL;
        }
    }
    free(text);
    if (!m) {
        sv_log(SV_LOG_ERROR, "cannot write %s/%s (out of memory or no store); tried again at the next change", data,
               RT_DEFS_FILE);
        rt__mgr_answer_all(&mg->next, -EIO);
        return;
    }
    mg->defs_dirty = false;
    mg->saving = true;
    waitlist t = mg->inflight; /* empty: the last write was answered */
    mg->inflight = mg->next;
    mg->next = t;
}

/* Queue `queue` started (up) or could not: the bindings to it that the
 * definitions file held are made, or dropped. */
void rt__mgr_restore_bindings(sv_proc *self, manager *mg, const char *queue, bool up)
{
    for (pending_bind **pp = &mg->pending; *pp;) {
        pending_bind *p = *pp;
        if (strcmp(p->b.req->dest, queue) != 0) {
            pp = &p->next;
            continue;
        }
        bool durable;
        int rc = up ? rt__mgr_binding_add(p->b.req, p->b.len, &durable) : -ENOENT;
        if (rc < 0)
            sv_log(SV_LOG_WARNING, "%s: binding from %s to queue %s not restored: %s", RT_DEFS_FILE, p->b.req->source,
                   queue, strerror(-rc));
        *pp = p->next;
        free(p->b.req);
        free(p);
    }
    if (!mg->pending && mg->defs_dirty)
        rt__mgr_save_defs(self, mg);
}

/* At boot, after the durable queues were started again: the exchanges and
 * bindings of the definitions file. A binding to a queue waits for that
 * queue's process (restore_bindings). */
void rt__mgr_restore_defs(manager *mg)
{
    const char *data = rt__store_dir();
    if (!data)
        return;
    char path[4096];
    snprintf(path, sizeof path, "%s/" RT_DEFS_FILE, data);
    json_error_t jerr;
    json_t *doc = json_load_file(path, 0, &jerr);
    if (!doc) {
        if (access(path, F_OK) == 0) { /* written atomically, so this is damage from outside: keep it for a person */
            char bad[4096 + 8];
            snprintf(bad, sizeof bad, "%s.bad", path);
            sv_log(SV_LOG_ERROR, "%s: line %d: %s; exchanges and bindings not restored (file moved to %s)", path,
                   jerr.line, jerr.text, bad);
            rename(path, bad);
        }
        return;
    }
    rt_defs d;
    char err[400];
    int rc = rt_definitions_parse(doc, &d, err, sizeof err);
    json_decref(doc);
    if (rc < 0) {
        sv_log(SV_LOG_ERROR, "%s: %s; exchanges and bindings not restored", path, err);
        return;
    }
    unsigned nx = 0, nb = 0;
    for (size_t i = 0; i < d.nexchanges; i++) {
        d.exchanges[i].passive = false;
        if ((rc = rt__mgr_exchange_declare(&d.exchanges[i])) < 0)
            sv_log(SV_LOG_WARNING, "%s: exchange %s not restored: %s", path, d.exchanges[i].name, strerror(-rc));
        nx += rc == 1;
    }
    for (size_t i = 0; i < d.nbindings; i++) {
        rt_def_bind *b = &d.bindings[i];
        bool durable;
        if (!b->req->to_exchange && !rt_queue_find(b->req->dest)) {
            pending_bind *p = rt__mgr_find_starting(mg, b->req->dest) ? malloc(sizeof *p) : NULL;
            if (!p) {
                sv_log(SV_LOG_WARNING, "%s: binding from %s to queue %s not restored: no such durable queue", path,
                       b->req->source, b->req->dest);
                continue;
            }
            *p = (pending_bind){*b, mg->pending};
            mg->pending = p;
            b->req = NULL; /* the pending list has it */
            nb++;
        } else if ((rc = rt__mgr_binding_add(b->req, b->len, &durable)) < 0) {
            sv_log(SV_LOG_WARNING, "%s: binding from %s to %s not restored: %s", path, b->req->source, b->req->dest,
                   strerror(-rc));
        } else {
            nb++;
        }
    }
    rt_defs_free(&d);
    sv_log(SV_LOG_INFO, "%u exchange%s and %u binding%s restored from %s", nx, nx == 1 ? "" : "s", nb,
           nb == 1 ? "" : "s", path);
}
