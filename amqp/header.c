/* header.c — what the 8 bytes a client opens with ask for.
 *
 * Every AMQP connection starts with a protocol header ("AMQP", protocol id,
 * version). This is the one place that tells them apart, so the connection
 * can answer a header it does not serve as the spec's negotiation says (its
 * own header, then close) and hand AMQP 0-9-1 ("AMQP" 0 0 9 1, or 1 1 0 9) to its own
 * front end (conn091.c) from the same spot.
 */
#include <string.h>

#include "amqp/amqp_internal.h"

amqp__hdr_kind amqp__header_classify(const uint8_t h[8])
{
    if (memcmp(h, "AMQP", 4) != 0)
        return AMQP__HDR_OTHER;
    if (h[4] == 0 && h[5] == 0 && h[6] == 9 && h[7] == 1)
        return AMQP__HDR_AMQP091;
    /* Net::AMQP (AnyEvent::RabbitMQ, Perl) opens with the 0-9 draft's
     * class/instance form, "AMQP" 1 1 0 9, then speaks 0-9-1: RabbitMQ
     * takes it as 0-9-1 too. */
    if (h[4] == 1 && h[5] == 1 && h[6] == 0 && h[7] == 9)
        return AMQP__HDR_AMQP091;
    if (h[5] != 1 || h[6] != 0 || h[7] != 0)
        return AMQP__HDR_OTHER; /* AMQP 1.0.0 is the only version of 1.0 there is */
    switch (h[4]) {
    case 0: return AMQP__HDR_AMQP;
    case 2: return AMQP__HDR_TLS;
    case 3: return AMQP__HDR_SASL;
    default: return AMQP__HDR_OTHER;
    }
}

const char *amqp__header_name(amqp__hdr_kind k)
{
    switch (k) {
    case AMQP__HDR_AMQP: return "AMQP 1.0";
    case AMQP__HDR_SASL: return "AMQP 1.0 SASL";
    case AMQP__HDR_TLS: return "AMQP 1.0 TLS";
    case AMQP__HDR_AMQP091: return "AMQP 0-9-1";
    case AMQP__HDR_OTHER: break;
    }
    return "not an AMQP 1.0 header";
}
