/* log.c — one line per event on stderr, with time, level and thread.
 *
 * Each line is formatted into a local buffer and written with a single
 * write(2), so lines from different schedulers never interleave.
 */
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "sv_internal.h"

static atomic_int log_level = SV_LOG_INFO;
static const char *const level_names[] = {"error", "warning", "info", "debug"};

void sv_log_set_level(sv_log_level level) { atomic_store(&log_level, (int)level); }
sv_log_level sv_log_get_level(void) { return (sv_log_level)atomic_load(&log_level); }
bool sv_log_enabled(sv_log_level level) { return (int)level <= atomic_load(&log_level); }

int sv_log_parse_level(const char *s, sv_log_level *out)
{
    for (int i = 0; i <= SV_LOG_DEBUG; i++) {
        if (s && strcmp(s, level_names[i]) == 0) {
            *out = (sv_log_level)i;
            return 0;
        }
    }
    if (s && strcmp(s, "warn") == 0) {
        *out = SV_LOG_WARNING;
        return 0;
    }
    return -1;
}

void sv_vlog(sv_log_level level, const char *fmt, va_list ap)
{
    if (!sv_log_enabled(level))
        return;
    char line[1024];
    struct timeval tv;
    struct tm tm;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    int n = snprintf(line, sizeof line, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %-7s ", tm.tm_year + 1900, tm.tm_mon + 1,
                     tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (long)(tv.tv_usec / 1000), level_names[level]);
    if (n < 0)
        return;
    int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    if (m < 0)
        return;
    size_t len = (size_t)n + (size_t)m;
    if (len > sizeof line - 2)
        len = sizeof line - 2;
    line[len++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w;
}

void sv_log(sv_log_level level, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    sv_vlog(level, fmt, ap);
    va_end(ap);
}
