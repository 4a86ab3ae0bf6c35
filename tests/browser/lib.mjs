// Shared helpers of the browser tests: Debian's Chromium through playwright-core (no browser
// download), a fake-microphone WAV, and small waits.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

export const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';

/** The flags of DESIGN.md ("Tests": real browser). */
export const BASE_FLAGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--use-fake-device-for-media-stream',
  '--autoplay-policy=no-user-gesture-required',
];

export function gatewayUrl() {
  const url = process.env.GATEWAY_HTTP || process.argv.find((a) => a.startsWith('http'));
  if (!url) failNow('set GATEWAY_HTTP=http://127.0.0.1:PORT (the gateway serving the console)');
  return url.replace(/\/+$/, '');
}

/** A mono 16-bit PCM WAV of a sine, for `--use-file-for-fake-audio-capture`. */
export function writeSineWav(hz, { rate = 48000, seconds = 5, amplitude = 0.4 } = {}) {
  const n = rate * seconds;
  const buf = Buffer.alloc(44 + n * 2);
  buf.write('RIFF', 0);
  buf.writeUInt32LE(36 + n * 2, 4);
  buf.write('WAVE', 8);
  buf.write('fmt ', 12);
  buf.writeUInt32LE(16, 16); // fmt chunk size
  buf.writeUInt16LE(1, 20); // PCM
  buf.writeUInt16LE(1, 22); // mono
  buf.writeUInt32LE(rate, 24);
  buf.writeUInt32LE(rate * 2, 28); // byte rate
  buf.writeUInt16LE(2, 32); // block align
  buf.writeUInt16LE(16, 34); // bits per sample
  buf.write('data', 36);
  buf.writeUInt32LE(n * 2, 40);
  for (let i = 0; i < n; i++) {
    buf.writeInt16LE(Math.round(amplitude * 32767 * Math.sin((2 * Math.PI * hz * i) / rate)), 44 + i * 2);
  }
  const dir = mkdtempSync(join(tmpdir(), 'console-test-'));
  const path = join(dir, `sine-${hz}hz.wav`);
  writeFileSync(path, buf);
  return path;
}

export async function launch(extraFlags = []) {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [...BASE_FLAGS, ...extraFlags],
  });
}

/** Logs go to stderr: stdout carries only the protocol lines (READY_FOR_CALL, TONE_OK, DONE). */
export function log(...args) {
  console.error('[browser-test]', ...args);
}

export function say(line) {
  process.stdout.write(`${line}\n`);
}

/** A test failure: thrown, so the browser is closed before the script reports and exits. */
export class Failure extends Error {}

export function fail(reason) {
  throw new Failure(reason);
}

/** Fails before any browser runs (bad arguments). */
export function failNow(reason) {
  say(`FAIL ${reason}`);
  process.exit(1);
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Signs in on the console and waits for the gateway's hello. */
export async function signIn(page, base, token) {
  await page.goto(`${base}/`);
  await page.getByLabel('Manager token').fill(token);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForFunction(() => document.body.dataset.state === 'idle', null, { timeout: 10000 });
}
