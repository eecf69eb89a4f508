//! [`Host`]: the real `wasmon` binary started as a child process for one test,
//! in its own temporary directory, on a port the kernel picks.

use crate::http::{self, Response};
use crate::plugin_dir::PluginDir;
use crate::process::{self, ChildProcess, Logs};
use ::http::StatusCode;
use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::sync::Arc;
use std::time::Duration;

/// The log line the host writes once it serves (`listening addr=IP:PORT`).
const LISTENING: &str = "listening addr=";

/// Environment prefixes the host reads: never inherited from the test process.
const HOST_ENV_PREFIXES: &[&str] = &[
    "MONITOR_",
    "MONITORING_",
    "WASMON_",
    "RUST_LOG",
    "LOG_LEVEL",
];

/// How to start a [`Host`]. Built with chained setters:
///
/// ```no_run
/// # use wasmon_test_support::HostOptions;
/// // In host/tests: HostOptions::new(env!("CARGO_BIN_EXE_wasmon")) and guests::GUEST_COUNTER.
/// let options = HostOptions::new("target/debug/wasmon")
///     .config("[sampling]\ninterval = \"100ms\"")
///     .env("MONITOR_HEARTBEAT_TIMEOUT", "1")
///     .plugin("counter", "target/wasm-guests/wasm32-wasip2/release/guest-counter.wasm")
///     .manifest("counter", "interval = \"50ms\"");
/// ```
#[derive(Debug, Clone)]
pub struct HostOptions {
    binary: PathBuf,
    config: String,
    env: Vec<(OsString, OsString)>,
    args: Vec<OsString>,
    plugins: Vec<(String, PathBuf)>,
    manifests: Vec<(String, String)>,
    startup_timeout: Duration,
    stop_timeout: Duration,
}

impl HostOptions {
    /// Options for the binary at `binary` (in `host/` tests:
    /// `env!("CARGO_BIN_EXE_wasmon")`), with an empty config and no plugins.
    pub fn new(binary: impl Into<PathBuf>) -> HostOptions {
        HostOptions {
            binary: binary.into(),
            config: String::new(),
            env: Vec::new(),
            args: Vec::new(),
            plugins: Vec::new(),
            manifests: Vec::new(),
            startup_timeout: Duration::from_secs(30),
            stop_timeout: Duration::from_secs(5),
        }
    }

    /// The config file's TOML. `plugins.dir` is set to the host's plugin
    /// directory unless given; relative paths resolve against the host's
    /// temporary directory, where the file is written.
    pub fn config(mut self, toml: &str) -> HostOptions {
        self.config = toml.to_string();
        self
    }

    /// An environment variable for the host. The test process's own `MONITOR_*`,
    /// `MONITORING_*`, `WASMON_*`, `RUST_LOG` and `LOG_LEVEL` are never inherited;
    /// `RUST_LOG` is `$WASMON_TEST_LOG` or `info` unless set here.
    pub fn env(mut self, key: impl Into<OsString>, value: impl Into<OsString>) -> HostOptions {
        self.env.push((key.into(), value.into()));
        self
    }

    /// An extra command-line argument (after `--config PATH`).
    pub fn arg(mut self, arg: impl Into<OsString>) -> HostOptions {
        self.args.push(arg.into());
        self
    }

    /// A plugin installed before the host starts: `wasm` copied to `NAME.wasm`.
    pub fn plugin(mut self, name: &str, wasm: impl AsRef<Path>) -> HostOptions {
        self.plugins
            .push((name.to_string(), wasm.as_ref().to_path_buf()));
        self
    }

    /// A manifest written before the host starts, as `NAME.toml`.
    pub fn manifest(mut self, name: &str, toml: &str) -> HostOptions {
        self.manifests.push((name.to_string(), toml.to_string()));
        self
    }

    /// How long to wait for the `listening` line (default 30 s).
    pub fn startup_timeout(mut self, timeout: Duration) -> HostOptions {
        self.startup_timeout = timeout;
        self
    }

    /// How long a SIGTERM may take before SIGKILL (default 5 s).
    pub fn stop_timeout(mut self, timeout: Duration) -> HostOptions {
        self.stop_timeout = timeout;
        self
    }
}

/// A position in a host's log, to wait for lines written after it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogMark(usize);

/// A running `wasmon`, stopped (SIGTERM, then SIGKILL) when dropped. When the
/// test is failing, its log is printed on drop.
pub struct Host {
    options: HostOptions,
    dir: tempfile::TempDir,
    config_path: PathBuf,
    plugins: PluginDir,
    process: Option<ChildProcess>,
    /// The output of every run (restarts append), so it survives `stop`.
    logs: Arc<Logs>,
    tag: String,
    addr: SocketAddr,
}

impl Host {
    /// Writes the config and plugins into a fresh temporary directory, starts the
    /// binary and waits for it to listen. Panics with its output if it does not.
    pub fn start(options: HostOptions) -> Host {
        let dir = tempfile::Builder::new()
            .prefix("wasmon-host-")
            .tempdir()
            .expect("cannot create a temporary directory");
        let plugins = PluginDir::new(dir.path().join("plugins.d"));
        let config_path = dir.path().join("wasmon.toml");
        let config = with_plugin_dir(&options.config, plugins.path());
        std::fs::write(&config_path, config).expect("cannot write the host config");
        for (name, wasm) in &options.plugins {
            plugins.install(name, wasm);
        }
        for (name, toml) in &options.manifests {
            plugins.write_manifest(name, toml);
        }
        let mut host = Host {
            options,
            dir,
            config_path,
            plugins,
            process: None,
            logs: Arc::default(),
            tag: String::new(),
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
        };
        host.spawn();
        host
    }

    fn spawn(&mut self) {
        let options = &self.options;
        let mut cmd = Command::new(&options.binary);
        cmd.arg("--config")
            .arg(&self.config_path)
            .args(&options.args)
            .current_dir(self.dir.path());
        for (key, _) in std::env::vars_os() {
            if key
                .to_str()
                .is_some_and(|k| HOST_ENV_PREFIXES.iter().any(|p| k.starts_with(p)))
            {
                cmd.env_remove(key);
            }
        }
        let log = std::env::var_os("WASMON_TEST_LOG").unwrap_or_else(|| "info".into());
        cmd.env("RUST_LOG", log)
            .env("NO_COLOR", "1")
            .env("MONITOR_HOST", "127.0.0.1")
            .env("MONITOR_PORT", "0")
            .envs(options.env.iter().map(|(k, v)| (k, v)));

        let tag = process::new_tag("wasmon");
        let since = self.logs.len();
        if since > 0 {
            self.logs.push("----- wasmon restarted -----".into());
        }
        let process =
            ChildProcess::spawn("wasmon", &tag, cmd, options.stop_timeout, self.logs.clone())
                .unwrap_or_else(|e| panic!("cannot start {}: {e}", options.binary.display()));
        let mut line = None;
        let started = process.wait_ready(options.startup_timeout, || {
            line = self
                .logs
                .wait_for(since, LISTENING, Duration::from_millis(50));
            line.is_some()
        });
        if let Err(e) = started {
            panic!("wasmon did not start: {}", e.message);
        }
        let line = line.expect("ready means the line was seen");
        self.addr =
            parse_listening(&line).unwrap_or_else(|| panic!("cannot read the address in {line:?}"));
        self.process = Some(process);
        self.tag = tag;
    }

    fn process(&self) -> &ChildProcess {
        self.process
            .as_ref()
            .expect("the host was stopped; call restart() first")
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://IP:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `http://IP:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Its temporary directory (config file, plugin dir, anything relative).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Its config file.
    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    /// Its plugin directory, to install, change and remove plugins while it runs.
    pub fn plugins(&self) -> &PluginDir {
        &self.plugins
    }

    /// Its PID.
    pub fn pid(&self) -> i32 {
        self.process().pid()
    }

    /// Its processes now (see [`crate::ProcessId`]).
    pub fn processes(&self) -> Vec<crate::ProcessId> {
        self.process().processes()
    }

    /// The tag in the environment of the current process and all it starts (see
    /// [`crate::leftover_processes`]); each (re)start gets a new one.
    pub fn tag(&self) -> &str {
        &self.tag
    }

    /// Sends one request; panics on a transport error (the host is expected up).
    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&[u8]>,
    ) -> Response {
        http::request(method, &self.url(path), headers, body)
            .unwrap_or_else(|e| panic!("{method} {path} failed: {e}; host log:\n{}", self.logs()))
    }

    /// `GET path` → (status, body).
    pub fn get(&self, path: &str) -> (StatusCode, String) {
        let r = self.request("GET", path, &[], None);
        (r.status, r.text())
    }

    /// The value of one series in `/metrics` (labels: a subset to match).
    pub fn metric(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        crate::metric_value(&self.get("/metrics").1, name, labels)
    }

    /// `GET path`, asserting a 2xx status, → the JSON body.
    pub fn get_json(&self, path: &str) -> serde_json::Value {
        let r = self.request("GET", path, &[], None);
        assert!(
            r.status.is_success(),
            "GET {path}: {} {}",
            r.status,
            r.text()
        );
        r.json()
    }

    /// `POST path` with `value` as JSON → (status, body).
    pub fn post_json(&self, path: &str, value: &serde_json::Value) -> (StatusCode, String) {
        let body = serde_json::to_vec(value).expect("JSON values serialise");
        let r = self.request(
            "POST",
            path,
            &[("content-type", "application/json")],
            Some(&body),
        );
        (r.status, r.text())
    }

    /// `POST path` with no body → (status, body).
    pub fn post(&self, path: &str) -> (StatusCode, String) {
        let r = self.request("POST", path, &[], None);
        (r.status, r.text())
    }

    /// Everything it wrote on stdout and stderr so far, over all its runs
    /// (a restart appends a `----- wasmon restarted -----` line).
    pub fn logs(&self) -> String {
        self.logs.text()
    }

    /// The current end of its log, for [`Host::wait_for_log_since`].
    pub fn log_mark(&self) -> LogMark {
        LogMark(self.logs.len())
    }

    /// Waits for a log line containing `pattern` (from any run); returns it.
    /// Panics on timeout.
    pub fn wait_for_log(&self, pattern: &str, timeout: Duration) -> String {
        self.wait_for_log_since(LogMark(0), pattern, timeout)
    }

    /// Waits for a line containing `pattern` written after `mark`; returns it.
    pub fn wait_for_log_since(&self, mark: LogMark, pattern: &str, timeout: Duration) -> String {
        self.logs
            .wait_for(mark.0, pattern, timeout)
            .unwrap_or_else(|| panic!("no log line containing {pattern:?} within {timeout:?}"))
    }

    /// Waits until `GET /readyz` answers 200: the plugin directory was loaded.
    pub fn wait_ready(&self, timeout: Duration) {
        self.wait_until(timeout, || {
            (self.get("/readyz").0 == StatusCode::OK).then_some(())
        });
    }

    /// Polls `check` until it returns `Some`; panics on timeout.
    #[track_caller]
    pub fn wait_until<T>(&self, timeout: Duration, check: impl FnMut() -> Option<T>) -> T {
        crate::wait_until(timeout, check)
    }

    /// Sends `signal` (e.g. `libc::SIGHUP`) to the host.
    pub fn signal(&self, signal: i32) {
        self.process().signal(signal);
    }

    /// Its exit status if it has exited on its own, `None` while it runs.
    pub fn exit_status(&self) -> Option<ExitStatus> {
        self.process.as_ref().and_then(ChildProcess::try_status)
    }

    /// Stops it gracefully (SIGTERM; SIGKILL after the stop timeout) and returns
    /// its exit status. Its directory stays for [`Host::restart`].
    pub fn stop(&mut self) -> ExitStatus {
        let status = self.process().stop();
        self.process = None;
        status
    }

    /// Kills it with SIGKILL, as a crash or `kill -9` would.
    pub fn kill(&mut self) -> ExitStatus {
        let status = self.process().stop_with(libc::SIGKILL);
        self.process = None;
        status
    }

    /// Starts it again (stopping it first if it runs) with the same directory,
    /// config and plugins; it gets a new port.
    pub fn restart(&mut self) {
        if self.process.is_some() {
            self.stop();
        }
        self.spawn();
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        if let Some(process) = self.process.take() {
            process.stop();
        }
        if std::thread::panicking() {
            eprintln!(
                "----- wasmon log ({}) -----\n{}\n----- end of wasmon log -----",
                self.dir.path().display(),
                self.logs.text()
            );
        }
    }
}

/// The caller's config with `plugins.dir` set to `plugin_dir` unless it names one.
fn with_plugin_dir(config: &str, plugin_dir: &Path) -> String {
    let mut table: toml::Table = config
        .parse()
        .unwrap_or_else(|e| panic!("the config given to HostOptions is not TOML: {e}"));
    let plugins = table
        .entry("plugins")
        .or_insert_with(|| toml::Value::Table(toml::Table::new()));
    let toml::Value::Table(plugins) = plugins else {
        panic!("`plugins` in the config given to HostOptions is not a table");
    };
    plugins
        .entry("dir")
        .or_insert_with(|| toml::Value::String(plugin_dir.to_string_lossy().into_owned()));
    toml::to_string(&table).expect("a TOML table serialises")
}

/// `... listening addr=127.0.0.1:1234 ...` → the address.
fn parse_listening(line: &str) -> Option<SocketAddr> {
    let rest = &line[line.find(LISTENING)? + LISTENING.len()..];
    let token = rest.split_whitespace().next()?;
    token.trim_matches(|c| c == '"' || c == ',').parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_address_in_the_listening_line() {
        let line = "2025-01-01T00:00:00Z  INFO wasmon::export: listening addr=127.0.0.1:40123";
        assert_eq!(parse_listening(line), Some(([127, 0, 0, 1], 40123).into()));
        assert_eq!(
            parse_listening("listening addr=\"[::1]:80\" tls=false"),
            Some("[::1]:80".parse().unwrap())
        );
        assert_eq!(parse_listening("listening soon"), None);
    }

    #[test]
    fn sets_the_plugin_dir_unless_given() {
        let dir = Path::new("/tmp/x/plugins.d");
        let merged: toml::Table = with_plugin_dir("[plugins]\nwatch = false\n", dir)
            .parse()
            .unwrap();
        assert_eq!(merged["plugins"]["dir"].as_str(), Some("/tmp/x/plugins.d"));
        assert_eq!(merged["plugins"]["watch"].as_bool(), Some(false));
        let kept: toml::Table = with_plugin_dir("plugins.dir = \"mine\"", dir)
            .parse()
            .unwrap();
        assert_eq!(kept["plugins"]["dir"].as_str(), Some("mine"));
    }
}
