//! CPU usage, overall and per logical CPU, from `sysinfo`.

use super::Sampler;
use crate::model::Sample;
use anyhow::{Context, Result};
use std::time::Instant;
use sysinfo::{MINIMUM_CPU_UPDATE_INTERVAL, System};

/// `wasmon_cpu_usage_ratio`, `wasmon_cpu_core_usage_ratio{cpu}`, `wasmon_cpu_logical_cores`.
///
/// Usage is the share of time busy since the previous run (all CPUs, 0–1). The
/// constructor takes a first reading, so the first run already has a baseline;
/// a run that comes sooner than `sysinfo`'s minimum interval (200 ms on Linux)
/// after it waits for the rest of that interval.
pub struct CpuSampler {
    system: Option<System>,
    last_refresh: Instant,
}

impl CpuSampler {
    /// A sampler with its baseline reading taken.
    pub fn new() -> CpuSampler {
        let system = System::new().ok().map(|mut system| {
            system.refresh_cpu_usage();
            system
        });
        CpuSampler {
            system,
            last_refresh: Instant::now(),
        }
    }
}

impl Default for CpuSampler {
    fn default() -> Self {
        Self::new()
    }
}

impl Sampler for CpuSampler {
    fn name(&self) -> &'static str {
        "cpu"
    }

    fn sample(&mut self, out: &mut Vec<Sample>) -> Result<()> {
        let system = match &mut self.system {
            Some(system) => system,
            None => {
                let mut system = System::new().context("failed to open the system information")?;
                system.refresh_cpu_usage();
                self.last_refresh = Instant::now();
                self.system.insert(system)
            }
        };
        if let Some(wait) = MINIMUM_CPU_UPDATE_INTERVAL.checked_sub(self.last_refresh.elapsed()) {
            std::thread::sleep(wait);
        }
        system.refresh_cpu_usage();
        self.last_refresh = Instant::now();
        let cpus = system.cpus();
        if cpus.is_empty() {
            anyhow::bail!("no CPU found");
        }
        out.push(
            Sample::gauge("wasmon_cpu_usage_ratio", ratio(system.global_cpu_usage()))
                .help("Share of time all CPUs were busy since the previous sample (0-1)."),
        );
        for (index, cpu) in cpus.iter().enumerate() {
            out.push(
                Sample::gauge("wasmon_cpu_core_usage_ratio", ratio(cpu.usage()))
                    .label("cpu", index.to_string())
                    .help(
                        "Share of time one logical CPU was busy since the previous sample (0-1).",
                    ),
            );
        }
        out.push(
            Sample::gauge("wasmon_cpu_logical_cores", cpus.len() as f64)
                .help("Number of logical CPUs."),
        );
        Ok(())
    }
}

/// A `sysinfo` percentage as a 0–1 ratio.
fn ratio(percent: f32) -> f64 {
    (f64::from(percent) / 100.0).clamp(0.0, 1.0)
}
