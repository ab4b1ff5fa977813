'use strict';
/* harness.js — start the real bin/plexus on free loopback ports for a
 * Node.js test, and drive it with the rhea AMQP 1.0 client.
 *
 * The JavaScript twin of harness.py: each test gets its own broker, data
 * directory and log file; the broker's output goes to the log, which is
 * added to the error of a failing test. Every wait has a time limit, so a
 * test fails with a message saying what it waited for instead of hanging.
 *
 *   const { test, withBroker } = require('./harness');
 *   test('name', (t) => withBroker(async (b) => {
 *       const conn = await b.connect();            // guest/guest (SASL PLAIN)
 *       const snd = await openSender(conn, '/queues/q');
 *       ...
 *   }));
 *
 * withBroker stops the broker with SIGTERM at the end and fails the test
 * unless it exits 0. Written for Node.js 18 (Debian 12) and later.
 */
const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');
const nodeTest = require('node:test');
const rhea = require('rhea');

const PLEXUS = process.env.PLEXUS_BIN || path.join(__dirname, '..', '..', 'bin', 'plexus');

/* How long one test's body may take (the broker's start and stop come on
 * top), and how long one wait may take. */
const TEST_TIMEOUT_MS = 20000;
const WAIT_MS = 5000;
/* Past this the whole file is stopped, whatever is still pending. */
const FILE_TIMEOUT_MS = Number(process.env.PLEXUS_TEST_FILE_TIMEOUT_MS) || 120000;

/* Brokers still running, killed if the process exits early. */
const running = new Set();
process.on('exit', () => {
    for (const child of running) {
        try {
            child.kill('SIGKILL');
        } catch (e) {
            /* already gone */
        }
    }
});
const watchdog = setTimeout(() => {
    const handles = process.getActiveResourcesInfo ? process.getActiveResourcesInfo() : [];
    process.stderr.write(`harness: ${path.basename(process.argv[1] || '?')} still running after ` +
                         `${FILE_TIMEOUT_MS} ms (still open: ${handles.join(', ') || 'nothing'}); stopping it\n`);
    process.exit(1);
}, FILE_TIMEOUT_MS);
watchdog.unref(); /* only fires if something else keeps the process alive */

/* test(name, fn) from node:test (Node 18+), with a time limit that leaves
 * withBroker room to stop the broker and report its log first. */
function test(name, fn, timeout = TEST_TIMEOUT_MS + 25000) {
    return nodeTest(name, { timeout }, fn);
}

/* A free loopback port (freed again at once: the broker binds it next). */
/* n free loopback ports, all different: each listener stays open until
 * all n are taken (two taken one after the other could be the same). */
async function freePorts(n) {
    const servers = [];
    try {
        for (let i = 0; i < n; i++) {
            const srv = net.createServer();
            srv.unref();
            await new Promise((resolve, reject) => {
                srv.on('error', reject);
                srv.listen(0, '127.0.0.1', resolve);
            });
            servers.push(srv);
        }
        return servers.map((srv) => srv.address().port);
    } finally {
        await Promise.all(servers.map((srv) => new Promise((resolve) => srv.close(resolve))));
    }
}

async function freePort() {
    return (await freePorts(1))[0];
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/* Resolves as promise does, or rejects after ms saying what was awaited. */
function within(promise, ms, what) {
    let timer;
    const limit = new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
    });
    return Promise.race([promise, limit]).finally(() => clearTimeout(timer));
}

let nextId = 0;

class Broker {
    constructor(extraArgs = []) {
        this.tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'plexus-test-'));
        this.dataDir = path.join(this.tmp, 'data');
        this.logPath = path.join(this.tmp, 'plexus.log');
        this.extraArgs = extraArgs;
        this.connections = [];
        this.proc = null;
        this.exitCode = undefined;
    }

    async start() {
        [this.port, this.adminPort] = await freePorts(2);
        this.args = ['--listen', `127.0.0.1:${this.port}`, '--admin', `127.0.0.1:${this.adminPort}`,
                     '--data-dir', this.dataDir, ...this.extraArgs];
        const fd = fs.openSync(this.logPath, 'a');
        try {
            this.proc = spawn(PLEXUS, this.args, { stdio: ['ignore', fd, fd] });
        } finally {
            fs.closeSync(fd);
        }
        running.add(this.proc);
        this.exited = new Promise((resolve) => {
            this.proc.on('error', (err) => {
                this.spawnError = err;
                running.delete(this.proc);
                resolve(null);
            });
            this.proc.on('exit', (code, signal) => {
                running.delete(this.proc);
                this.exitCode = code;
                this.exitSignal = signal;
                resolve(code);
            });
        });
        await this.waitLog('started', 10000);
        return this;
    }

    log() {
        try {
            return fs.readFileSync(this.logPath, 'utf8');
        } catch (e) {
            return `(no log: ${e.message})`;
        }
    }

    alive() {
        return this.proc && this.exitCode === undefined && !this.spawnError;
    }

    async waitLog(text, ms = WAIT_MS) {
        const deadline = Date.now() + ms;
        for (;;) {
            if (this.log().includes(text))
                return;
            if (this.spawnError)
                throw new Error(`cannot start ${PLEXUS}: ${this.spawnError.message}`);
            if (!this.alive())
                throw new Error(`plexus exited (${this.exitCode ?? this.exitSignal}) before '${text}' ` +
                                `appeared in its log`);
            if (Date.now() > deadline)
                throw new Error(`no '${text}' in the plexus log within ${ms} ms`);
            await sleep(20);
        }
    }

    /* Sends signal and waits for the broker to exit; returns its exit code
     * (null if a signal ended it). Kills it if it does not stop in time. */
    async stop(signal = 'SIGTERM', ms = 10000) {
        if (this.alive()) {
            this.proc.kill(signal);
            try {
                await within(this.exited, ms, `plexus to exit after ${signal}`);
            } catch (e) {
                this.proc.kill('SIGKILL');
                await this.exited;
                throw e;
            }
        }
        await this.exited;
        return this.exitCode;
    }

    cleanup() {
        fs.rmSync(this.tmp, { recursive: true, force: true });
    }

    /* Opens an AMQP connection (SASL PLAIN as guest/guest unless options say
     * otherwise); resolves when the broker's open arrives, rejects with the
     * connection's error (its .condition set where AMQP gave one) if it is
     * refused or the socket closes first. */
    connect(options = {}) {
        const container = rhea.create_container({ id: `plexus-test-${process.pid}-${++nextId}` });
        const opts = { host: '127.0.0.1', port: this.port, username: 'guest', password: 'guest',
                       reconnect: false, ...options };
        const conn = container.connect(opts);
        this.connections.push(conn);
        conn.setMaxListeners(0); /* every link the harness opens watches for 'disconnected' */
        conn.errors = [];
        /* Errors nobody else handles end up on the container: keep them
         * (an 'error' event without a listener would throw). */
        container.on('error', (err) => conn.errors.push(err));
        container.on('disconnected', () => {});
        const opened = new Promise((resolve, reject) => {
            conn.once('connection_open', () => resolve(conn));
            const fail = (ctx) => {
                const err = ctx.error || conn.error || (ctx.connection && ctx.connection.error);
                reject(asError(err, 'the connection was refused'));
            };
            conn.on('connection_error', (ctx) => {
                conn.errors.push(ctx.error || conn.error);
                fail(ctx);
            });
            conn.on('connection_close', () => {});
            conn.on('disconnected', fail);
        });
        return within(opened, WAIT_MS, `the AMQP connection to 127.0.0.1:${this.port} to open`);
    }

    /* Closes every connection this broker's test opened: politely, then by
     * ending the socket if the broker does not answer. */
    async closeClients() {
        await Promise.all(this.connections.map(async (conn) => {
            if (!conn.socket || conn.socket.destroyed)
                return;
            const closed = new Promise((resolve) => {
                conn.once('connection_close', resolve);
                conn.once('disconnected', resolve);
                conn.socket.once('close', resolve);
            });
            try {
                if (conn.is_open())
                    conn.close();
                await within(closed, 2000, 'the connection to close');
            } catch (e) {
                /* fall through: end it */
            }
            /* With an error, so rhea sees the socket go and stops its
             * heartbeat timer (which would keep the process alive). */
            if (conn.socket && !conn.socket.destroyed)
                conn.socket.destroy(new Error('closed by the test harness'));
        }));
        this.connections = [];
    }
}

/* An Error carrying an AMQP error's condition and description. */
function asError(amqpError, fallback) {
    if (amqpError instanceof Error)
        return amqpError; /* rhea's ConnectionError has .condition already */
    const err = new Error(amqpError && amqpError.description ? amqpError.description : fallback);
    if (amqpError && amqpError.condition)
        err.condition = amqpError.condition;
    return err;
}

/* Runs fn(broker) against a fresh broker (extra command-line args in
 * options.args); afterwards closes the clients, stops the broker with
 * SIGTERM and requires exit status 0. On failure the broker's log is
 * added to the error. */
async function withBroker(fn, options = {}) {
    const b = new Broker(options.args || []);
    let failure = null;
    try {
        await b.start();
        await within(Promise.resolve().then(() => fn(b)), options.timeout || TEST_TIMEOUT_MS, 'the test');
    } catch (e) {
        failure = e instanceof Error ? e : new Error(String(e));
    }
    await b.closeClients();
    try {
        const code = await b.stop('SIGTERM');
        if (!failure && code !== 0)
            failure = new Error(`plexus exited with ${code ?? 'signal ' + b.exitSignal} after SIGTERM (want 0)`);
    } catch (e) {
        failure = failure || e;
    }
    if (failure) {
        const log = b.log();
        b.cleanup();
        try {
            failure.message += `\n--- plexus log (${b.args ? b.args.join(' ') : PLEXUS}) ---\n${log}--- end of log ---`;
        } catch (e) {
            process.stderr.write(`--- plexus log ---\n${log}--- end of log ---\n`);
        }
        throw failure;
    }
    b.cleanup();
}

/* ------------------------------------------------------------- links */

/* Whether a terminus rhea reports (link.source, link.target) is null: rhea
 * gives a null one as a typed null (.value null), a real one as an object
 * holding its fields. */
function isNullTerminus(t) {
    return t === null || t === undefined || t.value === null || t.value === undefined;
}

function attach(conn, kind, opts) {
    const link = kind === 'sender' ? conn.open_sender(opts) : conn.open_receiver(opts);
    const terminus = kind === 'sender' ? 'target' : 'source';
    if (kind === 'receiver') {
        /* Installed before any frame can arrive, so nothing is missed. */
        link.received = [];
        link.waiters = [];
        link.on('message', (ctx) => {
            link.received.push(ctx.message);
            for (const w of link.waiters.splice(0))
                w();
        });
    }
    const addr = typeof opts === 'string' ? opts
        : opts && opts[terminus] ? JSON.stringify(opts[terminus]) : `(no ${terminus})`;
    link.describe = `the ${kind} link ${addr}`;
    const opened = new Promise((resolve, reject) => {
        link.on(`${kind}_open`, () => {
            /* A refusal is an attach (with a null terminus, AMQP 1.0
             * 2.6.3) followed at once by a detach with the error: wait for
             * that on a null terminus, and otherwise let the rest of this
             * read be handled first, so a detach sent together with the
             * attach still counts as a refusal. */
            if (!isNullTerminus(link[terminus]))
                setImmediate(() => resolve(link));
        });
        link.on(`${kind}_error`, () => {}); /* handled by the close that follows */
        link.on(`${kind}_close`, () => reject(asError(link.error, `${link.describe} was closed by the broker`)));
        conn.on('disconnected', () => reject(new Error(`the connection ended before the ${kind} link opened`)));
    });
    return within(opened, WAIT_MS, `${link.describe} to attach`);
}

/* Attaches a sending link; opts is rhea's (a target address string, or
 * { target, properties, ... }). Rejects with the broker's error (its
 * .condition, e.g. 'amqp:not-found') if the link is refused. */
const openSender = (conn, opts) => attach(conn, 'sender', opts);
/* The same for a receiving link; its messages collect in link.received. */
const openReceiver = (conn, opts) => attach(conn, 'receiver', opts);

function outcomeOf(delivery) {
    const state = delivery.remote_state;
    return {
        state: state && state.constructor.composite_type ? state.constructor.composite_type : String(state),
        error: state && state.error ? state.error : undefined,
        delivery,
    };
}

/* Sends msg and resolves with its outcome when the broker settles it:
 * { state: 'accepted' | 'rejected' | 'released' | 'modified', error }. */
function send(sender, msg, ms = WAIT_MS) {
    if (!sender.pending) {
        sender.pending = new Map();
        sender.on('settled', (ctx) => {
            const resolve = sender.pending.get(ctx.delivery);
            if (resolve) {
                sender.pending.delete(ctx.delivery);
                resolve(outcomeOf(ctx.delivery));
            }
        });
    }
    return within(new Promise((resolve) => {
        const delivery = sender.send(msg); /* rhea holds it until there is credit */
        sender.pending.set(delivery, resolve);
    }), ms, `the broker to settle a message sent on ${sender.describe || 'a sender'}`);
}

/* Sends each message in turn and returns the outcomes' states. */
async function sendAll(sender, msgs) {
    const out = [];
    for (const m of msgs)
        out.push((await send(sender, m)).state);
    return out;
}

/* Resolves with the first n messages the receiver gets (all it has had so
 * far count), or fails saying how many came. */
async function receive(receiver, n, ms = WAIT_MS) {
    const deadline = Date.now() + ms;
    while (receiver.received.length < n) {
        const left = deadline - Date.now();
        if (left <= 0)
            throw new Error(`got ${receiver.received.length} of ${n} messages within ${ms} ms: ` +
                            JSON.stringify(receiver.received.map((m) => m.body)));
        await new Promise((resolve) => {
            const timer = setTimeout(resolve, left);
            receiver.waiters.push(() => {
                clearTimeout(timer);
                resolve();
            });
        });
    }
    return receiver.received.splice(0, n);
}

/* Waits ms and fails if the receiver got anything meanwhile (or had
 * something not yet taken with receive). */
async function expectNothing(receiver, ms = 300) {
    await sleep(ms);
    assert.deepEqual(receiver.received.map((m) => m.body), [], 'no (more) messages expected');
}

/* Detaches (closes) a link and resolves when the broker has answered. */
function closeLink(link, ms = WAIT_MS) {
    const kind = link.is_sender() ? 'sender' : 'receiver';
    const closed = new Promise((resolve) => link.once(`${kind}_close`, resolve));
    link.close();
    return within(closed, ms, `the broker to answer the detach of ${link.describe || 'a link'}`);
}

/* Calls fn() until done(result) holds or ms have passed; returns the last
 * result. For what the broker does asynchronously after a reply (a queue
 * deleted after its link closed, room made after a settlement). */
async function retry(fn, done, ms = 3000, step = 50) {
    const deadline = Date.now() + ms;
    for (;;) {
        const result = await fn();
        if (done(result) || Date.now() >= deadline)
            return result;
        await sleep(step);
    }
}

module.exports = {
    PLEXUS, rhea, assert, test, withBroker, Broker, freePort, freePorts, sleep, within,
    openSender, openReceiver, send, sendAll, receive, expectNothing, closeLink, retry, isNullTerminus,
};
