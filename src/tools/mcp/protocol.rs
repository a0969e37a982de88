//! The names and numbers of the Model Context Protocol that both sides of
//! this program use: the client (`tools::mcp`) and the server
//! (`mcp_server`). One list, so the two cannot drift apart.

/// The JSON-RPC version every message carries.
pub const JSONRPC_VERSION: &str = "2.0";

/// Protocol revisions of the handshake era (`initialize` first) that both
/// sides speak.
pub const SUPPORTED_VERSIONS: [&str; 4] = ["2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"];
/// The revision the client offers in `initialize`, and the one the server
/// answers a client that offers a revision it does not know.
pub const PREFERRED_VERSION: &str = "2025-06-18";

pub const INITIALIZE: &str = "initialize";
pub const INITIALIZED: &str = "notifications/initialized";
pub const PING: &str = "ping";
pub const TOOLS_LIST: &str = "tools/list";
pub const TOOLS_CALL: &str = "tools/call";
pub const TOOLS_LIST_CHANGED: &str = "notifications/tools/list_changed";

/// The Streamable HTTP session header.
pub const SESSION_ID_HEADER: &str = "Mcp-Session-Id";
/// The header naming the negotiated revision on every request after `initialize`.
pub const PROTOCOL_VERSION_HEADER: &str = "MCP-Protocol-Version";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_preferred_version_is_supported() {
        assert!(SUPPORTED_VERSIONS.contains(&PREFERRED_VERSION));
    }
}
