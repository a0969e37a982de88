//! The simple HTTP tool API of earlier deployments: `GET {url}/health` says
//! whether the server is up, `POST {url}/tools/execute` with
//! `{"name", "arguments"}` is answered by `{"result": ...}` (`null` when the
//! repository or document does not exist), or by an `{"error": ...}` /
//! `{"detail": ...}` body.
//!
//! Only the wire format lives here; connection state, retries and the
//! mapping to [`crate::tools::ToolError`] belong to [`super::client`] and
//! [`super::failure`]. This path carries the REST endpoints' traffic when
//! such a server is configured, so it avoids per-call work beyond one
//! request and one parse.

use super::agent::read_body;
use super::failure::{Failure, classify, snippet};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::time::Duration;
use ureq::Agent;

/// A simple tool server: its two URLs, computed once.
pub(super) struct SimpleHttp {
    health_url: String,
    execute_url: String,
    agent: Agent,
    timeout: Duration,
}

#[derive(Serialize)]
struct Execute<'a> {
    name: &'a str,
    arguments: &'a Value,
}

/// Every field optional: which one is present decides the outcome. A
/// `result` that is present but `null` is `Some(Value::Null)`, told apart
/// from a missing one.
#[derive(Deserialize)]
struct Answer {
    #[serde(default, deserialize_with = "present")]
    result: Option<Value>,
    error: Option<Value>,
    detail: Option<Value>,
}

/// A field that is present, even as `null`.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(d).map(Some)
}

impl SimpleHttp {
    /// The paths go after the base URL's path, before its query (which may
    /// carry a key: `https://host/api?key=…` → `https://host/api/health?key=…`).
    pub(super) fn new(base_url: &str, agent: Agent, timeout: Duration) -> SimpleHttp {
        let base_url = base_url.split('#').next().unwrap_or_default();
        let (base, query) = match base_url.split_once('?') {
            Some((base, query)) => (base, format!("?{query}")),
            None => (base_url, String::new()),
        };
        let base = base.trim_end_matches('/');
        SimpleHttp {
            health_url: format!("{base}/health{query}"),
            execute_url: format!("{base}/tools/execute{query}"),
            agent,
            timeout,
        }
    }

    /// A 2xx from `GET /health` within `timeout` means up; anything else
    /// says why not.
    pub(super) fn health(&self, timeout: Duration) -> Result<(), Failure> {
        let resp = self
            .agent
            .get(&self.health_url)
            .header("Accept", "application/json")
            .config()
            .timeout_global(Some(timeout))
            .build()
            .call()
            .map_err(|e| classify(e, "GET /health", timeout))?;
        let status = resp.status().as_u16();
        // Drain the small body so the connection goes back to the pool.
        let body = resp
            .into_body()
            .with_config()
            .limit(64 * 1024)
            .read_to_vec()
            .unwrap_or_default();
        match status {
            200..=299 => Ok(()),
            401 | 403 => Err(Failure::Auth(format!("GET /health answered HTTP {status}"))),
            _ => Err(Failure::NotMcp(format!(
                "GET /health answered HTTP {status}: {}",
                snippet(&body)
            ))),
        }
    }

    /// Runs one tool. The result is the `result` field as the server sent it;
    /// a `null` result is [`Failure::NotFound`].
    pub(super) fn execute(&self, name: &str, arguments: &Value) -> Result<Value, Failure> {
        let body = serde_json::to_vec(&Execute { name, arguments })
            .map_err(|e| Failure::Protocol(format!("cannot encode the arguments: {e}")))?;
        let resp = self
            .agent
            .post(&self.execute_url)
            .header("Content-Type", "application/json")
            .header("Accept", "application/json")
            .send(&body[..])
            .map_err(|e| classify(e, "POST /tools/execute", self.timeout))?;
        let status = resp.status().as_u16();
        let bytes = read_body(resp, "reading the /tools/execute answer", self.timeout)?;
        if status == 401 || status == 403 {
            return Err(Failure::Auth(format!(
                "POST /tools/execute answered HTTP {status}"
            )));
        }
        let answer: Option<Answer> = serde_json::from_slice(&bytes).ok();
        let Some(answer) = answer else {
            return Err(Failure::Protocol(format!(
                "POST /tools/execute answered HTTP {status} with a body that is not a JSON object: {}",
                snippet(&bytes)
            )));
        };
        if let Some(message) = answer.error.or(answer.detail) {
            return Err(Failure::Remote(message_text(message)));
        }
        match (status, answer.result) {
            (200..=299, Some(Value::Null)) => Err(Failure::NotFound(format!(
                "{name}: not found (the tool server answered {{\"result\": null}} for {})",
                snippet(arguments.to_string().as_bytes())
            ))),
            (200..=299, Some(result)) => Ok(result),
            (200..=299, None) => Err(Failure::Protocol(format!(
                "POST /tools/execute answered without a \"result\" field: {}",
                snippet(&bytes)
            ))),
            (_, _) => Err(Failure::Protocol(format!(
                "POST /tools/execute answered HTTP {status}: {}",
                snippet(&bytes)
            ))),
        }
    }
}

/// `"message"`, `{"message": "..."}` or anything else as compact JSON.
fn message_text(v: Value) -> String {
    match v {
        Value::String(s) => s,
        Value::Object(mut map) => match map.remove("message") {
            Some(Value::String(s)) => s,
            Some(other) => other.to_string(),
            None => Value::Object(map).to_string(),
        },
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn error_messages_are_carried_in_any_shape() {
        assert_eq!(
            message_text(json!("Repository not found")),
            "Repository not found"
        );
        assert_eq!(message_text(json!({"message": "boom", "code": 3})), "boom");
        assert_eq!(
            message_text(json!([{"msg": "field required"}])),
            r#"[{"msg":"field required"}]"#
        );
    }

    #[test]
    fn a_null_result_is_told_apart_from_a_missing_one() {
        let parse = |body: &str| serde_json::from_str::<Answer>(body).unwrap().result;
        assert_eq!(parse(r#"{"result": null}"#), Some(Value::Null));
        assert_eq!(parse(r#"{"result": [1]}"#), Some(json!([1])));
        assert_eq!(parse(r#"{"detail": "x"}"#), None);
    }

    #[test]
    fn urls_are_built_once_without_double_slashes_before_the_query() {
        let urls = |base: &str| {
            let s = SimpleHttp::new(base, Agent::new_with_defaults(), Duration::from_secs(1));
            (s.health_url, s.execute_url)
        };
        assert_eq!(
            urls("http://h:1/base/"),
            (
                "http://h:1/base/health".into(),
                "http://h:1/base/tools/execute".into()
            )
        );
        assert_eq!(
            urls("http://h:1/base/?key=k&x=1#f"),
            (
                "http://h:1/base/health?key=k&x=1".into(),
                "http://h:1/base/tools/execute?key=k&x=1".into()
            )
        );
    }
}
