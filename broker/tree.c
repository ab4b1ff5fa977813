/* tree.c — the node's top supervision tree.
 *
 *   plexus (one_for_one)
 *   ├── routing     (rest_for_one): message store, queue supervisor, routing manager
 *   ├── listeners   (rest_for_one): connections supervisor, AMQP listener
 *   └── admin       (given by main: the HTTP API, a layer above the broker)
 *
 * Routing starts first: by the time the listener accepts a client, the
 * manager and the built-in exchanges are there. Each subtree restarts on
 * its own; only when the top supervisor itself gives up does the node stop.
 * (The cluster subtree joins when it is built; see DESIGN.md.)
 */
#include <errno.h>
#include <string.h>

#include "broker/brk.h"

#define MAX_EXTRA 4

int brk_tree_start(sv_proc *inbox, brk_config *c, const sv_child_spec *extra, size_t nextra, sv_pid *root)
{
    if (nextra > MAX_EXTRA)
        return -EINVAL;
    c->amqp.auth = brk_authenticate;
    c->amqp.auth_delay = brk_login_delay;
    c->amqp.perm = brk_perm_amqp;
    c->routing.data_dir = c->data_dir;
    c->amqp.container_id = c->node_name;
    sv_child_spec kids[2 + MAX_EXTRA] = {
        {.id = "routing",
         .start = rt_start_fn,
         .arg = &c->routing,
         .restart = SV_PERMANENT,
         .shutdown_ms = SV_SHUTDOWN_INFINITY,
         .is_supervisor = true},
        {.id = "listeners",
         .start = amqp_start_fn,
         .arg = &c->amqp,
         .restart = SV_PERMANENT,
         .shutdown_ms = SV_SHUTDOWN_INFINITY,
         .is_supervisor = true},
    };
    if (nextra)
        memcpy(kids + 2, extra, nextra * sizeof *extra);
    static const sv_sup_flags flags = {SV_ONE_FOR_ONE, 5, 10000};
    sv_pid pid;
    sv_spawn_opts o = {.link = true, .ack = true, .scheduler = SV_SCHED_ANY};
    int rc = sv_sup_spawn(inbox, "plexus", flags, kids, 2 + nextra, &o, &pid);
    if (rc < 0)
        return rc;
    sv_register("plexus", pid); /* the root of the tree the admin API shows */
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
