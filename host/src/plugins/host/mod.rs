//! The host side of the capabilities every plugin imports: one small `impl
//! Host` per WIT interface, limits checked at the top of each function.

mod http;
mod logging;
mod rabbitmq;
mod redis;

use super::bindings::types;
use super::context::PluginCtx;

impl types::Host for PluginCtx {}
