//! The sink's `[config]` and its validation, done once in `init`.
//!
//! ```toml
//! [config]
//! server = "zabbix.example.org:10051"   # also in [capabilities.tcp] connect
//! host = "{service}"                    # the Zabbix host of each item
//! key = "wasmon.event[{type}]"          # the trapper item key
//! value = "json"                        # json | detail | severity | status
//! timeout = "1.5s"
//! events = ["alert.*"]
//! ```
//!
//! `host` and `key` are patterns: `{type}`, `{service}` (`none` when the
//! event has none), `{source}` and `{severity}` are filled from each event.

use serde::Deserialize;
use std::time::Duration;
use wasmon_sdk::config::duration_opt;
use wasmon_sdk::sink::EventFilter;

/// Timeout of one exchange when `[config]` sets none: below the host's
/// default per-call budget of 2 s.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(1500);

/// The `[config]` table as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The Zabbix server or proxy, `host:port` (the trapper port is 10051);
    /// it must be in the manifest's `[capabilities.tcp] connect`.
    pub server: String,
    /// The Zabbix host name of each item, a pattern (default `wasmon`).
    #[serde(default)]
    pub host: Option<String>,
    /// The item key, a pattern (default `wasmon.event[{type}]`).
    #[serde(default)]
    pub key: Option<String>,
    /// What an item's value is: `json` (default: the event in the host's
    /// JSON shape), `detail` (its detail text, empty when none),
    /// `severity` (`info`/`warning`/`critical`) or `status` (`OK`,
    /// `WARNING`, `ALERT`).
    #[serde(default)]
    pub value: Option<Value>,
    /// Longest connect, send and answer of one batch (default 1.5s); keep
    /// it below the manifest's per-call `timeout`.
    #[serde(default, deserialize_with = "duration_opt")]
    pub timeout: Option<Duration>,
    /// Event types to send, as names or `*` globs; all when empty.
    #[serde(default)]
    pub events: EventFilter,
}

/// What an item's value is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Value {
    /// The event as the host's JSON.
    Json,
    /// The detail text.
    Detail,
    /// `info`, `warning` or `critical`.
    Severity,
    /// `OK`, `WARNING` or `ALERT`.
    Status,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `host:port`.
    pub server: String,
    /// The host pattern.
    pub host: String,
    /// The key pattern.
    pub key: String,
    /// The value.
    pub value: Value,
    /// Longest exchange.
    pub timeout: Duration,
    /// Event-type globs; all when empty.
    pub events: EventFilter,
}

impl Config {
    /// Checks what types alone cannot; errors name the key.
    pub fn validate(self) -> Result<Settings, String> {
        let port_ok = self
            .server
            .rsplit_once(':')
            .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok_and(|p| p != 0));
        if !port_ok || self.server.contains(['/', ' ']) {
            return Err(format!("`server`: {:?} is not host:port", self.server));
        }
        let host = self.host.unwrap_or_else(|| "wasmon".into());
        let key = self.key.unwrap_or_else(|| "wasmon.event[{type}]".into());
        for (name, pattern) in [("host", &host), ("key", &key)] {
            if pattern.is_empty() {
                return Err(format!("`{name}` must not be empty"));
            }
            wasmon_sdk::event_json::check_pattern(pattern).map_err(|e| format!("`{name}`: {e}"))?;
        }
        let timeout = self.timeout.unwrap_or(DEFAULT_TIMEOUT);
        if timeout.is_zero() {
            return Err("`timeout` must be greater than zero".into());
        }
        Ok(Settings {
            server: self.server,
            host,
            key,
            value: self.value.unwrap_or(Value::Json),
            timeout,
            events: self.events,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn validate(json: &str) -> Result<Settings, String> {
        wasmon_sdk::config::from_json::<Config>(json)
            .map_err(|e| e.message)?
            .validate()
    }

    #[test]
    fn defaults_and_full() {
        let s = validate(r#"{"server": "127.0.0.1:10051"}"#).unwrap();
        assert_eq!(s.host, "wasmon");
        assert_eq!(s.key, "wasmon.event[{type}]");
        assert_eq!(s.value, Value::Json);
        assert_eq!(s.timeout, DEFAULT_TIMEOUT);
        let s = validate(
            r#"{"server": "zbx:10051", "host": "{service}", "key": "k[{severity}]",
                "value": "status", "timeout": "3s", "events": ["alert.*"]}"#,
        )
        .unwrap();
        assert_eq!(s.value, Value::Status);
        assert_eq!(s.timeout, Duration::from_secs(3));
    }

    #[test]
    fn rejects_bad_configs_naming_the_key() {
        for (json, expect) in [
            ("{}", "missing field `server`"),
            (r#"{"server": "zbx"}"#, "`server`"),
            (r#"{"server": "zbx:0"}"#, "`server`"),
            (r#"{"server": ":10051"}"#, "`server`"),
            (r#"{"server": "zbx:1", "key": "k[{nope}]"}"#, "`key`"),
            (r#"{"server": "zbx:1", "host": ""}"#, "`host`"),
            (r#"{"server": "zbx:1", "value": "xml"}"#, "value"),
            (r#"{"server": "zbx:1", "timeout": "0s"}"#, "`timeout`"),
            (r#"{"server": "zbx:1", "port": 1}"#, "unknown field `port`"),
        ] {
            match validate(json) {
                Ok(s) => panic!("{json} was accepted: {s:?}"),
                Err(e) => assert!(e.contains(expect), "{json}: {e:?} lacks {expect:?}"),
            }
        }
    }
}
