//! Opening a durable log: every segment is read back; a torn tail is cut at
//! the last whole record, damaged records are skipped (counted in
//! `wasmon_event_log_corrupt_records_total`, logged with segment and offset)
//! and the segment is rewritten without them. The host never refuses to
//! start over a damaged log: what cannot be read is left out. The recent
//! events refill the memory tail, idempotency keys within their window are
//! rebuilt from the records, the cursors are read back, and numbering goes
//! on after the highest sequence number seen (or cursor, should events that
//! were never synced have been lost), so an id or number is never reused.

use super::cursors;
use super::keys::Keys;
use super::log::{Disk, EventLog, LogMetrics};
use super::record::{self, segment_first};
use super::segments::Segment;
use super::writer;
use crate::config::{Durability, StorageConfig, WhenFull};
use crate::model::Event;
use anyhow::{Context, Result};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// Smallest and largest segment files.
const MIN_SEGMENT: u64 = 16 * 1024;
const MAX_SEGMENT: u64 = 64 * 1024 * 1024;

impl EventLog {
    /// Opens (or creates) the durable log in `storage.data_dir/events`,
    /// remembering idempotency keys for `key_window`, at most `max_keys`.
    pub fn open(
        storage: &StorageConfig,
        key_window: Duration,
        max_keys: usize,
        metrics: LogMetrics,
        live: crate::live::Live,
    ) -> Result<EventLog> {
        let dir = storage.data_dir.join("events");
        std::fs::create_dir_all(&dir).with_context(|| {
            format!(
                "failed to create the event log directory {} (storage.data_dir)",
                dir.display()
            )
        })?;
        let disk = Disk {
            dir: dir.clone(),
            fsync: storage.durability == Durability::Fsync,
            max_bytes: storage.max_bytes.0,
            max_age_ms: u64::try_from(storage.max_age.as_millis()).unwrap_or(u64::MAX),
            drop_oldest: storage.when_full == WhenFull::DropOldest,
            segment_bytes: (storage.max_bytes.0 / 8).clamp(MIN_SEGMENT, MAX_SEGMENT),
        };
        let window_ms = u64::try_from(key_window.as_millis()).unwrap_or(u64::MAX);
        let log = EventLog::build(
            storage.memory_events,
            Some(disk),
            metrics,
            Keys::new(window_ms, max_keys),
        )
        .with_live(live);
        let shared = &log.shared;
        let mut state = shared.state.lock();
        let mut keys = shared.keys.lock();
        let now_ms = crate::time::now_ms();
        let mut corrupt_total = 0;
        let mut end = 0;
        for path in segment_files(&dir)? {
            let Some(first) = segment_first(&path) else {
                continue;
            };
            let (segment, corrupt) = recover_segment(&path, first, |seq, event, key| {
                if let Some(key) = key
                    && now_ms.saturating_sub(event.time_ms) < window_ms
                {
                    keys.insert(key, event.id.clone(), event.time_ms);
                }
                state.push_tail(seq, Arc::new(event), &shared.metrics);
            });
            corrupt_total += corrupt;
            if let Some(counter) = &shared.metrics.corrupt {
                counter.inc_by(corrupt);
            }
            if let Some(last) = segment.last {
                end = end.max(last + 1);
            }
            end = end.max(first);
            state.segments.push(segment);
        }
        // Empty segments before the last one hold nothing: remove them.
        let last = state.segments.len().saturating_sub(1);
        let mut i = 0;
        state.segments.retain(|segment| {
            let keep = segment.events > 0 || i == last;
            if !keep {
                let _ = std::fs::remove_file(&segment.path);
            }
            i += 1;
            keep
        });
        state.cursors = cursors::load(&dir);
        let highest_cursor = state.cursors.values().copied().max().unwrap_or(0);
        let end = end.max(highest_cursor);
        let disk_bytes = state.disk_bytes();
        tracing::info!(
            dir = %dir.display(),
            segments = state.segments.len(),
            events = state.segments.iter().map(|s| s.events).sum::<u64>(),
            bytes = disk_bytes,
            corrupt = corrupt_total,
            next = end,
            keys = keys.len(),
            "event log opened"
        );
        shared.metrics.set_bytes(disk_bytes);
        state.end = end;
        shared.next_seq.store(end, Ordering::Relaxed);
        shared.end.send_replace(end);
        drop((state, keys));
        let shared = log.shared.clone();
        let handle = std::thread::Builder::new()
            .name("wasmon-event-log".into())
            .spawn(move || writer::run(shared, end))
            .context("failed to start the event log writer")?;
        log.set_writer(handle);
        Ok(log)
    }
}

/// The segment files of `dir`, in order.
fn segment_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files: Vec<(u64, PathBuf)> = std::fs::read_dir(dir)
        .with_context(|| format!("failed to list {}", dir.display()))?
        .filter_map(|entry| {
            let path = entry.ok()?.path();
            Some((segment_first(&path)?, path))
        })
        .collect();
    files.sort();
    Ok(files.into_iter().map(|(_, p)| p).collect())
}

/// Reads one segment back, repairing it; returns it and how many damaged
/// stretches were skipped. `record` gets each record kept: its sequence
/// number, event and idempotency key.
fn recover_segment(
    path: &Path,
    first: u64,
    mut record: impl FnMut(u64, Event, Option<String>),
) -> (Segment, u64) {
    let mut segment = Segment::new(path.to_path_buf(), first);
    let buf = match std::fs::read(path) {
        Ok(buf) => buf,
        Err(error) => {
            tracing::error!(segment = %path.display(), %error, "cannot read an event log segment; left out");
            return (segment, 0);
        }
    };
    let scan = record::scan(&buf);
    for damage in &scan.corrupt {
        tracing::warn!(
            segment = %path.display(),
            offset = damage.offset,
            skipped_bytes = damage.skipped,
            "damaged event log record skipped"
        );
    }
    let cut = buf.len() as u64 - scan.valid_len;
    // What was cut is a torn tail unless it is a damaged last record.
    let damaged_tail = scan
        .corrupt
        .last()
        .is_some_and(|c| c.offset + c.skipped == buf.len() as u64);
    if cut > 0 && !damaged_tail {
        tracing::warn!(
            segment = %path.display(),
            offset = scan.valid_len,
            cut_bytes = cut,
            "torn tail of the event log truncated to the last whole record"
        );
    }
    if !scan.corrupt.is_empty() || cut > 0 {
        let mut clean = Vec::with_capacity(buf.len());
        for rec in &scan.records {
            let start = usize::try_from(rec.offset).unwrap_or(usize::MAX);
            let end = start + usize::try_from(rec.bytes).unwrap_or(0);
            if let Some(bytes) = buf.get(start..end) {
                clean.extend_from_slice(bytes);
            }
        }
        if let Err(error) = cursors::write_atomic(path, &path.with_extension("repair"), &clean) {
            tracing::error!(segment = %path.display(), error = %format!("{error:#}"), "cannot repair an event log segment; left out");
            return (segment, scan.corrupt.len() as u64);
        }
    }
    let mut offset = 0;
    for rec in scan.records {
        segment.note(rec.seq, offset, rec.bytes, rec.stored.event.time_ms);
        offset += rec.bytes;
        record(rec.seq, rec.stored.event, rec.stored.key);
    }
    (segment, scan.corrupt.len() as u64)
}
