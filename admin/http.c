/* http.c — the HTTP server (libmicrohttpd) and the process that owns it.
 *
 * The server runs a small pool of its own threads (admin.threads) with
 * epoll; each thread opens an inbox the first time it serves a request,
 * so handlers can call processes, and closes it when the thread ends.
 * Every request is bounded: connections (admin.max_connections), idle
 * time (admin.timeout) and body size (admin.max_body: a declared length
 * over it is refused with 413 before the body is read, a chunked body as
 * soon as it grows past it).
 *
 * Stopping must not block a scheduler: an HTTP thread may be waiting on a
 * process of that very scheduler. So terminate only quiesces the server
 * (the port is free at once for a restarted process) and hands it to a
 * reaper thread, which waits for requests in flight and frees it;
 * adm_cleanup joins the reapers before the node goes away.
 *
 * With admin.cert_file and admin.key_file the server speaks HTTPS only
 * (libmicrohttpd's TLS, GnuTLS in Debian's build), at tls.min_version or
 * newer, as RabbitMQ's management listener does with its own ssl settings.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "admin/adm_internal.h"

typedef struct server {
    struct MHD_Daemon *d;
    const brk_config *cfg;
    atomic_bool stopping;     /* no more held refusals: the reaper resumes those there are */
    char *tls_cert, *tls_key; /* PEM, when the API serves HTTPS; freed after the daemon */
} server;

/* One request's state across the handler's calls (headers, body chunks, end). */
typedef struct request {
    char *body;
    size_t len, cap;
    bool too_large;
    bool held;      /* its failed login's 401 waits (the connection is suspended) */
    bool www_auth;  /* ... and it gets the challenge header */
    bool had_login; /* ... and it had given a user */
} request;

static atomic_int bound_port;

int adm_listen_port(void) { return atomic_load(&bound_port); }

/* ------------------------------------------------------- thread inboxes */

#define ADM_NICE 19

static pthread_key_t inbox_key;
static pthread_once_t inbox_once = PTHREAD_ONCE_INIT;

static void close_inbox(void *p) { sv_inbox_close(p); }
static void make_key(void) { pthread_key_create(&inbox_key, close_inbox); }

static sv_proc *thread_inbox(void)
{
    pthread_once(&inbox_once, make_key);
    sv_proc *p = pthread_getspecific(inbox_key);
    if (!p && (p = sv_inbox_open())) {
        pthread_setspecific(inbox_key, p);
        /* The API yields to message flow: where the cores are busy, an
         * HTTP thread gets a small share of them (nice 19), so a
         * dashboard or a scraper hardly slows the broker; where they are
         * not, it runs at full speed. Measured (tests/bench/admin_load.py,
         * 1 000 queues, wrk on GET /api/queues): message rate 74 % of
         * alone at nice 0, 91 % at nice 10, 96 % at nice 19, which still
         * serves 70 full listings a second. Linux gives each thread its
         * own nice value. */
        setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), ADM_NICE);
    }
    return p;
}

/* --------------------------------------------------------------- replies */

static enum MHD_Result send_resp(struct MHD_Connection *c, adm_resp *r, bool www_auth)
{
    struct MHD_Response *resp;
    if (r->json) {
        char *text = json_dumps(r->json, JSON_COMPACT | JSON_ENCODE_ANY);
        json_decref(r->json);
        r->json = NULL;
        if (!text)
            return MHD_NO;
        resp = MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
        if (!resp)
            free(text);
        r->type = "application/json";
    } else if (r->text) {
        resp = MHD_create_response_from_buffer(r->text_len, r->text, MHD_RESPMEM_MUST_FREE);
        if (!resp)
            free(r->text);
    } else {
        resp = MHD_create_response_from_buffer(r->static_text ? r->text_len : 0, (void *)r->static_text,
                                               MHD_RESPMEM_PERSISTENT);
    }
    if (!resp)
        return MHD_NO;
    if (r->type)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, r->type);
    MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL, "no-cache");
    if (r->allow[0] && r->status == MHD_HTTP_METHOD_NOT_ALLOWED)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, r->allow);
    if (www_auth)
        MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Basic realm=\"Plexus\"");
    enum MHD_Result ok = MHD_queue_response(c, (unsigned)r->status, resp);
    MHD_destroy_response(resp);
    return ok;
}

static enum MHD_Result send_error(struct MHD_Connection *c, int status, const char *error, const char *reason)
{
    adm_resp r = {0};
    adm__fail(&r, status, error, "%s", reason);
    return send_resp(c, &r, false);
}

/* ------------------------------------------------------- held refusals */

/* A failed login's 401 is answered late (brk_login_delay: longer with each
 * failure from the address), without holding an HTTP thread: the request
 * is suspended, and one thread resumes it when its time comes, at most
 * MAX_HELD at once (beyond that the connection is closed unanswered).
 * Stopping a server resumes its held requests first (libmicrohttpd may
 * not stop with suspended connections). */
#define MAX_HELD 256

typedef struct held {
    struct MHD_Connection *c;
    struct MHD_Daemon *d;
    uint64_t at; /* ms, sv_now_ms */
} held;

static pthread_mutex_t held_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t held_cond;
static held held_v[MAX_HELD];
static size_t nheld;
static pthread_t held_thread;
static bool held_running, held_stop;

static void *held_loop(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&held_lock);
    while (!held_stop) {
        uint64_t now = sv_now_ms(), next = 0;
        for (size_t i = 0; i < nheld;) {
            if (held_v[i].at <= now) {
                MHD_resume_connection(held_v[i].c); /* its handler runs again and sends the 401 */
                held_v[i] = held_v[--nheld];
            } else {
                next = !next || held_v[i].at < next ? held_v[i].at : next;
                i++;
            }
        }
        if (!next) {
            pthread_cond_wait(&held_cond, &held_lock);
            continue;
        }
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        uint64_t ns = (uint64_t)ts.tv_nsec + (next - now) * 1000000ull;
        ts.tv_sec += (time_t)(ns / 1000000000ull);
        ts.tv_nsec = (long)(ns % 1000000000ull);
        pthread_cond_timedwait(&held_cond, &held_lock, &ts);
    }
    pthread_mutex_unlock(&held_lock);
    return NULL;
}

/* Suspends c until ms from now: 0, or -ENOSPC / -EAGAIN (answer at once
 * or not at all). */
static int hold(server *s, struct MHD_Connection *c, uint32_t ms)
{
    int rc = 0;
    pthread_mutex_lock(&held_lock);
    if (atomic_load(&s->stopping)) { /* checked under the lock release_held takes after it is set */
        pthread_mutex_unlock(&held_lock);
        return -EAGAIN;
    }
    if (!held_running) {
        pthread_condattr_t a;
        pthread_condattr_init(&a);
        pthread_condattr_setclock(&a, CLOCK_MONOTONIC);
        pthread_cond_init(&held_cond, &a);
        pthread_condattr_destroy(&a);
        held_stop = false;
        if (pthread_create(&held_thread, NULL, held_loop, NULL) != 0)
            rc = -EAGAIN;
        else
            held_running = true;
    }
    if (rc == 0 && nheld == MAX_HELD)
        rc = -ENOSPC;
    if (rc == 0) {
        MHD_suspend_connection(c);
        /* The daemon as the connection knows it: s->d is written after
         * MHD_start_daemon returns, when requests may already be served. */
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_DAEMON);
        held_v[nheld++] = (held){c, ci ? ci->daemon : NULL, sv_now_ms() + ms};
        pthread_cond_signal(&held_cond);
    }
    pthread_mutex_unlock(&held_lock);
    return rc;
}

/* Resumes every request of d held now (its server is stopping). */
static void release_held(struct MHD_Daemon *d)
{
    pthread_mutex_lock(&held_lock);
    for (size_t i = 0; i < nheld;) {
        if (held_v[i].d == d) {
            MHD_resume_connection(held_v[i].c);
            held_v[i] = held_v[--nheld];
        } else {
            i++;
        }
    }
    pthread_mutex_unlock(&held_lock);
}

static void stop_held_thread(void)
{
    pthread_mutex_lock(&held_lock);
    bool running = held_running;
    held_stop = true;
    if (running)
        pthread_cond_signal(&held_cond);
    pthread_mutex_unlock(&held_lock);
    if (!running)
        return;
    pthread_join(held_thread, NULL);
    pthread_mutex_lock(&held_lock);
    held_running = false;
    pthread_cond_destroy(&held_cond);
    pthread_mutex_unlock(&held_lock);
}

/* ------------------------------------------------------------- requests */

static void login_failed(adm_resp *r, bool had_login)
{
    adm__fail(r, MHD_HTTP_UNAUTHORIZED, "not_authorised", "login failed%s",
              had_login ? " (wrong user or password, or this user may only log in from this host)" : "");
}

/* Logs in with basic auth; the tags go to q. Fills r on refusal. */
static bool authenticate(struct MHD_Connection *c, adm_req *q, adm_resp *r, bool *www_auth)
{
    char *pass = NULL;
    char *user = MHD_basic_auth_get_username_password(c, &pass);
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    int rc = user && pass ? brk_user_login(user, pass, ci ? ci->client_addr : NULL, q->tags, sizeof q->tags) : -EACCES;
    if (rc == 0)
        snprintf(q->user, sizeof q->user, "%s", user);
    else
        /* Browsers prompt on WWW-Authenticate; the dashboard sends its own
         * credentials and must get a plain 401 back, so only a request
         * without any gets the challenge. */
        *www_auth = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION) == NULL;
    if (rc < 0)
        login_failed(r, user != NULL);
    MHD_free(user);
    MHD_free(pass);
    return rc == 0;
}

static enum MHD_Result serve(server *s, struct MHD_Connection *c, const char *url, const char *method, request *x)
{
    adm_resp r = {0};
    bool www_auth = false, get = !strcmp(method, "GET") || !strcmp(method, "HEAD");
    bool api = !strncmp(url, "/api/", 5) || !strcmp(url, "/api");
    bool metrics = !strcmp(url, "/metrics");
    if (!api && !metrics) {
        if (get && adm__static(url, &r))
            return send_resp(c, &r, false);
        return send_error(c, MHD_HTTP_NOT_FOUND, "not_found", get ? "no such page" : "no such path");
    }
    adm_req q = {.conn = c, .method = method, .body = x->body ? x->body : "", .body_len = x->len, .cfg = s->cfg};
    if (!authenticate(c, &q, &r, &www_auth)) {
        const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        uint32_t ms = ci ? brk_login_delay(NULL, ci->client_addr) : 0;
        if (ms && MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION)) {
            json_decref(r.json);
            int rc = hold(s, c, ms);
            if (rc == -ENOSPC)
                return MHD_NO; /* too many held: closed unanswered */
            if (rc == 0) {
                x->held = true;
                x->www_auth = www_auth;
                x->had_login = true;
                return MHD_YES;
            }
            login_failed(&r, true);
        }
        return send_resp(c, &r, www_auth);
    }
    bool allowed = brk_tags_have(q.tags, "administrator") || (metrics && brk_tags_have(q.tags, "monitoring"));
    if (!allowed)
        return send_error(c, MHD_HTTP_FORBIDDEN, "not_authorised",
                          metrics ? "this needs the administrator or monitoring tag"
                                  : "this needs the administrator tag");
    if (!(q.inbox = thread_inbox()))
        return send_error(c, MHD_HTTP_SERVICE_UNAVAILABLE, "unavailable", "the broker is not running");
    if (metrics) {
        if (get)
            adm__metrics(&q, &r);
        else {
            snprintf(r.allow, sizeof r.allow, "GET");
            adm__fail(&r, MHD_HTTP_METHOD_NOT_ALLOWED, "method_not_allowed", "only GET is allowed here");
        }
        return send_resp(c, &r, false);
    }
    char path[2048];
    if (strlen(url) >= sizeof path)
        return send_error(c, MHD_HTTP_URI_TOO_LONG, "bad_request", "the path is too long");
    snprintf(path, sizeof path, "%s", url[4] ? url + 5 : "");
    if (adm__split_path(path, &q, &r))
        adm__route(&q, &r);
    return send_resp(c, &r, false);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                  const char *version, const char *upload, size_t *upload_size, void **state)
{
    (void)version;
    server *s = cls;
    request *x = *state;
    if (x && x->held) { /* resumed: the held refusal goes out now */
        adm_resp r = {0};
        x->held = false;
        login_failed(&r, x->had_login);
        return send_resp(c, &r, x->www_auth);
    }
    if (!x) { /* headers only, so far */
        if (!(x = calloc(1, sizeof *x)))
            return MHD_NO;
        *state = x;
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (cl && strtoull(cl, NULL, 10) > s->cfg->admin_max_body) {
            x->too_large = true;
            char why[96];
            snprintf(why, sizeof why, "the body is larger than %llu bytes (admin.max_body)",
                     (unsigned long long)s->cfg->admin_max_body);
            return send_error(c, MHD_HTTP_CONTENT_TOO_LARGE, "payload_too_large", why); /* before reading it */
        }
        return MHD_YES;
    }
    if (*upload_size) {
        size_t n = *upload_size;
        *upload_size = 0;
        if (x->too_large)
            return MHD_YES;
        if (x->len + n > s->cfg->admin_max_body) {
            x->too_large = true; /* chunked, without a length: found out as it comes */
            free(x->body);
            x->body = NULL;
            x->len = x->cap = 0;
            return MHD_YES;
        }
        if (x->len + n + 1 > x->cap) {
            size_t cap = x->cap ? x->cap : 4096;
            while (cap < x->len + n + 1)
                cap *= 2;
            char *nb = realloc(x->body, cap);
            if (!nb)
                return MHD_NO;
            x->body = nb;
            x->cap = cap;
        }
        memcpy(x->body + x->len, upload, n);
        x->len += n;
        x->body[x->len] = '\0';
        return MHD_YES;
    }
    if (x->too_large) {
        char why[96];
        snprintf(why, sizeof why, "the body is larger than %llu bytes (admin.max_body)",
                 (unsigned long long)s->cfg->admin_max_body);
        return send_error(c, MHD_HTTP_CONTENT_TOO_LARGE, "payload_too_large", why);
    }
    return serve(s, c, url, method, x);
}

static void on_completed(void *cls, struct MHD_Connection *c, void **state, enum MHD_RequestTerminationCode why)
{
    (void)cls;
    (void)c;
    (void)why;
    request *x = *state;
    if (x) {
        free(x->body);
        free(x);
    }
    *state = NULL;
}

/* The router decodes each path segment itself (see router.c). */
static size_t keep_escaped(void *cls, struct MHD_Connection *c, char *s)
{
    (void)cls;
    (void)c;
    return strlen(s);
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char line[512];
    vsnprintf(line, sizeof line, fmt, ap);
    size_t n = strlen(line);
    while (n && line[n - 1] == '\n')
        line[--n] = '\0';
    sv_log(SV_LOG_WARNING, "admin http: %s", line);
}

/* ---------------------------------------------------------------- reapers */

typedef struct reaper {
    pthread_t thread;
    struct reaper *next;
} reaper;

static pthread_mutex_t reapers_lock = PTHREAD_MUTEX_INITIALIZER;
static reaper *reapers;

static void server_free(server *s)
{
    free(s->tls_cert);
    free(s->tls_key);
    free(s);
}

static void *reap(void *arg)
{
    server *s = arg;
    release_held(s->d);
    MHD_stop_daemon(s->d); /* waits for the requests in flight, which use s */
    server_free(s);
    return NULL;
}

void adm__reap_all(void)
{
    pthread_mutex_lock(&reapers_lock);
    reaper *r = reapers;
    reapers = NULL;
    pthread_mutex_unlock(&reapers_lock);
    while (r) {
        reaper *next = r->next;
        pthread_join(r->thread, NULL);
        free(r);
        r = next;
    }
}

void adm_cleanup(void)
{
    adm__reap_all();
    stop_held_thread();
}

/* ---------------------------------------------------------------- process */

static int resolve(const char *listen, struct sockaddr_storage *ss)
{
    char host[BRK_ADDR_MAX];
    int port;
    if (amqp_hostport_parse(listen, host, sizeof host, &port) < 0)
        return -EINVAL;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE}, *ai;
    if (getaddrinfo(host, NULL, &hints, &ai) != 0)
        return -EADDRNOTAVAIL;
    memcpy(ss, ai->ai_addr, ai->ai_addrlen);
    freeaddrinfo(ai);
    if (ss->ss_family == AF_INET6)
        ((struct sockaddr_in6 *)ss)->sin6_port = htons((uint16_t)port);
    else
        ((struct sockaddr_in *)ss)->sin_port = htons((uint16_t)port);
    return 0;
}

/* A whole (small) file as a string, NULL with errno on failure. */
static char *read_file(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    char *buf = NULL;
    size_t len = 0, cap = 0;
    for (;;) {
        if (len + 4097 > cap) {
            char *nb = cap < (1u << 20) ? realloc(buf, cap = cap ? cap * 2 : 8192) : NULL;
            if (!nb) {
                free(buf);
                fclose(f);
                errno = cap >= (1u << 20) ? EFBIG : ENOMEM;
                return NULL;
            }
            buf = nb;
        }
        size_t n = fread(buf + len, 1, cap - len - 1, f);
        len += n;
        if (n == 0)
            break;
    }
    int err = ferror(f) ? EIO : 0;
    fclose(f);
    if (err) {
        free(buf);
        errno = err;
        return NULL;
    }
    buf[len] = '\0';
    return buf;
}

/* The certificate and key for HTTPS (the broker checked both at startup). */
static int load_tls(server *s, const brk_config *cfg)
{
    if (!MHD_is_feature_supported(MHD_FEATURE_TLS)) {
        sv_log(SV_LOG_ERROR, "admin: this libmicrohttpd has no TLS; cannot serve HTTPS");
        return -ENOTSUP;
    }
    const char *bad = cfg->admin_cert_file;
    if ((s->tls_cert = read_file(bad)) && (s->tls_key = read_file(bad = cfg->admin_key_file)))
        return 0;
    int rc = -errno;
    sv_log(SV_LOG_ERROR, "admin: cannot read %s: %s", bad, strerror(errno));
    return rc;
}

static int http_init(sv_proc *self, void *arg)
{
    const brk_config *cfg = arg;
    struct sockaddr_storage ss = {0};
    int rc = resolve(cfg->admin_listen, &ss);
    if (rc < 0) {
        sv_log(SV_LOG_ERROR, "admin: cannot listen on %s: %s", cfg->admin_listen, strerror(-rc));
        return rc;
    }
    server *s = calloc(1, sizeof *s);
    if (!s)
        return -ENOMEM;
    s->cfg = cfg;
    unsigned flags =
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ITC | MHD_USE_ERROR_LOG | MHD_ALLOW_SUSPEND_RESUME;
    if (ss.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    bool https = cfg->admin_cert_file[0] != '\0';
    if (https && (rc = load_tls(s, cfg)) < 0) {
        server_free(s);
        return rc;
    }
    /* GnuTLS's priority string: its defaults, without SSL 3.0 to TLS 1.1
     * (and TLS 1.2 when tls.min_version is 1.3). */
    const char *prio = !strcmp(cfg->amqp.tls.min_version, "1.3") ? "NORMAL:-VERS-ALL:+VERS-TLS1.3"
                                                                 : "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2";
    struct MHD_OptionItem tls_opts[] = {
        {MHD_OPTION_HTTPS_MEM_CERT, 0, s->tls_cert},
        {MHD_OPTION_HTTPS_MEM_KEY, 0, s->tls_key},
        {MHD_OPTION_HTTPS_PRIORITIES, 0, (void *)prio},
        {MHD_OPTION_END, 0, NULL},
    };
    if (https)
        flags |= MHD_USE_TLS;
    else
        tls_opts[0].option = MHD_OPTION_END;
    errno = 0;
    s->d = MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, s, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL, MHD_OPTION_SOCK_ADDR,
        (struct sockaddr *)&ss, MHD_OPTION_THREAD_POOL_SIZE, (unsigned)cfg->admin_threads, MHD_OPTION_CONNECTION_LIMIT,
        (unsigned)cfg->admin_max_connections, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)cfg->admin_timeout_s,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL, MHD_OPTION_UNESCAPE_CALLBACK, keep_escaped, NULL,
        MHD_OPTION_ARRAY, tls_opts, MHD_OPTION_END);
    if (!s->d) {
        rc = errno ? -errno : -EADDRINUSE;
        sv_log(SV_LOG_ERROR, "admin: cannot serve %s on %s: %s", https ? "HTTPS" : "HTTP", cfg->admin_listen,
               strerror(-rc));
        server_free(s);
        return rc;
    }
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
    atomic_store(&bound_port, di ? di->port : 0);
    sv_set_state(self, s);
    sv_trap_exit(self, true); /* so a shutdown runs terminate */
    sv_log(SV_LOG_INFO, "admin API on port %d%s", adm_listen_port(), https ? " (HTTPS)" : "");
    return 0;
}

static int http_info(sv_proc *self, sv_msg *m)
{
    if (m->kind == SV_MSG_EXIT)
        sv_stop(self, m->status); /* the supervisor asks: stop */
    return 0;
}

static void http_terminate(sv_proc *self, int reason)
{
    (void)reason;
    server *s = sv_state(self);
    if (!s)
        return;
    atomic_store(&bound_port, 0);
    atomic_store(&s->stopping, true);
    MHD_socket fd = MHD_quiesce_daemon(s->d); /* no new connections from here on */
    if (fd != MHD_INVALID_SOCKET)
        close(fd);
    reaper *r = malloc(sizeof *r);
    if (r && pthread_create(&r->thread, NULL, reap, s) == 0) {
        pthread_mutex_lock(&reapers_lock);
        r->next = reapers;
        reapers = r;
        pthread_mutex_unlock(&reapers_lock);
    } else {
        free(r);
        sv_log(SV_LOG_WARNING, "admin: no thread to stop the HTTP server; it is left running");
    }
}

const sv_server_ops adm__http_ops = {
    .name = "adm_http",
    .init = http_init,
    .handle_info = http_info,
    .terminate = http_terminate,
};
