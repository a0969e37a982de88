//! The on-disk cache of one organization under `{CACHE_DIR}/github/{org}/`:
//! `state.json` (repository list pages with their ETags, and per repository
//! the tree ETag and documentation files) and `blobs/ab/cdef…` (file contents
//! by git blob sha, verified by SHA-1 on every read).
//!
//! Every write goes to a temporary file in the same folder and is renamed
//! into place, so a crash leaves the old file or the new one, never half of
//! one. Every read goes through [`safe_read`]: only a regular file is read
//! (a FIFO, a device or a symlink put in the cache's place is not), and
//! never more than its limit. Anything unreadable is treated as absent; the
//! cache is never fatal.

use crate::docs::source::{MAX_DOC_BYTES, SourceError};
use crate::safe_read::{self, Expect, ReadError};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

const STATE_VERSION: u32 = 1;
/// `state.json` holds the listing and every documentation path and sha; a
/// very large organization stays far below this.
const STATE_LIMIT: u64 = 256 * 1024 * 1024;

/// A repository as GitHub lists it (unknown fields ignored).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RepoInfo {
    pub name: String,
    pub full_name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub archived: bool,
    #[serde(default)]
    pub fork: bool,
    #[serde(default)]
    pub private: bool,
    #[serde(default)]
    pub default_branch: Option<String>,
    pub html_url: String,
}

/// One page of the repository list, kept to answer a 304 for it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Page {
    pub url: String,
    pub etag: Option<String>,
    pub next: Option<String>,
    pub repos: Vec<RepoInfo>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileEntry {
    pub path: String,
    pub sha: String,
    pub size: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RepoState {
    pub info: RepoInfo,
    /// The tree URL the ETag belongs to (it changes with the default branch).
    pub tree_url: Option<String>,
    pub tree_etag: Option<String>,
    pub tree_sha: Option<String>,
    pub files: Vec<FileEntry>,
    /// Why the repository has no content (empty, branch missing); such
    /// repositories are left out of the snapshot.
    #[serde(default)]
    pub skipped: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct State {
    pub version: u32,
    pub api_url: String,
    /// `orgs` or `users`: which listing answered, so a user account does not
    /// cost a 404 on every sync.
    pub owner_kind: Option<String>,
    pub pages: Vec<Page>,
    pub repos: BTreeMap<String, RepoState>,
    /// Unix seconds of the last completed sync; `None` until one completed.
    pub last_sync: Option<u64>,
}

pub struct Cache {
    root: PathBuf,
}

impl Cache {
    pub fn new(cache_dir: &Path, org: &str) -> Cache {
        Cache {
            root: cache_dir.join("github").join(dir_name(org)),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn state_path(&self) -> PathBuf {
        self.root.join("state.json")
    }

    /// The saved state, if readable and written for the same API URL.
    pub fn load_state(&self, api_url: &str) -> Option<State> {
        let path = self.state_path();
        let bytes = read_cached(&path, STATE_LIMIT)?;
        match serde_json::from_slice::<State>(&bytes) {
            Ok(s) if s.version == STATE_VERSION && s.api_url == api_url => Some(s),
            Ok(_) => {
                log::info!(
                    "cache {} is for another API URL or version; starting afresh",
                    path.display()
                );
                None
            }
            Err(e) => {
                log::warn!("ignoring corrupt cache {}: {e}", path.display());
                None
            }
        }
    }

    pub fn save_state(&self, state: &State) -> Result<(), SourceError> {
        let mut state = state.clone();
        state.version = STATE_VERSION;
        let bytes = serde_json::to_vec(&state).map_err(SourceError::Encode)?;
        let path = self.state_path();
        write_atomic(&path, &bytes).map_err(|error| SourceError::CacheWrite { path, error })
    }

    fn blob_path(&self, sha: &str) -> Option<PathBuf> {
        if !is_hex_sha(sha) {
            return None;
        }
        Some(self.root.join("blobs").join(&sha[..2]).join(&sha[2..]))
    }

    /// A cached blob whose content still hashes to its sha.
    pub fn read_blob(&self, sha: &str) -> Option<Vec<u8>> {
        let path = self.blob_path(sha)?;
        let bytes = read_cached(&path, MAX_DOC_BYTES)?;
        if sha_matches(sha, &bytes) {
            Some(bytes)
        } else {
            log::warn!("ignoring corrupt cached blob {}", path.display());
            None
        }
    }

    pub fn write_blob(&self, sha: &str, bytes: &[u8]) -> Result<(), SourceError> {
        let path = self
            .blob_path(sha)
            .ok_or_else(|| SourceError::NotASha(sha.to_string()))?;
        write_atomic(&path, bytes).map_err(|error| SourceError::CacheWrite { path, error })
    }

    /// Deletes blobs (and leftover temporary files) not in `keep`.
    /// A symlink in place of a `blobs/ab` folder is not followed: files
    /// elsewhere are never deleted.
    pub fn prune(&self, keep: &HashSet<String>) -> usize {
        let mut removed = 0;
        let Ok(dirs) = fs::read_dir(self.root.join("blobs")) else {
            return 0;
        };
        for dir in dirs.flatten() {
            if !dir.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let prefix = dir.file_name().to_string_lossy().to_string();
            let Ok(files) = fs::read_dir(dir.path()) else {
                continue;
            };
            for file in files.flatten() {
                let sha = format!("{prefix}{}", file.file_name().to_string_lossy());
                if !keep.contains(&sha) && fs::remove_file(file.path()).is_ok() {
                    removed += 1;
                }
            }
        }
        removed
    }
}

/// A cache file: regular, at most `limit` bytes; `None` when absent or not
/// so (logged). The cache folder is the service's own, so no root and no
/// identity are checked.
fn read_cached(path: &Path, limit: u64) -> Option<Vec<u8>> {
    let expect = Expect {
        limit,
        inside: None,
        id: None,
    };
    match safe_read::read(path, expect) {
        Ok(bytes) => Some(bytes),
        Err(ReadError::Open(e)) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => {
            log::warn!("ignoring the cached {}: {e}", path.display());
            None
        }
    }
}

/// Writes via a temporary sibling, fsync, then rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let tmp = dir.join(format!(
        ".{name}.{}.{}.tmp",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let result = (|| {
        // `create_new`: never through a file or symlink already there.
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// A file-system-safe folder name for an organization (GitHub names are
/// case-insensitive).
fn dir_name(org: &str) -> String {
    let name: String = org
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .collect();
    if name.is_empty() { "_".into() } else { name }
}

/// Lower-case hex of SHA-1 (40) or SHA-256 (64) length: the only shas that
/// may become a path or a URL segment.
pub fn is_hex_sha(sha: &str) -> bool {
    (sha.len() == 40 || sha.len() == 64)
        && sha
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Whether `bytes` are the blob `sha` names (SHA-1 repositories; SHA-256
/// ones are trusted as is).
pub fn sha_matches(sha: &str, bytes: &[u8]) -> bool {
    sha.len() != 40 || git_blob_sha(bytes) == sha
}

/// Git's blob id: SHA-1 of `blob {len}\0{content}`.
pub fn git_blob_sha(content: &[u8]) -> String {
    let mut h = Sha1::new();
    h.update(format!("blob {}\0", content.len()).as_bytes());
    h.update(content);
    h.hex()
}

/// A plain SHA-1 (FIPS 180-4), only to check blob contents.
struct Sha1 {
    h: [u32; 5],
    buf: Vec<u8>,
    len: u64,
}

impl Sha1 {
    fn new() -> Sha1 {
        Sha1 {
            h: [0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0],
            buf: Vec::with_capacity(64),
            len: 0,
        }
    }

    fn update(&mut self, mut data: &[u8]) {
        self.len += data.len() as u64;
        if !self.buf.is_empty() {
            let take = (64 - self.buf.len()).min(data.len());
            self.buf.extend_from_slice(&data[..take]);
            data = &data[take..];
            if self.buf.len() == 64 {
                let block = std::mem::take(&mut self.buf);
                self.block(&block);
            }
        }
        let mut chunks = data.chunks_exact(64);
        for block in &mut chunks {
            self.block(block);
        }
        self.buf.extend_from_slice(chunks.remainder());
    }

    fn hex(mut self) -> String {
        let bits = self.len.wrapping_mul(8);
        let mut tail = std::mem::take(&mut self.buf);
        tail.push(0x80);
        while tail.len() % 64 != 56 {
            tail.push(0);
        }
        tail.extend_from_slice(&bits.to_be_bytes());
        for block in tail.chunks_exact(64) {
            self.block(block);
        }
        self.h.iter().map(|w| format!("{w:08x}")).collect()
    }

    fn block(&mut self, block: &[u8]) {
        let mut w = [0u32; 80];
        for (i, word) in block.chunks_exact(4).enumerate() {
            w[i] = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
        }
        for i in 16..80 {
            w[i] = (w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16]).rotate_left(1);
        }
        let [mut a, mut b, mut c, mut d, mut e] = self.h;
        for (i, wi) in w.iter().enumerate() {
            let (f, k) = match i {
                0..=19 => ((b & c) | (!b & d), 0x5A827999),
                20..=39 => (b ^ c ^ d, 0x6ED9EBA1),
                40..=59 => ((b & c) | (b & d) | (c & d), 0x8F1BBCDC),
                _ => (b ^ c ^ d, 0xCA62C1D6),
            };
            let t = a
                .rotate_left(5)
                .wrapping_add(f)
                .wrapping_add(e)
                .wrapping_add(k)
                .wrapping_add(*wi);
            e = d;
            d = c;
            c = b.rotate_left(30);
            b = a;
            a = t;
        }
        for (h, v) in self.h.iter_mut().zip([a, b, c, d, e]) {
            *h = h.wrapping_add(v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blob_shas_match_git() {
        // `git hash-object` of these contents.
        assert_eq!(
            git_blob_sha(b""),
            "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391"
        );
        assert_eq!(
            git_blob_sha(b"hello\n"),
            "ce013625030ba8dba906f756967f9e9ca394464a"
        );
        let long = "0123456789".repeat(100);
        assert_eq!(git_blob_sha(long.as_bytes()), GIT_LONG);
    }

    #[cfg(unix)]
    #[test]
    fn prune_never_follows_a_symlinked_folder() {
        let dir = std::env::temp_dir().join(format!("kv-cache-prune-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let cache = Cache::new(&dir, "acme");
        let sha = git_blob_sha(b"kept");
        cache.write_blob(&sha, b"kept").unwrap();
        cache.write_blob(&git_blob_sha(b"old"), b"old").unwrap();
        let outside = dir.join("outside");
        fs::create_dir_all(&outside).unwrap();
        fs::write(outside.join("precious"), b"x").unwrap();
        std::os::unix::fs::symlink(&outside, cache.root().join("blobs/zz")).unwrap();
        let keep = HashSet::from([sha.clone()]);
        assert_eq!(cache.prune(&keep), 1);
        assert!(outside.join("precious").exists());
        assert_eq!(cache.read_blob(&sha).as_deref(), Some(&b"kept"[..]));
        let _ = fs::remove_dir_all(dir);
    }

    const GIT_LONG: &str = "2587a6f4fca510889366deda011d048d0182c3cb";

    #[test]
    fn shas_are_checked_before_becoming_paths() {
        assert!(is_hex_sha("ce013625030ba8dba906f756967f9e9ca394464a"));
        assert!(!is_hex_sha("../../../../etc/passwd/aaaaaaaaaaaaaaaaaaaaaa"));
        assert!(!is_hex_sha("CE013625030BA8DBA906F756967F9E9CA394464A"));
        let dir = std::env::temp_dir().join(format!("kv-cache-unit-{}", std::process::id()));
        let cache = Cache::new(&dir, "Acme/../x");
        assert!(cache.root().ends_with("github/acme____x"));
        assert!(cache.write_blob("../x", b"a").is_err());
        let _ = fs::remove_dir_all(dir);
    }
}
