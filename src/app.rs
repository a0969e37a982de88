//! The application state shared by every thread: configuration, the tool
//! provider, the chat engine, conversations and the MCP server side.
//! Built once at start-up; everything in it is `Sync`.

use crate::access::Access;
use crate::access::rate::RateLimit;
use crate::chat::{self, Chat};
use crate::config::Config;
use crate::conversations::{self, Conversations};
use crate::docs::DocsProvider;
use crate::mcp_server::McpServer;
use crate::stopping::Registry;
use crate::tools::ToolProvider;
use crate::tools::mcp::McpClient;
use std::sync::atomic::AtomicUsize;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub struct App {
    pub config: Config,
    /// Who may call: the Host rule and the API tokens.
    pub access: Access,
    /// REST and MCP requests, and chat messages, per client.
    pub request_limit: RateLimit,
    pub message_limit: RateLimit,
    pub tools: Arc<dyn ToolProvider>,
    pub chat: Arc<Chat>,
    pub conversations: Arc<Conversations>,
    pub mcp_server: McpServer,
    /// Open WebSocket sessions, bounded by `max_ws_sessions`.
    pub ws_sessions: AtomicUsize,
    /// Open chat sockets, told when the service stops.
    pub stopping: Registry,
    /// The last `/health` body and when it was built: health checks and
    /// load balancers poll it, and building it costs more than serving it.
    pub health_cache: Mutex<Option<(Instant, Arc<[u8]>)>>,
}

impl App {
    /// Wires the tool provider: an external MCP server when `MCP_SERVER_URL`
    /// is set, otherwise the built-in documentation provider (which builds
    /// its first index in the background).
    pub fn new(config: Config) -> Arc<App> {
        let tools: Arc<dyn ToolProvider> = match &config.mcp_server_url {
            Some(url) => McpClient::start(url, config.mcp_transport, config.mcp_timeout),
            None => DocsProvider::start(&config),
        };
        App::with_tools(config, tools)
    }

    pub fn with_tools(config: Config, tools: Arc<dyn ToolProvider>) -> Arc<App> {
        let model = chat::language_model(&config);
        let mcp_server = McpServer::new(tools.clone(), &config);
        let conversations = Arc::new(Conversations::new(conversations::Limits {
            max_conversations: config.max_conversations,
            max_messages: config.max_history_messages,
            max_bytes: config.max_history_bytes,
            max_total_bytes: config.max_history_total_bytes,
        }));
        if let Some(dir) = &config.data_dir {
            conversations.start_journal(conversations::Durability {
                dir: dir.clone(),
                fsync: config.journal_fsync,
                ttl: config.conversation_ttl,
            });
        }
        let chat = Arc::new(Chat::new(
            tools.clone(),
            model,
            conversations.clone(),
            chat::Limits {
                max_tool_rounds: config.max_tool_rounds,
                history_budget: config.history_budget_chars,
                max_running_answers: config.max_running_answers,
            },
            config
                .claude_daily_token_budget
                .map(chat::budget::DailyBudget::new),
        ));
        Arc::new(App {
            access: Access::from_config(&config),
            request_limit: RateLimit::new(config.rate_limit_requests),
            message_limit: RateLimit::new(config.rate_limit_messages),
            conversations,
            chat,
            mcp_server,
            tools,
            ws_sessions: AtomicUsize::new(0),
            stopping: Registry::default(),
            health_cache: Mutex::new(None),
            config,
        })
    }
}

/// What a graceful shutdown did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stopped {
    /// Chat sockets told and closed.
    pub sockets: usize,
    /// Answers that finished within the grace period.
    pub finished: usize,
    /// Answers still running when it ran out, stored as `interrupted`.
    pub interrupted: usize,
}

/// How long interrupted answers get to store what they have.
const STORE_GRACE: Duration = Duration::from_secs(2);

impl App {
    /// The graceful part of a shutdown, once the server accepts no more
    /// connections: every chat socket gets an `error` event and a close
    /// frame (1001), running answers get `grace` to finish (they are stored
    /// as usual), and the rest are interrupted and stored as such.
    pub fn shut_down(&self, grace: Duration) -> Stopped {
        let sockets = self
            .stopping
            .stop_all("the service is stopping; reconnect in a moment to see the answer");
        let running = self.chat.running();
        wait_for(grace, || self.chat.running() == 0);
        let left = self.conversations.running_turns();
        for turn in &left {
            turn.cancel.interrupt();
        }
        wait_for(STORE_GRACE, || self.chat.running() == 0);
        self.conversations.sync_journal();
        Stopped {
            sockets,
            finished: running.saturating_sub(left.len()),
            interrupted: left.len(),
        }
    }
}

/// Polls `done` until it holds or `within` has passed (shutdown only: a
/// few dozen checks, no wake-up plumbing through every turn).
fn wait_for(within: Duration, done: impl Fn() -> bool) {
    let deadline = Instant::now() + within;
    while !done() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
}
