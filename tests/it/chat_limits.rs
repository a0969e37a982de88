//! What a chat client can make the service hold, and the conversation
//! routes: the budgets of the store and of running answers, each refusal a
//! clear answer, sent to the real binary.

use crate::support::fake_claude::{FakeClaude, Reply, sse};
use crate::support::kv::{Kv, json, raw_request, request};
use crate::support::ws_client::{connect, texts};
use serde_json::{Value, json};
use std::time::Duration;

const LONG: Duration = Duration::from_secs(20);

/// The service in offline mode (no key) over the fixture documents.
fn offline(extra: &[(&str, &str)]) -> Kv {
    Kv::start_with_docs(extra)
}

/// The service with a fake Claude.
fn with_claude(claude: &FakeClaude, extra: &[(&str, &str)]) -> Kv {
    let url = claude.url();
    let mut env = vec![
        ("ANTHROPIC_API_KEY", "sk-ant-test"),
        ("ANTHROPIC_BASE_URL", &url),
    ];
    env.extend_from_slice(extra);
    Kv::start_with_docs(&env)
}

/// A Claude answer that starts, then stays silent for a long time (cut
/// short when the service closes the connection).
fn hanging_answer() -> Reply {
    Reply::sse(sse::message_start() + &sse::text_start(0) + &sse::text_delta(0, "Thinking"))
        .pause(Duration::from_secs(60))
}

fn ask_and_wait(kv: &Kv, id: &str, text: &str) -> Vec<Value> {
    let mut ws = connect(kv.port, id, None).unwrap();
    ws.ask(text);
    ws.until_done()
}

fn list(kv: &Kv, query: &str) -> (u16, Value) {
    let (status, body) = kv.get(&format!("/api/conversations{query}"));
    (status, json(&body))
}

#[test]
fn conversations_are_listed_newest_first_and_deleted() {
    let kv = offline(&[]);
    ask_and_wait(&kv, "first", "How do I install it?");
    ask_and_wait(&kv, "second", "What is the retention policy?");
    let (status, all) = list(&kv, "");
    assert_eq!(status, 200);
    let all = all.as_array().unwrap().clone();
    assert_eq!(all.len(), 2, "{all:?}");
    assert_eq!(all[0]["id"], "second");
    assert_eq!(all[0]["title"], "What is the retention policy?");
    assert_eq!(all[0]["message_count"], 2);
    assert!(all[0]["last_activity"].as_str().unwrap().ends_with('Z'));
    assert_eq!(all[1]["id"], "first");
    assert_eq!(list(&kv, "?limit=1").1.as_array().unwrap().len(), 1);
    assert_eq!(list(&kv, "?limit=abc").0, 400);
    assert_eq!(list(&kv, "?limit=0").0, 400);

    let (status, body) = request(&kv.base, "DELETE", "/api/conversations/first", &[], None);
    assert_eq!(status, 200);
    assert_eq!(json(&body), json!({"id": "first", "deleted": true}));
    let (status, body) = request(&kv.base, "DELETE", "/api/conversations/first", &[], None);
    assert_eq!(status, 404);
    assert!(json(&body)["detail"].is_string());
    assert_eq!(kv.get("/api/conversations/first/messages").0, 404);
    assert_eq!(list(&kv, "").1.as_array().unwrap().len(), 1);
    // A new conversation from REST shows up (empty title until a message).
    let (_, body) = request(&kv.base, "POST", "/api/conversations", &[], None);
    let id = json(&body)["id"].as_str().unwrap().to_string();
    let (_, all) = list(&kv, "");
    assert_eq!(all[0]["id"], id.as_str());
    assert_eq!(all[0]["message_count"], 0);
}

#[test]
fn deleting_a_conversation_cancels_its_running_answer() {
    let claude = FakeClaude::start(vec![hanging_answer()]);
    let kv = with_claude(&claude, &[]);
    let mut ws = connect(kv.port, "doomed", None).unwrap();
    ws.ask("a long question");
    claude.wait_for_requests(1, LONG);
    assert_eq!(ws.next_of("text")["content"], "Thinking");
    let (status, _) = request(&kv.base, "DELETE", "/api/conversations/doomed", &[], None);
    assert_eq!(status, 200);
    ws.next_of("done");
    assert!(
        claude.wait_client_closed(0, LONG).is_some(),
        "the upstream request was not closed"
    );
    // The socket stays open on a deleted conversation: it says so.
    ws.ask("again?");
    let e = ws.next_of("error");
    assert!(e["message"].as_str().unwrap().contains("deleted"), "{e}");
}

#[test]
fn a_message_over_the_size_limit_gets_an_error_and_the_socket_stays_usable() {
    let kv = offline(&[("MAX_MESSAGE_BYTES", "100")]);
    let mut ws = connect(kv.port, "big", None).unwrap();
    ws.ask(&"x".repeat(101));
    let e = ws.next_of("error");
    assert!(
        e["message"].as_str().unwrap().contains("MAX_MESSAGE_BYTES"),
        "{e}"
    );
    ws.send(json!({"type": "ping"}));
    assert_eq!(ws.next_of("pong")["type"], "pong");
    ws.ask(&"retention ".repeat(10));
    let events = ws.until_done();
    assert!(texts(&events).contains("No language model is configured"));
    // Only the accepted message was stored.
    let (_, msgs) = kv.get("/api/conversations/big/messages");
    assert_eq!(json(&msgs).as_array().unwrap().len(), 2);
}

#[test]
fn running_answers_are_capped_for_the_whole_service() {
    let claude = FakeClaude::start(vec![hanging_answer()]);
    let kv = with_claude(&claude, &[("MAX_RUNNING_ANSWERS", "1")]);
    let mut a = connect(kv.port, "a", None).unwrap();
    a.ask("first");
    claude.wait_for_requests(1, LONG);
    let mut b = connect(kv.port, "b", None).unwrap();
    b.ask("second");
    let e = b.next_of("error");
    assert!(e["message"].as_str().unwrap().contains("busy"), "{e}");
    // The refused message was not stored, and nothing reached Claude.
    assert_eq!(json(&kv.get("/api/conversations/b/messages").1), json!([]));
    assert_eq!(claude.requests().len(), 1);
    a.send(json!({"type": "cancel"}));
    a.next_of("done");
    claude.push(Reply::sse(sse::text_turn(&["Now it fits."])));
    // The place is given back when the first answer's thread ends.
    assert!(kv.wait_until(LONG, |_| {
        b.ask("second, again");
        loop {
            let e = b.next(LONG).expect("an event");
            match e["type"].as_str() {
                Some("done") => return true,
                Some("error") => return false,
                _ => {}
            }
        }
    }));
}

#[test]
fn the_conversation_cap_holds_while_sockets_hold_them() {
    let kv = offline(&[("MAX_CONVERSATIONS", "2")]);
    let one = connect(kv.port, "one", None).unwrap();
    let _two = connect(kv.port, "two", None).unwrap();
    assert_eq!(connect(kv.port, "three", None).err(), Some(503));
    let (status, body) = request(&kv.base, "POST", "/api/conversations", &[], None);
    assert_eq!(status, 503);
    assert!(
        json(&body)["detail"]
            .as_str()
            .unwrap()
            .contains("conversations")
    );
    assert_eq!(list(&kv, "").1.as_array().unwrap().len(), 2);
    // Once a socket closes, its idle conversation can be evicted.
    drop(one);
    assert!(kv.wait_until(LONG, |kv| connect(kv.port, "three", None).is_ok()));
    assert_eq!(list(&kv, "").1.as_array().unwrap().len(), 2);
}

#[test]
fn fire_and_forget_messages_cannot_start_unbounded_answers() {
    // Attack: open a socket, send a message, close; many times, while
    // Claude answers slowly. Answers outlive their sockets, so without a
    // process-wide cap each would keep a thread and an upstream request.
    let mut script = vec![Reply::sse(sse::text_turn(&["warm"]))];
    script.extend((0..8).map(|_| hanging_answer()));
    let claude = FakeClaude::start(script);
    let kv = with_claude(
        &claude,
        &[("MAX_RUNNING_ANSWERS", "4"), ("MAX_CONVERSATIONS", "16")],
    );
    // One whole chat first, so the baseline has every thread a served
    // service keeps.
    ask_and_wait(&kv, "warm-up", "hello");
    let baseline = kv.settled(Duration::from_secs(1)).threads as usize;
    let mut peak = 0;
    for i in 0..150 {
        if let Ok(mut ws) = connect(kv.port, &format!("hit-{i}"), None) {
            ws.ask("spend the key");
        }
        peak = peak.max(kv.threads());
    }
    // Four answers run; every other message was refused.
    claude.wait_for_requests(5, LONG);
    assert_eq!(claude.requests().len(), 5);
    let (_, all) = list(&kv, "?limit=200");
    assert!(all.as_array().unwrap().len() <= 16, "{all}");
    assert!(
        peak <= baseline + 4 + 24,
        "threads grew from {baseline} to {peak}"
    );
    // Delete the running ones: their threads end, and the service is back
    // to where it started.
    for c in all.as_array().unwrap() {
        request(
            &kv.base,
            "DELETE",
            &format!("/api/conversations/{}", c["id"].as_str().unwrap()),
            &[],
            None,
        );
    }
    assert!(
        kv.wait_until(LONG, |kv| kv.threads() <= baseline),
        "threads {} > baseline {baseline}",
        kv.threads()
    );
    assert!(claude.wait_client_closed(4, LONG).is_some());
    assert_eq!(kv.get("/health").0, 200);
}

#[test]
fn history_is_kept_within_its_byte_budget() {
    let kv = offline(&[("MAX_HISTORY_BYTES", "20000")]);
    let mut ws = connect(kv.port, "long", None).unwrap();
    for i in 0..8 {
        ws.ask(&format!("question {i} {}", "retention ".repeat(400)));
        ws.until_done();
    }
    let (_, msgs) = kv.get("/api/conversations/long/messages");
    let msgs = json(&msgs);
    let msgs = msgs.as_array().unwrap();
    assert!(
        msgs.len() < 16,
        "nothing was dropped: {} messages",
        msgs.len()
    );
    assert_eq!(msgs[0]["role"], "user", "history starts with a question");
    let last_question = &msgs[msgs.len() - 2]["content"];
    assert!(last_question.as_str().unwrap().starts_with("question 7"));
    let stored: usize = msgs
        .iter()
        .map(|m| m["content"].as_str().unwrap().len())
        .sum();
    assert!(stored <= 20000, "{stored} bytes kept");
}

#[test]
fn a_bad_websocket_version_is_a_json_426() {
    let kv = offline(&[]);
    let (status, raw) = raw_request(
        kv.port,
        b"GET /ws/chat/v HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n",
    );
    assert_eq!(status, 426);
    let lower = raw.to_ascii_lowercase();
    assert!(lower.contains("sec-websocket-version: 13"), "{raw}");
    assert!(lower.contains("content-type: application/json"), "{raw}");
    assert!(raw.contains("\"detail\""), "{raw}");
    // Ids are bounded.
    let long = "x".repeat(200);
    assert_eq!(connect(kv.port, &long, None).err(), Some(400));
    assert_eq!(
        kv.get(&format!("/api/conversations/{long}/messages")).0,
        400
    );
}
