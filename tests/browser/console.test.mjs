// The manager console in a real browser (headless Debian Chromium), answering a real call.
//
//   GATEWAY_HTTP=http://127.0.0.1:PORT node tests/browser/console.test.mjs
//
// Contract with the Rust test that runs it: it starts a gateway (demo config), runs this script,
// and when the script prints `READY_FOR_CALL` on stdout it places a call from a raw carrier that
// answers the gateway's 200 OK with an ACK and sends a 1 kHz tone (G.711). The script accepts the
// ring with Ctrl+Shift+Space, prints `TONE_OK` once the browser receives the caller's audio
// (inbound RTP growing; the 1 kHz tone found in the remote track), leaves for everyone with
// Ctrl+Shift+O, prints `DONE` once the console is idle with reason `manager_hung_up`, and
// exits 0. Any failure prints `FAIL <reason>` and exits 1. Logs go to stderr.
//
// MIC_DENIED_FIRST=1: the microphone is refused at the first accept; the script checks the guide
// appears (the call keeps ringing), then allows the microphone, and the console goes on to accept.
//
// Env: TOKEN (demo-manager-1), LEAVE (only_me: leave with Ctrl+O), EXPECT_CALLER_DTMF (digits the carrier sends, checked on screen), TONE_HZ (1000; 0 skips the tone analysis), SCREENSHOT_DIR (save
// ringing.png and in-call.png there), RING_TIMEOUT_MS (60000), CHROMIUM_PATH (/usr/bin/chromium).
import { join } from 'node:path';
import { Failure, fail, gatewayUrl, launch, log, say, signIn, sleep, writeSineWav } from './lib.mjs';

const base = gatewayUrl();
const token = process.env.TOKEN || 'demo-manager-1';
const toneHz = Number(process.env.TONE_HZ ?? 1000);
const shots = process.env.SCREENSHOT_DIR;
const ringTimeout = Number(process.env.RING_TIMEOUT_MS || 60000);

let browser = null;
let failed = null;
const watchdog = setTimeout(async () => {
  say('FAIL timed out (whole test)');
  await browser?.close().catch(() => {});
  process.exit(1);
}, ringTimeout + 60000);

const wav = writeSineWav(440);
const micDeniedFirst = process.env.MIC_DENIED_FIRST === '1';
browser = await launch([
  // Without the fake UI, headless Chromium refuses the microphone until the test grants it.
  ...(micDeniedFirst ? [] : ['--use-fake-ui-for-media-stream']),
  `--use-file-for-fake-audio-capture=${wav}`,
]);
let pageError = null;
try {
  const context = await browser.newContext({ viewport: { width: 900, height: 1000 } });
  const page = await context.newPage();
  page.on('pageerror', (e) => {
    pageError = e;
    log('page error:', e.message);
  });
  page.on('console', (m) => log(`console.${m.type()}:`, m.text()));
  const state = () => page.evaluate(() => window.managerConsole.state());
  const waitState = (s, timeout = 10000) =>
    page.waitForFunction((want) => document.body.dataset.state === want, s, { timeout });

  await signIn(page, base, token);
  const who = await page.locator('#manager-id').textContent();
  log('signed in as', who);
  if (!who || who === '…') fail('no hello (manager id) shown');

  await page.getByRole('button', { name: 'Enable sound' }).click();
  await page.waitForFunction(() => window.managerConsole.soundState() === 'running', null, { timeout: 5000 });
  log('sound:', await page.locator('#sound-state').textContent());

  say('READY_FOR_CALL');
  await waitState('ringing', ringTimeout).catch(() => fail(`no ring within ${ringTimeout} ms`));
  const caller = await page.locator('#ring-caller').textContent();
  const customer = await page.locator('#ring-customer').textContent();
  log('ringing: caller', caller, 'customer', customer);
  if (!(await page.locator('#accept').isVisible())) fail('the accept button is not visible while ringing');
  await page.waitForFunction(() => window.managerConsole.ringing(), null, { timeout: 3000 })
    .catch(() => fail('the ring sound did not start'));
  if (shots) await page.screenshot({ path: join(shots, 'ringing.png'), fullPage: true });

  await page.keyboard.press('Control+Shift+Space');
  if (micDeniedFirst) {
    await page.locator('#mic-denied').waitFor({ state: 'visible', timeout: 5000 })
      .catch(() => fail('no microphone guide after a refused microphone'));
    if ((await state()) !== 'ringing') fail('the call should keep ringing while the microphone is blocked');
    if (shots) await page.screenshot({ path: join(shots, 'mic-denied.png'), fullPage: true });
    log('microphone refused: guide shown; allowing it now');
    await context.grantPermissions(['microphone'], { origin: base });
  }
  await waitState('in_call', 15000).catch(async () => fail(`not in call after Ctrl+Shift+Space (state ${await state()}, notice: ${await page.locator('#notice').textContent()})`));
  if (await page.evaluate(() => window.managerConsole.ringing())) fail('the ring sound goes on in the call');
  await page.waitForFunction(
    () => window.managerConsole.peerConnection()?.connectionState === 'connected', null, { timeout: 10000 },
  ).catch(async () => fail(`WebRTC not connected: ${await page.evaluate(() => window.managerConsole.peerConnection()?.connectionState)}`));
  log('WebRTC connected');

  // Inbound audio from the caller keeps arriving; our microphone goes out.
  const rtpStats = () => page.evaluate(async () => {
    const report = await window.managerConsole.peerConnection().getStats();
    const out = { packetsReceived: 0, bytesReceived: 0, packetsSent: 0 };
    report.forEach((s) => {
      if (s.type === 'inbound-rtp' && s.kind === 'audio') {
        out.packetsReceived += s.packetsReceived || 0;
        out.bytesReceived += s.bytesReceived || 0;
      }
      if (s.type === 'outbound-rtp' && s.kind === 'audio') out.packetsSent += s.packetsSent || 0;
    });
    return out;
  });
  const first = await rtpStats();
  await sleep(1500);
  const second = await rtpStats();
  log('rtp stats', JSON.stringify(first), '->', JSON.stringify(second));
  if (second.packetsReceived - first.packetsReceived < 25) fail(`inbound audio not increasing: ${JSON.stringify([first, second])}`);
  if (second.bytesReceived <= first.bytesReceived) fail('inbound bytes not increasing');
  if (second.packetsSent - first.packetsSent < 25) fail(`outbound audio not increasing: ${JSON.stringify([first, second])}`);

  if (toneHz > 0) {
    // The caller's tone in the remote track (AnalyserNode + Goertzel in the page).
    let best = 0;
    let hits = 0;
    for (let i = 0; i < 50 && hits < 5; i++) {
      const share = await page.evaluate((hz) => window.managerConsole.toneShare(hz), toneHz);
      best = Math.max(best, share);
      if (share > 0.5) hits += 1;
      await sleep(100);
    }
    const other = await page.evaluate(() => window.managerConsole.toneShare(700));
    log(`tone ${toneHz} Hz share: best ${best.toFixed(3)}, hits ${hits}; 700 Hz share ${other.toFixed(3)}`);
    if (hits < 5) fail(`the caller's ${toneHz} Hz tone was not heard in the remote audio (best share ${best.toFixed(3)})`);
  }
  say('TONE_OK');
  if (shots) await page.screenshot({ path: join(shots, 'in-call.png'), fullPage: true });

  // Mute toggles with Ctrl+Shift+M (the local track is disabled, the button says so).
  await page.keyboard.press('Control+Shift+M');
  if ((await page.evaluate(() => window.managerConsole.localTrackEnabled())) !== false) fail('Ctrl+Shift+M did not mute');
  if ((await page.locator('#mute').getAttribute('aria-pressed')) !== 'true') fail('mute button not pressed');
  await page.keyboard.press('Control+Shift+M');
  if ((await page.evaluate(() => window.managerConsole.localTrackEnabled())) !== true) fail('Ctrl+Shift+M did not unmute');
  log('mute toggled on and off');

  // Digits the caller pressed are shown (only when the carrier sends them: EXPECT_CALLER_DTMF).
  const expectDigits = process.env.EXPECT_CALLER_DTMF;
  if (expectDigits) {
    await page.waitForFunction((d) => document.getElementById('dtmf-received').textContent.includes(d),
      expectDigits, { timeout: 10000 }).catch(() => fail(`caller digits ${expectDigits} not shown`));
    log('caller pressed:', await page.locator('#dtmf-received').textContent());
  }

  // The keypad sends DTMF without the gateway complaining.
  await page.getByRole('button', { name: 'Send 5' }).click();
  await sleep(300);
  const notice = await page.locator('#notice').textContent();
  if (notice.startsWith('Gateway:')) fail(`DTMF refused: ${notice}`);
  log('keypad:', notice);

  // Leave for everyone (Ctrl+Shift+O); LEAVE=only_me uses Ctrl+O (this manager leaves; being the
  // last one in the call, the gateway ends it, so the reason is the same).
  const leaveKeys = process.env.LEAVE === 'only_me' ? 'Control+O' : 'Control+Shift+O';
  await page.keyboard.press(leaveKeys);
  await waitState('idle', 10000).catch(async () => fail(`not idle after ${leaveKeys} (state ${await state()})`));
  const reason = await page.locator('#last-call').getAttribute('data-reason');
  log('ended:', await page.locator('#last-call').textContent());
  if (reason !== 'manager_hung_up') fail(`end reason ${reason}, expected manager_hung_up`);
  if (pageError) fail(`page error: ${pageError.message}`);
  say('DONE');
} catch (e) {
  failed = e instanceof Failure ? e.message
    : e && e.stack ? e.stack.split('\n').slice(0, 3).join(' | ') : String(e);
} finally {
  clearTimeout(watchdog);
  await browser.close().catch(() => {});
}
if (failed) say(`FAIL ${failed}`);
process.exit(failed ? 1 : 0);
