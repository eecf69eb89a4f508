//! What makes a new sample storable: valid names, bounded sizes, the host's
//! reserved prefixes, the `plugin` label convention and the lint rules.
//!
//! Checked once per *new* series: a sample that matches a series already held
//! was valid when that series was created, so updates skip all of this except
//! [`value`], the one property that changes with every sample.
//!
//! Every source, trusted or not, is held to what keeps `/metrics` well formed:
//! valid names, no control character in a label value (NUL, ESC, BEL, CR, ...;
//! a tab or a newline is fine, the exposition format escapes `\n`), and a
//! counter's value is a finite number ≥ 0.

use super::lint::{self, LintProblem};
use super::{DropReason, SourceKind};
use crate::model::{MetricKind, Sample};
use std::borrow::Cow;
use std::fmt;

/// Longest metric name a plugin may use (bytes, after `_total` is appended).
pub const MAX_NAME_LEN: usize = 200;
/// Longest label name a plugin may use (bytes).
pub const MAX_LABEL_NAME_LEN: usize = 100;
/// Longest label value a plugin may use (bytes).
pub const MAX_LABEL_VALUE_LEN: usize = 1024;
/// Most labels one plugin sample may carry (the host's `plugin` label not counted).
pub const MAX_LABELS: usize = 32;
/// Longest help text kept (bytes); longer text is cut at a character boundary.
pub const MAX_HELP_LEN: usize = 1024;
/// Name prefixes only host sources may use.
pub const RESERVED_PREFIXES: &[&str] = &["wasmon_", "monitoring_"];
/// The label the host adds to every plugin series, naming the plugin.
pub const PLUGIN_LABEL: &str = "plugin";
/// What a plugin's own `plugin` label is renamed to (Prometheus' `honor_labels: false`).
pub const EXPORTED_PLUGIN_LABEL: &str = "exported_plugin";

/// Why a sample was not stored, with what a human needs to fix it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Problem {
    InvalidName(&'static str),
    ReservedName(&'static str),
    /// The label at this index of the sample.
    Label(usize, &'static str),
    LintLabel(usize, LintProblem),
    TooManyLabels,
    Lint(LintProblem),
    TypeConflict(MetricKind),
    SeriesLimit(usize),
    GlobalLimit(usize),
    ReservedLimit(usize),
    /// The label at this index has a control character in its value.
    ControlCharacter(usize),
    InvalidValue(&'static str),
    Duplicate,
    UnknownSource,
}

impl Problem {
    /// The reason it is counted under.
    pub(crate) fn reason(self) -> DropReason {
        match self {
            Problem::InvalidName(_) => DropReason::InvalidName,
            Problem::ReservedName(_) => DropReason::ReservedName,
            Problem::Label(..) | Problem::TooManyLabels => DropReason::InvalidLabel,
            Problem::Lint(_) | Problem::LintLabel(..) => DropReason::Lint,
            Problem::TypeConflict(_) => DropReason::TypeConflict,
            Problem::SeriesLimit(_) => DropReason::SeriesLimit,
            Problem::GlobalLimit(_) => DropReason::GlobalLimit,
            Problem::ReservedLimit(_) => DropReason::ReservedLimit,
            Problem::ControlCharacter(_) => DropReason::ControlCharacter,
            Problem::InvalidValue(_) => DropReason::InvalidValue,
            Problem::Duplicate => DropReason::Duplicate,
            Problem::UnknownSource => DropReason::UnknownSource,
        }
    }

    /// One line for humans: ``sample `fooBar`: metric names should ...``.
    pub(crate) fn describe(self, sample: &Sample) -> String {
        let label = |i: usize| sample.labels.get(i).map_or("", |(n, _)| n.as_str());
        let name = truncate(&sample.name, 64);
        let text = match self {
            Problem::InvalidName(text) => text.to_string(),
            Problem::ReservedName(prefix) => {
                format!("names starting with `{prefix}` are reserved for the host")
            }
            Problem::Label(i, text) => format!("label `{}`: {text}", truncate(label(i), 64)),
            Problem::LintLabel(i, p) => format!("label `{}`: {p}", truncate(label(i), 64)),
            Problem::TooManyLabels => format!("more than {MAX_LABELS} labels"),
            Problem::Lint(p) => p.to_string(),
            Problem::TypeConflict(held) => {
                format!("the name is already held as a {}", held.as_str())
            }
            Problem::SeriesLimit(max) => format!("the source already holds its {max} series"),
            Problem::GlobalLimit(max) => {
                format!("the plugins already hold the {max} series of `store.max_series`")
            }
            Problem::ReservedLimit(max) => format!(
                "the host's sources already hold the {max} series of `store.reserved_series`"
            ),
            Problem::ControlCharacter(i) => format!(
                "label `{}`: the value has a control character",
                truncate(label(i), 64)
            ),
            Problem::InvalidValue(text) => text.to_string(),
            Problem::Duplicate => "the same series twice in one answer".to_string(),
            Problem::UnknownSource => "the source was removed".to_string(),
        };
        format!("sample `{name}`: {text}")
    }
}

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A new sample, checked: its exported name and exported labels sorted by name.
#[derive(Debug)]
pub(crate) struct Checked<'a> {
    pub(crate) name: String,
    pub(crate) labels: Vec<(&'a str, &'a str)>,
}

/// The name a sample is exported under: counters get `_total` unless they have it.
pub(crate) fn exported_name<'a>(buf: &'a mut String, name: &'a str, kind: MetricKind) -> &'a str {
    if kind == MetricKind::Counter && !name.ends_with("_total") {
        buf.clear();
        buf.push_str(name);
        buf.push_str("_total");
        buf
    } else {
        name
    }
}

/// The name a label is exported under for a source.
pub(crate) fn exported_label(name: &str, plugin: bool) -> &str {
    if plugin && (name == PLUGIN_LABEL) {
        EXPORTED_PLUGIN_LABEL
    } else {
        name
    }
}

/// Checks a sample that matches no series yet. Host sources are trusted: only
/// what would break the exposition format is checked. A derived source's name
/// is trusted but its labels come from a plugin, so they are checked like a
/// plugin's. Plugins are checked for everything.
pub(crate) fn check(sample: &Sample, kind: SourceKind) -> Result<Checked<'_>, Problem> {
    let plugin = matches!(kind, SourceKind::Plugin { .. });
    let strict_labels = !matches!(kind, SourceKind::Host);
    check_metric_name(&sample.name)?;
    value(sample)?;
    if strict_labels && sample.labels.len() > MAX_LABELS {
        return Err(Problem::TooManyLabels);
    }
    if plugin
        && let Some(prefix) = RESERVED_PREFIXES
            .iter()
            .find(|p| starts_with_ignore_case(&sample.name, p))
    {
        return Err(Problem::ReservedName(prefix));
    }
    let mut buf = String::new();
    let name = exported_name(&mut buf, &sample.name, sample.kind).to_string();
    if plugin {
        if name.len() > MAX_NAME_LEN {
            return Err(Problem::InvalidName("metric name is too long"));
        }
        lint::check_name(&name, sample.kind).map_err(Problem::Lint)?;
    }
    let mut labels = Vec::with_capacity(sample.labels.len());
    for (i, (label, value)) in sample.labels.iter().enumerate() {
        if !is_label_name(label) {
            return Err(Problem::Label(i, "invalid label name"));
        }
        if has_control_character(value) {
            return Err(Problem::ControlCharacter(i));
        }
        if strict_labels {
            if label.starts_with("__") {
                return Err(Problem::Label(
                    i,
                    "label names starting with `__` are reserved",
                ));
            }
            if label.len() > MAX_LABEL_NAME_LEN {
                return Err(Problem::Label(i, "label name is too long"));
            }
            if value.len() > MAX_LABEL_VALUE_LEN {
                return Err(Problem::Label(i, "label value is too long"));
            }
            lint::check_label_name(label).map_err(|p| Problem::LintLabel(i, p))?;
        }
        labels.push((exported_label(label, plugin), value.as_str()));
    }
    labels.sort_unstable_by(|a, b| a.0.cmp(b.0));
    if let Some(at) = labels.windows(2).position(|w| w[0].0 == w[1].0) {
        let dup = labels[at].0;
        let index = sample
            .labels
            .iter()
            .rposition(|(n, _)| exported_label(n, plugin) == dup)
            .unwrap_or(0);
        return Err(Problem::Label(index, "duplicate label name"));
    }
    Ok(Checked { name, labels })
}

/// Whether a sample's value may be stored: a counter's must be a finite
/// number ≥ 0 (`-0` included); a gauge may be anything, `NaN` and infinities
/// included.
pub(crate) fn value(sample: &Sample) -> Result<(), Problem> {
    if sample.kind != MetricKind::Counter {
        return Ok(());
    }
    let v = sample.value;
    if v.is_nan() {
        Err(Problem::InvalidValue("a counter's value is NaN"))
    } else if v < 0.0 {
        Err(Problem::InvalidValue("a counter's value is negative"))
    } else if v.is_infinite() {
        Err(Problem::InvalidValue("a counter's value is infinite"))
    } else {
        Ok(())
    }
}

/// A control character that must not reach `/metrics` raw: every Unicode
/// control character (C0, DEL, C1) but tab and newline.
fn is_forbidden_control(c: char) -> bool {
    c.is_control() && c != '\t' && c != '\n'
}

/// Whether `text` has a character [`is_forbidden_control`] refuses.
pub(crate) fn has_control_character(text: &str) -> bool {
    // Every control character is below U+00A0; most text is ASCII printable.
    text.bytes().any(|b| b < 0x20 || b == 0x7f || b == 0xc2)
        && text.chars().any(is_forbidden_control)
}

/// Help text as kept: empty text is no text; long text is cut; control
/// characters other than tab and newline become U+FFFD.
pub(crate) fn help(text: Option<&str>) -> Option<Cow<'_, str>> {
    let text = text.map(str::trim).filter(|t| !t.is_empty())?;
    if !has_control_character(text) {
        return Some(Cow::Borrowed(truncate(text, MAX_HELP_LEN)));
    }
    let mut clean: String = text
        .chars()
        .map(|c| {
            if is_forbidden_control(c) {
                '\u{fffd}'
            } else {
                c
            }
        })
        .collect();
    let end = truncate(&clean, MAX_HELP_LEN).len();
    clean.truncate(end);
    Some(Cow::Owned(clean))
}

fn check_metric_name(name: &str) -> Result<(), Problem> {
    let bytes = name.as_bytes();
    match bytes.first() {
        None => return Err(Problem::InvalidName("metric name is empty")),
        Some(b) if b.is_ascii_digit() => {
            return Err(Problem::InvalidName("metric name starts with a digit"));
        }
        _ => {}
    }
    if bytes.contains(&b':') {
        return Err(Problem::InvalidName("metric names should not contain ':'"));
    }
    if !bytes
        .iter()
        .all(|b| b.is_ascii_alphanumeric() || *b == b'_')
    {
        return Err(Problem::InvalidName(
            "metric name has characters outside [a-zA-Z0-9_]",
        ));
    }
    Ok(())
}

/// `[a-zA-Z_][a-zA-Z0-9_]*`.
pub(crate) fn is_label_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    bytes.first().is_some_and(|b| !b.is_ascii_digit())
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || *b == b'_')
}

fn starts_with_ignore_case(text: &str, prefix: &str) -> bool {
    text.len() >= prefix.len()
        && text.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
}

/// `text` cut to at most `max` bytes at a character boundary.
pub(crate) fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    type Expect<'a> = Result<(&'a str, &'a [(&'a str, &'a str)]), &'a str>;

    const PLUGIN: SourceKind = SourceKind::Plugin { max_series: 10 };

    #[track_caller]
    fn check_plugin(sample: Sample, expect: Expect<'_>) {
        let got = check(&sample, PLUGIN)
            .map(|c| (c.name.clone(), c.labels.clone()))
            .map_err(|p| p.describe(&sample));
        match (got, expect) {
            (Ok((name, labels)), Ok((want_name, want_labels))) => {
                assert_eq!(name, want_name);
                assert_eq!(labels, want_labels);
            }
            (Err(text), Err(want)) => assert!(text.contains(want), "{text:?} lacks {want:?}"),
            (got, want) => panic!("got {got:?}, want {want:?}"),
        }
    }

    #[test]
    fn plugin_samples() {
        check_plugin(
            Sample::counter("jobs", 1.0).label("queue", "a"),
            Ok(("jobs_total", &[("queue", "a")])),
        );
        check_plugin(
            Sample::gauge("depth", 1.0)
                .label("plugin", "x")
                .label("a", "1"),
            Ok(("depth", &[("a", "1"), ("exported_plugin", "x")])),
        );
        check_plugin(Sample::gauge("", 1.0), Err("metric name is empty"));
        check_plugin(Sample::gauge("1x", 1.0), Err("starts with a digit"));
        check_plugin(Sample::gauge("a:b", 1.0), Err("should not contain ':'"));
        check_plugin(Sample::gauge("a-b", 1.0), Err("outside [a-zA-Z0-9_]"));
        check_plugin(Sample::gauge("wasmon_x", 1.0), Err("reserved for the host"));
        check_plugin(Sample::gauge("Monitoring_x", 1.0), Err("reserved"));
        check_plugin(
            Sample::gauge("fooBar", 1.0),
            Err("sample `fooBar`: metric names should be written in 'snake_case'"),
        );
        check_plugin(Sample::gauge("a".repeat(201), 1.0), Err("too long"));
        check_plugin(
            Sample::gauge("x", 1.0).label("__name__", "y"),
            Err("label `__name__`: label names starting with `__` are reserved"),
        );
        check_plugin(
            Sample::gauge("x", 1.0).label("a-b", "y"),
            Err("invalid label name"),
        );
        check_plugin(
            Sample::gauge("x", 1.0).label("", "y"),
            Err("invalid label name"),
        );
        check_plugin(
            Sample::gauge("x", 1.0).label("a", "x".repeat(1025)),
            Err("label value is too long"),
        );
        check_plugin(
            Sample::gauge("x", 1.0).label("a", "1").label("a", "2"),
            Err("label `a`: duplicate label name"),
        );
        check_plugin(
            Sample::gauge("x", 1.0)
                .label("plugin", "1")
                .label("exported_plugin", "2"),
            Err("duplicate label name"),
        );
        check_plugin(
            Sample::gauge("x", 1.0).label("le", "1"),
            Err("\"le\" label"),
        );
        let mut many = Sample::gauge("x", 1.0);
        for i in 0..33 {
            many = many.label(format!("l{i}"), "v");
        }
        check_plugin(many, Err("more than 32 labels"));
    }

    #[test]
    fn host_samples_are_trusted_but_must_be_well_formed() {
        let s = Sample::gauge("wasmon_cpu_usage_ratio", 0.5).label("plugin", "p");
        let c = check(&s, SourceKind::Host).unwrap();
        assert_eq!(c.name, "wasmon_cpu_usage_ratio");
        assert_eq!(c.labels, [("plugin", "p")]);
        assert!(check(&Sample::gauge("a b", 1.0), SourceKind::Host).is_err());
        assert!(
            check(
                &Sample::gauge("x", 1.0).label("a", "1").label("a", "2"),
                SourceKind::Host
            )
            .is_err()
        );
        // Well formed is for everyone: control characters and bad counters.
        let cr = Sample::gauge("wasmon_x", 1.0).label("mountpoint", "/mnt/a\rb");
        assert_eq!(
            check(&cr, SourceKind::Host).map(|_| ()),
            Err(Problem::ControlCharacter(0))
        );
        let nan = Sample::counter("wasmon_y", f64::NAN);
        assert_eq!(
            check(&nan, SourceKind::Host)
                .map(|_| ())
                .map_err(Problem::reason),
            Err(DropReason::InvalidValue)
        );
    }

    #[test]
    fn derived_sources_have_host_names_and_plugin_labels() {
        let derived = SourceKind::Derived { max_series: 10 };
        let ok = Sample::gauge("wasmon_alert_active", 1.0).label("plugin", "r");
        let c = check(&ok, derived).unwrap();
        assert_eq!(
            c.labels,
            [("plugin", "r")],
            "no renaming: no host label is added"
        );
        for bad in [
            ok.clone().label("__name__", "x"),
            ok.clone().label("clientId", "x"),
            ok.clone().label("long", "x".repeat(1025)),
        ] {
            assert!(check(&bad, derived).is_err(), "{bad:?}");
            assert!(check(&bad, SourceKind::Host).is_ok(), "{bad:?}");
        }
    }

    #[test]
    fn control_characters_in_label_values() {
        for value in [
            "nul\0",
            "esc\x1b[31m",
            "bel\x07",
            "cr\r",
            "del\x7f",
            "csi\u{9b}",
        ] {
            check_plugin(
                Sample::gauge("x", 1.0).label("a", "fine").label("v", value),
                Err("label `v`: the value has a control character"),
            );
        }
        for value in [
            "tab\there",
            "new\nline",
            "☃ héllo",
            "\u{a0}nbsp",
            "\u{fffd}",
        ] {
            check_plugin(
                Sample::gauge("x", 1.0).label("v", value),
                Ok(("x", &[("v", value)])),
            );
        }
    }

    #[test]
    fn counter_values() {
        for (v, ok) in [
            (0.0, true),
            (-0.0, true),
            (1e300, true),
            (-1.0, false),
            (f64::NAN, false),
            (f64::INFINITY, false),
            (f64::NEG_INFINITY, false),
        ] {
            assert_eq!(value(&Sample::counter("c", v)).is_ok(), ok, "{v}");
            assert!(
                value(&Sample::gauge("g", v)).is_ok(),
                "gauges take anything: {v}"
            );
        }
        check_plugin(
            Sample::counter("c", -1.0),
            Err("a counter's value is negative"),
        );
        check_plugin(
            Sample::counter("c", f64::NAN),
            Err("a counter's value is NaN"),
        );
    }

    #[test]
    fn help_and_truncation() {
        assert_eq!(help(Some("  ")), None);
        assert_eq!(
            help(Some(" Queue depth. ")).as_deref(),
            Some("Queue depth.")
        );
        let long = "é".repeat(600);
        assert_eq!(help(Some(&long)).map(|h| h.len()), Some(1024));
        assert_eq!(
            help(Some("a\x1b[31mred\r\nx\ty\0")).as_deref(),
            Some("a\u{fffd}[31mred\u{fffd}\nx\ty\u{fffd}")
        );
        let long = "\0".repeat(2000);
        assert_eq!(help(Some(&long)).map(|h| h.len()), Some(1023));
        assert_eq!(truncate("héllo", 2), "h");
    }
}
