//! Fixture `guest-rule-flood` (hostile): a rule whose every evaluation returns
//! `[config] count` alerts (10 000 by default, the default per-call output
//! cap) named `flood`, with labels `i` = `"<evaluation>-<n>"`, so each
//! evaluation's conditions are new (`fresh = false` keeps `i` = `"<n>"`, the
//! same conditions every time). Severity `[config] severity`: `warning`
//! (default) or `critical`; the summary is `[config] summary_bytes` bytes
//! (default 20). The evaluation number lives in the instance, so a restart
//! starts again from 0.
//!
//! It checks that the host bounds what a rule can make it keep: active alerts
//! per rule (`max_alerts`), resolved alerts (`alerts.max_resolved`), the
//! exported `wasmon_alert_active` series and the `/api/alerts` answer.

use serde::Deserialize;
use wasmon_sdk::{Alert, Error, Rule, RuleInput, Severity};

/// The `[config]` table.
#[derive(Deserialize)]
struct Config {
    /// Alerts per evaluation.
    #[serde(default = "default_count")]
    count: usize,
    /// New labels on every evaluation.
    #[serde(default = "default_fresh")]
    fresh: bool,
    /// `warning` or `critical`.
    #[serde(default = "default_severity")]
    severity: String,
    /// Length of each alert's summary.
    #[serde(default = "default_summary_bytes")]
    summary_bytes: usize,
}

const fn default_count() -> usize {
    10_000
}

const fn default_fresh() -> bool {
    true
}

fn default_severity() -> String {
    "warning".into()
}

const fn default_summary_bytes() -> usize {
    20
}

/// The rule.
pub struct Flood {
    config: Config,
    severity: Severity,
    summary: String,
    evaluation: u64,
}

impl Rule for Flood {
    fn init() -> Result<Self, Error> {
        let config: Config = wasmon_sdk::config::get()?;
        let severity = match config.severity.as_str() {
            "warning" => Severity::Warning,
            "critical" => Severity::Critical,
            other => {
                return Err(Error::new(format!(
                    "rule-flood: unknown severity {other:?}"
                )));
            }
        };
        let summary = "s".repeat(config.summary_bytes);
        Ok(Flood {
            config,
            severity,
            summary,
            evaluation: 0,
        })
    }

    fn evaluate(&mut self, _input: RuleInput) -> Result<Vec<Alert>, Error> {
        let evaluation = self.evaluation;
        self.evaluation += 1;
        Ok((0..self.config.count)
            .map(|n| {
                let i = if self.config.fresh {
                    format!("{evaluation}-{n}")
                } else {
                    n.to_string()
                };
                Alert::new("flood", self.severity, self.summary.as_str())
                    .with_label("i", i)
                    .with_value(n as f64)
            })
            .collect())
    }
}

wasmon_sdk::export_rule!(Flood);
