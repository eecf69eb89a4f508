//! Fixture `guest-series-flood` (hostile): a collector whose every `collect`
//! returns `[config] series` gauges `fixture_flood{n}` (1 000 by default),
//! `n` = `"<n>"`, or `"<call>-<n>"` with `fresh = true`, so every call brings
//! new series and the old ones go stale (churn). The call number lives in
//! the instance.
//!
//! It checks that plugins holding as many series as they may, and churning
//! them, never push the host's own series (`system`, `gpu`, alerts) out of
//! the store: those have a budget of their own (`store.reserved_series`).

use serde::Deserialize;
use wasmon_sdk::{Collector, Error, Sample};

/// The `[config]` table.
#[derive(Deserialize)]
struct Config {
    /// Series per call.
    #[serde(default = "default_series")]
    series: usize,
    /// New series on every call.
    #[serde(default)]
    fresh: bool,
}

const fn default_series() -> usize {
    1000
}

/// The collector.
pub struct SeriesFlood {
    config: Config,
    call: u64,
}

impl Collector for SeriesFlood {
    fn init() -> Result<Self, Error> {
        Ok(SeriesFlood {
            config: wasmon_sdk::config::get()?,
            call: 0,
        })
    }

    fn collect(&mut self) -> Result<Vec<Sample>, Error> {
        let call = self.call;
        self.call += 1;
        Ok((0..self.config.series)
            .map(|n| {
                let label = if self.config.fresh {
                    format!("{call}-{n}")
                } else {
                    n.to_string()
                };
                Sample::gauge("fixture_flood", n as f64).with_label("n", label)
            })
            .collect())
    }
}

wasmon_sdk::export_collector!(SeriesFlood);
