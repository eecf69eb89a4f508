//! `[snapshots]` and `[prometheus]`: which series seed 001's `/metrics/*`
//! snapshot paths show, and the Prometheus server that
//! `/api/system/monitoring/*` asks about its targets.

use crate::units;
use serde::Deserialize;
use std::time::Duration;

/// The metric name prefixes behind each of seed 001's snapshot paths
/// (`GET /metrics/{system,gpu,clients,pipelines,storage}`): a live series is
/// in a snapshot when its exported name starts with one of the path's
/// prefixes. A path whose collectors do not run answers an empty list.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SnapshotsConfig {
    /// `/metrics/system`: the host's CPU, memory, swap, load, disk,
    /// filesystem and network series, uptime and boot time.
    pub system: Vec<String>,
    /// `/metrics/gpu`: the NVML sampler's series.
    pub gpu: Vec<String>,
    /// `/metrics/clients`: connected clients (seed 001's `fr_gateway_client_*`).
    pub clients: Vec<String>,
    /// `/metrics/pipelines`: pipeline throughput and latency (`fr_pipeline_*`).
    pub pipelines: Vec<String>,
    /// `/metrics/storage`: object storage (`fr_storage_*`, MinIO's `minio_*`).
    pub storage: Vec<String>,
}

impl Default for SnapshotsConfig {
    fn default() -> Self {
        let owned = |list: &[&str]| list.iter().map(|s| (*s).to_string()).collect();
        SnapshotsConfig {
            system: owned(&[
                "wasmon_cpu_",
                "wasmon_memory_",
                "wasmon_swap_",
                "wasmon_load",
                "wasmon_disk_",
                "wasmon_filesystem_",
                "wasmon_network_",
                "wasmon_uptime_",
                "wasmon_boot_time_",
            ]),
            gpu: owned(&["wasmon_gpu_"]),
            clients: owned(&["fr_gateway_client"]),
            pipelines: owned(&["fr_pipeline"]),
            storage: owned(&["fr_storage", "minio_"]),
        }
    }
}

impl SnapshotsConfig {
    /// The prefixes of snapshot `name` (`system`, `gpu`, ...), if it is one.
    pub fn prefixes(&self, name: &str) -> Option<&[String]> {
        Some(match name {
            "system" => &self.system,
            "gpu" => &self.gpu,
            "clients" => &self.clients,
            "pipelines" => &self.pipelines,
            "storage" => &self.storage,
            _ => return None,
        })
    }

    /// The names of the snapshot paths.
    pub const NAMES: [&'static str; 5] = ["system", "gpu", "clients", "pipelines", "storage"];
}

/// The Prometheus server behind `GET /api/system/monitoring/health` and
/// `/targets` (seed 004).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PrometheusConfig {
    /// Whether those routes answer (`PROMETHEUS_ENABLED`); when off they are
    /// 404 with a detail saying so.
    #[serde(deserialize_with = "units::flag")]
    pub enabled: bool,
    /// Base URL of the Prometheus server (`PROMETHEUS_URL`).
    pub url: String,
    /// How long one query to it may take before it counts as unreachable.
    #[serde(with = "units::duration")]
    pub timeout: Duration,
}

impl Default for PrometheusConfig {
    fn default() -> Self {
        PrometheusConfig {
            enabled: true,
            url: "http://localhost:9090".to_string(),
            timeout: Duration::from_secs(5),
        }
    }
}

impl PrometheusConfig {
    /// Checks the URL's scheme.
    pub(super) fn validate(&self) -> anyhow::Result<()> {
        let url = self.url.trim();
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            anyhow::bail!(
                "invalid value for `prometheus.url`: {url:?} is not an http:// or https:// URL"
            );
        }
        if self.timeout.is_zero() {
            anyhow::bail!("invalid value for `prometheus.timeout`: must be greater than zero");
        }
        Ok(())
    }
}
