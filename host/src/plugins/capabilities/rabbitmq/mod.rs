//! The `rabbitmq` capability (`wasmon:plugin/rabbitmq`): `publish` with
//! publisher confirms to the exchanges the manifest allow-lists, and the
//! queues the host consumes for a collector (`on-message`).
//!
//! - `grant`: `[capabilities.rabbitmq]` and `[[capabilities.rabbitmq.consume]]`.
//! - here: the per-generation state (one [`Publisher`], created without
//!   connecting; the consumers, started when the generation starts serving
//!   and stopped when it stops, see `plugins::consume`; the `PLUGIN/rabbitmq`
//!   breaker) and the `impl Host`.
//!
//! An exchange not allow-listed answers `not-granted`, a policy violation
//! that ends the call as a `capability` fault. A broker nack, or a message no
//! queue is bound for, answers `rejected`. Errors name the plugin, the
//! capability and the broker (its URL without the password). Calls are
//! counted in `wasmon_plugin_capability_calls_total{capability="rabbitmq"}`,
//! messages in `wasmon_amqp_published_total{name="plugin:NAME"}`.

mod grant;

pub use grant::{RabbitGrant, Section};

use super::{Capability, KeyError, Services};
use crate::amqp::{AmqpMetrics, PublishError, Publisher, PublisherSpec};
use crate::plugins::bindings::{rabbitmq as wit, types};
use crate::plugins::breaker::Breaker;
use crate::plugins::context::PluginCtx;
use crate::shutdown::Shutdown;
use crate::telemetry::Telemetry;
use std::sync::Arc;

/// The `rabbitmq` capability.
pub struct Rabbitmq;

impl Capability for Rabbitmq {
    const NAME: &'static str = "rabbitmq";
    type Section = Section;
    type Grant = RabbitGrant;
    type Shared = ();
    type State = State;

    fn grant(section: Section) -> Result<RabbitGrant, KeyError> {
        section.resolve()
    }

    fn shared() -> anyhow::Result<()> {
        Ok(())
    }

    fn state(
        plugin: &Arc<str>,
        grant: Option<&RabbitGrant>,
        _shared: &(),
        services: &Services<'_>,
    ) -> State {
        let metrics = services.telemetry.amqp.clone();
        State {
            plugin: plugin.clone(),
            publisher: grant.filter(|g| !g.exchanges.is_empty()).map(|g| {
                Publisher::new(
                    PublisherSpec {
                        name: format!("plugin:{plugin}"),
                        url: g.url.0.clone(),
                        confirm_timeout: g.timeout,
                        reconnect_max: std::time::Duration::from_secs(10),
                    },
                    metrics.clone(),
                )
            }),
            telemetry: services.telemetry.clone(),
            metrics,
            breaker: grant.map(|_| services.breakers.get(plugin, "rabbitmq", services.breaker)),
            consumers: parking_lot::Mutex::new(None),
        }
    }
}

/// One generation's publisher, consumers and breaker, dropped with it.
pub struct State {
    plugin: Arc<str>,
    publisher: Option<Publisher>,
    telemetry: Arc<Telemetry>,
    /// The AMQP metrics (`wasmon_amqp_*`), for the consumers.
    pub metrics: AmqpMetrics,
    /// The `PLUGIN/rabbitmq` breaker (when granted): connection failures and
    /// missing confirms trip it; while open, `publish` answers `connection` at once.
    breaker: Option<Arc<Breaker>>,
    /// The consumers of this generation, while it serves.
    consumers: parking_lot::Mutex<Option<Consumers>>,
}

/// Running consumers: stopped when dropped.
pub struct Consumers {
    /// Fires to stop them.
    pub stop: Shutdown,
    /// Their tasks.
    pub tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Drop for Consumers {
    fn drop(&mut self) {
        self.stop.trigger();
    }
}

impl State {
    fn count(&self, result: &str) {
        self.telemetry
            .plugin_capability_calls
            .with_label_values(&[&*self.plugin, "rabbitmq", result])
            .inc();
    }

    /// Keeps `consumers` running for this generation (stopping any before).
    pub fn set_consumers(&self, consumers: Consumers) {
        *self.consumers.lock() = Some(consumers);
    }

    /// Stops this generation's consumers: each finishes the message in hand;
    /// what it has not acked goes back to the queue.
    pub fn stop_consumers(&self) -> Option<Consumers> {
        let consumers = self.consumers.lock().take();
        if let Some(c) = &consumers {
            c.stop.trigger();
        }
        consumers
    }
}

impl wit::Host for PluginCtx {
    async fn publish(
        &mut self,
        exchange: String,
        routing_key: String,
        headers: Vec<types::Label>,
        body: Vec<u8>,
    ) -> wasmtime::Result<Result<(), wit::AmqpError>> {
        let env = self.env.clone();
        let plugin = &*env.name;
        let Some(grant) = env.manifest.capabilities.rabbitmq.as_ref() else {
            let why = self.deny(
                "rabbitmq",
                format!(
                    "publish to exchange {exchange:?}: the manifest has no [capabilities.rabbitmq]"
                ),
            );
            return Ok(Err(wit::AmqpError::NotGranted(why)));
        };
        let state = &env.capabilities.rabbitmq;
        let publisher = match &state.publisher {
            Some(p) if grant.allows(&exchange) => p,
            _ => {
                state.count("forbidden");
                let why = self.deny(
                    "rabbitmq",
                    format!(
                        "publish to exchange {exchange:?} on {}: not in capabilities.rabbitmq.exchanges {:?}",
                        grant.server, grant.exchanges
                    ),
                );
                return Ok(Err(wit::AmqpError::NotGranted(why)));
            }
        };
        let failure = |e: &str| {
            format!(
                "plugin {plugin}: rabbitmq publish to exchange {exchange:?} on {}: {e}",
                grant.server
            )
        };
        if let Some(Err(why)) = state.breaker.as_ref().map(|b| b.admit()) {
            state.count("breaker_open");
            return Ok(Err(wit::AmqpError::Connection(failure(&why))));
        }
        let headers: Vec<(String, String)> =
            headers.into_iter().map(|l| (l.name, l.value)).collect();
        let timeout = grant.timeout.min(self.call.remaining());
        let sent = tokio::time::timeout(
            timeout,
            publisher.publish(&exchange, &routing_key, &headers, &body),
        )
        .await;
        let (result, answered) = match sent {
            Ok(Ok(())) => {
                state.count("ok");
                (Ok(()), true)
            }
            Ok(Err(PublishError::Rejected(why))) => {
                state.count("rejected");
                (Err(wit::AmqpError::Rejected(failure(&why))), true)
            }
            Ok(Err(PublishError::Connection(why))) => {
                state.count("connection");
                (Err(wit::AmqpError::Connection(failure(&why))), false)
            }
            Err(_) => {
                state.count("timeout");
                let why = format!("no confirm within {}", humantime::format_duration(timeout));
                (Err(wit::AmqpError::Connection(failure(&why))), false)
            }
        };
        if let Some(b) = &state.breaker {
            match &result {
                Err(wit::AmqpError::Connection(why)) if !answered => b.failure(why),
                _ => b.success(),
            }
        }
        Ok(result)
    }
}
