/* http.c — plexusctl's HTTP calls, with libcurl.
 *
 * Each failure becomes one line on stderr and an exit code a script can
 * branch on: the broker unreachable (3), refused credentials (4), any
 * other refusal (1, with the API's own error and reason). An https:// URL
 * is checked against the system's CAs, or --cacert's, unless --insecure.
 */
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl/ctl.h"

typedef struct buf {
    char *p;
    size_t len;
} buf;

static size_t on_data(char *data, size_t size, size_t n, void *ctx)
{
    buf *b = ctx;
    size_t len = size * n;
    char *np = realloc(b->p, b->len + len + 1);
    if (!np)
        return 0;
    memcpy(np + b->len, data, len);
    b->p = np;
    b->len += len;
    b->p[b->len] = '\0';
    return len;
}

char *ctl_escape(const char *s)
{
    char *e = curl_easy_escape(NULL, s, 0);
    char *out = e ? strdup(e) : NULL;
    curl_free(e);
    return out;
}

int ctl_call(const ctl *c, const char *method, const char *path, const json_t *body, const char *extra_header,
             json_t **out)
{
    *out = NULL;
    CURL *h = curl_easy_init();
    if (!h) {
        fprintf(stderr, "plexusctl: cannot start libcurl\n");
        return CTL_FAILED;
    }
    char url[4096];
    snprintf(url, sizeof url, "%s%s", c->url, path);
    buf resp = {0};
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    struct curl_slist *hdrs = curl_slist_append(NULL, "Content-Type: application/json");
    if (extra_header)
        hdrs = curl_slist_append(hdrs, extra_header);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(h, CURLOPT_USERPWD, c->user);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &resp);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 5L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, 60L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    char detail[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, detail);
    if (c->cacert)
        curl_easy_setopt(h, CURLOPT_CAINFO, c->cacert);
    if (c->insecure) {
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 0L);
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
    }
    if (text) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, text);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(text));
    }
    CURLcode cc = curl_easy_perform(h);
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(h);
    free(text);
    int rc = CTL_OK;
    if (cc != CURLE_OK) {
        bool tls = cc == CURLE_PEER_FAILED_VERIFICATION || cc == CURLE_SSL_CONNECT_ERROR ||
                   cc == CURLE_SSL_CACERT_BADFILE || cc == CURLE_SSL_CERTPROBLEM;
        fprintf(stderr, "plexusctl: cannot reach the broker at %s: %s%s%s\n", c->url,
                detail[0] ? detail : curl_easy_strerror(cc),
                cc == CURLE_PEER_FAILED_VERIFICATION ? " (--cacert FILE trusts the CA that signed the broker's "
                                                       "certificate; --insecure trusts any)"
                : tls                                ? " (does the admin API serve HTTPS there?)"
                                                     : "",
                cc == CURLE_GOT_NOTHING && !strncmp(c->url, "http:", 5) ? " (if the admin API serves HTTPS, use an "
                                                                          "https:// URL)"
                                                                        : "");
        rc = cc == CURLE_COULDNT_CONNECT || cc == CURLE_COULDNT_RESOLVE_HOST || cc == CURLE_OPERATION_TIMEDOUT ||
                     cc == CURLE_GOT_NOTHING || cc == CURLE_URL_MALFORMAT
                 ? CTL_UNREACHABLE
                 : CTL_FAILED;
        free(resp.p);
        return rc;
    }
    json_t *j = resp.len ? json_loadb(resp.p, resp.len, 0, NULL) : NULL;
    if (status >= 400) {
        const char *err = json_string_value(json_object_get(j, "error"));
        const char *why = json_string_value(json_object_get(j, "reason"));
        fprintf(stderr, "plexusctl: %ld %s: %s\n", status, err ? err : "error", why ? why : (resp.p ? resp.p : ""));
        rc = status == 401 || status == 403 ? CTL_DENIED : CTL_FAILED;
        json_decref(j);
    } else if (resp.len && !j) {
        fprintf(stderr, "plexusctl: %s answered with something other than JSON; is it a Plexus admin API?\n", c->url);
        rc = CTL_FAILED;
    } else {
        *out = j;
    }
    free(resp.p);
    return rc;
}
