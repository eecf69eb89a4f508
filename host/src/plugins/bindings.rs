//! The only `bindgen!` module of the host: Rust bindings of
//! `wit/0.2.0/plugin.wit` (current) and of the frozen `wit/0.1.0/plugin.wit`
//! ([`v0_1`]), and the conversions between the WIT types and the host's own
//! [`model`](crate::model).
//!
//! The `plugin` world carries every import (the host capabilities); the three
//! plugin worlds reuse those bindings through `with`, so one `Linker` serves
//! collectors, rules and sinks alike:
//!
//! ```text
//! let mut linker = Linker::new(&engine);
//! bindings::Plugin::add_to_linker::<PluginCtx, HasSelf<PluginCtx>>(&mut linker, |ctx| ctx)?;
//! let collector = bindings::Collector::instantiate_async(&mut store, &component, &linker).await?;
//! let samples = collector.call_collect(&mut store).await?;
//! ```

use crate::model;

mod imports {
    wasmtime::component::bindgen!({
        path: "../wit/0.2.0",
        world: "wasmon:plugin/plugin",
        imports: {
            "wasmon:plugin/http": async | trappable,
            "wasmon:plugin/redis": async | trappable,
            "wasmon:plugin/rabbitmq": async | trappable,
            "wasmon:plugin/sql": async | trappable,
            "wasmon:plugin/storage": async | trappable,
            default: trappable,
        },
    });
}

mod collector {
    wasmtime::component::bindgen!({
        path: "../wit/0.2.0",
        world: "wasmon:plugin/collector",
        exports: { default: async },
        with: { "wasmon:plugin": super::imports::wasmon::plugin },
    });
}

mod rule {
    wasmtime::component::bindgen!({
        path: "../wit/0.2.0",
        world: "wasmon:plugin/rule",
        exports: { default: async },
        with: { "wasmon:plugin": super::imports::wasmon::plugin },
    });
}

mod sink {
    wasmtime::component::bindgen!({
        path: "../wit/0.2.0",
        world: "wasmon:plugin/sink",
        exports: { default: async },
        with: { "wasmon:plugin": super::imports::wasmon::plugin },
    });
}

/// `wasmon:plugin@0.1.0`, frozen in `wit/0.1.0/`: components built against
/// it keep running. Its `types` are 0.2.0's (the interface did not change,
/// and component types are structural), so every export returns the same
/// Rust types whatever the version; its imports are implemented by
/// delegating to 0.2.0's (`host::v0_1`).
pub mod v0_1 {
    mod imports {
        wasmtime::component::bindgen!({
            path: "../wit/0.1.0",
            world: "wasmon:plugin/plugin",
            imports: {
                "wasmon:plugin/http": async | trappable,
                "wasmon:plugin/redis": async | trappable,
                "wasmon:plugin/rabbitmq": async | trappable,
                default: trappable,
            },
            with: { "wasmon:plugin/types": crate::plugins::bindings::types },
        });
    }

    mod collector {
        wasmtime::component::bindgen!({
            path: "../wit/0.1.0",
            world: "wasmon:plugin/collector",
            exports: { default: async },
            with: {
                "wasmon:plugin/types": crate::plugins::bindings::types,
                "wasmon:plugin/host": super::imports::wasmon::plugin::host,
                "wasmon:plugin/http": super::imports::wasmon::plugin::http,
                "wasmon:plugin/redis": super::imports::wasmon::plugin::redis,
                "wasmon:plugin/rabbitmq": super::imports::wasmon::plugin::rabbitmq,
            },
        });
    }

    mod rule {
        wasmtime::component::bindgen!({
            path: "../wit/0.1.0",
            world: "wasmon:plugin/rule",
            exports: { default: async },
            with: {
                "wasmon:plugin/types": crate::plugins::bindings::types,
                "wasmon:plugin/host": super::imports::wasmon::plugin::host,
                "wasmon:plugin/http": super::imports::wasmon::plugin::http,
                "wasmon:plugin/redis": super::imports::wasmon::plugin::redis,
                "wasmon:plugin/rabbitmq": super::imports::wasmon::plugin::rabbitmq,
            },
        });
    }

    mod sink {
        wasmtime::component::bindgen!({
            path: "../wit/0.1.0",
            world: "wasmon:plugin/sink",
            exports: { default: async },
            with: {
                "wasmon:plugin/types": crate::plugins::bindings::types,
                "wasmon:plugin/host": super::imports::wasmon::plugin::host,
                "wasmon:plugin/http": super::imports::wasmon::plugin::http,
                "wasmon:plugin/redis": super::imports::wasmon::plugin::redis,
                "wasmon:plugin/rabbitmq": super::imports::wasmon::plugin::rabbitmq,
            },
        });
    }

    pub use collector::{Collector, CollectorPre};
    pub use imports::wasmon::plugin::{host, http, rabbitmq, redis};
    pub use rule::{Rule, RulePre};
    pub use sink::{Sink, SinkPre};

    /// Links the 0.1.0 imports (each delegating to 0.2.0's implementation).
    pub fn add_to_linker(
        linker: &mut wasmtime::component::Linker<crate::plugins::context::PluginCtx>,
    ) -> wasmtime::Result<()> {
        use crate::plugins::context::PluginCtx;
        use wasmtime::component::HasSelf;
        // `types` declares types only: an empty instance satisfies its import.
        linker.instance("wasmon:plugin/types@0.1.0")?;
        host::add_to_linker::<PluginCtx, HasSelf<PluginCtx>>(linker, |ctx| ctx)?;
        http::add_to_linker::<PluginCtx, HasSelf<PluginCtx>>(linker, |ctx| ctx)?;
        redis::add_to_linker::<PluginCtx, HasSelf<PluginCtx>>(linker, |ctx| ctx)?;
        rabbitmq::add_to_linker::<PluginCtx, HasSelf<PluginCtx>>(linker, |ctx| ctx)?;
        Ok(())
    }
}

/// The version of the WIT package a component was built against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub enum WitVersion {
    /// `wasmon:plugin@0.1.0` (frozen).
    #[serde(rename = "0.1.0")]
    V0_1,
    /// `wasmon:plugin@0.2.0` (current).
    #[serde(rename = "0.2.0")]
    V0_2,
}

impl WitVersion {
    /// `0.1.0` or `0.2.0`.
    pub fn as_str(self) -> &'static str {
        match self {
            WitVersion::V0_1 => "0.1.0",
            WitVersion::V0_2 => "0.2.0",
        }
    }

    /// The version of a component importing `imports`: 0.1.0 when it imports
    /// any `wasmon:plugin/...@0.1.0` interface, else the current one.
    pub fn of_imports<'a>(imports: impl IntoIterator<Item = &'a str>) -> WitVersion {
        let old = imports
            .into_iter()
            .any(|name| name.starts_with("wasmon:plugin/") && name.ends_with("@0.1.0"));
        if old {
            WitVersion::V0_1
        } else {
            WitVersion::V0_2
        }
    }
}

pub use collector::{Collector, CollectorPre};
pub use imports::Plugin;
pub use imports::wasmon::plugin::{host, http, rabbitmq, redis, sql, storage, types};
pub use rule::{Rule, RulePre};
pub use sink::{Sink, SinkPre};

impl From<types::Sample> for model::Sample {
    fn from(s: types::Sample) -> Self {
        model::Sample {
            name: s.name,
            kind: match s.kind {
                types::MetricKind::Gauge => model::MetricKind::Gauge,
                types::MetricKind::Counter => model::MetricKind::Counter,
            },
            labels: s.labels.into_iter().map(|l| (l.name, l.value)).collect(),
            value: s.value,
            help: s.help,
            timestamp_ms: s.timestamp_ms,
        }
    }
}

impl From<model::Sample> for types::Sample {
    fn from(s: model::Sample) -> Self {
        types::Sample {
            name: s.name,
            kind: match s.kind {
                model::MetricKind::Gauge => types::MetricKind::Gauge,
                model::MetricKind::Counter => types::MetricKind::Counter,
            },
            labels: labels(s.labels),
            value: s.value,
            help: s.help,
            timestamp_ms: s.timestamp_ms,
        }
    }
}

impl From<types::Severity> for model::Severity {
    fn from(s: types::Severity) -> Self {
        match s {
            types::Severity::Ok => model::Severity::Ok,
            types::Severity::Warning => model::Severity::Warning,
            types::Severity::Critical => model::Severity::Critical,
        }
    }
}

impl From<model::Severity> for types::Severity {
    fn from(s: model::Severity) -> Self {
        match s {
            model::Severity::Ok => types::Severity::Ok,
            model::Severity::Warning => types::Severity::Warning,
            model::Severity::Critical => types::Severity::Critical,
        }
    }
}

impl From<model::AlertState> for types::AlertState {
    fn from(s: model::AlertState) -> Self {
        match s {
            model::AlertState::Pending => types::AlertState::Pending,
            model::AlertState::Firing => types::AlertState::Firing,
            model::AlertState::Resolved => types::AlertState::Resolved,
        }
    }
}

impl From<&model::Event> for types::Event {
    fn from(e: &model::Event) -> Self {
        types::Event {
            id: e.id.clone(),
            time_ms: e.time_ms,
            event_type: e.event_type.clone(),
            source: e.source.clone(),
            service: e.service.clone(),
            component: e.component.clone(),
            severity: e.severity.into(),
            detail: e.detail.clone(),
            attributes: e
                .attributes
                .to_map()
                .into_iter()
                .map(|(k, v)| types::Label {
                    name: k,
                    value: match v {
                        serde_json::Value::String(s) => s,
                        other => other.to_string(),
                    },
                })
                .collect(),
            alert: e.alert.as_ref().map(|a| types::AlertChange {
                rule: a.rule.clone(),
                name: a.name.clone(),
                labels: labels(a.labels.clone()),
                severity: a.severity.into(),
                state: a.state.into(),
                summary: a.summary.clone(),
                value: a.value,
                active_since_ms: a.active_since_ms,
            }),
        }
    }
}

/// An alert as a rule returned it, in host types.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleAlert {
    /// The condition's name.
    pub name: String,
    /// Its labels.
    pub labels: model::Labels,
    /// How bad; `Ok` means checked and fine.
    pub severity: model::Severity,
    /// One line for humans.
    pub summary: String,
    /// The value checked.
    pub value: Option<f64>,
}

impl From<types::Alert> for RuleAlert {
    fn from(a: types::Alert) -> Self {
        RuleAlert {
            name: a.name,
            labels: a.labels.into_iter().map(|l| (l.name, l.value)).collect(),
            severity: a.severity.into(),
            summary: a.summary,
            value: a.value,
        }
    }
}

fn labels(pairs: model::Labels) -> Vec<types::Label> {
    pairs
        .into_iter()
        .map(|(name, value)| types::Label { name, value })
        .collect()
}
