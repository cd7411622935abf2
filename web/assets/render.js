// How one message looks, shared by the chat, admin and shared pages. Message text
// goes through the safe Markdown renderer; names, times and errors are text nodes.

import { absoluteTime, el } from './common.js';
import { renderMarkdown } from './markdown.js';

const DEFAULT_LABELS = { user: 'You', ai: 'Assistant', admin: 'Admin', system: 'System' };

/**
 * A list item for one message. `labels` maps a sender to the name shown; a
 * `name` argument overrides it (an admin's display name).
 */
export function messageItem({ sender, content, timestamp, fileUrl, fileId, name }, labels = DEFAULT_LABELS) {
  const who = name || labels[sender] || sender;
  const time = timestamp
    ? el('time', { attrs: { datetime: timestamp, title: absoluteTime(timestamp) }, text: shortTime(timestamp) })
    : null;
  const body = el('div', { class: 'msg-body' });
  const item = el(
    'li',
    { class: `msg msg-${safeClass(sender)}`, dataset: { sender } },
    el('div', { class: 'msg-meta' }, el('span', { class: 'msg-who', text: who }), time),
    body,
  );
  setBody(item, content || '');
  if (fileUrl) item.append(attachment(fileUrl, fileId));
  return item;
}

/** Replaces the rendered text of a message (streaming replies re-render as they grow). */
export function setBody(item, content) {
  const body = item.querySelector('.msg-body');
  body.replaceChildren(renderMarkdown(content));
  item.dataset.text = content;
}

/** An error frame or failed request as a message the user sees. */
export function errorItem(message, code) {
  return el(
    'li',
    { class: 'msg msg-error', attrs: { role: 'alert' } },
    el('div', { class: 'msg-meta' }, el('span', { class: 'msg-who', text: 'Error' }), code ? el('code', { text: code }) : null),
    el('div', { class: 'msg-body', text: message }),
  );
}

/** A one-line notice inside the conversation (admin joined, reply stopped, …). */
export function noticeItem(text) {
  return el('li', { class: 'msg msg-notice' }, el('div', { class: 'msg-body', text }));
}

function attachment(fileUrl, fileId) {
  let href = null;
  try {
    const url = new URL(fileUrl, location.href);
    if (url.protocol === 'https:' || url.protocol === 'http:') href = url.href;
  } catch {
    href = null;
  }
  const label = `Attachment${fileId ? ` ${fileId}` : ''}`;
  if (!href) return el('div', { class: 'msg-file', text: label });
  return el('div', { class: 'msg-file' }, el('a', { attrs: { href, target: '_blank', rel: 'noopener noreferrer' }, text: label }));
}

function shortTime(iso) {
  const t = Date.parse(iso);
  if (Number.isNaN(t)) return '';
  return new Date(t).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
}

function safeClass(sender) {
  return ['user', 'ai', 'admin', 'system'].includes(sender) ? sender : 'system';
}

/** Scrolls a message list to its end unless the reader scrolled up to read. */
export function keepScrolled(list, force = false) {
  // The newest message may just have grown or arrived: measure from its top.
  const newest = list.lastElementChild ? list.lastElementChild.offsetHeight : 0;
  const near = list.scrollHeight - list.scrollTop - list.clientHeight - newest < 160;
  if (force || near) list.scrollTop = list.scrollHeight;
}
