//! Configuration: a TOML file, then environment overrides, then defaults.
//!
//! Every section and field is documented data with a default, so an empty file
//! (or none at all) is a valid configuration. Environment variables override the
//! file: the seeds' own names (`MONITOR_HOST`, `MONITOR_PORT`,
//! `MONITOR_HEARTBEAT_*`, `MONITORING_GPU_ENABLED`, ...) and, for any key,
//! `WASMON_<SECTION>__<KEY>` (e.g. `WASMON_SAMPLING__INTERVAL=10s`,
//! `WASMON_PLUGINS__DEFAULTS__TIMEOUT=1s`).
//!
//! Errors name the key and where its value came from:
//! `invalid value for `server.port` (from MONITOR_PORT): invalid digit found in string`.

mod amqp;
mod operations;
mod plugins;
mod sampling;
mod server;
mod sinks;
mod storage;
#[cfg(test)]
mod tests;
mod upload;

pub use amqp::{AmqpIngestConfig, SEED_URL_ENV as AMQP_SEED_URL_ENV};
pub use operations::{PrometheusConfig, SnapshotsConfig};
pub use plugins::{AlertsConfig, Compiler, PluginDefaults, PluginLimits, PluginsConfig};
pub use sampling::{GpuConfig, GpuEnabled, SamplingConfig, StoreConfig};
pub use server::{HeartbeatConfig, IngestConfig, LogConfig, LogFormat, ServerConfig};
pub use sinks::SinksConfig;
pub use storage::{Durability, StorageConfig, WhenFull};
pub use upload::{MaxGrants, UploadConfig};

use anyhow::{Context, Result, bail};
use serde::Deserialize;
use std::path::Path;

/// The whole configuration.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// The HTTP server.
    pub server: ServerConfig,
    /// Logging.
    pub log: LogConfig,
    /// Native system sampling (CPU, memory, disks, network).
    pub sampling: SamplingConfig,
    /// GPU sampling through NVML.
    pub gpu: GpuConfig,
    /// The in-memory store of samples.
    pub store: StoreConfig,
    /// The plugin directory and the defaults of every plugin's manifest.
    pub plugins: PluginsConfig,
    /// Alert evaluation.
    pub alerts: AlertsConfig,
    /// The heartbeat watcher.
    pub heartbeat: HeartbeatConfig,
    /// HTTP ingestion of heartbeats and events.
    pub ingest: IngestConfig,
    /// The series behind seed 001's `/metrics/*` snapshot paths.
    pub snapshots: SnapshotsConfig,
    /// The Prometheus server `/api/system/monitoring/*` asks (seed 004).
    pub prometheus: PrometheusConfig,
    /// Delivery to sink plugins: lag, `Retry-After`, dead letters.
    pub sinks: SinksConfig,
    /// The data directory and the durable event log.
    pub storage: StorageConfig,
}

/// Environment variables with names of their own, and the key each sets.
/// A `suffix` is appended to the value (`MONITORING_HISTORY_WINDOW` is in minutes).
const ENV_ALIASES: &[(&str, &str, &str)] = &[
    ("MONITOR_HOST", "server.host", ""),
    ("MONITOR_PORT", "server.port", ""),
    ("MONITOR_HEARTBEAT_ENABLED", "heartbeat.enabled", ""),
    ("MONITOR_HEARTBEAT_TIMEOUT", "heartbeat.timeout", ""),
    (
        "MONITOR_HEARTBEAT_CHECK_INTERVAL",
        "heartbeat.check_interval",
        "",
    ),
    ("MONITOR_INGEST_TOKEN", "ingest.token", ""),
    ("MONITOR_ADMIN_TOKEN", "server.admin_token", ""),
    ("MONITOR_PLUGINS_DIR", "plugins.dir", ""),
    ("MONITORING_POLL_INTERVAL", "sampling.interval", ""),
    ("MONITORING_HISTORY_WINDOW", "store.history_window", "m"),
    ("MONITORING_GPU_ENABLED", "gpu.enabled", ""),
    ("LOG_LEVEL", "log.level", ""),
    ("PROMETHEUS_ENABLED", "prometheus.enabled", ""),
    ("PROMETHEUS_URL", "prometheus.url", ""),
];

/// The prefix of generic overrides: `WASMON_SECTION__KEY`.
const ENV_PREFIX: &str = "WASMON_";

impl Config {
    /// Loads `path` (when given), applies overrides from `env`, and resolves
    /// relative paths against the file's directory.
    pub fn load(
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config> {
        let (mut table, base) = match path {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("failed to read config file {}", path.display()))?;
                let table: toml::Table = toml::from_str(&text)
                    .with_context(|| format!("failed to parse config file {}", path.display()))?;
                (table, path.parent().map(Path::to_path_buf))
            }
            None => (toml::Table::new(), None),
        };
        let overrides = env_overrides(env);
        for (key, var, value) in &overrides {
            set_path(&mut table, key, parse_env_value(value))
                .with_context(|| format!("cannot apply {var} to `{key}`"))?;
        }
        let mut config: Config = serde_path_to_error::deserialize(toml::Value::Table(table))
            .map_err(|e| {
                let key = e.path().to_string();
                let origin = overrides
                    .iter()
                    .find(|(k, _, _)| *k == key)
                    .map(|(_, var, _)| format!(" (from {var})"))
                    .or_else(|| path.map(|p| format!(" (in {})", p.display())))
                    .unwrap_or_default();
                anyhow::anyhow!("invalid value for `{key}`{origin}: {}", e.inner())
            })?;
        if let Some(base) = base {
            if config.plugins.dir.is_relative() {
                config.plugins.dir = base.join(&config.plugins.dir);
            }
            if let Some(cache) = &mut config.plugins.cache_dir
                && cache.is_relative()
            {
                *cache = base.join(&*cache);
            }
        }
        // `server.data_dir` (deprecated, one release) still works when
        // `storage.data_dir` is left at its default.
        if let Some(old) = &config.server.data_dir
            && config.storage.data_dir == StorageConfig::default().data_dir
        {
            config.storage.data_dir = old.clone();
        }
        config.validate()?;
        Ok(config)
    }

    /// Checks what types alone cannot.
    fn validate(&self) -> Result<()> {
        let d = &self.plugins.defaults;
        for (key, value) in [
            ("sampling.interval", self.sampling.interval),
            ("plugins.defaults.interval", d.interval),
            ("plugins.defaults.timeout", d.timeout),
            ("heartbeat.timeout", self.heartbeat.timeout),
            ("heartbeat.check_interval", self.heartbeat.check_interval),
            ("store.history_resolution", self.store.history_resolution),
            (
                "server.header_read_timeout",
                self.server.header_read_timeout,
            ),
            ("server.body_read_timeout", self.server.body_read_timeout),
            ("server.keep_alive_timeout", self.server.keep_alive_timeout),
            ("server.shutdown_timeout", self.server.shutdown_timeout),
            ("server.ws_ping_interval", self.server.ws_ping_interval),
            ("server.ws_idle_timeout", self.server.ws_idle_timeout),
            (
                "server.ws_metrics_interval",
                self.server.ws_metrics_interval,
            ),
            ("ingest.service_ttl", self.ingest.service_ttl),
            ("alerts.backtest.timeout", self.alerts.backtest.timeout),
        ] {
            if value.is_zero() {
                bail!("invalid value for `{key}`: must be greater than zero");
            }
        }
        for (key, value) in [
            ("ingest.max_services", self.ingest.max_services),
            ("ingest.max_label_values", self.ingest.max_label_values),
            ("ingest.max_batch", self.ingest.max_batch),
            ("ingest.max_json_depth", self.ingest.max_json_depth),
            ("ingest.recent_events", self.ingest.recent_events),
            ("server.max_connections", self.server.max_connections),
            ("server.max_ws_clients", self.server.max_ws_clients),
            ("server.ws_queue", self.server.ws_queue),
            ("store.max_series", self.store.max_series),
            ("store.reserved_series", self.store.reserved_series),
            ("store.max_query_points", self.store.max_query_points),
            (
                "alerts.max_alerts_per_rule",
                self.alerts.max_alerts_per_rule,
            ),
            (
                "alerts.backtest.max_points",
                self.alerts.backtest.max_points,
            ),
            ("alerts.backtest.max_steps", self.alerts.backtest.max_steps),
        ] {
            if value == 0 {
                bail!("invalid value for `{key}`: must be greater than zero");
            }
        }
        if d.backoff_max < d.backoff_initial {
            bail!("invalid value for `plugins.defaults.backoff_max`: smaller than backoff_initial");
        }
        self.plugins.validate()?;
        for (i, amqp) in self.ingest.amqp.iter().enumerate() {
            amqp.validate(&format!("ingest.amqp[{i}]"))?;
        }
        self.gpu.validate()?;
        self.prometheus.validate()?;
        self.sinks.validate()?;
        self.storage.validate()?;
        if self.ingest.idempotency_max_keys == 0 || self.ingest.idempotency_window.is_zero() {
            bail!(
                "invalid value for `ingest.idempotency_window`/`ingest.idempotency_max_keys`: must be greater than zero"
            );
        }
        Ok(())
    }
}

/// `(key, variable, value)` for each override found in `env`.
fn env_overrides(env: impl IntoIterator<Item = (String, String)>) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for (var, value) in env {
        if let Some((_, key, suffix)) = ENV_ALIASES.iter().find(|(name, _, _)| *name == var) {
            out.push((key.to_string(), var, format!("{value}{suffix}")));
        } else if let Some(rest) = var.strip_prefix(ENV_PREFIX) {
            // Only `SECTION__KEY` names are overrides: `WASMON_CONFIG` (the
            // file's path) and other `WASMON_*` variables are not.
            if rest.contains("__") {
                let key = rest.to_ascii_lowercase().replace("__", ".");
                out.push((key, var, value));
            }
        }
    }
    // Generic names first, so the seeds' own names win.
    out.sort_by_key(|(_, var, _)| !var.starts_with(ENV_PREFIX));
    out
}

/// An environment value as TOML would read it (`30` a number, `true` a boolean,
/// `[1, 2]` an array), or else as a plain string.
fn parse_env_value(raw: &str) -> toml::Value {
    let wrapped = format!("v = {raw}");
    match toml::from_str::<toml::Table>(&wrapped) {
        Ok(mut t) => t
            .remove("v")
            .unwrap_or_else(|| toml::Value::String(raw.to_string())),
        Err(_) => toml::Value::String(raw.to_string()),
    }
}

/// Sets `a.b.c` in `table`, creating tables on the way.
fn set_path(table: &mut toml::Table, key: &str, value: toml::Value) -> Result<()> {
    let mut parts = key.split('.').peekable();
    let mut current = table;
    while let Some(part) = parts.next() {
        if parts.peek().is_none() {
            current.insert(part.to_string(), value);
            return Ok(());
        }
        let entry = current
            .entry(part.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        current = match entry {
            toml::Value::Table(t) => t,
            _ => bail!("`{part}` is not a table"),
        };
    }
    Ok(())
}
