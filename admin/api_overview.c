/* api_overview.c — GET /api/overview, /api/nodes, /api/whoami: the node at
 * a glance, in the shapes of RabbitMQ's management API (message_stats with
 * *_details rates, queue_totals, object_totals, listeners).
 */
#include <dirent.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "admin/adm_internal.h"

typedef struct totals {
    uint64_t queues, exchanges, ready, unacked, consumers, bytes;
    adm__totals msgs;
} totals;

static bool count_queue(rt_queue *q, void *ctx)
{
    totals *t = ctx;
    t->queues++;
    t->ready += atomic_load_explicit(&q->ready, memory_order_relaxed);
    t->unacked += atomic_load_explicit(&q->unacked, memory_order_relaxed);
    t->consumers += atomic_load_explicit(&q->consumers, memory_order_relaxed);
    t->bytes += atomic_load_explicit(&q->bytes, memory_order_relaxed);
    return true;
}

static bool count_exchange(rt_exchange *x, void *ctx)
{
    (void)x;
    ((totals *)ctx)->exchanges++;
    return true;
}

static void read_totals(adm__reader *rd, void *ctx)
{
    totals *t = ctx;
    rt_queue_each(count_queue, t);
    rt_exchange_each(count_exchange, t);
    t->msgs = adm__message_totals(rd);
}

int adm__node_totals(adm_req *q, adm__ntotals *out)
{
    totals t = {0};
    int rc = adm__read(q, read_totals, &t);
    if (rc < 0)
        return rc;
    out->queues = t.queues;
    out->exchanges = t.exchanges;
    out->ready = t.ready;
    out->unacked = t.unacked;
    out->consumers = t.consumers;
    out->msgs = t.msgs;
    return 0;
}

static json_t *rate_json(uint64_t count, double rate, const char *name)
{
    char details[64];
    snprintf(details, sizeof details, "%s_details", name);
    json_t *o = json_object();
    json_object_set_new(o, name, json_integer((json_int_t)count));
    json_object_set_new(o, details, json_pack("{s:f}", "rate", rate));
    return o;
}

json_t *adm__message_stats(uint64_t publish, uint64_t deliver, uint64_t ack, adm__rates r)
{
    json_t *o = rate_json(publish, r.publish, "publish");
    json_object_update_new(o, rate_json(deliver, r.deliver, "deliver_get"));
    json_object_update_new(o, rate_json(ack, r.ack, "ack"));
    return o;
}

void adm__proc_stats(adm__pstats *st)
{
    long pages = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f) {
        if (fscanf(f, "%ld %ld", &pages, &resident) != 2)
            resident = 0;
        fclose(f);
    }
    st->rss = (uint64_t)resident * (uint64_t)sysconf(_SC_PAGESIZE);
    st->fds = 0;
    DIR *d = opendir("/proc/self/fd");
    for (struct dirent *e; d && (e = readdir(d));)
        st->fds += e->d_name[0] != '.';
    if (d) {
        closedir(d);
        st->fds--; /* the one opendir held */
    }
    struct rlimit rl;
    st->fd_limit = getrlimit(RLIMIT_NOFILE, &rl) == 0 ? (uint64_t)rl.rlim_cur : 0;
    sv_node_stats ns;
    sv_node_get_stats(&ns);
    st->processes = ns.processes;
    st->spawned = ns.spawned;
    st->wakeups = ns.wakeups;
    st->spin_ns = ns.spin_ns;
}

void adm__overview(adm_req *q, adm_resp *r)
{
    adm__ntotals t;
    int rc = adm__node_totals(q, &t);
    if (rc < 0) {
        adm__fail_rc(r, rc, "the overview");
        return;
    }
    json_t *o = json_pack(
        "{s:s, s:s, s:s, s:s, s:s, s:I, s:o, s:{s:I, s:I, s:I}, s:{s:I, s:I, s:I, s:I}, s:[{s:s, s:s, s:i}, "
        "{s:s, s:s, s:i}], s:b, s:I}",
        "management_version", PLEXUS_VERSION, "product_name", "Plexus", "product_version", PLEXUS_VERSION, "node",
        q->cfg->node_name, "cluster_name", q->cfg->node_name, "uptime", (json_int_t)(adm__epoch_ms() - adm__started_ms),
        "message_stats", adm__message_stats(t.msgs.publish, t.msgs.deliver, t.msgs.ack, t.msgs.rates), "queue_totals",
        "messages", (json_int_t)(t.ready + t.unacked), "messages_ready", (json_int_t)t.ready, "messages_unacknowledged",
        (json_int_t)t.unacked, "object_totals", "connections", (json_int_t)amqp_connections(), "queues",
        (json_int_t)t.queues, "exchanges", (json_int_t)t.exchanges, "consumers", (json_int_t)t.consumers, "listeners",
        "node", q->cfg->node_name, "protocol", "amqp", "port", amqp_listen_port(), "node", q->cfg->node_name,
        "protocol", "http", "port", adm_listen_port(), "memory_alarm", rt_memory_alarm(), "message_bytes_held",
        (json_int_t)rt_held_bytes());
    adm__ok(r, o);
}

void adm__nodes(adm_req *q, adm_resp *r)
{
    adm__pstats st;
    adm__proc_stats(&st);
    json_t *n = json_pack("{s:s, s:s, s:b, s:I, s:I, s:b, s:I, s:I, s:I, s:I, s:I, s:i, s:i, s:I, s:I}", "name",
                          q->cfg->node_name, "type", "disc", "running", 1, "uptime",
                          (json_int_t)(adm__epoch_ms() - adm__started_ms), "mem_used", (json_int_t)st.rss, "mem_alarm",
                          rt_memory_alarm(), "message_bytes_held", (json_int_t)rt_held_bytes(), "fd_used",
                          (json_int_t)st.fds, "fd_total", (json_int_t)st.fd_limit, "proc_used",
                          (json_int_t)st.processes, "processes_spawned", (json_int_t)st.spawned, "schedulers",
                          sv_node_schedulers(), "processors", (int)sysconf(_SC_NPROCESSORS_ONLN), "sockets_used",
                          (json_int_t)amqp_connections(), "os_pid", (json_int_t)getpid());
    adm__ok(r, n ? json_pack("[o]", n) : NULL);
}

void adm__whoami(adm_req *q, adm_resp *r)
{
    json_t *tags = json_array();
    char buf[BRK_NAME_MAX];
    snprintf(buf, sizeof buf, "%s", q->tags);
    char *save = NULL;
    for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save))
        json_array_append_new(tags, json_string(t));
    adm__ok(r, json_pack("{s:s, s:o}", "name", q->user, "tags", tags));
}
