//! The `redis` capability's cost: one command sent by a plugin through
//! `wasmon_sdk::redis::command` against the same command sent from native
//! code with the `redis` crate's `ConnectionManager` (what the capability
//! itself uses), both against the same real `redis-server` in the same run
//! [target: ratio <= 1.5].
//!
//! The plugin is `guest-redis-bench` run through `Standalone` (the same
//! runtime, limits and capability code as a registered plugin): each
//! `collect()` sends the command `CALLS` times in sequence; a call's cost is
//! the collect's time divided by `CALLS`. The native loop awaits the same
//! number of commands in sequence on one multiplexed connection.
//!
//! `cargo bench -p wasmon --bench redis` (or `scripts/bench.sh --bench redis`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::time::Instant;
use wasmon::config::Compiler;
use wasmon_test_support::{RedisServer, guests};

const CALLS: u32 = 1_000;
const ROUNDS: usize = 7;

fn main() {
    let server = RedisServer::start();
    server.cmd(&["SET", "bench:key", "a-value-of-32-bytes-for-the-bench"]);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for command in [&["GET", "bench:key"][..], &["PING"][..]] {
        let (plugin, native) = runtime.block_on(measure(&server.url(), command));
        println!(
            "redis {:<14} plugin call {plugin:>6.1} us   native redis crate {native:>6.1} us   ratio {:.2}x (target <= 1.5x)",
            command.join(" "),
            plugin / native
        );
    }
}

/// Medians of `ROUNDS` rounds of `CALLS` commands: per plugin call and per
/// native command, in microseconds.
async fn measure(url: &str, command: &[&str]) -> (f64, f64) {
    let words: Vec<String> = command.iter().map(|w| format!("{w:?}")).collect();
    let manifest = format!(
        "[capabilities.redis]\nurl = {url:?}\n[config]\ncommand = [{}]\ncalls = {CALLS}\n",
        words.join(", ")
    );
    let mut plugin = wasmon::plugins::Standalone::load(
        "redis-bench",
        Path::new(guests::GUEST_REDIS_BENCH),
        Some(&manifest),
        Compiler::Auto.resolve(),
    )
    .await
    .unwrap();
    let client = redis::Client::open(url).unwrap();
    let mut native = redis::aio::ConnectionManager::new(client).await.unwrap();
    let (name, args) = command.split_first().unwrap();
    let mut plugin_us = Vec::new();
    let mut native_us = Vec::new();
    for round in 0..=ROUNDS {
        let started = Instant::now();
        let samples = plugin.collect().await.unwrap();
        let elapsed = started.elapsed();
        assert_eq!(
            samples[0].value,
            f64::from(CALLS),
            "every plugin call succeeded"
        );
        let plugin_call = elapsed.as_secs_f64() * 1e6 / f64::from(CALLS);

        let started = Instant::now();
        for _ in 0..CALLS {
            let mut cmd = redis::cmd(name);
            for arg in args {
                cmd.arg(*arg);
            }
            let reply: redis::Value = cmd.query_async(&mut native).await.unwrap();
            std::hint::black_box(reply);
        }
        let native_call = started.elapsed().as_secs_f64() * 1e6 / f64::from(CALLS);
        // Round 0 warms up both (connections, caches).
        if round > 0 {
            plugin_us.push(plugin_call);
            native_us.push(native_call);
        }
    }
    (median(plugin_us), median(native_us))
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}
