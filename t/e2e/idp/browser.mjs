// browser.mjs -- drives Debian's chromium (headless, through playwright-core) through a sign-in on the
// provider's own pages, as a person would, and prints one JSON line with what it saw.
//
// usage: node browser.mjs '<json>'   with
//   start:   the URL to open (conduix-cp's /api/v1/auth/login/<provider>, or the frontend's /login)
//   click:   optional CSS selector to click first on the start page (the frontend's provider button)
//   login:   the name to type on the provider's login page (it becomes the subject)
//   landing: the URL prefix where the browser must end up (<frontend_url>/login?token=)
// Output: {"ok":true,"url":…,"token":…,"me":<text of #me>,"error":<text of #error>,"cookies":[…]}
//         or {"ok":false,"error":…,"url":…}. Exit status 0 either way; 2 when chromium cannot start.
// CHROMIUM (default /usr/bin/chromium) and CX_TEST_TIMEOUT_SCALE are honoured.
import { mkdtempSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const o = JSON.parse(process.argv[2] || '{}');
const scale = Number(process.env.CX_TEST_TIMEOUT_SCALE || 1);
const exe = process.env.CHROMIUM || '/usr/bin/chromium';
const out = (v) => process.stdout.write(`${JSON.stringify(v)}\n`);

if (!existsSync(exe)) {
  out({ ok: false, error: `chromium not found at ${exe} (apt-get install chromium chromium-driver)` });
  process.exit(2);
}
const dir = mkdtempSync(join(tmpdir(), 'cx-chromium-'));
let ctx;
try {
  ctx = await chromium.launchPersistentContext(dir, {
    executablePath: exe, headless: true, timeout: 60000 * scale,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage'],
  });
} catch (e) {
  out({ ok: false, error: `chromium did not start: ${e.message}` });
  rmSync(dir, { recursive: true, force: true });
  process.exit(2);
}
const page = ctx.pages()[0] ?? await ctx.newPage();
page.setDefaultTimeout(20000 * scale);
try {
  await page.goto(o.start);
  if (o.click) await page.click(o.click);
  await page.fill('input[name=login]', o.login || 'alice');
  await page.fill('input[name=password]', 'any-password');
  await page.click('button[type=submit]');
  // the consent page has the same URL shape as the login page: wait for its own input
  await page.waitForSelector('input[name=prompt][value=consent]', { state: 'attached' });
  await page.click('button[type=submit]');
  await page.waitForURL((u) => u.toString().startsWith(o.landing), { waitUntil: 'load' });
  await page.waitForFunction(() => document.getElementById('me')?.textContent || document.getElementById('error')?.textContent);
  const url = page.url();
  out({
    ok: true, url, token: new URL(url).searchParams.get('token'),
    me: await page.textContent('#me'), error: await page.textContent('#error'),
    referrer: await page.evaluate(() => document.referrer),
    cookies: await ctx.cookies(),
  });
} catch (e) {
  let body = '';
  try { body = (await page.textContent('body')).slice(0, 500); } catch { /* page gone */ }
  out({ ok: false, error: e.message.split('\n')[0], url: page.url(), body });
} finally {
  await ctx.close();
  rmSync(dir, { recursive: true, force: true });
}
