//! The service as a user touches it over HTTP: the CLI, configuration, REST
//! routes, CORS, bounds and timeouts. Runs the real binary.

use crate::support::kv;

use kv::{Kv, TempDir, json, raw_request, request, request_full};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

#[test]
fn help_and_version() {
    let out = Command::new(kv::BIN).arg("--help").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("serve") && text.contains("mcp"), "{text}");
    let out = Command::new(kv::BIN).arg("--version").output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("knowledge-vault {}", env!("CARGO_PKG_VERSION"))
    );
    let out = Command::new(kv::BIN).arg("--bogus").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}

fn start_failure(env: &[(&str, &str)], dotenv: Option<&str>) -> (i32, String) {
    let dir = TempDir::new("cfg");
    if let Some(d) = dotenv {
        dir.write(".env", d);
    }
    let mut cmd = Command::new(kv::BIN);
    cmd.current_dir(dir.path()).env_clear();
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

#[test]
fn bad_configuration_stops_with_one_line_naming_the_variable() {
    for (var, val) in [
        ("PORT", "abc"),
        ("CORS_ORIGINS", "[\"http://a\""),
        ("MCP_TIMEOUT", "soon"),
        ("LOG_LEVEL", "chatty"),
    ] {
        let (code, err) = start_failure(&[(var, val)], None);
        assert_eq!(code, 2, "{var}={val}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{err}");
        assert!(err.contains(var), "{err}");
    }
    // From .env as well.
    let (code, err) = start_failure(&[], Some("PORT=not-a-port\n"));
    assert_eq!(code, 2);
    assert!(err.contains("PORT"), "{err}");
}

#[test]
fn environment_wins_over_dotenv() {
    let dir = TempDir::new("dotenv");
    kv::fixture_repo(&dir);
    // .env alone would fail (bad PORT) and allows one origin; the environment
    // fixes PORT, and the .env origin still applies.
    dir.write(".env", "# settings\nPORT=not-a-port\nCORS_ORIGINS=\"http://from-dotenv.test\"\nCLAUDE_MODEL=from-dotenv\n");
    let kv = Kv::start(dir.path(), &[("PORT", "0"), ("CLAUDE_MODEL", "from-env")]);
    let (_, h, _) = request_full(
        &kv.base,
        "GET",
        "/health",
        &[("Origin", "http://from-dotenv.test")],
        None,
    );
    assert!(
        h.iter()
            .any(|(k, v)| k == "access-control-allow-origin" && v == "http://from-dotenv.test"),
        "{h:?}"
    );
    let (_, body) = kv.get("/health");
    assert_eq!(json(&body)["services"]["claude_api"]["model"], "from-env");
}

#[test]
fn health_shape_and_no_secrets_anywhere() {
    let kv = Kv::start_with_docs(&[
        ("ANTHROPIC_API_KEY", "sk-ant-SECRET-123"),
        ("GITHUB_TOKEN", "ghp_SECRET456"),
        ("ANTHROPIC_BASE_URL", "http://127.0.0.1:9"),
    ]);
    let (status, body) = kv.get("/health");
    assert_eq!(status, 200);
    let h = json(&body);
    assert_eq!(h["status"], "healthy", "{h}");
    assert_eq!(h["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(h["services"]["mcp_server"]["status"], "connected");
    assert_eq!(h["services"]["claude_api"]["status"], "available");
    assert_eq!(
        h["services"]["claude_api"]["model"],
        "claude-sonnet-4-20250514"
    );
    kv.get("/api/repos");
    let (_, not_found) = kv.get("/nope?token=ghp_SECRET456");
    // Its request line is logged (without the query) once it is answered.
    assert!(
        kv.wait_log("GET /nope 404", Duration::from_secs(20)),
        "{}",
        kv.log()
    );
    let log = kv.log();
    for secret in ["SECRET-123", "SECRET456"] {
        assert!(!body.contains(secret));
        assert!(!not_found.contains(secret), "{not_found}");
        assert!(!log.contains(secret), "secret in log:\n{log}");
    }
    // One info line per request: method, path, status, milliseconds.
    assert!(
        log.lines()
            .any(|l| l.contains("[INFO] GET /health 200 ") && l.ends_with("ms")),
        "{log}"
    );
}

#[test]
fn offline_health_is_degraded() {
    let kv = Kv::start_with_docs(&[]);
    let h = json(&kv.get("/health").1);
    assert_eq!(h["status"], "degraded");
    assert_eq!(h["services"]["claude_api"]["status"], "unavailable");
    assert_eq!(h["services"]["mcp_server"]["status"], "connected");
}

#[test]
fn cors_allowed_and_refused_origins() {
    let kv = Kv::start_with_docs(&[("CORS_ORIGINS", "http://app.test:5173, https://other.test")]);
    let (status, h, _) = request_full(
        &kv.base,
        "OPTIONS",
        "/api/conversations",
        &[
            ("Origin", "http://app.test:5173"),
            ("Access-Control-Request-Method", "POST"),
            ("Access-Control-Request-Headers", "content-type"),
        ],
        None,
    );
    assert!(status == 204 || status == 200, "{status}");
    let get =
        |h: &Vec<(String, String)>, k: &str| h.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    assert_eq!(
        get(&h, "access-control-allow-origin").as_deref(),
        Some("http://app.test:5173")
    );
    assert_eq!(
        get(&h, "access-control-allow-credentials").as_deref(),
        Some("true")
    );
    assert!(
        get(&h, "access-control-allow-methods")
            .unwrap()
            .contains("POST")
    );
    assert!(
        get(&h, "access-control-allow-headers")
            .unwrap()
            .contains("content-type")
    );

    let (_, h, _) = request_full(
        &kv.base,
        "GET",
        "/health",
        &[("Origin", "https://other.test")],
        None,
    );
    assert_eq!(
        get(&h, "access-control-allow-origin").as_deref(),
        Some("https://other.test")
    );

    for origin in ["http://evil.test", "http://app.test:5174"] {
        let (_, h, _) = request_full(&kv.base, "GET", "/health", &[("Origin", origin)], None);
        assert!(
            h.iter().all(|(k, _)| !k.starts_with("access-control-")),
            "{origin}: {h:?}"
        );
        let (_, h, _) = request_full(
            &kv.base,
            "OPTIONS",
            "/health",
            &[("Origin", origin), ("Access-Control-Request-Method", "GET")],
            None,
        );
        assert!(
            h.iter().all(|(k, _)| !k.starts_with("access-control-")),
            "{origin}: {h:?}"
        );
    }
}

#[test]
fn unknown_route_wrong_method_and_error_shape() {
    let kv = Kv::start_with_docs(&[]);
    let (status, body) = kv.get("/api/nothing");
    assert_eq!(status, 404);
    assert!(json(&body)["detail"].is_string());
    // Every answer is JSON, errors included.
    for path in ["/api/nothing", "/health", "/api/repos"] {
        let (_, h, _) = request_full(&kv.base, "GET", path, &[], None);
        assert!(
            h.iter()
                .any(|(k, v)| k == "content-type" && v == "application/json"),
            "{path}: {h:?}"
        );
    }
    let (status, h, body) = request_full(&kv.base, "DELETE", "/api/repos", &[], None);
    assert_eq!(status, 405);
    assert!(json(&body)["detail"].is_string());
    assert!(h.iter().any(|(k, v)| k == "allow" && v == "GET"));
    let (status, h, _) = request_full(&kv.base, "PUT", "/api/conversations", &[], None);
    assert_eq!(status, 405);
    assert!(h.iter().any(|(k, v)| k == "allow" && v == "GET, POST"));
    let (status, _) = kv.get("/ws/chat/abc");
    assert_eq!(status, 400);
}

#[test]
fn request_body_over_one_mib_is_refused() {
    let kv = Kv::start_with_docs(&[]);
    let big = "x".repeat(1024 * 1024 + 1);
    let (status, body) = request(
        &kv.base,
        "POST",
        "/api/conversations",
        &[("Content-Type", "application/json")],
        Some(&big),
    );
    assert_eq!(status, 413, "{body}");
    assert!(json(&body)["detail"].as_str().unwrap().contains("larger"));
    // Chunked, without a length: still bounded.
    let mut s = TcpStream::connect(("127.0.0.1", kv.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"POST /api/conversations HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n").unwrap();
    let chunk = vec![b'a'; 64 * 1024];
    for _ in 0..17 {
        if s.write_all(format!("{:x}\r\n", chunk.len()).as_bytes())
            .is_err()
            || s.write_all(&chunk).is_err()
            || s.write_all(b"\r\n").is_err()
        {
            break;
        }
    }
    let _ = s.write_all(b"0\r\n\r\n");
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    assert!(
        String::from_utf8_lossy(&out).starts_with("HTTP/1.1 413"),
        "{}",
        String::from_utf8_lossy(&out)
    );
    // A small body is fine.
    let (status, body) = request(
        &kv.base,
        "POST",
        "/api/conversations",
        &[("Content-Type", "application/json")],
        Some("{}"),
    );
    assert_eq!(status, 200);
    assert_eq!(json(&body)["id"].as_str().unwrap().len(), 36);
}

#[test]
fn escaping_paths_are_refused_before_any_tool_runs() {
    let kv = Kv::start_with_docs(&[]);
    for path in [
        "/api/repos/alpha/files/..%2F..%2Fetc%2Fpasswd",
        "/api/repos/alpha/files/docs/%2E%2E/%2E%2E/secret.md",
        "/api/repos/alpha/files/%2Fetc%2Fpasswd",
        "/api/repos/alpha/files/a%00b.md",
        "/api/repos/..%2F/tree",
        "/api/repos/alpha/files/%ZZ",
    ] {
        let (status, body) = kv.get(path);
        assert_eq!(status, 400, "{path}: {body}");
        assert!(json(&body)["detail"].is_string());
    }
    // Raw `..` segments (a client that does not normalise) too.
    let (status, _) = raw_request(kv.port, b"GET /api/repos/alpha/files/../../etc/passwd HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n");
    assert_eq!(status, 400);
}

#[test]
fn conversations_create_and_read() {
    let kv = Kv::start_with_docs(&[]);
    let (status, body) = request(&kv.base, "POST", "/api/conversations", &[], None);
    assert_eq!(status, 200);
    let id = json(&body)["id"].as_str().unwrap().to_string();
    let (status, body) = kv.get(&format!("/api/conversations/{id}/messages"));
    assert_eq!(status, 200);
    assert_eq!(json(&body), serde_json::json!([]));
    let (status, body) = kv.get("/api/conversations/not-a-known-id/messages");
    assert_eq!(status, 404);
    assert!(json(&body)["detail"].is_string());
}

#[test]
fn slow_and_idle_clients_are_cut_off() {
    let kv = Kv::start_with_docs(&[("HTTP_IDLE_TIMEOUT", "1")]);
    // Half a request line, then nothing.
    let mut s = TcpStream::connect(("127.0.0.1", kv.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"GET /hea").unwrap();
    let started = Instant::now();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "slow client held for {:?}",
        started.elapsed()
    );
    // Idle keep-alive after one request.
    let mut s = TcpStream::connect(("127.0.0.1", kv.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let started = Instant::now();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    assert!(String::from_utf8_lossy(&buf).starts_with("HTTP/1.1 200"));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "idle keep-alive held for {:?}",
        started.elapsed()
    );
    // Still serving.
    assert_eq!(kv.get("/health").0, 200);
}

#[test]
fn accept_loop_survives_running_out_of_file_descriptors() {
    let dir = TempDir::new("emfile");
    kv::fixture_repo(&dir);
    // A low descriptor limit for the service only.
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(format!("ulimit -n 64 && exec {}", kv::BIN));
    let kv = Kv::start_cmd(cmd, dir.path(), &[("HTTP_IDLE_TIMEOUT", "30")]);
    assert_eq!(kv.get("/health").0, 200);
    // Hold far more connections than the service can have descriptors.
    let mut held = Vec::new();
    for _ in 0..150 {
        if let Ok(s) = TcpStream::connect(("127.0.0.1", kv.port)) {
            held.push(s);
        }
    }
    assert!(
        kv.wait_log("will retry", Duration::from_secs(10)),
        "EMFILE never happened:\n{}",
        kv.log()
    );
    drop(held);
    // Within a few seconds the service answers again, without a restart.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let ok = std::panic::catch_unwind(|| kv.get("/health").0 == 200).unwrap_or(false);
        if ok {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "service did not recover:\n{}",
            kv.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn websocket_upgrade_on_a_reused_connection_is_refused_cleanly() {
    let kv = Kv::start_with_docs(&[]);
    let mut s = TcpStream::connect(("127.0.0.1", kv.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    s.write_all(b"GET /ws/chat/c1 HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n").unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(
        text.contains("HTTP/1.1 400") && !text.contains("101"),
        "{text}"
    );
    // A first-request upgrade on a fresh connection works, with the right key.
    let mut s = TcpStream::connect(("127.0.0.1", kv.port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(b"GET /ws/chat/c1 HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n").unwrap();
    let mut buf = [0u8; 1024];
    let n = s.read(&mut buf).unwrap();
    let text = String::from_utf8_lossy(&buf[..n]);
    assert!(text.starts_with("HTTP/1.1 101"), "{text}");
    assert!(text.contains("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="), "{text}");
}
