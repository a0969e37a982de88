//! The fake upstreams: Claude's streaming Messages API and an MCP server in
//! both forms (simple HTTP and Streamable HTTP), on plain std sockets with one
//! small thread per keep-alive connection, so that they cost as little as
//! possible and are not what a measurement measures.
//!
//! They speak only what the product sends in the benchmark: they are not
//! general servers and do not validate requests beyond what they need.

use crate::http::{Request, read_request};
use std::io::{BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Nanoseconds since the Unix epoch (CLOCK_REALTIME): the stamp shared by the
/// fakes and the load generator, which run on the same machine.
pub fn now_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

/// Serves `handle` on every connection of `listener`, one thread each.
pub fn serve(listener: TcpListener, handle: fn(TcpStream)) -> ! {
    raise_backlog(&listener);
    loop {
        match listener.accept() {
            Ok((stream, _)) => {
                let _ = stream.set_nodelay(true);
                let spawned = std::thread::Builder::new()
                    .stack_size(128 * 1024)
                    .spawn(move || handle(stream));
                if let Err(e) = spawned {
                    eprintln!("fake: cannot spawn a thread: {e}");
                }
            }
            Err(e) => {
                eprintln!("fake: accept: {e}");
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

/// The knobs of one chat, carried in the user's message text so that one
/// fake serves every run: `pace=<ms> deltas=<n>`.
fn knob(body: &[u8], name: &str, default: u64) -> u64 {
    let text = String::from_utf8_lossy(body);
    let Some(at) = text.find(name) else {
        return default;
    };
    let digits: String = text[at + name.len()..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().unwrap_or(default)
}

/// One chunk of a chunked body, written with one syscall.
fn chunk(out: &mut TcpStream, data: &str) -> std::io::Result<()> {
    let framed = format!("{:x}\r\n{data}\r\n", data.len());
    out.write_all(framed.as_bytes())
}

fn sse(name: &str, data: &str) -> String {
    format!("event: {name}\ndata: {data}\n\n")
}

/// A text delta whose text carries its own send time: `<ns>`.
pub fn stamped_delta(index: u32) -> String {
    let data = format!(
        r#"{{"type":"content_block_delta","index":{index},"delta":{{"type":"text_delta","text":"<{}> "}}}}"#,
        now_ns()
    );
    sse("content_block_delta", &data)
}

/// Fake Claude: `POST /v1/messages`. A request without a `tool_result` gets
/// the first turn (a text block and one `list_repositories` tool_use); one
/// with a `tool_result` gets `deltas` stamped text deltas, `pace` ms apart,
/// ending `end_turn`.
pub fn claude_connection(stream: TcpStream) {
    let Ok(mut out) = stream.try_clone() else {
        return;
    };
    let mut input = BufReader::with_capacity(16 * 1024, stream);
    while let Ok(Some(rq)) = read_request(&mut input) {
        if claude_answer(&mut out, &rq).is_err() || rq.close {
            return;
        }
    }
}

pub fn claude_answer(out: &mut TcpStream, rq: &Request) -> std::io::Result<()> {
    if rq.method != "POST" || !rq.path.ends_with("/v1/messages") {
        let body =
            r#"{"type":"error","error":{"type":"not_found_error","message":"no such path"}}"#;
        let head = format!(
            "HTTP/1.1 404 Not Found\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        return out.write_all(head.as_bytes());
    }
    let second = answers_a_tool(&rq.body);
    let pace = Duration::from_millis(knob(&rq.body, "pace=", 0));
    let deltas = knob(&rq.body, "deltas=", 50) as u32;
    out.write_all(
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\nrequest-id: req_bench\r\ntransfer-encoding: chunked\r\n\r\n",
    )?;
    let start = r#"{"type":"message_start","message":{"id":"msg_bench","type":"message","role":"assistant","model":"bench","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":10,"output_tokens":1}}}"#;
    chunk(out, &sse("message_start", start))?;
    chunk(
        out,
        &sse(
            "content_block_start",
            r#"{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}"#,
        ),
    )?;
    let stop = if second {
        for _ in 0..deltas {
            if !pace.is_zero() {
                std::thread::sleep(pace);
            }
            chunk(out, &stamped_delta(0))?;
        }
        chunk(
            out,
            &sse(
                "content_block_stop",
                r#"{"type":"content_block_stop","index":0}"#,
            ),
        )?;
        "end_turn"
    } else {
        chunk(out, &stamped_delta(0))?;
        chunk(
            out,
            &sse(
                "content_block_stop",
                r#"{"type":"content_block_stop","index":0}"#,
            ),
        )?;
        chunk(
            out,
            &sse(
                "content_block_start",
                r#"{"type":"content_block_start","index":1,"content_block":{"type":"tool_use","id":"toolu_bench","name":"list_repositories","input":{}}}"#,
            ),
        )?;
        chunk(
            out,
            &sse(
                "content_block_delta",
                r#"{"type":"content_block_delta","index":1,"delta":{"type":"input_json_delta","partial_json":"{}"}}"#,
            ),
        )?;
        chunk(
            out,
            &sse(
                "content_block_stop",
                r#"{"type":"content_block_stop","index":1}"#,
            ),
        )?;
        "tool_use"
    };
    let delta = format!(
        r#"{{"type":"message_delta","delta":{{"stop_reason":"{stop}","stop_sequence":null}},"usage":{{"output_tokens":60}}}}"#
    );
    chunk(out, &sse("message_delta", &delta))?;
    chunk(out, &sse("message_stop", r#"{"type":"message_stop"}"#))?;
    out.write_all(b"0\r\n\r\n")
}

/// Whether the last message carries tool results (the second round of a
/// chat); earlier rounds of the same conversation do not count.
fn answers_a_tool(body: &[u8]) -> bool {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) else {
        return false;
    };
    v.pointer("/messages")
        .and_then(|m| m.as_array()?.last()?.get("content")?.as_array().cloned())
        .is_some_and(|blocks| {
            blocks
                .iter()
                .any(|b| b.get("type").and_then(|t| t.as_str()) == Some("tool_result"))
        })
}

/// Rust's `TcpListener::bind` listens with a backlog of 128: a burst of
/// 1,000 connects overflows it and the dropped SYNs come back 1 s later.
/// Listening again on the bound socket raises it (Linux allows this).
pub fn raise_backlog(listener: &TcpListener) {
    use std::os::fd::AsRawFd;
    // SAFETY: listen(2) on a socket we own; no memory is shared.
    let rc = unsafe { libc::listen(listener.as_raw_fd(), 4096) };
    if rc != 0 {
        eprintln!(
            "fake: cannot raise the listen backlog: {}",
            std::io::Error::last_os_error()
        );
    }
}

/// What `list_repositories` answers, in both MCP forms.
pub const REPOS: &str = r#"[{"name":"opentelemetry-collector","doc_count":42,"description":"The collector"},{"name":"opentelemetry-go","doc_count":17,"description":"Go SDK"},{"name":"opentelemetry-specification","doc_count":120,"description":"The specification"}]"#;

/// Fake MCP server. Simple HTTP: `GET /health`, `POST /tools/execute`.
/// Streamable HTTP (any other POST path, JSON replies, no SSE):
/// `initialize`, `notifications/initialized`, `tools/list`, `tools/call`.
pub fn mcp_connection(stream: TcpStream) {
    let Ok(mut out) = stream.try_clone() else {
        return;
    };
    let mut input = BufReader::with_capacity(16 * 1024, stream);
    while let Ok(Some(rq)) = read_request(&mut input) {
        let (status, extra, body) = mcp_answer(&rq);
        let head = format!(
            "HTTP/1.1 {status}\r\ncontent-type: application/json\r\n{extra}content-length: {}\r\n\r\n",
            body.len()
        );
        let mut all = head.into_bytes();
        all.extend_from_slice(body.as_bytes());
        if out.write_all(&all).is_err() || rq.close {
            return;
        }
    }
}

fn mcp_answer(rq: &Request) -> (&'static str, &'static str, String) {
    match (rq.method.as_str(), rq.path.as_str()) {
        ("GET", "/health") => ("200 OK", "", r#"{"status":"ok"}"#.into()),
        ("POST", "/tools/execute") => ("200 OK", "", format!(r#"{{"result":{REPOS}}}"#)),
        ("POST", _) => jsonrpc(&rq.body),
        ("DELETE", _) => ("200 OK", "", "{}".into()),
        _ => ("404 Not Found", "", r#"{"detail":"not found"}"#.into()),
    }
}

fn jsonrpc(body: &[u8]) -> (&'static str, &'static str, String) {
    let Ok(msg) = serde_json::from_slice::<serde_json::Value>(body) else {
        return ("400 Bad Request", "", r#"{"detail":"not JSON"}"#.into());
    };
    let id = msg.get("id").cloned().unwrap_or(serde_json::Value::Null);
    let method = msg.get("method").and_then(|m| m.as_str()).unwrap_or("");
    let session = "mcp-session-id: bench-session\r\n";
    let result = match method {
        "initialize" => {
            let version = msg
                .pointer("/params/protocolVersion")
                .and_then(|v| v.as_str())
                .unwrap_or("2025-06-18");
            serde_json::json!({
                "protocolVersion": version,
                "capabilities": {"tools": {}},
                "serverInfo": {"name": "kvbench-fake-mcp", "version": "0.1.0"}
            })
        }
        m if m.starts_with("notifications/") => return ("202 Accepted", session, String::new()),
        "tools/list" => serde_json::json!({"tools": [
            {"name": "list_repositories", "description": "List repositories", "inputSchema": {"type": "object", "properties": {}}},
            {"name": "search_documentation", "description": "Search", "inputSchema": {"type": "object", "properties": {"query": {"type": "string"}, "repo": {"type": "string"}}, "required": ["query"]}},
            {"name": "get_documentation", "description": "Get one document", "inputSchema": {"type": "object", "properties": {"repo": {"type": "string"}, "path": {"type": "string"}}, "required": ["repo", "path"]}},
            {"name": "list_repo_docs", "description": "List documents", "inputSchema": {"type": "object", "properties": {"repo": {"type": "string"}}, "required": ["repo"]}}
        ]}),
        "tools/call" => serde_json::json!({
            "content": [{"type": "text", "text": REPOS}],
            "structuredContent": {"result": serde_json::from_str::<serde_json::Value>(REPOS).unwrap_or_default()},
            "isError": false
        }),
        "ping" => serde_json::json!({}),
        _ => {
            let e = serde_json::json!({"jsonrpc": "2.0", "id": id, "error": {"code": -32601, "message": "method not found"}});
            return ("200 OK", session, e.to_string());
        }
    };
    let reply = serde_json::json!({"jsonrpc": "2.0", "id": id, "result": result});
    ("200 OK", session, reply.to_string())
}
