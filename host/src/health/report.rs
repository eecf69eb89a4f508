//! The health document's types: seed 004's shape for `GET
//! /api/system/health/full`, one entry per component.

use crate::plugins::{BreakerState, ErrorInfo, PluginKind, Status};
use serde::Serialize;
use std::collections::BTreeMap;
use utoipa::ToSchema;

/// The host as a whole.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
#[schema(as = HealthStatus)]
pub enum Overall {
    /// Nothing is down.
    Healthy,
    /// A component that is not critical is down.
    Degraded,
    /// A critical component is down.
    Unhealthy,
}

impl Overall {
    /// `healthy`, `degraded` or `unhealthy`.
    pub fn as_str(self) -> &'static str {
        match self {
            Overall::Healthy => "healthy",
            Overall::Degraded => "degraded",
            Overall::Unhealthy => "unhealthy",
        }
    }
}

/// One component.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum ComponentStatus {
    /// Doing its job.
    Healthy,
    /// Down: counts against the host (see `critical`).
    Unhealthy,
    /// Not reporting yet (a sampler before its first run, a plugin loading).
    Starting,
    /// Turned off by the configuration.
    Disabled,
    /// Optional and absent (`gpu.enabled = "auto"` found no driver).
    Unavailable,
}

/// What kind of component.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ComponentKind {
    /// A native sampler.
    Sampler,
    /// A plugin.
    Plugin,
    /// A plugin's data source, behind its circuit breaker.
    DataSource,
    /// A sink behind by more than `sinks.lag_degraded` (never critical).
    Sink,
}

impl ComponentKind {
    fn word(self) -> &'static str {
        match self {
            ComponentKind::Sampler => "sampler",
            ComponentKind::Plugin => "plugin",
            ComponentKind::DataSource => "data source",
            ComponentKind::Sink => "sink",
        }
    }
}

/// A component that is down.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
#[schema(as = DownComponent)]
pub struct Down {
    /// Its kind.
    pub kind: ComponentKind,
    /// Its name (`plugin/source` for a data source).
    pub name: String,
    /// Whether it makes the host unhealthy.
    pub critical: bool,
    /// Why it is down.
    pub reason: String,
}

impl std::fmt::Display for Down {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} ({})", self.kind.word(), self.name, self.reason)
    }
}

/// A native sampler.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SamplerHealth {
    /// `system` or `gpu`.
    pub name: String,
    /// `healthy`, `unhealthy`, `starting`, `disabled` or `unavailable`.
    pub status: ComponentStatus,
    /// Whether its being down makes the host unhealthy
    /// (`sampling.critical`, `gpu.critical`).
    pub critical: bool,
    /// In words.
    pub message: String,
    /// When it last ran (RFC 3339).
    pub last_run: Option<String>,
    /// When it last read something (RFC 3339).
    pub last_sample: Option<String>,
    /// Why it is not up.
    pub error: Option<String>,
}

/// A plugin.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PluginHealth {
    /// Its name.
    pub name: String,
    /// `healthy` (running), `starting` (loading) or `unhealthy` (any other
    /// plugin status).
    pub status: ComponentStatus,
    /// Its manifest's `critical`.
    pub critical: bool,
    /// In words.
    pub message: String,
    /// Its world, once known.
    pub kind: Option<PluginKind>,
    /// Its plugin status: `loading`, `running`, `crashed`, `restarting`,
    /// `failed`, `invalid`, `stopped`.
    pub plugin_status: Status,
    /// The serving generation (0 before the first load).
    pub generation: u64,
    /// Calls that faulted.
    pub faults: u64,
    /// Faults in a row.
    pub consecutive_faults: u32,
    /// Restarts after faults.
    pub restarts: u64,
    /// The last fault or error.
    pub last_error: Option<ErrorInfo>,
}

/// A plugin's data source and its circuit breaker.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct DataSourceHealth {
    /// `plugin/source`.
    pub name: String,
    /// `healthy` while its breaker is closed, else `unhealthy`.
    pub status: ComponentStatus,
    /// Its plugin's `critical`.
    pub critical: bool,
    /// In words.
    pub message: String,
    /// The plugin.
    pub plugin: String,
    /// `redis`, `rabbitmq`, `sql`, `storage` or `collect`.
    pub source: String,
    /// `closed`, `half_open` or `open`.
    pub circuit_state: BreakerState,
    /// Consecutive failures.
    pub failure_count: u32,
    /// The last failure's error.
    pub error: Option<String>,
    /// When the last failure happened (RFC 3339).
    pub last_failure_at: Option<String>,
}

/// The event log that feeds the sinks; never down.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EventLogHealth {
    /// `event_log`.
    pub name: String,
    /// Always `healthy`.
    pub status: ComponentStatus,
    /// Always `false`.
    pub critical: bool,
    /// In words.
    pub message: String,
    /// Events it holds.
    pub events: usize,
    /// Events evicted before every sink read them, since the start
    /// (`wasmon_event_log_dropped_total`).
    pub dropped_total: u64,
}

/// A sink plugin's delivery; counted once, as its plugin.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SinkHealth {
    /// The sink plugin.
    pub name: String,
    /// Its plugin's component status.
    pub status: ComponentStatus,
    /// Its plugin's `critical`.
    pub critical: bool,
    /// In words.
    pub message: String,
    /// Events it has yet to acknowledge (`wasmon_sink_backlog_events`).
    pub backlog_events: u64,
    /// Age in seconds of the oldest event it has yet to acknowledge; 0 when
    /// none waits.
    pub lag_seconds: f64,
}

/// Seed 004's circuit breaker summary.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct BreakerSummary {
    /// Breakers.
    pub total: usize,
    /// Of which open.
    pub open: usize,
    /// Of which half-open.
    pub half_open: usize,
    /// Of which closed.
    pub closed: usize,
    /// Each breaker's state, by name (`plugin/source`).
    pub breakers: BTreeMap<String, BreakerState>,
}

/// `GET /api/system/health/full`: seed 004's comprehensive health.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(as = HealthReport)]
pub struct Report {
    /// `healthy`, `degraded` (a component that is not critical is down) or
    /// `unhealthy` (a critical one is down: HTTP 503).
    pub status: Overall,
    /// Whether `/readyz` answers 200: the plugin directory was loaded and no
    /// critical component is down.
    pub ready: bool,
    /// In words: `All systems operational`, or what is down.
    pub message: String,
    /// The message again when the host is unhealthy (every error carries a
    /// `detail`); absent otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// The native samplers.
    pub samplers: Vec<SamplerHealth>,
    /// Every plugin.
    pub plugins: Vec<PluginHealth>,
    /// Every plugin data source with a circuit breaker.
    pub data_sources: Vec<DataSourceHealth>,
    /// The event log.
    pub event_log: EventLogHealth,
    /// Every sink plugin's backlog and lag.
    pub sinks: Vec<SinkHealth>,
    /// The circuit breakers in numbers.
    pub circuit_breakers: BreakerSummary,
    /// The components that are down, critical ones first.
    pub down: Vec<Down>,
    /// Plugins still loading their first version (not ready while any is).
    pub loading: Vec<String>,
    /// When this was computed (RFC 3339).
    pub timestamp: String,
    /// The host's version.
    pub version: &'static str,
}
