//! What went wrong talking to the server, and how that is told: a ureq error
//! or an HTTP status becomes a [`Failure`] (which decides whether the client
//! retries, reconnects or gives up), and a failure becomes the
//! [`ToolError`] and the message that callers, logs and `/health` see, with
//! the URL's secrets scrubbed.

use super::redact::Redactor;
use crate::tools::ToolError;
use serde_json::Value;
use std::time::Duration;

/// Why a request to the server did not produce a value. Internal; callers
/// see [`ToolError`].
#[derive(Debug, Clone)]
pub(super) enum Failure {
    /// No connection: refused, reset, DNS, TLS, connect timeout.
    Unreachable(String),
    /// Connected, but no complete answer within the time allowed.
    Timeout(String),
    /// 404, or a 400 naming the session: initialize again.
    SessionExpired(String),
    /// The URL answers HTTP but not as an MCP endpoint (auto-detection).
    NotMcp(String),
    /// 401/403.
    Auth(String),
    /// The tool ran and failed (`isError`, simple-form `error`/`detail`).
    Remote(String),
    /// The tool ran and found nothing (the simple form's `{"result": null}`).
    NotFound(String),
    /// A JSON-RPC `error` object.
    Rpc(String),
    /// An answer we cannot use: garbage, 5xx, wrong id, unknown version.
    Protocol(String),
}

impl Failure {
    pub(super) fn message(&self) -> &str {
        match self {
            Failure::Unreachable(m)
            | Failure::Timeout(m)
            | Failure::SessionExpired(m)
            | Failure::NotMcp(m)
            | Failure::Auth(m)
            | Failure::Remote(m)
            | Failure::NotFound(m)
            | Failure::Rpc(m)
            | Failure::Protocol(m) => m,
        }
    }

    /// Why the server cannot be used, secrets scrubbed: for `/health`
    /// (`last_error`), logs and error messages.
    pub(super) fn reason(&self, redactor: &Redactor) -> String {
        let m = redactor.scrub(self.message());
        match self {
            Failure::Auth(_) => format!(
                "it refused our credentials ({m}); put valid ones in MCP_SERVER_URL (https://user:password@host/...)"
            ),
            _ => m,
        }
    }

    pub(super) fn into_tool_error(self, redactor: &Redactor) -> ToolError {
        let m = self.reason(redactor);
        match self {
            Failure::Remote(_) => ToolError::from_remote_message(m),
            Failure::NotFound(_) => ToolError::NotFound(m),
            Failure::Rpc(_) | Failure::Protocol(_) => ToolError::Failed(m),
            Failure::Auth(_) | Failure::Unreachable(_) | Failure::NotMcp(_) => {
                ToolError::Unavailable(unavailable(redactor, &m))
            }
            Failure::Timeout(_) | Failure::SessionExpired(_) => ToolError::Unavailable(m),
        }
    }
}

/// "MCP server URL unavailable: reason", the URL as it may be shown.
pub(super) fn unavailable(redactor: &Redactor, reason: &str) -> String {
    format!("MCP server {} unavailable: {reason}", redactor.url())
}

/// Maps a ureq error to a [`Failure`]; `what` names the request.
pub(super) fn classify(e: ureq::Error, what: &str, timeout: Duration) -> Failure {
    use std::io::ErrorKind;
    let no_answer = || {
        Failure::Timeout(format!(
            "{what}: the MCP server did not answer within {} s (MCP_TIMEOUT)",
            secs(timeout)
        ))
    };
    match e {
        ureq::Error::Timeout(ureq::Timeout::Connect | ureq::Timeout::Resolve) => {
            Failure::Unreachable(format!("{what}: could not connect in time"))
        }
        ureq::Error::Timeout(_) => no_answer(),
        ureq::Error::Io(io) => match io.kind() {
            ErrorKind::ConnectionRefused => {
                Failure::Unreachable(format!("{what}: connection refused"))
            }
            ErrorKind::TimedOut | ErrorKind::WouldBlock => no_answer(),
            _ => Failure::Unreachable(format!("{what}: {io}")),
        },
        ureq::Error::ConnectionFailed => Failure::Unreachable(format!("{what}: connection failed")),
        ureq::Error::HostNotFound => Failure::Unreachable(format!("{what}: host not found")),
        e @ (ureq::Error::Tls(_) | ureq::Error::Rustls(_)) => {
            Failure::Unreachable(format!("{what}: TLS: {e}"))
        }
        ureq::Error::BodyExceedsLimit(n) => {
            Failure::Protocol(format!("{what}: the answer is larger than {n} bytes"))
        }
        other => Failure::Protocol(format!("{what}: {other}")),
    }
}

/// What a non-2xx answer to a Streamable HTTP POST means.
pub(super) fn http_failure(
    status: u16,
    body: &[u8],
    method: &str,
    had_session: bool,
    location: Option<&str>,
) -> Failure {
    let parsed: Option<Value> = serde_json::from_slice(body).ok();
    let rpc_message = parsed.as_ref().and_then(|v| {
        let e = v.get("error")?;
        Some(match e {
            Value::String(s) => s.clone(),
            _ => e
                .get("message")
                .and_then(Value::as_str)
                .map(str::to_string)
                .unwrap_or_else(|| e.to_string()),
        })
    });
    let is_rpc = rpc_message.is_some()
        && parsed
            .as_ref()
            .is_some_and(|v| v.get("jsonrpc").is_some() || v.get("id").is_some());
    let detail = rpc_message.clone().unwrap_or_else(|| snippet(body));
    match status {
        401 | 403 => Failure::Auth(format!("{method}: HTTP {status}: {detail}")),
        404 if had_session => Failure::SessionExpired(format!("{method}: HTTP 404: {detail}")),
        400 if had_session
            && String::from_utf8_lossy(body)
                .to_ascii_lowercase()
                .contains("session") =>
        {
            Failure::SessionExpired(format!("{method}: HTTP 400: {detail}"))
        }
        300..=399 => Failure::Protocol(format!(
            "{method}: HTTP {status}: the server redirects to {}; set MCP_SERVER_URL to the MCP endpoint itself",
            location.unwrap_or("(no Location)")
        )),
        400..=499 if is_rpc => Failure::Rpc(format!("{method}: HTTP {status}: {detail}")),
        400 | 404 | 405 | 415 => Failure::NotMcp(format!("{method}: HTTP {status}: {detail}")),
        202 | 204 => Failure::NotMcp(format!(
            "{method}: HTTP {status} without a response (a legacy HTTP+SSE server? this client speaks Streamable HTTP)"
        )),
        _ => Failure::Protocol(format!("{method}: HTTP {status}: {detail}")),
    }
}

/// Seconds as an operator wrote them in `MCP_TIMEOUT` (`5`, `0.5`).
pub(super) fn secs(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s.fract() == 0.0 {
        format!("{}", s as u64)
    } else {
        format!("{s:.1}")
    }
}

/// The start of a body, for error messages.
pub(super) fn snippet(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let text = text.trim();
    if text.is_empty() {
        return "(empty body)".into();
    }
    let mut end = text.len().min(200);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    if end < text.len() {
        format!("{}…", &text[..end])
    } else {
        text.to_string()
    }
}
