//! Fixture `guest-infinite-loop` (hostile): `init()` succeeds, `collect()`
//! never returns. The loop goes through `black_box`, so the optimiser cannot
//! remove it; only the host's epoch interruption (the call's time budget)
//! stops it.

use std::hint::black_box;
use wasmon_sdk::{Collector, Error, Sample};

/// The collector.
pub struct InfiniteLoop;

impl Collector for InfiniteLoop {
    fn init() -> Result<Self, Error> {
        Ok(InfiniteLoop)
    }

    fn collect(&mut self) -> Result<Vec<Sample>, Error> {
        let mut spins = 0u64;
        loop {
            spins = black_box(spins.wrapping_add(1));
        }
    }
}

wasmon_sdk::export_collector!(InfiniteLoop);
