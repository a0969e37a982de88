//! The built-in page in a real headless Chromium: the real binary, the
//! tests' fake Claude (and fake GitHub), and `tests/browser/page.mjs` driving
//! Debian's Chromium through playwright-core.
//!
//! Ignored by `cargo test`; `cargo test --test it -- --ignored browser` runs
//! exactly these (scripts/test does, after scripts/ci/install-browser.sh).
//! A missing Chromium, Node or playwright-core fails the test with a line
//! saying what to install: nothing is skipped. Screenshots go to
//! target/screenshots/.

use crate::support::fake_claude;
use crate::support::fake_github;
use crate::support::kv;

use fake_claude::{FakeClaude, Recorded, Reply, sse};
use fake_github::{FakeGithub, FakeRepo, FakeState};
use kv::{Kv, TempDir};
use serde_json::{Value, json};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// Documentation as a new user has it: a folder of repositories, one of them
/// with a document that tries to run markup.
fn docs() -> TempDir {
    let dir = TempDir::new("browser-docs");
    dir.write(
        "alpha/README.md",
        "# Alpha\n\nAlpha is the payments service. Read [the deploy guide](docs/deploy.md).\n",
    );
    dir.write(
        "alpha/docs/deploy.md",
        "# Deploy\n\nRun `make deploy` from a clean checkout.\n",
    );
    dir.write(
        "alpha/docs/guide.md",
        "# Guide\n\nConfigure the frobnicator before you deploy.\n",
    );
    dir.write(
        "alpha/docs/xss.md",
        "# Hostile\n\nAn image <img src=x onerror=\"window.__xss=1\"> inline.\n\n\
         <script>window.__xss2=1</script>\n\n[click](javascript:window.__xss=1) [bad](%E0%A4%A)\n",
    );
    dir.write("beta/README.md", "# Beta\n\nThe beta repository.\n");
    dir
}

/// The question of the conversation's newest user message, and whether the
/// request is the follow-up after tool results.
fn question(req: &Recorded) -> (String, bool) {
    let messages = req.body["messages"].as_array().cloned().unwrap_or_default();
    let block = |m: &Value, kind: &str| m["role"] == "user" && m["content"][0]["type"] == kind;
    let after_tools = messages.last().is_some_and(|m| block(m, "tool_result"));
    let question = messages
        .iter()
        .rev()
        .find(|m| block(m, "text"))
        .and_then(|m| m["content"][0]["text"].as_str())
        .unwrap_or_default()
        .to_string();
    (question, after_tools)
}

/// A text answer streamed as `pieces`, `gap` apart.
fn slow_text(pieces: &[String], gap: Duration) -> Reply {
    let mut chunks = vec![sse::message_start() + &sse::text_start(0)];
    chunks.extend(pieces.iter().map(|p| sse::text_delta(0, p)));
    chunks.push(sse::block_stop(0) + &sse::message_end("end_turn"));
    Reply::sse_slow(chunks, gap)
}

/// The fake Claude's answer to each scenario of tests/browser/page.mjs,
/// chosen by the question's first word.
fn respond(req: &Recorded) -> Reply {
    let (question, after_tools) = question(req);
    let word = question.split(':').next().unwrap_or_default();
    let tool = |query: &str| {
        Reply::sse(sse::tool_turn(
            Some("Let me search."),
            &[(
                "toolu_page_1",
                "search_documentation",
                json!({"query": query}),
            )],
        ))
    };
    match (word, after_tools) {
        ("STREAM", _) => {
            let pieces = [
                "Deploy **alpha** in two steps:\n\n",
                "1. build\n",
                "2. ship\n\n",
                "```sh\nmake deploy\n```\n\n",
                "| env | runbook |\n|---|---|\n",
                "| prod | [runbook](https://example.com/runbook) |\n\n",
                "See `alpha/docs/deploy.md`",
                " for details.",
            ];
            let pieces: Vec<String> = pieces.iter().map(|s| s.to_string()).collect();
            slow_text(&pieces, Duration::from_millis(200))
        }
        ("TOOL", false) => tool("deploy"),
        ("TOOL", true) => Reply::sse(sse::text_turn(&["Found ", "`alpha/docs/deploy.md`."])),
        ("SHOT", false) => tool("deploy alpha"),
        ("SHOT", true) => Reply::sse(sse::text_turn(&[
            "Alpha is deployed with **make** (see `alpha/docs/deploy.md`):\n\n",
            "1. Check out a clean tree.\n2. Run the deploy target:\n\n",
            "```sh\nmake deploy ENV=prod\n```\n\n",
            "| step | owner |\n|---|---|\n| build | CI |\n| ship | on-call |\n\n",
            "The [runbook](https://example.com/runbook) has the rollback steps.",
        ])),
        (w, _) if w.starts_with("SLOW") => {
            let pieces: Vec<String> = (1..=30).map(|i| format!("part{i:02} ")).collect();
            slow_text(&pieces, Duration::from_millis(300))
        }
        ("XSS", _) => Reply::sse(sse::text_turn(&[
            "Here: <img src=x onerror=\"window.__xssAnswer=1\"> and ",
            "<script>window.__xssAnswer2=1</script> [x](javascript:window.__xssAnswer=1) done.",
        ])),
        ("ERROR", _) => Reply::error(400, "invalid_request_error", "fake refusal for the page"),
        _ => Reply::sse(sse::text_turn(&["An answer to: ", &question])),
    }
}

fn chromium() -> PathBuf {
    let path =
        PathBuf::from(std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into()));
    assert!(
        path.is_file(),
        "Chromium is missing at {} (set CHROMIUM, or run scripts/ci/install-browser.sh: \
         apt-get install chromium)",
        path.display()
    );
    path
}

fn peers() -> PathBuf {
    let dir = std::env::var("KV_PEERS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| Path::new(ROOT).join("target/peers"));
    assert!(
        dir.join("node_modules/playwright-core/package.json")
            .is_file(),
        "playwright-core is missing under {} (run scripts/ci/install-browser.sh)",
        dir.display()
    );
    dir
}

/// Runs tests/browser/page.mjs's `suite` against `kv`; panics with its
/// output unless every scenario passed.
fn run_page_tests(kv: &Kv, suite: &str) {
    run_page_tests_with(kv, suite, &[]);
}

fn run_page_tests_with(kv: &Kv, suite: &str, env: &[(&str, &str)]) {
    let (chromium, peers) = (chromium(), peers());
    let mut child = Command::new("node");
    child.envs(env.iter().copied());
    let mut child = child
        .arg(Path::new(ROOT).join("tests/browser/page.mjs"))
        .env("KV_URL", &kv.base)
        .env("KV_SUITE", suite)
        .env("KV_PEERS_DIR", &peers)
        .env("CHROMIUM", &chromium)
        .env("KV_SCREENSHOTS", Path::new(ROOT).join("target/screenshots"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot run node (Node.js is needed for the browser tests): {e}")
        });
    // The script has its own deadline; this one catches a stuck node.
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    let (mut out, mut err) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
    std::thread::spawn(move || {
        let mut text = String::new();
        let _ = out.read_to_string(&mut text);
        let mut errors = String::new();
        let _ = err.read_to_string(&mut errors);
        let _ = done_tx.send(text + &errors);
    });
    let output = match done_rx.recv_timeout(Duration::from_secs(420)) {
        Ok(output) => output,
        Err(_) => {
            let _ = child.kill();
            panic!("the browser tests did not finish in 7 minutes");
        }
    };
    let status = child.wait().unwrap();
    println!("{output}");
    assert!(
        status.success() && output.contains(" passed, 0 failed"),
        "browser tests ({suite}) failed:\n{output}\nservice log:\n{}",
        kv.log()
    );
}

#[test]
#[ignore]
fn browser_chat_with_claude() {
    let docs = docs();
    let claude = FakeClaude::start_with(respond);
    let github = FakeState::new("acme").repo(
        FakeRepo::new("handbook")
            .description("How we work")
            .file("README.md", "# Handbook\n\nOn-call is weekly.\n")
            .file(
                "docs/deploy guide.md",
                "# Deploying\n\nUse the blue-green pipeline.\n",
            ),
    );
    let (github_url, _github) = FakeGithub::start(github);
    let home = TempDir::new("browser-home");
    let (claude_url, docs_dir) = (claude.url(), docs.path().to_str().unwrap().to_string());
    let cache = home.path().join("cache");
    let kv = Kv::start(
        home.path(),
        &[
            ("ANTHROPIC_API_KEY", "sk-ant-test-KEY"),
            ("ANTHROPIC_BASE_URL", &claude_url),
            ("DOCS_DIR", &docs_dir),
            ("GITHUB_ORG", "acme"),
            ("GITHUB_API_URL", &github_url),
            ("CACHE_DIR", cache.to_str().unwrap()),
            ("HTTP_PROXY", "http://127.0.0.1:9"),
            ("HTTPS_PROXY", "http://127.0.0.1:9"),
        ],
    );
    wait_for_repos(&kv, 3);

    run_page_tests(&kv, "claude");

    // The scope picked in the page reached Claude: the scoped question's
    // request carries the repository in its system prompt, the others not.
    let requests = claude.requests();
    let scoped = requests
        .iter()
        .find(|r| question(r).0.starts_with("SCOPE:"))
        .expect("the scoped question never reached Claude");
    let system = scoped.body["system"].as_str().unwrap_or_default();
    assert!(
        system.contains("scoped this question to the repository `alpha`"),
        "the scope did not reach Claude: {system}"
    );
    let unscoped = requests
        .iter()
        .find(|r| question(r).0.starts_with("STREAM:"))
        .expect("the streamed question never reached Claude");
    assert!(!unscoped.body["system"].to_string().contains("scoped"));
}

#[test]
#[ignore]
fn browser_offline_mode() {
    let docs = docs();
    let home = TempDir::new("browser-offline");
    let kv = Kv::start(home.path(), &[("DOCS_DIR", docs.path().to_str().unwrap())]);
    wait_for_repos(&kv, 2);
    run_page_tests(&kv, "offline");
}

#[test]
#[ignore]
fn browser_with_access_tokens() {
    const TOKEN: &str = "page-token-0123456789abcdef";
    let docs = docs();
    let home = TempDir::new("browser-tokens");
    let kv = Kv::start(
        home.path(),
        &[
            ("DOCS_DIR", docs.path().to_str().unwrap()),
            ("API_TOKENS", TOKEN),
        ],
    );
    wait_for_repos(&kv, 2);
    run_page_tests_with(&kv, "tokens", &[("KV_TOKEN", TOKEN)]);
    assert!(!kv.log().contains(TOKEN), "the token reached the log");
}

/// Waits until the service has indexed `n` repositories.
fn wait_for_repos(kv: &Kv, n: usize) {
    let line = format!("documentation indexed: {n} repositories");
    assert!(
        kv.wait_log(&line, Duration::from_secs(30)),
        "never logged {line:?}:\n{}",
        kv.log()
    );
}
