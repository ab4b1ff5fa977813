/* test_rt_bindings.c — exchanges and bindings through the routing manager:
 * what rt_route returns for each exchange type, exchange-to-exchange
 * bindings (and cycles), idempotent binding, unbinding, and what deleting a
 * queue or an exchange does to the bindings that name it.
 *
 * Each test runs a node with the routing subtree. Routes are read from the
 * test thread while nothing changes the tables, which is safe: retired
 * tables are freed only after a change. */
#include <proton/codec.h>
#include <unistd.h>

#include "check_main.h"
#include "routing_helpers.h"

static void queue(const char *name)
{
    rt_req_queue r = {0};
    snprintf(r.name, sizeof r.name, "%s", name);
    rt_qargs_init(&r.args);
    ck_assert_int_eq(rt_call(T, RT_REQ_DECLARE_QUEUE, &r, sizeof r, NULL, 0, 2000), 0);
}

static int exchange(const char *name, rt_xtype type, bool auto_delete)
{
    rt_req_exchange x = {.type = type, .auto_delete = auto_delete};
    snprintf(x.name, sizeof x.name, "%s", name);
    return rt_call(T, RT_REQ_DECLARE_EXCHANGE, &x, sizeof x, NULL, 0, 2000);
}

/* Binds (or unbinds) dest to source with key; args: an encoded map or NULL. */
static int bind_args(rt_req_kind kind, const char *source, const char *dest, const char *key, bool to_x,
                     const char *args, size_t alen)
{
    size_t len = sizeof(rt_req_bind) + alen;
    rt_req_bind *b = calloc(1, len);
    snprintf(b->source, sizeof b->source, "%s", source);
    snprintf(b->dest, sizeof b->dest, "%s", dest);
    snprintf(b->key, sizeof b->key, "%s", key);
    b->to_exchange = to_x;
    b->args_len = (uint32_t)alen;
    if (alen)
        memcpy(b + 1, args, alen);
    int rc = rt_call(T, kind, b, len, NULL, 0, 2000);
    free(b);
    return rc;
}

static int bind(const char *source, const char *dest, const char *key)
{
    return bind_args(RT_REQ_BIND, source, dest, key, false, NULL, 0);
}

/* The queues a message with key (and no properties) reaches from x, as
 * "a,b,c" in name order. */
static const char *route(const char *x, const char *key)
{
    static char out[512];
    rt_queue *qs[16];
    rt_exchange *ex = x[0] ? rt_exchange_find(x) : NULL;
    ck_assert_msg(ex || !x[0], "no exchange %s", x);
    int n = rt_route(ex, NULL, key, qs, 16);
    ck_assert_int_le(n, 16);
    const char *names[16];
    for (int i = 0; i < n; i++)
        names[i] = qs[i]->name;
    for (int i = 1; i < n; i++) /* insertion sort: a handful of names */
        for (int j = i; j > 0 && strcmp(names[j - 1], names[j]) > 0; j--) {
            const char *t = names[j];
            names[j] = names[j - 1];
            names[j - 1] = t;
        }
    out[0] = '\0';
    for (int i = 0; i < n; i++) {
        if (i)
            strcat(out, ",");
        strcat(out, names[i]);
    }
    return out;
}

START_TEST(test_builtin_exchanges_exist_and_are_reserved)
{
    ck_assert_ptr_nonnull(rt_exchange_find("amq.direct"));
    ck_assert_int_eq(rt_exchange_find("amq.fanout")->type, RT_FANOUT);
    ck_assert_int_eq(rt_exchange_find("amq.topic")->type, RT_TOPIC);
    ck_assert_int_eq(rt_exchange_find("amq.headers")->type, RT_HEADERS);
    ck_assert_int_eq(exchange("amq.mine", RT_DIRECT, false), -EPERM);
    ck_assert_int_eq(exchange("amq.direct", RT_FANOUT, false), -EEXIST); /* other type */
    ck_assert_int_eq(exchange("amq.direct", RT_DIRECT, false), 0);       /* same: fine */
}
END_TEST

START_TEST(test_default_exchange_routes_by_queue_name_and_takes_no_bindings)
{
    queue("orders");
    ck_assert_str_eq(route("", "orders"), "orders");
    ck_assert_str_eq(route("", "missing"), "");
    ck_assert_int_eq(bind("", "orders", "k"), -EPERM);
}
END_TEST

START_TEST(test_direct_routes_exact_keys_to_every_bound_queue)
{
    queue("a");
    queue("b");
    ck_assert_int_eq(bind("amq.direct", "a", "red"), 0);
    ck_assert_int_eq(bind("amq.direct", "b", "red"), 0);
    ck_assert_int_eq(bind("amq.direct", "b", "blue"), 0);
    ck_assert_str_eq(route("amq.direct", "red"), "a,b");
    ck_assert_str_eq(route("amq.direct", "blue"), "b");
    ck_assert_str_eq(route("amq.direct", "green"), "");
}
END_TEST

START_TEST(test_fanout_ignores_keys)
{
    queue("a");
    queue("b");
    bind("amq.fanout", "a", "");
    bind("amq.fanout", "b", "whatever");
    ck_assert_str_eq(route("amq.fanout", "anything"), "a,b");
}
END_TEST

START_TEST(test_topic_patterns)
{
    queue("all");
    queue("eu");
    bind("amq.topic", "all", "#");
    bind("amq.topic", "eu", "*.eu.#");
    ck_assert_str_eq(route("amq.topic", "order.eu.fr"), "all,eu");
    ck_assert_str_eq(route("amq.topic", "order.us"), "all");
}
END_TEST

START_TEST(test_headers_bindings_match_on_arguments)
{
    queue("red");
    pn_data_t *d = pn_data(8);
    pn_data_put_map(d);
    pn_data_enter(d);
    pn_data_put_string(d, pn_bytes(5, "color"));
    pn_data_put_string(d, pn_bytes(3, "red"));
    pn_data_exit(d);
    char buf[128];
    ssize_t n = pn_data_encode(d, buf, sizeof buf);
    pn_data_free(d);
    ck_assert_int_gt(n, 0);
    ck_assert_int_eq(bind_args(RT_REQ_BIND, "amq.headers", "red", "", false, buf, (size_t)n), 0);
    /* No properties: "all" needs color=red. */
    ck_assert_str_eq(route("amq.headers", ""), "");
    rt_bindset *bs = atomic_load(&rt_exchange_find("amq.headers")->bindings);
    ck_assert_uint_eq(bs->n, 1);
    ck_assert_str_eq(bs->b[0]->args, "x-match=all,color=\"red\"");
    ck_assert_int_eq(bind_args(RT_REQ_BIND, "amq.headers", "red", "", false, "\xff", 1), -EINVAL);
}
END_TEST

START_TEST(test_binding_twice_is_binding_once)
{
    queue("q");
    ck_assert_int_eq(bind("amq.direct", "q", "k"), 0);
    ck_assert_int_eq(bind("amq.direct", "q", "k"), 0);
    ck_assert_uint_eq(atomic_load(&rt_exchange_find("amq.direct")->bindings)->n, 1);
}
END_TEST

START_TEST(test_unbind_removes_exactly_that_binding)
{
    queue("q");
    bind("amq.direct", "q", "k1");
    bind("amq.direct", "q", "k2");
    ck_assert_int_eq(bind_args(RT_REQ_UNBIND, "amq.direct", "q", "k1", false, NULL, 0), 0);
    ck_assert_str_eq(route("amq.direct", "k1"), "");
    ck_assert_str_eq(route("amq.direct", "k2"), "q");
    ck_assert_int_eq(bind_args(RT_REQ_UNBIND, "amq.direct", "q", "k1", false, NULL, 0), -ENOENT);
}
END_TEST

START_TEST(test_bindings_need_both_ends)
{
    queue("q");
    ck_assert_int_eq(bind("nope", "q", "k"), -ENOENT);
    ck_assert_int_eq(bind("amq.direct", "missing", "k"), -ENOENT);
    ck_assert_int_eq(bind_args(RT_REQ_BIND, "amq.direct", "no-exchange", "k", true, NULL, 0), -ENOENT);
}
END_TEST

START_TEST(test_exchange_to_exchange_bindings_chain_and_cycles_end)
{
    queue("q1");
    queue("q2");
    ck_assert_int_eq(exchange("x1", RT_DIRECT, false), 0);
    ck_assert_int_eq(exchange("x2", RT_FANOUT, false), 0);
    ck_assert_int_eq(bind_args(RT_REQ_BIND, "x1", "x2", "k", true, NULL, 0), 0); /* x1 -k-> x2 */
    ck_assert_int_eq(bind("x2", "q2", ""), 0);
    ck_assert_int_eq(bind("x1", "q1", "k"), 0);
    ck_assert_str_eq(route("x1", "k"), "q1,q2");
    ck_assert_str_eq(route("x1", "other"), "");
    /* A cycle x2 -> x1 -> x2 visits each exchange once and ends. */
    ck_assert_int_eq(bind_args(RT_REQ_BIND, "x2", "x1", "", true, NULL, 0), 0);
    ck_assert_str_eq(route("x2", "k"), "q1,q2");
}
END_TEST

START_TEST(test_two_paths_to_one_queue_deliver_once)
{
    queue("q");
    ck_assert_int_eq(exchange("x", RT_TOPIC, false), 0);
    bind("x", "q", "a.*");
    bind("x", "q", "*.b");
    ck_assert_str_eq(route("x", "a.b"), "q");
}
END_TEST

START_TEST(test_deleting_a_queue_drops_its_bindings)
{
    queue("q");
    queue("stays");
    bind("amq.direct", "q", "k");
    bind("amq.direct", "stays", "k");
    rt_req_queue r = {0};
    snprintf(r.name, sizeof r.name, "q");
    ck_assert_int_eq(rt_call(T, RT_REQ_DELETE_QUEUE, &r, sizeof r, NULL, 0, 5000), 0);
    ck_assert(!queue_exists("q"));
    ck_assert_str_eq(route("amq.direct", "k"), "stays");
    ck_assert_uint_eq(atomic_load(&rt_exchange_find("amq.direct")->bindings)->n, 1);
    ck_assert_int_eq(rt_call(T, RT_REQ_DELETE_QUEUE, &r, sizeof r, NULL, 0, 5000), -ENOENT);
}
END_TEST

START_TEST(test_deleting_an_exchange_drops_bindings_to_it)
{
    queue("q");
    exchange("inner", RT_FANOUT, false);
    bind_args(RT_REQ_BIND, "amq.direct", "inner", "k", true, NULL, 0);
    bind("inner", "q", "");
    ck_assert_str_eq(route("amq.direct", "k"), "q");
    rt_req_exchange x = {0};
    snprintf(x.name, sizeof x.name, "inner");
    x.if_unused = true;
    ck_assert_int_eq(rt_call(T, RT_REQ_DELETE_EXCHANGE, &x, sizeof x, NULL, 0, 2000), -EBUSY);
    x.if_unused = false;
    ck_assert_int_eq(rt_call(T, RT_REQ_DELETE_EXCHANGE, &x, sizeof x, NULL, 0, 2000), 0);
    ck_assert(!exchange_exists("inner"));
    ck_assert_str_eq(route("amq.direct", "k"), "");
    snprintf(x.name, sizeof x.name, "amq.topic");
    ck_assert_int_eq(rt_call(T, RT_REQ_DELETE_EXCHANGE, &x, sizeof x, NULL, 0, 2000), -EPERM);
}
END_TEST

START_TEST(test_auto_delete_exchange_goes_with_its_last_binding)
{
    queue("q");
    ck_assert_int_eq(exchange("temp", RT_DIRECT, true), 0);
    bind("temp", "q", "a");
    bind("temp", "q", "b");
    bind_args(RT_REQ_UNBIND, "temp", "q", "a", false, NULL, 0);
    ck_assert(exchange_exists("temp"));
    bind_args(RT_REQ_UNBIND, "temp", "q", "b", false, NULL, 0);
    ck_assert(!exchange_exists("temp"));
}
END_TEST

START_TEST(test_queue_declared_twice_is_one_queue)
{
    rt_req_queue r = {0}, reply = {0};
    snprintf(r.name, sizeof r.name, "once");
    rt_qargs_init(&r.args);
    ck_assert_int_eq(rt_call(T, RT_REQ_DECLARE_QUEUE, &r, sizeof r, &reply, sizeof reply, 2000), 0);
    ck_assert(!reply.exists);
    ck_assert_int_eq(rt_call(T, RT_REQ_DECLARE_QUEUE, &r, sizeof r, &reply, sizeof reply, 2000), 0);
    ck_assert(reply.exists);
    r.passive = true;
    snprintf(r.name, sizeof r.name, "never");
    ck_assert_int_eq(rt_call(T, RT_REQ_DECLARE_QUEUE, &r, sizeof r, NULL, 0, 2000), -ENOENT);
    /* An empty name asks for a generated one. */
    r.passive = false;
    r.name[0] = '\0';
    ck_assert_int_eq(rt_call(T, RT_REQ_DECLARE_QUEUE, &r, sizeof r, &reply, sizeof reply, 2000), 0);
    ck_assert(strncmp(reply.name, "amq.gen-", 8) == 0);
    ck_assert(queue_exists(reply.name));
}
END_TEST

START_TEST(test_exclusive_queue_goes_with_its_owner)
{
    sv_pid owner;
    ck_assert_int_eq(sv_start(T, &counter_ops, NULL, NULL, 1000, &owner), 0);
    rt_req_queue r = {0};
    snprintf(r.name, sizeof r.name, "mine");
    rt_qargs_init(&r.args);
    r.args.exclusive = true;
    r.owner = owner;
    ck_assert_int_eq(rt_call(T, RT_REQ_DECLARE_QUEUE, &r, sizeof r, NULL, 0, 2000), 0);
    r.owner = sv_self(T); /* someone else */
    ck_assert_int_eq(rt_call(T, RT_REQ_DECLARE_QUEUE, &r, sizeof r, NULL, 0, 2000), -EBUSY);
    uint64_t ref = sv_monitor(T, owner);
    sv_exit(T, owner, SV_KILL);
    expect_down(ref, 1000);
    for (int i = 0; i < 200 && queue_exists("mine"); i++)
        usleep(5000);
    ck_assert(!queue_exists("mine"));
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("routing/bindings");
    TCase *tc = tcase_create("bindings");
    tcase_add_checked_fixture(tc, routing_up, routing_down);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_builtin_exchanges_exist_and_are_reserved);
    tcase_add_test(tc, test_default_exchange_routes_by_queue_name_and_takes_no_bindings);
    tcase_add_test(tc, test_direct_routes_exact_keys_to_every_bound_queue);
    tcase_add_test(tc, test_fanout_ignores_keys);
    tcase_add_test(tc, test_topic_patterns);
    tcase_add_test(tc, test_headers_bindings_match_on_arguments);
    tcase_add_test(tc, test_binding_twice_is_binding_once);
    tcase_add_test(tc, test_unbind_removes_exactly_that_binding);
    tcase_add_test(tc, test_bindings_need_both_ends);
    tcase_add_test(tc, test_exchange_to_exchange_bindings_chain_and_cycles_end);
    tcase_add_test(tc, test_two_paths_to_one_queue_deliver_once);
    tcase_add_test(tc, test_deleting_a_queue_drops_its_bindings);
    tcase_add_test(tc, test_deleting_an_exchange_drops_bindings_to_it);
    tcase_add_test(tc, test_auto_delete_exchange_goes_with_its_last_binding);
    tcase_add_test(tc, test_queue_declared_twice_is_one_queue);
    tcase_add_test(tc, test_exclusive_queue_goes_with_its_owner);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return run_suite(suite()); }
