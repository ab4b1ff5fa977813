/* users.c — the broker's users: names, salted password hashes, tags.
 *
 * Passwords are never kept: only RabbitMQ's "rabbit_password_hashing_sha256"
 * form, base64(salt[4] + SHA-256(salt[4] + password)), so password_hash
 * values exported from RabbitMQ work here and ours there. Lookups happen at
 * every login on a scheduler thread; changes (the admin API) are rare, so a
 * read-write lock is simplest. A user added at run time has no permissions
 * (RabbitMQ's rule: set them); a user deleted loses its own.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/brk.h"

#define SALT 4
#define DIGEST 32

static pthread_rwlock_t users_lock = PTHREAD_RWLOCK_INITIALIZER;
static brk_user *users;
static size_t nusers;
static char anon_user[BRK_NAME_MAX] = "guest";

static void digest(const unsigned char salt[SALT], const char *password, unsigned char out[DIGEST])
{
    size_t plen = strlen(password);
    unsigned char *buf = malloc(SALT + plen);
    unsigned int n = 0;
    if (!buf) {
        memset(out, 0, DIGEST);
        return;
    }
    memcpy(buf, salt, SALT);
    memcpy(buf + SALT, password, plen);
    EVP_Digest(buf, SALT + plen, out, &n, EVP_sha256(), NULL);
    OPENSSL_cleanse(buf, SALT + plen);
    free(buf);
}

int brk_password_hash(const char *password, char *out, size_t len)
{
    unsigned char raw[SALT + DIGEST];
    if (len < BRK_HASH_MAX || RAND_bytes(raw, SALT) != 1)
        return -EINVAL;
    digest(raw, password, raw + SALT);
    EVP_EncodeBlock((unsigned char *)out, raw, sizeof raw);
    return 0;
}

/* 36 bytes encode to 48 base64 characters with no padding (EVP_DecodeBlock
 * counts '=' as bytes, so padding is refused here). */
static bool decode_hash(const char *hash, unsigned char raw[SALT + DIGEST + 4])
{
    size_t hlen = strlen(hash);
    return hlen == 48 && !strchr(hash, '=') && EVP_DecodeBlock(raw, (const unsigned char *)hash, (int)hlen) == 36;
}

bool brk_password_check(const char *password, const char *hash)
{
    unsigned char raw[SALT + DIGEST + 4], want[DIGEST];
    if (!decode_hash(hash, raw))
        return false;
    digest(raw, password, want);
    return CRYPTO_memcmp(want, raw + SALT, DIGEST) == 0;
}

bool brk_hash_valid(const char *hash)
{
    unsigned char raw[SALT + DIGEST + 4];
    return decode_hash(hash, raw);
}

int brk_users_set(const brk_user *list, size_t n, const char *anonymous_user)
{
    brk_user *copy = n ? malloc(n * sizeof *copy) : NULL;
    if (n && !copy)
        return -ENOMEM;
    if (n)
        memcpy(copy, list, n * sizeof *copy);
    pthread_rwlock_wrlock(&users_lock);
    free(users);
    users = copy;
    nusers = n;
    snprintf(anon_user, sizeof anon_user, "%s", anonymous_user ? anonymous_user : "");
    pthread_rwlock_unlock(&users_lock);
    /* Users given whole (the configuration, an old users.json) get full
     * access to "/", as RabbitMQ's default user has: what every user had
     * before permissions existed. users.json's own permissions, when it
     * has them, replace these (brk_users_load). */
    brk_permission *full = n ? calloc(n, sizeof *full) : NULL;
    if (n && !full)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        snprintf(full[i].user, sizeof full[i].user, "%s", list[i].name);
        snprintf(full[i].vhost, sizeof full[i].vhost, "%s", AMQP_VHOST_DEFAULT);
        snprintf(full[i].configure, sizeof full[i].configure, ".*");
        snprintf(full[i].write, sizeof full[i].write, ".*");
        snprintf(full[i].read, sizeof full[i].read, ".*");
    }
    int rc = brk_perms_replace(full, n);
    free(full);
    return rc;
}

void brk_users_free(void) { brk_users_set(NULL, 0, NULL); }

static bool is_loopback(const struct sockaddr *sa)
{
    if (!sa)
        return false;
    if (sa->sa_family == AF_INET)
        return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) == 127;
    if (sa->sa_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
        if (IN6_IS_ADDR_LOOPBACK(a))
            return true;
        return IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127;
    }
    return false;
}

/* Checks a login (no password asked when the peer proved who it is some
 * other way: anonymous, or a certificate); the caller holds users_lock. */
static const brk_user *login(const char *name, const char *password, bool anonymous, const struct sockaddr *peer)
{
    for (size_t i = 0; name && name[0] && i < nusers; i++) {
        const brk_user *u = &users[i];
        if (strcmp(u->name, name) != 0)
            continue;
        bool ok = anonymous || (password && brk_password_check(password, u->hash));
        if (ok && u->loopback_only && !is_loopback(peer))
            ok = false; /* like RabbitMQ's guest: only from this host */
        return ok ? u : NULL;
    }
    return NULL;
}

int brk_authenticate(void *ctx, const char *mech, const char *user, const char *password, const struct sockaddr *peer,
                     char *user_out, size_t user_len)
{
    (void)ctx;
    bool anonymous = !strcmp(mech, "ANONYMOUS");
    /* EXTERNAL: user is the CN of a client certificate the TLS layer
     * verified; the certificate stands for the password, and the user
     * must exist (as with RabbitMQ's rabbitmq_auth_mechanism_ssl). */
    bool external = !strcmp(mech, "EXTERNAL");
    if (!anonymous && !external && strcmp(mech, "PLAIN") != 0)
        return -EACCES; /* only these are checked here */
    pthread_rwlock_rdlock(&users_lock);
    const brk_user *u = login(anonymous ? anon_user : user, password, anonymous || external, peer);
    if (u)
        snprintf(user_out, user_len, "%s", u->name);
    pthread_rwlock_unlock(&users_lock);
    if (!u && !anonymous) /* a password guessed wrong: remembered, and its answer delayed */
        brk_login_failed(peer, user, "AMQP", 0);
    return u ? 0 : -EACCES;
}

int brk_user_login(const char *user, const char *password, const struct sockaddr *peer, char *tags, size_t len)
{
    pthread_rwlock_rdlock(&users_lock);
    const brk_user *u = login(user, password, false, peer);
    if (u)
        snprintf(tags, len, "%s", u->tags);
    pthread_rwlock_unlock(&users_lock);
    if (!u)
        brk_login_failed(peer, user, "HTTP basic auth", 0);
    return u ? 0 : -EACCES;
}

bool brk_tags_have(const char *tags, const char *tag)
{
    size_t n = strlen(tag);
    for (const char *p = tags; (p = strstr(p, tag)); p += n)
        if ((p == tags || p[-1] == ',') && (p[n] == '\0' || p[n] == ','))
            return true;
    return false;
}

int brk_users_get(brk_user **out, size_t *n)
{
    pthread_rwlock_rdlock(&users_lock);
    *n = nusers;
    *out = malloc((nusers ? nusers : 1) * sizeof **out);
    if (*out && nusers)
        memcpy(*out, users, nusers * sizeof **out);
    pthread_rwlock_unlock(&users_lock);
    return *out ? 0 : -ENOMEM;
}

int brk_user_put(const brk_user *u)
{
    int rc = 0;
    pthread_rwlock_wrlock(&users_lock);
    size_t i = 0;
    while (i < nusers && strcmp(users[i].name, u->name) != 0)
        i++;
    if (i == nusers) {
        brk_user *grown = nusers < BRK_MAX_USERS ? realloc(users, (nusers + 1) * sizeof *users) : NULL;
        if (!grown)
            rc = nusers < BRK_MAX_USERS ? -ENOMEM : -ENOSPC;
        else {
            users = grown;
            nusers++;
        }
    }
    if (rc == 0)
        users[i] = *u; /* logins from now on see it; open connections keep theirs */
    pthread_rwlock_unlock(&users_lock);
    return rc < 0 ? rc : brk_users_save();
}

int brk_user_delete(const char *name)
{
    int rc = -ENOENT;
    pthread_rwlock_wrlock(&users_lock);
    for (size_t i = 0; i < nusers; i++)
        if (!strcmp(users[i].name, name)) {
            memmove(&users[i], &users[i + 1], (nusers - i - 1) * sizeof *users);
            nusers--;
            rc = 0;
            break;
        }
    pthread_rwlock_unlock(&users_lock);
    if (rc == 0)
        brk_perms_forget_user(name); /* as RabbitMQ: a user's permissions go with it */
    return rc < 0 ? rc : brk_users_save();
}
