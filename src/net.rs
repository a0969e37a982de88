//! Outbound HTTP choices shared by the Claude, MCP and GitHub clients.

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
