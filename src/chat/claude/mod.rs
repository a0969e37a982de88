//! The Claude client: one streaming Messages API request with ureq, read as
//! Server-Sent Events, assembled into the assistant message, with the SDKs'
//! retries, an idle timeout between events and prompt cancellation.
//!
//! It does not run tools, keep history or decide what a stop reason means for
//! the conversation: that is the turn's job (`chat::turn`). Event parsing is
//! in `assemble`, retry and error wording in `policy`.
//!
//! Each [`ClaudeClient::stream`] call builds its own ureq agent so that a
//! cancel (`conversations::live::Cancel`) can shut down exactly that request's socket (clones of
//! an agent share one pool, and `shutdown` closes all of it). The cost is one
//! rustls client configuration per call for `https` (ureq caches it per
//! agent), well under the latency of the request itself.

mod assemble;
mod policy;

use self::assemble::{Assembler, Flow};
use crate::config::{Config, Secret};
use crate::conversations::live::Cancel;
use crate::messages::{Block, Message};
use crate::net;
use crate::sse::SseReader;
use crate::tools::ToolSpec;
use serde::Serialize;
use serde_json::Value;
use std::io::{BufReader, Read};
use std::time::{Duration, Instant, SystemTime};

const ANTHROPIC_VERSION: &str = "2023-06-01";
/// One buffer between the socket and the SSE line reader; events are small.
const READ_BUFFER: usize = 8 * 1024;
/// ureq's own buffers, per request: its defaults (128 KiB each way, zeroed
/// when the connection opens) were most of the memory of a running chat.
/// The input buffer must hold the whole response head, hence the same cap
/// on headers; Anthropic's are a few KiB. Larger bodies just take more writes.
const UREQ_BUFFER: usize = 16 * 1024;
/// A single SSE line (one event's `data`); deltas are far smaller, this only
/// stops a broken server from growing memory without bound.
const MAX_SSE_LINE: usize = 8 * 1024 * 1024;
/// An error body is read for its message only.
const MAX_ERROR_BODY: u64 = 64 * 1024;
/// How often a backoff sleep looks at the cancel flag.
const CANCEL_POLL: Duration = Duration::from_millis(10);

#[derive(Debug, Clone)]
pub struct ClaudeConfig {
    /// Without `/v1/messages`; the client appends it.
    pub base_url: String,
    pub api_key: Secret,
    pub model: String,
    pub max_tokens: u32,
    /// Longest silence allowed between two SSE events (not a cap on the stream).
    pub idle_timeout: Duration,
    pub connect_timeout: Duration,
}

impl ClaudeConfig {
    /// The SDKs use 5 s; a little more for slow proxies.
    pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

    /// From the service configuration; `None` without an API key.
    pub fn from_config(config: &Config) -> Option<ClaudeConfig> {
        Some(ClaudeConfig {
            base_url: config.anthropic_base_url.clone(),
            api_key: config.anthropic_api_key.clone()?,
            model: config.claude_model.clone(),
            max_tokens: config.claude_max_tokens,
            idle_timeout: config.claude_idle_timeout,
            connect_timeout: ClaudeConfig::DEFAULT_CONNECT_TIMEOUT,
        })
    }
}

/// One request: the system prompt, the whole history (already bounded by
/// the caller; its JSON is the Messages API's form) and the tools to offer.
pub struct MessagesRequest<'a> {
    pub system: &'a str,
    pub messages: &'a [Message],
    pub tools: &'a [ToolSpec],
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StopReason {
    EndTurn,
    ToolUse,
    MaxTokens,
    PauseTurn,
    Refusal,
    StopSequence,
    Other(String),
}

impl StopReason {
    fn parse(s: &str) -> StopReason {
        match s {
            "end_turn" => StopReason::EndTurn,
            "tool_use" => StopReason::ToolUse,
            "max_tokens" => StopReason::MaxTokens,
            "pause_turn" => StopReason::PauseTurn,
            "refusal" => StopReason::Refusal,
            "stop_sequence" => StopReason::StopSequence,
            other => StopReason::Other(other.to_string()),
        }
    }
}

/// The assistant message as it must be echoed back to the API: complete
/// blocks only, in `index` order, tool inputs as parsed JSON objects.
/// (In a partial message, a text block that was still open is kept too.)
#[derive(Debug, Clone, PartialEq)]
pub struct AssistantMessage {
    pub content: Vec<Block>,
    pub stop_reason: Option<StopReason>,
    /// A tool_use block was cut off (by `max_tokens` or a broken stream) and
    /// left out of `content`; it must not run.
    pub dropped_tool_use: bool,
    /// What the request cost, as the stream reported it.
    pub usage: Usage,
}

/// Token counts of one request, from `message_start` and `message_delta`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub input_tokens: u64,
    pub cache_creation_input_tokens: u64,
    pub cache_read_input_tokens: u64,
    pub output_tokens: u64,
}

impl Usage {
    /// Every input and output token: what a budget counts.
    pub fn total(&self) -> u64 {
        self.input_tokens
            + self.cache_creation_input_tokens
            + self.cache_read_input_tokens
            + self.output_tokens
    }
}

impl AssistantMessage {
    fn empty() -> AssistantMessage {
        AssistantMessage {
            content: Vec::new(),
            stop_reason: None,
            dropped_tool_use: false,
            usage: Usage::default(),
        }
    }

    /// All text blocks joined, for display.
    pub fn text(&self) -> String {
        self.content.iter().filter_map(Block::shown_text).collect()
    }

    /// The tool calls, to run in order: (id, name, input).
    pub fn tool_uses(&self) -> impl Iterator<Item = (&str, &str, &Value)> {
        crate::messages::tool_uses(&self.content)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum ClaudeError {
    /// A non-2xx answer (after the allowed retries). `message` is meant for the
    /// user and never contains the key.
    Http { status: u16, message: String },
    /// No connection could be made, or it broke before any output.
    Connection(String),
    /// An `error` event, a dropped connection or an idle timeout after output
    /// had started; `partial` holds the complete blocks and text received.
    Interrupted {
        message: String,
        partial: Box<AssistantMessage>,
    },
    /// [`Cancel::cancel`] was called; `partial` as above.
    Cancelled { partial: Box<AssistantMessage> },
}

impl std::fmt::Display for ClaudeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClaudeError::Http { message, .. }
            | ClaudeError::Connection(message)
            | ClaudeError::Interrupted { message, .. } => f.write_str(message),
            ClaudeError::Cancelled { .. } => f.write_str("the answer was cancelled"),
        }
    }
}

impl std::error::Error for ClaudeError {}

pub struct ClaudeClient {
    config: ClaudeConfig,
    /// `{base_url}/v1/messages`, the base keeping its own path.
    url: String,
}

/// Why one attempt failed, and whether another may be made.
struct Failure {
    error: ClaudeError,
    /// `None`: final. `Some(delay)`: retryable, after the server's delay if it gave one.
    retry: Option<Option<Duration>>,
}

impl Failure {
    fn fatal(error: ClaudeError) -> Failure {
        Failure { error, retry: None }
    }
}

impl ClaudeClient {
    pub fn new(config: ClaudeConfig) -> ClaudeClient {
        let url = format!("{}/v1/messages", config.base_url.trim_end_matches('/'));
        ClaudeClient { config, url }
    }

    /// Streams one request. `on_text` gets every text delta as it arrives.
    ///
    /// Retries (up to 2, on connection errors, 408, 409, 429, 5xx and 529,
    /// honouring `x-should-retry`, `retry-after-ms` and `retry-after`) happen
    /// only while nothing was forwarded to `on_text`, so the user never sees
    /// text twice. For the same reason an `error` event whose type would
    /// have been a retryable status (`overloaded_error`, `api_error`,
    /// `rate_limit_error`, `timeout_error`), and a connection that breaks
    /// after the 200, are retried when no text was forwarded yet. An idle
    /// timeout is not retried: the user has already waited that long.
    pub fn stream(
        &self,
        request: &MessagesRequest<'_>,
        cancel: &Cancel,
        on_text: &mut dyn FnMut(&str),
    ) -> Result<AssistantMessage, ClaudeError> {
        let body = self.body(request);
        let agent = self.agent();
        // A cancel shuts exactly this request's agent down, which closes
        // the upstream socket at once.
        let closing = agent.clone();
        cancel.on_cancel(Box::new(move || closing.shutdown()));
        let result = self.run(&agent, &body, cancel, on_text);
        cancel.clear_hook();
        result.map_err(|e| self.scrub(e))
    }

    fn run(
        &self,
        agent: &ureq::Agent,
        body: &[u8],
        cancel: &Cancel,
        on_text: &mut dyn FnMut(&str),
    ) -> Result<AssistantMessage, ClaudeError> {
        let mut retries = 0;
        loop {
            // Also catches a cancel that came before the agent was registered.
            if cancel.is_cancelled() {
                return Err(ClaudeError::Cancelled {
                    partial: Box::new(AssistantMessage::empty()),
                });
            }
            let failure = match self.attempt(agent, body, cancel, on_text) {
                Ok(message) => return Ok(message),
                Err(f) => f,
            };
            let delay = match failure.retry {
                Some(server_delay) if retries < policy::MAX_RETRIES => {
                    server_delay.unwrap_or_else(|| net::backoff(retries, net::jitter()))
                }
                _ => {
                    return Err(match failure.error {
                        ClaudeError::Http { status, message } if retries > 0 => ClaudeError::Http {
                            status,
                            message: format!("{message} (gave up after {} attempts)", retries + 1),
                        },
                        e => e,
                    });
                }
            };
            retries += 1;
            log::warn!(
                "Claude request failed: {}; retry {retries} of {} in {} ms",
                self.scrub(failure.error),
                policy::MAX_RETRIES,
                delay.as_millis()
            );
            if !sleep_unless_cancelled(delay, cancel) {
                return Err(ClaudeError::Cancelled {
                    partial: Box::new(AssistantMessage::empty()),
                });
            }
        }
    }

    fn attempt(
        &self,
        agent: &ureq::Agent,
        body: &[u8],
        cancel: &Cancel,
        on_text: &mut dyn FnMut(&str),
    ) -> Result<AssistantMessage, Failure> {
        let sent = agent
            .post(&self.url)
            .header("x-api-key", self.config.api_key.expose())
            .header("anthropic-version", ANTHROPIC_VERSION)
            .header("content-type", "application/json")
            .header("accept", "application/json")
            .send(body);
        let response = match sent {
            Ok(r) => r,
            Err(_) if cancel.is_cancelled() => {
                return Err(Failure::fatal(ClaudeError::Cancelled {
                    partial: Box::new(AssistantMessage::empty()),
                }));
            }
            Err(e) => return Err(self.request_failure(e)),
        };
        let status = response.status().as_u16();
        let header = |name: &str| {
            response
                .headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let request_id = header("request-id").unwrap_or_default();
        log::debug!("Claude answered {status} (request-id {request_id:?})");
        if !(200..300).contains(&status) {
            let retryable =
                policy::status_is_retryable(status, header("x-should-retry").as_deref());
            let delay = policy::server_delay(
                header("retry-after-ms").as_deref(),
                header("retry-after").as_deref(),
                SystemTime::now(),
            );
            let mut text = Vec::new();
            // A body that breaks off still leaves a status worth reporting.
            let _ = response
                .into_body()
                .into_reader()
                .take(MAX_ERROR_BODY)
                .read_to_end(&mut text);
            let message = policy::http_error_message(status, &text);
            log::warn!(
                "Claude API answered {status} (request-id {request_id:?}): {}",
                policy::redact(message.clone(), self.config.api_key.expose())
            );
            return Err(Failure {
                error: ClaudeError::Http { status, message },
                retry: retryable.then_some(delay),
            });
        }
        let reader = BufReader::with_capacity(READ_BUFFER, response.into_body().into_reader());
        self.read_stream(
            SseReader::with_max_line(reader, MAX_SSE_LINE),
            cancel,
            on_text,
        )
    }

    fn read_stream<R: std::io::BufRead>(
        &self,
        mut sse: SseReader<R>,
        cancel: &Cancel,
        on_text: &mut dyn FnMut(&str),
    ) -> Result<AssistantMessage, Failure> {
        let mut asm = Assembler::new();
        loop {
            let next = sse.next_event();
            // A cancel shuts the socket down, so the read above fails or ends
            // at once; report it as what it is.
            if cancel.is_cancelled() {
                return Err(cancelled(asm));
            }
            let event = match next {
                Ok(Some(event)) => event,
                Ok(None) => {
                    let msg = "the connection to Claude closed before the answer was complete";
                    return Err(broken(asm, msg.into(), true));
                }
                Err(e) if is_timeout(&e) => {
                    let msg = format!(
                        "Claude sent nothing for {} s (idle timeout); the answer is incomplete",
                        self.config.idle_timeout.as_secs_f32()
                    );
                    return Err(broken(asm, msg, false));
                }
                Err(e) => {
                    let msg = format!("the connection to Claude broke: {e}");
                    return Err(broken(asm, msg, true));
                }
            };
            let flow = asm.handle(&event, on_text);
            if cancel.is_cancelled() {
                return Err(cancelled(asm));
            }
            match flow {
                Flow::Continue => {}
                Flow::Done => return Ok(asm.finish()),
                Flow::ApiError { kind, message } => {
                    let retry =
                        (!asm.forwarded() && policy::api_error_is_retryable(&kind)).then_some(None);
                    return Err(Failure {
                        error: ClaudeError::Interrupted {
                            message: format!("Claude API error ({kind}): {message}"),
                            partial: Box::new(asm.finish()),
                        },
                        retry,
                    });
                }
                Flow::Malformed(why) => {
                    return Err(broken(
                        asm,
                        format!("Claude sent an invalid stream: {why}"),
                        false,
                    ));
                }
            }
        }
    }

    /// A failure before any response: connect, DNS, TLS, sending the request
    /// or waiting for the status line.
    fn request_failure(&self, e: ureq::Error) -> Failure {
        use ureq::Timeout as T;
        let base = crate::net::display_url(&self.config.base_url);
        let (message, retry) = match e {
            ureq::Error::Timeout(T::Connect | T::Resolve) => (
                format!(
                    "could not connect to Claude at {base} within {} s",
                    self.config.connect_timeout.as_secs_f32()
                ),
                true,
            ),
            ureq::Error::Timeout(_) => (
                format!(
                    "Claude at {base} did not answer within {} s",
                    self.config.idle_timeout.as_secs_f32()
                ),
                false,
            ),
            ureq::Error::HostNotFound => (format!("cannot resolve the host of {base}"), true),
            ureq::Error::Io(io) => (format!("cannot reach Claude at {base}: {io}"), true),
            ureq::Error::ConnectionFailed => (format!("cannot connect to Claude at {base}"), true),
            other => (
                format!("request to Claude at {base} failed: {other}"),
                false,
            ),
        };
        Failure {
            error: ClaudeError::Connection(message),
            retry: retry.then_some(None),
        }
    }

    /// The request body, serialised straight from borrowed parts: the
    /// history is not copied into a `Value` first.
    fn body(&self, request: &MessagesRequest<'_>) -> Vec<u8> {
        #[derive(Serialize)]
        struct Tool<'a> {
            name: &'a str,
            description: &'a str,
            input_schema: &'a Value,
        }
        #[derive(Serialize)]
        struct Body<'a> {
            model: &'a str,
            max_tokens: u32,
            #[serde(skip_serializing_if = "str::is_empty")]
            system: &'a str,
            messages: &'a [Message],
            #[serde(skip_serializing_if = "Vec::is_empty")]
            tools: Vec<Tool<'a>>,
            stream: bool,
        }
        let body = Body {
            model: &self.config.model,
            max_tokens: self.config.max_tokens,
            system: request.system,
            messages: request.messages,
            tools: request
                .tools
                .iter()
                .map(|t| Tool {
                    name: &t.name,
                    description: &t.description,
                    input_schema: &t.input_schema,
                })
                .collect(),
            stream: true,
        };
        // Serialising borrowed JSON values and strings cannot fail.
        serde_json::to_vec(&body).unwrap_or_default()
    }

    /// A fresh agent: statuses as responses (to read error bodies), a connect
    /// timeout, and a per-read timeout that restarts with every read, so a
    /// long answer is fine as long as events keep coming. No global, per-call
    /// or body timeouts: in ureq those cap the whole stream.
    fn agent(&self) -> ureq::Agent {
        let timeout = Some(self.config.connect_timeout);
        // With a resolve timeout ureq runs every lookup on a new thread (2 MiB
        // stack), even for an IP address, where there is nothing to wait for.
        let resolve_timeout = if net::host_is_ip(&self.config.base_url) {
            None
        } else {
            timeout
        };
        let builder = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .user_agent(concat!("knowledge-vault/", env!("CARGO_PKG_VERSION")))
            .timeout_resolve(resolve_timeout)
            .timeout_connect(timeout)
            .timeout_per_read(Some(self.config.idle_timeout))
            .timeout_per_write(Some(self.config.idle_timeout))
            .input_buffer_size(UREQ_BUFFER)
            .output_buffer_size(UREQ_BUFFER)
            .max_response_header_size(UREQ_BUFFER);
        builder
            .proxy(net::proxy_for(&self.config.base_url))
            .build()
            .new_agent()
    }

    fn scrub(&self, e: ClaudeError) -> ClaudeError {
        let key = self.config.api_key.expose();
        match e {
            ClaudeError::Http { status, message } => ClaudeError::Http {
                status,
                message: policy::redact(message, key),
            },
            ClaudeError::Connection(m) => ClaudeError::Connection(policy::redact(m, key)),
            ClaudeError::Interrupted { message, partial } => ClaudeError::Interrupted {
                message: policy::redact(message, key),
                partial,
            },
            e @ ClaudeError::Cancelled { .. } => e,
        }
    }
}

fn cancelled(asm: Assembler) -> Failure {
    Failure::fatal(ClaudeError::Cancelled {
        partial: Box::new(asm.finish()),
    })
}

/// The stream failed after the 200. Retryable only if no text was shown.
fn broken(asm: Assembler, message: String, retryable: bool) -> Failure {
    let retry = (retryable && !asm.forwarded()).then_some(None);
    let error = if asm.has_output() {
        ClaudeError::Interrupted {
            message,
            partial: Box::new(asm.finish()),
        }
    } else {
        ClaudeError::Connection(message)
    };
    Failure { error, retry }
}

/// ureq reports a per-read timeout in a body read as an `io::Error` wrapping
/// its own `Error::Timeout`; the OS may report `TimedOut` directly.
fn is_timeout(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::TimedOut
        || e.get_ref()
            .and_then(|inner| inner.downcast_ref::<ureq::Error>())
            .is_some_and(|u| matches!(u, ureq::Error::Timeout(_)))
}

/// Sleeps in short slices; false if cancelled meanwhile.
fn sleep_unless_cancelled(delay: Duration, cancel: &Cancel) -> bool {
    let until = Instant::now() + delay;
    loop {
        if cancel.is_cancelled() {
            return false;
        }
        let now = Instant::now();
        if now >= until {
            return true;
        }
        std::thread::sleep((until - now).min(CANCEL_POLL));
    }
}
