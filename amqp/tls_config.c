/* tls_config.c — the TLS listener's settings turned into an OpenSSL context.
 *
 * Everything that can be wrong with tls.* (a missing or unreadable file, a
 * file that is not PEM, a key that does not belong to the certificate, TLS
 * 1.0 or 1.1 asked for) is found here, once, before the broker starts, and
 * reported in one line that names the setting: a broker that started would
 * otherwise fail every client's handshake instead.
 */
#include <errno.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "amqp/amqp_internal.h"

int amqp_tls_version(const char *s)
{
    if (!strcmp(s, "1.2"))
        return TLS1_2_VERSION;
    if (!strcmp(s, "1.3"))
        return TLS1_3_VERSION;
    return -1;
}

static int fail(char *err, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, len, fmt, ap);
    va_end(ap);
    return -1;
}

/* OpenSSL's reason for the last failure, as text ("no start line"). */
static const char *ssl_reason(char *buf, size_t len)
{
    unsigned long e = ERR_peek_last_error();
    ERR_clear_error();
    if (!e)
        return "unknown error";
    const char *r = ERR_reason_error_string(e);
    if (r)
        return r;
    ERR_error_string_n(e, buf, len);
    return buf;
}

/* A file the broker must read: a clear line if it cannot. */
static int readable(const char *setting, const char *name, const char *path, char *err, size_t len)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return fail(err, len, "%s.%s: cannot read %s: %s", setting, name, path, strerror(errno));
    fclose(f);
    return 0;
}

/* A certificate outside its validity period still loads; clients will
 * refuse it, so say so where the operator looks first. */
static void warn_validity(SSL_CTX *ctx, const char *setting, const char *path)
{
    X509 *x = SSL_CTX_get0_certificate(ctx);
    if (!x)
        return;
    if (X509_cmp_current_time(X509_get0_notAfter(x)) < 0)
        sv_log(SV_LOG_WARNING, "%s.cert_file %s: the certificate has expired; clients will refuse it", setting, path);
    else if (X509_cmp_current_time(X509_get0_notBefore(x)) > 0)
        sv_log(SV_LOG_WARNING, "%s.cert_file %s: the certificate is not valid yet; clients will refuse it", setting,
               path);
}

/* The certificate (chain) and its key into ctx; settings names them in
 * messages ("tls" or "admin"). */
static int load_pair(SSL_CTX *ctx, const char *setting, const char *cert, const char *key, char *err, size_t len)
{
    char rb[256];
    if (readable(setting, "cert_file", cert, err, len) < 0 || readable(setting, "key_file", key, err, len) < 0)
        return -1;
    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1)
        return fail(err, len, "%s.cert_file %s: not a PEM certificate: %s", setting, cert, ssl_reason(rb, sizeof rb));
    /* Loading the key checks it against the certificate already. */
    bool loaded = SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) == 1;
    unsigned long e = ERR_peek_last_error();
    bool mismatch = !loaded && ERR_GET_LIB(e) == ERR_LIB_X509 && ERR_GET_REASON(e) == X509_R_KEY_VALUES_MISMATCH;
    if (!loaded && !mismatch)
        return fail(err, len, "%s.key_file %s: not a PEM private key: %s", setting, key, ssl_reason(rb, sizeof rb));
    if (mismatch || SSL_CTX_check_private_key(ctx) != 1) {
        ERR_clear_error();
        return fail(err, len, "%s.key_file %s is not the key of the certificate in %s.cert_file %s", setting, key,
                    setting, cert);
    }
    return 0;
}

int amqp_tls_check_pair(const char *setting, const char *cert, const char *key, char *err, size_t len)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx)
        return fail(err, len, "TLS: cannot make an OpenSSL context");
    int rc = load_pair(ctx, setting, cert, key, err, len);
    if (rc == 0)
        warn_validity(ctx, setting, cert);
    SSL_CTX_free(ctx);
    return rc;
}

static int build(amqp_config *c, SSL_CTX *ctx, char *err, size_t len)
{
    const amqp_tls_config *t = &c->tls;
    char rb[256];
    int v = amqp_tls_version(t->min_version);
    if (SSL_CTX_set_min_proto_version(ctx, v) != 1)
        return fail(err, len, "tls.min_version %s: %s", t->min_version, ssl_reason(rb, sizeof rb));
    if (load_pair(ctx, "tls", t->cert_file, t->key_file, err, len) < 0)
        return -1;
    if (t->ca_file[0]) {
        if (SSL_CTX_load_verify_locations(ctx, t->ca_file, NULL) != 1)
            return fail(err, len, "tls.ca_file %s: not PEM certificates: %s", t->ca_file, ssl_reason(rb, sizeof rb));
        /* Named in the certificate request, so a client with several
         * certificates picks one these CAs signed. */
        STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(t->ca_file);
        if (names)
            SSL_CTX_set_client_CA_list(ctx, names);
        ERR_clear_error();
    }
    if (t->verify_peer)
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | (t->fail_if_no_peer_cert ? SSL_VERIFY_FAIL_IF_NO_PEER_CERT : 0),
                           NULL);
    /* Client-started renegotiation is a cheap way to make a server work;
     * compression leaks what it compresses (CRIME). Most AMQP clients end
     * with their close frame and a plain TCP close, no close_notify: that
     * is an end of input, not an error (the AMQP close said it all). */
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION | SSL_OP_CIPHER_SERVER_PREFERENCE |
                                 SSL_OP_IGNORE_UNEXPECTED_EOF);
    /* Writes go out a record at a time from the front ends' own buffers,
     * which move and grow between calls (tls.c); an idle connection gives
     * its record buffers back (10 000 idle TLS connections would otherwise
     * hold ~34 KiB each). */
    SSL_CTX_set_mode(ctx,
                     SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER | SSL_MODE_RELEASE_BUFFERS);
    /* Read what the socket has at once, not a record header and then its
     * body (two reads a record); tls.c reads on while OpenSSL holds some. */
    SSL_CTX_set_read_ahead(ctx, 1);
    /* Resumed sessions must carry a context, or a client that resumes one
     * while certificates are verified fails its handshake. */
    static const unsigned char sid[] = "plexus";
    SSL_CTX_set_session_id_context(ctx, sid, sizeof sid - 1);
    warn_validity(ctx, "tls", t->cert_file);
    return 0;
}

int amqp_tls_prepare(amqp_config *c, char *err, size_t len)
{
    amqp_tls_config *t = &c->tls;
    if (!t->min_version[0])
        snprintf(t->min_version, sizeof t->min_version, "1.2");
    if (amqp_tls_version(t->min_version) < 0)
        return fail(err, len,
                    "tls.min_version must be \"1.2\" or \"1.3\", not \"%s\" (TLS 1.0 and 1.1 are not offered: "
                    "they are deprecated, RFC 8996)",
                    t->min_version);
    if (!t->cert_file[0] && !t->key_file[0]) {
        if (t->listen[0])
            return fail(err, len, "a TLS listener (--listen-tls or tls.listen) needs tls.cert_file and tls.key_file");
        if (t->ca_file[0] || t->verify_peer)
            return fail(err, len, "tls.ca_file and tls.verify_peer need tls.cert_file and tls.key_file");
        return 0;
    }
    if (!t->cert_file[0] || !t->key_file[0])
        return fail(err, len, "tls.cert_file and tls.key_file go together: %s is not set",
                    t->cert_file[0] ? "tls.key_file" : "tls.cert_file");
    if (t->verify_peer && !t->ca_file[0])
        return fail(err, len,
                    "tls.verify_peer needs tls.ca_file (the CA certificates client certificates must "
                    "chain to)");
    if (t->fail_if_no_peer_cert && !t->verify_peer)
        return fail(err, len, "tls.fail_if_no_peer_cert needs tls.verify_peer = true");
    if (t->ca_file[0] && readable("tls", "ca_file", t->ca_file, err, len) < 0)
        return -1;
    if (!t->listen[0]) {
        /* Where the plain listener is, on AMQPS's port. */
        char host[200];
        int port;
        if (amqp_hostport_parse(c->listen, host, sizeof host, &port) < 0)
            snprintf(host, sizeof host, "127.0.0.1");
        snprintf(t->listen, sizeof t->listen, strchr(host, ':') ? "[%s]:5671" : "%s:5671", host);
    }
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx)
        return fail(err, len, "TLS: cannot make an OpenSSL context");
    if (build(c, ctx, err, len) < 0) {
        SSL_CTX_free(ctx);
        return -1;
    }
    amqp_tls_release(c);
    c->tls_ctx = ctx;
    return 0;
}

void amqp_tls_release(amqp_config *c)
{
    SSL_CTX_free(c->tls_ctx);
    c->tls_ctx = NULL;
}
