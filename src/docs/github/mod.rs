//! The GitHub organization source: mirrors the documentation files of an
//! organization's (or user's) repositories through the REST API and keeps a
//! disk cache (`cache.rs`) so that a restart serves at once and an unchanged
//! refresh costs only 304s.
//!
//! The first refresh serves the cache when it holds a complete sync;
//! otherwise, and on every later refresh, a sync lists the repositories
//! (conditional per page), makes one tree call per repository (conditional;
//! walking subtrees when GitHub truncates it), and fetches only blobs whose
//! sha is not cached, on a few worker threads (`parallel.rs`). A failed sync
//! keeps what was served before (a first one serves what the cache has) and
//! is an error only when there is nothing to serve; a 401 stops the whole
//! sync with one message. Only the default branch is mirrored; the Git data
//! API is used rather than `contents`, so a file costs at most one request,
//! once per content. It does not index, search or serve anything: that is
//! the provider's job.

mod api;
mod cache;
mod parallel;

pub use api::{ApiError, decode_base64};
pub use cache::git_blob_sha;

use crate::clock::{rfc3339, unix_millis};
use crate::config::GithubConfig;
use crate::docs::source::{
    DocFile, MAX_DOC_BYTES, PROGRESS_EVERY, RepoSnapshot, Source, SourceError, is_doc_path,
    is_skipped_dir,
};
use crate::sync::lock;
use api::{Api, Fetched, encode_path};
use cache::{Cache, FileEntry, Page, RepoInfo, RepoState, State, is_hex_sha, sha_matches};
use parallel::parallel;
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// Requests in flight at once (GitHub discourages many concurrent requests).
const WORKERS: usize = 4;
/// A recursive tree is capped at 7 MB by GitHub; leave ample headroom.
const TREE_LIMIT: u64 = 64 * 1024 * 1024;
/// Base64 of a 1 MiB file with line breaks, in JSON.
const BLOB_LIMIT: u64 = 3 * 1024 * 1024;
const LIST_LIMIT: u64 = 16 * 1024 * 1024;
const MAX_PAGES: usize = 10_000;

/// File contents by blob sha.
type Texts = HashMap<String, Vec<u8>>;

pub struct GithubSource {
    config: GithubConfig,
    api: Api,
    cache: Cache,
    /// Held for a whole refresh (refreshes never overlap).
    work: Mutex<Work>,
    /// What `/health` shows; locked only briefly.
    status: Mutex<Status>,
    /// Messages logged once per process (skipped repositories and files).
    noted: Mutex<HashSet<String>>,
}

#[derive(Default)]
struct Work {
    loaded: bool,
    state: State,
    served: Option<Served>,
}

/// What the last returned snapshot contained, to tell whether anything changed.
struct Served {
    model: Vec<ServedRepo>,
    /// False when some files could not be fetched: the next refresh retries.
    complete: bool,
}

#[derive(PartialEq)]
struct ServedRepo {
    name: String,
    description: Option<String>,
    html_url: String,
    branch: String,
    files: Vec<(String, String)>,
}

#[derive(Default)]
struct Status {
    last_sync: Option<u64>,
    repositories: usize,
    documents: usize,
    requests_last_sync: u64,
    last_error: Option<String>,
    syncing: bool,
}

#[derive(Deserialize)]
struct Tree {
    sha: String,
    #[serde(default)]
    truncated: bool,
    tree: Vec<TreeEntry>,
}

#[derive(Deserialize)]
struct TreeEntry {
    path: String,
    #[serde(default)]
    mode: String,
    #[serde(rename = "type")]
    kind: String,
    sha: String,
    #[serde(default)]
    size: Option<u64>,
}

#[derive(Deserialize)]
struct Blob {
    content: String,
    #[serde(default)]
    encoding: String,
}

enum RepoOutcome {
    Done(RepoState),
    Failed {
        name: String,
        error: String,
        previous: Option<RepoState>,
    },
}

impl GithubSource {
    pub fn new(config: GithubConfig, cache_dir: PathBuf) -> GithubSource {
        let label = format!("github:{}", config.org);
        if config.token.is_none() {
            log::warn!(
                "{label}: no GITHUB_TOKEN; GitHub allows 60 requests an hour without one, \
                 and only public repositories"
            );
        }
        GithubSource {
            api: Api::new(&config.api_url, config.token.clone(), label),
            cache: Cache::new(&cache_dir, &config.org),
            config,
            work: Mutex::new(Work::default()),
            status: Mutex::new(Status::default()),
            noted: Mutex::new(HashSet::new()),
        }
    }

    fn note_once(&self, key: String, message: impl FnOnce() -> String) {
        if lock(&self.noted).insert(key) {
            log::info!("{}: {}", self.label(), message());
        }
    }

    /// The full sync; `Ok(None)` when what would be served did not change.
    fn sync(
        &self,
        work: &mut Work,
        first_request: u64,
    ) -> Result<Option<Vec<RepoSnapshot>>, SourceError> {
        let started = Instant::now();
        let (owner_kind, pages) = self.list_repositories(&work.state)?;
        let selected = self.select(&pages);
        let progress = Progress::new(selected.len());
        let previous = &work.state.repos;
        let outcomes = parallel(selected, WORKERS, |info| {
            let out = self.sync_repo(info, previous);
            progress.repo_done(self);
            out
        });
        self.check_stopped()?;

        let mut repos = BTreeMap::new();
        let mut errors = Vec::new();
        for outcome in outcomes {
            match outcome {
                RepoOutcome::Done(state) => {
                    repos.insert(state.info.name.clone(), state);
                }
                RepoOutcome::Failed {
                    name,
                    error,
                    previous,
                } => {
                    log::warn!("{}: repository {name}: {error}", self.label());
                    errors.push(format!("{name}: {error}"));
                    if let Some(p) = previous {
                        repos.insert(name, p);
                    }
                }
            }
        }
        let state = State {
            version: 0,
            api_url: self.config.api_url.clone(),
            owner_kind: Some(owner_kind),
            pages,
            repos,
            last_sync: Some(unix_millis() / 1000),
        };
        let model = model_of(&state);
        let unchanged = matches!(&work.served, Some(s) if s.complete && s.model == model);
        let snapshot = if unchanged {
            None
        } else {
            let (texts, missing) = self.cached_texts(&state);
            let texts = self.fetch_missing(texts, missing, &progress, &mut errors);
            self.check_stopped()?;
            let (snapshot, omitted) = build_snapshot(&state, &texts);
            work.served = Some(Served {
                model,
                complete: omitted == 0,
            });
            Some(snapshot)
        };
        let fetched = progress.files.load(Ordering::SeqCst);

        if let Err(e) = self.cache.save_state(&state) {
            log::warn!("{}: {e}", self.label());
        }
        if errors.is_empty() && snapshot.is_some() {
            let keep = state
                .repos
                .values()
                .flat_map(|r| r.files.iter().map(|f| f.sha.clone()))
                .collect();
            let removed = self.cache.prune(&keep);
            if removed > 0 {
                log::debug!("{}: removed {removed} unused cached blobs", self.label());
            }
        }
        let (repositories, documents) = counts(&state);
        let requests = self.api.requests() - first_request;
        let remaining = self.api.rate_limit().0;
        log::info!(
            "{}: synced {repositories} repositories, {documents} documents ({}; {fetched} files \
             fetched) in {:.1} s; {requests} requests, rate limit {} left",
            self.label(),
            if snapshot.is_some() {
                "changed"
            } else {
                "unchanged"
            },
            started.elapsed().as_secs_f64(),
            remaining.map_or("unknown".to_string(), |r| r.to_string()),
        );
        {
            let mut st = lock(&self.status);
            st.last_sync = state.last_sync;
            st.repositories = repositories;
            st.documents = documents;
            st.requests_last_sync = requests;
            st.last_error = summarize(&errors);
        }
        work.state = state;
        Ok(snapshot)
    }

    /// A 401 anywhere stops the sync with one clear message (never the token).
    fn check_stopped(&self) -> Result<(), SourceError> {
        if !self.api.stopped() {
            return Ok(());
        }
        Err(SourceError::Unauthorized {
            token: self.config.token.is_some(),
        })
    }

    /// Every page of the organization's (or user's) repositories.
    fn list_repositories(&self, previous: &State) -> Result<(String, Vec<Page>), SourceError> {
        let kinds = match previous.owner_kind.as_deref() {
            Some("users") => ["users", "orgs"],
            _ => ["orgs", "users"],
        };
        for kind in kinds {
            match self.list_pages(kind, previous) {
                Ok(pages) => return Ok((kind.to_string(), pages)),
                Err(ApiError::NotFound(_)) => {
                    log::debug!("{}: no /{kind}/{}", self.label(), self.config.org)
                }
                Err(e) => {
                    self.check_stopped()?;
                    return Err(SourceError::Listing(e));
                }
            }
        }
        Err(SourceError::UnknownOwner {
            api_url: crate::net::display_url(&self.config.api_url),
            owner: self.config.org.clone(),
        })
    }

    fn list_pages(&self, kind: &str, previous: &State) -> Result<Vec<Page>, ApiError> {
        // For a user, `owner` lists their own repositories, not those they
        // merely collaborate on.
        let kind_filter = if kind == "orgs" { "all" } else { "owner" };
        let mut url = self.api.url(&format!(
            "/{kind}/{}/repos?per_page=100&type={kind_filter}",
            encode_path(&self.config.org)
        ));
        let own_origin = api::origin(&self.config.api_url).to_string();
        let mut pages: Vec<Page> = Vec::new();
        loop {
            let cached = previous.pages.iter().find(|p| p.url == url);
            let page = match self
                .api
                .get(&url, cached.and_then(|p| p.etag.as_deref()), LIST_LIMIT)
            {
                Ok(Fetched::NotModified) => cached
                    .cloned()
                    .ok_or_else(|| ApiError::Invalid("304 for an unknown page".into()))?,
                Ok(Fetched::Body { bytes, etag, next }) => Page {
                    repos: serde_json::from_slice(&bytes)
                        .map_err(|e| ApiError::Invalid(format!("repository list: {e}")))?,
                    url,
                    etag,
                    next,
                },
                Err(ApiError::NotFound(m)) if !pages.is_empty() => {
                    return Err(ApiError::Invalid(format!("a later page vanished: {m}")));
                }
                Err(e) => return Err(e),
            };
            let next = page.next.clone();
            pages.push(page);
            match next {
                Some(n) if api::origin(&n) == own_origin && pages.len() < MAX_PAGES => url = n,
                Some(n) if pages.len() < MAX_PAGES => {
                    return Err(ApiError::Invalid(format!(
                        "pagination points away from {own_origin}: {}",
                        api::origin(&n)
                    )));
                }
                _ => return Ok(pages),
            }
        }
    }

    /// The repositories to mirror: deduplicated, archived and forks left out
    /// unless asked for, restricted to `GITHUB_REPOS` when set.
    fn select(&self, pages: &[Page]) -> Vec<RepoInfo> {
        let c = &self.config;
        let named = |r: &RepoInfo| {
            c.repos.as_ref().is_none_or(|list| {
                list.iter().any(|n| {
                    n.eq_ignore_ascii_case(&r.name) || n.eq_ignore_ascii_case(&r.full_name)
                })
            })
        };
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for repo in pages.iter().flat_map(|p| &p.repos) {
            if !seen.insert(repo.name.to_ascii_lowercase()) || !named(repo) {
                continue;
            }
            let skip = if repo.archived && !c.include_archived {
                Some("archived (GITHUB_INCLUDE_ARCHIVED=true includes it)")
            } else if repo.fork && !c.include_forks {
                Some("a fork (GITHUB_INCLUDE_FORKS=true includes it)")
            } else {
                None
            };
            match skip {
                Some(why) => {
                    let msg = || format!("skipping repository {}: {why}", repo.name);
                    if c.repos.is_some() {
                        self.note_once(format!("skip:{}:{why}", repo.name), msg);
                    } else {
                        log::debug!("{}: {}", self.label(), msg());
                    }
                }
                None => out.push(repo.clone()),
            }
        }
        for name in c.repos.iter().flatten() {
            if !seen.contains(&name.to_ascii_lowercase())
                && !pages.iter().flat_map(|p| &p.repos).any(|r| {
                    r.full_name.eq_ignore_ascii_case(name) || r.name.eq_ignore_ascii_case(name)
                })
            {
                self.note_once(format!("unknown:{name}"), || {
                    format!("GITHUB_REPOS names {name:?}, which the listing does not contain")
                });
            }
        }
        out
    }

    fn sync_repo(&self, info: RepoInfo, previous: &BTreeMap<String, RepoState>) -> RepoOutcome {
        let prev = previous.get(&info.name);
        let skipped = |reason: String| {
            self.note_once(format!("repo:{}:{reason}", info.name), || {
                format!("skipping repository {}: {reason}", info.name)
            });
            RepoOutcome::Done(RepoState {
                info: info.clone(),
                tree_url: None,
                tree_etag: None,
                tree_sha: None,
                files: Vec::new(),
                skipped: Some(reason),
            })
        };
        let Some(branch) = info.default_branch.clone() else {
            return skipped("it has no default branch".into());
        };
        let url = self.api.url(&format!(
            "/repos/{}/git/trees/{}?recursive=1",
            encode_path(&info.full_name),
            encode_path(&branch)
        ));
        let etag = prev
            .filter(|p| p.tree_url.as_deref() == Some(url.as_str()))
            .and_then(|p| p.tree_etag.as_deref());
        let failed = |error: String| RepoOutcome::Failed {
            name: info.name.clone(),
            error,
            previous: prev.map(|p| RepoState {
                info: info.clone(),
                ..p.clone()
            }),
        };
        match self.api.get(&url, etag, TREE_LIMIT) {
            Ok(Fetched::NotModified) => match prev {
                Some(p) => RepoOutcome::Done(RepoState { info, ..p.clone() }),
                None => failed("304 without a cached tree".into()),
            },
            Ok(Fetched::Body { bytes, etag, .. }) => {
                let tree: Tree = match serde_json::from_slice(&bytes) {
                    Ok(t) => t,
                    Err(e) => return failed(format!("unreadable tree: {e}")),
                };
                let entries = if tree.truncated {
                    log::info!(
                        "{}: the tree of {} is truncated; walking its folders",
                        self.label(),
                        info.name
                    );
                    match self.walk(&info.full_name, &tree.sha) {
                        Ok(e) => e,
                        Err(e) => return failed(format!("walking the tree: {e}")),
                    }
                } else {
                    tree.tree
                };
                let files = self.doc_files(&info.name, entries);
                RepoOutcome::Done(RepoState {
                    info,
                    tree_url: Some(url),
                    tree_etag: etag,
                    tree_sha: Some(tree.sha),
                    files,
                    skipped: None,
                })
            }
            Err(ApiError::Conflict(_)) => skipped("the repository is empty".into()),
            Err(ApiError::NotFound(_)) => {
                skipped(format!("its default branch {branch:?} was not found"))
            }
            Err(e) => failed(e.to_string()),
        }
    }

    /// Non-recursive tree calls folder by folder, skipping folders the
    /// documentation rules skip anyway.
    fn walk(&self, full_name: &str, root: &str) -> Result<Vec<TreeEntry>, ApiError> {
        let mut stack = vec![(String::new(), root.to_string())];
        let mut out = Vec::new();
        while let Some((prefix, sha)) = stack.pop() {
            if !is_hex_sha(&sha) {
                return Err(ApiError::Invalid(format!("tree sha {sha:?}")));
            }
            let url = self.api.url(&format!(
                "/repos/{}/git/trees/{sha}",
                encode_path(full_name)
            ));
            let tree: Tree = match self.api.get(&url, None, TREE_LIMIT)? {
                Fetched::Body { bytes, .. } => serde_json::from_slice(&bytes)
                    .map_err(|e| ApiError::Invalid(format!("tree {sha}: {e}")))?,
                Fetched::NotModified => return Err(ApiError::Invalid("unexpected 304".into())),
            };
            if tree.truncated {
                log::warn!(
                    "{}: folder {prefix:?} of {full_name} is itself truncated",
                    self.label()
                );
            }
            for mut e in tree.tree {
                let name = e.path.clone();
                e.path = if prefix.is_empty() {
                    name.clone()
                } else {
                    format!("{prefix}/{name}")
                };
                if e.kind == "tree" {
                    if !is_skipped_dir(&name) {
                        stack.push((e.path, e.sha));
                    }
                } else {
                    out.push(e);
                }
            }
        }
        Ok(out)
    }

    /// Documentation blobs of a tree, by the local source's rules.
    fn doc_files(&self, repo: &str, entries: Vec<TreeEntry>) -> Vec<FileEntry> {
        let mut files: Vec<FileEntry> = entries
            .into_iter()
            .filter(|e| e.kind == "blob" && e.mode != "120000" && is_hex_sha(&e.sha))
            .filter(|e| safe_path(&e.path) && is_doc_path(&e.path))
            .filter_map(|e| {
                let size = e.size.unwrap_or(0);
                if size > MAX_DOC_BYTES {
                    self.note_once(format!("big:{repo}:{}:{}", e.path, e.sha), || {
                        format!(
                            "skipping {repo}/{}: {size} bytes is over the 1 MiB limit",
                            e.path
                        )
                    });
                    return None;
                }
                Some(FileEntry {
                    path: e.path,
                    sha: e.sha,
                    size,
                })
            })
            .collect();
        files.sort_by(|a, b| a.path.cmp(&b.path));
        files
    }

    /// Contents already on disk, and the (repository, sha) pairs still missing.
    fn cached_texts(&self, state: &State) -> (Texts, Vec<(String, String)>) {
        let mut texts = HashMap::new();
        let mut missing = Vec::new();
        let mut seen = HashSet::new();
        for repo in state.repos.values().filter(|r| r.skipped.is_none()) {
            for f in &repo.files {
                if !seen.insert(f.sha.clone()) {
                    continue;
                }
                match self.cache.read_blob(&f.sha) {
                    Some(bytes) => {
                        texts.insert(f.sha.clone(), bytes);
                    }
                    None => missing.push((repo.info.full_name.clone(), f.sha.clone())),
                }
            }
        }
        (texts, missing)
    }

    fn fetch_missing(
        &self,
        mut texts: Texts,
        missing: Vec<(String, String)>,
        progress: &Progress,
        errors: &mut Vec<String>,
    ) -> Texts {
        let results = parallel(missing, WORKERS, |(full_name, sha)| {
            let r = self.fetch_blob(&full_name, &sha);
            if r.is_ok() {
                progress.file_fetched(self);
            }
            (full_name, sha, r)
        });
        for (full_name, sha, r) in results {
            match r {
                Ok(bytes) => {
                    texts.insert(sha, bytes);
                }
                // A 401 is reported once, by `check_stopped`.
                Err(ApiError::Aborted | ApiError::Unauthorized(_)) => {}
                Err(e) => {
                    log::warn!("{}: {full_name}: blob {sha}: {e}", self.label());
                    errors.push(format!("{full_name}: blob {sha}: {e}"));
                }
            }
        }
        texts
    }

    fn fetch_blob(&self, full_name: &str, sha: &str) -> Result<Vec<u8>, ApiError> {
        let url = self.api.url(&format!(
            "/repos/{}/git/blobs/{sha}",
            encode_path(full_name)
        ));
        let bytes = match self.api.get(&url, None, BLOB_LIMIT)? {
            Fetched::Body { bytes, .. } => bytes,
            Fetched::NotModified => return Err(ApiError::Invalid("unexpected 304".into())),
        };
        let blob: Blob =
            serde_json::from_slice(&bytes).map_err(|e| ApiError::Invalid(format!("blob: {e}")))?;
        let content = match blob.encoding.as_str() {
            "base64" => decode_base64(&blob.content)?,
            "utf-8" | "utf8" => blob.content.into_bytes(),
            other => return Err(ApiError::Invalid(format!("blob encoding {other:?}"))),
        };
        if content.len() as u64 > MAX_DOC_BYTES {
            return Err(ApiError::TooLarge(MAX_DOC_BYTES));
        }
        if !sha_matches(sha, &content) {
            return Err(ApiError::Invalid("content does not match its sha".into()));
        }
        if let Err(e) = self.cache.write_blob(sha, &content) {
            log::warn!("{}: {e}", self.label());
        }
        Ok(content)
    }

    /// The first refresh after a restart: the saved snapshot, no network.
    /// `None` when no complete sync was saved or a blob is missing.
    fn serve_cached(&self, work: &mut Work) -> Option<Vec<RepoSnapshot>> {
        work.state.last_sync?;
        let (texts, missing) = self.cached_texts(&work.state);
        if !missing.is_empty() {
            log::info!(
                "{}: {} cached files are missing; syncing",
                self.label(),
                missing.len()
            );
            return None;
        }
        let (snapshot, _) = build_snapshot(&work.state, &texts);
        work.served = Some(Served {
            model: model_of(&work.state),
            complete: true,
        });
        let (repositories, documents) = counts(&work.state);
        let mut st = lock(&self.status);
        st.last_sync = work.state.last_sync;
        st.repositories = repositories;
        st.documents = documents;
        log::info!(
            "{}: serving {repositories} repositories, {documents} documents from the cache \
             (synced {}); next sync in {} s",
            self.label(),
            work.state.last_sync.map(rfc3339).unwrap_or_default(),
            self.config.refresh.as_secs()
        );
        Some(snapshot)
    }
}

impl Source for GithubSource {
    fn label(&self) -> String {
        format!("github:{}", self.config.org)
    }

    fn interval(&self) -> Duration {
        self.config.refresh
    }

    fn refresh(&self) -> Result<Option<Vec<RepoSnapshot>>, SourceError> {
        let mut work = lock(&self.work);
        if !work.loaded {
            work.loaded = true;
            if let Some(state) = self.cache.load_state(&self.config.api_url) {
                work.state = state;
            }
            if let Some(snapshot) = self.serve_cached(&mut work) {
                return Ok(Some(snapshot));
            }
        }
        lock(&self.status).syncing = true;
        let first_request = self.api.begin();
        let result = self.sync(&mut work, first_request);
        let mut st = lock(&self.status);
        st.syncing = false;
        match result {
            Ok(snapshot) => Ok(snapshot),
            Err(e) => {
                log::error!("{}: {e}", self.label());
                st.last_error = Some(e.to_string());
                st.requests_last_sync = self.api.requests() - first_request;
                if work.served.is_some() || work.state.repos.is_empty() {
                    return Err(e);
                }
                // Nothing served yet, but the cache has some of it: serve that.
                drop(st);
                let (texts, _) = self.cached_texts(&work.state);
                let (snapshot, _) = build_snapshot(&work.state, &texts);
                work.served = Some(Served {
                    model: model_of(&work.state),
                    complete: false,
                });
                Ok(Some(snapshot))
            }
        }
    }

    /// Always: even with a cache, its state may turn out stale or its files
    /// missing, and the first refresh then syncs over the network. Its
    /// thread runs it at once; serving the cache takes milliseconds.
    fn first_refresh_is_slow(&self) -> bool {
        true
    }

    fn health(&self) -> Value {
        let (remaining, reset) = self.api.rate_limit();
        let st = lock(&self.status);
        json!({
            "type": "github",
            "org": self.config.org,
            "api_url": self.config.api_url,
            "authenticated": self.config.token.is_some(),
            "last_sync": st.last_sync.map(rfc3339),
            "syncing": st.syncing,
            "repositories": st.repositories,
            "documents": st.documents,
            "requests_last_sync": st.requests_last_sync,
            "rate_limit_remaining": remaining,
            "rate_limit_reset": reset.map(rfc3339),
            "last_error": st.last_error,
            "cache_dir": self.cache.root().display().to_string(),
        })
    }
}

/// Progress log lines for long syncs: every 10 repositories or 5 seconds.
struct Progress {
    total: usize,
    repos: AtomicUsize,
    files: AtomicUsize,
    last: Mutex<Instant>,
}

impl Progress {
    fn new(total: usize) -> Progress {
        Progress {
            total,
            repos: AtomicUsize::new(0),
            files: AtomicUsize::new(0),
            last: Mutex::new(Instant::now()),
        }
    }

    fn repo_done(&self, source: &GithubSource) {
        let done = self.repos.fetch_add(1, Ordering::SeqCst) + 1;
        self.maybe_log(source, done.is_multiple_of(10) && done < self.total);
    }

    fn file_fetched(&self, source: &GithubSource) {
        self.files.fetch_add(1, Ordering::SeqCst);
        self.maybe_log(source, false);
    }

    fn maybe_log(&self, source: &GithubSource, force: bool) {
        {
            let mut last = lock(&self.last);
            if !force && last.elapsed() < PROGRESS_EVERY {
                return;
            }
            *last = Instant::now();
        }
        let remaining = source.api.rate_limit().0;
        log::info!(
            "{}: {}/{} repositories, {} files fetched, {} requests so far, rate limit {} left",
            source.label(),
            self.repos.load(Ordering::SeqCst),
            self.total,
            self.files.load(Ordering::SeqCst),
            source.api.requests(),
            remaining.map_or("unknown".to_string(), |r| r.to_string())
        );
    }
}

fn served_repos(state: &State) -> impl Iterator<Item = &RepoState> {
    state.repos.values().filter(|r| r.skipped.is_none())
}

fn model_of(state: &State) -> Vec<ServedRepo> {
    served_repos(state)
        .map(|r| ServedRepo {
            name: r.info.name.clone(),
            description: r.info.description.clone(),
            html_url: r.info.html_url.clone(),
            branch: r.info.default_branch.clone().unwrap_or_default(),
            files: r
                .files
                .iter()
                .map(|f| (f.path.clone(), f.sha.clone()))
                .collect(),
        })
        .collect()
}

fn counts(state: &State) -> (usize, usize) {
    let repos: Vec<_> = served_repos(state).collect();
    (repos.len(), repos.iter().map(|r| r.files.len()).sum())
}

/// The snapshot, and how many files were left out for want of content.
fn build_snapshot(state: &State, texts: &Texts) -> (Vec<RepoSnapshot>, usize) {
    let mut omitted = 0;
    let snapshot = served_repos(state)
        .map(|r| {
            let branch = r.info.default_branch.as_deref().unwrap_or("HEAD");
            let base = r.info.html_url.trim_end_matches('/');
            let docs = r
                .files
                .iter()
                .filter_map(|f| {
                    let Some(bytes) = texts.get(&f.sha) else {
                        omitted += 1;
                        return None;
                    };
                    Some(DocFile {
                        path: f.path.clone(),
                        text: String::from_utf8_lossy(bytes).into_owned(),
                        url: Some(format!(
                            "{base}/blob/{}/{}",
                            encode_path(branch),
                            encode_path(&f.path)
                        )),
                    })
                })
                .collect();
            RepoSnapshot {
                name: r.info.name.clone(),
                description: r.info.description.clone(),
                docs,
            }
        })
        .collect();
    (snapshot, omitted)
}

/// Git never stores these, but a path from the network is checked anyway:
/// the shared escape rules, and no `\\`, empty or `.` segment either.
fn safe_path(path: &str) -> bool {
    crate::tools::check_relative_path(path).is_ok()
        && !path.contains('\\')
        && path.split('/').all(|s| !s.is_empty() && s != ".")
}

fn summarize(errors: &[String]) -> Option<String> {
    match errors {
        [] => None,
        [one] => Some(one.clone()),
        [first, rest @ ..] => Some(format!("{first} (and {} more errors)", rest.len())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsafe_paths() {
        assert!(safe_path("docs/a b.md"));
        for p in ["../x.md", "a//b.md", "/a.md", "a/./b.md", "a\\b.md"] {
            assert!(!safe_path(p), "{p}");
        }
    }
}
