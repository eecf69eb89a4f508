//! Publishing with publisher confirms: a message is `Ok` only once the broker
//! confirmed it (persistent, mandatory: an unroutable message is `Rejected`,
//! not silently dropped).

use super::{AmqpMetrics, Backoff, LinkState, connect};
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel, Confirmation, Connection};
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// Where and how to publish.
#[derive(Clone)]
pub struct PublisherSpec {
    /// Names the link in logs and metrics.
    pub name: String,
    /// The broker's URL (never logged).
    pub url: String,
    /// Longest wait for the broker's confirm of one message.
    pub confirm_timeout: Duration,
    /// The longest wait between two connection attempts.
    pub reconnect_max: Duration,
}

/// Why a message was not published.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PublishError {
    /// The broker could not be reached or the connection broke; the message
    /// may be published again.
    #[error("{0}")]
    Connection(String),
    /// The broker refused it (a nack, or no queue bound for its routing key).
    #[error("{0}")]
    Rejected(String),
}

/// A publisher on one connection, connected on first use and again after a
/// failure. Concurrent publishes share the channel; each waits for its own
/// confirm.
pub struct Publisher {
    spec: PublisherSpec,
    metrics: AmqpMetrics,
    state: Mutex<State>,
}

struct State {
    link: LinkState,
    open: Option<(Connection, Channel)>,
    backoff: Backoff,
    /// No connection attempt before this instant (after a failure).
    retry_at: Option<Instant>,
}

impl Publisher {
    /// A publisher that connects when first used.
    pub fn new(spec: PublisherSpec, metrics: AmqpMetrics) -> Publisher {
        let state = State {
            link: LinkState::new(&spec.name, &spec.url, metrics.clone()),
            open: None,
            backoff: Backoff::new(spec.reconnect_max),
            retry_at: None,
        };
        Publisher {
            spec,
            metrics,
            state: Mutex::new(state),
        }
    }

    /// Publishes `body` to `exchange` with `routing_key` and `headers`, and
    /// waits for the broker's confirm.
    pub async fn publish(
        &self,
        exchange: &str,
        routing_key: &str,
        headers: &[(String, String)],
        body: &[u8],
    ) -> Result<(), PublishError> {
        let result = self.try_publish(exchange, routing_key, headers, body).await;
        let label = match &result {
            Ok(()) => "confirmed",
            Err(PublishError::Rejected(_)) => "rejected",
            Err(PublishError::Connection(_)) => "error",
        };
        self.metrics
            .published
            .with_label_values(&[&self.spec.name, label])
            .inc();
        result
    }

    async fn try_publish(
        &self,
        exchange: &str,
        routing_key: &str,
        headers: &[(String, String)],
        body: &[u8],
    ) -> Result<(), PublishError> {
        let channel = self.channel().await?;
        let mut table = FieldTable::default();
        for (k, v) in headers {
            table.insert(k.as_str().into(), AMQPValue::LongString(v.as_str().into()));
        }
        let properties = BasicProperties::default()
            .with_delivery_mode(2)
            .with_headers(table);
        let options = BasicPublishOptions {
            mandatory: true,
            ..BasicPublishOptions::default()
        };
        let confirm = async {
            channel
                .basic_publish(
                    exchange.into(),
                    routing_key.into(),
                    options,
                    body,
                    properties,
                )
                .await?
                .await
        };
        let confirmation = match tokio::time::timeout(self.spec.confirm_timeout, confirm).await {
            Ok(Ok(c)) => c,
            Ok(Err(error)) => {
                let reason = format!("publish failed: {error}");
                self.lost(&reason).await;
                return Err(PublishError::Connection(reason));
            }
            Err(_) => {
                let reason = format!(
                    "no confirm within {} ms",
                    self.spec.confirm_timeout.as_millis()
                );
                self.lost(&reason).await;
                return Err(PublishError::Connection(reason));
            }
        };
        match confirmation {
            Confirmation::Ack(None) | Confirmation::NotRequested => Ok(()),
            Confirmation::Ack(Some(returned)) | Confirmation::Nack(Some(returned)) => {
                Err(PublishError::Rejected(format!(
                    "returned by the broker: {} {} (exchange {exchange:?}, routing key {routing_key:?})",
                    returned.reply_code, returned.reply_text
                )))
            }
            Confirmation::Nack(None) => Err(PublishError::Rejected(format!(
                "the broker nacked the message (exchange {exchange:?})"
            ))),
        }
    }

    /// The open channel, connecting first when there is none (unless the
    /// backoff after the last failure has not passed).
    async fn channel(&self) -> Result<Channel, PublishError> {
        let mut state = self.state.lock().await;
        if let Some((connection, channel)) = &state.open {
            if connection.status().connected() && channel.status().connected() {
                return Ok(channel.clone());
            }
            state.open = None;
            state.link.down("connection closed");
        }
        if let Some(at) = state.retry_at
            && Instant::now() < at
        {
            return Err(PublishError::Connection(format!(
                "broker unreachable; next attempt in {} ms",
                at.saturating_duration_since(Instant::now()).as_millis()
            )));
        }
        match self.open().await {
            Ok((connection, channel)) => {
                state.link.up();
                state.backoff.reset();
                state.retry_at = None;
                state.open = Some((connection, channel.clone()));
                Ok(channel)
            }
            Err(reason) => {
                state.link.down(&reason);
                let delay = state.backoff.next_delay();
                state.retry_at = Some(Instant::now() + delay);
                Err(PublishError::Connection(reason))
            }
        }
    }

    async fn open(&self) -> Result<(Connection, Channel), String> {
        let connection = connect(&self.spec.url, &self.spec.name).await?;
        let channel = connection
            .create_channel()
            .await
            .map_err(|e| format!("cannot open a channel: {e}"))?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(|e| format!("cannot enable publisher confirms: {e}"))?;
        Ok((connection, channel))
    }

    /// Drops the connection after a failure; the next publish reconnects.
    async fn lost(&self, reason: &str) {
        let mut state = self.state.lock().await;
        if state.open.take().is_some() {
            state.link.down(reason);
        }
    }
}

impl Drop for Publisher {
    fn drop(&mut self) {
        if let Ok(mut state) = self.state.try_lock() {
            state.link.closed();
        }
    }
}
