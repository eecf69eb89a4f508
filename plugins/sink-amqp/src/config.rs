//! The sink's `[config]` and its validation, done once in `init`.
//!
//! ```toml
//! [config]
//! exchange = "wasmon.events"   # required; allow-list it in [capabilities.rabbitmq] exchanges
//! routing_key = "{type}"       # {type}, {service}, {source}, {severity}
//! events = ["alert.*"]         # event-type globs; all when empty
//! rejected = "retry"           # or "dead-letter": a nacked or unroutable message
//! ```

use serde::Deserialize;
use wasmon_sdk::sink::EventFilter;

/// The routing key when `[config]` sets none: the event type.
pub const DEFAULT_ROUTING_KEY: &str = "{type}";

/// What a `rejected` answer (the broker nacked the message, or no queue is
/// bound for its routing key) does to the batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum OnRejected {
    /// Retry the batch with the host's backoff: nothing is lost while the
    /// consumer's queue is not bound yet (the default).
    #[default]
    Retry,
    /// Dead-letter the batch (the host counts it; replay sends it again).
    DeadLetter,
}

/// The `[config]` table as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The exchange to publish to (`""` is the default exchange, where the
    /// routing key names a queue).
    pub exchange: String,
    /// The routing key pattern: `{type}`, `{service}`, `{source}`, `{severity}`.
    #[serde(default)]
    pub routing_key: Option<String>,
    /// Event types to publish, as names or `*` globs; all when empty.
    #[serde(default)]
    pub events: EventFilter,
    /// What a nacked or unroutable message does to its batch.
    #[serde(default)]
    pub rejected: OnRejected,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Amqp {
    /// The exchange.
    pub exchange: String,
    /// The routing key pattern.
    pub routing_key: String,
    /// Event-type globs; all when empty.
    pub events: EventFilter,
    /// What `rejected` does.
    pub rejected: OnRejected,
}

impl Config {
    /// Checks what types alone cannot; errors name the key.
    pub fn validate(self) -> Result<Amqp, String> {
        let routing_key = self
            .routing_key
            .unwrap_or_else(|| DEFAULT_ROUTING_KEY.to_string());
        wasmon_sdk::event_json::check_pattern(&routing_key)
            .map_err(|e| format!("`routing_key`: {e}"))?;
        if routing_key.len() > 255 {
            return Err("`routing_key`: longer than AMQP's 255 bytes".into());
        }
        if self.exchange.len() > 255 {
            return Err("`exchange`: longer than AMQP's 255 bytes".into());
        }
        Ok(Amqp {
            exchange: self.exchange,
            routing_key,
            events: self.events,
            rejected: self.rejected,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn validate(json: &str) -> Result<Amqp, String> {
        wasmon_sdk::config::from_json::<Config>(json)
            .map_err(|e| e.message)?
            .validate()
    }

    #[test]
    fn defaults_and_errors_name_the_key() {
        let c = validate(r#"{"exchange": "x"}"#).unwrap();
        assert_eq!(c.routing_key, "{type}");
        assert_eq!(c.rejected, OnRejected::Retry);
        let c =
            validate(r#"{"exchange": "", "routing_key": "q", "rejected": "dead-letter"}"#).unwrap();
        assert_eq!(c.rejected, OnRejected::DeadLetter);
        let e = validate("{}").unwrap_err();
        assert!(e.contains("exchange"), "{e}");
        let e = validate(r#"{"exchange": "x", "routing_key": "{kind}"}"#).unwrap_err();
        assert!(e.contains("`routing_key`") && e.contains("{kind}"), "{e}");
        let e = validate(r#"{"exchange": "x", "rejected": "drop"}"#).unwrap_err();
        assert!(e.contains("rejected"), "{e}");
        let e = validate(r#"{"exchange": "x", "events": [""]}"#).unwrap_err();
        assert!(e.contains("`events`"), "{e}");
    }
}
