//! Tests of the store's behaviour through its public API.

use super::*;
use crate::config::StoreConfig;
use crate::model::{MetricKind, Sample};

const T0: u64 = 1_700_000_000_000;

fn store() -> Store {
    Store::new(&StoreConfig::default())
}

fn store_with(max_series: usize) -> Store {
    Store::new(&StoreConfig {
        max_series,
        ..StoreConfig::default()
    })
}

fn plugin(max_series: usize) -> SourceKind {
    SourceKind::Plugin { max_series }
}

fn sel(s: &str) -> Vec<String> {
    vec![s.to_string()]
}

/// `name{labels}=value` of every selected sample, sorted.
fn dump(store: &Store, selector: &str) -> Vec<String> {
    let mut out: Vec<String> = store
        .select(&sel(selector))
        .into_iter()
        .map(|s| {
            let labels: Vec<String> = s.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
            format!("{}{{{}}}={}", s.name, labels.join(","), s.value)
        })
        .collect();
    out.sort();
    out
}

#[test]
fn store_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Store>();
}

#[test]
fn plugin_series_get_the_plugin_label_and_counters_get_total() {
    let store = store();
    let redis = store.source("redis", plugin(100));
    let report = store.apply(
        redis,
        vec![
            Sample::gauge("clients", 3.0).label("state", "active"),
            Sample::counter("commands", 10.0),
            Sample::gauge("depth", 1.0).label("plugin", "theirs"),
        ],
        T0,
    );
    assert_eq!(report.stored, 3, "{report:?}");
    assert_eq!(report.dropped_total(), 0);
    assert_eq!(report.first_problem, None);
    assert_eq!(
        dump(&store, "*"),
        [
            "clients{plugin=redis,state=active}=3",
            "commands_total{plugin=redis}=10",
            "depth{exported_plugin=theirs,plugin=redis}=1",
        ]
    );
    assert_eq!(store.series_count(), 3);
    let s = &store.select(&sel("commands_total"))[0];
    assert_eq!(s.kind, MetricKind::Counter);
    assert_eq!(s.timestamp_ms, Some(T0));
}

#[test]
fn updates_find_series_whatever_the_label_order() {
    let store = store();
    let p = store.source("p", plugin(100));
    let a = || Sample::gauge("x", 1.0).label("a", "1").label("b", "2");
    store.apply(p, vec![a()], T0);
    let swapped = Sample::gauge("x", 5.0).label("b", "2").label("a", "1");
    let report = store.apply(p, vec![swapped], T0 + 1000);
    assert_eq!(report.stored, 1);
    assert_eq!(store.series_count(), 1);
    assert_eq!(dump(&store, "x"), ["x{a=1,b=2,plugin=p}=5"]);
    // A sample with a label name twice never matches the stored series.
    let dup = Sample::gauge("x", 9.0).label("a", "1").label("a", "1");
    let report = store.apply(p, vec![a(), dup], T0 + 2000);
    assert_eq!(report.dropped(DropReason::InvalidLabel), 1, "{report:?}");
}

#[test]
fn a_snapshot_replaces_the_previous_one() {
    let store = store();
    let p = store.source("p", plugin(100));
    store.apply(
        p,
        vec![
            Sample::gauge("x", 1.0).label("k", "a"),
            Sample::gauge("x", 2.0).label("k", "b"),
            Sample::gauge("y", 3.0),
        ],
        T0,
    );
    store.apply(
        p,
        vec![Sample::gauge("x", 4.0).label("k", "b")],
        T0 + 10_000,
    );
    assert_eq!(dump(&store, "*"), ["x{k=b,plugin=p}=4"]);
    assert_eq!(store.series_count(), 1);
    assert!(!store.read().has_family("y"));
    // History of the stale series is still there...
    let h = store.history_at(
        "x",
        &[("k".into(), "a".into())],
        Duration::from_secs(600),
        T0 + 10_000,
    );
    assert_eq!(h.len(), 1);
    assert_eq!(h[0].points.len(), 1);
    // ...and the series comes back with it.
    store.apply(
        p,
        vec![Sample::gauge("x", 5.0).label("k", "a")],
        T0 + 20_000,
    );
    let h = store.history_at(
        "x",
        &[("k".into(), "a".into())],
        Duration::from_secs(600),
        T0 + 20_000,
    );
    assert_eq!(h[0].points.len(), 2);
    assert_eq!(dump(&store, "x"), ["x{k=a,plugin=p}=5"]);
}

#[test]
fn bad_plugin_samples_are_dropped_counted_and_described() {
    let store = store();
    let p = store.source("p", plugin(100));
    let report = store.apply(
        p,
        vec![
            Sample::gauge("fooBar", 1.0),
            Sample::gauge("ok", 1.0),
            Sample::gauge("bad-name", 1.0),
            Sample::gauge("wasmon_cpu_usage_ratio", 1.0),
            Sample::gauge("monitoring_events", 1.0),
            Sample::gauge("latency_ms", 1.0),
            Sample::gauge("x", 1.0).label("__x", "1"),
            Sample::gauge("y", 1.0).label("a", "1").label("a", "2"),
        ],
        T0,
    );
    assert_eq!(report.stored, 1);
    assert_eq!(report.dropped(DropReason::Lint), 2);
    assert_eq!(report.dropped(DropReason::InvalidName), 1);
    assert_eq!(report.dropped(DropReason::ReservedName), 2);
    assert_eq!(report.dropped(DropReason::InvalidLabel), 2);
    assert_eq!(report.dropped_total(), 7);
    assert_eq!(
        report.first_problem.as_deref(),
        Some("sample `fooBar`: metric names should be written in 'snake_case' not 'camelCase'")
    );
    assert_eq!(dump(&store, "*"), ["ok{plugin=p}=1"]);
}

#[test]
fn host_sources_are_trusted() {
    let store = store();
    let system = store.source("system", SourceKind::Host);
    let report = store.apply(
        system,
        vec![
            Sample::gauge("wasmon_cpu_usage_ratio", 0.25),
            Sample::gauge("monitoring_service_status", 1.0).label("service", "api"),
            Sample::counter("wasmon_network_receive_bytes", 100.0).label("device", "eth0"),
            Sample::gauge("bad name", 1.0),
        ],
        T0,
    );
    assert_eq!(report.stored, 3, "{report:?}");
    assert_eq!(report.dropped(DropReason::InvalidName), 1);
    assert_eq!(
        dump(&store, "*"),
        [
            "monitoring_service_status{service=api}=1",
            "wasmon_cpu_usage_ratio{}=0.25",
            "wasmon_network_receive_bytes_total{device=eth0}=100",
        ]
    );
}

#[test]
fn a_family_has_one_kind() {
    let store = store();
    let a = store.source("a", plugin(100));
    let b = store.source("b", plugin(100));
    store.apply(a, vec![Sample::gauge("jobs", 1.0)], T0);
    let report = store.apply(b, vec![Sample::counter("jobs", 1.0)], T0);
    assert_eq!(report.dropped(DropReason::TypeConflict), 1, "{report:?}");
    assert_eq!(
        report.first_problem.as_deref(),
        Some("sample `jobs`: the name is already held as a gauge")
    );
    // Same kind from another source is the same family.
    let report = store.apply(b, vec![Sample::gauge("jobs", 2.0)], T0);
    assert_eq!(report.stored, 1);
    assert_eq!(
        dump(&store, "jobs"),
        ["jobs{plugin=a}=1", "jobs{plugin=b}=2"]
    );
    // Once no source exports the gauge, the name is free for a counter.
    store.apply(a, vec![], T0 + 1000);
    store.apply(b, vec![], T0 + 1000);
    let report = store.apply(a, vec![Sample::counter("jobs", 7.0)], T0 + 2000);
    assert_eq!(report.stored, 1, "{report:?}");
    assert_eq!(dump(&store, "jobs*"), ["jobs_total{plugin=a}=7"]);
    assert!(
        store
            .history_at("jobs", &[], Duration::from_secs(60), T0 + 2000)
            .is_empty()
    );
}

#[test]
fn duplicates_in_one_snapshot_keep_the_first() {
    let store = store();
    let p = store.source("p", plugin(100));
    let report = store.apply(
        p,
        vec![
            Sample::gauge("x", 1.0),
            Sample::gauge("x", 2.0),
            Sample::gauge("y", 1.0),
        ],
        T0,
    );
    assert_eq!(report.dropped(DropReason::Duplicate), 1, "{report:?}");
    // And for existing series too.
    let report = store.apply(
        p,
        vec![Sample::gauge("x", 3.0), Sample::gauge("x", 4.0)],
        T0 + 1,
    );
    assert_eq!(report.dropped(DropReason::Duplicate), 1, "{report:?}");
    assert_eq!(dump(&store, "x"), ["x{plugin=p}=3"]);
}

fn numbered(prefix: &str, n: usize) -> Vec<Sample> {
    (0..n)
        .map(|i| Sample::gauge("x", i as f64).label("id", format!("{prefix}{i}")))
        .collect()
}

#[test]
fn a_plugin_holds_at_most_its_series_limit() {
    let store = store();
    let p = store.source("p", plugin(3));
    let report = store.apply(p, numbered("a", 5), T0);
    assert_eq!(report.stored, 3);
    assert_eq!(report.dropped(DropReason::SeriesLimit), 2);
    assert_eq!(
        report.first_problem.as_deref(),
        Some("sample `x`: the source already holds its 3 series")
    );
    // Existing series keep updating.
    let report = store.apply(p, numbered("a", 5), T0 + 1000);
    assert_eq!((report.stored, report.dropped_total()), (3, 2));
    // A whole new label set in one snapshot takes the room of the stale one.
    let report = store.apply(p, numbered("b", 3), T0 + 2000);
    assert_eq!(report.stored, 3, "{report:?}");
    assert_eq!(store.series_count(), 3);
    assert_eq!(store.stats().held_series, 3);
    // Raising the limit by registering again takes effect.
    store.source("p", plugin(4));
    let report = store.apply(p, numbered("c", 5), T0 + 3000);
    assert_eq!(report.stored, 4);
}

#[test]
fn the_store_holds_at_most_its_global_limit() {
    let store = store_with(4);
    let a = store.source("a", plugin(100));
    let b = store.source("b", plugin(100));
    assert_eq!(store.apply(a, numbered("a", 3), T0).stored, 3);
    let report = store.apply(b, numbered("b", 3), T0);
    assert_eq!(report.stored, 1);
    assert_eq!(report.dropped(DropReason::GlobalLimit), 2);
    // Stale series anywhere make room, oldest first.
    store.apply(a, vec![], T0 + 1000);
    let report = store.apply(b, numbered("b", 3), T0 + 2000);
    assert_eq!(report.stored, 3, "{report:?}");
    assert_eq!(store.stats().held_series, 4);
}

#[test]
fn removing_a_source_removes_its_series() {
    let store = store();
    let a = store.source("a", plugin(100));
    let b = store.source("b", plugin(100));
    store.apply(
        a,
        vec![Sample::gauge("x", 1.0), Sample::gauge("only_a", 1.0)],
        T0,
    );
    store.apply(b, vec![Sample::gauge("x", 2.0)], T0);
    store.remove_source(a);
    assert_eq!(dump(&store, "*"), ["x{plugin=b}=2"]);
    assert_eq!(store.stats().held_series, 1);
    assert_eq!(store.stats().families, 1);
    let report = store.apply(a, vec![Sample::gauge("x", 1.0)], T0);
    assert_eq!(report.dropped(DropReason::UnknownSource), 1);
    assert_eq!(store.source("a", plugin(100)), a);
    assert_eq!(store.apply(a, vec![Sample::gauge("x", 1.0)], T0).stored, 1);
}

#[test]
fn history_is_bucketed_and_filtered() {
    let store = store();
    let p = store.source("p", plugin(100));
    // 10 s buckets: two values per bucket, every 5 s, for 5 minutes.
    for i in 0..60u64 {
        let v = i as f64;
        store.apply(
            p,
            vec![
                Sample::gauge("load", v).label("host", "a"),
                Sample::gauge("load", -v).label("host", "b"),
            ],
            T0 + i * 5000,
        );
    }
    let now = T0 + 59 * 5000;
    let all = store.history_at("load", &[], Duration::from_secs(3600), now);
    assert_eq!(all.len(), 2);
    let a = store.history_at(
        "load",
        &[("host".into(), "a".into())],
        Duration::from_secs(3600),
        now,
    );
    assert_eq!(a.len(), 1);
    assert_eq!(
        a[0].labels,
        [
            ("host".to_string(), "a".to_string()),
            ("plugin".to_string(), "p".to_string())
        ]
    );
    let points = &a[0].points;
    assert_eq!(points.len(), 30 + usize::from(!T0.is_multiple_of(10_000)));
    let full = points.iter().find(|p| p.count == 2).unwrap();
    assert_eq!(full.time_ms % 10_000, 0);
    assert_eq!(full.max - full.min, 1.0);
    assert_eq!(full.avg, (full.min + full.max) / 2.0);
    // The plugin label is a matcher like any other.
    let by_plugin = store.history_at(
        "load",
        &[("plugin".into(), "p".into())],
        Duration::from_secs(60),
        now,
    );
    assert_eq!(by_plugin.len(), 2);
    let last_minute: u32 = by_plugin[0].points.iter().map(|p| p.count).sum();
    assert!((12..=14).contains(&last_minute), "{last_minute}");
    assert!(
        store
            .history_at(
                "load",
                &[("host".into(), "c".into())],
                Duration::from_secs(60),
                now
            )
            .is_empty()
    );
    assert!(
        store
            .history_at("nope", &[], Duration::from_secs(60), now)
            .is_empty()
    );
}

#[test]
fn stale_series_age_out_with_their_history() {
    let store = Store::new(&StoreConfig {
        history_window: Duration::from_secs(60),
        ..StoreConfig::default()
    });
    let p = store.source("p", plugin(100));
    store.apply(
        p,
        vec![Sample::gauge("x", 1.0), Sample::gauge("y", 1.0)],
        T0,
    );
    store.apply(p, vec![Sample::gauge("x", 1.0)], T0 + 10_000);
    assert_eq!(store.stats().held_series, 2);
    store.apply(p, vec![Sample::gauge("x", 1.0)], T0 + 200_000);
    assert_eq!(store.stats().held_series, 1);
    assert_eq!(store.stats().families, 1);
}

#[test]
fn history_window_is_capped_and_memory_bounded() {
    let store = Store::new(&StoreConfig {
        history_window: Duration::from_secs(600),
        ..StoreConfig::default()
    });
    let p = store.source("p", plugin(100));
    for i in 0..500u64 {
        store.apply(p, vec![Sample::gauge("x", 1.0)], T0 + i * 10_000);
    }
    let now = T0 + 499 * 10_000;
    let h = store.history_at("x", &[], Duration::from_secs(86_400), now);
    assert!(h[0].points.len() <= 61, "{}", h[0].points.len());
    assert!(store.stats().history_bytes <= 61 * 32);
}

#[test]
fn selectors() {
    let store = store();
    let p = store.source("p", plugin(100));
    store.apply(
        p,
        vec![
            Sample::gauge("probe_a", 1.0),
            Sample::gauge("probe_x", 2.0),
            Sample::gauge("prober", 3.0),
            Sample::gauge("other", 4.0),
        ],
        T0,
    );
    let names = |selectors: &[&str]| -> Vec<String> {
        let selectors: Vec<String> = selectors.iter().map(|s| s.to_string()).collect();
        store
            .select(&selectors)
            .into_iter()
            .map(|s| s.name)
            .collect()
    };
    assert_eq!(names(&["probe_*"]), ["probe_a", "probe_x"]);
    assert_eq!(names(&["probe*"]), ["probe_a", "probe_x", "prober"]);
    assert_eq!(
        names(&["other", "probe_*", "probe_a"]),
        ["other", "probe_a", "probe_x"]
    );
    assert_eq!(names(&["*"]).len(), 4);
    assert!(names(&["nope", "nope_*"]).is_empty());
    assert!(names(&[]).is_empty());
}

#[test]
fn help_is_the_first_given_else_generated() {
    let store = store();
    let a = store.source("a", plugin(100));
    let b = store.source("b", plugin(100));
    store.apply(a, vec![Sample::gauge("x", 1.0)], T0);
    let help = |store: &Store| store.select(&sel("x"))[0].help.clone().unwrap();
    assert_eq!(
        help(&store),
        "A gauge from plugin a (it gave no help text)."
    );
    store.apply(b, vec![Sample::gauge("x", 1.0).help("First.")], T0);
    store.apply(a, vec![Sample::gauge("x", 1.0).help("Second.")], T0);
    assert_eq!(help(&store), "First.");
}

#[test]
fn explicit_timestamps_place_values_in_history() {
    let store = store();
    let p = store.source("p", plugin(100));
    let mut s = Sample::gauge("x", 1.0);
    s.timestamp_ms = Some(T0 - 120_000);
    store.apply(p, vec![s.clone()], T0);
    s.timestamp_ms = Some(T0 + 3_600_000); // future: clamped to now
    s.value = 2.0;
    store.apply(p, vec![s], T0);
    let h = store.history_at("x", &[], Duration::from_secs(3600), T0);
    let times: Vec<u64> = h[0].points.iter().map(|p| p.time_ms).collect();
    assert_eq!(
        times,
        [(T0 - 120_000) / 10_000 * 10_000, T0 / 10_000 * 10_000]
    );
    assert_eq!(store.select(&sel("x"))[0].timestamp_ms, Some(T0));
}

#[test]
fn per_series_memory_is_small() {
    let size = std::mem::size_of::<Option<inner::Series>>();
    assert!(size <= 176, "Series is {size} bytes");
    let store = store();
    let p = store.source("p", plugin(20_000));
    let samples: Vec<Sample> = (0..1000)
        .map(|i| {
            Sample::gauge("metric_name_value", 1.0)
                .label("instance", format!("host-{i}"))
                .label("job", "node")
                .label("zone", "eu-west-1")
        })
        .collect();
    store.apply(p, samples, T0);
    let stats = store.stats();
    let per_series = stats.approx_bytes / stats.held_series;
    assert!(per_series < 400, "{per_series} bytes per series");
}
