//! PATCH(knowledge-vault): a server that runs a handler on each
//! connection's own thread (thread-per-connection, as rouille does),
//! instead of pushing requests into a queue for a fixed pool of workers.
//!
//! With a queue, a slow client (slow body, slow reader of its response)
//! holds one of the pool's workers, and a few such clients starve every
//! other request. Here a slow client holds only its own thread and
//! connection slot; the number of connections is bounded
//! ([`ServeOptions::max_connections`]), a connection beyond it gets the
//! busy response at once, and every phase of a request has a deadline.

use std::io::{Read, Result as IoResult, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use crate::client::ClientConnection;
use crate::connection::{Connection, ListenAddr, Listener};
use crate::util::deadline::ConnState;
use crate::util::RefinedTcpStream;
use crate::Request;

/// Handles one request (and answers it) on the connection's thread.
pub type Handler = Arc<dyn Fn(Request) + Send + Sync + 'static>;

/// How [`HandlerServer`] serves its connections.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// Longest silence in one read or write (the socket's timeout).
    pub idle_timeout: Option<Duration>,
    /// Time for a whole request head, from the moment the server waits for
    /// it (so it also bounds an idle keep-alive connection).
    pub head_timeout: Option<Duration>,
    /// Time for a whole request body, and again for a whole response.
    pub transfer_timeout: Option<Duration>,
    /// Most bytes of a request line and its header fields (431 beyond).
    pub max_head_bytes: usize,
    /// Most open connections (upgraded ones are no longer counted: their
    /// new owner bounds them). Beyond it a new connection gets
    /// `busy_response`, written without blocking, and is closed.
    pub max_connections: usize,
    /// A complete HTTP response, e.g. a 503 with `Connection: close`.
    pub busy_response: Vec<u8>,
    /// Stack size of a connection thread (the handler runs on it).
    pub stack_size: usize,
}

/// A running server; dropping it does not stop it.
pub struct HandlerServer {
    close: Arc<AtomicBool>,
    addr: ListenAddr,
    accept: Mutex<Option<thread::JoinHandle<IoResult<()>>>>,
    open: Arc<AtomicUsize>,
}

impl HandlerServer {
    /// Starts accepting on `listener`; each connection gets a thread that
    /// reads its requests one after the other and calls `handler` for each.
    pub fn new<L: Into<Listener>>(
        listener: L,
        options: ServeOptions,
        handler: Handler,
    ) -> IoResult<HandlerServer> {
        let listener = listener.into();
        let addr = listener.local_addr()?;
        let close = Arc::new(AtomicBool::new(false));
        let open = Arc::new(AtomicUsize::new(0));
        let (close2, open2) = (close.clone(), open.clone());
        let accept = thread::Builder::new()
            .name("http-accept".into())
            .spawn(move || accept_loop(&listener, &options, &handler, &close2, &open2))?;
        Ok(HandlerServer {
            close,
            addr,
            accept: Mutex::new(Some(accept)),
            open,
        })
    }

    /// Stops accepting and closes the listening socket; open connections
    /// go on until they end.
    pub fn stop_accepting(&self) {
        self.close.store(true, Ordering::SeqCst);
        // Wake the accept loop with a connection to ourselves.
        if let ListenAddr::IP(addr) = &self.addr {
            let ip = match addr.ip() {
                std::net::IpAddr::V4(ip) if ip.is_unspecified() => {
                    std::net::Ipv4Addr::LOCALHOST.into()
                }
                std::net::IpAddr::V6(ip) if ip.is_unspecified() => {
                    std::net::Ipv6Addr::LOCALHOST.into()
                }
                ip => ip,
            };
            let to = SocketAddr::new(ip, addr.port());
            let _ = TcpStream::connect_timeout(&to, Duration::from_secs(1));
        }
    }

    /// Blocks until the accept loop has ended: `Ok` after
    /// [`HandlerServer::stop_accepting`], the error if the listening socket
    /// failed.
    pub fn wait(&self) -> IoResult<()> {
        let handle = self.accept.lock().ok().and_then(|mut h| h.take());
        match handle.map(thread::JoinHandle::join) {
            None | Some(Ok(Ok(()))) => Ok(()),
            Some(Ok(Err(e))) => Err(e),
            Some(Err(_)) => Err(std::io::Error::other("the accept loop panicked")),
        }
    }

    /// Connections open now (not counting upgraded ones).
    pub fn connections(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    pub fn server_addr(&self) -> ListenAddr {
        self.addr.clone()
    }
}

/// One counted connection; uncounted when its thread ends (or never
/// starts).
struct Slot(Arc<AtomicUsize>);

impl Slot {
    fn take(open: &Arc<AtomicUsize>) -> Slot {
        open.fetch_add(1, Ordering::AcqRel);
        Slot(open.clone())
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// How often at most the refusals of a full server are logged.
const BUSY_LOG_EVERY: Duration = Duration::from_secs(10);

fn accept_loop(
    listener: &Listener,
    options: &ServeOptions,
    handler: &Handler,
    close: &AtomicBool,
    open: &Arc<AtomicUsize>,
) -> IoResult<()> {
    let mut refused = 0u64;
    let mut last_log: Option<Instant> = None;
    loop {
        let accepted = listener.accept();
        if close.load(Ordering::SeqCst) {
            log::debug!("no longer accepting connections");
            return Ok(());
        }
        let sock = match accepted {
            Ok((sock, _)) => sock,
            Err(e) if !crate::accept_error_is_fatal(&e) => {
                log::warn!("Error accepting new client (will retry): {}", e);
                thread::sleep(Duration::from_millis(50));
                continue;
            }
            // The listening socket is gone: the caller reports it once.
            Err(e) => {
                let what = format!("accepting connections failed: {}", e);
                return Err(std::io::Error::new(e.kind(), what));
            }
        };
        if open.load(Ordering::Acquire) >= options.max_connections {
            refuse(sock, &options.busy_response);
            refused += 1;
            if last_log.map_or(true, |t| t.elapsed() >= BUSY_LOG_EVERY) {
                log::warn!(
                    "{} connections open (the limit): refused {} new connection(s) with the busy response",
                    options.max_connections,
                    refused
                );
                (refused, last_log) = (0, Some(Instant::now()));
            }
            continue;
        }
        let raw = crate::prepare_socket(&sock, options.idle_timeout);
        let (read, write) = match RefinedTcpStream::new(sock) {
            Ok(pair) => pair,
            Err(e) => {
                log::warn!("Dropping a new client (will retry accepting): {}", e);
                thread::sleep(Duration::from_millis(50));
                continue;
            }
        };
        let state = Arc::new(ConnState::new(
            options.head_timeout,
            options.transfer_timeout,
        ));
        let client = ClientConnection::new(
            write,
            read,
            options.idle_timeout,
            state,
            options.max_head_bytes,
        )
        .with_raw_stream(raw);
        let slot = Slot::take(open);
        let handler = handler.clone();
        let spawned = thread::Builder::new()
            .name("http-conn".into())
            .stack_size(options.stack_size)
            .spawn(move || {
                let _slot = slot;
                let mut client = client;
                while let Some(rq) = client.next() {
                    handler(rq);
                }
                client.linger();
            });
        if let Err(e) = spawned {
            log::warn!("cannot start a connection thread (connection closed): {}", e);
            thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Writes the busy response without blocking and closes the connection.
fn refuse(sock: Connection, busy: &[u8]) {
    if let Connection::Tcp(s) = &sock {
        let _ = s.set_nonblocking(true);
        let _ = (&*s).write(busy);
        let _ = s.shutdown(Shutdown::Write);
        // A request already received is read, so that closing sends a FIN
        // after the response rather than a reset that could discard it.
        let mut scratch = [0u8; 2048];
        let _ = (&*s).read(&mut scratch);
    }
}
