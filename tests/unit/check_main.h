/* check_main.h — the main() every Check suite ends with: run the suite
 * (Check forks each test), exit non-zero if any test failed. */
#ifndef PLEXUS_CHECK_MAIN_H
#define PLEXUS_CHECK_MAIN_H

#include <check.h>
#include <stdlib.h>

static inline int run_suite(Suite *s)
{
    SRunner *r = srunner_create(s);
    srunner_run_all(r, CK_NORMAL);
    int failed = srunner_ntests_failed(r);
    srunner_free(r);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

#endif
