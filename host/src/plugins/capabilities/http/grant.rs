//! The manifest's `[capabilities.http]`: which hosts the `http` capability may
//! reach (`allow`), and whether the plugin may read the host's own health and
//! metrics (`self = "read"`).

use crate::plugins::capabilities::KeyError;
use crate::units::{self, ByteSize};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::time::Duration;

/// Default timeout of one HTTP request.
const HTTP_TIMEOUT: Duration = Duration::from_secs(5);
/// Default response-size cap.
const HTTP_MAX_RESPONSE: ByteSize = ByteSize(1024 * 1024);

/// `[capabilities.http]` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Section {
    /// `host[:port]` patterns the plugin may reach.
    allow: Vec<String>,
    /// Longest request (default 5s).
    #[serde(default, with = "units::duration_opt")]
    timeout: Option<Duration>,
    /// Largest response body (default 1MiB).
    max_response_bytes: Option<ByteSize>,
    /// Access to the host's own API: none, or `read`.
    #[serde(default, rename = "self")]
    self_access: SelfAccess,
}

impl Section {
    /// The grant, with defaults filled in; an error names the key.
    pub fn resolve(self) -> Result<HttpGrant, KeyError> {
        let mut allow = Vec::with_capacity(self.allow.len());
        for (i, entry) in self.allow.iter().enumerate() {
            allow.push(
                HostPattern::parse(entry).map_err(|e| KeyError::new(format!("allow[{i}]"), e))?,
            );
        }
        Ok(HttpGrant {
            allow,
            timeout: self.timeout.unwrap_or(HTTP_TIMEOUT),
            max_response_bytes: self.max_response_bytes.unwrap_or(HTTP_MAX_RESPONSE),
            self_access: self.self_access,
        })
    }
}

/// What the `http` capability may reach.
#[derive(Debug, Clone, Serialize)]
pub struct HttpGrant {
    /// Allowed `host[:port]` patterns.
    pub allow: Vec<HostPattern>,
    /// Longest request.
    #[serde(with = "units::duration")]
    pub timeout: Duration,
    /// Largest response body.
    #[serde(serialize_with = "crate::plugins::manifest::display")]
    pub max_response_bytes: ByteSize,
    /// What the plugin may do on the host's own API (its listening address
    /// and port): nothing, or `read` its health and metrics.
    #[serde(rename = "self")]
    pub self_access: SelfAccess,
}

/// Access to wasmon's own HTTP API (`[capabilities.http] self`). Whatever the
/// allow-list says, a request to an address and port the host listens on is
/// refused, except what this grants.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SelfAccess {
    /// No request to the host itself.
    #[default]
    None,
    /// `GET` and `HEAD` of [`SELF_READ_PATHS`] only.
    Read,
}

/// The paths `self = "read"` opens, for `GET` and `HEAD`.
pub const SELF_READ_PATHS: &[&str] = &["/healthz", "/readyz", "/metrics"];

impl SelfAccess {
    /// Whether this grant lets a `method` request to `path` reach the host itself.
    pub fn allows(self, method: &reqwest::Method, path: &str) -> bool {
        self == SelfAccess::Read
            && (*method == reqwest::Method::GET || *method == reqwest::Method::HEAD)
            && SELF_READ_PATHS.contains(&path)
    }
}

/// `host`, `host:port`, `*.domain`, `[::1]:port` or `*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPattern {
    /// Lower-case host; a leading `*.` matches any subdomain; `*` matches any host.
    pub host: String,
    /// The port, when given; otherwise any port.
    pub port: Option<u16>,
}

impl Serialize for HostPattern {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        match self.port {
            Some(port) => write!(f, "{host}:{port}"),
            None => f.write_str(&host),
        }
    }
}

impl HostPattern {
    /// Parses one `allow` entry.
    pub fn parse(text: &str) -> Result<HostPattern, String> {
        let text = text.trim().to_ascii_lowercase();
        if text.is_empty() {
            return Err("empty host".into());
        }
        if text.contains("://") || text.contains('/') {
            return Err(format!("{text:?}: give a host or host:port, not a URL"));
        }
        let (host, port) = if let Some(rest) = text.strip_prefix('[') {
            let (host, after) = rest
                .split_once(']')
                .ok_or_else(|| format!("{text:?}: unclosed '['"))?;
            let port = match after.strip_prefix(':') {
                Some(p) => Some(p),
                None if after.is_empty() => None,
                None => return Err(format!("{text:?}: unexpected {after:?} after ']'")),
            };
            (host.to_string(), port)
        } else {
            match text.rsplit_once(':') {
                Some((h, p)) if !h.contains(':') => (h.to_string(), Some(p)),
                _ => (text.clone(), None),
            }
        };
        let port = match port {
            Some(p) => Some(
                p.parse::<u16>()
                    .map_err(|_| format!("{text:?}: invalid port {p:?}"))?,
            ),
            None => None,
        };
        let name = host.strip_prefix("*.").unwrap_or(&host);
        let valid = host == "*"
            || (!name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '_')));
        if !valid {
            return Err(format!("{text:?}: invalid host"));
        }
        Ok(HostPattern { host, port })
    }

    /// Whether a request to `host:port` is allowed by this pattern.
    pub fn matches(&self, host: &str, port: u16) -> bool {
        if self.port.is_some_and(|p| p != port) {
            return false;
        }
        let host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_ascii_lowercase();
        match self.host.strip_prefix("*.") {
            _ if self.host == "*" => true,
            Some(domain) => {
                host.len() > domain.len()
                    && host.ends_with(domain)
                    && host[..host.len() - domain.len()].ends_with('.')
            }
            None => host == self.host,
        }
    }
}
