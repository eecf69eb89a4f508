//! [`FakeNvml`]: the fake NVML driver library (`tests/fake-nvml`, built by
//! `build.rs` as [`fixtures::FAKE_NVML`](crate::fixtures::FAKE_NVML)) installed
//! as `libnvidia-ml.so.1` in a temporary directory, with its control file.
//!
//! The host loads it through `nvml-wrapper` like a real driver (`gpu.library`
//! points at it) and the library reads the control file named by
//! `FAKE_NVML_CONFIG`, which [`FakeNvml::set`] rewrites atomically while the
//! host runs (the library notices within ~50 ms).
//!
//! ```no_run
//! use wasmon_test_support::{FakeDevice, FakeDriver, FakeNvml, HostOptions, fake_nvml::code};
//!
//! let fake = FakeNvml::new(&FakeDriver::new(vec![
//!     FakeDevice::new(0).set("utilization.gpu", 95),
//!     FakeDevice::new(1).error("fan.0", code::NOT_SUPPORTED),
//! ]));
//! let options = HostOptions::new("target/debug/wasmon")
//!     .env("FAKE_NVML_CONFIG", fake.control_file())
//!     .config(&fake.gpu_config("interval = \"100ms\""));
//! ```

use crate::fixtures;
use std::collections::BTreeMap;
use std::fmt::{Display, Write as _};
use std::path::{Path, PathBuf};

/// NVML return codes worth simulating (`!N` in the control file).
pub mod code {
    /// `NVML_ERROR_UNINITIALIZED`.
    pub const UNINITIALIZED: u32 = 1;
    /// `NVML_ERROR_NOT_SUPPORTED`: the field is skipped for that device.
    pub const NOT_SUPPORTED: u32 = 3;
    /// `NVML_ERROR_DRIVER_NOT_LOADED`: what `nvmlInit` answers without a driver.
    pub const DRIVER_NOT_LOADED: u32 = 9;
    /// `NVML_ERROR_GPU_IS_LOST`: the device fell off the bus.
    pub const GPU_IS_LOST: u32 = 15;
    /// `NVML_ERROR_UNKNOWN`.
    pub const UNKNOWN: u32 = 999;
}

/// The keys of a device's values (not its identity, `fail` or `handle`).
pub const VALUE_KEYS: &[&str] = &[
    "utilization.gpu",
    "utilization.memory",
    "memory.total",
    "memory.free",
    "memory.used",
    "temperature",
    "power.usage",
    "power.limit",
    "energy",
    "clock.graphics",
    "clock.sm",
    "clock.memory",
    "fans",
    "fan.0",
    "pcie.tx",
    "pcie.rx",
    "pstate",
    "ecc.corrected",
    "ecc.uncorrected",
    "xid",
];

/// One fake GPU: `key = value` lines of the control file (see the fake's
/// crate docs for the keys). A key left out answers NOT_SUPPORTED.
#[derive(Debug, Clone, PartialEq)]
pub struct FakeDevice {
    fields: BTreeMap<String, String>,
}

impl FakeDevice {
    /// A healthy device whose values derive from `index`, so two devices
    /// differ: utilisation `25 + 30·i` %, memory used `(10 + 10·i)` GiB of
    /// 80 GiB, `40 + 10·i` °C, `100 + 50·i` W of a 700 W limit, energy
    /// `1000·(i+1)` J, SM clock `1400 + 100·i` MHz, memory clock 2600 MHz, one
    /// fan at `30 + 10·i` %, PCIe `1000·(i+1)` / `2000·(i+1)` KB/s, P-state
    /// `i`, `i` corrected ECC errors, XID events supported (none yet).
    pub fn new(index: usize) -> FakeDevice {
        let i = index as u64;
        let gib = 1u64 << 30;
        let total = 80 * gib;
        let used = (10 + 10 * i) * gib;
        let mut device = FakeDevice {
            fields: BTreeMap::new(),
        };
        for (key, value) in [
            ("name", format!("Fake GPU {index}")),
            ("uuid", format!("GPU-{i:08x}-0000-4000-8000-{i:012x}")),
            ("pci.bus_id", format!("00000000:{:02X}:00.0", i + 1)),
            ("utilization.gpu", (25 + 30 * i).min(100).to_string()),
            ("utilization.memory", (10 + 5 * i).min(100).to_string()),
            ("memory.total", total.to_string()),
            ("memory.used", used.min(total).to_string()),
            ("memory.free", total.saturating_sub(used).to_string()),
            ("temperature", (40 + 10 * i).to_string()),
            ("power.usage", (100_000 + 50_000 * i).to_string()),
            ("power.limit", "700000".to_string()),
            ("energy", (1_000_000 * (i + 1)).to_string()),
            ("clock.graphics", (1400 + 100 * i).to_string()),
            ("clock.sm", (1400 + 100 * i).to_string()),
            ("clock.memory", "2600".to_string()),
            ("fans", "1".to_string()),
            ("fan.0", (30 + 10 * i).min(100).to_string()),
            ("pcie.tx", (1000 * (i + 1)).to_string()),
            ("pcie.rx", (2000 * (i + 1)).to_string()),
            ("pstate", i.min(15).to_string()),
            ("ecc.corrected", i.to_string()),
            ("ecc.uncorrected", "0".to_string()),
            ("xid", String::new()),
        ] {
            device.fields.insert(key.to_string(), value);
        }
        device
    }

    /// Sets `key` to `value`.
    pub fn set(mut self, key: &str, value: impl Display) -> FakeDevice {
        self.fields.insert(key.to_string(), value.to_string());
        self
    }

    /// Makes the query of `key` answer NVML return code `code`.
    pub fn error(self, key: &str, code: u32) -> FakeDevice {
        self.set(key, format!("!{code}"))
    }

    /// Removes `key`: its query answers NOT_SUPPORTED.
    pub fn remove(mut self, key: &str) -> FakeDevice {
        self.fields.remove(key);
        self
    }

    /// Makes every query but the handle lookup answer `code`.
    pub fn fail(self, code: u32) -> FakeDevice {
        self.error("fail", code)
    }

    /// The value of `key`, as written.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.fields.get(key).map(String::as_str)
    }

    /// The device's UUID.
    pub fn uuid(&self) -> &str {
        self.get("uuid").unwrap_or("")
    }
}

/// The driver the fake library pretends to be.
#[derive(Debug, Clone, PartialEq)]
pub struct FakeDriver {
    /// What `nvmlInit_v2` answers: none for success, or an NVML return code.
    pub init_error: Option<u32>,
    /// `nvmlSystemGetDriverVersion`.
    pub driver_version: String,
    /// The devices, index 0 first.
    pub devices: Vec<FakeDevice>,
}

impl FakeDriver {
    /// A loaded driver (version `550.54.15`) with `devices`.
    pub fn new(devices: Vec<FakeDevice>) -> FakeDriver {
        FakeDriver {
            init_error: None,
            driver_version: "550.54.15".into(),
            devices,
        }
    }

    /// The same driver with `nvmlInit_v2` answering `code`.
    pub fn init_error(mut self, code: u32) -> FakeDriver {
        self.init_error = Some(code);
        self
    }

    /// The control file's text.
    pub fn render(&self) -> String {
        let mut out = String::from("# written by wasmon-test-support's FakeNvml\n");
        if let Some(code) = self.init_error {
            writeln!(out, "init = !{code}").unwrap();
        }
        writeln!(out, "driver_version = {}", self.driver_version).unwrap();
        for device in &self.devices {
            out.push_str("[device]\n");
            for (key, value) in &device.fields {
                writeln!(out, "{key} = {value}").unwrap();
            }
        }
        out
    }
}

/// The fake library in a temporary directory, as `lib/libnvidia-ml.so.1`,
/// and its control file. Both go away when this is dropped.
pub struct FakeNvml {
    dir: tempfile::TempDir,
}

impl FakeNvml {
    /// The library installed, pretending to be `driver`.
    pub fn new(driver: &FakeDriver) -> FakeNvml {
        let fake = FakeNvml::without_library(driver);
        fake.install();
        fake
    }

    /// Only the control file: the library is missing until [`install`](Self::install).
    pub fn without_library(driver: &FakeDriver) -> FakeNvml {
        let dir = tempfile::Builder::new()
            .prefix("wasmon-fake-nvml-")
            .tempdir()
            .expect("cannot create a temporary directory");
        std::fs::create_dir(dir.path().join("lib")).expect("cannot create lib/");
        let fake = FakeNvml { dir };
        fake.set(driver);
        fake
    }

    /// Copies the library into place (atomically: a host retrying to load it
    /// never sees half a file).
    pub fn install(&self) {
        let partial = self.dir.path().join("lib/.libnvidia-ml.so.1.partial");
        std::fs::copy(fixtures::FAKE_NVML, &partial).unwrap_or_else(|e| {
            panic!(
                "cannot copy {} (built by build.rs): {e}",
                fixtures::FAKE_NVML
            )
        });
        std::fs::rename(&partial, self.library()).expect("cannot move the fake library into place");
    }

    /// Where the library is (or will be): give this as `gpu.library`.
    pub fn library(&self) -> PathBuf {
        self.dir.path().join("lib/libnvidia-ml.so.1")
    }

    /// The control file: give it to the host as `FAKE_NVML_CONFIG`.
    pub fn control_file(&self) -> PathBuf {
        self.dir.path().join("nvml.conf")
    }

    /// Rewrites the control file (atomically) to pretend to be `driver`.
    pub fn set(&self, driver: &FakeDriver) {
        write_atomically(&self.control_file(), &driver.render());
    }

    /// A `[gpu]` section loading this library, plus `extra` lines
    /// (`interval = "100ms"`, ...); `enabled = true` unless `extra` sets it.
    pub fn gpu_config(&self, extra: &str) -> String {
        let enabled = if extra.contains("enabled") {
            ""
        } else {
            "enabled = true\n"
        };
        format!(
            "[gpu]\n{enabled}library = {:?}\n{extra}\n",
            self.library().to_str().expect("temporary paths are UTF-8")
        )
    }
}

fn write_atomically(path: &Path, text: &str) {
    let partial = path.with_extension("partial");
    std::fs::write(&partial, text).expect("cannot write the fake NVML control file");
    std::fs::rename(&partial, path).expect("cannot move the fake NVML control file into place");
}
