//! The sink's `[config]` and its validation, done once in `init`.
//!
//! ```toml
//! [config]
//! url = "https://hooks.example.com/wasmon"
//! headers = { Authorization = "Bearer s3cret" }
//! events = ["alert.*", "service.*"]
//! timeout = "1.5s"
//! ```

use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::Duration;
use wasmon_sdk::config::{self, duration_opt};

/// Request timeout when `[config]` sets none: below the host's default
/// per-call budget of 2 s, with room to build the request.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(1500);

/// The envelope's `source` when `[config]` sets none.
pub const DEFAULT_SOURCE: &str = "wasmon";

/// The `[config]` table as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where to POST; its host must be allow-listed in the manifest's
    /// `[capabilities.http] allow`.
    pub url: String,
    /// Extra request headers, e.g. `{ Authorization = "Bearer ..." }`.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Event types to send, as names or `*` globs (`alert.*`); all when empty.
    /// Applied after the manifest's own `events` filter.
    #[serde(default)]
    pub events: Vec<String>,
    /// Request timeout; keep it below the manifest's per-call `timeout`.
    #[serde(default, deserialize_with = "duration_opt")]
    pub timeout: Option<Duration>,
    /// The envelope's `source`, naming this installation to the receiver.
    #[serde(default)]
    pub source: Option<String>,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Webhook {
    /// Where to POST.
    pub url: String,
    /// Extra headers.
    pub headers: Vec<(String, String)>,
    /// Event-type globs; all when empty.
    pub events: Vec<String>,
    /// Request timeout.
    pub timeout: Duration,
    /// The envelope's `source`.
    pub source: String,
}

impl Config {
    /// Checks what types alone cannot; errors name the key.
    pub fn validate(self) -> Result<Webhook, String> {
        config::check_http_url(&self.url).map_err(|e| format!("`url`: {e}"))?;
        config::check_headers(&self.headers, &["content-type", "content-length"])?;
        if let Some(pattern) = self.events.iter().find(|p| p.is_empty()) {
            return Err(format!("`events`: {pattern:?} is empty"));
        }
        let timeout = config::http_timeout(self.timeout, DEFAULT_TIMEOUT)?;
        Ok(Webhook {
            url: self.url,
            headers: self.headers.into_iter().collect(),
            events: self.events,
            timeout,
            source: self.source.unwrap_or_else(|| DEFAULT_SOURCE.into()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn validate(json: &str) -> Result<Webhook, String> {
        wasmon_sdk::config::from_json::<Config>(json)
            .map_err(|e| e.message)?
            .validate()
    }

    #[track_caller]
    fn check_err(json: &str, expect: &str) {
        match validate(json) {
            Ok(w) => panic!("{json} was accepted: {w:?}"),
            Err(err) => assert!(err.contains(expect), "error {err:?} lacks {expect:?}"),
        }
    }

    #[test]
    fn defaults_and_full() {
        let w = validate(r#"{"url": "http://127.0.0.1:9999/alerts"}"#).unwrap();
        assert_eq!(w.timeout, DEFAULT_TIMEOUT);
        assert_eq!(w.source, "wasmon");
        assert!(w.events.is_empty() && w.headers.is_empty());
        let w = validate(
            r#"{"url": "https://h.example.com/x", "headers": {"Authorization": "Bearer t"},
                "events": ["alert.*"], "timeout": "3s", "source": "edge-1"}"#,
        )
        .unwrap();
        assert_eq!(w.headers, vec![("Authorization".into(), "Bearer t".into())]);
        assert_eq!(w.timeout, Duration::from_secs(3));
        assert_eq!(w.source, "edge-1");
    }

    #[test]
    fn rejects_bad_configs_naming_the_key() {
        check_err("{}", "missing field `url`");
        check_err(
            r#"{"url": "localhost:9999"}"#,
            "`url`: \"localhost:9999\" must start with http://",
        );
        check_err(r#"{"url": "http://"}"#, "`url`: \"http://\" has no host");
        check_err(
            r#"{"url": "http://a", "headers": {"a b": "x"}}"#,
            "`headers`: \"a b\"",
        );
        check_err(
            r#"{"url": "http://a", "headers": {"Content-Type": "x"}}"#,
            "set by the sink",
        );
        check_err(
            r#"{"url": "http://a", "headers": {"X": "a\nb"}}"#,
            "`headers.X`",
        );
        check_err(r#"{"url": "http://a", "events": [""]}"#, "`events`");
        check_err(
            r#"{"url": "http://a", "timeout": 0}"#,
            "`timeout` must be greater than zero",
        );
        check_err(
            r#"{"url": "http://a", "timeout": "never"}"#,
            "`timeout`: invalid duration",
        );
        check_err(
            r#"{"url": "http://a", "retries": 3}"#,
            "unknown field `retries`",
        );
    }
}
