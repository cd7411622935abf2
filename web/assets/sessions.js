// The sessions page: the caller's conversations, newest first (GET /sessions).

import { absoluteTime, api, describeError, el, relativeTime, startPage } from './common.js';

const { token } = startPage();
const status = document.getElementById('status');
const list = document.getElementById('sessions');

function sessionEntry(s) {
  const href = `./?session=${encodeURIComponent(s.id)}`;
  const count = Number(s.message_count) || 0;
  const badges = el('span', { class: 'badges' });
  badges.append(el('span', { class: `badge ${s.is_active ? 'badge-active' : 'badge-ended'}`, text: s.is_active ? 'active' : 'ended' }));
  if (s.admin_assisted) {
    badges.append(el('span', { class: 'badge badge-assisted', text: s.assisting_admin_name ? `assisted by ${s.assisting_admin_name}` : 'assisted' }));
  }
  return el(
    'li',
    { class: 'session-item', dataset: { sessionId: s.id } },
    el('a', { class: 'session-link', attrs: { href } }, el('span', { class: 'session-title', text: s.name || 'New Chat' })),
    el(
      'span',
      { class: 'session-meta' },
      el('time', { attrs: { datetime: s.last_activity, title: absoluteTime(s.last_activity) }, text: relativeTime(s.last_activity) }),
      ' · ',
      `${count} message${count === 1 ? '' : 's'}`,
      ' ',
      badges,
    ),
  );
}

async function load() {
  if (!token) {
    status.textContent = '';
    return;
  }
  try {
    const body = await api('/sessions', { token });
    const sessions = body.sessions || [];
    list.replaceChildren(...sessions.map(sessionEntry));
    if (!sessions.length) status.textContent = 'No conversations yet. Start one!';
    else if (body.truncated) status.textContent = `Showing your ${sessions.length} most recent conversations.`;
    else status.textContent = `${sessions.length} conversation${sessions.length === 1 ? '' : 's'}.`;
  } catch (e) {
    status.textContent = describeError(e);
    status.classList.add('error-text');
  }
}

load();
