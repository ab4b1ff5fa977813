/* users_json.c — users as RabbitMQ's definitions document has them.
 *
 * The admin API (GET/PUT /api/users, definitions) and durability keep
 * users in one JSON form, RabbitMQ's, so an export from either broker
 * imports into the other: password_hash is the salted SHA-256 both use.
 * Tags are accepted as RabbitMQ writes them, a comma-separated string
 * (older versions) or an array (newer), and kept as one string.
 */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker/brk.h"

#define HASHING "rabbit_password_hashing_sha256"

static const char *const known_tags[] = {"administrator", "management", "monitoring", "policymaker", "impersonator"};

static json_t *tags_json(const char *tags)
{
    json_t *a = json_array();
    char buf[BRK_NAME_MAX];
    snprintf(buf, sizeof buf, "%s", tags);
    char *save = NULL;
    for (char *t = strtok_r(buf, ",", &save); a && t; t = strtok_r(NULL, ",", &save))
        json_array_append_new(a, json_string(t));
    return a;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(((const brk_user *)a)->name, ((const brk_user *)b)->name);
}

json_t *brk_users_export(void)
{
    brk_user *list;
    size_t n;
    if (brk_users_get(&list, &n) < 0)
        return NULL;
    qsort(list, n, sizeof *list, by_name);
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < n; i++) {
        json_t *u = json_pack("{s:s, s:s, s:s, s:o, s:b}", "name", list[i].name, "password_hash", list[i].hash,
                              "hashing_algorithm", HASHING, "tags", tags_json(list[i].tags), "loopback_only",
                              list[i].loopback_only);
        if (!u || json_array_append_new(arr, u) < 0) {
            json_decref(arr);
            arr = NULL;
        }
    }
    free(list);
    return arr;
}

/* Adds one tag to out (comma-separated), checked against the known ones. */
static int add_tag(char *out, size_t outlen, const char *tag, const char *who, char *err, size_t len)
{
    if (!*tag || !strcmp(tag, "none"))
        return 0;
    bool known = false;
    for (size_t i = 0; i < sizeof known_tags / sizeof known_tags[0]; i++)
        known = known || !strcmp(tag, known_tags[i]);
    if (!known)
        return rt_bad(err, len,
                      "%s: unknown tag \"%s\" (known: administrator, management, monitoring, policymaker, "
                      "impersonator, none)",
                      who, tag);
    if (brk_tags_have(out, tag))
        return 0;
    size_t used = strlen(out);
    if (used + strlen(tag) + 2 > outlen)
        return rt_bad(err, len, "%s: too many tags", who);
    snprintf(out + used, outlen - used, "%s%s", used ? "," : "", tag);
    return 0;
}

static int parse_tags(const json_t *v, char *out, size_t outlen, const char *who, char *err, size_t len)
{
    out[0] = '\0';
    if (!v || json_is_null(v))
        return 0;
    if (json_is_array(v)) {
        size_t i;
        json_t *t;
        json_array_foreach(v, i, t)
        {
            if (!json_is_string(t))
                return rt_bad(err, len, "%s: tags must be strings", who);
            int rc = add_tag(out, outlen, json_string_value(t), who, err, len);
            if (rc < 0)
                return rc;
        }
        return 0;
    }
    if (!json_is_string(v))
        return rt_bad(err, len, "%s: tags must be a string or an array of strings", who);
    char buf[BRK_NAME_MAX * 2];
    if (json_string_length(v) >= sizeof buf)
        return rt_bad(err, len, "%s: tags too long", who);
    snprintf(buf, sizeof buf, "%s", json_string_value(v));
    char *save = NULL;
    for (char *t = strtok_r(buf, ", ", &save); t; t = strtok_r(NULL, ", ", &save)) {
        int rc = add_tag(out, outlen, t, who, err, len);
        if (rc < 0)
            return rc;
    }
    return 0;
}

int brk_user_from_json(const json_t *o, const char *name, brk_user *u, char *err, size_t len)
{
    memset(u, 0, sizeof *u);
    if (!json_is_object(o))
        return rt_bad(err, len, "a user must be a JSON object");
    if (!name)
        name = json_string_value(json_object_get(o, "name"));
    if (!name || !*name || strlen(name) >= sizeof u->name)
        return rt_bad(err, len, "a user needs a name of 1 to %zu bytes", sizeof u->name - 1);
    snprintf(u->name, sizeof u->name, "%s", name);
    const json_t *pass = json_object_get(o, "password"), *hash = json_object_get(o, "password_hash");
    const json_t *algo = json_object_get(o, "hashing_algorithm"), *loop = json_object_get(o, "loopback_only");
    if (!pass == !hash)
        return rt_bad(err, len, "user %s: give exactly one of password or password_hash", name);
    if (pass && (!json_is_string(pass) || !json_string_length(pass)))
        return rt_bad(err, len, "user %s: password must be a non-empty string", name);
    if (hash && (!json_is_string(hash) || !brk_hash_valid(json_string_value(hash))))
        return rt_bad(err, len, "user %s: password_hash is not a salted SHA-256 hash (base64 of 36 bytes)", name);
    if (algo && (!json_is_string(algo) || strcmp(json_string_value(algo), HASHING) != 0))
        return rt_bad(err, len, "user %s: hashing_algorithm must be %s", name, HASHING);
    if (loop && !json_is_boolean(loop))
        return rt_bad(err, len, "user %s: loopback_only must be true or false", name);
    char who[BRK_NAME_MAX + 8];
    snprintf(who, sizeof who, "user %s", name);
    int rc = parse_tags(json_object_get(o, "tags"), u->tags, sizeof u->tags, who, err, len);
    if (rc < 0)
        return rc;
    u->loopback_only = loop && json_is_true(loop);
    if (hash)
        snprintf(u->hash, sizeof u->hash, "%s", json_string_value(hash));
    else if (brk_password_hash(json_string_value(pass), u->hash, sizeof u->hash) < 0)
        return rt_bad(err, len, "user %s: cannot hash the password", name);
    return 0;
}

int brk_users_parse(const json_t *doc, brk_user **out, size_t *n, char *err, size_t len)
{
    *out = NULL;
    *n = 0;
    const json_t *arr = json_object_get(doc, "users");
    if (!arr || json_is_null(arr))
        return 0;
    if (!json_is_array(arr))
        return rt_bad(err, len, "users must be an array");
    if (json_array_size(arr) > BRK_MAX_USERS)
        return rt_bad(err, len, "at most %d users", BRK_MAX_USERS);
    *out = calloc(json_array_size(arr) ? json_array_size(arr) : 1, sizeof **out);
    if (!*out)
        return -ENOMEM;
    for (size_t i = 0; i < json_array_size(arr); i++) {
        char why[256];
        int rc = brk_user_from_json(json_array_get(arr, i), NULL, &(*out)[i], why, sizeof why);
        if (rc < 0) {
            free(*out);
            *out = NULL;
            return rt_bad(err, len, "users[%zu]: %s", i, why);
        }
        *n = i + 1;
    }
    return 0;
}
