//! What each source sampler says about itself (enabled, available, up, why
//! not, its devices), published after every run for the REST API.

use parking_lot::RwLock;
use serde::Serialize;
use std::collections::BTreeMap;
use std::sync::Arc;

/// One sampler's state after its last run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct SamplerStatus {
    /// The sampler, which is also its store source (`system`, `gpu`).
    pub name: String,
    /// Whether the configuration turned it on.
    pub enabled: bool,
    /// Whether what it reads can be read at all (for `gpu`: the NVML library
    /// loaded and initialised). A sampler that is unavailable retries on its
    /// own slower interval.
    pub available: bool,
    /// Whether its last run read everything it should have
    /// (`wasmon_sampler_up`).
    pub up: bool,
    /// Why it is not available or not up; none when up.
    pub reason: Option<String>,
    /// Seconds until its next run, as it chose after the last one.
    pub interval_seconds: f64,
    /// Runs so far, including those that found it unavailable.
    pub runs: u64,
    /// Unix milliseconds of the last run; none before the first.
    pub last_run_ms: Option<u64>,
    /// Unix milliseconds of the last run that was available.
    pub last_sample_ms: Option<u64>,
    /// The driver's version, for samplers of a device driver.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub driver_version: Option<String>,
    /// The devices it samples, for samplers of devices.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<DeviceStatus>,
}

impl SamplerStatus {
    /// A sampler the configuration turned off by `setting`.
    pub fn disabled(name: &str, setting: &str) -> SamplerStatus {
        SamplerStatus {
            name: name.into(),
            reason: Some(format!("disabled by {setting}")),
            ..SamplerStatus::default()
        }
    }
}

/// One device of a sampler.
#[derive(Debug, Clone, Default, PartialEq, Serialize, utoipa::ToSchema)]
pub struct DeviceStatus {
    /// The device's index (the `gpu` label); empty when a device selected by
    /// UUID was not found.
    pub gpu: String,
    /// Its UUID, once read.
    pub uuid: Option<String>,
    /// Its product name, once read.
    pub name: Option<String>,
    /// Its PCI bus id, once read.
    pub pci_bus_id: Option<String>,
    /// Whether its last sample succeeded (`wasmon_gpu_up`).
    pub up: bool,
    /// Why it is down; none when up.
    pub reason: Option<String>,
    /// Fields the device does not support: skipped for this device only.
    pub unsupported: Vec<&'static str>,
    /// Fields that failed at the last sample, with the error.
    pub failing: BTreeMap<&'static str, String>,
    /// XID errors counted since the driver was loaded, when XID events are
    /// supported.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub xid_errors: Option<u64>,
    /// The last XID seen.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_xid: Option<u64>,
}

/// Every sampler's latest status, shared between the samplers that write it
/// and the API that reads it. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct SamplerStatuses(Arc<RwLock<BTreeMap<String, SamplerStatus>>>);

impl SamplerStatuses {
    /// Replaces the status of `status.name`.
    pub fn set(&self, status: SamplerStatus) {
        self.0.write().insert(status.name.clone(), status);
    }

    /// Every sampler, by name.
    pub fn list(&self) -> Vec<SamplerStatus> {
        self.0.read().values().cloned().collect()
    }

    /// One sampler.
    pub fn get(&self, name: &str) -> Option<SamplerStatus> {
        self.0.read().get(name).cloned()
    }
}
