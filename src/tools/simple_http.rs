//! The simple HTTP tool API of earlier deployments: `GET {url}/health` says
//! whether the server is up, `POST {url}/tools/execute` with
//! `{"name", "arguments"}` is answered by `{"result": ...}` (or an
//! `{"error": ...}` / `{"detail": ...}` body).
//!
//! Only the wire format lives here; connection state, retries and the
//! mapping to [`crate::tools::ToolError`] belong to [`super::mcp_client`].
//! This path carries the REST endpoints' traffic when such a server is
//! configured, so it avoids per-call work beyond one request and one parse.

use super::mcp_client::{Failure, classify, snippet};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::time::Duration;
use ureq::Agent;

/// The two URLs of a simple tool server, computed once.
pub(crate) struct SimpleHttp {
    health_url: String,
    execute_url: String,
}

#[derive(Serialize)]
struct Execute<'a> {
    name: &'a str,
    arguments: &'a Value,
}

/// Every field optional: which one is present decides the outcome.
#[derive(Deserialize)]
struct Answer {
    result: Option<Value>,
    error: Option<Value>,
    detail: Option<Value>,
}

impl SimpleHttp {
    pub(crate) fn new(base_url: &str) -> SimpleHttp {
        let base = base_url.trim_end_matches('/');
        SimpleHttp {
            health_url: format!("{base}/health"),
            execute_url: format!("{base}/tools/execute"),
        }
    }

    /// A 2xx from `GET /health` means up; anything else says why not.
    pub(crate) fn health(&self, agent: &Agent, timeout: Duration) -> Result<(), Failure> {
        let resp = agent
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

    /// Runs one tool. The result is the `result` field as the server sent it.
    pub(crate) fn execute(
        &self,
        agent: &Agent,
        name: &str,
        arguments: &Value,
        timeout: Duration,
    ) -> Result<Value, Failure> {
        let empty = Value::Object(Default::default());
        let arguments = if arguments.is_null() {
            &empty
        } else {
            arguments
        };
        let body = serde_json::to_vec(&Execute { name, arguments })
            .map_err(|e| Failure::Protocol(format!("cannot encode the arguments: {e}")))?;
        let resp = agent
            .post(&self.execute_url)
            .header("Content-Type", "application/json")
            .header("Accept", "application/json")
            .send(&body[..])
            .map_err(|e| classify(e, "POST /tools/execute", timeout))?;
        let status = resp.status().as_u16();
        let bytes = resp
            .into_body()
            .with_config()
            .limit(super::mcp_client::MAX_BODY)
            .read_to_vec()
            .map_err(|e| classify(e, "reading the /tools/execute answer", timeout))?;
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
    fn urls_are_built_once_without_double_slashes() {
        let s = SimpleHttp::new("http://h:1/base/");
        assert_eq!(s.health_url, "http://h:1/base/health");
        assert_eq!(s.execute_url, "http://h:1/base/tools/execute");
    }
}
