//! Load averages, uptime and boot time, from `sysinfo`.

use super::Sampler;
use crate::model::Sample;
use anyhow::{Context, Result};
use sysinfo::System;

/// `wasmon_load1`, `wasmon_load5`, `wasmon_load15`, `wasmon_uptime_seconds`,
/// `wasmon_boot_time_seconds`. Each reading fails on its own: a platform
/// without load averages still reports uptime.
#[derive(Debug, Default)]
pub struct HostSampler;

impl HostSampler {
    /// A sampler; it keeps no state.
    pub fn new() -> HostSampler {
        HostSampler
    }
}

impl Sampler for HostSampler {
    fn name(&self) -> &'static str {
        "host"
    }

    fn sample(&mut self, out: &mut Vec<Sample>) -> Result<()> {
        let mut first_error = None;
        match System::load_average().context("failed to read the load average") {
            Ok(load) => {
                for (name, value, minutes) in [
                    ("wasmon_load1", load.one, 1),
                    ("wasmon_load5", load.five, 5),
                    ("wasmon_load15", load.fifteen, 15),
                ] {
                    out.push(
                        Sample::gauge(name, value).help(format!("{minutes}-minute load average.")),
                    );
                }
            }
            Err(error) => first_error = first_error.or(Some(error)),
        }
        match System::uptime().context("failed to read the uptime") {
            Ok(uptime) => out.push(
                Sample::gauge("wasmon_uptime_seconds", uptime as f64)
                    .help("Time since the machine booted."),
            ),
            Err(error) => first_error = first_error.or(Some(error)),
        }
        match System::boot_time().context("failed to read the boot time") {
            Ok(boot) => out.push(
                Sample::gauge("wasmon_boot_time_seconds", boot as f64)
                    .help("Unix time the machine booted."),
            ),
            Err(error) => first_error = first_error.or(Some(error)),
        }
        first_error.map_or(Ok(()), Err)
    }
}
