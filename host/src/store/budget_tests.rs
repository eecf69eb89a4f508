//! Tests of the store's hardening: the two budgets, source namespaces,
//! derived sources, well-formed values and the refusal counts.

use super::*;
use crate::config::StoreConfig;
use crate::model::Sample;

const T0: u64 = 1_700_000_000_000;

fn store_with(max_series: usize, reserved_series: usize) -> Store {
    Store::new(&StoreConfig {
        max_series,
        reserved_series,
        ..StoreConfig::default()
    })
}

fn plugin(max_series: usize) -> SourceKind {
    SourceKind::Plugin { max_series }
}

fn numbered(name: &str, prefix: &str, n: usize) -> Vec<Sample> {
    (0..n)
        .map(|i| Sample::gauge(name, i as f64).label("id", format!("{prefix}{i}")))
        .collect()
}

fn system(n: usize) -> Vec<Sample> {
    let mut samples = vec![
        Sample::gauge("wasmon_cpu_usage_ratio", 0.5),
        Sample::gauge("wasmon_load1", 1.0),
        Sample::gauge("wasmon_memory_available_bytes", 1e9),
    ];
    samples.extend(numbered("wasmon_network_up", "eth", n));
    samples
}

#[test]
fn drop_reasons_are_indexed_by_their_discriminant() {
    for (i, reason) in DropReason::ALL.iter().enumerate() {
        assert_eq!(*reason as usize, i, "{reason}");
    }
}

#[test]
fn plugins_never_take_the_host_budget() {
    let store = store_with(10, 100);
    let host = store.source("system", SourceKind::Host);
    let a = store.source("a", plugin(1000));
    let b = store.source("b", plugin(1000));
    // The plugins fill their budget, with churn: every snapshot is new series.
    for round in 0..5u64 {
        let ra = store.apply(a, numbered("fill", &format!("a{round}_"), 8), T0 + round);
        let rb = store.apply(b, numbered("fill", &format!("b{round}_"), 8), T0 + round);
        assert_eq!(ra.stored + rb.stored, 10, "{round}");
        // The host's series keep coming, even new ones, whatever the plugins hold.
        let report = store.apply(host, system(round as usize), T0 + round);
        assert_eq!(report.dropped_total(), 0, "{report:?}");
    }
    let stats = store.stats();
    assert_eq!(stats.plugin_series, 10);
    assert_eq!(stats.host_series, 3 + 4);
    let names: Vec<String> = store
        .select(&["wasmon_*".into()])
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert!(
        names.contains(&"wasmon_cpu_usage_ratio".to_string()),
        "{names:?}"
    );
    assert!(names.contains(&"wasmon_load1".to_string()), "{names:?}");
    // The plugins' refusals are counted per source and reason.
    let refused = store.source_stats("b", true).unwrap();
    assert!(refused.refused["global_limit"] > 0, "{refused:?}");
    assert_eq!(refused.refused_total, refused.refused["global_limit"]);
    assert_eq!(
        store.source_stats("system", false).unwrap().refused_total,
        0
    );
}

#[test]
fn a_stale_host_series_is_not_evicted_for_a_plugin() {
    let store = store_with(3, 100);
    let host = store.source("system", SourceKind::Host);
    let p = store.source("p", plugin(100));
    store.apply(host, system(0), T0);
    // A sampler misses a series for one snapshot: it goes stale...
    store.apply(host, system(0)[..2].to_vec(), T0 + 1);
    store.apply(p, numbered("x", "a", 3), T0 + 2);
    // ...and a plugin wanting room gets none of the host's.
    let report = store.apply(p, numbered("x", "b", 3), T0 + 3);
    assert_eq!(
        report.stored, 3,
        "its own stale series make room: {report:?}"
    );
    let report = store.apply(p, numbered("x", "c", 4), T0 + 4);
    assert_eq!(report.dropped(DropReason::GlobalLimit), 1, "{report:?}");
    let report = store.apply(host, system(0), T0 + 5);
    assert_eq!(report.stored, 3, "{report:?}");
    assert_eq!(
        store
            .select(&["wasmon_memory_available_bytes".into()])
            .len(),
        1
    );
}

#[test]
fn the_host_budget_has_its_own_limit() {
    let store = store_with(100, 5);
    let host = store.source("system", SourceKind::Host);
    let report = store.apply(host, system(4), T0);
    assert_eq!(report.stored, 5);
    assert_eq!(report.dropped(DropReason::ReservedLimit), 2);
    assert_eq!(
        report.first_problem.as_deref(),
        Some(
            "sample `wasmon_network_up`: the host's sources already hold the 5 series of `store.reserved_series`"
        )
    );
    let p = store.source("p", plugin(100));
    assert_eq!(store.apply(p, numbered("x", "a", 50), T0).stored, 50);
}

#[test]
fn a_plugin_named_like_a_host_source_is_another_source() {
    let store = store_with(100, 100);
    let host = store.source("system", SourceKind::Host);
    let fake = store.source("system", plugin(10));
    assert_ne!(host, fake);
    store.apply(host, system(0), T0);
    // The plugin's snapshot does not replace the sampler's.
    store.apply(fake, vec![Sample::gauge("load", 9.0)], T0 + 1);
    assert_eq!(store.select(&["wasmon_load1".into()]).len(), 1);
    let load = &store.select(&["load".into()])[0];
    assert_eq!(load.label_value("plugin"), Some("system"));
    store.remove_source(fake);
    assert_eq!(store.select(&["wasmon_*".into()]).len(), 3);
    assert_eq!(store.source("system", SourceKind::Host), host);
    let kinds: Vec<(String, &str, bool)> = store
        .sources()
        .into_iter()
        .map(|s| (s.name, s.kind, s.registered))
        .collect();
    assert_eq!(
        kinds,
        [
            ("system".to_string(), "host", true),
            ("system".to_string(), "plugin", false)
        ]
    );
}

#[test]
fn a_derived_source_is_limited_and_checks_labels() {
    let store = store_with(100, 100);
    let alerts = store.source("alerts", SourceKind::Derived { max_series: 3 });
    let alert = |i: usize| {
        Sample::gauge("wasmon_alert_active", 1.0)
            .label("rule", "r")
            .label("alertname", format!("a{i}"))
    };
    let mut samples: Vec<Sample> = (0..5).map(alert).collect();
    samples.push(Sample::gauge("wasmon_alerts_status", 0.0).label("__bad", "x"));
    let report = store.apply(alerts, samples, T0);
    assert_eq!(report.stored, 3, "{report:?}");
    assert_eq!(report.dropped(DropReason::SeriesLimit), 2);
    assert_eq!(report.dropped(DropReason::InvalidLabel), 1);
    let names = store.select(&["wasmon_alert_active".into()]);
    assert!(names.iter().all(|s| s.label_value("plugin").is_none()));
    let stats = store.source_stats("alerts", false).unwrap();
    assert_eq!(
        (stats.kind, stats.max_series, stats.held_series),
        ("derived", Some(3), 3)
    );
    assert_eq!(stats.refused_total, 3);
}

#[test]
fn control_characters_are_refused_from_every_source() {
    let store = store_with(100, 100);
    let host = store.source("system", SourceKind::Host);
    let p = store.source("p", plugin(100));
    let hostile = ["nul\0", "esc\x1b[2J", "bel\x07", "cr\r"];
    let mut samples: Vec<Sample> = hostile
        .iter()
        .map(|v| Sample::gauge("ctrl", 1.0).label("v", *v))
        .collect();
    samples.push(Sample::gauge("ctrl", 1.0).label("v", "fine\there"));
    let report = store.apply(p, samples, T0);
    assert_eq!(report.stored, 1);
    assert_eq!(report.dropped(DropReason::ControlCharacter), 4);
    assert_eq!(
        report.first_problem.as_deref(),
        Some("sample `ctrl`: label `v`: the value has a control character")
    );
    let report = store.apply(
        host,
        vec![Sample::gauge("wasmon_filesystem_avail_bytes", 1.0).label("mountpoint", "/a\rb")],
        T0,
    );
    assert_eq!(report.dropped(DropReason::ControlCharacter), 1);
    assert_eq!(
        store.source_stats("p", true).unwrap().refused["control_character"],
        4
    );
}

#[test]
fn bad_counters_are_refused_and_a_counter_may_go_down() {
    let store = store_with(100, 100);
    let p = store.source("p", plugin(100));
    let report = store.apply(
        p,
        vec![
            Sample::counter("negative", -1.0),
            Sample::counter("nan", f64::NAN),
            Sample::counter("inf", f64::INFINITY),
            Sample::counter("flaky", 5.0),
            Sample::counter("resets", 10.0),
            Sample::gauge("gauge_nan", f64::NAN),
        ],
        T0,
    );
    assert_eq!(report.stored, 3, "{report:?}");
    assert_eq!(report.dropped(DropReason::InvalidValue), 3);
    // An existing counter's bad value is refused too; the series keeps its
    // last value and stays live. A counter going down is stored as is.
    let report = store.apply(
        p,
        vec![
            Sample::counter("flaky", f64::NAN),
            Sample::counter("resets", 3.0),
            Sample::gauge("gauge_nan", f64::NAN),
        ],
        T0 + 1,
    );
    assert_eq!(report.dropped(DropReason::InvalidValue), 1, "{report:?}");
    let value = |name: &str| store.select(&[name.into()]).first().map(|s| s.value);
    assert_eq!(value("flaky_total"), Some(5.0));
    assert_eq!(value("resets_total"), Some(3.0));
    assert!(value("gauge_nan").is_some_and(f64::is_nan));
    assert_eq!(value("negative_total"), None);
    assert_eq!(
        store.source_stats("p", true).unwrap().refused["invalid_value"],
        4
    );
}

#[test]
fn refusals_are_counted_in_the_given_counter() {
    let counter = prometheus::IntCounterVec::new(
        prometheus::Opts::new("t_total", "t"),
        &["source", "kind", "reason"],
    )
    .unwrap();
    let store = store_with(100, 100).with_refused_counter(counter.clone());
    let p = store.source("p", plugin(1));
    store.apply(p, numbered("x", "a", 3), T0);
    store.apply(p, vec![Sample::counter("c", -1.0)], T0 + 1);
    let get = |reason: &str| counter.with_label_values(&["p", "plugin", reason]).get();
    assert_eq!(get("series_limit"), 2);
    assert_eq!(get("invalid_value"), 1);
    let host = store.source("gpu", SourceKind::Host);
    store.apply(host, vec![Sample::gauge("bad name", 1.0)], T0);
    assert_eq!(
        counter
            .with_label_values(&["gpu", "host", "invalid_name"])
            .get(),
        1
    );
}
