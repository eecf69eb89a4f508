//! `/metrics`: the store's families and the self-metrics registry in the
//! Prometheus text exposition format, version 0.0.4.
//!
//! Store families come first, each exactly once (`# HELP`, `# TYPE`, then its
//! live series), in name order; then the registry's families through
//! `prometheus::TextEncoder`. A registry family whose name the store also
//! exports is left out, so the body never names a family twice.
//!
//! Each series' `name{label="value",...} ` prefix depends only on its identity,
//! so it is rendered once, kept in the series' [`ExportCache`] and copied on
//! every later scrape; a scrape then formats only values. The cache is written
//! and read only here: the store never looks inside it.
//!
//! [`ExportCache`]: crate::store::ExportCache

use crate::ingest::Services;
use crate::model::MetricKind;
use crate::store::Store;
use parking_lot::Mutex;
use prometheus::{Encoder, Registry, TextEncoder};

/// The `Content-Type` of a rendered body.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Appends the whole `/metrics` body to `out`: store families, the service
/// table's seed families, then the registry's. Bytes, not a `String`, so an HTTP body can take the buffer
/// as is; the content is always UTF-8.
///
/// Never fails: a registry family the encoder rejects is left out (and
/// logged) rather than losing the scrape.
///
/// The service table is locked only while its own families are written, so
/// heartbeats wait for that part alone, never for the whole scrape.
pub fn render(store: &Store, services: &Mutex<Services>, registry: &Registry, out: &mut Vec<u8>) {
    render_store(store, out);
    render_services(&services.lock(), out);
    render_registry(store, registry, out);
}

/// Appends the store's families to `out`.
pub fn render_store(store: &Store, out: &mut Vec<u8>) {
    let view = store.read();
    for family in view.families() {
        let name = family.name();
        out.extend_from_slice(b"# HELP ");
        out.extend_from_slice(name.as_bytes());
        out.push(b' ');
        escape_help(family.help(), out);
        out.extend_from_slice(b"\n# TYPE ");
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(match family.kind() {
            MetricKind::Gauge => b" gauge\n",
            MetricKind::Counter => b" counter\n",
        });
        for series in family.series() {
            let prefix = series.export_cache().get_or_init(|| {
                let mut prefix = Vec::with_capacity(64);
                write_series_prefix(name, series.labels(), &mut prefix);
                prefix
            });
            out.extend_from_slice(prefix);
            write_value(series.value(), out);
            out.push(b'\n');
        }
    }
}

/// Appends the registry's families to `out`, leaving out empty ones and any
/// the store already rendered.
pub fn render_registry(store: &Store, registry: &Registry, out: &mut Vec<u8>) {
    let mut families = registry.gather();
    {
        let view = store.read();
        families.retain(|mf| {
            let clash = view.has_family(mf.name());
            if clash {
                tracing::warn!(
                    family = mf.name(),
                    "self-metric shares its name with a stored family; left out"
                );
            }
            !clash && !mf.get_metric().is_empty()
        });
    }
    let start = out.len();
    if let Err(error) = TextEncoder::new().encode(&families, out) {
        out.truncate(start);
        tracing::warn!(%error, "failed to encode self-metrics; left out of /metrics");
    }
}

/// Appends seed 000's service families, rendered from the service table:
/// `monitoring_service_status{service}` (1 up, 0 down; services with
/// heartbeats only), `monitoring_service_last_seen_seconds{service}` (Unix
/// time of the last heartbeat), `monitoring_events_total{service,event_type}`,
/// `monitoring_task_success_total{service,component}` and
/// `monitoring_task_failures_total{service,component}`. A family with no
/// series is left out.
pub fn render_services(services: &Services, out: &mut Vec<u8>) {
    let heartbeats = || {
        services
            .iter()
            .filter_map(|(name, s)| Some((name, s.up?, s.last_seen_ms?)))
    };
    family_header(
        "monitoring_service_status",
        "gauge",
        "Whether a service is up (1) or down (0) by its heartbeats.",
        heartbeats().next().is_some(),
        out,
    );
    for (name, up, _) in heartbeats() {
        write_series_prefix(
            "monitoring_service_status",
            [("service", name)].into_iter(),
            out,
        );
        out.extend_from_slice(if up { b"1\n" } else { b"0\n" });
    }
    family_header(
        "monitoring_service_last_seen_seconds",
        "gauge",
        "Unix time of the last heartbeat of a service.",
        heartbeats().next().is_some(),
        out,
    );
    for (name, _, last_seen_ms) in heartbeats() {
        write_series_prefix(
            "monitoring_service_last_seen_seconds",
            [("service", name)].into_iter(),
            out,
        );
        write_value(last_seen_ms as f64 / 1000.0, out);
        out.push(b'\n');
    }
    type Counters = fn(&crate::ingest::Service) -> &std::collections::BTreeMap<String, u64>;
    let families: [(&str, &str, &str, Counters); 3] = [
        (
            "monitoring_events_total",
            "event_type",
            "Events received, by service and event type.",
            |s| &s.events,
        ),
        (
            "monitoring_task_success_total",
            "component",
            "Task successes reported in events with a component, by service and component.",
            |s| &s.successes,
        ),
        (
            "monitoring_task_failures_total",
            "component",
            "Task failures reported in events with a component, by service and component.",
            |s| &s.failures,
        ),
    ];
    for (family, label, help, counters) in families {
        let any = services.iter().any(|(_, s)| !counters(s).is_empty());
        family_header(family, "counter", help, any, out);
        for (name, service) in services.iter() {
            for (value, count) in counters(service) {
                write_series_prefix(
                    family,
                    [("service", name), (label, value.as_str())].into_iter(),
                    out,
                );
                out.extend_from_slice(itoa::Buffer::new().format(*count).as_bytes());
                out.push(b'\n');
            }
        }
    }
}

/// `# HELP` and `# TYPE` of a family with series; nothing when `any` is false.
fn family_header(name: &str, kind: &str, help: &str, any: bool, out: &mut Vec<u8>) {
    if !any {
        return;
    }
    out.extend_from_slice(b"# HELP ");
    out.extend_from_slice(name.as_bytes());
    out.push(b' ');
    escape_help(help, out);
    out.extend_from_slice(b"\n# TYPE ");
    out.extend_from_slice(name.as_bytes());
    out.push(b' ');
    out.extend_from_slice(kind.as_bytes());
    out.push(b'\n');
}

/// `name{a="x",b="y"} ` (or `name ` without labels), values escaped.
pub fn write_series_prefix<'a>(
    name: &str,
    labels: impl Iterator<Item = (&'a str, &'a str)>,
    out: &mut Vec<u8>,
) {
    out.extend_from_slice(name.as_bytes());
    let mut first = true;
    for (label, value) in labels {
        out.push(if first { b'{' } else { b',' });
        first = false;
        out.extend_from_slice(label.as_bytes());
        out.extend_from_slice(b"=\"");
        escape_label_value(value, out);
        out.push(b'"');
    }
    if !first {
        out.push(b'}');
    }
    out.push(b' ');
}

/// A label value: `\` → `\\`, `"` → `\"`, newline → `\n`, any other
/// control character but tab → U+FFFD.
pub fn escape_label_value(value: &str, out: &mut Vec<u8>) {
    escape(value, out, true);
}

/// Help text: `\` → `\\`, newline → `\n`, any other control character
/// but tab → U+FFFD.
pub fn escape_help(help: &str, out: &mut Vec<u8>) {
    escape(help, out, false);
}

/// The store refuses label values with control characters and cleans help
/// text, so replacing them here is a second line for text from elsewhere
/// (the service table): `/metrics` never holds a raw NUL, ESC, BEL or CR.
fn escape(text: &str, out: &mut Vec<u8>, quote: bool) {
    let bytes = text.as_bytes();
    // C1 controls (U+0080..U+009F) start with 0xC2 in UTF-8.
    let special = |b: u8| {
        b == b'\\' || (quote && b == b'"') || (b < 0x20 && b != b'\t') || b == 0x7f || b == 0xc2
    };
    if !bytes.iter().any(|&b| special(b)) {
        out.extend_from_slice(bytes);
        return;
    }
    let mut buf = [0u8; 4];
    for c in text.chars() {
        match c {
            '\\' => out.extend_from_slice(b"\\\\"),
            '\n' => out.extend_from_slice(b"\\n"),
            '"' if quote => out.extend_from_slice(b"\\\""),
            '\t' => out.push(b'\t'),
            c if c.is_control() => out.extend_from_slice("\u{fffd}".as_bytes()),
            c => out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes()),
        }
    }
}

/// A sample value as Prometheus parses it: `NaN`, `+Inf`, `-Inf`, integers
/// without a fraction, everything else in shortest round-trip form.
pub fn write_value(value: f64, out: &mut Vec<u8>) {
    if value.is_nan() {
        out.extend_from_slice(b"NaN");
    } else if value.is_infinite() {
        out.extend_from_slice(if value > 0.0 { b"+Inf" } else { b"-Inf" });
    } else if value.fract() == 0.0 && value.abs() < 9_007_199_254_740_992.0 {
        // Integers below 2^53 convert to i64 exactly.
        out.extend_from_slice(itoa::Buffer::new().format(value as i64).as_bytes());
    } else {
        out.extend_from_slice(ryu::Buffer::new().format_finite(value).as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::StoreConfig;
    use crate::model::Sample;
    use crate::store::SourceKind;

    const T0: u64 = 1_700_000_000_000;

    fn text(f: impl FnOnce(&mut Vec<u8>)) -> String {
        let mut out = Vec::new();
        f(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[track_caller]
    fn check_value(value: f64, expect: &str) {
        assert_eq!(text(|o| write_value(value, o)), expect);
    }

    #[test]
    fn values() {
        check_value(0.0, "0");
        check_value(-0.0, "0");
        check_value(42.0, "42");
        check_value(-7.0, "-7");
        check_value(0.25, "0.25");
        check_value(1e15, "1000000000000000");
        check_value(1e16, "1e16");
        check_value(1.5e-7, "1.5e-7");
        check_value(f64::NAN, "NaN");
        check_value(f64::INFINITY, "+Inf");
        check_value(f64::NEG_INFINITY, "-Inf");
        check_value(123_456_789_012.0, "123456789012");
    }

    #[test]
    fn escaping() {
        assert_eq!(
            text(|o| escape_label_value("a\\b\"c\nd", o)),
            "a\\\\b\\\"c\\nd"
        );
        assert_eq!(text(|o| escape_label_value("plain ☃", o)), "plain ☃");
        assert_eq!(
            text(|o| escape_label_value("\0a\x1bb\x07c\rd\te\x7ff\u{9b}g\"h", o)),
            "\u{fffd}a\u{fffd}b\u{fffd}c\u{fffd}d\te\u{fffd}f\u{fffd}g\\\"h"
        );
        assert_eq!(text(|o| escape_help("a\rb\"c", o)), "a\u{fffd}b\"c");
        assert_eq!(text(|o| escape_help("a\\b\"c\nd", o)), "a\\\\b\"c\\nd");
        assert_eq!(
            text(|o| write_series_prefix("x", [("a", "1"), ("b", "\"")].into_iter(), o)),
            "x{a=\"1\",b=\"\\\"\"} "
        );
        assert_eq!(
            text(|o| write_series_prefix("x", std::iter::empty(), o)),
            "x "
        );
    }

    fn store() -> Store {
        Store::new(&StoreConfig::default())
    }

    #[test]
    fn families_are_grouped_with_help_and_type() {
        let store = store();
        let a = store.source("a", SourceKind::Plugin { max_series: 100 });
        let b = store.source("b", SourceKind::Plugin { max_series: 100 });
        store.apply(
            a,
            vec![
                Sample::counter("jobs", 3.0).help("Jobs done.\nAll of them."),
                Sample::gauge("depth", 1.0).label("q", "x"),
            ],
            T0,
        );
        store.apply(
            b,
            vec![
                Sample::gauge("depth", 2.0).label("q", "y"),
                Sample::counter("jobs_total", 4.0).help("Ignored: the first help wins."),
            ],
            T0,
        );
        let body = text(|o| render_store(&store, o));
        assert_eq!(
            body,
            "# HELP depth A gauge from plugin a (it gave no help text).\n\
             # TYPE depth gauge\n\
             depth{plugin=\"a\",q=\"x\"} 1\n\
             depth{plugin=\"b\",q=\"y\"} 2\n\
             # HELP jobs_total Jobs done.\\nAll of them.\n\
             # TYPE jobs_total counter\n\
             jobs_total{plugin=\"a\"} 3\n\
             jobs_total{plugin=\"b\"} 4\n"
        );
        // Values change, cached prefixes don't get in the way; stale series leave.
        store.apply(a, vec![Sample::gauge("depth", 5.0).label("q", "x")], T0 + 1);
        let body = text(|o| render_store(&store, o));
        assert!(body.contains("depth{plugin=\"a\",q=\"x\"} 5\n"), "{body}");
        assert!(!body.contains("jobs_total{plugin=\"a\"}"), "{body}");
        assert!(body.contains("jobs_total{plugin=\"b\"} 4\n"), "{body}");
    }

    #[test]
    fn registry_families_follow_and_never_repeat_a_store_family() {
        let store = store();
        let host = store.source("system", SourceKind::Host);
        store.apply(host, vec![Sample::gauge("wasmon_clash", 1.0)], T0);
        let registry = Registry::new();
        let clash = prometheus::IntGauge::new("wasmon_clash", "Clashes.").unwrap();
        let mine = prometheus::IntCounter::new("wasmon_self_total", "Mine.").unwrap();
        registry.register(Box::new(clash.clone())).unwrap();
        registry.register(Box::new(mine.clone())).unwrap();
        mine.inc();
        let body = text(|o| render(&store, &Mutex::new(Services::default()), &registry, o));
        assert_eq!(body.matches("# TYPE wasmon_clash ").count(), 1, "{body}");
        assert!(body.ends_with(
            "# HELP wasmon_self_total Mine.\n# TYPE wasmon_self_total counter\nwasmon_self_total 1\n"
        ));
    }

    /// Renders hostile input and the real system snapshot and self-metrics,
    /// and runs the real `promtool check metrics` on the result.
    #[test]
    fn promtool_accepts_the_output() {
        let store = store();
        let hostile = store.source(
            "we\"ird\\plug\nin ☃",
            SourceKind::Plugin { max_series: 1000 },
        );
        let report = store.apply(
            hostile,
            vec![
                Sample::gauge("queue_depth", 1.0)
                    .label("q", "a\"b")
                    .label("path", "c:\\dir\\")
                    .label("text", "line1\nline2")
                    .help("Depth; \\ backslash \"quoted\"\nsecond line"),
                Sample::gauge("queue_depth", f64::NAN).label("q", ""),
                Sample::gauge("queue_depth", f64::INFINITY).label("q", "}{,=\t"),
                // Refused: control characters and bad counters.
                Sample::gauge("queue_depth", 1.0).label("q", "\u{0}\x1b[2J\x07\r"),
                Sample::counter("bad_counter", -1.0),
                Sample::counter("bad_counter", f64::NAN),
                Sample::gauge("colour", 1.0).help("Red \x1b[31m\r\x07 text\0."),
                Sample::gauge("queue_depth", f64::NEG_INFINITY).label("q", "☃ héllo"),
                Sample::gauge("tiny", 1e-300).label("plugin", "spoofed"),
                Sample::counter("events", 1e300).label("kind", "x"),
                Sample::counter("bytes_sent_total", 123_456_789_012_345_680.0),
                Sample::gauge("_leading_underscore", -0.0),
                // Each of these would fail promtool; all are dropped.
                Sample::gauge("fooBar", 1.0),
                Sample::gauge("latency_ms", 1.0),
                Sample::gauge("latency_milliseconds", 1.0),
                Sample::gauge("cpu_percent", 1.0),
                Sample::gauge("requests_total", 1.0),
                Sample::gauge("x_count", 1.0),
                Sample::gauge("x_bucket", 1.0).label("le", "1"),
                Sample::gauge("ok_gauge", 1.0),
                Sample::gauge("y", 1.0).label("clientId", "1"),
                Sample::gauge("y", 1.0).label("quantile", "1"),
                Sample::gauge("y", 1.0).label("__name__", "z"),
                Sample::gauge("y", 1.0).label("a", "1").label("a", "2"),
                Sample::gauge("a:b", 1.0),
                Sample::gauge("9lives", 1.0),
                Sample::gauge("wasmon_spoof", 1.0),
                Sample::gauge("bad name", 1.0),
                Sample::gauge("", 1.0),
            ],
            T0,
        );
        assert_eq!(report.stored, 9, "{report:?}");
        let config = crate::config::SamplingConfig::default();
        let mut system = crate::sampling::SystemSampler::new(&config);
        let samples = system.sample();
        assert!(samples.len() > 10, "{samples:?}");
        let host = store.source("system", SourceKind::Host);
        let report = store.apply(host, samples, T0);
        assert_eq!(report.dropped_total(), 0, "{report:?}");
        let telemetry = crate::telemetry::Telemetry::new().unwrap();
        telemetry
            .plugin_up
            .with_label_values(&["p\"q", "collector"])
            .set(1);
        telemetry
            .plugin_call_duration
            .with_label_values(&["p", "collect"])
            .observe(0.001);

        let mut body = Vec::new();
        render(
            &store,
            &Mutex::new(Services::default()),
            &telemetry.registry,
            &mut body,
        );
        let body = String::from_utf8(body).unwrap();
        assert!(body.contains("exported_plugin=\"spoofed\""), "{body}");
        assert!(body.contains("events_total{"), "{body}");
        assert!(body.contains("wasmon_cpu_usage_ratio "), "{body}");
        assert!(
            body.contains("wasmon_plugin_call_duration_seconds_bucket"),
            "{body}"
        );
        assert!(!body.contains("fooBar"), "{body}");
        assert!(
            !body
                .chars()
                .any(|c| c.is_control() && c != '\n' && c != '\t'),
            "{body:?}"
        );
        assert!(body.contains("# HELP colour Red \u{fffd}[31m\u{fffd}\u{fffd} text\u{fffd}.\n"));

        let mut child = std::process::Command::new(promtool())
            .args(["check", "metrics"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(body.as_bytes())
            .unwrap();
        let output = child.wait_with_output().unwrap();
        assert!(
            output.status.success() && output.stdout.is_empty() && output.stderr.is_empty(),
            "promtool check metrics failed:\nstdout: {}\nstderr: {}\nbody:\n{body}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
        );
    }

    /// `promtool`, installed from Debian's `prometheus` package when missing.
    fn promtool() -> String {
        let found = |p: &str| std::path::Path::new(p).exists().then(|| p.to_string());
        if let Some(path) = found("/usr/bin/promtool").or_else(|| which("promtool")) {
            return path;
        }
        let install = std::process::Command::new("sh")
            .args([
                "-c",
                "(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus) >/dev/null 2>&1 \
                 || (sudo -n apt-get update -qq && sudo -n DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus) >/dev/null 2>&1",
            ])
            .status()
            .unwrap();
        assert!(
            install.success(),
            "could not install promtool (Debian package `prometheus`)"
        );
        which("promtool").expect("promtool installed but not on PATH")
    }

    fn which(name: &str) -> Option<String> {
        std::env::var_os("PATH")?
            .to_str()?
            .split(':')
            .map(|dir| std::path::Path::new(dir).join(name))
            .find(|p| p.is_file())
            .map(|p| p.display().to_string())
    }
}
