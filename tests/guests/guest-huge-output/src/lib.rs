//! Fixture `guest-huge-output` (hostile): `collect()` returns `[config] count`
//! samples (2 000 000 by default), far over the host's per-call cap
//! (`max_samples_per_call`, 10 000 by default), which the host must treat as
//! a fault rather than store or export.
//!
//! The samples are as small as a sample gets (`fixture_huge` = i, no labels),
//! yet 2 000 000 of them need about 250 MiB of guest memory (the Rust vector
//! plus its canonical-ABI copy), so a manifest for the default count sets
//! `memory_limit = "512MiB"`; under the default 64 MiB limit use
//! `count = 200000` (20 times the cap, about 25 MiB).

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
    2_000_000
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
