//! Per-series history: a ring of fixed-width time buckets holding min, max, sum
//! and count, allocated as it fills and trimmed to the history window.

use std::collections::VecDeque;

/// One bucket of `resolution` width. 32 bytes, no padding.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Bucket {
    /// Smallest value seen in the bucket.
    pub(crate) min: f64,
    /// Largest value seen in the bucket.
    pub(crate) max: f64,
    /// Sum of the values seen, for the average.
    pub(crate) sum: f64,
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
        self.count = self.count.saturating_add(1);
    }
}

/// The buckets of one series, oldest first, only those that saw a value.
///
/// A series sampled at least once per bucket holds `span + 1` buckets once the
/// window is full (361 × 32 B ≈ 11.3 KiB at the default 10 s over 60 min); a
/// sparser series holds fewer. The deque grows by doubling up to that cap and
/// never beyond it.
#[derive(Debug, Default)]
pub(crate) struct History {
    buckets: VecDeque<Bucket>,
}

impl History {
    /// Records `value` in bucket `index`, keeping buckets newer than
    /// `index - span` only and at most `span + 1` of them.
    pub(crate) fn record(&mut self, index: u32, value: f64, span: u32) {
        let oldest = index.saturating_sub(span);
        while self.buckets.front().is_some_and(|b| b.index < oldest) {
            self.buckets.pop_front();
        }
        match self.buckets.back_mut() {
            Some(last) if last.index == index => last.add(value),
            Some(last) if last.index > index => self.record_late(index, value, span),
            _ => self.push_back(Bucket::new(index, value), span),
        }
    }

    /// A value for a bucket before the newest one (an explicit, older timestamp).
    fn record_late(&mut self, index: u32, value: f64, span: u32) {
        let newest = self.buckets.back().map_or(index, |b| b.index);
        if index < newest.saturating_sub(span) {
            return; // already outside the window
        }
        match self.buckets.binary_search_by_key(&index, |b| b.index) {
            Ok(at) => {
                if let Some(bucket) = self.buckets.get_mut(at) {
                    bucket.add(value);
                }
            }
            Err(at) => {
                self.reserve(span);
                self.buckets.insert(at, Bucket::new(index, value));
            }
        }
    }

    fn push_back(&mut self, bucket: Bucket, span: u32) {
        self.reserve(span);
        self.buckets.push_back(bucket);
    }

    /// Makes room for one more bucket without growing past `span + 1`.
    fn reserve(&mut self, span: u32) {
        let cap = span as usize + 1;
        if self.buckets.len() >= cap {
            self.buckets.pop_front();
        } else if self.buckets.len() == self.buckets.capacity() {
            let want = (self.buckets.capacity() * 2).clamp(4, cap);
            self.buckets.reserve_exact(want - self.buckets.len());
        }
    }

    /// Index of the newest bucket.
    pub(crate) fn newest(&self) -> Option<u32> {
        self.buckets.back().map(|b| b.index)
    }

    /// Buckets with `index >= from`, oldest first.
    pub(crate) fn since(&self, from: u32) -> impl Iterator<Item = &Bucket> {
        let start = self.buckets.partition_point(|b| b.index < from);
        self.buckets.range(start..)
    }

    /// Heap bytes this history holds.
    pub(crate) fn heap_bytes(&self) -> usize {
        self.buckets.capacity() * std::mem::size_of::<Bucket>()
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
        for v in [3.0, 1.0, 5.0] {
            h.record(10, v, 360);
        }
        let b: Vec<_> = h.since(0).copied().collect();
        assert_eq!(b.len(), 1);
        assert_eq!(
            (b[0].min, b[0].max, b[0].sum, b[0].count),
            (1.0, 5.0, 9.0, 3)
        );
    }

    #[test]
    fn trims_to_the_window_and_caps_memory() {
        let mut h = History::default();
        for i in 0..1000 {
            h.record(i, i as f64, 360);
        }
        assert_eq!(h.since(0).count(), 361);
        assert_eq!(h.newest(), Some(999));
        assert_eq!(indices(&h)[0], 999 - 360);
        assert!(h.heap_bytes() <= 361 * 32, "{} bytes", h.heap_bytes());
    }

    #[test]
    fn a_gap_drops_everything_older_than_the_window() {
        let mut h = History::default();
        h.record(1, 1.0, 10);
        h.record(2, 1.0, 10);
        h.record(100, 1.0, 10);
        assert_eq!(indices(&h), [100]);
    }

    #[test]
    fn late_values_land_in_their_bucket() {
        let mut h = History::default();
        h.record(10, 1.0, 360);
        h.record(12, 1.0, 360);
        h.record(11, 7.0, 360);
        h.record(10, 3.0, 360);
        assert_eq!(indices(&h), [10, 11, 12]);
        let first = h.since(0).next().copied().unwrap();
        assert_eq!((first.count, first.max), (2, 3.0));
        // Too old for the window: ignored.
        h.record(12 + 1, 0.0, 2);
        h.record(5, 0.0, 2);
        assert_eq!(h.since(0).next().map(|b| b.index), Some(11));
    }

    #[test]
    fn nan_does_not_poison_min_and_max() {
        let mut h = History::default();
        h.record(1, f64::NAN, 10);
        h.record(1, 2.0, 10);
        h.record(1, 4.0, 10);
        let b = h.since(0).next().copied().unwrap();
        assert_eq!((b.min, b.max, b.count), (2.0, 4.0, 3));
        assert!(b.sum.is_nan());
    }
}
