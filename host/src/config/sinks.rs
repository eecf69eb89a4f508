//! `[sinks]`: delivery to sink plugins: when a sink counts as behind, the
//! longest `Retry-After` the host honours, and the bounds of each sink's
//! dead-letter store.

use crate::units::{self, ByteSize};
use anyhow::{Result, bail};
use serde::Deserialize;
use std::time::Duration;

/// `[sinks]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SinksConfig {
    /// `GET /v1/health` and `/api/system/health/full` turn `degraded` while
    /// a sink's oldest undelivered event is older than this.
    #[serde(with = "units::duration")]
    pub lag_degraded: Duration,
    /// The longest wait a target's `Retry-After` (on a 429 or 503 answer)
    /// imposes on a sink before it retries; a longer one is cut to this.
    #[serde(with = "units::duration")]
    pub max_retry_after: Duration,
    /// Most dead-lettered batches kept per sink; past it the oldest is
    /// dropped and counted (`wasmon_sink_dead_letters_dropped_total`).
    pub dead_letter_max_batches: usize,
    /// Most bytes (as JSON) of dead letters kept per sink; past it the oldest
    /// are dropped and counted.
    pub dead_letter_max_bytes: ByteSize,
}

impl Default for SinksConfig {
    fn default() -> Self {
        SinksConfig {
            lag_degraded: Duration::from_secs(300),
            max_retry_after: Duration::from_secs(600),
            dead_letter_max_batches: 1000,
            dead_letter_max_bytes: ByteSize(16 * 1024 * 1024),
        }
    }
}

impl SinksConfig {
    /// Checks what types alone cannot; errors name the key.
    pub(super) fn validate(&self) -> Result<()> {
        for (key, zero) in [
            ("sinks.lag_degraded", self.lag_degraded.is_zero()),
            ("sinks.max_retry_after", self.max_retry_after.is_zero()),
            (
                "sinks.dead_letter_max_batches",
                self.dead_letter_max_batches == 0,
            ),
            (
                "sinks.dead_letter_max_bytes",
                self.dead_letter_max_bytes.0 == 0,
            ),
        ] {
            if zero {
                bail!("invalid value for `{key}`: must be greater than zero");
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::Config;
    use std::time::Duration;

    fn load(vars: &[(&str, &str)]) -> anyhow::Result<Config> {
        Config::load(
            None,
            vars.iter().map(|(k, v)| (k.to_string(), v.to_string())),
        )
    }

    #[test]
    fn sinks_defaults_overrides_and_errors_name_the_key() {
        let config = load(&[]).unwrap();
        assert_eq!(config.sinks.lag_degraded, Duration::from_secs(300));
        assert_eq!(config.sinks.max_retry_after, Duration::from_secs(600));
        let config = load(&[("WASMON_SINKS__LAG_DEGRADED", "30s")]).unwrap();
        assert_eq!(config.sinks.lag_degraded, Duration::from_secs(30));
        let error = load(&[("WASMON_SINKS__DEAD_LETTER_MAX_BATCHES", "0")])
            .unwrap_err()
            .to_string();
        assert!(error.contains("sinks.dead_letter_max_batches"), "{error}");
    }
}
