/* ab_fill.c — the backlog modes of amqp_bench: fill puts N stamped messages
 * into a queue nobody consumes, and drain, in a later run of the program,
 * takes exactly N out of it and checks that seq 0..N-1 came once and in
 * order. They use throughput's producer and consumer; what is theirs alone
 * (the fill run's nonce, the order check, their report) is here. */
#include <string.h>

#include "tests/bench/ab.h"

/* drain: the first message names the fill run (its nonce and, without
 * --size, its size); a message of any other fill counts as malformed.
 * Returns false for such a message. */
bool ab_drain_take_nonce(bench *b, const stamp *st)
{
    if (!b->drain_stamp_known) {
        b->drain_stamp_known = true;
        b->nonce = st->nonce;
        if (!b->size)
            b->size = st->size; /* no --size: the fill's */
        if (b->o->verbose)
            fprintf(stderr, "amqp_bench: drain: fill run nonce %08x, size %u\n", st->nonce, st->size);
    } else if (st->nonce != b->nonce) {
        ab_note_bad(b,
                    "consumer: a message of another fill run (nonce %08x after %08x): the queue holds more "
                    "than one fill",
                    st->nonce, b->nonce);
        return false;
    }
    return true;
}

/* drain: one consumer, so only its events touch the order counters. */
void ab_drain_note_order(bench *b, const stamp *st)
{
    if (st->seq != b->next_seq && b->out_of_order++ == 0)
        snprintf(b->order_example, sizeof b->order_example, "seq %" PRIu64 " arrived where %" PRIu64 " was next",
                 st->seq, b->next_seq);
    b->next_seq = st->seq + 1;
}

void ab_drain_print_config(const bench *b, const char *label)
{
    printf("== drain  target=%s  ", label);
    if (b->size)
        printf("size=%zu B", b->size);
    else
        printf("size=(the fill's)");
    printf("  count=%" PRIu64 "  credit=%" PRIu64 "\n   address      receive %s\n", b->count,
           b->credit < b->count ? (uint64_t)b->credit : b->count, b->source_addr);
    fflush(stdout);
}

/* fill's figures; a fill not wholly accepted (or read) fails the run. */
void ab_fill_report(bench *b, const ab_totals *t)
{
    if (b->qos == QOS_ALO)
        printf("   messages     %" PRIu64 " sent, %" PRIu64 " accepted and queued (no consumer)\n", t->sent,
               t->accepted);
    else
        printf("   messages     %" PRIu64 " sent presettled; %s\n", t->sent,
               b->t_closed ? "the broker answered our close after reading them all"
                           : "the broker did not answer our close (no telling what it read)");
    if (t->released)
        printf("   released     %" PRIu64 " (sent again, after later ones: the queue is out of seq "
               "order now)\n",
               t->released);
    if (t->no_outcome)
        printf("   no outcome   %" PRIu64 " settled by the peer without an outcome\n", t->no_outcome);
    printf("   rate         %.0f msgs/s (first send to the last %s)\n", t->rate,
           b->qos == QOS_ALO ? "acceptance" : "byte read by the broker");
    printf("   bandwidth    %.1f MB/s (payload; 1 MB = 10^6 bytes)\n", t->rate * (double)t->size / 1e6);
    if (!t->filled && !b->failed) {
        snprintf(b->error, sizeof b->error, "only %" PRIu64 " of %" PRIu64 " messages %s", b->unique, b->count,
                 b->qos == QOS_ALO ? "accepted" : "known to be read by the broker");
        b->failed = true;
        fprintf(stderr, "amqp_bench: error: %s\n", b->error);
    }
}

/* drain's figures; a broker that sent beyond our credit fails the run. */
void ab_drain_report(bench *b, const ab_totals *t)
{
    printf("   messages     %" PRIu64 " of %" PRIu64 " received and accepted", t->got, b->count);
    if (b->drain_stamp_known)
        printf(" (fill run %08x, %zu B)", b->nonce, t->size);
    printf("\n   rate         %.0f msgs/s (attach to the last message)\n", t->rate);
    printf("   bandwidth    %.1f MB/s (payload; 1 MB = 10^6 bytes)\n", t->rate * (double)t->size / 1e6);
    if (b->extra && !b->failed) {
        snprintf(b->error, sizeof b->error,
                 "the broker sent %" PRIu64 " messages beyond the credit granted (released again)", b->extra);
        b->failed = true;
        fprintf(stderr, "amqp_bench: error: %s\n", b->error);
    }
}

/* fill's and drain's keys of the RESULT line: no latency. */
void ab_fill_result(const bench *b, const ab_totals *t)
{
    printf(" count=%" PRIu64 " msgs_per_s=%.0f mb_per_s=%.1f", b->count, t->rate, t->rate * (double)t->size / 1e6);
}
