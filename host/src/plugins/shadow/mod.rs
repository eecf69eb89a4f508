//! Shadow rule versions (issue 14): a second version of a rule that runs
//! beside the serving one on the same `rule-input`, whose alerts go to no
//! sink and change no alert state.
//!
//! A shadow comes from `plugins.d/NAME.shadow.wasm` and/or
//! `NAME.shadow.toml` (a manifest-only shadow runs the serving component with
//! its own manifest; a component-only one runs under the serving manifest),
//! or from `POST /api/plugins/{name}/shadow`, which writes those files. It is
//! built by the reload path (`reload::Inner::build`: compile off the async
//! workers, world and manifest checks, `init`) under a name of its own
//! (`NAME.shadow`: its logs, call metrics and breakers), with a key-value
//! state and an output of its own, so it never touches the serving version.
//!
//! - `eval`: the shadow's evaluation in the rule loop, its faults and backoff
//!   (a [`SlotInfo`] of its own: the supervisor's state machine, not a copy);
//! - `diff`: what the shadow and the serving version raised since the shadow
//!   started, and the serving version's bounded alert history;
//! - `files`: promote and rollback, on the files (so they survive a restart);
//! - `backtest`: a version replayed over the store's history.

mod backtest;
mod diff;
mod eval;
mod files;

pub use backtest::{BacktestLimits, BacktestReport, BacktestRequest, BacktestVersion};
pub use diff::{AlertSide, DiffEntry, DiffKind, HistoryEntry};

use super::context::GuestOutput;
use super::manifest::PluginKind;
use super::registry::{Generation, Inner, LoadMemo, Plugins, Slot};
use super::reload::{BuildError, Target};
use super::state::KvState;
use super::supervisor::{ErrorInfo, SlotInfo, Status};
use crate::rules::AlertManager;
use arc_swap::ArcSwapOption;
use parking_lot::Mutex;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// What a slot holds for shadows: the shadow serving beside the rule, if
/// any, the lock its loads take turns on, and the serving version's alert
/// history (kept for every rule: the backtest shows it beside its timeline).
#[derive(Default)]
pub(super) struct ShadowSlot {
    pub(super) current: ArcSwapOption<Shadow>,
    /// What the shadow loads remember: the inputs of the shadow serving and
    /// the last compiled component.
    load_lock: tokio::sync::Mutex<LoadMemo>,
    pub(super) history: Mutex<diff::History>,
    /// Shadows loaded for this slot, from 1.
    loads: AtomicU64,
    /// Why the last shadow load failed, while none or an older one serves.
    last_error: Mutex<Option<ErrorInfo>>,
}

/// One shadow version of a rule.
pub(super) struct Shadow {
    pub(super) generation: Generation,
    /// Whether it has a component / a manifest of its own (else the serving one's).
    own_component: bool,
    own_manifest: bool,
    /// Its status, faults and backoff.
    info: Mutex<SlotInfo>,
    /// Its alert state: the host's state machine, detached from every output.
    alerts: AlertManager,
    diff: Mutex<diff::Diff>,
    started_ms: u64,
}

/// Why a shadow, promote, rollback or backtest request was refused.
#[derive(Debug, thiserror::Error)]
pub enum ShadowError {
    /// No such rule, or no shadow.
    #[error("{0}")]
    NotFound(String),
    /// Not a rule, a shadow of another kind, nothing to roll back to.
    #[error("{0}")]
    Conflict(String),
    /// The component or manifest does not build.
    #[error("{0}")]
    Invalid(String),
    /// A bad parameter.
    #[error("{0}")]
    BadRequest(String),
    /// A backtest runs already.
    #[error("{0}")]
    Busy(String),
    /// The files could not be written.
    #[error("{0}")]
    Internal(String),
}

/// What `GET /api/plugins/{name}/shadow` shows.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ShadowView {
    /// The rule.
    pub rule: String,
    /// Counts the shadows loaded for this rule, from 1.
    pub generation: u64,
    /// SHA-256 of its component.
    pub sha256: String,
    /// `file` when it has a component of its own, `serving` when it runs the serving one's.
    pub component: &'static str,
    /// `file` when it has a manifest of its own, `serving` when it runs under the serving one's.
    pub manifest_source: &'static str,
    /// `running`, `crashed` (a restart is scheduled) or `failed`.
    pub status: Status,
    /// When it started (RFC 3339): the diff covers the time since.
    pub since: String,
    /// Evaluations made.
    pub evaluations: u64,
    /// Its faults since it started.
    pub faults: u64,
    /// Faults in a row.
    pub consecutive_faults: u32,
    /// Restarts after faults.
    pub restarts: u64,
    /// Evaluations that returned an error.
    pub errors: u64,
    /// The last fault or error.
    pub last_error: Option<ErrorInfo>,
    /// Why the last shadow load failed, if one did after this one loaded.
    pub last_load_error: Option<ErrorInfo>,
    /// Its resolved manifest.
    #[schema(value_type = Object)]
    pub manifest: super::manifest::Manifest,
    /// The serving version's evaluation interval: first-seen times further
    /// apart than this make a `different` entry.
    pub interval_ms: u64,
    /// Counts of the diff's entries by kind.
    pub counts: diff::DiffCounts,
    /// Every alert either version raised since the shadow started, but
    /// those both raised alike: `only_shadow`, `only_serving`, `different`.
    pub diff: Vec<DiffEntry>,
}

/// What a shadow load did.
#[derive(Debug)]
pub(super) enum ShadowOutcome {
    /// A new shadow runs.
    Loaded,
    /// Its files did not change.
    Unchanged,
    /// No shadow files: none runs (any was discarded).
    Absent,
    /// It does not build; any older shadow keeps running.
    Failed(ShadowError),
}

/// The shadow's files of rule `name`: component and manifest.
fn shadow_paths(dir: &std::path::Path, name: &str) -> (PathBuf, PathBuf) {
    (
        dir.join(format!("{name}.shadow.wasm")),
        dir.join(format!("{name}.shadow.toml")),
    )
}

/// The rule a file of the plugin directory is the shadow of:
/// `NAME.shadow.wasm` or `NAME.shadow.toml`.
pub(super) fn shadow_of(path: &std::path::Path) -> Option<String> {
    let file = path.file_name()?.to_str()?;
    if file.starts_with('.') {
        return None;
    }
    let stem = file
        .strip_suffix(".shadow.wasm")
        .or_else(|| file.strip_suffix(".shadow.toml"))?;
    super::registry::valid_name(stem).then(|| stem.to_string())
}

/// Reads a file, `None` when it does not exist.
async fn read_opt(path: &std::path::Path) -> Result<Option<Vec<u8>>, String> {
    match tokio::fs::read(path).await {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

impl Inner {
    fn rule_slot(&self, name: &str) -> Result<Arc<Slot>, ShadowError> {
        let slot = self.slots.read().get(name).cloned();
        let Some(slot) = slot else {
            return Err(ShadowError::NotFound(format!(
                "no rule {name:?}: a shadow needs the rule it shadows (plugins.d/{name}.wasm)"
            )));
        };
        match slot.current().map(|g| g.kind) {
            Some(PluginKind::Rule) => Ok(slot),
            Some(kind) => Err(ShadowError::Conflict(format!(
                "{name:?} is a {kind}: only rules have shadows"
            ))),
            None => Err(ShadowError::NotFound(format!(
                "no version of rule {name:?} serves: a shadow needs the rule it shadows"
            ))),
        }
    }

    /// Loads rule `name`'s shadow from its files (`NAME.shadow.wasm`,
    /// `NAME.shadow.toml`); the one path for startup, file events, uploads.
    pub(super) async fn load_shadow(self: &Arc<Self>, name: &str, force: bool) -> ShadowOutcome {
        let (wasm_path, toml_path) = shadow_paths(&self.config.dir, name);
        let slot = match self.rule_slot(name) {
            Ok(slot) => slot,
            Err(error) => {
                let present = matches!(tokio::fs::try_exists(&wasm_path).await, Ok(true))
                    || matches!(tokio::fs::try_exists(&toml_path).await, Ok(true));
                if !present {
                    return ShadowOutcome::Absent;
                }
                tracing::warn!(plugin = name, error = ?error, "shadow not loaded");
                return ShadowOutcome::Failed(error);
            }
        };
        let mut memo = slot.shadow.load_lock.lock().await;
        self.load_shadow_locked(&slot, &mut memo, force).await
    }

    async fn load_shadow_locked(
        self: &Arc<Self>,
        slot: &Arc<Slot>,
        memo: &mut LoadMemo,
        force: bool,
    ) -> ShadowOutcome {
        let name = &*slot.name;
        let dir = &self.config.dir;
        let (wasm_path, toml_path) = shadow_paths(dir, name);
        let failed = |slot: &Slot, error: ShadowError| {
            tracing::warn!(plugin = %slot.name, error = %error, "shadow load failed");
            *slot.shadow.last_error.lock() = Some(ErrorInfo::new("load", error.to_string()));
            ShadowOutcome::Failed(error)
        };
        let invalid = ShadowError::Invalid;
        let (own_wasm, own_toml) = match (read_opt(&wasm_path).await, read_opt(&toml_path).await) {
            (Ok(w), Ok(t)) => (w, t),
            (Err(e), _) | (_, Err(e)) => return failed(slot, invalid(e)),
        };
        if own_wasm.is_none() && own_toml.is_none() {
            memo.inputs = None;
            self.discard_shadow(slot, "its files are gone");
            return ShadowOutcome::Absent;
        }
        let own_component = own_wasm.is_some();
        let own_manifest = own_toml.is_some();
        let bytes = match own_wasm {
            Some(bytes) => bytes,
            None => match read_opt(&dir.join(format!("{name}.wasm"))).await {
                Ok(Some(bytes)) => bytes,
                Ok(None) => {
                    return failed(
                        slot,
                        ShadowError::NotFound(format!("no component of rule {name:?}")),
                    );
                }
                Err(e) => return failed(slot, invalid(e)),
            },
        };
        let (manifest_text, manifest_path) = match own_toml {
            Some(text) => (Some(text), toml_path.clone()),
            None => {
                let path = dir.join(format!("{name}.toml"));
                match read_opt(&path).await {
                    Ok(text) => (text, path),
                    Err(e) => return failed(slot, invalid(e)),
                }
            }
        };
        let manifest_text = match manifest_text.map(String::from_utf8).transpose() {
            Ok(text) => text,
            Err(e) => {
                return failed(
                    slot,
                    invalid(format!("{} is not UTF-8: {e}", manifest_path.display())),
                );
            }
        };
        let sha256 = hex::encode(Sha256::digest(&bytes));
        let inputs = (sha256.clone(), manifest_text.clone());
        if !force && memo.inputs.as_ref() == Some(&inputs) && slot.shadow.current.load().is_some() {
            return ShadowOutcome::Unchanged;
        }
        let target = Target {
            name: Arc::from(format!("{name}.shadow")),
            state: Arc::new(KvState::new()),
            output: GuestOutput::default(),
            stopped: false,
            compiled: &mut memo.compiled,
            expect: Some(PluginKind::Rule),
        };
        let built = self
            .build(
                target,
                bytes,
                sha256,
                manifest_text.as_deref(),
                &manifest_path,
            )
            .await;
        let generation = match built {
            Ok(generation) => generation,
            Err(BuildError::Invalid(error)) => return failed(slot, invalid(format!("{error:#}"))),
            Err(BuildError::WrongKind(kind)) => {
                return failed(
                    slot,
                    ShadowError::Conflict(format!(
                        "the shadow of rule {name:?} implements the {kind} world: a rule's shadow must be a rule"
                    )),
                );
            }
            Err(BuildError::Fault(_, fault)) => {
                return failed(slot, invalid(format!("the shadow's init {fault}")));
            }
        };
        memo.inputs = Some(inputs);
        let number = slot.shadow.loads.fetch_add(1, Ordering::Relaxed) + 1;
        let mut generation = generation;
        generation.number = number;
        let mut info = SlotInfo::new(false);
        info.loaded();
        let shadow = Arc::new(Shadow {
            generation,
            own_component,
            own_manifest,
            info: Mutex::new(info),
            alerts: self.deps.alerts.detached(),
            diff: Mutex::new(diff::Diff::default()),
            started_ms: crate::time::now_ms(),
        });
        let old = slot.shadow.current.swap(Some(shadow.clone()));
        *slot.shadow.last_error.lock() = None;
        if old.is_some() {
            self.forget_shadow_metrics(name);
        }
        self.deps
            .telemetry
            .rule_shadow_up
            .with_label_values(&[name])
            .set(1);
        tracing::info!(plugin = name, shadow = number, sha256 = %&shadow.generation.sha256[..12], own_component, own_manifest, "shadow loaded");
        slot.wake.notify_one();
        ShadowOutcome::Loaded
    }

    /// Stops the shadow of `slot`, if any.
    pub(in crate::plugins) fn discard_shadow(&self, slot: &Slot, why: &str) -> bool {
        let old = slot.shadow.current.swap(None);
        if old.is_some() {
            self.forget_shadow_metrics(&slot.name);
            tracing::info!(plugin = %slot.name, why, "shadow discarded");
        }
        old.is_some()
    }

    fn forget_shadow_metrics(&self, name: &str) {
        let t = &self.deps.telemetry;
        let _ = t.rule_shadow_up.remove_label_values(&[name]);
        t.forget_plugin(&format!("{name}.shadow"), PluginKind::Rule.as_str());
    }
}

impl Plugins {
    /// Loads the shadow of every rule that has shadow files (at startup).
    pub(super) async fn load_shadows(&self) {
        let Ok(entries) = std::fs::read_dir(&self.inner.config.dir) else {
            return;
        };
        let mut names: Vec<String> = entries
            .filter_map(|e| e.ok())
            .filter_map(|e| shadow_of(&e.path()))
            .collect();
        names.sort();
        names.dedup();
        for name in names {
            self.reload_shadow(&name).await;
        }
    }

    /// Loads rule `name`'s shadow from its files again (a file event).
    pub(super) async fn reload_shadow(&self, name: &str) {
        let name = name.to_string();
        let _ = self
            .on_runtime(move |inner| async move { inner.load_shadow(&name, false).await })
            .await;
    }

    /// Installs `component` (when given) and/or `manifest` as rule `name`'s
    /// shadow: checked by a build first, then written to
    /// `NAME.shadow.wasm` / `NAME.shadow.toml` (atomically) and loaded. A
    /// file not given is left as it is.
    pub async fn install_shadow(
        &self,
        name: &str,
        component: Option<Vec<u8>>,
        manifest: Option<String>,
    ) -> Result<ShadowView, ShadowError> {
        let name = name.to_string();
        self.on_runtime(move |inner| async move {
            inner.install_shadow(&name, component, manifest).await
        })
        .await
        .map_err(|e| ShadowError::Internal(format!("the shadow task failed: {e}")))?
    }

    /// The shadow of rule `name` and its diff.
    pub fn shadow(&self, name: &str) -> Result<ShadowView, ShadowError> {
        let slot = self.inner.rule_slot(name)?;
        let shadow = slot
            .shadow
            .current
            .load_full()
            .ok_or_else(|| ShadowError::NotFound(format!("rule {name:?} has no shadow")))?;
        Ok(shadow.view(&slot))
    }

    /// Discards rule `name`'s shadow and removes its files.
    pub async fn discard_shadow(&self, name: &str) -> Result<(), ShadowError> {
        let slot = self.inner.rule_slot(name)?;
        let mut memo = slot.shadow.load_lock.lock().await;
        let (wasm, toml) = shadow_paths(&self.inner.config.dir, name);
        let mut had_files = false;
        for path in [&wasm, &toml] {
            had_files |= files::remove_if_present(path).map_err(ShadowError::Internal)?;
        }
        memo.inputs = None;
        let had = self.inner.discard_shadow(&slot, "discarded by an operator");
        if !had && !had_files {
            return Err(ShadowError::NotFound(format!(
                "rule {name:?} has no shadow"
            )));
        }
        Ok(())
    }
}

impl Inner {
    async fn install_shadow(
        self: &Arc<Self>,
        name: &str,
        component: Option<Vec<u8>>,
        manifest: Option<String>,
    ) -> Result<ShadowView, ShadowError> {
        let slot = self.rule_slot(name)?;
        let mut memo = slot.shadow.load_lock.lock().await;
        let (wasm_path, toml_path) = shadow_paths(&self.config.dir, name);
        // The files are written, loaded, and put back when the shadow does
        // not build: a bad upload changes nothing.
        let mut staged = files::Staged::new(
            component.map(|bytes| (wasm_path.as_path(), bytes)),
            manifest.map(|text| (toml_path.as_path(), text)),
        );
        if let Err(error) = staged.commit() {
            let _ = staged.rollback();
            return Err(ShadowError::Internal(error));
        }
        match self.load_shadow_locked(&slot, &mut memo, true).await {
            ShadowOutcome::Loaded | ShadowOutcome::Unchanged => staged.finish(),
            ShadowOutcome::Absent => {
                return Err(ShadowError::Internal("the shadow's files vanished".into()));
            }
            ShadowOutcome::Failed(error) => {
                staged.rollback().map_err(ShadowError::Internal)?;
                return Err(error);
            }
        }
        drop(memo);
        let shadow = slot
            .shadow
            .current
            .load_full()
            .ok_or_else(|| ShadowError::Internal("the shadow vanished".into()))?;
        Ok(shadow.view(&slot))
    }
}

impl Shadow {
    fn view(&self, slot: &Slot) -> ShadowView {
        let info = self.info.lock();
        let interval = slot
            .current()
            .map_or(self.generation.manifest.interval, |g| g.manifest.interval);
        let interval_ms = u64::try_from(interval.as_millis()).unwrap_or(u64::MAX);
        let (counts, diff) = self.diff.lock().view(interval_ms);
        ShadowView {
            rule: slot.name.to_string(),
            generation: self.generation.number,
            sha256: self.generation.sha256.clone(),
            component: if self.own_component {
                "file"
            } else {
                "serving"
            },
            manifest_source: if self.own_manifest { "file" } else { "serving" },
            status: info.status,
            since: crate::time::rfc3339(self.started_ms),
            evaluations: info.calls,
            faults: info.faults,
            consecutive_faults: info.consecutive_faults,
            restarts: info.restarts,
            errors: info.errors,
            last_error: info.last_error.clone(),
            last_load_error: slot.shadow.last_error.lock().clone(),
            manifest: self.generation.manifest.clone(),
            interval_ms,
            counts,
            diff,
        }
    }
}
