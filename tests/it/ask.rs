//! `knowledge-vault ask`, the terminal client, run as a user runs it: the
//! real binary against the real service and the tests' fake Claude, or
//! against hostile stand-ins (a silent server, a refusal, nothing at all).
//! Asserts what reaches stdout and stderr, when, and the exit code.

use crate::support::fake_claude;
use crate::support::kv;

use fake_claude::{FakeClaude, Reply, sse};
use kv::{BIN, Kv};
use serde_json::json;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// What one `ask` run produced.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    /// When the first answer bytes reached stdout, and when the process ended.
    first_output: Option<Instant>,
    ended: Instant,
}

/// Runs `knowledge-vault ask ARGS` with only `env` (and PATH) set.
fn ask(args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = Command::new(BIN);
    cmd.arg("ask")
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .current_dir(std::env::temp_dir())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("start knowledge-vault ask");
    let (mut out, mut err) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    let stderr = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    // stdout is read as it comes, to see when the answer arrives.
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let (mut text, mut first) = (Vec::new(), None);
        let mut buf = [0u8; 4096];
        while let Ok(n) = out.read(&mut buf) {
            if n == 0 {
                break;
            }
            first.get_or_insert_with(Instant::now);
            text.extend_from_slice(&buf[..n]);
        }
        let _ = tx.send((String::from_utf8_lossy(&text).to_string(), first));
    });
    let (stdout, first_output) = match rx.recv_timeout(Duration::from_secs(90)) {
        Ok(r) => r,
        Err(_) => {
            let _ = child.kill();
            panic!("ask did not finish within 90 s");
        }
    };
    let code = child.wait().unwrap().code();
    Run {
        code,
        stdout,
        stderr: stderr.join().unwrap(),
        first_output,
        ended: Instant::now(),
    }
}

fn service(claude: &FakeClaude) -> Kv {
    let url = claude.url();
    Kv::start_with_docs(&[
        ("ANTHROPIC_API_KEY", "sk-ant-test-KEY"),
        ("ANTHROPIC_BASE_URL", &url),
        ("HTTP_PROXY", "http://127.0.0.1:9"),
    ])
}

#[test]
fn the_answer_streams_to_stdout_as_it_arrives() {
    let pieces = ["Hel", "lo, ", "wor", "ld!"];
    let mut chunks = vec![sse::message_start() + &sse::text_start(0)];
    chunks.extend(pieces.iter().map(|p| sse::text_delta(0, p)));
    chunks.push(sse::block_stop(0) + &sse::message_end("end_turn"));
    let claude = FakeClaude::start(vec![Reply::sse_slow(chunks, Duration::from_millis(400))]);
    let kv = service(&claude);
    // No --url: HOST/PORT from the environment, as on the service's machine.
    let port = kv.port.to_string();
    let run = ask(&["what is this?"], &[("PORT", &port)]);
    assert_eq!(run.code, Some(0), "stderr: {}", run.stderr);
    assert_eq!(run.stdout, "Hello, world!\n");
    // 2 s of pacing: the first words are printed well before the end.
    let first = run.first_output.expect("no output");
    assert!(
        run.ended.duration_since(first) >= Duration::from_millis(1000),
        "the answer was printed at once at the end ({:?} before exit)",
        run.ended.duration_since(first)
    );
    let request = &claude.requests()[0];
    assert_eq!(
        request.body["messages"],
        json!([{"role": "user", "content": [{"type": "text", "text": "what is this?"}]}])
    );
    assert!(
        !request.body["system"]
            .as_str()
            .unwrap_or_default()
            .contains("scoped")
    );
}

#[test]
fn tool_calls_go_to_stderr_and_repo_scopes_the_question() {
    let claude = FakeClaude::start(vec![
        Reply::sse(sse::tool_turn(
            Some("Let me look. "),
            &[(
                "toolu_ask",
                "search_documentation",
                json!({"query": "install"}),
            )],
        )),
        Reply::sse(sse::text_turn(&["Use `--fast`.\n"])),
    ]);
    let kv = service(&claude);
    let url = kv.base.clone();
    let run = ask(&["how to install?", "--repo", "alpha", "--url", &url], &[]);
    assert_eq!(run.code, Some(0), "stderr: {}", run.stderr);
    assert_eq!(run.stdout, "Let me look. Use `--fast`.\n");
    assert!(
        run.stderr
            .contains("[tool] search_documentation {\"query\":\"install\"}"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("[tool] search_documentation done in "),
        "{}",
        run.stderr
    );
    let system = claude.requests()[0].body["system"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        system.contains("scoped this question to the repository `alpha`"),
        "{system}"
    );
}

#[test]
fn an_error_event_exits_non_zero_with_the_message() {
    let claude = FakeClaude::start(vec![Reply::error(
        400,
        "invalid_request_error",
        "fake refusal for ask",
    )]);
    let kv = service(&claude);
    let url = kv.base.clone();
    let run = ask(&["anything", "--url", &url], &[]);
    assert_eq!(run.code, Some(1), "stdout: {}", run.stdout);
    assert!(
        run.stderr.contains("fake refusal for ask"),
        "{}",
        run.stderr
    );
}

#[test]
fn an_unreachable_service_exits_non_zero_at_once() {
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let started = Instant::now();
    let url = format!("http://127.0.0.1:{port}");
    let run = ask(&["anyone there?", "--url", &url], &[]);
    assert_eq!(run.code, Some(1));
    assert!(
        run.stderr.contains("cannot reach the service"),
        "{}",
        run.stderr
    );
    assert!(started.elapsed() < Duration::from_secs(30));
    assert_eq!(run.stdout, "");
}

#[test]
// tungstenite's handshake callback signature, not ours.
#[allow(clippy::result_large_err)]
fn a_silent_service_hits_the_deadline_and_the_token_is_sent() {
    // A WebSocket server that takes the question and then says nothing.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
        let mut auth = None;
        let mut ws = tungstenite::accept_hdr(
            stream,
            |req: &tungstenite::handshake::server::Request, resp| {
                auth = req
                    .headers()
                    .get("authorization")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
                Ok(resp)
            },
        )
        .unwrap();
        let question = ws.read().map(|m| m.to_string()).unwrap_or_default();
        let _ = tx.send((auth, question));
        // Hold the socket open, silent, until the client leaves.
        while ws.read().is_ok() {}
    });
    let url = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    let run = ask(
        &["hello?", "--url", &url, "--timeout", "2"],
        &[("API_TOKEN", "tok-ask-123")],
    );
    assert_eq!(run.code, Some(1));
    assert!(
        run.stderr
            .contains("no event from the service for 2 s; giving up"),
        "{}",
        run.stderr
    );
    assert!(started.elapsed() < Duration::from_secs(30));
    let (auth, question) = rx.recv_timeout(Duration::from_secs(5)).unwrap();
    assert_eq!(auth.as_deref(), Some("Bearer tok-ask-123"));
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&question).unwrap(),
        json!({"type": "message", "content": "hello?"})
    );
    assert!(!run.stderr.contains("tok-ask-123"));
}

#[test]
fn a_refused_token_and_bad_arguments_are_explained() {
    // The handshake refused before the upgrade, as with access tokens on.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for _ in 0..2 {
            let Ok((mut s, _)) = listener.accept() else {
                return;
            };
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            let body = r#"{"detail":"missing or invalid access token"}"#;
            let _ = write!(
                s,
                "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Bearer\r\n\
                 Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
        }
    });
    let url = format!("http://127.0.0.1:{port}");
    let run = ask(&["q", "--url", &url], &[]);
    assert_eq!(run.code, Some(1));
    assert!(
        run.stderr.contains("needs an access token: set API_TOKEN"),
        "{}",
        run.stderr
    );
    let run = ask(&["q", "--url", &url], &[("API_TOKEN", "wrong")]);
    assert_eq!(run.code, Some(1));
    assert!(run.stderr.contains("refused API_TOKEN"), "{}", run.stderr);

    for args in [&[][..], &["--repo", "x"], &["a", "b"], &["a", "--what"]] {
        let run = ask(args, &[]);
        assert_eq!(run.code, Some(2), "{args:?}: {}", run.stderr);
        assert!(
            run.stderr.contains("usage: knowledge-vault ask"),
            "{}",
            run.stderr
        );
    }
    // A server that accepts and never answers the handshake.
    let mute = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", mute.local_addr().unwrap());
    let held = std::thread::spawn(move || mute.accept().map(|(s, _)| s));
    let run = ask(&["q", "--url", &url, "--timeout", "1"], &[]);
    assert_eq!(run.code, Some(1));
    assert!(
        run.stderr.contains("no WebSocket handshake answer in time"),
        "{}",
        run.stderr
    );
    drop(held.join());

    let run = ask(&["q", "--url", "https://vault.example"], &[]);
    assert_eq!(run.code, Some(1));
    assert!(run.stderr.contains("plain ws://"), "{}", run.stderr);
}
