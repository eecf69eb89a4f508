//! The WIT types, re-exported with builders.

use crate::bindings::wasmon::plugin::types;

pub use types::{
    Alert, AlertChange, AlertState, DeliveryError, Error, Event, Label, Message, MetricKind,
    RuleInput, Sample, ServiceState, Severity,
};

impl Error {
    /// An error with this message.
    pub fn new(message: impl Into<String>) -> Self {
        Error {
            message: message.into(),
        }
    }
}

impl From<String> for Error {
    fn from(message: String) -> Self {
        Error::new(message)
    }
}

impl From<&str> for Error {
    fn from(message: &str) -> Self {
        Error::new(message)
    }
}

impl From<serde_json::Error> for Error {
    fn from(error: serde_json::Error) -> Self {
        Error::new(error.to_string())
    }
}

impl From<crate::http::HttpError> for Error {
    fn from(error: crate::http::HttpError) -> Self {
        Error::new(error.to_string())
    }
}

impl From<crate::redis::RedisError> for Error {
    fn from(error: crate::redis::RedisError) -> Self {
        Error::new(error.to_string())
    }
}

impl Label {
    /// A label.
    pub fn new(name: impl Into<String>, value: impl Into<String>) -> Self {
        Label {
            name: name.into(),
            value: value.into(),
        }
    }
}

impl Sample {
    /// A gauge: a value that goes up and down.
    pub fn gauge(name: impl Into<String>, value: f64) -> Self {
        Sample::new(name, MetricKind::Gauge, value)
    }

    /// A counter: a monotonically increasing count (exported with `_total`).
    pub fn counter(name: impl Into<String>, value: f64) -> Self {
        Sample::new(name, MetricKind::Counter, value)
    }

    fn new(name: impl Into<String>, kind: MetricKind, value: f64) -> Self {
        Sample {
            name: name.into(),
            kind,
            labels: Vec::new(),
            value,
            help: None,
            timestamp_ms: None,
        }
    }

    /// Adds a label.
    pub fn with_label(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.labels.push(Label::new(name, value));
        self
    }

    /// Sets the help text shown in `/metrics`.
    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// Sets the sample's time (Unix milliseconds).
    pub fn at(mut self, timestamp_ms: u64) -> Self {
        self.timestamp_ms = Some(timestamp_ms);
        self
    }

    /// The value of one of its labels.
    pub fn label(&self, name: &str) -> Option<&str> {
        find_label(&self.labels, name)
    }
}

impl Alert {
    /// A checked condition with its severity (`Severity::Ok` when fine).
    pub fn new(name: impl Into<String>, severity: Severity, summary: impl Into<String>) -> Self {
        Alert {
            name: name.into(),
            labels: Vec::new(),
            severity,
            summary: summary.into(),
            value: None,
        }
    }

    /// Adds a label; alerts with different labels are tracked separately.
    pub fn with_label(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.labels.push(Label::new(name, value));
        self
    }

    /// Sets the value that was checked.
    pub fn with_value(mut self, value: f64) -> Self {
        self.value = Some(value);
        self
    }
}

impl Event {
    /// The value of one of its attributes.
    pub fn attribute(&self, name: &str) -> Option<&str> {
        find_label(&self.attributes, name)
    }
}

impl Severity {
    /// The seed's status word: `OK`, `WARNING` or `ALERT`.
    pub fn status(self) -> &'static str {
        match self {
            Severity::Ok => "OK",
            Severity::Warning => "WARNING",
            Severity::Critical => "ALERT",
        }
    }

    /// Lower-case name: `ok`, `warning`, `critical`.
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Ok => "ok",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

impl AlertState {
    /// Lower-case name: `pending`, `firing`, `resolved`.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertState::Pending => "pending",
            AlertState::Firing => "firing",
            AlertState::Resolved => "resolved",
        }
    }
}

fn find_label<'a>(labels: &'a [Label], name: &str) -> Option<&'a str> {
    labels
        .iter()
        .find(|l| l.name == name)
        .map(|l| l.value.as_str())
}
