/* adm.h — the admin API: HTTP + JSON like RabbitMQ's management API,
 * Prometheus metrics, and the dashboard. The one public header of admin/.
 *
 * The HTTP server (libmicrohttpd) runs its own small pool of threads, not
 * on the schedulers, so serving a large listing never holds up message
 * flow. Those threads take part in the runtime through inboxes: they call
 * the routing manager, queue processes and supervisors like any client,
 * and ask one process of the admin subtree (the reader) to read the
 * lock-free routing directory for them, since only code running on a
 * scheduler may. The server belongs to the `http` process: started in its
 * init, stopped in its terminate, restarted by the admin supervisor.
 *
 *   admin (one_for_one)
 *   ├── reader   reads the directory for the HTTP threads, samples rates
 *   └── http     owns the HTTP server
 */
#ifndef PLEXUS_ADM_H
#define PLEXUS_ADM_H

#include "broker/brk.h"

/* The admin subtree for the broker's tree. arg: the brk_config (outlives
 * the node). */
int adm_start_fn(sv_proc *sup, const sv_spawn_opts *opts, void *arg, sv_pid *pid);
/* The port the API listens on (useful with port 0), 0 before it does. */
int adm_listen_port(void);
/* After the tree has stopped and before sv_node_stop: waits for HTTP
 * servers being stopped to finish their last requests (which may still
 * be talking to processes). */
void adm_cleanup(void);

#endif
