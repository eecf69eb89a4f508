//! Backtests over history the test wrote: `guest-series-replay` emits
//! timestamped points of the last ten minutes, so the store's buckets hold a
//! past the test controls, and the alerts a backtest reports can be checked
//! to one step.

use super::{BIN, CONFIG, WAIT, metrics, replay, request, serving_alerts, threshold};
use serde_json::Value;
use wasmon_test_support::{Host, HostOptions, StatusCode, guests, metric_value};

#[test]
fn a_backtest_of_the_shadow_over_ten_minutes_reports_the_expected_alerts_within_one_step() {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    // 60 points, 10 s apart, over the last 10 minutes: 0.7 for points 20..35, else 0.2.
    let time = |i: u64| now - 600_000 + i * 10_000 + 5_000;
    let points: Vec<(u64, f64)> = (0..60)
        .map(|i| (time(i), if (20..35).contains(&i) { 0.7 } else { 0.2 }))
        .collect();
    let host = Host::start(
        HostOptions::new(BIN)
            .config(CONFIG)
            .plugin("cpu", guests::GUEST_SERIES_REPLAY)
            .manifest("cpu", &replay(&points, 0.1))
            .plugin("threshold", guests::RULE_THRESHOLD)
            .manifest("threshold", &threshold(0.90))
            .manifest("threshold.shadow", &threshold(0.50)),
    );
    // Every past point is in (the live value comes after them).
    host.wait_until(WAIT, || {
        metric_value(&metrics(&host), "fixture_cpu_ratio", &[]).filter(|v| *v == 0.1)
    });
    host.wait_until(WAIT, || {
        (host.get("/api/plugins/threshold/shadow").0 == StatusCode::OK).then_some(())
    });

    let (status, report) = request(
        &host,
        "POST",
        "/api/plugins/threshold/backtest?window=10m&step=10s&version=shadow",
        "application/json",
        b"",
    );
    assert_eq!(status, StatusCode::OK, "{report}");
    assert_eq!(report["version"], "shadow");
    assert_eq!(report["complete"], true, "{report}");
    assert_eq!(report["steps"], 60);
    assert_eq!(report["evaluated"], 60);
    assert_eq!(report["series"], 1);
    let fields: Vec<&str> = report["unreconstructed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["field"].as_str().unwrap())
        .collect();
    assert!(
        fields.contains(&"services") && fields.contains(&"events"),
        "{fields:?}"
    );
    let timeline = report["timeline"].as_array().unwrap();
    assert_eq!(
        timeline.len(),
        2,
        "exactly one alert raised and resolved: {timeline:?}"
    );
    let near = |entry: &Value, expected: u64| {
        let at = entry["time_ms"].as_u64().unwrap();
        assert!(at.abs_diff(expected) <= 10_000, "{entry} vs {expected}");
    };
    assert_eq!(timeline[0]["state"], "firing");
    assert_eq!(timeline[0]["name"], "cpu_high");
    assert_eq!(timeline[0]["severity"], "critical");
    assert_eq!(timeline[0]["value"], 0.7);
    near(&timeline[0], time(20));
    assert_eq!(timeline[1]["state"], "resolved");
    near(&timeline[1], time(35));
    assert!(report["serving_history"].is_array());

    // The serving version (0.9) would have raised nothing.
    let (status, serving) = request(
        &host,
        "POST",
        "/api/plugins/threshold/backtest?window=10m&step=10s",
        "application/json",
        b"",
    );
    assert_eq!(status, StatusCode::OK, "{serving}");
    assert_eq!(serving["version"], "serving");
    assert_eq!(
        serving["timeline"].as_array().map(Vec::len),
        Some(0),
        "{serving}"
    );
    // Nothing of the backtests reached the alert state.
    assert!(serving_alerts(&host).is_empty());
}
