//! Benchmarks of the durable event log, each against a baseline measured in
//! the same run (design targets in brackets):
//!
//! - the disk's own latency: a 256-byte write + `fdatasync`, p50/p99, beside
//!   the ack latency of a single event appended with `durability = "fsync"`
//!   (`append_durable` resolving), p50/p99;
//! - batch ingest (1000 seed 000 events per batch, parse + validate +
//!   record, 16 producers at once, as concurrent HTTP clients would be) in events/s with `durability = "fsync"`
//!   against `"none"` [ratio >= 0.7];
//! - one producer on one core, in process: where the time of a batch goes
//!   (parse and validate, record: encode + write + sync) [1 M events/s].
//!
//! The log lives under `CARGO_TARGET_TMPDIR` (the target directory's disk,
//! not a tmpfs, where `fsync` would cost nothing). `scripts/bench.sh --bench events`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmon::config::{Config, Durability, StorageConfig};
use wasmon::events::{EventLog, LogMetrics};
use wasmon::ingest::{Ingest, payload};
use wasmon::model::Event;

const BATCH: usize = 1000;
const SAMPLES: usize = 1000;
const RUN: Duration = Duration::from_secs(3);
const PRODUCERS: usize = 16;

fn main() {
    let root = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("bench-events");
    let _ = std::fs::remove_dir_all(&root);
    std::fs::create_dir_all(&root).unwrap();

    let disk = disk_fsync(&root);
    let ack = single_ack(&root.join("ack"));
    println!(
        "disk write+fdatasync: p50 {:.0} us, p99 {:.0} us | single event ack with fsync: p50 {:.0} us, p99 {:.0} us (p50 ratio {:.2})",
        disk.0,
        disk.1,
        ack.0,
        ack.1,
        ack.0 / disk.0
    );

    let body = seed000_batch(BATCH);
    let fsync = throughput(&root.join("fsync"), Durability::Fsync, &body);
    let none = throughput(&root.join("none"), Durability::None, &body);
    println!(
        "batch ingest, {PRODUCERS} producers, {BATCH} seed 000 events per batch: fsync {fsync:.0} events/s, none {none:.0} events/s, ratio {:.2} [>= 0.7]",
        fsync / none
    );

    for durability in [Durability::None, Durability::Fsync] {
        let (parse, record) = one_core(
            &root.join(format!("core-{durability:?}")),
            durability,
            &body,
        );
        println!(
            "one core, durability {durability:?}: parse+validate {:.2} us/event, record (encode+write+sync) {:.2} us/event: {:.0} events/s [1 M]",
            parse * 1e6,
            record * 1e6,
            1.0 / (parse + record)
        );
    }
    let _ = std::fs::remove_dir_all(&root);
}

fn percentiles(mut us: Vec<f64>) -> (f64, f64) {
    us.sort_by(f64::total_cmp);
    (us[us.len() / 2], us[us.len() * 99 / 100])
}

/// The disk's own latency: 256 bytes appended, then `fdatasync`.
fn disk_fsync(dir: &Path) -> (f64, f64) {
    let mut file = std::fs::File::create(dir.join("raw")).unwrap();
    let buf = [7u8; 256];
    let samples = (0..SAMPLES)
        .map(|_| {
            let t = Instant::now();
            file.write_all(&buf).unwrap();
            file.sync_data().unwrap();
            t.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    percentiles(samples)
}

fn open(dir: &Path, durability: Durability) -> EventLog {
    let storage = StorageConfig {
        data_dir: dir.to_path_buf(),
        durability,
        ..StorageConfig::default()
    };
    EventLog::open(
        &storage,
        Duration::from_secs(3600),
        1_000_000,
        LogMetrics::default(),
        wasmon::live::Live::new(1),
    )
    .unwrap()
}

/// One event at a time, waiting for each ack.
fn single_ack(dir: &Path) -> (f64, f64) {
    let log = open(dir, Durability::Fsync);
    let samples = (0..SAMPLES)
        .map(|i| {
            let event = Event::new(format!("bench.{i}"), "bench");
            let t = Instant::now();
            futures_lite::future::block_on(log.append_durable(vec![event])).unwrap();
            t.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    percentiles(samples)
}

fn ingest(log: EventLog) -> Arc<Ingest> {
    let config = Config::default();
    let telemetry = Arc::new(wasmon::telemetry::Telemetry::new().unwrap());
    Arc::new(Ingest::new(
        &config.ingest,
        &config.heartbeat,
        Arc::new(log),
        telemetry,
    ))
}

/// Events/s with `PRODUCERS` threads each recording batches for `RUN`.
fn throughput(dir: &Path, durability: Durability, body: &[u8]) -> f64 {
    let ingest = ingest(open(dir, durability));
    let started = Instant::now();
    let threads: Vec<_> = (0..PRODUCERS)
        .map(|_| {
            let ingest = ingest.clone();
            let body = body.to_vec();
            std::thread::spawn(move || {
                let limits = ingest.limits().clone();
                let mut n = 0;
                while started.elapsed() < RUN {
                    let parsed = payload::batch(&body, &limits).unwrap();
                    n += futures_lite::future::block_on(ingest.record(parsed))
                        .unwrap()
                        .ids
                        .len();
                }
                n
            })
        })
        .collect();
    let total: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
    total as f64 / started.elapsed().as_secs_f64()
}

/// Seconds per event spent parsing and recording, one producer.
fn one_core(dir: &Path, durability: Durability, body: &[u8]) -> (f64, f64) {
    let ingest = ingest(open(dir, durability));
    let limits = ingest.limits().clone();
    let (mut parse, mut record, mut events) = (Duration::ZERO, Duration::ZERO, 0);
    let started = Instant::now();
    while started.elapsed() < RUN {
        let t = Instant::now();
        let parsed = payload::batch(body, &limits).unwrap();
        parse += t.elapsed();
        let t = Instant::now();
        events += futures_lite::future::block_on(ingest.record(parsed))
            .unwrap()
            .ids
            .len();
        record += t.elapsed();
    }
    let per = |d: Duration| d.as_secs_f64() / events as f64;
    (per(parse), per(record))
}

/// A batch of `n` seed 000 events (`{service, event_type, detail, component}`).
fn seed000_batch(n: usize) -> Vec<u8> {
    let events: Vec<serde_json::Value> = (0..n)
        .map(|i| {
            serde_json::json!({
                "service": format!("edge-cam{:02}", i % 20),
                "event_type": if i % 9 == 0 { "task_failed" } else { "task_complete" },
                "component": "detector",
                "detail": format!("frame {i} processed"),
            })
        })
        .collect();
    serde_json::to_vec(&events).unwrap()
}
