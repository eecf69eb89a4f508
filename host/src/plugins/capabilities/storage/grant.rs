//! The manifest's `[capabilities.storage]`: the S3-compatible endpoint
//! (`endpoint` or `endpoint_env`, `secure`, `region`), the credentials'
//! environment variables (`access_key_env`, `secret_key_env`), the bucket
//! allow-list (`buckets`), and the bounds (`max_objects`, `page_size`,
//! `timeout`, `max_response_bytes`).

use crate::plugins::capabilities::aws::sign::Keys;
use crate::plugins::capabilities::{KeyError, Secret};
use crate::units::{self, ByteSize};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Default timeout of one request.
const TIMEOUT: Duration = Duration::from_secs(5);
/// Default cap on the objects one `bucket-stats` call lists.
const MAX_OBJECTS: u64 = 100_000;
/// Default and largest ListObjectsV2 page (S3's own cap).
const PAGE_SIZE: u32 = 1000;
/// Default cap on one response body.
const MAX_RESPONSE: ByteSize = ByteSize(8 * 1024 * 1024);
/// Default signing region (MinIO's and moto's default).
const REGION: &str = "us-east-1";

/// `[capabilities.storage]` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Section {
    /// The server: `http(s)://host:port`, or `host:port` (then `secure`
    /// picks the scheme). Buckets are addressed path-style (`/bucket/key`).
    endpoint: Option<String>,
    /// The environment variable holding the endpoint instead (seed 001's
    /// `MONITORING_MINIO_ENDPOINT`).
    endpoint_env: Option<String>,
    /// HTTPS for an endpoint written without a scheme (default false);
    /// `true`/`false`, `1`/`0`.
    #[serde(default, deserialize_with = "units::flag")]
    secure: bool,
    /// The SigV4 signing region (default `us-east-1`).
    region: Option<String>,
    /// The environment variable holding the access key id.
    access_key_env: String,
    /// The environment variable holding the secret access key.
    secret_key_env: String,
    /// The buckets the plugin may see (default: every bucket).
    buckets: Option<Vec<String>>,
    /// Most objects one `bucket-stats` call counts (default 100000); past
    /// it the answer says `truncated`.
    max_objects: Option<u64>,
    /// Objects asked for per ListObjectsV2 page (default and most 1000).
    page_size: Option<u32>,
    /// Longest request, connecting included (default 5s; never beyond the call's budget).
    #[serde(default, with = "units::duration_opt")]
    timeout: Option<Duration>,
    /// Largest response body read (default 8MiB): a larger one is `too-large`.
    max_response_bytes: Option<ByteSize>,
}

/// What the `storage` capability may do.
#[derive(Debug, Clone, Serialize)]
pub struct StorageGrant {
    /// The endpoint, `scheme://host[:port]`, with no credentials in it.
    pub endpoint: String,
    /// The signing region.
    pub region: String,
    /// Where the access key came from (the variable's name, not its value).
    pub access_key_env: String,
    /// Where the secret came from.
    pub secret_key_env: String,
    /// The credentials, read when the manifest loaded.
    #[serde(skip)]
    pub keys: Keys,
    /// The buckets allowed; `None`: all.
    pub buckets: Option<Vec<String>>,
    /// Most objects one `bucket-stats` call counts.
    pub max_objects: u64,
    /// Objects per listing page.
    pub page_size: u32,
    /// Longest request.
    #[serde(with = "units::duration")]
    pub timeout: Duration,
    /// Largest response body.
    #[serde(serialize_with = "crate::plugins::manifest::display")]
    pub max_response_bytes: ByteSize,
}

impl Section {
    /// The grant; an error names the key. Reads the environment now, so a
    /// missing variable fails the load, not the first call.
    pub fn resolve(self) -> Result<StorageGrant, KeyError> {
        let env = |key: &str, var: &str| {
            std::env::var(var)
                .ok()
                .filter(|v| !v.is_empty())
                .ok_or_else(|| {
                    KeyError::new(key, format!("the environment variable {var} is not set"))
                })
        };
        let (key, written) = match (self.endpoint, &self.endpoint_env) {
            (Some(e), None) => ("endpoint", e),
            (None, Some(var)) => ("endpoint_env", env("endpoint_env", var)?),
            (Some(_), Some(_)) => {
                return Err(KeyError::new(
                    "endpoint",
                    "give either endpoint or endpoint_env, not both",
                ));
            }
            (None, None) => {
                return Err(KeyError::new(
                    "endpoint",
                    "missing: give endpoint or endpoint_env",
                ));
            }
        };
        let endpoint = endpoint(&written, self.secure).map_err(|e| KeyError::new(key, e))?;
        let access_key = env("access_key_env", &self.access_key_env)?;
        let secret_key = env("secret_key_env", &self.secret_key_env)?;
        if let Some(buckets) = &self.buckets {
            for (i, bucket) in buckets.iter().enumerate() {
                check_bucket(bucket).map_err(|e| KeyError::new(format!("buckets[{i}]"), e))?;
            }
        }
        let region = self.region.unwrap_or_else(|| REGION.into());
        if region.is_empty()
            || !region
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-')
        {
            return Err(KeyError::new(
                "region",
                format!("{region:?} is not a region name"),
            ));
        }
        let max_objects = self.max_objects.unwrap_or(MAX_OBJECTS);
        if max_objects == 0 {
            return Err(KeyError::new("max_objects", "must be greater than zero"));
        }
        let page_size = self.page_size.unwrap_or(PAGE_SIZE);
        if !(1..=PAGE_SIZE).contains(&page_size) {
            return Err(KeyError::new(
                "page_size",
                format!("{page_size} is not between 1 and {PAGE_SIZE}"),
            ));
        }
        let timeout = self.timeout.unwrap_or(TIMEOUT);
        if timeout.is_zero() {
            return Err(KeyError::new("timeout", "must be greater than zero"));
        }
        let max_response_bytes = self.max_response_bytes.unwrap_or(MAX_RESPONSE);
        if max_response_bytes.0 == 0 {
            return Err(KeyError::new(
                "max_response_bytes",
                "must be greater than zero",
            ));
        }
        Ok(StorageGrant {
            endpoint,
            region,
            access_key_env: self.access_key_env,
            secret_key_env: self.secret_key_env,
            keys: Keys {
                access_key: Secret(access_key),
                secret_key: Secret(secret_key),
                session_token: None,
            },
            buckets: self.buckets,
            max_objects,
            page_size,
            timeout,
            max_response_bytes,
        })
    }
}

/// `scheme://host[:port]` from an endpoint as written; `secure` picks the
/// scheme when it has none. No credentials, path, query or fragment.
fn endpoint(written: &str, secure: bool) -> Result<String, String> {
    let written = written.trim().trim_end_matches('/');
    let full = if written.contains("://") {
        written.to_string()
    } else {
        format!("{}://{written}", if secure { "https" } else { "http" })
    };
    let url = reqwest::Url::parse(&full).map_err(|e| format!("not a URL: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "unsupported scheme {:?}: use http or https",
            url.scheme()
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(
            "credentials do not belong in the URL: use access_key_env and secret_key_env".into(),
        );
    }
    let Some(host) = url.host_str().filter(|h| !h.is_empty()) else {
        return Err("the URL has no host".into());
    };
    if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
        return Err(
            "give the server only (scheme://host:port): buckets are addressed path-style".into(),
        );
    }
    Ok(match url.port() {
        Some(port) => format!("{}://{host}:{port}", url.scheme()),
        None => format!("{}://{host}", url.scheme()),
    })
}

/// Whether `name` is a valid S3 bucket name: 3 to 63 of `a-z0-9.-`,
/// starting and ending with a letter or digit.
pub fn check_bucket(name: &str) -> Result<(), String> {
    let valid = (3..=63).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    if valid {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a bucket name (3 to 63 of a-z, 0-9, '.', '-')"
        ))
    }
}

impl StorageGrant {
    /// Whether the plugin may see `bucket`.
    pub fn allows(&self, bucket: &str) -> bool {
        self.buckets
            .as_ref()
            .is_none_or(|allowed| allowed.iter().any(|b| b == bucket))
    }

    /// `text` with the credentials blanked out (for errors from elsewhere).
    pub fn scrub(&self, text: &str) -> String {
        let mut out = text.to_string();
        for secret in [&self.keys.secret_key.0, &self.keys.access_key.0] {
            if !secret.is_empty() {
                out = out.replace(secret.as_str(), "***");
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn section(endpoint: &str) -> Section {
        Section {
            endpoint: Some(endpoint.into()),
            endpoint_env: None,
            secure: false,
            region: None,
            access_key_env: "PATH".into(),
            secret_key_env: "PATH".into(),
            buckets: None,
            max_objects: None,
            page_size: None,
            timeout: None,
            max_response_bytes: None,
        }
    }

    #[test]
    fn endpoints_are_normalized() {
        assert_eq!(endpoint("minio:9000", false).unwrap(), "http://minio:9000");
        assert_eq!(endpoint("minio:9000", true).unwrap(), "https://minio:9000");
        assert_eq!(
            endpoint("http://127.0.0.1:9000/", true).unwrap(),
            "http://127.0.0.1:9000"
        );
        assert_eq!(
            endpoint("https://s3.example.com:443", false).unwrap(),
            "https://s3.example.com"
        );
        assert!(endpoint("http://user:pw@minio:9000", false).is_err());
        assert!(endpoint("http://minio:9000/bucket", false).is_err());
        assert!(endpoint("ftp://minio", false).is_err());
    }

    #[test]
    fn bad_values_name_their_key() {
        assert_eq!(section("ftp://x").resolve().unwrap_err().key, "endpoint");
        let missing = Section {
            secret_key_env: "WASMON_TEST_SURELY_UNSET_VARIABLE".into(),
            ..section("http://127.0.0.1:9000")
        };
        assert_eq!(missing.resolve().unwrap_err().key, "secret_key_env");
        let bucket = Section {
            buckets: Some(vec!["ok-bucket".into(), "Bad_Bucket".into()]),
            ..section("http://127.0.0.1:9000")
        };
        assert_eq!(bucket.resolve().unwrap_err().key, "buckets[1]");
        let zero = Section {
            max_objects: Some(0),
            ..section("http://127.0.0.1:9000")
        };
        assert_eq!(zero.resolve().unwrap_err().key, "max_objects");
    }

    #[test]
    fn the_credentials_never_show() {
        let grant = section("http://127.0.0.1:9000").resolve().unwrap();
        let path = std::env::var("PATH").unwrap();
        assert!(!format!("{grant:?}").contains(&path));
        let json = serde_json::to_string(&grant).unwrap();
        assert!(!json.contains(&path), "{json}");
        assert!(json.contains("\"secret_key_env\":\"PATH\""), "{json}");
        assert_eq!(grant.scrub(&format!("x {path} y")), "x *** y");
    }
}
