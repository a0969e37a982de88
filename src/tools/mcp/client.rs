//! [`McpClient`]: the live connection to one tool server, behind
//! [`ToolProvider`].
//!
//! It owns the connection state: which transport works (found once per
//! connection, as `MCP_TRANSPORT` allows), the MCP session, the cached tool
//! list, the last error, and a monitor thread that reconnects a server that
//! was down and notices one that went away, so `/health` and the REST
//! endpoints follow reality without a restart. [`McpClient::start`] never
//! touches the network; `status()` only reads an atomic.
//!
//! One connection attempt runs at a time. A tool call that finds one under
//! way waits for its outcome, but never past its own deadline
//! (`MCP_TIMEOUT` from when the call started), so a server that hangs holds
//! a caller no longer than one request would; the monitor never waits.

use super::failure::{Failure, secs, unavailable};
use super::redact::Redactor;
use super::simple_http::SimpleHttp;
use super::streamable::{Session, StreamableHttp};
use crate::config::McpTransport;
use crate::tools::{Status, ToolError, ToolProvider, ToolSpec, documentation_tools};
use crossbeam_channel::{RecvTimeoutError, Sender};
use serde_json::{Value, json};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

/// A call made while disconnected tries to connect at once, but not more
/// often than this, so a burst of REST requests against a dead server does
/// not become a burst of connection attempts.
const RECONNECT_THROTTLE: Duration = Duration::from_secs(1);
/// Cap for the liveness check, whatever `MCP_TIMEOUT` says.
const PROBE_TIMEOUT: Duration = Duration::from_secs(5);

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

/// A working connection. Replaced as a whole (never mutated) so a call can
/// tell whether the connection it failed on is still the current one.
enum Conn {
    Mcp(Session),
    Simple,
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
    /// A connection attempt is under way (by the monitor or a call).
    connecting: bool,
    last_error: Option<String>,
    last_failed_attempt: Option<Instant>,
    /// The tool list of one connection; a new connection invalidates it.
    tools: Option<(Arc<Conn>, Arc<Vec<ToolSpec>>)>,
}

/// A client of one external tool server. Shared by all threads.
pub struct McpClient {
    redactor: Redactor,
    mode: McpTransport,
    timeout: Duration,
    streamable: StreamableHttp,
    simple: SimpleHttp,
    state: Mutex<State>,
    /// Signalled when a connection attempt ends, with `connecting` false.
    attempt_done: Condvar,
    connected: AtomicBool,
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
        let agent = super::agent::agent(url, timeout);
        let client = Arc::new(McpClient {
            redactor: Redactor::new(url),
            mode: transport,
            timeout,
            streamable: StreamableHttp::new(url, agent.clone(), timeout),
            simple: SimpleHttp::new(url, agent, timeout),
            state: Mutex::new(State {
                conn: None,
                connecting: false,
                last_error: None,
                last_failed_attempt: None,
                tools: None,
            }),
            attempt_done: Condvar::new(),
            connected: AtomicBool::new(false),
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

    fn unavailable(&self, reason: &str) -> String {
        unavailable(&self.redactor, reason)
    }

    // ----- connection management -------------------------------------------------

    /// The current connection, or one made (or waited for) before `deadline`.
    /// `None`: the monitor, which never waits for another attempt and is not
    /// throttled.
    fn connect(&self, deadline: Option<Instant>) -> Result<Arc<Conn>, String> {
        let mut st = self.state();
        while st.connecting {
            let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
            match left {
                None => return Err(self.unavailable("a connection attempt is in progress")),
                Some(Duration::ZERO) => {
                    return Err(self.unavailable(&format!(
                        "a connection attempt is still in progress after {} s (MCP_TIMEOUT)",
                        secs(self.timeout)
                    )));
                }
                Some(left) => {
                    st = match self.attempt_done.wait_timeout(st, left) {
                        Ok((g, _)) => g,
                        Err(p) => p.into_inner().0,
                    };
                }
            }
        }
        if let Some(c) = &st.conn {
            return Ok(c.clone());
        }
        // Also what a call that waited for a failed attempt gets: its error.
        if deadline.is_some()
            && st
                .last_failed_attempt
                .is_some_and(|t| t.elapsed() < RECONNECT_THROTTLE)
        {
            return Err(self.unavailable(st.last_error.as_deref().unwrap_or_default()));
        }
        st.connecting = true;
        drop(st);
        let _attempt = Attempt(self);
        self.attempt()
    }

    /// One connection attempt; records its outcome.
    fn attempt(&self) -> Result<Arc<Conn>, String> {
        match self.detect() {
            Ok(conn) => {
                let conn = Arc::new(conn);
                let url = self.redactor.url();
                match &*conn {
                    Conn::Mcp(s) => log::info!(
                        "MCP server {url} connected (streamable-http, protocol {}, session {})",
                        s.version,
                        if s.id.is_some() { "yes" } else { "none" }
                    ),
                    Conn::Simple => log::info!("MCP server {url} connected (simple-http)"),
                }
                let mut st = self.state();
                st.conn = Some(conn.clone());
                st.last_error = None;
                st.last_failed_attempt = None;
                self.connected.store(true, Ordering::Release);
                Ok(conn)
            }
            Err(f) => {
                let reason = f.reason(&self.redactor);
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
            log::info!(
                "MCP session expired ({}); initializing again",
                self.redactor.scrub(m)
            );
            return;
        }
        let reason = why.reason(&self.redactor);
        log::warn!("MCP server {} lost: {reason}", self.redactor.url());
        st.last_error = Some(reason);
        self.connected.store(false, Ordering::Release);
    }

    /// Finds a transport that works, as `MCP_TRANSPORT` allows.
    fn detect(&self) -> Result<Conn, Failure> {
        let probe = self.timeout.min(PROBE_TIMEOUT);
        match self.mode {
            McpTransport::StreamableHttp => self.streamable.handshake().map(Conn::Mcp),
            McpTransport::SimpleHttp => self.simple.health(probe).map(|()| Conn::Simple),
            McpTransport::Auto => match self.streamable.handshake() {
                Ok(s) => Ok(Conn::Mcp(s)),
                Err(Failure::NotMcp(why)) => match self.simple.health(probe) {
                    Ok(()) => Ok(Conn::Simple),
                    Err(f) => Err(Failure::NotMcp(format!(
                        "neither an MCP endpoint (initialize: {why}) nor a simple tool server ({})",
                        f.message()
                    ))),
                },
                Err(f) => Err(f),
            },
        }
    }

    /// Runs `op` on a connection; an expired session or a lost connection is
    /// renewed once and `op` retried.
    fn with_conn<T>(&self, op: impl Fn(&Conn) -> Result<T, Failure>) -> Result<T, ToolError> {
        let deadline = Instant::now() + self.timeout;
        let mut retried = false;
        loop {
            let conn = self
                .current()
                .map_or_else(|| self.connect(Some(deadline)), Ok)
                .map_err(ToolError::Unavailable)?;
            match op(&conn) {
                Ok(v) => return Ok(v),
                Err(f @ (Failure::SessionExpired(_) | Failure::Unreachable(_))) => {
                    self.forget(&conn, &f);
                    if retried {
                        return Err(f.into_tool_error(&self.redactor));
                    }
                    retried = true;
                }
                Err(f) => return Err(f.into_tool_error(&self.redactor)),
            }
        }
    }

    /// One monitor tick: connect if disconnected, else check liveness.
    fn check(&self) {
        let Some(conn) = self.current() else {
            let _ = self.connect(None);
            return;
        };
        let probe = self.timeout.min(PROBE_TIMEOUT);
        let alive = match &*conn {
            Conn::Mcp(s) => self.streamable.ping(s, probe),
            Conn::Simple => self.simple.health(probe),
        };
        match alive {
            Ok(()) => {}
            Err(f @ Failure::SessionExpired(_)) => {
                self.forget(&conn, &f);
                let _ = self.connect(None);
            }
            Err(f) => self.forget(&conn, &f),
        }
    }
}

/// Marks the attempt in progress as ended, however it ends (even by a
/// panic), and wakes the calls waiting for it.
struct Attempt<'a>(&'a McpClient);

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        self.0.state().connecting = false;
        self.0.attempt_done.notify_all();
    }
}

impl ToolProvider for McpClient {
    fn call(&self, name: &str, arguments: &Value) -> Result<Value, ToolError> {
        let empty = Value::Object(Default::default());
        let arguments = if arguments.is_null() {
            &empty
        } else {
            arguments
        };
        self.with_conn(|conn| match conn {
            Conn::Simple => self.simple.execute(name, arguments),
            Conn::Mcp(s) => self.streamable.call_tool(s, name, arguments),
        })
    }

    fn tools(&self) -> Result<Vec<ToolSpec>, ToolError> {
        let cached = self.with_conn(|conn| {
            let mut st = self.state();
            if self.streamable.take_tools_changed() {
                st.tools = None;
            }
            if let Some((c, tools)) = &st.tools
                && std::ptr::eq(&**c, conn)
            {
                return Ok(tools.clone());
            }
            let current = st.conn.clone();
            drop(st);
            let tools = Arc::new(match conn {
                Conn::Simple => documentation_tools(),
                Conn::Mcp(s) => self.streamable.list_tools(s)?,
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
            "url": self.redactor.url(),
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
