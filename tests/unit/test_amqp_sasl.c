/* test_amqp_sasl.c — Plexus's server side of SASL (amqp/sasl.c), driven
 * through a real proton transport: the mechanisms offered, PLAIN with good,
 * wrong and garbled credentials, ANONYMOUS allowed or not, EXTERNAL (a
 * TLS client certificate's CN) offered or not, and what is
 * recorded for the connection's log. The broker's user store is a stub. */
#include <check.h>
#include <errno.h>
#include <proton/codec.h>
#include <proton/connection.h>
#include <proton/transport.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check_main.h"
#include "amqp/amqp_internal.h"

static int calls;
static char last_mech[16], last_user[300], last_pass[300];

/* guest/guest, and anonymous as "anon" unless the peer is refused. */
static int stub_auth(void *ctx, const char *mech, const char *user, const char *password, const struct sockaddr *peer,
                     char *user_out, size_t user_len)
{
    (void)peer;
    bool *anon_ok = ctx;
    calls++;
    snprintf(last_mech, sizeof last_mech, "%s", mech);
    snprintf(last_user, sizeof last_user, "%s", user ? user : "(null)");
    snprintf(last_pass, sizeof last_pass, "%s", password ? password : "(null)");
    if (!strcmp(mech, "ANONYMOUS")) {
        if (!*anon_ok)
            return -EACCES;
        snprintf(user_out, user_len, "anon");
        return 0;
    }
    if (!strcmp(mech, "EXTERNAL")) { /* a certificate: alice exists, nobody else */
        if (password || !user || strcmp(user, "alice"))
            return -EACCES;
        snprintf(user_out, user_len, "%s", user);
        return 0;
    }
    if (user && password && !strcmp(user, "guest") && !strcmp(password, "guest")) {
        snprintf(user_out, user_len, "%s", user);
        return 0;
    }
    return -EACCES;
}

static amqp_config cfg;
static bool anon_ok;
static amqp__sasl S;
static pn_transport_t *T;
static pn_connection_t *C;
static char out[4096];
static size_t outlen;

static void setup(void)
{
    amqp_config_init(&cfg);
    cfg.auth = stub_auth;
    cfg.auth_ctx = &anon_ok;
    cfg.anonymous = true;
    anon_ok = true;
    calls = 0;
    memset(&S, 0, sizeof S);
    S.cfg = &cfg;
    T = pn_transport();
    C = pn_connection();
    pn_transport_set_server(T);
    amqp__sasl_setup(T, &S);
    pn_transport_bind(T, C);
    outlen = 0;
}

static void teardown(void)
{
    pn_transport_unbind(T);
    pn_transport_free(T);
    pn_connection_free(C);
}

/* Everything the transport has written so far, appended to out. */
static void drain(void)
{
    for (;;) {
        ssize_t n = pn_transport_pending(T);
        if (n <= 0)
            return;
        size_t k = (size_t)n < sizeof out - outlen ? (size_t)n : sizeof out - outlen;
        ck_assert_uint_gt(k, 0);
        memcpy(out + outlen, pn_transport_head(T), k);
        outlen += k;
        pn_transport_pop(T, k);
    }
}

static void push(const void *p, size_t n)
{
    ck_assert_int_eq(pn_transport_push(T, p, n), (ssize_t)n);
    drain();
}

/* A SASL frame (type 1) holding described(code, [fields]) as d built it. */
static void push_sasl_frame(pn_data_t *d)
{
    char f[1024];
    pn_data_rewind(d);
    ssize_t n = pn_data_encode(d, f + 8, sizeof f - 8);
    ck_assert_int_gt(n, 0);
    uint32_t size = (uint32_t)(8 + n);
    char h[8] = {(char)(size >> 24), (char)(size >> 16), (char)(size >> 8), (char)size, 2, 1, 0, 0};
    memcpy(f, h, 8);
    push(f, size);
}

/* The client's side: header, then sasl-init with mech and response
 * (resp NULL: no initial response). */
static void login(const char *mech, const char *resp, size_t rlen)
{
    push("AMQP\x03\x01\x00\x00", 8);
    pn_data_t *d = pn_data(8);
    pn_data_put_described(d);
    pn_data_enter(d);
    pn_data_put_ulong(d, 0x41);
    pn_data_put_list(d);
    pn_data_enter(d);
    pn_data_put_symbol(d, pn_bytes(strlen(mech), mech));
    if (resp)
        pn_data_put_binary(d, pn_bytes(rlen, resp));
    else
        pn_data_put_null(d);
    pn_data_exit(d);
    pn_data_exit(d);
    push_sasl_frame(d);
    pn_data_free(d);
}

/* Finds the frame with this performative in the output; its fields are
 * left in d (entered, before the first). False if none. */
static bool find(uint64_t code, pn_data_t *d)
{
    size_t at = 0;
    if (outlen >= 8 && !memcmp(out, "AMQP", 4))
        at = 8;
    while (at + 8 <= outlen) {
        uint32_t size = (uint32_t)(uint8_t)out[at] << 24 | (uint32_t)(uint8_t)out[at + 1] << 16 |
                        (uint32_t)(uint8_t)out[at + 2] << 8 | (uint8_t)out[at + 3];
        uint32_t doff = (uint8_t)out[at + 4] * 4u;
        if (size < 8 || at + size > outlen)
            return false;
        pn_data_clear(d);
        if (size > doff && pn_data_decode(d, out + at + doff, size - doff) > 0) {
            pn_data_rewind(d);
            pn_data_next(d);
            pn_data_enter(d);
            pn_data_next(d);
            if (pn_data_get_ulong(d) == code) {
                pn_data_next(d);
                pn_data_enter(d);
                return true;
            }
        }
        at += size;
    }
    return false;
}

/* The sasl-outcome code sent, or -1 if none yet. */
static int outcome_code(void)
{
    pn_data_t *d = pn_data(8);
    int code = -1;
    if (find(0x44, d) && pn_data_next(d))
        code = pn_data_get_ubyte(d);
    pn_data_free(d);
    return code;
}

/* The mechanisms offered, space separated. */
static void mechanisms(char *buf, size_t len)
{
    pn_data_t *d = pn_data(8);
    buf[0] = '\0';
    ck_assert(find(0x40, d));
    ck_assert(pn_data_next(d));
    if (pn_data_type(d) == PN_SYMBOL) {
        pn_bytes_t b = pn_data_get_symbol(d);
        snprintf(buf, len, "%.*s", (int)b.size, b.start);
    } else {
        size_t n = pn_data_get_array(d);
        pn_data_enter(d);
        for (size_t i = 0; i < n && pn_data_next(d); i++) {
            pn_bytes_t b = pn_data_get_symbol(d);
            snprintf(buf + strlen(buf), len - strlen(buf), "%s%.*s", i ? " " : "", (int)b.size, b.start);
        }
    }
    pn_data_free(d);
}

/* ------------------------------------------------------------------ */

START_TEST(test_mechanisms_offered)
{
    char m[64];
    push("AMQP\x03\x01\x00\x00", 8);
    ck_assert(!memcmp(out, "AMQP\x03\x01\x00\x00", 8));
    mechanisms(m, sizeof m);
    ck_assert_str_eq(m, "PLAIN ANONYMOUS");
}
END_TEST

START_TEST(test_mechanisms_without_anonymous)
{
    char m[64];
    cfg.anonymous = false;
    push("AMQP\x03\x01\x00\x00", 8);
    mechanisms(m, sizeof m);
    ck_assert_str_eq(m, "PLAIN");
}
END_TEST

START_TEST(test_plain_good)
{
    login("PLAIN", "\0guest\0guest", 12);
    ck_assert_int_eq(outcome_code(), 0);
    ck_assert(S.done && S.ok);
    ck_assert_str_eq(S.user, "guest");
    ck_assert_str_eq(S.mech, "PLAIN");
    ck_assert_int_eq(calls, 1);
    ck_assert_str_eq(last_mech, "PLAIN");
}
END_TEST

START_TEST(test_plain_with_authzid)
{
    login("PLAIN", "admin\0guest\0guest", 17); /* authzid is not used: the authcid logs in */
    ck_assert_int_eq(outcome_code(), 0);
    ck_assert_str_eq(last_user, "guest");
    ck_assert_str_eq(S.user, "guest");
}
END_TEST

START_TEST(test_plain_wrong_password)
{
    login("PLAIN", "\0guest\0nope", 11);
    ck_assert_int_eq(outcome_code(), 1); /* auth */
    ck_assert(S.done && !S.ok);
    ck_assert_str_eq(S.refused, "guest");
    ck_assert_str_eq(S.user, "");
    ck_assert_str_eq(last_pass, "nope");
}
END_TEST

START_TEST(test_plain_unknown_user)
{
    login("PLAIN", "\0nobody\0guest", 13);
    ck_assert_int_eq(outcome_code(), 1);
    ck_assert_str_eq(S.refused, "nobody");
}
END_TEST

/* Each garbled PLAIN response is refused without asking the user store. */
START_TEST(test_plain_garbled)
{
    static const struct {
        const char *r;
        size_t n;
    } bad[] = {
        {"guestguest", 10}, /* no NUL */
        {"\0guest", 6},     /* one NUL: no password */
        {"\0\0guest", 7},   /* empty user */
        {"", 0},            /* empty */
    };
    int i = _i;
    login("PLAIN", bad[i].r, bad[i].n);
    ck_assert_int_eq(outcome_code(), 1);
    ck_assert(S.done && !S.ok);
    ck_assert_str_eq(S.refused, "(malformed PLAIN response)");
    ck_assert_int_eq(calls, 0);
}
END_TEST

START_TEST(test_plain_without_a_response)
{
    login("PLAIN", NULL, 0);
    ck_assert_int_eq(outcome_code(), 1);
    ck_assert_str_eq(S.refused, "(malformed PLAIN response)");
    ck_assert_int_eq(calls, 0);
}
END_TEST

START_TEST(test_plain_too_long)
{
    char r[600];
    /* a user of 128 bytes (the limit is 127) */
    r[0] = '\0';
    memset(r + 1, 'u', 128);
    r[129] = '\0';
    memcpy(r + 130, "guest", 5);
    login("PLAIN", r, 135);
    ck_assert_int_eq(outcome_code(), 1);
    ck_assert_str_eq(S.refused, "(malformed PLAIN response)");
    teardown();
    setup();
    /* a password of 256 bytes (the limit is 255) */
    memcpy(r, "\0guest\0", 7);
    memset(r + 7, 'p', 256);
    login("PLAIN", r, 263);
    ck_assert_int_eq(outcome_code(), 1);
    ck_assert_str_eq(S.refused, "(malformed PLAIN response)");
    ck_assert_int_eq(calls, 0);
}
END_TEST

START_TEST(test_plain_longest_allowed)
{
    char r[600];
    r[0] = '\0';
    memset(r + 1, 'u', 127);
    r[128] = '\0';
    memset(r + 129, 'p', 255);
    login("PLAIN", r, 384);
    ck_assert_int_eq(outcome_code(), 1); /* refused by the store, but asked */
    ck_assert_int_eq(calls, 1);
    ck_assert_uint_eq(strlen(last_user), 127);
    ck_assert_uint_eq(strlen(last_pass), 255);
}
END_TEST

START_TEST(test_plain_without_a_user_store)
{
    cfg.auth = NULL;
    login("PLAIN", "\0guest\0guest", 12);
    ck_assert_int_eq(outcome_code(), 1);
    ck_assert(!S.ok);
}
END_TEST

START_TEST(test_anonymous_allowed)
{
    login("ANONYMOUS", "trace", 5);
    ck_assert_int_eq(outcome_code(), 0);
    ck_assert(S.done && S.ok);
    ck_assert_str_eq(S.user, "anon");
    ck_assert_str_eq(S.mech, "ANONYMOUS");
    ck_assert_str_eq(last_user, "(null)");
}
END_TEST

START_TEST(test_anonymous_refused_by_the_store)
{
    anon_ok = false;
    login("ANONYMOUS", NULL, 0);
    ck_assert_int_eq(outcome_code(), 1);
    ck_assert_str_eq(S.refused, "anonymous");
}
END_TEST

START_TEST(test_anonymous_not_offered)
{
    cfg.anonymous = false;
    login("ANONYMOUS", NULL, 0);
    ck_assert_int_eq(outcome_code(), 1);
    ck_assert_str_eq(S.refused, "(mechanism ANONYMOUS not offered)");
    ck_assert_str_eq(S.mech, "none");
    ck_assert_int_eq(calls, 0);
}
END_TEST

START_TEST(test_unknown_mechanism)
{
    login("CRAM-MD5", "x", 1);
    ck_assert_int_eq(outcome_code(), 1);
    ck_assert_str_eq(S.refused, "(mechanism CRAM-MD5 not offered)");
    ck_assert_int_eq(calls, 0);
}
END_TEST

START_TEST(test_external_offered_with_a_certificate)
{
    char m[64];
    snprintf(S.external, sizeof S.external, "alice");
    push("AMQP\x03\x01\x00\x00", 8);
    mechanisms(m, sizeof m);
    ck_assert_str_eq(m, "EXTERNAL PLAIN ANONYMOUS");
}
END_TEST

START_TEST(test_external_good)
{
    snprintf(S.external, sizeof S.external, "alice");
    login("EXTERNAL", NULL, 0);
    ck_assert_int_eq(outcome_code(), 0);
    ck_assert(S.done && S.ok);
    ck_assert_str_eq(S.user, "alice");
    ck_assert_str_eq(S.mech, "EXTERNAL");
    ck_assert_str_eq(last_mech, "EXTERNAL");
    ck_assert_str_eq(last_pass, "(null)");
}
END_TEST

START_TEST(test_external_with_its_own_name_as_authzid)
{
    snprintf(S.external, sizeof S.external, "alice");
    login("EXTERNAL", "alice", 5);
    ck_assert_int_eq(outcome_code(), 0);
    ck_assert_str_eq(S.user, "alice");
}
END_TEST

START_TEST(test_external_as_another_user_refused)
{
    snprintf(S.external, sizeof S.external, "alice");
    login("EXTERNAL", "guest", 5);
    ck_assert_int_eq(outcome_code(), 1);
    ck_assert_str_eq(S.refused, "alice (certificate CN; asked to act as another user)");
    ck_assert_int_eq(calls, 0);
}
END_TEST

START_TEST(test_external_unknown_user)
{
    snprintf(S.external, sizeof S.external, "mallory");
    login("EXTERNAL", "", 0);
    ck_assert_int_eq(outcome_code(), 1);
    ck_assert_str_eq(S.refused, "mallory (certificate CN; no such user)");
    ck_assert_str_eq(last_user, "mallory");
}
END_TEST

START_TEST(test_external_not_offered_without_a_certificate)
{
    char m[64];
    login("EXTERNAL", NULL, 0);
    mechanisms(m, sizeof m);
    ck_assert_str_eq(m, "PLAIN ANONYMOUS");
    ck_assert_int_eq(outcome_code(), 1);
    ck_assert_str_eq(S.refused, "(mechanism EXTERNAL not offered)");
    ck_assert_int_eq(calls, 0);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("amqp_sasl");
    TCase *t = tcase_create("sasl");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_add_test(t, test_mechanisms_offered);
    tcase_add_test(t, test_mechanisms_without_anonymous);
    tcase_add_test(t, test_plain_good);
    tcase_add_test(t, test_plain_with_authzid);
    tcase_add_test(t, test_plain_wrong_password);
    tcase_add_test(t, test_plain_unknown_user);
    tcase_add_loop_test(t, test_plain_garbled, 0, 4);
    tcase_add_test(t, test_plain_without_a_response);
    tcase_add_test(t, test_plain_too_long);
    tcase_add_test(t, test_plain_longest_allowed);
    tcase_add_test(t, test_plain_without_a_user_store);
    tcase_add_test(t, test_anonymous_allowed);
    tcase_add_test(t, test_anonymous_refused_by_the_store);
    tcase_add_test(t, test_anonymous_not_offered);
    tcase_add_test(t, test_external_offered_with_a_certificate);
    tcase_add_test(t, test_external_good);
    tcase_add_test(t, test_external_with_its_own_name_as_authzid);
    tcase_add_test(t, test_external_as_another_user_refused);
    tcase_add_test(t, test_external_unknown_user);
    tcase_add_test(t, test_external_not_offered_without_a_certificate);
    tcase_add_test(t, test_unknown_mechanism);
    suite_add_tcase(s, t);
    return s;
}

int main(void) { return run_suite(suite()); }
