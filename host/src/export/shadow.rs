//! Shadow rules (issue 14) over HTTP: `GET /api/plugins/{name}/shadow` (the
//! shadow and its alert diff), and the admin routes `POST` (install: the
//! body is a component, `application/wasm`, or a manifest,
//! `application/toml`) and `DELETE` on it, `POST .../shadow/promote`,
//! `POST /api/plugins/{name}/rollback` and `POST
//! /api/plugins/{name}/backtest`. The work is done by `crate::plugins`
//! (`shadow`), on the plugin runtime.

use super::error::{ApiError, ApiResult};
use super::openapi::tag;
use crate::plugins::{
    BacktestLimits, BacktestReport, BacktestRequest, BacktestVersion, LoadOutcome, PluginView,
    ShadowError, ShadowView, valid_name,
};
use crate::state::AppState;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::{Json, middleware};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

type AppRef = State<Arc<AppState>>;

/// The largest component or manifest an upload may carry.
const MAX_UPLOAD: usize = 64 * 1024 * 1024;

/// The routes of this file; every write is an admin route.
pub(super) fn routes(state: Arc<AppState>) -> OpenApiRouter<Arc<AppState>> {
    let admin = OpenApiRouter::new()
        .routes(routes!(install_shadow, discard_shadow))
        .routes(routes!(promote))
        .routes(routes!(rollback))
        .routes(routes!(backtest))
        .layer(DefaultBodyLimit::max(MAX_UPLOAD))
        .route_layer(middleware::from_fn_with_state(
            state,
            super::auth::require_admin,
        ));
    OpenApiRouter::new()
        .routes(routes!(get_shadow))
        .merge(admin)
}

fn checked_name(name: &str) -> ApiResult<()> {
    if valid_name(name) {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "invalid plugin name {name:?}: it must match ^[a-zA-Z][a-zA-Z0-9_]*$ (at most 64 characters)"
        )))
    }
}

impl From<ShadowError> for ApiError {
    fn from(error: ShadowError) -> Self {
        let status = match &error {
            ShadowError::NotFound(_) => StatusCode::NOT_FOUND,
            ShadowError::Conflict(_) | ShadowError::Busy(_) => StatusCode::CONFLICT,
            ShadowError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ShadowError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ShadowError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, error.to_string())
    }
}

/// How an admin route refuses a client (`auth::require_admin`), declared
/// once for every admin route of this file.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code, reason = "documentation only: the handlers answer ApiError")]
enum AdminRefusals {
    /// Missing or wrong admin token
    #[response(status = 401)]
    Unauthorized(ApiError),
    /// No admin token is set and the client is not on loopback
    #[response(status = 403)]
    Forbidden(ApiError),
}

const NAME_PARAM: &str = "The rule's name: `^[a-zA-Z][a-zA-Z0-9_]*$` (400 otherwise)";

/// `GET /api/plugins/{name}/shadow`.
#[utoipa::path(
    get,
    path = "/api/plugins/{name}/shadow",
    tag = tag::PLUGINS,
    summary = "A rule's shadow version and its alert diff",
    description = "The shadow (generation, sha256, whether its component and manifest are its own or the serving one's, status, since, faults) and the alerts it and the serving version raised since it started: `only_shadow`, `only_serving`, and `different` (another worst severity, or first seen more than one evaluation interval apart), each with per-side first/last seen. Alerts both raised alike are only counted (`counts.same`).",
    params(("name" = String, Path, description = NAME_PARAM)),
    responses(
        (status = 200, description = "The shadow", body = ShadowView),
        (status = 400, description = "Invalid name", body = ApiError),
        (status = 404, description = "No such rule, or it has no shadow", body = ApiError),
        (status = 409, description = "The plugin is not a rule", body = ApiError),
    )
)]
async fn get_shadow(State(state): AppRef, Path(name): Path<String>) -> ApiResult<Json<ShadowView>> {
    checked_name(&name)?;
    Ok(Json(state.plugins.shadow(&name)?))
}

/// `POST /api/plugins/{name}/shadow`.
#[utoipa::path(
    post,
    path = "/api/plugins/{name}/shadow",
    tag = tag::PLUGINS,
    summary = "Install a shadow of a rule",
    description = "The body is the shadow's component (`Content-Type: application/wasm`), written to `NAME.shadow.wasm`, or its manifest (`application/toml`), written to `NAME.shadow.toml`; the other file is left as it is (without one, the shadow runs the serving component, or under the serving manifest). The shadow is built like any reload (compiled off the hot path, world and manifest checked, `init` run) before it replaces the previous shadow; a bad upload changes nothing. It evaluates the same input as the serving version from the next evaluation; its alerts reach no sink.",
    params(("name" = String, Path, description = NAME_PARAM)),
    request_body(content = Vec<u8>, description = "A component (`application/wasm`) or a manifest (`application/toml`)", content_type = "application/wasm"),
    security(("admin_token" = [])),
    responses(
        (status = 201, description = "The shadow runs", body = ShadowView),
        (status = 400, description = "Invalid name, empty body, or a manifest that is not UTF-8", body = ApiError),
        AdminRefusals,
        (status = 404, description = "No such rule", body = ApiError),
        (status = 409, description = "The plugin is not a rule, or the shadow is not a rule (a collector as the shadow of a rule)", body = ApiError),
        (status = 413, description = "Larger than 64 MiB", body = ApiError),
        (status = 415, description = "Neither application/wasm nor application/toml", body = ApiError),
        (status = 422, description = "The component or manifest does not build; the detail says why", body = ApiError),
    )
)]
async fn install_shadow(
    State(state): AppRef,
    Path(name): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> ApiResult<(StatusCode, Json<ShadowView>)> {
    checked_name(&name)?;
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_default();
    if body.is_empty() {
        return Err(ApiError::bad_request(
            "the body is empty: send a component or a manifest",
        ));
    }
    let (component, manifest) = match content_type.as_str() {
        "application/wasm" => (Some(body.to_vec()), None),
        "application/toml" => {
            let text = String::from_utf8(body.to_vec())
                .map_err(|e| ApiError::bad_request(format!("the manifest is not UTF-8: {e}")))?;
            (None, Some(text))
        }
        other => {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!(
                    "content type {other:?}: send application/wasm (a component) or application/toml (a manifest)"
                ),
            ));
        }
    };
    let view = state
        .plugins
        .install_shadow(&name, component, manifest)
        .await?;
    Ok((StatusCode::CREATED, Json(view)))
}

/// `DELETE /api/plugins/{name}/shadow`.
#[derive(Serialize, ToSchema)]
struct Discarded {
    /// Always `true` (errors answer `{"detail"}`).
    discarded: bool,
}

/// `DELETE /api/plugins/{name}/shadow`.
#[utoipa::path(
    delete,
    path = "/api/plugins/{name}/shadow",
    tag = tag::PLUGINS,
    summary = "Discard a rule's shadow",
    description = "Stops the shadow and removes `NAME.shadow.wasm` and `NAME.shadow.toml`; the serving version is untouched.",
    params(("name" = String, Path, description = NAME_PARAM)),
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "Discarded", body = Discarded),
        (status = 400, description = "Invalid name", body = ApiError),
        AdminRefusals,
        (status = 404, description = "No such rule, or it has no shadow", body = ApiError),
        (status = 409, description = "The plugin is not a rule", body = ApiError),
    )
)]
async fn discard_shadow(
    State(state): AppRef,
    Path(name): Path<String>,
) -> ApiResult<Json<Discarded>> {
    checked_name(&name)?;
    state.plugins.discard_shadow(&name).await?;
    Ok(Json(Discarded { discarded: true }))
}

/// What promote and rollback did.
#[derive(Serialize, ToSchema)]
struct Swapped {
    /// What the reload of the rule did.
    outcome: LoadOutcome,
    /// The rule afterwards.
    plugin: Option<PluginView>,
}

fn swapped(state: &AppState, name: &str, outcome: LoadOutcome) -> ApiResult<Json<Swapped>> {
    if let LoadOutcome::Failed {
        error,
        kept_generation,
    } = &outcome
    {
        let kept =
            kept_generation.map_or(String::new(), |g| format!("; generation {g} keeps serving"));
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("reload of {name:?} failed: {error}{kept}"),
        ));
    }
    Ok(Json(Swapped {
        outcome,
        plugin: state.plugins.get(name),
    }))
}

/// `POST /api/plugins/{name}/shadow/promote`.
#[utoipa::path(
    post,
    path = "/api/plugins/{name}/shadow/promote",
    tag = tag::PLUGINS,
    summary = "Promote a rule's shadow to serving",
    description = "On disk: `NAME.wasm`/`NAME.toml` are kept as `NAME.prev.wasm`/`NAME.prev.toml` (one step of history), the shadow's own files are renamed over them, and the rule reloads through the normal path: its key-value and alert state carry over, a call in flight finishes on the old instance. Survives a restart. The shadow is gone afterwards.",
    params(("name" = String, Path, description = NAME_PARAM)),
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "The shadow serves", body = Swapped),
        (status = 400, description = "Invalid name", body = ApiError),
        AdminRefusals,
        (status = 404, description = "No such rule, or it has no shadow", body = ApiError),
        (status = 409, description = "The plugin is not a rule", body = ApiError),
        (status = 422, description = "The reload failed; the previous version keeps serving", body = ApiError),
    )
)]
async fn promote(State(state): AppRef, Path(name): Path<String>) -> ApiResult<Json<Swapped>> {
    checked_name(&name)?;
    let outcome = state.plugins.promote_shadow(&name).await?;
    swapped(&state, &name, outcome)
}

/// `POST /api/plugins/{name}/rollback`.
#[utoipa::path(
    post,
    path = "/api/plugins/{name}/rollback",
    tag = tag::PLUGINS,
    summary = "Return a rule to its previous version",
    description = "Swaps `NAME.prev.wasm`/`NAME.prev.toml` (written by a promote) with `NAME.wasm`/`NAME.toml` and reloads: one step of history, so a second rollback undoes the first.",
    params(("name" = String, Path, description = NAME_PARAM)),
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "The previous version serves", body = Swapped),
        (status = 400, description = "Invalid name", body = ApiError),
        AdminRefusals,
        (status = 404, description = "No such rule", body = ApiError),
        (status = 409, description = "Not a rule, or no previous version", body = ApiError),
        (status = 422, description = "The reload failed", body = ApiError),
    )
)]
async fn rollback(State(state): AppRef, Path(name): Path<String>) -> ApiResult<Json<Swapped>> {
    checked_name(&name)?;
    let outcome = state.plugins.rollback(&name).await?;
    swapped(&state, &name, outcome)
}

fn duration(key: &str, text: &str) -> ApiResult<std::time::Duration> {
    crate::units::parse_duration(text)
        .map_err(|e| ApiError::bad_request(format!("invalid `{key}` {text:?}: {e}")))
}

/// `POST /api/plugins/{name}/backtest`.
#[utoipa::path(
    post,
    path = "/api/plugins/{name}/backtest",
    tag = tag::PLUGINS,
    summary = "Replay the store's history through a rule version",
    description = "One evaluation per step over the last `window`, in a fresh instance with a fresh state, on the plugin runtime, into an alert state machine of its own (nothing reaches a sink or `/api/alerts`). `rule-input` is rebuilt from the history buckets; `unreconstructed` says what history cannot give (services; events older than the event log's memory). The answer is the timeline of alerts the version would have raised and resolved, at step times, with the serving version's real alert changes over the window beside it. Bounded by `[alerts.backtest]` (`timeout`: a partial answer with `complete` false; `max_points`, `max_steps`: 400); one backtest at a time (409).",
    params(
        ("name" = String, Path, description = NAME_PARAM),
        ("window" = Option<String>, Query, description = "How far back, e.g. `60m`: at most `store.history_window` (its default)", example = "60m"),
        ("step" = Option<String>, Query, description = "One evaluation per step, e.g. `10s` (the default: `store.history_resolution`); at least 1s", example = "10s"),
        ("version" = Option<String>, Query, description = "`serving` (default) or `shadow`", example = "shadow"),
    ),
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "The timeline", body = BacktestReport),
        (status = 400, description = "Invalid name, a window beyond `store.history_window` or zero, a bad step or version, or more than `max_steps` steps or `max_points` points", body = ApiError),
        AdminRefusals,
        (status = 404, description = "No such rule, or no shadow for `version=shadow`", body = ApiError),
        (status = 409, description = "Not a rule, or a backtest is already running", body = ApiError),
        (status = 422, description = "The version's instance could not start", body = ApiError),
    )
)]
async fn backtest(
    State(state): AppRef,
    Path(name): Path<String>,
    Query(params): Query<BTreeMap<String, String>>,
) -> ApiResult<Json<BacktestReport>> {
    checked_name(&name)?;
    if let Some(unknown) = params
        .keys()
        .find(|k| !matches!(k.as_str(), "window" | "step" | "version"))
    {
        return Err(ApiError::bad_request(format!(
            "unknown parameter {unknown:?}: window, step and version are"
        )));
    }
    let (resolution, history_window) = state.store.history_limits();
    let window = match params.get("window") {
        Some(text) => duration("window", text)?,
        None => history_window,
    };
    let step = match params.get("step") {
        Some(text) => duration("step", text)?,
        None => resolution,
    };
    let version = match params.get("version").map(String::as_str) {
        None | Some("serving") => BacktestVersion::Serving,
        Some("shadow") => BacktestVersion::Shadow,
        Some(other) => {
            return Err(ApiError::bad_request(format!(
                "invalid `version` {other:?}: serving or shadow"
            )));
        }
    };
    let config = &state.config.alerts.backtest;
    let limits = BacktestLimits {
        timeout: config.timeout,
        max_points: config.max_points,
        max_steps: config.max_steps,
    };
    let report = state
        .plugins
        .backtest(
            &name,
            BacktestRequest {
                window,
                step,
                version,
            },
            limits,
        )
        .await?;
    Ok(Json(report))
}
