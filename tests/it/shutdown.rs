//! Graceful shutdown, against the real binary: SIGTERM and SIGINT tell the
//! chat sockets, let running answers finish within SHUTDOWN_GRACE_SECS,
//! interrupt the rest, log one line and exit 0; a second signal exits at
//! once.

use crate::support::fake_claude::{FakeClaude, Reply, sse};
use crate::support::kv::Kv;
use crate::support::ws_client::{Ws, connect};
use serde_json::Value;
use std::time::{Duration, Instant};
use tungstenite::Message;
use tungstenite::protocol::frame::coding::CloseCode;

const LONG: Duration = Duration::from_secs(20);

fn service(claude: &FakeClaude, grace: &str) -> Kv {
    let url = claude.url();
    Kv::start_with_docs(&[
        ("ANTHROPIC_API_KEY", "sk-ant-x"),
        ("ANTHROPIC_BASE_URL", &url),
        ("SHUTDOWN_GRACE_SECS", grace),
    ])
}

/// An answer that streams for about `secs` seconds.
fn slow_answer(secs: u64) -> Reply {
    let mut chunks = vec![sse::message_start() + &sse::text_start(0)];
    for i in 0..secs * 10 {
        chunks.push(sse::text_delta(0, &format!("{i} ")));
    }
    chunks.push(sse::block_stop(0) + &sse::message_end("end_turn"));
    Reply::sse_slow(chunks, Duration::from_millis(100))
}

/// Reads until the close frame; the `error` events seen before it and the
/// close code.
fn until_close(ws: &mut Ws) -> (Vec<Value>, Option<CloseCode>) {
    let mut errors = vec![];
    ws.sock.get_mut().set_read_timeout(Some(LONG)).unwrap();
    loop {
        match ws.sock.read() {
            Ok(Message::Text(t)) => {
                let v: Value = serde_json::from_str(t.as_str()).unwrap();
                if v["type"] == "error" {
                    errors.push(v);
                }
            }
            Ok(Message::Close(frame)) => return (errors, frame.map(|f| f.code)),
            Ok(_) => {}
            Err(_) => return (errors, None),
        }
    }
}

fn started(ws: &mut Ws, claude: &FakeClaude) {
    ws.ask("tell me slowly");
    claude.wait_for_requests(1, LONG);
    while let Some(e) = ws.next(LONG) {
        if e["type"] == "text" {
            return;
        }
    }
    panic!("the answer never started");
}

#[test]
fn sigterm_tells_the_sockets_lets_the_answer_finish_and_exits_zero() {
    let claude = FakeClaude::start(vec![slow_answer(2)]);
    let mut kv = service(&claude, "20");
    let mut ws = connect(kv.port, "term", None).unwrap();
    started(&mut ws, &claude);
    kv.signal("TERM");
    let (errors, code) = until_close(&mut ws);
    assert_eq!(code, Some(CloseCode::Away));
    assert!(
        errors
            .iter()
            .any(|e| e["message"].as_str().unwrap().contains("stopping")),
        "{errors:?}"
    );
    let status = kv.wait_exit(LONG).expect("the service did not exit");
    assert_eq!(status.code(), Some(0));
    let log = kv.log();
    let stopped: Vec<&str> = log.lines().filter(|l| l.contains("stopped:")).collect();
    assert_eq!(stopped.len(), 1, "{log}");
    assert!(
        stopped[0].contains("1 answers finished, 0 interrupted"),
        "{log}"
    );
}

#[test]
fn an_answer_past_the_grace_period_is_interrupted() {
    let claude = FakeClaude::start(vec![slow_answer(30)]);
    let mut kv = service(&claude, "1");
    let mut ws = connect(kv.port, "int", None).unwrap();
    started(&mut ws, &claude);
    let asked = Instant::now();
    kv.signal("INT");
    let status = kv.wait_exit(LONG).expect("the service did not exit");
    assert_eq!(status.code(), Some(0));
    assert!(
        asked.elapsed() < Duration::from_secs(10),
        "{:?}",
        asked.elapsed()
    );
    assert!(
        kv.log().contains("0 answers finished, 1 interrupted"),
        "{}",
        kv.log()
    );
    assert!(
        claude.wait_client_closed(0, LONG).is_some(),
        "Claude's request stayed open"
    );
}

#[test]
fn a_second_signal_stops_at_once() {
    let claude = FakeClaude::start(vec![slow_answer(30)]);
    let mut kv = service(&claude, "60");
    let mut ws = connect(kv.port, "twice", None).unwrap();
    started(&mut ws, &claude);
    kv.signal("TERM");
    assert!(kv.wait_log("a second signal stops at once", LONG));
    let asked = Instant::now();
    kv.signal("TERM");
    let status = kv.wait_exit(LONG).expect("the service did not exit");
    assert_eq!(status.code(), Some(128 + 15));
    assert!(asked.elapsed() < Duration::from_secs(5));
}
