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

/// Which wire format the chat's language model speaks (`LLM_PROVIDER`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LlmProvider {
    /// The Messages API: Claude, or a compatible server at `ANTHROPIC_BASE_URL`.
    Anthropic,
    /// Chat completions: Ollama, vLLM, llama.cpp's llama-server, LM Studio, OpenAI.
    OpenAi,
}

impl LlmProvider {
    pub fn as_str(self) -> &'static str {
        match self {
            LlmProvider::Anthropic => "anthropic",
            LlmProvider::OpenAi => "openai",
        }
    }
}

/// The hosts whose APIs always need a key.
const ANTHROPIC_API_HOST: &str = "api.anthropic.com";
const OPENAI_API_HOST: &str = "api.openai.com";

/// The host of an `http(s)://` URL, lower-case, without port or path.
fn url_host(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = match host.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or(""),
        None => host.split(':').next().unwrap_or(""),
    };
    host.trim_end_matches('.').to_ascii_lowercase()
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
    /// `LLM_PROVIDER`; the `OPENAI_*` settings below serve `OpenAi` (which
    /// also uses `CLAUDE_MAX_TOKENS` and `CLAUDE_IDLE_TIMEOUT`).
    pub llm_provider: LlmProvider,
    /// With its `/v1`; the client appends `/chat/completions`.
    pub openai_base_url: String,
    pub openai_api_key: Option<Secret>,
    /// Required with `LLM_PROVIDER=openai`.
    pub openai_model: String,

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
    /// Bytes of messages kept per conversation, and in all of them.
    pub max_history_bytes: usize,
    pub max_history_total_bytes: usize,
    /// Rough budget, in characters of JSON, of the history sent to Claude.
    pub history_budget_chars: usize,
    /// Largest chat message a client may send, in bytes.
    pub max_message_bytes: usize,
    /// Answers running at once in the whole service.
    pub max_running_answers: usize,

    /// `DOCS_DIR`; unset means the working directory, unless only a GitHub
    /// organization is configured.
    pub docs_dir: Option<PathBuf>,
    pub docs_refresh: Duration,
    /// Caps on the walk of `DOCS_DIR`: documentation files kept, and folder
    /// levels below `DOCS_DIR` (`DOCS_MAX_FILES`, `DOCS_MAX_DEPTH`).
    pub docs_max_files: usize,
    pub docs_max_depth: usize,
    pub github: Option<GithubConfig>,
    pub cache_dir: PathBuf,

    pub log_level: log::LevelFilter,

    /// `API_TOKENS` and `API_TOKENS_FILE`; empty: no token is asked for.
    pub api_tokens: Vec<Secret>,
    /// Serve a non-loopback address without tokens (a proxy authenticates).
    pub allow_anonymous: bool,
    /// Extra names accepted in `Host` (lower-case, no port).
    pub allowed_hosts: Vec<String>,
    /// Chat messages, and REST/MCP requests, per client and minute; 0: off.
    pub rate_limit_messages: u32,
    pub rate_limit_requests: u32,
    /// Claude tokens (input + output) per UTC day; then offline answers.
    pub claude_daily_token_budget: Option<u64>,
    /// How long running answers may finish after SIGTERM/SIGINT.
    pub shutdown_grace: Duration,

    /// Where the conversation journal lives; `None` (`DATA_DIR=` empty):
    /// conversations are kept in memory only.
    pub data_dir: Option<PathBuf>,
    /// The journal's group commit; zero syncs every write.
    pub journal_fsync: Duration,
    /// Conversations idle longer than this are expired; `None`: never.
    pub conversation_ttl: Option<Duration>,
    /// `API_TOKEN`: the access token `knowledge-vault ask` sends (as
    /// `Authorization: Bearer`) to a service that has tokens on.
    pub api_token: Option<Secret>,
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

/// Defaults of `DOCS_MAX_FILES` and `DOCS_MAX_DEPTH` (the local walk's caps).
pub const DEFAULT_MAX_FILES: usize = 100_000;
pub const DEFAULT_MAX_DEPTH: usize = 32;

/// Shortest API token accepted: a short one can be guessed.
pub const MIN_TOKEN_LEN: usize = 16;

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
                    &format!(
                        "expected an http:// or https:// URL, got {:?}",
                        crate::net::display_url(v)
                    ),
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

        let list = |k: &str| -> Vec<String> {
            get(k)
                .map(|v| {
                    v.split(',')
                        .map(|s| s.trim().to_string())
                        .filter(|s| !s.is_empty())
                        .collect()
                })
                .unwrap_or_default()
        };
        let mut tokens = list("API_TOKENS");
        if let Some(file) = get("API_TOKENS_FILE") {
            let text = std::fs::read_to_string(file)
                .map_err(|e| err("API_TOKENS_FILE", &format!("cannot read {file:?}: {e}")))?;
            tokens.extend(
                text.lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty() && !l.starts_with('#'))
                    .map(str::to_string),
            );
        }
        if let Some(bad) = tokens.iter().find(|t| {
            t.len() < MIN_TOKEN_LEN || t.chars().any(|c| c.is_whitespace() || c.is_control())
        }) {
            let shown = if bad.len() < MIN_TOKEN_LEN {
                "a token"
            } else {
                "a token with spaces"
            };
            return Err(err(
                "API_TOKENS",
                &format!(
                    "{shown} is too weak or malformed: use at least {MIN_TOKEN_LEN} characters without spaces (e.g. `openssl rand -hex 32`)"
                ),
            ));
        }
        let allow_anonymous = boolean("ALLOW_ANONYMOUS")?;
        let budget = number("CLAUDE_DAILY_TOKEN_BUDGET", 0, 0, u64::MAX)?;

        // The language model: LLM_PROVIDER and the OpenAI-compatible server.
        let llm_provider = match string("LLM_PROVIDER", "anthropic")
            .to_ascii_lowercase()
            .as_str()
        {
            "anthropic" | "claude" => LlmProvider::Anthropic,
            "openai" => LlmProvider::OpenAi,
            other => {
                return Err(err(
                    "LLM_PROVIDER",
                    &format!("expected anthropic or openai, got {other:?}"),
                ));
            }
        };
        let openai_base_url =
            url("OPENAI_BASE_URL", Some("https://api.openai.com/v1"))?.unwrap_or_default();
        let openai_api_key = get("OPENAI_API_KEY").map(|k| Secret(k.to_string()));
        let openai_model = string("OPENAI_MODEL", "");
        if llm_provider == LlmProvider::OpenAi {
            if openai_model.is_empty() {
                return Err(err(
                    "OPENAI_MODEL",
                    "LLM_PROVIDER=openai needs the model id the server knows (e.g. llama3.2:1b for Ollama; llama-server accepts any name)",
                ));
            }
            if openai_api_key.is_none() && url_host(&openai_base_url) == OPENAI_API_HOST {
                return Err(err(
                    "OPENAI_API_KEY",
                    "api.openai.com needs a key; for a self-hosted server set OPENAI_BASE_URL (e.g. http://127.0.0.1:11434/v1 for Ollama)",
                ));
            }
        }

        Ok(Config {
            api_tokens: tokens.into_iter().map(Secret).collect(),
            allow_anonymous,
            allowed_hosts: list("ALLOWED_HOSTS")
                .into_iter()
                .map(|h| h.trim_end_matches('.').to_ascii_lowercase())
                .collect(),
            rate_limit_messages: number("RATE_LIMIT_MESSAGES", 40, 0, 1_000_000)? as u32,
            rate_limit_requests: number("RATE_LIMIT_REQUESTS", 600, 0, 100_000_000)? as u32,
            claude_daily_token_budget: (budget > 0).then_some(budget),
            shutdown_grace: Duration::from_secs(number("SHUTDOWN_GRACE_SECS", 10, 0, 3600)?),
            // Unset means the default; set but empty means "no journal".
            data_dir: match vars.get("DATA_DIR").map(|v| v.trim()) {
                None => Some(PathBuf::from(".kv-data")),
                Some("") => None,
                Some(v) => Some(PathBuf::from(v)),
            },
            journal_fsync: Duration::from_millis(number("JOURNAL_FSYNC_MS", 1000, 0, 60_000)?),
            conversation_ttl: match number("CONVERSATION_TTL_DAYS", 30, 0, 36_500)? {
                0 => None,
                days => Some(Duration::from_secs(days * 86_400)),
            },
            anthropic_api_key: get("ANTHROPIC_API_KEY").map(|k| Secret(k.to_string())),
            anthropic_base_url: url("ANTHROPIC_BASE_URL", Some("https://api.anthropic.com"))?
                .unwrap_or_default(),
            claude_model: string("CLAUDE_MODEL", "claude-sonnet-4-20250514"),
            claude_max_tokens: number("CLAUDE_MAX_TOKENS", 4096, 1, 1_000_000)? as u32,
            claude_idle_timeout: Duration::from_secs(number("CLAUDE_IDLE_TIMEOUT", 120, 1, 3600)?),
            max_tool_rounds: number("MAX_TOOL_ROUNDS", 10, 1, 100)? as u32,
            llm_provider,
            openai_base_url,
            openai_api_key,
            openai_model,
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
            max_history_bytes: number("MAX_HISTORY_BYTES", 2 << 20, 4096, 1 << 40)? as usize,
            max_history_total_bytes: number("MAX_HISTORY_TOTAL_BYTES", 128 << 20, 4096, 1 << 44)?
                as usize,
            history_budget_chars: number("HISTORY_BUDGET_CHARS", 400_000, 1_000, 100_000_000)?
                as usize,
            max_message_bytes: number("MAX_MESSAGE_BYTES", 64 << 10, 1, 1 << 20)? as usize,
            max_running_answers: number("MAX_RUNNING_ANSWERS", 32, 1, 100_000)? as usize,
            docs_dir: get("DOCS_DIR").map(PathBuf::from),
            docs_refresh: Duration::from_secs(number("DOCS_REFRESH_SECS", 60, 1, 86_400)?),
            docs_max_files: number("DOCS_MAX_FILES", DEFAULT_MAX_FILES as u64, 1, 10_000_000)?
                as usize,
            docs_max_depth: number("DOCS_MAX_DEPTH", DEFAULT_MAX_DEPTH as u64, 1, 1_000)? as usize,
            github,
            cache_dir: PathBuf::from(string("CACHE_DIR", ".kv-cache")),
            log_level,
            api_token: get("API_TOKEN").map(|t| Secret(t.to_string())),
        })
    }

    /// Safe by default: serving a non-loopback address needs tokens, or
    /// the operator's word that a proxy in front authenticates. Checked by
    /// `serve` only (a client command such as `health` just reads HOST).
    pub fn check_exposure(&self) -> Result<(), ConfigError> {
        if self.host.is_loopback() || !self.api_tokens.is_empty() || self.allow_anonymous {
            return Ok(());
        }
        Err(ConfigError {
            variable: "API_TOKENS".into(),
            message: format!(
                "HOST={} can be reached from the network, so every route would be open to anyone; set API_TOKENS (or API_TOKENS_FILE), or ALLOW_ANONYMOUS=true if an authenticating proxy is in front",
                self.host
            ),
        })
    }

    /// True when the chat has a language model; false: offline retrieval
    /// mode. With `LLM_PROVIDER=openai` a model is always configured (a
    /// missing setting stops start-up instead).
    pub fn llm_configured(&self) -> bool {
        match self.llm_provider {
            LlmProvider::Anthropic => self.anthropic_usable(),
            LlmProvider::OpenAi => true,
        }
    }

    /// The Messages API can be asked: with a key, or at a compatible server
    /// other than api.anthropic.com, which may need none (llama-server,
    /// Ollama). api.anthropic.com without a key is offline mode.
    pub fn anthropic_usable(&self) -> bool {
        self.anthropic_api_key.is_some() || url_host(&self.anthropic_base_url) != ANTHROPIC_API_HOST
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
    fn docs_walk_caps() {
        let c = Config::from_map(&HashMap::new()).unwrap();
        assert_eq!(c.docs_max_files, 100_000);
        assert_eq!(c.docs_max_depth, 32);
        let c =
            Config::from_map(&map(&[("DOCS_MAX_FILES", "5"), ("DOCS_MAX_DEPTH", "1000")])).unwrap();
        assert_eq!((c.docs_max_files, c.docs_max_depth), (5, 1000));
        for (k, v) in [
            ("DOCS_MAX_FILES", "0"),
            ("DOCS_MAX_DEPTH", "0"),
            ("DOCS_MAX_DEPTH", "1001"),
        ] {
            assert_eq!(Config::from_map(&map(&[(k, v)])).unwrap_err().variable, k);
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
    fn llm_provider_and_the_openai_settings() {
        let c = Config::from_map(&HashMap::new()).unwrap();
        assert_eq!(c.llm_provider, LlmProvider::Anthropic);
        // api.anthropic.com without a key: offline mode.
        assert!(!c.llm_configured());
        // A compatible server elsewhere needs no key.
        for base in [
            "http://127.0.0.1:8080",
            "https://litellm.internal/anthropic",
            "https://api.anthropic.com.evil.example",
        ] {
            let c = Config::from_map(&map(&[("ANTHROPIC_BASE_URL", base)])).unwrap();
            assert!(c.llm_configured(), "{base}");
        }
        for base in [
            "https://API.anthropic.com/",
            "https://user@api.anthropic.com:443",
        ] {
            let c = Config::from_map(&map(&[("ANTHROPIC_BASE_URL", base)])).unwrap();
            assert!(!c.llm_configured(), "{base}");
        }

        let c = Config::from_map(&map(&[
            ("LLM_PROVIDER", "OpenAI"),
            ("OPENAI_BASE_URL", "http://127.0.0.1:11434/v1/"),
            ("OPENAI_MODEL", "llama3.2:1b"),
        ]))
        .unwrap();
        assert_eq!(c.llm_provider, LlmProvider::OpenAi);
        assert_eq!(c.openai_base_url, "http://127.0.0.1:11434/v1");
        assert_eq!(c.openai_model, "llama3.2:1b");
        assert!(c.openai_api_key.is_none());
        assert!(c.llm_configured());

        let bad = |pairs: &[(&str, &str)]| Config::from_map(&map(pairs)).unwrap_err().variable;
        assert_eq!(bad(&[("LLM_PROVIDER", "gemini")]), "LLM_PROVIDER");
        assert_eq!(bad(&[("LLM_PROVIDER", "openai")]), "OPENAI_MODEL");
        assert_eq!(
            bad(&[("LLM_PROVIDER", "openai"), ("OPENAI_MODEL", "gpt-4o-mini")]),
            "OPENAI_API_KEY"
        );
        assert_eq!(
            bad(&[
                ("LLM_PROVIDER", "openai"),
                ("OPENAI_BASE_URL", "127.0.0.1:1/v1")
            ]),
            "OPENAI_BASE_URL"
        );
        let c = Config::from_map(&map(&[
            ("LLM_PROVIDER", "openai"),
            ("OPENAI_MODEL", "gpt-4o-mini"),
            ("OPENAI_API_KEY", "sk-proj-secret"),
        ]))
        .unwrap();
        assert_eq!(c.openai_base_url, "https://api.openai.com/v1");
        assert!(!format!("{c:?}").contains("sk-proj-secret"));
        // The OpenAI settings are not checked for the default provider.
        assert!(Config::from_map(&map(&[("OPENAI_MODEL", "")])).is_ok());
    }

    #[test]
    fn secrets_do_not_debug_print() {
        let c = Config::from_map(&map(&[("ANTHROPIC_API_KEY", "sk-ant-very-secret")])).unwrap();
        assert!(!format!("{c:?}").contains("very-secret"));
    }

    #[test]
    fn the_network_needs_a_token_or_a_word_from_the_operator() {
        let open = Config::from_map(&map(&[("HOST", "0.0.0.0")])).unwrap();
        let e = open.check_exposure().unwrap_err();
        assert_eq!(e.variable, "API_TOKENS");
        assert!(e.to_string().contains("ALLOW_ANONYMOUS"));
        let behind_proxy =
            Config::from_map(&map(&[("HOST", "0.0.0.0"), ("ALLOW_ANONYMOUS", "true")])).unwrap();
        assert!(behind_proxy.check_exposure().is_ok());
        let c = Config::from_map(&map(&[
            ("HOST", "::"),
            ("API_TOKENS", "aaaaaaaaaaaaaaaa, bbbbbbbbbbbbbbbb"),
        ]))
        .unwrap();
        assert_eq!(c.api_tokens.len(), 2);
        assert!(c.check_exposure().is_ok());
        assert!(!format!("{c:?}").contains("aaaa"));
        let e = Config::from_map(&map(&[("API_TOKENS", "short")])).unwrap_err();
        assert_eq!(e.variable, "API_TOKENS");
        assert!(!e.to_string().contains("short"), "the token is not echoed");
        // Loopback needs nothing.
        assert!(
            Config::from_map(&map(&[("HOST", "127.0.0.1")]))
                .unwrap()
                .api_tokens
                .is_empty()
        );
    }

    #[test]
    fn the_data_dir_is_on_by_default_and_off_when_empty() {
        let c = Config::from_map(&HashMap::new()).unwrap();
        assert_eq!(c.data_dir.as_deref(), Some(Path::new(".kv-data")));
        assert_eq!(c.conversation_ttl, Some(Duration::from_secs(30 * 86_400)));
        let c =
            Config::from_map(&map(&[("DATA_DIR", ""), ("CONVERSATION_TTL_DAYS", "0")])).unwrap();
        assert_eq!(c.data_dir, None);
        assert_eq!(c.conversation_ttl, None);
    }

    #[test]
    fn tokens_from_a_file() {
        let path = std::env::temp_dir().join(format!("kv-tokens-{}", std::process::id()));
        std::fs::write(&path, "# team\naaaaaaaaaaaaaaaa\n\n  bbbbbbbbbbbbbbbb  \n").unwrap();
        let c = Config::from_map(&map(&[
            ("API_TOKENS", "cccccccccccccccc"),
            ("API_TOKENS_FILE", path.to_str().unwrap()),
        ]))
        .unwrap();
        std::fs::remove_file(&path).unwrap();
        let got: Vec<&str> = c.api_tokens.iter().map(Secret::expose).collect();
        assert_eq!(
            got,
            ["cccccccccccccccc", "aaaaaaaaaaaaaaaa", "bbbbbbbbbbbbbbbb"]
        );
        let e = Config::from_map(&map(&[("API_TOKENS_FILE", "/nonexistent/tokens")])).unwrap_err();
        assert_eq!(e.variable, "API_TOKENS_FILE");
    }

    #[test]
    fn api_token_is_a_secret() {
        assert!(
            Config::from_map(&HashMap::new())
                .unwrap()
                .api_token
                .is_none()
        );
        let c = Config::from_map(&map(&[("API_TOKEN", " tok-123 ")])).unwrap();
        assert_eq!(c.api_token.as_ref().map(Secret::expose), Some("tok-123"));
        assert!(!format!("{c:?}").contains("tok-123"));
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
