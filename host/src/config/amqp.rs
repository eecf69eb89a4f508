//! `[[ingest.amqp]]`: queues whose messages are recorded like the HTTP
//! ingestion routes' bodies.

use crate::units;
use anyhow::{Result, bail};
use serde::Deserialize;
use std::time::Duration;

/// The seeds' broker URL, used when an `[[ingest.amqp]]` entry names none.
pub const SEED_URL_ENV: &str = "MONITORING_RMQ_URL";

/// One queue to ingest events from.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AmqpIngestConfig {
    /// The broker, `amqp://user:password@host:port/vhost` (`amqps://` for
    /// TLS). With neither `url` nor `url_env`, `MONITORING_RMQ_URL`.
    #[serde(default)]
    pub url: Option<String>,
    /// The environment variable holding the URL (keeps the password out of
    /// the file).
    #[serde(default)]
    pub url_env: Option<String>,
    /// The queue to consume.
    pub queue: String,
    /// Most unacknowledged messages the broker sends ahead (bounds memory).
    #[serde(default = "default_prefetch")]
    pub prefetch: u16,
    /// `true` declares the queue (durable) when missing; `false` (default)
    /// expects it to exist and says so clearly when it does not.
    #[serde(default)]
    pub declare: bool,
    /// With `declare = true`: the queue's dead-letter exchange
    /// (`x-dead-letter-exchange`), where invalid messages go.
    #[serde(default)]
    pub dead_letter_exchange: Option<String>,
    /// Redeliveries of a message that could not be recorded for a passing
    /// reason (the service table full) before it is dead-lettered. Invalid
    /// messages are dead-lettered at once.
    #[serde(default = "default_max_redeliveries")]
    pub max_redeliveries: u32,
    /// How often the queue's depth is read into `wasmon_amqp_queue_messages`.
    #[serde(default = "default_depth_interval", with = "units::duration")]
    pub depth_interval: Duration,
    /// The longest wait between two connection attempts (the backoff's cap).
    #[serde(default = "default_reconnect_max", with = "units::duration")]
    pub reconnect_max: Duration,
}

fn default_prefetch() -> u16 {
    256
}

fn default_max_redeliveries() -> u32 {
    5
}

fn default_depth_interval() -> Duration {
    Duration::from_secs(10)
}

fn default_reconnect_max() -> Duration {
    Duration::from_secs(10)
}

impl std::fmt::Debug for AmqpIngestConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AmqpIngestConfig")
            .field("url", &self.url.as_deref().map(crate::amqp::redact))
            .field("url_env", &self.url_env)
            .field("queue", &self.queue)
            .field("prefetch", &self.prefetch)
            .field("declare", &self.declare)
            .field("max_redeliveries", &self.max_redeliveries)
            .finish_non_exhaustive()
    }
}

impl AmqpIngestConfig {
    /// Checks what types alone cannot; `key` is `ingest.amqp[N]`.
    pub fn validate(&self, key: &str) -> Result<()> {
        if self.queue.is_empty() || self.queue.len() > 255 {
            bail!("invalid value for `{key}.queue`: must be 1 to 255 bytes");
        }
        if self.prefetch == 0 {
            bail!("invalid value for `{key}.prefetch`: must be greater than zero");
        }
        for (name, value) in [
            ("depth_interval", self.depth_interval),
            ("reconnect_max", self.reconnect_max),
        ] {
            if value.is_zero() {
                bail!("invalid value for `{key}.{name}`: must be greater than zero");
            }
        }
        if self.url.is_some() && self.url_env.is_some() {
            bail!("invalid value for `{key}`: set `url` or `url_env`, not both");
        }
        if let Some(url) = &self.url {
            crate::amqp::check_url(url)
                .map_err(|e| anyhow::anyhow!("invalid value for `{key}.url`: {e}"))?;
        }
        Ok(())
    }

    /// The broker URL: `url`, else the variable `url_env` names, else
    /// `MONITORING_RMQ_URL`, read through `env`.
    pub fn resolve_url(&self, key: &str, env: impl Fn(&str) -> Option<String>) -> Result<String> {
        let (url, origin) = match (&self.url, &self.url_env) {
            (Some(url), _) => (url.clone(), format!("`{key}.url`")),
            (None, Some(var)) => match env(var) {
                Some(url) => (url, var.clone()),
                None => bail!("`{key}.url_env` names {var}, which is not set"),
            },
            (None, None) => match env(SEED_URL_ENV) {
                Some(url) => (url, SEED_URL_ENV.to_string()),
                None => {
                    bail!("`{key}` has no broker: set `url`, `url_env` or {SEED_URL_ENV}")
                }
            },
        };
        crate::amqp::check_url(&url)
            .map_err(|e| anyhow::anyhow!("invalid broker URL for `{key}` (from {origin}): {e}"))?;
        Ok(url)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> AmqpIngestConfig {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn defaults_and_url_resolution() {
        let c = parse("queue = \"events\"");
        assert_eq!(c.prefetch, 256);
        assert!(!c.declare);
        assert_eq!(c.max_redeliveries, 5);
        c.validate("ingest.amqp[0]").unwrap();
        let none = c.resolve_url("ingest.amqp[0]", |_| None).unwrap_err();
        assert!(none.to_string().contains("MONITORING_RMQ_URL"), "{none}");
        let seed = c
            .resolve_url("ingest.amqp[0]", |v| {
                (v == SEED_URL_ENV).then(|| "amqp://u:pw@h:5672/%2f".to_string())
            })
            .unwrap();
        assert_eq!(seed, "amqp://u:pw@h:5672/%2f");
        let c = parse("queue = \"q\"\nurl_env = \"BROKER\"");
        let missing = c.resolve_url("ingest.amqp[1]", |_| None).unwrap_err();
        assert!(missing.to_string().contains("BROKER"), "{missing}");
    }

    #[test]
    fn errors_name_the_key_and_hide_the_password() {
        let c = parse("queue = \"q\"\nprefetch = 0");
        let e = c.validate("ingest.amqp[2]").unwrap_err().to_string();
        assert!(e.contains("ingest.amqp[2].prefetch"), "{e}");
        let c = parse("queue = \"q\"\nurl = \"http://u:hunter2@h/\"");
        let e = c.validate("ingest.amqp[0]").unwrap_err().to_string();
        assert!(
            e.contains("ingest.amqp[0].url") && !e.contains("hunter2"),
            "{e}"
        );
        assert!(toml::from_str::<AmqpIngestConfig>("queue = \"q\"\nbogus = 1").is_err());
        let debug = format!(
            "{:?}",
            parse("queue = \"q\"\nurl = \"amqp://u:hunter2@h/\"")
        );
        assert!(!debug.contains("hunter2"), "{debug}");
    }
}
