//! End to end with real processes: the `wasmon` binary runs the three example
//! plugins against local HTTP servers. `collector-http-probe` probes a target,
//! `rule-threshold` fires when the probe fails, `sink-webhook` delivers the
//! alert to a receiver; the probe's samples are in `/metrics`, which
//! `promtool check metrics` accepts and a real Prometheus scrapes.

use serde_json::Value;
use std::time::Duration;
use wasmon_test_support::{
    Host, HostOptions, PrometheusServer, Recorder, guests, metric_value, promtool_check,
};

const BIN: &str = env!("CARGO_BIN_EXE_wasmon");
const WAIT: Duration = Duration::from_secs(20);

fn probe_manifest(target: &Recorder) -> String {
    format!(
        r#"
interval = "200ms"
timeout = "2s"
[capabilities.http]
allow = ["{addr}"]
timeout = "1s"
[config]
timeout = "500ms"
budget = "1s"
[[config.targets]]
name = "app"
url = "{url}"
"#,
        addr = target.addr(),
        url = target.url("/health"),
    )
}

const THRESHOLD: &str = r#"
interval = "200ms"
select = ["probe_success"]
[config]
[[config.checks]]
name = "probe_failed"
metric = "probe_success"
direction = "below"
alert = 0
summary_labels = ["target"]
"#;

fn webhook_manifest(receiver: &Recorder) -> String {
    format!(
        r#"
events = ["alert.*"]
[capabilities.http]
allow = ["{addr}"]
[config]
url = "{url}"
headers = {{ Authorization = "Bearer hook-secret" }}
"#,
        addr = receiver.addr(),
        url = receiver.url("/hook"),
    )
}

fn start(target: &Recorder, receiver: &Recorder) -> Host {
    Host::start(
        HostOptions::new(BIN)
            .config("[sampling]\ninterval = \"1s\"\n[plugins.defaults]\nbackoff_initial = \"100ms\"\nbackoff_max = \"500ms\"\n")
            .plugin("http_probe", guests::COLLECTOR_HTTP_PROBE)
            .manifest("http_probe", &probe_manifest(target))
            .plugin("threshold", guests::RULE_THRESHOLD)
            .manifest("threshold", THRESHOLD)
            .plugin("webhook", guests::SINK_WEBHOOK)
            .manifest("webhook", &webhook_manifest(receiver)),
    )
}

/// Every event the receiver got, in order.
fn delivered(receiver: &Recorder) -> Vec<Value> {
    receiver
        .requests()
        .iter()
        .flat_map(|r| r.json()["events"].as_array().cloned().unwrap_or_default())
        .collect()
}

fn wait_for_event(receiver: &Recorder, event_type: &str) -> Value {
    wasmon_test_support::wait_until(WAIT, || {
        delivered(receiver)
            .into_iter()
            .find(|e| e["type"] == event_type)
    })
}

#[test]
fn a_failing_probe_fires_an_alert_that_reaches_the_webhook_and_resolves() {
    let target = Recorder::start();
    let receiver = Recorder::start();
    let host = start(&target, &receiver);

    let metrics = host.wait_until(WAIT, || {
        let (_, m) = host.get("/metrics");
        (metric_value(
            &m,
            "probe_success",
            &[("plugin", "http_probe"), ("target", "app")],
        ) == Some(1.0))
        .then_some(m)
    });
    assert_eq!(
        metric_value(&metrics, "probe_http_status_code", &[("target", "app")]),
        Some(200.0)
    );
    assert!(
        metric_value(&metrics, "probe_duration_seconds", &[("target", "app")])
            .is_some_and(|v| v > 0.0 && v < 1.0)
    );
    assert_eq!(
        metric_value(
            &metrics,
            "wasmon_plugin_up",
            &[("plugin", "http_probe"), ("kind", "collector")]
        ),
        Some(1.0)
    );
    promtool_check(&metrics).unwrap();
    assert!(target.requests().iter().all(|r| r.path == "/health"));
    assert_eq!(host.get_json("/api/alerts")["overall"], "OK");

    target.set_status(503);
    let firing = wait_for_event(&receiver, "alert.firing");
    assert_eq!(firing["severity"], "critical");
    assert_eq!(firing["alert"]["name"], "probe_failed");
    assert_eq!(firing["alert"]["rule"], "threshold");
    assert_eq!(firing["alert"]["state"], "firing");
    assert_eq!(firing["alert"]["labels"]["target"], "app");
    assert_eq!(firing["alert"]["value"], 0.0);
    let hook = &receiver.requests()[0];
    assert_eq!(hook.method, "POST");
    assert_eq!(hook.path, "/hook");
    assert_eq!(hook.header("authorization"), Some("Bearer hook-secret"));
    assert_eq!(hook.header("content-type"), Some("application/json"));

    let alerts = host.get_json("/api/alerts");
    assert_eq!(alerts["overall"], "ALERT", "{alerts}");
    let (_, metrics) = host.get("/metrics");
    assert_eq!(
        metric_value(&metrics, "probe_http_status_code", &[("target", "app")]),
        Some(503.0)
    );
    assert_eq!(
        metric_value(
            &metrics,
            "wasmon_alert_active",
            &[("alertname", "probe_failed"), ("alertstate", "firing")]
        ),
        Some(1.0)
    );
    assert_eq!(
        metric_value(&metrics, "wasmon_alerts_status", &[]),
        Some(2.0)
    );
    promtool_check(&metrics).unwrap();

    target.set_status(200);
    let resolved = wait_for_event(&receiver, "alert.resolved");
    assert_eq!(resolved["alert"]["name"], "probe_failed");
    assert_eq!(
        resolved["alert"]["active_since_ms"],
        firing["alert"]["active_since_ms"]
    );
    host.wait_until(WAIT, || {
        (host.get_json("/api/alerts")["overall"] == "OK").then_some(())
    });
    let ids: Vec<String> = delivered(&receiver)
        .iter()
        .map(|e| e["id"].to_string())
        .collect();
    let unique: std::collections::HashSet<&String> = ids.iter().collect();
    assert_eq!(
        unique.len(),
        ids.len(),
        "each event is delivered once: {ids:?}"
    );
    // The receiver sees a delivery before the sink's call returns and the
    // host counts it: wait for the count rather than read it once.
    host.wait_until(WAIT, || {
        let (_, metrics) = host.get("/metrics");
        metric_value(
            &metrics,
            "wasmon_sink_delivered_events_total",
            &[("sink", "webhook")],
        )
        .filter(|v| *v >= 2.0)
    });
}

#[test]
fn a_webhook_that_is_down_gets_the_alert_once_it_is_back() {
    let target = Recorder::start();
    let receiver = Recorder::start();
    receiver.set_status(503);
    let host = start(&target, &receiver);
    host.wait_until(WAIT, || {
        let (_, m) = host.get("/metrics");
        metric_value(&m, "probe_success", &[("target", "app")]).map(|_| ())
    });
    target.set_status(500);
    // The sink is retried with backoff while the receiver answers 503...
    receiver.wait_for_requests(2, WAIT);
    let (_, metrics) = host.get("/metrics");
    assert!(
        metric_value(
            &metrics,
            "wasmon_sink_failures_total",
            &[("sink", "webhook"), ("kind", "retryable")]
        )
        .is_some_and(|v| v >= 1.0)
    );
    // ...and delivers the same batch once it is back: nothing is lost.
    receiver.set_status(200);
    let count = receiver.requests().len();
    receiver.wait_for_requests(count + 1, WAIT);
    let bodies: Vec<Value> = receiver.requests().iter().map(|r| r.json()).collect();
    let first = &bodies[0]["events"][0];
    assert_eq!(first["type"], "alert.firing");
    assert_eq!(first["alert"]["name"], "probe_failed");
    assert!(
        bodies.iter().all(|b| b["events"][0]["id"] == first["id"]),
        "every retry resends the same batch"
    );
    host.wait_until(WAIT, || {
        let (_, m) = host.get("/metrics");
        (metric_value(
            &m,
            "wasmon_sink_delivered_events_total",
            &[("sink", "webhook")],
        ) == Some(1.0))
        .then_some(())
    });
}

#[test]
fn prometheus_scrapes_the_probe_samples() {
    let target = Recorder::start();
    let receiver = Recorder::start();
    let host = start(&target, &receiver);
    let instance = host.addr().to_string();
    let prometheus = PrometheusServer::start(&[instance.as_str()]);
    prometheus.wait_for_target_up(&instance, Duration::from_secs(30));
    let result = wasmon_test_support::wait_until(Duration::from_secs(30), || {
        let r = prometheus.query(r#"probe_success{plugin="http_probe",target="app"}"#);
        (!r.is_empty()).then_some(r)
    });
    assert_eq!(result[0]["value"][1], "1");
    let up = prometheus.query(r#"wasmon_plugin_up{plugin="threshold"}"#);
    assert_eq!(up[0]["value"][1], "1");
}
