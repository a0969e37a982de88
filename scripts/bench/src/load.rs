//! The load generator: one chat over the product's WebSocket or played
//! directly against the fakes, bursts of concurrent chats, keep-alive REST
//! load, and the /proc readings (RSS, threads, descriptors) of a process.
//!
//! Threads and plain blocking sockets, like the product: one thread per chat
//! or per connection, so the generator's own cost is a syscall or two per
//! message and never a scheduler or runtime.

use crate::fakes::now_ns;
use crate::http;
use std::io::{BufReader, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier, mpsc};
use std::time::{Duration, Instant};
use tungstenite::Message;

const IO_TIMEOUT: Duration = Duration::from_secs(60);

/// Where a chat is played.
#[derive(Clone)]
pub enum Target {
    /// The product: `ws://{addr}/ws/chat/{id}`.
    Product { addr: String },
    /// The same chat straight against the fakes, as the product would play it.
    Fakes { claude: String, mcp: String },
}

#[derive(Clone, Copy)]
pub struct ChatShape {
    pub pace_ms: u64,
    pub deltas: u32,
}

/// One chat: time from sending the message to `done` (or the end of the
/// second turn), and the relay latency (receipt − stamp, ns) of each text.
pub struct ChatOutcome {
    pub send_to_done: Duration,
    pub relay_ns: Vec<i64>,
}

fn stamp_of(text: &[u8]) -> Option<u128> {
    let open = text.iter().position(|&b| b == b'<')?;
    let rest = &text[open + 1..];
    let close = rest.iter().position(|&b| b == b'>')?;
    std::str::from_utf8(&rest[..close]).ok()?.parse().ok()
}

fn connect(addr: &str) -> Result<TcpStream, String> {
    let s = TcpStream::connect(addr).map_err(|e| format!("connect {addr}: {e}"))?;
    let _ = s.set_nodelay(true);
    let _ = s.set_read_timeout(Some(IO_TIMEOUT));
    let _ = s.set_write_timeout(Some(IO_TIMEOUT));
    Ok(s)
}

pub fn chat(target: &Target, id: u64, shape: ChatShape) -> Result<ChatOutcome, String> {
    match target {
        Target::Product { addr } => ws_chat(addr, id, shape),
        Target::Fakes { claude, mcp } => direct_chat(claude, mcp, shape),
    }
}

fn message_text(shape: ChatShape) -> String {
    format!(
        "bench pace={} deltas={} What repositories are there?",
        shape.pace_ms, shape.deltas
    )
}

fn ws_chat(addr: &str, id: u64, shape: ChatShape) -> Result<ChatOutcome, String> {
    let stream = connect(addr)?;
    let url = format!("ws://{addr}/ws/chat/00000000-0000-4000-8000-{id:012x}");
    let (mut ws, _) =
        tungstenite::client(url.as_str(), stream).map_err(|e| format!("handshake: {e}"))?;
    let msg = serde_json::json!({"type": "message", "content": message_text(shape)}).to_string();
    let t0 = Instant::now();
    ws.send(Message::Text(msg.into()))
        .map_err(|e| format!("send: {e}"))?;
    let mut relay_ns = Vec::with_capacity(shape.deltas as usize + 1);
    let mut events = 0;
    let result = loop {
        let m = match ws.read() {
            Ok(m) => m,
            Err(e) => break Err(format!("read after {events} events: {e}")),
        };
        let now = now_ns();
        events += 1;
        let Message::Text(t) = m else {
            if let Message::Close(c) = m {
                break Err(format!("closed by the server: {c:?}"));
            }
            continue;
        };
        let t = t.as_str();
        if t.contains(r#""type":"done""#) {
            break Ok(t0.elapsed());
        }
        if t.contains(r#""type":"error""#) {
            break Err(format!("error event: {t}"));
        }
        if t.contains(r#""type":"text""#)
            && let Some(stamp) = stamp_of(t.as_bytes())
        {
            relay_ns.push((now as i128 - stamp as i128) as i64);
        }
    };
    let _ = ws.close(None);
    let _ = ws.flush();
    let send_to_done = result?;
    if relay_ns.len() != shape.deltas as usize + 1 {
        return Err(format!(
            "expected {} text events, got {}",
            shape.deltas + 1,
            relay_ns.len()
        ));
    }
    Ok(ChatOutcome {
        send_to_done,
        relay_ns,
    })
}

/// One Claude round on a new connection (the product builds one agent, so
/// one connection, per round); returns whether it stopped for `tool_use`.
fn claude_round(claude: &str, body: &[u8], relay: &mut Vec<i64>) -> Result<bool, String> {
    let mut out = connect(claude)?;
    http::send(&mut out, "POST", "/v1/messages", body).map_err(|e| format!("claude: {e}"))?;
    let mut r = BufReader::with_capacity(8 * 1024, out);
    let head = http::read_response_head(&mut r).map_err(|e| format!("claude: {e}"))?;
    if head.status != 200 || !head.chunked {
        return Err(format!("claude answered {}", head.status));
    }
    let mut chunk = Vec::new();
    let mut tool_use = false;
    while http::read_chunk(&mut r, &mut chunk)
        .map_err(|e| format!("claude: {e}"))?
        .is_some()
    {
        let now = now_ns();
        // Parsed as the product would: one JSON value per event.
        let Some(data) = chunk
            .split(|&b| b == b'\n')
            .find_map(|l| l.strip_prefix(b"data: "))
        else {
            continue;
        };
        let v: serde_json::Value =
            serde_json::from_slice(data).map_err(|e| format!("claude event: {e}"))?;
        if let Some(text) = v.pointer("/delta/text").and_then(|t| t.as_str())
            && let Some(stamp) = stamp_of(text.as_bytes())
        {
            relay.push((now as i128 - stamp as i128) as i64);
        }
        if v.pointer("/delta/stop_reason").and_then(|s| s.as_str()) == Some("tool_use") {
            tool_use = true;
        }
    }
    Ok(tool_use)
}

fn direct_chat(claude: &str, mcp: &str, shape: ChatShape) -> Result<ChatOutcome, String> {
    let user = serde_json::json!({"role": "user", "content": message_text(shape)});
    let first = serde_json::json!({"model": "bench", "max_tokens": 4096, "stream": true,
        "messages": [user]});
    let t0 = Instant::now();
    let mut relay_ns = Vec::with_capacity(shape.deltas as usize + 1);
    if !claude_round(claude, first.to_string().as_bytes(), &mut relay_ns)? {
        return Err("the first round did not ask for a tool".into());
    }
    let mut conn = connect(mcp)?;
    let call = br#"{"name":"list_repositories","arguments":{}}"#;
    http::send(&mut conn, "POST", "/tools/execute", call).map_err(|e| format!("mcp: {e}"))?;
    let (status, result) =
        http::read_response(&mut BufReader::new(&conn)).map_err(|e| format!("mcp: {e}"))?;
    if status != 200 {
        return Err(format!("mcp answered {status}"));
    }
    let result: serde_json::Value =
        serde_json::from_slice(&result).map_err(|e| format!("mcp: {e}"))?;
    let second = serde_json::json!({"model": "bench", "max_tokens": 4096, "stream": true,
        "messages": [user, {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_bench",
        "name": "list_repositories", "input": {}}]}, {"role": "user", "content": [{"type": "tool_result",
        "tool_use_id": "toolu_bench", "content": result["result"].to_string()}]}]});
    claude_round(claude, second.to_string().as_bytes(), &mut relay_ns)?;
    let send_to_done = t0.elapsed();
    if relay_ns.len() != shape.deltas as usize + 1 {
        return Err(format!(
            "expected {} texts, got {}",
            shape.deltas + 1,
            relay_ns.len()
        ));
    }
    Ok(ChatOutcome {
        send_to_done,
        relay_ns,
    })
}

/// `n` chats started together; wall time runs from the start signal to the
/// last `done`.
pub struct Burst {
    pub ok: usize,
    pub errors: usize,
    pub wall: Duration,
    pub first_error: Option<String>,
}

pub fn burst(target: &Target, n: usize, shape: ChatShape, id_base: u64) -> Burst {
    let barrier = Arc::new(Barrier::new(n + 1));
    let (tx, rx) = mpsc::channel::<Result<Instant, String>>();
    let mut spawn_errors = Vec::new();
    let mut spawned = 0;
    for i in 0..n {
        let (barrier, tx, target) = (barrier.clone(), tx.clone(), target.clone());
        let handle = std::thread::Builder::new()
            .stack_size(256 * 1024)
            .spawn(move || {
                barrier.wait();
                let r = chat(&target, id_base + i as u64, shape).map(|_| Instant::now());
                let _ = tx.send(r);
            });
        match handle {
            Ok(_) => spawned += 1,
            Err(e) => {
                spawn_errors.push(format!("spawn: {e}"));
                break;
            }
        }
    }
    drop(tx);
    if spawned < n {
        // The waiting threads would never be released: fail them all.
        return Burst {
            ok: 0,
            errors: n,
            wall: Duration::ZERO,
            first_error: spawn_errors.pop(),
        };
    }
    barrier.wait();
    let t0 = Instant::now();
    let (mut ok, mut errors, mut last, mut first_error) = (0, 0, t0, None);
    for r in rx.iter() {
        match r {
            Ok(at) => {
                ok += 1;
                last = last.max(at);
            }
            Err(e) => {
                errors += 1;
                first_error.get_or_insert(e);
            }
        }
    }
    Burst {
        ok,
        errors,
        wall: last - t0,
        first_error,
    }
}

pub struct RestResult {
    pub errors: usize,
    pub per_sec: f64,
    pub p50: Duration,
    pub p99: Duration,
}

/// `conns` keep-alive connections, each sending one request at a time for
/// `warmup + measure`; only the `measure` window counts.
pub fn rest(
    addr: &str,
    method: &'static str,
    path: &'static str,
    body: &'static [u8],
    conns: usize,
    warmup: Duration,
    measure: Duration,
) -> RestResult {
    let start = Instant::now() + Duration::from_millis(50);
    let (from, until) = (start + warmup, start + warmup + measure);
    let mut handles = Vec::new();
    for _ in 0..conns {
        let addr = addr.to_string();
        handles.push(
            std::thread::Builder::new()
                .stack_size(256 * 1024)
                .spawn(move || {
                    let mut lat = Vec::with_capacity(1 << 16);
                    let mut errors = 0;
                    let Ok(stream) = connect(&addr) else {
                        return (lat, 1);
                    };
                    let Ok(mut out) = stream.try_clone() else {
                        return (lat, 1);
                    };
                    let mut r = BufReader::with_capacity(16 * 1024, stream);
                    std::thread::sleep(start.saturating_duration_since(Instant::now()));
                    loop {
                        let t = Instant::now();
                        if t >= until {
                            break;
                        }
                        let ok = http::send(&mut out, method, path, body).is_ok()
                            && matches!(http::read_response(&mut r), Ok((200, _)));
                        if t >= from {
                            if ok {
                                lat.push(t.elapsed().as_micros() as u32);
                            } else {
                                errors += 1;
                            }
                        }
                        if !ok {
                            // A broken connection: start a new one.
                            let Ok(s) = connect(&addr) else {
                                std::thread::sleep(Duration::from_millis(1));
                                continue;
                            };
                            let Ok(o) = s.try_clone() else { continue };
                            out = o;
                            r = BufReader::with_capacity(16 * 1024, s);
                        }
                    }
                    (lat, errors)
                }),
        );
    }
    let mut all = Vec::new();
    let mut errors = 0;
    for h in handles.into_iter().flatten() {
        if let Ok((lat, e)) = h.join() {
            all.extend(lat);
            errors += e;
        }
    }
    all.sort_unstable();
    let pct = |p: f64| {
        all.get(((all.len() as f64 * p) as usize).min(all.len().saturating_sub(1)))
            .map(|&us| Duration::from_micros(us as u64))
            .unwrap_or_default()
    };
    RestResult {
        errors,
        per_sec: all.len() as f64 / measure.as_secs_f64(),
        p50: pct(0.50),
        p99: pct(0.99),
    }
}

/// Hostile-but-legal slow clients held open until dropped: `heads`
/// connections that sent half a request head and then nothing, and
/// `uploads` connections trickling a request body one byte per second.
pub struct SlowClients {
    _heads: Vec<TcpStream>,
    stop: Arc<AtomicBool>,
    uploads: Vec<std::thread::JoinHandle<()>>,
}

impl SlowClients {
    pub fn start(addr: &str, heads: usize, uploads: usize) -> Result<SlowClients, String> {
        let mut held = Vec::with_capacity(heads);
        for _ in 0..heads {
            let mut s = connect(addr)?;
            s.write_all(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
                .map_err(|e| e.to_string())?;
            held.push(s);
        }
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        for _ in 0..uploads {
            let mut s = connect(addr)?;
            let head = "POST /api/conversations HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100000\r\n\r\n";
            s.write_all(head.as_bytes()).map_err(|e| e.to_string())?;
            let stop = stop.clone();
            threads.push(std::thread::spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    if s.write_all(b" ").is_err() {
                        return;
                    }
                    for _ in 0..10 {
                        if stop.load(Ordering::Relaxed) {
                            return;
                        }
                        std::thread::sleep(Duration::from_millis(100));
                    }
                }
            }));
        }
        Ok(SlowClients {
            _heads: held,
            stop,
            uploads: threads,
        })
    }
}

impl Drop for SlowClients {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.uploads.drain(..) {
            let _ = t.join();
        }
    }
}

/// A `/proc/{pid}/status` field in its own unit (kB for memory).
pub fn status_field(pid: u32, field: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(field))
                .and_then(|l| l[field.len()..].split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

pub fn rss_kib(pid: u32) -> u64 {
    status_field(pid, "VmRSS:")
}

pub fn threads(pid: u32) -> u64 {
    status_field(pid, "Threads:")
}

pub fn fds(pid: u32) -> u64 {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count() as u64)
        .unwrap_or(0)
}

/// Samples VmRSS every 10 ms until stopped; gives the peak.
pub struct RssSampler {
    stop: Arc<AtomicBool>,
    handle: std::thread::JoinHandle<u64>,
}

impl RssSampler {
    pub fn start(pid: u32) -> RssSampler {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let handle = std::thread::spawn(move || {
            let mut peak = 0;
            while !flag.load(Ordering::Relaxed) {
                peak = peak.max(rss_kib(pid));
                std::thread::sleep(Duration::from_millis(10));
            }
            peak.max(rss_kib(pid))
        });
        RssSampler { stop, handle }
    }

    pub fn peak_kib(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.handle.join().unwrap_or(0)
    }
}

/// Writes a request and forgets the answer (warm-up helper).
pub fn get_once(addr: &str, path: &str) -> Result<(u16, Vec<u8>), String> {
    let s = connect(addr)?;
    let mut out = s.try_clone().map_err(|e| e.to_string())?;
    http::send(&mut out, "GET", path, b"").map_err(|e| e.to_string())?;
    out.flush().map_err(|e| e.to_string())?;
    http::read_response(&mut BufReader::new(s)).map_err(|e| e.to_string())
}
