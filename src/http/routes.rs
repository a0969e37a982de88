//! REST routing: path and method matching, CORS, bounded bodies, JSON
//! responses and the mapping of tool errors to status codes.
//!
//! Handlers only call the tool provider and the conversation store; the
//! WebSocket upgrade is handed to `ws`, and `/mcp` to `mcp_server`.

use super::{header, shape};
use crate::access::rate::retry_after_secs;
use crate::access::{Denied, Principal};
use crate::app::App;
use crate::mcp_server::McpHttpRequest;
use crate::tools::{self, Status, ToolError};
use serde_json::{Value, json};
use std::io::Read;
use std::sync::Arc;
use std::time::Instant;
use tiny_http::{Header, Method, Request, Response};

/// Largest request body accepted (413 beyond).
const MAX_BODY: usize = 1024 * 1024;

/// A response being built: status, JSON (or raw) body, extra headers.
struct Reply {
    status: u16,
    body: Vec<u8>,
    content_type: Option<&'static str>,
    headers: Vec<(String, String)>,
}

impl Reply {
    fn json(status: u16, value: &Value) -> Reply {
        Reply {
            status,
            body: value.to_string().into_bytes(),
            content_type: Some("application/json"),
            headers: vec![],
        }
    }

    fn detail(status: u16, message: &str) -> Reply {
        Reply::json(status, &json!({ "detail": message }))
    }

    fn empty(status: u16) -> Reply {
        Reply {
            status,
            body: vec![],
            content_type: None,
            headers: vec![],
        }
    }

    fn tool_error(e: &ToolError) -> Reply {
        match e {
            ToolError::Unavailable(m) => {
                Reply::detail(503, &format!("documentation service unavailable: {m}"))
            }
            ToolError::BadInput(m) => Reply::detail(400, m),
            ToolError::NotFound(m) => Reply::detail(404, m),
            ToolError::Failed(m) => Reply::detail(500, &format!("tool failed: {m}")),
        }
    }
}

/// Handles one request and writes one info log line for it.
pub fn handle(app: &Arc<App>, rq: Request) {
    let started = Instant::now();
    let method = rq.method().clone();
    // The query string is not logged: it is the one place a client could put
    // a credential.
    let path = rq.url().split('?').next().unwrap_or("").to_string();
    let status = dispatch(app, rq, &path);
    log::info!(
        "{method} {path} {status} {:.2}ms",
        started.elapsed().as_secs_f64() * 1000.0
    );
}

fn dispatch(app: &Arc<App>, mut rq: Request, path: &str) -> u16 {
    let origin = header(&rq, "Origin").map(str::to_string);
    let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let is_upgrade = matches!(segments.as_slice(), ["ws", "chat", _])
        && *rq.method() == Method::Get
        && header(&rq, "Upgrade").is_some();

    let caller = match gate(app, &rq, &segments, is_upgrade) {
        Ok(caller) => caller,
        Err(reply) => return respond(rq, reply, origin.as_deref(), app),
    };

    // The WebSocket upgrade answers for itself (101 or a refusal).
    if let (["ws", "chat", id], true) = (segments.as_slice(), is_upgrade) {
        return match (decode(id), caller) {
            (Ok(id), Some(caller)) if crate::conversations::valid_id(&id) => {
                super::ws::upgrade(app, rq, id, caller)
            }
            _ => respond(rq, Reply::detail(400, "invalid conversation id"), None, app),
        };
    }

    // A handler panic is a bug; the client still gets a JSON 500, and the
    // request (kept out here) is answered normally.
    let reply = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        if *rq.method() == Method::Options {
            preflight(&rq, &segments, app)
        } else {
            match read_body(&mut rq) {
                Err(reply) => reply,
                Ok(body) => route(app, &rq, &segments, &body, caller.as_ref()),
            }
        }
    }))
    .unwrap_or_else(|_| {
        log::error!("request handler panicked for {} {path}", rq.method());
        Reply::detail(500, "internal error; the request was not completed")
    });
    respond(rq, reply, origin.as_deref(), app)
}

/// The checks before any route: the Host rule (421), then the API token
/// (401), then the caller's rate limit (429). `Ok(None)` is a caller
/// without a valid token on a public route: a CORS preflight (browsers send
/// no credentials with it) or `/health`, which then shows its status only.
fn gate(
    app: &App,
    rq: &Request,
    segments: &[&str],
    is_upgrade: bool,
) -> Result<Option<Principal>, Reply> {
    let host = header(rq, "Host");
    if !app.access.host_allowed(host) {
        return Err(Reply::detail(
            421,
            &format!(
                "this service does not answer for the host {:?} (add it to ALLOWED_HOSTS if it is yours)",
                host.unwrap_or_default()
            ),
        ));
    }
    // The page must load without a token: it is what asks for one.
    let public = *rq.method() == Method::Options
        || matches!(segments, ["health"])
        || super::page::serves(segments);
    let query_token = is_upgrade
        .then(|| crate::access::query_value(rq.url(), "access_token"))
        .flatten();
    let caller = match app.access.admit(
        header(rq, "Authorization"),
        query_token.as_deref(),
        rq.remote_addr().map(|a| a.ip()),
    ) {
        Ok(caller) => caller,
        Err(Denied) if public => return Ok(None),
        Err(Denied) => {
            let mut reply = Reply::detail(
                401,
                "missing or invalid API token; send it as Authorization: Bearer <token>",
            );
            reply.headers.push((
                "WWW-Authenticate".into(),
                "Bearer realm=\"knowledge-vault\"".into(),
            ));
            return Err(reply);
        }
    };
    if let Err(wait) = app.request_limit.take(&caller.client) {
        let secs = retry_after_secs(wait);
        let mut reply = Reply::detail(
            429,
            &format!("too many requests (RATE_LIMIT_REQUESTS per minute); retry in {secs} s"),
        );
        reply.headers.push(("Retry-After".into(), secs.to_string()));
        return Err(reply);
    }
    Ok(Some(caller))
}

/// Reads the body, refusing more than [`MAX_BODY`] bytes with 413.
fn read_body(rq: &mut Request) -> Result<Vec<u8>, Reply> {
    let too_big = || Reply::detail(413, &format!("request body larger than {MAX_BODY} bytes"));
    if rq.body_length().is_some_and(|n| n > MAX_BODY) {
        return Err(too_big());
    }
    let mut body = Vec::new();
    match rq
        .as_reader()
        .take(MAX_BODY as u64 + 1)
        .read_to_end(&mut body)
    {
        Ok(_) if body.len() > MAX_BODY => Err(too_big()),
        Ok(_) => Ok(body),
        // A body that did not arrive in time (HTTP_BODY_TIMEOUT) is 408.
        Err(e) if e.kind() == std::io::ErrorKind::TimedOut => Err(Reply::detail(
            408,
            &format!("the request body did not arrive in time: {e}"),
        )),
        Err(e) => Err(Reply::detail(
            400,
            &format!("cannot read the request body: {e}"),
        )),
    }
}

/// Allowed methods of a known path, `None` for an unknown path.
fn allowed_methods(segments: &[&str]) -> Option<&'static str> {
    match segments {
        ["health"] | ["api", "repos"] | ["api", "repos", _, "tree"] => Some("GET"),
        ["api", "repos", _, "files", rest @ ..] if !rest.is_empty() => Some("GET"),
        ["api", "conversations"] => Some("GET, POST"),
        ["api", "conversations", _] => Some("DELETE"),
        ["api", "conversations", _, "messages"] => Some("GET"),
        ["ws", "chat", _] => Some("GET"),
        ["mcp"] => Some(crate::mcp_server::HTTP_METHODS),
        s if super::page::serves(s) => Some("GET"),
        _ => None,
    }
}

fn preflight(rq: &Request, segments: &[&str], app: &App) -> Reply {
    let Some(methods) = allowed_methods(segments) else {
        return Reply::detail(404, "not found");
    };
    let mut reply = Reply::empty(204);
    if header(rq, "Origin").is_some_and(|o| app.config.origin_allowed(o)) {
        let headers = header(rq, "Access-Control-Request-Headers")
            .unwrap_or("Content-Type, Authorization, Mcp-Session-Id, MCP-Protocol-Version")
            .to_string();
        reply.headers.push((
            "Access-Control-Allow-Methods".into(),
            format!("{methods}, OPTIONS"),
        ));
        reply
            .headers
            .push(("Access-Control-Allow-Headers".into(), headers));
        reply
            .headers
            .push(("Access-Control-Max-Age".into(), "600".into()));
    }
    reply
}

fn route(
    app: &Arc<App>,
    rq: &Request,
    segments: &[&str],
    body: &[u8],
    caller: Option<&Principal>,
) -> Reply {
    // `None` only reaches public routes; a conversation route needs a caller.
    let owner = caller.and_then(|c| c.owner.as_deref());
    let Some(allowed) = allowed_methods(segments) else {
        return Reply::detail(404, "not found");
    };
    let method = rq.method().as_str().to_string();
    if !allowed.split(", ").any(|m| m == method) {
        let mut reply = Reply::detail(405, &format!("method {method} not allowed; use {allowed}"));
        reply.headers.push(("Allow".into(), allowed.into()));
        return reply;
    }
    match segments {
        ["health"] if caller.is_none() => {
            // Tokens are on and none was given: the status, no details.
            let status = health(app)["status"].clone();
            Reply::json(200, &json!({ "status": status }))
        }
        ["health"] => Reply {
            status: 200,
            body: health_body(app).to_vec(),
            content_type: Some("application/json"),
            headers: vec![],
        },
        ["api", "repos"] => call_tool(app, tools::LIST_REPOSITORIES, json!({})),
        ["api", "repos", name, "tree"] => match repo_name(name) {
            Ok(repo) => call_tool(app, tools::LIST_REPO_DOCS, json!({ "repo": repo })),
            Err(r) => r,
        },
        ["api", "repos", name, "files", rest @ ..] => {
            let repo = match repo_name(name) {
                Ok(r) => r,
                Err(r) => return r,
            };
            let path = match decode(&rest.join("/")) {
                Ok(p) => p,
                Err(r) => return r,
            };
            if let Err(e) = tools::check_relative_path(&path) {
                return Reply::tool_error(&e);
            }
            call_tool(
                app,
                tools::GET_DOCUMENTATION,
                json!({ "repo": repo, "path": path }),
            )
        }
        ["api", "conversations", ..] if app.conversations.loading() => Reply::detail(
            503,
            "loading the conversations from disk; try again in a moment",
        ),
        ["api", "conversations"] if method == "GET" => {
            let limit =
                match crate::access::query_value(rq.url(), "limit").map(|v| v.parse::<usize>()) {
                    None => DEFAULT_LIST,
                    Some(Ok(n)) if n >= 1 => n.min(MAX_LIST),
                    Some(_) => return Reply::detail(400, "limit must be a whole number from 1"),
                };
            Reply::json(200, &json!(app.conversations.list(owner, limit)))
        }
        ["api", "conversations"] => match app.conversations.create(owner) {
            Ok(c) => Reply::json(200, &json!({ "id": c.id })),
            Err(full) => Reply::detail(503, &full.to_string()),
        },
        ["api", "conversations", id] => match conversation_id(id) {
            Ok(id) if app.conversations.delete(&id, owner) => {
                Reply::json(200, &json!({ "id": id, "deleted": true }))
            }
            Ok(_) => Reply::detail(404, "conversation not found"),
            Err(r) => r,
        },
        ["api", "conversations", id, "messages"] => match conversation_id(id) {
            Ok(id) => match app.conversations.get(&id, owner) {
                Some(c) => Reply::json(200, &c.messages_json()),
                None => Reply::detail(404, "conversation not found"),
            },
            Err(r) => r,
        },
        ["mcp"] => mcp(app, rq, body),
        ["ws", "chat", _] => Reply::detail(400, "expected a WebSocket upgrade request"),
        s if super::page::serves(s) => {
            let p = super::page::get(s, header(rq, "If-None-Match"));
            Reply {
                status: p.status,
                body: p.body.to_vec(),
                content_type: p.content_type,
                headers: p.headers,
            }
        }
        _ => Reply::detail(404, "not found"),
    }
}

fn mcp(app: &App, rq: &Request, body: &[u8]) -> Reply {
    let reply = app.mcp_server.handle_http(&McpHttpRequest {
        method: rq.method().as_str(),
        host: header(rq, "Host"),
        // The built-in page's own requests are not cross-origin.
        origin: header(rq, "Origin").filter(|o| !crate::access::same_origin(o, header(rq, "Host"))),
        accept: header(rq, "Accept"),
        content_type: header(rq, "Content-Type"),
        session_id: header(rq, "Mcp-Session-Id"),
        protocol_version: header(rq, "MCP-Protocol-Version"),
        body,
    });
    Reply {
        status: reply.status,
        body: reply.body,
        content_type: None,
        headers: reply.headers,
    }
}

fn repo_name(raw: &str) -> Result<String, Reply> {
    let name = decode(raw)?;
    if name.is_empty() || name == "." || name == ".." || name.contains(['/', '\\', '\0']) {
        return Err(Reply::detail(
            400,
            &format!("invalid repository name {name:?}"),
        ));
    }
    Ok(name)
}

/// Conversations listed when the client gives no `limit`, and the most.
const DEFAULT_LIST: usize = 50;
const MAX_LIST: usize = 200;

fn conversation_id(raw: &str) -> Result<String, Reply> {
    let id = decode(raw)?;
    if crate::conversations::valid_id(&id) {
        Ok(id)
    } else {
        Err(Reply::detail(400, "invalid conversation id"))
    }
}

/// Runs a tool and puts its value in the contract's shape.
fn call_tool(app: &App, name: &str, args: Value) -> Reply {
    if let Some(progress) = app.tools.starting() {
        return Reply::detail(503, &progress);
    }
    match app.tools.call(name, &args) {
        Ok(value) => {
            let value = match name {
                tools::LIST_REPOSITORIES => shape::repositories(value),
                tools::LIST_REPO_DOCS => shape::tree(value),
                tools::GET_DOCUMENTATION => {
                    let s = |k: &str| args[k].as_str().unwrap_or_default().to_string();
                    shape::document(value, &s("repo"), &s("path"))
                }
                _ => value,
            };
            Reply::json(200, &value)
        }
        Err(e) => Reply::tool_error(&e),
    }
}

/// How long a built `/health` body is served again; status changes show
/// within this time.
const HEALTH_TTL: std::time::Duration = std::time::Duration::from_millis(250);

fn health_body(app: &App) -> Arc<[u8]> {
    let mut cache = crate::sync::lock(&app.health_cache);
    if let Some((at, body)) = &*cache
        && at.elapsed() < HEALTH_TTL
    {
        return body.clone();
    }
    let body: Arc<[u8]> = health(app).to_string().into_bytes().into();
    *cache = Some((Instant::now(), body.clone()));
    body
}

fn health(app: &App) -> Value {
    // Not usable until the first index is built.
    let tools_ok = app.tools.status() == Status::Connected && app.tools.starting().is_none();
    let llm_ok = app.chat.model.is_some();
    let status = match (tools_ok, llm_ok) {
        (true, true) => "healthy",
        (false, false) => "unhealthy",
        _ => "degraded",
    };
    let mut mcp = json!({ "status": if tools_ok { "connected" } else { "disconnected" } });
    let mut sources = Value::Null;
    match app.tools.health_details() {
        Value::Object(details) => {
            for (k, v) in details {
                if k == "sources" {
                    sources = v;
                } else {
                    mcp[k] = v;
                }
            }
        }
        Value::Null => {}
        other => mcp["details"] = other,
    }
    if let Some(progress) = app.tools.starting() {
        mcp["state"] = json!("indexing");
        mcp["progress"] = json!(progress);
    }
    if app.config.mcp_server_url.is_none() && mcp.get("provider").is_none() {
        mcp["provider"] = json!("built-in");
    }
    let mut claude = json!({
        "status": if llm_ok { "available" } else { "unavailable" },
        "provider": app.config.llm_provider.as_str(),
        "model": app.chat.model.as_ref().map_or(app.config.claude_model.as_str(), |m| m.model()),
    });
    if let Some(budget) = &app.chat.budget {
        claude["daily_token_budget"] =
            json!({"limit": budget.limit(), "spent_today": budget.spent_today()});
        if budget.exhausted() {
            claude["mode"] = json!("offline");
            claude["reason"] = json!("today's CLAUDE_DAILY_TOKEN_BUDGET is spent");
        }
    }
    if !llm_ok {
        claude["mode"] = json!("offline");
        claude["reason"] =
            json!("ANTHROPIC_API_KEY is not set; the chat answers with search results only");
    }
    let mut out = json!({
        "status": status,
        "version": env!("CARGO_PKG_VERSION"),
        "services": { "mcp_server": mcp, "claude_api": claude },
        "conversations": app.conversations.health(),
    });
    if !sources.is_null() {
        out["sources"] = sources;
    }
    out
}

/// Percent-decodes one path parameter; invalid escapes or UTF-8 give 400.
fn decode(raw: &str) -> Result<String, Reply> {
    let bad = || Reply::detail(400, "invalid percent-encoding in the path");
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3).ok_or_else(bad)?;
            let hex = std::str::from_utf8(hex).map_err(|_| bad())?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| bad())?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| bad())
}

/// Answers `{"detail": ...}` with `status` (used by the WebSocket handshake
/// for its refusals, which have no CORS to add: browsers send no preflight).
pub(crate) fn refuse(app: &App, rq: Request, status: u16, detail: &str) -> u16 {
    refuse_with(app, rq, status, detail, &[])
}

/// [`refuse`] with extra headers.
pub(crate) fn refuse_with(
    app: &App,
    rq: Request,
    status: u16,
    detail: &str,
    headers: &[(&str, &str)],
) -> u16 {
    let mut reply = Reply::detail(status, detail);
    for (k, v) in headers {
        reply.headers.push((k.to_string(), v.to_string()));
    }
    respond(rq, reply, None, app)
}

fn respond(rq: Request, reply: Reply, origin: Option<&str>, app: &App) -> u16 {
    let status = reply.status;
    let mut resp = Response::from_data(reply.body).with_status_code(status);
    let mut add = |name: &str, value: &str| {
        if let Ok(h) = Header::from_bytes(name.as_bytes(), value.as_bytes()) {
            resp.add_header(h);
        }
    };
    if let Some(ct) = reply.content_type {
        add("Content-Type", ct);
    }
    for (k, v) in &reply.headers {
        add(k, v);
    }
    if let Some(origin) = origin
        && app.config.origin_allowed(origin)
    {
        add("Access-Control-Allow-Origin", origin);
        add("Access-Control-Allow-Credentials", "true");
        add("Vary", "Origin");
    }
    if let Err(e) = rq.respond(resp) {
        log::debug!("client went away before the response was written: {e}");
    }
    status
}

#[cfg(test)]
mod tests {
    use super::decode;

    #[test]
    fn percent_decoding() {
        assert_eq!(decode("a%20b%2Fc").ok().unwrap(), "a b/c");
        assert_eq!(decode("%E6%97%A5").ok().unwrap(), "日");
        assert!(decode("%zz").is_err());
        assert!(decode("%4").is_err());
        assert!(decode("%ff").is_err());
        assert_eq!(decode("a%00b").ok().unwrap(), "a\0b");
    }
}
