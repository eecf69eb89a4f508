//! Alerts from a rule plugin reaching a sink plugin through the event log,
//! against the real binary: the host's state machine (pending → firing after
//! `for` → resolved), retries of a failing sink with the same batch until it
//! accepts, dead-lettering of permanent failures, and a sink's cursor and state
//! surviving its reload.

use serde_json::Value;
use std::time::Duration;
use wasmon_test_support::{Host, HostOptions, guests};

const BIN: &str = env!("CARGO_BIN_EXE_wasmon");
const WAIT: Duration = Duration::from_secs(20);

fn rule_manifest(firing: bool) -> String {
    format!("interval = \"100ms\"\nfor = \"500ms\"\n[config]\nfiring = {firing}\n")
}

fn start(sink_config: &str) -> Host {
    let host = Host::start(
        HostOptions::new(BIN)
            .config("[sampling]\nenabled = false\n[plugins.defaults]\nbackoff_initial = \"100ms\"\nbackoff_max = \"400ms\"\n")
            .plugin("recorder", guests::GUEST_SINK_RECORDER)
            .manifest("recorder", &format!("events = [\"alert.*\"]\n[config]\n{sink_config}"))
            .plugin("static", guests::GUEST_RULE_STATIC)
            .manifest("static", &rule_manifest(true)),
    );
    host.wait_ready(WAIT);
    host
}

/// The recorder's state: how often `deliver` was called and the ids it accepted.
fn recorded(host: &Host) -> (u64, Vec<String>) {
    let state = host.get_json("/api/plugins/recorder/state")["state"].clone();
    let calls = state["calls"]
        .as_str()
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let delivered = state["delivered"]
        .as_str()
        .map(|d| serde_json::from_str::<Vec<String>>(d).unwrap())
        .unwrap_or_default();
    (calls, delivered)
}

fn alert(host: &Host) -> Option<Value> {
    host.get_json("/api/alerts")["alerts"]
        .as_array()
        .and_then(|a| a.first().cloned())
}

fn millis(rfc3339: &Value) -> i128 {
    let t = humantime::parse_rfc3339(rfc3339.as_str().unwrap()).unwrap();
    t.duration_since(std::time::SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i128
}

#[test]
fn an_alert_fires_after_its_for_duration_and_reaches_a_failing_sink_once_it_recovers() {
    let host = start("fail_first = 2\n");
    let pending = host.wait_until(WAIT, || alert(&host).filter(|a| a["state"] == "pending"));
    assert_eq!(pending["rule"], "static");
    assert_eq!(pending["status"], "WARNING");
    assert_eq!(
        host.get_json("/api/alerts")["overall"],
        "OK",
        "pending is not firing yet"
    );

    let firing = host.wait_until(WAIT, || alert(&host).filter(|a| a["state"] == "firing"));
    // The alert's own times: the first evaluation may run before the test
    // sees the host ready, so a clock started here would prove nothing.
    let held = millis(&firing["since"]) - millis(&firing["active_since"]);
    assert!(
        held >= 500,
        "fired {held} ms after the condition began, before its `for`"
    );
    assert_eq!(firing["severity"], "warning");
    assert_eq!(host.get_json("/api/alerts")["overall"], "WARNING");

    // The sink fails twice (retryable), then accepts the same batch.
    let (calls, delivered) = host.wait_until(WAIT, || {
        Some(recorded(&host)).filter(|(_, d)| !d.is_empty())
    });
    assert_eq!(calls, 3, "two failures, then the delivery");
    assert_eq!(delivered.len(), 1, "one alert.firing event: {delivered:?}");
    assert_eq!(
        host.metric(
            "wasmon_sink_failures_total",
            &[("sink", "recorder"), ("kind", "retryable")]
        ),
        Some(2.0)
    );
    assert_eq!(
        host.metric(
            "wasmon_sink_delivered_events_total",
            &[("sink", "recorder")]
        ),
        Some(1.0)
    );

    // Resolving it (a manifest change of the rule) delivers a second event.
    host.plugins()
        .write_manifest("static", &rule_manifest(false));
    host.wait_until(WAIT, || alert(&host).filter(|a| a["state"] == "resolved"));
    assert_eq!(host.get_json("/api/alerts")["overall"], "OK");
    let (_, delivered) =
        host.wait_until(WAIT, || Some(recorded(&host)).filter(|(_, d)| d.len() == 2));
    assert_ne!(delivered[0], delivered[1]);
    host.wait_until(WAIT, || {
        (host.metric("wasmon_sink_backlog_events", &[("sink", "recorder")]) == Some(0.0))
            .then_some(())
    });
}

#[test]
fn a_permanent_failure_is_dead_lettered_and_the_sink_moves_on() {
    let host = start("fail_first = 1\nfail_permanent = true\n");
    host.wait_until(WAIT, || {
        (host.metric(
            "wasmon_sink_dead_letter_events_total",
            &[("sink", "recorder")],
        ) == Some(1.0))
        .then_some(())
    });
    assert_eq!(
        host.metric(
            "wasmon_sink_failures_total",
            &[("sink", "recorder"), ("kind", "permanent")]
        ),
        Some(1.0)
    );
    // The next event (the resolution) is delivered, not the dead-lettered one.
    host.plugins()
        .write_manifest("static", &rule_manifest(false));
    let (_, delivered) = host.wait_until(WAIT, || {
        Some(recorded(&host)).filter(|(_, d)| !d.is_empty())
    });
    assert_eq!(delivered.len(), 1);
    let view = host.get_json("/api/plugins/recorder");
    assert_eq!(view["status"], "running");
    assert_eq!(view["last_error"]["kind"], "delivery");
}

#[test]
fn a_reloaded_sink_keeps_its_cursor_and_its_state() {
    let host = start("");
    host.wait_until(WAIT, || Some(recorded(&host)).filter(|(_, d)| d.len() == 1));
    // A new manifest for the sink while the rule is about to resolve.
    host.plugins().write_manifest(
        "recorder",
        "events = [\"alert.*\"]\nbatch_size = 10\n[config]\n",
    );
    host.wait_until(WAIT, || {
        (host.get_json("/api/plugins/recorder")["generation"] == 2).then_some(())
    });
    host.plugins()
        .write_manifest("static", &rule_manifest(false));
    let (_, delivered) =
        host.wait_until(WAIT, || Some(recorded(&host)).filter(|(_, d)| d.len() == 2));
    assert_ne!(
        delivered[0], delivered[1],
        "no redelivery of what the old version acknowledged"
    );
}
