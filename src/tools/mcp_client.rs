//! The MCP client: an external tool server behind [`ToolProvider`], spoken
//! to as MCP Streamable HTTP (JSON-RPC: `initialize`, `tools/list`,
//! `tools/call`, `ping`) or as the simple HTTP form of earlier deployments
//! ([`super::simple_http`]).
//!
//! It owns the live connection state: which transport works, the MCP session
//! (id and negotiated protocol version), the cached tool list, and a monitor
//! thread that reconnects a server that was down and notices one that went
//! away, so `/health` and the REST endpoints follow reality without a
//! restart. [`McpClient::start`] never touches the network; `status()` only
//! reads an atomic.
//!
//! Deliberately not here: the legacy HTTP+SSE transport (2024-11-05, two
//! endpoints), the stateless 2026-07-28 protocol, the optional GET stream,
//! answering server→client requests (sampling, elicitation, roots: we declare
//! no client capabilities, so servers should not send them), and stdio.

use super::mcp_wire::{
    parse_json_reply, read_sse_reply, take_result, tool_result_value, tool_spec,
};
use super::simple_http::SimpleHttp;
use crate::config::McpTransport;
use crate::tools::{Status, ToolError, ToolProvider, ToolSpec, documentation_tools};
use crossbeam_channel::{RecvTimeoutError, Sender};
use serde::Serialize;
use serde_json::{Value, json};
use std::io::BufReader;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};
use ureq::Agent;
use ureq::http::Response;

/// Protocol revisions of the handshake era that this client understands.
pub const HANDSHAKE_VERSIONS: [&str; 4] = ["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"];
/// The revision offered in `initialize`.
pub const OFFERED_VERSION: &str = "2025-06-18";

/// Largest answer body read into memory (a big document, JSON-escaped twice:
/// once as text content, once as `structuredContent`).
pub(crate) const MAX_BODY: u64 = 64 << 20;
/// A call made while disconnected tries to connect at once, but not more
/// often than this, so a burst of REST requests against a dead server does
/// not become a burst of connection attempts.
const RECONNECT_THROTTLE: Duration = Duration::from_secs(1);
/// Cap for the liveness check, whatever `MCP_TIMEOUT` says.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);
/// Cap for establishing a TCP/TLS connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How often the monitor thread checks the server.
#[derive(Debug, Clone, Copy)]
pub struct MonitorIntervals {
    /// Between liveness checks (`ping` or `GET /health`) while connected.
    pub connected: Duration,
    /// Between connection attempts while disconnected.
    pub disconnected: Duration,
}

impl Default for MonitorIntervals {
    fn default() -> Self {
        MonitorIntervals {
            connected: Duration::from_secs(5),
            disconnected: Duration::from_secs(2),
        }
    }
}

/// Why a request to the server did not produce a value. Internal; callers
/// see [`ToolError`].
#[derive(Debug, Clone)]
pub(crate) enum Failure {
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
    /// A JSON-RPC `error` object.
    Rpc(String),
    /// An answer we cannot use: garbage, 5xx, wrong id, unknown version.
    Protocol(String),
}

impl Failure {
    fn message(&self) -> &str {
        match self {
            Failure::Unreachable(m)
            | Failure::Timeout(m)
            | Failure::SessionExpired(m)
            | Failure::NotMcp(m)
            | Failure::Auth(m)
            | Failure::Remote(m)
            | Failure::Rpc(m)
            | Failure::Protocol(m) => m,
        }
    }
}

/// A working connection. Replaced as a whole (never mutated) so a call can
/// tell whether the connection it failed on is still the current one.
enum Conn {
    Mcp(Session),
    Simple,
}

struct Session {
    id: Option<String>,
    version: String,
    server: Value,
}

impl Conn {
    fn transport_name(&self) -> &'static str {
        match self {
            Conn::Mcp(_) => "streamable-http",
            Conn::Simple => "simple-http",
        }
    }
}

struct State {
    conn: Option<Arc<Conn>>,
    last_error: Option<String>,
    last_failed_attempt: Option<Instant>,
    /// The tool list of one connection; a new connection invalidates it.
    tools: Option<(Arc<Conn>, Arc<Vec<ToolSpec>>)>,
}

/// A client of one external tool server. Shared by all threads.
pub struct McpClient {
    url: String,
    display_url: String,
    /// The `user:password@` part of the URL, scrubbed from every message.
    userinfo: Option<String>,
    mode: McpTransport,
    timeout: Duration,
    agent: Agent,
    simple: SimpleHttp,
    state: Mutex<State>,
    /// Serializes connection attempts (monitor and callers), so one expired
    /// session leads to one `initialize`, not one per waiting thread.
    connect_lock: Mutex<()>,
    connected: AtomicBool,
    next_id: AtomicU64,
    /// Dropping the client drops this sender, which ends the monitor thread.
    _stop: Sender<()>,
}

impl McpClient {
    /// Creates the client and its monitor thread; never blocks on the
    /// network. The monitor connects in the background.
    pub fn start(url: &str, transport: McpTransport, timeout: Duration) -> Arc<McpClient> {
        McpClient::start_with(url, transport, timeout, MonitorIntervals::default())
    }

    /// [`McpClient::start`] with explicit monitor intervals.
    pub fn start_with(
        url: &str,
        transport: McpTransport,
        timeout: Duration,
        intervals: MonitorIntervals,
    ) -> Arc<McpClient> {
        let (stop_tx, stop_rx) = crossbeam_channel::bounded::<()>(0);
        let config = Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(timeout))
            .timeout_connect(Some(timeout.min(CONNECT_TIMEOUT)))
            .max_redirects(0)
            .max_redirects_will_error(false)
            .max_idle_connections(64)
            .max_idle_connections_per_host(64)
            .user_agent(format!("knowledge-vault/{}", env!("CARGO_PKG_VERSION")))
            .proxy(crate::net::proxy_for(url))
            .build();
        let (display_url, userinfo) = split_userinfo(url);
        let client = Arc::new(McpClient {
            url: url.to_string(),
            display_url,
            userinfo,
            mode: transport,
            timeout,
            agent: Agent::with_parts(
                config,
                ureq::unversioned::transport::DefaultConnector::new(),
                CachingResolver::default(),
            ),
            simple: SimpleHttp::new(url),
            state: Mutex::new(State {
                conn: None,
                last_error: None,
                last_failed_attempt: None,
                tools: None,
            }),
            connect_lock: Mutex::new(()),
            connected: AtomicBool::new(false),
            next_id: AtomicU64::new(1),
            _stop: stop_tx,
        });
        let weak = Arc::downgrade(&client);
        let spawned = std::thread::Builder::new()
            .name("mcp-monitor".into())
            .spawn(move || monitor(weak, stop_rx, intervals));
        if let Err(e) = spawned {
            // Still usable: calls connect on demand.
            log::error!("cannot start the MCP monitor thread: {e}");
        }
        client
    }

    fn state(&self) -> MutexGuard<'_, State> {
        crate::sync::lock(&self.state)
    }

    fn current(&self) -> Option<Arc<Conn>> {
        self.state().conn.clone()
    }

    /// Never shows the URL's credentials.
    fn scrub(&self, message: String) -> String {
        let mut m = message;
        if self.url != self.display_url {
            m = m.replace(&self.url, &self.display_url);
        }
        if let Some(u) = &self.userinfo {
            m = m.replace(u.as_str(), "");
        }
        m
    }

    /// Why the server cannot be used, credentials scrubbed; for `/health`
    /// (`last_error`) and error messages.
    fn reason(&self, f: &Failure) -> String {
        let m = self.scrub(f.message().to_string());
        match f {
            Failure::Auth(_) => format!(
                "it refused our credentials ({m}); put valid ones in MCP_SERVER_URL (https://user:password@host/...)"
            ),
            _ => m,
        }
    }

    fn unavailable(&self, reason: &str) -> String {
        format!("MCP server {} unavailable: {reason}", self.display_url)
    }

    fn to_tool_error(&self, f: Failure) -> ToolError {
        let m = self.reason(&f);
        match f {
            Failure::Remote(_) => ToolError::from_remote_message(m),
            Failure::Rpc(_) | Failure::Protocol(_) => ToolError::Failed(m),
            Failure::Auth(_) | Failure::Unreachable(_) | Failure::NotMcp(_) => {
                ToolError::Unavailable(self.unavailable(&m))
            }
            Failure::Timeout(_) | Failure::SessionExpired(_) => ToolError::Unavailable(m),
        }
    }

    // ----- connection management -------------------------------------------------

    /// The current connection, or a fresh one made right now.
    fn connection(&self) -> Result<Arc<Conn>, ToolError> {
        if let Some(c) = self.current() {
            return Ok(c);
        }
        self.connect_now(true).map_err(ToolError::Unavailable)
    }

    /// Connects unless someone else did meanwhile. `throttle`: give up at once
    /// if an attempt failed less than [`RECONNECT_THROTTLE`] ago.
    /// A tool call (`throttle`) never waits behind another attempt: that one
    /// may take up to the connect timeout, and the call then fails at once
    /// instead of holding an HTTP worker. Only the monitor waits its turn.
    fn connect_now(&self, throttle: bool) -> Result<Arc<Conn>, String> {
        let _guard = match self.connect_lock.try_lock() {
            Ok(g) => g,
            Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
            Err(std::sync::TryLockError::WouldBlock) if throttle => {
                let st = self.state();
                if let Some(c) = &st.conn {
                    return Ok(c.clone());
                }
                let why = st
                    .last_error
                    .as_deref()
                    .unwrap_or("a connection attempt is in progress");
                return Err(self.unavailable(why));
            }
            Err(std::sync::TryLockError::WouldBlock) => crate::sync::lock(&self.connect_lock),
        };
        {
            let st = self.state();
            if let Some(c) = &st.conn {
                return Ok(c.clone());
            }
            if throttle
                && st
                    .last_failed_attempt
                    .is_some_and(|t| t.elapsed() < RECONNECT_THROTTLE)
            {
                return Err(self.unavailable(st.last_error.as_deref().unwrap_or_default()));
            }
        }
        match self.detect() {
            Ok(conn) => {
                let conn = Arc::new(conn);
                match &*conn {
                    Conn::Mcp(s) => log::info!(
                        "MCP server {} connected (streamable-http, protocol {}, session {})",
                        self.display_url,
                        s.version,
                        if s.id.is_some() { "yes" } else { "none" }
                    ),
                    Conn::Simple => {
                        log::info!("MCP server {} connected (simple-http)", self.display_url)
                    }
                }
                let mut st = self.state();
                st.conn = Some(conn.clone());
                st.last_error = None;
                st.last_failed_attempt = None;
                self.connected.store(true, Ordering::Release);
                Ok(conn)
            }
            Err(f) => {
                let reason = self.reason(&f);
                let mut st = self.state();
                if st.last_error.as_deref() != Some(reason.as_str()) {
                    log::warn!("{}", self.unavailable(&reason));
                }
                st.last_error = Some(reason.clone());
                st.last_failed_attempt = Some(Instant::now());
                self.connected.store(false, Ordering::Release);
                Err(self.unavailable(&reason))
            }
        }
    }

    /// Drops `conn` if it is still the current connection. `why` is recorded
    /// when the server was lost (not for a routine session renewal).
    fn forget(&self, conn: &Arc<Conn>, why: &Failure) {
        let mut st = self.state();
        let is_current = st.conn.as_ref().is_some_and(|c| Arc::ptr_eq(c, conn));
        if !is_current {
            return;
        }
        st.conn = None;
        if let Failure::SessionExpired(m) = why {
            log::info!("MCP session expired ({m}); initializing again");
            return;
        }
        let reason = self.reason(why);
        log::warn!("MCP server {} lost: {reason}", self.display_url);
        st.last_error = Some(reason);
        self.connected.store(false, Ordering::Release);
    }

    /// Finds a transport that works, as `MCP_TRANSPORT` allows.
    fn detect(&self) -> Result<Conn, Failure> {
        match self.mode {
            McpTransport::StreamableHttp => self.handshake().map(Conn::Mcp),
            McpTransport::SimpleHttp => self
                .simple
                .health(&self.agent, self.timeout.min(PROBE_TIMEOUT))
                .map(|()| Conn::Simple),
            McpTransport::Auto => match self.handshake() {
                Ok(s) => Ok(Conn::Mcp(s)),
                Err(Failure::NotMcp(why)) => {
                    match self
                        .simple
                        .health(&self.agent, self.timeout.min(PROBE_TIMEOUT))
                    {
                        Ok(()) => Ok(Conn::Simple),
                        Err(f) => Err(Failure::NotMcp(format!(
                            "neither an MCP endpoint (initialize: {why}) nor a simple tool server ({})",
                            f.message()
                        ))),
                    }
                }
                Err(f) => Err(f),
            },
        }
    }

    /// Runs `op` on a connection; an expired session or a lost connection is
    /// renewed once and `op` retried.
    fn with_conn<T>(&self, op: impl Fn(&Conn) -> Result<T, Failure>) -> Result<T, ToolError> {
        let mut retried = false;
        loop {
            let conn = self.connection()?;
            match op(&conn) {
                Ok(v) => return Ok(v),
                Err(f @ (Failure::SessionExpired(_) | Failure::Unreachable(_))) => {
                    self.forget(&conn, &f);
                    if retried {
                        return Err(self.to_tool_error(f));
                    }
                    retried = true;
                }
                Err(f) => return Err(self.to_tool_error(f)),
            }
        }
    }

    /// One monitor tick: connect if disconnected, else check liveness.
    fn check(&self) {
        let Some(conn) = self.current() else {
            let _ = self.connect_now(false);
            return;
        };
        let probe = match &*conn {
            Conn::Mcp(s) => self
                .request(s, "ping", None::<()>, Some(self.timeout.min(PROBE_TIMEOUT)))
                .map(|_| ()),
            Conn::Simple => self
                .simple
                .health(&self.agent, self.timeout.min(PROBE_TIMEOUT)),
        };
        match probe {
            // A server without `ping` still answered: it is alive.
            Ok(()) | Err(Failure::Rpc(_)) => {}
            Err(f @ Failure::SessionExpired(_)) => {
                self.forget(&conn, &f);
                let _ = self.connect_now(false);
            }
            Err(f) => self.forget(&conn, &f),
        }
    }

    // ----- Streamable HTTP -------------------------------------------------------

    fn handshake(&self) -> Result<Session, Failure> {
        let params = json!({
            "protocolVersion": OFFERED_VERSION,
            "capabilities": {},
            "clientInfo": {"name": "knowledge-vault", "version": env!("CARGO_PKG_VERSION")},
        });
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (result, session_id) =
            self.post_request(None, id, "initialize", Some(&params), None)?;
        let version = result
            .get("protocolVersion")
            .and_then(Value::as_str)
            .ok_or_else(|| {
                Failure::Protocol(format!(
                    "the initialize answer has no protocolVersion: {}",
                    snippet(result.to_string().as_bytes())
                ))
            })?;
        if !HANDSHAKE_VERSIONS.contains(&version) {
            return Err(Failure::Protocol(format!(
                "the server answered protocol version {version:?}, which this client does not speak (it speaks {})",
                HANDSHAKE_VERSIONS.join(", ")
            )));
        }
        let session = Session {
            id: session_id,
            version: version.to_string(),
            server: result.get("serverInfo").cloned().unwrap_or(Value::Null),
        };
        self.post_notification(&session, "notifications/initialized")?;
        Ok(session)
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
                req = req.header("Mcp-Session-Id", id);
            }
            req = req.header("MCP-Protocol-Version", &s.version);
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
            jsonrpc: "2.0",
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
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let session_id = header("mcp-session-id");
        let content_type = header("content-type")
            .unwrap_or_default()
            .to_ascii_lowercase();
        let location = header("location");
        let had_session = session.is_some_and(|s| s.id.is_some());

        if (200..300).contains(&status) && status != 202 && status != 204 {
            if content_type.starts_with("text/event-stream") {
                // Bounded like a JSON answer: a server cannot stream forever.
                let reader =
                    BufReader::new(resp.into_body().into_with_config().limit(MAX_BODY).reader());
                let (message, tools_changed) = read_sse_reply(reader, id, method, limit)?;
                if tools_changed {
                    self.state().tools = None;
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
        let body = serde_json::to_vec(&json!({"jsonrpc": "2.0", "method": method}))
            .map_err(|e| Failure::Protocol(e.to_string()))?;
        let resp = self
            .post(Some(session), None, &body)
            .map_err(|e| classify(e, method, self.timeout))?;
        let status = resp.status().as_u16();
        let location = resp
            .headers()
            .get("location")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
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

    fn list_tools(&self, session: &Session) -> Result<Vec<ToolSpec>, Failure> {
        let mut tools = Vec::new();
        let mut cursor: Option<String> = None;
        // Bounded: a server that keeps handing out cursors is not followed forever.
        for _ in 0..1000 {
            let params = match &cursor {
                Some(c) => json!({"cursor": c}),
                None => json!({}),
            };
            let result = self.request(session, "tools/list", Some(params), None)?;
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
}

impl ToolProvider for McpClient {
    fn call(&self, name: &str, arguments: &Value) -> Result<Value, ToolError> {
        #[derive(Serialize)]
        struct CallParams<'a> {
            name: &'a str,
            arguments: &'a Value,
        }
        let empty = Value::Object(Default::default());
        let arguments = if arguments.is_null() {
            &empty
        } else {
            arguments
        };
        self.with_conn(|conn| match conn {
            Conn::Simple => self
                .simple
                .execute(&self.agent, name, arguments, self.timeout),
            Conn::Mcp(s) => {
                let result =
                    self.request(s, "tools/call", Some(CallParams { name, arguments }), None)?;
                tool_result_value(result)
            }
        })
    }

    fn tools(&self) -> Result<Vec<ToolSpec>, ToolError> {
        let cached = self.with_conn(|conn| {
            let mut st = self.state();
            if let Some((c, tools)) = &st.tools
                && std::ptr::eq(&**c, conn)
            {
                return Ok(tools.clone());
            }
            let current = st.conn.clone();
            drop(st);
            let tools = Arc::new(match conn {
                Conn::Simple => documentation_tools(),
                Conn::Mcp(s) => self.list_tools(s)?,
            });
            st = self.state();
            if let Some(c) = current.filter(|c| std::ptr::eq(&**c, conn)) {
                st.tools = Some((c, tools.clone()));
            }
            Ok(tools)
        })?;
        Ok((*cached).clone())
    }

    fn status(&self) -> Status {
        if self.connected.load(Ordering::Acquire) {
            Status::Connected
        } else {
            Status::Disconnected
        }
    }

    fn health_details(&self) -> Value {
        let st = self.state();
        let mut details = json!({
            "transport": st.conn.as_deref().map(Conn::transport_name),
            "configured_transport": match self.mode {
                McpTransport::Auto => "auto",
                McpTransport::StreamableHttp => "streamable-http",
                McpTransport::SimpleHttp => "simple-http",
            },
            "url": self.display_url,
            "last_error": st.last_error,
        });
        if let Some(Conn::Mcp(s)) = st.conn.as_deref() {
            details["protocol_version"] = json!(s.version);
            if let Some(name) = s.server.get("name") {
                details["server"] = json!({"name": name, "version": s.server.get("version")});
            }
        }
        details
    }
}

/// The monitor thread: ends when the client is dropped (its sender with it).
fn monitor(
    client: Weak<McpClient>,
    stop: crossbeam_channel::Receiver<()>,
    intervals: MonitorIntervals,
) {
    let mut wait = Duration::ZERO;
    loop {
        match stop.recv_timeout(wait) {
            Err(RecvTimeoutError::Timeout) => {}
            Ok(()) | Err(RecvTimeoutError::Disconnected) => return,
        }
        let Some(client) = client.upgrade() else {
            return;
        };
        client.check();
        wait = match client.status() {
            Status::Connected => intervals.connected,
            Status::Disconnected => intervals.disconnected,
        };
    }
}

/// Remembers the server's addresses for a while. ureq resolves the host on
/// every request, even one that reuses a pooled connection, and with a timeout
/// set it does so on a freshly spawned thread: at thousands of calls a second
/// that thread churn, not the HTTP exchange, would be the cost.
#[derive(Debug, Default)]
struct CachingResolver {
    cached: Mutex<
        Option<(
            String,
            Instant,
            ureq::unversioned::resolver::ResolvedSocketAddrs,
        )>,
    >,
}

const RESOLVE_TTL: Duration = Duration::from_secs(30);

impl ureq::unversioned::resolver::Resolver for CachingResolver {
    fn resolve(
        &self,
        uri: &ureq::http::Uri,
        config: &ureq::config::Config,
        timeout: ureq::unversioned::transport::NextTimeout,
    ) -> Result<ureq::unversioned::resolver::ResolvedSocketAddrs, ureq::Error> {
        let key = uri.authority().map(|a| a.as_str()).unwrap_or_default();
        let scheme = uri.scheme_str().unwrap_or_default();
        {
            let cached = crate::sync::lock(&self.cached);
            if let Some((k, at, addrs)) = &*cached
                && k.len() == scheme.len() + key.len()
                && k.starts_with(scheme)
                && k.ends_with(key)
                && at.elapsed() < RESOLVE_TTL
            {
                return Ok(addrs.clone());
            }
        }
        let addrs = ureq::unversioned::resolver::DefaultResolver::default()
            .resolve(uri, config, timeout)?;
        *crate::sync::lock(&self.cached) =
            Some((format!("{scheme}{key}"), Instant::now(), addrs.clone()));
        Ok(addrs)
    }
}

// ----- wire helpers (shared with simple_http) -----------------------------------

/// Maps a ureq error to a [`Failure`]; `what` names the request.
pub(crate) fn classify(e: ureq::Error, what: &str, timeout: Duration) -> Failure {
    use std::io::ErrorKind;
    match e {
        ureq::Error::Timeout(ureq::Timeout::Connect | ureq::Timeout::Resolve) => {
            Failure::Unreachable(format!("{what}: could not connect in time"))
        }
        ureq::Error::Timeout(_) => Failure::Timeout(format!(
            "{what}: the MCP server did not answer within {} s (MCP_TIMEOUT)",
            secs(timeout)
        )),
        ureq::Error::Io(io) => match io.kind() {
            ErrorKind::ConnectionRefused => {
                Failure::Unreachable(format!("{what}: connection refused"))
            }
            ErrorKind::TimedOut | ErrorKind::WouldBlock => Failure::Timeout(format!(
                "{what}: the MCP server did not answer within {} s (MCP_TIMEOUT)",
                secs(timeout)
            )),
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

fn secs(d: Duration) -> String {
    let s = d.as_secs_f64();
    if s.fract() == 0.0 {
        format!("{}", s as u64)
    } else {
        format!("{s:.1}")
    }
}

/// The start of a body, for error messages.
pub(crate) fn snippet(bytes: &[u8]) -> String {
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

fn read_body(
    resp: Response<ureq::Body>,
    what: &str,
    timeout: Duration,
) -> Result<Vec<u8>, Failure> {
    resp.into_body()
        .with_config()
        .limit(MAX_BODY)
        .read_to_vec()
        .map_err(|e| classify(e, what, timeout))
}

/// What a non-2xx answer means.
fn http_failure(
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

/// `https://user:pass@host/x` → (`https://host/x`, `Some("user:pass@")`).
fn split_userinfo(url: &str) -> (String, Option<String>) {
    if let Some(scheme_end) = url.find("://") {
        let rest = &url[scheme_end + 3..];
        let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        if let Some(at) = rest[..authority_end].rfind('@') {
            let display = format!("{}{}", &url[..scheme_end + 3], &rest[at + 1..]);
            return (display, Some(rest[..=at].to_string()));
        }
    }
    (url.to_string(), None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn userinfo_is_split_off() {
        assert_eq!(
            split_userinfo("https://u:p%40ss@host:8/mcp?x=a@b"),
            (
                "https://host:8/mcp?x=a@b".to_string(),
                Some("u:p%40ss@".to_string())
            )
        );
        assert_eq!(
            split_userinfo("http://h/mcp"),
            ("http://h/mcp".to_string(), None)
        );
    }
}
