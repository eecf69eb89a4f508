//! Fixture `guest-bad-values` (hostile): every `collect` returns samples that
//! would break `/metrics` or mislead Prometheus if exported as they are:
//! - `fixture_ctrl{v}` = 1 with a control character in `v`: `nul\0`,
//!   `esc\x1b[31m`, `bel\x07`, `cr\r` (four series);
//! - counters `fixture_negative` = -5, `fixture_nan` = NaN,
//!   `fixture_infinite` = +Inf;
//! - counter `fixture_flaky` = the call number on odd calls, NaN on even ones
//!   (an existing counter turning bad).
//!
//! And beside them, well formed:
//! - `fixture_ok{v="fine\there"}` = 1, help text with ESC, CR, BEL and NUL in it;
//! - counter `fixture_resets` = 100 − call number (going down: a reset, as
//!   Prometheus reads it), 0 from the 100th call;
//! - gauge `fixture_undefined` = NaN (a gauge may be NaN).
//!
//! The call number (from 1) lives in the instance.

use wasmon_sdk::{Collector, Error, Sample};

/// The collector.
pub struct BadValues {
    call: u64,
}

impl Collector for BadValues {
    fn init() -> Result<Self, Error> {
        Ok(BadValues { call: 0 })
    }

    fn collect(&mut self) -> Result<Vec<Sample>, Error> {
        self.call += 1;
        let call = self.call as f64;
        let mut samples: Vec<Sample> = ["nul\0", "esc\x1b[31m", "bel\x07", "cr\r"]
            .into_iter()
            .map(|v| Sample::gauge("fixture_ctrl", 1.0).with_label("v", v))
            .collect();
        samples.extend([
            Sample::counter("fixture_negative", -5.0),
            Sample::counter("fixture_nan", f64::NAN),
            Sample::counter("fixture_infinite", f64::INFINITY),
            Sample::counter(
                "fixture_flaky",
                if self.call % 2 == 1 { call } else { f64::NAN },
            ),
            Sample::gauge("fixture_ok", 1.0)
                .with_label("v", "fine\there")
                .with_help("Help with \x1b[2J escape, \r return, \x07 bell and \0 nul."),
            Sample::counter("fixture_resets", (100.0 - call).max(0.0)),
            Sample::gauge("fixture_undefined", f64::NAN),
        ]);
        Ok(samples)
    }
}

wasmon_sdk::export_collector!(BadValues);
