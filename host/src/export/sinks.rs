//! The sinks' delivery: `GET /api/sinks` (each sink's backlog, the age of
//! its oldest undelivered event, dead letters, last error, next retry), `GET
//! /api/sinks/{name}/dead-letters` (paged, newest first) and `POST
//! /api/sinks/{name}/dead-letters/replay` (admin): delivers those batches
//! again to that sink only, ahead of its live backlog, with their original
//! ids, and removes them once delivered.

use super::error::{ApiError, ApiResult};
use super::openapi::tag;
use crate::events::DeadLetter;
use crate::plugins::{ErrorInfo, PluginKind, Status, valid_name};
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::{Json, middleware};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

type AppRef = State<Arc<AppState>>;

/// Most dead letters one page holds.
const MAX_LIMIT: usize = 100;
/// Dead letters per page when `limit` is not given.
const DEFAULT_LIMIT: usize = 20;

/// The routes of this file; the replay is an admin route.
pub(super) fn routes(state: Arc<AppState>) -> OpenApiRouter<Arc<AppState>> {
    let admin =
        OpenApiRouter::new()
            .routes(routes!(replay))
            .route_layer(middleware::from_fn_with_state(
                state,
                super::auth::require_admin,
            ));
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(dead_letters))
        .merge(admin)
}

/// One sink's delivery.
#[derive(Serialize, ToSchema)]
struct SinkView {
    /// The sink plugin.
    name: String,
    /// Its plugin status.
    status: Status,
    /// Events it has yet to acknowledge (`wasmon_sink_backlog_events`).
    backlog: u64,
    /// Age of the oldest of them; 0 when none waits
    /// (`wasmon_sink_oldest_undelivered_age_seconds`).
    oldest_undelivered_age_seconds: f64,
    /// Whether it is behind by more than `sinks.lag_degraded`.
    behind: bool,
    /// Dead-lettered batches held.
    dead_letters: usize,
    /// Events in them.
    dead_letter_events: usize,
    /// Dead-lettered batches queued for replay.
    replaying: usize,
    /// Its last error (a `delivery` failure, a fault).
    last_error: Option<ErrorInfo>,
    /// When its next retry is due (RFC 3339), while it waits after a failure.
    retry_at: Option<String>,
}

/// `GET /api/sinks`.
#[derive(Serialize, ToSchema)]
struct SinkList {
    /// Every sink plugin, by name.
    sinks: Vec<SinkView>,
}

/// `GET /api/sinks`.
#[utoipa::path(
    get,
    path = "/api/sinks",
    tag = tag::PLUGINS,
    summary = "Every sink's delivery",
    description = "Each sink plugin: its backlog and the age of its oldest undelivered event (`behind` past `sinks.lag_degraded`), its dead letters, its last error and, while it waits after a failure, when it retries (`retry_at`, which honours a target's `Retry-After`).",
    responses((status = 200, description = "Every sink", body = SinkList))
)]
async fn list(State(state): AppRef) -> Json<SinkList> {
    let now = crate::time::now_ms();
    let lag_degraded = state.config.sinks.lag_degraded.as_secs_f64();
    let letters = state.plugins.dead_letters();
    let sinks = state
        .plugins
        .list()
        .into_iter()
        .filter(|p| p.kind == Some(PluginKind::Sink))
        .map(|p| {
            let (backlog, age) = state.plugins.sink_lag(&p.name, now);
            let summary = letters.summary(&p.name);
            SinkView {
                status: p.status,
                backlog,
                oldest_undelivered_age_seconds: age,
                behind: age > lag_degraded,
                dead_letters: summary.batches,
                dead_letter_events: summary.events,
                replaying: summary.replaying,
                last_error: p.last_error,
                retry_at: summary
                    .retry_at_ms
                    .filter(|t| *t > now)
                    .map(crate::time::rfc3339),
                name: p.name,
            }
        })
        .collect();
    Json(SinkList { sinks })
}

/// 400 for a bad name, 404 for a name that is neither a sink plugin nor
/// holds dead letters.
fn checked_sink(state: &AppState, name: &str) -> ApiResult<()> {
    if !valid_name(name) {
        return Err(ApiError::bad_request(format!(
            "invalid sink name {name:?}: it must match ^[a-zA-Z][a-zA-Z0-9_]*$ (at most 64 characters)"
        )));
    }
    let is_sink = state
        .plugins
        .get(name)
        .is_some_and(|p| p.kind == Some(PluginKind::Sink));
    if is_sink || state.plugins.dead_letters().knows(name) {
        Ok(())
    } else {
        Err(ApiError::not_found(format!("sink {name:?} not found")))
    }
}

/// The page's query.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct PageQuery {
    /// Dead letters per page, 1 to 100 (default 20).
    limit: Option<usize>,
    /// Dead letters to skip (default 0).
    offset: Option<usize>,
}

/// `GET /api/sinks/{name}/dead-letters`.
#[derive(Serialize, ToSchema)]
struct DeadLetterPage {
    /// The sink.
    sink: String,
    /// Dead-lettered batches it holds.
    total: usize,
    /// Batches skipped.
    offset: usize,
    /// The page size asked for.
    limit: usize,
    /// Whether more follow.
    has_more: bool,
    /// Newest first, each with its events.
    dead_letters: Vec<DeadLetter>,
}

/// `GET /api/sinks/{name}/dead-letters`.
#[utoipa::path(
    get,
    path = "/api/sinks/{name}/dead-letters",
    tag = tag::PLUGINS,
    summary = "A sink's dead letters, newest first",
    description = "The batches the sink failed to deliver permanently (a 4xx other than 408/429, say), each with its events and their original ids, the error and the time. Kept in the data directory, at most `sinks.dead_letter_max_batches` batches and `sinks.dead_letter_max_bytes` per sink (the oldest dropped past them, counted in `wasmon_sink_dead_letters_dropped_total`).",
    params(
        ("name" = String, Path, description = "The sink: `^[a-zA-Z][a-zA-Z0-9_]*$` (400 otherwise)", pattern = r"^[a-zA-Z][a-zA-Z0-9_]*$"),
        PageQuery,
    ),
    responses(
        (status = 200, description = "A page of dead letters", body = DeadLetterPage),
        (status = 400, description = "Invalid name, limit or offset", body = ApiError),
        (status = 404, description = "No such sink", body = ApiError),
    )
)]
async fn dead_letters(
    State(state): AppRef,
    Path(name): Path<String>,
    query: Result<Query<PageQuery>, QueryRejection>,
) -> ApiResult<Json<DeadLetterPage>> {
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    checked_sink(&state, &name)?;
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::bad_request(format!(
            "limit must be 1 to {MAX_LIMIT}, got {limit}"
        )));
    }
    let offset = query.offset.unwrap_or(0);
    let (page, total) = state.plugins.dead_letters().page(&name, offset, limit);
    Ok(Json(DeadLetterPage {
        has_more: offset.saturating_add(page.len()) < total,
        sink: name,
        total,
        offset,
        limit,
        dead_letters: page.iter().map(|l| (**l).clone()).collect(),
    }))
}

/// The body of a replay: which batches; all when absent.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct ReplayRequest {
    /// The dead letters' ids; every batch the sink holds when absent.
    #[serde(default)]
    ids: Option<Vec<u64>>,
}

/// The answer to a replay.
#[derive(Serialize, ToSchema)]
struct ReplayAnswer {
    /// The sink.
    sink: String,
    /// The ids queued, oldest first.
    queued: Vec<u64>,
}

/// `POST /api/sinks/{name}/dead-letters/replay`.
#[utoipa::path(
    post,
    path = "/api/sinks/{name}/dead-letters/replay",
    tag = tag::PLUGINS,
    summary = "Replay dead letters to their sink",
    description = "Queues the batches (`ids`, or all when the body is empty or has no `ids`) for delivery to this sink only, ahead of its live backlog, with their original event ids; each leaves the dead-letter store once delivered, and stays if it fails permanently again. Answers at once (202); `GET /api/sinks` shows `replaying`.",
    params(("name" = String, Path, description = "The sink: `^[a-zA-Z][a-zA-Z0-9_]*$` (400 otherwise)", pattern = r"^[a-zA-Z][a-zA-Z0-9_]*$")),
    request_body(content = Option<ReplayRequest>, description = "Which batches; optional", content_type = "application/json"),
    security(("admin_token" = [])),
    responses(
        (status = 202, description = "Queued", body = ReplayAnswer),
        (status = 400, description = "Invalid name or body", body = ApiError),
        (status = 401, description = "Missing or wrong admin token", body = ApiError),
        (status = 403, description = "No admin token is set and the client is not on loopback", body = ApiError),
        (status = 404, description = "No such sink, or no dead letter with one of the ids", body = ApiError),
    )
)]
async fn replay(
    State(state): AppRef,
    Path(name): Path<String>,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<ReplayAnswer>)> {
    checked_sink(&state, &name)?;
    let request = if body.iter().all(u8::is_ascii_whitespace) {
        ReplayRequest { ids: None }
    } else {
        serde_json::from_slice::<ReplayRequest>(&body)
            .map_err(|e| ApiError::bad_request(format!("invalid replay request: {e}")))?
    };
    let queued = state
        .plugins
        .replay_dead_letters(&name, request.ids.as_deref())
        .map_err(|id| {
            ApiError::not_found(format!("sink {name:?} holds no dead letter with id {id}"))
        })?;
    Ok((
        StatusCode::ACCEPTED,
        Json(ReplayAnswer { sink: name, queued }),
    ))
}
