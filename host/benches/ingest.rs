//! Benchmarks of HTTP ingestion, each printed against a baseline measured in
//! the same run (design targets in brackets):
//!
//! - heartbeats: `wrk` against `POST /heartbeat` of the real binary, and the
//!   same `wrk` against a bare hyper handler that reads the request and
//!   answers 200 [ratio >= 0.6];
//! - batches: `wrk` posting 1000 events per request to `POST
//!   /v1/events/batch`, seed 002 job events (~500 bytes each) and seed 000
//!   events (~90 bytes), in events/s [>= 1 M events/s on 2 cores with durable
//!   delivery off], against the bare handler taking the same bodies;
//! - in process, one core: parsing, validating and recording a batch, against
//!   `serde_json` parsing the same bytes into `Value`s.
//!
//! `scripts/bench.sh --bench ingest` (installs `wrk` when missing). `wrk`
//! and the server share the machine's cores, as in any single-host test.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_wasmon");
const BATCH: usize = 1000;
const DURATION: &str = "3s";
const ROUNDS: usize = 3;

fn main() {
    let wrk_ok = Command::new("wrk").arg("--version").output().is_ok();
    assert!(
        wrk_ok,
        "wrk is missing: apt-get install wrk (scripts/bench.sh does)"
    );
    let dir = tempfile_dir();
    std::fs::write(dir.join("heartbeat.lua"), HEARTBEAT_LUA).unwrap();
    let payloads = [
        ("seed 002 job events", job_batch(BATCH)),
        ("seed 000 events", simple_batch(BATCH)),
    ];
    let mut scripts = Vec::new();
    for (i, (_, body)) in payloads.iter().enumerate() {
        let file = dir.join(format!("batch{i}.json"));
        std::fs::write(&file, body).unwrap();
        let script = dir.join(format!("batch{i}.lua"));
        std::fs::write(
            &script,
            BATCH_LUA.replace("BATCH_FILE", &file.display().to_string()),
        )
        .unwrap();
        scripts.push(script);
    }

    for (name, body) in &payloads {
        in_process(name, body);
    }

    let bare = bare_server();
    let mut host = Host::start(&dir);
    let heartbeat_lua = dir.join("heartbeat.lua");
    // Warm both up (connections, allocator, caches).
    wrk(&bare, "/heartbeat", &heartbeat_lua, "1s");
    wrk(&host.addr, "/heartbeat", &heartbeat_lua, "1s");

    // Alternate the two servers, several rounds each, and compare medians:
    // one run on a shared 2-core machine varies by tens of percent.
    let (bare_rps, host_rps) = alternate(ROUNDS, || {
        (
            wrk(&bare, "/heartbeat", &heartbeat_lua, DURATION),
            wrk(&host.addr, "/heartbeat", &heartbeat_lua, DURATION),
        )
    });
    println!(
        "heartbeat ingest: wasmon {host_rps:.0} req/s; bare hyper handler {bare_rps:.0} req/s; ratio {:.2} (target >= 0.6; medians of {ROUNDS} alternating {DURATION} runs)",
        host_rps / bare_rps
    );

    for ((name, body), script) in payloads.iter().zip(&scripts) {
        let (bare_batches, host_batches) = alternate(ROUNDS, || {
            (
                wrk(&bare, "/v1/events/batch", script, DURATION),
                wrk(&host.addr, "/v1/events/batch", script, DURATION),
            )
        });
        println!(
            "batch ingest, {BATCH} {name} ({} bytes each) per request: wasmon {:.0} events/s ({host_batches:.1} req/s); bare hyper handler taking the same bodies {:.0} events/s; ratio {:.2} (target >= 1 M events/s, durable delivery off)",
            body.len() / BATCH,
            host_batches * BATCH as f64,
            bare_batches * BATCH as f64,
            host_batches / bare_batches
        );
    }
    let rss = host.rss_mib();
    println!("wasmon RSS after the load: {rss:.1} MiB (its event log holds up to 100 000 events)");
    host.stop();
    let _ = std::fs::remove_dir_all(&dir);
}

const HEARTBEAT_LUA: &str = r#"
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local i = 0
request = function()
  i = (i + 1) % 100
  return wrk.format(nil, nil, nil, '{"service": "svc-' .. i .. '", "phase": "edge_loop"}')
end
"#;

const BATCH_LUA: &str = r#"
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
local f = io.open("BATCH_FILE", "rb")
wrk.body = f:read("*all")
f:close()
"#;

/// `n` seed 000 events with a component, across 10 services.
fn simple_batch(n: usize) -> Vec<u8> {
    let events: Vec<serde_json::Value> = (0..n)
        .map(|i| {
            serde_json::json!({
                "service": format!("edge-cam{:02}", i % 10),
                "event_type": if i % 5 == 0 { "failure" } else { "success" },
                "component": "inference",
                "detail": "frame processed",
            })
        })
        .collect();
    serde_json::to_vec(&events).unwrap()
}

/// `n` job events as seed 002's SDK sends them, across 10 apps.
fn job_batch(n: usize) -> Vec<u8> {
    let events: Vec<serde_json::Value> = (0..n)
        .map(|i| {
            serde_json::json!({
                "idempotency_key": format!("00000000-0000-4000-8000-{i:012}-finished"),
                "site_id": "fab1",
                "app": {"app_id": "8f8c2f5e-0000-4000-8000-000000000001", "name": format!("app-{}", i % 10), "version": "1.4.2"},
                "entity": {"type": "subjob", "id": format!("00000000-0000-4000-8000-{i:012}"),
                           "parent_id": "00000000-0000-4000-8000-ffffffffffff", "business_key": "daily-batch", "sub_key": format!("part-{i}")},
                "event": {"kind": "finished", "at": "2026-11-30T06:00:00.000Z", "status": if i % 7 == 0 { "failed" } else { "succeeded" },
                          "metrics": {"duration_s": 1.25 + i as f64, "cpu_user_s": 0.5, "cpu_system_s": 0.1, "mem_max_mb": 41.5},
                          "metadata": {}}
            })
        })
        .collect();
    serde_json::to_vec(&events).unwrap()
}

fn in_process(name: &str, body: &[u8]) {
    let config = wasmon::config::Config::default();
    let telemetry = Arc::new(wasmon::telemetry::Telemetry::new().unwrap());
    let events = Arc::new(wasmon::events::EventLog::new(100_000));
    let ingest = wasmon::ingest::Ingest::new(&config.ingest, &config.heartbeat, events, telemetry);
    let limits = ingest.limits().clone();
    let rounds = 200;
    let time = |f: &mut dyn FnMut()| {
        f();
        let started = Instant::now();
        for _ in 0..rounds {
            f();
        }
        started.elapsed().as_secs_f64() / rounds as f64
    };
    let ours = time(&mut || {
        let parsed = wasmon::ingest::payload::batch(body, &limits).unwrap();
        std::hint::black_box(futures_lite::future::block_on(ingest.record(parsed)).unwrap());
    });
    let values = time(&mut || {
        let v: Vec<serde_json::Value> = serde_json::from_slice(body).unwrap();
        std::hint::black_box(v);
    });
    println!(
        "batch of {name}, parse + validate + record in process, one core: {:.0} events/s ({:.2} us per event); serde_json::Value parse of the same bytes {:.0} events/s; ratio {:.2}",
        BATCH as f64 / ours,
        ours * 1e6 / BATCH as f64,
        BATCH as f64 / values,
        values / ours
    );
}

/// Runs `round` `n` times; the medians of what it measured, each side.
fn alternate(n: usize, mut round: impl FnMut() -> (f64, f64)) -> (f64, f64) {
    let (mut a, mut b): (Vec<f64>, Vec<f64>) = (0..n).map(|_| round()).unzip();
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    (median(&mut a), median(&mut b))
}

/// Runs `wrk` for `duration`; returns requests per second. Panics when any
/// request failed or got a non-2xx answer.
fn wrk(addr: &SocketAddr, path: &str, script: &Path, duration: &str) -> f64 {
    let output = Command::new("wrk")
        .args(["-t2", "-c32", "-d", duration, "-s"])
        .arg(script)
        .arg(format!("http://{addr}{path}"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "wrk failed: {text}");
    assert!(
        !text.contains("Non-2xx") && !text.contains("Socket errors"),
        "errors under load against {addr}{path}:\n{text}"
    );
    text.lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no Requests/sec in wrk's output:\n{text}"))
}

/// A bare hyper server on its own two-worker runtime (as wasmon's HTTP
/// runtime): reads each request's body and answers 200 with an empty body.
fn bare_server() -> SocketAddr {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                let _ = stream.set_nodelay(true);
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(
                        |request: hyper::Request<hyper::body::Incoming>| async move {
                            use http_body_util::BodyExt;
                            let _ = request.into_body().collect().await;
                            Ok::<_, std::convert::Infallible>(hyper::Response::new(
                                http_body_util::Empty::<hyper::body::Bytes>::new(),
                            ))
                        },
                    );
                    let _ = hyper_util::server::conn::auto::Builder::new(
                        hyper_util::rt::TokioExecutor::new(),
                    )
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
                });
            }
        });
    });
    rx.recv().unwrap()
}

fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("wasmon-bench-ingest-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The real binary with its defaults but no system sampling and no plugins.
struct Host {
    child: Child,
    addr: SocketAddr,
}

impl Host {
    fn start(dir: &Path) -> Host {
        let plugins = dir.join("plugins.d");
        std::fs::create_dir_all(&plugins).unwrap();
        let config = dir.join("wasmon.toml");
        std::fs::write(
            &config,
            "[sampling]\nenabled = false\n[plugins]\ndir = \"plugins.d\"\n# Its batch figure is \"durable delivery off\": written, not synced.\n[storage]\ndurability = \"none\"\n",
        )
        .unwrap();
        let mut child = Command::new(BIN)
            .arg("--config")
            .arg(&config)
            .current_dir(dir)
            .env("MONITOR_HOST", "127.0.0.1")
            .env("MONITOR_PORT", "0")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(rest) = line.split("listening addr=").nth(1) {
                    let _ = tx.send(rest.split_whitespace().next().unwrap_or("").to_string());
                }
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("wasmon did not start");
        Host {
            child,
            addr: addr.parse().unwrap(),
        }
    }

    fn rss_mib(&self) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
            .map_or(0.0, |kib| kib / 1024.0)
    }

    fn stop(&mut self) {
        // SAFETY: plain signal to our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
    }
}
