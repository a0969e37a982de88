//! PATCH(knowledge-vault): deadlines for a whole request head, a whole body
//! and a whole response, not just a timeout per `read`/`write`.
//!
//! One small [`ConnState`] per connection holds the current deadline (and
//! whether the connection can still be used); [`Guarded`] sits under the
//! `BufReader`/`BufWriter` and checks it. It lowers SO_RCVTIMEO/SO_SNDTIMEO
//! only when the time left is shorter than the timeout already set, so the
//! keep-alive fast path costs a clock read and no system call.

use std::convert::TryFrom;
use std::io::{self, ErrorKind, Read, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

const NO_DEADLINE: u64 = u64::MAX;

/// A deadline this close to the socket's own timeout is left to it: the
/// head deadline usually equals the idle timeout, and lowering the timeout
/// for a few microseconds would cost a system call per request.
const TOLERANCE: Duration = Duration::from_millis(250);

/// The deadlines of one connection, shared by its reader, its writer and
/// the requests read from it.
pub struct ConnState {
    origin: Instant,
    /// Nanoseconds after `origin`, or `NO_DEADLINE`.
    deadline: AtomicU64,
    /// Set once the connection's framing or transport failed: nothing more
    /// may be read from it as a request.
    broken: AtomicBool,
    upgraded: AtomicBool,
    head: Option<Duration>,
    transfer: Option<Duration>,
}

impl ConnState {
    /// `head`: time for a whole request head (from the moment the server
    /// waits for it); `transfer`: time for a whole body, and again for a
    /// whole response.
    pub fn new(head: Option<Duration>, transfer: Option<Duration>) -> ConnState {
        ConnState {
            origin: Instant::now(),
            deadline: AtomicU64::new(NO_DEADLINE),
            broken: AtomicBool::new(false),
            upgraded: AtomicBool::new(false),
            head,
            transfer,
        }
    }

    fn set(&self, within: Option<Duration>) {
        let at = within.map_or(NO_DEADLINE, |d| {
            let at = self.origin.elapsed().saturating_add(d).as_nanos();
            u64::try_from(at).unwrap_or(NO_DEADLINE - 1)
        });
        self.deadline.store(at, Ordering::Relaxed);
    }

    /// The server starts waiting for a request head.
    pub fn start_head(&self) {
        self.set(self.head);
    }

    /// The head is complete; the body (if any) must follow in time.
    pub fn start_body(&self) {
        self.set(self.transfer);
    }

    /// A response starts.
    pub fn start_response(&self) {
        self.set(self.transfer);
    }

    /// A deadline `within` from now, whatever the phase.
    pub fn expire_in(&self, within: Duration) {
        self.set(Some(within));
    }

    /// The connection was upgraded: its new owner sets its own timeouts.
    pub fn clear(&self) {
        self.upgraded.store(true, Ordering::Relaxed);
        self.set(None);
    }

    pub fn is_upgraded(&self) -> bool {
        self.upgraded.load(Ordering::Relaxed)
    }

    /// Time left before the deadline (zero once passed), `None` without one.
    fn remaining(&self) -> Option<Duration> {
        let at = self.deadline.load(Ordering::Relaxed);
        if at == NO_DEADLINE {
            return None;
        }
        let now = self.origin.elapsed().as_nanos();
        Some(Duration::from_nanos(
            u64::try_from(u128::from(at).saturating_sub(now)).unwrap_or(0),
        ))
    }

    /// Nothing more may be read from this connection as a request.
    pub fn break_off(&self) {
        self.broken.store(true, Ordering::Relaxed);
    }

    pub fn is_broken(&self) -> bool {
        self.broken.load(Ordering::Relaxed)
    }
}

/// What a socket needs to offer [`Guarded`].
pub trait SocketTimeouts {
    fn set_timeout(&self, write: bool, timeout: Option<Duration>) -> io::Result<()>;
}

/// A reader or writer whose operations fail with `TimedOut` once the
/// connection's deadline has passed, and which marks the connection broken
/// on any I/O error.
pub struct Guarded<S: SocketTimeouts> {
    inner: S,
    state: std::sync::Arc<ConnState>,
    /// The socket's normal timeout (per operation).
    idle: Option<Duration>,
    /// The timeout currently set on the socket for this direction.
    set: Option<Duration>,
    write: bool,
    /// An operation failed: the next ones fail at once (a writer dropped
    /// after a timeout must not wait again to flush its buffer).
    dead: bool,
}

fn shorter(a: Duration, than: Option<Duration>) -> bool {
    than.map_or(true, |t| a < t)
}

fn timed_out() -> io::Error {
    io::Error::new(ErrorKind::TimedOut, "deadline passed")
}

impl<S: SocketTimeouts> Guarded<S> {
    /// `idle` must be the timeout already set on the socket.
    pub fn new(
        inner: S,
        state: std::sync::Arc<ConnState>,
        idle: Option<Duration>,
        write: bool,
    ) -> Guarded<S> {
        Guarded {
            inner,
            state,
            idle,
            set: idle,
            write,
            dead: false,
        }
    }

    pub fn get_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Before an operation: fail if the deadline passed, lower the socket's
    /// timeout if the deadline comes sooner than it.
    fn before(&mut self) -> io::Result<()> {
        if let Some(left) = self.state.remaining() {
            if left.is_zero() {
                return Err(timed_out());
            }
            if shorter(left + TOLERANCE, self.set) {
                self.inner.set_timeout(self.write, Some(left))?;
                self.set = Some(left);
            }
        }
        Ok(())
    }

    /// After the socket's timeout fired: whether to try again (the timeout
    /// had been lowered for an earlier, shorter deadline).
    fn retry_after_timeout(&mut self) -> io::Result<bool> {
        let lowered = self.set != self.idle;
        match self.state.remaining() {
            Some(left) if lowered && !left.is_zero() => {
                let next = if shorter(left, self.idle) {
                    Some(left)
                } else {
                    self.idle
                };
                self.inner.set_timeout(self.write, next)?;
                self.set = next;
                Ok(true)
            }
            // The deadline passed, or a whole idle timeout of silence.
            _ => Ok(false),
        }
    }

    fn run<T>(&mut self, mut op: impl FnMut(&mut S) -> io::Result<T>) -> io::Result<T> {
        // No deadline: a queue server, or an upgraded connection whose new
        // owner handles its own timeouts and errors.
        if self.state.remaining().is_none() {
            return op(&mut self.inner);
        }
        if self.dead {
            return Err(io::Error::new(ErrorKind::BrokenPipe, "connection failed"));
        }
        loop {
            let result = self.before().and_then(|()| op(&mut self.inner));
            match result {
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    if self.retry_after_timeout()? {
                        continue;
                    }
                    self.state.break_off();
                    self.dead = true;
                    return Err(timed_out());
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => {
                    self.state.break_off();
                    self.dead = true;
                    return Err(e);
                }
                ok => return ok,
            }
        }
    }
}

impl<S: SocketTimeouts + Read> Read for Guarded<S> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.run(|s| s.read(buf))
    }
}

impl<S: SocketTimeouts + Write> Write for Guarded<S> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.run(|s| s.write(buf))
    }

    fn flush(&mut self) -> io::Result<()> {
        self.run(|s| s.flush())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn remaining_counts_down_and_clears() {
        let s = ConnState::new(Some(Duration::from_secs(5)), None);
        assert!(s.remaining().is_none());
        s.start_head();
        let left = s.remaining().unwrap();
        assert!(left > Duration::from_secs(4) && left <= Duration::from_secs(5));
        s.start_body();
        assert!(s.remaining().is_none());
        s.clear();
        assert!(s.remaining().is_none());
        let s = Arc::new(ConnState::new(Some(Duration::ZERO), None));
        s.start_head();
        assert_eq!(s.remaining(), Some(Duration::ZERO));
    }
}
