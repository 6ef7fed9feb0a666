// README screenshots of a running dashboard (e.g. the one `cargo xtask demo` leaves up): logs in,
// waits for the inbox to list calls, saves the inbox and the newest call's detail.
//
//   node dashboard/e2e/screenshot.mjs URL EMAIL PASSWORD OUT_DIR
// Uses Debian's Chromium (CHROMIUM, default /usr/bin/chromium) through playwright-core.

import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const [url, email, password, out] = process.argv.slice(2);
if (!out) {
  console.error('usage: node dashboard/e2e/screenshot.mjs URL EMAIL PASSWORD OUT_DIR');
  process.exit(2);
}
mkdirSync(out, { recursive: true });
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
  args: ['--no-sandbox'],
});
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
  await page.goto(url);
  await page.getByLabel('E-mail').fill(email);
  await page.locator('input[type=password]').fill(password);
  await page.getByRole('button', { name: 'Sign in' }).click();
  const table = page.getByRole('table', { name: 'Calls' });
  await table.locator('tbody tr').first().waitFor({ timeout: 30_000 });
  await page.screenshot({ path: join(out, 'inbox.png') });
  await table.locator('tbody tr').first().click();
  await page.getByRole('log', { name: 'Transcript' }).waitFor({ timeout: 30_000 });
  await page.waitForTimeout(500);
  await page.screenshot({ path: join(out, 'detail.png') });
  console.log(`screenshots in ${out}`);
} finally {
  await browser.close();
}
