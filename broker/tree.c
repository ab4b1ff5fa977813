/* tree.c — the node's top supervision tree.
 *
 *   plexus (one_for_one)
 *   ├── routing     (rest_for_one): message store, queue supervisor, routing manager
 *   └── listeners   (rest_for_one): connections supervisor, AMQP listener
 *
 * Routing starts first: by the time the listener accepts a client, the
 * manager and the built-in exchanges are there. Each subtree restarts on
 * its own; only when the top supervisor itself gives up does the node stop.
 * (Admin and cluster subtrees join as they are built; see DESIGN.md.)
 */
#include <errno.h>

#include "broker/brk.h"

int brk_tree_start(sv_proc *inbox, brk_config *c, sv_pid *root)
{
    c->amqp.auth = brk_authenticate;
    c->routing.data_dir = c->data_dir;
    c->amqp.container_id = c->node_name;
    const sv_child_spec kids[] = {
        {.id = "routing", .start = rt_start_fn, .arg = &c->routing, .restart = SV_PERMANENT,
         .shutdown_ms = SV_SHUTDOWN_INFINITY, .is_supervisor = true},
        {.id = "listeners", .start = amqp_start_fn, .arg = &c->amqp, .restart = SV_PERMANENT,
         .shutdown_ms = SV_SHUTDOWN_INFINITY, .is_supervisor = true},
    };
    static const sv_sup_flags flags = {SV_ONE_FOR_ONE, 5, 10000};
    sv_pid pid;
    sv_spawn_opts o = {.link = true, .ack = true, .scheduler = SV_SCHED_ANY};
    int rc = sv_sup_spawn(inbox, "plexus", flags, kids, sizeof kids / sizeof kids[0], &o, &pid);
    if (rc < 0)
        return rc;
    /* Its ACK says every child is up; an EXIT says one could not start. */
    for (;;) {
        sv_msg *m = sv_recv(inbox, 30000, NULL, NULL);
        if (!m)
            return -ETIMEDOUT;
        bool from_root = sv_pid_eq(m->from, pid);
        int kind = m->kind, status = m->status;
        sv_msg_free(m);
        if (from_root && kind == SV_MSG_ACK) {
            *root = pid;
            return 0;
        }
        if (from_root && kind == SV_MSG_EXIT)
            return status < 0 ? status : -ECHILD;
    }
}
