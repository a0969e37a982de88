//! `knowledge-vault ask "question" [--repo NAME] [--url URL] [--timeout SECS]`:
//! a terminal client of a running service's chat WebSocket.
//!
//! It opens `/ws/chat/{new id}`, sends the question (scoped to a repository
//! with `--repo`), writes the answer's text to stdout as it arrives and each
//! tool call to stderr, and exits 0 on `done`, 1 on an `error` event, a
//! refused or dropped connection, or a silence past the deadline, 2 on bad
//! arguments. Every wait has a deadline: the connection (5 s), the handshake,
//! and the time between two events (`--timeout`, by default the longest
//! wait the service itself allows, `CLAUDE_IDLE_TIMEOUT` or `MCP_TIMEOUT`,
//! plus a margin). Plain `ws://` only: for TLS, run it next to the service.

use crate::config::Config;
use serde_json::{Value, json};
use std::io::{self, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};
use tungstenite::client::IntoClientRequest;
use tungstenite::{Message, WebSocket};

/// Time to open the TCP connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Added to the service's own longest wait before giving up on silence.
const SILENCE_MARGIN: Duration = Duration::from_secs(30);
/// After an `error` event, how long to wait for the `done` that follows it.
const AFTER_ERROR: Duration = Duration::from_secs(10);

/// The parsed command line of `ask`.
#[derive(Debug, PartialEq, Eq)]
pub struct AskArgs {
    pub question: String,
    pub repo: Option<String>,
    pub url: Option<String>,
    pub timeout: Option<Duration>,
}

pub const USAGE: &str =
    "usage: knowledge-vault ask \"question\" [--repo NAME] [--url URL] [--timeout SECS]";

/// Parses the arguments after `ask`; the error is the line to print.
pub fn parse_args(args: &[&str]) -> Result<AskArgs, String> {
    let mut question = None;
    let (mut repo, mut url, mut timeout) = (None, None, None);
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = |name: &str| {
            it.next()
                .map(|v| v.to_string())
                .ok_or_else(|| format!("{name} needs a value; {USAGE}"))
        };
        match *arg {
            "--repo" => repo = Some(value("--repo")?),
            "--url" => url = Some(value("--url")?),
            "--timeout" => {
                let v = value("--timeout")?;
                match v.parse::<u64>() {
                    Ok(n) if (1..=86_400).contains(&n) => timeout = Some(Duration::from_secs(n)),
                    _ => {
                        return Err(format!(
                            "--timeout expects seconds from 1 to 86400, got {v:?}"
                        ));
                    }
                }
            }
            flag if flag.starts_with("--") => {
                return Err(format!("unknown option {flag}; {USAGE}"));
            }
            text if question.is_none() => question = Some(text.to_string()),
            _ => return Err(format!("one question only (quote it); {USAGE}")),
        }
    }
    match question {
        Some(q) if !q.trim().is_empty() => Ok(AskArgs {
            question: q,
            repo: repo.filter(|r| !r.trim().is_empty()),
            url,
            timeout,
        }),
        _ => Err(format!("no question given; {USAGE}")),
    }
}

/// `http://HOST:PORT` of the service configured here: an unspecified listen
/// address (`0.0.0.0`, `::`) is reached on loopback, IPv6 in brackets. Used
/// by `ask` and `health`.
pub fn service_url(config: &Config) -> String {
    let host = if config.host.is_unspecified() {
        "127.0.0.1".to_string()
    } else {
        config.host.to_string()
    };
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host
    };
    format!("http://{host}:{}", config.port)
}

/// Where to connect: `host:port` and the `ws://` base URL.
#[derive(Debug, PartialEq, Eq)]
struct Target {
    authority: String,
    ws_base: String,
}

fn target(url: &str) -> Result<Target, String> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("ws://"))
        .ok_or_else(|| match url.split_once("://") {
            Some(("https" | "wss", _)) => format!(
                "{url}: ask speaks plain ws:// only; run it next to the service (http://127.0.0.1:PORT)"
            ),
            _ => format!("{url}: expected a URL such as http://127.0.0.1:3001"),
        })?;
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    if authority.is_empty() || authority.contains('@') {
        return Err(format!(
            "{url}: expected a URL such as http://127.0.0.1:3001"
        ));
    }
    let has_port = match authority.rfind(']') {
        Some(end) => authority[end..].contains(':'),
        None => authority.contains(':'),
    };
    let authority = if has_port {
        authority.to_string()
    } else {
        format!("{authority}:80")
    };
    let prefix = path.trim_end_matches('/');
    let ws_base = if prefix.is_empty() {
        format!("ws://{authority}")
    } else {
        format!("ws://{authority}/{prefix}")
    };
    Ok(Target { authority, ws_base })
}

/// Why `ask` failed: the line printed before exiting 1.
struct Failure(String);

/// Runs `ask`; returns the process exit code.
pub fn run(args: &AskArgs, config: &Config) -> u8 {
    let url = args.url.clone().unwrap_or_else(|| service_url(config));
    let silence = args
        .timeout
        .unwrap_or_else(|| config.claude_idle_timeout.max(config.mcp_timeout) + SILENCE_MARGIN);
    let mut out = io::stdout().lock();
    let mut err = io::stderr().lock();
    match ask(args, config, &url, silence, &mut out, &mut err) {
        Ok(()) => 0,
        Err(Failure(message)) => {
            let _ = out.flush();
            let _ = writeln!(err, "knowledge-vault: {message}");
            1
        }
    }
}

fn ask(
    args: &AskArgs,
    config: &Config,
    url: &str,
    silence: Duration,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<(), Failure> {
    let target = target(url).map_err(Failure)?;
    let mut socket = connect(&target, config, silence)?;
    let mut frame = json!({"type": "message", "content": args.question});
    if let Some(repo) = &args.repo {
        frame["context"] = json!({"scope": "repo", "repoName": repo});
    }
    socket
        .send(Message::text(frame.to_string()))
        .map_err(|e| Failure(format!("{url}: cannot send the question: {e}")))?;

    let mut answer = Answer::default();
    let mut deadline = Instant::now() + silence;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(Failure(if answer.error.is_some() {
                "the answer failed (see above)".into()
            } else {
                format!(
                    "no event from the service for {} s; giving up",
                    silence.as_secs()
                )
            }));
        }
        let _ = socket.get_mut().set_read_timeout(Some(left));
        let text = match socket.read() {
            Ok(Message::Text(text)) => text,
            // Pings are answered by tungstenite on the next read; nothing else matters.
            Ok(Message::Close(_)) | Err(tungstenite::Error::ConnectionClosed) => {
                return Err(Failure(
                    "the service closed the connection before the answer was complete".into(),
                ));
            }
            Ok(_) => continue,
            Err(tungstenite::Error::Io(e))
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                continue; // the deadline check above decides
            }
            Err(e) => return Err(Failure(format!("the connection failed: {e}"))),
        };
        let event: Value = serde_json::from_str(text.as_str())
            .map_err(|e| Failure(format!("the service sent a frame that is not JSON: {e}")))?;
        deadline = Instant::now() + silence;
        match answer.on_event(&event, out, err) {
            Step::Continue => {}
            Step::AfterError => deadline = Instant::now() + AFTER_ERROR.min(silence),
            Step::Done => {
                return match answer.error {
                    None => Ok(()),
                    Some(_) => Err(Failure("the answer failed (see above)".into())),
                };
            }
            Step::Broken(message) => return Err(Failure(message)),
        }
    }
}

fn connect(
    target: &Target,
    config: &Config,
    silence: Duration,
) -> Result<WebSocket<TcpStream>, Failure> {
    let url = format!("{}/ws/chat/{}", target.ws_base, uuid::Uuid::new_v4());
    let unreachable = |e: &dyn std::fmt::Display| {
        Failure(format!(
            "cannot reach the service at {}: {e} (is it running? see --url)",
            target.authority
        ))
    };
    let addrs: Vec<_> = target
        .authority
        .to_socket_addrs()
        .map_err(|e| unreachable(&e))?
        .collect();
    let mut last = io::Error::new(io::ErrorKind::NotFound, "no address");
    let mut stream = None;
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT) {
            Ok(s) => {
                stream = Some(s);
                break;
            }
            Err(e) => last = e,
        }
    }
    let stream = stream.ok_or_else(|| unreachable(&last))?;
    let handshake_deadline = Some(silence.min(Duration::from_secs(10)));
    let _ = stream.set_read_timeout(handshake_deadline);
    let _ = stream.set_write_timeout(handshake_deadline);
    let _ = stream.set_nodelay(true);

    let mut request = url
        .as_str()
        .into_client_request()
        .map_err(|e| Failure(format!("{url}: {e}")))?;
    if let Some(token) = &config.api_token {
        let value = format!("Bearer {}", token.expose())
            .parse()
            .map_err(|_| Failure("API_TOKEN is not a valid header value".into()))?;
        request.headers_mut().insert("Authorization", value);
    }
    match tungstenite::client::client(request, stream) {
        Ok((socket, _)) => Ok(socket),
        Err(tungstenite::HandshakeError::Failure(tungstenite::Error::Http(resp))) => {
            let detail = resp
                .body()
                .as_deref()
                .and_then(|b| serde_json::from_slice::<Value>(b).ok())
                .and_then(|v| v["detail"].as_str().map(str::to_string))
                .unwrap_or_default();
            let status = resp.status().as_u16();
            Err(Failure(match status {
                401 if config.api_token.is_some() => {
                    format!("the service refused API_TOKEN (401 {detail})")
                }
                401 => "the service needs an access token: set API_TOKEN".into(),
                _ => format!("the service refused the chat connection: {status} {detail}"),
            }))
        }
        Err(tungstenite::HandshakeError::Interrupted(_)) => Err(Failure(format!(
            "{}: no WebSocket handshake answer in time",
            target.authority
        ))),
        Err(tungstenite::HandshakeError::Failure(e)) => Err(Failure(format!(
            "{}: the WebSocket handshake failed: {e}",
            target.authority
        ))),
    }
}

/// What the event loop does next.
enum Step {
    Continue,
    AfterError,
    Done,
    Broken(String),
}

/// The answer as it arrives: what was printed, and the first error.
#[derive(Default)]
struct Answer {
    ends_with_newline: bool,
    printed: bool,
    error: Option<String>,
}

impl Answer {
    fn on_event(&mut self, event: &Value, out: &mut dyn Write, err: &mut dyn Write) -> Step {
        let s = |k: &str| event[k].as_str().unwrap_or_default();
        // Progress lines go to stderr: a closed stderr must not stop the answer.
        match s("type") {
            "text" => {
                let text = s("content");
                if out
                    .write_all(text.as_bytes())
                    .and_then(|_| out.flush())
                    .is_err()
                {
                    return Step::Broken("cannot write the answer to stdout".into());
                }
                if !text.is_empty() {
                    self.printed = true;
                    self.ends_with_newline = text.ends_with('\n');
                }
            }
            "tool_use_start" => {
                let input = clip(&event["input"].to_string(), 200);
                let _ = writeln!(err, "[tool] {} {input}", s("name"));
            }
            "tool_result" => {
                let ms = event["duration"].as_u64().unwrap_or(0);
                if event["isError"] == true {
                    let why = clip(event["result"]["error"].as_str().unwrap_or("failed"), 200);
                    let _ = writeln!(err, "[tool] {} failed after {ms} ms: {why}", s("name"));
                } else {
                    let _ = writeln!(err, "[tool] {} done in {ms} ms", s("name"));
                }
            }
            "error" => {
                let _ = writeln!(err, "knowledge-vault: error: {}", s("message"));
                self.error.get_or_insert_with(|| s("message").to_string());
                return Step::AfterError;
            }
            "done" => {
                if self.printed && !self.ends_with_newline {
                    let _ = writeln!(out);
                }
                let _ = out.flush();
                return Step::Done;
            }
            _ => {}
        }
        Step::Continue
    }
}

fn clip(s: &str, n: usize) -> String {
    match s.char_indices().nth(n) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn arguments() {
        let a = parse_args(&["how?", "--repo", "alpha", "--timeout", "5"]).unwrap();
        assert_eq!(a.question, "how?");
        assert_eq!(a.repo.as_deref(), Some("alpha"));
        assert_eq!(a.timeout, Some(Duration::from_secs(5)));
        assert!(parse_args(&[]).is_err());
        assert!(parse_args(&["  "]).is_err());
        assert!(parse_args(&["a", "b"]).is_err());
        assert!(parse_args(&["a", "--repo"]).is_err());
        assert!(parse_args(&["a", "--timeout", "0"]).is_err());
        assert!(parse_args(&["a", "--verbose"]).is_err());
    }

    #[test]
    fn urls() {
        let t = target("http://127.0.0.1:3001").unwrap();
        assert_eq!(t.authority, "127.0.0.1:3001");
        assert_eq!(t.ws_base, "ws://127.0.0.1:3001");
        assert_eq!(
            target("http://[::1]/kv/").unwrap().ws_base,
            "ws://[::1]:80/kv"
        );
        assert_eq!(target("ws://host:9").unwrap().authority, "host:9");
        assert!(target("https://x").unwrap_err().contains("plain ws://"));
        assert!(target("ftp://x").is_err());
        assert!(target("http://user@x").is_err());
        let config = |pairs: &[(&str, &str)]| {
            let map: HashMap<String, String> = pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            Config::from_map(&map).unwrap()
        };
        assert_eq!(service_url(&config(&[])), "http://127.0.0.1:3001");
        assert_eq!(
            service_url(&config(&[("HOST", "0.0.0.0"), ("PORT", "80")])),
            "http://127.0.0.1:80"
        );
        assert_eq!(
            service_url(&config(&[("HOST", "::1")])),
            "http://[::1]:3001"
        );
    }
}
