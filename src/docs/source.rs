//! The source seam: where documents come from (a local folder, a GitHub
//! organization). A source only fetches and selects files; indexing and the
//! tools live in the provider and know nothing about where text came from.
//! Also what every source shares: the file selection rules, the size limit,
//! and [`SourceError`], the one error type of this boundary.

use super::github::ApiError;
use serde_json::Value;
use std::fmt;
use std::io;
use std::path::PathBuf;
use std::time::Duration;

/// One documentation file as a source delivers it.
#[derive(Debug, Clone, PartialEq)]
pub struct DocFile {
    /// Path inside the repository, `/`-separated, no leading slash.
    pub path: String,
    /// The text; invalid UTF-8 already replaced (U+FFFD), never fatal.
    pub text: String,
    /// A link to the document on its forge (GitHub `html_url`), if any.
    pub url: Option<String>,
}

/// One repository and its documentation files.
#[derive(Debug, Clone, PartialEq)]
pub struct RepoSnapshot {
    pub name: String,
    pub description: Option<String>,
    pub docs: Vec<DocFile>,
}

/// A place documents come from. Sources are shared with their docs-source
/// thread and `/health`, so methods take `&self`; an implementation keeps its
/// status behind its own lock and never holds it across network or disk I/O,
/// so `health()` and `progress()` always answer at once.
pub trait Source: Send + Sync {
    /// Short label for log lines and `/health`, e.g. `local:/srv/docs` or `github:acme`.
    fn label(&self) -> String;

    /// How often the provider calls [`Source::refresh`].
    fn interval(&self) -> Duration;

    /// A full new snapshot when anything changed since the previous call,
    /// `Ok(None)` when nothing did, an error when the source could not be
    /// read this time (the provider keeps what it delivered before, nothing
    /// at first). The first successful call returns a snapshot (possibly
    /// empty). Runs on the source's own thread; may take long.
    fn refresh(&self) -> Result<Option<Vec<RepoSnapshot>>, SourceError>;

    /// Additive details for `/health` (last sync, counts, last error).
    fn health(&self) -> Value;

    /// How far the refresh under way has come, e.g. `local:/docs: 1,234 of
    /// 4,139 files read`; `None` when no refresh runs or it cannot tell.
    fn progress(&self) -> Option<String> {
        None
    }

    /// True when the first refresh may be slow (a sync over the network):
    /// the provider is then ready without waiting for it, and indexes its
    /// snapshot when it comes.
    fn first_refresh_is_slow(&self) -> bool {
        false
    }
}

/// Why a source could not be read, or could not save what it read. Its
/// `Display` is the line logged and shown in `/health`.
#[derive(Debug)]
pub enum SourceError {
    /// `DOCS_DIR` cannot be opened (missing, no permission).
    OpenRoot { path: PathBuf, error: io::Error },
    /// `DOCS_DIR` is not a folder.
    NotAFolder(PathBuf),
    /// A folder cannot be listed.
    List { path: PathBuf, error: io::Error },
    /// GitHub answered 401; the sync stopped. `token`: one was sent.
    Unauthorized { token: bool },
    /// GitHub knows no organization or user of that name.
    UnknownOwner { api_url: String, owner: String },
    /// Listing the repositories failed.
    Listing(ApiError),
    /// A cache file could not be written.
    CacheWrite { path: PathBuf, error: io::Error },
    /// The cache state could not be encoded.
    Encode(serde_json::Error),
    /// A blob id that cannot name a cache file.
    NotASha(String),
    /// The refresh panicked (a bug); the message of the panic.
    Panicked(String),
}

impl fmt::Display for SourceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SourceError::OpenRoot { path, error } => {
                write!(f, "cannot open DOCS_DIR {}: {error}", path.display())
            }
            SourceError::NotAFolder(path) => {
                write!(f, "DOCS_DIR {} is not a folder", path.display())
            }
            SourceError::List { path, error } => {
                write!(f, "cannot list {}: {error}", path.display())
            }
            SourceError::Unauthorized { token: true } => f.write_str(
                "GitHub rejected GITHUB_TOKEN (401 Bad credentials): it is wrong, expired or \
                 revoked; sync stopped",
            ),
            SourceError::Unauthorized { token: false } => {
                f.write_str("GitHub answered 401 Bad credentials without a token; sync stopped")
            }
            SourceError::UnknownOwner { api_url, owner } => write!(
                f,
                "GitHub at {api_url} knows no organization or user named {owner:?} (or the \
                 token cannot see it)"
            ),
            SourceError::Listing(e) => write!(f, "listing repositories failed: {e}"),
            SourceError::CacheWrite { path, error } => {
                write!(f, "cannot write {}: {error}", path.display())
            }
            SourceError::Encode(e) => write!(f, "cannot encode the cache state: {e}"),
            SourceError::NotASha(sha) => write!(f, "not a blob sha: {sha:?}"),
            SourceError::Panicked(m) => write!(f, "the refresh failed unexpectedly: {m}"),
        }
    }
}

impl std::error::Error for SourceError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            SourceError::OpenRoot { error, .. }
            | SourceError::List { error, .. }
            | SourceError::CacheWrite { error, .. } => Some(error),
            SourceError::Listing(e) => Some(e),
            SourceError::Encode(e) => Some(e),
            _ => None,
        }
    }
}

/// How often a long refresh or build logs how far it has come.
pub const PROGRESS_EVERY: Duration = Duration::from_secs(5);

/// `4139` as `4,139`, for progress lines.
pub fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Folder names never descended into.
pub const SKIPPED_DIRS: [&str; 4] = [".git", "node_modules", "vendor", "target"];

/// Files larger than this are skipped (and logged by the source).
pub const MAX_DOC_BYTES: u64 = 1024 * 1024;

/// Whether a file is documentation, by its path inside the repository:
/// `.md`, `.mdx`, `.markdown`, `.rst`, `.txt` (any case), and README,
/// CONTRIBUTING, CHANGELOG without extension. Files under skipped or hidden
/// folders are not.
pub fn is_doc_path(path: &str) -> bool {
    let (dirs, file) = path.rsplit_once('/').unwrap_or(("", path));
    if !dirs.is_empty() && dirs.split('/').any(is_skipped_dir) {
        return false;
    }
    if file.starts_with('.') {
        return false;
    }
    let is = |s: &str, names: &[&str]| names.iter().any(|n| s.eq_ignore_ascii_case(n));
    match file.rsplit_once('.') {
        Some((stem, ext)) => !stem.is_empty() && is(ext, &["md", "mdx", "markdown", "rst", "txt"]),
        None => is(file, &["readme", "contributing", "changelog"]),
    }
}

/// Folders never descended into: hidden ones and [`SKIPPED_DIRS`]. Shared
/// by every source so they select the same files.
pub fn is_skipped_dir(name: &str) -> bool {
    name.starts_with('.') || SKIPPED_DIRS.contains(&name)
}

#[cfg(test)]
mod tests {
    use super::{is_doc_path, thousands};

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000), "1,000");
        assert_eq!(thousands(4_139), "4,139");
        assert_eq!(thousands(12_345_678), "12,345,678");
    }

    #[test]
    fn doc_path_rules() {
        for p in [
            "README.md",
            "docs/a b/x.MD",
            "README",
            "CHANGELOG",
            "x/y.rst",
            "notes.txt",
            "a.mdx",
            "a.markdown",
        ] {
            assert!(is_doc_path(p), "{p}");
        }
        for p in [
            "main.rs",
            ".github/x.md",
            "node_modules/a/README.md",
            "vendor/x.md",
            "a/target/b.md",
            ".hidden.md",
            "LICENSE",
            "a/.git/HEAD",
            "Makefile",
        ] {
            assert!(!is_doc_path(p), "{p}");
        }
    }
}
