//! The sink's `[config]` and its validation, done once in `init`.
//!
//! ```toml
//! [config]
//! url = "http://127.0.0.1:9200"          # the sink posts to {url}/_bulk
//! index = "events-%Y.%m.%d"              # from the event's time, UTC
//! username = "wasmon"                    # basic auth, with password; or api_key
//! password = "${MONITORING_ES_PASSWORD}"
//! # api_key = "${MONITORING_ES_API_KEY}" # `Authorization: ApiKey ...` (base64 id:key, as Elasticsearch issues it)
//! timeout = "1.5s"
//! ```

use serde::Deserialize;
use std::collections::BTreeMap;
use std::time::Duration;
use wasmon_sdk::config::{check_headers, check_http_url, duration_opt, http_timeout};
use wasmon_sdk::sink::Utc;

/// Request timeout when `[config]` sets none: below the host's default
/// per-call budget of 2 s.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_millis(1500);

/// The index pattern when `[config]` sets none.
pub const DEFAULT_INDEX: &str = "events-%Y.%m.%d";

/// The `[config]` table as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Elasticsearch's base URL (`http://host:9200`, or with a path prefix);
    /// its host must be allow-listed in `[capabilities.http] allow`.
    pub url: String,
    /// The index of each event, from its time in UTC: `%Y` year, `%m`
    /// month, `%d` day, `%H` hour, `%%` a percent sign (default
    /// `events-%Y.%m.%d`).
    #[serde(default)]
    pub index: Option<String>,
    /// Basic auth user (with `password`).
    #[serde(default)]
    pub username: Option<String>,
    /// Basic auth password; write `${VAR}` to take it from the environment
    /// (a variable `plugins.env_allow` lists).
    #[serde(default)]
    pub password: Option<String>,
    /// An API key as Elasticsearch issues it (the base64 `encoded` form),
    /// sent as `Authorization: ApiKey KEY`; instead of basic auth.
    #[serde(default)]
    pub api_key: Option<String>,
    /// Extra request headers.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Request timeout (default 1.5 s); keep it below the manifest's `timeout`.
    #[serde(default, deserialize_with = "duration_opt")]
    pub timeout: Option<Duration>,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `{url}/_bulk`.
    pub bulk_url: String,
    /// The index pattern.
    pub index: IndexPattern,
    /// The `Authorization` header, if any.
    pub authorization: Option<String>,
    /// Extra headers.
    pub headers: Vec<(String, String)>,
    /// Request timeout.
    pub timeout: Duration,
}

impl Config {
    /// Checks what types alone cannot; errors name the key.
    pub fn validate(self) -> Result<Settings, String> {
        check_url(&self.url).map_err(|e| format!("`url`: {e}"))?;
        let index = IndexPattern::parse(self.index.as_deref().unwrap_or(DEFAULT_INDEX))
            .map_err(|e| format!("`index`: {e}"))?;
        let authorization = match (self.username, self.password, self.api_key) {
            (None, None, None) => None,
            (Some(user), Some(password), None) => {
                if user.contains(':') {
                    return Err("`username` must not contain ':'".into());
                }
                Some(format!(
                    "Basic {}",
                    base64(format!("{user}:{password}").as_bytes())
                ))
            }
            (None, None, Some(key)) if !key.trim().is_empty() => {
                Some(format!("ApiKey {}", key.trim()))
            }
            (None, None, Some(_)) => return Err("`api_key` is empty".into()),
            (Some(_), None, None) => return Err("`username` needs `password`".into()),
            (None, Some(_), None) => return Err("`password` needs `username`".into()),
            _ => return Err("`api_key` and `username`/`password` exclude each other".into()),
        };
        if authorization
            .as_deref()
            .is_some_and(|a| a.bytes().any(|b| b == b'\r' || b == b'\n'))
        {
            return Err("`api_key` has a line break".into());
        }
        // `Authorization` comes from `username`/`password` or `api_key`.
        check_headers(&self.headers, &["content-type", "authorization"])?;
        let timeout = http_timeout(self.timeout, DEFAULT_TIMEOUT)?;
        Ok(Settings {
            bulk_url: format!("{}/_bulk", self.url.trim_end_matches('/')),
            index,
            authorization,
            headers: self.headers.into_iter().collect(),
            timeout,
        })
    }
}

/// One piece of an index pattern.
#[derive(Debug, Clone, PartialEq)]
enum Part {
    Text(String),
    Year,
    Month,
    Day,
    Hour,
}

/// An index name pattern such as `events-%Y.%m.%d`.
#[derive(Debug, Clone, PartialEq)]
pub struct IndexPattern(Vec<Part>);

impl IndexPattern {
    /// Parses a pattern; its fixed text must be valid in an index name
    /// (lowercase, none of `\ / * ? " < > | , # :` or spaces, not starting
    /// with `-`, `_` or `+`).
    pub fn parse(pattern: &str) -> Result<IndexPattern, String> {
        let mut parts = Vec::new();
        let mut text = String::new();
        let mut chars = pattern.chars();
        while let Some(c) = chars.next() {
            if c != '%' {
                if c.is_uppercase() || "\\/*?\"<>|,#: ".contains(c) || c.is_control() {
                    return Err(format!(
                        "{pattern:?}: {c:?} cannot be in an index name (lowercase, no \\ / * ? \" < > | , # : or spaces)"
                    ));
                }
                text.push(c);
                continue;
            }
            let part = match chars.next() {
                Some('%') => {
                    text.push('%');
                    continue;
                }
                Some('Y') => Part::Year,
                Some('m') => Part::Month,
                Some('d') => Part::Day,
                Some('H') => Part::Hour,
                other => {
                    return Err(format!(
                        "{pattern:?}: unknown `%{}` (use %Y, %m, %d, %H or %%)",
                        other.map(String::from).unwrap_or_default()
                    ));
                }
            };
            if !text.is_empty() {
                parts.push(Part::Text(std::mem::take(&mut text)));
            }
            parts.push(part);
        }
        if !text.is_empty() {
            parts.push(Part::Text(text));
        }
        match parts.first() {
            None => return Err("the pattern is empty".into()),
            Some(Part::Text(t)) if t.starts_with(['-', '_', '+']) || t == "." || t == ".." => {
                return Err(format!(
                    "{pattern:?} cannot start with -, _, + or be . or .."
                ));
            }
            _ => {}
        }
        Ok(IndexPattern(parts))
    }

    /// The index of an event at Unix milliseconds `time_ms` (UTC).
    pub fn index(&self, time_ms: u64) -> String {
        let t = Utc::from_ms(time_ms);
        let mut name = String::new();
        for part in &self.0 {
            match part {
                Part::Text(text) => name.push_str(text),
                Part::Year => name.push_str(&format!("{:04}", t.year)),
                Part::Month => name.push_str(&format!("{:02}", t.month)),
                Part::Day => name.push_str(&format!("{:02}", t.day)),
                Part::Hour => name.push_str(&format!("{:02}", t.hour)),
            }
        }
        name
    }
}

/// Standard base64 with padding (RFC 4648), for basic auth.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// An `http://` or `https://` URL with a host ([`check_http_url`]), without
/// credentials or a query.
fn check_url(url: &str) -> Result<(), String> {
    check_http_url(url)?;
    let rest = url.split_once("://").map_or(url, |(_, rest)| rest);
    if rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())].contains('@') {
        return Err(format!(
            "{url:?}: put credentials in `username`/`password`, not in the URL"
        ));
    }
    if url.contains('?') {
        return Err(format!("{url:?} contains a query"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;

    fn validate(json: &str) -> Result<Settings, String> {
        wasmon_sdk::config::from_json::<Config>(json)
            .map_err(|e| e.message)?
            .validate()
    }

    #[track_caller]
    fn check_err(json: &str, expect: &str) {
        match validate(json) {
            Ok(s) => panic!("{json} was accepted: {s:?}"),
            Err(err) => assert!(err.contains(expect), "error {err:?} lacks {expect:?}"),
        }
    }

    #[test]
    fn defaults_auth_and_index_names() {
        let s = validate(r#"{"url": "http://127.0.0.1:9200/"}"#).unwrap();
        assert_eq!(s.bulk_url, "http://127.0.0.1:9200/_bulk");
        assert_eq!(s.index.index(1_714_564_800_123), "events-2024.05.01");
        assert_eq!(s.index.index(1_709_251_199_999), "events-2024.02.29");
        assert_eq!(s.authorization, None);
        let s =
            validate(r#"{"url": "http://h", "username": "Aladdin", "password": "open sesame"}"#)
                .unwrap();
        assert_eq!(
            s.authorization.as_deref(),
            Some("Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==")
        );
        let s = validate(r#"{"url": "http://h", "api_key": "aWQ6a2V5", "index": "w-%%-%Y%m%d%H"}"#)
            .unwrap();
        assert_eq!(s.authorization.as_deref(), Some("ApiKey aWQ6a2V5"));
        assert_eq!(s.index.index(1_714_564_800_123), "w-%-2024050112");
        assert_eq!(base64(b"a"), "YQ==");
        assert_eq!(base64(b"ab"), "YWI=");
        assert_eq!(base64(b"abc"), "YWJj");
    }

    #[test]
    fn rejects_bad_configs_naming_the_key() {
        check_err("{}", "missing field `url`");
        check_err(r#"{"url": "es:9200"}"#, "`url`");
        check_err(r#"{"url": "http://u:p@es:9200"}"#, "`url`");
        check_err(r#"{"url": "http://h", "index": "Events-%Y"}"#, "`index`");
        check_err(
            r#"{"url": "http://h", "index": "e-%j"}"#,
            "`index`: \"e-%j\": unknown `%j`",
        );
        check_err(r#"{"url": "http://h", "index": "_e"}"#, "`index`");
        check_err(r#"{"url": "http://h", "index": ""}"#, "`index`");
        check_err(
            r#"{"url": "http://h", "username": "u"}"#,
            "`username` needs `password`",
        );
        check_err(
            r#"{"url": "http://h", "username": "u", "password": "p", "api_key": "k"}"#,
            "exclude each other",
        );
        check_err(
            r#"{"url": "http://h", "headers": {"Authorization": "x"}}"#,
            "set by the sink",
        );
        check_err(r#"{"url": "http://h", "timeout": 0}"#, "`timeout`");
        check_err(
            r#"{"url": "http://h", "pipeline": "x"}"#,
            "unknown field `pipeline`",
        );
    }
}
