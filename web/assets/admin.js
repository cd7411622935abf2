// The admin page: metric cards (GET /admin/metrics), the sessions table whose
// controls map one-to-one onto the GET /admin/sessions query parameters, takeover
// and release, and a chat view in which the admin talks to the user over the
// WebSocket (`user_message` with `session_id` and `sender: "admin"`).

import { ChatSocket } from './socket.js';
import { absoluteTime, api, describeError, el, formatDuration, isAdmin, relativeTime, startPage } from './common.js';
import { errorItem, keepScrolled, messageItem, noticeItem, setBody } from './render.js';

const $ = (id) => document.getElementById(id);
const { token, claims } = startPage();
const me = claims.name || claims.user_id || '';

const FILTERS = ['user_id', 'status', 'admin_assisted', 'start_time_from', 'start_time_to', 'sort_by', 'sort_order', 'limit'];
const form = $('filters');
let offset = 0;
let lastPage = { total: 0, count: 0, limit: 25 };

function showError(e) {
  const box = $('admin-error');
  box.hidden = false;
  box.textContent = describeError(e);
}

function clearError() {
  $('admin-error').hidden = true;
}

// ---- metrics ---------------------------------------------------------------------

const CARDS = [
  ['total_sessions', 'Sessions', (v) => v],
  ['active_sessions', 'Active now', (v) => v],
  ['total_tokens', 'Tokens', (v) => Number(v).toLocaleString()],
  ['avg_response_time_ms', 'Avg response', (v) => `${v} ms`],
  ['max_response_time_ms', 'Slowest response', (v) => `${v} ms`],
  ['admin_assisted_count', 'Assisted', (v) => v],
];

async function loadMetrics() {
  try {
    const m = await api('/admin/metrics', { token });
    $('metrics').replaceChildren(
      ...CARDS.map(([key, label, fmt]) =>
        el('div', { class: 'card', dataset: { metric: key } }, el('dt', { text: label }), el('dd', { text: fmt(m[key] ?? 0) })),
      ),
    );
  } catch (e) {
    showError(e);
  }
}

// ---- sessions table --------------------------------------------------------------

function toRfc3339(local) {
  if (!local) return '';
  const t = new Date(local);
  return Number.isNaN(t.getTime()) ? '' : t.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

function fromRfc3339(iso) {
  const t = new Date(iso);
  if (Number.isNaN(t.getTime())) return '';
  const pad = (n) => String(n).padStart(2, '0');
  return `${t.getFullYear()}-${pad(t.getMonth() + 1)}-${pad(t.getDate())}T${pad(t.getHours())}:${pad(t.getMinutes())}`;
}

/** The query string of GET /admin/sessions for the form's current values. */
function query() {
  const q = new URLSearchParams();
  for (const name of FILTERS) {
    let value = form.elements[name].value.trim();
    if (name.startsWith('start_time_')) value = toRfc3339(value);
    if (value) q.set(name, value);
  }
  q.set('offset', String(offset));
  return q;
}

/** Restores the filters from the address bar, so a reload keeps the view. */
function restoreFromUrl() {
  const params = new URL(location.href).searchParams;
  for (const name of FILTERS) {
    if (!params.has(name)) continue;
    const value = params.get(name);
    form.elements[name].value = name.startsWith('start_time_') ? fromRfc3339(value) : value;
  }
  offset = Math.max(0, Number(params.get('offset')) || 0);
}

async function loadSessions() {
  const q = query();
  history.replaceState(history.state, '', `${location.pathname}?${q}`);
  $('table-status').textContent = 'Loading…';
  try {
    const body = await api(`/admin/sessions?${q}`, { token });
    clearError();
    lastPage = body;
    const rows = (body.sessions || []).map(row);
    $('sessions-body').replaceChildren(...rows);
    const first = body.count ? body.offset + 1 : 0;
    const last = body.offset + body.count;
    $('page-info').textContent = body.count ? `${first}–${last} of ${body.total}` : `0 of ${body.total}`;
    $('prev').disabled = body.offset <= 0;
    $('next').disabled = last >= body.total;
    $('table-status').textContent = body.total ? '' : 'No sessions match these filters.';
    markSorted();
  } catch (e) {
    $('table-status').textContent = '';
    showError(e);
  }
}

function row(s) {
  const actions = el('div', { class: 'actions-row' });
  const label = s.name || s.id;
  if (s.is_active) {
    const mine = s.admin_assisted && s.assisting_admin_name === me;
    if (!s.admin_assisted || !mine) {
      actions.append(
        el('button', { class: 'btn-small', attrs: { type: 'button', 'aria-label': `Take over ${label}` }, text: 'Take over', on: { click: () => takeover(s) } }),
      );
    }
    if (mine) {
      actions.append(
        el('button', { class: 'btn-small', attrs: { type: 'button', 'aria-label': `Chat in ${label}` }, text: 'Chat', on: { click: () => openChat(s) } }),
        el('button', { class: 'btn-small btn-secondary', attrs: { type: 'button', 'aria-label': `Release ${label}` }, text: 'Release', on: { click: () => release(s.id) } }),
      );
    }
  }
  const td = (text, cls) => el('td', { class: cls, text });
  return el(
    'tr',
    { dataset: { sessionId: s.id } },
    td(s.user_id, 'mono'),
    el('td', { attrs: { title: s.id } }, s.name || 'New Chat'),
    el('td', {}, el('span', { class: `badge ${s.is_active ? 'badge-active' : 'badge-ended'}`, text: s.is_active ? 'active' : 'ended' })),
    el('td', {}, el('time', { attrs: { datetime: s.start_time, title: absoluteTime(s.start_time) }, text: relativeTime(s.start_time) })),
    el('td', {}, el('time', { attrs: { datetime: s.last_activity, title: absoluteTime(s.last_activity) }, text: relativeTime(s.last_activity) })),
    td(String(s.message_count), 'num'),
    td(Number(s.total_tokens || 0).toLocaleString(), 'num'),
    td(formatDuration(s.duration), 'num'),
    td(s.admin_assisted ? s.assisting_admin_name || 'yes' : ''),
    el('td', { class: 'actions' }, actions),
  );
}

function markSorted() {
  const by = form.elements.sort_by.value;
  const order = form.elements.sort_order.value;
  for (const th of document.querySelectorAll('th[data-sort]')) {
    th.setAttribute('aria-sort', th.dataset.sort === by ? (order === 'asc' ? 'ascending' : 'descending') : 'none');
  }
}

// Sortable headers: a button in each sortable column header.
for (const th of document.querySelectorAll('th[data-sort]')) {
  const text = th.textContent;
  th.replaceChildren(
    el('button', {
      class: 'sort',
      attrs: { type: 'button' },
      text,
      on: {
        click: () => {
          if (form.elements.sort_by.value === th.dataset.sort) {
            form.elements.sort_order.value = form.elements.sort_order.value === 'asc' ? 'desc' : 'asc';
          } else {
            form.elements.sort_by.value = th.dataset.sort;
            form.elements.sort_order.value = 'desc';
          }
          offset = 0;
          loadSessions();
        },
      },
    }),
  );
}

form.addEventListener('submit', (e) => {
  e.preventDefault();
  offset = 0;
  loadSessions();
});
form.addEventListener('reset', () => {
  setTimeout(() => {
    offset = 0;
    loadSessions();
  }, 0);
});
$('prev').addEventListener('click', () => {
  offset = Math.max(0, offset - (Number(lastPage.limit) || 25));
  loadSessions();
});
$('next').addEventListener('click', () => {
  offset += Number(lastPage.limit) || 25;
  loadSessions();
});
$('refresh').addEventListener('click', () => {
  loadMetrics();
  loadSessions();
});

// ---- takeover / release ----------------------------------------------------------

async function takeover(s) {
  try {
    await api(`/admin/takeover/${encodeURIComponent(s.id)}`, { method: 'POST', token });
    clearError();
    await loadSessions();
    openChat(s);
  } catch (e) {
    showError(e);
  }
}

async function release(id) {
  try {
    await api(`/admin/release/${encodeURIComponent(id)}`, { method: 'POST', token });
    clearError();
    if (chat && chat.sid === id) closeChat();
    await loadSessions();
  } catch (e) {
    showError(e);
  }
}

// ---- admin chat view -------------------------------------------------------------

let chat = null; // { sid, userId, socket, reply, unconfirmed, lastTyping }
const list = $('messages');
const LABELS = { user: 'User', ai: 'Assistant', admin: 'You', system: 'System' };

function openChat(s) {
  if (chat && chat.sid === s.id) {
    $('composer-input').focus();
    return;
  }
  closeChat();
  const section = $('admin-chat');
  section.hidden = false;
  $('admin-chat-title').textContent = `Conversation with ${s.user_id}: ${s.name || 'New Chat'}`;
  list.replaceChildren(noticeItem('You are assisting this user. Messages you send go to them; the assistant is paused until you release.'));
  const labels = { ...LABELS, user: s.user_id };
  chat = { sid: s.id, userId: s.user_id, labels, reply: null, unconfirmed: [], lastTyping: 0, socket: null };
  const current = chat;
  // The conversation so far, placed above anything that arrives live meanwhile.
  const intro = list.firstChild;
  api(`/admin/sessions/${encodeURIComponent(s.id)}`, { token })
    .then((detail) => {
      if (chat !== current) return;
      const items = (detail.messages || []).map((m) =>
        messageItem(
          { sender: m.sender, content: m.content, timestamp: m.timestamp, fileUrl: m.file_url, fileId: m.file_id, name: m.sender === 'admin' ? (m.metadata || {}).admin_name : undefined },
          current.labels,
        ),
      );
      intro.after(...items);
      keepScrolled(list, true);
    })
    .catch((e) => {
      if (chat === current) intro.after(errorItem(`History unavailable: ${describeError(e)}`));
    });
  current.socket = new ChatSocket({
    token,
    onConnected: () => {
      // Join the session's live frames; the replay shows the replies still buffered.
      // The history came over HTTP: only chunks after the last one seen live are
      // wanted (none at first), so nothing is shown twice.
      current.socket.send({ type: 'resume', session_id: current.sid, metadata: { last_seq: String(current.seq || Number.MAX_SAFE_INTEGER) } });
    },
    onFrame: (f) => onAdminFrame(current, f),
    onState: (state, detail) => {
      const conn = $('conn');
      conn.dataset.state = state;
      conn.textContent =
        state === 'open' ? 'Connected' : state === 'waiting' ? `Offline — retrying in ${Math.ceil(detail.delay / 1000)} s` : state === 'connecting' ? 'Connecting…' : 'Disconnected';
    },
  });
  current.socket.start();
  section.scrollIntoView({ block: 'start' });
  $('composer-input').focus();
}

function closeChat() {
  if (!chat) return;
  chat.socket.stop();
  chat = null;
  $('admin-chat').hidden = true;
  list.replaceChildren();
}

function onAdminFrame(c, f) {
  if (chat !== c) return;
  if (f.session_id && f.session_id !== c.sid) return;
  const meta = f.metadata || {};
  const add = (node) => {
    list.append(node);
    keepScrolled(list);
  };
  switch (f.type) {
    case 'user_message': {
      if (f.sender === 'admin') {
        const i = c.unconfirmed.indexOf(f.content);
        if (i >= 0) {
          c.unconfirmed.splice(i, 1);
          return;
        }
      }
      add(messageItem({ sender: f.sender || 'user', content: f.content, timestamp: f.timestamp, name: f.sender === 'admin' ? meta.admin_name : undefined }, c.labels));
      break;
    }
    case 'ai_response': {
      const seq = Number(meta.seq) || 0;
      if (seq && seq <= (c.seq || 0)) return;
      if (seq) c.seq = seq;
      if (!c.reply) {
        const item = messageItem({ sender: 'ai', content: '', timestamp: f.timestamp }, c.labels);
        item.classList.add('streaming');
        add(item);
        c.reply = { item, text: '' };
      }
      c.reply.text += f.content || '';
      setBody(c.reply.item, c.reply.text);
      if (meta.done === 'true') {
        c.reply.item.classList.remove('streaming');
        c.reply = null;
      }
      break;
    }
    case 'file_upload':
    case 'voice_message':
      add(messageItem({ sender: f.sender || 'user', content: '', timestamp: f.timestamp, fileUrl: f.file_url, fileId: f.file_id }, c.labels));
      break;
    case 'admin_join':
      if (c.reply) {
        c.reply.item.classList.remove('streaming');
        c.reply = null;
      }
      add(noticeItem(`${meta.admin_name || f.content || 'An administrator'} joined the conversation.`));
      break;
    case 'admin_leave':
      add(noticeItem(`${meta.admin_name || 'The administrator'} left the conversation.`));
      break;
    case 'typing_indicator':
      if (f.sender === 'user') {
        $('typing').textContent = `${c.userId} is typing…`;
        clearTimeout(c.typingTimer);
        c.typingTimer = setTimeout(() => {
          $('typing').textContent = '';
        }, 4000);
      }
      break;
    case 'notification':
      add(noticeItem(f.content || 'Notification'));
      break;
    case 'error': {
      const err = f.error || {};
      add(errorItem(err.message || 'Something went wrong.', err.code));
      break;
    }
    default:
      break;
  }
}

function sendAdminMessage() {
  const input = $('composer-input');
  const content = input.value.trim();
  if (!content || !chat) return;
  if (!chat.socket.send({ type: 'user_message', session_id: chat.sid, sender: 'admin', content })) {
    list.append(errorItem('Not connected. Your message was kept; send it again when the connection is back.', 'OFFLINE'));
    return;
  }
  chat.unconfirmed.push(content);
  if (chat.unconfirmed.length > 50) chat.unconfirmed.shift();
  list.append(messageItem({ sender: 'admin', content, timestamp: new Date().toISOString() }, chat.labels));
  keepScrolled(list, true);
  input.value = '';
}

$('composer').addEventListener('submit', (e) => {
  e.preventDefault();
  sendAdminMessage();
});
$('composer-input').addEventListener('keydown', (e) => {
  if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
    e.preventDefault();
    sendAdminMessage();
  }
});
$('composer-input').addEventListener('input', () => {
  if (!chat) return;
  const now = Date.now();
  if (now - chat.lastTyping < 3000) return;
  chat.lastTyping = now;
  chat.socket.send({ type: 'typing_indicator', session_id: chat.sid, sender: 'admin' });
});
$('admin-release').addEventListener('click', () => chat && release(chat.sid));
$('admin-chat-close').addEventListener('click', closeChat);

// ---- start -----------------------------------------------------------------------

if (token && isAdmin(claims)) {
  $('signin').hidden = true;
  restoreFromUrl();
  loadMetrics();
  loadSessions();
} else {
  $('signin').hidden = false;
  for (const section of document.querySelectorAll('main > section')) section.hidden = true;
}
