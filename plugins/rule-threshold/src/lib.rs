//! `rule-threshold`: seed 003's threshold manager as a wasmon rule plugin.
//!
//! Each configured check compares every series of one metric with a `warn` and
//! an `alert` threshold and returns one alert per series, named after the check,
//! carrying the series' labels, with severity `ok` / `warning` / `critical`
//! (the seed's OK / WARNING / ALERT), a one-line summary and the value. A check
//! can also alert while its metric is absent, and the rule can alert on
//! services whose heartbeats stopped. The host owns pending → firing →
//! resolved, `for` durations and the overall status.
//!
//! The manifest's `select` must cover every check's metric: the rule only sees
//! the series the host hands it.
//!
//! # Layout
//!
//! - [`config`]: the `[config]` table and its validation, done once in `init`.
//! - [`eval`]: evaluation, a pure function, unit-tested natively with
//!   `cargo test --target x86_64-unknown-linux-gnu` from this crate's folder.

pub mod config;
pub mod eval;

use wasmon_sdk::{Alert, Error, Rule, RuleInput};

/// The plugin: the validated rules.
pub struct Threshold {
    rules: config::Rules,
}

impl Rule for Threshold {
    fn init() -> Result<Self, Error> {
        let rules = wasmon_sdk::config::get::<config::Config>()?
            .validate()
            .map_err(|e| Error::new(format!("invalid [config]: {e}")))?;
        wasmon_sdk::info!(
            "{} checks{}",
            rules.checks.len(),
            if rules.services_down.is_some() {
                ", watching services"
            } else {
                ""
            }
        );
        Ok(Threshold { rules })
    }

    fn evaluate(&mut self, input: RuleInput) -> Result<Vec<Alert>, Error> {
        Ok(eval::evaluate(&self.rules, &input))
    }
}

wasmon_sdk::export_rule!(Threshold);
