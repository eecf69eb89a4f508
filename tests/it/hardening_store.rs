//! Hardening of what the host keeps and exports (issue 13, points 2, 7, 8),
//! against the real binary and hostile plugins:
//! - a rule flooding alerts with fresh labels (`guest-rule-flood`) stays
//!   within its `max_alerts` and `alerts.max_resolved`, every drop counted and
//!   shown in `/api/plugins/{name}`, and `/api/alerts` pages;
//! - collectors holding and churning as many series as they may
//!   (`guest-series-flood`), one of them named like the system sampler, never
//!   make the host's own series vanish: new GPU series still get in;
//! - control characters and bad counters (`guest-bad-values`) never reach
//!   `/metrics`, and are counted;
//! - the sink backlog counts only what the event log still holds.

use serde_json::{Value, json};
use std::collections::HashSet;
use std::time::Duration;
use wasmon_test_support::{
    FakeDevice, FakeDriver, FakeNvml, Host, HostOptions, StatusCode, guests, metric_value,
    promtool_check,
};

const BIN: &str = env!("CARGO_BIN_EXE_wasmon");
const WAIT: Duration = Duration::from_secs(30);

fn metrics(host: &Host) -> String {
    let (status, body) = host.get("/metrics");
    assert_eq!(status, StatusCode::OK, "{body}");
    body
}

fn metric(host: &Host, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    metric_value(&metrics(host), name, labels)
}

/// Lines of `body` exporting a series of family `name`.
fn series_count(body: &str, name: &str) -> usize {
    body.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")) || l.starts_with(&format!("{name} ")))
        .count()
}

fn as_u64(value: &Value) -> u64 {
    value
        .as_u64()
        .unwrap_or_else(|| panic!("not a count: {value}"))
}

#[test]
fn a_rule_flooding_fresh_alerts_is_capped_counted_and_paged() {
    let host = Host::start(
        HostOptions::new(BIN)
            .config("[sampling]\nenabled = false\n[alerts]\nmax_resolved = 100\n")
            .plugin("flood", guests::GUEST_RULE_FLOOD)
            .manifest(
                "flood",
                "interval = \"100ms\"\nmax_alerts = 50\n[config]\ncount = 2000\n",
            ),
    );
    host.wait_ready(WAIT);
    // Enough evaluations for the resolved alerts to pass their cap.
    let stats = host.wait_until(WAIT, || {
        let stats = host.get_json("/api/plugins/flood")["alerts"].clone();
        (stats["dropped_resolved"].as_u64() > Some(0)).then_some(stats)
    });
    assert_eq!(stats["max_alerts"], 50, "{stats}");
    assert_eq!(stats["active"], 50, "{stats}");
    assert!(as_u64(&stats["resolved"]) <= 100, "{stats}");
    assert!(as_u64(&stats["dropped"]) >= 2 * 1950, "{stats}");

    // The counter rises with every evaluation; the export stays at the cap.
    let before = metric(&host, "wasmon_alerts_dropped_total", &[("rule", "flood")]).unwrap();
    let body = host.wait_until(WAIT, || {
        let body = metrics(&host);
        let now = metric_value(&body, "wasmon_alerts_dropped_total", &[("rule", "flood")])?;
        (now > before).then_some(body)
    });
    assert!(series_count(&body, "wasmon_alert_active") <= 50, "{body}");
    assert_eq!(promtool_check(&body), Ok(()));

    // Paged: 20 at a time, every alert once, bounded in all.
    let first = host.get_json("/api/alerts?limit=20");
    assert_eq!(first["alerts"].as_array().unwrap().len(), 20, "{first}");
    assert_eq!(first["has_more"], true);
    assert_eq!(
        (first["limit"].clone(), first["offset"].clone()),
        (json!(20), json!(0))
    );
    let total = as_u64(&first["total"]);
    assert!((50..=150).contains(&total), "{total}");
    let firing = host.get_json("/api/alerts?rule=flood&state=firing&limit=1000");
    assert_eq!(firing["total"], 50, "{firing}");
    let labels: HashSet<String> = firing["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            assert_eq!(a["state"], "firing");
            a["labels"]["i"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(labels.len(), 50);
    let mut seen = 0;
    let mut offset = 0;
    loop {
        let page = host.get_json(&format!(
            "/api/alerts?rule=flood&state=firing&limit=7&offset={offset}"
        ));
        seen += page["alerts"].as_array().unwrap().len();
        offset += 7;
        if page["has_more"] != true {
            break;
        }
    }
    assert!((49..=56).contains(&seen), "{seen}");
    assert!(
        host.get_json("/api/alerts?offset=100000")["alerts"]
            .as_array()
            .unwrap()
            .is_empty()
    );

    // Bad parameters are 400 with a detail.
    for query in [
        "limit=0",
        "limit=1001",
        "limit=ten",
        "offset=-1",
        "state=burning",
        "rule=no%20such",
        "colour=red",
    ] {
        let (status, body) = host.get(&format!("/api/alerts?{query}"));
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
        let detail: Value = serde_json::from_str(&body).unwrap();
        assert!(
            detail["detail"].as_str().is_some_and(|d| !d.is_empty()),
            "{query}: {body}"
        );
    }
}

#[test]
fn plugins_at_their_caps_never_starve_the_host_series() {
    let fake = FakeNvml::new(&FakeDriver::new(vec![FakeDevice::new(0)]));
    let flood = |series: usize| {
        format!("interval = \"100ms\"\n[config]\nseries = {series}\nfresh = true\n")
    };
    let host = Host::start(
        HostOptions::new(BIN)
            .env("FAKE_NVML_CONFIG", fake.control_file())
            .config(&format!(
                "[sampling]\ninterval = \"100ms\"\n[store]\nmax_series = 300\n{}",
                fake.gpu_config("interval = \"100ms\"\nretry_interval = \"200ms\"")
            ))
            .plugin("flood_a", guests::GUEST_SERIES_FLOOD)
            .manifest("flood_a", &flood(200))
            .plugin("flood_b", guests::GUEST_SERIES_FLOOD)
            .manifest("flood_b", &flood(200))
            // Named like the system sampler: another source, not a replacement.
            .plugin("system", guests::GUEST_SERIES_FLOOD)
            .manifest("system", &flood(50)),
    );
    host.wait_ready(WAIT);
    // The system sampler's first snapshot can come after the plugins filled
    // their budget: it gets in all the same.
    host.wait_until(WAIT, || metric(&host, "wasmon_load1", &[]).map(|_| ()));
    // The plugins' budget is full, and refusals are counted.
    host.wait_until(WAIT, || {
        let refused = metrics(&host)
            .lines()
            .filter(|l| {
                l.starts_with("wasmon_series_refused_total{")
                    && l.contains("reason=\"global_limit\"")
                    && l.contains("kind=\"plugin\"")
            })
            .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
            .sum::<f64>();
        (refused > 0.0).then_some(())
    });
    let summary = host.get_json("/api/store");
    assert_eq!(summary["max_series"], 300, "{summary}");
    assert!(as_u64(&summary["plugin_series"]) <= 300, "{summary}");
    let refused: u64 = ["flood_a", "flood_b", "system"]
        .iter()
        .map(|p| {
            let store = host.get_json(&format!("/api/plugins/{p}"))["store"].clone();
            assert_eq!(store["kind"], "plugin", "{store}");
            store["refused"]["global_limit"].as_u64().unwrap_or(0)
        })
        .sum();
    assert!(refused > 0);

    // A host source still gets new series: a second GPU appears.
    fake.set(&FakeDriver::new(vec![
        FakeDevice::new(0),
        FakeDevice::new(1),
    ]));
    host.wait_until(WAIT, || {
        metric(&host, "wasmon_gpu_utilization_ratio", &[("gpu", "1")]).map(|_| ())
    });
    // And the system sampler's series never leave while the plugins churn.
    for _ in 0..10 {
        let body = metrics(&host);
        for name in [
            "wasmon_cpu_usage_ratio",
            "wasmon_load1",
            "wasmon_memory_available_bytes",
            "wasmon_memory_usage_ratio",
        ] {
            assert_eq!(series_count(&body, name), 1, "{name} missing:\n{body}");
        }
        assert_eq!(promtool_check(&body), Ok(()));
        std::thread::sleep(Duration::from_millis(100));
    }
    let system = host.get_json("/api/store")["sources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "system" && s["kind"] == "host")
        .cloned()
        .unwrap();
    for reason in ["reserved_limit", "global_limit", "series_limit"] {
        assert!(system["refused"][reason].is_null(), "{system}");
    }
}

#[test]
fn control_characters_and_bad_counters_never_reach_metrics() {
    let host = Host::start(
        HostOptions::new(BIN)
            .config("[sampling]\nenabled = false\n")
            .plugin("bad", guests::GUEST_BAD_VALUES)
            .manifest("bad", "interval = \"100ms\"\n"),
    );
    host.wait_ready(WAIT);
    let refused = |reason: &str| {
        metric(
            &host,
            "wasmon_series_refused_total",
            &[("source", "bad"), ("reason", reason)],
        )
    };
    // Several collections: the refusals rise with each.
    host.wait_until(WAIT, || {
        (refused("control_character")? >= 12.0).then_some(())
    });
    let resets = |body: &str| metric_value(body, "fixture_resets_total", &[("plugin", "bad")]);
    let mut previous = None;
    for _ in 0..5 {
        let body = metrics(&host);
        assert_eq!(promtool_check(&body), Ok(()));
        let raw: Vec<char> = body
            .chars()
            .filter(|c| c.is_control() && *c != '\n' && *c != '\t')
            .collect();
        assert!(
            raw.is_empty(),
            "raw control characters {raw:?} in:\n{body:?}"
        );
        for absent in [
            "fixture_ctrl",
            "fixture_negative_total",
            "fixture_nan_total",
            "fixture_infinite_total",
        ] {
            assert_eq!(series_count(&body, absent), 0, "{absent}:\n{body}");
        }
        assert!(
            body.contains("fixture_ok{plugin=\"bad\",v=\"fine\there\"} 1\n"),
            "{body}"
        );
        assert!(
            body.contains("fixture_undefined{plugin=\"bad\"} NaN\n"),
            "{body}"
        );
        assert!(
            body.contains(
                "# HELP fixture_ok Help with \u{fffd}[2J escape, \u{fffd} return, \u{fffd} bell and \u{fffd} nul.\n"
            ),
            "{body}"
        );
        // A counter that turns NaN keeps its last good value, exported.
        let flaky = metric_value(&body, "fixture_flaky_total", &[("plugin", "bad")]).unwrap();
        assert!(flaky >= 1.0 && flaky % 2.0 == 1.0, "{flaky}");
        // A counter going down is exported as is (a reset for Prometheus).
        let now = resets(&body).unwrap();
        if let Some(previous) = previous {
            assert!(now <= previous, "{now} after {previous}");
        }
        previous = Some(now);
        std::thread::sleep(Duration::from_millis(150));
    }
    let first = previous.unwrap();
    host.wait_until(WAIT, || (resets(&metrics(&host))? < first).then_some(()));
    let invalid = refused("invalid_value").unwrap();
    host.wait_until(WAIT, || (refused("invalid_value")? > invalid).then_some(()));
    let store = host.get_json("/api/plugins/bad")["store"].clone();
    assert!(
        as_u64(&store["refused"]["control_character"]) >= 12,
        "{store}"
    );
    assert!(as_u64(&store["refused"]["invalid_value"]) >= 3, "{store}");
}

#[test]
fn the_sink_backlog_counts_only_what_the_event_log_holds() {
    // A 256 KiB log that drops its oldest segments when full, while the sink
    // never acknowledges: what the log dropped is no longer in the backlog.
    let host = Host::start(
        HostOptions::new(BIN)
            .config(
                "[sampling]\nenabled = false\n[plugins.defaults]\nbackoff_initial = \"1s\"\n\
                 [storage]\nmax_bytes = \"256KiB\"\nwhen_full = \"drop_oldest\"\n",
            )
            .plugin("stuck", guests::GUEST_SINK_RECORDER)
            .manifest("stuck", "[config]\nfail_first = 1000000000\n"),
    );
    host.wait_ready(WAIT);
    host.wait_for_log("plugins loaded", WAIT);
    // One batch larger than the whole log can never fit: 413, not a 503 to retry.
    let huge = json!({"events": (0..1000)
        .map(|i| json!({"service": "flood", "event_type": "note", "detail": format!("event {i} {}", "x".repeat(400))}))
        .collect::<Vec<_>>()});
    let (status, body) = host.post_json("/v1/events/batch", &huge);
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert!(body.contains("storage.max_bytes"), "{body}");
    // Batches of 100 (~30 KB): each fits a segment; the log rolls and drops.
    let batch = json!({"events": (0..100)
        .map(|i| json!({"service": "flood", "event_type": "note", "detail": format!("event {i}")}))
        .collect::<Vec<_>>()});
    for _ in 0..300 {
        let (status, body) = host.post_json("/v1/events/batch", &batch);
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let health = host.wait_until(WAIT, || {
        let health = host.get_json("/v1/health");
        (as_u64(&health["events_logged"]) >= 30_000).then_some(health)
    });
    let backlog = as_u64(&health["sinks"][0]["backlog"]);
    let dropped = metric(
        &host,
        "wasmon_event_log_dropped_total",
        &[("sink", "stuck"), ("reason", "full")],
    )
    .unwrap_or(0.0) as u64;
    assert!(
        dropped > 0,
        "nothing dropped from a full 256 KiB log: {health}"
    );
    assert!(
        backlog < 30_000,
        "backlog {backlog} counts dropped events: {health}"
    );
    assert_eq!(
        backlog + dropped,
        30_000,
        "every event is either waiting or counted as dropped: {health}"
    );
    let gauge = host.wait_until(WAIT, || {
        metric(&host, "wasmon_sink_backlog_events", &[("sink", "stuck")]).filter(|g| *g > 0.0)
    });
    assert!(
        gauge <= 30_000.0 - dropped as f64,
        "the gauge counts dropped events: {gauge}"
    );
}
