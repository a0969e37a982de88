//! One streaming request through any `LanguageModel`, for the provider
//! client tests (`claude.rs`, `openai.rs`): what came back, the text handed
//! out on the way, and how long it took.
#![allow(dead_code)]

use knowledge_vault::chat::model::{LanguageModel, ModelError, ModelReply, ModelRequest};
use knowledge_vault::conversations::live::Cancel;
use knowledge_vault::messages::{Message, Role};
use knowledge_vault::tools::ToolSpec;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

pub struct Outcome {
    pub result: Result<ModelReply, ModelError>,
    pub texts: Vec<String>,
    pub elapsed: Duration,
}

/// The one tool the client tests offer.
pub fn tools() -> Vec<ToolSpec> {
    vec![ToolSpec {
        name: "search_documentation".into(),
        description: "Search the docs".into(),
        input_schema: json!({"type":"object","properties":{"query":{"type":"string"}},
            "required":["query"]}),
    }]
}

/// Asks `question` with the test system prompt and [`tools`].
pub fn ask(model: &dyn LanguageModel, question: &str, cancel: &Cancel) -> Outcome {
    ask_watching(model, question, cancel, &mut |_| {})
}

/// Like [`ask`], and `watch` sees each text delta as it arrives.
pub fn ask_watching(
    model: &dyn LanguageModel,
    question: &str,
    cancel: &Cancel,
    watch: &mut dyn FnMut(&str),
) -> Outcome {
    let (messages, tools) = (vec![Message::text(Role::User, question)], tools());
    let request = ModelRequest {
        system: "You answer from the documentation.",
        messages: &messages,
        tools: &tools,
    };
    let mut texts = vec![];
    let started = Instant::now();
    let result = model.stream(&request, cancel, &mut |t| {
        watch(t);
        texts.push(t.to_string());
    });
    Outcome {
        result,
        texts,
        elapsed: started.elapsed(),
    }
}

pub fn ok(o: &Outcome) -> &ModelReply {
    match &o.result {
        Ok(m) => m,
        Err(e) => panic!("expected success, got {e:?}"),
    }
}

/// The content blocks in their wire form.
pub fn content(m: &ModelReply) -> Vec<Value> {
    m.content
        .iter()
        .map(|b| serde_json::to_value(b).unwrap())
        .collect()
}
