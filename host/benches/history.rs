//! Memory of the store's history (issue 11): 10 000 series sampled every 10 s
//! for 60 min into 10 s buckets (the defaults), against the plain size of
//! the values (8 bytes each) and against the previous representation (a
//! 32-byte bucket each, uncompressed) [target ≤ 100 MiB].
//!
//! Three kinds of series, since the compression depends on the values:
//! - `mixed`: a third gauges with two decimals (a percentage), a third
//!   counters growing by whole numbers (bytes), a third full-precision noise;
//! - `noise`: every value a random full-precision float, the worst case;
//! - `dense`: 1 000 series sampled every second into the same 10 s buckets
//!   (ten values a bucket: min, max, sum and last all differ), scaled ×10.
//!
//! Both what the store accounts (`history_bytes`) and what the allocator
//! holds (a counting global allocator, allocator overhead aside) are shown.
//!
//! `cargo bench -p wasmon --bench history` (or `scripts/bench.sh --bench history`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use wasmon::config::StoreConfig;
use wasmon::model::Sample;
use wasmon::store::{SourceKind, Store};

struct Counting;

static HELD: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        HELD.fetch_add(layout.size(), Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        HELD.fetch_sub(layout.size(), Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        HELD.fetch_sub(layout.size(), Ordering::Relaxed);
        HELD.fetch_add(new_size, Ordering::Relaxed);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const MIB: f64 = 1024.0 * 1024.0;
const T0: u64 = 1_800_000_000_000;

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Mixed,
    Noise,
}

fn value(kind: Kind, series: usize, tick: u64, state: &mut [f64], rng: &mut fastrand::Rng) -> f64 {
    let v = &mut state[series];
    match (kind, series % 3) {
        (Kind::Mixed, 0) => {
            *v = ((*v + rng.f64() * 4.0 - 2.0).clamp(0.0, 100.0) * 100.0).round() / 100.0;
        }
        (Kind::Mixed, 1) => *v += f64::from(rng.u32(0..100_000)),
        _ => *v = rng.f64() * (tick as f64 + 1.0),
    }
    *v
}

/// Fills a store: `series` series, one value each every `every` for `minutes`;
/// returns (history bytes the store accounts, bytes allocated for the whole
/// store, values recorded, mean µs per snapshot of all series).
fn fill(kind: Kind, series: usize, every: Duration, minutes: u64) -> (usize, usize, u64, f64) {
    let before = HELD.load(Ordering::Relaxed);
    let store = Store::new(&StoreConfig::default());
    let source = store.source(
        "bench",
        SourceKind::Plugin {
            max_series: series * 2,
        },
    );
    let names: Vec<String> = (0..10).map(|f| format!("bench_level_{f}")).collect();
    let labels: Vec<String> = (0..series).map(|i| format!("s{i}")).collect();
    let mut state = vec![50.0; series];
    let mut rng = fastrand::Rng::with_seed(7);
    let ticks = minutes * 60_000 / every.as_millis() as u64;
    let mut spent = Duration::ZERO;
    for tick in 0..=ticks {
        let samples: Vec<Sample> = (0..series)
            .map(|i| {
                let mut s = Sample::gauge(
                    names[i % 10].clone(),
                    value(kind, i, tick, &mut state, &mut rng),
                );
                s.labels = vec![("i".to_string(), labels[i].clone())];
                s
            })
            .collect();
        let now = T0 + tick * every.as_millis() as u64;
        let start = Instant::now();
        let report = store.apply(source, samples, now);
        spent += start.elapsed();
        assert_eq!(report.stored, series, "{report:?}");
    }
    let stats = store.stats();
    let held = HELD.load(Ordering::Relaxed) - before;
    let recorded = (ticks + 1) * series as u64;
    let per_apply = spent.as_secs_f64() * 1e6 / (ticks + 1) as f64;
    drop(store);
    (stats.history_bytes, held, recorded, per_apply)
}

fn main() {
    let buckets = 361.0; // 60 min / 10 s, plus the bucket in progress
    for (name, kind, series, every, scale) in [
        ("mixed", Kind::Mixed, 10_000, Duration::from_secs(10), 1.0),
        ("noise", Kind::Noise, 10_000, Duration::from_secs(10), 1.0),
        ("dense", Kind::Mixed, 1_000, Duration::from_secs(1), 10.0),
    ] {
        let (history, held, recorded, per_apply) = fill(kind, series, every, 60);
        let plain = series as f64 * buckets * 8.0;
        let previous = series as f64 * buckets * 32.0;
        println!(
            "history {name:>5}: {series} series × 60 min every {every:?}: history {:.1} MiB ({:.1} B/bucket), \
             whole store {:.1} MiB{}; plain values {:.1} MiB (×{:.2}); previous 32-B buckets {:.1} MiB; \
             {recorded} values, {per_apply:.0} µs per snapshot of all series",
            history as f64 * scale / MIB,
            history as f64 / (series as f64 * buckets),
            held as f64 * scale / MIB,
            if scale > 1.0 {
                format!(" (scaled ×{scale} to 10 000 series)")
            } else {
                String::new()
            },
            plain * scale / MIB,
            history as f64 / plain,
            previous * scale / MIB,
        );
    }
}
