//! Fixture `guest-redis-probe`: every `collect()` sends the Redis commands
//! of `[config] commands` (each a list: the command name, one or two words,
//! then its arguments) through the SDK's `redis::command`, in order, and
//! reports for command `i`:
//!
//! - on success `redis_probe_ok{index}` = 1, `redis_probe_depth{index}` (the
//!   reply tree's depth: 0 for a scalar) and `redis_probe_leaves{index}`, and
//!   logs `redis-probe #i ok: <reply>`;
//! - on an error `redis_probe_error{index,kind}` = 1 (kind: `not-granted`,
//!   `forbidden-command`, `connection`, `server`, `too-large`) and logs
//!   `redis-probe #i <kind>: <detail>`.
//!
//! With `[config] error = "..."` it then returns that error instead.
//! A `not-granted` or `forbidden-command` makes the host fault the call (a
//! policy violation), so its samples never land: tests read the log.

use serde::Deserialize;
use wasmon_sdk::log::{self, Level};
use wasmon_sdk::redis::{self, RedisError, Value};
use wasmon_sdk::{Collector, Error, Sample};

#[derive(Deserialize)]
struct Config {
    #[serde(default)]
    commands: Vec<Vec<String>>,
    /// When set, `collect()` returns this error after its commands.
    #[serde(default)]
    error: Option<String>,
}

/// The collector: the commands to send.
pub struct RedisProbe {
    commands: Vec<Vec<String>>,
    error: Option<String>,
}

impl Collector for RedisProbe {
    fn init() -> Result<Self, Error> {
        let config: Config = wasmon_sdk::config::get()?;
        Ok(RedisProbe {
            commands: config.commands,
            error: config.error,
        })
    }

    fn collect(&mut self) -> Result<Vec<Sample>, Error> {
        let mut samples = Vec::new();
        for (i, command) in self.commands.iter().enumerate() {
            let Some((name, args)) = command.split_first() else {
                continue;
            };
            let index = i.to_string();
            match redis::command(name, args) {
                Ok(reply) => {
                    log::write(Level::Info, &format!("redis-probe #{i} ok: {reply:?}"));
                    samples.push(Sample::gauge("redis_probe_ok", 1.0).with_label("index", &index));
                    samples.push(
                        Sample::gauge("redis_probe_depth", depth(&reply) as f64)
                            .with_label("index", &index),
                    );
                    samples.push(
                        Sample::gauge("redis_probe_leaves", leaves(&reply) as f64)
                            .with_label("index", &index),
                    );
                }
                Err(e) => {
                    let (kind, detail) = match e {
                        RedisError::NotGranted(d) => ("not-granted", d),
                        RedisError::ForbiddenCommand(d) => ("forbidden-command", d),
                        RedisError::Connection(d) => ("connection", d),
                        RedisError::Server(d) => ("server", d),
                        RedisError::TooLarge(max) => ("too-large", max.to_string()),
                    };
                    log::write(Level::Warn, &format!("redis-probe #{i} {kind}: {detail}"));
                    samples.push(
                        Sample::gauge("redis_probe_error", 1.0)
                            .with_label("index", &index)
                            .with_label("kind", kind),
                    );
                }
            }
        }
        match &self.error {
            Some(error) => Err(Error::new(error.clone())),
            None => Ok(samples),
        }
    }
}

fn depth(value: &Value) -> usize {
    match value {
        Value::Array(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
        Value::Map(entries) => {
            1 + entries
                .iter()
                .map(|(k, v)| depth(k).max(depth(v)))
                .max()
                .unwrap_or(0)
        }
        _ => 0,
    }
}

fn leaves(value: &Value) -> usize {
    match value {
        Value::Array(items) => items.iter().map(leaves).sum(),
        Value::Map(entries) => entries.iter().map(|(k, v)| leaves(k) + leaves(v)).sum(),
        _ => 1,
    }
}

wasmon_sdk::export_collector!(RedisProbe);
