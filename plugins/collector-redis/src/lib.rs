//! `collector-redis`: seed 001's `RedisCollector` as a plugin. Every
//! interval it reads, through the host's read-only `redis` capability:
//!
//! - the `Clients_status` hash (client id → status): one
//!   `fr_gateway_clients{state}` per status (seed 001's
//!   `fr_gateway_client_count`: a `_count` suffix is reserved for histograms
//!   and summaries, so promtool and the store refuse it on a gauge), lower-cased (`active`,
//!   `paused`, ...; both always reported, 0 when none);
//! - `deactivate_clients` and `blocked_clients` (a hash, set, list or sorted
//!   set, counted by its type): `fr_gateway_clients{state="deactivated"}`
//!   and `{state="blocked"}`; a missing key counts 0;
//! - `INFO` basics: `redis_connected_clients`, `redis_memory_used_bytes`,
//!   `redis_commands_processed_total`, `redis_instantaneous_ops_per_second`
//!   and `redis_keyspace_keys{db}`.
//!
//! ```toml
//! [capabilities.redis]
//! url = "redis://127.0.0.1:6379/0"
//! [config]
//! status_key = "Clients_status"         # the defaults are seed 001's keys
//! deactivated_key = "deactivate_clients"
//! blocked_key = "blocked_clients"
//! info = true
//! ```

use serde::Deserialize;
use std::collections::BTreeMap;
use wasmon_sdk::redis::{self, Value};
use wasmon_sdk::{Collector, Error, Sample};

/// `[config]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    /// The hash of client id → status.
    #[serde(default = "status_key")]
    status_key: String,
    /// The deactivated clients.
    #[serde(default = "deactivated_key")]
    deactivated_key: String,
    /// The blocked clients.
    #[serde(default = "blocked_key")]
    blocked_key: String,
    /// Whether to report `INFO` basics.
    #[serde(default = "yes")]
    info: bool,
}

fn status_key() -> String {
    "Clients_status".into()
}
fn deactivated_key() -> String {
    "deactivate_clients".into()
}
fn blocked_key() -> String {
    "blocked_clients".into()
}
fn yes() -> bool {
    true
}

/// Statuses always reported, 0 when no client has them (seed 001's snapshot).
const STATUSES: [&str; 2] = ["active", "paused"];
/// Most distinct statuses reported; the rest count under `other`.
const MAX_STATUSES: usize = 32;

/// The collector.
pub struct RedisCollector {
    config: Config,
}

impl Collector for RedisCollector {
    fn init() -> Result<Self, Error> {
        Ok(RedisCollector {
            config: wasmon_sdk::config::get()?,
        })
    }

    fn collect(&mut self) -> Result<Vec<Sample>, Error> {
        let mut counts: BTreeMap<String, u64> =
            STATUSES.iter().map(|s| (s.to_string(), 0)).collect();
        let statuses = redis::command("HGETALL", &[self.config.status_key.as_str()])?;
        for (_, status) in statuses.pairs() {
            let status = normalize(&status);
            let known = counts.len() < MAX_STATUSES || counts.contains_key(&status);
            let key = if known { status } else { "other".to_string() };
            *counts.entry(key).or_default() += 1;
        }
        counts.insert("deactivated".into(), size(&self.config.deactivated_key)?);
        counts.insert("blocked".into(), size(&self.config.blocked_key)?);
        let mut samples: Vec<Sample> = counts
            .into_iter()
            .map(|(state, n)| {
                Sample::gauge("fr_gateway_clients", n as f64)
                    .with_label("state", state)
                    .with_help("Gateway clients by state (seed 001's Clients_status, deactivate_clients, blocked_clients).")
            })
            .collect();
        if self.config.info {
            samples.extend(info()?);
        }
        Ok(samples)
    }
}

/// A status as a label value: trimmed, lower case, `unknown` when empty.
fn normalize(status: &str) -> String {
    let status = status.trim().to_ascii_lowercase();
    if status.is_empty() {
        "unknown".into()
    } else {
        status
    }
}

/// How many members `key` holds, whatever its type (0 when missing).
fn size(key: &str) -> Result<u64, Error> {
    let kind = redis::command("TYPE", &[key])?
        .as_text()
        .unwrap_or_default();
    let command = match kind.as_str() {
        "hash" => "HLEN",
        "set" => "SCARD",
        "list" => "LLEN",
        "zset" => "ZCARD",
        "stream" => "XLEN",
        "none" => return Ok(0),
        "string" => {
            // A counter kept as a number.
            let value = redis::command("GET", &[key])?;
            return Ok(value.as_int().map_or(0, |n| n.max(0) as u64));
        }
        other => {
            return Err(Error::new(format!(
                "{key}: unexpected Redis type {other:?}"
            )));
        }
    };
    let n = redis::command(command, &[key])?.as_int().unwrap_or(0);
    Ok(n.max(0) as u64)
}

/// `INFO` basics.
fn info() -> Result<Vec<Sample>, Error> {
    let text = match redis::command::<&str>("INFO", &[])? {
        Value::Data(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
        other => other.as_text().unwrap_or_default(),
    };
    let fields: BTreeMap<&str, &str> = text
        .lines()
        .filter_map(|line| line.trim().split_once(':'))
        .collect();
    let number = |key: &str| fields.get(key).and_then(|v| v.trim().parse::<f64>().ok());
    let mut samples = Vec::new();
    for (field, name, help, counter) in [
        (
            "connected_clients",
            "redis_connected_clients",
            "Clients connected to Redis.",
            false,
        ),
        (
            "used_memory",
            "redis_memory_used_bytes",
            "Memory Redis uses.",
            false,
        ),
        (
            "total_commands_processed",
            "redis_commands_processed",
            "Commands Redis processed.",
            true,
        ),
        (
            "instantaneous_ops_per_sec",
            "redis_instantaneous_ops_per_second",
            "Redis commands per second.",
            false,
        ),
    ] {
        if let Some(value) = number(field) {
            let sample = if counter {
                Sample::counter(name, value)
            } else {
                Sample::gauge(name, value)
            };
            samples.push(sample.with_help(help));
        }
    }
    // Keyspace: `db0:keys=3,expires=0,avg_ttl=0`.
    for (db, value) in fields.iter().filter(|(k, _)| k.starts_with("db")) {
        let keys = value
            .split(',')
            .find_map(|kv| kv.strip_prefix("keys="))
            .and_then(|n| n.parse::<f64>().ok());
        if let Some(keys) = keys {
            samples.push(
                Sample::gauge("redis_keyspace_keys", keys)
                    .with_label("db", *db)
                    .with_help("Keys per Redis database."),
            );
        }
    }
    Ok(samples)
}

wasmon_sdk::export_collector!(RedisCollector);
