//! Outbound HTTP choices shared by the Claude, MCP and GitHub clients.

use std::net::IpAddr;

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
