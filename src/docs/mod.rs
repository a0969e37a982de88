//! The built-in documentation provider: repositories from local folders (and
//! later a GitHub organization), an in-memory search index, and the four
//! documentation tools answered in-process.
//!
//! STUB: to be written (issue 4). Public API the rest of the program uses:
//! `DocsProvider::start(&Config) -> Arc<DocsProvider>` and `impl ToolProvider`.

pub mod github;
pub mod source;

use crate::config::Config;
use crate::tools::{Status, ToolError, ToolProvider, ToolSpec};
use serde_json::Value;
use std::sync::Arc;

pub struct DocsProvider {}

impl DocsProvider {
    /// Builds the first index (blocking) and starts the refresh thread.
    pub fn start(_config: &Config) -> Arc<DocsProvider> {
        Arc::new(DocsProvider {})
    }
}

impl ToolProvider for DocsProvider {
    fn call(&self, name: &str, _arguments: &Value) -> Result<Value, ToolError> {
        Err(ToolError::Failed(format!(
            "tool {name} is not implemented yet"
        )))
    }
    fn tools(&self) -> Result<Vec<ToolSpec>, ToolError> {
        Ok(crate::tools::documentation_tools())
    }
    fn status(&self) -> Status {
        Status::Connected
    }
}
