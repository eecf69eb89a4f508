//! The sink's `[config]` and its validation, done once in `init`.
//!
//! ```toml
//! [config]
//! dir = "/data"            # where files go: the preopened directory (default)
//! prefix = "events"        # file names: PREFIX-20240501T120000.123Z-0001.jsonl
//! format = "jsonl"         # or "csv"
//! max_file_bytes = "10MiB" # rotate before a file would grow past it
//! rotate_every = "1h"      # and when the current file is older (default: never)
//! max_files = 10           # files kept, the current one included; older ones deleted
//! events = ["alert.*"]     # event types written (globs); all when empty
//! ```

use serde::Deserialize;
use std::time::Duration;
use wasmon_sdk::config::duration_opt;
use wasmon_sdk::sink::EventFilter;

/// The `[config]` table as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The directory the files go to (default `/data`, where the host
    /// preopens `[capabilities.files] dir`).
    #[serde(default)]
    pub dir: Option<String>,
    /// The file name prefix (default `events`): letters, digits, `-`, `_`, `.`.
    #[serde(default)]
    pub prefix: Option<String>,
    /// `jsonl` (default: one JSON object per line, the host's event shape)
    /// or `csv` (a header line, then one row per event).
    #[serde(default)]
    pub format: Option<Format>,
    /// Largest size of one file (default 10MiB): the sink starts a new file
    /// before a write would pass it (a single larger batch still gets a file).
    #[serde(default)]
    pub max_file_bytes: Option<Size>,
    /// Starts a new file when the current one is older than this (default:
    /// never); checked at each delivery.
    #[serde(default, deserialize_with = "duration_opt")]
    pub rotate_every: Option<Duration>,
    /// Most files kept, the current one included (default 10); the oldest
    /// are deleted after each delivery.
    #[serde(default)]
    pub max_files: Option<usize>,
    /// Event types to write, as names or `*` globs; all when empty.
    #[serde(default)]
    pub events: EventFilter,
}

/// The file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    /// JSON lines.
    Jsonl,
    /// Comma-separated values (RFC 4180).
    Csv,
}

impl Format {
    /// The file name extension.
    pub fn extension(self) -> &'static str {
        match self {
            Format::Jsonl => "jsonl",
            Format::Csv => "csv",
        }
    }
}

/// A byte size: a number or a string with a unit (`"10MiB"`, `"500KB"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "SizeText")]
pub struct Size(pub u64);

#[derive(Deserialize)]
#[serde(untagged)]
enum SizeText {
    Number(u64),
    Text(String),
}

impl TryFrom<SizeText> for Size {
    type Error = String;

    fn try_from(value: SizeText) -> Result<Size, String> {
        match value {
            SizeText::Number(n) => Ok(Size(n)),
            SizeText::Text(text) => parse_size(&text).map(Size),
        }
    }
}

/// `"10MiB"`, `"500KB"`, `"123"` as bytes.
fn parse_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("invalid size {text:?}"))?;
    let factor: u64 = match unit.trim() {
        "" | "B" => 1,
        "KB" => 1000,
        "KiB" => 1 << 10,
        "MB" => 1_000_000,
        "MiB" => 1 << 20,
        "GB" => 1_000_000_000,
        "GiB" => 1 << 30,
        other => return Err(format!("invalid size {text:?}: unknown unit {other:?}")),
    };
    number
        .checked_mul(factor)
        .ok_or_else(|| format!("invalid size {text:?}: too large"))
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The directory.
    pub dir: String,
    /// The file name prefix.
    pub prefix: String,
    /// The format.
    pub format: Format,
    /// Largest file.
    pub max_file_bytes: u64,
    /// Oldest a file is written to.
    pub rotate_every: Option<Duration>,
    /// Most files kept.
    pub max_files: usize,
    /// Event-type globs; all when empty.
    pub events: EventFilter,
}

impl Config {
    /// Checks what types alone cannot; errors name the key.
    pub fn validate(self) -> Result<Settings, String> {
        let dir = self.dir.unwrap_or_else(|| "/data".into());
        if dir.is_empty() {
            return Err("`dir` must not be empty".into());
        }
        let prefix = self.prefix.unwrap_or_else(|| "events".into());
        if prefix.is_empty()
            || !prefix
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            return Err(format!(
                "`prefix`: {prefix:?} must be letters, digits, `-`, `_` or `.`"
            ));
        }
        let max_file_bytes = self.max_file_bytes.map_or(10 << 20, |s| s.0);
        if max_file_bytes == 0 {
            return Err("`max_file_bytes` must be greater than zero".into());
        }
        if self.rotate_every.is_some_and(|d| d.is_zero()) {
            return Err("`rotate_every` must be greater than zero".into());
        }
        let max_files = self.max_files.unwrap_or(10);
        if max_files == 0 {
            return Err("`max_files` must be at least 1".into());
        }
        Ok(Settings {
            dir: dir.trim_end_matches('/').to_string(),
            prefix,
            format: self.format.unwrap_or(Format::Jsonl),
            max_file_bytes,
            rotate_every: self.rotate_every,
            max_files,
            events: self.events,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn validate(json: &str) -> Result<Settings, String> {
        wasmon_sdk::config::from_json::<Config>(json)
            .map_err(|e| e.message)?
            .validate()
    }

    #[test]
    fn defaults_and_full() {
        let s = validate("{}").unwrap();
        assert_eq!(s.dir, "/data");
        assert_eq!(s.prefix, "events");
        assert_eq!(s.format, Format::Jsonl);
        assert_eq!(s.max_file_bytes, 10 << 20);
        assert_eq!(s.max_files, 10);
        assert_eq!(s.rotate_every, None);
        let s = validate(
            r#"{"dir": "/data/x/", "prefix": "alerts", "format": "csv", "max_file_bytes": "2KiB",
                "rotate_every": "1m", "max_files": 3, "events": ["alert.*"]}"#,
        )
        .unwrap();
        assert_eq!(s.dir, "/data/x");
        assert_eq!(s.format, Format::Csv);
        assert_eq!(s.max_file_bytes, 2048);
        assert_eq!(s.rotate_every, Some(Duration::from_secs(60)));
        assert_eq!(s.max_files, 3);
        assert_eq!(
            validate(r#"{"max_file_bytes": 100}"#)
                .unwrap()
                .max_file_bytes,
            100
        );
    }

    #[test]
    fn rejects_bad_configs_naming_the_key() {
        for (json, expect) in [
            (r#"{"format": "xml"}"#, "format"),
            (r#"{"prefix": "a/b"}"#, "`prefix`"),
            (r#"{"max_file_bytes": "0"}"#, "`max_file_bytes`"),
            (r#"{"max_file_bytes": "1 parsec"}"#, "max_file_bytes"),
            (r#"{"max_files": 0}"#, "`max_files`"),
            (r#"{"rotate_every": "0s"}"#, "`rotate_every`"),
            (r#"{"events": [""]}"#, "`events`"),
            (r#"{"path": "/x"}"#, "unknown field `path`"),
        ] {
            match validate(json) {
                Ok(s) => panic!("{json} was accepted: {s:?}"),
                Err(e) => assert!(e.contains(expect), "{json}: {e:?} lacks {expect:?}"),
            }
        }
    }
}
