//! `[plugins]` (the directory, the compiler, `[plugins.defaults]` and the
//! ceilings of `[plugins.limits]`) and `[alerts]`.

use crate::units::{self, ByteSize};
use anyhow::{Result, bail};
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

use super::upload::UploadConfig;

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
    /// Most components compiled at once (compiling a 15 MB Python or
    /// JavaScript plugin takes seconds of CPU); other loads wait for a slot,
    /// while every plugin already serving keeps being called. Default: half
    /// the CPUs, at least 1.
    pub max_concurrent_compiles: Option<usize>,
    /// Which wasmtime compiler turns plugins into machine code.
    pub compiler: Compiler,
    /// Defaults for every plugin's manifest.
    pub defaults: PluginDefaults,
    /// Ceilings no manifest may exceed (a manifest above one is `invalid`).
    pub limits: PluginLimits,
    /// The environment variables a manifest may reference as `${VAR}` or
    /// `${VAR:-default}` (`*` globs); any other reference makes the manifest
    /// invalid. Default: the seeds' `MONITORING_*` and `PIXCRAWLER_*`.
    pub env_allow: Vec<String>,
    /// What `PUT /api/plugins/{name}` may install (`[plugins.upload]`).
    pub upload: UploadConfig,
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
            max_concurrent_compiles: None,
            compiler: Compiler::default(),
            defaults: PluginDefaults::default(),
            limits: PluginLimits::default(),
            env_allow: crate::plugins::manifest::expand::ENV_ALLOW
                .iter()
                .map(|s| s.to_string())
                .collect(),
            upload: UploadConfig::default(),
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
    /// Time budget of instantiating a plugin and running its `init`.
    #[serde(with = "units::duration")]
    pub init_timeout: Duration,
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
            init_timeout: Duration::from_secs(10),
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

/// Host-side ceilings on what a plugin's manifest may ask for (`[plugins.limits]`).
/// A manifest above one is `invalid`; the defaults must be within them.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PluginLimits {
    /// Largest `memory_limit` a manifest may set.
    pub max_memory_limit: ByteSize,
    /// Longest `timeout` (time budget of one call) a manifest may set.
    #[serde(with = "units::duration")]
    pub max_timeout: Duration,
    /// Longest `init_timeout` a manifest may set.
    #[serde(with = "units::duration")]
    pub max_init_timeout: Duration,
    /// Longest `interval` a manifest may set.
    #[serde(with = "units::duration")]
    pub max_interval: Duration,
    /// Most series one plugin may hold: a manifest's `max_series` may only
    /// lower it, and a manifest without one gets it.
    pub max_series_per_plugin: usize,
    /// Largest `state_quota` a manifest may set.
    pub max_state_quota: ByteSize,
}

impl Default for PluginLimits {
    fn default() -> Self {
        PluginLimits {
            max_memory_limit: ByteSize(512 * 1024 * 1024),
            max_timeout: Duration::from_secs(60),
            max_init_timeout: Duration::from_secs(60),
            max_interval: Duration::from_secs(24 * 3600),
            max_series_per_plugin: 10_000,
            max_state_quota: ByteSize(64 * 1024 * 1024),
        }
    }
}

impl PluginsConfig {
    /// Checks the limits, and the defaults against them: each error names
    /// the keys.
    pub(super) fn validate(&self) -> Result<()> {
        self.upload.validate()?;
        let (d, l) = (&self.defaults, &self.limits);
        for (key, zero) in [
            ("plugins.defaults.init_timeout", d.init_timeout.is_zero()),
            ("plugins.limits.max_memory_limit", l.max_memory_limit.0 == 0),
            ("plugins.limits.max_timeout", l.max_timeout.is_zero()),
            (
                "plugins.limits.max_init_timeout",
                l.max_init_timeout.is_zero(),
            ),
            ("plugins.limits.max_interval", l.max_interval.is_zero()),
            (
                "plugins.limits.max_series_per_plugin",
                l.max_series_per_plugin == 0,
            ),
            ("plugins.limits.max_state_quota", l.max_state_quota.0 == 0),
        ] {
            if zero {
                bail!("invalid value for `{key}`: must be greater than zero");
            }
        }
        let time = |key, value: Duration, ceiling, max: Duration| {
            let text = |d| humantime::format_duration(d).to_string();
            (key, ceiling, value > max, text(value), text(max))
        };
        let size = |key, value: ByteSize, ceiling, max: ByteSize| {
            (
                key,
                ceiling,
                value > max,
                value.to_string(),
                max.to_string(),
            )
        };
        let checks = [
            time("interval", d.interval, "max_interval", l.max_interval),
            time("timeout", d.timeout, "max_timeout", l.max_timeout),
            time(
                "init_timeout",
                d.init_timeout,
                "max_init_timeout",
                l.max_init_timeout,
            ),
            size(
                "memory_limit",
                d.memory_limit,
                "max_memory_limit",
                l.max_memory_limit,
            ),
            size(
                "state_quota",
                d.state_quota,
                "max_state_quota",
                l.max_state_quota,
            ),
        ];
        if let Some((key, ceiling, _, value, max)) = checks.into_iter().find(|c| c.2) {
            bail!(
                "invalid value for `plugins.defaults.{key}`: {value} exceeds `plugins.limits.{ceiling}` ({max})"
            );
        }
        Ok(())
    }
}

/// Alert evaluation.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertsConfig {
    /// How long resolved alerts stay listed in `GET /api/alerts`.
    #[serde(with = "units::duration")]
    pub keep_resolved: Duration,
    /// Most resolved alerts kept per rule, whatever their age; the oldest
    /// beyond go first (dropped and counted). 0 keeps none.
    pub max_resolved: usize,
    /// Most active (pending or firing) alerts per rule; a rule's manifest
    /// `max_alerts` may lower it, never raise it. New conditions beyond are
    /// dropped and counted (`wasmon_alerts_dropped_total{rule}`).
    pub max_alerts_per_rule: usize,
    /// Bounds of `POST /api/plugins/{name}/backtest`.
    pub backtest: BacktestConfig,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        AlertsConfig {
            keep_resolved: Duration::from_secs(900),
            max_resolved: 1000,
            max_alerts_per_rule: 1000,
            backtest: BacktestConfig::default(),
        }
    }
}

/// Bounds of a backtest (`[alerts.backtest]`): a rule version replayed over
/// the store's history, one evaluation per step.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BacktestConfig {
    /// The whole replay's deadline; the answer is partial (`complete` false) past it.
    #[serde(with = "units::duration")]
    pub timeout: Duration,
    /// Most history points (series × buckets) one backtest copies; more is a 400.
    pub max_points: usize,
    /// Most steps (`window / step`) one backtest evaluates; more is a 400.
    pub max_steps: usize,
}

impl Default for BacktestConfig {
    fn default() -> Self {
        BacktestConfig {
            timeout: Duration::from_secs(60),
            max_points: 2_000_000,
            max_steps: 10_000,
        }
    }
}
