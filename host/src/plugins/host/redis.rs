//! `wasmon:plugin/redis`: declared in the contract; this host version grants it
//! to no plugin, so every call is a policy violation answered `not-granted`.

use crate::plugins::bindings::redis;
use crate::plugins::context::PluginCtx;

impl redis::Host for PluginCtx {
    async fn command(
        &mut self,
        name: String,
        _args: Vec<Vec<u8>>,
    ) -> wasmtime::Result<Result<redis::Reply, redis::RedisError>> {
        let why = self.deny(
            "redis",
            format!("redis command {name:?}: this host grants no redis access"),
        );
        Ok(Err(redis::RedisError::NotGranted(why)))
    }
}
