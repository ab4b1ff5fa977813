/* routing_helpers.h — a node with the routing subtree (manager and queue
 * supervisor) for the Check suites that drive routing through its
 * manager, as the broker does. */
#ifndef PLEXUS_ROUTING_HELPERS_H
#define PLEXUS_ROUTING_HELPERS_H

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

#endif
