//! The rule's `[config]`: checks as written in the manifest, and their
//! validation into [`Rules`], the form evaluation works on.
//!
//! ```toml
//! [config]
//! services_down = "critical"
//!
//! [[config.checks]]
//! name = "disk_usage"
//! metric = "wasmon_filesystem_usage_ratio"
//! warn = 0.80
//! alert = 0.90
//! summary_labels = ["mountpoint"]
//! ```

use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use wasmon_sdk::Severity;

/// The `[config]` table as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Threshold checks, each on one metric.
    #[serde(default)]
    pub checks: Vec<CheckConfig>,
    /// Severity of a `service_down` alert for each service whose heartbeats
    /// stopped; no service alerts when absent.
    #[serde(default)]
    pub services_down: Option<SeverityName>,
    /// Which services `services_down` watches, as names or `*` globs; all
    /// known services when empty.
    #[serde(default)]
    pub services: Vec<String>,
}

/// One check as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckConfig {
    /// The alert's name: letters, digits and `_`, not starting with a digit.
    pub name: String,
    /// The metric's exact name, e.g. `wasmon_filesystem_usage_ratio`.
    pub metric: String,
    /// Label matchers: `label = "value"` (exact), `"/mnt/*"` (glob),
    /// `"!tmpfs"` (not equal / not matching).
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Warning threshold.
    #[serde(default)]
    pub warn: Option<f64>,
    /// Alert (critical) threshold.
    #[serde(default)]
    pub alert: Option<f64>,
    /// `above` (default: a value at or above a threshold breaches it) or
    /// `below` (a value at or below breaches it).
    #[serde(default)]
    pub direction: Direction,
    /// Words that start the summary; the name with `_` as spaces by default.
    #[serde(default)]
    pub description: Option<String>,
    /// Labels whose values end the summary (`... on /`); every label but
    /// `plugin`, as `name=value`, by default.
    #[serde(default)]
    pub summary_labels: Option<Vec<String>>,
    /// Severity of a `<name>_absent` alert raised while no series matches.
    #[serde(default)]
    pub absent: Option<SeverityName>,
}

/// Which side of a threshold breaches it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// `value >= threshold` breaches (usage, backlog, temperature).
    #[default]
    Above,
    /// `value <= threshold` breaches (`probe_success`, free space).
    Below,
}

/// A severity as written in the config.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SeverityName {
    /// `warning` (seed status WARNING).
    Warning,
    /// `critical`, or the seed's word `alert` (seed status ALERT).
    #[serde(alias = "alert")]
    Critical,
}

impl From<SeverityName> for Severity {
    fn from(name: SeverityName) -> Self {
        match name {
            SeverityName::Warning => Severity::Warning,
            SeverityName::Critical => Severity::Critical,
        }
    }
}

/// The validated configuration.
#[derive(Debug)]
pub struct Rules {
    /// The checks, in config order.
    pub checks: Vec<Check>,
    /// Severity of `service_down` alerts, when watched.
    pub services_down: Option<Severity>,
    /// Which services to watch (globs); all when empty.
    pub services: Vec<String>,
}

/// One validated check.
#[derive(Debug)]
pub struct Check {
    /// The alert's name.
    pub name: String,
    /// The metric's exact name.
    pub metric: String,
    /// Label matchers, all of which must hold.
    pub matchers: Vec<Matcher>,
    /// Warning threshold.
    pub warn: Option<f64>,
    /// Critical threshold.
    pub alert: Option<f64>,
    /// Which side breaches.
    pub direction: Direction,
    /// Start of the summary.
    pub description: String,
    /// Labels shown at the end of the summary; `None`: all but `plugin`.
    pub summary_labels: Option<Vec<String>>,
    /// Severity while no series matches.
    pub absent: Option<Severity>,
}

/// A condition on one label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Matcher {
    /// The label's name.
    pub label: String,
    /// Exact value or `*` glob; a missing label has the value `""`.
    pub pattern: String,
    /// Whether the label must *not* match.
    pub negated: bool,
}

impl Matcher {
    /// Parses `"value"`, `"glob*"`, `"!value"`.
    fn parse(label: &str, pattern: &str) -> Matcher {
        let (negated, pattern) = match pattern.strip_prefix('!') {
            Some(rest) => (true, rest),
            None => (false, pattern),
        };
        Matcher {
            label: label.to_string(),
            pattern: pattern.to_string(),
            negated,
        }
    }

    /// Whether a label value (`""` when missing) satisfies this matcher.
    pub fn matches(&self, value: &str) -> bool {
        wasmon_sdk::glob::matches(&self.pattern, value) != self.negated
    }

    /// Whether this matcher pins the label to one value, so an absent-series
    /// alert can carry it.
    pub fn is_exact(&self) -> bool {
        !self.negated && !self.pattern.contains('*')
    }
}

impl Config {
    /// Checks what types alone cannot; errors name the check and the key.
    pub fn validate(self) -> Result<Rules, String> {
        if !self.services.is_empty() && self.services_down.is_none() {
            return Err(
                "`services` lists services to watch, but `services_down` is not set".into(),
            );
        }
        if self.checks.is_empty() && self.services_down.is_none() {
            return Err(
                "nothing to check: add [[config.checks]] or set config.services_down".into(),
            );
        }
        let mut names = BTreeSet::new();
        let mut checks = Vec::with_capacity(self.checks.len());
        for (index, check) in self.checks.into_iter().enumerate() {
            let at = format!("checks[{index}]");
            if !is_identifier(&check.name) {
                return Err(format!(
                    "`{at}.name` = {:?}: use letters, digits and `_`, not starting with a digit",
                    check.name
                ));
            }
            let at = format!("{at} ({:?})", check.name);
            if !names.insert(check.name.clone()) {
                return Err(format!(
                    "`{at}.name`: another check has the same name; names must be unique"
                ));
            }
            if !is_metric_name(&check.metric) {
                return Err(format!(
                    "`{at}.metric` = {:?}: expected an exact metric name like `wasmon_cpu_usage_ratio`",
                    check.metric
                ));
            }
            for (key, value) in [("warn", check.warn), ("alert", check.alert)] {
                if let Some(value) = value
                    && !value.is_finite()
                {
                    return Err(format!("`{at}.{key}` must be a finite number"));
                }
            }
            match (check.warn, check.alert) {
                (None, None) => {
                    return Err(format!("`{at}`: set `warn`, `alert` or both"));
                }
                (Some(warn), Some(alert)) => match check.direction {
                    Direction::Above if warn > alert => {
                        return Err(format!(
                            "`{at}.warn` ({warn}) must not exceed `alert` ({alert}) when direction = \"above\""
                        ));
                    }
                    Direction::Below if warn < alert => {
                        return Err(format!(
                            "`{at}.warn` ({warn}) must not be below `alert` ({alert}) when direction = \"below\""
                        ));
                    }
                    _ => {}
                },
                _ => {}
            }
            for label in check.labels.keys() {
                if !is_identifier(label) {
                    return Err(format!("`{at}.labels`: {label:?} is not a label name"));
                }
            }
            if let Some(labels) = &check.summary_labels
                && let Some(label) = labels.iter().find(|l| !is_identifier(l))
            {
                return Err(format!(
                    "`{at}.summary_labels`: {label:?} is not a label name"
                ));
            }
            let description = check
                .description
                .unwrap_or_else(|| check.name.replace('_', " "));
            checks.push(Check {
                matchers: check
                    .labels
                    .iter()
                    .map(|(label, pattern)| Matcher::parse(label, pattern))
                    .collect(),
                name: check.name,
                metric: check.metric,
                warn: check.warn,
                alert: check.alert,
                direction: check.direction,
                description,
                summary_labels: check.summary_labels,
                absent: check.absent.map(Severity::from),
            });
        }
        Ok(Rules {
            checks,
            services_down: self.services_down.map(Severity::from),
            services: self.services,
        })
    }
}

/// `[a-zA-Z_][a-zA-Z0-9_]*`: alert and label names.
fn is_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// `[a-zA-Z_:][a-zA-Z0-9_:]*`: Prometheus metric names.
fn is_metric_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn validate(json: &str) -> Result<Rules, String> {
        wasmon_sdk::config::from_json::<Config>(json)
            .map_err(|e| e.message)?
            .validate()
    }

    #[track_caller]
    fn check_err(json: &str, expect: &str) {
        match validate(json) {
            Ok(rules) => panic!("{json} was accepted: {rules:?}"),
            Err(err) => assert!(err.contains(expect), "error {err:?} lacks {expect:?}"),
        }
    }

    #[test]
    fn accepts_a_full_config() {
        let rules = validate(
            r#"{"services_down": "critical", "services": ["api*"], "checks": [
                {"name": "disk_usage", "metric": "wasmon_filesystem_usage_ratio",
                 "labels": {"fstype": "!tmpfs"}, "warn": 0.8, "alert": 0.9,
                 "summary_labels": ["mountpoint"], "absent": "warning"},
                {"name": "probe", "metric": "probe_success", "direction": "below",
                 "alert": 0, "description": "probe success"}]}"#,
        )
        .unwrap();
        assert_eq!(rules.checks.len(), 2);
        assert_eq!(rules.checks[0].description, "disk usage");
        assert_eq!(rules.checks[0].absent, Some(Severity::Warning));
        assert_eq!(
            rules.checks[0].matchers,
            vec![Matcher {
                label: "fstype".into(),
                pattern: "tmpfs".into(),
                negated: true
            }]
        );
        assert_eq!(rules.checks[1].direction, Direction::Below);
        assert_eq!(rules.services_down, Some(Severity::Critical));
    }

    #[test]
    fn alert_is_a_synonym_of_critical() {
        let rules = validate(r#"{"services_down": "alert"}"#).unwrap();
        assert_eq!(rules.services_down, Some(Severity::Critical));
    }

    #[test]
    fn rejects_bad_configs_naming_the_key() {
        check_err("{}", "nothing to check");
        check_err(
            r#"{"checks": [{"name": "d", "metric": "m", "warn": 0.9, "alert": 0.8}]}"#,
            "`checks[0] (\"d\").warn` (0.9) must not exceed `alert` (0.8)",
        );
        check_err(
            r#"{"checks": [{"name": "p", "metric": "m", "direction": "below", "warn": 0, "alert": 0.5}]}"#,
            "`checks[0] (\"p\").warn` (0) must not be below `alert` (0.5)",
        );
        check_err(
            r#"{"checks": [{"name": "d", "metric": "m"}]}"#,
            "set `warn`, `alert` or both",
        );
        check_err(
            r#"{"checks": [{"name": "disk usage", "metric": "m", "warn": 1}]}"#,
            "`checks[0].name` = \"disk usage\"",
        );
        check_err(
            r#"{"checks": [{"name": "d", "metric": "m", "warn": 1}, {"name": "d", "metric": "n", "warn": 1}]}"#,
            "`checks[1] (\"d\").name`: another check has the same name",
        );
        check_err(
            r#"{"checks": [{"name": "d", "metric": "probe_*", "warn": 1}]}"#,
            "`checks[0] (\"d\").metric` = \"probe_*\"",
        );
        check_err(
            r#"{"checks": [{"name": "d", "metric": "m", "warn": 1, "labels": {"a-b": "x"}}]}"#,
            "`checks[0] (\"d\").labels`: \"a-b\"",
        );
        check_err(r#"{"services": ["api"]}"#, "`services_down` is not set");
        // Type errors come from the SDK, with the path.
        check_err(
            r#"{"checks": [{"name": "d", "metric": "m", "warn": "high"}]}"#,
            "`checks[0].warn`",
        );
        check_err(
            r#"{"checks": [{"name": "d", "metric": "m", "warn": 1, "direction": "sideways"}]}"#,
            "`checks[0].direction`: unknown variant `sideways`",
        );
        check_err(
            r#"{"checks": [{"name": "d", "metric": "m", "wran": 1}]}"#,
            "unknown field `wran`",
        );
        check_err(r#"{"services_down": "bad"}"#, "`services_down`");
    }
}
