/* outbox.c — what a connection owes each queue process: publishes and
 * settlements, batched per queue, sent once per round.
 *
 * A queue's mailbox is bounded; what it does not take waits in that
 * queue's outbox, in order, and the connection's publishing links get no
 * new credit meanwhile: that is the broker's back-pressure. A batch goes
 * as one runtime message, so a round costs one cross-thread send per
 * queue, however many messages it carried.
 */
#include <errno.h>
#include <proton/delivery.h>
#include <proton/link.h>
#include <stdlib.h>
#include <string.h>

#include "amqp/amqp_internal.h"

#define PUB_BATCH 256 /* publishes per batch message */
#define SETTLE_BATCH 256

static amqp__outbox *outbox(amqp__conn *c, sv_pid pid)
{
    uint64_t k1 = ((uint64_t)pid.node << 32) | pid.creation, k2 = ((uint64_t)pid.index << 32) | pid.gen;
    amqp__outbox *o = sv_map_put(&c->outboxes, k1, k2);
    if (o && sv_pid_is_none(o->pid))
        o->pid = pid;
    return o;
}

static void ob_append(amqp__outbox *o, sv_msg *m)
{
    m->next = NULL;
    if (o->tail)
        o->tail->next = m;
    else
        o->head = m;
    o->tail = m;
}

/* Ends the batches being filled: they join the line. */
static void ob_seal(amqp__outbox *o)
{
    if (o->pub) {
        ob_append(o, o->pub);
        o->pub = NULL;
    }
    if (o->settle) {
        ob_append(o, o->settle);
        o->settle = NULL;
    }
}

void amqp__outbox_push(amqp__conn *c, sv_pid pid, sv_msg *m)
{
    amqp__outbox *o = outbox(c, pid);
    if (!o) {
        sv_log(SV_LOG_ERROR, "connection %s: out of memory; a message for a queue is lost", c->peer);
        sv_msg_free(m);
        return;
    }
    ob_seal(o);
    ob_append(o, m);
}

/* The batch being filled in *slot, with room for one more entry: a full
 * one is sealed into the line and a new one started. Batches begin with
 * their entry count (rt_pub_batch, rt_settle_batch). */
static void *ob_batch(amqp__conn *c, sv_pid pid, bool settle, uint32_t tag, size_t head, size_t each, uint32_t cap)
{
    amqp__outbox *o = outbox(c, pid);
    if (!o)
        return NULL;
    sv_msg **slot = settle ? &o->settle : &o->pub;
    if (*slot && *(uint32_t *)(void *)(*slot)->data == cap)
        ob_seal(o);
    if (!*slot && !(*slot = sv_msg_new(tag, NULL, head + cap * each)))
        return NULL;
    return (*slot)->data;
}

rt_pub_batch *amqp__outbox_pub(amqp__conn *c, sv_pid pid)
{
    return ob_batch(c, pid, false, RT_Q_PUBLISH, sizeof(rt_pub_batch), sizeof(rt_pub), PUB_BATCH);
}

uint32_t amqp__outbox_publish(amqp__conn *c, rt_queue **qs, int n, rt_msg *m, uint64_t tag, uint64_t *paused_until)
{
    uint32_t took = 0;
    uint64_t now = 0;
    for (int i = 0; i < n; i++) {
        /* Consumed and behind: the publisher pauses so consumers catch up. */
        if (rt_queue_slow(qs[i]) && (now || (now = sv_now_ms())) && now + AMQP__SLOW_DOWN_MS > *paused_until)
            *paused_until = now + AMQP__SLOW_DOWN_MS;
        rt_pub_batch *pb = amqp__outbox_pub(c, rt_queue_pid(qs[i]));
        if (!pb)
            continue; /* out of memory: this queue does not get it */
        bool confirm = rt_queue_confirms(qs[i], m);
        pb->confirms += confirm;
        pb->p[pb->n++] = (rt_pub){rt_msg_ref(m), tag, confirm};
        took++;
    }
    return took;
}

rt_settle_batch *amqp__outbox_settle(amqp__conn *c, sv_pid pid)
{
    return ob_batch(c, pid, true, RT_Q_SETTLE, sizeof(rt_settle_batch), sizeof(rt_settle), SETTLE_BATCH);
}

/* The references a refused or abandoned message holds. */
static void drop_queued(sv_msg *m)
{
    if (m->tag == RT_Q_PUBLISH) {
        rt_pub_batch *pb = (rt_pub_batch *)(void *)m->data;
        for (uint32_t i = 0; i < pb->n; i++)
            rt_msg_unref(pb->p[i].m);
    }
    sv_msg_free(m);
}

/* Publishes to a queue that is gone: their links learn it as "released".
 * A consumer it never added hears it is gone, as the queue tells those it
 * had (an AMQP 0-9-1 Basic.Get waits for the answer): through the mailbox,
 * so it is handled as the queue's own message would be. */
static void fail_publishes(amqp__conn *c, sv_msg *m)
{
    if (m->tag == RT_Q_CONSUME && m->len >= sizeof(rt_consume)) {
        rt_credit g = {.consumer = ((rt_consume *)(void *)m->data)->consumer};
        sv_msg *gm = sv_msg_new(RT_Q_CONSUMER_GONE, &g, sizeof g);
        if (gm) {
            gm->status = -ENOENT;
            if (sv_send_owed(sv_self(c->self), gm) < 0)
                sv_msg_free(gm);
        }
        return;
    }
    if (m->tag != RT_Q_PUBLISH)
        return;
    rt_pub_batch *pb = (rt_pub_batch *)(void *)m->data;
    sv_msg *conf = sv_msg_new(RT_Q_CONFIRM, NULL, sizeof(rt_confirm_batch) + pb->n * sizeof(rt_confirm));
    if (!conf)
        return;
    rt_confirm_batch *cb = (rt_confirm_batch *)(void *)conf->data;
    cb->n = pb->n;
    for (uint32_t i = 0; i < pb->n; i++)
        cb->c[i] = (rt_confirm){pb->p[i].tag, RT_RELEASED, RT_WHY_NONE};
    if (c->c91)
        amqp__091_confirm(c, conf);
    else
        amqp__pub_confirm(c, conf);
    sv_msg_free(conf);
}

/* Sends every outbox's line, oldest first, until a mailbox says full.
 * True if something still waits. */
bool amqp__outbox_flush(amqp__conn *c)
{
    bool waiting = false;
    for (uint32_t i = 0; i < c->outboxes.cap; i++) {
        amqp__outbox *o = sv_map_at(&c->outboxes, i);
        if (!o)
            continue;
        ob_seal(o);
        while (o->head) {
            sv_msg *m = o->head, *next = m->next;
            /* Publishes the queue will not confirm are accepted once it has
             * them: note their tags first, the batch is the queue's after. */
            rt_pub taken[PUB_BATCH];
            uint32_t ntaken = 0;
            if (m->tag == RT_Q_PUBLISH) {
                rt_pub_batch *pb = (rt_pub_batch *)(void *)m->data;
                for (uint32_t k = 0; k < pb->n && pb->confirms < pb->n; k++)
                    if (!pb->p[k].confirm)
                        taken[ntaken++] = pb->p[k];
            }
            int rc = sv_send(o->pid, m);
            if (rc == 0 && ntaken && c->c91)
                amqp__091_taken(c, taken, ntaken);
            else if (rc == 0 && ntaken)
                amqp__pub_taken(c, taken, ntaken);
            if (rc == -EAGAIN) {
                m->next = next; /* sv_send left it ours */
                waiting = true;
                break;
            }
            o->head = next;
            if (!next)
                o->tail = NULL;
            if (rc < 0) {
                /* The queue process is gone (deleted, or restarting):
                 * publishes are released, the rest no longer matters. */
                fail_publishes(c, m);
                drop_queued(m);
            }
        }
    }
    /* Empty outboxes go, so the map holds only queues with work. */
    for (uint32_t i = 0; i < c->outboxes.cap;) {
        amqp__outbox *o = sv_map_at(&c->outboxes, i);
        if (o && !o->head && !o->pub && !o->settle)
            sv_map_del(&c->outboxes, o->k1, o->k2, NULL); /* may move a later entry here: look again */
        else
            i++;
    }
    return waiting;
}

void amqp__outbox_free_all(amqp__conn *c)
{
    for (uint32_t i = 0; i < c->outboxes.cap; i++) {
        amqp__outbox *o = sv_map_at(&c->outboxes, i);
        if (!o)
            continue;
        ob_seal(o);
        while (o->head) {
            sv_msg *m = o->head;
            o->head = m->next;
            drop_queued(m);
        }
    }
    sv_map_free(&c->outboxes);
}
