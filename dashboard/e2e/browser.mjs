// Browser end-to-end test of the dashboard: a real voice node and edge (native builds), a real
// Postgres, and Debian's Chromium driven by playwright-core (no browser download).
//
// Run by `cargo xtask test browser-e2e`, which builds the binaries and the dashboard, starts a
// private Postgres and passes (environment):
//   DATABASE_URL, VOICE_NODE_BIN, EDGE_BIN, DASHBOARD_DIR, OUTPUT_DIR, CHROMIUM (default /usr/bin/chromium)
//
// Steps: seed a tenant, number, admin and KB entry with the admin CLI; start node and edge; in the
// browser: log in, watch a simulated call (`voice-node simulate` through the edge) arrive live in
// the inbox, filter by label, open the detail and read the transcript, edit the KB entry.
// Screenshots of the inbox and the detail go to OUTPUT_DIR. Ends with `browser-e2e: N passed, M failed`.

import { spawn, execFileSync } from 'node:child_process';
import { mkdirSync, openSync } from 'node:fs';
import { createServer } from 'node:net';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const env = (name, fallback) => {
  const value = process.env[name] ?? fallback;
  if (value === undefined) throw new Error(`${name} is not set`);
  return value;
};
const DB = env('DATABASE_URL');
const NODE_BIN = env('VOICE_NODE_BIN');
const EDGE_BIN = env('EDGE_BIN');
const DASHBOARD_DIR = env('DASHBOARD_DIR');
const OUT = env('OUTPUT_DIR');
const CHROMIUM = env('CHROMIUM', '/usr/bin/chromium');

const EMAIL = 'owner@e2e.test';
const PASSWORD = 'browser e2e password';
const NUMBER = '+15550107000';
const CALLER = '+14155550123';
const AUTH_TOKEN = randomBytes(16).toString('hex');
const SECRET = randomBytes(32).toString('hex');
const STEP_TIMEOUT = 30_000;

mkdirSync(OUT, { recursive: true });

function cli(args, input) {
  const out = execFileSync(NODE_BIN, args, {
    env: { ...process.env, DATABASE_URL: DB },
    input: input ?? '',
    encoding: 'utf8',
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  return out.trim().split('\n').pop().trim();
}

function freePort() {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
    server.on('error', reject);
  });
}

const children = [];
function start(name, bin, args, extraEnv) {
  const log = openSync(join(OUT, `${name}.log`), 'w');
  const child = spawn(bin, args, { env: { ...process.env, ...extraEnv }, stdio: ['ignore', log, log] });
  children.push(child);
  child.on('exit', (code) => {
    if (code !== null && code !== 0) console.error(`${name} exited with ${code} (see ${join(OUT, `${name}.log`)})`);
  });
  return child;
}

async function waitHttp(url, timeoutMs) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const res = await fetch(url);
      if (res.ok) return;
    } catch {
      // not up yet
    }
    if (Date.now() > deadline) throw new Error(`${url} did not answer within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

function simulate(edgeUrl) {
  return new Promise((resolve, reject) => {
    const child = spawn(
      NODE_BIN,
      ['simulate', '--edge', edgeUrl, '--to', NUMBER, '--from', CALLER, '--say', 'Hi, this is Dana about my appointment on Tuesday.'],
      { env: { ...process.env, TWILIO_AUTH_TOKEN: AUTH_TOKEN, EDGE_SHARED_SECRET: SECRET }, stdio: ['ignore', 'pipe', 'inherit'] },
    );
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.on('exit', (code) => {
      try {
        const report = JSON.parse(out.trim());
        resolve({ code, report });
      } catch (err) {
        reject(new Error(`simulate exited ${code} without a JSON report: ${out}`));
      }
    });
  });
}

const results = [];
async function check(name, fn) {
  const t0 = Date.now();
  try {
    await fn();
    results.push({ name, ok: true });
    console.log(`ok   ${name} (${Date.now() - t0} ms)`);
  } catch (err) {
    results.push({ name, ok: false });
    console.log(`FAIL ${name}: ${err?.stack ?? err}`);
    throw err;
  }
}

async function main() {
  // --- seed ---------------------------------------------------------------------------------
  cli(['migrate']);
  const tenant = cli(['tenant', 'create', '--name', 'E2E Dental', '--mode', 'screening']);
  cli(['number', 'add', '--tenant', tenant, '--e164', NUMBER, '--owner', '+15550107001']);
  cli(['user', 'create', '--tenant', tenant, '--email', EMAIL, '--role', 'admin'], `${PASSWORD}\n`);
  cli(['kb', 'add', '--tenant', tenant, '--question', 'Do you take walk-ins?', '--answer', 'Only on Fridays.']);

  // --- services ----------------------------------------------------------------------------
  const nodePort = await freePort();
  const edgePort = await freePort();
  const nodeUrl = `http://127.0.0.1:${nodePort}`;
  const edgeUrl = `http://127.0.0.1:${edgePort}`;
  start('voice-node', NODE_BIN, ['serve'], {
    DATABASE_URL: DB,
    LISTEN_ADDR: `127.0.0.1:${nodePort}`,
    PUBLIC_BASE_URL: nodeUrl,
    NODE_ID: 'e2e-node',
    NODE_REGION: 'iad',
    TWILIO_AUTH_TOKEN: AUTH_TOKEN,
    EDGE_SHARED_SECRET: SECRET,
    HEARTBEAT_SECS: '1',
    DRAIN_GRACE_SECS: '2',
    DASHBOARD_DIR,
  });
  await waitHttp(`${nodeUrl}/readyz`, 60_000);
  start('edge', EDGE_BIN, [], {
    LISTEN_ADDR: `127.0.0.1:${edgePort}`,
    TWILIO_AUTH_TOKEN: AUTH_TOKEN,
    EDGE_SHARED_SECRET: SECRET,
    PUBLIC_WEBHOOK_BASE_URL: edgeUrl,
    CONTROL_URL: nodeUrl,
  });
  await waitHttp(`${edgeUrl}/healthz`, 30_000);

  // --- browser -----------------------------------------------------------------------------
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run'],
  });
  try {
    const context = await browser.newContext({ baseURL: nodeUrl, viewport: { width: 1280, height: 860 } });
    const page = await context.newPage();
    page.setDefaultTimeout(STEP_TIMEOUT);

    await check('logs in', async () => {
      await page.goto('/');
      await page.getByLabel('E-mail').fill(EMAIL);
      await page.locator('input[type=password]').fill(PASSWORD);
      await page.getByRole('button', { name: 'Sign in' }).click();
      await page.waitForURL('**/calls');
      await page.getByTestId('live-status').waitFor();
    });

    let report;
    await check('sees a simulated call arrive live in the inbox', async () => {
      const row = page.getByRole('table', { name: 'Calls' }).getByText(CALLER.slice(-4), { exact: false });
      // Placed only now: the row must come over the live socket, not from the first page load.
      const call = await simulate(edgeUrl);
      report = call.report;
      if (call.code !== 0) throw new Error(`simulate failed: ${JSON.stringify(report)}`);
      await row.first().waitFor({ timeout: STEP_TIMEOUT });
      await page.screenshot({ path: join(OUT, 'inbox.png'), fullPage: true });
    });

    await check('filters by label', async () => {
      const label = report?.screening?.label ?? null;
      const labelText = { legit: 'Legit', marketing: 'Marketing', spam: 'Spam', unknown: 'Unknown' };
      const matching = label ? labelText[label] : 'Not screened';
      const other = label === 'spam' ? 'Legit' : 'Spam';
      const table = page.getByRole('table', { name: 'Calls' });
      const choose = async (text) => {
        const select = page.getByLabel('Label', { exact: true }).first();
        await select.click();
        await page.getByRole('option', { name: text, exact: true }).click();
      };
      await choose(other);
      await page.waitForURL(/label=/);
      await table.getByText(CALLER.slice(-4)).first().waitFor({ state: 'detached' }).catch(async () => {
        if (await table.getByText(CALLER.slice(-4)).count()) throw new Error(`call still listed under ${other}`);
      });
      await choose(matching);
      await table.getByText(CALLER.slice(-4)).first().waitFor();
    });

    await check('opens the detail and reads the transcript', async () => {
      await page.getByRole('table', { name: 'Calls' }).getByText(CALLER.slice(-4)).first().click();
      await page.waitForURL(/\/calls\/[0-9a-f-]{36}$/);
      const transcript = page.getByRole('log', { name: 'Transcript' });
      await transcript.waitFor();
      const turns = report?.transcript ?? [];
      if (turns.length === 0) throw new Error('simulate reported an empty transcript');
      const first = turns[0].text.split(/\s+/).slice(0, 4).join(' ');
      await transcript.getByText(first, { exact: false }).first().waitFor();
      await page.screenshot({ path: join(OUT, 'detail.png'), fullPage: true });
    });

    await check('edits a knowledge-base entry', async () => {
      await page.goto('/settings/kb');
      await page.getByRole('button', { name: 'Edit “Do you take walk-ins?”' }).click();
      const answer = page.getByRole('dialog').getByLabel('Answer');
      await answer.fill('Yes, every weekday morning.');
      await page.getByRole('dialog').getByRole('button', { name: 'Save' }).click();
      await page.getByRole('dialog').waitFor({ state: 'detached' });
      await page.getByText('Yes, every weekday morning.').waitFor();
      // The edit reached the database: the API answers the new text after a reload.
      await page.reload();
      await page.getByText('Yes, every weekday morning.').waitFor();
      await page.screenshot({ path: join(OUT, 'kb.png'), fullPage: true });
    });
  } finally {
    await browser.close();
  }
}

let failedEarly = false;
try {
  await main();
} catch (err) {
  failedEarly = true;
  if (!results.some((r) => !r.ok)) console.log(`FAIL setup: ${err?.stack ?? err}`);
} finally {
  for (const child of children) child.kill('SIGTERM');
}
const passed = results.filter((r) => r.ok).length;
const failed = results.filter((r) => !r.ok).length + (failedEarly && !results.some((r) => !r.ok) ? 1 : 0);
console.log(`screenshots: ${OUT}`);
console.log(`browser-e2e: ${passed} passed, ${failed} failed`);
process.exit(failed > 0 ? 1 : 0);
