//! A Server-Sent Events reader shared by the Claude client and the MCP client.
//!
//! Bytes are buffered and decoded one whole line at a time, so a UTF-8
//! character split across network reads survives. Follows the WHATWG rules
//! the official SDKs implement: `\n`, `\r\n` and a lone `\r` end a line; a
//! line starting with `:` is a comment; `data` lines are joined with `\n`; a
//! blank line dispatches; a final event without its blank line is still
//! delivered at end of stream.

use std::io::{self, BufRead};

/// One dispatched event. `event` is empty when the stream named none.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SseEvent {
    pub event: String,
    pub data: String,
    pub id: Option<String>,
}

/// Reads events from any buffered reader. A single line longer than
/// `max_line` bytes is an error rather than unbounded memory.
pub struct SseReader<R> {
    inner: R,
    line: Vec<u8>,
    max_line: usize,
    /// A `\r` ended the previous line; a `\n` right after it is not a new line.
    after_cr: bool,
    done: bool,
}

impl<R: BufRead> SseReader<R> {
    pub fn new(inner: R) -> Self {
        SseReader::with_max_line(inner, 16 * 1024 * 1024)
    }

    pub fn with_max_line(inner: R, max_line: usize) -> Self {
        SseReader {
            inner,
            line: Vec::new(),
            max_line,
            after_cr: false,
            done: false,
        }
    }

    /// The next event, `Ok(None)` at end of stream.
    pub fn next_event(&mut self) -> io::Result<Option<SseEvent>> {
        let mut ev = SseEvent::default();
        let mut has_data = false;
        let mut has_field = false;
        loop {
            let Some(line) = self.next_line()? else {
                // End of stream: flush a pending event, as the SDKs do.
                return Ok(if has_field && has_data {
                    Some(ev)
                } else {
                    None
                });
            };
            if line.is_empty() {
                if has_data {
                    return Ok(Some(ev));
                }
                // A blank line with no data (or only `event:`) dispatches nothing.
                ev = SseEvent::default();
                has_field = false;
                continue;
            }
            if line.starts_with(':') {
                continue;
            }
            let (field, value) = match line.split_once(':') {
                Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
                None => (line.as_str(), ""),
            };
            has_field = true;
            match field {
                "event" => ev.event = value.to_string(),
                "data" => {
                    if has_data {
                        ev.data.push('\n');
                    }
                    ev.data.push_str(value);
                    has_data = true;
                }
                "id" => ev.id = Some(value.to_string()),
                _ => {}
            }
        }
    }

    fn next_line(&mut self) -> io::Result<Option<String>> {
        if self.done {
            return Ok(None);
        }
        self.line.clear();
        loop {
            let buf = self.inner.fill_buf()?;
            if buf.is_empty() {
                self.done = true;
                if self.line.is_empty() {
                    return Ok(None);
                }
                return decode(&self.line).map(Some);
            }
            let mut start = 0;
            if self.after_cr && buf[0] == b'\n' {
                start = 1;
            }
            self.after_cr = false;
            match buf[start..].iter().position(|&b| b == b'\n' || b == b'\r') {
                Some(pos) => {
                    let end = start + pos;
                    self.after_cr = buf[end] == b'\r';
                    self.line.extend_from_slice(&buf[start..end]);
                    self.inner.consume(end + 1);
                    return decode(&self.line).map(Some);
                }
                None => {
                    let n = buf.len();
                    self.line.extend_from_slice(&buf[start..]);
                    self.inner.consume(n);
                    if self.line.len() > self.max_line {
                        return Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            format!("SSE line longer than {} bytes", self.max_line),
                        ));
                    }
                }
            }
        }
    }
}

fn decode(bytes: &[u8]) -> io::Result<String> {
    String::from_utf8(bytes.to_vec())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "SSE line is not valid UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufReader, Read};

    /// Delivers its bytes in fixed-size pieces, like a network.
    struct Chunked(Vec<u8>, usize, usize);
    impl Read for Chunked {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            let n = self.1.min(out.len()).min(self.0.len() - self.2);
            out[..n].copy_from_slice(&self.0[self.2..self.2 + n]);
            self.2 += n;
            Ok(n)
        }
    }

    fn events(bytes: &[u8], chunk: usize) -> Vec<SseEvent> {
        let mut r = SseReader::new(BufReader::with_capacity(
            chunk.max(1),
            Chunked(bytes.to_vec(), chunk, 0),
        ));
        let mut out = vec![];
        while let Some(e) = r.next_event().unwrap() {
            out.push(e);
        }
        out
    }

    #[test]
    fn every_chunking_gives_the_same_events() {
        let text = "event: a\ndata: {\"t\":\"h\u{e9}llo \u{65e5}\u{672c}\"}\n\n: comment\r\nevent: b\r\ndata: x\r\ndata: y\r\n\r\nevent: c\rdata: z\r\rdata: tail";
        let want = events(text.as_bytes(), 4096);
        assert_eq!(want.len(), 4, "{want:?}");
        assert_eq!(want[0].event, "a");
        assert_eq!(want[0].data, "{\"t\":\"h\u{e9}llo \u{65e5}\u{672c}\"}");
        assert_eq!(want[1].data, "x\ny");
        assert_eq!(want[2].event, "c");
        assert_eq!(want[3].data, "tail");
        for chunk in 1..12 {
            assert_eq!(events(text.as_bytes(), chunk), want, "chunk size {chunk}");
        }
    }

    #[test]
    fn empty_data_events_and_ids() {
        let ev = events(b"id: 7\ndata:\n\nevent: message\nid: 8\ndata: {}\n\n", 3);
        assert_eq!(ev.len(), 2);
        assert_eq!(ev[0].data, "");
        assert_eq!(ev[1].id.as_deref(), Some("8"));
    }

    #[test]
    fn overlong_line_is_an_error() {
        let mut r = SseReader::with_max_line(
            BufReader::with_capacity(8, Chunked(vec![b'a'; 100], 8, 0)),
            32,
        );
        assert!(r.next_event().is_err());
    }
}

#[cfg(test)]
mod random_input {
    use super::*;
    use crate::testing::{Rng, mutate, noise};

    /// Mutated real streams and plain noise: the reader never panics,
    /// never loops, and never holds a line past its limit.
    #[test]
    fn any_bytes_end_in_events_or_an_error() {
        let seed = b"event: message_start\ndata: {\"type\":\"message_start\"}\n\n: comment\r\n\
                     data: a\rdata: b\r\n\r\nid: 7\nevent: x\ndata: \xe6\x97\xa5\n\n";
        let mut rng = Rng::new(0x05ee_d55e);
        for case in 0..3000 {
            let bytes = if case % 4 == 0 {
                noise(&mut rng, 300)
            } else {
                mutate(&mut rng, seed)
            };
            let mut reader = SseReader::with_max_line(&bytes[..], 64);
            let mut events = 0;
            while let Ok(Some(e)) = reader.next_event() {
                events += 1;
                assert!(e.data.len() <= bytes.len(), "case {case}");
                assert!(events <= bytes.len() + 1, "case {case}: no progress");
            }
        }
    }
}
