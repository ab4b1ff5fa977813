/* ab_fanout.c — fanout mode of amqp_bench: one producer publishes to an
 * exchange address and --subscribers receivers attached to that same
 * address each get their own copy. The producer and consumers are
 * throughput's (ab_throughput.c) and ab_stamp.c counts a (subscriber, seq)
 * per slot; what fanout adds is its address and its figures. */
#include "tests/bench/ab.h"

/* /exchanges/X/K (plexus) or /exchange/X/K (rabbitmq310): producer and
 * subscribers use the same address. Returns -1 when it is too long. */
int ab_fanout_address(bench *b)
{
    const options *o = b->o;
    int k = o->style == STYLE_PLEXUS
                ? snprintf(b->target_addr, sizeof b->target_addr, "/exchanges/%s/%s", o->exchange, o->key)
                : snprintf(b->target_addr, sizeof b->target_addr, "/exchange/%s/%s", o->exchange, o->key);
    snprintf(b->source_addr, sizeof b->source_addr, "%s", b->target_addr);
    return k < 0 || (size_t)k >= sizeof b->target_addr ? -1 : 0;
}

void ab_fanout_report(bench *b, const ab_totals *t)
{
    const options *o = b->o;
    printf("   messages     %" PRIu64 " published, %" PRIu64 " deliveries to %d subscribers\n", t->sent, t->got,
           o->subscribers);
    printf("   rate         %.0f deliveries/s (all subscribers), %.0f published msgs/s\n", t->rate,
           t->rate / (double)o->subscribers);
    printf("   bandwidth    %.1f MB/s delivered (payload)\n", t->rate * (double)t->size / 1e6);
    printf("   latency      p50 %.1f us, p99 %.1f us (end to end: publish to delivery)\n", t->p50, t->p99);
}

/* fanout's keys of the RESULT line. */
void ab_fanout_result(const bench *b, const ab_totals *t)
{
    printf(" producers=1 subscribers=%d count=%" PRIu64 " deliveries_per_s=%.0f msgs_per_s=%.0f mb_per_s=%.1f",
           b->o->subscribers, b->count, t->rate, t->rate / (double)b->o->subscribers, t->rate * (double)t->size / 1e6);
}
