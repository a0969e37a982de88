//! The one HTTP agent that both forms of tool server are spoken to through
//! (one connection pool), and the body budget they share.

use super::failure::{Failure, classify};
use super::resolver::CachingResolver;
use std::time::Duration;
use ureq::Agent;
use ureq::http::Response;

/// Largest answer body read into memory (a big document, JSON-escaped twice:
/// once as text content, once as `structuredContent`).
pub(super) const MAX_BODY: u64 = 64 << 20;
/// Cap for establishing a TCP/TLS connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Every request is bounded by `timeout` (`MCP_TIMEOUT`). Redirects are
/// reported, not followed: the operator is told to configure the endpoint
/// itself, and the URL's credentials never follow a redirect elsewhere.
pub(super) fn agent(url: &str, timeout: Duration) -> Agent {
    let config = Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(timeout))
        .timeout_connect(Some(timeout.min(CONNECT_TIMEOUT)))
        .max_redirects(0)
        .max_redirects_will_error(false)
        .max_idle_connections(64)
        .max_idle_connections_per_host(64)
        .user_agent(format!("knowledge-vault/{}", env!("CARGO_PKG_VERSION")))
        .proxy(crate::net::proxy_for(url))
        .build();
    Agent::with_parts(
        config,
        ureq::unversioned::transport::DefaultConnector::new(),
        CachingResolver::default(),
    )
}

/// The whole body, at most [`MAX_BODY`] bytes; `what` names the request.
pub(super) fn read_body(
    resp: Response<ureq::Body>,
    what: &str,
    timeout: Duration,
) -> Result<Vec<u8>, Failure> {
    resp.into_body()
        .with_config()
        .limit(MAX_BODY)
        .read_to_vec()
        .map_err(|e| classify(e, what, timeout))
}
