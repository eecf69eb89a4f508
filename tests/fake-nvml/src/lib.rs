//! A fake NVML driver library (`libnvidia-ml.so`): the symbols wasmon's GPU
//! sampler calls, answering values and failures that a test controls at run time.
//!
//! wasmon loads it through `nvml-wrapper` exactly as it loads a real driver
//! (`dlopen` of `gpu.library`, symbols resolved lazily), so the host's code path
//! is the production one; only the answers are made up.
//!
//! # Control file
//!
//! The file named by `FAKE_NVML_CONFIG` (the built-in [`DEFAULT_CONFIG`], two
//! devices, when unset) describes the driver. It is re-read, and parsed again
//! when its text changed, at most every [`REFRESH`] and only by `nvmlInit_v2`,
//! the device count, handle lookups and event waits, so a test
//! rewrites it (atomically: write a temporary file, rename) to change values,
//! make a device fail or a driver "load". Lines are `key = value`; `#` starts
//! a comment; each `[device]` line starts the next device (index 0, 1, ...).
//! A value `!N` makes the query answer NVML return code `N` instead, e.g.
//! `!3` NOT_SUPPORTED, `!9` DRIVER_NOT_LOADED, `!15` GPU_IS_LOST, `!999` UNKNOWN.
//! **A key that is absent answers NOT_SUPPORTED.**
//!
//! Top-level keys: `init` (`!9`: `nvmlInit_v2` fails), `driver_version`,
//! `count` (overrides the number of `[device]` sections, or fails).
//!
//! Device keys (units as NVML reports them):
//!
//! | key | query |
//! |---|---|
//! | `fail` | `!N`: every query but the handle lookup answers `N` |
//! | `handle` | `!N`: `nvmlDeviceGetHandleByIndex_v2` / `ByUUID` fail |
//! | (none) | `nvmlDeviceGetIndex`: the section's position |
//! | `name`, `uuid`, `pci.bus_id` | strings |
//! | `utilization.gpu`, `utilization.memory` | percent (`nvmlDeviceGetUtilizationRates`) |
//! | `memory.total`, `memory.free`, `memory.used` | bytes (`nvmlDeviceGetMemoryInfo_v2`) |
//! | `temperature` | °C, GPU sensor |
//! | `power.usage`, `power.limit` | milliwatts (usage, enforced limit) |
//! | `energy` | millijoules since the driver loaded |
//! | `clock.graphics`, `clock.sm`, `clock.memory` | MHz |
//! | `fans`, `fan.0`, `fan.1`, ... | fan count; speed in percent |
//! | `pcie.tx`, `pcie.rx` | KB/s |
//! | `pstate` | 0–15, or 32 (unknown) |
//! | `ecc.corrected`, `ecc.uncorrected` | error counts (both counter types) |
//! | `xid` | comma-separated XIDs that have happened; present = XID events supported |
//!
//! XID events: an event set registered for a device delivers, one per
//! `nvmlEventSetWait_v2`, every XID appended to its `xid` list after the
//! registration.
//!
//! Every exported function is `extern "C"`, takes the lock on the one global
//! state, never panics and never unwinds; pointers are checked for null
//! (`INVALID_ARGUMENT`) before they are written.

use std::ffi::{CStr, c_char, c_uint, c_ulonglong, c_void};
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

/// `nvmlReturn_t`.
type Ret = c_uint;
/// `nvmlDevice_t`: an opaque pointer; here the device index plus one.
type Handle = *mut c_void;
/// `nvmlEventSet_t`: an opaque pointer; here the set's slot plus one.
type SetHandle = *mut c_void;

const SUCCESS: Ret = 0;
const UNINITIALIZED: Ret = 1;
const INVALID_ARGUMENT: Ret = 2;
const NOT_SUPPORTED: Ret = 3;
const NOT_FOUND: Ret = 6;
const INSUFFICIENT_SIZE: Ret = 7;
const TIMEOUT: Ret = 10;
const UNKNOWN: Ret = 999;

/// `nvmlEventTypeXidCriticalError`.
const EVENT_XID: c_ulonglong = 8;

/// How often the control file is checked for changes, at most.
pub const REFRESH: Duration = Duration::from_millis(50);

/// The driver when `FAKE_NVML_CONFIG` is unset: two healthy devices.
pub const DEFAULT_CONFIG: &str = "\
driver_version = 550.54.15
[device]
name = Fake GPU A
uuid = GPU-00000000-0000-0000-0000-000000000000
pci.bus_id = 00000000:01:00.0
utilization.gpu = 30
utilization.memory = 10
memory.total = 85899345920
memory.free = 75161927680
memory.used = 10737418240
temperature = 40
power.usage = 100000
power.limit = 700000
energy = 1000000
clock.graphics = 1400
clock.sm = 1400
clock.memory = 2600
fans = 1
fan.0 = 30
pcie.tx = 1000
pcie.rx = 2000
pstate = 0
ecc.corrected = 0
ecc.uncorrected = 0
xid =
[device]
name = Fake GPU B
uuid = GPU-11111111-1111-1111-1111-111111111111
pci.bus_id = 00000000:02:00.0
utilization.gpu = 60
utilization.memory = 20
memory.total = 85899345920
memory.free = 64424509440
memory.used = 21474836480
temperature = 50
power.usage = 200000
power.limit = 700000
energy = 2000000
clock.graphics = 1500
clock.sm = 1500
clock.memory = 2600
fans = 1
fan.0 = 40
pcie.tx = 3000
pcie.rx = 4000
pstate = 2
ecc.corrected = 0
ecc.uncorrected = 0
xid =
";

/// A value or the return code the query answers instead.
type Value = Result<String, Ret>;

/// Keys and values of one section, in file order (few keys: a scan is fine).
#[derive(Default)]
struct Section(Vec<(String, Value)>);

impl Section {
    fn get(&self, key: &str) -> Option<&Value> {
        self.0.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }
}

/// The parsed control file.
#[derive(Default)]
struct Config {
    top: Section,
    devices: Vec<Section>,
}

impl Config {
    fn parse(text: &str) -> Config {
        let mut config = Config::default();
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            if line == "[device]" {
                config.devices.push(Section::default());
                continue;
            }
            let Some((key, value)) = line.split_once('=') else {
                continue;
            };
            let value = value.trim();
            let value = match value.strip_prefix('!') {
                Some(code) => Err(code.trim().parse().unwrap_or(UNKNOWN)),
                None => Ok(value.to_string()),
            };
            let section = config.devices.last_mut().unwrap_or(&mut config.top);
            section.0.push((key.trim().to_string(), value));
        }
        config
    }
}

/// One event set: the devices registered and how many of each one's XIDs
/// were already there or delivered.
struct EventSet {
    registered: Vec<(usize, usize)>,
}

/// Everything, behind [`STATE`].
struct State {
    config: Option<Config>,
    /// The text of the control file last read.
    text: String,
    checked: Option<Instant>,
    /// `nvmlInit_v2` calls not yet matched by `nvmlShutdown`.
    inits: u32,
    sets: Vec<Option<EventSet>>,
}

static STATE: Mutex<State> = Mutex::new(State {
    config: None,
    text: String::new(),
    checked: None,
    inits: 0,
    sets: Vec::new(),
});

fn lock() -> MutexGuard<'static, State> {
    STATE
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn config_path() -> Option<&'static PathBuf> {
    static PATH: OnceLock<Option<PathBuf>> = OnceLock::new();
    PATH.get_or_init(|| std::env::var_os("FAKE_NVML_CONFIG").map(PathBuf::from))
        .as_ref()
}

impl State {
    /// Re-reads the control file if it changed (checked at most every [`REFRESH`]).
    fn refresh(&mut self) {
        if self.config.is_some() && self.checked.is_some_and(|t| t.elapsed() < REFRESH) {
            return;
        }
        self.checked = Some(Instant::now());
        let Some(path) = config_path() else {
            if self.config.is_none() {
                self.config = Some(Config::parse(DEFAULT_CONFIG));
            }
            return;
        };
        match std::fs::read_to_string(path) {
            Ok(text) if self.config.is_none() || self.text != text => {
                self.config = Some(Config::parse(&text));
                self.text = text;
            }
            Ok(_) => {}
            // Missing: keep what was read last (nothing: no devices).
            Err(_) => {
                self.config.get_or_insert_with(Config::default);
            }
        }
    }

    fn config(&self) -> &Config {
        static EMPTY: Config = Config {
            top: Section(Vec::new()),
            devices: Vec::new(),
        };
        self.config.as_ref().unwrap_or(&EMPTY)
    }

    fn device_count(&self) -> Result<usize, Ret> {
        match self.config().top.get("count") {
            None => Ok(self.config().devices.len()),
            Some(Err(code)) => Err(*code),
            Some(Ok(n)) => n.parse().map_err(|_| UNKNOWN),
        }
    }

    /// The section of the device behind `handle`, unless NVML is not initialised,
    /// the handle is bad, or the device has `fail` set.
    fn device(&self, handle: Handle) -> Result<&Section, Ret> {
        if self.inits == 0 {
            return Err(UNINITIALIZED);
        }
        let device = handle
            .addr()
            .checked_sub(1)
            .and_then(|i| self.config().devices.get(i))
            .ok_or(INVALID_ARGUMENT)?;
        match device.get("fail") {
            Some(Err(code)) => Err(*code),
            _ => Ok(device),
        }
    }

    /// The text of `key` on the device behind `handle`.
    fn text(&self, handle: Handle, key: &str) -> Result<&str, Ret> {
        match self.device(handle)?.get(key) {
            None => Err(NOT_SUPPORTED),
            Some(Err(code)) => Err(*code),
            Some(Ok(text)) => Ok(text),
        }
    }

    /// The number under `key` on the device behind `handle`.
    fn number<T: std::str::FromStr>(&self, handle: Handle, key: &str) -> Result<T, Ret> {
        self.text(handle, key)?.parse().map_err(|_| UNKNOWN)
    }

    /// The XIDs listed for the device at `index`.
    fn xids(&self, index: usize) -> Vec<u64> {
        match self.config().devices.get(index).and_then(|d| d.get("xid")) {
            Some(Ok(list)) => list
                .split(',')
                .filter_map(|x| x.trim().parse().ok())
                .collect(),
            _ => Vec::new(),
        }
    }
}

/// Turns a query's outcome into its return code, writing the value through `out`.
///
/// # Safety
/// `out` is null or valid for one write of `T`.
unsafe fn answer<T>(out: *mut T, value: Result<T, Ret>) -> Ret {
    if out.is_null() {
        return INVALID_ARGUMENT;
    }
    match value {
        Ok(value) => {
            // SAFETY: checked non-null above; the caller vouches for validity.
            unsafe { out.write(value) };
            SUCCESS
        }
        Err(code) => code,
    }
}

/// Copies `text` and its NUL into the caller's buffer of `length` bytes.
///
/// # Safety
/// `buffer` is null or valid for `length` byte writes.
unsafe fn answer_text(buffer: *mut c_char, length: c_uint, text: Result<&str, Ret>) -> Ret {
    let text = match text {
        Ok(text) => text,
        Err(code) => return code,
    };
    if buffer.is_null() {
        return INVALID_ARGUMENT;
    }
    if text.len() + 1 > length as usize {
        return INSUFFICIENT_SIZE;
    }
    // SAFETY: the buffer holds `length` >= len + 1 bytes.
    unsafe {
        std::ptr::copy_nonoverlapping(text.as_ptr().cast::<c_char>(), buffer, text.len());
        buffer.add(text.len()).write(0);
    }
    SUCCESS
}

fn device_handle(index: usize) -> Handle {
    std::ptr::without_provenance_mut(index + 1)
}

/// `nvmlInit_v2`: succeeds unless the control file's `init` is `!N`; counted,
/// so every init needs its shutdown.
#[unsafe(no_mangle)]
pub extern "C" fn nvmlInit_v2() -> Ret {
    let mut state = lock();
    state.refresh();
    if let Some(Err(code)) = state.config().top.get("init") {
        return *code;
    }
    state.inits += 1;
    SUCCESS
}

/// `nvmlShutdown`: undoes one `nvmlInit_v2`. nvml-wrapper's `Drop` calls it
/// unconditionally, so it must exist.
#[unsafe(no_mangle)]
pub extern "C" fn nvmlShutdown() -> Ret {
    let mut state = lock();
    if state.inits == 0 {
        return UNINITIALIZED;
    }
    state.inits -= 1;
    SUCCESS
}

/// `nvmlSystemGetDriverVersion`: the top-level `driver_version`.
///
/// # Safety
/// `version` is null or valid for `length` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlSystemGetDriverVersion(version: *mut c_char, length: c_uint) -> Ret {
    let state = lock();
    let text = match state.config().top.get("driver_version") {
        None => Err(NOT_SUPPORTED),
        Some(Err(code)) => Err(*code),
        Some(Ok(text)) => Ok(text.as_str()),
    };
    // SAFETY: forwarded from the caller.
    unsafe { answer_text(version, length, text) }
}

/// `nvmlDeviceGetCount_v2`: the number of `[device]` sections, or `count`.
///
/// # Safety
/// `count` is null or valid for one write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetCount_v2(count: *mut c_uint) -> Ret {
    let mut state = lock();
    state.refresh();
    if state.inits == 0 {
        return UNINITIALIZED;
    }
    let n = state.device_count().map(|n| n as c_uint);
    // SAFETY: forwarded from the caller.
    unsafe { answer(count, n) }
}

/// `nvmlDeviceGetHandleByIndex_v2`: device `index`, unless its `handle` is `!N`.
///
/// # Safety
/// `device` is null or valid for one write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetHandleByIndex_v2(index: c_uint, device: *mut Handle) -> Ret {
    let mut state = lock();
    state.refresh();
    let handle = lookup(&state, index as usize);
    // SAFETY: forwarded from the caller.
    unsafe { answer(device, handle) }
}

fn lookup(state: &State, index: usize) -> Result<Handle, Ret> {
    if state.inits == 0 {
        return Err(UNINITIALIZED);
    }
    let section = state.config().devices.get(index).ok_or(INVALID_ARGUMENT)?;
    match section.get("handle") {
        Some(Err(code)) => Err(*code),
        _ => Ok(device_handle(index)),
    }
}

/// `nvmlDeviceGetHandleByUUID`: the device whose `uuid` matches (NOT_FOUND
/// when none), unless its `handle` is `!N`.
///
/// # Safety
/// `uuid` is null or a NUL-terminated string; `device` is null or valid for one write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetHandleByUUID(
    uuid: *const c_char,
    device: *mut Handle,
) -> Ret {
    if uuid.is_null() {
        return INVALID_ARGUMENT;
    }
    // SAFETY: non-null and NUL-terminated per the caller.
    let wanted = unsafe { CStr::from_ptr(uuid) }.to_bytes();
    let mut state = lock();
    state.refresh();
    let found = state
        .config()
        .devices
        .iter()
        .position(|d| matches!(d.get("uuid"), Some(Ok(u)) if u.as_bytes() == wanted));
    let handle = match found {
        Some(index) => lookup(&state, index),
        None if state.inits == 0 => Err(UNINITIALIZED),
        None => Err(NOT_FOUND),
    };
    // SAFETY: forwarded from the caller.
    unsafe { answer(device, handle) }
}

/// `nvmlDeviceGetIndex`: the device's position among the `[device]` sections.
///
/// # Safety
/// `index` is null or valid for one write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetIndex(device: Handle, index: *mut c_uint) -> Ret {
    let state = lock();
    let value = state.device(device).map(|_| (device.addr() - 1) as c_uint);
    // SAFETY: forwarded from the caller.
    unsafe { answer(index, value) }
}

/// `nvmlDeviceGetName`: `name`.
///
/// # Safety
/// `name` is null or valid for `length` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetName(
    device: Handle,
    name: *mut c_char,
    length: c_uint,
) -> Ret {
    let state = lock();
    // SAFETY: forwarded from the caller.
    unsafe { answer_text(name, length, state.text(device, "name")) }
}

/// `nvmlDeviceGetUUID`: `uuid`.
///
/// # Safety
/// `uuid` is null or valid for `length` bytes.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetUUID(
    device: Handle,
    uuid: *mut c_char,
    length: c_uint,
) -> Ret {
    let state = lock();
    // SAFETY: forwarded from the caller.
    unsafe { answer_text(uuid, length, state.text(device, "uuid")) }
}

/// `nvmlPciInfo_t` (68 bytes); nvml-wrapper reads `bus_id`.
#[repr(C)]
pub struct PciInfo {
    bus_id_legacy: [c_char; 16],
    domain: c_uint,
    bus: c_uint,
    device: c_uint,
    pci_device_id: c_uint,
    pci_sub_system_id: c_uint,
    bus_id: [c_char; 32],
}

/// `nvmlDeviceGetPciInfo_v3`: `pci.bus_id` (`DDDDDDDD:BB:DD.F`), its bus and
/// device numbers parsed from it, zero ids.
///
/// # Safety
/// `pci` is null or valid for one write of `nvmlPciInfo_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetPciInfo_v3(device: Handle, pci: *mut PciInfo) -> Ret {
    let state = lock();
    let info = state.text(device, "pci.bus_id").and_then(|id| {
        if id.len() >= 32 {
            return Err(UNKNOWN);
        }
        let mut parts = id.split([':', '.']);
        let mut hex = || {
            parts
                .next()
                .and_then(|p| u32::from_str_radix(p, 16).ok())
                .unwrap_or(0)
        };
        let (domain, bus, dev) = (hex(), hex(), hex());
        let mut info = PciInfo {
            bus_id_legacy: [0; 16],
            domain,
            bus,
            device: dev,
            pci_device_id: 0,
            pci_sub_system_id: 0,
            bus_id: [0; 32],
        };
        for (slot, byte) in info.bus_id.iter_mut().zip(id.bytes()) {
            *slot = byte as c_char;
        }
        for (slot, byte) in info.bus_id_legacy.iter_mut().take(15).zip(id.bytes()) {
            *slot = byte as c_char;
        }
        Ok(info)
    });
    // SAFETY: forwarded from the caller.
    unsafe { answer(pci, info) }
}

/// `nvmlUtilization_t`.
#[repr(C)]
pub struct Utilization {
    gpu: c_uint,
    memory: c_uint,
}

/// `nvmlDeviceGetUtilizationRates`: `utilization.gpu` and `utilization.memory`.
///
/// # Safety
/// `utilization` is null or valid for one write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetUtilizationRates(
    device: Handle,
    utilization: *mut Utilization,
) -> Ret {
    let state = lock();
    let value = state.number(device, "utilization.gpu").and_then(|gpu| {
        Ok(Utilization {
            gpu,
            memory: state.number(device, "utilization.memory")?,
        })
    });
    // SAFETY: forwarded from the caller.
    unsafe { answer(utilization, value) }
}

/// `nvmlMemory_v2_t` (40 bytes).
#[repr(C)]
pub struct MemoryV2 {
    version: c_uint,
    total: c_ulonglong,
    reserved: c_ulonglong,
    free: c_ulonglong,
    used: c_ulonglong,
}

/// The version nvml-wrapper sets in `nvmlMemory_v2_t` (size | 2 << 24).
const MEMORY_V2_VERSION: c_uint = (std::mem::size_of::<MemoryV2>() as c_uint) | (2 << 24);

/// `nvmlDeviceGetMemoryInfo_v2`: `memory.total`, `memory.free`, `memory.used`;
/// answers VERSION_MISMATCH (25) as a real driver does when `version` is wrong.
///
/// # Safety
/// `memory` is null or valid for one read and write of `nvmlMemory_v2_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetMemoryInfo_v2(device: Handle, memory: *mut MemoryV2) -> Ret {
    if memory.is_null() {
        return INVALID_ARGUMENT;
    }
    // SAFETY: non-null, valid per the caller.
    if unsafe { (*memory).version } != MEMORY_V2_VERSION {
        return 25;
    }
    let state = lock();
    let value = (|| {
        Ok(MemoryV2 {
            version: MEMORY_V2_VERSION,
            total: state.number(device, "memory.total")?,
            reserved: 0,
            free: state.number(device, "memory.free")?,
            used: state.number(device, "memory.used")?,
        })
    })();
    // SAFETY: forwarded from the caller.
    unsafe { answer(memory, value) }
}

/// `nvmlDeviceGetTemperature`: `temperature` for sensor 0 (the GPU die).
///
/// # Safety
/// `temp` is null or valid for one write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetTemperature(
    device: Handle,
    sensor: c_uint,
    temp: *mut c_uint,
) -> Ret {
    let state = lock();
    let value = if sensor == 0 {
        state.number(device, "temperature")
    } else {
        Err(INVALID_ARGUMENT)
    };
    // SAFETY: forwarded from the caller.
    unsafe { answer(temp, value) }
}

/// `nvmlDeviceGetPowerUsage`: `power.usage` in milliwatts.
///
/// # Safety
/// `power` is null or valid for one write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetPowerUsage(device: Handle, power: *mut c_uint) -> Ret {
    let state = lock();
    // SAFETY: forwarded from the caller.
    unsafe { answer(power, state.number(device, "power.usage")) }
}

/// `nvmlDeviceGetEnforcedPowerLimit`: `power.limit` in milliwatts.
///
/// # Safety
/// `limit` is null or valid for one write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetEnforcedPowerLimit(
    device: Handle,
    limit: *mut c_uint,
) -> Ret {
    let state = lock();
    // SAFETY: forwarded from the caller.
    unsafe { answer(limit, state.number(device, "power.limit")) }
}

/// `nvmlDeviceGetTotalEnergyConsumption`: `energy` in millijoules.
///
/// # Safety
/// `energy` is null or valid for one write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetTotalEnergyConsumption(
    device: Handle,
    energy: *mut c_ulonglong,
) -> Ret {
    let state = lock();
    // SAFETY: forwarded from the caller.
    unsafe { answer(energy, state.number(device, "energy")) }
}

/// `nvmlDeviceGetClockInfo`: `clock.graphics` (0), `clock.sm` (1) or
/// `clock.memory` (2), in MHz.
///
/// # Safety
/// `clock` is null or valid for one write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetClockInfo(
    device: Handle,
    kind: c_uint,
    clock: *mut c_uint,
) -> Ret {
    let state = lock();
    let key = match kind {
        0 => "clock.graphics",
        1 => "clock.sm",
        2 => "clock.memory",
        _ => "clock.other",
    };
    // SAFETY: forwarded from the caller.
    unsafe { answer(clock, state.number(device, key)) }
}

/// `nvmlDeviceGetNumFans`: `fans`.
///
/// # Safety
/// `count` is null or valid for one write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetNumFans(device: Handle, count: *mut c_uint) -> Ret {
    let state = lock();
    // SAFETY: forwarded from the caller.
    unsafe { answer(count, state.number(device, "fans")) }
}

/// `nvmlDeviceGetFanSpeed_v2`: `fan.N` in percent.
///
/// # Safety
/// `speed` is null or valid for one write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetFanSpeed_v2(
    device: Handle,
    fan: c_uint,
    speed: *mut c_uint,
) -> Ret {
    let state = lock();
    // SAFETY: forwarded from the caller.
    unsafe { answer(speed, state.number(device, &format!("fan.{fan}"))) }
}

/// `nvmlDeviceGetPcieThroughput`: `pcie.tx` (0) or `pcie.rx` (1) in KB/s.
///
/// # Safety
/// `value` is null or valid for one write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetPcieThroughput(
    device: Handle,
    counter: c_uint,
    value: *mut c_uint,
) -> Ret {
    let state = lock();
    let answer_value = match counter {
        0 => state.number(device, "pcie.tx"),
        1 => state.number(device, "pcie.rx"),
        _ => Err(INVALID_ARGUMENT),
    };
    // SAFETY: forwarded from the caller.
    unsafe { answer(value, answer_value) }
}

/// `nvmlDeviceGetPerformanceState`: `pstate`.
///
/// # Safety
/// `state_out` is null or valid for one write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetPerformanceState(
    device: Handle,
    state_out: *mut c_uint,
) -> Ret {
    let state = lock();
    // SAFETY: forwarded from the caller.
    unsafe { answer(state_out, state.number(device, "pstate")) }
}

/// `nvmlDeviceGetTotalEccErrors`: `ecc.corrected` (type 0) or
/// `ecc.uncorrected` (type 1), whatever the counter type.
///
/// # Safety
/// `count` is null or valid for one write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetTotalEccErrors(
    device: Handle,
    error_type: c_uint,
    _counter_type: c_uint,
    count: *mut c_ulonglong,
) -> Ret {
    let state = lock();
    let value = match error_type {
        0 => state.number(device, "ecc.corrected"),
        1 => state.number(device, "ecc.uncorrected"),
        _ => Err(INVALID_ARGUMENT),
    };
    // SAFETY: forwarded from the caller.
    unsafe { answer(count, value) }
}

/// `nvmlDeviceGetSupportedEventTypes`: the XID bit when the device has an
/// `xid` key, nothing when it has none, the code when it is `!N`.
///
/// # Safety
/// `types` is null or valid for one write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlDeviceGetSupportedEventTypes(
    device: Handle,
    types: *mut c_ulonglong,
) -> Ret {
    let state = lock();
    let value = match state.text(device, "xid") {
        Ok(_) => Ok(EVENT_XID),
        Err(NOT_SUPPORTED) => Ok(0),
        Err(code) => Err(code),
    };
    // SAFETY: forwarded from the caller.
    unsafe { answer(types, value) }
}

/// `nvmlEventSetCreate`: a new, empty event set.
///
/// # Safety
/// `set` is null or valid for one write.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlEventSetCreate(set: *mut SetHandle) -> Ret {
    let mut state = lock();
    if state.inits == 0 {
        return UNINITIALIZED;
    }
    state.sets.push(Some(EventSet {
        registered: Vec::new(),
    }));
    let handle = std::ptr::without_provenance_mut(state.sets.len());
    // SAFETY: forwarded from the caller.
    unsafe { answer(set, Ok(handle)) }
}

/// `nvmlDeviceRegisterEvents`: registers a device's XID events (the only kind
/// this fake knows) with `set`; XIDs already listed are not delivered.
#[unsafe(no_mangle)]
pub extern "C" fn nvmlDeviceRegisterEvents(
    device: Handle,
    types: c_ulonglong,
    set: SetHandle,
) -> Ret {
    let mut state = lock();
    if let Err(code) = state.text(device, "xid") {
        return code;
    }
    if types & EVENT_XID == 0 {
        return NOT_SUPPORTED;
    }
    let index = device.addr() - 1;
    let seen = state.xids(index).len();
    let Some(Some(set)) = set
        .addr()
        .checked_sub(1)
        .and_then(|i| state.sets.get_mut(i))
    else {
        return INVALID_ARGUMENT;
    };
    set.registered.retain(|&(i, _)| i != index);
    set.registered.push((index, seen));
    SUCCESS
}

/// `nvmlEventData_t`.
#[repr(C)]
pub struct EventData {
    device: Handle,
    event_type: c_ulonglong,
    event_data: c_ulonglong,
    gpu_instance_id: c_uint,
    compute_instance_id: c_uint,
}

/// `nvmlEventSetWait_v2`: the next XID not yet delivered on a device of the
/// set, waiting up to `timeout_ms` for one (TIMEOUT after that). The lock is
/// released while it waits.
///
/// # Safety
/// `data` is null or valid for one write of `nvmlEventData_t`.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nvmlEventSetWait_v2(
    set: SetHandle,
    data: *mut EventData,
    timeout_ms: c_uint,
) -> Ret {
    if data.is_null() {
        return INVALID_ARGUMENT;
    }
    let deadline = Instant::now() + Duration::from_millis(u64::from(timeout_ms));
    loop {
        {
            let mut state = lock();
            if state.inits == 0 {
                return UNINITIALIZED;
            }
            state.refresh();
            let Some(slot) = set.addr().checked_sub(1) else {
                return INVALID_ARGUMENT;
            };
            let registered = match state.sets.get(slot) {
                Some(Some(set)) => set.registered.clone(),
                _ => return INVALID_ARGUMENT,
            };
            for (position, (index, delivered)) in registered.into_iter().enumerate() {
                let xids = state.xids(index);
                if let Some(&xid) = xids.get(delivered) {
                    if let Some(Some(set)) = state.sets.get_mut(slot) {
                        set.registered[position].1 = delivered + 1;
                    }
                    let event = EventData {
                        device: device_handle(index),
                        event_type: EVENT_XID,
                        event_data: xid,
                        gpu_instance_id: 0,
                        compute_instance_id: 0,
                    };
                    // SAFETY: checked non-null; valid per the caller.
                    unsafe { data.write(event) };
                    return SUCCESS;
                }
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return TIMEOUT;
        }
        std::thread::sleep(left.min(Duration::from_millis(5)));
    }
}

/// `nvmlEventSetFree`: forgets the set. nvml-wrapper's `EventSet` drop calls it.
#[unsafe(no_mangle)]
pub extern "C" fn nvmlEventSetFree(set: SetHandle) -> Ret {
    let mut state = lock();
    match set
        .addr()
        .checked_sub(1)
        .and_then(|i| state.sets.get_mut(i))
    {
        Some(slot @ Some(_)) => {
            *slot = None;
            SUCCESS
        }
        _ => INVALID_ARGUMENT,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_sections_and_errors() {
        let config =
            Config::parse("init = !9\n# c\n[device]\nname = A # x\nfan.0 = !3\n[device]\n");
        assert_eq!(config.top.get("init"), Some(&Err(9)));
        assert_eq!(config.devices.len(), 2);
        assert_eq!(config.devices[0].get("name"), Some(&Ok("A".to_string())));
        assert_eq!(config.devices[0].get("fan.0"), Some(&Err(3)));
        assert_eq!(config.devices[1].get("name"), None);
        assert_eq!(std::mem::size_of::<MemoryV2>(), 40);
        assert_eq!(std::mem::size_of::<PciInfo>(), 68);
        assert_eq!(std::mem::size_of::<Utilization>(), 8);
    }
}
