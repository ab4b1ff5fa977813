/* test_sv_util.c — the general helpers of supervisor/util.c: string
 * hashes, array growth, atomic file replacement. */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "supervisor/sv.h"
#include "tests/unit/check_main.h"

START_TEST(test_hash32_is_fnv1a)
{
    /* Published FNV-1a 32-bit test vectors. */
    ck_assert_uint_eq(sv_hash32(""), 0x811c9dc5u);
    ck_assert_uint_eq(sv_hash32("a"), 0xe40c292cu);
    ck_assert_uint_eq(sv_hash32("foobar"), 0xbf9cf968u);
}
END_TEST

START_TEST(test_hash128_keys_are_never_zero_and_tell_names_apart)
{
    uint64_t a1, a2, b1, b2, z1, z2;
    sv_hash128("orders", &a1, &a2);
    sv_hash128("orderz", &b1, &b2);
    sv_hash128("", &z1, &z2);
    ck_assert(a1 != b1 || a2 != b2);
    ck_assert(z1 != 0 || z2 != 0); /* an empty slot of sv_map is (0, 0) */
    uint64_t c1, c2;
    sv_hash128("orders", &c1, &c2);
    ck_assert(a1 == c1 && a2 == c2);
}
END_TEST

START_TEST(test_grow_doubles_and_keeps_contents)
{
    int *v = NULL;
    size_t cap = 0;
    ck_assert_int_eq(sv_grow((void **)&v, &cap, 1, sizeof *v), 0);
    ck_assert_uint_eq(cap, 16);
    for (int i = 0; i < 16; i++)
        v[i] = i;
    ck_assert_int_eq(sv_grow((void **)&v, &cap, 100, sizeof *v), 0);
    ck_assert_uint_eq(cap, 128);
    for (int i = 0; i < 16; i++)
        ck_assert_int_eq(v[i], i);
    ck_assert_int_eq(sv_grow((void **)&v, &cap, 50, sizeof *v), 0); /* room already */
    ck_assert_uint_eq(cap, 128);
    free(v);
}
END_TEST

START_TEST(test_grow_past_what_size_t_holds_is_refused_and_leaves_the_array_alone)
{
    int *v = NULL;
    size_t cap = 0;
    ck_assert_int_eq(sv_grow((void **)&v, &cap, 4, sizeof *v), 0);
    int *before = v;
    /* need * size would wrap to a small number: refused before any realloc */
    ck_assert_int_eq(sv_grow((void **)&v, &cap, SIZE_MAX / 64 + 1, 64), -ENOMEM);
    ck_assert_ptr_eq(v, before);
    ck_assert_uint_eq(cap, 16);
    free(v);
}
END_TEST

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return NULL;
    static char buf[256];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

START_TEST(test_file_replace_swaps_the_contents_whole_and_leaves_no_temporary)
{
    char dir[] = "/tmp/plexus-util-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    char path[128], tmp[140];
    snprintf(path, sizeof path, "%s/f.json", dir);
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    ck_assert_int_eq(sv_file_replace(path, "old", 3), 0);
    ck_assert_str_eq(slurp(path), "old");
    ck_assert_int_eq(sv_file_replace(path, "brand new", 9), 0);
    ck_assert_str_eq(slurp(path), "brand new");
    ck_assert_int_eq(access(tmp, F_OK), -1);
    unlink(path);
    rmdir(dir);
}
END_TEST

START_TEST(test_file_replace_in_a_missing_directory_fails_and_says_why)
{
    ck_assert_int_eq(sv_file_replace("/nonexistent-plexus-dir/f", "x", 1), -ENOENT);
}
END_TEST

static Suite *util_suite(void)
{
    Suite *s = suite_create("sv_util");
    TCase *tc = tcase_create("util");
    tcase_add_test(tc, test_hash32_is_fnv1a);
    tcase_add_test(tc, test_hash128_keys_are_never_zero_and_tell_names_apart);
    tcase_add_test(tc, test_grow_doubles_and_keeps_contents);
    tcase_add_test(tc, test_grow_past_what_size_t_holds_is_refused_and_leaves_the_array_alone);
    tcase_add_test(tc, test_file_replace_swaps_the_contents_whole_and_leaves_no_temporary);
    tcase_add_test(tc, test_file_replace_in_a_missing_directory_fails_and_says_why);
    suite_add_tcase(s, tc);
    return s;
}

int main(void) { return run_suite(util_suite()); }
