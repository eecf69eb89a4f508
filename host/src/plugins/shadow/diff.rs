//! The alert diff between a shadow and the serving version, and the serving
//! version's bounded alert history.
//!
//! After every evaluation both versions' firing alerts (from their own alert
//! state machines) are observed; per alert (name and labels) each side keeps
//! when it was first and last seen firing and its worst severity. An alert is
//! `only_shadow` or `only_serving` when one side never fired it, `different`
//! when both did with another worst severity or first-seen times more than
//! one interval apart; alerts both raised alike are not listed.
//! `wasmon_rule_shadow_diff_total{rule,kind}` counts each alert once per kind
//! it enters.

use crate::model::{AlertChange, AlertState, Labels, Severity};
use serde::Serialize;
use std::collections::{BTreeMap, BTreeSet, VecDeque};

/// Most alerts one side of a diff tracks; newer ones are not tracked.
const MAX_TRACKED: usize = 10_000;

/// Most entries of the serving version's alert history per rule.
pub(super) const MAX_HISTORY: usize = 1000;

type Key = (String, Labels);

/// What one side saw of one alert.
#[derive(Debug, Clone, Copy, Serialize, utoipa::ToSchema)]
pub struct AlertSide {
    /// First seen firing, Unix milliseconds.
    pub first_seen_ms: u64,
    /// Last seen firing, Unix milliseconds.
    pub last_seen_ms: u64,
    /// The worst severity it fired with.
    pub severity: Severity,
    /// Whether it fires now.
    pub firing: bool,
}

/// How the versions differ on one alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DiffKind {
    /// Only the shadow raised it.
    OnlyShadow,
    /// Only the serving version raised it.
    OnlyServing,
    /// Both raised it, with another severity or timing.
    Different,
}

impl DiffKind {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            DiffKind::OnlyShadow => "only_shadow",
            DiffKind::OnlyServing => "only_serving",
            DiffKind::Different => "different",
        }
    }
}

/// One alert of the diff.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct DiffEntry {
    /// How the versions differ.
    pub kind: DiffKind,
    /// The alert's name.
    pub name: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// What the shadow saw.
    pub shadow: Option<AlertSide>,
    /// What the serving version saw.
    pub serving: Option<AlertSide>,
}

/// Counts of a diff's entries by kind.
#[derive(Debug, Clone, Copy, Default, Serialize, utoipa::ToSchema)]
pub struct DiffCounts {
    /// Alerts only the shadow raised.
    pub only_shadow: usize,
    /// Alerts only the serving version raised.
    pub only_serving: usize,
    /// Alerts both raised, differently.
    pub different: usize,
    /// Alerts both raised alike (not listed).
    pub same: usize,
}

/// The two sides since the shadow started.
#[derive(Debug, Default)]
pub(super) struct Diff {
    shadow: BTreeMap<Key, AlertSide>,
    serving: BTreeMap<Key, AlertSide>,
    /// (alert, kind) pairs already counted in the metric.
    counted: BTreeSet<(Key, DiffKind)>,
}

type Firing = Vec<(String, Labels, Severity)>;

/// One alert of both sides: its key, what each side saw, how they differ.
type Classified<'a> = (
    &'a Key,
    Option<&'a AlertSide>,
    Option<&'a AlertSide>,
    Option<DiffKind>,
);

fn observe_side(side: &mut BTreeMap<Key, AlertSide>, firing: Firing, now_ms: u64) {
    for seen in side.values_mut() {
        seen.firing = false;
    }
    for (name, labels, severity) in firing {
        let key = (name, labels);
        if let Some(seen) = side.get_mut(&key) {
            seen.last_seen_ms = now_ms;
            seen.severity = seen.severity.max(severity);
            seen.firing = true;
        } else if side.len() < MAX_TRACKED {
            side.insert(
                key,
                AlertSide {
                    first_seen_ms: now_ms,
                    last_seen_ms: now_ms,
                    severity,
                    firing: true,
                },
            );
        }
    }
}

fn classify(
    shadow: Option<&AlertSide>,
    serving: Option<&AlertSide>,
    interval_ms: u64,
) -> Option<DiffKind> {
    match (shadow, serving) {
        (Some(_), None) => Some(DiffKind::OnlyShadow),
        (None, Some(_)) => Some(DiffKind::OnlyServing),
        (Some(a), Some(b)) => (a.severity != b.severity
            || a.first_seen_ms.abs_diff(b.first_seen_ms) > interval_ms)
            .then_some(DiffKind::Different),
        (None, None) => None,
    }
}

impl Diff {
    /// Observes both sides' firing alerts after one evaluation; returns the
    /// kinds newly entered (for the metric).
    pub(super) fn observe(
        &mut self,
        shadow: Firing,
        serving: Firing,
        now_ms: u64,
        interval_ms: u64,
    ) -> Vec<DiffKind> {
        observe_side(&mut self.shadow, shadow, now_ms);
        observe_side(&mut self.serving, serving, now_ms);
        let fresh: Vec<(Key, DiffKind)> = self
            .classified(interval_ms)
            .filter_map(|(key, _, _, kind)| Some((key.clone(), kind?)))
            .filter(|pair| !self.counted.contains(pair))
            .collect();
        let entered = fresh.iter().map(|(_, kind)| *kind).collect();
        self.counted.extend(fresh);
        entered
    }

    /// The counts and the listed entries.
    pub(super) fn view(&self, interval_ms: u64) -> (DiffCounts, Vec<DiffEntry>) {
        let mut counts = DiffCounts::default();
        let mut entries = Vec::new();
        for (key, shadow, serving, kind) in self.classified(interval_ms) {
            let Some(kind) = kind else {
                counts.same += 1;
                continue;
            };
            match kind {
                DiffKind::OnlyShadow => counts.only_shadow += 1,
                DiffKind::OnlyServing => counts.only_serving += 1,
                DiffKind::Different => counts.different += 1,
            }
            entries.push(DiffEntry {
                kind,
                name: key.0.clone(),
                labels: key.1.iter().cloned().collect(),
                shadow: shadow.copied(),
                serving: serving.copied(),
            });
        }
        entries.sort_by(|a, b| a.kind.cmp(&b.kind).then(a.name.cmp(&b.name)));
        (counts, entries)
    }

    /// Every alert either side saw, in key order, with both sides and how
    /// they differ (`None`: alike).
    fn classified(&self, interval_ms: u64) -> impl Iterator<Item = Classified<'_>> {
        let keys: BTreeSet<&Key> = self.shadow.keys().chain(self.serving.keys()).collect();
        keys.into_iter().map(move |key| {
            let (shadow, serving) = (self.shadow.get(key), self.serving.get(key));
            (key, shadow, serving, classify(shadow, serving, interval_ms))
        })
    }
}

/// One alert change, as a timeline shows it.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct HistoryEntry {
    /// When, Unix milliseconds.
    pub time_ms: u64,
    /// `firing` (raised, or a new severity) or `resolved`.
    pub state: AlertState,
    /// The alert's name.
    pub name: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Its severity.
    pub severity: Severity,
    /// The value checked.
    pub value: Option<f64>,
    /// One line for humans.
    pub summary: String,
}

impl HistoryEntry {
    pub(super) fn of(change: &AlertChange, time_ms: u64) -> HistoryEntry {
        HistoryEntry {
            time_ms,
            state: change.state,
            name: change.name.clone(),
            labels: change.labels.iter().cloned().collect(),
            severity: change.severity,
            value: change.value,
            summary: change.summary.clone(),
        }
    }
}

/// The serving version's alert changes, newest last, at most [`MAX_HISTORY`].
#[derive(Debug, Default)]
pub(crate) struct History {
    entries: VecDeque<HistoryEntry>,
}

impl History {
    pub(super) fn record(&mut self, changes: &[AlertChange], now_ms: u64) {
        for change in changes {
            if self.entries.len() == MAX_HISTORY {
                self.entries.pop_front();
            }
            self.entries.push_back(HistoryEntry::of(change, now_ms));
        }
    }

    /// The entries at or after `from_ms`, oldest first.
    pub(super) fn since(&self, from_ms: u64) -> Vec<HistoryEntry> {
        self.entries
            .iter()
            .filter(|e| e.time_ms >= from_ms)
            .cloned()
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn firing(name: &str, severity: Severity) -> (String, Labels, Severity) {
        (name.to_string(), vec![("cpu".into(), "0".into())], severity)
    }

    #[test]
    fn only_one_side_then_both_alike_then_different() {
        let mut diff = Diff::default();
        let w = Severity::Warning;
        let entered = diff.observe(vec![firing("a", w)], vec![], 1000, 1000);
        assert_eq!(entered, [DiffKind::OnlyShadow]);
        // Counted once while it stays so.
        assert!(
            diff.observe(vec![firing("a", w)], vec![], 2000, 1000)
                .is_empty()
        );
        let (counts, entries) = diff.view(1000);
        assert_eq!(counts.only_shadow, 1);
        assert_eq!(entries[0].shadow.map(|s| s.last_seen_ms), Some(2000));
        // The serving one fires 1 s later: within one interval, alike.
        diff.observe(vec![firing("a", w)], vec![firing("a", w)], 2000, 1000);
        let (counts, entries) = diff.view(1000);
        assert_eq!((counts.same, entries.len()), (1, 0));
        // A worse severity on one side makes it different.
        let entered = diff.observe(vec![], vec![firing("a", Severity::Critical)], 3000, 1000);
        assert_eq!(entered, [DiffKind::Different]);
        let (_, entries) = diff.view(1000);
        assert_eq!(entries[0].kind, DiffKind::Different);
        assert_eq!(entries[0].shadow.map(|s| s.firing), Some(false));
    }

    #[test]
    fn timing_further_apart_than_an_interval_is_different() {
        let mut diff = Diff::default();
        let w = Severity::Warning;
        diff.observe(vec![], vec![firing("b", w)], 1000, 1000);
        let entered = diff.observe(vec![firing("b", w)], vec![firing("b", w)], 3000, 1000);
        assert_eq!(entered, [DiffKind::Different]);
    }
}
