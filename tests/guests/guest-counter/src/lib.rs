//! Fixture `guest-counter` (build 1): counts its `collect()` calls in state.
//! See `counter.rs` for the samples; `guest-counter-v2` is the same logic as
//! build 2, a different binary for reload tests.

/// Reported as `fixture_build{build="1"}`.
const BUILD: &str = "1";

#[path = "counter.rs"]
mod counter;

wasmon_sdk::export_collector!(counter::Counter);
