//! An event as the host's own JSON, the shape `GET /api/events` lists and
//! `[[ingest.amqp]]` records with its original id (a "forwarded event"):
//!
//! ```json
//! {"id": "0190f1c2-...", "time_ms": 1714564800000, "event_type": "alert.firing",
//!  "source": "rule", "service": "api", "component": "db", "severity": "critical",
//!  "detail": "...", "attributes": {"region": "eu"},
//!  "alert": {"rule": "threshold", "name": "disk_usage", "labels": [["mountpoint", "/"]],
//!            "severity": "critical", "state": "firing", "summary": "...",
//!            "value": 0.93, "active_since_ms": 1714564770000}}
//! ```
//!
//! `service`, `component`, `detail`, `attributes` and `alert` are left out
//! when empty, as the host does. The text depends only on the event, so a
//! retried delivery sends the same bytes and receivers deduplicate on `id`.

use crate::{AlertChange, Event, Label};
use serde::Serialize;
use serde::ser::{SerializeMap, SerializeSeq, Serializer};

/// One event, borrowed, serializing to the host's JSON shape.
#[derive(Serialize)]
pub struct EventJson<'a> {
    id: &'a str,
    time_ms: u64,
    event_type: &'a str,
    source: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    service: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    component: Option<&'a str>,
    severity: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<&'a str>,
    #[serde(skip_serializing_if = "is_empty", serialize_with = "as_map")]
    attributes: &'a [Label],
    #[serde(skip_serializing_if = "Option::is_none")]
    alert: Option<AlertJson<'a>>,
}

/// The alert change of an `alert.*` event; labels as `[name, value]` pairs.
#[derive(Serialize)]
struct AlertJson<'a> {
    rule: &'a str,
    name: &'a str,
    #[serde(serialize_with = "as_pairs")]
    labels: &'a [Label],
    severity: &'static str,
    state: &'static str,
    summary: &'a str,
    /// JSON has no NaN or infinity: those are `null`.
    value: Option<f64>,
    active_since_ms: u64,
}

impl<'a> EventJson<'a> {
    /// `event` in the host's shape.
    pub fn new(event: &'a Event) -> Self {
        EventJson {
            id: &event.id,
            time_ms: event.time_ms,
            event_type: &event.event_type,
            source: &event.source,
            service: event.service.as_deref(),
            component: event.component.as_deref(),
            severity: event.severity.as_str(),
            detail: event.detail.as_deref(),
            attributes: &event.attributes,
            alert: event.alert.as_ref().map(AlertJson::new),
        }
    }
}

impl<'a> AlertJson<'a> {
    fn new(alert: &'a AlertChange) -> Self {
        AlertJson {
            rule: &alert.rule,
            name: &alert.name,
            labels: &alert.labels,
            severity: alert.severity.as_str(),
            state: alert.state.as_str(),
            summary: &alert.summary,
            value: alert.value.filter(|v| v.is_finite()),
            active_since_ms: alert.active_since_ms,
        }
    }
}

/// An event in the shape receivers read (webhooks, Elasticsearch documents):
/// `type` for the event type, RFC 3339 times beside the milliseconds, the
/// seed's `status` word (OK, WARNING, ALERT), attributes and alert labels as
/// JSON objects (the first of a repeated name wins), absent fields `null`.
#[derive(Serialize)]
pub struct Readable<'a> {
    id: &'a str,
    time: String,
    time_ms: u64,
    #[serde(rename = "type")]
    event_type: &'a str,
    source: &'a str,
    severity: &'static str,
    status: &'static str,
    service: Option<&'a str>,
    component: Option<&'a str>,
    detail: Option<&'a str>,
    #[serde(serialize_with = "as_map")]
    attributes: &'a [Label],
    alert: Option<ReadableAlert<'a>>,
}

/// The alert change of an `alert.*` event, in [`Readable`]'s shape.
#[derive(Serialize)]
struct ReadableAlert<'a> {
    rule: &'a str,
    name: &'a str,
    #[serde(serialize_with = "as_map")]
    labels: &'a [Label],
    severity: &'static str,
    state: &'static str,
    summary: &'a str,
    /// JSON has no NaN or infinity: those are `null`.
    value: Option<f64>,
    active_since: String,
    active_since_ms: u64,
}

impl<'a> Readable<'a> {
    /// `event` as a receiver reads it.
    pub fn new(event: &'a Event) -> Self {
        Readable {
            id: &event.id,
            time: crate::sink::rfc3339(event.time_ms),
            time_ms: event.time_ms,
            event_type: &event.event_type,
            source: &event.source,
            severity: event.severity.as_str(),
            status: event.severity.status(),
            service: event.service.as_deref(),
            component: event.component.as_deref(),
            detail: event.detail.as_deref(),
            attributes: &event.attributes,
            alert: event.alert.as_ref().map(|alert| ReadableAlert {
                rule: &alert.rule,
                name: &alert.name,
                labels: &alert.labels,
                severity: alert.severity.as_str(),
                state: alert.state.as_str(),
                summary: &alert.summary,
                value: alert.value.filter(|v| v.is_finite()),
                active_since: crate::sink::rfc3339(alert.active_since_ms),
                active_since_ms: alert.active_since_ms,
            }),
        }
    }
}

/// `event` as JSON text in the host's shape.
pub fn to_vec(event: &Event) -> Result<Vec<u8>, serde_json::Error> {
    serde_json::to_vec(&EventJson::new(event))
}

fn is_empty(labels: &&[Label]) -> bool {
    labels.is_empty()
}

/// Labels as a JSON object; the first of a repeated name wins (JSON objects
/// with repeated keys are read differently by different parsers).
fn as_map<S: Serializer>(labels: &&[Label], serializer: S) -> Result<S::Ok, S::Error> {
    let mut seen = std::collections::BTreeSet::new();
    let mut map = serializer.serialize_map(None)?;
    for label in labels.iter().filter(|l| seen.insert(l.name.as_str())) {
        map.serialize_entry(&label.name, &label.value)?;
    }
    map.end()
}

fn as_pairs<S: Serializer>(labels: &&[Label], serializer: S) -> Result<S::Ok, S::Error> {
    let mut seq = serializer.serialize_seq(Some(labels.len()))?;
    for label in labels.iter() {
        seq.serialize_element(&(&label.name, &label.value))?;
    }
    seq.end()
}

/// Fills `{type}`, `{service}`, `{source}` and `{severity}` in `pattern` from
/// `event` (a missing service is `none`); any other text is kept as is.
pub fn fill(pattern: &str, event: &Event) -> String {
    if !pattern.contains('{') {
        return pattern.to_string();
    }
    pattern
        .replace("{type}", &event.event_type)
        .replace("{service}", event.service.as_deref().unwrap_or("none"))
        .replace("{source}", &event.source)
        .replace("{severity}", event.severity.as_str())
}

/// The placeholders [`fill`] knows; `Err` names the first unknown one.
pub fn check_pattern(pattern: &str) -> Result<(), String> {
    let mut rest = pattern;
    while let Some(start) = rest.find('{') {
        let after = &rest[start + 1..];
        let Some(end) = after.find('}') else {
            return Err(format!("{pattern:?}: unclosed `{{`"));
        };
        let name = &after[..end];
        if !matches!(name, "type" | "service" | "source" | "severity") {
            return Err(format!(
                "{pattern:?}: unknown placeholder {{{name}}} (known: {{type}}, {{service}}, {{source}}, {{severity}})"
            ));
        }
        rest = &after[end + 1..];
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{AlertState, Severity};

    fn event() -> Event {
        Event {
            id: "e1".into(),
            time_ms: 1_714_564_800_123,
            event_type: "alert.firing".into(),
            source: "rule".into(),
            service: None,
            component: None,
            severity: Severity::Critical,
            detail: None,
            attributes: Vec::new(),
            alert: Some(AlertChange {
                rule: "threshold".into(),
                name: "disk".into(),
                labels: vec![Label::new("mountpoint", "/")],
                severity: Severity::Critical,
                state: AlertState::Firing,
                summary: "s".into(),
                value: Some(f64::NAN),
                active_since_ms: 5,
            }),
        }
    }

    #[test]
    fn the_hosts_shape() {
        let json: serde_json::Value = serde_json::from_slice(&to_vec(&event()).unwrap()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"id": "e1", "time_ms": 1_714_564_800_123u64,
                "event_type": "alert.firing", "source": "rule", "severity": "critical",
                "alert": {"rule": "threshold", "name": "disk", "labels": [["mountpoint", "/"]],
                    "severity": "critical", "state": "firing", "summary": "s",
                    "value": null, "active_since_ms": 5}})
        );
        let mut plain = event();
        plain.alert = None;
        plain.service = Some("api".into());
        plain.attributes = vec![Label::new("region", "eu")];
        let json: serde_json::Value = serde_json::from_slice(&to_vec(&plain).unwrap()).unwrap();
        assert_eq!(json["attributes"], serde_json::json!({"region": "eu"}));
        assert_eq!(json["service"], "api");
    }

    #[test]
    fn patterns() {
        let e = event();
        assert_eq!(fill("events.{type}", &e), "events.alert.firing");
        assert_eq!(fill("{service}/{severity}", &e), "none/critical");
        assert!(check_pattern("a.{type}.{source}").is_ok());
        assert!(check_pattern("{typo}").unwrap_err().contains("{typo}"));
        assert!(check_pattern("{type").unwrap_err().contains("unclosed"));
    }
}
