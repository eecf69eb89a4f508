//! The logic of `guest-counter` and `guest-counter-v2`, shared with `#[path]`
//! so both builds behave the same and differ only in `super::BUILD`.
//!
//! Each `collect()` adds one to the integer in state key `count` (decimal
//! text, e.g. `42`) and returns:
//! - `fixture_collected` = the new count;
//! - `fixture_version{version="<config version, or none>"}` = 1;
//! - `fixture_build{build="<BUILD>"}` = 1.
//!
//! It uses no serde: the reload benchmark swaps these two builds, and a
//! smaller component compiles faster.

use wasmon_sdk::{Collector, Error, Sample, state};

/// The state key holding the count (decimal text).
pub const COUNT_KEY: &str = "count";

/// The collector: the `version` read from `[config]` at init.
pub struct Counter {
    version: String,
}

impl Collector for Counter {
    fn init() -> Result<Self, Error> {
        Ok(Counter {
            version: wasmon_sdk::config::value("version").unwrap_or_else(|| "none".into()),
        })
    }

    fn collect(&mut self) -> Result<Vec<Sample>, Error> {
        let count = state::get(COUNT_KEY)
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .and_then(|text| text.trim().parse::<u64>().ok())
            .unwrap_or(0)
            + 1;
        state::set(COUNT_KEY, count.to_string().as_bytes())?;
        Ok(vec![
            Sample::gauge("fixture_collected", count as f64),
            Sample::gauge("fixture_version", 1.0).with_label("version", self.version.as_str()),
            Sample::gauge("fixture_build", 1.0).with_label("build", super::BUILD),
        ])
    }
}
