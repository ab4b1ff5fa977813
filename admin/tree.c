/* tree.c — the admin subtree.
 *
 *   admin (one_for_one)
 *   ├── reader   the directory reads and rates (first: the server needs it)
 *   └── http     the HTTP server
 *
 * A crash of either restarts that process only; the HTTP server keeps no
 * state a restart would lose. The broker's tree holds this subtree as a
 * temporary child: if it ever gives up (say its port stays taken), the
 * node goes on carrying messages without its API rather than stopping.
 */
#include "admin/adm_internal.h"

static int reader_start(sv_proc *sup, const sv_spawn_opts *opts, void *arg, sv_pid *pid)
{
    return sv_spawn(sup, &adm__reader_ops, arg, opts, pid);
}

static int http_start(sv_proc *sup, const sv_spawn_opts *opts, void *arg, sv_pid *pid)
{
    return sv_spawn(sup, &adm__http_ops, arg, opts, pid);
}

int adm_start_fn(sv_proc *sup, const sv_spawn_opts *opts, void *arg, sv_pid *pid)
{
    if (!adm__started_ms)
        adm__started_ms = adm__epoch_ms();
    const sv_child_spec kids[] = {
        {.id = "reader", .start = reader_start, .arg = arg, .restart = SV_PERMANENT, .shutdown_ms = 5000},
        {.id = "http", .start = http_start, .arg = arg, .restart = SV_PERMANENT, .shutdown_ms = 5000},
    };
    sv_sup_flags f = {SV_ONE_FOR_ONE, 5, 10000};
    return sv_sup_spawn(sup, "admin", f, kids, 2, opts, pid);
}
