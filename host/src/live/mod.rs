//! The live event bus: what happens in the host (alerts, recorded events,
//! service transitions, plugin life, health), as typed [`Payload`]s on one
//! tokio broadcast channel, for the WebSocket clients of `export::ws`.
//!
//! Publishers call one helper where the thing happens (the alert state
//! machine, the event log, the heartbeat table, the plugin registry). A
//! publish first checks an atomic count of clients listening on that
//! payload's [`Channel`]: with nobody listening it returns before building
//! anything, so the bus costs one relaxed load. It never blocks: the
//! broadcast ring overwrites its oldest message, and a receiver that falls
//! that far behind learns it (`Lagged`) and is disconnected by its reader.
//! Messages are serialized lazily, once, by the first client that sends
//! them.
//!
//! The event log carries the bus ([`EventLog::live`](crate::events::EventLog::live)),
//! so every part that records events (rules, ingestion, plugins) reaches it
//! without more plumbing. This module knows no HTTP.

pub mod events;

pub use events::{
    AlertData, EventType, HealthData, MetricsData, MetricsSelection, Payload, PluginData,
    RecordedEvent, SeriesKey, SeriesValue, ServiceData, registry,
};

use crate::model::{AlertChange, AlertState, Event};
use crate::shutdown::Shutdown;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use tokio::sync::broadcast;

/// Messages the broadcast ring holds for the slowest receiver.
pub const BUS_CAPACITY: usize = 4096;

/// What a client subscribes to.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Channel {
    /// Differential updates of the series a client selects.
    Metrics,
    /// Every event the event log records.
    Events,
    /// Alerts: pending, firing, resolved.
    Alerts,
    /// Services: up and down by heartbeat.
    Services,
    /// Plugins: loaded, reloaded, faulted, failed, restarted, unloaded.
    Plugins,
    /// The host's health, and messages about the connection itself.
    System,
}

impl Channel {
    /// Every channel, in order.
    pub const ALL: [Channel; 6] = [
        Channel::Metrics,
        Channel::Events,
        Channel::Alerts,
        Channel::Services,
        Channel::Plugins,
        Channel::System,
    ];

    /// Its name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Metrics => "metrics",
            Channel::Events => "events",
            Channel::Alerts => "alerts",
            Channel::Services => "services",
            Channel::Plugins => "plugins",
            Channel::System => "system",
        }
    }

    /// What it carries, for the registry.
    pub fn description(self) -> &'static str {
        match self {
            Channel::Metrics => "Differential updates of the series the client selects",
            Channel::Events => "Every event the event log records",
            Channel::Alerts => "Alert state changes: pending, firing, resolved",
            Channel::Services => "Service heartbeat transitions: up, down",
            Channel::Plugins => {
                "Plugin life: loaded, reloaded, faulted, failed, restarted, unloaded"
            }
            Channel::System => "Host health changes, and messages about the connection itself",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// One message on the bus.
#[derive(Debug)]
pub struct Message {
    /// Unix milliseconds when it was published.
    pub ts: u64,
    /// What it says.
    pub payload: Payload,
    json: OnceLock<String>,
}

impl Message {
    /// A message stamped now.
    pub fn new(payload: Payload) -> Message {
        Message {
            ts: crate::time::now_ms(),
            payload,
            json: OnceLock::new(),
        }
    }

    /// Its channel.
    pub fn channel(&self) -> Channel {
        self.payload.channel()
    }

    /// The wire form, `{"type","channel","ts","data"}`, serialized once.
    pub fn json(&self) -> &str {
        self.json.get_or_init(|| self.payload.to_json(self.ts))
    }
}

/// The bus: a cheap, cloneable handle.
#[derive(Clone)]
pub struct Live {
    inner: Arc<Inner>,
}

struct Inner {
    sender: broadcast::Sender<Arc<Message>>,
    /// Clients listening, per channel.
    listeners: [AtomicUsize; 6],
    /// Fires when the host shuts down: clients say goodbye.
    closing: Shutdown,
}

impl Default for Live {
    fn default() -> Self {
        Live::new(BUS_CAPACITY)
    }
}

impl std::fmt::Debug for Live {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Live")
            .field("receivers", &self.inner.sender.receiver_count())
            .finish()
    }
}

impl Live {
    /// A bus whose ring holds `capacity` messages.
    pub fn new(capacity: usize) -> Live {
        let (sender, _) = broadcast::channel(capacity.max(1));
        Live {
            inner: Arc::new(Inner {
                sender,
                listeners: Default::default(),
                closing: Shutdown::new(),
            }),
        }
    }

    /// A receiver of every message published from now on. Count what it
    /// listens to with [`listen`](Self::listen), or nothing is published for it.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Message>> {
        self.inner.sender.subscribe()
    }

    /// Whether some client listens on `channel`.
    pub fn wants(&self, channel: Channel) -> bool {
        self.inner.listeners[channel.index()].load(Ordering::Relaxed) > 0
    }

    /// A client's set of channels, counted while it lives.
    pub fn listen(&self) -> Listening {
        Listening {
            live: self.clone(),
            channels: [false; 6],
        }
    }

    /// Publishes what `payload` builds, if anyone listens on `channel` (the
    /// payload's own). Never blocks.
    pub fn emit(&self, channel: Channel, payload: impl FnOnce() -> Payload) {
        if !self.wants(channel) {
            return;
        }
        let payload = payload();
        debug_assert_eq!(payload.channel(), channel);
        // An error means no receiver is left: nothing to do.
        let _ = self.inner.sender.send(Arc::new(Message::new(payload)));
    }

    /// An alert changed state (`alert.pending`, `alert.firing`, `alert.resolved`).
    pub fn alert(&self, change: &AlertChange) {
        self.emit(Channel::Alerts, || {
            let data = AlertData::from(change);
            match change.state {
                AlertState::Pending => Payload::AlertPending(data),
                AlertState::Firing => Payload::AlertFiring(data),
                AlertState::Resolved => Payload::AlertResolved(data),
            }
        });
    }

    /// An alert became pending: `change` builds it, only when someone listens.
    pub fn alert_pending(&self, change: impl FnOnce() -> AlertChange) {
        self.emit(Channel::Alerts, || {
            Payload::AlertPending(AlertData::from(&change()))
        });
    }

    /// The event log recorded `event` (`event.recorded`).
    pub fn recorded(&self, event: &Arc<Event>) {
        self.emit(Channel::Events, || {
            Payload::EventRecorded(RecordedEvent(event.clone()))
        });
    }

    /// A heartbeat transition, from its `service.up` / `service.down` event.
    pub fn service(&self, event: &Event) {
        self.emit(Channel::Services, || {
            let data = ServiceData::from_event(event);
            if event.event_type == "service.up" {
                Payload::ServiceUp(data)
            } else {
                Payload::ServiceDown(data)
            }
        });
    }

    /// Something happened to a plugin: `variant` is the `Payload::Plugin*`
    /// constructor, `data` builds what it carries.
    pub fn plugin(&self, variant: fn(PluginData) -> Payload, data: impl FnOnce() -> PluginData) {
        self.emit(Channel::Plugins, || variant(data()));
    }

    /// Tells every client the host is shutting down.
    pub fn close(&self) {
        self.inner.closing.trigger();
    }

    /// Resolves once [`close`](Self::close) was called.
    pub async fn closed(&self) {
        self.inner.closing.wait().await;
    }
}

/// The channels one client listens on; counted in [`Live::wants`] until dropped.
pub struct Listening {
    live: Live,
    channels: [bool; 6],
}

impl Listening {
    /// Starts or stops listening on `channel`.
    pub fn set(&mut self, channel: Channel, on: bool) {
        let i = channel.index();
        if self.channels[i] == on {
            return;
        }
        self.channels[i] = on;
        let count = &self.live.inner.listeners[i];
        if on {
            count.fetch_add(1, Ordering::Relaxed);
        } else {
            count.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Whether it listens on `channel`.
    pub fn has(&self, channel: Channel) -> bool {
        self.channels[channel.index()]
    }

    /// The channels it listens on, in order.
    pub fn channels(&self) -> Vec<Channel> {
        Channel::ALL.into_iter().filter(|c| self.has(*c)).collect()
    }
}

impl Drop for Listening {
    fn drop(&mut self) {
        for channel in Channel::ALL {
            self.set(channel, false);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{AlertChange, Severity};

    fn change(state: AlertState) -> AlertChange {
        AlertChange {
            rule: "cpu".into(),
            name: "HighCpu".into(),
            labels: vec![("host".into(), "a".into())],
            severity: Severity::Critical,
            state,
            summary: "cpu at 99%".into(),
            value: Some(99.0),
            active_since_ms: 5,
        }
    }

    #[test]
    fn nothing_is_published_without_a_listener_on_the_channel() {
        let live = Live::new(8);
        let mut rx = live.subscribe();
        live.alert(&change(AlertState::Firing));
        assert!(rx.try_recv().is_err());
        let mut listening = live.listen();
        listening.set(Channel::Plugins, true);
        live.alert(&change(AlertState::Firing));
        assert!(rx.try_recv().is_err(), "alerts has no listener");
        listening.set(Channel::Alerts, true);
        live.alert(&change(AlertState::Pending));
        let message = rx.try_recv().unwrap();
        let json: serde_json::Value = serde_json::from_str(message.json()).unwrap();
        assert_eq!(json["type"], "alert.pending");
        assert_eq!(json["channel"], "alerts");
        assert_eq!(json["data"]["labels"]["host"], "a");
        assert!(json["ts"].as_u64().unwrap() > 0);
        drop(listening);
        assert!(!live.wants(Channel::Alerts));
    }

    #[test]
    fn every_payload_type_is_in_the_registry_once_with_a_schema() {
        let types = registry();
        let mut names: Vec<&str> = types.iter().map(|t| t.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), types.len());
        for t in &types {
            let (domain, action) = t.name.split_once('.').unwrap();
            assert!(!domain.is_empty() && !action.is_empty(), "{}", t.name);
            let schema = serde_json::to_value(&t.payload_schema).unwrap();
            assert_eq!(schema["type"], "object", "{}", t.name);
            assert!(schema["properties"].is_object(), "{}", t.name);
        }
        let event = Arc::new(Event::new("deploy", "ingest"));
        let json: serde_json::Value =
            serde_json::from_str(&Payload::EventRecorded(RecordedEvent(event.clone())).to_json(1))
                .unwrap();
        assert_eq!(json["data"]["id"], event.id.as_str());
        assert_eq!(json["data"]["event_type"], "deploy");
    }
}
