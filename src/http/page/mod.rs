//! The built-in chat page: a few static files embedded in the binary and
//! served at `/` (the page), `/favicon.ico` and `/assets/...`.
//!
//! Nothing is built and nothing is fetched at run time: `index.html`,
//! `app.js` and `style.css` are written by hand, and the two third-party
//! files in `vendor/` (marked, DOMPurify) come from the npm registry through
//! `scripts/page/vendor`, which pins and verifies them. Every file gets an
//! ETag (a hash of its bytes, so a new binary's page is picked up),
//! `Cache-Control: no-cache` (always revalidated; `If-None-Match` answers
//! 304), and headers that stop the page from running anything it did not
//! ship: a strict Content-Security-Policy (no inline script, no eval, no
//! connections but to this service), `nosniff`, no referrer.
//!
//! The page's own requests (its WebSocket, `/mcp`) come from this service's
//! origin, which `CORS_ORIGINS` need not list: `access::same_origin`.

use std::hash::{Hash, Hasher};
use std::sync::LazyLock;

/// One embedded file.
struct Asset {
    path: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

macro_rules! asset {
    ($path:literal, $file:literal, $content_type:expr) => {
        Asset {
            path: $path,
            content_type: $content_type,
            body: include_bytes!($file),
        }
    };
}

const JS: &str = "text/javascript; charset=utf-8";
const TEXT: &str = "text/plain; charset=utf-8";

static ASSETS: [Asset; 9] = [
    asset!("index.html", "index.html", "text/html; charset=utf-8"),
    asset!("favicon.ico", "favicon.ico", "image/x-icon"),
    asset!("assets/favicon.svg", "favicon.svg", "image/svg+xml"),
    asset!("assets/app.js", "app.js", JS),
    asset!("assets/style.css", "style.css", "text/css; charset=utf-8"),
    asset!("assets/vendor/marked.umd.js", "vendor/marked.umd.js", JS),
    asset!("assets/vendor/purify.min.js", "vendor/purify.min.js", JS),
    asset!(
        "assets/vendor/marked.LICENSE",
        "vendor/marked.LICENSE",
        TEXT
    ),
    asset!(
        "assets/vendor/dompurify.LICENSE",
        "vendor/dompurify.LICENSE",
        TEXT
    ),
];

/// Each asset's ETag, in the order of [`ASSETS`]: computed once, from the bytes.
static ETAGS: LazyLock<Vec<String>> = LazyLock::new(|| {
    ASSETS
        .iter()
        .map(|a| {
            let mut h = std::hash::DefaultHasher::new();
            a.body.hash(&mut h);
            format!("\"{:016x}\"", h.finish())
        })
        .collect()
});

/// Sent with every file. `img-src data:` is for images inside rendered
/// documents that are inlined; remote images are not loaded.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'";

/// A response for the route to send.
pub struct PageReply {
    pub status: u16,
    pub body: &'static [u8],
    pub content_type: Option<&'static str>,
    pub headers: Vec<(String, String)>,
}

fn find(segments: &[&str]) -> Option<usize> {
    let path = match segments {
        [""] => "index.html",
        _ => &segments.join("/"),
    };
    ASSETS.iter().position(|a| a.path == path)
}

/// Whether `segments` (the path split on `/`) names one of the page's files.
pub fn serves(segments: &[&str]) -> bool {
    find(segments).is_some()
}

/// The file at `segments` (200), or 304 when `if_none_match` names its
/// current ETag, or 404.
pub fn get(segments: &[&str], if_none_match: Option<&str>) -> PageReply {
    let Some(i) = find(segments) else {
        return PageReply {
            status: 404,
            body: br#"{"detail":"not found"}"#,
            content_type: Some("application/json"),
            headers: vec![],
        };
    };
    let (asset, etag) = (&ASSETS[i], &ETAGS[i]);
    let headers = [
        ("ETag", etag.as_str()),
        ("Cache-Control", "no-cache"),
        ("Content-Security-Policy", CONTENT_SECURITY_POLICY),
        ("X-Content-Type-Options", "nosniff"),
        ("Referrer-Policy", "no-referrer"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    if if_none_match.is_some_and(|v| etag_matches(v, etag)) {
        return PageReply {
            status: 304,
            body: b"",
            content_type: None,
            headers,
        };
    }
    PageReply {
        status: 200,
        body: asset.body,
        content_type: Some(asset.content_type),
        headers,
    }
}

/// `If-None-Match`: `*` or a list of (possibly weak) ETags.
fn etag_matches(header: &str, etag: &str) -> bool {
    header.split(',').map(str::trim).any(|candidate| {
        candidate == "*" || candidate.strip_prefix("W/").unwrap_or(candidate) == etag
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_conditional_requests() {
        let page = get(&[""], None);
        assert_eq!(page.status, 200);
        assert_eq!(page.content_type, Some("text/html; charset=utf-8"));
        assert!(serves(&["assets", "vendor", "purify.min.js"]));
        assert!(!serves(&["assets", "..", "mod.rs"]));
        assert_eq!(get(&["assets", "nope.js"], None).status, 404);
        let etag = page
            .headers
            .iter()
            .find(|(k, _)| k == "ETag")
            .unwrap()
            .1
            .clone();
        assert_eq!(get(&["index.html"], Some(&etag)).status, 304);
        assert_eq!(get(&[""], Some(&format!("\"x\", W/{etag}"))).status, 304);
        assert_eq!(get(&[""], Some("\"other\"")).status, 200);
        // Different bytes, different tags.
        assert_eq!(
            ETAGS.iter().collect::<std::collections::HashSet<_>>().len(),
            ASSETS.len()
        );
    }
}
