//! The host's health, computed in one place for `/readyz`, `GET
//! /api/system/health/full` and the `/ws` watcher (`system.health_changed`).
//!
//! Components: the native samplers (`system`, `gpu`), every plugin, each
//! plugin data source with its circuit breaker (`NAME/redis`, ...,
//! `NAME/collect`), the event log and each sink's backlog. A component is
//! **down** when it cannot do its job: a sampler that is enabled and not up
//! (a `gpu` sampler with `gpu.enabled = "auto"` and no driver is
//! `unavailable`, not down), a plugin `crashed`, `restarting`, `failed`,
//! `invalid` or `stopped`, a data source whose breaker is not closed. The
//! event log is never down (its drops are counted); a sink's entry mirrors its
//! plugin and is counted once, as that plugin, except that a running sink
//! whose oldest undelivered event is older than `sinks.lag_degraded` is down
//! (not critical: the host is `degraded`).
//!
//! `critical`: a plugin's manifest key, `sampling.critical` and
//! `gpu.critical` for the samplers (both `false` by default); a data source
//! is as critical as its plugin. The host is `unhealthy` (not ready, HTTP
//! 503) while a critical component is down, `degraded` while another is
//! down, `healthy` otherwise.
//!
//! This module knows no HTTP: [`Report::of`] reads the parts of
//! [`AppState`] and [`assess`] applies the rules to what they say.

mod report;

pub use report::{
    BreakerSummary, ComponentKind, ComponentStatus, DataSourceHealth, Down, EventLogHealth,
    Overall, PluginHealth, Report, SamplerHealth, SinkHealth,
};

use crate::config::{GpuConfig, GpuEnabled, SamplingConfig};
use crate::plugins::{BreakerState, BreakerView, PluginKind, PluginView, Status};
use crate::sampling::SamplerStatus;
use crate::state::AppState;
use std::collections::BTreeMap;

/// What [`assess`] looks at: a snapshot of every part.
pub struct Inputs<'a> {
    /// `[sampling]`.
    pub sampling: &'a SamplingConfig,
    /// `[gpu]`.
    pub gpu: &'a GpuConfig,
    /// Each sampler's last status.
    pub samplers: Vec<SamplerStatus>,
    /// Every plugin ([`PluginHealth::from_view`]).
    pub plugins: Vec<PluginHealth>,
    /// Whether the plugin directory was loaded.
    pub plugins_loaded: bool,
    /// Every breaker.
    pub breakers: Vec<BreakerView>,
    /// Events the event log holds, and how many it dropped.
    pub events: (usize, u64),
    /// Each sink's backlog and the time of its oldest pending event (Unix ms).
    pub sinks: BTreeMap<String, (u64, Option<u64>)>,
    /// `sinks.lag_degraded`: a sink behind by more is down (not critical).
    pub lag_degraded: std::time::Duration,
    /// Unix milliseconds now.
    pub now_ms: u64,
}

impl Report {
    /// The host's health now.
    pub fn of(app: &AppState) -> Report {
        let plugins = app.plugins.list();
        let sinks = plugins
            .iter()
            .filter(|p| p.kind == Some(PluginKind::Sink))
            .map(|p| (p.name.clone(), app.plugins.sink_backlog(&p.name)))
            .collect();
        assess(Inputs {
            sampling: &app.config.sampling,
            gpu: &app.config.gpu,
            samplers: app.samplers.list(),
            plugins: plugins.iter().map(PluginHealth::from_view).collect(),
            plugins_loaded: app.plugins.is_ready(),
            breakers: app.plugins.breakers().list(),
            events: (app.events.len(), app.telemetry.event_log_dropped_total()),
            sinks,
            lag_degraded: app.config.sinks.lag_degraded,
            now_ms: crate::time::now_ms(),
        })
    }

    /// The critical components that are down.
    pub fn critical_down(&self) -> impl Iterator<Item = &Down> {
        self.down.iter().filter(|d| d.critical)
    }
}

/// A plugin status as its API word.
fn status_word(status: Status) -> String {
    serde_json::to_value(status)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

/// Applies the rules to a snapshot.
pub fn assess(inputs: Inputs<'_>) -> Report {
    let mut down = Vec::new();
    let samplers = samplers(&inputs, &mut down);
    let mut critical_plugins = BTreeMap::new();
    for p in &inputs.plugins {
        critical_plugins.insert(p.name.clone(), p.critical);
        if p.status == ComponentStatus::Unhealthy {
            down.push(Down {
                kind: ComponentKind::Plugin,
                name: p.name.clone(),
                critical: p.critical,
                reason: status_word(p.plugin_status),
            });
        }
    }
    let plugins = inputs.plugins;
    let plugin_status: BTreeMap<&str, (ComponentStatus, String)> = plugins
        .iter()
        .map(|p| (p.name.as_str(), (p.status, p.message.clone())))
        .collect();
    let mut summary = BreakerSummary::default();
    let data_sources = inputs
        .breakers
        .iter()
        .map(|b| {
            summary.total += 1;
            match b.state {
                BreakerState::Closed => summary.closed += 1,
                BreakerState::HalfOpen => summary.half_open += 1,
                BreakerState::Open => summary.open += 1,
            }
            summary.breakers.insert(b.name.clone(), b.state);
            let critical = critical_plugins.get(&b.plugin).copied().unwrap_or(false);
            data_source(b, critical, &mut down)
        })
        .collect();
    let sinks = inputs
        .sinks
        .iter()
        .map(|(name, &(backlog, oldest))| {
            let (status, plugin_message) = plugin_status
                .get(name.as_str())
                .cloned()
                .unwrap_or((ComponentStatus::Starting, String::new()));
            let lag_seconds =
                oldest.map_or(0.0, |t| inputs.now_ms.saturating_sub(t) as f64 / 1000.0);
            let limit = inputs.lag_degraded.as_secs_f64();
            if lag_seconds > limit && status != ComponentStatus::Unhealthy {
                down.push(Down {
                    kind: ComponentKind::Sink,
                    name: name.clone(),
                    critical: false,
                    reason: format!(
                        "behind by {lag_seconds:.0}s (sinks.lag_degraded = {limit:.0}s)"
                    ),
                });
            }
            SinkHealth {
                name: name.clone(),
                status,
                critical: critical_plugins.get(name).copied().unwrap_or(false),
                message: format!(
                    "{backlog} events waiting (oldest {lag_seconds:.1}s); {plugin_message}"
                ),
                backlog_events: backlog,
                lag_seconds,
            }
        })
        .collect();
    let (events, dropped_total) = inputs.events;
    let event_log = EventLogHealth {
        name: "event_log".into(),
        status: ComponentStatus::Healthy,
        critical: false,
        message: format!(
            "{events} events held; {dropped_total} dropped before every sink read them"
        ),
        events,
        dropped_total,
    };
    // Critical first, then by kind and name: the order the message names them.
    down.sort_by(|a: &Down, b: &Down| {
        (!a.critical, a.kind, &a.name).cmp(&(!b.critical, b.kind, &b.name))
    });
    let loading: Vec<String> = plugins
        .iter()
        .filter(|p| p.plugin_status == Status::Loading)
        .map(|p| p.name.clone())
        .collect();
    let status = if down.iter().any(|d| d.critical) {
        Overall::Unhealthy
    } else if down.is_empty() {
        Overall::Healthy
    } else {
        Overall::Degraded
    };
    let ready = inputs.plugins_loaded && status != Overall::Unhealthy;
    let message = message(status, &down, inputs.plugins_loaded, &loading);
    Report {
        status,
        ready,
        detail: (status == Overall::Unhealthy).then(|| message.clone()),
        message,
        samplers,
        plugins,
        data_sources,
        event_log,
        sinks,
        circuit_breakers: summary,
        down,
        loading,
        timestamp: crate::time::rfc3339(inputs.now_ms),
        version: env!("CARGO_PKG_VERSION"),
    }
}

fn message(status: Overall, down: &[Down], loaded: bool, loading: &[String]) -> String {
    let list = |critical: bool| {
        down.iter()
            .filter(|d| d.critical == critical)
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut message = match status {
        Overall::Healthy => "All systems operational".to_string(),
        Overall::Degraded => format!("degraded: down (not critical): {}", list(false)),
        Overall::Unhealthy => {
            let mut m = format!("unhealthy: critical components down: {}", list(true));
            if down.iter().any(|d| !d.critical) {
                m.push_str(&format!("; also down (not critical): {}", list(false)));
            }
            m
        }
    };
    if !loaded {
        match loading.len() {
            0 => message.push_str("; plugins are still loading"),
            n => message.push_str(&format!(
                "; {n} plugins are still loading: {}",
                loading.join(", ")
            )),
        }
    }
    message
}

/// The samplers the configuration names, and any other that reported.
fn samplers(inputs: &Inputs<'_>, down: &mut Vec<Down>) -> Vec<SamplerHealth> {
    let mut known: BTreeMap<String, Option<&SamplerStatus>> = BTreeMap::new();
    known.insert("system".into(), None);
    known.insert("gpu".into(), None);
    for s in &inputs.samplers {
        known.insert(s.name.clone(), Some(s));
    }
    known
        .into_iter()
        .map(|(name, status)| {
            let (enabled, critical, optional) = match name.as_str() {
                "system" => (inputs.sampling.enabled, inputs.sampling.critical, false),
                "gpu" => (
                    inputs.gpu.enabled != GpuEnabled::Off,
                    inputs.gpu.critical,
                    inputs.gpu.enabled == GpuEnabled::Auto,
                ),
                _ => (true, false, false),
            };
            let (health, message) = match status {
                _ if !enabled => (
                    ComponentStatus::Disabled,
                    "disabled by its configuration".to_string(),
                ),
                Some(s) if !s.enabled => (
                    ComponentStatus::Disabled,
                    s.reason.clone().unwrap_or_else(|| "disabled".into()),
                ),
                None => (ComponentStatus::Starting, "not run yet".to_string()),
                Some(s) if s.up => (ComponentStatus::Healthy, "up".to_string()),
                Some(s) if optional && !s.available => (
                    ComponentStatus::Unavailable,
                    format!(
                        "unavailable ({}); optional: gpu.enabled = \"auto\"",
                        s.reason.as_deref().unwrap_or("no driver")
                    ),
                ),
                Some(s) => (
                    ComponentStatus::Unhealthy,
                    s.reason.clone().unwrap_or_else(|| "down".into()),
                ),
            };
            if health == ComponentStatus::Unhealthy {
                down.push(Down {
                    kind: ComponentKind::Sampler,
                    name: name.clone(),
                    critical,
                    reason: message.clone(),
                });
            }
            SamplerHealth {
                status: health,
                critical,
                last_run: status.and_then(|s| s.last_run_ms).map(crate::time::rfc3339),
                last_sample: status
                    .and_then(|s| s.last_sample_ms)
                    .map(crate::time::rfc3339),
                error: status
                    .filter(|s| s.enabled && !s.up)
                    .and_then(|s| s.reason.clone()),
                message,
                name,
            }
        })
        .collect()
}

impl PluginHealth {
    /// A plugin's entry from its API view: `running` is healthy, `loading`
    /// starting, any other status down.
    pub fn from_view(p: &PluginView) -> PluginHealth {
        let (status, message) = match p.status {
            Status::Running => (ComponentStatus::Healthy, "running".to_string()),
            Status::Loading => (ComponentStatus::Starting, "loading".to_string()),
            _ => {
                let word = status_word(p.status);
                let why = p
                    .last_error
                    .as_ref()
                    .or(p.last_reload_error.as_ref())
                    .map(|e| format!("{word}: {}", e.message))
                    .unwrap_or(word);
                (ComponentStatus::Unhealthy, why)
            }
        };
        PluginHealth {
            name: p.name.clone(),
            status,
            critical: p.critical,
            message,
            kind: p.kind,
            plugin_status: p.status,
            generation: p.generation,
            faults: p.faults,
            consecutive_faults: p.consecutive_faults,
            restarts: p.restarts,
            last_error: p.last_error.clone(),
        }
    }
}

fn data_source(b: &BreakerView, critical: bool, down: &mut Vec<Down>) -> DataSourceHealth {
    let state = match b.state {
        BreakerState::Closed => "closed",
        BreakerState::HalfOpen => "half_open",
        BreakerState::Open => "open",
    };
    let error = b.last_failure.as_ref().map(|f| f.error.clone());
    let (status, message) = if b.state == BreakerState::Closed {
        (ComponentStatus::Healthy, "circuit closed".to_string())
    } else {
        let why = format!(
            "circuit {state} after {} failures{}",
            b.failure_count,
            error
                .as_deref()
                .map(|e| format!(": {e}"))
                .unwrap_or_default()
        );
        down.push(Down {
            kind: ComponentKind::DataSource,
            name: b.name.clone(),
            critical,
            reason: format!("circuit {state}"),
        });
        (ComponentStatus::Unhealthy, why)
    };
    DataSourceHealth {
        name: b.name.clone(),
        status,
        critical,
        message,
        plugin: b.plugin.clone(),
        source: b.source.clone(),
        circuit_state: b.state,
        failure_count: b.failure_count,
        error,
        last_failure_at: b.last_failure.as_ref().map(|f| f.at.clone()),
    }
}

#[cfg(test)]
mod tests;
