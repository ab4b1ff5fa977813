/* test_rt_headers.c — headers exchange bindings (routing/headers.c):
 * rt_hdrmatch_new parses binding arguments (a proton map), rt_hdrmatch_test
 * matches a message's application properties, rt_hdrmatch_str lists them.
 *
 * Semantics follow RabbitMQ's headers exchange: x-match "all" (default) or
 * "any"; "all-with-x" / "any-with-x" also compare x- headers, which are
 * otherwise ignored; a void (null) binding value matches on presence; an
 * empty "all" binding matches everything and an empty "any" nothing.
 *
 * rt_hdrmatch_test takes the properties positioned ON the map node (as
 * rt_msg_app_props leaves them), so props() below rewinds and steps once. */
#include <check.h>
#include <errno.h>
#include <proton/codec.h>
#include <stdlib.h>
#include <string.h>

#include "check_main.h"
#include "routing/rt.h"

/* ------------------------------------------------------------- builders */

static pn_data_t *map_new(void)
{
    pn_data_t *d = pn_data(16);
    ck_assert_ptr_nonnull(d);
    ck_assert_int_eq(pn_data_put_map(d), 0);
    ck_assert(pn_data_enter(d));
    return d;
}
static void key(pn_data_t *d, const char *k) { ck_assert_int_eq(pn_data_put_string(d, pn_bytes(strlen(k), k)), 0); }
static void kv_str(pn_data_t *d, const char *k, const char *v)
{
    key(d, k);
    ck_assert_int_eq(pn_data_put_string(d, pn_bytes(strlen(v), v)), 0);
}
static void kv_sym(pn_data_t *d, const char *k, const char *v)
{
    key(d, k);
    ck_assert_int_eq(pn_data_put_symbol(d, pn_bytes(strlen(v), v)), 0);
}
static void kv_int(pn_data_t *d, const char *k, int32_t v)
{
    key(d, k);
    ck_assert_int_eq(pn_data_put_int(d, v), 0);
}
static void kv_long(pn_data_t *d, const char *k, int64_t v)
{
    key(d, k);
    ck_assert_int_eq(pn_data_put_long(d, v), 0);
}
static void kv_null(pn_data_t *d, const char *k)
{
    key(d, k);
    ck_assert_int_eq(pn_data_put_null(d), 0);
}
/* Closes the map: binding arguments (rt_hdrmatch_new rewinds them itself). */
static pn_data_t *args_done(pn_data_t *d)
{
    ck_assert(pn_data_exit(d));
    pn_data_rewind(d);
    return d;
}
/* Closes the map and positions d on it: message application properties. */
static pn_data_t *props(pn_data_t *d)
{
    args_done(d);
    ck_assert(pn_data_next(d));
    ck_assert_int_eq(pn_data_type(d), PN_MAP);
    return d;
}

/* A binding from args (freed here); fails the test if it is refused. */
static rt_hdrmatch *binding(pn_data_t *args)
{
    rt_hdrmatch *h = NULL;
    char err[128] = "";
    int rc = rt_hdrmatch_new(args, &h, err, sizeof err);
    ck_assert_msg(rc == 0, "rt_hdrmatch_new: %d (%s)", rc, err);
    ck_assert_ptr_nonnull(h);
    pn_data_free(args);
    return h;
}

/* Tests h against properties p, then frees p. */
static bool test_and_free(const rt_hdrmatch *h, pn_data_t *p)
{
    bool r = rt_hdrmatch_test(h, p);
    pn_data_free(p);
    return r;
}

/* -------------------------------------------------------------- x-match */

START_TEST(test_headers_all_is_the_default_and_needs_every_header)
{
    pn_data_t *a = map_new();
    kv_str(a, "format", "pdf");
    kv_str(a, "type", "report");
    rt_hdrmatch *h = binding(args_done(a));

    pn_data_t *p = map_new();
    kv_str(p, "format", "pdf");
    kv_str(p, "type", "report");
    ck_assert(test_and_free(h, props(p)));

    p = map_new(); /* extra properties do not matter, nor does order */
    kv_str(p, "extra", "yes");
    kv_str(p, "type", "report");
    kv_str(p, "format", "pdf");
    ck_assert(test_and_free(h, props(p)));

    p = map_new(); /* one missing */
    kv_str(p, "format", "pdf");
    ck_assert(!test_and_free(h, props(p)));

    p = map_new(); /* one different */
    kv_str(p, "format", "pdf");
    kv_str(p, "type", "log");
    ck_assert(!test_and_free(h, props(p)));

    ck_assert(!rt_hdrmatch_test(h, NULL)); /* no application properties */
    rt_hdrmatch_free(h);
}
END_TEST

START_TEST(test_headers_explicit_x_match_all_needs_every_header)
{
    pn_data_t *a = map_new();
    kv_str(a, "x-match", "all");
    kv_str(a, "a", "1");
    kv_str(a, "b", "2");
    rt_hdrmatch *h = binding(args_done(a));

    pn_data_t *p = map_new();
    kv_str(p, "a", "1");
    kv_str(p, "b", "2");
    ck_assert(test_and_free(h, props(p)));

    p = map_new();
    kv_str(p, "b", "2");
    ck_assert(!test_and_free(h, props(p)));
    rt_hdrmatch_free(h);
}
END_TEST

START_TEST(test_headers_any_needs_one_matching_header)
{
    pn_data_t *a = map_new();
    kv_str(a, "x-match", "any");
    kv_str(a, "a", "1");
    kv_str(a, "b", "2");
    rt_hdrmatch *h = binding(args_done(a));

    pn_data_t *p = map_new(); /* the second one matches */
    kv_str(p, "a", "9");
    kv_str(p, "b", "2");
    ck_assert(test_and_free(h, props(p)));

    p = map_new();
    kv_str(p, "a", "1");
    ck_assert(test_and_free(h, props(p)));

    p = map_new(); /* present but different */
    kv_str(p, "a", "9");
    kv_str(p, "b", "9");
    ck_assert(!test_and_free(h, props(p)));

    p = map_new(); /* none present */
    kv_str(p, "c", "1");
    ck_assert(!test_and_free(h, props(p)));

    ck_assert(!test_and_free(h, props(map_new()))); /* empty map */
    ck_assert(!rt_hdrmatch_test(h, NULL));
    rt_hdrmatch_free(h);
}
END_TEST

START_TEST(test_headers_x_match_may_be_a_symbol)
{
    pn_data_t *a = map_new();
    kv_sym(a, "x-match", "any");
    kv_str(a, "a", "1");
    kv_str(a, "b", "2");
    rt_hdrmatch *h = binding(args_done(a));
    pn_data_t *p = map_new();
    kv_str(p, "b", "2");
    ck_assert(test_and_free(h, props(p))); /* any, not all */
    rt_hdrmatch_free(h);
}
END_TEST

/* ------------------------------------------------------------ x- headers */

START_TEST(test_headers_x_headers_are_ignored_by_all_and_any)
{
    /* all: an x- header in the binding is not required of the message. */
    pn_data_t *a = map_new();
    kv_str(a, "x-tenant", "blue");
    kv_str(a, "a", "1");
    rt_hdrmatch *h = binding(args_done(a));
    pn_data_t *p = map_new();
    kv_str(p, "a", "1");
    ck_assert(test_and_free(h, props(p)));
    p = map_new();
    kv_str(p, "a", "1");
    kv_str(p, "x-tenant", "red"); /* nor compared if present */
    ck_assert(test_and_free(h, props(p)));
    rt_hdrmatch_free(h);

    /* any: an x- header alone never matches, even when equal. */
    a = map_new();
    kv_str(a, "x-match", "any");
    kv_str(a, "x-tenant", "blue");
    h = binding(args_done(a));
    p = map_new();
    kv_str(p, "x-tenant", "blue");
    ck_assert(!test_and_free(h, props(p)));
    rt_hdrmatch_free(h);
}
END_TEST

START_TEST(test_headers_all_with_x_compares_x_headers_too)
{
    pn_data_t *a = map_new();
    kv_str(a, "x-match", "all-with-x");
    kv_str(a, "x-tenant", "blue");
    kv_str(a, "a", "1");
    rt_hdrmatch *h = binding(args_done(a));

    pn_data_t *p = map_new();
    kv_str(p, "a", "1");
    ck_assert(!test_and_free(h, props(p))); /* x-tenant missing */

    p = map_new();
    kv_str(p, "a", "1");
    kv_str(p, "x-tenant", "red");
    ck_assert(!test_and_free(h, props(p)));

    p = map_new();
    kv_str(p, "x-tenant", "blue");
    kv_str(p, "a", "1");
    ck_assert(test_and_free(h, props(p)));
    rt_hdrmatch_free(h);
}
END_TEST

START_TEST(test_headers_any_with_x_matches_on_an_x_header)
{
    pn_data_t *a = map_new();
    kv_str(a, "x-match", "any-with-x");
    kv_str(a, "x-tenant", "blue");
    kv_str(a, "a", "1");
    rt_hdrmatch *h = binding(args_done(a));

    pn_data_t *p = map_new();
    kv_str(p, "x-tenant", "blue");
    ck_assert(test_and_free(h, props(p)));

    p = map_new();
    kv_str(p, "x-tenant", "red");
    kv_str(p, "a", "2");
    ck_assert(!test_and_free(h, props(p)));
    rt_hdrmatch_free(h);
}
END_TEST

/* ---------------------------------------------------------------- values */

START_TEST(test_headers_null_binding_value_matches_on_presence)
{
    pn_data_t *a = map_new();
    kv_null(a, "trace");
    rt_hdrmatch *h = binding(args_done(a));

    pn_data_t *p = map_new();
    kv_str(p, "trace", "anything");
    ck_assert(test_and_free(h, props(p)));
    p = map_new();
    kv_int(p, "trace", 42);
    ck_assert(test_and_free(h, props(p)));
    p = map_new();
    kv_null(p, "trace");
    ck_assert(test_and_free(h, props(p)));
    p = map_new();
    kv_str(p, "other", "x");
    ck_assert(!test_and_free(h, props(p)));
    ck_assert(!test_and_free(h, props(map_new())));
    rt_hdrmatch_free(h);
}
END_TEST

START_TEST(test_headers_value_type_must_match)
{
    /* string "1" is not int 1, either way round. */
    pn_data_t *a = map_new();
    kv_str(a, "n", "1");
    rt_hdrmatch *h = binding(args_done(a));
    pn_data_t *p = map_new();
    kv_int(p, "n", 1);
    ck_assert(!test_and_free(h, props(p)));
    p = map_new();
    kv_sym(p, "n", "1"); /* nor a symbol "1" */
    ck_assert(!test_and_free(h, props(p)));
    p = map_new();
    kv_str(p, "n", "1");
    ck_assert(test_and_free(h, props(p)));
    rt_hdrmatch_free(h);

    a = map_new();
    kv_int(a, "n", 1);
    h = binding(args_done(a));
    p = map_new();
    kv_str(p, "n", "1");
    ck_assert(!test_and_free(h, props(p)));
    p = map_new();
    kv_long(p, "n", 1); /* same value, wider type */
    ck_assert(!test_and_free(h, props(p)));
    rt_hdrmatch_free(h);
}
END_TEST

START_TEST(test_headers_values_of_each_simple_type_compare_by_value)
{
    pn_data_t *a = map_new();
    kv_int(a, "i", -7);
    kv_long(a, "l", INT64_C(1) << 40);
    key(a, "b");
    pn_data_put_bool(a, true);
    key(a, "d");
    pn_data_put_double(a, 2.5);
    key(a, "u");
    pn_data_put_ubyte(a, 200);
    key(a, "bin");
    pn_data_put_binary(a, pn_bytes(3, "\x00\x01\x02"));
    key(a, "ts");
    pn_data_put_timestamp(a, 1700000000000);
    rt_hdrmatch *h = binding(args_done(a));

    /* All equal. */
    pn_data_t *p = map_new();
    kv_int(p, "i", -7);
    kv_long(p, "l", INT64_C(1) << 40);
    key(p, "b");
    pn_data_put_bool(p, true);
    key(p, "d");
    pn_data_put_double(p, 2.5);
    key(p, "u");
    pn_data_put_ubyte(p, 200);
    key(p, "bin");
    pn_data_put_binary(p, pn_bytes(3, "\x00\x01\x02"));
    key(p, "ts");
    pn_data_put_timestamp(p, 1700000000000);
    ck_assert(test_and_free(h, props(p)));

    /* Each differing in value alone breaks an "all" match. */
    for (int which = 0; which < 7; which++) {
        p = map_new();
        kv_int(p, "i", which == 0 ? 7 : -7);
        kv_long(p, "l", which == 1 ? (INT64_C(1) << 40) + 1 : INT64_C(1) << 40);
        key(p, "b");
        pn_data_put_bool(p, which != 2);
        key(p, "d");
        pn_data_put_double(p, which == 3 ? 2.25 : 2.5);
        key(p, "u");
        pn_data_put_ubyte(p, which == 4 ? 201 : 200);
        key(p, "bin");
        pn_data_put_binary(p, which == 5 ? pn_bytes(3, "\x00\x01\x03") : pn_bytes(3, "\x00\x01\x02"));
        key(p, "ts");
        pn_data_put_timestamp(p, which == 6 ? 1700000000001 : 1700000000000);
        ck_assert_msg(!test_and_free(h, props(p)), "value %d differs yet matched", which);
    }
    rt_hdrmatch_free(h);
}
END_TEST

START_TEST(test_headers_binding_keeps_its_own_copy_of_string_values)
{
    pn_data_t *a = map_new();
    kv_str(a, "k", "value");
    rt_hdrmatch *h = binding(args_done(a)); /* frees a: strings must have been copied */
    pn_data_t *p = map_new();
    kv_str(p, "k", "value");
    ck_assert(test_and_free(h, props(p)));
    p = map_new();
    kv_str(p, "k", "valuE");
    ck_assert(!test_and_free(h, props(p)));
    p = map_new();
    kv_str(p, "k", "value2"); /* a longer string sharing the prefix */
    ck_assert(!test_and_free(h, props(p)));
    rt_hdrmatch_free(h);
}
END_TEST

/* proton's put functions for small integers set only their member of the
 * atom's union; a node reused after pn_data_clear (or fresh from malloc)
 * keeps whatever the rest held. Equal ints must match regardless. */
START_TEST(test_headers_equal_ints_match_whatever_the_data_held_before)
{
    pn_data_t *a = map_new();
    kv_long(a, "n", INT64_C(0x3333333300000000));
    args_done(a);
    pn_data_clear(a); /* the same nodes, refilled */
    ck_assert_int_eq(pn_data_put_map(a), 0);
    pn_data_enter(a);
    kv_int(a, "n", 7);
    rt_hdrmatch *h = binding(args_done(a));

    pn_data_t *p = map_new();
    kv_long(p, "n", INT64_C(0x5555555500000000));
    args_done(p);
    pn_data_clear(p);
    ck_assert_int_eq(pn_data_put_map(p), 0);
    pn_data_enter(p);
    kv_int(p, "n", 7);
    ck_assert_msg(test_and_free(h, props(p)), "int 7 does not match int 7");
    rt_hdrmatch_free(h);
}
END_TEST

/* --------------------------------------------------------- empty bindings */

START_TEST(test_headers_empty_all_binding_matches_everything)
{
    rt_hdrmatch *h = NULL;
    char err[128] = "";
    ck_assert_int_eq(rt_hdrmatch_new(NULL, &h, err, sizeof err), 0); /* no arguments at all */
    ck_assert_ptr_nonnull(h);
    ck_assert(rt_hdrmatch_test(h, NULL));
    pn_data_t *p = map_new();
    kv_str(p, "a", "1");
    ck_assert(test_and_free(h, props(p)));
    rt_hdrmatch_free(h);

    h = binding(args_done(map_new())); /* an empty map */
    ck_assert(rt_hdrmatch_test(h, NULL));
    ck_assert(test_and_free(h, props(map_new())));
    rt_hdrmatch_free(h);

    pn_data_t *a = map_new(); /* only x- arguments: nothing to compare */
    kv_str(a, "x-match", "all");
    kv_str(a, "x-other", "z");
    h = binding(args_done(a));
    p = map_new();
    kv_str(p, "b", "2");
    ck_assert(test_and_free(h, props(p)));
    rt_hdrmatch_free(h);
}
END_TEST

START_TEST(test_headers_empty_any_binding_matches_nothing)
{
    pn_data_t *a = map_new();
    kv_str(a, "x-match", "any");
    rt_hdrmatch *h = binding(args_done(a));
    ck_assert(!rt_hdrmatch_test(h, NULL));
    ck_assert(!test_and_free(h, props(map_new())));
    pn_data_t *p = map_new();
    kv_str(p, "a", "1");
    ck_assert(!test_and_free(h, props(p)));
    rt_hdrmatch_free(h);
}
END_TEST

/* ------------------------------------------------- position of properties */

START_TEST(test_headers_test_leaves_properties_where_they_were)
{
    pn_data_t *a = map_new();
    kv_str(a, "x-match", "any");
    kv_str(a, "zz", "no");
    kv_str(a, "b", "2");
    rt_hdrmatch *h = binding(args_done(a));

    pn_data_t *p = map_new();
    kv_str(p, "a", "1");
    kv_str(p, "b", "2");
    props(p);
    pn_handle_t at = pn_data_point(p);
    for (int i = 0; i < 3; i++) {
        ck_assert(rt_hdrmatch_test(h, p)); /* the same answer every time */
        ck_assert(pn_data_point(p) == at);
        ck_assert_int_eq(pn_data_type(p), PN_MAP);
    }
    pn_data_free(p);
    rt_hdrmatch_free(h);
}
END_TEST

START_TEST(test_headers_properties_with_non_string_keys_are_skipped)
{
    pn_data_t *a = map_new();
    kv_str(a, "b", "2");
    rt_hdrmatch *h = binding(args_done(a));
    pn_data_t *p = map_new();
    pn_data_put_int(p, 5); /* a key that is not a string */
    pn_data_put_string(p, pn_bytes(1, "2"));
    kv_str(p, "b", "2");
    ck_assert(test_and_free(h, props(p)));
    rt_hdrmatch_free(h);
}
END_TEST

/* ----------------------------------------------------------------- errors */

START_TEST(test_headers_bad_x_match_is_einval_with_a_message)
{
    const char *bad[] = {"some", "ALL", "", "all-with-y", "anyx"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        pn_data_t *a = map_new();
        kv_str(a, "a", "1");
        kv_str(a, "x-match", bad[i]);
        args_done(a);
        rt_hdrmatch *h = (rt_hdrmatch *)&h; /* must be reset */
        char err[128] = "";
        ck_assert_int_eq(rt_hdrmatch_new(a, &h, err, sizeof err), -EINVAL);
        ck_assert_ptr_null(h);
        ck_assert_msg(strstr(err, "x-match") != NULL, "x-match \"%s\": message \"%s\"", bad[i], err);
        pn_data_free(a);
    }
    /* Not a string at all. */
    pn_data_t *a = map_new();
    kv_int(a, "x-match", 1);
    args_done(a);
    rt_hdrmatch *h = NULL;
    char err[128] = "";
    ck_assert_int_eq(rt_hdrmatch_new(a, &h, err, sizeof err), -EINVAL);
    ck_assert_ptr_null(h);
    ck_assert_ptr_nonnull(strstr(err, "x-match"));
    pn_data_free(a);
}
END_TEST

START_TEST(test_headers_non_map_arguments_are_einval)
{
    pn_data_t *a = pn_data(4);
    pn_data_put_list(a);
    pn_data_enter(a);
    pn_data_put_string(a, pn_bytes(1, "a"));
    pn_data_exit(a);
    rt_hdrmatch *h = (rt_hdrmatch *)&h;
    char err[128] = "";
    ck_assert_int_eq(rt_hdrmatch_new(a, &h, err, sizeof err), -EINVAL);
    ck_assert_ptr_null(h);
    ck_assert_msg(strstr(err, "map") != NULL, "message: \"%s\"", err);
    pn_data_free(a);

    a = pn_data(4);
    pn_data_put_string(a, pn_bytes(9, "x-match=1"));
    err[0] = '\0';
    ck_assert_int_eq(rt_hdrmatch_new(a, &h, err, sizeof err), -EINVAL);
    ck_assert_ptr_null(h);
    ck_assert_str_ne(err, "");
    pn_data_free(a);
}
END_TEST

START_TEST(test_headers_non_string_argument_names_are_einval)
{
    pn_data_t *a = map_new();
    kv_str(a, "a", "1");
    pn_data_put_int(a, 2);
    pn_data_put_string(a, pn_bytes(1, "v"));
    args_done(a);
    rt_hdrmatch *h = (rt_hdrmatch *)&h;
    char err[128] = "";
    ck_assert_int_eq(rt_hdrmatch_new(a, &h, err, sizeof err), -EINVAL);
    ck_assert_ptr_null(h);
    ck_assert_str_ne(err, "");
    pn_data_free(a);
}
END_TEST

START_TEST(test_headers_compound_values_are_einval_naming_the_header)
{
    pn_data_t *a = map_new();
    kv_str(a, "a", "1"); /* parsed before the bad one: must not leak */
    key(a, "nested");
    pn_data_put_list(a);
    pn_data_enter(a);
    pn_data_put_int(a, 1);
    pn_data_exit(a);
    args_done(a);
    rt_hdrmatch *h = (rt_hdrmatch *)&h;
    char err[128] = "";
    ck_assert_int_eq(rt_hdrmatch_new(a, &h, err, sizeof err), -EINVAL);
    ck_assert_ptr_null(h);
    ck_assert_msg(strstr(err, "nested") != NULL, "message: \"%s\"", err);
    pn_data_free(a);
}
END_TEST

/* -------------------------------------------------------------- listing */

static void str_of(pn_data_t *args, char *buf, size_t len)
{
    rt_hdrmatch *h = binding(args);
    rt_hdrmatch_str(h, buf, len);
    rt_hdrmatch_free(h);
}

START_TEST(test_headers_str_names_the_match_kind_and_headers)
{
    char s[256];
    str_of(args_done(map_new()), s, sizeof s);
    ck_assert_str_eq(s, "x-match=all");

    pn_data_t *a = map_new();
    kv_str(a, "x-match", "any-with-x");
    kv_str(a, "format", "pdf");
    str_of(args_done(a), s, sizeof s);
    ck_assert_msg(strncmp(s, "x-match=any-with-x", 18) == 0, "\"%s\"", s);
    ck_assert_msg(strstr(s, ",format") != NULL, "\"%s\"", s);

    a = map_new();
    kv_str(a, "x-match", "all-with-x");
    str_of(args_done(a), s, sizeof s);
    ck_assert_str_eq(s, "x-match=all-with-x");

    /* A small buffer is truncated, still terminated. */
    a = map_new();
    kv_str(a, "aaaaaaaa", "1");
    kv_str(a, "bbbbbbbb", "2");
    char small[16];
    memset(small, 'Z', sizeof small);
    str_of(args_done(a), small, sizeof small);
    ck_assert_uint_eq(strlen(small), sizeof small - 1);
}
END_TEST

/* The listing is part of a binding's identity (rt_binding.args): bindings
 * that differ only in a header's value are different bindings, so their
 * listings must differ (rt.h documents the form as "x-match=all,a=1"). */
START_TEST(test_headers_str_differs_when_values_differ)
{
    char s1[256], s2[256];
    pn_data_t *a = map_new();
    kv_str(a, "format", "pdf");
    str_of(args_done(a), s1, sizeof s1);
    a = map_new();
    kv_str(a, "format", "zip");
    str_of(args_done(a), s2, sizeof s2);
    ck_assert_msg(strcmp(s1, s2) != 0, "{format: pdf} and {format: zip} both list as \"%s\"", s1);
}
END_TEST

static Suite *headers_suite(void)
{
    Suite *s = suite_create("routing/headers");
    TCase *tc = tcase_create("match");
    tcase_add_test(tc, test_headers_all_is_the_default_and_needs_every_header);
    tcase_add_test(tc, test_headers_explicit_x_match_all_needs_every_header);
    tcase_add_test(tc, test_headers_any_needs_one_matching_header);
    tcase_add_test(tc, test_headers_x_match_may_be_a_symbol);
    tcase_add_test(tc, test_headers_x_headers_are_ignored_by_all_and_any);
    tcase_add_test(tc, test_headers_all_with_x_compares_x_headers_too);
    tcase_add_test(tc, test_headers_any_with_x_matches_on_an_x_header);
    tcase_add_test(tc, test_headers_null_binding_value_matches_on_presence);
    tcase_add_test(tc, test_headers_value_type_must_match);
    tcase_add_test(tc, test_headers_values_of_each_simple_type_compare_by_value);
    tcase_add_test(tc, test_headers_binding_keeps_its_own_copy_of_string_values);
    tcase_add_test(tc, test_headers_equal_ints_match_whatever_the_data_held_before);
    tcase_add_test(tc, test_headers_empty_all_binding_matches_everything);
    tcase_add_test(tc, test_headers_empty_any_binding_matches_nothing);
    tcase_add_test(tc, test_headers_test_leaves_properties_where_they_were);
    tcase_add_test(tc, test_headers_properties_with_non_string_keys_are_skipped);
    suite_add_tcase(s, tc);

    TCase *te = tcase_create("arguments");
    tcase_add_test(te, test_headers_bad_x_match_is_einval_with_a_message);
    tcase_add_test(te, test_headers_non_map_arguments_are_einval);
    tcase_add_test(te, test_headers_non_string_argument_names_are_einval);
    tcase_add_test(te, test_headers_compound_values_are_einval_naming_the_header);
    tcase_add_test(te, test_headers_str_names_the_match_kind_and_headers);
    tcase_add_test(te, test_headers_str_differs_when_values_differ);
    suite_add_tcase(s, te);
    return s;
}

int main(void) { return run_suite(headers_suite()); }
