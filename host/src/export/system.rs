//! Health documents: seed 003's `GET /health` (the rules' conditions, their
//! statuses and the overall one) and seed 004's Prometheus stack,
//! `GET /api/system/monitoring/health` and `/targets`, which ask the
//! Prometheus server of `[prometheus]` about its scrape targets.

use super::error::{ApiError, ApiResult};
use crate::app::AppState;
use crate::config::PrometheusConfig;
use crate::rules::StatusDocument;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

type AppRef = State<Arc<AppState>>;

/// Jobs whose targets seed 004 lists as exporters.
const KNOWN_EXPORTERS: [&str; 3] = ["redis-exporter", "json-exporter", "blackbox-exporter"];

/// The routes of this file.
pub(super) fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/health", get(health))
        .route("/api/system/monitoring/health", get(monitoring_health))
        .route("/api/system/monitoring/targets", get(monitoring_targets))
}

/// `GET /health`: seed 003's status document, always 200.
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
#[derive(Debug, Serialize)]
struct TargetView {
    job: String,
    instance: String,
    /// `up`, `down` or `unknown`.
    health: &'static str,
    labels: BTreeMap<String, String>,
    last_scrape: Option<String>,
    last_error: Option<String>,
    scrape_duration_seconds: Option<f64>,
}

/// Targets per job in the health document.
#[derive(Debug, Serialize, Default)]
struct JobSummary {
    job: String,
    total: usize,
    up: usize,
    down: usize,
    unknown: usize,
}

#[derive(Debug, Serialize)]
struct ExporterView {
    name: String,
    status: &'static str,
    endpoint: String,
    last_scrape: Option<String>,
    error: Option<String>,
}

#[derive(Debug, Serialize)]
struct MetricsCollection {
    collecting: bool,
    last_successful_scrape: Option<String>,
    scrape_interval_seconds: Option<f64>,
    total_series: Option<u64>,
}

/// `GET /api/system/monitoring/health`.
#[derive(Debug, Serialize)]
struct StackHealth {
    /// Set only when Prometheus is unreachable (the answer is then 503).
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<String>,
    healthy: bool,
    prometheus_reachable: bool,
    prometheus_url: String,
    targets_summary: Vec<JobSummary>,
    exporters: Vec<ExporterView>,
    metrics_collection: MetricsCollection,
    issues: Vec<String>,
    timestamp: String,
}

/// `GET /api/system/monitoring/targets`.
#[derive(Debug, Serialize)]
struct TargetsAnswer {
    targets: Vec<TargetView>,
    total: usize,
    up: usize,
    down: usize,
    unknown: usize,
    jobs: Vec<String>,
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
