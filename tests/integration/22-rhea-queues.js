'use strict';
/* 22: rhea against plexus — queue arguments given as attach properties
 * (max-length and overflow, message TTL, dead-lettering) and consumer
 * credit. */
const {
    assert, test, withBroker, openSender, openReceiver, send, sendAll, receive, expectNothing, retry, sleep,
} = require('./harness');

const bodies = (msgs) => msgs.map((m) => m.body);

test('max-length 2 with reject-publish: the third message is rejected', () => withBroker(async (b) => {
    const conn = await b.connect();
    const snd = await openSender(conn, {
        target: { address: '/queues/limited' },
        properties: { 'x-max-length': 2, 'x-overflow': 'reject-publish' },
    });
    const outcomes = [];
    for (const body of ['m1', 'm2', 'm3'])
        outcomes.push(await send(snd, { body }));
    assert.deepEqual(outcomes.map((o) => o.state), ['accepted', 'accepted', 'rejected']);
    assert.equal(outcomes[2].error && outcomes[2].error.condition, 'amqp:resource-limit-exceeded');
    /* The link goes on: still full, still rejected. */
    assert.equal((await send(snd, { body: 'm3 again' })).state, 'rejected');

    const rcv = await openReceiver(conn, '/queues/limited');
    assert.deepEqual(bodies(await receive(rcv, 2)), ['m1', 'm2']);
    await expectNothing(rcv);
    /* Once those are accepted there is room again. */
    const out = await retry(() => send(snd, { body: 'm4' }), (o) => o.state === 'accepted');
    assert.equal(out.state, 'accepted', 'room again after the consumer accepted');
    assert.deepEqual(bodies(await receive(rcv, 1)), ['m4']);
    await expectNothing(rcv);
}));

test('max-length 2 with drop-head: the oldest make room', () => withBroker(async (b) => {
    const conn = await b.connect();
    const snd = await openSender(conn, {
        target: { address: '/queues/dropping' },
        properties: { 'x-max-length': 2, 'x-overflow': 'drop-head' },
    });
    assert.deepEqual(await sendAll(snd, ['d1', 'd2', 'd3', 'd4'].map((body) => ({ body }))),
                     ['accepted', 'accepted', 'accepted', 'accepted']);
    const rcv = await openReceiver(conn, '/queues/dropping');
    assert.deepEqual(bodies(await receive(rcv, 2)), ['d3', 'd4']);
    await expectNothing(rcv);
}));

test('a receiving link that creates a queue gives its arguments too', () => withBroker(async (b) => {
    const conn = await b.connect();
    const rcv = await openReceiver(conn, {
        source: { address: '/queues/made-by-consumer' }, credit_window: 0,
        properties: { 'x-max-length': 1, 'x-overflow': 'reject-publish' },
    });
    const snd = await openSender(conn, '/queues/made-by-consumer');
    const outs = await sendAll(snd, [{ body: 'fits' }, { body: 'does not fit' }]);
    assert.deepEqual(outs, ['accepted', 'rejected']);
    rcv.add_credit(5);
    assert.deepEqual(bodies(await receive(rcv, 1)), ['fits']);
    await expectNothing(rcv);
}));

test('a bad queue argument refuses the link that would create the queue', () => withBroker(async (b) => {
    const conn = await b.connect();
    await assert.rejects(openSender(conn, {
        target: { address: '/queues/bad-args' }, properties: { 'x-overflow': 'explode' },
    }), (err) => {
        assert.equal(err.condition, 'amqp:invalid-field', err.message);
        return true;
    });
    const ok = await openSender(conn, '/queues/bad-args');
    assert.equal((await send(ok, { body: 'created without arguments' })).state, 'accepted');
}));

test('credit: a receiver with no credit window gets exactly what it asks for', () => withBroker(async (b) => {
    const conn = await b.connect();
    const snd = await openSender(conn, '/queues/credit');
    assert.deepEqual(await sendAll(snd, [{ body: 'c1' }, { body: 'c2' }, { body: 'c3' }]),
                     ['accepted', 'accepted', 'accepted']);
    const rcv = await openReceiver(conn, { source: { address: '/queues/credit' }, credit_window: 0 });
    await expectNothing(rcv, 300); /* no credit, nothing sent */
    rcv.add_credit(1);
    assert.deepEqual(bodies(await receive(rcv, 1)), ['c1']);
    await expectNothing(rcv, 500);
    rcv.add_credit(2);
    assert.deepEqual(bodies(await receive(rcv, 2)), ['c2', 'c3']);
    await expectNothing(rcv);
    /* Credit given while the queue is empty is used by the next message. */
    rcv.add_credit(1);
    assert.equal((await send(snd, { body: 'c4' })).state, 'accepted');
    assert.deepEqual(bodies(await receive(rcv, 1)), ['c4']);
}));

test('two consumers on one queue share it, each message to one of them', () => withBroker(async (b) => {
    const conn = await b.connect();
    const r1 = await openReceiver(conn, { source: { address: '/queues/shared' }, credit_window: 0 });
    const r2 = await openReceiver(conn, { source: { address: '/queues/shared' }, credit_window: 0 });
    r1.add_credit(2);
    r2.add_credit(2);
    const snd = await openSender(conn, '/queues/shared');
    const sent = ['s1', 's2', 's3', 's4'];
    assert.deepEqual(await sendAll(snd, sent.map((body) => ({ body }))), Array(4).fill('accepted'));
    const got = [...bodies(await receive(r1, 2)), ...bodies(await receive(r2, 2))];
    assert.deepEqual([...got].sort(), sent, 'each message exactly once');
    await expectNothing(r1);
    await expectNothing(r2, 0);
}));

test('message TTL: an expired message is dead-lettered to its exchange and key', () => withBroker(async (b) => {
    const conn = await b.connect();
    const dead = await openReceiver(conn, '/exchanges/amq.direct/dead');
    const snd = await openSender(conn, {
        target: { address: '/queues/short-lived' },
        properties: {
            'x-message-ttl': 200, 'x-dead-letter-exchange': 'amq.direct', 'x-dead-letter-routing-key': 'dead',
        },
    });
    const started = Date.now();
    assert.equal((await send(snd, { body: 'expires', application_properties: { id: 1 } })).state, 'accepted');
    const [m] = await receive(dead, 1, 5000);
    const waited = Date.now() - started;
    assert.equal(m.body, 'expires');
    assert.deepEqual(m.application_properties, { id: 1 });
    assert.ok(waited >= 150, `dead-lettered after ${waited} ms, before the 200 ms TTL`);
    const rcv = await openReceiver(conn, '/queues/short-lived');
    await expectNothing(rcv);
    await expectNothing(dead, 0);
}));

test('a message\'s own ttl expires it too; without a dead-letter exchange it is gone', () => withBroker(async (b) => {
    const conn = await b.connect();
    const snd = await openSender(conn, '/queues/own-ttl');
    assert.deepEqual(await sendAll(snd, [{ body: 'brief', ttl: 100 }, { body: 'lasting' }]),
                     ['accepted', 'accepted']);
    await sleep(400);
    const rcv = await openReceiver(conn, '/queues/own-ttl');
    assert.deepEqual(bodies(await receive(rcv, 1)), ['lasting']);
    await expectNothing(rcv);
}));

test('a message a consumer rejects is dead-lettered', () => withBroker(async (b) => {
    const conn = await b.connect();
    const dead = await openReceiver(conn, '/exchanges/amq.fanout');
    const snd = await openSender(conn, {
        target: { address: '/queues/picky' }, properties: { 'x-dead-letter-exchange': 'amq.fanout' },
    });
    assert.equal((await send(snd, { body: 'unwanted' })).state, 'accepted');
    /* No credit until the handler that rejects is in place. */
    const rcv = await openReceiver(conn, { source: { address: '/queues/picky' }, autoaccept: false, credit_window: 0 });
    rcv.on('message', (ctx) => ctx.delivery.reject({ condition: 'amqp:precondition-failed', description: 'no' }));
    rcv.add_credit(1);
    assert.deepEqual(bodies(await receive(rcv, 1)), ['unwanted']);
    assert.deepEqual(bodies(await receive(dead, 1)), ['unwanted']);
    await expectNothing(rcv, 0);
}));
