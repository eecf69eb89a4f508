//! Per-series history: fixed-width time buckets holding min, max, sum, count
//! and the last value, trimmed to the history window. The newest buckets sit
//! uncompressed in a small head; every [`CHUNK`] of them are sealed into a
//! compressed chunk ([`codec`]: XOR-ed values, byte-aligned), so an hour of a
//! series sampled every 10 s costs about 4.2 KiB (11.7 B a bucket) instead of
//! 11.3 KiB (see `host/benches/history.rs`).

mod codec;

use std::collections::VecDeque;

/// Buckets per sealed chunk; the head holds at most this many (more only
/// briefly, after late values).
const CHUNK: usize = 16;

/// One bucket of `resolution` width. 40 bytes, no padding.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Bucket {
    /// Smallest value seen in the bucket.
    pub(crate) min: f64,
    /// Largest value seen in the bucket.
    pub(crate) max: f64,
    /// Sum of the values seen, for the average.
    pub(crate) sum: f64,
    /// The value recorded last (in arrival order).
    pub(crate) last: f64,
    /// Bucket number: Unix time divided by the resolution.
    pub(crate) index: u32,
    /// Values seen.
    pub(crate) count: u32,
}

impl Bucket {
    fn new(index: u32, value: f64) -> Bucket {
        Bucket {
            min: value,
            max: value,
            sum: value,
            last: value,
            index,
            count: 1,
        }
    }

    fn add(&mut self, value: f64) {
        // NaN never wins a comparison, so a NaN keeps min and max from the
        // other values; it still makes the sum (and average) NaN, as it should.
        if value < self.min || self.min.is_nan() {
            self.min = value;
        }
        if value > self.max || self.max.is_nan() {
            self.max = value;
        }
        self.sum += value;
        self.last = value;
        self.count = self.count.saturating_add(1);
    }

    /// A bucket holding one value, for tests elsewhere in the store.
    #[cfg(test)]
    pub(crate) fn new_for_tests(index: u32, value: f64) -> Bucket {
        Bucket::new(index, value)
    }

    fn bits(&self) -> [u64; 4] {
        [self.min, self.max, self.sum, self.last].map(f64::to_bits)
    }
}

/// A sealed, compressed run of buckets.
#[derive(Debug)]
struct Chunk {
    /// Index of its oldest bucket.
    first: u32,
    /// Index of its newest bucket.
    last: u32,
    bytes: Box<[u8]>,
}

impl Chunk {
    fn seal(buckets: &[Bucket]) -> Option<Chunk> {
        let (first, last) = (buckets.first()?.index, buckets.last()?.index);
        Some(Chunk {
            first,
            last,
            bytes: codec::encode(buckets, first),
        })
    }

    fn buckets(&self) -> codec::Decoder<'_> {
        codec::Decoder::new(&self.bytes, self.first)
    }
}

/// The buckets of one series, oldest first, only those that saw a value.
///
/// At most `span + 1` buckets are in the window; a sealed chunk is dropped
/// once all its buckets are older than the window, so up to `CHUNK - 1`
/// older ones linger (readers never see them: they ask from a bucket).
#[derive(Debug, Default)]
pub(crate) struct History {
    /// Sealed chunks, oldest first, each older than the head.
    sealed: VecDeque<Chunk>,
    /// The newest buckets, uncompressed, sorted by index.
    head: Vec<Bucket>,
}

impl History {
    /// Records `value` in bucket `index`, keeping buckets newer than
    /// `index - span` only.
    pub(crate) fn record(&mut self, index: u32, value: f64, span: u32) {
        let oldest = index.saturating_sub(span);
        self.trim(oldest);
        match self.head.last_mut() {
            Some(last) if last.index == index => last.add(value),
            Some(last) if last.index > index => self.record_late(index, value, span),
            _ => match self.sealed.back() {
                Some(chunk) if chunk.last >= index => self.record_late(index, value, span),
                _ => self.push(Bucket::new(index, value), span),
            },
        }
    }

    /// Drops every bucket (and chunk) older than `oldest`.
    fn trim(&mut self, oldest: u32) {
        while self.sealed.front().is_some_and(|c| c.last < oldest) {
            self.sealed.pop_front();
        }
        if self.head.first().is_some_and(|b| b.index < oldest) {
            self.head.retain(|b| b.index >= oldest);
        }
    }

    fn push(&mut self, bucket: Bucket, span: u32) {
        if self.head.len() >= CHUNK {
            self.seal(span);
        }
        self.head.push(bucket);
    }

    /// Moves the head into a new sealed chunk.
    fn seal(&mut self, span: u32) {
        let Some(chunk) = Chunk::seal(&self.head) else {
            return;
        };
        if self.sealed.len() == self.sealed.capacity() {
            // Grow by doubling, but never past what the window can hold.
            let most = span as usize / CHUNK + 2;
            let want = (self.sealed.capacity() * 2).clamp(2, most.max(2));
            self.sealed
                .reserve_exact(want.saturating_sub(self.sealed.len()).max(1));
        }
        self.sealed.push_back(chunk);
        self.head.clear();
    }

    /// A value for a bucket before the newest one (an explicit, older timestamp).
    fn record_late(&mut self, index: u32, value: f64, span: u32) {
        let Some(newest) = self.newest() else {
            return;
        };
        if index < newest.saturating_sub(span) {
            return; // already outside the window
        }
        let in_head = self.head.first().is_some_and(|b| b.index <= index) || self.sealed.is_empty();
        if in_head {
            insert(&mut self.head, index, value);
            return;
        }
        // The newest chunk that starts at or before `index` (or the oldest):
        // chunks stay sorted and disjoint. Rare, so re-encoding is fine.
        let at = self
            .sealed
            .partition_point(|c| c.first <= index)
            .saturating_sub(1);
        if let Some(chunk) = self.sealed.get_mut(at) {
            let mut buckets: Vec<Bucket> = chunk.buckets().collect();
            insert(&mut buckets, index, value);
            if let Some(resealed) = Chunk::seal(&buckets) {
                *chunk = resealed;
            }
        }
    }

    /// Index of the newest bucket.
    pub(crate) fn newest(&self) -> Option<u32> {
        self.head
            .last()
            .map(|b| b.index)
            .or_else(|| self.sealed.back().map(|c| c.last))
    }

    /// Buckets with `index >= from`, oldest first (decoded on the way).
    pub(crate) fn since(&self, from: u32) -> impl Iterator<Item = Bucket> + '_ {
        let start = self.sealed.partition_point(|c| c.last < from);
        self.sealed
            .range(start..)
            .flat_map(Chunk::buckets)
            .chain(self.head.iter().copied())
            .filter(move |b| b.index >= from)
    }

    /// Heap bytes this history holds (allocator overhead aside).
    pub(crate) fn heap_bytes(&self) -> usize {
        self.head.capacity() * std::mem::size_of::<Bucket>()
            + self.sealed.capacity() * std::mem::size_of::<Chunk>()
            + self.sealed.iter().map(|c| c.bytes.len()).sum::<usize>()
    }
}

/// Adds `value` to bucket `index` of the sorted `buckets`, creating it if needed.
fn insert(buckets: &mut Vec<Bucket>, index: u32, value: f64) {
    match buckets.binary_search_by_key(&index, |b| b.index) {
        Ok(at) => {
            if let Some(bucket) = buckets.get_mut(at) {
                bucket.add(value);
            }
        }
        Err(at) => buckets.insert(at, Bucket::new(index, value)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn indices(h: &History) -> Vec<u32> {
        h.since(0).map(|b| b.index).collect()
    }

    #[test]
    fn aggregates_within_a_bucket() {
        let mut h = History::default();
        for v in [3.0, 1.0, 5.0, 2.0] {
            h.record(10, v, 360);
        }
        let b: Vec<_> = h.since(0).collect();
        assert_eq!(b.len(), 1);
        assert_eq!(
            (b[0].min, b[0].max, b[0].sum, b[0].last, b[0].count),
            (1.0, 5.0, 11.0, 2.0, 4)
        );
    }

    #[test]
    fn trims_to_the_window_and_caps_memory() {
        let mut h = History::default();
        for i in 0..1000 {
            h.record(i, f64::from(i) * 0.37, 360);
        }
        let all: Vec<Bucket> = h.since(0).collect();
        assert!((361..361 + CHUNK).contains(&all.len()), "{}", all.len());
        assert_eq!(h.newest(), Some(999));
        assert_eq!(h.since(999 - 360).count(), 361);
        for b in h.since(999 - 360) {
            assert_eq!(b.last, f64::from(b.index) * 0.37);
            assert_eq!((b.min, b.max, b.sum, b.count), (b.last, b.last, b.last, 1));
        }
        // Far below the 361 × 40 bytes of plain buckets.
        assert!(h.heap_bytes() < 361 * 16, "{} bytes", h.heap_bytes());
    }

    #[test]
    fn a_gap_drops_everything_older_than_the_window() {
        let mut h = History::default();
        for i in 1..40 {
            h.record(i, 1.0, 10);
        }
        h.record(100, 1.0, 10);
        assert_eq!(indices(&h), [100]);
        assert_eq!(h.sealed.len(), 0);
    }

    #[test]
    fn late_values_land_in_their_bucket_in_the_head_or_a_sealed_chunk() {
        let mut h = History::default();
        h.record(10, 1.0, 360);
        h.record(12, 1.0, 360);
        h.record(11, 7.0, 360);
        h.record(10, 3.0, 360);
        assert_eq!(indices(&h), [10, 11, 12]);
        let first = h.since(0).next().unwrap();
        assert_eq!((first.count, first.max, first.last), (2, 3.0, 3.0));
        // Fill past a chunk, then write into the sealed part.
        for i in 13..60 {
            h.record(i, 1.0, 360);
        }
        assert!(!h.sealed.is_empty());
        h.record(11, 9.0, 360);
        h.record(5, 2.0, 360); // before every bucket, still in the window
        let got: Vec<Bucket> = h.since(0).collect();
        assert_eq!(got.len(), 51);
        assert_eq!((got[0].index, got[0].last), (5, 2.0));
        let eleven = got.iter().find(|b| b.index == 11).unwrap();
        assert_eq!((eleven.count, eleven.max, eleven.last), (2, 9.0, 9.0));
        assert!(got.windows(2).all(|w| w[0].index < w[1].index));
        // Too old for the window: ignored.
        let mut h = History::default();
        h.record(12, 1.0, 2);
        h.record(13, 0.0, 2);
        h.record(5, 0.0, 2);
        assert_eq!(indices(&h), [12, 13]);
    }

    #[test]
    fn nan_does_not_poison_min_and_max() {
        let mut h = History::default();
        h.record(1, f64::NAN, 10);
        h.record(1, 2.0, 10);
        h.record(1, 4.0, 10);
        let b = h.since(0).next().unwrap();
        assert_eq!((b.min, b.max, b.count, b.last), (2.0, 4.0, 3, 4.0));
        assert!(b.sum.is_nan());
    }

    #[test]
    fn sealed_buckets_read_back_exactly() {
        let mut h = History::default();
        let mut expect = Vec::new();
        for i in 0..100u32 {
            let v = (f64::from(i) * 1.7).sin() * 1e6;
            h.record(i * 2, v, 360);
            h.record(i * 2, v + 1.0, 360);
            expect.push((i * 2, v, v + 1.0, v + (v + 1.0), v + 1.0));
        }
        let got: Vec<_> = h
            .since(0)
            .map(|b| (b.index, b.min, b.max, b.sum, b.last))
            .collect();
        assert_eq!(got, expect);
        assert_eq!(h.since(150).count(), 25);
    }
}
