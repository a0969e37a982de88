//! A fake Claude Messages API for tests: a real TCP server on 127.0.0.1:0
//! that replays scripted HTTP responses byte for byte and records every
//! request. One request per connection (`connection: close`), so a retry is
//! a new connection, as it is against the real API after an error.
//!
//! ```ignore
//! let fake = FakeClaude::start(vec![
//!     Reply::error(529, "overloaded_error", "Overloaded").header("retry-after-ms", "10"),
//!     Reply::sse(sse::text_turn(&["Hel", "lo"])),
//! ]);
//! // ... point the client at fake.url() ...
//! assert_eq!(fake.requests().len(), 2);
//! ```
//!
//! SSE replies are sent with `transfer-encoding: chunked`, one HTTP chunk per
//! `bytes` step, flushed at once: a step boundary is a TCP write boundary.
//! Used as `crate::support::fake_claude`.
#![allow(dead_code)]

use serde_json::Value;
use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// One step of a scripted response body.
#[derive(Debug, Clone)]
pub enum Step {
    /// One write (one HTTP chunk when chunked), flushed.
    Bytes(Vec<u8>),
    /// Wait before the next step (cut short if the client goes away).
    Pause(Duration),
    /// Close the TCP connection here, without finishing the body.
    Drop,
}

/// A scripted HTTP response.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub steps: Vec<Step>,
    /// `transfer-encoding: chunked` (SSE) or `content-length` (JSON errors).
    pub chunked: bool,
}

impl Reply {
    /// An empty chunked response with the given status.
    pub fn new(status: u16) -> Reply {
        Reply {
            status,
            headers: vec![],
            steps: vec![],
            chunked: true,
        }
    }

    /// A 200 SSE response sent in one write.
    pub fn sse(body: impl Into<String>) -> Reply {
        Reply::sse_chunks([body.into().into_bytes()])
    }

    /// A 200 SSE response, one write per chunk, with no pause between them.
    pub fn sse_chunks<I, C>(chunks: I) -> Reply
    where
        I: IntoIterator<Item = C>,
        C: Into<Vec<u8>>,
    {
        let mut reply = Reply::new(200)
            .header("content-type", "text/event-stream; charset=utf-8")
            .header("cache-control", "no-cache")
            .header("request-id", "req_fake");
        for c in chunks {
            reply = reply.bytes(c);
        }
        reply
    }

    /// A 200 SSE response, one write per chunk, `gap` between writes.
    pub fn sse_slow<I, C>(chunks: I, gap: Duration) -> Reply
    where
        I: IntoIterator<Item = C>,
        C: Into<Vec<u8>>,
    {
        let mut reply = Reply::sse_chunks(Vec::<Vec<u8>>::new());
        for (i, c) in chunks.into_iter().enumerate() {
            if i > 0 {
                reply = reply.pause(gap);
            }
            reply = reply.bytes(c);
        }
        reply
    }

    /// Anthropic's JSON error body, `{"type":"error","error":{...},"request_id":...}`.
    pub fn error(status: u16, kind: &str, message: &str) -> Reply {
        let body = serde_json::json!({
            "type": "error",
            "error": {"type": kind, "message": message},
            "request_id": "req_fake_error",
        });
        Reply::raw(status, "application/json", body.to_string())
    }

    /// A fixed body with a `content-length`.
    pub fn raw(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Reply {
        let mut reply = Reply::new(status)
            .header("content-type", content_type)
            .bytes(body);
        reply.chunked = false;
        reply
    }

    pub fn header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.into(), value.into()));
        self
    }

    pub fn bytes(mut self, b: impl Into<Vec<u8>>) -> Reply {
        self.steps.push(Step::Bytes(b.into()));
        self
    }

    pub fn pause(mut self, d: Duration) -> Reply {
        self.steps.push(Step::Pause(d));
        self
    }

    pub fn drop_connection(mut self) -> Reply {
        self.steps.push(Step::Drop);
        self
    }
}

/// A request as the fake received it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    /// Names lowercased, in order.
    pub headers: Vec<(String, String)>,
    pub body: Value,
    pub raw_body: Vec<u8>,
    pub at: Instant,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// What happened to the connection that served request `i`.
#[derive(Debug, Clone, Default)]
struct ConnState {
    /// The client closed it before the reply was complete.
    client_closed_at: Option<Instant>,
    reply_done: bool,
}

/// Chooses the reply to a request (see [`FakeClaude::start_with`]).
pub type Responder = Box<dyn Fn(&Recorded) -> Reply + Send + Sync>;

#[derive(Default)]
struct Shared {
    script: Mutex<VecDeque<Reply>>,
    /// When set, replies come from here instead of `script`.
    responder: Option<Responder>,
    requests: Mutex<Vec<Recorded>>,
    conns: Mutex<Vec<ConnState>>,
    changed: Condvar,
    stop: AtomicBool,
}

pub struct FakeClaude {
    addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl FakeClaude {
    /// Listens on 127.0.0.1:0 and serves `replies` in order, one per request.
    /// A request beyond the script gets a 500 saying so.
    pub fn start(replies: Vec<Reply>) -> FakeClaude {
        let shared = Shared::default();
        shared.script.lock().unwrap().extend(replies);
        FakeClaude::start_shared(shared)
    }

    fn start_shared(shared: Shared) -> FakeClaude {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(shared);
        let s = shared.clone();
        let acceptor = thread::spawn(move || {
            for conn in listener.incoming() {
                if s.stop.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(conn) = conn else { continue };
                let s = s.clone();
                thread::spawn(move || serve(conn, &s));
            }
        });
        FakeClaude {
            addr,
            shared,
            acceptor: Some(acceptor),
        }
    }

    /// Listens on 127.0.0.1:0 and answers each request with `responder`'s
    /// reply for it (for tests whose requests come in no fixed order, such as
    /// a browser's).
    pub fn start_with(
        responder: impl Fn(&Recorded) -> Reply + Send + Sync + 'static,
    ) -> FakeClaude {
        FakeClaude::start_shared(Shared {
            responder: Some(Box::new(responder)),
            ..Shared::default()
        })
    }

    /// `http://127.0.0.1:PORT` (no trailing slash), for ANTHROPIC_BASE_URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn push(&self, reply: Reply) {
        self.shared.script.lock().unwrap().push_back(reply);
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.shared.requests.lock().unwrap().clone()
    }

    /// Waits until at least `n` requests arrived (or the timeout), then returns all.
    pub fn wait_for_requests(&self, n: usize, timeout: Duration) -> Vec<Recorded> {
        let guard = self.shared.requests.lock().unwrap();
        let (guard, _) = self
            .shared
            .changed
            .wait_timeout_while(guard, timeout, |r| r.len() < n)
            .unwrap();
        guard.clone()
    }

    /// When the client closed the connection of request `i` before its reply
    /// was complete; waits up to `timeout` for it.
    pub fn wait_client_closed(&self, i: usize, timeout: Duration) -> Option<Instant> {
        let deadline = Instant::now() + timeout;
        loop {
            let state = self.shared.conns.lock().unwrap().get(i).cloned();
            if let Some(t) = state.and_then(|c| c.client_closed_at) {
                return Some(t);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(2));
        }
    }
}

impl Drop for FakeClaude {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop.
        let _ = TcpStream::connect(self.addr);
        if let Some(h) = self.acceptor.take() {
            let _ = h.join();
        }
    }
}

fn serve(conn: TcpStream, shared: &Arc<Shared>) {
    let Some(request) = read_request(&conn) else {
        return;
    };
    let chosen = shared.responder.as_ref().map(|respond| respond(&request));
    let index = {
        let mut requests = shared.requests.lock().unwrap();
        requests.push(request);
        shared.conns.lock().unwrap().push(ConnState::default());
        shared.changed.notify_all();
        requests.len() - 1
    };
    let reply = chosen.unwrap_or_else(|| {
        shared
            .script
            .lock()
            .unwrap()
            .pop_front()
            .unwrap_or_else(|| {
                Reply::error(500, "api_error", "fake Claude: no scripted reply left")
            })
    });

    // The client sends nothing after its request, so any read result means
    // the connection closed: by the client if the reply was not done yet.
    let closed = Arc::new(AtomicBool::new(false));
    if let Ok(mut watch) = conn.try_clone() {
        let (closed, shared) = (closed.clone(), shared.clone());
        thread::spawn(move || {
            let mut buf = [0u8; 64];
            let _ = watch.read(&mut buf);
            closed.store(true, Ordering::SeqCst);
            let mut conns = shared.conns.lock().unwrap();
            if !conns[index].reply_done {
                conns[index].client_closed_at = Some(Instant::now());
            }
        });
    }

    write_reply(&conn, &reply, &closed, &shared.stop);
    shared.conns.lock().unwrap()[index].reply_done = true;
    let _ = conn.shutdown(Shutdown::Both);
}

/// Reads one request: request line, headers, `content-length` body.
fn read_request(conn: &TcpStream) -> Option<Recorded> {
    let mut reader = BufReader::new(conn);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let path = parts.next()?.to_string();
    let mut headers = vec![];
    loop {
        line.clear();
        reader.read_line(&mut line).ok()?;
        let l = line.trim_end_matches(['\r', '\n']);
        if l.is_empty() {
            break;
        }
        let (k, v) = l.split_once(':')?;
        headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
    }
    let len: usize = headers
        .iter()
        .find(|(k, _)| k == "content-length")
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut raw_body = vec![0; len];
    reader.read_exact(&mut raw_body).ok()?;
    Some(Recorded {
        method,
        path,
        body: serde_json::from_slice(&raw_body).unwrap_or(Value::Null),
        headers,
        raw_body,
        at: Instant::now(),
    })
}

fn write_reply(mut out: &TcpStream, reply: &Reply, closed: &AtomicBool, stop: &AtomicBool) {
    let mut head = format!("HTTP/1.1 {} {}\r\n", reply.status, reason(reply.status));
    for (k, v) in &reply.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if reply.chunked {
        head.push_str("transfer-encoding: chunked\r\n");
    } else {
        let len: usize = reply
            .steps
            .iter()
            .map(|s| match s {
                Step::Bytes(b) => b.len(),
                _ => 0,
            })
            .sum();
        head.push_str(&format!("content-length: {len}\r\n"));
    }
    head.push_str("connection: close\r\n\r\n");
    if out.write_all(head.as_bytes()).is_err() {
        return;
    }
    for step in &reply.steps {
        let ok = match step {
            Step::Bytes(b) if reply.chunked => {
                let mut chunk = format!("{:x}\r\n", b.len()).into_bytes();
                chunk.extend_from_slice(b);
                chunk.extend_from_slice(b"\r\n");
                out.write_all(&chunk).and_then(|_| out.flush()).is_ok()
            }
            Step::Bytes(b) => out.write_all(b).and_then(|_| out.flush()).is_ok(),
            Step::Pause(d) => {
                let until = Instant::now() + *d;
                while Instant::now() < until
                    && !closed.load(Ordering::SeqCst)
                    && !stop.load(Ordering::SeqCst)
                {
                    thread::sleep(Duration::from_millis(2));
                }
                !closed.load(Ordering::SeqCst) && !stop.load(Ordering::SeqCst)
            }
            Step::Drop => return,
        };
        if !ok {
            return;
        }
    }
    if reply.chunked {
        let _ = out.write_all(b"0\r\n\r\n").and_then(|_| out.flush());
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        408 => "Request Timeout",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        529 => "Site Overloaded",
        _ => "Status",
    }
}

/// Builders for exact Anthropic SSE byte streams (`event:` line, `data:`
/// line with compact JSON, blank line; `\n` line ends).
pub mod sse {
    use serde_json::{Value, json};

    pub fn event(name: &str, data: &Value) -> String {
        format!("event: {name}\ndata: {data}\n\n")
    }

    pub fn message_start() -> String {
        event(
            "message_start",
            &json!({"type":"message_start","message":{"id":"msg_fake","type":"message",
                "role":"assistant","content":[],"model":"claude-fake","stop_reason":null,
                "stop_sequence":null,"usage":{"input_tokens":25,"output_tokens":1}}}),
        )
    }

    pub fn ping() -> String {
        event("ping", &json!({"type":"ping"}))
    }

    pub fn text_start(index: usize) -> String {
        event(
            "content_block_start",
            &json!({"type":"content_block_start","index":index,
                "content_block":{"type":"text","text":""}}),
        )
    }

    pub fn text_delta(index: usize, text: &str) -> String {
        event(
            "content_block_delta",
            &json!({"type":"content_block_delta","index":index,
                "delta":{"type":"text_delta","text":text}}),
        )
    }

    pub fn tool_start(index: usize, id: &str, name: &str) -> String {
        event(
            "content_block_start",
            &json!({"type":"content_block_start","index":index,
                "content_block":{"type":"tool_use","id":id,"name":name,"input":{}}}),
        )
    }

    pub fn json_delta(index: usize, partial_json: &str) -> String {
        event(
            "content_block_delta",
            &json!({"type":"content_block_delta","index":index,
                "delta":{"type":"input_json_delta","partial_json":partial_json}}),
        )
    }

    pub fn block_stop(index: usize) -> String {
        event(
            "content_block_stop",
            &json!({"type":"content_block_stop","index":index}),
        )
    }

    /// `message_delta` with the stop reason, then `message_stop`.
    pub fn message_end(stop_reason: &str) -> String {
        event(
            "message_delta",
            &json!({"type":"message_delta","delta":{"stop_reason":stop_reason,
                "stop_sequence":null},"usage":{"output_tokens":15}}),
        ) + &event("message_stop", &json!({"type":"message_stop"}))
    }

    pub fn error(kind: &str, message: &str) -> String {
        event(
            "error",
            &json!({"type":"error","error":{"type":kind,"message":message}}),
        )
    }

    /// A whole text answer: one text block with these deltas, `end_turn`.
    pub fn text_turn(deltas: &[&str]) -> String {
        let mut s = message_start() + &text_start(0);
        for d in deltas {
            s += &text_delta(0, d);
        }
        s + &block_stop(0) + &message_end("end_turn")
    }

    /// Optional text, then one tool_use block per `(id, name, input)`, `tool_use`.
    /// Each input is streamed as two `input_json_delta` fragments.
    pub fn tool_turn(text: Option<&str>, tools: &[(&str, &str, Value)]) -> String {
        let mut s = message_start();
        let mut index = 0;
        if let Some(t) = text {
            s += &(text_start(0) + &text_delta(0, t) + &block_stop(0));
            index = 1;
        }
        for (id, name, input) in tools {
            let json = input.to_string();
            let cut = json
                .char_indices()
                .nth(json.chars().count() / 2)
                .map_or(0, |(i, _)| i);
            s += &tool_start(index, id, name);
            s += &json_delta(index, "");
            s += &json_delta(index, &json[..cut]);
            s += &json_delta(index, &json[cut..]);
            s += &block_stop(index);
            index += 1;
        }
        s + &message_end("tool_use")
    }
}
