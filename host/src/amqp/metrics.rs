//! The AMQP self-metrics, registered in the host's registry by `Telemetry`.

use anyhow::{Context, Result};
use prometheus::{IntCounterVec, IntGaugeVec, Opts, Registry};

/// Every AMQP metric; cheap to clone (each vector is an `Arc` inside).
#[derive(Clone)]
pub struct AmqpMetrics {
    /// 1 while a link (consumer, publisher, depth watch) is connected.
    pub connected: IntGaugeVec,
    /// Connections lost after being established, per link.
    pub disconnects: IntCounterVec,
    /// Messages in a queue (ready to deliver), by passive declare.
    pub queue_messages: IntGaugeVec,
    /// Consumers of a queue, by passive declare.
    pub queue_consumers: IntGaugeVec,
    /// Deliveries settled by a consumer, by outcome: `acked`, `requeued`,
    /// `dead_lettered` (after `max_redeliveries`), `rejected` (never valid).
    pub deliveries: IntCounterVec,
    /// Messages published, by result: `confirmed`, `rejected`, `error`.
    pub published: IntCounterVec,
}

impl AmqpMetrics {
    /// Creates the metrics and registers them in `registry`.
    pub fn register(registry: &Registry) -> Result<AmqpMetrics> {
        let gauge = |name: &str, help: &str, labels: &[&str]| -> Result<IntGaugeVec> {
            let metric = IntGaugeVec::new(Opts::new(name, help), labels)?;
            registry
                .register(Box::new(metric.clone()))
                .with_context(|| format!("failed to register {name}"))?;
            Ok(metric)
        };
        let counter = |name: &str, help: &str, labels: &[&str]| -> Result<IntCounterVec> {
            let metric = IntCounterVec::new(Opts::new(name, help), labels)?;
            registry
                .register(Box::new(metric.clone()))
                .with_context(|| format!("failed to register {name}"))?;
            Ok(metric)
        };
        Ok(AmqpMetrics {
            connected: gauge(
                "wasmon_amqp_connected",
                "Whether an AMQP link (consumer, publisher, depth watch) is connected (1) or not (0).",
                &["name"],
            )?,
            disconnects: counter(
                "wasmon_amqp_disconnects_total",
                "AMQP connections lost after they were established.",
                &["name"],
            )?,
            queue_messages: gauge(
                "wasmon_amqp_queue_messages",
                "Messages ready in a queue, by passive declare.",
                &["queue"],
            )?,
            queue_consumers: gauge(
                "wasmon_amqp_queue_consumers",
                "Consumers of a queue, by passive declare.",
                &["queue"],
            )?,
            deliveries: counter(
                "wasmon_amqp_deliveries_total",
                "AMQP deliveries settled, by outcome (acked, requeued, dead_lettered, rejected).",
                &["name", "outcome"],
            )?,
            published: counter(
                "wasmon_amqp_published_total",
                "AMQP messages published, by result (confirmed, rejected, error).",
                &["name", "result"],
            )?,
        })
    }
}
