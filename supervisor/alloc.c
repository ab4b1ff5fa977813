/* alloc.c — which allocator the process runs on, and what it holds.
 *
 * The broker links jemalloc (cross-thread frees, see the Makefile), which
 * answers questions through mallctl; the ASan build and the unit tests run
 * on another allocator, which does not. mallctl is a weak reference, so one
 * library serves every build. Operators read the figures in /metrics (is
 * RSS live data, or memory the allocator has not given back yet?), and the
 * memory-return test reads the allocator's name to know what to expect.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "sv_internal.h"

/* jemalloc's, when it is linked in; NULL otherwise. */
int mallctl(const char *name, void *oldp, size_t *oldlenp, void *newp, size_t newlen) __attribute__((weak));

#if defined(__SANITIZE_ADDRESS__)
#define SV_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define SV_ASAN 1
#endif
#endif

static bool have_mallctl(void)
{
#ifdef SV_ASAN
    return false; /* ASan's allocator serves malloc, whatever else is linked */
#else
    return mallctl != NULL;
#endif
}

const char *sv_allocator(void)
{
#ifdef SV_ASAN
    return "asan";
#else
    static char name[48];
    if (!have_mallctl())
        return "libc";
    if (!name[0]) { /* a benign race: every thread writes the same text */
        const char *v = NULL;
        size_t len = sizeof v;
        if (mallctl("version", &v, &len, NULL, 0) != 0 || !v)
            v = "";
        /* "5.3.0-0-g54eaed1d...": the release is enough */
        snprintf(name, sizeof name, "jemalloc %.*s", (int)strcspn(v, "-"), v);
    }
    return name;
#endif
}

static int read_size(const char *what, uint64_t *out)
{
    size_t v = 0, len = sizeof v;
    int rc = mallctl(what, &v, &len, NULL, 0);
    if (rc != 0)
        return -rc;
    *out = v;
    return 0;
}

int sv_alloc_get_stats(sv_alloc_stats *st)
{
    memset(st, 0, sizeof *st);
    if (!have_mallctl())
        return -ENOTSUP;
    /* jemalloc caches its statistics; a new epoch refreshes them. */
    uint64_t epoch = 1;
    size_t len = sizeof epoch;
    mallctl("epoch", &epoch, &len, &epoch, len);
    int rc = read_size("stats.allocated", &st->allocated);
    if (rc == 0)
        rc = read_size("stats.active", &st->active);
    if (rc == 0)
        rc = read_size("stats.resident", &st->resident);
    if (rc == 0)
        rc = read_size("stats.retained", &st->retained);
    return rc;
}
