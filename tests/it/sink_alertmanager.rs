//! `sink-alertmanager` against a real Alertmanager (Debian
//! `prometheus-alertmanager`, one per test binary): a probe fails, the
//! threshold rule fires, the alert appears in Alertmanager's
//! `GET /api/v2/alerts` with its labels and annotations, is re-sent (its
//! `endsAt` moves on) while it fires, and leaves the list once it resolves.
//! A scripted Alertmanager answering 503 gets the batch again, one answering
//! 400 gets it dead-lettered.

use crate::sinks::{self, dead_lettered};
use serde_json::Value;
use std::time::{Duration, SystemTime};
use wasmon_test_support::{AlertmanagerServer, Host, HostOptions, Recorder, guests};

const BIN: &str = env!("CARGO_BIN_EXE_wasmon");
const WAIT: Duration = Duration::from_secs(20);

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

fn probe_manifest(target: &Recorder) -> String {
    format!(
        "interval = \"200ms\"\n[capabilities.http]\nallow = [\"{}\"]\ntimeout = \"1s\"\n\
         [config]\ntimeout = \"500ms\"\nbudget = \"1s\"\n[[config.targets]]\nname = \"app\"\nurl = \"{}\"\n",
        target.addr(),
        target.url("/health"),
    )
}

/// The sink's manifest: a short tick and re-send period, so a firing alert
/// is re-sent several times within its short validity.
fn sink_manifest(addr: &str, url: &str, test: &str) -> String {
    format!(
        r#"
events = ["alert.*"]
tick = "200ms"
[capabilities.http]
allow = ["{addr}"]
[config]
url = "{url}"
resend_interval = "500ms"
validity = "3s"
labels = {{ test = "{test}" }}
generator_url = "http://wasmon.test:9400/api/alerts"
"#
    )
}

fn millis(rfc3339: &Value) -> u128 {
    humantime::parse_rfc3339(rfc3339.as_str().unwrap())
        .unwrap()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_millis()
}

fn now_ms() -> u128 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_millis()
}

#[test]
fn a_firing_alert_appears_in_alertmanager_is_re_sent_and_resolves_there() {
    let am = AlertmanagerServer::shared();
    let target = Recorder::start();
    let test = "fires_and_resolves";
    let host = Host::start(
        sinks::options("500ms")
            .plugin("http_probe", guests::COLLECTOR_HTTP_PROBE)
            .manifest("http_probe", &probe_manifest(&target))
            .plugin("threshold", guests::RULE_THRESHOLD)
            .manifest("threshold", THRESHOLD)
            .plugin("alertmanager", guests::SINK_ALERTMANAGER)
            .manifest("alertmanager", &sink_manifest(&am.addr(), &am.url(), test)),
    );
    host.wait_ready(WAIT);
    let ours = [("test", test), ("alertname", "probe_failed")];

    target.set_status(503);
    let failing_at = now_ms();
    let alert = host.wait_until(WAIT, || am.alerts_with(&ours).into_iter().next());
    let fired_ms = now_ms() - failing_at;
    let labels = &alert["labels"];
    assert_eq!(labels["rule"], "threshold");
    assert_eq!(labels["severity"], "critical");
    assert_eq!(labels["target"], "app");
    assert_eq!(alert["status"]["state"], "active");
    assert!(
        alert["annotations"]["summary"]
            .as_str()
            .is_some_and(|s| s.contains("app")),
        "{alert}"
    );
    assert_eq!(alert["generatorURL"], "http://wasmon.test:9400/api/alerts");
    let first_end = millis(&alert["endsAt"]);
    assert!(
        millis(&alert["startsAt"]) < first_end,
        "firing: it ends in the future: {alert}"
    );

    // Re-sent while it fires: still listed after the first endsAt passed,
    // with a later endsAt (validity 3 s, re-sent every 500 ms).
    let resent = host.wait_until(WAIT, || {
        let alert = am.alerts_with(&ours).into_iter().next()?;
        (now_ms() > first_end + 500 && millis(&alert["endsAt"]) > first_end).then_some(alert)
    });
    assert_eq!(resent["status"]["state"], "active");
    assert_eq!(
        am.alerts_with(&ours).len(),
        1,
        "one alert, re-sent, not many"
    );

    // The probe recovers: the alert resolves in Alertmanager well before its
    // validity would have run out on its own.
    target.set_status(200);
    let resolved_by = now_ms() + 2_500;
    let recovered_at = now_ms();
    host.wait_until(WAIT, || am.alerts_with(&ours).is_empty().then_some(()));
    eprintln!(
        "alertmanager: firing listed {fired_ms} ms after the probe failed, gone {} ms after it recovered",
        now_ms() - recovered_at
    );
    assert!(
        now_ms() < resolved_by,
        "gone only after its validity ran out: resolution was not sent"
    );
    assert_eq!(
        host.get_json("/api/plugins/alertmanager")["status"],
        "running"
    );
}

#[test]
fn alertmanager_503_is_retried_and_400_dead_letters_the_batch() {
    let scripted = Recorder::start();
    scripted.set_response(503, "text/plain", "maintenance");
    let rule = |firing: bool| format!("interval = \"100ms\"\n[config]\nfiring = {firing}\n");
    let host = Host::start(
        sinks::options("400ms")
            .plugin("static", guests::GUEST_RULE_STATIC)
            .manifest("static", &rule(true))
            .plugin("alertmanager", guests::SINK_ALERTMANAGER)
            .manifest(
                "alertmanager",
                &sink_manifest(
                    &scripted.addr().to_string(),
                    &scripted.base_url(),
                    "scripted",
                ),
            ),
    );
    // 503: the same alert again, with backoff.
    let requests = scripted.wait_for_requests(2, WAIT);
    assert_eq!(requests[0].path, "/api/v2/alerts");
    assert_eq!(requests[0].header("content-type"), Some("application/json"));
    let first = requests[0].json();
    assert_eq!(first[0]["labels"]["alertname"], "static");
    assert_eq!(first[0]["labels"]["severity"], "warning");
    assert_eq!(requests[1].json()[0]["labels"], first[0]["labels"]);
    assert_eq!(dead_lettered(&host, "alertmanager"), 0.0);

    // 400: dead-lettered, and the refused alert is not re-sent.
    let mark = host.log_mark();
    scripted.set_response(
        400,
        "application/json",
        r#"{"code":400,"message":"bad alert"}"#,
    );
    host.wait_for_log_since(mark, "HTTP 400", WAIT);
    host.wait_until(WAIT, || {
        (dead_lettered(&host, "alertmanager") >= 1.0).then_some(())
    });
    scripted.set_status(200);
    scripted.clear();
    // The next change (the resolution) goes through on its own.
    host.plugins().write_manifest("static", &rule(false));
    let requests = scripted.wait_for_requests(1, WAIT);
    // The refused alert was never remembered, so its resolution covers the
    // label sets it can have had (warning, critical), all ended.
    let resolved = requests[0].json();
    let resolved = resolved.as_array().unwrap();
    assert!(
        resolved
            .iter()
            .any(|a| a["labels"]["severity"] == "warning"),
        "{resolved:?}"
    );
    for alert in resolved {
        assert_eq!(alert["labels"]["alertname"], "static");
        assert!(
            millis(&alert["endsAt"]) <= now_ms(),
            "resolved: ends now or before: {alert}"
        );
    }
    assert_eq!(dead_lettered(&host, "alertmanager"), 1.0);
}

#[test]
fn the_example_manifest_posts_firing_alerts() {
    let am = AlertmanagerServer::shared();
    let example = sinks::example("alertmanager.toml").replace("127.0.0.1:9093", &am.addr());
    assert!(
        example.contains(&am.addr()),
        "the example names 127.0.0.1:9093"
    );
    let _host = Host::start(
        HostOptions::new(BIN)
            .config("[sampling]\nenabled = false\n")
            .plugin("example_static", guests::GUEST_RULE_STATIC)
            .manifest(
                "example_static",
                "interval = \"100ms\"\n[config]\nfiring = true\n",
            )
            .plugin("alertmanager", guests::SINK_ALERTMANAGER)
            .manifest("alertmanager", &example),
    );
    let alert = wasmon_test_support::wait_until(WAIT, || {
        am.alerts_with(&[("rule", "example_static"), ("source", "wasmon")])
            .into_iter()
            .next()
    });
    assert_eq!(alert["labels"]["alertname"], "static");
    assert_eq!(alert["labels"]["severity"], "warning");
    assert_eq!(alert["generatorURL"], "http://127.0.0.1:9400/api/alerts");
    // Valid for 4 × the 1 m re-send interval.
    let valid_ms = millis(&alert["endsAt"]) - millis(&alert["updatedAt"]);
    assert!((200_000..=250_000).contains(&valid_ms), "{alert}");
}
