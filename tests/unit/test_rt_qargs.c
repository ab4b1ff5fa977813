/* test_rt_qargs.c — queue arguments (routing/exchange.c): rt_qargs_init's
 * defaults and rt_qargs_set for each RabbitMQ-style argument, given as a
 * string or an integer, and its refusals with a reason in err. */
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "check_main.h"
#include "routing/rt.h"

static char err[256];

static int set_int(rt_qargs *a, const char *name, int64_t v)
{
    err[0] = '\0';
    return rt_qargs_set(a, name, NULL, v, true, err, sizeof err);
}
static int set_str(rt_qargs *a, const char *name, const char *v)
{
    err[0] = '\0';
    return rt_qargs_set(a, name, v, 0, false, err, sizeof err);
}

/* A refusal: -EINVAL, a; unchanged, and err naming the argument. */
#define REFUSED(a, call, name)                                                                                         \
    do {                                                                                                               \
        rt_qargs before_ = *(a);                                                                                       \
        ck_assert_int_eq((call), -EINVAL);                                                                             \
        ck_assert_msg(memcmp(&before_, (a), sizeof before_) == 0, "%s: args changed", (name));                         \
        ck_assert_msg(strstr(err, (name)) != NULL, "err \"%s\" does not name %s", err, (name));                        \
    } while (0)

START_TEST(test_qargs_defaults_are_durable_and_unbounded)
{
    rt_qargs a;
    memset(&a, 0x5a, sizeof a); /* init must set everything */
    rt_qargs_init(&a);
    ck_assert(a.durable);
    ck_assert(!a.exclusive);
    ck_assert(!a.auto_delete);
    ck_assert_int_eq(a.max_length, -1);
    ck_assert_int_eq(a.max_length_bytes, -1);
    ck_assert_int_eq(a.overflow, RT_DROP_HEAD);
    ck_assert_int_eq(a.message_ttl, -1);
    ck_assert(!a.has_dlx);
    ck_assert(!a.has_dlk);
    ck_assert_str_eq(a.dlx, "");
    ck_assert_str_eq(a.dlk, "");
}
END_TEST

START_TEST(test_qargs_max_length_takes_non_negative_integers)
{
    rt_qargs a;
    rt_qargs_init(&a);
    ck_assert_int_eq(set_int(&a, "x-max-length", 1000), 0);
    ck_assert_int_eq(a.max_length, 1000);
    ck_assert_int_eq(set_int(&a, "x-max-length", 0), 0); /* as RabbitMQ: a queue that keeps nothing */
    ck_assert_int_eq(a.max_length, 0);
    ck_assert_int_eq(set_int(&a, "x-max-length", INT64_MAX), 0);
    ck_assert_int_eq(a.max_length, INT64_MAX);
    ck_assert_int_eq(a.max_length_bytes, -1); /* nothing else moved */
    ck_assert_int_eq(a.message_ttl, -1);
}
END_TEST

START_TEST(test_qargs_max_length_bytes_takes_non_negative_integers)
{
    rt_qargs a;
    rt_qargs_init(&a);
    ck_assert_int_eq(set_int(&a, "x-max-length-bytes", 1 << 20), 0);
    ck_assert_int_eq(a.max_length_bytes, 1 << 20);
    ck_assert_int_eq(a.max_length, -1);
    ck_assert_int_eq(set_int(&a, "x-max-length-bytes", 0), 0);
    ck_assert_int_eq(a.max_length_bytes, 0);
}
END_TEST

START_TEST(test_qargs_message_ttl_takes_non_negative_integers)
{
    rt_qargs a;
    rt_qargs_init(&a);
    ck_assert_int_eq(set_int(&a, "x-message-ttl", 60000), 0);
    ck_assert_int_eq(a.message_ttl, 60000);
    ck_assert_int_eq(set_int(&a, "x-message-ttl", 0), 0); /* expire unless delivered at once */
    ck_assert_int_eq(a.message_ttl, 0);
    ck_assert_int_eq(a.max_length, -1);
}
END_TEST

START_TEST(test_qargs_expires_takes_positive_integers_only)
{
    rt_qargs a;
    rt_qargs_init(&a);
    ck_assert_int_eq(a.expires, -1); /* never, by default */
    ck_assert_int_eq(set_int(&a, "x-expires", 1800000), 0);
    ck_assert_int_eq(a.expires, 1800000);
    ck_assert_int_eq(set_int(&a, "x-expires", 0), -EINVAL); /* RabbitMQ refuses 0 too */
    ck_assert_int_eq(set_int(&a, "x-expires", -1), -EINVAL);
    ck_assert_int_eq(set_str(&a, "x-expires", "1000"), -EINVAL);
    ck_assert_int_eq(a.expires, 1800000);
}
END_TEST

START_TEST(test_qargs_numbers_refuse_negatives_and_strings)
{
    const char *names[] = {"x-max-length", "x-max-length-bytes", "x-message-ttl"};
    for (int i = 0; i < 3; i++) {
        rt_qargs a;
        rt_qargs_init(&a);
        REFUSED(&a, set_int(&a, names[i], -1), names[i]);
        REFUSED(&a, set_int(&a, names[i], INT64_MIN), names[i]);
        REFUSED(&a, set_str(&a, names[i], "10"), names[i]);
        REFUSED(&a, set_str(&a, names[i], NULL), names[i]);
        ck_assert_ptr_nonnull(strstr(err, "non-negative integer"));
    }
}
END_TEST

START_TEST(test_qargs_overflow_takes_drop_head_or_reject_publish)
{
    rt_qargs a;
    rt_qargs_init(&a);
    ck_assert_int_eq(set_str(&a, "x-overflow", "reject-publish"), 0);
    ck_assert_int_eq(a.overflow, RT_REJECT_PUBLISH);
    ck_assert_int_eq(set_str(&a, "x-overflow", "drop-head"), 0);
    ck_assert_int_eq(a.overflow, RT_DROP_HEAD);
}
END_TEST

START_TEST(test_qargs_overflow_refuses_other_values)
{
    rt_qargs a;
    rt_qargs_init(&a);
    ck_assert_int_eq(set_str(&a, "x-overflow", "reject-publish"), 0);
    const char *bad[] = {"reject-publish-dlx", "drop_head", "Drop-Head", "", "drop-head "};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        REFUSED(&a, set_str(&a, "x-overflow", bad[i]), "x-overflow");
    ck_assert_ptr_nonnull(strstr(err, "drop-head or reject-publish"));
    REFUSED(&a, set_int(&a, "x-overflow", 1), "x-overflow");
    REFUSED(&a, set_str(&a, "x-overflow", NULL), "x-overflow");
    ck_assert_int_eq(a.overflow, RT_REJECT_PUBLISH);
}
END_TEST

START_TEST(test_qargs_dead_letter_exchange_and_key_are_strings)
{
    rt_qargs a;
    rt_qargs_init(&a);
    ck_assert_int_eq(set_str(&a, "x-dead-letter-exchange", "dlx"), 0);
    ck_assert(a.has_dlx);
    ck_assert_str_eq(a.dlx, "dlx");
    ck_assert(!a.has_dlk);
    ck_assert_int_eq(set_str(&a, "x-dead-letter-routing-key", "dead.orders"), 0);
    ck_assert(a.has_dlk);
    ck_assert_str_eq(a.dlk, "dead.orders");
    ck_assert_str_eq(a.dlx, "dlx");
}
END_TEST

START_TEST(test_qargs_dead_letter_exchange_may_be_the_default_exchange)
{
    rt_qargs a;
    rt_qargs_init(&a);
    ck_assert_int_eq(set_str(&a, "x-dead-letter-exchange", ""), 0);
    ck_assert(a.has_dlx); /* "" is the default exchange, not "none" */
    ck_assert_str_eq(a.dlx, "");
}
END_TEST

START_TEST(test_qargs_dead_letter_names_up_to_255_bytes)
{
    char name[300];
    memset(name, 'x', RT_NAME_MAX);
    name[RT_NAME_MAX] = '\0';
    rt_qargs a;
    rt_qargs_init(&a);
    ck_assert_int_eq(set_str(&a, "x-dead-letter-exchange", name), 0);
    ck_assert_str_eq(a.dlx, name);
    ck_assert_int_eq(set_str(&a, "x-dead-letter-routing-key", name), 0);
    ck_assert_str_eq(a.dlk, name);

    rt_qargs b;
    rt_qargs_init(&b);
    name[RT_NAME_MAX] = 'x';
    name[RT_NAME_MAX + 1] = '\0';
    REFUSED(&b, set_str(&b, "x-dead-letter-exchange", name), "x-dead-letter-exchange");
    REFUSED(&b, set_str(&b, "x-dead-letter-routing-key", name), "x-dead-letter-routing-key");
    ck_assert(!b.has_dlx && !b.has_dlk);
}
END_TEST

START_TEST(test_qargs_dead_letter_names_refuse_integers)
{
    rt_qargs a;
    rt_qargs_init(&a);
    REFUSED(&a, set_int(&a, "x-dead-letter-exchange", 1), "x-dead-letter-exchange");
    REFUSED(&a, set_int(&a, "x-dead-letter-routing-key", 1), "x-dead-letter-routing-key");
    REFUSED(&a, set_str(&a, "x-dead-letter-exchange", NULL), "x-dead-letter-exchange");
}
END_TEST

START_TEST(test_qargs_queue_type_must_be_classic)
{
    rt_qargs a;
    rt_qargs_init(&a);
    rt_qargs before = a;
    ck_assert_int_eq(set_str(&a, "x-queue-type", "classic"), 0);
    ck_assert_int_eq(memcmp(&before, &a, sizeof a), 0); /* accepted, changes nothing */
    REFUSED(&a, set_str(&a, "x-queue-type", "quorum"), "x-queue-type");
    REFUSED(&a, set_str(&a, "x-queue-type", "stream"), "x-queue-type");
    REFUSED(&a, set_int(&a, "x-queue-type", 0), "x-queue-type");
}
END_TEST

START_TEST(test_qargs_flags_take_true_false_or_integers)
{
    rt_qargs a;
    rt_qargs_init(&a);
    ck_assert_int_eq(set_str(&a, "durable", "false"), 0);
    ck_assert(!a.durable);
    ck_assert_int_eq(set_str(&a, "durable", "true"), 0);
    ck_assert(a.durable);
    ck_assert_int_eq(set_int(&a, "durable", 0), 0);
    ck_assert(!a.durable);

    ck_assert_int_eq(set_str(&a, "exclusive", "true"), 0);
    ck_assert(a.exclusive);
    ck_assert_int_eq(set_int(&a, "exclusive", 0), 0);
    ck_assert(!a.exclusive);

    ck_assert_int_eq(set_str(&a, "auto-delete", "true"), 0);
    ck_assert(a.auto_delete);
    ck_assert_int_eq(set_str(&a, "auto_delete", "false"), 0); /* both spellings */
    ck_assert(!a.auto_delete);
    ck_assert_int_eq(set_int(&a, "auto_delete", 1), 0);
    ck_assert(a.auto_delete);
    ck_assert(!a.exclusive && !a.durable); /* each flag is its own */
}
END_TEST

START_TEST(test_qargs_flags_refuse_other_strings)
{
    const char *names[] = {"durable", "exclusive", "auto-delete"};
    for (int i = 0; i < 3; i++) {
        rt_qargs a;
        rt_qargs_init(&a);
        REFUSED(&a, set_str(&a, names[i], "yes"), names[i]);
        REFUSED(&a, set_str(&a, names[i], "TRUE"), names[i]);
        REFUSED(&a, set_str(&a, names[i], "1"), names[i]);
        REFUSED(&a, set_str(&a, names[i], NULL), names[i]);
        ck_assert_ptr_nonnull(strstr(err, "true or false"));
    }
}
END_TEST

START_TEST(test_qargs_unknown_arguments_are_refused_by_name)
{
    rt_qargs a;
    rt_qargs_init(&a);
    const char *names[] = {"x-max-priority",
                           "x-delivery-limit",
                           "x-single-active-consumer",
                           "x-max-len",
                           "max-length",
                           "X-Max-Length",
                           ""};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        REFUSED(&a, set_int(&a, names[i], 5), names[i]);
        ck_assert_msg(strstr(err, "not supported") != NULL, "\"%s\": \"%s\"", names[i], err);
        REFUSED(&a, set_str(&a, names[i], "5"), names[i]);
    }
}
END_TEST

START_TEST(test_qargs_error_text_fits_a_small_buffer)
{
    rt_qargs a;
    rt_qargs_init(&a);
    char small[12];
    memset(small, 'Z', sizeof small);
    ck_assert_int_eq(rt_qargs_set(&a, "x-max-length", NULL, -5, true, small, sizeof small), -EINVAL);
    ck_assert_uint_eq(strlen(small), sizeof small - 1); /* truncated, terminated */
}
END_TEST

static Suite *qargs_suite(void)
{
    Suite *s = suite_create("routing/qargs");
    TCase *tc = tcase_create("qargs");
    tcase_add_test(tc, test_qargs_defaults_are_durable_and_unbounded);
    tcase_add_test(tc, test_qargs_max_length_takes_non_negative_integers);
    tcase_add_test(tc, test_qargs_max_length_bytes_takes_non_negative_integers);
    tcase_add_test(tc, test_qargs_message_ttl_takes_non_negative_integers);
    tcase_add_test(tc, test_qargs_expires_takes_positive_integers_only);
    tcase_add_test(tc, test_qargs_numbers_refuse_negatives_and_strings);
    tcase_add_test(tc, test_qargs_overflow_takes_drop_head_or_reject_publish);
    tcase_add_test(tc, test_qargs_overflow_refuses_other_values);
    tcase_add_test(tc, test_qargs_dead_letter_exchange_and_key_are_strings);
    tcase_add_test(tc, test_qargs_dead_letter_exchange_may_be_the_default_exchange);
    tcase_add_test(tc, test_qargs_dead_letter_names_up_to_255_bytes);
    tcase_add_test(tc, test_qargs_dead_letter_names_refuse_integers);
    tcase_add_test(tc, test_qargs_queue_type_must_be_classic);
    tcase_add_test(tc, test_qargs_flags_take_true_false_or_integers);
    tcase_add_test(tc, test_qargs_flags_refuse_other_strings);
    tcase_add_test(tc, test_qargs_unknown_arguments_are_refused_by_name);
    tcase_add_test(tc, test_qargs_error_text_fits_a_small_buffer);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return run_suite(qargs_suite()); }
