/* tree.c — the node's top supervision tree.
 *
 *   plexus (one_for_one)
 *   ├── store sup, routing sup, listeners sup, admin sup, cluster sup
 *
 * Each part of the broker adds its supervisor here as it is built (see
 * DESIGN.md); a part that keeps failing is restarted on its own, and only
 * when the top supervisor itself gives up does the node stop.
 */
#include <errno.h>

#include "broker/brk.h"

int brk_tree_start(sv_proc *inbox, const brk_config *c, sv_pid *root)
{
    (void)c;
    static const sv_sup_flags flags = {SV_ONE_FOR_ONE, 5, 10000};
    sv_pid pid;
    sv_spawn_opts o = {.link = true, .ack = true, .scheduler = SV_SCHED_ANY};
    int rc = sv_sup_spawn(inbox, "plexus", flags, NULL, 0, &o, &pid);
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
