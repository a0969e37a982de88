//! Benchmark and evaluation of the built-in documentation provider, through
//! its public library API. Prints figures; asserts nothing. See
//! scripts/docs/run-bench.

use knowledge_vault::docs::DocsProvider;
use knowledge_vault::docs::local::LocalSource;
use knowledge_vault::docs::source::{RepoSnapshot, Source, SourceError};
use knowledge_vault::tools::ToolProvider;
use serde_json::{Value, json};
use std::sync::Mutex;
use std::time::{Duration, Instant};

const HOUR: Duration = Duration::from_secs(3600);

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1024.0 * 1024.0)
}

/// Serves a fixed snapshot once: the corpus, or copies of it under other names.
struct Fixed(Mutex<Option<Vec<RepoSnapshot>>>);

impl Source for Fixed {
    fn label(&self) -> String {
        "fixed".into()
    }
    fn interval(&self) -> Duration {
        HOUR
    }
    fn refresh(&self) -> Result<Option<Vec<RepoSnapshot>>, SourceError> {
        Ok(self.0.lock().unwrap_or_else(|e| e.into_inner()).take())
    }
    fn health(&self) -> Value {
        json!({})
    }
}

/// A provider over `snap`, once its index is built (it builds in the background).
fn ready(snap: Vec<RepoSnapshot>) -> std::sync::Arc<DocsProvider> {
    let p = DocsProvider::with_sources(vec![Box::new(Fixed(Mutex::new(Some(snap))))]);
    assert!(p.wait_ready(HOUR), "the index was never built");
    p
}

fn load(corpus: &str) -> (Vec<RepoSnapshot>, f64) {
    let t = Instant::now();
    let src = LocalSource::new(corpus, HOUR);
    let snap = src.refresh().ok().flatten().unwrap_or_default();
    (snap, t.elapsed().as_secs_f64())
}

/// One question of scripts/docs/eval.json: the query, the half it belongs
/// to ("tune" or "test", fixed before tuning) and the documents that answer it.
struct Question {
    q: String,
    split: String,
    answers: Vec<String>,
}

fn eval_set(path: &str) -> Vec<Question> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let v: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{path}: {e}"));
    v.as_array()
        .expect("eval.json is a list")
        .iter()
        .map(|q| Question {
            q: q["q"].as_str().expect("q").to_string(),
            split: q["split"].as_str().unwrap_or("tune").to_string(),
            answers: q["answers"]
                .as_array()
                .expect("answers")
                .iter()
                .map(|a| a.as_str().expect("answer").to_string())
                .collect(),
        })
        .collect()
}

fn search(p: &DocsProvider, q: &str, limit: usize) -> Vec<String> {
    match p.call("search_documentation", &json!({"query": q, "limit": limit})) {
        Ok(Value::Array(a)) => a
            .iter()
            .map(|r| {
                format!(
                    "{}/{}",
                    r["repo"].as_str().unwrap_or(""),
                    r["path"].as_str().unwrap_or("")
                )
            })
            .collect(),
        other => panic!("search failed: {other:?}"),
    }
}

/// Sums of the per-question figures of one half.
#[derive(Default)]
struct Scores {
    n: usize,
    hit5: usize,
    rr: f64,
    ndcg: f64,
}

impl Scores {
    fn line(&self, name: &str) -> String {
        let n = self.n.max(1) as f64;
        format!(
            "{name:<5} {:>3} questions: recall@5 {:.3}, MRR@10 {:.3}, nDCG@10 {:.3}",
            self.n,
            self.hit5 as f64 / n,
            self.rr / n,
            self.ndcg / n
        )
    }
}

/// nDCG@10 with binary relevance: every listed answer counts 1.
fn ndcg10(results: &[String], answers: &[String]) -> f64 {
    let dcg: f64 = results
        .iter()
        .take(10)
        .enumerate()
        .filter(|(_, r)| answers.contains(r))
        .map(|(i, _)| 1.0 / (i as f64 + 2.0).log2())
        .sum();
    let ideal: f64 = (0..answers.len().min(10))
        .map(|i| 1.0 / (i as f64 + 2.0).log2())
        .sum();
    if ideal > 0.0 { dcg / ideal } else { 0.0 }
}

fn run_eval(p: &DocsProvider, file: &str, verbose: bool) {
    let set = eval_set(file);
    let mut missing = 0usize;
    let (mut tune, mut test) = (Scores::default(), Scores::default());
    for question in &set {
        let (q, answers) = (&question.q, &question.answers);
        for a in answers {
            let (repo, path) = a.split_once('/').unwrap_or((a, ""));
            if p.call("get_documentation", &json!({"repo": repo, "path": path}))
                .is_err()
            {
                println!("  ! answer not in corpus: {a}");
                missing += 1;
            }
        }
        let results = search(p, q, 10);
        let rank = results
            .iter()
            .position(|r| answers.contains(r))
            .map(|i| i + 1);
        let s = if question.split == "test" {
            &mut test
        } else {
            &mut tune
        };
        s.n += 1;
        if rank.is_some_and(|r| r <= 5) {
            s.hit5 += 1;
        }
        if let Some(r) = rank {
            s.rr += 1.0 / r as f64;
        }
        s.ndcg += ndcg10(&results, answers);
        if verbose || rank.is_none_or(|r| r > 5) {
            println!(
                "{:>4}  [{}] {q}",
                rank.map_or("-".to_string(), |r| r.to_string()),
                question.split
            );
            if verbose || rank.is_none() {
                for r in results.iter().take(3) {
                    println!("        {r}");
                }
            }
        }
    }
    println!("evaluation ({} questions):", set.len());
    println!("  {}", tune.line("tune"));
    println!("  {}", test.line("test"));
    if missing > 0 {
        println!("  ({missing} answers missing from corpus)");
    }
}

fn latency(p: &DocsProvider, queries: &[String]) -> (f64, f64, f64) {
    // Warm-up, then three passes.
    for q in queries {
        search(p, q, 10);
    }
    let mut times = Vec::new();
    for _ in 0..3 {
        for q in queries {
            let t = Instant::now();
            search(p, q, 10);
            times.push(t.elapsed().as_secs_f64() * 1000.0);
        }
    }
    times.sort_by(f64::total_cmp);
    let pct = |x: f64| times[((times.len() as f64 - 1.0) * x) as usize];
    (pct(0.5), pct(0.99), times[times.len() - 1])
}

fn queries(p: &DocsProvider, eval: &[Question]) -> Vec<String> {
    let mut qs: Vec<String> = eval.iter().map(|e| e.q.clone()).collect();
    let idx = p.index();
    let step = (idx.doc_count() / 250).max(1);
    for d in (0..idx.doc_count()).step_by(step) {
        if let Some(t) = idx.title(d as u32) {
            qs.push(t.to_string());
        }
    }
    for q in [
        "opentelemetry",
        "the",
        "collector exporter",
        "how to configure sampling",
        "span",
        "metrics",
        "トレース",
        "指标",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "http.server.request.duration",
        "zzzz unknown",
        "kubernetes operator auto instrumentation java python nodejs dotnet go",
    ] {
        qs.push(q.to_string());
    }
    qs
}

fn bench(corpus: &str, eval: &[Question]) {
    let rss0 = rss_kib();
    let (snap, read_s) = load(corpus);
    let bytes: u64 = snap
        .iter()
        .flat_map(|r| &r.docs)
        .map(|d| d.text.len() as u64)
        .sum();
    let files: usize = snap.iter().map(|r| r.docs.len()).sum();
    let repos = snap.len();
    let rss_loaded = rss_kib();
    let t = Instant::now();
    let p = ready(snap);
    let build_s = t.elapsed().as_secs_f64();
    let rss_built = rss_kib();
    println!("corpus: {corpus}");
    println!(
        "  {repos} repositories, {files} files, {:.1} MiB of text",
        mib(bytes)
    );
    println!(
        "  read from disk: {read_s:.2} s; index build: {build_s:.2} s; read + build: {:.2} s",
        read_s + build_s
    );
    let text_kib = rss_loaded.saturating_sub(rss0);
    let index_kib = rss_built.saturating_sub(rss_loaded);
    println!(
        "  RSS: text {:.1} MiB + index {:.1} MiB = {:.1} MiB ({:.2}x corpus bytes)",
        text_kib as f64 / 1024.0,
        index_kib as f64 / 1024.0,
        (text_kib + index_kib) as f64 / 1024.0,
        ((text_kib + index_kib) * 1024) as f64 / bytes as f64
    );
    let idx = p.index();
    println!(
        "  {} sections, {} distinct terms",
        idx.section_count(),
        idx.term_count()
    );
    drop(idx);
    let qs = queries(&p, eval);
    let (p50, p99, max) = latency(&p, &qs);
    println!(
        "  search latency over {} queries x3 (tool call incl. snippets + JSON): p50 {p50:.2} ms, p99 {p99:.2} ms, max {max:.2} ms",
        qs.len()
    );
    drop(p);

    // 10x: the same repositories under ten names.
    let (snap, _) = load(corpus);
    let mut big = Vec::new();
    for i in 0..10 {
        for r in &snap {
            let mut r = r.clone();
            r.name = format!("{}-{i}", r.name);
            big.push(r);
        }
    }
    drop(snap);
    let rss_loaded = rss_kib();
    let t = Instant::now();
    let p = ready(big);
    let build_s = t.elapsed().as_secs_f64();
    let index_kib = rss_kib().saturating_sub(rss_loaded);
    let (p50, p99, max) = latency(&p, &qs);
    println!(
        "10x corpus ({} repositories, {:.0} MiB):",
        repos * 10,
        mib(bytes * 10)
    );
    println!(
        "  index build: {build_s:.2} s; index RSS {:.1} MiB (+ text)",
        index_kib as f64 / 1024.0
    );
    println!("  search latency: p50 {p50:.2} ms, p99 {p99:.2} ms, max {max:.2} ms");
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let value = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1).cloned())
    };
    let corpus = value("--corpus").unwrap_or_else(|| "/work/shared/corpus/open-telemetry".into());
    let eval_file = value("--eval-file").unwrap_or_else(|| "scripts/docs/eval.json".into());
    if args.iter().any(|a| a == "--repos") {
        // Repository descriptions as list_repositories shows them, to check by eye.
        let (snap, _) = load(&corpus);
        let p = DocsProvider::with_sources(vec![Box::new(Fixed(Mutex::new(Some(snap))))]);
        if let Ok(Value::Array(repos)) = p.call("list_repositories", &json!({})) {
            for r in repos {
                println!(
                    "{}: {}",
                    r["name"].as_str().unwrap_or(""),
                    r["description"].as_str().unwrap_or("-")
                );
            }
        }
    } else if args.iter().any(|a| a == "--eval") {
        let (snap, _) = load(&corpus);
        let p = ready(snap);
        run_eval(&p, &eval_file, args.iter().any(|a| a == "--verbose"));
    } else {
        let eval = eval_set(&eval_file);
        bench(&corpus, &eval);
    }
}
