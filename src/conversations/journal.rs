//! Durability under the in-memory store: an append-only journal of JSON
//! lines in `DATA_DIR/conversations.jsonl`, replayed at start.
//!
//! The map in memory stays the source of truth while the service runs; the
//! journal is how it is rebuilt. Every change is one line, written to the
//! OS (`write(2)`) before the change is acknowledged: a turn stores its
//! answer line before `done` is sent, so `kill -9` never loses an
//! acknowledged answer. What a power cut can lose is set by
//! `JOURNAL_FSYNC_MS`: the file is `fdatasync`ed at most that long after a
//! write (a group commit by the maintenance thread), or after every write
//! when it is 0.
//!
//! Records (`"t"` is the type):
//! - `entry`: a stored user message or finished answer of conversation
//!   (`owner`, `id`); a later one with the same entry id replaces it;
//! - `answering` / `text`: an answer started, and what it has streamed, so
//!   that after a crash the running answer comes back `interrupted` with
//!   its text;
//! - `deleted`: the conversation was deleted, evicted or expired.
//!
//! A conversation exists once it has an entry. Replay re-applies the
//! store's budgets, so trimming needs no record. A torn last line (a power
//! cut mid-write), a garbage line or an unknown record type is skipped with
//! one WARN. A failed write is cut back off the file, so one full disk
//! never corrupts the lines after it. Compaction rewrites the live
//! conversations (and the running answers) to a temporary file, syncs it and
//! renames it over the journal.
//!
//! Lock order: the journal's lock is taken before any lock of the store, so
//! a compaction (which reads the store under it) never misses a change that
//! was written to the old file but not yet applied.

use super::{Conversation, Entry};
use crate::messages::{Message, Role};
use crate::sync::lock;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

const FILE: &str = "conversations.jsonl";
/// Compaction waits until the journal is at least this large...
const COMPACT_MIN_BYTES: u64 = 4 << 20;
/// ...and this many times the live data.
const COMPACT_RATIO: u64 = 2;

/// Why the journal could not do its job; the service keeps serving from
/// memory and says so.
#[derive(Debug)]
pub struct JournalError(pub String);

impl std::fmt::Display for JournalError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for JournalError {}

fn failed(what: &str, path: &Path, e: io::Error) -> JournalError {
    JournalError(format!("cannot {what} {}: {e}", path.display()))
}

/// A line as written: borrowed, so storing an entry copies nothing.
#[derive(Serialize)]
#[serde(tag = "t", rename_all = "snake_case")]
enum Out<'a> {
    Entry {
        id: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        owner: Option<&'a str>,
        entry: &'a Entry,
    },
    Answering {
        id: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        owner: Option<&'a str>,
        entry: &'a str,
        at: u64,
    },
    Text {
        entry: &'a str,
        text: &'a str,
    },
    Deleted {
        id: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        owner: Option<&'a str>,
    },
}

/// A line as read back.
#[derive(Deserialize)]
#[serde(tag = "t", rename_all = "snake_case")]
enum In {
    Entry {
        id: String,
        #[serde(default)]
        owner: Option<String>,
        entry: Entry,
    },
    Answering {
        id: String,
        #[serde(default)]
        owner: Option<String>,
        entry: String,
        at: u64,
    },
    Text {
        entry: String,
        text: String,
    },
    Deleted {
        id: String,
        #[serde(default)]
        owner: Option<String>,
    },
}

/// An answer that has started and not finished: what a compaction must
/// carry over, and what a crash turns into an `interrupted` entry.
#[derive(Debug, Clone)]
struct Pending {
    owner: Option<String>,
    id: String,
    at: u64,
    text: String,
}

/// One conversation as the journal rebuilt it, oldest entry first.
#[derive(Debug)]
pub struct Restored {
    pub owner: Option<String>,
    pub id: String,
    pub entries: Vec<Entry>,
}

/// What a replay found.
#[derive(Debug, Default)]
pub struct Replay {
    pub conversations: Vec<Restored>,
    /// Answers that were running when the process ended.
    pub interrupted: usize,
    /// One line per line skipped.
    pub warnings: Vec<String>,
}

struct Inner {
    /// `None` after a failure that could not be cut back: appends are
    /// refused until a compaction writes a fresh file.
    file: Option<File>,
    len: u64,
    pending: HashMap<String, Pending>,
}

pub struct Journal {
    dir: PathBuf,
    inner: Mutex<Inner>,
    /// Sync after every write (`JOURNAL_FSYNC_MS=0`).
    sync_each: bool,
    dirty: AtomicBool,
    /// The last write or sync failure, for `/health`; cleared by a success.
    last_error: Mutex<Option<String>>,
}

impl Journal {
    /// Opens (or creates) the journal in `dir` and replays it.
    pub fn open(dir: &Path, sync_each: bool) -> Result<(Journal, Replay), JournalError> {
        std::fs::create_dir_all(dir).map_err(|e| failed("create the data directory", dir, e))?;
        let path = dir.join(FILE);
        // Never blocked by a FIFO nor flooded by a device put in its place.
        let (replay, valid_len) = match crate::safe_read::open(&path) {
            Ok(f) => match f.metadata() {
                Ok(m) if m.is_file() => read(BufReader::new(f))?,
                Ok(_) => {
                    return Err(JournalError(format!(
                        "{} is not a regular file",
                        path.display()
                    )));
                }
                Err(e) => return Err(failed("read", &path, e)),
            },
            Err(e) if e.kind() == io::ErrorKind::NotFound => Default::default(),
            Err(e) => return Err(failed("read", &path, e)),
        };
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| failed("open for writing", &path, e))?;
        // A torn last line is cut off, so the next record starts a line.
        let len = file.metadata().map(|m| m.len()).unwrap_or(valid_len);
        if len > valid_len {
            file.set_len(valid_len)
                .map_err(|e| failed("cut the torn last line of", &path, e))?;
        }
        let journal = Journal {
            dir: dir.to_path_buf(),
            inner: Mutex::new(Inner {
                file: Some(file),
                len: valid_len,
                // The answers that were running are finished (as
                // interrupted) by the replay.
                pending: HashMap::new(),
            }),
            sync_each,
            dirty: AtomicBool::new(false),
            last_error: Mutex::new(None),
        };
        Ok((journal, replay))
    }

    fn path(&self) -> PathBuf {
        self.dir.join(FILE)
    }

    /// Takes the journal's lock: held while a change is written and applied.
    pub(super) fn begin(&self) -> Writer<'_> {
        Writer {
            journal: self,
            inner: lock(&self.inner),
        }
    }

    /// Bytes in the file now.
    pub fn bytes(&self) -> u64 {
        lock(&self.inner).len
    }

    /// Whether the journal has grown past its compaction threshold for
    /// `live` bytes of stored entries.
    pub fn wants_compaction(&self, live: usize) -> bool {
        self.bytes() > COMPACT_MIN_BYTES.max(COMPACT_RATIO * live as u64)
    }

    /// `fdatasync` if anything was written since the last one (the group
    /// commit of `JOURNAL_FSYNC_MS`).
    pub fn sync(&self) {
        if !self.dirty.swap(false, Ordering::SeqCst) {
            return;
        }
        let file = lock(&self.inner)
            .file
            .as_ref()
            .and_then(|f| f.try_clone().ok());
        if let Some(file) = file
            && let Err(e) = file.sync_data()
        {
            self.dirty.store(true, Ordering::SeqCst);
            self.note_error(failed("sync", &self.path(), e));
        }
    }

    /// The last failure, if the journal is not working now.
    pub fn last_error(&self) -> Option<String> {
        lock(&self.last_error).clone()
    }

    fn note_error(&self, e: JournalError) {
        let mut last = lock(&self.last_error);
        if last.as_deref() != Some(e.0.as_str()) {
            log::warn!(
                "conversation journal: {e}; conversations are kept in memory only until it works again"
            );
        }
        *last = Some(e.0);
    }

    fn note_ok(&self) {
        let mut last = lock(&self.last_error);
        if last.take().is_some() {
            log::info!("conversation journal: writing again");
        }
    }
}

/// The journal's lock, held across one change.
pub(super) struct Writer<'a> {
    journal: &'a Journal,
    inner: std::sync::MutexGuard<'a, Inner>,
}

impl Writer<'_> {
    pub fn entry(
        &mut self,
        owner: Option<&str>,
        id: &str,
        entry: &Entry,
    ) -> Result<(), JournalError> {
        self.inner.pending.remove(&entry.id);
        self.append(&Out::Entry { id, owner, entry })
    }

    pub fn answering(
        &mut self,
        owner: Option<&str>,
        id: &str,
        entry: &str,
        at: u64,
    ) -> Result<(), JournalError> {
        self.inner.pending.insert(
            entry.to_string(),
            Pending {
                owner: owner.map(str::to_string),
                id: id.to_string(),
                at,
                text: String::new(),
            },
        );
        self.append(&Out::Answering {
            id,
            owner,
            entry,
            at,
        })
    }

    pub fn text(&mut self, entry: &str, text: &str) -> Result<(), JournalError> {
        match self.inner.pending.get_mut(entry) {
            Some(p) => p.text.push_str(text),
            None => return Ok(()),
        }
        self.append(&Out::Text { entry, text })
    }

    pub fn deleted(&mut self, owner: Option<&str>, id: &str) -> Result<(), JournalError> {
        self.inner
            .pending
            .retain(|_, p| !(p.id == id && p.owner.as_deref() == owner));
        self.append(&Out::Deleted { id, owner })
    }

    fn append(&mut self, record: &Out) -> Result<(), JournalError> {
        let path = self.journal.path();
        let at = self.inner.len;
        let Some(file) = self.inner.file.as_mut() else {
            return Err(JournalError(format!(
                "{} is not writable since an earlier failure; it is rewritten at the next compaction",
                path.display()
            )));
        };
        // Serialising our own types cannot fail.
        let mut line = serde_json::to_vec(record).unwrap_or_default();
        line.push(b'\n');
        let written = file.write_all(&line).and_then(|_| {
            if self.journal.sync_each {
                file.sync_data()
            } else {
                Ok(())
            }
        });
        match written {
            Ok(()) => {
                self.inner.len += line.len() as u64;
                self.journal
                    .dirty
                    .store(!self.journal.sync_each, Ordering::SeqCst);
                self.journal.note_ok();
                Ok(())
            }
            Err(e) => {
                // Cut the torn bytes back off so the next line is whole.
                if file.set_len(at).is_err() {
                    self.inner.file = None;
                }
                let e = failed("write", &path, e);
                self.journal.note_error(JournalError(e.0.clone()));
                Err(e)
            }
        }
    }

    /// Rewrites the journal as the conversations `live` hold now (each
    /// read under its own lock, one at a time) plus the running answers,
    /// then renames it into place. Changes wait meanwhile: they take this
    /// lock first.
    pub fn compact(&mut self, live: &[Arc<Conversation>]) -> Result<u64, JournalError> {
        let path = self.journal.path();
        let tmp = self.journal.dir.join(format!("{FILE}.tmp"));
        let file = File::create(&tmp).map_err(|e| failed("create", &tmp, e))?;
        let mut out = io::BufWriter::new(file);
        let mut write = |record: &Out| -> io::Result<()> {
            serde_json::to_writer(&mut out, record)?;
            out.write_all(b"\n")
        };
        let written: io::Result<()> = (|| {
            for c in live {
                if c.is_deleted() {
                    continue;
                }
                let st = c.lock();
                for e in st.entries() {
                    write(&Out::Entry {
                        id: &c.id,
                        owner: c.owner.as_deref(),
                        entry: e,
                    })?;
                }
            }
            for (entry, p) in &self.inner.pending {
                write(&Out::Answering {
                    id: &p.id,
                    owner: p.owner.as_deref(),
                    entry,
                    at: p.at,
                })?;
                if !p.text.is_empty() {
                    write(&Out::Text {
                        entry,
                        text: &p.text,
                    })?;
                }
            }
            Ok(())
        })();
        let synced = written
            .and_then(|_| out.into_inner().map_err(|e| e.into_error()))
            .and_then(|f| f.sync_all());
        if let Err(e) = synced {
            let _ = std::fs::remove_file(&tmp);
            return Err(failed("write", &tmp, e));
        }
        std::fs::rename(&tmp, &path).map_err(|e| failed("rename", &tmp, e))?;
        // The rename itself is durable once the directory is synced.
        if let Ok(d) = File::open(&self.journal.dir) {
            let _ = d.sync_all();
        }
        let file = OpenOptions::new()
            .append(true)
            .open(&path)
            .map_err(|e| failed("open for writing", &path, e))?;
        self.inner.len = file.metadata().map(|m| m.len()).unwrap_or(0);
        self.inner.file = Some(file);
        self.journal.note_ok();
        Ok(self.inner.len)
    }
}

/// Replays a journal: the conversations in the order they were first seen,
/// the answers that were running as `interrupted` entries in their place,
/// and the length of the file's whole lines.
fn read(mut r: impl BufRead) -> Result<(Replay, u64), JournalError> {
    let mut order: Vec<(Option<String>, String)> = Vec::new();
    let mut convs: HashMap<(Option<String>, String), Vec<Entry>> = HashMap::new();
    let mut pending: HashMap<String, Pending> = HashMap::new();
    let mut warnings = Vec::new();
    let mut line = Vec::new();
    let (mut number, mut valid_len) = (0usize, 0u64);
    loop {
        line.clear();
        let n = r
            .read_until(b'\n', &mut line)
            .map_err(|e| JournalError(format!("cannot read the conversation journal: {e}")))?;
        if n == 0 {
            break;
        }
        number += 1;
        if line.last() != Some(&b'\n') {
            warnings.push(format!(
                "line {number}: the last line is torn (the process or the machine stopped mid-write); skipped"
            ));
            break;
        }
        valid_len += n as u64;
        let record = match serde_json::from_slice::<In>(&line) {
            Ok(r) => r,
            Err(e) => {
                warnings.push(format!(
                    "line {number}: not a journal record ({e}); skipped"
                ));
                continue;
            }
        };
        match record {
            In::Entry {
                id,
                owner,
                mut entry,
            } => {
                pending.remove(&entry.id);
                entry.size = n;
                let key = (owner, id);
                let list = convs.entry(key.clone()).or_insert_with(|| {
                    order.push(key);
                    Vec::new()
                });
                match list.iter_mut().find(|e| e.id == entry.id) {
                    Some(old) => *old = entry,
                    None => list.push(entry),
                }
            }
            In::Answering {
                id,
                owner,
                entry,
                at,
            } => {
                // In place now, so a crash brings it back where it was; the
                // answer's own entry line replaces it when it finished.
                let key = (owner.clone(), id.clone());
                if let Some(list) = convs.get_mut(&key) {
                    let mut e = Entry::new(
                        Role::Assistant,
                        Vec::new(),
                        Some(super::AnswerStatus::Interrupted),
                    )
                    .with_id(entry.clone());
                    e.at = at;
                    list.push(e);
                    pending.insert(
                        entry,
                        Pending {
                            owner,
                            id,
                            at,
                            text: String::new(),
                        },
                    );
                }
            }
            In::Text { entry, text } => {
                if let Some(p) = pending.get_mut(&entry) {
                    p.text.push_str(&text);
                }
            }
            In::Deleted { id, owner } => {
                pending.retain(|_, p| !(p.id == id && p.owner == owner));
                convs.remove(&(owner, id));
            }
        }
    }
    // What the interrupted answers had streamed.
    let interrupted = pending.len();
    for (entry_id, p) in pending.drain() {
        let found = convs
            .get_mut(&(p.owner, p.id))
            .and_then(|list| list.iter_mut().find(|e| e.id == entry_id));
        if let (Some(e), false) = (found, p.text.is_empty()) {
            e.messages = vec![Message::text(Role::Assistant, p.text)];
            e.size = super::json_size(&e.messages);
        }
    }
    let conversations = order
        .into_iter()
        .filter_map(|key| {
            let entries = convs.remove(&key)?;
            Some(Restored {
                owner: key.0,
                id: key.1,
                entries,
            })
        })
        .collect();
    Ok((
        Replay {
            conversations,
            interrupted,
            warnings,
        },
        valid_len,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dir(tag: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("kv-journal-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        d
    }

    fn user(text: &str) -> Entry {
        Entry::new(Role::User, vec![Message::text(Role::User, text)], None)
    }

    #[test]
    fn entries_replay_in_order_and_deletions_remove() {
        let d = dir("replay");
        {
            let (j, replay) = Journal::open(&d, false).unwrap();
            assert!(replay.conversations.is_empty());
            let mut w = j.begin();
            w.entry(None, "a", &user("one")).unwrap();
            w.entry(Some("token:1"), "a", &user("other owner")).unwrap();
            w.entry(None, "a", &user("two")).unwrap();
            w.entry(None, "gone", &user("x")).unwrap();
            w.deleted(None, "gone").unwrap();
        }
        let (_, replay) = Journal::open(&d, false).unwrap();
        assert!(replay.warnings.is_empty(), "{:?}", replay.warnings);
        let texts: Vec<(Option<String>, String, Vec<String>)> = replay
            .conversations
            .iter()
            .map(|c| {
                (
                    c.owner.clone(),
                    c.id.clone(),
                    c.entries.iter().map(Entry::text).collect(),
                )
            })
            .collect();
        assert_eq!(
            texts,
            vec![
                (None, "a".into(), vec!["one".into(), "two".into()]),
                (
                    Some("token:1".into()),
                    "a".into(),
                    vec!["other owner".into()]
                ),
            ]
        );
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_running_answer_comes_back_interrupted_with_its_text() {
        let d = dir("running");
        {
            let (j, _) = Journal::open(&d, false).unwrap();
            let mut w = j.begin();
            w.entry(None, "c", &user("q")).unwrap();
            w.answering(None, "c", "ans-1", 5).unwrap();
            w.text("ans-1", "Hel").unwrap();
            w.text("ans-1", "lo").unwrap();
        }
        let (_, replay) = Journal::open(&d, false).unwrap();
        assert_eq!(replay.interrupted, 1);
        let c = &replay.conversations[0];
        assert_eq!(c.entries.len(), 2);
        assert_eq!(c.entries[1].text(), "Hello");
        assert_eq!(c.entries[1].id, "ans-1");
        assert_eq!(
            c.entries[1].status,
            Some(super::super::AnswerStatus::Interrupted)
        );
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn torn_garbage_and_unknown_lines_are_skipped_with_a_warning() {
        let d = dir("torn");
        std::fs::create_dir_all(&d).unwrap();
        let good = serde_json::to_string(&Out::Entry {
            id: "c",
            owner: None,
            entry: &user("kept"),
        })
        .unwrap();
        let text = format!(
            "{good}\nnot json at all\n{{\"t\":\"from_the_future\",\"x\":1}}\n{good_torn}",
            good_torn = &good[..good.len() / 2]
        );
        std::fs::write(d.join(FILE), &text).unwrap();
        let (j, replay) = Journal::open(&d, false).unwrap();
        assert_eq!(replay.warnings.len(), 3, "{:?}", replay.warnings);
        assert!(replay.warnings[2].contains("torn"));
        assert_eq!(replay.conversations[0].entries.len(), 1);
        // The torn tail was cut: the next record starts its own line.
        j.begin().entry(None, "c", &user("after")).unwrap();
        drop(j);
        let (_, replay) = Journal::open(&d, false).unwrap();
        assert_eq!(replay.warnings.len(), 2, "{:?}", replay.warnings);
        assert_eq!(replay.conversations[0].entries.len(), 2);
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn compaction_keeps_the_content_and_the_running_answers() {
        let d = dir("compact");
        let (j, _) = Journal::open(&d, true).unwrap();
        let kept = user("kept");
        {
            let mut w = j.begin();
            for i in 0..50 {
                w.entry(None, "old", &user(&format!("dropped {i}")))
                    .unwrap();
            }
            w.entry(None, "c", &kept).unwrap();
            w.answering(None, "c", "run", 9).unwrap();
            w.text("run", "partial").unwrap();
        }
        let before = j.bytes();
        let c = Arc::new(Conversation::new("c", None));
        c.lock().entries.push_back(kept.clone());
        let after = j.begin().compact(&[c]).unwrap();
        assert!(after < before, "{after} >= {before}");
        j.begin().text("run", " more").unwrap();
        drop(j);
        let (_, replay) = Journal::open(&d, false).unwrap();
        assert_eq!(replay.conversations.len(), 1);
        let entries = &replay.conversations[0].entries;
        assert_eq!(entries[0].messages, kept.messages);
        assert_eq!(entries[1].text(), "partial more");
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_file_where_the_directory_should_be_is_a_clear_error() {
        let d = dir("notadir");
        std::fs::write(&d, "x").unwrap();
        let e = Journal::open(&d, false).err().unwrap();
        assert!(e.to_string().contains("data directory"), "{e}");
        std::fs::remove_file(&d).unwrap();
    }
}
