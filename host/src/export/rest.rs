//! The REST API: plugins, alerts, health and `/metrics`; ingestion routes
//! are in `export::ingest`.

use super::error::{ApiError, ApiResult};
use crate::app::AppState;
use crate::plugins::{LoadOutcome, valid_name};
use axum::extract::{Path, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use std::sync::Arc;

type AppRef = State<Arc<AppState>>;

/// Every route.
pub(super) fn routes(state: Arc<AppState>) -> Router {
    let admin = Router::new()
        .route("/api/plugins/reload", post(reload_all))
        .route("/api/plugins/{name}/reload", post(reload))
        .route("/api/plugins/{name}/reset", post(reset))
        .route("/api/plugins/{name}/state", get(plugin_state))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_admin));
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/api/plugins", get(list_plugins))
        .merge(super::samplers::routes())
        .route("/api/plugins/{name}", get(get_plugin))
        .route("/api/plugins/{name}/restart-history", get(restart_history))
        .route("/api/alerts", get(alerts))
        .merge(admin)
        .merge(super::ingest::routes(state.clone()))
        .fallback(not_found)
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

/// `server.admin_token`, when set, guards every route that changes something.
pub(super) async fn require_admin(State(state): AppRef, request: Request, next: Next) -> Response {
    if let Err(e) = check_bearer(&request, state.config.server.admin_token.as_deref()) {
        return e.into_response();
    }
    next.run(request).await
}

/// Checks `Authorization: Bearer <token>` in constant time when a `token` is
/// configured (an absent or empty one guards nothing).
pub(super) fn check_bearer(request: &Request, token: Option<&str>) -> ApiResult<()> {
    let Some(token) = token.filter(|t| !t.is_empty()) else {
        return Ok(());
    };
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| ApiError::unauthorized("missing bearer token"))?;
    if constant_time_eq(given.trim().as_bytes(), token.as_bytes()) {
        Ok(())
    } else {
        Err(ApiError::unauthorized("invalid bearer token"))
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn metrics(State(state): AppRef) -> Response {
    let stats = state.store.stats();
    let t = &state.telemetry;
    let gauge = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
    t.store_series
        .with_label_values(&["live"])
        .set(gauge(stats.live_series));
    t.store_series
        .with_label_values(&["held"])
        .set(gauge(stats.held_series));
    t.store_memory.set(gauge(stats.approx_bytes));
    let mut body = Vec::with_capacity(64 * 1024);
    super::prometheus::render(
        &state.store,
        &state.ingest.services(),
        &state.telemetry.registry,
        &mut body,
    );
    (
        [(header::CONTENT_TYPE, super::prometheus::CONTENT_TYPE)],
        body,
    )
        .into_response()
}

async fn healthz() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

async fn readyz(State(state): AppRef) -> ApiResult<Json<serde_json::Value>> {
    if state.plugins.is_ready() {
        Ok(Json(json!({ "ready": true })))
    } else {
        Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "plugins are still loading",
        ))
    }
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

async fn list_plugins(State(state): AppRef) -> Json<serde_json::Value> {
    Json(json!({ "plugins": state.plugins.list() }))
}

async fn get_plugin(State(state): AppRef, Path(name): Path<String>) -> ApiResult<Response> {
    checked_name(&name)?;
    let view = state
        .plugins
        .get(&name)
        .ok_or_else(|| ApiError::not_found(format!("plugin {name:?} not found")))?;
    Ok(Json(view).into_response())
}

async fn restart_history(State(state): AppRef, Path(name): Path<String>) -> ApiResult<Response> {
    checked_name(&name)?;
    let items = state
        .plugins
        .restart_history(&name)
        .ok_or_else(|| ApiError::not_found(format!("plugin {name:?} not found")))?;
    Ok(Json(json!({ "items": items })).into_response())
}

async fn reload(State(state): AppRef, Path(name): Path<String>) -> ApiResult<Response> {
    checked_name(&name)?;
    let outcome = state.plugins.reload(&name, true).await;
    let status = match &outcome {
        LoadOutcome::Loaded { .. } | LoadOutcome::Unchanged { .. } | LoadOutcome::Unloaded => {
            StatusCode::OK
        }
        LoadOutcome::Absent => {
            return Err(ApiError::not_found(format!(
                "plugin {name:?} not found: no {name}.wasm in the plugin directory"
            )));
        }
        LoadOutcome::Failed {
            error,
            kept_generation,
        } => {
            let kept = match kept_generation {
                Some(g) => format!("; generation {g} keeps serving"),
                None => String::new(),
            };
            return Err(ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                format!("reload of {name:?} failed: {error}{kept}"),
            ));
        }
    };
    let view = state.plugins.get(&name);
    Ok((status, Json(json!({ "outcome": outcome, "plugin": view }))).into_response())
}

async fn reload_all(State(state): AppRef) -> Json<serde_json::Value> {
    let outcomes: Vec<_> = state
        .plugins
        .reload_all()
        .await
        .into_iter()
        .map(|(name, outcome)| json!({ "name": name, "outcome": outcome }))
        .collect();
    Json(json!({ "plugins": outcomes }))
}

async fn reset(State(state): AppRef, Path(name): Path<String>) -> ApiResult<Response> {
    checked_name(&name)?;
    let view = state
        .plugins
        .reset(&name)
        .ok_or_else(|| ApiError::not_found(format!("plugin {name:?} not found")))?;
    Ok(Json(json!({ "success": true, "message": format!("plugin {name:?} restart count reset"), "plugin": view })).into_response())
}

/// A plugin's key-value state (an admin route: plugins may keep secrets).
/// Values are text when they are UTF-8, else `{"hex": "..."}`.
async fn plugin_state(State(state): AppRef, Path(name): Path<String>) -> ApiResult<Response> {
    checked_name(&name)?;
    let entries = state
        .plugins
        .state(&name)
        .ok_or_else(|| ApiError::not_found(format!("plugin {name:?} not found")))?;
    let bytes: usize = entries.iter().map(|(k, v)| k.len() + v.len()).sum();
    let values: serde_json::Map<String, serde_json::Value> = entries
        .into_iter()
        .map(|(key, value)| {
            let value = match String::from_utf8(value) {
                Ok(text) => serde_json::Value::String(text),
                Err(e) => json!({ "hex": e.into_bytes().iter().map(|b| format!("{b:02x}")).collect::<String>() }),
            };
            (key, value)
        })
        .collect();
    Ok(Json(json!({ "plugin": name, "bytes": bytes, "state": values })).into_response())
}

async fn alerts(State(state): AppRef) -> Json<crate::rules::AlertsView> {
    Json(state.alerts.view())
}
