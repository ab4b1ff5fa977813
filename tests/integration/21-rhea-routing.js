'use strict';
/* 21: rhea against plexus — exchanges and subscriptions: the anonymous
 * relay, topic, fanout, direct and headers exchanges, unroutable messages. */
const {
    rhea, assert, test, withBroker, openSender, openReceiver, send, sendAll, receive, expectNothing, closeLink,
    retry, sleep,
} = require('./harness');

const bodies = (msgs) => msgs.map((m) => m.body);

test('the anonymous relay delivers by each message\'s `to`: queues and exchanges', () => withBroker(async (b) => {
    const conn = await b.connect();
    const relay = await openSender(conn, { target: {} });
    const queue = await openReceiver(conn, '/queues/relayed');
    const plain = await openReceiver(conn, 'relayed-plain');
    const direct = await openReceiver(conn, '/exchanges/amq.direct/rk');
    const topic = await openReceiver(conn, '/exchanges/amq.topic/news.*');
    const outcomes = await sendAll(relay, [
        { to: '/queues/relayed', body: 'to a queue' },
        { to: 'relayed-plain', body: 'to a plain queue name' },
        { to: '/exchanges/amq.direct/rk', body: 'to an exchange with a key' },
        { to: '/exchanges/amq.topic', subject: 'news.sport', body: 'to an exchange, key from the subject' },
        { to: '/exchanges/amq.direct/nobody', body: 'to a key nobody is bound with' },
    ]);
    assert.deepEqual(outcomes, ['accepted', 'accepted', 'accepted', 'accepted', 'released']);
    assert.deepEqual(bodies(await receive(queue, 1)), ['to a queue']);
    assert.deepEqual(bodies(await receive(plain, 1)), ['to a plain queue name']);
    const [d] = await receive(direct, 1);
    assert.equal(d.body, 'to an exchange with a key');
    assert.equal(d.to, '/exchanges/amq.direct/rk', '`to` is delivered as sent');
    const [t] = await receive(topic, 1);
    assert.equal(t.body, 'to an exchange, key from the subject');
    assert.equal(t.subject, 'news.sport');
    for (const r of [queue, plain, direct, topic])
        await expectNothing(r, 50);
}));

test('the anonymous relay rejects a message whose `to` is missing or names nothing', () => withBroker(async (b) => {
    const conn = await b.connect();
    const relay = await openSender(conn, { target: {} });
    const cases = [
        [{ body: 'no to at all' }, 'amqp:precondition-failed'],
        [{ to: '/bogus/x', body: 'bad prefix' }, 'amqp:not-found'],
        [{ to: '/exchanges/nope/k', body: 'no such exchange' }, 'amqp:not-found'],
    ];
    for (const [msg, condition] of cases) {
        const out = await send(relay, msg);
        assert.equal(out.state, 'rejected', `${msg.body}: ${out.state}`);
        assert.equal(out.error && out.error.condition, condition, msg.body);
    }
    /* The link is still good afterwards. */
    const rcv = await openReceiver(conn, '/queues/still-good');
    assert.equal((await send(relay, { to: '/queues/still-good', body: 'fine' })).state, 'accepted');
    assert.deepEqual(bodies(await receive(rcv, 1)), ['fine']);
}));

test('topic subscriptions: a.* takes one word, a.# zero or more', () => withBroker(async (b) => {
    const conn = await b.connect();
    const star = await openReceiver(conn, '/exchanges/amq.topic/a.*');
    const hash = await openReceiver(conn, '/exchanges/amq.topic/a.#');
    const all = await openReceiver(conn, '/exchanges/amq.topic/#');
    const bySubject = await openSender(conn, '/exchanges/amq.topic');
    const keys = ['a', 'a.b', 'a.b.c', 'b.a', 'ab.c', 'a.bc'];
    const outcomes = await sendAll(bySubject, keys.map((k) => ({ subject: k, body: k })));
    assert.deepEqual(outcomes, Array(keys.length).fill('accepted'));
    /* With a fixed key in the address instead of the subject. */
    const fixed = await openSender(conn, '/exchanges/amq.topic/a.z');
    assert.equal((await send(fixed, { body: 'a.z' })).state, 'accepted');

    assert.deepEqual(bodies(await receive(star, 3)), ['a.b', 'a.bc', 'a.z']);
    assert.deepEqual(bodies(await receive(hash, 5)), ['a', 'a.b', 'a.b.c', 'a.bc', 'a.z']);
    assert.deepEqual(bodies(await receive(all, 7)), [...keys, 'a.z']);
    await expectNothing(star);
    await expectNothing(hash, 0);
    await expectNothing(all, 0);

    /* Once the only catch-all is gone (its queue is deleted after the
     * detach is answered, so allow a moment), a key nobody matches is
     * released. */
    await closeLink(all);
    const out = await retry(() => send(bySubject, { subject: 'b.a', body: 'nobody' }), (o) => o.state === 'released');
    assert.equal(out.state, 'released');
}));

test('fanout: every subscriber gets its own copy, in order', () => withBroker(async (b) => {
    const c1 = await b.connect();
    const c2 = await b.connect();
    const s1 = await openReceiver(c1, '/exchanges/amq.fanout');
    const s2 = await openReceiver(c2, '/exchanges/amq.fanout/the-key-is-ignored');
    const pub = await openSender(c1, '/exchanges/amq.fanout/any');
    const outcomes = await sendAll(pub, [{ body: 'f1' }, { body: 'f2' }, { body: 'f3' }]);
    assert.deepEqual(outcomes, ['accepted', 'accepted', 'accepted']);
    assert.deepEqual(bodies(await receive(s1, 3)), ['f1', 'f2', 'f3']);
    assert.deepEqual(bodies(await receive(s2, 3)), ['f1', 'f2', 'f3']);
    /* A subscription ends with its link; the other one goes on. */
    await closeLink(s1);
    assert.equal((await send(pub, { body: 'f4' })).state, 'accepted');
    assert.deepEqual(bodies(await receive(s2, 1)), ['f4']);
    await expectNothing(s2);
}));

test('direct exchange: the key picks the subscribers', () => withBroker(async (b) => {
    const conn = await b.connect();
    const k1a = await openReceiver(conn, '/exchanges/amq.direct/k1');
    const k1b = await openReceiver(conn, '/exchanges/amq.direct/k1');
    const k2 = await openReceiver(conn, '/exchanges/amq.direct/k2');
    const toK1 = await openSender(conn, '/exchanges/amq.direct/k1');
    const bySubject = await openSender(conn, '/exchanges/amq.direct');
    assert.equal((await send(toK1, { body: 'for k1' })).state, 'accepted');
    assert.equal((await send(bySubject, { subject: 'k2', body: 'for k2' })).state, 'accepted');
    assert.equal((await send(bySubject, { subject: 'k3', body: 'for k3' })).state, 'released');
    assert.deepEqual(bodies(await receive(k1a, 1)), ['for k1']);
    assert.deepEqual(bodies(await receive(k1b, 1)), ['for k1']);
    assert.deepEqual(bodies(await receive(k2, 1)), ['for k2']);
    for (const r of [k1a, k1b, k2])
        await expectNothing(r, 100);
}));

test('headers exchange: a binding filter matches application properties', () => withBroker(async (b) => {
    const conn = await b.connect();
    const headers = (map) => ({ headers: rhea.types.wrap_described(map, 0x0000468C00000002) });
    const all = await openReceiver(conn, {
        source: { address: '/exchanges/amq.headers', filter: headers({ 'x-match': 'all', color: 'red', size: 'L' }) },
    });
    const any = await openReceiver(conn, {
        source: { address: '/exchanges/amq.headers', filter: headers({ 'x-match': 'any', color: 'red', shape: 'round' }) },
    });
    const pub = await openSender(conn, '/exchanges/amq.headers');
    const msgs = [
        { body: 'red L', application_properties: { color: 'red', size: 'L' } },
        { body: 'red', application_properties: { color: 'red' } },
        { body: 'round', application_properties: { shape: 'round', size: 'L' } },
        { body: 'blue', application_properties: { color: 'blue' } },
    ];
    assert.deepEqual(await sendAll(pub, msgs), ['accepted', 'accepted', 'accepted', 'released']);
    assert.deepEqual(bodies(await receive(all, 1)), ['red L']);
    assert.deepEqual(bodies(await receive(any, 3)), ['red L', 'red', 'round']);
    await expectNothing(all);
    await expectNothing(any, 0);
}));

test('unroutable messages are settled released', () => withBroker(async (b) => {
    const conn = await b.connect();
    const cases = [
        ['/exchanges/amq.direct/nobody', {}],
        ['/exchanges/amq.direct', { subject: 'nobody' }],
        ['/exchanges/amq.direct', {}],
        ['/exchanges/amq.fanout', {}],
        ['/exchanges/amq.topic', { subject: 'x.y' }],
        ['/exchanges/amq.topic/x.y', {}],
    ];
    for (const [addr, extra] of cases) {
        const snd = await openSender(conn, addr);
        const out = await send(snd, { body: 'lost', ...extra });
        assert.equal(out.state, 'released', `${addr} ${JSON.stringify(extra)}`);
    }
    /* Released is an outcome, not an error: the link takes more. */
    const snd = await openSender(conn, '/exchanges/amq.fanout');
    assert.deepEqual(await sendAll(snd, [{ body: 1 }, { body: 2 }]), ['released', 'released']);
    const sub = await openReceiver(conn, '/exchanges/amq.fanout');
    assert.equal((await send(snd, { body: 3 })).state, 'accepted');
    assert.deepEqual(bodies(await receive(sub, 1)), [3]);
}));

/* A subscription's queue is deleted when its connection goes, a few
 * messages between processes later. A broker told to stop (SIGTERM) while
 * those deletions are under way must still stop cleanly, with status 0.
 * Many subscriptions and a quiet moment first (idle schedulers wake more
 * slowly) make the window wide; ten rounds make missing it unlikely. */
test('a broker stopped just as 30 subscribers leave still exits 0 (10 rounds)', async () => {
    for (let round = 1; round <= 10; round++) {
        try {
            await withBroker(async (b) => {
                const conn = await b.connect();
                await Promise.all(Array.from({ length: 30 },
                                             (_, i) => openReceiver(conn, `/exchanges/amq.direct/k${i}`)));
                await sleep(300);
                /* withBroker now closes the connection and sends SIGTERM at once. */
            });
        } catch (e) {
            e.message = `round ${round}: ${e.message}`;
            throw e;
        }
    }
});
