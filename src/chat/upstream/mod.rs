//! What every streaming model client shares: one POST with ureq, the answer
//! read line by line as Server-Sent Events and handed to the provider's
//! assembler, the SDKs' retries before any output, an idle timeout between
//! events, and prompt cancellation.
//!
//! A provider supplies its [`Wire`]: where to send, which headers, how to
//! word an HTTP error, and an [`Assemble`]r that turns its events into a
//! [`ModelReply`]. Retry and error wording rules are in `policy`.
//!
//! Each [`stream`] call builds its own ureq agent so that a cancel
//! (`conversations::live::Cancel`) can shut down exactly that request's
//! socket (clones of an agent share one pool, and `shutdown` closes all of
//! it). The cost is one rustls client configuration per call for `https`
//! (ureq caches it per agent), well under the latency of the request itself.

pub(crate) mod policy;

use crate::chat::model::{LanguageModel, ModelError, ModelReply, ModelRequest};
use crate::config::{LlmProvider, Secret};
use crate::conversations::live::Cancel;
use crate::net;
use crate::sse::{SseEvent, SseReader};
use std::io::{BufReader, Read};
use std::time::{Duration, Instant, SystemTime};

/// One buffer between the socket and the SSE line reader; events are small.
const READ_BUFFER: usize = 8 * 1024;
/// ureq's own buffers, per request: its defaults (128 KiB each way, zeroed
/// when the connection opens) were most of the memory of a running chat.
/// The input buffer must hold the whole response head, hence the same cap
/// on headers; the providers' are a few KiB. Larger bodies just take more writes.
const UREQ_BUFFER: usize = 16 * 1024;
/// A single SSE line (one event's `data`); deltas are far smaller, this only
/// stops a broken server from growing memory without bound.
const MAX_SSE_LINE: usize = 8 * 1024 * 1024;
/// An error body is read for its message only.
const MAX_ERROR_BODY: u64 = 64 * 1024;
/// How often a backoff sleep looks at the cancel flag.
const CANCEL_POLL: Duration = Duration::from_millis(10);

/// Where a provider's requests go, and how long they may take.
#[derive(Debug, Clone)]
pub(crate) struct Endpoint {
    pub provider: LlmProvider,
    /// The model asked for, as `/health` reports it.
    pub model: String,
    /// Who answers, in messages: "Claude", "the OpenAI-compatible server".
    pub label: &'static str,
    /// The configured base URL, as shown in messages.
    pub base_url: String,
    /// The URL posted to.
    pub url: String,
    /// Removed from every message, in case a proxy echoes request headers.
    pub key: Option<Secret>,
    /// Longest silence allowed between two reads (not a cap on the stream).
    pub idle_timeout: Duration,
    pub connect_timeout: Duration,
    /// The header that names the request in the provider's logs.
    pub request_id_header: &'static str,
    /// How the provider's HTTP errors are worded for the user.
    pub error_words: &'static policy::ErrorWords,
}

/// A provider's wire format, as far as the shared client needs it. Every
/// `Wire` is a [`LanguageModel`].
pub(crate) trait Wire: Send + Sync {
    type Assembler: Assemble + Default;

    fn endpoint(&self) -> &Endpoint;

    /// The request body for `request`, serialised.
    fn body(&self, request: &ModelRequest<'_>) -> Vec<u8>;

    /// Headers besides `content-type` and `accept`: authentication, versions.
    fn headers(&self) -> Vec<(&'static str, &str)>;
}

/// Turns a provider's SSE events into the reply, one event at a time.
pub(crate) trait Assemble {
    fn handle(&mut self, event: &SseEvent, on_text: &mut dyn FnMut(&str)) -> Flow;

    /// True once any text was handed to `on_text`: a retry would repeat output.
    fn forwarded(&self) -> bool;

    /// True once anything of the answer arrived (a block or forwarded text).
    fn has_output(&self) -> bool;

    /// True when the reply is complete even though the stream ends without
    /// its end marker (a server that does not send one).
    fn complete_without_end(&self) -> bool {
        false
    }

    /// The reply so far.
    fn finish(self) -> ModelReply;
}

/// Feeds `events` to a fresh assembler until it stops: the reply, the text
/// handed out, and the last flow (the assemblers' unit tests).
#[cfg(test)]
pub(crate) fn assemble_all<A: Assemble + Default>(
    events: &[SseEvent],
) -> (ModelReply, Vec<String>, Flow) {
    let mut a = A::default();
    let mut texts = vec![];
    let mut last = Flow::Continue;
    for e in events {
        last = a.handle(e, &mut |t| texts.push(t.to_string()));
        if last != Flow::Continue {
            break;
        }
    }
    (a.finish(), texts, last)
}

/// What the client should do after an event.
#[derive(Debug, PartialEq)]
pub(crate) enum Flow {
    Continue,
    /// The reply is complete.
    Done,
    /// The server reported an error in the stream, which ends here.
    /// `retryable`: it would have been a retryable status without streaming.
    ApiError {
        message: String,
        retryable: bool,
    },
    /// A known event whose data could not be understood.
    Malformed(String),
}

impl<W: Wire> LanguageModel for W {
    fn provider(&self) -> LlmProvider {
        self.endpoint().provider
    }

    fn model(&self) -> &str {
        &self.endpoint().model
    }

    /// See [`stream`] for the retry rules.
    fn stream(
        &self,
        request: &ModelRequest<'_>,
        cancel: &Cancel,
        on_text: &mut dyn FnMut(&str),
    ) -> Result<ModelReply, ModelError> {
        stream(self, &self.body(request), cancel, on_text)
    }
}

/// Why one attempt failed, and whether another may be made.
struct Failure {
    error: ModelError,
    /// `None`: final. `Some(delay)`: retryable, after the server's delay if it gave one.
    retry: Option<Option<Duration>>,
}

impl Failure {
    fn fatal(error: ModelError) -> Failure {
        Failure { error, retry: None }
    }
}

/// Streams one request with `body`. `on_text` gets every text delta as it
/// arrives.
///
/// Retries (up to 2, on connection errors, 408, 409, 429, 5xx and 529,
/// honouring `x-should-retry`, `retry-after-ms` and `retry-after`) happen
/// only while nothing was forwarded to `on_text`, so the user never sees
/// text twice. For the same reason an error in the stream that would have
/// been a retryable status, and a connection that breaks after the 200, are
/// retried when no text was forwarded yet. An idle timeout is not retried:
/// the user has already waited that long.
pub(crate) fn stream<W: Wire>(
    wire: &W,
    body: &[u8],
    cancel: &Cancel,
    on_text: &mut dyn FnMut(&str),
) -> Result<ModelReply, ModelError> {
    let agent = agent(wire.endpoint());
    // A cancel shuts exactly this request's agent down, which closes the
    // upstream socket at once.
    let closing = agent.clone();
    cancel.on_cancel(Box::new(move || closing.shutdown()));
    let result = run(wire, &agent, body, cancel, on_text);
    cancel.clear_hook();
    result.map_err(|e| scrub(wire.endpoint(), e))
}

fn cancelled_empty() -> ModelError {
    ModelError::Cancelled {
        partial: Box::default(),
    }
}

fn run<W: Wire>(
    wire: &W,
    agent: &ureq::Agent,
    body: &[u8],
    cancel: &Cancel,
    on_text: &mut dyn FnMut(&str),
) -> Result<ModelReply, ModelError> {
    let label = wire.endpoint().label;
    let mut retries = 0;
    loop {
        // Also catches a cancel that came before the agent was registered.
        if cancel.is_cancelled() {
            return Err(cancelled_empty());
        }
        let failure = match attempt(wire, agent, body, cancel, on_text) {
            Ok(reply) => return Ok(reply),
            Err(f) => f,
        };
        let delay = match failure.retry {
            Some(server_delay) if retries < policy::MAX_RETRIES => {
                server_delay.unwrap_or_else(|| net::backoff(retries, net::jitter()))
            }
            _ => {
                return Err(match failure.error {
                    ModelError::Http { status, message } if retries > 0 => ModelError::Http {
                        status,
                        message: format!("{message} (gave up after {} attempts)", retries + 1),
                    },
                    e => e,
                });
            }
        };
        retries += 1;
        log::warn!(
            "{label} request failed: {}; retry {retries} of {} in {} ms",
            scrub(wire.endpoint(), failure.error),
            policy::MAX_RETRIES,
            delay.as_millis()
        );
        if !sleep_unless_cancelled(delay, cancel) {
            return Err(cancelled_empty());
        }
    }
}

fn attempt<W: Wire>(
    wire: &W,
    agent: &ureq::Agent,
    body: &[u8],
    cancel: &Cancel,
    on_text: &mut dyn FnMut(&str),
) -> Result<ModelReply, Failure> {
    let endpoint = wire.endpoint();
    let mut request = agent.post(&endpoint.url);
    for (name, value) in wire.headers() {
        request = request.header(name, value);
    }
    let sent = request
        .header("content-type", "application/json")
        .header("accept", "application/json")
        .send(body);
    let response = match sent {
        Ok(r) => r,
        Err(_) if cancel.is_cancelled() => return Err(Failure::fatal(cancelled_empty())),
        Err(e) => return Err(request_failure(endpoint, e)),
    };
    let status = response.status().as_u16();
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let label = endpoint.label;
    let request_id = header(wire.endpoint().request_id_header).unwrap_or_default();
    log::debug!("{label} answered {status} (request id {request_id:?})");
    if !(200..300).contains(&status) {
        let retryable = policy::status_is_retryable(status, header("x-should-retry").as_deref());
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
        let message = policy::http_error_message(wire.endpoint().error_words, status, &text);
        log::warn!(
            "{label} answered {status} (request id {request_id:?}): {}",
            redact(endpoint, message.clone())
        );
        return Err(Failure {
            error: ModelError::Http { status, message },
            retry: retryable.then_some(delay),
        });
    }
    let reader = BufReader::with_capacity(READ_BUFFER, response.into_body().into_reader());
    read_stream(
        endpoint,
        W::Assembler::default(),
        SseReader::with_max_line(reader, MAX_SSE_LINE),
        cancel,
        on_text,
    )
}

fn read_stream<A: Assemble, R: std::io::BufRead>(
    endpoint: &Endpoint,
    mut asm: A,
    mut sse: SseReader<R>,
    cancel: &Cancel,
    on_text: &mut dyn FnMut(&str),
) -> Result<ModelReply, Failure> {
    let label = endpoint.label;
    loop {
        let next = sse.next_event();
        // A cancel shuts the socket down, so the read above fails or ends at
        // once; report it as what it is.
        if cancel.is_cancelled() {
            return Err(cancelled(asm));
        }
        let event = match next {
            Ok(Some(event)) => event,
            Ok(None) if asm.complete_without_end() => return Ok(asm.finish()),
            Ok(None) => {
                let msg =
                    format!("the connection to {label} closed before the answer was complete");
                return Err(broken(asm, msg, true));
            }
            Err(e) if is_timeout(&e) => {
                let msg = format!(
                    "{label} sent nothing for {} s (idle timeout); the answer is incomplete",
                    endpoint.idle_timeout.as_secs_f32()
                );
                return Err(broken(asm, msg, false));
            }
            Err(e) => {
                let msg = format!("the connection to {label} broke: {e}");
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
            Flow::ApiError { message, retryable } => {
                let retry = (retryable && !asm.forwarded()).then_some(None);
                return Err(Failure {
                    error: ModelError::Interrupted {
                        message,
                        partial: Box::new(asm.finish()),
                    },
                    retry,
                });
            }
            Flow::Malformed(why) => {
                let msg = format!("{label} sent an invalid stream: {why}");
                return Err(broken(asm, msg, false));
            }
        }
    }
}

/// A failure before any response: connect, DNS, TLS, sending the request or
/// waiting for the status line.
fn request_failure(endpoint: &Endpoint, e: ureq::Error) -> Failure {
    use ureq::Timeout as T;
    let (label, base) = (endpoint.label, crate::net::display_url(&endpoint.base_url));
    let (message, retry) = match e {
        ureq::Error::Timeout(T::Connect | T::Resolve) => (
            format!(
                "could not connect to {label} at {base} within {} s",
                endpoint.connect_timeout.as_secs_f32()
            ),
            true,
        ),
        ureq::Error::Timeout(_) => (
            format!(
                "{label} at {base} did not answer within {} s",
                endpoint.idle_timeout.as_secs_f32()
            ),
            false,
        ),
        ureq::Error::HostNotFound => (format!("cannot resolve the host of {base}"), true),
        ureq::Error::Io(io) => (format!("cannot reach {label} at {base}: {io}"), true),
        ureq::Error::ConnectionFailed => (format!("cannot connect to {label} at {base}"), true),
        other => (
            format!("request to {label} at {base} failed: {other}"),
            false,
        ),
    };
    Failure {
        error: ModelError::Connection(message),
        retry: retry.then_some(None),
    }
}

/// A fresh agent: statuses as responses (to read error bodies), a connect
/// timeout, and a per-read timeout that restarts with every read, so a long
/// answer is fine as long as events keep coming. No global, per-call or body
/// timeouts: in ureq those cap the whole stream.
fn agent(endpoint: &Endpoint) -> ureq::Agent {
    let timeout = Some(endpoint.connect_timeout);
    // With a resolve timeout ureq runs every lookup on a new thread (2 MiB
    // stack), even for an IP address, where there is nothing to wait for.
    let resolve_timeout = if net::host_is_ip(&endpoint.url) {
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
        .timeout_per_read(Some(endpoint.idle_timeout))
        .timeout_per_write(Some(endpoint.idle_timeout))
        .input_buffer_size(UREQ_BUFFER)
        .output_buffer_size(UREQ_BUFFER)
        .max_response_header_size(UREQ_BUFFER);
    builder
        .proxy(net::proxy_for(&endpoint.url))
        .build()
        .new_agent()
}

fn redact(endpoint: &Endpoint, message: String) -> String {
    match &endpoint.key {
        Some(key) => policy::redact(message, key.expose()),
        None => message,
    }
}

fn scrub(endpoint: &Endpoint, e: ModelError) -> ModelError {
    match e {
        ModelError::Http { status, message } => ModelError::Http {
            status,
            message: redact(endpoint, message),
        },
        ModelError::Connection(m) => ModelError::Connection(redact(endpoint, m)),
        ModelError::Interrupted { message, partial } => ModelError::Interrupted {
            message: redact(endpoint, message),
            partial,
        },
        e @ ModelError::Cancelled { .. } => e,
    }
}

fn cancelled<A: Assemble>(asm: A) -> Failure {
    Failure::fatal(ModelError::Cancelled {
        partial: Box::new(asm.finish()),
    })
}

/// The stream failed after the 200. Retryable only if no text was shown.
fn broken<A: Assemble>(asm: A, message: String, retryable: bool) -> Failure {
    let retry = (retryable && !asm.forwarded()).then_some(None);
    let error = if asm.has_output() {
        ModelError::Interrupted {
            message,
            partial: Box::new(asm.finish()),
        }
    } else {
        ModelError::Connection(message)
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
