//! `[plugins.upload]`: what `PUT /api/plugins/{name}` (and `wasmon plugin
//! install --host`) may install. Uploading code is the most dangerous thing
//! the API allows, so the route exists only while `server.admin_token` is
//! set, and what an uploaded plugin may be granted is bounded here: by
//! default an upload may use no capability beyond logging, config and state,
//! so a stolen token cannot turn the host into a proxy.
//!
//! ```toml
//! [plugins.upload]
//! max_bytes = "32MiB"        # largest component (checked while reading the body)
//! timeout = "30s"            # how long an upload waits for its new generation
//! [plugins.upload.max_grants]
//! http = ["api.example.com", "10.0.0.5:8080", "*.internal.example.org"]
//! http_self = false          # whether `[capabilities.http] self = "read"` is allowed
//! capabilities = ["redis"]   # other capabilities an upload may use at all
//! ```

use crate::plugins::manifest::HostPattern;
use crate::units::{self, ByteSize};
use anyhow::{Result, bail};
use serde::Deserialize;
use std::time::Duration;

/// The capabilities `max_grants.capabilities` may name: every capability
/// but `http` (bounded entry by entry by `max_grants.http`).
pub const OTHER_CAPABILITIES: &[&str] =
    &["redis", "rabbitmq", "sql", "storage", "files", "tcp", "aws"];

/// `[plugins.upload]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UploadConfig {
    /// Largest component an upload may carry; a larger body is refused
    /// (413) as soon as it goes past this, before it is all read.
    pub max_bytes: ByteSize,
    /// How long an upload waits for the new generation to serve (compile,
    /// `init`, swap) before answering 504; the load itself goes on.
    #[serde(with = "units::duration")]
    pub timeout: Duration,
    /// The most an uploaded plugin's manifest may grant.
    pub max_grants: MaxGrants,
}

impl Default for UploadConfig {
    fn default() -> Self {
        UploadConfig {
            max_bytes: ByteSize(32 * 1024 * 1024),
            timeout: Duration::from_secs(30),
            max_grants: MaxGrants::default(),
        }
    }
}

/// `[plugins.upload.max_grants]`: by default, nothing.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MaxGrants {
    /// `host`, `host:port`, `*.domain` or `*` patterns: every entry of an
    /// uploaded manifest's `[capabilities.http] allow` must fall within one
    /// of them (`api.example.com` covers `api.example.com:443`;
    /// `*.example.com` covers `a.example.com` and `*.b.example.com`).
    pub http: Vec<String>,
    /// Whether an uploaded manifest may set `[capabilities.http] self = "read"`
    /// (`GET` of this host's `/healthz`, `/readyz`, `/metrics`).
    #[serde(deserialize_with = "units::flag")]
    pub http_self: bool,
    /// The other capabilities an uploaded manifest may grant at all, among
    /// `redis`, `rabbitmq`, `sql`, `storage`, `files`, `tcp`, `aws`.
    pub capabilities: Vec<String>,
}

impl MaxGrants {
    /// The `http` patterns, parsed (checked at load, so none fails later).
    pub fn http_patterns(&self) -> Result<Vec<HostPattern>> {
        self.http
            .iter()
            .enumerate()
            .map(|(i, entry)| {
                HostPattern::parse(entry).map_err(|e| {
                    anyhow::anyhow!("invalid value for `plugins.upload.max_grants.http[{i}]`: {e}")
                })
            })
            .collect()
    }
}

impl UploadConfig {
    /// Checks what types alone cannot; errors name the key.
    pub(super) fn validate(&self) -> Result<()> {
        if self.max_bytes.0 == 0 {
            bail!("invalid value for `plugins.upload.max_bytes`: must be greater than zero");
        }
        if self.timeout.is_zero() {
            bail!("invalid value for `plugins.upload.timeout`: must be greater than zero");
        }
        self.max_grants.http_patterns()?;
        for (i, name) in self.max_grants.capabilities.iter().enumerate() {
            if name == "http" {
                bail!(
                    "invalid value for `plugins.upload.max_grants.capabilities[{i}]`: \"http\" is bounded by `plugins.upload.max_grants.http` (the hosts an upload may reach), not listed here"
                );
            }
            if !OTHER_CAPABILITIES.contains(&name.as_str()) {
                bail!(
                    "invalid value for `plugins.upload.max_grants.capabilities[{i}]`: unknown capability {name:?}, expected one of {}",
                    OTHER_CAPABILITIES.join(", ")
                );
            }
        }
        Ok(())
    }
}
