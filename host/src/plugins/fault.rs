//! Why a call into a plugin was cut short: the one error a guest can cause
//! that the supervisor acts on (restart with backoff, `failed` after
//! `max_restarts`).

use crate::units::ByteSize;
use std::time::Duration;

/// Why a call into a plugin was cut short. A fault discards the instance; the
/// plugin is restarted with backoff, and `failed` after `max_restarts` in a row.
#[derive(Debug, Clone, thiserror::Error, PartialEq)]
pub enum Fault {
    /// The call ran past its time budget, in guest code or waiting in a host
    /// call (a WASI sleep, say): it is cut short either way.
    #[error(
        "timed out after {:.3}s (budget {}, the manifest's `{key}`)",
        elapsed.as_secs_f64(),
        humantime::format_duration(*budget)
    )]
    Timeout {
        /// How long the call actually ran.
        elapsed: Duration,
        /// Its budget.
        budget: Duration,
        /// The manifest key the budget comes from: `timeout` or `init_timeout`.
        key: &'static str,
    },
    /// A linear memory tried to grow past the plugin's limit.
    #[error("memory limit of {limit} exceeded (a memory asked for {desired} bytes)")]
    Memory {
        /// The limit.
        limit: ByteSize,
        /// What was asked for.
        desired: u64,
    },
    /// The guest trapped (a panic, `unreachable`, an out-of-bounds access, ...).
    #[error("trapped: {0}")]
    Trap(String),
    /// The call returned more than the host accepts.
    #[error("output too large: {0}")]
    Output(String),
    /// The guest used a capability its manifest does not grant.
    #[error("capability denied: {0}")]
    Capability(String),
    /// A restart failed because `init` returned an error.
    #[error("restart failed: {0}")]
    Init(String),
}

impl Fault {
    /// The reason as a metric label: `timeout`, `memory`, `trap`, `output`, `capability`.
    pub fn reason(&self) -> &'static str {
        match self {
            Fault::Timeout { .. } => "timeout",
            Fault::Memory { .. } => "memory",
            Fault::Trap(_) => "trap",
            Fault::Output(_) => "output",
            Fault::Capability(_) => "capability",
            Fault::Init(_) => "init",
        }
    }
}
