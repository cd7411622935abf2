// The chat page: one conversation over the WebSocket, with streaming replies, stop,
// model choice, help request, share link, takeover banner and file attach.
//
// Losslessness across blips and reloads: every reply chunk carries the session-wide
// `seq`. The page keeps, in sessionStorage, the session id and the `seq` of the last
// chunk of the last *completed* reply (the floor). After a blip or a reload it
// resumes from the floor, so a running reply is replayed from its first chunk.
// Chunks are ordered by `seq` (live chunks may overtake the replay), duplicates are
// dropped, and a reply is complete once its `done` chunk and everything before it
// are in. A replayed reply that the HTTP history already holds (it finished while
// the page was away) is dropped instead of shown twice.

import { ChatSocket } from './socket.js';
import { api, describeError, el, PREFIX, startPage, UI_BASE } from './common.js';
import { errorItem, keepScrolled, messageItem, noticeItem, setBody } from './render.js';

const $ = (id) => document.getElementById(id);
const TYPING_SHOWN_MS = 4000;
const TYPING_SEND_EVERY_MS = 3000;
const STOP_GRACE_MS = 3000;

const { token, claims } = startPage();
const list = $('messages');
const input = $('composer-input');
const form = $('composer');
const sendBtn = $('send');
const stopBtn = $('stop');

/** Per-user persistent state of this tab. */
const storeKey = `chatbox.chat.${claims.user_id || 'anonymous'}`;
function loadStore() {
  try {
    const s = JSON.parse(sessionStorage.getItem(storeKey) || '{}');
    return { sid: String(s.sid || ''), seq: Number(s.seq) || 0 };
  } catch {
    return { sid: '', seq: 0 };
  }
}
const stored = loadStore();

const state = {
  sid: stored.sid,
  seq: stored.seq,
  chunks: new Map(), // seq -> { content, done } of chunks after the floor (`seq`)
  gapTimer: null,
  historyFor: null, // session whose history is rendered
  readOnly: false,
  reply: null, // { item, text }
  busy: false,
  assistedBy: null,
  dedupe: [], // texts of history AI messages a replayed reply may duplicate
  dedupeActive: false,
  unconfirmed: [], // texts of own messages not yet echoed back (multi-device echo)
  queue: null, // frames held while history loads
  resetOnNext: false, // set by `loading`: a restarted server numbers from 1 again
  lastTypingSent: 0,
  lastSent: null, // { item, content, at } of the last message sent, until accepted
};

function save() {
  sessionStorage.setItem(storeKey, JSON.stringify({ sid: state.sid, seq: state.seq }));
}

const params = new URL(location.href).searchParams;
const viewSid = params.get('session');
let wantNew = params.has('new');
if (wantNew) {
  const url = new URL(location.href);
  url.searchParams.delete('new');
  history.replaceState(history.state, '', url.pathname + url.search + url.hash);
}

function append(node, force = false) {
  list.append(node);
  keepScrolled(list, force);
  return node;
}

function setBusy(busy) {
  state.busy = busy;
  stopBtn.disabled = !busy || Boolean(state.assistedBy);
}

function setComposerEnabled(enabled) {
  input.disabled = !enabled;
  sendBtn.disabled = !enabled;
}

/** Clears the view for a new conversation (the next message starts a session). */
function startFresh() {
  finishReply(true);
  list.replaceChildren();
  $('session-name').textContent = '';
  state.sid = '';
  state.seq = 0;
  state.chunks.clear();
  save();
  $('share').disabled = true;
  $('share-box').hidden = true;
  state.historyFor = '';
  append(noticeItem('New conversation. Say hello!'));
}

function adoptSession(sid) {
  if (sid === state.sid) return;
  state.sid = sid;
  state.seq = 0;
  state.chunks.clear();
  state.reply = null;
  save();
  $('share').disabled = !sid;
  $('share-box').hidden = true;
}

// ---- history -------------------------------------------------------------------

const SENDER_NAMES = { user: 'You', ai: 'Assistant', admin: 'Admin', system: 'System' };

function renderHistoryMessage(m) {
  const name = m.sender === 'admin' ? adminLabel(m.metadata && m.metadata.admin_name) : undefined;
  return messageItem(
    { sender: m.sender, content: m.content, timestamp: m.timestamp, fileUrl: m.file_url, fileId: m.file_id, name },
    SENDER_NAMES,
  );
}

async function loadHistory(sid) {
  const detail = await api(`/sessions/${encodeURIComponent(sid)}`, { token });
  list.replaceChildren();
  state.dedupe = [];
  for (const m of detail.messages || []) {
    if (m.sender === 'ai') state.dedupe.push(m.content || '');
    append(renderHistoryMessage(m), true);
  }
  $('session-name').textContent = detail.name || '';
  if (detail.model_id) $('model').value = detail.model_id;
  state.historyFor = sid;
  state.dedupeActive = true;
  return detail;
}

/**
 * `admin_join` is not replayed, so after a reload the takeover state comes from the
 * session list (GET /sessions carries `admin_assisted` and the admin's name).
 */
async function refreshAssistance(sid) {
  try {
    const { sessions = [] } = await api('/sessions', { token });
    const meta = sessions.find((s) => s.id === sid);
    showAssisted(meta && meta.admin_assisted ? meta.assisting_admin_name || 'an administrator' : null);
  } catch {
    // The banner is informative; the conversation works without it.
  }
}

function showAssisted(name) {
  state.assistedBy = name;
  const banner = $('assisted');
  banner.hidden = !name;
  banner.textContent = name ? `You are being assisted by ${name}.` : '';
  stopBtn.disabled = !state.busy || Boolean(name);
}

/** Runs `work` while incoming frames wait, then handles them in order. */
async function holdingFrames(work) {
  state.queue = state.queue || [];
  try {
    await work();
  } finally {
    const held = state.queue;
    state.queue = null;
    for (const frame of held) handleFrame(frame);
  }
}

// ---- connection ------------------------------------------------------------------

const socket = token
  ? new ChatSocket({
      token,
      onConnected: (status) => holdingFrames(() => onConnected(status)),
      onFrame: (frame) => (state.queue ? state.queue.push(frame) : handleFrame(frame)),
      onState: showConnState,
    })
  : null;

/** Failed connects in a row after which the page asks whether the token is still valid. */
const AUTH_CHECK_AFTER = 3;

function showConnState(s, detail) {
  if (s === 'waiting' && detail.attempt === AUTH_CHECK_AFTER) checkSignIn();
  const conn = $('conn');
  conn.dataset.state = s;
  if (s === 'connecting') conn.textContent = 'Connecting…';
  else if (s === 'open') conn.textContent = 'Connected';
  else if (s === 'waiting') conn.textContent = `Offline — retrying in ${Math.ceil(detail.delay / 1000)} s`;
  else conn.textContent = 'Disconnected';
}

/**
 * A browser cannot see why a WebSocket handshake failed. When connecting keeps
 * failing, ask the HTTP API: a 401 means the token expired, and retrying is pointless.
 */
async function checkSignIn() {
  try {
    await api('/sessions', { token });
  } catch (e) {
    if (e.status === 401) {
      socket.stop();
      const signin = $('signin');
      signin.hidden = false;
      signin.textContent = describeError(e);
      setComposerEnabled(false);
    }
  }
}

function resume(lastSeq) {
  if (!state.sid) return;
  socket.send({ type: 'resume', session_id: state.sid, metadata: { last_seq: String(Math.max(0, lastSeq)) } });
}

async function onConnected(status) {
  setupModels(status.models || []);
  const active = status.session_id || '';
  try {
    if (wantNew) {
      wantNew = false;
      if (active) await api(`/sessions/${encodeURIComponent(active)}/end`, { method: 'POST', token });
      startFresh();
      return;
    }
    if (viewSid && viewSid !== active) {
      // An ended (or other) conversation opened from the sessions page: read-only.
      if (state.historyFor !== viewSid) await loadHistory(viewSid);
      state.readOnly = true;
      setComposerEnabled(false);
      const note = $('readonly-note');
      note.hidden = false;
      note.replaceChildren(
        'This conversation has ended and is read-only. ',
        el('a', { attrs: { href: './' }, text: 'Back to the current chat' }),
      );
      $('share').disabled = false;
      state.sid = viewSid;
      return;
    }
    if (!active) {
      // No active session: show the last one this tab knew (e.g. after a restart
      // that ended it) so nothing visibly disappears; the next message starts anew.
      // The server binds the next message to the user's active session (it may
      // rehydrate this one from the store) or starts a new one, and says which.
      if (state.sid && state.historyFor !== state.sid) {
        try {
          await loadHistory(state.sid);
        } catch {
          list.replaceChildren();
        }
      }
      return;
    }
    if (active === state.sid && state.historyFor === active) {
      resume(state.seq); // a blip: chunks already held are dropped as duplicates
      await refreshAssistance(active); // a takeover may have happened meanwhile
      return;
    }
    // A reload (same session) resumes from the floor; another device's session
    // from the start of the replay buffer, deduplicated against the history.
    adoptSession(active);
    await loadHistory(active);
    await refreshAssistance(active);
    state.reply = null;
    state.chunks.clear();
    resume(state.seq);
    $('share').disabled = false;
  } catch (e) {
    append(errorItem(describeError(e), e.code));
  }
}

// ---- frames ----------------------------------------------------------------------

function handleFrame(f) {
  if (state.readOnly && f.type !== 'connection_status' && f.type !== 'error') return;
  if (f.session_id && f.session_id !== state.sid && !state.readOnly && f.type !== 'connection_status') {
    adoptSession(f.session_id); // e.g. the server created the session for our first message
  }
  const meta = f.metadata || {};
  switch (f.type) {
    case 'connection_status':
      if (f.models) setupModels(f.models);
      if (f.model_id) $('model').value = f.model_id;
      if (f.session_id && !state.readOnly && f.session_id !== state.sid && socket.greeted) adoptSession(f.session_id);
      $('share').disabled = !state.sid;
      break;
    case 'loading':
      state.lastSent = null; // accepted
      // A new reply starts live: nothing to deduplicate, and its first chunk opens a
      // new seq range (a restarted server numbers from 1 again).
      state.dedupeActive = false;
      state.resetOnNext = true;
      ensureReply();
      setBusy(true);
      break;
    case 'ai_response':
      onChunk(f, meta);
      break;
    case 'user_message':
      onUserMessage(f, meta);
      break;
    case 'file_upload':
    case 'voice_message':
      if (f.sender === 'user' && state.unconfirmed.includes(`file:${f.file_id}`)) {
        state.unconfirmed.splice(state.unconfirmed.indexOf(`file:${f.file_id}`), 1);
        state.lastSent = null; // accepted
      } else {
        append(messageItem({ sender: f.sender || 'user', content: f.content || '', timestamp: f.timestamp, fileUrl: f.file_url, fileId: f.file_id }, SENDER_NAMES));
      }
      break;
    case 'error':
      onError(f.error || {});
      break;
    case 'admin_join': {
      const name = meta.admin_name || f.content || 'an administrator';
      finishReply(true);
      showAssisted(name);
      append(noticeItem(`${name} joined the conversation.`));
      setBusy(false);
      break;
    }
    case 'admin_leave': {
      const name = meta.admin_name || state.assistedBy || 'The administrator';
      showAssisted(null);
      append(noticeItem(`${name} left the conversation. The assistant answers again.`));
      setBusy(state.busy);
      break;
    }
    case 'notification':
      append(noticeItem(f.content || 'Notification'));
      break;
    case 'typing_indicator':
      if (f.sender !== 'user') showTyping(f.sender === 'admin' ? state.assistedBy || 'The administrator' : 'The assistant');
      break;
    default:
      break;
  }
}

function ensureReply() {
  if (!state.reply) {
    const item = append(messageItem({ sender: 'ai', content: '', timestamp: new Date().toISOString() }, SENDER_NAMES));
    item.classList.add('streaming');
    item.setAttribute('aria-busy', 'true');
    state.reply = { item, text: '' };
  }
  return state.reply;
}

/** Upper bound for a missing chunk to show up before the reply goes on without it. */
const GAP_WAIT_MS = 1500;

function onChunk(f, meta) {
  const seq = Number(meta.seq) || 0;
  if (!seq) {
    // A complete, unsequenced reply.
    append(messageItem({ sender: 'ai', content: f.content, timestamp: f.timestamp }, SENDER_NAMES));
    return;
  }
  if (state.resetOnNext) {
    state.resetOnNext = false;
    if (seq <= state.seq && state.chunks.size === 0) state.seq = seq - 1;
  }
  if (seq <= state.seq || state.chunks.has(seq)) return; // already shown
  state.chunks.set(seq, { content: f.content || '', done: meta.done === 'true' });
  drain();
}

/** Renders every chunk that is in order after the floor; completes finished replies. */
function drain() {
  let text = '';
  let next = state.seq + 1;
  while (state.chunks.has(next)) {
    const chunk = state.chunks.get(next);
    text += chunk.content;
    if (chunk.done) {
      for (let s2 = state.seq + 1; s2 <= next; s2 += 1) state.chunks.delete(s2);
      state.seq = next;
      completeReply(text);
      text = '';
    }
    next += 1;
  }
  if (text) {
    const reply = ensureReply();
    reply.text = text;
    setBody(reply.item, text);
    keepScrolled(list);
    setBusy(true);
  }
  clearTimeout(state.gapTimer);
  if (state.chunks.size && !state.chunks.has(state.seq + 1)) {
    // Something before the first held chunk is missing (it left the server's replay
    // buffer): go on without it rather than wait forever.
    state.gapTimer = setTimeout(() => {
      state.seq = Math.min(...state.chunks.keys()) - 1;
      drain();
    }, GAP_WAIT_MS);
  }
  save();
}

function completeReply(text) {
  const reply = state.reply;
  state.reply = null;
  setBusy(false);
  const duplicate = state.dedupeActive ? state.dedupe.indexOf(text) : -1;
  if (duplicate >= 0) {
    state.dedupe.splice(duplicate, 1); // the history already shows this reply
    if (reply) reply.item.remove();
    return;
  }
  if (!text) {
    if (reply) reply.item.remove();
    return;
  }
  const item = reply ? reply.item : append(messageItem({ sender: 'ai', content: '', timestamp: new Date().toISOString() }, SENDER_NAMES));
  setBody(item, text);
  if (item.classList.contains('stopping')) item.classList.add('stopped');
  item.classList.remove('streaming', 'stopping');
  item.removeAttribute('aria-busy');
}

/** Ends the running reply where it is (stopped, taken over, failed). */
function finishReply(cancelled) {
  const reply = state.reply;
  state.reply = null;
  if (state.chunks.size) state.seq = Math.max(state.seq, ...state.chunks.keys());
  state.chunks.clear();
  clearTimeout(state.gapTimer);
  save();
  setBusy(false);
  if (!reply) return;
  reply.item.classList.remove('streaming', 'stopping');
  reply.item.removeAttribute('aria-busy');
  if (!reply.text) {
    reply.item.remove();
    return;
  }
  if (cancelled) reply.item.classList.add('stopped');
}

function onUserMessage(f, meta) {
  if (f.sender === 'admin') {
    state.dedupeActive = false;
    append(messageItem({ sender: 'admin', content: f.content, timestamp: f.timestamp, name: adminLabel(meta.admin_name || state.assistedBy) }, SENDER_NAMES));
    return;
  }
  const i = state.unconfirmed.indexOf(f.content);
  if (i >= 0) {
    state.unconfirmed.splice(i, 1); // our own message coming back
    return;
  }
  state.dedupeActive = false;
  append(messageItem({ sender: 'user', content: f.content, timestamp: f.timestamp }, SENDER_NAMES));
}

function adminLabel(name) {
  return name ? `${name} (admin)` : 'Admin';
}

/** Errors that mean the message just sent was refused (not stored). */
const REFUSED = ['TOO_MANY_REQUESTS', 'RATE_LIMITED', 'INVALID_FORMAT', 'DATABASE_ERROR', 'FORBIDDEN', 'NOT_FOUND', 'UNAUTHORIZED'];
const REFUSAL_WINDOW_MS = 10000;

function onError(err) {
  const code = err.code || 'ERROR';
  const sent = state.lastSent;
  if (sent && REFUSED.includes(code) && Date.now() - sent.at < REFUSAL_WINDOW_MS) {
    state.lastSent = null;
    sent.item.classList.add('failed');
    sent.item.querySelector('.msg-meta').append(el('span', { class: 'msg-failed', text: 'not sent' }));
    const i = state.unconfirmed.indexOf(sent.content);
    if (i >= 0) state.unconfirmed.splice(i, 1);
    if (!input.value && sent.content) input.value = sent.content; // nothing typed is lost
  }
  let message = err.message || 'Something went wrong.';
  if (err.retry_after) message += ` Try again in ${Math.ceil(err.retry_after / 1000)} s.`;
  if (state.reply && code !== 'INVALID_FORMAT' && code !== 'RATE_LIMITED' && code !== 'TOO_MANY_REQUESTS') finishReply(true);
  else if (!state.reply) setBusy(false);
  append(errorItem(message, code));
}

let typingTimer = null;
function showTyping(who) {
  const p = $('typing');
  p.textContent = `${who} is typing…`;
  clearTimeout(typingTimer);
  typingTimer = setTimeout(() => {
    p.textContent = '';
  }, TYPING_SHOWN_MS);
}

// ---- controls --------------------------------------------------------------------

function setupModels(models) {
  const label = $('model-label');
  const select = $('model');
  if (!Array.isArray(models) || models.length < 2) {
    label.hidden = true;
    return;
  }
  const current = select.value;
  select.replaceChildren(...models.map((m) => el('option', { attrs: { value: m.id }, text: m.name || m.id })));
  if (current && models.some((m) => m.id === current)) select.value = current;
  label.hidden = false;
}

$('model').addEventListener('change', (e) => {
  const frame = { type: 'model_select', model_id: e.target.value };
  if (state.sid) frame.session_id = state.sid;
  if (!socket.send(frame)) append(errorItem('Not connected: the model was not changed.', 'OFFLINE'));
});

function sendMessage() {
  const content = input.value.trim();
  if (!content || state.readOnly) return;
  if (state.busy && !state.assistedBy) {
    append(errorItem('A reply is still being written. Wait for it or press Stop.', 'BUSY'));
    return;
  }
  const frame = { type: 'user_message', content };
  if (state.sid) frame.session_id = state.sid;
  if (!socket || !socket.send(frame)) {
    append(errorItem('Not connected. Your message was kept; send it again when the connection is back.', 'OFFLINE'));
    return;
  }
  state.dedupeActive = false;
  state.unconfirmed.push(content);
  if (state.unconfirmed.length > 50) state.unconfirmed.shift();
  const item = append(messageItem({ sender: 'user', content, timestamp: new Date().toISOString() }, SENDER_NAMES), true);
  state.lastSent = { item, content, at: Date.now() };
  input.value = '';
  if (!state.assistedBy) setBusy(true);
}

form.addEventListener('submit', (e) => {
  e.preventDefault();
  sendMessage();
});

input.addEventListener('keydown', (e) => {
  if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
    e.preventDefault();
    sendMessage();
  }
});

input.addEventListener('input', () => {
  if (!state.assistedBy || !state.sid) return;
  const now = Date.now();
  if (now - state.lastTypingSent < TYPING_SEND_EVERY_MS) return;
  state.lastTypingSent = now;
  socket.send({ type: 'typing_indicator', session_id: state.sid });
});

stopBtn.addEventListener('click', () => {
  const frame = { type: 'stop' };
  if (state.sid) frame.session_id = state.sid;
  if (socket.send(frame)) {
    stopBtn.disabled = true;
    const reply = state.reply;
    if (reply) reply.item.classList.add('stopping');
    // The server ends a stopped reply with its final chunk. If none comes (the
    // generation was already gone, e.g. after a server restart), end it here.
    setTimeout(() => {
      if (state.busy && state.reply === reply) finishReply(true);
    }, STOP_GRACE_MS);
  }
});

$('help').addEventListener('click', () => {
  const frame = { type: 'help_request' };
  if (state.sid) frame.session_id = state.sid;
  // The server confirms with a `notification`.
  if (!socket || !socket.send(frame)) append(errorItem('Not connected: help could not be requested.', 'OFFLINE'));
});

$('share').addEventListener('click', async () => {
  if (!state.sid) return;
  try {
    const { share_token: shareToken } = await api(`/sessions/${encodeURIComponent(state.sid)}/share`, { method: 'POST', token });
    const link = new URL(`${UI_BASE}shared/${encodeURIComponent(shareToken)}`, location.origin).href;
    $('share-link').value = link;
    $('share-box').hidden = false;
    $('share-link').focus();
    $('share-link').select();
  } catch (e) {
    append(errorItem(describeError(e), e.code));
  }
});

$('share-copy').addEventListener('click', async () => {
  const link = $('share-link');
  try {
    await navigator.clipboard.writeText(link.value);
    $('share-copy').textContent = 'Copied';
  } catch {
    link.select();
  }
});

$('share-revoke').addEventListener('click', async () => {
  if (!state.sid) return;
  try {
    await api(`/sessions/${encodeURIComponent(state.sid)}/share`, { method: 'DELETE', token });
    $('share-box').hidden = true;
    $('share-link').value = '';
    append(noticeItem('The share link was revoked: it no longer opens this conversation.'));
    $('share').focus();
  } catch (e) {
    append(errorItem(describeError(e), e.code));
  }
});

$('share-box').addEventListener('keydown', (e) => {
  if (e.key === 'Escape') $('share-close').click();
});

$('share-close').addEventListener('click', () => {
  $('share-box').hidden = true;
  $('share').focus();
});

$('new-chat').addEventListener('click', async () => {
  if (state.readOnly) {
    location.href = './?new=1';
    return;
  }
  try {
    if (state.sid) await api(`/sessions/${encodeURIComponent(state.sid)}/end`, { method: 'POST', token });
  } catch (e) {
    append(errorItem(describeError(e), e.code));
    return;
  }
  startFresh();
  input.focus();
});

// File attach, offered only when the server has an upload endpoint. An OPTIONS
// request has no side effect: a POST-only route answers 405 (or 2xx with CORS),
// a missing one 404.
async function probeUploads() {
  try {
    const response = await fetch(`${PREFIX}/uploads`, { method: 'OPTIONS', credentials: 'omit' });
    $('attach-label').hidden = response.status === 404;
  } catch {
    $('attach-label').hidden = true;
  }
}

$('attach').addEventListener('change', async (e) => {
  const file = e.target.files && e.target.files[0];
  e.target.value = '';
  if (!file) return;
  const body = new FormData();
  body.append('file', file);
  try {
    const up = await api('/uploads', { method: 'POST', token, body });
    const frame = { type: 'file_upload', file_id: up.file_id, file_url: up.file_url };
    if (state.sid) frame.session_id = state.sid;
    if (!socket.send(frame)) throw new Error('Not connected: the file was uploaded but not sent.');
    state.unconfirmed.push(`file:${up.file_id}`);
    const item = append(messageItem({ sender: 'user', content: file.name, timestamp: new Date().toISOString(), fileUrl: up.file_url, fileId: up.file_id }, SENDER_NAMES), true);
    state.lastSent = { item, content: '', at: Date.now() };
  } catch (err) {
    append(errorItem(describeError(err), err.code));
  }
});

// Keep the newest message in view when the viewport changes (phone rotation, the
// on-screen keyboard) if the reader was at the end.
let atEnd = true;
list.addEventListener('scroll', () => {
  atEnd = list.scrollHeight - list.scrollTop - list.clientHeight < 40;
});
new ResizeObserver(() => {
  if (atEnd) list.scrollTop = list.scrollHeight;
}).observe(list);

// ---- start -----------------------------------------------------------------------

if (!token) {
  setComposerEnabled(false);
  for (const id of ['help', 'share', 'new-chat']) $(id).disabled = true;
  $('conn').textContent = 'Not signed in';
} else {
  $('share').disabled = !state.sid;
  socket.start();
  probeUploads();
  input.focus();
}
