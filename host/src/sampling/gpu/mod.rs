//! NVIDIA GPU sampling through NVML (`nvml-wrapper`), as host source `gpu`.
//!
//! # Degrade, never fail
//!
//! The sampler is a [`SourceSampler`] with two states:
//!
//! - **unavailable**: the NVML library could not be loaded, or `nvmlInit`
//!   failed (no driver), or the device count stopped answering. The snapshot
//!   holds only `wasmon_sampler_up{sampler="gpu"} 0`, the status says why, and
//!   the next attempt comes after `gpu.retry_interval`, so a driver installed
//!   or loaded later is picked up. Each distinct reason is logged once: at info
//!   level when `gpu.enabled = "auto"` found no library, as a warning otherwise.
//! - **available**: one [`Nvml`] is kept alive; every `gpu.interval`
//!   (`sampling.interval` by default) each selected device is read. A field a
//!   device does not support (NOT_SUPPORTED, or a symbol the driver lacks) is
//!   skipped for that device only; a device whose queries fail (GPU lost, or
//!   nothing answers) reports `wasmon_gpu_up 0` and none of its other series,
//!   without hiding the other devices.
//!
//! XID errors are counted by a small thread of their own ([`xid`]), because
//! NVML's event sets borrow the library handle.
//!
//! # Series
//!
//! Every device series carries `gpu` (the NVML index) and `uuid`; units are
//! base units (ratios 0–1, bytes, celsius, watts, joules, hertz):
//! `wasmon_gpu_up`, `wasmon_gpu_info{name,pci_bus_id,driver_version}`,
//! `wasmon_gpu_utilization_ratio`, `wasmon_gpu_memory_utilization_ratio`,
//! `wasmon_gpu_memory_{used,free,total}_bytes`, `wasmon_gpu_temperature_celsius`,
//! `wasmon_gpu_power_usage_watts`, `wasmon_gpu_power_limit_watts`,
//! `wasmon_gpu_energy_joules_total`, `wasmon_gpu_sm_clock_hertz`,
//! `wasmon_gpu_memory_clock_hertz`, `wasmon_gpu_fan_speed_ratio{fan}`,
//! `wasmon_gpu_pcie_{transmit,receive}_bytes_per_second`,
//! `wasmon_gpu_performance_state`, `wasmon_gpu_ecc_errors_total{type}`,
//! `wasmon_gpu_xid_errors_total`; and, for the sampler, `wasmon_gpu_devices`,
//! `wasmon_sampler_up{sampler="gpu"}` and `wasmon_sampler_duration_seconds`.
//!
//! This module knows nothing of wasmtime or HTTP.

mod device;
mod xid;

use super::{SamplerStatus, SamplerStatuses, SourceSampler};
use crate::config::{GpuConfig, GpuEnabled};
use crate::model::Sample;
use crate::shutdown::Shutdown;
use crate::store::Store;
use device::DeviceSlot;
use nvml_wrapper::Nvml;
use nvml_wrapper::error::NvmlError;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;
use xid::XidWatcher;

/// The library `nvml-wrapper` opens when `gpu.library` is not set.
const DEFAULT_LIBRARY: &str = "libnvidia-ml.so.1";

/// Starts GPU sampling as host source `gpu` unless `config.enabled` is false;
/// `default_interval` (`sampling.interval`) applies when `gpu.interval` is unset.
pub fn spawn(
    config: &GpuConfig,
    default_interval: Duration,
    store: Arc<Store>,
    statuses: &SamplerStatuses,
    shutdown: Shutdown,
) -> JoinHandle<()> {
    if config.enabled == GpuEnabled::Off {
        tracing::info!("GPU sampling disabled");
        statuses.set(SamplerStatus::disabled("gpu", "gpu.enabled = false"));
        return tokio::spawn(async {});
    }
    let sampler = GpuSampler::new(config, default_interval);
    super::spawn_source(sampler, store, statuses, shutdown)
}

/// Which device a `gpu.devices` entry names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Selector {
    /// By NVML index (an entry of digits).
    Index(u32),
    /// By UUID (`GPU-...`).
    Uuid(String),
}

impl Selector {
    fn parse(entry: &str) -> Selector {
        let entry = entry.trim();
        match entry.parse() {
            Ok(index) => Selector::Index(index),
            Err(_) => Selector::Uuid(entry.to_string()),
        }
    }
}

/// NVML while it is loaded.
struct Loaded {
    nvml: Arc<Nvml>,
    driver_version: String,
    xid: Option<XidWatcher>,
}

/// The `gpu` source: see the [module docs](self).
pub struct GpuSampler {
    enabled: GpuEnabled,
    library: Option<PathBuf>,
    selection: Vec<Selector>,
    interval: Duration,
    retry_interval: Duration,
    loaded: Option<Loaded>,
    /// Why NVML is unavailable; none while it is loaded.
    unavailable: Option<String>,
    /// The unavailability reason logged last, so each is logged once.
    logged: Option<String>,
    /// The devices of the last run, in the order sampled.
    devices: Vec<DeviceSlot>,
    /// Whether the last run read every selected device.
    up: bool,
}

impl GpuSampler {
    /// A sampler for `config`; nothing is loaded until the first
    /// [`sample`](Self::sample). `default_interval` applies when
    /// `config.interval` is unset.
    pub fn new(config: &GpuConfig, default_interval: Duration) -> GpuSampler {
        GpuSampler {
            enabled: config.enabled,
            library: config.library.clone(),
            selection: config.devices.iter().map(|d| Selector::parse(d)).collect(),
            interval: config.interval.unwrap_or(default_interval),
            retry_interval: config.retry_interval,
            loaded: None,
            unavailable: None,
            logged: None,
            devices: Vec::new(),
            up: false,
        }
    }

    /// Whether NVML is loaded.
    pub fn is_available(&self) -> bool {
        self.loaded.is_some()
    }

    /// One snapshot: loads NVML first if it is not loaded, then reads every
    /// selected device. Never fails: what cannot be read is reported as down.
    pub fn sample(&mut self) -> Vec<Sample> {
        let started = Instant::now();
        let mut out = Vec::with_capacity(8 + 24 * self.devices.len().max(1));
        if self.loaded.is_none() {
            self.load();
        }
        self.up = false;
        if let Some(loaded) = &self.loaded {
            match sample_devices(loaded, &self.selection, &mut self.devices, &mut out) {
                Ok(all_up) => self.up = all_up,
                Err(error) => {
                    let reason = format!("NVML stopped answering: {error}");
                    self.loaded = None;
                    self.devices.clear();
                    self.set_unavailable(reason, false);
                }
            }
        }
        out.push(
            Sample::gauge("wasmon_sampler_up", f64::from(u8::from(self.up)))
                .label("sampler", "gpu")
                .help("Whether every part of a sampler succeeded at its last run (1) or not (0)."),
        );
        out.push(
            Sample::gauge(
                "wasmon_sampler_duration_seconds",
                started.elapsed().as_secs_f64(),
            )
            .label("sampler", "gpu")
            .help("Time the last run of a sampler took."),
        );
        out
    }

    /// Loads and initialises NVML, or records why it cannot.
    fn load(&mut self) {
        let library = self
            .library
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_LIBRARY));
        let nvml = match Nvml::builder().lib_path(library.as_os_str()).init() {
            Ok(nvml) => Arc::new(nvml),
            Err(NvmlError::LibloadingError(error)) => {
                let reason = format!(
                    "cannot load the NVML library {}: {error}",
                    library.display()
                );
                self.set_unavailable(reason, true);
                return;
            }
            Err(error) => {
                self.set_unavailable(format!("NVML failed to initialise: {error}"), false);
                return;
            }
        };
        let driver_version = nvml.sys_driver_version().unwrap_or_default();
        let count = nvml.device_count();
        tracing::info!(
            sampler = "gpu",
            library = %library.display(),
            %driver_version,
            devices = count.as_ref().map_or(0, |n| *n),
            "GPU sampling available"
        );
        let uuids = self.uuids(&nvml, count.unwrap_or(0));
        let xid = XidWatcher::start(nvml.clone(), uuids);
        self.loaded = Some(Loaded {
            nvml,
            driver_version,
            xid,
        });
        self.unavailable = None;
        self.logged = None;
    }

    /// The UUIDs of the selected devices that answer now (for XID events).
    fn uuids(&self, nvml: &Nvml, count: u32) -> Vec<String> {
        let targets: Vec<Selector> = if self.selection.is_empty() {
            (0..count).map(Selector::Index).collect()
        } else {
            self.selection.clone()
        };
        targets
            .iter()
            .filter_map(|target| match target {
                Selector::Index(i) => nvml.device_by_index(*i).and_then(|d| d.uuid()).ok(),
                Selector::Uuid(uuid) => Some(uuid.clone()),
            })
            .collect()
    }

    /// Records `reason` and logs it unless it was the last one logged.
    /// `no_library`: the library itself is missing, which `auto` expects on a
    /// machine without a GPU (info, not a warning).
    fn set_unavailable(&mut self, reason: String, no_library: bool) {
        if self.logged.as_deref() != Some(reason.as_str()) {
            let retry = humantime::format_duration(self.retry_interval).to_string();
            if no_library && self.enabled == GpuEnabled::Auto {
                tracing::info!(sampler = "gpu", %reason, %retry, "GPU sampling unavailable");
            } else {
                tracing::warn!(sampler = "gpu", %reason, %retry, "GPU sampling unavailable");
            }
            self.logged = Some(reason.clone());
        }
        self.unavailable = Some(reason);
    }
}

/// Reads every device `selection` names (every device when empty) into
/// `out`, keeping `slots` in step. Whether all were up; an error when NVML
/// itself no longer answers (the device count fails).
fn sample_devices(
    loaded: &Loaded,
    selection: &[Selector],
    slots: &mut Vec<DeviceSlot>,
    out: &mut Vec<Sample>,
) -> Result<bool, NvmlError> {
    let count = loaded.nvml.device_count()?;
    let targets: Vec<Selector> = if selection.is_empty() {
        (0..count).map(Selector::Index).collect()
    } else {
        selection.to_vec()
    };
    if slots.len() != targets.len() || slots.iter().zip(&targets).any(|(s, t)| s.target() != t) {
        let mut old = std::mem::take(slots);
        for target in targets {
            let slot = match old.iter().position(|s| *s.target() == target) {
                Some(i) => old.swap_remove(i),
                None => DeviceSlot::new(target),
            };
            slots.push(slot);
        }
    }
    out.push(
        Sample::gauge("wasmon_gpu_devices", f64::from(count))
            .help("Number of GPUs NVML reports, selected or not."),
    );
    let mut all_up = true;
    for slot in slots.iter_mut() {
        all_up &= slot.sample(
            &loaded.nvml,
            &loaded.driver_version,
            loaded.xid.as_ref(),
            out,
        );
    }
    Ok(all_up)
}

impl SourceSampler for GpuSampler {
    fn source(&self) -> &str {
        "gpu"
    }

    fn interval(&self) -> Duration {
        if self.loaded.is_some() {
            self.interval
        } else {
            self.retry_interval
        }
    }

    fn sample(&mut self) -> Vec<Sample> {
        GpuSampler::sample(self)
    }

    fn status(&self) -> SamplerStatus {
        let devices: Vec<_> = self
            .devices
            .iter()
            .map(|slot| slot.status(self.loaded.as_ref().and_then(|l| l.xid.as_ref())))
            .collect();
        let down: Vec<String> = devices
            .iter()
            .filter(|d| !d.up)
            .map(|d| {
                let name = if d.gpu.is_empty() {
                    d.uuid.clone().unwrap_or_default()
                } else {
                    d.gpu.clone()
                };
                format!("gpu {name}: {}", d.reason.as_deref().unwrap_or("down"))
            })
            .collect();
        let reason = match &self.unavailable {
            Some(reason) => Some(reason.clone()),
            None if !down.is_empty() => Some(down.join("; ")),
            None => None,
        };
        SamplerStatus {
            name: "gpu".into(),
            enabled: true,
            available: self.loaded.is_some(),
            up: self.up,
            reason,
            interval_seconds: self.interval().as_secs_f64(),
            driver_version: self.loaded.as_ref().map(|l| l.driver_version.clone()),
            devices,
            ..SamplerStatus::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors() {
        assert_eq!(Selector::parse("0"), Selector::Index(0));
        assert_eq!(Selector::parse(" 12 "), Selector::Index(12));
        assert_eq!(
            Selector::parse("GPU-8f6e1f2a"),
            Selector::Uuid("GPU-8f6e1f2a".into())
        );
    }

    #[test]
    fn a_missing_library_is_unavailable_and_retried_slowly() {
        let config = GpuConfig {
            library: Some("/nonexistent/libnvidia-ml.so.1".into()),
            interval: Some(Duration::from_millis(100)),
            retry_interval: Duration::from_secs(7),
            ..GpuConfig::default()
        };
        let mut sampler = GpuSampler::new(&config, Duration::from_secs(5));
        for _ in 0..2 {
            let samples = sampler.sample();
            let up: Vec<_> = samples
                .iter()
                .filter(|s| s.name == "wasmon_sampler_up")
                .collect();
            assert_eq!(up.len(), 1);
            assert_eq!(up[0].value, 0.0);
            assert_eq!(up[0].label_value("sampler"), Some("gpu"));
            assert!(samples.iter().all(|s| !s.name.starts_with("wasmon_gpu_")));
            assert!(!sampler.is_available());
            assert_eq!(SourceSampler::interval(&sampler), Duration::from_secs(7));
            let status = sampler.status();
            assert!(status.enabled && !status.available && !status.up);
            let reason = status.reason.unwrap();
            assert!(
                reason.starts_with("cannot load the NVML library /nonexistent/libnvidia-ml.so.1"),
                "{reason}"
            );
        }
    }
}
