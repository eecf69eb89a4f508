//! Fixture `guest-bench`: each `collect()` returns exactly 100 samples
//! `bench_value{series="0".."99", group="g"}` = the series number, built
//! from strings prepared in `init`, for the benchmark of one collector call.

use wasmon_sdk::{Collector, Error, Label, MetricKind, Sample};

/// Samples per call.
const SERIES: usize = 100;

/// The collector: the series labels, formatted once.
pub struct Bench {
    series: Vec<String>,
}

impl Collector for Bench {
    fn init() -> Result<Self, Error> {
        Ok(Bench {
            series: (0..SERIES).map(|i| i.to_string()).collect(),
        })
    }

    fn collect(&mut self) -> Result<Vec<Sample>, Error> {
        Ok(self
            .series
            .iter()
            .enumerate()
            .map(|(i, series)| Sample {
                name: "bench_value".into(),
                kind: MetricKind::Gauge,
                labels: vec![
                    Label::new("series", series.as_str()),
                    Label::new("group", "g"),
                ],
                value: i as f64,
                help: None,
                timestamp_ms: None,
            })
            .collect())
    }
}

wasmon_sdk::export_collector!(Bench);
