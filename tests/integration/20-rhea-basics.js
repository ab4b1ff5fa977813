'use strict';
/* 20: rhea (Node.js AMQP 1.0) against plexus — queues, JSON bodies,
 * request/reply, SASL and refused links. */
const {
    rhea, assert, test, withBroker, openSender, openReceiver, send, receive, expectNothing, closeLink, retry,
    isNullTerminus, within,
} = require('./harness');

const JSON_TYPE = 'application/json';
const DATA = 0x75; /* the AMQP data section (binary body) */

test('a queue keeps the order of what one link sent, stored or live', () => withBroker(async (b) => {
    const conn = await b.connect();
    const snd = await openSender(conn, '/queues/orders');
    const msgs = (from, to) => Array.from({ length: to - from }, (_, i) => ({
        body: `m-${from + i}`, application_properties: { seq: from + i },
    }));
    /* Half go into the queue before anyone consumes (all sent at once,
     * without waiting for each outcome), half while a consumer is there. */
    const first = await Promise.all(msgs(0, 50).map((m) => send(snd, m)));
    assert.deepEqual(first.map((o) => o.state), Array(50).fill('accepted'));
    const rcv = await openReceiver(conn, '/queues/orders');
    const second = await Promise.all(msgs(50, 100).map((m) => send(snd, m)));
    assert.deepEqual(second.map((o) => o.state), Array(50).fill('accepted'));
    const got = await receive(rcv, 100);
    assert.deepEqual(got.map((m) => m.body), msgs(0, 100).map((m) => m.body));
    assert.deepEqual(got.map((m) => m.application_properties.seq), msgs(0, 100).map((_, i) => i));
    await expectNothing(rcv);
}));

test('5000 messages through one queue: each arrives once, in order, as credit cycles', () => withBroker(async (b) => {
    /* More than the broker's publishing credit window (1000) and rhea's
     * consuming one (1000), so both are topped up many times over. */
    const pub = await b.connect();
    const con = await b.connect();
    const snd = await openSender(pub, '/queues/bulk');
    const rcv = await openReceiver(con, '/queues/bulk');
    const N = 5000;
    const CHUNK = 500; /* rhea buffers at most 2048 unsent deliveries per session */
    for (let k = 0; k < N; k += CHUNK) {
        const outs = await Promise.all(Array.from({ length: CHUNK }, (_, i) => send(snd, { body: k + i })));
        const bad = outs.map((o, i) => [k + i, o.state]).filter(([, st]) => st !== 'accepted');
        assert.deepEqual(bad, [], 'every message accepted');
    }
    const got = (await receive(rcv, N, 15000)).map((m) => m.body);
    const wrong = got.findIndex((body, i) => body !== i);
    assert.equal(wrong, -1, `message ${wrong} is ${got[wrong]}`);
    await expectNothing(rcv);
}));

test('a plain address (no leading slash) is the queue of that name', () => withBroker(async (b) => {
    const conn = await b.connect();
    const snd = await openSender(conn, 'examples');
    assert.equal((await send(snd, { body: 'plain to queue' })).state, 'accepted');
    const viaQueues = await openReceiver(conn, '/queues/examples');
    assert.deepEqual((await receive(viaQueues, 1)).map((m) => m.body), ['plain to queue']);
    await closeLink(viaQueues);

    const snd2 = await openSender(conn, '/queues/examples');
    const plain = await openReceiver(conn, 'examples');
    assert.equal((await send(snd2, { body: 'queue to plain' })).state, 'accepted');
    assert.deepEqual((await receive(plain, 1)).map((m) => m.body), ['queue to plain']);
}));

test('a JSON body sent as binary data arrives byte for byte, content type kept', () => withBroker(async (b) => {
    const conn = await b.connect();
    const snd = await openSender(conn, '/queues/json');
    const rcv = await openReceiver(conn, '/queues/json');
    const obj = { id: 42, name: 'Zoë ✓ 日本', price: 1.5, tags: ['a', 'b'], nested: { empty: {}, none: null } };
    /* One as JSON.stringify writes it, and one whose spacing, key order and
     * number spelling a re-encoding would change. */
    const texts = [
        JSON.stringify(obj),
        '{\n  "z": 1.50,\n  "a": [ 1e3, -0 ],\t"s": "\\u00e9 é \\"q\\""\n}\n',
    ];
    for (const text of texts) {
        const out = await send(snd, {
            content_type: JSON_TYPE, subject: 'json', body: rhea.message.data_section(Buffer.from(text, 'utf8')),
        });
        assert.equal(out.state, 'accepted');
    }
    const got = await receive(rcv, texts.length);
    got.forEach((m, i) => {
        assert.equal(m.content_type, JSON_TYPE);
        assert.equal(m.subject, 'json');
        assert.equal(m.body && m.body.typecode, DATA, 'the body must still be a data section');
        const bytes = m.body.content;
        assert.ok(Buffer.isBuffer(bytes), 'the data section holds bytes');
        assert.ok(bytes.equals(Buffer.from(texts[i], 'utf8')),
                  `body changed:\n sent ${JSON.stringify(texts[i])}\n got  ${JSON.stringify(bytes.toString('utf8'))}`);
    });
    assert.deepEqual(JSON.parse(got[0].body.content.toString('utf8')), obj);
}));

test('request/reply through a dynamic reply queue and the anonymous relay', () => withBroker(async (b) => {
    /* The server: consumes /queues/rpc, answers each request's reply_to
     * through an anonymous-relay sender (null target address). */
    const server = await b.connect();
    const requests = await openReceiver(server, '/queues/rpc');
    const relay = await openSender(server, { target: {} });
    assert.ok(relay.target && relay.target.address == null, 'the relay target exists and has no address');
    const seen = [];
    const replied = [];
    requests.on('message', (ctx) => {
        const req = ctx.message;
        seen.push(req);
        const body = JSON.stringify({ echo: JSON.parse(req.body.content.toString('utf8')) });
        replied.push(send(relay, {
            to: req.reply_to,
            correlation_id: req.correlation_id,
            application_properties: req.application_properties,
            content_type: JSON_TYPE,
            body: rhea.message.data_section(Buffer.from(body)),
        }));
    });

    /* The client: a dynamic receiver gets a fresh exclusive queue. */
    const client = await b.connect();
    const replies = await openReceiver(client, { source: { dynamic: true } });
    const replyTo = replies.source && replies.source.address;
    assert.match(String(replyTo), /^\/queues\/amq\.gen-[^/]+$/, 'the attach returns the reply queue');
    const rpc = await openSender(client, '/queues/rpc');
    const calls = [
        { correlation_id: 'req-1', application_properties: { kind: 'ping', n: 1, ok: true, note: 'é' } },
        { correlation_id: 'req-2', application_properties: { kind: 'ping', n: 2, ok: false } },
        { correlation_id: 7, application_properties: { kind: 'numeric-id' } },
    ];
    for (const [i, c] of calls.entries()) {
        const out = await send(rpc, {
            reply_to: replyTo, ...c, content_type: JSON_TYPE,
            body: rhea.message.data_section(Buffer.from(JSON.stringify({ call: i }))),
        });
        assert.equal(out.state, 'accepted');
    }
    const got = await receive(replies, calls.length);
    assert.deepEqual((await Promise.all(replied)).map((o) => o.state), ['accepted', 'accepted', 'accepted']);
    assert.deepEqual(seen.map((m) => m.reply_to), calls.map(() => replyTo));
    got.forEach((m, i) => {
        assert.equal(m.to, replyTo);
        assert.deepEqual(m.correlation_id, calls[i].correlation_id);
        assert.deepEqual(m.application_properties, calls[i].application_properties);
        assert.equal(m.content_type, JSON_TYPE);
        assert.deepEqual(JSON.parse(m.body.content.toString('utf8')), { echo: { call: i } });
    });
    /* The reply queue belongs to the client's connection alone. */
    const other = await b.connect();
    await assert.rejects(openReceiver(other, replyTo), (err) => {
        assert.equal(err.condition, 'amqp:resource-locked');
        return true;
    });
    /* And it goes when its link closes: a late reply finds nothing. */
    await closeLink(replies);
    const late = await retry(() => send(relay, { to: replyTo, body: 'too late' }), (o) => o.state !== 'accepted');
    assert.equal(late.state, 'released', 'a reply to a closed dynamic queue is unroutable');
}));

test('SASL PLAIN guest/guest and ANONYMOUS are let in; the broker offers ANONYMOUS-RELAY', () => withBroker(async (b) => {
    const plain = await b.connect({ username: 'guest', password: 'guest' });
    const caps = [].concat(plain.remote.open.offered_capabilities || []).map(String);
    assert.ok(caps.includes('ANONYMOUS-RELAY'), `offered capabilities: ${JSON.stringify(caps)}`);
    assert.equal(plain.remote.open.properties && plain.remote.open.properties.product, 'plexus');
    const anon = await b.connect({ username: 'anonymous', password: undefined });
    const snd = await openSender(anon, '/queues/sasl');
    assert.equal((await send(snd, { body: 'anonymous was here' })).state, 'accepted');
    const rcv = await openReceiver(plain, '/queues/sasl');
    assert.deepEqual((await receive(rcv, 1)).map((m) => m.body), ['anonymous was here']);
}));

test('a wrong password or an unknown user is refused; the broker goes on', () => withBroker(async (b) => {
    await assert.rejects(b.connect({ username: 'guest', password: 'not-the-password' }), (err) => {
        assert.equal(err.condition, 'amqp:unauthorized-access', err.message);
        return true;
    });
    await assert.rejects(b.connect({ username: 'nobody', password: 'guest' }), (err) => {
        assert.equal(err.condition, 'amqp:unauthorized-access', err.message);
        return true;
    });
    await b.waitLog('authentication failed for guest (PLAIN)');
    await b.waitLog('authentication failed for nobody (PLAIN)');
    assert.ok(!b.log().includes('not-the-password'), 'the password must not be logged');
    const ok = await b.connect();
    const snd = await openSender(ok, '/queues/after-refusal');
    assert.equal((await send(snd, { body: 'still here' })).state, 'accepted');
}));

test('an unknown address is refused with amqp:not-found; the connection stays usable', () => withBroker(async (b) => {
    const conn = await b.connect();
    const refused = [
        ['receiver', '/exchanges/nope'], ['sender', '/exchanges/nope'], ['sender', '/exchanges/nope/key'],
        ['receiver', '/bogus/x'], ['sender', '/bogus/x'], ['receiver', '/queues/'], ['sender', '/queues/a/b'],
    ];
    for (const [kind, addr] of refused) {
        const open = kind === 'sender' ? openSender : openReceiver;
        await assert.rejects(open(conn, addr), (err) => {
            assert.equal(err.condition, 'amqp:not-found', `${kind} ${addr}: ${err.message}`);
            return true;
        }, `${kind} ${addr} must be refused`);
    }
    assert.ok(conn.is_open() && conn.is_remote_open(), 'the connection must stay open');
    const snd = await openSender(conn, '/queues/good');
    const rcv = await openReceiver(conn, '/queues/good');
    assert.equal((await send(snd, { body: 'after the refusals' })).state, 'accepted');
    assert.deepEqual((await receive(rcv, 1)).map((m) => m.body), ['after the refusals']);
    assert.deepEqual(conn.errors, [], 'no connection error');
}));

/* AMQP 1.0 section 2.6.3: a peer that will not create the terminus says
 * so by attaching with that terminus null, then detaching with the error.
 * Clients such as Qpid JMS tell a refusal from a success by it. */
test('a refused link is answered with a null terminus before the detach', () => withBroker(async (b) => {
    const conn = await b.connect();
    const describe = (t) => (isNullTerminus(t) ? 'null' : `a terminus with fields ${JSON.stringify(t.value)}`);
    const attachOf = (link, kind) => within(new Promise((resolve) => {
        link.on(`${kind}_error`, () => {});
        link.on(`${kind}_close`, () => resolve({ attach: link.remote.attach, error: link.error }));
    }), 5000, `the broker to refuse the ${kind} link`);
    const rcv = conn.open_receiver('/exchanges/nope');
    const r = await attachOf(rcv, 'receiver');
    assert.equal(r.error && r.error.condition, 'amqp:not-found');
    assert.ok(r.attach, 'an attach comes before the detach');
    assert.ok(isNullTerminus(r.attach.source), `the broker's source must be null, got ${describe(r.attach.source)}`);
    const snd = conn.open_sender('/bogus/x');
    const s = await attachOf(snd, 'sender');
    assert.equal(s.error && s.error.condition, 'amqp:not-found');
    assert.ok(s.attach, 'an attach comes before the detach');
    assert.ok(isNullTerminus(s.attach.target), `the broker's target must be null, got ${describe(s.attach.target)}`);
}));
