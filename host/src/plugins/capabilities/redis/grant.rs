//! The manifest's `[capabilities.redis]`: the server (`url`, `password_env`),
//! `timeout`, `max_reply_bytes`, and the writes granted by name (`write`),
//! and the command policy: a read-only allow-list plus those writes.

use crate::plugins::capabilities::KeyError;
use crate::units::{self, ByteSize};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Default timeout of one command.
const TIMEOUT: Duration = Duration::from_secs(2);
/// Default cap on a reply's size.
const MAX_REPLY: ByteSize = ByteSize(1024 * 1024);

/// Commands that cannot write, block or administer the server: granted to
/// every plugin with `[capabilities.redis]`. Two words where the first is a
/// container command (`CLIENT LIST` is allowed, `CLIENT KILL` is not).
pub const READ_ONLY: &[&str] = &[
    "PING",
    "ECHO",
    "TIME",
    "INFO",
    "DBSIZE",
    "LASTSAVE",
    "CLIENT LIST",
    "CLIENT INFO",
    "GET",
    "MGET",
    "STRLEN",
    "EXISTS",
    "TYPE",
    "TTL",
    "PTTL",
    "SCAN",
    "HGET",
    "HGETALL",
    "HLEN",
    "HMGET",
    "HEXISTS",
    "HKEYS",
    "HVALS",
    "HSCAN",
    "LLEN",
    "LRANGE",
    "LINDEX",
    "SCARD",
    "SMEMBERS",
    "SISMEMBER",
    "SSCAN",
    "ZCARD",
    "ZRANGE",
    "ZSCORE",
    "ZCOUNT",
    "ZSCAN",
    "XLEN",
    "XINFO STREAM",
    "XINFO GROUPS",
    "XINFO CONSUMERS",
    "XPENDING",
    "XRANGE",
    "XREVRANGE",
    "MEMORY USAGE",
    "SLOWLOG GET",
    "SLOWLOG LEN",
];

/// Commands whose first word takes a subcommand: the policy checks both words.
const CONTAINERS: &[&str] = &[
    "CLIENT", "XINFO", "MEMORY", "SLOWLOG", "CONFIG", "XGROUP", "OBJECT", "SCRIPT", "FUNCTION",
    "CLUSTER", "ACL", "COMMAND", "MODULE", "LATENCY", "PUBSUB",
];

/// Commands no grant can open: they block, or change the state of the one
/// connection every call of the plugin shares.
const NEVER: &[&str] = &[
    "AUTH",
    "HELLO",
    "SELECT",
    "QUIT",
    "RESET",
    "MONITOR",
    "SUBSCRIBE",
    "PSUBSCRIBE",
    "SSUBSCRIBE",
    "UNSUBSCRIBE",
    "PUNSUBSCRIBE",
    "SUNSUBSCRIBE",
    "MULTI",
    "EXEC",
    "DISCARD",
    "WATCH",
    "UNWATCH",
    "BLPOP",
    "BRPOP",
    "BLMOVE",
    "BRPOPLPUSH",
    "BLMPOP",
    "BZPOPMIN",
    "BZPOPMAX",
    "BZMPOP",
    "WAIT",
    "WAITAOF",
    "SHUTDOWN",
    "DEBUG",
    "SYNC",
    "PSYNC",
    "REPLICAOF",
    "SLAVEOF",
    "FAILOVER",
    "READONLY",
    "READWRITE",
    "CLIENT",
];

/// `[capabilities.redis]` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Section {
    /// `redis://[user[:password]@]host:port/db`, or `rediss://` for TLS.
    url: String,
    /// The environment variable holding the password (instead of the URL's).
    password_env: Option<String>,
    /// Longest command, connecting included (default 2s; never beyond the call's budget).
    #[serde(default, with = "units::duration_opt")]
    timeout: Option<Duration>,
    /// Largest reply handed to the plugin (default 1MiB).
    max_reply_bytes: Option<ByteSize>,
    /// Writing commands granted by name, e.g. `["XADD", "PUBLISH"]`.
    #[serde(default)]
    write: Vec<String>,
}

pub use super::super::Secret;

/// What the `redis` capability may do.
#[derive(Debug, Clone, Serialize)]
pub struct RedisGrant {
    /// The server's URL with its password redacted: what logs, errors and
    /// the API show.
    pub server: String,
    /// The URL as written (it may hold a password).
    #[serde(skip)]
    pub url: Secret,
    /// The password from `password_env`, if set.
    #[serde(skip)]
    pub password: Option<Secret>,
    /// Longest command.
    #[serde(with = "units::duration")]
    pub timeout: Duration,
    /// Largest reply.
    #[serde(serialize_with = "crate::plugins::manifest::display")]
    pub max_reply_bytes: ByteSize,
    /// Writes granted, upper case (`XADD`, `XGROUP CREATE`).
    pub write: Vec<String>,
}

impl Section {
    /// The grant; an error names the key. Reads `password_env` now, so a
    /// missing variable fails the load, not the first call.
    pub fn resolve(self) -> Result<RedisGrant, KeyError> {
        let url = reqwest::Url::parse(&self.url)
            .map_err(|e| KeyError::new("url", format!("not a URL: {e}")))?;
        if !matches!(url.scheme(), "redis" | "rediss") {
            return Err(KeyError::new(
                "url",
                format!(
                    "unsupported scheme {:?}: use redis:// or rediss://",
                    url.scheme()
                ),
            ));
        }
        if url.host_str().is_none_or(str::is_empty) {
            return Err(KeyError::new("url", "the URL has no host"));
        }
        let password = match &self.password_env {
            Some(var) => match std::env::var(var) {
                Ok(value) => Some(Secret(value)),
                Err(_) => {
                    return Err(KeyError::new(
                        "password_env",
                        format!("the environment variable {var} is not set"),
                    ));
                }
            },
            None => None,
        };
        let mut write = Vec::with_capacity(self.write.len());
        for (i, entry) in self.write.iter().enumerate() {
            let name = normalize(entry);
            if name.is_empty() {
                return Err(KeyError::new(format!("write[{i}]"), "empty command"));
            }
            let first = name.split(' ').next().unwrap_or_default();
            if NEVER.contains(&first) {
                return Err(KeyError::new(
                    format!("write[{i}]"),
                    format!("{name} blocks or changes the shared connection; it cannot be granted"),
                ));
            }
            write.push(name);
        }
        let max_reply_bytes = self.max_reply_bytes.unwrap_or(MAX_REPLY);
        if max_reply_bytes.0 == 0 {
            return Err(KeyError::new(
                "max_reply_bytes",
                "must be greater than zero",
            ));
        }
        let timeout = self.timeout.unwrap_or(TIMEOUT);
        if timeout.is_zero() {
            return Err(KeyError::new("timeout", "must be greater than zero"));
        }
        Ok(RedisGrant {
            server: redact(&url),
            url: Secret(self.url),
            password,
            timeout,
            max_reply_bytes,
            write,
        })
    }
}

/// The URL without its password.
pub fn redact(url: &reqwest::Url) -> String {
    let mut shown = url.clone();
    if shown.password().is_some() {
        let _ = shown.set_password(Some("***"));
    }
    shown.to_string()
}

/// Upper case, words separated by one space.
fn normalize(name: &str) -> String {
    name.split_whitespace()
        .map(str::to_ascii_uppercase)
        .collect::<Vec<_>>()
        .join(" ")
}

/// A command the policy allowed: the words to send before the arguments.
#[derive(Debug, PartialEq)]
pub struct Allowed {
    /// The command as the policy saw it (`GET`, `CLIENT LIST`).
    pub name: String,
    /// How many of the plugin's arguments the name took (a subcommand given
    /// as the first argument).
    pub args_taken: usize,
}

impl RedisGrant {
    /// Whether the plugin may send `name` with `args`; the error says why not.
    pub fn check(&self, name: &str, args: &[Vec<u8>]) -> Result<Allowed, String> {
        let mut words: Vec<String> = normalize(name).split(' ').map(str::to_string).collect();
        if words.first().is_none_or(|w| w.is_empty()) {
            return Err("empty command name".into());
        }
        if words.len() > 2 {
            return Err(format!("{name:?}: a command name has at most two words"));
        }
        let mut args_taken = 0;
        if words.len() == 1 && CONTAINERS.contains(&words[0].as_str()) {
            match args.first() {
                Some(sub) => {
                    words.push(String::from_utf8_lossy(sub).to_ascii_uppercase());
                    args_taken = 1;
                }
                None => return Err(format!("{} needs a subcommand", words[0])),
            }
        }
        let full = words.join(" ");
        let first = words[0].as_str();
        let granted = READ_ONLY.contains(&full.as_str())
            || (!NEVER.contains(&first) && self.write.iter().any(|w| *w == full || *w == first));
        if granted {
            Ok(Allowed {
                name: full,
                args_taken,
            })
        } else {
            Err(format!(
                "{full} is not read-only and not in capabilities.redis.write"
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(write: &[&str]) -> RedisGrant {
        Section {
            url: "redis://user:hunter2@127.0.0.1:6379/0".into(),
            password_env: None,
            timeout: None,
            max_reply_bytes: None,
            write: write.iter().map(|s| s.to_string()).collect(),
        }
        .resolve()
        .unwrap()
    }

    #[test]
    fn reads_pass_and_writes_need_a_grant() {
        let g = grant(&["xadd"]);
        assert!(g.check("get", &[b"k".to_vec()]).is_ok());
        assert!(g.check("XADD", &[]).is_ok());
        for bad in ["FLUSHALL", "DEL", "BLPOP", "SET", "EVAL"] {
            assert!(g.check(bad, &[]).is_err(), "{bad}");
        }
    }

    #[test]
    fn two_word_commands_check_the_subcommand() {
        let g = grant(&[]);
        assert_eq!(
            g.check("CLIENT LIST", &[]).unwrap(),
            Allowed {
                name: "CLIENT LIST".into(),
                args_taken: 0
            }
        );
        assert_eq!(
            g.check("client", &[b"list".to_vec()]).unwrap(),
            Allowed {
                name: "CLIENT LIST".into(),
                args_taken: 1
            }
        );
        assert!(g.check("CLIENT", &[b"KILL".to_vec()]).is_err());
        assert!(g.check("CONFIG SET", &[]).is_err());
        assert!(g.check("config", &[b"set".to_vec()]).is_err());
        assert!(g.check("XINFO STREAM", &[]).is_ok());
        assert!(g.check("MEMORY USAGE", &[]).is_ok());
        assert!(g.check("MEMORY", &[]).is_err());
    }

    #[test]
    fn the_password_never_shows() {
        let g = grant(&[]);
        assert_eq!(g.server, "redis://user:***@127.0.0.1:6379/0");
        let debug = format!("{g:?}");
        assert!(!debug.contains("hunter2"), "{debug}");
        let json = serde_json::to_string(&g).unwrap();
        assert!(!json.contains("hunter2"), "{json}");
    }

    #[test]
    fn blocking_commands_cannot_be_granted() {
        let section = |w: &str| Section {
            url: "redis://127.0.0.1".into(),
            password_env: None,
            timeout: None,
            max_reply_bytes: None,
            write: vec![w.into()],
        };
        assert_eq!(section("BLPOP").resolve().unwrap_err().key, "write[0]");
        assert!(section("PUBLISH").resolve().is_ok());
        let url = Section {
            url: "http://x".into(),
            ..section("XADD")
        };
        assert_eq!(url.resolve().unwrap_err().key, "url");
    }
}
