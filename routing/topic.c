/* topic.c — AMQP 0-9-1 topic matching, as topic exchanges use it.
 *
 * Keys and patterns are dot-separated words; in a pattern '*' is exactly
 * one word and '#' zero or more. The empty key has no words. Matching is
 * the wildcard algorithm over words with one backtrack point (the last
 * '#'), so it is linear in practice and never recursive.
 */
#include <string.h>

#include "routing/rt.h"

#define MAX_WORDS 256 /* a 255-byte key has at most 128 words */

typedef struct word {
    const char *s;
    size_t n;
} word;

static int split(const char *s, word *w)
{
    if (!*s)
        return 0;
    int n = 0;
    for (;;) {
        const char *dot = strchr(s, '.');
        size_t len = dot ? (size_t)(dot - s) : strlen(s);
        if (n == MAX_WORDS)
            return -1;
        w[n].s = s;
        w[n].n = len;
        n++;
        if (!dot)
            return n;
        s = dot + 1;
    }
}

static bool is(const word *w, char c) { return w->n == 1 && w->s[0] == c; }

bool rt_topic_match(const char *pattern, const char *key)
{
    word p[MAX_WORDS], k[MAX_WORDS];
    int np = split(pattern, p), nk = split(key, k);
    if (np < 0 || nk < 0)
        return false;
    int pi = 0, ki = 0, hash_p = -1, hash_k = 0;
    while (ki < nk) {
        if (pi < np && is(&p[pi], '#')) {
            hash_p = pi++; /* first try matching zero words */
            hash_k = ki;
        } else if (pi < np && (is(&p[pi], '*') || (p[pi].n == k[ki].n && memcmp(p[pi].s, k[ki].s, k[ki].n) == 0))) {
            pi++;
            ki++;
        } else if (hash_p >= 0) {
            pi = hash_p + 1; /* let the last '#' swallow one more word */
            ki = ++hash_k;
        } else {
            return false;
        }
    }
    while (pi < np && is(&p[pi], '#'))
        pi++;
    return pi == np;
}
