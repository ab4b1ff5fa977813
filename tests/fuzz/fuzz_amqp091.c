/* fuzz_amqp091.c — libFuzzer target for the AMQP 0-9-1 codec (amqp/amqp091*.c).
 *
 * The input is read as a client's byte stream: a protocol header is
 * classified, then frames are read one after another (frame_max 131072), and
 * every method, content header and field table that decodes is encoded again
 * and must give back exactly the bytes it came from (the decoders are strict
 * enough that each accepted input has one encoding); a mismatch aborts. The
 * raw input is also decoded as a bare method payload, content header and
 * table, so the fuzzer reaches them without having to find the framing.
 * Standalone (no Makefile target yet):
 *
 *   mkdir -p build/fuzz && clang-14 -std=gnu11 -g -O1 -D_GNU_SOURCE -I. \
 *       -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
 *       tests/fuzz/fuzz_amqp091.c amqp/amqp091.c amqp/amqp091_table.c amqp/amqp091_methods.c \
 *       -o build/fuzz/fuzz_amqp091
 *   build/fuzz/fuzz_amqp091 -max_total_time=60 -max_len=4096 build/fuzz/corpus-amqp091 tests/fuzz/corpus/amqp091
 *
 * (the first corpus directory takes what the run finds; the committed one is
 * the seed: pika's handshake and publish frames, tables of every type.)
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "amqp/amqp091.h"

static uint8_t out[1 << 18];

static void must(int cond, const char *what)
{
    if (!cond) {
        fprintf(stderr, "fuzz_amqp091: round trip broken: %s\n", what);
        abort();
    }
}

static void table_roundtrip(amqp91_bytes b)
{
    amqp91_table *t = NULL;
    int rc = amqp91_table_parse(b.p, b.len, &t, NULL);
    must(rc == 0 || rc == -AMQP91_SYNTAX_ERROR, "table parse code");
    must((rc == 0) == (amqp91_table_check(b.p, b.len, NULL) == 0), "table check and parse disagree");
    if (rc != 0)
        return;
    int n = amqp91_table_encode(t, out, sizeof out);
    must(n == (int)b.len && (b.len == 0 || memcmp(out, b.p, b.len) == 0), "table");
    amqp91_table_free(t);
}

static void method_roundtrip(const uint8_t *p, size_t len)
{
    amqp91_method m;
    const char *why = NULL;
    int rc = amqp91_method_decode(p, len, &m, &why);
    if (rc < 0) {
        must(why != NULL && (rc == -AMQP91_SYNTAX_ERROR || rc == -AMQP91_NOT_IMPLEMENTED), "method error code");
        return;
    }
    for (unsigned i = 0; i < m.desc->nfields; i++)
        if (m.desc->fields[i].type == AMQP91_T_TABLE)
            table_roundtrip(*(const amqp91_bytes *)((const char *)&m.a + m.desc->fields[i].off));
    int n = amqp91_method_encode(&m, out, sizeof out);
    must(n == (int)len && memcmp(out, p, len) == 0, m.desc->name);
}

static void header_roundtrip(const uint8_t *p, size_t len)
{
    amqp91_header h;
    const char *why = NULL;
    int rc = amqp91_header_decode(p, len, &h, &why);
    if (rc < 0) {
        must(why != NULL && (rc == -AMQP91_SYNTAX_ERROR || rc == -AMQP91_NOT_IMPLEMENTED), "header error code");
        return;
    }
    if (h.props.flags & AMQP91_P_HEADERS)
        table_roundtrip(h.props.headers);
    int n = amqp91_header_encode(&h, out, sizeof out);
    must(n == (int)len && memcmp(out, p, len) == 0, "content header");
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    method_roundtrip(data, size);
    header_roundtrip(data, size);
    table_roundtrip((amqp91_bytes){data, (uint32_t)size});

    size_t at = 0;
    if (amqp91_proto_classify(data, size < 8 ? size : 8) == AMQP91_PROTO_091)
        at = 8;
    while (at < size) {
        amqp91_frame f;
        const char *why = NULL;
        int rc = amqp91_frame_read(data + at, size - at, 131072, &f, &why);
        if (rc <= 0) {
            must(rc == 0 || (rc == -AMQP91_FRAME_ERROR && why), "frame error code");
            break;
        }
        must(f.len == f.size + AMQP91_FRAME_OVERHEAD && f.len <= size - at, "frame length");
        if (f.type == AMQP91_FRAME_METHOD)
            method_roundtrip(f.payload, f.size);
        else if (f.type == AMQP91_FRAME_HEADER)
            header_roundtrip(f.payload, f.size);
        int n = amqp91_frame_write(f.type, f.channel, f.payload, f.size, out, sizeof out);
        must(n == (int)f.len && memcmp(out, data + at, f.len) == 0, "frame");
        at += f.len;
    }
    return 0;
}
