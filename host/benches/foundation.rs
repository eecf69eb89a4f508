//! Benchmarks of the plugin foundation, each printed against a baseline run in
//! the same process (design targets in brackets):
//!
//! - one collector call returning 100 samples, against building the same
//!   samples natively [≤ 20 µs];
//! - hot-reload latency, file written → new version serving, p50/p99, against
//!   compiling the same component alone, with `/metrics` under load meanwhile
//!   [≤ 100 ms p99, zero failed requests], for a small fixture and for the
//!   real `rule-threshold` plugin;
//!
//! the first two with each compiler (`plugins.compiler`: Winch, the default on
//! x86_64, and Cranelift);
//! - the host's idle RSS and CPU with the example plugins, against the same
//!   host with no plugins [≤ 30 MiB; ≤ 1 % of a core with five plugins].
//!
//! `cargo bench -p wasmon --bench foundation` (or `scripts/bench.sh`);
//! `-- call`, `-- reload` or `-- idle` runs one part.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};
use wasmon::config::Compiler;
use wasmon::model::Sample;
use wasmon_test_support::guests;

const BIN: &str = env!("CARGO_BIN_EXE_wasmon");

/// The compilers measured: the default (`auto`: Winch on x86_64), then
/// Cranelift if that is another one.
fn compilers() -> Vec<Compiler> {
    let mut compilers = vec![Compiler::Auto.resolve(), Compiler::Cranelift];
    compilers.dedup();
    compilers
}

fn main() {
    // `cargo bench --bench foundation -- call reload idle` runs only those parts.
    let parts: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let wanted = |part: &str| parts.is_empty() || parts.iter().any(|p| p == part);
    if wanted("call") {
        collector_call();
    }
    if wanted("reload") {
        reload_latency();
    }
    if wanted("idle") {
        idle_footprint();
    }
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn percentile(values: &[f64], p: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = ((p / 100.0) * (sorted.len() as f64 - 1.0)).round() as usize;
    sorted[rank]
}

/// Median over `rounds` of the mean time per iteration of `f`, in µs.
fn time_us(rounds: usize, iterations: usize, mut f: impl FnMut()) -> f64 {
    median(
        (0..rounds)
            .map(|_| {
                let started = Instant::now();
                for _ in 0..iterations {
                    f();
                }
                started.elapsed().as_secs_f64() * 1e6 / iterations as f64
            })
            .collect(),
    )
}

fn collector_call() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut calls = Vec::new();
    for compiler in compilers() {
        let mut plugin = runtime
            .block_on(wasmon::plugins::Standalone::load(
                "bench",
                Path::new(guests::GUEST_BENCH),
                None,
                compiler,
            ))
            .unwrap();
        for _ in 0..2_000 {
            assert_eq!(runtime.block_on(plugin.collect()).unwrap().len(), 100);
        }
        let call = time_us(7, 5_000, || {
            let samples = runtime.block_on(plugin.collect()).unwrap();
            std::hint::black_box(samples);
        });
        calls.push((compiler, call));
    }
    let series: Vec<String> = (0..100).map(|i| i.to_string()).collect();
    let native = time_us(7, 20_000, || {
        let samples: Vec<Sample> = series
            .iter()
            .enumerate()
            .map(|(i, s)| {
                Sample::gauge("bench_value", i as f64)
                    .label("series", s.as_str())
                    .label("group", "g")
            })
            .collect();
        std::hint::black_box(samples);
    });
    for (compiler, call) in calls {
        println!(
            "collector call, {}: 100 samples: {call:.1} us (target <= 20 us); native build of the same samples {native:.1} us; ratio {:.1}x",
            compiler.as_str(),
            call / native
        );
    }
}

/// A running host whose log lines arrive, timestamped, on a channel.
struct Running {
    child: Child,
    lines: mpsc::Receiver<(Instant, String)>,
    addr: String,
}

impl Running {
    fn start(config: &Path) -> Running {
        let mut child = Command::new(BIN)
            .arg("--config")
            .arg(config)
            .env("MONITOR_HOST", "127.0.0.1")
            .env("MONITOR_PORT", "0")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = child.stderr.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send((Instant::now(), line)).is_err() {
                    return;
                }
            }
        });
        let addr = loop {
            let (_, line) = lines
                .recv_timeout(Duration::from_secs(60))
                .expect("the host did not start");
            if let Some(rest) = line.split("listening addr=").nth(1) {
                break rest.split_whitespace().next().unwrap().to_string();
            }
        };
        Running { child, lines, addr }
    }

    /// Waits for a log line containing all of `words`; returns when it was read.
    fn wait_for(&self, words: &[&str], timeout: Duration) -> Instant {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let (at, line) = self
                .lines
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("no log line with {words:?}"));
            if words.iter().all(|w| line.contains(w)) {
                return at;
            }
        }
    }

    fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    /// CPU seconds (user + system) used so far.
    fn cpu_seconds(&self) -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap();
        let fields: Vec<&str> = stat
            .rsplit(')')
            .next()
            .unwrap()
            .split_whitespace()
            .collect();
        let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
        ticks / 100.0
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A component that differs from `wasm` only by a custom section naming
/// `n`: a new binary every time (so no cache can help), the same code.
fn variant(wasm: &[u8], n: u64) -> Vec<u8> {
    let payload = format!("wasmon-bench-{n}");
    let name = b"bench";
    let mut section = vec![name.len() as u8];
    section.extend_from_slice(name);
    section.extend_from_slice(payload.as_bytes());
    let mut out = wasm.to_vec();
    out.push(0); // custom section id
    leb128(section.len() as u64, &mut out);
    out.extend_from_slice(&section);
    out
}

fn leb128(mut value: u64, out: &mut Vec<u8>) {
    loop {
        let byte = (value & 0x7f) as u8;
        value >>= 7;
        if value == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}

fn install(dir: &Path, name: &str, bytes: &[u8]) {
    let tmp = dir.join(format!(".{name}.wasm.tmp"));
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, dir.join(format!("{name}.wasm"))).unwrap();
}

fn temp_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("wasmon-bench-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("plugins.d")).unwrap();
    dir
}

fn reload_latency() {
    let counter = (
        "counter",
        std::fs::read(guests::GUEST_COUNTER).unwrap(),
        std::fs::read(guests::GUEST_COUNTER_V2).unwrap(),
        "interval = \"50ms\"\n".to_string(),
    );
    let rule = std::fs::read(guests::RULE_THRESHOLD).unwrap();
    let threshold = (
        "threshold",
        rule.clone(),
        rule,
        std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/plugins.d/threshold.toml"),
        )
        .unwrap(),
    );
    for (name, v1, v2, manifest) in [counter, threshold] {
        for compiler in compilers() {
            reload_latency_of(name, &v1, &v2, &manifest, compiler);
        }
    }
}

/// Replaces plugin `name` 60 times, alternating new binaries made from `v1`
/// and `v2`, while a client keeps scraping `/metrics`.
fn reload_latency_of(name: &str, v1: &[u8], v2: &[u8], manifest: &str, compiler: Compiler) {
    const RELOADS: u64 = 60;
    let dir = temp_dir("reload");
    let plugins = dir.join("plugins.d");
    let config = dir.join("wasmon.toml");
    std::fs::write(
        &config,
        format!(
            "[sampling]\ninterval = \"1s\"\n[plugins]\ndir = {:?}\ncache_dir = {:?}\ncompiler = \"{}\"\n",
            plugins,
            dir.join("cache"),
            compiler.as_str()
        ),
    )
    .unwrap();
    install(&plugins, name, v1);
    std::fs::write(plugins.join(format!("{name}.toml")), manifest).unwrap();
    let host = Running::start(&config);
    host.wait_for(&["plugin loaded", "generation=1"], Duration::from_secs(60));

    // Load meanwhile: keep scraping /metrics and count what fails.
    let stop = Arc::new(AtomicBool::new(false));
    let (ok, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let load = {
        let (stop, ok, failed, url) = (
            stop.clone(),
            ok.clone(),
            failed.clone(),
            format!("http://{}/metrics", host.addr),
        );
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                match wasmon_test_support::http::request("GET", &url, &[], None) {
                    Ok(r) if r.status == 200 => ok.fetch_add(1, Ordering::Relaxed),
                    _ => failed.fetch_add(1, Ordering::Relaxed),
                };
            }
        })
    };

    let mut latencies = Vec::new();
    for n in 0..RELOADS {
        let base = if n % 2 == 0 { v2 } else { v1 };
        let bytes = variant(base, n);
        let generation = format!("generation={}", n + 2);
        let written = Instant::now();
        install(&plugins, name, &bytes);
        let served = host.wait_for(&["plugin loaded", &generation], Duration::from_secs(30));
        latencies.push(served.duration_since(written).as_secs_f64() * 1e3);
        std::thread::sleep(Duration::from_millis(100));
    }
    stop.store(true, Ordering::Relaxed);
    load.join().unwrap();

    // Baseline: compiling the same component alone, same engine settings.
    let engine = wasmtime::Engine::new(&wasmon::plugins::engine_config(compiler)).unwrap();
    let compile: Vec<f64> = (0..15)
        .map(|n| {
            let bytes = variant(v1, 1_000 + n);
            let started = Instant::now();
            wasmtime::component::Component::new(&engine, &bytes).unwrap();
            started.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    let compile = median(compile);
    let (p50, p99) = (percentile(&latencies, 50.0), percentile(&latencies, 99.0));
    println!(
        "hot reload, {}, {name} ({RELOADS} reloads of a {} KiB component, each a new binary): p50 {p50:.1} ms, p99 {p99:.1} ms (target p99 <= 100 ms); compile alone {compile:.1} ms; p50 ratio {:.2}x; /metrics requests meanwhile: {} ok, {} failed (target 0 failed)",
        compiler.as_str(),
        v1.len() / 1024,
        p50 / compile,
        ok.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed)
    );
    drop(host);
    let _ = std::fs::remove_dir_all(&dir);
}

fn idle_footprint() {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/plugins.d");
    let cache = temp_dir("cache");
    // Each measurement starts a fresh host; `cold` also empties the compilation cache first.
    let measure = |tag: &str, plugins: &[(&str, &str, Option<PathBuf>)], cold: bool| {
        if cold {
            let _ = std::fs::remove_dir_all(&cache);
        }
        let dir = temp_dir(tag);
        let plugin_dir = dir.join("plugins.d");
        for (name, wasm, manifest) in plugins {
            std::fs::copy(wasm, plugin_dir.join(format!("{name}.wasm"))).unwrap();
            if let Some(manifest) = manifest {
                std::fs::copy(manifest, plugin_dir.join(format!("{name}.toml"))).unwrap();
            }
        }
        let config = dir.join("wasmon.toml");
        std::fs::write(
            &config,
            format!(
                "[plugins]\ndir = {:?}\ncache_dir = {:?}\n",
                plugin_dir, cache
            ),
        )
        .unwrap();
        let host = Running::start(&config);
        host.wait_for(&["plugins loaded"], Duration::from_secs(120));
        std::thread::sleep(Duration::from_secs(5));
        let cpu_before = host.cpu_seconds();
        let window = Duration::from_secs(20);
        std::thread::sleep(window);
        let cpu = (host.cpu_seconds() - cpu_before) / window.as_secs_f64() * 100.0;
        let rss = host.rss_kib() as f64 / 1024.0;
        drop(host);
        let _ = std::fs::remove_dir_all(&dir);
        (rss, cpu)
    };
    let example = |name: &'static str, wasm: &'static str| {
        (name, wasm, Some(examples.join(format!("{name}.toml"))))
    };
    let three = [
        example("http_probe", guests::COLLECTOR_HTTP_PROBE),
        example("threshold", guests::RULE_THRESHOLD),
        example("webhook", guests::SINK_WEBHOOK),
    ];
    let (bare_rss, bare_cpu) = measure("bare", &[], true);
    let (cold_rss, _) = measure("examples", &three, true);
    let (rss, _) = measure("examples", &three, false);
    let mut five = three.to_vec();
    five.push(("counter", guests::GUEST_COUNTER, None));
    five.push(("bench", guests::GUEST_BENCH, None));
    let (_, cpu5) = measure("five", &five, false);
    let _ = std::fs::remove_dir_all(&cache);
    println!(
        "idle RSS with the 3 example plugins: {rss:.1} MiB after a restart (compilation cache warm), {cold_rss:.1} MiB on a first start (target <= 30 MiB); with no plugins {bare_rss:.1} MiB; ratio {:.2}x",
        rss / bare_rss
    );
    println!(
        "idle CPU with default sampling and 5 plugins: {cpu5:.2} % of a core (target <= 1 %); with no plugins {bare_cpu:.2} %"
    );
}
