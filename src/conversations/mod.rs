//! Conversations, in memory behind one mutex, bounded in count and bytes.
//!
//! A conversation is a list of entries: each user message, and each
//! assistant answer with every message the turn produced (assistant blocks,
//! tool_use, the user message of tool_result blocks), so a follow-up
//! question carries earlier tool results. What a person reads of an entry is
//! derived from those messages: the text is stored once. A running answer is
//! attached to its conversation ([`live::TurnHandle`]) so that a client
//! reconnecting gets its events.
//!
//! Every change goes through [`Conversations`], which enforces the budgets:
//! - at most `max_conversations`; a new one evicts the least recently active
//!   conversation that nothing holds (no open socket, no running answer), and
//!   is refused ([`Full`]) when every one is held;
//! - per conversation, `max_messages` entries and `max_bytes` of messages
//!   (the oldest dropped first, in whole user/answer pairs; the newest entry
//!   is always kept);
//! - in total, `max_total_bytes`: idle conversations are evicted oldest
//!   first, then the oldest entries of the ones in use are dropped.
//!
//! With API tokens on, each token has its own conversation ids: the map is
//! keyed by (owner, id), so another token's conversation does not exist for
//! a caller, and the same id names a different conversation for each.
//!
//! Lock order: the map, then one conversation's state; never the other way.

mod durable;
pub use durable::Durability;
pub mod journal;
pub mod live;

use crate::clock::unix_millis;
use crate::messages::{Message, Role};
use crate::sync::lock;
use journal::{Journal, JournalError};
use live::TurnHandle;
use serde_json::{Value, json};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

/// Longest conversation id a client may choose (ids are free-form).
pub const MAX_ID_BYTES: usize = 128;

/// Whether `id` may name a conversation: 1 to [`MAX_ID_BYTES`] bytes, no
/// control characters.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= MAX_ID_BYTES && !id.chars().any(char::is_control)
}

/// How an answer ended when it is incomplete.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AnswerStatus {
    /// The model or the network failed mid-answer (an `error` event said why).
    Interrupted,
    Cancelled,
    /// `max_tokens` or the tool-round limit was reached.
    Truncated,
}

impl AnswerStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            AnswerStatus::Interrupted => "interrupted",
            AnswerStatus::Cancelled => "cancelled",
            AnswerStatus::Truncated => "truncated",
        }
    }
}

/// One message as the frontend sees it, with the model messages behind it.
/// Its JSON is what a journal line stores.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Entry {
    pub id: String,
    pub role: Role,
    /// The user's message, or every message of the answer.
    pub messages: Vec<Message>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<AnswerStatus>,
    /// Unix milliseconds when it was stored.
    pub at: u64,
    /// Bytes of `messages` as JSON, computed once when stored (or the
    /// journal line's length when read back).
    #[serde(skip)]
    size: usize,
}

impl Entry {
    /// The same entry under another id (an answer gets its id when it
    /// starts, for the journal).
    pub fn with_id(mut self, id: String) -> Entry {
        self.id = id;
        self
    }

    pub fn new(role: Role, messages: Vec<Message>, status: Option<AnswerStatus>) -> Entry {
        Entry {
            id: uuid::Uuid::new_v4().to_string(),
            role,
            size: json_size(&messages),
            messages,
            status,
            at: unix_millis(),
        }
    }

    /// The text shown to people: every text block, in order.
    pub fn text(&self) -> String {
        self.messages.iter().map(Message::shown_text).collect()
    }

    pub fn size(&self) -> usize {
        self.size
    }
}

fn json_size(messages: &[Message]) -> usize {
    serde_json::to_vec(messages).map_or(0, |v| v.len())
}

/// The state behind a conversation's lock.
#[derive(Default)]
pub struct State {
    entries: VecDeque<Entry>,
    /// The answer running now, if any.
    pub turn: Option<Arc<TurnHandle>>,
    bytes: usize,
}

impl State {
    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.entries.iter()
    }
}

pub struct Conversation {
    pub id: String,
    /// Who created it, when access tokens are on (the token's name, never
    /// the token); `None` means anyone.
    pub owner: Option<String>,
    state: Mutex<State>,
    last_active: AtomicU64,
    deleted: AtomicBool,
}

impl Conversation {
    fn new(id: &str, owner: Option<String>) -> Conversation {
        Conversation {
            id: id.to_string(),
            owner,
            state: Mutex::new(State::default()),
            last_active: AtomicU64::new(unix_millis()),
            deleted: AtomicBool::new(false),
        }
    }

    /// The state lock (recovered if a panicking thread poisoned it).
    pub fn lock(&self) -> MutexGuard<'_, State> {
        self.touch();
        lock(&self.state)
    }

    fn touch(&self) {
        self.last_active.store(unix_millis(), Ordering::Relaxed);
    }

    /// Unix milliseconds of the last activity.
    pub fn last_active(&self) -> u64 {
        self.last_active.load(Ordering::Relaxed)
    }

    /// True once deleted: a socket still open on it can start no answer.
    pub fn is_deleted(&self) -> bool {
        self.deleted.load(Ordering::SeqCst)
    }

    /// `[{"role", "content", "id", "status"?}]` for `GET .../messages`.
    pub fn messages_json(&self) -> Value {
        let st = self.lock();
        Value::Array(
            st.entries
                .iter()
                .map(|e| {
                    let mut m = json!({"role": e.role.as_str(), "content": e.text(), "id": e.id});
                    if let Some(s) = e.status {
                        m["status"] = json!(s.as_str());
                    }
                    m
                })
                .collect(),
        )
    }

    /// The messages to send to the model, newest last, within `budget`
    /// bytes of JSON. Whole entries are dropped from the oldest end (a
    /// tool_use and its tool_result live in the same entry, so they are
    /// never separated), and the result always starts with a user message.
    pub fn history(&self, budget: usize) -> Vec<Message> {
        let st = self.lock();
        let mut start = st.entries.len();
        let mut used = 0usize;
        while start > 0 {
            let size = st.entries[start - 1].size;
            // Always keep the newest entry, even if it alone is over budget.
            if used + size > budget && start < st.entries.len() {
                break;
            }
            used += size;
            start -= 1;
        }
        while start < st.entries.len() && st.entries[start].role != Role::User {
            start += 1;
        }
        st.entries
            .range(start..)
            .flat_map(|e| e.messages.iter().cloned())
            .collect()
    }

    fn title(st: &State) -> String {
        let text = st
            .entries
            .iter()
            .find(|e| e.role == Role::User)
            .map(Entry::text)
            .unwrap_or_default();
        let line = text.split_whitespace().collect::<Vec<_>>().join(" ");
        match line.char_indices().nth(TITLE_CHARS) {
            Some((cut, _)) => format!("{}…", &line[..cut]),
            None => line,
        }
    }
}

/// Characters of the first message used as a conversation's title.
const TITLE_CHARS: usize = 80;

/// The budgets of the store (see the module doc).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_conversations: usize,
    pub max_messages: usize,
    pub max_bytes: usize,
    pub max_total_bytes: usize,
}

/// Every conversation is held by a socket or a running answer: no new one
/// can be made until one is released.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Full;

impl std::fmt::Display for Full {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("too many conversations in use; try again later")
    }
}

impl std::error::Error for Full {}

/// All conversations.
pub struct Conversations {
    map: Mutex<HashMap<String, Arc<Conversation>>>,
    limits: Limits,
    /// Bytes of every stored entry, all conversations.
    total: AtomicUsize,
    /// The journal under `DATA_DIR` once it is open and replayed; unset when
    /// memory-only, or when it could not be opened (`durable`).
    journal: OnceLock<Journal>,
    /// True while the journal is replayed: the store is not usable yet.
    loading: AtomicBool,
    /// Why there is no journal although one was asked for.
    journal_error: Mutex<Option<String>>,
}

/// A line of `GET /api/conversations`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Summary {
    pub id: String,
    pub title: String,
    /// RFC 3339, UTC.
    pub last_activity: String,
    pub message_count: usize,
}

impl Conversations {
    /// An empty store in memory only (see `start_journal` for durability).
    pub fn new(limits: Limits) -> Conversations {
        Conversations {
            map: Mutex::new(HashMap::new()),
            limits,
            total: AtomicUsize::new(0),
            journal: OnceLock::new(),
            loading: AtomicBool::new(false),
            journal_error: Mutex::new(None),
        }
    }

    fn map(&self) -> MutexGuard<'_, HashMap<String, Arc<Conversation>>> {
        lock(&self.map)
    }

    /// Creates a conversation with a new random id.
    pub fn create(&self, owner: Option<&str>) -> Result<Arc<Conversation>, Full> {
        let id = uuid::Uuid::new_v4().to_string();
        self.open(&id, owner)
    }

    /// The conversation `id` of `owner`. Each owner has its own ids: another
    /// owner's conversation of the same id does not exist for it.
    pub fn get(&self, id: &str, owner: Option<&str>) -> Option<Arc<Conversation>> {
        self.map().get(&key(owner, id)).cloned()
    }

    /// Opens `id` of `owner`, created if unknown (the contract: an unknown
    /// conversation id starts a new conversation); `Err(Full)` if it would
    /// have to be created and every slot is held.
    pub fn open(&self, id: &str, owner: Option<&str>) -> Result<Arc<Conversation>, Full> {
        let k = key(owner, id);
        let mut map = self.map();
        if let Some(c) = map.get(&k) {
            return Ok(c.clone());
        }
        let mut evicted = None;
        if map.len() >= self.limits.max_conversations {
            // Only conversations no open socket or running answer holds: the
            // map's own reference is then the only one.
            let victim = map
                .iter()
                .filter(|(_, c)| Arc::strong_count(c) == 1)
                .min_by_key(|(_, c)| c.last_active())
                .map(|(k, _)| k.clone());
            match victim {
                Some(victim) => {
                    log::info!("evicting an idle conversation (MAX_CONVERSATIONS reached)");
                    evicted = self.remove_locked(&mut map, &victim);
                }
                None => return Err(Full),
            }
        }
        let c = Arc::new(Conversation::new(id, owner.map(str::to_string)));
        map.insert(k, c.clone());
        drop(map);
        self.forget(evicted.as_slice());
        Ok(c)
    }

    /// Deletes a conversation `owner` may see; a running answer is
    /// cancelled first. False if there is none.
    pub fn delete(&self, id: &str, owner: Option<&str>) -> bool {
        let removed = self.remove_locked(&mut self.map(), &key(owner, id));
        self.forget(removed.as_slice());
        match removed {
            Some(c) => {
                let turn = c.lock().turn.clone();
                if let Some(turn) = turn {
                    turn.cancel.cancel();
                }
                true
            }
            None => false,
        }
    }

    fn remove_locked(
        &self,
        map: &mut HashMap<String, Arc<Conversation>>,
        key: &str,
    ) -> Option<Arc<Conversation>> {
        let c = map.remove(key)?;
        c.deleted.store(true, Ordering::SeqCst);
        let bytes = lock(&c.state).bytes;
        self.total.fetch_sub(bytes, Ordering::SeqCst);
        Some(c)
    }

    /// Writes the deletion of conversations already out of the map (called
    /// without the map's lock: the journal's comes first).
    fn forget(&self, removed: &[Arc<Conversation>]) {
        if let (Some(j), false) = (self.journal.get(), removed.is_empty()) {
            let mut w = j.begin();
            for c in removed {
                // Reported by the journal itself; a lost deletion only brings
                // an old conversation back.
                let _ = w.deleted(c.owner.as_deref(), &c.id);
            }
        }
    }

    /// The newest conversations `owner` may see, at most `limit`.
    pub fn list(&self, owner: Option<&str>, limit: usize) -> Vec<Summary> {
        let mut found: Vec<Arc<Conversation>> = self
            .map()
            .values()
            .filter(|c| c.owner.as_deref() == owner)
            .cloned()
            .collect();
        found.sort_by_key(|c| std::cmp::Reverse(c.last_active()));
        found
            .into_iter()
            .take(limit)
            .map(|c| {
                let last = c.last_active();
                let st = lock(&c.state);
                Summary {
                    id: c.id.clone(),
                    title: Conversation::title(&st),
                    last_activity: crate::clock::rfc3339(last / 1000),
                    message_count: st.entries.len(),
                }
            })
            .collect()
    }

    /// Appends an entry, within the budgets. It is in memory whatever
    /// happens; `Err` says it could not be written to the journal.
    pub fn push(&self, c: &Conversation, entry: Entry) -> Result<(), JournalError> {
        self.store(c, entry, false)
    }

    /// Stores a turn's answer and detaches the turn, under one lock, so a
    /// new message can neither see the turn as running nor slip in before it.
    /// Written to the journal before it returns: `done` comes after.
    pub fn finish_turn(&self, c: &Conversation, entry: Entry) -> Result<(), JournalError> {
        self.store(c, entry, true)
    }

    /// An answer with this entry id has started (so a crash brings it back
    /// as `interrupted`).
    pub fn answering(&self, c: &Conversation, entry_id: &str) -> Result<(), JournalError> {
        match self.journal.get() {
            Some(j) => j
                .begin()
                .answering(c.owner.as_deref(), &c.id, entry_id, unix_millis()),
            None => Ok(()),
        }
    }

    /// More of a running answer's text, for the journal.
    pub fn streamed(&self, entry_id: &str, text: &str) -> Result<(), JournalError> {
        match self.journal.get() {
            Some(j) => j.begin().text(entry_id, text),
            None => Ok(()),
        }
    }

    fn store(&self, c: &Conversation, entry: Entry, ends_turn: bool) -> Result<(), JournalError> {
        // The journal's lock first: a compaction cannot slip in between the
        // line and the change in memory.
        let mut journal = self.journal.get().map(Journal::begin);
        let saved = match journal.as_mut() {
            Some(w) if !c.is_deleted() => w.entry(c.owner.as_deref(), &c.id, &entry),
            _ => Ok(()),
        };
        {
            let mut st = c.lock();
            if ends_turn {
                st.turn = None;
            }
            let before = st.bytes;
            st.bytes += entry.size;
            st.entries.push_back(entry);
            trim(&mut st, self.limits.max_messages, self.limits.max_bytes);
            let after = st.bytes;
            // Both updates of `total` happen under this conversation's lock,
            // so its share never goes negative.
            self.total.fetch_add(after, Ordering::SeqCst);
            self.total.fetch_sub(before, Ordering::SeqCst);
        }
        drop(journal);
        if self.total_bytes() > self.limits.max_total_bytes {
            self.enforce_total(c);
        }
        saved
    }

    /// The answers running now, in every conversation.
    pub fn running_turns(&self) -> Vec<Arc<TurnHandle>> {
        let all: Vec<Arc<Conversation>> = self.map().values().cloned().collect();
        all.iter().filter_map(|c| c.lock().turn.clone()).collect()
    }

    /// Bytes of all stored entries.
    pub fn total_bytes(&self) -> usize {
        self.total.load(Ordering::SeqCst)
    }

    /// Brings the total back under budget: idle conversations first (oldest
    /// first, never `except`), then the oldest entries of the rest.
    fn enforce_total(&self, except: &Conversation) {
        let evicted = self.trim_total(except);
        self.forget(&evicted);
    }

    fn trim_total(&self, except: &Conversation) -> Vec<Arc<Conversation>> {
        let mut evicted = Vec::new();
        let mut map = self.map();
        let mut by_age: Vec<(String, Arc<Conversation>)> =
            map.iter().map(|(k, c)| (k.clone(), c.clone())).collect();
        by_age.sort_by_key(|(_, c)| c.last_active());
        let budget = self.limits.max_total_bytes;
        for (k, c) in &by_age {
            if self.total_bytes() <= budget {
                return evicted;
            }
            // `by_age` and the map hold it: nothing else does.
            if Arc::strong_count(c) == 2 && !std::ptr::eq(&**c, except) {
                log::info!("evicting an idle conversation (history over budget)");
                evicted.extend(self.remove_locked(&mut map, k));
            }
        }
        for (k, c) in &by_age {
            let over = self.total_bytes().saturating_sub(budget);
            if over == 0 {
                return evicted;
            }
            if map.contains_key(k) {
                let mut st = lock(&c.state);
                let before = st.bytes;
                trim(&mut st, usize::MAX, before.saturating_sub(over));
                self.total.fetch_sub(before - st.bytes, Ordering::SeqCst);
                if st.bytes < before {
                    log::warn!(
                        "conversation {}: oldest messages dropped (history over budget)",
                        c.id
                    );
                }
            }
        }
        evicted
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.map().len()
    }
}

/// The map key: each owner has its own ids. Owner names never contain the
/// separator (they are `token:` and hex digits).
fn key(owner: Option<&str>, id: &str) -> String {
    format!("{}\u{1f}{id}", owner.unwrap_or(""))
}

/// Drops the oldest entries past `max_entries` or `max_bytes`, keeping the
/// newest one, and the history starting with a user message.
fn trim(st: &mut State, max_entries: usize, max_bytes: usize) {
    while st.entries.len() > 1 && (st.entries.len() > max_entries || st.bytes > max_bytes) {
        drop_front(st);
        while st.entries.len() > 1 && st.entries.front().is_some_and(|e| e.role != Role::User) {
            drop_front(st);
        }
    }
}

fn drop_front(st: &mut State) {
    if let Some(e) = st.entries.pop_front() {
        st.bytes -= e.size;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max_conversations: usize, max_messages: usize) -> Limits {
        Limits {
            max_conversations,
            max_messages,
            max_bytes: usize::MAX,
            max_total_bytes: usize::MAX,
        }
    }

    fn entry(role: Role, text: &str) -> Entry {
        Entry::new(role, vec![Message::text(role, text)], None)
    }

    fn talk(all: &Conversations, c: &Conversation, turns: usize, size: usize) {
        for i in 0..turns {
            all.push(c, entry(Role::User, &format!("q{i}"))).unwrap();
            all.push(c, entry(Role::Assistant, &"a".repeat(size)))
                .unwrap();
        }
    }

    #[test]
    fn evicts_the_oldest_idle_conversation() {
        let all = Conversations::new(limits(2, 10));
        let a = all.create(None).unwrap().id.clone();
        let b = {
            let b = all.create(None).unwrap();
            b.last_active.store(0, Ordering::Relaxed);
            b.id.clone()
        };
        all.create(None).unwrap();
        assert_eq!(all.len(), 2);
        assert!(all.get(&a, None).is_some());
        assert!(all.get(&b, None).is_none());
    }

    #[test]
    fn a_held_conversation_is_never_evicted_and_the_cap_holds() {
        let all = Conversations::new(limits(1, 10));
        let held = all.open("open-socket", None).unwrap();
        assert_eq!(all.create(None).err(), Some(Full));
        assert_eq!(all.len(), 1);
        assert!(all.get("open-socket", None).is_some());
        drop(held);
        all.create(None).unwrap();
        assert!(all.get("open-socket", None).is_none());
    }

    #[test]
    fn history_is_bounded_and_starts_with_user() {
        let all = Conversations::new(limits(10, 3));
        let c = all.create(None).unwrap();
        talk(&all, &c, 3, 2);
        let msgs = c.messages_json();
        assert_eq!(msgs[0]["content"], "q2");
        assert_eq!(msgs.as_array().unwrap().len(), 2);

        let all = Conversations::new(limits(10, 100));
        let c = all.create(None).unwrap();
        for i in 0..10 {
            all.push(&c, entry(Role::User, &format!("question {i}")))
                .unwrap();
            all.push(&c, entry(Role::Assistant, &format!("answer {i}")))
                .unwrap();
        }
        let h = c.history(300);
        assert!(h.len() < 20 && !h.is_empty());
        assert_eq!(h[0].role, Role::User);
        assert_eq!(h.last().unwrap().shown_text(), "answer 9");
    }

    #[test]
    fn bytes_are_bounded_per_conversation_and_in_total() {
        let mut l = limits(100, 1000);
        l.max_bytes = 10_000;
        l.max_total_bytes = 25_000;
        let all = Conversations::new(l);
        let a = all.create(None).unwrap();
        talk(&all, &a, 20, 1000);
        assert!(lock(&a.state).bytes <= 10_000);
        assert!(lock(&a.state).entries.front().unwrap().role == Role::User);
        let b = all.create(None).unwrap();
        talk(&all, &b, 20, 1000);
        let c = all.create(None).unwrap();
        talk(&all, &c, 20, 1000);
        // Three held conversations of ~10 kB each: the oldest lost entries.
        assert!(all.total_bytes() <= 25_000, "{}", all.total_bytes());
        let sum: usize = [&a, &b, &c].iter().map(|c| lock(&c.state).bytes).sum();
        assert_eq!(sum, all.total_bytes());
        // Idle ones are evicted before held ones are trimmed.
        drop(a);
        let d = all.create(None).unwrap();
        talk(&all, &d, 20, 1000);
        assert!(all.total_bytes() <= 25_000);
        assert_eq!(all.len(), 3);
        // Deleting gives the bytes back.
        assert!(all.delete(&d.id, None));
        assert!(!all.delete(&d.id, None));
        assert!(d.is_deleted());
        let sum: usize = [&b, &c].iter().map(|c| lock(&c.state).bytes).sum();
        assert_eq!(sum, all.total_bytes());
    }

    #[test]
    fn the_text_is_stored_once_and_derived() {
        let e = Entry::new(
            Role::Assistant,
            vec![
                Message::text(Role::Assistant, "Hello "),
                Message::text(Role::Assistant, "world"),
            ],
            Some(AnswerStatus::Cancelled),
        );
        assert_eq!(e.text(), "Hello world");
        assert!(e.size() > 0);
    }

    #[test]
    fn owners_see_only_their_own() {
        let all = Conversations::new(limits(10, 10));
        let mine = all.open("c1", Some("alice")).unwrap();
        all.push(&mine, entry(Role::User, "hello there")).unwrap();
        assert!(all.get("c1", Some("bob")).is_none());
        assert!(!all.delete("c1", Some("bob")));
        assert_eq!(all.list(Some("bob"), 10), vec![]);
        // Bob's "c1" is his own.
        let his = all.open("c1", Some("bob")).unwrap();
        assert!(!Arc::ptr_eq(&mine, &his));
        assert_eq!(all.list(Some("bob"), 10)[0].message_count, 0);
        let listed = all.list(Some("alice"), 10);
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].title, "hello there");
        assert_eq!(listed[0].message_count, 1);
        assert!(all.get("c1", Some("alice")).is_some());
        assert!(all.get("c1", None).is_none());
    }

    #[test]
    fn ids_are_bounded() {
        assert!(valid_id("demo"));
        assert!(valid_id(&"x".repeat(MAX_ID_BYTES)));
        assert!(!valid_id(&"x".repeat(MAX_ID_BYTES + 1)));
        assert!(!valid_id(""));
        assert!(!valid_id("a\nb"));
    }

    #[test]
    fn titles_are_one_short_line() {
        let all = Conversations::new(limits(10, 10));
        let c = all.create(None).unwrap();
        all.push(
            &c,
            entry(Role::User, &format!("How  do\nI {}", "x".repeat(200))),
        )
        .unwrap();
        let t = &all.list(None, 1)[0].title;
        assert!(t.starts_with("How do I x"));
        assert_eq!(t.chars().count(), TITLE_CHARS + 1);
    }
}
