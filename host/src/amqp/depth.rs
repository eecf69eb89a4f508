//! Queue depth and consumer count without the management plugin: a passive
//! `queue.declare` answers both. Exported as
//! `wasmon_amqp_queue_messages{queue}` and `wasmon_amqp_queue_consumers{queue}`.

use super::{AmqpMetrics, Backoff, LinkState, connect, pause};
use crate::shutdown::Shutdown;
use lapin::Channel;
use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;
use std::time::Duration;

/// Reads `queue`'s depth and consumers on `channel` into the metrics. A
/// missing queue closes the channel (the broker's 404): the caller opens
/// another.
pub(super) async fn poll(
    channel: &Channel,
    queue: &str,
    metrics: &AmqpMetrics,
) -> Result<(), String> {
    let options = QueueDeclareOptions {
        passive: true,
        ..QueueDeclareOptions::default()
    };
    let declared = channel
        .queue_declare(queue.into(), options, FieldTable::default())
        .await;
    match declared {
        Ok(q) => {
            metrics
                .queue_messages
                .with_label_values(&[queue])
                .set(i64::from(q.message_count()));
            metrics
                .queue_consumers
                .with_label_values(&[queue])
                .set(i64::from(q.consumer_count()));
            Ok(())
        }
        Err(error) => {
            // An unknown depth is not exported as a number.
            let _ = metrics.queue_messages.remove_label_values(&[queue]);
            let _ = metrics.queue_consumers.remove_label_values(&[queue]);
            Err(format!("queue {queue:?}: {error}"))
        }
    }
}

/// Which queues to watch, where.
#[derive(Clone)]
pub struct DepthSpec {
    /// Names the link in logs and `wasmon_amqp_connected{name}`.
    pub name: String,
    /// The broker's URL (never logged).
    pub url: String,
    /// The allow-listed queues.
    pub queues: Vec<String>,
    /// How often each is read.
    pub interval: Duration,
    /// The longest wait between two connection attempts.
    pub reconnect_max: Duration,
}

/// Polls `spec.queues` every `spec.interval` on a connection of its own until
/// `shutdown` fires; reconnects with backoff.
pub fn spawn_depth_watch(
    spec: DepthSpec,
    metrics: AmqpMetrics,
    shutdown: Shutdown,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut link = LinkState::new(&spec.name, &spec.url, metrics.clone());
        let mut backoff = Backoff::new(spec.reconnect_max);
        while !shutdown.is_triggered() {
            match watch(&spec, &metrics, &mut link, &mut backoff, &shutdown).await {
                Ok(()) => break,
                Err(reason) => link.down(&reason),
            }
            if !pause(backoff.next_delay(), &shutdown).await {
                break;
            }
        }
        link.closed();
    })
}

async fn watch(
    spec: &DepthSpec,
    metrics: &AmqpMetrics,
    link: &mut LinkState,
    backoff: &mut Backoff,
    shutdown: &Shutdown,
) -> Result<(), String> {
    let connection = tokio::select! {
        c = connect(&spec.url, &spec.name) => c?,
        () = shutdown.wait() => return Ok(()),
    };
    let open = || async {
        connection
            .create_channel()
            .await
            .map_err(|e| format!("cannot open a channel: {e}"))
    };
    let mut channel = open().await?;
    link.up();
    backoff.reset();
    let mut missing: Vec<bool> = vec![false; spec.queues.len()];
    loop {
        for (queue, was_missing) in spec.queues.iter().zip(missing.iter_mut()) {
            match poll(&channel, queue, metrics).await {
                Ok(()) => *was_missing = false,
                Err(error) => {
                    if !*was_missing {
                        tracing::warn!(name = %spec.name, %error, "amqp queue depth unavailable");
                    }
                    *was_missing = true;
                    channel = open().await?;
                }
            }
        }
        if !pause(spec.interval, shutdown).await {
            return Ok(());
        }
        if !connection.status().connected() {
            return Err("connection closed".to_string());
        }
    }
}
