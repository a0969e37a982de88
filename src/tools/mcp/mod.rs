//! The MCP client: an external tool server behind
//! [`ToolProvider`](crate::tools::ToolProvider), spoken to as MCP Streamable
//! HTTP (JSON-RPC: `initialize`, `tools/list`, `tools/call`, `ping`) or as
//! the simple HTTP form of earlier deployments.
//!
//! One job per module: `client` keeps the connection state and its
//! monitor thread; `streamable` and `simple_http` speak the two wire forms
//! through the one HTTP agent of `agent` (with the DNS cache of
//! `resolver`); `wire` reads JSON-RPC answers; `failure` classifies what
//! went wrong and how it is told; `redact` keeps the URL's secrets out of
//! it; [`protocol`] holds the protocol's names, shared with
//! [`crate::mcp_server`].
//!
//! Deliberately not here: the legacy HTTP+SSE transport (2024-11-05, two
//! endpoints), the stateless 2026-07-28 protocol, the optional GET stream,
//! answering server→client requests (sampling, elicitation, roots: we
//! declare no client capabilities, so servers should not send them), and
//! stdio.

mod agent;
mod client;
mod failure;
pub mod protocol;
mod redact;
mod resolver;
mod simple_http;
mod streamable;
mod wire;

pub use client::{McpClient, MonitorIntervals};
