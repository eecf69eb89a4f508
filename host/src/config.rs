//! Configuration: a TOML file, then environment overrides, then defaults.
//!
//! Every section and field is documented data with a default, so an empty file
//! (or none at all) is a valid configuration. Environment variables override the
//! file: the seeds' own names (`MONITOR_HOST`, `MONITOR_PORT`,
//! `MONITOR_HEARTBEAT_*`, `MONITORING_GPU_ENABLED`, ...) and, for any key,
//! `WASMON_<SECTION>__<KEY>` (e.g. `WASMON_SAMPLING__INTERVAL=10s`,
//! `WASMON_PLUGINS__DEFAULTS__TIMEOUT=1s`).
//!
//! Errors name the key and where its value came from:
//! `invalid value for `server.port` (from MONITOR_PORT): invalid digit found in string`.

use crate::units::{self, ByteSize};
use anyhow::{Context, Result, bail};
use serde::Deserialize;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The whole configuration.
#[derive(Debug, Clone, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// The HTTP server.
    pub server: ServerConfig,
    /// Logging.
    pub log: LogConfig,
    /// Native system sampling (CPU, memory, disks, network).
    pub sampling: SamplingConfig,
    /// GPU sampling through NVML.
    pub gpu: GpuConfig,
    /// The in-memory store of samples.
    pub store: StoreConfig,
    /// The plugin directory and the defaults of every plugin's manifest.
    pub plugins: PluginsConfig,
    /// Alert evaluation.
    pub alerts: AlertsConfig,
    /// The heartbeat watcher.
    pub heartbeat: HeartbeatConfig,
    /// HTTP ingestion of heartbeats and events.
    pub ingest: IngestConfig,
}

/// The HTTP server.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address to listen on (`MONITOR_HOST`).
    pub host: IpAddr,
    /// Port to listen on (`MONITOR_PORT`); 0 picks a free one.
    pub port: u16,
    /// How long a client may take to send a request's headers.
    #[serde(with = "units::duration")]
    pub header_read_timeout: Duration,
    /// Largest request body accepted, in bytes (413 above).
    pub max_body_bytes: ByteSize,
    /// Bearer token required by admin routes (`POST /api/...`); none when empty.
    pub admin_token: Option<String>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            host: IpAddr::from([0, 0, 0, 0]),
            port: 9400,
            header_read_timeout: Duration::from_secs(10),
            max_body_bytes: ByteSize(1024 * 1024),
            admin_token: None,
        }
    }
}

/// Logging.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// A `tracing` filter such as `info` or `wasmon=debug` (`LOG_LEVEL`; `RUST_LOG` wins).
    pub level: String,
    /// `text` or `json`.
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: "info".into(),
            format: LogFormat::Text,
        }
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Native system sampling.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SamplingConfig {
    /// Whether to sample the system at all.
    #[serde(deserialize_with = "units::flag")]
    pub enabled: bool,
    /// Time between samples (`MONITORING_POLL_INTERVAL`).
    #[serde(with = "units::duration")]
    pub interval: Duration,
    /// Filesystem types to skip (pseudo filesystems).
    pub ignore_fstypes: Vec<String>,
    /// Mount points to skip (prefixes).
    pub ignore_mountpoints: Vec<String>,
    /// Network devices to skip (prefixes), e.g. `veth`.
    pub ignore_network_devices: Vec<String>,
}

impl Default for SamplingConfig {
    fn default() -> Self {
        SamplingConfig {
            enabled: true,
            interval: Duration::from_secs(5),
            ignore_fstypes: [
                "tmpfs",
                "devtmpfs",
                "overlay",
                "squashfs",
                "proc",
                "sysfs",
                "cgroup",
                "cgroup2",
                "nsfs",
                "autofs",
                "devpts",
                "mqueue",
                "tracefs",
                "debugfs",
                "securityfs",
                "pstore",
                "bpf",
                "fusectl",
                "configfs",
                "hugetlbfs",
                "ramfs",
                "binfmt_misc",
            ]
            .map(String::from)
            .to_vec(),
            ignore_mountpoints: ["/proc", "/sys", "/dev", "/run"].map(String::from).to_vec(),
            ignore_network_devices: Vec::new(),
        }
    }
}

/// GPU sampling through NVML.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GpuConfig {
    /// `auto` (sample when a driver is found), `true` (expect one; warn when
    /// missing) or `false` (`MONITORING_GPU_ENABLED`).
    pub enabled: GpuEnabled,
    /// Path of `libnvidia-ml.so`; the library search path when absent.
    pub library: Option<PathBuf>,
    /// Which devices to sample, by index or UUID; all when empty.
    pub devices: Vec<String>,
    /// Time between GPU samples; `sampling.interval` when absent.
    #[serde(with = "units::duration_opt")]
    pub interval: Option<Duration>,
    /// How often to retry loading NVML when it is unavailable.
    #[serde(with = "units::duration")]
    pub retry_interval: Duration,
}

impl Default for GpuConfig {
    fn default() -> Self {
        GpuConfig {
            enabled: GpuEnabled::Auto,
            library: None,
            devices: Vec::new(),
            interval: None,
            retry_interval: Duration::from_secs(60),
        }
    }
}

/// Whether GPU sampling runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GpuEnabled {
    /// When a driver is found.
    Auto,
    /// Always; a missing driver is a warning.
    On,
    /// Never.
    Off,
}

impl<'de> Deserialize<'de> for GpuEnabled {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match units::FlagOrWord::deserialize(d)? {
            units::FlagOrWord::Flag(true) => Ok(GpuEnabled::On),
            units::FlagOrWord::Flag(false) => Ok(GpuEnabled::Off),
            units::FlagOrWord::Word(w) if w.eq_ignore_ascii_case("auto") => Ok(GpuEnabled::Auto),
            units::FlagOrWord::Word(w) => Err(serde::de::Error::custom(format!(
                "expected auto, true or false, found {w:?}"
            ))),
        }
    }
}

impl GpuConfig {
    /// Checks what types alone cannot.
    fn validate(&self) -> Result<()> {
        if self.retry_interval.is_zero() || self.interval.is_some_and(|i| i.is_zero()) {
            let key = if self.retry_interval.is_zero() {
                "retry_interval"
            } else {
                "interval"
            };
            bail!("invalid value for `gpu.{key}`: must be greater than zero");
        }
        if self.devices.iter().any(|d| d.trim().is_empty()) {
            bail!("invalid value for `gpu.devices`: an entry is empty (give an index or a UUID)");
        }
        Ok(())
    }
}

/// The in-memory store of samples.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// How much history to keep per series (`MONITORING_HISTORY_WINDOW`, minutes).
    #[serde(with = "units::duration")]
    pub history_window: Duration,
    /// Width of one history bucket (min/max/avg kept per bucket).
    #[serde(with = "units::duration")]
    pub history_resolution: Duration,
    /// Most series kept across all sources; excess is dropped and counted.
    pub max_series: usize,
    /// Most series one plugin may hold unless its manifest says otherwise.
    pub max_series_per_plugin: usize,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            history_window: Duration::from_secs(3600),
            history_resolution: Duration::from_secs(10),
            max_series: 200_000,
            max_series_per_plugin: 10_000,
        }
    }
}

/// The plugin directory and the defaults of every manifest.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PluginsConfig {
    /// Where `NAME.wasm` and `NAME.toml` live; relative to the config file.
    pub dir: PathBuf,
    /// Watch the directory and hot-reload on change.
    #[serde(deserialize_with = "units::flag")]
    pub watch: bool,
    /// Quiet time after the last file event before a reload starts.
    #[serde(with = "units::duration")]
    pub debounce: Duration,
    /// Keep compiled plugins in wasmtime's compilation cache, so a restart
    /// with unchanged plugins skips compilation.
    #[serde(deserialize_with = "units::flag")]
    pub cache: bool,
    /// Where the cache lives; `$XDG_CACHE_HOME/wasmon` (or `~/.cache/wasmon`) when absent.
    pub cache_dir: Option<PathBuf>,
    /// Which wasmtime compiler turns plugins into machine code.
    pub compiler: Compiler,
    /// Defaults for every plugin's manifest.
    pub defaults: PluginDefaults,
}

impl PluginsConfig {
    /// The compilation cache's directory, if caching is on and one can be found.
    pub fn cache_dir(&self) -> Option<PathBuf> {
        if !self.cache {
            return None;
        }
        if let Some(dir) = &self.cache_dir {
            return Some(dir.clone());
        }
        let base = std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache")))?;
        Some(base.join("wasmon"))
    }
}

impl Default for PluginsConfig {
    fn default() -> Self {
        PluginsConfig {
            dir: PathBuf::from("plugins.d"),
            watch: true,
            debounce: Duration::from_millis(20),
            cache: true,
            cache_dir: None,
            compiler: Compiler::default(),
            defaults: PluginDefaults::default(),
        }
    }
}

/// Which of wasmtime's compilers turns plugins into machine code. Loading a
/// plugin (startup and every hot reload) is mostly compilation; calls run the
/// compiled code.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Compiler {
    /// Winch where wasmtime has it (x86_64), Cranelift elsewhere.
    #[default]
    Auto,
    /// The optimising compiler: several times slower to compile, faster code.
    Cranelift,
    /// The baseline compiler: compiles several times faster, slower code
    /// (x86_64 only).
    Winch,
}

impl Compiler {
    /// The compiler `Auto` stands for on this machine.
    pub fn resolve(self) -> Compiler {
        match self {
            Compiler::Auto if cfg!(target_arch = "x86_64") => Compiler::Winch,
            Compiler::Auto => Compiler::Cranelift,
            chosen => chosen,
        }
    }

    /// Its name in the config file.
    pub fn as_str(self) -> &'static str {
        match self {
            Compiler::Auto => "auto",
            Compiler::Cranelift => "cranelift",
            Compiler::Winch => "winch",
        }
    }
}

/// Defaults for fields a manifest leaves out.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PluginDefaults {
    /// How often collectors collect and rules evaluate.
    #[serde(with = "units::duration")]
    pub interval: Duration,
    /// Time budget of one call into a plugin.
    #[serde(with = "units::duration")]
    pub timeout: Duration,
    /// Most linear memory one plugin instance may use.
    pub memory_limit: ByteSize,
    /// Crashes in a row after which a plugin is `failed` until reset or reload.
    pub max_restarts: u32,
    /// First restart delay; doubles per crash in a row.
    #[serde(with = "units::duration")]
    pub backoff_initial: Duration,
    /// Longest restart delay.
    #[serde(with = "units::duration")]
    pub backoff_max: Duration,
    /// Running this long without a crash forgets earlier crashes.
    #[serde(with = "units::duration")]
    pub healthy_after: Duration,
    /// Most samples one call may return (a larger answer is a fault).
    pub max_samples_per_call: usize,
    /// Most bytes a plugin's key-value state may hold.
    pub state_quota: ByteSize,
    /// Most log lines a plugin may write per second (excess is counted, not written).
    pub log_lines_per_second: u32,
}

impl Default for PluginDefaults {
    fn default() -> Self {
        PluginDefaults {
            interval: Duration::from_secs(5),
            timeout: Duration::from_secs(2),
            memory_limit: ByteSize(64 * 1024 * 1024),
            max_restarts: 5,
            backoff_initial: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
            healthy_after: Duration::from_secs(300),
            max_samples_per_call: 10_000,
            state_quota: ByteSize(1024 * 1024),
            log_lines_per_second: 50,
        }
    }
}

/// Alert evaluation.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertsConfig {
    /// How long resolved alerts stay listed in `GET /api/alerts`.
    #[serde(with = "units::duration")]
    pub keep_resolved: Duration,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        AlertsConfig {
            keep_resolved: Duration::from_secs(900),
        }
    }
}

/// The heartbeat watcher (seed 000).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HeartbeatConfig {
    /// Run the watcher (`MONITOR_HEARTBEAT_ENABLED`).
    #[serde(deserialize_with = "units::flag")]
    pub enabled: bool,
    /// Silence after which a service is down (`MONITOR_HEARTBEAT_TIMEOUT`, seconds).
    #[serde(with = "units::duration")]
    pub timeout: Duration,
    /// How often the watcher checks (`MONITOR_HEARTBEAT_CHECK_INTERVAL`, seconds).
    #[serde(with = "units::duration")]
    pub check_interval: Duration,
}

impl Default for HeartbeatConfig {
    fn default() -> Self {
        HeartbeatConfig {
            enabled: true,
            timeout: Duration::from_secs(30),
            check_interval: Duration::from_secs(5),
        }
    }
}

/// HTTP ingestion.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngestConfig {
    /// Bearer token required on ingestion routes; none when absent (`MONITOR_INGEST_TOKEN`).
    pub token: Option<String>,
    /// How many of the newest events `GET /api/events` searches.
    pub recent_events: usize,
    /// Most distinct services tracked; heartbeats and events of more are
    /// rejected (429) and counted.
    pub max_services: usize,
    /// Most event types, and most components, counted per service in the
    /// `monitoring_*` series; more are counted under `_other`.
    pub max_label_values: usize,
    /// Most events in one batch (413 above).
    pub max_batch: usize,
    /// Deepest nesting of JSON arrays and objects in a payload (400 above).
    pub max_json_depth: usize,
    /// Largest `detail` of an event (422 above).
    pub max_detail_bytes: ByteSize,
    /// Largest JSON of one event, in a batch or alone (422 above): bounds
    /// what one event may keep as attributes.
    pub max_event_bytes: ByteSize,
}

impl Default for IngestConfig {
    fn default() -> Self {
        IngestConfig {
            token: None,
            recent_events: 10_000,
            max_services: 10_000,
            max_label_values: 100,
            max_batch: 1000,
            max_json_depth: 32,
            max_detail_bytes: ByteSize(8 * 1024),
            max_event_bytes: ByteSize(64 * 1024),
        }
    }
}

/// Environment variables with names of their own, and the key each sets.
/// A `suffix` is appended to the value (`MONITORING_HISTORY_WINDOW` is in minutes).
const ENV_ALIASES: &[(&str, &str, &str)] = &[
    ("MONITOR_HOST", "server.host", ""),
    ("MONITOR_PORT", "server.port", ""),
    ("MONITOR_HEARTBEAT_ENABLED", "heartbeat.enabled", ""),
    ("MONITOR_HEARTBEAT_TIMEOUT", "heartbeat.timeout", ""),
    (
        "MONITOR_HEARTBEAT_CHECK_INTERVAL",
        "heartbeat.check_interval",
        "",
    ),
    ("MONITOR_INGEST_TOKEN", "ingest.token", ""),
    ("MONITOR_ADMIN_TOKEN", "server.admin_token", ""),
    ("MONITOR_PLUGINS_DIR", "plugins.dir", ""),
    ("MONITORING_POLL_INTERVAL", "sampling.interval", ""),
    ("MONITORING_HISTORY_WINDOW", "store.history_window", "m"),
    ("MONITORING_GPU_ENABLED", "gpu.enabled", ""),
    ("LOG_LEVEL", "log.level", ""),
];

/// The prefix of generic overrides: `WASMON_SECTION__KEY`.
const ENV_PREFIX: &str = "WASMON_";

impl Config {
    /// Loads `path` (when given), applies overrides from `env`, and resolves
    /// relative paths against the file's directory.
    pub fn load(
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config> {
        let (mut table, base) = match path {
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("failed to read config file {}", path.display()))?;
                let table: toml::Table = toml::from_str(&text)
                    .with_context(|| format!("failed to parse config file {}", path.display()))?;
                (table, path.parent().map(Path::to_path_buf))
            }
            None => (toml::Table::new(), None),
        };
        let overrides = env_overrides(env);
        for (key, var, value) in &overrides {
            set_path(&mut table, key, parse_env_value(value))
                .with_context(|| format!("cannot apply {var} to `{key}`"))?;
        }
        let mut config: Config = serde_path_to_error::deserialize(toml::Value::Table(table))
            .map_err(|e| {
                let key = e.path().to_string();
                let origin = overrides
                    .iter()
                    .find(|(k, _, _)| *k == key)
                    .map(|(_, var, _)| format!(" (from {var})"))
                    .or_else(|| path.map(|p| format!(" (in {})", p.display())))
                    .unwrap_or_default();
                anyhow::anyhow!("invalid value for `{key}`{origin}: {}", e.inner())
            })?;
        if let Some(base) = base {
            if config.plugins.dir.is_relative() {
                config.plugins.dir = base.join(&config.plugins.dir);
            }
            if let Some(cache) = &mut config.plugins.cache_dir
                && cache.is_relative()
            {
                *cache = base.join(&*cache);
            }
        }
        config.validate()?;
        Ok(config)
    }

    /// Checks what types alone cannot.
    fn validate(&self) -> Result<()> {
        let d = &self.plugins.defaults;
        for (key, value) in [
            ("sampling.interval", self.sampling.interval),
            ("plugins.defaults.interval", d.interval),
            ("plugins.defaults.timeout", d.timeout),
            ("heartbeat.timeout", self.heartbeat.timeout),
            ("heartbeat.check_interval", self.heartbeat.check_interval),
            ("store.history_resolution", self.store.history_resolution),
        ] {
            if value.is_zero() {
                bail!("invalid value for `{key}`: must be greater than zero");
            }
        }
        for (key, value) in [
            ("ingest.max_services", self.ingest.max_services),
            ("ingest.max_label_values", self.ingest.max_label_values),
            ("ingest.max_batch", self.ingest.max_batch),
            ("ingest.max_json_depth", self.ingest.max_json_depth),
            ("ingest.recent_events", self.ingest.recent_events),
        ] {
            if value == 0 {
                bail!("invalid value for `{key}`: must be greater than zero");
            }
        }
        if d.backoff_max < d.backoff_initial {
            bail!("invalid value for `plugins.defaults.backoff_max`: smaller than backoff_initial");
        }
        self.gpu.validate()?;
        Ok(())
    }
}

/// `(key, variable, value)` for each override found in `env`.
fn env_overrides(env: impl IntoIterator<Item = (String, String)>) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for (var, value) in env {
        if let Some((_, key, suffix)) = ENV_ALIASES.iter().find(|(name, _, _)| *name == var) {
            out.push((key.to_string(), var, format!("{value}{suffix}")));
        } else if let Some(rest) = var.strip_prefix(ENV_PREFIX) {
            // Only `SECTION__KEY` names are overrides: `WASMON_CONFIG` (the
            // file's path) and other `WASMON_*` variables are not.
            if rest.contains("__") {
                let key = rest.to_ascii_lowercase().replace("__", ".");
                out.push((key, var, value));
            }
        }
    }
    // Generic names first, so the seeds' own names win.
    out.sort_by_key(|(_, var, _)| !var.starts_with(ENV_PREFIX));
    out
}

/// An environment value as TOML would read it (`30` a number, `true` a boolean,
/// `[1, 2]` an array), or else as a plain string.
fn parse_env_value(raw: &str) -> toml::Value {
    let wrapped = format!("v = {raw}");
    match toml::from_str::<toml::Table>(&wrapped) {
        Ok(mut t) => t
            .remove("v")
            .unwrap_or_else(|| toml::Value::String(raw.to_string())),
        Err(_) => toml::Value::String(raw.to_string()),
    }
}

/// Sets `a.b.c` in `table`, creating tables on the way.
fn set_path(table: &mut toml::Table, key: &str, value: toml::Value) -> Result<()> {
    let mut parts = key.split('.').peekable();
    let mut current = table;
    while let Some(part) = parts.next() {
        if parts.peek().is_none() {
            current.insert(part.to_string(), value);
            return Ok(());
        }
        let entry = current
            .entry(part.to_string())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        current = match entry {
            toml::Value::Table(t) => t,
            _ => bail!("`{part}` is not a table"),
        };
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(toml: &str, env: &[(&str, &str)]) -> Result<Config> {
        let dir = std::env::temp_dir().join(format!("wasmon-config-{}", fastrand::u64(..)));
        std::fs::create_dir_all(&dir)?;
        let path = dir.join("wasmon.toml");
        std::fs::write(&path, toml)?;
        let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string()));
        let result = Config::load(Some(&path), env);
        std::fs::remove_dir_all(&dir)?;
        result
    }

    #[track_caller]
    fn check_err(toml: &str, env: &[(&str, &str)], expect: &str) {
        let err = format!("{:#}", load(toml, env).unwrap_err());
        assert!(
            err.contains(expect),
            "error {err:?} does not contain {expect:?}"
        );
    }

    #[test]
    fn empty_file_gives_defaults() {
        let c = load("", &[]).unwrap();
        assert_eq!(c.server.port, 9400);
        assert_eq!(c.sampling.interval, Duration::from_secs(5));
        assert_eq!(c.heartbeat.timeout, Duration::from_secs(30));
        assert!(c.plugins.dir.ends_with("plugins.d"));
    }

    #[test]
    fn seed_variables_override_the_file() {
        let c = load(
            "[server]\nport = 1234\n",
            &[
                ("MONITOR_PORT", "9500"),
                ("MONITOR_HOST", "127.0.0.1"),
                ("MONITOR_HEARTBEAT_ENABLED", "0"),
                ("MONITOR_HEARTBEAT_TIMEOUT", "45"),
                ("MONITORING_HISTORY_WINDOW", "30"),
                ("MONITORING_GPU_ENABLED", "false"),
                ("WASMON_SAMPLING__INTERVAL", "250ms"),
                ("WASMON_CONFIG", "/etc/wasmon.toml"),
                ("WASMON_TEST_OWNER", "x"),
            ],
        )
        .unwrap();
        assert_eq!(c.server.port, 9500);
        assert_eq!(c.server.host.to_string(), "127.0.0.1");
        assert!(!c.heartbeat.enabled);
        assert_eq!(c.heartbeat.timeout, Duration::from_secs(45));
        assert_eq!(c.store.history_window, Duration::from_secs(1800));
        assert_eq!(c.gpu.enabled, GpuEnabled::Off);
        assert_eq!(c.sampling.interval, Duration::from_millis(250));
    }

    #[test]
    fn seed_gpu_variable_takes_flags_and_auto() {
        for (value, expect) in [
            ("1", GpuEnabled::On),
            ("true", GpuEnabled::On),
            ("auto", GpuEnabled::Auto),
            ("AUTO", GpuEnabled::Auto),
            ("0", GpuEnabled::Off),
        ] {
            let c = load(
                "[gpu]\nenabled = true\n",
                &[("MONITORING_GPU_ENABLED", value)],
            )
            .unwrap();
            assert_eq!(c.gpu.enabled, expect, "MONITORING_GPU_ENABLED={value}");
        }
        check_err(
            "",
            &[("MONITORING_GPU_ENABLED", "maybe")],
            "`gpu.enabled` (from MONITORING_GPU_ENABLED)",
        );
    }

    #[test]
    fn errors_name_the_key_and_its_origin() {
        check_err("[server]\nport = \"abc\"\n", &[], "`server.port`");
        check_err(
            "",
            &[("MONITOR_PORT", "abc")],
            "`server.port` (from MONITOR_PORT)",
        );
        check_err("[server]\nprot = 1\n", &[], "unknown field `prot`");
        check_err(
            "[sampling]\ninterval = \"5 parsecs\"\n",
            &[],
            "`sampling.interval`",
        );
        check_err(
            "[sampling]\ninterval = 0\n",
            &[],
            "`sampling.interval`: must be greater than zero",
        );
        check_err(
            "[plugins.defaults]\nmemory_limit = \"12 XB\"\n",
            &[],
            "`plugins.defaults.memory_limit`",
        );
        check_err("[gpu]\nenabled = \"sometimes\"\n", &[], "`gpu.enabled`");
        check_err(
            "[gpu]\nretry_interval = 0\n",
            &[],
            "`gpu.retry_interval`: must be greater than zero",
        );
        check_err(
            "[gpu]\ninterval = \"0s\"\n",
            &[],
            "`gpu.interval`: must be greater than zero",
        );
        check_err("[gpu]\ndevices = [\"0\", \" \"]\n", &[], "`gpu.devices`");
        check_err(
            "[plugins]\ncompiler = \"llvm\"\n",
            &[],
            "unknown variant `llvm`, expected one of `auto`, `cranelift`, `winch`\nin `plugins.compiler`",
        );
        check_err("[server\n", &[], "failed to parse config file");
    }

    #[test]
    fn the_compiler_is_chosen_by_file_or_environment() {
        assert_eq!(load("", &[]).unwrap().plugins.compiler, Compiler::Auto);
        let c = load(
            "[plugins]\ncompiler = \"winch\"\n",
            &[("WASMON_PLUGINS__COMPILER", "cranelift")],
        )
        .unwrap();
        assert_eq!(c.plugins.compiler, Compiler::Cranelift);
        assert_eq!(Compiler::Cranelift.resolve(), Compiler::Cranelift);
        assert_eq!(Compiler::Winch.resolve(), Compiler::Winch);
        assert_ne!(Compiler::Auto.resolve(), Compiler::Auto);
    }

    #[test]
    fn relative_plugin_dir_is_resolved_against_the_file() {
        let c = load("[plugins]\ndir = \"p.d\"\n", &[]).unwrap();
        assert!(c.plugins.dir.is_absolute());
        assert!(c.plugins.dir.ends_with("p.d"));
    }
}
