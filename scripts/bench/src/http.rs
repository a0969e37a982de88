//! Just enough HTTP/1.1 for the fakes (reading requests) and the load
//! generator (keep-alive requests, `content-length` or chunked answers).
//! No TLS, no redirects, no pipelining: loopback benchmarking only.

use std::io::{self, BufRead, Write};

pub struct Request {
    pub method: String,
    pub path: String,
    pub body: Vec<u8>,
    /// The client asked for `Connection: close`.
    pub close: bool,
}

fn bad(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_string())
}

/// Headers as (lower-case name, value) until the blank line; `None` at a
/// clean end of stream before the first line.
/// The first line and the headers of a message.
type Head0 = (String, Vec<(String, String)>);

fn read_head<R: BufRead>(r: &mut R) -> io::Result<Option<Head0>> {
    let mut first = String::new();
    if r.read_line(&mut first)? == 0 {
        return Ok(None);
    }
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if r.read_line(&mut line)? == 0 {
            return Err(bad("end of stream inside the headers"));
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            headers.push((k.trim().to_ascii_lowercase(), v.trim().to_string()));
        }
    }
    Ok(Some((first.trim_end().to_string(), headers)))
}

fn get<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// One request with a `content-length` body (what ureq sends).
pub fn read_request<R: BufRead>(r: &mut R) -> io::Result<Option<Request>> {
    let Some((first, headers)) = read_head(r)? else {
        return Ok(None);
    };
    let mut parts = first.split(' ');
    let method = parts.next().unwrap_or("").to_string();
    let path = parts.next().unwrap_or("/").to_string();
    let len: usize = get(&headers, "content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    r.read_exact(&mut body)?;
    let close = get(&headers, "connection").is_some_and(|v| v.eq_ignore_ascii_case("close"));
    Ok(Some(Request {
        method,
        path,
        body,
        close,
    }))
}

/// Sends one request on a kept-alive connection.
pub fn send<W: Write>(w: &mut W, method: &str, path: &str, body: &[u8]) -> io::Result<()> {
    let mut msg = format!(
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: */*\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    msg.extend_from_slice(body);
    w.write_all(&msg)
}

/// The status of an answer and whether its body is chunked; the reader is
/// left at the start of the body.
pub struct Head {
    pub status: u16,
    pub length: Option<usize>,
    pub chunked: bool,
}

pub fn read_response_head<R: BufRead>(r: &mut R) -> io::Result<Head> {
    let Some((first, headers)) = read_head(r)? else {
        return Err(bad("connection closed before the answer"));
    };
    let status = first
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| bad("bad status line"))?;
    Ok(Head {
        status,
        length: get(&headers, "content-length").and_then(|v| v.parse().ok()),
        chunked: get(&headers, "transfer-encoding")
            .is_some_and(|v| v.eq_ignore_ascii_case("chunked")),
    })
}

/// The next chunk of a chunked body (`None` after the last one).
pub fn read_chunk<R: BufRead>(r: &mut R, buf: &mut Vec<u8>) -> io::Result<Option<()>> {
    let mut line = String::new();
    r.read_line(&mut line)?;
    let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or(""), 16)
        .map_err(|_| bad("bad chunk size"))?;
    buf.clear();
    buf.resize(size, 0);
    r.read_exact(buf)?;
    let mut crlf = [0; 2];
    r.read_exact(&mut crlf)?;
    Ok((size > 0).then_some(()))
}

/// A whole answer: status and body.
pub fn read_response<R: BufRead>(r: &mut R) -> io::Result<(u16, Vec<u8>)> {
    let head = read_response_head(r)?;
    let mut body = Vec::new();
    if head.chunked {
        let mut chunk = Vec::new();
        while read_chunk(r, &mut chunk)?.is_some() {
            body.extend_from_slice(&chunk);
        }
    } else if let Some(len) = head.length {
        body.resize(len, 0);
        r.read_exact(&mut body)?;
    } else {
        r.read_to_end(&mut body)?;
    }
    Ok((head.status, body))
}
