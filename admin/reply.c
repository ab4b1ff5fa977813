/* reply.c — responses, errors and the small helpers every handler uses.
 *
 * Errors are JSON, {"error": "...", "reason": "..."}, with the status a
 * client can act on: the error word is RabbitMQ's where it has one
 * (not_found, bad_request, not_authorised), so scripts written against its
 * management API read ours.
 */
#include <errno.h>
#include <microhttpd.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>

#include "admin/adm_internal.h"

int64_t adm__started_ms;

int64_t adm__epoch_ms(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

void adm__ok(adm_resp *r, json_t *j)
{
    if (!j) {
        adm__fail(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal_error", "out of memory");
        return;
    }
    r->status = MHD_HTTP_OK;
    r->json = j;
}

void adm__no_content(adm_resp *r) { r->status = MHD_HTTP_NO_CONTENT; }

void adm__fail(adm_resp *r, int status, const char *error, const char *fmt, ...)
{
    char reason[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(reason, sizeof reason, fmt, ap);
    va_end(ap);
    json_decref(r->json);
    r->status = status;
    /* A reason may quote what the client sent: never let bad UTF-8 in it
     * cost the error its body. */
    r->json = json_pack("{s:s, s:s}", "error", error, "reason", reason);
    if (!r->json)
        r->json = json_pack("{s:s, s:s}", "error", error, "reason", "(the reason is not valid UTF-8)");
}

void adm__fail_rc(adm_resp *r, int rc, const char *what)
{
    switch (rc) {
    case -ENOENT: adm__fail(r, MHD_HTTP_NOT_FOUND, "not_found", "%s not found", what); break;
    case -EBUSY: adm__fail(r, MHD_HTTP_CONFLICT, "in_use", "%s is in use", what); break;
    case -ENOTEMPTY: adm__fail(r, MHD_HTTP_CONFLICT, "not_empty", "%s is not empty", what); break;
    case -EEXIST: /* 400, as RabbitMQ answers an inequivalent redeclaration */
        adm__fail(r, MHD_HTTP_BAD_REQUEST, "precondition_failed", "%s exists with other properties", what);
        break;
    case -EINVAL: adm__fail(r, MHD_HTTP_BAD_REQUEST, "bad_request", "%s: invalid arguments", what); break;
    case -EPERM: adm__fail(r, MHD_HTTP_FORBIDDEN, "access_refused", "%s is reserved for the broker", what); break;
    case -ENOSPC: adm__fail(r, MHD_HTTP_CONFLICT, "limit_reached", "%s: limit reached", what); break;
    case -ETIMEDOUT:
    case -ESHUTDOWN:
    case -EAGAIN:
    case -ESRCH:
        adm__fail(r, MHD_HTTP_SERVICE_UNAVAILABLE, "unavailable", "%s: the broker did not answer (%s)", what,
                  strerror(-rc));
        break;
    default:
        adm__fail(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal_error", "%s: %s", what, strerror(rc < 0 ? -rc : rc));
        break;
    }
}

json_t *adm__body_object(adm_req *q, adm_resp *r)
{
    json_error_t je;
    json_t *j = q->body_len ? json_loadb(q->body, q->body_len, 0, &je) : json_object();
    if (!j) {
        adm__fail(r, MHD_HTTP_BAD_REQUEST, "bad_request", "malformed JSON: %s (line %d, column %d)", je.text, je.line,
                  je.column);
        return NULL;
    }
    if (!json_is_object(j)) {
        json_decref(j);
        adm__fail(r, MHD_HTTP_BAD_REQUEST, "bad_request", "the body must be a JSON object");
        return NULL;
    }
    return j;
}

static int hexval(char c)
{
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

int adm__pct_decode(char *s, bool plus)
{
    char *out = s;
    for (const char *p = s; *p; p++) {
        if (*p == '%') {
            int hi = hexval(p[1]), lo = hi < 0 ? -1 : hexval(p[2]);
            if (lo < 0 || (hi == 0 && lo == 0))
                return -1;
            *out++ = (char)(hi * 16 + lo);
            p += 2;
        } else {
            *out++ = plus && *p == '+' ? ' ' : *p;
        }
    }
    *out = '\0';
    return 0;
}

const char *adm__arg(adm_req *q, const char *name, char *buf, size_t len)
{
    const char *raw = MHD_lookup_connection_value(q->conn, MHD_GET_ARGUMENT_KIND, name);
    if (!raw || strlen(raw) >= len)
        return NULL;
    memcpy(buf, raw, strlen(raw) + 1);
    return adm__pct_decode(buf, true) == 0 ? buf : NULL;
}

bool adm__arg_true(adm_req *q, const char *name)
{
    char buf[16];
    const char *v = adm__arg(q, name, buf, sizeof buf);
    return v && strcmp(v, "true") == 0;
}

bool adm__vhost_ok(const char *vhost, adm_resp *r)
{
    if (strcmp(vhost, "/") == 0)
        return true;
    adm__fail(r, MHD_HTTP_NOT_FOUND, "not_found", "vhost %s not found (only \"/\" exists, written %%2F)", vhost);
    return false;
}
