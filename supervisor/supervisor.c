/* supervisor.c — OTP supervisors: child specs, restart strategies, intensity.
 *
 * A supervisor is an ordinary process that traps exits. Because processes
 * are stackless it cannot block in "start this child, wait for its init";
 * instead every multi-step job (start the children in order, stop some in
 * reverse and restart them, shut everything down) is a plan: a list of
 * START / STOP / EXIT steps run one at a time, each finishing on the event it
 * waits for (the child's ACK, its EXIT, a kill timer). Crashes of other
 * children and requests that arrive meanwhile wait until the plan is done,
 * which gives the same order of events as OTP's blocking implementation.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sv_internal.h"

enum {
    TAG_START_CHILD = 0x53560001,
    TAG_TERMINATE_CHILD,
    TAG_WHICH_CHILDREN,
    TAG_KILL_TIMER,
    TAG_DELETE_CHILD,
    TAG_SUP_INFO,
};

typedef struct child {
    sv_child_spec spec; /* spec.id points to id */
    char *id;
    sv_pid pid; /* SV_PID_NONE when not running */
    uint32_t restarts;
    bool crashed; /* ended while a plan ran: handle when it is done */
    int crash_reason;
    struct child *prev, *next;
} child;

typedef enum { STEP_START, STEP_STOP, STEP_EXIT } step_kind;

typedef struct step {
    step_kind kind;
    child *c;
    int reason;  /* STEP_EXIT */
    bool reply;  /* answer `from` when the step ends */
    bool remove; /* STOP: forget the child once it is down (delete_child) */
    sv_from from;
    struct step *next;
} step;

/* A request that waits for the current plan. */
typedef struct deferred {
    sv_msg *req; /* kept: the supervisor takes it over from the runtime */
    struct deferred *next;
} deferred;

typedef struct sup {
    char *name;
    sv_sup_flags flags;
    child *head, *tail;
    sv_map by_pid;     /* running child pid -> child */
    sv_map by_id;      /* hash of child id -> child: thousands of connections */
    uint32_t ncrashed; /* children marked crashed, waiting for the plan to end */
    bool id_clash;     /* two ids share a 128-bit hash (never, in practice): look ids up by walking */
    step *plan, *plan_tail;
    bool busy;          /* the plan's head step is under way */
    uint64_t kill_tref; /* kill timer of a STOP under way */
    bool initializing;  /* own ACK waits for the first plan */
    bool shutting_down;
    uint64_t *restart_at; /* ring of the last intensity+1 restart times (ms) */
    uint32_t nrestarts;
    uint64_t restarts_total;
    deferred *dq_head, *dq_tail;
} sup;

/* The spawn argument: a copy of the definition that init takes over. */
typedef struct sup_args {
    char *name;
    sv_sup_flags flags;
    sv_child_spec *specs;
    size_t n;
} sup_args;

static void plan_next(sv_proc *self, sup *s);

/* ---------------------------------------------------------------- children */

static child *child_new(const sv_child_spec *spec)
{
    child *c = calloc(1, sizeof *c);
    if (!c || !(c->id = strdup(spec->id ? spec->id : ""))) {
        free(c);
        return NULL;
    }
    c->spec = *spec;
    c->spec.id = c->id;
    return c;
}

static void child_append(sup *s, child *c)
{
    uint64_t k1, k2;
    sv_hash128(c->id, &k1, &k2);
    sv__ent *e = sv_map_get(&s->by_id, k1, k2);
    if (e && e->ptr != c)
        s->id_clash = true;
    else if ((e = sv_map_put(&s->by_id, k1, k2)))
        e->ptr = c;
    else
        s->id_clash = true; /* out of memory: walking still finds it */
    c->prev = s->tail;
    if (s->tail)
        s->tail->next = c;
    else
        s->head = c;
    s->tail = c;
}

static void child_remove(sup *s, child *c)
{
    uint64_t k1, k2;
    sv_hash128(c->id, &k1, &k2);
    sv__ent *e = sv_map_get(&s->by_id, k1, k2);
    if (e && e->ptr == c)
        sv_map_del(&s->by_id, k1, k2, NULL);
    if (c->crashed)
        s->ncrashed--;
    if (!sv_pid_is_none(c->pid))
        sv_map_del(&s->by_pid, sv__pid_k1(c->pid), sv__pid_k2(c->pid), NULL);
    if (c->prev)
        c->prev->next = c->next;
    else
        s->head = c->next;
    if (c->next)
        c->next->prev = c->prev;
    else
        s->tail = c->prev;
    /* Steps that still name it go too. */
    for (step **pp = &s->plan; *pp;) {
        if ((*pp)->c == c && !(s->busy && *pp == s->plan)) {
            step *dead = *pp;
            *pp = dead->next;
            free(dead);
        } else {
            pp = &(*pp)->next;
        }
    }
    s->plan_tail = NULL;
    for (step *st = s->plan; st; st = st->next)
        s->plan_tail = st;
    free(c->id);
    free(c);
}

static void mark_crashed(sup *s, child *c, bool on)
{
    if (c->crashed != on)
        s->ncrashed += on ? 1 : (uint32_t)-1;
    c->crashed = on;
}

static child *child_by_pid(sup *s, sv_pid pid)
{
    sv__ent *e = sv_map_get(&s->by_pid, sv__pid_k1(pid), sv__pid_k2(pid));
    return e ? e->ptr : NULL;
}

static child *child_by_id(sup *s, const char *id)
{
    if (s->id_clash) {
        for (child *c = s->head; c; c = c->next)
            if (strcmp(c->id, id) == 0)
                return c;
        return NULL;
    }
    uint64_t k1, k2;
    sv_hash128(id, &k1, &k2);
    sv__ent *e = sv_map_get(&s->by_id, k1, k2);
    return e && strcmp(((child *)e->ptr)->id, id) == 0 ? e->ptr : NULL;
}

static void child_set_pid(sup *s, child *c, sv_pid pid)
{
    if (!sv_pid_is_none(c->pid))
        sv_map_del(&s->by_pid, sv__pid_k1(c->pid), sv__pid_k2(c->pid), NULL);
    c->pid = pid;
    if (!sv_pid_is_none(pid)) {
        sv__ent *e = sv_map_put(&s->by_pid, sv__pid_k1(pid), sv__pid_k2(pid));
        if (e)
            e->ptr = c;
    }
}

/* ------------------------------------------------------------------- plans */

static step *step_add(sup *s, step_kind kind, child *c, int reason)
{
    step *st = calloc(1, sizeof *st);
    if (!st)
        return NULL;
    st->kind = kind;
    st->c = c;
    st->reason = reason;
    if (s->plan_tail)
        s->plan_tail->next = st;
    else
        s->plan = st;
    s->plan_tail = st;
    return st;
}

/* The steps of a plan cannot fail to be added but for memory; a supervisor
 * that cannot plan cannot supervise, so it ends and lets its parent act. */
static bool plan_ok(sv_proc *self, step *st)
{
    if (!st)
        sv_stop(self, -ENOMEM);
    return st != NULL;
}

static void plan_stop_from(sv_proc *self, sup *s, child *last_first)
{
    for (child *c = s->tail; c; c = c->prev) {
        if (!sv_pid_is_none(c->pid) && !plan_ok(self, step_add(s, STEP_STOP, c, 0)))
            return;
        if (c == last_first)
            break;
    }
}

static void plan_shutdown(sv_proc *self, sup *s, int reason)
{
    /* Keep the step under way; drop the rest of the plan. */
    step *keep = s->busy ? s->plan : NULL;
    step *st = keep ? keep->next : s->plan;
    while (st) {
        step *next = st->next;
        if (st->reply)
            sv_reply_error(st->from, -ESHUTDOWN);
        free(st);
        st = next;
    }
    s->plan = s->plan_tail = keep;
    if (keep)
        keep->next = NULL;
    s->shutting_down = true;
    plan_stop_from(self, s, NULL);
    plan_ok(self, step_add(s, STEP_EXIT, NULL, reason));
}

/* Ends the head step; a request it carried that nobody answered yet gets
 * a plain "done". */
static void step_done(sv_proc *self, sup *s)
{
    step *st = s->plan;
    if (st->reply)
        sv_reply_data(st->from, NULL, 0);
    s->plan = st->next;
    if (!s->plan)
        s->plan_tail = NULL;
    s->busy = false;
    free(st);
    plan_next(self, s);
}

static void log_child(sup *s, child *c, sv_pid pid, const char *what, int reason)
{
    /* A temporary child ending normally (a closed connection) is routine. */
    sv_log_level level = sv_reason_is_failure(reason)      ? SV_LOG_ERROR
                         : c->spec.restart == SV_TEMPORARY ? SV_LOG_DEBUG
                                                           : SV_LOG_INFO;
    if (!sv_log_enabled(level))
        return;
    char pb[SV_PID_FMT_LEN], rb[96];
    sv_log(level, "supervisor %s: child %s %s %s: %s", s->name, c->id, sv_pid_str(pid, pb, sizeof pb), what,
           sv_reason_str(reason, rb, sizeof rb));
}

/* A START step's child failed to come up (spawn error or EXIT before ACK). */
static void start_failed(sv_proc *self, sup *s, child *c, int reason)
{
    step *st = s->plan;
    log_child(s, c, c->pid, "failed to start", reason);
    child_set_pid(s, c, SV_PID_NONE);
    if (s->shutting_down) {
        if (st->reply)
            sv_reply_error(st->from, -ESHUTDOWN);
        st->reply = false;
        step_done(self, s);
        return;
    }
    if (s->initializing) {
        /* A supervisor whose children cannot start does not start: drop
         * the plan (this step too), stop those already up, end. */
        s->busy = false;
        plan_shutdown(self, s, reason < 0 ? reason : -ECHILD);
        plan_next(self, s);
        return;
    }
    if (st->reply) {
        /* start_child: the caller learns why, and the child is not kept. */
        sv_reply_error(st->from, reason < 0 ? reason : -ECHILD);
        st->reply = false;
        child_remove(s, c);
        step_done(self, s);
        return;
    }
    mark_crashed(s, c, true); /* a failed restart is another crash */
    c->crash_reason = reason;
    step_done(self, s);
}

static void step_begin(sv_proc *self, sup *s)
{
    step *st = s->plan;
    s->busy = true;
    switch (st->kind) {
    case STEP_START: {
        child *c = st->c;
        sv_spawn_opts opts = {.scheduler = SV_SCHED_ANY, .link = true, .ack = true, .label = c->id};
        sv_pid pid = SV_PID_NONE;
        mark_crashed(s, c, false);
        int rc = c->spec.start(self, &opts, c->spec.arg, &pid);
        if (rc < 0) {
            start_failed(self, s, c, rc);
            return;
        }
        if (sv_pid_is_none(pid)) { /* "ignore": nothing to run */
            if (st->reply)
                sv_reply_error(st->from, -ECHILD);
            st->reply = false;
            step_done(self, s);
            return;
        }
        child_set_pid(s, c, pid);
        return; /* wait for its ACK or EXIT */
    }
    case STEP_STOP: {
        child *c = st->c;
        if (sv_pid_is_none(c->pid)) {
            step_done(self, s);
            return;
        }
        int ms = c->spec.shutdown_ms;
        if (ms == SV_BRUTAL_KILL) {
            sv_exit(self, c->pid, SV_KILL);
        } else {
            sv_exit(self, c->pid, SV_SHUTDOWN);
            if (ms > 0) {
                sv_msg *m = sv_msg_new(TAG_KILL_TIMER, NULL, 0);
                if (!m || sv_send_after(self, (uint64_t)ms, self->pid, m, &s->kill_tref) < 0) {
                    sv_msg_free(m);
                    sv_exit(self, c->pid, SV_KILL); /* no timer: no grace */
                }
            }
        }
        return; /* wait for its EXIT */
    }
    case STEP_EXIT: sv_stop(self, st->reason); return;
    }
}

static void handle_request(sup *s, sv_msg *req);

static void handle_crash(sv_proc *self, sup *s, child *c, int reason);

static void plan_next(sv_proc *self, sup *s)
{
    while (!s->busy && !self->stop_pending) {
        if (s->plan) {
            step_begin(self, s);
            continue;
        }
        if (s->initializing) {
            s->initializing = false;
            sv_init_ack(self, 0);
        }
        child *c = s->ncrashed ? s->head : NULL;
        while (c && !c->crashed)
            c = c->next;
        if (c) {
            mark_crashed(s, c, false);
            handle_crash(self, s, c, c->crash_reason);
            continue;
        }
        deferred *d = s->dq_head;
        if (!d)
            return;
        s->dq_head = d->next;
        if (!s->dq_head)
            s->dq_tail = NULL;
        handle_request(s, d->req);
        sv_msg_free(d->req);
        free(d);
    }
}

/* -------------------------------------------------------------- restarts */

static uint64_t now_ms(void) { return uv_hrtime() / 1000000; }

/* Records a restart; false if it is one too many for the window. */
static bool intensity_ok(sup *s)
{
    uint32_t ring = (uint32_t)s->flags.intensity + 1;
    uint64_t t = now_ms();
    s->restart_at[s->nrestarts % ring] = t;
    s->nrestarts++;
    uint32_t recent = 0, have = s->nrestarts < ring ? s->nrestarts : ring;
    for (uint32_t i = 0; i < have; i++)
        if (t - s->restart_at[i] <= (uint64_t)s->flags.period_ms)
            recent++;
    return recent <= (uint32_t)s->flags.intensity;
}

static void handle_crash(sv_proc *self, sup *s, child *c, int reason)
{
    if (c->spec.restart == SV_TEMPORARY) {
        child_remove(s, c);
        return;
    }
    if (c->spec.restart == SV_TRANSIENT && !sv_reason_is_failure(reason))
        return; /* done, and stays down */
    if (!intensity_ok(s)) {
        sv_log(SV_LOG_ERROR, "supervisor %s: more than %d restarts in %d ms, giving up", s->name, s->flags.intensity,
               s->flags.period_ms);
        plan_shutdown(self, s, SV_MAX_RESTARTS);
        return;
    }
    c->restarts++;
    s->restarts_total++;
    switch (s->flags.strategy) {
    case SV_ONE_FOR_ONE: plan_ok(self, step_add(s, STEP_START, c, 0)); break;
    case SV_ONE_FOR_ALL:
    case SV_REST_FOR_ONE: {
        child *first = s->flags.strategy == SV_ONE_FOR_ALL ? s->head : c;
        plan_stop_from(self, s, first);
        for (child *k = first, *next; k; k = next) {
            next = k->next;
            if (k != c && k->spec.restart == SV_TEMPORARY) {
                /* Temporary children are stopped with the others, never restarted. */
                if (sv_pid_is_none(k->pid))
                    child_remove(s, k);
                continue;
            }
            if (!plan_ok(self, step_add(s, STEP_START, k, 0)))
                return;
        }
        break;
    }
    }
}

/* A child ended on its own, not because a step stopped it. */
static void child_exited(sv_proc *self, sup *s, child *c, int reason)
{
    log_child(s, c, c->pid, "exited", reason);
    child_set_pid(s, c, SV_PID_NONE);
    if (s->shutting_down)
        return;
    if (s->busy || s->plan) {
        mark_crashed(s, c, true); /* after the plan under way */
        c->crash_reason = reason;
        return;
    }
    handle_crash(self, s, c, reason);
    plan_next(self, s);
}

/* ----------------------------------------------------------------- events */

static void on_exit_signal(sv_proc *self, sup *s, sv_pid from, int reason)
{
    step *st = s->busy ? s->plan : NULL;
    if (sv_pid_eq(from, self->parent)) {
        if (!s->shutting_down) {
            plan_shutdown(self, s, reason);
            plan_next(self, s);
        }
        return;
    }
    child *c = child_by_pid(s, from);
    if (!c)
        return; /* an old child's late signal, or an unlinked stranger */
    if (st && st->c == c && st->kind == STEP_START) {
        start_failed(self, s, c, reason);
        return;
    }
    if (st && st->c == c && st->kind == STEP_STOP) {
        if (s->kill_tref) {
            sv_cancel_timer(self, s->kill_tref);
            s->kill_tref = 0;
        }
        child_set_pid(s, c, SV_PID_NONE);
        if ((c->spec.restart == SV_TEMPORARY || st->remove) && !s->shutting_down)
            child_remove(s, c); /* before step_done, which may plan again */
        step_done(self, s);
        return;
    }
    child_exited(self, s, c, reason);
}

static void on_ack(sv_proc *self, sup *s, sv_pid from)
{
    step *st = s->busy ? s->plan : NULL;
    if (!st || st->kind != STEP_START || !sv_pid_eq(st->c->pid, from))
        return;
    if (st->reply) {
        sv_reply_data(st->from, &from, sizeof from);
        st->reply = false;
    }
    step_done(self, s);
}

/* ---------------------------------------------------------------- requests */

typedef struct start_req {
    sv_child_spec spec;
    char id[];
} start_req;

/* The answer to which_children: the count, then the entries, aligned. */
typedef struct children_reply {
    int n;
    sv_child_info c[];
} children_reply;

static void reply_children(sup *s, sv_msg *req)
{
    int max = req->len >= sizeof(int) ? *(int *)(void *)req->data : 0;
    if (max < 0)
        max = 0;
    int n = 0;
    for (child *c = s->head; c; c = c->next)
        n++;
    int fill = n < max ? n : max;
    sv_msg *r = sv_msg_new(0, NULL, offsetof(children_reply, c) + (size_t)fill * sizeof(sv_child_info));
    if (!r) {
        sv_reply_error(sv_from_of(req), -ENOMEM);
        return;
    }
    memcpy(r->data, &n, sizeof n);
    sv_child_info *out = ((children_reply *)(void *)r->data)->c;
    int i = 0;
    for (child *c = s->head; c && i < fill; c = c->next, i++) {
        snprintf(out[i].id, sizeof out[i].id, "%s", c->id);
        out[i].pid = c->pid;
        out[i].restarts = c->restarts;
        out[i].is_supervisor = c->spec.is_supervisor;
        out[i].restart = c->spec.restart;
        sv_proc_info pi;
        if (!sv_pid_is_none(c->pid) && sv_process_info(c->pid, &pi) == 0) {
            out[i].mailbox = pi.mailbox;
            out[i].behaviour = pi.behaviour;
        }
    }
    if (sv_reply(sv_from_of(req), r) < 0)
        sv_msg_free(r); /* the caller has gone: still ours (sv.h) */
}

static void handle_request(sup *s, sv_msg *req)
{
    if (s->shutting_down) {
        sv_reply_error(sv_from_of(req), -ESHUTDOWN);
        return;
    }
    if (req->tag == TAG_START_CHILD) {
        start_req *sr = SV_MSG_AS(req, start_req);
        if (!sr || !sr->spec.start) {
            sv_reply_error(sv_from_of(req), -EINVAL);
            return;
        }
        req->data[req->len - 1] = '\0';
        sr->spec.id = sr->id;
        if (child_by_id(s, sr->id)) {
            sv_reply_error(sv_from_of(req), -EEXIST);
            return;
        }
        child *c = child_new(&sr->spec);
        step *st = c ? step_add(s, STEP_START, c, 0) : NULL;
        if (!st) {
            free(c);
            sv_reply_error(sv_from_of(req), -ENOMEM);
            return;
        }
        child_append(s, c);
        st->reply = true;
        st->from = sv_from_of(req);
    } else if (req->tag == TAG_TERMINATE_CHILD || req->tag == TAG_DELETE_CHILD) {
        bool remove = req->tag == TAG_DELETE_CHILD;
        req->data[req->len ? req->len - 1 : 0] = '\0';
        child *c = req->len ? child_by_id(s, (char *)req->data) : NULL;
        if (!c) {
            sv_reply_error(sv_from_of(req), -ENOENT);
            return;
        }
        if (sv_pid_is_none(c->pid)) {
            sv_reply_data(sv_from_of(req), NULL, 0);
            if (c->spec.restart == SV_TEMPORARY || remove)
                child_remove(s, c);
            return;
        }
        step *st = step_add(s, STEP_STOP, c, 0);
        if (!st) {
            sv_reply_error(sv_from_of(req), -ENOMEM);
            return;
        }
        st->reply = true; /* answered when the child is down */
        st->from = sv_from_of(req);
        st->remove = remove;
    }
}

static int sup_handle_call(sv_proc *self, sv_msg *req)
{
    sup *s = sv_state(self);
    if (req->tag == TAG_WHICH_CHILDREN) {
        reply_children(s, req);
        return 0;
    }
    if (req->tag == TAG_SUP_INFO) {
        sv_sup_info info = {.flags = s->flags, .restarts = s->restarts_total};
        snprintf(info.name, sizeof info.name, "%s", s->name);
        for (child *c = s->head; c; c = c->next)
            info.children++;
        int rc = sv_reply_data(sv_from_of(req), &info, sizeof info);
        if (rc == -ENOMEM)
            sv_reply_error(sv_from_of(req), -ENOMEM);
        return 0;
    }
    if (req->tag != TAG_START_CHILD && req->tag != TAG_TERMINATE_CHILD && req->tag != TAG_DELETE_CHILD) {
        sv_reply_error(sv_from_of(req), -ENOTSUP);
        return 0;
    }
    if (s->busy || s->plan) {
        /* Keep a copy: the runtime frees req after this call. */
        deferred *d = malloc(sizeof *d);
        sv_msg *copy = sv_msg_new(req->tag, req->data, req->len);
        if (!d || !copy) {
            free(d);
            sv_msg_free(copy);
            sv_reply_error(sv_from_of(req), -ENOMEM);
            return 0;
        }
        copy->kind = req->kind;
        copy->from = req->from;
        copy->ref = req->ref;
        d->req = copy;
        d->next = NULL;
        if (s->dq_tail)
            s->dq_tail->next = d;
        else
            s->dq_head = d;
        s->dq_tail = d;
        return 0;
    }
    handle_request(s, req);
    plan_next(self, s);
    return 0;
}

static int sup_handle_info(sv_proc *self, sv_msg *m)
{
    sup *s = sv_state(self);
    switch (m->kind) {
    case SV_MSG_EXIT: on_exit_signal(self, s, m->from, m->status); break;
    case SV_MSG_ACK: on_ack(self, s, m->from); break;
    case SV_MSG_INFO:
        if (m->tag == TAG_KILL_TIMER && s->busy && s->plan->kind == STEP_STOP && s->kill_tref) {
            s->kill_tref = 0;
            log_child(s, s->plan->c, s->plan->c->pid, "did not stop in time, killed", SV_KILL);
            sv_exit(self, s->plan->c->pid, SV_KILL);
        }
        break;
    }
    return 0;
}

/* ------------------------------------------------------------- life cycle */

static void args_free(sup_args *a)
{
    if (!a)
        return;
    for (size_t i = 0; i < a->n; i++)
        free((char *)a->specs[i].id);
    free(a->specs);
    free(a->name);
    free(a);
}

static void sup_free(sup *s);

static int sup_init(sv_proc *self, void *arg)
{
    sup_args *a = arg;
    sup *s = calloc(1, sizeof *s);
    if (!s) {
        args_free(a);
        return -ENOMEM;
    }
    s->by_pid = SV__TAB_INIT;
    s->by_id = SV__TAB_INIT;
    s->name = a->name;
    a->name = NULL;
    s->flags = a->flags;
    s->restart_at = calloc((size_t)s->flags.intensity + 1, sizeof *s->restart_at);
    sv_set_state(self, s);
    if (!s->restart_at)
        goto oom;
    for (size_t i = 0; i < a->n; i++) {
        child *c = child_new(&a->specs[i]);
        if (!c)
            goto oom;
        child_append(s, c);
        if (!step_add(s, STEP_START, c, 0))
            goto oom;
    }
    args_free(a);
    s->initializing = true;
    sv_trap_exit(self, true);
    plan_next(self, s);
    return SV_INIT_DEFER;
oom:
    args_free(a);
    sv_set_state(self, NULL);
    sup_free(s); /* terminate does not run after a failed init (sv.h): undo here */
    return -ENOMEM;
}

static void sup_free(sup *s)
{
    while (s->plan) {
        step *st = s->plan;
        s->plan = st->next;
        if (st->reply)
            sv_reply_error(st->from, -ESHUTDOWN);
        free(st);
    }
    while (s->head)
        child_remove(s, s->head);
    while (s->dq_head) {
        deferred *d = s->dq_head;
        s->dq_head = d->next;
        sv_reply_error(sv_from_of(d->req), -ESHUTDOWN);
        sv_msg_free(d->req);
        free(d);
    }
    sv_map_free(&s->by_pid);
    sv_map_free(&s->by_id);
    free(s->restart_at);
    free(s->name);
    free(s);
}

static void sup_terminate(sv_proc *self, int reason)
{
    sup *s = sv_state(self);
    /* Killed mid-plan: children still running go down with their links. */
    (void)reason;
    if (s)
        sup_free(s);
}

const sv_server_ops sv__sup_ops = {
    .name = "supervisor",
    .init = sup_init,
    .handle_call = sup_handle_call,
    .handle_info = sup_handle_info,
    .terminate = sup_terminate,
};

/* -------------------------------------------------------------- public API */

int sv_sup_spawn(sv_proc *self, const char *name, sv_sup_flags flags, const sv_child_spec *children, size_t n,
                 const sv_spawn_opts *opts, sv_pid *pid)
{
    if (!name || flags.intensity < 0 || flags.period_ms <= 0 || (n && !children))
        return -EINVAL;
    for (size_t i = 0; i < n; i++) {
        if (!children[i].id || !children[i].start)
            return -EINVAL;
        for (size_t j = 0; j < i; j++)
            if (strcmp(children[i].id, children[j].id) == 0)
                return -EEXIST;
    }
    sup_args *a = calloc(1, sizeof *a);
    if (!a || !(a->name = strdup(name)) || !(a->specs = calloc(n ? n : 1, sizeof *a->specs))) {
        args_free(a);
        return -ENOMEM;
    }
    a->flags = flags;
    for (size_t i = 0; i < n; i++) {
        a->specs[i] = children[i];
        if (!(a->specs[i].id = strdup(children[i].id))) {
            a->n = i;
            args_free(a);
            return -ENOMEM;
        }
    }
    a->n = n;
    sv_spawn_opts o = opts ? *opts : (sv_spawn_opts){0};
    if (!o.label)
        o.label = name;
    int rc = sv_spawn(self, &sv__sup_ops, a, &o, pid);
    if (rc < 0)
        args_free(a);
    return rc;
}

int sv_sup_start_fn(sv_proc *sup_self, const sv_spawn_opts *opts, void *arg, sv_pid *pid)
{
    const sv_sup_def *d = arg;
    return sv_sup_spawn(sup_self, d->name, d->flags, d->children, d->n, opts, pid);
}

sv_msg *sv_sup_start_child_req(const sv_child_spec *spec)
{
    if (!spec || !spec->id || !spec->start)
        return NULL;
    size_t idlen = strlen(spec->id) + 1;
    sv_msg *m = sv_msg_new(TAG_START_CHILD, NULL, sizeof(start_req) + idlen);
    if (!m)
        return NULL;
    start_req *sr = (start_req *)(void *)m->data;
    sr->spec = *spec;
    sr->spec.id = NULL; /* rebuilt from the copy by the supervisor */
    memcpy(sr->id, spec->id, idlen);
    return m;
}

sv_pid sv_sup_reply_pid(const sv_msg *reply)
{
    const sv_pid *p = SV_MSG_AS(reply, sv_pid);
    return p ? *p : SV_PID_NONE;
}

int sv_sup_start_child(sv_proc *inbox, sv_pid sup_pid, const sv_child_spec *spec, int timeout_ms, sv_pid *pid)
{
    sv_msg *req = sv_sup_start_child_req(spec);
    if (!req)
        return spec && spec->id && spec->start ? -ENOMEM : -EINVAL;
    sv_msg *r;
    int rc = sv_call(inbox, sup_pid, req, timeout_ms, &r);
    if (rc < 0)
        return rc;
    if (pid)
        *pid = sv_sup_reply_pid(r);
    sv_msg_free(r);
    return 0;
}

sv_msg *sv_sup_terminate_child_req(const char *id, bool remove)
{
    return id ? sv_msg_new(remove ? TAG_DELETE_CHILD : TAG_TERMINATE_CHILD, id, strlen(id) + 1) : NULL;
}

static int terminate_child(sv_proc *inbox, sv_pid sup_pid, const char *id, bool remove, int timeout_ms)
{
    if (!id)
        return -EINVAL;
    sv_msg *req = sv_sup_terminate_child_req(id, remove);
    if (!req)
        return -ENOMEM;
    sv_msg *r;
    int rc = sv_call(inbox, sup_pid, req, timeout_ms, &r);
    sv_msg_free(r);
    return rc;
}

int sv_sup_terminate_child(sv_proc *inbox, sv_pid sup_pid, const char *id, int timeout_ms)
{
    return terminate_child(inbox, sup_pid, id, false, timeout_ms);
}

int sv_sup_delete_child(sv_proc *inbox, sv_pid sup_pid, const char *id, int timeout_ms)
{
    return terminate_child(inbox, sup_pid, id, true, timeout_ms);
}

int sv_sup_which_children(sv_proc *inbox, sv_pid sup_pid, sv_child_info *out, int max, int timeout_ms)
{
    sv_msg *req = sv_msg_new(TAG_WHICH_CHILDREN, &max, sizeof max);
    if (!req)
        return -ENOMEM;
    sv_msg *r;
    int rc = sv_call(inbox, sup_pid, req, timeout_ms, &r);
    if (rc < 0)
        return rc;
    int n = 0;
    if (r->len >= offsetof(children_reply, c)) {
        memcpy(&n, r->data, sizeof n);
        size_t have = (r->len - offsetof(children_reply, c)) / sizeof(sv_child_info);
        if (out && have)
            memcpy(out, r->data + offsetof(children_reply, c), have * sizeof(sv_child_info));
    }
    sv_msg_free(r);
    return n;
}

int sv_sup_get_info(sv_proc *inbox, sv_pid sup_pid, sv_sup_info *out, int timeout_ms)
{
    sv_msg *req = sv_msg_new(TAG_SUP_INFO, NULL, 0), *r;
    if (!req)
        return -ENOMEM;
    int rc = sv_call(inbox, sup_pid, req, timeout_ms, &r);
    if (rc < 0)
        return rc;
    const sv_sup_info *info = SV_MSG_AS(r, sv_sup_info);
    if (info)
        *out = *info;
    else
        rc = -EPROTO;
    sv_msg_free(r);
    return rc;
}
