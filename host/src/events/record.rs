//! The segment format: a segment file is a run of records, each
//! `len: u32 LE | crc32: u32 LE | payload` where the CRC covers the length
//! bytes and the payload, and the payload is `seq: u64 LE` then the JSON of
//! a [`Stored`] (the event and its idempotency key). A segment is named after
//! the sequence number of its first record (`00000000000000000042.seg`).
//!
//! [`scan`] reads a segment back whole and says where it is damaged: a torn
//! tail (a record cut short by a crash) ends the scan at the last whole
//! record; a record whose CRC fails is skipped, and the scan resyncs on the
//! next offset where a valid record starts.

use crate::model::Event;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Bytes before a record's payload.
pub const HEADER: usize = 8;
/// Largest payload accepted when reading (larger lengths are damage).
pub const MAX_PAYLOAD: usize = 64 * 1024 * 1024;
/// The extension of segment files.
const EXTENSION: &str = "seg";

/// What a record holds besides its sequence number.
#[derive(Serialize, Deserialize)]
pub struct Stored {
    /// The event, with its id.
    #[serde(rename = "e")]
    pub event: Event,
    /// The producer's `idempotency_key`, when it sent one.
    #[serde(rename = "k", default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

/// Appends the record of `event` (number `seq`) to `out`.
pub fn encode(out: &mut Vec<u8>, seq: u64, event: &Event, key: Option<&str>) {
    #[derive(Serialize)]
    struct Borrowed<'a> {
        e: &'a Event,
        #[serde(skip_serializing_if = "Option::is_none")]
        k: Option<&'a str>,
    }
    let start = out.len();
    out.extend_from_slice(&[0; HEADER]);
    out.extend_from_slice(&seq.to_le_bytes());
    if serde_json::to_writer(&mut *out, &Borrowed { e: event, k: key }).is_err() {
        // An event always serialises (strings, numbers, maps of JSON values);
        // should it not, the record holds `null` and is skipped on read.
        out.truncate(start + HEADER + 8);
        out.extend_from_slice(b"null");
    }
    let len = u32::try_from(out.len() - start - HEADER).unwrap_or(u32::MAX);
    out[start..start + 4].copy_from_slice(&len.to_le_bytes());
    let crc = checksum(&out[start..start + 4], &out[start + HEADER..]);
    out[start + 4..start + HEADER].copy_from_slice(&crc.to_le_bytes());
}

fn checksum(len: &[u8], payload: &[u8]) -> u32 {
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(len);
    hasher.update(payload);
    hasher.finalize()
}

/// A record read back: its number, where it starts, and what it holds.
pub struct Record {
    /// Its sequence number.
    pub seq: u64,
    /// Its offset in the segment.
    pub offset: u64,
    /// Its length on disk, header included.
    pub bytes: u64,
    /// The event and key.
    pub stored: Stored,
}

/// A record whose CRC (or payload) was bad, skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Corrupt {
    /// Where it started.
    pub offset: u64,
    /// Bytes skipped to the next valid record.
    pub skipped: u64,
}

/// What a whole segment holds.
pub struct Scan {
    /// The valid records, in order.
    pub records: Vec<Record>,
    /// The damaged stretches skipped.
    pub corrupt: Vec<Corrupt>,
    /// Where the last whole record ends: the length to truncate a torn tail to.
    pub valid_len: u64,
}

/// The record starting at `offset` in `buf`, if a whole valid one does.
fn record_at(buf: &[u8], offset: usize) -> Option<Record> {
    let header = buf.get(offset..offset + HEADER)?;
    let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
    if !(8..=MAX_PAYLOAD).contains(&len) {
        return None;
    }
    let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    let payload = buf.get(offset + HEADER..offset + HEADER + len)?;
    if checksum(&header[..4], payload) != crc {
        return None;
    }
    let mut seq = [0; 8];
    seq.copy_from_slice(&payload[..8]);
    let stored: Stored = serde_json::from_slice(&payload[8..]).ok()?;
    Some(Record {
        seq: u64::from_le_bytes(seq),
        offset: offset as u64,
        bytes: (HEADER + len) as u64,
        stored,
    })
}

/// Reads every record of a segment's bytes (see the module docs).
pub fn scan(buf: &[u8]) -> Scan {
    let mut records = Vec::new();
    let mut corrupt = Vec::new();
    let mut offset = 0;
    let mut valid_len = 0;
    while offset < buf.len() {
        if let Some(record) = record_at(buf, offset) {
            offset += record.bytes as usize;
            valid_len = offset as u64;
            records.push(record);
            continue;
        }
        // Resync: the next offset where a whole valid record starts.
        let next =
            (offset + 1..buf.len().saturating_sub(HEADER)).find(|&o| record_at(buf, o).is_some());
        match next {
            Some(next) => {
                corrupt.push(Corrupt {
                    offset: offset as u64,
                    skipped: (next - offset) as u64,
                });
                offset = next;
            }
            None => {
                // Nothing valid follows. A whole record with a bad CRC is
                // damage; a record cut short is a torn tail. Both are cut.
                if whole_record_at(buf, offset) {
                    corrupt.push(Corrupt {
                        offset: offset as u64,
                        skipped: (buf.len() - offset) as u64,
                    });
                }
                break;
            }
        }
    }
    Scan {
        records,
        corrupt,
        valid_len,
    }
}

/// Whether the header at `offset` announces a record that fits exactly in
/// what is left of `buf` (damage, not a write cut short).
fn whole_record_at(buf: &[u8], offset: usize) -> bool {
    buf.get(offset..offset + 4).is_some_and(|b| {
        let len = u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize;
        offset + HEADER + len == buf.len()
    })
}

/// Reads the records of `buf` from its start in order, stopping at the
/// first bad one (a live segment is never damaged past what recovery cut).
pub fn read_all(buf: &[u8]) -> impl Iterator<Item = Record> + '_ {
    let mut offset = 0;
    std::iter::from_fn(move || {
        let record = record_at(buf, offset)?;
        offset += record.bytes as usize;
        Some(record)
    })
}

/// The path of the segment whose first record is `first`.
pub fn segment_path(dir: &Path, first: u64) -> PathBuf {
    dir.join(format!("{first:020}.{EXTENSION}"))
}

/// The first sequence number a segment file's name gives, if it is one.
pub fn segment_first(path: &Path) -> Option<u64> {
    if path.extension()? != EXTENSION {
        return None;
    }
    path.file_stem()?.to_str()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(n: u64) -> Vec<u8> {
        let mut buf = Vec::new();
        for seq in 0..n {
            let event = Event::new(format!("test.{seq}"), "test");
            encode(&mut buf, seq, &event, (seq == 1).then_some("key-1"));
        }
        buf
    }

    #[test]
    fn records_read_back() {
        let buf = segment(3);
        let scan = scan(&buf);
        assert_eq!(scan.records.len(), 3);
        assert!(scan.corrupt.is_empty());
        assert_eq!(scan.valid_len, buf.len() as u64);
        assert_eq!(scan.records[1].stored.key.as_deref(), Some("key-1"));
        assert_eq!(scan.records[2].stored.event.event_type, "test.2");
        assert_eq!(read_all(&buf).count(), 3);
    }

    #[test]
    fn a_torn_tail_is_cut_at_the_last_whole_record() {
        let buf = segment(3);
        let whole = scan(&buf).records[2].offset as usize;
        for cut in [whole + 1, whole + HEADER, buf.len() - 1] {
            let scan = scan(&buf[..cut]);
            assert_eq!(scan.records.len(), 2, "cut at {cut}");
            assert!(scan.corrupt.is_empty(), "a torn tail is not damage");
            assert_eq!(scan.valid_len, whole as u64);
        }
    }

    #[test]
    fn a_flipped_byte_skips_one_record_and_resyncs() {
        let mut buf = segment(5);
        let records = scan(&buf).records;
        let victim = &records[2];
        for at in [victim.offset + 2, victim.offset + 5, victim.offset + 20] {
            let mut damaged = buf.clone();
            damaged[at as usize] ^= 0x5a;
            let scan = scan(&damaged);
            let seqs: Vec<_> = scan.records.iter().map(|r| r.seq).collect();
            assert_eq!(seqs, [0, 1, 3, 4], "flip at {at}");
            assert_eq!(scan.corrupt.len(), 1);
            assert_eq!(scan.corrupt[0].offset, victim.offset);
        }
        // Damage in the last record: counted, and cut.
        let last = records[4].offset as usize + 12;
        buf[last] ^= 1;
        let scan = scan(&buf);
        assert_eq!(scan.records.len(), 4);
        assert_eq!(scan.corrupt.len(), 1);
        assert_eq!(scan.valid_len, records[4].offset);
    }

    #[test]
    fn segment_names_round_trip() {
        let path = segment_path(Path::new("/x"), 42);
        assert_eq!(segment_first(&path), Some(42));
        assert_eq!(segment_first(Path::new("/x/cursors.json")), None);
    }
}
