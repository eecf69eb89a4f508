//! The HTTP surface: `/metrics`, the REST API under `/api`, health, and the
//! seed paths.
//!
//! Invariants: only this module knows HTTP; only [`prometheus`] knows the
//! Prometheus text format. The store holds an opaque per-series
//! [`ExportCache`](crate::store::ExportCache) slot that [`prometheus`] fills
//! with each series' rendered `name{labels} ` prefix.

mod auth;
mod breakers;
mod dashboard;
mod error;
mod health;
mod history;
mod ingest;
mod openapi;
pub mod prometheus;
mod rest;
mod samplers;
pub mod server;
mod supervisor;
mod system;
mod ws;

pub use auth::admin_is_loopback_only;
pub use error::{ApiError, ApiResult};

use crate::app::AppState;
use axum::Router;
use std::sync::Arc;

/// The whole HTTP application; tests call it without a socket.
pub fn router(state: Arc<AppState>) -> Router {
    rest::routes(state)
}
