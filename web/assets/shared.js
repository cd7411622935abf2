// The read-only view behind a share link: GET /shared/{token}; no sign-in, no input.

import { api, describeError } from './common.js';
import { messageItem } from './render.js';

const LABELS = { user: 'User', ai: 'Assistant', admin: 'Admin', system: 'System' };
const status = document.getElementById('status');
const list = document.getElementById('messages');
const shareToken = decodeURIComponent(location.pathname.split('/').filter(Boolean).pop() || '');

async function load() {
  try {
    const body = await api(`/shared/${encodeURIComponent(shareToken)}`);
    document.getElementById('title').textContent = body.name || 'Shared conversation';
    document.title = `chatbox — ${body.name || 'shared conversation'}`;
    const messages = body.messages || [];
    list.replaceChildren(
      ...messages.map((m) =>
        messageItem({ sender: m.sender, content: m.content, timestamp: m.timestamp, fileUrl: m.file_url, fileId: m.file_id }, LABELS),
      ),
    );
    status.textContent = `${messages.length} message${messages.length === 1 ? '' : 's'} · read-only`;
  } catch (e) {
    status.textContent = e.status === 404 ? 'This link is not valid (it may have been revoked).' : describeError(e);
    status.classList.add('error-text');
  }
}

load();
