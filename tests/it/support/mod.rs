//! Shared helpers of the integration tests: the service under test and the
//! fake upstreams (each test module picks what it needs).
#![allow(dead_code)]
pub mod fake_claude;
pub mod fake_github;
pub mod fake_openai;
pub mod fake_tools;
pub mod kv;
pub mod mcp_fake;
pub mod mcp_http;
pub mod model_client;
pub mod ws_client;
