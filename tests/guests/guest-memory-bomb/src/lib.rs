//! Fixture `guest-memory-bomb` (hostile): `init()` succeeds, `collect()`
//! allocates 1 MiB chunks, writes to every page of each and keeps them all,
//! until growing linear memory fails and the allocation failure aborts (a
//! trap), or the host traps the growth itself. It never returns.

use std::hint::black_box;
use wasmon_sdk::{Collector, Error, Sample};

/// Bytes per allocation.
const CHUNK: usize = 1 << 20;
/// Wasm page size: one write per page makes every page real.
const PAGE: usize = 64 * 1024;

/// The collector.
pub struct MemoryBomb;

impl Collector for MemoryBomb {
    fn init() -> Result<Self, Error> {
        Ok(MemoryBomb)
    }

    fn collect(&mut self) -> Result<Vec<Sample>, Error> {
        let mut hoard: Vec<Vec<u8>> = Vec::new();
        loop {
            let mut chunk = vec![0u8; CHUNK];
            for byte in chunk.iter_mut().step_by(PAGE) {
                *byte = 0xA5;
            }
            hoard.push(black_box(chunk));
            black_box(&hoard);
        }
    }
}

wasmon_sdk::export_collector!(MemoryBomb);
