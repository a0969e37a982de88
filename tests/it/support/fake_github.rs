//! A fake GitHub REST API for offline tests: the shapes and
//! headers GitHub sends (repository lists with `Link` pagination through
//! `/organizations/{id}/repos`, git trees with `truncated`, base64 blobs
//! wrapped at 60 characters, weak ETags with 304s that cost no quota,
//! `x-ratelimit-*` headers, JSON error bodies), configurable per test,
//! recording every request. Start with [`FakeGithub::start`]; mutate the
//! organization between syncs with [`FakeGithub::with`].
//!
//! HTTP/1.1 with keep-alive on `std::net::TcpListener`, one thread per
//! connection. Not tiny_http: its 0.12 TaskPool can lose the wake-up for a
//! connection that arrives while another is being handed to a thread, and
//! the new connection then waits until some keep-alive connection ends (seen
//! as 120 s client timeouts); it also drops a `Connection: close` response
//! header, so the fake could not end connections to avoid it.
#![allow(dead_code)]

use knowledge_vault::docs::github::git_blob_sha;
use std::collections::{BTreeMap, BTreeSet};
use std::hash::{Hash, Hasher};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A response header.
type Header = (String, String);

/// A request as read from the socket.
struct Incoming {
    target: String,
    headers: Vec<Header>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    OrgRepos,
    UserRepos,
    Tree,
    Blob,
    Other,
}

#[derive(Clone, Debug)]
pub struct FakeRepo {
    pub id: u64,
    pub name: String,
    pub description: Option<String>,
    pub archived: bool,
    pub fork: bool,
    pub private: bool,
    pub default_branch: String,
    /// The branch the listing names does not exist (tree answers 404).
    pub branch_missing: bool,
    /// No commits at all (tree answers 409).
    pub empty: bool,
    pub files: BTreeMap<String, Vec<u8>>,
    /// path -> link target (mode 120000).
    pub symlinks: BTreeMap<String, String>,
}

impl FakeRepo {
    pub fn new(name: &str) -> FakeRepo {
        FakeRepo {
            id: 0,
            name: name.to_string(),
            description: None,
            archived: false,
            fork: false,
            private: false,
            default_branch: "main".into(),
            branch_missing: false,
            empty: false,
            files: BTreeMap::new(),
            symlinks: BTreeMap::new(),
        }
    }
    pub fn file(mut self, path: &str, content: &str) -> FakeRepo {
        self.files.insert(path.into(), content.as_bytes().to_vec());
        self
    }
    pub fn bytes(mut self, path: &str, content: Vec<u8>) -> FakeRepo {
        self.files.insert(path.into(), content);
        self
    }
    pub fn symlink(mut self, path: &str, target: &str) -> FakeRepo {
        self.symlinks.insert(path.into(), target.into());
        self
    }
    pub fn description(mut self, d: &str) -> FakeRepo {
        self.description = Some(d.into());
        self
    }
    pub fn archived(mut self) -> FakeRepo {
        self.archived = true;
        self
    }
    pub fn fork(mut self) -> FakeRepo {
        self.fork = true;
        self
    }
    pub fn private(mut self) -> FakeRepo {
        self.private = true;
        self
    }
    pub fn empty(mut self) -> FakeRepo {
        self.empty = true;
        self
    }
    pub fn branch(mut self, b: &str) -> FakeRepo {
        self.default_branch = b.into();
        self
    }
    pub fn branch_missing(mut self) -> FakeRepo {
        self.branch_missing = true;
        self
    }
}

#[derive(Clone, Debug)]
pub enum Reply {
    /// A JSON error body with this status.
    Status(u16),
    /// An HTML error page, as a proxy in front of GitHub sends.
    Html(u16),
    /// A secondary rate limit: 403 or 429 with `retry-after`.
    SecondaryLimit { status: u16, retry_after: u64 },
}

/// Answers the next `times` requests of `kind` (whose URL contains
/// `path_contains`, if set) with `reply` instead of the real answer.
#[derive(Clone, Debug)]
pub struct Fault {
    pub kind: Kind,
    pub path_contains: Option<String>,
    pub times: usize,
    pub reply: Reply,
}

#[derive(Clone, Debug)]
pub struct Record {
    pub kind: Kind,
    pub url: String,
    pub status: u16,
    pub authorization: Option<String>,
    pub if_none_match: Option<String>,
    pub accept: Option<String>,
    pub api_version: Option<String>,
    pub user_agent: Option<String>,
}

pub struct FakeState {
    pub owner: String,
    /// The owner is a user account: `/orgs/{owner}` answers 404.
    pub is_user: bool,
    pub repos: Vec<FakeRepo>,
    /// The page size cap (GitHub's is 100), to get several pages cheaply.
    pub page_size: usize,
    /// Recursive trees with more entries than this come back truncated.
    pub truncate_over: Option<usize>,
    /// The one valid token; `None` accepts any.
    pub token: Option<String>,
    pub rate_limit: u64,
    pub rate_window_secs: u64,
    pub faults: Vec<Fault>,
    /// `/api/v3` for GitHub Enterprise Server.
    pub prefix: String,
    /// The `html_url` host (`https://github.com`).
    pub web: String,
    pub records: Vec<Record>,
    remaining: u64,
    reset: u64,
    base: String,
}

impl FakeState {
    pub fn new(owner: &str) -> FakeState {
        FakeState {
            owner: owner.into(),
            is_user: false,
            repos: Vec::new(),
            page_size: 100,
            truncate_over: None,
            token: None,
            rate_limit: 5000,
            rate_window_secs: 3600,
            faults: Vec::new(),
            prefix: String::new(),
            web: "https://github.com".into(),
            records: Vec::new(),
            remaining: 0,
            reset: 0,
            base: String::new(),
        }
    }
    pub fn repo(mut self, r: FakeRepo) -> FakeState {
        self.repos.push(r);
        self
    }
    pub fn repo_mut(&mut self, name: &str) -> &mut FakeRepo {
        self.repos
            .iter_mut()
            .find(|r| r.name == name)
            .unwrap_or_else(|| panic!("no fake repo {name}"))
    }
    pub fn fault(&mut self, kind: Kind, path_contains: Option<&str>, times: usize, reply: Reply) {
        self.faults.push(Fault {
            kind,
            path_contains: path_contains.map(String::from),
            times,
            reply,
        });
    }
}

pub struct FakeGithub {
    state: Arc<Mutex<FakeState>>,
    stop: Arc<AtomicBool>,
    addr: std::net::SocketAddr,
    thread: Option<JoinHandle<()>>,
    /// The API base URL (with the prefix).
    pub url: String,
}

impl FakeGithub {
    /// Starts on 127.0.0.1 port 0; returns the API base URL and the handle
    /// (the server stops when the handle is dropped).
    pub fn start(mut state: FakeState) -> (String, FakeGithub) {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind fake GitHub");
        let addr = listener.local_addr().unwrap();
        state.base = format!("http://127.0.0.1:{}", addr.port());
        for (i, r) in state.repos.iter_mut().enumerate() {
            if r.id == 0 {
                r.id = 1000 + i as u64;
            }
        }
        let url = format!("{}{}", state.base, state.prefix);
        let state = Arc::new(Mutex::new(state));
        let stop = Arc::new(AtomicBool::new(false));
        let (s, halt) = (state.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if halt.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let s = s.clone();
                std::thread::spawn(move || serve(stream, &s));
            }
        });
        (
            url.clone(),
            FakeGithub {
                state,
                stop,
                addr,
                thread: Some(thread),
                url,
            },
        )
    }

    pub fn with<R>(&self, f: impl FnOnce(&mut FakeState) -> R) -> R {
        let mut s = self.state.lock().unwrap();
        // New repositories get ids like GitHub's.
        let r = f(&mut s);
        let next = s.repos.iter().map(|r| r.id).max().unwrap_or(1000) + 1;
        for (i, repo) in s.repos.iter_mut().enumerate() {
            if repo.id == 0 {
                repo.id = next + i as u64;
            }
        }
        r
    }

    pub fn records(&self) -> Vec<Record> {
        self.state.lock().unwrap().records.clone()
    }

    pub fn clear_records(&self) {
        self.state.lock().unwrap().records.clear();
    }

    pub fn count(&self, kind: Kind) -> usize {
        self.records().iter().filter(|r| r.kind == kind).count()
    }

    pub fn count_status(&self, kind: Kind, status: u16) -> usize {
        self.records()
            .iter()
            .filter(|r| r.kind == kind && r.status == status)
            .count()
    }
}

impl Drop for FakeGithub {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One connection: requests in turn until the client closes it (or is
/// idle for 10 s).
fn serve(stream: TcpStream, state: &Mutex<FakeState>) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let Ok(read_half) = stream.try_clone() else {
        return;
    };
    let mut reader = BufReader::new(read_half);
    let mut writer = stream;
    loop {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let mut parts = line.split_whitespace();
        let (Some(_method), Some(target)) = (parts.next(), parts.next()) else {
            return;
        };
        let mut headers = Vec::new();
        loop {
            let mut h = String::new();
            match reader.read_line(&mut h) {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                headers.push((k.trim().to_string(), v.trim().to_string()));
            }
        }
        let incoming = Incoming {
            target: target.to_string(),
            headers,
        };
        let length: u64 = request_header(&incoming, "content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        if length > 0
            && std::io::copy(&mut (&mut reader).take(length), &mut std::io::sink()).is_err()
        {
            return;
        }
        let (status, headers, body) = handle(state, &incoming);
        let mut out = format!("HTTP/1.1 {status} {}\r\n", reason(status));
        for (k, v) in &headers {
            out.push_str(&format!("{k}: {v}\r\n"));
        }
        if status != 304 {
            out.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        out.push_str("\r\n");
        let mut bytes = out.into_bytes();
        if status != 304 {
            bytes.extend_from_slice(&body);
        }
        if writer
            .write_all(&bytes)
            .and_then(|_| writer.flush())
            .is_err()
        {
            return;
        }
        let close = request_header(&incoming, "connection")
            .is_some_and(|v| v.eq_ignore_ascii_case("close"));
        if close {
            return;
        }
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        304 => "Not Modified",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        409 => "Conflict",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        _ => "Unknown",
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn header(name: &str, value: &str) -> Header {
    (name.to_string(), value.to_string())
}

fn request_header(request: &Incoming, name: &str) -> Option<String> {
    request
        .headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.clone())
}

fn json_error(status: u16, message: &str, doc: &str) -> (u16, Vec<u8>, Vec<Header>) {
    let body = serde_json::json!({
        "message": message,
        "documentation_url": format!("https://docs.github.com/rest{doc}"),
        "status": status.to_string(),
    });
    (status, body.to_string().into_bytes(), Vec::new())
}

fn handle(state: &Mutex<FakeState>, request: &Incoming) -> (u16, Vec<Header>, Vec<u8>) {
    let mut s = state.lock().unwrap();
    let raw = request.target.clone();
    let (path, query) = raw.split_once('?').unwrap_or((raw.as_str(), ""));
    let path = path
        .strip_prefix(s.prefix.as_str())
        .unwrap_or(path)
        .to_string();
    let query: BTreeMap<String, String> = query
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let kind = classify(&path);
    let authorization = request_header(request, "authorization");
    let if_none_match = request_header(request, "if-none-match");

    // Quota window.
    let t = now();
    if t >= s.reset {
        s.remaining = s.rate_limit;
        s.reset = t + s.rate_window_secs;
    }
    let authed = match (&s.token, &authorization) {
        (Some(good), Some(a)) => {
            if a != &format!("Bearer {good}") && a != &format!("token {good}") {
                Err(())
            } else {
                Ok(true)
            }
        }
        (None, Some(_)) => Ok(true),
        (_, None) => Ok(false),
    };

    let fault = s.faults.iter_mut().find(|f| {
        f.times > 0
            && f.kind == kind
            && f.path_contains
                .as_ref()
                .is_none_or(|p| raw.contains(p.as_str()))
    });
    let (status, body, mut headers) = if authed.is_err() {
        json_error(401, "Bad credentials", "")
    } else if let Some(f) = fault {
        f.times -= 1;
        match f.reply.clone() {
            Reply::Status(code) => json_error(code, "Server Error", ""),
            Reply::Html(code) => (
                code,
                b"<html><body><h1>502 Bad Gateway</h1></body></html>".to_vec(),
                vec![header("Content-Type", "text/html")],
            ),
            Reply::SecondaryLimit {
                status,
                retry_after,
            } => {
                let (c, b, _) = json_error(
                    status,
                    "You have exceeded a secondary rate limit. Please wait a few minutes before \
                     you try again.",
                    "/overview/rate-limits-for-the-rest-api#about-secondary-rate-limits",
                );
                (c, b, vec![header("retry-after", &retry_after.to_string())])
            }
        }
    } else if s.remaining == 0 {
        json_error(
            403,
            "API rate limit exceeded for user ID 1.",
            "/overview/rate-limits-for-the-rest-api",
        )
    } else {
        route(&s, &path, &query, authed == Ok(true))
    };

    let mut status = status;
    let is_json = !headers
        .iter()
        .any(|(k, _)| k.eq_ignore_ascii_case("Content-Type"));
    if (200..300).contains(&status) {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        body.hash(&mut h);
        let etag = format!("W/\"{:016x}{:08x}\"", h.finish(), body.len());
        if if_none_match.as_deref() == Some(etag.as_str()) {
            status = 304;
        }
        headers.push(header("ETag", &etag));
    }
    if status != 304 && s.remaining > 0 {
        s.remaining -= 1;
    }
    let (limit, remaining, reset) = (s.rate_limit, s.remaining, s.reset);
    s.records.push(Record {
        kind,
        url: raw.clone(),
        status,
        authorization,
        if_none_match,
        accept: request_header(request, "accept"),
        api_version: request_header(request, "x-github-api-version"),
        user_agent: request_header(request, "user-agent"),
    });
    drop(s);

    let mut out = Vec::new();
    if is_json {
        out.push(header("Content-Type", "application/json; charset=utf-8"));
    }
    out.extend([
        header("Server", "github.com"),
        header("X-GitHub-Media-Type", "github.v3; format=json"),
        header("X-GitHub-Api-Version-Selected", "2022-11-28"),
        header("x-ratelimit-limit", &limit.to_string()),
        header("x-ratelimit-remaining", &remaining.to_string()),
        header("x-ratelimit-reset", &reset.to_string()),
        header("x-ratelimit-used", &(limit - remaining).to_string()),
        header("x-ratelimit-resource", "core"),
        header("X-GitHub-Request-Id", "C0DE:1234:5678:9ABC:DEF0"),
    ]);
    out.extend(headers);
    (status, out, body)
}

fn classify(path: &str) -> Kind {
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    match parts.as_slice() {
        ["orgs", _, "repos"] | ["organizations", _, "repos"] => Kind::OrgRepos,
        ["users", _, "repos"] | ["user", _, "repos"] => Kind::UserRepos,
        ["repos", _, _, "git", "trees", ..] => Kind::Tree,
        ["repos", _, _, "git", "blobs", _] => Kind::Blob,
        _ => Kind::Other,
    }
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn route(
    s: &FakeState,
    path: &str,
    query: &BTreeMap<String, String>,
    authed: bool,
) -> (u16, Vec<u8>, Vec<Header>) {
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let api = format!("{}{}", s.base, s.prefix);
    let owner_ok = |o: &str| o.eq_ignore_ascii_case(&s.owner);
    match parts.as_slice() {
        ["orgs", o, "repos"] if owner_ok(o) && !s.is_user => {
            list(s, &format!("{api}/organizations/1/repos"), query, authed)
        }
        ["organizations", "1", "repos"] if !s.is_user => {
            list(s, &format!("{api}/organizations/1/repos"), query, authed)
        }
        ["users", o, "repos"] if owner_ok(o) => {
            list(s, &format!("{api}/user/1/repos"), query, authed)
        }
        ["user", "1", "repos"] => list(s, &format!("{api}/user/1/repos"), query, authed),
        ["repos", o, r, "git", "trees", rest @ ..] if owner_ok(o) => {
            let Some(repo) = visible(s, r, authed) else {
                return json_error(404, "Not Found", "/git/trees#get-a-tree");
            };
            let reference = percent_decode(&rest.join("/"));
            tree(s, repo, &reference, query.get("recursive").is_some())
        }
        ["repos", o, r, "git", "blobs", sha] if owner_ok(o) => {
            let Some(repo) = visible(s, r, authed) else {
                return json_error(404, "Not Found", "/git/blobs#get-a-blob");
            };
            let Some(content) = repo.files.values().find(|c| git_blob_sha(c) == *sha) else {
                return json_error(404, "Not Found", "/git/blobs#get-a-blob");
            };
            let body = serde_json::json!({
                "sha": sha,
                "node_id": "B_kwDOAAAAAA",
                "size": content.len(),
                "url": format!("{api}/repos/{}/{}/git/blobs/{sha}", s.owner, repo.name),
                "content": base64_wrapped(content),
                "encoding": "base64",
            });
            (200, body.to_string().into_bytes(), Vec::new())
        }
        _ => json_error(404, "Not Found", ""),
    }
}

fn visible<'a>(s: &'a FakeState, name: &str, authed: bool) -> Option<&'a FakeRepo> {
    s.repos
        .iter()
        .find(|r| r.name.eq_ignore_ascii_case(name) && (authed || !r.private))
}

fn list(
    s: &FakeState,
    link_base: &str,
    query: &BTreeMap<String, String>,
    authed: bool,
) -> (u16, Vec<u8>, Vec<Header>) {
    let per_page: usize = query
        .get("per_page")
        .and_then(|v| v.parse().ok())
        .unwrap_or(30)
        .clamp(1, 100)
        .min(s.page_size);
    let page: usize = query
        .get("page")
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
        .max(1);
    let kind = query.get("type").cloned().unwrap_or_else(|| "all".into());
    let repos: Vec<&FakeRepo> = s.repos.iter().filter(|r| authed || !r.private).collect();
    let last = repos.len().div_ceil(per_page).max(1);
    let items: Vec<serde_json::Value> = repos
        .iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .map(|r| repo_json(s, r))
        .collect();
    let link = |p: usize, rel: &str| {
        format!("<{link_base}?per_page={per_page}&type={kind}&page={p}>; rel=\"{rel}\"")
    };
    let mut rels = Vec::new();
    if page > 1 {
        rels.push(link(page - 1, "prev"));
    }
    if page < last {
        rels.push(link(page + 1, "next"));
        rels.push(link(last, "last"));
    }
    if page > 1 {
        rels.push(link(1, "first"));
    }
    let mut headers = Vec::new();
    if !rels.is_empty() {
        headers.push(header("Link", &rels.join(", ")));
    }
    (
        200,
        serde_json::Value::Array(items).to_string().into_bytes(),
        headers,
    )
}

fn repo_json(s: &FakeState, r: &FakeRepo) -> serde_json::Value {
    let api = format!("{}{}", s.base, s.prefix);
    serde_json::json!({
        "id": r.id,
        "node_id": format!("R_kgDO{}", r.id),
        "name": r.name,
        "full_name": format!("{}/{}", s.owner, r.name),
        "private": r.private,
        "owner": {
            "login": s.owner,
            "id": 1,
            "type": if s.is_user { "User" } else { "Organization" },
        },
        "html_url": format!("{}/{}/{}", s.web, s.owner, r.name),
        "description": r.description,
        "fork": r.fork,
        "url": format!("{api}/repos/{}/{}", s.owner, r.name),
        "archived": r.archived,
        "disabled": false,
        "visibility": if r.private { "private" } else { "public" },
        "default_branch": r.default_branch,
        "size": if r.empty { 0 } else { 42 },
        "permissions": { "admin": false, "push": false, "pull": true },
    })
}

/// Every folder of a repository (`""` is the root) with its direct entries.
fn folders(repo: &FakeRepo) -> BTreeMap<String, BTreeSet<String>> {
    let mut dirs: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    dirs.entry(String::new()).or_default();
    for path in repo.files.keys().chain(repo.symlinks.keys()) {
        let mut parent = String::new();
        for part in path.split('/') {
            dirs.entry(parent.clone())
                .or_default()
                .insert(part.to_string());
            parent = if parent.is_empty() {
                part.to_string()
            } else {
                format!("{parent}/{part}")
            };
        }
    }
    dirs
}

fn tree_sha(repo: &FakeRepo, dirs: &BTreeMap<String, BTreeSet<String>>, dir: &str) -> String {
    let mut listing = format!("tree {dir}\n");
    let prefix = if dir.is_empty() {
        String::new()
    } else {
        format!("{dir}/")
    };
    for name in &dirs[dir] {
        let full = format!("{prefix}{name}");
        if let Some(c) = repo.files.get(&full) {
            listing.push_str(&format!("100644 {name} {}\n", git_blob_sha(c)));
        } else if let Some(t) = repo.symlinks.get(&full) {
            listing.push_str(&format!("120000 {name} {}\n", git_blob_sha(t.as_bytes())));
        } else {
            listing.push_str(&format!("040000 {name} {}\n", tree_sha(repo, dirs, &full)));
        }
    }
    git_blob_sha(listing.as_bytes())
}

fn entry(
    s: &FakeState,
    repo: &FakeRepo,
    dirs: &BTreeMap<String, BTreeSet<String>>,
    full: &str,
    shown: &str,
) -> serde_json::Value {
    let api = format!("{}{}/repos/{}/{}", s.base, s.prefix, s.owner, repo.name);
    if let Some(c) = repo.files.get(full) {
        let sha = git_blob_sha(c);
        serde_json::json!({"path": shown, "mode": "100644", "type": "blob", "sha": sha,
            "size": c.len(), "url": format!("{api}/git/blobs/{sha}")})
    } else if let Some(t) = repo.symlinks.get(full) {
        let sha = git_blob_sha(t.as_bytes());
        serde_json::json!({"path": shown, "mode": "120000", "type": "blob", "sha": sha,
            "size": t.len(), "url": format!("{api}/git/blobs/{sha}")})
    } else {
        let sha = tree_sha(repo, dirs, full);
        serde_json::json!({"path": shown, "mode": "040000", "type": "tree", "sha": sha,
            "url": format!("{api}/git/trees/{sha}")})
    }
}

fn tree(
    s: &FakeState,
    repo: &FakeRepo,
    reference: &str,
    recursive: bool,
) -> (u16, Vec<u8>, Vec<Header>) {
    if repo.empty {
        return json_error(409, "Git Repository is empty.", "/git/trees#get-a-tree");
    }
    let dirs = folders(repo);
    let dir = if reference == repo.default_branch && !repo.branch_missing {
        Some(String::new())
    } else {
        dirs.keys()
            .find(|d| tree_sha(repo, &dirs, d) == reference)
            .cloned()
    };
    let Some(dir) = dir else {
        return json_error(404, "Not Found", "/git/trees#get-a-tree");
    };
    let prefix = if dir.is_empty() {
        String::new()
    } else {
        format!("{dir}/")
    };
    let mut entries = Vec::new();
    if recursive {
        let mut all: BTreeSet<String> = BTreeSet::new();
        for (d, names) in &dirs {
            if dir.is_empty() || *d == dir || d.starts_with(&prefix) {
                for n in names {
                    let full = if d.is_empty() {
                        n.clone()
                    } else {
                        format!("{d}/{n}")
                    };
                    all.insert(full);
                }
            }
        }
        for full in all {
            let shown = full[prefix.len()..].to_string();
            entries.push(entry(s, repo, &dirs, &full, &shown));
        }
    } else {
        for n in &dirs[&dir] {
            entries.push(entry(s, repo, &dirs, &format!("{prefix}{n}"), n));
        }
    }
    let mut truncated = false;
    if let (true, Some(max)) = (recursive, s.truncate_over)
        && entries.len() > max
    {
        entries.truncate(max);
        truncated = true;
    }
    let sha = tree_sha(repo, &dirs, &dir);
    let body = serde_json::json!({
        "sha": sha,
        "url": format!("{}{}/repos/{}/{}/git/trees/{sha}", s.base, s.prefix, s.owner, repo.name),
        "tree": entries,
        "truncated": truncated,
    });
    (200, body.to_string().into_bytes(), Vec::new())
}

/// Base64 with a `\n` after every 60 characters, as GitHub sends blobs.
pub fn base64_wrapped(data: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut plain = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                plain.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                plain.push('=');
            }
        }
    }
    let mut out = String::new();
    for (i, c) in plain.chars().enumerate() {
        if i > 0 && i % 60 == 0 {
            out.push('\n');
        }
        out.push(c);
    }
    out.push('\n');
    out
}
