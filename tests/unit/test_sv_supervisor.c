/* test_sv_supervisor.c — supervisors: start order, each restart strategy,
 * restart intensity and escalation, shutdown order and timeouts, restart
 * types, dynamic children. The children are counter servers (see
 * check_helpers.h) whose reset-at-zero crashes on purpose. */
#include <unistd.h>

#include "check_main.h"
#include "check_helpers.h"

static const sv_child_spec three[] = {
    COUNTER_SPEC("a", SV_PERMANENT),
    COUNTER_SPEC("b", SV_PERMANENT),
    COUNTER_SPEC("c", SV_PERMANENT),
};

static sv_pid start_sup(sv_strategy strategy, int intensity, const sv_child_spec *kids, size_t n)
{
    sv_pid sup;
    sv_spawn_opts o = {.link = true, .ack = true, .scheduler = SV_SCHED_ANY};
    sv_sup_flags f = {strategy, intensity, 5000};
    ck_assert_int_eq(sv_sup_spawn(T, "test_sup", f, kids, n, &o, &sup), 0);
    sv_msg *m = recv_match(-1, 0, 0, sup, 3000);
    ck_assert_msg(m && m->kind == SV_MSG_ACK, "supervisor did not come up");
    sv_msg_free(m);
    return sup;
}

/* Fills pids[] with the children's pids, in child order. */
static int children(sv_pid sup, sv_pid *pids, int max)
{
    sv_child_info info[16];
    int n = sv_sup_which_children(T, sup, info, 16, 2000);
    ck_assert_int_ge(n, 0);
    for (int i = 0; i < n && i < max; i++)
        pids[i] = info[i].pid;
    return n;
}

/* Waits until child i runs under a pid other than old. */
static sv_pid wait_restarted(sv_pid sup, int i, sv_pid old)
{
    for (int t = 0; t < 300; t++) {
        sv_pid now[8];
        int n = children(sup, now, 8);
        if (n > i && !sv_pid_is_none(now[i]) && !sv_pid_eq(now[i], old))
            return now[i];
        usleep(10000);
    }
    ck_abort_msg("child %d was not restarted", i);
    return SV_PID_NONE;
}

static void crash(sv_pid victim)
{
    /* Count 0 -> reset crashes it; the call then fails with the crash reason. */
    ck_assert_int_eq(counter_do(victim, CNT_RESET), -EDOM);
}

static void expect_journal(const char *want)
{
    char got[1024];
    for (int t = 0; t < 200; t++) {
        journal_str(got, sizeof got);
        if (strcmp(got, want) == 0)
            return;
        usleep(10000);
    }
    ck_assert_str_eq(got, want);
}

START_TEST(test_children_start_in_order_and_stop_in_reverse)
{
    sv_pid sup = start_sup(SV_ONE_FOR_ONE, 3, three, 3);
    expect_journal("init a,init b,init c");
    journal_reset();
    uint64_t ref = sv_monitor(T, sup);
    ck_assert_int_eq(sv_exit(T, sup, SV_SHUTDOWN), 0); /* from its parent: shut down */
    ck_assert_int_eq(expect_down(ref, 3000), SV_SHUTDOWN);
    expect_journal("term c,term b,term a");
}
END_TEST

START_TEST(test_one_for_one_restarts_only_the_crashed_child_with_new_pid)
{
    sv_pid sup = start_sup(SV_ONE_FOR_ONE, 3, three, 3);
    sv_pid before[3], after[3];
    children(sup, before, 3);
    ck_assert_int_eq(counter_do(before[1], CNT_INC), 1);
    ck_assert_int_eq(counter_do(before[1], CNT_INC), 2);
    ck_assert_int_eq(counter_do(before[1], CNT_RESET), 0);
    journal_reset();
    crash(before[1]);
    after[1] = wait_restarted(sup, 1, before[1]);
    children(sup, after, 3);
    ck_assert(sv_pid_eq(before[0], after[0]));
    ck_assert(!sv_pid_eq(before[1], after[1]));
    ck_assert(sv_pid_eq(before[2], after[2]));
    ck_assert(!sv_is_alive(before[1]));
    expect_journal("term b,init b");
    /* Other children kept their state; the restarted one kept its count
     * through terminate/init. */
    ck_assert_int_eq(counter_do(after[1], CNT_INC), 1);
    ck_assert_int_eq(counter_do(after[0], CNT_READ), 0);
    sv_child_info info[3];
    ck_assert_int_eq(sv_sup_which_children(T, sup, info, 3, 1000), 3);
    ck_assert_uint_eq(info[1].restarts, 1);
    ck_assert_uint_eq(info[0].restarts, 0);
    ck_assert_str_eq(info[1].id, "b");
}
END_TEST

START_TEST(test_introspection_shows_behaviours_restarts_and_flags)
{
    sv_pid sup = start_sup(SV_ONE_FOR_ONE, 3, three, 3);
    sv_pid k[3];
    children(sup, k, 3);
    sv_proc_info pi;
    ck_assert_int_eq(sv_process_info(k[0], &pi), 0);
    ck_assert_str_eq(pi.behaviour, "counter");
    ck_assert_int_ge(pi.scheduler, 0);
    ck_assert_int_eq(sv_process_info(sv_self(T), &pi), 0);
    ck_assert_str_eq(pi.behaviour, "inbox");
    ck_assert_int_eq(pi.scheduler, -1);
    ck_assert_int_eq(sv_process_info(sup, &pi), 0);
    ck_assert_str_eq(pi.behaviour, "supervisor");

    sv_sup_info si;
    ck_assert_int_eq(sv_sup_get_info(T, sup, &si, 1000), 0);
    ck_assert_uint_eq(si.restarts, 0);
    ck_assert_uint_eq(si.children, 3);
    ck_assert_int_eq(si.flags.strategy, SV_ONE_FOR_ONE);
    ck_assert_int_eq(si.flags.intensity, 3);
    crash(k[2]);
    wait_restarted(sup, 2, k[2]);
    ck_assert_int_eq(sv_sup_get_info(T, sup, &si, 1000), 0);
    ck_assert_uint_eq(si.restarts, 1);
    sv_child_info info[3];
    ck_assert_int_eq(sv_sup_which_children(T, sup, info, 3, 1000), 3);
    ck_assert_str_eq(info[2].behaviour, "counter");
    ck_assert_int_eq(info[2].restart, SV_PERMANENT);

    uint64_t ref = sv_monitor(T, k[0]);
    sv_exit(T, k[0], SV_KILL);
    expect_down(ref, 1000);
    ck_assert_int_eq(sv_process_info(k[0], &pi), -ESRCH);
}
END_TEST

START_TEST(test_restarted_child_restores_its_persisted_count)
{
    sv_pid sup = start_sup(SV_ONE_FOR_ONE, 3, three, 3);
    sv_pid k[3];
    children(sup, k, 3);
    for (int i = 0; i < 5; i++)
        counter_do(k[2], CNT_INC);
    /* Crash it by some other means than reset (which needs zero): kill. */
    uint64_t ref = sv_monitor(T, k[2]);
    sv_exit(T, k[2], SV_KILL);
    expect_down(ref, 1000);
    sv_pid now = wait_restarted(sup, 2, k[2]);
    ck_assert_int_eq(counter_do(now, CNT_READ), 5);
}
END_TEST

START_TEST(test_one_for_all_restarts_every_child_in_order)
{
    sv_pid sup = start_sup(SV_ONE_FOR_ALL, 3, three, 3);
    sv_pid before[3], after[3];
    children(sup, before, 3);
    journal_reset();
    crash(before[1]);
    wait_restarted(sup, 0, before[0]);
    expect_journal("term b,term c,term a,init a,init b,init c");
    children(sup, after, 3);
    for (int i = 0; i < 3; i++) {
        ck_assert(!sv_pid_eq(before[i], after[i]));
        ck_assert(!sv_pid_is_none(after[i]));
        ck_assert(!sv_is_alive(before[i]));
    }
}
END_TEST

START_TEST(test_rest_for_one_restarts_the_child_and_those_after_it)
{
    sv_pid sup = start_sup(SV_REST_FOR_ONE, 3, three, 3);
    sv_pid before[3], after[3];
    children(sup, before, 3);
    journal_reset();
    crash(before[1]);
    wait_restarted(sup, 2, before[2]);
    expect_journal("term b,term c,init b,init c");
    children(sup, after, 3);
    ck_assert(sv_pid_eq(before[0], after[0]));
    ck_assert(!sv_pid_eq(before[1], after[1]));
    ck_assert(!sv_pid_eq(before[2], after[2]));
}
END_TEST

START_TEST(test_intensity_exceeded_ends_the_supervisor_and_its_children)
{
    sv_pid sup = start_sup(SV_ONE_FOR_ONE, 2, three, 3);
    uint64_t ref = sv_monitor(T, sup);
    sv_pid k[3];
    children(sup, k, 3);
    crash(k[0]);
    k[0] = wait_restarted(sup, 0, k[0]);
    crash(k[0]);
    k[0] = wait_restarted(sup, 0, k[0]);
    ck_assert_int_eq(counter_do(k[0], CNT_READ), 0); /* its init has run */
    sv_pid others[3];
    children(sup, others, 3);
    journal_reset();
    crash(k[0]); /* third restart within the window: one too many */
    ck_assert_int_eq(expect_down(ref, 3000), SV_MAX_RESTARTS);
    expect_journal("term a,term c,term b");
    ck_assert(!sv_is_alive(others[1]));
    ck_assert(!sv_is_alive(others[2]));
    /* Its parent (our inbox, linked) hears of the failure too. */
    sv_msg *m = recv_match(SV_MSG_EXIT, 0, 0, sup, 1000);
    ck_assert_ptr_nonnull(m);
    ck_assert_int_eq(m->status, SV_MAX_RESTARTS);
    sv_msg_free(m);
}
END_TEST

/* A top supervisor whose child is a supervisor of counters. */
static const sv_child_spec inner_kids[] = {COUNTER_SPEC("x", SV_PERMANENT)};
static const sv_sup_def inner = {"inner", {SV_ONE_FOR_ONE, 1, 5000}, inner_kids, 1};

START_TEST(test_escalation_restarts_the_failed_supervisor_from_its_parent)
{
    const sv_child_spec top_kids[] = {
        COUNTER_SPEC("sibling", SV_PERMANENT),
        {.id = "inner",
         .start = sv_sup_start_fn,
         .arg = (void *)&inner,
         .restart = SV_PERMANENT,
         .shutdown_ms = SV_SHUTDOWN_INFINITY,
         .is_supervisor = true},
    };
    sv_pid top = start_sup(SV_ONE_FOR_ONE, 5, top_kids, 2);
    sv_pid k[2];
    children(top, k, 2);
    sv_pid inner_sup = k[1], x;
    children(inner_sup, &x, 1);
    crash(x);
    x = wait_restarted(inner_sup, 0, x);
    crash(x);                                          /* the inner supervisor gives up ... */
    sv_pid inner2 = wait_restarted(top, 1, inner_sup); /* ... and its parent restarts it */
    ck_assert(!sv_is_alive(inner_sup));
    sv_pid x2;
    for (int t = 0; t < 100; t++) {
        children(inner2, &x2, 1);
        if (!sv_pid_is_none(x2))
            break;
        usleep(10000);
    }
    ck_assert(sv_is_alive(x2));
    sv_pid k2[2];
    children(top, k2, 2);
    ck_assert(sv_pid_eq(k[0], k2[0])); /* the sibling never noticed */
    sv_child_info info[2];
    sv_sup_which_children(T, top, info, 2, 1000);
    ck_assert_uint_eq(info[1].restarts, 1);
    ck_assert(info[1].is_supervisor);
}
END_TEST

START_TEST(test_child_that_ignores_shutdown_is_killed_after_its_timeout)
{
    const sv_child_spec kids[] = {
        {.id = "stubborn", .start = counter_start, .restart = SV_PERMANENT, .shutdown_ms = 200},
    };
    sv_pid sup = start_sup(SV_ONE_FOR_ONE, 3, kids, 1);
    sv_pid k;
    children(sup, &k, 1);
    ck_assert_int_eq(counter_do(k, CNT_HANG_ON_SHUTDOWN), 0);
    uint64_t kref = sv_monitor(T, k), sref = sv_monitor(T, sup);
    uint64_t t0 = now_ms();
    sv_exit(T, sup, SV_SHUTDOWN);
    ck_assert_int_eq(expect_down(kref, 3000), SV_KILLED);
    ck_assert_uint_ge(now_ms() - t0, 190);
    ck_assert_int_eq(expect_down(sref, 3000), SV_SHUTDOWN);
}
END_TEST

START_TEST(test_transient_and_temporary_children_follow_their_restart_type)
{
    const sv_child_spec kids[] = {
        COUNTER_SPEC("transient", SV_TRANSIENT),
        COUNTER_SPEC("temporary", SV_TEMPORARY),
    };
    sv_pid sup = start_sup(SV_ONE_FOR_ONE, 5, kids, 2);
    sv_pid k[2];
    children(sup, k, 2);
    /* Transient ending normally: stays down, keeps its place. */
    ck_assert_int_eq(counter_do(k[0], CNT_STOP_NORMAL), 0);
    usleep(100000);
    sv_pid now[2];
    ck_assert_int_eq(children(sup, now, 2), 2);
    ck_assert(sv_pid_is_none(now[0]));
    /* Temporary crashing: not restarted, and forgotten. */
    crash(k[1]);
    for (int t = 0; t < 100 && children(sup, now, 2) != 1; t++)
        usleep(10000);
    ck_assert_int_eq(children(sup, now, 2), 1);
    ck_assert(sv_pid_is_none(now[0]));
}
END_TEST

START_TEST(test_transient_child_is_restarted_after_a_crash)
{
    const sv_child_spec kids[] = {COUNTER_SPEC("t", SV_TRANSIENT)};
    sv_pid sup = start_sup(SV_ONE_FOR_ONE, 5, kids, 1);
    sv_pid k;
    children(sup, &k, 1);
    crash(k);
    wait_restarted(sup, 0, k);
}
END_TEST

START_TEST(test_dynamic_children_start_and_terminate)
{
    sv_pid sup = start_sup(SV_ONE_FOR_ONE, 5, NULL, 0);
    ck_assert_int_eq(children(sup, NULL, 0), 0);
    sv_pid pids[20];
    for (int i = 0; i < 20; i++) {
        char id[24];
        snprintf(id, sizeof id, "conn-%d", i);
        sv_child_spec spec = COUNTER_SPEC(id, SV_TEMPORARY);
        ck_assert_int_eq(sv_sup_start_child(T, sup, &spec, 2000, &pids[i]), 0);
        ck_assert(sv_is_alive(pids[i]));
    }
    sv_child_spec dup = COUNTER_SPEC("conn-3", SV_TEMPORARY);
    sv_pid p;
    ck_assert_int_eq(sv_sup_start_child(T, sup, &dup, 2000, &p), -EEXIST);
    ck_assert_int_eq(children(sup, NULL, 0), 20);
    ck_assert_int_eq(sv_sup_terminate_child(T, sup, "conn-5", 2000), 0);
    ck_assert(!sv_is_alive(pids[5]));
    ck_assert_int_eq(children(sup, NULL, 0), 19);
    ck_assert_int_eq(sv_sup_terminate_child(T, sup, "nope", 2000), -ENOENT);
    /* delete_child forgets even a permanent child once it is down. */
    sv_child_spec keep = COUNTER_SPEC("kept", SV_PERMANENT);
    ck_assert_int_eq(sv_sup_start_child(T, sup, &keep, 2000, &p), 0);
    ck_assert_int_eq(children(sup, NULL, 0), 20);
    ck_assert_int_eq(sv_sup_terminate_child(T, sup, "kept", 2000), 0);
    ck_assert(!sv_is_alive(p));
    ck_assert_int_eq(children(sup, NULL, 0), 20); /* stopped, still listed */
    ck_assert_int_eq(sv_sup_start_child(T, sup, &keep, 2000, &p), -EEXIST);
    ck_assert_int_eq(sv_sup_delete_child(T, sup, "kept", 2000), 0);
    ck_assert_int_eq(children(sup, NULL, 0), 19);
    ck_assert_int_eq(sv_sup_start_child(T, sup, &keep, 2000, &p), 0);
    ck_assert_int_eq(sv_sup_delete_child(T, sup, "kept", 2000), 0); /* running: stopped, then forgotten */
    ck_assert(!sv_is_alive(p));
    ck_assert_int_eq(children(sup, NULL, 0), 19);
    /* A child whose init fails: the caller gets the reason, nothing is kept. */
    store.init_fail = 1;
    sv_child_spec bad = COUNTER_SPEC("bad", SV_PERMANENT);
    ck_assert_int_eq(sv_sup_start_child(T, sup, &bad, 2000, &p), -EIO);
    ck_assert_int_eq(children(sup, NULL, 0), 19);
}
END_TEST

START_TEST(test_supervisor_whose_child_cannot_start_does_not_start)
{
    store.init_fail = 1;
    const sv_child_spec kids[] = {COUNTER_SPEC("ok", SV_PERMANENT), COUNTER_SPEC("broken", SV_PERMANENT)};
    sv_pid sup;
    sv_sup_flags f = {SV_ONE_FOR_ONE, 3, 5000};
    sv_spawn_opts o = {.scheduler = SV_SCHED_ANY};
    /* The first init fails: "ok" is the one that breaks, "broken" never runs. */
    ck_assert_int_eq(sv_sup_spawn(T, "x", f, kids, 2, &o, &sup), 0);
    uint64_t ref = sv_monitor(T, sup);
    ck_assert_int_eq(expect_down(ref, 2000), -EIO);
    expect_journal("");
    sv_sup_flags bad = {SV_ONE_FOR_ONE, -1, 5000};
    ck_assert_int_eq(sv_sup_spawn(T, "x", bad, kids, 2, &o, &sup), -EINVAL);
    const sv_child_spec twins[] = {COUNTER_SPEC("same", SV_PERMANENT), COUNTER_SPEC("same", SV_PERMANENT)};
    ck_assert_int_eq(sv_sup_spawn(T, "x", f, twins, 2, &o, &sup), -EEXIST);
}
END_TEST

START_TEST(test_crash_stays_inside_its_subtree)
{
    /* Two independent subtrees; crashing in one leaves the other untouched. */
    const sv_child_spec top_kids[] = {
        {.id = "inner",
         .start = sv_sup_start_fn,
         .arg = (void *)&inner,
         .restart = SV_PERMANENT,
         .shutdown_ms = SV_SHUTDOWN_INFINITY,
         .is_supervisor = true},
        COUNTER_SPEC("other", SV_PERMANENT),
    };
    sv_pid top = start_sup(SV_ONE_FOR_ONE, 5, top_kids, 2);
    sv_pid k[2], x;
    children(top, k, 2);
    children(k[0], &x, 1);
    counter_do(k[1], CNT_INC);
    crash(x);
    wait_restarted(k[0], 0, x);
    sv_pid k2[2];
    children(top, k2, 2);
    ck_assert(sv_pid_eq(k[0], k2[0]));
    ck_assert(sv_pid_eq(k[1], k2[1]));
    ck_assert_int_eq(counter_do(k[1], CNT_READ), 1);
}
END_TEST

static Suite *sup_suite(void)
{
    Suite *s = suite_create("supervisor/supervisors");
    TCase *tc = tcase_create("strategies");
    tcase_add_checked_fixture(tc, node_setup, node_teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_children_start_in_order_and_stop_in_reverse);
    tcase_add_test(tc, test_one_for_one_restarts_only_the_crashed_child_with_new_pid);
    tcase_add_test(tc, test_restarted_child_restores_its_persisted_count);
    tcase_add_test(tc, test_introspection_shows_behaviours_restarts_and_flags);
    tcase_add_test(tc, test_one_for_all_restarts_every_child_in_order);
    tcase_add_test(tc, test_rest_for_one_restarts_the_child_and_those_after_it);
    tcase_add_test(tc, test_intensity_exceeded_ends_the_supervisor_and_its_children);
    tcase_add_test(tc, test_escalation_restarts_the_failed_supervisor_from_its_parent);
    tcase_add_test(tc, test_child_that_ignores_shutdown_is_killed_after_its_timeout);
    tcase_add_test(tc, test_transient_and_temporary_children_follow_their_restart_type);
    tcase_add_test(tc, test_transient_child_is_restarted_after_a_crash);
    tcase_add_test(tc, test_dynamic_children_start_and_terminate);
    tcase_add_test(tc, test_supervisor_whose_child_cannot_start_does_not_start);
    tcase_add_test(tc, test_crash_stays_inside_its_subtree);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return run_suite(sup_suite()); }
