//! HTTP ingestion against the real binary: seed 000's curl examples verbatim,
//! seed 002's sidecar endpoints, the `monitoring_*` metrics with their values,
//! the service and event views, and the heartbeat watcher's transitions
//! reaching a sink plugin.

use serde_json::{Value, json};
use std::process::Command;
use std::time::Duration;
use wasmon_test_support::{Host, HostOptions, StatusCode, guests, metric_value, promtool_check};

const BIN: &str = env!("CARGO_BIN_EXE_wasmon");
const WAIT: Duration = Duration::from_secs(20);

fn host(config: &str) -> Host {
    let host = Host::start(
        HostOptions::new(BIN).config(&format!("[sampling]\nenabled = false\n{config}")),
    );
    host.wait_ready(WAIT);
    host
}

/// Runs a seed README curl command as it stands, with the host's address
/// for `localhost:9400`; returns (HTTP status, body).
fn curl(host: &Host, command: &str) -> (u16, Value) {
    let command = command.replace("http://localhost:9400", &host.base_url());
    let output = Command::new("sh")
        .arg("-c")
        .arg(format!("{command} -sS -w '\\n%{{http_code}}'"))
        .output()
        .expect("curl runs");
    assert!(output.status.success(), "{command}: {output:?}");
    let text = String::from_utf8(output.stdout).unwrap();
    let (body, status) = text.rsplit_once('\n').unwrap();
    (
        status.trim().parse().unwrap(),
        serde_json::from_str(body).unwrap(),
    )
}

fn metrics(host: &Host) -> String {
    let (status, body) = host.get("/metrics");
    assert_eq!(status, StatusCode::OK);
    body
}

#[test]
fn seed_000_curl_examples_work_verbatim_and_show_in_metrics() {
    let host = host("");
    // The two examples of seed 000's README, character for character.
    let (status, body) = curl(
        &host,
        r#"curl -X POST http://localhost:9400/heartbeat -H 'Content-Type: application/json' \
     -d '{"service": "edge-cam01", "phase": "edge_loop"}'"#,
    );
    assert_eq!((status, &body["status"]), (200, &json!("ok")), "{body}");
    let (status, body) = curl(
        &host,
        r#"curl -X POST http://localhost:9400/events -H 'Content-Type: application/json' \
     -d '{"service": "edge-cam01", "event_type": "error", "detail": "model timeout"}'"#,
    );
    assert_eq!(status, 200, "{body}");
    let id = body["id"].as_str().unwrap().to_string();
    assert_eq!(id.len(), 36, "a UUID: {body}");
    assert!(body["time"].as_str().unwrap().ends_with('Z'));

    // Task counters: event types with a component.
    for (event_type, component) in [
        ("success", "inference"),
        ("success", "inference"),
        ("failure", "inference"),
        ("failure", "upload"),
        ("warning", "upload"),
    ] {
        let (status, _) = host.post_json(
            "/events",
            &json!({"service": "edge-cam01", "event_type": event_type, "component": component}),
        );
        assert_eq!(status, StatusCode::OK);
    }

    let m = metrics(&host);
    let svc = [("service", "edge-cam01")];
    assert_eq!(
        metric_value(&m, "monitoring_service_status", &svc),
        Some(1.0)
    );
    let last_seen = metric_value(&m, "monitoring_service_last_seen_seconds", &svc).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(
        (now - last_seen).abs() < 60.0,
        "last seen {last_seen}, now {now}"
    );
    let events = |t: &str| {
        metric_value(
            &m,
            "monitoring_events_total",
            &[("service", "edge-cam01"), ("event_type", t)],
        )
    };
    assert_eq!(events("error"), Some(1.0));
    assert_eq!(events("success"), Some(2.0));
    assert_eq!(events("failure"), Some(2.0));
    assert_eq!(events("warning"), Some(1.0));
    let task = |name: &str, c: &str| {
        metric_value(&m, name, &[("service", "edge-cam01"), ("component", c)])
    };
    assert_eq!(
        task("monitoring_task_success_total", "inference"),
        Some(2.0)
    );
    assert_eq!(
        task("monitoring_task_failures_total", "inference"),
        Some(1.0)
    );
    assert_eq!(task("monitoring_task_failures_total", "upload"), Some(1.0));
    assert_eq!(task("monitoring_task_success_total", "upload"), None);
    assert_eq!(
        metric_value(&m, "wasmon_ingest_accepted_total", &[("kind", "heartbeat")]),
        Some(1.0)
    );
    assert_eq!(
        metric_value(&m, "wasmon_ingest_accepted_total", &[("kind", "event")]),
        Some(6.0)
    );
    assert!(
        metric_value(
            &m,
            "wasmon_ingest_received_bytes_total",
            &[("route", "/heartbeat")]
        )
        .unwrap()
            > 40.0
    );
    assert_eq!(promtool_check(&m), Ok(()));

    let service = host.get_json("/api/services/edge-cam01");
    assert_eq!(service["status"], "up");
    assert_eq!(service["phase"], "edge_loop");
    assert_eq!(service["heartbeats"], 1);
    assert_eq!(service["events"]["success"], 2);
    let list = host.get_json("/api/services");
    assert_eq!(
        (list["total"].clone(), list["up"].clone()),
        (json!(1), json!(1))
    );

    let page = host.get_json("/api/events?service=edge-cam01&event_type=error");
    assert_eq!(page["total"], 1);
    let event = &page["events"][0];
    assert_eq!(event["id"], id.as_str());
    assert_eq!(event["detail"], "model timeout");
    assert_eq!(event["severity"], "critical");
    assert_eq!(event["source"], "ingest");
}

fn job_event(
    app: &str,
    entity: &str,
    id: &str,
    parent: Option<&str>,
    kind: &str,
    status: &str,
) -> Value {
    json!({
        "idempotency_key": format!("{id}-{kind}"),
        "site_id": "fab1",
        "app": {"app_id": "8f8c2f5e-0000-4000-8000-000000000001", "name": app, "version": "1.0.0"},
        "entity": {"type": entity, "id": id, "parent_id": parent, "business_key": "daily-batch", "sub_key": null},
        "event": {"kind": kind, "at": "2026-11-30T06:00:00Z", "status": status,
                  "metrics": {"duration_s": 1.25, "cpu_user_s": 0.5, "mem_max_mb": 40.0},
                  "metadata": {"operator": "ci"}},
        "shift": "night"
    })
}

#[test]
fn seed_002_sidecar_endpoints_take_job_events_singly_and_in_batches() {
    let host = host("");
    let health = host.get_json("/v1/health");
    assert_eq!(health["status"], "ok");
    assert!(health["version"].is_string());

    let (status, body) = host.post_json(
        "/v1/event",
        &job_event("etl", "job", "p-1", None, "started", "running"),
    );
    assert_eq!(status, StatusCode::OK, "{body}");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["ok"], true);
    let started_id = body["id"].as_str().unwrap().to_string();

    // The SDK's own path and a bare array.
    let batch = json!([
        job_event("etl", "subjob", "c-1", Some("p-1"), "finished", "succeeded"),
        job_event("etl", "subjob", "c-2", Some("p-1"), "finished", "failed"),
        job_event("etl", "subjob", "c-3", Some("p-1"), "error", "failed"),
    ]);
    let (status, body) = host.post_json("/v1/ingest/events:batch", &batch);
    assert_eq!(status, StatusCode::OK, "{body}");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["total"], 3);
    let ids: Vec<String> = body["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    assert_eq!(ids.len(), 3);
    // `{"events": [...]}` and a seed 000 event in the same batch.
    let (status, body) = host.post_json(
        "/v1/events/batch",
        &json!({"events": [
            job_event("etl", "job", "p-1", None, "finished", "succeeded"),
            {"service": "etl", "event_type": "note", "detail": "mixed shapes"},
        ]}),
    );
    assert_eq!(status, StatusCode::OK, "{body}");

    let page = host.get_json("/api/events?service=etl&event_type=subjob.*&limit=2");
    assert_eq!(page["total"], 3);
    assert_eq!(page["has_more"], true);
    let newest: Vec<_> = page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["id"].clone())
        .collect();
    assert_eq!(newest, [json!(ids[2]), json!(ids[1])], "newest first");
    let rest = host.get_json("/api/events?service=etl&event_type=subjob.*&limit=2&offset=2");
    assert_eq!(rest["has_more"], false);
    assert_eq!(rest["events"][0]["id"], ids[0].as_str());
    let child = &rest["events"][0];
    assert_eq!(child["event_type"], "subjob.finished");
    assert_eq!(child["component"], "subjob");
    let attributes = &child["attributes"];
    assert_eq!(attributes["entity.parent_id"], "p-1");
    assert_eq!(attributes["entity.business_key"], "daily-batch");
    assert_eq!(attributes["event.metrics.duration_s"], 1.25);
    assert_eq!(attributes["event.metadata.operator"], "ci");
    assert_eq!(attributes["site_id"], "fab1");
    assert_eq!(attributes["shift"], "night", "unknown fields are kept");
    let started = host.get_json("/api/events?event_type=job.started");
    assert_eq!(started["events"][0]["id"], started_id.as_str());

    let m = metrics(&host);
    let count = |name: &str| metric_value(&m, name, &[("service", "etl"), ("component", "subjob")]);
    assert_eq!(count("monitoring_task_success_total"), Some(1.0));
    assert_eq!(count("monitoring_task_failures_total"), Some(2.0));
    assert_eq!(
        metric_value(
            &m,
            "monitoring_events_total",
            &[("service", "etl"), ("event_type", "job.finished")]
        ),
        Some(1.0)
    );
    assert_eq!(promtool_check(&m), Ok(()));
    let etl = host.get_json("/api/services/etl");
    assert_eq!(
        etl["status"], "unknown",
        "events alone say nothing of liveness"
    );
}

/// The ids the sink recorder accepted, and the ids of `service.*` events.
fn delivered(host: &Host) -> Vec<String> {
    host.get_json("/api/plugins/recorder/state")["state"]["delivered"]
        .as_str()
        .map(|d| serde_json::from_str::<Vec<String>>(d).unwrap())
        .unwrap_or_default()
}

#[test]
fn a_silent_service_goes_down_and_comes_back_and_a_sink_receives_both() {
    let host = Host::start(
        HostOptions::new(BIN)
            .config("[sampling]\nenabled = false\n")
            .env("MONITOR_HEARTBEAT_TIMEOUT", "1")
            .env("MONITOR_HEARTBEAT_CHECK_INTERVAL", "0.2")
            .plugin("recorder", guests::GUEST_SINK_RECORDER)
            .manifest("recorder", "events = [\"service.*\"]\n[config]\n"),
    );
    host.wait_ready(WAIT);
    host.wait_for_log("heartbeat watcher started", WAIT);
    let beat = || {
        let (status, body) = host.post_json("/heartbeat", &json!({"service": "edge-cam02"}));
        assert_eq!(status, StatusCode::OK, "{body}");
    };
    beat();
    let down = host.wait_until(WAIT, || {
        let s = host.get_json("/api/services/edge-cam02");
        (s["status"] == "down").then_some(s)
    });
    assert!(down["down_since"].is_string());
    assert!(down["seconds_since_seen"].as_f64().unwrap() >= 1.0);
    assert_eq!(
        metric_value(
            &metrics(&host),
            "monitoring_service_status",
            &[("service", "edge-cam02")]
        ),
        Some(0.0)
    );
    host.wait_for_log("service down", WAIT);

    beat();
    assert_eq!(
        host.get_json("/api/services/edge-cam02")["status"],
        "up",
        "up on its next heartbeat"
    );
    assert_eq!(
        metric_value(
            &metrics(&host),
            "monitoring_service_status",
            &[("service", "edge-cam02")]
        ),
        Some(1.0)
    );
    let transitions = host.get_json("/api/events?event_type=service.*");
    let events = transitions["events"].as_array().unwrap();
    let types: Vec<_> = events
        .iter()
        .map(|e| e["event_type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["service.up", "service.down"], "newest first");
    assert_eq!(events[1]["severity"], "critical");
    assert_eq!(events[1]["source"], "heartbeat");
    let ids: Vec<String> = events
        .iter()
        .rev()
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect();
    let got = host.wait_until(WAIT, || {
        let d = delivered(&host);
        (d.len() >= 2).then_some(d)
    });
    assert_eq!(got, ids, "the sink received down, then up");
    let m = metrics(&host);
    assert_eq!(
        metric_value(&m, "wasmon_heartbeat_transitions_total", &[("to", "down")]),
        Some(1.0)
    );
    assert_eq!(
        metric_value(&m, "wasmon_heartbeat_transitions_total", &[("to", "up")]),
        Some(1.0)
    );
}

#[test]
fn monitor_heartbeat_enabled_0_disables_the_watcher() {
    let host = Host::start(
        HostOptions::new(BIN)
            .config("[sampling]\nenabled = false\n")
            .env("MONITOR_HEARTBEAT_ENABLED", "0")
            .env("MONITOR_HEARTBEAT_TIMEOUT", "1")
            .env("MONITOR_HEARTBEAT_CHECK_INTERVAL", "0.2"),
    );
    host.wait_ready(WAIT);
    host.wait_for_log("heartbeat watcher disabled", WAIT);
    let (status, _) = host.post_json("/heartbeat", &json!({"service": "k8s-pod"}));
    assert_eq!(status, StatusCode::OK);
    // Three timeouts of silence: an enabled watcher would have marked it down.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(host.get_json("/api/services/k8s-pod")["status"], "up");
    assert!(!host.logs().contains("service down"));
    assert_eq!(
        metric_value(
            &metrics(&host),
            "monitoring_service_status",
            &[("service", "k8s-pod")]
        ),
        Some(1.0)
    );
}
