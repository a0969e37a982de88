//! The seam between the turn and a language model: one streaming request
//! in, the assistant's reply (or why there is none) out, in one vocabulary
//! whatever the provider.
//!
//! The turn (`chat::turn`) speaks only these types. Each provider module
//! (`chat::claude`, `chat::openai`) maps them to and from its own wire
//! format and is the only one that knows it; `chat::upstream` holds what
//! they share (the HTTP request, SSE reading, retries, idle timeout,
//! cancellation).

use crate::config::LlmProvider;
use crate::conversations::live::Cancel;
use crate::messages::{Block, Message};
use crate::tools::ToolSpec;
use serde_json::Value;

/// A language model the chat can ask.
pub trait LanguageModel: Send + Sync {
    /// Which wire format it speaks, for `/health` and the wording of notices.
    fn provider(&self) -> LlmProvider;

    /// The model id sent with every request.
    fn model(&self) -> &str;

    /// Streams one request. `on_text` gets every text delta as it arrives;
    /// nothing is forwarded twice (a retry happens only before any text).
    fn stream(
        &self,
        request: &ModelRequest<'_>,
        cancel: &Cancel,
        on_text: &mut dyn FnMut(&str),
    ) -> Result<ModelReply, ModelError>;
}

/// One request: the system prompt, the whole history (already bounded by
/// the caller) and the tools to offer.
pub struct ModelRequest<'a> {
    pub system: &'a str,
    pub messages: &'a [Message],
    pub tools: &'a [ToolSpec],
}

/// Why the model stopped, whatever the provider called it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopReason {
    /// The answer is complete (`end_turn`, `stop`).
    EndTurn,
    /// It asked for tools (`tool_use`, `tool_calls`).
    ToolUse,
    /// The token limit cut it off (`max_tokens`, `length`).
    MaxTokens,
    /// Claude paused a long turn; the turn asks again.
    PauseTurn,
    /// Declined (`refusal`, `content_filter`).
    Refusal,
    StopSequence,
    /// A reason this code does not know, kept for the log.
    Other(String),
}

/// The assistant's reply as it must be echoed back in the history: complete
/// blocks only, in order, tool inputs as parsed JSON objects. (In a partial
/// reply, text that was still streaming is kept too.)
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ModelReply {
    pub content: Vec<Block>,
    pub stop_reason: Option<StopReason>,
    /// A tool call was cut off (by the token limit or a broken stream) and
    /// left out of `content`; it must not run.
    pub dropped_tool_use: bool,
    /// Tool calls in `content` whose arguments were not a JSON object: they
    /// are kept in `content` (with an empty input) so the history stays
    /// valid, but must not run; each is answered with this error instead.
    pub unparsable: Vec<UnparsableCall>,
    /// What the request cost, as the stream reported it.
    pub usage: Usage,
}

impl ModelReply {
    /// All text blocks joined, for display.
    pub fn text(&self) -> String {
        self.content.iter().filter_map(Block::shown_text).collect()
    }

    /// The tool calls, in order: (id, name, input), unparsable ones included.
    pub fn tool_uses(&self) -> impl Iterator<Item = (&str, &str, &Value)> {
        crate::messages::tool_uses(&self.content)
    }

    /// Why the call `id` must not run, if its arguments could not be read.
    pub fn unparsable(&self, id: &str) -> Option<&str> {
        self.unparsable
            .iter()
            .find(|c| c.id == id)
            .map(|c| c.error.as_str())
    }
}

/// A tool call whose arguments could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnparsableCall {
    pub id: String,
    /// What the model is told (and the user shown) instead of a result.
    pub error: String,
}

/// Token counts of one request.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub input_tokens: u64,
    pub cache_creation_input_tokens: u64,
    pub cache_read_input_tokens: u64,
    pub output_tokens: u64,
}

impl Usage {
    /// Every input and output token: what a budget counts.
    pub fn total(&self) -> u64 {
        self.input_tokens
            + self.cache_creation_input_tokens
            + self.cache_read_input_tokens
            + self.output_tokens
    }
}

/// Why a request gave no complete reply. Every message is meant for the user
/// and never contains a key.
#[derive(Debug, Clone, PartialEq)]
pub enum ModelError {
    /// A non-2xx answer (after the allowed retries).
    Http { status: u16, message: String },
    /// No connection could be made, or it broke before any output.
    Connection(String),
    /// An error in the stream, a dropped connection or an idle timeout after
    /// output had started; `partial` holds the complete blocks and text received.
    Interrupted {
        message: String,
        partial: Box<ModelReply>,
    },
    /// [`Cancel::cancel`] was called; `partial` as above.
    Cancelled { partial: Box<ModelReply> },
}

impl ModelError {
    /// Tokens the failed request cost, as far as the stream told.
    pub fn usage(&self) -> Usage {
        match self {
            ModelError::Interrupted { partial, .. } | ModelError::Cancelled { partial } => {
                partial.usage
            }
            _ => Usage::default(),
        }
    }
}

impl std::fmt::Display for ModelError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ModelError::Http { message, .. }
            | ModelError::Connection(message)
            | ModelError::Interrupted { message, .. } => f.write_str(message),
            ModelError::Cancelled { .. } => f.write_str("the answer was cancelled"),
        }
    }
}

impl std::error::Error for ModelError {}
