//! What plugin authoring costs (issue 12), on the real binary with the pinned
//! toolchains (`scripts/lib.sh` `ensure_authoring_tools`), each figure against
//! a baseline measured in the same run:
//!
//! - (a) per language, the time from `wasmon plugin new collector` to the
//!   generated collector live in a running host (`new` + `build` + `install
//!   --host` + its generation visible in `/api/plugins`), with a warm toolchain
//!   and build cache (each language runs once to warm, then is measured),
//!   against the 2-minute goal and against uploading the same built
//!   component alone;
//! - (b) `/metrics` p50/p99 while the Python collector (~18 MB, the largest)
//!   compiles again and again (a new custom section each time, so each load
//!   really compiles), with Winch and with Cranelift, against idle;
//! - (c) per language and compiler: file size, load time in the host
//!   (compile + instantiate + `init`, compilation cache off, from the
//!   `plugin loaded ... took=` line), what `plugin check --json` reports
//!   (`compile_ms`, `init_ms` = instantiate + init, `call_ms`), one
//!   `collect()` (the host's mean), the guest's linear memory and the host
//!   RSS it adds, against the Rust collector.
//!
//! `scripts/bench.sh --bench authoring` (or `cargo bench -p wasmon --bench
//! authoring` with the toolchain variables exported).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::Value;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use wasmon_test_support::authoring::{LANGS, PluginCli, Toolchains, work_dir};
use wasmon_test_support::{Host, HostOptions, StatusCode, http};

const BIN: &str = env!("CARGO_BIN_EXE_wasmon");
const TOKEN: &str = "authoring-bench-admin-token";
const LIVE: Duration = Duration::from_secs(180);
/// The goal: from nothing to a live collector in under 2 minutes.
const GOAL: Duration = Duration::from_secs(120);
/// Compilations of the Python collector while `/metrics` is timed.
const RECOMPILES: [(&str, usize); 2] = [("winch", 4), ("cranelift", 2)];

/// A generated collector, built.
struct Collector {
    lang: &'static str,
    wasm: PathBuf,
    manifest: PathBuf,
}

fn main() {
    let tools = Toolchains::from_env();
    let cli = PluginCli::new(BIN, tools);
    let work = work_dir("wasmon-bench-authoring-");

    let collectors = new_to_live(&cli, work.path());
    let mut baseline: Option<Vec<Figures>> = None;
    for (compiler, recompiles) in RECOMPILES {
        let host = Host::start(
            HostOptions::new(BIN)
                .config(&format!(
                    "[sampling]\ninterval = \"1s\"\n[plugins]\ncompiler = \"{compiler}\"\ncache = false\n"
                ))
                .env("RUST_LOG", "warn,wasmon=info"),
        );
        host.wait_ready(LIVE);
        let figures: Vec<Figures> = collectors
            .iter()
            .map(|c| per_language(&cli, &host, compiler, c))
            .collect();
        print_figures(compiler, &figures, baseline.as_deref());
        let python = collectors
            .iter()
            .find(|c| c.lang == "python")
            .expect("a Python collector");
        compile_vs_scrapes(&host, compiler, python, recompiles);
        baseline.get_or_insert(figures);
    }
}

fn arg(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

/// (a): `plugin new` → live, per language, warm; then the upload alone.
fn new_to_live(cli: &PluginCli, work: &Path) -> Vec<Collector> {
    let host = Host::start(
        HostOptions::new(BIN)
            .config(&format!(
                "[server]\nadmin_token = \"{TOKEN}\"\n[sampling]\ninterval = \"1s\"\n[plugins]\ncache = false\n[plugins.upload]\nmax_bytes = \"64MiB\"\ntimeout = \"180s\"\n"
            ))
            .env("RUST_LOG", "warn,wasmon=info"),
    );
    host.wait_ready(LIVE);
    let url = host.base_url();
    println!(
        "(a) `plugin new collector` to live in a running host (Winch, cache off), warm toolchain and build cache"
    );
    println!(
        "{:<8} {:>7} {:>8} {:>10} {:>8} {:>8}  {:>11} {:>12}",
        "lang", "new s", "build s", "install s", "live s", "total s", "of 2 min", "x upload"
    );
    let mut collectors = Vec::new();
    for lang in LANGS {
        for round in ["warm", "live"] {
            let name = format!("{round}_{lang}");
            let dir = work.join(&name);
            let started = Instant::now();
            let new = cli.ok(
                work,
                &[
                    "plugin",
                    "new",
                    "collector",
                    &name,
                    "--lang",
                    lang,
                    "--dir",
                    &arg(&dir),
                ],
            );
            let build = cli.ok(work, &["plugin", "build", &arg(&dir)]);
            let wasm = dir.join(format!("{name}.wasm"));
            let install = cli.ok(
                work,
                &[
                    "plugin",
                    "install",
                    &arg(&wasm),
                    "--host",
                    &url,
                    "--token",
                    TOKEN,
                ],
            );
            let before_live = started.elapsed();
            wait_generation(&host, &name, 1);
            let total = started.elapsed();
            if round == "warm" {
                continue;
            }
            // The baseline: the same built component uploaded alone.
            let again = format!("again_{lang}");
            let upload_started = Instant::now();
            cli.ok(
                work,
                &[
                    "plugin",
                    "install",
                    &arg(&wasm),
                    "--name",
                    &again,
                    "--host",
                    &url,
                    "--token",
                    TOKEN,
                ],
            );
            wait_generation(&host, &again, 1);
            let upload = upload_started.elapsed();
            println!(
                "{lang:<8} {:>7.2} {:>8.1} {:>10.1} {:>8.2} {:>8.1}  {:>10.0}% {:>11.1}x   (upload alone {:.1} s)",
                new.took.as_secs_f64(),
                build.took.as_secs_f64(),
                install.took.as_secs_f64(),
                (total - before_live).as_secs_f64(),
                total.as_secs_f64(),
                100.0 * total.as_secs_f64() / GOAL.as_secs_f64(),
                total.as_secs_f64() / upload.as_secs_f64(),
                upload.as_secs_f64(),
            );
            collectors.push(Collector {
                lang,
                manifest: dir.join(format!("{name}.toml")),
                wasm,
            });
        }
    }
    collectors
}

/// Waits until plugin `name` runs generation `generation` or later.
fn wait_generation(host: &Host, name: &str, generation: u64) -> Value {
    let path = format!("/api/plugins/{name}");
    host.wait_until(LIVE, || {
        let (status, body) = host.get(&path);
        let view: Value = serde_json::from_str(&body).ok()?;
        (status == StatusCode::OK
            && view["status"] == "running"
            && view["generation"].as_u64() >= Some(generation))
        .then_some(view)
    })
}

/// (c) for one language and compiler.
struct Figures {
    lang: &'static str,
    size: u64,
    /// Compile + instantiate + init in the host (`took=`).
    load: Duration,
    /// `plugin check --json`'s timings (`compile_ms`, `init_ms`, `call_ms`).
    check: Vec<(String, f64)>,
    collect_mean_us: u64,
    calls: u64,
    memory_bytes: u64,
    rss_added: u64,
}

/// Loads `c` (as `c_LANG`, `interval = "500ms"`) into `host`, lets it run
/// 4 s and reads what it cost.
fn per_language(cli: &PluginCli, host: &Host, compiler: &str, c: &Collector) -> Figures {
    let name = format!("c_{}", c.lang);
    let mut manifest: toml::Table = std::fs::read_to_string(&c.manifest)
        .unwrap()
        .parse()
        .unwrap_or_else(|e| panic!("{} is not TOML: {e}", c.manifest.display()));
    manifest.insert("interval".into(), toml::Value::String("500ms".into()));
    std::thread::sleep(Duration::from_secs(1));
    let before = rss_bytes(host.pid());
    let mark = host.log_mark();
    host.plugins()
        .write_manifest(&name, &toml::to_string(&manifest).unwrap());
    host.plugins().install(&name, &c.wasm);
    wait_generation(host, &name, 1);
    let line = host.wait_for_log_since(mark, &format!("plugin loaded plugin={name} "), LIVE);
    std::thread::sleep(Duration::from_secs(4));
    let view = host.get_json(&format!("/api/plugins/{name}"));
    let rss_added = rss_bytes(host.pid()).saturating_sub(before);
    let check = cli.ok(
        c.wasm.parent().unwrap(),
        &[
            "plugin",
            "check",
            &arg(&c.wasm),
            "--manifest",
            &arg(&c.manifest),
            "--compiler",
            compiler,
            "--json",
        ],
    );
    Figures {
        lang: c.lang,
        size: std::fs::metadata(&c.wasm).unwrap().len(),
        load: took(&line).unwrap_or_else(|| panic!("no took= in {line:?}")),
        check: timing_keys(&check.json()),
        collect_mean_us: view["timings"]["mean_us"].as_u64().unwrap_or_default(),
        calls: view["calls"].as_u64().unwrap_or_default(),
        memory_bytes: view["memory_bytes"].as_u64().unwrap_or_default(),
        rss_added,
    }
}

fn print_figures(compiler: &str, figures: &[Figures], winch: Option<&[Figures]>) {
    let rust = figures
        .iter()
        .find(|f| f.lang == "rust")
        .expect("a Rust row");
    println!(
        "(c) per language, {compiler} (compilation cache off); ratios against the Rust collector{}",
        if winch.is_some() {
            ", load also against Winch"
        } else {
            ""
        }
    );
    println!(
        "{:<8} {:>9} {:>8} {:>11} {:>13} {:>12} {:>12}  plugin check --json",
        "lang", "size MB", "load s", "collect us", "guest mem MB", "RSS add MB", "load x rust"
    );
    for f in figures {
        let vs_winch = winch
            .and_then(|w| w.iter().find(|w| w.lang == f.lang))
            .map_or(String::new(), |w| {
                format!(
                    " ({:.1}x winch)",
                    f.load.as_secs_f64() / w.load.as_secs_f64()
                )
            });
        let check: Vec<String> = f.check.iter().map(|(k, v)| format!("{k}={v}")).collect();
        println!(
            "{:<8} {:>9.2} {:>8.2} {:>11} {:>13.1} {:>12.1} {:>11.1}x  {}{vs_winch}  [{} calls]",
            f.lang,
            f.size as f64 / 1e6,
            f.load.as_secs_f64(),
            f.collect_mean_us,
            f.memory_bytes as f64 / 1048576.0,
            f.rss_added as f64 / 1048576.0,
            f.load.as_secs_f64() / rust.load.as_secs_f64(),
            check.join(" "),
            f.calls,
        );
    }
}

/// (b): `/metrics` latency idle, then while `c` is recompiled `times` times.
fn compile_vs_scrapes(host: &Host, compiler: &str, c: &Collector, times: usize) {
    let name = format!("c_{}", c.lang);
    let bytes = std::fs::read(&c.wasm).unwrap();
    let idle = scrape_latency(host.addr(), || false, Duration::from_secs(5));
    let done = AtomicBool::new(false);
    let (busy, loads) = std::thread::scope(|scope| {
        let reloads = scope.spawn(|| {
            let mut loads = Vec::new();
            let mut generation = host.get_json(&format!("/api/plugins/{name}"))["generation"]
                .as_u64()
                .unwrap();
            for i in 0..times {
                let mark = host.log_mark();
                generation += 1;
                host.plugins()
                    .install_bytes(&name, &with_custom_section(&bytes, i));
                wait_generation(host, &name, generation);
                let line = host.wait_for_log_since(
                    mark,
                    &format!("plugin loaded plugin={name} generation={generation} "),
                    LIVE,
                );
                loads.push(took(&line).unwrap_or_default());
            }
            done.store(true, Ordering::Relaxed);
            loads
        });
        let busy = scrape_latency(host.addr(), || done.load(Ordering::Relaxed), Duration::ZERO);
        (busy, reloads.join().unwrap())
    });
    let mean = loads.iter().sum::<Duration>().as_secs_f64() / loads.len().max(1) as f64;
    println!(
        "(b) /metrics while the {:.1} MB {} collector compiles {times} times ({compiler}, {mean:.1} s each)",
        bytes.len() as f64 / 1e6,
        c.lang
    );
    for (label, l) in [("idle", idle), ("compiling", busy)] {
        println!(
            "/metrics {label:<10} p50 {:>7.2} ms  p99 {:>7.2} ms  ({} scrapes; p99 {:.2}x idle)",
            l.p50_ms,
            l.p99_ms,
            l.count,
            l.p99_ms / idle.p99_ms
        );
    }
}

/// The component with a custom section `wasmon-bench` holding `n` appended:
/// the same code with another sha256, so the host compiles it again.
fn with_custom_section(component: &[u8], n: usize) -> Vec<u8> {
    fn leb(mut v: usize, out: &mut Vec<u8>) {
        loop {
            let byte = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                out.push(byte);
                return;
            }
            out.push(byte | 0x80);
        }
    }
    let name = b"wasmon-bench";
    let payload = n.to_le_bytes();
    let mut body = Vec::new();
    leb(name.len(), &mut body);
    body.extend_from_slice(name);
    body.extend_from_slice(&payload);
    let mut out = component.to_vec();
    out.push(0);
    leb(body.len(), &mut out);
    out.extend_from_slice(&body);
    out
}

/// `took=2.41s` (a `Duration`'s Debug form) in a `plugin loaded` line.
fn took(line: &str) -> Option<Duration> {
    let token = line.split("took=").nth(1)?.split_whitespace().next()?;
    let token = token.trim_matches(|c| c == '"' || c == ',');
    let (number, scale) = [
        ("ms", 1e-3),
        ("µs", 1e-6),
        ("us", 1e-6),
        ("ns", 1e-9),
        ("s", 1.0),
    ]
    .iter()
    .find_map(|(unit, scale)| token.strip_suffix(unit).map(|n| (n, *scale)))?;
    number
        .parse::<f64>()
        .ok()
        .map(|n| Duration::from_secs_f64(n * scale))
}

/// The top-level timings `plugin check --json` prints (`compile_ms`,
/// `init_ms` = instantiate + init, `call_ms`), whatever their set.
fn timing_keys(json: &Value) -> Vec<(String, f64)> {
    let mut found: Vec<(String, f64)> = json
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(key, _)| key.ends_with("_ms"))
        .filter_map(|(key, v)| Some((key.clone(), (v.as_f64()? * 100.0).round() / 100.0)))
        .collect();
    found.sort_by(|a, b| a.0.cmp(&b.0));
    found
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

#[derive(Debug, Clone, Copy)]
struct Latency {
    p50_ms: f64,
    p99_ms: f64,
    count: usize,
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
