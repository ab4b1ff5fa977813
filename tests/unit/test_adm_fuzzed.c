/* test_adm_fuzzed.c — regressions found in the admin API's request
 * parsing (admin/) by fuzzing it (tests/fuzz/fuzz_admin), each with the
 * body that showed it. */
#include <check.h>
#include <errno.h>
#include <jansson.h>
#include <string.h>

#include "check_main.h"
#include "admin/adm_internal.h"

static int build(const char *body, rt_msg **m, char *err, size_t len)
{
    json_error_t je;
    json_t *o = json_loads(body, 0, &je);
    ck_assert_ptr_nonnull(o);
    err[0] = '\0';
    int rc = adm__build_message(o, "k", m, err, len);
    json_decref(o);
    return rc;
}

/* Found while fuzzing the publish body: "====" decoded to 3 bytes less 4
 * padding, -1, a payload of SIZE_MAX bytes (the request never ended, then
 * the encoder overran). Padding is two '=' at the end, nowhere else. */
START_TEST(test_publish_base64_all_padding_is_refused)
{
    const char *bad[] = {"====", "Q===", "=QQQ", "QQ=Q", "QQ==QQ=="};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char body[128], err[300];
        snprintf(body, sizeof body, "{\"payload\": \"%s\", \"payload_encoding\": \"base64\"}", bad[i]);
        rt_msg *m = NULL;
        ck_assert_msg(build(body, &m, err, sizeof err) == -EINVAL, "%s accepted", bad[i]);
        ck_assert_ptr_null(m);
        ck_assert_msg(strstr(err, "base64"), "%s: %s", bad[i], err);
    }
}
END_TEST

/* Valid padding still decodes to the right bytes (the test above can fail
 * only by refusing; this one checks what is accepted). */
START_TEST(test_publish_base64_padding_is_not_payload)
{
    struct {
        const char *b64;
        const char *bytes;
        size_t n;
    } ok[] = {{"QQ==", "A", 1}, {"QUI=", "AB", 2}, {"QUJD", "ABC", 3}, {"", "", 0}};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        char body[128], err[300];
        snprintf(body, sizeof body, "{\"payload\": \"%s\", \"payload_encoding\": \"base64\"}", ok[i].b64);
        rt_msg *m = NULL;
        ck_assert_msg(build(body, &m, err, sizeof err) == 0, "%s: %s", ok[i].b64, err);
        /* The body is the message's last section: an amqp-value (0x00 0x53 0x77) holding vbin8 of n bytes. */
        const unsigned char *b = m->buf.data;
        ck_assert_uint_ge(m->buf.len, ok[i].n + 5);
        const unsigned char *d = b + m->buf.len - ok[i].n - 5;
        ck_assert_msg(d[0] == 0x00 && d[1] == 0x53 && d[2] == 0x77 && d[3] == 0xa0 && d[4] == ok[i].n,
                      "%s: not a binary body of %zu bytes", ok[i].b64, ok[i].n);
        ck_assert(memcmp(d + 5, ok[i].bytes, ok[i].n) == 0);
        rt_msg_unref(m);
    }
}
END_TEST

static Suite *adm_suite(void)
{
    Suite *s = suite_create("adm_fuzzed");
    TCase *tc = tcase_create("publish");
    tcase_add_test(tc, test_publish_base64_all_padding_is_refused);
    tcase_add_test(tc, test_publish_base64_padding_is_not_payload);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return run_suite(adm_suite()); }
