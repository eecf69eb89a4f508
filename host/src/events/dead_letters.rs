//! The dead-letter store: the batches a sink failed to deliver permanently,
//! kept per sink (with their events and ids, the error, the time) until an
//! operator replays them to that sink or the store's bounds drop them.
//!
//! Persistent under the data directory: one JSON file per batch,
//! `DATA_DIR/dead_letters/SINK/ID.json`, written to a temporary file, synced
//! and renamed into place before [`DeadLetters::add`] returns, so the sink
//! loop acks its cursor only once the batch is safe. Without a data directory
//! the store keeps its batches in memory only. Each sink holds at most
//! `sinks.dead_letter_max_batches` batches and `sinks.dead_letter_max_bytes`
//! bytes; past either the oldest batches are dropped (and counted by the
//! caller). A file that cannot be read at start is logged and skipped, never
//! fatal.
//!
//! It also keeps what `GET /api/sinks` shows of each sink's delivery: when
//! its next retry is due.

use crate::model::Event;
use anyhow::Context;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// One dead-lettered batch.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct DeadLetter {
    /// Its number within its sink, increasing.
    pub id: u64,
    /// The sink that failed to deliver it.
    pub sink: String,
    /// Why it was dead-lettered: `permanent` (the sink said the batch can
    /// never be delivered).
    pub reason: String,
    /// The sink's error.
    pub error: String,
    /// When it was dead-lettered (Unix milliseconds).
    pub time_ms: u64,
    /// The events, with their original ids, in order.
    pub events: Vec<Event>,
}

/// What [`DeadLetters::add`] did.
#[derive(Debug, Default)]
pub struct Added {
    /// The new batch's id.
    pub id: u64,
    /// Batches dropped to stay within the bounds (oldest first).
    pub dropped_batches: u64,
    /// Events in them.
    pub dropped_events: u64,
}

/// One sink's numbers.
#[derive(Debug, Default, Clone, Copy)]
pub struct Summary {
    /// Batches held.
    pub batches: usize,
    /// Events in them.
    pub events: usize,
    /// Batches queued for replay.
    pub replaying: usize,
    /// When the sink's next retry is due (Unix milliseconds), while it waits.
    pub retry_at_ms: Option<u64>,
}

/// The dead-letter store of every sink.
pub struct DeadLetters {
    dir: Option<PathBuf>,
    max_batches: usize,
    max_bytes: u64,
    sinks: Mutex<HashMap<String, SinkLetters>>,
}

#[derive(Default)]
struct SinkLetters {
    /// By id, oldest first; with each its size.
    letters: BTreeMap<u64, (Arc<DeadLetter>, u64)>,
    bytes: u64,
    next_id: u64,
    /// Ids queued for replay, in order.
    replay: VecDeque<u64>,
    retry_at_ms: Option<u64>,
}

impl DeadLetters {
    /// A store kept in memory only.
    fn in_memory(max_batches: usize, max_bytes: u64) -> DeadLetters {
        DeadLetters {
            dir: None,
            max_batches: max_batches.max(1),
            max_bytes: max_bytes.max(1),
            sinks: Mutex::new(HashMap::new()),
        }
    }

    /// Opens the store under `data_dir` (`dead_letters/`), reading what a
    /// previous run left; `None` keeps batches in memory only. Unreadable
    /// files are logged and skipped.
    pub fn open(
        data_dir: Option<&Path>,
        max_batches: usize,
        max_bytes: u64,
    ) -> anyhow::Result<DeadLetters> {
        let mut store = DeadLetters::in_memory(max_batches, max_bytes);
        let Some(data_dir) = data_dir else {
            return Ok(store);
        };
        let dir = data_dir.join("dead_letters");
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let mut sinks = HashMap::new();
        let entries =
            std::fs::read_dir(&dir).with_context(|| format!("cannot read {}", dir.display()))?;
        for entry in entries.flatten() {
            let Some(sink) = entry.file_name().to_str().map(str::to_string) else {
                continue;
            };
            if entry.path().is_dir() {
                let letters = load_sink(&entry.path());
                if !letters.letters.is_empty() {
                    tracing::info!(
                        sink,
                        batches = letters.letters.len(),
                        "dead letters kept from a previous run"
                    );
                }
                sinks.insert(sink, letters);
            }
        }
        store.dir = Some(dir);
        store.sinks = Mutex::new(sinks);
        Ok(store)
    }

    /// Stores a batch `sink` failed to deliver, durably when the store has a
    /// directory, dropping the oldest batches past the bounds. Blocking
    /// (file writes and fsync), but the store stays unlocked while it writes.
    pub fn add(
        &self,
        sink: &str,
        reason: &str,
        error: &str,
        events: &[Arc<Event>],
    ) -> anyhow::Result<Added> {
        let id = {
            let mut sinks = self.sinks.lock();
            let letters = sinks.entry(sink.to_string()).or_default();
            letters.next_id += 1;
            letters.next_id - 1
        };
        let letter = DeadLetter {
            id,
            sink: sink.to_string(),
            reason: reason.to_string(),
            error: error.to_string(),
            time_ms: crate::time::now_ms(),
            events: events.iter().map(|e| (**e).clone()).collect(),
        };
        let bytes = serde_json::to_vec(&letter).context("cannot encode a dead letter")?;
        if let Some(dir) = &self.dir {
            write_atomic(&dir.join(sink), id, &bytes)?;
        }
        let size = bytes.len() as u64;
        let mut added = Added {
            id,
            ..Added::default()
        };
        let mut dropped = Vec::new();
        {
            let mut sinks = self.sinks.lock();
            let letters = sinks.entry(sink.to_string()).or_default();
            letters.bytes += size;
            letters.letters.insert(id, (Arc::new(letter), size));
            while letters.letters.len() > self.max_batches
                || (letters.bytes > self.max_bytes && letters.letters.len() > 1)
            {
                let Some((old, (letter, size))) = letters.letters.pop_first() else {
                    break;
                };
                letters.bytes = letters.bytes.saturating_sub(size);
                letters.replay.retain(|r| *r != old);
                added.dropped_batches += 1;
                added.dropped_events += letter.events.len() as u64;
                dropped.push(old);
            }
        }
        for old in dropped {
            self.remove_file(sink, old);
        }
        Ok(added)
    }

    /// A page of `sink`'s dead letters, newest first, and how many it holds.
    pub fn page(&self, sink: &str, offset: usize, limit: usize) -> (Vec<Arc<DeadLetter>>, usize) {
        let sinks = self.sinks.lock();
        let Some(letters) = sinks.get(sink) else {
            return (Vec::new(), 0);
        };
        let page = letters
            .letters
            .values()
            .rev()
            .skip(offset)
            .take(limit)
            .map(|(l, _)| l.clone())
            .collect();
        (page, letters.letters.len())
    }

    /// Whether the store has ever seen `sink` (it may hold nothing now).
    pub fn knows(&self, sink: &str) -> bool {
        self.sinks.lock().contains_key(sink)
    }

    /// `sink`'s numbers.
    pub fn summary(&self, sink: &str) -> Summary {
        let sinks = self.sinks.lock();
        sinks.get(sink).map_or_else(Summary::default, |l| Summary {
            batches: l.letters.len(),
            events: l.letters.values().map(|(d, _)| d.events.len()).sum(),
            replaying: l.replay.len(),
            retry_at_ms: l.retry_at_ms,
        })
    }

    /// Queues `ids` (all of `sink`'s batches when `None`) for replay, oldest
    /// first; returns the ids queued, or the first id the sink does not hold.
    pub fn queue_replay(&self, sink: &str, ids: Option<&[u64]>) -> Result<Vec<u64>, u64> {
        let mut sinks = self.sinks.lock();
        let letters = sinks.entry(sink.to_string()).or_default();
        let mut wanted: Vec<u64> = match ids {
            Some(ids) => {
                if let Some(missing) = ids.iter().find(|id| !letters.letters.contains_key(id)) {
                    return Err(*missing);
                }
                ids.to_vec()
            }
            None => letters.letters.keys().copied().collect(),
        };
        wanted.sort_unstable();
        wanted.dedup();
        for id in &wanted {
            if !letters.replay.contains(id) {
                letters.replay.push_back(*id);
            }
        }
        Ok(wanted)
    }

    /// The next batch queued for replay to `sink`, if any.
    pub fn next_replay(&self, sink: &str) -> Option<Arc<DeadLetter>> {
        let mut sinks = self.sinks.lock();
        let letters = sinks.get_mut(sink)?;
        while let Some(id) = letters.replay.front().copied() {
            match letters.letters.get(&id) {
                Some((letter, _)) => return Some(letter.clone()),
                None => {
                    letters.replay.pop_front();
                }
            }
        }
        None
    }

    /// A replayed batch was delivered: removes it.
    pub fn delivered(&self, sink: &str, id: u64) {
        let mut sinks = self.sinks.lock();
        let Some(letters) = sinks.get_mut(sink) else {
            return;
        };
        letters.replay.retain(|r| *r != id);
        if let Some((_, size)) = letters.letters.remove(&id) {
            letters.bytes = letters.bytes.saturating_sub(size);
            drop(sinks);
            self.remove_file(sink, id);
        }
    }

    /// A replayed batch failed permanently again: it stays a dead letter and
    /// leaves the replay queue.
    pub fn replay_failed(&self, sink: &str, id: u64) {
        if let Some(letters) = self.sinks.lock().get_mut(sink) {
            letters.replay.retain(|r| *r != id);
        }
    }

    /// Records when `sink`'s next retry is due (`None`: not waiting).
    pub fn set_retry_at(&self, sink: &str, at_ms: Option<u64>) {
        let mut sinks = self.sinks.lock();
        match sinks.get_mut(sink) {
            Some(letters) => letters.retry_at_ms = at_ms,
            None if at_ms.is_some() => {
                sinks.entry(sink.to_string()).or_default().retry_at_ms = at_ms;
            }
            None => {}
        }
    }

    fn remove_file(&self, sink: &str, id: u64) {
        let Some(dir) = &self.dir else { return };
        let path = dir.join(sink).join(file_name(id));
        if let Err(e) = std::fs::remove_file(&path)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(path = %path.display(), error = %e, "cannot remove a dead letter");
        }
    }
}

fn file_name(id: u64) -> String {
    format!("{id:020}.json")
}

/// Writes `bytes` as batch `id` under `dir`: a temporary file, synced, then
/// renamed into place and the directory synced.
fn write_atomic(dir: &Path, id: u64, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let path = dir.join(file_name(id));
    let tmp = path.with_extension("json.tmp");
    let write = || -> std::io::Result<()> {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, &path)?;
        std::fs::File::open(dir)?.sync_all()
    };
    write().with_context(|| format!("cannot write the dead letter {}", path.display()))
}

/// Reads one sink's directory; a file that does not parse is logged and skipped.
fn load_sink(dir: &Path) -> SinkLetters {
    let mut letters = SinkLetters::default();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return letters;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "tmp") {
            // A write cut short before its rename: never acknowledged.
            let _ = std::fs::remove_file(&path);
            continue;
        }
        let parsed = std::fs::read(&path)
            .map_err(anyhow::Error::from)
            .and_then(|b| Ok((serde_json::from_slice::<DeadLetter>(&b)?, b.len() as u64)));
        match parsed {
            Ok((letter, size)) => {
                letters.next_id = letters.next_id.max(letter.id + 1);
                letters.bytes += size;
                letters.letters.insert(letter.id, (Arc::new(letter), size));
            }
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot read a dead letter; skipped");
            }
        }
    }
    letters
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(n: usize) -> Vec<Arc<Event>> {
        (0..n)
            .map(|i| Arc::new(Event::new(format!("test.{i}"), "test")))
            .collect()
    }

    #[test]
    fn dead_letters_persist_page_newest_first_and_replay() {
        let dir = std::env::temp_dir().join(format!("wasmon-dl-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        let store = DeadLetters::open(Some(&dir), 10, 1 << 20).unwrap();
        let first = batch(2);
        store.add("out", "permanent", "400", &first).unwrap();
        store.add("out", "permanent", "400", &batch(1)).unwrap();
        let again = DeadLetters::open(Some(&dir), 10, 1 << 20).unwrap();
        let (page, total) = again.page("out", 0, 10);
        assert_eq!(total, 2);
        assert_eq!(page[0].id, 1, "newest first");
        assert_eq!(page[1].events[0].id, first[0].id, "original ids kept");
        assert_eq!(again.queue_replay("out", Some(&[7])), Err(7));
        assert_eq!(again.queue_replay("out", None), Ok(vec![0, 1]));
        assert_eq!(again.next_replay("out").map(|l| l.id), Some(0));
        again.delivered("out", 0);
        assert_eq!(again.next_replay("out").map(|l| l.id), Some(1));
        again.replay_failed("out", 1);
        assert!(again.next_replay("out").is_none());
        let reopened = DeadLetters::open(Some(&dir), 10, 1 << 20).unwrap();
        assert_eq!(reopened.summary("out").batches, 1);
        let added = reopened.add("out", "permanent", "400", &batch(1)).unwrap();
        assert_eq!(added.id, 2, "ids keep increasing across restarts");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_oldest_batches_are_dropped_past_the_bounds() {
        let store = DeadLetters::in_memory(2, 1 << 20);
        store.add("out", "permanent", "e", &batch(1)).unwrap();
        store.add("out", "permanent", "e", &batch(1)).unwrap();
        let added = store.add("out", "permanent", "e", &batch(3)).unwrap();
        assert_eq!((added.dropped_batches, added.dropped_events), (1, 1));
        let (page, total) = store.page("out", 0, 10);
        assert_eq!(total, 2);
        assert_eq!(page.last().map(|l| l.id), Some(1));
        let tiny = DeadLetters::in_memory(100, 10);
        tiny.add("out", "permanent", "e", &batch(1)).unwrap();
        let added = tiny.add("out", "permanent", "e", &batch(1)).unwrap();
        assert_eq!(added.dropped_batches, 1, "bytes bound; the newest stays");
        assert_eq!(tiny.summary("out").batches, 1);
    }
}
