//! Search quality as a user meets it: one result per page and its
//! translations (in the reader's language), the repository name as a search
//! field, snippets that show the answering sentence without markup noise,
//! and a hostile query that is cut to its budget instead of burning seconds
//! of CPU. Through the tool call and through the real binary's offline chat.

use crate::support::kv;
use crate::support::ws_client;

use knowledge_vault::docs::DocsProvider;
use knowledge_vault::docs::local::LocalSource;
use knowledge_vault::tools::ToolProvider;
use kv::{Kv, TempDir};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};
use ws_client::{connect, types};

/// A small organization: a website with a translated page, two SDKs with
/// the same guide, and a README full of badges.
fn site() -> TempDir {
    let d = TempDir::new("search");
    d.write(
        "website/content/en/docs/sampling.md",
        "---\ntitle: Sampling\n---\n\n## Tail sampling\n\nTail sampling waits for the whole trace before it decides which traces to keep.\n",
    );
    d.write(
        "website/content/fr/docs/sampling.md",
        "---\ntitle: Échantillonnage\n---\n\n## Tail sampling\n\nLe tail sampling attend la trace entière avant de décider quelles traces garder.\n",
    );
    d.write(
        "website/content/ja/docs/sampling.md",
        "---\ntitle: サンプリング\n---\n\n## テールサンプリング\n\nテールサンプリング（tail sampling）はトレース全体を待ってから決めます。\n",
    );
    for sdk in ["sdk-rust", "sdk-go"] {
        d.write(
            &format!("{sdk}/docs/export.md"),
            "# Export\n\nSpans are exported over OTLP with gRPC or HTTP.\n",
        );
    }
    d.write(
        "sdk-go/README.md",
        "# Go SDK\n\n[![PkgGoDev](https://pkg.go.dev/badge/x)](https://pkg.go.dev/x) [![CI](https://ci/b.svg)](https://ci)\n\n\
         <p align=\"center\"><img src=\"logo.png\"></p>\n\n\
         The Go SDK records spans and metrics.\n\n## Shutdown\n\n\
         Call `Shutdown` on the tracer provider before the process exits, or the last spans are lost.\n",
    );
    d
}

fn provider(d: &TempDir) -> Arc<DocsProvider> {
    let p = DocsProvider::with_sources(vec![Box::new(LocalSource::new(
        d.path(),
        Duration::from_secs(3600),
    ))]);
    assert!(p.wait_ready(Duration::from_secs(60)), "never ready");
    p
}

fn search(p: &DocsProvider, query: &str) -> Vec<Value> {
    match p.call("search_documentation", &json!({"query": query})) {
        Ok(Value::Array(hits)) => hits,
        other => panic!("search {query:?}: {other:?}"),
    }
}

fn paths(hits: &[Value]) -> Vec<String> {
    hits.iter()
        .map(|h| {
            format!(
                "{}/{}",
                h["repo"].as_str().unwrap(),
                h["path"].as_str().unwrap()
            )
        })
        .collect()
}

#[test]
fn a_page_and_its_translations_take_one_slot_in_the_query_language() {
    let d = site();
    let p = provider(&d);
    let en = search(&p, "tail sampling whole trace");
    assert_eq!(paths(&en), ["website/content/en/docs/sampling.md"]);
    assert_eq!(en[0]["heading"], "Tail sampling");
    let fr = search(&p, "comment fonctionne le tail sampling des traces");
    assert_eq!(paths(&fr), ["website/content/fr/docs/sampling.md"]);
    let ja = search(&p, "テールサンプリングとは");
    assert_eq!(paths(&ja), ["website/content/ja/docs/sampling.md"]);
}

#[test]
fn the_repository_name_is_a_search_field() {
    let d = site();
    let p = provider(&d);
    let hits = search(&p, "rust export otlp");
    assert_eq!(paths(&hits)[0], "sdk-rust/docs/export.md", "{hits:?}");
    let hits = search(&p, "go export otlp");
    assert_eq!(paths(&hits)[0], "sdk-go/docs/export.md", "{hits:?}");
}

#[test]
fn snippets_show_the_answer_without_markup() {
    let d = site();
    let p = provider(&d);
    let hits = search(&p, "spans lost when the process exits");
    assert_eq!(paths(&hits)[0], "sdk-go/README.md");
    assert_eq!(hits[0]["heading"], "Shutdown");
    assert_eq!(
        hits[0]["snippet"],
        "Call Shutdown on the tracer provider before the process exits, or the last spans are lost."
    );
    let repos = p.call("list_repositories", &json!({})).unwrap();
    let go = repos
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "sdk-go")
        .unwrap();
    assert_eq!(go["description"], "The Go SDK records spans and metrics.");
    for h in search(&p, "go sdk records spans") {
        let s = h["snippet"].as_str().unwrap();
        assert!(!s.contains("PkgGoDev") && !s.contains("http"), "{s}");
    }
}

/// 49,000 distinct words in one query: read within 4 KiB and 64 words, in a
/// time that cannot flake even in a debug build on a loaded machine (the
/// quadratic duplicate check took seconds per call here).
#[test]
fn a_huge_query_is_cut_to_its_budget() {
    let d = site();
    let p = provider(&d);
    let huge: String = std::iter::once("sampling ".to_string())
        .chain((0..49_000).map(|i| format!("w{i} ")))
        .collect();
    let idx = p.index();
    let q = idx.query(&huge);
    assert!(q.truncated);
    assert_eq!(q.considered, knowledge_vault::docs::index::MAX_QUERY_TERMS);
    let started = Instant::now();
    for _ in 0..5 {
        let hits = search(&p, &huge);
        assert_eq!(paths(&hits), ["website/content/en/docs/sampling.md"]);
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

/// The offline chat searches with the user's words: a French question is
/// answered from the French page, and a 49k-word message is no attack.
#[test]
fn offline_chat_answers_from_the_page_in_the_readers_language() {
    let d = site();
    let kv = Kv::start(d.path(), &[("MAX_MESSAGE_BYTES", "1048576")]);
    let mut ws = connect(kv.port, "search-fr", None).unwrap();
    ws.ask("Comment fonctionne le tail sampling des traces ?");
    let events = ws.until_done();
    assert_eq!(&types(&events)[..2], ["tool_use_start", "tool_result"]);
    let result = &events[1]["result"];
    assert_eq!(result[0]["path"], "content/fr/docs/sampling.md", "{result}");
    assert_eq!(result.as_array().unwrap().len(), 1, "{result}");

    let huge: String = (0..49_000).map(|i| format!("w{i} ")).collect::<String>() + "sampling";
    let started = Instant::now();
    ws.ask(&huge);
    let events = ws.until_done();
    assert_eq!(types(&events)[1], "tool_result");
    assert!(started.elapsed() < Duration::from_secs(20));
}
