//! The messages of a conversation, typed: what the store keeps, what the
//! turn appends, what a language model is sent as history.
//!
//! The JSON form of [`Block`] and [`Message`] is the Messages API's
//! content-block form (`{"type": "text", "text"}`, `tool_use`,
//! `tool_result`), the richest of the providers' formats: Claude's history
//! goes out exactly as it came in, and [`Block::Other`] carries every block
//! this code does not model (thinking with its signature, server tools, a
//! text block with citations) verbatim, so it round-trips. The same form is
//! what a journal line stores. A provider with another wire format maps from
//! these types in its own module.

use serde::de::Error as _;
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    User,
    Assistant,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::User => "user",
            Role::Assistant => "assistant",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Block {
    Text {
        text: String,
    },
    ToolUse {
        id: String,
        name: String,
        input: Value,
    },
    ToolResult {
        tool_use_id: String,
        content: String,
        is_error: bool,
    },
    /// Any other block, or a known kind with fields not modelled here:
    /// kept as received.
    Other(Value),
}

impl Block {
    pub fn text(text: impl Into<String>) -> Block {
        Block::Text { text: text.into() }
    }

    /// The text a person reads, for a text block (also one kept as
    /// [`Block::Other`] because it carries citations).
    pub fn shown_text(&self) -> Option<&str> {
        match self {
            Block::Text { text } => Some(text),
            Block::Other(v) if v.get("type").and_then(Value::as_str) == Some("text") => {
                v.get("text").and_then(Value::as_str)
            }
            _ => None,
        }
    }

    /// Reads one block from its JSON form. Never fails: what is not one of
    /// the modelled shapes exactly is [`Block::Other`].
    pub fn from_value(value: Value) -> Block {
        let Value::Object(map) = value else {
            return Block::Other(value);
        };
        let str_field = |k: &str| map.get(k).and_then(Value::as_str);
        let only = |keys: &[&str]| map.keys().all(|k| keys.contains(&k.as_str()));
        let typed = match map.get("type").and_then(Value::as_str) {
            Some("text") if only(&["type", "text"]) => {
                str_field("text").map(|t| Block::text(t.to_string()))
            }
            Some("tool_use") if only(&["type", "id", "name", "input"]) => {
                match (str_field("id"), str_field("name"), map.get("input")) {
                    (Some(id), Some(name), Some(input @ Value::Object(_))) => {
                        Some(Block::ToolUse {
                            id: id.to_string(),
                            name: name.to_string(),
                            input: input.clone(),
                        })
                    }
                    _ => None,
                }
            }
            Some("tool_result") if only(&["type", "tool_use_id", "content", "is_error"]) => {
                let is_error = match map.get("is_error") {
                    None => Some(false),
                    Some(Value::Bool(b)) => Some(*b),
                    Some(_) => None,
                };
                match (str_field("tool_use_id"), str_field("content"), is_error) {
                    (Some(id), Some(content), Some(is_error)) => Some(Block::ToolResult {
                        tool_use_id: id.to_string(),
                        content: content.to_string(),
                        is_error,
                    }),
                    _ => None,
                }
            }
            _ => None,
        };
        typed.unwrap_or(Block::Other(Value::Object(map)))
    }
}

impl Serialize for Block {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Block::Text { text } => {
                let mut m = s.serialize_map(Some(2))?;
                m.serialize_entry("type", "text")?;
                m.serialize_entry("text", text)?;
                m.end()
            }
            Block::ToolUse { id, name, input } => {
                let mut m = s.serialize_map(Some(4))?;
                m.serialize_entry("type", "tool_use")?;
                m.serialize_entry("id", id)?;
                m.serialize_entry("name", name)?;
                m.serialize_entry("input", input)?;
                m.end()
            }
            Block::ToolResult {
                tool_use_id,
                content,
                is_error,
            } => {
                let mut m = s.serialize_map(Some(if *is_error { 4 } else { 3 }))?;
                m.serialize_entry("type", "tool_result")?;
                m.serialize_entry("tool_use_id", tool_use_id)?;
                m.serialize_entry("content", content)?;
                if *is_error {
                    m.serialize_entry("is_error", &true)?;
                }
                m.end()
            }
            Block::Other(v) => v.serialize(s),
        }
    }
}

impl<'de> Deserialize<'de> for Block {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Block, D::Error> {
        Ok(Block::from_value(Value::deserialize(d)?))
    }
}

/// One message: a role and its content blocks.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Message {
    pub role: Role,
    pub content: Vec<Block>,
}

impl Message {
    pub fn new(role: Role, content: Vec<Block>) -> Message {
        Message { role, content }
    }

    /// A message of one text block.
    pub fn text(role: Role, text: impl Into<String>) -> Message {
        Message::new(role, vec![Block::text(text)])
    }

    /// The text blocks joined: what a person reads of this message.
    pub fn shown_text(&self) -> String {
        self.content.iter().filter_map(Block::shown_text).collect()
    }
}

/// The tool calls among `content`, in order: (id, name, input).
pub fn tool_uses(content: &[Block]) -> impl Iterator<Item = (&str, &str, &Value)> {
    content.iter().filter_map(|b| match b {
        Block::ToolUse { id, name, input } => Some((id.as_str(), name.as_str(), input)),
        _ => None,
    })
}

impl<'de> Deserialize<'de> for Message {
    /// Also accepts the API's shorthand of a string for one text block.
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Message, D::Error> {
        #[derive(Deserialize)]
        struct Raw {
            role: Role,
            content: Value,
        }
        let raw = Raw::deserialize(d)?;
        let content = match raw.content {
            Value::String(text) => vec![Block::text(text)],
            Value::Array(items) => items.into_iter().map(Block::from_value).collect(),
            _ => return Err(D::Error::custom("content must be a string or a list")),
        };
        Ok(Message::new(raw.role, content))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn modelled_blocks_round_trip_in_the_api_form() {
        for v in [
            json!({"type": "text", "text": "hi"}),
            json!({"type": "tool_use", "id": "t1", "name": "search", "input": {"q": 1}}),
            json!({"type": "tool_result", "tool_use_id": "t1", "content": "ok"}),
            json!({"type": "tool_result", "tool_use_id": "t1", "content": "no", "is_error": true}),
        ] {
            let b = Block::from_value(v.clone());
            assert!(!matches!(b, Block::Other(_)), "{v}");
            assert_eq!(serde_json::to_value(&b).unwrap(), v);
        }
    }

    #[test]
    fn unknown_blocks_and_extra_fields_round_trip_verbatim() {
        for v in [
            json!({"type": "thinking", "thinking": "hm", "signature": "EqQB"}),
            json!({"type": "redacted_thinking", "data": "opaque"}),
            json!({"type": "text", "text": "Hi", "citations": [{"cited_text": "x"}]}),
            json!({"type": "tool_result", "tool_use_id": "t", "content": [{"type": "text", "text": "x"}]}),
            json!({"type": "tool_use", "id": "t", "name": "n", "input": "not an object"}),
            json!("not an object"),
        ] {
            let b = Block::from_value(v.clone());
            assert_eq!(b, Block::Other(v.clone()));
            assert_eq!(serde_json::to_value(&b).unwrap(), v);
        }
        let cited = Block::from_value(json!({"type": "text", "text": "Hi", "citations": [1]}));
        assert_eq!(cited.shown_text(), Some("Hi"));
    }

    #[test]
    fn messages_accept_the_string_shorthand() {
        let m: Message = serde_json::from_value(json!({"role": "user", "content": "q"})).unwrap();
        assert_eq!(m, Message::text(Role::User, "q"));
        assert_eq!(
            serde_json::to_value(&m).unwrap(),
            json!({"role": "user", "content": [{"type": "text", "text": "q"}]})
        );
        assert!(serde_json::from_value::<Message>(json!({"role": "user", "content": 3})).is_err());
        assert!(serde_json::from_value::<Message>(json!({"role": "bot", "content": "x"})).is_err());
    }
}
