//! Knowledge Vault: chat with Claude about your GitHub organization's
//! documentation. See README.md, "Architecture", for the shape of the code.
#![forbid(unsafe_code)]

pub mod access;
pub mod app;
pub mod ask;
pub mod chat;
pub mod clock;
pub mod config;
pub mod conversations;
pub mod docs;
pub mod http;
pub mod mcp_server;
pub mod messages;
pub mod net;
pub mod safe_read;
pub mod sha256;
pub mod sse;
pub mod stopping;
pub mod sync;
#[cfg(test)]
pub(crate) mod testing;
pub mod tools;
