//! `sink-amqp`: publishes each event as one JSON message (the host's own
//! event shape, with its id: see `wasmon_sdk::event_json`) to a RabbitMQ
//! exchange through the host's `rabbitmq` capability, which waits for the
//! broker's publisher confirm. The routing key comes from the event
//! (`[config] routing_key`, default `{type}`).
//!
//! Outcomes, per batch (the host retries a failed batch with backoff):
//!
//! - every message confirmed: delivered;
//! - `connection` (broker down, no confirm in time, breaker open):
//!   `retryable`;
//! - `not-granted` (the exchange is not allow-listed): `permanent`, and the
//!   host turns the call into a capability fault anyway;
//! - `rejected` (the broker nacked a message, or no queue is bound for its
//!   routing key): `retryable` by default, `permanent` (dead-lettered by the
//!   host) with `rejected = "dead-letter"`.
//!
//! A retried batch skips the events the broker already confirmed in the
//! failed attempt (kept in memory for that batch), so a broker that comes
//! back mid-batch does not get the first half twice; an instance restart
//! forgets them, and consumers deduplicate on the `id` (also in the
//! `wasmon-event-id` header).

pub mod config;

use std::collections::HashSet;
use wasmon_sdk::amqp::{self, AmqpError};
use wasmon_sdk::{DeliveryError, Error, Event, Sink};

/// The plugin: its config and the ids confirmed in a failed attempt.
pub struct AmqpSink {
    config: config::Amqp,
    confirmed: HashSet<String>,
}

impl Sink for AmqpSink {
    fn init() -> Result<Self, Error> {
        let config = wasmon_sdk::config::get::<config::Config>()?
            .validate()
            .map_err(|e| Error::new(format!("invalid [config]: {e}")))?;
        wasmon_sdk::info!(
            "publishing events to exchange {:?} with routing key {:?}",
            config.exchange,
            config.routing_key
        );
        Ok(AmqpSink {
            config,
            confirmed: HashSet::new(),
        })
    }

    fn deliver(&mut self, batch: Vec<Event>) -> Result<(), DeliveryError> {
        let config = &self.config;
        // Ids from an attempt of another batch mean nothing for this one.
        self.confirmed
            .retain(|id| batch.iter().any(|event| &event.id == id));
        for event in &batch {
            if !config.events.accepts(event) || self.confirmed.contains(&event.id) {
                continue;
            }
            let body = wasmon_sdk::event_json::to_vec(event).map_err(|e| {
                DeliveryError::Permanent(format!("event {}: cannot encode: {e}", event.id))
            })?;
            let routing_key = wasmon_sdk::event_json::fill(&config.routing_key, event);
            let headers = [
                ("content-type", "application/json"),
                ("wasmon-event-id", event.id.as_str()),
                ("wasmon-event-type", event.event_type.as_str()),
            ];
            match amqp::publish(&config.exchange, &routing_key, &headers, &body) {
                Ok(()) => {
                    self.confirmed.insert(event.id.clone());
                }
                Err(error) => return Err(self.failed(event, &routing_key, error, batch.len())),
            }
        }
        self.confirmed.clear();
        Ok(())
    }
}

impl AmqpSink {
    /// What a failed publish means for the batch.
    fn failed(
        &self,
        event: &Event,
        routing_key: &str,
        error: AmqpError,
        batch: usize,
    ) -> DeliveryError {
        let at = format!(
            "event {} to exchange {:?} with routing key {routing_key:?}",
            event.id, self.config.exchange
        );
        match error {
            AmqpError::Rejected(why) => {
                if self.config.rejected == config::OnRejected::DeadLetter {
                    wasmon_sdk::error!(
                        "batch of {batch} events rejected by the broker, the host dead-letters it: {at}: {why}"
                    );
                    DeliveryError::Permanent(format!("{at}: rejected: {why}"))
                } else {
                    DeliveryError::Retryable(format!(
                        "{at}: rejected: {why} (bind a queue for it, or set rejected = \"dead-letter\")"
                    ))
                }
            }
            AmqpError::Connection(why) => DeliveryError::Retryable(format!("{at}: {why}")),
            AmqpError::NotGranted(why) => DeliveryError::Permanent(format!(
                "{at}: not granted ({why}); allow-list the exchange in [capabilities.rabbitmq] exchanges"
            )),
        }
    }
}

wasmon_sdk::export_sink!(AmqpSink);
