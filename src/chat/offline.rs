//! Offline retrieval mode: with no model configured, a chat message still
//! gets an honest answer. The turn runs `search_documentation` itself (with
//! the same `tool_use_start`/`tool_result` events as a model turn) and
//! streams the best matches with their snippets and `repo/path` citations.
//! The top document is read too, so its best passage (up to
//! [`TOP_PASSAGE_CHARS`]) is on screen without opening the file.

use crate::chat::answer::{Answer, Publish, run_tool};
use crate::chat::events::ServerEvent;
use crate::docs::snippet::passage;
use crate::tools::{GET_DOCUMENTATION, SEARCH_DOCUMENTATION, ToolProvider};
use serde_json::{Value, json};

const RESULTS: usize = 5;
/// How much of the top document's best passage is shown.
const TOP_PASSAGE_CHARS: usize = 800;

/// Why there is no model answer, said first in an offline answer.
pub(crate) const NO_MODEL: &str =
    "No language model is configured (ANTHROPIC_API_KEY is not set), so I cannot write an answer.";
pub(crate) const BUDGET_SPENT: &str = "Today's Claude token budget (CLAUDE_DAILY_TOKEN_BUDGET) is used up, so this answer is search results only; Claude answers again after midnight UTC.";

/// Answers `question` from search results alone; `why` says why first.
pub(crate) fn answer(
    tools: &dyn ToolProvider,
    question: &str,
    repo: Option<&str>,
    publish: Publish,
    why: &str,
) -> Answer {
    let mut input = json!({"query": question, "limit": RESULTS});
    if let Some(repo) = repo {
        input["repo"] = json!(repo);
    }
    let id = format!("offline_{}", uuid::Uuid::new_v4().simple());
    let mut text = format!("{why} ");
    match run_tool(tools, publish, &id, SEARCH_DOCUMENTATION, &input) {
        Ok(result) => {
            let hits = result.as_array().map(Vec::as_slice).unwrap_or_default();
            if hits.is_empty() {
                text.push_str("I also found no document matching your question");
                if let Some(repo) = repo {
                    text.push_str(&format!(" in `{repo}`"));
                }
                text.push('.');
            } else {
                text.push_str("These documents match your question best:\n");
                for (i, hit) in hits.iter().take(RESULTS).enumerate() {
                    let shown = match i {
                        0 => top_passage(tools, hit, question),
                        _ => None,
                    };
                    text.push_str(&format_hit(i + 1, hit, shown.as_deref()));
                }
            }
        }
        Err(msg) => {
            text.push_str(&format!("The documentation search failed too: {msg}"));
        }
    }
    // Streamed line by line, like an answer arriving.
    for piece in text.split_inclusive('\n') {
        publish(&ServerEvent::Text { content: piece });
    }
    let mut answer = Answer::default();
    answer.push_text(&text);
    answer
}

/// The best passage of the hit's whole document, read through the same
/// tools (any provider). `None` if it cannot be read: the snippet stands.
fn top_passage(tools: &dyn ToolProvider, hit: &Value, question: &str) -> Option<String> {
    let args = json!({"repo": hit.get("repo")?, "path": hit.get("path")?});
    let doc = tools.call(GET_DOCUMENTATION, &args).ok()?;
    let content = match &doc {
        Value::String(s) => s.as_str(),
        other => other.get("content")?.as_str()?,
    };
    let p = passage(content, question, TOP_PASSAGE_CHARS);
    (!p.trim().is_empty()).then_some(p)
}

fn format_hit(n: usize, hit: &Value, passage: Option<&str>) -> String {
    let s = |k: &str| hit.get(k).and_then(Value::as_str).unwrap_or_default();
    let (repo, path, title) = (s("repo"), s("path"), s("title"));
    let mut out = format!(
        "\n{n}. **{}** (`{repo}/{path}`)",
        if title.is_empty() { path } else { title }
    );
    if !s("heading").is_empty() && s("heading") != title {
        out.push_str(&format!(", section \"{}\"", s("heading")));
    }
    if !s("url").is_empty() {
        out.push_str(&format!(" - {}", s("url")));
    }
    out.push('\n');
    let snippet = passage
        .unwrap_or(s("snippet"))
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    if !snippet.is_empty() {
        out.push_str(&format!("   > {snippet}\n"));
    }
    out
}
