// Shared helpers of every page: the path prefix, the sign-in token, the HTTP API
// client, and a small DOM builder that only ever creates text nodes for data, so
// no server- or user-supplied string is ever parsed as HTML.

const TOKEN_KEY = 'chatbox.token';

/** The path prefix the server is mounted under: everything before `/ui/`. */
export function prefixFrom(pathname) {
  const i = pathname.lastIndexOf('/ui/');
  if (i >= 0) return pathname.slice(0, i);
  if (pathname.endsWith('/ui')) return pathname.slice(0, -3);
  return '';
}

export const PREFIX = prefixFrom(location.pathname);

/** Base URL of the UI pages (`{prefix}/ui/`). */
export const UI_BASE = `${PREFIX}/ui/`;

/**
 * Takes `?token=` from the address bar into sessionStorage and removes it from the
 * visible URL and the history entry, then returns the stored token (or null).
 */
export function takeToken() {
  const url = new URL(location.href);
  const fromUrl = url.searchParams.get('token');
  if (fromUrl) {
    sessionStorage.setItem(TOKEN_KEY, fromUrl);
    url.searchParams.delete('token');
    history.replaceState(history.state, '', url.pathname + url.search + url.hash);
  }
  return sessionStorage.getItem(TOKEN_KEY);
}

/** Claims of a JWT, for display only (the server verifies the signature). */
export function claimsOf(token) {
  try {
    const part = token.split('.')[1];
    const b64 = part.replace(/-/g, '+').replace(/_/g, '/');
    const padded = b64 + '='.repeat((4 - (b64.length % 4)) % 4);
    const bytes = Uint8Array.from(atob(padded), (c) => c.charCodeAt(0));
    const claims = JSON.parse(new TextDecoder().decode(bytes));
    return claims && typeof claims === 'object' ? claims : {};
  } catch {
    return {};
  }
}

export function isAdmin(claims) {
  const roles = Array.isArray(claims.roles) ? claims.roles : [];
  return roles.includes('admin') || roles.includes('chat_admin');
}

/** An HTTP API failure, carrying the PROTOCOL §2 error body. */
export class ApiError extends Error {
  constructor(status, code, message, retryAfterMs) {
    super(message);
    this.status = status;
    this.code = code;
    this.retryAfterMs = retryAfterMs;
  }
}

/** Calls `{prefix}{path}` with the bearer token; resolves to the JSON body. */
export async function api(path, { method = 'GET', token, body, signal } = {}) {
  const headers = { Accept: 'application/json' };
  if (token) headers.Authorization = `Bearer ${token}`;
  let payload;
  if (body instanceof FormData) {
    payload = body;
  } else if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    payload = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(PREFIX + path, { method, headers, body: payload, signal, credentials: 'omit' });
  } catch (e) {
    if (e && e.name === 'AbortError') throw e;
    throw new ApiError(0, 'NETWORK', 'The server cannot be reached. Check your connection.');
  }
  const text = await response.text();
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    json = null;
  }
  if (!response.ok) {
    const message = (json && typeof json.error === 'string' && json.error) || `${response.status} ${response.statusText}`;
    const code = (json && json.code) || `HTTP_${response.status}`;
    throw new ApiError(response.status, code, message, json && json.retry_after_ms);
  }
  return json;
}

/**
 * Builds an element. `props` may hold `class`, `text` (textContent), `attrs`
 * (setAttribute, never an `on*` handler), `dataset` and `on` (event listeners).
 * Children are nodes or strings (strings become text nodes).
 */
export function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  if (props.class) node.className = props.class;
  if (props.text !== undefined && props.text !== null) node.textContent = String(props.text);
  for (const [k, v] of Object.entries(props.attrs || {})) {
    if (/^on/i.test(k)) continue;
    if (v === false || v === null || v === undefined) continue;
    node.setAttribute(k, v === true ? '' : String(v));
  }
  for (const [k, v] of Object.entries(props.dataset || {})) node.dataset[k] = String(v);
  for (const [k, v] of Object.entries(props.on || {})) node.addEventListener(k, v);
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    node.append(typeof child === 'string' ? document.createTextNode(child) : child);
  }
  return node;
}

const UNITS = [
  ['year', 365 * 24 * 3600],
  ['month', 30 * 24 * 3600],
  ['week', 7 * 24 * 3600],
  ['day', 24 * 3600],
  ['hour', 3600],
  ['minute', 60],
  ['second', 1],
];

/** "3 minutes ago", "just now", … for an RFC3339 time. */
export function relativeTime(iso, now = Date.now()) {
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return '';
  const seconds = Math.round((t - now) / 1000);
  if (Math.abs(seconds) < 10) return 'just now';
  const fmt = new Intl.RelativeTimeFormat(undefined, { numeric: 'auto' });
  for (const [unit, size] of UNITS) {
    if (Math.abs(seconds) >= size || unit === 'second') {
      return fmt.format(Math.round(seconds / size), unit);
    }
  }
  return '';
}

/** A local date and time for tooltips and tables. */
export function absoluteTime(iso) {
  const t = Date.parse(iso);
  return Number.isNaN(t) ? '' : new Date(t).toLocaleString();
}

/** "1h 02m", "45s" for a duration in seconds. */
export function formatDuration(seconds) {
  const s = Math.max(0, Math.floor(Number(seconds) || 0));
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const r = s % 60;
  if (h) return `${h}h ${String(m).padStart(2, '0')}m`;
  if (m) return `${m}m ${String(r).padStart(2, '0')}s`;
  return `${r}s`;
}

/**
 * Common page start: stores the token, shows who is signed in, reveals admin links
 * for admins, and shows the sign-in notice when there is no token.
 */
export function startPage() {
  const token = takeToken();
  const claims = token ? claimsOf(token) : {};
  const who = document.getElementById('who');
  if (who && token) {
    const name = claims.name || claims.user_id || '';
    who.textContent = name ? `Signed in as ${name}` : '';
  }
  if (isAdmin(claims)) {
    for (const link of document.querySelectorAll('.admin-only')) link.hidden = false;
  }
  const signin = document.getElementById('signin');
  if (signin) signin.hidden = Boolean(token);
  return { token, claims };
}

/** Human text for an API failure. */
export function describeError(e) {
  if (e instanceof ApiError) {
    if (e.status === 401) return 'Your sign-in has expired or is invalid. Open a fresh sign-in link.';
    if (e.status === 429 && e.retryAfterMs) {
      return `${e.message} (try again in ${Math.ceil(e.retryAfterMs / 1000)} s)`;
    }
    return e.message;
  }
  return String((e && e.message) || e);
}
