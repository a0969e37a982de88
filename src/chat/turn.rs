//! The turn: one user message answered to the end, on its own thread.
//!
//! A turn outlives the socket that started it: its events go to the
//! conversation's [`TurnHandle`], which keeps them (for a client that
//! reconnects) and writes them to every subscribed socket as they are
//! produced. Only [`crate::conversations::live::Cancel`] stops a turn. When
//! it ends, the answer is stored in the conversation and `done` is sent.
//!
//! The turn sees only its [`Chat`] context (tools, model client, store,
//! limits): no sockets, no HTTP, no model wire format.

use super::Chat;
use crate::chat::answer::{Answer, Publish, refuse_tool, run_tool};
use crate::chat::events::ServerEvent;
use crate::chat::model::{
    LanguageModel, ModelError, ModelReply, ModelRequest, StopReason, UnparsableCall,
};
use crate::chat::{offline, prompt};
use crate::config::LlmProvider;
use crate::conversations::live::{EventSink, TurnHandle};
use crate::conversations::{AnswerStatus, Conversation, Entry};
use crate::messages::{Block, Message, Role, tool_uses};
use crate::tools::ToolSpec;
use serde_json::Value;
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// Longest tool result text handed to the model; the rest is cut with a note.
const MAX_TOOL_RESULT_CHARS: usize = 100_000;

/// Why [`start`] refused to start a turn. Each is told to the client as an
/// `error` event.
#[derive(Debug, PartialEq, Eq)]
pub enum StartError {
    /// This conversation already has an answer running.
    Busy,
    /// `MAX_RUNNING_ANSWERS` answers are running in the whole service.
    ServiceBusy,
    /// The conversation was deleted while the socket was open.
    Deleted,
    Spawn(String),
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::Busy => f.write_str(
                "this conversation is busy: an answer is still in progress (send cancel to stop it)",
            ),
            StartError::ServiceBusy => f.write_str(
                "the service is busy: too many answers are running; try again in a few seconds",
            ),
            StartError::Deleted => {
                f.write_str("this conversation was deleted; open a new one to ask again")
            }
            StartError::Spawn(e) => write!(f, "cannot start the answer: {e}"),
        }
    }
}

/// Holds one of the `MAX_RUNNING_ANSWERS` places until dropped.
struct Running(Arc<Chat>);

impl Running {
    fn take(chat: &Arc<Chat>) -> Option<Running> {
        let max = chat.limits.max_running_answers;
        chat.running
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()
            .map(|_| Running(chat.clone()))
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Starts a turn for `text` on a new thread, with `sink` subscribed. Refused
/// while another turn of the same conversation runs, or when the service
/// already runs as many answers as it may.
pub fn start(
    chat: &Arc<Chat>,
    conversation: &Arc<Conversation>,
    text: String,
    repo_scope: Option<String>,
    sink: Arc<dyn EventSink>,
) -> Result<(), StartError> {
    if conversation.is_deleted() {
        return Err(StartError::Deleted);
    }
    let handle = Arc::new(TurnHandle::default());
    let running = {
        let mut st = conversation.lock();
        if st.turn.is_some() {
            return Err(StartError::Busy);
        }
        let running = Running::take(chat).ok_or(StartError::ServiceBusy)?;
        st.turn = Some(handle.clone());
        running
    };
    handle.subscribe(sink);
    let question = Entry::new(
        Role::User,
        vec![Message::text(Role::User, text.clone())],
        None,
    );
    let answer_id = uuid::Uuid::new_v4().to_string();
    let saved = chat
        .store
        .push(conversation, question)
        .and_then(|_| chat.store.answering(conversation, &answer_id));
    if let Err(e) = saved {
        handle.publish(&ServerEvent::error(&not_saved(&e)));
    }
    let turn = Turn {
        chat: chat.clone(),
        conversation: conversation.clone(),
        handle,
        answer_id,
    };
    let spawned = std::thread::Builder::new()
        .name("turn".into())
        .stack_size(1024 * 1024)
        .spawn(move || {
            turn.run(&text, repo_scope.as_deref());
            drop(running);
        });
    if let Err(e) = spawned {
        conversation.lock().turn = None;
        return Err(StartError::Spawn(e.to_string()));
    }
    Ok(())
}

struct Turn {
    chat: Arc<Chat>,
    conversation: Arc<Conversation>,
    handle: Arc<TurnHandle>,
    /// The id the answer is stored under, known from the start for the
    /// journal's record of a running answer.
    answer_id: String,
}

/// What a client is told when the journal could not take a change.
fn not_saved(e: &crate::conversations::journal::JournalError) -> String {
    format!(
        "this conversation is kept in memory but could not be saved to disk ({e}); it will not survive a restart"
    )
}

/// Streamed text on its way to the journal: a piece is written at once
/// when the last write is [`PROGRESS_EVERY`] old, otherwise with the next
/// such piece (or at the end of the round). A fast stream costs a few
/// writes a second, and a crash loses at most the text that arrived within
/// `PROGRESS_EVERY` of a write.
struct Progress<'a> {
    store: &'a crate::conversations::Conversations,
    entry: &'a str,
    pending: String,
    last: std::time::Instant,
}

const PROGRESS_EVERY: std::time::Duration = std::time::Duration::from_millis(100);

impl Progress<'_> {
    fn push(&mut self, text: &str) {
        self.pending.push_str(text);
        if self.last.elapsed() >= PROGRESS_EVERY {
            self.flush();
        }
    }

    fn flush(&mut self) {
        if !self.pending.is_empty() {
            // A failure is reported when the answer is stored.
            let _ = self.store.streamed(self.entry, &self.pending);
            self.pending.clear();
        }
        self.last = std::time::Instant::now();
    }
}

impl Turn {
    fn run(self, text: &str, repo: Option<&str>) {
        let publish = |e: &ServerEvent| self.handle.publish(e);
        // A bug must not leave the conversation busy for ever: a panic ends
        // the turn like an error does.
        let answered =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match &self.chat.model {
                Some(_) if self.chat.over_budget() => offline::answer(
                    &*self.chat.tools,
                    text,
                    repo,
                    &publish,
                    offline::BUDGET_SPENT,
                ),
                Some(model) => self.ask_model(model.as_ref(), repo, &publish),
                None => offline::answer(&*self.chat.tools, text, repo, &publish, offline::NO_MODEL),
            }));
        let answer = answered.unwrap_or_else(|_| {
            log::error!("the turn panicked; the answer is marked interrupted");
            publish(&ServerEvent::error(
                "internal error while answering; please try again",
            ));
            Answer {
                messages: Vec::new(),
                status: Some(AnswerStatus::Interrupted),
            }
        });
        let entry = Entry::new(Role::Assistant, answer.messages, answer.status)
            .with_id(self.answer_id.clone());
        // Stored (and written to the journal) before `done` is sent.
        if let Err(e) = self.chat.store.finish_turn(&self.conversation, entry) {
            publish(&ServerEvent::error(&not_saved(&e)));
        }
        publish(&ServerEvent::Done {
            message_id: &self.answer_id,
        });
    }

    /// Answers with the model. The turn's messages are appended to the
    /// history itself, so no round copies the history to send it; the
    /// history part is cut off again at the end.
    fn ask_model(&self, model: &dyn LanguageModel, repo: Option<&str>, publish: Publish) -> Answer {
        let history = self.conversation.history(self.chat.limits.history_budget);
        let start = history.len();
        let mut answer = self.rounds(model, repo, history, publish);
        answer.messages.drain(..start.min(answer.messages.len()));
        answer
    }

    fn rounds(
        &self,
        model: &dyn LanguageModel,
        repo: Option<&str>,
        history: Vec<Message>,
        publish: Publish,
    ) -> Answer {
        let max_rounds = self.chat.limits.max_tool_rounds;
        let system = prompt::system_prompt(repo);
        let tools: Vec<ToolSpec> = self.chat.tools.tools().unwrap_or_else(|e| {
            log::warn!("tool list unavailable ({e}); offering the documentation tools");
            crate::tools::documentation_tools()
        });
        let cancel = &self.handle.cancel;
        let mut answer = Answer {
            messages: history,
            status: None,
        };
        let mut progress = Progress {
            store: &self.chat.store,
            entry: &self.answer_id,
            pending: String::new(),
            // The first piece is written at once.
            last: std::time::Instant::now() - PROGRESS_EVERY,
        };

        for round in 1..=max_rounds {
            if round > 1 && self.chat.over_budget() {
                answer.note(
                    publish,
                    "\n\n[Stopped: today's Claude token budget (CLAUDE_DAILY_TOKEN_BUDGET) is used up.]",
                );
                answer.status = Some(AnswerStatus::Truncated);
                return answer;
            }
            let request = ModelRequest {
                system: &system,
                messages: &answer.messages,
                tools: &tools,
            };
            let mut round_text = String::new();
            let result = model.stream(&request, cancel, &mut |delta| {
                round_text.push_str(delta);
                publish(&ServerEvent::Text { content: delta });
                progress.push(delta);
            });
            progress.flush();
            if let Some(budget) = &self.chat.budget {
                budget.spend(spent(&result));
            }
            let message = match result {
                Ok(m) => m,
                Err(ModelError::Cancelled { .. }) => {
                    answer.push_partial(&round_text);
                    answer.status = Some(self.cancelled(publish));
                    return answer;
                }
                Err(ModelError::Interrupted { message, .. }) => {
                    publish(&ServerEvent::error(&message));
                    answer.push_partial(&round_text);
                    answer.status = Some(AnswerStatus::Interrupted);
                    return answer;
                }
                Err(ModelError::Http { message, .. }) | Err(ModelError::Connection(message)) => {
                    publish(&ServerEvent::error(&message));
                    answer.status = Some(AnswerStatus::Interrupted);
                    return answer;
                }
            };
            let wants_tools = matches!(
                &message.stop_reason,
                Some(StopReason::ToolUse | StopReason::PauseTurn)
            );
            let ModelReply {
                content,
                stop_reason,
                unparsable,
                ..
            } = message;
            let has_content = !content.is_empty();
            if has_content {
                answer.messages.push(Message::new(Role::Assistant, content));
            }
            match stop_reason {
                _ if wants_tools && round == max_rounds => {
                    answer.strip_unanswered_tool_use();
                    answer.note(
                        publish,
                        &format!(
                            "\n\n[Stopped: the answer needed more than {max_rounds} rounds of tool calls.]"
                        ),
                    );
                    answer.status = Some(AnswerStatus::Truncated);
                    return answer;
                }
                Some(StopReason::ToolUse) => {
                    let asked = match answer.messages.last() {
                        Some(m) if has_content => m.content.as_slice(),
                        _ => &[],
                    };
                    let results = self.run_tools(asked, &unparsable, publish);
                    if !results.is_empty() {
                        answer.messages.push(Message::new(Role::User, results));
                    }
                    if cancel.is_cancelled() {
                        answer.status = Some(self.cancelled(publish));
                        return answer;
                    }
                }
                Some(StopReason::PauseTurn) => {}
                Some(StopReason::MaxTokens) => {
                    answer.strip_unanswered_tool_use();
                    answer.note(
                        publish,
                        &format!(
                            "\n\n[The answer was truncated: {} reached the maximum number of tokens (CLAUDE_MAX_TOKENS).]",
                            speaker(model)
                        ),
                    );
                    answer.status = Some(AnswerStatus::Truncated);
                    return answer;
                }
                Some(StopReason::Refusal) => {
                    answer.note(
                        publish,
                        &format!("\n\n[This request was declined by {}.]", speaker(model)),
                    );
                    return answer;
                }
                _ => {
                    // A tool_use block without stop_reason tool_use is not run.
                    answer.strip_unanswered_tool_use();
                    return answer;
                }
            }
        }
        answer
    }

    /// How a cancelled answer ends: `cancelled` when the user asked,
    /// `interrupted` (and said so) when the service is stopping.
    fn cancelled(&self, publish: Publish) -> AnswerStatus {
        if self.handle.cancel.by_service() {
            publish(&ServerEvent::error(
                "the service stopped before the answer was complete",
            ));
            AnswerStatus::Interrupted
        } else {
            AnswerStatus::Cancelled
        }
    }

    /// Runs every tool_use block of `asked` once, in order, and returns the
    /// tool_result blocks for the next user message. After a cancel, the
    /// remaining blocks are answered as cancelled without running; a call
    /// whose arguments could not be parsed is answered with that error.
    fn run_tools(
        &self,
        asked: &[Block],
        unparsable: &[UnparsableCall],
        publish: Publish,
    ) -> Vec<Block> {
        let mut results = Vec::new();
        for (id, name, input) in tool_uses(asked) {
            let refused = unparsable.iter().find(|c| c.id == id);
            let (content, is_error) = if self.handle.cancel.is_cancelled() {
                ("Cancelled by the user.".to_string(), true)
            } else if let Some(call) = refused {
                refuse_tool(publish, id, name, input, &call.error);
                (call.error.clone(), true)
            } else {
                match run_tool(&*self.chat.tools, publish, id, name, input) {
                    Ok(value) => (tool_text(&value), false),
                    Err(msg) => (msg, true),
                }
            };
            results.push(Block::ToolResult {
                tool_use_id: id.to_string(),
                content,
                is_error,
            });
        }
        results
    }
}

impl Answer {
    /// Keeps the text streamed before an interruption in the history.
    fn push_partial(&mut self, text: &str) {
        if !text.trim().is_empty() {
            self.messages.push(Message::text(Role::Assistant, text));
        }
    }

    /// Removes tool_use blocks that have no tool_result after them (the last
    /// assistant message when the turn stops early), so the stored history
    /// stays valid for the API.
    fn strip_unanswered_tool_use(&mut self) {
        let Some(last) = self.messages.last_mut() else {
            return;
        };
        if last.role != Role::Assistant {
            return;
        }
        last.content.retain(|b| !matches!(b, Block::ToolUse { .. }));
        if last.content.is_empty() {
            self.messages.pop();
        }
    }
}

/// Tokens a request cost, whether it finished or not.
fn spent(result: &Result<ModelReply, ModelError>) -> u64 {
    match result {
        Ok(m) => m.usage.total(),
        Err(e) => e.usage().total(),
    }
}

/// Who wrote the answer, in notices.
fn speaker(model: &dyn LanguageModel) -> &'static str {
    match model.provider() {
        LlmProvider::Anthropic => "Claude",
        LlmProvider::OpenAi => "the model",
    }
}

/// A tool result as text for the model: strings as they are, other JSON compact.
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn unanswered_tool_use_is_stripped() {
        let tool = Block::ToolUse {
            id: "t".into(),
            name: "n".into(),
            input: json!({}),
        };
        let mut a = Answer::default();
        a.messages.push(Message::new(
            Role::Assistant,
            vec![Block::text("a"), tool.clone()],
        ));
        a.strip_unanswered_tool_use();
        assert_eq!(a.messages[0].content, vec![Block::text("a")]);
        let mut a = Answer::default();
        a.messages.push(Message::new(Role::Assistant, vec![tool]));
        a.strip_unanswered_tool_use();
        assert!(a.messages.is_empty());
    }

    #[test]
    fn long_tool_text_is_cut_on_a_char_boundary() {
        let t = tool_text(&json!("é".repeat(MAX_TOOL_RESULT_CHARS)));
        assert!(t.ends_with("[... result truncated]"));
        assert_eq!(tool_text(&json!({"a": 1})), "{\"a\":1}");
    }
}
