/* plexusctl.c — the command-line tool for a running broker, through its
 * admin API: list, declare, delete, purge, publish, get, export/import
 * definitions, permissions, status and the supervision tree.
 *
 * Every command is one or two API calls; the tool keeps no state and knows
 * nothing the API does not say, so what it shows is what a script calling
 * the API would see (--json prints exactly that).
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "ctl/ctl.h"

#ifndef PLEXUS_VERSION
#define PLEXUS_VERSION "unknown"
#endif

#define MAX_ARGS 32

typedef struct opts {
    const char *durable, *type, *key, *reason, *password, *tags, *vhost;
    bool auto_delete, internal, to_exchange, if_empty, if_unused, ack;
    int count;
    const char *args[MAX_ARGS]; /* K=V */
    int nargs;
} opts;

static void usage(FILE *f)
{
    fprintf(f, "Usage: plexusctl [--url URL] [--user USER:PASSWORD] [--json] COMMAND ...\n"
               "Talks to a running Plexus broker through its admin API.\n"
               "\n"
               "  status                                  the node at a glance\n"
               "  list queues|exchanges|bindings|connections|users|permissions\n"
               "  declare queue NAME [--durable true|false] [--auto-delete] [--arg K=V]...\n"
               "  declare exchange NAME --type direct|fanout|topic|headers [--durable true|false] [--auto-delete]\n"
               "  declare binding SOURCE DEST [--key KEY] [--to-exchange] [--arg K=V]...\n"
               "  declare user NAME --password PASSWORD [--tags administrator|management|none]\n"
               "  delete queue NAME [--if-empty] [--if-unused]\n"
               "  delete exchange NAME [--if-unused]\n"
               "  delete binding SOURCE DEST PROPERTIES_KEY [--to-exchange]\n"
               "  delete connection NAME [--reason TEXT]\n"
               "  delete user NAME\n"
               "  purge queue NAME\n"
               "  publish EXCHANGE ROUTING_KEY PAYLOAD    (\"\" is the default exchange; PAYLOAD - reads stdin)\n"
               "  get QUEUE [--count N] [--ack]           (without --ack the messages stay in the queue)\n"
               "  export [FILE]                           definitions as JSON (to stdout without FILE)\n"
               "  import FILE                             definitions from FILE (- for stdin)\n"
               "  tree                                    the supervision tree\n"
               "  set-permissions USER CONFIGURE WRITE READ [--vhost VHOST]   (regular expressions, as RabbitMQ's)\n"
               "  clear-permissions USER [--vhost VHOST]\n"
               "  list-permissions [--vhost VHOST]        who may do what in the vhost (default /)\n"
               "\n"
               "Options:\n"
               "  --url URL        the admin API (default $PLEXUS_URL or http://127.0.0.1:15672)\n"
               "  --user U:P       credentials (default $PLEXUS_USER or guest:guest)\n"
               "  --json           print the API's JSON instead of tables\n"
               "  --cacert FILE    https URLs: trust the CA certificates in FILE (default $PLEXUS_CACERT,\n"
               "                   else the system's)\n"
               "  --insecure       https URLs: do not check the broker's certificate\n"
               "  --help, --version\n"
               "\n"
               "Exit status: 0 done; 1 the broker refused or failed; 2 bad command line;\n"
               "3 no broker answered at the URL; 4 wrong credentials or not an administrator.\n");
}

static int bad_usage(const char *fmt, const char *arg)
{
    fprintf(stderr, "plexusctl: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, " (plexusctl --help)\n");
    return CTL_USAGE;
}

/* "/api/queues/%2F/NAME..." with each name escaped. */
static char *path_of(const char *fmt, const char *a, const char *b, const char *c)
{
    char *ea = a ? ctl_escape(a) : NULL, *eb = b ? ctl_escape(b) : NULL, *ec = c ? ctl_escape(c) : NULL;
    char *out = malloc(4096);
    if (out)
        snprintf(out, 4096, fmt, ea ? ea : "", eb ? eb : "", ec ? ec : "");
    free(ea);
    free(eb);
    free(ec);
    return out;
}

/* Runs one call and prints its answer (JSON, a table, or nothing). */
static int run(const ctl *c, const char *method, char *path, json_t *body, const char *header, const char *const *cols,
               size_t ncols)
{
    json_t *out = NULL;
    int rc = path ? ctl_call(c, method, path, body, header, &out) : CTL_FAILED;
    free(path);
    json_decref(body);
    if (rc == CTL_OK && out) {
        if (c->json || !cols)
            ctl_print_json(out);
        else
            ctl_table(out, cols, ncols);
    }
    json_decref(out);
    return rc;
}

/* --arg K=V as a JSON object: integers as numbers, true/false as booleans. */
static json_t *arguments(const opts *o)
{
    json_t *a = json_object();
    for (int i = 0; i < o->nargs; i++) {
        const char *eq = strchr(o->args[i], '=');
        if (!eq)
            continue;
        char k[256];
        snprintf(k, sizeof k, "%.*s", (int)(eq - o->args[i]), o->args[i]);
        const char *v = eq + 1;
        char *end;
        long long n = strtoll(v, &end, 10);
        json_object_set_new(a, k,
                            *v && !*end           ? json_integer(n)
                            : !strcmp(v, "true")  ? json_true()
                            : !strcmp(v, "false") ? json_false()
                                                  : json_string(v));
    }
    return a;
}

static int declare(const ctl *c, const opts *o, int argc, char **argv)
{
    if (argc < 2)
        return bad_usage("declare what? %s", "queue NAME | exchange NAME | binding SOURCE DEST | user NAME");
    const char *what = argv[0];
    for (int i = 0; i < o->nargs; i++)
        if (!strchr(o->args[i], '='))
            return bad_usage("--arg %s: expected KEY=VALUE", o->args[i]);
    if (!strcmp(what, "queue")) {
        json_t *b = json_pack("{s:b, s:b, s:o}", "durable", !o->durable || strcmp(o->durable, "false"), "auto_delete",
                              o->auto_delete, "arguments", arguments(o));
        return run(c, "PUT", path_of("/api/queues/%%2F/%s", argv[1], NULL, NULL), b, NULL, NULL, 0);
    }
    if (!strcmp(what, "exchange")) {
        if (!o->type)
            return bad_usage("declare exchange needs %s", "--type direct|fanout|topic|headers");
        json_t *b =
            json_pack("{s:s, s:b, s:b, s:b}", "type", o->type, "durable", !o->durable || strcmp(o->durable, "false"),
                      "auto_delete", o->auto_delete, "internal", o->internal);
        return run(c, "PUT", path_of("/api/exchanges/%%2F/%s", argv[1], NULL, NULL), b, NULL, NULL, 0);
    }
    if (!strcmp(what, "binding")) {
        if (argc < 3)
            return bad_usage("declare binding needs %s", "SOURCE DEST");
        json_t *b = json_pack("{s:s, s:o}", "routing_key", o->key ? o->key : "", "arguments", arguments(o));
        const char *fmt = o->to_exchange ? "/api/bindings/%%2F/e/%s/e/%s" : "/api/bindings/%%2F/e/%s/q/%s";
        return run(c, "POST", path_of(fmt, argv[1], argv[2], NULL), b, NULL, NULL, 0);
    }
    if (!strcmp(what, "user")) {
        if (!o->password)
            return bad_usage("declare user needs %s", "--password PASSWORD");
        json_t *b = json_pack("{s:s, s:s}", "password", o->password, "tags", o->tags ? o->tags : "");
        return run(c, "PUT", path_of("/api/users/%s", argv[1], NULL, NULL), b, NULL, NULL, 0);
    }
    return bad_usage("cannot declare '%s'", what);
}

static int delete (const ctl *c, const opts *o, int argc, char **argv)
{
    if (argc < 2)
        return bad_usage("delete what? %s", "queue|exchange|binding|connection|user NAME");
    const char *what = argv[0];
    char query[64] = "";
    if (o->if_empty || o->if_unused)
        snprintf(query, sizeof query, "?if-empty=%s&if-unused=%s", o->if_empty ? "true" : "false",
                 o->if_unused ? "true" : "false");
    char fmt[128];
    if (!strcmp(what, "queue") || !strcmp(what, "exchange")) {
        snprintf(fmt, sizeof fmt, "/api/%ss/%%%%2F/%%s%s", what, query);
        return run(c, "DELETE", path_of(fmt, argv[1], NULL, NULL), NULL, NULL, NULL, 0);
    }
    if (!strcmp(what, "binding")) {
        if (argc < 4)
            return bad_usage("delete binding needs %s", "SOURCE DEST PROPERTIES_KEY (list bindings --json shows it)");
        const char *f = o->to_exchange ? "/api/bindings/%%2F/e/%s/e/%s/%s" : "/api/bindings/%%2F/e/%s/q/%s/%s";
        return run(c, "DELETE", path_of(f, argv[1], argv[2], argv[3]), NULL, NULL, NULL, 0);
    }
    if (!strcmp(what, "connection")) {
        char hdr[512];
        snprintf(hdr, sizeof hdr, "X-Reason: %s", o->reason ? o->reason : "closed by plexusctl");
        return run(c, "DELETE", path_of("/api/connections/%s", argv[1], NULL, NULL), NULL, hdr, NULL, 0);
    }
    if (!strcmp(what, "user"))
        return run(c, "DELETE", path_of("/api/users/%s", argv[1], NULL, NULL), NULL, NULL, NULL, 0);
    return bad_usage("cannot delete '%s'", what);
}

static int list(const ctl *c, int argc, char **argv)
{
    static const char *const queues[] = {
        "name",      "messages_ready", "messages_unacknowledged",
        "consumers", "durable",        "message_stats.publish_details.rate|publish_rate"};
    static const char *const exchanges[] = {"name", "type", "durable", "auto_delete", "internal"};
    static const char *const bindings[] = {"source", "destination", "destination_type", "routing_key",
                                           "properties_key"};
    static const char *const conns[] = {"name", "user", "state", "links", "recv_cnt", "send_cnt"};
    static const char *const users[] = {"name", "tags"};
    static const char *const perms[] = {"user", "vhost", "configure", "write", "read"};
    static const struct {
        const char *what;
        const char *const *cols;
        size_t n;
    } kinds[] = {{"queues", queues, 6},     {"exchanges", exchanges, 5}, {"bindings", bindings, 5},
                 {"connections", conns, 6}, {"users", users, 2},         {"permissions", perms, 5}};
    if (argc < 1)
        return bad_usage("list what? %s", "queues|exchanges|bindings|connections|users|permissions");
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
        if (!strcmp(argv[0], kinds[i].what)) {
            char path[64];
            snprintf(path, sizeof path, "/api/%s", kinds[i].what);
            return run(c, "GET", strdup(path), NULL, NULL, kinds[i].cols, kinds[i].n);
        }
    return bad_usage("cannot list '%s'", argv[0]);
}

/* set-permissions USER CONFIGURE WRITE READ, clear-permissions USER,
 * list-permissions: rabbitmqctl's commands of those names, on one vhost
 * (--vhost, default "/"). */
static int permissions(const ctl *c, const opts *o, const char *cmd, int argc, char **argv)
{
    static const char *const cols[] = {"user", "configure", "write", "read"};
    const char *vhost = o->vhost ? o->vhost : "/";
    if (!strcmp(cmd, "list-permissions"))
        return run(c, "GET", path_of("/api/vhosts/%s/permissions", vhost, NULL, NULL), NULL, NULL, cols, 4);
    if (!strcmp(cmd, "clear-permissions")) {
        if (argc != 1)
            return bad_usage("clear-permissions needs %s", "USER");
        return run(c, "DELETE", path_of("/api/permissions/%s/%s", vhost, argv[0], NULL), NULL, NULL, NULL, 0);
    }
    if (argc != 4)
        return bad_usage("set-permissions needs %s", "USER CONFIGURE WRITE READ (\"\" for none, \".*\" for all)");
    json_t *b = json_pack("{s:s, s:s, s:s}", "configure", argv[1], "write", argv[2], "read", argv[3]);
    return run(c, "PUT", path_of("/api/permissions/%s/%s", vhost, argv[0], NULL), b, NULL, NULL, 0);
}

static char *read_all(FILE *f, size_t *len)
{
    size_t cap = 65536, n = 0;
    char *p = malloc(cap);
    for (size_t got; p && (got = fread(p + n, 1, cap - n - 1, f)) > 0;) {
        n += got;
        if (n + 1 == cap) {
            char *np = realloc(p, cap *= 2);
            if (!np) {
                free(p);
                return NULL;
            }
            p = np;
        }
    }
    if (p)
        p[n] = '\0';
    *len = n;
    return p;
}

static int publish(const ctl *c, int argc, char **argv)
{
    if (argc < 3)
        return bad_usage("publish needs %s", "EXCHANGE ROUTING_KEY PAYLOAD");
    size_t len = strlen(argv[2]);
    char *payload = strcmp(argv[2], "-") ? strdup(argv[2]) : read_all(stdin, &len);
    json_t *b = payload ? json_pack("{s:s, s:s%, s:s}", "routing_key", argv[1], "payload", payload, len,
                                    "payload_encoding", "string")
                        : NULL;
    free(payload);
    if (!b) {
        fprintf(stderr, "plexusctl: the payload must be UTF-8 text\n");
        return CTL_USAGE;
    }
    const char *x = argv[0][0] ? argv[0] : "amq.default";
    json_t *out = NULL;
    char *path = path_of("/api/exchanges/%%2F/%s/publish", x, NULL, NULL);
    int rc = path ? ctl_call(c, "POST", path, b, NULL, &out) : CTL_FAILED;
    free(path);
    json_decref(b);
    if (rc == CTL_OK) {
        if (c->json)
            ctl_print_json(out);
        else if (!json_is_true(json_object_get(out, "routed")))
            printf("not routed: no queue is bound for that key\n");
    }
    json_decref(out);
    return rc;
}

static int get(const ctl *c, const opts *o, int argc, char **argv)
{
    static const char *const cols[] = {"payload", "payload_bytes", "redelivered", "routing_key", "message_count"};
    if (argc < 1)
        return bad_usage("get needs %s", "QUEUE");
    json_t *b = json_pack("{s:i, s:s, s:s}", "count", o->count, "ackmode",
                          o->ack ? "ack_requeue_false" : "ack_requeue_true", "encoding", "auto");
    return run(c, "POST", path_of("/api/queues/%%2F/%s/get", argv[0], NULL, NULL), b, NULL, cols, 5);
}

static int export(const ctl *c, int argc, char **argv)
{
    json_t *out = NULL;
    int rc = ctl_call(c, "GET", "/api/definitions", NULL, NULL, &out);
    if (rc != CTL_OK)
        return rc;
    FILE *f = argc > 0 && strcmp(argv[0], "-") ? fopen(argv[0], "w") : stdout;
    if (!f) {
        perror(argv[0]);
        json_decref(out);
        return CTL_FAILED;
    }
    rc = json_dumpf(out, f, JSON_INDENT(2)) == 0 && fputc('\n', f) != EOF ? CTL_OK : CTL_FAILED;
    if (f != stdout && fclose(f) != 0)
        rc = CTL_FAILED;
    json_decref(out);
    return rc;
}

static int import(const ctl *c, int argc, char **argv)
{
    if (argc < 1)
        return bad_usage("import needs %s", "FILE (- for stdin)");
    json_error_t je;
    json_t *doc = strcmp(argv[0], "-") ? json_load_file(argv[0], 0, &je) : json_loadf(stdin, 0, &je);
    if (!doc) {
        fprintf(stderr, "plexusctl: %s: %s (line %d)\n", argv[0], je.text, je.line);
        return CTL_USAGE;
    }
    return run(c, "POST", strdup("/api/definitions"), doc, NULL, NULL, 0);
}

static int status(const ctl *c)
{
    json_t *out = NULL;
    int rc = ctl_call(c, "GET", "/api/overview", NULL, NULL, &out);
    if (rc == CTL_OK) {
        if (c->json)
            ctl_print_json(out);
        else
            ctl_fields(out, "");
    }
    json_decref(out);
    return rc;
}

static int tree(const ctl *c)
{
    json_t *out = NULL;
    int rc = ctl_call(c, "GET", "/api/supervisors", NULL, NULL, &out);
    if (rc == CTL_OK) {
        if (c->json)
            ctl_print_json(out);
        else
            ctl_tree(out);
    }
    json_decref(out);
    return rc;
}

int main(int argc, char **argv)
{
    enum {
        O_URL = 256,
        O_USER,
        O_JSON,
        O_DURABLE,
        O_AUTO_DELETE,
        O_INTERNAL,
        O_TYPE,
        O_ARG,
        O_KEY,
        O_TO_X,
        O_IF_EMPTY,
        O_IF_UNUSED,
        O_REASON,
        O_COUNT,
        O_ACK,
        O_PASSWORD,
        O_TAGS,
        O_VHOST,
        O_VERSION,
        O_CACERT,
        O_INSECURE
    };
    static const struct option longopts[] = {{"url", required_argument, NULL, O_URL},
                                             {"user", required_argument, NULL, O_USER},
                                             {"json", no_argument, NULL, O_JSON},
                                             {"cacert", required_argument, NULL, O_CACERT},
                                             {"insecure", no_argument, NULL, O_INSECURE},
                                             {"durable", required_argument, NULL, O_DURABLE},
                                             {"auto-delete", no_argument, NULL, O_AUTO_DELETE},
                                             {"internal", no_argument, NULL, O_INTERNAL},
                                             {"type", required_argument, NULL, O_TYPE},
                                             {"arg", required_argument, NULL, O_ARG},
                                             {"key", required_argument, NULL, O_KEY},
                                             {"to-exchange", no_argument, NULL, O_TO_X},
                                             {"if-empty", no_argument, NULL, O_IF_EMPTY},
                                             {"if-unused", no_argument, NULL, O_IF_UNUSED},
                                             {"reason", required_argument, NULL, O_REASON},
                                             {"count", required_argument, NULL, O_COUNT},
                                             {"ack", no_argument, NULL, O_ACK},
                                             {"password", required_argument, NULL, O_PASSWORD},
                                             {"tags", required_argument, NULL, O_TAGS},
                                             {"vhost", required_argument, NULL, O_VHOST},
                                             {"help", no_argument, NULL, 'h'},
                                             {"version", no_argument, NULL, O_VERSION},
                                             {NULL, 0, NULL, 0}};
    ctl c = {getenv("PLEXUS_URL"), getenv("PLEXUS_USER"), false, getenv("PLEXUS_CACERT"), false};
    opts o = {.count = 1};
    opterr = 0;
    /* GNU getopt moves the command words after the options, wherever the
     * options were written. */
    for (int ch; (ch = getopt_long(argc, argv, "h", longopts, NULL)) != -1;) {
        switch (ch) {
        case O_URL: c.url = optarg; break;
        case O_USER: c.user = optarg; break;
        case O_JSON: c.json = true; break;
        case O_CACERT: c.cacert = optarg; break;
        case O_INSECURE: c.insecure = true; break;
        case O_DURABLE: o.durable = optarg; break;
        case O_AUTO_DELETE: o.auto_delete = true; break;
        case O_INTERNAL: o.internal = true; break;
        case O_TYPE: o.type = optarg; break;
        case O_ARG:
            if (o.nargs == MAX_ARGS)
                return bad_usage("at most %s --arg", "32");
            o.args[o.nargs++] = optarg;
            break;
        case O_KEY: o.key = optarg; break;
        case O_TO_X: o.to_exchange = true; break;
        case O_IF_EMPTY: o.if_empty = true; break;
        case O_IF_UNUSED: o.if_unused = true; break;
        case O_REASON: o.reason = optarg; break;
        case O_COUNT:
            o.count = atoi(optarg);
            if (o.count < 1)
                return bad_usage("--count %s: expected a positive number", optarg);
            break;
        case O_ACK: o.ack = true; break;
        case O_PASSWORD: o.password = optarg; break;
        case O_TAGS: o.tags = optarg; break;
        case O_VHOST: o.vhost = optarg; break;
        case 'h': usage(stdout); return CTL_OK;
        case O_VERSION: printf("plexusctl %s\n", PLEXUS_VERSION); return CTL_OK;
        default: return bad_usage("unknown option %s", argv[optind - 1]);
        }
    }
    if (!c.url)
        c.url = "http://127.0.0.1:15672";
    if (!c.user)
        c.user = "guest:guest";
    if (o.durable && strcmp(o.durable, "true") && strcmp(o.durable, "false"))
        return bad_usage("--durable %s: expected true or false", o.durable);
    int n = argc - optind;
    char **args = argv + optind;
    if (n < 1) {
        usage(stderr);
        return CTL_USAGE;
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const char *cmd = args[0];
    int rc;
    if (!strcmp(cmd, "status"))
        rc = status(&c);
    else if (!strcmp(cmd, "list"))
        rc = list(&c, n - 1, args + 1);
    else if (!strcmp(cmd, "declare"))
        rc = declare(&c, &o, n - 1, args + 1);
    else if (!strcmp(cmd, "delete"))
        rc = delete (&c, &o, n - 1, args + 1);
    else if (!strcmp(cmd, "purge") && n == 3 && !strcmp(args[1], "queue"))
        rc = run(&c, "DELETE", path_of("/api/queues/%%2F/%s/contents", args[2], NULL, NULL), NULL, NULL, NULL, 0);
    else if (!strcmp(cmd, "publish"))
        rc = publish(&c, n - 1, args + 1);
    else if (!strcmp(cmd, "get"))
        rc = get(&c, &o, n - 1, args + 1);
    else if (!strcmp(cmd, "export"))
        rc = export(&c, n - 1, args + 1);
    else if (!strcmp(cmd, "import"))
        rc = import(&c, n - 1, args + 1);
    else if (!strcmp(cmd, "tree"))
        rc = tree(&c);
    else if (!strcmp(cmd, "set-permissions") || !strcmp(cmd, "clear-permissions") || !strcmp(cmd, "list-permissions"))
        rc = permissions(&c, &o, cmd, n - 1, args + 1);
    else
        rc = bad_usage("unknown command '%s'", cmd);
    curl_global_cleanup();
    return rc;
}
