//! Starts the real `knowledge-vault` binary for a test, on a port the OS
//! chooses (`PORT=0`), in its own working directory, and stops it on drop.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_knowledge-vault");

/// A temporary directory removed on drop; unique per process and call.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let p = std::env::temp_dir().join(format!("kv-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    pub fn path(&self) -> &Path {
        &self.0
    }
    /// Writes a file, creating parent folders.
    pub fn write(&self, rel: &str, content: impl AsRef<[u8]>) -> PathBuf {
        let p = self.0.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, content).unwrap();
        p
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running service.
pub struct Kv {
    child: Child,
    pub port: u16,
    pub base: String,
    log: Arc<Mutex<String>>,
    _dir: Option<TempDir>,
}

impl Kv {
    /// Starts the service with `env` (and nothing else from the test's
    /// environment that could change its behaviour) in `dir`.
    pub fn start(dir: &Path, env: &[(&str, &str)]) -> Kv {
        Kv::start_cmd(Command::new(BIN), dir, env)
    }

    /// Starts the service in a fresh temporary working directory holding a
    /// small documentation repository.
    pub fn start_with_docs(env: &[(&str, &str)]) -> Kv {
        let dir = TempDir::new("svc");
        fixture_repo(&dir);
        let mut kv = Kv::start(dir.path(), env);
        kv._dir = Some(dir);
        kv
    }

    pub fn start_cmd(cmd: Command, dir: &Path, env: &[(&str, &str)]) -> Kv {
        let kv = Kv::spawn(cmd, dir, env);
        // The built-in provider builds its first index after the port opens
        // (tools answer "indexing" until then): tests start from a ready one.
        if !env
            .iter()
            .any(|(k, v)| *k == "MCP_SERVER_URL" && !v.is_empty())
        {
            assert!(
                kv.wait_log("documentation ready", Duration::from_secs(60)),
                "the documentation index was never ready; log:\n{}",
                kv.log()
            );
        }
        kv
    }

    /// Starts the service and returns as soon as it listens (the first
    /// index may still be building).
    pub fn spawn(mut cmd: Command, dir: &Path, env: &[(&str, &str)]) -> Kv {
        cmd.current_dir(dir)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("PORT", "0")
            .env("LOG_LEVEL", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start knowledge-vault");
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let log2 = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("listening on http://").nth(1) {
                    let _ = tx.send(rest.rsplit(':').next().unwrap_or("").trim().to_string());
                }
                let mut l = log2.lock().unwrap();
                l.push_str(&line);
                l.push('\n');
            }
        });
        let port: u16 = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(p) => p.parse().unwrap(),
            Err(_) => {
                let _ = child.kill();
                panic!("service did not start; log:\n{}", log.lock().unwrap());
            }
        };
        Kv {
            child,
            port,
            base: format!("http://127.0.0.1:{port}"),
            log,
            _dir: None,
        }
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// Waits until the log contains `needle`.
    pub fn wait_log(&self, needle: &str, timeout: Duration) -> bool {
        self.wait_until(timeout, |kv| kv.log().contains(needle))
    }

    /// Waits until `/health` reports the tool service as `want`.
    pub fn wait_tools(&self, want: &str, within: Duration) {
        let mut last = serde_json::Value::Null;
        let seen = self.wait_until(within, |kv| {
            last = json(&kv.get("/health").1);
            last["services"]["mcp_server"]["status"] == want
        });
        assert!(seen, "tool service never became {want}: {last}");
    }

    pub fn get(&self, path: &str) -> (u16, String) {
        request(&self.base, "GET", path, &[], None)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Runs `knowledge-vault health` against this service, with `env`.
    pub fn health_command(&self, env: &[(&str, &str)]) -> std::process::Output {
        let mut cmd = Command::new(BIN);
        cmd.arg("health")
            .env_clear()
            .env("PORT", self.port.to_string());
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd.output().expect("run knowledge-vault health")
    }

    /// Sends a signal (`TERM`, `INT`, ...) with kill(1).
    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.pid().to_string())
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "kill -{sig} failed");
    }

    /// Waits for the process to exit by itself; its status, or None at the
    /// deadline.
    pub fn wait_exit(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let mut status = None;
        poll_until(within, || {
            status = self.child.try_wait().ok().flatten();
            status.is_some()
        });
        status
    }

    /// The service's thread count now.
    pub fn threads(&self) -> usize {
        self.held().threads as usize
    }

    /// Waits until `cond` holds, polling; false at the deadline.
    pub fn wait_until(&self, within: Duration, mut cond: impl FnMut(&Kv) -> bool) -> bool {
        poll_until(within, || cond(self))
    }

    /// What the service holds once it has not changed (threads and
    /// descriptors) for `stable`: start-up threads and idle pool threads
    /// come and go.
    pub fn settled(&self, stable: Duration) -> Held {
        let mut last = self.held();
        let mut since = Instant::now();
        let settled = self.wait_until(Duration::from_secs(30), |kv| {
            let now = kv.held();
            if (now.threads, now.fds) != (last.threads, last.fds) {
                since = Instant::now();
            }
            last = now;
            since.elapsed() >= stable
        });
        assert!(settled, "what the service holds never settled: {last:?}");
        last
    }
    /// What the service holds now, from `/proc`.
    pub fn held(&self) -> Held {
        let pid = self.pid();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let field = |name: &str| -> u64 {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
                .unwrap_or(0)
        };
        let fds = std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count() as u64);
        Held {
            threads: field("Threads:"),
            fds,
            rss_kib: field("VmRSS:"),
        }
    }
}

/// Checks `cond` every 20 ms until it holds (true) or `within` has passed
/// (false): the one polling wait of the tests.
pub fn poll_until(within: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Threads, open descriptors and resident memory of the service.
#[derive(Debug, Clone, Copy)]
pub struct Held {
    pub threads: u64,
    pub fds: u64,
    pub rss_kib: u64,
}

impl Drop for Kv {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One HTTP/1.1 request on a fresh connection, written by hand so that
/// tests see exactly what went over the wire. Returns (status, raw response).
pub fn raw_request(port: u16, request: &[u8]) -> (u16, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    s.write_all(request).unwrap();
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out).to_string();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, text)
}

/// A request through ureq (status errors off): (status, body).
pub fn request(
    base: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> (u16, String) {
    let (status, _, body) = request_full(base, method, path, headers, body);
    (status, body)
}

/// Like [`request`], also returning the response headers (lower-case names).
pub fn request_full(
    base: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> (u16, Vec<(String, String)>, String) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .proxy(None)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into();
    let mut b = ureq::http::Request::builder()
        .method(method)
        .uri(format!("{base}{path}"));
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    let resp = agent
        .run(b.body(body.unwrap_or("").to_string()).unwrap())
        .unwrap();
    let status = resp.status().as_u16();
    let hdrs = resp
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_ascii_lowercase(),
                v.to_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    let text = resp.into_body().read_to_string().unwrap_or_default();
    (status, hdrs, text)
}

pub fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("not JSON ({e}): {s}"))
}

/// A small documentation repository in `dir` (the working directory of
/// the service, so it is what `DOCS_DIR=.` serves).
pub fn fixture_repo(dir: &TempDir) {
    dir.write(".git/HEAD", "ref: refs/heads/main\n");
    dir.write("README.md", "# Vault Fixture\n\nA small repository used by the tests.\n\n## Install\n\nRun the installer with --fast.\n");
    dir.write(
        "docs/guide with space.md",
        "---\ntitle: The Guide\n---\n# Guide\n\nConfigure the frobnicator before you deploy.\n",
    );
    dir.write(
        "docs/nested/deep/page.md",
        "# Deep page\n\nRetention policy: logs are kept for 30 days.\n",
    );
    dir.write("src/main.rs", "fn main() {}\n");
}
