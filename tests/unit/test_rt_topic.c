/* test_rt_topic.c — rt_topic_match, the topic exchange's pattern matching
 * (routing/topic.c), against the semantics of RabbitMQ's topic exchange:
 * words separated by '.', '*' exactly one word, '#' zero or more words, the
 * empty key has no words, and an empty word (as in "a..b") is a word. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "check_main.h"
#include "routing/rt.h"

#define MATCH(p, k) ck_assert_msg(rt_topic_match((p), (k)), "pattern \"%s\" should match key \"%s\"", (p), (k))
#define NO_MATCH(p, k) ck_assert_msg(!rt_topic_match((p), (k)), "pattern \"%s\" should not match key \"%s\"", (p), (k))

/* "w.w.w...": n words of w, separated by dots, in out (room for it all). */
static char *words(char *out, const char *w, int n)
{
    out[0] = '\0';
    for (int i = 0; i < n; i++) {
        if (i)
            strcat(out, ".");
        strcat(out, w);
    }
    return out;
}

/* -------------------------------------------------------------- literals */

START_TEST(test_topic_literal_words_match_only_the_same_key)
{
    MATCH("a", "a");
    MATCH("a.b.c", "a.b.c");
    MATCH("stock.usd.nyse", "stock.usd.nyse");
    NO_MATCH("a.b.c", "a.b.d");
    NO_MATCH("a.b.c", "a.b");
    NO_MATCH("a.b", "a.b.c");
    NO_MATCH("a", "b");
    NO_MATCH("abc", "ab");
    NO_MATCH("ab", "abc");
    /* Matching is by whole words, case-sensitive. */
    NO_MATCH("a.b", "ab");
    NO_MATCH("ab", "a.b");
    NO_MATCH("A", "a");
}
END_TEST

START_TEST(test_topic_wildcard_characters_inside_a_word_are_literal)
{
    /* Only a word that is exactly '*' or '#' is a wildcard. */
    NO_MATCH("a*", "ab");
    NO_MATCH("*b", "ab");
    NO_MATCH("a#", "a.b");
    NO_MATCH("#a", "a");
    MATCH("a*", "a*");
    MATCH("x.#y", "x.#y");
    NO_MATCH("x.#y", "x.y");
    NO_MATCH("**", "a");
    NO_MATCH("##", "a");
}
END_TEST

/* --------------------------------------------------------------------- * */

START_TEST(test_topic_star_matches_exactly_one_word)
{
    MATCH("*", "a");
    MATCH("*", "longword");
    NO_MATCH("*", "a.b");
    MATCH("a.*", "a.b");
    NO_MATCH("a.*", "a");
    NO_MATCH("a.*", "a.b.c");
    MATCH("*.b", "a.b");
    NO_MATCH("*.b", "b");
    MATCH("a.*.c", "a.b.c");
    NO_MATCH("a.*.c", "a.c");
    NO_MATCH("a.*.c", "a.b.b.c");
    MATCH("*.*", "a.b");
    NO_MATCH("*.*", "a");
    NO_MATCH("*.*", "a.b.c");
    MATCH("*.*.*", "x.y.z");
}
END_TEST

START_TEST(test_topic_star_does_not_match_the_empty_key)
{
    NO_MATCH("*", "");
    NO_MATCH("*.#", "");
    NO_MATCH("#.*", "");
    NO_MATCH("#.*.#", "");
}
END_TEST

/* --------------------------------------------------------------------- # */

START_TEST(test_topic_hash_alone_matches_every_key)
{
    MATCH("#", "");
    MATCH("#", "a");
    MATCH("#", "a.b");
    MATCH("#", "a.b.c.d.e.f");
    MATCH("#", ".");
    MATCH("#", "a..b");
}
END_TEST

START_TEST(test_topic_trailing_hash_matches_zero_or_more_words)
{
    MATCH("a.#", "a"); /* zero words */
    MATCH("a.#", "a.b");
    MATCH("a.#", "a.b.c");
    NO_MATCH("a.#", "b");
    NO_MATCH("a.#", "b.a");
    NO_MATCH("a.#", "");
    NO_MATCH("a.#", "ab");
    MATCH("a.b.#", "a.b");
    NO_MATCH("a.b.#", "a");
}
END_TEST

START_TEST(test_topic_leading_hash_matches_zero_or_more_words)
{
    MATCH("#.a", "a"); /* zero words */
    MATCH("#.a", "x.a");
    MATCH("#.a", "x.y.z.a");
    NO_MATCH("#.a", "a.x");
    NO_MATCH("#.a", "");
    NO_MATCH("#.a", "ba");
    /* The last word must be a even if 'a' occurs earlier. */
    MATCH("#.a", "a.b.a");
    NO_MATCH("#.a", "a.a.b");
}
END_TEST

START_TEST(test_topic_middle_hash_matches_zero_or_more_words)
{
    MATCH("a.#.b", "a.b"); /* zero words */
    MATCH("a.#.b", "a.x.b");
    MATCH("a.#.b", "a.x.y.z.b");
    MATCH("a.#.b", "a.b.b");
    MATCH("a.#.b", "a.b.x.b"); /* '#' must swallow past the first b */
    NO_MATCH("a.#.b", "a.b.c");
    NO_MATCH("a.#.b", "a");
    NO_MATCH("a.#.b", "b");
    NO_MATCH("a.#.b", "x.a.b");
    NO_MATCH("a.#.b", "a.x.b.y");
}
END_TEST

START_TEST(test_topic_double_hash_matches_like_one_hash)
{
    MATCH("#.#", "");
    MATCH("#.#", "a");
    MATCH("#.#", "a.b.c");
    MATCH("a.#.#.b", "a.b");
    MATCH("a.#.#.b", "a.x.y.b");
    NO_MATCH("a.#.#.b", "a.x.y");
    MATCH("#.#.a", "a");
}
END_TEST

START_TEST(test_topic_hash_and_star_combine)
{
    /* "#.*" and "*.#": one or more words. */
    MATCH("*.#", "a");
    MATCH("*.#", "a.b.c");
    MATCH("#.*", "a");
    MATCH("#.*", "a.b.c");
    /* "*.#.*": at least two words. */
    NO_MATCH("*.#.*", "a");
    MATCH("*.#.*", "a.b");
    MATCH("*.#.*", "a.b.c.d");
    /* '#' then a literal then '*': backtracking over several candidates. */
    MATCH("#.b.*", "b.b.b");
    MATCH("#.b.*", "a.b.c");
    MATCH("#.b.*", "b.x.b.y");
    NO_MATCH("#.b.*", "a.b");
    NO_MATCH("#.b.*", "a.b.c.d");
    /* Two '#' separated by literals. */
    MATCH("#.a.#.b.#", "a.b");
    MATCH("#.a.#.b.#", "x.a.y.b.z");
    MATCH("#.a.#.b.#", "b.a.a.b");
    NO_MATCH("#.a.#.b.#", "b.a");
    NO_MATCH("#.a.#.b.#", "a.a.a");
}
END_TEST

/* ------------------------------------------------------------ empty words */

START_TEST(test_topic_empty_key_has_zero_words)
{
    MATCH("", "");
    MATCH("#", "");
    NO_MATCH("*", "");
    NO_MATCH("a", "");
    NO_MATCH("", "a");
    /* "" is no words, unlike "." which is two empty ones. */
    NO_MATCH("", ".");
    NO_MATCH(".", "");
}
END_TEST

START_TEST(test_topic_empty_words_are_words)
{
    /* "a..b" is the three words "a", "", "b". */
    MATCH("a..b", "a..b");
    MATCH("a.*.b", "a..b");
    MATCH("a.#.b", "a..b");
    NO_MATCH("a.b", "a..b");
    NO_MATCH("a..b", "a.b");
    NO_MATCH("a.*", "a..b");
    /* A trailing or leading dot adds an empty word. */
    NO_MATCH("a", "a.");
    MATCH("a.*", "a.");
    MATCH("a.", "a.");
    MATCH("*.a", ".a");
    NO_MATCH("a", ".a");
    /* "." is two empty words. */
    MATCH("*.*", ".");
    NO_MATCH("*", ".");
    MATCH(".", ".");
    MATCH("#", "..");
    MATCH("*.*.*", "..");
}
END_TEST

/* ------------------------------------------------------------ long keys */

START_TEST(test_topic_longest_key_of_128_words_matches)
{
    char key[300], pat[600];
    words(key, "a", 128); /* "a.a. ... .a": 255 bytes, the longest name */
    ck_assert_uint_eq(strlen(key), RT_NAME_MAX);
    MATCH(key, key);
    MATCH("#", key);
    MATCH("a.#", key);
    MATCH("#.a", key);
    MATCH("*.#.*", key);
    MATCH(words(pat, "*", 128), key);
    NO_MATCH(words(pat, "*", 127), key);
    NO_MATCH(words(pat, "*", 129), key);
    NO_MATCH(words(pat, "a", 127), key);
    NO_MATCH("b.#", key);
    NO_MATCH("#.b", key);
    NO_MATCH("#.b.#", key);
}
END_TEST

START_TEST(test_topic_key_of_256_empty_words_matches_hash)
{
    /* 255 dots: 256 empty words, the most a 255-byte key can have. */
    char key[RT_NAME_MAX + 1], pat[1024];
    memset(key, '.', RT_NAME_MAX);
    key[RT_NAME_MAX] = '\0';
    MATCH("#", key);
    MATCH(key, key);
    MATCH(words(pat, "*", 256), key);
    NO_MATCH(words(pat, "*", 255), key);
    NO_MATCH("*", key);
}
END_TEST

START_TEST(test_topic_many_hashes_against_a_long_key_still_decide)
{
    /* Pathological for backtracking: "#.a.#.a.#..." against a long key of
     * a's ending in b. Must answer (and answer no) quickly. */
    char key[300], pat[600];
    words(key, "a", 127);
    strcat(key, ".b");
    pat[0] = '\0';
    for (int i = 0; i < 40; i++)
        strcat(pat, "#.a.");
    strcat(pat, "c");
    NO_MATCH(pat, key);
    /* And yes when the end fits. */
    pat[strlen(pat) - 1] = 'b';
    MATCH(pat, key);
}
END_TEST

START_TEST(test_topic_prefix_and_suffix_of_a_key_do_not_match)
{
    NO_MATCH("a.b", "a.b.c");     /* pattern is a prefix */
    NO_MATCH("b.c", "a.b.c");     /* pattern is a suffix */
    NO_MATCH("a.b.c.d", "a.b.c"); /* key is a prefix */
    NO_MATCH("x.a.b.c", "a.b.c"); /* key is a suffix */
    NO_MATCH("a.b.c", "a.b.cd");  /* prefix of the last word */
    NO_MATCH("a.b.cd", "a.b.c");
    NO_MATCH("a.*", "a");
    NO_MATCH("*.a", "a");
}
END_TEST

static Suite *topic_suite(void)
{
    Suite *s = suite_create("routing/topic");
    TCase *tc = tcase_create("match");
    tcase_add_test(tc, test_topic_literal_words_match_only_the_same_key);
    tcase_add_test(tc, test_topic_wildcard_characters_inside_a_word_are_literal);
    tcase_add_test(tc, test_topic_star_matches_exactly_one_word);
    tcase_add_test(tc, test_topic_star_does_not_match_the_empty_key);
    tcase_add_test(tc, test_topic_hash_alone_matches_every_key);
    tcase_add_test(tc, test_topic_trailing_hash_matches_zero_or_more_words);
    tcase_add_test(tc, test_topic_leading_hash_matches_zero_or_more_words);
    tcase_add_test(tc, test_topic_middle_hash_matches_zero_or_more_words);
    tcase_add_test(tc, test_topic_double_hash_matches_like_one_hash);
    tcase_add_test(tc, test_topic_hash_and_star_combine);
    tcase_add_test(tc, test_topic_empty_key_has_zero_words);
    tcase_add_test(tc, test_topic_empty_words_are_words);
    tcase_add_test(tc, test_topic_longest_key_of_128_words_matches);
    tcase_add_test(tc, test_topic_key_of_256_empty_words_matches_hash);
    tcase_add_test(tc, test_topic_many_hashes_against_a_long_key_still_decide);
    tcase_add_test(tc, test_topic_prefix_and_suffix_of_a_key_do_not_match);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return run_suite(topic_suite()); }
