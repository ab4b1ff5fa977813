/* test_init_failures.c — the processes of the tree whose init can fail,
 * made to fail for real, under the rule of sv.h: a failed init undoes its
 * own work and terminate does not run.
 *
 * Each test checks the error the spawner sees; what was leaked is for the
 * ASan build (`make asan`) to find: LeakSanitizer checks each forked test
 * when it exits, and a leak fails the test.
 */
#include <fcntl.h>
#include <unistd.h>

#include "check_main.h"
#include "routing_helpers.h"
#include "admin/adm_internal.h"

/* Starts the routing subtree, monitored, and returns its exit reason:
 * a child whose init fails takes the subtree's start down with it. */
static int routing_start_fails(const rt_config *cfg)
{
    uint64_t ref = 0;
    sv_spawn_opts o = {.monitor = &ref, .scheduler = SV_SCHED_ANY};
    sv_pid pid;
    ck_assert_int_eq(rt_start_fn(T, &o, (void *)cfg, &pid), 0);
    int reason = expect_down(ref, 10000);
    rt_cleanup();
    return reason;
}

START_TEST(test_manager_whose_name_is_taken_fails_and_frees_its_state)
{
    node_setup();
    /* The name the manager registers, held by someone alive. */
    ck_assert_int_eq(sv_register("rt_manager", sv_self(T)), 0);
    ck_assert_int_eq(routing_start_fails(NULL), -EEXIST);
    /* The same subtree starts once the name is free: nothing was left
     * half-done by the failed attempt. */
    sv_unregister("rt_manager");
    routing_start(NULL);
    ck_assert(!sv_pid_is_none(rt_manager()));
    routing_stop();
    node_teardown();
}
END_TEST

START_TEST(test_store_with_unusable_data_dir_fails_cleanly)
{
    node_setup();
    char path[] = "/tmp/plexus-init-XXXXXX";
    int fd = mkstemp(path); /* a file where the data directory should be */
    ck_assert_int_ge(fd, 0);
    close(fd);
    rt_config cfg = {.data_dir = path, .queue_max_batch = 256};
    ck_assert_int_eq(routing_start_fails(&cfg), -ENOTDIR);
    unlink(path);
    node_teardown();
}
END_TEST

START_TEST(test_reader_whose_name_is_taken_fails_and_frees_its_state)
{
    node_setup();
    ck_assert_int_eq(sv_register("adm_reader", sv_self(T)), 0);
    sv_pid p;
    ck_assert_int_eq(sv_start(T, &adm__reader_ops, NULL, NULL, 2000, &p), -EEXIST);
    sv_unregister("adm_reader");
    ck_assert_int_eq(sv_start(T, &adm__reader_ops, NULL, NULL, 2000, &p), 0);
    uint64_t ref = sv_monitor(T, p);
    sv_exit(T, p, SV_SHUTDOWN);
    ck_assert_int_eq(expect_down(ref, 2000), SV_SHUTDOWN);
    node_teardown();
}
END_TEST

int main(void)
{
    Suite *s = suite_create("init failures");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_manager_whose_name_is_taken_fails_and_frees_its_state);
    tcase_add_test(tc, test_store_with_unusable_data_dir_fails_cleanly);
    tcase_add_test(tc, test_reader_whose_name_is_taken_fails_and_frees_its_state);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
