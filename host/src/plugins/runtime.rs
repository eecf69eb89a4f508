//! The narrow wrapper around wasmtime (**API boundary**): the rest of the host
//! never touches `Engine`, `Linker` or `Store` directly.
//!
//! One `Store` per plugin instance; calls into one instance are serialised by
//! its owner; every call runs under a time budget (epoch interruption, with a
//! ticker on its own thread that runs only while a call is in flight, yielding
//! to tokio every tick so a busy guest never holds a worker) and a memory
//! limit (`ResourceLimiter`). A trap, a timeout or
//! a limit hit becomes a [`Fault`]: the instance is discarded, never reused.
//!
//! A component that cannot load is explained in WIT terms by `teach` (the
//! version it was built for against the supported ones, the import or export
//! at fault, a hint), with wasmtime's error kept as the cause.

mod on_message;
pub(crate) mod teach;

use super::activity::{Activity, EpochTicker};
use super::bindings::{self, RuleAlert, WitVersion, types};
use super::context::{PluginCtx, PluginEnv};
use super::fault::Fault;
use super::manifest::PluginKind;
use crate::config::Compiler;
use crate::model;
use anyhow::{Context, Result, bail};
use std::sync::Arc;
use std::time::{Duration, Instant};
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{Engine, Store, UpdateDeadline};

/// The time budget of one call: epoch interruption stops guest code at its
/// deadline, and the call's future is dropped there if it is waiting in a
/// host call (a WASI sleep, an HTTP request), so the budget holds either way.
#[derive(Debug, Clone, Copy)]
struct Budget {
    started: Instant,
    limit: Duration,
    /// The manifest key `limit` comes from.
    key: &'static str,
}

impl Budget {
    /// `limit` from now.
    fn new(limit: Duration, key: &'static str) -> Self {
        Budget {
            started: Instant::now(),
            limit,
            key,
        }
    }

    fn deadline(&self) -> Instant {
        self.started + self.limit
    }

    /// The fault of a call stopped at this budget.
    fn exceeded(&self) -> Fault {
        Fault::Timeout {
            elapsed: self.started.elapsed(),
            budget: self.limit,
            key: self.key,
        }
    }
}

/// A failed call, as the caller must treat it.
#[derive(Debug, Clone, PartialEq)]
pub enum CallError {
    /// The export returned an error: an expected failure; the instance stays.
    Plugin(String),
    /// A sink could not deliver; `retryable` says whether to try the batch again.
    Delivery {
        /// Try again later.
        retryable: bool,
        /// Why.
        message: String,
    },
    /// The instance broke a rule or a limit and must be discarded.
    Fault(Fault),
}

impl std::fmt::Display for CallError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CallError::Plugin(m) => write!(f, "plugin returned an error: {m}"),
            CallError::Delivery {
                retryable: true,
                message,
            } => write!(f, "delivery failed (retryable): {message}"),
            CallError::Delivery {
                retryable: false,
                message,
            } => write!(f, "delivery failed (permanent): {message}"),
            CallError::Fault(fault) => fault.fmt(f),
        }
    }
}

impl From<Fault> for CallError {
    fn from(f: Fault) -> Self {
        CallError::Fault(f)
    }
}

/// The engine, the linker with every host capability, and the epoch ticker.
pub struct Runtime {
    engine: Engine,
    linker: Linker<PluginCtx>,
    activity: Arc<Activity>,
    _ticker: EpochTicker,
}

/// A compiled component, type-checked against its world and ready to instantiate.
#[derive(Clone)]
pub struct Prepared {
    kind: PluginKind,
    version: WitVersion,
    pre: Pre,
}

/// A world of either WIT version; their types are the same Rust types.
#[derive(Clone)]
enum Pre {
    Collector(bindings::CollectorPre<PluginCtx>),
    Rule(bindings::RulePre<PluginCtx>),
    Sink(bindings::SinkPre<PluginCtx>),
    CollectorV0_1(bindings::v0_1::CollectorPre<PluginCtx>),
    RuleV0_1(bindings::v0_1::RulePre<PluginCtx>),
    SinkV0_1(bindings::v0_1::SinkPre<PluginCtx>),
}

impl Prepared {
    /// The world it implements.
    pub fn kind(&self) -> PluginKind {
        self.kind
    }

    /// The WIT version it was built against.
    pub fn version(&self) -> WitVersion {
        self.version
    }
}

/// The engine settings every plugin is compiled and run under, before the
/// compilation cache: `compiler`, epoch interruption, parallel compilation.
pub fn engine_config(compiler: Compiler) -> wasmtime::Config {
    let mut config = wasmtime::Config::new();
    config
        .epoch_interruption(true)
        .parallel_compilation(true)
        .cranelift_opt_level(wasmtime::OptLevel::Speed)
        .strategy(match compiler.resolve() {
            Compiler::Winch => wasmtime::Strategy::Winch,
            _ => wasmtime::Strategy::Cranelift,
        });
    config
}

impl Runtime {
    /// Builds the engine (`compiler`, epoch interruption, the compilation
    /// cache when `cache_dir` is given) and links every capability.
    pub fn new(cache_dir: Option<&std::path::Path>, compiler: Compiler) -> Result<Runtime> {
        let mut config = engine_config(compiler);
        if let Some(dir) = cache_dir {
            std::fs::create_dir_all(dir).with_context(|| {
                format!(
                    "failed to create the compilation cache directory {}",
                    dir.display()
                )
            })?;
            let mut cache = wasmtime::CacheConfig::new();
            cache.with_directory(dir);
            config.cache(Some(
                wasmtime::Cache::new(cache)
                    .map_err(anyhow::Error::from)
                    .context("failed to set up the compilation cache")?,
            ));
        }
        let engine = Engine::new(&config)
            .map_err(anyhow::Error::from)
            .with_context(|| {
                format!(
                    "failed to create the wasmtime engine with plugins.compiler = \"{}\"",
                    compiler.as_str()
                )
            })?;
        let mut linker = Linker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .map_err(anyhow::Error::from)
            .context("failed to link WASI")?;
        bindings::Plugin::add_to_linker::<PluginCtx, HasSelf<PluginCtx>>(&mut linker, |ctx| ctx)
            .map_err(anyhow::Error::from)
            .context("failed to link the host capabilities")?;
        bindings::v0_1::add_to_linker(&mut linker)
            .map_err(anyhow::Error::from)
            .context("failed to link the wasmon:plugin@0.1.0 capabilities")?;
        let activity = Arc::new(Activity::default());
        let ticker = EpochTicker::start(engine.clone(), activity.clone())?;
        Ok(Runtime {
            engine,
            linker,
            activity,
            _ticker: ticker,
        })
    }

    /// Compiles a component. Blocking and CPU-heavy: call it off the async workers.
    pub fn compile(&self, bytes: &[u8]) -> Result<Component> {
        if bytes.starts_with(b"\0asm") && bytes.get(4..8) == Some(&[1, 0, 0, 0]) {
            bail!("{}", teach::CORE_MODULE);
        }
        Component::new(&self.engine, bytes).map_err(|e| {
            let hint = if bytes.starts_with(b"\0asm") {
                "hint: rebuild it with this wasmon's toolchain (`wasmon plugin build`)"
            } else {
                "hint: the file does not start with the WebAssembly magic bytes; is it the `.wasm` the build wrote (not the manifest, a text file or a download page)?"
            };
            anyhow::Error::from(e).context(format!("not a valid WebAssembly component. {hint}"))
        })
    }

    /// Reads the world a component implements from its exports, then checks
    /// its imports and exports against that world. An error says, in WIT
    /// names, what does not match (the WIT version it was built for against
    /// the supported ones, the import or export at fault) and what to do;
    /// wasmtime's own error is its cause.
    pub fn prepare(&self, component: &Component) -> Result<Prepared> {
        let shape = teach::Shape::of(component, &self.engine);
        let linked = self.linker.instantiate_pre(component);
        if let Some(message) = shape.unsupported_version() {
            return Err(match linked {
                Err(e) => anyhow::Error::from(e).context(message),
                Ok(_) => anyhow::anyhow!(message),
            });
        }
        let kind = shape.world().map_err(|message| anyhow::anyhow!(message))?;
        let version = WitVersion::of_imports(shape.import_names());
        let instance_pre = linked.map_err(|e| {
            let message = shape.link_error(kind, &e);
            anyhow::Error::from(e).context(message)
        })?;
        let mismatch = |e: wasmtime::Error| {
            let message = shape.world_error(kind, version.as_str(), &e);
            anyhow::Error::from(e).context(message)
        };
        use bindings::v0_1;
        let pre = match (version, kind) {
            (WitVersion::V0_2, PluginKind::Collector) => {
                Pre::Collector(bindings::CollectorPre::new(instance_pre).map_err(mismatch)?)
            }
            (WitVersion::V0_2, PluginKind::Rule) => {
                Pre::Rule(bindings::RulePre::new(instance_pre).map_err(mismatch)?)
            }
            (WitVersion::V0_2, PluginKind::Sink) => {
                Pre::Sink(bindings::SinkPre::new(instance_pre).map_err(mismatch)?)
            }
            (WitVersion::V0_1, PluginKind::Collector) => {
                Pre::CollectorV0_1(v0_1::CollectorPre::new(instance_pre).map_err(mismatch)?)
            }
            (WitVersion::V0_1, PluginKind::Rule) => {
                Pre::RuleV0_1(v0_1::RulePre::new(instance_pre).map_err(mismatch)?)
            }
            (WitVersion::V0_1, PluginKind::Sink) => {
                Pre::SinkV0_1(v0_1::SinkPre::new(instance_pre).map_err(mismatch)?)
            }
        };
        Ok(Prepared { kind, version, pre })
    }

    /// Instantiates a prepared component and calls its `init`, both within
    /// the manifest's `init_timeout`.
    pub async fn instantiate(
        &self,
        prepared: &Prepared,
        env: Arc<PluginEnv>,
    ) -> Result<Instance, CallError> {
        let budget = Budget::new(env.manifest.init_timeout, "init_timeout");
        let fuel = hostcall_fuel(env.manifest.max_samples_per_call);
        env.output.clear();
        let mut store = Store::new(&self.engine, PluginCtx::new(env, self.activity.clone()));
        store.limiter(|ctx| &mut ctx.limiter);
        // Bounds what the host allocates for one call's data (a huge answer is
        // refused while it is being copied, not after).
        store.set_hostcall_fuel(fuel);
        store.epoch_deadline_callback(|ctx| {
            Ok(if Instant::now() >= ctx.data().call.deadline {
                UpdateDeadline::Interrupt
            } else {
                UpdateDeadline::Yield(1)
            })
        });
        let pre = prepared.pre.clone();
        let exports = run(&mut store, budget, async |store| {
            Ok(match &pre {
                Pre::Collector(p) => Exports::Collector(p.instantiate_async(&mut *store).await?),
                Pre::Rule(p) => Exports::Rule(p.instantiate_async(&mut *store).await?),
                Pre::Sink(p) => Exports::Sink(p.instantiate_async(&mut *store).await?),
                Pre::CollectorV0_1(p) => {
                    Exports::CollectorV0_1(p.instantiate_async(&mut *store).await?)
                }
                Pre::RuleV0_1(p) => Exports::RuleV0_1(p.instantiate_async(&mut *store).await?),
                Pre::SinkV0_1(p) => Exports::SinkV0_1(p.instantiate_async(&mut *store).await?),
            })
        })
        .await?;
        let mut instance = Instance { store, exports };
        instance.init(budget).await?;
        Ok(instance)
    }
}

/// The exports of one instance, by world.
enum Exports {
    Collector(bindings::Collector),
    Rule(bindings::Rule),
    Sink(bindings::Sink),
    CollectorV0_1(bindings::v0_1::Collector),
    RuleV0_1(bindings::v0_1::Rule),
    SinkV0_1(bindings::v0_1::Sink),
}

/// One live instance of a plugin: its store and its exports.
pub struct Instance {
    store: Store<PluginCtx>,
    exports: Exports,
}

impl Instance {
    /// Bytes of linear memory the instance holds.
    pub fn memory_held(&self) -> u64 {
        self.store.data().limiter.held
    }

    /// The longest `Retry-After` of a 429 or 503 answer the last call
    /// received through the `http` capability.
    pub fn retry_after(&self) -> Option<Duration> {
        self.store.data().call.retry_after
    }

    async fn init(&mut self, budget: Budget) -> Result<(), CallError> {
        let result = match &self.exports {
            Exports::Collector(e) => {
                run(&mut self.store, budget, async |s| e.call_init(s).await).await?
            }
            Exports::Rule(e) => {
                run(&mut self.store, budget, async |s| e.call_init(s).await).await?
            }
            Exports::Sink(e) => {
                run(&mut self.store, budget, async |s| e.call_init(s).await).await?
            }
            Exports::CollectorV0_1(e) => {
                run(&mut self.store, budget, async |s| e.call_init(s).await).await?
            }
            Exports::RuleV0_1(e) => {
                run(&mut self.store, budget, async |s| e.call_init(s).await).await?
            }
            Exports::SinkV0_1(e) => {
                run(&mut self.store, budget, async |s| e.call_init(s).await).await?
            }
        };
        result.map_err(|e| CallError::Plugin(format!("init failed: {}", e.message)))
    }

    /// Calls a collector's `collect`.
    pub async fn collect(&mut self) -> Result<Vec<model::Sample>, CallError> {
        let env = self.store.data().env.clone();
        let budget = Budget::new(env.manifest.timeout, "timeout");
        let samples = match &self.exports {
            Exports::Collector(e) => {
                run(&mut self.store, budget, async |s| e.call_collect(s).await).await?
            }
            Exports::CollectorV0_1(e) => {
                run(&mut self.store, budget, async |s| e.call_collect(s).await).await?
            }
            _ => return Err(wrong_world("collect")),
        }
        .map_err(|e| CallError::Plugin(e.message))?;
        check_output(samples.len(), env.manifest.max_samples_per_call)?;
        Ok(samples.into_iter().map(model::Sample::from).collect())
    }

    /// Calls a rule's `evaluate`.
    pub async fn evaluate(&mut self, input: types::RuleInput) -> Result<Vec<RuleAlert>, CallError> {
        let env = self.store.data().env.clone();
        let budget = Budget::new(env.manifest.timeout, "timeout");
        let alerts = match &self.exports {
            Exports::Rule(e) => {
                run(&mut self.store, budget, async |s| {
                    e.call_evaluate(s, &input).await
                })
                .await?
            }
            Exports::RuleV0_1(e) => {
                run(&mut self.store, budget, async |s| {
                    e.call_evaluate(s, &input).await
                })
                .await?
            }
            _ => return Err(wrong_world("evaluate")),
        }
        .map_err(|e| CallError::Plugin(e.message))?;
        check_output(alerts.len(), env.manifest.max_samples_per_call)?;
        Ok(alerts.into_iter().map(RuleAlert::from).collect())
    }

    /// Calls a sink's `deliver`.
    pub async fn deliver(&mut self, batch: &[Arc<model::Event>]) -> Result<(), CallError> {
        let budget = Budget::new(self.store.data().env.manifest.timeout, "timeout");
        let batch: Vec<types::Event> = batch.iter().map(|e| types::Event::from(&**e)).collect();
        match &self.exports {
            Exports::Sink(e) => {
                run(&mut self.store, budget, async |s| {
                    e.call_deliver(s, &batch).await
                })
                .await?
            }
            Exports::SinkV0_1(e) => {
                run(&mut self.store, budget, async |s| {
                    e.call_deliver(s, &batch).await
                })
                .await?
            }
            _ => return Err(wrong_world("deliver")),
        }
        .map_err(|e| match e {
            types::DeliveryError::Retryable(message) => CallError::Delivery {
                retryable: true,
                message,
            },
            types::DeliveryError::Permanent(message) => CallError::Delivery {
                retryable: false,
                message,
            },
        })
    }
}

fn wrong_world(export: &str) -> CallError {
    CallError::Fault(Fault::Trap(format!(
        "the host called `{export}` on a plugin of another world"
    )))
}

fn check_output(len: usize, max: usize) -> Result<(), Fault> {
    if len > max {
        return Err(Fault::Output(format!(
            "returned {len} items; the limit per call is {max} (max_samples_per_call)"
        )));
    }
    Ok(())
}

/// Runs one call under its budget and turns every way it can break into a
/// [`Fault`]. At the deadline the call is stopped wherever it is: in guest
/// code by epoch interruption, in a host call by dropping its future (the
/// instance is then discarded with the fault, never called again).
async fn run<R>(
    store: &mut Store<PluginCtx>,
    budget: Budget,
    call: impl AsyncFnOnce(&mut Store<PluginCtx>) -> wasmtime::Result<R>,
) -> Result<R, Fault> {
    // The epoch advances only while some call is in flight.
    let _active = store.data().activity.enter();
    let deadline = budget.deadline();
    store.data_mut().call.start(deadline);
    store.set_epoch_deadline(1);
    let result = tokio::time::timeout_at(deadline.into(), call(&mut *store)).await;
    let violation = store.data_mut().call.violation.take();
    let memory = store.data().limiter.held;
    let env = store.data().env.clone();
    env.metrics
        .memory
        .set(i64::try_from(memory).unwrap_or(i64::MAX));
    match result {
        Err(_) => Err(budget.exceeded()),
        Ok(Err(error)) => Err(classify(error, budget, &env)),
        Ok(Ok(_)) if violation.is_some() => Err(Fault::Capability(violation.unwrap_or_default())),
        Ok(Ok(value)) => Ok(value),
    }
}

/// Bytes of data one call may move from the guest to the host: room for
/// `max_samples` samples of 1 KiB each, and at least 4 MiB.
fn hostcall_fuel(max_samples: usize) -> usize {
    max_samples.saturating_mul(1024).max(4 << 20)
}

/// What wasmtime says when a call moves more data than its hostcall fuel.
const FUEL_EXHAUSTED: &str = "fuel allocated for hostcalls has been exhausted";

/// What a wasmtime error from a call means.
fn classify(error: wasmtime::Error, budget: Budget, env: &PluginEnv) -> Fault {
    if let Some(fault) = error.downcast_ref::<Fault>() {
        return fault.clone();
    }
    if error.downcast_ref::<wasmtime::Trap>() == Some(&wasmtime::Trap::Interrupt) {
        return budget.exceeded();
    }
    if error
        .chain()
        .any(|e| e.to_string().contains(FUEL_EXHAUSTED))
    {
        let limit = hostcall_fuel(env.manifest.max_samples_per_call);
        return Fault::Output(format!(
            "the call moved more than {limit} bytes from the plugin to the host"
        ));
    }
    let cause = match error.downcast_ref::<wasmtime::Trap>() {
        Some(trap) => trap.to_string(),
        None => error.root_cause().to_string(),
    };
    // A Rust guest prints its panic message to stderr just before it aborts;
    // componentize-py prints the traceback (when it does) before its panic.
    match teach::guest_said(&env.output.tail()) {
        Some(said) => Fault::Trap(format!("{cause}; the plugin wrote: {said}")),
        None => Fault::Trap(cause),
    }
}
