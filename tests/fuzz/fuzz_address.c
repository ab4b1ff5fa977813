/* fuzz_address.c — feeds what a client names in an attach to the address
 * parsers of amqp/address.c: a link address (amqp_addr_parse), a
 * host:port (amqp_hostport_parse), and the attach's link properties as
 * AMQP bytes (amqp__queue_args, the queue arguments a link may declare).
 *
 * Input: a selector byte, then the text (or AMQP bytes). Checked: an
 * accepted queue address printed back by amqp_addr_queue parses to the
 * same queue; names stay within RT_NAME_MAX and hold no NUL; an accepted
 * host fits its buffer and the port is 0..65535.
 */
#include <proton/codec.h>
#include <string.h>

#include "amqp/amqp_internal.h"
#include "tests/fuzz/fuzz.h"

static void address(const char *s)
{
    amqp_addr a;
    if (amqp_addr_parse(s, &a) < 0)
        return;
    FUZZ_CHECK(strlen(a.name) <= RT_NAME_MAX && strlen(a.key) <= RT_NAME_MAX);
    FUZZ_CHECK(a.kind == AMQP_ADDR_EXCHANGE_KEY || !a.key[0]);
    if (a.kind != AMQP_ADDR_QUEUE)
        return;
    FUZZ_CHECK(a.name[0]);
    char printed[3 * RT_NAME_MAX + 16];
    amqp_addr_queue(a.name, printed, sizeof printed);
    amqp_addr b;
    FUZZ_CHECK(amqp_addr_parse(printed, &b) == 0);
    FUZZ_CHECK(b.kind == AMQP_ADDR_QUEUE && strcmp(a.name, b.name) == 0);
    /* A short buffer cuts whole characters and stays a string. */
    char small[24];
    amqp_addr_queue(a.name, small, sizeof small);
    FUZZ_CHECK(strlen(small) < sizeof small);
}

static void hostport(const char *s)
{
    char host[64];
    int port = -1;
    if (amqp_hostport_parse(s, host, sizeof host, &port) < 0)
        return;
    FUZZ_CHECK(strlen(host) > 0 && strlen(host) < sizeof host);
    FUZZ_CHECK(port >= 0 && port <= 65535);
}

static void link_props(const uint8_t *p, size_t n)
{
    pn_data_t *d = pn_data(16);
    FUZZ_CHECK(d);
    if (pn_data_decode(d, (const char *)p, n) > 0) {
        rt_qargs a;
        rt_qargs_init(&a);
        char err[200] = "";
        if (amqp__queue_args(d, &a, err, sizeof err) < 0)
            FUZZ_CHECK(err[0]);
    }
    pn_data_free(d);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    if (data[0] % 3 == 2) {
        link_props(data + 1, size - 1);
        return 0;
    }
    char *s = malloc(size);
    FUZZ_CHECK(s);
    memcpy(s, data + 1, size - 1);
    s[size - 1] = '\0';
    if (data[0] % 3 == 0)
        address(s);
    else
        hostport(s);
    free(s);
    return 0;
}
