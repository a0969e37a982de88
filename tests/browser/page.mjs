// End-to-end tests of the built-in page in a real headless Chromium, driven by
// playwright-core. Started by tests/it/browser.rs, which runs the real binary
// against the tests' fake Claude and passes:
//   KV_URL          the service, e.g. http://127.0.0.1:PORT
//   KV_SUITE        "claude" (a fake Claude behind the service), "offline",
//                   or "tokens" (API_TOKENS on; KV_TOKEN is one of them)
//   KV_PEERS_DIR    where scripts/ci/install-browser.sh put playwright-core
//   CHROMIUM        the Chromium binary (Debian's /usr/bin/chromium)
//   KV_SCREENSHOTS  where to write the screenshots for reviewers
// Prints one "ok - NAME" or "not ok - NAME" line per scenario and a final
// "N passed, N failed" line; exits 1 if any failed. Nothing is skipped.
import { createRequire } from 'node:module';
import { mkdirSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';

const { KV_URL, KV_SUITE, KV_PEERS_DIR, CHROMIUM, KV_SCREENSHOTS } = process.env;
for (const [name, value] of Object.entries({ KV_URL, KV_SUITE, KV_PEERS_DIR, CHROMIUM, KV_SCREENSHOTS })) {
  if (!value) throw new Error(`${name} is not set`);
}
const { chromium } = createRequire(path.join(KV_PEERS_DIR, 'node_modules', '/'))('playwright-core');
mkdirSync(KV_SCREENSHOTS, { recursive: true });

// The whole run has a deadline, so a hang is a failure, not a stuck CI job.
setTimeout(() => {
  console.log('not ok - the browser tests did not finish within 6 minutes');
  process.exit(1);
}, 6 * 60_000).unref();

const WAIT = { timeout: 30_000 }; // generous: two loaded cores
const browser = await chromium.launch({
  executablePath: CHROMIUM,
  headless: true,
  // Without the background-networking flags, Chromium's own connections are
  // refused by the closed network and it stalls; a fresh profile each run.
  args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
    '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage'],
});

let passed = 0;
let failed = 0;

class Check extends Error {}
function check(condition, message) {
  if (!condition) throw new Check(message);
}

/** Runs one scenario in a fresh browser context (its own storage). */
async function scenario(name, fn, { viewport = { width: 1280, height: 800 } } = {}) {
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  const problems = [];
  page.on('pageerror', (e) => problems.push(`uncaught exception: ${e.message}`));
  page.on('dialog', (d) => d.accept());
  // Our own page must never trip its Content-Security-Policy.
  await page.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (e) => {
      (window.__csp ??= []).push(`${e.violatedDirective} ${e.blockedURI}`);
    });
  });
  try {
    await fn(page, context);
    const csp = await page.evaluate(() => window.__csp ?? []).catch(() => []);
    check(csp.length === 0, `Content-Security-Policy violations: ${csp.join('; ')}`);
    check(problems.length === 0, problems.join('; '));
    passed++;
    console.log(`ok - ${name}`);
  } catch (e) {
    failed++;
    console.log(`not ok - ${name}\n    ${(e instanceof Check ? e.message : e.stack).replace(/\n/g, '\n    ')}`);
    if (problems.length) console.log(`    page problems: ${problems.join('; ')}`);
    const file = path.join(KV_SCREENSHOTS, `failed-${name.replace(/[^a-z0-9]+/gi, '-')}.png`);
    await page.screenshot({ path: file }).catch(() => {});
    console.log(`    screenshot: ${file}`);
  } finally {
    await context.close();
  }
}

// ---------- helpers ----------

async function open(page, hash = '') {
  await page.goto(`${KV_URL}/${hash}`);
  await page.locator('#repos li').first().waitFor(WAIT);
}

/** Types a question and sends it with Enter, as a keyboard user does. */
async function ask(page, question) {
  await page.locator('#prompt').focus();
  await page.keyboard.insertText(question);
  await page.keyboard.press('Enter');
}

const lastAnswer = (page) => page.locator('article.assistant').last();

async function answerDone(page, state = 'done') {
  await page.locator(`article.assistant:last-of-type[data-state="${state}"]`).waitFor(WAIT);
  return lastAnswer(page);
}

/** Expands repository `repo` in the sidebar, then the folders of `path`, and opens the document. */
async function browseTo(page, repo, docPath) {
  const item = page.locator('details.repo', { has: page.locator('.repo-name', { hasText: new RegExp(`^${repo}$`) }) });
  await item.locator('summary').first().click();
  const parts = docPath.split('/');
  let scope = item;
  for (const dir of parts.slice(0, -1)) {
    const folder = scope.locator('details', { has: page.locator(':scope > summary', { hasText: `${dir}/` }) }).first();
    await folder.locator(':scope > summary').click();
    scope = folder;
  }
  await scope.locator('a.doc-link', { hasText: parts.at(-1) }).first().click();
  await page.locator('#viewer').waitFor({ state: 'visible', ...WAIT });
}

async function noInjectedGlobals(page) {
  const globals = await page.evaluate(() =>
    ['__xss', '__xss2', '__xssAnswer', '__xssAnswer2'].filter((k) => k in window));
  check(globals.length === 0, `injected markup ran: ${globals.join(', ')} set`);
}

async function conversationId(page) {
  const match = page.url().match(/#\/c\/([0-9a-f-]+)$/);
  check(match, `the URL names no conversation: ${page.url()}`);
  return match[1];
}

async function messages(page, id) {
  return page.evaluate(async (id) => (await fetch(`/api/conversations/${id}/messages`)).json(), id);
}

/** A TCP relay to `target` on 127.0.0.1: `down(true)` cuts every open
 * connection and refuses new ones, as a dropped network does. */
function startRelay(target) {
  const sockets = new Set();
  let isDown = false;
  const server = net.createServer((client) => {
    if (isDown) return client.destroy();
    const upstream = net.connect(Number(target.port), target.hostname);
    for (const [a, b] of [[client, upstream], [upstream, client]]) {
      sockets.add(a);
      a.on('error', () => b.destroy());
      a.on('close', () => { sockets.delete(a); b.destroy(); });
      a.pipe(b);
    }
  });
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve({
    url: `http://127.0.0.1:${server.address().port}`,
    down(value) {
      isDown = value;
      if (value) for (const s of sockets) s.destroy();
    },
    close() {
      this.down(true);
      server.close();
    },
  })));
}

async function screenshots(page, name) {
  for (const scheme of ['light', 'dark']) {
    for (const [size, viewport] of [['desktop', { width: 1280, height: 800 }], ['360px', { width: 360, height: 740 }]]) {
      await page.emulateMedia({ colorScheme: scheme });
      await page.setViewportSize(viewport);
      await page.evaluate(() => new Promise(requestAnimationFrame));
      await page.screenshot({ path: path.join(KV_SCREENSHOTS, `${name}-${scheme}-${size}.png`) });
    }
  }
}

// ---------- with a (fake) Claude ----------

async function claudeSuite() {
  await scenario('a streamed answer appears progressively, as markdown, with citations', async (page) => {
    await open(page);
    check(await page.locator('#offline-notice').isHidden(), 'the offline notice shows although Claude is configured');
    await page.evaluate(() => {
      window.__seen = [];
      new MutationObserver(() => {
        const answer = document.querySelector('article.assistant:last-of-type .parts');
        if (answer) window.__seen.push(answer.textContent.length);
      }).observe(document.querySelector('#messages'), { subtree: true, childList: true, characterData: true });
    });
    await ask(page, 'STREAM: how do I deploy alpha?');
    const answer = await answerDone(page);
    const lengths = [...new Set(await page.evaluate(() => window.__seen))].filter((n) => n > 0);
    check(lengths.length >= 4, `the answer did not grow piece by piece: lengths ${lengths}`);
    check(lengths.every((n, i) => i === 0 || n >= lengths[i - 1]), `the answer shrank while streaming: ${lengths}`);
    check((await answer.locator('pre code').textContent()).includes('make deploy'), 'no code block');
    check(await answer.locator('ol li').count() === 2, 'no ordered list of two items');
    check(await answer.locator('table td').count() >= 2, 'no table');
    const external = answer.locator('a[href="https://example.com/runbook"]');
    check(await external.getAttribute('target') === '_blank', 'an external link does not open in a new tab');
    check(await external.getAttribute('rel') === 'noopener noreferrer', 'an external link keeps the opener or referrer');
    await conversationId(page);
    // A `repo/path` citation opens the document in the viewer.
    await answer.locator('a.doc-link', { hasText: 'alpha/docs/deploy.md' }).click();
    await page.locator('#viewer-body h1', { hasText: 'Deploy' }).waitFor(WAIT);
    check(await page.locator('#viewer-path').textContent() === 'alpha/docs/deploy.md', 'the viewer shows another path');
    await page.keyboard.press('Escape');
    check(await page.locator('#viewer').isHidden(), 'Esc does not close the viewer');
    // Shift+Enter adds a line and sends nothing.
    await page.locator('#prompt').focus();
    await page.keyboard.insertText('line one');
    await page.keyboard.press('Shift+Enter');
    await page.keyboard.insertText('line two');
    check(await page.locator('#prompt').inputValue() === 'line one\nline two', 'Shift+Enter did not add a line');
    check(await page.locator('article.user').count() === 1, 'Shift+Enter sent the message');
  });

  await scenario('a tool call shows as a collapsible line and expands to its result', async (page) => {
    await open(page);
    await ask(page, 'TOOL: find the deploy guide');
    const answer = await answerDone(page);
    const tool = answer.locator('details.tool');
    check(await tool.count() === 1, 'no tool line');
    const summary = await tool.locator('summary').textContent();
    check(summary.includes('search_documentation'), `no tool name in ${summary}`);
    check(summary.includes('"query":"deploy"'), `no tool input in ${summary}`);
    check(/\d+ ms/.test(summary), `no duration in ${summary}`);
    check(await tool.getAttribute('data-state') === 'done', 'the tool is not marked done');
    check(await tool.locator('.tool-result').isHidden(), 'the result shows before expanding');
    await tool.locator('summary').click();
    check(await tool.locator('.tool-result').isVisible(), 'the result does not show on expand');
    check((await tool.locator('.tool-result').textContent()).includes('docs/deploy.md'), 'the result lacks the hit');
    check((await answer.locator('.markdown').last().textContent()).includes('Found'), 'no text after the tool');
  });

  await scenario('Stop (and Esc) ends the answer, which is kept as cancelled', async (page) => {
    await open(page);
    await ask(page, 'SLOW-STOP: tell me everything');
    await lastAnswer(page).locator('.markdown', { hasText: 'part02' }).waitFor(WAIT);
    check(await page.locator('#stop').isVisible(), 'no Stop button while answering');
    await page.locator('#stop').click();
    const answer = await answerDone(page, 'cancelled');
    check(!(await answer.textContent()).includes('part30'), 'the whole answer arrived despite Stop');
    check(await page.locator('#stop').isHidden(), 'Stop still shows after the answer ended');
    const stored = await messages(page, await conversationId(page));
    check(stored.at(-1)?.status === 'cancelled', `stored status ${stored.at(-1)?.status}`);
    // The keyboard way: Esc stops the next answer.
    await ask(page, 'SLOW-STOP: again');
    await lastAnswer(page).locator('.markdown', { hasText: 'part02' }).waitFor(WAIT);
    await page.keyboard.press('Escape');
    await answerDone(page, 'cancelled');
  });

  await scenario('a reload mid-answer shows the whole answer', async (page) => {
    await open(page);
    await ask(page, 'SLOW-RELOAD: a long answer');
    await lastAnswer(page).locator('.markdown', { hasText: 'part03' }).waitFor(WAIT);
    const id = await conversationId(page);
    await page.reload();
    // The replay: the running answer is drawn from its start, then goes on live.
    await page.locator('article.assistant[data-state="streaming"]').waitFor(WAIT);
    const answer = await answerDone(page);
    const text = await answer.textContent();
    const parts = [...text.matchAll(/part(\d\d)/g)].map((m) => Number(m[1]));
    check(parts.length === 30 && parts.every((n, i) => n === i + 1), `not the whole answer once, in order: ${parts}`);
    check(await page.locator('article.user').count() === 1, 'the question shows more than once');
    check(await conversationId(page) === id, 'the reload opened another conversation');
  });

  await scenario('a dropped connection reconnects and shows the whole answer', async (page) => {
    // The page talks to the service through a TCP relay that the test cuts.
    const relay = await startRelay(new URL(KV_URL));
    try {
      await page.goto(`${relay.url}/`);
      await page.locator('#repos li').first().waitFor(WAIT);
      await ask(page, 'SLOW-DROP: a long answer');
      await lastAnswer(page).locator('.markdown', { hasText: 'part02' }).waitFor(WAIT);
      // The network goes down: open connections are cut and new ones refused.
      relay.down(true);
      await page.locator('#connection[data-state="closed"]').waitFor(WAIT);
      check((await page.locator('#connection').textContent()).includes('reconnecting'), 'the drop is not shown');
      check((await lastAnswer(page).textContent()).includes('Connection lost'), 'the answer does not say it was cut');
      relay.down(false);
      const answer = await answerDone(page);
      check(await page.locator('#connection').getAttribute('data-state') === 'open', 'not reconnected');
      const parts = [...(await answer.textContent()).matchAll(/part(\d\d)/g)].map((m) => Number(m[1]));
      check(parts.length === 30 && parts.every((n, i) => n === i + 1), `not the whole answer once, in order: ${parts}`);
    } finally {
      relay.close();
    }
  });

  await scenario('markup in documents and answers is shown as text and never runs', async (page) => {
    await open(page);
    await browseTo(page, 'alpha', 'docs/xss.md');
    const body = page.locator('#viewer-body');
    await body.locator('text=onerror').first().waitFor(WAIT);
    const text = await body.textContent();
    check(text.includes('<img src=x onerror="window.__xss=1">'), `the img tag is not shown as text: ${text}`);
    check(text.includes('<script>window.__xss2=1</script>'), `the script tag is not shown as text: ${text}`);
    check(await body.locator('img, script').count() === 0, 'the document made an img or script element');
    check(await body.locator('a[href^="javascript:"]').count() === 0, 'a javascript: link survived');
    await ask(page, 'XSS: show me something nasty');
    const answer = await answerDone(page);
    check(await answer.locator('img, script').count() === 0, 'the answer made an img or script element');
    check((await answer.textContent()).includes('<img src=x onerror='), 'the answer markup is not shown as text');
    await noInjectedGlobals(page);
  });

  await scenario('the repository scope picker scopes the next message', async (page) => {
    await open(page);
    await page.locator('#scope').selectOption('alpha');
    await ask(page, 'SCOPE: what does alpha do?');
    await answerDone(page);
    // tests/it/browser.rs checks that the request to Claude was scoped to alpha.
  });

  await scenario('errors are shown: an error event and a busy conversation', async (page, context) => {
    await open(page);
    await ask(page, 'ERROR: fail please');
    await lastAnswer(page).locator('.error', { hasText: 'fake refusal' }).waitFor(WAIT);
    const id = await conversationId(page);
    // A second tab on the same conversation, connected before the answer starts.
    const other = await context.newPage();
    await open(other, `#/c/${id}`);
    await other.locator('#connection[data-state="open"]').waitFor(WAIT);
    await ask(page, 'SLOW-BUSY: keep it busy');
    await lastAnswer(page).locator('.markdown', { hasText: 'part01' }).waitFor(WAIT);
    await ask(other, 'a second question while busy');
    await other.locator('.error', { hasText: 'busy' }).waitFor(WAIT);
    check(await other.locator('#send').isEnabled(), 'the refused tab stays blocked');
    await page.locator('#stop').click();
    await answerDone(page, 'cancelled');
  });

  await scenario('the file browser: repositories, a tree, a rendered document with its GitHub link', async (page) => {
    await open(page);
    const handbook = page.locator('#repos li', { hasText: 'handbook' });
    await handbook.waitFor(WAIT);
    const summary = await handbook.locator('summary').first().textContent();
    check(summary.includes('2 docs') && summary.includes('How we work'), `no count or description: ${summary}`);
    await browseTo(page, 'handbook', 'docs/deploy guide.md');
    await page.locator('#viewer-body h1', { hasText: 'Deploying' }).waitFor(WAIT);
    const github = page.locator('#viewer-github');
    check(await github.isVisible(), 'no GitHub link');
    check(await github.getAttribute('href') === 'https://github.com/acme/handbook/blob/main/docs/deploy%20guide.md',
      `GitHub link ${await github.getAttribute('href')}`);
    // A relative link inside a document opens the linked document.
    await page.locator('#viewer-close').click();
    await browseTo(page, 'alpha', 'README.md');
    await page.locator('#viewer-body a', { hasText: 'the deploy guide' }).click();
    await page.locator('#viewer-path', { hasText: 'alpha/docs/deploy.md' }).waitFor(WAIT);
  });

  await scenario('search as you type opens the matching document', async (page) => {
    await open(page);
    await page.locator('#search').focus();
    await page.keyboard.type('frobnicator', { delay: 30 });
    const hit = page.locator('#search-results a.doc-link').first();
    await hit.waitFor(WAIT);
    check((await page.locator('#search-results').textContent()).includes('alpha/docs/guide.md'), 'the hit is not the guide');
    await hit.click();
    await page.locator('#viewer-path', { hasText: 'alpha/docs/guide.md' }).waitFor(WAIT);
  });

  await scenario('conversations: listed newest first, opened from the list and the URL, deleted', async (page) => {
    await open(page);
    await ask(page, 'FIRST: the older conversation');
    await answerDone(page);
    const first = await conversationId(page);
    await page.locator('#new-chat').click();
    check(await page.locator('#messages article').count() === 0, 'New conversation did not clear the chat');
    await ask(page, 'SECOND: the newer conversation');
    await answerDone(page);
    const second = await conversationId(page);
    check(first !== second, 'the second conversation has the first one’s id');
    const items = page.locator('#conversations a.conversation');
    await items.first().locator('.title', { hasText: 'SECOND' }).waitFor(WAIT);
    check((await items.nth(1).textContent()).includes('FIRST'), 'the list is not newest first');
    check((await items.first().textContent()).includes('2 messages'), 'no message count');
    // Open the older one from the list: its history shows.
    await items.nth(1).click();
    await page.locator('article.user', { hasText: 'FIRST' }).waitFor(WAIT);
    check(await conversationId(page) === first, 'the list opened another conversation');
    check(await page.locator('article.assistant').count() === 1, 'the history lacks the answer');
    // A link (a fresh page at the URL) opens the same conversation.
    const other = await page.context().newPage();
    await open(other, `#/c/${second}`);
    await other.locator('article.user', { hasText: 'SECOND' }).waitFor(WAIT);
    await other.close();
    // Delete the open one: it leaves the list and the server.
    await page.locator('#conversations li', { hasText: 'FIRST' }).locator('button.delete').click();
    await page.locator('#conversations li', { hasText: 'FIRST' }).waitFor({ state: 'detached', ...WAIT });
    check(!page.url().includes(first), 'the deleted conversation is still open');
    const status = await page.evaluate(async (id) => (await fetch(`/api/conversations/${id}/messages`)).status, first);
    check(status === 404, `the deleted conversation still answers ${status}`);
  });

  await scenario('with access tokens on, the token is asked once, kept, and sent (REST, MCP, WebSocket)', async (page, context) => {
    // The service's access control, played by the browser's request routing:
    // REST and /mcp answer 401 (with WWW-Authenticate) unless the token comes.
    let wanted = 'tok-page-1';
    const seen = [];
    await context.route(/\/(api|mcp)/, (route) => {
      const auth = route.request().headers().authorization ?? '';
      seen.push(auth);
      if (auth === `Bearer ${wanted}`) return route.continue();
      return route.fulfill({
        status: 401,
        headers: { 'WWW-Authenticate': 'Bearer', 'Content-Type': 'application/json' },
        body: JSON.stringify({ detail: 'missing or invalid access token' }),
      });
    });
    const sockets = [];
    page.on('websocket', (ws) => sockets.push(ws.url()));
    await page.goto(`${KV_URL}/`);
    const dialog = page.locator('#token-dialog');
    await dialog.waitFor({ state: 'visible', ...WAIT });
    check(await page.locator('#token').evaluate((el) => el === document.activeElement), 'the token box has no focus');
    await page.keyboard.insertText(wanted);
    await page.keyboard.press('Enter');
    await page.locator('#repos li').first().waitFor(WAIT);
    check(await page.evaluate(() => localStorage.getItem('knowledge-vault.token')) === wanted, 'the token is not kept');
    await page.locator('#search').focus();
    await page.keyboard.type('frobnicator');
    await page.locator('#search-results a.doc-link').first().waitFor(WAIT);
    await ask(page, 'TOKEN: with a token');
    await answerDone(page);
    check(sockets.some((u) => new URL(u).searchParams.get('access_token') === wanted), `no access_token on ${sockets}`);
    // Kept across a reload: not asked again.
    await page.reload();
    await page.locator('#repos li').first().waitFor(WAIT);
    check(await dialog.isHidden(), 'the token is asked again after a reload');
    // A token the service no longer accepts: asked again.
    wanted = 'tok-page-2';
    await page.reload();
    await dialog.waitFor({ state: 'visible', ...WAIT });
    check((await page.locator('#token-reason').textContent()).includes('refused'), 'the prompt does not say the token was refused');
    await page.locator('#token').fill(wanted);
    await page.locator('#token-save').click();
    await page.locator('#repos li').first().waitFor(WAIT);
    check(seen.includes('Bearer tok-page-2'), 'the new token is not sent');
  });

  await scenario('keyboard only: skip link, visible focus, labelled controls', async (page) => {
    await open(page);
    const first = await page.evaluate(() => document.querySelector('a, button, input, select, textarea').className);
    check(first === 'skip', `the first focusable element is not the skip link but ${first}`);
    await page.locator('a.skip').focus();
    const box = await page.locator('a.skip').boundingBox();
    check(box && box.x >= 0 && box.y >= 0, 'the focused skip link is off screen');
    await page.keyboard.press('Enter');
    check(await page.evaluate(() => document.activeElement.id) === 'prompt', 'the skip link does not reach the message box');
    await page.keyboard.press('Tab');
    check(await page.evaluate(() => document.activeElement.id) === 'send', 'Tab from the message box does not reach Send');
    const outline = await page.evaluate(() => getComputedStyle(document.activeElement).outlineStyle);
    check(outline !== 'none', `no visible focus on ${await page.evaluate(() => document.activeElement.outerHTML.slice(0, 80))}`);
    // Every control has an accessible name.
    const unnamed = await page.evaluate(() => [...document.querySelectorAll('button, input, select, textarea')]
      .filter((el) => !el.closest('[hidden], dialog:not([open])'))
      .filter((el) => !(el.labels?.length || el.getAttribute('aria-label') || el.textContent.trim()))
      .map((el) => el.outerHTML.slice(0, 80)));
    check(unnamed.length === 0, `controls without a label: ${unnamed.join(', ')}`);
  });

  await scenario('screenshots of the chat (light and dark, desktop and 360 px)', async (page) => {
    await open(page);
    await ask(page, 'SHOT: how is alpha deployed?');
    await answerDone(page);
    await screenshots(page, 'chat');
    // The sidebar on a phone, behind the Menu button.
    await page.setViewportSize({ width: 360, height: 740 });
    await page.locator('#menu-toggle').click();
    check(await page.locator('#sidebar').isVisible(), 'Menu does not show the sidebar at 360 px');
    for (const scheme of ['light', 'dark']) {
      await page.emulateMedia({ colorScheme: scheme });
      await page.screenshot({ path: path.join(KV_SCREENSHOTS, `menu-${scheme}-360px.png`) });
    }
    await page.locator('#menu-toggle').click();
    await page.setViewportSize({ width: 1280, height: 800 });
    await browseTo(page, 'alpha', 'README.md');
    await screenshots(page, 'document');
  });
}

// ---------- offline retrieval mode (no key) ----------

// Against a service with API_TOKENS on: its real 401s, its real token check
// on REST, /mcp and the WebSocket handshake (KV_TOKEN is one of its tokens).
async function tokensSuite() {
  const token = process.env.KV_TOKEN;
  if (!token) throw new Error('KV_TOKEN is not set');
  await scenario('a service with tokens on: asked once, then REST, search and the chat work', async (page) => {
    await page.goto(`${KV_URL}/`);
    const dialog = page.locator('#token-dialog');
    await dialog.waitFor({ state: 'visible', ...WAIT });
    await page.locator('#token').fill('not-the-right-token-0000');
    await page.locator('#token-save').click();
    await dialog.waitFor({ state: 'visible', ...WAIT });
    check((await page.locator('#token-reason').textContent()).includes('refused'), 'a wrong token is not said to be refused');
    await page.locator('#token').fill(token);
    await page.locator('#token-save').click();
    await page.locator('#repos li').first().waitFor(WAIT);
    await page.locator('#search').focus();
    await page.keyboard.type('frobnicator');
    await page.locator('#search-results a.doc-link').first().waitFor(WAIT);
    await ask(page, 'frobnicator');
    const answer = await answerDone(page);
    check((await answer.textContent()).includes('No language model is configured'), 'the chat did not answer');
    await page.reload();
    await page.locator('#conversations li').first().waitFor(WAIT);
    check(await dialog.isHidden(), 'the token is asked again after a reload');
  });
}

async function offlineSuite() {
  await scenario('offline mode is visible and answers with search results', async (page) => {
    await open(page);
    const notice = page.locator('#offline-notice');
    check(await notice.isVisible(), 'no offline notice');
    const text = await notice.textContent();
    check(/no language model is configured/i.test(text) && /search results/i.test(text), `notice: ${text}`);
    await ask(page, 'frobnicator');
    const answer = await answerDone(page);
    check((await answer.textContent()).includes('No language model is configured'), 'the answer does not say it');
    check(await answer.locator('details.tool').count() === 1, 'the search is not shown as a tool call');
    await answer.locator('a.doc-link', { hasText: 'alpha/docs/guide.md' }).click();
    await page.locator('#viewer-path', { hasText: 'alpha/docs/guide.md' }).waitFor(WAIT);
    await ask(page, 'onerror script');
    await answerDone(page);
    await page.evaluate(() => new Promise(requestAnimationFrame));
    const gap = await page.evaluate(() => {
      const log = document.querySelector('#messages');
      return log.scrollHeight - log.scrollTop - log.clientHeight;
    });
    check(gap < 5, `the newest answer is not scrolled into view (${gap} px below)`);
    await noInjectedGlobals(page);
    await page.keyboard.press('Escape');
    await screenshots(page, 'offline');
  });
}

try {
  if (KV_SUITE === 'claude') await claudeSuite();
  else if (KV_SUITE === 'offline') await offlineSuite();
  else if (KV_SUITE === 'tokens') await tokensSuite();
  else throw new Error(`unknown KV_SUITE ${KV_SUITE}`);
} finally {
  await browser.close();
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed === 0 && passed > 0 ? 0 : 1);
