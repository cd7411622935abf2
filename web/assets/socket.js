// The WebSocket of a chat page: connects to `{prefix}/ws?token=…`, reconnects with
// exponential backoff and jitter after any drop, and keeps the link alive with the
// application-level ping of PROTOCOL §3. What to do after each (re)connect — the
// `resume` that makes a blip lossless — is the page's job (`onConnected`).

import { PREFIX } from './common.js';

const BASE_DELAY_MS = 500;
const MAX_DELAY_MS = 15000;
const PING_EVERY_MS = 25000;
/** No frame at all (pongs included) for this long means the link is dead. */
const SILENCE_LIMIT_MS = 70000;

export class ChatSocket {
  /**
   * @param {object} o
   * @param {string} o.token JWT sent as `?token=` (browsers cannot set headers)
   * @param {(frame: object) => void} o.onFrame every parsed server frame
   * @param {(status: object) => void} o.onConnected the first `connection_status` of each connection
   * @param {(state: string, detail?: object) => void} o.onState connecting | open | waiting | closed
   */
  constructor({ token, onFrame, onConnected, onState }) {
    this.token = token;
    this.onFrame = onFrame;
    this.onConnected = onConnected;
    this.onState = onState || (() => {});
    this.ws = null;
    this.attempt = 0;
    this.retryTimer = null;
    this.pingTimer = null;
    this.lastFrameAt = 0;
    this.stopped = false;
    this.greeted = false;
    this.wake = () => {
      if (!this.stopped && this.retryTimer) this.reconnectNow();
    };
  }

  url() {
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    return `${scheme}//${location.host}${PREFIX}/ws?token=${encodeURIComponent(this.token)}`;
  }

  start() {
    this.stopped = false;
    window.addEventListener('online', this.wake);
    document.addEventListener('visibilitychange', this.wake);
    this.connect();
  }

  connect() {
    clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.greeted = false;
    this.onState('connecting');
    let ws;
    try {
      ws = new WebSocket(this.url());
    } catch {
      this.scheduleReconnect();
      return;
    }
    this.ws = ws;
    ws.addEventListener('open', () => {
      this.lastFrameAt = Date.now();
      this.onState('open');
      clearInterval(this.pingTimer);
      this.pingTimer = setInterval(() => this.heartbeat(), PING_EVERY_MS);
    });
    ws.addEventListener('message', (event) => {
      this.lastFrameAt = Date.now();
      let frame;
      try {
        frame = JSON.parse(event.data);
      } catch {
        return;
      }
      if (!frame || typeof frame !== 'object') return;
      if (frame.type === 'pong') return;
      if (frame.type === 'connection_status' && !this.greeted) {
        this.greeted = true;
        this.attempt = 0;
        this.onConnected(frame);
      }
      this.onFrame(frame);
    });
    ws.addEventListener('close', (event) => {
      if (this.ws !== ws) return;
      this.ws = null;
      clearInterval(this.pingTimer);
      if (this.stopped) {
        this.onState('closed', { code: event.code, reason: event.reason });
        return;
      }
      this.scheduleReconnect(event);
    });
  }

  heartbeat() {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return;
    if (Date.now() - this.lastFrameAt > SILENCE_LIMIT_MS) {
      this.ws.close(4000, 'silent');
      return;
    }
    this.send({ type: 'ping' });
  }

  scheduleReconnect(event) {
    const exp = Math.min(MAX_DELAY_MS, BASE_DELAY_MS * 2 ** this.attempt);
    const delay = Math.round(exp / 2 + Math.random() * (exp / 2));
    this.attempt += 1;
    this.onState('waiting', { delay, attempt: this.attempt, code: event && event.code, reason: event && event.reason });
    clearTimeout(this.retryTimer);
    this.retryTimer = setTimeout(() => this.connect(), delay);
  }

  reconnectNow() {
    clearTimeout(this.retryTimer);
    this.retryTimer = null;
    this.connect();
  }

  get isOpen() {
    return Boolean(this.ws && this.ws.readyState === WebSocket.OPEN);
  }

  /** Sends one frame; false when the socket is not open (the caller keeps the text). */
  send(frame) {
    if (!this.isOpen) return false;
    // No timestamp: the server stamps frames itself, so a skewed client clock cannot
    // push a frame outside the accepted window.
    this.ws.send(JSON.stringify(frame));
    return true;
  }

  stop() {
    this.stopped = true;
    clearTimeout(this.retryTimer);
    clearInterval(this.pingTimer);
    window.removeEventListener('online', this.wake);
    document.removeEventListener('visibilitychange', this.wake);
    if (this.ws) this.ws.close(1000, 'bye');
  }
}
