//! The HTTP server: one listening socket, and one thread per connection
//! (patched tiny_http) that reads its requests one after the other and runs
//! the routes for each, on that thread.
//!
//! Why not a fixed pool of workers fed by a queue: a slow client (a body
//! trickling in, a response it does not read, an upgrade request holding
//! its body open) then holds a worker, and a handful of them starve every
//! other request, `/health` included. Here a slow client holds only its own
//! thread and connection slot, and everything it can make us hold has a
//! budget: `MAX_CONNECTIONS` open connections (a short 503 beyond),
//! `MAX_HEADER_BYTES` of request head (431), `HTTP_IDLE_TIMEOUT` for a
//! whole request head (408) and for any silence, `HTTP_BODY_TIMEOUT` for a
//! whole body and for a whole response. A body left unread is drained up
//! to 64 KiB, or the connection is closed; framing is strict (RFC 9112).
//!
//! The server ends only if the listening socket fails; [`HttpServer::wait`]
//! then returns the error and the process exits (a container runtime
//! restarts it). There is nothing to rebuild on a dead socket.

mod page;
mod routes;
pub(crate) use routes::refuse;
mod shape;
mod ws;

use crate::app::App;
use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;

/// A request header's value (first occurrence, case-insensitive name).
pub(crate) fn header<'a>(rq: &'a tiny_http::Request, name: &'static str) -> Option<&'a str> {
    rq.headers()
        .iter()
        .find(|h| h.field.equiv(name))
        .map(|h| h.value.as_str())
}

/// Pending connections the kernel may queue before `accept` (capped by
/// `net.core.somaxconn`). std's `TcpListener::bind` asks for 128, and a burst
/// of a thousand browsers connecting at once then loses SYNs that clients
/// only resend after a second.
const LISTEN_BACKLOG: i32 = 4096;

/// Stack of a connection thread, which runs the routes (JSON, the tool
/// provider, the search index). Only the pages used count in RSS.
const CONNECTION_STACK: usize = 512 * 1024;

/// Written, without blocking, to a connection beyond `MAX_CONNECTIONS`.
const BUSY: &str = "{\"detail\":\"too many open connections; try again later\"}";

/// Binds the listening socket; errors here stop start-up.
pub fn bind(config: &crate::config::Config) -> std::io::Result<TcpListener> {
    use socket2::{Domain, Socket, Type};
    let addr = SocketAddr::new(config.host, config.port);
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    Ok(socket.into())
}

/// The running HTTP server.
pub struct HttpServer {
    inner: tiny_http::HandlerServer,
}

impl HttpServer {
    /// Stops accepting and closes the listening socket; open connections
    /// (and WebSocket sessions) go on until they end.
    pub fn stop_accepting(&self) {
        self.inner.stop_accepting();
    }

    /// Blocks until the server stops accepting: `Ok` after
    /// [`HttpServer::stop_accepting`], `Err` if the listening socket died.
    pub fn wait(&self) -> std::io::Result<()> {
        self.inner.wait()
    }

    /// Open HTTP connections (upgraded WebSockets are counted by
    /// `MAX_WS_SESSIONS` instead).
    pub fn connections(&self) -> usize {
        self.inner.connections()
    }
}

/// Starts serving on `listener` and returns at once.
pub fn serve(app: Arc<App>, listener: TcpListener) -> std::io::Result<HttpServer> {
    let c = &app.config;
    if c.http_workers_set {
        log::warn!(
            "HTTP_WORKERS is ignored: requests run on their connection's thread \
             (MAX_CONNECTIONS bounds them)"
        );
    }
    let busy = format!(
        "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nRetry-After: 1\r\nConnection: close\r\n\r\n{BUSY}",
        BUSY.len()
    );
    let options = tiny_http::ServeOptions {
        idle_timeout: Some(c.http_idle_timeout),
        head_timeout: Some(c.http_idle_timeout),
        transfer_timeout: Some(c.http_body_timeout),
        max_head_bytes: c.max_header_bytes,
        max_connections: c.max_connections,
        busy_response: busy.into_bytes(),
        stack_size: CONNECTION_STACK,
    };
    let handler: tiny_http::Handler = Arc::new(move |rq| routes::handle(&app, rq));
    let inner = tiny_http::HandlerServer::new(listener, options, handler)?;
    Ok(HttpServer { inner })
}
