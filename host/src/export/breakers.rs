//! Seed 004's circuit-breaker routes: `GET /api/system/circuit-breakers`
//! lists every plugin data source's breaker (`state`, `failure_count`,
//! `last_failure`, `next_attempt`), `POST
//! /api/system/circuit-breakers/{name}/reset` (admin) closes one.

use super::error::{ApiError, ApiResult};
use super::openapi::tag;
use crate::plugins::{BreakerState, BreakerView};
use crate::state::AppState;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::{Json, middleware};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

type AppRef = State<Arc<AppState>>;

/// The routes of this file; the reset is an admin route.
pub(super) fn routes(state: Arc<AppState>) -> OpenApiRouter<Arc<AppState>> {
    let admin =
        OpenApiRouter::new()
            .routes(routes!(reset))
            .route_layer(middleware::from_fn_with_state(
                state,
                super::auth::require_admin,
            ));
    OpenApiRouter::new().routes(routes!(list)).merge(admin)
}

/// The list: seed 004's summary (`total`, `open`, `half_open`, `closed`,
/// `breakers` name → state), then every breaker in full (`items`).
#[derive(Serialize, ToSchema)]
#[schema(as = BreakerList)]
struct List {
    /// Breakers.
    total: usize,
    /// Of which open.
    open: usize,
    /// Of which half-open.
    half_open: usize,
    /// Of which closed.
    closed: usize,
    /// Each breaker's state, by name (`plugin/source`).
    breakers: BTreeMap<String, BreakerState>,
    /// Every breaker in full.
    items: Vec<BreakerView>,
}

/// `GET /api/system/circuit-breakers`.
#[utoipa::path(
    get,
    path = "/api/system/circuit-breakers",
    tag = tag::SYSTEM,
    summary = "Every plugin data source's circuit breaker (seed 004)",
    description = "Seed 004's summary (`total`, `open`, `half_open`, `closed`, `breakers`: name → state), then every breaker with `state`, `failure_count`, `last_failure` and `next_attempt` (`items`).",
    responses((status = 200, description = "The breakers", body = List))
)]
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
#[utoipa::path(
    post,
    path = "/api/system/circuit-breakers/{name}/reset",
    tag = tag::SYSTEM,
    summary = "Close a circuit breaker",
    params(("name" = String, Path, description = "`plugin/source`, URL-encoded (`probe%2Fredis`) or with the `/` written as `:` (`probe:redis`)")),
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "The breaker, closed", body = BreakerView),
        (status = 401, description = "Missing or wrong admin token", body = ApiError),
        (status = 403, description = "No admin token is set and the client is not on loopback", body = ApiError),
        (status = 404, description = "No such breaker", body = ApiError),
    )
)]
async fn reset(State(state): AppRef, Path(name): Path<String>) -> ApiResult<Json<BreakerView>> {
    let name = name.replacen(':', "/", 1);
    state.plugins.reset_breaker(&name).map(Json).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no circuit breaker {name:?}"),
        )
    })
}
