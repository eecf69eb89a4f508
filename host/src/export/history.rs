//! History in the REST API: `GET /api/history` (one family's series over a
//! window, one aggregated point per step) and seed 001's snapshot paths
//! `GET /metrics/{system,gpu,clients,pipelines,storage}` (the live series
//! under the configured name prefixes, with per-bucket history on
//! `?history=15m`). The store copies under its read lock; serialization
//! happens after it is released.

use super::error::{ApiError, ApiResult};
use crate::app::AppState;
use crate::config::SnapshotsConfig;
use crate::model::MetricKind;
use crate::store::{Agg, HistoryQuery, TooManyPoints};
use axum::extract::{Path, Query, State};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

type AppRef = State<Arc<AppState>>;

/// Query parameters of `/api/history` that are not label matchers.
const RESERVED: [&str; 4] = ["name", "window", "step", "agg"];

/// The routes of this file.
pub(super) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/history", get(history))
        .route("/metrics/{snapshot}", get(snapshot))
}

/// One series of `GET /api/history`.
#[derive(Serialize)]
struct SeriesView {
    labels: BTreeMap<String, String>,
    /// `[Unix milliseconds of the step's start, value]`, oldest first.
    points: Vec<(u64, f64)>,
}

/// `GET /api/history`.
#[derive(Serialize)]
struct HistoryAnswer {
    name: String,
    agg: &'static str,
    window_seconds: f64,
    step_seconds: f64,
    resolution_seconds: f64,
    series: Vec<SeriesView>,
}

/// `GET /api/history?name=NAME[&LABEL=VALUE...][&window=60m][&step=30s][&agg=avg]`.
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
#[derive(Serialize)]
struct SnapshotSeriesView {
    name: String,
    kind: MetricKind,
    labels: BTreeMap<String, String>,
    value: f64,
    /// RFC 3339 time of the latest value.
    updated: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    history: Option<Vec<(u64, f64)>>,
}

/// `GET /metrics/{snapshot}`.
#[derive(Serialize)]
struct SnapshotAnswer {
    snapshot: String,
    prefixes: Vec<String>,
    timestamp: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    history_seconds: Option<f64>,
    series: Vec<SnapshotSeriesView>,
}

/// `GET /metrics/{system,gpu,clients,pipelines,storage}[?history=15m]`.
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
