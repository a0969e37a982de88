//! The tool seam: everything that can answer the four documentation tools.
//!
//! The REST routes, the chat turn and the MCP server side only ever see a
//! [`ToolProvider`]. Behind it sit either the built-in documentation provider
//! (in-process, no HTTP hop) or an external MCP server reached by
//! the [`mcp`] client. Nothing above this module knows which one answers.

pub mod mcp;

use serde_json::{Value, json};
use std::fmt;

/// A tool as offered to Claude and listed over MCP.
#[derive(Debug, Clone, PartialEq)]
pub struct ToolSpec {
    pub name: String,
    pub description: String,
    /// JSON Schema of the input (MCP `inputSchema`, Anthropic `input_schema`).
    pub input_schema: Value,
}

/// Why a tool call did not produce a result.
#[derive(Debug, Clone, PartialEq)]
pub enum ToolError {
    /// The provider cannot be reached (maps to 503).
    Unavailable(String),
    /// The input was refused before the tool ran, e.g. a path escaping its
    /// repository (maps to 400).
    BadInput(String),
    /// The tool ran and said the repository or document does not exist (404).
    NotFound(String),
    /// The tool ran and failed, or answered something unusable (500).
    Failed(String),
}

impl ToolError {
    pub fn message(&self) -> &str {
        match self {
            ToolError::Unavailable(m)
            | ToolError::BadInput(m)
            | ToolError::NotFound(m)
            | ToolError::Failed(m) => m,
        }
    }

    /// Classifies the free-text error of a remote tool (`isError` results carry
    /// no code), so that "not found" still becomes a 404 for the frontend.
    pub fn from_remote_message(message: String) -> ToolError {
        let lower = message.to_ascii_lowercase();
        if lower.contains("not found")
            || lower.contains("no such")
            || lower.contains("unknown repo")
        {
            ToolError::NotFound(message)
        } else {
            ToolError::Failed(message)
        }
    }
}

impl fmt::Display for ToolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.message())
    }
}

impl std::error::Error for ToolError {}

/// Whether the provider is usable right now, as `/health` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    Connected,
    Disconnected,
}

/// Anything that answers tool calls. Implementations are shared between all
/// worker and session threads, so every method takes `&self` and must not hold
/// a lock while waiting on the network.
pub trait ToolProvider: Send + Sync {
    /// Runs one tool. The result is the tool's JSON value (text content that
    /// parses as JSON is already parsed).
    fn call(&self, name: &str, arguments: &Value) -> Result<Value, ToolError>;

    /// The tools to offer Claude.
    fn tools(&self) -> Result<Vec<ToolSpec>, ToolError>;

    /// Cheap, non-blocking status for `/health`.
    fn status(&self) -> Status;

    /// Extra, additive details for `/health` (transport, last error, sources).
    fn health_details(&self) -> Value {
        Value::Null
    }

    /// `Some(progress)` while the provider is still building what it needs
    /// to answer (the built-in provider's first index): the service listens
    /// at once, `/health` shows this, and tool calls are refused with it
    /// (503) until it is `None`. Cheap and non-blocking.
    fn starting(&self) -> Option<String> {
        None
    }
}

/// Names of the four documentation tools of the contract.
pub const LIST_REPOSITORIES: &str = "list_repositories";
pub const SEARCH_DOCUMENTATION: &str = "search_documentation";
pub const GET_DOCUMENTATION: &str = "get_documentation";
pub const LIST_REPO_DOCS: &str = "list_repo_docs";

/// The contract's four tools with their input schemas. Used by the built-in
/// provider, by the MCP server side, and for simple-HTTP servers (which have
/// no `tools/list`).
pub fn documentation_tools() -> Vec<ToolSpec> {
    let spec = |name: &str, description: &str, schema: Value| ToolSpec {
        name: name.to_string(),
        description: description.to_string(),
        input_schema: schema,
    };
    vec![
        spec(
            LIST_REPOSITORIES,
            "List the repositories of the organization that have documentation, with the number of documents in each.",
            json!({"type": "object", "properties": {}}),
        ),
        spec(
            SEARCH_DOCUMENTATION,
            "Full-text search over all documentation (or one repository). Returns ranked matches with repo, path, title, heading and a snippet. Queries are read up to 4 KiB and 64 distinct words.",
            json!({
                "type": "object",
                "properties": {
                    "query": {"type": "string", "description": "What to look for, in plain words"},
                    "repo": {"type": "string", "description": "Only search this repository"},
                    "limit": {"type": "integer", "minimum": 1, "maximum": 50, "description": "Maximum number of results (default 10)"}
                },
                "required": ["query"]
            }),
        ),
        spec(
            GET_DOCUMENTATION,
            "Read the full content of one document.",
            json!({
                "type": "object",
                "properties": {
                    "repo": {"type": "string", "description": "Repository name"},
                    "path": {"type": "string", "description": "Path of the document inside the repository"}
                },
                "required": ["repo", "path"]
            }),
        ),
        spec(
            LIST_REPO_DOCS,
            "List all documentation files of one repository.",
            json!({
                "type": "object",
                "properties": {
                    "repo": {"type": "string", "description": "Repository name"}
                },
                "required": ["repo"]
            }),
        ),
    ]
}

/// Refuses a document path that could leave its repository: `..` segments,
/// absolute paths, backslashes used as separators and NUL bytes. Shared by the
/// REST layer (before any tool runs) and the built-in provider.
pub fn check_relative_path(path: &str) -> Result<(), ToolError> {
    let bad = |why: &str| Err(ToolError::BadInput(format!("invalid path {path:?}: {why}")));
    if path.is_empty() {
        return bad("empty");
    }
    if path.contains('\0') {
        return bad("contains a NUL byte");
    }
    // A drive (`C:` alone or followed by a separator) is absolute; a name
    // such as `1:1-meetings.md` is not.
    let drive = matches!(path.as_bytes(), [l, b':', rest @ ..] if l.is_ascii_alphabetic() && matches!(rest.first(), None | Some(b'/' | b'\\')));
    if path.starts_with('/') || path.starts_with('\\') || drive {
        return bad("absolute paths are not allowed");
    }
    if path.split(['/', '\\']).any(|seg| seg == "..") {
        return bad("'..' segments are not allowed");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_check_refuses_escapes() {
        for p in [
            "../x",
            "a/../../b",
            "/etc/passwd",
            "a\0b",
            "..",
            "C:/x",
            "c:",
            "D:\\x",
            "a\\..\\b",
            "",
        ] {
            assert!(check_relative_path(p).is_err(), "{p:?} should be refused");
        }
        for p in [
            "README.md",
            "docs/a b/c.md",
            "a/..b/c.md",
            "x/.hidden/y.md",
            "1:1-meetings.md",
            "a:b.md",
        ] {
            assert!(check_relative_path(p).is_ok(), "{p:?} should pass");
        }
    }
}
