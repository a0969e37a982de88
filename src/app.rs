//! The application state shared by every thread: configuration, the tool
//! provider, the Claude client, conversations and the MCP server side.
//! Built once at start-up; everything in it is `Sync`.

use crate::chat::claude::{ClaudeClient, ClaudeConfig};
use crate::config::Config;
use crate::conversations::Conversations;
use crate::docs::DocsProvider;
use crate::mcp_server::McpServer;
use crate::tools::ToolProvider;
use crate::tools::mcp::McpClient;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};
use std::time::Instant;

pub struct App {
    pub config: Config,
    pub tools: Arc<dyn ToolProvider>,
    /// `None`: no API key, the chat runs in offline retrieval mode.
    pub claude: Option<ClaudeClient>,
    pub conversations: Conversations,
    pub mcp_server: McpServer,
    /// Open WebSocket sessions, bounded by `max_ws_sessions`.
    pub ws_sessions: AtomicUsize,
    /// The last `/health` body and when it was built: health checks and
    /// load balancers poll it, and building it costs more than serving it.
    pub health_cache: Mutex<Option<(Instant, Arc<[u8]>)>>,
}

impl App {
    /// Wires the tool provider: an external MCP server when `MCP_SERVER_URL`
    /// is set, otherwise the built-in documentation provider (whose first
    /// index is built here, before the server starts listening).
    pub fn new(config: Config) -> Arc<App> {
        let tools: Arc<dyn ToolProvider> = match &config.mcp_server_url {
            Some(url) => McpClient::start(url, config.mcp_transport, config.mcp_timeout),
            None => DocsProvider::start(&config),
        };
        App::with_tools(config, tools)
    }

    pub fn with_tools(config: Config, tools: Arc<dyn ToolProvider>) -> Arc<App> {
        let claude = ClaudeConfig::from_config(&config).map(ClaudeClient::new);
        let mcp_server = McpServer::new(tools.clone(), &config);
        Arc::new(App {
            conversations: Conversations::new(
                config.max_conversations,
                config.max_history_messages,
            ),
            claude,
            mcp_server,
            tools,
            ws_sessions: AtomicUsize::new(0),
            health_cache: Mutex::new(None),
            config,
        })
    }
}
