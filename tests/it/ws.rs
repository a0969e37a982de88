//! The chat over WebSocket, end to end: the real binary, a fake Claude that
//! replays exact SSE bytes, and a fake tool server. Asserts the exact event
//! sequence a frontend sees, what reached the tool server, and what the
//! follow-up request to Claude carried.

use crate::support::fake_claude;
use crate::support::fake_tools;
use crate::support::kv;
use crate::support::ws_client;

use fake_claude::{FakeClaude, Reply, sse};
use fake_tools::FakeTools;
use kv::{Kv, json};
use serde_json::json;
use std::time::{Duration, Instant};
use tungstenite::Message;
use ws_client::{connect, texts, types};

/// The service with a fake Claude and a fake simple-HTTP tool server.
fn service(claude: &FakeClaude, tools: &FakeTools, extra: &[(&str, &str)]) -> Kv {
    let claude_url = claude.url();
    let mut all: Vec<(&str, &str)> = vec![
        ("ANTHROPIC_API_KEY", "sk-ant-test-KEY"),
        ("ANTHROPIC_BASE_URL", &claude_url),
        ("MCP_SERVER_URL", &tools.url),
        ("MCP_TRANSPORT", "simple-http"),
        // Never used for the fakes on this machine.
        ("HTTP_PROXY", "http://127.0.0.1:9"),
        ("http_proxy", "http://127.0.0.1:9"),
    ];
    all.extend_from_slice(extra);
    let kv = Kv::start_with_docs(&all);
    // The tool server is polled in the background; wait until it is seen.
    kv.wait_tools("connected", Duration::from_secs(15));
    kv
}

#[test]
fn text_only_answer_streams_and_is_stored() {
    let claude = FakeClaude::start(vec![Reply::sse(sse::text_turn(&["Hello", ", wor", "ld!"]))]);
    let tools = FakeTools::start();
    let kv = service(&claude, &tools, &[]);
    let mut ws = connect(kv.port, "conv-text", None).unwrap();
    ws.ask("hi there");
    let events = ws.until_done();
    assert_eq!(types(&events), ["text", "text", "text", "done"]);
    assert_eq!(texts(&events), "Hello, world!");
    let id = events[3]["messageId"].as_str().unwrap();
    let msgs = json(&kv.get("/api/conversations/conv-text/messages").1);
    assert_eq!(msgs[0]["role"], "user");
    assert_eq!(msgs[0]["content"], "hi there");
    assert_eq!(msgs[1]["role"], "assistant");
    assert_eq!(msgs[1]["content"], "Hello, world!");
    assert_eq!(msgs[1]["id"], id);
    let req = &claude.requests()[0];
    assert_eq!(req.body["stream"], true);
    assert_eq!(req.body["model"], "claude-sonnet-4-20250514");
    assert_eq!(req.body["max_tokens"], 4096);
    let system = req.body["system"].as_str().unwrap();
    for rule in ["GitHub organization", "cite", "did not find it"] {
        assert!(
            system.contains(rule),
            "system prompt lacks {rule:?}: {system}"
        );
    }
    assert!(
        !system.contains("scoped"),
        "no scope was asked for: {system}"
    );
    assert_eq!(
        req.body["messages"],
        json!([{"role": "user", "content": [{"type": "text", "text": "hi there"}]}])
    );
    assert!(
        req.body["system"]
            .as_str()
            .unwrap()
            .contains("documentation assistant")
    );
    let names: Vec<&str> = req.body["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        [
            "list_repositories",
            "search_documentation",
            "get_documentation",
            "list_repo_docs"
        ]
    );
    assert!(
        req.body["tools"][1]["input_schema"]["required"]
            .as_array()
            .unwrap()
            .contains(&json!("query"))
    );
}

/// The events of a turn that said "Let me look.", called
/// `get_documentation` (alpha, `docs/a b.md`) and `list_repositories` with
/// these ids, then answered in two deltas: each tool ran exactly once. The
/// same for every model provider.
pub(crate) fn assert_two_tool_calls(
    events: &[serde_json::Value],
    ids: [&str; 2],
    tools: &FakeTools,
) {
    assert_eq!(
        types(events),
        [
            "text",
            "tool_use_start",
            "tool_result",
            "tool_use_start",
            "tool_result",
            "text",
            "text",
            "done"
        ]
    );
    assert_eq!(events[1]["toolId"], ids[0]);
    assert_eq!(events[1]["name"], "get_documentation");
    assert_eq!(
        events[1]["input"],
        json!({"repo": "alpha", "path": "docs/a b.md"})
    );
    assert_eq!(events[2]["toolId"], ids[0]);
    assert_eq!(events[2]["result"]["metadata"]["path"], "docs/a b.md");
    assert_eq!(events[2]["name"], "get_documentation");
    assert!(events[2]["duration"].is_u64());
    assert_eq!(events[3]["toolId"], ids[1]);
    assert_eq!(events[4]["result"][0]["name"], "alpha");
    assert_eq!(tools.count("get_documentation"), 1);
    assert_eq!(tools.count("list_repositories"), 1);
}

#[test]
fn tool_use_runs_once_and_results_go_back_to_claude() {
    let claude = FakeClaude::start(vec![
        Reply::sse(sse::tool_turn(
            Some("Let me look."),
            &[
                (
                    "toolu_A",
                    "get_documentation",
                    json!({"repo": "alpha", "path": "docs/a b.md"}),
                ),
                ("toolu_B", "list_repositories", json!({})),
            ],
        )),
        Reply::sse(sse::text_turn(&["Alpha has ", "two docs."])),
    ]);
    let tools = FakeTools::start();
    let kv = service(&claude, &tools, &[]);
    let mut ws = connect(kv.port, "conv-tools", None).unwrap();
    ws.ask("what is in alpha?");
    let events = ws.until_done();
    assert_two_tool_calls(&events, ["toolu_A", "toolu_B"], &tools);
    // The follow-up request carries the assistant content and both results
    // in one user message, with matching ids.
    let reqs = claude.requests();
    assert_eq!(reqs.len(), 2);
    let msgs = reqs[1].body["messages"].as_array().unwrap().clone();
    assert_eq!(msgs.len(), 3);
    assert_eq!(msgs[1]["role"], "assistant");
    assert_eq!(
        msgs[1]["content"][0],
        json!({"type": "text", "text": "Let me look."})
    );
    assert_eq!(msgs[1]["content"][1]["type"], "tool_use");
    assert_eq!(msgs[1]["content"][1]["id"], "toolu_A");
    assert_eq!(
        msgs[1]["content"][1]["input"],
        json!({"repo": "alpha", "path": "docs/a b.md"})
    );
    assert_eq!(msgs[2]["role"], "user");
    let results = msgs[2]["content"].as_array().unwrap();
    assert_eq!(results.len(), 2);
    assert_eq!(results[0]["type"], "tool_result");
    assert_eq!(results[0]["tool_use_id"], "toolu_A");
    assert!(
        results[0]["content"]
            .as_str()
            .unwrap()
            .contains("Alpha content")
    );
    assert_eq!(results[1]["tool_use_id"], "toolu_B");

    // A follow-up question carries the earlier tool results as context.
    claude.push(Reply::sse(sse::text_turn(&["Yes."])));
    ws.ask("and the readme?");
    ws.until_done();
    let third = &claude.requests()[2].body["messages"];
    assert_eq!(third.as_array().unwrap().len(), 5);
    assert_eq!(third[2]["content"][0]["tool_use_id"], "toolu_A");
    assert_eq!(third[3]["content"][0]["text"], "Alpha has two docs.");
    assert_eq!(
        third[4],
        json!({"role": "user", "content": [{"type": "text", "text": "and the readme?"}]})
    );
}

#[test]
fn failing_tool_goes_back_to_claude_as_error() {
    let claude = FakeClaude::start(vec![
        Reply::sse(sse::tool_turn(
            None,
            &[(
                "toolu_X",
                "get_documentation",
                json!({"repo": "alpha", "path": "missing.md"}),
            )],
        )),
        Reply::sse(sse::text_turn(&["Not found."])),
    ]);
    let tools = FakeTools::start();
    let kv = service(&claude, &tools, &[]);
    let mut ws = connect(kv.port, "conv-fail", None).unwrap();
    ws.ask("read missing.md");
    let events = ws.until_done();
    assert_eq!(
        types(&events),
        ["tool_use_start", "tool_result", "text", "done"]
    );
    assert!(
        events[1]["result"]["error"]
            .as_str()
            .unwrap()
            .contains("not found"),
        "{}",
        events[1]
    );
    let result = &claude.requests()[1].body["messages"][2]["content"][0];
    assert_eq!(result["is_error"], true);
    assert_eq!(result["tool_use_id"], "toolu_X");
}

#[test]
fn error_event_mid_stream_keeps_the_partial_answer() {
    let body = sse::message_start()
        + &sse::text_start(0)
        + &sse::text_delta(0, "Partial ")
        + &sse::error("overloaded_error", "Overloaded");
    let claude = FakeClaude::start(vec![Reply::sse(body)]);
    let tools = FakeTools::start();
    let kv = service(&claude, &tools, &[]);
    let mut ws = connect(kv.port, "conv-err", None).unwrap();
    ws.ask("hello");
    let events = ws.until_done();
    assert_eq!(types(&events), ["text", "error", "done"]);
    assert!(
        events[1]["message"]
            .as_str()
            .unwrap()
            .contains("Overloaded")
    );
    let msgs = json(&kv.get("/api/conversations/conv-err/messages").1);
    assert_eq!(msgs[1]["content"], "Partial ");
    assert_eq!(msgs[1]["status"], "interrupted");
}

#[test]
fn invalid_key_is_reported_without_showing_it() {
    let claude = FakeClaude::start(vec![Reply::error(
        401,
        "authentication_error",
        // A server that echoes the key back: it must still not reach anyone.
        "invalid x-api-key: sk-ant-test-KEY",
    )]);
    let tools = FakeTools::start();
    let kv = service(&claude, &tools, &[]);
    let mut ws = connect(kv.port, "conv-401", None).unwrap();
    ws.ask("hello");
    let events = ws.until_done();
    assert_eq!(types(&events), ["error", "done"]);
    let msg = events[0]["message"].as_str().unwrap();
    assert!(msg.to_lowercase().contains("invalid"), "{msg}");
    assert!(!msg.contains("sk-ant-test-KEY"));
    assert!(!kv.log().contains("sk-ant-test-KEY"));
}

#[test]
fn max_tokens_never_runs_a_cut_off_tool() {
    let body = sse::message_start()
        + &sse::text_start(0)
        + &sse::text_delta(0, "Reading")
        + &sse::block_stop(0)
        + &sse::tool_start(1, "toolu_cut", "get_documentation")
        + &sse::json_delta(1, "{\"repo\": \"al")
        + &sse::message_end("max_tokens");
    let claude = FakeClaude::start(vec![Reply::sse(body)]);
    let tools = FakeTools::start();
    let kv = service(&claude, &tools, &[]);
    let mut ws = connect(kv.port, "conv-max", None).unwrap();
    ws.ask("hello");
    let events = ws.until_done();
    assert_eq!(types(&events), ["text", "text", "done"]);
    assert!(events[1]["content"].as_str().unwrap().contains("truncated"));
    assert_eq!(tools.calls().len(), 0);
}

#[test]
fn cancel_and_ping_are_answered_mid_answer() {
    let slow: Vec<String> = std::iter::once(sse::message_start() + &sse::text_start(0))
        .chain((0..100).map(|i| sse::text_delta(0, &format!("w{i} "))))
        .collect();
    let claude = FakeClaude::start(vec![Reply::sse_slow(slow, Duration::from_millis(50))]);
    let tools = FakeTools::start();
    let kv = service(&claude, &tools, &[]);
    let mut ws = connect(kv.port, "conv-cancel", None).unwrap();
    ws.ask("tell me a long story");
    let first = ws.next(Duration::from_secs(10)).unwrap();
    assert_eq!(first["type"], "text");
    // ping mid-answer
    let t = Instant::now();
    ws.send(json!({"type": "ping"}));
    loop {
        let e = ws.next(Duration::from_secs(5)).unwrap();
        if e["type"] == "pong" {
            break;
        }
        assert_eq!(e["type"], "text");
    }
    assert!(
        t.elapsed() < Duration::from_millis(100),
        "pong took {:?}",
        t.elapsed()
    );
    // cancel mid-answer
    let t = Instant::now();
    ws.send(json!({"type": "cancel"}));
    let rest = ws.until_done();
    assert!(
        t.elapsed() < Duration::from_millis(100),
        "cancel took {:?}",
        t.elapsed()
    );
    assert!(types(&rest).iter().all(|t| t == "text" || t == "done"));
    // The upstream request was closed.
    assert!(
        claude
            .wait_client_closed(0, Duration::from_secs(2))
            .is_some()
    );
    let msgs = json(&kv.get("/api/conversations/conv-cancel/messages").1);
    assert_eq!(msgs[1]["status"], "cancelled");
    assert!(msgs[1]["content"].as_str().unwrap().starts_with("w0 "));
    // The conversation is free again.
    claude.push(Reply::sse(sse::text_turn(&["ok"])));
    ws.ask("again");
    assert_eq!(texts(&ws.until_done()), "ok");
}

#[test]
fn reconnect_replays_the_running_turn_and_busy_is_refused() {
    let slow: Vec<String> = std::iter::once(sse::message_start() + &sse::text_start(0))
        .chain((0..20).map(|i| sse::text_delta(0, &format!("{i},"))))
        .chain(std::iter::once(
            sse::block_stop(0) + &sse::message_end("end_turn"),
        ))
        .collect();
    let claude = FakeClaude::start(vec![Reply::sse_slow(slow, Duration::from_millis(40))]);
    let tools = FakeTools::start();
    let kv = service(&claude, &tools, &[]);
    let mut ws = connect(kv.port, "conv-replay", None).unwrap();
    ws.ask("count");
    ws.next(Duration::from_secs(10)).unwrap();
    ws.next(Duration::from_secs(10)).unwrap();
    // A second message while the turn runs: busy.
    let mut other = connect(kv.port, "conv-replay", None).unwrap();
    other.ask("me too");
    let mut saw_busy = false;
    for _ in 0..40 {
        let e = other.next(Duration::from_secs(5)).unwrap();
        if e["type"] == "error" {
            assert!(e["message"].as_str().unwrap().contains("busy"));
            saw_busy = true;
            break;
        }
    }
    assert!(saw_busy);
    drop(other);
    // Drop the socket: the turn goes on; a new socket gets everything.
    drop(ws);
    let mut again = connect(kv.port, "conv-replay", None).unwrap();
    let events = again.until_done();
    let all: String = (0..20).map(|i| format!("{i},")).collect();
    assert_eq!(texts(&events), all);
    let msgs = json(&kv.get("/api/conversations/conv-replay/messages").1);
    assert_eq!(msgs.as_array().unwrap().len(), 2);
    assert_eq!(msgs[1]["content"], all);
    assert!(msgs[1].get("status").is_none());
}

#[test]
fn bad_frames_get_errors_and_the_socket_stays_usable() {
    let claude = FakeClaude::start(vec![]);
    let tools = FakeTools::start();
    let kv = service(&claude, &tools, &[]);
    let mut ws = connect(kv.port, "conv-bad", None).unwrap();
    let bad = [
        Message::text("not json"),
        Message::text("[1,2]"),
        Message::text("{\"type\": \"dance\"}"),
        Message::text("{\"content\": \"no type\"}"),
        Message::text("{\"type\": \"message\"}"),
        Message::text("{\"type\": \"message\", \"content\": \"   \"}"),
        Message::text("{\"type\": \"message\", \"content\": 42}"),
        Message::binary(vec![1u8, 2, 3]),
        // Deep nesting must be refused by the parser, not overflow a stack.
        Message::text("[".repeat(100_000)),
        Message::text(format!(
            "{{\"type\": \"message\", \"content\": {}1{}}}",
            "[".repeat(5000),
            "]".repeat(5000)
        )),
    ];
    for frame in bad {
        ws.sock.send(frame.clone()).unwrap();
        let e = ws.next(Duration::from_secs(5)).unwrap();
        assert_eq!(e["type"], "error", "{frame:?}");
        assert!(!e["message"].as_str().unwrap().is_empty());
    }
    ws.send(json!({"type": "ping"}));
    assert_eq!(ws.next(Duration::from_secs(5)).unwrap()["type"], "pong");
    assert!(claude.requests().is_empty());
}

#[test]
fn oversized_frame_is_closed_with_1009() {
    let claude = FakeClaude::start(vec![]);
    let tools = FakeTools::start();
    let kv = service(&claude, &tools, &[]);
    let mut ws = connect(kv.port, "conv-big", None).unwrap();
    let big = "x".repeat(2 * 1024 * 1024);
    let _ = ws.sock.send(Message::text(big));
    ws.sock
        .get_mut()
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut code = None;
    for _ in 0..5 {
        match ws.sock.read() {
            Ok(Message::Close(Some(f))) => {
                code = Some(u16::from(f.code));
                break;
            }
            Ok(_) => continue,
            Err(_) => break,
        }
    }
    assert_eq!(code, Some(1009));
    // The service is fine.
    assert_eq!(kv.get("/health").0, 200);
}

#[test]
fn foreign_origin_is_refused_before_the_upgrade() {
    let claude = FakeClaude::start(vec![]);
    let tools = FakeTools::start();
    let kv = service(&claude, &tools, &[("CORS_ORIGINS", "http://app.test")]);
    assert_eq!(
        connect(kv.port, "c", Some("http://evil.test")).err(),
        Some(403)
    );
    assert!(connect(kv.port, "c", Some("http://app.test")).is_ok());
    assert!(connect(kv.port, "c", None).is_ok());
}

#[test]
fn tool_rounds_are_bounded() {
    let round = |i: usize| {
        Reply::sse(sse::tool_turn(
            None,
            &[(&format!("toolu_{i}"), "list_repositories", json!({}))],
        ))
    };
    let claude = FakeClaude::start((0..5).map(round).collect());
    let tools = FakeTools::start();
    let kv = service(&claude, &tools, &[("MAX_TOOL_ROUNDS", "2")]);
    let mut ws = connect(kv.port, "conv-rounds", None).unwrap();
    ws.ask("loop forever");
    let events = ws.until_done();
    assert_eq!(claude.requests().len(), 2);
    assert_eq!(tools.count("list_repositories"), 1);
    assert!(texts(&events).contains("more than 2 rounds"), "{events:?}");
}

#[test]
fn repo_scope_reaches_the_system_prompt() {
    let claude = FakeClaude::start(vec![Reply::sse(sse::text_turn(&["ok"]))]);
    let tools = FakeTools::start();
    let kv = service(&claude, &tools, &[]);
    let mut ws = connect(kv.port, "conv-scope", None).unwrap();
    ws.send(json!({"type": "message", "content": "how to install?", "context": {"scope": "repo", "repoName": "alpha"}}));
    ws.until_done();
    let system = claude.requests()[0].body["system"]
        .as_str()
        .unwrap()
        .to_string();
    for rule in [
        "`alpha`",
        "Search that repository first",
        "widen",
        "which repository each fact",
    ] {
        assert!(
            system.contains(rule),
            "scoped prompt lacks {rule:?}: {system}"
        );
    }
}

#[test]
fn offline_mode_answers_from_search_results() {
    let tools = FakeTools::start();
    let kv = Kv::start_with_docs(&[
        ("MCP_SERVER_URL", &tools.url),
        ("MCP_TRANSPORT", "simple-http"),
    ]);
    kv.wait_tools("connected", Duration::from_secs(15));
    let mut ws = connect(kv.port, "conv-offline", None).unwrap();
    ws.ask("retention of logs");
    let events = ws.until_done();
    let t = types(&events);
    assert_eq!(&t[..2], ["tool_use_start", "tool_result"]);
    assert_eq!(events[0]["name"], "search_documentation");
    assert_eq!(events[0]["input"]["query"], "retention of logs");
    let answer = texts(&events);
    assert!(
        answer.contains("No language model is configured"),
        "{answer}"
    );
    assert!(answer.contains("alpha/README.md"), "{answer}");
    assert!(
        answer.contains("Alpha content about retention."),
        "{answer}"
    );
    assert_eq!(tools.count("search_documentation"), 1);
}

#[test]
fn cancel_while_a_tool_runs_runs_no_more_tools() {
    let claude = FakeClaude::start(vec![Reply::sse(sse::tool_turn(
        None,
        &[
            (
                "toolu_slow",
                "get_documentation",
                json!({"repo": "slow", "path": "a.md"}),
            ),
            ("toolu_next", "list_repositories", json!({})),
        ],
    ))]);
    let tools = FakeTools::start();
    let kv = service(&claude, &tools, &[]);
    let mut ws = connect(kv.port, "conv-tool-cancel", None).unwrap();
    ws.ask("read the slow one");
    let start = ws.next(Duration::from_secs(10)).unwrap();
    assert_eq!(start["type"], "tool_use_start");
    assert_eq!(start["toolId"], "toolu_slow");
    // While the tool runs: ping is answered at once, then cancel.
    let t = Instant::now();
    ws.send(json!({"type": "ping"}));
    assert_eq!(ws.next(Duration::from_secs(5)).unwrap()["type"], "pong");
    assert!(
        t.elapsed() < Duration::from_millis(100),
        "pong took {:?}",
        t.elapsed()
    );
    ws.send(json!({"type": "cancel"}));
    let rest = ws.until_done();
    // The running tool finishes and reports; nothing else runs.
    assert_eq!(types(&rest), ["tool_result", "done"], "{rest:?}");
    assert!(
        rest[0]["duration"].as_u64().unwrap() >= fake_tools::SLOW_TOOL.as_millis() as u64 - 50,
        "{}",
        rest[0]
    );
    assert_eq!(tools.count("list_repositories"), 0);
    assert_eq!(
        claude.requests().len(),
        1,
        "no request to Claude after a cancel"
    );
    let msgs = json(&kv.get("/api/conversations/conv-tool-cancel/messages").1);
    assert_eq!(msgs[1]["status"], "cancelled");
}

#[test]
fn a_conversation_created_over_rest_is_used_by_the_socket() {
    let claude = FakeClaude::start(vec![Reply::sse(sse::text_turn(&["Hi."]))]);
    let tools = FakeTools::start();
    let kv = service(&claude, &tools, &[]);
    let (_, body) = kv::request(&kv.base, "POST", "/api/conversations", &[], None);
    let id = json(&body)["id"].as_str().unwrap().to_string();
    let mut ws = connect(kv.port, &id, None).unwrap();
    ws.ask("hello");
    ws.until_done();
    let msgs = json(&kv.get(&format!("/api/conversations/{id}/messages")).1);
    assert_eq!(msgs[0]["content"], "hello");
    assert_eq!(msgs[1]["content"], "Hi.");
}
