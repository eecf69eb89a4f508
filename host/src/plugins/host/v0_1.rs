//! The imports of `wasmon:plugin@0.1.0`, for components built against it:
//! each delegates to the 0.2.0 implementation, converting what changed
//! (the `redis` reply is flattened the 0.1.0 way) and what bindgen generated
//! twice (the interfaces' own records and enums).

use crate::plugins::bindings::v0_1;
use crate::plugins::bindings::{host, http, rabbitmq, redis, types};
use crate::plugins::context::PluginCtx;

impl v0_1::host::Host for PluginCtx {
    fn log(&mut self, level: v0_1::host::Level, message: String) -> wasmtime::Result<()> {
        let level = match level {
            v0_1::host::Level::Trace => host::Level::Trace,
            v0_1::host::Level::Debug => host::Level::Debug,
            v0_1::host::Level::Info => host::Level::Info,
            v0_1::host::Level::Warn => host::Level::Warn,
            v0_1::host::Level::Error => host::Level::Error,
        };
        host::Host::log(self, level, message)
    }

    fn plugin_name(&mut self) -> wasmtime::Result<String> {
        host::Host::plugin_name(self)
    }

    fn config_json(&mut self) -> wasmtime::Result<String> {
        host::Host::config_json(self)
    }

    fn config_get(&mut self, key: String) -> wasmtime::Result<Option<String>> {
        host::Host::config_get(self, key)
    }

    fn state_get(&mut self, key: String) -> wasmtime::Result<Option<Vec<u8>>> {
        host::Host::state_get(self, key)
    }

    fn state_set(
        &mut self,
        key: String,
        value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), types::Error>> {
        host::Host::state_set(self, key, value)
    }

    fn state_delete(&mut self, key: String) -> wasmtime::Result<()> {
        host::Host::state_delete(self, key)
    }

    fn state_keys(&mut self) -> wasmtime::Result<Vec<String>> {
        host::Host::state_keys(self)
    }
}

impl v0_1::http::Host for PluginCtx {
    async fn send(
        &mut self,
        request: v0_1::http::Request,
    ) -> wasmtime::Result<Result<v0_1::http::Response, v0_1::http::HttpError>> {
        use v0_1::http::Method as Old;
        let method = match request.method {
            Old::Get => http::Method::Get,
            Old::Head => http::Method::Head,
            Old::Post => http::Method::Post,
            Old::Put => http::Method::Put,
            Old::Patch => http::Method::Patch,
            Old::Delete => http::Method::Delete,
            Old::Options => http::Method::Options,
        };
        let request = http::Request {
            method,
            url: request.url,
            headers: request.headers,
            body: request.body,
            timeout_ms: request.timeout_ms,
        };
        Ok(match http::Host::send(self, request).await? {
            Ok(r) => Ok(v0_1::http::Response {
                status: r.status,
                headers: r.headers,
                body: r.body,
                elapsed_us: r.elapsed_us,
            }),
            Err(e) => Err(match e {
                http::HttpError::NotGranted(m) => v0_1::http::HttpError::NotGranted(m),
                http::HttpError::InvalidRequest(m) => v0_1::http::HttpError::InvalidRequest(m),
                http::HttpError::Timeout => v0_1::http::HttpError::Timeout,
                http::HttpError::Transport(m) => v0_1::http::HttpError::Transport(m),
                http::HttpError::TooLarge(n) => v0_1::http::HttpError::TooLarge(n),
            }),
        })
    }
}

impl v0_1::rabbitmq::Host for PluginCtx {
    async fn publish(
        &mut self,
        exchange: String,
        routing_key: String,
        headers: Vec<types::Label>,
        body: Vec<u8>,
    ) -> wasmtime::Result<Result<(), v0_1::rabbitmq::AmqpError>> {
        Ok(
            rabbitmq::Host::publish(self, exchange, routing_key, headers, body)
                .await?
                .map_err(|e| match e {
                    rabbitmq::AmqpError::NotGranted(m) => v0_1::rabbitmq::AmqpError::NotGranted(m),
                    rabbitmq::AmqpError::Connection(m) => v0_1::rabbitmq::AmqpError::Connection(m),
                    rabbitmq::AmqpError::Rejected(m) => v0_1::rabbitmq::AmqpError::Rejected(m),
                }),
        )
    }
}

impl v0_1::redis::Host for PluginCtx {
    async fn command(
        &mut self,
        name: String,
        args: Vec<Vec<u8>>,
    ) -> wasmtime::Result<Result<v0_1::redis::Reply, v0_1::redis::RedisError>> {
        use v0_1::redis::RedisError as Old;
        Ok(match redis::Host::command(self, name, args).await? {
            Ok(reply) => Ok(flatten(&reply)),
            Err(e) => Err(match e {
                redis::RedisError::NotGranted(m) => Old::NotGranted(m),
                redis::RedisError::ForbiddenCommand(m) => Old::ForbiddenCommand(m),
                redis::RedisError::Connection(m) => Old::Connection(m),
                redis::RedisError::Server(m) => Old::Server(m),
                redis::RedisError::TooLarge(max) => {
                    Old::Connection(format!("the reply exceeded max_reply_bytes ({max} bytes)"))
                }
            }),
        })
    }
}

/// A 0.2.0 reply tree in 0.1.0's shape: a scalar as is, an aggregate as
/// the flat list of its leaves in order (a map as key, value, key, ...).
fn flatten(reply: &redis::Reply) -> v0_1::redis::Reply {
    use v0_1::redis::Reply as Old;
    match reply.nodes.first() {
        None | Some(redis::Node::Nil) => Old::Nil,
        Some(redis::Node::Int(i)) => Old::Int(*i),
        Some(redis::Node::Data(d)) => Old::Data(d.clone()),
        Some(redis::Node::Status(s)) => Old::Status(s.clone()),
        Some(redis::Node::Double(d)) => Old::Data(d.to_string().into_bytes()),
        Some(redis::Node::Boolean(b)) => Old::Int(i64::from(*b)),
        Some(redis::Node::Array(_) | redis::Node::Pairs(_)) => {
            let mut out = Vec::new();
            leaves(&reply.nodes, 0, &mut out);
            Old::Array(out)
        }
    }
}

/// Appends the leaves under node `at` in order. Children always have a
/// greater index than their parent, so this terminates on any input.
fn leaves(nodes: &[redis::Node], at: usize, out: &mut Vec<v0_1::redis::Scalar>) {
    use v0_1::redis::Scalar;
    let child = |i: u32, out: &mut Vec<Scalar>| {
        let i = i as usize;
        if i > at {
            leaves(nodes, i, out);
        }
    };
    match nodes.get(at) {
        None | Some(redis::Node::Nil) => out.push(Scalar::Nil),
        Some(redis::Node::Int(i)) => out.push(Scalar::Int(*i)),
        Some(redis::Node::Data(d)) => out.push(Scalar::Data(d.clone())),
        Some(redis::Node::Status(s)) => out.push(Scalar::Data(s.clone().into_bytes())),
        Some(redis::Node::Double(d)) => out.push(Scalar::Data(d.to_string().into_bytes())),
        Some(redis::Node::Boolean(b)) => out.push(Scalar::Int(i64::from(*b))),
        Some(redis::Node::Array(items)) => {
            for i in items {
                child(*i, out);
            }
        }
        Some(redis::Node::Pairs(entries)) => {
            for (k, v) in entries {
                child(*k, out);
                child(*v, out);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_nested_reply_flattens_in_order() {
        use super::redis::Node;
        let reply = redis::Reply {
            nodes: vec![
                Node::Array(vec![1, 4]),
                Node::Array(vec![2, 3]),
                Node::Data(b"1-0".to_vec()),
                Node::Int(7),
                Node::Nil,
            ],
        };
        let v0_1::redis::Reply::Array(flat) = flatten(&reply) else {
            panic!("not an array");
        };
        use v0_1::redis::Scalar;
        assert!(
            matches!(flat.as_slice(), [Scalar::Data(d), Scalar::Int(7), Scalar::Nil] if d == b"1-0"),
            "{flat:?}"
        );
    }
}
