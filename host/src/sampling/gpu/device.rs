//! One GPU: its identity, read once, and one snapshot of its fields per run,
//! each field skipped on its own when the device does not support it.

use super::Selector;
use super::xid::XidWatcher;
use crate::model::Sample;
use crate::sampling::DeviceStatus;
use nvml_wrapper::enum_wrappers::device::{
    Clock, EccCounter, MemoryError, PcieUtilCounter, PerformanceState, TemperatureSensor,
};
use nvml_wrapper::error::NvmlError;
use nvml_wrapper::{Device, Nvml};
use std::collections::{BTreeMap, BTreeSet};

/// Most fans read per device.
const MAX_FANS: u32 = 16;

/// What does not change while the driver stays loaded.
#[derive(Debug, Clone)]
struct Identity {
    uuid: String,
    name: String,
    pci_bus_id: String,
}

/// A device the sampler reads, kept between runs.
pub(super) struct DeviceSlot {
    target: Selector,
    /// The `gpu` label: the NVML index (found once for a device selected by UUID).
    gpu: String,
    identity: Option<Identity>,
    up: bool,
    /// Why it is down.
    reason: Option<String>,
    /// The reason logged last, so each is logged once.
    logged: Option<String>,
    /// Fields this device does not support; skipped, not errors.
    unsupported: BTreeSet<&'static str>,
    /// Fields that failed at the last run, with the error.
    failing: BTreeMap<&'static str, String>,
}

impl DeviceSlot {
    pub(super) fn new(target: Selector) -> DeviceSlot {
        let gpu = match &target {
            Selector::Index(i) => i.to_string(),
            Selector::Uuid(_) => String::new(),
        };
        DeviceSlot {
            target,
            gpu,
            identity: None,
            up: false,
            reason: None,
            logged: None,
            unsupported: BTreeSet::new(),
            failing: BTreeMap::new(),
        }
    }

    pub(super) fn target(&self) -> &Selector {
        &self.target
    }

    /// The `uuid` label: the device's, once read; the selector's for a device
    /// selected by UUID; empty before.
    fn uuid(&self) -> &str {
        match (&self.identity, &self.target) {
            (Some(identity), _) => &identity.uuid,
            (None, Selector::Uuid(uuid)) => uuid,
            (None, Selector::Index(_)) => "",
        }
    }

    /// Appends this device's series to `out`, or only `wasmon_gpu_up 0` when
    /// it cannot be read. Whether it was up.
    pub(super) fn sample(
        &mut self,
        nvml: &Nvml,
        driver_version: &str,
        xid: Option<&XidWatcher>,
        out: &mut Vec<Sample>,
    ) -> bool {
        let mark = out.len();
        let previous = std::mem::take(&mut self.failing);
        let result = self.read(nvml, driver_version, xid, out);
        match result {
            Ok(()) => {
                if self.logged.take().is_some() {
                    tracing::info!(sampler = "gpu", gpu = %self.gpu, uuid = %self.uuid(), "GPU recovered");
                }
                self.up = true;
                self.reason = None;
                for (field, error) in &self.failing {
                    if previous.get(field) != Some(error) {
                        tracing::warn!(sampler = "gpu", gpu = %self.gpu, uuid = %self.uuid(), field, %error, "GPU field failed");
                    }
                }
            }
            Err(reason) => {
                out.truncate(mark);
                self.failing.clear();
                if self.logged.as_deref() != Some(reason.as_str()) {
                    tracing::warn!(sampler = "gpu", gpu = %self.gpu, uuid = %self.uuid(), %reason, "GPU down");
                    self.logged = Some(reason.clone());
                }
                self.up = false;
                self.reason = Some(reason);
            }
        }
        let up = Sample::gauge("wasmon_gpu_up", f64::from(u8::from(self.up)))
            .help("Whether the GPU answered at the last sample (1) or not (0).");
        out.push(label(label(up, "gpu", &self.gpu), "uuid", self.uuid()));
        self.up
    }

    /// Reads every field; an error (the reason) when the device is down.
    fn read(
        &mut self,
        nvml: &Nvml,
        driver_version: &str,
        xid: Option<&XidWatcher>,
        out: &mut Vec<Sample>,
    ) -> Result<(), String> {
        let device = match &self.target {
            Selector::Index(index) => nvml.device_by_index(*index),
            Selector::Uuid(uuid) => nvml.device_by_uuid(uuid.as_str()),
        }
        .map_err(|error| match error {
            NvmlError::NotFound | NvmlError::InvalidArg => "no such device".to_string(),
            error => format!("cannot open the device: {error}"),
        })?;
        if self.identity.is_none() {
            self.identity = Some(self.identify(&device)?);
        }
        let DeviceSlot {
            gpu,
            identity: Some(identity),
            unsupported,
            failing,
            ..
        } = self
        else {
            return Err("the device has no identity".into());
        };
        let labels = Labels {
            gpu: gpu.as_str(),
            uuid: identity.uuid.as_str(),
        };
        let mut reader = Reader {
            device: &device,
            gpu,
            unsupported,
            failing,
            answered: 0,
            lost: None,
        };
        reader.read_fields(&labels, xid, out);
        if let Some(reason) = reader.lost {
            return Err(reason);
        }
        if reader.answered == 0 && !reader.failing.is_empty() {
            let errors: Vec<String> = reader
                .failing
                .iter()
                .map(|(field, error)| format!("{field}: {error}"))
                .collect();
            return Err(format!("every query failed ({})", errors.join("; ")));
        }
        let info = labels.apply(
            Sample::gauge("wasmon_gpu_info", 1.0)
                .help("A GPU's product name, PCI bus id and driver version; always 1."),
        );
        let info = label(info, "name", &identity.name);
        let info = label(info, "pci_bus_id", &identity.pci_bus_id);
        out.push(label(info, "driver_version", driver_version));
        Ok(())
    }

    /// UUID (required), name and PCI bus id (empty when unsupported), and the
    /// index of a device selected by UUID.
    fn identify(&mut self, device: &Device<'_>) -> Result<Identity, String> {
        let uuid = device
            .uuid()
            .map_err(|error| format!("cannot read its UUID: {error}"))?;
        let optional = |result: Result<String, NvmlError>| match result {
            Ok(text) => Ok(text),
            Err(NvmlError::NotSupported | NvmlError::FailedToLoadSymbol(_)) => Ok(String::new()),
            Err(error @ NvmlError::GpuLost) => Err(error.to_string()),
            Err(_) => Ok(String::new()),
        };
        let name = optional(device.name())?;
        let pci_bus_id = optional(device.pci_info().map(|p| p.bus_id))?;
        if matches!(self.target, Selector::Uuid(_)) {
            self.gpu = device.index().map(|i| i.to_string()).unwrap_or_default();
        }
        Ok(Identity {
            uuid,
            name,
            pci_bus_id,
        })
    }

    /// The device as the API shows it.
    pub(super) fn status(&self, xid: Option<&XidWatcher>) -> DeviceStatus {
        let xid = self
            .identity
            .as_ref()
            .and_then(|identity| xid.and_then(|w| w.count(&identity.uuid)));
        DeviceStatus {
            gpu: self.gpu.clone(),
            uuid: self
                .identity
                .as_ref()
                .map(|i| i.uuid.clone())
                .or_else(|| match &self.target {
                    Selector::Uuid(uuid) => Some(uuid.clone()),
                    Selector::Index(_) => None,
                }),
            name: self.identity.as_ref().map(|i| i.name.clone()),
            pci_bus_id: self.identity.as_ref().map(|i| i.pci_bus_id.clone()),
            up: self.up,
            reason: self.reason.clone(),
            unsupported: self.unsupported.iter().copied().collect(),
            failing: self.failing.clone(),
            xid_errors: xid.map(|x| x.total),
            last_xid: xid.and_then(|x| x.last),
        }
    }
}

/// The labels of every series of one device.
struct Labels<'a> {
    gpu: &'a str,
    uuid: &'a str,
}

impl Labels<'_> {
    fn apply(&self, sample: Sample) -> Sample {
        label(label(sample, "gpu", self.gpu), "uuid", self.uuid)
    }
}

/// Adds a label unless its value is empty (to Prometheus, the same series).
fn label(sample: Sample, name: &str, value: &str) -> Sample {
    if value.is_empty() {
        sample
    } else {
        sample.label(name, value)
    }
}

/// One run over a device's fields, counting what answered.
struct Reader<'a, 'nvml> {
    device: &'a Device<'nvml>,
    /// The `gpu` label, for logs.
    gpu: &'a str,
    /// The slot's fields not supported.
    unsupported: &'a mut BTreeSet<&'static str>,
    /// The slot's fields failing at this run.
    failing: &'a mut BTreeMap<&'static str, String>,
    /// Fields that answered.
    answered: usize,
    /// Set when the device is lost: the rest is not asked.
    lost: Option<String>,
}

impl<'nvml> Reader<'_, 'nvml> {
    /// Runs `query` for `field` unless the device is lost or does not support
    /// it, and records how it went.
    fn field<T>(
        &mut self,
        field: &'static str,
        query: impl FnOnce(&Device<'nvml>) -> Result<T, NvmlError>,
    ) -> Option<T> {
        if self.lost.is_some() || self.unsupported.contains(field) {
            return None;
        }
        match query(self.device) {
            Ok(value) => {
                self.answered += 1;
                Some(value)
            }
            Err(NvmlError::NotSupported | NvmlError::FailedToLoadSymbol(_)) => {
                tracing::debug!(sampler = "gpu", gpu = %self.gpu, field, "GPU field not supported");
                self.unsupported.insert(field);
                None
            }
            Err(
                error
                @ (NvmlError::GpuLost | NvmlError::Uninitialized | NvmlError::DriverNotLoaded),
            ) => {
                self.lost = Some(format!("{field}: {error}"));
                None
            }
            Err(error) => {
                self.failing.insert(field, error.to_string());
                None
            }
        }
    }

    fn read_fields(&mut self, labels: &Labels, xid: Option<&XidWatcher>, out: &mut Vec<Sample>) {
        let gauge = |name: &str, value: f64, help: &str| {
            labels.apply(Sample::gauge(name, value).help(help))
        };
        if let Some(u) = self.field("utilization", Device::utilization_rates) {
            out.push(gauge(
                "wasmon_gpu_utilization_ratio",
                f64::from(u.gpu) / 100.0,
                "Share of time one or more kernels ran on the GPU over the driver's last sample period (0-1).",
            ));
            out.push(gauge(
                "wasmon_gpu_memory_utilization_ratio",
                f64::from(u.memory) / 100.0,
                "Share of time device memory was being read or written over the driver's last sample period (0-1); not how full it is.",
            ));
        }
        if let Some(m) = self.field("memory", Device::memory_info) {
            out.push(gauge(
                "wasmon_gpu_memory_used_bytes",
                m.used as f64,
                "Device memory allocated.",
            ));
            out.push(gauge(
                "wasmon_gpu_memory_free_bytes",
                m.free as f64,
                "Device memory not allocated.",
            ));
            out.push(gauge(
                "wasmon_gpu_memory_total_bytes",
                m.total as f64,
                "Device memory installed.",
            ));
        }
        if let Some(t) = self.field("temperature", |d| d.temperature(TemperatureSensor::Gpu)) {
            out.push(gauge(
                "wasmon_gpu_temperature_celsius",
                f64::from(t),
                "GPU die temperature.",
            ));
        }
        if let Some(mw) = self.field("power_usage", Device::power_usage) {
            out.push(gauge(
                "wasmon_gpu_power_usage_watts",
                f64::from(mw) / 1000.0,
                "Power the GPU and its memory draw.",
            ));
        }
        if let Some(mw) = self.field("power_limit", Device::enforced_power_limit) {
            out.push(gauge(
                "wasmon_gpu_power_limit_watts",
                f64::from(mw) / 1000.0,
                "Power limit the driver enforces.",
            ));
        }
        if let Some(mj) = self.field("energy", Device::total_energy_consumption) {
            out.push(
                labels.apply(
                    Sample::counter("wasmon_gpu_energy_joules_total", mj as f64 / 1000.0)
                        .help("Energy the GPU consumed since the driver was loaded."),
                ),
            );
        }
        if let Some(mhz) = self.field("sm_clock", |d| d.clock_info(Clock::SM)) {
            out.push(gauge(
                "wasmon_gpu_sm_clock_hertz",
                f64::from(mhz) * 1e6,
                "Current streaming multiprocessor clock.",
            ));
        }
        if let Some(mhz) = self.field("memory_clock", |d| d.clock_info(Clock::Memory)) {
            out.push(gauge(
                "wasmon_gpu_memory_clock_hertz",
                f64::from(mhz) * 1e6,
                "Current memory clock.",
            ));
        }
        if self.lost.is_none() && !self.unsupported.contains("fan_speed") {
            // Devices that cannot count their fans get one try at fan 0.
            let fans = self.device.num_fans().unwrap_or(1).min(MAX_FANS);
            for fan in 0..fans {
                if let Some(percent) = self.field("fan_speed", |d| d.fan_speed(fan)) {
                    out.push(
                        gauge(
                            "wasmon_gpu_fan_speed_ratio",
                            f64::from(percent) / 100.0,
                            "Intended speed of a fan as a share of its maximum (may exceed 1).",
                        )
                        .label("fan", fan.to_string()),
                    );
                }
            }
        }
        if let Some(kb) = self.field("pcie_tx", |d| d.pcie_throughput(PcieUtilCounter::Send)) {
            out.push(gauge(
                "wasmon_gpu_pcie_transmit_bytes_per_second",
                f64::from(kb) * 1024.0,
                "PCIe bytes the GPU sent per second over the driver's last 20 ms window.",
            ));
        }
        if let Some(kb) = self.field("pcie_rx", |d| d.pcie_throughput(PcieUtilCounter::Receive)) {
            out.push(gauge(
                "wasmon_gpu_pcie_receive_bytes_per_second",
                f64::from(kb) * 1024.0,
                "PCIe bytes the GPU received per second over the driver's last 20 ms window.",
            ));
        }
        if let Some(state) = self.field("performance_state", Device::performance_state)
            && state != PerformanceState::Unknown
        {
            out.push(gauge(
                "wasmon_gpu_performance_state",
                f64::from(state.as_c()),
                "Performance state: 0 (P0, fastest) to 15 (P15, slowest).",
            ));
        }
        for (field, kind, error) in [
            ("ecc_corrected", "corrected", MemoryError::Corrected),
            ("ecc_uncorrected", "uncorrected", MemoryError::Uncorrected),
        ] {
            if let Some(count) =
                self.field(field, |d| d.total_ecc_errors(error, EccCounter::Aggregate))
            {
                out.push(
                    labels.apply(
                        Sample::counter("wasmon_gpu_ecc_errors_total", count as f64)
                            .label("type", kind)
                            .help("Memory ECC errors over the device's lifetime, by type."),
                    ),
                );
            }
        }
        if self.lost.is_none()
            && let Some(count) = xid.and_then(|w| w.count(labels.uuid))
        {
            out.push(
                labels.apply(
                    Sample::counter("wasmon_gpu_xid_errors_total", count.total as f64)
                        .help("Critical XID errors the driver reported since wasmon loaded NVML."),
                ),
            );
        }
    }
}
