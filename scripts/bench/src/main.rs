//! `kvbench`: the fakes and the load generator behind `scripts/bench/run`.
//!
//! - `kvbench free-port` — prints a free loopback port.
//! - `kvbench fake-claude PORT` / `kvbench fake-mcp PORT` — serve until killed.
//! - `kvbench make-journal DIR N M` — writes a conversation journal of N
//!   conversations of M messages (the restart figure).
//! - `kvbench report ...` — runs every measurement against running instances
//!   (started by the script, which also stops them) and prints the table.
//!
//! Loopback only: every address is 127.0.0.1.

mod fakes;
mod http;
mod journal;
mod load;
mod report;

use std::net::TcpListener;

fn listen(port: &str) -> TcpListener {
    let port: u16 = port.parse().unwrap_or(0);
    match TcpListener::bind(("127.0.0.1", port)) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("kvbench: cannot listen on 127.0.0.1:{port}: {e}");
            std::process::exit(1);
        }
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize| args.get(i).map(String::as_str).unwrap_or("0");
    match arg(0) {
        "free-port" => {
            let l = listen("0");
            println!("{}", l.local_addr().map(|a| a.port()).unwrap_or(0));
        }
        "fake-claude" => fakes::serve(listen(arg(1)), fakes::claude_connection),
        "fake-mcp" => fakes::serve(listen(arg(1)), fakes::mcp_connection),
        "report" => report::run(&args[1..]),
        "make-journal" => journal::make(
            arg(1),
            arg(2).parse().unwrap_or(10_000),
            arg(3).parse().unwrap_or(20),
        ),
        "chats" => report::chats(&args[1..]),
        "rest" => report::rest(&args[1..]),
        other => {
            eprintln!(
                "kvbench: unknown command {other:?}; use free-port, fake-claude, fake-mcp or report"
            );
            std::process::exit(2);
        }
    }
}
