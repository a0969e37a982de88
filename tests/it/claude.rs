//! The Claude client against a fake Messages API that replays exact SSE
//! byte streams: assembly, retries, errors, timeouts and cancellation.

use crate::support::fake_claude;
use crate::support::model_client::{self, Outcome, content, ok};

use fake_claude::{FakeClaude, Reply, sse};
use knowledge_vault::chat::claude::{ClaudeClient, ClaudeConfig};
use knowledge_vault::chat::model::{
    LanguageModel, ModelError, ModelReply, ModelRequest, StopReason,
};
use knowledge_vault::config::Config;
use knowledge_vault::conversations::live::Cancel;
use knowledge_vault::messages::Message;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

const KEY: &str = "sk-ant-test-0123456789abcdef";

fn config(base_url: &str, idle: Duration) -> ClaudeConfig {
    let vars = HashMap::from([("ANTHROPIC_API_KEY".to_string(), KEY.to_string())]);
    let mut c = ClaudeConfig::from_config(&Config::from_map(&vars).unwrap()).unwrap();
    c.base_url = base_url.to_string();
    c.model = "claude-test".into();
    c.max_tokens = 1024;
    c.idle_timeout = idle;
    c.connect_timeout = Duration::from_secs(2);
    c
}

fn stream_with(base_url: &str, idle: Duration, cancel: &Cancel) -> Outcome {
    let client = ClaudeClient::new(config(base_url, idle));
    model_client::ask(&client, "How do I configure the collector?", cancel)
}

fn stream(fake: &FakeClaude) -> Outcome {
    stream_with(&fake.url(), Duration::from_secs(5), &Cancel::default())
}

fn interrupted(o: &Outcome) -> (&str, &ModelReply) {
    match &o.result {
        Err(ModelError::Interrupted { message, partial }) => (message, partial),
        other => panic!("expected Interrupted, got {other:?}"),
    }
}

fn gap(fake: &FakeClaude, i: usize) -> Duration {
    let r = fake.requests();
    r[i + 1].at - r[i].at
}

#[test]
fn text_only_forwards_each_delta_in_order() {
    let fake = FakeClaude::start(vec![Reply::sse(sse::text_turn(&[
        "The collector ",
        "reads ",
        "config.yaml.",
    ]))]);
    let o = stream(&fake);
    let msg = ok(&o);
    assert_eq!(o.texts, ["The collector ", "reads ", "config.yaml."]);
    assert_eq!(
        content(msg),
        vec![json!({"type":"text","text":"The collector reads config.yaml."})]
    );
    assert_eq!(msg.stop_reason, Some(StopReason::EndTurn));
    assert!(!msg.dropped_tool_use);
    assert_eq!(fake.requests().len(), 1);
}

#[test]
fn text_then_tool_use() {
    let input = json!({"query":"collector configuration","limit":5});
    let fake = FakeClaude::start(vec![Reply::sse(sse::tool_turn(
        Some("Let me search."),
        &[("toolu_01A", "search_documentation", input.clone())],
    ))]);
    let o = stream(&fake);
    let msg = ok(&o);
    assert_eq!(o.texts, ["Let me search."]);
    assert_eq!(
        content(msg),
        vec![
            json!({"type":"text","text":"Let me search."}),
            json!({"type":"tool_use","id":"toolu_01A","name":"search_documentation","input":input}),
        ]
    );
    assert_eq!(msg.stop_reason, Some(StopReason::ToolUse));
}

#[test]
fn parallel_tool_uses_are_routed_by_index() {
    let body = sse::message_start()
        + &sse::tool_start(0, "toolu_A", "read_file")
        + &sse::tool_start(1, "toolu_B", "search_documentation")
        + &sse::json_delta(1, "{\"query\": \"sam")
        + &sse::json_delta(0, "{\"repo\": \"docs\", ")
        + &sse::json_delta(1, "pling\"}")
        + &sse::json_delta(0, "\"path\": \"README.md\"}")
        + &sse::block_stop(1)
        + &sse::block_stop(0)
        + &sse::message_end("tool_use");
    let fake = FakeClaude::start(vec![Reply::sse(body)]);
    let o = stream(&fake);
    let msg = ok(&o);
    assert!(o.texts.is_empty());
    assert_eq!(
        content(msg),
        vec![
            json!({"type":"tool_use","id":"toolu_A","name":"read_file",
                "input":{"repo":"docs","path":"README.md"}}),
            json!({"type":"tool_use","id":"toolu_B","name":"search_documentation",
                "input":{"query":"sampling"}}),
        ]
    );
}

/// The JSON fragments split a string token, and the bytes of the stream are
/// split across two TCP writes in the middle of a multi-byte character (in a
/// tool input and in a text delta).
#[test]
fn input_json_split_mid_token_and_mid_utf8_character() {
    let body = sse::message_start()
        + &sse::text_start(0)
        + &sse::text_delta(0, "Voilà")
        + &sse::block_stop(0)
        + &sse::tool_start(1, "toolu_U", "read_file")
        + &sse::json_delta(1, "")
        + &sse::json_delta(1, "{\"path\": \"docs/caf")
        + &sse::json_delta(1, "é/日本.md\"}")
        + &sse::block_stop(1)
        + &sse::message_end("tool_use");
    let bytes = body.into_bytes();
    let cut_in = |needle: &str, from: usize| {
        let n = needle.as_bytes();
        from + bytes[from..].windows(n.len()).position(|w| w == n).unwrap() + 1
    };
    let a = cut_in("à", 0); // inside the 2-byte "à"
    let b = cut_in("日", a); // inside the 3-byte "日"
    assert!(std::str::from_utf8(&bytes[..a]).is_err());
    let chunks = vec![
        bytes[..a].to_vec(),
        bytes[a..b].to_vec(),
        bytes[b..].to_vec(),
    ];
    let fake = FakeClaude::start(vec![Reply::sse_slow(chunks, Duration::from_millis(40))]);
    let o = stream(&fake);
    let msg = ok(&o);
    assert_eq!(o.texts, ["Voilà"]);
    assert_eq!(
        content(msg)[1],
        json!({"type":"tool_use","id":"toolu_U","name":"read_file",
            "input":{"path":"docs/café/日本.md"}})
    );
}

#[test]
fn empty_tool_input_is_an_empty_object() {
    let body = sse::message_start()
        + &sse::tool_start(0, "toolu_E", "list_repositories")
        + &sse::json_delta(0, "")
        + &sse::block_stop(0)
        + &sse::tool_start(1, "toolu_F", "list_repositories")
        + &sse::block_stop(1)
        + &sse::message_end("tool_use");
    let fake = FakeClaude::start(vec![Reply::sse(body)]);
    let msg = ok(&stream(&fake)).clone();
    assert_eq!(content(&msg).len(), 2);
    for block in &content(&msg) {
        assert_eq!(block["input"], json!({}));
    }
}

#[test]
fn pings_and_unknown_events_are_skipped() {
    let body = sse::ping()
        + &sse::message_start()
        + &sse::ping()
        + &sse::text_start(0)
        + &sse::text_delta(0, "a")
        + &sse::ping()
        + &sse::event("future_event", &json!({"type":"future_event","x":1}))
        + ": a comment line\n\n"
        + &sse::text_delta(0, "b")
        + &sse::block_stop(0)
        + &sse::ping()
        + &sse::message_end("end_turn");
    let fake = FakeClaude::start(vec![Reply::sse(body)]);
    let o = stream(&fake);
    assert_eq!(o.texts, ["a", "b"]);
    assert_eq!(content(ok(&o)), vec![json!({"type":"text","text":"ab"})]);
}

#[test]
fn crlf_line_ends() {
    let body = sse::text_turn(&["one ", "two"]).replace('\n', "\r\n");
    assert!(body.contains("\r\n\r\n"));
    let fake = FakeClaude::start(vec![Reply::sse(body)]);
    let o = stream(&fake);
    assert_eq!(o.texts, ["one ", "two"]);
    assert_eq!(
        content(ok(&o)),
        vec![json!({"type":"text","text":"one two"})]
    );
}

#[test]
fn thinking_blocks_are_kept_for_echoing() {
    let thinking = sse::event(
        "content_block_start",
        &json!({"type":"content_block_start","index":0,
            "content_block":{"type":"thinking","thinking":"","signature":""}}),
    ) + &sse::event(
        "content_block_delta",
        &json!({"type":"content_block_delta","index":0,
            "delta":{"type":"thinking_delta","thinking":"Search first."}}),
    ) + &sse::event(
        "content_block_delta",
        &json!({"type":"content_block_delta","index":0,
            "delta":{"type":"signature_delta","signature":"EqQBCgIYAh"}}),
    ) + &sse::block_stop(0);
    let body = sse::message_start()
        + &thinking
        + &sse::text_start(1)
        + &sse::text_delta(1, "Hi")
        + &sse::block_stop(1)
        + &sse::message_end("end_turn");
    let fake = FakeClaude::start(vec![Reply::sse(body)]);
    let o = stream(&fake);
    assert_eq!(o.texts, ["Hi"]);
    assert_eq!(
        content(ok(&o))[0],
        json!({"type":"thinking","thinking":"Search first.","signature":"EqQBCgIYAh"})
    );
}

#[test]
fn error_event_mid_stream_keeps_the_partial_answer() {
    let body = sse::message_start()
        + &sse::text_start(0)
        + &sse::text_delta(0, "Partial ")
        + &sse::text_delta(0, "answer")
        + &sse::error("overloaded_error", "Overloaded");
    let fake = FakeClaude::start(vec![Reply::sse(body)]);
    let o = stream(&fake);
    let (message, partial) = interrupted(&o);
    assert!(message.contains("overloaded_error"), "{message}");
    assert!(message.contains("Overloaded"), "{message}");
    assert_eq!(
        content(partial),
        vec![json!({"type":"text","text":"Partial answer"})]
    );
    // Text was shown: a retry would repeat it.
    assert_eq!(fake.requests().len(), 1);
}

#[test]
fn error_event_before_any_output_is_retried() {
    let first = sse::message_start() + &sse::error("overloaded_error", "Overloaded");
    let fake = FakeClaude::start(vec![
        Reply::sse(first),
        Reply::sse(sse::text_turn(&["fine"])),
    ]);
    let o = stream(&fake);
    assert_eq!(o.texts, ["fine"]);
    assert_eq!(fake.requests().len(), 2);
    // No server delay here: the SDK backoff, 375..500 ms.
    let g = gap(&fake, 0);
    assert!(g >= Duration::from_millis(370), "{g:?}");
}

#[test]
fn overloaded_529_then_success_honours_retry_after_ms() {
    let fake = FakeClaude::start(vec![
        Reply::error(529, "overloaded_error", "Overloaded").header("retry-after-ms", "60"),
        Reply::sse(sse::text_turn(&["ok"])),
    ]);
    let o = stream(&fake);
    assert_eq!(content(ok(&o)), vec![json!({"type":"text","text":"ok"})]);
    assert_eq!(fake.requests().len(), 2);
    let g = gap(&fake, 0);
    // 60 ms asked; the default backoff would be at least 375 ms.
    assert!(
        g >= Duration::from_millis(60) && g < Duration::from_millis(350),
        "{g:?}"
    );
    assert_eq!(fake.requests()[0].body, fake.requests()[1].body);
}

#[test]
fn rate_limit_429_honours_retry_after_seconds() {
    let fake = FakeClaude::start(vec![
        Reply::error(
            429,
            "rate_limit_error",
            "Number of requests has exceeded your rate limit",
        )
        .header("retry-after", "1"),
        Reply::sse(sse::text_turn(&["ok"])),
    ]);
    let o = stream(&fake);
    ok(&o);
    assert_eq!(fake.requests().len(), 2);
    let g = gap(&fake, 0);
    assert!(g >= Duration::from_millis(990), "{g:?}");
}

#[test]
fn gives_up_after_two_retries() {
    let overloaded =
        || Reply::error(529, "overloaded_error", "Overloaded").header("retry-after-ms", "20");
    let fake = FakeClaude::start(vec![overloaded(), overloaded(), overloaded(), overloaded()]);
    let o = stream(&fake);
    match &o.result {
        Err(ModelError::Http { status, message }) => {
            assert_eq!(*status, 529);
            assert!(message.contains("overloaded"), "{message}");
            assert!(message.contains("3 attempts"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(fake.requests().len(), 3);
}

#[test]
fn x_should_retry_false_forbids_a_retry() {
    let fake = FakeClaude::start(vec![
        Reply::error(500, "api_error", "Internal server error").header("x-should-retry", "false"),
        Reply::sse(sse::text_turn(&["not reached"])),
    ]);
    let o = stream(&fake);
    match &o.result {
        Err(ModelError::Http { status, message }) => {
            assert_eq!(*status, 500);
            assert!(message.contains("Internal server error"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(fake.requests().len(), 1);
}

#[test]
fn x_should_retry_true_forces_a_retry() {
    let fake = FakeClaude::start(vec![
        Reply::error(400, "invalid_request_error", "transient")
            .header("x-should-retry", "true")
            .header("retry-after-ms", "10"),
        Reply::sse(sse::text_turn(&["ok"])),
    ]);
    ok(&stream(&fake));
    assert_eq!(fake.requests().len(), 2);
}

#[test]
fn invalid_key_401_is_clear_and_never_shows_the_key() {
    // A gateway that echoes the key back must not make us show it.
    let fake = FakeClaude::start(vec![Reply::error(
        401,
        "authentication_error",
        &format!("invalid x-api-key {KEY}"),
    )]);
    let o = stream(&fake);
    match &o.result {
        Err(ModelError::Http { status, message }) => {
            assert_eq!(*status, 401);
            assert!(
                message.starts_with("Claude API key is invalid (401 authentication_error)"),
                "{message}"
            );
            assert!(!message.contains(KEY), "{message}");
            assert!(!format!("{:?}", o.result).contains(KEY));
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(fake.requests().len(), 1, "401 is not retried");
}

#[test]
fn max_tokens_drops_the_cut_off_tool_use() {
    let body = sse::message_start()
        + &sse::text_start(0)
        + &sse::text_delta(0, "I'll read it.")
        + &sse::block_stop(0)
        + &sse::tool_start(1, "toolu_CUT", "read_file")
        + &sse::json_delta(1, "{\"repo\": \"docs\", \"pa")
        + &sse::message_end("max_tokens");
    let fake = FakeClaude::start(vec![Reply::sse(body)]);
    let o = stream(&fake);
    let msg = ok(&o);
    assert_eq!(msg.stop_reason, Some(StopReason::MaxTokens));
    assert!(msg.dropped_tool_use);
    assert_eq!(
        content(msg),
        vec![json!({"type":"text","text":"I'll read it."})]
    );
    assert_eq!(msg.tool_uses().count(), 0);
}

#[test]
fn dropped_connection_mid_stream_is_an_interruption() {
    let head = sse::message_start() + &sse::text_start(0) + &sse::text_delta(0, "Hello");
    let fake = FakeClaude::start(vec![
        Reply::sse(head)
            .bytes(sse::tool_start(1, "toolu_X", "read_file"))
            .drop_connection(),
    ]);
    let o = stream(&fake);
    let (message, partial) = interrupted(&o);
    assert!(message.contains("connection"), "{message}");
    assert_eq!(
        content(partial),
        vec![json!({"type":"text","text":"Hello"})]
    );
    assert!(partial.dropped_tool_use);
    assert_eq!(fake.requests().len(), 1);
}

#[test]
fn eof_before_message_stop_is_an_interruption() {
    // A clean end of the body, but the message never finished.
    let body = sse::message_start()
        + &sse::text_start(0)
        + &sse::text_delta(0, "Hel")
        + &sse::block_stop(0)
        + &sse::event(
            "message_delta",
            &json!({"type":"message_delta","delta":{"stop_reason":"end_turn"}}),
        );
    let fake = FakeClaude::start(vec![Reply::sse(body)]);
    let o = stream(&fake);
    let (message, partial) = interrupted(&o);
    assert!(
        message.contains("before the answer was complete"),
        "{message}"
    );
    assert_eq!(content(partial), vec![json!({"type":"text","text":"Hel"})]);
}

#[test]
fn dropped_connection_before_any_output_is_retried() {
    let fake = FakeClaude::start(vec![
        Reply::sse(sse::message_start()).drop_connection(),
        Reply::sse(sse::text_turn(&["second try"])),
    ]);
    let o = stream(&fake);
    assert_eq!(o.texts, ["second try"]);
    assert_eq!(fake.requests().len(), 2);
}

#[test]
fn connection_refused_is_retried_then_reported() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let o = stream_with(
        &format!("http://127.0.0.1:{port}"),
        Duration::from_secs(5),
        &Cancel::default(),
    );
    match &o.result {
        Err(ModelError::Connection(m)) => assert!(m.contains("cannot reach Claude"), "{m}"),
        other => panic!("{other:?}"),
    }
    // Two backoffs: 375..500 ms, then 750..1000 ms.
    assert!(o.elapsed >= Duration::from_millis(1100), "{:?}", o.elapsed);
}

#[test]
fn slow_stream_longer_than_the_idle_timeout_succeeds() {
    let idle = Duration::from_millis(400);
    let mut chunks = vec![sse::message_start() + &sse::text_start(0)];
    for i in 0..8 {
        chunks.push(sse::text_delta(0, &format!("{i} ")));
    }
    chunks.push(sse::block_stop(0) + &sse::message_end("end_turn"));
    let fake = FakeClaude::start(vec![Reply::sse_slow(chunks, Duration::from_millis(150))]);
    let o = stream_with(&fake.url(), idle, &Cancel::default());
    ok(&o);
    assert_eq!(o.texts.len(), 8);
    assert!(o.elapsed > idle * 3, "{:?}", o.elapsed);
}

#[test]
fn a_stall_longer_than_the_idle_timeout_fails_quickly() {
    let idle = Duration::from_millis(300);
    let fake = FakeClaude::start(vec![
        Reply::sse(sse::message_start() + &sse::text_start(0) + &sse::text_delta(0, "So far"))
            .pause(Duration::from_secs(10))
            .bytes(sse::block_stop(0) + &sse::message_end("end_turn")),
    ]);
    let o = stream_with(&fake.url(), idle, &Cancel::default());
    let (message, partial) = interrupted(&o);
    assert!(message.contains("idle timeout"), "{message}");
    assert_eq!(
        content(partial),
        vec![json!({"type":"text","text":"So far"})]
    );
    assert!(
        o.elapsed >= idle && o.elapsed < idle + Duration::from_secs(1),
        "{:?}",
        o.elapsed
    );
    assert_eq!(fake.requests().len(), 1, "a stall is not retried");
}

#[test]
fn a_stall_before_any_output_is_a_connection_error() {
    let idle = Duration::from_millis(300);
    let fake = FakeClaude::start(vec![
        Reply::sse(sse::message_start()).pause(Duration::from_secs(10)),
    ]);
    let o = stream_with(&fake.url(), idle, &Cancel::default());
    assert!(
        matches!(&o.result, Err(ModelError::Connection(m)) if m.contains("idle timeout")),
        "{:?}",
        o.result
    );
    assert!(o.elapsed < idle + Duration::from_secs(1), "{:?}", o.elapsed);
}

#[test]
fn cancel_during_slow_deltas_returns_at_once_and_closes_upstream() {
    // Deltas every 50 ms, then a long silence: the cancel lands in it, so
    // only closing the socket (not the next event) can end the read in time.
    let mut chunks = vec![sse::message_start() + &sse::text_start(0)];
    for i in 0..5 {
        chunks.push(sse::text_delta(0, &format!("w{i} ")));
    }
    let fake = FakeClaude::start(vec![
        Reply::sse_slow(chunks, Duration::from_millis(50))
            .pause(Duration::from_secs(3))
            .bytes(sse::block_stop(0) + &sse::message_end("end_turn")),
    ]);
    let cancel = Arc::new(Cancel::default());
    let canceller = {
        let cancel = cancel.clone();
        thread::spawn(move || {
            thread::sleep(Duration::from_millis(500));
            let at = Instant::now();
            cancel.cancel();
            at
        })
    };
    let o = stream_with(&fake.url(), Duration::from_secs(5), &cancel);
    let returned = Instant::now();
    let cancelled_at = canceller.join().unwrap();
    match &o.result {
        Err(ModelError::Cancelled { partial }) => {
            let text = partial.text();
            assert_eq!(text, "w0 w1 w2 w3 w4 ");
            assert_eq!(text, o.texts.concat());
        }
        other => panic!("{other:?}"),
    }
    let delay = returned - cancelled_at;
    assert!(delay < Duration::from_millis(100), "{delay:?}");
    let closed = fake.wait_client_closed(0, Duration::from_secs(1));
    assert!(
        closed.is_some(),
        "the fake did not see the connection close"
    );
    assert!(closed.unwrap() - cancelled_at < Duration::from_millis(200));
}

#[test]
fn cancel_during_a_retry_backoff_returns_at_once() {
    let fake = FakeClaude::start(vec![
        Reply::error(529, "overloaded_error", "Overloaded"),
        Reply::sse(sse::text_turn(&["never"])),
    ]);
    let cancel = Arc::new(Cancel::default());
    let canceller = {
        let cancel = cancel.clone();
        thread::spawn(move || {
            thread::sleep(Duration::from_millis(150));
            let at = Instant::now();
            cancel.cancel();
            at
        })
    };
    let o = stream_with(&fake.url(), Duration::from_secs(5), &cancel);
    let delay = Instant::now() - canceller.join().unwrap();
    assert!(
        matches!(o.result, Err(ModelError::Cancelled { .. })),
        "{:?}",
        o.result
    );
    assert!(delay < Duration::from_millis(100), "{delay:?}");
    assert_eq!(fake.requests().len(), 1);
}

#[test]
fn cancel_before_the_request_sends_nothing() {
    let fake = FakeClaude::start(vec![Reply::sse(sse::text_turn(&["x"]))]);
    let cancel = Cancel::default();
    cancel.cancel();
    let o = stream_with(&fake.url(), Duration::from_secs(5), &cancel);
    assert!(matches!(o.result, Err(ModelError::Cancelled { .. })));
    thread::sleep(Duration::from_millis(50));
    assert!(fake.requests().is_empty());
}

#[test]
fn request_body_and_headers() {
    let fake = FakeClaude::start(vec![Reply::sse(sse::text_turn(&["ok"]))]);
    ok(&stream(&fake));
    let r = &fake.requests()[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.path, "/v1/messages");
    assert_eq!(r.header("x-api-key"), Some(KEY));
    assert_eq!(r.header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(r.header("content-type"), Some("application/json"));
    assert_eq!(r.header("accept"), Some("application/json"));
    for name in ["accept", "content-type", "x-api-key"] {
        let n = r.headers.iter().filter(|(k, _)| k == name).count();
        assert_eq!(n, 1, "{name} sent {n} times: {:?}", r.headers);
    }
    assert_eq!(
        r.body,
        json!({
            "model": "claude-test",
            "max_tokens": 1024,
            "system": "You answer from the documentation.",
            "messages": [{"role":"user","content":[{"type":"text","text":"How do I configure the collector?"}]}],
            "tools": [{
                "name": "search_documentation",
                "description": "Search the docs",
                "input_schema": {"type":"object","properties":{"query":{"type":"string"}},
                    "required":["query"]},
            }],
            "stream": true,
        })
    );
}

#[test]
fn no_tools_means_no_tools_field() {
    let fake = FakeClaude::start(vec![Reply::sse(sse::text_turn(&["ok"]))]);
    let client = ClaudeClient::new(config(&fake.url(), Duration::from_secs(5)));
    let wire = vec![
        json!({"role":"user","content":[{"type":"text","text":"q"}]}),
        json!({"role":"assistant","content":[{"type":"tool_use","id":"t","name":"n","input":{}}]}),
        json!({"role":"user","content":[{"type":"tool_result","tool_use_id":"t","content":"r"}]}),
    ];
    let history: Vec<Message> = serde_json::from_value(Value::Array(wire.clone())).unwrap();
    let request = ModelRequest {
        system: "",
        messages: &history,
        tools: &[],
    };
    client
        .stream(&request, &Cancel::default(), &mut |_| {})
        .unwrap();
    let body = &fake.requests()[0].body;
    assert!(body.get("tools").is_none(), "{body}");
    assert!(body.get("system").is_none(), "{body}");
    assert_eq!(body["messages"], Value::Array(wire));
}

#[test]
fn base_url_keeps_its_path_prefix() {
    let fake = FakeClaude::start(vec![
        Reply::sse(sse::text_turn(&["ok"])),
        Reply::sse(sse::text_turn(&["ok"])),
    ]);
    for base in [
        format!("{}/gateway/anthropic", fake.url()),
        format!("{}/gateway/anthropic/", fake.url()),
    ] {
        ok(&stream_with(
            &base,
            Duration::from_secs(5),
            &Cancel::default(),
        ));
    }
    let paths: Vec<String> = fake.requests().into_iter().map(|r| r.path).collect();
    assert_eq!(
        paths,
        [
            "/gateway/anthropic/v1/messages",
            "/gateway/anthropic/v1/messages"
        ]
    );
}

#[test]
fn a_huge_non_json_error_body_gives_a_short_message() {
    let page = format!("<html>{}</html>", "bad gateway ".repeat(100_000));
    let fake = FakeClaude::start(vec![
        Reply::raw(502, "text/html", page).header("x-should-retry", "false"),
    ]);
    let o = stream(&fake);
    match &o.result {
        Err(ModelError::Http { status, message }) => {
            assert_eq!(*status, 502);
            assert!(
                message.starts_with("Claude API server error (502): <html>bad gateway"),
                "{message}"
            );
            assert!(message.len() < 300, "{}", message.len());
        }
        other => panic!("{other:?}"),
    }
}
