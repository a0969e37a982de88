//! The HTTP server: one listening socket, tiny_http's connection threads, and
//! a fixed set of worker threads that take requests and run the routes.
//!
//! Accepted sockets get `HTTP_IDLE_TIMEOUT` as read/write timeout (patched
//! tiny_http), so slow or idle clients are cut off. If tiny_http's accept
//! loop ever ends (its `recv()` fails), the supervisor builds a new server
//! on the same listening socket and the workers move over; the process
//! neither exits nor spins.

mod page;
mod routes;
pub(crate) use routes::refuse;
mod shape;
mod ws;

use crate::app::App;
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A request header's value (first occurrence, case-insensitive name).
pub(crate) fn header<'a>(rq: &'a tiny_http::Request, name: &'static str) -> Option<&'a str> {
    rq.headers()
        .iter()
        .find(|h| h.field.equiv(name))
        .map(|h| h.value.as_str())
}

/// The server currently accepting, and its generation number.
struct Slot {
    generation: u64,
    server: Arc<tiny_http::Server>,
}

/// Pending connections the kernel may queue before `accept` (capped by
/// `net.core.somaxconn`). std's `TcpListener::bind` asks for 128, and a burst
/// of a thousand browsers connecting at once then loses SYNs that clients
/// only resend after a second.
const LISTEN_BACKLOG: i32 = 4096;

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

/// Serves until the process ends.
pub fn serve(app: Arc<App>, listener: TcpListener) -> std::io::Result<()> {
    let timeout = Some(app.config.http_idle_timeout);
    let build = |listener: &TcpListener| -> std::io::Result<Arc<tiny_http::Server>> {
        let clone = listener.try_clone()?;
        tiny_http::Server::from_listener_with_timeout(clone, None, timeout)
            .map(Arc::new)
            .map_err(std::io::Error::other)
    };
    let slot = Arc::new(Mutex::new(Slot {
        generation: 0,
        server: build(&listener)?,
    }));
    let (failed_tx, failed_rx) = crossbeam_channel::unbounded::<u64>();

    for i in 0..app.config.http_workers {
        let (app, slot, failed_tx) = (app.clone(), slot.clone(), failed_tx.clone());
        std::thread::Builder::new()
            .name(format!("http-worker-{i}"))
            .stack_size(512 * 1024)
            .spawn(move || worker(&app, &slot, &failed_tx))?;
    }

    // Supervisor: rebuild the server when its accept loop has died.
    for generation in failed_rx.iter() {
        let mut s = crate::sync::lock(&slot);
        if s.generation != generation {
            continue; // already rebuilt
        }
        log::error!("the HTTP accept loop stopped; rebuilding the server on the same socket");
        loop {
            match build(&listener) {
                Ok(server) => {
                    *s = Slot {
                        generation: generation + 1,
                        server,
                    };
                    break;
                }
                Err(e) => {
                    log::error!("cannot rebuild the HTTP server yet: {e}");
                    std::thread::sleep(Duration::from_millis(500));
                }
            }
        }
    }
    Ok(())
}

fn worker(app: &Arc<App>, slot: &Mutex<Slot>, failed: &crossbeam_channel::Sender<u64>) {
    let current = || {
        let s = crate::sync::lock(slot);
        (s.generation, s.server.clone())
    };
    // The slot changes only after a failure, so it is read again only then
    // (or after an idle second), not once per request.
    let (mut generation, mut server) = current();
    loop {
        match server.recv_timeout(Duration::from_secs(1)) {
            Ok(Some(rq)) => routes::handle(app, rq),
            Ok(None) => (generation, server) = current(),
            Err(e) => {
                log::warn!("HTTP server error: {e}");
                let _ = failed.send(generation);
                std::thread::sleep(Duration::from_millis(100));
                (generation, server) = current();
            }
        }
    }
}
