//! The alert state machine. Rule plugins only say, on every evaluation, which
//! conditions they checked and how bad each is; the host owns the lifecycle so
//! every rule gets it for free:
//!
//! ```text
//!   severity > ok ──► pending ──(held for the rule's `for`)──► firing ──(ok or gone)──► resolved
//!                        └──────────(ok or gone before `for`)──► dropped silently
//! ```
//!
//! Firing, resolved and severity changes of a firing alert become `alert.*`
//! events in the event log (so sinks receive them); the current state is
//! listed by `GET /api/alerts` and exported as `wasmon_alert_active` and
//! `wasmon_alerts_status`.

use crate::model::{AlertChange, AlertState, Event, Labels, Sample, Severity};
use crate::plugins::bindings::RuleAlert;
use crate::sinks::EventLog;
use crate::store::{SourceId, SourceKind, Store};
use parking_lot::Mutex;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// Identifies one condition: the rule, the alert's name and its labels.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct Key {
    rule: String,
    name: String,
    labels: Labels,
}

/// What the host knows of one condition.
#[derive(Debug, Clone)]
struct Entry {
    severity: Severity,
    /// `None` while the condition is checked and fine.
    state: Option<AlertState>,
    summary: String,
    value: Option<f64>,
    /// When the condition started to hold (pending/firing) or resolved.
    since_ms: u64,
    active_since_ms: u64,
    last_evaluated_ms: u64,
}

/// Every rule's conditions and alerts.
pub struct AlertManager {
    entries: Mutex<BTreeMap<Key, Entry>>,
    events: Arc<EventLog>,
    store: Arc<Store>,
    source: SourceId,
    keep_resolved: Duration,
}

/// The `GET /api/alerts` answer.
#[derive(Debug, Serialize)]
pub struct AlertsView {
    /// The worst status of any firing alert: `OK`, `WARNING` or `ALERT` (seed 003's overall).
    pub overall: &'static str,
    /// Pending, firing and recently resolved alerts, most severe first.
    pub alerts: Vec<AlertView>,
    /// Every condition evaluated, with its status (seed 003's per-check statuses).
    pub checks: Vec<CheckView>,
}

/// One alert.
#[derive(Debug, Serialize)]
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
#[derive(Debug, Serialize)]
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

impl AlertManager {
    /// An empty manager that records changes in `events` and exports into `store`.
    pub fn new(events: Arc<EventLog>, store: Arc<Store>, keep_resolved: Duration) -> Self {
        let source = store.source("alerts", SourceKind::Host);
        let manager = AlertManager {
            entries: Mutex::new(BTreeMap::new()),
            events,
            store,
            source,
            keep_resolved,
        };
        manager.export(&manager.entries.lock(), crate::time::now_ms());
        manager
    }

    /// Applies one evaluation of `rule`: `alerts` is every condition it checked.
    /// Returns the changes (also appended to the event log).
    pub fn update(
        &self,
        rule: &str,
        alerts: Vec<RuleAlert>,
        hold_for: Duration,
        now_ms: u64,
    ) -> Vec<AlertChange> {
        let hold_ms = u64::try_from(hold_for.as_millis()).unwrap_or(u64::MAX);
        let mut changes = Vec::new();
        let mut entries = self.entries.lock();
        let mut seen = std::collections::HashSet::new();
        for alert in alerts {
            let mut labels = alert.labels;
            labels.sort();
            labels.dedup_by(|a, b| a.0 == b.0);
            let key = Key {
                rule: rule.to_string(),
                name: alert.name,
                labels,
            };
            if !seen.insert(key.clone()) {
                continue; // the first report of a condition in one evaluation wins
            }
            let entry = entries.entry(key.clone()).or_insert_with(|| Entry {
                severity: Severity::Ok,
                state: None,
                summary: String::new(),
                value: None,
                since_ms: now_ms,
                active_since_ms: now_ms,
                last_evaluated_ms: now_ms,
            });
            entry.summary = alert.summary;
            entry.value = alert.value;
            entry.last_evaluated_ms = now_ms;
            let previous = entry.severity;
            entry.severity = alert.severity;
            if alert.severity == Severity::Ok {
                clear(&key, entry, now_ms, &mut changes);
                continue;
            }
            match entry.state {
                None | Some(AlertState::Resolved) => {
                    entry.active_since_ms = now_ms;
                    entry.since_ms = now_ms;
                    entry.state = Some(AlertState::Pending);
                    if hold_ms == 0 {
                        fire(&key, entry, now_ms, &mut changes);
                    }
                }
                Some(AlertState::Pending) => {
                    if now_ms.saturating_sub(entry.active_since_ms) >= hold_ms {
                        fire(&key, entry, now_ms, &mut changes);
                    }
                }
                Some(AlertState::Firing) => {
                    if previous != alert.severity {
                        changes.push(change(&key, entry));
                    }
                }
            }
        }
        // Conditions of this rule it did not report again are resolved.
        for (key, entry) in entries
            .iter_mut()
            .filter(|(k, _)| k.rule == rule && !seen.contains(*k))
        {
            if entry.state != Some(AlertState::Resolved) {
                entry.severity = Severity::Ok;
                clear(key, entry, now_ms, &mut changes);
            }
        }
        // ...and those that were merely checked are forgotten.
        entries.retain(|k, e| k.rule != rule || seen.contains(k) || e.state.is_some());
        self.forget_old(&mut entries, now_ms);
        self.export(&entries, now_ms);
        drop(entries);
        self.publish(&changes);
        changes
    }

    /// Resolves and forgets every condition of a rule that was unloaded.
    pub fn remove_rule(&self, rule: &str, now_ms: u64) -> Vec<AlertChange> {
        let mut changes = Vec::new();
        let mut entries = self.entries.lock();
        for (key, entry) in entries.iter_mut().filter(|(k, _)| k.rule == rule) {
            entry.severity = Severity::Ok;
            clear(key, entry, now_ms, &mut changes);
        }
        entries.retain(|k, _| k.rule != rule);
        self.export(&entries, now_ms);
        drop(entries);
        self.publish(&changes);
        changes
    }

    /// The current alerts and checks.
    pub fn view(&self) -> AlertsView {
        let entries = self.entries.lock();
        let overall = overall(&entries);
        let labels = |l: &Labels| l.iter().cloned().collect::<BTreeMap<_, _>>();
        let mut alerts: Vec<AlertView> = entries
            .iter()
            .filter_map(|(k, e)| {
                let state = e.state?;
                Some(AlertView {
                    rule: k.rule.clone(),
                    name: k.name.clone(),
                    labels: labels(&k.labels),
                    severity: e.severity,
                    status: e.severity.status(),
                    state,
                    summary: e.summary.clone(),
                    value: e.value,
                    active_since: crate::time::rfc3339(e.active_since_ms),
                    since: crate::time::rfc3339(e.since_ms),
                })
            })
            .collect();
        alerts.sort_by_key(|a| {
            (
                a.state == AlertState::Resolved,
                std::cmp::Reverse(a.severity),
            )
        });
        let checks = entries
            .iter()
            .filter(|(_, e)| e.state != Some(AlertState::Resolved) || e.severity != Severity::Ok)
            .map(|(k, e)| CheckView {
                rule: k.rule.clone(),
                name: k.name.clone(),
                labels: labels(&k.labels),
                status: if e.state == Some(AlertState::Firing) {
                    e.severity.status()
                } else {
                    Severity::Ok.status()
                },
                value: e.value,
                summary: e.summary.clone(),
            })
            .collect();
        AlertsView {
            overall,
            alerts,
            checks,
        }
    }

    /// The worst severity among firing alerts.
    pub fn overall(&self) -> Severity {
        worst(&self.entries.lock())
    }

    fn forget_old(&self, entries: &mut BTreeMap<Key, Entry>, now_ms: u64) {
        let keep = u64::try_from(self.keep_resolved.as_millis()).unwrap_or(u64::MAX);
        entries.retain(|_, e| match e.state {
            Some(AlertState::Resolved) => now_ms.saturating_sub(e.since_ms) < keep,
            _ => true,
        });
    }

    /// Mirrors the state into the store: `wasmon_alert_active` per pending or
    /// firing alert and the overall `wasmon_alerts_status`.
    fn export(&self, entries: &BTreeMap<Key, Entry>, now_ms: u64) {
        let mut samples = Vec::new();
        for (key, entry) in entries {
            let state = match entry.state {
                Some(s @ (AlertState::Pending | AlertState::Firing)) => s,
                _ => continue,
            };
            let mut sample = Sample::gauge("wasmon_alert_active", 1.0)
                .help("An alert that is pending or firing (1), by rule, name, state and severity.")
                .label("rule", &key.rule)
                .label("alertname", &key.name)
                .label("alertstate", state.as_str())
                .label("severity", entry.severity.as_str());
            for (name, value) in &key.labels {
                let taken = matches!(
                    name.as_str(),
                    "rule" | "alertname" | "alertstate" | "severity"
                );
                let name = if taken {
                    format!("exported_{name}")
                } else {
                    name.clone()
                };
                sample.labels.push((name, value.clone()));
            }
            samples.push(sample);
        }
        let level = match worst(entries) {
            Severity::Ok => 0.0,
            Severity::Warning => 1.0,
            Severity::Critical => 2.0,
        };
        samples.push(
            Sample::gauge("wasmon_alerts_status", level)
                .help("The worst status of any firing alert: 0 OK, 1 WARNING, 2 ALERT."),
        );
        self.store.apply(self.source, samples, now_ms);
    }

    fn publish(&self, changes: &[AlertChange]) {
        for change in changes {
            let mut event = Event::new(format!("alert.{}", change.state.as_str()), "rule");
            event.severity = change.severity;
            event.detail = Some(change.summary.clone());
            event.attributes.insert("rule", change.rule.clone());
            event.attributes.insert("alertname", change.name.clone());
            event.alert = Some(change.clone());
            self.events.append(event);
        }
    }
}

fn fire(key: &Key, entry: &mut Entry, now_ms: u64, changes: &mut Vec<AlertChange>) {
    entry.state = Some(AlertState::Firing);
    entry.since_ms = now_ms;
    changes.push(change(key, entry));
}

/// The condition no longer holds: a firing alert resolves, a pending one is dropped.
fn clear(key: &Key, entry: &mut Entry, now_ms: u64, changes: &mut Vec<AlertChange>) {
    match entry.state {
        Some(AlertState::Firing) => {
            entry.state = Some(AlertState::Resolved);
            entry.since_ms = now_ms;
            changes.push(change(key, entry));
        }
        Some(AlertState::Pending) => entry.state = None,
        _ => {}
    }
}

fn change(key: &Key, entry: &Entry) -> AlertChange {
    AlertChange {
        rule: key.rule.clone(),
        name: key.name.clone(),
        labels: key.labels.clone(),
        severity: entry.severity,
        state: entry.state.unwrap_or(AlertState::Resolved),
        summary: entry.summary.clone(),
        value: entry.value,
        active_since_ms: entry.active_since_ms,
    }
}

fn worst(entries: &BTreeMap<Key, Entry>) -> Severity {
    entries
        .values()
        .filter(|e| e.state == Some(AlertState::Firing))
        .map(|e| e.severity)
        .max()
        .unwrap_or(Severity::Ok)
}

fn overall(entries: &BTreeMap<Key, Entry>) -> &'static str {
    worst(entries).status()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::StoreConfig;

    fn manager() -> (AlertManager, Arc<EventLog>) {
        let events = Arc::new(EventLog::new(1000));
        let store = Arc::new(Store::new(&StoreConfig::default()));
        (
            AlertManager::new(events.clone(), store, Duration::from_secs(60)),
            events,
        )
    }

    fn alert(name: &str, severity: Severity) -> RuleAlert {
        RuleAlert {
            name: name.into(),
            labels: vec![("mountpoint".into(), "/".into())],
            severity,
            summary: format!("{name} is {severity:?}"),
            value: Some(0.95),
        }
    }

    fn states(changes: &[AlertChange]) -> Vec<(String, AlertState, Severity)> {
        changes
            .iter()
            .map(|c| (c.name.clone(), c.state, c.severity))
            .collect()
    }

    #[test]
    fn fires_after_for_and_resolves() {
        let (m, events) = manager();
        let hold = Duration::from_secs(10);
        assert!(
            m.update("r", vec![alert("disk", Severity::Warning)], hold, 1_000)
                .is_empty()
        );
        assert_eq!(m.view().alerts[0].state, AlertState::Pending);
        assert_eq!(m.view().overall, "OK");
        assert!(
            m.update("r", vec![alert("disk", Severity::Warning)], hold, 5_000)
                .is_empty()
        );
        let fired = m.update("r", vec![alert("disk", Severity::Warning)], hold, 11_000);
        assert_eq!(
            states(&fired),
            vec![("disk".into(), AlertState::Firing, Severity::Warning)]
        );
        assert_eq!(m.view().overall, "WARNING");
        let escalated = m.update("r", vec![alert("disk", Severity::Critical)], hold, 12_000);
        assert_eq!(
            states(&escalated),
            vec![("disk".into(), AlertState::Firing, Severity::Critical)]
        );
        assert_eq!(m.view().overall, "ALERT");
        let resolved = m.update("r", vec![alert("disk", Severity::Ok)], hold, 13_000);
        assert_eq!(
            states(&resolved),
            vec![("disk".into(), AlertState::Resolved, Severity::Ok)]
        );
        assert_eq!(m.view().overall, "OK");
        let types: Vec<String> = events
            .read(0, 10)
            .0
            .iter()
            .map(|(_, e)| e.event_type.clone())
            .collect();
        assert_eq!(types, ["alert.firing", "alert.firing", "alert.resolved"]);
    }

    #[test]
    fn pending_that_clears_never_fires() {
        let (m, events) = manager();
        let hold = Duration::from_secs(10);
        m.update("r", vec![alert("cpu", Severity::Critical)], hold, 0);
        assert!(m.update("r", vec![], hold, 5_000).is_empty());
        assert!(m.view().alerts.is_empty());
        assert_eq!(events.end(), 0);
    }

    #[test]
    fn zero_for_fires_at_once_and_missing_resolves() {
        let (m, _) = manager();
        let fired = m.update(
            "r",
            vec![alert("a", Severity::Critical), alert("b", Severity::Ok)],
            Duration::ZERO,
            0,
        );
        assert_eq!(
            states(&fired),
            vec![("a".into(), AlertState::Firing, Severity::Critical)]
        );
        let checks = m.view().checks;
        assert_eq!(checks.len(), 2);
        let resolved = m.update("r", vec![], Duration::ZERO, 1);
        assert_eq!(
            states(&resolved),
            vec![("a".into(), AlertState::Resolved, Severity::Ok)]
        );
    }

    #[test]
    fn rules_are_independent_and_removal_resolves() {
        let (m, _) = manager();
        m.update("r1", vec![alert("a", Severity::Warning)], Duration::ZERO, 0);
        m.update(
            "r2",
            vec![alert("a", Severity::Critical)],
            Duration::ZERO,
            0,
        );
        assert!(
            m.update("r1", vec![alert("a", Severity::Warning)], Duration::ZERO, 1)
                .is_empty()
        );
        assert_eq!(m.view().overall, "ALERT");
        let resolved = m.remove_rule("r2", 2);
        assert_eq!(resolved.len(), 1);
        assert_eq!(m.view().overall, "WARNING");
    }

    #[test]
    fn resolved_alerts_are_forgotten_after_keep_resolved() {
        let (m, _) = manager();
        m.update("r", vec![alert("a", Severity::Warning)], Duration::ZERO, 0);
        m.update("r", vec![], Duration::ZERO, 1_000);
        assert_eq!(m.view().alerts.len(), 1);
        m.update("r", vec![], Duration::ZERO, 62_000);
        assert!(m.view().alerts.is_empty());
    }
}
