//! wasmon: a monitoring host whose collectors, alert rules and sinks are
//! sandboxed WebAssembly components, hot-reloaded from a plugin directory.
//!
//! # Layout
//!
//! - [`config`]: the TOML file, environment overrides and defaults.
//! - [`model`]: samples, events and alerts as the host passes them around.
//! - [`store`]: latest values and bounded history of every series, with
//!   cardinality limits.
//! - [`ingest`]: heartbeats and events over HTTP (the seeds' payloads), the
//!   service table and the heartbeat watcher.
//! - [`sampling`]: native samplers (CPU, memory, disks, network, GPU); they know
//!   nothing of wasmtime or HTTP.
//! - [`plugins`]: the plugin boundary. `bindings` holds the only `bindgen!`;
//!   `runtime` is the narrow wrapper around wasmtime; `registry` and `reload`
//!   load, validate and swap plugins; `host` implements the capabilities.
//! - [`rules`]: the alert state machine fed by rule plugins.
//! - [`events`]: the event log every event goes to after it is accepted; sinks read it (delivery: `plugins/driver/sink.rs`).
//! - [`export`]: the HTTP surface: `/metrics`, REST, health.
//! - [`health`]: the host's health (samplers, plugins, data sources, event
//!   log, sinks), shared by `/readyz`, `/api/system/health/full` and `/ws`.
//! - [`live`]: the live event bus the WebSocket clients of `export` follow.
//! - [`amqp`]: the AMQP client (consumer, publisher with confirms, queue
//!   depth) and `[[ingest.amqp]]`.
//! - [`telemetry`]: the host's own metrics.
//! - [`shutdown`]: the token every task watches.
//! - [`cli`]: `wasmon plugin ...`, the plugin author's commands.

pub mod amqp;
pub mod app;
pub mod cli;
pub mod config;
pub mod events;
pub mod export;
pub mod health;
pub mod ingest;
pub mod live;
pub mod memory;
pub mod model;
pub mod plugins;
pub mod rules;
pub mod sampling;
pub mod shutdown;
pub mod state;
pub mod store;
pub mod telemetry;
pub mod time;
pub mod units;
