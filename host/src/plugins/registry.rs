//! The plugin registry: one slot per plugin name, holding the generation that
//! serves, the plugin's state (which outlives generations), its status and its
//! counters. Loading and swapping live in `reload`, the per-kind loops in
//! `driver`.

use super::capabilities;
use super::context::GuestOutput;
use super::manifest::{Manifest, PluginKind};
use super::runtime::{Instance, Prepared, Runtime};
use super::state::KvState;
pub use super::supervisor::{ErrorInfo, RestartRecord, Status};
use super::supervisor::{SlotInfo, StoppedSet};
use crate::config::PluginsConfig;
use crate::events::EventLog;
use crate::model::ServiceState;
use crate::rules::AlertManager;
use crate::shutdown::Shutdown;
use crate::store::{SourceId, Store};
use crate::telemetry::Telemetry;
use arc_swap::ArcSwapOption;
use parking_lot::{Mutex, RwLock};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use wasmtime::component::Component;

/// What the plugins need from the rest of the host.
pub struct Deps {
    /// Where collectors' samples go and rules' samples come from.
    pub store: Arc<Store>,
    /// Self-metrics.
    pub telemetry: Arc<Telemetry>,
    /// The alert state machine rules feed.
    pub alerts: Arc<AlertManager>,
    /// The event log sinks read.
    pub events: Arc<EventLog>,
    /// The services known from heartbeats, for rule inputs.
    pub services: Arc<dyn Fn() -> Vec<ServiceState> + Send + Sync>,
    /// Where the host keeps what survives a restart (the stopped plugins);
    /// `None` keeps nothing.
    pub data_dir: Option<std::path::PathBuf>,
    /// `[sinks]`: lag, `Retry-After`, dead-letter bounds.
    pub sinks: crate::config::SinksConfig,
}

/// The plugin manager: a cheap, cloneable handle.
#[derive(Clone)]
pub struct Plugins {
    pub(super) inner: Arc<Inner>,
}

pub(super) struct Inner {
    pub(super) runtime: Runtime,
    pub(super) config: PluginsConfig,
    pub(super) deps: Deps,
    /// The host-wide state of every capability (the `http` capability's
    /// clients and the host's own addresses, ...).
    pub(super) capabilities: capabilities::Shared,
    /// The circuit breakers of every plugin's data sources.
    pub(super) breakers: Arc<super::breaker::Breakers>,
    /// Compilations that may run at once: loads run in parallel, and only
    /// their CPU-heavy part waits here (never behind another plugin's `init`).
    pub(super) compile_permits: tokio::sync::Semaphore,
    pub(super) slots: RwLock<BTreeMap<String, Arc<Slot>>>,
    /// The runtime plugin code runs on, apart from the one serving HTTP.
    pub(super) handle: tokio::runtime::Handle,
    pub(super) shutdown: Shutdown,
    pub(super) ready: AtomicBool,
    /// The plugins an operator stopped (persisted).
    pub(super) stopped: StoppedSet,
    /// The sinks' dead-letter store (persisted).
    pub(super) dead_letters: Arc<crate::events::DeadLetters>,
}

/// One loaded version of a plugin.
pub struct Generation {
    /// Counts loads of this slot, from 1.
    pub number: u64,
    /// SHA-256 of the component, hex.
    pub sha256: String,
    /// Its world.
    pub kind: PluginKind,
    /// Its resolved manifest.
    pub manifest: Manifest,
    pub(super) prepared: Prepared,
    pub(super) env: Arc<super::context::PluginEnv>,
    /// The live instance; `None` after a fault until a restart.
    pub(super) instance: tokio::sync::Mutex<Option<Instance>>,
    pub(super) loaded_at_ms: u64,
}

/// What a slot remembers between loads.
#[derive(Default)]
pub(super) struct LoadMemo {
    /// The inputs of the last load attempt: component hash and manifest text.
    pub(super) inputs: Option<(String, Option<String>)>,
    /// The last compiled component, by hash, so a manifest-only change skips compilation.
    pub(super) compiled: Option<(String, Component)>,
}

/// Everything about one plugin name.
pub struct Slot {
    /// The plugin's name.
    pub name: Arc<str>,
    pub(super) state: Arc<KvState>,
    pub(super) output: GuestOutput,
    pub(super) current: ArcSwapOption<Generation>,
    pub(super) info: Mutex<SlotInfo>,
    pub(super) load_lock: tokio::sync::Mutex<LoadMemo>,
    pub(super) wake: Notify,
    pub(super) driver: Mutex<Option<(PluginKind, tokio::task::JoinHandle<()>)>>,
    pub(super) source: Mutex<Option<SourceId>>,
    /// The generation the driver last ran, so a new one runs at once.
    last_run: AtomicU64,
    /// A rule's shadow version, its load lock and the serving alert history.
    pub(super) shadow: super::shadow::ShadowSlot,
    /// Samples the store refused from the serving generation, if any.
    refused: Mutex<Option<RefusedSamples>>,
}

/// Samples of a collector the store refused (an invalid name, a bad value,
/// a limit), reported once per generation: the first refusal is logged, later
/// ones only counted (`wasmon_plugin_samples_dropped_total{plugin,reason}`).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RefusedSamples {
    /// The generation that returned them.
    pub generation: u64,
    /// Why the first was refused: `invalid_name`, `invalid_label`, ... (the
    /// `reason` of `wasmon_plugin_samples_dropped_total`).
    pub reason: String,
    /// The first refused sample, by name, and why: ``sample `0bad`: metric name starts with a digit``.
    pub first: String,
    /// Samples refused since that generation was loaded.
    pub count: u64,
    /// When the first was refused (RFC 3339).
    pub since: String,
}

impl Slot {
    pub(super) fn new(name: &str, stopped: bool) -> Arc<Slot> {
        Arc::new(Slot {
            name: Arc::from(name),
            state: Arc::new(KvState::new()),
            output: GuestOutput::default(),
            current: ArcSwapOption::empty(),
            info: Mutex::new(SlotInfo::new(stopped)),
            load_lock: tokio::sync::Mutex::new(LoadMemo::default()),
            wake: Notify::new(),
            driver: Mutex::new(None),
            source: Mutex::new(None),
            last_run: AtomicU64::new(0),
            shadow: super::shadow::ShadowSlot::default(),
            refused: Mutex::new(None),
        })
    }

    /// The generation serving now.
    pub fn current(&self) -> Option<Arc<Generation>> {
        self.current.load_full()
    }

    pub(super) fn last_run_generation(&self) -> u64 {
        self.last_run.load(Ordering::Relaxed)
    }

    pub(super) fn set_last_run_generation(&self, generation: u64) {
        self.last_run.store(generation, Ordering::Relaxed);
    }

    /// When a scheduled restart is due, if one is.
    pub(super) fn restart_at(&self) -> Option<Instant> {
        self.info.lock().restart_at()
    }

    /// Whether an operator stopped it.
    pub(super) fn is_stopped(&self) -> bool {
        self.info.lock().is_stopped()
    }

    /// Records what the store did with samples `generation` returned: the
    /// series held, refusals counted by reason, and the first refusal of a
    /// generation logged once (with the plugin and the refused sample's
    /// name) and kept for `/api/plugins`. A generation that stores all its
    /// samples clears an older generation's report.
    pub(super) fn samples_applied(
        &self,
        telemetry: &Telemetry,
        generation: u64,
        report: &crate::store::ApplyReport,
    ) {
        for (reason, count) in &report.dropped {
            telemetry
                .plugin_samples_dropped
                .with_label_values(&[&*self.name, reason.as_str()])
                .inc_by(*count as u64);
        }
        self.info.lock().series = report.stored;
        let dropped = report.dropped_total() as u64;
        let mut refused = self.refused.lock();
        match &mut *refused {
            Some(r) if r.generation == generation => r.count += dropped,
            _ if dropped == 0 => *refused = None,
            _ => {
                let first = report.first_problem.clone().unwrap_or_default();
                let reason = report.dropped.first().map_or("", |(r, _)| r.as_str());
                tracing::warn!(
                    plugin = %self.name,
                    generation,
                    reason,
                    first = %first,
                    refused = dropped,
                    "samples refused by the store: the first is named here, once per generation; every one is counted in wasmon_plugin_samples_dropped_total and /api/plugins/{} shows `refused_samples`",
                    self.name
                );
                *refused = Some(RefusedSamples {
                    generation,
                    reason: reason.to_string(),
                    first,
                    count: dropped,
                    since: crate::time::rfc3339(crate::time::now_ms()),
                });
            }
        }
    }
}

/// What `GET /api/plugins` shows of one plugin.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PluginView {
    /// Its name.
    pub name: String,
    /// Its world, once known.
    pub kind: Option<PluginKind>,
    /// The `wasmon:plugin` WIT version its component was built against.
    pub wit: Option<super::bindings::WitVersion>,
    /// Where it is in its life.
    pub status: Status,
    /// The serving generation (0 before the first load).
    pub generation: u64,
    /// SHA-256 of the serving component.
    pub sha256: Option<String>,
    /// When the serving generation was loaded (RFC 3339).
    pub loaded_at: Option<String>,
    /// The last fault or error.
    pub last_error: Option<ErrorInfo>,
    /// Why the last reload failed while the previous version kept serving.
    pub last_reload_error: Option<ErrorInfo>,
    /// Restart attempts after faults, since it was first loaded.
    pub restarts: u64,
    /// Faults in a row.
    pub consecutive_faults: u32,
    /// Faults in a row that make it `failed`.
    pub max_restarts: Option<u32>,
    /// Milliseconds until a scheduled restart.
    pub next_restart_in_ms: Option<u64>,
    /// Whether its failure makes the host unhealthy.
    pub critical: bool,
    /// Calls made, and how they went.
    pub calls: u64,
    /// Calls that returned an error.
    pub errors: u64,
    /// Calls that faulted.
    pub faults: u64,
    /// Call timings.
    pub timings: Timings,
    /// Linear memory held by its instance, and its limit.
    pub memory_bytes: u64,
    /// The manifest's memory limit.
    pub memory_limit_bytes: Option<u64>,
    /// Series it holds in the store (collectors).
    pub series: usize,
    /// Samples the store refused from the serving generation (collectors).
    pub refused_samples: Option<RefusedSamples>,
    /// Bytes held by its key-value state.
    pub state_bytes: usize,
    /// Bytes it wrote to stdout/stderr (the tail is kept for fault reports).
    pub output_bytes: u64,
    /// The resolved manifest.
    #[schema(value_type = Option<Object>)]
    pub manifest: Option<Manifest>,
}

/// Call timings in microseconds.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Timings {
    /// The last call.
    pub last_us: u64,
    /// The mean over every call.
    pub mean_us: u64,
    /// The slowest call.
    pub max_us: u64,
    /// When the last call was made (RFC 3339).
    pub last_call_at: Option<String>,
}

impl Slot {
    /// A snapshot for the API.
    pub fn view(&self) -> PluginView {
        let current = self.current();
        let info = self.info.lock();
        let micros = |d: Duration| u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        let mean = micros(info.total_call).checked_div(info.calls).unwrap_or(0);
        PluginView {
            name: self.name.to_string(),
            kind: current.as_ref().map(|g| g.kind),
            wit: current.as_ref().map(|g| g.prepared.version()),
            status: info.status,
            generation: info.generation,
            sha256: current.as_ref().map(|g| g.sha256.clone()),
            loaded_at: current
                .as_ref()
                .map(|g| crate::time::rfc3339(g.loaded_at_ms)),
            last_error: info.last_error.clone(),
            last_reload_error: info.last_reload_error.clone(),
            restarts: info.restarts,
            consecutive_faults: info.consecutive_faults,
            max_restarts: current.as_ref().map(|g| g.manifest.max_restarts),
            next_restart_in_ms: match info.status {
                Status::Crashed => info.next_restart.map(|t| {
                    u64::try_from(t.saturating_duration_since(Instant::now()).as_millis())
                        .unwrap_or(u64::MAX)
                }),
                _ => None,
            },
            critical: current.as_ref().is_some_and(|g| g.manifest.critical),
            calls: info.calls,
            errors: info.errors,
            faults: info.faults,
            timings: Timings {
                last_us: micros(info.last_call),
                mean_us: mean,
                max_us: micros(info.max_call),
                last_call_at: info.last_call_at_ms.map(crate::time::rfc3339),
            },
            memory_bytes: info.memory_bytes,
            memory_limit_bytes: current.as_ref().map(|g| g.manifest.memory_limit.0),
            series: info.series,
            refused_samples: self.refused.lock().clone(),
            state_bytes: self.state.bytes(),
            output_bytes: self.output.written(),
            manifest: current.as_ref().map(|g| g.manifest.clone()),
        }
    }

    /// The restart history, oldest first.
    pub fn restart_history(&self) -> Vec<RestartRecord> {
        self.info.lock().restart_history.iter().cloned().collect()
    }
}

/// How many components may compile at once: `plugins.max_concurrent_compiles`,
/// else half the CPUs, at least 1. Compiling a 15 MB Python or JavaScript
/// component is seconds of CPU (each compilation is itself parallel), so a
/// bound keeps the host's other threads served while many plugins load.
fn compile_slots(configured: Option<usize>) -> anyhow::Result<usize> {
    match configured {
        Some(0) => anyhow::bail!(
            "invalid value for `plugins.max_concurrent_compiles`: must be at least 1 (leave it out for half the CPUs)"
        ),
        Some(n) => Ok(n),
        None => Ok(std::thread::available_parallelism()
            .map_or(1, |n| n.get() / 2)
            .max(1)),
    }
}

/// Whether `name` is a valid plugin name: `^[a-zA-Z][a-zA-Z0-9_]*$`, at most 64 characters.
pub fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    name.len() <= 64
        && chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl Plugins {
    /// Creates the manager; nothing is loaded until [`start`](Self::start).
    pub fn new(
        config: PluginsConfig,
        deps: Deps,
        handle: tokio::runtime::Handle,
        shutdown: Shutdown,
    ) -> anyhow::Result<Plugins> {
        let runtime = Runtime::new(config.cache_dir().as_deref(), config.compiler)?;
        let compilations = compile_slots(config.max_concurrent_compiles)?;
        tracing::debug!(
            compiler = config.compiler.resolve().as_str(),
            compilations,
            "plugin runtime ready"
        );
        let breakers = Arc::new(super::breaker::Breakers::new(deps.telemetry.clone()));
        let stopped = StoppedSet::load(deps.data_dir.as_deref())?;
        let dead_letters = Arc::new(crate::events::DeadLetters::open(
            deps.data_dir.as_deref(),
            deps.sinks.dead_letter_max_batches,
            deps.sinks.dead_letter_max_bytes.0,
        )?);
        Ok(Plugins {
            inner: Arc::new(Inner {
                runtime,
                config,
                deps,
                capabilities: capabilities::Shared::new()?,
                breakers,
                compile_permits: tokio::sync::Semaphore::new(compilations),
                slots: RwLock::new(BTreeMap::new()),
                handle,
                shutdown,
                ready: AtomicBool::new(false),
                stopped,
                dead_letters,
            }),
        })
    }

    /// Whether every plugin found at startup has loaded or failed.
    pub fn is_ready(&self) -> bool {
        self.inner.ready.load(Ordering::Acquire)
    }

    /// The plugins whose first version is still loading.
    pub fn loading(&self) -> Vec<String> {
        self.inner
            .slots
            .read()
            .values()
            .filter(|s| s.info.lock().status == Status::Loading)
            .map(|s| s.name.to_string())
            .collect()
    }

    /// Tells the `http` capability where the host's API listens (known once
    /// bound): from then on no plugin may connect to it, except what
    /// `[capabilities.http] self = "read"` grants.
    pub fn set_listening(&self, addr: std::net::SocketAddr) {
        self.inner.capabilities.http.set_listening(addr);
    }

    /// The circuit breakers of the plugins' data sources.
    pub fn breakers(&self) -> &super::breaker::Breakers {
        &self.inner.breakers
    }

    /// Resets the breaker `name` (`plugin/source`) and wakes its plugin, so
    /// a collector held back by it is called at once.
    pub fn reset_breaker(&self, name: &str) -> Option<super::breaker::BreakerView> {
        let view = self.inner.breakers.reset(name)?;
        if let Some(slot) = self.slot(&view.plugin) {
            slot.wake.notify_one();
        }
        Some(view)
    }

    /// Every plugin, by name.
    pub fn list(&self) -> Vec<PluginView> {
        self.inner.slots.read().values().map(|s| s.view()).collect()
    }

    /// One plugin.
    pub fn get(&self, name: &str) -> Option<PluginView> {
        self.slot(name).map(|s| s.view())
    }

    /// One plugin's restart history.
    pub fn restart_history(&self, name: &str) -> Option<Vec<RestartRecord>> {
        self.slot(name).map(|s| s.restart_history())
    }

    /// One plugin's key-value state, sorted by key.
    pub fn state(&self, name: &str) -> Option<Vec<(String, Vec<u8>)>> {
        self.slot(name).map(|s| s.state.entries())
    }

    pub(super) fn slot(&self, name: &str) -> Option<Arc<Slot>> {
        self.inner.slots.read().get(name).cloned()
    }

    /// Runs `task` on the plugin runtime: plugin code (an `init`, a call)
    /// never runs on the HTTP one. `Err` when the task panicked.
    pub(super) async fn on_runtime<T, F>(
        &self,
        task: impl FnOnce(Arc<Inner>) -> F,
    ) -> Result<T, tokio::task::JoinError>
    where
        F: Future<Output = T> + Send + 'static,
        T: Send + 'static,
    {
        self.inner.handle.spawn(task(self.inner.clone())).await
    }

    /// Whether every `critical` plugin is running.
    pub fn critical_failures(&self) -> Vec<String> {
        self.inner
            .slots
            .read()
            .values()
            .filter(|s| s.current().is_some_and(|g| g.manifest.critical))
            .filter(|s| s.info.lock().status != Status::Running)
            .map(|s| s.name.to_string())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compile_slots_default_to_half_the_cpus_and_refuse_zero() {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        assert_eq!(compile_slots(None).unwrap(), (cpus / 2).max(1));
        assert_eq!(compile_slots(Some(3)).unwrap(), 3);
        let error = compile_slots(Some(0)).unwrap_err().to_string();
        assert!(error.contains("plugins.max_concurrent_compiles"), "{error}");
    }

    #[test]
    fn names() {
        for ok in ["a", "http_probe", "Rule2"] {
            assert!(valid_name(ok), "{ok}");
        }
        for bad in ["", "1a", "_a", "a-b", "a.b", "é", &"a".repeat(65)] {
            assert!(!valid_name(bad), "{bad}");
        }
    }
}
