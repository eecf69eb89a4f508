//! Seed 003's status document (`GET /health`): every condition the rules
//! checked at their last evaluation, with its value and status, and the
//! overall status; and the log lines seed 003 wrote when a threshold was
//! crossed (`RESOURCE WARNING` / `RESOURCE ALERT`, and `RESOURCE RESOLVED`).

use super::{AlertManager, worst};
use crate::model::{AlertChange, AlertState, Severity};
use serde::Serialize;
use std::collections::BTreeMap;

/// Seed 003's `/health` document.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct StatusDocument {
    /// The value each condition was last checked with (`null` when the rule
    /// gave none), by condition key: its name, then its labels in braces
    /// when it has any (`disk_pct{mount="/"}`).
    pub metrics: BTreeMap<String, Option<f64>>,
    /// `OK`, `WARNING` or `ALERT` per condition key (a condition is `OK`
    /// until it fires: pending within its rule's `for` it is still `OK`),
    /// and `overall`, the worst of the firing alerts.
    pub statuses: BTreeMap<String, &'static str>,
    /// The worst status of the firing alerts (also `statuses.overall`).
    pub overall: &'static str,
    /// RFC 3339 time of the latest rule evaluation; `null` before any.
    pub last_updated: Option<String>,
}

impl AlertManager {
    /// The status document, copied under the lock.
    pub fn status_document(&self) -> StatusDocument {
        let rules = self.rules.lock();
        let overall = worst(&rules).status();
        let mut worst_of: BTreeMap<String, (Severity, Option<f64>)> = BTreeMap::new();
        let mut last = None::<u64>;
        for r in rules.values() {
            if r.evaluation > 0 {
                last = Some(last.map_or(r.last_evaluated_ms, |l| l.max(r.last_evaluated_ms)));
            }
            for (key, entry) in r.entries.iter().filter(|(_, e)| e.seen == r.evaluation) {
                let severity = if entry.state == Some(AlertState::Firing) {
                    entry.severity
                } else {
                    Severity::Ok
                };
                let slot = worst_of
                    .entry(condition_key(&key.name, &key.labels))
                    .or_insert((severity, entry.value));
                if severity > slot.0 {
                    *slot = (severity, entry.value);
                }
            }
        }
        drop(rules);
        let mut metrics = BTreeMap::new();
        let mut statuses = BTreeMap::new();
        for (key, (severity, value)) in worst_of {
            statuses.insert(key.clone(), severity.status());
            metrics.insert(key, value);
        }
        statuses.insert("overall".to_string(), overall);
        StatusDocument {
            metrics,
            statuses,
            overall,
            last_updated: last.map(crate::time::rfc3339),
        }
    }
}

/// `name`, or `name{a="x",b="y"}` when it has labels.
fn condition_key(name: &str, labels: &[(String, String)]) -> String {
    if labels.is_empty() {
        return name.to_string();
    }
    let inner: Vec<String> = labels.iter().map(|(n, v)| format!("{n}={v:?}")).collect();
    format!("{name}{{{}}}", inner.join(","))
}

/// Writes one log line per alert that starts firing (or changes severity
/// while firing) or resolves, in seed 003's words: `RESOURCE WARNING: ...`
/// (warn level), `RESOURCE ALERT: ...` (error level), `RESOURCE RESOLVED:
/// ...` (info level).
pub(super) fn log_change(change: &AlertChange) {
    let key = condition_key(&change.name, &change.labels);
    let value = change.value.unwrap_or(f64::NAN);
    let rule = change.rule.as_str();
    let summary = change.summary.as_str();
    match (change.state, change.severity) {
        (AlertState::Firing, Severity::Critical) => {
            tracing::error!(rule, alert = %key, value, "RESOURCE ALERT: {key}: {summary}");
        }
        (AlertState::Firing, _) => {
            tracing::warn!(rule, alert = %key, value, "RESOURCE WARNING: {key}: {summary}");
        }
        (AlertState::Resolved, _) => {
            tracing::info!(rule, alert = %key, value, "RESOURCE RESOLVED: {key}: {summary}");
        }
        (AlertState::Pending, _) => {}
    }
}

#[cfg(test)]
mod tests {
    use super::condition_key;

    #[test]
    fn keys_name_the_labels() {
        assert_eq!(condition_key("disk", &[]), "disk");
        let labels = vec![("mount".to_string(), "/".to_string())];
        assert_eq!(condition_key("disk", &labels), "disk{mount=\"/\"}");
    }
}
