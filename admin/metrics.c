/* metrics.c — GET /metrics: Prometheus's text exposition format (0.0.4).
 *
 * Names follow RabbitMQ's Prometheus plugin where it has one
 * (plexus_queue_messages_ready{vhost,queue}, ..._total counters), and the
 * process_* ones every Prometheus exporter has. Every family has its HELP
 * and TYPE lines before its samples, label values are escaped, and the
 * message counters only ever grow (the reader adds up deltas, so deleting
 * a queue does not take its messages out of the totals).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin/adm_internal.h"

typedef struct out {
    char *p;
    size_t len, cap;
    bool oom;
} out;

static void emit(out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void emit(out *o, const char *fmt, ...)
{
    for (int tries = 0; tries < 2 && !o->oom; tries++) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(o->p ? o->p + o->len : NULL, o->p ? o->cap - o->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            o->oom = true;
            return;
        }
        if (o->p && o->len + (size_t)n < o->cap) {
            o->len += (size_t)n;
            return;
        }
        size_t cap = o->cap ? o->cap : 16384;
        while (cap <= o->len + (size_t)n)
            cap *= 2;
        char *np = realloc(o->p, cap);
        if (!np) {
            o->oom = true;
            return;
        }
        o->p = np;
        o->cap = cap;
    }
}

static void family(out *o, const char *name, const char *type, const char *help)
{
    emit(o, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* A label value with \, " and newline escaped. */
static void label(out *o, const char *v)
{
    if (!strpbrk(v, "\\\"\n")) {
        emit(o, "%s", v);
        return;
    }
    for (const char *p = v; *p && !o->oom; p++) {
        if (*p == '\\' || *p == '"')
            emit(o, "\\%c", *p);
        else if (*p == '\n')
            emit(o, "\\n");
        else
            emit(o, "%c", *p);
    }
}

static void queue_family(out *o, const adm__qsnap *v, size_t n, const char *name, const char *type, const char *help,
                         size_t field)
{
    family(o, name, type, help);
    for (size_t i = 0; i < n; i++) {
        emit(o, "%s{vhost=\"/\",queue=\"", name);
        label(o, v[i].name);
        emit(o, "\"} %llu\n", (unsigned long long)*(const uint64_t *)((const char *)&v[i] + field));
    }
}

#define QF(f) offsetof(adm__qsnap, f)

void adm__metrics(adm_req *q, adm_resp *r)
{
    adm__ntotals t;
    adm__qsnap *qs = NULL;
    adm__sup *sups = NULL;
    size_t nq = 0, ns = 0;
    int rc = adm__node_totals(q, &t);
    if (rc == 0)
        rc = adm__queue_snapshot(q, &qs, &nq);
    if (rc == 0)
        rc = adm__walk_sups(q, &sups, &ns);
    if (rc < 0) {
        adm__queue_snapshot_free(qs, nq);
        adm__fail_rc(r, rc, "the metrics");
        return;
    }
    adm__pstats ps;
    adm__proc_stats(&ps);
    out o = {0};
    family(&o, "plexus_build_info", "gauge", "Plexus's version, as a label.");
    emit(&o, "plexus_build_info{version=\"%s\",node=\"", PLEXUS_VERSION);
    label(&o, q->cfg->node_name);
    emit(&o, "\"} 1\n");
    family(&o, "plexus_connections", "gauge", "Open AMQP connections.");
    emit(&o, "plexus_connections %u\n", amqp_connections());
    family(&o, "plexus_queues", "gauge", "Queues.");
    emit(&o, "plexus_queues %llu\n", (unsigned long long)t.queues);
    family(&o, "plexus_exchanges", "gauge", "Exchanges, the built-in ones included.");
    emit(&o, "plexus_exchanges %llu\n", (unsigned long long)t.exchanges);
    family(&o, "plexus_consumers", "gauge", "Consumers attached to queues.");
    emit(&o, "plexus_consumers %llu\n", (unsigned long long)t.consumers);
    family(&o, "plexus_messages_ready", "gauge", "Messages ready for delivery, all queues.");
    emit(&o, "plexus_messages_ready %llu\n", (unsigned long long)t.ready);
    family(&o, "plexus_messages_unacked", "gauge", "Messages delivered and not yet settled, all queues.");
    emit(&o, "plexus_messages_unacked %llu\n", (unsigned long long)t.unacked);
    family(&o, "plexus_messages_published_total", "counter", "Messages queues have taken in.");
    emit(&o, "plexus_messages_published_total %llu\n", (unsigned long long)t.msgs.publish);
    family(&o, "plexus_messages_delivered_total", "counter", "Messages queues have delivered to consumers.");
    emit(&o, "plexus_messages_delivered_total %llu\n", (unsigned long long)t.msgs.deliver);
    family(&o, "plexus_messages_acknowledged_total", "counter", "Deliveries consumers have accepted.");
    emit(&o, "plexus_messages_acknowledged_total %llu\n", (unsigned long long)t.msgs.ack);
    family(&o, "plexus_message_bytes_held", "gauge", "Bytes of messages held by queues (the memory alarm's measure).");
    emit(&o, "plexus_message_bytes_held %llu\n", (unsigned long long)rt_held_bytes());
    family(&o, "plexus_memory_alarm", "gauge", "1 while the memory alarm holds publishers back.");
    emit(&o, "plexus_memory_alarm %d\n", rt_memory_alarm() ? 1 : 0);
    family(&o, "plexus_disk_alarm", "gauge", "1 while the data directory's disk is below storage.disk_free_limit.");
    emit(&o, "plexus_disk_alarm %d\n", rt_disk_alarm() ? 1 : 0);
    rt_store_stat st;
    rt_store_stats(&st);
    family(&o, "plexus_store_syncs_total", "counter", "fdatasync calls on queue logs (one per log per group commit).");
    emit(&o, "plexus_store_syncs_total %llu\n", (unsigned long long)st.syncs);
    family(&o, "plexus_store_written_bytes_total", "counter", "Bytes written to queue logs.");
    emit(&o, "plexus_store_written_bytes_total %llu\n", (unsigned long long)st.bytes_written);
    family(&o, "plexus_processes", "gauge", "Actor processes alive.");
    emit(&o, "plexus_processes %llu\n", (unsigned long long)ps.processes);
    family(&o, "plexus_processes_spawned_total", "counter", "Actor processes started since the node started.");
    emit(&o, "plexus_processes_spawned_total %llu\n", (unsigned long long)ps.spawned);
    family(&o, "plexus_scheduler_spin_seconds_total", "counter",
           "Time schedulers spent spinning before sleeping (node.busy_wait_us), summed over schedulers.");
    emit(&o, "plexus_scheduler_spin_seconds_total %.6f\n", (double)ps.spin_ns / 1e9);
    family(&o, "plexus_scheduler_wakeups_total", "counter", "Sleeping schedulers woken by another thread.");
    emit(&o, "plexus_scheduler_wakeups_total %llu\n", (unsigned long long)ps.wakeups);
    family(&o, "plexus_process_restarts_total", "counter", "Children a supervisor has restarted.");
    for (size_t i = 0; i < ns; i++) {
        emit(&o, "plexus_process_restarts_total{supervisor=\"");
        label(&o, sups[i].path);
        emit(&o, "\"} %llu\n", (unsigned long long)sups[i].info.restarts);
    }
    queue_family(&o, qs, nq, "plexus_queue_messages_ready", "gauge", "Messages ready for delivery.", QF(ready));
    queue_family(&o, qs, nq, "plexus_queue_messages_unacked", "gauge", "Messages delivered, not yet settled.",
                 QF(unacked));
    queue_family(&o, qs, nq, "plexus_queue_consumers", "gauge", "Consumers.", QF(consumers));
    queue_family(&o, qs, nq, "plexus_queue_message_bytes_ready", "gauge", "Bytes of ready messages.", QF(bytes));
    queue_family(&o, qs, nq, "plexus_queue_messages_published_total", "counter", "Messages the queue has taken in.",
                 QF(published));
    queue_family(&o, qs, nq, "plexus_queue_messages_delivered_total", "counter", "Deliveries to consumers.",
                 QF(delivered));
    queue_family(&o, qs, nq, "plexus_queue_messages_acknowledged_total", "counter", "Deliveries accepted.", QF(acked));
    queue_family(&o, qs, nq, "plexus_queue_log_damage", "gauge",
                 "Damaged places its log had at the last recovery (skipped; see the broker's log).", QF(damage));
    family(&o, "process_resident_memory_bytes", "gauge", "Resident memory of the broker process.");
    emit(&o, "process_resident_memory_bytes %llu\n", (unsigned long long)ps.rss);
    /* Is RSS live data, or freed memory the allocator has not given back
     * yet? Only where the allocator says (jemalloc, not the ASan build). */
    sv_alloc_stats as;
    if (sv_alloc_get_stats(&as) == 0) {
        family(&o, "plexus_allocator_allocated_bytes", "gauge", "Bytes the broker has allocated and not freed.");
        emit(&o, "plexus_allocator_allocated_bytes %llu\n", (unsigned long long)as.allocated);
        family(&o, "plexus_allocator_resident_bytes", "gauge",
               "Resident bytes the allocator holds: allocated, freed but not yet returned, and its metadata.");
        emit(&o, "plexus_allocator_resident_bytes %llu\n", (unsigned long long)as.resident);
    }
    family(&o, "process_open_fds", "gauge", "Open file descriptors.");
    emit(&o, "process_open_fds %llu\n", (unsigned long long)ps.fds);
    family(&o, "process_max_fds", "gauge", "The limit on open file descriptors.");
    emit(&o, "process_max_fds %llu\n", (unsigned long long)ps.fd_limit);
    family(&o, "process_start_time_seconds", "gauge", "When the node started, in seconds since the epoch.");
    emit(&o, "process_start_time_seconds %lld.%03lld\n", (long long)(adm__started_ms / 1000),
         (long long)(adm__started_ms % 1000));
    adm__queue_snapshot_free(qs, nq);
    free(sups);
    if (o.oom) {
        free(o.p);
        adm__fail_rc(r, -ENOMEM, "the metrics");
        return;
    }
    r->status = 200;
    r->text = o.p;
    r->text_len = o.len;
    r->type = "text/plain; version=0.0.4; charset=utf-8";
}
