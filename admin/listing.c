/* listing.c — the query arguments RabbitMQ's API applies to any GET:
 * sort=KEY (and sort_reverse=true) orders a listing, columns=a,b.c keeps
 * only those fields of each item (or of the one object).
 *
 * rabbitmqadmin sends both (columns= for its default table columns, and
 * -S/-R as sort=), and leaves the ordering to the server. Keys may be
 * dotted paths into nested objects ("message_stats.publish"), as in
 * RabbitMQ. Done once here, after the handler, so every listing gets it.
 */
#include <stdlib.h>
#include <string.h>

#include "admin/adm_internal.h"

/* The value at a dotted path in o, or NULL. */
static json_t *at_path(json_t *o, const char *path)
{
    char buf[256];
    if (strlen(path) >= sizeof buf)
        return NULL;
    memcpy(buf, path, strlen(path) + 1);
    char *save = NULL;
    for (char *k = strtok_r(buf, ".", &save); o && k; k = strtok_r(NULL, ".", &save))
        o = json_is_object(o) ? json_object_get(o, k) : NULL;
    return o;
}

typedef struct keyed {
    json_t *item, *key;
    size_t at; /* its place before sorting: equal keys keep their order */
} keyed;

/* Missing values first, then numbers, then strings, then anything else. */
static int rank(const json_t *v)
{
    return !v || json_is_null(v) ? 0 : json_is_number(v) ? 1 : json_is_string(v) ? 2 : 3;
}

static int compare(const void *pa, const void *pb)
{
    const keyed *a = pa, *b = pb;
    int ra = rank(a->key), rb = rank(b->key), c = 0;
    if (ra != rb)
        c = ra < rb ? -1 : 1;
    else if (ra == 1)
        c = json_number_value(a->key) < json_number_value(b->key)   ? -1
            : json_number_value(a->key) > json_number_value(b->key) ? 1
                                                                    : 0;
    else if (ra == 2)
        c = strcmp(json_string_value(a->key), json_string_value(b->key));
    else if (ra == 3 && json_is_boolean(a->key) && json_is_boolean(b->key))
        c = json_is_true(a->key) - json_is_true(b->key);
    return c ? c : a->at < b->at ? -1 : a->at > b->at;
}

int adm__list_sort(json_t *arr, const char *key, bool reverse)
{
    size_t n = json_array_size(arr);
    if (!json_is_array(arr) || n < 2)
        return 0;
    keyed *v = malloc(n * sizeof *v);
    if (!v)
        return -1;
    for (size_t i = 0; i < n; i++) {
        v[i].item = json_incref(json_array_get(arr, i));
        v[i].key = at_path(v[i].item, key);
        v[i].at = i;
    }
    qsort(v, n, sizeof *v, compare);
    json_array_clear(arr);
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, v[reverse ? n - 1 - i : i].item);
    free(v);
    return 0;
}

/* Copies the value at path from src into dst, making the objects on the way. */
static void copy_path(json_t *dst, json_t *src, const char *path)
{
    const char *dot = strchr(path, '.');
    if (!dot) {
        json_t *v = json_object_get(src, path);
        if (v)
            json_object_set(dst, path, v);
        return;
    }
    char key[256];
    size_t n = (size_t)(dot - path);
    if (n >= sizeof key)
        return;
    memcpy(key, path, n);
    key[n] = '\0';
    json_t *sub = json_object_get(src, key);
    if (!json_is_object(sub))
        return;
    json_t *d = json_object_get(dst, key);
    if (!json_is_object(d)) {
        d = json_object();
        if (!d || json_object_set_new(dst, key, d) < 0)
            return;
    }
    copy_path(d, sub, dot + 1);
}

static json_t *pick(json_t *o, const char *columns)
{
    if (!json_is_object(o))
        return json_incref(o);
    json_t *out = json_object();
    char buf[1024];
    if (!out || strlen(columns) >= sizeof buf)
        return out ? out : NULL;
    memcpy(buf, columns, strlen(columns) + 1);
    char *save = NULL;
    for (char *c = strtok_r(buf, ",", &save); c; c = strtok_r(NULL, ",", &save))
        copy_path(out, o, c);
    return out;
}

json_t *adm__columns(json_t *v, const char *columns)
{
    if (!json_is_array(v))
        return pick(v, columns);
    json_t *out = json_array();
    size_t i;
    json_t *item;
    json_array_foreach(v, i, item)
    {
        if (!out || json_array_append_new(out, pick(item, columns)) < 0) {
            json_decref(out);
            return NULL;
        }
    }
    return out;
}
