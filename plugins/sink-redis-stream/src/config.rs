//! The sink's `[config]` and its validation, done once in `init`.
//!
//! ```toml
//! [config]
//! key = "wasmon:events"   # the stream; {type}, {service}, {source}, {severity} allowed
//! maxlen = 100000         # XADD ... MAXLEN ~ maxlen; 0: never trimmed
//! events = ["alert.*"]    # event-type globs; all when empty
//! ```

use serde::Deserialize;
use wasmon_sdk::sink::EventFilter;

/// The stream when `[config]` names none.
pub const DEFAULT_KEY: &str = "wasmon:events";

/// The approximate length the stream is trimmed to when `[config]` says nothing.
pub const DEFAULT_MAXLEN: u64 = 100_000;

/// The `[config]` table as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The stream key pattern: `{type}`, `{service}`, `{source}`, `{severity}`.
    #[serde(default)]
    pub key: Option<String>,
    /// `MAXLEN ~ maxlen` on every XADD (Redis trims whole macro nodes, so
    /// the stream may hold somewhat more); 0 turns trimming off.
    #[serde(default)]
    pub maxlen: Option<u64>,
    /// Event types to append, as names or `*` globs; all when empty.
    #[serde(default)]
    pub events: EventFilter,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Stream {
    /// The key pattern.
    pub key: String,
    /// The trimming length; 0: none.
    pub maxlen: u64,
    /// Event-type globs; all when empty.
    pub events: EventFilter,
}

impl Config {
    /// Checks what types alone cannot; errors name the key.
    pub fn validate(self) -> Result<Stream, String> {
        let key = self.key.unwrap_or_else(|| DEFAULT_KEY.to_string());
        if key.is_empty() {
            return Err("`key`: must not be empty".into());
        }
        wasmon_sdk::event_json::check_pattern(&key).map_err(|e| format!("`key`: {e}"))?;
        Ok(Stream {
            key,
            maxlen: self.maxlen.unwrap_or(DEFAULT_MAXLEN),
            events: self.events,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn validate(json: &str) -> Result<Stream, String> {
        wasmon_sdk::config::from_json::<Config>(json)
            .map_err(|e| e.message)?
            .validate()
    }

    #[test]
    fn defaults_and_errors_name_the_key() {
        let s = validate("{}").unwrap();
        assert_eq!((s.key.as_str(), s.maxlen), (DEFAULT_KEY, DEFAULT_MAXLEN));
        let s = validate(r#"{"key": "ev:{service}", "maxlen": 0}"#).unwrap();
        assert_eq!((s.key.as_str(), s.maxlen), ("ev:{service}", 0));
        assert!(validate(r#"{"key": ""}"#).unwrap_err().contains("`key`"));
        assert!(validate(r#"{"key": "{x}"}"#).unwrap_err().contains("`key`"));
        assert!(
            validate(r#"{"maxlen": -1}"#)
                .unwrap_err()
                .contains("maxlen")
        );
        assert!(
            validate(r#"{"events": [""]}"#)
                .unwrap_err()
                .contains("`events`")
        );
        assert!(
            validate(r#"{"stream": "x"}"#)
                .unwrap_err()
                .contains("unknown field")
        );
    }
}
