//! Fixture `guest-trap-call` (hostile): `init()` succeeds, `collect()` panics,
//! which aborts: a trap in a call. The plugin is marked crashed, restarted
//! with backoff and `failed` after `max_restarts`.

use wasmon_sdk::{Collector, Error, Sample};

/// The collector.
pub struct TrapCall;

impl Collector for TrapCall {
    fn init() -> Result<Self, Error> {
        Ok(TrapCall)
    }

    #[allow(clippy::panic)]
    fn collect(&mut self) -> Result<Vec<Sample>, Error> {
        panic!("guest-trap-call: deliberate panic in collect");
    }
}

wasmon_sdk::export_collector!(TrapCall);
