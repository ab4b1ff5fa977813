'use strict';
/* 34: the dashboard in a real browser (Debian's Chromium, headless, driven
 * by playwright-core): log in, see a queue declared over AMQP appear with
 * its depth, purge it by clicking, declare one from the form, see the
 * supervision tree, and save a screenshot (build/dashboard.png). Skips with
 * a message where /usr/bin/chromium is missing; CI installs it
 * (scripts/deps.sh test). */
const fs = require('node:fs');
const path = require('node:path');
const { assert, test, withBroker, openSender, send } = require('./harness');

const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
const SHOT = path.join(__dirname, '..', '..', 'build', 'dashboard.png');

test('the dashboard shows a queue declared over AMQP and purges it by a click', (t) => {
    if (!fs.existsSync(CHROMIUM)) {
        t.skip(`missing: ${CHROMIUM} (apt-get install chromium)`);
        return undefined;
    }
    return withBroker(dashboard);
});

async function dashboard(b) {
    const { chromium } = require('playwright-core');
    const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--headless', '--no-sandbox', '--disable-gpu'] });
    try {
        const page = await browser.newPage({ viewport: { width: 1100, height: 700 } });
        const errors = [];
        page.on('pageerror', (e) => errors.push(e.message));
        await page.goto(`http://127.0.0.1:${b.adminPort}/`);

        // A wrong password is refused; the right one lets us in.
        await page.fill('#login input[name=password]', 'wrong');
        await page.click('#login button');
        await page.waitForFunction(() => document.getElementById('login-error').textContent.includes('refused'));
        await page.fill('#login input[name=password]', 'guest');
        await page.click('#login button');
        await page.waitForSelector('#app:not([hidden])');
        assert.equal(await page.isVisible('#login'), false, 'the login form goes once logged in');
        await page.waitForFunction(() => document.getElementById('node').textContent.includes('Plexus'));

        // A queue made over AMQP, with three messages in it, shows up.
        const conn = await b.connect();
        const snd = await openSender(conn, '/queues/dash.q');
        for (let i = 0; i < 3; i++)
            assert.equal((await send(snd, { body: `m${i}` })).state, 'accepted');
        await page.click('nav a[data-tab=queues]');
        const ready = page.locator('#queue-table tr[data-queue="dash.q"] td.ready');
        await ready.waitFor();
        await page.waitForFunction(() => {
            const td = document.querySelector('#queue-table tr[data-queue="dash.q"] td.ready');
            return td && td.textContent === '3';
        }, null, { timeout: 10000 });

        // Purge by clicking; the depth goes to 0, in the broker too.
        await page.click('#queue-table tr[data-queue="dash.q"] button.purge');
        await page.waitForFunction(() => {
            const td = document.querySelector('#queue-table tr[data-queue="dash.q"] td.ready');
            return td && td.textContent === '0';
        }, null, { timeout: 10000 });
        const res = await fetch(`http://127.0.0.1:${b.adminPort}/api/queues/%2F/dash.q`,
            { headers: { Authorization: 'Basic ' + Buffer.from('guest:guest').toString('base64') } });
        assert.equal((await res.json()).messages_ready, 0);

        // Declare one from the form.
        await page.fill('#declare-queue input[name=name]', 'from.the.page');
        await page.click('#declare-queue button');
        await page.locator('#queue-table tr[data-queue="from.the.page"]').waitFor({ timeout: 10000 });

        // The supervision tree, and the overview with its chart.
        await page.click('nav a[data-tab=tree]');
        await page.waitForFunction(() => document.getElementById('tree-view').textContent.includes('rt_manager'));
        await page.click('nav a[data-tab=queues]');
        await page.locator('#queue-table tr[data-queue="dash.q"]').waitFor();
        fs.mkdirSync(path.dirname(SHOT), { recursive: true });
        await page.screenshot({ path: SHOT, fullPage: true });
        assert.ok(fs.statSync(SHOT).size > 1000, 'the screenshot has something in it');
        assert.deepEqual(errors, [], 'no script errors on the page');
        conn.close();
    } finally {
        await browser.close();
    }
}
