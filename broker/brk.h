/* brk.h — the broker: configuration, command line, the node's top
 * supervision tree. The one public header of broker/. */
#ifndef PLEXUS_BRK_H
#define PLEXUS_BRK_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>

#include "amqp/amqp.h"
#include "routing/rt.h"
#include "supervisor/sv.h"

#ifndef PLEXUS_VERSION /* set by the Makefile from VERSION */
#define PLEXUS_VERSION "unknown"
#endif

#define BRK_ADDR_MAX 256
#define BRK_NAME_MAX 128
#define BRK_HASH_MAX 64
#define BRK_MAX_USERS 256

/* A user: the password only as a salted hash (see users.c). */
typedef struct brk_user {
    char name[BRK_NAME_MAX];
    char hash[BRK_HASH_MAX];
    char tags[BRK_NAME_MAX];  /* "administrator", "management", "" */
    bool loopback_only;       /* may log in from this host only */
} brk_user;

/* Everything the broker can be told. Defaults are embedded (brk_config_init),
 * so the broker runs with no file at all. */
typedef struct brk_config {
    char node_name[BRK_NAME_MAX];     /* node.name */
    int schedulers;                   /* node.schedulers: 0 = one per core */
    uint32_t mailbox_size;            /* node.mailbox_size: default bound per process */
    int busy_wait_us;                 /* node.busy_wait_us: an idle scheduler spins this long before sleeping */
    sv_log_level log_level;           /* log.level */
    amqp_config amqp;                 /* amqp.* (amqp.listen is "HOST:PORT") */
    char anonymous_user[BRK_NAME_MAX]; /* amqp.anonymous_user: who ANONYMOUS logs in as */
    rt_config routing;                /* routing.* */
    char admin_listen[BRK_ADDR_MAX];  /* admin.listen */
    char data_dir[PATH_MAX];          /* storage.data_dir */
    brk_user users[BRK_MAX_USERS];    /* users = ( {...}, ... ) */
    size_t nusers;
} brk_config;

void brk_config_init(brk_config *c);
/* Reads a libconfig file over c. On error returns -1 with a one-line
 * message naming the file, line and problem in err. */
int brk_config_load(brk_config *c, const char *path, char *err, size_t errlen);

typedef enum brk_cli_action { BRK_CLI_RUN, BRK_CLI_EXIT_OK, BRK_CLI_ERROR } brk_cli_action;
/* Defaults, then --config FILE, then the other flags (flags win over the
 * file). Prints --help / --version itself; on error, err holds one line. */
brk_cli_action brk_cli_parse(int argc, char **argv, brk_config *c, char *err, size_t errlen);

/* Starts the node's top supervisor ("plexus") linked to inbox; waits for
 * its ACK. c must outlive the node. */
int brk_tree_start(sv_proc *inbox, brk_config *c, sv_pid *root);

/* Users (users.c). */
int brk_password_hash(const char *password, char *out, size_t len); /* len >= BRK_HASH_MAX */
bool brk_password_check(const char *password, const char *hash);
bool brk_hash_valid(const char *hash);
int brk_users_set(const brk_user *list, size_t n, const char *anonymous_user);
void brk_users_free(void);
/* An amqp_auth_fn: PLAIN against the users, ANONYMOUS as anonymous_user. */
int brk_authenticate(void *ctx, const char *mech, const char *user, const char *password,
                     const struct sockaddr *peer, char *user_out, size_t user_len);

#endif
