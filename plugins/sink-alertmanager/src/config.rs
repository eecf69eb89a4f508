//! The sink's `[config]` and its validation, done once in `init`.
//!
//! ```toml
//! [config]
//! url = "http://127.0.0.1:9093"        # Alertmanager; the sink posts to {url}/api/v2/alerts
//! resend_interval = "1m"               # re-send firing alerts this often (Prometheus' resend_delay)
//! validity = "4m"                      # endsAt of a firing alert: now + this (default 4 × resend_interval)
//! timeout = "1.5s"
//! headers = { Authorization = "Bearer ..." }
//! labels = { cluster = "prod" }        # added to every alert (Prometheus' external_labels)
//! generator_url = "http://wasmon.example.com:9400/api/alerts"
//! ```

use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::Duration;
use wasmon_sdk::config::{check_headers, check_http_url, duration_opt, http_timeout};

/// Request timeout when `[config]` sets none: below the host's default
/// per-call budget of 2 s.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(1500);

/// How often firing alerts are re-sent when `[config]` sets nothing:
/// Prometheus' `--rules.alert.resend-delay`.
pub const DEFAULT_RESEND: Duration = Duration::from_secs(60);

/// The `[config]` table as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Alertmanager's base URL (`http://host:9093`, or with a path prefix);
    /// its host must be allow-listed in `[capabilities.http] allow`.
    pub url: String,
    /// How often firing alerts are re-sent (default 1 m); give the manifest
    /// a `tick` no longer than this so re-sends happen while no event comes.
    #[serde(default, deserialize_with = "duration_opt")]
    pub resend_interval: Option<Duration>,
    /// How long Alertmanager keeps a firing alert without news: its `endsAt`
    /// is now + this (default 4 × `resend_interval`, as Prometheus does).
    #[serde(default, deserialize_with = "duration_opt")]
    pub validity: Option<Duration>,
    /// Request timeout (default 1.5 s); keep it below the manifest's `timeout`.
    #[serde(default, deserialize_with = "duration_opt")]
    pub timeout: Option<Duration>,
    /// Extra request headers, e.g. `{ Authorization = "Bearer ..." }`.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Labels added to every alert, like Prometheus' `external_labels`; an
    /// alert's own label of the same name is kept as `exported_NAME`.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Every alert's `generatorURL`, e.g. this host's `/api/alerts` (default none).
    #[serde(default)]
    pub generator_url: Option<String>,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `{url}/api/v2/alerts`.
    pub endpoint: String,
    /// Re-send period of firing alerts, in milliseconds.
    pub resend_ms: u64,
    /// `endsAt` of a firing alert is now + this, in milliseconds.
    pub validity_ms: u64,
    /// Request timeout.
    pub timeout: Duration,
    /// Extra headers.
    pub headers: Vec<(String, String)>,
    /// Labels added to every alert.
    pub labels: BTreeMap<String, String>,
    /// `generatorURL`.
    pub generator_url: Option<String>,
}

impl Config {
    /// Checks what types alone cannot; errors name the key.
    pub fn validate(self) -> Result<Settings, String> {
        check_http_url(&self.url).map_err(|e| format!("`url`: {e}"))?;
        let resend = self.resend_interval.unwrap_or(DEFAULT_RESEND);
        if resend < Duration::from_millis(100) {
            return Err("`resend_interval` must be at least 100ms".into());
        }
        let validity = self.validity.unwrap_or(resend * 4);
        if validity <= resend {
            return Err(format!(
                "`validity` ({validity:?}) must exceed `resend_interval` ({resend:?}), or firing alerts expire between re-sends"
            ));
        }
        let timeout = http_timeout(self.timeout, DEFAULT_TIMEOUT)?;
        check_headers(&self.headers, &["content-type"])?;
        for name in self.labels.keys() {
            if !is_label_name(name) {
                return Err(format!(
                    "`labels`: {name:?} is not a label name ([a-zA-Z_][a-zA-Z0-9_]*)"
                ));
            }
        }
        if let Some(url) = &self.generator_url {
            check_http_url(url).map_err(|e| format!("`generator_url`: {e}"))?;
        }
        Ok(Settings {
            endpoint: format!("{}/api/v2/alerts", self.url.trim_end_matches('/')),
            resend_ms: millis(resend),
            validity_ms: millis(validity),
            timeout,
            headers: self.headers.into_iter().collect(),
            labels: self.labels,
            generator_url: self.generator_url,
        })
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// A label name Alertmanager accepts: `[a-zA-Z_][a-zA-Z0-9_]*`.
pub fn is_label_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;

    fn validate(json: &str) -> Result<Settings, String> {
        wasmon_sdk::config::from_json::<Config>(json)
            .map_err(|e| e.message)?
            .validate()
    }

    #[track_caller]
    fn check_err(json: &str, expect: &str) {
        match validate(json) {
            Ok(s) => panic!("{json} was accepted: {s:?}"),
            Err(err) => assert!(err.contains(expect), "error {err:?} lacks {expect:?}"),
        }
    }

    #[test]
    fn defaults_and_full() {
        let s = validate(r#"{"url": "http://127.0.0.1:9093/"}"#).unwrap();
        assert_eq!(s.endpoint, "http://127.0.0.1:9093/api/v2/alerts");
        assert_eq!((s.resend_ms, s.validity_ms), (60_000, 240_000));
        assert_eq!(s.timeout, DEFAULT_TIMEOUT);
        let s = validate(
            r#"{"url": "https://am.example.com/prefix", "resend_interval": "2s", "validity": "5s",
                "labels": {"cluster": "prod"}, "generator_url": "http://w:9400/api/alerts",
                "headers": {"Authorization": "Bearer t"}, "timeout": "1s"}"#,
        )
        .unwrap();
        assert_eq!(s.endpoint, "https://am.example.com/prefix/api/v2/alerts");
        assert_eq!((s.resend_ms, s.validity_ms), (2_000, 5_000));
        assert_eq!(s.labels["cluster"], "prod");
    }

    #[test]
    fn rejects_bad_configs_naming_the_key() {
        check_err("{}", "missing field `url`");
        check_err(r#"{"url": "am:9093"}"#, "`url`");
        check_err(
            r#"{"url": "http://a", "resend_interval": "1s", "validity": "1s"}"#,
            "`validity`",
        );
        check_err(
            r#"{"url": "http://a", "resend_interval": "10ms"}"#,
            "`resend_interval`",
        );
        check_err(r#"{"url": "http://a", "labels": {"a-b": "x"}}"#, "`labels`");
        check_err(
            r#"{"url": "http://a", "headers": {"Content-Type": "x"}}"#,
            "set by the sink",
        );
        check_err(
            r#"{"url": "http://a", "generator_url": "x"}"#,
            "`generator_url`",
        );
        check_err(
            r#"{"url": "http://a", "resend": "1s"}"#,
            "unknown field `resend`",
        );
    }
}
