//! Issue 10, `sink-cloudwatch` and `[capabilities.aws]` against moto in
//! server mode (which verifies SigV4 with the IAM user's key): events become
//! CloudWatch metrics (`ListMetrics`, `GetMetricStatistics` see them) and log
//! lines (`GetLogEvents` returns each with its id), every request signed by
//! the host with credentials from its environment that never show in the
//! API or the logs; a 400 (a log group that does not exist) dead-letters the
//! batch; a wrong secret is refused by moto and dead-lettered; signing is
//! confined to the granted services and their endpoint, and the request
//! still needs `[capabilities.http]`'s allow-list.

use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::time::Duration;
use wasmon_test_support::{Host, HostOptions, S3Server, guests};

const BIN: &str = env!("CARGO_BIN_EXE_wasmon");
const WAIT: Duration = Duration::from_secs(60);

fn unique(name: &str) -> String {
    format!("itcw-{name}-{}-{}", std::process::id(), fastrand::u32(..))
}

/// A `sink-cloudwatch` manifest: `aws` is the `[capabilities.aws]` body
/// after `region`, `config` the `[config]` body after `region` and `endpoint`.
fn manifest(moto: &S3Server, allow: &str, aws: &str, config: &str) -> String {
    format!(
        "events = [\"task.*\"]\nbatch_size = 50\nmax_restarts = 1000\ntimeout = \"5s\"\n\
         [capabilities.http]\nallow = [{allow:?}]\n\
         [capabilities.aws]\nregion = \"us-east-1\"\nendpoint = {endpoint:?}\n{aws}\n\
         [config]\nregion = \"us-east-1\"\nendpoint = {endpoint:?}\ntimeout = \"3s\"\n{config}",
        endpoint = moto.endpoint()
    )
}

fn start(moto: &S3Server, sinks: &[(&str, String)]) -> Host {
    let mut options = HostOptions::new(BIN)
        .config(
            "[sampling]\nenabled = false\n[plugins.defaults]\nbackoff_initial = \"100ms\"\nbackoff_max = \"500ms\"\n",
        )
        .env("AWS_ACCESS_KEY_ID", moto.access_key())
        .env("AWS_SECRET_ACCESS_KEY", moto.secret_key())
        .env("WRONG_SECRET", "not-the-secret-at-all")
        // The test's own environment passes on: no stray session token.
        .env("AWS_SESSION_TOKEN", "");
    for (name, manifest) in sinks {
        options = options
            .plugin(name, guests::SINK_CLOUDWATCH)
            .manifest(name, manifest);
    }
    let host = Host::start(options);
    host.wait_ready(WAIT);
    // Sinks loaded at start read the log from its start; wait for them so
    // that no event is posted before they are there.
    host.wait_for_log("plugins loaded", WAIT);
    host
}

/// Posts events of `service`: `(event_type, severity)` each; their ids.
fn post(host: &Host, service: &str, events: &[(&str, &str)]) -> Vec<String> {
    let body: Vec<Value> = events
        .iter()
        .enumerate()
        .map(|(n, (t, s))| {
            json!({"service": service, "event_type": t, "severity": s, "detail": format!("n={n}")})
        })
        .collect();
    let (status, text) = host.post_json("/v1/events/batch", &json!(body));
    assert!(status.is_success(), "{status}: {text}");
    let text: Value = serde_json::from_str(&text).unwrap();
    text["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|id| id.as_str().unwrap().to_string())
        .collect()
}

fn log_messages(moto: &S3Server, group: &str, stream: &str) -> Vec<Value> {
    let streams = moto.call(
        "logs",
        "describe_log_streams",
        json!({"logGroupName": group}),
    );
    let exists = streams["logStreams"]
        .as_array()
        .is_some_and(|s| s.iter().any(|s| s["logStreamName"] == stream));
    if !exists {
        return Vec::new();
    }
    let answer = moto.call(
        "logs",
        "get_log_events",
        json!({"logGroupName": group, "logStreamName": stream, "startFromHead": true}),
    );
    answer["events"].as_array().cloned().unwrap_or_default()
}

#[test]
fn metrics_and_log_lines_reach_cloudwatch_signed_by_the_host() {
    let moto = S3Server::shared();
    let (group, namespace) = (unique("group"), unique("ns"));
    moto.call("logs", "create_log_group", json!({"logGroupName": group}));
    let allow = format!("127.0.0.1:{}", moto.port());
    let host = start(
        moto,
        &[(
            "cw",
            manifest(
                moto,
                &allow,
                "services = [\"monitoring\", \"logs\"]",
                &format!(
                    "namespace = {namespace:?}\nlog_group = {group:?}\nlog_stream = \"edge\"\n"
                ),
            ),
        )],
    );
    let mut events = vec![("task.done", "ok"); 12];
    events.extend(vec![("task.failed", "critical"); 8]);
    let ids = post(&host, "billing", &events);
    // Every event a log line (the stream created by the sink), in order,
    // its message the event's JSON with its id.
    let lines = host.wait_until(WAIT, || {
        let lines = log_messages(moto, &group, "edge");
        (lines.len() >= ids.len()).then_some(lines)
    });
    let got: Vec<String> = lines
        .iter()
        .map(|l| {
            let message: Value = serde_json::from_str(l["message"].as_str().unwrap()).unwrap();
            assert_eq!(message["service"], "billing");
            assert_eq!(l["timestamp"], message["time_ms"]);
            message["id"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(got, ids, "each event once, in order, with its id");
    // The metrics: one Events series per type and severity, summing the counts.
    let listed = moto.call(
        "cloudwatch",
        "list_metrics",
        json!({"Namespace": namespace}),
    );
    let series: BTreeSet<String> = listed["Metrics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            let dims: Vec<String> = m["Dimensions"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| {
                    format!(
                        "{}={}",
                        d["Name"].as_str().unwrap(),
                        d["Value"].as_str().unwrap()
                    )
                })
                .collect();
            format!(
                "{}{{{}}}",
                m["MetricName"].as_str().unwrap(),
                dims.join(",")
            )
        })
        .collect();
    assert_eq!(
        series,
        BTreeSet::from([
            "Events{EventType=task.done,Severity=ok}".to_string(),
            "Events{EventType=task.failed,Severity=critical}".to_string(),
        ])
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let stats = moto.call(
        "cloudwatch",
        "get_metric_statistics",
        json!({
            "Namespace": namespace, "MetricName": "Events",
            "Dimensions": [{"Name": "EventType", "Value": "task.failed"}, {"Name": "Severity", "Value": "critical"}],
            "StartTime": now - 3600, "EndTime": now + 3600, "Period": 60, "Statistics": ["Sum"],
        }),
    );
    let sum: f64 = stats["Datapoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["Sum"].as_f64().unwrap())
        .sum();
    assert_eq!(sum, 8.0, "{stats}");
    // Signed by the host; the keys never show.
    let signed = host.metric(
        "wasmon_plugin_capability_calls_total",
        &[
            ("plugin", "cw"),
            ("capability", "aws"),
            ("result", "signed"),
        ],
    );
    assert!(signed.unwrap_or(0.0) >= 2.0, "{signed:?}");
    let view = host.get("/api/plugins/cw").1;
    assert!(view.contains("AWS_SECRET_ACCESS_KEY"), "{view}");
    for secret in [moto.secret_key(), moto.access_key()] {
        assert!(!view.contains(secret), "a key in the API: {view}");
        assert!(!host.logs().contains(secret), "a key in the logs");
    }
}

#[test]
fn a_400_or_a_wrong_secret_dead_letters_and_signing_stays_within_the_grant() {
    let moto = S3Server::shared();
    let allow = format!("127.0.0.1:{}", moto.port());
    let logs_only = "services = [\"logs\"]";
    let host = start(
        moto,
        &[
            // The group does not exist: PutLogEvents and CreateLogStream answer 400.
            (
                "nogroup",
                manifest(
                    moto,
                    &allow,
                    logs_only,
                    &format!("namespace = \"\"\nlog_group = {:?}\n", unique("missing")),
                ),
            ),
            // Signed with a wrong secret: moto answers 403 SignatureDoesNotMatch.
            (
                "badkey",
                manifest(
                    moto,
                    &allow,
                    "services = [\"monitoring\"]\nsecret_key_env = \"WRONG_SECRET\"",
                    "namespace = \"itcw\"\n",
                ),
            ),
            // Metrics asked to be signed for `monitoring`, which is not granted.
            (
                "ungranted",
                manifest(moto, &allow, logs_only, "namespace = \"itcw\"\n"),
            ),
            // Granted and signed, but moto's port is not in the http allow-list.
            (
                "offlist",
                manifest(
                    moto,
                    "127.0.0.1:1",
                    "services = [\"monitoring\"]",
                    "namespace = \"itcw\"\n",
                ),
            ),
        ],
    );
    let ids = post(&host, "edge", &[("task.done", "ok"), ("task.done", "ok")]);
    for sink in ["nogroup", "badkey"] {
        host.wait_until(WAIT, || {
            let n = host.metric("wasmon_sink_dead_letters_total", &[("sink", sink)]);
            (n.unwrap_or(0.0) >= ids.len() as f64).then_some(())
        });
    }
    let logs = host.logs();
    assert!(logs.contains("ResourceNotFoundException"), "{logs}");
    assert!(logs.contains("HTTP 403"), "{logs}");
    assert!(
        !logs.contains("not-the-secret-at-all"),
        "the wrong secret in the logs"
    );
    // Outside the grant: a capability fault naming what was refused.
    for (sink, why) in [
        ("ungranted", "not in capabilities.aws.services"),
        ("offlist", "capabilities.http.allow"),
    ] {
        let error = host.wait_until(WAIT, || {
            let view = host.get_json(&format!("/api/plugins/{sink}"));
            (view["last_error"]["kind"] == "capability").then_some(view["last_error"].clone())
        });
        let message = error["message"].as_str().unwrap();
        assert!(message.contains(why), "{sink}: {message}");
    }
    let refused = host.metric(
        "wasmon_plugin_capability_calls_total",
        &[
            ("plugin", "ungranted"),
            ("capability", "aws"),
            ("result", "not_granted"),
        ],
    );
    assert!(refused.unwrap_or(0.0) >= 1.0, "{refused:?}");
}

#[test]
fn the_example_manifest_sends_metrics_and_logs_when_pointed_at_moto() {
    let moto = S3Server::shared();
    moto.call(
        "logs",
        "create_log_group",
        json!({"logGroupName": "/wasmon/events"}),
    );
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../examples/plugins.d/cloudwatch.toml");
    let endpoint = moto.endpoint();
    let example = std::fs::read_to_string(path)
        .unwrap()
        .replace("eu-west-1", "us-east-1")
        .replace(
            "allow = [\"monitoring.us-east-1.amazonaws.com:443\", \"logs.us-east-1.amazonaws.com:443\"]",
            &format!("allow = [\"127.0.0.1:{}\"]", moto.port()),
        )
        .replace(
            "# endpoint = \"http://127.0.0.1:5000\"",
            &format!("endpoint = {endpoint:?}"),
        );
    assert_eq!(example.matches(&endpoint).count(), 2, "{example}");
    let host = start(moto, &[("cloudwatch", example)]);
    let ids = post(&host, "example", &[("task.done", "ok")]);
    let lines = host.wait_until(WAIT, || {
        let lines = log_messages(moto, "/wasmon/events", "cloudwatch");
        (!lines.is_empty()).then_some(lines)
    });
    assert!(lines[0]["message"].as_str().unwrap().contains(&ids[0]));
}
