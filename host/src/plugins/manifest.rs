//! A plugin's manifest, `NAME.toml` beside `NAME.wasm`: its limits, schedule,
//! capabilities and `[config]`. Every key is optional; the config file's
//! `[plugins.defaults]` fills the gaps, and no value may exceed its ceiling in
//! `[plugins.limits]` (the manifest is then invalid, with a message naming
//! the key, its value and the ceiling).
//!
//! ```toml
//! kind = "collector"            # checked against the component's exports
//! interval = "10s"              # collectors and rules
//! timeout = "2s"                # time budget of one call
//! init_timeout = "10s"          # time budget of instantiation and init()
//! memory_limit = "32MiB"
//! max_restarts = 5
//! critical = true               # its failure makes /api/health unhealthy
//! max_series = 1000             # collectors
//! select = ["probe_*"]          # rules: which series evaluate() receives
//! for = "30s"                   # rules: how long a condition holds before firing
//! max_alerts = 100              # rules: most active alerts (at most [alerts] max_alerts_per_rule)
//! events = ["alert.*"]          # sinks: which event types it receives
//! batch_size = 100              # sinks
//! tick = "30s"                   # sinks: deliver an empty batch after this long without events
//! breaker_threshold = 5         # consecutive failures that open a source's circuit breaker
//! breaker_backoff = "1s"        # first open period (jittered, doubles per failed trial)
//! breaker_max_backoff = "60s"
//! [capabilities.http]
//! allow = ["127.0.0.1:8080", "*.example.org"]
//! timeout = "5s"
//! max_response_bytes = "1MiB"
//! self = "read"                 # GET/HEAD of the host's /healthz, /readyz, /metrics
//! [capabilities.redis]
//! url = "redis://127.0.0.1:6379/0"   # rediss:// for TLS; user:password@ or password_env
//! timeout = "2s"
//! max_reply_bytes = "1MiB"
//! write = ["XADD"]              # writes granted by name; reads need no grant
//! [capabilities.sql]
//! url = "${PIXCRAWLER_DB_URL:-postgresql://postgres@127.0.0.1:5432/db}"
//! timeout = "5s"                # statement_timeout of each (read-only) query
//! max_rows = 1000
//! ca_file = "/etc/ssl/db-ca.pem"  # TLS verified against this CA (or `?sslmode=require`)
//! [capabilities.sql.queries]
//! active_chunks = "SELECT count(*) FROM chunks WHERE status = $1"
//! [capabilities.files]          # one host directory, `/data` in the guest
//! dir = "data/exports"
//! max_bytes = "100MiB"
//! [capabilities.tcp]            # outbound TCP to these pairs only
//! connect = ["127.0.0.1:10051"]
//! [capabilities.aws]            # the host signs requests with SigV4
//! region = "eu-west-1"
//! services = ["monitoring", "logs"]
//! [config]
//! targets = ["http://127.0.0.1:8080/health"]
//! ```
//!
//! String values may reference environment variables allow-listed by
//! `[plugins] env_allow` as `${VAR}` or `${VAR:-default}` ([`expand`]).

pub use super::capabilities::Grants;
pub use super::capabilities::http::{HostPattern, HttpGrant, SELF_READ_PATHS, SelfAccess};

use crate::config::{PluginDefaults, PluginLimits};
use crate::units::{self, ByteSize};
use anyhow::{Result, bail};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::Duration;

/// Which world a plugin implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
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
    /// Time budget of instantiation and `init`.
    #[serde(with = "units::duration")]
    pub init_timeout: Duration,
    /// Linear memory limit.
    #[serde(serialize_with = "display")]
    pub memory_limit: ByteSize,
    /// Faults in a row before `failed`.
    pub max_restarts: u32,
    /// Whether the plugin's failure makes the host unhealthy.
    pub critical: bool,
    /// Most series a collector may hold (at most `plugins.limits.max_series_per_plugin`).
    pub max_series: usize,
    /// Rules: the series `evaluate` receives.
    pub select: Vec<String>,
    /// Rules: how long a condition must hold before firing.
    #[serde(rename = "for", with = "units::duration")]
    pub for_duration: Duration,
    /// Rules: most active alerts; `[alerts] max_alerts_per_rule` when unset,
    /// and never above it (the alert manager caps it).
    pub max_alerts: Option<usize>,
    /// Sinks: event-type globs to deliver; all when empty.
    pub events: Vec<String>,
    /// Sinks: most events per `deliver` call.
    pub batch_size: usize,
    /// Sinks: when no event was delivered for this long, `deliver` is called
    /// with an empty batch, so a sink that holds state (firing alerts) can
    /// re-send it. `None` (the default): never.
    #[serde(with = "units::duration_opt")]
    pub tick: Option<Duration>,
    /// The capabilities granted (`[capabilities.*]`), each `None` when not granted.
    pub capabilities: Grants,
    /// Most samples one call may return.
    pub max_samples_per_call: usize,
    /// Most bytes of key-value state.
    #[serde(serialize_with = "display")]
    pub state_quota: ByteSize,
    /// Log lines per second.
    pub log_lines_per_second: u32,
    /// Consecutive failures of a data source (or of `collect`) that open its
    /// circuit breaker.
    pub breaker_threshold: u32,
    /// How long a breaker first stays open; doubles on each failed trial.
    #[serde(with = "units::duration")]
    pub breaker_backoff: Duration,
    /// The longest a breaker stays open.
    #[serde(with = "units::duration")]
    pub breaker_max_backoff: Duration,
    /// The `[config]` table, as JSON.
    #[serde(skip)]
    pub config: serde_json::Value,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawManifest {
    kind: Option<PluginKind>,
    #[serde(default, with = "units::duration_opt")]
    interval: Option<Duration>,
    #[serde(default, with = "units::duration_opt")]
    timeout: Option<Duration>,
    #[serde(default, with = "units::duration_opt")]
    init_timeout: Option<Duration>,
    memory_limit: Option<ByteSize>,
    max_restarts: Option<u32>,
    #[serde(default, deserialize_with = "units::flag")]
    critical: bool,
    max_series: Option<usize>,
    #[serde(default)]
    select: Vec<String>,
    #[serde(default, rename = "for", with = "units::duration_opt")]
    for_duration: Option<Duration>,
    max_alerts: Option<usize>,
    #[serde(default)]
    events: Vec<String>,
    batch_size: Option<usize>,
    #[serde(default, with = "units::duration_opt")]
    tick: Option<Duration>,
    max_samples_per_call: Option<usize>,
    state_quota: Option<ByteSize>,
    log_lines_per_second: Option<u32>,
    breaker_threshold: Option<u32>,
    #[serde(default, with = "units::duration_opt")]
    breaker_backoff: Option<Duration>,
    #[serde(default, with = "units::duration_opt")]
    breaker_max_backoff: Option<Duration>,
    #[serde(default)]
    capabilities: super::capabilities::Sections,
    #[serde(default)]
    config: toml::Table,
}

/// Default consecutive failures that open a circuit breaker.
const BREAKER_THRESHOLD: u32 = 5;
/// Default first open period of a breaker.
const BREAKER_BACKOFF: Duration = Duration::from_secs(1);
/// Default longest open period of a breaker.
const BREAKER_MAX_BACKOFF: Duration = Duration::from_secs(60);

/// Smallest memory limit that can run a component at all.
const MIN_MEMORY: ByteSize = ByteSize(1024 * 1024);

impl Manifest {
    /// The manifest of a plugin without a `NAME.toml`.
    pub fn defaults(defaults: &PluginDefaults, limits: &PluginLimits) -> Manifest {
        // An empty document always parses; fall back to literal defaults regardless.
        Manifest::parse("", defaults, limits).unwrap_or_else(|_| Manifest {
            kind: None,
            interval: defaults.interval,
            timeout: defaults.timeout,
            init_timeout: defaults.init_timeout,
            memory_limit: defaults.memory_limit,
            max_restarts: defaults.max_restarts,
            critical: false,
            max_series: limits.max_series_per_plugin,
            select: Vec::new(),
            for_duration: Duration::ZERO,
            max_alerts: None,
            events: Vec::new(),
            batch_size: 100,
            tick: None,
            capabilities: Grants::default(),
            max_samples_per_call: defaults.max_samples_per_call,
            state_quota: defaults.state_quota,
            log_lines_per_second: defaults.log_lines_per_second,
            breaker_threshold: BREAKER_THRESHOLD,
            breaker_backoff: BREAKER_BACKOFF,
            breaker_max_backoff: BREAKER_MAX_BACKOFF,
            config: serde_json::Value::Object(serde_json::Map::new()),
        })
    }

    /// Parses a manifest's text, filling gaps from `defaults` and refusing
    /// values above `limits`; errors name the key. `${VAR}` references may
    /// name the default `[plugins] env_allow` ([`expand::ENV_ALLOW`]).
    pub fn parse(text: &str, defaults: &PluginDefaults, limits: &PluginLimits) -> Result<Manifest> {
        let allow: Vec<String> = expand::ENV_ALLOW.iter().map(|s| s.to_string()).collect();
        Manifest::parse_with_env(text, defaults, limits, &allow, "manifest")
    }

    /// [`Manifest::parse`] with `${VAR}` / `${VAR:-default}` expanded in
    /// string values for the variables `env_allow` matches (see [`expand`]);
    /// each variable used is logged once, by name (never its value), with
    /// `origin` (the manifest's path).
    pub fn parse_with_env(
        text: &str,
        defaults: &PluginDefaults,
        limits: &PluginLimits,
        env_allow: &[String],
        origin: &str,
    ) -> Result<Manifest> {
        let mut table: toml::Table =
            toml::from_str(text).map_err(|e| anyhow::anyhow!("{}", e.to_string().trim()))?;
        if text.contains("${") {
            let lookup = |name: &str| std::env::var(name).ok();
            let done = expand::expand(&mut table, env_allow, &lookup)?;
            log_expansions(origin, &done);
        }
        check_ceilings(&table, limits)?;
        let raw: RawManifest = serde_path_to_error::deserialize(toml::Value::Table(table))
            .map_err(|e| {
                anyhow::anyhow!(
                    "invalid value for `{}`: {}",
                    e.path(),
                    e.inner().to_string().trim()
                )
            })?;
        let capabilities = raw.capabilities.grants()?;
        let config = serde_json::to_value(&raw.config)
            .map_err(|e| anyhow::anyhow!("invalid value for `config`: {e}"))?;
        let manifest = Manifest {
            kind: raw.kind,
            interval: raw.interval.unwrap_or(defaults.interval),
            timeout: raw.timeout.unwrap_or(defaults.timeout),
            init_timeout: raw.init_timeout.unwrap_or(defaults.init_timeout),
            memory_limit: raw.memory_limit.unwrap_or(defaults.memory_limit),
            max_restarts: raw.max_restarts.unwrap_or(defaults.max_restarts),
            critical: raw.critical,
            max_series: raw.max_series.unwrap_or(limits.max_series_per_plugin),
            select: raw.select,
            for_duration: raw.for_duration.unwrap_or(Duration::ZERO),
            max_alerts: raw.max_alerts,
            events: raw.events,
            batch_size: raw.batch_size.unwrap_or(100),
            tick: raw.tick,
            capabilities,
            max_samples_per_call: raw
                .max_samples_per_call
                .unwrap_or(defaults.max_samples_per_call),
            state_quota: raw.state_quota.unwrap_or(defaults.state_quota),
            log_lines_per_second: raw
                .log_lines_per_second
                .unwrap_or(defaults.log_lines_per_second),
            breaker_threshold: raw.breaker_threshold.unwrap_or(BREAKER_THRESHOLD),
            breaker_backoff: raw.breaker_backoff.unwrap_or(BREAKER_BACKOFF),
            breaker_max_backoff: raw.breaker_max_backoff.unwrap_or(BREAKER_MAX_BACKOFF),
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
        if self.init_timeout.is_zero() {
            bail!("invalid value for `init_timeout`: must be greater than zero");
        }
        if self.memory_limit < MIN_MEMORY {
            bail!(
                "invalid value for `memory_limit`: {} is below the minimum of {MIN_MEMORY}",
                self.memory_limit
            );
        }
        if self.tick.is_some_and(|t| t < Duration::from_millis(100)) {
            bail!("invalid value for `tick`: must be at least 100ms");
        }
        if !(1..=10_000).contains(&self.batch_size) {
            bail!("invalid value for `batch_size`: must be between 1 and 10000");
        }
        if self.max_series == 0 {
            bail!("invalid value for `max_series`: must be greater than zero");
        }
        if self.breaker_threshold == 0 {
            bail!("invalid value for `breaker_threshold`: must be greater than zero");
        }
        if self.breaker_backoff.is_zero() || self.breaker_max_backoff < self.breaker_backoff {
            bail!(
                "invalid value for `breaker_max_backoff`: must be at least `breaker_backoff`, which must be greater than zero"
            );
        }
        if self.max_alerts == Some(0) {
            bail!("invalid value for `max_alerts`: must be greater than zero");
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

    /// How this plugin's circuit breakers trip and recover.
    pub fn breaker_settings(&self) -> super::breaker::BreakerSettings {
        super::breaker::BreakerSettings {
            threshold: self.breaker_threshold,
            backoff: self.breaker_backoff,
            max_backoff: self.breaker_max_backoff,
        }
    }

    /// Whether a sink with this manifest receives events of `event_type`.
    pub fn wants_event(&self, event_type: &str) -> bool {
        self.events.is_empty() || self.events.iter().any(|p| glob_match(p, event_type))
    }
}

/// One log line per variable a manifest used: its name, the keys it filled
/// and whether its default was taken; never its value.
fn log_expansions(origin: &str, done: &[expand::Expansion]) {
    let mut seen: Vec<&str> = Vec::new();
    for e in done {
        if seen.contains(&e.variable.as_str()) {
            continue;
        }
        seen.push(&e.variable);
        let uses: Vec<&expand::Expansion> =
            done.iter().filter(|d| d.variable == e.variable).collect();
        let keys: Vec<&str> = uses.iter().map(|d| d.key.as_str()).collect();
        let source = if uses.iter().all(|d| d.from_default) {
            "default"
        } else {
            "environment"
        };
        tracing::info!(
            manifest = origin,
            variable = %e.variable,
            keys = %keys.join(", "),
            source,
            "manifest variable expanded"
        );
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

/// Refuses a key whose value is above its ceiling in `[plugins.limits]`,
/// naming the key, its value as written and the ceiling. Values that do not
/// parse are left to the deserialiser, which names the key too.
fn check_ceilings(table: &toml::Table, limits: &PluginLimits) -> Result<()> {
    let exceeds = |key: &str, ceiling: &str, max: String| {
        let written = match table.get(key) {
            Some(toml::Value::String(text)) => text.clone(),
            Some(other) => other.to_string(),
            None => String::new(),
        };
        anyhow::anyhow!(
            "invalid value for `{key}`: {written} exceeds the host's ceiling `plugins.limits.{ceiling}` ({max})"
        )
    };
    let duration = |key: &str| -> Option<Duration> {
        let value = table.get(key)?.clone();
        units::duration::deserialize(value).ok()
    };
    let size = |key: &str| -> Option<ByteSize> { table.get(key)?.clone().try_into().ok() };
    let text = |d: Duration| humantime::format_duration(d).to_string();
    for (key, ceiling, max) in [
        ("interval", "max_interval", limits.max_interval),
        ("timeout", "max_timeout", limits.max_timeout),
        ("init_timeout", "max_init_timeout", limits.max_init_timeout),
    ] {
        if duration(key).is_some_and(|d| d > max) {
            return Err(exceeds(key, ceiling, text(max)));
        }
    }
    for (key, ceiling, max) in [
        ("memory_limit", "max_memory_limit", limits.max_memory_limit),
        ("state_quota", "max_state_quota", limits.max_state_quota),
    ] {
        if size(key).is_some_and(|s| s > max) {
            return Err(exceeds(key, ceiling, max.to_string()));
        }
    }
    let max_series = limits.max_series_per_plugin;
    if let Some(series) = table.get("max_series").and_then(|v| v.as_integer())
        && u64::try_from(series).is_ok_and(|s| s > max_series as u64)
    {
        return Err(exceeds(
            "max_series",
            "max_series_per_plugin",
            max_series.to_string(),
        ));
    }
    Ok(())
}

pub(crate) fn display<T: fmt::Display, S: serde::Serializer>(
    value: &T,
    s: S,
) -> Result<S::Ok, S::Error> {
    s.collect_str(value)
}

pub mod expand;

#[cfg(test)]
mod reference_test;
#[cfg(test)]
mod tests;
