//! Access control, against the real binary: API tokens on every route, the
//! Host rule (DNS rebinding), safe defaults off loopback, conversations that
//! belong to their token, rate limits and the daily Claude token budget.

use crate::support::fake_claude::{FakeClaude, Reply, sse};
use crate::support::kv::{self, Kv, TempDir, json, request_full};
use crate::support::ws_client::{connect_with, texts};
use serde_json::json;
use std::process::Command;
use std::time::Duration;

const ALICE: &str = "alice-0123456789abcdef";
const BOB: &str = "bob-fedcba9876543210xyz";
const LONG: Duration = Duration::from_secs(20);

fn with_tokens(extra: &[(&str, &str)]) -> Kv {
    let tokens = format!("{ALICE},{BOB}");
    let mut env = vec![("API_TOKENS", tokens.as_str())];
    env.extend_from_slice(extra);
    Kv::start_with_docs(&env)
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

fn call(
    kv: &Kv,
    method: &str,
    path: &str,
    token: Option<&str>,
) -> (u16, Vec<(String, String)>, String) {
    let auth = token.map(bearer);
    let headers: Vec<(&str, &str)> = auth.iter().map(|a| ("Authorization", a.as_str())).collect();
    let body = (method == "POST").then_some(if path == "/mcp" { INIT } else { "" });
    let mut all = headers;
    if path == "/mcp" {
        all.push(("Content-Type", "application/json"));
        all.push(("Accept", "application/json, text/event-stream"));
    }
    request_full(&kv.base, method, path, &all, body)
}

const INIT: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#;

fn header<'a>(h: &'a [(String, String)], name: &str) -> Option<&'a str> {
    h.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

#[test]
fn every_route_needs_a_token_and_a_refusal_is_the_same_401() {
    let kv = with_tokens(&[]);
    let routes = [
        ("GET", "/api/repos"),
        ("GET", "/api/repos/svc/tree"),
        ("GET", "/api/repos/svc/files/README.md"),
        ("GET", "/api/conversations"),
        ("POST", "/api/conversations"),
        ("GET", "/api/conversations/x/messages"),
        ("DELETE", "/api/conversations/x"),
        ("POST", "/mcp"),
    ];
    let mut refusal = None;
    for (method, path) in routes {
        for token in [None, Some("wrong-token-0123456789")] {
            let (status, h, body) = call(&kv, method, path, token);
            assert_eq!(status, 401, "{method} {path} with {token:?}: {body}");
            assert_eq!(
                header(&h, "www-authenticate"),
                Some("Bearer realm=\"knowledge-vault\""),
                "{method} {path}"
            );
            // Missing and wrong look the same.
            assert_eq!(*refusal.get_or_insert(body.clone()), body);
        }
        let (status, _, body) = call(&kv, method, path, Some(ALICE));
        assert_ne!(status, 401, "{method} {path} with a token: {body}");
        assert_ne!(status, 421);
    }
    // The WebSocket handshake: 401 before the upgrade, with the header or
    // the RFC 6750 query parameter.
    assert_eq!(connect_with(kv.port, "/ws/chat/w", &[]).err(), Some(401));
    assert_eq!(
        connect_with(kv.port, "/ws/chat/w?access_token=nope", &[]).err(),
        Some(401)
    );
    let alice = bearer(ALICE);
    assert!(connect_with(kv.port, "/ws/chat/w", &[("Authorization", &alice)]).is_ok());
    let mut ws = connect_with(kv.port, &format!("/ws/chat/w?access_token={ALICE}"), &[]).unwrap();
    ws.ask("retention");
    assert!(texts(&ws.until_done()).contains("No language model"));
    // No token, no secret in the log, even where the client put it.
    assert!(!kv.log().contains(ALICE));
}

#[test]
fn health_shows_only_its_status_without_a_token() {
    let kv = with_tokens(&[]);
    let (status, _, body) = call(&kv, "GET", "/health", None);
    assert_eq!(status, 200);
    let h = json(&body);
    assert!(h["status"].is_string());
    assert_eq!(h.as_object().unwrap().len(), 1, "{h}");
    let (_, _, body) = call(&kv, "GET", "/health", Some("wrong-token-0123456789"));
    assert_eq!(json(&body).as_object().unwrap().len(), 1);
    let (_, _, body) = call(&kv, "GET", "/health", Some(BOB));
    assert!(json(&body)["services"]["mcp_server"].is_object(), "{body}");
    // The HEALTHCHECK command uses the configured token.
    let tokens = format!("{ALICE},{BOB}");
    let out = kv.health_command(&[("API_TOKENS", &tokens)]);
    assert!(out.status.success(), "{out:?}");
}

#[test]
fn conversations_belong_to_the_token_that_made_them() {
    let claude = FakeClaude::start(vec![
        Reply::sse(sse::text_turn(&["For Alice."])),
        Reply::sse(
            sse::message_start() + &sse::text_start(0) + &sse::text_delta(0, "Alice's secret"),
        )
        .pause(Duration::from_secs(60)),
        Reply::sse(sse::text_turn(&["For Bob."])),
    ]);
    let url = claude.url();
    let kv = with_tokens(&[
        ("ANTHROPIC_API_KEY", "sk-ant-x"),
        ("ANTHROPIC_BASE_URL", &url),
    ]);
    let (alice, bob) = (bearer(ALICE), bearer(BOB));
    let mut a = connect_with(kv.port, "/ws/chat/shared-id", &[("Authorization", &alice)]).unwrap();
    a.ask("first");
    a.until_done();
    a.ask("second, still running");
    assert_eq!(a.next_of("text")["content"], "Alice's secret");

    // Bob sees nothing of it: no history, no list entry, no delete...
    let (status, _, _) = call(
        &kv,
        "GET",
        "/api/conversations/shared-id/messages",
        Some(BOB),
    );
    assert_eq!(status, 404);
    let (_, _, list) = call(&kv, "GET", "/api/conversations", Some(BOB));
    assert_eq!(json(&list), json!([]));
    let (status, _, _) = call(&kv, "DELETE", "/api/conversations/shared-id", Some(BOB));
    assert_eq!(status, 404);
    // ...and his socket on the same id is a conversation of his own: no
    // replay of Alice's running answer, and cancel finds nothing to stop.
    let mut b = connect_with(kv.port, "/ws/chat/shared-id", &[("Authorization", &bob)]).unwrap();
    b.send(json!({"type": "cancel"}));
    let e = b.next_of("error");
    assert!(e["message"].as_str().unwrap().contains("no answer"), "{e}");
    b.ask("mine");
    let events = b.until_done();
    assert!(!texts(&events).contains("Alice"), "{events:?}");
    assert_eq!(texts(&events), "For Bob.");

    // Alice still has hers, running.
    let (_, _, list) = call(&kv, "GET", "/api/conversations", Some(ALICE));
    assert_eq!(json(&list)[0]["id"], "shared-id");
    assert_eq!(json(&list)[0]["message_count"], 3);
    a.send(json!({"type": "cancel"}));
    a.next_of("done");
}

#[test]
fn foreign_hosts_are_misdirected_on_every_route() {
    let kv = Kv::start_with_docs(&[]);
    for host in ["evil.example", "evil.example:3001", "127.0.0.1.nip.io"] {
        for (method, path) in [("GET", "/api/repos"), ("GET", "/health"), ("POST", "/mcp")] {
            let (status, _, body) =
                request_full(&kv.base, method, path, &[("Host", host)], Some(INIT));
            assert_eq!(status, 421, "{method} {path} Host {host}: {body}");
            assert!(json(&body)["detail"].is_string());
        }
        assert_eq!(
            connect_with(kv.port, "/ws/chat/h", &[("Host", host)]).err(),
            Some(421)
        );
    }
    let port = kv.port;
    for host in [
        format!("localhost:{port}"),
        format!("127.0.0.1:{port}"),
        format!("[::1]:{port}"),
        "localhost".to_string(),
    ] {
        let (status, _, _) = request_full(&kv.base, "GET", "/api/repos", &[("Host", &host)], None);
        assert_eq!(status, 200, "{host}");
        assert!(
            connect_with(kv.port, "/ws/chat/h", &[("Host", &host)]).is_ok(),
            "{host}"
        );
    }
    let kv = Kv::start_with_docs(&[("ALLOWED_HOSTS", "vault.example.com")]);
    let (status, _, _) = request_full(
        &kv.base,
        "GET",
        "/api/repos",
        &[("Host", "vault.example.com")],
        None,
    );
    assert_eq!(status, 200);
}

#[test]
fn the_network_needs_a_token_unless_the_operator_says_otherwise() {
    let dir = TempDir::new("anon");
    let out = Command::new(kv::BIN)
        .current_dir(dir.path())
        .env_clear()
        .env("HOST", "0.0.0.0")
        .env("PORT", "0")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(
        err.contains("API_TOKENS") && err.contains("ALLOW_ANONYMOUS"),
        "{err}"
    );

    let kv = Kv::start(
        dir.path(),
        &[("HOST", "0.0.0.0"), ("ALLOW_ANONYMOUS", "true")],
    );
    assert_eq!(kv.get("/api/repos").0, 200);
    let kv = Kv::start(dir.path(), &[("HOST", "0.0.0.0"), ("API_TOKENS", ALICE)]);
    assert_eq!(kv.get("/api/repos").0, 401);
}

#[test]
fn a_burst_over_the_rate_limit_is_told_when_to_retry() {
    let kv = Kv::start_with_docs(&[("RATE_LIMIT_REQUESTS", "5"), ("RATE_LIMIT_MESSAGES", "2")]);
    let statuses: Vec<(u16, Vec<(String, String)>)> = (0..8)
        .map(|_| {
            let (s, h, _) = request_full(&kv.base, "GET", "/api/repos", &[], None);
            (s, h)
        })
        .collect();
    assert!(statuses[..5].iter().all(|(s, _)| *s == 200), "{statuses:?}");
    let (status, h) = &statuses[7];
    assert_eq!(*status, 429);
    let retry: u64 = header(h, "retry-after").unwrap().parse().unwrap();
    assert!((1..=12).contains(&retry), "{retry}");

    // Chat messages have their own, lower limit (the upgrade counts as a
    // request, so wait for the request bucket to allow one).
    let mut ws = None;
    assert!(kv.wait_until(LONG, |kv| {
        ws = connect_with(kv.port, "/ws/chat/r", &[]).ok();
        ws.is_some()
    }));
    let mut ws = ws.unwrap();
    for _ in 0..2 {
        ws.ask("retention");
        ws.until_done();
    }
    ws.ask("one more");
    let e = ws.next_of("error");
    assert!(
        e["message"].as_str().unwrap().contains("too many messages"),
        "{e}"
    );
    assert!(e["retryAfter"].as_u64().unwrap() >= 1, "{e}");
}

#[test]
fn the_daily_budget_switches_to_offline_answers_and_says_why() {
    // Each fake answer reports 25 input and 15 output tokens.
    let claude = FakeClaude::start(vec![Reply::sse(sse::text_turn(&["From Claude."]))]);
    let url = claude.url();
    let kv = Kv::start_with_docs(&[
        ("ANTHROPIC_API_KEY", "sk-ant-x"),
        ("ANTHROPIC_BASE_URL", &url),
        ("CLAUDE_DAILY_TOKEN_BUDGET", "40"),
    ]);
    let mut ws = connect_with(kv.port, "/ws/chat/b", &[]).unwrap();
    ws.ask("retention policy?");
    assert_eq!(texts(&ws.until_done()), "From Claude.");
    ws.ask("retention policy, again?");
    let events = ws.until_done();
    let text = texts(&events);
    assert!(text.contains("CLAUDE_DAILY_TOKEN_BUDGET"), "{text}");
    assert!(
        text.contains("Retention"),
        "the search results follow: {text}"
    );
    assert_eq!(claude.requests().len(), 1, "Claude was asked again");
    let h = json(&kv.get("/health").1);
    assert_eq!(
        h["services"]["claude_api"]["daily_token_budget"]["spent_today"],
        40
    );
    assert_eq!(h["services"]["claude_api"]["mode"], "offline");
}

#[test]
fn query_strings_of_configured_urls_never_show() {
    // An unreachable Claude whose URL carries a secret in its query.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = dead.local_addr().unwrap().port();
    drop(dead);
    let url = format!("http://127.0.0.1:{port}/proxy?key=QUERYSECRET123");
    let kv = Kv::start_with_docs(&[
        ("ANTHROPIC_API_KEY", "sk-ant-x"),
        ("ANTHROPIC_BASE_URL", &url),
        ("LOG_LEVEL", "trace"),
    ]);
    let mut ws = connect_with(kv.port, "/ws/chat/q", &[]).unwrap();
    ws.ask("hello");
    let events = ws.until_done();
    let error = events
        .iter()
        .find(|e| e["type"] == "error")
        .expect("an error event");
    let message = error["message"].as_str().unwrap();
    assert!(message.contains("key=***"), "{message}");
    let everything = format!("{events:?}{}{}", kv.get("/health").1, kv.log());
    assert!(!everything.contains("QUERYSECRET123"), "{everything}");
}
