//! Outbound HTTP choices shared by the Claude, MCP and GitHub clients: the
//! proxy rule, the retry backoff, and how an upstream URL may be shown.

use std::net::IpAddr;
use std::time::Duration;

/// The proxy for requests to `url`: the environment's (`HTTP(S)_PROXY`,
/// `ALL_PROXY`, `NO_PROXY`, as ureq reads them) for real hosts, none for a
/// loopback host: a server on this machine is never reached through a proxy.
pub fn proxy_for(url: &str) -> Option<ureq::Proxy> {
    if is_loopback(url) {
        None
    } else {
        ureq::Proxy::try_from_env()
    }
}

/// The retry backoff of the official Anthropic SDKs, used for every
/// upstream: min(0.5 s × 2^n, 8 s) × (1 − 0.25·r), `n` = retries already done.
pub fn backoff(retries_done: u32, random: f64) -> Duration {
    let base = (0.5 * 2f64.powi(retries_done.min(16) as i32)).min(8.0);
    Duration::from_secs_f64(base * (1.0 - 0.25 * random.clamp(0.0, 1.0)))
}

/// A number in [0, 1) without a rand crate: a v4 UUID is 122 random bits
/// from the OS generator.
pub fn jitter() -> f64 {
    let bytes = uuid::Uuid::new_v4().into_bytes();
    let mut word = [0u8; 8];
    word.copy_from_slice(&bytes[..8]);
    (u64::from_le_bytes(word) >> 11) as f64 / (1u64 << 53) as f64
}

/// `url` as it may be shown (logs, errors, `/health`): no `user:password@`,
/// every query value replaced by `***` (names kept: `?api_key=***&x=***`; a
/// bare item, which may itself be a token, becomes `***`), no `#fragment`.
/// Works on any string: nothing is parsed beyond the separators.
pub fn display_url(url: &str) -> String {
    let url = url.split('#').next().unwrap_or_default();
    let (before_query, query) = match url.split_once('?') {
        Some((b, q)) => (b, Some(q)),
        None => (url, None),
    };
    let authority_start = before_query.find("://").map_or(0, |i| i + 3);
    let (scheme, rest) = before_query.split_at(authority_start);
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let rest = match rest[..authority_end].rfind('@') {
        Some(at) => &rest[at + 1..],
        None => rest,
    };
    let mut shown = format!("{scheme}{rest}");
    if let Some(query) = query {
        shown.push('?');
        let items: Vec<String> = query
            .split('&')
            .map(|item| match item.split_once('=') {
                Some((name, _)) => format!("{name}=***"),
                None if item.is_empty() => String::new(),
                None => "***".to_string(),
            })
            .collect();
        shown.push_str(&items.join("&"));
    }
    shown
}

fn host(base_url: &str) -> Option<String> {
    let uri = base_url.parse::<ureq::http::Uri>().ok()?;
    let host = uri.host()?;
    Some(
        host.trim_start_matches('[')
            .trim_end_matches(']')
            .to_string(),
    )
}

pub fn is_loopback(base_url: &str) -> bool {
    host(base_url).is_some_and(|host| {
        host.eq_ignore_ascii_case("localhost")
            || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
    })
}

pub fn host_is_ip(base_url: &str) -> bool {
    host(base_url).is_some_and(|host| host.parse::<IpAddr>().is_ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shown_urls_carry_no_secret() {
        for (url, shown) in [
            ("http://127.0.0.1:8/mcp", "http://127.0.0.1:8/mcp"),
            ("https://u:p%40ss@host:8/mcp", "https://host:8/mcp"),
            (
                "https://u:pw@h/mcp?api_key=SECRET&x=1#frag",
                "https://h/mcp?api_key=***&x=***",
            ),
            ("http://h/?token&a=&&b=c=d", "http://h/?***&a=***&&b=***"),
            // An `@` in the query is not userinfo; one in the path neither.
            ("http://h/p@q?x=a@b", "http://h/p@q?x=***"),
            ("http://h#SECRET", "http://h"),
            ("not a url?k=SECRET", "not a url?k=***"),
            ("", ""),
        ] {
            assert_eq!(display_url(url), shown, "{url}");
        }
    }

    #[test]
    fn ip_hosts_need_no_lookup() {
        assert!(host_is_ip("http://127.0.0.1:8080"));
        assert!(host_is_ip("http://[::1]:9/x"));
        assert!(!host_is_ip("https://api.anthropic.com"));
        assert!(!host_is_ip("http://localhost:1"));
    }

    #[test]
    fn loopback_hosts() {
        for url in [
            "http://127.0.0.1:8080",
            "http://localhost/prefix",
            "http://[::1]:9/x",
            "http://127.1.2.3",
        ] {
            assert!(is_loopback(url), "{url}");
        }
        for url in ["https://api.anthropic.com", "http://10.0.0.1", "not a url"] {
            assert!(!is_loopback(url), "{url}");
        }
    }
}
