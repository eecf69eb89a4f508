//! The plugin boundary (**API boundary**): WebAssembly components that
//! implement `wit/0.2.0/plugin.wit` (or the frozen 0.1.0), loaded from the
//! plugin directory, sandboxed, supervised and hot-swapped one at a time.
//!
//! - `bindings`: the only `bindgen!`, and WIT <-> host type conversions.
//! - `runtime`: the narrow wrapper around wasmtime (engine, linker, budgets,
//!   fault classification); nothing else touches wasmtime's `Store`.
//! - `context`: what a plugin's store holds; `host/`: one file per imported
//!   interface (the capabilities), each denying what the manifest does not grant.
//! - `capabilities`: one module per capability beyond logging, config and
//!   state (`http`, ...): its manifest section, state, `impl Host` and metrics.
//! - `breaker`: circuit breakers per plugin and data source.
//! - `manifest`: `NAME.toml`.
//! - `registry`: one slot per plugin (status, counters, state that survives reloads).
//! - `reload`: the one path for startup, file changes, API and SIGHUP reloads.
//! - `supervisor`: the one owner of a plugin's status transitions (faults,
//!   restarts with backoff, `failed`, operator stop/start/reset), its restart
//!   history, the persisted stopped set and the `plugin.*` live events.
//! - `driver`: the per-kind loops; calls the supervisor on faults and restarts.
//! - `activity`: calls in flight and the epoch ticker; `fault`: what a guest can do wrong.
//! - `shadow`: a rule's shadow version (evaluated beside the serving one,
//!   alerts to no sink), the alert diff, promote/rollback and backtests.
//! - `priority`: background threads (backtests, the compile pool) at a lower
//!   scheduling priority.
//! - `watcher`: the directory watcher (notify, debounced).
//! - `standalone`: one plugin outside the registry (`wasmon plugin check`, benchmarks).
//!
//! Invariant: a trap, a timeout, a memory bomb or a forbidden capability in a
//! guest becomes a `Fault` of that plugin; it never takes down the process,
//! never blocks the HTTP runtime, and never touches another plugin.

mod activity;
pub mod bindings;
mod breaker;
mod capabilities;
mod consume;
mod context;
mod driver;
mod fault;
mod host;
pub mod manifest;
mod priority;
mod registry;
mod reload;
mod runtime;
mod shadow;
mod standalone;
mod state;
mod supervisor;
pub mod upload;
mod watcher;

pub use breaker::{BreakerState, BreakerView, Breakers};
pub use capabilities::http::SelfAddresses;
pub use fault::Fault;
pub use manifest::{Manifest, PluginKind};
pub use priority::lower_compile_priority;
pub use registry::{
    Deps, ErrorInfo, PluginView, Plugins, RestartRecord, Status, Timings, valid_name,
};
pub use reload::LoadOutcome;
pub use runtime::{CallError, engine_config};
pub use shadow::{
    AlertSide, BacktestLimits, BacktestReport, BacktestRequest, BacktestVersion, DiffEntry,
    DiffKind, HistoryEntry, ShadowError, ShadowView,
};
pub use standalone::Standalone;
pub use supervisor::{Action, Control, WorkerRecord, WorkerTimes};
