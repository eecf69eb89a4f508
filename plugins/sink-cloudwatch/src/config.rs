//! The sink's `[config]` and its validation, done once in `init`.
//!
//! ```toml
//! [config]
//! region = "eu-west-1"               # required: the same as [capabilities.aws] region
//! endpoint = "http://127.0.0.1:5000" # optional: the same as [capabilities.aws] endpoint
//! namespace = "Wasmon"               # PutMetricData's namespace; "" turns metrics off
//! log_group = "/wasmon/events"       # PutLogEvents into this group; none turns logs off
//! log_stream = "edge-1"              # default: the plugin's name
//! create_log_stream = true           # create the stream when missing (the group must exist)
//! events = ["alert.*"]               # event-type globs; all when empty
//! timeout = "1.5s"                   # per request
//! ```

use serde::Deserialize;
use std::time::Duration;
use wasmon_sdk::config::duration_opt;
use wasmon_sdk::sink::EventFilter;

/// The namespace when `[config]` names none.
pub const DEFAULT_NAMESPACE: &str = "Wasmon";

/// Request timeout when `[config]` sets none: below the host's default
/// per-call budget of 2 s.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(1500);

/// The `[config]` table as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The region (as in `[capabilities.aws]`).
    pub region: String,
    /// Where the services are reached (as in `[capabilities.aws]`); default
    /// AWS's `https://SERVICE.REGION.amazonaws.com`.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// The metrics' namespace; `""` sends no metrics.
    #[serde(default)]
    pub namespace: Option<String>,
    /// The log group every event is written to; none sends no logs.
    #[serde(default)]
    pub log_group: Option<String>,
    /// The log stream; default the plugin's name.
    #[serde(default)]
    pub log_stream: Option<String>,
    /// Create the log stream when PutLogEvents says it is missing (default
    /// true); the group must exist either way.
    #[serde(default)]
    pub create_log_stream: Option<bool>,
    /// Event types to send, as names or `*` globs; all when empty.
    #[serde(default)]
    pub events: EventFilter,
    /// Request timeout; keep it below the manifest's per-call `timeout`.
    #[serde(default, deserialize_with = "duration_opt")]
    pub timeout: Option<Duration>,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct CloudWatch {
    /// The region.
    pub region: String,
    /// `scheme://host[:port]` of CloudWatch (`monitoring`).
    pub monitoring_url: String,
    /// `scheme://host[:port]` of CloudWatch Logs (`logs`).
    pub logs_url: String,
    /// The namespace; `None`: no metrics.
    pub namespace: Option<String>,
    /// Group and stream; `None`: no logs.
    pub logs: Option<(String, String)>,
    /// Whether a missing stream is created.
    pub create_log_stream: bool,
    /// Event-type globs; all when empty.
    pub events: EventFilter,
    /// Request timeout.
    pub timeout: Duration,
}

impl Config {
    /// Checks what types alone cannot; errors name the key. `plugin` is the
    /// default stream.
    pub fn validate(self, plugin: &str) -> Result<CloudWatch, String> {
        if self.region.is_empty()
            || !self
                .region
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(format!("`region`: {:?} is not a region name", self.region));
        }
        let url = |service: &str| match &self.endpoint {
            Some(e) => e.trim_end_matches('/').to_string(),
            None => format!("https://{service}.{}.amazonaws.com", self.region),
        };
        if let Some(e) = &self.endpoint {
            let rest = e
                .strip_prefix("http://")
                .or_else(|| e.strip_prefix("https://"))
                .ok_or_else(|| format!("`endpoint`: {e:?} must start with http:// or https://"))?;
            if rest.trim_end_matches('/').is_empty() || rest.trim_end_matches('/').contains('/') {
                return Err(format!(
                    "`endpoint`: {e:?} must be scheme://host[:port], without a path"
                ));
            }
        }
        let namespace = match self.namespace {
            None => Some(DEFAULT_NAMESPACE.to_string()),
            Some(n) if n.is_empty() => None,
            Some(n) if n.len() > 255 || n.starts_with("AWS/") || n.starts_with(':') => {
                return Err(format!(
                    "`namespace`: {n:?} must be 1 to 255 characters, not start with AWS/ or :"
                ));
            }
            Some(n) => Some(n),
        };
        let logs = match self.log_group {
            None => None,
            Some(group) => {
                let stream = self.log_stream.unwrap_or_else(|| plugin.to_string());
                check_log_name("log_group", &group, 512)?;
                check_log_name("log_stream", &stream, 512)?;
                if stream.contains(':') || stream.contains('*') {
                    return Err(format!("`log_stream`: {stream:?} holds : or *"));
                }
                Some((group, stream))
            }
        };
        if namespace.is_none() && logs.is_none() {
            return Err(
                "nothing to send: set `log_group`, or leave `namespace` non-empty".to_string(),
            );
        }
        let timeout = wasmon_sdk::config::http_timeout(self.timeout, DEFAULT_TIMEOUT)?;
        Ok(CloudWatch {
            monitoring_url: url("monitoring"),
            logs_url: url("logs"),
            region: self.region,
            namespace,
            logs,
            create_log_stream: self.create_log_stream.unwrap_or(true),
            events: self.events,
            timeout,
        })
    }
}

/// A log group or stream name: 1 to `max` characters.
fn check_log_name(key: &str, name: &str, max: usize) -> Result<(), String> {
    if name.is_empty() || name.len() > max || name.chars().any(char::is_control) {
        return Err(format!(
            "`{key}`: {name:?} must be 1 to {max} characters without control characters"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn validate(json: &str) -> Result<CloudWatch, String> {
        wasmon_sdk::config::from_json::<Config>(json)
            .map_err(|e| e.message)?
            .validate("cw")
    }

    #[test]
    fn defaults_and_endpoints() {
        let c = validate(r#"{"region": "eu-west-1"}"#).unwrap();
        assert_eq!(
            c.monitoring_url,
            "https://monitoring.eu-west-1.amazonaws.com"
        );
        assert_eq!(c.logs_url, "https://logs.eu-west-1.amazonaws.com");
        assert_eq!(c.namespace.as_deref(), Some("Wasmon"));
        assert!(c.logs.is_none() && c.create_log_stream);
        let c = validate(
            r#"{"region": "us-east-1", "endpoint": "http://127.0.0.1:5000/", "namespace": "",
                "log_group": "g"}"#,
        )
        .unwrap();
        assert_eq!(c.logs_url, "http://127.0.0.1:5000");
        assert_eq!(c.logs, Some(("g".into(), "cw".into())));
        assert!(c.namespace.is_none());
    }

    #[test]
    fn errors_name_the_key() {
        let e = |j: &str| validate(j).unwrap_err();
        assert!(e("{}").contains("region"));
        assert!(e(r#"{"region": "EU"}"#).contains("`region`"));
        assert!(e(r#"{"region": "a", "endpoint": "127.0.0.1:5000"}"#).contains("`endpoint`"));
        assert!(e(r#"{"region": "a", "endpoint": "http://h/x"}"#).contains("`endpoint`"));
        assert!(e(r#"{"region": "a", "namespace": "AWS/EC2"}"#).contains("`namespace`"));
        assert!(e(r#"{"region": "a", "namespace": ""}"#).contains("nothing to send"));
        assert!(e(r#"{"region": "a", "log_group": ""}"#).contains("`log_group`"));
        assert!(
            e(r#"{"region": "a", "log_group": "g", "log_stream": "a:b"}"#).contains("`log_stream`")
        );
        assert!(e(r#"{"region": "a", "timeout": 0}"#).contains("`timeout`"));
        assert!(e(r#"{"region": "a", "group": "g"}"#).contains("unknown field"));
    }
}
