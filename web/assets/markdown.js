// A small Markdown renderer that builds DOM nodes directly. Text only ever enters
// the document through text nodes (never innerHTML), and links are limited to
// http(s) and mailto, so neither a model nor a user can inject markup or script.
// Covers what chat replies use: paragraphs, line breaks, headings, lists, quotes,
// fenced and inline code, bold, italic, strike-through, links and bare URLs.

const SAFE_URL = /^(https?:\/\/|mailto:)/i;

/** Renders `text` into a DocumentFragment. Safe for partial (streaming) input. */
export function renderMarkdown(text) {
  const fragment = document.createDocumentFragment();
  const lines = String(text ?? '').replace(/\r\n?/g, '\n').split('\n');
  let i = 0;
  while (i < lines.length) {
    const line = lines[i];
    const fence = /^\s*(```+|~~~+)\s*([\w+-]*)\s*$/.exec(line);
    if (fence) {
      const closing = fence[1];
      const body = [];
      i += 1;
      while (i < lines.length && !lines[i].trim().startsWith(closing)) {
        body.push(lines[i]);
        i += 1;
      }
      i += 1; // the closing fence (or the end of a still-streaming reply)
      const code = document.createElement('code');
      if (fence[2]) code.dataset.lang = fence[2];
      code.textContent = body.join('\n');
      const pre = document.createElement('pre');
      pre.append(code);
      fragment.append(pre);
      continue;
    }
    if (!line.trim()) {
      i += 1;
      continue;
    }
    const heading = /^\s{0,3}(#{1,6})\s+(.*?)\s*#*\s*$/.exec(line);
    if (heading) {
      const level = Math.min(6, heading[1].length + 2);
      const h = document.createElement(`h${level}`);
      h.append(renderInline(heading[2]));
      fragment.append(h);
      i += 1;
      continue;
    }
    if (/^\s{0,3}([-*_])(\s*\1){2,}\s*$/.test(line)) {
      fragment.append(document.createElement('hr'));
      i += 1;
      continue;
    }
    if (/^\s{0,3}>/.test(line)) {
      const quoted = [];
      while (i < lines.length && /^\s{0,3}>/.test(lines[i])) {
        quoted.push(lines[i].replace(/^\s{0,3}>\s?/, ''));
        i += 1;
      }
      const bq = document.createElement('blockquote');
      bq.append(renderMarkdown(quoted.join('\n')));
      fragment.append(bq);
      continue;
    }
    const bullet = /^\s*([-*+])\s+/;
    const ordered = /^\s*(\d{1,9})[.)]\s+/;
    if (bullet.test(line) || ordered.test(line)) {
      const isOrdered = ordered.test(line) && !bullet.test(line);
      const pattern = isOrdered ? ordered : bullet;
      const list = document.createElement(isOrdered ? 'ol' : 'ul');
      if (isOrdered) {
        const start = Number(ordered.exec(line)[1]);
        if (start !== 1) list.setAttribute('start', String(start));
      }
      while (i < lines.length && pattern.test(lines[i])) {
        const item = document.createElement('li');
        const parts = [lines[i].replace(pattern, '')];
        i += 1;
        // Continuation lines: indented, not a new item, not blank.
        while (i < lines.length && /^\s{2,}\S/.test(lines[i]) && !pattern.test(lines[i])) {
          parts.push(lines[i].trim());
          i += 1;
        }
        item.append(renderInline(parts.join('\n')));
        list.append(item);
      }
      fragment.append(list);
      continue;
    }
    const para = [];
    while (
      i < lines.length &&
      lines[i].trim() &&
      !/^\s*(```|~~~)/.test(lines[i]) &&
      !/^\s{0,3}(#{1,6}\s|>)/.test(lines[i]) &&
      !(para.length && (bullet.test(lines[i]) || ordered.test(lines[i])))
    ) {
      para.push(lines[i]);
      i += 1;
    }
    const p = document.createElement('p');
    p.append(renderInline(para.join('\n')));
    fragment.append(p);
  }
  return fragment;
}

// Earliest-match inline tokens, tried in this order at each position.
const INLINE = [
  { kind: 'code', re: /`([^`\n]+)`/y },
  { kind: 'link', re: /\[([^\]\n]+)\]\(([^()\s]+)\)/y },
  { kind: 'strong', re: /\*\*(?=\S)([\s\S]*?\S)\*\*/y },
  { kind: 'strong', re: /__(?=\S)([\s\S]*?\S)__(?!\w)/y },
  { kind: 'del', re: /~~(?=\S)([\s\S]*?\S)~~/y },
  { kind: 'em', re: /\*(?=[^\s*])([^*\n]*?[^\s*])\*/y },
  { kind: 'em', re: /(?<!\w)_(?=[^\s_])([^_\n]*?[^\s_])_(?!\w)/y },
  { kind: 'url', re: /https?:\/\/[^\s<>()"']+[^\s<>()"'.,;:!?]/y },
];

/** Renders one block's inline Markdown into a DocumentFragment. */
export function renderInline(text) {
  const out = document.createDocumentFragment();
  let plain = '';
  const flush = () => {
    if (!plain) return;
    const pieces = plain.split('\n');
    pieces.forEach((piece, n) => {
      if (n > 0) out.append(document.createElement('br'));
      if (piece) out.append(document.createTextNode(piece));
    });
    plain = '';
  };
  let pos = 0;
  outer: while (pos < text.length) {
    const c = text[pos];
    if ('`[*_~h'.includes(c)) {
      for (const { kind, re } of INLINE) {
        re.lastIndex = pos;
        const m = re.exec(text);
        if (!m) continue;
        flush();
        out.append(inlineNode(kind, m));
        pos = re.lastIndex;
        continue outer;
      }
    }
    plain += c;
    pos += 1;
  }
  flush();
  return out;
}

function inlineNode(kind, m) {
  switch (kind) {
    case 'code': {
      const code = document.createElement('code');
      code.textContent = m[1];
      return code;
    }
    case 'link':
      return link(m[2], renderInline(m[1]), m[0]);
    case 'url':
      return link(m[0], document.createTextNode(m[0]), m[0]);
    default: {
      const node = document.createElement(kind);
      node.append(renderInline(m[1]));
      return node;
    }
  }
}

function link(href, content, source) {
  if (!SAFE_URL.test(href)) return document.createTextNode(source);
  let url;
  try {
    url = new URL(href);
  } catch {
    return document.createTextNode(source);
  }
  const a = document.createElement('a');
  a.href = url.href;
  a.target = '_blank';
  a.rel = 'noopener noreferrer nofollow';
  a.append(content);
  return a;
}
