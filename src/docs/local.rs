//! The local source: documentation files under `DOCS_DIR`.
//!
//! Layout: `DOCS_DIR` is one repository when it has `.git`, or when none of
//! its subfolders has `.git` and it has documentation files at its top; the
//! repository is named after the folder. Otherwise every subfolder that
//! holds documentation is a repository named after the subfolder, and files
//! at the top of `DOCS_DIR` itself are ignored (they belong to no repository).
//!
//! A refresh first walks the tree and fingerprints paths, sizes and
//! modification times; files are read only when the fingerprint changed.
//! Symlinks are followed only while they stay inside `DOCS_DIR`. This module
//! does not index or parse anything.

use super::source::{
    DocFile, MAX_DOC_BYTES, RepoSnapshot, Source, SourceError, is_doc_path, is_skipped_dir,
};
use serde_json::{Value, json};
use std::collections::HashSet;
use std::collections::hash_map::DefaultHasher;
use std::fs;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant, UNIX_EPOCH};

pub struct LocalSource {
    root: PathBuf,
    interval: Duration,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    fingerprint: Option<u64>,
    repositories: usize,
    documents: usize,
    bytes: u64,
    skipped_large: usize,
    last_scan: Option<u64>,
    last_change: Option<u64>,
    last_error: Option<String>,
}

/// A file found by the walk, not yet read.
struct Found {
    rel: String,
    abs: PathBuf,
    size: u64,
    mtime: u128,
}

struct Walked {
    repos: Vec<(String, Vec<Found>)>,
    large: Vec<(String, u64)>,
}

impl LocalSource {
    pub fn new(root: impl Into<PathBuf>, interval: Duration) -> LocalSource {
        LocalSource {
            root: root.into(),
            interval,
            state: Mutex::new(State::default()),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        crate::sync::lock(&self.state)
    }

    /// Finds the repositories and their documentation files.
    fn walk(&self) -> Result<Walked, SourceError> {
        let root = fs::canonicalize(&self.root).map_err(|error| SourceError::OpenRoot {
            path: self.root.clone(),
            error,
        })?;
        if !root.is_dir() {
            return Err(SourceError::NotAFolder(root));
        }
        let mut walked = Walked {
            repos: Vec::new(),
            large: Vec::new(),
        };
        let single_name = root
            .file_name()
            .map_or("docs".to_string(), |n| n.to_string_lossy().into_owned());
        let subdirs = repo_candidates(&root)?;
        let single = root.join(".git").exists()
            || (!subdirs.iter().any(|d| d.join(".git").exists()) && has_top_docs(&root));
        if single {
            let mut files = Vec::new();
            let mut seen = HashSet::new();
            walk_dir(&root, &root, "", &mut files, &mut walked.large, &mut seen);
            walked.repos.push((single_name, files));
        } else {
            for dir in subdirs {
                let name = dir
                    .file_name()
                    .map_or(String::new(), |n| n.to_string_lossy().into_owned());
                let mut files = Vec::new();
                let mut seen = HashSet::new();
                let large_before = walked.large.len();
                walk_dir(&root, &dir, "", &mut files, &mut walked.large, &mut seen);
                for l in &mut walked.large[large_before..] {
                    l.0 = format!("{name}/{}", l.0);
                }
                if !files.is_empty() {
                    walked.repos.push((name, files));
                }
            }
        }
        walked.repos.sort_by(|a, b| a.0.cmp(&b.0));
        for (_, files) in &mut walked.repos {
            files.sort_by(|a, b| a.rel.cmp(&b.rel));
        }
        Ok(walked)
    }
}

/// Immediate subfolders that could be repositories (not hidden or skipped),
/// symlinks included when they stay inside the root.
fn repo_candidates(root: &Path) -> Result<Vec<PathBuf>, SourceError> {
    let entries = fs::read_dir(root).map_err(|error| SourceError::List {
        path: root.to_path_buf(),
        error,
    })?;
    let mut dirs = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if is_skipped_dir(&name) {
            continue;
        }
        if let Some(path) = resolve_inside(root, &entry.path())
            && path.is_dir()
        {
            dirs.push(entry.path());
        }
    }
    dirs.sort();
    Ok(dirs)
}

fn has_top_docs(root: &Path) -> bool {
    fs::read_dir(root).is_ok_and(|entries| {
        entries.flatten().any(|e| {
            e.file_type().is_ok_and(|t| t.is_file())
                && is_doc_path(&e.file_name().to_string_lossy())
        })
    })
}

/// The canonical target of `path` if it lies inside `root`; `None` for
/// symlinks leaving the root and for broken links.
fn resolve_inside(root: &Path, path: &Path) -> Option<PathBuf> {
    let canonical = fs::canonicalize(path).ok()?;
    if canonical.starts_with(root) {
        Some(canonical)
    } else {
        log::debug!("skipping {}: it points outside DOCS_DIR", path.display());
        None
    }
}

/// Collects documentation files under `dir`; `prefix` is `dir` relative to
/// the repository. `seen` holds canonical folders already walked, so
/// symlink loops end.
fn walk_dir(
    root: &Path,
    dir: &Path,
    prefix: &str,
    files: &mut Vec<Found>,
    large: &mut Vec<(String, u64)>,
    seen: &mut HashSet<PathBuf>,
) {
    let Some(canonical) = resolve_inside(root, dir) else {
        return;
    };
    if !seen.insert(canonical) {
        return;
    }
    let Ok(entries) = fs::read_dir(dir) else {
        log::warn!("cannot list {}", dir.display());
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let rel = if prefix.is_empty() {
            name.clone()
        } else {
            format!("{prefix}/{name}")
        };
        let Ok(ftype) = entry.file_type() else {
            continue;
        };
        let path = entry.path();
        let meta = if ftype.is_symlink() {
            match resolve_inside(root, &path).and_then(|p| fs::metadata(p).ok()) {
                Some(m) => m,
                None => continue,
            }
        } else {
            match entry.metadata() {
                Ok(m) => m,
                Err(_) => continue,
            }
        };
        if meta.is_dir() {
            if !is_skipped_dir(&name) {
                walk_dir(root, &path, &rel, files, large, seen);
            }
        } else if meta.is_file() && is_doc_path(&rel) {
            if meta.len() > MAX_DOC_BYTES {
                large.push((rel, meta.len()));
                continue;
            }
            let mtime = meta
                .modified()
                .ok()
                .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_nanos());
            files.push(Found {
                rel,
                abs: path,
                size: meta.len(),
                mtime,
            });
        }
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

/// Reads a file as text; invalid UTF-8 is replaced, a UTF-8 BOM dropped.
fn read_text(path: &Path) -> std::io::Result<String> {
    let bytes = fs::read(path)?;
    let text = match String::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    };
    Ok(match text.strip_prefix('\u{feff}') {
        Some(rest) => rest.to_string(),
        None => text,
    })
}

impl LocalSource {
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

impl Source for LocalSource {
    fn label(&self) -> String {
        format!("local:{}", crate::config::display_path(&self.root))
    }

    fn interval(&self) -> Duration {
        self.interval
    }

    fn refresh(&self) -> Result<Option<Vec<RepoSnapshot>>, SourceError> {
        let started = Instant::now();
        let walked = match self.walk() {
            Ok(w) => w,
            Err(e) => return Err(self.failed(e)),
        };
        let fp = fingerprint(&walked);
        {
            let mut st = self.state();
            st.last_scan = Some(crate::clock::unix_secs());
            st.last_error = None;
            if st.fingerprint == Some(fp) {
                return Ok(None);
            }
        }
        for (path, size) in &walked.large {
            log::warn!("skipping {path}: {size} bytes is over the {MAX_DOC_BYTES}-byte limit");
        }
        let mut snapshots = Vec::with_capacity(walked.repos.len());
        let (mut documents, mut bytes) = (0usize, 0u64);
        for (name, files) in walked.repos {
            let mut docs = Vec::with_capacity(files.len());
            for f in files {
                match read_text(&f.abs) {
                    Ok(text) => {
                        bytes += text.len() as u64;
                        docs.push(DocFile {
                            path: f.rel,
                            text,
                            url: None,
                        });
                    }
                    Err(e) => log::warn!("cannot read {}: {e}", f.abs.display()),
                }
            }
            documents += docs.len();
            snapshots.push(RepoSnapshot {
                name,
                description: None,
                docs,
            });
        }
        log::info!(
            "local source {}: read {} repositories, {} files, {} bytes in {:.2} s",
            self.label(),
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
        st.skipped_large = walked.large.len();
        st.last_change = Some(crate::clock::unix_secs());
        Ok(Some(snapshots))
    }

    fn health(&self) -> Value {
        let st = self.state();
        json!({
            "source": self.label(),
            "type": "local",
            "status": if st.last_error.is_some() { "error" } else { "ok" },
            "repositories": st.repositories,
            "documents": st.documents,
            "bytes": st.bytes,
            "skipped_large_files": st.skipped_large,
            "last_scan": st.last_scan,
            "last_change": st.last_change,
            "last_error": st.last_error,
        })
    }
}
