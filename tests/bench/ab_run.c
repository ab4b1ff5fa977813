/* ab_run.c — one run of amqp_bench: the bench state set up from the options,
 * a fresh proactor (two with --direct) driven by worker threads, the 100 ms
 * tick that enforces the deadlines, and how a run ends (finish, fail, stop).
 * The modes plug in through ab_conn.c's event dispatch; ab_report.c prints
 * the outcome once no thread runs. */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <proton/netaddr.h>

#include "tests/bench/ab.h"

/* ------------------------------------------------------------ outcome */

/* Start closing every connection; the run's outcome is already decided. */
void ab_finish_locked(bench *b)
{
    if (b->finishing)
        return;
    __atomic_store_n(&b->finishing, true, __ATOMIC_RELEASE); /* read unlocked by ab_is_finishing */
    b->t_finish = ab_now_ns();
    if (!b->t_end)
        b->t_end = b->t_finish;
    for (conn_ctx *c = b->conns; c; c = c->next)
        if (c->conn)
            pn_connection_wake(c->conn);
    /* No pn_proactor_disconnect here, even when nobody ever spoke AMQP to
     * us: proton 0.37's epoll proactor loses connections whose connect is
     * still in flight when disconnect comes (no PN_TRANSPORT_CLOSED ever,
     * so the run never ended). A refused connect closes by itself; one
     * that hangs is cut by the tick after close_grace_ns. */
    ab_maybe_stop_locked(b);
}

/* Once everything is closed, let the proactor go inactive: no timer, and
 * disconnect drops the listener of a direct run. */
void ab_maybe_stop_locked(bench *b)
{
    if (b->finishing && b->live == 0 && !b->stopping) {
        b->stopping = true;
        pn_proactor_cancel_timeout(b->proactor);
        pn_proactor_disconnect(b->proactor, NULL);
        if (b->peer_proactor)
            pn_proactor_disconnect(b->peer_proactor, NULL);
    }
}

void ab_fail_locked(bench *b, const char *fmt, ...)
{
    if (!b->failed && !b->finishing) { /* the first word on the outcome stands */
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(b->error, sizeof b->error, fmt, ap);
        va_end(ap);
        b->failed = true;
        fprintf(stderr, "amqp_bench: error: %s\n", b->error);
    }
    ab_finish_locked(b);
}

/* The run is complete when every expected delivery arrived once and every
 * producer is done (at-least-once: all its sends settled). Fill expects
 * its accepted messages; drain ends on its count of deliveries, idle after
 * the hold (both elsewhere). */
void ab_check_complete_locked(bench *b)
{
    if (b->finishing || b->mode == MODE_REQREP || b->mode == MODE_DRAIN || b->mode == MODE_IDLE)
        return;
    if (__atomic_load_n(&b->unique, __ATOMIC_ACQUIRE) >= b->expected && b->producers_done >= b->n_producers) {
        b->t_end = ab_now_ns();
        ab_finish_locked(b);
    }
}

void ab_cond_text(pn_condition_t *c, char *out, size_t n)
{
    if (c && pn_condition_is_set(c)) {
        const char *name = pn_condition_get_name(c), *desc = pn_condition_get_description(c);
        snprintf(out, n, "%s%s%s", name ? name : "(no name)", desc ? ": " : "", desc ? desc : "");
    } else {
        snprintf(out, n, "no error condition given");
    }
}

/* ------------------------------------------------------------ small helpers */

int ab_grow(void **p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return 0;
    size_t nc = *cap ? *cap : 16;
    while (nc < need)
        nc *= 2;
    void *np = realloc(*p, nc * elem);
    if (!np)
        return -ENOMEM;
    *p = np;
    *cap = nc;
    return 0;
}

int ab_push_u64(uint64_t **v, size_t *n, size_t *cap, uint64_t x)
{
    if (ab_grow((void **)v, cap, *n + 1, sizeof **v))
        return -ENOMEM;
    (*v)[(*n)++] = x;
    return 0;
}

/* Every 100 ms (under b->lock): the deadlines, progress on stderr with
 * --verbose, and cutting peers that do not answer our close. */
void ab_tick(bench *b)
{
    pthread_mutex_lock(&b->lock);
    uint64_t t = ab_now_ns();
    uint64_t u = __atomic_load_n(&b->unique, __ATOMIC_RELAXED);
    if (u != b->last_unique) {
        b->last_unique = u;
        b->last_progress_ns = t;
    }
    if (!b->finishing) {
        if (t >= b->deadline_ns) {
            b->timed_out = true;
            ab_fail_locked(b, "timeout: the run did not finish within %.0f s (%" PRIu64 " of %" PRIu64 " received)",
                           b->o->deadline_s, u, b->expected);
        } else if (!b->any_open && t - b->t_start >= (uint64_t)(b->o->connect_s * 1e9)) {
            b->conn_failed = true;
            ab_fail_locked(b, "no AMQP open from %s within %.0f s", b->connect_addr, b->o->connect_s);
        } else if (b->mode == MODE_IDLE) {
            ab_idle_tick_locked(b, t, u);
        } else if (b->mode == MODE_FILL && b->any_open && b->producers_done < b->n_producers &&
                   t - b->last_progress_ns >= (uint64_t)(b->o->idle_s * 1e9)) {
            ab_fail_locked(b, "the broker took no message for %.1f s (%" PRIu64 " of %" PRIu64 " %s)", b->o->idle_s, u,
                           b->expected, b->qos == QOS_ALO ? "accepted" : "sent");
        } else if (b->mode != MODE_REQREP && b->mode != MODE_FILL && b->producers_started &&
                   b->producers_done >= b->n_producers && t - b->last_progress_ns >= (uint64_t)(b->o->idle_s * 1e9)) {
            /* the producers are done and nothing arrives any more: stop and
             * let the exactly-once check name what is missing */
            b->t_end = b->last_progress_ns;
            b->idle_stop = true;
            if (b->mode == MODE_DRAIN)
                ab_fail_locked(b,
                               "nothing received for %.1f s (%" PRIu64 " of %" PRIu64 " received; does the queue "
                               "hold that many?)",
                               b->o->idle_s, u, b->expected);
            else
                ab_fail_locked(
                    b, "nothing received for %.1f s after the producers finished (%" PRIu64 " of %" PRIu64 " received)",
                    b->o->idle_s, u, b->expected);
        }
        if (b->o->verbose && t >= b->next_verbose_ns) {
            fprintf(stderr, "amqp_bench: %" PRIu64 "/%" PRIu64 " %s\n", u, b->expected,
                    b->mode == MODE_IDLE   ? "connections open"
                    : b->mode == MODE_FILL ? (b->qos == QOS_ALO ? "accepted" : "sent")
                                           : "received");
            b->next_verbose_ns = t + 1000000000ull;
        }
    } else if (!b->disconnected && t - b->t_finish > b->close_grace_ns) {
        /* a peer that does not answer our close: cut it */
        b->disconnected = true;
        b->t_disconnect = t;
        pn_proactor_disconnect(b->proactor, NULL);
        if (b->peer_proactor)
            pn_proactor_disconnect(b->peer_proactor, NULL);
    } else if (b->disconnected && !b->stopping && t - b->t_disconnect > 2000000000ull) {
        /* connections the disconnect lost (see ab_finish_locked): stop waiting
         * for them; pn_proactor_free releases them */
        fprintf(stderr, "amqp_bench: note: %d connection%s never reported closing; abandoning %s\n", b->live,
                b->live == 1 ? "" : "s", b->live == 1 ? "it" : "them");
        b->stopping = true;
        pn_proactor_interrupt(b->proactor);
        if (b->peer_proactor)
            pn_proactor_interrupt(b->peer_proactor);
    }
    if (!b->stopping)
        pn_proactor_set_timeout(b->proactor, 100);
    pthread_mutex_unlock(&b->lock);
}

typedef struct worker_arg {
    bench *b;
    pn_proactor_t *p;
} worker_arg;

static void *worker(void *arg)
{
    bench *b = ((worker_arg *)arg)->b;
    pn_proactor_t *p = ((worker_arg *)arg)->p;
    for (;;) {
        pn_event_batch_t *batch = pn_proactor_wait(p);
        bool stop = false;
        pn_event_t *e;
        while ((e = pn_event_batch_next(batch))) {
            pn_event_type_t t = pn_event_type(e);
            if (t == PN_PROACTOR_INACTIVE || t == PN_PROACTOR_INTERRUPT)
                stop = true;
            else
                ab_handle(b, e);
        }
        pn_proactor_done(p, batch);
        if (stop) {
            pn_proactor_interrupt(p); /* pass it on to the next worker */
            return NULL;
        }
    }
}

/* ------------------------------------------------------------ one run */

static const char *style_name(addr_style s)
{
    return s == STYLE_PLEXUS ? "plexus" : s == STYLE_RABBITMQ310 ? "rabbitmq310" : "plain";
}

const char *ab_mode_name(bench_mode m)
{
    static const char *names[] = {"throughput", "fanout", "reqrep", "fill", "drain", "idle"};
    return names[m];
}

static int queue_address(const options *o, const char *name, char *out, size_t n)
{
    int k;
    switch (o->style) {
    case STYLE_PLEXUS: k = snprintf(out, n, "/queues/%s", name); break;
    case STYLE_RABBITMQ310: k = snprintf(out, n, "/queue/%s", name); break;
    default: k = snprintf(out, n, "%s", name); break;
    }
    return k < 0 || (size_t)k >= n ? -1 : 0;
}

/* One run of one mode: set up, run until it ends, report. */
run_result ab_run_one(const options *o, bench_mode mode, size_t size, qos_level qos, uint64_t count)
{
    run_result res = {false, false};
    bench *b = calloc(1, sizeof *b);
    if (!b) {
        fprintf(stderr, "amqp_bench: out of memory\n");
        return res;
    }
    pthread_mutex_init(&b->lock, NULL);
    b->o = o;
    b->mode = mode;
    b->size = size;
    b->qos = qos;
    b->count = count;
    /* Credit in messages, sized by bytes unless given: 512 KiB worth, 8 to
     * 1000 messages. What is in flight must stay in cache: on the 2-core
     * machine (2 MiB L2 a core) 64 KiB messages go direct at 3.9 GB/s with
     * 8 in flight but 1.9 GB/s with 16 and 1 GB/s with 1000. Brokers may
     * like more (RabbitMQ 3.10: 0.41 GB/s with 8, 0.54 with 32): --credit. */
    b->credit = o->credit ? o->credit : (uint32_t)(size >= 65536 ? 8 : size <= 524 ? 1000 : 524288 / size);
    b->window = o->window ? o->window : 2 * b->credit;
    b->nonce = (uint32_t)(ab_now_ns() ^ ((uint64_t)getpid() << 16)) | 1u;
    const char *label = o->label ? o->label : o->direct ? "direct" : style_name(o->style);

    /* reply path defaults: dynamic source + anonymous relay where the
     * address scheme has them (plexus, direct), a named queue and one link
     * per reply address elsewhere */
    b->rsource = o->rsource != RSRC_AUTO                   ? o->rsource
                 : (o->direct || o->style == STYLE_PLEXUS) ? RSRC_DYNAMIC
                                                           : RSRC_NAMED;
    b->reply = o->reply != REPLY_AUTO ? o->reply : (!o->direct && o->style == STYLE_PLEXUS) ? REPLY_ANON : REPLY_LINK;

    char qname[300];
    int bad_addr = 0;
    if (mode == MODE_FANOUT) {
        bad_addr = ab_fanout_address(b) < 0;
    } else {
        snprintf(qname, sizeof qname, "%s%s", o->queue, mode == MODE_REQREP ? "-rpc" : "");
        bad_addr = queue_address(o, qname, b->target_addr, sizeof b->target_addr) < 0;
        snprintf(b->source_addr, sizeof b->source_addr, "%s", b->target_addr);
        snprintf(qname, sizeof qname, "reply-%s-%ld", o->queue, (long)getpid());
        bad_addr |= queue_address(o, qname, b->named_reply, sizeof b->named_reply) < 0;
    }
    if (bad_addr) {
        fprintf(stderr, "amqp_bench: queue or exchange name too long\n");
        goto out;
    }

    b->n_producers = mode == MODE_THROUGHPUT ? o->producers : mode == MODE_DRAIN || mode == MODE_IDLE ? 0 : 1;
    b->n_receivers = o->direct                                ? 0
                     : mode == MODE_THROUGHPUT                ? o->consumers
                     : mode == MODE_FANOUT                    ? o->subscribers
                     : mode == MODE_FILL || mode == MODE_IDLE ? 0
                                                              : 1;
    b->expected = mode == MODE_FANOUT ? count * (uint64_t)o->subscribers : count;
    if (mode == MODE_DRAIN && !o->size_set)
        b->size = 0; /* taken from the first message */
    /* idle: one thread is plenty for connections that do nothing */
    b->threads = mode == MODE_IDLE && !o->threads_set ? 1 : o->threads;
    b->close_grace_ns = 3000000000ull + (mode == MODE_IDLE ? count * 1000000ull : 0); /* 1 ms a connection */
    if (mode != MODE_REQREP && mode != MODE_IDLE) {
        /* fill receives nothing: its seen[] stays empty and unread */
        b->seen = calloc(b->expected && mode != MODE_FILL ? b->expected : 1, 1);
        b->base = calloc((size_t)b->n_producers + 1, sizeof *b->base);
        if (!b->seen || !b->base) {
            fprintf(stderr, "amqp_bench: out of memory for %" PRIu64 " receipts\n", b->expected);
            goto out;
        }
        for (int i = 0; i < b->n_producers; i++) {
            uint64_t per = count / (uint64_t)b->n_producers, rem = count % (uint64_t)b->n_producers;
            b->base[i + 1] = b->base[i] + per + ((uint64_t)i < rem ? 1 : 0);
        }
    }
    int rc = mode == MODE_DRAIN || mode == MODE_IDLE ? 0 : ab_build_template(b);
    if (rc) {
        fprintf(stderr, "amqp_bench: cannot build the message template (%d)\n", rc);
        goto out;
    }
    if (mode == MODE_IDLE && ab_idle_raise_nofile(b) < 0) {
        res.ok = ab_idle_report(b, label, 0);
        goto out;
    }
    ab_print_config(b, label);

    b->proactor = pn_proactor();
    if (!b->proactor) {
        fprintf(stderr, "amqp_bench: cannot create a proactor\n");
        goto out;
    }
    double cpu0 = ab_cpu_seconds();
    pthread_mutex_lock(&b->lock);
    b->t_start = b->last_progress_ns = ab_now_ns();
    /* idle: --deadline bounds opening and closing; the hold comes on top */
    b->deadline_ns = b->t_start + (uint64_t)((o->deadline_s + (mode == MODE_IDLE ? o->hold_s : 0)) * 1e9);
    pn_proactor_set_timeout(b->proactor, 100);
    if (o->direct) {
        ab_direct_listen_locked(b);
    } else {
        pn_proactor_addr(b->connect_addr, sizeof b->connect_addr, o->host, o->port);
        if (mode == MODE_REQREP)
            ab_connect_role_locked(b, ROLE_RR_SERVER, 1);
        else if (mode == MODE_IDLE)
            ab_idle_connect_more_locked(b);
        else if (mode == MODE_FILL)
            ab_start_producers_locked(b); /* no receiver to wait for */
        else
            ab_connect_role_locked(b, ROLE_CONSUMER, b->n_receivers);
    }
    pthread_mutex_unlock(&b->lock);

    /* --direct: the listening side has a proactor and a thread of its own,
     * as a second process would, and the rest of --threads (at least one)
     * drive the connecting side. With one proactor for both, one thread
     * sometimes serves both ends back to back with the data hot in its
     * cache, and the figures swing twofold from run to run. */
    int nt = b->threads + (b->peer_proactor && b->threads < 2);
    pthread_t *th = calloc((size_t)nt, sizeof *th);
    worker_arg main_arg = {b, b->proactor}, peer_arg = {b, b->peer_proactor};
    int started = 0;
    if (th)
        for (; started < nt - 1; started++)
            if (pthread_create(&th[started], NULL, worker, started == 0 && b->peer_proactor ? &peer_arg : &main_arg))
                break;
    if (b->peer_proactor && started == 0) { /* no thread for the listener: nothing can run */
        pthread_mutex_lock(&b->lock);
        ab_fail_locked(b, "cannot start a thread for the listening side");
        pthread_mutex_unlock(&b->lock);
    } else {
        worker(&main_arg); /* the main thread is a worker too */
    }
    for (int i = 0; i < started; i++)
        pthread_join(th[i], NULL);
    free(th);
    double cpu = ab_cpu_seconds() - cpu0;
    pn_proactor_free(b->proactor);
    b->proactor = NULL;
    if (b->peer_proactor)
        pn_proactor_free(b->peer_proactor);
    b->peer_proactor = NULL;

    /* the report: counters are final now, no thread runs */
    res.ok = mode == MODE_IDLE ? ab_idle_report(b, label, cpu) : ab_report(b, label, cpu);
    res.conn_failed = b->conn_failed;

out:
    while (b->conns) {
        conn_ctx *c = b->conns;
        b->conns = c->next;
        ab_ctx_free(c);
    }
    if (b->proactor)
        pn_proactor_free(b->proactor);
    if (b->peer_proactor)
        pn_proactor_free(b->peer_proactor);
    free(b->prefix);
    free(b->filler);
    free(b->seen);
    free(b->base);
    pthread_mutex_destroy(&b->lock);
    free(b);
    return res;
}
