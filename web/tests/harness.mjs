// Test harness of the browser tests: starts the real `chat-server` binary on an
// ephemeral port with the echo model and an embedded store in a temp dir, mints
// HS256 JWTs for it, and launches the system Chromium through playwright-core.

import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const BIN = process.env.CHATBOX_BIN || path.join(ROOT, 'target/debug/chat-server');
export const ARTIFACTS = path.join(ROOT, 'target/browser-artifacts');
export const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
export const PREFIX = '/chatbox';

/** The echo provider's reply to `message` (crates/chat-llm/src/echo.rs). */
export function echoReply(message) {
  const m = message.trim();
  return m ? `[echo — development model] You said: ${m}` : '[echo — development model] You said nothing.';
}

/** A strong random HS256 secret: 96 hex chars, none of the weak words config rejects. */
export function randomSecret() {
  for (;;) {
    const secret = crypto.randomBytes(48).toString('hex');
    if (!secret.includes('12345')) return secret;
  }
}

const b64url = (data) => Buffer.from(data).toString('base64url');

/** Mints an HS256 JWT with the claims PROTOCOL §1 names. */
export function mintToken(secret, { userId, name, roles = [], ttlSeconds = 3600 }) {
  const now = Math.floor(Date.now() / 1000);
  const header = b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }));
  const payload = b64url(JSON.stringify({ user_id: userId, name, roles, iat: now, exp: now + ttlSeconds }));
  const signature = crypto.createHmac('sha256', secret).update(`${header}.${payload}`).digest('base64url');
  return `${header}.${payload}.${signature}`;
}

/** A generous bound for start and stop on a busy 2-core machine. */
const PROCESS_BOUND_MS = 30000;

/**
 * One chat-server process. `start()` can be called again after `stop()` with the
 * same data directory and secret: that is a restart.
 */
export class ChatServer {
  constructor({ dataDir, secret = randomSecret() } = {}) {
    this.dir = dataDir || fs.mkdtempSync(path.join(os.tmpdir(), 'chatbox-ui-'));
    this.secret = secret;
    this.child = null;
    this.base = null;
    this.logPath = path.join(ARTIFACTS, `server-${path.basename(this.dir)}.log`);
    fs.mkdirSync(ARTIFACTS, { recursive: true });
    fs.mkdirSync(path.join(this.dir, 'work'), { recursive: true });
    this.configPath = path.join(this.dir, 'chatbox.toml');
    fs.writeFileSync(
      this.configPath,
      [
        'mode = "development"',
        '',
        '[server]',
        `path_prefix = "${PREFIX}"`,
        'shutdown_timeout = "5s"',
        '',
        '[storage]',
        'backend = "embedded"',
        '',
        '[uploads]',
        `dir = ${JSON.stringify(path.join(this.dir, 'uploads'))}`,
        '',
        '[[llm.providers]]',
        'id = "echo"',
        'name = "Echo"',
        'type = "echo"',
        'echo_delay = "40ms"',
        '',
        '[[llm.providers]]',
        'id = "echo-slow"',
        'name = "Echo (slow)"',
        'type = "echo"',
        'echo_delay = "120ms"',
        '',
      ].join('\n'),
    );
  }

  token(userId, name, roles = []) {
    return mintToken(this.secret, { userId, name, roles });
  }

  /** Starts the binary and resolves once it printed `listening on ADDR`. */
  async start() {
    if (!fs.existsSync(BIN)) throw new Error(`${BIN} is missing: run \`cargo build -p chat-server\` (web/tests/run.sh does)`);
    const log = fs.createWriteStream(this.logPath, { flags: 'a' });
    const child = spawn(BIN, ['--config', this.configPath], {
      cwd: path.join(this.dir, 'work'),
      env: {
        PATH: process.env.PATH,
        HOME: this.dir,
        CHATBOX_PORT: '0',
        CHATBOX_HOST: '127.0.0.1',
        JWT_SECRET: this.secret,
        CHATBOX_EMBEDDED_PATH: path.join(this.dir, 'chatbox.redb'),
        CHATBOX_LOG_FORMAT: 'text',
        RUST_LOG: process.env.CHATBOX_TEST_LOG || 'info',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child = child;
    child.stderr.pipe(log);
    const addr = await new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no "listening on" line within ${PROCESS_BOUND_MS} ms; see ${this.logPath}`)), PROCESS_BOUND_MS);
      const lines = readline.createInterface({ input: child.stdout });
      lines.on('line', (line) => {
        log.write(`${line}\n`);
        const m = /^listening on (\S+)/.exec(line);
        if (m) {
          clearTimeout(timer);
          resolve(m[1]);
        }
      });
      child.once('exit', (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`chat-server exited early (${code ?? signal}); see ${this.logPath}`));
      });
    });
    this.base = `http://${addr}`;
    return this.base;
  }

  /** SIGTERM, then SIGKILL if it does not exit within the bound. */
  async stop() {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), PROCESS_BOUND_MS);
    await exited;
    clearTimeout(timer);
    this.child = null;
  }

  /** Stops the server and deletes its temp dir (data, config, uploads). */
  async dispose() {
    await this.stop();
    fs.rmSync(this.dir, { recursive: true, force: true });
  }

  /** URL of a UI page (`''` chat, `sessions`, `admin`, `shared/<t>`). */
  ui(page = '', query = '') {
    return `${this.base}${PREFIX}/ui/${page}${query ? `?${query}` : ''}`;
  }
}

/** Headless system Chromium; Playwright gives every launch a fresh temporary profile. */
export async function launchBrowser() {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-quic',
      '--no-first-run',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}

/**
 * A page that records what must never happen: uncaught errors, console errors
 * (CSP violations are reported there) and dialogs (alert/confirm from injected script).
 */
export async function watchedPage(context) {
  const page = await context.newPage();
  // `errors` are fatal; network failures (a 404 probe, a socket refused during a
  // server restart) are logged by Chromium as console errors too and are expected.
  const problems = { errors: [], dialogs: [], network: [] };
  page.on('pageerror', (e) => problems.errors.push(`pageerror: ${e.message}`));
  page.on('console', (msg) => {
    if (msg.type() !== 'error') return;
    const text = msg.text();
    if (/^Failed to load resource|^WebSocket connection to/.test(text)) problems.network.push(text);
    else problems.errors.push(`console: ${text}`);
  });
  page.on('dialog', async (d) => {
    problems.dialogs.push(d.message());
    await d.dismiss();
  });
  page.problems = problems;
  return page;
}

export async function screenshot(page, name) {
  fs.mkdirSync(ARTIFACTS, { recursive: true });
  const file = path.join(ARTIFACTS, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  return file;
}
