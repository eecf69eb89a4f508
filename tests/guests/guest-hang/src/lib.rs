//! Fixture `guest-hang` (hostile): `init()` and `collect()` each do what
//! `[config]` says: `"ok"` (the default), `"spin"` (a busy loop in guest code,
//! which only epoch interruption stops) or `"sleep"` (`std::thread::sleep`,
//! which blocks in a host call: WASI's monotonic-clock `subscribe-duration`
//! and `poll`, where no guest code runs for epoch interruption to stop), for
//! `[config] ms` milliseconds (an hour by default). A `collect()` that
//! returns gives `fixture_hang_calls` = the calls so far.
//!
//! ```toml
//! [config]
//! init = "spin"       # an init that never finishes
//! collect = "sleep"   # a collect blocked in a host call
//! ms = 3600000
//! ```

use serde::Deserialize;
use std::hint::black_box;
use std::time::{Duration, Instant};
use wasmon_sdk::{Collector, Error, Sample};

/// What a call does.
#[derive(Deserialize, Clone, Copy, Default)]
#[serde(rename_all = "lowercase")]
enum Mode {
    /// Return at once.
    #[default]
    Ok,
    /// Busy-wait in guest code.
    Spin,
    /// Sleep in a host call.
    Sleep,
}

/// The `[config]` table.
#[derive(Deserialize)]
struct Config {
    #[serde(default)]
    init: Mode,
    #[serde(default)]
    collect: Mode,
    /// How long `spin` and `sleep` last.
    #[serde(default = "default_ms")]
    ms: u64,
}

const fn default_ms() -> u64 {
    3_600_000
}

fn hang(mode: Mode, for_: Duration) {
    match mode {
        Mode::Ok => {}
        Mode::Spin => {
            let started = Instant::now();
            let mut spins = 0u64;
            while started.elapsed() < for_ {
                spins = black_box(spins.wrapping_add(1));
            }
        }
        Mode::Sleep => std::thread::sleep(for_),
    }
}

/// The collector.
pub struct Hang {
    collect: Mode,
    ms: Duration,
    calls: u64,
}

impl Collector for Hang {
    fn init() -> Result<Self, Error> {
        let config: Config = wasmon_sdk::config::get()?;
        let ms = Duration::from_millis(config.ms);
        hang(config.init, ms);
        Ok(Hang {
            collect: config.collect,
            ms,
            calls: 0,
        })
    }

    fn collect(&mut self) -> Result<Vec<Sample>, Error> {
        hang(self.collect, self.ms);
        self.calls += 1;
        Ok(vec![Sample::gauge("fixture_hang_calls", self.calls as f64)])
    }
}

wasmon_sdk::export_collector!(Hang);
