//! The chat: the Claude client, the turn (tool loop), the system prompt and
//! the offline retrieval mode. Knows nothing about WebSockets or HTTP.

pub mod claude;
pub mod offline;
pub mod prompt;
pub mod turn;
