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
//! listed by `GET /api/alerts` (a page at a time, see [`view`]) and exported as
//! `wasmon_alert_active` and `wasmon_alerts_status`.
//!
//! # Bounds
//!
//! A rule can report any number of conditions with fresh labels on every
//! evaluation; what the host keeps of them is bounded per rule:
//! - **active** (pending or firing) alerts: at most `max_alerts` (the
//!   manifest's, at most `[alerts] max_alerts_per_rule`). Alerts already
//!   active keep their place; a new condition beyond is dropped (never
//!   tracked, no event), the most severe admitted first;
//! - **resolved** alerts: at most `[alerts] max_resolved`, oldest forgotten
//!   first, and none older than `keep_resolved`;
//! - **checks** (conditions reported fine): those of the last evaluation only;
//! - each alert: its name, labels and summary are bounded like a plugin's
//!   samples ([`MAX_NAME_LEN`](crate::store::validate::MAX_NAME_LEN),
//!   [`MAX_LABELS`](crate::store::validate::MAX_LABELS), ...); an alert over
//!   them is dropped, a long summary is cut.
//!
//! Every drop is counted per rule (`wasmon_alerts_dropped_total{rule}`, and
//! [`AlertManager::rule_stats`] for `GET /api/plugins/{name}`). The exported
//! `wasmon_alert_active` series are a derived store source holding at most
//! half of `store.reserved_series`, so rules never crowd out the samplers.

mod status;
mod view;

pub use status::StatusDocument;
pub use view::{AlertQuery, AlertView, AlertsPage, CheckView, RuleStats};

use crate::config::AlertsConfig;
use crate::events::EventLog;
use crate::model::{AlertChange, AlertState, Event, Labels, Sample, Severity};
use crate::plugins::bindings::RuleAlert;
use crate::store::validate::{
    MAX_HELP_LEN, MAX_LABEL_NAME_LEN, MAX_LABEL_VALUE_LEN, MAX_LABELS, MAX_NAME_LEN, truncate,
};
use crate::store::{SourceId, SourceKind, Store};
use parking_lot::Mutex;
use std::cmp::Reverse;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// Identifies one condition within its rule: the alert's name and its labels.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
struct Key {
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
    /// The rule's evaluation that last reported it.
    seen: u64,
}

impl Entry {
    /// A condition first reported in evaluation `seen`, at `now_ms`, not yet
    /// in any alert state.
    fn first_seen(severity: Severity, reported: Reported, now_ms: u64, seen: u64) -> Entry {
        Entry {
            severity,
            state: None,
            summary: reported.summary,
            value: reported.value,
            since_ms: now_ms,
            active_since_ms: now_ms,
            seen,
        }
    }

    fn is_active(&self) -> bool {
        matches!(self.state, Some(AlertState::Pending | AlertState::Firing))
    }
}

/// One rule's conditions and counters.
#[derive(Debug, Default)]
struct RuleAlerts {
    entries: BTreeMap<Key, Entry>,
    /// Evaluations applied; an entry whose `seen` is this was reported by the last one.
    evaluation: u64,
    /// Pending and firing entries.
    active: usize,
    /// Resolved entries.
    resolved: usize,
    /// The cap on active alerts at the last evaluation.
    max_alerts: usize,
    /// New conditions refused at `max_alerts`, or over the size bounds.
    dropped_active: u64,
    /// Resolved alerts forgotten early, over `max_resolved`.
    dropped_resolved: u64,
    /// When its oldest resolved alert resolved.
    oldest_resolved_ms: Option<u64>,
    /// Unix milliseconds of its latest evaluation.
    last_evaluated_ms: u64,
}

impl RuleAlerts {
    fn recount(&mut self) {
        self.active = 0;
        self.resolved = 0;
        self.oldest_resolved_ms = None;
        for entry in self.entries.values() {
            match entry.state {
                Some(AlertState::Pending | AlertState::Firing) => self.active += 1,
                Some(AlertState::Resolved) => {
                    self.resolved += 1;
                    let oldest = self.oldest_resolved_ms.get_or_insert(entry.since_ms);
                    *oldest = (*oldest).min(entry.since_ms);
                }
                None => {}
            }
        }
    }
}

/// Where a manager's changes go: the event log and the store. A detached
/// manager (a shadow rule's, a backtest's) has none.
struct Outputs {
    events: Arc<EventLog>,
    store: Arc<Store>,
    source: SourceId,
}

/// Every rule's conditions and alerts.
pub struct AlertManager {
    rules: Mutex<BTreeMap<String, RuleAlerts>>,
    outputs: Option<Outputs>,
    keep_resolved: Duration,
    max_resolved: usize,
    max_alerts: usize,
    dropped: Option<prometheus::IntCounterVec>,
}

/// A condition as reported, checked and normalised.
struct Reported {
    /// Its position in the rule's answer (the first report of a key wins).
    index: usize,
    key: Key,
    severity: Severity,
    summary: String,
    value: Option<f64>,
}

impl AlertManager {
    /// An empty manager that records changes in `events` and exports into
    /// `store` (a derived source `alerts` holding at most half the store's
    /// reserved budget).
    pub fn new(events: Arc<EventLog>, store: Arc<Store>, config: &AlertsConfig) -> Self {
        let (_, reserved) = store.budgets();
        let source = store.source(
            "alerts",
            SourceKind::Derived {
                max_series: (reserved / 2).max(1),
            },
        );
        let manager = AlertManager {
            rules: Mutex::new(BTreeMap::new()),
            outputs: Some(Outputs {
                events,
                store,
                source,
            }),
            keep_resolved: config.keep_resolved,
            max_resolved: config.max_resolved,
            max_alerts: config.max_alerts_per_rule.max(1),
            dropped: None,
        };
        manager.export(&manager.rules.lock(), crate::time::now_ms());
        manager
    }

    /// A manager with the same bounds that keeps state only: its changes go
    /// to no event log, no live client and no store series (a shadow rule's
    /// alerts, a backtest's). The same state machine, never a copy of it.
    pub fn detached(&self) -> AlertManager {
        AlertManager {
            rules: Mutex::new(BTreeMap::new()),
            outputs: None,
            keep_resolved: self.keep_resolved,
            max_resolved: self.max_resolved,
            max_alerts: self.max_alerts,
            dropped: None,
        }
    }

    /// Counts dropped alerts in `counter`, labelled `rule`.
    pub fn with_drop_counter(mut self, counter: prometheus::IntCounterVec) -> Self {
        self.dropped = Some(counter);
        self
    }

    /// The cap on a rule's active alerts: its manifest's `max_alerts`, at most
    /// `[alerts] max_alerts_per_rule` (the default).
    pub fn max_alerts(&self, manifest: Option<usize>) -> usize {
        manifest.map_or(self.max_alerts, |m| m.clamp(1, self.max_alerts))
    }

    /// Applies one evaluation of `rule`: `alerts` is every condition it
    /// checked, `max_alerts` its manifest's cap, if any. Returns the changes
    /// (also appended to the event log).
    pub fn update(
        &self,
        rule: &str,
        alerts: Vec<RuleAlert>,
        hold_for: Duration,
        max_alerts: Option<usize>,
        now_ms: u64,
    ) -> Vec<AlertChange> {
        let hold_ms = u64::try_from(hold_for.as_millis()).unwrap_or(u64::MAX);
        let cap = self.max_alerts(max_alerts);
        let mut changes = Vec::new();
        let mut rules = self.rules.lock();
        if !rules.contains_key(rule) {
            rules.insert(rule.to_string(), RuleAlerts::default());
        }
        let Some(r) = rules.get_mut(rule) else {
            return changes;
        };
        r.evaluation += 1;
        r.last_evaluated_ms = now_ms;
        r.max_alerts = cap;
        let evaluation = r.evaluation;
        let before = r.dropped_active + r.dropped_resolved;

        // Existing conditions first: they keep their place.
        let mut fresh = Vec::new();
        let mut activate: Vec<(usize, Severity, Candidate)> = Vec::new();
        for (index, alert) in alerts.into_iter().enumerate() {
            let Some(reported) = normalise(index, alert) else {
                r.dropped_active += 1;
                continue;
            };
            let Some(entry) = r.entries.get_mut(&reported.key) else {
                fresh.push(reported);
                continue;
            };
            if entry.seen == evaluation {
                continue; // the first report of a condition in one evaluation wins
            }
            entry.seen = evaluation;
            entry.summary = reported.summary;
            entry.value = reported.value;
            if entry.is_active() {
                let previous = entry.severity;
                entry.severity = reported.severity;
                if reported.severity == Severity::Ok {
                    clear(rule, &reported.key, entry, now_ms, &mut changes);
                } else if entry.state == Some(AlertState::Pending) {
                    if now_ms.saturating_sub(entry.active_since_ms) >= hold_ms {
                        fire(rule, &reported.key, entry, now_ms, &mut changes);
                    }
                } else if previous != reported.severity {
                    changes.push(change(rule, &reported.key, entry));
                }
            } else if reported.severity == Severity::Ok {
                if entry.state.is_none() {
                    entry.severity = Severity::Ok;
                }
            } else {
                activate.push((
                    reported.index,
                    reported.severity,
                    Candidate::Existing(reported.key),
                ));
            }
        }

        // New conditions, once each (the first report wins): fine ones are
        // checks; the others compete for room below and are stored only if
        // admitted.
        fresh.sort_by(|a, b| a.key.cmp(&b.key).then(a.index.cmp(&b.index)));
        fresh.dedup_by(|later, first| later.key == first.key);
        for reported in fresh {
            if reported.severity == Severity::Ok {
                let key = reported.key.clone();
                let entry = Entry::first_seen(Severity::Ok, reported, now_ms, evaluation);
                r.entries.insert(key, entry);
            } else {
                activate.push((reported.index, reported.severity, Candidate::New(reported)));
            }
        }

        // Activations take the room left, the most severe first; active
        // alerts not reported again resolve below and leave their room.
        let mut active = r
            .entries
            .values()
            .filter(|e| e.is_active() && e.seen == evaluation)
            .count();
        activate.sort_by_key(|(index, severity, _)| (Reverse(*severity), *index));
        for (_, severity, candidate) in activate {
            if active >= cap {
                r.dropped_active += 1;
                continue;
            }
            let (key, entry) = match candidate {
                Candidate::Existing(key) => match r.entries.get_mut(&key) {
                    Some(entry) => (key, entry),
                    None => continue,
                },
                Candidate::New(reported) => {
                    let key = reported.key.clone();
                    let entry = r.entries.entry(key.clone()).or_insert_with(|| {
                        Entry::first_seen(severity, reported, now_ms, evaluation)
                    });
                    (key, entry)
                }
            };
            active += 1;
            entry.severity = severity;
            entry.state = Some(AlertState::Pending);
            entry.active_since_ms = now_ms;
            entry.since_ms = now_ms;
            if hold_ms > 0
                && let Some(out) = &self.outputs
            {
                out.events
                    .live()
                    .alert_pending(|| change(rule, &key, entry));
            }
            if hold_ms == 0 {
                fire(rule, &key, entry, now_ms, &mut changes);
            }
        }

        // Conditions it did not report again are resolved; those merely
        // checked are forgotten.
        for (key, entry) in r.entries.iter_mut().filter(|(_, e)| e.seen != evaluation) {
            if entry.is_active() {
                entry.severity = Severity::Ok;
                clear(rule, key, entry, now_ms, &mut changes);
            }
        }
        r.entries
            .retain(|_, e| e.seen == evaluation || e.state.is_some());
        r.recount();
        self.forget_resolved(&mut rules, Some(rule), now_ms);
        let dropped = rules
            .get(rule)
            .map_or(0, |r| r.dropped_active + r.dropped_resolved - before);
        self.export(&rules, now_ms);
        drop(rules);
        self.count_dropped(rule, dropped, cap);
        self.publish(&changes);
        changes
    }

    /// Resolves and forgets every condition of a rule that was unloaded.
    pub fn remove_rule(&self, rule: &str, now_ms: u64) -> Vec<AlertChange> {
        let mut changes = Vec::new();
        let mut rules = self.rules.lock();
        if let Some(mut r) = rules.remove(rule) {
            for (key, entry) in r.entries.iter_mut() {
                entry.severity = Severity::Ok;
                clear(rule, key, entry, now_ms, &mut changes);
            }
        }
        self.forget_resolved(&mut rules, None, now_ms);
        self.export(&rules, now_ms);
        drop(rules);
        self.publish(&changes);
        changes
    }

    /// The worst severity among firing alerts.
    pub fn overall(&self) -> Severity {
        worst(&self.rules.lock())
    }

    fn count_dropped(&self, rule: &str, dropped: u64, cap: usize) {
        if dropped == 0 {
            return;
        }
        if let Some(counter) = &self.dropped {
            counter.with_label_values(&[rule]).inc_by(dropped);
        }
        tracing::debug!(rule, dropped, max_alerts = cap, "alerts dropped");
    }

    /// Forgets resolved alerts older than `keep_resolved`, of every rule (a
    /// rule that stopped evaluating ages out too), and the oldest beyond
    /// `max_resolved` of the rule just `updated` (counted as dropped). Counts
    /// must be current.
    fn forget_resolved(
        &self,
        rules: &mut BTreeMap<String, RuleAlerts>,
        updated: Option<&str>,
        now_ms: u64,
    ) {
        let keep = u64::try_from(self.keep_resolved.as_millis()).unwrap_or(u64::MAX);
        for (name, r) in rules.iter_mut() {
            if r.oldest_resolved_ms
                .is_some_and(|t| now_ms.saturating_sub(t) >= keep)
            {
                r.entries.retain(|_, e| match e.state {
                    Some(AlertState::Resolved) => now_ms.saturating_sub(e.since_ms) < keep,
                    _ => true,
                });
                r.recount();
            }
            let excess = r.resolved.saturating_sub(self.max_resolved);
            if excess == 0 || updated != Some(name.as_str()) {
                continue;
            }
            let mut resolved: Vec<(u64, &Key)> = r
                .entries
                .iter()
                .filter(|(_, e)| e.state == Some(AlertState::Resolved))
                .map(|(k, e)| (e.since_ms, k))
                .collect();
            if excess < resolved.len() {
                resolved.select_nth_unstable(excess);
                resolved.truncate(excess);
            }
            let oldest: Vec<Key> = resolved.into_iter().map(|(_, k)| k.clone()).collect();
            for key in &oldest {
                r.entries.remove(key);
            }
            r.dropped_resolved += oldest.len() as u64;
            r.recount();
        }
    }

    /// Mirrors the state into the store: `wasmon_alert_active` per pending or
    /// firing alert and the overall `wasmon_alerts_status`.
    fn export(&self, rules: &BTreeMap<String, RuleAlerts>, now_ms: u64) {
        let Some(out) = &self.outputs else {
            return;
        };
        let level = match worst(rules) {
            Severity::Ok => 0.0,
            Severity::Warning => 1.0,
            Severity::Critical => 2.0,
        };
        // The status first: it is never refused for want of room.
        let mut samples = vec![
            Sample::gauge("wasmon_alerts_status", level)
                .help("The worst status of any firing alert: 0 OK, 1 WARNING, 2 ALERT."),
        ];
        for (rule, r) in rules {
            for (key, entry) in &r.entries {
                let state = match entry.state {
                    Some(s @ (AlertState::Pending | AlertState::Firing)) => s,
                    _ => continue,
                };
                let mut sample = Sample::gauge("wasmon_alert_active", 1.0)
                    .help(
                        "An alert that is pending or firing (1), by rule, name, state and severity.",
                    )
                    .label("rule", rule)
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
        }
        out.store.apply(out.source, samples, now_ms);
    }

    fn publish(&self, changes: &[AlertChange]) {
        let Some(out) = &self.outputs else {
            return;
        };
        for change in changes {
            status::log_change(change);
            out.events.live().alert(change);
            let mut event = Event::new(format!("alert.{}", change.state.as_str()), "rule");
            event.severity = change.severity;
            event.detail = Some(change.summary.clone());
            event.attributes.insert("rule", change.rule.clone());
            event.attributes.insert("alertname", change.name.clone());
            event.alert = Some(change.clone());
            out.events.append(event);
        }
    }
}

/// A condition that wants to become active.
enum Candidate {
    /// Held already, as a check or a resolved alert.
    Existing(Key),
    /// Not held: stored only if admitted.
    New(Reported),
}

/// Checks an alert's size and normalises its labels (sorted, the first of a
/// name wins); cuts a long summary. `None` when it is over a bound.
fn normalise(index: usize, alert: RuleAlert) -> Option<Reported> {
    let RuleAlert {
        name,
        mut labels,
        severity,
        mut summary,
        value,
    } = alert;
    let oversized = name.len() > MAX_NAME_LEN
        || labels.len() > MAX_LABELS
        || labels
            .iter()
            .any(|(n, v)| n.len() > MAX_LABEL_NAME_LEN || v.len() > MAX_LABEL_VALUE_LEN);
    if oversized {
        return None;
    }
    labels.sort_by(|a, b| a.0.cmp(&b.0));
    labels.dedup_by(|later, first| later.0 == first.0);
    let end = truncate(&summary, MAX_HELP_LEN).len();
    summary.truncate(end);
    Some(Reported {
        index,
        key: Key { name, labels },
        severity,
        summary,
        value,
    })
}

fn fire(rule: &str, key: &Key, entry: &mut Entry, now_ms: u64, changes: &mut Vec<AlertChange>) {
    entry.state = Some(AlertState::Firing);
    entry.since_ms = now_ms;
    changes.push(change(rule, key, entry));
}

/// The condition no longer holds: a firing alert resolves, a pending one is dropped.
fn clear(rule: &str, key: &Key, entry: &mut Entry, now_ms: u64, changes: &mut Vec<AlertChange>) {
    match entry.state {
        Some(AlertState::Firing) => {
            entry.state = Some(AlertState::Resolved);
            entry.since_ms = now_ms;
            changes.push(change(rule, key, entry));
        }
        Some(AlertState::Pending) => entry.state = None,
        _ => {}
    }
}

fn change(rule: &str, key: &Key, entry: &Entry) -> AlertChange {
    AlertChange {
        rule: rule.to_string(),
        name: key.name.clone(),
        labels: key.labels.clone(),
        severity: entry.severity,
        state: entry.state.unwrap_or(AlertState::Resolved),
        summary: entry.summary.clone(),
        value: entry.value,
        active_since_ms: entry.active_since_ms,
    }
}

fn worst(rules: &BTreeMap<String, RuleAlerts>) -> Severity {
    rules
        .values()
        .flat_map(|r| r.entries.values())
        .filter(|e| e.state == Some(AlertState::Firing))
        .map(|e| e.severity)
        .max()
        .unwrap_or(Severity::Ok)
}

#[cfg(test)]
mod tests;
