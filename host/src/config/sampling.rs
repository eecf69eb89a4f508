//! `[sampling]`, `[gpu]` and `[store]`: what the host samples and how much of it it keeps.

use crate::units;
use anyhow::{Result, bail};
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

/// Native system sampling.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SamplingConfig {
    /// Whether to sample the system at all.
    #[serde(deserialize_with = "units::flag")]
    pub enabled: bool,
    /// Time between samples (`MONITORING_POLL_INTERVAL`).
    #[serde(with = "units::duration")]
    pub interval: Duration,
    /// Filesystem types to skip (pseudo filesystems).
    pub ignore_fstypes: Vec<String>,
    /// Mount points to skip (prefixes).
    pub ignore_mountpoints: Vec<String>,
    /// Network devices to skip (prefixes), e.g. `veth`.
    pub ignore_network_devices: Vec<String>,
    /// Whether the `system` sampler being down (a part of it failing) makes
    /// the host `unhealthy` (503 on `/readyz` and `/api/system/health/full`)
    /// rather than `degraded`.
    #[serde(deserialize_with = "units::flag")]
    pub critical: bool,
}

impl Default for SamplingConfig {
    fn default() -> Self {
        SamplingConfig {
            enabled: true,
            interval: Duration::from_secs(5),
            ignore_fstypes: [
                "tmpfs",
                "devtmpfs",
                "overlay",
                "squashfs",
                "proc",
                "sysfs",
                "cgroup",
                "cgroup2",
                "nsfs",
                "autofs",
                "devpts",
                "mqueue",
                "tracefs",
                "debugfs",
                "securityfs",
                "pstore",
                "bpf",
                "fusectl",
                "configfs",
                "hugetlbfs",
                "ramfs",
                "binfmt_misc",
            ]
            .map(String::from)
            .to_vec(),
            ignore_mountpoints: ["/proc", "/sys", "/dev", "/run"].map(String::from).to_vec(),
            ignore_network_devices: Vec::new(),
            critical: false,
        }
    }
}

/// GPU sampling through NVML.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GpuConfig {
    /// `auto` (sample when a driver is found), `true` (expect one; warn when
    /// missing) or `false` (`MONITORING_GPU_ENABLED`).
    pub enabled: GpuEnabled,
    /// Path of `libnvidia-ml.so`; the library search path when absent.
    pub library: Option<PathBuf>,
    /// Which devices to sample, by index or UUID; all when empty.
    pub devices: Vec<String>,
    /// Time between GPU samples; `sampling.interval` when absent.
    #[serde(with = "units::duration_opt")]
    pub interval: Option<Duration>,
    /// How often to retry loading NVML when it is unavailable.
    #[serde(with = "units::duration")]
    pub retry_interval: Duration,
    /// Whether the `gpu` sampler being down (no driver while `enabled =
    /// true`, a device lost) makes the host `unhealthy` (503 on `/readyz` and
    /// `/api/system/health/full`) rather than `degraded`.
    #[serde(deserialize_with = "units::flag")]
    pub critical: bool,
}

impl Default for GpuConfig {
    fn default() -> Self {
        GpuConfig {
            enabled: GpuEnabled::Auto,
            library: None,
            devices: Vec::new(),
            interval: None,
            retry_interval: Duration::from_secs(60),
            critical: false,
        }
    }
}

/// Whether GPU sampling runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GpuEnabled {
    /// When a driver is found.
    Auto,
    /// Always; a missing driver is a warning.
    On,
    /// Never.
    Off,
}

impl<'de> Deserialize<'de> for GpuEnabled {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match units::FlagOrWord::deserialize(d)? {
            units::FlagOrWord::Flag(true) => Ok(GpuEnabled::On),
            units::FlagOrWord::Flag(false) => Ok(GpuEnabled::Off),
            units::FlagOrWord::Word(w) if w.eq_ignore_ascii_case("auto") => Ok(GpuEnabled::Auto),
            units::FlagOrWord::Word(w) => Err(serde::de::Error::custom(format!(
                "expected auto, true or false, found {w:?}"
            ))),
        }
    }
}

impl GpuConfig {
    /// Checks what types alone cannot.
    pub(super) fn validate(&self) -> Result<()> {
        if self.retry_interval.is_zero() || self.interval.is_some_and(|i| i.is_zero()) {
            let key = if self.retry_interval.is_zero() {
                "retry_interval"
            } else {
                "interval"
            };
            bail!("invalid value for `gpu.{key}`: must be greater than zero");
        }
        if self.devices.iter().any(|d| d.trim().is_empty()) {
            bail!("invalid value for `gpu.devices`: an entry is empty (give an index or a UUID)");
        }
        Ok(())
    }
}

/// The in-memory store of samples.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// How much history to keep per series (`MONITORING_HISTORY_WINDOW`, minutes).
    #[serde(with = "units::duration")]
    pub history_window: Duration,
    /// Width of one history bucket (min/max/avg kept per bucket).
    #[serde(with = "units::duration")]
    pub history_resolution: Duration,
    /// Most series the plugins hold together (live and stale); excess is
    /// dropped and counted. The host's own sources do not count here.
    pub max_series: usize,
    /// Most series the host's own sources (the `system` and `gpu` samplers,
    /// the alerts' `wasmon_alert_active`) hold together: a budget of their own
    /// that plugins cannot take. Alerts may use at most half of it.
    pub reserved_series: usize,
    /// Most points (series × points per series) one answer of `GET
    /// /api/history` or a `/metrics/*?history=` snapshot may hold; a query
    /// above it is 400, naming this key.
    pub max_query_points: usize,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            history_window: Duration::from_secs(3600),
            history_resolution: Duration::from_secs(10),
            max_series: 200_000,
            reserved_series: 20_000,
            max_query_points: 100_000,
        }
    }
}
