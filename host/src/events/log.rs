//! The event log: a bounded, sequence-numbered ring of events with one
//! acknowledged cursor per sink.

use crate::model::Event;
use parking_lot::Mutex;
use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use tokio::sync::watch;

/// Events bound for sinks, in order, each with a sequence number.
pub struct EventLog {
    inner: Mutex<Ring>,
    end: watch::Sender<u64>,
    dropped: Option<prometheus::IntCounter>,
    /// Where recorded events are published live (`event.recorded`).
    live: crate::live::Live,
}

struct Ring {
    events: VecDeque<Arc<Event>>,
    /// Sequence number of `events[0]`.
    first: u64,
    capacity: usize,
    /// What `events` hold, by [`Event::approx_bytes`].
    bytes: usize,
    max_bytes: usize,
    cursors: HashMap<String, u64>,
}

impl Ring {
    fn end(&self) -> u64 {
        self.first + self.events.len() as u64
    }
}

impl EventLog {
    /// A log that keeps at most `capacity` events.
    pub fn new(capacity: usize) -> Self {
        let (end, _) = watch::channel(0);
        EventLog {
            inner: Mutex::new(Ring {
                events: VecDeque::new(),
                first: 0,
                capacity: capacity.max(1),
                bytes: 0,
                max_bytes: usize::MAX,
                cursors: HashMap::new(),
            }),
            end,
            dropped: None,
            // A bus of its own that no one listens on, until `with_live`.
            live: crate::live::Live::new(1),
        }
    }

    /// Also evicts the oldest events while all of them hold more than
    /// `max_bytes` (approximately; the newest event always stays).
    pub fn with_max_bytes(self, max_bytes: usize) -> Self {
        self.inner.lock().max_bytes = max_bytes;
        self
    }

    /// Counts events evicted before every sink read them in `counter`.
    pub fn with_drop_counter(mut self, counter: prometheus::IntCounter) -> Self {
        self.dropped = Some(counter);
        self
    }

    /// Publishes every recorded event on `live`, the bus the rest of the host
    /// reaches through [`live`](Self::live).
    pub fn with_live(mut self, live: crate::live::Live) -> Self {
        self.live = live;
        self
    }

    /// The live event bus.
    pub fn live(&self) -> &crate::live::Live {
        &self.live
    }

    /// Appends one event; returns its sequence number.
    pub fn append(&self, event: Event) -> u64 {
        self.append_all([event]).saturating_sub(1)
    }

    /// Appends events in order under one lock, waking readers once; returns
    /// the sequence number the next event will get.
    pub fn append_all(&self, events: impl IntoIterator<Item = Event>) -> u64 {
        let mut ring = self.inner.lock();
        let mut dropped = 0;
        for event in events {
            ring.bytes += event.approx_bytes();
            let event = Arc::new(event);
            self.live.recorded(&event);
            ring.events.push_back(event);
            while ring.events.len() > ring.capacity
                || (ring.bytes > ring.max_bytes && ring.events.len() > 1)
            {
                let evicted = ring.first;
                if let Some(old) = ring.events.pop_front() {
                    ring.bytes = ring.bytes.saturating_sub(old.approx_bytes());
                }
                ring.first += 1;
                if ring.cursors.values().any(|&c| c <= evicted) {
                    dropped += 1;
                }
            }
        }
        let end = ring.end();
        drop(ring);
        if dropped > 0
            && let Some(counter) = &self.dropped
        {
            counter.inc_by(dropped);
        }
        self.end.send_replace(end);
        end
    }

    /// The newest events that `filter` accepts among the last `window` kept,
    /// newest first: `limit` of them after skipping `offset`, and how many
    /// matched in all.
    pub fn recent(
        &self,
        window: usize,
        offset: usize,
        limit: usize,
        filter: impl Fn(&Event) -> bool,
    ) -> (Vec<Arc<Event>>, usize) {
        let ring = self.inner.lock();
        let mut matched = 0;
        let mut page = Vec::with_capacity(limit.min(1024));
        for event in ring.events.iter().rev().take(window) {
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

    /// The sequence number the next event will get.
    pub fn end(&self) -> u64 {
        self.inner.lock().end()
    }

    /// Up to `max` events from sequence number `from` on, and how many events
    /// between `from` and the oldest one kept were already evicted.
    pub fn read(&self, from: u64, max: usize) -> (Vec<(u64, Arc<Event>)>, u64) {
        let ring = self.inner.lock();
        let skipped = ring.first.saturating_sub(from);
        let start = from.max(ring.first);
        let offset = usize::try_from(start - ring.first).unwrap_or(usize::MAX);
        let events = ring
            .events
            .iter()
            .skip(offset)
            .take(max)
            .enumerate()
            .map(|(i, e)| (start + i as u64, e.clone()))
            .collect();
        (events, skipped)
    }

    /// Resolves when the log's end changes; gives the new end.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.end.subscribe()
    }

    /// A sink's cursor: the next sequence number it has not acknowledged. A
    /// sink seen for the first time starts at the end (it gets new events only).
    pub fn cursor(&self, sink: &str) -> u64 {
        self.cursor_or(sink, u64::MAX)
    }

    /// Like [`cursor`](Self::cursor), but a sink seen for the first time starts
    /// at `first` (capped at the end): `0` gives it everything still kept.
    pub fn cursor_or(&self, sink: &str, first: u64) -> u64 {
        let mut ring = self.inner.lock();
        let start = first.min(ring.end());
        *ring.cursors.entry(sink.to_string()).or_insert(start)
    }

    /// Moves a sink's cursor forward to `next`.
    pub fn ack(&self, sink: &str, next: u64) {
        let mut ring = self.inner.lock();
        let cursor = ring.cursors.entry(sink.to_string()).or_insert(next);
        *cursor = (*cursor).max(next);
    }

    /// Forgets a sink that was removed.
    pub fn forget(&self, sink: &str) {
        self.inner.lock().cursors.remove(sink);
    }

    /// Events a sink has yet to acknowledge that the log still holds: from its
    /// cursor, or from the oldest event kept when the ones after its cursor
    /// were already evicted (those are lost, counted in the drop counter, and
    /// no longer waiting). Never more than the log holds.
    pub fn backlog(&self, sink: &str) -> u64 {
        let ring = self.inner.lock();
        ring.cursors
            .get(sink)
            .map_or(0, |&c| ring.end().saturating_sub(c.max(ring.first)))
    }

    /// Events the log holds now.
    pub fn len(&self) -> usize {
        self.inner.lock().events.len()
    }

    /// Whether the log holds no event.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(n: u64) -> Event {
        Event::new(format!("test.{n}"), "test")
    }

    #[test]
    fn cursors_start_at_the_end_and_advance_on_ack() {
        let log = EventLog::new(10);
        log.append(event(0));
        assert_eq!(log.cursor("s"), 1);
        log.append(event(1));
        log.append(event(2));
        let (batch, skipped) = log.read(log.cursor("s"), 10);
        assert_eq!(skipped, 0);
        assert_eq!(
            batch.iter().map(|(s, _)| *s).collect::<Vec<_>>(),
            vec![1, 2]
        );
        assert_eq!(log.backlog("s"), 2);
        log.ack("s", 3);
        assert_eq!(log.backlog("s"), 0);
        log.ack("s", 2);
        assert_eq!(log.cursor("s"), 3, "a cursor never moves back");
    }

    #[test]
    fn eviction_is_counted_only_when_a_sink_had_not_read() {
        let counter = prometheus::IntCounter::new("t", "t").unwrap();
        let log = EventLog::new(2).with_drop_counter(counter.clone());
        for n in 0..5 {
            log.append(event(n));
        }
        assert_eq!(counter.get(), 0, "no sink, nothing lost");
        assert_eq!(log.cursor("s"), 5);
        for n in 5..9 {
            log.append(event(n));
        }
        assert_eq!(counter.get(), 2);
        let (batch, skipped) = log.read(5, 10);
        assert_eq!(skipped, 2);
        assert_eq!(batch.len(), 2);
        assert_eq!(batch[0].0, 7);
    }

    #[test]
    fn backlog_never_counts_evicted_events() {
        let log = EventLog::new(100);
        assert_eq!(log.cursor_or("s", 0), 0);
        assert!(log.is_empty());
        log.append_all((0..1000).map(event));
        assert_eq!(log.len(), 100);
        assert_eq!(log.backlog("s"), 100, "only what the log still holds");
        log.ack("s", 950);
        assert_eq!(log.backlog("s"), 50);
        log.ack("s", 1000);
        assert_eq!(log.backlog("s"), 0);
        assert_eq!(log.backlog("unknown"), 0);
    }

    #[test]
    fn the_log_is_bounded_by_bytes_too() {
        let one = event(0).approx_bytes();
        let log = EventLog::new(100).with_max_bytes(one * 5 + one / 2);
        log.append_all((0..20).map(event));
        let (kept, _) = log.read(0, 100);
        assert_eq!(kept.len(), 5);
        assert_eq!(kept[0].0, 15);
        let huge = EventLog::new(100).with_max_bytes(1);
        huge.append(event(1));
        assert_eq!(huge.read(0, 10).0.len(), 1, "the newest event always stays");
    }

    #[test]
    fn recent_pages_newest_first() {
        let log = EventLog::new(100);
        assert_eq!(log.append_all((0..10).map(event)), 10);
        let even = |e: &Event| {
            e.event_type
                .trim_start_matches("test.")
                .parse::<u64>()
                .unwrap()
                % 2
                == 0
        };
        let (page, total) = log.recent(100, 1, 2, even);
        assert_eq!(total, 5);
        let types: Vec<_> = page.iter().map(|e| e.event_type.as_str()).collect();
        assert_eq!(types, ["test.6", "test.4"]);
        let (page, total) = log.recent(3, 0, 10, |_| true);
        assert_eq!((page.len(), total), (3, 3), "only the window is searched");
        assert_eq!(log.append(event(10)), 10);
    }
}
