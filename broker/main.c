/* main.c — bin/plexus: configure, start the node and its tree, wait for a
 * signal, shut down in order.
 *
 * Signals are blocked in every thread and taken by one small thread with
 * sigwait, which turns them into messages for the main thread's inbox; the
 * main thread also hears from the top supervisor if it ever gives up. So
 * both ways a node can end arrive through one mailbox. Under systemd
 * (Type=notify, dist/plexus.service.in) it says READY=1 once every listener
 * is up, and STOPPING=1 when it begins to shut down.
 */
#include <errno.h>
#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include <systemd/sd-daemon.h>
#include <unistd.h>

#include "admin/adm.h"
#include "broker/brk.h"

enum { TAG_SIGNAL = 0x504c5801 };

typedef struct sig_ctx {
    sigset_t set;
    sv_pid main;
} sig_ctx;

static void *signal_thread(void *arg)
{
    sig_ctx *ctx = arg;
    for (;;) {
        int sig;
        if (sigwait(&ctx->set, &sig) != 0)
            continue;
        /* The inbox is bounded; a signal storm must not be lost entirely,
         * but one pending shutdown is enough. */
        sv_send_tag(ctx->main, TAG_SIGNAL, &sig, sizeof sig);
    }
    return NULL;
}

static int make_dirs(const char *path)
{
    char buf[PATH_MAX];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0750) < 0 && errno != EEXIST)
            return -errno;
        *p = '/';
    }
    if (mkdir(buf, 0750) < 0 && errno != EEXIST)
        return -errno;
    return 0;
}

/* Message bodies come and go by the hundred thousand: keep freed memory
 * instead of handing it back to the kernel and faulting it in again
 * (page faults were 4% of a 64 KiB benchmark's profile). Memory still
 * returns to the system above 256 MiB free. This tunes glibc's malloc, in
 * builds without jemalloc (see the Makefile); jemalloc ignores it. */
static void tune_malloc(void)
{
    mallopt(M_MMAP_THRESHOLD, 16 << 20);
    mallopt(M_TRIM_THRESHOLD, 256 << 20);
}

/* jemalloc's settings, read when it starts (before main; MALLOC_CONF in the
 * environment still overrides them). Pages freed after a burst (10 000
 * connections closed, a backlog drained) must go back to the kernel even
 * when the broker then goes quiet: jemalloc purges as a side effect of
 * allocating, so an idle broker held ~240 MB after 10 000 connections had
 * closed, against 13 MB before. A background thread purges on a timer
 * instead; dirty pages are kept 5 s (the default is 10 s) so a burst that
 * follows soon reuses them without page faults, and are then released at
 * once (muzzy 0: MADV_FREE'd pages would still count in RSS until the
 * kernel is short of memory). Measured: back within 2x of the baseline
 * about 10 s after a burst (tests/integration/40-memory-return.py). Other
 * allocators ignore the symbol. */
const char *malloc_conf = "background_thread:true,dirty_decay_ms:5000,muzzy_decay_ms:0";

/* Every connection is a socket: take all the descriptors we may. */
static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

/* One broker per data directory: two would write the same logs. The lock
 * (flock on DATA/.lock) goes with the process, however it ends; the file
 * names the holder for the error message. Returns 0, or -1 after saying why. */
static int lock_data_dir(const char *dir)
{
    char path[4096 + 8];
    snprintf(path, sizeof path, "%s/.lock", dir);
    int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0) {
        fprintf(stderr, "plexus: data directory %s: cannot open %s: %s\n", dir, path, strerror(errno));
        return -1;
    }
    if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
        int e = errno;
        char holder[32] = "";
        ssize_t n = read(fd, holder, sizeof holder - 1);
        holder[n > 0 ? n : 0] = '\0';
        holder[strcspn(holder, "\n")] = '\0';
        if (e == EWOULDBLOCK)
            fprintf(
                stderr,
                "plexus: data directory %s is in use by another broker%s%s%s; give each broker its own --data-dir\n",
                dir, holder[0] ? " (pid " : "", holder, holder[0] ? ")" : "");
        else
            fprintf(stderr, "plexus: data directory %s: cannot lock %s: %s\n", dir, path, strerror(e));
        close(fd);
        return -1;
    }
    char pid[32];
    int len = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
    if (ftruncate(fd, 0) < 0 || pwrite(fd, pid, (size_t)len, 0) != len)
        sv_log(SV_LOG_WARNING, "data directory %s: cannot write the pid into %s: %s", dir, path, strerror(errno));
    return 0; /* fd stays open (and locked) until the process ends */
}

/* Tells systemd (or whoever set NOTIFY_SOCKET) how the broker stands;
 * libsystemd's sd_notify does nothing when NOTIFY_SOCKET is unset, so the
 * broker runs the same without systemd. A failure to send is only logged:
 * the service manager's own timeout then reports it. */
static void notify(const char *state)
{
    int rc = sd_notify(0, state);
    if (rc < 0)
        sv_log(SV_LOG_WARNING, "plexus: cannot notify the service manager (%s): %s", state, strerror(-rc));
}

static brk_config cfg; /* outlives the node: processes keep pointers into it */

int main(int argc, char **argv)
{
    char err[512];
    switch (brk_cli_parse(argc, argv, &cfg, err, sizeof err)) {
    case BRK_CLI_EXIT_OK: return 0;
    case BRK_CLI_ERROR: fprintf(stderr, "plexus: %s\n", err); return 2;
    case BRK_CLI_RUN: break;
    }
    sv_log_set_level(cfg.log_level);

    raise_fd_limit();
    tune_malloc();
    brk_users_set(cfg.users, cfg.nusers, cfg.anonymous_user);
    int rc = make_dirs(cfg.data_dir);
    if (rc < 0) {
        fprintf(stderr, "plexus: data directory %s: %s\n", cfg.data_dir, strerror(-rc));
        return 1;
    }
    if (lock_data_dir(cfg.data_dir) < 0)
        return 1;
    if ((rc = brk_users_load(cfg.data_dir, cfg.anonymous_user, err, sizeof err)) < 0) {
        fprintf(stderr, "plexus: %s\n", err);
        return 1;
    }
    if (rc == 1)
        sv_log(SV_LOG_INFO,
               "users from %s/users.json (changed at run time; they take the place of the configured ones)",
               cfg.data_dir);

    /* Before any thread exists, so every thread inherits the mask. */
    sig_ctx sig;
    sigemptyset(&sig.set);
    sigaddset(&sig.set, SIGINT);
    sigaddset(&sig.set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sig.set, NULL);
    signal(SIGPIPE, SIG_IGN);
    signal(SIGXFSZ, SIG_IGN); /* a file-size limit makes writes fail (EFBIG), not the broker die */

    sv_node_opts no = {.schedulers = cfg.schedulers, .mailbox_cap = cfg.mailbox_size, .spin_us = cfg.busy_wait_us};
    if ((rc = sv_node_start(&no)) < 0) {
        fprintf(stderr, "plexus: cannot start the runtime: %s\n", strerror(-rc));
        return 1;
    }
    sv_proc *inbox = sv_inbox_open();
    sig.main = sv_self(inbox);
    pthread_t st;
    pthread_create(&st, NULL, signal_thread, &sig);

    /* The admin API is a layer above the broker: main, not the broker's
     * tree, names it. Temporary: if it gives up, messages keep flowing. */
    const sv_child_spec admin = {.id = "admin",
                                 .start = adm_start_fn,
                                 .arg = &cfg,
                                 .restart = SV_TEMPORARY,
                                 .shutdown_ms = SV_SHUTDOWN_INFINITY,
                                 .is_supervisor = true};
    sv_pid root;
    if ((rc = brk_tree_start(inbox, &cfg, &admin, 1, &root)) < 0) {
        char rb[96];
        sv_log(SV_LOG_ERROR, "plexus: the supervision tree did not start: %s", sv_reason_str(rc, rb, sizeof rb));
        goto out;
    }
    char tls_port[40] = "";
    if (amqp_listen_tls_port())
        snprintf(tls_port, sizeof tls_port, ", amqps on port %d", amqp_listen_tls_port());
    sv_log(SV_LOG_INFO, "plexus %s node %s started: amqp on port %d%s, admin on port %d, %d schedulers, data in %s",
           PLEXUS_VERSION, cfg.node_name, amqp_listen_port(), tls_port, adm_listen_port(), sv_node_schedulers(),
           cfg.data_dir);
    /* brk_tree_start returned once every child had started, the AMQP
     * listener and the admin API included, each bound in its init: clients
     * can connect from here on, and not before. */
    notify("READY=1");

    bool stopping = false;
    for (;;) {
        sv_msg *m = sv_recv(inbox, -1, NULL, NULL);
        if (!m)
            continue;
        if (m->kind == SV_MSG_EXIT && sv_pid_eq(m->from, root)) {
            char rb[96];
            if (stopping) {
                sv_log(SV_LOG_INFO, "plexus: stopped");
            } else {
                sv_log(SV_LOG_ERROR, "plexus: the top supervisor ended (%s); stopping the node",
                       sv_reason_str(m->status, rb, sizeof rb));
                notify("STOPPING=1");
                rc = -ECHILD;
            }
            sv_msg_free(m);
            break;
        }
        if (m->tag == TAG_SIGNAL && m->len == sizeof(int)) {
            int s = *SV_MSG_AS(m, int);
            if (stopping) {
                sv_log(SV_LOG_WARNING, "plexus: second %s, stopping at once", strsignal(s));
                sv_msg_free(m);
                rc = -EINTR;
                break;
            }
            sv_log(SV_LOG_INFO, "plexus: %s, shutting down", strsignal(s));
            stopping = true;
            notify("STOPPING=1");
            sv_exit(inbox, root, SV_SHUTDOWN);
        }
        sv_msg_free(m);
    }
out:
    pthread_cancel(st);
    pthread_join(st, NULL);
    adm_cleanup(); /* HTTP requests still in flight talk to processes: before the node stops */
    sv_inbox_close(inbox);
    sv_node_stop();
    rt_cleanup();
    brk_users_free();
    amqp_tls_release(&cfg.amqp);
    return rc < 0 ? 1 : 0;
}
