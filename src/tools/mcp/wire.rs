//! Reading MCP answers: JSON-RPC replies as JSON bodies or SSE streams,
//! `tools/list` entries, and `CallToolResult`s turned into the tool's value.
//! Pure functions over bytes and JSON; the transport is [`super::streamable`].

use super::failure::{Failure, classify, snippet};
use super::protocol::TOOLS_LIST_CHANGED;
use crate::sse::SseReader;
use crate::tools::ToolSpec;
use serde_json::{Value, json};
use std::time::Duration;

pub(super) fn id_matches(v: &Value, id: u64) -> bool {
    match v.get("id") {
        Some(Value::Number(n)) => n.as_u64() == Some(id),
        Some(Value::String(s)) => s.parse::<u64>().ok() == Some(id),
        _ => false,
    }
}

pub(super) fn is_response(v: &Value) -> bool {
    v.get("method").is_none() && (v.get("result").is_some() || v.get("error").is_some())
}

/// The response to request `id` in a JSON body (an object, or an array that
/// contains it).
pub(super) fn parse_json_reply(bytes: &[u8], id: u64, method: &str) -> Result<Value, Failure> {
    let v: Value = serde_json::from_slice(bytes).map_err(|_| {
        Failure::NotMcp(format!(
            "{method}: the answer is not JSON: {}",
            snippet(bytes)
        ))
    })?;
    let mut candidates = match v {
        Value::Array(items) => items,
        other => vec![other],
    };
    if let Some(i) = candidates
        .iter()
        .position(|m| is_response(m) && id_matches(m, id))
    {
        return Ok(candidates.swap_remove(i));
    }
    let any_rpc = candidates
        .iter()
        .any(|m| m.get("jsonrpc").is_some() || is_response(m));
    if any_rpc {
        // An error with a null id is the server refusing the request itself.
        if let Some(m) = candidates
            .iter_mut()
            .find(|m| m.get("error").is_some() && m.get("id").is_none_or(Value::is_null))
        {
            return Ok(m.take());
        }
        Err(Failure::Protocol(format!(
            "{method}: the answer is not the response to request {id}: {}",
            snippet(bytes)
        )))
    } else {
        Err(Failure::NotMcp(format!(
            "{method}: the answer is JSON but not JSON-RPC: {}",
            snippet(bytes)
        )))
    }
}

/// Reads SSE events until the response to `id`; skips priming events (empty
/// data), notifications and server requests. Also says whether the server
/// announced that its tool list changed.
pub(super) fn read_sse_reply(
    reader: impl std::io::BufRead,
    id: u64,
    method: &str,
    timeout: Duration,
) -> Result<(Value, bool), Failure> {
    let mut events = SseReader::new(reader);
    let mut tools_changed = false;
    loop {
        let event = events.next_event().map_err(|e| {
            if e.kind() == std::io::ErrorKind::InvalidData {
                Failure::Protocol(format!("{method}: unreadable SSE stream: {e}"))
            } else {
                classify(ureq::Error::from(e), method, timeout)
            }
        })?;
        let Some(event) = event else {
            return Err(Failure::Protocol(format!(
                "{method}: the SSE stream ended before the response to request {id}"
            )));
        };
        if event.data.trim().is_empty() {
            continue;
        }
        let message: Value = serde_json::from_str(&event.data).map_err(|_| {
            Failure::Protocol(format!(
                "{method}: an SSE event is not JSON: {}",
                snippet(event.data.as_bytes())
            ))
        })?;
        if is_response(&message) && id_matches(&message, id) {
            return Ok((message, tools_changed));
        }
        if message.get("method").and_then(Value::as_str) == Some(TOOLS_LIST_CHANGED) {
            tools_changed = true;
        }
    }
}

/// The `result` of a response, or its `error` as a failure.
pub(super) fn take_result(mut message: Value, method: &str) -> Result<Value, Failure> {
    if let Some(error) = message.get("error") {
        let text = error
            .get("message")
            .and_then(Value::as_str)
            .map(str::to_string)
            .unwrap_or_else(|| error.to_string());
        let code = error.get("code").and_then(Value::as_i64);
        return Err(Failure::Rpc(match code {
            Some(c) => format!("{method}: {text} (JSON-RPC error {c})"),
            None => format!("{method}: {text}"),
        }));
    }
    match message.get_mut("result") {
        Some(result) if result.is_object() => Ok(result.take()),
        _ => Err(Failure::Protocol(format!(
            "{method}: the response has no result object: {}",
            snippet(message.to_string().as_bytes())
        ))),
    }
}

/// A `Tool` of `tools/list` as a [`ToolSpec`]; entries without a name are
/// skipped.
pub(super) fn tool_spec(t: &Value) -> Option<ToolSpec> {
    let name = t.get("name")?.as_str()?.to_string();
    let description = t
        .get("description")
        .or_else(|| t.get("title"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let input_schema = t
        .get("inputSchema")
        .filter(|s| s.is_object())
        .cloned()
        .unwrap_or_else(|| json!({"type": "object", "properties": {}}));
    Some(ToolSpec {
        name,
        description,
        input_schema,
    })
}

/// A `CallToolResult` as the tool's JSON value: `structuredContent` when
/// present (a Python SDK `{"result": X}` wrapper unwrapped), else the text
/// blocks parsed as JSON where they parse. `isError` becomes a failure with
/// the server's text.
pub(super) fn tool_result_value(mut result: Value) -> Result<Value, Failure> {
    let texts: Vec<String> = result
        .get("content")
        .and_then(Value::as_array)
        .map(|blocks| blocks.iter().filter_map(block_text).collect())
        .unwrap_or_default();
    if result.get("isError").and_then(Value::as_bool) == Some(true) {
        let message = if texts.is_empty() {
            "the tool failed without a message".to_string()
        } else {
            texts.join("\n")
        };
        return Err(Failure::Remote(message));
    }
    if let Some(structured) = result.get_mut("structuredContent").filter(|v| !v.is_null()) {
        let mut structured = structured.take();
        if let Some(map) = structured.as_object_mut()
            && map.len() == 1
            && let Some(inner) = map.remove("result")
        {
            return Ok(inner);
        }
        return Ok(structured);
    }
    match texts.len() {
        0 => Ok(result
            .get_mut("content")
            .map(Value::take)
            .unwrap_or(Value::Null)),
        1 => Ok(parse_or_string(
            texts.into_iter().next().unwrap_or_default(),
        )),
        _ => {
            let parsed: Result<Vec<Value>, _> = texts
                .iter()
                .map(|t| serde_json::from_str::<Value>(t))
                .collect();
            match parsed {
                Ok(items) => Ok(Value::Array(items)),
                Err(_) => Ok(Value::String(texts.join("\n"))),
            }
        }
    }
}

/// Text of a `text` block, or of an embedded text `resource`.
pub(super) fn block_text(block: &Value) -> Option<String> {
    match block.get("type")?.as_str()? {
        "text" => block.get("text")?.as_str().map(str::to_string),
        "resource" => block
            .get("resource")?
            .get("text")?
            .as_str()
            .map(str::to_string),
        _ => None,
    }
}

pub(super) fn parse_or_string(text: String) -> Value {
    serde_json::from_str(&text).unwrap_or(Value::String(text))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(v: Value) -> Value {
        tool_result_value(v).unwrap()
    }

    #[test]
    fn structured_content_is_preferred_and_unwrapped() {
        let r = json!({"content": [{"type": "text", "text": "ignored"}],
                       "structuredContent": {"result": [1, 2]}});
        assert_eq!(ok(r), json!([1, 2]));
        let r = json!({"content": [], "structuredContent": {"a": 1, "result": 2}});
        assert_eq!(ok(r), json!({"a": 1, "result": 2}));
    }

    #[test]
    fn text_blocks_become_json_where_they_parse() {
        assert_eq!(
            ok(json!({"content": [{"type": "text", "text": "[1,2]"}]})),
            json!([1, 2])
        );
        assert_eq!(
            ok(json!({"content": [{"type": "text", "text": "Echo: hi"}]})),
            json!("Echo: hi")
        );
        let two = json!({"content": [{"type": "text", "text": "{\"a\":1}"}, {"type": "text", "text": "{\"b\":2}"}]});
        assert_eq!(ok(two), json!([{"a": 1}, {"b": 2}]));
        let mixed = json!({"content": [{"type": "text", "text": "one"}, {"type": "image", "data": "x"}, {"type": "text", "text": "two"}]});
        assert_eq!(ok(mixed), json!("one\ntwo"));
    }

    #[test]
    fn is_error_carries_the_message() {
        let r = json!({"content": [{"type": "text", "text": "Repository not found: x"}], "isError": true});
        match tool_result_value(r) {
            Err(Failure::Remote(m)) => assert_eq!(m, "Repository not found: x"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn json_replies_are_matched_by_id() {
        let body = br#"{"jsonrpc":"2.0","id":7,"result":{"x":1}}"#;
        assert_eq!(parse_json_reply(body, 7, "m").unwrap()["result"]["x"], 1);
        assert!(matches!(
            parse_json_reply(body, 8, "m"),
            Err(Failure::Protocol(_))
        ));
        assert!(matches!(
            parse_json_reply(b"<html>", 1, "m"),
            Err(Failure::NotMcp(_))
        ));
        assert!(matches!(
            parse_json_reply(br#"{"detail":"Not Found"}"#, 1, "m"),
            Err(Failure::NotMcp(_))
        ));
    }
}

#[cfg(test)]
mod random_input {
    use super::*;
    use crate::testing::{Rng, mutate, noise};
    use std::time::Duration;

    /// Mutated server answers (JSON and SSE) and noise: the client's
    /// decoders answer a value or a failure, never a panic.
    #[test]
    fn any_answer_decodes_or_fails_cleanly() {
        let json_seed = br#"{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"{\"a\":[1,2]}"}],"isError":false,"tools":[{"name":"t","inputSchema":{}}]}}"#;
        let sse_seed = b"event: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/tools/list_changed\"}\n\nid: 9\ndata: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"content\":[]}}\n\n";
        let mut rng = Rng::new(0xfeed_beef);
        for case in 0..3000 {
            let bytes = match case % 3 {
                0 => noise(&mut rng, 200),
                1 => mutate(&mut rng, json_seed),
                _ => mutate(&mut rng, sse_seed),
            };
            if let Ok(v) = parse_json_reply(&bytes, 1, "tools/call") {
                let _ = take_result(v.clone(), "tools/call").map(tool_result_value);
                if let Some(tools) = v.pointer("/result/tools").and_then(Value::as_array) {
                    tools.iter().for_each(|t| drop(tool_spec(t)));
                }
            }
            let _ = read_sse_reply(&bytes[..], 1, "tools/call", Duration::from_secs(1));
        }
    }
}
