//! The built-in documentation provider through its public Rust API: local
//! source layouts and skipping rules, the four tools' exact results and
//! errors, ranking and snippets, refresh, queries during a rebuild, and the
//! first index built in the background. Then the hostile trees: FIFOs,
//! devices, swaps between the walk and the read (through the open function,
//! so that the race is deterministic), deep trees and the walk's caps, and
//! what `/health` of the real binary says about them.
//! Fixtures are written to a fresh temporary folder by each test.

use crate::support::kv;
use knowledge_vault::config::Config;
use knowledge_vault::docs::DocsProvider;
use knowledge_vault::docs::local::LocalSource;
use knowledge_vault::docs::source::{DocFile, RepoSnapshot, Source, SourceError};
use knowledge_vault::tools::{ToolError, ToolProvider};
use kv::TempDir;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::fs;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a test waits for a first index of a few files.
const READY: Duration = Duration::from_secs(60);

/// A provider over `sources`, once its first index is in service.
fn ready(sources: Vec<Box<dyn Source>>) -> Arc<DocsProvider> {
    let p = DocsProvider::with_sources(sources);
    assert!(p.wait_ready(READY), "the first index was never built");
    p
}

fn local(dir: &Path) -> Arc<DocsProvider> {
    ready(vec![Box::new(LocalSource::new(
        dir,
        Duration::from_secs(3600),
    ))])
}

fn call(p: &DocsProvider, name: &str, args: Value) -> Value {
    p.call(name, &args)
        .unwrap_or_else(|e| panic!("{name} {args}: {e:?}"))
}

fn paths(p: &DocsProvider, repo: &str) -> Vec<String> {
    call(p, "list_repo_docs", json!({"repo": repo}))
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["path"].as_str().unwrap().to_string())
        .collect()
}

fn repo_names(p: &DocsProvider) -> Vec<String> {
    call(p, "list_repositories", json!({}))
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap().to_string())
        .collect()
}

fn search(p: &DocsProvider, args: Value) -> Vec<Value> {
    call(p, "search_documentation", args)
        .as_array()
        .unwrap()
        .clone()
}

#[test]
fn folder_with_git_is_one_repository() {
    let d = TempDir::new("one");
    fs::create_dir_all(d.path().join(".git")).unwrap();
    d.write(".git/README.md", "# not docs");
    d.write(
        "README.md",
        "# Widget\n\nWidget makes **widgets** for [you](http://x).\n",
    );
    d.write("docs/guide.md", "# Guide\n");
    d.write("sub/README.md", "# Sub\n");
    let p = local(d.path());
    let name = d.path().file_name().unwrap().to_str().unwrap().to_string();
    assert_eq!(
        call(&p, "list_repositories", json!({})),
        json!([{"name": name, "doc_count": 3, "description": "Widget makes widgets for you."}])
    );
    assert_eq!(
        paths(&p, &name),
        ["README.md", "docs/guide.md", "sub/README.md"]
    );
}

#[test]
fn folder_with_top_docs_and_no_git_below_is_one_repository() {
    let d = TempDir::new("onedoc");
    d.write("README.md", "# Top\n");
    d.write("docs/a.md", "# A\n");
    let p = local(d.path());
    assert_eq!(repo_names(&p).len(), 1);
    assert_eq!(paths(&p, &repo_names(&p)[0]), ["README.md", "docs/a.md"]);
}

#[test]
fn folder_of_repositories() {
    let d = TempDir::new("multi");
    // beta has .git, so the folder is a collection even with a top-level file.
    d.write("NOTES.md", "# ignored: belongs to no repository\n");
    d.write("beta/.git/HEAD", "ref");
    d.write("beta/README.md", "# Beta\n");
    d.write("alpha/docs/x.md", "# X\n");
    d.write("alpha/src/main.rs", "fn main() {}");
    d.write("gamma/src/lib.rs", "// no docs: not a repository");
    d.write(".hidden/README.md", "# hidden repo\n");
    d.write("node_modules/README.md", "# dependency\n");
    let p = local(d.path());
    assert_eq!(
        call(&p, "list_repositories", json!({})),
        json!([
            {"name": "alpha", "doc_count": 1},
            {"name": "beta", "doc_count": 1}
        ])
    );
    assert_eq!(paths(&p, "alpha"), ["docs/x.md"]);
    // A folder without .git anywhere and without top-level docs: each subfolder is a repository.
    let d2 = TempDir::new("multi2");
    d2.write("one/README.md", "# One\n");
    d2.write("two/guide.rst", "Two\n===\n");
    let p2 = local(d2.path());
    assert_eq!(repo_names(&p2), ["one", "two"]);
}

#[test]
fn skipping_rules() {
    let d = TempDir::new("skip");
    let outside = TempDir::new("outside");
    outside.write("secret.md", "# Secret outside\n");
    outside.write("dir/inner.md", "# Outside dir\n");
    d.write(".git/HEAD", "ref");
    d.write("README.md", "# R\n");
    d.write("node_modules/pkg/README.md", "# dep\n");
    d.write("vendor/x.md", "# vendored\n");
    d.write("target/doc.md", "# build output\n");
    d.write("docs/.hidden/x.md", "# hidden\n");
    d.write(".github/CONTRIBUTING.md", "# hidden\n");
    d.write("docs/ok.md", "# ok\n");
    d.write("docs/image.png", [0u8, 1, 2]);
    d.write("CHANGELOG", "changes\n");
    d.write("docs/big.md", vec![b'a'; 1024 * 1024 + 1]);
    d.write("docs/exactly-1mib.md", vec![b'b'; 1024 * 1024]);
    #[cfg(unix)]
    {
        use std::os::unix::fs::symlink;
        symlink(
            outside.path().join("secret.md"),
            d.path().join("docs/leak.md"),
        )
        .unwrap();
        symlink(outside.path().join("dir"), d.path().join("docs/leakdir")).unwrap();
        symlink(d.path().join("docs/ok.md"), d.path().join("docs/alias.md")).unwrap();
        symlink(d.path().join("docs"), d.path().join("docs/loop")).unwrap();
        symlink(d.path().join("missing.md"), d.path().join("docs/broken.md")).unwrap();
    }
    let p = local(d.path());
    let name = repo_names(&p)[0].clone();
    let mut want = vec!["CHANGELOG", "README.md"];
    #[cfg(unix)]
    want.push("docs/alias.md");
    want.extend(["docs/exactly-1mib.md", "docs/ok.md"]);
    assert_eq!(paths(&p, &name), want);
    assert!(search(&p, json!({"query": "secret outside"})).is_empty());
    let health = p.health_details();
    assert_eq!(health["sources"][0]["skipped_large_files"], 1);
}

#[test]
fn text_encodings_front_matter_and_titles() {
    let d = TempDir::new("text");
    d.write(".git/HEAD", "ref");
    d.write(
        "latin1.md",
        b"# Caf\xe9 notes\n\nna\xefve text\n".as_slice(),
    );
    d.write(
        "fm.md",
        "---\ntitle: \"Front Title\"\nweight: 2\n---\n\n# Heading Title\n\nBody.\n",
    );
    d.write(
        "fake.md",
        "---\n<p align=\"center\"><img src=\"logo.png\"></p>\n---\n\n# Real Heading\n\ntext\n",
    );
    d.write(
        "crlf.md",
        "# Windows Title\r\n\r\nLine one.\r\n## Part\r\nMore.\r\n",
    );
    d.write("plain.txt", "no title here\n");
    d.write("guide.rst", "Install Guide\n=============\n\nRun it.\n");
    let p = local(d.path());
    let name = repo_names(&p)[0].clone();
    let get = |path: &str| call(&p, "get_documentation", json!({"repo": name, "path": path}));

    let latin = get("latin1.md");
    assert_eq!(
        latin["content"],
        "# Caf\u{fffd} notes\n\nna\u{fffd}ve text\n"
    );
    assert_eq!(latin["metadata"]["title"], "Caf\u{fffd} notes");
    assert_eq!(get("fm.md")["metadata"]["title"], "Front Title");
    assert_eq!(get("fake.md")["metadata"]["title"], "Real Heading");
    let crlf = get("crlf.md");
    assert_eq!(crlf["metadata"]["title"], "Windows Title");
    assert!(
        crlf["content"].as_str().unwrap().contains("\r\n"),
        "content is served as stored"
    );
    assert!(get("plain.txt")["metadata"].get("title").is_none());
    assert_eq!(get("guide.rst")["metadata"]["title"], "Install Guide");

    // CRLF headings still delimit sections.
    let hits = search(&p, json!({"query": "more", "repo": name}));
    assert_eq!(hits[0]["path"], "crlf.md");
    assert_eq!(hits[0]["heading"], "Part");
}

fn sample() -> (TempDir, Arc<DocsProvider>) {
    let d = TempDir::new("sample");
    d.write(
        "alpha/README.md",
        "# Alpha\n\nAlpha is the first service.\n\n## Sampling\n\nHead sampling decides early whether a trace is kept.\n",
    );
    d.write(
        "alpha/docs/notes.md",
        format!(
            "# Notes\n\n{}\n\nOnce we talked about sampling here.\n\n{}",
            "Unrelated words about deployment and pods. ".repeat(30),
            "More filler about clusters. ".repeat(30)
        ),
    );
    d.write(
        "alpha/docs/sampling.md",
        "# Sampling\n\nSampling keeps a share of traces to reduce cost.\n\n## Tail sampling\n\nTail sampling waits for the whole trace before deciding.\n",
    );
    d.write(
        "beta/docs/ja/traces.md",
        "---\ntitle: トレース\n---\n\n**トレース** は、リクエストがアプリケーションに投げられたときに何が起こるかの全体像を教えてくれます。\n",
    );
    d.write(
        "beta/docs/exporter.md",
        "# Exporter\n\nThe exporter sends spans to the backend.\n",
    );
    let p = local(d.path());
    (d, p)
}

#[test]
fn tool_result_shapes() {
    let (_d, p) = sample();
    assert_eq!(
        call(&p, "list_repositories", json!({})),
        json!([
            {"name": "alpha", "doc_count": 3, "description": "Alpha is the first service."},
            {"name": "beta", "doc_count": 2}
        ])
    );
    assert_eq!(
        call(&p, "list_repo_docs", json!({"repo": "alpha"})),
        json!([
            {"path": "README.md", "type": "file"},
            {"path": "docs/notes.md", "type": "file"},
            {"path": "docs/sampling.md", "type": "file"}
        ])
    );
    let content = "# Exporter\n\nThe exporter sends spans to the backend.\n";
    assert_eq!(
        call(
            &p,
            "get_documentation",
            json!({"repo": "beta", "path": "docs/exporter.md"})
        ),
        json!({
            "content": content,
            "metadata": {"repo": "beta", "path": "docs/exporter.md", "size": content.len(), "title": "Exporter"}
        })
    );
    let hits = search(&p, json!({"query": "exporter backend"}));
    assert_eq!(hits.len(), 1);
    let h = hits[0].as_object().unwrap();
    let mut keys: Vec<&str> = h.keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(
        keys,
        ["heading", "path", "repo", "score", "snippet", "title"]
    );
    assert_eq!(h["repo"], "beta");
    assert_eq!(h["path"], "docs/exporter.md");
    assert_eq!(h["title"], "Exporter");
    assert_eq!(h["heading"], "Exporter");
    assert_eq!(h["snippet"], "The exporter sends spans to the backend.");
    assert!(h["score"].as_f64().unwrap() > 0.0);
    let tools: Vec<String> = p.tools().unwrap().into_iter().map(|t| t.name).collect();
    assert_eq!(tools.len(), 4);
    assert_eq!(p.status(), knowledge_vault::tools::Status::Connected);
}

#[test]
fn errors_are_clear() {
    let (_d, p) = sample();
    let err = |name: &str, args: Value| p.call(name, &args).unwrap_err();
    assert_eq!(
        err("list_repo_docs", json!({"repo": "nope"})),
        ToolError::NotFound("repository 'nope' not found".into())
    );
    assert_eq!(
        err(
            "get_documentation",
            json!({"repo": "nope", "path": "README.md"})
        ),
        ToolError::NotFound("repository 'nope' not found".into())
    );
    assert_eq!(
        err(
            "get_documentation",
            json!({"repo": "alpha", "path": "missing.md"})
        ),
        ToolError::NotFound("document 'missing.md' not found in repository 'alpha'".into())
    );
    assert_eq!(
        err(
            "search_documentation",
            json!({"query": "x", "repo": "nope"})
        ),
        ToolError::NotFound("repository 'nope' not found".into())
    );
    for (name, args) in [
        ("list_repo_docs", json!({})),
        ("list_repo_docs", json!({"repo": 3})),
        ("get_documentation", json!({"repo": "alpha"})),
        (
            "get_documentation",
            json!({"repo": "alpha", "path": ["README.md"]}),
        ),
        ("search_documentation", json!({})),
        ("search_documentation", json!({"query": "  "})),
        ("search_documentation", json!({"query": "x", "limit": "5"})),
        ("search_documentation", json!({"query": "x", "limit": 0})),
        ("search_documentation", json!({"query": "x", "repo": 1})),
    ] {
        assert!(
            matches!(err(name, args.clone()), ToolError::BadInput(_)),
            "{name} {args}"
        );
    }
    for path in [
        "../beta/docs/exporter.md",
        "/etc/passwd",
        "docs/../../beta/x.md",
        "a\\..\\b",
    ] {
        assert!(
            matches!(
                err("get_documentation", json!({"repo": "alpha", "path": path})),
                ToolError::BadInput(_)
            ),
            "{path}"
        );
    }
    assert_eq!(
        err("delete_everything", json!({})),
        ToolError::Failed("unknown tool: delete_everything".into())
    );
}

#[test]
fn ranking_headings_and_snippets() {
    let (_d, p) = sample();
    let hits = search(&p, json!({"query": "sampling"}));
    let order: Vec<&str> = hits.iter().map(|h| h["path"].as_str().unwrap()).collect();
    assert_eq!(order[0], "docs/sampling.md", "{order:?}");
    let notes = order.iter().position(|&p| p == "docs/notes.md").unwrap();
    assert!(
        notes > 0,
        "a passing mention ranks below the titled doc: {order:?}"
    );
    // One result per document.
    let mut dedup = order.clone();
    dedup.dedup();
    assert_eq!(dedup.len(), order.len());

    let tail = search(&p, json!({"query": "tail sampling whole trace"}));
    assert_eq!(tail[0]["path"], "docs/sampling.md");
    assert_eq!(tail[0]["heading"], "Tail sampling");
    assert!(tail[0]["snippet"].as_str().unwrap().contains("whole trace"));

    // The passing mention's snippet is centred on it, not the start of the doc.
    let n = search(&p, json!({"query": "talked"}));
    assert_eq!(n[0]["path"], "docs/notes.md");
    let s = n[0]["snippet"].as_str().unwrap();
    assert!(s.contains("talked about sampling"), "{s}");
    assert!(s.chars().count() <= 300, "{s}");

    // Repository filter and limit.
    let only_beta = search(&p, json!({"query": "sampling", "repo": "beta"}));
    assert!(only_beta.is_empty());
    assert_eq!(
        search(&p, json!({"query": "sampling", "limit": 1})).len(),
        1
    );
    assert!(search(&p, json!({"query": "zzzqqq"})).is_empty());
}

#[test]
fn japanese_query_finds_japanese_doc() {
    let (_d, p) = sample();
    let hits = search(&p, json!({"query": "トレースの全体像"}));
    assert_eq!(hits[0]["path"], "docs/ja/traces.md");
    assert_eq!(hits[0]["title"], "トレース");
    assert!(hits[0]["snippet"].as_str().unwrap().contains("全体像"));
}

fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn start_from_config_and_refresh() {
    let d = TempDir::new("refresh");
    d.write(".git/HEAD", "ref");
    d.write("README.md", "# Start\n\nfirst version\n");
    d.write("gone.md", "# Gone soon\n");
    let vars: HashMap<String, String> = [
        ("DOCS_DIR", d.path().to_str().unwrap()),
        ("DOCS_REFRESH_SECS", "1"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let config = Config::from_map(&vars).unwrap();
    let p = DocsProvider::start(&config);
    assert!(p.wait_ready(READY));
    let name = repo_names(&p)[0].clone();
    assert_eq!(paths(&p, &name), ["README.md", "gone.md"]);
    let health = p.health_details();
    assert_eq!(health["repositories"], 1);
    assert_eq!(health["documents"], 2);
    assert_eq!(health["sources"].as_array().unwrap().len(), 1);
    assert_eq!(health["sources"][0]["type"], "local");

    d.write("added.md", "# Added\n\nnewly written pelican\n");
    wait_for("added file", || {
        !search(&p, json!({"query": "pelican"})).is_empty()
    });
    // Same size, different content: the modification time tells.
    std::thread::sleep(Duration::from_millis(20));
    d.write("README.md", "# Start\n\nfresh version\n");
    wait_for("changed file", || {
        !search(&p, json!({"query": "fresh"})).is_empty()
    });
    assert!(search(&p, json!({"query": "first"})).is_empty());
    fs::remove_file(d.path().join("gone.md")).unwrap();
    wait_for("deleted file", || {
        paths(&p, &name) == ["README.md", "added.md"]
    });
}

/// A source whose second refresh waits until the test lets it go, then
/// delivers a much larger snapshot.
struct GatedSource {
    calls: AtomicUsize,
    gate: Mutex<Option<crossbeam_channel::Receiver<()>>>,
    entered: crossbeam_channel::Sender<()>,
}

impl Source for GatedSource {
    fn label(&self) -> String {
        "gated".into()
    }
    fn interval(&self) -> Duration {
        Duration::from_millis(100)
    }
    fn refresh(&self) -> Result<Option<Vec<RepoSnapshot>>, SourceError> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        let doc = |i: usize, word: &str| DocFile {
            path: format!("doc{i:05}.md"),
            text: format!(
                "# Doc {i}\n\n{word} {}\n",
                "filler text about things ".repeat(40)
            ),
            url: Some(format!("https://example.test/doc{i}")),
        };
        match n {
            0 => Ok(Some(vec![RepoSnapshot {
                name: "gated".into(),
                description: Some("Gated test repo".into()),
                docs: vec![doc(0, "original")],
            }])),
            1 => {
                let _ = self.entered.send(());
                let gate = self.gate.lock().unwrap().take();
                if let Some(g) = gate {
                    let _ = g.recv();
                }
                Ok(Some(vec![RepoSnapshot {
                    name: "gated".into(),
                    description: None,
                    docs: (0..4000).map(|i| doc(i, "replacement")).collect(),
                }]))
            }
            _ => Ok(None),
        }
    }
    fn health(&self) -> Value {
        json!({"type": "gated"})
    }
}

#[test]
fn queries_are_answered_during_a_rebuild() {
    let (release, gate) = crossbeam_channel::bounded::<()>(1);
    let (entered_tx, entered) = crossbeam_channel::bounded::<()>(1);
    let p = ready(vec![Box::new(GatedSource {
        calls: AtomicUsize::new(0),
        gate: Mutex::new(Some(gate)),
        entered: entered_tx,
    })]);
    let first = search(&p, json!({"query": "original"}));
    assert_eq!(first[0]["url"], "https://example.test/doc0");
    assert_eq!(
        call(&p, "list_repositories", json!({})),
        json!([{"name": "gated", "doc_count": 1, "description": "Gated test repo"}])
    );
    // The refresh thread is now stuck inside the source.
    entered.recv_timeout(Duration::from_secs(10)).unwrap();
    for _ in 0..20 {
        let t = Instant::now();
        assert_eq!(search(&p, json!({"query": "original"})).len(), 1);
        assert!(t.elapsed() < Duration::from_secs(1));
    }
    release.send(()).unwrap();
    // While the large index is built, every query answers from one index.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut served_old = 0;
    loop {
        let t = Instant::now();
        let docs = paths(&p, "gated").len();
        assert!(
            t.elapsed() < Duration::from_secs(2),
            "a query waited for the build"
        );
        assert!(docs == 1 || docs == 4000, "{docs}");
        if docs == 4000 {
            break;
        }
        served_old += 1;
        assert!(Instant::now() < deadline, "rebuild never swapped in");
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(
        served_old > 0,
        "the old index served queries during the build"
    );
    let hits = search(&p, json!({"query": "replacement", "limit": 50}));
    assert_eq!(hits.len(), 50);
    assert!(search(&p, json!({"query": "original"})).is_empty());
}

#[test]
fn first_source_wins_a_repository_name() {
    struct Fixed(&'static str, &'static str);
    impl Source for Fixed {
        fn label(&self) -> String {
            self.0.into()
        }
        fn interval(&self) -> Duration {
            Duration::from_secs(3600)
        }
        fn refresh(&self) -> Result<Option<Vec<RepoSnapshot>>, SourceError> {
            Ok(Some(vec![RepoSnapshot {
                name: "shared".into(),
                description: None,
                docs: vec![DocFile {
                    path: "README.md".into(),
                    text: self.1.into(),
                    url: None,
                }],
            }]))
        }
        fn health(&self) -> Value {
            json!({"source": self.0})
        }
    }
    let p = ready(vec![
        Box::new(Fixed("first", "# First\n")),
        Box::new(Fixed("second", "# Second\n")),
    ]);
    assert_eq!(repo_names(&p), ["shared"]);
    let doc = call(
        &p,
        "get_documentation",
        json!({"repo": "shared", "path": "README.md"}),
    );
    assert_eq!(doc["content"], "# First\n");
    assert_eq!(
        p.health_details()["sources"],
        json!([{"source": "first"}, {"source": "second"}])
    );
}

#[test]
fn a_slow_source_does_not_hold_up_another() {
    let d = TempDir::new("beside-slow");
    d.write("local/README.md", "# Local\n\nfirst\n");
    let (release, gate) = crossbeam_channel::bounded::<()>(1);
    let (entered_tx, entered) = crossbeam_channel::bounded::<()>(1);
    let p = ready(vec![
        Box::new(GatedSource {
            calls: AtomicUsize::new(0),
            gate: Mutex::new(Some(gate)),
            entered: entered_tx,
        }),
        Box::new(LocalSource::new(d.path(), Duration::from_millis(200))),
    ]);
    // The gated source is stuck in its refresh (like a long GitHub sync)…
    entered.recv_timeout(Duration::from_secs(10)).unwrap();
    d.write(
        "local/later.md",
        "# Later\n\nadded while the other source syncs\n",
    );
    // …and the local change is still picked up.
    wait_for("the local change", || {
        paths(&p, "local") == ["README.md", "later.md"]
    });
    release.send(()).unwrap();
}

// ---- the first index, in the background ------------------------------------

/// A source whose first refresh waits until the test lets it go, and says
/// how far it has come meanwhile.
struct FirstRefreshGated {
    gate: Mutex<Option<crossbeam_channel::Receiver<()>>>,
    entered: crossbeam_channel::Sender<()>,
    slow: bool,
}

impl FirstRefreshGated {
    fn new(
        slow: bool,
    ) -> (
        Self,
        crossbeam_channel::Sender<()>,
        crossbeam_channel::Receiver<()>,
    ) {
        let (release, gate) = crossbeam_channel::bounded::<()>(1);
        let (entered, entered_rx) = crossbeam_channel::bounded::<()>(1);
        let source = FirstRefreshGated {
            gate: Mutex::new(Some(gate)),
            entered,
            slow,
        };
        (source, release, entered_rx)
    }
}

impl Source for FirstRefreshGated {
    fn label(&self) -> String {
        "gated-first".into()
    }
    fn interval(&self) -> Duration {
        Duration::from_secs(3600)
    }
    fn refresh(&self) -> Result<Option<Vec<RepoSnapshot>>, SourceError> {
        let gate = self.gate.lock().unwrap().take();
        if let Some(g) = gate {
            let _ = self.entered.send(());
            let _ = g.recv();
        }
        Ok(Some(vec![RepoSnapshot {
            name: "late".into(),
            description: None,
            docs: vec![DocFile {
                path: "README.md".into(),
                text: "# Late\n".into(),
                url: None,
            }],
        }]))
    }
    fn health(&self) -> Value {
        json!({"type": "gated-first"})
    }
    fn progress(&self) -> Option<String> {
        Some("gated-first: 3 of 10 files read".into())
    }
    fn first_refresh_is_slow(&self) -> bool {
        self.slow
    }
}

#[test]
fn start_returns_at_once_and_tools_answer_indexing_until_the_first_index() {
    use knowledge_vault::tools::Status;
    let (source, release, entered) = FirstRefreshGated::new(false);
    let p = DocsProvider::with_sources(vec![Box::new(source)]);
    // Returned while the first refresh is held, on its own thread.
    entered.recv_timeout(READY).unwrap();
    let progress = "indexing: gated-first: 3 of 10 files read";
    assert_eq!(p.starting().as_deref(), Some(progress));
    for (tool, args) in [
        ("list_repositories", json!({})),
        ("search_documentation", json!({"query": "late"})),
    ] {
        assert_eq!(
            p.call(tool, &args),
            Err(ToolError::Unavailable(progress.into()))
        );
    }
    assert_eq!(p.tools().unwrap().len(), 4);
    assert_eq!(p.status(), Status::Connected);
    assert!(!p.wait_ready(Duration::from_millis(50)));
    release.send(()).unwrap();
    assert!(p.wait_ready(READY));
    assert_eq!(p.starting(), None);
    assert_eq!(repo_names(&p), ["late"]);
    assert_eq!(p.index().doc_count(), 1);
}

#[test]
fn a_slow_first_sync_does_not_hold_up_readiness() {
    let (source, release, entered) = FirstRefreshGated::new(true);
    let d = TempDir::new("beside-sync");
    d.write("local/README.md", "# Local\n");
    let p = DocsProvider::with_sources(vec![
        Box::new(source),
        Box::new(LocalSource::new(d.path(), Duration::from_secs(3600))),
    ]);
    entered.recv_timeout(READY).unwrap();
    // Ready with the local source while the sync is still held.
    assert!(p.wait_ready(READY));
    assert_eq!(repo_names(&p), ["local"]);
    release.send(()).unwrap();
    wait_for("the synced repository", || {
        repo_names(&p) == ["late", "local"]
    });
}

#[test]
fn a_missing_docs_dir_makes_health_say_why_and_an_empty_one_does_not() {
    let home = TempDir::new("nodocs");
    let docs = home.path().join("docs");
    let kv = kv::Kv::start(
        home.path(),
        &[
            ("DOCS_DIR", docs.to_str().unwrap()),
            ("DOCS_REFRESH_SECS", "1"),
        ],
    );
    let tools = |kv: &kv::Kv| kv::json(&kv.get("/health").1)["services"]["mcp_server"].clone();
    let t = tools(&kv);
    assert_eq!(t["status"], "disconnected", "{t}");
    let error = t["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("DOCS_DIR") && error.contains("No such file or directory"),
        "{t}"
    );
    assert_eq!(kv::json(&kv.get("/health").1)["status"], "unhealthy");

    // The volume appears, empty: that is not an error.
    fs::create_dir_all(&docs).unwrap();
    wait_for("an empty DOCS_DIR to be fine", || {
        let t = tools(&kv);
        t["status"] == "connected" && t.get("error").is_none()
    });
    fs::write(docs.join("README.md"), "# Now\n").unwrap();
    wait_for("the first document", || {
        kv::json(&kv.get("/api/repos").1)
            .as_array()
            .is_some_and(|a| a.len() == 1)
    });
    // The failure was logged once, not on every refresh.
    let lines = kv.log();
    assert_eq!(
        lines
            .lines()
            .filter(|l| l.contains("cannot open DOCS_DIR"))
            .count(),
        1,
        "{lines}"
    );
}

// ---- hostile trees ----------------------------------------------------------

/// `mkfifo path`, or false where there is no mkfifo.
#[cfg(unix)]
fn mkfifo(path: &Path) -> bool {
    std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .is_ok_and(|s| s.success())
}

/// A started service's repository tree, once the repository is served.
fn served_tree(kv: &kv::Kv, repo: &str) -> Option<Vec<String>> {
    let (status, body) = kv.get(&format!("/api/repos/{repo}/tree"));
    (status == 200).then(|| {
        kv::json(&body)
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["path"].as_str().unwrap().to_string())
            .collect()
    })
}

fn wait_for_tree(kv: &kv::Kv, repo: &str, what: &str, want: impl Fn(&[String]) -> bool) {
    let mut tree = None;
    let seen = kv.wait_until(Duration::from_secs(60), |kv| {
        tree = served_tree(kv, repo);
        tree.as_deref().is_some_and(&want)
    });
    assert!(seen, "{what}: {tree:?}\n{}", kv.log());
}

/// The local source's `/health` entry.
fn local_health(kv: &kv::Kv) -> Value {
    let health = kv::json(&kv.get("/health").1);
    health["sources"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["type"] == "local"))
        .cloned()
        .unwrap_or_else(|| panic!("no local source in {health}"))
}

#[cfg(unix)]
#[test]
fn a_fifo_and_a_link_to_dev_zero_are_skipped_and_later_changes_still_indexed() {
    use std::os::unix::fs::symlink;
    let d = TempDir::new("fifo-svc");
    d.write(".git/HEAD", "ref");
    d.write("README.md", "# Top\n\nfirst\n");
    fs::create_dir_all(d.path().join("docs")).unwrap();
    if !mkfifo(&d.path().join("docs/pipe.md")) {
        eprintln!("no mkfifo: skipped");
        return;
    }
    symlink("/dev/zero", d.path().join("docs/zero.md")).unwrap();
    // A link inside the root to the FIFO: followed, and still not read.
    symlink(
        d.path().join("docs/pipe.md"),
        d.path().join("docs/via-link.md"),
    )
    .unwrap();
    let kv = kv::Kv::start(d.path(), &[("DOCS_DIR", "."), ("DOCS_REFRESH_SECS", "1")]);
    let repo = d.path().file_name().unwrap().to_str().unwrap().to_string();
    wait_for_tree(&kv, &repo, "the first index", |t| t == ["README.md"]);
    let health = kv::json(&kv.get("/health").1);
    assert_eq!(health["services"]["mcp_server"]["status"], "connected");
    // The source thread is not stuck: a change made now is indexed.
    d.write("docs/later.md", "# Later\n\nwritten after the start\n");
    wait_for_tree(&kv, &repo, "the later change", |t| {
        t == ["README.md", "docs/later.md"]
    });
}

#[cfg(unix)]
#[test]
fn a_file_swapped_between_the_walk_and_the_read_is_not_read() {
    use knowledge_vault::safe_read::{self, Expect, FileId, ReadError};
    use std::os::unix::fs::symlink;
    let home = TempDir::new("swap");
    let outside = TempDir::new("swap-outside");
    outside.write("docs/guide.md", "# Secret outside\n");
    let root = fs::canonicalize(home.path()).unwrap();
    let file = root.join("docs/guide.md");
    home.write("docs/guide.md", "# Guide\n");
    // What the walk saw, and what the read then expects.
    let walked = |p: &Path| FileId::of(&fs::symlink_metadata(p).unwrap());
    let expect = |id| Expect {
        limit: 1024 * 1024,
        inside: Some(root.as_path()),
        id,
    };
    let id = walked(&file);
    assert_eq!(safe_read::read(&file, expect(id)).unwrap(), b"# Guide\n");

    // A FIFO: the open does not wait for a writer, the handle says FIFO.
    fs::remove_file(&file).unwrap();
    if !mkfifo(&file) {
        eprintln!("no mkfifo: skipped");
        return;
    }
    let (tx, rx) = std::sync::mpsc::channel();
    let (path, root2) = (file.clone(), root.clone());
    std::thread::spawn(move || {
        let e = Expect {
            limit: 1024 * 1024,
            inside: Some(root2.as_path()),
            id,
        };
        let _ = tx.send(safe_read::read(&path, e).map_err(|e| e.to_string()));
    });
    let got = rx.recv_timeout(Duration::from_secs(20));
    if got.is_err() {
        // Release the blocked reader before failing.
        let _ = fs::OpenOptions::new().write(true).open(&file);
    }
    assert_eq!(
        got.expect("the read blocked on a FIFO"),
        Err("not a regular file (a FIFO)".to_string())
    );

    // A symlink to /dev/zero, or to a regular file outside the root:
    // O_NOFOLLOW refuses the last component.
    for target in [
        Path::new("/dev/zero"),
        &outside.path().join("docs/guide.md"),
    ] {
        fs::remove_file(&file).unwrap();
        symlink(target, &file).unwrap();
        let e = safe_read::read(&file, expect(None)).unwrap_err();
        assert!(matches!(e, ReadError::Open(_)), "{target:?}: {e}");
    }

    // A folder on the way swapped for a symlink out of the root: the
    // handle's real path is outside, and it is not the file the walk saw.
    fs::remove_file(&file).unwrap();
    fs::remove_dir(root.join("docs")).unwrap();
    symlink(outside.path().join("docs"), root.join("docs")).unwrap();
    let e = safe_read::read(&file, expect(None)).unwrap_err();
    assert!(matches!(e, ReadError::Outside(_)), "{e}");
    assert!(e.to_string().contains("outside the root"), "{e}");
    let e = safe_read::read(&file, expect(id)).unwrap_err();
    assert!(matches!(e, ReadError::Replaced), "{e}");

    // Another regular file renamed over it.
    fs::remove_file(root.join("docs")).unwrap();
    home.write("docs/guide.md", "# Guide\n");
    let id = walked(&file);
    home.write("docs/new.md", "# Other\n");
    fs::rename(root.join("docs/new.md"), &file).unwrap();
    let e = safe_read::read(&file, expect(id)).unwrap_err();
    assert!(matches!(e, ReadError::Replaced), "{e}");
    assert_eq!(
        safe_read::read(&file, expect(walked(&file))).unwrap(),
        b"# Other\n"
    );

    // Larger than the limit: refused, never read past limit + 1.
    home.write("docs/big.md", vec![b'x'; 2048]);
    let big = Expect {
        limit: 1024,
        inside: Some(root.as_path()),
        id: None,
    };
    let e = safe_read::read(&root.join("docs/big.md"), big).unwrap_err();
    assert!(matches!(e, ReadError::TooLarge { limit: 1024 }), "{e}");
}

/// `levels` nested folders `d/d/…/d` under `dir`, a README at the bottom;
/// its path inside the repository.
fn deep_tree(dir: &TempDir, levels: usize) -> String {
    let rel = vec!["d"; levels].join("/") + "/README.md";
    dir.write(&rel, "# Bottom\n\nthe deepest page\n");
    rel
}

#[cfg(unix)]
#[test]
fn a_thousand_level_tree_is_walked_once_per_folder_and_the_port_opens_at_once() {
    let d = TempDir::new("deep");
    d.write(".git/HEAD", "ref");
    d.write("README.md", "# Top\n");
    let bottom = deep_tree(&d, 1000);
    let repo = d.path().file_name().unwrap().to_str().unwrap().to_string();

    // Deep trees allowed: every folder listed once, nothing resolved.
    let started = Instant::now();
    let kv = kv::Kv::start(d.path(), &[("DOCS_DIR", "."), ("DOCS_MAX_DEPTH", "1000")]);
    let opened = started.elapsed();
    wait_for_tree(&kv, &repo, "the bottom page", |t| t.contains(&bottom));
    let walk = local_health(&kv)["last_walk"].clone();
    assert_eq!(walk["folders"], 1001, "{walk}");
    assert_eq!(walk["symlinks"], 0, "{walk}");
    // Generous for a loaded machine; before, 18 s (release) to 88 s (debug).
    assert!(walk["seconds"].as_f64().unwrap() < 10.0, "{walk}");
    assert!(
        opened < Duration::from_secs(30),
        "the port opened after {opened:?}"
    );
    drop(kv);

    // The default cap: 32 levels walked, one WARN naming the variable.
    let kv = kv::Kv::start(d.path(), &[("DOCS_DIR", ".")]);
    wait_for_tree(&kv, &repo, "the top page", |t| t == ["README.md"]);
    let health = local_health(&kv);
    assert_eq!(health["last_walk"]["folders"], 33, "{health}");
    let hit = health["limits_hit"][0]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(hit.contains("DOCS_MAX_DEPTH=32"), "{health}");
    assert_eq!(
        kv.log()
            .lines()
            .filter(|l| l.contains("DOCS_MAX_DEPTH=32"))
            .count(),
        1,
        "{}",
        kv.log()
    );
    assert!(kv.log().contains("[WARN]"), "{}", kv.log());
}

#[test]
fn the_walk_keeps_at_most_max_files_top_folders_first() {
    use knowledge_vault::docs::local::WalkLimits;
    let d = TempDir::new("maxfiles");
    d.write(".git/HEAD", "ref");
    for name in ["e.md", "a.md", "c/d.md", "b.md", "c/a.md"] {
        d.write(name, format!("# {name}\n"));
    }
    let limits = WalkLimits {
        max_files: 3,
        max_depth: 32,
    };
    let src = LocalSource::new(d.path(), Duration::from_secs(3600)).with_limits(limits);
    let snap = src.refresh().unwrap().expect("a first snapshot");
    let kept: Vec<&str> = snap[0].docs.iter().map(|f| f.path.as_str()).collect();
    // A folder's own files in name order, then its subfolders.
    assert_eq!(kept, ["a.md", "b.md", "e.md"]);
    let health = src.health();
    let hit = health["limits_hit"][0].as_str().unwrap();
    assert!(hit.contains("DOCS_MAX_FILES=3"), "{hit}");
    // The same files on every walk: nothing changed, nothing re-read.
    assert_eq!(src.refresh().unwrap(), None);
}
