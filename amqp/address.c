/* address.c — AMQP 1.0 addresses, as DESIGN.md defines them.
 *
 *   /queues/NAME          a queue
 *   /exchanges/NAME       an exchange; each message's subject is its key
 *   /exchanges/NAME/KEY   an exchange with a fixed routing key
 *   NAME                  (no leading slash) a queue, so stock examples work
 *
 * NAME and KEY are percent-encoded (RabbitMQ 4's address format v2);
 * /exchanges/amq.default is the default exchange.
 */
#include <errno.h>
#include <proton/codec.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "amqp/amqp_internal.h"

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Decodes s[0..n) into out (RT_NAME_MAX + 1 bytes); -EINVAL on a bad
 * escape, an encoded NUL or a result too long. */
static int decode(const char *s, size_t n, char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '%') {
            if (i + 2 >= n)
                return -EINVAL;
            int hi = hexval(s[i + 1]), lo = hexval(s[i + 2]);
            if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
                return -EINVAL;
            c = (char)(hi * 16 + lo);
            i += 2;
        }
        if (o == RT_NAME_MAX)
            return -EINVAL;
        out[o++] = c;
    }
    out[o] = '\0';
    return 0;
}

int amqp_addr_parse(const char *s, amqp_addr *out)
{
    memset(out, 0, sizeof *out);
    if (!s || !*s)
        return -EINVAL;
    if (s[0] != '/') {
        if (strlen(s) > RT_NAME_MAX)
            return -EINVAL;
        out->kind = AMQP_ADDR_QUEUE;
        strcpy(out->name, s);
        return 0;
    }
    if (!strncmp(s, "/queues/", 8)) {
        const char *name = s + 8;
        if (!*name || strchr(name, '/') || decode(name, strlen(name), out->name) < 0)
            return -EINVAL;
        out->kind = AMQP_ADDR_QUEUE;
        return 0;
    }
    if (!strncmp(s, "/exchanges/", 11)) {
        const char *name = s + 11, *slash = strchr(name, '/');
        size_t n = slash ? (size_t)(slash - name) : strlen(name);
        if (!n || decode(name, n, out->name) < 0)
            return -EINVAL;
        if (!strcmp(out->name, "amq.default"))
            out->name[0] = '\0';
        if (!slash) {
            out->kind = AMQP_ADDR_EXCHANGE;
            return 0;
        }
        const char *key = slash + 1;
        if (strchr(key, '/') || decode(key, strlen(key), out->key) < 0)
            return -EINVAL;
        out->kind = AMQP_ADDR_EXCHANGE_KEY;
        return 0;
    }
    return -EINVAL;
}

const char *amqp_addr_queue(const char *name, char *out, size_t len)
{
    static const char safe[] = "-._~!$&'()*+,;=:@"; /* RFC 3986 pchar without '%' and '/' */
    if (!len)
        return out;
    size_t o = (size_t)snprintf(out, len, "/queues/");
    if (o >= len)
        return out; /* truncated by snprintf, NUL-terminated */
    for (const unsigned char *p = (const unsigned char *)name; *p; p++) {
        bool plain =
            (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || strchr(safe, *p);
        size_t need = plain ? 1 : 3;
        if (o + need >= len)
            break; /* what does not fit is cut, whole characters only */
        if (plain)
            out[o++] = (char)*p;
        else
            o += (size_t)snprintf(out + o, len - o, "%%%02X", *p);
    }
    out[o] = '\0';
    return out;
}

int amqp_hostport_parse(const char *s, char *host, size_t hostlen, int *port)
{
    const char *colon;
    size_t hl;
    if (!s || !*s)
        return -1;
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (!close || close[1] != ':')
            return -1;
        hl = (size_t)(close - s - 1);
        s++;
        colon = close + 1;
    } else {
        colon = strrchr(s, ':');
        if (!colon || memchr(s, ':', (size_t)(colon - s)))
            return -1; /* a bare IPv6 address needs brackets */
        hl = (size_t)(colon - s);
    }
    if (hl == 0 || hl >= hostlen)
        return -1;
    char *end;
    errno = 0;
    if (colon[1] < '0' || colon[1] > '9')
        return -1; /* digits only: strtol would take " 5672" or "+5672" */
    long p = strtol(colon + 1, &end, 10);
    if (*end || errno || p > 65535)
        return -1;
    memcpy(host, s, hl);
    host[hl] = '\0';
    *port = (int)p;
    return 0;
}

/* Queue arguments from a link's attach properties (RabbitMQ's names:
 * x-max-length, x-overflow, x-message-ttl, x-dead-letter-exchange, ...),
 * for the link that creates the queue. -EINVAL with a reason in err. */
int amqp__queue_args(pn_data_t *props, rt_qargs *a, char *err, size_t errlen)
{
    if (!props)
        return 0;
    pn_data_rewind(props);
    if (!pn_data_next(props))
        return 0; /* no properties */
    if (pn_data_type(props) != PN_MAP) {
        snprintf(err, errlen, "link properties must be a map");
        return -EINVAL;
    }
    pn_data_enter(props);
    int rc = 0;
    while (rc == 0 && pn_data_next(props)) {
        pn_type_t kt = pn_data_type(props);
        pn_bytes_t k = kt == PN_SYMBOL   ? pn_data_get_symbol(props)
                       : kt == PN_STRING ? pn_data_get_string(props)
                                         : pn_bytes(0, NULL);
        if (!pn_data_next(props))
            break;
        if (!k.start || k.size > 64)
            continue;
        char name[65];
        memcpy(name, k.start, k.size);
        name[k.size] = '\0';
        /* Only queue arguments are ours; other properties are the client's business. */
        if (strncmp(name, "x-", 2) != 0 && strcmp(name, "durable") && strcmp(name, "exclusive") &&
            strcmp(name, "auto-delete"))
            continue;
        pn_atom_t v = pn_data_get_atom(props);
        char sval[RT_NAME_MAX + 1];
        bool is_int = true;
        int64_t ival = 0;
        switch (v.type) {
        case PN_BYTE: ival = v.u.as_byte; break;
        case PN_UBYTE: ival = v.u.as_ubyte; break;
        case PN_SHORT: ival = v.u.as_short; break;
        case PN_USHORT: ival = v.u.as_ushort; break;
        case PN_INT: ival = v.u.as_int; break;
        case PN_UINT: ival = v.u.as_uint; break;
        case PN_LONG: ival = v.u.as_long; break;
        case PN_ULONG: ival = (int64_t)v.u.as_ulong; break;
        case PN_BOOL: ival = v.u.as_bool; break;
        case PN_STRING:
        case PN_SYMBOL:
            is_int = false;
            snprintf(sval, sizeof sval, "%.*s", (int)v.u.as_bytes.size, v.u.as_bytes.start);
            break;
        default:
            snprintf(err, errlen, "queue argument %s has an unsupported type", name);
            rc = -EINVAL;
            continue;
        }
        rc = rt_qargs_set(a, name, is_int ? NULL : sval, ival, is_int, err, errlen);
    }
    pn_data_exit(props);
    return rc;
}
