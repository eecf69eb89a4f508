//! Fixture `guest-huge-output` (hostile): `collect()` returns `[config] count`
//! samples `fixture_huge` = i (200 000 by default), far over the host's
//! per-call cap (`max_samples_per_call`, 10 000 by default), which the host
//! must treat as a fault rather than store or export.
//!
//! The default is 20 times the cap and fits the default limits: about 26 MiB
//! of guest memory (64 bytes per sample in the Rust vector, as much again for
//! its canonical-ABI copy) and under wasmtime's default hostcall fuel (128 MiB
//! copied per call). Larger counts hit those limits first, which is a fault
//! too but not the host's own check: `count = 2000000` needs
//! `memory_limit = "512MiB"` and then traps in wasmtime with "too much data is
//! being copied between the host and the guest"; under 64 MiB it runs out of
//! memory ("memory allocation of 128000000 bytes failed").

use serde::Deserialize;
use wasmon_sdk::{Collector, Error, MetricKind, Sample};

/// The `[config]` table.
#[derive(Deserialize)]
struct Config {
    /// How many samples to return.
    #[serde(default = "default_count")]
    count: usize,
}

const fn default_count() -> usize {
    200_000
}

/// The collector.
pub struct HugeOutput {
    count: usize,
}

impl Collector for HugeOutput {
    fn init() -> Result<Self, Error> {
        let config: Config = wasmon_sdk::config::get()?;
        Ok(HugeOutput {
            count: config.count,
        })
    }

    fn collect(&mut self) -> Result<Vec<Sample>, Error> {
        let mut samples = Vec::with_capacity(self.count);
        samples.extend((0..self.count).map(|i| Sample {
            name: "fixture_huge".into(),
            kind: MetricKind::Gauge,
            labels: Vec::new(),
            value: i as f64,
            help: None,
            timestamp_ms: None,
        }));
        Ok(samples)
    }
}

wasmon_sdk::export_collector!(HugeOutput);
