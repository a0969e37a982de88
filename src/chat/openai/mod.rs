//! The OpenAI-compatible client: `POST {OPENAI_BASE_URL}/chat/completions`
//! with `stream: true`, as Ollama, vLLM, llama.cpp's llama-server, LM Studio
//! and OpenAI itself serve it. The only module that knows that wire format.
//!
//! `history` maps the typed conversation to chat-completions messages,
//! `assemble` maps the streamed chunks back to blocks. The HTTP request,
//! retries, idle timeout and cancellation are the shared `chat::upstream`'s,
//! with the same rules as for Claude.

mod assemble;
mod history;

use self::assemble::Assembler;
use crate::chat::model::ModelRequest;
use crate::chat::upstream::{Endpoint, Wire, policy};
use crate::config::{Config, LlmProvider, Secret};
use serde::Serialize;
use serde_json::Value;
use std::time::Duration;

const ERROR_WORDS: policy::ErrorWords = policy::ErrorWords {
    api: "OpenAI-compatible API",
    check: "OPENAI_BASE_URL and OPENAI_MODEL",
};

#[derive(Debug, Clone)]
pub struct OpenAiConfig {
    /// With its `/v1` (e.g. `http://127.0.0.1:11434/v1`); the client
    /// appends `/chat/completions`.
    pub base_url: String,
    /// Sent as `Authorization: Bearer`; `None`: no such header.
    pub api_key: Option<Secret>,
    pub model: String,
    pub max_tokens: u32,
    /// Longest silence allowed between two SSE events (not a cap on the stream).
    pub idle_timeout: Duration,
    pub connect_timeout: Duration,
}

impl OpenAiConfig {
    /// From the service configuration; `None` unless `LLM_PROVIDER=openai`.
    pub fn from_config(config: &Config) -> Option<OpenAiConfig> {
        (config.llm_provider == LlmProvider::OpenAi).then(|| OpenAiConfig {
            base_url: config.openai_base_url.clone(),
            api_key: config.openai_api_key.clone(),
            model: config.openai_model.clone(),
            max_tokens: config.claude_max_tokens,
            idle_timeout: config.claude_idle_timeout,
            connect_timeout: crate::chat::claude::ClaudeConfig::DEFAULT_CONNECT_TIMEOUT,
        })
    }
}

pub struct OpenAiClient {
    config: OpenAiConfig,
    endpoint: Endpoint,
    /// `Bearer KEY`, built once.
    authorization: Option<String>,
}

impl OpenAiClient {
    pub fn new(config: OpenAiConfig) -> OpenAiClient {
        let endpoint = Endpoint {
            provider: LlmProvider::OpenAi,
            model: config.model.clone(),
            label: "the OpenAI-compatible server",
            base_url: config.base_url.clone(),
            url: format!("{}/chat/completions", config.base_url.trim_end_matches('/')),
            key: config.api_key.clone(),
            idle_timeout: config.idle_timeout,
            connect_timeout: config.connect_timeout,
            request_id_header: "x-request-id",
            error_words: &ERROR_WORDS,
        };
        let authorization = config
            .api_key
            .as_ref()
            .map(|k| format!("Bearer {}", k.expose()));
        OpenAiClient {
            config,
            endpoint,
            authorization,
        }
    }
}

impl Wire for OpenAiClient {
    type Assembler = Assembler;

    fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// The request body: the history mapped to chat-completions messages
    /// (borrowing its text where it can), the tools as functions.
    fn body(&self, request: &ModelRequest<'_>) -> Vec<u8> {
        #[derive(Serialize)]
        struct Function<'a> {
            name: &'a str,
            description: &'a str,
            parameters: &'a Value,
        }
        #[derive(Serialize)]
        struct Tool<'a> {
            #[serde(rename = "type")]
            kind: &'static str,
            function: Function<'a>,
        }
        #[derive(Serialize)]
        struct StreamOptions {
            include_usage: bool,
        }
        #[derive(Serialize)]
        struct Body<'a> {
            model: &'a str,
            max_tokens: u32,
            messages: Vec<history::ChatMessage<'a>>,
            #[serde(skip_serializing_if = "Vec::is_empty")]
            tools: Vec<Tool<'a>>,
            stream: bool,
            stream_options: StreamOptions,
        }
        let body = Body {
            model: &self.config.model,
            max_tokens: self.config.max_tokens,
            messages: history::messages(request.system, request.messages),
            tools: request
                .tools
                .iter()
                .map(|t| Tool {
                    kind: "function",
                    function: Function {
                        name: &t.name,
                        description: &t.description,
                        parameters: &t.input_schema,
                    },
                })
                .collect(),
            stream: true,
            stream_options: StreamOptions {
                include_usage: true,
            },
        };
        // Serialising borrowed JSON values and strings cannot fail.
        serde_json::to_vec(&body).unwrap_or_default()
    }

    fn headers(&self) -> Vec<(&'static str, &str)> {
        self.authorization
            .as_deref()
            .map(|a| ("authorization", a))
            .into_iter()
            .collect()
    }
}
