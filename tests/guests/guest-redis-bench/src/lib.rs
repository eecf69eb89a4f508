//! Fixture `guest-redis-bench` (for `--bench redis`): every `collect()` sends
//! `[config] command` (a list: the command name, then its arguments) through
//! the SDK's `redis::command` `[config] calls` times, in sequence, and
//! returns one gauge `redis_bench_ok`, the number of calls that succeeded.
//! It logs nothing, so a call costs only the capability round trip.

use serde::Deserialize;
use wasmon_sdk::redis;
use wasmon_sdk::{Collector, Error, Sample};

#[derive(Deserialize)]
struct Config {
    command: Vec<String>,
    calls: u32,
}

/// The collector: the command and how often to send it per call.
pub struct RedisBench {
    config: Config,
}

impl Collector for RedisBench {
    fn init() -> Result<Self, Error> {
        let config: Config = wasmon_sdk::config::get()?;
        if config.command.is_empty() {
            return Err(Error::new("`command` is empty"));
        }
        Ok(RedisBench { config })
    }

    fn collect(&mut self) -> Result<Vec<Sample>, Error> {
        let Some((name, args)) = self.config.command.split_first() else {
            return Ok(Vec::new());
        };
        let mut ok = 0u32;
        for _ in 0..self.config.calls {
            if redis::command(name, args).is_ok() {
                ok += 1;
            }
        }
        Ok(vec![Sample::gauge("redis_bench_ok", f64::from(ok))])
    }
}

wasmon_sdk::export_collector!(RedisBench);
