//! The MCP client: Streamable HTTP (JSON-RPC) and the simple HTTP form of
//! earlier deployments, behind [`crate::tools::ToolProvider`].
//!
//! STUB: to be written (issue 2, part 4). Public API:
//! `McpClient::start(url, transport, timeout) -> Arc<McpClient>` (never
//! blocks on the network) and `impl ToolProvider`.

use crate::config::McpTransport;
use crate::tools::{Status, ToolError, ToolProvider, ToolSpec};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

pub struct McpClient {}

impl McpClient {
    pub fn start(_url: &str, _transport: McpTransport, _timeout: Duration) -> Arc<McpClient> {
        Arc::new(McpClient {})
    }
}

impl ToolProvider for McpClient {
    fn call(&self, _name: &str, _arguments: &Value) -> Result<Value, ToolError> {
        Err(ToolError::Unavailable(
            "MCP client not implemented yet".into(),
        ))
    }
    fn tools(&self) -> Result<Vec<ToolSpec>, ToolError> {
        Err(ToolError::Unavailable(
            "MCP client not implemented yet".into(),
        ))
    }
    fn status(&self) -> Status {
        Status::Disconnected
    }
}
