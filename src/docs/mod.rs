//! The built-in documentation provider: repositories from local folders (and
//! later a GitHub organization), an in-memory search index, and the four
//! documentation tools answered in-process.
//!
//! One refresh thread asks each [`Source`] for changes at its own interval
//! and, when any changed, builds a new [`Index`] aside and swaps it in;
//! queries clone the current `Arc<Index>` and never wait for a build.
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
use crate::tools::{self, Status, ToolError, ToolProvider, ToolSpec};
use crossbeam_channel::{RecvTimeoutError, Sender};
use index::Index;
use serde_json::{Map, Value, json};
use source::{RepoSnapshot, Source};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// Results of `search_documentation` when the caller gives no limit.
pub const DEFAULT_LIMIT: usize = 10;
/// The largest `limit` honoured.
pub const MAX_LIMIT: usize = 50;

/// Facts about the index in service, for `/health` and logs.
#[derive(Debug, Clone, Copy, Default)]
struct BuildInfo {
    seconds: f64,
    finished_unix: u64,
}

struct Shared {
    sources: Vec<Box<dyn Source>>,
    index: RwLock<(Arc<Index>, BuildInfo)>,
}

impl Shared {
    fn current(&self) -> Arc<Index> {
        crate::sync::read(&self.index).0.clone()
    }
}

pub struct DocsProvider {
    shared: Arc<Shared>,
    /// Dropping the provider drops this sender, which ends the refresh threads.
    _stop: Sender<()>,
}

impl DocsProvider {
    /// Builds the first index from `DOCS_DIR` (blocking) and starts the
    /// refresh thread.
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
            sources.push(Box::new(local::LocalSource::new(dir, config.docs_refresh)));
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
        let mut snapshots: Vec<Arc<Vec<RepoSnapshot>>> = Vec::with_capacity(sources.len());
        for s in &sources {
            if s.first_refresh_is_slow() {
                log::info!(
                    "documentation source {}: first sync runs in the background",
                    s.label()
                );
                snapshots.push(Arc::new(Vec::new()));
                continue;
            }
            let snap = match s.refresh() {
                Ok(Some(snap)) => snap,
                Ok(None) => Vec::new(),
                Err(e) => {
                    log::warn!("documentation source {}: {e}", s.label());
                    Vec::new()
                }
            };
            snapshots.push(Arc::new(snap));
        }
        let (index, info) = build(snapshots.clone());
        let shared = Arc::new(Shared {
            sources,
            index: RwLock::new((Arc::new(index), info)),
        });
        let (stop, stopped) = crossbeam_channel::bounded::<()>(0);
        start_refresh(&shared, snapshots, &stopped);
        Arc::new(DocsProvider {
            shared,
            _stop: stop,
        })
    }

    /// The index in service (for benchmarks and tests).
    pub fn index(&self) -> Arc<Index> {
        self.shared.current()
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
fn build(snapshots: Vec<Arc<Vec<RepoSnapshot>>>) -> (Index, BuildInfo) {
    let started = Instant::now();
    let index = Index::build(snapshots);
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
            finished_unix: crate::clock::unix_secs(),
        },
    )
}

/// One thread per source, so a long GitHub sync (or a wait for its rate
/// limit) never delays picking up a local change; and one builder thread
/// that rebuilds the index aside whenever a source delivered a new snapshot,
/// then swaps it in. All end when the provider is dropped (`stop` closes).
fn start_refresh(
    shared: &Arc<Shared>,
    mut snapshots: Vec<Arc<Vec<RepoSnapshot>>>,
    stop: &crossbeam_channel::Receiver<()>,
) {
    let (changed, changes) = crossbeam_channel::unbounded::<(usize, Vec<RepoSnapshot>)>();
    for (i, snap) in snapshots.iter().enumerate() {
        let (shared, stop, changed) = (shared.clone(), stop.clone(), changed.clone());
        // A source skipped at start-up (slow first sync) runs at once.
        let first = if snap.is_empty() && shared.sources[i].first_refresh_is_slow() {
            Duration::ZERO
        } else {
            shared.sources[i].interval()
        };
        let spawned = std::thread::Builder::new()
            .name(format!("docs-source-{i}"))
            .spawn(move || {
                let source = &shared.sources[i];
                let mut wait = first;
                while let Err(RecvTimeoutError::Timeout) = stop.recv_timeout(wait) {
                    match source.refresh() {
                        Ok(Some(snap)) => {
                            if changed.send((i, snap)).is_err() {
                                return;
                            }
                        }
                        Ok(None) => {}
                        // The source logged its own error line.
                        Err(e) => log::debug!("documentation source {}: {e}", source.label()),
                    }
                    wait = source.interval().max(Duration::from_millis(100));
                }
            });
        if let Err(e) = spawned {
            log::error!("cannot start a documentation refresh thread: {e}");
        }
    }
    drop(changed);
    let shared = shared.clone();
    let spawned = std::thread::Builder::new()
        .name("docs-index".into())
        .spawn(move || {
            // Ends when every source thread has ended.
            for (i, snap) in changes.iter() {
                snapshots[i] = Arc::new(snap);
                // Changes that arrived meanwhile go into the same build.
                for (i, snap) in changes.try_iter() {
                    snapshots[i] = Arc::new(snap);
                }
                let (index, info) = build(snapshots.clone());
                let fresh = (Arc::new(index), info);
                // The old index is freed after the lock is released.
                let old = std::mem::replace(&mut *crate::sync::write(&shared.index), fresh);
                drop(old);
            }
        });
    if let Err(e) = spawned {
        log::error!("cannot start the documentation index thread: {e}");
    }
}

impl ToolProvider for DocsProvider {
    fn call(&self, name: &str, arguments: &Value) -> Result<Value, ToolError> {
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
        Status::Connected
    }

    fn health_details(&self) -> Value {
        let (idx, info) = {
            let guard = crate::sync::read(&self.shared.index);
            (guard.0.clone(), guard.1)
        };
        json!({
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
        })
    }
}
