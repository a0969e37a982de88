//! A DNS resolver that remembers the server's addresses for a while. ureq
//! resolves the host on every request, even one that reuses a pooled
//! connection, and with a timeout set it does so on a freshly spawned
//! thread: at thousands of calls a second that thread churn, not the HTTP
//! exchange, would be the cost.

use std::sync::Mutex;
use std::time::{Duration, Instant};
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};

/// How long an answer is reused.
const RESOLVE_TTL: Duration = Duration::from_secs(30);

#[derive(Debug, Default)]
pub(super) struct CachingResolver {
    /// `scheme` + `authority`, when it was resolved, the addresses.
    cached: Mutex<Option<(String, Instant, ResolvedSocketAddrs)>>,
}

impl Resolver for CachingResolver {
    fn resolve(
        &self,
        uri: &ureq::http::Uri,
        config: &ureq::config::Config,
        timeout: ureq::unversioned::transport::NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let key = uri.authority().map(|a| a.as_str()).unwrap_or_default();
        let scheme = uri.scheme_str().unwrap_or_default();
        {
            let cached = crate::sync::lock(&self.cached);
            if let Some((k, at, addrs)) = &*cached
                && k.len() == scheme.len() + key.len()
                && k.starts_with(scheme)
                && k.ends_with(key)
                && at.elapsed() < RESOLVE_TTL
            {
                return Ok(addrs.clone());
            }
        }
        let addrs = DefaultResolver::default().resolve(uri, config, timeout)?;
        *crate::sync::lock(&self.cached) =
            Some((format!("{scheme}{key}"), Instant::now(), addrs.clone()));
        Ok(addrs)
    }
}
