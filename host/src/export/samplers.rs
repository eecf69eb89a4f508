//! The native samplers in the REST API: `GET /api/samplers` (each sampler's
//! status: enabled, available, up, why not, devices) and `GET /api/samples`
//! (the latest value of every live series whose name matches).

use super::error::{ApiError, ApiResult};
use crate::app::AppState;
use crate::model::MetricKind;
use crate::sampling::SamplerStatus;
use axum::extract::{Path, Query, State};
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;

type AppRef = State<Arc<AppState>>;

/// The routes of this file, merged into the REST router.
pub(super) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/samplers", get(list))
        .route("/api/samplers/{name}", get(one))
        .route("/api/samples", get(samples))
}

/// `GET /api/samplers`.
#[derive(Serialize)]
struct SamplerList {
    samplers: Vec<SamplerStatus>,
}

async fn list(State(state): AppRef) -> Json<SamplerList> {
    Json(SamplerList {
        samplers: state.samplers.list(),
    })
}

async fn one(State(state): AppRef, Path(name): Path<String>) -> ApiResult<Json<SamplerStatus>> {
    state.samplers.get(&name).map(Json).ok_or_else(|| {
        let known: Vec<String> = state.samplers.list().into_iter().map(|s| s.name).collect();
        ApiError::not_found(format!(
            "sampler {name:?} not found (known: {})",
            known.join(", ")
        ))
    })
}

/// One series in `GET /api/samples`.
#[derive(Serialize)]
struct SampleView {
    name: String,
    kind: MetricKind,
    labels: BTreeMap<String, String>,
    value: f64,
    help: Option<String>,
    /// Unix milliseconds of the last update.
    timestamp_ms: Option<u64>,
}

/// `GET /api/samples`.
#[derive(Serialize)]
struct SampleList {
    samples: Vec<SampleView>,
}

/// `GET /api/samples?name=SELECTORS[&LABEL=VALUE...]`: `name` is a
/// comma-separated list of exact names or prefixes ending in `*`
/// (`wasmon_gpu_*`); every other parameter is a label that must match exactly.
async fn samples(
    State(state): AppRef,
    Query(mut query): Query<BTreeMap<String, String>>,
) -> ApiResult<Json<SampleList>> {
    let selectors: Vec<String> = query
        .remove("name")
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect();
    if selectors.is_empty() {
        return Err(ApiError::bad_request(
            "query parameter `name` is required: metric names or prefixes ending in `*`, comma-separated (e.g. name=wasmon_gpu_*)",
        ));
    }
    let samples = state
        .store
        .select(&selectors)
        .into_iter()
        .filter(|sample| {
            query
                .iter()
                .all(|(label, value)| sample.label_value(label) == Some(value.as_str()))
        })
        .map(|sample| SampleView {
            labels: sample.labels.into_iter().collect(),
            name: sample.name,
            kind: sample.kind,
            value: sample.value,
            help: sample.help,
            timestamp_ms: sample.timestamp_ms,
        })
        .collect();
    Ok(Json(SampleList { samples }))
}
