/* registry.c — the table of open connections, for the admin API.
 *
 * The admin API lists connections and closes them by name from its own
 * threads, which are not schedulers. Connections come and go rarely
 * compared with the messages they carry, so a mutex over a list is enough:
 * a connection links its entry in at init and out in terminate, and sets
 * its user and container once, at open, under the same lock. Counters are
 * the exception: they change every round, so the connection keeps plain
 * counts and stores them into atomics once per round (amqp__reg_flush),
 * and readers load those without the lock's help. Channels (sessions) and
 * consumers come and go rarely too: each is an entry under the same lock,
 * hung off its connection's, which takes them with it when it goes.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "amqp/amqp_internal.h"

typedef struct amqp__reg_chan {
    struct amqp__reg_chan *next;
    uint16_t number;
} amqp__reg_chan;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static amqp__reg *head;
static uint32_t count;

static int64_t epoch_ms(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

void amqp__reg_add(amqp__reg *r, sv_pid pid, const char *name)
{
    /* The connection has filled in the addresses. */
    snprintf(r->info.name, sizeof r->info.name, "%s", name);
    snprintf(r->info.protocol, sizeof r->info.protocol, "AMQP 1.0");
    r->info.pid = pid;
    r->info.connected_at = epoch_ms();
    pthread_mutex_lock(&lock);
    r->prev = NULL;
    r->next = head;
    if (head)
        head->prev = r;
    head = r;
    count++;
    pthread_mutex_unlock(&lock);
}

void amqp__reg_remove(amqp__reg *r)
{
    pthread_mutex_lock(&lock);
    bool listed = r->prev || head == r; /* else never added, or removed already */
    if (r->prev)
        r->prev->next = r->next;
    else if (listed)
        head = r->next;
    if (listed && r->next)
        r->next->prev = r->prev;
    if (listed)
        count--;
    r->prev = r->next = NULL;
    /* Its channels and consumers go with it, listed or not. */
    while (r->chans) {
        amqp__reg_chan *ch = r->chans;
        r->chans = ch->next;
        free(ch);
    }
    for (amqp__reg_con *e = r->cons; e; e = e->next)
        e->r = NULL;
    r->cons = NULL;
    r->info.channels = 0;
    pthread_mutex_unlock(&lock);
}

int amqp__reg_chan_open(amqp__reg *r, uint16_t number)
{
    amqp__reg_chan *ch = malloc(sizeof *ch);
    if (!ch)
        return -ENOMEM;
    ch->number = number;
    pthread_mutex_lock(&lock);
    ch->next = r->chans;
    r->chans = ch;
    r->info.channels++;
    pthread_mutex_unlock(&lock);
    return 0;
}

void amqp__reg_chan_close(amqp__reg *r, uint16_t number)
{
    amqp__reg_chan *gone = NULL;
    pthread_mutex_lock(&lock);
    for (amqp__reg_chan **p = &r->chans; *p; p = &(*p)->next)
        if ((*p)->number == number) {
            gone = *p;
            *p = gone->next;
            r->info.channels--;
            break;
        }
    pthread_mutex_unlock(&lock);
    free(gone);
}

void amqp__reg_con_add(amqp__reg *r, amqp__reg_con *e)
{
    pthread_mutex_lock(&lock);
    if (!e->r) {
        e->r = r;
        e->prev = NULL;
        e->next = r->cons;
        if (r->cons)
            r->cons->prev = e;
        r->cons = e;
    }
    pthread_mutex_unlock(&lock);
}

void amqp__reg_con_remove(amqp__reg_con *e)
{
    pthread_mutex_lock(&lock);
    amqp__reg *r = e->r;
    if (r) {
        if (e->prev)
            e->prev->next = e->next;
        else
            r->cons = e->next;
        if (e->next)
            e->next->prev = e->prev;
        e->prev = e->next = NULL;
        e->r = NULL;
    }
    pthread_mutex_unlock(&lock);
}

static void chan_conn(const amqp__reg *r, amqp_chan_conn *o)
{
    memcpy(o->name, r->info.name, sizeof o->name);
    memcpy(o->user, r->info.user, sizeof o->user);
    memcpy(o->peer_host, r->info.peer_host, sizeof o->peer_host);
    o->peer_port = r->info.peer_port;
}

int amqp_channel_list(amqp_channel_info *out, int max)
{
    int n = 0;
    pthread_mutex_lock(&lock);
    for (amqp__reg *r = head; r; r = r->next)
        for (amqp__reg_chan *ch = r->chans; ch; ch = ch->next, n++) {
            if (n >= max)
                continue;
            chan_conn(r, &out[n].conn);
            out[n].number = ch->number;
            out[n].consumers = 0;
            for (amqp__reg_con *e = r->cons; e; e = e->next)
                out[n].consumers += e->channel == ch->number;
        }
    pthread_mutex_unlock(&lock);
    return n;
}

int amqp_consumer_list(amqp_consumer_info *out, int max)
{
    int n = 0;
    pthread_mutex_lock(&lock);
    for (amqp__reg *r = head; r; r = r->next)
        for (amqp__reg_con *e = r->cons; e; e = e->next, n++) {
            if (n >= max)
                continue;
            chan_conn(r, &out[n].conn);
            out[n].channel = e->channel;
            memcpy(out[n].tag, e->tag, sizeof out[n].tag);
            snprintf(out[n].queue, sizeof out[n].queue, "%s", e->queue);
            out[n].ack_required = e->ack_required;
            out[n].exclusive = e->exclusive;
            out[n].credit = atomic_load_explicit(&e->credit, memory_order_relaxed);
        }
    pthread_mutex_unlock(&lock);
    return n;
}

void amqp__reg_opened(amqp__reg *r, const char *user, const char *container, const char *mech)
{
    pthread_mutex_lock(&lock);
    snprintf(r->info.user, sizeof r->info.user, "%s", user ? user : "");
    snprintf(r->info.container, sizeof r->info.container, "%s", container ? container : "");
    snprintf(r->info.auth_mechanism, sizeof r->info.auth_mechanism, "%s", mech ? mech : "");
    r->info.opened = true;
    pthread_mutex_unlock(&lock);
}

void amqp__reg_protocol(amqp__reg *r, const char *protocol)
{
    pthread_mutex_lock(&lock);
    snprintf(r->info.protocol, sizeof r->info.protocol, "%s", protocol);
    pthread_mutex_unlock(&lock);
}

void amqp__reg_flush(amqp__reg *r, const amqp__counts *n)
{
    atomic_store_explicit(&r->recv_oct, n->recv_oct, memory_order_relaxed);
    atomic_store_explicit(&r->send_oct, n->send_oct, memory_order_relaxed);
    atomic_store_explicit(&r->recv_cnt, n->recv_cnt, memory_order_relaxed);
    atomic_store_explicit(&r->send_cnt, n->send_cnt, memory_order_relaxed);
    atomic_store_explicit(&r->links, n->links, memory_order_relaxed);
}

int amqp_conn_list(amqp_conn_info *out, int max)
{
    pthread_mutex_lock(&lock);
    int i = 0;
    for (amqp__reg *r = head; r && i < max; r = r->next, i++) {
        out[i] = r->info;
        out[i].recv_oct = atomic_load_explicit(&r->recv_oct, memory_order_relaxed);
        out[i].send_oct = atomic_load_explicit(&r->send_oct, memory_order_relaxed);
        out[i].recv_cnt = atomic_load_explicit(&r->recv_cnt, memory_order_relaxed);
        out[i].send_cnt = atomic_load_explicit(&r->send_cnt, memory_order_relaxed);
        out[i].links = atomic_load_explicit(&r->links, memory_order_relaxed);
    }
    int n = (int)count;
    pthread_mutex_unlock(&lock);
    return n;
}

int amqp_conn_close(const char *name, const char *reason)
{
    sv_pid pid = SV_PID_NONE;
    pthread_mutex_lock(&lock);
    for (amqp__reg *r = head; r; r = r->next)
        if (strcmp(r->info.name, name) == 0) {
            pid = r->info.pid;
            break;
        }
    pthread_mutex_unlock(&lock);
    if (sv_pid_is_none(pid))
        return -ENOENT;
    if (!reason || !*reason)
        reason = "closed by an administrator";
    /* Not counted against its mailbox bound: an operator's close must get
     * through to a connection that is busy. */
    sv_msg *m = sv_msg_new(AMQP__TAG_CLOSE, reason, strnlen(reason, 255));
    if (!m)
        return -ENOMEM;
    int rc = sv_send_owed(pid, m);
    if (rc < 0)
        sv_msg_free(m);
    return rc == -ESRCH ? -ENOENT : rc;
}
