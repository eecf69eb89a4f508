//! The manifest's `[capabilities.sql]`: the database (`url` or `url_env`),
//! TLS (`sslmode=require` in the URL, or `ca_file`), `timeout` (the
//! statement timeout), `max_rows`, `pool_size`, and the named queries
//! (`[capabilities.sql.queries] NAME = "SELECT ..."`).

use crate::plugins::capabilities::KeyError;
use crate::units;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio_postgres::config::{Host, SslMode};

/// Default statement timeout.
const TIMEOUT: Duration = Duration::from_secs(5);
/// Default cap on the rows of one query.
const MAX_ROWS: u32 = 1000;
/// Highest `max_rows`.
const MAX_ROWS_CEILING: u32 = 1_000_000;
/// Default connections per plugin generation.
const POOL_SIZE: usize = 2;
/// Most connections per plugin generation.
const POOL_CEILING: usize = 16;

/// `[capabilities.sql]` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Section {
    /// `postgresql://user:password@host:port/db` (also `postgres://`, and
    /// SQLAlchemy's `postgresql+asyncpg://`); exactly one of `url`, `url_env`.
    pub(super) url: Option<String>,
    /// The environment variable holding the URL (e.g. `PIXCRAWLER_DB_URL`),
    /// read when the manifest loads.
    pub(super) url_env: Option<String>,
    /// The statement timeout of each query (`SET LOCAL statement_timeout`),
    /// also the connect timeout (default 5s; never beyond the call's budget).
    #[serde(default, with = "units::duration_opt")]
    pub(super) timeout: Option<Duration>,
    /// Most rows a query may return; more is a `too-many-rows` error (default 1000).
    pub(super) max_rows: Option<u32>,
    /// Connections kept per plugin (default 2, at most 16).
    pub(super) pool_size: Option<usize>,
    /// PEM file of the CA(s) that sign the server's certificate; implies
    /// TLS. Without it, `sslmode=require` verifies against the system's roots.
    pub(super) ca_file: Option<PathBuf>,
    /// The queries a plugin may run, by name: `$1`, `$2`, ... are its parameters.
    #[serde(default)]
    pub(super) queries: BTreeMap<String, String>,
}

/// The connection settings; `Debug` never shows the password
/// (`tokio_postgres::Config` redacts it).
#[derive(Clone, Debug)]
pub struct Target(pub tokio_postgres::Config);

/// What the `sql` capability may do.
#[derive(Debug, Clone, Serialize)]
pub struct SqlGrant {
    /// The server without the password (`postgresql://user@host:port/db`):
    /// what logs, errors and the API show.
    pub server: String,
    /// The connection settings (with the password).
    #[serde(skip)]
    pub target: Target,
    /// Whether connections use TLS (certificate and name verified).
    pub tls: bool,
    /// The TLS settings, when `tls`.
    #[serde(skip)]
    pub tls_config: Option<Arc<rustls::ClientConfig>>,
    /// The statement timeout.
    #[serde(with = "units::duration")]
    pub timeout: Duration,
    /// The row cap.
    pub max_rows: u32,
    /// Connections per generation.
    pub pool_size: usize,
    /// The named queries.
    pub queries: BTreeMap<String, String>,
}

impl Section {
    /// The grant; an error names the key. Reads `url_env` now, so a missing
    /// variable fails the load, not the first query.
    pub fn resolve(self) -> Result<SqlGrant, KeyError> {
        let (key, url) = match (self.url, &self.url_env) {
            (Some(url), None) => ("url", url),
            (None, Some(var)) => (
                "url_env",
                std::env::var(var).map_err(|_| {
                    KeyError::new(
                        "url_env",
                        format!("the environment variable {var} is not set"),
                    )
                })?,
            ),
            (Some(_), Some(_)) => {
                return Err(KeyError::new(
                    "url",
                    "set either `url` or `url_env`, not both",
                ));
            }
            (None, None) => {
                return Err(KeyError::new(
                    "url",
                    "missing: set `url` or `url_env` (e.g. url_env = \"PIXCRAWLER_DB_URL\")",
                ));
            }
        };
        let mut config = parse_url(&url).map_err(|e| KeyError::new(key, e))?;
        let timeout = self.timeout.unwrap_or(TIMEOUT);
        if timeout < Duration::from_millis(1) {
            return Err(KeyError::new("timeout", "must be at least 1ms"));
        }
        config.connect_timeout(timeout);
        config.application_name("wasmon");
        let max_rows = self.max_rows.unwrap_or(MAX_ROWS);
        if !(1..=MAX_ROWS_CEILING).contains(&max_rows) {
            return Err(KeyError::new(
                "max_rows",
                format!("must be between 1 and {MAX_ROWS_CEILING}"),
            ));
        }
        let pool_size = self.pool_size.unwrap_or(POOL_SIZE);
        if !(1..=POOL_CEILING).contains(&pool_size) {
            return Err(KeyError::new(
                "pool_size",
                format!("must be between 1 and {POOL_CEILING}"),
            ));
        }
        if self.queries.is_empty() {
            return Err(KeyError::new(
                "queries",
                "no query: name at least one (`[capabilities.sql.queries] NAME = \"SELECT ...\"`)",
            ));
        }
        for (name, sql) in &self.queries {
            let good_name = name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
                && !name.is_empty();
            if !good_name {
                return Err(KeyError::new(
                    format!("queries.{name}"),
                    "a query name is letters, digits, `_` and `-`",
                ));
            }
            if sql.trim().is_empty() {
                return Err(KeyError::new(format!("queries.{name}"), "empty query"));
            }
        }
        let tls_config = match (&self.ca_file, config.get_ssl_mode()) {
            (Some(path), _) => Some(tls_with_ca(path).map_err(|e| KeyError::new("ca_file", e))?),
            (None, SslMode::Require) => {
                Some(tls_with_system_roots().map_err(|e| KeyError::new(key, e))?)
            }
            (None, _) => None,
        };
        if tls_config.is_some() {
            config.ssl_mode(SslMode::Require);
        }
        Ok(SqlGrant {
            server: describe(&config),
            target: Target(config),
            tls: tls_config.is_some(),
            tls_config,
            timeout,
            max_rows,
            pool_size,
            queries: self.queries,
        })
    }
}

/// rustls with the ring provider (the host's), installed once per process.
fn install_provider() {
    // An error only means it was installed already.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// TLS verified against the platform's roots.
fn tls_with_system_roots() -> Result<Arc<rustls::ClientConfig>, String> {
    use rustls_platform_verifier::ConfigVerifierExt;
    install_provider();
    rustls::ClientConfig::with_platform_verifier()
        .map(Arc::new)
        .map_err(|e| format!("cannot set up TLS with the system's roots: {e}"))
}

/// TLS verified against the CA certificates in `path` (PEM), read now.
fn tls_with_ca(path: &std::path::Path) -> Result<Arc<rustls::ClientConfig>, String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    install_provider();
    let mut roots = rustls::RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    for cert in certs {
        let cert = cert.map_err(|e| format!("{}: not a PEM certificate: {e}", path.display()))?;
        roots
            .add(cert)
            .map_err(|e| format!("{}: unusable CA certificate: {e}", path.display()))?;
    }
    if roots.is_empty() {
        return Err(format!("{} holds no certificate", path.display()));
    }
    Ok(Arc::new(
        rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    ))
}

/// Parses a PostgreSQL URL; SQLAlchemy's `postgresql+DRIVER://` is accepted
/// (seed 003's `PIXCRAWLER_DB_URL`), and asyncpg's `ssl=` as `sslmode=`. The
/// error never holds the URL.
fn parse_url(url: &str) -> Result<tokio_postgres::Config, String> {
    let Some((scheme, rest)) = url.split_once("://") else {
        return Err("not a URL: use postgresql://user:password@host:port/database".into());
    };
    let base = scheme.split('+').next().unwrap_or_default();
    if !matches!(base, "postgresql" | "postgres") {
        return Err(format!(
            "unsupported scheme {scheme:?}: use postgresql:// (or postgres://)"
        ));
    }
    let rest = rest
        .replace("?ssl=", "?sslmode=")
        .replace("&ssl=", "&sslmode=");
    let config: tokio_postgres::Config = format!("postgresql://{rest}")
        .parse()
        .map_err(|e| format!("not a valid PostgreSQL URL: {e}"))?;
    if config.get_hosts().is_empty() {
        return Err("the URL has no host".into());
    }
    Ok(config)
}

/// `postgresql://user@host:port/db`: the target without its password.
pub fn describe(config: &tokio_postgres::Config) -> String {
    let user = config
        .get_user()
        .map(|u| format!("{u}@"))
        .unwrap_or_default();
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, host)| {
            let name = match host {
                Host::Tcp(name) if name.contains(':') => format!("[{name}]"),
                Host::Tcp(name) => name.clone(),
                Host::Unix(path) => path.display().to_string(),
            };
            let port = config
                .get_ports()
                .get(i)
                .or(config.get_ports().first())
                .copied()
                .unwrap_or(5432);
            format!("{name}:{port}")
        })
        .collect();
    let db = config.get_dbname().unwrap_or_default();
    format!("postgresql://{user}{}/{db}", hosts.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(url: &str) -> Section {
        Section {
            url: Some(url.into()),
            url_env: None,
            timeout: None,
            max_rows: None,
            pool_size: None,
            ca_file: None,
            queries: [("active_chunks".to_string(), "SELECT 1".to_string())].into(),
        }
    }

    #[test]
    fn the_password_never_shows() {
        let g = section("postgresql+asyncpg://app:hunter2@db.local:5433/pixcrawler")
            .resolve()
            .unwrap();
        assert_eq!(g.server, "postgresql://app@db.local:5433/pixcrawler");
        for shown in [format!("{g:?}"), serde_json::to_string(&g).unwrap()] {
            assert!(!shown.contains("hunter2"), "{shown}");
        }
        assert_eq!(g.timeout, TIMEOUT);
        assert_eq!(g.max_rows, MAX_ROWS);
        assert!(!g.tls);
    }

    #[test]
    fn sslmode_require_means_verified_tls() {
        let g = section("postgresql://u@h/d?ssl=require").resolve().unwrap();
        assert!(g.tls && g.tls_config.is_some());
        let mut s = section("postgresql://u@h/d");
        s.ca_file = Some("/nonexistent/ca.pem".into());
        assert_eq!(s.resolve().unwrap_err().key, "ca_file");
    }

    #[test]
    fn bad_values_name_their_key() {
        let err = |s: Section| s.resolve().unwrap_err();
        assert_eq!(err(section("mysql://x@y/z")).key, "url");
        let e = err(section("postgresql://u:secretpw@[bad/z"));
        assert!(!e.message.contains("secretpw"), "{e:?}");
        let mut s = section("postgresql://u@h/d");
        s.max_rows = Some(0);
        assert_eq!(err(s).key, "max_rows");
        let mut s = section("postgresql://u@h/d");
        s.queries.insert("bad name".into(), "SELECT 1".into());
        assert_eq!(err(s).key, "queries.bad name");
        let mut s = section("postgresql://u@h/d");
        s.queries.clear();
        assert_eq!(err(s).key, "queries");
        let mut s = section("postgresql://u@h/d");
        s.url_env = Some("WASMON_TEST_SURELY_UNSET_VARIABLE".into());
        assert_eq!(err(s).key, "url");
        let mut s = section("postgresql://u@h/d");
        s.url = None;
        s.url_env = Some("WASMON_TEST_SURELY_UNSET_VARIABLE".into());
        let e = err(s);
        assert_eq!(e.key, "url_env");
        assert!(e.message.contains("WASMON_TEST_SURELY_UNSET_VARIABLE"));
    }
}
