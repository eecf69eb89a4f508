//! The queues a collector's manifest names (`[[capabilities.rabbitmq.consume]]`),
//! consumed while one of its generations serves: each message is handed to
//! the `on-message` export through the same path as `collect` (the serving
//! instance, its budget, its faults and restarts), the samples it returns go
//! to the store like `collect`'s, and the message is acked only after `Ok`.
//! An `Err` or a fault nacks it: redelivered, then dead-lettered after the
//! entry's `max_redeliveries` (the consumer of `crate::amqp`).
//!
//! Consumers belong to a generation. When a new one starts serving, the old
//! one's consumers stop (each finishes the message in hand and acks what it
//! handled; the broker requeues the rest) and the new one's start once they
//! are gone, so no message is lost or handled by two generations at once.
//! While the plugin has no instance (crashed, waiting for its restart, or
//! `failed`), the message in hand waits for one rather than burning its
//! redeliveries.

use super::bindings::types;
use super::capabilities::rabbitmq::Consumers;
use super::manifest::{Manifest, PluginKind};
use super::registry::{Generation, Inner, Slot};
use super::runtime::CallError;
use crate::amqp::{ConsumerSpec, Handler, HandlerError, Message, spawn_consumer};
use crate::shutdown::Shutdown;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

/// How long a new generation waits for the old one's consumers to stop.
const HANDOVER: Duration = Duration::from_secs(10);
/// How often a message waits for a `failed` plugin to come back.
const NO_INSTANCE_POLL: Duration = Duration::from_millis(500);

/// Called when `new` replaces `old` as the serving generation of `slot`
/// (either may be absent: a first load, an unload).
pub(super) fn swapped(
    inner: &Arc<Inner>,
    slot: &Arc<Slot>,
    new: Option<&Arc<Generation>>,
    old: Option<&Generation>,
) {
    let previous = old.and_then(|g| g.env.capabilities.rabbitmq.stop_consumers());
    if let Some(new) = new {
        start(inner, slot, new, previous);
    }
}

/// Queues are consumed for collectors only (`on-message`).
pub(super) fn check_kind(manifest: &Manifest, kind: PluginKind) -> anyhow::Result<()> {
    let consumes = manifest
        .capabilities
        .rabbitmq
        .as_ref()
        .is_some_and(|r| !r.consume.is_empty());
    if consumes && kind != PluginKind::Collector {
        anyhow::bail!(
            "invalid key `capabilities.rabbitmq.consume` in the manifest: it applies to collectors (on-message), and this is a {kind}"
        );
    }
    Ok(())
}

/// Stops the consumers of `generation` (unloaded).
pub(super) fn stop(generation: &Generation) {
    drop(generation.env.capabilities.rabbitmq.stop_consumers());
}

/// Starts the consumers of `generation`, once `previous` ones have stopped.
fn start(
    inner: &Arc<Inner>,
    slot: &Arc<Slot>,
    generation: &Arc<Generation>,
    previous: Option<Consumers>,
) {
    if generation.kind != PluginKind::Collector {
        return;
    }
    let Some(grant) = generation.manifest.capabilities.rabbitmq.as_ref() else {
        return;
    };
    if grant.consume.is_empty() {
        return;
    }
    let stop = Shutdown::new();
    let metrics = generation.env.capabilities.rabbitmq.metrics.clone();
    let mut waiting = previous;
    let specs: Vec<ConsumerSpec> = grant
        .consume
        .iter()
        .map(|c| ConsumerSpec {
            name: format!("plugin:{}:{}", slot.name, c.queue),
            url: grant.url.0.clone(),
            queue: c.queue.clone(),
            prefetch: c.prefetch,
            declare: c.declare,
            arguments: c
                .dead_letter_exchange
                .iter()
                .map(|dlx| ("x-dead-letter-exchange".to_string(), dlx.clone()))
                .collect(),
            max_redeliveries: c.max_redeliveries,
            depth_interval: c.depth_interval,
            reconnect_max: c.reconnect_max,
        })
        .collect();
    let handler = Arc::new(OnMessage {
        inner: inner.clone(),
        slot: slot.clone(),
        generation: Arc::downgrade(generation),
        stop: stop.clone(),
    });
    let host = inner.shutdown.clone();
    let queues: Vec<String> = specs.iter().map(|s| s.queue.clone()).collect();
    tracing::info!(plugin = %slot.name, generation = generation.number, server = %grant.server, ?queues, "consuming queues for the collector");
    let launcher_stop = stop.clone();
    let launcher = inner.handle.spawn(async move {
        let stop = launcher_stop;
        if let Some(previous) = waiting.as_mut() {
            for task in std::mem::take(&mut previous.tasks) {
                let _ = tokio::time::timeout(HANDOVER, task).await;
            }
        }
        drop(waiting);
        if stop.is_triggered() || host.is_triggered() {
            return;
        }
        let tasks: Vec<_> = specs
            .into_iter()
            .map(|spec| spawn_consumer(spec, handler.clone(), metrics.clone(), stop.clone()))
            .collect();
        drop(handler);
        tokio::select! {
            () = host.wait() => stop.trigger(),
            () = stop.wait() => {}
        }
        for task in tasks {
            let _ = task.await;
        }
    });
    generation
        .env
        .capabilities
        .rabbitmq
        .set_consumers(Consumers {
            stop,
            tasks: vec![launcher],
        });
}

/// Hands each message to the generation's `on-message`.
struct OnMessage {
    inner: Arc<Inner>,
    slot: Arc<Slot>,
    generation: Weak<Generation>,
    stop: Shutdown,
}

impl Handler for OnMessage {
    async fn handle(&self, message: &Message) -> Result<(), HandlerError> {
        let wit = types::Message {
            source: message.queue.to_string(),
            routing_key: message.routing_key.to_string(),
            headers: message
                .headers()
                .into_iter()
                .map(|(name, value)| types::Label { name, value })
                .collect(),
            body: message.body.clone(),
            received_ms: message.received_ms,
        };
        loop {
            let Some(generation) = self.generation.upgrade() else {
                return Err(HandlerError::Retry(
                    "the plugin's generation is gone".to_string(),
                ));
            };
            let now_ms = crate::time::now_ms();
            let called = self
                .inner
                .call(&self.slot, &generation, async |i| i.on_message(&wit).await)
                .await;
            match called {
                Some(Ok(samples)) => {
                    if !samples.is_empty() {
                        self.apply(generation.number, samples, now_ms);
                    }
                    return Ok(());
                }
                Some(Err(CallError::Plugin(error))) => {
                    tracing::debug!(plugin = %self.slot.name, queue = %message.queue, %error, "on-message returned an error; the message is requeued");
                    return Err(HandlerError::Retry(format!(
                        "on-message returned an error: {error}"
                    )));
                }
                Some(Err(other)) => {
                    // A fault: have the driver schedule the restart now,
                    // rather than at its next interval.
                    self.slot.wake.notify_one();
                    return Err(HandlerError::Retry(other.to_string()));
                }
                None => {}
            }
            drop(generation);
            // No instance: wait for its restart (or, failed, for a reset).
            let at = self
                .slot
                .restart_at()
                .unwrap_or_else(|| Instant::now() + NO_INSTANCE_POLL);
            tokio::select! {
                () = self.stop.wait() => {
                    return Err(HandlerError::Retry("the generation stopped serving".to_string()));
                }
                () = tokio::time::sleep_until(at.min(Instant::now() + NO_INSTANCE_POLL).into()) => {}
            }
        }
    }
}

impl OnMessage {
    /// Stores what `on-message` returned, as the collector's snapshot.
    fn apply(&self, generation: u64, samples: Vec<crate::model::Sample>, now_ms: u64) {
        let source = *self.slot.source.lock();
        let Some(source) = source else {
            return;
        };
        let report = self.inner.deps.store.apply(source, samples, now_ms);
        self.slot
            .samples_applied(&self.inner.deps.telemetry, generation, &report);
    }
}
