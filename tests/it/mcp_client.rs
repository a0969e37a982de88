//! The MCP client (`tools::mcp`) against byte-exact fake servers
//! (`support/mcp_fake.rs`): both transport forms, sessions, timeouts,
//! garbage, credentials, a server that is down, hangs or comes and goes;
//! plus (ignored by default, run with `-- --ignored interop`, see
//! `scripts/test`) the real `@modelcontextprotocol/server-everything`.

use crate::support;

use knowledge_vault::config::McpTransport;
use knowledge_vault::tools::mcp::{McpClient, MonitorIntervals};
use knowledge_vault::tools::{Status, ToolError, ToolProvider, documentation_tools};
use serde_json::{Value, json};
use std::net::TcpListener;
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::mcp_fake::*;

const SECOND: Duration = Duration::from_secs(1);
const MS: Duration = Duration::from_millis(1);
/// How long a condition may take to come true on a loaded machine (a limit:
/// waits end as soon as it holds).
const WAIT: Duration = Duration::from_secs(20);

fn fast() -> MonitorIntervals {
    MonitorIntervals {
        connected: Duration::from_millis(200),
        disconnected: Duration::from_millis(100),
    }
}

fn client(url: &str, transport: McpTransport) -> Arc<McpClient> {
    McpClient::start_with(url, transport, Duration::from_secs(5), fast())
}

fn connected(c: &McpClient) {
    assert!(
        wait_for(WAIT, || c.status() == Status::Connected).is_some(),
        "not connected: {}",
        c.health_details()
    );
}

fn text_result(text: &str) -> Value {
    json!({"content": [{"type": "text", "text": text}]})
}

#[test]
fn json_replies_handshake_headers_pagination_and_call() {
    let server = FakeMcp::start(McpBehaviour {
        tool_pages: vec![
            vec![tool("list_repositories"), tool("search_documentation")],
            vec![tool("get_documentation")],
            vec![tool("list_repo_docs")],
        ],
        call: Box::new(|name, args| {
            assert_eq!(name, "list_repositories");
            assert_eq!(args, &json!({}));
            Ok(text_result(r#"[{"name":"alpha","doc_count":3}]"#))
        }),
        ..Default::default()
    });
    let c = client(&server.url(), McpTransport::StreamableHttp);
    connected(&c);

    let names: Vec<String> = c.tools().unwrap().into_iter().map(|t| t.name).collect();
    assert_eq!(
        names,
        [
            "list_repositories",
            "search_documentation",
            "get_documentation",
            "list_repo_docs"
        ]
    );
    // Text content that is JSON becomes that JSON (so /api/repos gets a list).
    assert_eq!(
        c.call("list_repositories", &Value::Null).unwrap(),
        json!([{"name": "alpha", "doc_count": 3}])
    );

    let reqs = server.fake.requests();
    // The monitor's pings may come in between, at any time.
    let methods: Vec<String> = reqs
        .iter()
        .filter_map(|r| r.rpc_method())
        .filter(|m| m != "ping")
        .collect();
    assert_eq!(
        &methods[..5],
        [
            "initialize",
            "notifications/initialized",
            "tools/list",
            "tools/list",
            "tools/list"
        ],
        "{methods:?}"
    );
    let init = &reqs[0];
    assert_eq!(init.method, "POST");
    assert_eq!(init.header("content-type"), Some("application/json"));
    assert_eq!(
        init.header("accept"),
        Some("application/json, text/event-stream")
    );
    assert_eq!(init.header("mcp-session-id"), None);
    assert_eq!(init.header("mcp-protocol-version"), None);
    assert_eq!(
        init.header("host"),
        Some(server.fake.addr.to_string().as_str())
    );
    let params = &init.json()["params"];
    assert_eq!(params["protocolVersion"], "2025-06-18");
    assert_eq!(params["capabilities"], json!({}));
    assert_eq!(params["clientInfo"]["name"], "knowledge-vault");
    assert_eq!(params["clientInfo"]["version"], env!("CARGO_PKG_VERSION"));
    for r in &reqs[1..] {
        assert_eq!(r.header("mcp-session-id"), Some("session-1"), "{r:?}");
        assert_eq!(r.header("mcp-protocol-version"), Some("2025-06-18"));
        assert_eq!(
            r.header("accept"),
            Some("application/json, text/event-stream")
        );
    }
    assert!(reqs.iter().all(|r| r.header("origin").is_none()));
    // The cursor loop sent the server's cursors back.
    let cursors: Vec<Value> = reqs
        .iter()
        .filter(|r| r.rpc_method().as_deref() == Some("tools/list"))
        .map(|r| r.json()["params"]["cursor"].clone())
        .collect();
    assert_eq!(cursors, [Value::Null, json!("page-1"), json!("page-2")]);
    // The arguments of a call with no arguments are an empty object.
    let call = reqs
        .iter()
        .find(|r| r.rpc_method().as_deref() == Some("tools/call"))
        .unwrap();
    assert_eq!(
        call.json()["params"],
        json!({"name": "list_repositories", "arguments": {}})
    );

    let d = c.health_details();
    assert_eq!(d["transport"], "streamable-http");
    assert_eq!(d["protocol_version"], "2025-06-18");
    assert_eq!(d["server"]["name"], "fake-mcp");
}

#[test]
fn sse_replies_with_priming_event_notifications_and_server_requests() {
    let server = FakeMcp::start(McpBehaviour {
        sse: true,
        version: Some("2025-11-25".into()),
        call: Box::new(|_, args| {
            Ok(text_result(&format!(
                "Echo: {}",
                args["message"].as_str().unwrap()
            )))
        }),
        ..Default::default()
    });
    let c = client(&server.url(), McpTransport::StreamableHttp);
    connected(&c);
    assert_eq!(c.tools().unwrap()[0].name, "echo");
    assert_eq!(
        c.call("echo", &json!({"message": "héllo 日本"})).unwrap(),
        json!("Echo: héllo 日本")
    );
    // The server answered 2025-11-25, so that is what the client sends now.
    let last = server.fake.requests().pop().unwrap();
    assert_eq!(last.header("mcp-protocol-version"), Some("2025-11-25"));
}

fn expiring_server(status: u16) -> FakeMcp {
    FakeMcp::start(McpBehaviour {
        unknown_session_status: status,
        call: Box::new(|_, _| Ok(text_result("{\"ok\":true}"))),
        ..Default::default()
    })
}

fn session_expiry_reinitializes_once(status: u16) {
    let server = expiring_server(status);
    // Slow monitor: only the call may notice the expiry.
    let c = McpClient::start_with(
        &server.url(),
        McpTransport::StreamableHttp,
        Duration::from_secs(5),
        MonitorIntervals {
            connected: Duration::from_secs(60),
            disconnected: Duration::from_millis(100),
        },
    );
    connected(&c);
    assert_eq!(c.call("echo", &json!({})).unwrap(), json!({"ok": true}));
    assert_eq!(server.fake.rpc_count("initialize"), 1);

    server.state.expire_sessions();
    assert_eq!(c.call("echo", &json!({})).unwrap(), json!({"ok": true}));
    assert_eq!(server.fake.rpc_count("initialize"), 2);
    assert_eq!(server.fake.rpc_count("notifications/initialized"), 2);
    assert_eq!(c.status(), Status::Connected);
    // The retried call carried the new session, without an Mcp-Session-Id on initialize.
    let reqs = server.fake.requests();
    let second_init = reqs
        .iter()
        .filter(|r| r.rpc_method().as_deref() == Some("initialize"))
        .nth(1)
        .unwrap();
    assert_eq!(second_init.header("mcp-session-id"), None);
    assert_eq!(
        reqs.last().unwrap().header("mcp-session-id"),
        Some("session-2")
    );
}

#[test]
fn session_expiry_404_reinitializes_once_and_retries() {
    session_expiry_reinitializes_once(404);
}

#[test]
fn session_expiry_400_naming_the_session_reinitializes_once() {
    session_expiry_reinitializes_once(400);
}

#[test]
fn a_session_that_keeps_expiring_is_an_error_not_a_loop() {
    let server = FakeMcp::start(McpBehaviour {
        call: Box::new(|_, _| {
            Err(json_reply(
                404,
                &json!({"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"Session not found"}}),
            ))
        }),
        ..Default::default()
    });
    let c = McpClient::start_with(
        &server.url(),
        McpTransport::StreamableHttp,
        Duration::from_secs(5),
        MonitorIntervals {
            connected: Duration::from_secs(60),
            disconnected: Duration::from_secs(60),
        },
    );
    connected(&c);
    let err = c.call("echo", &json!({})).unwrap_err();
    assert!(matches!(err, ToolError::Unavailable(_)), "{err:?}");
    assert!(err.message().contains("Session not found"), "{err}");
    assert_eq!(server.fake.rpc_count("initialize"), 2);
}

#[test]
fn a_reply_slower_than_the_timeout_fails_in_time() {
    let server = FakeMcp::start(McpBehaviour {
        call: Box::new(|_, _| {
            Err(Reply::After(
                Duration::from_secs(4),
                Box::new(json_reply(
                    200,
                    &json!({"jsonrpc":"2.0","id":3,"result":{}}),
                )),
            ))
        }),
        ..Default::default()
    });
    let c = McpClient::start_with(&server.url(), McpTransport::StreamableHttp, SECOND, fast());
    connected(&c);
    let start = Instant::now();
    let err = c.call("echo", &json!({})).unwrap_err();
    let took = start.elapsed();
    // The reply would come after 4 s.
    assert!(took >= SECOND && took < 3 * SECOND, "took {took:?}");
    assert!(matches!(err, ToolError::Unavailable(_)), "{err:?}");
    assert!(err.message().contains("did not answer within 1 s"), "{err}");
}

#[test]
fn a_slow_sse_stream_is_bounded_by_the_timeout_too() {
    // Headers at once, then the response event never comes.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let fake = Fake::start_on(listener, |req| {
        let msg = req.json();
        match msg["method"].as_str().unwrap_or("") {
            "initialize" => json_reply(
                200,
                &json!({"jsonrpc":"2.0","id":msg["id"],"result":{"protocolVersion":"2025-06-18","capabilities":{},"serverInfo":{"name":"x","version":"1"}}}),
            ),
            "notifications/initialized" => http(202, &[], b""),
            _ => Reply::Raw(
                b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n10\r\nid: 1\ndata: \n\n\r\n"
                    .to_vec(),
            ),
        }
    });
    let c = McpClient::start_with(
        &fake.url("/mcp"),
        McpTransport::StreamableHttp,
        SECOND,
        fast(),
    );
    connected(&c);
    let start = Instant::now();
    let err = c.call("echo", &json!({})).unwrap_err();
    assert!(start.elapsed() < 3 * SECOND, "took {:?}", start.elapsed());
    assert!(err.message().contains("did not answer"), "{err}");
}

#[test]
fn a_server_down_at_start_is_used_once_it_comes_up() {
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}/mcp");
    // Real intervals: "within a few seconds".
    let c = McpClient::start(&url, McpTransport::Auto, Duration::from_secs(5));
    assert_eq!(c.status(), Status::Disconnected);
    let start = Instant::now();
    let err = c.call("echo", &json!({})).unwrap_err();
    assert!(matches!(err, ToolError::Unavailable(_)), "{err:?}");
    assert!(
        start.elapsed() < 2 * SECOND,
        "a refused connection fails fast, not after MCP_TIMEOUT"
    );
    assert!(c.tools().is_err());
    assert!(
        wait_for(WAIT, || c.health_details()["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("refused")))
        .is_some(),
        "{}",
        c.health_details()
    );
    assert_eq!(c.status(), Status::Disconnected);

    let server = FakeMcp::start_on(
        TcpListener::bind(("127.0.0.1", port)).unwrap(),
        McpBehaviour {
            call: Box::new(|_, _| Ok(text_result("up"))),
            ..Default::default()
        },
    );
    // The next attempt is due within the 2 s interval; generous under load.
    let took = wait_for(WAIT, || c.status() == Status::Connected);
    assert!(took.is_some(), "not connected: {}", c.health_details());
    assert_eq!(c.call("echo", &json!({})).unwrap(), json!("up"));
    assert_eq!(c.health_details()["last_error"], Value::Null);
    drop(server);
}

#[test]
fn a_server_that_goes_away_turns_the_status_disconnected_then_comes_back() {
    let server = FakeMcp::start(McpBehaviour::default());
    let port = server.fake.addr.port();
    let c = McpClient::start(&server.url(), McpTransport::Auto, Duration::from_secs(5));
    connected(&c);
    server.fake.stop();

    // The next liveness check is due within the 5 s interval.
    assert!(wait_for(WAIT, || c.status() == Status::Disconnected).is_some());
    let err = c.call("echo", &json!({})).unwrap_err();
    assert!(matches!(err, ToolError::Unavailable(_)), "{err:?}");
    assert!(
        c.health_details()["last_error"]
            .as_str()
            .is_some_and(|e| e.contains("refused")),
        "{}",
        c.health_details()
    );

    let _back = FakeMcp::start_on(
        TcpListener::bind(("127.0.0.1", port)).unwrap(),
        McpBehaviour::default(),
    );
    assert!(wait_for(WAIT, || c.status() == Status::Connected).is_some());
    assert!(c.call("echo", &json!({})).is_ok());
}

#[test]
fn a_call_notices_a_lost_server_at_once() {
    let server = FakeMcp::start(McpBehaviour::default());
    let c = McpClient::start_with(
        &server.url(),
        McpTransport::StreamableHttp,
        Duration::from_secs(5),
        MonitorIntervals {
            connected: Duration::from_secs(60),
            disconnected: Duration::from_secs(60),
        },
    );
    connected(&c);
    server.fake.stop();
    let err = c.call("echo", &json!({})).unwrap_err();
    assert!(matches!(err, ToolError::Unavailable(_)), "{err:?}");
    assert_eq!(c.status(), Status::Disconnected);
}

#[test]
fn is_error_results_carry_the_servers_message() {
    let server = FakeMcp::start(McpBehaviour {
        call: Box::new(|name, _| {
            let text = if name == "get_documentation" {
                "Document not found: alpha/nope.md"
            } else {
                "Error executing tool search_documentation: index is rebuilding"
            };
            Ok(json!({"content": [{"type": "text", "text": text}], "isError": true}))
        }),
        ..Default::default()
    });
    let c = client(&server.url(), McpTransport::StreamableHttp);
    connected(&c);
    assert_eq!(
        c.call(
            "get_documentation",
            &json!({"repo": "alpha", "path": "nope.md"})
        ),
        Err(ToolError::NotFound(
            "Document not found: alpha/nope.md".into()
        ))
    );
    assert_eq!(
        c.call("search_documentation", &json!({"query": "x"})),
        Err(ToolError::Failed(
            "Error executing tool search_documentation: index is rebuilding".into()
        ))
    );
    assert_eq!(c.status(), Status::Connected);
}

#[test]
fn structured_content_is_preferred_over_text() {
    let server = FakeMcp::start(McpBehaviour {
        sse: true,
        call: Box::new(|name, _| {
            Ok(match name {
                // Python SDK: one text block per list item plus {"result": [...]}.
                "list_repositories" => json!({
                    "content": [{"type": "text", "text": "{\n  \"name\": \"alpha\"\n}"},
                                {"type": "text", "text": "{\n  \"name\": \"beta\"\n}"}],
                    "isError": false,
                    "structuredContent": {"result": [{"name": "alpha", "doc_count": 3}, {"name": "beta", "doc_count": 2}]}
                }),
                _ => json!({
                    "content": [{"type": "text", "text": "{\"temperature\":36}"}],
                    "structuredContent": {"temperature": 36, "conditions": "rain"}
                }),
            })
        }),
        ..Default::default()
    });
    let c = client(&server.url(), McpTransport::StreamableHttp);
    connected(&c);
    assert_eq!(
        c.call("list_repositories", &json!({})).unwrap(),
        json!([{"name": "alpha", "doc_count": 3}, {"name": "beta", "doc_count": 2}])
    );
    assert_eq!(
        c.call("weather", &json!({})).unwrap(),
        json!({"temperature": 36, "conditions": "rain"})
    );
}

#[test]
fn garbage_answers_are_clear_errors() {
    let server = FakeMcp::start(McpBehaviour {
        call: Box::new(|name, _| {
            Err(match name {
                "not_json" => http(
                    200,
                    &[("content-type", "application/json")],
                    b"{\"jsonrpc\": \"2.0\", \"id\": 3, \"res",
                ),
                "html" => http(200, &[("content-type", "text/html")], b"<html>hello</html>"),
                "sse_garbage" => chunked(
                    200,
                    &[("content-type", "text/event-stream")],
                    &["event: message\ndata: {oops\n\n"],
                ),
                "sse_cut" => chunked(
                    200,
                    &[("content-type", "text/event-stream")],
                    &["id: 1\ndata: \n\n"],
                ),
                "wrong_id" => json_reply(200, &json!({"jsonrpc":"2.0","id":424242,"result":{}})),
                "rpc_error" => json_reply(
                    200,
                    &json!({"jsonrpc":"2.0","id":null,"error":{"code":-32602,"message":"Tool rpc_error not found"}}),
                ),
                "no_result" => json_reply(200, &json!({"jsonrpc":"2.0","id":3})),
                "hangup" => Reply::Close,
                _ => http(
                    500,
                    &[("content-type", "text/plain")],
                    b"Internal Server Error: kaput",
                ),
            })
        }),
        ..Default::default()
    });
    let c = McpClient::start_with(
        &server.url(),
        McpTransport::StreamableHttp,
        Duration::from_secs(5),
        MonitorIntervals {
            connected: Duration::from_secs(60),
            disconnected: Duration::from_millis(100),
        },
    );
    connected(&c);
    let cases = [
        ("not_json", "not JSON"),
        ("html", "not JSON"),
        ("sse_garbage", "not JSON"),
        ("sse_cut", "ended before the response"),
        ("wrong_id", "not the response to request"),
        ("rpc_error", "Tool rpc_error not found"),
        ("http_500", "HTTP 500: Internal Server Error: kaput"),
    ];
    for (name, want) in cases {
        let err = c.call(name, &json!({})).unwrap_err();
        assert!(matches!(err, ToolError::Failed(_)), "{name}: {err:?}");
        assert!(err.message().contains(want), "{name}: {err}");
        assert_eq!(c.status(), Status::Connected, "{name}");
    }
    // A hang-up mid-request: the connection is retried once, then reported.
    let err = c.call("hangup", &json!({})).unwrap_err();
    assert!(matches!(err, ToolError::Unavailable(_)), "{err:?}");
}

#[test]
fn a_handshake_with_garbage_is_a_clear_unavailable() {
    let fake = Fake::start(|_| {
        http(
            200,
            &[("content-type", "application/json")],
            b"\x00\xffgarbage",
        )
    });
    let c = client(&fake.url("/mcp"), McpTransport::StreamableHttp);
    let err = c.call("echo", &json!({})).unwrap_err();
    assert!(matches!(err, ToolError::Unavailable(_)), "{err:?}");
    assert!(err.message().contains("not JSON"), "{err}");
    assert_eq!(c.status(), Status::Disconnected);
    assert!(
        c.health_details()["last_error"]
            .as_str()
            .unwrap()
            .contains("not JSON")
    );
}

#[test]
fn an_unsupported_protocol_version_is_refused_clearly() {
    let server = FakeMcp::start(McpBehaviour {
        version: Some("2099-01-01".into()),
        ..Default::default()
    });
    let c = client(&server.url(), McpTransport::StreamableHttp);
    let err = c.tools().unwrap_err();
    assert!(err.message().contains("2099-01-01"), "{err}");
    assert_eq!(c.status(), Status::Disconnected);
}

#[test]
fn credentials_are_asked_for_and_never_shown() {
    let fake = Fake::start(|_| {
        http(
            401,
            &[
                ("content-type", "application/json"),
                ("www-authenticate", "Bearer"),
            ],
            br#"{"error":"unauthorized"}"#,
        )
    });
    let url = format!("http://kv-user:s3cr3t-pw@{}/mcp", fake.addr);
    let c = client(&url, McpTransport::Auto);
    let err = c.call("echo", &json!({})).unwrap_err();
    assert!(matches!(err, ToolError::Unavailable(_)), "{err:?}");
    assert!(err.message().contains("credentials"), "{err}");
    assert!(!err.message().contains("s3cr3t"), "{err}");
    let details = c.health_details().to_string();
    assert!(
        !details.contains("s3cr3t") && !details.contains("kv-user"),
        "{details}"
    );
    assert!(
        details.contains(&format!("\"http://{}/mcp\"", fake.addr)),
        "{details}"
    );
    // The credentials went to the server as Basic auth.
    let auth = fake.requests()[0]
        .header("authorization")
        .map(str::to_string);
    assert_eq!(auth.as_deref(), Some("Basic a3YtdXNlcjpzM2NyM3QtcHc="));
}

// ----- the simple HTTP form ------------------------------------------------------

fn simple_server() -> Fake {
    Fake::start(|req| match (req.method.as_str(), req.path.as_str()) {
        ("GET", "/health") => json_reply(200, &json!({"status": "healthy"})),
        ("POST", "/tools/execute") => {
            let body = req.json();
            match body["name"].as_str().unwrap_or("") {
                "list_repositories" => {
                    json_reply(200, &json!({"result": [{"name": "alpha", "doc_count": 2}]}))
                }
                "get_documentation" if body["arguments"]["repo"] == "gone" => {
                    json_reply(200, &json!({"result": null}))
                }
                "get_documentation" => {
                    json_reply(200, &json!({"error": "Repository not found: nope"}))
                }
                "search_documentation" => {
                    json_reply(500, &json!({"detail": "search index unavailable"}))
                }
                "list_repo_docs" => http(500, &[("content-type", "text/html")], b"<h1>oops</h1>"),
                _ => json_reply(200, &json!({"result": body["arguments"]})),
            }
        }
        // What FastAPI answers for the MCP handshake's POST to the base URL.
        _ => json_reply(404, &json!({"detail": "Not Found"})),
    })
}

#[test]
fn simple_http_form_is_detected_and_used() {
    let fake = simple_server();
    let c = client(&fake.url(""), McpTransport::Auto);
    connected(&c);
    assert_eq!(c.health_details()["transport"], "simple-http");
    // Auto tried the MCP handshake first.
    let first = &fake.requests()[0];
    assert_eq!(
        (first.method.as_str(), first.rpc_method().as_deref()),
        ("POST", Some("initialize"))
    );

    assert_eq!(c.tools().unwrap(), documentation_tools());
    assert_eq!(
        c.call("list_repositories", &json!({})).unwrap(),
        json!([{"name": "alpha", "doc_count": 2}])
    );
    assert_eq!(
        c.call("echo", &json!({"repo": "a b", "path": "x/y.md"}))
            .unwrap(),
        json!({"repo": "a b", "path": "x/y.md"})
    );
    let exec = fake
        .requests()
        .into_iter()
        .find(|r| r.path == "/tools/execute")
        .unwrap();
    assert_eq!(exec.header("content-type"), Some("application/json"));
    assert_eq!(
        exec.json(),
        json!({"name": "list_repositories", "arguments": {}})
    );

    assert_eq!(
        c.call("get_documentation", &json!({})),
        Err(ToolError::NotFound("Repository not found: nope".into()))
    );
    // The earlier deployments' "not found": a null result.
    let err = c
        .call(
            "get_documentation",
            &json!({"repo": "gone", "path": "a.md"}),
        )
        .unwrap_err();
    assert!(matches!(err, ToolError::NotFound(_)), "{err:?}");
    assert!(
        err.message().contains("get_documentation") && err.message().contains("gone"),
        "{err}"
    );
    assert_eq!(
        c.call("search_documentation", &json!({"query": "q"})),
        Err(ToolError::Failed("search index unavailable".into()))
    );
    let err = c.call("list_repo_docs", &json!({"repo": "a"})).unwrap_err();
    assert!(
        matches!(err, ToolError::Failed(_)) && err.message().contains("HTTP 500"),
        "{err:?}"
    );
}

#[test]
fn simple_http_form_when_configured_skips_the_handshake() {
    let fake = simple_server();
    let c = client(&fake.url(""), McpTransport::SimpleHttp);
    connected(&c);
    assert!(fake.requests().iter().all(|r| r.path != "/"));
    assert!(c.call("list_repositories", &json!({})).is_ok());
}

#[test]
fn simple_http_server_going_away_and_coming_back() {
    let fake = simple_server();
    let port = fake.addr.port();
    let c = client(&fake.url(""), McpTransport::Auto);
    connected(&c);
    fake.stop();
    assert!(wait_for(WAIT, || c.status() == Status::Disconnected).is_some());
    assert!(matches!(
        c.call("list_repositories", &json!({})),
        Err(ToolError::Unavailable(_))
    ));
    let _back = Fake::start_on(
        TcpListener::bind(("127.0.0.1", port)).unwrap(),
        |req| match req.path.as_str() {
            "/health" => json_reply(200, &json!({})),
            "/tools/execute" => json_reply(200, &json!({"result": "again"})),
            _ => json_reply(405, &json!({"detail": "Method Not Allowed"})),
        },
    );
    assert!(wait_for(WAIT, || c.status() == Status::Connected).is_some());
    assert_eq!(
        c.call("list_repositories", &json!({})).unwrap(),
        json!("again")
    );
}

#[test]
fn neither_form_is_a_clear_error() {
    let fake = Fake::start(|_| http(404, &[("content-type", "text/plain")], b"nothing here"));
    let c = client(&fake.url(""), McpTransport::Auto);
    let err = c.call("x", &json!({})).unwrap_err();
    assert!(err.message().contains("neither an MCP endpoint"), "{err}");
    assert!(err.message().contains("/health"), "{err}");
    assert_eq!(err.message().matches("unavailable").count(), 1, "{err}");
}

/// The monitor holds the client only while it checks: dropping the last
/// owner frees the client (so nothing is left to ping with) and closes its
/// connections; the monitor, its stop channel gone, ends.
#[test]
fn the_monitor_thread_ends_when_the_client_is_dropped() {
    let server = FakeMcp::start(McpBehaviour::default());
    let c = client(&server.url(), McpTransport::StreamableHttp);
    connected(&c);
    assert!(wait_for(WAIT, || server.fake.rpc_count("ping") >= 2).is_some());
    let weak = Arc::downgrade(&c);
    drop(c);
    assert!(
        wait_for(WAIT, || weak.strong_count() == 0).is_some(),
        "the monitor keeps the client alive"
    );
    assert!(
        wait_for(WAIT, || server.fake.connections_open() == 0).is_some(),
        "the client's connections stay open after it was dropped"
    );
    // With the client gone, the monitor has nothing to ping with.
}

// ----- interop with the real server-everything (npm) ------------------------------

fn server_everything() -> String {
    let path = std::env::var("KV_SERVER_EVERYTHING").unwrap_or_else(|_| {
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/target/peers/node_modules/@modelcontextprotocol/server-everything/dist/index.js"
        )
        .to_string()
    });
    assert!(
        std::path::Path::new(&path).exists(),
        "@modelcontextprotocol/server-everything is not installed at {path}: run scripts/ci/install-mcp-peers.sh (or set KV_SERVER_EVERYTHING to its dist/index.js)"
    );
    path
}

#[test]
#[ignore = "needs the npm peer: scripts/ci/install-mcp-peers.sh, then cargo test -- --ignored interop"]
fn interop_server_everything_streamable_http() {
    let script = server_everything();
    let port = free_port();
    let _child = Child(
        std::process::Command::new("node")
            .arg(&script)
            .arg("streamableHttp")
            .env("PORT", port.to_string())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("node must be installed to run server-everything"),
    );
    let c = McpClient::start(
        &format!("http://127.0.0.1:{port}/mcp"),
        McpTransport::Auto,
        Duration::from_secs(10),
    );
    assert!(
        wait_for(Duration::from_secs(20), || c.status() == Status::Connected).is_some(),
        "server-everything did not come up: {}",
        c.health_details()
    );
    assert_eq!(c.health_details()["transport"], "streamable-http");
    let tools = c.tools().unwrap();
    let names: Vec<&str> = tools.iter().map(|t| t.name.as_str()).collect();
    assert!(
        names.contains(&"echo") && names.contains(&"get-sum"),
        "{names:?}"
    );
    let echo = tools.iter().find(|t| t.name == "echo").unwrap();
    assert_eq!(echo.input_schema["required"], json!(["message"]));

    assert_eq!(
        c.call("echo", &json!({"message": "hello from knowledge-vault"}))
            .unwrap(),
        json!("Echo: hello from knowledge-vault")
    );
    assert_eq!(
        c.call("get-sum", &json!({"a": 2, "b": 40})).unwrap(),
        json!("The sum of 2 and 40 is 42.")
    );
    let structured = c
        .call("get-structured-content", &json!({"location": "Chicago"}))
        .unwrap();
    assert!(structured.get("temperature").is_some(), "{structured}");
    let err = c.call("no_such_tool", &json!({})).unwrap_err();
    assert!(err.message().contains("no_such_tool"), "{err:?}");
}

/// The first chat right after start-up: the monitor's first connection
/// attempt is still under way (the server takes its time to answer
/// `initialize`) when a tool call comes. The call waits for that attempt
/// and uses its connection, instead of failing at once or starting a second
/// handshake.
#[test]
fn a_call_waits_for_the_connection_attempt_in_progress() {
    let server = FakeMcp::start(McpBehaviour {
        initialize_delay: Duration::from_millis(1500),
        call: Box::new(|_, _| Ok(text_result("answered"))),
        ..Default::default()
    });
    let c = client(&server.url(), McpTransport::StreamableHttp);
    assert!(wait_for(WAIT, || server.fake.rpc_count("initialize") == 1).is_some());
    assert_eq!(c.status(), Status::Disconnected, "the attempt is under way");
    assert_eq!(c.call("echo", &json!({})).unwrap(), json!("answered"));
    assert_eq!(server.fake.rpc_count("initialize"), 1, "one handshake");
    assert_eq!(c.status(), Status::Connected);
}

/// A server that answers `initialize` slowly and then never answers
/// `notifications/initialized`: the monitor's attempt lasts about
/// 3.5 s + MCP_TIMEOUT (4 s). A call made meanwhile waits for it no longer
/// than MCP_TIMEOUT from its own start, and says why it gave up; it never
/// holds an HTTP worker for the whole attempt, let alone queues a second one.
#[test]
fn a_call_waits_behind_a_hanging_connection_attempt_no_longer_than_mcp_timeout() {
    let timeout = 4 * SECOND;
    let server = FakeMcp::start(McpBehaviour {
        initialize_delay: Duration::from_millis(3500),
        hang_on_initialized: true,
        ..Default::default()
    });
    let c = McpClient::start_with(&server.url(), McpTransport::StreamableHttp, timeout, fast());
    assert!(wait_for(WAIT, || server.fake.rpc_count("initialize") == 1).is_some());
    let started = Instant::now();
    let r = c.call("list_repositories", &json!({}));
    let took = started.elapsed();
    let Err(ToolError::Unavailable(why)) = r else {
        panic!("{r:?}");
    };
    // Waiting out the attempt would take 7.5 s from its start.
    assert!(took < timeout + 1500 * MS, "the call waited {took:?}");
    assert!(why.contains("MCP_TIMEOUT"), "{why}");
    assert_eq!(server.fake.rpc_count("initialize"), 1, "no second attempt");
    assert_eq!(c.status(), Status::Disconnected);
}
