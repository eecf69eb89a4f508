//! The reference tables of `docs/plugins.md` checked against the code, so the
//! documentation cannot drift: every key a manifest (`NAME.toml`) or the
//! host's `[plugins]` section accepts must have a row, no row may name a key
//! the code does not accept, and a default written in a table must be what
//! the code fills in.
//!
//! A table is checked when an HTML comment names what it documents just above
//! it: `<!-- reference: manifest SECTION -->` (`SECTION` a dotted path such
//! as `capabilities.http`, nothing for the top level) or
//! `<!-- reference: config SECTION -->` (e.g. `plugins.limits`). The first
//! cell of each row holds the key in backticks; a `default` column, when the
//! table has one, holds the default value in backticks (a cell without
//! backticks, such as "none", is not compared).
//!
//! The code's keys come from the serde `Deserialize` impls themselves
//! ([`keys_of`]): a probing deserialiser walks the derived impls and records
//! the field names each struct declares, so a field added to `RawManifest`,
//! a capability's `Section` or `PluginsConfig` shows up here without this
//! file knowing it exists.

use super::*;
use crate::config::PluginsConfig;
use serde::de::{self, DeserializeOwned, IntoDeserializer, Visitor};
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};

/// The document under test, relative to this file.
const DOC: &str = include_str!("../../../../docs/plugins.md");
const DOC_PATH: &str = "docs/plugins.md";

// --- The code's keys -------------------------------------------------------

/// What a probe found at the end of its path.
#[derive(Debug, Clone, Copy)]
enum Found {
    /// A struct (a TOML table with fixed keys): its field names.
    Struct(&'static [&'static str]),
    /// A map with free-form keys (`[config]`, `queries`).
    Map,
    /// Anything else: a value.
    Leaf,
}

/// The error that stops a probe once it has found what it looked for.
#[derive(Debug)]
struct Stop;

impl std::fmt::Display for Stop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("probe stopped")
    }
}

impl std::error::Error for Stop {}

impl de::Error for Stop {
    fn custom<T: std::fmt::Display>(_: T) -> Self {
        Stop
    }
}

/// A deserialiser that follows `path` (field names) into a type and records
/// what it finds there. Options and sequences are looked through, so
/// `Option<Section>` and `Vec<ConsumeSection>` are tables too.
struct Probe<'p> {
    path: &'p [&'static str],
    found: &'p RefCell<Option<Found>>,
}

impl Probe<'_> {
    fn record(&self, found: Found) -> Stop {
        *self.found.borrow_mut() = Some(found);
        Stop
    }
}

impl<'de> de::Deserializer<'de> for Probe<'_> {
    type Error = Stop;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Stop> {
        Err(self.record(Found::Leaf))
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, Stop> {
        match self.path.split_first() {
            None => Err(self.record(Found::Struct(fields))),
            Some((key, rest)) => visitor.visit_map(OneEntry {
                key: Some(key),
                value: Some(Probe {
                    path: rest,
                    found: self.found,
                }),
            }),
        }
    }

    fn deserialize_map<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Stop> {
        Err(self.record(Found::Map))
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Stop> {
        visitor.visit_some(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Stop> {
        visitor.visit_seq(OneEntry {
            key: None,
            value: Some(self),
        })
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, Stop> {
        visitor.visit_newtype_struct(self)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct tuple tuple_struct enum identifier
        ignored_any
    }
}

/// A map of one entry (`key` = the probe) or a sequence of one element.
struct OneEntry<'p> {
    key: Option<&'static str>,
    value: Option<Probe<'p>>,
}

impl<'de> de::MapAccess<'de> for OneEntry<'_> {
    type Error = Stop;

    fn next_key_seed<K: de::DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, Stop> {
        match self.key.take() {
            Some(key) => seed.deserialize(key.into_deserializer()).map(Some),
            None => Ok(None),
        }
    }

    fn next_value_seed<V: de::DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, Stop> {
        let probe = self.value.take().ok_or(Stop)?;
        seed.deserialize(probe)
    }
}

impl<'de> de::SeqAccess<'de> for OneEntry<'_> {
    type Error = Stop;

    fn next_element_seed<T: de::DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, Stop> {
        match self.value.take() {
            Some(probe) => seed.deserialize(probe).map(Some),
            None => Ok(None),
        }
    }
}

/// What `T`'s `Deserialize` expects at `path`.
fn shape<T: DeserializeOwned>(path: &[&'static str]) -> Option<Found> {
    let found = RefCell::new(None);
    let _ = T::deserialize(Probe {
        path,
        found: &found,
    });
    found.into_inner()
}

/// Every table `T` reads, by dotted path under `prefix` (`""` for the top
/// level), with the keys it accepts. A struct-valued field is a table of its
/// own, not a key; a free-form map (`[config]`, `queries`) is a key.
fn keys_of<T: DeserializeOwned>(prefix: &str) -> BTreeMap<String, BTreeSet<String>> {
    fn walk<T: DeserializeOwned>(
        prefix: &str,
        path: &mut Vec<&'static str>,
        out: &mut BTreeMap<String, BTreeSet<String>>,
    ) {
        let Some(Found::Struct(fields)) = shape::<T>(path) else {
            return;
        };
        let section = std::iter::once(prefix)
            .chain(path.iter().copied())
            .filter(|p| !p.is_empty())
            .collect::<Vec<_>>()
            .join(".");
        let mut keys = BTreeSet::new();
        for field in fields {
            path.push(field);
            match shape::<T>(path) {
                Some(Found::Struct(_)) => walk::<T>(prefix, path, out),
                Some(Found::Map | Found::Leaf) | None => {
                    keys.insert(field.to_string());
                }
            }
            path.pop();
        }
        if !keys.is_empty() {
            out.insert(section, keys);
        }
    }
    let mut out = BTreeMap::new();
    walk::<T>(prefix, &mut Vec::new(), &mut out);
    out
}

// --- The document's tables -------------------------------------------------

/// One checked table of the document.
#[derive(Debug)]
struct Table {
    /// `manifest` or `config`.
    kind: String,
    /// The dotted section it documents (`""`: the top level).
    section: String,
    /// Each row: its key, its default cell's value in backticks (if any),
    /// and the document's line number.
    rows: Vec<(String, Option<String>, usize)>,
}

/// The text of the first pair of backticks in `cell`.
fn backticked(cell: &str) -> Option<String> {
    let (_, rest) = cell.split_once('`')?;
    let (inner, _) = rest.split_once('`')?;
    Some(inner.to_string())
}

/// The cells of a Markdown table row.
fn cells(line: &str) -> Vec<String> {
    let line = line.trim().trim_start_matches('|').trim_end_matches('|');
    line.split('|').map(|c| c.trim().to_string()).collect()
}

/// Every table marked `<!-- reference: KIND SECTION -->`.
fn tables(doc: &str) -> Vec<Table> {
    let lines: Vec<&str> = doc.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i].trim();
        i += 1;
        let Some(marker) = line
            .strip_prefix("<!-- reference:")
            .and_then(|m| m.strip_suffix("-->"))
        else {
            continue;
        };
        let mut words = marker.split_whitespace();
        let kind = words.next().unwrap_or_default().to_string();
        let section = words.next().unwrap_or_default().to_string();
        // The table starts at the next line that begins with `|`.
        while i < lines.len() && !lines[i].trim_start().starts_with('|') {
            assert!(
                lines[i].trim().is_empty(),
                "{DOC_PATH}:{}: expected a table after the reference marker",
                i + 1
            );
            i += 1;
        }
        let header = cells(lines.get(i).copied().unwrap_or_default());
        let default_column = header
            .iter()
            .position(|h| h.eq_ignore_ascii_case("default"));
        i += 2; // the header and the |---| line
        let mut rows = Vec::new();
        while i < lines.len() && lines[i].trim_start().starts_with('|') {
            let row = cells(lines[i]);
            let key = row.first().and_then(|c| backticked(c)).unwrap_or_else(|| {
                panic!(
                    "{DOC_PATH}:{}: the first cell must hold the key in backticks",
                    i + 1
                )
            });
            let default = default_column
                .and_then(|c| row.get(c))
                .and_then(|c| backticked(c));
            rows.push((key, default, i + 1));
            i += 1;
        }
        out.push(Table {
            kind,
            section,
            rows,
        });
    }
    out
}

/// The keys the document lists for each section of `kind`.
fn documented(tables: &[Table], kind: &str) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for table in tables.iter().filter(|t| t.kind == kind) {
        let keys = out.entry(table.section.clone()).or_default();
        for (key, _, line) in &table.rows {
            assert!(
                keys.insert(key.clone()),
                "{DOC_PATH}:{line}: `{key}` is listed twice for [{}]",
                table.section
            );
        }
    }
    out
}

/// Every difference between the code's keys and the document's, one line each.
fn drift(
    kind: &str,
    code: &BTreeMap<String, BTreeSet<String>>,
    doc: &BTreeMap<String, BTreeSet<String>>,
) -> Vec<String> {
    let name = |s: &str| {
        if s.is_empty() {
            "the top level".to_string()
        } else {
            format!("[{s}]")
        }
    };
    let empty = BTreeSet::new();
    let sections: BTreeSet<&String> = code.keys().chain(doc.keys()).collect();
    let mut out = Vec::new();
    for section in sections {
        let in_code = code.get(section).unwrap_or(&empty);
        let in_doc = doc.get(section).unwrap_or(&empty);
        for key in in_code.difference(in_doc) {
            out.push(format!(
                "{kind} key `{key}` of {} is accepted by the code but not documented: \
                 add a row to the table marked `<!-- reference: {kind} {section} -->` in {DOC_PATH}",
                name(section)
            ));
        }
        for key in in_doc.difference(in_code) {
            out.push(format!(
                "{kind} key `{key}` of {} is documented in {DOC_PATH} but the code does not accept it",
                name(section)
            ));
        }
    }
    out
}

/// A default as written in the document, as a TOML value: a number, boolean
/// or array as such, anything else (`5s`, `64MiB`) as a string.
fn toml_value(text: &str) -> String {
    match toml::from_str::<toml::Table>(&format!("v = {text}")) {
        Ok(_) => text.to_string(),
        Err(_) => format!("{text:?}"),
    }
}

// --- The tests --------------------------------------------------------------

#[test]
fn the_probe_sees_every_table_and_key_of_the_manifest() {
    // The probe itself, on keys this test knows: if it stopped finding
    // nested tables, the comparison below would pass vacuously.
    let code = keys_of::<RawManifest>("");
    let top = &code[""];
    for key in ["kind", "interval", "for", "config", "breaker_max_backoff"] {
        assert!(top.contains(key), "{key} missing from {top:?}");
    }
    assert!(!top.contains("capabilities"), "a table, not a key");
    assert!(code["capabilities.http"].contains("self"));
    assert!(code["capabilities.sql"].contains("queries"));
    assert!(code["capabilities.rabbitmq.consume"].contains("queue"));
    for capability in [
        "http", "redis", "rabbitmq", "sql", "storage", "files", "tcp", "aws",
    ] {
        assert!(
            code.contains_key(&format!("capabilities.{capability}")),
            "{capability}: {:?}",
            code.keys()
        );
    }
    let config = keys_of::<PluginsConfig>("plugins");
    assert!(config["plugins.limits"].contains("max_memory_limit"));
    assert!(config["plugins"].contains("env_allow"));
}

#[test]
fn the_manifest_reference_lists_exactly_the_keys_the_code_accepts() {
    let tables = tables(DOC);
    let code = keys_of::<RawManifest>("");
    let doc = documented(&tables, "manifest");
    let problems = drift("manifest", &code, &doc);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_plugins_config_reference_lists_exactly_the_keys_the_code_accepts() {
    let tables = tables(DOC);
    let code = keys_of::<PluginsConfig>("plugins");
    let doc = documented(&tables, "config");
    let problems = drift("config", &code, &doc);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_manifest_defaults_in_the_reference_are_the_codes() {
    let (defaults, limits) = (PluginDefaults::default(), PluginLimits::default());
    let expected = serde_json::to_value(Manifest::defaults(&defaults, &limits)).unwrap();
    let tables = tables(DOC);
    let mut checked = 0;
    for table in tables
        .iter()
        .filter(|t| t.kind == "manifest" && t.section.is_empty())
    {
        for (key, default, line) in &table.rows {
            let Some(default) = default else { continue };
            let text = format!("{key} = {}", toml_value(default));
            let parsed = Manifest::parse(&text, &defaults, &limits)
                .unwrap_or_else(|e| panic!("{DOC_PATH}:{line}: `{text}` does not parse: {e:#}"));
            let parsed = serde_json::to_value(parsed).unwrap();
            assert_eq!(
                parsed, expected,
                "{DOC_PATH}:{line}: the documented default of `{key}` ({default}) is not the code's"
            );
            checked += 1;
        }
    }
    assert!(checked >= 10, "only {checked} defaults documented");
}

#[test]
fn the_plugins_config_defaults_in_the_reference_are_the_codes() {
    let tables = tables(DOC);
    let expected = format!("{:?}", PluginsConfig::default());
    let mut checked = 0;
    for table in tables.iter().filter(|t| t.kind == "config") {
        let section = table.section.strip_prefix("plugins").unwrap_or_else(|| {
            panic!(
                "config tables document [plugins...], not [{}]",
                table.section
            )
        });
        for (key, default, line) in &table.rows {
            let Some(default) = default else { continue };
            let text = match section.strip_prefix('.') {
                Some(sub) => format!("[{sub}]\n{key} = {}", toml_value(default)),
                None => format!("{key} = {}", toml_value(default)),
            };
            let parsed: PluginsConfig = toml::from_str(&text)
                .unwrap_or_else(|e| panic!("{DOC_PATH}:{line}: `{text}` does not parse: {e}"));
            assert_eq!(
                format!("{parsed:?}"),
                expected,
                "{DOC_PATH}:{line}: the documented default of `plugins{section}.{key}` ({default}) is not the code's"
            );
            checked += 1;
        }
    }
    assert!(checked >= 10, "only {checked} defaults documented");
}

#[test]
fn drift_names_the_missing_and_the_extra_key() {
    // A test of the comparison, so a broken one cannot pass silently.
    let set = |keys: &[&str]| keys.iter().map(|k| k.to_string()).collect::<BTreeSet<_>>();
    let code = BTreeMap::from([("capabilities.http".to_string(), set(&["allow", "timeout"]))]);
    let doc = BTreeMap::from([("capabilities.http".to_string(), set(&["allow", "tmeout"]))]);
    let problems = drift("manifest", &code, &doc);
    assert_eq!(problems.len(), 2, "{problems:?}");
    assert!(
        problems[0].contains(
            "`timeout` of [capabilities.http] is accepted by the code but not documented"
        )
    );
    assert!(problems[1].contains("`tmeout` of [capabilities.http] is documented"));
}
