use std::io::Result as IoResult;
use std::io::{BufReader, BufWriter, ErrorKind, Read, Write};

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::common::{HTTPVersion, Header, Method};
use crate::util::deadline::{ConnState, Guarded};
use crate::util::framing::{read_line, LineError};
use crate::util::RefinedTcpStream;
use crate::util::{SequentialReader, SequentialReaderBuilder, SequentialWriterBuilder};
use crate::Request;

/// PATCH(knowledge-vault): most header fields in one request (431 beyond);
/// their bytes are bounded by `max_head_bytes`.
const MAX_HEADERS: usize = 128;
/// PATCH(knowledge-vault): empty lines tolerated before a request line.
const MAX_LEADING_EMPTY_LINES: usize = 4;

/// PATCH(knowledge-vault): how long, and how many bytes, a connection closed
/// by the server while its client may still be sending is read and
/// discarded after the last response (see `ClientConnection::linger`).
const LINGER_TIME: Duration = Duration::from_secs(2);
const LINGER_BYTES: usize = 4 * 1024 * 1024;

/// PATCH(knowledge-vault): the reader and writer of a connection, under its
/// buffers, check the connection's deadlines.
type Reader = BufReader<Guarded<RefinedTcpStream>>;
type Writer = BufWriter<Guarded<RefinedTcpStream>>;

/// A ClientConnection is an object that will store a socket to a client
/// and return Request objects.
pub struct ClientConnection {
    // address of the client
    remote_addr: IoResult<Option<SocketAddr>>,

    // sequence of Readers to the stream, so that the data is not read in
    //  the wrong order
    source: SequentialReaderBuilder<Reader>,

    // sequence of Writers to the stream, to avoid writing response #2 before
    //  response #1
    sink: SequentialWriterBuilder<Writer>,

    // Reader to read the next header from
    next_header_source: SequentialReader<Reader>,

    // set to true if we know that the previous request is the last one
    no_more_requests: bool,

    // true if the connection goes through SSL
    secure: bool,

    // PATCH(knowledge-vault): socket clone handed to the first request if it
    // is an upgrade; dropped (closing the extra descriptor) otherwise.
    raw_stream: Option<std::net::TcpStream>,

    // PATCH(knowledge-vault): deadlines and framing state, and the budget
    // of a request head (request line and header fields, in bytes).
    state: Arc<ConnState>,
    max_head_bytes: usize,
}

/// PATCH(knowledge-vault): why no request could be read: either a refusal
/// (status and `detail`), answered and followed by closing the connection,
/// or a connection that just ends (closed, failed, or silent between
/// requests).
#[derive(Debug)]
enum ReadError {
    Refused(u16, &'static str),
    Closed,
}

fn bad(detail: &'static str) -> ReadError {
    ReadError::Refused(400, detail)
}

impl ClientConnection {
    /// Creates a new `ClientConnection` that takes ownership of the `TcpStream`.
    /// PATCH(knowledge-vault): `idle` is the timeout already set on the
    /// socket; `state` holds the connection's deadlines.
    pub fn new(
        write_socket: RefinedTcpStream,
        mut read_socket: RefinedTcpStream,
        idle: Option<Duration>,
        state: Arc<ConnState>,
        max_head_bytes: usize,
    ) -> ClientConnection {
        let remote_addr = read_socket.peer_addr();
        let secure = read_socket.secure();

        let reader = Guarded::new(read_socket, state.clone(), idle, false);
        let writer = Guarded::new(write_socket, state.clone(), idle, true);
        let mut source = SequentialReaderBuilder::new(BufReader::with_capacity(1024, reader));
        let first_header = source.next().unwrap();

        ClientConnection {
            source,
            sink: SequentialWriterBuilder::new(BufWriter::with_capacity(1024, writer)),
            remote_addr,
            next_header_source: first_header,
            no_more_requests: false,
            secure,
            raw_stream: None,
            state,
            max_head_bytes,
        }
    }

    /// PATCH(knowledge-vault): see `raw_stream`.
    pub(crate) fn with_raw_stream(mut self, raw: Option<std::net::TcpStream>) -> ClientConnection {
        self.raw_stream = raw;
        self
    }

    /// true if the connection is HTTPS
    pub fn secure(&self) -> bool {
        self.secure
    }

    /// PATCH(knowledge-vault): after the last request of a connection the
    /// server closes itself (a refusal, a body it would not drain), the
    /// client may still be sending: closing now would answer with a reset,
    /// which can destroy the response before the client reads it. So the
    /// write side is shut first (the client sees the end of the response),
    /// and what the client still sends is read and discarded, within
    /// `LINGER_TIME` and `LINGER_BYTES` (a fixed 4 KiB buffer).
    pub(crate) fn linger(&mut self) {
        if !self.state.is_broken() || self.state.is_upgraded() {
            return;
        }
        self.sink.with_inner(|w| {
            let _ = w.flush();
            w.get_mut().get_mut().shutdown_write();
        });
        self.state.expire_in(LINGER_TIME);
        let mut scratch = [0u8; 4096];
        let mut total = 0;
        while total < LINGER_BYTES {
            match self.next_header_source.read(&mut scratch) {
                Ok(0) | Err(_) => break,
                Ok(n) => total += n,
            }
        }
    }

    /// PATCH(knowledge-vault): one line of the head, within `budget`;
    /// `too_long` is the refusal when the budget runs out.
    fn read_head_line(
        &mut self,
        line: &mut Vec<u8>,
        budget: &mut usize,
        too_long: ReadError,
    ) -> Result<(), ReadError> {
        let started = *budget < self.max_head_bytes;
        match read_line(&mut self.next_header_source, line, budget) {
            Ok(()) => Ok(()),
            Err(LineError::TooLong) => Err(too_long),
            Err(LineError::BareCrLf) => Err(bad("bare CR or LF in the request head")),
            // A client that started a request and is too slow gets 408; an
            // idle keep-alive connection is just closed.
            Err(LineError::Io(e)) if started && e.kind() == ErrorKind::TimedOut => {
                Err(ReadError::Refused(408, "request head not received in time"))
            }
            Err(LineError::Io(_)) => Err(ReadError::Closed),
        }
    }

    /// Reads a request from the stream.
    /// Blocks until the header has been read.
    /// PATCH(knowledge-vault): strict RFC 9112 parsing, within a byte budget
    /// and a deadline for the whole head.
    fn read(&mut self) -> Result<Request, ReadError> {
        self.state.start_head();
        let mut budget = self.max_head_bytes;
        let mut line = Vec::new();
        let too_long = || ReadError::Refused(414, "request line too long");
        let mut empty = 0;
        loop {
            self.read_head_line(&mut line, &mut budget, too_long())?;
            if !line.is_empty() {
                break;
            }
            empty += 1;
            if empty > MAX_LEADING_EMPTY_LINES {
                return Err(bad("empty lines instead of a request line"));
            }
        }
        let (method, path, version, authority) = parse_request_line(&line)?;

        let too_big = || ReadError::Refused(431, "request header fields too large");
        let mut headers: Vec<Header> = Vec::new();
        loop {
            self.read_head_line(&mut line, &mut budget, too_big())?;
            if line.is_empty() {
                break;
            }
            if headers.len() >= MAX_HEADERS {
                return Err(too_big());
            }
            headers.push(parse_header(&line)?);
        }
        check_host(&headers, &version, authority.as_deref())?;
        self.state.start_body();

        // building the writer for the request
        let writer = self.sink.next().unwrap();

        // follow-up for next potential request
        let mut data_source = self.source.next().unwrap();
        std::mem::swap(&mut self.next_header_source, &mut data_source);

        // building the next reader
        // PATCH(knowledge-vault): only the first request may take the socket
        // clone, and only for an upgrade.
        let raw_stream = self
            .raw_stream
            .take()
            .filter(|_| has_token(&headers, "Connection", "upgrade"));

        let mut request = crate::request::new_request(
            self.secure,
            method,
            path,
            version,
            headers,
            // PATCH(knowledge-vault): no panic when the peer address is unknown.
            self.remote_addr.as_ref().ok().and_then(|a| *a),
            data_source,
            writer,
            self.state.clone(),
        )
        .map_err(|e| {
            use crate::request::RequestCreationError as E;
            match e {
                E::ExpectationFailed => ReadError::Refused(417, "unsupported Expect value"),
                E::BadFraming(detail) => bad(detail),
                E::NotImplemented(detail) => ReadError::Refused(501, detail),
                E::CreationIoError(_) => ReadError::Closed,
            }
        })?;
        request.raw_stream = raw_stream;

        // return the request
        Ok(request)
    }

    /// PATCH(knowledge-vault): answers a refusal as `{"detail": ...}` with
    /// `Connection: close`; the connection is closed after it.
    fn refuse(&mut self, status: u16, detail: &str) {
        self.state.break_off();
        let body = format!("{{\"detail\":\"{}\"}}", detail);
        let head = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            status,
            crate::StatusCode(status).default_reason_phrase(),
            body.len()
        );
        if let Some(mut writer) = self.sink.next() {
            self.state.start_response();
            let mut all = head.into_bytes();
            all.extend_from_slice(body.as_bytes());
            let _ = writer.write_all(&all).and_then(|()| writer.flush());
        }
    }
}

impl Iterator for ClientConnection {
    type Item = Request;

    /// Blocks until the next Request is available.
    /// Returns None when no new Requests will come from the client.
    fn next(&mut self) -> Option<Request> {
        // the client sent a "connection: close" header in this previous request
        //  or is using HTTP 1.0, meaning that no new request will come
        // PATCH(knowledge-vault): nor after a body that could not be read to
        // its end (its bytes must never be read as a request).
        if self.no_more_requests || self.state.is_broken() {
            return None;
        }

        let rq = match self.read() {
            Ok(rq) => rq,
            Err(ReadError::Refused(status, detail)) => {
                self.refuse(status, detail);
                return None;
            }
            Err(ReadError::Closed) => return None,
        };

        // updating the status of the connection
        // PATCH(knowledge-vault): `Connection` options are tokens.
        let keep_alive = has_token(rq.headers(), "Connection", "keep-alive");
        if has_token(rq.headers(), "Connection", "close")
            || has_token(rq.headers(), "Connection", "upgrade")
            || (*rq.http_version() == HTTPVersion(1, 0) && !keep_alive)
        {
            self.no_more_requests = true;
        }
        Some(rq.closing(self.no_more_requests))
    }
}

/// PATCH(knowledge-vault): whether a comma-separated header (all its
/// occurrences) holds `token`, case-insensitively.
pub(crate) fn has_token(headers: &[Header], name: &'static str, token: &str) -> bool {
    headers
        .iter()
        .filter(|h| h.field.equiv(name))
        .flat_map(|h| h.value.as_str().split(','))
        .any(|t| t.trim().eq_ignore_ascii_case(token))
}

/// PATCH(knowledge-vault): RFC 9110 `tchar`, the bytes of a method or a
/// header field name.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// PATCH(knowledge-vault): `method SP request-target SP HTTP-version`, with
/// single spaces. Returns the target in origin form (`/path?query`; `*` for
/// `OPTIONS *`) and, for an absolute-form target, its authority.
fn parse_request_line(
    line: &[u8],
) -> Result<(Method, String, HTTPVersion, Option<String>), ReadError> {
    let parts: Vec<&[u8]> = line.split(|&b| b == b' ').collect();
    let [method, target, version] = parts.as_slice() else {
        return Err(bad("malformed request line"));
    };
    let version = match *version {
        b"HTTP/1.1" => HTTPVersion(1, 1),
        b"HTTP/1.0" => HTTPVersion(1, 0),
        v if v.starts_with(b"HTTP/")
            && v.len() > 5
            && v[5..].iter().all(|b| b.is_ascii_digit() || *b == b'.') =>
        {
            return Err(ReadError::Refused(505, "only HTTP/1.0 and HTTP/1.1 are supported"));
        }
        _ => return Err(bad("malformed HTTP version")),
    };
    if method.is_empty() || !method.iter().all(|&b| is_tchar(b)) {
        return Err(bad("invalid method"));
    }
    let method: Method = std::str::from_utf8(method)
        .ok()
        .and_then(|m| m.parse().ok())
        .ok_or_else(|| bad("invalid method"))?;
    if target.is_empty() || !target.iter().all(|b| (0x21..=0x7e).contains(b)) {
        return Err(bad("invalid request target"));
    }
    // Checked ASCII above.
    let target = String::from_utf8_lossy(target).into_owned();
    if target.starts_with('/') {
        return Ok((method, target, version, None));
    }
    if target == "*" {
        return match method {
            Method::Options => Ok((method, target, version, None)),
            _ => Err(bad("the * target is only for OPTIONS")),
        };
    }
    let lower = target.to_ascii_lowercase();
    let scheme = ["http://", "https://"]
        .into_iter()
        .find(|s| lower.starts_with(*s))
        .ok_or_else(|| bad("invalid request target"))?;
    let rest = &target[scheme.len()..];
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    if authority.is_empty() || authority.contains('@') {
        return Err(bad("invalid request target"));
    }
    let path = if path.starts_with('/') {
        path.to_string()
    } else {
        format!("/{}", path)
    };
    Ok((method, path, version, Some(authority.to_string())))
}

/// PATCH(knowledge-vault): `field-name ":" OWS field-value OWS`; no
/// whitespace before the colon, no obs-fold, no control characters.
fn parse_header(line: &[u8]) -> Result<Header, ReadError> {
    if matches!(line.first(), Some(b' ' | b'\t')) {
        return Err(bad("obsolete line folding in a header"));
    }
    let colon = line
        .iter()
        .position(|&b| b == b':')
        .ok_or_else(|| bad("header line without a colon"))?;
    let (name, value) = (&line[..colon], &line[colon + 1..]);
    if name.is_empty() || !name.iter().all(|&b| is_tchar(b)) {
        return Err(bad("invalid header name"));
    }
    let ows = |b: &u8| *b == b' ' || *b == b'\t';
    let start = value.iter().position(|b| !ows(b)).unwrap_or(value.len());
    let end = value.iter().rposition(|b| !ows(b)).map_or(start, |e| e + 1);
    let value = &value[start..end];
    if !value.iter().all(|&b| b == b'\t' || (b' '..=b'~').contains(&b)) {
        return Err(bad("invalid header value"));
    }
    Header::from_bytes(name, value).map_err(|_| bad("invalid header"))
}

/// PATCH(knowledge-vault): exactly one `Host` in HTTP/1.1 (at most one in
/// 1.0), matching an absolute-form target's authority (RFC 9112 §3.2).
fn check_host(
    headers: &[Header],
    version: &HTTPVersion,
    authority: Option<&str>,
) -> Result<(), ReadError> {
    let mut hosts = headers.iter().filter(|h| h.field.equiv("Host"));
    let (first, more) = (hosts.next(), hosts.next().is_some());
    if more || (first.is_none() && *version == HTTPVersion(1, 1)) {
        return Err(bad("expected exactly one Host header"));
    }
    match (authority, first) {
        (Some(a), Some(h)) if !a.eq_ignore_ascii_case(h.value.as_str()) => {
            Err(bad("the Host header does not match the request target"))
        }
        (Some(_), None) => Err(bad("expected exactly one Host header")),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod test {
    use super::*;

    #[test]
    fn test_parse_request_line() {
        let (method, path, ver, _) = parse_request_line(b"GET /hello HTTP/1.1").unwrap();

        assert!(method == crate::Method::Get);
        assert!(path == "/hello");
        assert!(ver == crate::common::HTTPVersion(1, 1));

        assert!(parse_request_line(b"GET /hello").is_err());
        assert!(parse_request_line(b"qsd qsd qsd").is_err());
        assert!(parse_request_line(b"GET  /hello HTTP/1.1").is_err());
        assert!(parse_request_line(b"GET /a b HTTP/1.1").is_err());
        assert!(matches!(
            parse_request_line(b"PRI * HTTP/2.0"),
            Err(ReadError::Refused(505, _))
        ));
        let (_, path, _, auth) = parse_request_line(b"GET http://h:1?q HTTP/1.1").unwrap();
        assert_eq!((path.as_str(), auth.as_deref()), ("/?q", Some("h:1")));
        assert!(parse_request_line(b"GET * HTTP/1.1").is_err());
        assert!(parse_request_line(b"CONNECT h:443 HTTP/1.1").is_err());
    }

    #[test]
    fn test_parse_header() {
        let h = parse_header(b"X-A: \t v 1 \t").unwrap();
        assert_eq!(h.value.as_str(), "v 1");
        for bad in [&b"X-A : v"[..], b" X: v", b"X\x01: v", b"X: v\x00", b"NoColon", b": v"] {
            assert!(parse_header(bad).is_err(), "{:?}", bad);
        }
    }
}
