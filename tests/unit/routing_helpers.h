/* routing_helpers.h — a node with the routing subtree (manager and queue
 * supervisor) for the Check suites that drive routing through its
 * manager, as the broker does. */
#ifndef PLEXUS_ROUTING_HELPERS_H
#define PLEXUS_ROUTING_HELPERS_H

#include <proton/codec.h>
#include <proton/message.h>
#include <stdio.h>

#include "check_helpers.h"
#include "routing/rt.h"

static sv_pid routing;

/* Starts the routing subtree on the running node (cfg NULL: defaults). */
static void routing_start(const rt_config *cfg)
{
    sv_spawn_opts o = {.link = true, .ack = true, .scheduler = SV_SCHED_ANY};
    ck_assert_int_eq(rt_start_fn(T, &o, (void *)cfg, &routing), 0);
    sv_msg *m = recv_match(SV_MSG_ACK, 0, 0, routing, 5000);
    ck_assert_msg(m != NULL, "the routing subtree did not start");
    sv_msg_free(m);
}

/* Shuts it down (durable queues close their logs first: give it time). */
static void routing_stop(void)
{
    uint64_t ref = sv_monitor(T, routing);
    sv_exit(T, routing, SV_SHUTDOWN);
    expect_down(ref, 10000);
    rt_cleanup();
}

/* The routing directory is read without locks, and what a reader finds is
 * valid only until the end of its turn on a scheduler (sv_retire frees
 * replaced records and pids once every scheduler has passed the top of its
 * loop). The test thread has no turn, so a lookup it made itself could
 * race the scheduler freeing what it reads (TSan saw exactly that while a
 * queue restarted or went away): it asks a short-lived process to look,
 * as the broker's admin API does. */
typedef struct dir_look {
    const char *name;
    bool exchange;
} dir_look;
typedef struct dir_seen {
    bool found;
    sv_pid pid; /* a queue's process, or none */
} dir_seen;
enum { TAG_DIR_SEEN = 0x44495253 };

static int dir_looker_init(sv_proc *self, void *arg)
{
    const dir_look *l = arg;
    dir_seen seen = {.pid = SV_PID_NONE};
    if (l->exchange) {
        seen.found = rt_exchange_find(l->name) != NULL;
    } else {
        rt_queue *q = rt_queue_find(l->name);
        seen.found = q != NULL;
        if (q)
            seen.pid = rt_queue_pid(q);
    }
    sv_send_tag(sv_parent(self), TAG_DIR_SEEN, &seen, sizeof seen);
    sv_stop(self, SV_NORMAL);
    return 0;
}
static const sv_server_ops dir_looker_ops = {.name = "dir_looker", .init = dir_looker_init};

static inline dir_seen dir_look_up(const char *name, bool exchange)
{
    dir_look l = {name, exchange};
    sv_pid looker;
    sv_spawn_opts o = {.scheduler = SV_SCHED_ANY};
    ck_assert_int_eq(sv_spawn(T, &dir_looker_ops, &l, &o, &looker), 0);
    sv_msg *m = recv_match(SV_MSG_INFO, TAG_DIR_SEEN, 0, looker, 5000);
    ck_assert_msg(m != NULL, "no answer from the directory looker");
    dir_seen seen = *SV_MSG_AS(m, dir_seen);
    sv_msg_free(m);
    return seen;
}
static inline bool queue_exists(const char *name) { return dir_look_up(name, false).found; }
static inline bool exchange_exists(const char *name) { return dir_look_up(name, true).found; }
/* The pid of queue name's process now (none while it restarts). */
static inline sv_pid queue_pid_now(const char *name) { return dir_look_up(name, false).pid; }

static inline void routing_up(void)
{
    node_setup();
    routing_start(NULL);
}

static inline void routing_down(void)
{
    routing_stop();
    node_teardown();
}

/* The number n of a message whose body is the binary "m<n>" (as the
 * queue and store suites make them). */
static inline int body_number(const rt_msg *m)
{
    pn_message_t *pm = pn_message();
    ck_assert_int_eq(pn_message_decode(pm, (const char *)m->buf.data, m->buf.len), 0);
    pn_data_t *b = pn_message_body(pm);
    pn_data_rewind(b);
    ck_assert(pn_data_next(b));
    pn_bytes_t v = pn_data_get_binary(b);
    int num = -1;
    ck_assert_int_eq(sscanf(v.start, "m%d", &num), 1);
    pn_message_free(pm);
    return num;
}

#endif
