//! When to retry a failed model request, how long to wait, and how to word
//! an HTTP error for the user. Follows the official Anthropic SDKs (see
//! `shared/research/anthropic-streaming.md` §5), whose rules the OpenAI SDKs
//! share; pure functions, no I/O.

use serde_json::Value;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Retries after the first attempt, as in all three SDKs.
pub(crate) const MAX_RETRIES: u32 = 2;

/// The longest server-requested delay we honour; longer ones fall back to
/// our own backoff, as the Python SDK does.
const MAX_SERVER_DELAY: Duration = Duration::from_secs(60);

/// The SDKs' rule: `x-should-retry` decides when present, otherwise 408,
/// 409, 429 and every 5xx (including Anthropic's 529) are worth another try.
pub(crate) fn status_is_retryable(status: u16, x_should_retry: Option<&str>) -> bool {
    match x_should_retry.map(str::trim) {
        Some("true") => true,
        Some("false") => false,
        _ => matches!(status, 408 | 409 | 429) || status >= 500,
    }
}

/// Error types of an error in the stream that would have been a retryable
/// status without streaming (500, 503, 504, 429, 529): Anthropic's names,
/// then OpenAI's and llama.cpp's.
pub(crate) fn stream_error_is_retryable(kind: &str) -> bool {
    matches!(
        kind,
        "api_error"
            | "timeout_error"
            | "rate_limit_error"
            | "overloaded_error"
            | "server_error"
            | "rate_limit_exceeded"
            | "unavailable_error"
    )
}

/// The delay the server asked for: `retry-after-ms` (float milliseconds),
/// else `retry-after` (float seconds or an HTTP date), if within (0, 60 s].
pub(crate) fn server_delay(
    retry_after_ms: Option<&str>,
    retry_after: Option<&str>,
    now: SystemTime,
) -> Option<Duration> {
    let secs = if let Some(ms) = retry_after_ms.and_then(|v| v.trim().parse::<f64>().ok()) {
        ms / 1000.0
    } else {
        let v = retry_after?.trim();
        match v.parse::<f64>() {
            Ok(s) => s,
            Err(_) => {
                let at = parse_http_date(v)?;
                at.duration_since(now).ok()?.as_secs_f64()
            }
        }
    };
    let delay = Duration::try_from_secs_f64(secs).ok()?;
    (!delay.is_zero() && delay <= MAX_SERVER_DELAY).then_some(delay)
}

/// IMF-fixdate, the only form RFC 9110 lets servers send:
/// `Sun, 06 Nov 1994 08:49:37 GMT`.
fn parse_http_date(s: &str) -> Option<SystemTime> {
    let parts: Vec<&str> = s.split_whitespace().collect();
    let [_, day, month, year, time, "GMT"] = parts.as_slice() else {
        return None;
    };
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ]
    .iter()
    .position(|m| m == month)? as i64
        + 1;
    let (day, year): (i64, i64) = (day.parse().ok()?, year.parse().ok()?);
    // A hostile date must not overflow the arithmetic below.
    if !(1970..=9999).contains(&year) {
        return None;
    }
    let hms: Vec<i64> = time
        .split(':')
        .map(|p| p.parse().ok())
        .collect::<Option<_>>()?;
    let [h, m, sec] = hms.as_slice() else {
        return None;
    };
    if !(1..=31).contains(&day) || *h > 23 || *m > 59 || *sec > 60 {
        return None;
    }
    let secs = days_from_civil(year, month, day) * 86_400 + h * 3600 + m * 60 + sec;
    Some(UNIX_EPOCH + Duration::from_secs(u64::try_from(secs).ok()?))
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// How a provider's HTTP errors are worded.
#[derive(Debug)]
pub(crate) struct ErrorWords {
    /// What answered: "Claude API".
    pub api: &'static str,
    /// What to check when the endpoint or model is not found.
    pub check: &'static str,
}

/// A message for the user from a non-2xx answer, e.g. "Claude API key is
/// invalid (401 authentication_error): invalid x-api-key". The detail is
/// `error.message` (Anthropic, OpenAI, llama.cpp, vLLM, LiteLLM), a string
/// `error` (Ollama), or a short excerpt of the body. The caller removes
/// the key from it, in case a proxy echoed request headers.
pub(crate) fn http_error_message(words: &ErrorWords, status: u16, body: &[u8]) -> String {
    let json: Option<Value> = serde_json::from_slice(body).ok();
    let field = |p: &str| {
        json.as_ref()
            .and_then(|j| j.pointer(p))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let kind = field("/error/type");
    let detail = field("/error/message")
        .or_else(|| field("/error"))
        .or_else(|| {
            // Not an API's JSON (a proxy's HTML page, say): a short, one-line excerpt.
            let text = String::from_utf8_lossy(body);
            let text: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
            (!text.is_empty()).then(|| text.chars().take(200).collect())
        });
    let api = words.api;
    let what = match status {
        401 => format!("{api} key is invalid"),
        403 => format!("{api} key is not allowed to use this model or feature"),
        404 => format!("{api} endpoint or model not found (check {})", words.check),
        413 => format!("the request is too large for the {api}"),
        429 => format!("{api} rate limit reached; try again shortly"),
        529 => format!("{api} is overloaded; try again shortly"),
        400..=499 => format!("{api} rejected the request"),
        500..=599 => format!("{api} server error"),
        _ => format!("unexpected answer from the {api}"),
    };
    let code = match &kind {
        Some(k) => format!("{status} {k}"),
        None => status.to_string(),
    };
    match detail {
        Some(d) => format!("{what} ({code}): {d}"),
        None => format!("{what} ({code})"),
    }
}

/// Removes every occurrence of the key from a message meant for a user or a log.
pub(crate) fn redact(message: String, key: &str) -> String {
    if key.len() < 4 || !message.contains(key) {
        return message;
    }
    message.replace(key, "[redacted]")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::net::{backoff, jitter};

    #[test]
    fn retryable_statuses() {
        for s in [408, 409, 429, 500, 502, 503, 504, 529] {
            assert!(status_is_retryable(s, None), "{s}");
            assert!(!status_is_retryable(s, Some("false")), "{s}");
        }
        for s in [400, 401, 403, 404, 413, 422] {
            assert!(!status_is_retryable(s, None), "{s}");
        }
        assert!(status_is_retryable(400, Some("true")));
    }

    #[test]
    fn server_delays() {
        let now = UNIX_EPOCH + Duration::from_secs(784_111_777); // Sun, 06 Nov 1994 08:49:37 GMT
        let d = |ms: Option<&str>, s: Option<&str>| server_delay(ms, s, now);
        assert_eq!(
            d(Some("250.5"), Some("9")),
            Some(Duration::from_micros(250_500))
        );
        assert_eq!(d(None, Some("2")), Some(Duration::from_secs(2)));
        assert_eq!(d(None, Some("0.5")), Some(Duration::from_millis(500)));
        assert_eq!(
            d(None, Some("Sun, 06 Nov 1994 08:49:47 GMT")),
            Some(Duration::from_secs(10))
        );
        // Past, zero, negative, too long, garbage: use our own backoff.
        for v in [
            "Sun, 06 Nov 1994 08:49:30 GMT",
            "0",
            "-1",
            "61",
            "soon",
            "NaN",
        ] {
            assert_eq!(d(None, Some(v)), None, "{v}");
        }
        assert_eq!(d(Some("0"), Some("3")), None);
        assert_eq!(d(Some("x"), Some("3")), Some(Duration::from_secs(3)));
        assert_eq!(d(None, None), None);
    }

    #[test]
    fn http_dates() {
        assert_eq!(
            parse_http_date("Thu, 01 Jan 1970 00:00:00 GMT"),
            Some(UNIX_EPOCH)
        );
        assert_eq!(
            parse_http_date("Tue, 29 Feb 2028 12:00:01 GMT"),
            Some(UNIX_EPOCH + Duration::from_secs(1_835_438_401))
        );
        assert_eq!(parse_http_date("Tue, 29 Feb 2028 12:00:01 PST"), None);
        assert_eq!(parse_http_date("Tue, 29 Foo 2028 12:00:01 GMT"), None);
        // A hostile year neither overflows nor panics.
        assert_eq!(
            parse_http_date("Tue, 29 Feb 9223372036854775807 12:00:01 GMT"),
            None
        );
        assert_eq!(
            parse_http_date("Tue, 29 Feb -400000000000000000 12:00:01 GMT"),
            None
        );
    }

    #[test]
    fn backoff_follows_the_sdks() {
        let ms = |n, r| backoff(n, r).as_millis();
        assert_eq!((ms(0, 0.0), ms(0, 1.0)), (500, 375));
        assert_eq!((ms(1, 0.0), ms(1, 1.0)), (1000, 750));
        assert_eq!(ms(4, 0.0), 8000);
        assert_eq!(ms(30, 0.0), 8000);
        for _ in 0..100 {
            let j = jitter();
            assert!((0.0..1.0).contains(&j));
        }
    }

    const CLAUDE: ErrorWords = ErrorWords {
        api: "Claude API",
        check: "ANTHROPIC_BASE_URL and CLAUDE_MODEL",
    };

    #[test]
    fn error_messages() {
        let http_error_message = |s, b: &[u8]| super::http_error_message(&CLAUDE, s, b);
        let body = br#"{"type":"error","error":{"type":"authentication_error","message":"invalid x-api-key"},"request_id":"req_1"}"#;
        assert_eq!(
            http_error_message(401, body),
            "Claude API key is invalid (401 authentication_error): invalid x-api-key"
        );
        let m = http_error_message(502, b"<html>\n<body>Bad   gateway</body></html>");
        assert_eq!(
            m,
            "Claude API server error (502): <html> <body>Bad gateway</body></html>"
        );
        assert_eq!(
            http_error_message(529, b""),
            "Claude API is overloaded; try again shortly (529)"
        );
        assert_eq!(
            redact("key sk-ant-123 leaked".into(), "sk-ant-123"),
            "key [redacted] leaked"
        );
        // OpenAI's and Ollama's bodies.
        let openai = br#"{"error":{"message":"The model `x` does not exist","type":"invalid_request_error","param":null,"code":"model_not_found"}}"#;
        assert_eq!(
            http_error_message(404, openai),
            "Claude API endpoint or model not found (check ANTHROPIC_BASE_URL and CLAUDE_MODEL) (404 invalid_request_error): The model `x` does not exist"
        );
        assert_eq!(
            http_error_message(
                404,
                br#"{"error":"model \"x\" not found, try pulling it first"}"#
            ),
            "Claude API endpoint or model not found (check ANTHROPIC_BASE_URL and CLAUDE_MODEL) (404): model \"x\" not found, try pulling it first"
        );
    }
}
