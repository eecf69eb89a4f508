//! The event log: sequence-numbered events bound for sinks, with one
//! acknowledged cursor per sink. Durable when opened on a directory
//! ([`EventLog::open`]: segments on disk, group commit, persisted cursors,
//! retention, recovery); in memory only with [`EventLog::new`] (tests,
//! benchmarks), where the oldest events fall off past its capacity.

use super::keys::Keys;
use super::segments::{self, Segment};
use super::writer::{Job, Queue};
use crate::model::Event;
use parking_lot::{Condvar, Mutex, MutexGuard};
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::sync::{oneshot, watch};

/// Why a durable append failed; nothing of it is recorded.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AppendError {
    /// The log holds `storage.max_bytes` and `storage.when_full = "reject"`.
    #[error(
        "the event log is full (storage.max_bytes) and no sink has passed its oldest segment; retry later"
    )]
    Full {
        /// When a retry may succeed.
        retry_after: Duration,
    },
    /// One append is larger than the whole log could ever hold: retrying
    /// cannot help (split the batch, or raise `storage.max_bytes`).
    #[error(
        "these events take {bytes} bytes, more than the whole event log holds (storage.max_bytes = {max_bytes}); send smaller batches"
    )]
    TooLarge {
        /// The append's size on disk.
        bytes: u64,
        /// `storage.max_bytes`.
        max_bytes: u64,
    },
    /// Writing or syncing failed (a full disk, an I/O error).
    #[error("the event log could not write: {0}")]
    Io(String),
    /// The log is shutting down.
    #[error("the event log is closed")]
    Closed,
}

/// The metrics the log keeps.
#[derive(Clone, Default)]
pub struct LogMetrics {
    /// `wasmon_event_log_dropped_total{sink,reason}`.
    pub dropped: Option<prometheus::IntCounterVec>,
    /// `wasmon_event_log_corrupt_records_total`.
    pub corrupt: Option<prometheus::IntCounter>,
    /// `wasmon_event_log_bytes`.
    pub bytes: Option<prometheus::IntGauge>,
}

impl LogMetrics {
    /// Counts `n` events a sink lost, for `reason` (`retention`, `full`).
    pub(super) fn dropped(&self, sink: &str, reason: &str, n: u64) {
        if n > 0
            && let Some(counter) = &self.dropped
        {
            counter.with_label_values(&[sink, reason]).inc_by(n);
        }
    }

    /// Sets `wasmon_event_log_bytes`.
    pub(super) fn set_bytes(&self, bytes: u64) {
        if let Some(gauge) = &self.bytes {
            gauge.set(i64::try_from(bytes).unwrap_or(i64::MAX));
        }
    }
}

/// How a durable log behaves, from `[storage]`.
#[derive(Debug, Clone)]
pub(super) struct Disk {
    pub dir: std::path::PathBuf,
    pub fsync: bool,
    pub max_bytes: u64,
    pub max_age_ms: u64,
    pub drop_oldest: bool,
    pub segment_bytes: u64,
}

/// What readers and the writer share, under one lock.
pub(super) struct State {
    /// The newest events, in order (sequence numbers may have gaps).
    pub tail: VecDeque<(u64, Arc<Event>)>,
    pub tail_bytes: usize,
    pub capacity: usize,
    pub max_tail_bytes: usize,
    /// One past the newest published sequence number.
    pub end: u64,
    /// The segments on disk, oldest first (durable logs only).
    pub segments: Vec<Segment>,
    pub cursors: HashMap<String, u64>,
    pub cursors_dirty: bool,
    /// The sinks loaded since start: only their cursors hold segments back
    /// (a cursor read back from disk for a sink that is gone would hold
    /// the log forever).
    pub registered: std::collections::HashSet<String>,
    pub durable: bool,
}

impl State {
    /// The oldest sequence number still kept.
    pub fn first(&self) -> u64 {
        if self.durable {
            self.segments
                .iter()
                .find(|s| s.last.is_some())
                .map_or(self.end, |s| s.first)
        } else {
            self.tail.front().map_or(self.end, |(s, _)| *s)
        }
    }

    /// Adds a published event to the in-memory tail; in memory-only logs,
    /// what falls off is lost and counted per sink.
    pub fn push_tail(&mut self, seq: u64, event: Arc<Event>, metrics: &LogMetrics) {
        self.tail_bytes += event.approx_bytes();
        self.tail.push_back((seq, event));
        self.end = self.end.max(seq + 1);
        while self.tail.len() > self.capacity
            || (self.tail_bytes > self.max_tail_bytes && self.tail.len() > 1)
        {
            let Some((evicted, old)) = self.tail.pop_front() else {
                break;
            };
            self.tail_bytes = self.tail_bytes.saturating_sub(old.approx_bytes());
            if !self.durable {
                for (sink, &c) in &self.cursors {
                    if c <= evicted {
                        metrics.dropped(sink, "retention", 1);
                    }
                }
            }
        }
    }

    /// Bytes of the segments on disk.
    pub fn disk_bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.bytes).sum()
    }

    /// The lowest cursor of any sink loaded since start (`u64::MAX` with none).
    pub fn min_cursor(&self) -> u64 {
        self.cursors
            .iter()
            .filter(|(sink, _)| self.registered.contains(*sink))
            .map(|(_, c)| *c)
            .min()
            .unwrap_or(u64::MAX)
    }
}

pub(super) struct Shared {
    pub state: Mutex<State>,
    pub end: watch::Sender<u64>,
    pub live: crate::live::Live,
    pub metrics: LogMetrics,
    pub keys: Mutex<Keys>,
    pub next_seq: AtomicU64,
    pub disk: Option<Disk>,
    pub queue: Mutex<Queue>,
    pub wake: Condvar,
}

impl Shared {
    /// Publishes written events: the tail (under `state`, which the caller
    /// holds for its own bookkeeping and which is released here), then the
    /// end and live subscribers.
    pub fn publish(&self, mut state: MutexGuard<'_, State>, events: &[(u64, Arc<Event>)]) {
        for (seq, event) in events {
            state.push_tail(*seq, event.clone(), &self.metrics);
        }
        let end = state.end;
        drop(state);
        for (_, event) in events {
            self.live.recorded(event);
        }
        self.end.send_replace(end);
    }
}

/// Events bound for sinks, in order, each with a sequence number.
pub struct EventLog {
    pub(super) shared: Arc<Shared>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
}

/// Bytes the in-memory tail holds at most, by [`Event::approx_bytes`].
const TAIL_BYTES: usize = 64 * 1024 * 1024;

impl EventLog {
    /// A log in memory only that keeps at most `capacity` events.
    pub fn new(capacity: usize) -> Self {
        Self::build(
            capacity,
            None,
            LogMetrics::default(),
            Keys::new(u64::MAX, 1_000_000),
        )
    }

    pub(super) fn build(
        capacity: usize,
        disk: Option<Disk>,
        metrics: LogMetrics,
        keys: Keys,
    ) -> Self {
        let (end, _) = watch::channel(0);
        EventLog {
            shared: Arc::new(Shared {
                state: Mutex::new(State {
                    tail: VecDeque::new(),
                    tail_bytes: 0,
                    capacity: capacity.max(1),
                    max_tail_bytes: TAIL_BYTES,
                    end: 0,
                    segments: Vec::new(),
                    cursors: HashMap::new(),
                    cursors_dirty: false,
                    registered: Default::default(),
                    durable: disk.is_some(),
                }),
                end,
                // A bus of its own that no one listens on, until `with_live`.
                live: crate::live::Live::new(1),
                metrics,
                keys: Mutex::new(keys),
                next_seq: AtomicU64::new(0),
                disk,
                queue: Mutex::new(Queue::default()),
                wake: Condvar::new(),
            }),
            writer: Mutex::new(None),
        }
    }

    pub(super) fn set_writer(&self, handle: std::thread::JoinHandle<()>) {
        *self.writer.lock() = Some(handle);
    }

    /// Also evicts the oldest events from memory while all of them hold
    /// more than `max_bytes` (approximately; the newest event always stays).
    pub fn with_max_bytes(self, max_bytes: usize) -> Self {
        self.shared.state.lock().max_tail_bytes = max_bytes;
        self
    }

    /// Counts events lost before every sink read them in `counter`
    /// (labels `sink`, `reason`).
    pub fn with_drop_counter(mut self, counter: prometheus::IntCounterVec) -> Self {
        if let Some(shared) = Arc::get_mut(&mut self.shared) {
            shared.metrics.dropped = Some(counter);
        }
        self
    }

    /// Publishes every recorded event on `live`, the bus the rest of the host
    /// reaches through [`live`](Self::live).
    pub fn with_live(mut self, live: crate::live::Live) -> Self {
        if let Some(shared) = Arc::get_mut(&mut self.shared) {
            shared.live = live;
        }
        self
    }

    /// The live event bus.
    pub fn live(&self) -> &crate::live::Live {
        &self.shared.live
    }

    /// Appends one event without waiting for it to be durable; returns its
    /// sequence number.
    pub fn append(&self, event: Event) -> u64 {
        self.append_all([event]).saturating_sub(1)
    }

    /// Appends events in order without waiting for them to be durable
    /// (alert changes, service transitions); returns the sequence number the
    /// next event will get. A durable log writes them with the next group
    /// commit; should that fail, they are lost and counted (`full`).
    pub fn append_all(&self, events: impl IntoIterator<Item = Event>) -> u64 {
        let events: Vec<(Event, Option<String>)> = events.into_iter().map(|e| (e, None)).collect();
        self.enqueue(events, None)
    }

    /// Appends events and resolves once they are durable (on disk, synced
    /// per `storage.durability`), or with why none of them is recorded.
    pub async fn append_durable(&self, events: Vec<Event>) -> Result<u64, AppendError> {
        self.append_durable_keyed(events.into_iter().map(|e| (e, None)).collect())
            .await
    }

    /// [`append_durable`](Self::append_durable), storing each event's
    /// idempotency key with it (recovery rebuilds the keys from them).
    pub async fn append_durable_keyed(
        &self,
        events: Vec<(Event, Option<String>)>,
    ) -> Result<u64, AppendError> {
        if self.shared.disk.is_none() {
            return Ok(self.enqueue(events, None));
        }
        let (tx, rx) = oneshot::channel();
        let next = self.enqueue(events, Some(tx));
        match rx.await {
            Ok(Ok(())) => Ok(next),
            Ok(Err(error)) => Err(error),
            Err(_) => Err(AppendError::Closed),
        }
    }

    /// Numbers `events` and publishes them (memory) or queues them for the
    /// writer (durable). Returns the next sequence number.
    fn enqueue(
        &self,
        events: Vec<(Event, Option<String>)>,
        waiter: Option<oneshot::Sender<Result<(), AppendError>>>,
    ) -> u64 {
        let shared = &self.shared;
        let n = events.len() as u64;
        if shared.disk.is_none() {
            // Numbered under the lock, so the tail stays in order.
            let state = shared.state.lock();
            let first = shared.next_seq.fetch_add(n, Ordering::Relaxed);
            let published: Vec<_> = events
                .into_iter()
                .zip(first..)
                .map(|((e, _), seq)| (seq, Arc::new(e)))
                .collect();
            shared.publish(state, &published);
            if let Some(waiter) = waiter {
                let _ = waiter.send(Ok(()));
            }
            return first + n;
        }
        if n == 0 {
            if let Some(waiter) = waiter {
                let _ = waiter.send(Ok(()));
            }
            return shared.next_seq.load(Ordering::Relaxed);
        }
        let first = shared.next_seq.fetch_add(n, Ordering::Relaxed);
        // Encoded by the caller, so concurrent appends serialise in parallel.
        let job = Job::new(first, events, waiter);
        {
            let mut queue = shared.queue.lock();
            if queue.closing {
                drop(queue);
                job.finish(Err(AppendError::Closed), shared);
                return first + n;
            }
            queue.jobs.push(job);
        }
        shared.wake.notify_one();
        first + n
    }

    /// The id an `idempotency_key` was recorded as within
    /// `ingest.idempotency_window`, or `None` after claiming it for `id`
    /// (call [`release_key`](Self::release_key) if the append fails).
    pub fn claim_key(&self, key: &str, id: &str, now_ms: u64) -> Option<String> {
        let mut keys = self.shared.keys.lock();
        if let Some(original) = keys.get(key, now_ms) {
            return Some(original.to_string());
        }
        keys.insert(key.to_string(), id.to_string(), now_ms);
        None
    }

    /// Forgets a claim whose event was not recorded.
    pub fn release_key(&self, key: &str, id: &str) {
        self.shared.keys.lock().remove(key, id);
    }

    /// The newest events that `filter` accepts among the last `window` kept
    /// in memory, newest first: `limit` of them after skipping `offset`, and
    /// how many matched in all.
    pub fn recent(
        &self,
        window: usize,
        offset: usize,
        limit: usize,
        filter: impl Fn(&Event) -> bool,
    ) -> (Vec<Arc<Event>>, usize) {
        let state = self.shared.state.lock();
        let mut matched = 0;
        let mut page = Vec::with_capacity(limit.min(1024));
        for (_, event) in state.tail.iter().rev().take(window) {
            if !filter(event) {
                continue;
            }
            if matched >= offset && page.len() < limit {
                page.push(event.clone());
            }
            matched += 1;
        }
        (page, matched)
    }

    /// The sequence number after the newest event recorded.
    pub fn end(&self) -> u64 {
        self.shared.state.lock().end
    }

    /// Up to `max` events from sequence number `from` on, and how many
    /// sequence numbers between `from` and the oldest event kept are gone.
    /// Recent events come from memory, older ones from the segments.
    pub fn read(&self, from: u64, max: usize) -> (Vec<(u64, Arc<Event>)>, u64) {
        let mut out = Vec::new();
        let (skipped, older) = {
            let state = self.shared.state.lock();
            let first = state.first();
            let skipped = first.saturating_sub(from);
            let start = from.max(first);
            let in_tail = !state.durable
                || start >= state.end
                || state.tail.front().is_some_and(|(s, _)| *s <= start);
            if in_tail || max == 0 {
                let i = state.tail.partition_point(|(s, _)| *s < start);
                out.extend(state.tail.iter().skip(i).take(max).cloned());
                return (out, skipped);
            }
            let older: Vec<Segment> = state
                .segments
                .iter()
                .filter(|s| s.last.is_some_and(|l| l >= start))
                .take(4)
                .cloned()
                .collect();
            (skipped, (start, older))
        };
        let (start, older) = older;
        for segment in &older {
            segments::read(segment, start, max, &mut out);
            if out.len() >= max {
                break;
            }
        }
        (out, skipped)
    }

    /// Resolves when the log's end changes; gives the new end.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.shared.end.subscribe()
    }

    /// A sink's cursor: the next sequence number it has not acknowledged. A
    /// sink seen for the first time starts at the end (it gets new events only).
    pub fn cursor(&self, sink: &str) -> u64 {
        self.cursor_or(sink, u64::MAX)
    }

    /// Like [`cursor`](Self::cursor), but a sink seen for the first time starts
    /// at `first` (capped at the end): `0` gives it everything still kept.
    pub fn cursor_or(&self, sink: &str, first: u64) -> u64 {
        let mut state = self.shared.state.lock();
        if !state.registered.contains(sink) {
            state.registered.insert(sink.to_string());
        }
        if let Some(&c) = state.cursors.get(sink) {
            return c;
        }
        let start = first.min(state.end);
        state.cursors.insert(sink.to_string(), start);
        state.cursors_dirty = true;
        start
    }

    /// Moves a sink's cursor forward to `next` (persisted within
    /// 100 ms; a cursor that lags on disk only means redelivery).
    pub fn ack(&self, sink: &str, next: u64) {
        let mut state = self.shared.state.lock();
        let cursor = state.cursors.entry(sink.to_string()).or_insert(0);
        if next > *cursor {
            *cursor = next;
            state.cursors_dirty = true;
        }
    }

    /// Forgets a sink that was removed.
    pub fn forget(&self, sink: &str) {
        let mut state = self.shared.state.lock();
        state.cursors.remove(sink);
        state.registered.remove(sink);
        state.cursors_dirty = true;
    }

    /// Events a sink has yet to acknowledge that the log still holds (in
    /// sequence numbers): from its cursor, or from the oldest event kept.
    pub fn backlog(&self, sink: &str) -> u64 {
        let state = self.shared.state.lock();
        let first = state.first();
        state
            .cursors
            .get(sink)
            .map_or(0, |&c| state.end.saturating_sub(c.max(first)))
    }

    /// Events the log holds now (on disk for a durable log).
    pub fn len(&self) -> usize {
        let state = self.shared.state.lock();
        if state.durable {
            let events: u64 = state.segments.iter().map(|s| s.events).sum();
            usize::try_from(events).unwrap_or(usize::MAX)
        } else {
            state.tail.len()
        }
    }

    /// Whether the log holds no event.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes of the segments on disk (0 in memory).
    pub fn disk_bytes(&self) -> u64 {
        self.shared.state.lock().disk_bytes()
    }

    /// Writes what is queued, syncs, persists the cursors and stops the
    /// writer; appends after this fail with [`AppendError::Closed`].
    pub fn close(&self) {
        self.shared.queue.lock().closing = true;
        self.shared.wake.notify_one();
        if let Some(handle) = self.writer.lock().take() {
            let _ = handle.join();
        }
    }
}

impl Drop for EventLog {
    fn drop(&mut self) {
        self.close();
    }
}
