//! Seed 004's circuit-breaker routes: `GET /api/system/circuit-breakers`
//! lists every plugin data source's breaker (`state`, `failure_count`,
//! `last_failure`, `next_attempt`), `POST
//! /api/system/circuit-breakers/{name}/reset` (admin) closes one.

use super::error::{ApiError, ApiResult};
use crate::app::AppState;
use crate::plugins::{BreakerState, BreakerView};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router, middleware};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;

type AppRef = State<Arc<AppState>>;

/// The routes of this file; the reset is an admin route.
pub(super) fn routes(state: Arc<AppState>) -> Router<Arc<AppState>> {
    let admin = Router::new()
        .route("/api/system/circuit-breakers/{name}/reset", post(reset))
        .route_layer(middleware::from_fn_with_state(
            state,
            super::auth::require_admin,
        ));
    Router::new()
        .route("/api/system/circuit-breakers", get(list))
        .merge(admin)
}

/// The list: seed 004's summary (`total`, `open`, `half_open`, `closed`,
/// `breakers` name → state), then every breaker in full (`items`).
#[derive(Serialize)]
struct List {
    total: usize,
    open: usize,
    half_open: usize,
    closed: usize,
    breakers: BTreeMap<String, BreakerState>,
    items: Vec<BreakerView>,
}

async fn list(State(state): AppRef) -> Json<List> {
    let items = state.plugins.breakers().list();
    let count = |s: BreakerState| items.iter().filter(|b| b.state == s).count();
    Json(List {
        total: items.len(),
        open: count(BreakerState::Open),
        half_open: count(BreakerState::HalfOpen),
        closed: count(BreakerState::Closed),
        breakers: items.iter().map(|b| (b.name.clone(), b.state)).collect(),
        items,
    })
}

/// `name` is `plugin/source`: the route takes it URL-encoded (`probe%2Fredis`)
/// or with the `/` written as `:` (`probe:redis`).
async fn reset(State(state): AppRef, Path(name): Path<String>) -> ApiResult<Json<BreakerView>> {
    let name = name.replacen(':', "/", 1);
    state.plugins.reset_breaker(&name).map(Json).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no circuit breaker {name:?}"),
        )
    })
}
