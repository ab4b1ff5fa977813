/* map091.h — shared by map091.c (0-9-1 publish to AMQP 1.0 bytes) and
 * map091_deliver.c (AMQP 1.0 bytes to a 0-9-1 delivery) only: the AMQP 1.0
 * codes both read and write, and the small checks both make. The mapping's
 * table is in DESIGN.md ("AMQP 0-9-1 message mapping").
 */
#ifndef PLEXUS_MAP091_H
#define PLEXUS_MAP091_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

/* The properties list's fields (1.0 spec 3.2.4). */
enum {
    P_MESSAGE_ID,
    P_USER_ID,
    P_TO,
    P_SUBJECT,
    P_REPLY_TO,
    P_CORRELATION_ID,
    P_CONTENT_TYPE,
    P_CONTENT_ENCODING,
    P_ABSOLUTE_EXPIRY,
    P_CREATION_TIME,
    P_GROUP_ID,
    P_NFIELDS
};

#define MAP_AMQP10_TYPE "amqp-1.0" /* basic.type of a body that is AMQP 1.0 encoded sections */
#define MAP_QUEUES "/queues/"      /* a queue's address, then its name percent-encoded */

static inline bool amqp__m91_name_is(const uint8_t *p, size_t n, const char *s)
{
    return n == strlen(s) && memcmp(p, s, n) == 0;
}
static inline bool amqp__m91_is_x(const uint8_t *p, size_t n) { return n >= 2 && p[0] == 'x' && p[1] == '-'; }

/* Well-formed UTF-8 (no overlongs, no surrogates, at most U+10FFFF). */
static inline bool amqp__m91_utf8_ok(const uint8_t *p, size_t n, bool nul_ok)
{
    size_t i = 0;
    while (i < n) {
        uint8_t c = p[i];
        if (c < 0x80) {
            if (!c && !nul_ok)
                return false;
            i++;
            continue;
        }
        size_t k = c >= 0xf0 ? 3 : c >= 0xe0 ? 2 : c >= 0xc2 ? 1 : 0;
        if (!k || c > 0xf4 || n - i <= k)
            return false;
        uint8_t c1 = p[i + 1];
        if ((c == 0xe0 && c1 < 0xa0) || (c == 0xed && c1 > 0x9f) || (c == 0xf0 && c1 < 0x90) ||
            (c == 0xf4 && c1 > 0x8f))
            return false;
        for (size_t j = 1; j <= k; j++)
            if ((p[i + j] & 0xc0) != 0x80)
                return false;
        i += k + 1;
    }
    return true;
}

/* RabbitMQ's "shortstr" condition: under 256 bytes, UTF-8, no NUL. */
static inline bool amqp__m91_shortstr_ok(const uint8_t *p, size_t n)
{
    return n < 256 && amqp__m91_utf8_ok(p, n, false);
}

static inline int amqp__m91_hexval(uint8_t c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static inline uint64_t amqp__m91_be_get(const uint8_t *p, unsigned n)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

/* Header names RabbitMQ 4 sets itself on a delivery (x-exchange,
 * x-routing-key) or derives from the basic properties (x-basic-*): a
 * client's header of that name would duplicate a key, so it is left out. */
static inline bool amqp__m91_reserved_ma(const uint8_t *p, size_t n)
{
    return amqp__m91_name_is(p, n, "x-exchange") || amqp__m91_name_is(p, n, "x-routing-key") ||
           (n >= 8 && memcmp(p, "x-basic-", 8) == 0);
}

#endif
