//! PATCH(knowledge-vault): strict HTTP/1.1 message framing (RFC 9112).
//!
//! - [`read_line`]: one CRLF-terminated line, within a byte budget; a bare
//!   CR or LF is an error (never a line end: that is how requests are
//!   smuggled past a proxy that reads it differently).
//! - [`Body`]: a request body framed by `Content-Length` or `chunked`,
//!   nothing else. Chunk sizes are bounded (no overflow), chunk extensions
//!   and trailers are read within fixed budgets and ignored. A body dropped
//!   unread is drained up to [`DRAIN_LIMIT`] in fixed-size chunks; beyond
//!   that, or after any framing error, the connection is marked broken and
//!   closed: body bytes are never read as the next request. Nothing is ever
//!   sized by a number the client sent.

use super::deadline::ConnState;
use std::convert::TryFrom;
use std::io::{self, ErrorKind, Read};
use std::sync::Arc;

/// Most bytes read (and thrown away) from a body nobody read, to keep the
/// connection alive; more than this and the connection is closed instead.
pub const DRAIN_LIMIT: u64 = 64 * 1024;
/// Longest chunk-size line (size, extensions) and trailer line.
const MAX_CHUNK_LINE: usize = 4 * 1024;
/// Most bytes of trailer fields after the last chunk.
const MAX_TRAILERS: usize = 16 * 1024;
/// Most hex digits in a chunk size (2^60 bytes: no overflow).
const MAX_SIZE_DIGITS: usize = 15;

/// Why a line could not be read.
#[derive(Debug)]
pub enum LineError {
    /// More than the budget allowed.
    TooLong,
    /// A CR not followed by LF, or an LF not preceded by CR.
    BareCrLf,
    /// The stream ended (or failed) first.
    Io(io::Error),
}

/// Reads one line ending in CRLF into `out` (cleared first, CRLF removed).
/// `budget` is decremented by every byte read, CRLF included.
pub fn read_line<R: Read + ?Sized>(
    r: &mut R,
    out: &mut Vec<u8>,
    budget: &mut usize,
) -> Result<(), LineError> {
    out.clear();
    let mut byte = [0u8; 1];
    let mut cr = false;
    loop {
        match r.read(&mut byte) {
            Ok(0) => {
                return Err(LineError::Io(io::Error::new(
                    ErrorKind::UnexpectedEof,
                    "end of stream inside a line",
                )))
            }
            Ok(_) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(LineError::Io(e)),
        }
        if *budget == 0 {
            return Err(LineError::TooLong);
        }
        *budget -= 1;
        match (cr, byte[0]) {
            (true, b'\n') => return Ok(()),
            (true, _) | (false, b'\n') => return Err(LineError::BareCrLf),
            (false, b'\r') => cr = true,
            (false, b) => out.push(b),
        }
    }
}

fn invalid(what: &'static str) -> io::Error {
    io::Error::new(ErrorKind::InvalidData, what)
}

impl From<LineError> for io::Error {
    fn from(e: LineError) -> io::Error {
        match e {
            LineError::TooLong => invalid("chunk line or trailers too long"),
            LineError::BareCrLf => invalid("bare CR or LF in chunked framing"),
            LineError::Io(e) => e,
        }
    }
}

/// How the body is delimited, and how far it has been read.
enum Framing {
    /// Bytes left of a `Content-Length` body.
    Length(u64),
    /// `chunked`: bytes left in the current chunk, and whether the CRLF
    /// after that chunk's data is still to be read.
    Chunked { left: u64, crlf: bool },
    Done,
    Failed,
}

/// A request body over the connection's reader.
pub struct Body {
    source: Option<Box<dyn Read + Send>>,
    framing: Framing,
    state: Arc<ConnState>,
}

impl Body {
    pub fn none(source: Box<dyn Read + Send>, state: Arc<ConnState>) -> Body {
        Body::with(source, Framing::Done, state)
    }

    pub fn length(source: Box<dyn Read + Send>, len: u64, state: Arc<ConnState>) -> Body {
        Body::with(source, Framing::Length(len), state)
    }

    pub fn chunked(source: Box<dyn Read + Send>, state: Arc<ConnState>) -> Body {
        let framing = Framing::Chunked {
            left: 0,
            crlf: false,
        };
        Body::with(source, framing, state)
    }

    fn with(source: Box<dyn Read + Send>, framing: Framing, state: Arc<ConnState>) -> Body {
        Body {
            source: Some(source),
            framing,
            state,
        }
    }

    /// Whether dropping the body now would close the connection (more left
    /// than [`DRAIN_LIMIT`], known in advance).
    pub fn too_much_left(&self) -> bool {
        match self.framing {
            Framing::Length(n) => n > DRAIN_LIMIT,
            Framing::Failed => true,
            _ => false,
        }
    }

    /// The client will not send the body (it waits for a `100 Continue` it
    /// will never get): close the connection instead of draining.
    pub fn abandon(&mut self) {
        if !matches!(self.framing, Framing::Done) {
            self.fail();
        }
    }

    /// Reads what is left (within [`DRAIN_LIMIT`]); then gives the stream
    /// after the body back (an upgraded connection), or `None` if the body
    /// could not be finished (the connection is then broken).
    pub fn into_rest(mut self) -> Option<Box<dyn Read + Send>> {
        if self.drain() {
            self.source.take()
        } else {
            None
        }
    }

    fn fail(&mut self) {
        self.framing = Framing::Failed;
        self.state.break_off();
    }

    /// Reads and discards the rest of the body; true if it ended in time.
    fn drain(&mut self) -> bool {
        if self.too_much_left() {
            self.fail();
            return false;
        }
        let mut scratch = [0u8; 4096];
        let mut drained = 0u64;
        while drained <= DRAIN_LIMIT {
            match self.read(&mut scratch) {
                Ok(0) => return matches!(self.framing, Framing::Done),
                Ok(n) => drained += n as u64,
                Err(_) => break,
            }
        }
        self.fail();
        false
    }

    fn source(&mut self) -> io::Result<&mut (dyn Read + Send)> {
        match self.source.as_mut() {
            Some(s) => Ok(s.as_mut()),
            None => Err(invalid("request body already given away")),
        }
    }

    /// The next chunk size (after the CRLF ending the previous chunk).
    fn next_chunk(&mut self, crlf: bool) -> io::Result<u64> {
        let mut line = Vec::new();
        let src = self.source()?;
        if crlf {
            let mut budget = 2;
            read_line(src, &mut line, &mut budget)?;
            if !line.is_empty() {
                return Err(invalid("chunk data longer than its size"));
            }
        }
        let mut budget = MAX_CHUNK_LINE;
        read_line(src, &mut line, &mut budget)?;
        let digits = line.iter().take_while(|b| b.is_ascii_hexdigit()).count();
        if digits == 0 || digits > MAX_SIZE_DIGITS {
            return Err(invalid("bad chunk size"));
        }
        // Extensions (`;name=value`, after optional blanks) are ignored,
        // but must be made of visible characters.
        let rest = &line[digits..];
        let ext = rest.iter().position(|&b| b != b' ' && b != b'\t');
        if let Some(at) = ext {
            let ext = &rest[at..];
            if ext[0] != b';' || ext.iter().any(|&b| b != b'\t' && !(b' '..=b'~').contains(&b)) {
                return Err(invalid("bad chunk extension"));
            }
        }
        let hex = std::str::from_utf8(&line[..digits]).map_err(|_| invalid("bad chunk size"))?;
        let size = u64::from_str_radix(hex, 16).map_err(|_| invalid("bad chunk size"))?;
        if size == 0 {
            // Trailer fields, ignored; then the empty line.
            let mut budget = MAX_TRAILERS;
            loop {
                read_line(src, &mut line, &mut budget)?;
                if line.is_empty() {
                    break;
                }
                if matches!(line[0], b' ' | b'\t') || !line.contains(&b':') {
                    return Err(invalid("bad trailer field"));
                }
            }
        }
        Ok(size)
    }

    fn read_framed(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            let want = match self.framing {
                Framing::Done => return Ok(0),
                Framing::Failed => return Err(invalid("the request body could not be read")),
                Framing::Length(0) => {
                    self.framing = Framing::Done;
                    return Ok(0);
                }
                Framing::Length(n) => n,
                Framing::Chunked { left: 0, crlf } => {
                    let size = self.next_chunk(crlf)?;
                    self.framing = if size == 0 {
                        Framing::Done
                    } else {
                        Framing::Chunked {
                            left: size,
                            crlf: true,
                        }
                    };
                    continue;
                }
                Framing::Chunked { left, .. } => left,
            };
            let max = buf.len().min(usize::try_from(want).unwrap_or(usize::MAX));
            let n = self.source()?.read(&mut buf[..max])?;
            if n == 0 {
                return Err(io::Error::new(
                    ErrorKind::UnexpectedEof,
                    "the connection ended inside the request body",
                ));
            }
            match &mut self.framing {
                Framing::Length(left) | Framing::Chunked { left, .. } => *left -= n as u64,
                _ => {}
            }
            return Ok(n);
        }
    }
}

impl Read for Body {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if buf.is_empty() {
            return Ok(0);
        }
        match self.read_framed(buf) {
            Err(e) if e.kind() == ErrorKind::Interrupted => Err(e),
            Err(e) => {
                self.fail();
                Err(e)
            }
            ok => ok,
        }
    }
}

impl Drop for Body {
    fn drop(&mut self) {
        if self.source.is_some() && !matches!(self.framing, Framing::Done) {
            self.drain();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn body(bytes: &'static [u8], chunked: bool) -> (Body, Arc<ConnState>) {
        let state = Arc::new(ConnState::new(None, None));
        let src = Box::new(Cursor::new(bytes));
        let b = if chunked {
            Body::chunked(src, state.clone())
        } else {
            Body::length(src, 5, state.clone())
        };
        (b, state)
    }

    fn read_all(b: &mut Body) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        b.read_to_end(&mut out).map(|_| out)
    }

    #[test]
    fn chunked_bodies() {
        let (mut b, s) = body(b"3;x=y\r\nabc\r\n2\r\nde\r\n0\r\nT: v\r\n\r\nGET", true);
        assert_eq!(read_all(&mut b).unwrap(), b"abcde");
        let rest = b.into_rest().unwrap();
        let mut tail = String::new();
        let _ = { rest }.read_to_string(&mut tail);
        assert_eq!(tail, "GET");
        assert!(!s.is_broken());
        for bad in [
            &b"3\nabc\r\n0\r\n\r\n"[..],
            b"3\r\nabcd\r\n0\r\n\r\n",
            b"fffffffffffffffff\r\n",
            b"-3\r\nabc\r\n0\r\n\r\n",
            b"3 x\r\nabc\r\n0\r\n\r\n",
            b"0\r\n folded\r\n\r\n",
        ] {
            let (mut b, s) = body(bad, true);
            assert!(read_all(&mut b).is_err(), "{:?}", String::from_utf8_lossy(bad));
            assert!(s.is_broken());
        }
    }

    #[test]
    fn length_bodies_and_drain() {
        let (mut b, s) = body(b"hello world", false);
        assert_eq!(read_all(&mut b).unwrap(), b"hello");
        drop(b);
        assert!(!s.is_broken());
        let (b, s) = body(b"hel", false);
        drop(b);
        assert!(s.is_broken());
        let state = Arc::new(ConnState::new(None, None));
        let b = Body::length(Box::new(io::repeat(b'x')), 1 << 40, state.clone());
        drop(b);
        assert!(state.is_broken());
    }

    #[test]
    fn lines_are_strict() {
        let mut out = Vec::new();
        let mut budget = 100;
        assert!(read_line(&mut Cursor::new(&b"ab\r\n"[..]), &mut out, &mut budget).is_ok());
        assert_eq!(out, b"ab");
        assert_eq!(budget, 96);
        assert!(matches!(
            read_line(&mut Cursor::new(&b"a\rb\r\n"[..]), &mut out, &mut 100),
            Err(LineError::BareCrLf)
        ));
        assert!(matches!(
            read_line(&mut Cursor::new(&b"abcdef\r\n"[..]), &mut out, &mut 3),
            Err(LineError::TooLong)
        ));
    }
}
