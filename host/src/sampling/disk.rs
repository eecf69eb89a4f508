//! Filesystems (size, space available) and block device I/O, from `sysinfo`.

use super::{Sampler, rate, under};
use crate::config::SamplingConfig;
use crate::model::Sample;
use anyhow::{Context, Result};
use std::collections::HashMap;
use std::time::Instant;
use sysinfo::{DiskRefreshKind, Disks};

/// `wasmon_filesystem_{size,avail}_bytes{mountpoint,device,fstype}`,
/// `wasmon_filesystem_usage_ratio{...}`, and per block device
/// `wasmon_disk_{read,written}_bytes_total{device}` with
/// `wasmon_disk_{read,written}_bytes_per_second{device}` rates.
///
/// Filesystems whose type is in `ignore_fstypes` or whose mount point is under
/// one of `ignore_mountpoints` are skipped; a device mounted more than once
/// (bind mounts) is reported once, at its shortest mount point. I/O is reported
/// for the `/dev/...` devices of the filesystems kept, named without `/dev/`
/// (`vda`, `nvme0n1p1`). Rates need two runs; the first run reports none.
pub struct DiskSampler {
    disks: Option<Disks>,
    ignore_fstypes: Vec<String>,
    ignore_mountpoints: Vec<String>,
    /// Per device: when and what the I/O totals were at the previous run.
    previous: HashMap<String, (Instant, u64, u64)>,
}

/// Only space and I/O counters: no disk-kind probing per run.
fn refresh_kind() -> DiskRefreshKind {
    DiskRefreshKind::nothing().with_storage().with_io_usage()
}

/// One filesystem as reported.
struct Filesystem {
    device: String,
    mountpoint: String,
    fstype: String,
    size: u64,
    available: u64,
    read: u64,
    written: u64,
}

impl DiskSampler {
    /// A sampler with `config`'s ignore lists; the disk list is read on the first run.
    pub fn new(config: &SamplingConfig) -> DiskSampler {
        DiskSampler {
            disks: None,
            ignore_fstypes: config.ignore_fstypes.clone(),
            ignore_mountpoints: config.ignore_mountpoints.clone(),
            previous: HashMap::new(),
        }
    }

    /// The filesystems to report, filtered and deduplicated.
    fn filesystems(
        disks: &Disks,
        ignore_fstypes: &[String],
        ignore_mountpoints: &[String],
    ) -> Vec<Filesystem> {
        let mut all: Vec<Filesystem> = disks
            .iter()
            .map(|disk| {
                let usage = disk.usage();
                Filesystem {
                    device: disk.name().to_string_lossy().into_owned(),
                    mountpoint: disk.mount_point().to_string_lossy().into_owned(),
                    fstype: disk.file_system().to_string_lossy().into_owned(),
                    size: disk.total_space(),
                    available: disk.available_space().min(disk.total_space()),
                    read: usage.total_read_bytes,
                    written: usage.total_written_bytes,
                }
            })
            .filter(|fs| {
                fs.size > 0
                    && !ignore_fstypes.contains(&fs.fstype)
                    && !ignore_mountpoints.iter().any(|m| under(&fs.mountpoint, m))
            })
            .collect();
        all.sort_by(|a, b| {
            (&a.device, &a.fstype, a.mountpoint.len(), &a.mountpoint).cmp(&(
                &b.device,
                &b.fstype,
                b.mountpoint.len(),
                &b.mountpoint,
            ))
        });
        all.dedup_by(|later, first| later.device == first.device && later.fstype == first.fstype);
        all
    }
}

impl Sampler for DiskSampler {
    fn name(&self) -> &'static str {
        "disk"
    }

    fn sample(&mut self, out: &mut Vec<Sample>) -> Result<()> {
        let disks = match &mut self.disks {
            Some(disks) => {
                disks.refresh_specifics(true, refresh_kind());
                disks
            }
            None => self.disks.insert(
                Disks::new_with_refreshed_list_specifics(refresh_kind())
                    .context("failed to list disks")?,
            ),
        };
        let now = Instant::now();
        let filesystems = Self::filesystems(disks, &self.ignore_fstypes, &self.ignore_mountpoints);
        for fs in &filesystems {
            let labeled = |sample: Sample| {
                sample
                    .label("mountpoint", fs.mountpoint.as_str())
                    .label("device", fs.device.as_str())
                    .label("fstype", fs.fstype.as_str())
            };
            out.push(labeled(
                Sample::gauge("wasmon_filesystem_size_bytes", fs.size as f64)
                    .help("Size of a filesystem."),
            ));
            out.push(labeled(
                Sample::gauge("wasmon_filesystem_avail_bytes", fs.available as f64)
                    .help("Space available to unprivileged users on a filesystem."),
            ));
            out.push(labeled(
                Sample::gauge(
                    "wasmon_filesystem_usage_ratio",
                    (fs.size - fs.available) as f64 / fs.size as f64,
                )
                .help("Share of a filesystem not available to unprivileged users (0-1)."),
            ));
        }

        let mut current = HashMap::new();
        for fs in &filesystems {
            let Some(device) = fs.device.strip_prefix("/dev/") else {
                continue;
            };
            if current.contains_key(device) {
                continue;
            }
            out.push(
                Sample::counter("wasmon_disk_read_bytes_total", fs.read as f64)
                    .label("device", device)
                    .help("Bytes read from a block device."),
            );
            out.push(
                Sample::counter("wasmon_disk_written_bytes_total", fs.written as f64)
                    .label("device", device)
                    .help("Bytes written to a block device."),
            );
            if let Some(&(then, read, written)) = self.previous.get(device) {
                let elapsed = Some(now.duration_since(then));
                // A counter that went backwards (device reset) gives no rate this run.
                let rates = fs
                    .read
                    .checked_sub(read)
                    .zip(fs.written.checked_sub(written));
                if let Some((r, w)) = rates
                    && let (Some(r), Some(w)) = (rate(r, elapsed), rate(w, elapsed))
                {
                    out.push(
                        Sample::gauge("wasmon_disk_read_bytes_per_second", r)
                            .label("device", device)
                            .help("Bytes read from a block device per second, over the last interval."),
                    );
                    out.push(
                        Sample::gauge("wasmon_disk_written_bytes_per_second", w)
                            .label("device", device)
                            .help("Bytes written to a block device per second, over the last interval."),
                    );
                }
            }
            current.insert(device.to_string(), (now, fs.read, fs.written));
        }
        self.previous = current;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_appear_from_the_second_run() {
        let mut sampler = DiskSampler::new(&SamplingConfig::default());
        let mut first = Vec::new();
        sampler.sample(&mut first).unwrap();
        let devices = first
            .iter()
            .filter(|s| s.name == "wasmon_disk_read_bytes_total")
            .count();
        assert!(first.iter().all(|s| !s.name.ends_with("_per_second")));
        std::thread::sleep(std::time::Duration::from_millis(20));
        let mut second = Vec::new();
        sampler.sample(&mut second).unwrap();
        let rates: Vec<_> = second
            .iter()
            .filter(|s| s.name == "wasmon_disk_read_bytes_per_second")
            .collect();
        assert_eq!(rates.len(), devices);
        assert!(rates.iter().all(|s| s.value >= 0.0));
    }

    #[test]
    fn filesystems_are_listed_once_per_device() {
        let mut sampler = DiskSampler::new(&SamplingConfig::default());
        let mut out = Vec::new();
        sampler.sample(&mut out).unwrap();
        let mut devices: Vec<(&str, &str)> = out
            .iter()
            .filter(|s| s.name == "wasmon_filesystem_size_bytes")
            .map(|s| {
                (
                    s.label_value("device").unwrap(),
                    s.label_value("fstype").unwrap(),
                )
            })
            .collect();
        let n = devices.len();
        devices.dedup();
        assert_eq!(devices.len(), n, "{out:#?}");
        let ignored = SamplingConfig::default().ignore_fstypes;
        assert!(out.iter().all(|s| {
            s.label_value("fstype")
                .is_none_or(|t| !ignored.iter().any(|i| i == t))
        }));
    }
}
