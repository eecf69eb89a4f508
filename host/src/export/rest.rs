//! The REST API: plugins, alerts, health and `/metrics`; ingestion routes
//! are in `export::ingest`. Every route is registered with `routes!` on an
//! `OpenApiRouter`, so it is in `/openapi.json` (see `export::openapi`).

use super::error::{ApiError, ApiResult};
use super::openapi::tag;
use crate::plugins::{LoadOutcome, PluginView, RestartRecord, valid_name};
use crate::rules::RuleStats;
use crate::state::AppState;
use crate::store::SourceStats;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use std::sync::Arc;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

type AppRef = State<Arc<AppState>>;

/// The plugin, alert, store and health routes (composed with the others in
/// [`super::router`]).
pub(super) fn routes(state: Arc<AppState>) -> OpenApiRouter<Arc<AppState>> {
    let admin = OpenApiRouter::new()
        .routes(routes!(reload_all))
        .routes(routes!(reload))
        .routes(routes!(reset))
        .routes(routes!(plugin_state))
        .route_layer(middleware::from_fn_with_state(
            state,
            super::auth::require_admin,
        ));
    OpenApiRouter::new()
        .routes(routes!(metrics))
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(list_plugins))
        .routes(routes!(get_plugin))
        .routes(routes!(restart_history))
        .routes(routes!(alerts))
        .routes(routes!(store_summary))
        .merge(admin)
}

/// `GET /metrics`.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = tag::METRICS,
    summary = "Every live series in the Prometheus text format",
    description = "System and GPU samples, plugin samples (with a `plugin` label), alerts, services and the host's own `wasmon_*` metrics. Counters are exported with a `_total` suffix; refused samples never break the scrape.",
    responses(
        (status = 200, description = "Prometheus text exposition format 0.0.4", content_type = "text/plain; version=0.0.4; charset=utf-8", body = String),
    )
)]
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

/// `GET /healthz`.
#[derive(Serialize, ToSchema)]
struct Liveness {
    /// Always `ok`.
    #[schema(example = "ok")]
    status: &'static str,
}

/// `GET /readyz`.
#[derive(Serialize, ToSchema)]
struct Readiness {
    /// Always `true` (not ready is a 503).
    ready: bool,
}

/// `GET /healthz`.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = tag::SYSTEM,
    summary = "Liveness",
    description = "Answers as long as the HTTP server runs; checks nothing else (a failed critical plugin does not make it fail: restarting the process would not help). Readiness is `/readyz`, the full picture `/api/system/health/full`, `/health` and `/v1/health`.",
    responses((status = 200, description = "Alive", body = Liveness))
)]
async fn healthz() -> Json<Liveness> {
    Json(Liveness { status: "ok" })
}

/// `GET /readyz`.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = tag::SYSTEM,
    summary = "Readiness",
    description = "Ready once every plugin of the plugin directory has loaded or failed to load, and while no critical component is down (a plugin whose manifest says `critical = true`, its data sources, or a sampler with `sampling.critical`/`gpu.critical`): the same rule as `status: unhealthy` in `/api/system/health/full`. `/healthz` checks liveness only.",
    responses(
        (status = 200, description = "Ready", body = Readiness),
        (status = 503, description = "Plugins are still loading, or a critical component is down; the detail names them", body = ApiError),
    )
)]
async fn readyz(State(state): AppRef) -> ApiResult<Json<Readiness>> {
    if !state.plugins.is_ready() {
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
        return Err(ApiError::new(StatusCode::SERVICE_UNAVAILABLE, detail));
    }
    let report = crate::health::Report::of(&state);
    let down: Vec<String> = report.critical_down().map(ToString::to_string).collect();
    if down.is_empty() {
        Ok(Json(Readiness { ready: true }))
    } else {
        Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("critical components are down: {}", down.join(", ")),
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

/// `GET /api/plugins`.
#[derive(Serialize, ToSchema)]
struct PluginList {
    /// Every plugin, by name.
    plugins: Vec<PluginView>,
}

/// `GET /api/plugins`.
#[utoipa::path(
    get,
    path = "/api/plugins",
    tag = tag::PLUGINS,
    summary = "Every plugin",
    description = "Kind, status (`loading`, `running`, `crashed`, `restarting`, `failed`, `invalid`), generation, sha256, errors, restarts, calls, timings, memory, series and manifest of each plugin.",
    responses((status = 200, description = "The plugins", body = PluginList))
)]
async fn list_plugins(State(state): AppRef) -> Json<PluginList> {
    Json(PluginList {
        plugins: state.plugins.list(),
    })
}

/// `GET /api/plugins/{name}`: the plugin, its alerts in numbers (rules) and
/// what the store holds of it (collectors).
#[derive(Serialize, ToSchema)]
struct PluginDetail {
    #[serde(flatten)]
    plugin: PluginView,
    /// A rule's alerts in numbers; `null` for other kinds.
    alerts: Option<RuleStats>,
    /// What the store holds and refused of the plugin's samples; `null`
    /// when it has none.
    store: Option<SourceStats>,
}

/// `GET /api/plugins/{name}`.
#[utoipa::path(
    get,
    path = "/api/plugins/{name}",
    tag = tag::PLUGINS,
    summary = "One plugin",
    description = "What `/api/plugins` shows of it, plus `alerts` (a rule's alert counts) and `store` (a collector's series and refusals).",
    params(("name" = String, Path, description = "The plugin's name: `^[a-zA-Z][a-zA-Z0-9_]*$`, at most 64 characters (400 otherwise)", pattern = r"^[a-zA-Z][a-zA-Z0-9_]*$", max_length = 64)),
    responses(
        (status = 200, description = "The plugin", body = PluginDetail),
        (status = 400, description = "Invalid name", body = ApiError),
        (status = 404, description = "No such plugin", body = ApiError),
    )
)]
async fn get_plugin(
    State(state): AppRef,
    Path(name): Path<String>,
) -> ApiResult<Json<PluginDetail>> {
    checked_name(&name)?;
    let view = state
        .plugins
        .get(&name)
        .ok_or_else(|| ApiError::not_found(format!("plugin {name:?} not found")))?;
    let is_rule = view.kind == Some(crate::plugins::PluginKind::Rule);
    // A rule's alerts in numbers (active, dropped, ...), and what the
    // store holds and refused of a collector's samples.
    let alerts = is_rule.then(|| state.alerts.rule_stats(&name)).flatten();
    let store = state.store.source_stats(&name, true);
    Ok(Json(PluginDetail {
        plugin: view,
        alerts,
        store,
    }))
}

/// `GET /api/plugins/{name}/restart-history`.
#[derive(Serialize, ToSchema)]
struct RestartHistory {
    /// Restarts and faults, oldest first (the last 100).
    items: Vec<RestartRecord>,
}

/// `GET /api/plugins/{name}/restart-history`.
#[utoipa::path(
    get,
    path = "/api/plugins/{name}/restart-history",
    tag = tag::PLUGINS,
    summary = "A plugin's restarts and faults",
    params(("name" = String, Path, description = "The plugin's name: `^[a-zA-Z][a-zA-Z0-9_]*$`, at most 64 characters (400 otherwise)", pattern = r"^[a-zA-Z][a-zA-Z0-9_]*$", max_length = 64)),
    responses(
        (status = 200, description = "Its restart history", body = RestartHistory),
        (status = 400, description = "Invalid name", body = ApiError),
        (status = 404, description = "No such plugin", body = ApiError),
    )
)]
async fn restart_history(
    State(state): AppRef,
    Path(name): Path<String>,
) -> ApiResult<Json<RestartHistory>> {
    checked_name(&name)?;
    let items = state
        .plugins
        .restart_history(&name)
        .ok_or_else(|| ApiError::not_found(format!("plugin {name:?} not found")))?;
    Ok(Json(RestartHistory { items }))
}

/// `POST /api/plugins/{name}/reload`.
#[derive(Serialize, ToSchema)]
struct ReloadAnswer {
    /// What the load did.
    outcome: LoadOutcome,
    /// The plugin afterwards; `null` once unloaded.
    plugin: Option<PluginView>,
}

/// `POST /api/plugins/{name}/reload`.
#[utoipa::path(
    post,
    path = "/api/plugins/{name}/reload",
    tag = tag::PLUGINS,
    summary = "Reload one plugin (forced)",
    description = "Reads, compiles, instantiates and swaps the plugin even when its files did not change. A failed load keeps the previous generation serving (422).",
    params(("name" = String, Path, description = "The plugin's name: `^[a-zA-Z][a-zA-Z0-9_]*$`, at most 64 characters (400 otherwise)", pattern = r"^[a-zA-Z][a-zA-Z0-9_]*$", max_length = 64)),
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "Loaded, unchanged, or unloaded (its component is gone)", body = ReloadAnswer),
        (status = 400, description = "Invalid name", body = ApiError),
        (status = 401, description = "Missing or wrong admin token", body = ApiError),
        (status = 403, description = "No admin token is set and the client is not on loopback", body = ApiError),
        (status = 404, description = "No such plugin: no NAME.wasm in the plugin directory", body = ApiError),
        (status = 422, description = "The load failed; the detail says why and which generation keeps serving", body = ApiError),
    )
)]
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
    let plugin = state.plugins.get(&name);
    Ok((status, Json(ReloadAnswer { outcome, plugin })).into_response())
}

/// One plugin in `POST /api/plugins/reload`.
#[derive(Serialize, ToSchema)]
struct ReloadEntry {
    /// The plugin.
    name: String,
    /// What its load did.
    outcome: LoadOutcome,
}

/// `POST /api/plugins/reload`.
#[derive(Serialize, ToSchema)]
struct ReloadAll {
    /// Every plugin whose files were looked at.
    plugins: Vec<ReloadEntry>,
}

/// `POST /api/plugins/reload`.
#[utoipa::path(
    post,
    path = "/api/plugins/reload",
    tag = tag::PLUGINS,
    summary = "Reload every plugin whose files changed",
    description = "Scans the plugin directory: new plugins load, changed ones reload, removed ones unload, unchanged ones are left alone.",
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "What each load did", body = ReloadAll),
        (status = 401, description = "Missing or wrong admin token", body = ApiError),
        (status = 403, description = "No admin token is set and the client is not on loopback", body = ApiError),
    )
)]
async fn reload_all(State(state): AppRef) -> Json<ReloadAll> {
    let plugins = state
        .plugins
        .reload_all()
        .await
        .into_iter()
        .map(|(name, outcome)| ReloadEntry { name, outcome })
        .collect();
    Json(ReloadAll { plugins })
}

/// `POST /api/plugins/{name}/reset`.
#[derive(Serialize, ToSchema)]
struct ResetAnswer {
    /// Always `true`.
    success: bool,
    /// What was done.
    message: String,
    /// The plugin afterwards.
    plugin: PluginView,
}

/// `POST /api/plugins/{name}/reset`.
#[utoipa::path(
    post,
    path = "/api/plugins/{name}/reset",
    tag = tag::PLUGINS,
    summary = "Clear a plugin's faults and restart it",
    description = "Resets the count of faults in a row, so a `failed` plugin is restarted at once.",
    params(("name" = String, Path, description = "The plugin's name: `^[a-zA-Z][a-zA-Z0-9_]*$`, at most 64 characters (400 otherwise)", pattern = r"^[a-zA-Z][a-zA-Z0-9_]*$", max_length = 64)),
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "Reset", body = ResetAnswer),
        (status = 400, description = "Invalid name", body = ApiError),
        (status = 401, description = "Missing or wrong admin token", body = ApiError),
        (status = 403, description = "No admin token is set and the client is not on loopback", body = ApiError),
        (status = 404, description = "No such plugin", body = ApiError),
    )
)]
async fn reset(State(state): AppRef, Path(name): Path<String>) -> ApiResult<Json<ResetAnswer>> {
    checked_name(&name)?;
    let plugin = state
        .plugins
        .reset(&name)
        .ok_or_else(|| ApiError::not_found(format!("plugin {name:?} not found")))?;
    Ok(Json(ResetAnswer {
        success: true,
        message: format!("plugin {name:?} restart count reset"),
        plugin,
    }))
}

/// `GET /api/plugins/{name}/state`.
#[derive(Serialize, ToSchema)]
struct PluginState {
    /// The plugin.
    plugin: String,
    /// Bytes held, keys and values.
    bytes: usize,
    /// Key → value: text when the value is UTF-8, else `{"hex": "..."}`.
    #[schema(value_type = BTreeMap<String, Value>)]
    state: serde_json::Map<String, serde_json::Value>,
}

/// A plugin's key-value state (an admin route: plugins may keep secrets).
/// Values are text when they are UTF-8, else `{"hex": "..."}`.
#[utoipa::path(
    get,
    path = "/api/plugins/{name}/state",
    tag = tag::PLUGINS,
    summary = "A plugin's key-value state",
    description = "An admin route: plugins may keep secrets there. Values are text when they are UTF-8, else `{\"hex\": \"...\"}`.",
    params(("name" = String, Path, description = "The plugin's name: `^[a-zA-Z][a-zA-Z0-9_]*$`, at most 64 characters (400 otherwise)", pattern = r"^[a-zA-Z][a-zA-Z0-9_]*$", max_length = 64)),
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "Its state", body = PluginState),
        (status = 400, description = "Invalid name", body = ApiError),
        (status = 401, description = "Missing or wrong admin token", body = ApiError),
        (status = 403, description = "No admin token is set and the client is not on loopback", body = ApiError),
        (status = 404, description = "No such plugin", body = ApiError),
    )
)]
async fn plugin_state(
    State(state): AppRef,
    Path(name): Path<String>,
) -> ApiResult<Json<PluginState>> {
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
                Err(e) => serde_json::json!({ "hex": hex::encode(e.into_bytes()) }),
            };
            (key, value)
        })
        .collect();
    Ok(Json(PluginState {
        plugin: name,
        bytes,
        state: values,
    }))
}

/// Most alerts (and checks) on one page of `GET /api/alerts`.
const MAX_ALERTS_PAGE: usize = 1000;

/// `GET /api/alerts` parameters.
#[derive(serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct AlertsParams {
    /// Only this rule's alerts and checks.
    #[param(pattern = r"^[a-zA-Z][a-zA-Z0-9_]*$", max_length = 64)]
    rule: Option<String>,
    /// Only alerts in this state: `pending`, `firing`, `resolved`.
    state: Option<crate::model::AlertState>,
    /// Page size, 1 to 1000 (100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
    /// Alerts and checks to skip (0).
    #[param(minimum = 0)]
    offset: Option<usize>,
}

/// `GET /api/alerts?rule=&state=&limit=&offset=`: one page of alerts and
/// checks, with `total`, `checks_total` and `has_more`. The page is copied
/// under the alert manager's lock and serialized after it is released.
#[utoipa::path(
    get,
    path = "/api/alerts",
    tag = tag::ALERTS,
    summary = "Alerts and the checks of each rule, a page at a time",
    description = "`overall` (`OK`/`WARNING`/`ALERT`), pending, firing and resolved alerts (active first, most severe first) and the conditions of each rule's last evaluation, with `total`, `checks_total` and `has_more`. Unknown parameters are refused.",
    params(AlertsParams),
    responses(
        (status = 200, description = "One page", body = crate::rules::AlertsPage),
        (status = 400, description = "A bad or unknown parameter, or a limit out of range", body = ApiError),
    )
)]
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

/// `GET /api/store`.
#[derive(Serialize, ToSchema)]
struct StoreSummary {
    /// The plugins' budget (`store.max_series`).
    max_series: usize,
    /// Series the plugins hold.
    plugin_series: usize,
    /// The host's own budget (`store.reserved_series`).
    reserved_series: usize,
    /// Series the host's own sources hold.
    host_series: usize,
    /// Series exported now.
    live_series: usize,
    /// Series held, live and stale.
    held_series: usize,
    /// Roughly the bytes the store holds.
    approx_bytes: usize,
    /// Every source, with its series and refusals.
    sources: Vec<SourceStats>,
}

/// `GET /api/store`: the two series budgets, what each source holds, and what
/// the store refused of each, by reason.
#[utoipa::path(
    get,
    path = "/api/store",
    tag = tag::SYSTEM,
    summary = "The store's budgets and sources",
    description = "The two series budgets (`max_series` for plugins, `reserved_series` for the host's own sources), what they hold, and every source (`host`, `derived`, `plugin`) with its series, limit and samples refused by reason.",
    responses((status = 200, description = "The summary", body = StoreSummary))
)]
async fn store_summary(State(state): AppRef) -> Json<StoreSummary> {
    let stats = state.store.stats();
    Json(StoreSummary {
        max_series: stats.max_series,
        plugin_series: stats.plugin_series,
        reserved_series: stats.reserved_series,
        host_series: stats.host_series,
        live_series: stats.live_series,
        held_series: stats.held_series,
        approx_bytes: stats.approx_bytes,
        sources: state.store.sources(),
    })
}
