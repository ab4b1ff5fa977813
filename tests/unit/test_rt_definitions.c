/* test_rt_definitions.c — definitions documents (routing/definitions.c,
 * routing/json.c): the strict parser and its reasons, JSON <-> AMQP values,
 * and export -> parse -> apply on a fresh routing tree -> the same export.
 *
 * Exports read the directory from the test thread while nothing changes
 * it, as test_rt_bindings does with routes. */
#include <jansson.h>
#include <proton/codec.h>

#include "check_main.h"
#include "routing_helpers.h"

static char err[256];
static rt_defs D;

static int parse(const char *text)
{
    json_error_t je;
    json_t *doc = json_loads(text, 0, &je);
    ck_assert_msg(doc != NULL, "test JSON does not parse: %s", je.text);
    err[0] = '\0';
    int rc = rt_definitions_parse(doc, &D, err, sizeof err);
    json_decref(doc);
    return rc;
}

static void refused(const char *text, const char *want)
{
    ck_assert_int_eq(parse(text), -EINVAL);
    ck_assert_msg(strstr(err, want) != NULL, "err \"%s\" does not say \"%s\"", err, want);
    ck_assert_ptr_null(D.queues);
    ck_assert_uint_eq(D.nbindings, 0);
}

START_TEST(test_parse_reads_queues_exchanges_and_bindings_as_requests)
{
    ck_assert_int_eq(
        parse("{\"rabbit_version\": \"3.12.0\", \"users\": [], \"vhosts\": [{\"name\": \"/\"}],"
              " \"queues\": [{\"name\": \"orders\", \"vhost\": \"/\", \"durable\": true, \"auto_delete\": false,"
              "   \"arguments\": {\"x-max-length\": 10, \"x-overflow\": \"reject-publish\","
              "                  \"x-dead-letter-exchange\": \"dlx\", \"x-queue-type\": \"classic\"}},"
              "   {\"name\": \"tmp\", \"durable\": false, \"auto_delete\": true, \"arguments\": {}}],"
              " \"exchanges\": [{\"name\": \"events\", \"vhost\": \"/\", \"type\": \"topic\", \"durable\": true,"
              "   \"auto_delete\": false, \"internal\": false, \"arguments\": {}}],"
              " \"bindings\": [{\"source\": \"events\", \"vhost\": \"/\", \"destination\": \"orders\","
              "   \"destination_type\": \"queue\", \"routing_key\": \"order.*\", \"arguments\": {}}]}"),
        0);
    ck_assert_uint_eq(D.nqueues, 2);
    ck_assert_str_eq(D.queues[0].name, "orders");
    ck_assert(D.queues[0].args.durable);
    ck_assert_int_eq(D.queues[0].args.max_length, 10);
    ck_assert_int_eq(D.queues[0].args.overflow, RT_REJECT_PUBLISH);
    ck_assert(D.queues[0].args.has_dlx);
    ck_assert_str_eq(D.queues[0].args.dlx, "dlx");
    ck_assert(!D.queues[1].args.durable);
    ck_assert(D.queues[1].args.auto_delete);
    ck_assert_uint_eq(D.nexchanges, 1);
    ck_assert_str_eq(D.exchanges[0].name, "events");
    ck_assert_int_eq(D.exchanges[0].type, RT_TOPIC);
    ck_assert_uint_eq(D.nbindings, 1);
    ck_assert_str_eq(D.bindings[0].req->source, "events");
    ck_assert_str_eq(D.bindings[0].req->dest, "orders");
    ck_assert_str_eq(D.bindings[0].req->key, "order.*");
    ck_assert(!D.bindings[0].req->to_exchange);
    ck_assert_uint_eq(D.bindings[0].req->args_len, 0);
    ck_assert_uint_eq(D.bindings[0].len, sizeof(rt_req_bind));
    rt_defs_free(&D);
    ck_assert_uint_eq(D.nqueues, 0);
}
END_TEST

START_TEST(test_parse_takes_missing_sections_as_empty)
{
    ck_assert_int_eq(parse("{}"), 0);
    ck_assert_uint_eq(D.nqueues + D.nexchanges + D.nbindings, 0);
    rt_defs_free(&D);
}
END_TEST

START_TEST(test_parse_refuses_bad_entries_naming_them)
{
    refused("[]", "must be a JSON object");
    refused("{\"queues\": {}}", "queues must be an array");
    refused("{\"queues\": [{\"name\": \"a\"}, 7]}", "queues[1] must be an object");
    refused("{\"queues\": [{\"name\": \"\"}]}", "queues[0].name");
    refused("{\"queues\": [{\"name\": 5}]}", "queues[0].name must be a string");
    refused("{\"queues\": [{\"name\": \"a\", \"durable\": \"yes\"}]}", "queues[0].durable must be true or false");
    refused("{\"queues\": [{\"name\": \"a\", \"vhost\": \"other\"}]}", "only the vhost");
    refused("{\"queues\": [{\"name\": \"a\", \"arguments\": {\"x-max-length\": -1}}]}", "x-max-length");
    refused("{\"queues\": [{\"name\": \"a\", \"arguments\": {\"x-max-priority\": 5}}]}", "x-max-priority");
    refused("{\"queues\": [{\"name\": \"a\", \"arguments\": {\"x-max-length\": [1]}}]}", "string or an integer");
    refused("{\"queues\": [{\"name\": \"a\", \"arguments\": {\"exclusive\": true}}]}", "exclusive");
    refused("{\"exchanges\": [{\"name\": \"x\", \"type\": \"fast\"}]}", "exchanges[0].type");
    refused(
        "{\"exchanges\": [{\"name\": \"x\", \"type\": \"direct\", \"arguments\": {\"alternate-exchange\": \"y\"}}]}",
        "alternate");
    refused("{\"bindings\": [{\"source\": \"x\", \"destination\": \"q\", \"destination_type\": \"topic\"}]}",
            "bindings[0].destination_type");
    refused("{\"bindings\": [{\"source\": \"x\", \"destination_type\": \"queue\"}]}", "bindings[0].destination");
}
END_TEST

START_TEST(test_parse_refuses_names_longer_than_255_bytes)
{
    char doc[600], name[300];
    memset(name, 'n', 256);
    name[256] = '\0';
    snprintf(doc, sizeof doc, "{\"queues\": [{\"name\": \"%s\"}]}", name);
    refused(doc, "255");
    name[255] = '\0';
    snprintf(doc, sizeof doc, "{\"queues\": [{\"name\": \"%s\"}]}", name);
    ck_assert_int_eq(parse(doc), 0);
    rt_defs_free(&D);
}
END_TEST

START_TEST(test_binding_arguments_are_encoded_after_the_request)
{
    ck_assert_int_eq(
        parse("{\"bindings\": [{\"source\": \"h\", \"destination\": \"q\", \"destination_type\": \"queue\","
              " \"arguments\": {\"x-match\": \"any\", \"color\": \"red\", \"size\": 3}}]}"),
        0);
    rt_req_bind *b = D.bindings[0].req;
    ck_assert_uint_gt(b->args_len, 0);
    ck_assert_uint_eq(D.bindings[0].len, sizeof *b + b->args_len);
    ck_assert_str_eq(b->key, "");
    pn_data_t *d = pn_data(8);
    ck_assert_int_gt(pn_data_decode(d, (const char *)(b + 1), b->args_len), 0);
    pn_data_rewind(d);
    pn_data_next(d);
    json_t *back = rt_json_get(d);
    ck_assert_str_eq(json_string_value(json_object_get(back, "color")), "red");
    ck_assert_int_eq(json_integer_value(json_object_get(back, "size")), 3);
    ck_assert_str_eq(json_string_value(json_object_get(back, "x-match")), "any");
    json_decref(back);
    pn_data_free(d);
    rt_defs_free(&D);
}
END_TEST

START_TEST(test_json_values_survive_amqp_and_back)
{
    json_t *v = json_loads("{\"s\": \"text\", \"i\": -42, \"r\": 1.5, \"t\": true, \"f\": false, \"n\": null,"
                           " \"a\": [1, \"two\", [3]], \"o\": {\"k\": \"v\"}}",
                           0, NULL);
    pn_data_t *d = pn_data(8);
    ck_assert_int_eq(rt_json_put(d, v, err, sizeof err), 0);
    pn_data_rewind(d);
    pn_data_next(d);
    json_t *back = rt_json_get(d);
    ck_assert_msg(json_equal(v, back), "the value changed on the way");
    json_decref(back);
    json_decref(v);
    pn_data_free(d);
}
END_TEST

START_TEST(test_json_get_shows_binary_as_text_or_base64)
{
    pn_data_t *d = pn_data(8);
    pn_data_put_binary(d, pn_bytes(5, "hello"));
    pn_data_put_binary(d, pn_bytes(3, "\xff\x00\x01"));
    pn_data_put_symbol(d, pn_bytes(3, "sym"));
    pn_data_put_ulong(d, 7);
    pn_data_rewind(d);
    pn_data_next(d);
    json_t *a = rt_json_get(d);
    pn_data_next(d);
    json_t *b = rt_json_get(d);
    pn_data_next(d);
    json_t *c = rt_json_get(d);
    pn_data_next(d);
    json_t *n = rt_json_get(d);
    ck_assert_str_eq(json_string_value(a), "hello");
    ck_assert_str_eq(json_string_value(b), "/wAB");
    ck_assert_str_eq(json_string_value(c), "sym");
    ck_assert_int_eq(json_integer_value(n), 7);
    json_decref(a);
    json_decref(b);
    json_decref(c);
    json_decref(n);
    pn_data_free(d);
}
END_TEST

START_TEST(test_json_put_refuses_deep_nesting)
{
    char text[200] = "";
    for (int i = 0; i < 20; i++)
        strcat(text, "[");
    for (int i = 0; i < 20; i++)
        strcat(text, "]");
    json_t *v = json_loads(text, 0, NULL);
    pn_data_t *d = pn_data(8);
    ck_assert_int_eq(rt_json_put(d, v, err, sizeof err), -EINVAL);
    ck_assert_ptr_nonnull(strstr(err, "deeper"));
    json_decref(v);
    pn_data_free(d);
}
END_TEST

/* --------------------------------------------------- on a routing tree */

static void apply(const rt_defs *d)
{
    for (size_t i = 0; i < d->nexchanges; i++)
        ck_assert_int_eq(rt_call(T, RT_REQ_DECLARE_EXCHANGE, &d->exchanges[i], sizeof d->exchanges[i], NULL, 0, 2000),
                         0);
    for (size_t i = 0; i < d->nqueues; i++)
        ck_assert_int_eq(rt_call(T, RT_REQ_DECLARE_QUEUE, &d->queues[i], sizeof d->queues[i], NULL, 0, 2000), 0);
    for (size_t i = 0; i < d->nbindings; i++)
        ck_assert_int_eq(rt_call(T, RT_REQ_BIND, d->bindings[i].req, d->bindings[i].len, NULL, 0, 2000), 0);
}

static const char *DOC =
    "{\"exchanges\": [{\"name\": \"h\", \"type\": \"headers\"}, {\"name\": \"t\", \"type\": \"topic\", \"durable\": "
    "false},"
    "                 {\"name\": \"e2\", \"type\": \"fanout\", \"auto_delete\": true}],"
    " \"queues\": [{\"name\": \"b\", \"arguments\": {\"x-message-ttl\": 5000, \"x-dead-letter-routing-key\": "
    "\"dead\"}},"
    "              {\"name\": \"a\", \"durable\": false}, {\"name\": \"c\", \"arguments\": {\"x-max-length-bytes\": "
    "1024}}],"
    " \"bindings\": [{\"source\": \"h\", \"destination\": \"a\", \"destination_type\": \"queue\","
    "                 \"arguments\": {\"x-match\": \"any\", \"k\": \"v\"}},"
    "               {\"source\": \"t\", \"destination\": \"b\", \"destination_type\": \"queue\", \"routing_key\": "
    "\"x.#\"},"
    "               {\"source\": \"amq.direct\", \"destination\": \"c\", \"destination_type\": \"queue\", "
    "\"routing_key\": \"k\"},"
    "               {\"source\": \"amq.fanout\", \"destination\": \"e2\", \"destination_type\": \"exchange\"}]}";

START_TEST(test_export_after_import_gives_the_document_back_sorted)
{
    routing_up();
    ck_assert_int_eq(parse(DOC), 0);
    apply(&D);
    rt_defs_free(&D);
    json_t *out = rt_definitions_export(false);
    ck_assert_ptr_nonnull(out);
    json_t *qs = json_object_get(out, "queues"), *xs = json_object_get(out, "exchanges");
    ck_assert_uint_eq(json_array_size(qs), 3);
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(qs, 0), "name")), "a");
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(qs, 2), "name")), "c");
    json_t *b = json_array_get(qs, 1);
    ck_assert_int_eq(json_integer_value(json_object_get(json_object_get(b, "arguments"), "x-message-ttl")), 5000);
    ck_assert_str_eq(json_string_value(json_object_get(b, "vhost")), "/");
    ck_assert_uint_eq(json_array_size(xs), 3); /* the amq.* ones are not exported */
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(xs, 0), "name")), "e2");
    ck_assert_uint_eq(json_array_size(json_object_get(out, "bindings")), 4);
    json_t *hb = json_array_get(json_object_get(out, "bindings"), 2); /* amq.direct, amq.fanout, h, t */
    ck_assert_str_eq(json_string_value(json_object_get(hb, "source")), "h");
    ck_assert_str_eq(json_string_value(json_object_get(json_object_get(hb, "arguments"), "k")), "v");

    /* The export parses back into the same requests: a second broker
     * given it exports the same document. */
    char *first = json_dumps(out, JSON_SORT_KEYS);
    err[0] = '\0';
    ck_assert_int_eq(rt_definitions_parse(out, &D, err, sizeof err), 0);
    json_decref(out);
    routing_down();
    routing_up();
    apply(&D);
    rt_defs_free(&D);
    out = rt_definitions_export(false);
    char *second = json_dumps(out, JSON_SORT_KEYS);
    ck_assert_str_eq(first, second);
    free(first);
    free(second);
    json_decref(out);
    routing_down();
}
END_TEST

START_TEST(test_durable_export_leaves_out_transient_things_and_their_bindings)
{
    routing_up();
    ck_assert_int_eq(parse(DOC), 0);
    apply(&D);
    rt_defs_free(&D);
    json_t *out = rt_definitions_export(true);
    json_t *qs = json_object_get(out, "queues");
    ck_assert_uint_eq(json_array_size(qs), 2); /* not "a" */
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(qs, 0), "name")), "b");
    ck_assert_uint_eq(json_array_size(json_object_get(out, "exchanges")), 2); /* not "t" */
    json_t *bs = json_object_get(out, "bindings");
    ck_assert_uint_eq(json_array_size(bs), 2); /* h->a and t->b touch transient things */
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(bs, 0), "destination")), "c");
    json_decref(out);
    routing_down();
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("routing/definitions");
    TCase *tc = tcase_create("parse");
    tcase_add_test(tc, test_parse_reads_queues_exchanges_and_bindings_as_requests);
    tcase_add_test(tc, test_parse_takes_missing_sections_as_empty);
    tcase_add_test(tc, test_parse_refuses_bad_entries_naming_them);
    tcase_add_test(tc, test_parse_refuses_names_longer_than_255_bytes);
    tcase_add_test(tc, test_binding_arguments_are_encoded_after_the_request);
    tcase_add_test(tc, test_json_values_survive_amqp_and_back);
    tcase_add_test(tc, test_json_get_shows_binary_as_text_or_base64);
    tcase_add_test(tc, test_json_put_refuses_deep_nesting);
    suite_add_tcase(s, tc);
    TCase *tt = tcase_create("export");
    tcase_set_timeout(tt, 30);
    tcase_add_test(tt, test_export_after_import_gives_the_document_back_sorted);
    tcase_add_test(tt, test_durable_export_leaves_out_transient_things_and_their_bindings);
    suite_add_tcase(s, tt);
    return s;
}

int main(void) { return run_suite(suite()); }
