//! `{{name}}`: a wasmon collector.
//!
//! On every `interval` of its manifest (`{{name}}.toml`) the host calls
//! `collect`, which returns:
//!
//! - `{{metric}}_uptime_seconds` (gauge): how long this instance has run;
//! - `{{metric}}_collections` (counter, exported as `..._total`): how many
//!   times it was called, kept in the plugin's state so the count survives hot
//!   reloads and restarts.
//!
//! Both carry the label `instance` from `[config]`; the host adds
//! `plugin="{{name}}"`. Replace them with what you want to measure: keep the
//! logic in plain functions like [`samples`] and test it natively
//! (`cargo test`).

use serde::Deserialize;
use wasmon_sdk::{Collector, Error, Sample};

/// The state key holding the number of collections.
const COLLECTIONS_KEY: &str = "collections";

/// The manifest's `[config]` table.
#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The `instance` label of every sample.
    #[serde(default = "default_instance")]
    pub instance: String,
}

fn default_instance() -> String {
    "default".to_string()
}

impl Config {
    /// Checks the config once, in `init`: an error here fails the load and
    /// the host keeps the previous version running.
    pub fn validate(self) -> Result<Config, Error> {
        if self.instance.trim().is_empty() {
            return Err(Error::new(
                "invalid [config] at `instance`: must not be empty",
            ));
        }
        Ok(self)
    }
}

/// The plugin: its config and what it counts.
pub struct Plugin {
    config: Config,
    started_ms: u64,
    collections: u64,
}

impl Collector for Plugin {
    fn init() -> Result<Self, Error> {
        let config = wasmon_sdk::config::get::<Config>()?.validate()?;
        let collections = wasmon_sdk::state::get_json::<u64>(COLLECTIONS_KEY).unwrap_or(0);
        wasmon_sdk::info!(
            "collecting for instance {:?}, {collections} collections so far",
            config.instance
        );
        Ok(Plugin {
            config,
            started_ms: wasmon_sdk::now_ms(),
            collections,
        })
    }

    fn collect(&mut self) -> Result<Vec<Sample>, Error> {
        self.collections += 1;
        wasmon_sdk::state::set_json(COLLECTIONS_KEY, &self.collections)?;
        let uptime_ms = wasmon_sdk::now_ms().saturating_sub(self.started_ms);
        Ok(samples(&self.config, uptime_ms, self.collections))
    }
}

/// What one collection returns: pure, so it is tested natively.
pub fn samples(config: &Config, uptime_ms: u64, collections: u64) -> Vec<Sample> {
    vec![
        Sample::gauge("{{metric}}_uptime_seconds", uptime_ms as f64 / 1000.0)
            .with_label("instance", config.instance.as_str())
            .with_help("Seconds since this instance of {{name}} started"),
        Sample::counter("{{metric}}_collections", collections as f64)
            .with_label("instance", config.instance.as_str())
            .with_help("Times {{name}} was collected"),
    ]
}

wasmon_sdk::export_collector!(Plugin);

#[cfg(test)]
mod tests {
    use super::*;
    use wasmon_sdk::MetricKind;

    #[test]
    fn config_defaults_and_checks() {
        let config: Config = wasmon_sdk::config::from_json("{}").unwrap();
        assert_eq!(config.instance, "default");
        let config: Config = wasmon_sdk::config::from_json(r#"{"instance": " "}"#).unwrap();
        assert!(config.validate().is_err());
        let unknown = wasmon_sdk::config::from_json::<Config>(r#"{"instanse": "a"}"#);
        assert!(unknown.unwrap_err().message.contains("instanse"));
    }

    #[test]
    fn samples_carry_uptime_count_and_instance() {
        let config = Config {
            instance: "eu-1".to_string(),
        };
        let samples = samples(&config, 2_500, 3);
        assert_eq!(samples.len(), 2);
        assert_eq!(samples[0].name, "{{metric}}_uptime_seconds");
        assert_eq!(samples[0].kind, MetricKind::Gauge);
        assert_eq!(samples[0].value, 2.5);
        assert_eq!(samples[1].kind, MetricKind::Counter);
        assert_eq!(samples[1].value, 3.0);
        assert!(samples.iter().all(|s| s.label("instance") == Some("eu-1")));
        assert!(samples.iter().all(|s| s.help.is_some()));
    }
}
