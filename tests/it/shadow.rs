//! Shadow rules (issue 14): `rule-threshold` serves at one threshold while a
//! shadow at another evaluates the same input (`guest-series-replay` drives
//! a CPU ratio series, past points included); the diff, no sink and no alert
//! state for the shadow, a trapping shadow backing off, a backtest over ten
//! minutes of controlled history, promote/rollback, and bad inputs.

mod api;
mod backtest;

use serde_json::Value;
use std::time::Duration;
use wasmon_test_support::{Host, HostOptions, Recorder, StatusCode, guests, metric_value};

const BIN: &str = env!("CARGO_BIN_EXE_wasmon");
const WAIT: Duration = Duration::from_secs(20);

/// The rule's manifest: `cpu_high` fires (critical) at `alert` and above.
fn threshold(alert: f64) -> String {
    format!(
        r#"
interval = "100ms"
select = ["fixture_cpu_ratio"]
[config]
[[config.checks]]
name = "cpu_high"
metric = "fixture_cpu_ratio"
alert = {alert}
"#
    )
}

/// The collector's manifest: past `points`, then `value` live.
fn replay(points: &[(u64, f64)], value: f64) -> String {
    let points: Vec<String> = points.iter().map(|(t, v)| format!("[{t}, {v}]")).collect();
    format!(
        "interval = \"50ms\"\n[config]\nvalue = {value}\npoints = [{}]\n",
        points.join(", ")
    )
}

fn webhook(receiver: &Recorder) -> String {
    format!(
        "events = [\"alert.*\"]\n[capabilities.http]\nallow = [\"{}\"]\n[config]\nurl = \"{}\"\n",
        receiver.addr(),
        receiver.url("/hook")
    )
}

const CONFIG: &str = "[sampling]\nenabled = false\n[plugins.defaults]\nbackoff_initial = \"300ms\"\nbackoff_max = \"1s\"\n";

fn options(serving: f64, value: f64) -> HostOptions {
    HostOptions::new(BIN)
        .config(CONFIG)
        .plugin("cpu", guests::GUEST_SERIES_REPLAY)
        .manifest("cpu", &replay(&[], value))
        .plugin("threshold", guests::RULE_THRESHOLD)
        .manifest("threshold", &threshold(serving))
}

fn request(
    host: &Host,
    method: &str,
    path: &str,
    content_type: &str,
    body: &[u8],
) -> (StatusCode, Value) {
    let r = host.request(method, path, &[("content-type", content_type)], Some(body));
    let json = serde_json::from_slice(&r.body).unwrap_or(Value::Null);
    (r.status, json)
}

fn shadow(host: &Host) -> Value {
    host.get_json("/api/plugins/threshold/shadow")
}

fn set_value(host: &Host, value: f64) {
    host.plugins().write_manifest("cpu", &replay(&[], value));
}

/// Every alert of rule `threshold` in `/api/alerts`.
fn serving_alerts(host: &Host) -> Vec<Value> {
    host.get_json("/api/alerts?rule=threshold")["alerts"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn metrics(host: &Host) -> String {
    host.get("/metrics").1
}

#[test]
fn a_lower_threshold_shadow_alerts_only_in_the_diff_and_reaches_no_sink() {
    let receiver = Recorder::start();
    let host = Host::start(
        options(0.90, 0.7)
            .plugin("hook", guests::SINK_WEBHOOK)
            .manifest("hook", &webhook(&receiver)),
    );
    host.wait_ready(WAIT);
    host.wait_until(WAIT, || {
        metric_value(&metrics(&host), "fixture_cpu_ratio", &[]).filter(|v| *v == 0.7)
    });
    // Installed by upload: a manifest-only shadow (the serving component).
    let (status, view) = request(
        &host,
        "POST",
        "/api/plugins/threshold/shadow",
        "application/toml",
        threshold(0.50).as_bytes(),
    );
    assert_eq!(status, StatusCode::CREATED, "{view}");
    assert_eq!(view["component"], "serving");
    assert_eq!(view["manifest_source"], "file");
    assert!(host.dir().join("plugins.d/threshold.shadow.toml").exists());

    let diff = host.wait_until(WAIT, || {
        let s = shadow(&host);
        (s["counts"]["only_shadow"] == 1 && s["evaluations"].as_u64() >= Some(10)).then_some(s)
    });
    let entry = &diff["diff"][0];
    assert_eq!(entry["kind"], "only_shadow", "{diff}");
    assert_eq!(entry["name"], "cpu_high");
    assert_eq!(entry["labels"]["cpu"], "total");
    assert_eq!(entry["shadow"]["severity"], "critical");
    assert_eq!(entry["shadow"]["firing"], true);
    assert!(entry["serving"].is_null());
    let first = entry["shadow"]["first_seen_ms"].as_u64().unwrap();
    assert!(entry["shadow"]["last_seen_ms"].as_u64().unwrap() > first);
    assert_eq!(diff["counts"]["only_serving"], 0);
    assert_eq!(diff["status"], "running");
    assert_eq!(
        metric_value(
            &metrics(&host),
            "wasmon_rule_shadow_diff_total",
            &[("rule", "threshold"), ("kind", "only_shadow")]
        ),
        Some(1.0)
    );

    // The shadow's alert changed no alert state and reached no sink.
    assert!(
        serving_alerts(&host).is_empty(),
        "{:?}",
        serving_alerts(&host)
    );
    let alerts = host.get_json("/api/alerts");
    assert_eq!(alerts["overall"], "OK", "{alerts}");
    assert_eq!(
        metric_value(
            &metrics(&host),
            "wasmon_alert_active",
            &[("rule", "threshold")]
        ),
        None
    );
    assert!(receiver.requests().is_empty(), "{:?}", receiver.requests());

    // Over 0.9 the serving version fires: its alert, and only it, reaches
    // the sink (once); the diff now says both fired, at different times.
    set_value(&host, 0.95);
    host.wait_until(WAIT, || {
        (serving_alerts(&host).iter().any(|a| a["state"] == "firing")).then_some(())
    });
    let firing = receiver.wait_for_requests(1, WAIT);
    let events: Vec<Value> = firing
        .iter()
        .flat_map(|r| r.json()["events"].as_array().cloned().unwrap_or_default())
        .collect();
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0]["type"], "alert.firing");
    let diff = host.wait_until(WAIT, || {
        let s = shadow(&host);
        (s["counts"]["different"] == 1).then_some(s)
    });
    assert_eq!(diff["diff"][0]["serving"]["firing"], true, "{diff}");
    assert_eq!(diff["counts"]["only_shadow"], 0);
}

#[test]
fn a_shadow_that_traps_is_reported_and_backs_off_while_the_serving_version_fires_and_resolves() {
    // Installed by file: NAME.shadow.wasm (its own component), the serving manifest.
    let host = Host::start(options(0.50, 0.2).plugin("threshold.shadow", guests::GUEST_RULE_TRAP));
    let view = host.wait_until(WAIT, || {
        let (status, body) = host.get("/api/plugins/threshold/shadow");
        let s: Value = serde_json::from_str(&body).ok()?;
        (status == StatusCode::OK && s["faults"].as_u64() >= Some(3)).then_some(s)
    });
    assert_eq!(view["component"], "file");
    assert_eq!(view["manifest_source"], "serving");
    assert!(view["restarts"].as_u64() >= Some(2), "{view}");
    assert_eq!(view["last_error"]["kind"], "trap", "{view}");
    assert!(
        view["last_error"]["message"]
            .as_str()
            .unwrap()
            .contains("deliberate panic in evaluate")
    );
    host.wait_for_log("shadow crashed", WAIT);

    // The serving version is untouched: it fires and resolves as before.
    set_value(&host, 0.7);
    host.wait_until(WAIT, || {
        serving_alerts(&host)
            .iter()
            .any(|a| a["state"] == "firing")
            .then_some(())
    });
    set_value(&host, 0.2);
    host.wait_until(WAIT, || {
        serving_alerts(&host)
            .iter()
            .any(|a| a["state"] == "resolved")
            .then_some(())
    });
    let plugin = host.get_json("/api/plugins/threshold");
    assert_eq!(plugin["status"], "running");
    assert_eq!(plugin["faults"], 0);

    // Like a plugin: restarted with backoff (300 ms, 600 ms, 1 s, ...) and
    // failed after max_restarts (5) faults in a row, the serving version
    // evaluating every 100 ms all along.
    let failed = host.wait_until(WAIT, || {
        let s = shadow(&host);
        (s["status"] == "failed").then_some(s)
    });
    assert_eq!(failed["faults"], 6, "{failed}");
    host.wait_for_log("shadow failed", WAIT);
    let m = metrics(&host);
    let faults = metric_value(
        &m,
        "wasmon_rule_shadow_faults_total",
        &[("rule", "threshold"), ("reason", "trap")],
    );
    assert_eq!(faults, Some(6.0));
    assert_eq!(
        metric_value(&m, "wasmon_rule_shadow_up", &[("rule", "threshold")]),
        Some(0.0)
    );
    let evaluations = metric_value(
        &m,
        "wasmon_rule_evaluations_total",
        &[("rule", "threshold"), ("result", "ok")],
    )
    .unwrap();
    assert!(
        evaluations > 12.0,
        "the shadow backed off: 6 faults, {evaluations} serving evaluations"
    );
    assert_eq!(host.get_json("/api/plugins/threshold")["faults"], 0);
}

#[test]
fn a_hung_shadow_never_delays_the_serving_version() {
    // The shadow spins in every evaluate until its 2 s budget stops it; the
    // serving version evaluates every 100 ms all along.
    let host = Host::start(
        options(0.50, 0.2)
            .plugin("threshold.shadow", guests::GUEST_RULE_TRAP)
            .manifest(
                "threshold.shadow",
                "timeout = \"2s\"\n[config]\nhang = true\n",
            ),
    );
    let serving_ok = |m: &str| {
        metric_value(
            m,
            "wasmon_rule_evaluations_total",
            &[("rule", "threshold"), ("result", "ok")],
        )
        .unwrap_or(0.0)
    };
    // Two timeouts: at least 4 s of the shadow hanging.
    let view = host.wait_until(WAIT, || {
        let (status, body) = host.get("/api/plugins/threshold/shadow");
        let s: Value = serde_json::from_str(&body).ok()?;
        (status == StatusCode::OK && s["faults"].as_u64() >= Some(2)).then_some(s)
    });
    assert_eq!(view["last_error"]["kind"], "timeout", "{view}");
    let m = metrics(&host);
    let evaluations = serving_ok(&m);
    // Waiting on the shadow would allow one serving evaluation per 2 s.
    assert!(
        evaluations >= 15.0,
        "{evaluations} serving evaluations while the shadow hung twice for 2 s"
    );
    let skipped = metric_value(
        &m,
        "wasmon_rule_shadow_evaluations_total",
        &[("rule", "threshold"), ("result", "skipped")],
    );
    assert!(
        skipped >= Some(10.0),
        "inputs skipped while the shadow ran: {skipped:?}"
    );
    assert_eq!(host.get_json("/api/plugins/threshold")["faults"], 0);
}

#[test]
fn promote_carries_the_alert_state_over_survives_a_restart_and_rollback_restores_the_previous_version()
 {
    let mut host = Host::start(options(0.90, 0.95));
    let firing = host.wait_until(WAIT, || {
        serving_alerts(&host)
            .into_iter()
            .find(|a| a["state"] == "firing")
    });
    let (status, view) = request(
        &host,
        "POST",
        "/api/plugins/threshold/shadow",
        "application/toml",
        threshold(0.50).as_bytes(),
    );
    assert_eq!(status, StatusCode::CREATED, "{view}");
    let generation = host.get_json("/api/plugins/threshold")["generation"]
        .as_u64()
        .unwrap();

    let (status, promoted) = request(
        &host,
        "POST",
        "/api/plugins/threshold/shadow/promote",
        "application/json",
        b"",
    );
    assert_eq!(status, StatusCode::OK, "{promoted}");
    assert_eq!(promoted["outcome"]["result"], "loaded", "{promoted}");
    let plugin = &promoted["plugin"];
    assert_eq!(plugin["generation"].as_u64(), Some(generation + 1));
    assert_eq!(
        host.get("/api/plugins/threshold/shadow").0,
        StatusCode::NOT_FOUND
    );
    let dir = host.dir().join("plugins.d");
    assert!(!dir.join("threshold.shadow.toml").exists());
    assert!(
        std::fs::read_to_string(dir.join("threshold.prev.toml"))
            .unwrap()
            .contains("alert = 0.9")
    );
    // The alert state carries over: the same alert keeps firing since the
    // same time, not raised again.
    let calls = plugin["calls"].as_u64().unwrap_or(0);
    host.wait_until(WAIT, || {
        (host.get_json("/api/plugins/threshold")["calls"].as_u64() > Some(calls + 5)).then_some(())
    });
    let after: Vec<Value> = serving_alerts(&host);
    assert_eq!(after.len(), 1, "{after:?}");
    assert_eq!(after[0]["state"], "firing");
    assert_eq!(
        after[0]["active_since"], firing["active_since"],
        "{after:?} vs {firing}"
    );

    // The promoted version (0.5) serves: at 0.7 its alert keeps firing.
    set_value(&host, 0.7);
    host.wait_until(WAIT, || {
        metric_value(&metrics(&host), "fixture_cpu_ratio", &[]).filter(|v| *v == 0.7)
    });
    let calls = host.get_json("/api/plugins/threshold")["calls"].as_u64();
    host.wait_until(WAIT, || {
        (host.get_json("/api/plugins/threshold")["calls"].as_u64() > calls.map(|c| c + 5))
            .then_some(())
    });
    let after = serving_alerts(&host);
    assert_eq!(after[0]["state"], "firing", "{after:?}");

    // Promoted on disk: after a restart it serves again (fires at 0.7).
    host.restart();
    host.wait_until(WAIT, || {
        serving_alerts(&host)
            .iter()
            .any(|a| a["state"] == "firing")
            .then_some(())
    });

    let (status, rolled) = request(
        &host,
        "POST",
        "/api/plugins/threshold/rollback",
        "application/json",
        b"",
    );
    assert_eq!(status, StatusCode::OK, "{rolled}");
    assert_eq!(rolled["outcome"]["result"], "loaded", "{rolled}");
    assert!(
        std::fs::read_to_string(dir.join("threshold.toml"))
            .unwrap()
            .contains("alert = 0.9")
    );
    assert!(
        std::fs::read_to_string(dir.join("threshold.prev.toml"))
            .unwrap()
            .contains("alert = 0.5")
    );
    // The previous version (0.9) serves: at 0.7 the alert resolves.
    host.wait_until(WAIT, || {
        serving_alerts(&host)
            .iter()
            .any(|a| a["state"] == "resolved")
            .then_some(())
    });
}
