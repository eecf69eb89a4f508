//! [`AlertmanagerServer`]: a real Prometheus Alertmanager (Debian
//! `prometheus-alertmanager`) on a free loopback port, clustering off, its
//! storage in a temporary directory, with one `null` receiver: it keeps the
//! alerts it is sent and shows them in `GET /api/v2/alerts`.
//!
//! Ready in under 2 s; tests that can share one use
//! [`AlertmanagerServer::shared`] (one per test binary), told apart by labels.

use crate::http;
use crate::process::{self, ChildProcess, StartError};
use serde_json::Value;
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

/// The binary's names: Debian's, then upstream's.
const BINARIES: [&str; 2] = ["prometheus-alertmanager", "alertmanager"];

/// The whole configuration: every alert goes to a receiver that notifies nobody.
const CONFIG: &str = "route:\n  receiver: \"null\"\n  group_wait: 1s\n  group_interval: 1s\n  repeat_interval: 1h\nreceivers:\n  - name: \"null\"\n";

/// A running Alertmanager; stopped when dropped.
pub struct AlertmanagerServer {
    process: ChildProcess,
    port: u16,
    dir: tempfile::TempDir,
}

impl AlertmanagerServer {
    /// Starts an Alertmanager of its own and waits until `GET /-/ready`
    /// answers. Panics (with its output) if it cannot start: run
    /// `scripts/test.sh` to install `prometheus-alertmanager`.
    pub fn start() -> AlertmanagerServer {
        process::start_with_retry("alertmanager", Self::try_start)
    }

    /// One Alertmanager for the whole test binary, started on first use and
    /// stopped when the test process exits. Tests sharing it tell their alerts
    /// apart by labels.
    pub fn shared() -> &'static AlertmanagerServer {
        static SHARED: OnceLock<AlertmanagerServer> = OnceLock::new();
        extern "C" fn stop_shared() {
            if let Some(server) = SHARED.get() {
                server.shutdown();
            }
        }
        SHARED.get_or_init(|| {
            let server = AlertmanagerServer::start();
            // SAFETY: registers a plain function; it runs once, at exit.
            unsafe { libc::atexit(stop_shared) };
            server
        })
    }

    fn try_start() -> Result<AlertmanagerServer, StartError> {
        let dir = tempfile::Builder::new()
            .prefix("wasmon-alertmanager-")
            .tempdir()
            .expect("cannot create a temporary directory");
        let config_file = dir.path().join("alertmanager.yml");
        std::fs::write(&config_file, CONFIG).expect("cannot write alertmanager.yml");
        let binary = BINARIES.iter().find(|b| on_path(b)).ok_or_else(|| {
            StartError::new(format!(
                "neither {} is on the PATH; run scripts/test.sh to install prometheus-alertmanager",
                BINARIES.join(" nor ")
            ))
        })?;
        let port = process::free_port();
        let mut cmd = Command::new(binary);
        cmd.arg(format!("--config.file={}", config_file.display()))
            .arg(format!(
                "--storage.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            // Empty: no cluster listener (no gossip port, no peers).
            .arg("--cluster.listen-address=")
            .current_dir(dir.path());
        let process = ChildProcess::spawn(
            "alertmanager",
            &process::new_tag("alertmanager"),
            cmd,
            Duration::from_secs(10),
            Default::default(),
        )
        .map_err(|e| StartError::new(format!("cannot run {binary} ({e})")))?;
        let ready_url = format!("http://127.0.0.1:{port}/-/ready");
        process.wait_ready(Duration::from_secs(30), || {
            process::port_open(port)
                && http::request("GET", &ready_url, &[], None).is_ok_and(|r| r.status.is_success())
        })?;
        Ok(AlertmanagerServer { process, port, dir })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `127.0.0.1:PORT`, for an allow-list.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The alerts it holds now (`GET /api/v2/alerts`: active, silenced and
    /// inhibited; a resolved alert is no longer listed).
    pub fn alerts(&self) -> Vec<Value> {
        let response = http::get(&format!("{}/api/v2/alerts", self.url()));
        assert!(
            response.status.is_success(),
            "GET /api/v2/alerts: {}",
            response.status
        );
        response.json().as_array().cloned().unwrap_or_default()
    }

    /// The alerts whose labels include every `(name, value)` of `labels`.
    pub fn alerts_with(&self, labels: &[(&str, &str)]) -> Vec<Value> {
        self.alerts()
            .into_iter()
            .filter(|a| labels.iter().all(|(n, v)| a["labels"][*n] == *v))
            .collect()
    }

    /// Its output so far.
    pub fn logs(&self) -> String {
        self.process.logs().text()
    }

    /// The tag in the environment of its processes (see [`crate::leftover_processes`]).
    pub fn tag(&self) -> &str {
        self.process.tag()
    }

    /// Its processes now (see [`crate::ProcessId`]); after drop none of them runs.
    pub fn processes(&self) -> Vec<crate::ProcessId> {
        self.process.processes()
    }

    fn shutdown(&self) {
        self.process.stop();
        // A static's TempDir is never dropped: remove it here.
        let _ = std::fs::remove_dir_all(self.dir.path());
    }
}

impl Drop for AlertmanagerServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Whether an executable named `name` is on the PATH.
fn on_path(name: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|paths| {
        std::env::split_paths(&paths)
            .any(|dir| std::fs::metadata(dir.join(name)).is_ok_and(|m| m.is_file()))
    })
}
