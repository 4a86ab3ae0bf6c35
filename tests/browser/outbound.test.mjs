// An outgoing call from the console: sign in, type the customer's number, press "Call"; the
// gateway calls out through its trunk (the Rust test runs a sipp UAS there that challenges with
// 401, rings with early media, answers, and hangs up 1.5 s later). The console must show the
// call connected and then ended by the customer. Prints `DONE` and exits 0, or `FAIL <reason>`.
//
// Env: GATEWAY_HTTP (the console), TOKEN (demo-manager-1), NUMBER (010-5555-6666).
import { fail, gatewayUrl, launch, log, say, signIn, writeSineWav } from './lib.mjs';

const base = gatewayUrl();
const token = process.env.TOKEN || 'demo-manager-1';
const number = process.env.NUMBER || '010-5555-6666';
const browser = await launch(['--use-fake-ui-for-media-stream', `--use-file-for-fake-audio-capture=${writeSineWav(440)}`]);
const watchdog = setTimeout(async () => {
  say('FAIL timed out (whole test)');
  await browser.close().catch(() => {});
  process.exit(1);
}, 100000);
let code = 0;
try {
  const page = await (await browser.newContext()).newPage();
  page.on('console', (m) => log(`console.${m.type()}:`, m.text()));
  await signIn(page, base, token);
  await page.getByRole('button', { name: 'Enable sound' }).click();
  // Record every call-state text as it changes (polling could miss a short ringing phase).
  await page.evaluate(() => {
    window.__states = [];
    const el = document.getElementById('call-state');
    new MutationObserver(() => window.__states.push(el.textContent)).observe(el, {
      childList: true, characterData: true, subtree: true,
    });
  });
  await page.locator('#dial-number').fill(number);
  await page.getByRole('button', { name: 'Call', exact: true }).click();
  // The console shows the call while it is placed, answered, and then ended by the customer.
  await page.waitForFunction(() => ['connecting', 'in_call'].includes(document.body.dataset.state), null, { timeout: 30000 });
  const states = [];
  const deadline = Date.now() + 60000;
  let reason = null;
  while (Date.now() < deadline) {
    const s = await page.evaluate(() => ({
      state: document.body.dataset.state,
      text: document.getElementById('call-state').textContent,
      reason: document.getElementById('last-call').dataset.reason || null,
    }));
    if (states[states.length - 1] !== s.text) states.push(s.text);
    if (s.state === 'idle' && s.reason) {
      reason = s.reason;
      break;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  states.push(...(await page.evaluate(() => window.__states)));
  log('call states seen:', states.join(' → '));
  if (reason !== 'customer_hung_up') fail(`ended with ${reason}, states ${states.join(' → ')}`);
  if (!states.some((t) => /Ringing/.test(t))) fail(`no ringing state shown: ${states.join(' → ')}`);
  say('DONE');
} catch (e) {
  say(`FAIL ${e && e.message}`);
  code = 1;
} finally {
  clearTimeout(watchdog);
  await browser.close().catch(() => {});
}
process.exit(code);
