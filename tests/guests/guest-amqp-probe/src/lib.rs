//! Fixture `guest-amqp-probe`: a collector for the `rabbitmq` capability.
//!
//! - Every `collect()` publishes `[config] body` once to each target of
//!   `[config] publish` (`{exchange, routing_key}`) through the SDK's
//!   `amqp::publish`, logs `amqp-probe #i <outcome>: <detail>` (outcome:
//!   `confirmed`, `not-granted`, `connection`, `rejected`) and returns
//!   `amqp_probe_received` (messages handled by `on-message` so far).
//!   A `not-granted` makes the host fault the call: tests read the log.
//! - `on-message` returns an error for a body starting with `fail`, traps
//!   for `trap`, and otherwise counts the message and returns nothing (the
//!   benchmark's "does nothing but return []").

use serde::Deserialize;
use wasmon_sdk::amqp::{self, AmqpError};
use wasmon_sdk::log::{self, Level};
use wasmon_sdk::{Collector, Error, Message, Sample};

#[derive(Deserialize)]
struct Target {
    exchange: String,
    routing_key: String,
}

#[derive(Deserialize)]
struct Config {
    #[serde(default)]
    publish: Vec<Target>,
    #[serde(default)]
    body: String,
}

/// The collector.
pub struct AmqpProbe {
    config: Config,
    received: u64,
}

impl Collector for AmqpProbe {
    fn init() -> Result<Self, Error> {
        Ok(AmqpProbe {
            config: wasmon_sdk::config::get()?,
            received: 0,
        })
    }

    fn collect(&mut self) -> Result<Vec<Sample>, Error> {
        for (i, target) in self.config.publish.iter().enumerate() {
            let result = amqp::publish(
                &target.exchange,
                &target.routing_key,
                &[("probe", "1")],
                self.config.body.as_bytes(),
            );
            let (outcome, detail) = match result {
                Ok(()) => ("confirmed", String::new()),
                Err(AmqpError::NotGranted(d)) => ("not-granted", d),
                Err(AmqpError::Connection(d)) => ("connection", d),
                Err(AmqpError::Rejected(d)) => ("rejected", d),
            };
            log::write(Level::Info, &format!("amqp-probe #{i} {outcome}: {detail}"));
        }
        Ok(vec![Sample::gauge(
            "amqp_probe_received",
            self.received as f64,
        )])
    }

    fn on_message(&mut self, message: Message) -> Result<Vec<Sample>, Error> {
        if message.body.starts_with(b"fail") {
            return Err(Error::new(format!(
                "asked to fail by a message from {}",
                message.source
            )));
        }
        if message.body == b"trap" {
            std::process::abort();
        }
        self.received += 1;
        Ok(Vec::new())
    }
}

wasmon_sdk::export_collector!(AmqpProbe);
