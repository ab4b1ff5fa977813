/* ab_main.c — amqp_bench, an AMQP 1.0 benchmark client for Plexus and any
 * other AMQP 1.0 broker, plus a direct client-to-client run with no broker
 * at all: the command line (options, usage, which runs `--mode` means) and
 * main. tests/bench/README.md has the details; ab.h says how it is shaped.
 *
 * What it measures:
 *   throughput  N messages of S bytes from P producers to C consumers (each a
 *               connection of its own) through one queue, at-least-once
 *               (unsettled sends, only accepted ones count) or at-most-once
 *               (presettled); msgs/s, MB/s, end-to-end latency p50/p99, and
 *               an exactly-once check of every (producer, seq).
 *   fanout      one producer to an exchange address, K subscribers attached
 *               to the same address, each getting its own copy; deliveries/s
 *               and an exactly-once check per subscriber.
 *   reqrep      a server consumes a request queue and answers each request's
 *               reply-to through an anonymous-relay sender; a client with a
 *               dynamic (or named) reply source sends one request at a time;
 *               round trip p50/p99.
 *   --direct    no broker: the bench listens itself and its own receivers
 *               accept the links, so the figures are the bound this machine
 *               and qpid-proton put on any broker.
 *   fill        one producer puts N stamped messages into a queue nobody
 *               consumes and waits until all are accepted (or, at-most-once,
 *               sent and the broker has read them); msgs/s and MB/s.
 *   drain       one consumer takes exactly N messages out of that queue, in
 *               a later run of this program, granting credit for no more
 *               than N; checks every seq 0..N-1 arrives once and in order,
 *               under the fill run's nonce (taken from the first message).
 *   idle        N connections that do SASL and open, nothing else, opened a
 *               bounded number at a time; `READY connections=N` once all
 *               are open, held for --hold seconds, then closed cleanly. For
 *               measuring the broker's memory per connection from outside.
 */
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/bench/ab.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: amqp_bench [options]\n"
            "Benchmark an AMQP 1.0 broker (or, with --direct, two proton peers with no broker).\n"
            "\n"
            "  --url URL           broker, amqp[s]://[user:password@]host[:port] (default amqp://127.0.0.1:5672;\n"
            "                      amqps: TLS, the broker's certificate taken unchecked);\n"
            "                      with a user SASL PLAIN is used, otherwise ANONYMOUS\n"
            "  --mode M            throughput | fanout | reqrep | all (default all); or fill | drain | idle,\n"
            "                      which are never part of `all` (see below)\n"
            "  --count N           messages (throughput/fanout/fill/drain), round trips (reqrep) or\n"
            "                      connections (idle); default by size: throughput and fill 200000 (fewer\n"
            "                      above 6 KiB, 20000 at 64 KiB), fanout a quarter of that, reqrep 10000,\n"
            "                      idle 1000; drain has no default\n"
            "  --size S            message body bytes, at least %d (default 256; `all` runs 256 and 65536)\n"
            "  --qos Q             alo (at-least-once: unsettled, only accepted count) | amo (presettled)\n"
            "                      (default alo; `all` runs both for 256 B)\n"
            "  --producers P       throughput producers, each its own connection (default 1)\n"
            "  --consumers C       throughput consumers, each its own connection (default 1)\n"
            "  --subscribers K     fanout subscribers (default 4)\n"
            "  --credit W          receiver credit window in messages, topped up at half (default: 512 KiB\n"
            "                      worth, between 8 and 1000: 1000 for 256 B, 8 for 64 KiB)\n"
            "  --window U          most unsettled at-least-once sends per producer (default 2 x credit)\n"
            "  --direct            no broker: listen on --listen and let the producers connect to us\n"
            "  --listen HOST:PORT  address for --direct (default 127.0.0.1:0, any free port)\n"
            "  --addr-style S      plexus (/queues/Q, /exchanges/X/K, dynamic reply source; default),\n"
            "                      rabbitmq310 (/queue/Q, /exchange/X/K, named reply queue),\n"
            "                      plain (bare queue names; no exchanges)\n"
            "  --queue NAME        queue name (default amqp-bench; reqrep uses NAME-rpc)\n"
            "  --exchange NAME     fanout exchange (default amq.fanout)\n"
            "  --key KEY           fanout routing key (default bench)\n"
            "  --reply-via V       anon (anonymous-relay sender, `to` = reply-to) | link (a sender per reply\n"
            "                      address); default anon for plexus, link otherwise\n"
            "  --reply-source S    dynamic | named; default dynamic for plexus and --direct, named otherwise\n"
            "  --threads T         proactor worker threads (default: online cores)\n"
            "  --max-frame B       AMQP max frame size to offer (default: proton's, unlimited)\n"
            "  --hold SEC          idle: keep the connections open SEC seconds once all are (default 5)\n"
            "  --deadline SEC      give up on a run after SEC seconds (default 120; idle: plus --hold)\n"
            "  --idle SEC          give up when nothing arrives for SEC after the producers finish (default 5)\n"
            "  --connect-timeout SEC  give up when no AMQP open arrives within SEC (default 10)\n"
            "  --label NAME        target name in the output (default: direct or the address style)\n"
            "  --inject F          test the exactly-once check: producer 0 sends its middle message twice\n"
            "                      (dup) or not at all (skip); the run must then FAIL\n"
            "  --verbose           progress on stderr\n"
            "  --persistent        send persistent messages (header durable=true; throughput, fanout, fill)\n"
            "  --help              this text\n"
            "\n"
            "A queue's backlog and a broker's connections, to watch its memory from outside:\n"
            "  --mode fill --queue NAME --count N --size S [--qos alo|amo] [--credit W]\n"
            "                      one producer puts N messages into the queue (no consumer) and waits until\n"
            "                      all are accepted (alo) or sent and read by the broker (amo); the broker\n"
            "                      grants the credit, --credit W only sets the default --window (2 x W)\n"
            "  --mode drain --queue NAME --count N [--credit W] [--size S]\n"
            "                      one consumer accepts exactly N messages of an earlier fill (credit never\n"
            "                      beyond N); every seq 0..N-1 must come once and in order, all with the\n"
            "                      first message's run nonce (and --size, if given)\n"
            "  --mode idle --count N [--hold SEC]\n"
            "                      N connections, SASL and open only, at most %d opening at once; prints\n"
            "                      `READY connections=N` once all are open, holds them SEC seconds, closes\n"
            "                      them; one proactor thread unless --threads; needs N + 64 open files\n"
            "\n"
            "Each run prints one line per figure and a final `RESULT key=value ...` line.\n"
            "Exit status: 0 all runs ok, 1 a run failed (error, timeout, exactly-once violation), 2 bad usage.\n",
            STAMP_SIZE, IDLE_OPENING);
}

static int parse_u64(const char *s, uint64_t *out, uint64_t min, uint64_t max)
{
    char *end;
    if (!s || !*s || *s == '-')
        return -1;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

static int parse_seconds(const char *s, double *out, bool zero_ok)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v > 0 || (zero_ok && v == 0)) || v > 86400)
        return -1;
    *out = v;
    return 0;
}

static int hexval(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

/* Percent-decode n bytes of s into out (user names and passwords in URLs). */
static int pct_decode(const char *s, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (ch == '%') {
            if (i + 2 >= n || hexval(s[i + 1]) < 0 || hexval(s[i + 2]) < 0)
                return -1;
            ch = (char)(hexval(s[i + 1]) * 16 + hexval(s[i + 2]));
            i += 2;
        }
        if (o + 1 >= cap)
            return -1;
        out[o++] = ch;
    }
    out[o] = 0;
    return 0;
}

/* amqp://[user[:password]@]host[:port][/...] ; host may be [v6]. */
static int parse_url(options *o, const char *url)
{
    snprintf(o->url, sizeof o->url, "%s", url);
    const char *p = url;
    o->tls = false;
    if (!strncmp(p, "amqp://", 7))
        p += 7;
    else if (!strncmp(p, "amqps://", 8)) {
        p += 8;
        o->tls = true;
    } else if (strstr(p, "://")) {
        fprintf(stderr, "amqp_bench: --url must start with amqp://\n");
        return -1;
    }
    const char *end = p + strcspn(p, "/?#");
    const char *at = NULL;
    for (const char *q = p; q < end; q++)
        if (*q == '@')
            at = q;
    o->have_user = false;
    if (at) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        size_t ul = colon ? (size_t)(colon - p) : (size_t)(at - p);
        if (pct_decode(p, ul, o->user, sizeof o->user) < 0 ||
            (colon && pct_decode(colon + 1, (size_t)(at - colon - 1), o->password, sizeof o->password) < 0)) {
            fprintf(stderr, "amqp_bench: bad user or password in --url\n");
            return -1;
        }
        if (!colon)
            o->password[0] = 0;
        o->have_user = o->user[0] != 0;
        p = at + 1;
    }
    const char *hs = p, *he, *port = NULL;
    if (*p == '[') {
        const char *rb = memchr(p, ']', (size_t)(end - p));
        if (!rb) {
            fprintf(stderr, "amqp_bench: bad IPv6 host in --url\n");
            return -1;
        }
        hs = p + 1;
        he = rb;
        if (rb + 1 < end && rb[1] == ':')
            port = rb + 2;
        else if (rb + 1 != end) {
            fprintf(stderr, "amqp_bench: bad --url after the host\n");
            return -1;
        }
    } else {
        const char *colon = memchr(p, ':', (size_t)(end - p));
        he = colon ? colon : end;
        if (colon)
            port = colon + 1;
    }
    if (he == hs || (size_t)(he - hs) >= sizeof o->host) {
        fprintf(stderr, "amqp_bench: --url has no host\n");
        return -1;
    }
    memcpy(o->host, hs, (size_t)(he - hs));
    o->host[he - hs] = 0;
    if (port) {
        uint64_t v;
        char tmp[32];
        size_t pl = (size_t)(end - port);
        if (pl == 0 || pl >= sizeof tmp) {
            fprintf(stderr, "amqp_bench: bad port in --url\n");
            return -1;
        }
        memcpy(tmp, port, pl);
        tmp[pl] = 0;
        if (parse_u64(tmp, &v, 1, 65535)) {
            fprintf(stderr, "amqp_bench: bad port '%s' in --url\n", tmp);
            return -1;
        }
        snprintf(o->port, sizeof o->port, "%s", tmp);
    } else {
        snprintf(o->port, sizeof o->port, o->tls ? "5671" : "5672");
    }
    return 0;
}

static int parse_hostport(const char *s, char *host, size_t hn, char *port, size_t pn)
{
    const char *colon = strrchr(s, ':');
    if (!colon)
        return -1;
    const char *hs = s, *he = colon;
    if (*s == '[' && colon > s && colon[-1] == ']') {
        hs = s + 1;
        he = colon - 1;
    }
    if ((size_t)(he - hs) >= hn)
        return -1;
    memcpy(host, hs, (size_t)(he - hs));
    host[he - hs] = 0;
    uint64_t v;
    if (parse_u64(colon + 1, &v, 0, 65535))
        return -1;
    snprintf(port, pn, "%s", colon + 1);
    return 0;
}

static uint64_t default_count(bench_mode m, size_t size)
{
    if (m == MODE_REQREP)
        return size <= 4096 ? 10000 : 2000;
    /* ~1.3 GB of payload at most, so 64 KiB runs stay a few seconds */
    uint64_t n = 1310720000ull / size;
    if (n > 200000)
        n = 200000;
    if (n < 1000)
        n = 1000;
    if (m == MODE_FANOUT)
        n /= 4;
    return n;
}

enum {
    OPT_URL = 256,
    OPT_MODE,
    OPT_COUNT,
    OPT_SIZE,
    OPT_QOS,
    OPT_PRODUCERS,
    OPT_CONSUMERS,
    OPT_SUBSCRIBERS,
    OPT_DIRECT,
    OPT_LISTEN,
    OPT_STYLE,
    OPT_CREDIT,
    OPT_WINDOW,
    OPT_DEADLINE,
    OPT_IDLE,
    OPT_CONNECT,
    OPT_THREADS,
    OPT_QUEUE,
    OPT_EXCHANGE,
    OPT_KEY,
    OPT_LABEL,
    OPT_REPLY_VIA,
    OPT_REPLY_SOURCE,
    OPT_MAX_FRAME,
    OPT_INJECT,
    OPT_VERBOSE,
    OPT_PERSISTENT,
    OPT_HOLD,
    OPT_HELP
};

static int parse_args(options *o, int argc, char **argv)
{
    static const struct option longopts[] = {
        {"url", required_argument, NULL, OPT_URL},
        {"mode", required_argument, NULL, OPT_MODE},
        {"count", required_argument, NULL, OPT_COUNT},
        {"size", required_argument, NULL, OPT_SIZE},
        {"qos", required_argument, NULL, OPT_QOS},
        {"producers", required_argument, NULL, OPT_PRODUCERS},
        {"consumers", required_argument, NULL, OPT_CONSUMERS},
        {"subscribers", required_argument, NULL, OPT_SUBSCRIBERS},
        {"direct", no_argument, NULL, OPT_DIRECT},
        {"listen", required_argument, NULL, OPT_LISTEN},
        {"addr-style", required_argument, NULL, OPT_STYLE},
        {"credit", required_argument, NULL, OPT_CREDIT},
        {"window", required_argument, NULL, OPT_WINDOW},
        {"deadline", required_argument, NULL, OPT_DEADLINE},
        {"idle", required_argument, NULL, OPT_IDLE},
        {"connect-timeout", required_argument, NULL, OPT_CONNECT},
        {"threads", required_argument, NULL, OPT_THREADS},
        {"queue", required_argument, NULL, OPT_QUEUE},
        {"exchange", required_argument, NULL, OPT_EXCHANGE},
        {"key", required_argument, NULL, OPT_KEY},
        {"label", required_argument, NULL, OPT_LABEL},
        {"reply-via", required_argument, NULL, OPT_REPLY_VIA},
        {"reply-source", required_argument, NULL, OPT_REPLY_SOURCE},
        {"max-frame", required_argument, NULL, OPT_MAX_FRAME},
        {"inject", required_argument, NULL, OPT_INJECT},
        {"verbose", no_argument, NULL, OPT_VERBOSE},
        {"persistent", no_argument, NULL, OPT_PERSISTENT},
        {"hold", required_argument, NULL, OPT_HOLD},
        {"help", no_argument, NULL, OPT_HELP},
        {NULL, 0, NULL, 0},
    };
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    memset(o, 0, sizeof *o);
    o->mode_all = true;
    o->size = 256;
    o->qos = QOS_ALO;
    o->producers = o->consumers = 1;
    o->subscribers = 4;
    o->deadline_s = 120;
    o->idle_s = 5;
    o->connect_s = 10;
    o->hold_s = 5;
    o->threads = cores > 0 && cores < 64 ? (int)cores : 2;
    o->queue = "amqp-bench";
    o->exchange = "amq.fanout";
    o->key = "bench";
    snprintf(o->listen_host, sizeof o->listen_host, "127.0.0.1");
    snprintf(o->listen_port, sizeof o->listen_port, "0");
    if (parse_url(o, "amqp://127.0.0.1:5672") < 0)
        return 2;

    opterr = 0;
    int ch, li = -1;
    uint64_t v;
    /* the leading ':' makes a missing value ':' rather than '?' */
    while ((li = -1, ch = getopt_long(argc, argv, ":", longopts, &li)) != -1) {
        const char *a = optarg;
        char optname[64];
        snprintf(optname, sizeof optname, "--%s", li >= 0 ? longopts[li].name : "?");
        switch (ch) {
        case OPT_URL:
            if (parse_url(o, a) < 0)
                return 2;
            break;
        case OPT_MODE:
            o->mode_all = false;
            if (!strcmp(a, "throughput"))
                o->mode = MODE_THROUGHPUT;
            else if (!strcmp(a, "fanout"))
                o->mode = MODE_FANOUT;
            else if (!strcmp(a, "reqrep"))
                o->mode = MODE_REQREP;
            else if (!strcmp(a, "fill"))
                o->mode = MODE_FILL;
            else if (!strcmp(a, "drain"))
                o->mode = MODE_DRAIN;
            else if (!strcmp(a, "idle"))
                o->mode = MODE_IDLE;
            else if (!strcmp(a, "all"))
                o->mode_all = true;
            else
                goto bad;
            break;
        case OPT_COUNT:
            if (parse_u64(a, &v, 1, 1000000000ull))
                goto bad;
            o->count = v;
            o->count_set = true;
            break;
        case OPT_SIZE:
            if (parse_u64(a, &v, STAMP_SIZE, 256u << 20)) {
                fprintf(stderr, "amqp_bench: --size must be %d..%u bytes (the body carries a %d-byte stamp)\n",
                        STAMP_SIZE, 256u << 20, STAMP_SIZE);
                return 2;
            }
            o->size = (size_t)v;
            o->size_set = true;
            break;
        case OPT_QOS:
            if (!strcmp(a, "alo"))
                o->qos = QOS_ALO;
            else if (!strcmp(a, "amo"))
                o->qos = QOS_AMO;
            else
                goto bad;
            o->qos_set = true;
            break;
        case OPT_PRODUCERS:
            if (parse_u64(a, &v, 1, 1000))
                goto bad;
            o->producers = (int)v;
            break;
        case OPT_CONSUMERS:
            if (parse_u64(a, &v, 1, 1000))
                goto bad;
            o->consumers = (int)v;
            break;
        case OPT_SUBSCRIBERS:
            if (parse_u64(a, &v, 1, 1000))
                goto bad;
            o->subscribers = (int)v;
            break;
        case OPT_DIRECT: o->direct = true; break;
        case OPT_LISTEN:
            if (parse_hostport(a, o->listen_host, sizeof o->listen_host, o->listen_port, sizeof o->listen_port))
                goto bad;
            break;
        case OPT_STYLE:
            if (!strcmp(a, "plexus"))
                o->style = STYLE_PLEXUS;
            else if (!strcmp(a, "rabbitmq310"))
                o->style = STYLE_RABBITMQ310;
            else if (!strcmp(a, "plain"))
                o->style = STYLE_PLAIN;
            else
                goto bad;
            break;
        case OPT_CREDIT:
            if (parse_u64(a, &v, 1, 1000000))
                goto bad;
            o->credit = (uint32_t)v;
            break;
        case OPT_WINDOW:
            if (parse_u64(a, &v, 1, 10000000))
                goto bad;
            o->window = (uint32_t)v;
            break;
        case OPT_DEADLINE:
            if (parse_seconds(a, &o->deadline_s, false))
                goto bad;
            break;
        case OPT_IDLE:
            if (parse_seconds(a, &o->idle_s, false))
                goto bad;
            break;
        case OPT_CONNECT:
            if (parse_seconds(a, &o->connect_s, false))
                goto bad;
            break;
        case OPT_HOLD:
            if (parse_seconds(a, &o->hold_s, true))
                goto bad;
            break;
        case OPT_THREADS:
            if (parse_u64(a, &v, 1, 64))
                goto bad;
            o->threads = (int)v;
            o->threads_set = true;
            break;
        case OPT_QUEUE:
            if (!*a)
                goto bad;
            o->queue = a;
            break;
        case OPT_EXCHANGE:
            if (!*a)
                goto bad;
            o->exchange = a;
            break;
        case OPT_KEY: o->key = a; break;
        case OPT_LABEL:
            if (!*a || strchr(a, ' '))
                goto bad;
            o->label = a;
            break;
        case OPT_REPLY_VIA:
            if (!strcmp(a, "anon"))
                o->reply = REPLY_ANON;
            else if (!strcmp(a, "link"))
                o->reply = REPLY_LINK;
            else
                goto bad;
            break;
        case OPT_REPLY_SOURCE:
            if (!strcmp(a, "dynamic"))
                o->rsource = RSRC_DYNAMIC;
            else if (!strcmp(a, "named"))
                o->rsource = RSRC_NAMED;
            else
                goto bad;
            break;
        case OPT_MAX_FRAME:
            if (parse_u64(a, &v, 512, UINT32_MAX))
                goto bad;
            o->max_frame = (uint32_t)v;
            break;
        case OPT_INJECT:
            if (!strcmp(a, "dup"))
                o->inject = INJECT_DUP;
            else if (!strcmp(a, "skip"))
                o->inject = INJECT_SKIP;
            else
                goto bad;
            break;
        case OPT_VERBOSE: o->verbose = true; break;
        case OPT_PERSISTENT: o->persistent = true; break;
        case OPT_HELP: usage(stdout); return 1;
        case ':': fprintf(stderr, "amqp_bench: %s needs a value (see --help)\n", argv[optind - 1]); return 2;
        default: fprintf(stderr, "amqp_bench: unknown option '%s' (see --help)\n", argv[optind - 1]); return 2;
        }
        continue;
    bad:
        fprintf(stderr, "amqp_bench: bad value '%s' for %s (see --help)\n", a, optname);
        return 2;
    }
    if (optind < argc) {
        fprintf(stderr, "amqp_bench: unexpected argument '%s' (see --help)\n", argv[optind]);
        return 2;
    }
    if (o->direct && o->have_user)
        fprintf(stderr, "amqp_bench: note: --direct ignores the user in --url (the peers use ANONYMOUS)\n");
    return 0;
}

typedef struct planned {
    bench_mode mode;
    size_t size;
    qos_level qos;
} planned;

int main(int argc, char **argv)
{
    options o;
    int rc = parse_args(&o, argc, argv);
    if (rc == 1)
        return 0; /* --help */
    if (rc)
        return 2;

    bool broker_only = !o.mode_all && (o.mode == MODE_FILL || o.mode == MODE_DRAIN || o.mode == MODE_IDLE);
    if (broker_only && o.direct) {
        fprintf(stderr, "amqp_bench: --mode %s measures a broker; it has no --direct form\n", ab_mode_name(o.mode));
        return 2;
    }
    if (!o.mode_all && o.mode == MODE_DRAIN) {
        if (!o.count_set) {
            fprintf(stderr, "amqp_bench: --mode drain needs --count: how many messages the fill put there\n");
            return 2;
        }
        if (o.qos_set && o.qos == QOS_AMO) {
            fprintf(stderr, "amqp_bench: --mode drain accepts every message; --qos amo does not apply\n");
            return 2;
        }
    }
    if (!o.mode_all && o.mode == MODE_FANOUT) {
        if (o.direct) {
            fprintf(stderr, "amqp_bench: fanout needs a broker's exchange; it has no --direct form\n");
            return 2;
        }
        if (o.style == STYLE_PLAIN) {
            fprintf(stderr, "amqp_bench: fanout needs exchange addresses; --addr-style plain has none\n");
            return 2;
        }
    }

    /* `all`: the standard figures, unless --size/--qos pin them */
    planned plan[8];
    int np = 0;
    if (o.mode_all) {
        if (o.size_set || o.qos_set) {
            plan[np++] = (planned){MODE_THROUGHPUT, o.size, o.qos};
        } else {
            plan[np++] = (planned){MODE_THROUGHPUT, 256, QOS_ALO};
            plan[np++] = (planned){MODE_THROUGHPUT, 256, QOS_AMO};
            plan[np++] = (planned){MODE_THROUGHPUT, 65536, QOS_ALO};
        }
        if (!o.direct && o.style != STYLE_PLAIN)
            plan[np++] = (planned){MODE_FANOUT, o.size, o.qos};
        plan[np++] = (planned){MODE_REQREP, o.size, o.qos};
    } else {
        plan[np++] = (planned){o.mode, o.size, o.qos};
    }

    int failed = 0;
    for (int i = 0; i < np; i++) {
        uint64_t n = o.count_set                 ? o.count
                     : plan[i].mode == MODE_IDLE ? 1000
                                                 : default_count(plan[i].mode, plan[i].size);
        run_result r = ab_run_one(&o, plan[i].mode, plan[i].size, plan[i].qos, n);
        if (!r.ok)
            failed++;
        if (r.conn_failed) {
            fprintf(stderr, "amqp_bench: cannot reach %s; skipping the remaining runs\n",
                    o.direct ? "the direct listener" : o.url);
            break;
        }
        if (i + 1 < np)
            printf("\n");
    }
    if (o.mode_all && (o.direct || o.style == STYLE_PLAIN))
        printf("(fanout skipped: %s)\n",
               o.direct ? "it needs a broker's exchange" : "plain addresses have no exchanges");
    return failed ? 1 : 0;
}
