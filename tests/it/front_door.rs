//! The HTTP front door against hostile clients, sent to the real binary:
//! request smuggling (ambiguous framing), heads that break RFC 9112,
//! unsupported versions, huge declared lengths, slow heads, slow bodies,
//! upgrade requests that hold their connection, oversized heads and more
//! connections than allowed, and random heads. Each test asserts the exact
//! refusal, that the connection is closed, that nothing behind a refused
//! request is ever served, and that the service is back to its baseline
//! (threads, descriptors, memory) and answers `/health` fast.
//!
//! The hostile clients that trickle bytes pace their own output with
//! sleeps, as the fake servers do; everything else waits on conditions.

use crate::support::kv::{self, Held, Kv, TempDir, json};
use crate::support::ws_client;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

/// Small limits, so that every deadline passes in seconds.
const ENV: &[(&str, &str)] = &[
    ("HTTP_IDLE_TIMEOUT", "2"),
    ("HTTP_BODY_TIMEOUT", "3"),
    ("MAX_CONNECTIONS", "64"),
];

fn start(extra: &[(&'static str, &'static str)]) -> Kv {
    let mut env = ENV.to_vec();
    env.extend_from_slice(extra);
    let kv = Kv::start_with_docs(&env);
    // Warm up whatever the first request starts.
    assert_eq!(kv.get("/health").0, 200);
    kv
}

/// What came back on one connection.
struct Reply {
    text: String,
    /// The service closed the connection (end of stream or reset).
    closed: bool,
    took: Duration,
}

impl Reply {
    fn status(&self) -> u16 {
        self.text
            .strip_prefix("HTTP/1.1 ")
            .and_then(|t| t.get(..3))
            .and_then(|s| s.parse().ok())
            .unwrap_or(0)
    }
    fn responses(&self) -> usize {
        let at_start = usize::from(self.text.starts_with("HTTP/1."));
        at_start
            + self.text.matches("\r\n\r\nHTTP/1.").count()
            + self.text.matches("}HTTP/1.").count()
    }
}

fn connect(port: u16) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s
}

/// Reads until the service closes the connection (or 20 s pass).
fn read_reply(mut s: TcpStream, since: Instant) -> Reply {
    let mut out = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    let closed = loop {
        match s.read(&mut buf) {
            Ok(0) => break true,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => break matches!(e.kind(), ErrorKind::ConnectionReset),
        }
    };
    Reply {
        text: String::from_utf8_lossy(&out).into_owned(),
        closed,
        took: since.elapsed(),
    }
}

/// Sends `raw` on a new connection (a failed write is fine: the service
/// may have refused and closed already) and reads the reply.
fn exchange(port: u16, raw: &[u8]) -> Reply {
    let mut s = connect(port);
    let t0 = Instant::now();
    let _ = s.write_all(raw);
    read_reply(s, t0)
}

/// `/health` answers 200 within `within`.
fn health_within(kv: &Kv, within: Duration) -> Duration {
    let t0 = Instant::now();
    let (status, _) = kv.get("/health");
    let took = t0.elapsed();
    assert_eq!(status, 200);
    assert!(took < within, "/health took {took:?}");
    took
}

/// What the service holds once the connections of earlier requests are
/// gone.
fn baseline(kv: &Kv) -> Held {
    kv.settled(Duration::from_millis(300))
}

/// Waits until the service holds no more threads and descriptors than at
/// `base`, and at most `rss_slack_kib` more memory.
fn back_to(kv: &Kv, base: Held, rss_slack_kib: u64) {
    let mut now = kv.held();
    let back = kv.wait_until(Duration::from_secs(30), |kv| {
        now = kv.held();
        now.threads <= base.threads
            && now.fds <= base.fds
            && now.rss_kib <= base.rss_kib + rss_slack_kib
    });
    assert!(back, "not back to the baseline: {base:?} then {now:?}");
}

/// Waits until the log has `needle` (a request logged after all others),
/// then asserts that nothing smuggled was ever served.
fn assert_nothing_smuggled(kv: &Kv) {
    assert_eq!(kv.get("/sentinel-after-the-attacks").0, 404);
    assert!(kv.wait_log("/sentinel-after-the-attacks", Duration::from_secs(10)));
    let log = kv.log();
    assert!(
        !log.contains("smuggled"),
        "a smuggled request was served:\n{log}"
    );
}

/// The request hidden in a body: if it is ever read as a request, the log
/// and the reply show it.
fn smuggled(i: usize) -> String {
    format!("GET /smuggled-{i} HTTP/1.1\r\nHost: localhost\r\n\r\n")
}

fn refused(kv: &Kv, name: &str, raw: &[u8], status: u16) {
    let r = exchange(kv.port, raw);
    assert_eq!(r.status(), status, "{name}: {}", r.text);
    assert!(r.closed, "{name}: connection left open: {}", r.text);
    assert_eq!(r.responses(), 1, "{name}: {}", r.text);
    assert!(!r.text.contains("smuggled"), "{name}: {}", r.text);
    let body = &r.text[r.text.find("\r\n\r\n").unwrap() + 4..];
    assert!(json(body)["detail"].is_string(), "{name}: {}", r.text);
}

#[test]
fn ambiguous_framing_is_refused_and_nothing_behind_it_is_served() {
    let kv = start(&[]);
    let base = baseline(&kv);
    let post = |headers: &str, body: &str| {
        format!("POST /api/conversations HTTP/1.1\r\nHost: localhost\r\n{headers}\r\n{body}")
    };
    let mut i = 0;
    let mut next = || {
        i += 1;
        smuggled(i)
    };
    let cases: Vec<(&str, String, u16)> = vec![
        (
            "CL + TE",
            post(
                "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
                &format!("0\r\n\r\n{}", next()),
            ),
            400,
        ),
        (
            "TE + CL",
            post(
                "Transfer-Encoding: chunked\r\nContent-Length: 60\r\n",
                &format!("0\r\n\r\n{}", next()),
            ),
            400,
        ),
        (
            "two different CLs",
            post("Content-Length: 0\r\nContent-Length: 39\r\n", &next()),
            400,
        ),
        ("CL abc", post("Content-Length: abc\r\n", &next()), 400),
        (
            "CL +2",
            post("Content-Length: +2\r\n", &format!("{{}}{}", next())),
            400,
        ),
        ("CL -1", post("Content-Length: -1\r\n", &next()), 400),
        (
            "CL list",
            post("Content-Length: 2, 2\r\n", &format!("{{}}{}", next())),
            400,
        ),
        (
            "CL hex",
            post("Content-Length: 0x2\r\n", &format!("{{}}{}", next())),
            400,
        ),
        (
            "CL overflow",
            post("Content-Length: 99999999999999999999999\r\n", &next()),
            400,
        ),
        ("TE gzip", post("Transfer-Encoding: gzip\r\n", &next()), 400),
        (
            "TE identity",
            post("Transfer-Encoding: identity\r\n", &next()),
            400,
        ),
        (
            "TE gzip, chunked",
            post(
                "Transfer-Encoding: gzip, chunked\r\n",
                &format!("0\r\n\r\n{}", next()),
            ),
            501,
        ),
        (
            "TE chunked, chunked",
            post(
                "Transfer-Encoding: chunked, chunked\r\n",
                &format!("0\r\n\r\n{}", next()),
            ),
            400,
        ),
        (
            "TE chunked then gzip (two fields)",
            post(
                "Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n",
                &format!("0\r\n\r\n{}", next()),
            ),
            400,
        ),
        (
            "TE in HTTP/1.0",
            format!(
                "POST /api/conversations HTTP/1.0\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{}",
                next()
            ),
            400,
        ),
        (
            "TE with a space before the colon",
            post(
                "Transfer-Encoding : chunked\r\n",
                &format!("0\r\n\r\n{}", next()),
            ),
            400,
        ),
        (
            "TE folded",
            post(
                "Transfer-Encoding: gzip\r\n , chunked\r\n",
                &format!("0\r\n\r\n{}", next()),
            ),
            400,
        ),
        (
            "TE with a vertical tab",
            post(
                "Transfer-Encoding:\x0bchunked\r\n",
                &format!("0\r\n\r\n{}", next()),
            ),
            400,
        ),
        (
            "chunk size overflow",
            post(
                "Transfer-Encoding: chunked\r\n",
                &format!("fffffffffffffffff1\r\n{}", next()),
            ),
            400,
        ),
        (
            "chunk size line ending in a bare LF",
            post(
                "Transfer-Encoding: chunked\r\n",
                &format!("2\n{{}}\r\n0\r\n\r\n{}", next()),
            ),
            400,
        ),
        (
            "chunk longer than its size",
            post(
                "Transfer-Encoding: chunked\r\n",
                &format!("1\r\n{{}}\r\n0\r\n\r\n{}", next()),
            ),
            400,
        ),
        (
            "negative chunk size",
            post(
                "Transfer-Encoding: chunked\r\n",
                &format!("-2\r\n{{}}\r\n0\r\n\r\n{}", next()),
            ),
            400,
        ),
        (
            "chunk extension with a control byte",
            post(
                "Transfer-Encoding: chunked\r\n",
                &format!("2;a=\x01\r\n{{}}\r\n0\r\n\r\n{}", next()),
            ),
            400,
        ),
        (
            "trailer folded",
            post(
                "Transfer-Encoding: chunked\r\n",
                &format!("2\r\n{{}}\r\n0\r\nT: v\r\n folded\r\n\r\n{}", next()),
            ),
            400,
        ),
    ];
    for (name, raw, status) in &cases {
        refused(&kv, name, raw.as_bytes(), *status);
    }

    // Valid framing still works, pipelined: each request is answered once.
    let valid = [
        post("Content-Length: 2\r\nContent-Length: 2\r\n", "{}"),
        post(
            "Transfer-Encoding: CHUNKED\r\n",
            "2;name=\"v\" ; x\r\n{}\r\n0\r\nX-T: 1\r\n\r\n",
        ),
        post("Content-Length: 002\r\n", "{}"),
    ];
    for raw in &valid {
        let raw =
            format!("{raw}GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
        let r = exchange(kv.port, raw.as_bytes());
        assert_eq!(r.status(), 200, "{raw}: {}", r.text);
        assert_eq!(r.responses(), 2, "{raw}: {}", r.text);
        assert!(
            r.text.contains("\"id\"") && r.text.contains("\"status\""),
            "{}",
            r.text
        );
    }
    assert_nothing_smuggled(&kv);
    health_within(&kv, Duration::from_secs(1));
    back_to(&kv, base, 8 * 1024);
}

#[test]
fn heads_that_break_the_grammar_are_refused() {
    let kv = start(&[]);
    let base = baseline(&kv);
    let get = |rest: &str| format!("GET /health HTTP/1.1\r\n{rest}\r\n");
    let long_target = format!(
        "GET /{} HTTP/1.1\r\nHost: localhost\r\n\r\n",
        "a".repeat(40 * 1024)
    );
    let many = format!(
        "GET /health HTTP/1.1\r\nHost: localhost\r\n{}\r\n",
        "A: b\r\n".repeat(200)
    );
    let huge = format!(
        "GET /health HTTP/1.1\r\nHost: localhost\r\n{}\r\n",
        (0..127)
            .map(|i| format!("X-{i}: {}\r\n", "v".repeat(16 * 1024)))
            .collect::<String>()
    );
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        (
            "obs-fold",
            get("Host: localhost\r\nX-A: a\r\n b\r\n").into(),
            400,
        ),
        ("space before colon", get("Host : x\r\n").into(), 400),
        ("tab before colon", get("Host\t: x\r\n").into(), 400),
        (
            "bare LF",
            b"GET /health HTTP/1.1\nHost: localhost\n\n".to_vec(),
            400,
        ),
        (
            "bare CR",
            get("Host: localhost\r\nX-A: a\rb\r\n").into(),
            400,
        ),
        (
            "NUL in a value",
            get("Host: localhost\r\nX-A: a\0b\r\n").into(),
            400,
        ),
        (
            "DEL in a value",
            get("Host: localhost\r\nX-A: a\x7fb\r\n").into(),
            400,
        ),
        (
            "non-ASCII value",
            [
                get("Host: localhost\r\nX-A: ").as_bytes(),
                b"\xc3\xa9\r\n\r\n",
            ]
            .concat(),
            400,
        ),
        (
            "bad name byte",
            get("Host: localhost\r\nX(A): b\r\n").into(),
            400,
        ),
        ("empty name", get("Host: localhost\r\n: b\r\n").into(), 400),
        (
            "no colon",
            get("Host: localhost\r\nJustText\r\n").into(),
            400,
        ),
        (
            "bad method",
            b"GE(T /health HTTP/1.1\r\nHost: localhost\r\n\r\n".to_vec(),
            400,
        ),
        (
            "double space",
            b"GET  /health HTTP/1.1\r\nHost: localhost\r\n\r\n".to_vec(),
            400,
        ),
        (
            "trailing space",
            b"GET /health HTTP/1.1 \r\nHost: localhost\r\n\r\n".to_vec(),
            400,
        ),
        (
            "lower-case version",
            b"GET /health http/1.1\r\nHost: localhost\r\n\r\n".to_vec(),
            400,
        ),
        (
            "space in target",
            b"GET /hea lth HTTP/1.1\r\nHost: localhost\r\n\r\n".to_vec(),
            400,
        ),
        ("no Host", b"GET /health HTTP/1.1\r\n\r\n".to_vec(), 400),
        (
            "two Hosts",
            get("Host: localhost\r\nHost: y\r\n").into(),
            400,
        ),
        (
            "GET *",
            b"GET * HTTP/1.1\r\nHost: localhost\r\n\r\n".to_vec(),
            400,
        ),
        (
            "authority form",
            b"CONNECT x:443 HTTP/1.1\r\nHost: x:443\r\n\r\n".to_vec(),
            400,
        ),
        (
            "absolute form, other Host",
            b"GET http://a.test/health HTTP/1.1\r\nHost: b.test\r\n\r\n".to_vec(),
            400,
        ),
        (
            "relative target",
            b"GET health HTTP/1.1\r\nHost: localhost\r\n\r\n".to_vec(),
            400,
        ),
        (
            "Expect other",
            get("Host: localhost\r\nExpect: 200-ok\r\n").into(),
            417,
        ),
        (
            "HTTP/1.2",
            b"GET /health HTTP/1.2\r\nHost: localhost\r\n\r\n".to_vec(),
            505,
        ),
        (
            "HTTP/0.9",
            b"GET /health HTTP/0.9\r\nHost: localhost\r\n\r\n".to_vec(),
            505,
        ),
        ("request line too long", long_target.into(), 414),
        ("200 header fields", many.into(), 431),
        ("127 headers of 16 KiB", huge.into(), 431),
        (
            "only empty lines",
            b"\r\n\r\n\r\n\r\n\r\n\r\n".to_vec(),
            400,
        ),
    ];
    for (name, raw, status) in &cases {
        refused(&kv, name, raw, *status);
    }

    // What RFC 9112 allows is served.
    let ok: &[&[u8]] = &[
        b"\r\nGET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
        b"GET http://localhost/health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
        b"GET /health HTTP/1.1\r\nhOsT:localhost\r\nX-Empty:\r\nX-Tab:\tv\t\r\nConnection: close\r\n\r\n",
        b"GET /health HTTP/1.0\r\n\r\n",
    ];
    for raw in ok {
        let r = exchange(kv.port, raw);
        assert!(
            r.text.starts_with("HTTP/1.1 200") || r.text.starts_with("HTTP/1.0 200"),
            "{}: {}",
            String::from_utf8_lossy(raw),
            r.text
        );
        assert!(r.closed);
    }
    // `OPTIONS *` reaches the routes (which know no such path).
    let r = exchange(
        kv.port,
        b"OPTIONS * HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(r.status(), 404, "{}", r.text);
    // Expect: 100-continue gets its 100, then the answer.
    let mut s = connect(kv.port);
    s.write_all(b"POST /api/conversations HTTP/1.1\r\nHost: localhost\r\nExpect: 100-continue\r\nContent-Length: 2\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut interim = Vec::new();
    let mut byte = [0u8; 1];
    while !interim.ends_with(b"\r\n\r\n") {
        s.read_exact(&mut byte).unwrap();
        interim.push(byte[0]);
    }
    assert!(
        interim.starts_with(b"HTTP/1.1 100 Continue\r\n"),
        "{interim:?}"
    );
    s.write_all(b"{}").unwrap();
    let r = read_reply(s, Instant::now());
    assert!(r.text.starts_with("HTTP/1.1 200"), "{}", r.text);

    health_within(&kv, Duration::from_secs(1));
    back_to(&kv, base, 8 * 1024);
}

#[test]
fn unsupported_versions_get_505_and_leak_nothing() {
    // The descriptor limit of the issue's report: 130 leaked connections
    // used to be enough to refuse every client.
    let dir = TempDir::new("h2");
    kv::fixture_repo(&dir);
    let mut cmd = std::process::Command::new("sh");
    cmd.arg("-c")
        .arg(format!("ulimit -n 256 && exec {}", kv::BIN));
    let kv = Kv::start_cmd(cmd, dir.path(), ENV);
    assert_eq!(kv.get("/health").0, 200);
    let base = baseline(&kv);
    let preface: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x12\x04\x00\x00\x00\x00\x00";
    for i in 0..200 {
        let raw: &[u8] = match i % 3 {
            0 => preface,
            1 => b"GET /health HTTP/2.0\r\nHost: localhost\r\n\r\n",
            _ => b"GET /health HTTP/3.0\r\nHost: localhost\r\n\r\n",
        };
        let r = exchange(kv.port, raw);
        assert_eq!(r.status(), 505, "{}", r.text);
        assert!(r.closed, "{}", r.text);
        assert!(r.took < Duration::from_secs(2), "{:?}", r.took);
    }
    health_within(&kv, Duration::from_secs(1));
    back_to(&kv, base, 8 * 1024);
}

#[test]
fn a_huge_content_length_is_refused_without_allocating_it() {
    let kv = start(&[]);
    let base = baseline(&kv);
    for path in ["/api/conversations", "/mcp", "/health", "/nope"] {
        let mut s = connect(kv.port);
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 1000000000000\r\n\r\n"
        );
        let t0 = Instant::now();
        s.write_all(head.as_bytes()).unwrap();
        // Some of the "body", then the request it must never become.
        let _ = s.write_all(&vec![b' '; 256 * 1024]);
        let _ = s.write_all(smuggled(0).as_bytes());
        let r = read_reply(s, t0);
        assert!(r.text.starts_with("HTTP/1.1 413"), "{path}: {}", r.text);
        assert!(r.text.contains("Connection: close"), "{}", r.text);
        assert!(r.closed && r.responses() == 1, "{path}: {}", r.text);
        health_within(&kv, Duration::from_secs(1));
    }
    assert_nothing_smuggled(&kv);
    back_to(&kv, base, 8 * 1024);
}

#[test]
fn a_slow_head_is_cut_off_at_its_deadline() {
    let kv = start(&[]);
    let base = baseline(&kv);
    // One byte every 300 ms: each read is well within the idle timeout
    // (2 s), the whole head is not.
    let mut s = connect(kv.port);
    let t0 = Instant::now();
    let head = b"GET /health HTTP/1.1\r\nHost: localhost\r\nX-Slow: ";
    s.write_all(head).unwrap();
    let mut cut = false;
    for _ in 0..40 {
        std::thread::sleep(Duration::from_millis(300));
        if s.write_all(b"a").is_err() {
            cut = true;
            break;
        }
        if t0.elapsed() > Duration::from_secs(3) {
            break;
        }
    }
    let r = read_reply(s, t0);
    assert!(r.text.starts_with("HTTP/1.1 408"), "cut={cut}: {}", r.text);
    assert!(r.closed);
    assert!(r.took < Duration::from_secs(6), "held for {:?}", r.took);
    // Silence before any byte of a request: closed without an answer.
    let r = exchange(kv.port, b"");
    assert!(r.closed && r.text.is_empty(), "{}", r.text);
    assert!(r.took < Duration::from_secs(6), "held for {:?}", r.took);
    health_within(&kv, Duration::from_secs(1));
    back_to(&kv, base, 8 * 1024);
}

/// Starts a client that sends `head` and then one byte of `body` every
/// `pace`, until the service stops reading; returns its reply.
fn trickle(port: u16, head: String, pace: Duration) -> std::thread::JoinHandle<Reply> {
    let mut s = connect(port);
    std::thread::spawn(move || {
        let t0 = Instant::now();
        let _ = s.write_all(head.as_bytes());
        while t0.elapsed() < Duration::from_secs(30) {
            std::thread::sleep(pace);
            if s.write_all(b" ").is_err() {
                break;
            }
            // Stop once the service answered.
            s.set_nonblocking(true).unwrap();
            let mut b = [0u8; 1];
            let answered =
                !matches!(s.peek(&mut b), Err(ref e) if e.kind() == ErrorKind::WouldBlock);
            s.set_nonblocking(false).unwrap();
            if answered {
                break;
            }
        }
        read_reply(s, t0)
    })
}

#[test]
fn slow_clients_hold_only_their_own_connection() {
    // Head deadline long enough for the slow heads to last the measurement.
    let kv = start(&[
        ("HTTP_IDLE_TIMEOUT", "8"),
        ("HTTP_BODY_TIMEOUT", "4"),
        ("MAX_CONNECTIONS", "400"),
    ]);
    let base = baseline(&kv);
    // 300 slow heads (half a head, then silence), 8 uploads trickling one
    // byte every 500 ms, 8 `Connection: upgrade` GETs without a body that
    // keep their connection open.
    let mut heads = Vec::new();
    for _ in 0..300 {
        let mut s = connect(kv.port);
        s.write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\nX-Half: ")
            .unwrap();
        heads.push(s);
    }
    let uploads: Vec<_> = (0..8)
        .map(|_| {
            let head =
                "POST /api/conversations HTTP/1.1\r\nHost: localhost\r\nContent-Length: 1000\r\n\r\n";
            trickle(kv.port, head.to_string(), Duration::from_millis(500))
        })
        .collect();
    let mut upgrades = Vec::new();
    for _ in 0..8 {
        let mut s = connect(kv.port);
        s.write_all(
            b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: upgrade\r\nUpgrade: foo\r\n\r\n",
        )
        .unwrap();
        upgrades.push(s);
    }
    // An upgrade request without a body is answered at once (its "body" is
    // not the rest of the stream), and the connection ends with it.
    for s in upgrades {
        let r = read_reply(s, Instant::now());
        assert!(r.text.starts_with("HTTP/1.1 200"), "{}", r.text);
        assert!(r.closed && r.took < Duration::from_secs(2), "{:?}", r.took);
    }
    // Everyone else is served fast meanwhile.
    let mut worst = Duration::ZERO;
    for _ in 0..20 {
        worst = worst.max(health_within(&kv, Duration::from_secs(1)));
    }
    let init = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#;
    let host = format!("127.0.0.1:{}", kv.port);
    let (status, body) = kv::request(
        &kv.base,
        "POST",
        "/mcp",
        &[
            ("Content-Type", "application/json"),
            ("Accept", "application/json, text/event-stream"),
            ("Host", &host),
        ],
        Some(init),
    );
    assert_eq!(status, 200, "{body}");
    let mut ws = ws_client::connect(kv.port, "front-door", None).expect("WebSocket upgrade");
    ws.send(serde_json::json!({"type": "ping"}));
    assert_eq!(ws.next(Duration::from_secs(5)).unwrap()["type"], "pong");
    drop(ws);
    eprintln!("/health worst of 20 with 300 slow heads and 8 slow uploads: {worst:?}");

    // The slow uploads are cut off at the body deadline (4 s).
    for u in uploads {
        let r = u.join().unwrap();
        assert!(r.text.starts_with("HTTP/1.1 408"), "{}", r.text);
        assert!(r.text.contains("deadline"), "{}", r.text);
        assert!(r.closed && r.took < Duration::from_secs(8), "{:?}", r.took);
    }
    // The slow heads at the head deadline (8 s), with 408.
    for s in heads {
        let r = read_reply(s, Instant::now());
        assert!(r.text.starts_with("HTTP/1.1 408"), "{}", r.text);
        assert!(r.closed);
    }
    health_within(&kv, Duration::from_secs(1));
    back_to(&kv, base, 16 * 1024);
}

#[test]
fn head_bytes_and_connections_have_budgets() {
    let kv = start(&[("HTTP_IDLE_TIMEOUT", "10"), ("MAX_HEADER_BYTES", "32768")]);
    let base = baseline(&kv);
    // 64 connections (the limit), each holding a head just under 32 KiB.
    let mut held = Vec::new();
    for i in 0..64 {
        let mut s = connect(kv.port);
        let mut head = format!("GET /health HTTP/1.1\r\nHost: localhost\r\nX-Id: {i}\r\n");
        while head.len() < 31 * 1024 {
            head.push_str(&format!("X-Pad-{}: {}\r\n", head.len(), "p".repeat(900)));
        }
        s.write_all(head.as_bytes()).unwrap();
        held.push(s);
    }
    // The next one is refused at once, with a short JSON 503.
    let deadline = Instant::now() + Duration::from_secs(10);
    let busy = loop {
        let r = exchange(kv.port, b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n");
        if r.status() == 503 {
            break r;
        }
        assert!(Instant::now() < deadline, "never refused: {}", r.text);
    };
    assert!(
        busy.closed && busy.took < Duration::from_secs(1),
        "{:?}",
        busy.took
    );
    assert!(busy.text.contains("Connection: close"), "{}", busy.text);
    let body = &busy.text[busy.text.find("\r\n\r\n").unwrap() + 4..];
    assert!(json(body)["detail"].is_string(), "{}", busy.text);
    let full = kv.held();
    let per_connection = (full.rss_kib.saturating_sub(base.rss_kib)) / 64;
    eprintln!(
        "64 connections with 31 KiB heads: RSS {base:?} -> {full:?}, {per_connection} KiB each"
    );
    assert!(per_connection < 256, "{per_connection} KiB per connection");
    // One byte more than the budget: 431.
    drop(held.pop());
    let deadline = Instant::now() + Duration::from_secs(10);
    let over = format!(
        "GET /health HTTP/1.1\r\nHost: localhost\r\nX-Big: {}\r\n\r\n",
        "b".repeat(32 * 1024)
    );
    loop {
        let r = exchange(kv.port, over.as_bytes());
        if r.status() == 431 {
            assert!(r.closed);
            break;
        }
        assert_eq!(r.status(), 503, "{}", r.text);
        assert!(Instant::now() < deadline, "slot never freed");
    }
    // Released: served again at once, and back to the baseline.
    drop(held);
    let deadline = Instant::now() + Duration::from_secs(10);
    while kv::raw_request(
        kv.port,
        b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    )
    .0 != 200
    {
        assert!(Instant::now() < deadline, "still refusing");
    }
    health_within(&kv, Duration::from_secs(1));
    back_to(&kv, base, 16 * 1024);
}

#[test]
fn an_unread_body_is_drained_a_little_or_the_connection_closed() {
    let kv = start(&[]);
    // OPTIONS does not read its body: a small one is drained and the
    // connection goes on.
    let raw = format!(
        "OPTIONS /health HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100\r\n\r\n{}GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
        "x".repeat(100)
    );
    let r = exchange(kv.port, raw.as_bytes());
    assert_eq!(r.responses(), 2, "{}", r.text);
    assert!(r.text.contains("HTTP/1.1 200"), "{}", r.text);
    // A large one is not: the answer says `Connection: close`, and the
    // request inside the body is never read.
    let body = format!("{}{}", smuggled(1), "x".repeat(100 * 1024));
    let raw = format!(
        "OPTIONS /health HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let r = exchange(kv.port, raw.as_bytes());
    assert_eq!(r.responses(), 1, "{}", r.text);
    assert!(
        r.text.contains("Connection: close") && r.closed,
        "{}",
        r.text
    );
    // A chunked one that goes on past the drain budget: the same.
    let mut s = connect(kv.port);
    let t0 = Instant::now();
    s.write_all(
        b"OPTIONS /health HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n",
    )
    .unwrap();
    for _ in 0..40 {
        let chunk = format!("1000\r\n{}\r\n", "y".repeat(4096));
        if s.write_all(chunk.as_bytes()).is_err() {
            break;
        }
    }
    let _ = s.write_all(format!("0\r\n\r\n{}", smuggled(2)).as_bytes());
    let r = read_reply(s, t0);
    assert_eq!(r.responses(), 1, "{}", r.text);
    assert!(r.closed);
    assert_nothing_smuggled(&kv);
}

#[test]
fn keep_alive_responses_of_a_few_kb_are_not_delayed() {
    let dir = TempDir::new("nagle");
    kv::fixture_repo(&dir);
    let text = "Some documentation text that fills a response of a few KB.\n".repeat(100);
    dir.write("docs/big.md", format!("# Big\n\n{text}"));
    let kv = Kv::start(dir.path(), ENV);
    let repo = json(&kv.get("/api/repos").1)[0]["name"]
        .as_str()
        .unwrap()
        .to_string();
    let mut s = connect(kv.port);
    let request =
        format!("GET /api/repos/{repo}/files/docs/big.md HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let mut times = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    for _ in 0..21 {
        let t0 = Instant::now();
        s.write_all(request.as_bytes()).unwrap();
        let mut got = Vec::new();
        // Read one whole response (Content-Length).
        loop {
            let n = s.read(&mut buf).unwrap();
            assert!(n > 0, "closed");
            got.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&got);
            if let Some(end) = text.find("\r\n\r\n") {
                let len: usize = text[..end]
                    .lines()
                    .find_map(|l| l.strip_prefix("Content-Length: "))
                    .and_then(|v| v.trim().parse().ok())
                    .expect("a Content-Length");
                if got.len() >= end + 4 + len {
                    assert!(len > 4000, "{len}");
                    break;
                }
            }
        }
        times.push(t0.elapsed());
    }
    times.remove(0);
    times.sort();
    // Nagle's algorithm against a delayed ACK costs ~40 ms per request.
    assert!(
        times[times.len() / 2] < Duration::from_millis(20),
        "{times:?}"
    );
}

/// A small xorshift generator: the random heads are the same every run.
struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Parses `bytes` as a sequence of complete HTTP/1.1 responses; returns
/// their statuses, or why they are not well-formed.
fn parse_responses(mut bytes: &[u8]) -> Result<Vec<u16>, String> {
    let mut statuses = Vec::new();
    while !bytes.is_empty() {
        let end = bytes
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .ok_or("a head without its end")?;
        let head = std::str::from_utf8(&bytes[..end]).map_err(|_| "a head not in UTF-8")?;
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        let status: u16 = status_line
            .strip_prefix("HTTP/1.1 ")
            .and_then(|s| s.get(..3))
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| format!("bad status line {status_line:?}"))?;
        let mut length = None;
        for l in lines {
            let (k, v) = l
                .split_once(": ")
                .ok_or_else(|| format!("bad header {l:?}"))?;
            if k.eq_ignore_ascii_case("content-length") {
                length = Some(v.parse::<usize>().map_err(|_| "bad Content-Length")?);
            }
            if k.eq_ignore_ascii_case("transfer-encoding") {
                return Err("a chunked answer to a random head".into());
            }
        }
        let body_len = if status < 200 {
            0
        } else {
            length.ok_or("no Content-Length")?
        };
        let rest = &bytes[end + 4..];
        if rest.len() < body_len {
            return Err("a body shorter than its Content-Length".into());
        }
        if status >= 400 && status != 404 && status != 405 {
            serde_json::from_slice::<serde_json::Value>(&rest[..body_len])
                .map_err(|e| format!("error body not JSON: {e}"))?;
        }
        statuses.push(status);
        bytes = &rest[body_len..];
    }
    Ok(statuses)
}

#[test]
fn random_heads_never_break_the_service() {
    let kv = start(&[]);
    let base = baseline(&kv);
    let template: &[u8] = b"POST /api/conversations HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\nExpect: 100-continue\r\nConnection: keep-alive\r\n\r\n{}";
    let alphabet: &[u8] = b"\r\n :\t\0\x7f\xff,;0123456789abcdefHTTP/1.GETchunkedContent-Length";
    let mut rng = XorShift(0x5eed_f00d_cafe_babe);
    for case in 0..400 {
        let mut head = template.to_vec();
        // Drop some header lines, then mutate a few bytes.
        for _ in 0..rng.below(3) {
            if let Some(start) =
                (0..head.len()).find(|&i| i > 0 && head[i - 1] == b'\n' && rng.below(4) == 0)
                && let Some(len) = head[start..].iter().position(|&b| b == b'\n')
            {
                head.drain(start..start + len + 1);
            }
        }
        for _ in 0..1 + rng.below(6) {
            let at = rng.below(head.len() + 1);
            let byte = alphabet[rng.below(alphabet.len())];
            match rng.below(3) {
                0 if at < head.len() => head[at] = byte,
                1 if at < head.len() => {
                    head.remove(at);
                }
                _ => head.insert(at, byte),
            }
        }
        let mut s = connect(kv.port);
        let t0 = Instant::now();
        let _ = s.write_all(&head);
        let _ = s.shutdown(Shutdown::Write);
        let mut out = Vec::new();
        let _ = s.read_to_end(&mut out);
        assert!(t0.elapsed() < Duration::from_secs(5), "case {case} held");
        if let Err(why) = parse_responses(&out) {
            panic!(
                "case {case}: {why}\nsent {:?}\ngot {:?}",
                String::from_utf8_lossy(&head),
                String::from_utf8_lossy(&out)
            );
        }
    }
    assert!(!kv.log().contains("panicked"), "{}", kv.log());
    health_within(&kv, Duration::from_secs(1));
    back_to(&kv, base, 8 * 1024);
}

#[test]
fn a_client_that_does_not_read_its_responses_is_dropped() {
    let dir = TempDir::new("noread");
    kv::fixture_repo(&dir);
    dir.write(
        "docs/big.md",
        format!("# Big\n\n{}\n", "word ".repeat(100 * 1024)),
    );
    let mut env = ENV.to_vec();
    env.push(("LOG_LEVEL", "debug"));
    let kv = Kv::start(dir.path(), &env);
    let repo = json(&kv.get("/api/repos").1)[0]["name"]
        .as_str()
        .unwrap()
        .to_string();
    let path = format!("/api/repos/{repo}/files/docs/big.md");
    assert_eq!(kv.get(&path).0, 200);
    let base = baseline(&kv);
    // 100 pipelined requests for 500 KB each, and not one byte read: far
    // more than the socket buffers hold, so the service's writes block.
    let mut s = connect(kv.port);
    let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n");
    s.write_all(request.repeat(100).as_bytes()).unwrap();
    let t0 = Instant::now();
    // The connection's thread gives up at the write deadline, while the
    // client still holds its end open.
    assert!(
        kv.wait_log(
            "client went away before the response was written",
            Duration::from_secs(30)
        ),
        "{}",
        kv.log()
    );
    back_to(&kv, base, 8 * 1024);
    eprintln!("a non-reading client was dropped after {:?}", t0.elapsed());
    health_within(&kv, Duration::from_secs(1));
    let r = read_reply(s, Instant::now());
    assert!(r.closed);
    assert!(r.text.starts_with("HTTP/1.1 200"), "{:.100}", r.text);
    assert!(r.responses() < 100, "{}", r.responses());
}
