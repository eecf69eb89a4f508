//! The probe's `[config]`: targets as written in the manifest, and their
//! validation into [`Targets`], done once in `init`.
//!
//! ```toml
//! [config]
//! timeout = "1s"      # per-target default
//! budget = "1.5s"     # all targets of one collect(), below the manifest's `timeout`
//!
//! [[config.targets]]
//! name = "wasmon"
//! url = "http://127.0.0.1:9400/healthz"
//! body_contains = "ok"
//! ```

use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;
use wasmon_sdk::config::duration_opt;
use wasmon_sdk::http::Method;

/// Per-target timeout when neither the target nor `[config]` sets one.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(1);

/// Time for all targets of one `collect()` when `[config]` sets none: below
/// the host's default per-call budget of 2 s, with room to build the samples.
pub const DEFAULT_BUDGET: Duration = Duration::from_millis(1500);

/// Longest timeout the host's request can carry (`u32` milliseconds).
const MAX_TIMEOUT: Duration = Duration::from_millis(u32::MAX as u64);

/// The `[config]` table as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// What to probe, in order.
    pub targets: Vec<TargetConfig>,
    /// Default per-target timeout.
    #[serde(default, deserialize_with = "duration_opt")]
    pub timeout: Option<Duration>,
    /// Time for all targets of one `collect()`; targets whose turn comes after
    /// it is spent are reported failed (`budget_exhausted`) without a request.
    #[serde(default, deserialize_with = "duration_opt")]
    pub budget: Option<Duration>,
}

/// One target as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetConfig {
    /// `http://` or `https://` URL; its host must be allow-listed in the
    /// manifest's `[capabilities.http] allow`.
    pub url: String,
    /// The `target` label; the URL when absent.
    #[serde(default)]
    pub name: Option<String>,
    /// `GET` (default), `HEAD`, `POST`, `PUT`, `PATCH`, `DELETE`, `OPTIONS`.
    #[serde(default)]
    pub method: Option<String>,
    /// Status codes that count as success; any 2xx when empty.
    #[serde(default)]
    pub valid_status_codes: Vec<u16>,
    /// The body must contain this text.
    #[serde(default)]
    pub body_contains: Option<String>,
    /// The body must not contain this text.
    #[serde(default)]
    pub body_not_contains: Option<String>,
    /// Time for this target's request; `[config] timeout` when absent.
    #[serde(default, deserialize_with = "duration_opt")]
    pub timeout: Option<Duration>,
    /// Request headers, e.g. `{ Authorization = "Bearer ..." }`.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// Request body, for `POST`/`PUT`/`PATCH`.
    #[serde(default)]
    pub body: Option<String>,
}

/// The validated configuration.
#[derive(Debug)]
pub struct Targets {
    /// The targets, in config order.
    pub targets: Vec<Target>,
    /// Time for all targets of one `collect()`.
    pub budget: Duration,
}

/// One validated target.
#[derive(Debug, Clone)]
pub struct Target {
    /// The `target` label.
    pub label: String,
    /// The URL.
    pub url: String,
    /// `host[:port]` of the URL, for allow-list hints.
    pub authority: String,
    /// The method.
    pub method: Method,
    /// Success codes; any 2xx when empty.
    pub valid_status_codes: Vec<u16>,
    /// Text the body must contain.
    pub body_contains: Option<String>,
    /// Text the body must not contain.
    pub body_not_contains: Option<String>,
    /// Request timeout.
    pub timeout: Duration,
    /// Request headers.
    pub headers: Vec<(String, String)>,
    /// Request body.
    pub body: Option<String>,
}

impl Config {
    /// Checks what types alone cannot; errors name the target and the key.
    pub fn validate(self) -> Result<Targets, String> {
        if self.targets.is_empty() {
            return Err("`targets` is empty: add at least one [[config.targets]]".into());
        }
        let default_timeout = match self.timeout {
            Some(timeout) => check_timeout("timeout", timeout)?,
            None => DEFAULT_TIMEOUT,
        };
        let budget = match self.budget {
            Some(budget) => check_timeout("budget", budget)?,
            None => DEFAULT_BUDGET,
        };
        let mut labels = BTreeSet::new();
        let mut targets = Vec::with_capacity(self.targets.len());
        for (index, target) in self.targets.into_iter().enumerate() {
            let at = format!("targets[{index}]");
            let authority = authority(&target.url).map_err(|e| format!("`{at}.url`: {e}"))?;
            let label = target.name.unwrap_or_else(|| target.url.clone());
            if label.is_empty() {
                return Err(format!("`{at}.name` is empty"));
            }
            if !labels.insert(label.clone()) {
                return Err(format!(
                    "`{at}`: another target is also labelled {label:?}; give each a distinct `name`"
                ));
            }
            let method = match &target.method {
                Some(name) => name
                    .parse::<Method>()
                    .map_err(|e| format!("`{at}.method`: {e}"))?,
                None => Method::Get,
            };
            if let Some(code) = target
                .valid_status_codes
                .iter()
                .find(|c| !(100..=599).contains(*c))
            {
                return Err(format!(
                    "`{at}.valid_status_codes`: {code} is not an HTTP status code (100-599)"
                ));
            }
            if method == Method::Head
                && (target.body_contains.is_some() || target.body_not_contains.is_some())
            {
                return Err(format!(
                    "`{at}`: a HEAD response has no body, so `body_contains`/`body_not_contains` cannot hold"
                ));
            }
            if target.body.is_some() && matches!(method, Method::Get | Method::Head) {
                return Err(format!(
                    "`{at}.body`: a {} request carries no body; use POST, PUT or PATCH",
                    method.as_str()
                ));
            }
            if let Some(name) = target.headers.keys().find(|n| !is_token(n)) {
                return Err(format!("`{at}.headers`: {name:?} is not a header name"));
            }
            let timeout = match target.timeout {
                Some(timeout) => check_timeout(&format!("{at}.timeout"), timeout)?,
                None => default_timeout,
            };
            targets.push(Target {
                label,
                url: target.url,
                authority,
                method,
                valid_status_codes: target.valid_status_codes,
                body_contains: target.body_contains,
                body_not_contains: target.body_not_contains,
                timeout,
                headers: target.headers.into_iter().collect(),
                body: target.body,
            });
        }
        Ok(Targets { targets, budget })
    }
}

/// A timeout must be positive and fit the host's `u32` milliseconds.
fn check_timeout(key: &str, timeout: Duration) -> Result<Duration, String> {
    if timeout.is_zero() {
        Err(format!("`{key}` must be greater than zero"))
    } else if timeout > MAX_TIMEOUT {
        Err(format!("`{key}` is too long"))
    } else {
        Ok(timeout)
    }
}

/// The `host[:port]` of an `http(s)://` URL.
pub fn authority(url: &str) -> Result<String, String> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .ok_or_else(|| format!("{url:?} must start with http:// or https://"))?;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..end];
    // Drop `user:password@`.
    let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
    if authority.is_empty() || authority.starts_with(':') {
        return Err(format!("{url:?} has no host"));
    }
    if authority.chars().any(char::is_whitespace) {
        return Err(format!("{url:?} has whitespace in its host"));
    }
    Ok(authority.to_string())
}

/// An HTTP token (RFC 9110): a header name.
fn is_token(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn validate(json: &str) -> Result<Targets, String> {
        wasmon_sdk::config::from_json::<Config>(json)
            .map_err(|e| e.message)?
            .validate()
    }

    #[track_caller]
    fn check_err(json: &str, expect: &str) {
        match validate(json) {
            Ok(targets) => panic!("{json} was accepted: {targets:?}"),
            Err(err) => assert!(err.contains(expect), "error {err:?} lacks {expect:?}"),
        }
    }

    #[test]
    fn defaults() {
        let t = validate(r#"{"targets": [{"url": "http://127.0.0.1:9400/healthz"}]}"#).unwrap();
        assert_eq!(t.budget, DEFAULT_BUDGET);
        let target = &t.targets[0];
        assert_eq!(target.label, "http://127.0.0.1:9400/healthz");
        assert_eq!(target.authority, "127.0.0.1:9400");
        assert_eq!(target.method, Method::Get);
        assert_eq!(target.timeout, DEFAULT_TIMEOUT);
        assert!(target.valid_status_codes.is_empty());
    }

    #[test]
    fn full_target() {
        let t = validate(
            r#"{"timeout": "3s", "budget": 10, "targets": [
                {"url": "https://api.example.com/v1?x=1", "name": "api", "method": "post",
                 "valid_status_codes": [200, 201], "body_contains": "ok", "timeout": "500ms",
                 "headers": {"Authorization": "Bearer t"}, "body": "{}"},
                {"url": "http://user:pw@example.org"}]}"#,
        )
        .unwrap();
        assert_eq!(t.budget, Duration::from_secs(10));
        let api = &t.targets[0];
        assert_eq!(api.label, "api");
        assert_eq!(api.authority, "api.example.com");
        assert_eq!(api.method, Method::Post);
        assert_eq!(api.timeout, Duration::from_millis(500));
        assert_eq!(
            api.headers,
            vec![("Authorization".into(), "Bearer t".into())]
        );
        assert_eq!(t.targets[1].authority, "example.org");
        assert_eq!(t.targets[1].timeout, Duration::from_secs(3));
    }

    #[test]
    fn rejects_bad_configs_naming_the_key() {
        check_err("{}", "missing field `targets`");
        check_err(r#"{"targets": []}"#, "`targets` is empty");
        check_err(
            r#"{"targets": [{"url": "ftp://x"}]}"#,
            "`targets[0].url`: \"ftp://x\" must start with http:// or https://",
        );
        check_err(
            r#"{"targets": [{"url": "http:///x"}]}"#,
            "`targets[0].url`: \"http:///x\" has no host",
        );
        check_err(
            r#"{"targets": [{"url": "http://a"}, {"url": "http://a"}]}"#,
            "`targets[1]`: another target is also labelled \"http://a\"",
        );
        check_err(
            r#"{"targets": [{"url": "http://a", "method": "FETCH"}]}"#,
            "`targets[0].method`: unknown HTTP method \"FETCH\"",
        );
        check_err(
            r#"{"targets": [{"url": "http://a", "valid_status_codes": [700]}]}"#,
            "`targets[0].valid_status_codes`: 700",
        );
        check_err(
            r#"{"targets": [{"url": "http://a", "method": "HEAD", "body_contains": "x"}]}"#,
            "a HEAD response has no body",
        );
        check_err(
            r#"{"targets": [{"url": "http://a", "body": "x"}]}"#,
            "`targets[0].body`: a GET request carries no body",
        );
        check_err(
            r#"{"targets": [{"url": "http://a", "headers": {"bad name": "x"}}]}"#,
            "`targets[0].headers`: \"bad name\"",
        );
        check_err(
            r#"{"targets": [{"url": "http://a", "timeout": 0}]}"#,
            "`targets[0].timeout` must be greater than zero",
        );
        check_err(
            r#"{"targets": [{"url": "http://a", "timeout": "soon"}]}"#,
            "`targets[0].timeout`: invalid duration \"soon\"",
        );
        check_err(
            r#"{"targets": [{"url": "http://a", "name": ""}]}"#,
            "`targets[0].name` is empty",
        );
        check_err(
            r#"{"targets": [{"url": "http://a", "nmae": "x"}]}"#,
            "`targets[0].nmae`: unknown field",
        );
        check_err(
            r#"{"budget": "0s", "targets": [{"url": "http://a"}]}"#,
            "`budget` must be greater than zero",
        );
    }
}
