//! The byte encoding of a sealed chunk of history buckets: per bucket a
//! LEB128 index delta, a LEB128 `count << 1 | single` word, then one value
//! (`single`: min = max = sum = last) or four (min, max, sum, last), each
//! XOR-ed with the same field of the previous bucket and stored without its
//! zero bytes at either end (a header byte says how many were cut), in the
//! spirit of Gorilla's XOR encoding but byte-aligned.

use super::Bucket;

/// Header byte of a value equal to the previous one.
const SAME: u8 = 0xFF;

/// Encodes `buckets` (sorted by index, all `>= first`) for [`Decoder`].
pub(super) fn encode(buckets: &[Bucket], first: u32) -> Box<[u8]> {
    let mut out = Vec::with_capacity(buckets.len() * 11);
    let mut prev_index = first;
    let mut prev = [0u64; 4];
    for b in buckets {
        put_varint(&mut out, u64::from(b.index.wrapping_sub(prev_index)));
        prev_index = b.index;
        let bits = b.bits();
        let single = bits.iter().all(|&x| x == bits[0]);
        put_varint(&mut out, (u64::from(b.count) << 1) | u64::from(single));
        if single {
            put_xor(&mut out, bits[3] ^ prev[3]);
            prev = [bits[0]; 4];
        } else {
            for (now, before) in bits.iter().zip(prev.iter_mut()) {
                put_xor(&mut out, now ^ *before);
                *before = *now;
            }
        }
    }
    out.into_boxed_slice()
}

/// Decodes what [`encode`] wrote, bucket by bucket; stops at the end (or at
/// the first malformed byte, which `encode` never writes).
pub(super) struct Decoder<'a> {
    bytes: &'a [u8],
    pos: usize,
    index: u32,
    prev: [u64; 4],
}

impl<'a> Decoder<'a> {
    pub(super) fn new(bytes: &'a [u8], first: u32) -> Decoder<'a> {
        Decoder {
            bytes,
            pos: 0,
            index: first,
            prev: [0; 4],
        }
    }

    fn varint(&mut self) -> Option<u64> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = *self.bytes.get(self.pos)?;
            self.pos += 1;
            value |= u64::from(byte & 0x7F) << shift;
            if byte & 0x80 == 0 {
                return Some(value);
            }
        }
        None
    }

    fn xor(&mut self) -> Option<u64> {
        let header = *self.bytes.get(self.pos)?;
        self.pos += 1;
        if header == SAME {
            return Some(0);
        }
        let (lead, trail) = (usize::from(header >> 4), usize::from(header & 0x0F));
        let len = 8usize.checked_sub(lead + trail).filter(|&n| n > 0)?;
        let mut le = [0u8; 8];
        le.get_mut(trail..trail + len)?
            .copy_from_slice(self.bytes.get(self.pos..self.pos + len)?);
        self.pos += len;
        Some(u64::from_le_bytes(le))
    }

    fn bucket(&mut self) -> Option<Bucket> {
        let delta = u32::try_from(self.varint()?).ok()?;
        self.index = self.index.wrapping_add(delta);
        let word = self.varint()?;
        let count = u32::try_from(word >> 1).ok()?;
        if word & 1 == 1 {
            let bits = self.xor()? ^ self.prev[3];
            self.prev = [bits; 4];
        } else {
            for field in 0..4 {
                let x = self.xor()?;
                if let Some(p) = self.prev.get_mut(field) {
                    *p ^= x;
                }
            }
        }
        let [min, max, sum, last] = self.prev.map(f64::from_bits);
        Some(Bucket {
            min,
            max,
            sum,
            last,
            index: self.index,
            count,
        })
    }
}

impl Iterator for Decoder<'_> {
    type Item = Bucket;

    fn next(&mut self) -> Option<Bucket> {
        if self.pos >= self.bytes.len() {
            return None;
        }
        let bucket = self.bucket();
        if bucket.is_none() {
            self.pos = self.bytes.len();
        }
        bucket
    }
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8 & 0x7F) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

/// Writes `x` as a header byte (`lead << 4 | trail`, the zero bytes cut at
/// the top and bottom) and the bytes between, little-endian.
fn put_xor(out: &mut Vec<u8>, x: u64) {
    if x == 0 {
        out.push(SAME);
        return;
    }
    let lead = (x.leading_zeros() / 8) as usize;
    let trail = (x.trailing_zeros() / 8) as usize;
    out.push(((lead as u8) << 4) | trail as u8);
    out.extend_from_slice(x.to_le_bytes().get(trail..8 - lead).unwrap_or_default());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bucket(index: u32, values: &[f64]) -> Bucket {
        let mut b = Bucket::new(index, values[0]);
        for &v in &values[1..] {
            b.add(v);
        }
        b
    }

    #[test]
    fn round_trips_single_and_multi_value_buckets_bit_for_bit() {
        let buckets = vec![
            bucket(100, &[1.5]),
            bucket(101, &[1.5]),
            bucket(105, &[0.1, 7.25, -3.0]),
            bucket(106, &[f64::NAN]),
            bucket(107, &[f64::INFINITY, 2.0]),
            bucket(200, &[1e300, -0.0]),
            bucket(201, &[123_456_789.123]),
        ];
        let bytes = encode(&buckets, 100);
        let back: Vec<Bucket> = Decoder::new(&bytes, 100).collect();
        assert_eq!(back.len(), buckets.len());
        for (a, b) in back.iter().zip(&buckets) {
            assert_eq!(a.bits(), b.bits());
            assert_eq!((a.index, a.count), (b.index, b.count));
        }
    }

    #[test]
    fn a_constant_series_costs_three_bytes_a_bucket() {
        let buckets: Vec<Bucket> = (0..16).map(|i| bucket(i, &[0.1])).collect();
        let bytes = encode(&buckets, 0);
        // The first value is written whole (1 + 8 bytes), the rest as "same".
        assert_eq!(bytes.len(), 2 + 1 + 8 + 15 * 3);
    }

    #[test]
    fn garbage_ends_the_iteration_instead_of_panicking() {
        let junk = [0x80u8, 0x80, 0x80];
        assert_eq!(Decoder::new(&junk, 0).count(), 0);
        let junk = [0u8, 2, 0x71, 1];
        assert_eq!(Decoder::new(&junk, 0).count(), 0);
    }
}
