//! `kvbench make-journal DIR CONVERSATIONS MESSAGES`: writes a conversation
//! journal (the product's `DATA_DIR/conversations.jsonl` format) of that
//! many conversations of that many messages each, for the restart figure.

use serde_json::json;
use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

pub fn make(dir: &str, conversations: usize, messages: usize) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let path = std::path::Path::new(dir).join("conversations.jsonl");
    let written = std::fs::create_dir_all(dir).and_then(|_| {
        let mut out = std::io::BufWriter::new(std::fs::File::create(&path)?);
        let text =
            "How do I configure the exporter endpoint for the collector in production? ".repeat(3);
        for c in 0..conversations {
            for m in 0..messages {
                let role = if m % 2 == 0 { "user" } else { "assistant" };
                let line = json!({"t": "entry", "id": format!("c{c}"), "entry": {
                    "id": format!("c{c}-{m}"), "role": role,
                    "messages": [{"role": role, "content": [{"type": "text", "text": text}]}],
                    "at": now - (conversations - c) as u64 * 1000 + m as u64}});
                writeln!(out, "{line}")?;
            }
        }
        out.flush()
    });
    if let Err(e) = written {
        eprintln!("kvbench: cannot write {}: {e}", path.display());
        std::process::exit(1);
    }
}
