//! The sink loop: where an event goes after it is accepted. Each sink reads
//! the event log from its own cursor, hands a batch to `deliver`, and moves
//! the cursor only when `deliver` returned `Ok` or the batch was written to
//! the sink's dead-letter store ([`DeadLetters`]).
//!
//! - `Ok`: the cursor moves past the batch.
//! - `retryable` (or a plugin error): the same batch is retried after the
//!   restart backoff (`plugins.defaults.backoff_*`), or after the longest
//!   `Retry-After` of a 429/503 answer the plugin received through the `http`
//!   capability during the call when that is longer (capped at
//!   `sinks.max_retry_after`; counted in `wasmon_sink_retry_after_waits_total`).
//! - `permanent`: the batch is dead-lettered (durably, before the cursor
//!   moves; `wasmon_sink_dead_letters_total{reason="permanent"}`) and the sink
//!   moves on.
//! - A fault: the instance restarts after its backoff and gets the same batch.
//!
//! Dead letters queued for replay (`POST /api/sinks/{name}/dead-letters/replay`)
//! go to that sink ahead of its live backlog, with their original ids, and
//! leave the store once delivered. A manifest's `tick` calls `deliver` with an
//! empty batch after that long without a delivery, so a sink holding state
//! (firing alerts) can re-send it. The loop publishes the sink's backlog and
//! the age of its oldest undelivered event.

use super::{mark_seen, serving, sleep_until_opt};
use crate::events::{DeadLetters, EventLog};
use crate::model::Event;
use crate::plugins::manifest::PluginKind;
use crate::plugins::registry::{Inner, Plugins, Slot, Status};
use crate::plugins::runtime::CallError;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often a sink that waits with a backlog refreshes its gauges.
const REFRESH: Duration = Duration::from_secs(1);

/// What a `deliver` call carries.
enum Batch {
    /// Events from the log, up to (not including) sequence number `next`.
    Log { next: u64 },
    /// A dead-lettered batch queued for replay.
    Replay { id: u64 },
    /// The empty batch of a `tick`.
    Tick,
}

pub(super) async fn sink(inner: Arc<Inner>, slot: Arc<Slot>) {
    let events = inner.deps.events.clone();
    let letters = inner.dead_letters.clone();
    let mut end = events.subscribe();
    let mut retry_at: Option<Instant> = None;
    let mut retries: u32 = 0;
    let mut last_delivery = Instant::now();
    loop {
        let Some(generation) = serving(&slot, PluginKind::Sink) else {
            return;
        };
        let cursor = events.cursor(&slot.name);
        let backlog = events.backlog(&slot.name);
        publish_backlog(&inner, &events, &slot.name, backlog);
        let replay = letters.next_replay(&slot.name);
        let restart = slot.restart_at();
        let now = Instant::now();
        let blocked = retry_at.is_some_and(|t| now < t)
            || matches!(slot.info.lock().status, Status::Failed | Status::Stopped)
            || restart.is_some_and(|r| now < r);
        let tick_at = generation.manifest.tick.map(|t| last_delivery + t);
        let tick_due = tick_at.is_some_and(|t| now >= t);
        if blocked || (backlog == 0 && replay.is_none() && !tick_due) {
            let refresh = (backlog > 0).then(|| now + REFRESH);
            let wake_at = [retry_at, restart, tick_at.filter(|t| *t > now), refresh]
                .into_iter()
                .flatten()
                .min();
            tokio::select! {
                _ = inner.shutdown.wait() => return,
                _ = slot.wake.notified() => { retry_at = None; }
                changed = end.changed() => if changed.is_err() { return },
                _ = sleep_until_opt(wake_at) => {}
            }
            continue;
        }
        let (batch, kind) = match replay {
            Some(letter) => (
                letter.events.iter().cloned().map(Arc::new).collect(),
                Batch::Replay { id: letter.id },
            ),
            None if backlog > 0 => {
                let (read, skipped) = events.read(cursor, generation.manifest.batch_size);
                if skipped > 0 {
                    tracing::warn!(plugin = %slot.name, skipped, "events fell off the event log before this sink read them");
                }
                let Some(next) = read.last().map(|(seq, _)| seq + 1) else {
                    continue;
                };
                let wanted: Vec<Arc<Event>> = read
                    .into_iter()
                    .filter(|(_, e)| generation.manifest.wants_event(&e.event_type))
                    .map(|(_, e)| e)
                    .collect();
                if wanted.is_empty() {
                    events.ack(&slot.name, next);
                    continue;
                }
                (wanted, Batch::Log { next })
            }
            None => (Vec::new(), Batch::Tick),
        };
        let count = batch.len() as u64;
        let t = &inner.deps.telemetry;
        let mut retry_after = None;
        let result = inner
            .call(&slot, &generation, async |i| {
                let result = i.deliver(&batch).await;
                retry_after = i.retry_after();
                result
            })
            .await;
        match result {
            Some(Ok(())) => {
                match kind {
                    Batch::Log { next } => events.ack(&slot.name, next),
                    Batch::Replay { id } => {
                        letters.delivered(&slot.name, id);
                        tracing::info!(plugin = %slot.name, dead_letter = id, events = count, "a replayed dead letter was delivered");
                    }
                    Batch::Tick => {}
                }
                t.sink_delivered
                    .with_label_values(&[&*slot.name])
                    .inc_by(count);
                last_delivery = Instant::now();
                retry_at = None;
                retries = 0;
                letters.set_retry_at(&slot.name, None);
            }
            Some(Err(CallError::Delivery {
                retryable: false,
                message,
            })) => {
                t.sink_failures
                    .with_label_values(&[&*slot.name, "permanent"])
                    .inc();
                match kind {
                    Batch::Log { next } => {
                        match dead_letter(&inner, &letters, &slot.name, &message, &batch).await {
                            Ok(()) => {
                                events.ack(&slot.name, next);
                                retries = 0;
                                retry_at = None;
                                letters.set_retry_at(&slot.name, None);
                            }
                            Err(error) => {
                                // Not safe yet: the cursor stays, the batch is retried.
                                retries += 1;
                                let delay =
                                    crate::plugins::supervisor::backoff(&inner.config, retries);
                                tracing::error!(plugin = %slot.name, events = count, error = %format!("{error:#}"), retry_in = ?delay, "cannot dead-letter a batch; it stays in the log");
                                retry_at = Some(Instant::now() + delay);
                                letters.set_retry_at(&slot.name, Some(at_ms(delay)));
                            }
                        }
                    }
                    Batch::Replay { id } => {
                        letters.replay_failed(&slot.name, id);
                        tracing::error!(plugin = %slot.name, dead_letter = id, events = count, error = %message, "a replayed dead letter failed permanently again; it stays a dead letter");
                    }
                    Batch::Tick => {
                        last_delivery = Instant::now();
                        tracing::warn!(plugin = %slot.name, error = %message, "the sink's tick failed permanently");
                    }
                }
            }
            Some(Err(
                CallError::Delivery {
                    retryable: true,
                    message,
                }
                | CallError::Plugin(message),
            )) => {
                retries += 1;
                let mut delay = crate::plugins::supervisor::backoff(&inner.config, retries);
                t.sink_failures
                    .with_label_values(&[&*slot.name, "retryable"])
                    .inc();
                if let Some(asked) = retry_after {
                    let honoured = asked.min(inner.deps.sinks.max_retry_after);
                    delay = delay.max(honoured);
                    t.sink_retry_after.with_label_values(&[&*slot.name]).inc();
                    tracing::info!(plugin = %slot.name, retry_after = ?asked, honoured = ?honoured, "the target asked to retry later (Retry-After)");
                }
                tracing::warn!(plugin = %slot.name, events = count, error = %message, retry_in = ?delay, "sink delivery failed; will retry");
                retry_at = Some(Instant::now() + delay);
                letters.set_retry_at(&slot.name, Some(at_ms(delay)));
            }
            // A fault: the batch is retried after the restart.
            Some(Err(CallError::Fault(_))) => {}
            // No instance to call and no restart due: don't spin.
            None => tokio::time::sleep(Duration::from_millis(100)).await,
        }
        mark_seen(&slot, &generation);
    }
}

/// Unix milliseconds `delay` from now.
fn at_ms(delay: Duration) -> u64 {
    crate::time::now_ms().saturating_add(u64::try_from(delay.as_millis()).unwrap_or(u64::MAX))
}

/// Writes a batch to the sink's dead-letter store (off the async threads:
/// it syncs a file) and counts it.
async fn dead_letter(
    inner: &Inner,
    letters: &Arc<DeadLetters>,
    sink: &str,
    message: &str,
    batch: &[Arc<Event>],
) -> anyhow::Result<()> {
    let store = letters.clone();
    let (name, error, events) = (sink.to_string(), message.to_string(), batch.to_vec());
    let added = tokio::task::spawn_blocking(move || store.add(&name, "permanent", &error, &events))
        .await??;
    let t = &inner.deps.telemetry;
    let count = batch.len() as u64;
    t.sink_dead_letters
        .with_label_values(&[sink, "permanent"])
        .inc_by(count);
    t.sink_dead_letter.with_label_values(&[sink]).inc_by(count);
    if added.dropped_events > 0 {
        t.sink_dead_letters_dropped
            .with_label_values(&[sink])
            .inc_by(added.dropped_events);
        tracing::warn!(
            plugin = sink,
            batches = added.dropped_batches,
            events = added.dropped_events,
            "the dead-letter store is full; its oldest batches were dropped"
        );
    }
    tracing::error!(
        plugin = sink,
        events = count,
        dead_letter = added.id,
        error = message,
        "sink failed permanently; the batch is dead-lettered"
    );
    Ok(())
}

/// A sink's backlog and the time of its oldest undelivered event (Unix ms).
/// Reads only: it never creates a cursor.
fn backlog_of(events: &EventLog, sink: &str) -> (u64, Option<u64>) {
    let backlog = events.backlog(sink);
    if backlog == 0 {
        return (0, None);
    }
    let from = events.end().saturating_sub(backlog);
    let (oldest, _) = events.read(from, 1);
    (backlog, oldest.first().map(|(_, e)| e.time_ms))
}

/// Seconds since `time_ms`; 0 for none.
fn age_seconds(time_ms: Option<u64>, now_ms: u64) -> f64 {
    time_ms.map_or(0.0, |t| now_ms.saturating_sub(t) as f64 / 1000.0)
}

fn publish_backlog(inner: &Inner, events: &EventLog, sink: &str, backlog: u64) {
    let t = &inner.deps.telemetry;
    t.sink_backlog
        .with_label_values(&[sink])
        .set(i64::try_from(backlog).unwrap_or(i64::MAX));
    let oldest = if backlog == 0 {
        None
    } else {
        backlog_of(events, sink).1
    };
    t.sink_oldest_age
        .with_label_values(&[sink])
        .set(age_seconds(oldest, crate::time::now_ms()));
}

impl Plugins {
    /// The sinks' dead-letter store.
    pub fn dead_letters(&self) -> &Arc<DeadLetters> {
        &self.inner.dead_letters
    }

    /// A sink's backlog and the time of its oldest undelivered event (Unix
    /// ms); never creates a cursor.
    pub fn sink_backlog(&self, sink: &str) -> (u64, Option<u64>) {
        backlog_of(&self.inner.deps.events, sink)
    }

    /// Queues `ids` of `sink`'s dead letters (all when `None`) for replay
    /// to that sink, ahead of its live backlog, and wakes it. Returns the
    /// ids queued, or the first id it does not hold.
    pub fn replay_dead_letters(&self, sink: &str, ids: Option<&[u64]>) -> Result<Vec<u64>, u64> {
        let queued = self.inner.dead_letters.queue_replay(sink, ids)?;
        if let Some(slot) = self.slot(sink) {
            slot.wake.notify_one();
        }
        tracing::info!(plugin = sink, ids = ?queued, "dead letters queued for replay");
        Ok(queued)
    }
}
