//! What every way of answering shares: the answer being built, and running
//! one tool between its `tool_use_start` and `tool_result` events. Used by
//! the model turn (`turn`) and the offline answer (`offline`) alike.

use crate::chat::events::ServerEvent;
use crate::conversations::AnswerStatus;
use crate::messages::{Block, Message, Role};
use crate::tools::{ToolError, ToolProvider};
use serde_json::{Value, json};
use std::time::Instant;

/// Sends one event to the answer's subscribers.
pub type Publish<'a> = &'a dyn Fn(&ServerEvent);

/// What an answer produced, to be stored as the assistant entry: every
/// message of the answer, and how it ended. The text people read is derived
/// from the messages' text blocks, so a notice for the user is a text block
/// too.
#[derive(Debug, Default)]
pub(crate) struct Answer {
    pub messages: Vec<Message>,
    pub status: Option<AnswerStatus>,
}

impl Answer {
    /// Streams `text` as a notice and keeps it in the answer.
    pub fn note(&mut self, publish: Publish, text: &str) {
        publish(&ServerEvent::Text { content: text });
        self.push_text(text);
    }

    /// Appends text to the last assistant message, or as a new one.
    pub fn push_text(&mut self, text: &str) {
        if text.is_empty() {
            return;
        }
        match self.messages.last_mut() {
            Some(m) if m.role == Role::Assistant => m.content.push(Block::text(text)),
            _ => self.messages.push(Message::text(Role::Assistant, text)),
        }
    }
}

/// Runs one tool between its `tool_use_start` and `tool_result` events. A
/// failure comes back as the message the user and the model see.
pub(crate) fn run_tool(
    tools: &dyn ToolProvider,
    publish: Publish,
    id: &str,
    name: &str,
    input: &Value,
) -> Result<Value, String> {
    publish(&ServerEvent::ToolUseStart {
        tool_id: id,
        name,
        input,
    });
    let started = Instant::now();
    let outcome = tools.call(name, input);
    let duration = started.elapsed().as_millis() as u64;
    match outcome {
        Ok(value) => {
            publish(&ServerEvent::ToolResult {
                tool_id: id,
                name,
                result: &shown(&value),
                duration,
                is_error: false,
            });
            Ok(value)
        }
        Err(e) => {
            let msg = tool_error_text(&e);
            publish(&ServerEvent::ToolResult {
                tool_id: id,
                name,
                result: &json!({ "error": msg }),
                duration,
                is_error: true,
            });
            Err(msg)
        }
    }
}

/// Largest tool result a `tool_result` event carries whole. Every event of a
/// running answer is kept for replay until it ends, so a result past this
/// (a huge document) is shown as a preview: `{"truncated": true, "bytes",
/// "preview"}`. The model still gets the result itself.
const MAX_EVENT_RESULT: usize = 64 * 1024;
const PREVIEW_CHARS: usize = 2000;

fn shown(value: &Value) -> std::borrow::Cow<'_, Value> {
    let text = value.to_string();
    if text.len() <= MAX_EVENT_RESULT {
        return std::borrow::Cow::Borrowed(value);
    }
    let preview: String = match value {
        Value::String(s) => s.chars().take(PREVIEW_CHARS).collect(),
        _ => text.chars().take(PREVIEW_CHARS).collect(),
    };
    std::borrow::Cow::Owned(json!({"truncated": true, "bytes": text.len(), "preview": preview}))
}

/// Answers a tool call without running it (its arguments could not be
/// read): the same two events, the result an error saying why.
pub(crate) fn refuse_tool(publish: Publish, id: &str, name: &str, input: &Value, why: &str) {
    publish(&ServerEvent::ToolUseStart {
        tool_id: id,
        name,
        input,
    });
    publish(&ServerEvent::ToolResult {
        tool_id: id,
        name,
        result: &json!({ "error": why }),
        duration: 0,
        is_error: true,
    });
}

fn tool_error_text(e: &ToolError) -> String {
    match e {
        ToolError::Unavailable(m) => format!("The documentation service is unavailable: {m}"),
        other => other.message().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_results_are_shown_as_a_preview() {
        let small = json!({"a": 1});
        assert_eq!(*shown(&small), small);
        let big = json!({"content": "é".repeat(MAX_EVENT_RESULT)});
        let s = shown(&big);
        assert_eq!(s["truncated"], true);
        assert!(s["bytes"].as_u64().unwrap() > MAX_EVENT_RESULT as u64);
        assert!(s.to_string().len() < 3 * PREVIEW_CHARS + 100);
    }

    #[test]
    fn notes_join_the_last_assistant_message() {
        let mut a = Answer::default();
        a.push_text("");
        assert!(a.messages.is_empty());
        a.note(&|_| {}, "one");
        a.push_text(" two");
        assert_eq!(a.messages.len(), 1);
        assert_eq!(a.messages[0].shown_text(), "one two");
        a.messages.push(Message::new(
            Role::User,
            vec![Block::ToolResult {
                tool_use_id: "t".into(),
                content: "x".into(),
                is_error: false,
            }],
        ));
        a.push_text("three");
        assert_eq!(a.messages.len(), 3);
        assert_eq!(a.messages[2], Message::text(Role::Assistant, "three"));
    }
}
