//! The chat protocol, both directions, as types: the frames a client sends
//! and the events the service sends back (CONTRACT.md, "WebSocket chat").
//!
//! The transport is the WebSocket session's business (`http::ws`); the
//! turn only publishes [`ServerEvent`]s. Events borrow their strings, so
//! publishing a streamed delta copies it once, into the JSON text.

use serde::Serialize;
use serde_json::Value;

/// What a client may send, decoded and checked.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientFrame {
    /// A question; `repo_scope` when `context.scope` is `"repo"`.
    Message {
        content: String,
        repo_scope: Option<String>,
    },
    Ping,
    Cancel,
}

impl ClientFrame {
    /// Decodes one text frame. The error is the text of the `error` event
    /// the client gets (the connection stays usable).
    pub fn decode(text: &str) -> Result<ClientFrame, String> {
        let frame = match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(m)) => m,
            Ok(_) => {
                return Err(
                    "expected a JSON object such as {\"type\": \"message\", \"content\": \"...\"}"
                        .into(),
                );
            }
            Err(e) => return Err(format!("invalid JSON: {e}")),
        };
        match frame.get("type").and_then(Value::as_str) {
            Some("ping") => Ok(ClientFrame::Ping),
            Some("cancel") => Ok(ClientFrame::Cancel),
            Some("message") => {
                let content = match frame.get("content") {
                    Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
                    Some(Value::String(_)) => return Err("empty message".into()),
                    Some(_) => return Err("\"content\" must be a string".into()),
                    None => return Err("missing \"content\"".into()),
                };
                let context = frame.get("context");
                let field = |k: &str| context.and_then(|c| c.get(k)).and_then(Value::as_str);
                let repo_scope = match (field("scope"), field("repoName")) {
                    (Some("repo"), Some(r)) if !r.trim().is_empty() => Some(r.trim().to_string()),
                    (Some("repo"), _) => {
                        return Err("context.scope \"repo\" needs a repoName".into());
                    }
                    _ => None,
                };
                Ok(ClientFrame::Message {
                    content,
                    repo_scope,
                })
            }
            Some(other) => Err(format!(
                "unknown message type {other:?}; expected message, ping or cancel"
            )),
            None => Err("missing \"type\"; expected message, ping or cancel".into()),
        }
    }
}

/// What the service sends. The field names are the contract's.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerEvent<'a> {
    /// A piece of the answer, as soon as it exists.
    Text {
        content: &'a str,
    },
    /// Just before a tool runs, with its full input.
    ToolUseStart {
        #[serde(rename = "toolId")]
        tool_id: &'a str,
        name: &'a str,
        input: &'a Value,
    },
    /// A tool's result; a failed tool has `isError` and `{"error": ...}`.
    ToolResult {
        #[serde(rename = "toolId")]
        tool_id: &'a str,
        name: &'a str,
        result: &'a Value,
        /// Milliseconds.
        duration: u64,
        #[serde(rename = "isError", skip_serializing_if = "std::ops::Not::not")]
        is_error: bool,
    },
    /// The answer is complete (also after a cancel or an error).
    Done {
        #[serde(rename = "messageId")]
        message_id: &'a str,
    },
    /// The turn failed or a frame was bad; the connection stays open.
    /// `retryAfter` (seconds) when the refusal is a rate limit or a busy
    /// service.
    Error {
        message: &'a str,
        #[serde(rename = "retryAfter", skip_serializing_if = "Option::is_none")]
        retry_after: Option<u64>,
    },
    Pong,
}

impl<'a> ServerEvent<'a> {
    pub fn error(message: &'a str) -> ServerEvent<'a> {
        ServerEvent::Error {
            message,
            retry_after: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn wire(e: &ServerEvent) -> Value {
        serde_json::to_value(e).unwrap()
    }

    #[test]
    fn events_have_the_contract_shapes() {
        let input = json!({"query": "x"});
        let result = json!({"error": "boom"});
        assert_eq!(
            wire(&ServerEvent::Text { content: "hi" }),
            json!({"type": "text", "content": "hi"})
        );
        assert_eq!(
            wire(&ServerEvent::ToolUseStart {
                tool_id: "t",
                name: "search_documentation",
                input: &input
            }),
            json!({"type": "tool_use_start", "toolId": "t", "name": "search_documentation", "input": {"query": "x"}})
        );
        assert_eq!(
            wire(&ServerEvent::ToolResult {
                tool_id: "t",
                name: "n",
                result: &input,
                duration: 3,
                is_error: false
            }),
            json!({"type": "tool_result", "toolId": "t", "name": "n", "result": {"query": "x"}, "duration": 3})
        );
        assert_eq!(
            wire(&ServerEvent::ToolResult {
                tool_id: "t",
                name: "n",
                result: &result,
                duration: 3,
                is_error: true
            })["isError"],
            true
        );
        assert_eq!(
            wire(&ServerEvent::Done { message_id: "m" }),
            json!({"type": "done", "messageId": "m"})
        );
        assert_eq!(
            wire(&ServerEvent::error("bad")),
            json!({"type": "error", "message": "bad"})
        );
        assert_eq!(wire(&ServerEvent::Pong), json!({"type": "pong"}));
    }

    #[test]
    fn frames_decode_or_say_what_is_wrong() {
        assert_eq!(
            ClientFrame::decode(r#"{"type":"ping"}"#),
            Ok(ClientFrame::Ping)
        );
        assert_eq!(
            ClientFrame::decode(
                r#"{"type":"message","content":"q","context":{"scope":"repo","repoName":" a "}}"#
            ),
            Ok(ClientFrame::Message {
                content: "q".into(),
                repo_scope: Some("a".into())
            })
        );
        assert_eq!(
            ClientFrame::decode(r#"{"type":"message","content":"q","context":{"scope":"all"}}"#),
            Ok(ClientFrame::Message {
                content: "q".into(),
                repo_scope: None
            })
        );
        for (frame, says) in [
            ("nope", "invalid JSON"),
            ("[1]", "expected a JSON object"),
            (r#"{"content":"x"}"#, "missing \"type\""),
            (r#"{"type":"shout"}"#, "unknown message type \"shout\""),
            (r#"{"type":"message"}"#, "missing \"content\""),
            (r#"{"type":"message","content":"  "}"#, "empty message"),
            (r#"{"type":"message","content":1}"#, "must be a string"),
            (
                r#"{"type":"message","content":"q","context":{"scope":"repo"}}"#,
                "needs a repoName",
            ),
        ] {
            let e = ClientFrame::decode(frame).unwrap_err();
            assert!(e.contains(says), "{frame}: {e}");
        }
    }
}
