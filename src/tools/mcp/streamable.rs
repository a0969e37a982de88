//! The MCP Streamable HTTP transport, client side: every JSON-RPC message is
//! a POST to the one endpoint; a request is answered by a JSON body or by an
//! SSE stream that carries the response among other messages; a session is
//! an `Mcp-Session-Id` header handed out by `initialize`.
//!
//! This module speaks the protocol and knows nothing of connection state:
//! which session is current, and what to do when one expires, is
//! [`super::client`]'s job. Deliberately not here: the legacy HTTP+SSE
//! transport (2024-11-05, two endpoints), the optional GET stream, and
//! answering server→client requests (we declare no client capabilities, so
//! servers should not send them; they are skipped).

use super::agent::{MAX_BODY, read_body};
use super::failure::{Failure, classify, http_failure, snippet};
use super::protocol::{
    INITIALIZE, INITIALIZED, JSONRPC_VERSION, PING, PREFERRED_VERSION, PROTOCOL_VERSION_HEADER,
    SESSION_ID_HEADER, SUPPORTED_VERSIONS, TOOLS_CALL, TOOLS_LIST,
};
use super::wire::{parse_json_reply, read_sse_reply, take_result, tool_result_value, tool_spec};
use crate::tools::ToolSpec;
use serde::Serialize;
use serde_json::{Value, json};
use std::io::BufReader;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;
use ureq::Agent;
use ureq::http::Response;

/// A negotiated session. Never changed: a new `initialize` makes a new one.
pub(super) struct Session {
    /// `None` for a server that hands out no session id.
    pub id: Option<String>,
    pub version: String,
    /// The server's `serverInfo`.
    pub server: Value,
}

pub(super) struct StreamableHttp {
    url: String,
    agent: Agent,
    timeout: Duration,
    next_id: AtomicU64,
    /// Set when a server announced `notifications/tools/list_changed`.
    tools_changed: AtomicBool,
}

impl StreamableHttp {
    pub(super) fn new(url: &str, agent: Agent, timeout: Duration) -> StreamableHttp {
        StreamableHttp {
            url: url.to_string(),
            agent,
            timeout,
            next_id: AtomicU64::new(1),
            tools_changed: AtomicBool::new(false),
        }
    }

    /// `initialize`, then `notifications/initialized`.
    pub(super) fn handshake(&self) -> Result<Session, Failure> {
        let params = json!({
            "protocolVersion": PREFERRED_VERSION,
            "capabilities": {},
            "clientInfo": {"name": "knowledge-vault", "version": env!("CARGO_PKG_VERSION")},
        });
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (result, session_id) = self.post_request(None, id, INITIALIZE, Some(&params), None)?;
        let version = result
            .get("protocolVersion")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                Failure::Protocol(format!(
                    "the initialize answer has no protocolVersion: {}",
                    snippet(result.to_string().as_bytes())
                ))
            })?;
        if !SUPPORTED_VERSIONS.contains(&version) {
            return Err(Failure::Protocol(format!(
                "the server answered protocol version {version:?}, which this client does not speak (it speaks {})",
                SUPPORTED_VERSIONS.join(", ")
            )));
        }
        let session = Session {
            id: session_id,
            version: version.to_string(),
            server: result.get("serverInfo").cloned().unwrap_or(Value::Null),
        };
        self.post_notification(&session, INITIALIZED)?;
        Ok(session)
    }

    /// `ping`, bounded by `timeout`. A server without `ping` still answered:
    /// a JSON-RPC error counts as alive.
    pub(super) fn ping(&self, session: &Session, timeout: Duration) -> Result<(), Failure> {
        match self.request(session, PING, None::<()>, Some(timeout)) {
            Ok(_) | Err(Failure::Rpc(_)) => Ok(()),
            Err(f) => Err(f),
        }
    }

    /// Every page of `tools/list`.
    pub(super) fn list_tools(&self, session: &Session) -> Result<Vec<ToolSpec>, Failure> {
        let mut tools = Vec::new();
        let mut cursor: Option<String> = None;
        // Bounded: a server that keeps handing out cursors is not followed forever.
        for _ in 0..1000 {
            let params = match &cursor {
                Some(c) => json!({"cursor": c}),
                None => json!({}),
            };
            let result = self.request(session, TOOLS_LIST, Some(params), None)?;
            let Some(list) = result.get("tools").and_then(Value::as_array) else {
                return Err(Failure::Protocol(format!(
                    "the tools/list answer has no tools array: {}",
                    snippet(result.to_string().as_bytes())
                )));
            };
            tools.extend(list.iter().filter_map(tool_spec));
            let next = result
                .get("nextCursor")
                .and_then(Value::as_str)
                .filter(|c| !c.is_empty())
                .map(str::to_string);
            if next.is_none() || next == cursor {
                return Ok(tools);
            }
            cursor = next;
        }
        Ok(tools)
    }

    /// `tools/call`: the tool's value, or its `isError` text as a failure.
    pub(super) fn call_tool(
        &self,
        session: &Session,
        name: &str,
        arguments: &Value,
    ) -> Result<Value, Failure> {
        #[derive(Serialize)]
        struct CallParams<'a> {
            name: &'a str,
            arguments: &'a Value,
        }
        let result = self.request(
            session,
            TOOLS_CALL,
            Some(CallParams { name, arguments }),
            None,
        )?;
        tool_result_value(result)
    }

    /// True once after the server announced that its tool list changed.
    pub(super) fn take_tools_changed(&self) -> bool {
        self.tools_changed.swap(false, Ordering::AcqRel)
    }

    /// A request on an established session.
    fn request<P: Serialize>(
        &self,
        session: &Session,
        method: &str,
        params: Option<P>,
        timeout: Option<Duration>,
    ) -> Result<Value, Failure> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        match self.post_request(Some(session), id, method, params, timeout) {
            Ok((result, _)) => Ok(result),
            // After a handshake, "not MCP" is simply a bad answer.
            Err(Failure::NotMcp(m)) => Err(Failure::Protocol(m)),
            Err(f) => Err(f),
        }
    }

    fn post(
        &self,
        session: Option<&Session>,
        timeout: Option<Duration>,
        body: &[u8],
    ) -> Result<Response<ureq::Body>, ureq::Error> {
        let mut req = self
            .agent
            .post(&self.url)
            .header("Content-Type", "application/json")
            .header("Accept", "application/json, text/event-stream");
        if let Some(s) = session {
            if let Some(id) = &s.id {
                req = req.header(SESSION_ID_HEADER, id);
            }
            req = req.header(PROTOCOL_VERSION_HEADER, &s.version);
        }
        match timeout {
            Some(t) => req.config().timeout_global(Some(t)).build().send(body),
            None => req.send(body),
        }
    }

    /// Posts one JSON-RPC request; returns its `result` and the
    /// `Mcp-Session-Id` header of the answer.
    fn post_request<P: Serialize>(
        &self,
        session: Option<&Session>,
        id: u64,
        method: &str,
        params: Option<P>,
        timeout: Option<Duration>,
    ) -> Result<(Value, Option<String>), Failure> {
        #[derive(Serialize)]
        struct Request<'a, P> {
            jsonrpc: &'static str,
            id: u64,
            method: &'a str,
            #[serde(skip_serializing_if = "Option::is_none")]
            params: Option<P>,
        }
        let body = serde_json::to_vec(&Request {
            jsonrpc: JSONRPC_VERSION,
            id,
            method,
            params,
        })
        .map_err(|e| Failure::Protocol(format!("cannot encode the request: {e}")))?;
        let limit = timeout.unwrap_or(self.timeout);
        let resp = self
            .post(session, timeout, &body)
            .map_err(|e| classify(e, method, limit))?;
        let status = resp.status().as_u16();
        let session_id = header(&resp, SESSION_ID_HEADER);
        let content_type = header(&resp, "content-type")
            .unwrap_or_default()
            .to_ascii_lowercase();
        let location = header(&resp, "location");
        let had_session = session.is_some_and(|s| s.id.is_some());

        if (200..300).contains(&status) && status != 202 && status != 204 {
            if content_type.starts_with("text/event-stream") {
                // Bounded like a JSON answer: a server cannot stream forever.
                let reader =
                    BufReader::new(resp.into_body().into_with_config().limit(MAX_BODY).reader());
                let (message, tools_changed) = read_sse_reply(reader, id, method, limit)?;
                if tools_changed {
                    self.tools_changed.store(true, Ordering::Release);
                }
                return take_result(message, method).map(|r| (r, session_id));
            }
            let bytes = read_body(resp, method, limit)?;
            let message = parse_json_reply(&bytes, id, method)?;
            return take_result(message, method).map(|r| (r, session_id));
        }

        let bytes = read_body(resp, method, limit).unwrap_or_default();
        Err(http_failure(
            status,
            &bytes,
            method,
            had_session,
            location.as_deref(),
        ))
    }

    /// Posts a notification; servers answer 202 with no body.
    fn post_notification(&self, session: &Session, method: &str) -> Result<(), Failure> {
        let body = serde_json::to_vec(&json!({"jsonrpc": JSONRPC_VERSION, "method": method}))
            .map_err(|e| Failure::Protocol(e.to_string()))?;
        let resp = self
            .post(Some(session), None, &body)
            .map_err(|e| classify(e, method, self.timeout))?;
        let status = resp.status().as_u16();
        let location = header(&resp, "location");
        let bytes = read_body(resp, method, self.timeout).unwrap_or_default();
        if (200..300).contains(&status) {
            return Ok(());
        }
        Err(http_failure(
            status,
            &bytes,
            method,
            session.id.is_some(),
            location.as_deref(),
        ))
    }
}

fn header(resp: &Response<ureq::Body>, name: &str) -> Option<String> {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}
