//! The typed history as chat-completions messages: the system prompt as a
//! `system` message, an assistant message's text and tool_use blocks as one
//! message with `content` and `tool_calls` (arguments as a JSON string), a
//! user message's tool_result blocks as one `role: "tool"` message each.
//! Blocks only Claude understands ([`Block::Other`]: thinking, server tools)
//! are left out; a text block kept as `Other` for its citations still
//! counts as text.

use crate::messages::{Block, Message, Role};
use serde::Serialize;
use std::borrow::Cow;

#[derive(Debug, Serialize, PartialEq)]
#[serde(tag = "role", rename_all = "lowercase")]
pub(super) enum ChatMessage<'a> {
    System {
        content: &'a str,
    },
    User {
        content: String,
    },
    Assistant {
        /// `null` when the message only calls tools.
        content: Option<String>,
        #[serde(skip_serializing_if = "Vec::is_empty")]
        tool_calls: Vec<ToolCall<'a>>,
    },
    Tool {
        tool_call_id: &'a str,
        content: Cow<'a, str>,
    },
}

#[derive(Debug, Serialize, PartialEq)]
pub(super) struct ToolCall<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    function: Function<'a>,
}

#[derive(Debug, Serialize, PartialEq)]
struct Function<'a> {
    name: &'a str,
    /// The input object as JSON text, as the API wants it.
    arguments: String,
}

/// `system` first (when not empty), then the history in order.
pub(super) fn messages<'a>(system: &'a str, history: &'a [Message]) -> Vec<ChatMessage<'a>> {
    let mut out = Vec::with_capacity(history.len() + 1);
    if !system.is_empty() {
        out.push(ChatMessage::System { content: system });
    }
    for message in history {
        match message.role {
            Role::Assistant => assistant(message, &mut out),
            Role::User => user(message, &mut out),
        }
    }
    out
}

fn assistant<'a>(message: &'a Message, out: &mut Vec<ChatMessage<'a>>) {
    let text = message.shown_text();
    let tool_calls: Vec<ToolCall> = message
        .content
        .iter()
        .filter_map(|b| match b {
            Block::ToolUse { id, name, input } => Some(ToolCall {
                id,
                kind: "function",
                function: Function {
                    name,
                    arguments: input.to_string(),
                },
            }),
            _ => None,
        })
        .collect();
    if text.is_empty() && tool_calls.is_empty() {
        return;
    }
    out.push(ChatMessage::Assistant {
        content: (!text.is_empty()).then_some(text),
        tool_calls,
    });
}

/// Tool results first (they answer the assistant message before), then
/// the user's text, if any.
fn user<'a>(message: &'a Message, out: &mut Vec<ChatMessage<'a>>) {
    for block in &message.content {
        if let Block::ToolResult {
            tool_use_id,
            content,
            is_error,
        } = block
        {
            // The format has no error flag: say it in the text.
            let content = if *is_error {
                Cow::Owned(format!("Error: {content}"))
            } else {
                Cow::Borrowed(content.as_str())
            };
            out.push(ChatMessage::Tool {
                tool_call_id: tool_use_id,
                content,
            });
        }
    }
    let text = message.shown_text();
    if !text.is_empty() {
        out.push(ChatMessage::User { content: text });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn wire(system: &str, history: &[Message]) -> Value {
        serde_json::to_value(messages(system, history)).unwrap()
    }

    #[test]
    fn a_tool_round_maps_to_tool_calls_and_tool_messages() {
        let history = vec![
            Message::text(Role::User, "How do I deploy?"),
            Message::new(
                Role::Assistant,
                vec![
                    Block::Other(json!({"type": "thinking", "thinking": "hm", "signature": "s"})),
                    Block::text("Let me look."),
                    Block::ToolUse {
                        id: "call_1".into(),
                        name: "search_documentation".into(),
                        input: json!({"query": "deploy", "limit": 3}),
                    },
                    Block::ToolUse {
                        id: "call_2".into(),
                        name: "list_repositories".into(),
                        input: json!({}),
                    },
                ],
            ),
            Message::new(
                Role::User,
                vec![
                    Block::ToolResult {
                        tool_use_id: "call_1".into(),
                        content: "[{\"path\":\"deploy.md\"}]".into(),
                        is_error: false,
                    },
                    Block::ToolResult {
                        tool_use_id: "call_2".into(),
                        content: "unavailable".into(),
                        is_error: true,
                    },
                ],
            ),
            Message::new(
                Role::Assistant,
                vec![Block::Other(
                    json!({"type": "text", "text": "See deploy.md.", "citations": [1]}),
                )],
            ),
            // Only a Claude-only block: nothing to send.
            Message::new(
                Role::Assistant,
                vec![Block::Other(
                    json!({"type": "redacted_thinking", "data": "x"}),
                )],
            ),
        ];
        let got = wire("You help.", &history);
        assert_eq!(
            got,
            json!([
                {"role": "system", "content": "You help."},
                {"role": "user", "content": "How do I deploy?"},
                {"role": "assistant", "content": "Let me look.", "tool_calls": [
                    {"id": "call_1", "type": "function", "function": {"name": "search_documentation",
                        "arguments": "{\"limit\":3,\"query\":\"deploy\"}"}},
                    {"id": "call_2", "type": "function", "function": {"name": "list_repositories",
                        "arguments": "{}"}},
                ]},
                {"role": "tool", "tool_call_id": "call_1", "content": "[{\"path\":\"deploy.md\"}]"},
                {"role": "tool", "tool_call_id": "call_2", "content": "Error: unavailable"},
                {"role": "assistant", "content": "See deploy.md."},
            ])
        );
        // The arguments string is the input object again.
        let args = got[2]["tool_calls"][0]["function"]["arguments"]
            .as_str()
            .unwrap();
        assert_eq!(
            serde_json::from_str::<Value>(args).unwrap(),
            json!({"query": "deploy", "limit": 3})
        );
    }

    #[test]
    fn tool_only_assistant_messages_have_null_content() {
        let history = vec![Message::new(
            Role::Assistant,
            vec![Block::ToolUse {
                id: "c".into(),
                name: "n".into(),
                input: json!({}),
            }],
        )];
        let got = wire("", &history);
        assert_eq!(got[0]["role"], "assistant");
        assert_eq!(got[0]["content"], Value::Null);
        assert_eq!(got.as_array().unwrap().len(), 1);
    }
}
