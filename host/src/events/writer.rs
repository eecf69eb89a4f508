//! The writer: one thread owns the segment being written. Appends queue
//! [`Job`]s (already numbered and encoded by the caller); the writer takes
//! everything queued, writes it in sequence order, makes room or refuses per
//! `storage.when_full`, does ONE `fdatasync` for the lot (with
//! `durability = "fsync"`), publishes the events (memory tail, end, live
//! bus) and only then wakes every waiter: group commit. Between batches it
//! runs retention by age and persists moved cursors (at most every 100 ms).
//!
//! A failed write or sync truncates the segment back to what was whole
//! before it, so nothing half written survives, and fails only the jobs
//! concerned; the log stays usable (the next write starts a new segment if
//! even the truncation failed).

use super::cursors;
use super::log::{AppendError, Shared};
use super::record::{self, segment_path};
use super::retention;
use super::segments::Segment;
use crate::model::Event;
use std::collections::BTreeMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// How long an idle writer sleeps before its housekeeping.
const IDLE: Duration = Duration::from_millis(100);
/// How often retention by age runs.
const RETENTION_EVERY: Duration = Duration::from_secs(1);
/// What a refused append is told to wait.
pub const RETRY_AFTER: Duration = Duration::from_secs(1);

/// Appends waiting for the writer.
#[derive(Default)]
pub struct Queue {
    pub jobs: Vec<Job>,
    pub closing: bool,
}

/// One append: its events, numbered from `first`, encoded.
pub struct Job {
    first: u64,
    events: Vec<Arc<Event>>,
    /// Each record's length in `buf`.
    lens: Vec<u32>,
    buf: Vec<u8>,
    waiter: Option<oneshot::Sender<Result<(), AppendError>>>,
}

impl Job {
    /// Encodes `events`, numbered from `first`.
    pub fn new(
        first: u64,
        events: Vec<(Event, Option<String>)>,
        waiter: Option<oneshot::Sender<Result<(), AppendError>>>,
    ) -> Job {
        let mut buf = Vec::with_capacity(events.len() * 512);
        let mut lens = Vec::with_capacity(events.len());
        let events = events
            .into_iter()
            .enumerate()
            .map(|(i, (event, key))| {
                let start = buf.len();
                record::encode(&mut buf, first + i as u64, &event, key.as_deref());
                lens.push(u32::try_from(buf.len() - start).unwrap_or(u32::MAX));
                Arc::new(event)
            })
            .collect();
        Job {
            first,
            events,
            lens,
            buf,
            waiter,
        }
    }

    fn next(&self) -> u64 {
        self.first + self.events.len() as u64
    }

    pub fn finish(self, result: Result<(), AppendError>, shared: &Shared) {
        if let Err(error) = &result
            && self.waiter.is_none()
        {
            // Nobody to tell: the events are lost for every sink.
            tracing::warn!(events = self.events.len(), %error, "events not recorded in the event log");
            let state = shared.state.lock();
            for sink in &state.registered {
                shared
                    .metrics
                    .dropped(sink, "full", self.events.len() as u64);
            }
        }
        if let Some(waiter) = self.waiter {
            let _ = waiter.send(result);
        }
    }
}

/// The segment being written.
struct Active {
    file: File,
    len: u64,
}

/// Runs the writer until the log closes.
pub fn run(shared: Arc<Shared>, mut expected: u64) {
    let Some(disk) = shared.disk.clone() else {
        return;
    };
    let mut active: Option<Active> = reopen_last(&shared);
    let mut pending: BTreeMap<u64, Job> = BTreeMap::new();
    let mut last_flush = Instant::now();
    let mut last_retention = Instant::now();
    loop {
        let closing = {
            let mut queue = shared.queue.lock();
            if queue.jobs.is_empty() && !queue.closing {
                shared.wake.wait_for(&mut queue, IDLE);
            }
            for job in queue.jobs.drain(..) {
                pending.insert(job.first, job);
            }
            queue.closing
        };
        let mut run = Vec::new();
        while let Some(job) = pending.remove(&expected) {
            expected = job.next();
            run.push(job);
        }
        if !run.is_empty() {
            commit(&shared, &disk, &mut active, run);
        }
        if last_retention.elapsed() >= RETENTION_EVERY {
            last_retention = Instant::now();
            if retention::by_age(&shared, &disk, crate::time::now_ms()) {
                // The segment being written was old enough to go: roll.
                active = None;
            }
        }
        if closing || last_flush.elapsed() >= cursors::FLUSH_EVERY {
            last_flush = Instant::now();
            flush_cursors(&shared, &disk.dir);
        }
        if closing && shared.queue.lock().jobs.is_empty() {
            for (_, job) in std::mem::take(&mut pending) {
                job.finish(Err(AppendError::Closed), &shared);
            }
            if let Some(active) = &active
                && let Err(error) = active.file.sync_data()
            {
                tracing::warn!(%error, "failed to sync the event log at shutdown");
            }
            flush_cursors(&shared, &disk.dir);
            return;
        }
    }
}

/// The last segment, opened for appending when it has room.
fn reopen_last(shared: &Shared) -> Option<Active> {
    let disk = shared.disk.as_ref()?;
    let state = shared.state.lock();
    let last = state.segments.last()?;
    if last.bytes >= disk.segment_bytes {
        return None;
    }
    let file = OpenOptions::new().append(true).open(&last.path).ok()?;
    Some(Active {
        file,
        len: last.bytes,
    })
}

fn flush_cursors(shared: &Shared, dir: &std::path::Path) {
    let snapshot = {
        let mut state = shared.state.lock();
        if !state.cursors_dirty {
            return;
        }
        state.cursors_dirty = false;
        state.cursors.clone()
    };
    if let Err(error) = cursors::save(dir, &snapshot) {
        shared.state.lock().cursors_dirty = true;
        tracing::warn!(error = %format!("{error:#}"), "failed to persist the sink cursors; retrying");
    }
}

/// Writes a run of jobs in order, syncs once, publishes, wakes the waiters.
fn commit(shared: &Shared, disk: &super::log::Disk, active: &mut Option<Active>, run: Vec<Job>) {
    if active.as_ref().is_some_and(|a| a.len >= disk.segment_bytes) {
        roll(active, disk);
    }
    let mut written: Vec<Job> = Vec::with_capacity(run.len());
    let mut start_len = None;
    // Bytes written in this run: on disk, not yet in their segment's size.
    let mut in_flight = 0;
    // A segment that could not be cut back after a failed write: the rest of
    // the run is refused and the next write starts a new segment.
    let mut broken = false;
    for job in run {
        if broken {
            job.finish(
                Err(AppendError::Io("the event log segment is unusable".into())),
                shared,
            );
            continue;
        }
        let size = job.buf.len() as u64;
        if size > disk.max_bytes {
            job.finish(
                Err(AppendError::TooLarge {
                    bytes: size,
                    max_bytes: disk.max_bytes,
                }),
                shared,
            );
            continue;
        }
        if !retention::make_room(shared, disk, in_flight + size) {
            job.finish(
                Err(AppendError::Full {
                    retry_after: RETRY_AFTER,
                }),
                shared,
            );
            continue;
        }
        if active.is_none() {
            match create(shared, disk, job.first) {
                Ok(a) => *active = Some(a),
                Err(error) => {
                    job.finish(Err(AppendError::Io(error)), shared);
                    continue;
                }
            }
        }
        let Some(a) = active.as_mut() else {
            continue;
        };
        start_len.get_or_insert(a.len);
        let before = a.len;
        match a.file.write_all(&job.buf) {
            Ok(()) => {
                a.len += size;
                in_flight += size;
                written.push(job);
            }
            Err(error) => {
                tracing::warn!(%error, "event log write failed; the append is refused");
                broken = !truncate(a, before);
                job.finish(Err(AppendError::Io(error.to_string())), shared);
            }
        }
    }
    if written.is_empty() {
        if broken {
            roll(active, disk);
        }
        return;
    }
    let synced = match active.as_mut() {
        Some(a) if disk.fsync => a.file.sync_data().map_err(|e| (e, start_len)),
        _ => Ok(()),
    };
    if let Err((error, start)) = synced {
        tracing::warn!(%error, "event log sync failed; the appends are refused");
        if let (Some(a), Some(start)) = (active.as_mut(), start)
            && !truncate(a, start)
        {
            broken = true;
        }
        if broken {
            roll(active, disk);
        }
        for job in written {
            job.finish(Err(AppendError::Io(error.to_string())), shared);
        }
        return;
    }
    let published: Vec<(u64, Arc<Event>)> = written
        .iter()
        .flat_map(|job| (job.first..).zip(job.events.iter().cloned()))
        .collect();
    let mut state = shared.state.lock();
    let mut offset = start_len.unwrap_or(0);
    if let Some(segment) = state.segments.last_mut() {
        for job in &written {
            for ((seq, event), len) in (job.first..).zip(&job.events).zip(&job.lens) {
                segment.note(seq, offset, u64::from(*len), event.time_ms);
                offset += u64::from(*len);
            }
        }
    }
    shared.metrics.set_bytes(state.disk_bytes());
    shared.publish(state, &published);
    for job in written {
        job.finish(Ok(()), shared);
    }
    if broken {
        roll(active, disk);
    }
}

/// Cuts the active segment back to `len`; whether that worked.
fn truncate(active: &mut Active, len: u64) -> bool {
    match active.file.set_len(len) {
        Ok(()) => {
            active.len = len;
            true
        }
        Err(error) => {
            tracing::warn!(%error, "cannot truncate the event log segment; starting a new one");
            false
        }
    }
}

/// Closes the segment being written; the next write starts a new one.
fn roll(active: &mut Option<Active>, disk: &super::log::Disk) {
    if let Some(a) = active.take()
        && disk.fsync
        && let Err(error) = a.file.sync_data()
    {
        tracing::warn!(%error, "failed to sync a full event log segment");
    }
}

/// A new segment starting at `first`.
fn create(shared: &Shared, disk: &super::log::Disk, first: u64) -> Result<Active, String> {
    let path = segment_path(&disk.dir, first);
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    // An empty file left by an earlier failure is reused from its start.
    file.set_len(0)
        .map_err(|e| format!("cannot truncate {}: {e}", path.display()))?;
    if disk.fsync {
        cursors::sync_dir(&disk.dir).map_err(|e| format!("{e:#}"))?;
    }
    let mut state = shared.state.lock();
    if state.segments.last().is_some_and(|s| s.path == path) {
        state.segments.pop();
    }
    state.segments.push(Segment::new(path, first));
    Ok(Active { file, len: 0 })
}
