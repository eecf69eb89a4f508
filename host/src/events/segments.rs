//! What the log knows of each segment on disk (its range of sequence
//! numbers, size, newest event, a sparse index of record offsets), and the
//! reads of older events from the files.

use super::record::{self, HEADER, MAX_PAYLOAD};
use crate::model::Event;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;

/// One record in this many is indexed (seq → offset).
const INDEX_EVERY: u64 = 64;
/// Bytes read from a segment at a time.
const CHUNK: usize = 256 * 1024;

/// A segment file, as the log knows it.
#[derive(Debug, Clone)]
pub struct Segment {
    /// Its file.
    pub path: PathBuf,
    /// The sequence number its name gives (no record below it).
    pub first: u64,
    /// The sequence number of its last record; `None` while empty.
    pub last: Option<u64>,
    /// Records it holds.
    pub events: u64,
    /// Bytes of whole records (what readers may read).
    pub bytes: u64,
    /// Unix milliseconds of its newest event.
    pub newest_ms: u64,
    /// `(seq, offset)` of one record in [`INDEX_EVERY`].
    pub index: Vec<(u64, u64)>,
}

impl Segment {
    /// An empty segment starting at `first`.
    pub fn new(path: PathBuf, first: u64) -> Segment {
        Segment {
            path,
            first,
            last: None,
            events: 0,
            bytes: 0,
            newest_ms: 0,
            index: Vec::new(),
        }
    }

    /// Notes a record written at `offset`, `len` bytes long.
    pub fn note(&mut self, seq: u64, offset: u64, len: u64, time_ms: u64) {
        if self.events.is_multiple_of(INDEX_EVERY) {
            self.index.push((seq, offset));
        }
        self.events += 1;
        self.last = Some(seq);
        self.bytes = offset + len;
        self.newest_ms = self.newest_ms.max(time_ms);
    }

    /// Events of this segment a reader at `cursor` had not read (an
    /// estimate from sequence numbers when the cursor is inside it).
    pub fn unread_by(&self, cursor: u64) -> u64 {
        match self.last {
            None => 0,
            Some(last) if cursor > last => 0,
            Some(_) if cursor <= self.first => self.events,
            Some(last) => (last + 1 - cursor).min(self.events),
        }
    }

    /// Where to start reading for `from`: the offset of the last indexed
    /// record at or before it.
    fn offset_for(&self, from: u64) -> u64 {
        let i = self.index.partition_point(|&(seq, _)| seq <= from);
        i.checked_sub(1).map_or(0, |i| self.index[i].1)
    }
}

/// Appends to `out` the events of `segment` from `from` on, until `out`
/// holds `max`. A segment deleted meanwhile (retention) reads as empty.
pub fn read(segment: &Segment, from: u64, max: usize, out: &mut Vec<(u64, Arc<Event>)>) {
    let Ok(file) = std::fs::File::open(&segment.path) else {
        return;
    };
    let end = segment.bytes;
    let mut pos = segment.offset_for(from);
    let mut buf = Vec::new();
    while pos < end && out.len() < max {
        let mut header = [0u8; HEADER];
        if file.read_exact_at(&mut header, pos).is_err() {
            return;
        }
        let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
        if len > MAX_PAYLOAD {
            return;
        }
        let want = (CHUNK.max(HEADER + len) as u64).min(end - pos);
        buf.resize(usize::try_from(want).unwrap_or(0), 0);
        if file.read_exact_at(&mut buf, pos).is_err() {
            return;
        }
        let mut consumed = 0;
        for rec in record::read_all(&buf) {
            consumed = rec.offset + rec.bytes;
            if rec.seq >= from {
                out.push((rec.seq, Arc::new(rec.stored.event)));
                if out.len() >= max {
                    break;
                }
            }
        }
        if consumed == 0 {
            return;
        }
        pos += consumed;
    }
}
