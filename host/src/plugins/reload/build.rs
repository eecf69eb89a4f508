//! Building a generation: parse the manifest, compile (off the async
//! workers, bounded by the compile semaphore, reusing the last component when
//! only the manifest changed), check the world and the manifest's keys
//! against it, instantiate and run `init`. Nothing here touches a slot: the
//! caller swaps the result in, or keeps the old generation serving.

use crate::plugins::context::{HostParts, PluginEnv};
use crate::plugins::fault::Fault;
use crate::plugins::manifest::{Manifest, PluginKind};
use crate::plugins::registry::{Generation, Inner};
use crate::plugins::runtime::CallError;
use anyhow::{Context, Result, bail};
use std::path::Path;
use std::sync::Arc;
use wasmtime::component::Component;

/// What a generation is built for: its plugin's slot, or a shadow beside it
/// (`super::shadow`, with a state and an output of its own).
pub(in crate::plugins) struct Target<'a> {
    /// The name its environment (logs, metrics, breakers) carries.
    pub(in crate::plugins) name: Arc<str>,
    /// Its key-value state.
    pub(in crate::plugins) state: Arc<crate::plugins::state::KvState>,
    /// Where its stdout/stderr go.
    pub(in crate::plugins) output: crate::plugins::context::GuestOutput,
    /// Built without an instance (an operator stopped the plugin).
    pub(in crate::plugins) stopped: bool,
    /// The last compiled component, reused when the hash matches.
    pub(in crate::plugins) compiled: &'a mut Option<(String, Component)>,
    /// The world it must implement (a shadow's), checked before the manifest.
    pub(in crate::plugins) expect: Option<PluginKind>,
}

/// What a failed build means for the slot.
pub(in crate::plugins) enum BuildError {
    /// Bad input: nothing to retry until the files change.
    Invalid(anyhow::Error),
    /// `init` faulted: retry with backoff like any crash (when nothing else serves).
    Fault(Box<Generation>, Fault),
    /// Not the world [`Target::expect`] asked for: the one it implements.
    WrongKind(PluginKind),
}

impl Inner {
    /// Everything before the swap; the new generation comes back with its
    /// instance live, or crashed when `init` faulted.
    pub(in crate::plugins) async fn build(
        self: &Arc<Self>,
        target: Target<'_>,
        bytes: Vec<u8>,
        sha256: String,
        manifest_text: Option<&str>,
        manifest_path: &Path,
    ) -> Result<Generation, BuildError> {
        let invalid = BuildError::Invalid;
        let (defaults, limits) = (&self.config.defaults, &self.config.limits);
        let manifest = match manifest_text {
            Some(text) => Manifest::parse_with_env(
                text,
                defaults,
                limits,
                &self.config.env_allow,
                &manifest_path.display().to_string(),
            )
            .with_context(|| format!("invalid manifest {}", manifest_path.display()))
            .map_err(invalid)?,
            None => Manifest::defaults(defaults, limits),
        };
        // A component error names the plugin and its file, as `wasmon plugin
        // check` does (`runtime::teach::origin`).
        let wasm_path = match manifest_path.file_stem() {
            Some(_) => manifest_path.with_extension("wasm"),
            None => std::path::PathBuf::from(format!("{}.wasm", target.name)),
        };
        let origin = crate::plugins::runtime::teach::origin(&target.name, &wasm_path);
        let component = match &*target.compiled {
            Some((hash, component)) if *hash == sha256 => component.clone(),
            _ => {
                let _permit = self.compile_permits.acquire().await.map_err(|e| {
                    invalid(anyhow::anyhow!("the compile semaphore is closed: {e}"))
                })?;
                let inner = self.clone();
                let component = tokio::task::spawn_blocking(move || inner.runtime.compile(&bytes))
                    .await
                    .map_err(|e| invalid(anyhow::anyhow!("the compile task failed: {e}")))?
                    .map_err(|e| invalid(e.context(origin.clone())))?;
                *target.compiled = Some((sha256.clone(), component.clone()));
                component
            }
        };
        let prepared = self
            .runtime
            .prepare(&component)
            .map_err(|e| invalid(e.context(origin)))?;
        let kind = prepared.kind();
        if target.expect.is_some_and(|expected| expected != kind) {
            return Err(BuildError::WrongKind(kind));
        }
        check_kind(&manifest, kind).map_err(invalid)?;
        let env = Arc::new(PluginEnv::new(
            target.name,
            kind.export(),
            manifest.clone(),
            target.state,
            HostParts {
                shared: &self.capabilities,
                breakers: &self.breakers,
                telemetry: self.deps.telemetry.clone(),
            },
            target.output,
        ));
        // A stopped plugin is not called, not even `init`: it gets its
        // instance when it is started.
        let instance = if target.stopped {
            Ok(None)
        } else {
            self.runtime
                .instantiate(&prepared, env.clone())
                .await
                .map(Some)
        };
        let generation = |instance| Generation {
            number: 0,
            sha256: sha256.clone(),
            kind,
            manifest: manifest.clone(),
            prepared: prepared.clone(),
            env: env.clone(),
            instance: tokio::sync::Mutex::new(instance),
            loaded_at_ms: crate::time::now_ms(),
        };
        match instance {
            Ok(instance) => Ok(generation(instance)),
            Err(CallError::Fault(fault)) => {
                Err(BuildError::Fault(Box::new(generation(None)), fault))
            }
            Err(other) => Err(invalid(anyhow::anyhow!("{other}"))),
        }
    }
}

/// Keys that only make sense for some kinds.
pub(in crate::plugins) fn check_kind(manifest: &Manifest, kind: PluginKind) -> Result<()> {
    if let Some(declared) = manifest.kind
        && declared != kind
    {
        bail!(
            "the manifest says kind = \"{declared}\" but the component implements the {kind} world"
        );
    }
    if kind != PluginKind::Rule && !manifest.select.is_empty() {
        bail!("invalid key `select` in the manifest: it applies to rules, and this is a {kind}");
    }
    crate::plugins::consume::check_kind(manifest, kind)?;
    if kind != PluginKind::Sink && !manifest.events.is_empty() {
        bail!("invalid key `events` in the manifest: it applies to sinks, and this is a {kind}");
    }
    Ok(())
}
