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
use crate::plugins::registry::{Generation, Inner, Plugins, Slot, Status};
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

/// One sink's loop state.
struct SinkLoop {
    inner: Arc<Inner>,
    slot: Arc<Slot>,
    events: Arc<EventLog>,
    letters: Arc<DeadLetters>,
    /// When the batch that failed is retried.
    retry_at: Option<Instant>,
    /// Failed deliveries in a row (the backoff's exponent).
    failures: u32,
    last_delivery: Instant,
    /// The oldest undelivered event's sequence number and time, last read.
    oldest: Option<(u64, u64)>,
}

pub(super) async fn sink(inner: Arc<Inner>, slot: Arc<Slot>) {
    let mut end = inner.deps.events.subscribe();
    let mut sink = SinkLoop {
        events: inner.deps.events.clone(),
        letters: inner.dead_letters.clone(),
        inner,
        slot,
        retry_at: None,
        failures: 0,
        last_delivery: Instant::now(),
        oldest: None,
    };
    let (slot, events) = (sink.slot.clone(), sink.events.clone());
    loop {
        let Some(generation) = serving(&slot, PluginKind::Sink) else {
            return;
        };
        let cursor = events.cursor(&slot.name);
        let backlog = sink.publish_backlog();
        let replay = sink.letters.next_replay(&slot.name);
        let restart = slot.restart_at();
        let now = Instant::now();
        let blocked = sink.retry_at.is_some_and(|t| now < t)
            || matches!(slot.info.lock().status, Status::Failed | Status::Stopped)
            || restart.is_some_and(|r| now < r);
        let tick_at = generation.manifest.tick.map(|t| sink.last_delivery + t);
        let tick_due = tick_at.is_some_and(|t| now >= t);
        if blocked || (backlog == 0 && replay.is_none() && !tick_due) {
            // Stopping, and nothing it could deliver now: done. Until then
            // a stopping sink goes on delivering what the log holds, so
            // events accepted before the HTTP server drained reach it before
            // the host exits (bounded by `server.shutdown_timeout`).
            if sink.inner.shutdown.is_triggered() {
                return;
            }
            let refresh = (backlog > 0).then(|| now + REFRESH);
            let wake_at = [
                sink.retry_at,
                restart,
                tick_at.filter(|t| *t > now),
                refresh,
            ]
            .into_iter()
            .flatten()
            .min();
            tokio::select! {
                _ = sink.inner.shutdown.wait() => {}
                _ = slot.wake.notified() => { sink.retry_at = None; }
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
            None if backlog > 0 => match sink.read_log(&generation, cursor) {
                Some(read) => read,
                None => continue,
            },
            None => (Vec::new(), Batch::Tick),
        };
        sink.deliver(&generation, batch, kind).await;
        mark_seen(&slot, &generation);
    }
}

impl SinkLoop {
    /// The next batch from the log at `cursor`: the events the manifest
    /// wants; `None` (after moving the cursor past them) when it wants none.
    fn read_log(&self, generation: &Generation, cursor: u64) -> Option<(Vec<Arc<Event>>, Batch)> {
        let (read, skipped) = self.events.read(cursor, generation.manifest.batch_size);
        if skipped > 0 {
            tracing::warn!(plugin = %self.name(), skipped, "events fell off the event log before this sink read them");
        }
        let next = read.last().map(|(seq, _)| seq + 1)?;
        let wanted: Vec<Arc<Event>> = read
            .into_iter()
            .filter(|(_, e)| generation.manifest.wants_event(&e.event_type))
            .map(|(_, e)| e)
            .collect();
        if wanted.is_empty() {
            self.events.ack(self.name(), next);
            return None;
        }
        Some((wanted, Batch::Log { next }))
    }

    /// Calls `deliver` with `batch` and acts on its outcome.
    async fn deliver(&mut self, generation: &Arc<Generation>, batch: Vec<Arc<Event>>, kind: Batch) {
        let mut retry_after = None;
        let result = self
            .inner
            .call(&self.slot, generation, async |i| {
                let result = i.deliver(&batch).await;
                retry_after = i.retry_after();
                result
            })
            .await;
        match result {
            Some(Ok(())) => self.delivered(&batch, kind),
            Some(Err(CallError::Delivery {
                retryable: false,
                message,
            })) => self.failed_permanently(&batch, kind, &message).await,
            Some(Err(
                CallError::Delivery {
                    retryable: true,
                    message,
                }
                | CallError::Plugin(message),
            )) => self.failed_retryably(batch.len(), &message, retry_after),
            // A fault: the batch is retried after the restart.
            Some(Err(CallError::Fault(_))) => {}
            // No instance to call and no restart due: don't spin.
            None => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }

    fn name(&self) -> &str {
        &self.slot.name
    }

    fn delivered(&mut self, batch: &[Arc<Event>], kind: Batch) {
        let count = batch.len() as u64;
        match kind {
            Batch::Log { next } => self.events.ack(self.name(), next),
            Batch::Replay { id } => {
                self.letters.delivered(self.name(), id);
                tracing::info!(plugin = %self.name(), dead_letter = id, events = count, "a replayed dead letter was delivered");
            }
            Batch::Tick => {}
        }
        self.inner
            .deps
            .telemetry
            .sink_delivered
            .with_label_values(&[self.name()])
            .inc_by(count);
        self.last_delivery = Instant::now();
        self.clear_retry();
    }

    async fn failed_permanently(&mut self, batch: &[Arc<Event>], kind: Batch, message: &str) {
        self.inner
            .deps
            .telemetry
            .sink_failures
            .with_label_values(&[self.name(), "permanent"])
            .inc();
        match kind {
            Batch::Log { next } => match self.dead_letter(message, batch).await {
                Ok(()) => {
                    self.events.ack(self.name(), next);
                    self.clear_retry();
                }
                Err(error) => {
                    // Not safe yet: the cursor stays, the batch is retried.
                    let delay = self.retry_later(None);
                    tracing::error!(plugin = %self.name(), events = batch.len(), error = %format!("{error:#}"), retry_in = ?delay, "cannot dead-letter a batch; it stays in the log");
                }
            },
            Batch::Replay { id } => {
                self.letters.replay_failed(self.name(), id);
                tracing::error!(plugin = %self.name(), dead_letter = id, events = batch.len(), error = %message, "a replayed dead letter failed permanently again; it stays a dead letter");
            }
            Batch::Tick => {
                self.last_delivery = Instant::now();
                tracing::warn!(plugin = %self.name(), error = %message, "the sink's tick failed permanently");
            }
        }
    }

    fn failed_retryably(&mut self, count: usize, message: &str, retry_after: Option<Duration>) {
        let t = &self.inner.deps.telemetry;
        t.sink_failures
            .with_label_values(&[self.name(), "retryable"])
            .inc();
        let honoured = retry_after.map(|asked| {
            let honoured = asked.min(self.inner.deps.sinks.max_retry_after);
            t.sink_retry_after.with_label_values(&[self.name()]).inc();
            tracing::info!(plugin = %self.name(), retry_after = ?asked, honoured = ?honoured, "the target asked to retry later (Retry-After)");
            honoured
        });
        let delay = self.retry_later(honoured);
        tracing::warn!(plugin = %self.name(), events = count, error = %message, retry_in = ?delay, "sink delivery failed; will retry");
    }

    /// Schedules a retry after the backoff of one more failure in a row, or
    /// `at_least` when that is longer; returns the wait.
    fn retry_later(&mut self, at_least: Option<Duration>) -> Duration {
        self.failures += 1;
        let backoff = crate::plugins::supervisor::backoff(&self.inner.config, self.failures);
        let delay = at_least.map_or(backoff, |d| backoff.max(d));
        self.retry_at = Some(Instant::now() + delay);
        let at_ms = crate::time::now_ms()
            .saturating_add(u64::try_from(delay.as_millis()).unwrap_or(u64::MAX));
        self.letters.set_retry_at(self.name(), Some(at_ms));
        delay
    }

    /// A delivery went through: no retry waits.
    fn clear_retry(&mut self) {
        self.retry_at = None;
        self.failures = 0;
        self.letters.set_retry_at(self.name(), None);
    }

    /// Writes a batch to the sink's dead-letter store (off the async threads:
    /// it syncs a file) and counts it.
    async fn dead_letter(&self, message: &str, batch: &[Arc<Event>]) -> anyhow::Result<()> {
        let sink = self.name();
        let store = self.letters.clone();
        let (name, error, events) = (sink.to_string(), message.to_string(), batch.to_vec());
        let added =
            tokio::task::spawn_blocking(move || store.add(&name, "permanent", &error, &events))
                .await??;
        let t = &self.inner.deps.telemetry;
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

    /// Publishes the sink's backlog and the age of its oldest undelivered
    /// event; returns the backlog. The oldest event's time is read again only
    /// when that event changed, so a waiting sink does not read the log's
    /// segments at every refresh.
    fn publish_backlog(&mut self) -> u64 {
        let (backlog, oldest) = backlog_of(&self.events, self.name(), self.oldest);
        self.oldest = oldest;
        let t = &self.inner.deps.telemetry;
        t.sink_backlog
            .with_label_values(&[self.name()])
            .set(i64::try_from(backlog).unwrap_or(i64::MAX));
        t.sink_oldest_age
            .with_label_values(&[self.name()])
            .set(age_seconds(
                oldest.map(|(_, time)| time),
                crate::time::now_ms(),
            ));
        backlog
    }
}

/// A sink's backlog and the sequence number and time (Unix ms) of its oldest
/// undelivered event; `known` (an earlier answer) is reused while that event
/// is still the oldest. Reads only: it never creates a cursor.
fn backlog_of(
    events: &EventLog,
    sink: &str,
    known: Option<(u64, u64)>,
) -> (u64, Option<(u64, u64)>) {
    let backlog = events.backlog(sink);
    if backlog == 0 {
        return (0, None);
    }
    let from = events.end().saturating_sub(backlog);
    if let Some((seq, time)) = known
        && seq == from
    {
        return (backlog, Some((seq, time)));
    }
    let (oldest, _) = events.read(from, 1);
    (backlog, oldest.first().map(|(seq, e)| (*seq, e.time_ms)))
}

/// Seconds since `time_ms`; 0 for none.
fn age_seconds(time_ms: Option<u64>, now_ms: u64) -> f64 {
    time_ms.map_or(0.0, |t| now_ms.saturating_sub(t) as f64 / 1000.0)
}

impl Plugins {
    /// The sinks' dead-letter store.
    pub fn dead_letters(&self) -> &Arc<DeadLetters> {
        &self.inner.dead_letters
    }

    /// A sink's backlog and the time of its oldest undelivered event (Unix
    /// ms); never creates a cursor.
    pub fn sink_backlog(&self, sink: &str) -> (u64, Option<u64>) {
        let (backlog, oldest) = backlog_of(&self.inner.deps.events, sink, None);
        (backlog, oldest.map(|(_, time)| time))
    }

    /// A sink's backlog and the age in seconds at `now_ms` of its oldest
    /// undelivered event (0 when none waits); never creates a cursor.
    pub fn sink_lag(&self, sink: &str, now_ms: u64) -> (u64, f64) {
        let (backlog, oldest) = self.sink_backlog(sink);
        (backlog, age_seconds(oldest, now_ms))
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
