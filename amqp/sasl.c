/* sasl.c — server-side SASL for AMQP connections: PLAIN, ANONYMOUS, and
 * EXTERNAL on TLS connections whose client certificate verified.
 *
 * Debian's proton is built without Cyrus SASL and its built-in server side
 * offers only ANONYMOUS, so Plexus plugs its own implementation into
 * proton's SASL layer (proton/sasl_plugin.h): PLAIN credentials are checked
 * by the broker's user store through amqp_config.auth, and the outcome is
 * recorded for the connection (which logs refusals and closes).
 */
#include <proton/sasl.h>
#include <proton/sasl_plugin.h>
#include <stdio.h>
#include <string.h>

#include "amqp/amqp_internal.h"

static void sasl_free(pn_transport_t *t) { (void)t; /* the context belongs to the connection */ }

static const char *sasl_mechs(pn_transport_t *t)
{
    amqp__sasl *s = pnx_sasl_get_context(t);
    /* EXTERNAL only where a certificate named someone (tls.c fills
     * external once the handshake verified it): offered first, as the
     * client that has a certificate means to use it. */
    if (s->external[0])
        return s->cfg->anonymous ? "EXTERNAL PLAIN ANONYMOUS" : "EXTERNAL PLAIN";
    return s->cfg->anonymous ? "PLAIN ANONYMOUS" : "PLAIN";
}

static bool sasl_init_server(pn_transport_t *t)
{
    pnx_sasl_set_desired_state(t, SASL_POSTED_MECHANISMS);
    return true;
}

static bool sasl_init_client(pn_transport_t *t)
{
    (void)t;
    return false; /* Plexus only accepts connections */
}

static void sasl_prepare(pn_transport_t *t) { (void)t; }

static void outcome(pn_transport_t *t, amqp__sasl *s, bool ok)
{
    s->done = true;
    s->ok = ok;
    if (ok)
        pnx_sasl_set_succeeded(t, s->user, s->user);
    else
        pnx_sasl_set_failed(t);
    pnx_sasl_set_desired_state(t, SASL_POSTED_OUTCOME);
}

/* PLAIN's message: [authzid] NUL authcid NUL password (RFC 4616). */
static bool split_plain(const pn_bytes_t *b, char *user, size_t ulen, char *pass, size_t plen)
{
    const char *p = b->start;
    const char *nul1 = p ? memchr(p, 0, b->size) : NULL; /* no initial response: start is NULL */
    if (!nul1)
        return false;
    const char *end = p + b->size;
    const char *u = nul1 + 1;
    const char *nul2 = memchr(u, 0, (size_t)(end - u));
    if (!nul2)
        return false;
    size_t un = (size_t)(nul2 - u), pn = (size_t)(end - nul2 - 1);
    if (!un || un >= ulen || pn >= plen)
        return false;
    memcpy(user, u, un);
    user[un] = '\0';
    memcpy(pass, nul2 + 1, pn);
    pass[pn] = '\0';
    return true;
}

static void sasl_process_init(pn_transport_t *t, const char *mech, const pn_bytes_t *recv)
{
    amqp__sasl *s = pnx_sasl_get_context(t);
    const struct sockaddr *peer = (const struct sockaddr *)&s->peer;
    const amqp_config *c = s->cfg;
    s->mech = "none";
    if (!mech) {
        /* Proton's frame decoder reads a sasl-init whose list size is
         * smaller than its fields as having no mechanism (the frame checker
         * decodes such frames leniently and lets them through). */
        snprintf(s->refused, sizeof s->refused, "(sasl-init without a mechanism)");
        outcome(t, s, false);
        return;
    }
    if (!strcmp(mech, "PLAIN")) {
        s->mech = "PLAIN";
        char user[128], pass[256];
        if (!split_plain(recv, user, sizeof user, pass, sizeof pass)) {
            snprintf(s->refused, sizeof s->refused, "(malformed PLAIN response)");
            outcome(t, s, false);
            return;
        }
        bool ok = c->auth && c->auth(c->auth_ctx, "PLAIN", user, pass, peer, s->user, sizeof s->user) == 0;
        memset(pass, 0, sizeof pass);
        if (!ok)
            snprintf(s->refused, sizeof s->refused, "%s", user);
        outcome(t, s, ok);
        return;
    }
    if (!strcmp(mech, "EXTERNAL") && s->external[0]) {
        s->mech = "EXTERNAL";
        /* The response is an authorization identity: none, or the
         * certificate's own name (RFC 4422 appendix A). */
        bool same = !recv->start || !recv->size ||
                    (recv->size == strlen(s->external) && !memcmp(recv->start, s->external, recv->size));
        bool ok =
            same && c->auth && c->auth(c->auth_ctx, "EXTERNAL", s->external, NULL, peer, s->user, sizeof s->user) == 0;
        if (!ok)
            snprintf(s->refused, sizeof s->refused, "%.64s (certificate CN%s)", s->external,
                     same ? "; no such user" : "; asked to act as another user");
        outcome(t, s, ok);
        return;
    }
    if (!strcmp(mech, "ANONYMOUS") && c->anonymous) {
        s->mech = "ANONYMOUS";
        bool ok = c->auth && c->auth(c->auth_ctx, "ANONYMOUS", NULL, NULL, peer, s->user, sizeof s->user) == 0;
        if (!ok)
            snprintf(s->refused, sizeof s->refused, "anonymous");
        outcome(t, s, ok);
        return;
    }
    snprintf(s->refused, sizeof s->refused, "(mechanism %.60s not offered)", mech);
    outcome(t, s, false);
}

static void sasl_process_response(pn_transport_t *t, const pn_bytes_t *recv)
{
    /* Neither mechanism has a second round: a response is a protocol error. */
    (void)recv;
    amqp__sasl *s = pnx_sasl_get_context(t);
    outcome(t, s, false);
}

static bool sasl_process_mechanisms(pn_transport_t *t, const char *mechs)
{
    (void)t;
    (void)mechs;
    return false;
}
static void sasl_process_challenge(pn_transport_t *t, const pn_bytes_t *recv)
{
    (void)t;
    (void)recv;
}
static void sasl_process_outcome(pn_transport_t *t, const pn_bytes_t *recv)
{
    (void)t;
    (void)recv;
}
static bool sasl_can_encrypt(pn_transport_t *t)
{
    (void)t;
    return false;
}
static ssize_t sasl_max_encrypt(pn_transport_t *t)
{
    (void)t;
    return 0;
}
static ssize_t sasl_code(pn_transport_t *t, pn_bytes_t in, pn_bytes_t *out)
{
    (void)t;
    (void)in;
    (void)out;
    return 0;
}

static const pnx_sasl_implementation plexus_sasl = {
    sasl_free,
    sasl_mechs,
    sasl_init_server,
    sasl_init_client,
    sasl_prepare,
    sasl_process_init,
    sasl_process_response,
    sasl_process_mechanisms,
    sasl_process_challenge,
    sasl_process_outcome,
    sasl_can_encrypt,
    sasl_max_encrypt,
    sasl_code,
    sasl_code,
};

void amqp__sasl_setup(pn_transport_t *t, amqp__sasl *s)
{
    pn_sasl_t *sasl = pn_sasl(t);
    pn_sasl_set_allow_insecure_mechs(sasl, true); /* PLAIN without TLS: loopback and trusted nets */
    pnx_sasl_set_implementation(t, &plexus_sasl, s);
}
