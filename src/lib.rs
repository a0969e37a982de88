//! Knowledge Vault: chat with Claude about your GitHub organization's
//! documentation. See README.md, "Architecture", for the shape of the code.
#![forbid(unsafe_code)]

pub mod app;
pub mod ask;
pub mod chat;
pub mod clock;
pub mod config;
pub mod conversations;
pub mod docs;
pub mod http;
pub mod mcp_server;
pub mod net;
pub mod sse;
pub mod sync;
pub mod tools;
