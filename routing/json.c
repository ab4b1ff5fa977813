/* json.c — JSON values as AMQP values and back.
 *
 * Queue and binding arguments, and message headers, are AMQP values inside
 * the broker and JSON outside it (definitions, the admin API). JSON has
 * fewer types, so the way in picks one AMQP type per JSON type (integers
 * are longs, as RabbitMQ's management API makes them) and the way out
 * folds the many AMQP numeric and string types into JSON's few.
 */
#include <errno.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <proton/codec.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "routing/rt.h"

#define MAX_DEPTH 16

static int put(pn_data_t *d, const json_t *v, int depth, char *err, size_t errlen)
{
    if (depth > MAX_DEPTH) {
        snprintf(err, errlen, "values nest deeper than %d levels", MAX_DEPTH);
        return -EINVAL;
    }
    switch (json_typeof(v)) {
    case JSON_STRING: pn_data_put_string(d, pn_bytes(json_string_length(v), json_string_value(v))); break;
    case JSON_INTEGER: pn_data_put_long(d, (int64_t)json_integer_value(v)); break;
    case JSON_REAL: pn_data_put_double(d, json_real_value(v)); break;
    case JSON_TRUE:
    case JSON_FALSE: pn_data_put_bool(d, json_is_true(v)); break;
    case JSON_NULL: pn_data_put_null(d); break;
    case JSON_OBJECT: {
        const char *k;
        json_t *e;
        pn_data_put_map(d);
        pn_data_enter(d);
        json_object_foreach((json_t *)v, k, e)
        {
            pn_data_put_string(d, pn_bytes(strlen(k), k));
            int rc = put(d, e, depth + 1, err, errlen);
            if (rc < 0)
                return rc;
        }
        pn_data_exit(d);
        break;
    }
    case JSON_ARRAY: {
        size_t i;
        json_t *e;
        pn_data_put_list(d);
        pn_data_enter(d);
        json_array_foreach(v, i, e)
        {
            int rc = put(d, e, depth + 1, err, errlen);
            if (rc < 0)
                return rc;
        }
        pn_data_exit(d);
        break;
    }
    }
    return pn_data_errno(d) ? -ENOMEM : 0;
}

int rt_json_put(pn_data_t *d, const json_t *v, char *err, size_t errlen)
{
    return v ? put(d, v, 0, err, errlen) : -EINVAL;
}

static json_t *bytes_json(pn_bytes_t b)
{
    json_t *text = json_stringn(b.start, b.size); /* NULL unless the bytes are valid UTF-8 */
    if (text)
        return text;
    size_t cap = 4 * ((b.size + 2) / 3) + 1;
    unsigned char *out = malloc(cap);
    if (!out)
        return NULL;
    EVP_EncodeBlock(out, (const unsigned char *)b.start, (int)b.size);
    json_t *s = json_string((char *)out);
    free(out);
    return s;
}

static json_t *get(pn_data_t *d, int depth);

static json_t *get_container(pn_data_t *d, pn_type_t t, int depth)
{
    bool map = t == PN_MAP;
    json_t *out = map ? json_object() : json_array();
    if (!out)
        return NULL;
    pn_data_enter(d);
    if (t == PN_DESCRIBED) {
        pn_data_next(d); /* the descriptor: a described value is shown as its value */
        json_decref(out);
        out = pn_data_next(d) ? get(d, depth + 1) : json_null();
        pn_data_exit(d);
        return out;
    }
    while (pn_data_next(d)) {
        json_t *k = map ? get(d, depth + 1) : NULL;
        if (map && !pn_data_next(d)) {
            json_decref(k);
            break;
        }
        json_t *v = get(d, depth + 1);
        int rc;
        if (map) {
            char num[64];
            const char *key = json_is_string(k) ? json_string_value(k) : NULL;
            if (!key) {
                char *dump = k ? json_dumps(k, JSON_ENCODE_ANY | JSON_COMPACT) : NULL;
                snprintf(num, sizeof num, "%s", dump ? dump : "?");
                free(dump);
                key = num;
            }
            rc = v ? json_object_set_new(out, key, v) : -1;
        } else {
            rc = v ? json_array_append_new(out, v) : -1;
        }
        json_decref(k);
        if (rc < 0) {
            json_decref(out);
            out = NULL;
            break;
        }
    }
    pn_data_exit(d);
    return out;
}

static json_t *get(pn_data_t *d, int depth)
{
    pn_type_t t = pn_data_type(d);
    if (depth > MAX_DEPTH)
        return json_null();
    switch (t) {
    case PN_NULL: return json_null();
    case PN_BOOL: return json_boolean(pn_data_get_bool(d));
    case PN_UBYTE: return json_integer(pn_data_get_ubyte(d));
    case PN_BYTE: return json_integer(pn_data_get_byte(d));
    case PN_USHORT: return json_integer(pn_data_get_ushort(d));
    case PN_SHORT: return json_integer(pn_data_get_short(d));
    case PN_UINT: return json_integer(pn_data_get_uint(d));
    case PN_INT: return json_integer(pn_data_get_int(d));
    case PN_CHAR: return json_integer(pn_data_get_char(d));
    case PN_ULONG: return json_integer((json_int_t)pn_data_get_ulong(d));
    case PN_LONG: return json_integer(pn_data_get_long(d));
    case PN_TIMESTAMP: return json_integer(pn_data_get_timestamp(d));
    case PN_FLOAT: return json_real(pn_data_get_float(d));
    case PN_DOUBLE: return json_real(pn_data_get_double(d));
    case PN_STRING: {
        pn_bytes_t b = pn_data_get_string(d);
        return json_stringn(b.start, b.size);
    }
    case PN_SYMBOL: {
        pn_bytes_t b = pn_data_get_symbol(d);
        return json_stringn(b.start, b.size);
    }
    case PN_BINARY: return bytes_json(pn_data_get_binary(d));
    case PN_UUID: {
        pn_uuid_t u = pn_data_get_uuid(d);
        const unsigned char *b = (const unsigned char *)u.bytes;
        char s[37];
        snprintf(s, sizeof s, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1], b[2],
                 b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
        return json_string(s);
    }
    case PN_MAP:
    case PN_LIST:
    case PN_ARRAY:
    case PN_DESCRIBED: return get_container(d, t, depth);
    default: return json_null(); /* decimals: no faithful JSON form */
    }
}

json_t *rt_json_get(pn_data_t *d) { return get(d, 0); }
