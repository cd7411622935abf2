// Real-browser tests of the web UI against the real chat-server binary (echo model,
// embedded store) on an ephemeral port. Run with web/tests/run.sh.

import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { ChatServer, echoReply, launchBrowser, mintToken, screenshot, watchedPage } from './harness.mjs';

/** Same rendering of times and numbers on every machine. */
const FIXED_LOCALE = { locale: 'en-US', timezoneId: 'UTC' };

/** Upper bound for anything the UI must show; generous for a loaded CI machine. */
const SHOW_MS = 20000;

let server;
let browser;
let userContext;
let userPage;
const USER = { id: 'alice', name: 'Alice Example' };
const ADMIN = { id: 'ada', name: 'Ada Admin' };

/** Words enough that the echo reply streams for a couple of seconds (40 ms a word). */
function longMessage(tag, words) {
  return `${tag} ${Array.from({ length: words }, (_, i) => `w${i}`).join(' ')}`;
}

async function openChat(page) {
  await page.goto(server.ui('', `token=${encodeURIComponent(server.token(USER.id, USER.name))}`));
  await page.waitForSelector('#conn[data-state="open"]', { timeout: SHOW_MS });
}

async function send(page, text) {
  await page.fill('#composer-input', text);
  await page.press('#composer-input', 'Enter');
}

/** Waits until an AI message with exactly `text` is complete (no longer streaming). */
async function waitForReply(page, text) {
  await page.waitForFunction(
    (expected) =>
      [...document.querySelectorAll('#messages .msg-ai:not(.streaming)')].some((m) => m.dataset.text === expected),
    text,
    { timeout: SHOW_MS },
  );
}

async function countAi(page, text) {
  return page.evaluate(
    (expected) => [...document.querySelectorAll('#messages .msg-ai')].filter((m) => m.dataset.text === expected).length,
    text,
  );
}

function assertNoProblems(page) {
  assert.deepEqual(page.problems.errors, [], 'no script errors or CSP violations');
  assert.deepEqual(page.problems.dialogs, [], 'no dialogs');
}

const LINK = 'target="_blank" rel="noopener noreferrer nofollow"';
/** Markdown source and the exact HTML the renderer must build for it. */
const MARKDOWN_CASES = [
  ['# Title', '<h3>Title</h3>'],
  ['**b** and *i* and `c` and ~~s~~', '<p><strong>b</strong> and <em>i</em> and <code>c</code> and <del>s</del></p>'],
  ['```js\n<b>x</b>\n```', '<pre><code data-lang="js">&lt;b&gt;x&lt;/b&gt;</code></pre>'],
  ['- a\n- b', '<ul><li>a</li><li>b</li></ul>'],
  ['3. three\n4. four', '<ol start="3"><li>three</li><li>four</li></ol>'],
  ['> quoted', '<blockquote><p>quoted</p></blockquote>'],
  ['line1\nline2\n\nnext', '<p>line1<br>line2</p><p>next</p>'],
  ['[ok](https://example.org/x)', `<p><a href="https://example.org/x" ${LINK}>ok</a></p>`],
  ['[bad](javascript:alert(1))', '<p>[bad](javascript:alert(1))</p>'],
  ['[bad](data:text/html,x)', '<p>[bad](data:text/html,x)</p>'],
  ['see https://example.org/a.', `<p>see <a href="https://example.org/a" ${LINK}>https://example.org/a</a>.</p>`],
  ['<img src=x onerror=alert(1)>', '<p>&lt;img src=x onerror=alert(1)&gt;</p>'],
  ['**<script>alert(1)</script>**', '<p><strong>&lt;script&gt;alert(1)&lt;/script&gt;</strong></p>'],
  ['```\nunterminated <i>', '<pre><code>unterminated &lt;i&gt;</code></pre>'],
  ['snake_case_name stays', '<p>snake_case_name stays</p>'],
];

describe('web UI in a real browser', () => {
  before(async () => {
    server = new ChatServer();
    await server.start();
    browser = await launchBrowser();
    userContext = await browser.newContext({ ...FIXED_LOCALE, viewport: { width: 1100, height: 800 } });
    userContext.setDefaultTimeout(SHOW_MS);
    userPage = await watchedPage(userContext);
  });

  after(async () => {
    if (browser) await browser.close();
    if (server) await server.dispose();
  });

  test('the sign-in token leaves the address bar and a message streams in', async () => {
    await openChat(userPage);
    assert.ok(!userPage.url().includes('token='), `token removed from ${userPage.url()}`);
    const stored = await userPage.evaluate(() => sessionStorage.getItem('chatbox.token'));
    assert.ok(stored && stored.split('.').length === 3, 'token kept in sessionStorage');

    // Record every length the reply's text takes while it grows.
    await userPage.evaluate(() => {
      window.__lengths = [];
      new MutationObserver(() => {
        const last = [...document.querySelectorAll('#messages .msg-ai')].pop();
        if (last) window.__lengths.push((last.dataset.text || '').length);
      }).observe(document.getElementById('messages'), { subtree: true, childList: true, characterData: true });
    });
    const message = longMessage('stream', 20);
    await send(userPage, message);
    await waitForReply(userPage, echoReply(message));
    const lengths = await userPage.evaluate(() => [...new Set(window.__lengths)].filter((n) => n > 0));
    assert.ok(lengths.length >= 5, `rendered in several steps as chunks arrived, saw ${JSON.stringify(lengths)}`);
    assert.equal(Math.max(...lengths), echoReply(message).length);
    const userText = await userPage.locator('#messages .msg-user').last().getAttribute('data-text');
    assert.equal(userText, message);
    // More than one model configured: the selector is offered.
    assert.equal(await userPage.locator('#model-label').isVisible(), true);
    assert.equal(await userPage.locator('#model option').count(), 2);
    await screenshot(userPage, 'chat');
    assertNoProblems(userPage);
  });

  test('a reload in the middle of a reply still shows the whole reply, once', async () => {
    const message = longMessage('reload', 100);
    const reply = echoReply(message);
    await send(userPage, message);
    await userPage.waitForFunction(
      () => {
        const m = document.querySelector('#messages .msg-ai.streaming');
        return m && (m.dataset.text || '').length > 20;
      },
      null,
      { timeout: SHOW_MS },
    );
    assert.equal(await countAi(userPage, reply), 0, 'reply still streaming when the page reloads');
    await userPage.reload();
    await waitForReply(userPage, reply);
    assert.equal(await countAi(userPage, reply), 1, 'reply shown exactly once');
    assert.equal(await userPage.locator('#messages .msg-user', { hasText: 'reload w0' }).count(), 1);
    assertNoProblems(userPage);
  });

  test('the model choice and a help request reach the server', async () => {
    const frames = [];
    const record = (ws) => ws.on('framereceived', (f) => frames.push(JSON.parse(f.payload)));
    userPage.on('websocket', record);
    try {
      await userPage.reload(); // a new socket the test can listen to
      await userPage.waitForSelector('#conn[data-state="open"]');
      await userPage.selectOption('#model', 'echo-slow');
      await userPage.waitForFunction(() => document.getElementById('model').value === 'echo-slow');
      const confirmed = () => frames.some((f) => f.type === 'connection_status' && f.model_id === 'echo-slow');
      for (let i = 0; i < 100 && !confirmed(); i += 1) await userPage.waitForTimeout(100);
      assert.ok(confirmed(), 'the server confirmed the model');

      await userPage.getByRole('button', { name: 'Request help' }).click();
      await userPage.waitForSelector('#messages .msg-notice:has-text("administrator")');

      // Back to the fast model for the rest of the suite.
      await userPage.selectOption('#model', 'echo');
      for (let i = 0; i < 100 && !frames.some((f) => f.model_id === 'echo'); i += 1) await userPage.waitForTimeout(100);
      assertNoProblems(userPage);
    } finally {
      userPage.off('websocket', record);
    }
  });

  test('Stop ends a reply early and keeps what was written', async () => {
    const message = longMessage('halt', 150);
    const reply = echoReply(message);
    await send(userPage, message);
    await userPage.waitForFunction(
      () => (document.querySelector('#messages .msg-ai.streaming')?.dataset.text || '').length > 10,
      null,
      { timeout: SHOW_MS },
    );
    await userPage.click('#stop');
    await userPage.waitForFunction(() => !document.querySelector('#messages .msg-ai.streaming'), null, { timeout: SHOW_MS });
    const text = await userPage.locator('#messages .msg-ai').last().getAttribute('data-text');
    assert.ok(reply.startsWith(text) && text.length < reply.length, `partial reply kept: ${text}`);
    // The composer is free again: the next message gets a full reply.
    await send(userPage, 'after stop');
    await waitForReply(userPage, echoReply('after stop'));
    assertNoProblems(userPage);
  });

  test('the conversation is still there after a server restart', async () => {
    const first = longMessage('stream', 20);
    await server.stop();
    await userPage.waitForSelector('#conn[data-state="waiting"]', { timeout: SHOW_MS });
    await server.start(); // same data dir and secret, new port
    await openChat(userPage);
    await waitForReply(userPage, echoReply(first));
    assert.equal(await countAi(userPage, echoReply(first)), 1);
    assert.equal(await userPage.locator('#messages .msg-user', { hasText: 'stream w0' }).count(), 1);

    // The sessions page lists it, with its message count.
    await userPage.goto(server.ui('sessions'));
    const item = userPage.locator('.session-item').first();
    await item.waitFor({ timeout: SHOW_MS });
    const meta = await item.locator('.session-meta').textContent();
    assert.match(meta, /[4-9] messages|\d\d+ messages/, meta);
    assert.match(await item.locator('.session-title').textContent(), /stream w0/);
    await screenshot(userPage, 'sessions');
    await item.locator('a').click();
    await userPage.waitForSelector('#conn[data-state="open"]', { timeout: SHOW_MS });
    await waitForReply(userPage, echoReply(first));
    assertNoProblems(userPage);
  });

  test('an admin takes over in a second browser and both sides chat', async () => {
    await openChat(userPage);
    const before = 'Something before the takeover';
    await send(userPage, before);
    await waitForReply(userPage, echoReply(before));
    const adminContext = await browser.newContext({ ...FIXED_LOCALE, viewport: { width: 1280, height: 900 } });
    const adminPage = await watchedPage(adminContext);
    try {
      const adminToken = server.token(ADMIN.id, ADMIN.name, ['admin']);
      await adminPage.goto(server.ui('admin', `token=${encodeURIComponent(adminToken)}`));
      await adminPage.waitForSelector('.card[data-metric="total_sessions"]', { timeout: SHOW_MS });
      const row = adminPage.locator('#sessions-body tr', { hasText: USER.id }).filter({ hasText: 'active' });
      await row.first().waitFor({ timeout: SHOW_MS });
      await screenshot(adminPage, 'admin');
      await row.first().getByRole('button', { name: /Take over/ }).click();

      await userPage.waitForSelector('#assisted:not([hidden])', { timeout: SHOW_MS });
      assert.match(await userPage.locator('#assisted').textContent(), /assisted by Ada Admin/);

      await adminPage.waitForSelector('#admin-chat:not([hidden]) #conn[data-state="open"]', { timeout: SHOW_MS });
      // The admin sees the conversation so far (GET /admin/sessions/{id}), not only
      // what arrives live.
      await adminPage.waitForSelector(`#messages .msg-user[data-text="${before}"]`, { timeout: SHOW_MS });
      await adminPage.fill('#composer-input', 'Hello Alice, Ada here.');
      await adminPage.press('#composer-input', 'Enter');
      await userPage.waitForSelector('#messages .msg-admin[data-text="Hello Alice, Ada here."]', { timeout: SHOW_MS });

      await send(userPage, 'Thanks Ada!');
      await adminPage.waitForSelector('#messages .msg-user[data-text="Thanks Ada!"]', { timeout: SHOW_MS });
      // A second admin message arriving proves the user's message was handled;
      // while assisted it must not have been answered by the model.
      await adminPage.fill('#composer-input', 'Anything else?');
      await adminPage.press('#composer-input', 'Enter');
      await userPage.waitForSelector('#messages .msg-admin[data-text="Anything else?"]', { timeout: SHOW_MS });
      assert.equal(await countAi(userPage, echoReply('Thanks Ada!')), 0, 'the model stays silent while assisted');
      // A reload keeps the takeover banner (admin_join is not replayed).
      await userPage.reload();
      await userPage.waitForSelector('#assisted:not([hidden])');
      assert.match(await userPage.locator('#assisted').textContent(), /assisted by Ada Admin/);
      await userPage.waitForSelector('#messages .msg-admin[data-text="Anything else?"]');
      await screenshot(adminPage, 'admin-chat');
      await screenshot(userPage, 'chat-assisted');

      await adminPage.click('#admin-release');
      await userPage.waitForSelector('#assisted[hidden]', { state: 'attached', timeout: SHOW_MS });
      assertNoProblems(adminPage);
      assertNoProblems(userPage);
    } finally {
      await adminContext.close();
    }
  });

  test('a shared link shows the conversation read-only until revoked', async () => {
    await userPage.click('#share');
    await userPage.waitForSelector('#share-box:not([hidden])', { timeout: SHOW_MS });
    const link = await userPage.inputValue('#share-link');
    assert.match(link, /\/chatbox\/ui\/shared\/[0-9a-f]{32}$/);

    const anonymous = await browser.newContext({ ...FIXED_LOCALE, viewport: { width: 1000, height: 800 } });
    try {
      const shared = await watchedPage(anonymous);
      await shared.goto(link);
      await shared.waitForSelector('#messages .msg-ai', { timeout: SHOW_MS });
      const texts = await shared.locator('#messages .msg').evaluateAll((ms) => ms.map((m) => m.dataset.text));
      assert.ok(texts.includes(echoReply(longMessage('stream', 20))), 'shows the replies');
      assert.equal(await shared.locator('textarea, input, select, form, button').count(), 0, 'nothing to write with');
      await screenshot(shared, 'shared');
      assertNoProblems(shared);

      // Revoked, the same link no longer shows anything.
      await userPage.click('#share-revoke');
      await userPage.waitForSelector('#messages .msg-notice:has-text("revoked")');
      await shared.reload();
      await shared.waitForSelector('#status:has-text("not valid")');
      assert.equal(await shared.locator('#messages .msg').count(), 0);
    } finally {
      await anonymous.close();
    }
  });

  test('markup in a message is shown as text, never run', async () => {
    const payload = '<img src=x onerror="window.__xss=1;alert(1)"><script>window.__xss=2</script> [x](javascript:alert(3)) **bold**';
    await send(userPage, payload);
    await waitForReply(userPage, echoReply(payload));
    const report = await userPage.evaluate(() => ({
      xss: window.__xss,
      imgs: document.querySelectorAll('#messages img').length,
      scripts: document.querySelectorAll('#messages script').length,
      jsLinks: [...document.querySelectorAll('#messages a')].filter((a) => !/^https?:|^mailto:/.test(a.href)).length,
      userText: [...document.querySelectorAll('#messages .msg-user .msg-body')].pop().textContent,
      bold: [...document.querySelectorAll('#messages .msg-user .msg-body strong')].map((b) => b.textContent),
    }));
    assert.equal(report.xss, undefined);
    assert.equal(report.imgs, 0);
    assert.equal(report.scripts, 0);
    assert.equal(report.jsLinks, 0);
    assert.ok(report.userText.includes('<img src=x onerror='), report.userText);
    assert.ok(report.userText.includes('<script>'), report.userText);
    assert.deepEqual(report.bold, ['bold'], 'Markdown still renders');

    // After a reload the stored copy renders as text too.
    await userPage.reload();
    await waitForReply(userPage, echoReply(payload));
    assert.equal(await userPage.evaluate(() => window.__xss), undefined);
    assert.equal(await userPage.locator('#messages img').count(), 0);
    assertNoProblems(userPage);
  });

  test('a dropped connection mid-reply reconnects and loses nothing, on every device', async () => {
    // A second tab of the same user, whose WebSocket runs through a proxy the test can cut.
    const page = await watchedPage(userContext);
    try {
      const links = [];
      await page.routeWebSocket(/\/ws\?/, (ws) => {
        const upstream = ws.connectToServer();
        links.push({ ws, upstream });
      });
      await openChat(page);
      const message = longMessage('blip', 120);
      const reply = echoReply(message);
      await send(page, message);
      await page.waitForFunction(
        () => (document.querySelector('#messages .msg-ai.streaming')?.dataset.text || '').length > 20,
        null,
        { timeout: SHOW_MS },
      );
      assert.equal(await countAi(page, reply), 0, 'still streaming when the link drops');
      const cut = links.length;
      await links[cut - 1].upstream.close();
      await links[cut - 1].ws.close({ code: 4000, reason: 'test blip' });
      await waitForReply(page, reply);
      assert.ok(links.length > cut, 'reconnected through a new WebSocket');
      assert.equal(await countAi(page, reply), 1, 'complete, exactly once');
      // The first tab (another device) got the same reply and the message.
      await waitForReply(userPage, reply);
      assert.equal(await countAi(userPage, reply), 1);
      assert.equal(await userPage.locator('#messages .msg-user', { hasText: 'blip w0' }).count(), 1);
      assertNoProblems(page);
    } finally {
      await page.close();
    }
  });

  test('the admin table sends exactly the /admin/sessions query parameters', async () => {
    const adminContext = await browser.newContext({ ...FIXED_LOCALE, viewport: { width: 1280, height: 900 } });
    adminContext.setDefaultTimeout(SHOW_MS);
    const page = await watchedPage(adminContext);
    try {
      /** Runs `action`, then checks the query of the /admin/sessions request it caused. */
      const expectQuery = async (action, check) => {
        const request = page.waitForRequest((r) => new URL(r.url()).pathname.endsWith('/admin/sessions'));
        await action();
        const query = Object.fromEntries(new URL((await request).url()).searchParams);
        check(query);
        await page.waitForFunction(() => !document.querySelector('#table-status').textContent.startsWith('Loading'));
        assert.equal(await page.locator('#admin-error').isHidden(), true, 'the server accepted the query');
      };
      // Another admin than the takeover test's: admin endpoints are rate limited per admin.
      const token = server.token('grace', 'Grace Admin', ['chat_admin']);
      await expectQuery(
        () => page.goto(server.ui('admin', `token=${encodeURIComponent(token)}`)),
        (q) => assert.deepEqual(q, { sort_by: 'start_time', sort_order: 'desc', limit: '25', offset: '0' }),
      );
      await page.locator('#sessions-body tr').first().waitFor();

      await page.fill('input[name=user_id]', USER.id);
      await page.selectOption('select[name=status]', 'active');
      await page.selectOption('select[name=admin_assisted]', 'false');
      await page.fill('input[name=start_time_from]', '2020-01-01T00:00');
      await expectQuery(() => page.click('#filters button[type=submit]'), (q) => {
        assert.equal(q.user_id, USER.id);
        assert.equal(q.status, 'active');
        assert.equal(q.admin_assisted, 'false');
        assert.match(q.start_time_from, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/, 'RFC3339');
      });
      assert.equal(await page.locator('#sessions-body tr').count(), 1);

      await page.selectOption('select[name=status]', 'ended');
      await expectQuery(() => page.click('#filters button[type=submit]'), (q) => assert.equal(q.status, 'ended'));
      await page.waitForSelector('#table-status:has-text("No sessions match")');

      await expectQuery(
        () => page.click('#filters button[type=reset]'),
        (q) => assert.deepEqual(q, { sort_by: 'start_time', sort_order: 'desc', limit: '25', offset: '0' }),
      );
      await expectQuery(
        () => page.getByRole('button', { name: 'Messages' }).click(),
        (q) => assert.deepEqual([q.sort_by, q.sort_order], ['message_count', 'desc']),
      );
      assert.equal(await page.locator('th[data-sort=message_count]').getAttribute('aria-sort'), 'descending');
      await expectQuery(
        () => page.getByRole('button', { name: 'Messages' }).click(),
        (q) => assert.deepEqual([q.sort_by, q.sort_order], ['message_count', 'asc']),
      );

      await page.selectOption('select[name=limit]', '10');
      await expectQuery(() => page.click('#filters button[type=submit]'), (q) => assert.deepEqual([q.limit, q.offset], ['10', '0']));
      assert.equal(await page.locator('#next').isDisabled(), true, 'one page only');
      assert.equal(await page.locator('#prev').isDisabled(), true);

      // The view survives a reload: the filters live in the address bar.
      await page.reload();
      await page.locator('#sessions-body tr').first().waitFor();
      assert.equal(await page.inputValue('select[name=sort_by]'), 'message_count');
      assert.equal(await page.inputValue('select[name=limit]'), '10');
      assertNoProblems(page);
    } finally {
      await adminContext.close();
    }
  });

  test('a new chat ends the old one, which the sessions page opens read-only', async () => {
    await openChat(userPage);
    await userPage.click('#new-chat');
    await userPage.waitForSelector('#messages .msg-notice:has-text("New conversation")');
    await send(userPage, 'second conversation');
    await waitForReply(userPage, echoReply('second conversation'));

    await userPage.goto(server.ui('sessions'));
    await userPage.locator('.session-item').nth(1).waitFor();
    assert.equal(await userPage.locator('.session-item').count(), 2);
    const first = userPage.locator('.session-item').first();
    assert.match(await first.locator('.session-title').textContent(), /second conversation/, 'newest first');
    const ended = userPage.locator('.session-item', { has: userPage.locator('.badge-ended') });
    assert.equal(await ended.count(), 1);
    await ended.locator('a').click();
    await userPage.waitForSelector('#readonly-note:not([hidden])');
    await waitForReply(userPage, echoReply(longMessage('stream', 20)));
    assert.equal(await userPage.locator('#composer-input').isDisabled(), true);
    assertNoProblems(userPage);
    // Back to the live conversation.
    await userPage.click('#readonly-note a');
    await waitForReply(userPage, echoReply('second conversation'));
    assert.equal(await userPage.locator('#composer-input').isDisabled(), false);
  });

  test('the Markdown renderer builds safe DOM; page helpers behave', async () => {
    const page = await watchedPage(userContext);
    try {
      await page.goto(server.ui(''));
      // No token in this tab: the page asks to sign in instead of connecting.
      await page.waitForSelector('#signin:not([hidden])');
      const rendered = await page.evaluate(async (cases) => {
        const { renderMarkdown } = await import('./assets/markdown.js');
        return cases.map((source) => {
          const div = document.createElement('div');
          div.append(renderMarkdown(source));
          return div.innerHTML;
        });
      }, MARKDOWN_CASES.map(([source]) => source));
      MARKDOWN_CASES.forEach(([source, html], i) => assert.equal(rendered[i], html, JSON.stringify(source)));

      const helpers = await page.evaluate(async () => {
        const c = await import('./assets/common.js');
        const now = Date.parse('2026-01-01T12:00:00Z');
        return {
          prefixes: ['/chatbox/ui/', '/chatbox/ui', '/ui/', '/a/b/ui/shared/0f', '/x/ui/ui/sessions'].map(c.prefixFrom),
          times: ['2026-01-01T11:59:58Z', '2026-01-01T11:57:00Z', '2025-12-31T12:00:00Z', 'garbage'].map((t) => c.relativeTime(t, now)),
          durations: [0, 59, 61, 3720].map(c.formatDuration),
          claims: c.claimsOf(`x.${btoa(JSON.stringify({ user_id: 'u', roles: ['chat_admin'] })).replace(/=+$/, '')}.y`),
        };
      });
      assert.deepEqual(helpers.prefixes, ['/chatbox', '/chatbox', '', '/a/b', '/x/ui']);
      assert.equal(helpers.times[0], 'just now');
      assert.match(helpers.times[1], /3 minutes ago/);
      assert.match(helpers.times[2], /yesterday|1 day ago/);
      assert.equal(helpers.times[3], '');
      assert.deepEqual(helpers.durations, ['0s', '59s', '1m 01s', '1h 02m']);
      assert.deepEqual(helpers.claims, { user_id: 'u', roles: ['chat_admin'] });
      assertNoProblems(page);
    } finally {
      await page.close();
    }
  });

  test('an expired sign-in link says so instead of retrying forever', async () => {
    const page = await watchedPage(userContext);
    try {
      const expired = mintToken(server.secret, { userId: USER.id, name: USER.name, ttlSeconds: -3600 });
      await page.goto(server.ui('', `token=${encodeURIComponent(expired)}`));
      await page.waitForSelector('#signin:not([hidden])');
      assert.match(await page.locator('#signin').textContent(), /expired or is invalid/);
      assert.equal(await page.locator('#composer-input').isDisabled(), true);
      assertNoProblems(page);
    } finally {
      await page.close();
    }
  });

  test('the chat is usable at phone width', async () => {
    await userPage.setViewportSize({ width: 390, height: 844 });
    await userPage.waitForSelector('#conn[data-state="open"]', { timeout: SHOW_MS });
    const overflow = await userPage.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
    assert.ok(overflow <= 1, `no horizontal scrolling (overflow ${overflow}px)`);
    assert.equal(await userPage.locator('#send').isVisible(), true);
    await screenshot(userPage, 'chat-phone');
  });
});
