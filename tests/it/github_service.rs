//! The GitHub source as a new user meets it: the real binary started with
//! `GITHUB_ORG`/`GITHUB_TOKEN` against a fake GitHub API, then restarted on
//! the same cache.

use crate::support::fake_github;
use crate::support::kv;

use fake_github::{FakeGithub, FakeRepo, FakeState, Kind};
use kv::{Kv, TempDir, json};
use std::time::{Duration, Instant};

fn wait_for_repos(kv: &Kv, n: usize) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body) = kv.get("/api/repos");
        if status == 200 && json(&body).as_array().map(|a| a.len()) == Some(n) {
            return json(&body);
        }
        assert!(
            Instant::now() < deadline,
            "repositories never appeared: {status} {body}\n{}",
            kv.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn mirrors_an_organization_and_restarts_from_the_cache() {
    let state = FakeState::new("acme")
        .repo(
            FakeRepo::new("handbook")
                .description("How we work")
                .file(
                    "README.md",
                    "# Handbook\n\nOn-call rotation: weekly, handover on Monday.\n",
                )
                .file(
                    "docs/deploy guide.md",
                    "# Deploying\n\nUse the blue-green pipeline.\n",
                )
                .file("src/lib.rs", "fn main() {}"),
        )
        .repo(
            FakeRepo::new("old-stuff")
                .archived()
                .file("README.md", "# Old\n"),
        )
        .repo(FakeRepo::new("api").file(
            "CHANGELOG.md",
            "# Changelog\n\n## 2.0\nBreaking: tokens rotate.\n",
        ));
    let mut state = state;
    state.token = Some("ghp_TESTTOKEN".into());
    let (api, fake) = FakeGithub::start(state);
    let home = TempDir::new("gh-home");
    let cache = home.path().join("cache");
    let env = [
        ("GITHUB_ORG", "acme"),
        ("GITHUB_TOKEN", "ghp_TESTTOKEN"),
        ("GITHUB_API_URL", api.as_str()),
        ("CACHE_DIR", cache.to_str().unwrap()),
        // A proxy in the environment is not used for a server on this machine.
        ("HTTPS_PROXY", "http://127.0.0.1:9"),
        ("HTTP_PROXY", "http://127.0.0.1:9"),
    ];

    let kv = Kv::start(home.path(), &env);
    let repos = wait_for_repos(&kv, 2);
    assert_eq!(repos[0]["name"], "api");
    assert_eq!(repos[1]["name"], "handbook");
    assert_eq!(repos[1]["description"], "How we work");
    assert_eq!(repos[1]["doc_count"], 2);
    let tree = json(&kv.get("/api/repos/handbook/tree").1);
    assert_eq!(
        tree,
        serde_json::json!([{"path": "README.md", "type": "file"}, {"path": "docs/deploy guide.md", "type": "file"}])
    );
    let doc = json(&kv.get("/api/repos/handbook/files/docs/deploy%20guide.md").1);
    assert!(doc["content"].as_str().unwrap().contains("blue-green"));
    assert_eq!(
        doc["metadata"]["url"],
        "https://github.com/acme/handbook/blob/main/docs/deploy%20guide.md"
    );
    let health = json(&kv.get("/health").1);
    let source = health["sources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["type"] == "github")
        .unwrap()
        .clone();
    assert_eq!(source["org"], "acme");
    assert_eq!(source["repositories"], 2);
    assert!(!health.to_string().contains("ghp_TESTTOKEN"));
    assert!(!kv.log().contains("ghp_TESTTOKEN"));
    assert!(
        fake.records()
            .iter()
            .all(|r| r.authorization.as_deref() == Some("Bearer ghp_TESTTOKEN"))
    );
    let blobs = fake.count(Kind::Blob);
    assert_eq!(blobs, 3);
    drop(kv);

    // Restart: served from the cache at once, nothing fetched.
    fake.clear_records();
    let kv = Kv::start(home.path(), &env);
    let started = Instant::now();
    wait_for_repos(&kv, 2);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "cache served after {:?}",
        started.elapsed()
    );
    assert_eq!(fake.records().len(), 0, "a restart must not refetch");
}
