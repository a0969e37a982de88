//! Conversations, in memory behind one mutex, bounded.
//!
//! A conversation is a list of entries: each user message, and each
//! assistant answer with every API message the turn produced (assistant
//! blocks, tool_use, the user message of tool_result blocks), so a follow-up
//! question carries earlier tool results. A running turn is attached to its
//! conversation (see [`crate::chat::turn::TurnHandle`]) so that a client
//! reconnecting gets its events.
//!
//! Bounds: at most `max_conversations` (the least recently active one without a
//! running turn is evicted) and `max_history_messages` entries per
//! conversation (the oldest are dropped in user/assistant pairs). What is sent
//! to Claude is further bounded by [`Conversation::api_history`].

use crate::chat::turn::TurnHandle;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    User,
    Assistant,
}

/// One message as the frontend sees it, plus the API messages behind it.
#[derive(Debug, Clone)]
pub struct Entry {
    pub id: String,
    pub role: Role,
    /// The text shown to people.
    pub text: String,
    /// Anthropic API messages (`{"role", "content"}`) this entry stands for.
    pub api: Vec<Value>,
    /// `interrupted`, `cancelled` or `truncated` when the answer is incomplete.
    pub status: Option<&'static str>,
    /// Characters of `api` as JSON; set when the entry is stored, so the
    /// history budget is not re-serialised on every turn.
    pub api_chars: usize,
}

#[derive(Default)]
pub struct ConversationState {
    pub entries: Vec<Entry>,
    pub turn: Option<Arc<TurnHandle>>,
}

impl ConversationState {
    fn push(&mut self, mut entry: Entry, max_entries: usize) {
        entry.api_chars = entry.api.iter().map(|m| m.to_string().len()).sum();
        self.entries.push(entry);
        while self.entries.len() > max_entries {
            self.entries.remove(0);
            // Keep the history starting with a user message.
            while self
                .entries
                .first()
                .is_some_and(|e| e.role == Role::Assistant)
            {
                self.entries.remove(0);
            }
        }
    }
}

pub struct Conversation {
    state: Mutex<ConversationState>,
    last_active: Mutex<Instant>,
    max_entries: usize,
}

impl Conversation {
    fn new(max_entries: usize) -> Conversation {
        Conversation {
            state: Mutex::new(ConversationState::default()),
            last_active: Mutex::new(Instant::now()),
            max_entries,
        }
    }

    /// The state lock. A panic in another thread while holding it must not
    /// lose the conversation, so a poisoned lock is recovered.
    pub fn lock(&self) -> MutexGuard<'_, ConversationState> {
        self.touch();
        crate::sync::lock(&self.state)
    }

    fn touch(&self) {
        *crate::sync::lock(&self.last_active) = Instant::now();
    }

    fn idle_since(&self) -> Instant {
        *crate::sync::lock(&self.last_active)
    }

    /// Appends an entry, dropping the oldest ones past the bound.
    pub fn push(&self, entry: Entry) {
        self.lock().push(entry, self.max_entries);
    }

    /// Stores a turn's answer and detaches the turn, under one lock, so a
    /// new message can neither see the turn as running nor slip in before it.
    pub fn finish_turn(&self, entry: Entry) {
        let mut st = self.lock();
        st.turn = None;
        st.push(entry, self.max_entries);
    }

    /// `[{"role", "content", "id", "status"?}]` for `GET .../messages`.
    pub fn messages_json(&self) -> Value {
        let st = self.lock();
        Value::Array(
            st.entries
                .iter()
                .map(|e| {
                    let mut m = json!({
                        "role": match e.role { Role::User => "user", Role::Assistant => "assistant" },
                        "content": e.text,
                        "id": e.id,
                    });
                    if let Some(s) = e.status {
                        m["status"] = json!(s);
                    }
                    m
                })
                .collect(),
        )
    }

    /// The API messages to send to Claude, newest last, within
    /// `budget_chars` of JSON. Whole entries are dropped from the oldest end
    /// (a tool_use and its tool_result live in the same entry, so they are
    /// never separated), and the result always starts with a user message.
    pub fn api_history(&self, budget_chars: usize) -> Vec<Value> {
        let st = self.lock();
        let mut start = st.entries.len();
        let mut used = 0usize;
        while start > 0 {
            let size = st.entries[start - 1].api_chars;
            // Always keep the newest entry, even if it alone is over budget.
            if used + size > budget_chars && start < st.entries.len() {
                break;
            }
            used += size;
            start -= 1;
        }
        while start < st.entries.len() && st.entries[start].role != Role::User {
            start += 1;
        }
        st.entries[start..]
            .iter()
            .flat_map(|e| e.api.iter().cloned())
            .collect()
    }
}

/// All conversations.
pub struct Conversations {
    map: Mutex<HashMap<String, Arc<Conversation>>>,
    max_conversations: usize,
    max_entries: usize,
}

impl Conversations {
    pub fn new(max_conversations: usize, max_entries: usize) -> Conversations {
        Conversations {
            map: Mutex::new(HashMap::new()),
            max_conversations,
            max_entries,
        }
    }

    fn map(&self) -> MutexGuard<'_, HashMap<String, Arc<Conversation>>> {
        crate::sync::lock(&self.map)
    }

    /// Creates a conversation with a new id.
    pub fn create(&self) -> String {
        let id = uuid::Uuid::new_v4().to_string();
        self.get_or_create(&id);
        id
    }

    pub fn get(&self, id: &str) -> Option<Arc<Conversation>> {
        self.map().get(id).cloned()
    }

    /// The conversation with this id, created if unknown (the contract: an
    /// unknown conversation id starts a new conversation).
    pub fn get_or_create(&self, id: &str) -> Arc<Conversation> {
        let mut map = self.map();
        if let Some(c) = map.get(id) {
            return c.clone();
        }
        if map.len() >= self.max_conversations {
            // Only conversations no open socket or running turn holds: the
            // map's own reference is then the only one.
            let victim = map
                .iter()
                .filter(|(_, c)| Arc::strong_count(c) == 1)
                .min_by_key(|(_, c)| c.idle_since())
                .map(|(k, _)| k.clone());
            if let Some(k) = victim {
                log::info!("evicting idle conversation {k} (MAX_CONVERSATIONS reached)");
                map.remove(&k);
            }
        }
        let c = Arc::new(Conversation::new(self.max_entries));
        map.insert(id.to_string(), c.clone());
        c
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.map().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(role: Role, text: &str) -> Entry {
        let r = if role == Role::User {
            "user"
        } else {
            "assistant"
        };
        Entry {
            id: text.into(),
            role,
            text: text.into(),
            api: vec![json!({"role": r, "content": text})],
            status: None,
            api_chars: 0,
        }
    }

    #[test]
    fn evicts_the_oldest_idle_conversation() {
        let all = Conversations::new(2, 10);
        let a = all.create();
        std::thread::sleep(std::time::Duration::from_millis(5));
        let b = all.create();
        drop(all.get(&a).unwrap().lock());
        all.create();
        assert_eq!(all.len(), 2);
        assert!(all.get(&a).is_some());
        assert!(all.get(&b).is_none());
    }

    #[test]
    fn a_conversation_in_use_is_never_evicted() {
        let all = Conversations::new(1, 10);
        let held = all.get_or_create("open-socket");
        all.create();
        assert!(
            all.get("open-socket").is_some(),
            "a held conversation was evicted"
        );
        drop(held);
        all.create();
        assert!(all.get("open-socket").is_none());
    }

    #[test]
    fn history_is_bounded_and_starts_with_user() {
        let c = Conversation::new(3);
        for i in 0..3 {
            c.push(entry(Role::User, &format!("q{i}")));
            c.push(entry(Role::Assistant, &format!("a{i}")));
        }
        let msgs = c.messages_json();
        assert_eq!(msgs[0]["content"], "q2");
        assert_eq!(msgs.as_array().unwrap().len(), 2);
        let c = Conversation::new(100);
        for i in 0..10 {
            c.push(entry(Role::User, &format!("question {i}")));
            c.push(entry(Role::Assistant, &format!("answer {i}")));
        }
        let h = c.api_history(120);
        assert!(h.len() < 20 && !h.is_empty());
        assert_eq!(h[0]["role"], "user");
        assert_eq!(h.last().unwrap()["content"], "answer 9");
    }
}
