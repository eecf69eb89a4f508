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
mod shadow;
mod sinks;
mod supervisor;
mod system;
mod upload;
mod ws;

pub use auth::admin_is_loopback_only;
pub use error::{ApiError, ApiResult};

use crate::state::AppState;
use axum::Router;
use axum::extract::Request;
use axum::http::StatusCode;
use std::sync::Arc;

/// The whole HTTP application, composed of each area's router, and the
/// OpenAPI document describing it (published once for `/openapi.json`);
/// tests call it without a socket.
pub fn router(state: Arc<AppState>) -> Router {
    let (router, api) = openapi::base()
        .merge(rest::routes(state.clone()))
        .merge(ingest::routes(state.clone()))
        .merge(samplers::routes())
        .merge(history::routes())
        .merge(system::routes())
        .merge(health::routes())
        .merge(breakers::routes(state.clone()))
        .merge(supervisor::routes(state.clone()))
        .merge(shadow::routes(state.clone()))
        .merge(upload::routes(state.clone()))
        .merge(sinks::routes(state.clone()))
        .merge(ws::routes(state.clone()))
        .merge(openapi::routes())
        .merge(dashboard::routes())
        .fallback(not_found)
        .split_for_parts();
    openapi::publish(api);
    router
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

async fn not_found(request: Request) -> ApiError {
    ApiError::not_found(format!(
        "no route for {} {}",
        request.method(),
        request.uri().path()
    ))
}

async fn method_not_allowed(request: Request) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        format!(
            "method {} is not allowed on {}",
            request.method(),
            request.uri().path()
        ),
    )
}
