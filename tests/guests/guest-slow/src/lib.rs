//! Fixture `guest-slow`: each `collect()` busy-waits `[config] busy_ms`
//! milliseconds (100 by default) on the monotonic clock, then returns
//! `fixture_slow_busy_seconds{version="<config version, or none>"}` = the time
//! it actually spent. For in-flight-during-reload tests (the call finishes on
//! the old instance; `version` tells which one answered) and for time-budget
//! tests (`busy_ms` above the manifest's `timeout` is a fault).

use serde::Deserialize;
use std::hint::black_box;
use std::time::{Duration, Instant};
use wasmon_sdk::{Collector, Error, Sample};

/// The `[config]` table.
#[derive(Deserialize)]
struct Config {
    /// Milliseconds to spin per call.
    #[serde(default = "default_busy_ms")]
    busy_ms: u64,
}

const fn default_busy_ms() -> u64 {
    100
}

/// The collector.
pub struct Slow {
    busy: Duration,
    version: String,
}

impl Collector for Slow {
    fn init() -> Result<Self, Error> {
        let config: Config = wasmon_sdk::config::get()?;
        Ok(Slow {
            busy: Duration::from_millis(config.busy_ms),
            version: wasmon_sdk::config::value("version").unwrap_or_else(|| "none".into()),
        })
    }

    fn collect(&mut self) -> Result<Vec<Sample>, Error> {
        let started = Instant::now();
        let mut spins = 0u64;
        while started.elapsed() < self.busy {
            spins = black_box(spins.wrapping_add(1));
        }
        Ok(vec![
            Sample::gauge("fixture_slow_busy_seconds", started.elapsed().as_secs_f64())
                .with_label("version", self.version.as_str()),
        ])
    }
}

wasmon_sdk::export_collector!(Slow);
