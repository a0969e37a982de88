//! The chat: one user message answered to the end (the turn and its tool
//! loop), by a language model (`model` is the seam; `claude` and `openai`
//! the providers, `upstream` what they share) or, without one, from search
//! results alone (`offline`). Knows nothing about WebSockets or HTTP: it
//! publishes [`events::ServerEvent`]s to the conversation's running-answer
//! handle.

pub mod answer;
pub mod budget;
pub mod claude;
pub mod events;
pub mod model;
pub mod offline;
pub mod openai;
pub mod prompt;
pub mod turn;
mod upstream;

use crate::chat::budget::DailyBudget;
use crate::chat::claude::{ClaudeClient, ClaudeConfig};
use crate::chat::model::LanguageModel;
use crate::chat::openai::{OpenAiClient, OpenAiConfig};
use crate::config::{Config, LlmProvider};
use crate::conversations::Conversations;
use crate::tools::ToolProvider;
use std::sync::Arc;
use std::sync::atomic::AtomicUsize;

/// The language model `LLM_PROVIDER` names, or `None` (offline retrieval
/// mode) when it is not usable (see [`Config::llm_configured`]).
pub fn language_model(config: &Config) -> Option<Box<dyn LanguageModel>> {
    match config.llm_provider {
        LlmProvider::Anthropic => ClaudeConfig::from_config(config)
            .map(|c| Box::new(ClaudeClient::new(c)) as Box<dyn LanguageModel>),
        LlmProvider::OpenAi => OpenAiConfig::from_config(config)
            .map(|c| Box::new(OpenAiClient::new(c)) as Box<dyn LanguageModel>),
    }
}

/// The limits a turn works within (see the README's configuration table).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Model requests per answer (`MAX_TOOL_ROUNDS`).
    pub max_tool_rounds: u32,
    /// Bytes of history sent per request (`HISTORY_BUDGET_CHARS`).
    pub history_budget: usize,
    /// Answers running at once in the whole service (`MAX_RUNNING_ANSWERS`).
    pub max_running_answers: usize,
}

/// Everything a turn needs, and nothing more: the tools, the model client
/// (`None`: offline retrieval mode), the conversation store and the limits.
pub struct Chat {
    pub tools: Arc<dyn ToolProvider>,
    pub model: Option<Box<dyn LanguageModel>>,
    pub store: Arc<Conversations>,
    pub limits: Limits,
    /// `CLAUDE_DAILY_TOKEN_BUDGET`, when set.
    pub budget: Option<DailyBudget>,
    /// Answers running now, at most `limits.max_running_answers`.
    running: AtomicUsize,
}

impl Chat {
    pub fn new(
        tools: Arc<dyn ToolProvider>,
        model: Option<Box<dyn LanguageModel>>,
        store: Arc<Conversations>,
        limits: Limits,
        budget: Option<DailyBudget>,
    ) -> Chat {
        Chat {
            tools,
            model,
            store,
            limits,
            budget,
            running: AtomicUsize::new(0),
        }
    }

    /// True when today's Claude token budget is spent.
    pub fn over_budget(&self) -> bool {
        self.budget.as_ref().is_some_and(DailyBudget::exhausted)
    }

    /// Answers running now.
    pub fn running(&self) -> usize {
        self.running.load(std::sync::atomic::Ordering::SeqCst)
    }
}
