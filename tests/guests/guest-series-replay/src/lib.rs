//! Fixture `guest-series-replay`: drives one gauge, `[config] name`
//! (`fixture_cpu_ratio` by default) with label `cpu="total"`, from the test.
//! Each `collect` returns the next of `[config] points` (`[[time_ms, value],
//! ...]`, oldest first) stamped with its own time, so the store's history
//! holds a past the test controlled; once they are all out, every `collect`
//! returns `[config] value` (now), or nothing when it is not set. With
//! `[config] series = N` (1 by default) each answer holds N series, label
//! `n` = `"0"`..`"N-1"`, all with the same value (the backtest benchmark).

use serde::Deserialize;
use wasmon_sdk::{Collector, Error, Sample};

/// The `[config]` table.
#[derive(Deserialize)]
struct Config {
    /// The gauge's name.
    #[serde(default = "default_name")]
    name: String,
    /// Past points, `[time_ms, value]`, oldest first.
    #[serde(default)]
    points: Vec<(u64, f64)>,
    /// The live value after the points.
    #[serde(default)]
    value: Option<f64>,
    /// How many series (label `n`); one, without `n`, by default.
    #[serde(default = "one")]
    series: usize,
}

fn one() -> usize {
    1
}

fn default_name() -> String {
    "fixture_cpu_ratio".to_string()
}

/// The collector: the points not yet returned.
pub struct Replay {
    config: Config,
    next: usize,
}

impl Collector for Replay {
    fn init() -> Result<Self, Error> {
        Ok(Replay {
            config: wasmon_sdk::config::get()?,
            next: 0,
        })
    }

    fn collect(&mut self) -> Result<Vec<Sample>, Error> {
        let (value, time_ms) = match self.config.points.get(self.next) {
            Some(&(time_ms, value)) => {
                self.next += 1;
                (value, Some(time_ms))
            }
            None => match self.config.value {
                Some(value) => (value, None),
                None => return Ok(Vec::new()),
            },
        };
        let series = self.config.series.max(1);
        Ok((0..series)
            .map(|n| {
                let mut sample = Sample::gauge(self.config.name.clone(), value)
                    .with_label("cpu", "total")
                    .with_help("A CPU ratio the test controls.");
                if series > 1 {
                    sample = sample.with_label("n", n.to_string());
                }
                if let Some(time_ms) = time_ms {
                    sample = sample.at(time_ms);
                }
                sample
            })
            .collect())
    }
}

wasmon_sdk::export_collector!(Replay);
