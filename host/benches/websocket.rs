//! What WebSocket clients cost `/metrics`, each figure against a baseline
//! measured in the same run on the same host:
//!
//! - `/metrics` latency (p50/p99) with no WebSocket client, the baseline;
//! - the same with 100 idle clients attached, each subscribed to every event
//!   channel (`events`, `alerts`, `services`, `plugins`, `system`) and read
//!   as messages come;
//! - the same with 100 clients each following every series (`metrics` with
//!   the selection `*`, the worst case: a store read per client every
//!   `server.ws_metrics_interval`, here 1 s).
//!
//! `cargo bench -p wasmon --bench websocket` (or `scripts/bench.sh --bench
//! websocket`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use futures_util::{SinkExt, StreamExt};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;
use wasmon_test_support::{Host, HostOptions, StatusCode, http, metric_value};

const BIN: &str = env!("CARGO_BIN_EXE_wasmon");

/// `/metrics` requests timed per scenario, at least.
const SCRAPES: usize = 400;
/// How long each scenario scrapes, at least: several ticks of the
/// `metrics` channel and of sampling.
const MEASURE_FOR: Duration = Duration::from_secs(5);
/// WebSocket clients attached in the loaded scenarios.
const CLIENTS: usize = 100;

#[derive(Debug, Clone, Copy)]
struct Latency {
    p50_ms: f64,
    p99_ms: f64,
    ok: usize,
    count: usize,
}

fn main() {
    let host = Host::start(
        HostOptions::new(BIN)
            .config("[sampling]\ninterval = \"1s\"\n[server]\nws_metrics_interval = \"1s\"\n")
            .env("RUST_LOG", "warn,wasmon=info"),
    );
    host.wait_ready(Duration::from_secs(30));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let received = Arc::new(AtomicU64::new(0));
    let mut rows = vec![("no WebSocket client", scrape_latency(host.addr()))];

    let events = serde_json::json!({"action": "subscribe",
        "channels": ["events", "alerts", "services", "plugins", "system"]});
    let idle = attach(&runtime, &host, &events, &received);
    rows.push(("100 idle clients", scrape_latency(host.addr())));
    check_attached(&host);
    drop(idle);

    let everything = serde_json::json!({"action": "subscribe", "channels": ["metrics"],
        "metrics": {"name": "*"}});
    let following = attach(&runtime, &host, &everything, &received);
    rows.push(("100 clients following *", scrape_latency(host.addr())));
    check_attached(&host);
    drop(following);

    let idle = rows[0].1;
    for (name, latency) in &rows {
        println!(
            "/metrics {name:<26} p50 {:>7.2} ms  p99 {:>7.2} ms  ({} ok of {}; p99 {:.2}x none)",
            latency.p50_ms,
            latency.p99_ms,
            latency.ok,
            latency.count,
            latency.p99_ms / idle.p99_ms
        );
    }
    println!(
        "WebSocket messages received by the clients: {}",
        received.load(Ordering::Relaxed)
    );
}

/// The clients of one scenario; dropping it disconnects them.
struct Clients(Vec<tokio::task::JoinHandle<()>>);

impl Drop for Clients {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

/// Connects [`CLIENTS`] clients that send `request` and then read whatever comes.
fn attach(
    runtime: &tokio::runtime::Runtime,
    host: &Host,
    request: &serde_json::Value,
    received: &Arc<AtomicU64>,
) -> Clients {
    let url = format!("ws://{}/ws", host.addr());
    let tasks = runtime.block_on(async {
        let mut tasks = Vec::with_capacity(CLIENTS);
        for _ in 0..CLIENTS {
            let (mut ws, _) = tokio_tungstenite::connect_async(url.as_str())
                .await
                .unwrap();
            ws.send(Message::text(request.to_string())).await.unwrap();
            let received = received.clone();
            tasks.push(tokio::spawn(async move {
                while let Some(Ok(_)) = ws.next().await {
                    received.fetch_add(1, Ordering::Relaxed);
                }
            }));
        }
        tasks
    });
    Clients(tasks)
}

/// Every client is still connected after the scenario.
fn check_attached(host: &Host) {
    let (_, metrics) = host.get("/metrics");
    assert_eq!(
        metric_value(&metrics, "wasmon_ws_clients", &[]),
        Some(CLIENTS as f64)
    );
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * (sorted.len() as f64 - 1.0)).round() as usize;
    sorted[rank]
}

/// Times sequential `GET /metrics`, each on a new connection: at least
/// [`SCRAPES`] of them, for at least [`MEASURE_FOR`].
fn scrape_latency(addr: SocketAddr) -> Latency {
    let url = format!("http://{addr}/metrics");
    for _ in 0..20 {
        http::get(&url);
    }
    let mut times = Vec::with_capacity(SCRAPES);
    let mut ok = 0;
    let start = Instant::now();
    while times.len() < SCRAPES || start.elapsed() < MEASURE_FOR {
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
        count: times.len(),
    }
}
