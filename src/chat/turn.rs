//! The turn: one user message answered to the end, on its own thread.
//!
//! A turn outlives the socket that started it: its events go to a
//! [`TurnHandle`], which keeps them (for a client that reconnects) and writes
//! them to every subscribed socket as they are produced. Only
//! [`TurnHandle::cancel`] stops a turn. When it ends, the answer is stored in
//! the conversation and `done` is sent.
//!
//! The turn does not know about WebSockets (subscribers are [`EventSink`]s)
//! nor about the Anthropic wire format (that is `chat::claude`).

use crate::app::App;
use crate::chat::claude::{
    AssistantMessage, Cancel, ClaudeClient, ClaudeError, MessagesRequest, StopReason,
};
use crate::chat::{offline, prompt};
use crate::conversations::{Conversation, Entry, Role};
use crate::tools::{ToolError, ToolProvider, ToolSpec};
use serde::Serialize;
use serde_json::{Value, json};
use std::sync::{Arc, Mutex};
use std::time::Instant;

/// Where a turn's events go: one open WebSocket. `send` returns false when the
/// receiver is gone, and it is then dropped from the turn.
pub trait EventSink: Send + Sync {
    fn send(&self, event: &str) -> bool;
}

/// `{"type": "text", "content"}`, the event sent per streamed delta: built
/// without an intermediate JSON map.
#[derive(Serialize)]
struct TextEvent<'a> {
    r#type: &'static str,
    content: &'a str,
}

/// Longest tool result text handed to Claude; the rest is cut with a note.
const MAX_TOOL_RESULT_CHARS: usize = 100_000;

#[derive(Default)]
struct TurnLog {
    events: Vec<Arc<str>>,
    subscribers: Vec<Arc<dyn EventSink>>,
}

/// A running turn, attached to its conversation while it runs.
pub struct TurnHandle {
    pub cancel: Arc<Cancel>,
    log: Mutex<TurnLog>,
}

impl TurnHandle {
    fn new() -> TurnHandle {
        TurnHandle {
            cancel: Cancel::new(),
            log: Mutex::new(TurnLog::default()),
        }
    }

    /// Records an event and writes it to every subscriber at once. Writing
    /// under the log lock keeps each subscriber's order: its replay and the
    /// live events never interleave.
    pub fn publish(&self, event: &impl Serialize) {
        // Events are built from our own strings and JSON values: serialising
        // them cannot fail.
        let text: Arc<str> = Arc::from(serde_json::to_string(event).unwrap_or_default());
        let mut log = crate::sync::lock(&self.log);
        log.subscribers.retain(|s| s.send(&text));
        log.events.push(text);
    }

    /// Replays the events so far to `sink`, then keeps it for the live ones.
    pub fn subscribe(&self, sink: Arc<dyn EventSink>) {
        let mut log = crate::sync::lock(&self.log);
        if log.events.iter().all(|e| sink.send(e)) {
            log.subscribers.push(sink);
        }
    }

    pub fn unsubscribe(&self, sink: &Arc<dyn EventSink>) {
        let mut log = crate::sync::lock(&self.log);
        log.subscribers.retain(|s| !Arc::ptr_eq(s, sink));
    }
}

/// Why [`start`] refused to start a turn.
#[derive(Debug, PartialEq, Eq)]
pub enum StartError {
    Busy,
    Spawn(String),
}

/// Starts a turn for `text` on a new thread, with `sink` subscribed. Refused
/// while another turn of the same conversation runs.
pub fn start(
    app: &Arc<App>,
    conversation: &Arc<Conversation>,
    text: String,
    repo_scope: Option<String>,
    sink: Arc<dyn EventSink>,
) -> Result<(), StartError> {
    let handle = Arc::new(TurnHandle::new());
    {
        let mut st = conversation.lock();
        if st.turn.is_some() {
            return Err(StartError::Busy);
        }
        st.turn = Some(handle.clone());
    }
    handle.subscribe(sink);
    conversation.push(Entry {
        id: uuid::Uuid::new_v4().to_string(),
        role: Role::User,
        text: text.clone(),
        api: vec![json!({"role": "user", "content": text})],
        status: None,
        api_chars: 0,
    });
    let turn = Turn {
        app: app.clone(),
        conversation: conversation.clone(),
        handle: handle.clone(),
    };
    let spawned = std::thread::Builder::new()
        .name("turn".into())
        .stack_size(1024 * 1024)
        .spawn(move || turn.run(&text, repo_scope.as_deref()));
    if let Err(e) = spawned {
        conversation.lock().turn = None;
        return Err(StartError::Spawn(e.to_string()));
    }
    Ok(())
}

struct Turn {
    app: Arc<App>,
    conversation: Arc<Conversation>,
    handle: Arc<TurnHandle>,
}

/// What a turn produced, to be stored as the assistant entry.
pub(crate) struct Answer {
    pub text: String,
    pub api: Vec<Value>,
    pub status: Option<&'static str>,
}

impl Turn {
    fn run(self, text: &str, repo: Option<&str>) {
        // A bug must not leave the conversation busy for ever: a panic ends
        // the turn like an error does.
        let answered =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match &self.app.claude {
                Some(claude) => self.ask_claude(claude, repo),
                None => offline::answer(&*self.app.tools, text, repo, &|e| self.handle.publish(e)),
            }));
        let answer = answered.unwrap_or_else(|_| {
            log::error!("the turn panicked; the answer is marked interrupted");
            self.error("internal error while answering; please try again");
            Answer {
                text: String::new(),
                api: Vec::new(),
                status: Some("interrupted"),
            }
        });
        let id = uuid::Uuid::new_v4().to_string();
        self.conversation.finish_turn(Entry {
            id: id.clone(),
            role: Role::Assistant,
            text: answer.text,
            api: answer.api,
            status: answer.status,
            api_chars: 0,
        });
        self.handle
            .publish(&json!({"type": "done", "messageId": id}));
    }

    /// Answers with Claude. The turn's API messages are appended to the
    /// history itself, so no round copies the history to send it.
    fn ask_claude(&self, claude: &ClaudeClient, repo: Option<&str>) -> Answer {
        let history = self
            .conversation
            .api_history(self.app.config.history_budget_chars);
        let start = history.len();
        let mut answer = self.claude_rounds(claude, repo, history);
        answer.api.drain(..start.min(answer.api.len()));
        answer
    }

    fn claude_rounds(
        &self,
        claude: &ClaudeClient,
        repo: Option<&str>,
        history: Vec<Value>,
    ) -> Answer {
        let cfg = &self.app.config;
        let system = prompt::system_prompt(repo);
        let tools: Vec<ToolSpec> = self.app.tools.tools().unwrap_or_else(|e| {
            log::warn!("tool list unavailable ({e}); offering the documentation tools");
            crate::tools::documentation_tools()
        });
        let cancel = &self.handle.cancel;
        let mut answer = Answer {
            text: String::new(),
            api: history,
            status: None,
        };

        for round in 1..=cfg.max_tool_rounds {
            let request = MessagesRequest {
                system: &system,
                messages: &answer.api,
                tools: &tools,
            };
            let mut round_text = String::new();
            let result = claude.stream(&request, cancel, &mut |delta| {
                round_text.push_str(delta);
                self.handle.publish(&TextEvent {
                    r#type: "text",
                    content: delta,
                });
            });
            answer.text.push_str(&round_text);
            let message = match result {
                Ok(m) => m,
                Err(ClaudeError::Cancelled { .. }) => {
                    push_partial(&mut answer.api, &round_text);
                    answer.status = Some("cancelled");
                    return answer;
                }
                Err(ClaudeError::Interrupted { message, .. }) => {
                    self.error(&message);
                    push_partial(&mut answer.api, &round_text);
                    answer.status = Some("interrupted");
                    return answer;
                }
                Err(ClaudeError::Http { message, .. }) | Err(ClaudeError::Connection(message)) => {
                    self.error(&message);
                    answer.status = Some("interrupted");
                    return answer;
                }
            };
            if !message.content.is_empty() {
                answer
                    .api
                    .push(json!({"role": "assistant", "content": message.content}));
            }
            match message.stop_reason {
                Some(StopReason::ToolUse | StopReason::PauseTurn)
                    if round == cfg.max_tool_rounds =>
                {
                    strip_unanswered_tool_use(&mut answer.api);
                    self.note(
                        &mut answer,
                        &format!(
                            "\n\n[Stopped: the answer needed more than {} rounds of tool calls.]",
                            cfg.max_tool_rounds
                        ),
                    );
                    answer.status = Some("truncated");
                    return answer;
                }
                Some(StopReason::ToolUse) => {
                    let results = self.run_tools(&message);
                    if !results.is_empty() {
                        answer.api.push(json!({"role": "user", "content": results}));
                    }
                    if cancel.is_cancelled() {
                        answer.status = Some("cancelled");
                        return answer;
                    }
                }
                Some(StopReason::PauseTurn) => {}
                Some(StopReason::MaxTokens) => {
                    strip_unanswered_tool_use(&mut answer.api);
                    self.note(
                        &mut answer,
                        "\n\n[The answer was truncated: Claude reached the maximum number of tokens (CLAUDE_MAX_TOKENS).]",
                    );
                    answer.status = Some("truncated");
                    return answer;
                }
                Some(StopReason::Refusal) => {
                    self.note(&mut answer, "\n\n[Claude declined to answer this request.]");
                    return answer;
                }
                _ => {
                    // A tool_use block without stop_reason tool_use is not run.
                    strip_unanswered_tool_use(&mut answer.api);
                    return answer;
                }
            }
        }
        answer
    }

    /// Runs every tool_use block of `message` once, in order, and returns the
    /// tool_result blocks for the next user message. After a cancel, the
    /// remaining blocks are answered as cancelled without running.
    fn run_tools(&self, message: &AssistantMessage) -> Vec<Value> {
        let mut results = Vec::new();
        for block in message.tool_uses() {
            let id = block["id"].as_str().unwrap_or_default();
            let name = block["name"].as_str().unwrap_or_default();
            let input = block.get("input").cloned().unwrap_or_else(|| json!({}));
            if self.handle.cancel.is_cancelled() {
                results.push(json!({"type": "tool_result", "tool_use_id": id, "content": "Cancelled by the user.", "is_error": true}));
                continue;
            }
            let publish = |e: &Value| self.handle.publish(e);
            match run_tool(&*self.app.tools, &publish, id, name, &input) {
                Ok(value) => results.push(json!({"type": "tool_result", "tool_use_id": id, "content": tool_text(&value)})),
                Err(msg) => results.push(json!({"type": "tool_result", "tool_use_id": id, "content": msg, "is_error": true})),
            }
        }
        results
    }

    fn error(&self, message: &str) {
        self.handle
            .publish(&json!({"type": "error", "message": message}));
    }

    /// A notice for the user, streamed as text and kept in the answer.
    fn note(&self, answer: &mut Answer, text: &str) {
        self.handle
            .publish(&json!({"type": "text", "content": text}));
        answer.text.push_str(text);
    }
}

/// Runs one tool between its `tool_use_start` and `tool_result` events (the
/// same for a Claude turn and the offline answer). A failure comes back as
/// the message the user and Claude see.
pub(crate) fn run_tool(
    tools: &dyn ToolProvider,
    publish: &dyn Fn(&Value),
    id: &str,
    name: &str,
    input: &Value,
) -> Result<Value, String> {
    publish(&json!({"type": "tool_use_start", "toolId": id, "name": name, "input": input}));
    let started = Instant::now();
    let outcome = tools.call(name, input);
    let duration = started.elapsed().as_millis() as u64;
    match outcome {
        Ok(value) => {
            publish(
                &json!({"type": "tool_result", "toolId": id, "name": name, "result": value, "duration": duration}),
            );
            Ok(value)
        }
        Err(e) => {
            let msg = tool_error_text(&e);
            publish(
                &json!({"type": "tool_result", "toolId": id, "name": name, "result": {"error": msg}, "isError": true, "duration": duration}),
            );
            Err(msg)
        }
    }
}

fn tool_error_text(e: &ToolError) -> String {
    match e {
        ToolError::Unavailable(m) => format!("The documentation service is unavailable: {m}"),
        other => other.message().to_string(),
    }
}

/// A tool result as text for Claude: strings as they are, other JSON compact.
fn tool_text(value: &Value) -> String {
    let mut text = match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    if text.len() > MAX_TOOL_RESULT_CHARS {
        let mut cut = MAX_TOOL_RESULT_CHARS;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
        text.push_str("\n[... result truncated]");
    }
    text
}

/// Keeps the text streamed before an interruption in the history.
fn push_partial(api: &mut Vec<Value>, text: &str) {
    if !text.trim().is_empty() {
        api.push(json!({"role": "assistant", "content": [{"type": "text", "text": text}]}));
    }
}

/// Removes tool_use blocks that have no tool_result after them (the last
/// assistant message when the turn stops early), so the stored history stays
/// valid for the API.
fn strip_unanswered_tool_use(api: &mut Vec<Value>) {
    let Some(last) = api.last_mut() else { return };
    if last["role"] != "assistant" {
        return;
    }
    if let Some(blocks) = last["content"].as_array_mut() {
        blocks.retain(|b| b["type"] != "tool_use");
        if blocks.is_empty() {
            api.pop();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unanswered_tool_use_is_stripped() {
        let mut api = vec![
            json!({"role": "assistant", "content": [{"type": "text", "text": "a"}, {"type": "tool_use", "id": "t"}]}),
        ];
        strip_unanswered_tool_use(&mut api);
        assert_eq!(api[0]["content"].as_array().unwrap().len(), 1);
        let mut api =
            vec![json!({"role": "assistant", "content": [{"type": "tool_use", "id": "t"}]})];
        strip_unanswered_tool_use(&mut api);
        assert!(api.is_empty());
    }

    #[test]
    fn long_tool_text_is_cut_on_a_char_boundary() {
        let t = tool_text(&json!("é".repeat(MAX_TOOL_RESULT_CHARS)));
        assert!(t.ends_with("[... result truncated]"));
        assert_eq!(tool_text(&json!({"a": 1})), "{\"a\":1}");
    }
}
