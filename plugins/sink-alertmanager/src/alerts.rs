//! Alert changes as Alertmanager alerts, and the book of firing alerts kept
//! for re-sends: pure functions, unit-tested natively.
//!
//! An alert's identity in Alertmanager is its label set: `alertname` (the
//! alert's name), `rule` (the rule plugin), `severity`, the alert's own labels
//! and `[config] labels`. A firing alert is posted with `endsAt` = now +
//! `validity` and re-sent every `resend_interval` while it fires (Prometheus'
//! rule); a resolved one with `endsAt` = the time it resolved. A firing alert
//! whose severity changes gets a new label set: the old one is resolved in
//! the same post. `alert.pending` events are not sent (Prometheus does not
//! send pending alerts either).

use crate::config::{Settings, is_label_name};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use wasmon_sdk::sink::rfc3339;
use wasmon_sdk::{AlertChange, AlertState, Event, Severity};

/// One alert as `POST /api/v2/alerts` takes it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Posted {
    /// Its identity.
    pub labels: BTreeMap<String, String>,
    /// `summary`, and `value` when the alert has one.
    pub annotations: BTreeMap<String, String>,
    /// When the condition was first seen (RFC 3339).
    #[serde(rename = "startsAt")]
    pub starts_at: String,
    /// Firing: now + validity; resolved: when it resolved.
    #[serde(rename = "endsAt")]
    pub ends_at: String,
    /// `[config] generator_url`.
    #[serde(rename = "generatorURL", skip_serializing_if = "Option::is_none")]
    pub generator_url: Option<String>,
}

/// A firing alert, remembered for re-sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Firing {
    /// The labels it was posted with.
    pub labels: BTreeMap<String, String>,
    /// Its annotations.
    pub annotations: BTreeMap<String, String>,
    /// `startsAt`, Unix milliseconds.
    pub starts_at_ms: u64,
}

/// What the sink remembers between calls (in its key-value state).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Book {
    /// Firing alerts by identity (rule, name and the alert's labels).
    pub firing: BTreeMap<String, Firing>,
    /// When every firing alert was last sent, Unix milliseconds.
    pub resent_ms: u64,
}

/// What one `deliver` does: the alerts to post and the book once they are.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// The alerts to post (none: nothing to send).
    pub alerts: Vec<Posted>,
    /// The book after a successful post.
    pub book: Book,
}

/// Plans the post for `batch` at `now_ms`: its alert changes, plus every
/// firing alert when a re-send is due.
pub fn plan(book: &Book, batch: &[Event], settings: &Settings, now_ms: u64) -> Plan {
    let mut next = book.clone();
    // Keyed by label set: a later change of the same alert in the batch wins.
    let mut posts: BTreeMap<BTreeMap<String, String>, Posted> = BTreeMap::new();
    let firing_until = now_ms.saturating_add(settings.validity_ms);
    for event in batch {
        let Some(change) = &event.alert else { continue };
        let id = identity(change);
        match change.state {
            AlertState::Pending => {}
            AlertState::Firing => {
                let alert = Firing {
                    labels: labels(change, change.severity, settings),
                    annotations: annotations(change),
                    starts_at_ms: change.active_since_ms,
                };
                if let Some(old) = next.firing.get(&id).filter(|o| o.labels != alert.labels) {
                    let ended = posted(old, event.time_ms, settings);
                    posts.insert(old.labels.clone(), ended);
                }
                posts.insert(alert.labels.clone(), posted(&alert, firing_until, settings));
                next.firing.insert(id, alert);
            }
            AlertState::Resolved => {
                let resolved = match next.firing.remove(&id) {
                    Some(mut old) => {
                        old.annotations = annotations(change);
                        vec![old]
                    }
                    // Not in the book (its firing was never seen here):
                    // resolve the label sets it can have had.
                    None => severities(change.severity)
                        .iter()
                        .map(|&severity| Firing {
                            labels: labels(change, severity, settings),
                            annotations: annotations(change),
                            starts_at_ms: change.active_since_ms,
                        })
                        .collect(),
                };
                for alert in resolved {
                    posts.insert(
                        alert.labels.clone(),
                        posted(&alert, event.time_ms, settings),
                    );
                }
            }
        }
    }
    if book.firing.is_empty() {
        if !next.firing.is_empty() {
            // Every firing alert is in this post: the re-send period starts now.
            next.resent_ms = now_ms;
        }
    } else if !next.firing.is_empty() && now_ms.saturating_sub(book.resent_ms) >= settings.resend_ms
    {
        for alert in next.firing.values() {
            posts
                .entry(alert.labels.clone())
                .or_insert_with(|| posted(alert, firing_until, settings));
        }
        next.resent_ms = now_ms;
    }
    Plan {
        alerts: posts.into_values().collect(),
        book: next,
    }
}

/// The book after Alertmanager refused a post for good: resolutions and
/// the re-send time stand, alerts it refused to fire are not remembered
/// (they would be refused again on every re-send).
pub fn after_refusal(before: &Book, planned: &Book) -> Book {
    Book {
        firing: before
            .firing
            .iter()
            .filter(|(id, _)| planned.firing.contains_key(*id))
            .map(|(id, alert)| (id.clone(), alert.clone()))
            .collect(),
        resent_ms: planned.resent_ms,
    }
}

/// The severities whose label set a resolved alert not in the book may have had.
fn severities(severity: Severity) -> &'static [Severity] {
    match severity {
        Severity::Warning => &[Severity::Warning],
        Severity::Critical => &[Severity::Critical],
        Severity::Ok => &[Severity::Warning, Severity::Critical],
    }
}

fn posted(alert: &Firing, ends_at_ms: u64, settings: &Settings) -> Posted {
    Posted {
        labels: alert.labels.clone(),
        annotations: alert.annotations.clone(),
        starts_at: rfc3339(alert.starts_at_ms),
        // Alertmanager refuses an end before the start.
        ends_at: rfc3339(ends_at_ms.max(alert.starts_at_ms)),
        generator_url: settings.generator_url.clone(),
    }
}

/// Who an alert is, whatever its severity: rule, name and labels.
fn identity(change: &AlertChange) -> String {
    let mut id = format!("{}\u{1f}{}", change.rule, change.name);
    let mut labels: Vec<_> = change
        .labels
        .iter()
        .map(|l| (l.name.as_str(), l.value.as_str()))
        .collect();
    labels.sort_unstable();
    for (name, value) in labels {
        id.push('\u{1f}');
        id.push_str(name);
        id.push('=');
        id.push_str(value);
    }
    id
}

/// The label set: the alert's labels (names made valid, empty values
/// dropped; one named like ours kept as `exported_NAME`), then `alertname`,
/// `rule`, `severity` and `[config] labels`.
fn labels(
    change: &AlertChange,
    severity: Severity,
    settings: &Settings,
) -> BTreeMap<String, String> {
    const OURS: [&str; 3] = ["alertname", "rule", "severity"];
    let mut labels = BTreeMap::new();
    for label in change.labels.iter().filter(|l| !l.value.is_empty()) {
        let mut name = label_name(&label.name);
        if OURS.contains(&name.as_str()) || settings.labels.contains_key(&name) {
            name = format!("exported_{name}");
        }
        labels.entry(name).or_insert_with(|| label.value.clone());
    }
    labels.insert("alertname".into(), change.name.clone());
    labels.insert("rule".into(), change.rule.clone());
    labels.insert("severity".into(), severity.as_str().into());
    for (name, value) in &settings.labels {
        labels.insert(name.clone(), value.clone());
    }
    labels
}

/// A valid label name: invalid characters as `_`, a leading digit prefixed.
fn label_name(name: &str) -> String {
    if is_label_name(name) {
        return name.to_string();
    }
    let cleaned: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if cleaned.starts_with(|c: char| c.is_ascii_digit()) || cleaned.is_empty() {
        format!("_{cleaned}")
    } else {
        cleaned
    }
}

fn annotations(change: &AlertChange) -> BTreeMap<String, String> {
    let mut annotations = BTreeMap::new();
    if !change.summary.is_empty() {
        annotations.insert("summary".into(), change.summary.clone());
    }
    if let Some(value) = change.value.filter(|v| v.is_finite()) {
        annotations.insert("value".into(), value.to_string());
    }
    annotations
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;
    use std::time::Duration;
    use wasmon_sdk::Label;

    fn settings() -> Settings {
        Settings {
            endpoint: "http://am/api/v2/alerts".into(),
            resend_ms: 60_000,
            validity_ms: 240_000,
            timeout: Duration::from_secs(1),
            headers: Vec::new(),
            labels: [("cluster".to_string(), "prod".to_string())].into(),
            generator_url: None,
        }
    }

    fn event(state: AlertState, severity: Severity, time_ms: u64) -> Event {
        Event {
            id: format!("e{time_ms}"),
            time_ms,
            event_type: format!("alert.{}", state.as_str()),
            source: "rule".into(),
            service: None,
            component: None,
            severity,
            detail: None,
            attributes: Vec::new(),
            alert: Some(AlertChange {
                rule: "threshold".into(),
                name: "disk_usage".into(),
                labels: vec![
                    Label::new("mountpoint", "/"),
                    Label::new("cluster", "own"),
                    Label::new("bad-name", "x"),
                    Label::new("empty", ""),
                ],
                severity,
                state,
                summary: "disk usage 0.93".into(),
                value: Some(0.93),
                active_since_ms: 1_000,
            }),
        }
    }

    #[test]
    fn firing_then_resolved() {
        let s = settings();
        let p = plan(
            &Book::default(),
            &[event(AlertState::Firing, Severity::Critical, 5_000)],
            &s,
            10_000,
        );
        assert_eq!(p.alerts.len(), 1);
        let a = &p.alerts[0];
        let expect: BTreeMap<String, String> = [
            ("alertname", "disk_usage"),
            ("rule", "threshold"),
            ("severity", "critical"),
            ("mountpoint", "/"),
            ("exported_cluster", "own"),
            ("bad_name", "x"),
            ("cluster", "prod"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(a.labels, expect);
        assert_eq!(a.annotations["summary"], "disk usage 0.93");
        assert_eq!(a.annotations["value"], "0.93");
        assert_eq!(a.starts_at, "1970-01-01T00:00:01.000Z");
        assert_eq!(a.ends_at, rfc3339(250_000));
        assert_eq!(p.book.firing.len(), 1);
        assert_eq!(p.book.resent_ms, 10_000);

        let r = plan(
            &p.book,
            &[event(AlertState::Resolved, Severity::Ok, 20_000)],
            &s,
            21_000,
        );
        assert_eq!(r.alerts.len(), 1);
        assert_eq!(
            r.alerts[0].labels, expect,
            "the firing label set, severity included"
        );
        assert_eq!(r.alerts[0].ends_at, rfc3339(20_000));
        assert!(r.book.firing.is_empty());
    }

    #[test]
    fn resends_when_due_only() {
        let s = settings();
        let p = plan(
            &Book::default(),
            &[event(AlertState::Firing, Severity::Warning, 5_000)],
            &s,
            10_000,
        );
        let quiet = plan(&p.book, &[], &s, 30_000);
        assert!(quiet.alerts.is_empty());
        assert_eq!(quiet.book, p.book);
        let due = plan(&p.book, &[], &s, 70_000);
        assert_eq!(due.alerts.len(), 1);
        assert_eq!(due.alerts[0].ends_at, rfc3339(310_000), "validity from now");
        assert_eq!(due.book.resent_ms, 70_000);
        assert!(plan(&Book::default(), &[], &s, 1_000_000).alerts.is_empty());
    }

    #[test]
    fn severity_change_resolves_the_old_label_set() {
        let s = settings();
        let p = plan(
            &Book::default(),
            &[event(AlertState::Firing, Severity::Warning, 5_000)],
            &s,
            5_000,
        );
        let c = plan(
            &p.book,
            &[event(AlertState::Firing, Severity::Critical, 8_000)],
            &s,
            8_000,
        );
        assert_eq!(c.alerts.len(), 2);
        let old = c
            .alerts
            .iter()
            .find(|a| a.labels["severity"] == "warning")
            .unwrap();
        assert_eq!(old.ends_at, rfc3339(8_000));
        let new = c
            .alerts
            .iter()
            .find(|a| a.labels["severity"] == "critical")
            .unwrap();
        assert_eq!(new.ends_at, rfc3339(248_000));
        assert_eq!(c.book.firing.len(), 1);
    }

    #[test]
    fn unknown_resolution_pending_and_other_events() {
        let s = settings();
        let r = plan(
            &Book::default(),
            &[event(AlertState::Resolved, Severity::Ok, 9_000)],
            &s,
            9_000,
        );
        let severities: Vec<_> = r
            .alerts
            .iter()
            .map(|a| a.labels["severity"].as_str())
            .collect();
        assert_eq!(severities, ["critical", "warning"]);
        let mut plain = event(AlertState::Pending, Severity::Warning, 1);
        assert!(
            plan(&Book::default(), &[plain.clone()], &s, 9_000)
                .alerts
                .is_empty()
        );
        plain.alert = None;
        assert!(
            plan(&Book::default(), &[plain], &s, 9_000)
                .alerts
                .is_empty()
        );
    }

    #[test]
    fn refusal_keeps_resolutions_and_forgets_new_firings() {
        let s = settings();
        let before = plan(
            &Book::default(),
            &[event(AlertState::Firing, Severity::Warning, 1)],
            &s,
            1,
        )
        .book;
        let mut other = event(AlertState::Firing, Severity::Warning, 2);
        if let Some(a) = &mut other.alert {
            a.name = "other".into();
        }
        let planned = plan(
            &before,
            &[other, event(AlertState::Resolved, Severity::Ok, 3)],
            &s,
            3,
        )
        .book;
        assert_eq!(planned.firing.len(), 1);
        let after = after_refusal(&before, &planned);
        assert!(after.firing.is_empty());
    }

    #[test]
    fn resolved_before_start_ends_at_start_and_json_shape() {
        let mut s = settings();
        s.generator_url = Some("http://w/api/alerts".into());
        let mut e = event(AlertState::Resolved, Severity::Warning, 500);
        if let Some(a) = &mut e.alert {
            a.value = Some(f64::NAN);
        }
        let r = plan(&Book::default(), &[e], &s, 600);
        let json = serde_json::to_value(&r.alerts).unwrap();
        assert_eq!(json[0]["endsAt"], json[0]["startsAt"]);
        assert_eq!(json[0]["generatorURL"], "http://w/api/alerts");
        assert!(json[0]["annotations"].get("value").is_none());
    }
}
