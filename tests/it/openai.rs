//! The OpenAI-compatible provider: the client against a fake
//! chat-completions server that replays exact SSE byte streams (text, one
//! and two parallel tool calls split mid-token and mid-UTF-8, `[DONE]`, a
//! usage chunk, an error object mid-stream, a 429 with retry-after, a
//! dropped connection, a real llama-server transcript), then the chat end
//! to end over the WebSocket with `LLM_PROVIDER=openai`, asserting the same
//! event sequences as for Claude. Also the Anthropic-compatible case: a
//! Messages API server that needs no key.

use crate::support::fake_claude::{self, FakeClaude};
use crate::support::fake_openai::{self, FakeOpenAi, LLAMA_SERVER_TOOL_CALL, Reply, base_url, sse};
use crate::support::fake_tools::FakeTools;
use crate::support::kv::{Kv, TempDir, json};
use crate::support::model_client::{self, Outcome, content, ok};
use crate::support::ws_client::{connect, texts, types};

use knowledge_vault::chat::model::{LanguageModel, ModelError, ModelRequest, StopReason};
use knowledge_vault::chat::openai::{OpenAiClient, OpenAiConfig};
use knowledge_vault::config::Config;
use knowledge_vault::conversations::live::Cancel;
use knowledge_vault::messages::{Block, Message, Role};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

const KEY: &str = "sk-local-test-0123456789abcdef";

fn config(fake: &FakeOpenAi, key: Option<&str>, idle: Duration) -> OpenAiConfig {
    let mut vars = HashMap::from([
        ("LLM_PROVIDER".to_string(), "openai".to_string()),
        ("OPENAI_BASE_URL".to_string(), base_url(fake)),
        ("OPENAI_MODEL".to_string(), "qwen2.5:0.5b".to_string()),
    ]);
    if let Some(k) = key {
        vars.insert("OPENAI_API_KEY".into(), k.into());
    }
    let mut c = OpenAiConfig::from_config(&Config::from_map(&vars).unwrap()).unwrap();
    c.idle_timeout = idle;
    c.connect_timeout = Duration::from_secs(2);
    c
}

fn stream_with(fake: &FakeOpenAi, key: Option<&str>, idle: Duration, cancel: &Cancel) -> Outcome {
    let client = OpenAiClient::new(config(fake, key, idle));
    model_client::ask(&client, "How is retention configured?", cancel)
}

fn stream(fake: &FakeOpenAi) -> Outcome {
    stream_with(fake, Some(KEY), Duration::from_secs(5), &Cancel::default())
}

/// Splits `s` into pieces at the given byte offsets (not char boundaries:
/// a piece may end inside a UTF-8 character), one TCP write each.
fn cut_bytes(s: &str, at: &[usize]) -> Vec<Vec<u8>> {
    let bytes = s.as_bytes();
    let mut pieces = vec![];
    let mut from = 0;
    for &to in at {
        pieces.push(bytes[from..to].to_vec());
        from = to;
    }
    pieces.push(bytes[from..].to_vec());
    pieces
}

#[test]
fn text_streams_delta_by_delta_and_the_request_is_chat_completions() {
    let fake = FakeOpenAi::start(vec![Reply::sse(sse::text_turn(&[
        "Retention ",
        "is set in ",
        "retention.md.",
    ]))]);
    let o = stream(&fake);
    let reply = ok(&o);
    assert_eq!(o.texts, ["Retention ", "is set in ", "retention.md."]);
    assert_eq!(
        content(reply),
        [json!({"type": "text", "text": "Retention is set in retention.md."})]
    );
    assert_eq!(reply.stop_reason, Some(StopReason::EndTurn));
    assert_eq!(reply.usage.total(), 282);
    let reqs = fake.requests();
    assert_eq!(reqs.len(), 1);
    let r = &reqs[0];
    assert_eq!(
        (r.method.as_str(), r.path.as_str()),
        ("POST", "/v1/chat/completions")
    );
    assert_eq!(
        r.header("authorization"),
        Some(format!("Bearer {KEY}").as_str())
    );
    assert_eq!(r.header("x-api-key"), None);
    assert_eq!(r.body["model"], "qwen2.5:0.5b");
    assert_eq!(r.body["stream"], true);
    assert_eq!(r.body["stream_options"], json!({"include_usage": true}));
    assert_eq!(r.body["max_tokens"], 4096);
    assert_eq!(
        r.body["messages"],
        json!([
            {"role": "system", "content": "You answer from the documentation."},
            {"role": "user", "content": "How is retention configured?"},
        ])
    );
    assert_eq!(
        r.body["tools"],
        json!([{"type": "function", "function": {"name": "search_documentation",
            "description": "Search the docs",
            "parameters": {"type":"object","properties":{"query":{"type":"string"}},
                "required":["query"]}}}])
    );
}

#[test]
fn no_key_sends_no_authorization() {
    let fake = FakeOpenAi::start(vec![Reply::sse(sse::text_turn(&["ok"]))]);
    let o = stream_with(&fake, None, Duration::from_secs(5), &Cancel::default());
    ok(&o);
    assert_eq!(fake.requests()[0].header("authorization"), None);
}

#[test]
fn a_real_llama_server_tool_call_stream() {
    // The exact bytes, each event its own TCP write.
    let events: Vec<String> = LLAMA_SERVER_TOOL_CALL
        .split_inclusive("\n\n")
        .map(str::to_string)
        .collect();
    assert_eq!(events.len(), 13);
    let fake = FakeOpenAi::start(vec![Reply::sse_chunks(events)]);
    let o = stream(&fake);
    let reply = ok(&o);
    assert!(o.texts.is_empty());
    assert_eq!(reply.stop_reason, Some(StopReason::ToolUse));
    assert_eq!(
        content(reply),
        [
            json!({"type": "tool_use", "id": "JXN0hCDX82gBYRtYcnaEX1seJiNeiAYe",
            "name": "search_documentation", "input": {"query": "retention policy"}})
        ]
    );
    assert!(reply.unparsable.is_empty());
    assert!(!reply.dropped_tool_use);
}

#[test]
fn arguments_split_mid_token_and_mid_utf8_character() {
    // "{\n  \"query\": \"Überblick 日本\"\n}" in three deltas, and the SSE
    // bytes themselves cut inside the multi-byte characters.
    let body = sse::role()
        + &sse::call_start(0, "call_utf8", "search_documentation", "{\n  \"que")
        + &sse::call_args(0, "ry\": \"Über")
        + &sse::call_args(0, "blick 日本\"\n}")
        + &sse::end("tool_calls");
    let u = body.find('Ü').unwrap();
    let j = body.find('日').unwrap();
    let fake = FakeOpenAi::start(vec![Reply::sse_chunks(cut_bytes(
        &body,
        &[u + 1, j + 1, j + 2],
    ))]);
    let o = stream(&fake);
    let reply = ok(&o);
    let (id, name, input) = reply.tool_uses().next().unwrap();
    assert_eq!((id, name), ("call_utf8", "search_documentation"));
    assert_eq!(input, &json!({"query": "Überblick 日本"}));
}

#[test]
fn two_parallel_calls_are_routed_by_index() {
    // Deltas of the two calls interleave; key order and whitespace differ.
    let body = sse::role()
        + &sse::text("Looking.")
        + &sse::call_start(0, "call_a", "search_documentation", "{\"query\":")
        + &sse::call_start(1, "call_b", "get_documentation", "{ \"path\" : \"a.md\",")
        + &sse::call_args(0, " \"deploy\"}")
        + &sse::call_args(1, "\n\"repo\": \"alpha\" }")
        + &sse::end("tool_calls");
    let fake = FakeOpenAi::start(vec![Reply::sse(body)]);
    let o = stream(&fake);
    let reply = ok(&o);
    assert_eq!(o.texts, ["Looking."]);
    assert_eq!(
        content(reply),
        [
            json!({"type": "text", "text": "Looking."}),
            json!({"type": "tool_use", "id": "call_a", "name": "search_documentation",
                "input": {"query": "deploy"}}),
            json!({"type": "tool_use", "id": "call_b", "name": "get_documentation",
                "input": {"repo": "alpha", "path": "a.md"}}),
        ]
    );
}

#[test]
fn unparsable_arguments_are_flagged_not_fatal() {
    let body = sse::role()
        + &sse::call_start(0, "call_bad", "search_documentation", "{\"query\": \"x\"")
        + &sse::call_start(1, "call_ok", "list_repositories", "{}")
        + &sse::end("tool_calls");
    let fake = FakeOpenAi::start(vec![Reply::sse(body)]);
    let o = stream(&fake);
    let reply = ok(&o);
    assert_eq!(reply.tool_uses().count(), 2);
    let why = reply.unparsable("call_bad").unwrap();
    assert!(why.contains("not a JSON object"), "{why}");
    assert!(why.contains("{\"query\": \"x\""), "{why}");
    assert_eq!(reply.unparsable("call_ok"), None);
}

#[test]
fn an_error_object_mid_stream_keeps_the_partial_answer() {
    let body =
        sse::role() + &sse::text("Partial ") + &sse::error("server_error", "the model crashed");
    let fake = FakeOpenAi::start(vec![Reply::sse(body)]);
    let o = stream(&fake);
    match &o.result {
        Err(ModelError::Interrupted { message, partial }) => {
            assert!(message.contains("the model crashed"), "{message}");
            assert_eq!(partial.text(), "Partial ");
        }
        other => panic!("expected Interrupted, got {other:?}"),
    }
    // Text was shown: no retry.
    assert_eq!(fake.requests().len(), 1);
}

#[test]
fn an_error_object_before_any_output_is_retried() {
    let fake = FakeOpenAi::start(vec![
        Reply::sse(sse::error("server_error", "slot unavailable")),
        Reply::sse(sse::text_turn(&["Fine."])),
    ]);
    let o = stream(&fake);
    assert_eq!(ok(&o).text(), "Fine.");
    assert_eq!(fake.requests().len(), 2);
}

#[test]
fn rate_limit_429_honours_retry_after() {
    let fake = FakeOpenAi::start(vec![
        fake_openai::error(429, "rate_limit_error", "slow down").header("retry-after", "1"),
        Reply::sse(sse::text_turn(&["ok"])),
    ]);
    let o = stream(&fake);
    assert_eq!(ok(&o).text(), "ok");
    let reqs = fake.requests();
    assert_eq!(reqs.len(), 2);
    let gap = reqs[1].at - reqs[0].at;
    assert!(gap >= Duration::from_millis(950), "retried after {gap:?}");
}

#[test]
fn http_errors_carry_the_servers_message_and_never_the_key() {
    let fake = FakeOpenAi::start(vec![fake_openai::error(
        404,
        "invalid_request_error",
        &format!("model 'qwen2.5:0.5b' not found (key {KEY})"),
    )]);
    let o = stream(&fake);
    match &o.result {
        Err(ModelError::Http { status, message }) => {
            assert_eq!(*status, 404);
            assert!(
                message.starts_with("OpenAI-compatible API endpoint or model not found (check OPENAI_BASE_URL and OPENAI_MODEL) (404 invalid_request_error): model 'qwen2.5:0.5b' not found"),
                "{message}"
            );
            assert!(!message.contains(KEY), "{message}");
        }
        other => panic!("expected Http, got {other:?}"),
    }
    assert_eq!(fake.requests().len(), 1, "a 404 is not retried");
}

#[test]
fn a_dropped_connection_mid_stream_is_an_interruption() {
    let fake = FakeOpenAi::start(vec![
        Reply::sse_chunks([sse::role() + &sse::text("Half")]).drop_connection(),
    ]);
    let o = stream(&fake);
    match &o.result {
        Err(ModelError::Interrupted { message, partial }) => {
            assert!(message.contains("OpenAI-compatible server"), "{message}");
            assert_eq!(partial.text(), "Half");
        }
        other => panic!("expected Interrupted, got {other:?}"),
    }
    assert_eq!(fake.requests().len(), 1);
}

#[test]
fn a_dropped_connection_before_any_output_is_retried() {
    let fake = FakeOpenAi::start(vec![
        Reply::sse_chunks([sse::role()]).drop_connection(),
        Reply::sse(sse::text_turn(&["Back."])),
    ]);
    let o = stream(&fake);
    assert_eq!(ok(&o).text(), "Back.");
    assert_eq!(fake.requests().len(), 2);
}

#[test]
fn a_stream_without_done_ends_at_its_finish_reason() {
    let fake = FakeOpenAi::start(vec![Reply::sse(
        sse::role() + &sse::text("No sentinel.") + &sse::finish("stop"),
    )]);
    let o = stream(&fake);
    assert_eq!(ok(&o).text(), "No sentinel.");
    assert_eq!(fake.requests().len(), 1);
}

#[test]
fn a_stall_longer_than_the_idle_timeout_fails_quickly() {
    let fake = FakeOpenAi::start(vec![
        Reply::sse_chunks([sse::role() + &sse::text("Wait")]).pause(Duration::from_secs(30)),
    ]);
    let o = stream_with(
        &fake,
        Some(KEY),
        Duration::from_millis(500),
        &Cancel::default(),
    );
    match &o.result {
        Err(ModelError::Interrupted { message, .. }) => {
            assert!(message.contains("idle timeout"), "{message}")
        }
        other => panic!("expected Interrupted, got {other:?}"),
    }
    assert!(o.elapsed < Duration::from_secs(10), "{:?}", o.elapsed);
}

#[test]
fn cancel_during_slow_deltas_returns_at_once_and_closes_upstream() {
    let slow: Vec<String> = std::iter::once(sse::role())
        .chain((0..200).map(|i| sse::text(&format!("w{i} "))))
        .collect();
    let fake = FakeOpenAi::start(vec![Reply::sse_slow(slow, Duration::from_millis(50))]);
    let cancel = Arc::new(Cancel::default());
    let (flowing, text_flows) = std::sync::mpsc::channel::<()>();
    let canceller = {
        let cancel = cancel.clone();
        // Cancels from another thread once text is flowing, as a socket does.
        thread::spawn(move || {
            text_flows
                .recv_timeout(Duration::from_secs(10))
                .expect("no text came");
            let at = Instant::now();
            cancel.cancel();
            at
        })
    };
    let client = OpenAiClient::new(config(&fake, Some(KEY), Duration::from_secs(5)));
    let mut seen = 0;
    let o = model_client::ask_watching(&client, "slow?", &cancel, &mut |_| {
        seen += 1;
        if seen == 3 {
            let _ = flowing.send(());
        }
    });
    let cancelled_at = canceller.join().unwrap();
    let returned = cancelled_at.elapsed();
    match &o.result {
        Err(ModelError::Cancelled { partial }) => assert!(!partial.text().is_empty()),
        other => panic!("expected Cancelled, got {other:?}"),
    }
    assert!(
        returned < Duration::from_secs(2),
        "returned {returned:?} after cancel"
    );
    assert!(
        fake.wait_client_closed(0, Duration::from_secs(5)).is_some(),
        "the upstream connection was not closed"
    );
}

// ---- end to end: the service with LLM_PROVIDER=openai ----

/// The service with the fake OpenAI-compatible server and a fake tool server.
fn service(fake: &FakeOpenAi, tools: &FakeTools, extra: &[(&str, &str)]) -> Kv {
    let url = base_url(fake);
    let mut all: Vec<(&str, &str)> = vec![
        ("LLM_PROVIDER", "openai"),
        ("OPENAI_BASE_URL", &url),
        ("OPENAI_MODEL", "llama3.2:1b"),
        ("MCP_SERVER_URL", &tools.url),
        ("MCP_TRANSPORT", "simple-http"),
        // Never used for the fakes on this machine.
        ("HTTP_PROXY", "http://127.0.0.1:9"),
        ("http_proxy", "http://127.0.0.1:9"),
    ];
    all.extend_from_slice(extra);
    let kv = Kv::start_with_docs(&all);
    kv.wait_tools("connected", Duration::from_secs(15));
    kv
}

#[test]
fn ws_text_answer_streams_and_health_names_the_provider() {
    let fake = FakeOpenAi::start(vec![Reply::sse(sse::text_turn(&["Hello", ", wor", "ld!"]))]);
    let tools = FakeTools::start();
    let kv = service(&fake, &tools, &[]);
    let health = json(&kv.get("/health").1);
    let claude_api = &health["services"]["claude_api"];
    assert_eq!(claude_api["status"], "available", "{health}");
    assert_eq!(claude_api["provider"], "openai");
    assert_eq!(claude_api["model"], "llama3.2:1b");
    assert_eq!(health["status"], "healthy");

    let mut ws = connect(kv.port, "oai-text", None).unwrap();
    ws.ask("hi there");
    let events = ws.until_done();
    assert_eq!(types(&events), ["text", "text", "text", "done"]);
    assert_eq!(texts(&events), "Hello, world!");
    let msgs = json(&kv.get("/api/conversations/oai-text/messages").1);
    assert_eq!(msgs[1]["content"], "Hello, world!");
    assert_eq!(msgs[1].get("status"), None);
    let req = &fake.requests()[0];
    assert_eq!(req.path, "/v1/chat/completions");
    assert_eq!(req.header("authorization"), None);
    let messages = req.body["messages"].as_array().unwrap();
    assert_eq!(messages[0]["role"], "system");
    assert!(
        messages[0]["content"]
            .as_str()
            .unwrap()
            .contains("documentation assistant")
    );
    assert_eq!(messages[1], json!({"role": "user", "content": "hi there"}));
    let names: Vec<&str> = req.body["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["function"]["name"].as_str().unwrap())
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
}

#[test]
fn ws_tool_calls_run_once_and_results_go_back_as_tool_messages() {
    let fake = FakeOpenAi::start(vec![
        Reply::sse(sse::tool_turn(
            Some("Let me look."),
            &[
                (
                    "call_A",
                    "get_documentation",
                    json!({"repo": "alpha", "path": "docs/a b.md"}),
                ),
                ("call_B", "list_repositories", json!({})),
            ],
        )),
        Reply::sse(sse::text_turn(&["Alpha has ", "two docs."])),
    ]);
    let tools = FakeTools::start();
    let kv = service(&fake, &tools, &[]);
    let mut ws = connect(kv.port, "oai-tools", None).unwrap();
    ws.ask("what is in alpha?");
    let events = ws.until_done();
    crate::ws::assert_two_tool_calls(&events, ["call_A", "call_B"], &tools);

    // The follow-up request: the assistant's text and tool_calls in one
    // message (arguments as a JSON string), then one tool message per result.
    let reqs = fake.requests();
    assert_eq!(reqs.len(), 2);
    let msgs = reqs[1].body["messages"].as_array().unwrap().clone();
    assert_eq!(msgs.len(), 5, "{msgs:?}");
    assert_eq!(msgs[2]["role"], "assistant");
    assert_eq!(msgs[2]["content"], "Let me look.");
    let calls = msgs[2]["tool_calls"].as_array().unwrap();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0]["id"], "call_A");
    assert_eq!(calls[0]["type"], "function");
    assert_eq!(calls[0]["function"]["name"], "get_documentation");
    let args: Value =
        serde_json::from_str(calls[0]["function"]["arguments"].as_str().unwrap()).unwrap();
    assert_eq!(args, json!({"repo": "alpha", "path": "docs/a b.md"}));
    assert_eq!(msgs[3]["role"], "tool");
    assert_eq!(msgs[3]["tool_call_id"], "call_A");
    assert!(
        msgs[3]["content"]
            .as_str()
            .unwrap()
            .contains("Alpha content")
    );
    assert_eq!(msgs[4]["role"], "tool");
    assert_eq!(msgs[4]["tool_call_id"], "call_B");

    // The stored history is the typed one; a follow-up carries it mapped again.
    fake.push(Reply::sse(sse::text_turn(&["Yes."])));
    ws.ask("and the readme?");
    ws.until_done();
    let third = fake.requests()[2].body["messages"].clone();
    let third = third.as_array().unwrap();
    assert_eq!(third.len(), 7, "{third:?}");
    assert_eq!(third[3]["tool_call_id"], "call_A");
    assert_eq!(
        third[5],
        json!({"role": "assistant", "content": "Alpha has two docs."})
    );
    assert_eq!(
        third[6],
        json!({"role": "user", "content": "and the readme?"})
    );
    let stored = json(&kv.get("/api/conversations/oai-tools/messages").1);
    assert_eq!(stored[1]["content"], "Let me look.Alpha has two docs.");
}

#[test]
fn ws_unparsable_arguments_are_answered_with_an_error_not_run() {
    let bad = sse::role()
        + &sse::call_start(
            0,
            "call_bad",
            "search_documentation",
            "{\"query\": \"retention",
        )
        + &sse::end("tool_calls");
    let fake = FakeOpenAi::start(vec![
        Reply::sse(bad),
        Reply::sse(sse::text_turn(&["Sorry."])),
    ]);
    let tools = FakeTools::start();
    let kv = service(&fake, &tools, &[]);
    let mut ws = connect(kv.port, "oai-bad-args", None).unwrap();
    ws.ask("retention?");
    let events = ws.until_done();
    assert_eq!(
        types(&events),
        ["tool_use_start", "tool_result", "text", "done"]
    );
    assert_eq!(events[0]["toolId"], "call_bad");
    assert_eq!(events[1]["toolId"], "call_bad");
    assert_eq!(events[1]["isError"], true);
    let why = events[1]["result"]["error"].as_str().unwrap();
    assert!(why.contains("not a JSON object"), "{why}");
    // Not run, and the model was told.
    assert_eq!(tools.calls().len(), 0);
    let msgs = fake.requests()[1].body["messages"].clone();
    assert_eq!(msgs[2]["tool_calls"][0]["id"], "call_bad");
    assert_eq!(msgs[3]["role"], "tool");
    assert_eq!(msgs[3]["tool_call_id"], "call_bad");
    assert!(
        msgs[3]["content"]
            .as_str()
            .unwrap()
            .starts_with("Error: The arguments of this search_documentation call")
    );
}

#[test]
fn ws_a_model_that_calls_tools_forever_stops_at_the_round_limit() {
    let call = |i: usize| {
        Reply::sse(sse::tool_turn(
            None,
            &[(
                &format!("call_{i}"),
                "search_documentation",
                json!({"query": "again"}),
            )],
        ))
    };
    let fake = FakeOpenAi::start(vec![call(1), call(2), call(3)]);
    let tools = FakeTools::start();
    let kv = service(&fake, &tools, &[("MAX_TOOL_ROUNDS", "2")]);
    let mut ws = connect(kv.port, "oai-rounds", None).unwrap();
    ws.ask("loop");
    let events = ws.until_done();
    assert_eq!(
        types(&events),
        ["tool_use_start", "tool_result", "text", "done"]
    );
    assert!(texts(&events).contains("more than 2 rounds"), "{events:?}");
    assert_eq!(fake.requests().len(), 2);
    assert_eq!(tools.count("search_documentation"), 1);
    let msgs = json(&kv.get("/api/conversations/oai-rounds/messages").1);
    assert_eq!(msgs[1]["status"], "truncated");
}

#[test]
fn ws_errors_reach_the_client_with_the_servers_message() {
    let fake = FakeOpenAi::start(vec![
        Reply::sse(
            sse::role() + &sse::text("Partial ") + &sse::error("server_error", "the model crashed"),
        ),
        fake_openai::error(400, "invalid_request_error", "context length exceeded"),
    ]);
    let tools = FakeTools::start();
    let kv = service(&fake, &tools, &[]);
    let mut ws = connect(kv.port, "oai-err", None).unwrap();
    ws.ask("hello");
    let events = ws.until_done();
    assert_eq!(types(&events), ["text", "error", "done"]);
    assert!(
        events[1]["message"]
            .as_str()
            .unwrap()
            .contains("the model crashed")
    );
    ws.ask("again");
    let events = ws.until_done();
    assert_eq!(types(&events), ["error", "done"]);
    let msg = events[0]["message"].as_str().unwrap();
    assert!(msg.contains("context length exceeded"), "{msg}");
    let msgs = json(&kv.get("/api/conversations/oai-err/messages").1);
    assert_eq!(msgs[1]["content"], "Partial ");
    assert_eq!(msgs[1]["status"], "interrupted");
}

#[test]
fn ws_cancel_stops_the_answer_and_keeps_the_part() {
    let slow: Vec<String> = std::iter::once(sse::role())
        .chain((0..100).map(|i| sse::text(&format!("w{i} "))))
        .collect();
    let fake = FakeOpenAi::start(vec![Reply::sse_slow(slow, Duration::from_millis(50))]);
    let tools = FakeTools::start();
    let kv = service(&fake, &tools, &[]);
    let mut ws = connect(kv.port, "oai-cancel", None).unwrap();
    ws.ask("a long story");
    assert_eq!(ws.next(Duration::from_secs(10)).unwrap()["type"], "text");
    ws.send(json!({"type": "cancel"}));
    let rest = ws.until_done();
    assert!(types(&rest).iter().all(|t| t == "text" || t == "done"));
    assert!(fake.wait_client_closed(0, Duration::from_secs(5)).is_some());
    let msgs = json(&kv.get("/api/conversations/oai-cancel/messages").1);
    assert_eq!(msgs[1]["status"], "cancelled");
    assert!(msgs[1]["content"].as_str().unwrap().starts_with("w0 "));
}

#[test]
fn ws_the_daily_budget_counts_the_reported_usage() {
    // 282 tokens per request (the usage chunk) against a budget of 282:
    // the second question is answered from search results alone.
    let fake = FakeOpenAi::start(vec![Reply::sse(sse::text_turn(&["One."]))]);
    let tools = FakeTools::start();
    let kv = service(&fake, &tools, &[("CLAUDE_DAILY_TOKEN_BUDGET", "282")]);
    let mut ws = connect(kv.port, "oai-budget", None).unwrap();
    ws.ask("first");
    assert_eq!(texts(&ws.until_done()), "One.");
    // /health is cached for a moment.
    let spent = |kv: &Kv| {
        json(&kv.get("/health").1)["services"]["claude_api"]["daily_token_budget"]["spent_today"]
            == 282
    };
    assert!(kv.wait_until(Duration::from_secs(10), spent));
    ws.ask("second");
    let events = ws.until_done();
    assert!(texts(&events).contains("budget"), "{events:?}");
    assert_eq!(fake.requests().len(), 1);
}

// ---- Anthropic-compatible servers ----

#[test]
fn an_anthropic_compatible_server_needs_no_key() {
    let claude = FakeClaude::start(vec![Reply::sse(fake_claude::sse::text_turn(&[
        "Local ", "answer.",
    ]))]);
    let tools = FakeTools::start();
    let url = claude.url();
    let kv = Kv::start_with_docs(&[
        ("ANTHROPIC_BASE_URL", &url),
        ("CLAUDE_MODEL", "qwen2.5-0.5b-instruct"),
        ("MCP_SERVER_URL", &tools.url),
        ("MCP_TRANSPORT", "simple-http"),
        ("HTTP_PROXY", "http://127.0.0.1:9"),
        ("http_proxy", "http://127.0.0.1:9"),
    ]);
    kv.wait_tools("connected", Duration::from_secs(15));
    assert!(!kv.log().contains("offline retrieval mode"), "{}", kv.log());
    let health = json(&kv.get("/health").1);
    let claude_api = &health["services"]["claude_api"];
    assert_eq!(claude_api["status"], "available", "{health}");
    assert_eq!(claude_api["provider"], "anthropic");
    assert_eq!(claude_api["model"], "qwen2.5-0.5b-instruct");
    let mut ws = connect(kv.port, "local-claude", None).unwrap();
    ws.ask("hello");
    let events = ws.until_done();
    assert_eq!(types(&events), ["text", "text", "done"]);
    assert_eq!(texts(&events), "Local answer.");
    let req = &claude.requests()[0];
    assert_eq!(req.path, "/v1/messages");
    assert_eq!(req.header("x-api-key"), None);
    assert_eq!(req.header("anthropic-version"), Some("2023-06-01"));
    assert_eq!(req.body["model"], "qwen2.5-0.5b-instruct");
}

#[test]
fn api_anthropic_com_without_a_key_is_still_offline() {
    let kv = Kv::start_with_docs(&[]);
    let health = json(&kv.get("/health").1);
    let claude_api = &health["services"]["claude_api"];
    assert_eq!(claude_api["status"], "unavailable", "{health}");
    assert_eq!(claude_api["provider"], "anthropic");
    assert_eq!(claude_api["mode"], "offline");
}

#[test]
fn openai_without_a_model_stops_start_up_with_one_line() {
    let dir = TempDir::new("oai-config");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_knowledge-vault"))
        .current_dir(dir.path())
        .env_clear()
        .env("LLM_PROVIDER", "openai")
        .env("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
        .env("DATA_DIR", "")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("OPENAI_MODEL"), "{stderr}");
}

#[test]
fn unused_block_kinds_do_not_break_the_openai_history() {
    // A conversation that began with Claude (a thinking block) continues
    // with the OpenAI-compatible provider: the block is left out.
    let fake = FakeOpenAi::start(vec![Reply::sse(sse::text_turn(&["ok"]))]);
    let client = OpenAiClient::new(config(&fake, None, Duration::from_secs(5)));
    let messages = vec![
        Message::text(Role::User, "q1"),
        Message::new(
            Role::Assistant,
            vec![
                Block::Other(json!({"type": "thinking", "thinking": "hm", "signature": "sig"})),
                Block::text("a1"),
            ],
        ),
        Message::text(Role::User, "q2"),
    ];
    let request = ModelRequest {
        system: "",
        messages: &messages,
        tools: &[],
    };
    client
        .stream(&request, &Cancel::default(), &mut |_| {})
        .unwrap();
    let body = &fake.requests()[0].body;
    assert_eq!(
        body["messages"],
        json!([
            {"role": "user", "content": "q1"},
            {"role": "assistant", "content": "a1"},
            {"role": "user", "content": "q2"},
        ])
    );
    assert!(body.get("tools").is_none());
}
