//! Who may talk to the service: one rule for the `Host` header, one for API
//! tokens, and the rate limits (`rate`), shared by REST, the WebSocket
//! handshake and `/mcp`. Pure policy: the HTTP layer asks, this answers.
//!
//! - **Host.** Listening on loopback, a request must name a loopback host
//!   (`localhost`, `*.localhost`, `127.0.0.0/8`, `[::1]`, any port) or one of
//!   `ALLOWED_HOSTS`: a web page that rebinds its own name to 127.0.0.1 (DNS
//!   rebinding) gets 421. Listening on one other address, that address is
//!   accepted too. Listening on every address (`0.0.0.0`, `::`), any name
//!   is, unless `ALLOWED_HOSTS` is set (then it and loopback names only).
//! - **Tokens.** With `API_TOKENS`, every route but a minimal `/health` and
//!   the page's static files needs `Authorization: Bearer <token>`; the
//!   WebSocket handshake may carry it as `?access_token=` instead (RFC 6750
//!   §2.3: a browser cannot set headers on a WebSocket). Tokens are kept as
//!   SHA-256 digests and compared in constant time; a token's owner name
//!   (`token:` + 12 hex digits of its digest) names whose conversations are
//!   whose, and never reveals the token.

pub mod rate;

use crate::config::Config;
use crate::sha256;
use std::net::IpAddr;

/// The caller of a request, once admitted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The token's owner name; `None` without tokens (everything is shared).
    pub owner: Option<String>,
    /// The key of its rate limits: the owner, or the client address.
    pub client: String,
}

/// A request without a valid token, when tokens are on. Missing and wrong
/// tokens are the same refusal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Denied;

pub struct Access {
    tokens: Vec<([u8; 32], String)>,
    allowed_hosts: Vec<String>,
    listen: IpAddr,
}

impl Access {
    /// Only the Host rule, for a listener on `listen` (no tokens).
    pub fn hosts_only(listen: IpAddr, allowed_hosts: &[String]) -> Access {
        Access {
            tokens: Vec::new(),
            allowed_hosts: allowed_hosts
                .iter()
                .map(|h| h.to_ascii_lowercase())
                .collect(),
            listen,
        }
    }

    pub fn from_config(config: &Config) -> Access {
        Access {
            tokens: config
                .api_tokens
                .iter()
                .map(|t| {
                    let d = sha256::digest(t.expose().as_bytes());
                    (d, owner_name(&d))
                })
                .collect(),
            allowed_hosts: config
                .allowed_hosts
                .iter()
                .map(|h| h.to_ascii_lowercase())
                .collect(),
            listen: config.host,
        }
    }

    pub fn tokens_on(&self) -> bool {
        !self.tokens.is_empty()
    }

    /// Whether a request naming `host` (the `Host` header) may be served.
    /// A request without one (HTTP/1.0) is no browser's: it passes.
    pub fn host_allowed(&self, host: Option<&str>) -> bool {
        let Some(name) = host.map(host_name) else {
            return true;
        };
        if self.allowed_hosts.contains(&name) || is_loopback_name(&name) {
            return true;
        }
        if self.listen.is_unspecified() {
            // Every address of the machine: its names are not known here.
            return self.allowed_hosts.is_empty();
        }
        name.parse::<IpAddr>().is_ok_and(|ip| ip == self.listen)
    }

    /// Admits a caller by its `Authorization` header value or, on a
    /// WebSocket handshake, its `access_token` query parameter. `addr` keys
    /// the rate limits when tokens are off.
    pub fn admit(
        &self,
        authorization: Option<&str>,
        query_token: Option<&str>,
        addr: Option<IpAddr>,
    ) -> Result<Principal, Denied> {
        let anonymous = || Principal {
            owner: None,
            client: addr.map_or_else(|| "unknown".to_string(), |a| a.to_string()),
        };
        if !self.tokens_on() {
            return Ok(anonymous());
        }
        let presented = authorization
            .and_then(|v| {
                let (scheme, token) = v.trim().split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
            })
            .or(query_token)
            .ok_or(Denied)?;
        let digest = sha256::digest(presented.as_bytes());
        // Every configured token is compared, so the time taken does not
        // say which one (if any) matched.
        let mut found = None;
        for (d, owner) in &self.tokens {
            if sha256::ct_eq(d, &digest) {
                found = Some(owner);
            }
        }
        let owner = found.ok_or(Denied)?;
        Ok(Principal {
            owner: Some(owner.clone()),
            client: owner.clone(),
        })
    }
}

/// Whether a browser request's `Origin` is this service's own (the built-in
/// page): `http(s)://` followed by exactly the request's `Host`. Sound only
/// behind [`Access::host_allowed`]: a DNS-rebinding page sends its own name
/// as both, and that name is refused there.
pub fn same_origin(origin: &str, host: Option<&str>) -> bool {
    let Some(host) = host.map(str::trim).filter(|h| !h.is_empty()) else {
        return false;
    };
    origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
        .is_some_and(|o| o.eq_ignore_ascii_case(host))
}

fn owner_name(digest: &[u8; 32]) -> String {
    format!("token:{}", sha256::hex(&digest[..6]))
}

/// The host part of a `Host` value, lower-case, without port or final dot.
fn host_name(value: &str) -> String {
    let v = value.trim();
    let name = if let Some(rest) = v.strip_prefix('[') {
        rest.split(']').next().unwrap_or("")
    } else {
        match v.rsplit_once(':') {
            Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
            _ => v,
        }
    };
    name.trim_end_matches('.').to_ascii_lowercase()
}

fn is_loopback_name(name: &str) -> bool {
    name == "localhost"
        || name.ends_with(".localhost")
        || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// The first value of `name` in a request target's query string,
/// percent-decoded (`+` stays `+`: tokens are not form data).
pub fn query_value(url: &str, name: &str) -> Option<String> {
    let query = url.split_once('?')?.1;
    let raw = query
        .split('&')
        .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))?;
    percent_decode(raw)
}

fn percent_decode(raw: &str) -> Option<String> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn access(vars: &[(&str, &str)]) -> Access {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Access::from_config(&Config::from_map(&map).unwrap())
    }

    const T1: &str = "tok-0123456789abcdef";
    const T2: &str = "tok-fedcba9876543210";

    #[test]
    fn loopback_hosts_pass_foreign_ones_do_not() {
        let a = access(&[]);
        for ok in [
            "localhost",
            "localhost:3001",
            "LOCALHOST.",
            "app.localhost:80",
            "127.0.0.1:3001",
            "127.9.9.9",
            "[::1]:3001",
            "[::1]",
        ] {
            assert!(a.host_allowed(Some(ok)), "{ok}");
        }
        for bad in [
            "evil.com",
            "evil.com:3001",
            "127.0.0.1.evil.com",
            "10.0.0.1",
            "[::2]",
        ] {
            assert!(!a.host_allowed(Some(bad)), "{bad}");
        }
        assert!(a.host_allowed(None));
        let a = access(&[("ALLOWED_HOSTS", "docs.example.com, Vault.Example.com")]);
        assert!(a.host_allowed(Some("vault.example.com:443")));
        assert!(!a.host_allowed(Some("other.example.com")));
    }

    #[test]
    fn one_address_is_accepted_as_itself() {
        let a = access(&[("HOST", "192.168.1.5"), ("API_TOKENS", T1)]);
        assert!(a.host_allowed(Some("192.168.1.5:3001")));
        assert!(a.host_allowed(Some("localhost")));
        assert!(!a.host_allowed(Some("evil.example:3001")));
    }

    #[test]
    fn non_loopback_listeners_check_only_when_told() {
        let a = access(&[("HOST", "0.0.0.0"), ("API_TOKENS", T1)]);
        assert!(a.host_allowed(Some("anything.example")));
        let a = access(&[
            ("HOST", "0.0.0.0"),
            ("API_TOKENS", T1),
            ("ALLOWED_HOSTS", "vault.example.com"),
        ]);
        assert!(a.host_allowed(Some("vault.example.com")));
        assert!(a.host_allowed(Some("127.0.0.1:3001")));
        assert!(!a.host_allowed(Some("evil.example")));
    }

    #[test]
    fn tokens_admit_by_header_or_query() {
        let a = access(&[("API_TOKENS", &format!("{T1},{T2}"))]);
        let p1 = a.admit(Some(&format!("Bearer {T1}")), None, None).unwrap();
        let p2 = a
            .admit(Some(&format!("bearer  {T2} ")), None, None)
            .unwrap();
        assert!(p1.owner.as_deref().unwrap().starts_with("token:"));
        assert_ne!(p1.owner, p2.owner);
        assert_eq!(p1.client, p1.owner.clone().unwrap());
        assert!(!p1.owner.as_deref().unwrap().contains("0123456789"));
        assert_eq!(a.admit(None, Some(T1), None), Ok(p1));
        for bad in [None, Some("Bearer nope"), Some(T1), Some("Basic dG9rZW4=")] {
            assert_eq!(a.admit(bad, None, None), Err(Denied), "{bad:?}");
        }
        let open = access(&[]);
        let p = open.admit(None, None, "127.0.0.1".parse().ok()).unwrap();
        assert_eq!(p.owner, None);
        assert_eq!(p.client, "127.0.0.1");
    }

    #[test]
    fn the_page_is_its_own_origin() {
        let host = Some("127.0.0.1:3001");
        assert!(same_origin("http://127.0.0.1:3001", host));
        assert!(same_origin("https://Vault.example", Some("vault.example")));
        assert!(!same_origin("http://127.0.0.1:9999", host));
        assert!(!same_origin("http://127.0.0.1:3001", None));
        assert!(!same_origin("null", host));
    }

    #[test]
    fn query_tokens_are_read() {
        let url = "/ws/chat/x?a=1&access_token=s%2Bcret&b=2";
        assert_eq!(query_value(url, "access_token").as_deref(), Some("s+cret"));
        assert_eq!(query_value(url, "token"), None);
        assert_eq!(query_value("/x?access_token=%zz", "access_token"), None);
    }
}
