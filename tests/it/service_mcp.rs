//! The REST endpoints when the tools come from an external MCP server, as a
//! user would run it: against our own binary as a real MCP server (Streamable
//! HTTP), against a simple-HTTP tool server, with a server that is down at
//! start, comes up, and goes away again, and with a key in the server's URL
//! that must never be shown.

use crate::support::fake_tools;
use crate::support::kv;
use crate::support::mcp_fake;

use fake_tools::FakeTools;
use kv::{Kv, json};
use mcp_fake::{Fake, FakeMcp, McpBehaviour, http, wait_for};
use std::time::Duration;

#[test]
fn rest_through_our_own_mcp_server() {
    let upstream = Kv::start_with_docs(&[]);
    let url = format!("{}/mcp", upstream.base);
    let kv = Kv::start_with_docs(&[("MCP_SERVER_URL", &url)]);
    kv.wait_tools("connected", Duration::from_secs(15));
    let h = json(&kv.get("/health").1);
    assert_eq!(
        h["services"]["mcp_server"]["transport"], "streamable-http",
        "{h}"
    );

    let (status, repos) = kv.get("/api/repos");
    assert_eq!(status, 200, "{repos}");
    assert_eq!(json(&repos), json(&upstream.get("/api/repos").1));
    let name = json(&repos)[0]["name"].as_str().unwrap().to_string();
    assert_eq!(json(&repos)[0]["doc_count"], 3);

    let tree = json(&kv.get(&format!("/api/repos/{name}/tree")).1);
    let paths: Vec<&str> = tree
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["path"].as_str().unwrap())
        .collect();
    assert_eq!(
        paths,
        [
            "README.md",
            "docs/guide with space.md",
            "docs/nested/deep/page.md"
        ]
    );
    assert!(tree.as_array().unwrap().iter().all(|d| d["type"] == "file"));

    let (status, doc) = kv.get(&format!(
        "/api/repos/{name}/files/docs/guide%20with%20space.md"
    ));
    assert_eq!(status, 200, "{doc}");
    let doc = json(&doc);
    assert!(doc["content"].as_str().unwrap().contains("frobnicator"));
    assert_eq!(doc["metadata"]["repo"], name.as_str());
    assert_eq!(doc["metadata"]["path"], "docs/guide with space.md");
    assert!(doc["metadata"]["size"].as_u64().unwrap() > 0);
    assert_eq!(doc["metadata"]["title"], "The Guide");

    let (status, body) = kv.get(&format!("/api/repos/{name}/files/docs/nope.md"));
    assert_eq!(status, 404, "{body}");
    assert!(
        json(&body)["detail"]
            .as_str()
            .unwrap()
            .contains("not found")
    );
    let (status, _) = kv.get("/api/repos/no-such-repo/tree");
    assert_eq!(status, 404);
}

#[test]
fn rest_through_a_simple_http_tool_server() {
    let tools = FakeTools::start();
    // auto: the MCP handshake fails, the simple form answers. A proxy in the
    // environment (a dead one here) is not used for a server on this machine.
    let kv = Kv::start_with_docs(&[
        ("MCP_SERVER_URL", &tools.url),
        ("HTTP_PROXY", "http://127.0.0.1:9"),
        ("http_proxy", "http://127.0.0.1:9"),
    ]);
    kv.wait_tools("connected", Duration::from_secs(15));
    let repos = json(&kv.get("/api/repos").1);
    assert_eq!(
        repos[0],
        serde_json::json!({"name": "alpha", "doc_count": 2, "description": "Alpha docs"})
    );
    let tree = json(&kv.get("/api/repos/alpha/tree").1);
    assert_eq!(tree[1]["path"], "docs/a b.md");
    let doc = json(&kv.get("/api/repos/alpha/files/docs/a%20b.md").1);
    assert_eq!(doc["metadata"]["path"], "docs/a b.md");
    // Not found, as the earlier deployments said it (`{"result": null}`), and
    // as other servers do (an error body): 404 either way.
    let (status, body) = kv.get("/api/repos/alpha/files/zzz.md");
    assert_eq!(status, 404, "{body}");
    assert!(
        json(&body)["detail"]
            .as_str()
            .unwrap()
            .contains("not found"),
        "{body}"
    );
    assert_eq!(kv.get("/api/repos/beta/files/zzz.md").0, 404);
    assert_eq!(kv.get("/api/repos/gamma/tree").0, 404);
    assert_eq!(tools.count("get_documentation"), 3);

    // A tool that fails on the server: 500 with the server's message.
    let (status, body) = kv.get("/api/repos/broken/tree");
    assert_eq!(status, 500, "{body}");
    assert!(
        json(&body)["detail"].as_str().unwrap().contains("exploded"),
        "{body}"
    );

    // Another server's shapes still reach the frontend in the contract's.
    let tree = json(&kv.get("/api/repos/plain/tree").1);
    assert_eq!(
        tree,
        serde_json::json!([{"path": "README.md", "type": "file"}, {"path": "docs/x.md", "type": "file"}])
    );
    let doc = json(&kv.get("/api/repos/plain/files/README.md").1);
    assert_eq!(
        doc,
        serde_json::json!({"content": "# Plain\nJust text.", "metadata": {"repo": "plain", "path": "README.md", "size": 18}})
    );
}

/// The first request right after start-up, while the MCP handshake is still
/// under way (the server takes 3 s to answer `initialize`), waits for it
/// instead of failing 503.
#[test]
fn the_first_request_after_start_up_waits_for_the_handshake() {
    let server = FakeMcp::start(McpBehaviour {
        initialize_delay: Duration::from_secs(3),
        call: Box::new(|_, _| {
            Ok(
                serde_json::json!({"content": [{"type": "text", "text": r#"[{"name":"alpha","doc_count":1}]"#}]}),
            )
        }),
        ..Default::default()
    });
    let kv = Kv::start_with_docs(&[("MCP_SERVER_URL", &server.url())]);
    assert!(
        wait_for(Duration::from_secs(15), || server
            .fake
            .rpc_count("initialize")
            == 1)
        .is_some()
    );
    let (status, body) = kv.get("/api/repos");
    assert_eq!(status, 200, "{body}");
    assert_eq!(json(&body)[0]["name"], "alpha");
    assert_eq!(server.fake.rpc_count("initialize"), 1, "one handshake");
}

#[test]
fn tool_server_down_at_start_then_up_then_gone() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let url = format!("http://127.0.0.1:{port}");
    // MCP_TIMEOUT bounds calls on connections the vanished server left open.
    let kv = Kv::start_with_docs(&[
        ("MCP_SERVER_URL", &url),
        ("MCP_TRANSPORT", "simple-http"),
        ("MCP_TIMEOUT", "2"),
    ]);
    let h = json(&kv.get("/health").1);
    assert_eq!(h["services"]["mcp_server"]["status"], "disconnected");
    assert_eq!(h["status"], "unhealthy");
    for path in [
        "/api/repos",
        "/api/repos/alpha/tree",
        "/api/repos/alpha/files/README.md",
    ] {
        let (status, body) = kv.get(path);
        assert_eq!(status, 503, "{path}: {body}");
        assert!(json(&body)["detail"].is_string());
    }

    // It comes up: used within a few seconds, no restart.
    let tools = FakeTools::start_on(port);
    kv.wait_tools("connected", Duration::from_secs(20));
    assert_eq!(json(&kv.get("/health").1)["status"], "degraded");
    assert_eq!(kv.get("/api/repos").0, 200);

    // It goes away: degraded again, repository endpoints 503.
    drop(tools);
    assert!(
        wait_for(Duration::from_secs(15), || kv.get("/api/repos").0 == 503).is_some(),
        "repository endpoints never turned 503"
    );
    kv.wait_tools("disconnected", Duration::from_secs(15));
}

#[test]
fn claude_configured_but_tools_down_is_degraded() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let url = format!("http://127.0.0.1:{port}");
    let kv = Kv::start_with_docs(&[("MCP_SERVER_URL", &url), ("ANTHROPIC_API_KEY", "sk-ant-x")]);
    let h = json(&kv.get("/health").1);
    assert_eq!(h["status"], "degraded", "{h}");
    assert_eq!(h["services"]["claude_api"]["status"], "available");
    assert_eq!(h["services"]["mcp_server"]["status"], "disconnected");
}

/// `MCP_SERVER_URL` with a key in its query string (and a password), a
/// server that echoes the request target in its error bodies, and the most
/// verbose log: the key shows nowhere a user or an operator looks.
#[test]
fn a_key_in_the_server_url_is_never_shown() {
    const SECRET: &str = "SECRET-KEY-4711";
    let echo = Fake::start(|req| {
        let text = format!("Cannot {} {}", req.method, req.path);
        http(404, &[("content-type", "text/plain")], text.as_bytes())
    });
    let url = format!(
        "http://kv:pw-{SECRET}@{}/mcp?api_key={SECRET}&tenant=t1",
        echo.addr
    );
    let kv = Kv::start_with_docs(&[("MCP_SERVER_URL", &url), ("LOG_LEVEL", "trace")]);
    // The echo server saw the key: it was sent, so it could be leaked.
    assert!(
        wait_for(Duration::from_secs(15), || echo
            .requests()
            .iter()
            .any(|r| r.path.contains(SECRET)))
        .is_some()
    );
    // Both forms were tried and refused; the reason is recorded.
    let mut health = String::new();
    assert!(
        wait_for(Duration::from_secs(15), || {
            health = kv.get("/health").1;
            json(&health)["services"]["mcp_server"]["last_error"]
                .as_str()
                .is_some_and(|e| e.contains("neither an MCP endpoint"))
        })
        .is_some(),
        "{health}"
    );
    let shown = format!("http://{}/mcp?api_key=***&tenant=***", echo.addr);
    assert_eq!(json(&health)["services"]["mcp_server"]["url"], shown);
    assert!(health.contains("Cannot POST /mcp?api_key=***"), "{health}");

    let (status, body) = kv.get("/api/repos");
    assert_eq!(status, 503, "{body}");
    assert!(body.contains(&shown), "{body}");

    assert!(
        kv.wait_log(
            &format!("[WARN] MCP server {shown} unavailable"),
            Duration::from_secs(15)
        ),
        "{}",
        kv.log()
    );
    for (what, text) in [
        ("/health", &health),
        ("503 body", &body),
        ("log", &kv.log()),
    ] {
        assert!(!text.contains(SECRET), "{what} shows the key: {text}");
        assert!(!text.contains("pw-"), "{what} shows the password: {text}");
    }
}
