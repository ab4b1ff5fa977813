/* adm_internal.h — shared by the files of admin/ only.
 *
 * A request is handled on an HTTP thread: the router finds the handler by
 * method and path, the handler fills a response (a JSON value, text, or a
 * JSON error) and http.c sends it. Handlers that need the routing
 * directory ask the reader process to run a function for them on its
 * scheduler (adm__read); everything else (manager requests, queue calls,
 * users, connections) they do themselves through the thread's inbox.
 */
#ifndef PLEXUS_ADM_INTERNAL_H
#define PLEXUS_ADM_INTERNAL_H

#include <jansson.h>

#include "admin/adm.h"

#define ADM_MAX_SEGS 8
#define ADM_CALL_MS 10000  /* a request's calls to processes: beyond it, 503 */
#define ADM_SAMPLE_MS 1000 /* how often the reader samples message counts for rates */

typedef struct adm_req {
    struct MHD_Connection *conn;
    const char *method;
    char *segs[ADM_MAX_SEGS]; /* the path after "/api/", split at '/', percent-decoded */
    int nsegs;
    const char *body; /* NUL-terminated */
    size_t body_len;
    sv_proc *inbox; /* the HTTP thread's */
    const brk_config *cfg;
    char user[BRK_NAME_MAX]; /* who logged in */
    char tags[BRK_NAME_MAX];
} adm_req;

typedef struct adm_resp {
    int status;
    json_t *json; /* sent as application/json (taken) */
    char *text;   /* or this (freed), or static_text (not) */
    size_t text_len;
    const char *static_text;
    const char *type; /* content type of text */
    char allow[48];   /* 405: the methods the path takes */
} adm_resp;

typedef void (*adm_handler)(adm_req *q, adm_resp *r);

/* reply.c: responses. */
void adm__ok(adm_resp *r, json_t *j); /* 200 with j (NULL: 500, out of memory) */
void adm__no_content(adm_resp *r);    /* 204 */
void adm__fail(adm_resp *r, int status, const char *error, const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* A failed call as its HTTP status: -ENOENT 404, -EBUSY/-ENOTEMPTY/-EEXIST
 * 409, -EINVAL 400, -EPERM 403, timeouts and shutdowns 503. */
void adm__fail_rc(adm_resp *r, int rc, const char *what);
/* The body as a JSON object, or a 400 in r and NULL. */
json_t *adm__body_object(adm_req *q, adm_resp *r);
/* A query argument, percent-decoded into buf, or NULL (absent, or too
 * long or badly encoded). */
const char *adm__arg(adm_req *q, const char *name, char *buf, size_t len);
/* Whether a query argument is "true" (RabbitMQ's if-empty=true). */
bool adm__arg_true(adm_req *q, const char *name);
/* Decodes %XX (and, for query strings, '+' as a space) in place; -1 on a
 * bad escape or an encoded NUL. */
int adm__pct_decode(char *s, bool plus);
/* Whether the logged-in user may do what on the resource in the
 * request's vhost (segment 1): false with a 403 and RabbitMQ's reason in
 * r if not (api_permissions.c). */
bool adm__may(adm_req *q, adm_resp *r, amqp_perm what, const char *kind, const char *name);
/* vhost path segment: only "/" exists; false (with a 404 in r) otherwise. */
bool adm__vhost_ok(const char *vhost, adm_resp *r);
int64_t adm__epoch_ms(void);
extern int64_t adm__started_ms; /* when the admin subtree first started: the node's uptime */

/* api_connections.c: a fresh copy of one of the AMQP front end's tables
 * (connections, channels, consumers), filled by fill(v, cap), which says
 * how many there are; cap is the first guess, grown if more came
 * meanwhile. *n: how many; NULL without memory. */
void *adm__copy_table(int (*fill)(void *, int), size_t size, int cap, int *n);

/* router.c: splits the path after "/api/" (in place) into q's
 * percent-decoded segments; false with a 400 or 404 in r. */
bool adm__split_path(char *path, adm_req *q, adm_resp *r);
/* The handler for q's method and segments, or NULL; allow gets the
 * methods the path takes ("" if none: a 404, else a 405). */
adm_handler adm__route_find(const adm_req *q, char *allow, size_t allow_len);
/* Finds and runs the handler, or fills the 404/405. */
void adm__route(adm_req *q, adm_resp *r);

/* values.c: booleans and integers as RabbitMQ's API takes them, typed or
 * as strings ("true"/"false", "5"); 0, or -EINVAL for anything else
 * ("yes", "5x", 5.5). */
int adm__parse_bool(const json_t *v, bool *out);
int adm__parse_int(const json_t *v, int64_t *out);
/* Rewrites the named fields of body (NULL-ended lists) typed; -EINVAL with
 * the field named in err if one is neither. */
int adm__coerce(json_t *body, const char *const *bools, const char *const *ints, char *err, size_t len);
/* adm__body_object, then adm__coerce (a 400 in r and NULL on failure). */
json_t *adm__body_coerced(adm_req *q, adm_resp *r, const char *const *bools, const char *const *ints);

/* listing.c: sort= and columns= (keys may be dotted paths). Sorting is
 * stable, in place; columns gives a new value (NULL: out of memory). */
int adm__list_sort(json_t *arr, const char *key, bool reverse);
json_t *adm__columns(json_t *v, const char *columns);

/* reader.c: the process that reads the directory for HTTP threads. */
typedef struct adm__reader adm__reader;
typedef struct adm__rates {
    double publish, deliver, ack; /* per second, over the last sample interval */
} adm__rates;
typedef struct adm__totals {
    uint64_t publish, deliver, ack; /* since the reader started, queues gone included */
    adm__rates rates;
} adm__totals;
/* Runs fn(reader, ctx) in the reader's turn (where directory reads are
 * safe) and waits for it: 0, or the call's error. */
int adm__read(adm_req *q, void (*fn)(adm__reader *rd, void *ctx), void *ctx);
adm__rates adm__queue_rates(adm__reader *rd, const rt_queue *q);
adm__totals adm__message_totals(adm__reader *rd);
extern const sv_server_ops adm__reader_ops;

/* api_overview.c: figures other handlers (metrics) share. */
typedef struct adm__ntotals {
    uint64_t queues, exchanges, ready, unacked, consumers;
    adm__totals msgs;
} adm__ntotals;
int adm__node_totals(adm_req *q, adm__ntotals *out);
typedef struct adm__pstats {
    uint64_t rss, fds, fd_limit, processes, spawned;
    uint64_t wakeups, spin_ns; /* the schedulers' (sv_node_stats) */
} adm__pstats;
void adm__proc_stats(adm__pstats *st);
/* RabbitMQ's message_stats object: counts and {"rate": ...} details. */
json_t *adm__message_stats(uint64_t publish, uint64_t deliver, uint64_t ack, adm__rates r);
/* The supervisors of the tree, depth first (api_tree.c; for metrics too). */
typedef struct adm__sup {
    char path[256]; /* "plexus/routing/queues" */
    sv_sup_info info;
} adm__sup;
int adm__walk_sups(adm_req *q, adm__sup **out, size_t *n);

/* api_queues.c: every queue's record and counters, sorted by name. */
typedef struct adm__qsnap {
    char *name;
    rt_qargs args;
    sv_pid pid;
    uint64_t ready, unacked, consumers, bytes, published, delivered, acked;
    uint64_t damage; /* damaged places its log had at the last recovery */
    adm__rates rates;
} adm__qsnap;
int adm__queue_snapshot(adm_req *q, adm__qsnap **out, size_t *n);
void adm__queue_snapshot_free(adm__qsnap *v, size_t n);

/* api_messages.c: a POST .../publish body (and the routing key) as a
 * message; -EINVAL with a reason in err. */
int adm__build_message(const json_t *body, const char *key, rt_msg **out, char *err, size_t len);

/* http.c: the server and its process. */
extern const sv_server_ops adm__http_ops;
void adm__reap_all(void);

/* The handlers (api_*.c, metrics.c, static.c). */
void adm__overview(adm_req *q, adm_resp *r);
void adm__nodes(adm_req *q, adm_resp *r);
void adm__supervisors(adm_req *q, adm_resp *r);
void adm__queues_list(adm_req *q, adm_resp *r);
void adm__queue_get(adm_req *q, adm_resp *r);
void adm__queue_put(adm_req *q, adm_resp *r);
void adm__queue_delete(adm_req *q, adm_resp *r);
void adm__queue_purge(adm_req *q, adm_resp *r);
void adm__queue_fetch(adm_req *q, adm_resp *r); /* POST .../get */
void adm__exchanges_list(adm_req *q, adm_resp *r);
void adm__exchange_get(adm_req *q, adm_resp *r);
void adm__exchange_put(adm_req *q, adm_resp *r);
void adm__exchange_delete(adm_req *q, adm_resp *r);
void adm__exchange_publish(adm_req *q, adm_resp *r);
void adm__bindings_list(adm_req *q, adm_resp *r);
void adm__bindings_between(adm_req *q, adm_resp *r); /* GET /api/bindings/V/e/X/q/Q */
void adm__binding_post(adm_req *q, adm_resp *r);
void adm__binding_get(adm_req *q, adm_resp *r);
void adm__binding_delete(adm_req *q, adm_resp *r);
void adm__connections_list(adm_req *q, adm_resp *r);
void adm__connection_get(adm_req *q, adm_resp *r);
void adm__connection_delete(adm_req *q, adm_resp *r);
/* api_channels.c */
void adm__channels_list(adm_req *q, adm_resp *r);
void adm__connection_channels(adm_req *q, adm_resp *r);
void adm__consumers_list(adm_req *q, adm_resp *r);
void adm__users_list(adm_req *q, adm_resp *r);
void adm__user_get(adm_req *q, adm_resp *r);
void adm__user_put(adm_req *q, adm_resp *r);
void adm__user_delete(adm_req *q, adm_resp *r);
void adm__whoami(adm_req *q, adm_resp *r);
void adm__vhosts_list(adm_req *q, adm_resp *r);
void adm__vhost_get(adm_req *q, adm_resp *r);
void adm__vhost_put(adm_req *q, adm_resp *r);
void adm__vhost_delete(adm_req *q, adm_resp *r);
/* api_permissions.c */
void adm__permissions_list(adm_req *q, adm_resp *r); /* all, of a vhost, or of a user */
void adm__permission_get(adm_req *q, adm_resp *r);
void adm__permission_put(adm_req *q, adm_resp *r);
void adm__permission_delete(adm_req *q, adm_resp *r);
void adm__definitions_get(adm_req *q, adm_resp *r); /* also /definitions/%2F: that vhost's only */
void adm__definitions_post(adm_req *q, adm_resp *r);
void adm__metrics(adm_req *q, adm_resp *r);
/* Static files of the dashboard: true (and r filled) if path is one. */
bool adm__static(const char *path, adm_resp *r);

#endif
