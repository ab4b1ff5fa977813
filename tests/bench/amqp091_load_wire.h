/* amqp091_load_wire.h — the raw engine's connection (amqp091_load_wire.c):
 * a non-blocking socket with one large read buffer and one write buffer,
 * framed by Plexus's 0-9-1 codec (amqp/amqp091.h), and the handshake and
 * synchronous methods a load run needs. Kept apart from amqp091_load.h so
 * the librabbitmq engine does not see the codec's names.
 */
#ifndef PLEXUS_AMQP091_LOAD_WIRE_H
#define PLEXUS_AMQP091_LOAD_WIRE_H

#include "amqp/amqp091.h"
#include "tests/bench/amqp091_load.h"

#define L91_WAIT_MS 200 /* the longest a wait runs before it looks at the deadline and the stop flag again */

typedef struct l91_conn {
    l91_run *r;
    const char *who; /* "publisher" or "consumer", for the messages */
    int fd;
    bool open;  /* the handshake is done */
    bool quiet; /* closing: a failure now is not the run's */
    uint32_t frame_max;
    uint8_t *in; /* received bytes: in[in_off..in_len) not yet parsed */
    size_t in_off, in_len, in_cap;
    uint8_t *out; /* bytes to send: out[out_off..out_len) */
    size_t out_off, out_len, out_cap;
} l91_conn;

/* Connects, does the handshake (PLAIN) and opens channel 1; false (the run
 * failed, saying why) if any of it does not happen within 10 s. out_cap: the
 * write buffer's size (at least 4 KiB). */
bool l91_conn_open(l91_conn *c, l91_run *r, const char *who, size_t out_cap);
/* Connection.Close and its answer (2 s at most) when clean, then the
 * socket and buffers go. */
void l91_conn_close(l91_conn *c, bool clean);

/* Writes what it can of the write buffer without waiting; false when the
 * connection broke. */
bool l91_conn_write(l91_conn *c);
/* Writes what it can of the write buffer, then waits up to timeout_ms for
 * input (and for room to write the rest) and reads as much as the read
 * buffer holds. Bytes read (0: none), or -1 when the connection failed. */
long l91_conn_pump(l91_conn *c, int timeout_ms);
/* The next whole frame in the read buffer: 1 (f views the buffer until the
 * next pump), 0 when more bytes are needed, -1 for bytes that are not
 * 0-9-1 (the run failed). */
int l91_conn_frame(l91_conn *c, amqp91_frame *f);
/* Appends a method frame to the write buffer (writing first if it is
 * full); false if it cannot be encoded or written. */
bool l91_conn_method(l91_conn *c, uint16_t ch, const amqp91_method *m);
/* Sends a synchronous method on channel 1 and waits (10 s at most) for
 * its answer, which *reply then holds (views valid until the next pump).
 * Frames in between are handed to l91_conn_other. */
bool l91_conn_rpc(l91_conn *c, const amqp91_method *m, uint32_t answer, amqp91_method *reply);
/* A frame a loop did not expect: heartbeats and Connection.Blocked pass;
 * a close, a cancelled consumer or a bad frame fails the run (false). */
bool l91_conn_other(l91_conn *c, const amqp91_frame *f);

/* A method frame's class and method id; 0 for any other frame. */
uint32_t l91_method_id(const amqp91_frame *f);

/* A C string as the codec's bytes. */
amqp91_bytes l91_bytes(const char *s);

#endif
