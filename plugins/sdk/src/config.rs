//! The plugin's own configuration: the `[config]` table of its manifest.
//!
//! Durations in `[config]` can be written the way the host's own configuration
//! writes them (`30` or `2.5` seconds, `"500ms"`, `"2s"`, `"1m 30s"`); read
//! them with [`duration`] or [`parse_duration`].

use crate::Error;
use crate::bindings::wasmon::plugin::host;
use serde::de::{self, DeserializeOwned};
use serde::{Deserialize, Deserializer};
use std::time::Duration;

/// The whole `[config]` table, deserialised into `T`.
///
/// An error names the offending key as a path into the table:
/// `invalid [config] at `targets[1].timeout`: invalid duration "5 parsecs" ...`.
///
/// ```ignore
/// #[derive(serde::Deserialize)]
/// struct Config { targets: Vec<String>, #[serde(default)] timeout_ms: Option<u32> }
/// let config: Config = wasmon_sdk::config::get()?;
/// ```
pub fn get<T: DeserializeOwned>() -> Result<T, Error> {
    from_json(&host::config_json())
}

/// [`get`] on a given JSON text: what `get` does with the host's answer, and
/// what native unit tests of a plugin's config call.
///
/// A manifest without `[config]` reads as an empty table (`{}`), so a config
/// type whose fields all have defaults needs no `[config]` at all.
pub fn from_json<T: DeserializeOwned>(json: &str) -> Result<T, Error> {
    let json = match json.trim() {
        "" | "null" => "{}",
        json => json,
    };
    let deserializer = &mut serde_json::Deserializer::from_str(json);
    serde_path_to_error::deserialize(deserializer).map_err(|e| {
        let path = e.path().to_string();
        // serde_json appends the position in the JSON text, which the user
        // never wrote (the host made it from TOML): keep only the message.
        let message = e.inner().to_string();
        let message = match message.rsplit_once(" at line ") {
            Some((message, _)) => message.to_string(),
            None => message,
        };
        if path == "." {
            Error::new(format!("invalid [config]: {message}"))
        } else {
            Error::new(format!("invalid [config] at `{path}`: {message}"))
        }
    })
}

/// The `[config]` table as raw JSON text.
pub fn json() -> String {
    host::config_json()
}

/// One top-level key: strings as they are, other values as JSON.
pub fn value(key: &str) -> Option<String> {
    host::config_get(key)
}

/// The plugin's name, as the host knows it.
pub fn plugin_name() -> String {
    host::plugin_name()
}

/// Parses a duration the way the host's configuration writes it: a number of
/// seconds (`"30"`, `"2.5"`) or numbers with units `ms`, `s`, `m`, `h`
/// (`"500ms"`, `"2s"`, `"1m 30s"`, `"1.5s"`).
///
/// ```ignore
/// assert_eq!(parse_duration("1m 30s"), Ok(Duration::from_secs(90)));
/// ```
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text.is_empty() {
        return Err("empty duration".into());
    }
    if let Ok(seconds) = text.parse::<f64>() {
        return seconds_to_duration(seconds).ok_or_else(|| format!("invalid duration {text:?}"));
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (number, tail) = rest.split_at(number_len);
        let tail = tail.trim_start();
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.' || c.is_whitespace())
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let number: f64 = number
            .parse()
            .map_err(|_| format!("invalid duration {text:?}: expected a number"))?;
        let scale = match unit {
            "ms" => 0.001,
            "s" | "sec" | "secs" => 1.0,
            "m" | "min" | "mins" => 60.0,
            "h" | "hr" | "hrs" => 3600.0,
            "" => {
                return Err(format!(
                    "invalid duration {text:?}: missing unit (ms, s, m, h)"
                ));
            }
            other => {
                return Err(format!(
                    "invalid duration {text:?}: unknown unit {other:?} (use ms, s, m, h)"
                ));
            }
        };
        let part = seconds_to_duration(number * scale)
            .ok_or_else(|| format!("invalid duration {text:?}"))?;
        total = total
            .checked_add(part)
            .ok_or_else(|| format!("invalid duration {text:?}: too long"))?;
        rest = tail.trim_start();
    }
    Ok(total)
}

fn seconds_to_duration(seconds: f64) -> Option<Duration> {
    Duration::try_from_secs_f64(seconds).ok()
}

/// `#[serde(deserialize_with = "wasmon_sdk::config::duration")]`: a duration
/// written as a number of seconds or as text for [`parse_duration`].
///
/// ```ignore
/// #[derive(serde::Deserialize)]
/// struct Config {
///     #[serde(default, deserialize_with = "wasmon_sdk::config::duration_opt")]
///     timeout: Option<std::time::Duration>,
/// }
/// ```
pub fn duration<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
    match NumberOrText::deserialize(deserializer)? {
        NumberOrText::Number(seconds) => seconds_to_duration(seconds)
            .ok_or_else(|| de::Error::custom(format!("invalid duration {seconds}"))),
        NumberOrText::Text(text) => parse_duration(&text).map_err(de::Error::custom),
    }
}

/// Like [`duration`], for an `Option<Duration>` field (use with `#[serde(default)]`).
pub fn duration_opt<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Duration>, D::Error> {
    duration(deserializer).map(Some)
}

/// The request timeout of an HTTP plugin: `value`, or `default` when
/// unset; above zero and at most `u32::MAX` milliseconds (49 days), what
/// [`crate::http::Request::with_timeout_ms`] takes. The error names `timeout`.
pub fn http_timeout(value: Option<Duration>, default: Duration) -> Result<Duration, String> {
    let timeout = value.unwrap_or(default);
    if timeout.is_zero() || timeout.as_millis() > u128::from(u32::MAX) {
        return Err("`timeout` must be greater than zero and below 49 days".into());
    }
    Ok(timeout)
}

/// An `http://` or `https://` URL with a host (after any `user@`) and no
/// whitespace; the error quotes the URL, for the caller to name the key.
pub fn check_http_url(url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .ok_or_else(|| format!("{url:?} must start with http:// or https://"))?;
    let authority = &rest[..rest.find(['/', '?', '#']).unwrap_or(rest.len())];
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if host.is_empty() || host.starts_with(':') {
        return Err(format!("{url:?} has no host"));
    }
    if url.chars().any(char::is_whitespace) {
        return Err(format!("{url:?} contains whitespace"));
    }
    Ok(())
}

/// A `headers` table: names are HTTP tokens (RFC 9110) other than those in
/// `set_by_sink` (any case), values have no line break. Errors name the key.
pub fn check_headers<'a>(
    headers: impl IntoIterator<Item = (&'a String, &'a String)>,
    set_by_sink: &[&str],
) -> Result<(), String> {
    for (name, value) in headers {
        if !is_token(name) {
            return Err(format!("`headers`: {name:?} is not a header name"));
        }
        if set_by_sink.iter().any(|n| name.eq_ignore_ascii_case(n)) {
            return Err(format!("`headers`: {name:?} is set by the sink"));
        }
        if value.bytes().any(|b| b == b'\r' || b == b'\n') {
            return Err(format!("`headers.{name}`: the value has a line break"));
        }
    }
    Ok(())
}

/// An HTTP token (RFC 9110), such as a header name.
pub fn is_token(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// A duration as written in `[config]`.
#[derive(Deserialize)]
#[serde(untagged)]
enum NumberOrText {
    Number(f64),
    Text(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(text: &str, expect: Result<Duration, &str>) {
        match (parse_duration(text), expect) {
            (Ok(got), Ok(want)) => assert_eq!(got, want, "{text:?}"),
            (Err(got), Err(want)) => assert!(got.contains(want), "{got:?} lacks {want:?}"),
            (got, want) => panic!("{text:?}: got {got:?}, want {want:?}"),
        }
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Sample {
        #[allow(dead_code)]
        items: Vec<Item>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Item {
        #[allow(dead_code)]
        #[serde(deserialize_with = "duration")]
        timeout: Duration,
    }

    #[test]
    fn errors_name_the_key() {
        let err = from_json::<Sample>(r#"{"items": [{"timeout": 1}, {"timeout": "5 parsecs"}]}"#)
            .unwrap_err();
        assert!(
            err.message
                .starts_with("invalid [config] at `items[1].timeout`: invalid duration"),
            "{}",
            err.message
        );
        assert!(!err.message.contains("at line"), "{}", err.message);
        let err = from_json::<Sample>(r#"{"items": [{"timout": 1}]}"#).unwrap_err();
        assert!(err.message.contains("`items[0].timout`"), "{}", err.message);
        assert!(
            err.message.contains("unknown field `timout`"),
            "{}",
            err.message
        );
        let err = from_json::<Sample>("{}").unwrap_err();
        assert_eq!(err.message, "invalid [config]: missing field `items`");
        for empty in ["", "null", " "] {
            let err = from_json::<Sample>(empty).unwrap_err();
            assert_eq!(err.message, "invalid [config]: missing field `items`");
        }
    }

    #[test]
    fn http_checks() {
        let second = Duration::from_secs(1);
        assert_eq!(http_timeout(None, second), Ok(second));
        assert!(http_timeout(Some(Duration::ZERO), second).is_err());
        assert!(http_timeout(Some(Duration::from_secs(50 * 86_400)), second).is_err());
        assert!(check_http_url("https://u@h:1/x").is_ok());
        assert!(
            check_http_url("h:1")
                .unwrap_err()
                .contains("must start with")
        );
        assert!(
            check_http_url("http://u@:1")
                .unwrap_err()
                .contains("no host")
        );
        assert!(
            check_http_url("http://h/a b")
                .unwrap_err()
                .contains("whitespace")
        );
        let headers = |name: &str, value: &str| {
            let map = std::collections::BTreeMap::from([(name.to_string(), value.to_string())]);
            check_headers(&map, &["content-type"])
        };
        assert_eq!(headers("Authorization", "Bearer t"), Ok(()));
        assert!(
            headers("a b", "x")
                .unwrap_err()
                .contains("not a header name")
        );
        assert!(
            headers("Content-Type", "x")
                .unwrap_err()
                .contains("set by the sink")
        );
        assert!(headers("X", "a\nb").unwrap_err().contains("`headers.X`"));
    }

    #[test]
    fn durations() {
        check("30", Ok(Duration::from_secs(30)));
        check("2.5", Ok(Duration::from_millis(2500)));
        check("500ms", Ok(Duration::from_millis(500)));
        check("2s", Ok(Duration::from_secs(2)));
        check("1m 30s", Ok(Duration::from_secs(90)));
        check("1m30s", Ok(Duration::from_secs(90)));
        check("1.5s", Ok(Duration::from_millis(1500)));
        check("1h", Ok(Duration::from_secs(3600)));
        check("5 s", Ok(Duration::from_secs(5)));
        check("", Err("empty"));
        check("5 parsecs", Err("unknown unit \"parsecs\""));
        check("-1", Err("invalid duration"));
        check("s", Err("expected a number"));
        check("5 5s", Err("missing unit"));
    }
}
