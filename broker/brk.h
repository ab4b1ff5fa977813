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
    char tags[BRK_NAME_MAX]; /* "administrator", "management", "" */
    bool loopback_only;      /* may log in from this host only */
} brk_user;

/* Everything the broker can be told. Defaults are embedded (brk_config_init),
 * so the broker runs with no file at all. */
typedef struct brk_config {
    char node_name[BRK_NAME_MAX];      /* node.name */
    int schedulers;                    /* node.schedulers: 0 = one per core */
    uint32_t mailbox_size;             /* node.mailbox_size: default bound per process */
    int busy_wait_us;                  /* node.busy_wait_us: an idle scheduler spins this long before sleeping */
    sv_log_level log_level;            /* log.level */
    amqp_config amqp;                  /* amqp.* (amqp.listen is "HOST:PORT") */
    char anonymous_user[BRK_NAME_MAX]; /* amqp.anonymous_user: who ANONYMOUS logs in as */
    rt_config routing;                 /* routing.* */
    char admin_listen[BRK_ADDR_MAX];   /* admin.listen */
    uint32_t admin_max_connections;    /* admin.max_connections: open HTTP connections at most */
    uint64_t admin_max_body;           /* admin.max_body: request bodies larger are refused (413) */
    int admin_timeout_s;               /* admin.timeout: idle HTTP connections are closed after this */
    int admin_threads;                 /* admin.threads: HTTP server threads */
    char admin_cert_file[PATH_MAX];    /* admin.cert_file: with admin.key_file, the API serves HTTPS only */
    char admin_key_file[PATH_MAX];     /* admin.key_file */
    char data_dir[PATH_MAX];           /* storage.data_dir */
    brk_user users[BRK_MAX_USERS];     /* users = ( {...}, ... ) */
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

/* Starts the node's top supervisor ("plexus", registered under that
 * name) linked to inbox; waits for its ACK. c must outlive the node.
 * extra: subtrees of the layers above the broker (the admin API), started
 * after the broker's own; main() passes them, as broker/ cannot know them. */
int brk_tree_start(sv_proc *inbox, brk_config *c, const sv_child_spec *extra, size_t nextra, sv_pid *root);

/* Users (users.c). */
int brk_password_hash(const char *password, char *out, size_t len); /* len >= BRK_HASH_MAX */
bool brk_password_check(const char *password, const char *hash);
bool brk_hash_valid(const char *hash);
int brk_users_set(const brk_user *list, size_t n, const char *anonymous_user);
/* Users changed at run time are kept in DATA/users.json. load: if that
 * file exists, its users replace the configuration's (1; 0: no file;
 * -EINVAL with the file and the problem in err); either way later changes
 * are saved there. save: writes the users now (brk_user_put and
 * brk_user_delete call it); 0 or the error. */
int brk_users_load(const char *data_dir, const char *anonymous_user, char *err, size_t len);
int brk_users_save(void);
void brk_users_free(void);
/* An amqp_auth_fn: PLAIN against the users, ANONYMOUS as anonymous_user,
 * EXTERNAL (a verified client certificate's CN) as that user if it exists. */
int brk_authenticate(void *ctx, const char *mech, const char *user, const char *password, const struct sockaddr *peer,
                     char *user_out, size_t user_len);
/* A password login from peer (the admin API's basic auth): 0 and the
 * user's tags ("administrator,management"), or -EACCES. Any thread. */
int brk_user_login(const char *user, const char *password, const struct sockaddr *peer, char *tags, size_t len);
/* Whether a comma-separated tags string holds tag. */
bool brk_tags_have(const char *tags, const char *tag);
/* The users now, as a copy the caller frees. */
int brk_users_get(brk_user **out, size_t *n);
/* Adds or replaces (by name) one user; new logins see it at once.
 * -ENOSPC past BRK_MAX_USERS. */
int brk_user_put(const brk_user *u);
int brk_user_delete(const char *name); /* -ENOENT */

/* Users as the "users" array of RabbitMQ's definitions document (name,
 * password_hash, hashing_algorithm, tags; plus Plexus's loopback_only),
 * sorted by name. Shared by the admin API and durability, which persists
 * users in this same form. NULL when out of memory. */
struct json_t *brk_users_export(void);
/* One entry as a user: a definitions entry, or a PUT /api/users/NAME body
 * with name given (from the URL) and "password" allowed instead of
 * "password_hash" (hashed here). tags: a comma-separated string or an
 * array of administrator, management, monitoring, policymaker,
 * impersonator, or none. -EINVAL with a reason in err. */
int brk_user_from_json(const struct json_t *o, const char *name, brk_user *out, char *err, size_t len);
/* The "users" array of a document (missing: none): *out is allocated. */
int brk_users_parse(const struct json_t *doc, brk_user **out, size_t *n, char *err, size_t len);

/* ------------------------------------------------ permissions (perms.c) */

/* RabbitMQ's permissions: per user and vhost, three regular expressions
 * (POSIX extended, unanchored as RabbitMQ's: ^app\. is a prefix, ".*"
 * everything, "" nothing). A user without an entry on a vhost may not
 * open it. */
#define BRK_REGEX_MAX 512
#define BRK_MAX_PERMS 4096
typedef struct brk_permission {
    char user[BRK_NAME_MAX];
    char vhost[BRK_NAME_MAX];
    char configure[BRK_REGEX_MAX], write[BRK_REGEX_MAX], read[BRK_REGEX_MAX];
} brk_permission;

/* Whether the vhost exists (only "/" until virtual hosts do). */
bool brk_vhost_exists(const char *vhost);
/* Whether user may do what on the resource kind ("queue", "exchange")
 * called name in vhost: 0, or -EACCES with RabbitMQ's reason in why
 * ("configure access to queue 'q' in vhost '/' refused for user 'u'";
 * "access to vhost '/' refused for user 'u'" for AMQP_PERM_VHOST). The
 * default exchange "" is checked as "amq.default". Any thread: a read
 * lock and one regexec. */
int brk_perm_check(const char *user, const char *vhost, amqp_perm what, const char *kind, const char *name, char *why,
                   size_t len);
/* brk_perm_check as an amqp_perm_fn (ctx unused). */
int brk_perm_amqp(void *ctx, const char *user, const char *vhost, amqp_perm what, const char *kind, const char *name,
                  char *why, size_t len);
/* Sets (adds or replaces) one entry, checked: the user must exist
 * (-ENOENT), the vhost too and each expression compile (-EINVAL with a
 * reason in err); -ENOSPC past BRK_MAX_PERMS. Saved with the users. */
int brk_perm_set(const brk_permission *p, char *err, size_t len);
int brk_perm_get(const char *user, const char *vhost, brk_permission *out); /* -ENOENT */
int brk_perm_delete(const char *user, const char *vhost);                   /* -ENOENT; saved */
/* Every entry as a copy the caller frees, sorted by user then vhost. */
int brk_perms_get(brk_permission **out, size_t *n);
/* Replaces every entry (no checks beyond the expressions compiling, no
 * save): loading, and brk_users_set's full access for configured users. */
int brk_perms_replace(const brk_permission *list, size_t n);
/* Drops every entry of user (the user was deleted). */
void brk_perms_forget_user(const char *user);
/* The "permissions" array of RabbitMQ's definitions (user, vhost,
 * configure, write, read), sorted; NULL when out of memory. */
struct json_t *brk_perms_export(void);
/* One definitions entry (or a PUT body, with user and vhost from the
 * URL) as an entry: -EINVAL with a reason in err. Not yet checked against
 * the users (brk_perm_set does that). */
int brk_perm_from_json(const struct json_t *o, const char *user, const char *vhost, brk_permission *out, char *err,
                       size_t len);
/* The "permissions" array of a document (missing: *present false, none). */
int brk_perms_parse(const struct json_t *doc, brk_permission **out, size_t *n, bool *present, char *err, size_t len);

/* ----------------------------------------------- failed logins (logins.c) */

/* Failed logins are answered late, per source address: the first after
 * BRK_LOGIN_DELAY_MIN_MS, each next one from the same address twice as
 * late, up to BRK_LOGIN_DELAY_MAX_MS; an address quiet for
 * BRK_LOGIN_FORGET_MS starts again. At most BRK_LOGIN_ADDRS addresses are
 * remembered (the one quiet longest makes room). */
#define BRK_LOGIN_DELAY_MIN_MS 100
#define BRK_LOGIN_DELAY_MAX_MS 3200
#define BRK_LOGIN_FORGET_MS 60000
#define BRK_LOGIN_ADDRS 1024
/* Records a failed login of user from peer by how ("AMQP PLAIN", "HTTP
 * basic auth"), logs it with the address, and returns the delay (ms) its
 * refusal is to wait. now_ms: a monotonic clock (0: read it here). */
uint32_t brk_login_failed(const struct sockaddr *peer, const char *user, const char *how, uint64_t now_ms);
/* The delay of the last failure from peer (0 if none remembered): an
 * amqp_auth_delay_fn (ctx unused). */
uint32_t brk_login_delay(void *ctx, const struct sockaddr *peer);
/* Addresses remembered now (tests), and forgetting them all. */
size_t brk_login_addrs(void);
void brk_logins_reset(void);

#endif
