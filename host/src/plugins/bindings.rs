//! The only `bindgen!` of the host: Rust bindings of `wit/plugin.wit`, and the
//! conversions between the WIT types and the host's own [`model`](crate::model).
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
        path: "../wit",
        world: "wasmon:plugin/plugin",
        imports: {
            "wasmon:plugin/http": async | trappable,
            "wasmon:plugin/redis": async | trappable,
            "wasmon:plugin/rabbitmq": async | trappable,
            default: trappable,
        },
    });
}

mod collector {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "wasmon:plugin/collector",
        exports: { default: async },
        with: { "wasmon:plugin": super::imports::wasmon::plugin },
    });
}

mod rule {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "wasmon:plugin/rule",
        exports: { default: async },
        with: { "wasmon:plugin": super::imports::wasmon::plugin },
    });
}

mod sink {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "wasmon:plugin/sink",
        exports: { default: async },
        with: { "wasmon:plugin": super::imports::wasmon::plugin },
    });
}

pub use collector::{Collector, CollectorPre};
pub use imports::Plugin;
pub use imports::wasmon::plugin::{host, http, rabbitmq, redis, types};
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
