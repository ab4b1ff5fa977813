/* fuzz_admin.c — feeds an HTTP request's parts to the admin API's request
 * parsing (admin/), without a server: the path after /api/ to the path
 * splitter and the router, a query value to the percent-decoder, and the
 * body to the JSON body reader and the readers behind each handler that
 * takes one (queue, exchange, binding, user, publish).
 *
 * Input: a method byte, then "path\nquery\nbody". Checked: segments stay
 * within ADM_MAX_SEGS and hold no NUL; HEAD finds what GET finds; a path
 * that no route takes names the methods it does take, if any; decoding is
 * never longer than its input and encoding the result again decodes to
 * it; a refused body always has a status and a JSON reason; a publish
 * body that is accepted makes a message that decodes, routed by its key.
 */
#include <ctype.h>
#include <errno.h>
#include <microhttpd.h>
#include <string.h>

#include "admin/adm_internal.h"
#include "tests/fuzz/fuzz.h"

static const char *const methods[] = {"GET", "HEAD", "PUT", "POST", "DELETE", "PATCH"};

static void path(const char *method, const char *p, size_t n)
{
    char *buf = malloc(n + 1);
    FUZZ_CHECK(buf);
    memcpy(buf, p, n);
    buf[n] = '\0';
    adm_req q = {.method = method};
    adm_resp r = {0};
    if (!adm__split_path(buf, &q, &r)) {
        FUZZ_CHECK(r.status == MHD_HTTP_NOT_FOUND || r.status == MHD_HTTP_BAD_REQUEST);
        FUZZ_CHECK(json_is_object(r.json));
        json_decref(r.json);
        free(buf);
        return;
    }
    FUZZ_CHECK(q.nsegs >= 1 && q.nsegs <= ADM_MAX_SEGS);
    for (int i = 0; i < q.nsegs; i++)
        FUZZ_CHECK(q.segs[i] >= buf && q.segs[i] + strlen(q.segs[i]) <= buf + n);
    char allow[48];
    adm_handler fn = adm__route_find(&q, allow, sizeof allow);
    FUZZ_CHECK(strlen(allow) < sizeof allow);
    if (!fn && allow[0]) /* a 405 never offers the method it refused */
        FUZZ_CHECK(!strstr(allow, strcmp(method, "HEAD") ? method : "GET"));
    if (!strcmp(method, "HEAD")) {
        adm_req g = q;
        g.method = "GET";
        char allow2[48];
        FUZZ_CHECK(adm__route_find(&g, allow2, sizeof allow2) == fn);
    }
    free(buf);
}

static void query(const char *p, size_t n)
{
    char *buf = malloc(n + 1);
    FUZZ_CHECK(buf);
    memcpy(buf, p, n);
    buf[n] = '\0';
    size_t before = strlen(buf);
    if (adm__pct_decode(buf, true) == 0) {
        size_t dlen = strlen(buf);
        FUZZ_CHECK(dlen <= before);
        char *enc = malloc(3 * dlen + 1), *o = enc;
        FUZZ_CHECK(enc);
        for (const unsigned char *c = (const unsigned char *)buf; *c; c++)
            o += isalnum(*c) ? sprintf(o, "%c", *c) : sprintf(o, "%%%02X", *c);
        *o = '\0';
        FUZZ_CHECK(adm__pct_decode(enc, true) == 0 && strcmp(enc, buf) == 0);
        free(enc);
    }
    free(buf);
}

static void body(const char *p, size_t n)
{
    char *buf = malloc(n + 1);
    FUZZ_CHECK(buf);
    memcpy(buf, p, n);
    buf[n] = '\0';
    adm_req q = {.method = "PUT", .body = buf, .body_len = n};
    adm_resp r = {0};
    json_t *o = adm__body_object(&q, &r);
    if (!o) {
        FUZZ_CHECK(r.status == MHD_HTTP_BAD_REQUEST && json_is_object(r.json));
        json_decref(r.json);
        free(buf);
        return;
    }
    char err[300] = "";
    rt_req_queue rq;
    if (rt_queue_req_json(o, "q", &rq, "queue", err, sizeof err) < 0)
        FUZZ_CHECK(err[0]);
    rt_req_exchange rx;
    err[0] = '\0';
    if (rt_exchange_req_json(o, "x", &rx, "exchange", err, sizeof err) < 0)
        FUZZ_CHECK(err[0]);
    rt_def_bind b = {0};
    err[0] = '\0';
    if (rt_binding_req_json(o, &b, "binding", err, sizeof err) == 0)
        free(b.req);
    brk_user u;
    err[0] = '\0';
    if (brk_user_from_json(o, "u", &u, err, sizeof err) < 0)
        FUZZ_CHECK(err[0]);
    const char *key = json_string_value(json_object_get(o, "routing_key"));
    if (key && strlen(key) <= RT_NAME_MAX) {
        rt_msg *m = NULL;
        err[0] = '\0';
        int rc = adm__build_message(o, key, &m, err, sizeof err);
        if (rc == 0) {
            FUZZ_CHECK(m && m->rkey && strcmp(m->rkey, key) == 0);
            FUZZ_CHECK(!*key || (m->subject && strcmp(m->subject, key) == 0));
            rt_msg_unref(m);
        } else {
            FUZZ_CHECK(rc == -ENOMEM || err[0]);
        }
    }
    json_decref(o);
    free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const char *method = methods[data[0] % (sizeof methods / sizeof methods[0])];
    const char *p = (const char *)data + 1, *end = p + size - 1;
    const char *nl1 = memchr(p, '\n', (size_t)(end - p));
    const char *nl2 = nl1 ? memchr(nl1 + 1, '\n', (size_t)(end - nl1 - 1)) : NULL;
    path(method, p, nl1 ? (size_t)(nl1 - p) : (size_t)(end - p));
    if (nl1)
        query(nl1 + 1, nl2 ? (size_t)(nl2 - nl1 - 1) : (size_t)(end - nl1 - 1));
    if (nl2)
        body(nl2 + 1, (size_t)(end - nl2 - 1));
    return 0;
}
