/* cli.c — the command line of bin/plexus.
 *
 * Two passes over argv: the first finds --config (and --help, --version),
 * the second applies the other flags over the file, so a flag always wins
 * over the file, whatever their order.
 */
#include <errno.h>
#include <stdarg.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "amqp/amqp.h"
#include "broker/brk.h"

enum {
    OPT_CHECK = 255,
    OPT_LISTEN = 256,
    OPT_LISTEN_TLS,
    OPT_ADMIN,
    OPT_DATA_DIR,
    OPT_LOG_LEVEL,
    OPT_SCHEDULERS,
    OPT_NODE_NAME
};

static const struct option options[] = {
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, 'V'},
    {"config", required_argument, NULL, 'c'},
    {"check-config", no_argument, NULL, OPT_CHECK},
    {"listen", required_argument, NULL, OPT_LISTEN},
    {"listen-tls", required_argument, NULL, OPT_LISTEN_TLS},
    {"admin", required_argument, NULL, OPT_ADMIN},
    {"data-dir", required_argument, NULL, OPT_DATA_DIR},
    {"log-level", required_argument, NULL, OPT_LOG_LEVEL},
    {"schedulers", required_argument, NULL, OPT_SCHEDULERS},
    {"node-name", required_argument, NULL, OPT_NODE_NAME},
    {NULL, 0, NULL, 0},
};

static void usage(void)
{
    printf("Usage: plexus [OPTION]...\n"
           "Plexus " PLEXUS_VERSION " — an AMQP 1.0 message broker built from supervised actors.\n"
           "With no options it runs on its embedded defaults.\n"
           "\n"
           "  -c, --config FILE      read settings from FILE (see conf/plexus.conf)\n"
           "      --check-config     check the configuration and flags, then exit\n"
           "      --listen HOST:PORT AMQP listener (default 127.0.0.1:5672; port 0 picks a free one)\n"
           "      --listen-tls HOST:PORT  AMQPS (TLS) listener; needs tls.cert_file and tls.key_file\n"
           "                         (default with a certificate: amqp.listen's host, port 5671)\n"
           "      --admin HOST:PORT  HTTP admin API (default 127.0.0.1:15672; HTTPS with admin.cert_file)\n"
           "      --data-dir DIR     where durable state lives (default ./var/plexus)\n"
           "      --log-level LEVEL  error, warning, info (default) or debug\n"
           "      --schedulers N     scheduler threads (default: one per core)\n"
           "      --node-name NAME   this node's name (default plexus@localhost)\n"
           "  -h, --help             show this help and exit\n"
           "  -V, --version          show the version and exit\n"
           "\n"
           "Flags override the configuration file. SIGINT or SIGTERM shut the broker down cleanly.\n");
}

static brk_cli_action error(char *err, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static brk_cli_action error(char *err, size_t len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, len, fmt, ap);
    va_end(ap);
    return BRK_CLI_ERROR;
}

static int copy_str(char *dst, size_t size, const char *v)
{
    if (!*v || strlen(v) >= size)
        return -1;
    memcpy(dst, v, strlen(v) + 1);
    return 0;
}

brk_cli_action brk_cli_parse(int argc, char **argv, brk_config *c, char *err, size_t len)
{
    const char *config_path = NULL;
    bool check_only = false;
    opterr = 0; /* our own one-line messages */

    for (optind = 0;;) {
        int o = getopt_long(argc, argv, ":hVc:", options, NULL);
        if (o == -1)
            break;
        switch (o) {
        case 'h': usage(); return BRK_CLI_EXIT_OK;
        case 'V':
            /* The allocator too: the ASan build's keeps freed memory, which
             * tests of memory use must know. */
            printf("plexus " PLEXUS_VERSION "\nallocator: %s\n", sv_allocator());
            return BRK_CLI_EXIT_OK;
        case 'c': config_path = optarg; break;
        case OPT_CHECK: check_only = true; break;
        case ':': return error(err, len, "option '%s' needs a value (see plexus --help)", argv[optind - 1]);
        case '?': return error(err, len, "unknown option '%s' (see plexus --help)", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return error(err, len, "unexpected argument '%s' (see plexus --help)", argv[optind]);

    brk_config_init(c);
    if (config_path && brk_config_load(c, config_path, err, len) < 0)
        return BRK_CLI_ERROR;

    for (optind = 0;;) {
        int o = getopt_long(argc, argv, ":hVc:", options, NULL);
        if (o == -1)
            break;
        char host[BRK_ADDR_MAX];
        int port;
        char *end;
        switch (o) {
        case OPT_LISTEN:
        case OPT_LISTEN_TLS:
        case OPT_ADMIN:
            if (amqp_hostport_parse(optarg, host, sizeof host, &port) < 0)
                return error(err, len, "%s: expected HOST:PORT (e.g. 127.0.0.1:5672), got '%s'",
                             o == OPT_LISTEN  ? "--listen"
                             : o == OPT_ADMIN ? "--admin"
                                              : "--listen-tls",
                             optarg);
            copy_str(o == OPT_LISTEN  ? c->amqp.listen
                     : o == OPT_ADMIN ? c->admin_listen
                                      : c->amqp.tls.listen,
                     BRK_ADDR_MAX, optarg);
            break;
        case OPT_DATA_DIR:
            if (copy_str(c->data_dir, sizeof c->data_dir, optarg) < 0)
                return error(err, len, "--data-dir: expected a directory path, got '%s'", optarg);
            break;
        case OPT_LOG_LEVEL:
            if (sv_log_parse_level(optarg, &c->log_level) < 0)
                return error(err, len, "--log-level: expected error, warning, info or debug, got '%s'", optarg);
            break;
        case OPT_SCHEDULERS: {
            errno = 0;
            long n = strtol(optarg, &end, 10);
            if (!*optarg || *end || errno || n < 1 || n > 256)
                return error(err, len, "--schedulers: expected a number from 1 to 256, got '%s'", optarg);
            c->schedulers = (int)n;
            break;
        }
        case OPT_NODE_NAME:
            if (copy_str(c->node_name, sizeof c->node_name, optarg) < 0)
                return error(err, len, "--node-name: expected a name, got '%s'", optarg);
            break;
        }
    }
    /* Certificates are read now: a bad one stops the broker here, with
     * the setting named, not at every client's handshake. */
    if (amqp_tls_prepare(&c->amqp, err, len) < 0)
        return BRK_CLI_ERROR;
    if (c->admin_cert_file[0] || c->admin_key_file[0]) {
        if (!c->admin_cert_file[0] || !c->admin_key_file[0])
            return error(err, len, "admin.cert_file and admin.key_file go together: %s is not set",
                         c->admin_cert_file[0] ? "admin.key_file" : "admin.cert_file");
        if (amqp_tls_check_pair("admin", c->admin_cert_file, c->admin_key_file, err, len) < 0)
            return BRK_CLI_ERROR;
    }
    if (check_only) {
        amqp_tls_release(&c->amqp);
        printf("plexus: configuration %s is valid\n", config_path ? config_path : "(embedded defaults)");
        return BRK_CLI_EXIT_OK;
    }
    return BRK_CLI_RUN;
}
