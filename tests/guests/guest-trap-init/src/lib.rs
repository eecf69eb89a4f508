//! Fixture `guest-trap-init` (hostile): `init()` panics, which aborts: a trap
//! during load. The load must fail with the reason reported, and any previous
//! version of the plugin keep running.

use wasmon_sdk::{Collector, Error, Sample};

/// The collector, never built.
pub struct TrapInit;

impl Collector for TrapInit {
    #[allow(clippy::panic)]
    fn init() -> Result<Self, Error> {
        panic!("guest-trap-init: deliberate panic in init");
    }

    fn collect(&mut self) -> Result<Vec<Sample>, Error> {
        Ok(Vec::new())
    }
}

wasmon_sdk::export_collector!(TrapInit);
