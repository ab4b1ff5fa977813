/* test_rt_store.c — durable queues and their logs, through the queue
 * protocol: persistent messages come back after the routing subtree
 * restarts (as after a crash: nothing is flushed on the way down that was
 * not already), settled ones do not, redeliveries are marked, a torn tail
 * is cut, damage is skipped and counted (quickly, however crafted), a
 * killed queue process reloads its log, segments go once settled, a long
 * backlog stays mostly on disk, and a deleted queue's log goes with it.
 *
 * Each test runs a node with the routing subtree on a fresh data
 * directory, and plays publisher and consumer from its own inbox. */
#include <dirent.h>
#include <fcntl.h>
#include <proton/message.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "check_main.h"
#include "routing/rt_internal.h"
#include "routing_helpers.h"

static char dir[256];
static rt_config cfg;

static void setup(void)
{
    node_setup();
    snprintf(dir, sizeof dir, "/tmp/plexus-store-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(dir));
    cfg = (rt_config){.queue_max_batch = 256,
                      .data_dir = dir,
                      .store_threads = 2,
                      .segment_size = 64 << 10,
                      .queue_window = 64 << 10};
    routing_start(&cfg);
}

static void rm_rf(const char *path)
{
    DIR *d = opendir(path);
    if (!d) {
        unlink(path);
        return;
    }
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        char p[1024];
        snprintf(p, sizeof p, "%s/%s", path, e->d_name);
        rm_rf(p);
    }
    closedir(d);
    rmdir(path);
}

static void teardown(void)
{
    routing_stop();
    node_teardown();
    rm_rf(dir);
}

/* ------------------------------------------------------------- helpers */

static void declare(const char *name, bool durable)
{
    rt_req_queue r = {0};
    snprintf(r.name, sizeof r.name, "%s", name);
    rt_qargs_init(&r.args);
    r.args.durable = durable;
    ck_assert_int_eq(rt_call(T, RT_REQ_DECLARE_QUEUE, &r, sizeof r, NULL, 0, 5000), 0);
}

static sv_pid qpid(const char *name)
{
    for (int i = 0; i < 500; i++) {
        sv_pid p = queue_pid_now(name);
        if (!sv_pid_is_none(p))
            return p;
        usleep(10000);
    }
    ck_abort_msg("queue %s has no process", name);
    return SV_PID_NONE;
}

static rt_msg *message(int i, size_t size, bool durable)
{
    char *body = malloc(size);
    memset(body, 'x', size);
    int n = snprintf(body, size, "m%d", i);
    body[n] = '.';
    rt_msg *m;
    ck_assert_int_eq(rt_msg_from_body(body, size, NULL, durable, &m), 0);
    free(body);
    return m;
}

/* Publishes n messages numbered from first, waits for every confirm. */
static void publish(const char *q, int first, int n, size_t size, bool durable)
{
    sv_pid pid = qpid(q);
    for (int done = 0; done < n;) {
        int k = n - done < 64 ? n - done : 64;
        sv_msg *b = sv_msg_new(RT_Q_PUBLISH, NULL, sizeof(rt_pub_batch) + (size_t)k * sizeof(rt_pub));
        rt_pub_batch *pb = (rt_pub_batch *)(void *)b->data;
        for (int i = 0; i < k; i++) {
            pb->p[pb->n++] = (rt_pub){message(first + done + i, size, durable), (uint64_t)(done + i), true};
            pb->confirms++;
        }
        ck_assert_int_eq(sv_send(pid, b), 0);
        int confirmed = 0;
        while (confirmed < k) {
            sv_msg *c = recv_match(SV_MSG_INFO, RT_Q_CONFIRM, 0, pid, 5000);
            ck_assert_msg(c != NULL, "no confirm from the queue");
            rt_confirm_batch *cb = (rt_confirm_batch *)(void *)c->data;
            for (uint32_t i = 0; i < cb->n; i++)
                ck_assert_int_eq(cb->c[i].outcome, RT_ACCEPTED);
            confirmed += (int)cb->n;
            sv_msg_free(c);
        }
        done += k;
    }
}

typedef struct got {
    int n;
    int num[20000];
    uint32_t dc[20000];
    uint64_t id[20000];
} got;

/* Consumes up to n messages (waiting up to ms for each batch); settles
 * them with outcome unless settle is false. */
static void consume(const char *q, int n, bool settle, got *g, int ms)
{
    sv_pid pid = qpid(q);
    rt_consume c = {.consumer = 1, .credit = (uint32_t)n};
    ck_assert_int_eq(sv_send_tag(pid, RT_Q_CONSUME, &c, sizeof c), 0);
    g->n = 0;
    while (g->n < n) {
        sv_msg *m = recv_match(SV_MSG_INFO, RT_Q_DELIVER, 0, pid, ms);
        if (!m)
            break;
        rt_deliver_batch *db = (rt_deliver_batch *)(void *)m->data;
        sv_msg *s = settle ? sv_msg_new(RT_Q_SETTLE, NULL, sizeof(rt_settle_batch) + db->n * sizeof(rt_settle)) : NULL;
        for (uint32_t i = 0; i < db->n; i++) {
            g->num[g->n] = body_number(db->d[i].m);
            g->dc[g->n] = db->d[i].delivery_count;
            g->id[g->n++] = db->d[i].id;
            rt_msg_unref(db->d[i].m);
            if (s) {
                rt_settle_batch *sb = (rt_settle_batch *)(void *)s->data;
                sb->s[sb->n++] = (rt_settle){.id = db->d[i].id, .outcome = RT_ACCEPTED};
            }
        }
        if (s)
            ck_assert_int_eq(sv_send(pid, s), 0);
        sv_msg_free(m);
    }
    rt_credit cc = {.consumer = 1};
    sv_send_tag(pid, RT_Q_CANCEL, &cc, sizeof cc);
}

static void restart(void)
{
    routing_stop();
    routing_start(&cfg);
}

/* The queue's log directory, and what is in it. */
static void qdir(const char *q, char *out, size_t len) { ck_assert_int_eq(rt__queue_dir(q, out, len), 0); }

static int count_segments(const char *q, uint32_t *last)
{
    char d[1024];
    qdir(q, d, sizeof d);
    DIR *dd = opendir(d);
    if (!dd)
        return -1;
    int n = 0;
    struct dirent *e;
    *last = 0;
    while ((e = readdir(dd))) {
        unsigned seg;
        if (strlen(e->d_name) == 12 && sscanf(e->d_name, "%8x.seg", &seg) == 1) {
            n++;
            if (seg > *last)
                *last = seg;
        }
    }
    closedir(dd);
    return n;
}

static void seg_file(const char *q, uint32_t seg, char *out, size_t len)
{
    char d[1024];
    qdir(q, d, sizeof d);
    rt__seg_path(out, len, d, seg);
}

static void expect_in_order(const got *g, int first, int n)
{
    ck_assert_int_eq(g->n, n);
    for (int i = 0; i < n; i++)
        ck_assert_int_eq(g->num[i], first + i);
}

/* --------------------------------------------------------------- tests */

START_TEST(persistent_messages_survive_a_restart)
{
    declare("dq", true);
    publish("dq", 0, 300, 200, true);
    publish("dq", 1000, 50, 200, false); /* transient: gone with the restart */
    restart();
    static got g;
    consume("dq", 400, true, &g, 1000);
    expect_in_order(&g, 0, 300);
    for (int i = 0; i < g.n; i++)
        ck_assert_uint_eq(g.dc[i], 0); /* never delivered before */
}
END_TEST

START_TEST(settled_messages_do_not_come_back)
{
    declare("dq", true);
    publish("dq", 0, 100, 200, true);
    static got g;
    consume("dq", 60, true, &g, 2000);
    expect_in_order(&g, 0, 60);
    usleep(100000); /* the settlements reach the queue, and its ACKs the log */
    restart();
    consume("dq", 100, true, &g, 1000);
    expect_in_order(&g, 60, 40);
}
END_TEST

START_TEST(unsettled_deliveries_come_back_marked)
{
    declare("dq", true);
    publish("dq", 0, 20, 200, true);
    static got g;
    consume("dq", 5, false, &g, 2000); /* with "a consumer" when the broker stops */
    expect_in_order(&g, 0, 5);
    restart();
    consume("dq", 20, true, &g, 1000);
    expect_in_order(&g, 0, 20);
    for (int i = 0; i < 5; i++)
        ck_assert_uint_ge(g.dc[i], 1); /* a possible duplicate says so */
}
END_TEST

START_TEST(a_torn_tail_is_cut_off)
{
    declare("dq", true);
    publish("dq", 0, 100, 300, true);
    routing_stop();
    uint32_t last;
    ck_assert_int_ge(count_segments("dq", &last), 1);
    char path[1200];
    seg_file("dq", last, path, sizeof path);
    struct stat st;
    ck_assert_int_eq(stat(path, &st), 0);
    /* half a record: a length, a CRC, and not all the bytes they promise */
    int fd = open(path, O_WRONLY | O_APPEND);
    unsigned char torn[37] = {200, 0, 0, 0, 1, 2, 3, 4, RT__REC_MSG};
    ck_assert_int_eq(write(fd, torn, sizeof torn), (ssize_t)sizeof torn);
    close(fd);
    routing_start(&cfg);
    qpid("dq");
    for (int i = 0; i < 300 && atomic_load(&rt_queue_find("dq")->ready) < 100; i++)
        usleep(10000); /* loaded */
    struct stat after;
    ck_assert_int_eq(stat(path, &after), 0);
    ck_assert_int_eq(after.st_size, st.st_size); /* cut back to where the good records end */
    static got g;
    consume("dq", 200, true, &g, 1000);
    expect_in_order(&g, 0, 100);
    ck_assert_uint_eq(atomic_load(&rt_queue_find("dq")->corrupt), 0);
}
END_TEST

START_TEST(damage_is_skipped_and_counted)
{
    declare("dq", true);
    publish("dq", 0, 200, 1000, true); /* several 64 KiB segments */
    routing_stop();
    uint32_t last;
    ck_assert_int_ge(count_segments("dq", &last), 3);
    /* one byte of one message in the middle of the oldest segment */
    char path[1200];
    seg_file("dq", 1, path, sizeof path);
    int fd = open(path, O_RDWR);
    unsigned char b;
    ck_assert_int_eq(pread(fd, &b, 1, 20000), 1);
    b ^= 0x40;
    ck_assert_int_eq(pwrite(fd, &b, 1, 20000), 1);
    close(fd);
    routing_start(&cfg);
    static got g;
    consume("dq", 300, true, &g, 1000);
    ck_assert_int_eq(g.n, 199); /* all but the damaged one, in order */
    int skipped = -1;
    for (int i = 0, want = 0; i < g.n; i++, want++) {
        if (g.num[i] != want) {
            ck_assert_int_eq(skipped, -1);
            skipped = want++;
        }
        ck_assert_int_eq(g.num[i], want);
    }
    ck_assert_uint_ge(atomic_load(&rt_queue_find("dq")->corrupt), 1);
}
END_TEST

static double cpu_seconds(void)
{
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* Damage crafted to be expensive to skip: the first MiB of a 4 MiB segment
 * overwritten with bytes where every 8th offset reads as a MSG header
 * claiming 1.5 MiB. Recovery used to run a CRC over what each offset
 * claimed (~200 GB of CRC here: minutes); it now takes constant time per
 * offset, and the messages after the damage come back in order. */
START_TEST(crafted_damage_is_skipped_quickly)
{
    routing_stop();
    cfg.segment_size = 4 << 20;
    routing_start(&cfg);
    declare("dq", true);
    publish("dq", 0, 3000, 1000, true); /* ~3.3 MiB: one segment */
    routing_stop();
    uint32_t last;
    ck_assert_int_eq(count_segments("dq", &last), 1);
    char path[1200];
    seg_file("dq", last, path, sizeof path);
    int fd = open(path, O_RDWR);
    ck_assert_int_ge(fd, 0);
    static unsigned char crafted[1 << 20];
    static const unsigned char header[8] = {0x01, 0x01, 0x18, 0x00, 0x01, 0x00, 0x00, 0x00}; /* len 0x180101 */
    for (size_t i = 0; i < sizeof crafted; i += 8)
        memcpy(crafted + i, header, 8);
    ck_assert_int_eq(pwrite(fd, crafted, sizeof crafted, RT__SEG_HDR), (ssize_t)sizeof crafted);
    close(fd);
    double t0 = cpu_seconds();
    routing_start(&cfg);
    static got g;
    consume("dq", 3000, true, &g, 5000); /* before: nothing for minutes */
    double took = cpu_seconds() - t0;
    ck_assert_int_gt(g.n, 1500);
    ck_assert_int_lt(g.n, 2500);          /* the messages in the first MiB are gone... */
    expect_in_order(&g, 3000 - g.n, g.n); /* ...the rest came back, in order */
    ck_assert_uint_ge(atomic_load(&rt_queue_find("dq")->corrupt), 1);
    ck_assert_msg(took < 10.0, "recovering a 4 MiB segment with crafted damage took %.2f s of CPU", took);
}
END_TEST

START_TEST(a_killed_queue_reloads_its_log)
{
    declare("dq", true);
    publish("dq", 0, 150, 200, true);
    sv_pid before = qpid("dq");
    sv_exit(T, before, SV_KILL);
    sv_pid after;
    for (int i = 0; i < 500; i++) {
        after = qpid("dq");
        if (!sv_pid_eq(after, before))
            break;
        usleep(10000);
    }
    ck_assert(!sv_pid_eq(after, before));
    static got g;
    consume("dq", 200, true, &g, 1000);
    expect_in_order(&g, 0, 150);
}
END_TEST

START_TEST(settled_segments_are_deleted)
{
    declare("dq", true);
    publish("dq", 0, 1000, 500, true); /* ~8 segments of 64 KiB */
    uint32_t last;
    ck_assert_int_ge(count_segments("dq", &last), 6);
    static got g;
    consume("dq", 1000, true, &g, 2000);
    expect_in_order(&g, 0, 1000);
    /* a few more turns for the ACKs to be written and the segments to go */
    publish("dq", 5000, 1, 10, true);
    consume("dq", 1, true, &g, 2000);
    int n = 0;
    for (int i = 0; i < 200 && (n = count_segments("dq", &last)) > 2; i++) {
        publish("dq", 6000 + i, 1, 10, true);
        consume("dq", 1, true, &g, 2000);
        usleep(10000);
    }
    ck_assert_int_le(n, 2);
    restart();
    consume("dq", 10, true, &g, 500);
    ck_assert_int_eq(g.n, 0);
}
END_TEST

START_TEST(a_straggler_does_not_pin_old_segments)
{
    declare("dq", true);
    publish("dq", 0, 1, 500, true);
    sv_pid pid = qpid("dq");
    rt_consume hold = {.consumer = 7, .credit = 1}; /* takes m0 and never settles it */
    ck_assert_int_eq(sv_send_tag(pid, RT_Q_CONSUME, &hold, sizeof hold), 0);
    sv_msg *d = recv_match(SV_MSG_INFO, RT_Q_DELIVER, 0, pid, 2000);
    ck_assert_ptr_nonnull(d);
    rt_deliver_batch *db = (rt_deliver_batch *)(void *)d->data;
    ck_assert_uint_eq(db->n, 1);
    ck_assert_int_eq(body_number(db->d[0].m), 0);
    rt_msg_unref(db->d[0].m);
    sv_msg_free(d);
    static got g;
    for (int round = 0; round < 20; round++) { /* 20 x 100 x ~550 B: some 17 segments' worth */
        publish("dq", 1 + round * 100, 100, 500, true);
        consume("dq", 100, true, &g, 2000);
        expect_in_order(&g, 1 + round * 100, 100);
    }
    uint32_t last;
    int n = count_segments("dq", &last);
    ck_assert_msg(n <= 5, "%d segments kept for one live message", n);
    restart();
    consume("dq", 10, true, &g, 1000);
    ck_assert_int_eq(g.n, 1);
    ck_assert_int_eq(g.num[0], 0);
    ck_assert_uint_ge(g.dc[0], 1);
}
END_TEST

START_TEST(a_backlog_stays_mostly_on_disk)
{
    declare("dq", true);
    uint64_t before = rt_held_bytes();
    publish("dq", 0, 2000, 1024, true); /* 2 MiB, against a 64 KiB window */
    uint64_t held = rt_held_bytes() - before;
    ck_assert_msg(held < 300 << 10, "the queue holds %llu bytes in memory", (unsigned long long)held);
    static got g;
    consume("dq", 2000, true, &g, 3000);
    expect_in_order(&g, 0, 2000);
}
END_TEST

START_TEST(a_backlog_on_disk_survives_a_restart)
{
    declare("dq", true);
    publish("dq", 0, 1500, 1024, true);
    restart();
    static got g;
    consume("dq", 1500, true, &g, 3000);
    expect_in_order(&g, 0, 1500);
}
END_TEST

START_TEST(a_deleted_queue_takes_its_log)
{
    declare("dq", true);
    publish("dq", 0, 10, 100, true);
    char d[1024];
    qdir("dq", d, sizeof d);
    struct stat st;
    ck_assert_int_eq(stat(d, &st), 0);
    rt_req_queue r = {0};
    snprintf(r.name, sizeof r.name, "dq");
    ck_assert_int_eq(rt_call(T, RT_REQ_DELETE_QUEUE, &r, sizeof r, NULL, 0, 5000), 0);
    int i = 0;
    while (stat(d, &st) == 0 && i++ < 300)
        usleep(10000);
    ck_assert_int_ne(stat(d, &st), 0);
    restart();
    ck_assert(!queue_exists("dq"));
}
END_TEST

/* A long log is read back a step at a time between the store thread's
 * rounds: a write to another log on the same thread is synced and
 * answered before the long one is done loading. */
START_TEST(a_long_load_does_not_hold_up_other_logs)
{
    declare("long", true);
    publish("long", 0, 400, 2000, true); /* ~13 segments of 64 KiB */
    char logdir[1024], moved[1024], other[1024];
    ck_assert_int_eq(rt__queue_dir("long", logdir, sizeof logdir), 0);
    routing_stop();
    /* moved where the manager does not look for it: only this test loads it */
    snprintf(moved, sizeof moved, "%s/queues/zz-moved", dir);
    snprintf(other, sizeof other, "%s/queues/zz-other", dir);
    ck_assert_int_eq(rename(logdir, moved), 0);
    routing_start(&cfg);

    sv_pid thread = rt__store_pid("any"); /* every request goes to this one thread */
    rt__slog *big = rt__slog_new(moved), *small = rt__slog_new(other);
    ck_assert(big && small);
    /* the small log first comes up as any log does: loaded (empty) */
    sv_msg *first = sv_msg_new(RT__S_LOAD, NULL, sizeof(rt__s_load));
    *(rt__s_load *)(void *)first->data = (rt__s_load){.log = small, .window = 64 << 10};
    ck_assert_int_eq(rt__store_send(thread, first), 0);
    sv_msg *up = recv_match(-1, RT__S_LOADED, 0, SV_PID_NONE, 5000);
    ck_assert_ptr_nonnull(up);
    ck_assert(((rt__s_loaded *)(void *)up->data)->last);
    sv_msg_free(up);
    sv_msg *load = sv_msg_new(RT__S_LOAD, NULL, sizeof(rt__s_load));
    *(rt__s_load *)(void *)load->data = (rt__s_load){.log = big, .window = 64 << 10};
    sv_msg *write = sv_msg_new(RT__S_WRITE, NULL, sizeof(rt__s_write) + sizeof(rt__wop));
    rt__s_write *w = (rt__s_write *)(void *)write->data;
    w->log = small;
    w->token = 77;
    w->sync = true;
    w->n = 1;
    w->ops[0] = (rt__wop){.type = 0, .seg = 1}; /* start segment 1: a write and a sync */
    ck_assert_int_eq(rt__store_send(thread, load), 0);
    ck_assert_int_eq(rt__store_send(thread, write), 0);

    int order = 0, synced_at = -1, last_at = -1;
    uint32_t entries = 0;
    while (last_at < 0) {
        sv_msg *m = recv_match(-1, 0, 0, SV_PID_NONE, 10000);
        ck_assert_msg(m != NULL, "no answer from the store");
        order++;
        if (m->tag == RT__S_SYNCED) {
            rt__s_synced *a = (rt__s_synced *)(void *)m->data;
            ck_assert_int_eq(a->status, 0);
            ck_assert_uint_eq(a->token, 77);
            synced_at = order;
        } else if (m->tag == RT__S_LOADED) {
            rt__s_loaded *c = (rt__s_loaded *)(void *)m->data;
            ck_assert_int_eq(c->status, 0);
            if (c->last) {
                last_at = order;
            } else {
                for (uint32_t i = 0; i < c->n; i++)
                    rt_msg_unref(c->e[i].m);
                entries += c->n;
            }
        }
        sv_msg_free(m);
    }
    ck_assert_uint_eq(entries, 400);
    ck_assert_int_gt(synced_at, 0);
    ck_assert_int_lt(synced_at, last_at);
    rt__s_seg closes[2] = {{big, 0}, {small, 0}};
    for (int i = 0; i < 2; i++)
        ck_assert_int_eq(rt__store_send(thread, sv_msg_new(RT__S_CLOSE, &closes[i], sizeof closes[i])), 0);
}
END_TEST

START_TEST(non_durable_queues_leave_nothing)
{
    declare("tq", false);
    publish("tq", 0, 10, 100, true);
    char d[1024];
    qdir("tq", d, sizeof d);
    struct stat st;
    ck_assert_int_ne(stat(d, &st), 0);
    restart();
    ck_assert(!queue_exists("tq"));
}
END_TEST

int main(void)
{
    Suite *s = suite_create("rt_store");
    TCase *tc = tcase_create("store");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, persistent_messages_survive_a_restart);
    tcase_add_test(tc, settled_messages_do_not_come_back);
    tcase_add_test(tc, unsettled_deliveries_come_back_marked);
    tcase_add_test(tc, a_torn_tail_is_cut_off);
    tcase_add_test(tc, damage_is_skipped_and_counted);
    tcase_add_test(tc, crafted_damage_is_skipped_quickly);
    tcase_add_test(tc, a_killed_queue_reloads_its_log);
    tcase_add_test(tc, settled_segments_are_deleted);
    tcase_add_test(tc, a_straggler_does_not_pin_old_segments);
    tcase_add_test(tc, a_backlog_stays_mostly_on_disk);
    tcase_add_test(tc, a_backlog_on_disk_survives_a_restart);
    tcase_add_test(tc, a_deleted_queue_takes_its_log);
    tcase_add_test(tc, a_long_load_does_not_hold_up_other_logs);
    tcase_add_test(tc, non_durable_queues_leave_nothing);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
