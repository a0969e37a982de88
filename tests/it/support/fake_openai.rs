//! A fake OpenAI-compatible chat-completions server for tests: the scripted
//! byte-exact HTTP server of `fake_claude` (one request per connection, every
//! request recorded, a `Reply` step is one TCP write) with builders for the
//! chat-completions stream as llama.cpp's llama-server sends it
//! (`shared/research/llama-server-transcripts.md`): `data:` lines only, the
//! call id only in a call's first delta, a last chunk with `finish_reason`
//! and a non-standard `timings`, a usage chunk with `choices: []`, then
//! `data: [DONE]`.
//!
//! ```ignore
//! let fake = FakeOpenAi::start(vec![Reply::sse(sse::text_turn(&["Hel", "lo"]))]);
//! // OPENAI_BASE_URL = base_url(&fake)
//! ```
#![allow(dead_code)]

pub use super::fake_claude::{FakeClaude as FakeOpenAi, Reply};
use serde_json::json;

/// `OPENAI_BASE_URL` for the fake: its URL with `/v1`.
pub fn base_url(fake: &FakeOpenAi) -> String {
    format!("{}/v1", fake.url())
}

/// OpenAI's JSON error body, `{"error": {"message", "type", "param", "code"}}`.
pub fn error(status: u16, kind: &str, message: &str) -> Reply {
    let body = json!({"error": {"message": message, "type": kind, "param": null, "code": null}});
    Reply::raw(status, "application/json", body.to_string())
}

/// A real llama-server stream (build b11669, Qwen2.5-Coder-1.5B, one
/// `search_documentation` call), byte for byte as captured in
/// `shared/research/llama-server-transcripts.md` (transcript.txt).
pub const LLAMA_SERVER_TOOL_CALL: &str = r#"data: {"choices":[{"finish_reason":null,"index":0,"delta":{"role":"assistant","content":null}}],"created":1796116679,"id":"chatcmpl-H1Q4uV0kK4FvrtHG66xebBxyWoFhoQd5","model":"models/qwen2.5-coder-1.5b-instruct-q4km.gguf","system_fingerprint":"b11669-Debian","object":"chat.completion.chunk"}

data: {"choices":[{"finish_reason":null,"index":0,"delta":{"tool_calls":[{"index":0,"id":"JXN0hCDX82gBYRtYcnaEX1seJiNeiAYe","type":"function","function":{"name":"search_documentation","arguments":"{"}}]}}],"created":1796116682,"id":"chatcmpl-H1Q4uV0kK4FvrtHG66xebBxyWoFhoQd5","model":"models/qwen2.5-coder-1.5b-instruct-q4km.gguf","system_fingerprint":"b11669-Debian","object":"chat.completion.chunk"}

data: {"choices":[{"finish_reason":null,"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"\n    \""}}]}}],"created":1796116684,"id":"chatcmpl-H1Q4uV0kK4FvrtHG66xebBxyWoFhoQd5","model":"models/qwen2.5-coder-1.5b-instruct-q4km.gguf","system_fingerprint":"b11669-Debian","object":"chat.completion.chunk"}

data: {"choices":[{"finish_reason":null,"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"query"}}]}}],"created":1796116684,"id":"chatcmpl-H1Q4uV0kK4FvrtHG66xebBxyWoFhoQd5","model":"models/qwen2.5-coder-1.5b-instruct-q4km.gguf","system_fingerprint":"b11669-Debian","object":"chat.completion.chunk"}

data: {"choices":[{"finish_reason":null,"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"\":"}}]}}],"created":1796116684,"id":"chatcmpl-H1Q4uV0kK4FvrtHG66xebBxyWoFhoQd5","model":"models/qwen2.5-coder-1.5b-instruct-q4km.gguf","system_fingerprint":"b11669-Debian","object":"chat.completion.chunk"}

data: {"choices":[{"finish_reason":null,"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":" \""}}]}}],"created":1796116685,"id":"chatcmpl-H1Q4uV0kK4FvrtHG66xebBxyWoFhoQd5","model":"models/qwen2.5-coder-1.5b-instruct-q4km.gguf","system_fingerprint":"b11669-Debian","object":"chat.completion.chunk"}

data: {"choices":[{"finish_reason":null,"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"ret"}}]}}],"created":1796116685,"id":"chatcmpl-H1Q4uV0kK4FvrtHG66xebBxyWoFhoQd5","model":"models/qwen2.5-coder-1.5b-instruct-q4km.gguf","system_fingerprint":"b11669-Debian","object":"chat.completion.chunk"}

data: {"choices":[{"finish_reason":null,"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"ention"}}]}}],"created":1796116685,"id":"chatcmpl-H1Q4uV0kK4FvrtHG66xebBxyWoFhoQd5","model":"models/qwen2.5-coder-1.5b-instruct-q4km.gguf","system_fingerprint":"b11669-Debian","object":"chat.completion.chunk"}

data: {"choices":[{"finish_reason":null,"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":" policy"}}]}}],"created":1796116686,"id":"chatcmpl-H1Q4uV0kK4FvrtHG66xebBxyWoFhoQd5","model":"models/qwen2.5-coder-1.5b-instruct-q4km.gguf","system_fingerprint":"b11669-Debian","object":"chat.completion.chunk"}

data: {"choices":[{"finish_reason":null,"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"\""}}]}}],"created":1796116686,"id":"chatcmpl-H1Q4uV0kK4FvrtHG66xebBxyWoFhoQd5","model":"models/qwen2.5-coder-1.5b-instruct-q4km.gguf","system_fingerprint":"b11669-Debian","object":"chat.completion.chunk"}

data: {"choices":[{"finish_reason":null,"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"\n  }"}}]}}],"created":1796116687,"id":"chatcmpl-H1Q4uV0kK4FvrtHG66xebBxyWoFhoQd5","model":"models/qwen2.5-coder-1.5b-instruct-q4km.gguf","system_fingerprint":"b11669-Debian","object":"chat.completion.chunk"}

data: {"choices":[{"finish_reason":"tool_calls","index":0,"delta":{}}],"created":1796116688,"id":"chatcmpl-H1Q4uV0kK4FvrtHG66xebBxyWoFhoQd5","model":"models/qwen2.5-coder-1.5b-instruct-q4km.gguf","system_fingerprint":"b11669-Debian","object":"chat.completion.chunk","timings":{"cache_n":0,"prompt_n":250,"prompt_ms":7522.119,"prompt_per_token_ms":30.088476,"prompt_per_second":33.23531574015247,"predicted_n":32,"predicted_ms":9115.471,"predicted_per_token_ms":294.0474516129032,"predicted_per_second":3.400811653067626}}

data: [DONE]

"#;

/// Builders for exact chat-completions SSE bytes (`data: ` + compact JSON +
/// blank line; `\n` line ends).
pub mod sse {
    use serde_json::{Value, json};

    pub fn data(v: &Value) -> String {
        format!("data: {v}\n\n")
    }

    /// One `chat.completion.chunk` with choice 0.
    pub fn chunk(delta: Value, finish_reason: Option<&str>) -> String {
        data(
            &json!({"choices": [{"finish_reason": finish_reason, "index": 0, "delta": delta}],
            "created": 1796116679, "id": "chatcmpl-fake", "model": "fake-model",
            "system_fingerprint": "b11669-fake", "object": "chat.completion.chunk"}),
        )
    }

    /// The first chunk: the role, no content.
    pub fn role() -> String {
        chunk(json!({"role": "assistant", "content": null}), None)
    }

    pub fn text(t: &str) -> String {
        chunk(json!({"content": t}), None)
    }

    /// A call's first delta: index, id, name and the first piece of arguments.
    pub fn call_start(index: usize, id: &str, name: &str, arguments: &str) -> String {
        chunk(
            json!({"tool_calls": [{"index": index, "id": id, "type": "function",
                "function": {"name": name, "arguments": arguments}}]}),
            None,
        )
    }

    /// More of a call's arguments string.
    pub fn call_args(index: usize, arguments: &str) -> String {
        chunk(
            json!({"tool_calls": [{"index": index, "function": {"arguments": arguments}}]}),
            None,
        )
    }

    /// The last chunk of the choice, with llama.cpp's `timings`.
    pub fn finish(reason: &str) -> String {
        data(
            &json!({"choices": [{"finish_reason": reason, "index": 0, "delta": {}}],
            "created": 1796116688, "id": "chatcmpl-fake", "model": "fake-model",
            "object": "chat.completion.chunk",
            "timings": {"prompt_n": 250, "prompt_ms": 7522.1, "predicted_n": 32}}),
        )
    }

    /// The `stream_options.include_usage` chunk.
    pub fn usage(prompt: u64, completion: u64) -> String {
        data(
            &json!({"choices": [], "created": 1796116688, "id": "chatcmpl-fake",
            "model": "fake-model", "object": "chat.completion.chunk",
            "usage": {"completion_tokens": completion, "prompt_tokens": prompt,
                "total_tokens": prompt + completion}}),
        )
    }

    pub fn done() -> String {
        "data: [DONE]\n\n".into()
    }

    /// An error object in the stream.
    pub fn error(kind: &str, message: &str) -> String {
        data(&json!({"error": {"code": 500, "message": message, "type": kind}}))
    }

    /// The end of a choice: finish reason, usage (250 + 32 tokens), `[DONE]`.
    pub fn end(reason: &str) -> String {
        finish(reason) + &usage(250, 32) + &done()
    }

    /// A whole text answer with these deltas, finish reason `stop`.
    pub fn text_turn(deltas: &[&str]) -> String {
        let mut s = role();
        for d in deltas {
            s += &text(d);
        }
        s + &end("stop")
    }

    /// Optional text, then one call per `(id, name, input)`, finish reason
    /// `tool_calls`. Each call's arguments are the input as pretty JSON (the
    /// model's whitespace), split in two after its first delta.
    pub fn tool_turn(text_first: Option<&str>, calls: &[(&str, &str, Value)]) -> String {
        let mut s = role();
        if let Some(t) = text_first {
            s += &text(t);
        }
        for (index, (id, name, input)) in calls.iter().enumerate() {
            let json = serde_json::to_string_pretty(input).unwrap();
            let cut = json
                .char_indices()
                .nth(json.chars().count() / 2)
                .map_or(0, |(i, _)| i);
            s += &call_start(index, id, name, "");
            s += &call_args(index, &json[..cut]);
            s += &call_args(index, &json[cut..]);
        }
        s + &end("tool_calls")
    }
}
