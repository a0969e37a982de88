//! The GitHub REST client: one shared ureq agent (timeouts, proxy rule, no
//! token on a redirect to another host), the required headers, conditional
//! requests, and every retry rule (primary rate limit, secondary limits, 5xx
//! and connection errors). Callers get bytes, `NotModified`, or a classified
//! [`ApiError`]; a 401 stops every later request of the sync. Also the wire
//! helpers the sync needs: `Link` pagination, base64 blob contents, path
//! encoding and origins. It knows nothing of repositories or caches.

use crate::clock::unix_millis;
use crate::config::Secret;
use crate::sync::lock;
use std::fmt;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::sleep;
use std::time::Duration;

/// Retries of a 5xx or a broken connection (with `net::backoff`).
const TRANSIENT_RETRIES: u32 = 2;
/// How many times one request may be held back by a rate limit.
const MAX_LIMIT_RETRIES: u32 = 5;
/// The primary limit resets within the hour; a reset further away is a
/// clock problem, so never sleep longer than this.
const MAX_RESET_WAIT: Duration = Duration::from_secs(3600 + 60);
/// GitHub asks for "at least one minute" after an unexplained secondary limit.
const DEFAULT_SECONDARY_WAIT: Duration = Duration::from_secs(60);
const MAX_RETRY_AFTER: Duration = Duration::from_secs(15 * 60);
/// Error bodies are short JSON; more than this is not worth reading.
const ERROR_BODY_LIMIT: u64 = 64 * 1024;

/// A successful answer.
#[derive(Debug)]
pub enum Fetched {
    Body {
        bytes: Vec<u8>,
        etag: Option<String>,
        /// The `Link` header's `rel="next"` URL, for paginated lists.
        next: Option<String>,
    },
    /// 304: the `If-None-Match` ETag still matches.
    NotModified,
}

#[derive(Debug, Clone, PartialEq)]
pub enum ApiError {
    /// 401: the token is wrong, expired or revoked. Stops the whole sync.
    Unauthorized(String),
    NotFound(String),
    /// 409: GitHub's answer for a repository without commits.
    Conflict(String),
    /// 403 that is not a rate limit (permissions, SAML, blocked).
    Forbidden(String),
    Status(u16, String),
    Transport(String),
    TooLarge(u64),
    Invalid(String),
    /// An earlier 401 stopped this sync.
    Aborted,
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApiError::Unauthorized(m) => write!(f, "401 unauthorized: {m}"),
            ApiError::NotFound(m) => write!(f, "404 not found: {m}"),
            ApiError::Conflict(m) => write!(f, "409 conflict: {m}"),
            ApiError::Forbidden(m) => write!(f, "403 forbidden: {m}"),
            ApiError::Status(s, m) => write!(f, "HTTP {s}: {m}"),
            ApiError::Transport(m) => write!(f, "connection failed: {m}"),
            ApiError::TooLarge(n) => write!(f, "response larger than {n} bytes"),
            ApiError::Invalid(m) => write!(f, "unexpected response: {m}"),
            ApiError::Aborted => f.write_str("sync stopped after a 401"),
        }
    }
}

impl std::error::Error for ApiError {}

#[derive(Default)]
struct Meter {
    remaining: Option<u64>,
    reset: Option<u64>,
    /// The reset time already announced in the log, so that parallel
    /// workers waiting for the same reset log it once.
    announced: Option<u64>,
}

pub struct Api {
    agent: ureq::Agent,
    base: String,
    token: Option<Secret>,
    label: String,
    requests: AtomicU64,
    meter: Mutex<Meter>,
    stop: AtomicBool,
}

impl Api {
    pub fn new(base: &str, token: Option<Secret>, label: String) -> Api {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .user_agent(format!("knowledge-vault/{}", env!("CARGO_PKG_VERSION")))
            .proxy(crate::net::proxy_for(base))
            .redirect_auth_headers(ureq::config::RedirectAuthHeaders::SameHost)
            .timeout_connect(Some(Duration::from_secs(15)))
            .timeout_send_request(Some(Duration::from_secs(30)))
            .timeout_recv_response(Some(Duration::from_secs(120)))
            .timeout_recv_body(Some(Duration::from_secs(300)))
            .max_idle_connections_per_host(8)
            .build()
            .new_agent();
        Api {
            agent,
            base: base.trim_end_matches('/').to_string(),
            token,
            label,
            requests: AtomicU64::new(0),
            meter: Mutex::new(Meter::default()),
            stop: AtomicBool::new(false),
        }
    }

    /// `{api_url}{path}`; `path` starts with `/`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Starts a sync: clears an earlier 401 stop, returns the request count.
    pub fn begin(&self) -> u64 {
        self.stop.store(false, Ordering::SeqCst);
        self.requests()
    }

    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::SeqCst)
    }

    pub fn stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// (remaining, reset as unix seconds) from the last response.
    pub fn rate_limit(&self) -> (Option<u64>, Option<u64>) {
        let m = lock(&self.meter);
        (m.remaining, m.reset)
    }

    /// One GET with every retry rule applied. `etag` makes it conditional;
    /// `limit` bounds the body read.
    pub fn get(&self, url: &str, etag: Option<&str>, limit: u64) -> Result<Fetched, ApiError> {
        let mut transient = 0u32;
        let mut limited = 0u32;
        loop {
            if self.stopped() {
                return Err(ApiError::Aborted);
            }
            self.wait_for_reset();
            self.requests.fetch_add(1, Ordering::SeqCst);
            let mut req = self
                .agent
                .get(url)
                .header("Accept", "application/vnd.github+json")
                .header("X-GitHub-Api-Version", "2022-11-28");
            if let Some(t) = &self.token {
                req = req.header("Authorization", format!("Bearer {}", t.expose()));
            }
            if let Some(e) = etag {
                req = req.header("If-None-Match", e);
            }
            let mut resp = match req.call() {
                Ok(r) => r,
                Err(e) => {
                    let msg = self.scrub(&e.to_string());
                    if transient < TRANSIENT_RETRIES {
                        let pause = crate::net::backoff(transient, crate::net::jitter());
                        log::debug!("{}: GET {url}: {msg}; retrying", self.label);
                        transient += 1;
                        sleep(pause);
                        continue;
                    }
                    return Err(ApiError::Transport(msg));
                }
            };
            let status = resp.status().as_u16();
            let headers = resp.headers();
            let header = |name: &str| {
                headers
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(|s| s.trim().to_string())
            };
            let number = |name: &str| header(name).and_then(|v| v.parse::<u64>().ok());
            let remaining = number("x-ratelimit-remaining");
            let retry_after = number("retry-after");
            let new_etag = header("etag");
            let next = header("link").and_then(|l| next_link(&l));
            self.note_rate_limit(remaining, number("x-ratelimit-reset"));

            if (200..300).contains(&status) {
                return match resp.body_mut().with_config().limit(limit).read_to_vec() {
                    Ok(bytes) => Ok(Fetched::Body {
                        bytes,
                        etag: new_etag,
                        next,
                    }),
                    Err(ureq::Error::BodyExceedsLimit(n)) => Err(ApiError::TooLarge(n)),
                    Err(e) => {
                        let msg = self.scrub(&e.to_string());
                        if transient < TRANSIENT_RETRIES {
                            let pause = crate::net::backoff(transient, crate::net::jitter());
                            transient += 1;
                            sleep(pause);
                            continue;
                        }
                        Err(ApiError::Transport(msg))
                    }
                };
            }
            if status == 304 {
                return Ok(Fetched::NotModified);
            }
            let message = self.scrub(&error_message(&mut resp));
            match status {
                401 => {
                    self.stop.store(true, Ordering::SeqCst);
                    return Err(ApiError::Unauthorized(message));
                }
                403 | 429 if limited < MAX_LIMIT_RETRIES => {
                    if let Some(secs) = retry_after {
                        let wait = Duration::from_secs(secs).min(MAX_RETRY_AFTER);
                        log::warn!(
                            "{}: GitHub secondary rate limit (HTTP {status}); retrying in {} s",
                            self.label,
                            wait.as_secs()
                        );
                        limited += 1;
                        sleep(wait);
                        continue;
                    }
                    if remaining == Some(0) {
                        // The meter now says 0: `wait_for_reset` sleeps.
                        limited += 1;
                        continue;
                    }
                    if status == 429 || message.to_ascii_lowercase().contains("rate limit") {
                        log::warn!(
                            "{}: GitHub rate limit (HTTP {status}, no retry-after); retrying in {} s",
                            self.label,
                            DEFAULT_SECONDARY_WAIT.as_secs()
                        );
                        limited += 1;
                        sleep(DEFAULT_SECONDARY_WAIT);
                        continue;
                    }
                    return Err(ApiError::Forbidden(message));
                }
                403 => return Err(ApiError::Forbidden(message)),
                404 => return Err(ApiError::NotFound(message)),
                409 => return Err(ApiError::Conflict(message)),
                500..=599 => {
                    if transient < TRANSIENT_RETRIES {
                        let pause = crate::net::backoff(transient, crate::net::jitter());
                        log::debug!("{}: GET {url}: HTTP {status}; retrying", self.label);
                        transient += 1;
                        sleep(pause);
                        continue;
                    }
                    return Err(ApiError::Status(status, message));
                }
                _ => return Err(ApiError::Status(status, message)),
            }
        }
    }

    fn note_rate_limit(&self, remaining: Option<u64>, reset: Option<u64>) {
        let mut m = lock(&self.meter);
        // Parallel answers arrive out of order: within one window the
        // smallest count is the true one.
        let same_window = reset.is_some() && reset == m.reset;
        m.remaining = match (remaining, m.remaining) {
            (Some(new), Some(old)) if same_window => Some(new.min(old)),
            (Some(new), _) => Some(new),
            (None, old) => old,
        };
        if reset.is_some() {
            m.reset = reset;
        }
    }

    /// Sleeps until the primary limit resets when the last answer said none
    /// are left; every worker waits, the first one logs.
    fn wait_for_reset(&self) {
        let (reset, wait) = {
            let mut m = lock(&self.meter);
            let (Some(0), Some(reset)) = (m.remaining, m.reset) else {
                return;
            };
            // A little past the reset second, so the reset has happened.
            let until_ms = reset.saturating_mul(1000) + 250;
            let now_ms = unix_millis();
            if until_ms <= now_ms {
                m.remaining = None;
                return;
            }
            let wait = Duration::from_millis(until_ms - now_ms).min(MAX_RESET_WAIT);
            if m.announced != Some(reset) {
                m.announced = Some(reset);
                log::warn!(
                    "{}: GitHub rate limit exhausted; pausing until {} (in {} s)",
                    self.label,
                    crate::clock::rfc3339(reset),
                    wait.as_secs().max(1)
                );
            }
            (reset, wait)
        };
        sleep(wait);
        let mut m = lock(&self.meter);
        if m.reset == Some(reset) && m.remaining == Some(0) {
            m.remaining = None;
        }
    }

    /// Belt and braces: no error text ever carries the token.
    fn scrub(&self, text: &str) -> String {
        match &self.token {
            Some(t) if !t.expose().is_empty() => text.replace(t.expose(), "***"),
            _ => text.to_string(),
        }
    }
}

/// GitHub's `{"message": ...}`, or the start of whatever body came.
fn error_message(resp: &mut ureq::http::Response<ureq::Body>) -> String {
    let body = resp
        .body_mut()
        .with_config()
        .limit(ERROR_BODY_LIMIT)
        .lossy_utf8(true)
        .read_to_string()
        .unwrap_or_default();
    let parsed = serde_json::from_str::<serde_json::Value>(&body).ok();
    match parsed
        .as_ref()
        .and_then(|v| v.get("message"))
        .and_then(|m| m.as_str())
    {
        Some(m) => m.to_string(),
        None if body.trim().is_empty() => "(empty body)".to_string(),
        None => body
            .chars()
            .take(200)
            .collect::<String>()
            .trim()
            .to_string(),
    }
}

/// The `rel="next"` target of a `Link` header:
/// `<https://…?page=2>; rel="next", <https://…?page=5>; rel="last"`.
pub fn next_link(header: &str) -> Option<String> {
    header.split(',').find_map(|part| {
        let (url, params) = part.split_once(';')?;
        let url = url.trim().strip_prefix('<')?.strip_suffix('>')?;
        params
            .split(';')
            .any(|p| {
                let p = p.trim();
                p == "rel=\"next\"" || p == "rel=next"
            })
            .then(|| url.to_string())
    })
}

/// Standard base64 as GitHub sends blob contents: wrapped with `\n`,
/// padded. Whitespace is skipped; anything else invalid is an error.
pub fn decode_base64(text: &str) -> Result<Vec<u8>, ApiError> {
    let invalid = |m: String| Err(ApiError::Invalid(m));
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    let (mut acc, mut bits, mut padded) = (0u32, 0u32, false);
    for (i, &c) in text.as_bytes().iter().enumerate() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => {
                padded = true;
                continue;
            }
            b'\n' | b'\r' | b' ' | b'\t' => continue,
            _ => return invalid(format!("invalid base64 byte {c:#04x} at offset {i}")),
        };
        if padded {
            return invalid(format!("base64 data after padding at offset {i}"));
        }
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    if bits >= 6 {
        return invalid("truncated base64".to_string());
    }
    Ok(out)
}

/// Percent-encodes a path for a URL, keeping `/` and unreserved characters.
pub fn encode_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for b in path.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'/') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The `scheme://host[:port]` part, to check that pagination links stay
/// on the configured API host (they carry the token).
pub fn origin(url: &str) -> &str {
    let after_scheme = url.find("://").map(|i| i + 3).unwrap_or(0);
    match url[after_scheme..].find('/') {
        Some(i) => &url[..after_scheme + i],
        None => url,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_with_newlines() {
        assert_eq!(decode_base64("aGVs\nbG8=\n").unwrap(), b"hello");
        assert_eq!(decode_base64("").unwrap(), b"");
        assert_eq!(decode_base64("YQ==").unwrap(), b"a");
        assert_eq!(decode_base64("YWI=").unwrap(), b"ab");
        assert_eq!(decode_base64("YWJj").unwrap(), b"abc");
        assert_eq!(decode_base64("//79").unwrap(), [0xff, 0xfe, 0xfd]);
        assert!(decode_base64("YW*j").is_err());
        assert!(decode_base64("YWJjZ").is_err());
        assert!(decode_base64("YQ==YQ==").is_err());
    }

    #[test]
    fn link_header() {
        let h = "<https://api.github.com/organizations/9/repos?page=2>; rel=\"next\", \
                 <https://api.github.com/organizations/9/repos?page=3>; rel=\"last\"";
        assert_eq!(
            next_link(h).as_deref(),
            Some("https://api.github.com/organizations/9/repos?page=2")
        );
        assert_eq!(next_link("<https://x/?page=1>; rel=\"prev\""), None);
    }

    #[test]
    fn paths_and_origins() {
        assert_eq!(encode_path("docs/a b/ü#.md"), "docs/a%20b/%C3%BC%23.md");
        assert_eq!(origin("https://h:8/api/v3/x"), "https://h:8");
        assert_eq!(origin("http://h"), "http://h");
    }
}
