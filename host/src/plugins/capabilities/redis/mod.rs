//! The `redis` capability (`wasmon:plugin/redis`): commands against the one
//! server the manifest names, read-only unless writes are granted by name.
//!
//! - `grant`: `[capabilities.redis]` and the command policy.
//! - here: the per-generation connection (one multiplexed connection,
//!   opened on the first command and reconnected with jittered exponential
//!   backoff by `redis::aio::ConnectionManager`), the `impl Host`, and the
//!   reply as a flat node tree (0.2.0).
//!
//! A command not granted answers `forbidden-command`, a policy violation
//! like `not-granted`: both end the call as a `capability` fault. Errors name
//! the plugin, the capability and the server (its URL without the password).
//! Calls are counted in `wasmon_plugin_capability_calls_total{capability="redis"}`.

mod grant;

pub use grant::{RedisGrant, Section};

use super::{Capability, KeyError, Services};
use crate::plugins::bindings::redis as wit;
use crate::plugins::breaker::Breaker;
use crate::plugins::context::PluginCtx;
use crate::telemetry::Telemetry;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// The `redis` capability.
pub struct Redis;

impl Capability for Redis {
    const NAME: &'static str = "redis";
    type Section = Section;
    type Grant = RedisGrant;
    type Shared = ();
    type State = State;

    fn grant(section: Section) -> Result<RedisGrant, KeyError> {
        section.resolve()
    }

    fn shared() -> anyhow::Result<()> {
        Ok(())
    }

    fn state(
        plugin: &Arc<str>,
        grant: Option<&RedisGrant>,
        _shared: &(),
        services: &Services<'_>,
    ) -> State {
        State {
            plugin: plugin.clone(),
            connection: OnceLock::new(),
            telemetry: services.telemetry.clone(),
            breaker: grant.map(|_| services.breakers.get(plugin, "redis", services.breaker)),
        }
    }
}

/// One generation's connection: made on the first command, shared by every
/// instance (restart) of the generation, dropped with it.
pub struct State {
    plugin: Arc<str>,
    connection: OnceLock<Result<ConnectionManager, String>>,
    telemetry: Arc<Telemetry>,
    /// The `PLUGIN/redis` breaker (when granted): connection failures and
    /// timeouts trip it; while open, commands answer `connection` at once.
    breaker: Option<Arc<Breaker>>,
}

impl State {
    /// The connection (lazy: connecting happens on the first command).
    fn connection(&self, grant: &RedisGrant) -> Result<ConnectionManager, String> {
        self.connection.get_or_init(|| connect(grant)).clone()
    }

    fn count(&self, result: &str) {
        self.telemetry
            .plugin_capability_calls
            .with_label_values(&[&*self.plugin, "redis", result])
            .inc();
    }
}

/// A lazy connection manager for `grant`'s server.
fn connect(grant: &RedisGrant) -> Result<ConnectionManager, String> {
    let mut info = redis::IntoConnectionInfo::into_connection_info(grant.url.0.as_str())
        .map_err(|e| format!("invalid URL {}: {e}", grant.server))?;
    if let Some(password) = &grant.password {
        let settings = info.redis_settings().clone().set_password(&password.0);
        info = info.set_redis_settings(settings);
    }
    let client = redis::Client::open(info).map_err(|e| format!("{}: {e}", grant.server))?;
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(grant.timeout))
        .set_response_timeout(Some(grant.timeout))
        .set_min_delay(Duration::from_millis(100))
        .set_max_delay(Duration::from_secs(10))
        .set_number_of_retries(2);
    ConnectionManager::new_lazy_with_config(client, config)
        .map_err(|e| format!("{}: {e}", grant.server))
}

impl wit::Host for PluginCtx {
    async fn command(
        &mut self,
        name: String,
        args: Vec<Vec<u8>>,
    ) -> wasmtime::Result<Result<wit::Reply, wit::RedisError>> {
        let env = self.env.clone();
        let plugin = &*env.name;
        let Some(grant) = env.manifest.capabilities.redis.as_ref() else {
            let why = self.deny(
                "redis",
                format!("redis command {name:?}: the manifest has no [capabilities.redis]"),
            );
            return Ok(Err(wit::RedisError::NotGranted(why)));
        };
        let state = &env.capabilities.redis;
        let allowed = match grant.check(&name, &args) {
            Ok(allowed) => allowed,
            Err(why) => {
                state.count("forbidden");
                let why = self.deny("redis", format!("{why} (server {})", grant.server));
                return Ok(Err(wit::RedisError::ForbiddenCommand(why)));
            }
        };
        if let Some(Err(why)) = state.breaker.as_ref().map(|b| b.admit()) {
            state.count("breaker_open");
            return Ok(Err(wit::RedisError::Connection(format!(
                "plugin {plugin}: redis {} on {}: {why}",
                allowed.name, grant.server
            ))));
        }
        let trip = |error: &str| {
            if let Some(b) = &state.breaker {
                b.failure(error);
            }
        };
        let failure = |what: &str, e: String| {
            format!(
                "plugin {plugin}: redis {} on {}: {what}: {e}",
                allowed.name, grant.server
            )
        };
        let connection = match state.connection(grant) {
            Ok(c) => c,
            Err(e) => {
                state.count("connection");
                let message = failure("connecting", e);
                trip(&message);
                return Ok(Err(wit::RedisError::Connection(message)));
            }
        };
        let mut cmd = redis::Cmd::new();
        for word in allowed.name.split(' ') {
            cmd.arg(word);
        }
        for arg in args.iter().skip(allowed.args_taken) {
            cmd.arg(arg.as_slice());
        }
        let timeout = grant.timeout.min(self.call.remaining());
        let mut connection = connection;
        let sent = tokio::time::timeout(timeout, connection.send_packed_command(&cmd)).await;
        let healthy = || {
            if let Some(b) = &state.breaker {
                b.success();
            }
        };
        Ok(match sent {
            Err(_) => {
                state.count("timeout");
                let message = failure(
                    "timed out",
                    format!("no reply within {}", humantime::format_duration(timeout)),
                );
                trip(&message);
                Err(wit::RedisError::Connection(message))
            }
            Ok(Err(e)) if is_server_error(&e) => {
                // The server answered: the source is up.
                healthy();
                state.count("server");
                Err(wit::RedisError::Server(e.to_string()))
            }
            Ok(Err(e)) => {
                state.count("connection");
                let message = failure("failed", e.to_string());
                trip(&message);
                Err(wit::RedisError::Connection(message))
            }
            // The connection hands a top-level error reply back as a value:
            // it is the command's error, not a status the plugin could
            // mistake for success (nested ones, e.g. in EXEC, stay nodes).
            Ok(Ok(redis::Value::ServerError(e))) => {
                healthy();
                state.count("server");
                Err(wit::RedisError::Server(e.to_string()))
            }
            Ok(Ok(value)) => {
                healthy();
                match nodes(value, grant.max_reply_bytes.0) {
                    Some(reply) => {
                        state.count("ok");
                        Ok(reply)
                    }
                    None => {
                        state.count("too_large");
                        Err(wit::RedisError::TooLarge(grant.max_reply_bytes.0))
                    }
                }
            }
        })
    }
}

/// Whether the server answered with an error (as opposed to the connection failing).
fn is_server_error(e: &redis::RedisError) -> bool {
    !(e.is_io_error() || e.is_timeout() || e.is_connection_dropped() || e.is_connection_refusal())
        && matches!(
            e.kind(),
            redis::ErrorKind::Server(_) | redis::ErrorKind::Extension
        )
}

/// A reply as the 0.2.0 node list (`nodes[0]` the root, children after
/// their parent), or `None` when its data exceeds `max` bytes.
pub fn nodes(value: redis::Value, max: u64) -> Option<wit::Reply> {
    let mut out = Vec::new();
    let mut budget = max;
    push(value, &mut out, &mut budget)?;
    Some(wit::Reply { nodes: out })
}

/// Appends `value` (and its children after it); returns its index.
fn push(value: redis::Value, out: &mut Vec<wit::Node>, budget: &mut u64) -> Option<u32> {
    use redis::Value as V;
    let at = out.len();
    let index = u32::try_from(at).ok()?;
    // Every node costs a little, so a reply of many empty items is bounded too.
    let mut spend = |n: usize| -> Option<()> {
        *budget = budget.checked_sub(n as u64 + 8)?;
        Some(())
    };
    let node = match value {
        V::Nil => {
            spend(0)?;
            wit::Node::Nil
        }
        V::Int(i) => {
            spend(0)?;
            wit::Node::Int(i)
        }
        V::BulkString(d) => {
            spend(d.len())?;
            wit::Node::Data(d)
        }
        V::SimpleString(s) => {
            spend(s.len())?;
            wit::Node::Status(s)
        }
        V::Okay => {
            spend(2)?;
            wit::Node::Status("OK".into())
        }
        V::Double(d) => {
            spend(0)?;
            wit::Node::Double(d)
        }
        V::Boolean(b) => {
            spend(0)?;
            wit::Node::Boolean(b)
        }
        V::VerbatimString { text, .. } => {
            spend(text.len())?;
            wit::Node::Data(text.into_bytes())
        }
        V::BigNumber(n) => {
            let text = format!("{n:?}");
            spend(text.len())?;
            wit::Node::Data(text.into_bytes())
        }
        V::ServerError(e) => {
            let text = e.to_string();
            spend(text.len())?;
            wit::Node::Status(text)
        }
        V::Attribute { data, .. } => return push(*data, out, budget),
        V::Array(items) | V::Set(items) | V::Push { data: items, .. } => {
            spend(items.len() * 4)?;
            out.push(wit::Node::Array(Vec::new()));
            let mut children = Vec::with_capacity(items.len());
            for item in items {
                children.push(push(item, out, budget)?);
            }
            out[at] = wit::Node::Array(children);
            return Some(index);
        }
        V::Map(entries) => {
            spend(entries.len() * 8)?;
            out.push(wit::Node::Pairs(Vec::new()));
            let mut children = Vec::with_capacity(entries.len());
            for (k, v) in entries {
                let k = push(k, out, budget)?;
                let v = push(v, out, budget)?;
                children.push((k, v));
            }
            out[at] = wit::Node::Pairs(children);
            return Some(index);
        }
        // A kind of value added to a later `redis` crate: as its debug text.
        other => {
            let text = format!("{other:?}");
            spend(text.len())?;
            wit::Node::Data(text.into_bytes())
        }
    };
    out.push(node);
    Some(index)
}

#[cfg(test)]
mod tests {
    use super::*;
    use redis::Value as V;

    #[test]
    fn a_nested_reply_keeps_its_structure() {
        // XRANGE: [[id, [field, value]]]
        let value = V::Array(vec![V::Array(vec![
            V::BulkString(b"1-0".to_vec()),
            V::Array(vec![
                V::BulkString(b"f".to_vec()),
                V::BulkString(b"v".to_vec()),
            ]),
        ])]);
        let reply = nodes(value, 1024).unwrap();
        let n = &reply.nodes;
        assert!(matches!(&n[0], wit::Node::Array(c) if c == &[1]));
        assert!(matches!(&n[1], wit::Node::Array(c) if c == &[2, 3]));
        assert!(matches!(&n[2], wit::Node::Data(d) if d == b"1-0"));
        assert!(matches!(&n[3], wit::Node::Array(c) if c == &[4, 5]));
        assert!(matches!(&n[5], wit::Node::Data(d) if d == b"v"));
    }

    #[test]
    fn a_reply_over_the_cap_is_refused() {
        let big = V::Array(vec![
            V::BulkString(vec![0; 600]),
            V::BulkString(vec![0; 600]),
        ]);
        assert!(nodes(big.clone(), 1000).is_none());
        assert!(nodes(big, 2000).is_some());
    }
}
