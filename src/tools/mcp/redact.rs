//! Keeps the secrets of `MCP_SERVER_URL` (a `user:password@`, an
//! `?api_key=…`) out of everything the client shows: `/health`, error
//! messages and logs. The URL is shown as [`crate::net::display_url`] makes
//! it; a message that contains the URL, its query or one of its secrets
//! (a server's error body echoing the request target, say) is scrubbed
//! before it is kept or shown.

use crate::net::display_url;

/// A secret value shorter than this is replaced only as part of the URL or
/// its query: replacing `1` or `json` in every message would garble it, and
/// such values are not keys.
const MIN_SECRET_LEN: usize = 6;

pub(super) struct Redactor {
    /// (raw, shown) pairs, replaced in this order.
    replacements: Vec<(String, String)>,
    shown_url: String,
}

impl Redactor {
    pub(super) fn new(url: &str) -> Redactor {
        let shown_url = display_url(url);
        let mut replacements = vec![(url.to_string(), shown_url.clone())];
        let without_fragment = url.split('#').next().unwrap_or_default();
        if let Some((before, query)) = without_fragment.split_once('?') {
            let shown_query = display_url(&format!("?{query}"));
            replacements.push((format!("?{query}"), shown_query));
            for value in query.split('&').map(|item| match item.split_once('=') {
                Some((_, value)) => value,
                None => item,
            }) {
                if value.len() >= MIN_SECRET_LEN {
                    replacements.push((value.to_string(), "***".into()));
                }
            }
            if let Some(userinfo) = userinfo(before) {
                push_userinfo(&mut replacements, userinfo);
            }
        } else if let Some(userinfo) = userinfo(without_fragment) {
            push_userinfo(&mut replacements, userinfo);
        }
        if let Some((_, fragment)) = url.split_once('#')
            && fragment.len() >= MIN_SECRET_LEN
        {
            replacements.push((fragment.to_string(), "***".into()));
        }
        // A secret that contains another is replaced whole first.
        replacements[1..].sort_by_key(|(raw, _)| std::cmp::Reverse(raw.len()));
        replacements.retain(|(raw, shown)| !raw.is_empty() && raw != shown);
        Redactor {
            replacements,
            shown_url,
        }
    }

    /// The URL as it may be shown.
    pub(super) fn url(&self) -> &str {
        &self.shown_url
    }

    /// `message` with every secret of the URL replaced.
    pub(super) fn scrub(&self, message: &str) -> String {
        let mut m = message.to_string();
        for (raw, shown) in &self.replacements {
            if m.contains(raw.as_str()) {
                m = m.replace(raw.as_str(), shown);
            }
        }
        m
    }
}

/// The `user:password@` of `scheme://user:password@host/path`.
fn userinfo(url_without_query: &str) -> Option<&str> {
    let start = url_without_query.find("://")? + 3;
    let rest = &url_without_query[start..];
    let authority = &rest[..rest.find('/').unwrap_or(rest.len())];
    authority.rfind('@').map(|at| &authority[..=at])
}

fn push_userinfo(replacements: &mut Vec<(String, String)>, userinfo: &str) {
    replacements.push((userinfo.to_string(), String::new()));
    if let Some((_, password)) = userinfo.trim_end_matches('@').split_once(':')
        && password.len() >= MIN_SECRET_LEN
    {
        replacements.push((password.to_string(), "***".into()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_url_and_its_secrets_are_scrubbed_from_messages() {
        let url = "https://kv-user:s3cr3t-pw@host:8/mcp?api_key=SECRET-KEY&v=1";
        let r = Redactor::new(url);
        assert_eq!(r.url(), "https://host:8/mcp?api_key=***&v=***");
        let echoed = format!(
            "POST {url} failed; no route /mcp?api_key=SECRET-KEY&v=1; key SECRET-KEY; \
             auth kv-user:s3cr3t-pw@host; password s3cr3t-pw; HTTP 401"
        );
        let m = r.scrub(&echoed);
        for secret in ["SECRET-KEY", "s3cr3t-pw", "kv-user"] {
            assert!(!m.contains(secret), "{secret} in {m}");
        }
        // Short values are not scrubbed outside the URL: the status survives.
        assert!(m.contains("HTTP 401"), "{m}");
        assert!(m.contains("https://host:8/mcp?api_key=***&v=***"), "{m}");
        assert!(m.contains("/mcp?api_key=***&v=***;"), "{m}");
    }

    #[test]
    fn a_url_without_secrets_is_left_alone() {
        let r = Redactor::new("http://127.0.0.1:9/mcp");
        assert_eq!(r.url(), "http://127.0.0.1:9/mcp");
        assert_eq!(
            r.scrub("http://127.0.0.1:9/mcp: refused"),
            "http://127.0.0.1:9/mcp: refused"
        );
    }
}
