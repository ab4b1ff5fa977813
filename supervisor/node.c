/* node.c — starting and stopping the runtime of one node.
 *
 * Stopping is orderly from the outside in: the caller shuts its supervision
 * tree down first; whatever still runs is then killed through the normal
 * exit path (so terminate callbacks free everything), and only when no
 * process is left are the schedulers joined.
 */
#include <errno.h>
#include <time.h>
#include <unistd.h>

#include "sv_internal.h"

sv__node sv__n;

int sv_node_start(const sv_node_opts *opts)
{
    static const sv_node_opts defaults = {0};
    if (!opts)
        opts = &defaults;
    if (atomic_load(&sv__n.running))
        return -EALREADY;
    if (opts->schedulers < 0 || opts->schedulers > 256)
        return -EINVAL;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    sv__n.id = opts->node_id ? opts->node_id : 1;
    /* Distinct per start, so pids of an earlier run are never honoured. */
    sv__n.creation = (uint32_t)(ts.tv_sec ^ (ts.tv_nsec << 7) ^ ((uint32_t)getpid() << 16));
    if (sv__n.creation == 0)
        sv__n.creation = 1;
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    sv__n.nsched = opts->schedulers ? opts->schedulers : (ncpu > 0 ? (int)ncpu : 1);
    sv__n.mailbox_cap = opts->mailbox_cap ? opts->mailbox_cap : 4096;
    sv__n.spin_us = opts->spin_us >= 0 ? opts->spin_us : 50;
    atomic_store(&sv__n.next_ref, 1);
    atomic_store(&sv__n.processes, 0);
    atomic_store(&sv__n.spawned, 0);
    atomic_store(&sv__n.inboxes, 0);
    int rc = sv__table_init();
    if (rc < 0)
        return rc;
    atomic_store(&sv__n.running, true);
    rc = sv__sched_start_all();
    if (rc < 0) {
        atomic_store(&sv__n.running, false);
        sv__table_destroy();
    }
    return rc;
}

/* Sends SV_KILL to every live process; returns how many were alive. */
static uint32_t kill_all(void)
{
    uint32_t alive = 0, n = sv__table_size();
    for (uint32_t i = 0; i < n; i++) {
        sv__slot *s = sv__table_slot(i);
        pthread_mutex_lock(&s->lock);
        sv_pid pid = s->proc && !s->proc->cond ? s->proc->pid : SV_PID_NONE;
        pthread_mutex_unlock(&s->lock);
        if (!sv_pid_is_none(pid)) {
            alive++;
            sv_exit(NULL, pid, SV_KILL);
        }
    }
    return alive;
}

void sv_node_stop(void)
{
    if (!atomic_load(&sv__n.running))
        return;
    /* Kill, wait for the exits to run; repeat, in case a dying process
     * spawned another on its way out. */
    for (int round = 0; round < 100 && atomic_load(&sv__n.processes) > 0; round++) {
        kill_all();
        for (int i = 0; i < 200 && atomic_load(&sv__n.processes) > 0; i++)
            usleep(1000);
    }
    if (atomic_load(&sv__n.processes) > 0)
        sv_log(SV_LOG_WARNING, "node stop: %lu processes did not end", (unsigned long)atomic_load(&sv__n.processes));
    atomic_store(&sv__n.running, false);
    sv__sched_stop_all();
    sv__retire_flush();
    sv__registry_clear();
    sv__table_destroy();
}

uint32_t sv_node_id(void) { return sv__n.id; }
int sv_node_schedulers(void) { return sv__n.nsched; }

void sv_node_get_stats(sv_node_stats *st)
{
    st->processes = atomic_load(&sv__n.processes);
    st->spawned = atomic_load(&sv__n.spawned);
    st->messages = 0;
    st->wakeups = 0;
    st->spin_ns = 0;
    for (int i = 0; i < sv__n.nsched; i++) {
        st->spin_ns += __atomic_load_n(&sv__n.sched[i].spin_ns, __ATOMIC_RELAXED);
        st->messages += __atomic_load_n(&sv__n.sched[i].messages, __ATOMIC_RELAXED);
        st->wakeups += __atomic_load_n(&sv__n.sched[i].wakeups, __ATOMIC_RELAXED);
    }
}
