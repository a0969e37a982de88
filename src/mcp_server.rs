//! The MCP server side: any [`ToolProvider`] offered over MCP, as Streamable
//! HTTP at `/mcp` and over stdio (`knowledge-vault mcp`).
//!
//! STUB: to be written (issue 4, part 5). Decoupled from tiny_http: the HTTP
//! route hands over an [`McpHttpRequest`] and writes back the [`McpHttpReply`].

use crate::tools::ToolProvider;
use std::sync::Arc;

/// The parts of an HTTP request to `/mcp` that the transport needs.
pub struct McpHttpRequest<'a> {
    pub method: &'a str,
    pub host: Option<&'a str>,
    pub origin: Option<&'a str>,
    pub accept: Option<&'a str>,
    pub content_type: Option<&'a str>,
    pub session_id: Option<&'a str>,
    pub protocol_version: Option<&'a str>,
    pub body: &'a [u8],
}

pub struct McpHttpReply {
    pub status: u16,
    /// Extra headers (Content-Type, Mcp-Session-Id, ...).
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

pub struct McpServer {
    #[allow(dead_code)]
    provider: Arc<dyn ToolProvider>,
}

impl McpServer {
    /// `allowed_origins` are the CORS origins; `port` is the service's port
    /// (for `Host` validation against DNS rebinding).
    pub fn new(
        provider: Arc<dyn ToolProvider>,
        _allowed_origins: Vec<String>,
        _port: u16,
    ) -> McpServer {
        McpServer { provider }
    }

    pub fn handle_http(&self, _req: &McpHttpRequest<'_>) -> McpHttpReply {
        McpHttpReply {
            status: 501,
            headers: vec![],
            body: b"{\"detail\":\"MCP server not implemented yet\"}".to_vec(),
        }
    }

    /// Serves newline-delimited JSON-RPC until `input` ends.
    pub fn serve_stdio(
        &self,
        _input: impl std::io::BufRead,
        _output: impl std::io::Write,
    ) -> std::io::Result<()> {
        Ok(())
    }
}
