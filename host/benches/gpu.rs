//! The cost of one GPU sampling tick per device, against the fake NVML library
//! (`tests/fake-nvml`, loaded through `nvml-wrapper` like a real driver), each
//! figure against a baseline run in the same process:
//!
//! - baseline: the same NVML calls the sampler makes in a tick (device count,
//!   handle, utilisation, memory, temperature, power, limit, energy, two clocks,
//!   fans, PCIe both ways, P-state, two ECC counters), made directly with
//!   `nvml-wrapper`, building no samples;
//! - `GpuSampler::sample` (those calls plus building the samples), and the
//!   same followed by `Store::apply`, what the host does every tick; and, to
//!   show where the difference goes, copying the tick's samples alone.
//!
//! The fake answers in well under a microsecond, so the ratio shows what the
//! sampler adds on top of NVML; a real driver's calls (ioctls, some of them
//! waiting on the GPU) cost more, which makes the sampler's share smaller.
//! No GPU machine ran this; there is no real-driver figure.
//!
//! `cargo bench -p wasmon --bench gpu` (or `scripts/bench.sh --bench gpu`).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use nvml_wrapper::Nvml;
use nvml_wrapper::enum_wrappers::device::{
    Clock, EccCounter, MemoryError, PcieUtilCounter, TemperatureSensor,
};
use std::time::{Duration, Instant};
use wasmon::config::{GpuConfig, GpuEnabled, StoreConfig};
use wasmon::sampling::gpu::GpuSampler;
use wasmon::store::{SourceKind, Store};
use wasmon_test_support::{FakeDevice, FakeDriver, FakeNvml, fixtures};

fn main() {
    let fake = FakeNvml::without_library(&FakeDriver::new(Vec::new()));
    // SAFETY: no other thread runs yet; the fake library reads this once.
    unsafe { std::env::set_var("FAKE_NVML_CONFIG", fake.control_file()) };
    let nvml = Nvml::builder()
        .lib_path(fixtures::FAKE_NVML.as_ref())
        .init()
        .unwrap();
    let config = GpuConfig {
        enabled: GpuEnabled::On,
        library: Some(fixtures::FAKE_NVML.into()),
        interval: Some(Duration::from_secs(1)),
        ..GpuConfig::default()
    };
    for devices in [1, 8] {
        fake.set(&FakeDriver::new(
            (0..devices).map(FakeDevice::new).collect(),
        ));
        // The fake re-reads its control file at most every 50 ms.
        std::thread::sleep(Duration::from_millis(120));
        assert_eq!(nvml.device_count().unwrap(), devices as u32);
        tick(&nvml, &config, devices);
    }
    unavailable();
}

/// Median over `rounds` of the mean time per iteration of `f`, in µs.
fn time_us(rounds: usize, iterations: usize, mut f: impl FnMut()) -> f64 {
    let mut times: Vec<f64> = (0..rounds)
        .map(|_| {
            let started = Instant::now();
            for _ in 0..iterations {
                f();
            }
            started.elapsed().as_secs_f64() * 1e6 / iterations as f64
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

/// The NVML calls of one sampler tick, made directly; the sum keeps them alive.
fn direct(nvml: &Nvml) -> u64 {
    let mut sum = 0u64;
    let count = nvml.device_count().unwrap();
    for index in 0..count {
        let d = nvml.device_by_index(index).unwrap();
        let u = d.utilization_rates().unwrap();
        let m = d.memory_info().unwrap();
        sum += u64::from(u.gpu + u.memory) + m.used + m.free + m.total;
        sum += u64::from(d.temperature(TemperatureSensor::Gpu).unwrap());
        sum += u64::from(d.power_usage().unwrap() + d.enforced_power_limit().unwrap());
        sum += d.total_energy_consumption().unwrap();
        sum += u64::from(d.clock_info(Clock::SM).unwrap() + d.clock_info(Clock::Memory).unwrap());
        for fan in 0..d.num_fans().unwrap() {
            sum += u64::from(d.fan_speed(fan).unwrap());
        }
        sum += u64::from(d.pcie_throughput(PcieUtilCounter::Send).unwrap());
        sum += u64::from(d.pcie_throughput(PcieUtilCounter::Receive).unwrap());
        sum += u64::from(d.performance_state().unwrap().as_c());
        for error in [MemoryError::Corrected, MemoryError::Uncorrected] {
            sum += d.total_ecc_errors(error, EccCounter::Aggregate).unwrap();
        }
    }
    sum
}

fn tick(nvml: &Nvml, config: &GpuConfig, devices: usize) {
    let mut sampler = GpuSampler::new(config, Duration::from_secs(1));
    let first = sampler.sample();
    assert!(sampler.is_available());
    let per_device = first
        .iter()
        .filter(|s| s.label_value("gpu") == Some("0"))
        .count();
    assert!(per_device >= 20, "{first:#?}");
    let store = Store::new(&StoreConfig::default());
    let source = store.source("gpu", SourceKind::Host);
    store.apply(source, first.clone(), wasmon::time::now_ms());

    let iterations = 20_000 / devices;
    let baseline = time_us(9, iterations, || {
        std::hint::black_box(direct(nvml));
    });
    let sample = time_us(9, iterations, || {
        std::hint::black_box(sampler.sample());
    });
    // What the samples alone cost: a copy allocates what building them does
    // (name, help, label names and values are owned strings).
    let copy = time_us(9, iterations, || {
        std::hint::black_box(first.clone());
    });
    let stored = time_us(9, iterations, || {
        let samples = sampler.sample();
        std::hint::black_box(store.apply(source, samples, wasmon::time::now_ms()));
    });
    let n = devices as f64;
    println!(
        "gpu tick, {devices} device(s), {per_device} series per device: \
         direct NVML calls {:.2} us/device; GpuSampler::sample {:.2} us/device ({:.1}x the direct calls); \
         sample + Store::apply {:.2} us/device ({:.1}x); of which copying the samples alone {:.2} us/device",
        baseline / n,
        sample / n,
        sample / baseline,
        stored / n,
        stored / baseline,
        copy / n,
    );
}

/// What a retry costs while the library is missing (once per `gpu.retry_interval`).
fn unavailable() {
    let config = GpuConfig {
        library: Some("/nonexistent/libnvidia-ml.so.1".into()),
        ..GpuConfig::default()
    };
    let mut sampler = GpuSampler::new(&config, Duration::from_secs(1));
    let retry = time_us(5, 200, || {
        std::hint::black_box(sampler.sample());
    });
    println!(
        "gpu retry without a library (dlopen failing): {retry:.1} us per attempt, once per retry_interval (60 s by default)"
    );
}
