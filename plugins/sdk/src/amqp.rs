//! RabbitMQ through the host, against the broker the manifest names:
//!
//! ```toml
//! [capabilities.rabbitmq]
//! url_env = "MONITORING_RMQ_URL"     # or url = "amqp://user:pass@host:5672/%2f"
//! exchanges = ["alerts"]             # publish allow-list, exact names ("" = default exchange)
//! timeout = "5s"                     # wait for the broker's confirm
//!
//! [[capabilities.rabbitmq.consume]]  # collectors: the host consumes, on_message handles
//! queue = "face_pipeline_results"
//! prefetch = 64
//! max_redeliveries = 5
//! ```
//!
//! [`publish`] returns once the broker confirmed the message; a nack or a
//! message no queue is bound for is [`AmqpError::Rejected`]; an exchange not
//! allow-listed is [`AmqpError::NotGranted`] (and a capability fault).
//!
//! A collector receives the messages of its `consume` queues in
//! [`Collector::on_message`](crate::Collector::on_message): return `Ok` once
//! the message is handled (the host acks it then), an error to have it
//! redelivered (dead-lettered after `max_redeliveries`).
//!
//! ```ignore
//! fn on_message(&mut self, message: Message) -> Result<Vec<Sample>, Error> {
//!     let event: MyEvent = message.json()?;
//!     self.count(event);
//!     Ok(self.samples())
//! }
//! ```

use crate::bindings::wasmon::plugin::{rabbitmq as wit, types};

pub use wit::AmqpError;

/// Publishes `body` to `exchange` with `routing_key` and `headers`, and
/// waits for the broker's confirm.
pub fn publish(
    exchange: &str,
    routing_key: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<(), AmqpError> {
    let headers: Vec<types::Label> = headers
        .iter()
        .map(|(name, value)| types::Label {
            name: (*name).to_string(),
            value: (*value).to_string(),
        })
        .collect();
    wit::publish(exchange, routing_key, &headers, body)
}

/// [`publish`] of `value` as JSON (with a `content-type` header).
pub fn publish_json<T: serde::Serialize>(
    exchange: &str,
    routing_key: &str,
    value: &T,
) -> Result<(), crate::Error> {
    let body = serde_json::to_vec(value)?;
    publish(
        exchange,
        routing_key,
        &[("content-type", "application/json")],
        &body,
    )?;
    Ok(())
}

impl types::Message {
    /// The body parsed as JSON.
    pub fn json<T: serde::de::DeserializeOwned>(&self) -> Result<T, crate::Error> {
        serde_json::from_slice(&self.body)
            .map_err(|e| crate::Error::new(format!("message from {}: {e}", self.source)))
    }

    /// The body as text (lossy for invalid UTF-8).
    pub fn text(&self) -> std::borrow::Cow<'_, str> {
        String::from_utf8_lossy(&self.body)
    }

    /// The value of header `name`.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|l| l.name == name)
            .map(|l| l.value.as_str())
    }
}

impl From<AmqpError> for crate::Error {
    fn from(error: AmqpError) -> Self {
        crate::Error::new(error.to_string())
    }
}
