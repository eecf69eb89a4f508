//! The data the host passes around: samples, severities, events and alert changes.
//!
//! These are the host's own types; `plugins::bindings` converts them to and from
//! the WIT types at the plugin boundary, so nothing else depends on wasmtime.

use serde::{Deserialize, Serialize};

/// Label pairs, in the order given (the store sorts them).
pub type Labels = Vec<(String, String)>;

/// How a sample's value behaves over time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum MetricKind {
    /// Goes up and down.
    Gauge,
    /// Only goes up; exported with a `_total` suffix.
    Counter,
}

impl MetricKind {
    /// `gauge` or `counter`, as in `# TYPE` lines.
    pub fn as_str(self) -> &'static str {
        match self {
            MetricKind::Gauge => "gauge",
            MetricKind::Counter => "counter",
        }
    }
}

/// One measurement, from a sampler or a plugin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// Metric name (Prometheus naming).
    pub name: String,
    /// Gauge or counter.
    pub kind: MetricKind,
    /// Label pairs.
    pub labels: Labels,
    /// The value.
    pub value: f64,
    /// `# HELP` text; the first seen per name wins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub help: Option<String>,
    /// Unix milliseconds; "now" when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp_ms: Option<u64>,
}

impl Sample {
    /// A gauge with no labels.
    pub fn gauge(name: impl Into<String>, value: f64) -> Self {
        Sample {
            name: name.into(),
            kind: MetricKind::Gauge,
            labels: Vec::new(),
            value,
            help: None,
            timestamp_ms: None,
        }
    }

    /// A counter with no labels.
    pub fn counter(name: impl Into<String>, value: f64) -> Self {
        Sample {
            kind: MetricKind::Counter,
            ..Sample::gauge(name, value)
        }
    }

    /// Adds a label.
    pub fn label(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.labels.push((name.into(), value.into()));
        self
    }

    /// Sets the help text.
    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// The value of a label.
    pub fn label_value(&self, name: &str) -> Option<&str> {
        self.labels
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// How bad something is; the seed statuses OK, WARNING and ALERT.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Serialize,
    Deserialize,
    Default,
    utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Checked and fine.
    #[default]
    Ok,
    /// Seed status WARNING.
    Warning,
    /// Seed status ALERT.
    Critical,
}

impl Severity {
    /// `ok`, `warning` or `critical`.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Ok => "ok",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }

    /// The seed's status word: `OK`, `WARNING` or `ALERT`.
    pub fn status(self) -> &'static str {
        match self {
            Severity::Ok => "OK",
            Severity::Warning => "WARNING",
            Severity::Critical => "ALERT",
        }
    }
}

/// The lifecycle of an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum AlertState {
    /// The condition holds, for less than the rule's `for` duration.
    Pending,
    /// The condition has held for the rule's `for` duration.
    Firing,
    /// The condition no longer holds.
    Resolved,
}

impl AlertState {
    /// `pending`, `firing` or `resolved`.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertState::Pending => "pending",
            AlertState::Firing => "firing",
            AlertState::Resolved => "resolved",
        }
    }
}

/// An alert that changed state, as delivered to sinks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct AlertChange {
    /// The rule plugin that raised it.
    pub rule: String,
    /// The alert's name.
    pub name: String,
    /// Its labels, as `[name, value]` pairs.
    #[schema(value_type = Vec<Vec<String>>)]
    pub labels: Labels,
    /// Its severity now.
    pub severity: Severity,
    /// Its state now.
    pub state: AlertState,
    /// One line for humans.
    pub summary: String,
    /// The value that was checked.
    pub value: Option<f64>,
    /// Unix milliseconds when the condition was first seen.
    pub active_since_ms: u64,
}

/// Something that happened: an ingested event, a service transition, an alert change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Event {
    /// Unique and stable across redelivery (a UUIDv7).
    pub id: String,
    /// Unix milliseconds.
    pub time_ms: u64,
    /// E.g. `error`, `service.down`, `alert.firing`.
    pub event_type: String,
    /// Who recorded it: `ingest`, `heartbeat`, `rule`, or a plugin name.
    pub source: String,
    /// The service it concerns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    /// The component within the service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub component: Option<String>,
    /// How bad it is.
    #[serde(default)]
    pub severity: Severity,
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Everything else the producer sent, kept as given.
    #[serde(default, skip_serializing_if = "Attributes::is_empty")]
    #[schema(value_type = Object)]
    pub attributes: Attributes,
    /// Present on `alert.*` events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alert: Option<AlertChange>,
}

impl Event {
    /// A new event of `event_type` from `source`, with a fresh id, now.
    pub fn new(event_type: impl Into<String>, source: impl Into<String>) -> Self {
        Event {
            id: new_event_id(),
            time_ms: crate::time::now_ms(),
            event_type: event_type.into(),
            source: source.into(),
            service: None,
            component: None,
            severity: Severity::Ok,
            detail: None,
            attributes: Attributes::default(),
            alert: None,
        }
    }

    /// Roughly the heap bytes this event holds, for memory bounds.
    pub fn approx_bytes(&self) -> usize {
        let text = |s: &Option<String>| s.as_ref().map_or(0, String::len);
        std::mem::size_of::<Event>()
            + self.id.len()
            + self.event_type.len()
            + self.source.len()
            + text(&self.service)
            + text(&self.component)
            + text(&self.detail)
            + self.attributes.approx_bytes()
            + self.alert.as_ref().map_or(0, |a| {
                std::mem::size_of::<AlertChange>()
                    + a.rule.len()
                    + a.name.len()
                    + a.summary.len()
                    + a.labels
                        .iter()
                        .map(|(k, v)| k.len() + v.len() + 48)
                        .sum::<usize>()
            })
    }
}

/// The fields of an event beyond the modelled ones, read as one flat map:
/// nested objects become dotted keys (`entity.parent_id`,
/// `event.metrics.duration_s`), other values stay as they are.
///
/// They come two ways: set one by one by the host ([`insert`](Self::insert)),
/// or as the JSON object a producer sent, kept as its text and flattened only
/// when read ([`from_json_object`](Self::from_json_object)). Ingestion keeps
/// what it does not model this way: one allocation per event instead of a
/// map of values, and nothing dropped.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Attributes {
    map: serde_json::Map<String, serde_json::Value>,
    raw: Option<RawObject>,
}

/// A producer's JSON object, as text.
#[derive(Debug, Clone, PartialEq)]
struct RawObject {
    json: Box<str>,
    /// Flattened keys the event models elsewhere, left out.
    skip: &'static [&'static str],
}

impl Attributes {
    /// The attributes of `json`, a JSON object the caller has validated,
    /// leaving out the flattened keys in `skip`.
    pub fn from_json_object(json: &str, skip: &'static [&'static str]) -> Attributes {
        Attributes {
            map: serde_json::Map::new(),
            raw: Some(RawObject {
                json: json.into(),
                skip,
            }),
        }
    }

    /// Sets one attribute (after those of a producer's object).
    pub fn insert(&mut self, key: impl Into<String>, value: impl Into<serde_json::Value>) {
        self.map.insert(key.into(), value.into());
    }

    /// Whether there are none (a producer's object counts as some).
    pub fn is_empty(&self) -> bool {
        self.map.is_empty() && self.raw.is_none()
    }

    /// Every attribute, flattened.
    pub fn to_map(&self) -> serde_json::Map<String, serde_json::Value> {
        let mut out = serde_json::Map::new();
        if let Some(raw) = &self.raw {
            match serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(&raw.json) {
                Ok(object) => flatten_into("", object, raw.skip, &mut out),
                Err(error) => {
                    tracing::warn!(%error, "event attributes are not a JSON object; left out")
                }
            }
        }
        out.extend(self.map.iter().map(|(k, v)| (k.clone(), v.clone())));
        out
    }

    /// One attribute, by its flattened key.
    pub fn get(&self, key: &str) -> Option<serde_json::Value> {
        self.to_map().remove(key)
    }

    /// A top-level string attribute, without flattening the rest: cheap when
    /// the producer's object does not mention `key` (the idempotency key).
    pub fn top_level_str(&self, key: &str) -> Option<String> {
        if let Some(value) = self.map.get(key) {
            return value.as_str().map(str::to_string);
        }
        let raw = self.raw.as_ref()?;
        if !raw.json.contains(key) {
            return None;
        }
        let object: std::collections::HashMap<String, Box<serde_json::value::RawValue>> =
            serde_json::from_str(&raw.json).ok()?;
        serde_json::from_str(object.get(key)?.get()).ok()
    }

    fn approx_bytes(&self) -> usize {
        self.raw.as_ref().map_or(0, |r| r.json.len())
            + self
                .map
                .iter()
                .map(|(k, v)| k.len() + 64 + v.as_str().map_or(0, str::len))
                .sum::<usize>()
    }
}

fn flatten_into(
    prefix: &str,
    object: serde_json::Map<String, serde_json::Value>,
    skip: &[&str],
    out: &mut serde_json::Map<String, serde_json::Value>,
) {
    for (key, value) in object {
        let key = if prefix.is_empty() {
            key
        } else {
            format!("{prefix}.{key}")
        };
        match value {
            serde_json::Value::Object(inner) => flatten_into(&key, inner, skip, out),
            value if !skip.contains(&key.as_str()) => {
                out.insert(key, value);
            }
            _ => {}
        }
    }
}

impl Serialize for Attributes {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.to_map().serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Attributes {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let map = serde_json::Map::deserialize(deserializer)?;
        let mut attributes = Attributes::default();
        flatten_into("", map, &[], &mut attributes.map);
        Ok(attributes)
    }
}

impl From<serde_json::Map<String, serde_json::Value>> for Attributes {
    fn from(map: serde_json::Map<String, serde_json::Value>) -> Self {
        let mut attributes = Attributes::default();
        flatten_into("", map, &[], &mut attributes.map);
        attributes
    }
}

/// A fresh, time-ordered event id.
pub fn new_event_id() -> String {
    uuid::Uuid::now_v7().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    #[test]
    fn attributes_flatten_a_producers_object_on_read() {
        let mut a = Attributes::from_json_object(
            r#"{"service": "s", "site_id": "fab1", "entity": {"type": "job", "parent_id": null, "tags": ["a"]}}"#,
            &["service", "entity.type"],
        );
        a.insert("rule", "r1");
        assert!(!a.is_empty());
        let map = a.to_map();
        assert_eq!(
            Value::Object(map),
            json!({"site_id": "fab1", "entity.parent_id": null, "entity.tags": ["a"], "rule": "r1"})
        );
        assert_eq!(a.get("site_id"), Some(json!("fab1")));
        let text = serde_json::to_string(&a).unwrap();
        let back: Attributes = serde_json::from_str(&text).unwrap();
        assert_eq!(back.to_map(), a.to_map());
        assert!(Attributes::default().is_empty());
    }
}

/// A service known from heartbeats.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceState {
    /// Its name.
    pub name: String,
    /// Whether its last heartbeat is recent enough.
    pub up: bool,
    /// Unix milliseconds of its last heartbeat.
    pub last_seen_ms: u64,
    /// The phase its last heartbeat reported.
    pub phase: Option<String>,
    /// Unix milliseconds when it went down, while down.
    pub down_since_ms: Option<u64>,
}
