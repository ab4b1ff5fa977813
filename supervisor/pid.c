/* pid.c — printing pids and exit reasons. */
#include <stdio.h>
#include <string.h>

#include "sv_internal.h"

const char *sv_pid_str(sv_pid p, char *buf, size_t len)
{
    if (sv_pid_is_none(p))
        snprintf(buf, len, "<none>");
    else
        snprintf(buf, len, "<%u.%u.%u>", p.node, p.index, p.gen);
    return buf;
}

bool sv_pid_is_local(sv_pid p) { return p.node == sv__n.id && p.creation == sv__n.creation && p.node != 0; }

const char *sv_reason_str(int reason, char *buf, size_t len)
{
    static const char *const names[] = {
        "normal", "shutdown", "kill", "killed", "noproc", "noconnection", "reached_max_restart_intensity"};
    if (reason >= 0 && reason < (int)(sizeof names / sizeof names[0]))
        snprintf(buf, len, "%s", names[reason]);
    else if (reason < 0) {
        char tmp[64];
        snprintf(buf, len, "%s (%d)", strerror_r(-reason, tmp, sizeof tmp), reason);
    } else
        snprintf(buf, len, "reason %d", reason);
    return buf;
}
