//! Test support for wasmon: everything a black-box test or bench needs to run
//! the real binary against real plugins and real servers.
//!
//! # Layout
//!
//! - [`guests`]: one `&str` constant per guest component (the absolute path of
//!   its `.wasm`), built by this crate's `build.rs` from the `plugins/` and
//!   `tests/guests/` workspaces, and [`guests::ALL`].
//! - [`fixtures`]: the same for native fixtures built for the host:
//!   [`fixtures::FAKE_NVML`], the fake `libnvidia-ml.so` of `tests/fake-nvml/`.
//! - [`FakeNvml`] / [`FakeDriver`] / [`FakeDevice`]: that library installed in
//!   a temporary directory, and the driver it pretends to be, changeable while
//!   the host runs.
//! - [`Host`] / [`HostOptions`]: the `wasmon` binary as a child process in a
//!   temporary directory, on a port the kernel picks, with HTTP helpers and its
//!   captured log.
//! - [`PluginDir`]: atomic installs, manifest changes and removals.
//! - [`Recorder`]: an HTTP server recording requests, with a settable answer.
//! - [`EsBulk`]: an Elasticsearch `_bulk` receiver with per-item semantics and scripted faults.
//! - [`ZabbixReceiver`]: a Zabbix trapper speaking the sender protocol (`ZBXD`), with partial failures.
//! - [`servers`]: real `redis-server`, `rabbitmq-server`, PostgreSQL, `prometheus` and Alertmanager, and
//!   [`promtool_check`].
//! - [`http`]: the small blocking client behind the helpers.
//! - [`authoring`]: the pinned Python and JS plugin toolchains CI installs and
//!   `wasmon plugin ...` run as a child (issue 12).
//! - [`process`]: how children are spawned, tied to the test process, and
//!   stopped with their whole tree; [`leftover_processes`] checks nothing remains.
//!
//! ```no_run
//! use wasmon_test_support::{Host, HostOptions, Recorder};
//! use std::time::Duration;
//!
//! let target = Recorder::start();
//! let host = Host::start(
//!     HostOptions::new("target/debug/wasmon") // env!("CARGO_BIN_EXE_wasmon") in host/tests
//!         .config("[sampling]\ninterval = \"100ms\""),
//! );
//! let (status, _) = host.get("/healthz");
//! assert_eq!(status, 200);
//! host.plugins().install("http_probe", "target/.../collector_http_probe.wasm");
//! host.wait_for_log("plugin loaded", Duration::from_secs(10));
//! let _ = target.wait_for_requests(1, Duration::from_secs(10));
//! ```

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod authoring;
pub mod es_bulk;
pub mod fake_nvml;
pub mod host;
pub mod http;
pub mod plugin_dir;
pub mod process;
pub mod recorder;
mod serve;
pub mod servers;
pub mod zabbix;

/// The guest components, built by `build.rs`: `COLLECTOR_HTTP_PROBE`,
/// `RULE_THRESHOLD`, `SINK_WEBHOOK`, `GUEST_INFINITE_LOOP`, ... (the crate's
/// cdylib or bin target name, upper-cased, `-` → `_`), each the absolute path
/// of its `.wasm`; and `ALL`, every `(name, path)`.
pub mod guests {
    include!(concat!(env!("OUT_DIR"), "/guests.rs"));
}

/// Native fixtures built for the host by `build.rs`: `FAKE_NVML` (the absolute
/// path of `tests/fake-nvml`'s `libfake_nvml.so`); and `ALL`, every `(name, path)`.
pub mod fixtures {
    include!(concat!(env!("OUT_DIR"), "/fixtures.rs"));
}

pub use es_bulk::EsBulk;
pub use fake_nvml::{FakeDevice, FakeDriver, FakeNvml};
pub use host::{Host, HostOptions, LogMark};
pub use http::Response;
pub use plugin_dir::PluginDir;
pub use process::{ProcessId, free_port, free_ports, leftover_processes};
pub use recorder::{RecordedRequest, Recorder};
pub use servers::alertmanager::AlertmanagerServer;
pub use servers::postgres::PostgresServer;
pub use servers::prometheus::{PrometheusServer, promtool_check};
pub use servers::rabbitmq::RabbitMqServer;
pub use servers::redis::{RedisServer, RespValue};
pub use servers::s3::S3Server;
pub use zabbix::{ZabbixItem, ZabbixReceiver};

pub use ::http::StatusCode;

use std::time::{Duration, Instant};

/// Polls `check` every 20 ms until it returns `Some`, and returns that; panics
/// after `timeout`.
#[track_caller]
pub fn wait_until<T>(timeout: Duration, check: impl FnMut() -> Option<T>) -> T {
    try_wait_until(timeout, check).unwrap_or_else(|| panic!("condition not met within {timeout:?}"))
}

/// Polls `check` every 20 ms until it returns `Some`; `None` after `timeout`.
pub fn try_wait_until<T>(timeout: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return Some(value);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The value of the series `name` whose labels include every pair in `labels`
/// in a Prometheus text exposition, if there is exactly one such line; counters
/// are looked up by the exported name (with `_total`).
pub fn metric_value(metrics: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let mut found = None;
    for line in metrics.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let (series_name, series_labels) = match series.split_once('{') {
            Some((n, rest)) => (n, rest.trim_end_matches('}')),
            None => (series, ""),
        };
        if series_name != name {
            continue;
        }
        let matches = labels.iter().all(|(k, v)| {
            let pair = format!("{k}=\"{v}\"");
            series_labels.split(',').any(|p| p == pair)
        });
        if matches {
            if found.is_some() {
                return None;
            }
            found = value.parse::<f64>().ok();
        }
    }
    found
}
