/* perms.c — who may configure, write and read what, per user and vhost.
 *
 * RabbitMQ's model, so its tools and habits carry over: three regular
 * expressions per (user, vhost), matched unanchored against a resource's
 * name as RabbitMQ's re:run does ("" stands for "^$": nothing). They are
 * compiled once, when set (POSIX extended, REG_NOSUB), and checked when a
 * link attaches, a connection opens or an admin call acts — never per
 * message. Checks come from scheduler and HTTP threads; changes are rare,
 * so a read-write lock is all the sharing needs. Entries live beside the
 * users (DATA/users.json, users_file.c).
 */
#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/brk.h"

typedef struct entry {
    brk_permission p;
    regex_t re[3]; /* configure, write, read */
} entry;

static pthread_rwlock_t perms_lock = PTHREAD_RWLOCK_INITIALIZER;
static entry *entries;
static size_t nentries;

static const char *const perm_names[] = {"configure", "write", "read"};

bool brk_vhost_exists(const char *vhost) { return vhost && !strcmp(vhost, AMQP_VHOST_DEFAULT); }

static const char *expr(const brk_permission *p, int i) { return i == 0 ? p->configure : i == 1 ? p->write : p->read; }

/* Compiles p's three expressions into re; -EINVAL naming the bad one. */
static int compile(const brk_permission *p, regex_t re[3], char *err, size_t len)
{
    for (int i = 0; i < 3; i++) {
        const char *src = expr(p, i)[0] ? expr(p, i) : "^$"; /* RabbitMQ: "" means "^$" */
        int rc = regcomp(&re[i], src, REG_EXTENDED | REG_NOSUB);
        if (rc != 0) {
            char msg[128];
            regerror(rc, &re[i], msg, sizeof msg);
            for (int j = 0; j < i; j++)
                regfree(&re[j]);
            return rt_bad(err, len, "%s: \"%s\" is not a regular expression (POSIX extended): %s", perm_names[i],
                          expr(p, i), msg);
        }
    }
    return 0;
}

static void free_entry(entry *e)
{
    for (int i = 0; i < 3; i++)
        regfree(&e->re[i]);
}

/* The caller holds the lock. */
static entry *find(const char *user, const char *vhost)
{
    for (size_t i = 0; i < nentries; i++)
        if (!strcmp(entries[i].p.user, user) && !strcmp(entries[i].p.vhost, vhost))
            return &entries[i];
    return NULL;
}

int brk_perm_check(const char *user, const char *vhost, amqp_perm what, const char *kind, const char *name, char *why,
                   size_t len)
{
    if (!user)
        user = "";
    if (!vhost)
        vhost = AMQP_VHOST_DEFAULT;
    bool exchange = kind && !strcmp(kind, "exchange");
    if (!name || (exchange && !name[0]))
        name = "amq.default"; /* RabbitMQ checks the default exchange under this name */
    bool ok = false;
    pthread_rwlock_rdlock(&perms_lock);
    const entry *e = find(user, vhost);
    if (e)
        ok = what == AMQP_PERM_VHOST || (what <= AMQP_PERM_READ && regexec(&e->re[what], name, 0, NULL, 0) == 0);
    pthread_rwlock_unlock(&perms_lock);
    if (ok)
        return 0;
    if (why && len) {
        if (what == AMQP_PERM_VHOST || what > AMQP_PERM_READ)
            snprintf(why, len, "access to vhost '%s' refused for user '%s'", vhost, user);
        else
            snprintf(why, len, "%s access to %s '%s' in vhost '%s' refused for user '%s'", perm_names[what],
                     kind ? kind : "resource", name, vhost, user);
    }
    return -EACCES;
}

int brk_perm_amqp(void *ctx, const char *user, const char *vhost, amqp_perm what, const char *kind, const char *name,
                  char *why, size_t len)
{
    (void)ctx;
    return brk_perm_check(user, vhost, what, kind, name, why, len);
}

static bool user_exists(const char *name)
{
    brk_user *list;
    size_t n;
    if (brk_users_get(&list, &n) < 0)
        return false;
    bool found = false;
    for (size_t i = 0; !found && i < n; i++)
        found = !strcmp(list[i].name, name);
    free(list);
    return found;
}

/* Puts e in the table (taken: its expressions are owned by the table
 * from here on, or freed). */
static int put_locked(entry *e)
{
    entry *old = find(e->p.user, e->p.vhost);
    if (old) {
        free_entry(old);
        *old = *e;
        return 0;
    }
    entry *grown = nentries < BRK_MAX_PERMS ? realloc(entries, (nentries + 1) * sizeof *entries) : NULL;
    if (!grown) {
        free_entry(e);
        return nentries < BRK_MAX_PERMS ? -ENOMEM : -ENOSPC;
    }
    entries = grown;
    entries[nentries++] = *e;
    return 0;
}

int brk_perm_set(const brk_permission *p, char *err, size_t len)
{
    if (!brk_vhost_exists(p->vhost))
        return rt_bad(err, len, "no vhost '%s'", p->vhost);
    if (!user_exists(p->user)) {
        snprintf(err, len, "no user '%s'", p->user);
        return -ENOENT;
    }
    entry e = {.p = *p};
    int rc = compile(p, e.re, err, len);
    if (rc < 0)
        return rc;
    pthread_rwlock_wrlock(&perms_lock);
    rc = put_locked(&e);
    pthread_rwlock_unlock(&perms_lock);
    if (rc < 0)
        snprintf(err, len, "%s", rc == -ENOSPC ? "too many permission entries" : "out of memory");
    return rc < 0 ? rc : brk_users_save();
}

int brk_perm_get(const char *user, const char *vhost, brk_permission *out)
{
    pthread_rwlock_rdlock(&perms_lock);
    const entry *e = find(user, vhost);
    if (e)
        *out = e->p;
    pthread_rwlock_unlock(&perms_lock);
    return e ? 0 : -ENOENT;
}

static bool drop_locked(const char *user, const char *vhost)
{
    bool dropped = false;
    for (size_t i = 0; i < nentries;) {
        if (!strcmp(entries[i].p.user, user) && (!vhost || !strcmp(entries[i].p.vhost, vhost))) {
            free_entry(&entries[i]);
            memmove(&entries[i], &entries[i + 1], (nentries - i - 1) * sizeof *entries);
            nentries--;
            dropped = true;
        } else {
            i++;
        }
    }
    return dropped;
}

int brk_perm_delete(const char *user, const char *vhost)
{
    pthread_rwlock_wrlock(&perms_lock);
    bool dropped = drop_locked(user, vhost);
    pthread_rwlock_unlock(&perms_lock);
    return dropped ? brk_users_save() : -ENOENT;
}

void brk_perms_forget_user(const char *user)
{
    pthread_rwlock_wrlock(&perms_lock);
    drop_locked(user, NULL);
    pthread_rwlock_unlock(&perms_lock);
}

int brk_perms_replace(const brk_permission *list, size_t n)
{
    if (n > BRK_MAX_PERMS)
        return -ENOSPC;
    entry *fresh = n ? calloc(n, sizeof *fresh) : NULL;
    if (n && !fresh)
        return -ENOMEM;
    for (size_t i = 0; i < n; i++) {
        char err[200];
        fresh[i].p = list[i];
        if (compile(&list[i], fresh[i].re, err, sizeof err) < 0) {
            while (i-- > 0)
                free_entry(&fresh[i]);
            free(fresh);
            return -EINVAL;
        }
    }
    pthread_rwlock_wrlock(&perms_lock);
    entry *old = entries;
    size_t nold = nentries;
    entries = fresh;
    nentries = n;
    pthread_rwlock_unlock(&perms_lock);
    for (size_t i = 0; i < nold; i++)
        free_entry(&old[i]);
    free(old);
    return 0;
}

static int by_user_vhost(const void *a, const void *b)
{
    const brk_permission *x = a, *y = b;
    int c = strcmp(x->user, y->user);
    return c ? c : strcmp(x->vhost, y->vhost);
}

int brk_perms_get(brk_permission **out, size_t *n)
{
    pthread_rwlock_rdlock(&perms_lock);
    *n = nentries;
    *out = malloc((nentries ? nentries : 1) * sizeof **out);
    for (size_t i = 0; *out && i < nentries; i++)
        (*out)[i] = entries[i].p;
    pthread_rwlock_unlock(&perms_lock);
    if (!*out)
        return -ENOMEM;
    qsort(*out, *n, sizeof **out, by_user_vhost);
    return 0;
}

json_t *brk_perms_export(void)
{
    brk_permission *list;
    size_t n;
    if (brk_perms_get(&list, &n) < 0)
        return NULL;
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < n; i++) {
        json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:s}", "user", list[i].user, "vhost", list[i].vhost, "configure",
                              list[i].configure, "write", list[i].write, "read", list[i].read);
        if (!o || json_array_append_new(arr, o) < 0) {
            json_decref(arr);
            arr = NULL;
        }
    }
    free(list);
    return arr;
}

static int copy_field(const json_t *o, const char *key, char *out, size_t outlen, bool regex, char *err, size_t len)
{
    const json_t *v = json_object_get(o, key);
    if (!json_is_string(v))
        return rt_bad(err, len, "%s must be a string%s", key, regex ? " (a regular expression)" : "");
    if (json_string_length(v) >= outlen || strlen(json_string_value(v)) != json_string_length(v))
        return rt_bad(err, len, "%s is too long (at most %zu bytes) or holds a NUL", key, outlen - 1);
    snprintf(out, outlen, "%s", json_string_value(v));
    return 0;
}

int brk_perm_from_json(const json_t *o, const char *user, const char *vhost, brk_permission *out, char *err, size_t len)
{
    memset(out, 0, sizeof *out);
    if (!json_is_object(o))
        return rt_bad(err, len, "a permission must be a JSON object");
    int rc = 0;
    if (user)
        snprintf(out->user, sizeof out->user, "%s", user);
    else
        rc = copy_field(o, "user", out->user, sizeof out->user, false, err, len);
    if (rc == 0 && vhost)
        snprintf(out->vhost, sizeof out->vhost, "%s", vhost);
    else if (rc == 0)
        rc = copy_field(o, "vhost", out->vhost, sizeof out->vhost, false, err, len);
    if (rc == 0 && (!out->user[0] || (user && strlen(user) >= sizeof out->user)))
        rc = rt_bad(err, len, "a permission needs a user name of 1 to %zu bytes", sizeof out->user - 1);
    for (int i = 0; rc == 0 && i < 3; i++)
        rc = copy_field(o, perm_names[i], (char *)expr(out, i), BRK_REGEX_MAX, true, err, len);
    if (rc < 0)
        return rc;
    regex_t re[3];
    if ((rc = compile(out, re, err, len)) < 0)
        return rc;
    for (int i = 0; i < 3; i++)
        regfree(&re[i]);
    return 0;
}

int brk_perms_parse(const json_t *doc, brk_permission **out, size_t *n, bool *present, char *err, size_t len)
{
    *out = NULL;
    *n = 0;
    const json_t *arr = json_object_get(doc, "permissions");
    *present = arr && !json_is_null(arr);
    if (!*present)
        return 0;
    if (!json_is_array(arr))
        return rt_bad(err, len, "permissions must be an array");
    if (json_array_size(arr) > BRK_MAX_PERMS)
        return rt_bad(err, len, "at most %d permissions", BRK_MAX_PERMS);
    *out = calloc(json_array_size(arr) ? json_array_size(arr) : 1, sizeof **out);
    if (!*out)
        return -ENOMEM;
    for (size_t i = 0; i < json_array_size(arr); i++) {
        char why[300];
        int rc = brk_perm_from_json(json_array_get(arr, i), NULL, NULL, &(*out)[i], why, sizeof why);
        if (rc < 0) {
            free(*out);
            *out = NULL;
            return rt_bad(err, len, "permissions[%zu]: %s", i, why);
        }
        *n = i + 1;
    }
    return 0;
}
