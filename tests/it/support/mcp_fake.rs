//! Byte-exact fake HTTP servers for the MCP tests: a raw `TcpListener`, one
//! thread per connection, keep-alive, every request and connection counted,
//! and a handler that returns the exact bytes to write (or a delay, a hang,
//! or a hang-up).
#![allow(dead_code)]

use serde_json::{Value, json};
use std::collections::HashSet;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct Req {
    pub method: String,
    pub path: String,
    /// Header names lower-cased, in arrival order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Req {
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }
    pub fn rpc_method(&self) -> Option<String> {
        self.json()
            .get("method")
            .and_then(Value::as_str)
            .map(str::to_string)
    }
}

pub enum Reply {
    /// Exactly these bytes (status line, headers, body).
    Raw(Vec<u8>),
    /// Wait, then reply (a stop of the server ends the wait).
    After(Duration, Box<Reply>),
    /// Close the connection without a word.
    Close,
}

type Handler = dyn Fn(&Req) -> Reply + Send + Sync;

/// Never answers (until the server stops).
pub fn hang() -> Reply {
    Reply::After(Duration::from_secs(3600), Box::new(Reply::Close))
}

pub struct Fake {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
    log: Arc<Mutex<Vec<Req>>>,
    /// Connections accepted, and those still open.
    accepted: Arc<AtomicUsize>,
    open: Arc<AtomicUsize>,
    accept: Option<JoinHandle<()>>,
    conns: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Fake {
    pub fn start(handler: impl Fn(&Req) -> Reply + Send + Sync + 'static) -> Fake {
        Fake::start_on(TcpListener::bind("127.0.0.1:0").unwrap(), handler)
    }

    pub fn start_on(
        listener: TcpListener,
        handler: impl Fn(&Req) -> Reply + Send + Sync + 'static,
    ) -> Fake {
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let log = Arc::new(Mutex::new(Vec::new()));
        let conns = Arc::new(Mutex::new(Vec::new()));
        let accepted = Arc::new(AtomicUsize::new(0));
        let open = Arc::new(AtomicUsize::new(0));
        let handler: Arc<Handler> = Arc::new(handler);
        let (s, l, c) = (stop.clone(), log.clone(), conns.clone());
        let (a, o) = (accepted.clone(), open.clone());
        let accept = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if s.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(stream) = stream else { continue };
                let (s2, l2, h2, o2) = (s.clone(), l.clone(), handler.clone(), o.clone());
                o.fetch_add(1, Ordering::SeqCst);
                a.fetch_add(1, Ordering::SeqCst);
                let t = std::thread::spawn(move || {
                    serve(stream, s2, l2, h2);
                    o2.fetch_sub(1, Ordering::SeqCst);
                });
                c.lock().unwrap().push(t);
            }
        });
        Fake {
            addr,
            stop,
            log,
            accepted,
            open,
            accept: Some(accept),
            conns,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn requests(&self) -> Vec<Req> {
        self.log.lock().unwrap().clone()
    }

    pub fn connections_accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }

    /// Connections accepted and not yet closed (by either side).
    pub fn connections_open(&self) -> usize {
        self.open.load(Ordering::SeqCst)
    }

    pub fn rpc_count(&self, method: &str) -> usize {
        self.requests()
            .iter()
            .filter(|r| r.rpc_method().as_deref() == Some(method))
            .count()
    }

    /// Stops listening and closes every open connection (like a process exit).
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.accept.take() {
            let _ = t.join();
        }
        let conns: Vec<_> = self.conns.lock().unwrap().drain(..).collect();
        for t in conns {
            let _ = t.join();
        }
    }
}

impl Drop for Fake {
    fn drop(&mut self) {
        self.shutdown();
    }
}

fn serve(
    mut stream: TcpStream,
    stop: Arc<AtomicBool>,
    log: Arc<Mutex<Vec<Req>>>,
    handler: Arc<Handler>,
) {
    stream
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let mut buf: Vec<u8> = Vec::new();
    loop {
        // Read one request: headers, then Content-Length bytes.
        let req = loop {
            if let Some(req) = parse_request(&mut buf) {
                break req;
            }
            if stop.load(Ordering::SeqCst) {
                return;
            }
            let mut chunk = [0u8; 8192];
            match stream.read(&mut chunk) {
                Ok(0) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.kind() == std::io::ErrorKind::TimedOut => {}
                Err(_) => return,
            }
        };
        log.lock().unwrap().push(req.clone());
        let mut reply = handler(&req);
        loop {
            match reply {
                Reply::After(d, next) => {
                    let until = Instant::now() + d;
                    while Instant::now() < until {
                        if stop.load(Ordering::SeqCst) {
                            return;
                        }
                        std::thread::sleep(Duration::from_millis(10));
                    }
                    reply = *next;
                }
                Reply::Close => return,
                Reply::Raw(bytes) => {
                    if stream.write_all(&bytes).is_err() {
                        return;
                    }
                    let _ = stream.flush();
                    break;
                }
            }
        }
    }
}

fn parse_request(buf: &mut Vec<u8>) -> Option<Req> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&buf[..end]).to_string();
    let mut lines = head.split("\r\n");
    let first = lines.next()?;
    let mut parts = first.split(' ');
    let method = parts.next()?.to_string();
    let path = parts.next()?.to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let len: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    if buf.len() < end + 4 + len {
        return None;
    }
    let body = buf[end + 4..end + 4 + len].to_vec();
    buf.drain(..end + 4 + len);
    Some(Req {
        method,
        path,
        headers,
        body,
    })
}

// ----- response builders ------------------------------------------------------------

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        202 => "Accepted",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Whatever",
    }
}

/// A response with `Content-Length`.
pub fn http(status: u16, headers: &[(&str, &str)], body: &[u8]) -> Reply {
    let mut out = format!("HTTP/1.1 {status} {}\r\n", reason(status));
    for (k, v) in headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str(&format!("content-length: {}\r\n\r\n", body.len()));
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(body);
    Reply::Raw(bytes)
}

/// A response with `Transfer-Encoding: chunked`, one chunk per piece.
pub fn chunked(status: u16, headers: &[(&str, &str)], pieces: &[&str]) -> Reply {
    let mut out = format!("HTTP/1.1 {status} {}\r\n", reason(status));
    for (k, v) in headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str("Transfer-Encoding: chunked\r\n\r\n");
    for p in pieces {
        if !p.is_empty() {
            out.push_str(&format!("{:x}\r\n{p}\r\n", p.len()));
        }
    }
    out.push_str("0\r\n\r\n");
    Reply::Raw(out.into_bytes())
}

pub fn json_reply(status: u16, body: &Value) -> Reply {
    http(
        status,
        &[("content-type", "application/json")],
        body.to_string().as_bytes(),
    )
}

// ----- a scripted MCP server ------------------------------------------------------------

/// `tools/call` (name, arguments) → the `CallToolResult`, or a whole reply.
pub type CallFn = dyn Fn(&str, &Value) -> Result<Value, Reply> + Send + Sync;

/// How the fake MCP server answers.
pub struct McpBehaviour {
    /// Answer requests as SSE streams (TS SDK style: a priming event with an
    /// empty `data:`, a notification and a server→client request before the
    /// response), else as JSON bodies.
    pub sse: bool,
    /// `tools/list` pages (a `nextCursor` links them).
    pub tool_pages: Vec<Vec<Value>>,
    /// The `protocolVersion` answered to `initialize` (None: echo the client's).
    pub version: Option<String>,
    /// Unknown sessions get this: 404 (spec, Python SDK) or 400 (server-everything).
    pub unknown_session_status: u16,
    /// `tools/call` → the `CallToolResult`, or a whole reply to send instead.
    pub call: Box<CallFn>,
    /// How long `initialize` takes to answer.
    pub initialize_delay: Duration,
    /// `notifications/initialized` is never answered.
    pub hang_on_initialized: bool,
}

impl Default for McpBehaviour {
    fn default() -> Self {
        McpBehaviour {
            sse: false,
            tool_pages: vec![vec![tool("echo")]],
            version: None,
            unknown_session_status: 404,
            call: Box::new(|name, args| {
                Ok(json!({"content": [{"type": "text", "text": format!("{name}: {args}")}]}))
            }),
            initialize_delay: Duration::ZERO,
            hang_on_initialized: false,
        }
    }
}

pub fn tool(name: &str) -> Value {
    json!({"name": name, "description": format!("the {name} tool"),
           "inputSchema": {"type": "object", "properties": {"message": {"type": "string"}}}})
}

/// A fake Streamable HTTP server with sessions, built from [`McpBehaviour`].
pub struct FakeMcp {
    pub fake: Fake,
    pub state: Arc<McpState>,
}

pub struct McpState {
    pub behaviour: McpBehaviour,
    pub sessions: Mutex<HashSet<String>>,
    pub next_session: AtomicUsize,
}

impl McpState {
    /// Forgets every session, as a restarted server would.
    pub fn expire_sessions(&self) {
        self.sessions.lock().unwrap().clear();
    }
}

impl FakeMcp {
    pub fn start(behaviour: McpBehaviour) -> FakeMcp {
        FakeMcp::start_on(TcpListener::bind("127.0.0.1:0").unwrap(), behaviour)
    }

    pub fn start_on(listener: TcpListener, behaviour: McpBehaviour) -> FakeMcp {
        let state = Arc::new(McpState {
            behaviour,
            sessions: Mutex::new(HashSet::new()),
            next_session: AtomicUsize::new(1),
        });
        let s = state.clone();
        let fake = Fake::start_on(listener, move |req| mcp_handle(&s, req));
        FakeMcp { fake, state }
    }

    pub fn url(&self) -> String {
        self.fake.url("/mcp")
    }
}

fn rpc_ok(id: &Value, result: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": id, "result": result})
}

fn mcp_handle(st: &McpState, req: &Req) -> Reply {
    let b = &st.behaviour;
    if req.path != "/mcp" {
        return http(404, &[("content-type", "text/plain")], b"Cannot POST here");
    }
    if req.method != "POST" {
        return http(405, &[], b"");
    }
    let msg = req.json();
    let method = msg.get("method").and_then(Value::as_str).unwrap_or("");
    let id = msg.get("id").cloned().unwrap_or(Value::Null);
    if method == "initialize" {
        let sid = format!("session-{}", st.next_session.fetch_add(1, Ordering::SeqCst));
        st.sessions.lock().unwrap().insert(sid.clone());
        let offered = msg["params"]["protocolVersion"]
            .as_str()
            .unwrap_or("")
            .to_string();
        let version = b.version.clone().unwrap_or(offered);
        let result = json!({"protocolVersion": version,
            "capabilities": {"tools": {"listChanged": true}},
            "serverInfo": {"name": "fake-mcp", "version": "9.9.9"}});
        let reply = answer(b, &rpc_ok(&id, result), &sid);
        return if b.initialize_delay.is_zero() {
            reply
        } else {
            Reply::After(b.initialize_delay, Box::new(reply))
        };
    }
    let sid = req.header("mcp-session-id").unwrap_or("").to_string();
    if !st.sessions.lock().unwrap().contains(&sid) {
        return if b.unknown_session_status == 400 {
            http(
                400,
                &[("Content-Type", "application/json; charset=utf-8")],
                br#"{"jsonrpc":"2.0","error":{"code":-32000,"message":"Bad Request: No valid session ID provided"}}"#,
            )
        } else {
            json_reply(
                b.unknown_session_status,
                &json!({"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"Session not found"}}),
            )
        };
    }
    if id.is_null() {
        if b.hang_on_initialized && method == "notifications/initialized" {
            return hang();
        }
        return chunked(202, &[], &[]);
    }
    let result = match method {
        "ping" => json!({}),
        "tools/list" => {
            let page: usize = msg["params"]["cursor"]
                .as_str()
                .and_then(|c| c.strip_prefix("page-"))
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            let mut r = json!({"tools": b.tool_pages.get(page).cloned().unwrap_or_default()});
            if page + 1 < b.tool_pages.len() {
                r["nextCursor"] = json!(format!("page-{}", page + 1));
            }
            r
        }
        "tools/call" => {
            let name = msg["params"]["name"].as_str().unwrap_or("");
            match (b.call)(name, &msg["params"]["arguments"]) {
                Ok(r) => r,
                Err(reply) => return reply,
            }
        }
        _ => {
            return answer(
                b,
                &json!({"jsonrpc":"2.0","id":id,"error":{"code":-32601,"message":"Method not found"}}),
                &sid,
            );
        }
    };
    answer(b, &rpc_ok(&id, result), &sid)
}

fn answer(b: &McpBehaviour, message: &Value, sid: &str) -> Reply {
    if b.sse {
        let priming = "id: prime-1\ndata: \n\n".to_string();
        let note = "event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/message\",\"params\":{\"level\":\"info\",\"data\":\"working\"}}\n\n".to_string();
        let server_request = "event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":\"srv-1\",\"method\":\"roots/list\"}\n\n".to_string();
        let other = "event: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":999999,\"result\":{}}\n\n"
            .to_string();
        let response = format!("event: message\nid: ev-2\ndata: {message}\n\n");
        chunked(
            200,
            &[
                ("cache-control", "no-cache, no-transform"),
                ("content-type", "text/event-stream"),
                ("mcp-session-id", sid),
            ],
            &[&priming, &note, &server_request, &other, &response],
        )
    } else {
        http(
            200,
            &[
                ("content-type", "application/json"),
                ("mcp-session-id", sid),
            ],
            message.to_string().as_bytes(),
        )
    }
}

/// A port on which nothing listens right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Polls `cond` every 50 ms until it holds or `limit` passes; returns the time it took.
pub fn wait_for(limit: Duration, mut cond: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if cond() {
            return Some(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    if cond() { Some(start.elapsed()) } else { None }
}

/// A peer process (an interop server), killed and reaped when dropped.
pub struct Child(pub std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
