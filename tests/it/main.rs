//! The integration tests, one binary (one link instead of one per file).
//!
//! Most tests start the real `knowledge-vault` binary (`support/kv.rs`)
//! against fakes in `support/` that speak the exact wire formats of Claude,
//! MCP servers and GitHub. `cargo test -- --ignored interop` runs the tests
//! against real third-party peers (see `scripts/test`).

mod support;

mod access;
mod ask;
mod browser;
mod builtin;
mod chat_limits;
mod claude;
mod docs;
mod front_door;
mod github;
mod github_service;
mod http;
mod journal;
mod mcp_client;
mod mcp_server;
mod openai;
mod page;
mod search;
mod service_mcp;
mod shutdown;
mod ws;
