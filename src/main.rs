//! The `knowledge-vault` command: parse arguments, read the configuration,
//! start logging, then serve (HTTP + WebSocket) or answer MCP over stdio.
#![forbid(unsafe_code)]

use knowledge_vault::app::App;
use knowledge_vault::config::{self, Config};
use std::process::ExitCode;

const HELP: &str = "\
knowledge-vault - chat with Claude about your GitHub organization's documentation

USAGE:
    knowledge-vault [COMMAND]

COMMANDS:
    serve    Run the HTTP + WebSocket service (the default)
    mcp      Serve the documentation tools over MCP on stdin/stdout
             (for Claude Desktop, Claude Code and IDEs)
    health   Ask the running service on HOST:PORT for /health; exit 0 if its
             documentation tools can answer (or it is still indexing), 1
             with the reason otherwise (the Docker HEALTHCHECK, no curl)
    ask \"QUESTION\" [--repo NAME] [--url URL] [--timeout SECS]
             Ask the running service (default: HOST:PORT) a question: the
             answer streams to stdout, tool calls to stderr; exit 0 when it
             is done, 1 on an error (API_TOKEN: the access token to send)

OPTIONS:
    -h, --help       Print this help
    -V, --version    Print the version

Configuration comes from the environment and a .env file in the working
directory (the environment wins); see README.md or .env.example.
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut ask = None;
    let command = match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        [] | ["serve"] => "serve",
        ["mcp"] => "mcp",
        ["health"] => "health",
        ["ask", rest @ ..] => match knowledge_vault::ask::parse_args(rest) {
            Ok(a) => {
                ask = Some(a);
                "ask"
            }
            Err(e) => {
                eprintln!("knowledge-vault: {e}");
                return ExitCode::from(2);
            }
        },
        ["-h"] | ["--help"] | ["help"] => {
            print!("{HELP}");
            return ExitCode::SUCCESS;
        }
        ["-V"] | ["--version"] => {
            println!("knowledge-vault {}", env!("CARGO_PKG_VERSION"));
            return ExitCode::SUCCESS;
        }
        other => {
            eprintln!("knowledge-vault: unknown arguments {other:?}; see --help");
            return ExitCode::from(2);
        }
    };
    let config = match Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("knowledge-vault: {e}");
            return ExitCode::from(2);
        }
    };
    if command == "health" {
        return health_check(&config);
    }
    if let Some(ask) = &ask {
        return ExitCode::from(knowledge_vault::ask::run(ask, &config));
    }
    if command == "serve"
        && let Err(e) = config.check_exposure()
    {
        eprintln!("knowledge-vault: {e}");
        return ExitCode::from(2);
    }
    init_logging(config.log_level);
    match command {
        "mcp" => serve_mcp_stdio(config),
        _ => serve(config),
    }
}

/// Logs go to stderr, always: in `mcp` mode stdout carries the protocol.
fn init_logging(level: log::LevelFilter) {
    let cfg = simplelog::ConfigBuilder::new()
        .set_target_level(log::LevelFilter::Off)
        .set_thread_level(log::LevelFilter::Off)
        .add_filter_ignore_str("rustls")
        .add_filter_ignore_str("ureq")
        .build();
    // simplelog writes a line in several pieces; LineWriter makes it one
    // write(2) per line instead of one per piece (stderr is unbuffered).
    let _ = simplelog::WriteLogger::init(level, cfg, std::io::LineWriter::new(std::io::stderr()));
}

fn serve(config: Config) -> ExitCode {
    log::info!("knowledge-vault {} starting", env!("CARGO_PKG_VERSION"));
    match (&config.mcp_server_url, &config.docs_dir, &config.github) {
        (Some(_), _, _) => log::info!("tools: external MCP server ({:?})", config.mcp_transport),
        (None, dir, gh) => {
            let dir = dir
                .as_deref()
                .or(gh.is_none().then_some(std::path::Path::new(".")));
            if let Some(dir) = dir {
                log::info!(
                    "tools: built-in documentation provider over {}",
                    config::display_path(dir)
                );
            }
            if let Some(gh) = gh {
                log::info!(
                    "tools: built-in documentation provider mirroring GitHub {} via {}",
                    gh.org,
                    knowledge_vault::net::display_url(&gh.api_url)
                );
            }
        }
    }
    if !config.llm_configured() {
        log::warn!("ANTHROPIC_API_KEY is not set: the chat runs in offline retrieval mode");
    }
    // Bind before anything slow (the first index is built in the
    // background): a port in use is reported at once, and /health answers
    // while the documentation is read.
    let listener = match knowledge_vault::http::bind(&config) {
        Ok(l) => l,
        Err(e) => {
            log::error!("cannot listen on {}:{}: {e}", config.host, config.port);
            return ExitCode::FAILURE;
        }
    };
    let app = App::new(config);
    let addr = listener.local_addr();
    let server = match knowledge_vault::http::serve(app.clone(), listener) {
        Ok(s) => std::sync::Arc::new(s),
        Err(e) => {
            log::error!("cannot start the HTTP server: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Err(e) = watch_signals(app, server.clone()) {
        log::warn!("cannot watch SIGTERM/SIGINT ({e}); a stop will not be graceful");
    }
    match addr {
        Ok(addr) => log::info!("listening on http://{addr}"),
        Err(e) => log::warn!("listening (address unknown: {e})"),
    }
    match server.wait() {
        // A signal stopped the accepting; the shutdown thread ends the
        // process once the answers are stored.
        Ok(()) => loop {
            std::thread::park();
        },
        Err(e) => {
            log::error!("the HTTP server stopped, exiting: {e}");
            ExitCode::FAILURE
        }
    }
}

/// SIGTERM (`docker stop`) and SIGINT (Ctrl-C): the first stops the
/// service gracefully (see `App::shut_down`) and exits 0; a second one exits
/// at once.
fn watch_signals(
    app: std::sync::Arc<App>,
    server: std::sync::Arc<knowledge_vault::http::HttpServer>,
) -> std::io::Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT])?;
    let name = |sig: i32| if sig == SIGINT { "SIGINT" } else { "SIGTERM" };
    std::thread::Builder::new()
        .name("signals".into())
        .stack_size(64 * 1024)
        .spawn(move || {
            let mut received = signals.forever();
            let Some(first) = received.next() else {
                return;
            };
            let grace = app.config.shutdown_grace;
            log::info!(
                "{} received: stopping, running answers get {} s (a second signal stops at once)",
                name(first),
                grace.as_secs()
            );
            let app = app.clone();
            let spawned = std::thread::Builder::new()
                .name("shutdown".into())
                .spawn(move || {
                    server.stop_accepting();
                    let s = app.shut_down(grace);
                    log::info!(
                        "stopped: {} chat sockets closed, {} answers finished, {} interrupted",
                        s.sockets,
                        s.finished,
                        s.interrupted
                    );
                    std::process::exit(0);
                });
            if spawned.is_err() {
                std::process::exit(1);
            }
            if let Some(second) = received.next() {
                log::warn!("{} received again: stopping now", name(second));
                std::process::exit(128 + second);
            }
        })?;
    Ok(())
}

fn serve_mcp_stdio(mut config: Config) -> ExitCode {
    // Only the documentation tools are served: no conversations to keep.
    config.data_dir = None;
    let app = App::new(config);
    // A client's first tools/call would otherwise find the index still
    // being built; MCP clients wait for `initialize` far longer than this.
    let since = std::time::Instant::now();
    while let Some(progress) = app.tools.starting() {
        if since.elapsed() > std::time::Duration::from_secs(300) {
            log::warn!("serving before the documentation is ready: {progress}");
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let stdin = std::io::stdin().lock();
    let stdout = std::io::stdout().lock();
    match app.mcp_server.serve_stdio(stdin, stdout) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("MCP stdio transport failed: {e}");
            ExitCode::FAILURE
        }
    }
}

fn health_check(config: &Config) -> ExitCode {
    let url = format!("{}/health", knowledge_vault::ask::service_url(config));
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .proxy(None)
        .http_status_as_error(false)
        .timeout_global(Some(std::time::Duration::from_secs(3)))
        .build()
        .into();
    // With tokens on, /health shows its details to a token only.
    let mut request = agent.get(&url);
    if let Some(token) = config.api_tokens.first() {
        request = request.header("Authorization", format!("Bearer {}", token.expose()));
    }
    let body = match request.call() {
        Ok(resp) if resp.status() == 200 => resp
            .into_body()
            .with_config()
            .limit(1 << 20)
            .read_to_string()
            .unwrap_or_default(),
        Ok(resp) => {
            eprintln!("knowledge-vault: {url} answered {}", resp.status());
            return ExitCode::FAILURE;
        }
        Err(e) => {
            eprintln!("knowledge-vault: {url}: {e}");
            return ExitCode::FAILURE;
        }
    };
    match health_verdict(&body) {
        Ok(line) => {
            println!("ok: {url}: {line}");
            ExitCode::SUCCESS
        }
        Err(why) => {
            eprintln!("knowledge-vault: unhealthy: {why}");
            ExitCode::FAILURE
        }
    }
}

/// Whether a `/health` body means the service can do its job: it must be
/// able to answer the documentation tools (a container whose documents are
/// missing is not healthy). Still indexing counts as healthy: it is start-up,
/// and restarting would only start it again. No model key is a choice, not a
/// fault (offline mode).
fn health_verdict(body: &str) -> Result<String, String> {
    let h: serde_json::Value =
        serde_json::from_str(body).map_err(|e| format!("/health is not JSON: {e}"))?;
    let tools = &h["services"]["mcp_server"];
    let text = |v: &serde_json::Value| v.as_str().map(str::to_string);
    if tools["state"] == "indexing" {
        let progress = text(&tools["progress"]).unwrap_or_default();
        return Ok(format!("indexing the documentation ({progress})"));
    }
    if tools["status"] == "connected" {
        return Ok(text(&h["status"]).unwrap_or_default());
    }
    if tools.is_null() {
        return Err(format!(
            "/health shows no details (an API token is needed): status {}",
            h["status"]
        ));
    }
    let reason = ["error", "last_error", "reason", "detail"]
        .iter()
        .find_map(|k| text(&tools[*k]))
        .unwrap_or_else(|| "no reason given".into());
    Err(format!("the documentation tools are unavailable: {reason}"))
}

#[cfg(test)]
mod tests {
    use super::health_verdict;

    #[test]
    fn health_verdicts() {
        let ok = r#"{"status":"degraded","services":{"mcp_server":{"status":"connected"}}}"#;
        assert!(health_verdict(ok).is_ok());
        let indexing = r#"{"services":{"mcp_server":{"status":"disconnected","state":"indexing","progress":"3 of 9 files"}}}"#;
        assert!(health_verdict(indexing).unwrap().contains("3 of 9"));
        let down = r#"{"services":{"mcp_server":{"status":"disconnected","error":"DOCS_DIR /docs: No such file or directory"}}}"#;
        assert!(health_verdict(down).unwrap_err().contains("/docs"));
        assert!(health_verdict("<html>").is_err());
    }
}
