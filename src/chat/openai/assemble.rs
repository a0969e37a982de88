//! Turns a chat-completions stream (`chat.completion.chunk` events) into the
//! reply, one event at a time. Pure: no I/O, no retries, no timeouts (those
//! are `chat::upstream`'s).
//!
//! Text deltas are forwarded at once. Tool calls are accumulated by their
//! `index`: the id and name come in the first delta of a call (later ones
//! only carry more of the `arguments` string, split anywhere, whitespace
//! kept), and the arguments are parsed once the choice has finished. A call
//! whose arguments are not a JSON object is kept in the reply with an empty
//! input and listed as unparsable: the turn answers it with an error instead
//! of running it. A call cut off by a broken stream or the token limit is
//! left out. Fields this code does not know (llama.cpp's `timings`,
//! `system_fingerprint`, `logprobs`, reasoning text) are ignored.

use crate::chat::model::{ModelReply, StopReason, UnparsableCall, Usage};
use crate::chat::upstream::{Assemble, Flow, policy};
use crate::messages::Block;
use crate::sse::SseEvent;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// Text and tool arguments kept for one reply, at most: a server that
/// streams without end is cut off rather than filling memory.
const MAX_REPLY_BYTES: usize = 16 << 20;
/// Characters of unparsable arguments quoted back to the model.
const QUOTED_ARGUMENTS: usize = 200;

#[derive(Default)]
struct Call {
    id: String,
    name: String,
    arguments: String,
}

#[derive(Default)]
pub(crate) struct Assembler {
    text: String,
    /// By the call's `index` in the stream.
    calls: BTreeMap<u64, Call>,
    finish_reason: Option<String>,
    usage: Usage,
    /// Bytes of text and arguments received.
    size: usize,
    /// Text deltas handed to `on_text`.
    forwarded: usize,
}

impl Assemble for Assembler {
    fn forwarded(&self) -> bool {
        self.forwarded > 0
    }

    fn has_output(&self) -> bool {
        self.forwarded > 0 || !self.calls.is_empty()
    }

    /// Some servers end the body after the last chunk without `[DONE]`.
    fn complete_without_end(&self) -> bool {
        self.finish_reason.is_some()
    }

    fn handle(&mut self, ev: &SseEvent, on_text: &mut dyn FnMut(&str)) -> Flow {
        let data = ev.data.trim();
        if data == "[DONE]" {
            return Flow::Done;
        }
        let chunk: Value = match serde_json::from_str(data) {
            Ok(v) => v,
            Err(e) => return Flow::Malformed(format!("a chunk is not JSON: {e}")),
        };
        if let Some(error) = chunk.get("error") {
            return api_error(error);
        }
        if let Some(usage) = chunk.get("usage").filter(|u| u.is_object()) {
            let count = |k: &str| usage.get(k).and_then(Value::as_u64);
            // Cached prompt tokens are part of prompt_tokens.
            self.usage.input_tokens = count("prompt_tokens").unwrap_or(self.usage.input_tokens);
            self.usage.output_tokens =
                count("completion_tokens").unwrap_or(self.usage.output_tokens);
        }
        // One choice is asked for; a usage chunk has none.
        let choices = chunk.get("choices").and_then(Value::as_array);
        for choice in choices.into_iter().flatten() {
            if choice.get("index").and_then(Value::as_u64).unwrap_or(0) != 0 {
                continue;
            }
            if let Some(delta) = choice.get("delta") {
                if let Some(text) = delta.get("content").and_then(Value::as_str)
                    && !text.is_empty()
                {
                    self.size += text.len();
                    self.text.push_str(text);
                    self.forwarded += 1;
                    on_text(text);
                }
                let calls = delta.get("tool_calls").and_then(Value::as_array);
                for (position, call) in calls.into_iter().flatten().enumerate() {
                    self.call_delta(position, call);
                }
            }
            if let Some(reason) = choice.get("finish_reason").and_then(Value::as_str) {
                self.finish_reason = Some(reason.to_string());
            }
        }
        if self.size > MAX_REPLY_BYTES {
            return Flow::Malformed(format!(
                "the reply is longer than {} MiB",
                MAX_REPLY_BYTES >> 20
            ));
        }
        Flow::Continue
    }

    fn finish(self) -> ModelReply {
        let stop_reason = self.finish_reason.as_deref().map(stop_reason);
        let mut content = Vec::with_capacity(self.calls.len() + 1);
        if !self.text.is_empty() {
            content.push(Block::text(self.text));
        }
        // The calls are complete only once the choice finished, and not
        // when the token limit cut it.
        let complete = !matches!(stop_reason, None | Some(StopReason::MaxTokens));
        let dropped_tool_use = !complete && !self.calls.is_empty();
        if dropped_tool_use {
            log::warn!(
                "OpenAI-compatible stream: leaving out {} cut-off tool call(s)",
                self.calls.len()
            );
        }
        let mut unparsable = Vec::new();
        for (index, call) in self.calls.into_iter().filter(|_| complete) {
            let id = if call.id.is_empty() {
                // Without an id the result could not be matched to the call.
                format!("call_{index}_{}", uuid::Uuid::new_v4().simple())
            } else {
                call.id
            };
            let input = match parse_arguments(&call.arguments) {
                Ok(input) => input,
                Err(why) => {
                    log::warn!("OpenAI-compatible stream: tool call {index} not run: {why}");
                    unparsable.push(UnparsableCall {
                        id: id.clone(),
                        error: format!(
                            "The arguments of this {} call are not a JSON object ({why}), so it was not run; call the tool again with a JSON object. Received: {}",
                            call.name,
                            excerpt(&call.arguments)
                        ),
                    });
                    Value::Object(Map::new())
                }
            };
            content.push(Block::ToolUse {
                id,
                name: call.name,
                input,
            });
        }
        ModelReply {
            content,
            stop_reason,
            dropped_tool_use,
            unparsable,
            usage: self.usage,
        }
    }
}

impl Assembler {
    /// One entry of `delta.tool_calls`. `position` stands in for a missing `index`.
    fn call_delta(&mut self, position: usize, delta: &Value) {
        let index = delta
            .get("index")
            .and_then(Value::as_u64)
            .unwrap_or(position as u64);
        let call = self.calls.entry(index).or_default();
        let field = |v: &Value, k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
        if call.id.is_empty() {
            call.id = field(delta, "id").unwrap_or_default();
        }
        let Some(function) = delta.get("function") else {
            return;
        };
        if call.name.is_empty() {
            call.name = field(function, "name").unwrap_or_default();
        }
        let piece = match function.get("arguments") {
            Some(Value::String(s)) => s.clone(),
            // Some servers send the arguments as an object.
            Some(v @ Value::Object(_)) => v.to_string(),
            _ => String::new(),
        };
        self.size += piece.len();
        call.arguments.push_str(&piece);
    }
}

/// The arguments as an input object; empty means no arguments.
fn parse_arguments(arguments: &str) -> Result<Value, String> {
    if arguments.trim().is_empty() {
        return Ok(Value::Object(Map::new()));
    }
    match serde_json::from_str::<Value>(arguments) {
        Ok(v @ Value::Object(_)) => Ok(v),
        Ok(_) => Err("a JSON value that is not an object".into()),
        Err(e) => Err(format!("invalid JSON: {e}")),
    }
}

fn excerpt(text: &str) -> String {
    let mut out: String = text.chars().take(QUOTED_ARGUMENTS).collect();
    if out.len() < text.len() {
        out.push_str("...");
    }
    out
}

/// An error object in the stream: OpenAI's `{"error": {"message", "type",
/// "code"}}`, llama.cpp's (with a numeric `code`), or a plain string.
fn api_error(error: &Value) -> Flow {
    let field = |k: &str| error.get(k).and_then(Value::as_str);
    let message = field("message").or(error.as_str()).unwrap_or("no message");
    let kind = field("type").unwrap_or("error");
    let status = error.get("code").and_then(Value::as_u64).unwrap_or(0);
    Flow::ApiError {
        message: format!("the OpenAI-compatible server reported an error ({kind}): {message}"),
        retryable: policy::stream_error_is_retryable(kind)
            || field("code").is_some_and(policy::stream_error_is_retryable)
            || status == 429
            || (500..600).contains(&status),
    }
}

/// Chat completions' finish reasons in the neutral vocabulary.
fn stop_reason(s: &str) -> StopReason {
    match s {
        "stop" => StopReason::EndTurn,
        "tool_calls" | "function_call" => StopReason::ToolUse,
        "length" => StopReason::MaxTokens,
        "content_filter" => StopReason::Refusal,
        other => StopReason::Other(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ev(data: &str) -> SseEvent {
        SseEvent {
            event: String::new(),
            data: data.into(),
            id: None,
        }
    }

    fn chunk(delta: Value, finish: Option<&str>) -> SseEvent {
        ev(&json!({"object": "chat.completion.chunk",
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]})
        .to_string())
    }

    fn run(events: &[SseEvent]) -> (ModelReply, Vec<String>, Flow) {
        crate::chat::upstream::assemble_all::<Assembler>(events)
    }

    fn wire(reply: &ModelReply) -> Value {
        serde_json::to_value(&reply.content).unwrap()
    }

    #[test]
    fn unparsable_and_odd_arguments() {
        let events = vec![
            chunk(
                json!({"tool_calls": [
                    {"index": 0, "id": "a", "function": {"name": "t", "arguments": "{\"q\": "}},
                    {"index": 1, "id": "b", "function": {"name": "t", "arguments": "[1]"}},
                    {"index": 2, "function": {"name": "t", "arguments": {"q": "obj"}}},
                    {"index": 3, "id": "d", "function": {"name": "t", "arguments": "  "}},
                ]}),
                None,
            ),
            chunk(json!({}), Some("tool_calls")),
            ev("[DONE]"),
        ];
        let (reply, _, flow) = run(&events);
        assert_eq!(flow, Flow::Done);
        assert_eq!(reply.stop_reason, Some(StopReason::ToolUse));
        let ids: Vec<&str> = reply.tool_uses().map(|(id, _, _)| id).collect();
        assert_eq!(ids.len(), 4);
        assert_eq!(&ids[..2], ["a", "b"]);
        assert!(ids[2].starts_with("call_2_"), "{ids:?}");
        let inputs: Vec<&Value> = reply.tool_uses().map(|(_, _, i)| i).collect();
        assert_eq!(
            inputs,
            [&json!({}), &json!({}), &json!({"q": "obj"}), &json!({})]
        );
        assert!(reply.unparsable("a").unwrap().contains("invalid JSON"));
        assert!(
            reply
                .unparsable("a")
                .unwrap()
                .contains("Received: {\"q\": ")
        );
        assert!(reply.unparsable("b").unwrap().contains("not an object"));
        assert_eq!(reply.unparsable("d"), None);
        assert_eq!(reply.unparsable.len(), 2);
    }

    #[test]
    fn cut_off_calls_are_dropped() {
        let call = json!({"tool_calls": [{"index": 0, "id": "a", "function": {"name": "t", "arguments": "{}"}}]});
        // The stream broke before the choice finished.
        let (reply, _, _) = run(&[chunk(call.clone(), None)]);
        assert!(reply.dropped_tool_use);
        assert!(reply.content.is_empty());
        // The token limit cut it.
        let (reply, _, _) = run(&[
            chunk(json!({"content": "Hm"}), None),
            chunk(call, Some("length")),
        ]);
        assert!(reply.dropped_tool_use);
        assert_eq!(reply.stop_reason, Some(StopReason::MaxTokens));
        assert_eq!(wire(&reply), json!([{"type": "text", "text": "Hm"}]));
    }

    #[test]
    fn errors_usage_and_unknown_fields() {
        let (_, _, flow) = run(&[ev(
            r#"{"error":{"code":500,"message":"context shift is disabled","type":"server_error"}}"#,
        )]);
        assert_eq!(
            flow,
            Flow::ApiError {
                message: "the OpenAI-compatible server reported an error (server_error): context shift is disabled".into(),
                retryable: true
            }
        );
        let (_, _, flow) = run(&[ev(
            r#"{"error":{"message":"bad","type":"invalid_request_error"}}"#,
        )]);
        assert!(matches!(
            flow,
            Flow::ApiError {
                retryable: false,
                ..
            }
        ));
        let (_, _, flow) = run(&[ev(r#"{"error":"model not loaded"}"#)]);
        assert!(
            matches!(flow, Flow::ApiError { message, .. } if message.ends_with("model not loaded"))
        );
        assert!(matches!(run(&[ev("{not json")]).2, Flow::Malformed(_)));

        let (reply, texts, flow) = run(&[
            chunk(json!({"role": "assistant", "content": null}), None),
            chunk(
                json!({"content": "Hi", "reasoning_content": "hidden"}),
                None,
            ),
            ev(r#"{"choices":[{"index":1,"delta":{"content":"other choice"}}]}"#),
            ev(
                r#"{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}],"timings":{"predicted_n":3}}"#,
            ),
            ev(
                r#"{"choices":[],"usage":{"prompt_tokens":250,"completion_tokens":32,"total_tokens":282,"prompt_tokens_details":{"cached_tokens":200}}}"#,
            ),
            ev("[DONE]"),
        ]);
        assert_eq!(flow, Flow::Done);
        assert_eq!(texts, ["Hi"]);
        assert_eq!(wire(&reply), json!([{"type": "text", "text": "Hi"}]));
        assert_eq!(reply.stop_reason, Some(StopReason::EndTurn));
        assert_eq!(reply.usage.total(), 282);
    }

    #[test]
    fn finish_reasons() {
        for (s, want) in [
            ("stop", StopReason::EndTurn),
            ("tool_calls", StopReason::ToolUse),
            ("function_call", StopReason::ToolUse),
            ("length", StopReason::MaxTokens),
            ("content_filter", StopReason::Refusal),
            ("eos", StopReason::Other("eos".into())),
        ] {
            let (reply, _, _) = run(&[chunk(json!({}), Some(s))]);
            assert_eq!(reply.stop_reason, Some(want));
        }
        let mut a = Assembler::default();
        assert!(!a.complete_without_end());
        a.handle(&chunk(json!({}), Some("stop")), &mut |_| {});
        assert!(a.complete_without_end());
    }

    #[test]
    fn an_endless_reply_is_cut_off() {
        let big = "x".repeat(1 << 20);
        let mut a = Assembler::default();
        let mut flow = Flow::Continue;
        for _ in 0..17 {
            flow = a.handle(&chunk(json!({"content": big}), None), &mut |_| {});
            if flow != Flow::Continue {
                break;
            }
        }
        assert!(matches!(flow, Flow::Malformed(m) if m.contains("16 MiB")));
    }
}
