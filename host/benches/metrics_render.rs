//! Benchmark: `/metrics` render of 10 000 plugin series against a plain
//! formatting loop over the same samples, in the same run, plus the cost of
//! `Store::apply` for a collector answer of 100 samples, and the cost of one
//! system sampling snapshot.
//!
//! Run with `cargo bench -p wasmon --bench metrics_render`. The target
//! (design.md) is a render within 3× the plain loop.

use std::hint::black_box;
use std::time::{Duration, Instant};
use wasmon::config::StoreConfig;
use wasmon::export::prometheus::render;
use wasmon::model::{MetricKind, Sample};
use wasmon::store::{SourceKind, Store};

const FAMILIES: usize = 100;
const LABEL_SETS: usize = 100;
const RENDER_RUNS: usize = 300;
const APPLY_RUNS: usize = 2000;
const T0: u64 = 1_700_000_000_000;

fn main() {
    let store = Store::new(&StoreConfig::default());
    let plugin = store.source(
        "bench",
        SourceKind::Plugin {
            max_series: FAMILIES * LABEL_SETS,
        },
    );
    let report = store.apply(plugin, samples(0.0), T0);
    assert_eq!(report.stored, FAMILIES * LABEL_SETS, "{report:?}");
    let registry = prometheus::Registry::new();
    let services = parking_lot::Mutex::new(wasmon::ingest::Services::default());

    // The same samples, as the store exports them (the `plugin` label included).
    let exported = store.select(&["*".to_string()]);
    assert_eq!(exported.len(), FAMILIES * LABEL_SETS);

    let mut out = Vec::with_capacity(1 << 20);
    let cold = time(|| render(&store, &services, &registry, &mut out));
    let mut plain = Vec::with_capacity(1 << 20);
    plain_loop(&exported, &mut plain);
    assert!(
        out == plain,
        "render and plain loop disagree:\n{}\n---\n{}",
        String::from_utf8_lossy(&out[..400.min(out.len())]),
        String::from_utf8_lossy(&plain[..400.min(plain.len())]),
    );

    let mut render_times = Vec::with_capacity(RENDER_RUNS);
    let mut plain_times = Vec::with_capacity(RENDER_RUNS);
    for _ in 0..RENDER_RUNS {
        out.clear();
        render_times.push(time(|| {
            render(&store, &services, &registry, black_box(&mut out))
        }));
        plain.clear();
        plain_times.push(time(|| {
            plain_loop(black_box(&exported), black_box(&mut plain))
        }));
    }
    let render_ms = median(&mut render_times).as_secs_f64() * 1e3;
    let plain_ms = median(&mut plain_times).as_secs_f64() * 1e3;
    println!(
        "metrics_render: {} series: render {render_ms:.3} ms, plain loop {plain_ms:.3} ms, ratio {:.2}x (target <= 3x); first render (cold cache) {:.3} ms; body {} KiB",
        FAMILIES * LABEL_SETS,
        render_ms / plain_ms,
        cold.as_secs_f64() * 1e3,
        out.len() / 1024,
    );

    apply_cost();
    sampling_cost();
}

/// Wall time of one system snapshot (sysinfo reads and sample building), and
/// what that costs at the default interval.
fn sampling_cost() {
    let config = wasmon::config::SamplingConfig::default();
    let mut sampler = wasmon::sampling::SystemSampler::new(&config);
    let mut times = Vec::new();
    for _ in 0..10 {
        // Past sysinfo's minimum CPU interval, so the timed run never waits.
        std::thread::sleep(Duration::from_millis(250));
        times.push(time(|| {
            black_box(sampler.sample());
        }));
    }
    let snapshot = median(&mut times);
    println!(
        "system sampler: {:.3} ms per snapshot, {:.3} % of one core at the default {} s interval",
        snapshot.as_secs_f64() * 1e3,
        snapshot.as_secs_f64() / config.interval.as_secs_f64() * 100.0,
        config.interval.as_secs(),
    );
}

/// `FAMILIES` gauges × `LABEL_SETS` label sets of three labels.
fn samples(offset: f64) -> Vec<Sample> {
    let mut out = Vec::with_capacity(FAMILIES * LABEL_SETS);
    for f in 0..FAMILIES {
        for i in 0..LABEL_SETS {
            out.push(
                Sample::gauge(
                    format!("bench_family_{f}_value"),
                    offset + (f * i) as f64 * 0.5,
                )
                .label("instance", format!("host-{i}.example.org:9100"))
                .label("job", "node")
                .label("zone", format!("zone-\"{}\"", i % 7))
                .help(format!("Bench family {f}.")),
            );
        }
    }
    out
}

/// The baseline: text format from a `Vec<Sample>` with itoa/ryu and correct
/// escaping, grouping by consecutive name.
fn plain_loop(samples: &[Sample], out: &mut Vec<u8>) {
    let mut last: Option<&str> = None;
    let mut ibuf = itoa::Buffer::new();
    let mut rbuf = ryu::Buffer::new();
    for s in samples {
        if last != Some(s.name.as_str()) {
            out.extend_from_slice(b"# HELP ");
            out.extend_from_slice(s.name.as_bytes());
            out.push(b' ');
            escape(s.help.as_deref().unwrap_or(""), out, false);
            out.extend_from_slice(b"\n# TYPE ");
            out.extend_from_slice(s.name.as_bytes());
            out.extend_from_slice(match s.kind {
                MetricKind::Gauge => b" gauge\n",
                MetricKind::Counter => b" counter\n",
            });
            last = Some(&s.name);
        }
        out.extend_from_slice(s.name.as_bytes());
        for (i, (name, value)) in s.labels.iter().enumerate() {
            out.push(if i == 0 { b'{' } else { b',' });
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b"=\"");
            escape(value, out, true);
            out.push(b'"');
        }
        if !s.labels.is_empty() {
            out.push(b'}');
        }
        out.push(b' ');
        let v = s.value;
        if v.is_nan() {
            out.extend_from_slice(b"NaN");
        } else if v.is_infinite() {
            out.extend_from_slice(if v > 0.0 { b"+Inf" } else { b"-Inf" });
        } else if v.fract() == 0.0 && v.abs() < 9_007_199_254_740_992.0 {
            out.extend_from_slice(ibuf.format(v as i64).as_bytes());
        } else {
            out.extend_from_slice(rbuf.format_finite(v).as_bytes());
        }
        out.push(b'\n');
    }
}

fn escape(text: &str, out: &mut Vec<u8>, quote: bool) {
    for &b in text.as_bytes() {
        match b {
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'"' if quote => out.extend_from_slice(b"\\\""),
            _ => out.push(b),
        }
    }
}

/// `Store::apply` of a 100-sample collector answer: updating existing series
/// (the steady state) and creating them (the first call).
fn apply_cost() {
    let store = Store::new(&StoreConfig::default());
    let source = store.source("collector", SourceKind::Plugin { max_series: 1000 });
    let answer = |round: usize| -> Vec<Sample> {
        (0..100)
            .map(|i| {
                Sample::gauge(format!("collector_metric_{}", i % 10), (round * i) as f64)
                    .label("instance", format!("i-{i}"))
                    .label("job", "redis")
                    .label("state", "active")
            })
            .collect()
    };
    let mut created = Vec::new();
    for round in 0..20 {
        let fresh = Store::new(&StoreConfig::default());
        let id = fresh.source("collector", SourceKind::Plugin { max_series: 1000 });
        let samples = answer(round);
        created.push(time(|| {
            black_box(fresh.apply(id, samples, T0));
        }));
    }
    store.apply(source, answer(0), T0);
    let answers: Vec<Vec<Sample>> = (1..=APPLY_RUNS).map(answer).collect();
    let mut updates = Vec::with_capacity(APPLY_RUNS);
    for (round, samples) in answers.into_iter().enumerate() {
        let now = T0 + round as u64 * 5000;
        updates.push(time(|| {
            black_box(store.apply(source, samples, now));
        }));
    }
    // Freeing the 100 samples happens inside apply (it owns them); measure it alone.
    let answers: Vec<Vec<Sample>> = (0..APPLY_RUNS).map(answer).collect();
    let mut frees = Vec::with_capacity(APPLY_RUNS);
    for samples in answers {
        frees.push(time(|| drop(black_box(samples))));
    }
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    let update = us(median(&mut updates));
    let free = us(median(&mut frees));
    println!(
        "apply: 100 samples: update {update:.1} µs ({:.1} µs without freeing the samples, {free:.1} µs freeing), create {:.1} µs",
        update - free,
        us(median(&mut created)),
    );
}

fn time(f: impl FnOnce()) -> Duration {
    let start = Instant::now();
    f();
    start.elapsed()
}

fn median(times: &mut [Duration]) -> Duration {
    times.sort_unstable();
    times[times.len() / 2]
}
