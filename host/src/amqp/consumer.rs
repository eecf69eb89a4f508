//! A queue consumer that outlives the broker: connect with backoff, set
//! `prefetch`, check or declare the queue, consume, settle each delivery by
//! what the handler said, poll the queue's depth; on any connection or
//! channel error, start over (the broker requeues what was not acked).

use super::redelivery::Redeliveries;
use super::{AmqpMetrics, Backoff, LinkState, connect, pause};
use crate::shutdown::Shutdown;
use futures_lite::StreamExt;
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions, BasicRejectOptions,
    QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{BasicProperties, Channel};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// What to consume, and how.
#[derive(Clone)]
pub struct ConsumerSpec {
    /// Names the link in logs and metrics (`wasmon_amqp_connected{name}`).
    pub name: String,
    /// The broker's URL, password included (never logged).
    pub url: String,
    /// The queue.
    pub queue: String,
    /// Most unacknowledged messages the broker sends ahead.
    pub prefetch: u16,
    /// Declare the queue (durable) when missing; otherwise it must exist.
    pub declare: bool,
    /// Arguments of the declaration (e.g. `x-dead-letter-exchange`), when
    /// `declare` is set.
    pub arguments: Vec<(String, String)>,
    /// Redeliveries after a failed handling before the message is rejected
    /// to the queue's dead-letter exchange.
    pub max_redeliveries: u32,
    /// How often the queue's depth is read (passive declare).
    pub depth_interval: Duration,
    /// The longest wait between two connection attempts.
    pub reconnect_max: Duration,
}

impl std::fmt::Debug for ConsumerSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsumerSpec")
            .field("name", &self.name)
            .field("url", &super::redact(&self.url))
            .field("queue", &self.queue)
            .field("prefetch", &self.prefetch)
            .field("declare", &self.declare)
            .field("max_redeliveries", &self.max_redeliveries)
            .finish_non_exhaustive()
    }
}

/// One delivery, as a handler sees it.
#[derive(Debug)]
pub struct Message {
    /// The queue it was consumed from.
    pub queue: Arc<str>,
    /// The exchange it was published to (empty: the default exchange).
    pub exchange: ShortString,
    /// Its routing key.
    pub routing_key: ShortString,
    /// The payload.
    pub body: Vec<u8>,
    /// Whether the broker delivered it before.
    pub redelivered: bool,
    /// Failed handlings of this message before this delivery.
    pub prior_failures: u32,
    /// Unix milliseconds when the host received it.
    pub received_ms: u64,
    properties: BasicProperties,
}

impl Message {
    /// The `content-type` property.
    pub fn content_type(&self) -> Option<&str> {
        self.properties.content_type().as_ref().map(|s| s.as_str())
    }

    /// The `message-id` property.
    pub fn message_id(&self) -> Option<&str> {
        self.properties.message_id().as_ref().map(|s| s.as_str())
    }

    /// The headers as text (numbers and booleans written out, nested values
    /// as JSON), for the plugin's `message.headers`.
    pub fn headers(&self) -> Vec<(String, String)> {
        let Some(headers) = self.properties.headers().as_ref() else {
            return Vec::new();
        };
        headers
            .inner()
            .iter()
            .map(|(k, v)| (k.to_string(), header_text(v)))
            .collect()
    }
}

fn header_text(value: &AMQPValue) -> String {
    match value {
        AMQPValue::LongString(s) => s.to_string(),
        AMQPValue::ShortString(s) => s.to_string(),
        AMQPValue::Boolean(b) => b.to_string(),
        AMQPValue::ShortShortInt(n) => n.to_string(),
        AMQPValue::ShortShortUInt(n) => n.to_string(),
        AMQPValue::ShortInt(n) => n.to_string(),
        AMQPValue::ShortUInt(n) => n.to_string(),
        AMQPValue::LongInt(n) => n.to_string(),
        AMQPValue::LongUInt(n) => n.to_string(),
        AMQPValue::LongLongInt(n) => n.to_string(),
        AMQPValue::Timestamp(n) => n.to_string(),
        AMQPValue::Float(n) => n.to_string(),
        AMQPValue::Double(n) => n.to_string(),
        other => serde_json::to_string(other).unwrap_or_default(),
    }
}

/// Why a handler did not take a message.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum HandlerError {
    /// It may succeed later: requeued, until `max_redeliveries`, then
    /// dead-lettered.
    #[error("{0}")]
    Retry(String),
    /// It can never succeed: dead-lettered at once.
    #[error("{0}")]
    Reject(String),
}

/// Takes each consumed message.
pub trait Handler: Send + Sync + 'static {
    /// Handles one message; `Ok` means it is done and may be acked.
    fn handle(&self, message: &Message) -> impl Future<Output = Result<(), HandlerError>> + Send;
}

/// Runs a consumer of `spec.queue` until `shutdown` fires.
pub fn spawn_consumer<H: Handler>(
    spec: ConsumerSpec,
    handler: Arc<H>,
    metrics: AmqpMetrics,
    shutdown: Shutdown,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(run(spec, handler, metrics, shutdown))
}

async fn run<H: Handler>(
    spec: ConsumerSpec,
    handler: Arc<H>,
    metrics: AmqpMetrics,
    shutdown: Shutdown,
) {
    let mut link = LinkState::new(&spec.name, &spec.url, metrics.clone());
    let mut consumer = Consumer {
        queue: Arc::from(spec.queue.as_str()),
        redeliveries: Redeliveries::new(),
        metrics,
        spec,
    };
    let mut backoff = Backoff::new(consumer.spec.reconnect_max);
    while !shutdown.is_triggered() {
        match consumer
            .session(&*handler, &mut link, &mut backoff, &shutdown)
            .await
        {
            Ok(()) => break,
            Err(reason) => link.down(&reason),
        }
        if !pause(backoff.next_delay(), &shutdown).await {
            break;
        }
    }
    link.closed();
}

/// Deliveries handled successfully whose ack is not sent yet: the latest one's
/// acker (a `multiple` ack covers every earlier tag of the channel) and how
/// many. Held only while more deliveries are ready, at most half the
/// prefetch; a nack or reject sends them first, so acks stay in order.
struct Pending {
    acker: lapin::Acker,
    count: u32,
}

struct Consumer {
    spec: ConsumerSpec,
    queue: Arc<str>,
    redeliveries: Redeliveries,
    metrics: AmqpMetrics,
}

impl Consumer {
    /// One connection's life: `Ok` when shutdown ended it, `Err(reason)` when
    /// the broker or the network did.
    async fn session(
        &mut self,
        handler: &impl Handler,
        link: &mut LinkState,
        backoff: &mut Backoff,
        shutdown: &Shutdown,
    ) -> Result<(), String> {
        let spec = &self.spec;
        let connection = tokio::select! {
            c = connect(&spec.url, &spec.name) => c?,
            () = shutdown.wait() => return Ok(()),
        };
        let channel = connection
            .create_channel()
            .await
            .map_err(|e| format!("cannot open a channel: {e}"))?;
        channel
            .basic_qos(spec.prefetch, BasicQosOptions::default())
            .await
            .map_err(|e| format!("cannot set prefetch: {e}"))?;
        self.check_queue(&channel).await?;
        let mut depth = connection
            .create_channel()
            .await
            .map_err(|e| format!("cannot open a channel: {e}"))?;
        let mut deliveries = channel
            .basic_consume(
                spec.queue.as_str().into(),
                format!("wasmon-{}", spec.name).into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(|e| format!("cannot consume queue {:?}: {e}", spec.queue))?;
        link.up();
        backoff.reset();
        let mut pending: Option<Pending> = None;
        let mut tick = tokio::time::interval(spec.depth_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                () = shutdown.wait() => {
                    self.flush(&mut pending).await?;
                    // Unacked deliveries go back to the queue with the connection.
                    let _ = tokio::time::timeout(
                        Duration::from_secs(2),
                        connection.close(200, "wasmon shutting down".into()),
                    ).await;
                    return Ok(());
                }
                next = deliveries.next() => match next {
                    Some(Ok(delivery)) => self.settle(handler, delivery, &mut pending).await?,
                    Some(Err(error)) => return Err(format!("consumer failed: {error}")),
                    None => return Err(format!("the broker cancelled the consumer of queue {:?}", self.spec.queue)),
                },
                // Nothing more delivered yet: send the acks held so far.
                () = std::future::ready(()), if pending.is_some() => self.flush(&mut pending).await?,
                _ = tick.tick() => {
                    if let Err(error) = super::depth::poll(&depth, &self.spec.queue, &self.metrics).await {
                        tracing::debug!(name = %self.spec.name, %error, "amqp queue depth unavailable");
                        depth = connection
                            .create_channel()
                            .await
                            .map_err(|e| format!("cannot open a channel: {e}"))?;
                    }
                }
            }
        }
    }

    /// Declares the queue (`declare = true`) or checks that it exists.
    async fn check_queue(&self, channel: &Channel) -> Result<(), String> {
        let spec = &self.spec;
        if spec.declare {
            let mut arguments = FieldTable::default();
            for (key, value) in &spec.arguments {
                arguments.insert(
                    key.as_str().into(),
                    AMQPValue::LongString(value.as_str().into()),
                );
            }
            channel
                .queue_declare(
                    spec.queue.as_str().into(),
                    QueueDeclareOptions::durable(),
                    arguments,
                )
                .await
                .map_err(|e| format!("cannot declare queue {:?}: {e}", spec.queue))?;
        } else {
            let options = QueueDeclareOptions {
                passive: true,
                ..QueueDeclareOptions::default()
            };
            channel
                .queue_declare(spec.queue.as_str().into(), options, FieldTable::default())
                .await
                .map_err(|e| {
                    format!(
                        "queue {:?} is not there ({e}); declare = false expects it to exist: create it, or set declare = true",
                        spec.queue
                    )
                })?;
        }
        Ok(())
    }

    /// Acks every delivery held in `pending` with one `multiple` ack.
    async fn flush(&self, pending: &mut Option<Pending>) -> Result<(), String> {
        let Some(held) = pending.take() else {
            return Ok(());
        };
        held.acker
            .ack(BasicAckOptions { multiple: true })
            .await
            .map_err(|e| format!("cannot ack deliveries: {e}"))?;
        self.metrics
            .deliveries
            .with_label_values(&[&self.spec.name, "acked"])
            .inc_by(u64::from(held.count));
        Ok(())
    }

    /// Hands one delivery to the handler and settles it by the answer. An
    /// error here is the connection's: the delivery will come again.
    async fn settle(
        &mut self,
        handler: &impl Handler,
        delivery: Delivery,
        pending: &mut Option<Pending>,
    ) -> Result<(), String> {
        let key = self.redeliveries.key(&delivery);
        let prior_failures = self.redeliveries.prior_failures(key, &delivery);
        let Delivery {
            exchange,
            routing_key,
            redelivered,
            properties,
            data,
            acker,
            ..
        } = delivery;
        let message = Message {
            queue: self.queue.clone(),
            exchange,
            routing_key,
            body: data,
            redelivered,
            prior_failures,
            received_ms: crate::time::now_ms(),
            properties,
        };
        let lost = |e: lapin::Error| format!("cannot settle a delivery: {e}");
        let outcome = match handler.handle(&message).await {
            Ok(()) => {
                self.redeliveries.forget(key);
                let count = pending.as_ref().map_or(0, |p| p.count) + 1;
                *pending = Some(Pending { acker, count });
                if count >= u32::from(self.spec.prefetch).div_ceil(2) {
                    self.flush(pending).await?;
                }
                return Ok(());
            }
            Err(HandlerError::Retry(reason)) => {
                self.flush(pending).await?;
                let failures = prior_failures.saturating_add(1);
                if failures > self.spec.max_redeliveries {
                    acker
                        .reject(BasicRejectOptions { requeue: false })
                        .await
                        .map_err(lost)?;
                    self.redeliveries.forget(key);
                    tracing::warn!(
                        name = %self.spec.name,
                        queue = %self.spec.queue,
                        failures,
                        %reason,
                        "amqp message dead-lettered after max_redeliveries"
                    );
                    "dead_lettered"
                } else {
                    acker
                        .nack(BasicNackOptions {
                            multiple: false,
                            requeue: true,
                        })
                        .await
                        .map_err(lost)?;
                    self.redeliveries.record(key, failures);
                    tracing::debug!(name = %self.spec.name, failures, %reason, "amqp message requeued");
                    "requeued"
                }
            }
            Err(HandlerError::Reject(reason)) => {
                self.flush(pending).await?;
                acker
                    .reject(BasicRejectOptions { requeue: false })
                    .await
                    .map_err(lost)?;
                self.redeliveries.forget(key);
                tracing::debug!(name = %self.spec.name, %reason, "amqp message rejected");
                "rejected"
            }
        };
        self.metrics
            .deliveries
            .with_label_values(&[&self.spec.name, outcome])
            .inc();
        Ok(())
    }
}
