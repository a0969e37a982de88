//! The built-in page over HTTP, as a browser fetches it: what is served at
//! `/`, its headers (CSP, ETag, cache), conditional requests, and the
//! same-origin rule that lets the page (and only it) open the chat socket.
//! The page's behaviour in a browser is tested in `browser.rs`.

use crate::support::kv;
use crate::support::ws_client;

use kv::{Kv, raw_request, request_full};

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

#[test]
fn the_page_and_its_assets_are_served_with_strict_headers() {
    let kv = Kv::start_with_docs(&[]);
    for (path, content_type) in [
        ("/", "text/html; charset=utf-8"),
        ("/index.html", "text/html; charset=utf-8"),
        ("/favicon.ico", "image/x-icon"),
        ("/assets/app.js", "text/javascript; charset=utf-8"),
        ("/assets/style.css", "text/css; charset=utf-8"),
        (
            "/assets/vendor/marked.umd.js",
            "text/javascript; charset=utf-8",
        ),
        (
            "/assets/vendor/purify.min.js",
            "text/javascript; charset=utf-8",
        ),
    ] {
        let (status, headers, body) = request_full(&kv.base, "GET", path, &[], None);
        assert_eq!(status, 200, "{path}");
        assert_eq!(
            header(&headers, "content-type"),
            Some(content_type),
            "{path}"
        );
        assert_eq!(
            header(&headers, "cache-control"),
            Some("no-cache"),
            "{path}"
        );
        assert_eq!(header(&headers, "x-content-type-options"), Some("nosniff"));
        assert_eq!(header(&headers, "referrer-policy"), Some("no-referrer"));
        let csp = header(&headers, "content-security-policy").unwrap_or_default();
        for directive in [
            "default-src 'none'",
            "script-src 'self'",
            "connect-src 'self'",
            "frame-ancestors 'none'",
        ] {
            assert!(csp.contains(directive), "{path}: {csp}");
        }
        assert!(!csp.contains("unsafe"), "{path}: {csp}");
        // The icon is binary (no text body): its length is in the header.
        let length: usize =
            header(&headers, "content-length").map_or(body.len(), |n| n.parse().unwrap());
        assert!(length > 100, "{path}: {length} bytes");
    }
    let (_, _, html) = request_full(&kv.base, "GET", "/", &[], None);
    // No inline script: every script is a file of ours.
    assert!(!html.contains("<script>"), "{html}");
    for src in html.split("src=\"").skip(1) {
        let src = src.split('"').next().unwrap();
        assert_eq!(kv.get(src).0, 200, "{src} is referenced but not served");
    }
}

#[test]
fn etags_answer_304_and_unknown_assets_404() {
    let kv = Kv::start_with_docs(&[]);
    let (_, headers, _) = request_full(&kv.base, "GET", "/assets/app.js", &[], None);
    let etag = header(&headers, "etag").unwrap().to_string();
    assert!(etag.starts_with('"') && etag.len() > 4, "{etag}");
    let (status, headers, body) = request_full(
        &kv.base,
        "GET",
        "/assets/app.js",
        &[("If-None-Match", &etag)],
        None,
    );
    assert_eq!(status, 304);
    assert!(body.is_empty());
    assert_eq!(header(&headers, "etag"), Some(etag.as_str()));
    let (status, _, _) = request_full(
        &kv.base,
        "GET",
        "/assets/app.js",
        &[("If-None-Match", "\"stale\"")],
        None,
    );
    assert_eq!(status, 200);
    // Another file has another tag.
    let (_, headers, _) = request_full(&kv.base, "GET", "/assets/style.css", &[], None);
    assert_ne!(header(&headers, "etag"), Some(etag.as_str()));

    for path in [
        "/assets/nope.js",
        "/assets/../Cargo.toml",
        "/assets/vendor/",
        "/src/http/page/app.js",
    ] {
        let (status, body) = kv.get(path);
        assert_eq!(status, 404, "{path}");
        assert_eq!(kv::json(&body)["detail"], "not found", "{path}");
    }
    let (status, headers, _) = request_full(&kv.base, "POST", "/", &[], Some("x"));
    assert_eq!(status, 405);
    assert_eq!(header(&headers, "allow"), Some("GET"));
}

#[test]
fn the_page_may_open_the_chat_socket_but_a_rebinding_page_may_not() {
    let kv = Kv::start_with_docs(&[]);
    // The page's own origin, as the browser sends it.
    let own = format!("http://127.0.0.1:{}", kv.port);
    assert!(ws_client::connect(kv.port, "page-own", Some(&own)).is_ok());
    // Another port on the same machine is another origin (CORS_ORIGINS decides).
    let other = format!("http://127.0.0.1:{}", kv.port.wrapping_add(1));
    assert_eq!(
        ws_client::connect(kv.port, "page-other", Some(&other)).err(),
        Some(403)
    );
    // DNS rebinding: a foreign name resolved to this machine sends its own
    // name as Host and Origin; the service answers only to its own names.
    let handshake = format!(
        "GET /ws/chat/rebound HTTP/1.1\r\nHost: evil.example:{port}\r\n\
         Origin: http://evil.example:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
        port = kv.port
    );
    let (status, _) = raw_request(kv.port, handshake.as_bytes());
    assert_eq!(status, 421);
}
