//! One plugin outside the registry: load a component file, call it directly.
//! For plugin authors (`wasmon plugin check`), tests and benchmarks; it goes
//! through the same runtime, limits and capabilities as a registered plugin.

use super::bindings::{RuleAlert, types};
use super::capabilities;
use super::context::{GuestOutput, HostParts, PluginEnv};
use super::manifest::{Manifest, PluginKind};
use super::runtime::{CallError, Instance, Runtime};
use super::state::KvState;
use crate::config::{Compiler, PluginDefaults, PluginLimits};
use crate::model;
use crate::telemetry::Telemetry;
use anyhow::{Context, Result};
use std::path::Path;
use std::sync::Arc;

/// A loaded, initialised plugin instance.
pub struct Standalone {
    kind: PluginKind,
    instance: Instance,
    _runtime: Runtime,
}

impl Standalone {
    /// Compiles `wasm`, checks its world, applies `manifest` (TOML text, or the
    /// defaults) and runs `init`, compiling with `compiler`.
    pub async fn load(
        name: &str,
        wasm: &Path,
        manifest: Option<&str>,
        compiler: Compiler,
    ) -> Result<Standalone> {
        let runtime = Runtime::new(None, compiler)?;
        let bytes =
            std::fs::read(wasm).with_context(|| format!("failed to read {}", wasm.display()))?;
        let component = runtime.compile(&bytes)?;
        let prepared = runtime.prepare(&component)?;
        // The default ceilings apply: what would be invalid in a host is here too.
        let (defaults, limits) = (PluginDefaults::default(), PluginLimits::default());
        let manifest = match manifest {
            Some(text) => Manifest::parse(text, &defaults, &limits)?,
            None => Manifest::defaults(&defaults, &limits),
        };
        let telemetry = Arc::new(Telemetry::new()?);
        let env = Arc::new(PluginEnv::new(
            Arc::from(name),
            prepared.kind().export(),
            manifest,
            Arc::new(KvState::new()),
            HostParts {
                shared: &capabilities::Shared::new()?,
                breakers: &super::breaker::Breakers::new(telemetry.clone()),
                telemetry,
            },
            GuestOutput::default(),
        ));
        let instance = runtime
            .instantiate(&prepared, env)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        Ok(Standalone {
            kind: prepared.kind(),
            instance,
            _runtime: runtime,
        })
    }

    /// The world it implements.
    pub fn kind(&self) -> PluginKind {
        self.kind
    }

    /// Calls `collect`.
    pub async fn collect(&mut self) -> Result<Vec<model::Sample>, CallError> {
        self.instance.collect().await
    }

    /// Calls `evaluate` with these samples and no services or events.
    pub async fn evaluate(
        &mut self,
        samples: Vec<model::Sample>,
    ) -> Result<Vec<RuleAlert>, CallError> {
        let input = types::RuleInput {
            now_ms: crate::time::now_ms(),
            samples: samples.into_iter().map(types::Sample::from).collect(),
            services: Vec::new(),
            events: Vec::new(),
        };
        self.instance.evaluate(input).await
    }

    /// Calls `deliver`.
    pub async fn deliver(&mut self, batch: &[Arc<model::Event>]) -> Result<(), CallError> {
        self.instance.deliver(batch).await
    }
}
