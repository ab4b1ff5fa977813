/* amqp091_table.c — AMQP 0-9-1 field tables and arrays: check, parse into a
 * tree, encode back.
 *
 * Clients put tables in Connection.StartOk (client properties), in declare
 * and bind arguments and in message headers, so this is where a peer's bytes
 * nest. One walker serves the check (no allocation, run on every table a
 * method or header carries) and the parse (builds the tree); nesting is
 * bounded by AMQP91_TABLE_MAX_DEPTH and every length by the bytes at hand, so
 * a tree costs at most a small multiple of the frame it came in.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "amqp/amqp091.h"

typedef struct walk {
    amqp91__rd r;
    const char *why;
} walk;

static bool bad(walk *k, const char *why)
{
    if (!k->why)
        k->why = why;
    k->r.ok = false;
    return false;
}

static bool table_walk(walk *k, int depth, amqp91_table **out);

static bool array_walk(walk *k, int depth, amqp91_array **out);

/* Growth for the parse; an error here is -ENOMEM, told apart by why. */
static const char oom[] = "out of memory";

static bool grow(walk *k, void **v, uint32_t n, size_t each)
{
    /* The capacity is implicit: 4, then doubled whenever n reaches a power of two. */
    if (n != 0 && (n < 4 || (n & (n - 1))))
        return true;
    size_t cap = n ? (size_t)n * 2 : 4;
    void *p = realloc(*v, cap * each);
    if (!p)
        return bad(k, oom);
    *v = p;
    return true;
}

/* One value after its tag; out may be NULL (check only). */
static bool value_walk(walk *k, int depth, amqp91_value *out)
{
    amqp91_value v;
    memset(&v, 0, sizeof v);
    amqp91__rd *r = &k->r;
    uint8_t tag = (uint8_t)amqp91__be(r, 1);
    if (!r->ok)
        return bad(k, "field table ends inside a value");
    v.type = (char)tag;
    uint32_t u32;
    uint64_t u64;
    switch (tag) {
    case 't': {
        uint8_t o = (uint8_t)amqp91__be(r, 1);
        if (r->ok && o > 1)
            return bad(k, "field table boolean is neither 0 nor 1");
        v.v.t = o;
        break;
    }
    case 'b': v.v.b = (int8_t)amqp91__be(r, 1); break;
    case 'B': v.v.B = (uint8_t)amqp91__be(r, 1); break;
    case 's': v.v.s = (int16_t)amqp91__be(r, 2); break;
    case 'u': v.v.u = (uint16_t)amqp91__be(r, 2); break;
    case 'I': v.v.I = (int32_t)amqp91__be(r, 4); break;
    case 'i': v.v.i = (uint32_t)amqp91__be(r, 4); break;
    case 'l': v.v.l = (int64_t)amqp91__be(r, 8); break;
    case 'T': v.v.T = amqp91__be(r, 8); break;
    case 'f':
        u32 = (uint32_t)amqp91__be(r, 4);
        memcpy(&v.v.f, &u32, 4);
        break;
    case 'd':
        u64 = amqp91__be(r, 8);
        memcpy(&v.v.d, &u64, 8);
        break;
    case 'D':
        v.v.D.scale = (uint8_t)amqp91__be(r, 1);
        v.v.D.value = (int32_t)amqp91__be(r, 4);
        break;
    case 'S':
    case 'x': v.v.str = amqp91__span(r, (size_t)amqp91__be(r, 4)); break;
    case 'V': break;
    case 'F':
    case 'A': {
        amqp91_bytes b = amqp91__span(r, (size_t)amqp91__be(r, 4));
        if (!r->ok)
            break;
        if (depth + 1 > AMQP91_TABLE_MAX_DEPTH)
            return bad(k, "field tables nested too deep");
        walk in = {{b.p, b.p + b.len, true}, NULL};
        bool ok = tag == 'F' ? table_walk(&in, depth + 1, out ? &v.v.F : NULL)
                             : array_walk(&in, depth + 1, out ? &v.v.A : NULL);
        if (!ok)
            return bad(k, in.why);
        break;
    }
    default: return bad(k, "unknown field table value type");
    }
    if (!r->ok)
        return bad(k, "field table ends inside a value");
    if (out)
        *out = v;
    return true;
}

static bool table_walk(walk *k, int depth, amqp91_table **out)
{
    amqp91_table *t = NULL;
    if (out && !(t = calloc(1, sizeof *t)))
        return bad(k, oom);
    while (k->r.ok && k->r.p < k->r.end) {
        amqp91_bytes name = amqp91__span(&k->r, (size_t)amqp91__be(&k->r, 1));
        if (!k->r.ok) {
            bad(k, "field table ends inside a field name");
            break;
        }
        if (t && !grow(k, (void **)&t->f, t->n, sizeof *t->f))
            break;
        amqp91_field *f = t ? &t->f[t->n] : NULL;
        if (!value_walk(k, depth, f ? &f->value : NULL))
            break;
        if (t) {
            f->name = name;
            t->n++;
        }
    }
    if (!k->r.ok) {
        amqp91_table_free(t);
        return false;
    }
    if (out)
        *out = t;
    return true;
}

static void array_free(amqp91_array *a);

static bool array_walk(walk *k, int depth, amqp91_array **out)
{
    amqp91_array *a = NULL;
    if (out && !(a = calloc(1, sizeof *a)))
        return bad(k, oom);
    while (k->r.ok && k->r.p < k->r.end) {
        if (a && !grow(k, (void **)&a->v, a->n, sizeof *a->v))
            break;
        if (!value_walk(k, depth, a ? &a->v[a->n] : NULL))
            break;
        if (a)
            a->n++;
    }
    if (!k->r.ok) {
        array_free(a);
        return false;
    }
    if (out)
        *out = a;
    return true;
}

static void value_free(amqp91_value *v)
{
    if (v->type == 'F')
        amqp91_table_free(v->v.F);
    else if (v->type == 'A')
        array_free(v->v.A);
}

static void array_free(amqp91_array *a)
{
    if (!a)
        return;
    for (uint32_t i = 0; i < a->n; i++)
        value_free(&a->v[i]);
    free(a->v);
    free(a);
}

void amqp91_table_free(amqp91_table *t)
{
    if (!t)
        return;
    for (uint32_t i = 0; i < t->n; i++)
        value_free(&t->f[i].value);
    free(t->f);
    free(t);
}

int amqp91_table_check(const uint8_t *p, size_t n, const char **why)
{
    walk k = {{p, p + n, true}, NULL};
    if (table_walk(&k, 1, NULL))
        return 0;
    if (why)
        *why = k.why;
    return -AMQP91_SYNTAX_ERROR;
}

int amqp91_table_parse(const uint8_t *p, size_t n, amqp91_table **out, const char **why)
{
    walk k = {{p, p + n, true}, NULL};
    *out = NULL;
    if (table_walk(&k, 1, out))
        return 0;
    if (why)
        *why = k.why;
    return k.why == oom ? -ENOMEM : -AMQP91_SYNTAX_ERROR;
}

/* ---------------------------------------------------------------- encode */

static int table_put(amqp91__wr *w, const amqp91_table *t, int depth);

static int array_put(amqp91__wr *w, const amqp91_array *a, int depth);

/* A nested table or array: its 4-byte length, patched in once it is known. */
static int nested_put(amqp91__wr *w, const amqp91_value *v, int depth)
{
    if (depth + 1 > AMQP91_TABLE_MAX_DEPTH)
        return -EINVAL;
    size_t at = w->len;
    amqp91__put_be(w, 0, 4);
    int rc = v->type == 'F' ? table_put(w, v->v.F, depth + 1) : array_put(w, v->v.A, depth + 1);
    if (rc < 0 || w->full)
        return rc;
    size_t len = w->len - at - 4;
    if (len > UINT32_MAX)
        return -EINVAL;
    for (int i = 0; i < 4; i++)
        w->p[at + (size_t)i] = (uint8_t)(len >> (8 * (3 - i)));
    return 0;
}

static int value_put(amqp91__wr *w, const amqp91_value *v, int depth)
{
    uint32_t u32;
    uint64_t u64;
    amqp91__put_be(w, (uint8_t)v->type, 1);
    switch (v->type) {
    case 't': amqp91__put_be(w, v->v.t ? 1 : 0, 1); break;
    case 'b': amqp91__put_be(w, (uint8_t)v->v.b, 1); break;
    case 'B': amqp91__put_be(w, v->v.B, 1); break;
    case 's': amqp91__put_be(w, (uint16_t)v->v.s, 2); break;
    case 'u': amqp91__put_be(w, v->v.u, 2); break;
    case 'I': amqp91__put_be(w, (uint32_t)v->v.I, 4); break;
    case 'i': amqp91__put_be(w, v->v.i, 4); break;
    case 'l': amqp91__put_be(w, (uint64_t)v->v.l, 8); break;
    case 'T': amqp91__put_be(w, v->v.T, 8); break;
    case 'f':
        memcpy(&u32, &v->v.f, 4);
        amqp91__put_be(w, u32, 4);
        break;
    case 'd':
        memcpy(&u64, &v->v.d, 8);
        amqp91__put_be(w, u64, 8);
        break;
    case 'D':
        amqp91__put_be(w, v->v.D.scale, 1);
        amqp91__put_be(w, (uint32_t)v->v.D.value, 4);
        break;
    case 'S':
    case 'x':
        amqp91__put_be(w, v->v.str.len, 4);
        amqp91__put(w, v->v.str.p, v->v.str.len);
        break;
    case 'V': break;
    case 'F':
    case 'A':
        if (v->type == 'F' ? !v->v.F : !v->v.A)
            return -EINVAL;
        return nested_put(w, v, depth);
    default: return -EINVAL;
    }
    return 0;
}

static int table_put(amqp91__wr *w, const amqp91_table *t, int depth)
{
    for (uint32_t i = 0; i < t->n; i++) {
        if (t->f[i].name.len > 255)
            return -EINVAL;
        amqp91__put_be(w, t->f[i].name.len, 1);
        amqp91__put(w, t->f[i].name.p, t->f[i].name.len);
        int rc = value_put(w, &t->f[i].value, depth);
        if (rc < 0)
            return rc;
    }
    return 0;
}

static int array_put(amqp91__wr *w, const amqp91_array *a, int depth)
{
    for (uint32_t i = 0; i < a->n; i++) {
        int rc = value_put(w, &a->v[i], depth);
        if (rc < 0)
            return rc;
    }
    return 0;
}

int amqp91_table_encode(const amqp91_table *t, uint8_t *out, size_t cap)
{
    amqp91__wr w = {out, 0, cap, false};
    int rc = table_put(&w, t, 1);
    if (rc < 0)
        return rc;
    return w.full || w.len > INT32_MAX ? -ENOSPC : (int)w.len;
}
