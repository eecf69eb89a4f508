//! `GET /api/system/health/full`: seed 004's comprehensive health, computed
//! by [`crate::health`] (the same rules as `/readyz` and `/ws`): 200 while
//! healthy or degraded, 503 while a critical component is down.

use super::openapi::tag;
use crate::health::{Overall, Report};
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The routes of this file, merged into the REST router.
pub(super) fn routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new().routes(routes!(full))
}

/// `GET /api/system/health/full`.
#[utoipa::path(
    get,
    path = "/api/system/health/full",
    tag = tag::SYSTEM,
    summary = "Comprehensive health of every component (seed 004)",
    description = "`status` (`healthy`, `degraded` when a component that is not critical is down, `unhealthy` when a critical one is), `ready`, `message`, then every component: the native samplers, every plugin (status, generation, faults, last error), each plugin data source with its circuit state, the event log (dropped events) and each sink's backlog and lag; `circuit_breakers` (seed 004's summary) and `down`. A component is critical by its plugin manifest's `critical`, `sampling.critical` or `gpu.critical`; a data source is as critical as its plugin.",
    responses(
        (status = 200, description = "Healthy or degraded", body = Report),
        (status = 503, description = "Unhealthy: a critical component is down; the same document, with `detail`", body = Report),
    )
)]
async fn full(State(state): State<Arc<AppState>>) -> Response {
    let report = Report::of(&state);
    let code = if report.status == Overall::Unhealthy {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    (code, Json(report)).into_response()
}
