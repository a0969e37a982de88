//! Shared helpers of the integration tests (each test file picks what it needs).
#![allow(dead_code)]
pub mod mcp_fake;
pub mod mcp_http;
