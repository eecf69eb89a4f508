//! The live event types: one `{domain}.{action}` name per [`Payload`]
//! variant, its channel, a description, and the JSON Schema of its `data`,
//! generated from the Rust type that is serialized (`schemars`), so the
//! registry (`GET /api/system/websocket/events`) cannot drift from the wire.

use super::Channel;
use crate::model::{AlertChange, Event};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;

/// An alert that changed state (`alert.*`).
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct AlertData {
    /// The rule plugin that raised it.
    pub rule: String,
    /// The alert's name.
    pub name: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Its severity now: `ok`, `warning` or `critical`.
    pub severity: String,
    /// Its state now: `pending`, `firing` or `resolved`.
    pub state: String,
    /// One line for humans.
    pub summary: String,
    /// The value the rule checked, if it gave one.
    pub value: Option<f64>,
    /// Unix milliseconds when the condition was first seen.
    pub active_since_ms: u64,
}

impl From<&AlertChange> for AlertData {
    fn from(change: &AlertChange) -> Self {
        AlertData {
            rule: change.rule.clone(),
            name: change.name.clone(),
            labels: change.labels.iter().cloned().collect(),
            severity: change.severity.as_str().to_string(),
            state: change.state.as_str().to_string(),
            summary: change.summary.clone(),
            value: change.value,
            active_since_ms: change.active_since_ms,
        }
    }
}

/// An event the event log recorded (`event.recorded`), as `GET /api/events`
/// lists it.
#[derive(Debug, Serialize, JsonSchema)]
pub struct EventData<'a> {
    /// Unique and stable across redelivery (a UUIDv7).
    pub id: &'a str,
    /// Unix milliseconds when it was recorded.
    pub time_ms: u64,
    /// Its type, e.g. `error`, `service.down`, `alert.firing`.
    pub event_type: &'a str,
    /// Who recorded it: `ingest`, `heartbeat`, `rule`, or a plugin name.
    pub source: &'a str,
    /// The service it concerns.
    pub service: Option<&'a str>,
    /// The component within the service.
    pub component: Option<&'a str>,
    /// `ok`, `warning` or `critical`.
    pub severity: &'a str,
    /// Free text.
    pub detail: Option<&'a str>,
    /// Everything else the producer sent, flattened with dotted keys.
    pub attributes: serde_json::Map<String, serde_json::Value>,
}

/// The event behind `event.recorded`: shared with the event log, turned
/// into [`EventData`] only when a client serializes it.
#[derive(Debug, Clone)]
pub struct RecordedEvent(pub Arc<Event>);

impl Serialize for RecordedEvent {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let e = &*self.0;
        EventData {
            id: &e.id,
            time_ms: e.time_ms,
            event_type: &e.event_type,
            source: &e.source,
            service: e.service.as_deref(),
            component: e.component.as_deref(),
            severity: e.severity.as_str(),
            detail: e.detail.as_deref(),
            attributes: e.attributes.to_map(),
        }
        .serialize(serializer)
    }
}

impl JsonSchema for RecordedEvent {
    fn schema_name() -> Cow<'static, str> {
        EventData::schema_name()
    }

    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        EventData::json_schema(generator)
    }
}

/// A service's heartbeat state changed (`service.up`, `service.down`).
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ServiceData {
    /// The service.
    pub service: String,
    /// `up` or `down`.
    pub status: String,
    /// Unix milliseconds of the transition.
    pub time_ms: u64,
    /// Why, for humans (how long it was silent, or down).
    pub detail: Option<String>,
}

impl ServiceData {
    /// From a `service.up` / `service.down` event of the heartbeat watcher.
    pub fn from_event(event: &Event) -> Self {
        ServiceData {
            service: event.service.clone().unwrap_or_default(),
            status: event.event_type.trim_start_matches("service.").to_string(),
            time_ms: event.time_ms,
            detail: event.detail.clone(),
        }
    }
}

/// Something happened to a plugin (`plugin.*`).
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct PluginData {
    /// The plugin's name.
    pub plugin: String,
    /// Its world: `collector`, `rule` or `sink`, once known.
    pub kind: Option<String>,
    /// The generation serving after this (0 when none).
    pub generation: u64,
    /// Its status now: `running`, `crashed`, `failed`, `invalid`, ...
    pub status: String,
    /// The fault or error, for `plugin.faulted`, `plugin.failed` and
    /// `plugin.load_failed`.
    pub error: Option<String>,
}

impl PluginData {
    /// What a `plugin.*` message says about `plugin`.
    pub fn new(
        plugin: &str,
        kind: Option<&str>,
        generation: u64,
        status: &str,
        error: Option<String>,
    ) -> Self {
        PluginData {
            plugin: plugin.to_string(),
            kind: kind.map(str::to_string),
            generation,
            status: status.to_string(),
            error,
        }
    }
}

/// The host's health changed (`system.health_changed`).
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct HealthData {
    /// `healthy`, `degraded` (a plugin is not running) or `unhealthy` (a
    /// plugin marked `critical` is not running).
    pub status: String,
    /// The status before, if one was known.
    pub previous: Option<String>,
    /// Whether every plugin found at startup has loaded or failed.
    pub ready: bool,
    /// The plugins that are not running, by name, with their status.
    pub plugins_down: BTreeMap<String, String>,
    /// The `critical` plugins among them.
    pub critical_down: Vec<String>,
}

/// The answer to a client's `subscribe` or `unsubscribe` (`system.subscribed`).
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct SubscribedData {
    /// The channels the client receives now.
    pub channels: Vec<Channel>,
    /// The series selection of the `metrics` channel, if any.
    pub metrics: Option<MetricsSelection>,
}

/// Which series a client's `metrics` channel follows.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct MetricsSelection {
    /// Exact names or prefixes ending in `*` (`wasmon_gpu_*`), as one
    /// comma-separated string or a list.
    #[serde(deserialize_with = "names")]
    pub name: Vec<String>,
    /// Labels a series must have, with these values.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

fn names<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Names {
        One(String),
        Many(Vec<String>),
    }
    let list = match Names::deserialize(d)? {
        Names::One(text) => text.split(',').map(str::to_string).collect(),
        Names::Many(list) => list,
    };
    Ok(list
        .into_iter()
        .map(|n| n.trim().to_string())
        .filter(|n| !n.is_empty())
        .collect())
}

/// The client's queue overflowed; it is disconnected (`system.lagged`).
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct LaggedData {
    /// What happened and what the limit is.
    pub detail: String,
    /// The per-client queue bound (`server.ws_queue`).
    pub queue: usize,
}

/// A client message the host could not use (`system.error`).
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct ErrorData {
    /// What was wrong with it.
    pub detail: String,
}

/// One series of the `metrics` channel.
#[derive(Debug, Clone, PartialEq, Serialize, JsonSchema)]
pub struct SeriesValue {
    /// Exported name.
    pub name: String,
    /// All labels, host-added ones included.
    pub labels: BTreeMap<String, String>,
    /// Latest value.
    pub value: f64,
    /// Unix milliseconds of the latest value.
    pub timestamp_ms: u64,
}

/// A series that left the selection (stale, or its source is gone).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, JsonSchema)]
pub struct SeriesKey {
    /// Exported name.
    pub name: String,
    /// All labels.
    pub labels: BTreeMap<String, String>,
}

/// `metrics.snapshot` and `metrics.update`.
#[derive(Debug, Clone, Default, Serialize, JsonSchema)]
pub struct MetricsData {
    /// Series that are new or got a new sample since the last message.
    pub series: Vec<SeriesValue>,
    /// Series that left the selection since the last message.
    pub removed: Vec<SeriesKey>,
    /// Whether the selection matched more series than one client may follow
    /// (the rest are left out).
    pub truncated: bool,
}

/// One event type, as the registry lists it.
#[derive(Debug, Clone, Serialize)]
pub struct EventType {
    /// `{domain}.{action}`.
    #[serde(rename = "type")]
    pub name: &'static str,
    /// The channel that carries it.
    pub channel: Channel,
    /// What it means.
    pub description: &'static str,
    /// Never, so far.
    pub deprecated: bool,
    /// JSON Schema of its `data`.
    pub payload_schema: schemars::Schema,
}

/// The envelope every message has on the wire.
#[derive(Serialize)]
struct Envelope<'a, T> {
    #[serde(rename = "type")]
    name: &'static str,
    channel: Channel,
    ts: u64,
    data: &'a T,
}

macro_rules! event_types {
    ($( $variant:ident($data:ty) = $name:literal, $channel:ident, $description:literal; )*) => {
        /// What a live message carries; the variant names its type.
        #[derive(Debug, Clone)]
        pub enum Payload {
            $(
                #[doc = $description]
                $variant($data),
            )*
        }

        impl Payload {
            /// Its `{domain}.{action}` type.
            pub fn type_name(&self) -> &'static str {
                match self {
                    $( Payload::$variant(_) => $name, )*
                }
            }

            /// The channel that carries it.
            pub fn channel(&self) -> Channel {
                match self {
                    $( Payload::$variant(_) => Channel::$channel, )*
                }
            }

            /// The whole message: `{"type", "channel", "ts", "data"}`.
            pub fn to_json(&self, ts: u64) -> String {
                let text = match self {
                    $(
                        Payload::$variant(data) => serde_json::to_string(&Envelope {
                            name: $name,
                            channel: Channel::$channel,
                            ts,
                            data,
                        }),
                    )*
                };
                // Every data type serializes (no maps with non-string keys).
                text.unwrap_or_else(|e| {
                    serde_json::json!({
                        "type": "system.error",
                        "channel": "system",
                        "ts": ts,
                        "data": { "detail": format!("failed to serialize a {} message: {e}", self.type_name()) },
                    })
                    .to_string()
                })
            }
        }

        /// Every event type, with its channel, description and schema.
        pub fn registry() -> Vec<EventType> {
            vec![
                $(
                    EventType {
                        name: $name,
                        channel: Channel::$channel,
                        description: $description,
                        deprecated: false,
                        payload_schema: schemars::schema_for!($data),
                    },
                )*
            ]
        }
    };
}

event_types! {
    AlertPending(AlertData) = "alert.pending", Alerts,
        "An alert's condition started to hold; it fires once it has held for the rule's `for`.";
    AlertFiring(AlertData) = "alert.firing", Alerts,
        "An alert started firing, or a firing alert changed severity.";
    AlertResolved(AlertData) = "alert.resolved", Alerts,
        "A firing alert's condition no longer holds.";
    EventRecorded(RecordedEvent) = "event.recorded", Events,
        "The event log recorded an event (ingested, a service transition or an alert change), as GET /api/events lists it.";
    ServiceUp(ServiceData) = "service.up", Services,
        "A service that was down sent a heartbeat again.";
    ServiceDown(ServiceData) = "service.down", Services,
        "A service sent no heartbeat within heartbeat.timeout.";
    PluginLoaded(PluginData) = "plugin.loaded", Plugins,
        "A plugin's first version was loaded and serves.";
    PluginReloaded(PluginData) = "plugin.reloaded", Plugins,
        "A new version of a plugin (hot reload) replaced the one serving.";
    PluginLoadFailed(PluginData) = "plugin.load_failed", Plugins,
        "A load or reload failed; the previous version, if any, keeps serving.";
    PluginUnloaded(PluginData) = "plugin.unloaded", Plugins,
        "A plugin's component left the plugin directory; the plugin is gone.";
    PluginFaulted(PluginData) = "plugin.faulted", Plugins,
        "A plugin faulted (trap, timeout, memory, output, capability); a restart is scheduled.";
    PluginFailed(PluginData) = "plugin.failed", Plugins,
        "A plugin faulted more than max_restarts times in a row; it waits for a reset or a new version.";
    PluginRestarted(PluginData) = "plugin.restarted", Plugins,
        "A plugin was restarted after a fault and serves again.";
    PluginStopped(PluginData) = "plugin.stopped", Plugins,
        "A plugin was stopped through the supervisor API: it is not called until started again (kept across reloads and host restarts).";
    PluginStarted(PluginData) = "plugin.started", Plugins,
        "A stopped plugin was started again through the supervisor API: a new instance, its state kept.";
    SystemHealthChanged(HealthData) = "system.health_changed", System,
        "The host's health changed: healthy, degraded or unhealthy.";
    SystemSubscribed(SubscribedData) = "system.subscribed", System,
        "Sent to a client after each subscribe or unsubscribe: what it receives now.";
    SystemLagged(LaggedData) = "system.lagged", System,
        "The client read too slowly and its queue overflowed; it is disconnected after this message.";
    SystemError(ErrorData) = "system.error", System,
        "A client message could not be used (bad JSON, unknown action or channel, bad selection).";
    MetricsSnapshot(MetricsData) = "metrics.snapshot", Metrics,
        "Every series of the client's selection, sent when it subscribes or changes its selection.";
    MetricsUpdate(MetricsData) = "metrics.update", Metrics,
        "The series of the selection that got a new sample, and those that left it, since the last message.";
}
