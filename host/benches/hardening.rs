//! What the hardening guards cost, each figure against a baseline measured in
//! the same run:
//!
//! - `/metrics` latency (p50/p99) on an idle host, the baseline;
//! - the same while 2 000 slow clients hold connections open, each dripping a
//!   request body one byte at a time (`server.body_read_timeout` raised so they
//!   stay attached while it is measured);
//! - the same while a rule floods the host with fresh alerts every evaluation,
//!   held at its `max_alerts` cap, and a client pages `GET /api/alerts` nonstop;
//! - the connect-time self-address check a plugin's HTTP call goes through,
//!   against the loopback HTTP exchange it guards.
//!
//! `cargo bench -p wasmon --bench hardening` (or `scripts/bench.sh --bench
//! hardening`); `-- idle`, `-- slow`, `-- flood` or `-- check` runs one part
//! (each loaded part also measures the idle baseline).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use wasmon_test_support::{Host, HostOptions, Recorder, StatusCode, guests, http};

const BIN: &str = env!("CARGO_BIN_EXE_wasmon");

/// `/metrics` requests timed per scenario.
const SCRAPES: usize = 400;
/// Slow clients attached in the `slow` part.
const SLOW_CLIENTS: usize = 2_000;

fn main() {
    let parts: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let wanted = |part: &str| parts.is_empty() || parts.iter().any(|p| p == part);
    let mut rows = Vec::new();
    if wanted("idle") || wanted("slow") || wanted("flood") {
        let host = Host::start(base_options());
        host.wait_ready(Duration::from_secs(30));
        rows.push(("idle", scrape_latency(host.addr())));
        if wanted("slow") {
            rows.push(("2000 slow clients", slow_clients(&host)));
        }
    }
    if wanted("flood") {
        rows.push(("rule flood at its cap", rule_flood()));
    }
    if let Some((_, idle)) = rows.first().cloned() {
        for (name, latency) in &rows {
            println!(
                "/metrics {name:<24} p50 {:>7.2} ms  p99 {:>7.2} ms  ({} ok of {SCRAPES}; p99 {:.2}x idle)",
                latency.p50_ms,
                latency.p99_ms,
                latency.ok,
                latency.p99_ms / idle.p99_ms
            );
        }
    }
    if wanted("check") {
        self_address_check();
    }
}

/// The host every `/metrics` figure is taken on: default sampling, the
/// connection and body guards at their defaults except as each part says.
fn base_options() -> HostOptions {
    HostOptions::new(BIN)
        .config(
            "[server]\nbody_read_timeout = \"120s\"\nmax_connections = 4096\n\
             [sampling]\ninterval = \"1s\"\n",
        )
        .env("RUST_LOG", "warn,wasmon=info")
}

#[derive(Debug, Clone, Copy)]
struct Latency {
    p50_ms: f64,
    p99_ms: f64,
    ok: usize,
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * (sorted.len() as f64 - 1.0)).round() as usize;
    sorted[rank]
}

/// Times [`SCRAPES`] sequential `GET /metrics`, each on a new connection as a
/// Prometheus server's first scrape of a target would be.
fn scrape_latency(addr: SocketAddr) -> Latency {
    let url = format!("http://{addr}/metrics");
    for _ in 0..20 {
        http::get(&url);
    }
    let mut times = Vec::with_capacity(SCRAPES);
    let mut ok = 0;
    for _ in 0..SCRAPES {
        let started = Instant::now();
        let response = http::get(&url);
        times.push(started.elapsed().as_secs_f64() * 1e3);
        if response.status == StatusCode::OK {
            ok += 1;
        }
    }
    times.sort_by(f64::total_cmp);
    Latency {
        p50_ms: percentile(&times, 50.0),
        p99_ms: percentile(&times, 99.0),
        ok,
    }
}

/// Attaches [`SLOW_CLIENTS`] connections that each announce a 1 MiB body and
/// send one byte of it per second, then measures `/metrics` while they hang on.
fn slow_clients(host: &Host) -> Latency {
    let request = "POST /events HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n\
                   Content-Length: 1048576\r\n\r\n{";
    raise_open_files();
    let mut streams = Vec::with_capacity(SLOW_CLIENTS);
    for _ in 0..SLOW_CLIENTS {
        let mut stream = TcpStream::connect(host.addr()).unwrap();
        stream.write_all(request.as_bytes()).unwrap();
        streams.push(stream);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let dripped = Arc::new(AtomicU64::new(0));
    let drip = {
        let (stop, dripped) = (stop.clone(), dripped.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let started = Instant::now();
                for stream in &mut streams {
                    if stream.write_all(b" ").is_ok() {
                        dripped.fetch_add(1, Ordering::Relaxed);
                    }
                }
                std::thread::sleep(Duration::from_secs(1).saturating_sub(started.elapsed()));
            }
            streams.len()
        })
    };
    // Let every connection reach the server and start its body.
    std::thread::sleep(Duration::from_secs(2));
    let latency = scrape_latency(host.addr());
    stop.store(true, Ordering::Relaxed);
    let attached = drip.join().unwrap();
    println!(
        "slow clients: {attached} attached, {} body bytes dripped while /metrics was measured",
        dripped.load(Ordering::Relaxed)
    );
    latency
}

/// Raises this process's open-file limit to its hard limit, so the slow
/// clients fit (the default soft limit is often 1024).
fn raise_open_files() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit read and write the struct passed by pointer.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 {
            limit.rlim_cur = limit.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
}

/// A rule returning fresh alerts on every evaluation, held at `max_alerts`,
/// while another client pages through `GET /api/alerts` nonstop.
fn rule_flood() -> Latency {
    let host = Host::start(
        base_options()
            .plugin("flood", guests::GUEST_RULE_FLOOD)
            .manifest("flood", "interval = \"100ms\"\n[config]\ncount = 10000\n"),
    );
    host.wait_ready(Duration::from_secs(60));
    let capped = host.wait_until(Duration::from_secs(60), || {
        let plugin = host.get_json("/api/plugins/flood");
        let dropped = plugin["alerts"]["dropped"].as_u64()?;
        (dropped > 0).then_some(plugin["alerts"].clone())
    });
    println!("rule flood: at its cap ({capped})");
    let stop = Arc::new(AtomicBool::new(false));
    let pages = Arc::new(AtomicU64::new(0));
    let pager = {
        let (stop, pages, url) = (
            stop.clone(),
            pages.clone(),
            host.url("/api/alerts?limit=1000"),
        );
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                if http::get(&url).status == StatusCode::OK {
                    pages.fetch_add(1, Ordering::Relaxed);
                }
            }
        })
    };
    let latency = scrape_latency(host.addr());
    stop.store(true, Ordering::Relaxed);
    pager.join().unwrap();
    let rss = std::fs::read_to_string(format!("/proc/{}/status", host.pid()))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .map(|l| l.split_whitespace().nth(1).unwrap_or("?").to_string())
        })
        .unwrap_or_default();
    println!(
        "rule flood: {} pages of /api/alerts served meanwhile; host RSS {rss} KiB",
        pages.load(Ordering::Relaxed)
    );
    latency
}

/// The self-address check on one resolved address, per kind of target,
/// against one loopback HTTP exchange (what a plugin's `http` call costs at
/// the least). The host binds `0.0.0.0:9400` here, the worst case: a remote
/// address on the host's port is compared with every interface's address.
fn self_address_check() {
    let guard = wasmon::plugins::SelfAddresses::new(SocketAddr::from(([0, 0, 0, 0], 9400)));
    let recorder = Recorder::start();
    let url = recorder.url("/health");
    for _ in 0..50 {
        http::get(&url);
    }
    let exchanges = 500;
    let started = Instant::now();
    for _ in 0..exchanges {
        http::get(&url);
    }
    let exchange_us = started.elapsed().as_secs_f64() * 1e6 / exchanges as f64;
    println!(
        "self-address check (host bound to 0.0.0.0:9400), against a loopback HTTP exchange of {exchange_us:.1} us:"
    );
    for (case, target, iterations) in [
        ("another port (most calls)", "10.1.2.3:443", 2_000_000),
        ("loopback on the host's port", "127.0.0.1:9400", 2_000_000),
        (
            "IPv4-mapped loopback, host's port",
            "[::ffff:127.0.0.1]:9400",
            2_000_000,
        ),
        ("remote address on the host's port", "192.0.2.7:9400", 2_000),
    ] {
        let target: SocketAddr = target.parse().unwrap();
        let started = Instant::now();
        let mut refused = 0;
        for _ in 0..iterations {
            if guard.contains(std::hint::black_box(target)) {
                refused += 1;
            }
        }
        let check_us = started.elapsed().as_secs_f64() * 1e6 / iterations as f64;
        println!(
            "  {case:<36} {:>10.1} ns  ({:.4} % of the exchange; refused: {})",
            check_us * 1e3,
            100.0 * check_us / exchange_us,
            refused == iterations
        );
    }
}
