//! The chat: the Claude client, the turn (tool loop), the system prompt and
//! the offline retrieval mode.

pub mod claude;
