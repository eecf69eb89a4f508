//! `${VAR}` and `${VAR:-default}` in a manifest's string values, for the
//! variables `[plugins] env_allow` allow-lists (default `MONITORING_*`,
//! `PIXCRAWLER_*`: the seeds' variables).
//!
//! - Expansion happens inside the parsed TOML's string values (keys are never
//!   expanded), so a value cannot inject TOML: `"${X}"` stays one value.
//! - `${VAR:-default}` takes `default` when `VAR` is unset or empty; `${VAR}`
//!   of an unset variable makes the manifest invalid, naming the key.
//! - A string that is exactly one reference (`"${PIXCRAWLER_CHUNK_THRESHOLD_WARN:-35}"`)
//!   whose value reads as a TOML integer, float or boolean becomes that type;
//!   anything else stays a string.
//! - `$${` is a literal `${`.
//! - A reference to a variable outside the allow-list makes the manifest
//!   invalid, naming the key, the variable and `plugins.env_allow`.
//!
//! Values are never logged (they may be secrets): the caller logs each
//! variable's name, the keys it filled and whether the default was used.

use super::glob_match;
use anyhow::{Result, bail};

/// The default `[plugins] env_allow`.
pub const ENV_ALLOW: &[&str] = &["MONITORING_*", "PIXCRAWLER_*"];

/// One reference that was expanded.
#[derive(Debug, Clone, PartialEq)]
pub struct Expansion {
    /// The variable's name.
    pub variable: String,
    /// The key whose value held it (`capabilities.sql.url`, `config.checks[0].warn`).
    pub key: String,
    /// Whether the `:-default` was used (the variable unset or empty).
    pub from_default: bool,
}

/// Expands every string value of `table` in place; `lookup` reads a variable.
pub fn expand(
    table: &mut toml::Table,
    allow: &[String],
    lookup: &dyn Fn(&str) -> Option<String>,
) -> Result<Vec<Expansion>> {
    let mut done = Vec::new();
    for (key, value) in table.iter_mut() {
        walk(value, key.to_string(), allow, lookup, &mut done)?;
    }
    Ok(done)
}

fn walk(
    value: &mut toml::Value,
    key: String,
    allow: &[String],
    lookup: &dyn Fn(&str) -> Option<String>,
    done: &mut Vec<Expansion>,
) -> Result<()> {
    match value {
        toml::Value::String(text) if text.contains('$') => {
            if let Some(new) = expand_str(text, &key, allow, lookup, done)? {
                *value = new;
            }
        }
        toml::Value::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                walk(item, format!("{key}[{i}]"), allow, lookup, done)?;
            }
        }
        toml::Value::Table(table) => {
            for (k, v) in table.iter_mut() {
                walk(v, format!("{key}.{k}"), allow, lookup, done)?;
            }
        }
        _ => {}
    }
    Ok(())
}

/// The expanded value of `text` (at `key`), or `None` when it has no reference.
fn expand_str(
    text: &str,
    key: &str,
    allow: &[String],
    lookup: &dyn Fn(&str) -> Option<String>,
    done: &mut Vec<Expansion>,
) -> Result<Option<toml::Value>> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut references = 0;
    let mut whole = false;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let tail = &rest[at..];
        if let Some(after) = tail.strip_prefix("$${") {
            out.push_str("${");
            rest = after;
            continue;
        }
        let Some(inner_start) = tail.strip_prefix("${") else {
            out.push('$');
            rest = &tail[1..];
            continue;
        };
        let Some(end) = inner_start.find('}') else {
            bail!(
                "invalid value for `{key}`: `${{` without a closing `}}` (write `$${{` for a literal `${{`)"
            );
        };
        let inner = &inner_start[..end];
        let (name, default) = match inner.split_once(":-") {
            Some((name, default)) => (name, Some(default)),
            None => (inner, None),
        };
        let valid = name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            bail!(
                "invalid value for `{key}`: `${{{inner}}}` is not a variable reference (`${{NAME}}` or `${{NAME:-default}}`)"
            );
        }
        if !allow.iter().any(|pattern| glob_match(pattern, name)) {
            bail!(
                "invalid value for `{key}`: the environment variable {name} is not allowed in manifests: `plugins.env_allow` is {allow:?}"
            );
        }
        let (value, from_default) = match (lookup(name).filter(|v| !v.is_empty()), default) {
            (Some(value), _) => (value, false),
            (None, Some(default)) => (default.to_string(), true),
            (None, None) => bail!(
                "invalid value for `{key}`: the environment variable {name} is not set (write `${{{name}:-default}}` for a default)"
            ),
        };
        whole = references == 0 && at == 0 && end + 3 == tail.len() && out.is_empty();
        references += 1;
        out.push_str(&value);
        done.push(Expansion {
            variable: name.to_string(),
            key: key.to_string(),
            from_default,
        });
        rest = &inner_start[end + 1..];
    }
    if references == 0 && out.len() + rest.len() == text.len() {
        return Ok(None);
    }
    out.push_str(rest);
    if whole && references == 1 {
        return Ok(Some(typed(out)));
    }
    Ok(Some(toml::Value::String(out)))
}

/// A whole-reference value as an integer, float or boolean when it reads as one.
fn typed(value: String) -> toml::Value {
    let trimmed = value.trim();
    if let Ok(i) = trimmed.parse::<i64>() {
        return toml::Value::Integer(i);
    }
    let numeric = trimmed.chars().any(|c| c.is_ascii_digit())
        && trimmed
            .chars()
            .all(|c| c.is_ascii_digit() || matches!(c, '+' | '-' | '.' | 'e' | 'E'));
    if numeric && let Ok(f) = trimmed.parse::<f64>() {
        return toml::Value::Float(f);
    }
    match trimmed {
        "true" => toml::Value::Boolean(true),
        "false" => toml::Value::Boolean(false),
        _ => toml::Value::String(value),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allow() -> Vec<String> {
        ENV_ALLOW.iter().map(|s| s.to_string()).collect()
    }

    fn env(name: &str) -> Option<String> {
        match name {
            "MONITORING_REDIS_HOST" => Some("redis.local".into()),
            "MONITORING_REDIS_PORT" => Some("6380".into()),
            "PIXCRAWLER_DB_URL" => Some("postgresql://u:s3cret@db/x".into()),
            "PIXCRAWLER_EMPTY" => Some(String::new()),
            "PIXCRAWLER_INJECT" => Some("1\"\n[capabilities.http]\nallow = [\"*\"]".into()),
            "HOME" => Some("/root".into()),
            _ => None,
        }
    }

    fn run(toml_text: &str) -> Result<(toml::Table, Vec<Expansion>)> {
        let mut table: toml::Table = toml::from_str(toml_text)?;
        let done = expand(&mut table, &allow(), &env)?;
        Ok((table, done))
    }

    #[test]
    fn references_expand_inside_string_values() {
        let (t, done) = run(
            r#"
            [capabilities.redis]
            url = "redis://${MONITORING_REDIS_HOST}:${MONITORING_REDIS_PORT}/${MONITORING_REDIS_DB:-0}"
            [config]
            warn = "${PIXCRAWLER_CHUNK_THRESHOLD_WARN:-35}"
            ratio = "${PIXCRAWLER_RATIO:-0.8}"
            on = "${PIXCRAWLER_ON:-true}"
            port = "${MONITORING_REDIS_PORT}"
            text = "${PIXCRAWLER_NAME:-face crawl}"
            empty = "${PIXCRAWLER_EMPTY:-fallback}"
            literal = "cost $5 and $${NOT_EXPANDED}"
            list = ["${MONITORING_REDIS_HOST}", 3]
            "#,
        )
        .unwrap();
        assert_eq!(
            t["capabilities"]["redis"]["url"].as_str(),
            Some("redis://redis.local:6380/0")
        );
        let config = &t["config"];
        assert_eq!(config["warn"], toml::Value::Integer(35));
        assert_eq!(config["ratio"], toml::Value::Float(0.8));
        assert_eq!(config["on"], toml::Value::Boolean(true));
        assert_eq!(config["port"], toml::Value::Integer(6380));
        assert_eq!(config["text"].as_str(), Some("face crawl"));
        assert_eq!(config["empty"].as_str(), Some("fallback"));
        assert_eq!(
            config["literal"].as_str(),
            Some("cost $5 and ${NOT_EXPANDED}")
        );
        assert_eq!(config["list"][0].as_str(), Some("redis.local"));
        let keys: Vec<(&str, &str, bool)> = done
            .iter()
            .map(|e| (e.variable.as_str(), e.key.as_str(), e.from_default))
            .collect();
        assert!(keys.contains(&("MONITORING_REDIS_DB", "capabilities.redis.url", true)));
        assert!(keys.contains(&("PIXCRAWLER_CHUNK_THRESHOLD_WARN", "config.warn", true)));
        assert!(keys.contains(&("MONITORING_REDIS_HOST", "config.list[0]", false)));
    }

    #[test]
    fn a_value_cannot_inject_toml() {
        let (t, _) = run("[config]\nx = \"${PIXCRAWLER_INJECT}\"").unwrap();
        assert!(t.get("capabilities").is_none());
        assert!(t["config"]["x"].as_str().unwrap().contains("allow"));
    }

    #[test]
    fn bad_references_name_the_key_and_the_variable() {
        let err = |text: &str| format!("{:#}", run(text).unwrap_err());
        let e = err("[config]\nhome = \"${HOME}\"");
        assert!(
            e.contains("`config.home`") && e.contains("HOME") && e.contains("plugins.env_allow"),
            "{e}"
        );
        let e = err("[config]\nx = \"${PIXCRAWLER_UNSET}\"");
        assert!(
            e.contains("`config.x`") && e.contains("PIXCRAWLER_UNSET is not set"),
            "{e}"
        );
        let e = err("[config]\nx = \"${PIXCRAWLER_OPEN\"");
        assert!(e.contains("closing"), "{e}");
        let e = err("[config]\nx = \"${1BAD}\"");
        assert!(e.contains("not a variable reference"), "{e}");
        // The value of a secret never shows in an error.
        let e = err("[config]\nx = \"${PIXCRAWLER_DB_URL}${HOME}\"");
        assert!(!e.contains("s3cret"), "{e}");
    }

    #[test]
    fn a_string_without_references_is_untouched() {
        let (t, done) = run("[config]\nx = \"a $ b\"\ny = \"plain\"").unwrap();
        assert_eq!(t["config"]["x"].as_str(), Some("a $ b"));
        assert!(done.is_empty());
    }
}
