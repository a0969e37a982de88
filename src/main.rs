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
    health   Ask the running service on HOST:PORT for /health; exit 0 if it
             answers 200 (the Docker HEALTHCHECK, no curl needed)

OPTIONS:
    -h, --help       Print this help
    -V, --version    Print the version

Configuration comes from the environment and a .env file in the working
directory (the environment wins); see README.md or .env.example.
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let command = match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        [] | ["serve"] => "serve",
        ["mcp"] => "mcp",
        ["health"] => "health",
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
                    gh.api_url
                );
            }
        }
    }
    if !config.llm_configured() {
        log::warn!("ANTHROPIC_API_KEY is not set: the chat runs in offline retrieval mode");
    }
    let app = App::new(config);
    let listener = match knowledge_vault::http::bind(&app) {
        Ok(l) => l,
        Err(e) => {
            log::error!(
                "cannot listen on {}:{}: {e}",
                app.config.host,
                app.config.port
            );
            eprintln!(
                "knowledge-vault: cannot listen on {}:{}: {e}",
                app.config.host, app.config.port
            );
            return ExitCode::FAILURE;
        }
    };
    match listener.local_addr() {
        Ok(addr) => log::info!("listening on http://{addr}"),
        Err(e) => log::warn!("listening (address unknown: {e})"),
    }
    match knowledge_vault::http::serve(app, listener).and_then(|server| server.wait()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!("the HTTP server stopped, exiting: {e}");
            ExitCode::FAILURE
        }
    }
}

fn serve_mcp_stdio(config: Config) -> ExitCode {
    let app = App::new(config);
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
    let host = if config.host.is_unspecified() {
        "127.0.0.1".to_string()
    } else {
        config.host.to_string()
    };
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host
    };
    let url = format!("http://{host}:{}/health", config.port);
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .proxy(None)
        .http_status_as_error(false)
        .timeout_global(Some(std::time::Duration::from_secs(3)))
        .build()
        .into();
    match agent.get(&url).call() {
        Ok(resp) if resp.status() == 200 => {
            println!("ok: {url}");
            ExitCode::SUCCESS
        }
        Ok(resp) => {
            eprintln!("knowledge-vault: {url} answered {}", resp.status());
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("knowledge-vault: {url}: {e}");
            ExitCode::FAILURE
        }
    }
}
