//! Turns the Messages API's SSE events into the assistant message, one event
//! at a time. Pure: no I/O, no retries, no timeouts (those are `mod.rs`'s).
//!
//! Blocks are keyed by their `index` and finished at their own
//! `content_block_stop`, because deltas of open blocks may interleave. Tool
//! input is accumulated and parsed once at the stop; a block that never
//! stopped or whose input is not JSON is left out of the result, since the
//! only safe thing to do with a cut-off tool call is not to run it.

use crate::chat::model::{ModelReply, StopReason, Usage};
use crate::chat::upstream::{Assemble, Flow, policy};
use crate::messages::Block as ContentBlock;
use crate::sse::SseEvent;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

struct Block {
    /// The block as it will be echoed: the start block plus its deltas.
    value: Map<String, Value>,
    /// Concatenated `input_json_delta.partial_json`.
    json: String,
    got_json: bool,
    stopped: bool,
    /// Its accumulated input was not valid JSON.
    invalid: bool,
}

impl Block {
    fn kind(&self) -> &str {
        self.value.get("type").and_then(Value::as_str).unwrap_or("")
    }

    fn append(&mut self, field: &str, piece: &str) {
        match self.value.get_mut(field) {
            Some(Value::String(s)) => s.push_str(piece),
            _ => {
                self.value.insert(field.into(), Value::String(piece.into()));
            }
        }
    }
}

#[derive(Default)]
pub(crate) struct Assembler {
    blocks: BTreeMap<u64, Block>,
    stop_reason: Option<StopReason>,
    usage: Usage,
    /// Text deltas handed to `on_text`; once non-zero, a retry would repeat output.
    forwarded: usize,
}

impl Assemble for Assembler {
    fn forwarded(&self) -> bool {
        self.forwarded > 0
    }

    fn has_output(&self) -> bool {
        self.forwarded > 0 || !self.blocks.is_empty()
    }

    fn handle(&mut self, ev: &SseEvent, on_text: &mut dyn FnMut(&str)) -> Flow {
        let name = ev.event.as_str();
        if !matches!(
            name,
            "" | "message_start"
                | "content_block_start"
                | "content_block_delta"
                | "content_block_stop"
                | "message_delta"
                | "message_stop"
                | "error"
        ) {
            // `ping` and event types added after this was written.
            return Flow::Continue;
        }
        let data: Value = match serde_json::from_str(&ev.data) {
            Ok(v) => v,
            Err(e) => return Flow::Malformed(format!("{} event is not JSON: {e}", label(name))),
        };
        // An unnamed event still carries its name in `type`.
        let name = if name.is_empty() {
            data.get("type").and_then(Value::as_str).unwrap_or("")
        } else {
            name
        };
        let index = data.get("index").and_then(Value::as_u64);
        match (name, index) {
            ("content_block_start", Some(i)) => {
                let Some(Value::Object(block)) = data.get("content_block") else {
                    return Flow::Malformed("content_block_start without a content_block".into());
                };
                self.blocks.insert(
                    i,
                    Block {
                        value: block.clone(),
                        json: String::new(),
                        got_json: false,
                        stopped: false,
                        invalid: false,
                    },
                );
                Flow::Continue
            }
            ("content_block_delta", Some(i)) => self.delta(i, &data, on_text),
            ("content_block_stop", Some(i)) => {
                if let Some(block) = self.blocks.get_mut(&i) {
                    finish_block(block);
                } else {
                    log::warn!("Claude stream: content_block_stop for unknown block {i}");
                }
                Flow::Continue
            }
            ("content_block_start" | "content_block_delta" | "content_block_stop", None) => {
                Flow::Malformed(format!("{name} event without an index"))
            }
            ("message_start", _) => {
                if let Some(usage) = data.pointer("/message/usage") {
                    self.usage.update(usage);
                }
                Flow::Continue
            }
            ("message_delta", _) => {
                if let Some(reason) = data.pointer("/delta/stop_reason").and_then(Value::as_str) {
                    self.stop_reason = Some(stop_reason(reason));
                }
                if let Some(usage) = data.get("usage") {
                    self.usage.update(usage);
                }
                Flow::Continue
            }
            ("message_stop", _) => Flow::Done,
            ("error", _) => {
                let field = |p: &str, default: &'static str| {
                    data.pointer(p).and_then(Value::as_str).unwrap_or(default)
                };
                let kind = field("/error/type", "error");
                Flow::ApiError {
                    message: format!(
                        "Claude API error ({kind}): {}",
                        field("/error/message", "no message")
                    ),
                    retryable: policy::stream_error_is_retryable(kind),
                }
            }
            _ => Flow::Continue,
        }
    }

    /// The message so far: stopped blocks in index order, plus text blocks
    /// that were still open (their text was already shown). Tool calls that
    /// did not finish cleanly are left out and flagged.
    fn finish(self) -> ModelReply {
        let mut content = Vec::with_capacity(self.blocks.len());
        let mut dropped_tool_use = false;
        for (index, block) in self.blocks {
            let complete = block.stopped && !block.invalid;
            if complete || (!block.stopped && block.kind() == "text") {
                content.push(ContentBlock::from_value(Value::Object(block.value)));
            } else {
                log::warn!(
                    "Claude stream: leaving out {} block {index} ({})",
                    block.kind(),
                    if block.invalid {
                        "its input is not valid JSON"
                    } else {
                        "it was cut off"
                    }
                );
                dropped_tool_use |= block.kind() == "tool_use";
            }
        }
        ModelReply {
            content,
            stop_reason: self.stop_reason,
            dropped_tool_use,
            unparsable: Vec::new(),
            usage: self.usage,
        }
    }
}

impl Assembler {
    fn delta(&mut self, index: u64, data: &Value, on_text: &mut dyn FnMut(&str)) -> Flow {
        let Some(block) = self.blocks.get_mut(&index) else {
            log::warn!("Claude stream: delta for unknown block {index}");
            return Flow::Continue;
        };
        let Some(delta) = data.get("delta") else {
            return Flow::Malformed("content_block_delta without a delta".into());
        };
        let kind = delta.get("type").and_then(Value::as_str).unwrap_or("");
        let field = |name: &str| delta.get(name).and_then(Value::as_str);
        match (kind, field_for(kind).and_then(field)) {
            ("text_delta", Some(text)) => {
                block.append("text", text);
                if !text.is_empty() {
                    self.forwarded += 1;
                    on_text(text);
                }
            }
            ("input_json_delta", Some(part)) => {
                block.json.push_str(part);
                block.got_json = true;
            }
            ("thinking_delta", Some(text)) => block.append("thinking", text),
            ("signature_delta", Some(sig)) => block.append("signature", sig),
            ("citations_delta", _) => {
                if let Some(citation) = delta.get("citation") {
                    match block.value.get_mut("citations") {
                        Some(Value::Array(list)) => list.push(citation.clone()),
                        _ => {
                            block
                                .value
                                .insert("citations".into(), Value::Array(vec![citation.clone()]));
                        }
                    }
                }
            }
            ("text_delta" | "input_json_delta" | "thinking_delta" | "signature_delta", None) => {
                return Flow::Malformed(format!("{kind} without its text"));
            }
            _ => log::debug!("Claude stream: ignoring a {kind:?} delta"),
        }
        Flow::Continue
    }
}

/// The Messages API's stop reasons in the neutral vocabulary.
fn stop_reason(s: &str) -> StopReason {
    match s {
        "end_turn" => StopReason::EndTurn,
        "tool_use" => StopReason::ToolUse,
        "max_tokens" => StopReason::MaxTokens,
        "pause_turn" => StopReason::PauseTurn,
        "refusal" => StopReason::Refusal,
        "stop_sequence" => StopReason::StopSequence,
        other => StopReason::Other(other.to_string()),
    }
}

impl Usage {
    /// The counts are cumulative: each field present overwrites, never adds
    /// (a `message_delta` repeats what `message_start` said, or omits it).
    fn update(&mut self, usage: &Value) {
        let field = |k: &str| usage.get(k).and_then(Value::as_u64);
        for (k, slot) in [
            ("input_tokens", &mut self.input_tokens),
            (
                "cache_creation_input_tokens",
                &mut self.cache_creation_input_tokens,
            ),
            ("cache_read_input_tokens", &mut self.cache_read_input_tokens),
            ("output_tokens", &mut self.output_tokens),
        ] {
            if let Some(n) = field(k) {
                *slot = n;
            }
        }
    }
}

fn field_for(delta_kind: &str) -> Option<&'static str> {
    Some(match delta_kind {
        "text_delta" => "text",
        "input_json_delta" => "partial_json",
        "thinking_delta" => "thinking",
        "signature_delta" => "signature",
        _ => return None,
    })
}

/// Parses the accumulated tool input. An empty buffer keeps the start
/// block's input (`{}` from the API; some compatible servers send the whole
/// input there).
fn finish_block(block: &mut Block) {
    block.stopped = true;
    if block.json.trim().is_empty() {
        if (block.got_json || block.kind() == "tool_use") && !block.value.contains_key("input") {
            block
                .value
                .insert("input".into(), Value::Object(Map::new()));
        }
        return;
    }
    match serde_json::from_str::<Value>(&block.json) {
        Ok(input @ Value::Object(_)) => {
            block.value.insert("input".into(), input);
        }
        _ => block.invalid = true,
    }
    block.json = String::new();
}

fn label(name: &str) -> &str {
    if name.is_empty() { "an unnamed" } else { name }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ev(name: &str, data: Value) -> SseEvent {
        SseEvent {
            event: name.into(),
            data: data.to_string(),
            id: None,
        }
    }

    fn wire(msg: &ModelReply) -> Value {
        serde_json::to_value(&msg.content).unwrap()
    }

    fn run(events: &[SseEvent]) -> (ModelReply, Vec<String>, Flow) {
        crate::chat::upstream::assemble_all::<Assembler>(events)
    }

    fn start(i: u64, block: Value) -> SseEvent {
        ev(
            "content_block_start",
            json!({"type":"content_block_start","index":i,"content_block":block}),
        )
    }
    fn delta(i: u64, d: Value) -> SseEvent {
        ev(
            "content_block_delta",
            json!({"type":"content_block_delta","index":i,"delta":d}),
        )
    }
    fn stop(i: u64) -> SseEvent {
        ev(
            "content_block_stop",
            json!({"type":"content_block_stop","index":i}),
        )
    }
    fn end(reason: &str) -> [SseEvent; 2] {
        [
            ev(
                "message_delta",
                json!({"type":"message_delta","delta":{"stop_reason":reason}}),
            ),
            ev("message_stop", json!({"type":"message_stop"})),
        ]
    }

    #[test]
    fn thinking_and_unknown_blocks_are_kept_verbatim() {
        let mut events = vec![
            start(0, json!({"type":"thinking","thinking":"","signature":""})),
            delta(0, json!({"type":"thinking_delta","thinking":"Let me "})),
            delta(0, json!({"type":"thinking_delta","thinking":"think."})),
            delta(0, json!({"type":"signature_delta","signature":"EqQB"})),
            stop(0),
            start(1, json!({"type":"redacted_thinking","data":"opaque"})),
            stop(1),
            start(2, json!({"type":"text","text":"","citations":null})),
            delta(
                2,
                json!({"type":"citations_delta","citation":{"cited_text":"x"}}),
            ),
            delta(2, json!({"type":"text_delta","text":"Hi"})),
            delta(2, json!({"type":"future_delta","stuff":1})),
            stop(2),
            ev("future_event", json!({"type":"future_event"})),
        ];
        events.extend(end("end_turn"));
        let (msg, texts, flow) = run(&events);
        assert_eq!(flow, Flow::Done);
        assert_eq!(texts, ["Hi"]);
        assert_eq!(
            wire(&msg),
            json!([
                {"type":"thinking","thinking":"Let me think.","signature":"EqQB"},
                {"type":"redacted_thinking","data":"opaque"},
                {"type":"text","text":"Hi","citations":[{"cited_text":"x"}]},
            ])
        );
        assert_eq!(msg.stop_reason, Some(StopReason::EndTurn));
    }

    #[test]
    fn tool_input_rules() {
        let mut events = vec![
            // Full input in the start block and no deltas: kept.
            start(
                0,
                json!({"type":"tool_use","id":"a","name":"t","input":{"k":1}}),
            ),
            stop(0),
            // Only an empty fragment: the start's {} stays.
            start(1, json!({"type":"tool_use","id":"b","name":"t","input":{}})),
            delta(1, json!({"type":"input_json_delta","partial_json":""})),
            stop(1),
            // Not JSON: left out and flagged, never a panic.
            start(2, json!({"type":"tool_use","id":"c","name":"t","input":{}})),
            delta(
                2,
                json!({"type":"input_json_delta","partial_json":"{\"path\": \"do"}),
            ),
            stop(2),
        ];
        events.extend(end("tool_use"));
        let (msg, _, _) = run(&events);
        assert_eq!(
            wire(&msg),
            json!([
                {"type":"tool_use","id":"a","name":"t","input":{"k":1}},
                {"type":"tool_use","id":"b","name":"t","input":{}},
            ])
        );
        assert!(msg.dropped_tool_use);
    }

    #[test]
    fn open_text_is_kept_open_thinking_is_not() {
        let events = vec![
            start(0, json!({"type":"thinking","thinking":""})),
            delta(0, json!({"type":"thinking_delta","thinking":"hm"})),
            start(1, json!({"type":"text","text":""})),
            delta(1, json!({"type":"text_delta","text":"partial"})),
        ];
        let (msg, _, flow) = run(&events);
        assert_eq!(flow, Flow::Continue);
        assert_eq!(wire(&msg), json!([{"type":"text","text":"partial"}]));
        assert!(!msg.dropped_tool_use);
        assert_eq!(msg.stop_reason, None);
    }

    #[test]
    fn errors_and_malformed_events() {
        let (_, _, flow) = run(&[ev(
            "error",
            json!({"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}),
        )]);
        assert_eq!(
            flow,
            Flow::ApiError {
                message: "Claude API error (overloaded_error): Overloaded".into(),
                retryable: true
            }
        );
        let bad = SseEvent {
            event: "content_block_delta".into(),
            data: "{not json".into(),
            id: None,
        };
        assert!(matches!(run(&[bad]).2, Flow::Malformed(_)));
        // Unknown events are not even parsed.
        let odd = SseEvent {
            event: "ping".into(),
            data: "whatever".into(),
            id: None,
        };
        assert_eq!(run(&[odd]).2, Flow::Continue);
        // An unnamed event is routed by its `type`.
        let unnamed = SseEvent {
            event: String::new(),
            data: json!({"type":"message_stop"}).to_string(),
            id: None,
        };
        assert_eq!(run(&[unnamed]).2, Flow::Done);
    }

    #[test]
    fn usage_is_overwritten_not_added() {
        let events = vec![
            ev(
                "message_start",
                json!({"type":"message_start","message":{"usage":{"input_tokens":25,"cache_read_input_tokens":5,"output_tokens":1}}}),
            ),
            ev(
                "message_delta",
                json!({"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":15}}),
            ),
        ];
        let (msg, _, _) = run(&events);
        assert_eq!(msg.usage.total(), 25 + 5 + 15);
    }

    #[test]
    fn stop_reasons() {
        for (s, want) in [
            ("end_turn", StopReason::EndTurn),
            ("tool_use", StopReason::ToolUse),
            ("max_tokens", StopReason::MaxTokens),
            ("pause_turn", StopReason::PauseTurn),
            ("refusal", StopReason::Refusal),
            ("stop_sequence", StopReason::StopSequence),
            (
                "model_context_window_exceeded",
                StopReason::Other("model_context_window_exceeded".into()),
            ),
        ] {
            assert_eq!(run(&end(s)).0.stop_reason, Some(want));
        }
    }
}

#[cfg(test)]
mod random_input {
    use super::*;
    use crate::sse::SseReader;
    use crate::testing::{Rng, mutate};

    /// Mutated Messages API streams: the assembler answers a flow for every
    /// event and a message at the end, never a panic; a tool call it keeps
    /// always has an object as its input.
    #[test]
    fn any_stream_assembles_or_stops_cleanly() {
        let seed = concat!(
            "event: message_start\ndata: {\"type\":\"message_start\",\"message\":{\"usage\":{\"input_tokens\":3}}}\n\n",
            "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n\n",
            "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\",\"text\":\"Hi \\u00e9\"}}\n\n",
            "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":0}\n\n",
            "event: content_block_start\ndata: {\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"tool_use\",\"id\":\"t\",\"name\":\"n\",\"input\":{}}}\n\n",
            "event: content_block_delta\ndata: {\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"{\\\"q\\\": 1}\"}}\n\n",
            "event: content_block_stop\ndata: {\"type\":\"content_block_stop\",\"index\":1}\n\n",
            "event: message_delta\ndata: {\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"tool_use\"},\"usage\":{\"output_tokens\":9}}\n\n",
            "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n",
        );
        let mut rng = Rng::new(0x00c1_a0de);
        for _ in 0..2000 {
            let bytes = mutate(&mut rng, seed.as_bytes());
            let mut sse = SseReader::with_max_line(&bytes[..], 4096);
            let mut asm = Assembler::default();
            while let Ok(Some(event)) = sse.next_event() {
                if asm.handle(&event, &mut |_| {}) != Flow::Continue {
                    break;
                }
            }
            for (_, _, input) in asm.finish().tool_uses() {
                assert!(input.is_object());
            }
        }
    }
}
