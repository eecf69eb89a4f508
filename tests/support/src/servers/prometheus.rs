//! [`PrometheusServer`]: a real Prometheus on a free loopback port scraping
//! targets a test names (file-based service discovery, so targets can change
//! while it runs); and [`promtool_check`], the reference lint of the text format.

use crate::http;
use crate::process::{self, ChildProcess, StartError};
use serde_json::{Value, json};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

/// The placeholder [`PrometheusServer::start_with_config`] replaces with the
/// path of the file-SD targets file.
pub const TARGETS_FILE: &str = "{targets_file}";

/// A running Prometheus; stopped when dropped.
pub struct PrometheusServer {
    process: ChildProcess,
    port: u16,
    targets_file: PathBuf,
    dir: tempfile::TempDir,
}

impl PrometheusServer {
    /// Starts Prometheus with one job, `wasmon`, scraping `targets` (`IP:PORT`,
    /// path `/metrics`) every second; change them with [`PrometheusServer::set_targets`].
    pub fn start<S: AsRef<str>>(targets: &[S]) -> PrometheusServer {
        let config = format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: wasmon\n    file_sd_configs:\n      - files: ['{TARGETS_FILE}']\n        refresh_interval: 1s\n"
        );
        let server = Self::start_with_config(&config);
        server.set_targets(targets);
        server
    }

    /// Starts Prometheus with `yaml` as its whole config; [`TARGETS_FILE`] in it
    /// is replaced by the path of the file that [`PrometheusServer::set_targets`] writes.
    pub fn start_with_config(yaml: &str) -> PrometheusServer {
        process::start_with_retry("prometheus", || Self::try_start(yaml))
    }

    fn try_start(yaml: &str) -> Result<PrometheusServer, StartError> {
        let dir = tempfile::Builder::new()
            .prefix("wasmon-prometheus-")
            .tempdir()
            .expect("cannot create a temporary directory");
        let targets_file = dir.path().join("targets.json");
        write_atomically(&targets_file, b"[]");
        let config_file = dir.path().join("prometheus.yml");
        let config = yaml.replace(TARGETS_FILE, &targets_file.to_string_lossy());
        std::fs::write(&config_file, config).expect("cannot write prometheus.yml");
        let port = process::free_port();
        let mut cmd = Command::new("prometheus");
        cmd.arg(format!("--config.file={}", config_file.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .current_dir(dir.path());
        let process = ChildProcess::spawn(
            "prometheus",
            &process::new_tag("prometheus"),
            cmd,
            Duration::from_secs(10),
            Default::default(),
        )
        .map_err(|e| {
            StartError::new(format!(
                "cannot run prometheus ({e}); run scripts/test.sh to install it"
            ))
        })?;
        let ready_url = format!("http://127.0.0.1:{port}/-/ready");
        process.wait_ready(Duration::from_secs(30), || {
            process::port_open(port)
                && http::request("GET", &ready_url, &[], None).is_ok_and(|r| r.status.is_success())
        })?;
        Ok(PrometheusServer {
            process,
            port,
            targets_file,
            dir,
        })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Its port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Its temporary directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Replaces the scrape targets (`IP:PORT`); picked up within about a second.
    pub fn set_targets<S: AsRef<str>>(&self, targets: &[S]) {
        let targets: Vec<&str> = targets.iter().map(AsRef::as_ref).collect();
        let body = json!([{ "targets": targets, "labels": {} }]);
        write_atomically(&self.targets_file, body.to_string().as_bytes());
    }

    /// The active targets (`/api/v1/targets`, `data.activeTargets`).
    pub fn targets(&self) -> Vec<Value> {
        let v = self.api("/api/v1/targets");
        v["data"]["activeTargets"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Waits until target `instance` (`IP:PORT`) was scraped successfully and
    /// returns it; panics with the targets seen on timeout. Expect 3–6 s: target
    /// updates are batched every 5 s.
    pub fn wait_for_target_up(&self, instance: &str, timeout: Duration) -> Value {
        let mut seen = Vec::new();
        let found = crate::try_wait_until(timeout, || {
            seen = self.targets();
            seen.iter()
                .find(|t| t["labels"]["instance"] == instance && t["health"] == "up")
                .cloned()
        });
        found.unwrap_or_else(|| {
            panic!("target {instance} not up within {timeout:?}; targets: {seen:#?}\nprometheus log:\n{}", self.logs())
        })
    }

    /// Runs an instant query; returns `data.result`. Panics on an API error.
    pub fn query(&self, promql: &str) -> Vec<Value> {
        let mut encoded = String::new();
        for b in promql.bytes() {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                encoded.push(b as char);
            } else {
                encoded.push_str(&format!("%{b:02X}"));
            }
        }
        let v = self.api(&format!("/api/v1/query?query={encoded}"));
        v["data"]["result"].as_array().cloned().unwrap_or_default()
    }

    fn api(&self, path: &str) -> Value {
        let response = http::get(&format!("{}{path}", self.url()));
        let v = response.json();
        assert_eq!(v["status"], "success", "prometheus {path}: {v}");
        v
    }

    /// The tag in the environment of its processes (see [`crate::leftover_processes`]).
    pub fn tag(&self) -> &str {
        self.process.tag()
    }

    /// Its processes now (see [`crate::ProcessId`]); after drop none of them runs.
    pub fn processes(&self) -> Vec<crate::ProcessId> {
        self.process.processes()
    }

    /// Its PID.
    pub fn pid(&self) -> i32 {
        self.process.pid()
    }

    /// Its output so far.
    pub fn logs(&self) -> String {
        self.process.logs().text()
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) {
    let temp = path.with_extension("tmp");
    std::fs::write(&temp, bytes).expect("cannot write a targets file");
    std::fs::rename(&temp, path).expect("cannot rename a targets file");
}

/// Runs `promtool check metrics` on `text` (the Prometheus text format): `Ok`
/// when it passes, `Err` with promtool's complaints (parse errors and lint
/// problems such as a counter without `_total`) otherwise. Panics if promtool
/// cannot run: run `scripts/test.sh` to install it.
pub fn promtool_check(text: &str) -> Result<(), String> {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run promtool ({e}); run scripts/test.sh to install it"));
    let mut stdin = child.stdin.take().expect("stdin is piped");
    let text = text.to_string();
    // Written from a thread so a large input cannot deadlock against promtool's output.
    let writer = std::thread::spawn(move || stdin.write_all(text.as_bytes()));
    let output = child.wait_with_output().expect("cannot wait for promtool");
    let _ = writer.join();
    if output.status.success() {
        return Ok(());
    }
    let complaints = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    match output.status.code() {
        Some(1 | 3) => Err(complaints.trim().to_string()),
        _ => panic!("promtool failed ({}): {complaints}", output.status),
    }
}
