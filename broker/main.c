/* main.c — bin/plexus: configure, start the node and its tree, wait for a
 * signal, shut down in order.
 *
 * Signals are blocked in every thread and taken by one small thread with
 * sigwait, which turns them into messages for the main thread's inbox; the
 * main thread also hears from the top supervisor if it ever gives up. So
 * both ways a node can end arrive through one mailbox.
 */
#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>

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

/* Every connection is a socket: take all the descriptors we may. */
static void raise_fd_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

static brk_config cfg; /* outlives the node: processes keep pointers into it */

int main(int argc, char **argv)
{
    char err[512];
    switch (brk_cli_parse(argc, argv, &cfg, err, sizeof err)) {
    case BRK_CLI_EXIT_OK:
        return 0;
    case BRK_CLI_ERROR:
        fprintf(stderr, "plexus: %s\n", err);
        return 2;
    case BRK_CLI_RUN:
        break;
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
    const sv_child_spec admin = {.id = "admin", .start = adm_start_fn, .arg = &cfg, .restart = SV_TEMPORARY,
                                 .shutdown_ms = SV_SHUTDOWN_INFINITY, .is_supervisor = true};
    sv_pid root;
    if ((rc = brk_tree_start(inbox, &cfg, &admin, 1, &root)) < 0) {
        char rb[96];
        sv_log(SV_LOG_ERROR, "plexus: the supervision tree did not start: %s", sv_reason_str(rc, rb, sizeof rb));
        goto out;
    }
    sv_log(SV_LOG_INFO, "plexus %s node %s started: amqp on port %d, admin on port %d, %d schedulers, data in %s",
           PLEXUS_VERSION, cfg.node_name, amqp_listen_port(), adm_listen_port(), sv_node_schedulers(), cfg.data_dir);

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
    return rc < 0 ? 1 : 0;
}
