/* memory.c — how many bytes of messages the queues hold, and the alarm.
 *
 * Credit bounds what each publisher has in flight, but a queue nobody
 * consumes grows for as long as publishers publish. Like RabbitMQ's memory
 * alarm, this puts a ceiling on the total: over the limit, connections stop
 * granting publishers credit, until the total is back under 90% of it.
 * Queues add and subtract once per batch, so the shared counter is touched
 * a few times per batch, not per message.
 */
#include <unistd.h>

#include "routing/rt_internal.h"

static atomic_int_fast64_t held;
static atomic_bool alarm_on;

void rt__held_add(int64_t bytes)
{
    if (bytes)
        atomic_fetch_add_explicit(&held, bytes, memory_order_relaxed);
}

uint64_t rt_held_bytes(void)
{
    int64_t h = atomic_load_explicit(&held, memory_order_relaxed);
    return h > 0 ? (uint64_t)h : 0;
}

static uint64_t limit(void)
{
    static uint64_t lim;
    uint64_t configured = rt__config()->memory_limit;
    if (configured)
        return configured;
    if (!lim) {
        long pages = sysconf(_SC_PHYS_PAGES), size = sysconf(_SC_PAGESIZE);
        lim = pages > 0 && size > 0 ? (uint64_t)pages * (uint64_t)size / 10 * 4 : (uint64_t)1 << 30;
    }
    return lim;
}

bool rt_memory_alarm(void)
{
    uint64_t h = rt_held_bytes(), lim = limit();
    bool on = atomic_load_explicit(&alarm_on, memory_order_relaxed);
    if (!on && h > lim) {
        if (!atomic_exchange(&alarm_on, true))
            sv_log(SV_LOG_WARNING, "memory alarm: queues hold %llu MiB (limit %llu MiB); publishers are blocked",
                   (unsigned long long)(h >> 20), (unsigned long long)(lim >> 20));
        return true;
    }
    if (on && h < lim / 10 * 9) {
        if (atomic_exchange(&alarm_on, false))
            sv_log(SV_LOG_WARNING, "memory alarm cleared: queues hold %llu MiB; publishers resume",
                   (unsigned long long)(h >> 20));
        return false;
    }
    return on;
}
