//! Deserialisers for the units configuration is written in: durations
//! (`30`, `2.5`, `"500ms"`, `"1m 30s"`), byte sizes (`1048576`, `"64MiB"`, `"1.5 GB"`)
//! and flags (`true`, `1`, `"yes"`).

use serde::{Deserialize, Deserializer, de};
use std::fmt;
use std::time::Duration;

/// A size in bytes, written as a number or with a unit (`k`, `KiB`, `MB`, `MiB`, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ByteSize(pub u64);

impl ByteSize {
    /// The size as `usize`, saturating.
    pub fn as_usize(self) -> usize {
        usize::try_from(self.0).unwrap_or(usize::MAX)
    }
}

impl fmt::Display for ByteSize {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const MIB: u64 = 1024 * 1024;
        if self.0 >= MIB && self.0.is_multiple_of(MIB) {
            write!(f, "{}MiB", self.0 / MIB)
        } else if self.0 >= 1024 && self.0.is_multiple_of(1024) {
            write!(f, "{}KiB", self.0 / 1024)
        } else {
            write!(f, "{}B", self.0)
        }
    }
}

/// Parses `64MiB`, `1.5 GB`, `512k` or `1024`.
pub fn parse_bytes(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 = number
        .parse()
        .map_err(|_| format!("invalid size {text:?}"))?;
    let multiplier: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1000,
        "kib" => 1 << 10,
        "m" | "mb" => 1_000_000,
        "mib" => 1 << 20,
        "g" | "gb" => 1_000_000_000,
        "gib" => 1 << 30,
        other => {
            return Err(format!(
                "unknown size unit {other:?} in {text:?} (use B, KiB, MiB, GiB, kB, MB, GB)"
            ));
        }
    };
    let bytes = number * multiplier as f64;
    if !bytes.is_finite() || bytes < 0.0 || bytes > u64::MAX as f64 {
        return Err(format!("size {text:?} out of range"));
    }
    Ok(bytes as u64)
}

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match NumberOrText::deserialize(d)? {
            NumberOrText::Int(n) => u64::try_from(n)
                .map(ByteSize)
                .map_err(|_| de::Error::custom("size must not be negative")),
            NumberOrText::Float(f) if f >= 0.0 && f.is_finite() => Ok(ByteSize(f as u64)),
            NumberOrText::Float(f) => Err(de::Error::custom(format!("invalid size {f}"))),
            NumberOrText::Text(t) => parse_bytes(&t).map(ByteSize).map_err(de::Error::custom),
        }
    }
}

#[derive(Deserialize)]
#[serde(untagged)]
enum NumberOrText {
    Int(i64),
    Float(f64),
    Text(String),
}

/// Parses `30` (seconds), `2.5`, `500ms`, `1m 30s`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if let Ok(seconds) = text.parse::<f64>() {
        return seconds_to_duration(seconds);
    }
    humantime::parse_duration(text).map_err(|e| format!("invalid duration {text:?}: {e}"))
}

fn seconds_to_duration(seconds: f64) -> Result<Duration, String> {
    Duration::try_from_secs_f64(seconds).map_err(|_| format!("invalid duration {seconds}"))
}

/// `#[serde(with = "units::duration")]`: seconds as a number, or a humantime string.
pub mod duration {
    use super::*;

    /// Deserialises a [`Duration`].
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        match NumberOrText::deserialize(d)? {
            NumberOrText::Int(n) => seconds_to_duration(n as f64).map_err(de::Error::custom),
            NumberOrText::Float(f) => seconds_to_duration(f).map_err(de::Error::custom),
            NumberOrText::Text(t) => parse_duration(&t).map_err(de::Error::custom),
        }
    }

    /// Serialises as a humantime string.
    pub fn serialize<S: serde::Serializer>(value: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*value).to_string())
    }
}

/// `#[serde(with = "units::duration_opt")]`: like [`duration`], optional.
pub mod duration_opt {
    use super::*;

    /// Deserialises an optional [`Duration`].
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        super::duration::deserialize(d).map(Some)
    }

    /// Serialises as a humantime string, or nothing.
    pub fn serialize<S: serde::Serializer>(
        value: &Option<Duration>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match value {
            Some(v) => super::duration::serialize(v, s),
            None => s.serialize_none(),
        }
    }
}

/// A flag or a word: `true`, `1`, `"yes"` are flags; other strings are words.
#[derive(Debug)]
pub enum FlagOrWord {
    /// A boolean.
    Flag(bool),
    /// Any other string.
    Word(String),
}

impl<'de> Deserialize<'de> for FlagOrWord {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Bool(bool),
            Int(i64),
            Text(String),
        }
        Ok(match Raw::deserialize(d)? {
            Raw::Bool(b) => FlagOrWord::Flag(b),
            Raw::Int(0) => FlagOrWord::Flag(false),
            Raw::Int(1) => FlagOrWord::Flag(true),
            Raw::Int(n) => {
                return Err(de::Error::custom(format!(
                    "expected a flag (true/false, 1/0), found {n}"
                )));
            }
            Raw::Text(t) => match t.trim().to_ascii_lowercase().as_str() {
                "1" | "true" | "yes" | "on" => FlagOrWord::Flag(true),
                "0" | "false" | "no" | "off" => FlagOrWord::Flag(false),
                _ => FlagOrWord::Word(t),
            },
        })
    }
}

/// `#[serde(deserialize_with = "units::flag")]`: `true`/`false`, `1`/`0`, `yes`/`no`, `on`/`off`.
pub fn flag<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
    match FlagOrWord::deserialize(d)? {
        FlagOrWord::Flag(b) => Ok(b),
        FlagOrWord::Word(w) => Err(de::Error::custom(format!(
            "expected a flag (true/false, 1/0), found {w:?}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_bytes("64MiB"), Ok(64 << 20));
        assert_eq!(parse_bytes("1.5 GB"), Ok(1_500_000_000));
        assert_eq!(parse_bytes("512k"), Ok(512_000));
        assert_eq!(parse_bytes("1024"), Ok(1024));
        assert!(parse_bytes("12 XB").is_err());
        assert!(parse_bytes("MiB").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("2.5"), Ok(Duration::from_millis(2500)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("1m 30s"), Ok(Duration::from_secs(90)));
        assert!(parse_duration("-1").is_err());
        assert!(parse_duration("soon").is_err());
    }
}
