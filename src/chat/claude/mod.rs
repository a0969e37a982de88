//! The Claude client: the Anthropic Messages API (`/v1/messages`, streaming),
//! from api.anthropic.com or any compatible server (llama.cpp's
//! llama-server, Ollama, proxies such as LiteLLM). The only module that
//! knows Anthropic's wire format.
//!
//! The request body is the history's own JSON (the typed messages serialise
//! in the Messages API's form); the events are assembled in `assemble`. The
//! HTTP request, retries, idle timeout and cancellation are the shared
//! `chat::upstream`'s (which makes it a `LanguageModel`). It does not run
//! tools, keep history or decide what a stop reason means for the
//! conversation: that is the turn's job.

mod assemble;

use self::assemble::Assembler;
use crate::chat::model::ModelRequest;
use crate::chat::upstream::{Endpoint, Wire, policy};
use crate::config::{Config, LlmProvider, Secret};
use crate::messages::Message;
use serde::Serialize;
use serde_json::Value;
use std::time::Duration;

const ANTHROPIC_VERSION: &str = "2023-06-01";

const ERROR_WORDS: policy::ErrorWords = policy::ErrorWords {
    api: "Claude API",
    check: "ANTHROPIC_BASE_URL and CLAUDE_MODEL",
};

#[derive(Debug, Clone)]
pub struct ClaudeConfig {
    /// Without `/v1/messages`; the client appends it.
    pub base_url: String,
    /// `None`: no `x-api-key` header (a local compatible server needs none).
    pub api_key: Option<Secret>,
    pub model: String,
    pub max_tokens: u32,
    /// Longest silence allowed between two SSE events (not a cap on the stream).
    pub idle_timeout: Duration,
    pub connect_timeout: Duration,
}

impl ClaudeConfig {
    /// The SDKs use 5 s; a little more for slow proxies.
    pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

    /// From the service configuration; `None` when Claude is not usable:
    /// api.anthropic.com without a key (offline mode). A compatible server
    /// elsewhere (`ANTHROPIC_BASE_URL`) is used with or without a key.
    pub fn from_config(config: &Config) -> Option<ClaudeConfig> {
        if !config.anthropic_usable() {
            return None;
        }
        Some(ClaudeConfig {
            base_url: config.anthropic_base_url.clone(),
            api_key: config.anthropic_api_key.clone(),
            model: config.claude_model.clone(),
            max_tokens: config.claude_max_tokens,
            idle_timeout: config.claude_idle_timeout,
            connect_timeout: ClaudeConfig::DEFAULT_CONNECT_TIMEOUT,
        })
    }
}

pub struct ClaudeClient {
    config: ClaudeConfig,
    endpoint: Endpoint,
}

impl ClaudeClient {
    pub fn new(config: ClaudeConfig) -> ClaudeClient {
        let endpoint = Endpoint {
            provider: LlmProvider::Anthropic,
            model: config.model.clone(),
            label: "Claude",
            base_url: config.base_url.clone(),
            // The base keeps its own path.
            url: format!("{}/v1/messages", config.base_url.trim_end_matches('/')),
            key: config.api_key.clone(),
            idle_timeout: config.idle_timeout,
            connect_timeout: config.connect_timeout,
            request_id_header: "request-id",
            error_words: &ERROR_WORDS,
        };
        ClaudeClient { config, endpoint }
    }
}

impl Wire for ClaudeClient {
    type Assembler = Assembler;

    fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// The request body, serialised straight from borrowed parts: the
    /// history is not copied into a `Value` first.
    fn body(&self, request: &ModelRequest<'_>) -> Vec<u8> {
        #[derive(Serialize)]
        struct Tool<'a> {
            name: &'a str,
            description: &'a str,
            input_schema: &'a Value,
        }
        #[derive(Serialize)]
        struct Body<'a> {
            model: &'a str,
            max_tokens: u32,
            #[serde(skip_serializing_if = "str::is_empty")]
            system: &'a str,
            messages: &'a [Message],
            #[serde(skip_serializing_if = "Vec::is_empty")]
            tools: Vec<Tool<'a>>,
            stream: bool,
        }
        let body = Body {
            model: &self.config.model,
            max_tokens: self.config.max_tokens,
            system: request.system,
            messages: request.messages,
            tools: request
                .tools
                .iter()
                .map(|t| Tool {
                    name: &t.name,
                    description: &t.description,
                    input_schema: &t.input_schema,
                })
                .collect(),
            stream: true,
        };
        // Serialising borrowed JSON values and strings cannot fail.
        serde_json::to_vec(&body).unwrap_or_default()
    }

    fn headers(&self) -> Vec<(&'static str, &str)> {
        let mut headers = vec![("anthropic-version", ANTHROPIC_VERSION)];
        if let Some(key) = &self.config.api_key {
            headers.push(("x-api-key", key.expose()));
        }
        headers
    }
}
