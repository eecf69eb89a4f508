//! What a backtest costs (issue 14), against a baseline measured in the same
//! run on the same host: `rule-threshold` replayed over 60 minutes of history
//! at 10 s steps (360 evaluations) over 1 000 selected series
//! (`guest-series-replay` with `series = 1000` fills the history with
//! timestamped points, 0.7 for a quarter of the hour, else 0.2, so every
//! series raises and resolves an alert):
//!
//! - the backtest's time (as the host reports it, and as the client sees it);
//! - the host's peak extra memory while it runs (RSS sampled every 5 ms,
//!   against the RSS just before);
//! - `/metrics` latency (p50/p99) while backtests run back to back, against
//!   the same with none running.
//!
//! `cargo bench -p wasmon --bench backtest` (or `scripts/bench.sh --bench
//! backtest`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use wasmon_test_support::{Host, HostOptions, StatusCode, guests, http, metric_value};

const BIN: &str = env!("CARGO_BIN_EXE_wasmon");
const SERIES: usize = 1000;
/// 60 minutes of 10 s buckets.
const POINTS: u64 = 360;
/// Backtests run back to back while `/metrics` is timed.
const RUNS: usize = 3;

#[derive(Debug, Clone, Copy)]
struct Latency {
    p50_ms: f64,
    p99_ms: f64,
    count: usize,
}

fn main() {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let points: Vec<String> = (0..POINTS)
        .map(|i| {
            let value = if (120..210).contains(&i) { 0.7 } else { 0.2 };
            format!("[{}, {value}]", now - 3_600_000 + i * 10_000 + 5_000)
        })
        .collect();
    let collector = format!(
        "interval = \"10ms\"\nmax_series = {SERIES}\n[config]\nseries = {SERIES}\nvalue = 0.1\npoints = [{}]\n",
        points.join(", ")
    );
    let rule = "interval = \"10s\"\nselect = [\"fixture_cpu_ratio\"]\nmax_alerts = 1000\n[config]\n[[config.checks]]\nname = \"cpu_high\"\nmetric = \"fixture_cpu_ratio\"\nalert = 0.5\n";
    let host = Host::start(
        HostOptions::new(BIN)
            .config("[sampling]\ninterval = \"1s\"\n[alerts.backtest]\ntimeout = \"10m\"\n")
            .env("RUST_LOG", "warn,wasmon=info")
            .plugin("cpu", guests::GUEST_SERIES_REPLAY)
            .manifest("cpu", &collector)
            .plugin("threshold", guests::RULE_THRESHOLD)
            .manifest("threshold", rule),
    );
    host.wait_ready(Duration::from_secs(60));
    host.wait_until(Duration::from_secs(120), || {
        let (_, m) = host.get("/metrics");
        metric_value(&m, "fixture_cpu_ratio", &[("n", "0")]).filter(|v| *v == 0.1)
    });

    let idle = scrape_latency(host.addr(), || false, Duration::from_secs(5));
    let pid = host.pid();
    let before = rss_bytes(pid);
    let url = host.url("/api/plugins/threshold/backtest?window=60m&step=10s");
    let done = Arc::new(AtomicBool::new(false));
    let peak = Arc::new(AtomicU64::new(before));
    let sampler = {
        let (done, peak) = (done.clone(), peak.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                peak.fetch_max(rss_bytes(pid), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };
    let runner = {
        let done = done.clone();
        std::thread::spawn(move || {
            let mut reports = Vec::new();
            for _ in 0..RUNS {
                let started = Instant::now();
                let r = http::request("POST", &url, &[], None).unwrap();
                assert_eq!(r.status, StatusCode::OK, "{}", r.text());
                let report: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
                reports.push((started.elapsed(), report));
            }
            done.store(true, Ordering::Relaxed);
            reports
        })
    };
    let busy = scrape_latency(host.addr(), || done.load(Ordering::Relaxed), Duration::ZERO);
    let reports = runner.join().unwrap();
    sampler.join().unwrap();

    for (i, (elapsed, report)) in reports.iter().enumerate() {
        assert_eq!(report["complete"], true, "{report}");
        println!(
            "backtest {}: {} steps x {} series ({} points): {} ms in the host, {:.0} ms at the client, {} timeline entries",
            i + 1,
            report["evaluated"],
            report["series"],
            report["points"],
            report["took_ms"],
            elapsed.as_secs_f64() * 1e3,
            report["timeline"].as_array().map_or(0, Vec::len),
        );
    }
    let extra = peak.load(Ordering::Relaxed).saturating_sub(before);
    println!(
        "host RSS before {:.1} MiB, peak extra during backtests {:.1} MiB",
        before as f64 / 1048576.0,
        extra as f64 / 1048576.0
    );
    for (name, latency) in [("idle", idle), ("during backtests", busy)] {
        println!(
            "/metrics {name:<17} p50 {:>7.2} ms  p99 {:>7.2} ms  ({} scrapes; p99 {:.2}x idle)",
            latency.p50_ms,
            latency.p99_ms,
            latency.count,
            latency.p99_ms / idle.p99_ms
        );
    }
}

/// The resident set of process `pid`, bytes.
fn rss_bytes(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let rank = ((p / 100.0) * (sorted.len() as f64 - 1.0)).round() as usize;
    sorted[rank]
}

/// Times sequential `GET /metrics` until `stop` says so and `at_least` has
/// passed (and 100 scrapes at least).
fn scrape_latency(addr: SocketAddr, stop: impl Fn() -> bool, at_least: Duration) -> Latency {
    let url = format!("http://{addr}/metrics");
    let mut times = Vec::new();
    let start = Instant::now();
    loop {
        let enough = times.len() >= 100 && start.elapsed() >= at_least;
        if enough && (at_least > Duration::ZERO || stop()) {
            break;
        }
        let started = Instant::now();
        let response = http::get(&url);
        assert_eq!(response.status, StatusCode::OK);
        times.push(started.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    Latency {
        p50_ms: percentile(&times, 50.0),
        p99_ms: percentile(&times, 99.0),
        count: times.len(),
    }
}
