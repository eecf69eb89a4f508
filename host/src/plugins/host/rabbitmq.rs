//! `wasmon:plugin/rabbitmq`: declared in the contract; this host version grants
//! it to no plugin, so every call is a policy violation answered `not-granted`.

use crate::plugins::bindings::{rabbitmq, types};
use crate::plugins::context::PluginCtx;

impl rabbitmq::Host for PluginCtx {
    async fn publish(
        &mut self,
        exchange: String,
        _routing_key: String,
        _headers: Vec<types::Label>,
        _body: Vec<u8>,
    ) -> wasmtime::Result<Result<(), rabbitmq::AmqpError>> {
        let why = self.deny(
            "rabbitmq",
            format!("publish to exchange {exchange:?}: this host grants no rabbitmq access"),
        );
        Ok(Err(rabbitmq::AmqpError::NotGranted(why)))
    }
}
