'use strict';
/* 23: rhea asks for settle modes at attach and reads the broker's answer
 * (as go-amqp does, which refuses a link answered otherwise): the answer
 * is the mode asked for, and the link works in it; rcv-settle-mode second
 * on a link that publishes is refused with amqp:not-implemented. */
const { assert, test, withBroker, openSender, openReceiver, send, receive } = require('./harness');

const SND = { unsettled: 0, settled: 1, mixed: 2 };
const RCV = { first: 0, second: 1 };

function answered(link) {
    const a = link.remote.attach;
    return { snd: a.snd_settle_mode, rcv: a.rcv_settle_mode };
}

test('senders get the snd-settle-mode they asked for, and use it', () => withBroker(async (b) => {
    const conn = await b.connect();
    for (const [name, mode] of Object.entries(SND)) {
        const q = `/queues/rhea-modes-${name}`;
        const snd = await openSender(conn, { target: { address: q }, snd_settle_mode: mode, rcv_settle_mode: 0 });
        assert.deepEqual(answered(snd), { snd: mode, rcv: 0 }, `asked ${name}`);
        if (mode === SND.settled) {
            snd.send({ body: name }); /* presettled: no outcome comes back */
        } else {
            const o = await send(snd, { body: name });
            assert.equal(o.state, 'accepted');
        }
        const rcv = await openReceiver(conn, q);
        const got = await receive(rcv, 1);
        assert.deepEqual(got.map((m) => m.body), [name]);
    }
}));

test('receivers get the modes they asked for', () => withBroker(async (b) => {
    const conn = await b.connect();
    for (const [sname, smode] of Object.entries(SND)) {
        for (const [rname, rmode] of Object.entries(RCV)) {
            const rcv = await openReceiver(conn, {
                source: { address: `/queues/rhea-rmodes-${sname}-${rname}` },
                snd_settle_mode: smode,
                rcv_settle_mode: rmode,
            });
            assert.deepEqual(answered(rcv), { snd: smode, rcv: rmode }, `asked ${sname}/${rname}`);
        }
    }
}));

test('rcv-settle-mode second on a publishing link is refused, not changed', () => withBroker(async (b) => {
    const conn = await b.connect();
    await assert.rejects(
        openSender(conn, { target: { address: '/queues/rhea-second' }, snd_settle_mode: 0, rcv_settle_mode: 1 }),
        (e) => e.condition === 'amqp:not-implemented' && /rcv-settle-mode second/.test(e.description || e.message));
}));
