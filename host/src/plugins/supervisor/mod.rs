//! Plugin supervision, in one place: the status state machine of a slot
//! (loading → running → crashed → restarting → running, or → failed after
//! `max_restarts` faults in a row; `stopped` by an operator; `invalid` when no
//! version loads), its restart history, and the live `plugin.*` events of
//! those transitions. Loads (`reload`), the per-kind loops (`driver`) and the
//! HTTP API only call the methods here; none changes a status by hand.
//!
//! The stopped set is persisted (`stopped.json` in the data directory,
//! written atomically), so a stopped plugin stays stopped across hot reloads
//! and host restarts.

mod control;
mod stopped;

pub use control::{Action, Control, WorkerRecord, WorkerTimes};
pub(super) use stopped::StoppedSet;

use super::fault::Fault;
use super::runtime::CallError;
use crate::config::PluginsConfig;
use serde::Serialize;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Where a plugin is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Its first version is being loaded.
    Loading,
    /// Serving.
    Running,
    /// Faulted; a restart is scheduled.
    Crashed,
    /// Being restarted.
    Restarting,
    /// Faulted more than `max_restarts` times in a row; waits for a reset or a new version.
    Failed,
    /// No version of it could be loaded (see `last_error`).
    Invalid,
    /// Stopped by an operator: not called until started again.
    Stopped,
}

impl Status {
    /// The status as a word (`running`, `stopped`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Loading => "loading",
            Status::Running => "running",
            Status::Crashed => "crashed",
            Status::Restarting => "restarting",
            Status::Failed => "failed",
            Status::Invalid => "invalid",
            Status::Stopped => "stopped",
        }
    }
}

/// An error, when it happened and of what kind.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub struct ErrorInfo {
    /// `timeout`, `memory`, `trap`, `output`, `capability`, `init`, `error` (the
    /// plugin returned one), `delivery`, or `load`.
    pub kind: String,
    /// What happened.
    pub message: String,
    /// When (RFC 3339).
    pub at: String,
}

impl ErrorInfo {
    pub(super) fn new(kind: &str, message: impl Into<String>) -> Self {
        ErrorInfo {
            kind: kind.to_string(),
            message: message.into(),
            at: crate::time::rfc3339(crate::time::now_ms()),
        }
    }
}

/// One entry of a plugin's restart history.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct RestartRecord {
    /// When (RFC 3339).
    pub timestamp: String,
    /// Consecutive faults at that moment.
    pub attempt: u32,
    /// `crashed`, `success`, `failed`, `manual`.
    pub status: &'static str,
    /// The fault, for `crashed` and `failed`.
    pub error: Option<String>,
    /// For `manual` entries: `stop`, `start`, `restart` or `reset`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<&'static str>,
    /// Orders entries of every plugin (newest has the highest).
    #[serde(skip)]
    pub(super) seq: u64,
}

/// Orders restart records across plugins.
static RESTART_SEQ: AtomicU64 = AtomicU64::new(0);

/// Most restart records kept per plugin.
const RESTART_HISTORY: usize = 100;

/// A slot's status and counters.
#[derive(Debug)]
pub(super) struct SlotInfo {
    pub(super) status: Status,
    pub(super) generation: u64,
    pub(super) last_error: Option<ErrorInfo>,
    pub(super) last_reload_error: Option<ErrorInfo>,
    pub(super) restarts: u64,
    pub(super) consecutive_faults: u32,
    pub(super) next_restart: Option<Instant>,
    pub(super) healthy_since: Option<Instant>,
    pub(super) calls: u64,
    pub(super) errors: u64,
    pub(super) faults: u64,
    pub(super) total_call: Duration,
    pub(super) last_call: Duration,
    pub(super) max_call: Duration,
    pub(super) last_call_at_ms: Option<u64>,
    pub(super) memory_bytes: u64,
    pub(super) series: usize,
    pub(super) started_at_ms: Option<u64>,
    pub(super) crashed_at_ms: Option<u64>,
    pub(super) restart_history: VecDeque<RestartRecord>,
}

/// What a fault did to a slot.
pub(super) enum FaultOutcome {
    /// A restart is scheduled after this delay.
    Crashed(Duration),
    /// Too many faults in a row.
    Failed,
}

impl SlotInfo {
    pub(super) fn new(stopped: bool) -> Self {
        SlotInfo {
            status: if stopped {
                Status::Stopped
            } else {
                Status::Loading
            },
            generation: 0,
            last_error: None,
            last_reload_error: None,
            restarts: 0,
            consecutive_faults: 0,
            next_restart: None,
            healthy_since: None,
            calls: 0,
            errors: 0,
            faults: 0,
            total_call: Duration::ZERO,
            last_call: Duration::ZERO,
            max_call: Duration::ZERO,
            last_call_at_ms: None,
            memory_bytes: 0,
            series: 0,
            started_at_ms: None,
            crashed_at_ms: None,
            restart_history: VecDeque::new(),
        }
    }

    fn record(
        &mut self,
        status: &'static str,
        error: Option<String>,
        action: Option<&'static str>,
    ) {
        if self.restart_history.len() == RESTART_HISTORY {
            self.restart_history.pop_front();
        }
        self.restart_history.push_back(RestartRecord {
            timestamp: crate::time::rfc3339(crate::time::now_ms()),
            attempt: self.consecutive_faults,
            status,
            error,
            action,
            seq: RESTART_SEQ.fetch_add(1, Ordering::Relaxed),
        });
    }

    pub(super) fn is_stopped(&self) -> bool {
        self.status == Status::Stopped
    }

    /// A new generation serves: its number. A stopped plugin stays stopped.
    pub(super) fn loaded(&mut self) -> u64 {
        self.generation += 1;
        if !self.is_stopped() {
            self.status = Status::Running;
            self.started_at_ms = Some(crate::time::now_ms());
        }
        self.consecutive_faults = 0;
        self.next_restart = None;
        self.healthy_since = Some(Instant::now());
        self.last_error = None;
        self.last_reload_error = None;
        self.generation
    }

    /// A load failed; `kept` when a previous generation keeps serving.
    pub(super) fn load_failed(&mut self, kept: bool, error: ErrorInfo) {
        if kept {
            self.last_reload_error = Some(error);
        } else {
            if !self.is_stopped() {
                self.status = Status::Invalid;
            }
            self.last_error = Some(error);
        }
    }

    /// A fault of `generation`: crashed with a restart scheduled, or failed.
    /// `None` when a newer generation serves or the plugin is stopped.
    pub(super) fn fault(
        &mut self,
        generation: u64,
        max_restarts: u32,
        config: &PluginsConfig,
        fault: &Fault,
    ) -> Option<FaultOutcome> {
        if self.generation != generation || self.is_stopped() {
            return None;
        }
        self.faults += 1;
        self.consecutive_faults += 1;
        self.healthy_since = None;
        self.crashed_at_ms = Some(crate::time::now_ms());
        self.last_error = Some(ErrorInfo::new(fault.reason(), fault.to_string()));
        if self.consecutive_faults > max_restarts {
            self.status = Status::Failed;
            self.next_restart = None;
            self.record("failed", Some(fault.to_string()), None);
            Some(FaultOutcome::Failed)
        } else {
            let delay = backoff(config, self.consecutive_faults);
            self.status = Status::Crashed;
            self.next_restart = Some(Instant::now() + delay);
            self.record("crashed", Some(fault.to_string()), None);
            Some(FaultOutcome::Crashed(delay))
        }
    }

    /// When a scheduled restart is due, if one is.
    pub(super) fn restart_at(&self) -> Option<Instant> {
        match self.status {
            Status::Crashed => self.next_restart,
            _ => None,
        }
    }

    /// Whether a restart of `generation` is due now; it is then `restarting`.
    pub(super) fn begin_restart(&mut self, generation: u64) -> bool {
        let due = self.generation == generation
            && self.status == Status::Crashed
            && self.next_restart.is_some_and(|t| Instant::now() >= t);
        if due {
            self.status = Status::Restarting;
            self.restarts += 1;
        }
        due
    }

    /// The restart (after a fault, or an operator's start/restart) worked.
    pub(super) fn restarted(&mut self, manual: bool) {
        self.status = Status::Running;
        self.next_restart = None;
        self.healthy_since = Some(Instant::now());
        self.started_at_ms = Some(crate::time::now_ms());
        if !manual {
            self.record("success", None, None);
        }
    }

    /// A call of `elapsed` ended with `result`: timings, counters, the
    /// error it returned (a fault is recorded by [`fault`](Self::fault)).
    pub(super) fn record_call<R>(
        &mut self,
        elapsed: Duration,
        result: &Result<R, CallError>,
        healthy_after: Duration,
    ) {
        self.calls += 1;
        self.total_call += elapsed;
        self.last_call = elapsed;
        self.max_call = self.max_call.max(elapsed);
        self.last_call_at_ms = Some(crate::time::now_ms());
        let (kind, message) = match result {
            Ok(_) => return self.call_ok(healthy_after),
            Err(CallError::Fault(_)) => return,
            Err(CallError::Plugin(message)) => ("error", message),
            Err(CallError::Delivery { message, .. }) => ("delivery", message),
        };
        self.errors += 1;
        self.last_error = Some(ErrorInfo::new(kind, message.clone()));
    }

    /// A call succeeded: after `healthy_after` of health the faults in a row are forgotten.
    pub(super) fn call_ok(&mut self, healthy_after: Duration) {
        let healthy = self
            .healthy_since
            .is_some_and(|t| t.elapsed() >= healthy_after);
        if healthy && self.consecutive_faults > 0 {
            self.consecutive_faults = 0;
        }
    }

    /// An operator reset: faults forgotten, a crashed or failed plugin restarts now.
    pub(super) fn reset(&mut self) {
        self.consecutive_faults = 0;
        if matches!(self.status, Status::Failed | Status::Crashed) {
            self.status = Status::Crashed;
            self.next_restart = Some(Instant::now());
        }
        self.record("manual", None, Some("reset"));
    }

    /// An operator stop; false when it was already stopped.
    pub(super) fn stop(&mut self) -> bool {
        if self.is_stopped() {
            return false;
        }
        self.status = Status::Stopped;
        self.next_restart = None;
        self.healthy_since = None;
        self.record("manual", None, Some("stop"));
        true
    }

    /// An operator start or restart: `restarting` until the new instance runs.
    pub(super) fn begin_manual(&mut self, action: &'static str) {
        self.status = Status::Restarting;
        self.consecutive_faults = 0;
        self.next_restart = None;
        self.record("manual", None, Some(action));
    }

    /// An operator start of a plugin with nothing loaded.
    pub(super) fn start_unloaded(&mut self) {
        self.status = if self.last_error.is_some() {
            Status::Invalid
        } else {
            Status::Loading
        };
        self.record("manual", None, Some("start"));
    }
}

/// Why an instance could not start, as a fault: the guest's own fault
/// (its `init` trapped, ran out of time or memory), else an `init` fault.
pub(super) fn start_fault(error: CallError) -> Fault {
    match error {
        CallError::Fault(fault) => fault,
        other => Fault::Init(other.to_string()),
    }
}

/// The delay before restart number `n` (from 1): doubling from
/// `backoff_initial`, capped at `backoff_max`, with ±10 % jitter.
pub(super) fn backoff(config: &PluginsConfig, n: u32) -> Duration {
    let d = &config.defaults;
    let exp = d.backoff_initial.saturating_mul(
        1u32.checked_shl(n.saturating_sub(1).min(30))
            .unwrap_or(u32::MAX),
    );
    let capped = exp.min(d.backoff_max);
    capped.mul_f64(0.9 + fastrand::f64() * 0.2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let mut config = PluginsConfig::default();
        config.defaults.backoff_initial = Duration::from_millis(100);
        config.defaults.backoff_max = Duration::from_millis(1000);
        let near = |d: Duration, ms: u64| {
            let ms = ms as f64;
            (d.as_secs_f64() * 1000.0 - ms).abs() <= ms * 0.1 + 1e-9
        };
        assert!(near(backoff(&config, 1), 100));
        assert!(near(backoff(&config, 2), 200));
        assert!(near(backoff(&config, 4), 800));
        assert!(near(backoff(&config, 5), 1000));
        assert!(near(backoff(&config, 60), 1000));
    }

    #[test]
    fn faults_crash_then_fail_and_stop_wins() {
        let config = PluginsConfig::default();
        let mut info = SlotInfo::new(false);
        assert_eq!(info.loaded(), 1);
        let fault = Fault::Trap("boom".into());
        assert!(matches!(
            info.fault(1, 1, &config, &fault),
            Some(FaultOutcome::Crashed(_))
        ));
        assert_eq!(info.status, Status::Crashed);
        assert!(
            info.fault(0, 1, &config, &fault).is_none(),
            "stale generation"
        );
        assert!(matches!(
            info.fault(1, 1, &config, &fault),
            Some(FaultOutcome::Failed)
        ));
        assert_eq!(info.status, Status::Failed);
        info.reset();
        assert_eq!(info.status, Status::Crashed);
        assert!(info.stop());
        assert!(!info.stop());
        assert!(info.fault(1, 1, &config, &fault).is_none());
        assert_eq!(info.loaded(), 2);
        assert_eq!(info.status, Status::Stopped, "a reload keeps it stopped");
        let kinds: Vec<_> = info.restart_history.iter().map(|r| r.status).collect();
        assert_eq!(kinds, ["crashed", "failed", "manual", "manual"]);
    }
}
