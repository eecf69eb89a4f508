//! The manifest's `[capabilities.rabbitmq]`: the broker (`url`, `url_env`,
//! or the seed's `MONITORING_RMQ_URL`), the exchanges a plugin may publish
//! to (`exchanges`), the confirm `timeout`, and the queues the host consumes
//! for a collector (`[[capabilities.rabbitmq.consume]]`).

use crate::config::AMQP_SEED_URL_ENV as SEED_URL_ENV;
use crate::plugins::capabilities::KeyError;
use crate::units;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Default wait for the broker's confirm of one published message.
const TIMEOUT: Duration = Duration::from_secs(5);
/// Default prefetch of a consumed queue.
const PREFETCH: u16 = 64;
/// Default redeliveries before a message is dead-lettered.
const MAX_REDELIVERIES: u32 = 5;
/// Default interval of the queue depth poll.
const DEPTH_INTERVAL: Duration = Duration::from_secs(10);
/// Default cap of the reconnect backoff.
const RECONNECT_MAX: Duration = Duration::from_secs(10);

/// `[capabilities.rabbitmq]` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Section {
    /// `amqp://user:password@host:port/vhost` (`amqps://` for TLS).
    url: Option<String>,
    /// The environment variable holding the URL (keeps the password out of
    /// the manifest). With neither `url` nor `url_env`: `MONITORING_RMQ_URL`.
    url_env: Option<String>,
    /// Exchanges `publish` may use, by exact name (`""` is the default exchange).
    #[serde(default)]
    exchanges: Vec<String>,
    /// Longest wait for the broker's confirm of one message (default 5s;
    /// never beyond the call's budget).
    #[serde(default, with = "units::duration_opt")]
    timeout: Option<Duration>,
    /// Queues the host consumes for this collector, calling `on-message`.
    #[serde(default)]
    consume: Vec<ConsumeSection>,
}

/// `[[capabilities.rabbitmq.consume]]` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ConsumeSection {
    /// The queue.
    queue: String,
    /// Most unacknowledged messages the broker sends ahead (default 64).
    prefetch: Option<u16>,
    /// Declare the queue (durable) when missing (default false: it must exist).
    #[serde(default)]
    declare: bool,
    /// With `declare = true`: the queue's `x-dead-letter-exchange`.
    dead_letter_exchange: Option<String>,
    /// Failed `on-message` calls (error or fault) of one message before it
    /// is dead-lettered (default 5).
    max_redeliveries: Option<u32>,
    /// How often the queue's depth is read (default 10s).
    #[serde(default, with = "units::duration_opt")]
    depth_interval: Option<Duration>,
    /// The longest wait between two connection attempts (default 10s).
    #[serde(default, with = "units::duration_opt")]
    reconnect_max: Option<Duration>,
}

pub use super::super::Secret;

/// What the `rabbitmq` capability may do.
#[derive(Debug, Clone, Serialize)]
pub struct RabbitGrant {
    /// The broker's URL without its password: what logs, errors and the API show.
    pub server: String,
    /// The URL (it may hold a password).
    #[serde(skip)]
    pub url: Secret,
    /// Exchanges `publish` may use.
    pub exchanges: Vec<String>,
    /// Longest wait for a confirm.
    #[serde(with = "units::duration")]
    pub timeout: Duration,
    /// The queues consumed for the plugin.
    pub consume: Vec<ConsumeGrant>,
}

/// One queue consumed for a collector.
#[derive(Debug, Clone, Serialize)]
pub struct ConsumeGrant {
    /// The queue.
    pub queue: String,
    /// Prefetch.
    pub prefetch: u16,
    /// Declared when missing.
    pub declare: bool,
    /// Its dead-letter exchange, when declared.
    pub dead_letter_exchange: Option<String>,
    /// Failed handlings before dead-lettering.
    pub max_redeliveries: u32,
    /// Depth poll interval.
    #[serde(with = "units::duration")]
    pub depth_interval: Duration,
    /// Reconnect backoff cap.
    #[serde(with = "units::duration")]
    pub reconnect_max: Duration,
}

impl Section {
    /// The grant; an error names the key. Reads `url_env` now, so a missing
    /// variable fails the load, not the first call.
    pub fn resolve(self) -> Result<RabbitGrant, KeyError> {
        self.resolve_with(|var| std::env::var(var).ok())
    }

    fn resolve_with(self, env: impl Fn(&str) -> Option<String>) -> Result<RabbitGrant, KeyError> {
        let (url, key) = match (self.url, &self.url_env) {
            (Some(url), _) => (url, "url"),
            (None, Some(var)) => match env(var) {
                Some(url) => (url, "url_env"),
                None => {
                    return Err(KeyError::new(
                        "url_env",
                        format!("the environment variable {var} is not set"),
                    ));
                }
            },
            (None, None) => match env(SEED_URL_ENV) {
                Some(url) => (url, "url"),
                None => {
                    return Err(KeyError::new(
                        "url",
                        format!("no broker: set `url`, `url_env` or {SEED_URL_ENV}"),
                    ));
                }
            },
        };
        crate::amqp::check_url(&url).map_err(|e| KeyError::new(key, e))?;
        for (i, exchange) in self.exchanges.iter().enumerate() {
            if exchange.len() > 255 {
                return Err(KeyError::new(
                    format!("exchanges[{i}]"),
                    "longer than 255 bytes",
                ));
            }
        }
        let timeout = self.timeout.unwrap_or(TIMEOUT);
        if timeout.is_zero() {
            return Err(KeyError::new("timeout", "must be greater than zero"));
        }
        let mut consume = Vec::with_capacity(self.consume.len());
        for (i, entry) in self.consume.into_iter().enumerate() {
            let key = |k: &str| format!("consume[{i}].{k}");
            if entry.queue.is_empty() || entry.queue.len() > 255 {
                return Err(KeyError::new(key("queue"), "must be 1 to 255 bytes"));
            }
            if consume
                .iter()
                .any(|c: &ConsumeGrant| c.queue == entry.queue)
            {
                return Err(KeyError::new(
                    key("queue"),
                    format!("queue {:?} is consumed twice", entry.queue),
                ));
            }
            let prefetch = entry.prefetch.unwrap_or(PREFETCH);
            if prefetch == 0 {
                return Err(KeyError::new(key("prefetch"), "must be at least 1"));
            }
            if entry.dead_letter_exchange.is_some() && !entry.declare {
                return Err(KeyError::new(
                    key("dead_letter_exchange"),
                    "applies only with declare = true (an existing queue keeps its own arguments)",
                ));
            }
            let depth_interval = entry.depth_interval.unwrap_or(DEPTH_INTERVAL);
            let reconnect_max = entry.reconnect_max.unwrap_or(RECONNECT_MAX);
            for (k, d) in [
                ("depth_interval", depth_interval),
                ("reconnect_max", reconnect_max),
            ] {
                if d.is_zero() {
                    return Err(KeyError::new(key(k), "must be greater than zero"));
                }
            }
            consume.push(ConsumeGrant {
                queue: entry.queue,
                prefetch,
                declare: entry.declare,
                dead_letter_exchange: entry.dead_letter_exchange,
                max_redeliveries: entry.max_redeliveries.unwrap_or(MAX_REDELIVERIES),
                depth_interval,
                reconnect_max,
            });
        }
        Ok(RabbitGrant {
            server: crate::amqp::redact(&url),
            url: Secret(url),
            exchanges: self.exchanges,
            timeout,
            consume,
        })
    }
}

impl RabbitGrant {
    /// Whether `publish` may use `exchange`.
    pub fn allows(&self, exchange: &str) -> bool {
        self.exchanges.iter().any(|e| e == exchange)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<RabbitGrant, KeyError> {
        let section: Section = toml::from_str(text).unwrap();
        section.resolve_with(|var| (var == "RMQ").then(|| "amqp://u:pw@h:5672/%2f".to_string()))
    }

    #[test]
    fn defaults_and_the_url_without_its_password() {
        let grant =
            parse("url_env = \"RMQ\"\nexchanges = [\"results\"]\n[[consume]]\nqueue = \"q\"")
                .unwrap();
        assert_eq!(grant.server, "amqp://u:***@h:5672/%2f");
        assert!(grant.allows("results") && !grant.allows("other") && !grant.allows(""));
        assert_eq!(grant.consume[0].prefetch, 64);
        assert_eq!(grant.consume[0].max_redeliveries, 5);
        let shown = serde_json::to_string(&grant).unwrap();
        assert!(!shown.contains("pw"), "{shown}");
        assert!(!format!("{grant:?}").contains("pw"));
    }

    #[test]
    fn bad_values_name_their_key() {
        let key = |text: &str| parse(text).unwrap_err().key;
        assert_eq!(key("url_env = \"NOPE\""), "url_env");
        assert_eq!(key("url = \"http://x/\""), "url");
        assert_eq!(key("url_env = \"RMQ\"\ntimeout = \"0s\""), "timeout");
        assert_eq!(
            key("url_env = \"RMQ\"\n[[consume]]\nqueue = \"q\"\nprefetch = 0"),
            "consume[0].prefetch"
        );
        assert_eq!(
            key("url_env = \"RMQ\"\n[[consume]]\nqueue = \"q\"\n[[consume]]\nqueue = \"q\""),
            "consume[1].queue"
        );
        assert_eq!(
            key("url_env = \"RMQ\"\n[[consume]]\nqueue = \"q\"\ndead_letter_exchange = \"d\""),
            "consume[0].dead_letter_exchange"
        );
    }
}
