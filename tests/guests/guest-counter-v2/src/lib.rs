//! Fixture `guest-counter-v2`: `guest-counter`'s logic built as build 2, so
//! its sha256 differs and it reports `fixture_build{build="2"}`. Replacing
//! `guest-counter` with it shows the swap and that `count` survives reload.

/// Reported as `fixture_build{build="2"}`.
const BUILD: &str = "2";

#[path = "../../guest-counter/src/counter.rs"]
mod counter;

wasmon_sdk::export_collector!(counter::Counter);
