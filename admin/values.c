/* values.c — request values as RabbitMQ's management API reads them.
 *
 * Its clients send booleans and numbers either typed or as strings:
 * rabbitmqadmin puts every command-line value in the body as a string
 * ("durable": "true", "count": "5"), and RabbitMQ takes both (its
 * parse_bool and parse_int). So do we, for the fields RabbitMQ parses that
 * way, and nothing looser: "yes" or "5x" is still a 400 naming the field.
 * The values are rewritten typed in the body before the strict parsers
 * shared with definitions files (routing/) read it.
 */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admin/adm_internal.h"

int adm__parse_bool(const json_t *v, bool *out)
{
    if (json_is_boolean(v)) {
        *out = json_is_true(v);
        return 0;
    }
    const char *s = json_string_value(v);
    if (s && json_string_length(v) == strlen(s) && (!strcmp(s, "true") || !strcmp(s, "false"))) {
        *out = s[0] == 't';
        return 0;
    }
    return -EINVAL;
}

int adm__parse_int(const json_t *v, int64_t *out)
{
    if (json_is_integer(v)) {
        *out = (int64_t)json_integer_value(v);
        return 0;
    }
    if (json_is_real(v)) { /* 5.0 is 5; 5.5 is not an integer */
        double d = json_real_value(v);
        if (d != floor(d) || d < (double)INT64_MIN || d >= (double)INT64_MAX)
            return -EINVAL;
        *out = (int64_t)d;
        return 0;
    }
    const char *s = json_string_value(v);
    if (!s || json_string_length(v) != strlen(s))
        return -EINVAL;
    const char *digits = s + (*s == '-' || *s == '+');
    if (!*digits || strspn(digits, "0123456789") != strlen(digits) || strlen(digits) > 19)
        return -EINVAL;
    errno = 0;
    long long n = strtoll(s, NULL, 10);
    if (errno)
        return -EINVAL;
    *out = (int64_t)n;
    return 0;
}

int adm__coerce(json_t *body, const char *const *bools, const char *const *ints, char *err, size_t len)
{
    for (; bools && *bools; bools++) {
        json_t *v = json_object_get(body, *bools);
        bool b;
        if (!v)
            continue;
        if (adm__parse_bool(v, &b) < 0) {
            snprintf(err, len, "%s must be true or false (a JSON boolean or the string \"true\" or \"false\")", *bools);
            return -EINVAL;
        }
        json_object_set_new(body, *bools, json_boolean(b));
    }
    for (; ints && *ints; ints++) {
        json_t *v = json_object_get(body, *ints);
        int64_t n;
        if (!v)
            continue;
        if (adm__parse_int(v, &n) < 0) {
            snprintf(err, len, "%s must be an integer (a JSON number or a string of digits)", *ints);
            return -EINVAL;
        }
        json_object_set_new(body, *ints, json_integer((json_int_t)n));
    }
    return 0;
}

json_t *adm__body_coerced(adm_req *q, adm_resp *r, const char *const *bools, const char *const *ints)
{
    json_t *body = adm__body_object(q, r);
    char err[200];
    if (body && adm__coerce(body, bools, ints, err, sizeof err) < 0) {
        json_decref(body);
        adm__fail(r, MHD_HTTP_BAD_REQUEST, "bad_request", "%s", err);
        return NULL;
    }
    return body;
}
