//! The native samplers in the REST API: `GET /api/samplers` (each sampler's
//! status: enabled, available, up, why not, devices) and `GET /api/samples`
//! (the latest value of every live series whose name matches).

use super::error::{ApiError, ApiResult};
use super::openapi::tag;
use crate::model::MetricKind;
use crate::sampling::SamplerStatus;
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, Query, State};
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

type AppRef = State<Arc<AppState>>;

/// The routes of this file, merged into the REST router.
pub(super) fn routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(one))
        .routes(routes!(samples))
}

/// `GET /api/samplers`.
#[derive(Serialize, ToSchema)]
struct SamplerList {
    /// Every native sampler, by name.
    samplers: Vec<SamplerStatus>,
}

/// `GET /api/samplers`.
#[utoipa::path(
    get,
    path = "/api/samplers",
    tag = tag::SYSTEM,
    summary = "The native samplers",
    description = "Each sampler (`system`, `gpu`): enabled, available, up, reason, interval, runs, last run and sample; for `gpu` the driver version and each device.",
    responses((status = 200, description = "The samplers", body = SamplerList))
)]
async fn list(State(state): AppRef) -> Json<SamplerList> {
    Json(SamplerList {
        samplers: state.samplers.list(),
    })
}

/// `GET /api/samplers/{name}`.
#[utoipa::path(
    get,
    path = "/api/samplers/{name}",
    tag = tag::SYSTEM,
    summary = "One native sampler",
    params(("name" = String, Path, description = "The sampler: `system` or `gpu`")),
    responses(
        (status = 200, description = "The sampler", body = SamplerStatus),
        (status = 404, description = "No such sampler; the detail lists the known ones", body = ApiError),
    )
)]
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
#[derive(Serialize, ToSchema)]
struct SampleView {
    /// The metric name, as exported (a counter without its `_total`).
    name: String,
    /// `gauge` or `counter`.
    kind: MetricKind,
    /// Its labels.
    labels: BTreeMap<String, String>,
    /// The latest value.
    value: f64,
    /// The metric's help text.
    help: Option<String>,
    /// Unix milliseconds of the last update.
    timestamp_ms: Option<u64>,
}

/// `GET /api/samples`.
#[derive(Serialize, ToSchema)]
struct SampleList {
    /// Every live series that matches.
    samples: Vec<SampleView>,
}

/// `GET /api/samples?name=SELECTORS[&LABEL=VALUE...]`: `name` is a
/// comma-separated list of exact names or prefixes ending in `*`
/// (`wasmon_gpu_*`); every other parameter is a label that must match exactly.
#[utoipa::path(
    get,
    path = "/api/samples",
    tag = tag::SYSTEM,
    summary = "Latest value of every live series whose name matches",
    description = "`name` selects metrics; every other query parameter is a label that must match exactly (`&gpu=0`).",
    params(
        ("name" = String, Query, description = "Comma-separated exact metric names or prefixes ending in `*` (`wasmon_gpu_*`)", min_length = 1),
        ("labels" = Option<BTreeMap<String, String>>, Query, style = Form, explode, description = "Any other parameter: a label name and the value it must have"),
    ),
    responses(
        (status = 200, description = "The matching series", body = SampleList),
        (status = 400, description = "`name` is missing or empty", body = ApiError),
    )
)]
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
