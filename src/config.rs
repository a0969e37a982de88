//! Configuration: the process environment over a `.env` file, parsed once at
//! start-up into a typed [`Config`].
//!
//! Parse, then validate, then act: a bad value stops start-up with one line
//! naming the variable and the expected form. Secrets are kept in [`Secret`],
//! whose `Debug` never shows them.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A value that must never reach a log line, an error body or `/health`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// How to talk to `MCP_SERVER_URL`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum McpTransport {
    /// Try the MCP handshake first, fall back to the simple HTTP form.
    Auto,
    StreamableHttp,
    SimpleHttp,
}

#[derive(Debug, Clone)]
pub struct GithubConfig {
    pub org: String,
    pub token: Option<Secret>,
    pub api_url: String,
    /// Only these repositories, when set.
    pub repos: Option<Vec<String>>,
    pub include_archived: bool,
    pub include_forks: bool,
    pub refresh: Duration,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub anthropic_api_key: Option<Secret>,
    pub anthropic_base_url: String,
    pub claude_model: String,
    pub claude_max_tokens: u32,
    /// Idle time allowed between two SSE events from Claude.
    pub claude_idle_timeout: Duration,
    pub max_tool_rounds: u32,

    pub mcp_server_url: Option<String>,
    pub mcp_timeout: Duration,
    pub mcp_transport: McpTransport,

    pub cors_origins: Vec<String>,
    pub host: IpAddr,
    pub port: u16,
    /// The HTTP front door (see `http`). A connection that sends nothing for
    /// this long is closed, and a whole request head (or the wait for the
    /// next one on a kept-alive connection) must arrive within it.
    pub http_idle_timeout: Duration,
    /// A whole request body must arrive within this, and a whole response
    /// be written within it again.
    pub http_body_timeout: Duration,
    /// Request line and header fields, in bytes (431 beyond).
    pub max_header_bytes: usize,
    /// Open HTTP connections (503 beyond; upgraded WebSockets count in
    /// `max_ws_sessions` instead).
    pub max_connections: usize,
    /// `HTTP_WORKERS` was set: it is no longer used (a warning says so).
    pub http_workers_set: bool,
    pub max_ws_sessions: usize,

    pub max_conversations: usize,
    pub max_history_messages: usize,
    /// Rough budget, in characters of JSON, of the history sent to Claude.
    pub history_budget_chars: usize,

    /// `DOCS_DIR`; unset means the working directory, unless only a GitHub
    /// organization is configured.
    pub docs_dir: Option<PathBuf>,
    pub docs_refresh: Duration,
    pub github: Option<GithubConfig>,
    pub cache_dir: PathBuf,

    pub log_level: log::LevelFilter,
}

/// A configuration error: the variable and what was expected. Its `Display`
/// is the one line printed before exiting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub variable: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid {}: {}", self.variable, self.message)
    }
}

impl std::error::Error for ConfigError {}

pub const DEFAULT_CORS: [&str; 2] = ["http://localhost:5173", "http://localhost:3000"];

impl Config {
    /// Reads `.env` from the working directory (if present), then the process
    /// environment, which wins.
    pub fn from_env() -> Result<Config, ConfigError> {
        let mut vars = match std::fs::read_to_string(".env") {
            Ok(text) => parse_dotenv(&text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => HashMap::new(),
            Err(e) => {
                return Err(ConfigError {
                    variable: ".env".into(),
                    message: format!("cannot read the file: {e}"),
                });
            }
        };
        for (k, v) in std::env::vars_os() {
            if let (Some(k), Some(v)) = (k.to_str(), v.to_str()) {
                vars.insert(k.to_string(), v.to_string());
            }
        }
        Config::from_map(&vars)
    }

    /// Builds a configuration from explicit variables (no `.env`, no process
    /// environment). Empty values count as unset.
    pub fn from_map(vars: &HashMap<String, String>) -> Result<Config, ConfigError> {
        let get = |k: &str| vars.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
        let string = |k: &str, default: &str| get(k).unwrap_or(default).to_string();
        let err = |k: &str, m: &str| ConfigError {
            variable: k.to_string(),
            message: m.to_string(),
        };
        let number = |k: &str, default: u64, min: u64, max: u64| -> Result<u64, ConfigError> {
            match get(k) {
                None => Ok(default),
                Some(v) => match v.parse::<u64>() {
                    Ok(n) if (min..=max).contains(&n) => Ok(n),
                    _ => Err(err(
                        k,
                        &format!("expected a whole number from {min} to {max}, got {v:?}"),
                    )),
                },
            }
        };
        let boolean = |k: &str| -> Result<bool, ConfigError> {
            match get(k).map(|v| v.to_ascii_lowercase()) {
                None => Ok(false),
                Some(v) if ["1", "true", "yes", "on"].contains(&v.as_str()) => Ok(true),
                Some(v) if ["0", "false", "no", "off"].contains(&v.as_str()) => Ok(false),
                Some(v) => Err(err(k, &format!("expected true or false, got {v:?}"))),
            }
        };
        let url = |k: &str, default: Option<&str>| -> Result<Option<String>, ConfigError> {
            match get(k).or(default) {
                None => Ok(None),
                Some(v) if v.starts_with("http://") || v.starts_with("https://") => {
                    Ok(Some(v.trim_end_matches('/').to_string()))
                }
                Some(v) => Err(err(
                    k,
                    &format!("expected an http:// or https:// URL, got {v:?}"),
                )),
            }
        };

        let host = string("HOST", "127.0.0.1");
        let host: IpAddr = host
            .parse()
            .or_else(|_| {
                if host == "localhost" {
                    Ok("127.0.0.1".parse().expect("literal"))
                } else {
                    Err(())
                }
            })
            .map_err(|_| {
                err(
                    "HOST",
                    &format!("expected an IP address such as 127.0.0.1 or 0.0.0.0, got {host:?}"),
                )
            })?;

        let log_level = match string("LOG_LEVEL", "info").to_ascii_lowercase().as_str() {
            "error" => log::LevelFilter::Error,
            "warn" | "warning" => log::LevelFilter::Warn,
            "info" => log::LevelFilter::Info,
            "debug" => log::LevelFilter::Debug,
            "trace" => log::LevelFilter::Trace,
            "off" => log::LevelFilter::Off,
            other => {
                return Err(err(
                    "LOG_LEVEL",
                    &format!("expected one of error, warn, info, debug, trace; got {other:?}"),
                ));
            }
        };

        let mcp_transport = match string("MCP_TRANSPORT", "auto")
            .to_ascii_lowercase()
            .as_str()
        {
            "auto" => McpTransport::Auto,
            "streamable-http" | "streamable_http" | "mcp" => McpTransport::StreamableHttp,
            "simple-http" | "simple_http" | "http" => McpTransport::SimpleHttp,
            other => {
                return Err(err(
                    "MCP_TRANSPORT",
                    &format!("expected auto, streamable-http or simple-http; got {other:?}"),
                ));
            }
        };

        let github = match get("GITHUB_ORG") {
            None => None,
            Some(org) => Some(GithubConfig {
                org: org.to_string(),
                token: get("GITHUB_TOKEN").map(|t| Secret(t.to_string())),
                api_url: url("GITHUB_API_URL", Some("https://api.github.com"))?.unwrap_or_default(),
                repos: get("GITHUB_REPOS").map(|v| {
                    v.split(',')
                        .map(|s| s.trim().to_string())
                        .filter(|s| !s.is_empty())
                        .collect()
                }),
                include_archived: boolean("GITHUB_INCLUDE_ARCHIVED")?,
                include_forks: boolean("GITHUB_INCLUDE_FORKS")?,
                refresh: Duration::from_secs(number("GITHUB_REFRESH_SECS", 600, 10, 86_400 * 7)?),
            }),
        };

        Ok(Config {
            anthropic_api_key: get("ANTHROPIC_API_KEY").map(|k| Secret(k.to_string())),
            anthropic_base_url: url("ANTHROPIC_BASE_URL", Some("https://api.anthropic.com"))?
                .unwrap_or_default(),
            claude_model: string("CLAUDE_MODEL", "claude-sonnet-4-20250514"),
            claude_max_tokens: number("CLAUDE_MAX_TOKENS", 4096, 1, 1_000_000)? as u32,
            claude_idle_timeout: Duration::from_secs(number("CLAUDE_IDLE_TIMEOUT", 120, 1, 3600)?),
            max_tool_rounds: number("MAX_TOOL_ROUNDS", 10, 1, 100)? as u32,
            mcp_server_url: url("MCP_SERVER_URL", None)?,
            mcp_timeout: Duration::from_secs(number("MCP_TIMEOUT", 30, 1, 3600)?),
            mcp_transport,
            cors_origins: parse_cors(get("CORS_ORIGINS")).map_err(|m| err("CORS_ORIGINS", &m))?,
            host,
            port: number("PORT", 3001, 0, 65_535)? as u16,
            http_idle_timeout: Duration::from_secs(number("HTTP_IDLE_TIMEOUT", 30, 1, 3600)?),
            http_body_timeout: Duration::from_secs(number("HTTP_BODY_TIMEOUT", 60, 1, 3600)?),
            max_header_bytes: number("MAX_HEADER_BYTES", 32 * 1024, 1024, 1024 * 1024)? as usize,
            max_connections: number("MAX_CONNECTIONS", 1024, 1, 1_000_000)? as usize,
            http_workers_set: get("HTTP_WORKERS").is_some(),
            max_ws_sessions: number("MAX_WS_SESSIONS", 4096, 1, 1_000_000)? as usize,
            max_conversations: number("MAX_CONVERSATIONS", 1000, 1, 10_000_000)? as usize,
            max_history_messages: number("MAX_HISTORY_MESSAGES", 200, 2, 100_000)? as usize,
            history_budget_chars: number("HISTORY_BUDGET_CHARS", 400_000, 1_000, 100_000_000)?
                as usize,
            docs_dir: get("DOCS_DIR").map(PathBuf::from),
            docs_refresh: Duration::from_secs(number("DOCS_REFRESH_SECS", 60, 1, 86_400)?),
            github,
            cache_dir: PathBuf::from(string("CACHE_DIR", ".kv-cache")),
            log_level,
        })
    }

    pub fn llm_configured(&self) -> bool {
        self.anthropic_api_key.is_some()
    }

    pub fn origin_allowed(&self, origin: &str) -> bool {
        self.cors_origins
            .iter()
            .any(|o| o == "*" || o.eq_ignore_ascii_case(origin))
    }
}

/// `CORS_ORIGINS` as a JSON list (`["http://a","http://b"]`) or comma-separated.
fn parse_cors(value: Option<&str>) -> Result<Vec<String>, String> {
    let Some(v) = value else {
        return Ok(DEFAULT_CORS.iter().map(|s| s.to_string()).collect());
    };
    let list: Vec<String> = if v.starts_with('[') {
        serde_json::from_str::<Vec<String>>(v).map_err(|e| {
            format!("expected a JSON list of origins such as [\"http://localhost:5173\"]: {e}")
        })?
    } else {
        v.split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect()
    };
    for o in &list {
        let o = o.trim_end_matches('/');
        if o != "*" && !(o.starts_with("http://") || o.starts_with("https://")) {
            return Err(format!("expected origins like http://host:port, got {o:?}"));
        }
    }
    Ok(list
        .into_iter()
        .map(|o| o.trim_end_matches('/').to_string())
        .collect())
}

/// `.env` lines: `KEY=value`, `# comments`, optional `export `, optional
/// single or double quotes around the value.
pub fn parse_dotenv(text: &str) -> HashMap<String, String> {
    let mut out = HashMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        let k = k.trim();
        let mut v = v.trim();
        if v.len() >= 2
            && ((v.starts_with('"') && v.ends_with('"'))
                || (v.starts_with('\'') && v.ends_with('\'')))
        {
            v = &v[1..v.len() - 1];
        } else if let Some(i) = v.find(" #") {
            v = v[..i].trim_end();
        }
        out.insert(k.to_string(), v.to_string());
    }
    out
}

/// Resolves `DOCS_DIR` relative to the working directory, for log lines.
pub fn display_path(p: &Path) -> String {
    std::fs::canonicalize(p)
        .unwrap_or_else(|_| p.to_path_buf())
        .display()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults() {
        let c = Config::from_map(&HashMap::new()).unwrap();
        assert_eq!(c.port, 3001);
        assert_eq!(c.cors_origins, DEFAULT_CORS);
        assert_eq!(c.anthropic_base_url, "https://api.anthropic.com");
        assert!(c.anthropic_api_key.is_none());
        assert_eq!(c.mcp_timeout, Duration::from_secs(30));
    }

    #[test]
    fn cors_forms() {
        let c =
            Config::from_map(&map(&[("CORS_ORIGINS", r#"["http://a:1","https://b"]"#)])).unwrap();
        assert_eq!(c.cors_origins, ["http://a:1", "https://b"]);
        let c = Config::from_map(&map(&[("CORS_ORIGINS", "http://a:1, https://b/")])).unwrap();
        assert_eq!(c.cors_origins, ["http://a:1", "https://b"]);
        let e = Config::from_map(&map(&[("CORS_ORIGINS", "[\"http://a\"")])).unwrap_err();
        assert_eq!(e.variable, "CORS_ORIGINS");
    }

    #[test]
    fn bad_values_name_the_variable() {
        for (k, v) in [
            ("PORT", "abc"),
            ("PORT", "70000"),
            ("MCP_TIMEOUT", "-1"),
            ("HOST", "nohost"),
            ("LOG_LEVEL", "loud"),
            ("MCP_SERVER_URL", "ftp://x"),
        ] {
            let e = Config::from_map(&map(&[(k, v)])).unwrap_err();
            assert_eq!(e.variable, k);
        }
    }

    #[test]
    fn front_door_budgets() {
        let c = Config::from_map(&HashMap::new()).unwrap();
        assert_eq!(c.http_idle_timeout, Duration::from_secs(30));
        assert_eq!(c.http_body_timeout, Duration::from_secs(60));
        assert_eq!(c.max_header_bytes, 32 * 1024);
        assert_eq!(c.max_connections, 1024);
        assert!(!c.http_workers_set);
        let c = Config::from_map(&map(&[
            ("HTTP_BODY_TIMEOUT", "5"),
            ("MAX_HEADER_BYTES", "4096"),
            ("MAX_CONNECTIONS", "64"),
            ("HTTP_WORKERS", "8"),
        ]))
        .unwrap();
        assert_eq!(c.http_body_timeout, Duration::from_secs(5));
        assert_eq!((c.max_header_bytes, c.max_connections), (4096, 64));
        assert!(c.http_workers_set);
        for (k, v) in [
            ("HTTP_BODY_TIMEOUT", "0"),
            ("MAX_HEADER_BYTES", "100"),
            ("MAX_CONNECTIONS", "0"),
        ] {
            assert_eq!(Config::from_map(&map(&[(k, v)])).unwrap_err().variable, k);
        }
    }

    #[test]
    fn secrets_do_not_debug_print() {
        let c = Config::from_map(&map(&[("ANTHROPIC_API_KEY", "sk-ant-very-secret")])).unwrap();
        assert!(!format!("{c:?}").contains("very-secret"));
    }

    #[test]
    fn dotenv_lines() {
        let m =
            parse_dotenv("# c\nA=1\nexport B=\"two words\"\nC='x#y'\nD=val # note\n\nbad line\n");
        assert_eq!(m["A"], "1");
        assert_eq!(m["B"], "two words");
        assert_eq!(m["C"], "x#y");
        assert_eq!(m["D"], "val");
        assert_eq!(m.len(), 4);
    }
}
