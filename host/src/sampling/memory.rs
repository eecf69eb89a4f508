//! Memory and swap, from `sysinfo` (`/proc/meminfo` on Linux).

use super::Sampler;
use crate::model::Sample;
use anyhow::{Context, Result};
use sysinfo::{MemoryRefreshKind, System};

/// `wasmon_memory_{total,available,used}_bytes`, `wasmon_memory_usage_ratio`,
/// `wasmon_swap_{total,used}_bytes`.
///
/// "Used" is total minus available (what applications hold and the kernel
/// cannot reclaim), as `free` and the seeds' `psutil` report it.
pub struct MemorySampler {
    system: Option<System>,
}

impl MemorySampler {
    /// A sampler; nothing is read yet.
    pub fn new() -> MemorySampler {
        MemorySampler {
            system: System::new().ok(),
        }
    }
}

impl Default for MemorySampler {
    fn default() -> Self {
        Self::new()
    }
}

impl Sampler for MemorySampler {
    fn name(&self) -> &'static str {
        "memory"
    }

    fn sample(&mut self, out: &mut Vec<Sample>) -> Result<()> {
        let system = match &mut self.system {
            Some(system) => system,
            None => self
                .system
                .insert(System::new().context("failed to open the system information")?),
        };
        system.refresh_memory_specifics(MemoryRefreshKind::nothing().with_ram().with_swap());
        let total = system.total_memory();
        if total == 0 {
            anyhow::bail!("total memory reads as 0");
        }
        let available = system.available_memory().min(total);
        let used = total - available;
        out.push(Sample::gauge("wasmon_memory_total_bytes", total as f64).help("Physical memory."));
        out.push(
            Sample::gauge("wasmon_memory_available_bytes", available as f64)
                .help("Memory available to start new applications without swapping."),
        );
        out.push(
            Sample::gauge("wasmon_memory_used_bytes", used as f64)
                .help("Memory in use: total minus available."),
        );
        out.push(
            Sample::gauge("wasmon_memory_usage_ratio", used as f64 / total as f64)
                .help("Share of memory in use (0-1)."),
        );
        out.push(
            Sample::gauge("wasmon_swap_total_bytes", system.total_swap() as f64)
                .help("Swap space."),
        );
        out.push(
            Sample::gauge("wasmon_swap_used_bytes", system.used_swap() as f64)
                .help("Swap space in use."),
        );
        Ok(())
    }
}
