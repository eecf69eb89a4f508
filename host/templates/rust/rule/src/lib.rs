//! `{{name}}`: a wasmon alert rule.
//!
//! On every `interval` of its manifest (`{{name}}.toml`) the host calls
//! `evaluate` with the latest value of every series the manifest `select`s.
//! This rule compares each series of one metric (`[config] metric`) with a
//! `warn` and a `critical` threshold and returns one alert per series, named
//! `[config] alert`, carrying the series' labels, with severity `ok`,
//! `warning` or `critical`. The host owns the rest: pending -> firing (after
//! the manifest's `for`) -> resolved, and the events sinks receive.
//!
//! The logic is the pure function [`evaluate`], tested natively (`cargo test`).

use serde::Deserialize;
use wasmon_sdk::{Alert, Error, Rule, RuleInput, Sample, Severity};

/// The manifest's `[config]` table.
#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The metric to watch (the manifest's `select` must cover it).
    pub metric: String,
    /// The value from which a series is `warning`.
    pub warn: f64,
    /// The value from which a series is `critical`.
    pub critical: f64,
    /// The alerts' name; by default the metric's name with `_high`.
    #[serde(default)]
    pub alert: Option<String>,
}

/// The validated config.
#[derive(Debug, PartialEq)]
pub struct Check {
    /// The metric to watch.
    pub metric: String,
    /// Warning threshold.
    pub warn: f64,
    /// Critical threshold.
    pub critical: f64,
    /// The alerts' name.
    pub alert: String,
}

impl Config {
    /// Checks the config once, in `init`: an error here fails the load and
    /// the host keeps the previous version running.
    pub fn validate(self) -> Result<Check, Error> {
        if self.metric.is_empty() {
            return Err(Error::new(
                "invalid [config] at `metric`: must not be empty",
            ));
        }
        if !self.warn.is_finite() || !self.critical.is_finite() {
            return Err(Error::new(
                "invalid [config]: `warn` and `critical` must be numbers",
            ));
        }
        if self.warn > self.critical {
            return Err(Error::new(format!(
                "invalid [config]: `warn` ({}) is above `critical` ({})",
                self.warn, self.critical
            )));
        }
        let alert = self
            .alert
            .unwrap_or_else(|| format!("{}_high", self.metric));
        Ok(Check {
            metric: self.metric,
            warn: self.warn,
            critical: self.critical,
            alert,
        })
    }
}

/// The plugin: the validated check.
pub struct Plugin {
    check: Check,
}

impl Rule for Plugin {
    fn init() -> Result<Self, Error> {
        let check = wasmon_sdk::config::get::<Config>()?.validate()?;
        wasmon_sdk::info!(
            "watching {}: warning from {}, critical from {}",
            check.metric,
            check.warn,
            check.critical
        );
        Ok(Plugin { check })
    }

    fn evaluate(&mut self, input: RuleInput) -> Result<Vec<Alert>, Error> {
        Ok(evaluate(&self.check, &input.samples))
    }
}

/// One alert per series of the watched metric: pure, so it is tested natively.
pub fn evaluate(check: &Check, samples: &[Sample]) -> Vec<Alert> {
    samples
        .iter()
        .filter(|sample| sample.name == check.metric)
        .map(|sample| {
            let (severity, word) = if sample.value >= check.critical {
                (Severity::Critical, "critical")
            } else if sample.value >= check.warn {
                (Severity::Warning, "warning")
            } else {
                (Severity::Ok, "ok")
            };
            let summary = format!(
                "{} is {} ({word}: warning from {}, critical from {})",
                check.metric, sample.value, check.warn, check.critical
            );
            let mut alert =
                Alert::new(check.alert.as_str(), severity, summary).with_value(sample.value);
            alert.labels = sample.labels.clone();
            alert
        })
        .collect()
}

wasmon_sdk::export_rule!(Plugin);

#[cfg(test)]
mod tests {
    use super::*;

    fn check() -> Check {
        wasmon_sdk::config::from_json::<Config>(
            r#"{"metric": "cpu_usage_ratio", "warn": 0.8, "critical": 0.9}"#,
        )
        .unwrap()
        .validate()
        .unwrap()
    }

    #[test]
    fn config_is_checked() {
        assert_eq!(check().alert, "cpu_usage_ratio_high");
        let inverted = wasmon_sdk::config::from_json::<Config>(
            r#"{"metric": "m", "warn": 0.9, "critical": 0.8}"#,
        )
        .unwrap();
        assert!(inverted.validate().unwrap_err().message.contains("above"));
        let missing = wasmon_sdk::config::from_json::<Config>(r#"{"metric": "m"}"#);
        assert!(missing.unwrap_err().message.contains("warn"));
    }

    #[test]
    fn one_alert_per_series_with_its_severity_and_labels() {
        let samples = vec![
            Sample::gauge("cpu_usage_ratio", 0.5).with_label("host", "a"),
            Sample::gauge("cpu_usage_ratio", 0.85).with_label("host", "b"),
            Sample::gauge("cpu_usage_ratio", 0.95).with_label("host", "c"),
            Sample::gauge("other_ratio", 1.0),
        ];
        let alerts = evaluate(&check(), &samples);
        let got: Vec<_> = alerts
            .iter()
            .map(|a| (a.labels[0].value.as_str(), a.severity, a.value))
            .collect();
        assert_eq!(
            got,
            [
                ("a", Severity::Ok, Some(0.5)),
                ("b", Severity::Warning, Some(0.85)),
                ("c", Severity::Critical, Some(0.95)),
            ]
        );
        assert!(alerts.iter().all(|a| a.name == "cpu_usage_ratio_high"));
        assert!(alerts[2].summary.contains("critical"));
    }
}
