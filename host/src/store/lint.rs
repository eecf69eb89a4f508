//! The metric naming rules `promtool check metrics` enforces (the Go client's
//! `promlint`), applied to plugin samples before they are stored, so that
//! `/metrics` always passes the check.
//!
//! Rules, each checked against the *exported* name (after `_total` is appended
//! to counters) and the exported label names:
//! - counters end in `_total`; other kinds do not;
//! - no base-unit problems: no non-base units (`minutes`, `hours`, `days`,
//!   `weeks`, `bits`, `inches`, `yards`, `miles`, `calories`, `pounds`,
//!   `ounces`, `fahrenheit`, `rankine`, `kelvin(s)`) and no SI/IEC prefixes on
//!   a unit (`milliseconds`, `kilobytes`, `gibibytes`, ...). promlint maps
//!   `kelvin` to `celsius` in older releases, so it is rejected here too; and,
//!   beyond promlint, `percent`/`percentage` (prometheus.io: use a 0–1 ratio);
//! - no abbreviated units as a word: `s`, `ms`, `us`, `ns`, `sec`, `b`, `kb`,
//!   `mb`, `gb`, `tb`, `pb`, `m`, `h`, `d`;
//! - no metric type as a word: `counter`, `gauge`, `histogram`, `summary`;
//! - no `_bucket`, `_count` or `_sum` suffix and no `le` or `quantile` label
//!   (reserved for histograms and summaries);
//! - no camelCase (`[a-z][A-Z]`) in the name or any label name.
//!
//! Colons and duplicate label names, also promlint rules, are rejected earlier
//! as invalid names and labels; help text is always present because the store
//! generates one when a sample brings none.

use crate::model::MetricKind;
use std::fmt;

/// A naming rule a sample breaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LintProblem {
    /// A fixed message.
    Text(&'static str),
    /// A unit that is not a base unit: `(prefix, unit, base)`.
    Unit(&'static str, &'static str, &'static str),
}

impl fmt::Display for LintProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LintProblem::Text(text) => f.write_str(text),
            LintProblem::Unit(prefix, unit, base) => {
                write!(f, "use base unit \"{base}\" instead of \"{prefix}{unit}\"")
            }
        }
    }
}

/// Units promlint knows, with their base unit.
const UNITS: &[(&str, &str)] = &[
    ("amperes", "amperes"),
    ("bytes", "bytes"),
    ("celsius", "celsius"),
    ("grams", "grams"),
    ("joules", "joules"),
    ("meters", "meters"),
    ("metres", "metres"),
    ("seconds", "seconds"),
    ("volts", "volts"),
    ("minutes", "seconds"),
    ("hours", "seconds"),
    ("days", "seconds"),
    ("weeks", "seconds"),
    ("kelvin", "celsius"),
    ("kelvins", "celsius"),
    ("fahrenheit", "celsius"),
    ("rankine", "celsius"),
    ("inches", "meters"),
    ("yards", "meters"),
    ("miles", "meters"),
    ("bits", "bytes"),
    ("calories", "joules"),
    ("pounds", "grams"),
    ("ounces", "grams"),
    // Not promlint: prometheus.io naming asks for ratios.
    ("percent", "ratio"),
    ("percentage", "ratio"),
];

/// Prefixes promlint recognises on units.
const UNIT_PREFIXES: &[&str] = &[
    "pico", "nano", "micro", "milli", "centi", "deci", "deca", "hecto", "kilo", "kibi", "mega",
    "mibi", "giga", "gibi", "tera", "tebi", "peta", "pebi",
];

/// Abbreviated units promlint rejects as a word of the name.
const UNIT_ABBREVIATIONS: &[&str] = &[
    "s", "ms", "us", "ns", "sec", "b", "kb", "mb", "gb", "tb", "pb", "m", "h", "d",
];

/// Metric types promlint rejects as a word of the name.
const TYPE_WORDS: &[&str] = &["counter", "gauge", "histogram", "summary"];

/// Checks an exported metric name of `kind`.
pub(crate) fn check_name(name: &str, kind: MetricKind) -> Result<(), LintProblem> {
    let ends_total = name.ends_with("_total");
    match kind {
        MetricKind::Counter if !ends_total => {
            return Err(LintProblem::Text(
                "counter metrics should have \"_total\" suffix",
            ));
        }
        MetricKind::Gauge if ends_total => {
            return Err(LintProblem::Text(
                "non-counter metrics should not have \"_total\" suffix",
            ));
        }
        _ => {}
    }
    for (suffix, text) in [
        (
            "_bucket",
            "non-histogram metrics should not have \"_bucket\" suffix",
        ),
        (
            "_count",
            "non-histogram and non-summary metrics should not have \"_count\" suffix",
        ),
        (
            "_sum",
            "non-histogram and non-summary metrics should not have \"_sum\" suffix",
        ),
    ] {
        if name.ends_with(suffix) {
            return Err(LintProblem::Text(text));
        }
    }
    if is_camel_case(name) {
        return Err(LintProblem::Text(
            "metric names should be written in 'snake_case' not 'camelCase'",
        ));
    }
    for (i, word) in name.split('_').enumerate() {
        // promlint looks for `_word_` or a `_word` suffix: the first word is exempt.
        if i > 0 {
            check_inner_word(word)?;
        }
        check_unit(word)?;
    }
    Ok(())
}

/// The type and abbreviation rules for a word after the first (compared
/// case-insensitively: promlint lowercases the name for these rules).
fn check_inner_word(word: &str) -> Result<(), LintProblem> {
    let is = |s: &&str| word.eq_ignore_ascii_case(s);
    if TYPE_WORDS.iter().any(is) {
        return Err(LintProblem::Text("metric name should not include a type"));
    }
    if UNIT_ABBREVIATIONS.iter().any(is) {
        return Err(LintProblem::Text(
            "metric names should not contain abbreviated units",
        ));
    }
    Ok(())
}

/// The unit rule for any word.
fn check_unit(word: &str) -> Result<(), LintProblem> {
    // Unit matching is case-sensitive in promlint; lowercase words only can match.
    for &(unit, base) in UNITS {
        if word == unit {
            if unit != base {
                return Err(LintProblem::Unit("", unit, base));
            }
            return Ok(());
        }
        if let Some(prefix) = word.strip_suffix(unit)
            && let Some(&prefix) = UNIT_PREFIXES.iter().find(|p| **p == prefix)
        {
            return Err(LintProblem::Unit(prefix, unit, base));
        }
    }
    Ok(())
}

/// Checks an exported label name.
pub(crate) fn check_label_name(name: &str) -> Result<(), LintProblem> {
    match name {
        "le" => Err(LintProblem::Text(
            "non-histogram metrics should not have \"le\" label",
        )),
        "quantile" => Err(LintProblem::Text(
            "non-summary metrics should not have \"quantile\" label",
        )),
        _ if is_camel_case(name) => Err(LintProblem::Text(
            "label names should be written in 'snake_case' not 'camelCase'",
        )),
        _ => Ok(()),
    }
}

/// promlint's camelCase test: a lowercase letter followed by an uppercase one.
fn is_camel_case(name: &str) -> bool {
    name.as_bytes()
        .windows(2)
        .any(|w| w[0].is_ascii_lowercase() && w[1].is_ascii_uppercase())
}

#[cfg(test)]
mod tests {
    use super::*;
    use MetricKind::{Counter, Gauge};

    #[track_caller]
    fn check(name: &str, kind: MetricKind, expect: Option<&str>) {
        let got = check_name(name, kind).err().map(|p| p.to_string());
        assert_eq!(got.as_deref(), expect, "{name} ({kind:?})");
    }

    #[test]
    fn accepts_good_names() {
        for name in [
            "http_requests_total",
            "queue_depth",
            "request_duration_seconds",
            "disk_free_bytes",
            "gpu_temperature_celsius",
            "cache_hit_ratio",
            "thermometers_reading", // a word ending in a unit is not that unit
            "seconds_since_boot",
            "items_1",
            "a",
            "m_requests", // promlint only looks at words after an underscore
            "counter_resets",
        ] {
            let kind = if name.ends_with("_total") {
                Counter
            } else {
                Gauge
            };
            check(name, kind, None);
        }
    }

    #[test]
    fn rejects_what_promlint_rejects() {
        let total = Some("counter metrics should have \"_total\" suffix");
        check("requests", Counter, total);
        check(
            "requests_total",
            Gauge,
            Some("non-counter metrics should not have \"_total\" suffix"),
        );
        check(
            "latency_milliseconds",
            Gauge,
            Some("use base unit \"seconds\" instead of \"milliseconds\""),
        );
        check(
            "transfer_kilobytes_total",
            Counter,
            Some("use base unit \"bytes\" instead of \"kilobytes\""),
        );
        check(
            "uptime_hours",
            Gauge,
            Some("use base unit \"seconds\" instead of \"hours\""),
        );
        check(
            "cpu_percent",
            Gauge,
            Some("use base unit \"ratio\" instead of \"percent\""),
        );
        let abbr = Some("metric names should not contain abbreviated units");
        check("latency_ms", Gauge, abbr);
        check("latency_ms_max", Gauge, abbr);
        check("wait_sec", Gauge, abbr);
        check("size_MB", Gauge, abbr);
        let typed = Some("metric name should not include a type");
        check("requests_counter_total", Counter, typed);
        check("queue_gauge", Gauge, typed);
        check("rpc_histogram_x", Gauge, typed);
        check(
            "fooBar",
            Gauge,
            Some("metric names should be written in 'snake_case' not 'camelCase'"),
        );
        check(
            "x_bucket",
            Gauge,
            Some("non-histogram metrics should not have \"_bucket\" suffix"),
        );
        check(
            "x_count",
            Gauge,
            Some("non-histogram and non-summary metrics should not have \"_count\" suffix"),
        );
        check(
            "x_sum",
            Gauge,
            Some("non-histogram and non-summary metrics should not have \"_sum\" suffix"),
        );
    }

    #[test]
    fn label_names() {
        assert!(check_label_name("device").is_ok());
        assert!(check_label_name("Device").is_ok());
        assert!(check_label_name("le").is_err());
        assert!(check_label_name("quantile").is_err());
        assert!(check_label_name("clientId").is_err());
    }
}
