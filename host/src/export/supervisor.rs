//! Seed 004's supervisor routes over the plugin supervisor
//! (`crate::plugins`'s `supervisor`) and the native samplers:
//! `GET /api/system/supervisor` (and `/status`), `POST
//! /api/system/supervisor/workers/{name}/start|stop|restart`, `POST
//! /api/system/supervisor/reset/{name}` and `GET
//! /api/system/supervisor/restart-history`. Every POST is an admin route.
//!
//! Workers are every plugin plus the native samplers. A plugin's status is
//! seed 004's word: `running`, `stopped`, `crashed`, `restarting` (also while
//! its first version loads: `loading`), `failed` (also when no version of it
//! loads: `invalid`); `plugin_status` keeps the plugin's own word. The native
//! samplers are listed (`running`, or `failed` when not up; `stopped` when
//! disabled by config) but cannot be controlled: 409 with a detail.

use super::error::{ApiError, ApiResult};
use super::openapi::tag;
use crate::plugins::{Action, Control, PluginView, Status, WorkerRecord, WorkerTimes, valid_name};
use crate::state::AppState;
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

/// Most restart-history entries one page holds.
const MAX_LIMIT: usize = 100;
/// Entries per page when `limit` is not given.
const DEFAULT_LIMIT: usize = 50;

/// The routes of this file; every POST is an admin route.
pub(super) fn routes(state: Arc<AppState>) -> OpenApiRouter<Arc<AppState>> {
    let admin = OpenApiRouter::new()
        .routes(routes!(start))
        .routes(routes!(stop))
        .routes(routes!(restart))
        .routes(routes!(reset))
        .route_layer(middleware::from_fn_with_state(
            state,
            super::auth::require_admin,
        ));
    OpenApiRouter::new()
        .routes(routes!(supervisor))
        .routes(routes!(supervisor_status))
        .routes(routes!(history))
        .merge(admin)
}

/// One supervised worker: a plugin or a native sampler.
#[derive(Serialize, ToSchema)]
struct Worker {
    /// Its name.
    name: String,
    /// `plugin` or `sampler`.
    kind: &'static str,
    /// `running`, `stopped`, `crashed`, `restarting` or `failed`.
    status: &'static str,
    /// A plugin's own status (`loading`, `invalid`, ... as `GET /api/plugins` says).
    plugin_status: Option<Status>,
    /// Restarts after faults.
    restart_count: u64,
    /// Faults in a row that make it `failed` (plugins).
    max_restarts: Option<u32>,
    /// When it last started serving (RFC 3339).
    last_started_at: Option<String>,
    /// When it last faulted (RFC 3339).
    last_crashed_at: Option<String>,
    /// The last error.
    error: Option<String>,
    /// Whether its failure makes the host unhealthy.
    critical: bool,
}

/// `GET /api/system/supervisor`.
#[derive(Serialize, ToSchema)]
struct SupervisorStatus {
    /// Always `true`: the supervisor runs with the host.
    running: bool,
    /// Workers listed.
    worker_count: usize,
    /// Every plugin, then every native sampler.
    workers: Vec<Worker>,
    /// Now (RFC 3339).
    timestamp: String,
}

/// Seed 004's word for a plugin's status.
fn seed_status(status: Status) -> &'static str {
    match status {
        Status::Running => "running",
        Status::Stopped => "stopped",
        Status::Crashed => "crashed",
        Status::Restarting | Status::Loading => "restarting",
        Status::Failed | Status::Invalid => "failed",
    }
}

fn plugin_worker(p: PluginView, times: WorkerTimes) -> Worker {
    Worker {
        status: seed_status(p.status),
        plugin_status: Some(p.status),
        restart_count: p.restarts,
        max_restarts: p.max_restarts,
        last_started_at: times.last_started_at,
        last_crashed_at: times.last_crashed_at,
        error: p.last_error.or(p.last_reload_error).map(|e| e.message),
        critical: p.critical,
        kind: "plugin",
        name: p.name,
    }
}

fn status_of(state: &AppState) -> SupervisorStatus {
    let mut workers: Vec<Worker> = state
        .plugins
        .list()
        .into_iter()
        .map(|p| {
            let times = state.plugins.worker_times(&p.name).unwrap_or_default();
            plugin_worker(p, times)
        })
        .collect();
    for s in state.samplers.list() {
        let status = match (s.enabled, s.up) {
            (false, _) => "stopped",
            (true, true) => "running",
            (true, false) => "failed",
        };
        workers.push(Worker {
            name: s.name,
            kind: "sampler",
            status,
            plugin_status: None,
            restart_count: 0,
            max_restarts: None,
            last_started_at: None,
            last_crashed_at: None,
            error: s.reason,
            critical: false,
        });
    }
    SupervisorStatus {
        running: true,
        worker_count: workers.len(),
        workers,
        timestamp: crate::time::rfc3339(crate::time::now_ms()),
    }
}

/// `GET /api/system/supervisor`.
#[utoipa::path(
    get,
    path = "/api/system/supervisor",
    tag = tag::SYSTEM,
    summary = "The supervisor and every worker (seed 004)",
    description = "Workers are every plugin and the native samplers. Plugin statuses map to seed 004's words: `loading` shows as `restarting`, `invalid` as `failed` (`plugin_status` keeps the plugin's own word). Samplers are `running`, `failed` (not up) or `stopped` (disabled by config).",
    responses((status = 200, description = "The supervisor", body = SupervisorStatus))
)]
async fn supervisor(State(state): AppRef) -> Json<SupervisorStatus> {
    Json(status_of(&state))
}

/// `GET /api/system/supervisor/status`: the same document.
#[utoipa::path(
    get,
    path = "/api/system/supervisor/status",
    tag = tag::SYSTEM,
    summary = "The supervisor and every worker (alias)",
    responses((status = 200, description = "The supervisor", body = SupervisorStatus))
)]
async fn supervisor_status(State(state): AppRef) -> Json<SupervisorStatus> {
    Json(status_of(&state))
}

/// What a control route did.
#[derive(Serialize, ToSchema)]
struct ControlAnswer {
    /// Always `true` (errors answer `{"detail"}`).
    success: bool,
    /// What was done.
    message: String,
    /// The worker.
    worker_name: String,
    /// The worker afterwards.
    worker: Option<PluginView>,
}

/// 400 for a bad name, 409 for a sampler, 404 for an unknown worker.
fn checked_worker(state: &AppState, name: &str) -> ApiResult<()> {
    if !valid_name(name) {
        return Err(ApiError::bad_request(format!(
            "invalid worker name {name:?}: it must match ^[a-zA-Z][a-zA-Z0-9_]*$ (at most 64 characters)"
        )));
    }
    if state.plugins.get(name).is_some() {
        return Ok(());
    }
    if state.samplers.get(name).is_some() {
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!(
                "worker {name:?} is a native sampler: native samplers cannot be stopped, started, restarted or reset (turn them off in the configuration)"
            ),
        ));
    }
    Err(ApiError::not_found(format!("worker {name:?} not found")))
}

async fn control(state: &AppState, name: &str, action: Action) -> ApiResult<Json<ControlAnswer>> {
    checked_worker(state, name)?;
    let done = state
        .plugins
        .control(name, action)
        .await
        .ok_or_else(|| ApiError::not_found(format!("worker {name:?} not found")))?
        .map_err(|e| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("{action:?} of {name:?} failed: {e:#}"),
            )
        })?;
    let verb = match action {
        Action::Stop => "stopped",
        Action::Start => "started",
        Action::Restart => "restarted",
    };
    let message = match done {
        Control::Done => format!("Worker '{name}' {verb} successfully"),
        Control::AlreadyDone => format!("Worker '{name}' was already {verb}"),
    };
    Ok(Json(ControlAnswer {
        success: true,
        message,
        worker_name: name.to_string(),
        worker: state.plugins.get(name),
    }))
}

/// `POST /api/system/supervisor/workers/{name}/start`.
#[utoipa::path(
    post,
    path = "/api/system/supervisor/workers/{name}/start",
    tag = tag::SYSTEM,
    summary = "Start a stopped plugin",
    description = "A new instance of its serving version; its key-value state is kept. Starting a plugin that is not stopped does nothing (`message` says so).",
    params(("name" = String, Path, description = "The worker: `^[a-zA-Z][a-zA-Z0-9_]*$` (400 otherwise)", pattern = r"^[a-zA-Z][a-zA-Z0-9_]*$")),
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "Started", body = ControlAnswer),
        (status = 400, description = "Invalid name", body = ApiError),
        (status = 401, description = "Missing or wrong admin token", body = ApiError),
        (status = 403, description = "No admin token is set and the client is not on loopback", body = ApiError),
        (status = 404, description = "No such worker", body = ApiError),
        (status = 409, description = "A native sampler: cannot be controlled", body = ApiError),
    )
)]
async fn start(State(state): AppRef, Path(name): Path<String>) -> ApiResult<Json<ControlAnswer>> {
    control(&state, &name, Action::Start).await
}

/// `POST /api/system/supervisor/workers/{name}/stop`.
#[utoipa::path(
    post,
    path = "/api/system/supervisor/workers/{name}/stop",
    tag = tag::SYSTEM,
    summary = "Stop a plugin",
    description = "It is not called until started again; its queue consumers stop, a collector's series go stale as when it is deleted, a rule's alerts resolve, a sink keeps its place in the event log. It stays stopped across hot reloads and host restarts (the stopped set is kept in `storage.data_dir`).",
    params(("name" = String, Path, description = "The worker: `^[a-zA-Z][a-zA-Z0-9_]*$` (400 otherwise)", pattern = r"^[a-zA-Z][a-zA-Z0-9_]*$")),
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "Stopped", body = ControlAnswer),
        (status = 400, description = "Invalid name", body = ApiError),
        (status = 401, description = "Missing or wrong admin token", body = ApiError),
        (status = 403, description = "No admin token is set and the client is not on loopback", body = ApiError),
        (status = 404, description = "No such worker", body = ApiError),
        (status = 409, description = "A native sampler: cannot be controlled", body = ApiError),
    )
)]
async fn stop(State(state): AppRef, Path(name): Path<String>) -> ApiResult<Json<ControlAnswer>> {
    control(&state, &name, Action::Stop).await
}

/// `POST /api/system/supervisor/workers/{name}/restart`.
#[utoipa::path(
    post,
    path = "/api/system/supervisor/workers/{name}/restart",
    tag = tag::SYSTEM,
    summary = "Restart a plugin",
    description = "A new instance of its serving version now (its state kept); a stopped plugin is started.",
    params(("name" = String, Path, description = "The worker: `^[a-zA-Z][a-zA-Z0-9_]*$` (400 otherwise)", pattern = r"^[a-zA-Z][a-zA-Z0-9_]*$")),
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "Restarted", body = ControlAnswer),
        (status = 400, description = "Invalid name", body = ApiError),
        (status = 401, description = "Missing or wrong admin token", body = ApiError),
        (status = 403, description = "No admin token is set and the client is not on loopback", body = ApiError),
        (status = 404, description = "No such worker", body = ApiError),
        (status = 409, description = "A native sampler: cannot be controlled", body = ApiError),
    )
)]
async fn restart(State(state): AppRef, Path(name): Path<String>) -> ApiResult<Json<ControlAnswer>> {
    control(&state, &name, Action::Restart).await
}

/// `POST /api/system/supervisor/reset/{name}`: the same as `POST /api/plugins/{name}/reset`.
#[utoipa::path(
    post,
    path = "/api/system/supervisor/reset/{name}",
    tag = tag::SYSTEM,
    summary = "Reset a worker's restart count",
    description = "Forgets the faults in a row, so a `failed` plugin is restarted at once (the same as `POST /api/plugins/{name}/reset`).",
    params(("name" = String, Path, description = "The worker: `^[a-zA-Z][a-zA-Z0-9_]*$` (400 otherwise)", pattern = r"^[a-zA-Z][a-zA-Z0-9_]*$")),
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "Reset", body = ControlAnswer),
        (status = 400, description = "Invalid name", body = ApiError),
        (status = 401, description = "Missing or wrong admin token", body = ApiError),
        (status = 403, description = "No admin token is set and the client is not on loopback", body = ApiError),
        (status = 404, description = "No such worker", body = ApiError),
        (status = 409, description = "A native sampler: cannot be controlled", body = ApiError),
    )
)]
async fn reset(State(state): AppRef, Path(name): Path<String>) -> ApiResult<Json<ControlAnswer>> {
    checked_worker(&state, &name)?;
    let worker = state
        .plugins
        .reset(&name)
        .ok_or_else(|| ApiError::not_found(format!("worker {name:?} not found")))?;
    Ok(Json(ControlAnswer {
        success: true,
        message: format!("Worker '{name}' restart count reset"),
        worker_name: name,
        worker: Some(worker),
    }))
}

/// The restart history's query.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
struct HistoryQuery {
    /// Only this worker's entries.
    worker_name: Option<String>,
    /// Entries per page, 1 to 100 (default 50).
    limit: Option<usize>,
    /// Entries to skip (default 0).
    offset: Option<usize>,
}

/// The page.
#[derive(Serialize, ToSchema)]
struct Pagination {
    /// Entries in all.
    total: usize,
    /// The page size asked for.
    limit: usize,
    /// Entries skipped.
    offset: usize,
    /// Entries on this page.
    items_count: usize,
    /// Whether more follow.
    has_more: bool,
}

/// `GET /api/system/supervisor/restart-history`.
#[derive(Serialize, ToSchema)]
struct History {
    /// Newest first.
    items: Vec<WorkerRecord>,
    /// Where this page is.
    pagination: Pagination,
}

/// `GET /api/system/supervisor/restart-history`.
#[utoipa::path(
    get,
    path = "/api/system/supervisor/restart-history",
    tag = tag::SYSTEM,
    summary = "Every plugin's restart history, newest first (seed 004)",
    description = "Entries are `crashed` (a fault; a restart is scheduled), `success` (restarted after a fault), `failed` (too many faults in a row) and `manual` (an operator's stop, start, restart or reset; `action` says which). The last 100 per plugin are kept, in memory.",
    params(HistoryQuery),
    responses(
        (status = 200, description = "A page of the history", body = History),
        (status = 400, description = "Invalid worker name, limit or offset", body = ApiError),
    )
)]
async fn history(
    State(state): AppRef,
    query: Result<Query<HistoryQuery>, QueryRejection>,
) -> ApiResult<Json<History>> {
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::bad_request(format!(
            "limit must be 1 to {MAX_LIMIT}, got {limit}"
        )));
    }
    let offset = query.offset.unwrap_or(0);
    if let Some(name) = &query.worker_name
        && !valid_name(name)
    {
        return Err(ApiError::bad_request(format!(
            "invalid worker name {name:?}: it must match ^[a-zA-Z][a-zA-Z0-9_]*$ (at most 64 characters)"
        )));
    }
    let all = state
        .plugins
        .restart_history_all(query.worker_name.as_deref());
    let total = all.len();
    let items: Vec<_> = all.into_iter().skip(offset).take(limit).collect();
    let items_count = items.len();
    Ok(Json(History {
        items,
        pagination: Pagination {
            total,
            limit,
            offset,
            items_count,
            has_more: offset.saturating_add(items_count) < total,
        },
    }))
}
