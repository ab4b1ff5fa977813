/* logins.c — failed logins, remembered per source address, so that a
 * password cannot be guessed at line rate.
 *
 * Each failure from an address doubles the delay before its refusal is
 * answered (BRK_LOGIN_DELAY_MIN_MS up to BRK_LOGIN_DELAY_MAX_MS); an
 * address quiet for BRK_LOGIN_FORGET_MS starts again. Nothing here sleeps:
 * the front ends hold back their answer with a timer (an AMQP connection
 * stops reading and writing until then; the admin API suspends the HTTP
 * request), so a scheduler thread never waits. Right passwords are never
 * delayed. The table is a fixed array (BRK_LOGIN_ADDRS), scanned under a
 * mutex on failures only: a flood from many addresses evicts the quietest.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "broker/brk.h"

typedef struct addr_entry {
    uint8_t ip[16]; /* IPv4 as v4-mapped IPv6 */
    uint64_t last;  /* ms (monotonic) of the last failure; 0: a free slot */
    uint32_t failures;
    uint32_t delay; /* ms: the last failure's */
} addr_entry;

static pthread_mutex_t logins_lock = PTHREAD_MUTEX_INITIALIZER;
static addr_entry table[BRK_LOGIN_ADDRS];

/* The address part of peer (no port), as 16 bytes; false if there is none. */
static bool key_of(const struct sockaddr *sa, uint8_t out[16])
{
    memset(out, 0, 16);
    if (sa && sa->sa_family == AF_INET) {
        out[10] = out[11] = 0xff;
        memcpy(out + 12, &((const struct sockaddr_in *)sa)->sin_addr, 4);
        return true;
    }
    if (sa && sa->sa_family == AF_INET6) {
        memcpy(out, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
        return true;
    }
    return false; /* a Unix socket or none: one shared entry, the all-zero key */
}

static void addr_text(const uint8_t ip[16], char *out, size_t len)
{
    static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (!memcmp(ip, mapped, 12))
        inet_ntop(AF_INET, ip + 12, out, (socklen_t)len);
    else
        inet_ntop(AF_INET6, ip, out, (socklen_t)len);
}

/* The caller holds the lock. */
static addr_entry *lookup(const uint8_t ip[16], uint64_t now, bool make)
{
    addr_entry *quietest = NULL;
    for (size_t i = 0; i < BRK_LOGIN_ADDRS; i++) {
        addr_entry *e = &table[i];
        if (e->last && now > e->last && now - e->last >= BRK_LOGIN_FORGET_MS)
            e->last = 0; /* quiet long enough: forgotten */
        if (e->last && !memcmp(e->ip, ip, 16))
            return e;
        if (!quietest || (quietest->last && (!e->last || e->last < quietest->last)))
            quietest = e;
    }
    if (!make)
        return NULL;
    memset(quietest, 0, sizeof *quietest);
    memcpy(quietest->ip, ip, 16);
    return quietest;
}

uint32_t brk_login_failed(const struct sockaddr *peer, const char *user, const char *how, uint64_t now_ms)
{
    uint8_t ip[16];
    char text[INET6_ADDRSTRLEN] = "?";
    bool known = key_of(peer, ip);
    if (!now_ms)
        now_ms = sv_now_ms();
    if (!now_ms)
        now_ms = 1; /* 0 marks a free slot */
    pthread_mutex_lock(&logins_lock);
    addr_entry *e = lookup(ip, now_ms, true);
    e->failures++;
    e->last = now_ms;
    uint32_t d = BRK_LOGIN_DELAY_MIN_MS;
    for (uint32_t i = 1; i < e->failures && d < BRK_LOGIN_DELAY_MAX_MS; i++)
        d *= 2;
    e->delay = d < BRK_LOGIN_DELAY_MAX_MS ? d : BRK_LOGIN_DELAY_MAX_MS;
    uint32_t failures = e->failures, delay = e->delay;
    pthread_mutex_unlock(&logins_lock);
    if (known)
        addr_text(ip, text, sizeof text);
    char who[64];
    size_t i = 0;
    for (; user && user[i] && i < sizeof who - 1; i++) /* the client's bytes: printable only */
        who[i] = user[i] >= 0x20 && user[i] < 0x7f ? user[i] : '?';
    who[i] = '\0';
    sv_log(SV_LOG_WARNING, "login failed for user '%s' from %s (%s): failure %u from this address, answered in %u ms",
           who, text, how ? how : "?", failures, delay);
    return delay;
}

uint32_t brk_login_delay(void *ctx, const struct sockaddr *peer)
{
    (void)ctx;
    uint8_t ip[16];
    key_of(peer, ip);
    uint64_t now = sv_now_ms();
    pthread_mutex_lock(&logins_lock);
    const addr_entry *e = lookup(ip, now ? now : 1, false);
    uint32_t d = e ? e->delay : 0;
    pthread_mutex_unlock(&logins_lock);
    return d;
}

size_t brk_login_addrs(void)
{
    size_t n = 0;
    pthread_mutex_lock(&logins_lock);
    for (size_t i = 0; i < BRK_LOGIN_ADDRS; i++)
        n += table[i].last != 0;
    pthread_mutex_unlock(&logins_lock);
    return n;
}

void brk_logins_reset(void)
{
    pthread_mutex_lock(&logins_lock);
    memset(table, 0, sizeof table);
    pthread_mutex_unlock(&logins_lock);
}
