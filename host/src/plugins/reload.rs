//! Loading, hot reloading and unloading: one path for all of them. Startup is a
//! reload of every file in the directory from the empty set; a file event, a
//! `POST /api/plugins/{name}/reload` and SIGHUP all end here.
//!
//! A load reads `NAME.wasm` and `NAME.toml`, skips when neither changed,
//! parses the manifest, compiles off the async workers (reusing the last
//! compiled component when only the manifest changed), checks the world,
//! instantiates and runs `init`, and only then swaps the new generation in
//! atomically. Calls in flight finish on the old instance. **A failed load
//! keeps the old version serving** and records why.
//!
//! Plugins load in parallel: each load holds only its own plugin's lock, and
//! compilations (the CPU-heavy part) are bounded by a semaphore sized to the
//! CPUs. `init` runs within the manifest's `init_timeout`, so a plugin whose
//! `init` hangs delays neither the others nor a file added meanwhile, and the
//! host is ready once every plugin found at startup has loaded or failed.

mod build;

pub(super) use build::{BuildError, Target, check_kind};

use super::driver;
use super::manifest::{Manifest, PluginKind};
use super::registry::{Generation, Inner, LoadMemo, Plugins, Slot, valid_name};
use crate::store::SourceKind;
use anyhow::{Context, Result};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

/// What one load attempt did.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
#[serde(tag = "result", rename_all = "lowercase")]
pub enum LoadOutcome {
    /// A new generation serves.
    Loaded {
        /// Its number.
        generation: u64,
        /// Its component's SHA-256.
        sha256: String,
        /// Its world.
        kind: PluginKind,
    },
    /// Neither the component nor the manifest changed.
    Unchanged {
        /// The generation still serving.
        generation: u64,
    },
    /// The component is gone; so is the plugin.
    Unloaded,
    /// There is no such plugin (no file, nothing loaded).
    Absent,
    /// The load failed; the previous generation, if any, keeps serving.
    Failed {
        /// Why.
        error: String,
        /// The generation that keeps serving.
        kept_generation: Option<u64>,
    },
}

impl Plugins {
    /// Loads every plugin in the directory, marks the host ready, and starts
    /// watching the directory (when `plugins.watch`).
    pub async fn start(&self) -> Result<()> {
        let dir = &self.inner.config.dir;
        if !dir.exists() {
            std::fs::create_dir_all(dir).with_context(|| {
                format!("failed to create the plugin directory {}", dir.display())
            })?;
            tracing::info!(dir = %dir.display(), "created the plugin directory");
        }
        // Watch first, and handle events at once: a file written while the
        // startup loads run is loaded beside them, never behind a slow one.
        if self.inner.config.watch {
            super::watcher::watch(dir)?.run(self.clone());
        }
        let outcomes = self.reload_all().await;
        self.load_shadows().await;
        let loaded = outcomes
            .iter()
            .filter(|(_, o)| matches!(o, LoadOutcome::Loaded { .. }))
            .count();
        tracing::info!(dir = %dir.display(), loaded, found = outcomes.len(), "plugins loaded");
        self.inner.ready.store(true, Ordering::Release);
        Ok(())
    }

    /// Loads `name` again from its files. `force` builds a new generation even
    /// when nothing changed (a fresh instance).
    pub async fn reload(&self, name: &str, force: bool) -> LoadOutcome {
        let outcome = self.load(name, force).await;
        if matches!(
            outcome,
            LoadOutcome::Loaded { .. } | LoadOutcome::Failed { .. } | LoadOutcome::Unloaded
        ) {
            crate::memory::release_free_memory();
        }
        outcome
    }

    async fn load(&self, name: &str, force: bool) -> LoadOutcome {
        let name = name.to_string();
        match self
            .on_runtime(move |inner| async move { inner.load(&name, force).await })
            .await
        {
            Ok(outcome) => outcome,
            Err(e) => LoadOutcome::Failed {
                error: format!("the load task failed: {e}"),
                kept_generation: None,
            },
        }
    }

    /// Reloads every plugin in the directory, in parallel, and unloads those
    /// whose file is gone. What did not change is left alone.
    pub async fn reload_all(&self) -> Vec<(String, LoadOutcome)> {
        let mut names = scan(&self.inner.config.dir);
        names.extend(self.inner.slots.read().keys().cloned());
        names.sort();
        names.dedup();
        let loads: Vec<_> = names
            .into_iter()
            .map(|name| {
                let inner = self.inner.clone();
                let load = name.clone();
                let task = self
                    .inner
                    .handle
                    .spawn(async move { inner.load(&load, false).await });
                (name, task)
            })
            .collect();
        let mut outcomes = Vec::with_capacity(loads.len());
        for (name, task) in loads {
            let outcome = task.await.unwrap_or_else(|e| LoadOutcome::Failed {
                error: format!("the load task failed: {e}"),
                kept_generation: None,
            });
            outcomes.push((name, outcome));
        }
        crate::memory::release_free_memory();
        outcomes
    }
}

/// Plugin names with a `.wasm` in `dir`.
fn scan(dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok())
        .filter_map(|e| plugin_name(&e.path()))
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// The plugin a path in the directory belongs to: the stem of a `.wasm` or
/// `.toml` with a valid name. Hidden and temporary files belong to none.
pub(super) fn plugin_name(path: &Path) -> Option<String> {
    let file = path.file_name()?.to_str()?;
    if file.starts_with('.') {
        return None;
    }
    let (stem, ext) = file.rsplit_once('.')?;
    if !matches!(ext, "wasm" | "toml") {
        return None;
    }
    if valid_name(stem) {
        Some(stem.to_string())
    } else {
        tracing::debug!(
            file,
            "ignoring a file whose name is not a valid plugin name"
        );
        None
    }
}

impl Inner {
    pub(super) async fn load(self: &Arc<Self>, name: &str, force: bool) -> LoadOutcome {
        if !valid_name(name) {
            return LoadOutcome::Failed {
                error: format!("invalid plugin name {name:?}"),
                kept_generation: None,
            };
        }
        let wasm_path = self.config.dir.join(format!("{name}.wasm"));
        // Loads of one plugin take turns, and each reads the files once it has
        // its turn, so the last to run sees the newest files.
        loop {
            let existing = self.slots.read().get(name).cloned();
            let slot = match existing {
                Some(slot) => slot,
                None if matches!(tokio::fs::try_exists(&wasm_path).await, Ok(false)) => {
                    return LoadOutcome::Absent;
                }
                None => self.slot_or_insert(name),
            };
            let mut memo = slot.load_lock.lock().await;
            let serving = self.slots.read().get(name).cloned();
            if !serving.is_some_and(|s| Arc::ptr_eq(&s, &slot)) {
                // Unloaded while this load waited: start over with a new slot.
                continue;
            }
            return self.load_locked(&slot, &mut memo, force).await;
        }
    }

    /// Loads `slot`'s plugin from its files; the caller holds its load lock.
    pub(super) async fn load_locked(
        self: &Arc<Self>,
        slot: &Arc<Slot>,
        memo: &mut LoadMemo,
        force: bool,
    ) -> LoadOutcome {
        let dir = &self.config.dir;
        let wasm_path = dir.join(format!("{}.wasm", slot.name));
        let manifest_path = dir.join(format!("{}.toml", slot.name));
        let bytes = match tokio::fs::read(&wasm_path).await {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return self.unload(slot),
            Err(e) => {
                return self.failed(
                    slot,
                    anyhow::anyhow!("cannot read {}: {e}", wasm_path.display()),
                );
            }
        };
        let manifest_text = match tokio::fs::read_to_string(&manifest_path).await {
            Ok(text) => Some(text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => {
                return self.failed(
                    slot,
                    anyhow::anyhow!("cannot read {}: {e}", manifest_path.display()),
                );
            }
        };
        let sha256 = hex::encode(Sha256::digest(&bytes));
        let inputs = (sha256.clone(), manifest_text.clone());
        if !force && memo.inputs.as_ref() == Some(&inputs) {
            return LoadOutcome::Unchanged {
                generation: slot.info.lock().generation,
            };
        }
        memo.inputs = Some(inputs);
        let started = Instant::now();
        let target = Target {
            name: slot.name.clone(),
            state: slot.state.clone(),
            output: slot.output.clone(),
            stopped: slot.is_stopped(),
            compiled: &mut memo.compiled,
            expect: None,
        };
        match self
            .build(
                target,
                bytes,
                sha256,
                manifest_text.as_deref(),
                &manifest_path,
            )
            .await
        {
            Ok(generation) => self.swap(slot, generation, started),
            Err(BuildError::Invalid(error)) => self.failed(slot, error),
            Err(BuildError::WrongKind(kind)) => {
                self.failed(slot, anyhow::anyhow!("unexpected {kind} world"))
            }
            Err(BuildError::Fault(generation, fault)) => {
                if slot.current().is_some() {
                    self.failed(slot, anyhow::anyhow!("init {fault}"))
                } else {
                    // Nothing else serves: install it crashed, so restarts with
                    // backoff (and `failed` after max_restarts) take over.
                    let outcome = self.swap(slot, *generation, started);
                    if let Some(generation) = slot.current() {
                        self.on_fault(slot, &generation, &fault);
                    }
                    outcome
                }
            }
        }
    }

    pub(super) fn slot_or_insert(&self, name: &str) -> Arc<Slot> {
        self.slots
            .write()
            .entry(name.to_string())
            .or_insert_with(|| Slot::new(name, self.stopped.contains(name)))
            .clone()
    }

    /// Puts `generation` in service.
    fn swap(
        self: &Arc<Self>,
        slot: &Arc<Slot>,
        mut generation: Generation,
        started: Instant,
    ) -> LoadOutcome {
        let name = slot.name.clone();
        let kind = generation.kind;
        let manifest = generation.manifest.clone();
        generation.number = slot.info.lock().loaded();
        let stopped = slot.is_stopped();
        let generation = Arc::new(generation);
        let number = generation.number;
        let sha256 = generation.sha256.clone();
        let wit = generation.prepared.version().as_str();
        let serving = generation.clone();
        let old = slot.current.swap(Some(generation));
        let new = (!stopped).then_some(&serving);
        super::consume::swapped(self, slot, new, old.as_deref());
        let old_kind = old.as_ref().map(|g| g.kind);

        let t = &self.deps.telemetry;
        t.plugin_reloads
            .with_label_values(&[&*name, "success"])
            .inc();
        if let Some(old_kind) = old_kind.filter(|k| *k != kind) {
            self.retire(slot, old_kind);
            self.discard_shadow(slot, "the rule is no longer a rule");
            let _ = t
                .plugin_up
                .remove_label_values(&[&*name, old_kind.as_str()]);
        }
        t.plugin_up
            .with_label_values(&[&*name, kind.as_str()])
            .set(i64::from(!stopped));
        t.plugin_memory_limit
            .with_label_values(&[&*name])
            .set(i64::try_from(manifest.memory_limit.0).unwrap_or(i64::MAX));
        t.plugin_timeout
            .with_label_values(&[&*name])
            .set(manifest.timeout.as_secs_f64());
        if kind == PluginKind::Sink {
            // Sinks loaded with the host get every event since it started (a
            // rule may fire before the sink is loaded); sinks added later get
            // the events from now on. A reloaded sink keeps its cursor.
            let first = if self.ready.load(Ordering::Acquire) {
                u64::MAX
            } else {
                0
            };
            self.deps.events.cursor_or(&name, first);
        }
        if kind == PluginKind::Collector && !stopped {
            self.attach_source(slot, &manifest);
        }
        let mut driver = slot.driver.lock();
        let running = driver
            .as_ref()
            .is_some_and(|(k, handle)| *k == kind && !handle.is_finished());
        if !running {
            if let Some((_, handle)) = driver.take() {
                handle.abort();
            }
            *driver = Some((
                kind,
                self.handle
                    .spawn(driver::run(self.clone(), slot.clone(), kind)),
            ));
        }
        drop(driver);
        slot.wake.notify_one();
        tracing::info!(plugin = %name, generation = number, %kind, wit, sha256 = %&sha256[..12], took = ?started.elapsed(), "plugin loaded");
        let event = match old_kind {
            Some(_) => crate::live::Payload::PluginReloaded,
            None => crate::live::Payload::PluginLoaded,
        };
        let status = if stopped { "stopped" } else { "running" };
        let data =
            || crate::live::PluginData::new(&name, Some(kind.as_str()), number, status, None);
        self.deps.events.live().plugin(event, data);
        LoadOutcome::Loaded {
            generation: number,
            sha256,
            kind,
        }
    }

    /// Records a failed load; the generation serving, if any, keeps serving.
    fn failed(&self, slot: &Slot, error: anyhow::Error) -> LoadOutcome {
        let message = format!("{error:#}");
        self.deps
            .telemetry
            .plugin_reloads
            .with_label_values(&[&*slot.name, "failure"])
            .inc();
        let kept = slot.current().map(|g| g.number);
        self.on_load_failed(slot, kept, &message);
        LoadOutcome::Failed {
            error: message,
            kept_generation: kept,
        }
    }

    /// Removes a plugin whose component is gone; the caller holds its load lock.
    fn unload(&self, slot: &Arc<Slot>) -> LoadOutcome {
        let name = &*slot.name;
        let removed = {
            let mut slots = self.slots.write();
            let ours = slots.get(name).is_some_and(|s| Arc::ptr_eq(s, slot));
            if ours {
                slots.remove(name);
            }
            ours
        };
        if let Some((_, handle)) = slot.driver.lock().take() {
            handle.abort();
        }
        if let Some(old) = slot.current.swap(None) {
            super::consume::stop(&old);
            self.retire(slot, old.kind);
            self.discard_shadow(slot, "the rule is gone");
            self.deps.telemetry.forget_plugin(name, old.kind.as_str());
        }
        if !removed {
            return LoadOutcome::Absent;
        }
        self.breakers.forget(name);
        tracing::info!(plugin = name, "plugin unloaded");
        let data = || crate::live::PluginData::new(name, None, 0, "unloaded", None);
        self.deps
            .events
            .live()
            .plugin(crate::live::Payload::PluginUnloaded, data);
        LoadOutcome::Unloaded
    }

    /// Gives a collector its place in the store again.
    pub(super) fn attach_source(&self, slot: &Slot, manifest: &Manifest) {
        let source = self.deps.store.source(
            &slot.name,
            SourceKind::Plugin {
                max_series: manifest.max_series,
            },
        );
        *slot.source.lock() = Some(source);
    }

    /// Undoes what a plugin of `kind` left in the rest of the host.
    pub(super) fn retire(&self, slot: &Slot, kind: PluginKind) {
        match kind {
            PluginKind::Collector => {
                if let Some(source) = slot.source.lock().take() {
                    self.deps.store.remove_source(source);
                }
                slot.info.lock().series = 0;
            }
            PluginKind::Rule => {
                self.deps
                    .alerts
                    .remove_rule(&slot.name, crate::time::now_ms());
            }
            PluginKind::Sink => self.deps.events.forget(&slot.name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plugin_names_from_paths() {
        let name = |p: &str| plugin_name(Path::new(p));
        assert_eq!(name("/d/http_probe.wasm").as_deref(), Some("http_probe"));
        assert_eq!(name("/d/http_probe.toml").as_deref(), Some("http_probe"));
        assert_eq!(name("/d/.http_probe.wasm.tmp"), None);
        assert_eq!(name("/d/http_probe.wasm~"), None);
        assert_eq!(name("/d/bad-name.wasm"), None);
        assert_eq!(name("/d/readme.md"), None);
    }
}
