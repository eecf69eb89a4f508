//! The host side of the capabilities every plugin imports: one small `impl
//! Host` per WIT interface that is not a grantable capability (those live in
//! `capabilities/`), and `v0_1`, the 0.1.0 imports delegating to 0.2.0.

mod logging;
mod v0_1;

use super::bindings::types;
use super::context::PluginCtx;

impl types::Host for PluginCtx {}
