//! A fake tool server in the simple HTTP form of earlier deployments
//! (`GET /health`, `POST /tools/execute` → `{"result": ...}`, `null` for a
//! document that does not exist), counting the calls it answers. Written
//! with tiny_http.
#![allow(dead_code)]

use serde_json::{Value, json};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

/// How long the `slow` repository's documents take to read.
pub const SLOW_TOOL: Duration = Duration::from_millis(600);

pub struct FakeTools {
    pub url: String,
    calls: Arc<Mutex<Vec<(String, Value)>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl FakeTools {
    pub fn start() -> FakeTools {
        FakeTools::start_on(0)
    }

    /// On a given port (0: any), e.g. one a service was told about while
    /// nothing listened there.
    pub fn start_on(port: u16) -> FakeTools {
        let server = tiny_http::Server::http(("127.0.0.1", port)).unwrap();
        let port = server.server_addr().to_ip().unwrap().port();
        let calls = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (calls2, stop2) = (calls.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !stop2.load(Ordering::SeqCst) {
                let Ok(Some(mut rq)) = server.recv_timeout(Duration::from_millis(100)) else {
                    continue;
                };
                let mut body = String::new();
                let _ = rq.as_reader().read_to_string(&mut body);
                let (status, out) = match (rq.method().as_str(), rq.url()) {
                    ("GET", "/health") => (200, json!({"status": "ok"})),
                    ("POST", "/tools/execute") => {
                        let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
                        let name = v["name"].as_str().unwrap_or("").to_string();
                        let args = v["arguments"].clone();
                        calls2.lock().unwrap().push((name.clone(), args.clone()));
                        answer(&name, &args)
                    }
                    _ => (404, json!({"detail": "not found"})),
                };
                let h = tiny_http::Header::from_bytes("Content-Type", "application/json").unwrap();
                let _ = rq.respond(
                    tiny_http::Response::from_string(out.to_string())
                        .with_status_code(status)
                        .with_header(h),
                );
            }
        });
        FakeTools {
            url: format!("http://127.0.0.1:{port}"),
            calls,
            stop,
            thread: Some(thread),
        }
    }

    pub fn calls(&self) -> Vec<(String, Value)> {
        self.calls.lock().unwrap().clone()
    }

    pub fn count(&self, name: &str) -> usize {
        self.calls().iter().filter(|(n, _)| n == name).count()
    }
}

impl Drop for FakeTools {
    fn drop(&mut self) {
        // The server thread sees the flag within one receive timeout; its
        // end drops the server, which closes the listening socket.
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn answer(name: &str, args: &Value) -> (u16, Value) {
    match name {
        "list_repositories" => (
            200,
            json!({"result": [{"name": "alpha", "doc_count": 2, "description": "Alpha docs"}, {"name": "beta", "doc_count": 1}]}),
        ),
        // A tool that fails on the server, and one that takes its time.
        "list_repo_docs" if args["repo"] == "broken" => {
            (500, json!({"detail": "the tool exploded"}))
        }
        "get_documentation" if args["repo"] == "slow" => {
            std::thread::sleep(SLOW_TOOL);
            (
                200,
                json!({"result": {"content": "slow", "metadata": {"repo": "slow", "path": "a.md", "size": 4}}}),
            )
        }
        // A server of another kind: names instead of objects, a document as text.
        "list_repo_docs" if args["repo"] == "plain" => {
            (200, json!({"result": ["README.md", "docs/x.md"]}))
        }
        "get_documentation" if args["repo"] == "plain" => {
            (200, json!({"result": "# Plain\nJust text."}))
        }
        "list_repo_docs" => match args["repo"].as_str() {
            Some("alpha") => (
                200,
                json!({"result": [{"path": "README.md", "type": "file"}, {"path": "docs/a b.md", "type": "file"}]}),
            ),
            _ => (
                200,
                json!({"error": format!("Repository not found: {}", args["repo"])}),
            ),
        },
        "get_documentation" => match (args["repo"].as_str(), args["path"].as_str()) {
            (Some("alpha"), Some(p @ ("README.md" | "docs/a b.md"))) => {
                let content = format!("# {p}\nAlpha content.");
                (
                    200,
                    json!({"result": {"content": content, "metadata": {"repo": "alpha", "path": p, "size": content.len()}}}),
                )
            }
            // What the earlier deployments answered for a missing document.
            (Some("alpha"), _) => (200, json!({"result": null})),
            _ => (404, json!({"detail": "Document not found"})),
        },
        "search_documentation" => (
            200,
            json!({"result": [{"repo": "alpha", "path": "README.md", "title": "Alpha", "snippet": "Alpha content about retention.", "score": 1.5}]}),
        ),
        "fail_tool" => (500, json!({"detail": "the tool exploded"})),
        _ => (200, json!({"error": format!("Unknown tool: {name}")})),
    }
}
