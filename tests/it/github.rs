//! The GitHub source against a fake GitHub API: what it serves after each
//! sync, how many requests of which kind it made, and what it does with a
//! damaged cache (corrupt files, a FIFO or a device link in their place).

use crate::support::fake_github;

use crate::support::kv;
use fake_github::{FakeGithub, FakeRepo, FakeState, Kind, Reply};
use knowledge_vault::config::{Config, GithubConfig};
use knowledge_vault::docs::github::GithubSource;
use knowledge_vault::docs::source::{RepoSnapshot, Source};
use kv::TempDir;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Mutex;
use std::time::Instant;

// ---- helpers -------------------------------------------------------------

static LINES: Mutex<Vec<String>> = Mutex::new(Vec::new());

struct Capture;

impl log::Log for Capture {
    fn enabled(&self, _: &log::Metadata) -> bool {
        true
    }
    fn log(&self, record: &log::Record) {
        let line = format!("{} {}", record.level(), record.args());
        LINES.lock().unwrap_or_else(|e| e.into_inner()).push(line);
    }
    fn flush(&self) {}
}

static CAPTURE: Capture = Capture;

fn init_logs() {
    if log::set_logger(&CAPTURE).is_ok() {
        log::set_max_level(log::LevelFilter::Debug);
    }
}

/// Log lines mentioning `needle` (tests use distinct organization names).
fn logs(needle: &str) -> Vec<String> {
    LINES
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .filter(|l| l.contains(needle))
        .cloned()
        .collect()
}

/// A GitHub configuration as the environment would give it.
fn github_config(vars: &[(&str, &str)]) -> GithubConfig {
    let map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Config::from_map(&map).unwrap().github.unwrap()
}

fn source(url: &str, org: &str, token: &str, cache: &Path, extra: &[(&str, &str)]) -> GithubSource {
    init_logs();
    let mut vars = vec![
        ("GITHUB_ORG", org),
        ("GITHUB_API_URL", url),
        ("GITHUB_TOKEN", token),
    ];
    vars.extend_from_slice(extra);
    GithubSource::new(github_config(&vars), cache.to_path_buf())
}

/// `repo/path` -> text.
fn docs(snapshot: &[RepoSnapshot]) -> BTreeMap<String, String> {
    snapshot
        .iter()
        .flat_map(|r| {
            r.docs
                .iter()
                .map(move |d| (format!("{}/{}", r.name, d.path), d.text.clone()))
        })
        .collect()
}

fn names(snapshot: &[RepoSnapshot]) -> Vec<String> {
    snapshot.iter().map(|r| r.name.clone()).collect()
}

fn first_sync(src: &GithubSource) -> Vec<RepoSnapshot> {
    src.refresh()
        .unwrap()
        .expect("the first refresh returns a snapshot")
}

fn small_org(owner: &str) -> FakeState {
    FakeState::new(owner)
        .repo(
            FakeRepo::new("alpha")
                .description("The alpha service")
                .file("README.md", "# Alpha\n")
                .file("docs/guide.md", "Guide text"),
        )
        .repo(FakeRepo::new("beta").file("README.md", "# Beta\n"))
}

// ---- listing, content, links, headers ------------------------------------

#[test]
fn lists_three_pages_and_serves_documentation_with_links() {
    let mut state = FakeState::new("Acme1")
        .repo(
            FakeRepo::new("alpha")
                .description("The alpha service")
                .file("README.md", "# Alpha\n")
                .file("docs/getting started.md", "Start here: ü")
                .file("src/main.rs", "fn main() {}")
                .file("node_modules/x/README.md", "vendored")
                .file(".github/PULL_REQUEST_TEMPLATE.md", "template")
                .symlink("LINK.md", "README.md")
                .bytes("big.md", vec![b'a'; 1024 * 1024 + 1])
                .file("CHANGELOG", "v1"),
        )
        .repo(FakeRepo::new("beta").file("README.md", "# Beta\n"))
        .repo(FakeRepo::new("gamma").file("notes.txt", "gamma notes"))
        .repo(FakeRepo::new("delta").file("a.rst", "delta").private())
        .repo(
            FakeRepo::new("epsilon")
                .file("README", "eps")
                .branch("trunk"),
        );
    state.page_size = 2;
    state.token = Some("tok-123".into());
    let (url, gh) = FakeGithub::start(state);
    let cache = TempDir::new("pages");
    let src = source(&url, "Acme1", "tok-123", cache.path(), &[]);

    let snap = first_sync(&src);
    assert_eq!(names(&snap), ["alpha", "beta", "delta", "epsilon", "gamma"]);
    let expected: BTreeMap<String, String> = [
        ("alpha/CHANGELOG", "v1"),
        ("alpha/README.md", "# Alpha\n"),
        ("alpha/docs/getting started.md", "Start here: ü"),
        ("beta/README.md", "# Beta\n"),
        ("delta/a.rst", "delta"),
        ("epsilon/README", "eps"),
        ("gamma/notes.txt", "gamma notes"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    assert_eq!(docs(&snap), expected);
    let alpha = &snap[0];
    assert_eq!(alpha.description.as_deref(), Some("The alpha service"));
    let guide = alpha
        .docs
        .iter()
        .find(|d| d.path.starts_with("docs/"))
        .unwrap();
    assert_eq!(
        guide.url.as_deref(),
        Some("https://github.com/Acme1/alpha/blob/main/docs/getting%20started.md")
    );
    let eps = snap.iter().find(|r| r.name == "epsilon").unwrap();
    assert_eq!(
        eps.docs[0].url.as_deref(),
        Some("https://github.com/Acme1/epsilon/blob/trunk/README")
    );

    // Three list pages, the later ones by the Link header's URLs.
    let records = gh.records();
    let lists: Vec<_> = records
        .iter()
        .filter(|r| r.kind == Kind::OrgRepos)
        .collect();
    assert_eq!(lists.len(), 3);
    assert!(
        lists[0]
            .url
            .starts_with("/orgs/Acme1/repos?per_page=100&type=all")
    );
    assert!(lists[1].url.contains("/organizations/1/repos?") && lists[1].url.ends_with("page=2"));
    assert!(lists[2].url.ends_with("page=3"));
    // One tree call per repository, one blob per document (none for the big
    // file, the symlink or skipped folders).
    assert_eq!(gh.count(Kind::Tree), 5);
    assert_eq!(gh.count(Kind::Blob), 7);
    for r in &records {
        assert_eq!(
            r.authorization.as_deref(),
            Some("Bearer tok-123"),
            "{}",
            r.url
        );
        assert_eq!(r.accept.as_deref(), Some("application/vnd.github+json"));
        assert_eq!(r.api_version.as_deref(), Some("2022-11-28"));
        assert!(
            r.user_agent
                .as_deref()
                .unwrap()
                .starts_with("knowledge-vault/")
        );
    }

    let h = src.health();
    assert_eq!(h["type"], "github");
    assert_eq!(h["org"], "Acme1");
    assert_eq!(h["repositories"], 5);
    assert_eq!(h["documents"], 7);
    assert_eq!(h["requests_last_sync"], records.len() as u64);
    assert_eq!(h["rate_limit_remaining"], 5000 - records.len() as u64);
    assert!(h["last_error"].is_null());
    assert!(h["last_sync"].as_str().unwrap().ends_with('Z'));
    assert!(!h.to_string().contains("tok-123"));
    assert!(!logs("github:Acme1").is_empty());
    assert!(logs("tok-123").is_empty());
    assert!(logs("github:Acme1").iter().any(|l| l.contains("big.md")));
}

#[test]
fn unchanged_org_costs_only_304s_and_a_restart_serves_from_cache() {
    let mut state = small_org("acme2");
    state.page_size = 1;
    let (url, gh) = FakeGithub::start(state);
    let cache = TempDir::new("etag");
    let src = source(&url, "acme2", "t", cache.path(), &[]);
    let snap = first_sync(&src);
    assert_eq!(docs(&snap).len(), 3);

    gh.clear_records();
    assert_eq!(src.refresh().unwrap(), None);
    let records = gh.records();
    assert_eq!(records.len(), 4, "2 list pages + 2 trees: {records:?}");
    assert!(records.iter().all(|r| r.status == 304), "{records:?}");
    assert!(records.iter().all(|r| r.if_none_match.is_some()));
    assert_eq!(gh.count(Kind::Blob), 0);
    assert_eq!(src.health()["requests_last_sync"], 4);

    // A restart: the cache answers at once, without a single request.
    gh.clear_records();
    let again = source(&url, "acme2", "t", cache.path(), &[]);
    assert_eq!(again.refresh().unwrap(), Some(snap.clone()));
    assert!(gh.records().is_empty());
    assert_eq!(again.health()["documents"], 3);
    // And its next refresh is conditional too (the ETags were on disk).
    assert_eq!(again.refresh().unwrap(), None);
    assert_eq!(gh.records().len(), 4);
    assert_eq!(gh.count_status(Kind::Tree, 304), 2);
    assert_eq!(gh.count(Kind::Blob), 0);
}

#[test]
fn renamed_deleted_changed_new_and_archived_between_syncs() {
    let state = FakeState::new("acme3")
        .repo(
            FakeRepo::new("alpha")
                .description("old words")
                .file("README.md", "# Alpha\n")
                .file("docs/old-name.md", "moving file")
                .file("docs/gone.md", "to be deleted")
                .file("docs/changing.md", "version 1"),
        )
        .repo(FakeRepo::new("beta").file("README.md", "# Beta\n"))
        .repo(FakeRepo::new("old").file("README.md", "soon archived"));
    let (url, gh) = FakeGithub::start(state);
    let cache = TempDir::new("changes");
    let src = source(&url, "acme3", "t", cache.path(), &[]);
    first_sync(&src);

    gh.with(|s| {
        let a = s.repo_mut("alpha");
        let moved = a.files.remove("docs/old-name.md").unwrap();
        a.files.insert("docs/new-name.md".into(), moved);
        a.files.remove("docs/gone.md");
        a.files
            .insert("docs/changing.md".into(), b"version 2".to_vec());
        a.description = Some("new words".into());
        s.repo_mut("old").archived = true;
        s.repos
            .push(FakeRepo::new("fresh").file("README.md", "# Fresh\n"));
    });
    gh.clear_records();
    let snap = src.refresh().unwrap().expect("changes were made");
    assert_eq!(names(&snap), ["alpha", "beta", "fresh"]);
    assert_eq!(snap[0].description.as_deref(), Some("new words"));
    let d = docs(&snap);
    assert_eq!(
        d.keys().collect::<Vec<_>>(),
        [
            "alpha/README.md",
            "alpha/docs/changing.md",
            "alpha/docs/new-name.md",
            "beta/README.md",
            "fresh/README.md"
        ]
    );
    assert_eq!(d["alpha/docs/changing.md"], "version 2");
    assert_eq!(d["alpha/docs/new-name.md"], "moving file");
    // Only the changed file and the new repository's README: a rename
    // keeps its blob sha and costs nothing.
    assert_eq!(gh.count(Kind::Blob), 2);
    assert_eq!(
        gh.count_status(Kind::Tree, 304),
        1,
        "beta's tree did not change"
    );

    assert_eq!(src.refresh().unwrap(), None);
}

#[test]
fn truncated_tree_is_walked_folder_by_folder() {
    let mut state = FakeState::new("acme4").repo(
        FakeRepo::new("big")
            .file("README.md", "root")
            .file("docs/x.md", "x")
            .file("docs/a/b/c.md", "deep")
            .file("src/lib.rs", "code")
            .file("src/README.md", "src readme")
            .file("node_modules/p/README.md", "skip me")
            .file(".github/y.md", "skip me too"),
    );
    state.truncate_over = Some(3);
    let (url, gh) = FakeGithub::start(state);
    let cache = TempDir::new("truncated");
    let src = source(&url, "acme4", "t", cache.path(), &[]);
    let snap = first_sync(&src);
    assert_eq!(
        docs(&snap).keys().collect::<Vec<_>>(),
        [
            "big/README.md",
            "big/docs/a/b/c.md",
            "big/docs/x.md",
            "big/src/README.md"
        ]
    );
    // The recursive call, then root, docs, docs/a, docs/a/b and src; never
    // node_modules or .github.
    let trees: Vec<_> = gh
        .records()
        .into_iter()
        .filter(|r| r.kind == Kind::Tree)
        .collect();
    assert_eq!(trees.len(), 6, "{trees:?}");
    assert!(trees[0].url.ends_with("?recursive=1"));
    assert!(trees[1..].iter().all(|r| !r.url.contains("recursive")));
    assert!(logs("github:acme4").iter().any(|l| l.contains("truncated")));
}

#[test]
fn empty_repository_and_missing_branch_are_skipped_with_a_log_line() {
    let state = small_org("acme5").repo(FakeRepo::new("void").empty()).repo(
        FakeRepo::new("lost")
            .file("README.md", "x")
            .branch_missing(),
    );
    let (url, gh) = FakeGithub::start(state);
    let cache = TempDir::new("empty");
    let src = source(&url, "acme5", "t", cache.path(), &[]);
    let snap = first_sync(&src);
    assert_eq!(names(&snap), ["alpha", "beta"]);
    assert_eq!(gh.count_status(Kind::Tree, 409), 1);
    assert_eq!(gh.count_status(Kind::Tree, 404), 1);
    let lines = logs("github:acme5");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("void") && l.contains("empty"))
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("lost") && l.contains("not found"))
    );
    assert!(src.health()["last_error"].is_null());
    assert_eq!(src.refresh().unwrap(), None);
}

#[test]
fn archived_repositories_and_forks_only_when_asked_for() {
    let state = small_org("acme6")
        .repo(FakeRepo::new("attic").file("README.md", "old").archived())
        .repo(FakeRepo::new("copy").file("README.md", "fork").fork());
    let (url, gh) = FakeGithub::start(state);

    let cache = TempDir::new("archived-a");
    let src = source(&url, "acme6", "t", cache.path(), &[]);
    assert_eq!(names(&first_sync(&src)), ["alpha", "beta"]);
    assert_eq!(gh.count(Kind::Tree), 2);

    let cache = TempDir::new("archived-b");
    let extra = [
        ("GITHUB_INCLUDE_ARCHIVED", "true"),
        ("GITHUB_INCLUDE_FORKS", "1"),
    ];
    let src = source(&url, "acme6", "t", cache.path(), &extra);
    assert_eq!(names(&first_sync(&src)), ["alpha", "attic", "beta", "copy"]);
}

#[test]
fn a_user_account_falls_back_to_the_users_listing() {
    let mut state = small_org("someone");
    state.is_user = true;
    let (url, gh) = FakeGithub::start(state);
    let cache = TempDir::new("user");
    let src = source(&url, "someone", "t", cache.path(), &[]);
    assert_eq!(names(&first_sync(&src)), ["alpha", "beta"]);
    assert_eq!(gh.count_status(Kind::OrgRepos, 404), 1);
    assert_eq!(gh.count(Kind::UserRepos), 1);
    assert!(
        gh.records()[1]
            .url
            .starts_with("/users/someone/repos?per_page=100&type=owner")
    );
    // The next sync remembers it is a user: no second 404.
    assert_eq!(src.refresh().unwrap(), None);
    assert_eq!(gh.count(Kind::OrgRepos), 1);
}

#[test]
fn unknown_owner_is_a_clear_error() {
    let (url, _gh) = FakeGithub::start(small_org("acme7"));
    let cache = TempDir::new("nobody");
    let src = source(&url, "nobody7", "t", cache.path(), &[]);
    // Nothing to serve, not even from a cache: an error from the first call.
    let first = src.refresh().unwrap_err().to_string();
    assert!(first.contains("nobody7"), "{first}");
    let err = src.health()["last_error"].as_str().unwrap().to_string();
    assert_eq!(err, first);
    assert!(src.refresh().unwrap_err().to_string().contains("nobody7"));
}

#[test]
fn repository_subset_from_github_repos() {
    let state = small_org("acme8").repo(FakeRepo::new("Gamma").file("README.md", "g"));
    let (url, gh) = FakeGithub::start(state);
    let cache = TempDir::new("subset");
    let extra = [("GITHUB_REPOS", "beta, gamma ,missing")];
    let src = source(&url, "acme8", "t", cache.path(), &extra);
    assert_eq!(names(&first_sync(&src)), ["Gamma", "beta"]);
    assert_eq!(gh.count(Kind::Tree), 2);
    assert!(
        logs("github:acme8")
            .iter()
            .any(|l| l.contains("\"missing\""))
    );
}

#[test]
fn enterprise_server_api_prefix() {
    let mut state = small_org("corp");
    state.prefix = "/api/v3".into();
    state.web = "https://ghe.example.com".into();
    let (url, gh) = FakeGithub::start(state);
    assert!(url.ends_with("/api/v3"));
    let cache = TempDir::new("ghe");
    let src = source(&url, "corp", "t", cache.path(), &[]);
    let snap = first_sync(&src);
    assert_eq!(docs(&snap).len(), 3);
    assert_eq!(
        snap[0].docs[0].url.as_deref(),
        Some("https://ghe.example.com/corp/alpha/blob/main/README.md")
    );
    assert!(gh.records().iter().all(|r| r.url.starts_with("/api/v3/")));
}

#[test]
fn progress_lines_during_a_long_sync() {
    let mut state = FakeState::new("acme16");
    for i in 0..12 {
        state = state.repo(FakeRepo::new(&format!("r{i:02}")).file("README.md", &format!("{i}")));
    }
    let (url, _gh) = FakeGithub::start(state);
    let cache = TempDir::new("progress");
    let src = source(&url, "acme16", "t", cache.path(), &[]);
    assert_eq!(docs(&first_sync(&src)).len(), 12);
    let lines = logs("github:acme16");
    let progress = lines
        .iter()
        .find(|l| l.contains("10/12 repositories"))
        .unwrap_or_else(|| panic!("{lines:?}"));
    assert!(progress.contains("requests so far") && progress.contains("rate limit"));
    let done = lines
        .iter()
        .find(|l| l.contains("synced 12 repositories, 12 documents"));
    assert!(done.is_some_and(|l| l.contains("25 requests")), "{lines:?}");
}

// ---- rate limits and faults ----------------------------------------------

#[test]
fn exhausted_rate_limit_pauses_until_the_reset() {
    let mut state = small_org("acme9");
    state.rate_limit = 3;
    state.rate_window_secs = 2;
    let (url, gh) = FakeGithub::start(state);
    let cache = TempDir::new("ratelimit");
    let src = source(&url, "acme9", "t", cache.path(), &[]);
    let started = Instant::now();
    let snap = first_sync(&src);
    // 1 list + 2 trees + 3 blobs = 6 requests on a quota of 3 per window.
    assert_eq!(docs(&snap).len(), 3);
    assert!(
        started.elapsed().as_millis() >= 1000,
        "{:?}",
        started.elapsed()
    );
    assert!(src.health()["last_error"].is_null());
    let pauses: Vec<_> = logs("github:acme9")
        .into_iter()
        .filter(|l| l.contains("rate limit exhausted; pausing until"))
        .collect();
    assert!(!pauses.is_empty());
    assert!(
        pauses[0].contains('T') && pauses[0].contains('Z'),
        "{}",
        pauses[0]
    );
    let ok = gh.records().iter().filter(|r| r.status == 200).count();
    assert_eq!(ok, 6);
}

#[test]
fn secondary_limits_are_retried_after_retry_after() {
    let (url, gh) = FakeGithub::start(small_org("acme10"));
    gh.with(|s| {
        let limit = |status| Reply::SecondaryLimit {
            status,
            retry_after: 1,
        };
        s.fault(Kind::Tree, Some("/alpha/"), 1, limit(403));
        s.fault(Kind::Blob, None, 1, limit(429));
    });
    let cache = TempDir::new("secondary");
    let src = source(&url, "acme10", "t", cache.path(), &[]);
    let started = Instant::now();
    assert_eq!(docs(&first_sync(&src)).len(), 3);
    assert!(
        started.elapsed().as_millis() >= 2000,
        "{:?}",
        started.elapsed()
    );
    assert_eq!(gh.count_status(Kind::Tree, 403), 1);
    assert_eq!(gh.count_status(Kind::Blob, 429), 1);
    assert_eq!(gh.count_status(Kind::Blob, 200), 3);
    assert!(src.health()["last_error"].is_null());
    assert!(
        logs("github:acme10")
            .iter()
            .any(|l| l.contains("secondary rate limit"))
    );
}

#[test]
fn server_errors_are_retried_with_backoff() {
    let (url, gh) = FakeGithub::start(small_org("acme11"));
    gh.with(|s| {
        s.fault(Kind::OrgRepos, None, 1, Reply::Status(500));
        s.fault(Kind::Blob, None, 2, Reply::Html(502));
    });
    let cache = TempDir::new("5xx");
    let src = source(&url, "acme11", "t", cache.path(), &[]);
    assert_eq!(docs(&first_sync(&src)).len(), 3);
    assert_eq!(gh.count_status(Kind::OrgRepos, 500), 1);
    assert_eq!(gh.count_status(Kind::OrgRepos, 200), 1);
    assert_eq!(gh.count_status(Kind::Blob, 502), 2);
    assert!(src.health()["last_error"].is_null());
}

#[test]
fn a_failing_repository_does_not_stop_the_others() {
    let (url, gh) = FakeGithub::start(small_org("acme12"));
    gh.with(|s| s.fault(Kind::Tree, Some("/beta/"), 100, Reply::Status(500)));
    let cache = TempDir::new("isolated");
    let src = source(&url, "acme12", "t", cache.path(), &[]);
    assert_eq!(names(&first_sync(&src)), ["alpha"]);
    assert_eq!(gh.count_status(Kind::Tree, 500), 3, "three tries");
    let err = src.health()["last_error"].as_str().unwrap().to_string();
    assert!(err.contains("beta") && err.contains("500"), "{err}");

    gh.with(|s| s.faults.clear());
    let snap = src.refresh().unwrap().expect("beta is back");
    assert_eq!(names(&snap), ["alpha", "beta"]);
    assert!(src.health()["last_error"].is_null());
}

#[test]
fn a_bad_token_stops_the_sync_with_one_clear_error() {
    let mut state = small_org("acme13");
    state.token = Some("the-good-one".into());
    let (url, gh) = FakeGithub::start(state);
    let cache = TempDir::new("401");
    let src = source(&url, "acme13", "ghp_WRONGsecret42", cache.path(), &[]);
    assert!(src.refresh().unwrap_err().to_string().contains("401"));
    assert_eq!(gh.records().len(), 1, "no retries, no /users fallback");
    let h = src.health();
    assert_eq!(h["requests_last_sync"], 1);
    let err = h["last_error"].as_str().unwrap();
    assert!(err.contains("401") && err.contains("GITHUB_TOKEN"), "{err}");
    assert!(!h.to_string().contains("WRONGsecret"));
    let lines = logs("github:acme13");
    assert_eq!(
        lines.iter().filter(|l| l.contains("401")).count(),
        1,
        "{lines:?}"
    );
    assert!(logs("WRONGsecret").is_empty());

    // A token revoked after a good sync: the previous snapshot stays, the
    // refresh reports the error.
    let good = source(&url, "acme13", "the-good-one", cache.path(), &[]);
    assert_eq!(docs(&first_sync(&good)).len(), 3);
    gh.with(|s| s.token = Some("rotated".into()));
    let err = good.refresh().unwrap_err().to_string();
    assert!(err.contains("401"), "{err}");
    assert!(
        good.health()["last_error"]
            .as_str()
            .unwrap()
            .contains("401")
    );
}

#[test]
fn unreachable_api_is_reported_not_fatal() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let cache = TempDir::new("refused");
    let url = format!("http://127.0.0.1:{port}");
    let src = source(&url, "acme14", "t", cache.path(), &[]);
    let first = src.refresh().unwrap_err().to_string();
    assert!(first.contains("connection failed"), "{first}");
    let err = src.health()["last_error"].as_str().unwrap().to_string();
    assert!(err.contains("connection failed"), "{err}");
}

// ---- the cache -------------------------------------------------------------

/// One blob file of the organization's cache folder `root`.
fn first_cached_blob(root: &Path) -> std::path::PathBuf {
    let first = |dir: &Path| {
        std::fs::read_dir(dir)
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path()
    };
    first(&first(&root.join("blobs")))
}

#[test]
fn corrupt_cache_files_are_ignored_and_refetched() {
    let (url, gh) = FakeGithub::start(small_org("acme15"));
    let cache = TempDir::new("corrupt");
    let src = source(&url, "acme15", "t", cache.path(), &[]);
    let snap = first_sync(&src);

    let root = cache.path().join("github").join("acme15");
    std::fs::write(root.join("state.json"), "{\"version\": 1, \"pages\": [").unwrap();
    let blob = first_cached_blob(&root);
    std::fs::write(&blob, "garbage").unwrap();

    gh.clear_records();
    let again = source(&url, "acme15", "t", cache.path(), &[]);
    assert_eq!(again.refresh().unwrap(), Some(snap));
    // The state was rebuilt from the API; of the blobs only the corrupt one
    // was fetched again.
    assert_eq!(gh.count(Kind::Blob), 1);
    assert!(
        std::fs::read_dir(&root).unwrap().all(|e| !e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .ends_with(".tmp"))
    );
}

#[cfg(unix)]
#[test]
fn cache_files_replaced_by_a_fifo_or_a_device_link_are_not_read() {
    let (url, gh) = FakeGithub::start(small_org("acme16"));
    let cache = TempDir::new("cache-fifo");
    let snap = first_sync(&source(&url, "acme16", "t", cache.path(), &[]));

    let root = cache.path().join("github").join("acme16");
    let state = root.join("state.json");
    std::fs::remove_file(&state).unwrap();
    let made = std::process::Command::new("mkfifo").arg(&state).status();
    if !made.is_ok_and(|s| s.success()) {
        eprintln!("no mkfifo: skipped");
        return;
    }
    let blob = first_cached_blob(&root);
    std::fs::remove_file(&blob).unwrap();
    std::os::unix::fs::symlink("/dev/zero", &blob).unwrap();

    gh.clear_records();
    let again = source(&url, "acme16", "t", cache.path(), &[]);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(again.refresh().map_err(|e| e.to_string()));
    });
    let got = rx.recv_timeout(std::time::Duration::from_secs(30));
    if got.is_err() {
        // Release a reader blocked on the FIFO before failing.
        let _ = std::fs::OpenOptions::new().write(true).open(&state);
    }
    assert_eq!(
        got.expect("the refresh blocked on the cache"),
        Ok(Some(snap))
    );
    // The state came from the API again; of the blobs only the replaced one.
    assert_eq!(gh.count(Kind::OrgRepos), 1);
    assert_eq!(gh.count(Kind::Blob), 1);
    assert!(std::fs::symlink_metadata(&state).unwrap().is_file());
}
