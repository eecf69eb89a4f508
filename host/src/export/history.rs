//! History in the REST API: `GET /api/history` (one family's series over a
//! window, one aggregated point per step) and seed 001's snapshot paths
//! `GET /metrics/{system,gpu,clients,pipelines,storage}` (the live series
//! under the configured name prefixes, with per-bucket history on
//! `?history=15m`). The store copies under its read lock; serialization
//! happens after it is released.

use super::error::{ApiError, ApiResult};
use super::openapi::tag;
use crate::config::SnapshotsConfig;
use crate::model::MetricKind;
use crate::state::AppState;
use crate::store::{Agg, HistoryQuery, TooManyPoints};
use axum::Json;
use axum::extract::{Path, Query, State};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

type AppRef = State<Arc<AppState>>;

/// Query parameters of `/api/history` that are not label matchers.
const RESERVED: [&str; 4] = ["name", "window", "step", "agg"];

/// The routes of this file.
pub(super) fn routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(history))
        .routes(routes!(snapshot))
}

/// One series of `GET /api/history`.
#[derive(Serialize, ToSchema)]
struct SeriesView {
    /// Its labels.
    labels: BTreeMap<String, String>,
    /// `[Unix milliseconds of the step's start, value]`, oldest first.
    #[schema(value_type = Vec<Vec<f64>>)]
    points: Vec<(u64, f64)>,
}

/// `GET /api/history`.
#[derive(Serialize, ToSchema)]
struct HistoryAnswer {
    /// The metric asked for.
    name: String,
    /// `avg`, `min`, `max`, `last` or `p95`.
    agg: &'static str,
    /// The window answered.
    window_seconds: f64,
    /// One point per step.
    step_seconds: f64,
    /// `store.history_resolution`.
    resolution_seconds: f64,
    /// Every series (live or stale) of the metric whose labels match.
    series: Vec<SeriesView>,
}

/// `GET /api/history?name=NAME[&LABEL=VALUE...][&window=60m][&step=30s][&agg=avg]`.
#[utoipa::path(
    get,
    path = "/api/history",
    tag = tag::HISTORY,
    summary = "One metric's series over a window, one aggregated point per step",
    description = "Seed 001's trend data from the store's buckets: every series (live or stale) of metric `name` whose labels match the other parameters, one `[unix_ms, value]` point per step (steps aligned on Unix time; empty steps left out). Each parameter at most once.",
    params(
        ("name" = String, Query, description = "The exported metric name, e.g. `wasmon_cpu_usage_percent`", min_length = 1),
        ("window" = Option<String>, Query, description = "How far back, e.g. `60m`; defaults to and at most `store.history_window`", example = "60m"),
        ("step" = Option<String>, Query, description = "One point per step, e.g. `30s`: a multiple of `store.history_resolution` (its default), at most the window", example = "30s"),
        ("agg" = Option<String>, Query, description = "How a step's buckets become one value (default `avg`); `p95` is the 95th percentile of the bucket means", pattern = "^(avg|min|max|last|p95)$"),
        ("labels" = Option<BTreeMap<String, String>>, Query, style = Form, explode, description = "Any other parameter: a label name and the value it must have"),
    ),
    responses(
        (status = 200, description = "The series", body = HistoryAnswer),
        (status = 400, description = "A missing name, a window beyond the history or zero, a bad step or agg, a parameter given twice, or an answer above `store.max_query_points` (series × points)", body = ApiError),
    )
)]
async fn history(
    State(state): AppRef,
    Query(params): Query<Vec<(String, String)>>,
) -> ApiResult<Json<HistoryAnswer>> {
    let params = unique(params)?;
    let name = params
        .get("name")
        .map(|n| n.trim())
        .filter(|n| !n.is_empty())
        .ok_or_else(|| {
            ApiError::bad_request(
                "query parameter `name` is required: the exported metric name (e.g. name=wasmon_cpu_usage_percent)",
            )
        })?;
    let (resolution, limit) = state.store.history_limits();
    let window = match params.get("window") {
        Some(text) => duration("window", text)?,
        None => limit,
    };
    check_window("window", window, limit)?;
    let step = match params.get("step") {
        Some(text) => duration("step", text)?,
        None => resolution,
    };
    if step < resolution || step.as_millis() % resolution.as_millis().max(1) != 0 {
        return Err(ApiError::bad_request(format!(
            "step {} must be a multiple of store.history_resolution ({}), at least one",
            human(step),
            human(resolution)
        )));
    }
    if step > window {
        return Err(ApiError::bad_request(format!(
            "step {} is longer than the window {}",
            human(step),
            human(window)
        )));
    }
    let agg = match params.get("agg") {
        Some(text) => Agg::parse(text).ok_or_else(|| {
            ApiError::bad_request(format!(
                "unknown agg {text:?}: use one of {}",
                Agg::NAMES.join(", ")
            ))
        })?,
        None => Agg::Avg,
    };
    let matchers: Vec<(String, String)> = params
        .iter()
        .filter(|(k, _)| !RESERVED.contains(&k.as_str()))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let query = HistoryQuery {
        name,
        matchers: &matchers,
        window,
        step,
        agg,
        max_points: state.config.store.max_query_points,
    };
    let series = state.store.query_history(&query).map_err(too_many)?;
    Ok(Json(HistoryAnswer {
        name: name.to_string(),
        agg: agg.as_str(),
        window_seconds: window.as_secs_f64(),
        step_seconds: step.as_secs_f64(),
        resolution_seconds: resolution.as_secs_f64(),
        series: series
            .into_iter()
            .map(|s| SeriesView {
                labels: s.labels.into_iter().collect(),
                points: s.points,
            })
            .collect(),
    }))
}

/// One series of a snapshot.
#[derive(Serialize, ToSchema)]
struct SnapshotSeriesView {
    /// The metric name.
    name: String,
    /// `gauge` or `counter`.
    kind: MetricKind,
    /// Its labels.
    labels: BTreeMap<String, String>,
    /// The latest value.
    value: f64,
    /// RFC 3339 time of the latest value.
    updated: String,
    /// With `?history=`: `[unix_ms, mean]` per bucket, oldest first.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<Vec<f64>>>)]
    history: Option<Vec<(u64, f64)>>,
}

/// `GET /metrics/{snapshot}`.
#[derive(Serialize, ToSchema)]
struct SnapshotAnswer {
    /// The snapshot's name.
    snapshot: String,
    /// The metric name prefixes it shows (`[snapshots]`).
    prefixes: Vec<String>,
    /// When it was taken (RFC 3339).
    timestamp: String,
    /// The history window asked for, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    history_seconds: Option<f64>,
    /// Every live series under the prefixes.
    series: Vec<SnapshotSeriesView>,
}

/// `GET /metrics/{system,gpu,clients,pipelines,storage}[?history=15m]`.
#[utoipa::path(
    get,
    path = "/metrics/{snapshot}",
    tag = tag::HISTORY,
    summary = "Seed 001's JSON snapshots",
    description = "The latest value of every live series whose name starts with one of the snapshot's `[snapshots]` prefixes; `?history=15m` adds each series' `[unix_ms, mean]` per bucket. Empty `series` while no collector writes those names. (`/metrics` itself is the Prometheus text.)",
    params(
        ("snapshot" = String, Path, description = "`system`, `gpu`, `clients`, `pipelines` or `storage`", pattern = "^(system|gpu|clients|pipelines|storage)$"),
        ("history" = Option<String>, Query, description = "Add each series' history over this window, e.g. `15m`: longer than zero, at most `store.history_window`. No other parameter is accepted.", example = "15m"),
    ),
    responses(
        (status = 200, description = "The snapshot", content_type = "application/json", body = SnapshotAnswer),
        (status = 400, description = "A bad or unknown parameter, a window beyond the history, or an answer above `store.max_query_points`", body = ApiError),
        (status = 404, description = "No such snapshot", body = ApiError),
    )
)]
async fn snapshot(
    State(state): AppRef,
    Path(name): Path<String>,
    Query(params): Query<Vec<(String, String)>>,
) -> ApiResult<Json<SnapshotAnswer>> {
    let prefixes = state.config.snapshots.prefixes(&name).ok_or_else(|| {
        ApiError::not_found(format!(
            "no snapshot {name:?} (known: {}; Prometheus text is at /metrics)",
            SnapshotsConfig::NAMES.join(", ")
        ))
    })?;
    let params = unique(params)?;
    if let Some(other) = params.keys().find(|k| k.as_str() != "history") {
        return Err(ApiError::bad_request(format!(
            "unknown query parameter `{other}`: only `history` (e.g. history=15m) is accepted"
        )));
    }
    let (_, limit) = state.store.history_limits();
    let window = match params.get("history") {
        Some(text) => {
            let window = duration("history", text)?;
            check_window("history", window, limit)?;
            Some(window)
        }
        None => None,
    };
    let series = state
        .store
        .snapshot(prefixes, window, state.config.store.max_query_points)
        .map_err(too_many)?;
    Ok(Json(SnapshotAnswer {
        snapshot: name,
        prefixes: prefixes.to_vec(),
        timestamp: crate::time::rfc3339(crate::time::now_ms()),
        history_seconds: window.map(|w| w.as_secs_f64()),
        series: series
            .into_iter()
            .map(|s| SnapshotSeriesView {
                name: s.name,
                kind: s.kind,
                labels: s.labels.into_iter().collect(),
                value: s.value,
                updated: crate::time::rfc3339(s.updated_ms),
                history: s.history,
            })
            .collect(),
    }))
}

/// The parameters as a map; a parameter given twice is a 400.
fn unique(params: Vec<(String, String)>) -> ApiResult<BTreeMap<String, String>> {
    let mut map = BTreeMap::new();
    for (key, value) in params {
        if map.contains_key(&key) {
            return Err(ApiError::bad_request(format!(
                "query parameter `{key}` is given more than once"
            )));
        }
        map.insert(key, value);
    }
    Ok(map)
}

fn duration(key: &str, text: &str) -> ApiResult<Duration> {
    crate::units::parse_duration(text).map_err(|e| {
        ApiError::bad_request(format!("invalid `{key}`: {e} (write e.g. 60m, 30s, 1h)"))
    })
}

fn check_window(key: &str, window: Duration, limit: Duration) -> ApiResult<()> {
    if window.is_zero() {
        return Err(ApiError::bad_request(format!(
            "`{key}` must be longer than zero"
        )));
    }
    if window > limit {
        return Err(ApiError::bad_request(format!(
            "`{key}` {} is beyond store.history_window ({}): no older history is kept",
            human(window),
            human(limit)
        )));
    }
    Ok(())
}

fn too_many(e: TooManyPoints) -> ApiError {
    ApiError::bad_request(format!(
        "{e} (store.max_query_points); narrow the labels, shorten the window or widen the step"
    ))
}

fn human(d: Duration) -> String {
    humantime::format_duration(d).to_string()
}
