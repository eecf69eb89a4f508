//! Health documents: seed 003's `GET /health` (the rules' conditions, their
//! statuses and the overall one) and seed 004's Prometheus stack,
//! `GET /api/system/monitoring/health` and `/targets`, which ask the
//! Prometheus server of `[prometheus]` about its scrape targets.

use super::error::{ApiError, ApiResult};
use super::openapi::tag;
use crate::config::PrometheusConfig;
use crate::rules::StatusDocument;
use crate::state::AppState;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

type AppRef = State<Arc<AppState>>;

/// Jobs whose targets seed 004 lists as exporters.
const KNOWN_EXPORTERS: [&str; 3] = ["redis-exporter", "json-exporter", "blackbox-exporter"];

/// The routes of this file.
pub(super) fn routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(health))
        .routes(routes!(monitoring_health))
        .routes(routes!(monitoring_targets))
}

/// `GET /health`: seed 003's status document, always 200.
#[utoipa::path(
    get,
    path = "/health",
    tag = tag::ALERTS,
    summary = "Seed 003's status document",
    description = "From the rules' last evaluations: `metrics` (each condition's value) and `statuses` (`OK`/`WARNING`/`ALERT` by condition key, `name{label=\"v\"}` when it has labels; `OK` until it fires) with `overall`, and `last_updated` (`null` before any evaluation). Always 200.",
    responses((status = 200, description = "The status document", body = StatusDocument))
)]
async fn health(State(state): AppRef) -> Json<StatusDocument> {
    Json(state.alerts.status_document())
}

/// One target of Prometheus' `/api/v1/targets`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PromTarget {
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    scrape_pool: String,
    #[serde(default)]
    last_error: String,
    #[serde(default)]
    last_scrape: Option<String>,
    #[serde(default)]
    last_scrape_duration: Option<f64>,
    #[serde(default)]
    health: String,
    #[serde(default)]
    scrape_interval: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PromTargets {
    #[serde(default)]
    active_targets: Vec<PromTarget>,
}

#[derive(Debug, Deserialize)]
struct PromAnswer<T> {
    status: String,
    data: Option<T>,
    #[serde(default)]
    error: Option<String>,
}

/// One target in `/api/system/monitoring/targets`.
#[derive(Debug, Serialize, ToSchema)]
struct TargetView {
    /// Its `job` label (else its scrape pool).
    job: String,
    /// Its `instance` label.
    instance: String,
    /// `up`, `down` or `unknown`.
    health: &'static str,
    /// Its labels.
    labels: BTreeMap<String, String>,
    /// When it was last scraped (RFC 3339), as Prometheus says.
    last_scrape: Option<String>,
    /// The last scrape's error.
    last_error: Option<String>,
    /// How long the last scrape took.
    scrape_duration_seconds: Option<f64>,
}

/// Targets per job in the health document.
#[derive(Debug, Serialize, Default, ToSchema)]
struct JobSummary {
    /// The job.
    job: String,
    /// Its targets.
    total: usize,
    /// Of which up.
    up: usize,
    /// Of which down.
    down: usize,
    /// Of which not scraped yet.
    unknown: usize,
}

/// A target of a known exporter job (`redis-exporter`, `json-exporter`,
/// `blackbox-exporter`).
#[derive(Debug, Serialize, ToSchema)]
struct ExporterView {
    /// The job.
    name: String,
    /// `up`, `down` or `unknown`.
    status: &'static str,
    /// Its instance.
    endpoint: String,
    /// When it was last scraped (RFC 3339).
    last_scrape: Option<String>,
    /// The last scrape's error.
    error: Option<String>,
}

/// Whether Prometheus is collecting.
#[derive(Debug, Serialize, ToSchema)]
struct MetricsCollection {
    /// At least one target is up.
    collecting: bool,
    /// The latest scrape of a target that is up (RFC 3339).
    last_successful_scrape: Option<String>,
    /// The scrape interval of the targets.
    scrape_interval_seconds: Option<f64>,
    /// Series in Prometheus' head block.
    total_series: Option<u64>,
}

/// `GET /api/system/monitoring/health`.
#[derive(Debug, Serialize, ToSchema)]
struct StackHealth {
    /// Set only when Prometheus is unreachable (the answer is then 503).
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<String>,
    /// Prometheus answers and more targets are up than down (or none is down).
    healthy: bool,
    /// Whether Prometheus answered.
    prometheus_reachable: bool,
    /// `prometheus.url`.
    prometheus_url: String,
    /// Targets per job.
    targets_summary: Vec<JobSummary>,
    /// Targets of the known exporter jobs.
    exporters: Vec<ExporterView>,
    /// Whether Prometheus is collecting.
    metrics_collection: MetricsCollection,
    /// What is wrong, one line each.
    issues: Vec<String>,
    /// When it was computed (RFC 3339).
    timestamp: String,
}

/// `GET /api/system/monitoring/targets`.
#[derive(Debug, Serialize, ToSchema)]
struct TargetsAnswer {
    /// Every active scrape target.
    targets: Vec<TargetView>,
    /// Targets.
    total: usize,
    /// Of which up.
    up: usize,
    /// Of which down.
    down: usize,
    /// Of which not scraped yet.
    unknown: usize,
    /// The jobs, sorted.
    jobs: Vec<String>,
    /// When it was computed (RFC 3339).
    timestamp: String,
}

/// One client for every query to Prometheus.
fn client(config: &PrometheusConfig) -> Result<&'static reqwest::Client, String> {
    static CLIENT: OnceLock<Result<reqwest::Client, String>> = OnceLock::new();
    CLIENT
        .get_or_init(|| {
            let _ = rustls::crypto::ring::default_provider().install_default();
            reqwest::Client::builder()
                .timeout(config.timeout)
                .build()
                .map_err(|e| format!("cannot build an HTTP client: {e}"))
        })
        .as_ref()
        .map_err(Clone::clone)
}

fn enabled(state: &AppState) -> ApiResult<&PrometheusConfig> {
    let config = &state.config.prometheus;
    if !config.enabled {
        return Err(ApiError::not_found(
            "the Prometheus stack routes are off (prometheus.enabled = false, or PROMETHEUS_ENABLED=false)",
        ));
    }
    Ok(config)
}

/// `GET {url}/api/v1/{path}` and its `data`.
async fn query<T: for<'de> Deserialize<'de>>(
    config: &PrometheusConfig,
    path: &str,
) -> Result<T, String> {
    let base = config.url.trim().trim_end_matches('/');
    let url = format!("{base}/api/v1/{path}");
    let response = client(config)?
        .get(&url)
        .timeout(config.timeout)
        .send()
        .await
        .map_err(|e| format!("{url}: {e}"))?;
    let status = response.status();
    let body = response.bytes().await.map_err(|e| format!("{url}: {e}"))?;
    let answer: PromAnswer<T> = serde_json::from_slice(&body).map_err(|e| {
        format!("{url} answered {status} with something that is not Prometheus' API JSON: {e}")
    })?;
    match (answer.status.as_str(), answer.data) {
        ("success", Some(data)) => Ok(data),
        _ => Err(format!(
            "{url} answered {status}: {}",
            answer.error.unwrap_or_else(|| answer.status.clone())
        )),
    }
}

fn health_word(health: &str) -> &'static str {
    match health {
        "up" => "up",
        "down" => "down",
        _ => "unknown",
    }
}

fn target_view(t: PromTarget) -> TargetView {
    let job = t.labels.get("job").cloned().unwrap_or(t.scrape_pool);
    TargetView {
        instance: t.labels.get("instance").cloned().unwrap_or_default(),
        job,
        health: health_word(&t.health),
        labels: t.labels,
        last_scrape: t.last_scrape,
        last_error: Some(t.last_error).filter(|e| !e.is_empty()),
        scrape_duration_seconds: t.last_scrape_duration,
    }
}

fn count(targets: &[TargetView], health: &str) -> usize {
    targets.iter().filter(|t| t.health == health).count()
}

/// `GET /api/system/monitoring/targets`.
#[utoipa::path(
    get,
    path = "/api/system/monitoring/targets",
    tag = tag::SYSTEM,
    summary = "Prometheus' scrape targets (seed 004)",
    description = "Every active scrape target of the Prometheus server at `prometheus.url` (or `PROMETHEUS_URL`).",
    responses(
        (status = 200, description = "The targets", body = TargetsAnswer),
        (status = 404, description = "The Prometheus stack routes are off (`prometheus.enabled = false` or `PROMETHEUS_ENABLED=false`)", body = ApiError),
        (status = 503, description = "Prometheus is unreachable", body = ApiError),
    )
)]
async fn monitoring_targets(State(state): AppRef) -> ApiResult<Json<TargetsAnswer>> {
    let config = enabled(&state)?;
    let answer: PromTargets = query(config, "targets?state=active")
        .await
        .map_err(|e| unreachable(config, &e))?;
    let targets: Vec<TargetView> = answer.active_targets.into_iter().map(target_view).collect();
    let mut jobs: Vec<String> = targets.iter().map(|t| t.job.clone()).collect();
    jobs.sort();
    jobs.dedup();
    Ok(Json(TargetsAnswer {
        total: targets.len(),
        up: count(&targets, "up"),
        down: count(&targets, "down"),
        unknown: count(&targets, "unknown"),
        targets,
        jobs,
        timestamp: crate::time::rfc3339(crate::time::now_ms()),
    }))
}

fn unreachable(config: &PrometheusConfig, error: &str) -> ApiError {
    tracing::warn!(url = %config.url, error, "prometheus unreachable");
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        format!("prometheus at {} is unreachable: {error}", config.url),
    )
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct TsdbStatus {
    head_stats: Option<HeadStats>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct HeadStats {
    num_series: Option<u64>,
}

/// Seed 004's majority rule: healthy when Prometheus answers and fewer
/// targets are down than up (no target down at all is healthy too).
fn healthy(reachable: bool, up: usize, down: usize) -> bool {
    reachable && (down == 0 || up > down)
}

/// `GET /api/system/monitoring/health`.
#[utoipa::path(
    get,
    path = "/api/system/monitoring/health",
    tag = tag::SYSTEM,
    summary = "Health of the Prometheus stack (seed 004)",
    description = "Asks the Prometheus server at `prometheus.url` about its targets: `healthy` by seed 004's majority rule, `targets_summary` per job, `exporters`, `metrics_collection` and `issues`.",
    responses(
        (status = 200, description = "Prometheus answered", body = StackHealth),
        (status = 404, description = "The Prometheus stack routes are off (`prometheus.enabled = false` or `PROMETHEUS_ENABLED=false`)", body = ApiError),
        (status = 503, description = "Prometheus is unreachable: the same document with `healthy: false` and a `detail`", body = StackHealth),
    )
)]
async fn monitoring_health(State(state): AppRef) -> ApiResult<Response> {
    let config = enabled(&state)?;
    let timestamp = crate::time::rfc3339(crate::time::now_ms());
    let answer: PromTargets = match query(config, "targets?state=active").await {
        Ok(answer) => answer,
        Err(error) => {
            let detail = unreachable(config, &error).detail;
            let body = StackHealth {
                detail: Some(detail.clone()),
                healthy: false,
                prometheus_reachable: false,
                prometheus_url: config.url.clone(),
                targets_summary: Vec::new(),
                exporters: Vec::new(),
                metrics_collection: MetricsCollection {
                    collecting: false,
                    last_successful_scrape: None,
                    scrape_interval_seconds: None,
                    total_series: None,
                },
                issues: vec![detail],
                timestamp,
            };
            return Ok((StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response());
        }
    };
    let interval = answer
        .active_targets
        .iter()
        .find_map(|t| t.scrape_interval.as_deref())
        .and_then(|i| crate::units::parse_duration(i).ok())
        .map(|d| d.as_secs_f64());
    let targets: Vec<TargetView> = answer.active_targets.into_iter().map(target_view).collect();
    let mut jobs: BTreeMap<String, JobSummary> = BTreeMap::new();
    for t in &targets {
        let job = jobs.entry(t.job.clone()).or_insert_with(|| JobSummary {
            job: t.job.clone(),
            ..JobSummary::default()
        });
        job.total += 1;
        match t.health {
            "up" => job.up += 1,
            "down" => job.down += 1,
            _ => job.unknown += 1,
        }
    }
    let (up, down) = (count(&targets, "up"), count(&targets, "down"));
    let mut issues: Vec<String> = targets
        .iter()
        .filter(|t| t.health == "down")
        .map(|t| {
            format!(
                "target {} of job {} is down: {}",
                t.instance,
                t.job,
                t.last_error.as_deref().unwrap_or("no error given")
            )
        })
        .collect();
    if targets.is_empty() {
        issues.push("prometheus has no active scrape targets".to_string());
    }
    let exporters = targets
        .iter()
        .filter(|t| KNOWN_EXPORTERS.contains(&t.job.as_str()))
        .map(|t| ExporterView {
            name: t.job.clone(),
            status: t.health,
            endpoint: t.instance.clone(),
            last_scrape: t.last_scrape.clone(),
            error: t.last_error.clone(),
        })
        .collect();
    let total_series = query::<TsdbStatus>(config, "status/tsdb")
        .await
        .ok()
        .and_then(|s| s.head_stats)
        .and_then(|h| h.num_series);
    let body = StackHealth {
        detail: None,
        healthy: healthy(true, up, down),
        prometheus_reachable: true,
        prometheus_url: config.url.clone(),
        targets_summary: jobs.into_values().collect(),
        exporters,
        metrics_collection: MetricsCollection {
            collecting: up > 0,
            last_successful_scrape: targets
                .iter()
                .filter(|t| t.health == "up")
                .filter_map(|t| t.last_scrape.clone())
                .max(),
            scrape_interval_seconds: interval,
            total_series,
        },
        issues,
        timestamp,
    };
    Ok(Json(body).into_response())
}

#[cfg(test)]
mod tests {
    use super::healthy;

    #[test]
    fn the_majority_rule() {
        assert!(healthy(true, 0, 0));
        assert!(healthy(true, 3, 0));
        assert!(healthy(true, 2, 1));
        assert!(!healthy(true, 1, 1));
        assert!(!healthy(true, 1, 2));
        assert!(!healthy(false, 5, 0));
    }
}
