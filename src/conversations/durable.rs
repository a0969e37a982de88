//! The store's life with a journal: replayed at start on a thread of its
//! own (the service answers meanwhile; the store says it is `loading`), then
//! kept by the same thread: the group commit every `JOURNAL_FSYNC_MS`,
//! compaction when the file has grown past twice the live data, and the
//! expiry of conversations idle for `CONVERSATION_TTL_DAYS`.
//!
//! A journal that cannot be opened (a read-only or missing directory, a
//! file where the directory should be) leaves the store in memory only,
//! with the reason in `/health` and a WARN; it never stops the service.

use super::journal::{Journal, Replay};
use super::{Conversation, Conversations, State, key, trim};
use crate::clock::unix_millis;
use crate::sync::lock;
use serde_json::{Value, json};
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

/// How often expiry and compaction are considered.
const HOUSEKEEPING: Duration = Duration::from_secs(30);

/// What the journal thread needs to know.
#[derive(Debug, Clone)]
pub struct Durability {
    pub dir: PathBuf,
    /// The group commit period; zero syncs every write.
    pub fsync: Duration,
    /// Conversations idle longer than this are expired; `None`: never.
    pub ttl: Option<Duration>,
}

impl Conversations {
    /// Opens and replays the journal on a new thread, which then keeps it.
    /// Until the replay is done, [`Conversations::loading`] is true.
    pub fn start_journal(self: &Arc<Self>, d: Durability) {
        self.loading.store(true, Ordering::SeqCst);
        let store = Arc::downgrade(self);
        let spawned = std::thread::Builder::new()
            .name("journal".into())
            .stack_size(256 * 1024)
            .spawn(move || run(&store, &d));
        if let Err(e) = spawned {
            self.unusable(format!("cannot start the journal thread: {e}"));
        }
    }

    /// True while the journal is being replayed.
    pub fn loading(&self) -> bool {
        self.loading.load(Ordering::SeqCst)
    }

    /// `/health`'s view of the store.
    pub fn health(&self) -> Value {
        let count = self.map().len();
        let mut h = json!({"count": count, "bytes": self.total_bytes()});
        if self.loading() {
            h["state"] = json!("loading");
        }
        match (self.journal.get(), lock(&self.journal_error).clone()) {
            (Some(j), _) => {
                h["journal"] = json!({"bytes": j.bytes()});
                if let Some(e) = j.last_error() {
                    h["journal"]["error"] = json!(e);
                }
            }
            (None, Some(e)) => h["journal"] = json!({"error": e}),
            (None, None) => {}
        }
        h
    }

    /// Syncs what was written (at shutdown: the group commit's last round).
    pub fn sync_journal(&self) {
        if let Some(j) = self.journal.get() {
            j.sync();
        }
    }

    fn unusable(&self, why: String) {
        log::warn!("conversations are kept in memory only: {why}");
        *lock(&self.journal_error) = Some(why);
        self.loading.store(false, Ordering::SeqCst);
    }

    /// Puts the replayed conversations in the store within its budgets:
    /// the most recently active first, expired ones left out.
    fn restore(&self, replay: Replay, ttl: Option<Duration>) -> usize {
        let now = unix_millis();
        let cutoff = ttl.map_or(0, |t| now.saturating_sub(t.as_millis() as u64));
        let mut restored: Vec<_> = replay
            .conversations
            .into_iter()
            .filter_map(|c| {
                let last = c.entries.iter().map(|e| e.at).max()?;
                (last >= cutoff).then_some((last, c))
            })
            .collect();
        restored.sort_by_key(|(last, _)| std::cmp::Reverse(*last));
        restored.truncate(self.limits.max_conversations);
        let mut map = self.map();
        let mut total = 0;
        for (last, r) in restored {
            let mut st = State {
                bytes: r.entries.iter().map(|e| e.size).sum(),
                entries: r.entries.into(),
                turn: None,
            };
            trim(&mut st, self.limits.max_messages, self.limits.max_bytes);
            if total + st.bytes > self.limits.max_total_bytes {
                break;
            }
            total += st.bytes;
            let c = Conversation::new(&r.id, r.owner.clone());
            c.last_active.store(last, Ordering::Relaxed);
            *lock(&c.state) = st;
            map.insert(key(r.owner.as_deref(), &r.id), Arc::new(c));
        }
        self.total.fetch_add(total, Ordering::SeqCst);
        map.len()
    }

    /// Removes conversations idle since before `ttl` that nothing holds.
    fn expire(&self, ttl: Duration) -> usize {
        let cutoff = unix_millis().saturating_sub(ttl.as_millis() as u64);
        let expired: Vec<Arc<Conversation>> = {
            let mut map = self.map();
            let old: Vec<String> = map
                .iter()
                .filter(|(_, c)| Arc::strong_count(c) == 1 && c.last_active() < cutoff)
                .map(|(k, _)| k.clone())
                .collect();
            old.iter()
                .filter_map(|k| self.remove_locked(&mut map, k))
                .collect()
        };
        self.forget(&expired);
        expired.len()
    }

    fn compact(&self, journal: &Journal) {
        let mut w = journal.begin();
        let live: Vec<Arc<Conversation>> = self.map().values().cloned().collect();
        match w.compact(&live) {
            Ok(bytes) => log::info!(
                "conversation journal compacted to {bytes} bytes ({} conversations)",
                live.len()
            ),
            Err(e) => log::warn!("conversation journal: compaction failed: {e}"),
        }
    }
}

/// The journal thread: replay, then keep the journal until the store is gone.
fn run(store: &Weak<Conversations>, d: &Durability) {
    let started = Instant::now();
    let opened = Journal::open(&d.dir, d.fsync.is_zero());
    let Some(s) = store.upgrade() else { return };
    let (journal, replay) = match opened {
        Ok(ok) => ok,
        Err(e) => return s.unusable(e.to_string()),
    };
    for w in &replay.warnings {
        log::warn!("conversation journal {}: {w}", d.dir.display());
    }
    let needs_rewrite = replay.interrupted > 0 || !replay.warnings.is_empty();
    let interrupted = replay.interrupted;
    let count = s.restore(replay, d.ttl);
    if s.journal.set(journal).is_err() {
        return;
    }
    s.loading.store(false, Ordering::SeqCst);
    log::info!(
        "conversations: {count} restored from {} in {:.0} ms ({interrupted} answers were interrupted)",
        d.dir.display(),
        started.elapsed().as_secs_f64() * 1000.0
    );
    let Some(journal) = s.journal.get() else {
        return;
    };
    if needs_rewrite || journal.wants_compaction(s.total_bytes()) {
        s.compact(journal);
    }
    drop(s);
    let tick = if d.fsync.is_zero() {
        HOUSEKEEPING
    } else {
        d.fsync.min(HOUSEKEEPING)
    };
    let mut last_housekeeping = Instant::now();
    loop {
        std::thread::sleep(tick);
        let Some(s) = store.upgrade() else { return };
        let Some(journal) = s.journal.get() else {
            return;
        };
        journal.sync();
        if last_housekeeping.elapsed() >= HOUSEKEEPING {
            last_housekeeping = Instant::now();
            if let Some(ttl) = d.ttl {
                let n = s.expire(ttl);
                if n > 0 {
                    log::info!("conversations: {n} expired (CONVERSATION_TTL_DAYS)");
                }
            }
            if journal.wants_compaction(s.total_bytes()) {
                s.compact(journal);
            }
        }
    }
}
