//! The Claude client: one streaming Messages API request with ureq, read as
//! Server-Sent Events line by line, assembled into the assistant message.
//!
//! STUB: to be written (issue 3, part 3). The public API below is what the
//! turn (`chat::turn`) uses; keep it.

use crate::config::Secret;
use crate::tools::ToolSpec;
use serde_json::Value;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct ClaudeConfig {
    /// Without `/v1/messages`; the client appends it.
    pub base_url: String,
    pub api_key: Secret,
    pub model: String,
    pub max_tokens: u32,
    /// Longest silence allowed between two SSE events (not a cap on the stream).
    pub idle_timeout: Duration,
    pub connect_timeout: Duration,
}

/// One request: the system prompt, the whole history (Anthropic message
/// objects, already bounded by the caller) and the tools to offer.
pub struct MessagesRequest<'a> {
    pub system: &'a str,
    pub messages: &'a [Value],
    pub tools: &'a [ToolSpec],
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopReason {
    EndTurn,
    ToolUse,
    MaxTokens,
    PauseTurn,
    Refusal,
    StopSequence,
    Other(String),
}

/// The assistant message as it must be echoed back to the API: complete
/// blocks only, in `index` order, tool inputs as parsed JSON objects.
#[derive(Debug, Clone, PartialEq)]
pub struct AssistantMessage {
    pub content: Vec<Value>,
    pub stop_reason: Option<StopReason>,
    /// A tool_use block was cut off (by `max_tokens` or a broken stream) and
    /// left out of `content`; it must not run.
    pub dropped_tool_use: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ClaudeError {
    /// A non-2xx answer (after the allowed retries). `message` is meant for the
    /// user and never contains the key.
    Http { status: u16, message: String },
    /// No connection could be made, or it broke before any output.
    Connection(String),
    /// An `error` event, a dropped connection or an idle timeout after output
    /// had started; `partial` holds the complete blocks and text received.
    Interrupted {
        message: String,
        partial: AssistantMessage,
    },
    /// [`Cancel::cancel`] was called; `partial` as above.
    Cancelled { partial: AssistantMessage },
}

/// Cancels a running request from another thread: sets a flag and shuts the
/// request's ureq agent down, which closes the upstream socket at once.
#[derive(Default)]
pub struct Cancel {
    flag: AtomicBool,
    agent: Mutex<Option<ureq::Agent>>,
}

impl Cancel {
    pub fn new() -> Arc<Cancel> {
        Arc::new(Cancel::default())
    }

    pub fn cancel(&self) {
        self.flag.store(true, Ordering::SeqCst);
        let agent = self.agent.lock().map(|mut a| a.take()).unwrap_or(None);
        if let Some(agent) = agent {
            agent.shutdown();
        }
    }

    pub fn is_cancelled(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }

    /// Registers the agent of the request in flight (replacing any earlier one).
    pub fn set_agent(&self, agent: Option<ureq::Agent>) {
        if let Ok(mut slot) = self.agent.lock() {
            *slot = agent;
        }
    }
}

pub struct ClaudeClient {
    #[allow(dead_code)]
    config: ClaudeConfig,
}

impl ClaudeClient {
    pub fn new(config: ClaudeConfig) -> ClaudeClient {
        ClaudeClient { config }
    }

    pub fn model(&self) -> &str {
        &self.config.model
    }

    /// Streams one request. `on_text` gets every text delta as it arrives.
    /// Retries (connection errors, 408, 409, 429, 5xx, 529; `x-should-retry`,
    /// `retry-after-ms`, `retry-after`) only while nothing was forwarded.
    pub fn stream(
        &self,
        _request: &MessagesRequest<'_>,
        _cancel: &Cancel,
        _on_text: &mut dyn FnMut(&str),
    ) -> Result<AssistantMessage, ClaudeError> {
        Err(ClaudeError::Connection(
            "Claude client not implemented yet".into(),
        ))
    }
}
