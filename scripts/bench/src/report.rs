//! Runs every measurement of issue 6 against instances the script started,
//! in an order that keeps them apart (idle readings first, settle readings
//! last), and prints one table.
//!
//! Arguments (`key=value`): `claude=ADDR mcp=ADDR chat=ADDR,PID docs=ADDR,PID
//! empty=ADDR,PID [log=LEVEL] [emptylog=LEVEL]`. `chat` is the instance
//! with the simple-HTTP MCP server, `docs` the in-process provider, `empty`
//! the one with no documents (idle RSS; also `/health` at its log level).

use crate::load::{self, Burst, ChatShape, RssSampler, Target};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

static NEXT_ID: AtomicU64 = AtomicU64::new(0);

/// Fresh conversation ids, also across runs against the same instance.
fn ids(n: usize) -> u64 {
    if NEXT_ID.load(Ordering::Relaxed) == 0 {
        let seed = (crate::fakes::now_ns() as u64 & 0xffff_ffff) << 16;
        let _ = NEXT_ID.compare_exchange(0, seed.max(1), Ordering::Relaxed, Ordering::Relaxed);
    }
    NEXT_ID.fetch_add(n as u64, Ordering::Relaxed)
}

struct Instance {
    addr: String,
    pid: u32,
}

fn instance(args: &HashMap<&str, &str>, key: &str) -> Instance {
    let v = args.get(key).copied().unwrap_or_default();
    let (addr, pid) = v.split_once(',').unwrap_or((v, "0"));
    Instance {
        addr: addr.to_string(),
        pid: pid.parse().unwrap_or(0),
    }
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1e3)
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

fn pct<T: Copy + Ord + Default>(sorted: &[T], p: f64) -> T {
    sorted
        .get(((sorted.len() as f64 * p) as usize).min(sorted.len().saturating_sub(1)))
        .copied()
        .unwrap_or_default()
}

fn yes(ok: bool) -> &'static str {
    if ok { "met" } else { "NOT met" }
}

struct Table {
    rows: Vec<[String; 5]>,
}

impl Table {
    fn row(&mut self, what: &str, product: String, fakes: String, target: &str, verdict: &str) {
        eprintln!("  {what}: {product} (fakes alone: {fakes})");
        self.rows.push([
            what.to_string(),
            product,
            fakes,
            target.to_string(),
            verdict.to_string(),
        ]);
    }

    fn print(&self, title: &str, head: [&str; 5]) {
        println!("\n### {title}\n");
        println!("| {} |", head.join(" | "));
        println!("|{}", "---|".repeat(5));
        for r in &self.rows {
            println!("| {} |", r.join(" | "));
        }
    }
}

/// Sequential chats: sorted send→done durations and relay latencies.
fn sequential(target: &Target, n: usize, shape: ChatShape) -> (Vec<Duration>, Vec<i64>, usize) {
    let (mut done, mut relay, mut errors) = (Vec::new(), Vec::new(), 0);
    for _ in 0..n {
        match load::chat(target, ids(1), shape) {
            Ok(o) => {
                done.push(o.send_to_done);
                relay.extend(o.relay_ns);
            }
            Err(e) => {
                if errors == 0 {
                    eprintln!("  chat error: {e}");
                }
                errors += 1;
            }
        }
    }
    done.sort_unstable();
    relay.sort_unstable();
    (done, relay, errors)
}

fn run_burst(target: &Target, n: usize, shape: ChatShape) -> Burst {
    let b = load::burst(target, n, shape, ids(n));
    if let Some(e) = &b.first_error {
        eprintln!("  first error of {n}: {e}");
    }
    b
}

fn rate(b: &Burst) -> f64 {
    b.ok as f64 / b.wall.as_secs_f64().max(1e-9)
}

/// Waits until the process is back to `threads`/`fds` (or `limit` passes).
fn settle(pid: u32, threads: u64, fds: u64, limit: Duration) -> (u64, u64, Duration) {
    let t0 = Instant::now();
    loop {
        let (t, f) = (load::threads(pid), load::fds(pid));
        if (t <= threads && f <= fds) || t0.elapsed() >= limit {
            return (t, f, t0.elapsed());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

pub fn run(raw: &[String]) {
    let args: HashMap<&str, &str> = raw.iter().filter_map(|a| a.split_once('=')).collect();
    let claude = args.get("claude").copied().unwrap_or_default().to_string();
    let mcp = args.get("mcp").copied().unwrap_or_default().to_string();
    let chat_i = instance(&args, "chat");
    let docs_i = instance(&args, "docs");
    let empty_i = instance(&args, "empty");
    let log = args.get("log").copied().unwrap_or("warn");
    let emptylog = args.get("emptylog").copied().unwrap_or("info");
    let product = Target::Product {
        addr: chat_i.addr.clone(),
    };
    let fakes = Target::Fakes {
        claude: claude.clone(),
        mcp: mcp.clone(),
    };
    let flat = ChatShape {
        pace_ms: 0,
        deltas: 50,
    };
    let paced = ChatShape {
        pace_ms: 20,
        deltas: 50,
    };

    // Idle, before any load.
    std::thread::sleep(Duration::from_millis(500));
    let idle_empty = load::rss_kib(empty_i.pid);
    let _ = load::get_once(&empty_i.addr, "/health");
    let idle_empty_after_health = load::rss_kib(empty_i.pid);
    let idle = (
        load::rss_kib(chat_i.pid),
        load::threads(chat_i.pid),
        load::fds(chat_i.pid),
    );
    let idle_docs = (load::threads(docs_i.pid), load::fds(docs_i.pid));
    eprintln!("idle: chat instance {idle:?}, empty instance {idle_empty} KiB");

    let mut main = Table { rows: Vec::new() };
    main.row(
        "idle RSS, no documents loaded (after start / after one request)",
        format!("{} / {}", mib(idle_empty), mib(idle_empty_after_health)),
        "-".into(),
        "≤ 5 MiB",
        yes(idle_empty_after_health <= 5 * 1024),
    );

    // 1. One chat, sequential.
    eprintln!("one chat, 200 sequential, no pacing");
    sequential(&fakes, 20, flat);
    sequential(&product, 20, flat);
    let (fd, _, fe) = sequential(&fakes, 200, flat);
    let (pd, _, pe) = sequential(&product, 200, flat);
    let (p50, f50) = (pct(&pd, 0.5), pct(&fd, 0.5));
    main.row(
        "one chat send→done p50 / p99 (200 sequential, no pacing)",
        format!("{} / {} ({pe} errors)", ms(p50), ms(pct(&pd, 0.99))),
        format!("{} / {} ({fe} errors)", ms(f50), ms(pct(&fd, 0.99))),
        "p50 within 1 ms of fakes",
        yes(pe == 0 && p50 <= f50 + Duration::from_millis(1)),
    );

    // 2. Relay latency with 20 ms pacing.
    eprintln!("relay, 5 chats with 20 ms pacing");
    let (_, fr, _) = sequential(&fakes, 5, paced);
    let (_, pr, pe) = sequential(&product, 5, paced);
    let us = |ns: i64| format!("{:.1} µs", ns as f64 / 1e3);
    main.row(
        "relay: stamp → client receipt p50 / p99 (20 ms pacing, 255 deltas)",
        format!(
            "{} / {} ({pe} errors)",
            us(pct(&pr, 0.5)),
            us(pct(&pr, 0.99))
        ),
        format!("{} / {}", us(pct(&fr, 0.5)), us(pct(&fr, 0.99))),
        "p50 ≤ 100 µs",
        yes(pe == 0 && pct(&pr, 0.5) <= 100_000),
    );

    // 3 & 4. Concurrent chats.
    let mut scale = Table { rows: Vec::new() };
    let mut at_1000 = None;
    for n in [100, 500, 1000, 2000] {
        eprintln!("{n} concurrent chats, no pacing");
        let f = run_burst(&fakes, n, flat);
        std::thread::sleep(Duration::from_millis(500));
        let sampler = RssSampler::start(chat_i.pid);
        let p = run_burst(&product, n, flat);
        let peak = sampler.peak_kib();
        std::thread::sleep(Duration::from_millis(500));
        let after = load::rss_kib(chat_i.pid);
        scale.rows.push([
            n.to_string(),
            format!("{}/{n} in {} = {:.0} chats/s", p.ok, ms(p.wall), rate(&p)),
            format!("{}/{n} in {} = {:.0} chats/s", f.ok, ms(f.wall), rate(&f)),
            format!("{} (after: {})", mib(peak), mib(after)),
            format!("{}", p.errors),
        ]);
        eprintln!(
            "  product {:?}, fakes {:?}, peak {peak} KiB",
            p.wall, f.wall
        );
        if n == 1000 {
            at_1000 = Some((p, f, peak, after));
        }
    }
    // The same burst with the conversation journal off (DATA_DIR=), to
    // show what durability costs.
    let no_journal = args.get("nojournal").map(|_| instance(&args, "nojournal"));
    if let (Some(nj), Some((p, _, _, _))) = (&no_journal, &at_1000) {
        eprintln!("1000 concurrent chats, no pacing, journal off");
        let q = run_burst(
            &Target::Product {
                addr: nj.addr.clone(),
            },
            1000,
            flat,
        );
        main.row(
            "1,000 concurrent chats, no pacing: journal on / off (DATA_DIR=)",
            format!("{:.0} / {:.0} chats/s", rate(p), rate(&q)),
            "-".into(),
            "journal on within its goals",
            yes(p.ok == 1000 && q.ok == 1000 && rate(p) >= 500.0),
        );
    }
    if let Some((p, f, peak, _after)) = &at_1000 {
        main.row(
            "1,000 concurrent chats, no pacing",
            format!("{}/1000, {:.0} chats/s", p.ok, rate(p)),
            format!("{}/1000, {:.0} chats/s", f.ok, rate(f)),
            "1000/1000, ≥ 500 chats/s",
            yes(p.ok == 1000 && rate(p) >= 500.0),
        );
        main.row(
            "peak RSS during 1,000 concurrent chats (VmRSS every 10 ms)",
            mib(*peak),
            "-".into(),
            "≤ 60 MiB",
            yes(*peak <= 60 * 1024),
        );
    }
    eprintln!("1000 concurrent chats, 20 ms pacing");
    let f = run_burst(&fakes, 1000, paced);
    std::thread::sleep(Duration::from_millis(500));
    let sampler = RssSampler::start(chat_i.pid);
    let p = run_burst(&product, 1000, paced);
    let peak_paced = sampler.peak_kib();
    main.row(
        "1,000 concurrent chats, 20 ms pacing (50 deltas ≥ 1 s each): wall",
        format!(
            "{}/1000 in {} (peak RSS {})",
            p.ok,
            ms(p.wall),
            mib(peak_paced)
        ),
        format!("{}/1000 in {}", f.ok, ms(f.wall)),
        "all within 3 s",
        yes(p.ok == 1000 && p.wall <= Duration::from_secs(3)),
    );

    // 5. REST at 64 keep-alive connections.
    let (warm, dur) = (Duration::from_secs(1), Duration::from_secs(4));
    let mut rest = |what: &str,
                    addr: &str,
                    method,
                    path,
                    body,
                    target: &str,
                    ok: &dyn Fn(&load::RestResult) -> bool,
                    fakes: String| {
        eprintln!("{what}");
        let r = load::rest(addr, method, path, body, 64, warm, dur);
        main.row(
            what,
            format!(
                "{:.0} req/s, p50 {} p99 {} ({} errors)",
                r.per_sec,
                ms(r.p50),
                ms(r.p99),
                r.errors
            ),
            fakes,
            target,
            yes(r.errors == 0 && ok(&r)),
        );
        r
    };
    rest(
        &format!("GET /health, 64 connections, LOG_LEVEL={log}"),
        &chat_i.addr,
        "GET",
        "/health",
        b"",
        "≥ 40,000 req/s, p99 ≤ 2 ms",
        &|r| r.per_sec >= 40_000.0 && r.p99 <= Duration::from_millis(2),
        "-".into(),
    );
    rest(
        &format!("GET /health, 64 connections, LOG_LEVEL={emptylog}"),
        &empty_i.addr,
        "GET",
        "/health",
        b"",
        "≥ 40,000 req/s, p99 ≤ 2 ms",
        &|r| r.per_sec >= 40_000.0 && r.p99 <= Duration::from_millis(2),
        "-".into(),
    );
    eprintln!("fake MCP alone");
    let fm = load::rest(
        &mcp,
        "POST",
        "/tools/execute",
        br#"{"name":"list_repositories","arguments":{}}"#,
        64,
        warm,
        dur,
    );
    rest(
        &format!("GET /api/repos via simple-HTTP MCP, 64 connections, LOG_LEVEL={log}"),
        &chat_i.addr,
        "GET",
        "/api/repos",
        b"",
        "≥ 8,000 req/s",
        &|r| r.per_sec >= 8_000.0,
        format!(
            "{:.0} req/s, p99 {} (POST /tools/execute)",
            fm.per_sec,
            ms(fm.p99)
        ),
    );
    rest(
        &format!("GET /api/repos via in-process provider, 64 connections, LOG_LEVEL={log}"),
        &docs_i.addr,
        "GET",
        "/api/repos",
        b"",
        "≥ 30,000 req/s",
        &|r| r.per_sec >= 30_000.0,
        "-".into(),
    );

    // 7. Keep-alive GET of a few-KB conversation history, one connection
    // (a second small write used to wait ~40 ms for a delayed ACK).
    let conv = ids(1);
    for _ in 0..3 {
        if let Err(e) = load::chat(&product, conv, flat) {
            eprintln!("  history chat error: {e}");
        }
    }
    let history: &'static str = Box::leak(
        format!("/api/conversations/00000000-0000-4000-8000-{conv:012x}/messages").into_boxed_str(),
    );
    let size = load::get_once(&chat_i.addr, history)
        .map(|(_, b)| b.len())
        .unwrap_or(0);
    eprintln!("conversation history, one keep-alive connection");
    let h = load::rest(&chat_i.addr, "GET", history, b"", 1, warm, dur);
    main.row(
        &format!("GET a conversation history ({size} bytes), 1 keep-alive connection, p50 / p99"),
        format!(
            "{} / {}, {:.0} req/s ({} errors)",
            ms(h.p50),
            ms(h.p99),
            h.per_sec,
            h.errors
        ),
        "-".into(),
        "p99 ≤ 5 ms (no 40 ms Nagle stall)",
        yes(h.errors == 0 && h.p99 <= Duration::from_millis(5)),
    );

    // 8. /health while slow clients hold connections, next to idle.
    eprintln!("/health idle, then with 300 slow heads and 8 slow uploads");
    let short = Duration::from_secs(2);
    let idle_h = load::rest(&docs_i.addr, "GET", "/health", b"", 8, warm, short);
    let slow = load::SlowClients::start(&docs_i.addr, 300, 8);
    let busy_h = match &slow {
        Ok(_) => Ok(load::rest(
            &docs_i.addr,
            "GET",
            "/health",
            b"",
            8,
            warm,
            short,
        )),
        Err(e) => Err(e.clone()),
    };
    drop(slow);
    match busy_h {
        Ok(b) => main.row(
            "GET /health p50 / p99 (8 keep-alive connections): idle → with 300 slow-header clients and 8 slow uploads",
            format!(
                "{} / {} → {} / {} ({} errors)",
                ms(idle_h.p50),
                ms(idle_h.p99),
                ms(b.p50),
                ms(b.p99),
                b.errors
            ),
            "-".into(),
            "p99 well under 1 s",
            yes(b.errors == 0 && b.p99 < Duration::from_millis(100)),
        ),
        Err(e) => eprintln!("  slow clients: {e}"),
    }

    // 6. Back to idle.
    eprintln!("settling (up to 15 s)");
    let (t, f, took) = settle(chat_i.pid, idle.1, idle.2, Duration::from_secs(15));
    let (dt, df, _) = settle(docs_i.pid, idle_docs.0, idle_docs.1, Duration::from_secs(5));
    let rss_after = load::rss_kib(chat_i.pid);
    main.row(
        "chat/MCP instance: threads / fds, idle → after load",
        format!(
            "{} / {} → {t} / {f} (settled in {:.1} s)",
            idle.1,
            idle.2,
            took.as_secs_f64()
        ),
        "-".into(),
        "back to idle",
        yes(t <= idle.1 && f <= idle.2),
    );
    main.row(
        "docs instance: threads / fds, idle → after load",
        format!("{} / {} → {dt} / {df}", idle_docs.0, idle_docs.1),
        "-".into(),
        "back to idle",
        yes(dt <= idle_docs.0 && df <= idle_docs.1),
    );
    main.row(
        "chat/MCP instance RSS: idle → after all load",
        format!("{} → {}", mib(idle.0), mib(rss_after)),
        "-".into(),
        "near idle",
        "see note",
    );

    main.print(
        "Figures",
        [
            "measurement",
            "knowledge-vault",
            "fakes alone",
            "target",
            "verdict",
        ],
    );
    scale.print(
        "Concurrent WebSocket chats (no pacing, 50 deltas each)",
        [
            "chats",
            "knowledge-vault",
            "fakes alone",
            "peak RSS",
            "errors",
        ],
    );
}

/// `kvbench chats claude=ADDR mcp=ADDR | ws=ADDR  n=N c=C pace=MS`: a quick
/// run for profiling: `n` rounds of `c` concurrent chats (c=1: sequential).
pub fn chats(raw: &[String]) {
    let args: HashMap<&str, &str> = raw.iter().filter_map(|a| a.split_once('=')).collect();
    let num = |k: &str, d: u64| args.get(k).and_then(|v| v.parse().ok()).unwrap_or(d);
    let target = match args.get("ws") {
        Some(addr) => Target::Product {
            addr: addr.to_string(),
        },
        None => Target::Fakes {
            claude: args.get("claude").copied().unwrap_or_default().into(),
            mcp: args.get("mcp").copied().unwrap_or_default().into(),
        },
    };
    let shape = ChatShape {
        pace_ms: num("pace", 0),
        deltas: num("deltas", 50) as u32,
    };
    let (n, c) = (num("n", 100) as usize, num("c", 1) as usize);
    if c <= 1 {
        let (d, r, e) = sequential(&target, n, shape);
        println!(
            "{n} chats: send→done p50 {} p99 {}; relay p50 {} ns p99 {} ns; {e} errors",
            ms(pct(&d, 0.5)),
            ms(pct(&d, 0.99)),
            pct(&r, 0.5),
            pct(&r, 0.99)
        );
    } else {
        let pid = num("pid", 0) as u32;
        for _ in 0..n {
            let sampler = (pid > 0).then(|| RssSampler::start(pid));
            let b = run_burst(&target, c, shape);
            let peak = sampler.map(|s| mib(s.peak_kib())).unwrap_or_default();
            println!(
                "{c} chats: {}/{c} in {} = {:.0} chats/s; peak RSS {peak}",
                b.ok,
                ms(b.wall),
                rate(&b)
            );
        }
    }
}

/// `kvbench rest ADDR PATH [CONNS] [SECS]`: keep-alive GET load, for profiling.
pub fn rest(raw: &[String]) {
    let arg = |i: usize| raw.get(i).map(String::as_str).unwrap_or_default();
    let path: &'static str = Box::leak(arg(1).to_string().into_boxed_str());
    let conns = arg(2).parse().unwrap_or(64);
    let secs = arg(3).parse().unwrap_or(4);
    let r = load::rest(
        arg(0),
        "GET",
        path,
        b"",
        conns,
        Duration::from_secs(1),
        Duration::from_secs(secs),
    );
    println!(
        "{path}: {:.0} req/s, p50 {} p99 {}, {} errors",
        r.per_sec,
        ms(r.p50),
        ms(r.p99),
        r.errors
    );
}
