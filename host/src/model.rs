//! The data the host passes around: samples, severities, events and alert changes.
//!
//! These are the host's own types; `plugins::bindings` converts them to and from
//! the WIT types at the plugin boundary, so nothing else depends on wasmtime.

use serde::{Deserialize, Serialize};

/// Label pairs, in the order given (the store sorts them).
pub type Labels = Vec<(String, String)>;

/// How a sample's value behaves over time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
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
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default,
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertChange {
    /// The rule plugin that raised it.
    pub rule: String,
    /// The alert's name.
    pub name: String,
    /// Its labels.
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub attributes: serde_json::Map<String, serde_json::Value>,
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
            attributes: serde_json::Map::new(),
            alert: None,
        }
    }
}

/// A fresh, time-ordered event id.
pub fn new_event_id() -> String {
    uuid::Uuid::now_v7().to_string()
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
