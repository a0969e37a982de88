//! The local source: documentation files under `DOCS_DIR`.
//!
//! Layout: `DOCS_DIR` is one repository when it has `.git`, or when none of
//! its subfolders has `.git` and it has documentation files at its top; the
//! repository is named after the folder. Otherwise every subfolder that
//! holds documentation is a repository named after the subfolder, and files
//! at the top of `DOCS_DIR` itself are ignored (they belong to no repository).
//!
//! A refresh walks the tree and fingerprints paths, sizes and modification
//! times; files are read only when the fingerprint changed. This module does
//! not index or parse anything.
//!
//! The walk costs O(entries), whatever the depth: `DOCS_DIR` is resolved
//! once, and the real path of a folder is its parent's real path plus its
//! name. Only symlinks are resolved, and followed only when their target
//! lies inside `DOCS_DIR`. A folder is walked at most once per repository
//! (by device and inode), so symlink and bind-mount loops end. A folder's
//! files are taken in name order before its subfolders, which are walked in
//! name order, so every walk takes the same files. The walk is capped
//! ([`WalkLimits`]): folders more than `DOCS_MAX_DEPTH` levels below
//! `DOCS_DIR`, documentation files beyond `DOCS_MAX_FILES` and directory
//! entries beyond [`MAX_ENTRIES`] are left out with a WARN, logged again
//! only when something else changed. Only regular files are candidates:
//! FIFOs, sockets and devices are never opened.
//!
//! Files are read through [`safe_read`]: still the file the walk saw (device
//! and inode), regular and within the size limit on the opened handle,
//! opened without following a symlink or waiting for a FIFO's writer, and
//! really inside `DOCS_DIR`. A file or folder swapped after the walk (for a
//! FIFO, a symlink to `/dev/zero` or out of the root) is skipped with a WARN.
//! Long walks and reads log their progress every few seconds and report it
//! through [`Source::progress`].

use super::source::{
    DocFile, MAX_DOC_BYTES, PROGRESS_EVERY, RepoSnapshot, Source, SourceError, is_doc_path,
    is_skipped_dir, thousands,
};
use crate::safe_read::{self, Expect, FileId};
use crate::sync::lock;
use serde_json::{Value, json};
use std::collections::HashSet;
use std::collections::hash_map::DefaultHasher;
use std::fs::{self, Metadata};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant, UNIX_EPOCH};

use crate::config::{DEFAULT_MAX_DEPTH, DEFAULT_MAX_FILES};
/// Directory entries one refresh looks at, at most (of every kind: source
/// files and images count too). Bounds the walk of a huge tree.
pub const MAX_ENTRIES: usize = 2_000_000;

/// Caps on one walk of the tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WalkLimits {
    /// Documentation files kept, at most.
    pub max_files: usize,
    /// Folder levels below `DOCS_DIR` walked, at most.
    pub max_depth: usize,
}

impl Default for WalkLimits {
    fn default() -> WalkLimits {
        WalkLimits {
            max_files: DEFAULT_MAX_FILES,
            max_depth: DEFAULT_MAX_DEPTH,
        }
    }
}

pub struct LocalSource {
    root: PathBuf,
    label: String,
    interval: Duration,
    limits: WalkLimits,
    state: Mutex<State>,
    phase: Mutex<Phase>,
}

#[derive(Default)]
struct State {
    fingerprint: Option<u64>,
    repositories: usize,
    documents: usize,
    bytes: u64,
    skipped_large: usize,
    walk: WalkStats,
    limits_hit: Vec<String>,
    last_scan: Option<u64>,
    last_change: Option<u64>,
    last_error: Option<String>,
}

/// What a refresh is doing, for [`Source::progress`].
#[derive(Clone, Copy)]
enum Phase {
    Idle,
    Walking { folders: usize, found: usize },
    Reading { done: usize, total: usize },
}

/// The cost of one walk, for `/health`.
#[derive(Debug, Clone, Copy, Default)]
struct WalkStats {
    folders: usize,
    entries: usize,
    symlinks: usize,
    seconds: f64,
}

/// A file found by the walk, not yet read.
struct Found {
    rel: String,
    /// Its real path (a symlink's target).
    path: PathBuf,
    size: u64,
    mtime: u128,
    id: Option<FileId>,
}

struct Walked {
    root: PathBuf,
    repos: Vec<(String, Vec<Found>)>,
    large: Vec<(String, u64)>,
    limits_hit: Vec<String>,
    stats: WalkStats,
}

/// The caps of [`WalkLimits`] and [`MAX_ENTRIES`].
#[derive(Clone, Copy, PartialEq, Eq)]
enum Cap {
    Depth,
    Files,
    Entries,
}

/// A folder's identity, so that no folder is walked twice.
#[derive(PartialEq, Eq, Hash)]
enum DirKey {
    Id(FileId),
    Path(PathBuf),
}

impl DirKey {
    fn of(real: &Path, meta: &Metadata) -> DirKey {
        FileId::of(meta).map_or_else(|| DirKey::Path(real.to_path_buf()), DirKey::Id)
    }
}

impl LocalSource {
    pub fn new(root: impl Into<PathBuf>, interval: Duration) -> LocalSource {
        let root = root.into();
        LocalSource {
            label: format!("local:{}", crate::config::display_path(&root)),
            root,
            interval,
            limits: WalkLimits::default(),
            state: Mutex::new(State::default()),
            phase: Mutex::new(Phase::Idle),
        }
    }

    /// The same with other caps on the walk.
    pub fn with_limits(mut self, limits: WalkLimits) -> LocalSource {
        self.limits = limits;
        self
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        lock(&self.state)
    }

    fn set_phase(&self, phase: Phase) {
        *lock(&self.phase) = phase;
    }

    /// Finds the repositories and their documentation files.
    fn walk(&self) -> Result<Walked, SourceError> {
        let started = Instant::now();
        let root = fs::canonicalize(&self.root).map_err(|error| SourceError::OpenRoot {
            path: self.root.clone(),
            error,
        })?;
        if !root.is_dir() {
            return Err(SourceError::NotAFolder(root));
        }
        let top = Top::list(&root)?;
        let single = top.has_git
            || (!top.subdirs.iter().any(|(_, d)| d.join(".git").exists()) && top.has_docs);
        let mut walker = Walker {
            source: self,
            root: &root,
            limits: self.limits,
            stats: WalkStats::default(),
            files: 0,
            large: Vec::new(),
            limits_hit: Vec::new(),
            full: false,
            last_log: Instant::now(),
        };
        let mut repos = Vec::new();
        if single {
            let name = root
                .file_name()
                .map_or("docs".to_string(), |n| n.to_string_lossy().into_owned());
            repos.push((name, walker.repository(root.clone(), 0, "")));
        } else {
            for (name, dir) in top.subdirs {
                let files = walker.repository(dir, 1, &format!("{name}/"));
                if !files.is_empty() {
                    repos.push((name, files));
                }
            }
        }
        repos.sort_by(|a, b| a.0.cmp(&b.0));
        for (_, files) in &mut repos {
            files.sort_by(|a, b| a.rel.cmp(&b.rel));
        }
        let mut stats = walker.stats;
        stats.seconds = started.elapsed().as_secs_f64();
        Ok(Walked {
            repos,
            large: walker.large,
            limits_hit: walker.limits_hit.into_iter().map(|(_, m)| m).collect(),
            stats,
            root,
        })
    }

    /// Reads the files the walk found; a file that cannot be read safely is
    /// left out with a WARN.
    fn read(&self, walked: Walked) -> (Vec<RepoSnapshot>, usize, u64) {
        let total = walked.repos.iter().map(|(_, f)| f.len()).sum();
        let mut done = 0;
        let mut last_log = Instant::now();
        let mut snapshots = Vec::with_capacity(walked.repos.len());
        let (mut documents, mut bytes) = (0usize, 0u64);
        for (name, files) in walked.repos {
            let mut docs = Vec::with_capacity(files.len());
            for f in files {
                let expect = Expect {
                    limit: MAX_DOC_BYTES,
                    inside: Some(&walked.root),
                    id: f.id,
                };
                match safe_read::read(&f.path, expect) {
                    Ok(raw) => {
                        let text = decode(raw);
                        bytes += text.len() as u64;
                        docs.push(DocFile {
                            path: f.rel,
                            text,
                            url: None,
                        });
                    }
                    Err(e) => log::warn!("skipping {}: {e}", f.path.display()),
                }
                done += 1;
                self.set_phase(Phase::Reading { done, total });
                if last_log.elapsed() >= PROGRESS_EVERY {
                    last_log = Instant::now();
                    self.log_progress();
                }
            }
            documents += docs.len();
            snapshots.push(RepoSnapshot {
                name,
                description: None,
                docs,
            });
        }
        (snapshots, documents, bytes)
    }

    fn log_progress(&self) {
        if let Some(p) = self.progress() {
            log::info!("local source {p}");
        }
    }

    /// Records a failed refresh; logs it when it starts or changes.
    fn failed(&self, e: SourceError) -> SourceError {
        let mut st = self.state();
        st.last_scan = Some(crate::clock::unix_secs());
        let message = e.to_string();
        if st.last_error.as_ref() != Some(&message) {
            if st.fingerprint.is_none() {
                log::warn!("{message}; serving no local documentation");
            } else {
                log::warn!("{message}; keeping the documentation read before");
            }
        }
        st.last_error = Some(message);
        e
    }
}

/// The top of `DOCS_DIR`, listed once to choose the layout.
struct Top {
    has_git: bool,
    /// Documentation files at the top.
    has_docs: bool,
    /// Subfolders that could be repositories (not hidden or skipped), by
    /// name, with their real paths; symlinks only when they stay inside.
    subdirs: Vec<(String, PathBuf)>,
}

impl Top {
    fn list(root: &Path) -> Result<Top, SourceError> {
        let entries = fs::read_dir(root).map_err(|error| SourceError::List {
            path: root.to_path_buf(),
            error,
        })?;
        let mut top = Top {
            has_git: false,
            has_docs: false,
            subdirs: Vec::new(),
        };
        for entry in entries.flatten().take(MAX_ENTRIES) {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Ok(ftype) = entry.file_type() else {
                continue;
            };
            if name == ".git" {
                top.has_git = true;
                continue;
            }
            if ftype.is_file() {
                top.has_docs |= is_doc_path(&name);
                continue;
            }
            if is_skipped_dir(&name) {
                continue;
            }
            let real = if ftype.is_dir() {
                Some(root.join(entry.file_name()))
            } else if ftype.is_symlink() {
                resolve_inside(root, &entry.path()).filter(|p| p.is_dir())
            } else {
                None
            };
            if let Some(real) = real {
                top.subdirs.push((name, real));
            }
        }
        top.subdirs.sort();
        Ok(top)
    }
}

/// One walk over the repositories of a refresh: the caps and the counts.
struct Walker<'a> {
    source: &'a LocalSource,
    /// `DOCS_DIR`, canonical.
    root: &'a Path,
    limits: WalkLimits,
    stats: WalkStats,
    /// Documentation files kept so far, over every repository.
    files: usize,
    large: Vec<(String, u64)>,
    limits_hit: Vec<(Cap, String)>,
    /// A cap that ends the walk was reached.
    full: bool,
    last_log: Instant,
}

impl Walker<'_> {
    /// The documentation files of the repository whose folder is `top` (a
    /// real path, `depth` levels below `DOCS_DIR`). `shown` prefixes paths
    /// in log lines.
    fn repository(&mut self, top: PathBuf, depth: usize, shown: &str) -> Vec<Found> {
        let mut found = Vec::new();
        let mut seen = HashSet::new();
        if let Ok(meta) = fs::metadata(&top) {
            seen.insert(DirKey::of(&top, &meta));
        }
        let mut stack = vec![(top, String::new(), depth)];
        while let Some((dir, prefix, depth)) = stack.pop() {
            if self.full {
                break;
            }
            let subdirs = self.folder(&dir, &prefix, depth, shown, &mut found, &mut seen);
            // Popped last first: the walk goes in name order.
            stack.extend(subdirs.into_iter().rev());
        }
        found
    }

    /// Lists one folder: its documentation files go to `found`; its
    /// subfolders still to walk are returned.
    fn folder(
        &mut self,
        dir: &Path,
        prefix: &str,
        depth: usize,
        shown: &str,
        found: &mut Vec<Found>,
        seen: &mut HashSet<DirKey>,
    ) -> Vec<(PathBuf, String, usize)> {
        let mut subdirs = Vec::new();
        let entries = match fs::read_dir(dir) {
            Ok(e) => e,
            Err(e) => {
                log::warn!("cannot list {}: {e}", dir.display());
                return subdirs;
            }
        };
        self.stats.folders += 1;
        let room = MAX_ENTRIES.saturating_sub(self.stats.entries);
        let mut list: Vec<fs::DirEntry> = entries.flatten().take(room + 1).collect();
        if list.len() > room {
            list.truncate(room);
            self.hit(Cap::Entries, || {
                format!(
                    "more than {} directory entries under DOCS_DIR: the walk stopped at {}",
                    thousands(MAX_ENTRIES),
                    dir.display()
                )
            });
            self.full = true;
        }
        self.stats.entries += list.len();
        list.sort_by_key(|e| e.file_name());
        for entry in list {
            let name = entry.file_name().to_string_lossy().into_owned();
            if is_skipped_dir(&name) {
                continue;
            }
            let rel = if prefix.is_empty() {
                name.clone()
            } else {
                format!("{prefix}/{name}")
            };
            let Ok(ftype) = entry.file_type() else {
                continue;
            };
            let (real, meta) = if ftype.is_symlink() {
                self.stats.symlinks += 1;
                match resolve_inside(self.root, &entry.path())
                    .and_then(|t| fs::metadata(&t).ok().map(|m| (t, m)))
                {
                    Some(target) => target,
                    None => continue,
                }
            } else if ftype.is_dir() || (ftype.is_file() && is_doc_path(&rel)) {
                // lstat, relative to the listed folder.
                match entry.metadata() {
                    Ok(m) => (dir.join(entry.file_name()), m),
                    Err(_) => continue,
                }
            } else {
                continue;
            };
            if meta.is_dir() {
                if depth >= self.limits.max_depth {
                    let max = self.limits.max_depth;
                    self.hit(Cap::Depth, || {
                        format!(
                            "folders deeper than DOCS_MAX_DEPTH={max} are not walked, such as \
                             {shown}{rel}"
                        )
                    });
                } else if seen.insert(DirKey::of(&real, &meta)) {
                    subdirs.push((real, rel, depth + 1));
                }
            } else if meta.is_file() && is_doc_path(&rel) {
                if meta.len() > MAX_DOC_BYTES {
                    self.large.push((format!("{shown}{rel}"), meta.len()));
                    continue;
                }
                if self.files >= self.limits.max_files {
                    let max = self.limits.max_files;
                    self.hit(Cap::Files, || {
                        format!(
                            "more than DOCS_MAX_FILES={max} documentation files: the rest, \
                             from {shown}{rel} on, are left out"
                        )
                    });
                    self.full = true;
                    break;
                }
                self.files += 1;
                found.push(Found {
                    rel,
                    size: meta.len(),
                    mtime: meta
                        .modified()
                        .ok()
                        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                        .map_or(0, |d| d.as_nanos()),
                    id: FileId::of(&meta),
                    path: real,
                });
            }
        }
        self.source.set_phase(Phase::Walking {
            folders: self.stats.folders,
            found: self.files,
        });
        if self.last_log.elapsed() >= PROGRESS_EVERY {
            self.last_log = Instant::now();
            self.source.log_progress();
        }
        subdirs
    }

    /// Notes a cap reached: the first time for each cap.
    fn hit(&mut self, cap: Cap, message: impl FnOnce() -> String) {
        if !self.limits_hit.iter().any(|(c, _)| *c == cap) {
            self.limits_hit.push((cap, message()));
        }
    }
}

/// The canonical target of the symlink `path` if it lies inside `root`;
/// `None` for symlinks leaving the root and for broken links.
fn resolve_inside(root: &Path, path: &Path) -> Option<PathBuf> {
    let canonical = fs::canonicalize(path).ok()?;
    if canonical.starts_with(root) {
        Some(canonical)
    } else {
        log::debug!("skipping {}: it points outside DOCS_DIR", path.display());
        None
    }
}

fn fingerprint(walked: &Walked) -> u64 {
    let mut h = DefaultHasher::new();
    for (name, files) in &walked.repos {
        name.hash(&mut h);
        for f in files {
            (&f.rel, f.size, f.mtime).hash(&mut h);
        }
    }
    h.finish()
}

/// File bytes as text: invalid UTF-8 is replaced, a UTF-8 BOM dropped.
fn decode(bytes: Vec<u8>) -> String {
    let text = match String::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    };
    match text.strip_prefix('\u{feff}') {
        Some(rest) => rest.to_string(),
        None => text,
    }
}

impl Source for LocalSource {
    fn label(&self) -> String {
        self.label.clone()
    }

    fn interval(&self) -> Duration {
        self.interval
    }

    fn refresh(&self) -> Result<Option<Vec<RepoSnapshot>>, SourceError> {
        let started = Instant::now();
        self.set_phase(Phase::Walking {
            folders: 0,
            found: 0,
        });
        let walked = self.walk();
        let walked = match walked {
            Ok(w) => w,
            Err(e) => {
                self.set_phase(Phase::Idle);
                return Err(self.failed(e));
            }
        };
        let fp = fingerprint(&walked);
        {
            let mut st = self.state();
            st.last_scan = Some(crate::clock::unix_secs());
            st.last_error = None;
            st.walk = walked.stats;
            st.limits_hit = walked.limits_hit.clone();
            if st.fingerprint == Some(fp) {
                drop(st);
                self.set_phase(Phase::Idle);
                return Ok(None);
            }
        }
        for message in &walked.limits_hit {
            log::warn!("{}: {message}", self.label);
        }
        for (path, size) in &walked.large {
            log::warn!("skipping {path}: {size} bytes is over the {MAX_DOC_BYTES}-byte limit");
        }
        let skipped_large = walked.large.len();
        let (snapshots, documents, bytes) = self.read(walked);
        self.set_phase(Phase::Idle);
        log::info!(
            "local source {}: read {} repositories, {} files, {} bytes in {:.2} s",
            self.label,
            snapshots.len(),
            documents,
            bytes,
            started.elapsed().as_secs_f64()
        );
        let mut st = self.state();
        st.fingerprint = Some(fp);
        st.repositories = snapshots.len();
        st.documents = documents;
        st.bytes = bytes;
        st.skipped_large = skipped_large;
        st.last_change = Some(crate::clock::unix_secs());
        Ok(Some(snapshots))
    }

    fn health(&self) -> Value {
        let st = self.state();
        json!({
            "source": self.label,
            "type": "local",
            "status": if st.last_error.is_some() { "error" } else { "ok" },
            "repositories": st.repositories,
            "documents": st.documents,
            "bytes": st.bytes,
            "skipped_large_files": st.skipped_large,
            "last_walk": {
                "folders": st.walk.folders,
                "entries": st.walk.entries,
                "symlinks": st.walk.symlinks,
                "seconds": (st.walk.seconds * 1000.0).round() / 1000.0,
            },
            "limits_hit": st.limits_hit,
            "last_scan": st.last_scan,
            "last_change": st.last_change,
            "last_error": st.last_error,
        })
    }

    fn progress(&self) -> Option<String> {
        match *lock(&self.phase) {
            Phase::Idle => None,
            Phase::Walking { folders, found } => Some(format!(
                "{}: walking, {} folders, {} files found",
                self.label,
                thousands(folders),
                thousands(found)
            )),
            Phase::Reading { done, total } => Some(format!(
                "{}: {} of {} files read",
                self.label,
                thousands(done),
                thousands(total)
            )),
        }
    }
}
