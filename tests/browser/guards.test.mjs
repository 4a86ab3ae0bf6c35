// The console's guards in a real browser: the microphone-refused guide (and its Retry), and the
// message for in-app and unsupported browsers. Needs a gateway serving the console, no call:
//
//   GATEWAY_HTTP=http://127.0.0.1:PORT node tests/browser/guards.test.mjs
//
// node's built-in test runner; exit code 0 when all pass.
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { gatewayUrl, launch, signIn } from './lib.mjs';

const base = gatewayUrl();
const token = process.env.TOKEN || 'demo-manager-1';
const CHROME_UA = 'Mozilla/5.0 (Linux; Android 14; SM-S921N) AppleWebKit/537.36 (KHTML, like Gecko) '
  + 'Chrome/156.0.0.0 Mobile Safari/537.36';
const IN_APP = [
  ['KakaoTalk', `${CHROME_UA} KAKAOTALK 10.8.1`],
  ['Instagram', `${CHROME_UA} Instagram 320.0.0.42.101 Android`],
  ['Facebook', `${CHROME_UA} [FB_IAB/FB4A;FBAV/450.0.0.35.109;]`, 'Android'],
  ['Facebook', 'Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 [FBAN/FBIOS;FBAV/455.0.0.43.110]', 'iOS'],
  ['LINE', `${CHROME_UA} Line/14.3.1`],
  ['NAVER', `${CHROME_UA} NAVER(inapp; search; 2000; 12.6.3)`],
];

let browser;
// No --use-fake-ui-for-media-stream: the microphone is only allowed where a test grants it.
before(async () => {
  browser = await launch();
});
after(async () => {
  await browser?.close();
});

test('a refused microphone shows how to allow it; allowing it recovers by itself', async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  // Headless Chromium refuses a permission nobody granted (NotAllowedError), as a user's "Block".
  await signIn(page, base, token);
  await page.getByRole('button', { name: 'Check microphone' }).click();
  const guide = page.getByRole('alert').filter({ hasText: 'Microphone access is blocked' });
  await guide.waitFor({ state: 'visible', timeout: 5000 });
  const text = await guide.textContent();
  assert.match(text, /lock/);
  assert.match(text, /Microphone.*Allow/s);
  assert.match(await page.locator('#mic-denied-detail').textContent(), /NotAllowedError/);
  assert.equal(await page.locator('#mic-state').getAttribute('data-state'), 'denied');
  assert.equal(await page.getByRole('button', { name: 'Retry' }).evaluate((b) => b === document.activeElement), true,
    'Retry gets the focus');

  // Still refused: the guide stays.
  await page.getByRole('button', { name: 'Retry' }).click();
  await page.waitForTimeout(300);
  assert.equal(await guide.isVisible(), true);

  // The manager allows the microphone in the site settings: the console notices (permission
  // change) and retries by itself; the guide goes away.
  await context.grantPermissions(['microphone'], { origin: base });
  await guide.waitFor({ state: 'hidden', timeout: 5000 });
  assert.equal(await page.locator('#mic-state').getAttribute('data-state'), 'granted');
  await context.close();
});

test('Retry takes the microphone once allowed (browsers without permission-change events)', async () => {
  const context = await browser.newContext();
  // As in browsers whose Permissions API does not know "microphone": only Retry can recover.
  await context.addInitScript(() => {
    navigator.permissions.query = () => Promise.reject(new TypeError('unsupported'));
  });
  const page = await context.newPage();
  await signIn(page, base, token);
  await page.getByRole('button', { name: 'Check microphone' }).click();
  const guide = page.locator('#mic-denied');
  await guide.waitFor({ state: 'visible', timeout: 5000 });
  await context.grantPermissions(['microphone'], { origin: base });
  await page.waitForTimeout(300);
  assert.equal(await guide.isVisible(), true, 'nothing retries by itself here');
  await page.getByRole('button', { name: 'Retry' }).click();
  await guide.waitFor({ state: 'hidden', timeout: 5000 });
  assert.equal(await page.locator('#mic-state').getAttribute('data-state'), 'granted');
  await context.close();
});

for (const [name, userAgent, variant] of IN_APP) {
  test(`the ${name}${variant ? ` (${variant})` : ''} in-app browser is told to open the page in a real browser`, async () => {
    const context = await browser.newContext({ userAgent });
    const page = await context.newPage();
    await page.goto(`${base}/`);
    const message = page.locator('#unsupported');
    await message.waitFor({ state: 'visible', timeout: 5000 });
    assert.equal(await message.getAttribute('data-kind'), 'in_app');
    assert.match(await message.textContent(), new RegExp(`${name}.*Open this page in Chrome`, 's'));
    assert.equal(await page.locator('#signin').isVisible(), false, 'no sign-in form');
    await context.close();
  });
}

test('a browser without WebRTC is told it cannot take calls', async () => {
  const context = await browser.newContext();
  await context.addInitScript(() => {
    delete window.RTCPeerConnection;
    delete window.webkitRTCPeerConnection;
  });
  const page = await context.newPage();
  await page.goto(`${base}/`);
  const message = page.locator('#unsupported');
  await message.waitFor({ state: 'visible', timeout: 5000 });
  assert.equal(await message.getAttribute('data-kind'), 'unsupported');
  assert.match(await message.textContent(), /lacks WebRTC/);
  await context.close();
});

test('an ordinary browser gets the sign-in form and no warning', async () => {
  const context = await browser.newContext({ userAgent: CHROME_UA });
  const page = await context.newPage();
  await page.goto(`${base}/`);
  await page.getByLabel('Manager token').waitFor({ state: 'visible', timeout: 5000 });
  assert.equal(await page.locator('#unsupported').isVisible(), false);
  await context.close();
});

test('a wrong token is refused with a message', async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(`${base}/`);
  await page.getByLabel('Manager token').fill('not-a-token');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.locator('#signin-error').filter({ hasText: 'Sign-in failed' }).waitFor({ timeout: 5000 });
  assert.equal(await page.evaluate(() => sessionStorage.getItem('manager_token')), null);
  await context.close();
});

test('the token is remembered for the tab and presence / do-not-disturb round-trip', async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  await signIn(page, base, token);
  await page.reload();
  await page.waitForFunction(() => document.body.dataset.state === 'idle', null, { timeout: 5000 });
  const dnd = page.getByRole('switch', { name: 'Do not disturb' });
  await dnd.check();
  await page.reload();
  await page.waitForFunction(() => document.body.dataset.state === 'idle', null, { timeout: 5000 });
  assert.equal(await dnd.isChecked(), true, 'do-not-disturb comes back in hello');
  await dnd.uncheck();
  const online = page.getByRole('switch', { name: 'Online' });
  await online.uncheck();
  await page.waitForTimeout(200);
  await online.check();
  await page.waitForTimeout(200);
  assert.equal(await online.isChecked(), true);
  await context.close();
});
