//! The built-in documentation provider: repositories from local folders and
//! a mirrored GitHub organization, an in-memory search index, and the four
//! documentation tools answered in-process.
//!
//! Threads: one docs-source thread per [`Source`] refreshes it at its own
//! interval, so a long GitHub sync never delays a local change; one
//! docs-index thread builds a new [`Index`] aside whenever a source delivered
//! a snapshot and swaps it in. Queries clone the current `Arc<Index>` and
//! never wait for a build.
//!
//! [`DocsProvider::start`] returns at once. The first index is built in the
//! background, from the first refresh of every source except those whose
//! first refresh is slow (a GitHub sync: its snapshot is indexed when it
//! comes); until it is in service, [`ToolProvider::starting`] says how far
//! it has come and tool calls answer `Unavailable`. When no source could be
//! read at all (every one failed and none delivered anything, e.g. a
//! missing `DOCS_DIR`), the provider is `Disconnected` and its `/health`
//! details carry the reason; an empty `DOCS_DIR` is not an error.
//!
//! Documents are data only: nothing in their text changes what the provider
//! does. HTTP, MCP and chat are not this module's business.

pub mod github;
pub mod index;
pub mod local;
pub mod markdown;
pub mod snippet;
pub mod source;
pub mod tokenize;

use crate::config::Config;
use crate::sync::lock;
use crate::tools::{self, Status, ToolError, ToolProvider, ToolSpec};
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use index::Index;
use serde_json::{Map, Value, json};
use source::{RepoSnapshot, Source, SourceError, thousands};
use std::collections::HashSet;
use std::sync::{Arc, Condvar, Mutex, RwLock};
use std::time::{Duration, Instant};

/// Results of `search_documentation` when the caller gives no limit.
pub const DEFAULT_LIMIT: usize = 10;
/// The largest `limit` honoured.
pub const MAX_LIMIT: usize = 50;

/// Facts about the index in service, for `/health` and logs.
#[derive(Debug, Clone, Copy, Default)]
struct BuildInfo {
    seconds: f64,
    /// `None` until the first build.
    finished_unix: Option<u64>,
}

/// What a source's refreshes gave so far.
#[derive(Debug, Clone, Default)]
struct Outcome {
    /// Its first refresh has ended.
    reported: bool,
    /// It delivered a snapshot at least once.
    delivered: bool,
    /// Why its last refresh failed, when it did.
    error: Option<String>,
}

/// Where the first index is.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Readiness {
    /// Waiting for the first refresh of the sources it needs.
    Reading,
    /// Building it over this many files.
    Building(usize),
    Ready,
}

struct Shared {
    sources: Vec<Box<dyn Source>>,
    index: RwLock<(Arc<Index>, BuildInfo)>,
    /// One per source, in order.
    outcomes: Mutex<Vec<Outcome>>,
    readiness: Mutex<Readiness>,
    ready: Condvar,
    started: Instant,
}

impl Shared {
    fn current(&self) -> Arc<Index> {
        crate::sync::read(&self.index).0.clone()
    }

    fn readiness(&self) -> Readiness {
        *lock(&self.readiness)
    }

    fn set_readiness(&self, r: Readiness) {
        *lock(&self.readiness) = r;
        if r == Readiness::Ready {
            self.ready.notify_all();
        }
    }

    /// Notes how a refresh of source `i` ended; the snapshot, if any.
    fn record(
        &self,
        i: usize,
        result: Result<Option<Vec<RepoSnapshot>>, SourceError>,
    ) -> Option<Vec<RepoSnapshot>> {
        let mut outcomes = lock(&self.outcomes);
        let o = &mut outcomes[i];
        o.reported = true;
        match result {
            Ok(snapshot) => {
                o.error = None;
                o.delivered |= snapshot.is_some();
                snapshot
            }
            Err(e) => {
                // The source logged it when it started failing.
                log::debug!("documentation source {}: {e}", self.sources[i].label());
                o.error = Some(e.to_string());
                None
            }
        }
    }

    /// Why nothing can be served: every source failed and none delivered.
    fn unreadable(&self) -> Option<String> {
        let outcomes = lock(&self.outcomes);
        let mut reasons = Vec::new();
        for (o, s) in outcomes.iter().zip(&self.sources) {
            match &o.error {
                Some(e) if !o.delivered => reasons.push((s.label(), e.clone())),
                _ => return None,
            }
        }
        match reasons.as_slice() {
            [] => None,
            [(_, one)] => Some(one.clone()),
            many => Some(
                many.iter()
                    .map(|(label, e)| format!("{label}: {e}"))
                    .collect::<Vec<_>>()
                    .join("; "),
            ),
        }
    }

    /// What the first index still waits for, as `starting()` says it.
    fn progress(&self) -> Option<String> {
        match self.readiness() {
            Readiness::Ready => None,
            Readiness::Building(files) => Some(format!(
                "indexing: building the search index over {} files",
                thousands(files)
            )),
            Readiness::Reading => {
                let outcomes = lock(&self.outcomes).clone();
                let pending: Vec<String> = self
                    .sources
                    .iter()
                    .zip(outcomes)
                    .filter(|(s, o)| !o.reported && !s.first_refresh_is_slow())
                    .map(|(s, _)| {
                        s.progress()
                            .unwrap_or_else(|| format!("{}: starting", s.label()))
                    })
                    .collect();
                Some(if pending.is_empty() {
                    "indexing: building the search index".to_string()
                } else {
                    format!("indexing: {}", pending.join("; "))
                })
            }
        }
    }
}

pub struct DocsProvider {
    shared: Arc<Shared>,
    /// Dropping the provider drops this sender, which ends the refresh threads.
    _stop: Sender<()>,
}

impl DocsProvider {
    /// Starts the provider over the configured sources and returns at once;
    /// the first index is built in the background ([`DocsProvider::wait_ready`]).
    ///
    /// Sources: `DOCS_DIR` (the working directory when neither `DOCS_DIR`
    /// nor `GITHUB_ORG` is set) and the GitHub organization when configured.
    pub fn start(config: &Config) -> Arc<DocsProvider> {
        let mut sources: Vec<Box<dyn Source>> = Vec::new();
        let local_dir = match (&config.docs_dir, &config.github) {
            (Some(dir), _) => Some(dir.clone()),
            (None, None) => Some(std::path::PathBuf::from(".")),
            (None, Some(_)) => None,
        };
        if let Some(dir) = local_dir {
            let limits = local::WalkLimits {
                max_files: config.docs_max_files,
                max_depth: config.docs_max_depth,
            };
            sources.push(Box::new(
                local::LocalSource::new(dir, config.docs_refresh).with_limits(limits),
            ));
        }
        if let Some(gh) = &config.github {
            sources.push(Box::new(github::GithubSource::new(
                gh.clone(),
                config.cache_dir.clone(),
            )));
        }
        DocsProvider::with_sources(sources)
    }

    /// Same, over explicit sources (local folders, GitHub, test fakes). A
    /// repository name offered by two sources is served from the first.
    pub fn with_sources(sources: Vec<Box<dyn Source>>) -> Arc<DocsProvider> {
        let needed: HashSet<usize> = (0..sources.len())
            .filter(|&i| !sources[i].first_refresh_is_slow())
            .collect();
        for s in sources.iter().filter(|s| s.first_refresh_is_slow()) {
            log::info!(
                "documentation source {}: first sync runs in the background",
                s.label()
            );
        }
        let outcomes = vec![Outcome::default(); sources.len()];
        let shared = Arc::new(Shared {
            sources,
            index: RwLock::new((Arc::new(Index::build(Vec::new())), BuildInfo::default())),
            outcomes: Mutex::new(outcomes),
            readiness: Mutex::new(Readiness::Reading),
            ready: Condvar::new(),
            started: Instant::now(),
        });
        let (stop, stopped) = crossbeam_channel::bounded::<()>(0);
        start_threads(&shared, needed, &stopped);
        Arc::new(DocsProvider {
            shared,
            _stop: stop,
        })
    }

    /// The index in service (for benchmarks and tests): empty until the
    /// first one is built.
    pub fn index(&self) -> Arc<Index> {
        self.shared.current()
    }

    /// Waits until the first index is in service; false when `timeout`
    /// passed first.
    pub fn wait_ready(&self, timeout: Duration) -> bool {
        let guard = lock(&self.shared.readiness);
        let (guard, _) = self
            .shared
            .ready
            .wait_timeout_while(guard, timeout, |r| *r != Readiness::Ready)
            .unwrap_or_else(|p| p.into_inner());
        *guard == Readiness::Ready
    }

    fn list_repositories(&self) -> Value {
        let idx = self.shared.current();
        Value::Array(
            idx.repos()
                .iter()
                .map(|r| {
                    let mut o = Map::new();
                    o.insert("name".into(), json!(r.name));
                    o.insert("doc_count".into(), json!(r.docs.len()));
                    if let Some(d) = &r.description {
                        o.insert("description".into(), json!(d));
                    }
                    Value::Object(o)
                })
                .collect(),
        )
    }

    fn list_repo_docs(&self, args: &Value) -> Result<Value, ToolError> {
        let name = string_arg(args, "repo")?;
        let idx = self.shared.current();
        let repo = idx.repo_by_name(name).ok_or_else(|| repo_not_found(name))?;
        Ok(Value::Array(
            repo.docs
                .iter()
                .map(|&d| json!({"path": idx.file(d).path, "type": "file"}))
                .collect(),
        ))
    }

    fn get_documentation(&self, args: &Value) -> Result<Value, ToolError> {
        let name = string_arg(args, "repo")?;
        let path = string_arg(args, "path")?;
        tools::check_relative_path(path)?;
        let idx = self.shared.current();
        let repo = idx.repo_by_name(name).ok_or_else(|| repo_not_found(name))?;
        let doc = idx.doc_by_path(repo, path).ok_or_else(|| {
            ToolError::NotFound(format!(
                "document '{path}' not found in repository '{name}'"
            ))
        })?;
        let file = idx.file(doc);
        let mut meta = Map::new();
        meta.insert("repo".into(), json!(repo.name));
        meta.insert("path".into(), json!(file.path));
        meta.insert("size".into(), json!(file.text.len()));
        if let Some(t) = idx.title(doc) {
            meta.insert("title".into(), json!(t));
        }
        if let Some(u) = &file.url {
            meta.insert("url".into(), json!(u));
        }
        Ok(json!({"content": file.text, "metadata": meta}))
    }

    fn search_documentation(&self, args: &Value) -> Result<Value, ToolError> {
        let query = string_arg(args, "query")?;
        if query.trim().is_empty() {
            return Err(ToolError::BadInput(
                "argument 'query' must not be empty".into(),
            ));
        }
        let limit = match args.get("limit") {
            None | Some(Value::Null) => DEFAULT_LIMIT,
            Some(v) => match v.as_u64() {
                Some(n) if n >= 1 => (n as usize).min(MAX_LIMIT),
                _ => {
                    return Err(ToolError::BadInput(format!(
                        "argument 'limit' must be a whole number from 1 to {MAX_LIMIT}"
                    )));
                }
            },
        };
        let idx = self.shared.current();
        let repo = match args.get("repo") {
            None | Some(Value::Null) => None,
            Some(Value::String(r)) if r.is_empty() => None,
            Some(Value::String(r)) => Some(idx.repo_id(r).ok_or_else(|| repo_not_found(r))?),
            Some(_) => {
                return Err(ToolError::BadInput(
                    "argument 'repo' must be a string".into(),
                ));
            }
        };
        Ok(Value::Array(search_results(&idx, query, repo, limit)))
    }
}

/// Ranked search results as the tool returns them; snippets are made only
/// for the documents returned. The query is read within the index's budgets
/// ([`index::MAX_QUERY_BYTES`], [`index::MAX_QUERY_TERMS`]): a longer one is
/// cut, not refused.
pub fn search_results(idx: &Index, query: &str, repo: Option<u32>, limit: usize) -> Vec<Value> {
    let q = idx.query(query);
    let hits = idx.search(&q, repo, limit);
    let weights = idx.term_weights(&q);
    hits.iter()
        .map(|h| {
            let file = idx.file(h.doc);
            let (heading, body) = idx.section_text(h.section);
            let title = idx.title(h.doc).map_or_else(
                || {
                    file.path
                        .rsplit('/')
                        .next()
                        .unwrap_or(&file.path)
                        .to_string()
                },
                str::to_string,
            );
            let mut snippet = snippet::best_passage(body, &weights, snippet::SNIPPET_CHARS);
            if snippet.is_empty() {
                snippet = heading.map(markdown::clean_inline).unwrap_or_default();
            }
            let mut o = Map::new();
            o.insert("repo".into(), json!(idx.repo_name(h.doc)));
            o.insert("path".into(), json!(file.path));
            o.insert("title".into(), json!(title));
            if let Some(hd) = heading {
                o.insert("heading".into(), json!(markdown::clean_inline(hd)));
            }
            o.insert("snippet".into(), json!(snippet));
            o.insert(
                "score".into(),
                json!((h.score as f64 * 1000.0).round() / 1000.0),
            );
            if let Some(u) = &file.url {
                o.insert("url".into(), json!(u));
            }
            Value::Object(o)
        })
        .collect()
}

fn string_arg<'a>(args: &'a Value, key: &str) -> Result<&'a str, ToolError> {
    match args.get(key) {
        Some(Value::String(s)) => Ok(s),
        None | Some(Value::Null) => Err(ToolError::BadInput(format!(
            "missing required argument '{key}'"
        ))),
        Some(_) => Err(ToolError::BadInput(format!(
            "argument '{key}' must be a string"
        ))),
    }
}

fn repo_not_found(name: &str) -> ToolError {
    ToolError::NotFound(format!("repository '{name}' not found"))
}

/// Builds an index and logs what it holds.
/// A long build logs that it is still running, every few seconds.
fn build(snapshots: Vec<Arc<Vec<RepoSnapshot>>>) -> (Index, BuildInfo) {
    let started = Instant::now();
    let files = file_count(&snapshots);
    let (done, finished) = crossbeam_channel::bounded::<()>(0);
    let index = std::thread::scope(|scope| {
        let ticker = std::thread::Builder::new()
            .name("docs-index-progress".into())
            .spawn_scoped(scope, || {
                while finished.recv_timeout(source::PROGRESS_EVERY)
                    == Err(RecvTimeoutError::Timeout)
                {
                    log::info!(
                        "documentation: building the search index over {} files, {:.0} s so far",
                        thousands(files),
                        started.elapsed().as_secs_f64()
                    );
                }
            });
        if let Err(e) = ticker {
            log::debug!("no progress lines for this build: {e}");
        }
        let index = Index::build(snapshots);
        drop(done);
        index
    });
    let seconds = started.elapsed().as_secs_f64();
    log::info!(
        "documentation indexed: {} repositories, {} files, {} bytes, {} sections, {} terms in {:.2} s",
        index.repos().len(),
        index.doc_count(),
        index.bytes(),
        index.section_count(),
        index.term_count(),
        seconds
    );
    (
        index,
        BuildInfo {
            seconds,
            finished_unix: Some(crate::clock::unix_secs()),
        },
    )
}

fn file_count(snapshots: &[Arc<Vec<RepoSnapshot>>]) -> usize {
    snapshots
        .iter()
        .flat_map(|s| s.iter())
        .map(|r| r.docs.len())
        .sum()
}

/// A snapshot from source `i` (`None`: its first refresh gave none).
type Change = (usize, Option<Vec<RepoSnapshot>>);

/// One docs-source thread per source, and the docs-index thread. All end
/// when the provider is dropped (`stop` closes). `needed`: the sources whose
/// first refresh the first index waits for.
fn start_threads(shared: &Arc<Shared>, needed: HashSet<usize>, stop: &Receiver<()>) {
    let (changed, changes) = crossbeam_channel::unbounded::<Change>();
    let mut needed = needed;
    for i in 0..shared.sources.len() {
        let (shared, stop, changed) = (shared.clone(), stop.clone(), changed.clone());
        let spawned = std::thread::Builder::new()
            .name(format!("docs-source-{i}"))
            .spawn(move || refresh_loop(&shared, i, &stop, &changed));
        if let Err(e) = spawned {
            log::error!("cannot start a documentation refresh thread: {e}");
            // Nothing will come from it: the first index does not wait.
            needed.remove(&i);
        }
    }
    drop(changed);
    let builder = shared.clone();
    let spawned = std::thread::Builder::new()
        .name("docs-index".into())
        .spawn(move || build_loop(&builder, needed, &changes));
    if let Err(e) = spawned {
        log::error!("cannot start the documentation index thread: {e}");
        // Serve the empty index rather than "indexing" forever.
        shared.set_readiness(Readiness::Ready);
    }
}

/// Refreshes source `i` now and then at its interval; sends every snapshot,
/// and the outcome of the first refresh even without one.
fn refresh_loop(shared: &Shared, i: usize, stop: &Receiver<()>, changed: &Sender<Change>) {
    let source = &shared.sources[i];
    let mut first = true;
    loop {
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| source.refresh()))
            .unwrap_or_else(|panic| {
                let message = panic
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                log::error!(
                    "documentation source {}: refresh panicked: {message}",
                    source.label()
                );
                Err(SourceError::Panicked(message))
            });
        let snapshot = shared.record(i, result);
        if (snapshot.is_some() || first) && changed.send((i, snapshot)).is_err() {
            return;
        }
        first = false;
        let wait = source.interval().max(Duration::from_millis(100));
        if stop.recv_timeout(wait) != Err(RecvTimeoutError::Timeout) {
            return;
        }
    }
}

/// Rebuilds the index aside whenever a snapshot came, then swaps it in.
/// The first build waits until every source in `needed` has reported.
/// Ends when every source thread has ended.
fn build_loop(shared: &Shared, mut needed: HashSet<usize>, changes: &Receiver<Change>) {
    let mut snapshots: Vec<Arc<Vec<RepoSnapshot>>> = (0..shared.sources.len())
        .map(|_| Arc::new(Vec::new()))
        .collect();
    let (mut ready, mut dirty) = (false, false);
    loop {
        if needed.is_empty() && (dirty || !ready) {
            if !ready {
                let files = file_count(&snapshots);
                log::info!(
                    "documentation: building the first index over {} files",
                    thousands(files)
                );
                shared.set_readiness(Readiness::Building(files));
            }
            let (index, info) = build(snapshots.clone());
            dirty = false;
            let fresh = (Arc::new(index), info);
            // The old index is freed after the lock is released.
            let old = std::mem::replace(&mut *crate::sync::write(&shared.index), fresh);
            drop(old);
            if !ready {
                ready = true;
                shared.set_readiness(Readiness::Ready);
                log::info!(
                    "documentation ready {:.2} s after start",
                    shared.started.elapsed().as_secs_f64()
                );
            }
        }
        let Ok(first) = changes.recv() else {
            return;
        };
        // Changes that arrived meanwhile go into the same build.
        for (i, snapshot) in std::iter::once(first).chain(changes.try_iter()) {
            needed.remove(&i);
            if let Some(s) = snapshot {
                snapshots[i] = Arc::new(s);
                dirty = true;
            }
        }
    }
}

impl ToolProvider for DocsProvider {
    fn call(&self, name: &str, arguments: &Value) -> Result<Value, ToolError> {
        if let Some(progress) = self.shared.progress() {
            return Err(ToolError::Unavailable(progress));
        }
        match name {
            tools::LIST_REPOSITORIES => Ok(self.list_repositories()),
            tools::LIST_REPO_DOCS => self.list_repo_docs(arguments),
            tools::GET_DOCUMENTATION => self.get_documentation(arguments),
            tools::SEARCH_DOCUMENTATION => self.search_documentation(arguments),
            other => Err(ToolError::Failed(format!("unknown tool: {other}"))),
        }
    }

    fn tools(&self) -> Result<Vec<ToolSpec>, ToolError> {
        Ok(tools::documentation_tools())
    }

    fn status(&self) -> Status {
        match self.shared.unreadable() {
            Some(_) => Status::Disconnected,
            None => Status::Connected,
        }
    }

    fn starting(&self) -> Option<String> {
        self.shared.progress()
    }

    fn health_details(&self) -> Value {
        let (idx, info) = {
            let guard = crate::sync::read(&self.shared.index);
            (guard.0.clone(), guard.1)
        };
        let mut details = json!({
            "provider": "built-in",
            "repositories": idx.repos().len(),
            "documents": idx.doc_count(),
            "bytes": idx.bytes(),
            "index": {
                "sections": idx.section_count(),
                "terms": idx.term_count(),
                "build_seconds": (info.seconds * 1000.0).round() / 1000.0,
                "built_at": info.finished_unix,
            },
            "sources": self.shared.sources.iter().map(|s| s.health()).collect::<Vec<_>>(),
        });
        if let Some(reason) = self.shared.unreadable() {
            details["error"] = json!(reason);
        }
        details
    }
}
