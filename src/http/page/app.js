// Knowledge Vault's built-in page, and the reference client of its API.
//
// Plain JavaScript, no framework, no build step. It uses only what the API
// documents: REST (/health, /api/repos..., /api/conversations...), the chat
// WebSocket (/ws/chat/{id}), and /mcp for search-as-you-type. Read it top to
// bottom: helpers, access token, REST and MCP, markdown, the chat socket
// (the protocol parts are commented), browsing, conversations, start-up.
//
// Everything that comes from the service is untrusted text (documents,
// answers, tool results, titles): it goes into the page as textContent, or
// as markdown rendered by marked with raw HTML shown as text, then sanitized
// by DOMPurify. The Content-Security-Policy is the last line: no inline
// script, no eval.
'use strict';

// ---------- small helpers ----------

const $ = (selector) => document.querySelector(selector);

/** Builds an element: `props` are properties (or data-/aria- attributes), children are nodes or text. */
function h(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key.startsWith('data-') || key.startsWith('aria-')) node.setAttribute(key, value);
    else node[key] = value;
  }
  node.append(...children.filter((c) => c !== null && c !== undefined && c !== false));
  return node;
}

/** A repository-relative path as URL path segments. */
const encodePath = (path) => path.split('/').map(encodeURIComponent).join('/');

function showError(message) {
  const notices = $('#notices');
  if (notices.lastElementChild?.dataset.message === message) return; // no pile of the same line
  const close = h('button', { type: 'button', className: 'link', textContent: 'Dismiss' });
  const notice = h('p', { className: 'error', 'data-message': message }, message, ' ', close);
  close.addEventListener('click', () => notice.remove());
  notices.append(notice);
}

// ---------- the access token (only when the service has tokens on) ----------
//
// Asked once, on the first 401, kept in localStorage, sent as
// `Authorization: Bearer` on REST and /mcp and as `access_token` on the
// WebSocket (browsers cannot set headers there). A later 401 asks again.

const TOKEN_KEY = 'knowledge-vault.token';
let tokenPrompt = null;

function token() {
  try {
    return localStorage.getItem(TOKEN_KEY) || '';
  } catch {
    return '';
  }
}

function askToken() {
  tokenPrompt ??= new Promise((resolve) => {
    const dialog = $('#token-dialog');
    $('#token-reason').textContent = token()
      ? 'The service refused the saved access token. Enter a valid one.'
      : 'This service needs an access token.';
    $('#token').value = '';
    dialog.addEventListener('close', () => {
      const value = $('#token').value.trim();
      if (dialog.returnValue === 'save' && value) {
        try {
          localStorage.setItem(TOKEN_KEY, value);
        } catch {
          showError('This browser does not allow storing the token.');
        }
      }
      tokenPrompt = null;
      resolve();
    }, { once: true });
    dialog.showModal();
  });
  return tokenPrompt;
}

// ---------- REST and MCP ----------

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/** fetch() with the token; on a 401, asks for a token and tries once more. */
async function request(path, init = {}) {
  for (let retried = false; ; retried = true) {
    const headers = new Headers(init.headers);
    if (token()) headers.set('Authorization', `Bearer ${token()}`);
    let response;
    try {
      response = await fetch(path, { ...init, headers });
    } catch (e) {
      throw new ApiError(0, `Cannot reach the service (${e.message}).`);
    }
    if (response.status !== 401 || retried) return response;
    await askToken();
  }
}

/** A REST call: the JSON body, or an ApiError carrying the `detail` of the error body. */
async function api(path, method = 'GET') {
  const response = await request(path, { method });
  const body = await response.json().catch(() => null);
  if (!response.ok) {
    throw new ApiError(response.status, body?.detail ?? `${method} ${path}: HTTP ${response.status}`);
  }
  return body;
}

// Search-as-you-type calls the search_documentation tool through /mcp (MCP
// Streamable HTTP, JSON-RPC 2.0): `initialize` once to get a session id, then
// `tools/call` with that id. A 404 means the session expired: start a new one.
const MCP_VERSION = '2025-06-18';
const mcp = { session: null, nextId: 1 };

function mcpPost(message) {
  const headers = { 'Content-Type': 'application/json', Accept: 'application/json' };
  if (mcp.session) {
    headers['Mcp-Session-Id'] = mcp.session;
    headers['MCP-Protocol-Version'] = MCP_VERSION;
  }
  return request('/mcp', { method: 'POST', headers, body: JSON.stringify({ jsonrpc: '2.0', ...message }) });
}

async function callTool(name, args) {
  for (let attempt = 0; attempt < 2; attempt++) {
    if (!mcp.session) {
      const init = await mcpPost({
        id: mcp.nextId++,
        method: 'initialize',
        params: { protocolVersion: MCP_VERSION, capabilities: {}, clientInfo: { name: 'knowledge-vault-page', version: '1' } },
      });
      if (!init.ok) throw new ApiError(init.status, `search is unavailable (HTTP ${init.status})`);
      mcp.session = init.headers.get('Mcp-Session-Id');
      await mcpPost({ method: 'notifications/initialized' });
    }
    const response = await mcpPost({ id: mcp.nextId++, method: 'tools/call', params: { name, arguments: args } });
    if (response.status === 404) {
      mcp.session = null;
      continue;
    }
    const reply = await response.json().catch(() => null);
    if (reply?.error) throw new ApiError(response.status, reply.error.message);
    if (!response.ok || !reply?.result) throw new ApiError(response.status, `search failed (HTTP ${response.status})`);
    if (reply.result.isError) throw new ApiError(200, reply.result.content?.[0]?.text ?? 'search failed');
    return reply.result.structuredContent?.result ?? reply.result.structuredContent;
  }
  throw new ApiError(404, 'search failed: the MCP session keeps expiring');
}

// ---------- markdown ----------
//
// Documents and answers are untrusted. Raw HTML inside markdown is shown as
// text (a `<script>` in a README is displayed, never parsed as a tag), and
// the HTML marked produces goes through DOMPurify (which also drops
// `javascript:` links). Links leaving the page open in a new tab.

const escapeHtml = (s) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
const markdown = new marked.Marked({ gfm: true });
markdown.use({
  renderer: {
    html({ text, block }) {
      return block ? `<p>${escapeHtml(text)}</p>` : escapeHtml(text);
    },
  },
});
DOMPurify.addHook('afterSanitizeAttributes', (node) => {
  if (node.tagName === 'A' && /^https?:/i.test(node.getAttribute('href') ?? '')) {
    node.setAttribute('target', '_blank');
    node.setAttribute('rel', 'noopener noreferrer');
  }
});

/** Renders `source` into `node` (replacing its content). */
function renderMarkdown(node, source) {
  node.innerHTML = DOMPurify.sanitize(markdown.parse(source), { FORBID_TAGS: ['style', 'form'], FORBID_ATTR: ['style'] });
  linkCitations(node);
}

/** Names of the known repositories, to recognise `repo/path` citations. */
let repoNames = new Set();

/** A link that opens a document in the viewer. */
function docLink(repo, path, label) {
  const href = `/api/repos/${encodeURIComponent(repo)}/files/${encodePath(path)}`;
  const link = h('a', { href, className: 'doc-link', textContent: label, title: `Open ${repo}/${path}` });
  link.addEventListener('click', (e) => {
    e.preventDefault();
    openDocument(repo, path);
  });
  return link;
}

/** Answers cite documents as `repo/path` (code spans): those of a known repository become viewer links. */
function linkCitations(root) {
  for (const code of root.querySelectorAll('code')) {
    if (code.closest('pre, a')) continue;
    const text = code.textContent.trim();
    const slash = text.indexOf('/');
    const [repo, path] = [text.slice(0, slash), text.slice(slash + 1)];
    if (slash > 0 && path && repoNames.has(repo)) {
      code.replaceWith(h('code', {}, docLink(repo, path, text)));
    }
  }
}

// ---------- the chat ----------
//
// One WebSocket per open conversation, /ws/chat/{id}. Sent: {"type":
// "message", "content", "context"?}, {"type": "cancel"}, {"type": "ping"}.
// Received: text, tool_use_start, tool_result, done, error, pong.
//
// Answers outlive sockets: the server keeps running an answer when the
// socket drops, and a socket that connects to a conversation whose answer is
// still running first receives that answer's events so far (the replay),
// then the rest live. So opening a conversation is always the same three
// steps, on first load, on a reload and after a dropped connection:
//   1. GET .../messages: the stored history (finished answers, and the
//      question of an answer still running);
//   2. open the socket and send a ping;
//   3. events before our pong are the replay of the running answer: draw it
//      from the start. If there was none although the history ended with a
//      question, that answer finished in between: fetch the history again.

const chat = {
  id: null, // the open conversation (also in the URL: #/c/<id>)
  ws: null, // its socket, or null
  replaying: false, // between opening the socket and our pong
  replayed: false, // an event arrived while replaying
  answer: null, // the AnswerView being streamed, or null
  retries: 0, // reconnection attempts since the last successful open
  timer: null, // the pending reconnection
  generation: 0, // bumped by every open/close: stale async work checks it
  ready: Promise.resolve(), // settles when the open conversation is in sync
  sending: false, // a message is on its way (no second one meanwhile)
};

function socketUrl(id) {
  const url = new URL(`/ws/chat/${encodeURIComponent(id)}`, location.href);
  url.protocol = location.protocol === 'https:' ? 'wss:' : 'ws:';
  if (token()) url.searchParams.set('access_token', token());
  return url.href;
}

function setConnection(state, text) {
  const status = $('#connection');
  status.dataset.state = state;
  status.textContent = text;
}

function setBusy(busy) {
  document.body.dataset.busy = busy ? 'true' : 'false';
  $('#send').disabled = busy;
  $('#stop').hidden = !busy;
}

/** Closes the socket on purpose (switching conversations): no reconnection. */
function closeSocket() {
  chat.generation++;
  clearTimeout(chat.timer);
  const ws = chat.ws;
  chat.ws = null;
  ws?.close();
  chat.answer = null;
  setBusy(false);
}

/** Shows conversation `id`: history, then the live socket. Resolves when in sync. */
function openConversation(id) {
  chat.ready = showConversation(id);
  return chat.ready;
}

async function showConversation(id) {
  closeSocket();
  const generation = chat.generation;
  chat.id = id;
  markCurrentConversation();
  $('#messages').replaceChildren();
  const history = await loadHistory(id);
  if (generation !== chat.generation) return;
  growing(() => $('#messages').append(...history.map(messageView)), true);
  await connect(id, history.at(-1)?.role === 'user', generation);
}

async function loadHistory(id) {
  try {
    return await api(`/api/conversations/${encodeURIComponent(id)}/messages`);
  } catch (e) {
    // 404: a new conversation (the socket creates it). Other errors are shown.
    if (e.status !== 404) showError(`Cannot load the conversation: ${e.message}`);
    return [];
  }
}

function connect(id, endsWithQuestion, generation) {
  return new Promise((resolve) => {
    setConnection('connecting', 'Connecting…');
    const ws = new WebSocket(socketUrl(id));
    chat.ws = ws;
    chat.replaying = true;
    chat.replayed = false;
    ws.addEventListener('open', () => {
      chat.retries = 0;
      setConnection('open', 'Connected');
      ws.send(JSON.stringify({ type: 'ping' }));
    });
    ws.addEventListener('message', async (e) => {
      if (ws !== chat.ws) return;
      let event;
      try {
        event = JSON.parse(e.data);
      } catch {
        showError('The service sent a frame that is not JSON.');
        return;
      }
      if (event.type === 'pong' && chat.replaying) {
        chat.replaying = false;
        if (!chat.replayed && endsWithQuestion) await catchUp(id, generation);
        resolve();
        return;
      }
      if (chat.replaying) chat.replayed = true;
      onEvent(event);
    });
    ws.addEventListener('close', () => {
      resolve();
      if (ws !== chat.ws) return; // closed on purpose
      chat.ws = null;
      onDrop(id);
    });
  });
}

/** No replay although the history ended with a question: either the answer
 * finished before our socket subscribed (the history now has it), or it has
 * not produced an event yet (it is live on our socket: wait for it). */
async function catchUp(id, generation) {
  const history = await loadHistory(id);
  if (generation !== chat.generation || chat.answer) return;
  const last = history.at(-1);
  if (last?.role === 'assistant') $('#messages').append(messageView(last));
  else if (last?.role === 'user') currentAnswer();
}

/** The socket dropped (network, server restart): show it, reconnect with backoff. */
function onDrop(id) {
  const delay = Math.min(10_000, 500 * 2 ** chat.retries++);
  setConnection('closed', `Disconnected; reconnecting in ${Math.ceil(delay / 1000)} s`);
  if (chat.answer) {
    chat.answer.note('Connection lost. The answer goes on on the server; it is shown again on reconnection.');
  } else {
    showError('The connection to the service was lost; reconnecting.');
  }
  chat.timer = setTimeout(async () => {
    // A WebSocket refused for a missing token shows no status to scripts:
    // ask REST first, which answers 401 (and prompts for the token).
    await request('/api/conversations?limit=1').catch(() => {});
    if (chat.id === id) openConversation(id);
  }, delay);
}

/** The answer being streamed, created on its first event. */
function currentAnswer() {
  if (!chat.answer) {
    chat.answer = new AnswerView();
    setBusy(true);
  }
  return chat.answer;
}

function onEvent(event) {
  switch (event.type) {
    case 'text':
      currentAnswer().addText(event.content);
      break;
    case 'tool_use_start': // the full input, just before the tool runs
      currentAnswer().startTool(event.toolId, event.name, event.input);
      break;
    case 'tool_result': // matched to its start by toolId
      currentAnswer().finishTool(event.toolId, event.result, event.duration, event.isError === true);
      break;
    case 'done': // the answer is stored (also after a cancel or an error)
      chat.answer?.finish();
      chat.answer = null;
      setBusy(false);
      refreshConversations();
      break;
    case 'error':
      onErrorEvent(event.message ?? 'unknown error');
      break;
    case 'pong':
      break;
    default:
      showError(`The service sent an unknown event type: ${event.type}`);
  }
}

function onErrorEvent(message) {
  if (chat.answer && !chat.answer.started) {
    // Refused before it began (a busy conversation), or failed at once: a
    // `done` may or may not follow, so the answer ends here.
    chat.answer.error(message);
    chat.answer.finish('error');
    chat.answer = null;
    setBusy(false);
  } else if (chat.answer) {
    chat.answer.error(message);
  } else {
    $('#messages').append(h('p', { className: 'error' }, message));
  }
}

async function send() {
  if (chat.sending) return;
  chat.sending = true;
  try {
    await sendMessage();
  } finally {
    chat.sending = false;
  }
}

async function sendMessage() {
  const prompt = $('#prompt');
  const content = prompt.value;
  if (!content.trim() || chat.answer) return;
  if (chat.id) {
    await chat.ready; // the socket of a conversation being opened
  } else {
    // The conversation is created on its first message, then lives in the URL.
    let created;
    try {
      created = await api('/api/conversations', 'POST');
    } catch (e) {
      showError(`Cannot start a conversation: ${e.message}`);
      return;
    }
    history.pushState(null, '', `#/c/${encodeURIComponent(created.id)}`);
    await openConversation(created.id);
  }
  if (chat.answer) return; // opening found an answer still running
  if (chat.ws?.readyState !== WebSocket.OPEN) {
    showError('Not connected to the service; the message was not sent.');
    return;
  }
  const frame = { type: 'message', content };
  const repo = $('#scope').value;
  if (repo) frame.context = { scope: 'repo', repoName: repo };
  chat.ws.send(JSON.stringify(frame));
  $('#messages').append(messageView({ role: 'user', content }));
  currentAnswer();
  prompt.value = '';
}

function stop() {
  if (!chat.answer || chat.ws?.readyState !== WebSocket.OPEN) return;
  // The server stops at once and still sends `done` (the partial answer is kept).
  chat.ws.send(JSON.stringify({ type: 'cancel' }));
  chat.answer.stopping = true;
}

// ---------- drawing messages ----------

/** A stored message (from GET .../messages) or a question just sent. */
function messageView({ role, content, status }) {
  const body = h('div', { className: role === 'user' ? 'text' : 'markdown' });
  if (role === 'user') body.textContent = content;
  else renderMarkdown(body, content);
  return h('article', { className: `message ${role}`, 'data-state': status ?? 'done' },
    h('h3', { className: 'role', textContent: role === 'user' ? 'You' : 'Assistant' }),
    body,
    status ? h('p', { className: 'status', textContent: statusText(status) }) : null);
}

function statusText(status) {
  return {
    cancelled: 'Stopped: the answer is incomplete.',
    interrupted: 'Interrupted: the answer is incomplete.',
    truncated: 'Truncated: the answer reached its length or tool-round limit.',
    error: 'Failed.',
  }[status] ?? status;
}

/** An answer as it streams: text parts (markdown) and tool calls, in order. */
class AnswerView {
  constructor() {
    this.parts = h('div', { className: 'parts' });
    // aria-busy: screen readers read the answer once it is complete.
    this.el = h('article', { className: 'message assistant', 'data-state': 'waiting', 'aria-busy': 'true' },
      h('h3', { className: 'role', textContent: 'Assistant' }), this.parts);
    this.text = null; // the text part being appended to: { node, source }
    this.tools = new Map(); // toolId -> its <details>
    this.started = false;
    this.stopping = false;
    growing(() => $('#messages').append(this.el), true);
  }

  begin() {
    this.started = true;
    this.el.dataset.state = 'streaming';
  }

  addText(piece) {
    this.begin();
    if (!this.text) {
      this.text = { node: h('div', { className: 'markdown' }), source: '' };
      this.parts.append(this.text.node);
    }
    this.text.source += piece;
    scheduleRender(this.text);
  }

  startTool(id, name, input) {
    this.begin();
    this.text = null;
    const details = h('details', { className: 'tool', 'data-state': 'running' },
      h('summary', {},
        h('span', { className: 'tool-name', textContent: name }), ' ',
        h('code', { className: 'tool-input', textContent: clip(JSON.stringify(input ?? {}), 160) }), ' ',
        h('span', { className: 'tool-status', textContent: 'running…' })),
      h('pre', { className: 'tool-result', textContent: 'No result yet.' }));
    this.tools.set(id, details);
    growing(() => this.parts.append(details));
  }

  finishTool(id, result, duration, isError) {
    const details = this.tools.get(id);
    if (!details) return;
    details.dataset.state = isError ? 'failed' : 'done';
    const ms = Number.isFinite(duration) ? `${duration} ms` : '';
    details.querySelector('.tool-status').textContent = isError ? `failed ${ms}` : ms;
    details.querySelector('.tool-result').textContent =
      clip(typeof result === 'string' ? result : JSON.stringify(result, null, 2), 20_000);
  }

  error(message) {
    this.text = null;
    growing(() => this.parts.append(h('p', { className: 'error', textContent: message })));
  }

  note(message) {
    this.parts.append(h('p', { className: 'note', textContent: message }));
  }

  finish(state = this.stopping ? 'cancelled' : 'done') {
    flushRenders();
    this.el.dataset.state = state;
    this.el.setAttribute('aria-busy', 'false');
    if (state !== 'done') this.el.append(h('p', { className: 'status', textContent: statusText(state) }));
  }
}

const clip = (s, n) => (s.length > n ? `${s.slice(0, n)}… (${s.length - n} more characters)` : s);

// Streamed text is re-rendered at most once per frame, not once per delta.
const pendingRenders = new Set();
function scheduleRender(part) {
  if (pendingRenders.size === 0) {
    requestAnimationFrame(flushRenders);
  }
  pendingRenders.add(part);
}
function flushRenders() {
  growing(() => {
    for (const part of pendingRenders) renderMarkdown(part.node, part.source);
  });
  pendingRenders.clear();
}

/** Runs `change`, which adds to the conversation, and keeps its end in view
 * if it was in view before (a reader who scrolled up stays where they are). */
function growing(change, force = false) {
  const log = $('#messages');
  const atEnd = log.scrollHeight - log.scrollTop - log.clientHeight < 80;
  change();
  if (force || atEnd) log.scrollTop = log.scrollHeight;
}

// ---------- browsing: repositories, documents, search ----------

async function loadRepos() {
  let repos;
  try {
    repos = await api('/api/repos');
  } catch (e) {
    $('#repos').replaceChildren(h('li', { className: 'error', textContent: `Cannot list repositories: ${e.message}` }));
    return;
  }
  repoNames = new Set(repos.map((r) => r.name));
  $('#repos').replaceChildren(...repos.map(repoView));
  const scope = $('#scope');
  scope.replaceChildren(scope.options[0], ...repos.map((r) => h('option', { value: r.name, textContent: r.name })));
}

function repoView(repo) {
  const tree = h('div', { className: 'tree' });
  const details = h('details', { className: 'repo' },
    h('summary', {},
      h('span', { className: 'repo-name', textContent: repo.name }), ' ',
      h('span', { className: 'count', textContent: `${repo.doc_count} docs` }),
      repo.description ? h('span', { className: 'description', textContent: repo.description }) : null),
    tree);
  details.addEventListener('toggle', async () => {
    if (!details.open || tree.dataset.loaded) return;
    tree.dataset.loaded = 'true';
    tree.textContent = 'Loading…';
    try {
      const entries = await api(`/api/repos/${encodeURIComponent(repo.name)}/tree`);
      tree.replaceChildren(treeView(repo.name, entries));
    } catch (e) {
      delete tree.dataset.loaded;
      tree.replaceChildren(h('p', { className: 'error', textContent: `Cannot list documents: ${e.message}` }));
    }
  });
  return h('li', {}, details);
}

/** Sorted paths as nested folders (collapsed) and files. */
function treeView(repo, entries) {
  const root = { dirs: new Map(), files: [] };
  for (const { path, type } of entries) {
    if (type !== 'file') continue;
    const parts = path.split('/');
    let node = root;
    for (const dir of parts.slice(0, -1)) {
      if (!node.dirs.has(dir)) node.dirs.set(dir, { dirs: new Map(), files: [] });
      node = node.dirs.get(dir);
    }
    node.files.push(path);
  }
  const draw = (node) => h('ul', { className: 'plain' },
    ...[...node.dirs].map(([name, child]) => h('li', {}, h('details', {}, h('summary', { textContent: `${name}/` }), draw(child)))),
    ...node.files.map((path) => h('li', {}, docLink(repo, path, path.split('/').pop()))));
  return draw(root);
}

const MARKDOWN_FILE = /\.(md|mdx|markdown)$|(^|\/)(README|CONTRIBUTING|CHANGELOG)$/i;

async function openDocument(repo, path) {
  const viewer = $('#viewer');
  viewer.hidden = false;
  document.body.classList.add('viewing');
  $('#viewer-title').textContent = path.split('/').pop();
  $('#viewer-path').textContent = `${repo}/${path}`;
  $('#viewer-github').hidden = true;
  const body = $('#viewer-body');
  body.textContent = 'Loading…';
  $('#viewer-title').focus();
  let doc;
  try {
    doc = await api(`/api/repos/${encodeURIComponent(repo)}/files/${encodePath(path)}`);
  } catch (e) {
    body.replaceChildren(h('p', { className: 'error', textContent: `Cannot open ${repo}/${path}: ${e.message}` }));
    return;
  }
  if (doc.metadata?.title) $('#viewer-title').textContent = doc.metadata.title;
  const url = doc.metadata?.url ?? '';
  if (/^https:\/\//.test(url)) {
    $('#viewer-github').href = url;
    $('#viewer-github').hidden = false;
  }
  if (MARKDOWN_FILE.test(path)) {
    renderMarkdown(body, doc.content);
    linkRelativeDocs(body, repo, path);
  } else {
    body.replaceChildren(h('pre', { className: 'plain-text', textContent: doc.content }));
  }
  body.scrollTop = 0;
}

/** Relative links inside a document open the linked document in the viewer. */
function linkRelativeDocs(root, repo, path) {
  for (const a of root.querySelectorAll('a[href]')) {
    const href = a.getAttribute('href');
    if (/^([a-z][a-z0-9+.-]*:|#|\/)/i.test(href)) continue;
    try {
      const target = new URL(href, `http://doc/${encodePath(path)}`);
      a.replaceWith(docLink(repo, decodeURIComponent(target.pathname.slice(1)), a.textContent));
    } catch {
      // A malformed link in a document stays as it is.
    }
  }
}

function closeDocument() {
  $('#viewer').hidden = true;
  document.body.classList.remove('viewing');
  $('#prompt').focus();
}

let searchTimer = null;
let searchSeq = 0;
function onSearchInput() {
  clearTimeout(searchTimer);
  const query = $('#search').value.trim();
  const results = $('#search-results');
  if (!query) {
    results.replaceChildren();
    return;
  }
  searchTimer = setTimeout(async () => {
    const seq = ++searchSeq;
    let hits;
    try {
      hits = await callTool('search_documentation', { query, limit: 8 });
    } catch (e) {
      if (seq === searchSeq) results.replaceChildren(h('li', { className: 'error', textContent: `Search failed: ${e.message}` }));
      return;
    }
    if (seq !== searchSeq) return; // a newer query is on its way
    if (!Array.isArray(hits) || hits.length === 0) {
      results.replaceChildren(h('li', { className: 'muted', textContent: 'No document matches.' }));
      return;
    }
    results.replaceChildren(...hits.map((hit) => h('li', { className: 'hit' },
      docLink(hit.repo, hit.path, hit.title || hit.path),
      h('span', { className: 'hit-path', textContent: `${hit.repo}/${hit.path}${hit.heading ? ` § ${hit.heading}` : ''}` }),
      h('span', { className: 'snippet', textContent: hit.snippet ?? '' }))));
  }, 200);
}

// ---------- conversations ----------

async function refreshConversations() {
  const list = $('#conversations');
  let conversations;
  try {
    conversations = await api('/api/conversations?limit=50');
  } catch (e) {
    list.replaceChildren(h('li', { className: 'error', textContent: `Cannot list conversations: ${e.message}` }));
    return;
  }
  list.replaceChildren(...conversations.map((c) => {
    const title = c.title || 'New conversation';
    const link = h('a', { href: `#/c/${encodeURIComponent(c.id)}`, className: 'conversation', 'data-id': c.id },
      h('span', { className: 'title', textContent: title }),
      h('span', { className: 'meta', textContent: `${c.message_count} messages · ${when(c.last_activity)}` }));
    const remove = h('button', { type: 'button', className: 'delete', textContent: 'Delete', 'aria-label': `Delete conversation ${title}` });
    remove.addEventListener('click', () => deleteConversation(c.id, title));
    return h('li', {}, link, remove);
  }));
  markCurrentConversation();
}

/** An RFC 3339 time as the time of day if it is today, else the date. */
function when(rfc3339) {
  const date = new Date(rfc3339);
  if (Number.isNaN(date.getTime())) return '';
  const today = date.toDateString() === new Date().toDateString();
  return today ? date.toLocaleTimeString([], { timeStyle: 'short' }) : date.toLocaleDateString([], { dateStyle: 'medium' });
}

function markCurrentConversation() {
  for (const link of document.querySelectorAll('#conversations a.conversation')) {
    if (link.dataset.id === chat.id) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
}

async function deleteConversation(id, title) {
  if (!confirm(`Delete the conversation "${title}"? This cannot be undone.`)) return;
  try {
    await api(`/api/conversations/${encodeURIComponent(id)}`, 'DELETE');
  } catch (e) {
    showError(`Cannot delete the conversation: ${e.message}`);
    return;
  }
  if (id === chat.id) newConversation();
  refreshConversations();
}

/** An empty chat; the conversation is created by its first message. */
function newConversation() {
  closeSocket();
  chat.id = null;
  $('#messages').replaceChildren();
  setConnection('idle', '');
  if (location.hash) history.pushState(null, '', location.pathname);
  markCurrentConversation();
  $('#prompt').focus();
}

/** The URL says which conversation is open: #/c/<id>. */
function route() {
  const match = location.hash.match(/^#\/c\/([^/]+)$/);
  const id = match ? decodeURIComponent(match[1]) : null;
  if (id === chat.id) return;
  if (id) openConversation(id);
  else newConversation();
  document.body.classList.remove('menu-open');
  $('#menu-toggle').setAttribute('aria-expanded', 'false');
}

// ---------- start-up ----------

async function checkHealth() {
  try {
    const health = await api('/health');
    // Offline retrieval mode: answers are search results, and the page says so.
    $('#offline-notice').hidden = health?.services?.claude_api?.status !== 'unavailable';
  } catch (e) {
    showError(`Cannot reach the service: ${e.message}`);
  }
}

function bindControls() {
  $('#composer').addEventListener('submit', (e) => {
    e.preventDefault();
    send();
  });
  $('#prompt').addEventListener('keydown', (e) => {
    // Enter sends, Shift+Enter is a new line (and Enter inside an IME composition is not a send).
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      send();
    }
  });
  document.addEventListener('keydown', (e) => {
    if (e.key !== 'Escape' || $('#token-dialog').open) return;
    if (!$('#viewer').hidden) closeDocument();
    else stop();
  });
  $('#stop').addEventListener('click', stop);
  $('#token-cancel').addEventListener('click', () => $('#token-dialog').close('cancel'));
  $('#new-chat').addEventListener('click', newConversation);
  $('#viewer-close').addEventListener('click', closeDocument);
  $('#search').addEventListener('input', onSearchInput);
  $('#menu-toggle').addEventListener('click', () => {
    const open = document.body.classList.toggle('menu-open');
    $('#menu-toggle').setAttribute('aria-expanded', String(open));
  });
  window.addEventListener('hashchange', route);
  window.addEventListener('popstate', route);
}

async function start() {
  bindControls();
  setBusy(false);
  // Ask REST first: with tokens on, this is where the 401 (and the prompt) comes.
  await refreshConversations();
  await Promise.all([checkHealth(), loadRepos()]);
  route();
  if (!chat.id) $('#prompt').focus();
}

start();
