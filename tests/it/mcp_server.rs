//! The MCP server side (`mcp_server`): our own client against our own
//! server over HTTP, the stdio transport through in-memory pipes, the HTTP
//! transport request by request (sessions, versions, refusals of Origin,
//! Host and bad JSON), and (ignored by default, run with
//! `-- --ignored interop`, see `scripts/test`) the official Python SDK as a
//! client.

use crate::support;

use knowledge_vault::config::McpTransport;
use knowledge_vault::mcp_server::{HTTP_METHODS, McpHttpReply, McpHttpRequest, McpServer};
use knowledge_vault::tools::mcp::{McpClient, MonitorIntervals};
use knowledge_vault::tools::{
    Status, ToolError, ToolProvider, ToolSpec, check_relative_path, documentation_tools,
};
use serde_json::{Value, json};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;
use support::mcp_fake::{Child, wait_for};
use support::mcp_http::McpHttpServer;

/// The four documentation tools over two tiny in-memory repositories.
struct FakeDocs;

impl ToolProvider for FakeDocs {
    fn call(&self, name: &str, args: &Value) -> Result<Value, ToolError> {
        let repo = || args["repo"].as_str().unwrap_or("");
        let known = |r: &str| {
            if r == "alpha" || r == "beta docs" {
                Ok(())
            } else {
                Err(ToolError::NotFound(format!("Repository not found: {r}")))
            }
        };
        match name {
            "list_repositories" => Ok(json!([
                {"name": "alpha", "doc_count": 2, "description": "Alpha library"},
                {"name": "beta docs", "doc_count": 1}
            ])),
            "list_repo_docs" => {
                known(repo())?;
                Ok(
                    json!([{"path": "README.md", "type": "file"}, {"path": "docs/guide — 日本.md", "type": "file"}]),
                )
            }
            "get_documentation" => {
                known(repo())?;
                let path = args["path"].as_str().unwrap_or("");
                check_relative_path(path)?;
                Ok(
                    json!({"content": format!("# {path}\n\nConfiguration lives in alpha.toml.\n"),
                          "metadata": {"repo": repo(), "path": path, "size": 42, "title": path}}),
                )
            }
            "search_documentation" => {
                let q = args["query"].as_str().unwrap_or("");
                if q.is_empty() {
                    return Err(ToolError::BadInput("query must not be empty".into()));
                }
                Ok(
                    json!([{"repo": "alpha", "path": "README.md", "title": "Alpha", "heading": "Configuration",
                           "snippet": format!("…{q}…"), "score": 1.5}]),
                )
            }
            other => Err(ToolError::Failed(format!("Unknown tool: {other}"))),
        }
    }
    fn tools(&self) -> Result<Vec<ToolSpec>, ToolError> {
        Ok(documentation_tools())
    }
    fn status(&self) -> Status {
        Status::Connected
    }
}

fn loopback() -> IpAddr {
    "127.0.0.1".parse().unwrap()
}

fn server() -> McpServer {
    McpServer::with_checks(
        Arc::new(FakeDocs),
        vec!["http://localhost:5173".into()],
        loopback(),
    )
}

// ----- our client, our server ----------------------------------------------------

#[test]
fn our_client_lists_and_calls_every_tool_over_http() {
    let http = McpHttpServer::start(Arc::new(server()));
    let c = McpClient::start_with(
        &http.url(),
        McpTransport::Auto,
        Duration::from_secs(5),
        MonitorIntervals {
            connected: Duration::from_millis(200),
            disconnected: Duration::from_millis(100),
        },
    );
    assert!(wait_for(Duration::from_secs(20), || c.status() == Status::Connected).is_some());
    let details = c.health_details();
    assert_eq!(details["transport"], "streamable-http");
    assert_eq!(details["protocol_version"], "2025-06-18");
    assert_eq!(details["server"]["name"], "knowledge-vault");

    assert_eq!(c.tools().unwrap(), documentation_tools());
    let calls = [
        ("list_repositories", json!({})),
        ("list_repo_docs", json!({"repo": "beta docs"})),
        (
            "get_documentation",
            json!({"repo": "alpha", "path": "docs/guide — 日本.md"}),
        ),
        (
            "search_documentation",
            json!({"query": "configuration", "limit": 3}),
        ),
    ];
    for (name, args) in calls {
        assert_eq!(c.call(name, &args), FakeDocs.call(name, &args), "{name}");
    }
    // Errors come back as tool errors with the provider's message.
    assert_eq!(
        c.call("list_repo_docs", &json!({"repo": "nope"})),
        Err(ToolError::NotFound("Repository not found: nope".into()))
    );
    let err = c
        .call(
            "get_documentation",
            &json!({"repo": "alpha", "path": "../../etc/passwd"}),
        )
        .unwrap_err();
    assert!(
        err.message().contains("'..' segments are not allowed"),
        "{err:?}"
    );
    assert_eq!(
        c.call("no_such_tool", &json!({})),
        Err(ToolError::Failed("Unknown tool: no_such_tool".into()))
    );
}

// ----- stdio ---------------------------------------------------------------------

fn stdio(lines: &[&str]) -> Vec<Value> {
    let input = lines.join("\n") + "\n";
    let mut out = Vec::new();
    server()
        .serve_stdio(std::io::Cursor::new(input.into_bytes()), &mut out)
        .unwrap();
    let text = String::from_utf8(out).unwrap();
    assert!(text.ends_with('\n') || text.is_empty());
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

#[test]
fn stdio_serves_the_whole_session_one_compact_line_each() {
    let replies = stdio(&[
        r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-03-26","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#,
        r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
        "",
        r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#,
        r#"{"jsonrpc":"2.0","id":"three","method":"tools/call","params":{"name":"list_repositories","arguments":{}}}"#,
        r#"{"jsonrpc":"2.0","id":4,"method":"tools/call","params":{"name":"get_documentation","arguments":{"repo":"alpha","path":"../x"}}}"#,
        r#"{"jsonrpc":"2.0","id":5,"method":"ping"}"#,
        r#"{"jsonrpc":"2.0","id":6,"method":"foo/bar"}"#,
        r#"{"jsonrpc":"2.0","id":7,"method":"tools/call""#,
        r#"[{"jsonrpc":"2.0","id":8,"method":"ping"}]"#,
        r#"{"jsonrpc":"2.0","id":9,"method":"tools/call","params":{"arguments":{}}}"#,
    ]);
    assert_eq!(replies.len(), 9, "{replies:#?}");
    let by_id = |id: Value| replies.iter().find(|r| r["id"] == id).unwrap().clone();

    let init = by_id(json!(1));
    assert_eq!(init["result"]["protocolVersion"], "2025-03-26");
    assert_eq!(
        init["result"]["capabilities"],
        json!({"tools": {"listChanged": false}})
    );
    assert_eq!(init["result"]["serverInfo"]["name"], "knowledge-vault");
    assert_eq!(
        init["result"]["serverInfo"]["version"],
        env!("CARGO_PKG_VERSION")
    );

    let tools = by_id(json!(2))["result"]["tools"].clone();
    let names: Vec<&str> = tools
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
    assert_eq!(tools[1]["inputSchema"]["required"], json!(["query"]));

    let call = by_id(json!("three"))["result"].clone();
    assert_eq!(call["isError"], false);
    let expected = FakeDocs.call("list_repositories", &json!({})).unwrap();
    assert_eq!(call["structuredContent"], json!({"result": expected}));
    assert_eq!(call["content"][0]["type"], "text");
    assert_eq!(
        serde_json::from_str::<Value>(call["content"][0]["text"].as_str().unwrap()).unwrap(),
        expected
    );

    let refused = by_id(json!(4))["result"].clone();
    assert_eq!(refused["isError"], true);
    assert!(
        refused["content"][0]["text"]
            .as_str()
            .unwrap()
            .contains("'..'")
    );

    assert_eq!(by_id(json!(5))["result"], json!({}));
    assert_eq!(by_id(json!(6))["error"]["code"], -32601);
    assert_eq!(by_id(json!(9))["error"]["code"], -32602);
    let nulls: Vec<i64> = replies
        .iter()
        .filter(|r| r["id"].is_null())
        .map(|r| r["error"]["code"].as_i64().unwrap())
        .collect();
    assert_eq!(nulls, [-32700, -32600], "parse error, then batch refusal");
}

#[test]
fn stdio_answers_an_unknown_version_with_ours() {
    let replies = stdio(&[
        r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2099-01-01","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#,
    ]);
    assert_eq!(replies[0]["result"]["protocolVersion"], "2025-06-18");
}

// ----- the HTTP transport, request by request -----------------------------------------

struct Http<'a> {
    method: &'a str,
    host: Option<&'a str>,
    origin: Option<&'a str>,
    accept: Option<&'a str>,
    session: Option<&'a str>,
    version: Option<&'a str>,
    body: &'a str,
}

impl Default for Http<'_> {
    fn default() -> Self {
        Http {
            method: "POST",
            host: Some("127.0.0.1:3001"),
            origin: None,
            accept: Some("application/json, text/event-stream"),
            session: None,
            version: None,
            body: "",
        }
    }
}

fn send(s: &McpServer, r: Http<'_>) -> McpHttpReply {
    s.handle_http(&McpHttpRequest {
        method: r.method,
        host: r.host,
        origin: r.origin,
        accept: r.accept,
        content_type: Some("application/json"),
        session_id: r.session,
        protocol_version: r.version,
        body: r.body.as_bytes(),
    })
}

fn header<'a>(reply: &'a McpHttpReply, name: &str) -> Option<&'a str> {
    reply
        .headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

fn body(reply: &McpHttpReply) -> Value {
    serde_json::from_slice(&reply.body).unwrap_or(Value::Null)
}

const INIT: &str = r#"{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#;
const LIST: &str = r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#;

/// The HTTP status of a tools/list in `session`.
fn list_status(s: &McpServer, session: &str) -> u16 {
    send(
        s,
        Http {
            session: Some(session),
            body: LIST,
            ..Default::default()
        },
    )
    .status
}

fn initialize(s: &McpServer) -> String {
    let reply = send(
        s,
        Http {
            body: INIT,
            ..Default::default()
        },
    );
    assert_eq!(reply.status, 200);
    header(&reply, "Mcp-Session-Id").unwrap().to_string()
}

#[test]
fn initialize_creates_a_session_that_later_requests_must_carry() {
    let s = server();
    let reply = send(
        &s,
        Http {
            body: INIT,
            ..Default::default()
        },
    );
    assert_eq!(reply.status, 200);
    assert_eq!(header(&reply, "Content-Type"), Some("application/json"));
    let sid = header(&reply, "Mcp-Session-Id").unwrap().to_string();
    assert_eq!(sid.len(), 36, "a uuid: {sid}");
    assert_eq!(body(&reply)["result"]["protocolVersion"], "2025-06-18");
    assert!(body(&reply)["result"]["instructions"].is_string());

    let note = send(
        &s,
        Http {
            session: Some(&sid),
            version: Some("2025-06-18"),
            body: r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
            ..Default::default()
        },
    );
    assert_eq!((note.status, note.body.len()), (202, 0));

    let list = send(
        &s,
        Http {
            session: Some(&sid),
            body: LIST,
            ..Default::default()
        },
    );
    assert_eq!(list.status, 200);
    assert_eq!(header(&list, "Content-Type"), Some("application/json"));
    assert_eq!(body(&list)["result"]["tools"].as_array().unwrap().len(), 4);

    let missing = send(
        &s,
        Http {
            body: LIST,
            ..Default::default()
        },
    );
    assert_eq!(missing.status, 400);
    assert_eq!(
        body(&missing)["error"]["message"],
        "Bad Request: Missing session ID"
    );
    assert_eq!(body(&missing)["id"], Value::Null);

    let unknown = send(
        &s,
        Http {
            session: Some("not-a-session"),
            body: LIST,
            ..Default::default()
        },
    );
    assert_eq!(unknown.status, 404);
    assert_eq!(body(&unknown)["error"]["message"], "Session not found");

    let bad_version = send(
        &s,
        Http {
            session: Some(&sid),
            version: Some("1999-01-01"),
            body: LIST,
            ..Default::default()
        },
    );
    assert_eq!(bad_version.status, 400);
    assert!(
        body(&bad_version)["error"]["message"]
            .as_str()
            .unwrap()
            .contains("1999-01-01")
    );

    // DELETE ends the session; after it, the id is unknown.
    let del = send(
        &s,
        Http {
            method: "DELETE",
            session: Some(&sid),
            ..Default::default()
        },
    );
    assert_eq!(del.status, 200);
    assert_eq!(list_status(&s, &sid), 404);
    assert_eq!(
        send(
            &s,
            Http {
                method: "DELETE",
                session: Some(&sid),
                ..Default::default()
            }
        )
        .status,
        404
    );
    assert_eq!(
        send(
            &s,
            Http {
                method: "DELETE",
                ..Default::default()
            }
        )
        .status,
        400
    );
}

#[test]
fn version_negotiation_echoes_known_versions_only() {
    let s = server();
    for (offered, answered) in [
        ("2024-11-05", "2024-11-05"),
        ("2025-03-26", "2025-03-26"),
        ("2025-11-25", "2025-11-25"),
        ("2099-01-01", "2025-06-18"),
    ] {
        let init = INIT.replace("2025-06-18", offered);
        let reply = send(
            &s,
            Http {
                body: &init,
                ..Default::default()
            },
        );
        assert_eq!(
            body(&reply)["result"]["protocolVersion"],
            answered,
            "{offered}"
        );
    }
}

#[test]
fn bad_messages_get_json_rpc_errors() {
    let s = server();
    let sid = initialize(&s);
    let parse = send(
        &s,
        Http {
            session: Some(&sid),
            body: "{not json",
            ..Default::default()
        },
    );
    assert_eq!(parse.status, 400);
    assert_eq!(body(&parse)["error"]["code"], -32700);
    assert_eq!(body(&parse)["id"], Value::Null);

    let batch = send(
        &s,
        Http {
            session: Some(&sid),
            body: &format!("[{LIST}]"),
            ..Default::default()
        },
    );
    assert_eq!(batch.status, 400);
    assert_eq!(body(&batch)["error"]["code"], -32600);

    let unknown = send(
        &s,
        Http {
            session: Some(&sid),
            body: r#"{"jsonrpc":"2.0","id":8,"method":"foo/bar"}"#,
            ..Default::default()
        },
    );
    assert_eq!(unknown.status, 200);
    assert_eq!(body(&unknown)["error"]["code"], -32601);
    assert_eq!(body(&unknown)["id"], 8);

    let get = send(
        &s,
        Http {
            method: "GET",
            session: Some(&sid),
            accept: Some("text/event-stream"),
            ..Default::default()
        },
    );
    assert_eq!(get.status, 405);
    assert_eq!(header(&get, "Allow"), Some(HTTP_METHODS));
    assert!(
        body(&get)["error"]["message"]
            .as_str()
            .unwrap()
            .contains("no GET stream")
    );

    let html = send(
        &s,
        Http {
            session: Some(&sid),
            accept: Some("text/html"),
            body: LIST,
            ..Default::default()
        },
    );
    assert_eq!(html.status, 406);
}

#[test]
fn tool_calls_answer_sse_when_the_client_accepts_it() {
    let s = server();
    let sid = initialize(&s);
    let call = r#"{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"list_repo_docs","arguments":{"repo":"alpha"}}}"#;
    let sse = send(
        &s,
        Http {
            session: Some(&sid),
            body: call,
            ..Default::default()
        },
    );
    assert_eq!(sse.status, 200);
    assert_eq!(header(&sse, "Content-Type"), Some("text/event-stream"));
    assert_eq!(header(&sse, "Mcp-Session-Id"), Some(sid.as_str()));
    let text = String::from_utf8(sse.body).unwrap();
    let data = text
        .strip_prefix("event: message\ndata: ")
        .and_then(|t| t.strip_suffix("\n\n"))
        .unwrap_or_else(|| panic!("{text:?}"));
    let msg: Value = serde_json::from_str(data).unwrap();
    assert_eq!(msg["id"], 5);
    assert_eq!(
        msg["result"]["structuredContent"]["result"][0]["path"],
        "README.md"
    );

    let json_only = send(
        &s,
        Http {
            session: Some(&sid),
            accept: Some("application/json"),
            body: call,
            ..Default::default()
        },
    );
    assert_eq!(header(&json_only, "Content-Type"), Some("application/json"));
    assert_eq!(body(&json_only)["result"], msg["result"]);

    // A tool failure is a result with isError, not a JSON-RPC error.
    let missing = r#"{"jsonrpc":"2.0","id":6,"method":"tools/call","params":{"name":"list_repo_docs","arguments":{"repo":"zzz"}}}"#;
    let failed = send(
        &s,
        Http {
            session: Some(&sid),
            accept: Some("application/json"),
            body: missing,
            ..Default::default()
        },
    );
    assert_eq!(body(&failed)["result"]["isError"], true);
    assert_eq!(
        body(&failed)["result"]["content"][0]["text"],
        "Repository not found: zzz"
    );
}

#[test]
fn foreign_origins_are_refused() {
    let s = server();
    for origin in [
        "http://evil.example",
        "null",
        "http://localhost.evil.example:3001",
        "http://user@localhost:1",
    ] {
        let r = send(
            &s,
            Http {
                origin: Some(origin),
                body: INIT,
                ..Default::default()
            },
        );
        assert_eq!(r.status, 403, "{origin}");
        assert_eq!(body(&r)["error"]["message"], "Invalid Origin header");
    }
    for origin in [
        "http://localhost:5173",
        "http://LOCALHOST:5173/",
        "http://127.0.0.1:8080",
        "http://[::1]:3001",
        "http://localhost",
    ] {
        let r = send(
            &s,
            Http {
                origin: Some(origin),
                body: INIT,
                ..Default::default()
            },
        );
        assert_eq!(r.status, 200, "{origin}");
    }
}

#[test]
fn foreign_hosts_are_refused_against_dns_rebinding() {
    let s = server();
    for host in [
        "evil.example:3001",
        "evil.example",
        "192.168.1.5:3001",
        "localhost.evil.example",
    ] {
        let r = send(
            &s,
            Http {
                host: Some(host),
                body: INIT,
                ..Default::default()
            },
        );
        assert_eq!(r.status, 421, "{host}");
        assert_eq!(body(&r)["error"]["message"], "Invalid Host header");
    }
    for host in [
        "127.0.0.1:3001",
        "localhost:3001",
        "[::1]:3001",
        "LocalHost",
        "127.0.0.1",
    ] {
        assert_eq!(
            send(
                &s,
                Http {
                    host: Some(host),
                    body: INIT,
                    ..Default::default()
                }
            )
            .status,
            200,
            "{host}"
        );
    }
    // Listening on a specific address: that address is fine too.
    let lan = McpServer::with_checks(Arc::new(FakeDocs), vec![], "192.168.1.5".parse().unwrap());
    assert_eq!(
        send(
            &lan,
            Http {
                host: Some("192.168.1.5:3001"),
                body: INIT,
                ..Default::default()
            }
        )
        .status,
        200
    );
    assert_eq!(
        send(
            &lan,
            Http {
                host: Some("evil.example:3001"),
                body: INIT,
                ..Default::default()
            }
        )
        .status,
        421
    );
    // Listening on all interfaces (Docker): any Host; Origin is still checked.
    let all = McpServer::with_checks(Arc::new(FakeDocs), vec![], "0.0.0.0".parse().unwrap());
    assert_eq!(
        send(
            &all,
            Http {
                host: Some("vault.internal:3001"),
                body: INIT,
                ..Default::default()
            }
        )
        .status,
        200
    );
    assert_eq!(
        send(
            &all,
            Http {
                origin: Some("http://evil.example"),
                body: INIT,
                ..Default::default()
            }
        )
        .status,
        403
    );
}

#[test]
fn sessions_expire_when_idle_and_are_bounded_in_number() {
    let idle = Duration::from_secs(1);
    let s = server().with_session_limits(idle, 2);
    let a = initialize(&s);
    let b = initialize(&s);
    let c = initialize(&s); // evicts a, the oldest
    assert_eq!(s.session_count(), 2);
    assert_eq!(list_status(&s, &a), 404);
    // b is kept in use (every 50 ms); c, never used, idles out.
    let expired = wait_for(Duration::from_secs(10), || {
        assert_eq!(list_status(&s, &b), 200, "a session in use expired");
        s.session_count() == 1
    });
    assert!(
        expired.is_some_and(|took| took >= idle / 2),
        "expired after {expired:?}"
    );
    assert_eq!(list_status(&s, &c), 404);
    assert_eq!(list_status(&s, &b), 200);
}

#[test]
fn headers_over_real_http() {
    let http = McpHttpServer::start(Arc::new(server()));
    let agent = ureq::Agent::new_with_config(
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .build(),
    );
    let resp = agent
        .post(&http.url())
        .header("Content-Type", "application/json")
        .header("Accept", "application/json, text/event-stream")
        .send(INIT)
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert!(resp.headers().get("mcp-session-id").is_some());
    let resp = agent
        .post(&http.url())
        .header("Content-Type", "application/json")
        .header("Origin", "http://evil.example")
        .send(INIT)
        .unwrap();
    assert_eq!(resp.status(), 403);
}

// ----- interop: the official MCP Python SDK against the real binary ---------------------

fn python() -> String {
    let path = std::env::var("KV_PYTHON").unwrap_or_else(|_| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/target/peers/venv/bin/python").to_string()
    });
    let ok = std::process::Command::new(&path)
        .args(["-c", "import mcp"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok,
        "the MCP Python SDK is not installed for {path}: run scripts/ci/install-mcp-peers.sh (or set KV_PYTHON to a python with `pip install mcp`)"
    );
    path
}

fn sdk_script() -> String {
    concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/ci/mcp_sdk_client.py").to_string()
}

/// A documentation folder with two repositories.
fn fixture_docs() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("kv-mcp-interop-{}", uuid::Uuid::new_v4()));
    for (path, text) in [
        (
            "alpha/README.md",
            "# Alpha\n\nAlpha is a tiny library. Configuration lives in alpha.toml.\n",
        ),
        (
            "alpha/docs/guide.md",
            "# Guide\n\nRetries happen three times.\n",
        ),
        (
            "beta/README.md",
            "# Beta\n\nBeta streams events over server-sent events.\n",
        ),
    ] {
        let p = dir.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    dir
}

fn check_sdk_report(out: std::process::Output) {
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the Python SDK client failed:\nstdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(
        report["tools"],
        json!([
            "get_documentation",
            "list_repo_docs",
            "list_repositories",
            "search_documentation"
        ])
    );
    assert_eq!(report["server"]["name"], "knowledge-vault");
    let repos = report["calls"]["list_repositories"]["result"]
        .as_array()
        .unwrap();
    let names: Vec<&str> = repos.iter().map(|r| r["name"].as_str().unwrap()).collect();
    assert!(
        names.contains(&"alpha") && names.contains(&"beta"),
        "{names:?}"
    );
    assert!(report["calls"]["get_documentation"]["result"]["content"].is_string());
    assert!(report["calls"]["search_documentation"]["result"].is_array());
}

#[test]
#[ignore = "needs the Python SDK: scripts/ci/install-mcp-peers.sh, then cargo test -- --ignored interop"]
fn interop_python_sdk_streamable_http() {
    let python = python();
    let docs = fixture_docs();
    let port = support::mcp_fake::free_port();
    let _service = Child(
        std::process::Command::new(env!("CARGO_BIN_EXE_knowledge-vault"))
            .env("PORT", port.to_string())
            .env("HOST", "127.0.0.1")
            .env("DOCS_DIR", &docs)
            // Empty counts as unset, and wins over any .env file.
            .env("MCP_SERVER_URL", "")
            .env("ANTHROPIC_API_KEY", "")
            .current_dir(&docs)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let health = format!("http://127.0.0.1:{port}/health");
    let up = wait_for(Duration::from_secs(20), || {
        ureq::get(&health).call().is_ok_and(|r| r.status() == 200)
    });
    assert!(up.is_some(), "knowledge-vault did not answer {health}");
    let out = std::process::Command::new(python)
        .arg(sdk_script())
        .arg("http")
        .arg(format!("http://127.0.0.1:{port}/mcp"))
        .output()
        .unwrap();
    check_sdk_report(out);
    let _ = std::fs::remove_dir_all(docs);
}

#[test]
#[ignore = "needs the Python SDK: scripts/ci/install-mcp-peers.sh, then cargo test -- --ignored interop"]
fn interop_python_sdk_stdio() {
    let python = python();
    let docs = fixture_docs();
    let out = std::process::Command::new(python)
        .arg(sdk_script())
        .arg("stdio")
        .arg(env!("CARGO_BIN_EXE_knowledge-vault"))
        .arg("mcp")
        .env("DOCS_DIR", &docs)
        .env("MCP_SERVER_URL", "")
        .env("ANTHROPIC_API_KEY", "")
        .current_dir(&docs)
        .output()
        .unwrap();
    check_sdk_report(out);
    let _ = std::fs::remove_dir_all(docs);
}

#[test]
#[ignore = "needs the Python SDK: scripts/ci/install-mcp-peers.sh, then cargo test -- --ignored interop"]
fn interop_python_sdk_against_the_http_transport_alone() {
    // The same script against McpServer with the fake provider, independent of the binary's wiring.
    let python = python();
    let http = McpHttpServer::start(Arc::new(server()));
    let out = std::process::Command::new(python)
        .arg(sdk_script())
        .arg("http")
        .arg(http.url())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the Python SDK client failed:\nstdout: {stdout}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_str(stdout.trim()).unwrap();
    assert_eq!(report["server"]["name"], "knowledge-vault");
    assert_eq!(
        report["calls"]["list_repositories"]["result"],
        FakeDocs.call("list_repositories", &json!({})).unwrap()
    );
    assert!(
        report["calls"]["escaping_path_error"]
            .as_str()
            .unwrap()
            .contains("'..'")
    );
}
