//! A plugin's manifest, `NAME.toml` beside `NAME.wasm`: its limits, schedule,
//! capabilities and `[config]`. Every key is optional; the config file's
//! `[plugins.defaults]` fills the gaps.
//!
//! ```toml
//! kind = "collector"            # checked against the component's exports
//! interval = "10s"              # collectors and rules
//! timeout = "2s"                # time budget of one call
//! memory_limit = "32MiB"
//! max_restarts = 5
//! critical = true               # its failure makes /api/health unhealthy
//! max_series = 1000             # collectors
//! select = ["probe_*"]          # rules: which series evaluate() receives
//! for = "30s"                   # rules: how long a condition holds before firing
//! events = ["alert.*"]          # sinks: which event types it receives
//! batch_size = 100              # sinks
//! [capabilities.http]
//! allow = ["127.0.0.1:8080", "*.example.org"]
//! timeout = "5s"
//! max_response_bytes = "1MiB"
//! [config]
//! targets = ["http://127.0.0.1:8080/health"]
//! ```

use crate::config::PluginDefaults;
use crate::units::{self, ByteSize};
use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::Duration;

/// Which world a plugin implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PluginKind {
    /// Exports `collect`.
    Collector,
    /// Exports `evaluate`.
    Rule,
    /// Exports `deliver`.
    Sink,
}

impl PluginKind {
    /// `collector`, `rule` or `sink`.
    pub fn as_str(self) -> &'static str {
        match self {
            PluginKind::Collector => "collector",
            PluginKind::Rule => "rule",
            PluginKind::Sink => "sink",
        }
    }
}

impl PluginKind {
    /// The export the host calls on its schedule: `collect`, `evaluate`, `deliver`.
    pub fn export(self) -> &'static str {
        match self {
            PluginKind::Collector => "collect",
            PluginKind::Rule => "evaluate",
            PluginKind::Sink => "deliver",
        }
    }
}

impl fmt::Display for PluginKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A resolved manifest: every field has its value.
#[derive(Debug, Clone, Serialize)]
pub struct Manifest {
    /// The declared kind, if any.
    pub kind: Option<PluginKind>,
    /// Collection / evaluation interval.
    #[serde(with = "units::duration")]
    pub interval: Duration,
    /// Time budget of one call.
    #[serde(with = "units::duration")]
    pub timeout: Duration,
    /// Linear memory limit.
    #[serde(serialize_with = "display")]
    pub memory_limit: ByteSize,
    /// Faults in a row before `failed`.
    pub max_restarts: u32,
    /// Whether the plugin's failure makes the host unhealthy.
    pub critical: bool,
    /// Most series a collector may hold.
    pub max_series: usize,
    /// Rules: the series `evaluate` receives.
    pub select: Vec<String>,
    /// Rules: how long a condition must hold before firing.
    #[serde(rename = "for", with = "units::duration")]
    pub for_duration: Duration,
    /// Sinks: event-type globs to deliver; all when empty.
    pub events: Vec<String>,
    /// Sinks: most events per `deliver` call.
    pub batch_size: usize,
    /// The HTTP grant, if any.
    pub http: Option<HttpGrant>,
    /// Most samples one call may return.
    pub max_samples_per_call: usize,
    /// Most bytes of key-value state.
    #[serde(serialize_with = "display")]
    pub state_quota: ByteSize,
    /// Log lines per second.
    pub log_lines_per_second: u32,
    /// The `[config]` table, as JSON.
    #[serde(skip)]
    pub config: serde_json::Value,
}

/// What the `http` capability may reach.
#[derive(Debug, Clone, Serialize)]
pub struct HttpGrant {
    /// Allowed `host[:port]` patterns.
    pub allow: Vec<HostPattern>,
    /// Longest request.
    #[serde(with = "units::duration")]
    pub timeout: Duration,
    /// Largest response body.
    #[serde(serialize_with = "display")]
    pub max_response_bytes: ByteSize,
}

/// `host`, `host:port`, `*.domain`, `[::1]:port` or `*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPattern {
    /// Lower-case host; a leading `*.` matches any subdomain; `*` matches any host.
    pub host: String,
    /// The port, when given; otherwise any port.
    pub port: Option<u16>,
}

impl Serialize for HostPattern {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        match self.port {
            Some(port) => write!(f, "{host}:{port}"),
            None => f.write_str(&host),
        }
    }
}

impl HostPattern {
    /// Parses one `allow` entry.
    pub fn parse(text: &str) -> Result<HostPattern, String> {
        let text = text.trim().to_ascii_lowercase();
        if text.is_empty() {
            return Err("empty host".into());
        }
        if text.contains("://") || text.contains('/') {
            return Err(format!("{text:?}: give a host or host:port, not a URL"));
        }
        let (host, port) = if let Some(rest) = text.strip_prefix('[') {
            let (host, after) = rest
                .split_once(']')
                .ok_or_else(|| format!("{text:?}: unclosed '['"))?;
            let port = match after.strip_prefix(':') {
                Some(p) => Some(p),
                None if after.is_empty() => None,
                None => return Err(format!("{text:?}: unexpected {after:?} after ']'")),
            };
            (host.to_string(), port)
        } else {
            match text.rsplit_once(':') {
                Some((h, p)) if !h.contains(':') => (h.to_string(), Some(p)),
                _ => (text.clone(), None),
            }
        };
        let port = match port {
            Some(p) => Some(
                p.parse::<u16>()
                    .map_err(|_| format!("{text:?}: invalid port {p:?}"))?,
            ),
            None => None,
        };
        let name = host.strip_prefix("*.").unwrap_or(&host);
        let valid = host == "*"
            || (!name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '_')));
        if !valid {
            return Err(format!("{text:?}: invalid host"));
        }
        Ok(HostPattern { host, port })
    }

    /// Whether a request to `host:port` is allowed by this pattern.
    pub fn matches(&self, host: &str, port: u16) -> bool {
        if self.port.is_some_and(|p| p != port) {
            return false;
        }
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase();
        match self.host.strip_prefix("*.") {
            _ if self.host == "*" => true,
            Some(domain) => {
                host.len() > domain.len()
                    && host.ends_with(domain)
                    && host[..host.len() - domain.len()].ends_with('.')
            }
            None => host == self.host,
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    kind: Option<PluginKind>,
    #[serde(default, with = "units::duration_opt")]
    interval: Option<Duration>,
    #[serde(default, with = "units::duration_opt")]
    timeout: Option<Duration>,
    memory_limit: Option<ByteSize>,
    max_restarts: Option<u32>,
    #[serde(default, deserialize_with = "units::flag")]
    critical: bool,
    max_series: Option<usize>,
    #[serde(default)]
    select: Vec<String>,
    #[serde(default, rename = "for", with = "units::duration_opt")]
    for_duration: Option<Duration>,
    #[serde(default)]
    events: Vec<String>,
    batch_size: Option<usize>,
    max_samples_per_call: Option<usize>,
    state_quota: Option<ByteSize>,
    log_lines_per_second: Option<u32>,
    #[serde(default)]
    capabilities: RawCapabilities,
    #[serde(default)]
    config: toml::Table,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawCapabilities {
    http: Option<RawHttp>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    allow: Vec<String>,
    #[serde(default, with = "units::duration_opt")]
    timeout: Option<Duration>,
    max_response_bytes: Option<ByteSize>,
}

/// Default timeout of one HTTP request.
const HTTP_TIMEOUT: Duration = Duration::from_secs(5);
/// Default response-size cap.
const HTTP_MAX_RESPONSE: ByteSize = ByteSize(1024 * 1024);
/// Smallest memory limit that can run a component at all.
const MIN_MEMORY: ByteSize = ByteSize(1024 * 1024);

impl Manifest {
    /// The manifest of a plugin without a `NAME.toml`.
    pub fn defaults(defaults: &PluginDefaults, max_series: usize) -> Manifest {
        // An empty document always parses; fall back to literal defaults regardless.
        Manifest::parse("", defaults, max_series).unwrap_or_else(|_| Manifest {
            kind: None,
            interval: defaults.interval,
            timeout: defaults.timeout,
            memory_limit: defaults.memory_limit,
            max_restarts: defaults.max_restarts,
            critical: false,
            max_series,
            select: Vec::new(),
            for_duration: Duration::ZERO,
            events: Vec::new(),
            batch_size: 100,
            http: None,
            max_samples_per_call: defaults.max_samples_per_call,
            state_quota: defaults.state_quota,
            log_lines_per_second: defaults.log_lines_per_second,
            config: serde_json::Value::Object(serde_json::Map::new()),
        })
    }

    /// Parses a manifest's text; errors name the key.
    pub fn parse(text: &str, defaults: &PluginDefaults, max_series: usize) -> Result<Manifest> {
        let de = toml::de::Deserializer::parse(text)
            .map_err(|e| anyhow::anyhow!("{}", e.to_string().trim()))?;
        let raw: RawManifest = serde_path_to_error::deserialize(de).map_err(|e| {
            anyhow::anyhow!(
                "invalid value for `{}`: {}",
                e.path(),
                e.inner().to_string().trim()
            )
        })?;
        let http = match raw.capabilities.http {
            Some(h) => {
                let mut allow = Vec::with_capacity(h.allow.len());
                for (i, entry) in h.allow.iter().enumerate() {
                    allow.push(HostPattern::parse(entry).map_err(|e| {
                        anyhow::anyhow!("invalid value for `capabilities.http.allow[{i}]`: {e}")
                    })?);
                }
                Some(HttpGrant {
                    allow,
                    timeout: h.timeout.unwrap_or(HTTP_TIMEOUT),
                    max_response_bytes: h.max_response_bytes.unwrap_or(HTTP_MAX_RESPONSE),
                })
            }
            None => None,
        };
        let config = serde_json::to_value(&raw.config)
            .map_err(|e| anyhow::anyhow!("invalid value for `config`: {e}"))?;
        let manifest = Manifest {
            kind: raw.kind,
            interval: raw.interval.unwrap_or(defaults.interval),
            timeout: raw.timeout.unwrap_or(defaults.timeout),
            memory_limit: raw.memory_limit.unwrap_or(defaults.memory_limit),
            max_restarts: raw.max_restarts.unwrap_or(defaults.max_restarts),
            critical: raw.critical,
            max_series: raw.max_series.unwrap_or(max_series),
            select: raw.select,
            for_duration: raw.for_duration.unwrap_or(Duration::ZERO),
            events: raw.events,
            batch_size: raw.batch_size.unwrap_or(100),
            http,
            max_samples_per_call: raw
                .max_samples_per_call
                .unwrap_or(defaults.max_samples_per_call),
            state_quota: raw.state_quota.unwrap_or(defaults.state_quota),
            log_lines_per_second: raw
                .log_lines_per_second
                .unwrap_or(defaults.log_lines_per_second),
            config,
        };
        manifest.validate()?;
        Ok(manifest)
    }

    fn validate(&self) -> Result<()> {
        if self.interval.is_zero() {
            bail!("invalid value for `interval`: must be greater than zero");
        }
        if self.timeout.is_zero() {
            bail!("invalid value for `timeout`: must be greater than zero");
        }
        if self.memory_limit < MIN_MEMORY {
            bail!(
                "invalid value for `memory_limit`: {} is below the minimum of {MIN_MEMORY}",
                self.memory_limit
            );
        }
        if !(1..=10_000).contains(&self.batch_size) {
            bail!("invalid value for `batch_size`: must be between 1 and 10000");
        }
        if self.max_series == 0 {
            bail!("invalid value for `max_series`: must be greater than zero");
        }
        if let Some(i) = self.select.iter().position(|s| s.trim().is_empty()) {
            bail!("invalid value for `select[{i}]`: empty selector");
        }
        if let Some(i) = self.events.iter().position(|s| s.trim().is_empty()) {
            bail!("invalid value for `events[{i}]`: empty pattern");
        }
        if let Some(kind) = self.kind {
            let misplaced = match kind {
                PluginKind::Collector => [
                    ("select", !self.select.is_empty()),
                    ("events", !self.events.is_empty()),
                ],
                PluginKind::Rule => [("events", !self.events.is_empty()), ("", false)],
                PluginKind::Sink => [("select", !self.select.is_empty()), ("", false)],
            };
            if let Some((key, _)) = misplaced.iter().find(|(_, set)| *set) {
                bail!("invalid key `{key}`: it does not apply to a {kind}");
            }
        }
        Ok(())
    }

    /// Whether a sink with this manifest receives events of `event_type`.
    pub fn wants_event(&self, event_type: &str) -> bool {
        self.events.is_empty() || self.events.iter().any(|p| glob_match(p, event_type))
    }
}

/// `*` matches any run of characters; everything else matches itself.
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let mut parts = pattern.split('*');
    let Some(first) = parts.next() else {
        return text.is_empty();
    };
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    for (i, part) in parts.iter().enumerate() {
        if i == parts.len() - 1 {
            return rest.ends_with(part);
        }
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.is_empty()
}

fn display<T: fmt::Display, S: serde::Serializer>(value: &T, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Manifest> {
        Manifest::parse(text, &PluginDefaults::default(), 1000)
    }

    #[track_caller]
    fn check_err(text: &str, expect: &str) {
        let err = format!("{:#}", parse(text).unwrap_err());
        assert!(err.contains(expect), "{err:?} does not contain {expect:?}");
    }

    #[test]
    fn empty_manifest_takes_the_defaults() {
        let m = parse("").unwrap();
        assert_eq!(m.interval, Duration::from_secs(5));
        assert_eq!(m.timeout, Duration::from_secs(2));
        assert_eq!(m.max_series, 1000);
        assert!(m.http.is_none());
        assert_eq!(m.config, serde_json::json!({}));
    }

    #[test]
    fn full_manifest() {
        let m = parse(
            r#"
            kind = "rule"
            interval = "10s"
            timeout = 1.5
            memory_limit = "16MiB"
            for = "30s"
            select = ["probe_*"]
            [capabilities.http]
            allow = ["127.0.0.1:8080", "*.example.org"]
            [config]
            checks = [{ name = "disk", warn = 0.8 }]
            "#,
        )
        .unwrap();
        assert_eq!(m.kind, Some(PluginKind::Rule));
        assert_eq!(m.timeout, Duration::from_millis(1500));
        assert_eq!(m.memory_limit, ByteSize(16 << 20));
        assert_eq!(m.for_duration, Duration::from_secs(30));
        let http = m.http.unwrap();
        assert_eq!(http.allow.len(), 2);
        assert_eq!(m.config["checks"][0]["warn"], serde_json::json!(0.8));
    }

    #[test]
    fn errors_name_the_key() {
        check_err("interval = \"often\"", "`interval`");
        check_err("colour = 1", "unknown field `colour`");
        check_err(
            "[capabilities.http]\nallow = [\"http://x/y\"]",
            "`capabilities.http.allow[0]`",
        );
        check_err(
            "[capabilities.redis]\nurl = \"redis://x\"",
            "unknown field `redis`",
        );
        check_err("memory_limit = \"1KiB\"", "`memory_limit`");
        check_err("kind = \"collector\"\nselect = [\"x\"]", "`select`");
        check_err("kind = \"gadget\"", "`kind`");
        check_err("interval = [", "");
    }

    #[test]
    fn host_patterns() {
        let p = |s: &str| HostPattern::parse(s).unwrap();
        assert!(p("127.0.0.1:8080").matches("127.0.0.1", 8080));
        assert!(!p("127.0.0.1:8080").matches("127.0.0.1", 8081));
        assert!(p("Example.com").matches("example.COM", 443));
        assert!(p("*.example.org").matches("api.example.org", 80));
        assert!(!p("*.example.org").matches("example.org", 80));
        assert!(!p("*.example.org").matches("evilexample.org", 80));
        assert!(p("[::1]:9000").matches("[::1]", 9000));
        assert!(p("*").matches("anything", 1));
        assert!(HostPattern::parse("http://x").is_err());
        assert!(HostPattern::parse("x:99999").is_err());
        assert!(HostPattern::parse("a b").is_err());
    }

    #[test]
    fn globs() {
        assert!(glob_match("alert.*", "alert.firing"));
        assert!(!glob_match("alert.*", "service.down"));
        assert!(glob_match("*", "x"));
        assert!(glob_match("a*c*e", "abcde"));
        assert!(!glob_match("a*c*e", "abcdf"));
        assert!(glob_match("exact", "exact"));
        assert!(!glob_match("exact", "exactly"));
    }
}
