/* routing_helpers.h — a node with the routing subtree (manager and queue
 * supervisor) for the Check suites that drive routing through its
 * manager, as the broker does. */
#ifndef PLEXUS_ROUTING_HELPERS_H
#define PLEXUS_ROUTING_HELPERS_H

#include "check_helpers.h"
#include "routing/rt.h"

static sv_pid routing;

static void routing_up(void)
{
    node_setup();
    sv_spawn_opts o = {.link = true, .ack = true, .scheduler = SV_SCHED_ANY};
    ck_assert_int_eq(rt_start_fn(T, &o, NULL, &routing), 0);
    sv_msg *m = recv_match(SV_MSG_ACK, 0, 0, routing, 3000);
    ck_assert_msg(m != NULL, "the routing subtree did not start");
    sv_msg_free(m);
}

static void routing_down(void)
{
    uint64_t ref = sv_monitor(T, routing);
    sv_exit(T, routing, SV_SHUTDOWN);
    expect_down(ref, 5000);
    node_teardown();
    rt_cleanup();
}

#endif
