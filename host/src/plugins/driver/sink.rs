//! The sink loop: where an event goes after it is accepted. Each sink reads
//! the event log from its own cursor, hands a batch to `deliver`, and moves
//! the cursor only when `deliver` returned `Ok` or the batch was
//! dead-lettered; a retryable failure backs off and retries the same batch.

use super::{mark_seen, serving, sleep_until_opt};
use crate::plugins::manifest::PluginKind;
use crate::plugins::registry::{Inner, Slot, Status};
use crate::plugins::runtime::CallError;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub(super) async fn sink(inner: Arc<Inner>, slot: Arc<Slot>) {
    let events = inner.deps.events.clone();
    let mut end = events.subscribe();
    let mut retry_at: Option<Instant> = None;
    let mut retries: u32 = 0;
    loop {
        let Some(generation) = serving(&slot, PluginKind::Sink) else {
            return;
        };
        let cursor = events.cursor(&slot.name);
        let backlog = events.backlog(&slot.name);
        inner
            .deps
            .telemetry
            .sink_backlog
            .with_label_values(&[&*slot.name])
            .set(i64::try_from(backlog).unwrap_or(i64::MAX));
        let restart = slot.restart_at();
        let blocked = retry_at.is_some_and(|t| Instant::now() < t)
            || matches!(slot.info.lock().status, Status::Failed | Status::Stopped)
            || restart.is_some_and(|r| Instant::now() < r);
        if backlog == 0 || blocked {
            let wake_at = [retry_at, restart].into_iter().flatten().min();
            tokio::select! {
                _ = inner.shutdown.wait() => return,
                _ = slot.wake.notified() => { retry_at = None; }
                changed = end.changed() => if changed.is_err() { return },
                _ = sleep_until_opt(wake_at) => {}
            }
            continue;
        }
        let (batch, skipped) = events.read(cursor, generation.manifest.batch_size);
        if skipped > 0 {
            tracing::warn!(plugin = %slot.name, skipped, "events fell off the event log before this sink read them");
        }
        let Some(next) = batch.last().map(|(seq, _)| seq + 1) else {
            continue;
        };
        let wanted: Vec<_> = batch
            .into_iter()
            .filter(|(_, e)| generation.manifest.wants_event(&e.event_type))
            .map(|(_, e)| e)
            .collect();
        if wanted.is_empty() {
            events.ack(&slot.name, next);
            continue;
        }
        let count = wanted.len() as u64;
        let t = &inner.deps.telemetry;
        match inner
            .call(&slot, &generation, async |i| i.deliver(&wanted).await)
            .await
        {
            Some(Ok(())) => {
                events.ack(&slot.name, next);
                t.sink_delivered
                    .with_label_values(&[&*slot.name])
                    .inc_by(count);
                retry_at = None;
                retries = 0;
            }
            Some(Err(CallError::Delivery {
                retryable: false,
                message,
            })) => {
                events.ack(&slot.name, next);
                t.sink_failures
                    .with_label_values(&[&*slot.name, "permanent"])
                    .inc();
                t.sink_dead_letter
                    .with_label_values(&[&*slot.name])
                    .inc_by(count);
                tracing::error!(plugin = %slot.name, events = count, error = %message, "sink failed permanently; the batch is dead-lettered");
                retries = 0;
            }
            Some(Err(
                CallError::Delivery {
                    retryable: true,
                    message,
                }
                | CallError::Plugin(message),
            )) => {
                retries += 1;
                let delay = crate::plugins::supervisor::backoff(&inner.config, retries);
                t.sink_failures
                    .with_label_values(&[&*slot.name, "retryable"])
                    .inc();
                tracing::warn!(plugin = %slot.name, events = count, error = %message, retry_in = ?delay, "sink delivery failed; will retry");
                retry_at = Some(Instant::now() + delay);
            }
            // A fault: the batch is retried after the restart.
            Some(Err(CallError::Fault(_))) => {}
            // No instance to call and no restart due: don't spin.
            None => tokio::time::sleep(Duration::from_millis(100)).await,
        }
        mark_seen(&slot, &generation);
    }
}
