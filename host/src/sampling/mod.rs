//! Native sampling: the host's own view of the machine (CPU, memory,
//! filesystems, disks, network, load and uptime) through `sysinfo`, stored as
//! host source `system` every `sampling.interval`.
//!
//! Two layers:
//! - a [`Sampler`] reads one part of the machine (one file each: [`cpu`],
//!   [`memory`], [`disk`], [`network`], [`host`]); a part that fails is logged
//!   once per distinct error and does not stop the others;
//! - a [`SourceSampler`] produces whole snapshots for one store source on its
//!   own schedule ([`SystemSampler`] here; a GPU sampler with its own interval
//!   and an "unavailable, retry later" state fits the same trait), and
//!   [`spawn_source`] runs any of them: the sysinfo work happens on a blocking
//!   thread, never on the async workers. After every run the runner publishes
//!   the sampler's [`SamplerStatus`] (available, up, why not) to
//!   [`SamplerStatuses`], which the REST API reads.
//!
//! [`gpu`] samples NVIDIA GPUs through NVML (`nvml-wrapper`) as host source
//! `gpu`, and reports itself unavailable, retrying slowly, where there is no
//! driver.
//!
//! Names follow node_exporter with the `wasmon_` prefix and base units
//! (seconds, bytes, 0–1 ratios); counters end in `_total`. Every snapshot also
//! carries `wasmon_sampler_up{sampler}` (1 when every part succeeded),
//! `wasmon_sampler_part_up{sampler,part}` and
//! `wasmon_sampler_duration_seconds{sampler}`.
//!
//! This module knows nothing of wasmtime or HTTP.

pub mod cpu;
pub mod disk;
pub mod gpu;
pub mod host;
pub mod memory;
pub mod network;
pub mod status;

pub use status::{DeviceStatus, SamplerStatus, SamplerStatuses};

use crate::config::SamplingConfig;
use crate::model::Sample;
use crate::shutdown::Shutdown;
use crate::store::{SourceKind, Store};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::task::JoinHandle;

/// Reads one part of the machine.
pub trait Sampler: Send {
    /// Short name of the part (`cpu`, `disk`, ...), used in logs and as the
    /// `part` label.
    fn name(&self) -> &'static str;

    /// Appends this part's samples to `out`. On error, samples already
    /// appended are kept: a part may fail halfway and still report what it read.
    fn sample(&mut self, out: &mut Vec<Sample>) -> anyhow::Result<()>;
}

/// Produces whole snapshots for one host source of the store, on its own schedule.
pub trait SourceSampler: Send + 'static {
    /// The store source its snapshots replace (`system`, `gpu`, ...).
    fn source(&self) -> &str;

    /// How long to wait before the next snapshot; asked after every snapshot,
    /// so a sampler may slow down while its device is unavailable.
    fn interval(&self) -> Duration;

    /// Takes one snapshot. Runs on a blocking thread.
    fn sample(&mut self) -> Vec<Sample>;

    /// What the sampler says about itself after a snapshot; the runner fills
    /// in the run count and times, and publishes it. By default: enabled,
    /// available and up.
    fn status(&self) -> SamplerStatus {
        SamplerStatus {
            name: self.source().to_string(),
            enabled: true,
            available: true,
            up: true,
            interval_seconds: self.interval().as_secs_f64(),
            ..SamplerStatus::default()
        }
    }
}

/// Starts system sampling as host source `system`, every `config.interval`,
/// until `shutdown` fires. When `config.enabled` is false the task ends at once.
pub fn spawn(
    config: &SamplingConfig,
    store: Arc<Store>,
    statuses: &SamplerStatuses,
    shutdown: Shutdown,
) -> JoinHandle<()> {
    if !config.enabled {
        tracing::info!("system sampling disabled");
        statuses.set(SamplerStatus::disabled(
            "system",
            "sampling.enabled = false",
        ));
        return tokio::spawn(async {});
    }
    let statuses = statuses.clone();
    let config = config.clone();
    // Building the sampler reads the disk and network lists: off the async workers too.
    tokio::spawn(async move {
        let sampler = tokio::task::spawn_blocking(move || SystemSampler::new(&config)).await;
        match sampler {
            Ok(sampler) => run_source(sampler, store, statuses, shutdown).await,
            Err(error) => tracing::error!(%error, "system sampler failed to start"),
        }
    })
}

/// Runs `sampler` on its schedule until `shutdown` fires, applying each
/// snapshot to `store` as a host source and publishing its status to `statuses`.
pub fn spawn_source(
    sampler: impl SourceSampler,
    store: Arc<Store>,
    statuses: &SamplerStatuses,
    shutdown: Shutdown,
) -> JoinHandle<()> {
    tokio::spawn(run_source(sampler, store, statuses.clone(), shutdown))
}

async fn run_source<S: SourceSampler>(
    sampler: S,
    store: Arc<Store>,
    statuses: SamplerStatuses,
    shutdown: Shutdown,
) {
    let name = sampler.source().to_string();
    let source = store.source(&name, SourceKind::Host);
    let mut sampler = Some(sampler);
    let (mut runs, mut last_sample_ms) = (0, None);
    loop {
        let Some(mut current) = sampler.take() else {
            return;
        };
        let started = tokio::time::Instant::now();
        let taken = tokio::task::spawn_blocking(move || {
            let samples = current.sample();
            (current, samples)
        });
        let (current, samples) = tokio::select! {
            taken = taken => match taken {
                Ok(taken) => taken,
                Err(error) => {
                    tracing::error!(sampler = %name, %error, "sampler panicked; sampling stopped");
                    return;
                }
            },
            () = shutdown.wait() => return,
        };
        let now_ms = crate::time::now_ms();
        let report = store.apply(source, samples, now_ms);
        if let Some(problem) = &report.first_problem {
            tracing::warn!(sampler = %name, %problem, dropped = report.dropped_total(), "host samples dropped");
        }
        let mut status = current.status();
        runs += 1;
        if status.available {
            last_sample_ms = Some(now_ms);
        }
        status.runs = runs;
        status.last_run_ms = Some(now_ms);
        status.last_sample_ms = last_sample_ms;
        statuses.set(status);
        // Measured from the start of this snapshot, so the schedule does not drift.
        let next = started + current.interval();
        sampler = Some(current);
        tokio::select! {
            () = tokio::time::sleep_until(next) => {}
            () = shutdown.wait() => return,
        }
    }
}

/// The `system` source: every part sampler, one snapshot per call.
pub struct SystemSampler {
    interval: Duration,
    parts: Vec<Box<dyn Sampler>>,
    /// The last error of each failing part, so each distinct error is logged once.
    failing: HashMap<&'static str, String>,
}

impl SystemSampler {
    /// The samplers `config` asks for; nothing is read until [`sample`](Self::sample)
    /// except what rates need as a baseline.
    pub fn new(config: &SamplingConfig) -> SystemSampler {
        SystemSampler {
            interval: config.interval,
            parts: vec![
                Box::new(cpu::CpuSampler::new()),
                Box::new(memory::MemorySampler::new()),
                Box::new(host::HostSampler::new()),
                Box::new(disk::DiskSampler::new(config)),
                Box::new(network::NetworkSampler::new(config)),
            ],
            failing: HashMap::new(),
        }
    }

    /// One snapshot of every part, plus the sampler's own up and duration series.
    pub fn sample(&mut self) -> Vec<Sample> {
        let started = Instant::now();
        let mut out = Vec::with_capacity(64);
        let mut all_up = true;
        for part in &mut self.parts {
            let name = part.name();
            let up = match part.sample(&mut out) {
                Ok(()) => {
                    if self.failing.remove(name).is_some() {
                        tracing::info!(sampler = "system", part = name, "sampler part recovered");
                    }
                    true
                }
                Err(error) => {
                    let text = format!("{error:#}");
                    if self.failing.get(name) != Some(&text) {
                        tracing::warn!(sampler = "system", part = name, error = %text, "sampler part failed");
                        self.failing.insert(name, text);
                    }
                    false
                }
            };
            all_up &= up;
            out.push(
                Sample::gauge("wasmon_sampler_part_up", f64::from(u8::from(up)))
                    .label("sampler", "system")
                    .label("part", name)
                    .help(
                        "Whether one part of a sampler succeeded at its last run (1) or not (0).",
                    ),
            );
        }
        out.push(
            Sample::gauge("wasmon_sampler_up", f64::from(u8::from(all_up)))
                .label("sampler", "system")
                .help("Whether every part of a sampler succeeded at its last run (1) or not (0)."),
        );
        out.push(
            Sample::gauge(
                "wasmon_sampler_duration_seconds",
                started.elapsed().as_secs_f64(),
            )
            .label("sampler", "system")
            .help("Time the last run of a sampler took."),
        );
        out
    }
}

impl SourceSampler for SystemSampler {
    fn source(&self) -> &str {
        "system"
    }

    fn interval(&self) -> Duration {
        self.interval
    }

    fn sample(&mut self) -> Vec<Sample> {
        SystemSampler::sample(self)
    }

    fn status(&self) -> SamplerStatus {
        let mut failing: Vec<String> = self
            .failing
            .iter()
            .map(|(part, error)| format!("{part}: {error}"))
            .collect();
        failing.sort();
        SamplerStatus {
            name: "system".into(),
            enabled: true,
            available: true,
            up: failing.is_empty(),
            reason: (!failing.is_empty()).then(|| failing.join("; ")),
            interval_seconds: self.interval.as_secs_f64(),
            ..SamplerStatus::default()
        }
    }
}

/// A per-second rate from the change of a cumulative counter over `elapsed`;
/// none when there is no earlier reading or no time passed.
pub(crate) fn rate(delta: u64, elapsed: Option<Duration>) -> Option<f64> {
    let seconds = elapsed?.as_secs_f64();
    (seconds > 0.0).then(|| delta as f64 / seconds)
}

/// Whether `path` is `prefix` or below it (`/run` matches `/run/user`, not `/runner`).
pub(crate) fn under(path: &str, prefix: &str) -> bool {
    let prefix = prefix.trim_end_matches('/');
    if prefix.is_empty() {
        return path.starts_with('/');
    }
    path.strip_prefix(prefix)
        .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::StoreConfig;

    fn find<'a>(samples: &'a [Sample], name: &str) -> Vec<&'a Sample> {
        samples.iter().filter(|s| s.name == name).collect()
    }

    #[track_caller]
    fn one(samples: &[Sample], name: &str) -> f64 {
        let found = find(samples, name);
        assert_eq!(found.len(), 1, "{name}: {found:?}");
        found[0].value
    }

    #[test]
    fn system_snapshot_is_plausible() {
        let mut sampler = SystemSampler::new(&SamplingConfig::default());
        sampler.sample(); // rates need a previous run
        std::thread::sleep(sysinfo::MINIMUM_CPU_UPDATE_INTERVAL);
        let samples = sampler.sample();
        let ratio = |name: &str| {
            let v = one(&samples, name);
            assert!((0.0..=1.0).contains(&v), "{name} = {v}");
            v
        };
        ratio("wasmon_cpu_usage_ratio");
        ratio("wasmon_memory_usage_ratio");
        assert_eq!(one(&samples, "wasmon_sampler_up"), 1.0, "{samples:#?}");
        let cores = one(&samples, "wasmon_cpu_logical_cores");
        assert!(cores >= 1.0);
        let per_core = find(&samples, "wasmon_cpu_core_usage_ratio");
        assert_eq!(per_core.len() as f64, cores);
        assert!(
            per_core
                .iter()
                .all(|s| (0.0..=1.0).contains(&s.value) && s.label_value("cpu").is_some())
        );
        let total = one(&samples, "wasmon_memory_total_bytes");
        let available = one(&samples, "wasmon_memory_available_bytes");
        let used = one(&samples, "wasmon_memory_used_bytes");
        assert!(total > 0.0 && available > 0.0 && available <= total && used <= total);
        assert!(
            one(&samples, "wasmon_swap_used_bytes") <= one(&samples, "wasmon_swap_total_bytes")
        );
        for load in ["wasmon_load1", "wasmon_load5", "wasmon_load15"] {
            assert!(one(&samples, load) >= 0.0);
        }
        let uptime = one(&samples, "wasmon_uptime_seconds");
        let boot = one(&samples, "wasmon_boot_time_seconds");
        assert!(uptime > 0.0);
        let now = crate::time::now_ms() as f64 / 1000.0;
        assert!(
            (boot + uptime - now).abs() < 120.0,
            "boot {boot} + uptime {uptime} vs {now}"
        );
        let sizes = find(&samples, "wasmon_filesystem_size_bytes");
        assert!(!sizes.is_empty(), "no filesystem: {samples:#?}");
        for fs in &sizes {
            assert!(fs.value > 0.0);
            for label in ["mountpoint", "device", "fstype"] {
                assert!(fs.label_value(label).is_some(), "{fs:?}");
            }
        }
        for s in find(&samples, "wasmon_filesystem_usage_ratio") {
            assert!((0.0..=1.0).contains(&s.value), "{s:?}");
        }
        assert!(!find(&samples, "wasmon_network_receive_bytes_total").is_empty());
        assert_eq!(
            find(&samples, "wasmon_network_receive_bytes_per_second").len(),
            find(&samples, "wasmon_network_receive_bytes_total").len()
        );
        let duration = one(&samples, "wasmon_sampler_duration_seconds");
        assert!(duration > 0.0 && duration < 5.0);
    }

    #[test]
    fn snapshots_store_cleanly() {
        let store = Store::new(&StoreConfig::default());
        let source = store.source("system", SourceKind::Host);
        let mut sampler = SystemSampler::new(&SamplingConfig::default());
        for _ in 0..2 {
            let report = store.apply(source, sampler.sample(), crate::time::now_ms());
            assert_eq!(report.dropped_total(), 0, "{report:?}");
        }
        assert!(store.series_count() > 15);
        assert!(!store.select(&["wasmon_network_*".to_string()]).is_empty());
    }

    #[test]
    fn ignore_lists_are_honoured() {
        let mut config = SamplingConfig::default();
        config.ignore_mountpoints.push("/".into());
        config.ignore_network_devices.push(String::new());
        let samples = SystemSampler::new(&config).sample();
        assert!(find(&samples, "wasmon_filesystem_size_bytes").is_empty());
        assert!(find(&samples, "wasmon_network_receive_bytes_total").is_empty());
        // Still up: ignoring everything is not a failure.
        assert_eq!(one(&samples, "wasmon_sampler_up"), 1.0);
    }

    #[test]
    fn path_prefixes() {
        assert!(under("/run", "/run"));
        assert!(under("/run/user/1000", "/run"));
        assert!(under("/run/user", "/run/"));
        assert!(!under("/runner", "/run"));
        assert!(under("/home", "/"));
        assert_eq!(rate(10, Some(Duration::from_secs(5))), Some(2.0));
        assert_eq!(rate(10, None), None);
        assert_eq!(rate(10, Some(Duration::ZERO)), None);
    }

    struct Ticker {
        interval: Duration,
        runs: Arc<std::sync::atomic::AtomicU32>,
    }

    impl SourceSampler for Ticker {
        fn source(&self) -> &str {
            "ticker"
        }
        fn interval(&self) -> Duration {
            self.interval
        }
        fn sample(&mut self) -> Vec<Sample> {
            let n = self.runs.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
            vec![Sample::gauge("wasmon_ticks", f64::from(n))]
        }
    }

    #[tokio::test]
    async fn a_source_runs_on_its_interval_until_shutdown() {
        let store = Arc::new(Store::new(&StoreConfig::default()));
        let shutdown = Shutdown::new();
        let runs = Arc::new(std::sync::atomic::AtomicU32::new(0));
        let ticker = Ticker {
            interval: Duration::from_millis(20),
            runs: runs.clone(),
        };
        let statuses = SamplerStatuses::default();
        let task = spawn_source(ticker, store.clone(), &statuses, shutdown.clone());
        tokio::time::sleep(Duration::from_millis(150)).await;
        shutdown.trigger();
        tokio::time::timeout(Duration::from_secs(2), task)
            .await
            .unwrap()
            .unwrap();
        let n = runs.load(std::sync::atomic::Ordering::SeqCst);
        assert!((3..=9).contains(&n), "{n} runs");
        let latest = store.select(&["wasmon_ticks".to_string()]);
        assert_eq!(latest.len(), 1);
        assert!(latest[0].value >= f64::from(n - 1));
        let status = statuses.get("ticker").unwrap();
        assert!(status.up && status.available && status.enabled);
        // The last run may have been cut short by the shutdown.
        assert!(
            (u64::from(n) - 1..=u64::from(n)).contains(&status.runs),
            "{status:?}"
        );
        assert!(status.last_run_ms.is_some() && status.last_sample_ms == status.last_run_ms);
        assert_eq!(status.interval_seconds, 0.02);
    }

    #[tokio::test]
    async fn spawn_samples_the_system_and_stops() {
        let store = Arc::new(Store::new(&StoreConfig::default()));
        let shutdown = Shutdown::new();
        let statuses = SamplerStatuses::default();
        let task = spawn(
            &SamplingConfig::default(),
            store.clone(),
            &statuses,
            shutdown.clone(),
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        while store.select(&["wasmon_sampler_up".to_string()]).is_empty() {
            assert!(Instant::now() < deadline, "no snapshot");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        shutdown.trigger();
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .unwrap()
            .unwrap();
        let disabled = SamplingConfig {
            enabled: false,
            ..SamplingConfig::default()
        };
        assert_eq!(statuses.get("system").unwrap().name, "system");
        let task = spawn(&disabled, store, &statuses, Shutdown::new());
        tokio::time::timeout(Duration::from_secs(1), task)
            .await
            .unwrap()
            .unwrap();
        let status = statuses.get("system").unwrap();
        assert!(!status.enabled && !status.up);
        assert_eq!(
            status.reason.as_deref(),
            Some("disabled by sampling.enabled = false")
        );
    }
}
