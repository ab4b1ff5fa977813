/* msg.c — messages and the reference-counted buffers they may carry.
 *
 * A message is one allocation: a fixed header and a small inline payload. A
 * large payload travels as an sv_buf, shared by reference so fan-out and
 * queueing never copy it.
 */
#include <stdlib.h>
#include <string.h>

#include "sv_internal.h"

sv_buf *sv_buf_new(size_t len)
{
    sv_buf *b = malloc(sizeof *b + len);
    if (!b)
        return NULL;
    atomic_init(&b->refs, 1);
    b->flags = 0;
    b->len = len;
    b->data = (unsigned char *)(b + 1);
    b->release = NULL;
    b->ctx = NULL;
    return b;
}

void sv_buf_unref(sv_buf *b)
{
    if (!b || atomic_fetch_sub_explicit(&b->refs, 1, memory_order_acq_rel) != 1)
        return;
    if (b->release)
        b->release(b);
    else
        free(b);
}

sv_msg *sv_msg_new(uint32_t tag, const void *data, size_t len)
{
    if (len > UINT32_MAX)
        return NULL;
    sv_msg *m = malloc(sizeof *m + len);
    if (!m)
        return NULL;
    memset(m, 0, sizeof *m);
    m->tag = tag;
    m->len = (uint32_t)len;
    if (len) {
        if (data)
            memcpy(m->data, data, len);
        else
            memset(m->data, 0, len);
    }
    return m;
}

void sv_msg_free(sv_msg *m)
{
    if (!m)
        return;
    sv_buf_unref(m->buf);
    free(m);
}

void sv_take(sv_msg *m) { m->flags |= SV__F_TAKEN; }

void sv_hold(sv_proc *self, sv_msg *m)
{
    sv_take(m);
    if (!(m->flags & SV__F_SYSTEM) && !(m->flags & SV__F_HELD)) {
        m->flags |= SV__F_HELD;
        atomic_fetch_add_explicit(&self->count, 1, memory_order_relaxed);
    }
}

void sv_unhold(sv_proc *self, sv_msg *m)
{
    if (m->flags & SV__F_HELD) {
        m->flags &= (uint16_t)~SV__F_HELD;
        atomic_fetch_sub_explicit(&self->count, 1, memory_order_relaxed);
    }
}
