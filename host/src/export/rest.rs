//! The REST API: plugins, alerts, health and `/metrics`; ingestion routes
//! are in `export::ingest`.

use super::error::{ApiError, ApiResult};
use crate::app::AppState;
use crate::plugins::{LoadOutcome, valid_name};
use axum::extract::{Path, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware;
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
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            super::auth::require_admin,
        ));
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/api/plugins", get(list_plugins))
        .merge(super::samplers::routes())
        .merge(super::history::routes())
        .merge(super::system::routes())
        .merge(super::breakers::routes(state.clone()))
        .route("/api/plugins/{name}", get(get_plugin))
        .route("/api/plugins/{name}/restart-history", get(restart_history))
        .route("/api/alerts", get(alerts))
        .route("/api/store", get(store_summary))
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
        state.ingest.services_lock(),
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
        // Name a few: the plugins whose init is slow are the ones to look at.
        let loading = state.plugins.loading();
        let named: Vec<&str> = loading.iter().take(10).map(String::as_str).collect();
        let more = if loading.len() > named.len() {
            ", ..."
        } else {
            ""
        };
        let detail = match loading.len() {
            0 => "plugins are still loading".to_string(),
            n => format!("{n} plugins are still loading: {}{more}", named.join(", ")),
        };
        Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, detail))
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
    let is_rule = view.kind == Some(crate::plugins::PluginKind::Rule);
    let mut body = serde_json::to_value(view)
        .map_err(|e| anyhow::anyhow!("failed to serialize plugin {name:?}: {e}"))?;
    if let Some(fields) = body.as_object_mut() {
        // A rule's alerts in numbers (active, dropped, ...), and what the
        // store holds and refused of a collector's samples.
        let alerts = is_rule.then(|| state.alerts.rule_stats(&name)).flatten();
        fields.insert("alerts".into(), json!(alerts));
        fields.insert("store".into(), json!(state.store.source_stats(&name, true)));
    }
    Ok(Json(body).into_response())
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

/// Most alerts (and checks) on one page of `GET /api/alerts`.
const MAX_ALERTS_PAGE: usize = 1000;

/// `GET /api/alerts` parameters.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct AlertsParams {
    /// Only this rule's alerts and checks.
    rule: Option<String>,
    /// Only alerts in this state: `pending`, `firing`, `resolved`.
    state: Option<crate::model::AlertState>,
    /// Page size, 1 to 1000 (100).
    limit: Option<usize>,
    /// Alerts and checks to skip (0).
    offset: Option<usize>,
}

/// `GET /api/alerts?rule=&state=&limit=&offset=`: one page of alerts and
/// checks, with `total`, `checks_total` and `has_more`. The page is copied
/// under the alert manager's lock and serialized after it is released.
async fn alerts(
    State(state): AppRef,
    params: Result<axum::extract::Query<AlertsParams>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<crate::rules::AlertsPage>> {
    let axum::extract::Query(params) = params.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let limit = params
        .limit
        .unwrap_or(crate::rules::AlertQuery::default().limit);
    if !(1..=MAX_ALERTS_PAGE).contains(&limit) {
        return Err(ApiError::bad_request(format!(
            "limit: must be between 1 and {MAX_ALERTS_PAGE}, got {limit}"
        )));
    }
    if let Some(rule) = &params.rule {
        checked_name(rule)?;
    }
    let query = crate::rules::AlertQuery {
        rule: params.rule,
        state: params.state,
        offset: params.offset.unwrap_or(0),
        limit,
    };
    Ok(Json(state.alerts.page(&query)))
}

/// `GET /api/store`: the two series budgets, what each source holds, and what
/// the store refused of each, by reason.
async fn store_summary(State(state): AppRef) -> Json<serde_json::Value> {
    let stats = state.store.stats();
    let sources = state.store.sources();
    Json(json!({
        "max_series": stats.max_series,
        "plugin_series": stats.plugin_series,
        "reserved_series": stats.reserved_series,
        "host_series": stats.host_series,
        "live_series": stats.live_series,
        "held_series": stats.held_series,
        "approx_bytes": stats.approx_bytes,
        "sources": sources,
    }))
}
