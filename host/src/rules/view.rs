//! What the API shows of the alerts: `GET /api/alerts` a page at a time, and
//! each rule's counts for `GET /api/plugins/{name}`.
//!
//! A page is copied under the manager's lock (only the alerts on it are
//! cloned) and serialized after it is released, so a large answer never
//! holds up an evaluation, and nothing `/metrics` needs is held meanwhile.

use super::{AlertManager, Entry, Key, worst};
use crate::model::{AlertState, Labels, Severity};
use serde::Serialize;
use std::cmp::Reverse;
use std::collections::BTreeMap;

/// Which alerts a page shows.
#[derive(Debug, Clone)]
pub struct AlertQuery {
    /// Only this rule's alerts and checks.
    pub rule: Option<String>,
    /// Only alerts in this state (checks are not filtered by it).
    pub state: Option<AlertState>,
    /// Alerts (and checks) to skip, in the order listed.
    pub offset: usize,
    /// Most alerts (and checks) on the page.
    pub limit: usize,
}

impl Default for AlertQuery {
    fn default() -> Self {
        AlertQuery {
            rule: None,
            state: None,
            offset: 0,
            limit: 100,
        }
    }
}

/// The `GET /api/alerts` answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AlertsPage {
    /// The worst status of any firing alert, of every rule: `OK`, `WARNING` or
    /// `ALERT` (seed 003's overall).
    pub overall: &'static str,
    /// Pending, firing and resolved alerts: active ones first, most severe
    /// first, then by rule, name and labels; this page of them.
    pub alerts: Vec<AlertView>,
    /// Alerts that match the query, on every page.
    pub total: usize,
    /// The conditions each rule reported in its last evaluation, with their
    /// status (seed 003's per-check statuses), by rule, name and labels;
    /// the same `offset` and `limit` page them.
    pub checks: Vec<CheckView>,
    /// Checks that match the query, on every page.
    pub checks_total: usize,
    /// The query's offset.
    pub offset: usize,
    /// The query's limit.
    pub limit: usize,
    /// Whether a later page has more alerts or checks.
    pub has_more: bool,
}

/// One alert.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AlertView {
    /// The rule plugin.
    pub rule: String,
    /// The alert's name.
    pub name: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// `ok`, `warning`, `critical`.
    pub severity: Severity,
    /// `OK`, `WARNING`, `ALERT`.
    pub status: &'static str,
    /// `pending`, `firing`, `resolved`.
    pub state: AlertState,
    /// One line for humans.
    pub summary: String,
    /// The value checked.
    pub value: Option<f64>,
    /// When the condition started to hold (RFC 3339).
    pub active_since: String,
    /// When it entered its current state (RFC 3339).
    pub since: String,
}

/// One evaluated condition.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct CheckView {
    /// The rule plugin.
    pub rule: String,
    /// The condition's name.
    pub name: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// `OK`, `WARNING`, `ALERT`.
    pub status: &'static str,
    /// The value checked.
    pub value: Option<f64>,
    /// One line for humans.
    pub summary: String,
}

/// One rule's alerts in numbers (`"alerts"` of `GET /api/plugins/{name}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct RuleStats {
    /// Pending and firing alerts.
    pub active: usize,
    /// Of which pending.
    pub pending: usize,
    /// Of which firing.
    pub firing: usize,
    /// Resolved alerts still listed.
    pub resolved: usize,
    /// Alerts dropped: new conditions over `max_alerts` or over the size
    /// bounds, and resolved alerts forgotten over `max_resolved`.
    pub dropped: u64,
    /// Of which resolved alerts forgotten over `max_resolved`.
    pub dropped_resolved: u64,
    /// The cap on active alerts it runs under.
    pub max_alerts: usize,
    /// The cap on resolved alerts kept.
    pub max_resolved: usize,
}

impl AlertManager {
    /// One page of alerts and checks.
    pub fn page(&self, query: &AlertQuery) -> AlertsPage {
        let rules = self.rules.lock();
        let overall = worst(&rules).status();
        let selected = || {
            rules
                .iter()
                .filter(|(name, _)| query.rule.as_deref().is_none_or(|r| r == name.as_str()))
        };
        let mut alerts: Vec<(&str, &Key, &Entry, AlertState)> = selected()
            .flat_map(|(rule, r)| {
                r.entries
                    .iter()
                    .filter_map(move |(k, e)| Some((rule.as_str(), k, e, e.state?)))
            })
            .filter(|(.., state)| query.state.is_none_or(|s| s == *state))
            .collect();
        alerts
            .sort_by_key(|(_, _, e, state)| (*state == AlertState::Resolved, Reverse(e.severity)));
        let total = alerts.len();
        let alerts: Vec<AlertView> = alerts
            .into_iter()
            .skip(query.offset)
            .take(query.limit)
            .map(|(rule, key, entry, state)| AlertView {
                rule: rule.to_string(),
                name: key.name.clone(),
                labels: labels(key),
                severity: entry.severity,
                status: entry.severity.status(),
                state,
                summary: entry.summary.clone(),
                value: entry.value,
                active_since: crate::time::rfc3339(entry.active_since_ms),
                since: crate::time::rfc3339(entry.since_ms),
            })
            .collect();
        let checks = || {
            selected().flat_map(|(rule, r)| {
                r.entries
                    .iter()
                    .filter(|(_, e)| e.seen == r.evaluation)
                    .map(move |(k, e)| (rule.as_str(), k, e))
            })
        };
        let checks_total = checks().count();
        let checks: Vec<CheckView> = checks()
            .skip(query.offset)
            .take(query.limit)
            .map(|(rule, key, entry)| CheckView {
                rule: rule.to_string(),
                name: key.name.clone(),
                labels: labels(key),
                status: if entry.state == Some(AlertState::Firing) {
                    entry.severity.status()
                } else {
                    Severity::Ok.status()
                },
                value: entry.value,
                summary: entry.summary.clone(),
            })
            .collect();
        drop(rules);
        let end = query.offset.saturating_add(query.limit);
        AlertsPage {
            overall,
            has_more: end < total || end < checks_total,
            alerts,
            total,
            checks,
            checks_total,
            offset: query.offset,
            limit: query.limit,
        }
    }

    /// The firing alerts of `rule`: name, labels, severity.
    pub fn firing(&self, rule: &str) -> Vec<(String, Labels, Severity)> {
        let rules = self.rules.lock();
        let Some(r) = rules.get(rule) else {
            return Vec::new();
        };
        r.entries
            .iter()
            .filter(|(_, e)| e.state == Some(AlertState::Firing))
            .map(|(k, e)| (k.name.clone(), k.labels.clone(), e.severity))
            .collect()
    }

    /// A rule's alerts in numbers; `None` before its first evaluation.
    pub fn rule_stats(&self, rule: &str) -> Option<RuleStats> {
        let rules = self.rules.lock();
        let r = rules.get(rule)?;
        let firing = r
            .entries
            .values()
            .filter(|e| e.state == Some(AlertState::Firing))
            .count();
        Some(RuleStats {
            active: r.active,
            pending: r.active.saturating_sub(firing),
            firing,
            resolved: r.resolved,
            dropped: r.dropped_active + r.dropped_resolved,
            dropped_resolved: r.dropped_resolved,
            max_alerts: r.max_alerts,
            max_resolved: self.max_resolved,
        })
    }
}

fn labels(key: &Key) -> BTreeMap<String, String> {
    key.labels.iter().cloned().collect()
}
