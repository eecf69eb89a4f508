//! What operators and faults do to a plugin beyond its status: telemetry,
//! live `plugin.*` events, and the stop/start/restart actions (instances,
//! consumers, store sources, the persisted stopped set).

use super::{ErrorInfo, FaultOutcome};
use crate::plugins::PluginKind;
use crate::plugins::fault::Fault;
use crate::plugins::registry::{Generation, Inner, Plugins, Slot};
use crate::plugins::supervisor::RestartRecord;
use serde::Serialize;
use std::sync::Arc;

/// What an operator asked of a plugin, and what came of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    /// Done.
    Done,
    /// Nothing to do (already stopped, already running).
    AlreadyDone,
}

impl Inner {
    /// Publishes a `plugin.*` event for `slot`.
    fn live(
        &self,
        slot: &Slot,
        event: fn(crate::live::PluginData) -> crate::live::Payload,
        error: Option<String>,
    ) {
        self.deps.events.live().plugin(event, || {
            let current = slot.current();
            let kind = current.as_ref().map(|g| g.kind.as_str());
            let info = slot.info.lock();
            crate::live::PluginData::new(
                &slot.name,
                kind,
                info.generation,
                info.status.as_str(),
                error,
            )
        });
    }

    /// Records a fault of `generation` (ignored if a newer one serves or the
    /// plugin is stopped) and schedules a restart with capped exponential
    /// backoff, or gives up.
    pub(in crate::plugins) fn on_fault(&self, slot: &Slot, generation: &Generation, fault: &Fault) {
        let telemetry = &self.deps.telemetry;
        telemetry
            .plugin_faults
            .with_label_values(&[&*slot.name, fault.reason()])
            .inc();
        let outcome = slot.info.lock().fault(
            generation.number,
            generation.manifest.max_restarts,
            &self.config,
            fault,
        );
        let Some(outcome) = outcome else {
            return;
        };
        telemetry
            .plugin_up
            .with_label_values(&[&*slot.name, generation.kind.as_str()])
            .set(0);
        let error = Some(fault.to_string());
        match outcome {
            FaultOutcome::Failed => {
                tracing::error!(plugin = %slot.name, reason = fault.reason(), error = %fault, max_restarts = generation.manifest.max_restarts, "plugin failed: too many faults in a row; reset or replace it");
                self.live(slot, crate::live::Payload::PluginFailed, error);
            }
            FaultOutcome::Crashed(delay) => {
                tracing::warn!(plugin = %slot.name, reason = fault.reason(), error = %fault, restart_in = ?delay, "plugin crashed");
                self.live(slot, crate::live::Payload::PluginFaulted, error);
            }
        }
    }

    /// Whether a restart of `generation` is due now (it is then `restarting`).
    pub(in crate::plugins) fn restart_due(&self, slot: &Slot, generation: &Generation) -> bool {
        let due = slot.info.lock().begin_restart(generation.number);
        if due {
            self.deps
                .telemetry
                .plugin_restarts
                .with_label_values(&[&*slot.name])
                .inc();
        }
        due
    }

    /// A restart of `generation` worked; `manual` for an operator's start or restart.
    pub(in crate::plugins) fn on_restarted(
        &self,
        slot: &Slot,
        generation: &Generation,
        manual: Option<&str>,
    ) {
        self.deps
            .telemetry
            .plugin_up
            .with_label_values(&[&*slot.name, generation.kind.as_str()])
            .set(1);
        let restarts = {
            let mut info = slot.info.lock();
            info.restarted(manual.is_some());
            info.restarts
        };
        let event = match manual {
            Some(action) => {
                tracing::info!(plugin = %slot.name, action, "plugin started by an operator");
                if action == "start" {
                    crate::live::Payload::PluginStarted
                } else {
                    crate::live::Payload::PluginRestarted
                }
            }
            None => {
                tracing::info!(plugin = %slot.name, restarts, "plugin restarted");
                crate::live::Payload::PluginRestarted
            }
        };
        self.live(slot, event, None);
    }

    /// A load of `slot` failed; the generation serving, if any, keeps serving.
    pub(in crate::plugins) fn on_load_failed(&self, slot: &Slot, kept: Option<u64>, message: &str) {
        slot.info
            .lock()
            .load_failed(kept.is_some(), ErrorInfo::new("load", message));
        if kept.is_some() {
            tracing::warn!(plugin = %slot.name, error = %message, "reload failed; the previous version keeps serving");
        } else {
            tracing::error!(plugin = %slot.name, error = %message, "plugin could not be loaded");
        }
        self.live(
            slot,
            crate::live::Payload::PluginLoadFailed,
            Some(message.to_string()),
        );
    }

    /// A new instance of the serving generation, for an operator's start or
    /// restart; the caller holds the slot's load lock.
    async fn fresh_instance(&self, slot: &Arc<Slot>, action: &'static str) {
        let Some(generation) = slot.current() else {
            slot.info.lock().start_unloaded();
            return;
        };
        slot.info.lock().begin_manual(action);
        let mut instance = generation.instance.lock().await;
        *instance = None;
        match self
            .runtime
            .instantiate(&generation.prepared, generation.env.clone())
            .await
        {
            Ok(new) => {
                *instance = Some(new);
                drop(instance);
                self.on_restarted(slot, &generation, Some(action));
            }
            Err(error) => {
                drop(instance);
                self.on_fault(slot, &generation, &super::start_fault(error));
            }
        }
        slot.wake.notify_one();
    }

    async fn stop(self: &Arc<Self>, slot: &Arc<Slot>) -> anyhow::Result<Control> {
        let _load = slot.load_lock.lock().await;
        if !slot.info.lock().stop() {
            return Ok(Control::AlreadyDone);
        }
        self.stopped.set(&slot.name, true)?;
        if let Some(generation) = slot.current() {
            crate::plugins::consume::stop(&generation);
            self.detach(slot, generation.kind);
            self.deps
                .telemetry
                .plugin_up
                .with_label_values(&[&*slot.name, generation.kind.as_str()])
                .set(0);
            // Waits for the call in flight, if any, then drops the instance.
            *generation.instance.lock().await = None;
        }
        tracing::info!(plugin = %slot.name, "plugin stopped by an operator");
        self.live(slot, crate::live::Payload::PluginStopped, None);
        slot.wake.notify_one();
        Ok(Control::Done)
    }

    async fn start(self: &Arc<Self>, slot: &Arc<Slot>) -> anyhow::Result<Control> {
        let _load = slot.load_lock.lock().await;
        if !slot.info.lock().is_stopped() {
            return Ok(Control::AlreadyDone);
        }
        self.stopped.set(&slot.name, false)?;
        if let Some(generation) = slot.current() {
            self.attach(slot, &generation);
        }
        self.fresh_instance(slot, "start").await;
        Ok(Control::Done)
    }

    async fn restart(self: &Arc<Self>, slot: &Arc<Slot>) -> anyhow::Result<Control> {
        if slot.info.lock().is_stopped() {
            return self.start(slot).await;
        }
        let _load = slot.load_lock.lock().await;
        self.fresh_instance(slot, "restart").await;
        Ok(Control::Done)
    }
}

/// An operator's action on one plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Stop it: not called, consumers stopped, series gone stale.
    Stop,
    /// Start it again (a new instance, its state kept).
    Start,
    /// A new instance now (a stopped plugin is started).
    Restart,
}

/// One restart record of some plugin.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct WorkerRecord {
    /// The plugin.
    pub worker_name: String,
    /// The record.
    #[serde(flatten)]
    pub record: RestartRecord,
}

/// When a plugin last started serving and last faulted (RFC 3339).
#[derive(Debug, Clone, Default)]
pub struct WorkerTimes {
    /// A load, a restart or a start.
    pub last_started_at: Option<String>,
    /// A fault.
    pub last_crashed_at: Option<String>,
}

impl Plugins {
    /// When `name` last started serving and last faulted.
    pub fn worker_times(&self, name: &str) -> Option<WorkerTimes> {
        let slot = self.slot(name)?;
        let info = slot.info.lock();
        Some(WorkerTimes {
            last_started_at: info.started_at_ms.map(crate::time::rfc3339),
            last_crashed_at: info.crashed_at_ms.map(crate::time::rfc3339),
        })
    }

    /// Stops, starts or restarts `name`; `None` when there is no such plugin.
    pub async fn control(&self, name: &str, action: Action) -> Option<anyhow::Result<Control>> {
        let slot = self.slot(name)?;
        let task = self.on_runtime(move |inner| async move {
            match action {
                Action::Stop => inner.stop(&slot).await,
                Action::Start => inner.start(&slot).await,
                Action::Restart => inner.restart(&slot).await,
            }
        });
        Some(match task.await {
            Ok(result) => result,
            Err(e) => Err(anyhow::anyhow!("the supervisor task failed: {e}")),
        })
    }

    /// Resets a plugin's faults and restarts it now (a `failed` plugin gets another chance).
    pub fn reset(&self, name: &str) -> Option<crate::plugins::PluginView> {
        let slot = self.slot(name)?;
        slot.info.lock().reset();
        tracing::info!(plugin = name, "plugin reset");
        slot.wake.notify_one();
        Some(slot.view())
    }

    /// Every plugin's restart history, newest first, optionally of one plugin.
    pub fn restart_history_all(&self, name: Option<&str>) -> Vec<WorkerRecord> {
        let slots: Vec<_> = self.inner.slots.read().values().cloned().collect();
        let mut all: Vec<WorkerRecord> = slots
            .iter()
            .filter(|s| name.is_none_or(|n| *s.name == *n))
            .flat_map(|s| {
                s.restart_history().into_iter().map(|record| WorkerRecord {
                    worker_name: s.name.to_string(),
                    record,
                })
            })
            .collect();
        all.sort_by_key(|r| std::cmp::Reverse(r.record.seq));
        all
    }
}

impl Inner {
    /// What a started plugin gets back: a collector's place in the store and
    /// its queue consumers.
    fn attach(self: &Arc<Self>, slot: &Arc<Slot>, generation: &Arc<Generation>) {
        if generation.kind == PluginKind::Collector {
            self.attach_source(slot, &generation.manifest);
        }
        crate::plugins::consume::swapped(self, slot, Some(generation), None);
    }

    /// What a stopped plugin lets go: a collector's series go stale as when it
    /// is deleted, a rule's alerts resolve. A sink keeps its cursor, so it
    /// resumes where it stopped.
    fn detach(&self, slot: &Slot, kind: PluginKind) {
        if kind != PluginKind::Sink {
            self.retire(slot, kind);
        }
    }
}
