/* amqp091.h — Plexus's AMQP 0-9-1 codec, internal to amqp/ (amqp/amqp.h stays
 * the folder's one public header): frames, the protocol header, methods,
 * content headers and field tables, with no sockets and no state. Prefix
 * amqp91_ (the codec is one unit; amqp__ would hide which protocol).
 *
 * Every decoder is strict and bounds-checked: it never reads outside the
 * bytes it is given and answers bad bytes with a negative 0-9-1 reply code
 * (-AMQP91_FRAME_ERROR, -AMQP91_SYNTAX_ERROR, -AMQP91_NOT_IMPLEMENTED) and,
 * through *why, a static sentence naming the cause, to be sent as the
 * Connection.Close reply-text. Encoders return the bytes written, -ENOSPC if
 * the buffer is too small, -EINVAL for a value the wire cannot carry (a
 * shortstr over 255 bytes, a bad table). Decoded strings and tables are
 * views into the input: they live as long as its bytes.
 */
#ifndef PLEXUS_AMQP091_H
#define PLEXUS_AMQP091_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "amqp/amqp091_methods.h"

/* ------------------------------------------------------------ the tables */

/* Wire types of method fields and properties. */
enum {
    AMQP91_T_BIT = 1,
    AMQP91_T_OCTET,
    AMQP91_T_SHORT,
    AMQP91_T_LONG,
    AMQP91_T_LONGLONG,
    AMQP91_T_TIMESTAMP,
    AMQP91_T_SHORTSTR,
    AMQP91_T_LONGSTR,
    AMQP91_T_TABLE,
};
enum { AMQP91_M_CONTENT = 1, AMQP91_M_SYNC = 2, AMQP91_M_TO_SERVER = 4, AMQP91_M_TO_CLIENT = 8 };

typedef struct amqp91_fdesc {
    uint8_t type;
    uint16_t off; /* in the method's argument struct (or amqp91_props) */
    const char *name;
} amqp91_fdesc;

typedef struct amqp91_mdesc {
    uint32_t id; /* class-id << 16 | method-id */
    const char *name;
    uint8_t flags; /* AMQP91_M_x: carries content, synchronous, who may send it */
    uint8_t nfields;
    const amqp91_fdesc *fields;
} amqp91_mdesc;

/* Generated (amqp091_methods.c). */
extern const amqp91_mdesc amqp91_methods[AMQP91_METHOD_COUNT];
extern const amqp91_fdesc amqp91_prop_fields[AMQP91_PROP_COUNT];
/* "FRAME_ERROR" for 501 (or -501); "UNKNOWN" for what the spec does not name. */
const char *amqp91_reply_name(int code);

/* The method with this id, or NULL. */
const amqp91_mdesc *amqp91_method_desc(uint32_t id);

/* ------------------------------------------------------ protocol header */

/* What a peer's first 8 bytes say. */
typedef enum amqp91_proto {
    AMQP91_PROTO_NEED_MORE, /* fewer than 8 bytes, all agreeing with some AMQP header so far */
    AMQP91_PROTO_091,       /* AMQP 0 0 9 1 */
    AMQP91_PROTO_10,        /* AMQP 0 1 0 0: AMQP 1.0 */
    AMQP91_PROTO_10_SASL,   /* AMQP 3 1 0 0 */
    AMQP91_PROTO_10_TLS,    /* AMQP 2 1 0 0 */
    AMQP91_PROTO_OTHER,     /* "AMQP" and a version Plexus does not speak (0-8, 0-9, 0-10) */
    AMQP91_PROTO_NOT_AMQP,  /* not "AMQP" at all */
} amqp91_proto;

/* The header a 0-9-1 server answers an unsupported one with (then closes). */
extern const uint8_t amqp91_proto_header[8];
amqp91_proto amqp91_proto_classify(const uint8_t *b, size_t n);

/* --------------------------------------------------------------- frames */

#define AMQP91_FRAME_OVERHEAD 8u /* type, channel, size, frame-end */

typedef struct amqp91_frame {
    uint8_t type; /* AMQP91_FRAME_METHOD, _HEADER, _BODY, _HEARTBEAT */
    uint16_t channel;
    uint32_t size; /* payload bytes */
    const uint8_t *payload;
    size_t len; /* the whole frame: size + 8 */
} amqp91_frame;

/* Reads the frame at the start of b[0..n). frame_max is the negotiated
 * frame-max (the whole frame, header and end octet included; 0: no limit but
 * the 32-bit size). Returns 1 when a whole frame is there (f->len), 0 when
 * more bytes are needed, or -AMQP91_FRAME_ERROR: an unknown frame type, a
 * size over frame_max (known from the 7-byte header, before the payload
 * arrives), a frame-end octet that is not 0xCE, a heartbeat on a channel
 * other than 0 or with a payload. */
int amqp91_frame_read(const uint8_t *b, size_t n, uint32_t frame_max, amqp91_frame *f, const char **why);

/* Writes one frame around payload; returns its length or -ENOSPC. */
int amqp91_frame_write(uint8_t type, uint16_t channel, const uint8_t *payload, uint32_t size, uint8_t *out, size_t cap);
/* The 8-byte heartbeat frame. */
int amqp91_heartbeat_write(uint8_t *out, size_t cap);

/* -------------------------------------------------------------- methods */

typedef struct amqp91_method {
    uint32_t id;              /* AMQP91_CLASS_METHOD */
    const amqp91_mdesc *desc; /* set by decode; encode looks it up from id */
    amqp91_args a;            /* a.basic_publish, a.connection_start, ... */
} amqp91_method;

/* Decodes a method frame's payload. Unknown class or method id:
 * -AMQP91_NOT_IMPLEMENTED. The payload must hold the fields exactly: too few
 * bytes, bytes left over after the last field, a packed bit octet with bits
 * set beyond its fields, a bad field table: -AMQP91_SYNTAX_ERROR. */
int amqp91_method_decode(const uint8_t *p, size_t n, amqp91_method *m, const char **why);
/* Encodes m (class-id, method-id, arguments) as a method payload. */
int amqp91_method_encode(const amqp91_method *m, uint8_t *out, size_t cap);
/* The whole method frame on channel ch. */
int amqp91_method_frame(uint16_t ch, const amqp91_method *m, uint8_t *out, size_t cap);

/* ------------------------------------------------------- content header */

typedef struct amqp91_header {
    uint16_t class_id; /* 60 (basic): the only class with content */
    uint64_t body_size;
    amqp91_props props;
} amqp91_header;

/* Decodes a content header frame's payload. Weight must be 0; the 14 basic
 * properties fit one flag word, so a set continuation bit (or the unused bit
 * 1) names properties that do not exist: all -AMQP91_SYNTAX_ERROR, as are
 * truncated and overlong payloads. A class other than basic:
 * -AMQP91_NOT_IMPLEMENTED. */
int amqp91_header_decode(const uint8_t *p, size_t n, amqp91_header *h, const char **why);
int amqp91_header_encode(const amqp91_header *h, uint8_t *out, size_t cap);

/* --------------------------------------------------------- field tables */

/* Field value type tags, RabbitMQ's set (its errata to the 0-9-1 text, and
 * what pika, amqp091-go, librabbitmq and Net::AMQP write):
 *   t bool (0|1)   b int8   B uint8   s int16   u uint16   I int32   i uint32
 *   l int64   f float   d double   D decimal (scale octet, int32)
 *   S longstr   x byte array (longstr)   T timestamp (uint64)   V void
 *   F table   A array
 * ('s' is a short int, not the 0-9-1 text's shortstr, as in RabbitMQ.) */
#define AMQP91_TABLE_MAX_DEPTH 16 /* tables and arrays nested inside each other, the outer one counted */

typedef struct amqp91_table amqp91_table;
typedef struct amqp91_array amqp91_array;

typedef struct amqp91_value {
    char type; /* the tag above */
    union {
        bool t;
        int8_t b;
        uint8_t B;
        int16_t s;
        uint16_t u;
        int32_t I;
        uint32_t i;
        int64_t l;
        float f;
        double d;
        struct {
            uint8_t scale;
            int32_t value;
        } D;
        uint64_t T;
        amqp91_bytes str; /* S and x */
        amqp91_table *F;
        amqp91_array *A;
    } v;
} amqp91_value;

typedef struct amqp91_field {
    amqp91_bytes name;
    amqp91_value value;
} amqp91_field;

struct amqp91_table {
    uint32_t n;
    amqp91_field *f;
};
struct amqp91_array {
    uint32_t n;
    amqp91_value *v;
};

/* Checks a table's bytes (its content, after the 4-byte length) without
 * building anything: 0 or -AMQP91_SYNTAX_ERROR (unknown tag, truncated
 * value, depth over AMQP91_TABLE_MAX_DEPTH, t not 0 or 1). Method and header
 * decoding run it on every table they meet. */
int amqp91_table_check(const uint8_t *p, size_t n, const char **why);
/* Decodes a table's bytes into a tree (*out, owned; strings are views into
 * p). 0, -AMQP91_SYNTAX_ERROR, or -ENOMEM. */
int amqp91_table_parse(const uint8_t *p, size_t n, amqp91_table **out, const char **why);
void amqp91_table_free(amqp91_table *t);
/* Encodes a tree's content (without the 4-byte length, as method fields
 * hold tables). Bytes written, -ENOSPC or -EINVAL (unknown tag, a name over
 * 255 bytes, nesting over the bound). */
int amqp91_table_encode(const amqp91_table *t, uint8_t *out, size_t cap);

/* ------------------------------------ shared by amqp091*.c files only */

/* A bounds-checked reader: every take fails (ok = false) rather than read
 * past end, and later takes then fail too. */
typedef struct amqp91__rd {
    const uint8_t *p, *end;
    bool ok;
} amqp91__rd;

static inline bool amqp91__has(amqp91__rd *r, size_t n)
{
    if (r->ok && (size_t)(r->end - r->p) >= n)
        return true;
    r->ok = false;
    return false;
}
static inline uint64_t amqp91__be(amqp91__rd *r, unsigned n)
{
    uint64_t v = 0;
    if (!amqp91__has(r, n))
        return 0;
    for (unsigned i = 0; i < n; i++)
        v = v << 8 | r->p[i];
    r->p += n;
    return v;
}
static inline amqp91_bytes amqp91__span(amqp91__rd *r, size_t n)
{
    amqp91_bytes b = {NULL, 0};
    if (!amqp91__has(r, n))
        return b;
    b.p = r->p;
    b.len = (uint32_t)n;
    r->p += n;
    return b;
}

/* A writer: the same, for out buffers (full = the buffer was too small). */
typedef struct amqp91__wr {
    uint8_t *p;
    size_t len, cap;
    bool full;
} amqp91__wr;

static inline void amqp91__put_be(amqp91__wr *w, uint64_t v, unsigned n)
{
    if (w->full || w->cap - w->len < n) {
        w->full = true;
        return;
    }
    for (unsigned i = 0; i < n; i++)
        w->p[w->len + i] = (uint8_t)(v >> (8 * (n - 1 - i)));
    w->len += n;
}
static inline void amqp91__put(amqp91__wr *w, const void *b, size_t n)
{
    if (w->full || w->cap - w->len < n) {
        w->full = true;
        return;
    }
    if (n)
        memcpy(w->p + w->len, b, n);
    w->len += n;
}

#endif
