/* brk.h — the broker: configuration, command line, the node's top
 * supervision tree. The one public header of broker/. */
#ifndef PLEXUS_BRK_H
#define PLEXUS_BRK_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>

#include "supervisor/sv.h"

#define PLEXUS_VERSION "0.1.0"

#define BRK_ADDR_MAX 256

/* Everything the broker can be told. Defaults are embedded (brk_config_init),
 * so the broker runs with no file at all. */
typedef struct brk_config {
    char node_name[128];          /* node.name */
    int schedulers;               /* node.schedulers: 0 = one per core */
    uint32_t mailbox_size;        /* node.mailbox_size: default bound per process */
    sv_log_level log_level;       /* log.level */
    char amqp_listen[BRK_ADDR_MAX];  /* amqp.listen: "HOST:PORT" */
    char admin_listen[BRK_ADDR_MAX]; /* admin.listen */
    char data_dir[PATH_MAX];      /* storage.data_dir */
} brk_config;

void brk_config_init(brk_config *c);
/* Reads a libconfig file over c. On error returns -1 with a one-line
 * message naming the file, line and problem in err. */
int brk_config_load(brk_config *c, const char *path, char *err, size_t errlen);

/* "host:port", "[v6]:port" -> host (brackets removed) and port. -1 on bad
 * syntax or a port outside 0..65535. */
int brk_parse_hostport(const char *s, char *host, size_t hostlen, int *port);

typedef enum brk_cli_action { BRK_CLI_RUN, BRK_CLI_EXIT_OK, BRK_CLI_ERROR } brk_cli_action;
/* Defaults, then --config FILE, then the other flags (flags win over the
 * file). Prints --help / --version itself; on error, err holds one line. */
brk_cli_action brk_cli_parse(int argc, char **argv, brk_config *c, char *err, size_t errlen);

/* Starts the node's top supervisor ("plexus") linked to inbox; waits for
 * its ACK. */
int brk_tree_start(sv_proc *inbox, const brk_config *c, sv_pid *root);

#endif
