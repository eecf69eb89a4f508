//! `[[ingest.amqp]]`: each message of a queue is a seed 000 event, a seed 002
//! job event or a batch, validated exactly like the HTTP routes' bodies
//! (`ingest::message`), recorded in the event log, then acked.
//!
//! A message that can never be recorded (too large for
//! `server.max_body_bytes`, malformed, invalid, a batch too large) is
//! rejected without requeue, so the queue's dead-letter exchange takes it;
//! it is counted in `wasmon_ingest_rejected_total{route="amqp:QUEUE",reason}`
//! and logged once with the reason. A message refused because the service
//! table is full is requeued, up to `max_redeliveries`, then dead-lettered.
//! Delivery is at least once: a message recorded while the connection broke
//! before its ack comes again.

use super::{ConsumerSpec, Handler, HandlerError, Message, spawn_consumer};
use crate::config::{AmqpIngestConfig, Config};
use crate::events::AppendError;
use crate::ingest::{Ingest, IngestError, RecordError};
use crate::shutdown::Shutdown;
use crate::telemetry::Telemetry;
use anyhow::Result;
use prometheus::IntCounter;
use std::sync::Arc;

/// Records the messages of one queue.
pub struct IngestHandler {
    ingest: Arc<Ingest>,
    telemetry: Arc<Telemetry>,
    route: String,
    max_body_bytes: usize,
    bytes: IntCounter,
}

impl IngestHandler {
    /// A handler recording into `ingest`, counting under `amqp:QUEUE`.
    pub fn new(
        queue: &str,
        ingest: Arc<Ingest>,
        telemetry: Arc<Telemetry>,
        max_body_bytes: usize,
    ) -> IngestHandler {
        let route = format!("amqp:{queue}");
        let bytes = telemetry.ingest_bytes.with_label_values(&[&route]);
        IngestHandler {
            ingest,
            telemetry,
            route,
            max_body_bytes,
            bytes,
        }
    }

    fn count(&self, reason: &str) {
        self.telemetry
            .ingest_rejected
            .with_label_values(&[&self.route, reason])
            .inc();
    }

    fn refuse(&self, reason: &str, detail: &str) {
        self.count(reason);
        tracing::warn!(route = %self.route, reason, %detail, "amqp message refused; dead-lettered");
    }

    /// Records one body: the decision, without the transport. Resolves once
    /// the events are durable, so the message is acked only then; an event
    /// log that cannot take them (full, a write error) requeues it.
    pub async fn record(&self, body: &[u8]) -> Result<(), HandlerError> {
        self.bytes.inc_by(body.len() as u64);
        if body.len() > self.max_body_bytes {
            let detail = format!(
                "message body of {} bytes exceeds the limit of {} bytes (server.max_body_bytes)",
                body.len(),
                self.max_body_bytes
            );
            self.refuse("body_too_large", &detail);
            return Err(HandlerError::Reject(detail));
        }
        let Err(error) = self.ingest.record_message(body).await else {
            return Ok(());
        };
        // Whether a redelivery may succeed: a full or failing log, or the
        // service table at its cap, may take it later; a log it is larger
        // than, or a payload refused, never will.
        let (reason, retry) = match &error {
            RecordError::Log(AppendError::TooLarge { .. }) => ("log_too_large", false),
            RecordError::Log(_) => ("log_unavailable", true),
            RecordError::Refused(e @ IngestError::TooManyServices(_)) => (e.reason(), true),
            RecordError::Refused(e) => (e.reason(), false),
        };
        let detail = error.to_string();
        if retry {
            self.count(reason);
            Err(HandlerError::Retry(detail))
        } else {
            self.refuse(reason, &detail);
            Err(HandlerError::Reject(detail))
        }
    }
}

impl Handler for IngestHandler {
    async fn handle(&self, message: &Message) -> Result<(), HandlerError> {
        self.record(&message.body).await
    }
}

/// The consumer of one `[[ingest.amqp]]` entry; `key` is `ingest.amqp[N]`.
pub fn consumer_spec(
    config: &AmqpIngestConfig,
    key: &str,
    env: impl Fn(&str) -> Option<String>,
) -> Result<ConsumerSpec> {
    let url = config.resolve_url(key, env)?;
    let mut arguments = Vec::new();
    if let Some(dlx) = &config.dead_letter_exchange {
        arguments.push(("x-dead-letter-exchange".to_string(), dlx.clone()));
    }
    Ok(ConsumerSpec {
        name: format!("ingest:{}", config.queue),
        url,
        queue: config.queue.clone(),
        prefetch: config.prefetch,
        declare: config.declare,
        arguments,
        max_redeliveries: config.max_redeliveries,
        depth_interval: config.depth_interval,
        reconnect_max: config.reconnect_max,
    })
}

/// Starts a consumer per `[[ingest.amqp]]` entry (URLs resolved through the
/// process environment); fails, naming the key, when one has no usable URL.
pub fn spawn_all(
    config: &Config,
    ingest: &Arc<Ingest>,
    telemetry: &Arc<Telemetry>,
    shutdown: &Shutdown,
) -> Result<Vec<tokio::task::JoinHandle<()>>> {
    let specs = config
        .ingest
        .amqp
        .iter()
        .enumerate()
        .map(|(i, entry)| {
            consumer_spec(entry, &format!("ingest.amqp[{i}]"), |var| {
                std::env::var(var).ok()
            })
        })
        .collect::<Result<Vec<_>>>()?;
    let max_body_bytes = config.server.max_body_bytes.as_usize();
    Ok(specs
        .into_iter()
        .map(|spec| {
            tracing::info!(
                queue = %spec.queue,
                server = %super::redact(&spec.url),
                prefetch = spec.prefetch,
                declare = spec.declare,
                "ingesting events from amqp"
            );
            let handler = Arc::new(IngestHandler::new(
                &spec.queue,
                ingest.clone(),
                telemetry.clone(),
                max_body_bytes,
            ));
            spawn_consumer(spec, handler, telemetry.amqp.clone(), shutdown.clone())
        })
        .collect())
}
