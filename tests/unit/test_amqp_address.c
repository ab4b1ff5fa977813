/* test_amqp_address.c — AMQP 1.0 addresses (amqp/address.c): the parser of
 * RabbitMQ 4's address format v2 plus plain queue names, the /queues/NAME
 * formatter, and the HOST:PORT parser of listen settings. */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check_main.h"
#include "amqp/amqp.h"

static amqp_addr A;

static void parses(const char *s, amqp_addr_kind kind, const char *name, const char *key)
{
    int rc = amqp_addr_parse(s, &A);
    ck_assert_msg(rc == 0, "\"%s\" refused: %d", s, rc);
    ck_assert_msg(A.kind == kind, "\"%s\": kind %d, not %d", s, A.kind, kind);
    ck_assert_msg(strcmp(A.name, name) == 0, "\"%s\": name \"%s\", not \"%s\"", s, A.name, name);
    ck_assert_msg(strcmp(A.key, key) == 0, "\"%s\": key \"%s\", not \"%s\"", s, A.key, key);
}

static void refused(const char *s)
{
    int rc = amqp_addr_parse(s, &A);
    ck_assert_msg(rc == -EINVAL, "\"%s\": %d, not -EINVAL (name \"%s\", key \"%s\")", s ? s : "(null)", rc, A.name,
                  A.key);
}

/* ------------------------------------------------------------- the forms */

START_TEST(test_addr_queues_prefix_names_a_queue)
{
    parses("/queues/orders", AMQP_ADDR_QUEUE, "orders", "");
    parses("/queues/amq.gen-1234", AMQP_ADDR_QUEUE, "amq.gen-1234", "");
    parses("/queues/a.b.c", AMQP_ADDR_QUEUE, "a.b.c", "");
    parses("/queues/amq.default", AMQP_ADDR_QUEUE, "amq.default", ""); /* only special after /exchanges/ */
}
END_TEST

START_TEST(test_addr_exchange_without_key_takes_the_subject)
{
    parses("/exchanges/amq.topic", AMQP_ADDR_EXCHANGE, "amq.topic", "");
    parses("/exchanges/logs", AMQP_ADDR_EXCHANGE, "logs", "");
}
END_TEST

START_TEST(test_addr_exchange_with_key_fixes_the_routing_key)
{
    parses("/exchanges/amq.topic/stock.usd.nyse", AMQP_ADDR_EXCHANGE_KEY, "amq.topic", "stock.usd.nyse");
    parses("/exchanges/logs/#", AMQP_ADDR_EXCHANGE_KEY, "logs", "#");
}
END_TEST

START_TEST(test_addr_exchange_with_trailing_slash_has_empty_key)
{
    parses("/exchanges/amq.fanout/", AMQP_ADDR_EXCHANGE_KEY, "amq.fanout", "");
}
END_TEST

START_TEST(test_addr_plain_name_is_a_queue_taken_literally)
{
    parses("examples", AMQP_ADDR_QUEUE, "examples", "");
    parses("a/b", AMQP_ADDR_QUEUE, "a/b", "");
    parses("queues/x", AMQP_ADDR_QUEUE, "queues/x", "");
    parses("100%", AMQP_ADDR_QUEUE, "100%", ""); /* not percent-encoded: no escape error */
    parses("a%20b", AMQP_ADDR_QUEUE, "a%20b", "");
}
END_TEST

START_TEST(test_addr_amq_default_is_the_default_exchange)
{
    parses("/exchanges/amq.default", AMQP_ADDR_EXCHANGE, "", "");
    parses("/exchanges/amq.default/orders", AMQP_ADDR_EXCHANGE_KEY, "", "orders");
    parses("/exchanges/amq%2Edefault/orders", AMQP_ADDR_EXCHANGE_KEY, "", "orders"); /* same name, encoded */
    parses("/exchanges/amq.defaults", AMQP_ADDR_EXCHANGE, "amq.defaults", "");
}
END_TEST

/* ------------------------------------------------------ percent-encoding */

START_TEST(test_addr_names_and_keys_are_percent_decoded)
{
    parses("/queues/a%2Fb", AMQP_ADDR_QUEUE, "a/b", "");
    parses("/queues/a%2fb", AMQP_ADDR_QUEUE, "a/b", ""); /* either case of hex digit */
    parses("/queues/100%25", AMQP_ADDR_QUEUE, "100%", "");
    parses("/queues/%2525", AMQP_ADDR_QUEUE, "%25", ""); /* decoded once only */
    parses("/queues/my%20queue", AMQP_ADDR_QUEUE, "my queue", "");
    parses("/queues/caf%C3%A9", AMQP_ADDR_QUEUE, "caf\xc3\xa9", "");
    parses("/exchanges/ex%2F1/key%2Fpart", AMQP_ADDR_EXCHANGE_KEY, "ex/1", "key/part");
    parses("/exchanges/x/%23", AMQP_ADDR_EXCHANGE_KEY, "x", "#");
}
END_TEST

START_TEST(test_addr_bad_escapes_are_refused)
{
    refused("/queues/%zz");
    refused("/queues/%g0");
    refused("/queues/%0g");
    refused("/queues/%4");  /* one digit */
    refused("/queues/a%4"); /* one digit at the end */
    refused("/queues/a%");  /* trailing % */
    refused("/queues/%");
    refused("/exchanges/%zz");
    refused("/exchanges/x/%zz");
    refused("/exchanges/x/k%");
    refused("/exchanges/x%2/k"); /* a short escape before the key's slash */
}
END_TEST

START_TEST(test_addr_encoded_nul_is_refused)
{
    refused("/queues/%00");
    refused("/queues/a%00b");
    refused("/exchanges/x%00/k");
    refused("/exchanges/x/%00");
}
END_TEST

/* ---------------------------------------------------------- bad addresses */

START_TEST(test_addr_empty_names_are_refused)
{
    refused(NULL);
    refused("");
    refused("/");
    refused("/queues/");
    refused("/exchanges/");
    refused("/exchanges//key");
    refused("/exchanges//");
}
END_TEST

START_TEST(test_addr_names_up_to_255_bytes_after_decoding)
{
    char name[RT_NAME_MAX + 2], s[1024];
    memset(name, 'q', RT_NAME_MAX);
    name[RT_NAME_MAX] = '\0';

    snprintf(s, sizeof s, "/queues/%s", name);
    parses(s, AMQP_ADDR_QUEUE, name, "");
    parses(name, AMQP_ADDR_QUEUE, name, "");
    snprintf(s, sizeof s, "/exchanges/%s/%s", name, name);
    parses(s, AMQP_ADDR_EXCHANGE_KEY, name, name);

    /* 765 characters that decode to 255 bytes are fine. */
    char enc[RT_NAME_MAX * 3 + 1] = "", dec[RT_NAME_MAX + 1];
    for (int i = 0; i < RT_NAME_MAX; i++) {
        strcat(enc, "%41");
        dec[i] = 'A';
    }
    dec[RT_NAME_MAX] = '\0';
    snprintf(s, sizeof s, "/queues/%s", enc);
    parses(s, AMQP_ADDR_QUEUE, dec, "");
}
END_TEST

START_TEST(test_addr_names_over_255_bytes_are_refused)
{
    char name[RT_NAME_MAX + 2], s[1024];
    memset(name, 'q', RT_NAME_MAX + 1);
    name[RT_NAME_MAX + 1] = '\0';
    snprintf(s, sizeof s, "/queues/%s", name);
    refused(s);
    refused(name); /* plain */
    snprintf(s, sizeof s, "/exchanges/%s", name);
    refused(s);
    snprintf(s, sizeof s, "/exchanges/x/%s", name);
    refused(s);
    /* 254 bytes and one escape: 255, fine; one more byte, not. */
    name[RT_NAME_MAX - 1] = '\0';
    snprintf(s, sizeof s, "/queues/%s%%41", name);
    ck_assert_int_eq(amqp_addr_parse(s, &A), 0);
    snprintf(s, sizeof s, "/queues/%s%%41%%41", name);
    refused(s);
}
END_TEST

START_TEST(test_addr_unknown_prefixes_are_refused)
{
    refused("/queue/x");
    refused("/topic/x");
    refused("/exchange/x");
    refused("/amq/queue/x");
    refused("/Queues/x");
    refused("/queues");
    refused("/exchanges");
    refused("//queues/x");
    refused("/x");
}
END_TEST

START_TEST(test_addr_extra_slashes_are_refused)
{
    refused("/queues/a/b");
    refused("/queues/a/");
    refused("/queues//a");
    refused("/exchanges/x/k/extra");
    refused("/exchanges/x/k/");
    refused("/exchanges/x//");
}
END_TEST

/* ------------------------------------------------------------ formatting */

START_TEST(test_addr_queue_formats_plain_names_unchanged)
{
    char out[64];
    ck_assert_str_eq(amqp_addr_queue("orders", out, sizeof out), "/queues/orders");
    ck_assert_ptr_eq(amqp_addr_queue("a.b-c_d~e", out, sizeof out), out);
    ck_assert_str_eq(out, "/queues/a.b-c_d~e");
}
END_TEST

START_TEST(test_addr_queue_encodes_slash_percent_and_space)
{
    char out[64];
    ck_assert_str_eq(amqp_addr_queue("a/b", out, sizeof out), "/queues/a%2Fb");
    ck_assert_str_eq(amqp_addr_queue("100%", out, sizeof out), "/queues/100%25");
    ck_assert_str_eq(amqp_addr_queue("my queue", out, sizeof out), "/queues/my%20queue");
}
END_TEST

START_TEST(test_addr_queue_round_trips_through_parse)
{
    char longest[RT_NAME_MAX + 1];
    memset(longest, '/', RT_NAME_MAX); /* every byte needs an escape: the longest form */
    longest[RT_NAME_MAX] = '\0';
    char every[RT_NAME_MAX + 1];
    for (int i = 0; i < RT_NAME_MAX; i++)
        every[i] = (char)(i + 1); /* bytes 0x01 .. 0xff */
    every[RT_NAME_MAX] = '\0';
    const char *names[] = {
        "orders",
        "with space",
        "a/b/c",
        "/leading",
        "trailing/",
        "100%",
        "%2F literally",
        "%",
        "caf\xc3\xa9 \xe6\x97\xa5\xe6\x9c\xac",
        "?#[]@!$&'()*+,;=",
        "amq.default",
        "tab\there",
        longest,
        every,
    };
    char out[1024];
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        amqp_addr_queue(names[i], out, sizeof out);
        ck_assert_msg(strncmp(out, "/queues/", 8) == 0, "\"%s\"", out);
        ck_assert_msg(strchr(out + 8, '/') == NULL, "name %zu: a raw slash in \"%s\"", i, out);
        ck_assert_msg(amqp_addr_parse(out, &A) == 0, "name %zu: \"%s\" does not parse", i, out);
        ck_assert_int_eq(A.kind, AMQP_ADDR_QUEUE);
        ck_assert_msg(strcmp(A.name, names[i]) == 0, "name %zu came back as \"%s\"", i, A.name);
    }
}
END_TEST

START_TEST(test_addr_queue_fits_a_buffer_of_exactly_the_encoded_size)
{
    /* "/queues/" + 3 bytes per escaped byte + NUL: nothing may be dropped. */
    char name[RT_NAME_MAX + 1], out[8 + 3 * RT_NAME_MAX + 1];
    memset(name, '/', RT_NAME_MAX);
    name[RT_NAME_MAX] = '\0';
    amqp_addr_queue(name, out, sizeof out);
    ck_assert_msg(strlen(out) == sizeof out - 1, "%zu of %zu characters written", strlen(out), sizeof out - 1);
    ck_assert_int_eq(amqp_addr_parse(out, &A), 0);
    ck_assert_str_eq(A.name, name);

    char small[8 + 3 + 1]; /* one escaped byte */
    ck_assert_str_eq(amqp_addr_queue("/", small, sizeof small), "/queues/%2F");
}
END_TEST

START_TEST(test_addr_queue_in_a_small_buffer_is_terminated)
{
    char out[12];
    memset(out, 'Z', sizeof out);
    amqp_addr_queue("a/long/queue/name", out, sizeof out);
    ck_assert_uint_lt(strlen(out), sizeof out);
    ck_assert(strncmp(out, "/queues/", 8) == 0);
}
END_TEST

/* --------------------------------------------------------------- host:port */

static void hp_ok(const char *s, const char *host, int port)
{
    char h[64] = "unset";
    int p = -2;
    ck_assert_msg(amqp_hostport_parse(s, h, sizeof h, &p) == 0, "\"%s\" refused", s);
    ck_assert_str_eq(h, host);
    ck_assert_int_eq(p, port);
}

static void hp_bad(const char *s)
{
    char h[64] = "unset";
    int p = -2;
    ck_assert_msg(amqp_hostport_parse(s, h, sizeof h, &p) == -1, "\"%s\" accepted as \"%s\" %d", s ? s : "(null)", h,
                  p);
}

START_TEST(test_hostport_parses_host_and_port)
{
    hp_ok("127.0.0.1:5672", "127.0.0.1", 5672);
    hp_ok("localhost:0", "localhost", 0);
    hp_ok("0.0.0.0:65535", "0.0.0.0", 65535);
    hp_ok("broker.example.com:15672", "broker.example.com", 15672);
}
END_TEST

START_TEST(test_hostport_brackets_an_ipv6_host)
{
    hp_ok("[::1]:5672", "::1", 5672);
    hp_ok("[::]:1", "::", 1);
    hp_ok("[fe80::1:2]:80", "fe80::1:2", 80);
}
END_TEST

START_TEST(test_hostport_refuses_bad_ports)
{
    hp_bad("h:65536");
    hp_bad("h:-1");
    hp_bad("h:abc");
    hp_bad("h:12ab");
    hp_bad("h:5672 ");
    hp_bad("h:99999999999999999999");
    hp_bad("[::1]:70000");
    hp_bad("[::1]:x");
}
END_TEST

START_TEST(test_hostport_port_is_digits_only)
{
    hp_bad("h: 5672"); /* strtol would skip the space */
    hp_bad("h:+5672"); /* and take a sign */
    hp_bad("h:\t80");
}
END_TEST

START_TEST(test_hostport_refuses_a_missing_port_or_host)
{
    hp_bad(NULL);
    hp_bad("");
    hp_bad("localhost");
    hp_bad("localhost:");
    hp_bad("[::1]");
    hp_bad("[::1]:");
    hp_bad("[::1]5672");
    hp_bad("[::1");
    hp_bad(":5672");
    hp_bad("[]:5672");
}
END_TEST

START_TEST(test_hostport_refuses_bare_ipv6)
{
    hp_bad("::1");
    hp_bad("::1:5672");
    hp_bad("fe80::1:80");
    hp_bad("a:b:80");
}
END_TEST

START_TEST(test_hostport_refuses_a_host_longer_than_the_buffer)
{
    char h[8];
    int p;
    ck_assert_int_eq(amqp_hostport_parse("1234567:1", h, sizeof h, &p), 0); /* 7 + NUL fits */
    ck_assert_str_eq(h, "1234567");
    ck_assert_int_eq(amqp_hostport_parse("12345678:1", h, sizeof h, &p), -1);
    ck_assert_int_eq(amqp_hostport_parse("[1234:5678]:1", h, sizeof h, &p), -1);
}
END_TEST

static Suite *address_suite(void)
{
    Suite *s = suite_create("amqp/address");
    TCase *tc = tcase_create("parse");
    tcase_add_test(tc, test_addr_queues_prefix_names_a_queue);
    tcase_add_test(tc, test_addr_exchange_without_key_takes_the_subject);
    tcase_add_test(tc, test_addr_exchange_with_key_fixes_the_routing_key);
    tcase_add_test(tc, test_addr_exchange_with_trailing_slash_has_empty_key);
    tcase_add_test(tc, test_addr_plain_name_is_a_queue_taken_literally);
    tcase_add_test(tc, test_addr_amq_default_is_the_default_exchange);
    tcase_add_test(tc, test_addr_names_and_keys_are_percent_decoded);
    tcase_add_test(tc, test_addr_bad_escapes_are_refused);
    tcase_add_test(tc, test_addr_encoded_nul_is_refused);
    tcase_add_test(tc, test_addr_empty_names_are_refused);
    tcase_add_test(tc, test_addr_names_up_to_255_bytes_after_decoding);
    tcase_add_test(tc, test_addr_names_over_255_bytes_are_refused);
    tcase_add_test(tc, test_addr_unknown_prefixes_are_refused);
    tcase_add_test(tc, test_addr_extra_slashes_are_refused);
    suite_add_tcase(s, tc);

    TCase *tf = tcase_create("format");
    tcase_add_test(tf, test_addr_queue_formats_plain_names_unchanged);
    tcase_add_test(tf, test_addr_queue_encodes_slash_percent_and_space);
    tcase_add_test(tf, test_addr_queue_round_trips_through_parse);
    tcase_add_test(tf, test_addr_queue_fits_a_buffer_of_exactly_the_encoded_size);
    tcase_add_test(tf, test_addr_queue_in_a_small_buffer_is_terminated);
    suite_add_tcase(s, tf);

    TCase *th = tcase_create("hostport");
    tcase_add_test(th, test_hostport_parses_host_and_port);
    tcase_add_test(th, test_hostport_brackets_an_ipv6_host);
    tcase_add_test(th, test_hostport_refuses_bad_ports);
    tcase_add_test(th, test_hostport_port_is_digits_only);
    tcase_add_test(th, test_hostport_refuses_a_missing_port_or_host);
    tcase_add_test(th, test_hostport_refuses_bare_ipv6);
    tcase_add_test(th, test_hostport_refuses_a_host_longer_than_the_buffer);
    suite_add_tcase(s, th);
    return s;
}

int main(void) { return run_suite(address_suite()); }
