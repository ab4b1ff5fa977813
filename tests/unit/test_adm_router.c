/* test_adm_router.c — the admin API's router (admin/router.c): paths split
 * into percent-decoded segments, handlers found by method and path, 404
 * and 405 (with Allow); the values RabbitMQ's API takes typed or as
 * strings (admin/values.c); sort= and columns= (admin/listing.c); and the
 * vhost and permission answers that need no running broker.
 */
#include <check.h>
#include <errno.h>
#include <jansson.h>
#include <string.h>

#include "check_main.h"
#include "admin/adm_internal.h"

static char pathbuf[512];
static adm_req Q;
static adm_resp R;

static void reset(void)
{
    json_decref(R.json);
    memset(&Q, 0, sizeof Q);
    memset(&R, 0, sizeof R);
}

static void teardown(void)
{
    reset();
    brk_users_free();
}

/* Splits path (after /api/) into Q; the split's answer. */
static bool split(const char *path)
{
    reset();
    snprintf(pathbuf, sizeof pathbuf, "%s", path);
    return adm__split_path(pathbuf, &Q, &R);
}

static adm_handler find(const char *method, const char *path, char *allow, size_t len)
{
    ck_assert_msg(split(path), "split %s", path);
    Q.method = method;
    return adm__route_find(&Q, allow, len);
}

/* Routes method path with body through the real handlers. */
static void route(const char *method, const char *path, const char *body)
{
    ck_assert_msg(split(path), "split %s", path);
    Q.method = method;
    Q.body = body ? body : "";
    Q.body_len = strlen(Q.body);
    adm__route(&Q, &R);
}

static const char *reason(void) { return json_string_value(json_object_get(R.json, "reason")); }
static const char *error(void) { return json_string_value(json_object_get(R.json, "error")); }

static json_t *parse_json(const char *text)
{
    json_error_t je;
    json_t *v = json_loads(text, JSON_DECODE_ANY, &je);
    ck_assert_msg(v != NULL, "test JSON: %s", je.text);
    return v;
}

/* ------------------------------------------------------------- splitting */

START_TEST(test_split_decodes_each_segment_after_splitting)
{
    ck_assert(split("queues/%2F/a%2Fb"));
    ck_assert_int_eq(Q.nsegs, 3);
    ck_assert_str_eq(Q.segs[0], "queues");
    ck_assert_str_eq(Q.segs[1], "/");   /* the vhost stays one segment */
    ck_assert_str_eq(Q.segs[2], "a/b"); /* so does a queue named a/b */
    ck_assert(split("exchanges/%2f/caf%C3%A9+x"));
    ck_assert_str_eq(Q.segs[1], "/");
    ck_assert_str_eq(Q.segs[2], "caf\xc3\xa9+x"); /* '+' is a plus in a path */
}
END_TEST

START_TEST(test_split_ignores_one_trailing_slash)
{
    ck_assert(split("queues/"));
    ck_assert_int_eq(Q.nsegs, 1);
    ck_assert_str_eq(Q.segs[0], "queues");
    ck_assert(split(""));
    ck_assert_int_eq(Q.nsegs, 1);
    ck_assert_str_eq(Q.segs[0], "");
}
END_TEST

START_TEST(test_split_refuses_bad_escapes_and_too_many_segments)
{
    ck_assert(!split("queues/%2"));
    ck_assert_int_eq(R.status, 400);
    ck_assert_str_eq(reason(), "bad percent-encoding in the path");
    ck_assert(!split("queues/%zz/q"));
    ck_assert_int_eq(R.status, 400);
    ck_assert(!split("queues/%00/q")); /* an encoded NUL would cut the name short */
    ck_assert_int_eq(R.status, 400);
    ck_assert(!split("a/b/c/d/e/f/g/h/i"));
    ck_assert_int_eq(R.status, 404);
    ck_assert(split("a/b/c/d/e/f/g/h"));
    ck_assert_int_eq(Q.nsegs, ADM_MAX_SEGS);
}
END_TEST

/* ------------------------------------------------------------- dispatch */

START_TEST(test_dispatch_by_method_and_path)
{
    char allow[48];
    ck_assert_ptr_eq(find("GET", "queues", allow, sizeof allow), adm__queues_list);
    ck_assert_ptr_eq(find("GET", "queues/%2F", allow, sizeof allow), adm__queues_list);
    ck_assert_ptr_eq(find("GET", "queues/%2F/q", allow, sizeof allow), adm__queue_get);
    ck_assert_ptr_eq(find("HEAD", "queues/%2F/q", allow, sizeof allow), adm__queue_get);
    ck_assert_ptr_eq(find("PUT", "queues/%2F/q", allow, sizeof allow), adm__queue_put);
    ck_assert_ptr_eq(find("DELETE", "queues/%2F/q", allow, sizeof allow), adm__queue_delete);
    ck_assert_ptr_eq(find("DELETE", "queues/%2F/q/contents", allow, sizeof allow), adm__queue_purge);
    ck_assert_ptr_eq(find("POST", "queues/%2F/q/get", allow, sizeof allow), adm__queue_fetch);
    /* a queue named "get" is still a queue */
    ck_assert_ptr_eq(find("PUT", "queues/%2F/get", allow, sizeof allow), adm__queue_put);
    ck_assert_ptr_eq(find("POST", "bindings/%2F/e/x/q/q", allow, sizeof allow), adm__binding_post);
    ck_assert_ptr_eq(find("POST", "bindings/%2F/e/x/e/y", allow, sizeof allow), adm__binding_post);
    ck_assert_ptr_eq(find("DELETE", "bindings/%2F/e/x/q/q/~", allow, sizeof allow), adm__binding_delete);
    ck_assert_ptr_eq(find("GET", "vhosts", allow, sizeof allow), adm__vhosts_list);
    ck_assert_ptr_eq(find("GET", "vhosts/%2F", allow, sizeof allow), adm__vhost_get);
    ck_assert_ptr_eq(find("GET", "vhosts/%2F/permissions", allow, sizeof allow), adm__permissions_list);
    ck_assert_ptr_eq(find("GET", "users/guest/permissions", allow, sizeof allow), adm__permissions_list);
    ck_assert_ptr_eq(find("GET", "permissions", allow, sizeof allow), adm__permissions_list);
    ck_assert_ptr_eq(find("PUT", "permissions/%2F/guest", allow, sizeof allow), adm__permission_put);
    ck_assert_ptr_eq(find("GET", "definitions/%2F", allow, sizeof allow), adm__definitions_get);
    ck_assert_ptr_eq(find("POST", "definitions", allow, sizeof allow), adm__definitions_post);
}
END_TEST

START_TEST(test_unknown_path_is_404_and_wrong_method_405_with_allow)
{
    char allow[48];
    ck_assert_ptr_null(find("GET", "queues/%2F/q/nothing", allow, sizeof allow));
    ck_assert_str_eq(allow, "");
    ck_assert_ptr_null(find("PATCH", "queues/%2F/q", allow, sizeof allow));
    ck_assert_str_eq(allow, "GET, PUT, DELETE");
    ck_assert_ptr_null(find("get", "overview", allow, sizeof allow)); /* methods are case-sensitive */
    ck_assert_str_eq(allow, "GET");

    route("POST", "overview", NULL);
    ck_assert_int_eq(R.status, 405);
    ck_assert_str_eq(R.allow, "GET");
    ck_assert_str_eq(error(), "method_not_allowed");
    ck_assert_str_eq(reason(), "POST is not allowed here (allowed: GET)");
    route("PUT", "permissions", NULL);
    ck_assert_int_eq(R.status, 405);
    ck_assert_str_eq(R.allow, "GET");
    route("POST", "consumers", NULL);
    ck_assert_int_eq(R.status, 405);
    ck_assert_str_eq(R.allow, "GET");
    route("GET", "consumers/%2F", NULL); /* no connection: an empty list */
    ck_assert_int_eq(R.status, 200);
    ck_assert_int_eq(json_array_size(R.json), 0);
    route("GET", "consumers/nowhere", NULL);
    ck_assert_int_eq(R.status, 404);
    route("GET", "channels/1", NULL);
    ck_assert_int_eq(R.status, 404);
    ck_assert_str_eq(error(), "not_found");
    ck_assert_str_eq(R.allow, "");
    route("GET", "queues/%2F/q/x/y", NULL);
    ck_assert_int_eq(R.status, 404);
}
END_TEST

/* --------------------------------------------------------------- values */

START_TEST(test_bool_takes_json_booleans_and_their_strings_only)
{
    const char *yes[] = {"true", "\"true\""}, *no[] = {"false", "\"false\""};
    const char *bad[] = {"\"yes\"", "\"True\"", "\"1\"", "1", "0", "null", "\"\"", "\"true \"", "[]"};
    for (size_t i = 0; i < 2; i++) {
        bool b = false;
        json_t *v = parse_json(yes[i]);
        ck_assert_int_eq(adm__parse_bool(v, &b), 0);
        ck_assert(b);
        json_decref(v);
        v = parse_json(no[i]);
        ck_assert_int_eq(adm__parse_bool(v, &b), 0);
        ck_assert(!b);
        json_decref(v);
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        bool b;
        json_t *v = parse_json(bad[i]);
        ck_assert_msg(adm__parse_bool(v, &b) == -EINVAL, "%s accepted", bad[i]);
        json_decref(v);
    }
    json_t *nul = json_stringn("true\0x", 6); /* an embedded NUL is not "true" */
    bool b;
    ck_assert_int_eq(adm__parse_bool(nul, &b), -EINVAL);
    json_decref(nul);
}
END_TEST

START_TEST(test_int_takes_numbers_and_strings_of_digits_only)
{
    static const struct {
        const char *json;
        int64_t want;
    } good[] = {{"5", 5},
                {"\"5\"", 5},
                {"\"-3\"", -3},
                {"\"+7\"", 7},
                {"5.0", 5},
                {"\"0\"", 0},
                {"\"9223372036854775807\"", INT64_MAX}};
    const char *bad[] = {"\"5x\"",
                         "\"\"",
                         "\"-\"",
                         "\" 5\"",
                         "\"5 \"",
                         "\"5.0\"",
                         "5.5",
                         "\"0x10\"",
                         "true",
                         "null",
                         "\"99999999999999999999\"",
                         "\"9223372036854775808\"",
                         "{}"};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        int64_t n = -1;
        json_t *v = parse_json(good[i].json);
        ck_assert_msg(adm__parse_int(v, &n) == 0, "%s refused", good[i].json);
        ck_assert_int_eq(n, good[i].want);
        json_decref(v);
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int64_t n;
        json_t *v = parse_json(bad[i]);
        ck_assert_msg(adm__parse_int(v, &n) == -EINVAL, "%s accepted", bad[i]);
        json_decref(v);
    }
}
END_TEST

START_TEST(test_coerce_rewrites_fields_typed_and_names_a_bad_one)
{
    static const char *const bools[] = {"durable", "auto_delete", NULL}, *const ints[] = {"count", NULL};
    char err[200];
    json_t *body = parse_json("{\"durable\": \"true\", \"auto_delete\": false, \"count\": \"5\", \"name\": \"true\"}");
    ck_assert_int_eq(adm__coerce(body, bools, ints, err, sizeof err), 0);
    ck_assert(json_is_true(json_object_get(body, "durable")));
    ck_assert(json_is_false(json_object_get(body, "auto_delete")));
    ck_assert(json_is_integer(json_object_get(body, "count")));
    ck_assert_int_eq(json_integer_value(json_object_get(body, "count")), 5);
    ck_assert(json_is_string(json_object_get(body, "name"))); /* only the named fields */
    json_decref(body);

    body = parse_json("{\"durable\": \"yes\"}");
    ck_assert_int_eq(adm__coerce(body, bools, ints, err, sizeof err), -EINVAL);
    ck_assert_msg(strstr(err, "durable must be true or false") != NULL, "%s", err);
    json_decref(body);
    body = parse_json("{\"count\": \"5x\"}");
    ck_assert_int_eq(adm__coerce(body, bools, ints, err, sizeof err), -EINVAL);
    ck_assert_msg(strstr(err, "count must be an integer") != NULL, "%s", err);
    json_decref(body);
}
END_TEST

/* -------------------------------------------------------------- listing */

static const char *names(json_t *arr)
{
    static char out[256];
    out[0] = '\0';
    size_t i;
    json_t *o;
    json_array_foreach(arr, i, o)
    {
        const char *n = json_string_value(json_object_get(o, "name"));
        snprintf(out + strlen(out), sizeof out - strlen(out), "%s%s", i ? "," : "", n ? n : "?");
    }
    return out;
}

START_TEST(test_sort_by_a_dotted_key_stable_and_reversible)
{
    json_t *arr = parse_json("[{\"name\": \"b\", \"s\": {\"n\": 10}}, {\"name\": \"a\", \"s\": {\"n\": 2}},"
                             " {\"name\": \"c\"}, {\"name\": \"d\", \"s\": {\"n\": 2}}]");
    ck_assert_int_eq(adm__list_sort(arr, "name", false), 0);
    ck_assert_str_eq(names(arr), "a,b,c,d");
    ck_assert_int_eq(adm__list_sort(arr, "s.n", false), 0);
    ck_assert_str_eq(names(arr), "c,a,d,b"); /* missing first; numbers as numbers; a before d kept */
    ck_assert_int_eq(adm__list_sort(arr, "s.n", true), 0);
    ck_assert_str_eq(names(arr), "b,d,a,c");
    json_decref(arr);
}
END_TEST

START_TEST(test_columns_keep_the_named_fields_nested)
{
    json_t *arr = parse_json("[{\"name\": \"q\", \"messages\": 3, \"x\": 1, \"totals\": {\"a\": 1, \"b\": 2}}]");
    json_t *got = adm__columns(arr, "name,totals.b,missing,totals.none.deeper");
    char *text = json_dumps(got, JSON_SORT_KEYS | JSON_COMPACT);
    ck_assert_str_eq(text, "[{\"name\":\"q\",\"totals\":{\"b\":2}}]");
    free(text);
    json_decref(got);
    json_t *one = adm__columns(json_array_get(arr, 0), "messages"); /* an object, as /api/overview */
    text = json_dumps(one, JSON_COMPACT);
    ck_assert_str_eq(text, "{\"messages\":3}");
    free(text);
    json_decref(one);
    json_decref(arr);
}
END_TEST

/* ------------------------------------------------- vhosts and permissions */

static void users_setup(void)
{
    brk_user u[2];
    memset(u, 0, sizeof u);
    snprintf(u[0].name, sizeof u[0].name, "guest");
    snprintf(u[1].name, sizeof u[1].name, "app");
    for (int i = 0; i < 2; i++)
        ck_assert_int_eq(brk_password_hash("pw", u[i].hash, sizeof u[i].hash), 0);
    ck_assert_int_eq(brk_users_set(u, 2, "guest"), 0);
}

START_TEST(test_only_the_vhost_slash_exists)
{
    route("PUT", "vhosts/%2F", "{\"description\": \"x\", \"tracing\": \"false\"}");
    ck_assert_int_eq(R.status, 204); /* it exists */
    route("PUT", "vhosts/%2F", "{\"tracing\": true}");
    ck_assert_int_eq(R.status, 400);
    ck_assert_str_eq(error(), "not_implemented");
    route("PUT", "vhosts/%2F", "{\"tracing\": \"yes\"}");
    ck_assert_int_eq(R.status, 400);
    ck_assert_str_eq(error(), "bad_request");
    route("PUT", "vhosts/other", "{}");
    ck_assert_int_eq(R.status, 400);
    ck_assert_str_eq(error(), "not_implemented");
    ck_assert_msg(strstr(reason(), "not implemented yet") != NULL, "%s", reason());
    route("DELETE", "vhosts/%2F", NULL);
    ck_assert_int_eq(R.status, 400);
    ck_assert_str_eq(error(), "not_implemented");
    route("DELETE", "vhosts/other", NULL);
    ck_assert_int_eq(R.status, 404);
    route("GET", "vhosts/other", NULL);
    ck_assert_int_eq(R.status, 404);
    ck_assert_msg(strstr(reason(), "vhost other not found") != NULL, "%s", reason());
}
END_TEST

START_TEST(test_every_user_has_full_permissions_on_slash)
{
    route("GET", "permissions", NULL);
    ck_assert_int_eq(R.status, 200);
    char *text = json_dumps(R.json, JSON_SORT_KEYS | JSON_COMPACT);
    ck_assert_str_eq(text,
                     "[{\"configure\":\".*\",\"read\":\".*\",\"user\":\"app\",\"vhost\":\"/\",\"write\":\".*\"},"
                     "{\"configure\":\".*\",\"read\":\".*\",\"user\":\"guest\",\"vhost\":\"/\",\"write\":\".*\"}]");
    free(text);
    route("GET", "vhosts/%2F/permissions", NULL);
    ck_assert_int_eq(json_array_size(R.json), 2);
    route("GET", "vhosts/other/permissions", NULL);
    ck_assert_int_eq(R.status, 404);
    route("GET", "users/app/permissions", NULL);
    ck_assert_int_eq(json_array_size(R.json), 1);
    ck_assert_str_eq(json_string_value(json_object_get(json_array_get(R.json, 0), "user")), "app");
    route("GET", "users/nobody/permissions", NULL);
    ck_assert_int_eq(R.status, 404);
    route("GET", "permissions/%2F/app", NULL);
    ck_assert_int_eq(R.status, 200);
    ck_assert_str_eq(json_string_value(json_object_get(R.json, "write")), ".*");
    route("GET", "permissions/%2F/nobody", NULL);
    ck_assert_int_eq(R.status, 404);
}
END_TEST

START_TEST(test_declaring_and_deleting_permissions)
{
    const char *full =
        "{\"configure\": \".*\", \"write\": \".*\", \"read\": \".*\", \"vhost\": \"/\", \"user\": \"app\"}";
    route("PUT", "permissions/%2F/app", full);
    ck_assert_int_eq(R.status, 204); /* app had full access (configured users do) */
    route("PUT", "permissions/%2F/app", "{\"configure\": \"^app\\\\.\", \"write\": \"\", \"read\": \".*\"}");
    ck_assert_int_eq(R.status, 204);
    route("GET", "permissions/%2F/app", NULL);
    ck_assert_str_eq(json_string_value(json_object_get(R.json, "configure")), "^app\\.");
    ck_assert_str_eq(json_string_value(json_object_get(R.json, "write")), "");
    route("PUT", "permissions/%2F/app", "{\"configure\": \".*\", \"write\": \".*\"}");
    ck_assert_int_eq(R.status, 400);
    ck_assert_str_eq(reason(), "read must be a string (a regular expression)");
    route("PUT", "permissions/%2F/app", "{\"configure\": \"(\", \"write\": \".*\", \"read\": \".*\"}");
    ck_assert_int_eq(R.status, 400);
    ck_assert_msg(strstr(reason(), "is not a regular expression") != NULL, "%s", reason());
    route("PUT", "permissions/%2F/nobody", full);
    ck_assert_int_eq(R.status, 404);
    route("PUT", "permissions/other/app", full);
    ck_assert_int_eq(R.status, 404);
    route("PUT", "permissions/%2F/app", "not json");
    ck_assert_int_eq(R.status, 400);
    route("DELETE", "permissions/%2F/app", NULL);
    ck_assert_int_eq(R.status, 204);
    route("DELETE", "permissions/%2F/app", NULL);
    ck_assert_int_eq(R.status, 404);
    route("GET", "permissions/%2F/app", NULL);
    ck_assert_int_eq(R.status, 404);
    route("PUT", "permissions/%2F/app", full);
    ck_assert_int_eq(R.status, 201);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("admin/router");
    TCase *tc = tcase_create("router");
    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_add_test(tc, test_split_decodes_each_segment_after_splitting);
    tcase_add_test(tc, test_split_ignores_one_trailing_slash);
    tcase_add_test(tc, test_split_refuses_bad_escapes_and_too_many_segments);
    tcase_add_test(tc, test_dispatch_by_method_and_path);
    tcase_add_test(tc, test_unknown_path_is_404_and_wrong_method_405_with_allow);
    suite_add_tcase(s, tc);
    tc = tcase_create("values");
    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_add_test(tc, test_bool_takes_json_booleans_and_their_strings_only);
    tcase_add_test(tc, test_int_takes_numbers_and_strings_of_digits_only);
    tcase_add_test(tc, test_coerce_rewrites_fields_typed_and_names_a_bad_one);
    tcase_add_test(tc, test_sort_by_a_dotted_key_stable_and_reversible);
    tcase_add_test(tc, test_columns_keep_the_named_fields_nested);
    suite_add_tcase(s, tc);
    tc = tcase_create("vhosts");
    tcase_add_checked_fixture(tc, users_setup, teardown);
    tcase_add_test(tc, test_only_the_vhost_slash_exists);
    tcase_add_test(tc, test_every_user_has_full_permissions_on_slash);
    tcase_add_test(tc, test_declaring_and_deleting_permissions);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return run_suite(suite()); }
