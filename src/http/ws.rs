//! WebSocket chat sessions: `/ws/chat/{conversation_id}`.
//!
//! The HTTP worker checks the handshake (method, version, key, `Origin`),
//! answers 101 through tiny_http and hands the connection to a session
//! thread. tiny_http's upgraded stream hides its socket, so our patched
//! tiny_http also returns a clone of the TCP socket: the session thread
//! blocks reading client frames from the upgraded stream, while events are
//! written through the clone by whichever thread produces them (the turn,
//! or the session thread for `pong` and `error`), under the writer's mutex.
//! So `ping` and `cancel` are read at once even mid-answer, and each event
//! is on the wire as soon as it exists; nothing polls.
//!
//! This module is the only one that touches tungstenite.

use super::{header, refuse};
use crate::access::Principal;
use crate::access::rate::retry_after_secs;
use crate::app::App;
use crate::chat::events::{ClientFrame, ServerEvent};
use crate::chat::turn;
use crate::conversations::Conversation;
use crate::conversations::live::EventSink;
use crate::stopping::Stoppable;
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tiny_http::{Header, Request, Response};
use tungstenite::Message;
use tungstenite::error::{CapacityError, Error as WsError};
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::{CloseFrame, Role, WebSocketConfig, WebSocketContext};

/// Largest client message or frame; more is closed with 1009.
const MAX_MESSAGE: usize = 1024 * 1024;
/// With no frame from the client for this long, the session pings it; a
/// second silent period closes the connection (a dead peer frees its thread).
const KEEPALIVE: Duration = Duration::from_secs(30);
/// A client that does not take its events for this long is dropped.
const WRITE_TIMEOUT: Duration = Duration::from_secs(10);

fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(4 * 1024)
        .write_buffer_size(0)
        .max_write_buffer_size(4 * MAX_MESSAGE)
        .max_message_size(Some(MAX_MESSAGE))
        .max_frame_size(Some(MAX_MESSAGE))
}

/// Handles an upgrade request; returns the HTTP status sent (101 on success).
pub fn upgrade(app: &Arc<App>, rq: Request, conversation_id: String, caller: Principal) -> u16 {
    if let Some(origin) = header(&rq, "Origin")
        && !app.config.origin_allowed(origin)
        && !crate::access::same_origin(origin, header(&rq, "Host"))
    {
        return refuse(app, rq, 403, "origin not allowed");
    }
    let is_upgrade = header(&rq, "Upgrade").is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
        && header(&rq, "Connection").is_some_and(|v| v.to_ascii_lowercase().contains("upgrade"));
    if !is_upgrade {
        return refuse(app, rq, 400, "expected a WebSocket upgrade request");
    }
    if header(&rq, "Sec-WebSocket-Version") != Some("13") {
        return super::routes::refuse_with(
            app,
            rq,
            426,
            "unsupported WebSocket version; use 13",
            &[("Sec-WebSocket-Version", "13")],
        );
    }
    let Some(key) = header(&rq, "Sec-WebSocket-Key").map(str::to_string) else {
        return refuse(app, rq, 400, "missing Sec-WebSocket-Key");
    };
    if !rq.has_upgrade_stream() {
        // The upgrade came after other requests on a keep-alive connection.
        return refuse(app, rq, 400, "open the WebSocket on a new connection");
    }
    let conversation = match app
        .conversations
        .open(&conversation_id, caller.owner.as_deref())
    {
        Ok(c) => c,
        Err(full) => return refuse(app, rq, 503, &full.to_string()),
    };
    if app.ws_sessions.fetch_add(1, Ordering::SeqCst) >= app.config.max_ws_sessions {
        app.ws_sessions.fetch_sub(1, Ordering::SeqCst);
        return refuse(app, rq, 503, "too many open chat sessions");
    }
    let accept = tungstenite::handshake::derive_accept_key(key.as_bytes());
    let resp = Response::empty(101).with_header(
        Header::from_bytes("Sec-WebSocket-Accept", accept.as_bytes())
            .expect("base64 is a valid header value"),
    );
    let (stream, raw) = rq.upgrade_with_stream("websocket", resp);
    let Some(raw) = raw else {
        // Checked above; kept as a value, not a panic.
        app.ws_sessions.fetch_sub(1, Ordering::SeqCst);
        return 101;
    };
    let app2 = app.clone();
    let spawned = std::thread::Builder::new()
        .name("ws-session".into())
        .stack_size(256 * 1024)
        .spawn(move || {
            let run = std::panic::AssertUnwindSafe(|| {
                Session::run(&app2, stream, raw, conversation, caller)
            });
            if std::panic::catch_unwind(run).is_err() {
                log::error!("a WebSocket session panicked; its connection is closed");
            }
            app2.ws_sessions.fetch_sub(1, Ordering::SeqCst);
        });
    if let Err(e) = spawned {
        log::error!("cannot start a WebSocket session thread: {e}");
        app.ws_sessions.fetch_sub(1, Ordering::SeqCst);
    }
    101
}

/// The write half of a session, shared by the session thread and the turn.
pub struct WsWriter {
    inner: Mutex<WriterState>,
}

struct WriterState {
    ctx: WebSocketContext,
    stream: TcpStream,
    dead: bool,
}

impl WsWriter {
    fn new(stream: TcpStream) -> WsWriter {
        WsWriter {
            inner: Mutex::new(WriterState {
                ctx: WebSocketContext::new(Role::Server, Some(ws_config())),
                stream,
                dead: false,
            }),
        }
    }

    /// Writes and flushes one message; false once the connection is gone.
    fn send_message(&self, message: Message) -> bool {
        let mut st = crate::sync::lock(&self.inner);
        if st.dead {
            return false;
        }
        let WriterState { ctx, stream, .. } = &mut *st;
        let ok = ctx
            .write(stream, message)
            .and_then(|_| ctx.flush(stream))
            .is_ok();
        if !ok {
            st.dead = true;
            let _ = st.stream.shutdown(Shutdown::Both);
        }
        ok
    }

    fn send_event(&self, event: &ServerEvent) -> bool {
        // Our own event types: serialising them cannot fail.
        self.send_message(Message::text(
            serde_json::to_string(event).unwrap_or_default(),
        ))
    }

    fn close(&self, code: CloseCode, reason: &str) {
        self.send_message(Message::Close(Some(CloseFrame {
            code,
            reason: reason.to_string().into(),
        })));
        self.shutdown();
    }

    fn shutdown(&self) {
        let mut st = crate::sync::lock(&self.inner);
        st.dead = true;
        let _ = st.stream.shutdown(Shutdown::Both);
    }
}

impl Stoppable for WsWriter {
    /// The service is stopping: say so, then close with 1001 (going away).
    fn stop(&self, message: &str) {
        self.send_event(&ServerEvent::error(message));
        self.close(CloseCode::Away, "service stopping");
    }
}

impl EventSink for WsWriter {
    fn send(&self, event: &str) -> bool {
        self.send_message(Message::text(event.to_string()))
    }
}

/// The read half: tiny_http's upgraded stream (which holds any bytes already
/// buffered after the handshake). Writes are dropped: replies go through
/// [`WsWriter`], never from the reading side.
struct ReadHalf(Box<dyn tiny_http::ReadWrite + Send>);

impl Read for ReadHalf {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.0.read(buf)
    }
}

impl Write for ReadHalf {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

struct Session {
    app: Arc<App>,
    conversation: Arc<Conversation>,
    writer: Arc<WsWriter>,
    /// Who opened it: its messages count against this caller's rate limit.
    caller: Principal,
}

impl Session {
    fn run(
        app: &Arc<App>,
        stream: Box<dyn tiny_http::ReadWrite + Send>,
        raw: TcpStream,
        conversation: Arc<Conversation>,
        caller: Principal,
    ) {
        let _ = raw.set_read_timeout(Some(KEEPALIVE));
        let _ = raw.set_write_timeout(Some(WRITE_TIMEOUT));
        let _ = raw.set_nodelay(true);
        let writer = Arc::new(WsWriter::new(raw));
        let session = Session {
            app: app.clone(),
            conversation,
            writer,
            caller,
        };
        let stoppable: Arc<dyn Stoppable> = session.writer.clone();
        let Some(registered) = app.stopping.add(Arc::downgrade(&stoppable)) else {
            session.writer.stop("the service is stopping");
            return;
        };
        // A turn still running from an earlier connection: replay, then live.
        let running = session.conversation.lock().turn.clone();
        if let Some(turn) = running {
            turn.subscribe(session.sink());
        }
        session.read_loop(ReadHalf(stream));
        // Taken out first: the turn's log lock can be held during a write, and
        // the conversation lock must not wait behind it.
        let running = session.conversation.lock().turn.clone();
        if let Some(turn) = running {
            turn.unsubscribe(&session.sink());
        }
        app.stopping.remove(registered);
        session.writer.shutdown();
    }

    fn sink(&self) -> Arc<dyn EventSink> {
        self.writer.clone()
    }

    fn read_loop(&self, mut reader: ReadHalf) {
        let mut ctx = WebSocketContext::new(Role::Server, Some(ws_config()));
        let mut pinged = false;
        loop {
            let message = match ctx.read(&mut reader) {
                Ok(m) => m,
                Err(WsError::Io(e))
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    if pinged {
                        log::debug!(
                            "WebSocket peer silent for {}s; closing",
                            2 * KEEPALIVE.as_secs()
                        );
                        return;
                    }
                    pinged = self.writer.send_message(Message::Ping(Vec::new().into()));
                    continue;
                }
                Err(WsError::Capacity(CapacityError::MessageTooLong { .. }))
                | Err(WsError::Capacity(CapacityError::TooManyHeaders)) => {
                    self.writer.close(CloseCode::Size, "message too big");
                    return;
                }
                Err(WsError::Utf8(_)) => {
                    self.writer.close(CloseCode::Invalid, "invalid UTF-8");
                    return;
                }
                Err(WsError::Protocol(p)) => {
                    log::debug!("WebSocket protocol error: {p}");
                    self.writer.close(CloseCode::Protocol, "protocol error");
                    return;
                }
                Err(_) => return,
            };
            pinged = false;
            match message {
                Message::Text(text) => self.on_text(text.as_str()),
                Message::Binary(_) => {
                    self.error("binary frames are not supported; send JSON text frames")
                }
                Message::Ping(payload) => {
                    self.writer.send_message(Message::Pong(payload));
                }
                Message::Close(_) => {
                    self.writer.close(CloseCode::Normal, "");
                    return;
                }
                Message::Pong(_) | Message::Frame(_) => {}
            }
        }
    }

    fn error(&self, message: &str) {
        self.writer.send_event(&ServerEvent::error(message));
    }

    fn on_text(&self, text: &str) {
        match ClientFrame::decode(text) {
            Ok(ClientFrame::Ping) => {
                self.writer.send_event(&ServerEvent::Pong);
            }
            Ok(ClientFrame::Cancel) => {
                let turn = self.conversation.lock().turn.clone();
                match turn {
                    Some(turn) => turn.cancel.cancel(),
                    None => self.error("no answer in progress to cancel"),
                }
            }
            Ok(ClientFrame::Message {
                content,
                repo_scope,
            }) => self.on_message(content, repo_scope),
            Err(e) => self.error(&e),
        }
    }

    fn on_message(&self, content: String, repo_scope: Option<String>) {
        let max = self.app.config.max_message_bytes;
        if content.len() > max {
            return self.error(&format!(
                "message too long: {} bytes, at most {max} (MAX_MESSAGE_BYTES)",
                content.len()
            ));
        }
        if let Err(wait) = self.app.message_limit.take(&self.caller.client) {
            let secs = retry_after_secs(wait);
            let message =
                format!("too many messages (RATE_LIMIT_MESSAGES per minute); retry in {secs} s");
            self.writer.send_event(&ServerEvent::Error {
                message: &message,
                retry_after: Some(secs),
            });
            return;
        }
        let started = turn::start(
            &self.app.chat,
            &self.conversation,
            content,
            repo_scope,
            self.sink(),
        );
        if let Err(e) = started {
            self.error(&e.to_string());
        }
    }
}
