/* test_rt_queue.c — a queue process's state machine (routing/queue.c),
 * through the queue protocol as a connection speaks it: ready messages go
 * out in order against credit and no further, each outcome does what it
 * says (accepted and rejected leave, released comes back as it was,
 * modified-failed comes back counted), a consumer that leaves returns what
 * it had not settled, length bounds refuse or drop as configured, and a
 * drain uses the credit up.
 *
 * Each test runs a node with the routing subtree (no data directory: the
 * queues are transient) and plays publisher and consumer from its inbox. */
#include <proton/message.h>
#include <unistd.h>

#include "check_main.h"
#include "routing_helpers.h"

/* ------------------------------------------------------------- helpers */

static void declare(const char *name, const char *overflow, int64_t max_length)
{
    rt_req_queue r = {0};
    snprintf(r.name, sizeof r.name, "%s", name);
    rt_qargs_init(&r.args);
    char err[160];
    if (max_length >= 0)
        ck_assert_int_eq(rt_qargs_set(&r.args, "x-max-length", NULL, max_length, true, err, sizeof err), 0);
    if (overflow)
        ck_assert_int_eq(rt_qargs_set(&r.args, "x-overflow", overflow, 0, false, err, sizeof err), 0);
    ck_assert_int_eq(rt_call(T, RT_REQ_DECLARE_QUEUE, &r, sizeof r, NULL, 0, 5000), 0);
}

static sv_pid qpid(const char *name)
{
    for (int i = 0; i < 500; i++) {
        rt_queue *q = rt_queue_find(name);
        sv_pid p = q ? rt_queue_pid(q) : SV_PID_NONE;
        if (!sv_pid_is_none(p))
            return p;
        usleep(10000);
    }
    ck_abort_msg("queue %s has no process", name);
    return SV_PID_NONE;
}

static rt_msg *message(int i)
{
    char body[32];
    int n = snprintf(body, sizeof body, "m%d", i);
    rt_msg *m;
    ck_assert_int_eq(rt_msg_from_body(body, (size_t)n, NULL, false, &m), 0);
    return m;
}

/* Publishes messages first..first+n-1 in one batch, each wanting a
 * confirm; stores the outcomes (and why) in order of tag. */
static void publish(sv_pid q, int first, int n, uint8_t *outcome, uint8_t *why)
{
    sv_msg *b = sv_msg_new(RT_Q_PUBLISH, NULL, sizeof(rt_pub_batch) + (size_t)n * sizeof(rt_pub));
    ck_assert_ptr_nonnull(b);
    rt_pub_batch *pb = (rt_pub_batch *)(void *)b->data;
    for (int i = 0; i < n; i++) {
        pb->p[pb->n++] = (rt_pub){message(first + i), (uint64_t)i, true};
        pb->confirms++;
    }
    ck_assert_int_eq(sv_send(q, b), 0);
    for (int got = 0; got < n;) {
        sv_msg *c = recv_match(SV_MSG_INFO, RT_Q_CONFIRM, 0, q, 5000);
        ck_assert_msg(c != NULL, "no confirm from the queue");
        rt_confirm_batch *cb = (rt_confirm_batch *)(void *)c->data;
        for (uint32_t i = 0; i < cb->n; i++, got++) {
            ck_assert_uint_lt(cb->c[i].tag, (uint64_t)n);
            if (outcome)
                outcome[cb->c[i].tag] = cb->c[i].outcome;
            if (why)
                why[cb->c[i].tag] = cb->c[i].why;
        }
        sv_msg_free(c);
    }
}

typedef struct got {
    int n;
    int num[64];
    uint32_t dc[64];
    uint64_t id[64];
} got;

/* Takes the deliveries that come within ms (up to 64 in all), keeping
 * their numbers, counts and ids; settles nothing. */
static void take(sv_pid q, got *g, int want, int ms)
{
    while (g->n < want) {
        sv_msg *m = recv_match(SV_MSG_INFO, RT_Q_DELIVER, 0, q, ms);
        if (!m)
            return;
        rt_deliver_batch *db = (rt_deliver_batch *)(void *)m->data;
        for (uint32_t i = 0; i < db->n; i++) {
            ck_assert_int_lt(g->n, 64);
            g->num[g->n] = body_number(db->d[i].m);
            g->dc[g->n] = db->d[i].delivery_count;
            g->id[g->n++] = db->d[i].id;
            rt_msg_unref(db->d[i].m);
        }
        sv_msg_free(m);
    }
}

static void consume(sv_pid q, uint32_t consumer, uint32_t credit)
{
    rt_consume c = {.consumer = consumer, .credit = credit};
    ck_assert_int_eq(sv_send_tag(q, RT_Q_CONSUME, &c, sizeof c), 0);
}

static void credit(sv_pid q, uint32_t consumer, uint32_t n, bool drain)
{
    rt_credit c = {.consumer = consumer, .credit = n, .drain = drain};
    ck_assert_int_eq(sv_send_tag(q, RT_Q_CREDIT, &c, sizeof c), 0);
}

static void settle(sv_pid q, uint64_t id, rt_outcome outcome, bool failed)
{
    sv_msg *s = sv_msg_new(RT_Q_SETTLE, NULL, sizeof(rt_settle_batch) + sizeof(rt_settle));
    ck_assert_ptr_nonnull(s);
    rt_settle_batch *sb = (rt_settle_batch *)(void *)s->data;
    sb->s[sb->n++] = (rt_settle){.id = id, .outcome = (uint8_t)outcome, .failed = failed};
    ck_assert_int_eq(sv_send(q, s), 0);
}

static uint64_t stat_of(const char *name, int which)
{
    rt_queue *q = rt_queue_find(name);
    ck_assert_ptr_nonnull(q);
    return atomic_load(which == 0 ? &q->published : which == 1 ? &q->delivered : &q->acked);
}

/* --------------------------------------------------------------- tests */

START_TEST(test_ready_messages_go_out_in_order_and_no_further_than_credit)
{
    declare("fifo", NULL, -1);
    sv_pid q = qpid("fifo");
    publish(q, 0, 10, NULL, NULL);
    ck_assert_uint_eq(stat_of("fifo", 0), 10);
    consume(q, 1, 4);
    got g = {0};
    take(q, &g, 10, 300); /* more than the credit: only 4 may come */
    ck_assert_int_eq(g.n, 4);
    for (int i = 0; i < 4; i++) {
        ck_assert_int_eq(g.num[i], i);
        ck_assert_uint_eq(g.dc[i], 0);
    }
    credit(q, 1, 6, false);
    take(q, &g, 10, 2000);
    ck_assert_int_eq(g.n, 10);
    for (int i = 0; i < 10; i++)
        ck_assert_int_eq(g.num[i], i);
    take(q, &g, 11, 200);
    ck_assert_int_eq(g.n, 10); /* nothing left */
}
END_TEST

START_TEST(test_each_outcome_does_what_it_says)
{
    declare("outcomes", NULL, -1);
    sv_pid q = qpid("outcomes");
    publish(q, 0, 4, NULL, NULL);
    consume(q, 1, 4);
    got g = {0};
    take(q, &g, 4, 2000);
    ck_assert_int_eq(g.n, 4);
    settle(q, g.id[0], RT_ACCEPTED, false); /* gone, counted */
    settle(q, g.id[0], RT_ACCEPTED, false); /* twice: ignored */
    settle(q, g.id[1], RT_RELEASED, false); /* back, as it was */
    settle(q, g.id[2], RT_MODIFIED, true);  /* back, delivery-count + 1 */
    settle(q, g.id[3], RT_REJECTED, false); /* gone (no dead-letter exchange) */
    settle(q, 424242, RT_ACCEPTED, false);  /* unknown: ignored */
    credit(q, 1, 10, false);
    got again = {0};
    take(q, &again, 10, 500);
    /* Each went back where it stood, in the order they were published. */
    ck_assert_int_eq(again.n, 2);
    for (int i = 0; i < 2; i++) {
        ck_assert_int_eq(again.num[i], i + 1);
        ck_assert_uint_eq(again.dc[i], again.num[i] == 2 ? 1 : 0);
        ck_assert(again.id[i] != g.id[1] && again.id[i] != g.id[2]); /* new deliveries, new ids */
    }
    for (int i = 0; i < 100 && stat_of("outcomes", 2) < 1; i++)
        usleep(10000);
    ck_assert_uint_eq(stat_of("outcomes", 2), 1);
}
END_TEST

START_TEST(test_released_one_by_one_they_come_back_in_their_old_order)
{
    declare("released", NULL, -1);
    sv_pid q = qpid("released");
    publish(q, 0, 6, NULL, NULL);
    consume(q, 1, 3);
    got g = {0};
    take(q, &g, 3, 2000);
    ck_assert_int_eq(g.n, 3);
    settle(q, g.id[2], RT_RELEASED, false); /* in no particular order */
    settle(q, g.id[0], RT_RELEASED, false);
    settle(q, g.id[1], RT_RELEASED, false);
    credit(q, 1, 10, false);
    got again = {0};
    take(q, &again, 6, 2000);
    ck_assert_int_eq(again.n, 6);
    for (int i = 0; i < 6; i++)
        ck_assert_int_eq(again.num[i], i); /* was 1 0 2 3 4 5: each went to the head */
}
END_TEST

START_TEST(test_a_consumer_that_leaves_returns_what_it_had_not_settled)
{
    declare("leaver", NULL, -1);
    sv_pid q = qpid("leaver");
    publish(q, 0, 5, NULL, NULL);
    consume(q, 1, 3);
    got g = {0};
    take(q, &g, 3, 2000);
    ck_assert_int_eq(g.n, 3);
    settle(q, g.id[1], RT_ACCEPTED, false);
    rt_credit cancel = {.consumer = 1};
    ck_assert_int_eq(sv_send_tag(q, RT_Q_CANCEL, &cancel, sizeof cancel), 0);
    settle(q, g.id[0], RT_ACCEPTED, false); /* too late: it went back */
    consume(q, 2, 10);
    got next = {0};
    take(q, &next, 10, 500);
    ck_assert_int_eq(next.n, 4);
    /* In their old order, ahead of the rest, each counted as delivered once. */
    int want[] = {0, 2, 3, 4};
    uint32_t dc[] = {1, 1, 0, 0};
    for (int i = 0; i < 4; i++) {
        ck_assert_int_eq(next.num[i], want[i]);
        ck_assert_uint_eq(next.dc[i], dc[i]);
    }
}
END_TEST

START_TEST(test_length_bound_refuses_or_drops_the_oldest)
{
    declare("bounded.reject", "reject-publish", 3);
    sv_pid q = qpid("bounded.reject");
    uint8_t outcome[5], why[5];
    publish(q, 0, 5, outcome, why);
    for (int i = 0; i < 3; i++)
        ck_assert_uint_eq(outcome[i], RT_ACCEPTED);
    for (int i = 3; i < 5; i++) {
        ck_assert_uint_eq(outcome[i], RT_REJECTED);
        ck_assert_uint_eq(why[i], RT_WHY_FULL);
    }
    consume(q, 1, 10);
    got g = {0};
    take(q, &g, 10, 500);
    ck_assert_int_eq(g.n, 3);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(g.num[i], i);

    declare("bounded.drop", "drop-head", 3);
    q = qpid("bounded.drop");
    publish(q, 0, 5, outcome, why);
    for (int i = 0; i < 5; i++)
        ck_assert_uint_eq(outcome[i], RT_ACCEPTED);
    consume(q, 1, 10);
    got d = {0};
    take(q, &d, 10, 500);
    ck_assert_int_eq(d.n, 3);
    for (int i = 0; i < 3; i++)
        ck_assert_int_eq(d.num[i], i + 2); /* the newest three */
}
END_TEST

START_TEST(test_drain_sends_what_there_is_and_uses_up_the_rest)
{
    declare("drain", NULL, -1);
    sv_pid q = qpid("drain");
    publish(q, 0, 2, NULL, NULL);
    consume(q, 1, 0);
    credit(q, 1, 5, true);
    got g = {0};
    take(q, &g, 2, 2000);
    ck_assert_int_eq(g.n, 2);
    sv_msg *m = recv_match(SV_MSG_INFO, RT_Q_DRAINED, 0, q, 2000);
    ck_assert_ptr_nonnull(m);
    rt_credit *left = SV_MSG_AS(m, rt_credit);
    ck_assert_ptr_nonnull(left);
    ck_assert_uint_eq(left->consumer, 1);
    ck_assert_uint_eq(left->credit, 3);
    sv_msg_free(m);
    /* The credit is used up: a message published now waits. */
    publish(q, 2, 1, NULL, NULL);
    take(q, &g, 3, 300);
    ck_assert_int_eq(g.n, 2);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("routing/queue");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, routing_up, routing_down);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_ready_messages_go_out_in_order_and_no_further_than_credit);
    tcase_add_test(tc, test_each_outcome_does_what_it_says);
    tcase_add_test(tc, test_released_one_by_one_they_come_back_in_their_old_order);
    tcase_add_test(tc, test_a_consumer_that_leaves_returns_what_it_had_not_settled);
    tcase_add_test(tc, test_length_bound_refuses_or_drops_the_oldest);
    tcase_add_test(tc, test_drain_sends_what_there_is_and_uses_up_the_rest);
    suite_add_tcase(s, tc);
    return run_suite(s);
}
