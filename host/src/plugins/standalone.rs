//! One plugin outside the registry: load a component file, call it directly.
//! For plugin authors (`wasmon plugin check`, `wasmon plugin run`), tests and
//! benchmarks; it goes through the same runtime, limits and capabilities as a
//! registered plugin, and the manifest is held to the default
//! `[plugins.limits]` ceilings, so what a host would refuse is refused here.
//!
//! Loading is staged (read, manifest, compile, world, init) and timed; a
//! failure says at which stage ([`LoadError`]). What the guest wrote to its
//! stdout and stderr is kept and handed out with [`Standalone::take_output`];
//! its `host.log` lines go to `tracing` like in a host.

use super::bindings::{RuleAlert, WitVersion, types};
use super::capabilities;
use super::context::{GuestOutput, HostParts, PluginEnv};
use super::manifest::{Manifest, PluginKind};
use super::runtime::{CallError, Instance, Runtime};
use super::state::KvState;
use crate::config::{Compiler, PluginDefaults, PluginLimits};
use crate::model;
use crate::telemetry::Telemetry;
use anyhow::Result;
use serde::Serialize;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The stage a load failed at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LoadStage {
    /// Reading the component file.
    Read,
    /// Parsing and checking the manifest.
    Manifest,
    /// Compiling: not a valid component.
    Compile,
    /// Reading its world and WIT version, linking its imports.
    World,
    /// Instantiating and calling `init`.
    Init,
}

impl LoadStage {
    /// `read`, `manifest`, `compile`, `world` or `init`.
    pub fn as_str(self) -> &'static str {
        match self {
            LoadStage::Read => "read",
            LoadStage::Manifest => "manifest",
            LoadStage::Compile => "compile",
            LoadStage::World => "world",
            LoadStage::Init => "init",
        }
    }
}

/// A load that failed: the stage and the loader's error, whose text names
/// the file and what to change.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct LoadError {
    /// Where it failed.
    pub stage: LoadStage,
    /// Why, for people.
    pub message: String,
}

impl LoadError {
    fn new(stage: LoadStage, message: impl Into<String>) -> LoadError {
        LoadError {
            stage,
            message: message.into(),
        }
    }
}

/// What loading one plugin took and found.
#[derive(Debug, Clone, Serialize)]
pub struct LoadReport {
    /// The plugin's name.
    pub name: String,
    /// The component file.
    pub file: PathBuf,
    /// Its size.
    pub file_bytes: u64,
    /// The manifest used, if any (else the defaults).
    pub manifest: Option<PathBuf>,
    /// The world it implements (read from its exports).
    pub kind: PluginKind,
    /// The WIT package version it was built against (read from its imports).
    pub wit: WitVersion,
    /// The compiler used.
    pub compiler: &'static str,
    /// Compiling the component.
    pub compile: Duration,
    /// Instantiating it and calling `init`.
    pub init: Duration,
    /// Bytes of linear memory the instance holds after `init`.
    pub memory_bytes: u64,
    /// The manifest's `memory_limit`.
    pub memory_limit: u64,
    /// Everything the component imports, by WIT name (`wasmon:plugin/http@0.2.0`,
    /// `wasi:io/streams@0.2.6`, ...).
    pub imports: Vec<String>,
    /// Everything it exports.
    pub exports: Vec<String>,
}

/// A loaded, initialised plugin instance.
pub struct Standalone {
    report: LoadReport,
    manifest: Manifest,
    instance: Instance,
    output: GuestOutput,
    _runtime: Runtime,
}

impl Standalone {
    /// The WIT package versions this host loads, oldest first.
    pub const SUPPORTED_WIT: [WitVersion; 2] = [WitVersion::V0_1, WitVersion::V0_2];

    /// Compiles `wasm`, checks its world, applies `manifest` (TOML text, or the
    /// defaults) and runs `init`, compiling with `compiler`.
    pub async fn load(
        name: &str,
        wasm: &Path,
        manifest: Option<&str>,
        compiler: Compiler,
    ) -> Result<Standalone> {
        let path = wasm.with_extension("toml");
        let manifest = manifest.map(|text| (text, path.as_path()));
        Ok(Standalone::open(name, wasm, manifest, compiler).await?)
    }

    /// Loads plugin `name` from `wasm` stage by stage, timing compilation
    /// and `init`: the manifest is `(text, where it came from)`, or the
    /// defaults when `None`.
    pub async fn open(
        name: &str,
        wasm: &Path,
        manifest: Option<(&str, &Path)>,
        compiler: Compiler,
    ) -> Result<Standalone, LoadError> {
        let bytes = std::fs::read(wasm).map_err(|e| {
            LoadError::new(
                LoadStage::Read,
                format!("cannot read the component {}: {e}", wasm.display()),
            )
        })?;
        let manifest_path = manifest.map(|(_, path)| path.to_path_buf());
        let manifest = parse_manifest(manifest)?;
        let runtime = Runtime::new(None, compiler)
            .map_err(|e| LoadError::new(LoadStage::Compile, format!("{e:#}")))?;
        let started = Instant::now();
        let component = runtime.compile(&bytes).map_err(|e| {
            LoadError::new(LoadStage::Compile, format!("{}: {e:#}", wasm.display()))
        })?;
        let compile = started.elapsed();
        let component_type = component.component_type();
        let engine = component.engine();
        let imports: Vec<String> = component_type
            .imports(engine)
            .map(|(name, _)| name.to_string())
            .collect();
        let exports: Vec<String> = component_type
            .exports(engine)
            .map(|(name, _)| name.to_string())
            .collect();
        let prepared = runtime
            .prepare(&component)
            .map_err(|e| LoadError::new(LoadStage::World, format!("{}: {e:#}", wasm.display())))?;
        let kind = prepared.kind();
        super::reload::check_kind(&manifest, kind).map_err(|message| {
            let origin = manifest_path
                .as_ref()
                .map_or_else(|| "the manifest".to_string(), |p| p.display().to_string());
            LoadError::new(LoadStage::Manifest, format!("{origin}: {message:#}"))
        })?;
        let telemetry = Arc::new(
            Telemetry::new().map_err(|e| LoadError::new(LoadStage::Init, format!("{e:#}")))?,
        );
        let shared = capabilities::Shared::new()
            .map_err(|e| LoadError::new(LoadStage::Init, format!("{e:#}")))?;
        let output = GuestOutput::default();
        let env = Arc::new(PluginEnv::new(
            Arc::from(name),
            kind.export(),
            manifest.clone(),
            Arc::new(KvState::new()),
            HostParts {
                shared: &shared,
                breakers: &super::breaker::Breakers::new(telemetry.clone()),
                telemetry,
            },
            output.clone(),
        ));
        let started = Instant::now();
        let instance = runtime
            .instantiate(&prepared, env)
            .await
            .map_err(|e| init_error(e, wasm))?;
        let init = started.elapsed();
        let report = LoadReport {
            name: name.to_string(),
            file: wasm.to_path_buf(),
            file_bytes: bytes.len() as u64,
            manifest: manifest_path,
            kind,
            wit: prepared.version(),
            compiler: compiler.resolve().as_str(),
            compile,
            init,
            memory_bytes: instance.memory_held(),
            memory_limit: manifest.memory_limit.0,
            imports,
            exports,
        };
        Ok(Standalone {
            report,
            manifest,
            instance,
            output,
            _runtime: runtime,
        })
    }

    /// The world it implements.
    pub fn kind(&self) -> PluginKind {
        self.report.kind
    }

    /// What loading found and took.
    pub fn report(&self) -> &LoadReport {
        &self.report
    }

    /// The manifest it runs under.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Bytes of linear memory the instance holds now.
    pub fn memory_bytes(&self) -> u64 {
        self.instance.memory_held()
    }

    /// What the guest wrote to stdout and stderr since the last call of
    /// this (its last 4 KiB), trimmed; empty when nothing.
    pub fn take_output(&self) -> String {
        let tail = self.output.tail();
        self.output.clear();
        tail
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
        self.evaluate_input(samples, Vec::new(), &[]).await
    }

    /// Calls `evaluate` with a whole input, as a host's rule loop would
    /// (now, the samples its `select` matches, the services, the events
    /// recorded since the last evaluation).
    pub async fn evaluate_input(
        &mut self,
        samples: Vec<model::Sample>,
        services: Vec<types::ServiceState>,
        events: &[model::Event],
    ) -> Result<Vec<RuleAlert>, CallError> {
        let input = types::RuleInput {
            now_ms: crate::time::now_ms(),
            samples: samples.into_iter().map(types::Sample::from).collect(),
            services,
            events: events.iter().map(types::Event::from).collect(),
        };
        self.instance.evaluate(input).await
    }

    /// Whether the manifest's `select` hands a series named `name` to this
    /// rule, matching as the host's store does: an exact name, or a prefix
    /// ending in `*` (`"*"` selects everything; an empty `select` nothing).
    pub fn selects(&self, name: &str) -> bool {
        selected(&self.manifest.select, name)
    }

    /// Whether the manifest's `events` sends events of `event_type` to this sink.
    pub fn wants_event(&self, event_type: &str) -> bool {
        self.manifest.wants_event(event_type)
    }

    /// Calls `deliver`.
    pub async fn deliver(&mut self, batch: &[Arc<model::Event>]) -> Result<(), CallError> {
        self.instance.deliver(batch).await
    }
}

/// Whether a sample's name is selected by `selectors` the way the host's
/// store selects a rule's series: an exact name, or a prefix ending in `*`
/// (`"*"` selects everything).
fn selected(selectors: &[String], name: &str) -> bool {
    selectors.iter().any(|s| match s.strip_suffix('*') {
        Some(prefix) => name.starts_with(prefix),
        None => s == name,
    })
}

fn parse_manifest(source: Option<(&str, &Path)>) -> Result<Manifest, LoadError> {
    // The default ceilings apply: what would be invalid in a host is here too.
    let (defaults, limits) = (PluginDefaults::default(), PluginLimits::default());
    let Some((text, path)) = source else {
        return Ok(Manifest::defaults(&defaults, &limits));
    };
    let allow: Vec<String> = super::manifest::expand::ENV_ALLOW
        .iter()
        .map(|s| s.to_string())
        .collect();
    let origin = path.display().to_string();
    Manifest::parse_with_env(text, &defaults, &limits, &allow, &origin)
        .map_err(|e| LoadError::new(LoadStage::Manifest, format!("{origin}: {e:#}")))
}

/// The keys that only apply to some kinds, checked as the host's loader
/// does (`reload/build.rs`).
fn init_error(error: CallError, wasm: &Path) -> LoadError {
    LoadError::new(LoadStage::Init, format!("{}: {error}", wasm.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_match_like_the_store() {
        let select = vec!["probe_*".to_string(), "up".to_string()];
        assert!(selected(&select, "probe_success"));
        assert!(selected(&select, "up"));
        assert!(!selected(&select, "upper"));
        assert!(!selected(&select, "prob"));
        assert!(selected(&["*".to_string()], "anything"));
        assert!(!selected(&[], "anything"));
    }

    #[test]
    fn a_manifest_for_another_kind_is_refused_naming_the_key() {
        let (d, l) = (PluginDefaults::default(), PluginLimits::default());
        let manifest = Manifest::parse("select = [\"a_*\"]", &d, &l).unwrap();
        let check_kind =
            |m: &Manifest, k| super::super::reload::check_kind(m, k).map_err(|e| format!("{e:#}"));
        let error = check_kind(&manifest, PluginKind::Collector).unwrap_err();
        assert!(error.contains("`select`"), "{error}");
        assert!(check_kind(&manifest, PluginKind::Rule).is_ok());
        let manifest = Manifest::parse("kind = \"sink\"", &d, &l).unwrap();
        let error = check_kind(&manifest, PluginKind::Rule).unwrap_err();
        assert!(error.contains("kind = \"sink\""), "{error}");
    }

    #[test]
    fn a_missing_file_fails_at_the_read_stage_naming_it() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let Err(error) = runtime.block_on(Standalone::open(
            "x",
            Path::new("/nonexistent/x.wasm"),
            None,
            Compiler::default(),
        )) else {
            panic!("loaded a missing file");
        };
        assert_eq!(error.stage, LoadStage::Read);
        assert!(error.message.contains("/nonexistent/x.wasm"), "{error}");
    }
}
