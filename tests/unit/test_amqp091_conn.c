/* test_amqp091_conn.c — the pure parts of the AMQP 0-9-1 handshake
 * (amqp/conn091_login.c): the server properties Connection.Start carries,
 * credentials from PLAIN and AMQPLAIN responses (good and malformed), the
 * client's capabilities and name, and the Tune negotiation's bounds and
 * heartbeat. The socket side is tests/integration/50-amqp091-connection.py. */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check_main.h"
#include "amqp/amqp_internal.h"

#define S(lit) ((amqp91_bytes){(const uint8_t *)(lit), sizeof(lit) - 1})

static bool bytes_is(amqp91_bytes b, const char *s) { return b.len == strlen(s) && memcmp(b.p, s, b.len) == 0; }

static const amqp91_value *get(const amqp91_table *t, const char *name)
{
    for (uint32_t i = 0; t && i < t->n; i++)
        if (bytes_is(t->f[i].name, name))
            return &t->f[i].value;
    return NULL;
}

START_TEST(test_server_props_carry_the_capabilities_clients_look_for)
{
    uint8_t buf[1024];
    int n = amqp__091_server_props(buf, sizeof buf);
    ck_assert_int_gt(n, 0);
    amqp91_table *t = NULL;
    ck_assert_int_eq(amqp91_table_parse(buf, (size_t)n, &t, NULL), 0);
    const amqp91_value *v = get(t, "product");
    ck_assert_ptr_nonnull(v);
    ck_assert(bytes_is(v->v.str, "Plexus"));
    ck_assert_ptr_nonnull(get(t, "version"));
    ck_assert_ptr_nonnull(get(t, "platform"));
    const amqp91_value *caps = get(t, "capabilities");
    ck_assert_ptr_nonnull(caps);
    ck_assert_int_eq(caps->type, 'F');
    const char *want[] = {
        "authentication_failure_close", "publisher_confirms", "basic.nack",      "consumer_cancel_notify",
        "connection.blocked",           "per_consumer_qos",   "direct_reply_to", "exchange_exchange_bindings"};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const amqp91_value *cap = get(caps->v.F, want[i]);
        ck_assert_msg(cap && cap->type == 't' && cap->v.t, "%s", want[i]);
    }
    ck_assert_uint_eq(caps->v.F->n, sizeof want / sizeof want[0]); /* nothing else claimed */
    amqp91_table_free(t);
    ck_assert_int_eq(amqp__091_server_props(buf, 20), -ENOSPC);
}
END_TEST

START_TEST(test_plain_credentials)
{
    char u[16], p[16];
    const char *why = NULL;
    ck_assert_int_eq(amqp__091_credentials(S("PLAIN"), S("\0guest\0secret"), u, sizeof u, p, sizeof p, &why), 0);
    ck_assert_str_eq(u, "guest");
    ck_assert_str_eq(p, "secret");
    ck_assert_int_eq(amqp__091_credentials(S("PLAIN"), S("authz\0bob\0"), u, sizeof u, p, sizeof p, &why), 0);
    ck_assert_str_eq(u, "bob");
    ck_assert_str_eq(p, "");
    /* malformed: one NUL, none, an empty user, a NUL in the password, too long */
    const amqp91_bytes bad[] = {S("\0guest"), S("guestguest"), S(""),
                                S("\0\0pw"),  S("\0u\0p\0w"),  S("\0averyveryverylonguser\0p")};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        why = NULL;
        ck_assert_int_eq(amqp__091_credentials(S("PLAIN"), bad[i], u, sizeof u, p, sizeof p, &why), -EINVAL);
        ck_assert_ptr_nonnull(why);
    }
}
END_TEST

START_TEST(test_amqplain_credentials)
{
    char u[16], p[16];
    const char *why = NULL;
    /* LOGIN S "guest", PASSWORD S "pw": a table's content, no length */
    static const uint8_t good[] = "\x05LOGINS\x00\x00\x00\x05guest\x08PASSWORDS\x00\x00\x00\x02pw";
    ck_assert_int_eq(
        amqp__091_credentials(S("AMQPLAIN"), (amqp91_bytes){good, sizeof good - 1}, u, sizeof u, p, sizeof p, &why), 0);
    ck_assert_str_eq(u, "guest");
    ck_assert_str_eq(p, "pw");
    static const uint8_t no_pw[] = "\x05LOGINS\x00\x00\x00\x05guest";
    ck_assert_int_eq(
        amqp__091_credentials(S("AMQPLAIN"), (amqp91_bytes){no_pw, sizeof no_pw - 1}, u, sizeof u, p, sizeof p, &why),
        -EINVAL);
    static const uint8_t not_str[] = "\x05LOGINI\x00\x00\x00\x05\x08PASSWORDS\x00\x00\x00\x02pw";
    ck_assert_int_eq(amqp__091_credentials(S("AMQPLAIN"), (amqp91_bytes){not_str, sizeof not_str - 1}, u, sizeof u, p,
                                           sizeof p, &why),
                     -EINVAL);
    ck_assert_int_eq(amqp__091_credentials(S("AMQPLAIN"), S("\x05LOG"), u, sizeof u, p, sizeof p, &why), -EINVAL);
    ck_assert_int_eq(amqp__091_credentials(S("EXTERNAL"), S(""), u, sizeof u, p, sizeof p, &why), -ENOTSUP);
    ck_assert_int_eq(amqp__091_credentials(S("plain"), S("\0a\0b"), u, sizeof u, p, sizeof p, &why), -ENOTSUP);
}
END_TEST

START_TEST(test_client_capabilities_and_name)
{
    /* capabilities F { authentication_failure_close t 1 }, product S "pika" */
    static const uint8_t props[] = "\x0c"
                                   "capabilitiesF\x00\x00\x00\x1f\x1c"
                                   "authentication_failure_closet\x01"
                                   "\x07productS\x00\x00\x00\x04pi\x01"
                                   "a";
    amqp91_bytes b = {props, sizeof props - 1};
    ck_assert(amqp__091_client_cap(b, "authentication_failure_close"));
    ck_assert(!amqp__091_client_cap(b, "publisher_confirms"));
    char name[32];
    amqp__091_client_name(b, name, sizeof name);
    ck_assert_str_eq(name, "pi?a"); /* control bytes made printable */
    char six[6];
    amqp__091_printable((const uint8_t *)"a\nb\x7f"
                                         "cdef",
                        8, six, sizeof six);
    ck_assert_str_eq(six, "a?b?c");                   /* no line breaks in the log; cut to fit */
    ck_assert(!amqp__091_client_cap(S("\x03"), "x")); /* a bad table: no capabilities */
    amqp__091_client_name(S("\x03"), name, sizeof name);
    ck_assert_str_eq(name, "");
}
END_TEST

START_TEST(test_tune_bounds_and_heartbeat)
{
    amqp__091_limits ours = {2047, 131072, 60}, out;
    char why[128];
    ck_assert_int_eq(amqp__091_tune(&ours, 0, 0, 0, &out, why, sizeof why), 0);
    ck_assert_uint_eq(out.channel_max, 2047);
    ck_assert_uint_eq(out.frame_max, 131072);
    ck_assert_uint_eq(out.heartbeat, 0);
    ck_assert_int_eq(amqp__091_tune(&ours, 10, 4096, 5, &out, why, sizeof why), 0);
    ck_assert_uint_eq(out.channel_max, 10);
    ck_assert_uint_eq(out.frame_max, 4096);
    ck_assert_uint_eq(out.heartbeat, 5);
    ck_assert_int_eq(amqp__091_tune(&ours, 2048, 4096, 0, &out, why, sizeof why), -AMQP91_NOT_ALLOWED);
    ck_assert_ptr_nonnull(strstr(why, "channel_max"));
    ck_assert_int_eq(amqp__091_tune(&ours, 0, 4095, 0, &out, why, sizeof why), -AMQP91_NOT_ALLOWED);
    ck_assert_int_eq(amqp__091_tune(&ours, 0, 131073, 0, &out, why, sizeof why), -AMQP91_NOT_ALLOWED);
    ck_assert_ptr_nonnull(strstr(why, "frame_max"));
    /* the lower non-zero of the two; the client's 0 means none */
    ck_assert_uint_eq(amqp__091_heartbeat(60, 2), 2);
    ck_assert_uint_eq(amqp__091_heartbeat(60, 600), 60);
    ck_assert_uint_eq(amqp__091_heartbeat(0, 30), 30);
    ck_assert_uint_eq(amqp__091_heartbeat(60, 0), 0);
}
END_TEST

static Suite *conn_suite(void)
{
    Suite *s = suite_create("amqp/conn091");
    TCase *tc = tcase_create("handshake");
    tcase_add_test(tc, test_server_props_carry_the_capabilities_clients_look_for);
    tcase_add_test(tc, test_plain_credentials);
    tcase_add_test(tc, test_amqplain_credentials);
    tcase_add_test(tc, test_client_capabilities_and_name);
    tcase_add_test(tc, test_tune_bounds_and_heartbeat);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return run_suite(conn_suite()); }
