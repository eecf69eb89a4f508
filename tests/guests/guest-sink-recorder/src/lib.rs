//! Fixture `guest-sink-recorder`: a sink that records the id of every event
//! it accepts, in order, in state key `delivered` (a JSON list of strings),
//! and counts its `deliver()` calls in state key `calls` (a JSON integer).
//!
//! `[config] fail_first = N` makes the first N calls (counted across reloads
//! and restarts, since `calls` lives in state) fail with
//! `retryable("sink-recorder: failing call K of N")` without recording
//! anything; `fail_permanent = true` makes those failures `permanent`
//! instead, for dead-letter tests.
//!
//! The state quota (1 MiB by default) holds about 20 000 ids of 40 bytes.

use serde::Deserialize;
use wasmon_sdk::{DeliveryError, Error, Event, Sink, state};

/// State key: the ids of accepted events, in delivery order.
pub const DELIVERED_KEY: &str = "delivered";
/// State key: how many times `deliver()` was called.
pub const CALLS_KEY: &str = "calls";

/// The `[config]` table.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    /// How many calls fail before deliveries are accepted.
    #[serde(default)]
    fail_first: u64,
    /// Whether those failures are permanent rather than retryable.
    #[serde(default)]
    fail_permanent: bool,
}

/// The sink.
pub struct Recorder {
    config: Config,
}

impl Sink for Recorder {
    fn init() -> Result<Self, Error> {
        Ok(Recorder {
            config: wasmon_sdk::config::get()?,
        })
    }

    fn deliver(&mut self, batch: Vec<Event>) -> Result<(), DeliveryError> {
        let calls = state::get_json::<u64>(CALLS_KEY).unwrap_or(0) + 1;
        state::set_json(CALLS_KEY, &calls).map_err(retryable)?;
        if calls <= self.config.fail_first {
            let message = format!(
                "sink-recorder: failing call {calls} of {}",
                self.config.fail_first
            );
            return Err(if self.config.fail_permanent {
                DeliveryError::Permanent(message)
            } else {
                DeliveryError::Retryable(message)
            });
        }
        let mut delivered = state::get_json::<Vec<String>>(DELIVERED_KEY).unwrap_or_default();
        delivered.extend(batch.into_iter().map(|event| event.id));
        state::set_json(DELIVERED_KEY, &delivered).map_err(retryable)
    }
}

/// A state write that failed (over quota): retry, nothing was recorded.
fn retryable(error: Error) -> DeliveryError {
    DeliveryError::Retryable(format!("sink-recorder: state: {}", error.message))
}

wasmon_sdk::export_sink!(Recorder);
