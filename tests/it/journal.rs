//! Conversations survive restarts and crashes, against the real binary:
//! a normal restart, `kill -9` mid-answer, a damaged journal, compaction,
//! an unusable data directory, owners across restarts.

use crate::support::fake_claude::{FakeClaude, Reply, sse};
use crate::support::kv::{Kv, TempDir, json, request};
use crate::support::ws_client::{connect, connect_with, texts};
use serde_json::{Value, json};
use std::time::Duration;

const LONG: Duration = Duration::from_secs(20);

fn messages(kv: &Kv, id: &str) -> Value {
    let (status, body) = kv.get(&format!("/api/conversations/{id}/messages"));
    assert_eq!(status, 200, "{id}: {body}");
    json(&body)
}

fn ask(kv: &Kv, id: &str, text: &str) -> Vec<Value> {
    let mut ws = connect(kv.port, id, None).unwrap();
    ws.ask(text);
    ws.until_done()
}

/// The service in `dir` (its DATA_DIR is `dir/.kv-data` by default).
fn start(dir: &TempDir, env: &[(&str, &str)]) -> Kv {
    Kv::start(dir.path(), env)
}

fn docs(tag: &str) -> TempDir {
    let dir = TempDir::new(tag);
    crate::support::kv::fixture_repo(&dir);
    dir
}

fn journal(dir: &TempDir) -> std::path::PathBuf {
    dir.path().join(".kv-data/conversations.jsonl")
}

#[test]
fn answers_survive_a_normal_restart_byte_for_byte() {
    let dir = docs("restart");
    let before = {
        let mut kv = start(&dir, &[]);
        ask(&kv, "first", "What is the retention policy?");
        ask(&kv, "first", "And how do I install it?");
        ask(&kv, "second", "Where is the guide?");
        let before = (messages(&kv, "first"), messages(&kv, "second"));
        kv.signal("TERM");
        assert_eq!(kv.wait_exit(LONG).unwrap().code(), Some(0));
        before
    };
    let kv = start(&dir, &[]);
    assert!(
        kv.wait_log("conversations: 2 restored", LONG),
        "{}",
        kv.log()
    );
    assert_eq!(messages(&kv, "first"), before.0);
    assert_eq!(messages(&kv, "second"), before.1);
    let (_, list) = kv.get("/api/conversations");
    assert_eq!(json(&list).as_array().unwrap().len(), 2);
    // A follow-up continues the same conversation.
    ask(&kv, "first", "One more?");
    assert_eq!(messages(&kv, "first").as_array().unwrap().len(), 6);
}

#[test]
fn kill_9_mid_answer_keeps_every_finished_answer_and_the_interrupted_one() {
    let dir = docs("kill9");
    let claude = FakeClaude::start(vec![
        Reply::sse(sse::text_turn(&["A finished answer."])),
        Reply::sse_slow(
            [
                sse::message_start() + &sse::text_start(0) + &sse::text_delta(0, "Streaming "),
                sse::text_delta(0, "so far"),
                sse::text_delta(0, " and never finished"),
            ],
            Duration::from_secs(30),
        ),
    ]);
    let url = claude.url();
    let env = [
        ("ANTHROPIC_API_KEY", "sk-ant-x"),
        ("ANTHROPIC_BASE_URL", url.as_str()),
    ];
    let finished = {
        let mut kv = start(&dir, &env);
        let mut ws = connect(kv.port, "c", None).unwrap();
        ws.ask("first question");
        assert_eq!(texts(&ws.until_done()), "A finished answer.");
        let finished = messages(&kv, "c");
        ws.ask("second question");
        let mut seen = String::new();
        while let Some(e) = ws.next(LONG) {
            if e["type"] == "text" {
                seen.push_str(e["content"].as_str().unwrap());
            }
            if seen.contains("Streaming") {
                break;
            }
        }
        // The streamed text reaches the journal within 100 ms.
        assert!(
            kv.wait_until(LONG, |_| std::fs::read_to_string(journal(&dir))
                .unwrap_or_default()
                .contains("Streaming")),
            "the running answer never reached the journal"
        );
        kv.signal("KILL");
        kv.wait_exit(LONG).unwrap();
        finished
    };
    let kv = start(&dir, &[]);
    assert!(
        kv.wait_log("1 answers were interrupted", LONG),
        "{}",
        kv.log()
    );
    let now = messages(&kv, "c");
    let now = now.as_array().unwrap();
    assert_eq!(now.len(), 4, "{now:?}");
    // Every acknowledged message, byte for byte.
    assert_eq!(now[..2], finished.as_array().unwrap()[..]);
    assert_eq!(now[2]["content"], "second question");
    assert_eq!(now[3]["status"], "interrupted");
    assert!(
        now[3]["content"].as_str().unwrap().starts_with("Streaming"),
        "{now:?}"
    );
}

#[test]
fn a_damaged_journal_loads_with_warnings() {
    let dir = docs("damaged");
    std::fs::create_dir_all(dir.path().join(".kv-data")).unwrap();
    let entry = |conv: &str, id: &str, role: &str, text: &str| {
        json!({"t": "entry", "id": conv, "entry": {"id": id, "role": role,
            "messages": [{"role": role, "content": [{"type": "text", "text": text}]}],
            "at": 1_700_000_000_000u64}})
        .to_string()
    };
    let torn = entry("c", "e3", "user", "torn");
    let text = [
        entry("c", "e1", "user", "kept question"),
        "{this is not json".to_string(),
        json!({"t": "from_a_future_version", "id": "c"}).to_string(),
        entry("c", "e2", "assistant", "kept answer"),
        torn[..torn.len() / 2].to_string(),
    ]
    .join("\n");
    std::fs::write(journal(&dir), text).unwrap();
    let kv = start(&dir, &[("CONVERSATION_TTL_DAYS", "0")]);
    assert!(
        kv.wait_log("conversations: 1 restored", LONG),
        "{}",
        kv.log()
    );
    let log = kv.log();
    assert!(log.matches("WARN").count() >= 3, "{log}");
    assert!(log.contains("torn"), "{log}");
    assert!(log.contains("line 2"), "{log}");
    assert!(log.contains("line 3"), "{log}");
    let m = messages(&kv, "c");
    assert_eq!(m[0]["content"], "kept question");
    assert_eq!(m[1]["content"], "kept answer");
    assert_eq!(m.as_array().unwrap().len(), 2);
    // It was rewritten clean: the next start has nothing to warn about.
    assert!(kv.wait_log("journal compacted", LONG), "{}", kv.log());
    drop(kv);
    let kv = start(&dir, &[("CONVERSATION_TTL_DAYS", "0")]);
    assert!(kv.wait_log("conversations: 1 restored", LONG));
    assert!(
        !kv.log().contains("conversation journal .kv-data: line"),
        "{}",
        kv.log()
    );
    assert_eq!(messages(&kv, "c").as_array().unwrap().len(), 2);
}

#[test]
fn compaction_keeps_the_content_identical() {
    let dir = docs("compact");
    std::fs::create_dir_all(dir.path().join(".kv-data")).unwrap();
    // 6 MiB of a conversation that was then deleted, and a small live one.
    let mut lines = Vec::new();
    let big = "x".repeat(60_000);
    for i in 0..100 {
        lines.push(
            json!({"t": "entry", "id": "gone", "entry": {"id": format!("g{i}"), "role": "user",
                "messages": [{"role": "user", "content": big}], "at": 1_700_000_000_000u64}})
            .to_string(),
        );
    }
    lines.push(json!({"t": "deleted", "id": "gone"}).to_string());
    lines.push(
        json!({"t": "entry", "id": "live", "entry": {"id": "l1", "role": "user",
            "messages": [{"role": "user", "content": "still here, é 日本"}], "at": 1_700_000_000_000u64}})
        .to_string(),
    );
    std::fs::write(journal(&dir), lines.join("\n") + "\n").unwrap();
    let before_size = std::fs::metadata(journal(&dir)).unwrap().len();
    let env = [("CONVERSATION_TTL_DAYS", "0")];
    let first = {
        let kv = start(&dir, &env);
        assert!(kv.wait_log("journal compacted", LONG), "{}", kv.log());
        messages(&kv, "live")
    };
    let after_size = std::fs::metadata(journal(&dir)).unwrap().len();
    assert!(
        after_size * 100 < before_size,
        "{before_size} -> {after_size}"
    );
    let kv = start(&dir, &env);
    assert!(kv.wait_log("conversations: 1 restored", LONG));
    assert_eq!(messages(&kv, "live"), first);
    assert_eq!(first[0]["content"], "still here, é 日本");
    assert_eq!(kv.get("/api/conversations/gone/messages").0, 404);
}

#[test]
fn an_unusable_data_directory_is_said_and_the_chat_still_works() {
    // A file where the directory should be.
    let dir = docs("notadir");
    dir.write("not-a-dir", "x");
    let kv = start(&dir, &[("DATA_DIR", "not-a-dir")]);
    assert!(kv.wait_log("kept in memory only", LONG), "{}", kv.log());
    let h = json(&kv.get("/health").1);
    let err = h["conversations"]["journal"]["error"]
        .as_str()
        .unwrap_or_default();
    assert!(err.contains("not-a-dir"), "{h}");
    ask(&kv, "c", "retention?");
    assert_eq!(messages(&kv, "c").as_array().unwrap().len(), 2);
    drop(kv);

    // A disk that fills up: a file-size limit on the process (SIGXFSZ
    // ignored) makes writes fail past 16 KiB, as a full disk does.
    let dir = docs("full");
    let limited = || {
        let mut cmd = std::process::Command::new("sh");
        cmd.args([
            "-c",
            "trap '' XFSZ; ulimit -f 16; exec \"$0\"",
            crate::support::kv::BIN,
        ]);
        cmd
    };
    let kv = Kv::start_cmd(limited(), dir.path(), &[]);
    let mut refused = None;
    for i in 0..200 {
        let events = ask(
            &kv,
            &format!("c{i}"),
            &format!("question {i} {}", "words ".repeat(100)),
        );
        if let Some(e) = events.iter().find(|e| e["type"] == "error") {
            assert!(
                texts(&events).contains("No language model"),
                "the answer still came"
            );
            refused = Some((i, e.clone()));
            break;
        }
    }
    let (full_at, error) = refused.expect("the journal never filled up");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("could not be saved"),
        "{error}"
    );
    assert_eq!(
        messages(&kv, &format!("c{full_at}"))
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let h = json(&kv.get("/health").1);
    assert!(h["conversations"]["journal"]["error"].is_string(), "{h}");
    assert!(kv.log().contains("WARN"), "{}", kv.log());
    let stored: Vec<Value> = (0..full_at)
        .map(|i| messages(&kv, &format!("c{i}")))
        .collect();
    drop(kv);
    // Nothing already stored was lost, and the file has no torn line.
    let kv = start(&dir, &[]);
    assert!(kv.wait_log("restored", LONG));
    assert!(
        !kv.log().contains("conversation journal .kv-data: line"),
        "{}",
        kv.log()
    );
    for (i, m) in stored.iter().enumerate() {
        assert_eq!(&messages(&kv, &format!("c{i}")), m);
    }
}

#[test]
fn owners_are_kept_across_restarts() {
    const ALICE: &str = "alice-0123456789abcdef";
    const BOB: &str = "bob-fedcba9876543210xyz";
    let dir = docs("owners");
    let tokens = format!("{ALICE},{BOB}");
    let env = [("API_TOKENS", tokens.as_str())];
    {
        let kv = start(&dir, &env);
        let auth = format!("Bearer {ALICE}");
        let mut ws = connect_with(kv.port, "/ws/chat/mine", &[("Authorization", &auth)]).unwrap();
        ws.ask("alice's question");
        ws.until_done();
    }
    let kv = start(&dir, &env);
    assert!(kv.wait_log("conversations: 1 restored", LONG));
    let get = |token: &str| {
        request(
            &kv.base,
            "GET",
            "/api/conversations/mine/messages",
            &[("Authorization", &format!("Bearer {token}"))],
            None,
        )
    };
    assert_eq!(get(ALICE).0, 200);
    assert_eq!(json(&get(ALICE).1)[0]["content"], "alice's question");
    assert_eq!(get(BOB).0, 404);
}

#[test]
fn memory_only_when_data_dir_is_empty() {
    let dir = docs("memonly");
    {
        let kv = start(&dir, &[("DATA_DIR", "")]);
        ask(&kv, "c", "retention?");
    }
    assert!(!dir.path().join(".kv-data").exists());
    let kv = start(&dir, &[("DATA_DIR", "")]);
    assert_eq!(kv.get("/api/conversations/c/messages").0, 404);
}
