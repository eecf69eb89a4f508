//! Operating wasmon, the read side (issue 11): `GET /api/history` over the
//! store's buckets, seed 001's `/metrics/{system,gpu,clients,pipelines,storage}`
//! snapshots, seed 003's `GET /health` and its `RESOURCE ...` log lines, and
//! seed 004's `/api/system/monitoring/*` against a real Prometheus.

use serde_json::Value;
use std::time::Duration;
use wasmon_test_support::{Host, HostOptions, PrometheusServer, StatusCode, guests};

const BIN: &str = env!("CARGO_BIN_EXE_wasmon");
const WAIT: Duration = Duration::from_secs(30);

const COUNTER: &str = "interval = \"200ms\"\n";

/// A host with two counters (`a`, `b`) writing `fixture_collected` 1, 2, 3...
/// every 200 ms into 1 s buckets, two minutes of history.
fn counters_host(extra: &str) -> Host {
    Host::start(
        HostOptions::new(BIN)
            .config(&format!(
                "[sampling]\nenabled = false\n[store]\nhistory_window = \"2m\"\nhistory_resolution = \"1s\"\nmax_query_points = 200\n{extra}"
            ))
            .plugin("a", guests::GUEST_COUNTER)
            .manifest("a", COUNTER)
            .plugin("b", guests::GUEST_COUNTER)
            .manifest("b", COUNTER),
    )
}

fn detail(host: &Host, path: &str, status: StatusCode, mentions: &str) {
    let (got, body) = host.get(path);
    assert_eq!(got, status, "{path}: {body}");
    let v: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"));
    let d = v["detail"]
        .as_str()
        .unwrap_or_else(|| panic!("{path}: no detail: {body}"));
    assert!(
        d.contains(mentions),
        "{path}: detail {d:?} should mention {mentions:?}"
    );
}

/// `(step start, value)` pairs of the only series of a history answer.
fn points(v: &Value) -> Vec<(u64, f64)> {
    let series = v["series"].as_array().unwrap();
    assert_eq!(series.len(), 1, "{v}");
    series[0]["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p[0].as_u64().unwrap(), p[1].as_f64().unwrap()))
        .collect()
}

#[test]
fn history_aggregates_steps_by_each_agg_and_filters_by_labels() {
    let host = counters_host("");
    let q = "/api/history?name=fixture_collected&plugin=a&window=2m&step=2s";
    host.wait_until(WAIT, || {
        let v = host.get_json(&format!("{q}&agg=max"));
        (v["series"][0]["points"].as_array().map_or(0, Vec::len) >= 5).then_some(())
    });
    let by_agg: Vec<(String, Vec<(u64, f64)>)> = ["min", "max", "avg", "last", "p95"]
        .iter()
        .map(|agg| {
            let v = host.get_json(&format!("{q}&agg={agg}"));
            assert_eq!(v["agg"], *agg);
            assert_eq!(v["step_seconds"], 2.0);
            assert_eq!(v["resolution_seconds"], 1.0);
            assert_eq!(v["series"][0]["labels"]["plugin"], "a", "{v}");
            (agg.to_string(), points(&v))
        })
        .collect();
    let get = |agg: &str, t: u64| {
        by_agg
            .iter()
            .find(|(a, _)| a == agg)
            .and_then(|(_, p)| p.iter().find(|(s, _)| *s == t))
            .map(|(_, v)| *v)
    };
    // Whole steps that every answer holds (the first and newest may be partial).
    let max = &by_agg[1].1;
    let settled: Vec<u64> = max[1..max.len() - 2].iter().map(|(t, _)| *t).collect();
    assert!(settled.len() >= 2, "{max:?}");
    let mut previous_max = 0.0;
    let mut spread = false;
    for &t in &settled {
        assert_eq!(t % 2000, 0, "steps align on Unix time");
        let (min, max, avg, last, p95) = (
            get("min", t).unwrap(),
            get("max", t).unwrap(),
            get("avg", t).unwrap(),
            get("last", t).unwrap(),
            get("p95", t).unwrap(),
        );
        // About 10 values a step, counting up: min < avg < max (equal only if
        // a loaded machine collected once in the step), the last is the max.
        assert!(min <= avg && avg <= max, "step {t}: {min} {avg} {max}");
        spread |= min < avg && avg < max;
        assert_eq!(last, max, "step {t}");
        assert!(min <= p95 && p95 <= max, "step {t}: p95 {p95}");
        assert!(
            min > previous_max,
            "steps follow each other: {min} after {previous_max}"
        );
        previous_max = max;
    }
    assert!(spread, "no step held several values: {by_agg:?}");
    // step = the resolution: one bucket a step, so p95 is the bucket's mean.
    let one = "/api/history?name=fixture_collected&plugin=a&window=30s&step=1s";
    let avg = points(&host.get_json(&format!("{one}&agg=avg")));
    let p95 = points(&host.get_json(&format!("{one}&agg=p95")));
    let common: Vec<_> = avg[..avg.len() - 2]
        .iter()
        .filter(|p| p95.contains(p))
        .collect();
    assert!(common.len() >= 3, "avg {avg:?} p95 {p95:?}");

    // No matcher: both plugins, sorted by labels; an unknown name has no series.
    let both = host.get_json("/api/history?name=fixture_collected&window=1m&step=10s&agg=last");
    let plugins: Vec<&str> = both["series"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["labels"]["plugin"].as_str().unwrap())
        .collect();
    assert_eq!(plugins, ["a", "b"]);
    let none = host.get_json("/api/history?name=no_such_metric");
    assert_eq!(none["series"], serde_json::json!([]));
    let none = host.get_json("/api/history?name=fixture_collected&plugin=zzz");
    assert_eq!(none["series"], serde_json::json!([]));
}

#[test]
fn history_refuses_bad_windows_steps_aggs_and_answers_above_the_cap() {
    let host = counters_host("");
    host.wait_until(WAIT, || {
        let v = host.get_json("/api/history?name=fixture_collected&window=1m");
        (v["series"].as_array().map_or(0, Vec::len) == 2).then_some(())
    });
    let bad = StatusCode::BAD_REQUEST;
    detail(&host, "/api/history", bad, "`name`");
    detail(&host, "/api/history?name=", bad, "`name`");
    detail(
        &host,
        "/api/history?name=fixture_collected&window=3m",
        bad,
        "store.history_window",
    );
    detail(
        &host,
        "/api/history?name=fixture_collected&window=0s",
        bad,
        "zero",
    );
    detail(
        &host,
        "/api/history?name=fixture_collected&window=soon",
        bad,
        "`window`",
    );
    detail(
        &host,
        "/api/history?name=fixture_collected&step=500ms",
        bad,
        "store.history_resolution",
    );
    detail(
        &host,
        "/api/history?name=fixture_collected&step=1500ms",
        bad,
        "multiple",
    );
    detail(
        &host,
        "/api/history?name=fixture_collected&window=10s&step=20s",
        bad,
        "longer than the window",
    );
    detail(
        &host,
        "/api/history?name=fixture_collected&agg=median",
        bad,
        "p95",
    );
    detail(&host, "/api/history?name=a&name=b", bad, "more than once");
    // 2 series × (120 + 2) points > 200; one series (122) fits.
    detail(
        &host,
        "/api/history?name=fixture_collected&window=2m&step=1s",
        bad,
        "store.max_query_points",
    );
    let one = host.get_json("/api/history?name=fixture_collected&plugin=b&window=2m&step=1s");
    assert_eq!(one["series"].as_array().unwrap().len(), 1);
    let response = host.request("POST", "/api/history?name=x", &[], None);
    assert_eq!(response.status, StatusCode::METHOD_NOT_ALLOWED);
}

#[test]
fn snapshots_show_the_configured_prefixes_with_history_on_request() {
    let host = Host::start(
        HostOptions::new(BIN)
            .config(
                "[sampling]\ninterval = \"200ms\"\n[store]\nhistory_window = \"2m\"\nhistory_resolution = \"1s\"\n\
                 [snapshots]\npipelines = [\"fixture_collected\"]\n",
            )
            .plugin("a", guests::GUEST_COUNTER)
            .manifest("a", COUNTER),
    );
    let system = host.wait_until(WAIT, || {
        let v = host.get_json("/metrics/system");
        let names: Vec<String> = v["series"]
            .as_array()?
            .iter()
            .map(|s| s["name"].as_str().unwrap().to_string())
            .collect();
        names
            .iter()
            .any(|n| n == "wasmon_cpu_usage_ratio")
            .then_some(names)
    });
    let prefixes = [
        "wasmon_cpu_",
        "wasmon_memory_",
        "wasmon_swap_",
        "wasmon_load",
        "wasmon_disk_",
        "wasmon_filesystem_",
        "wasmon_network_",
        "wasmon_uptime_",
        "wasmon_boot_time_",
    ];
    for name in &system {
        assert!(
            prefixes.iter().any(|p| name.starts_with(p)),
            "{name} in /metrics/system"
        );
    }
    // No collector of clients or storage runs: empty arrays, not errors.
    for path in ["/metrics/clients", "/metrics/storage"] {
        let v = host.get_json(path);
        assert_eq!(v["series"], serde_json::json!([]), "{path}");
    }
    assert!(host.get_json("/metrics/gpu")["series"].is_array());

    let pipelines = host.wait_until(WAIT, || {
        let v = host.get_json("/metrics/pipelines");
        (v["series"][0]["value"].as_f64()? >= 3.0).then_some(v)
    });
    let series = &pipelines["series"][0];
    assert_eq!(series["name"], "fixture_collected");
    assert_eq!(series["labels"]["plugin"], "a");
    assert!(series.get("history").is_none(), "{series}");
    let with = host.wait_until(WAIT, || {
        let v = host.get_json("/metrics/pipelines?history=1m");
        (v["series"][0]["history"].as_array()?.len() >= 3).then_some(v)
    });
    let history = with["series"][0]["history"].as_array().unwrap();
    assert_eq!(with["series"].as_array().unwrap().len(), 1, "{with}");
    let values: Vec<f64> = history.iter().map(|p| p[1].as_f64().unwrap()).collect();
    assert!(values.windows(2).all(|w| w[0] < w[1]), "{values:?}");

    detail(
        &host,
        "/metrics/pipelines?history=5m",
        StatusCode::BAD_REQUEST,
        "store.history_window",
    );
    detail(
        &host,
        "/metrics/pipelines?history=x",
        StatusCode::BAD_REQUEST,
        "`history`",
    );
    detail(
        &host,
        "/metrics/system?since=1m",
        StatusCode::BAD_REQUEST,
        "history",
    );
    detail(
        &host,
        "/metrics/nothing",
        StatusCode::NOT_FOUND,
        "pipelines",
    );
    // The Prometheus text stays where it was.
    let (status, text) = host.get("/metrics");
    assert_eq!(status, StatusCode::OK);
    assert!(text.contains("# TYPE fixture_collected gauge"), "{text}");
}

fn count(host: &Host, needle: &str) -> usize {
    host.logs().matches(needle).count()
}

#[test]
fn health_reports_the_rule_conditions_and_logs_each_transition_once() {
    let threshold = "interval = \"200ms\"\nselect = [\"fixture_collected\"]\n[config]\n[[config.checks]]\n\
                     name = \"collected_high\"\nmetric = \"fixture_collected\"\ndirection = \"above\"\nalert = 0\n";
    let host = Host::start(
        HostOptions::new(BIN)
            .config("[sampling]\nenabled = false\n")
            .plugin("a", guests::GUEST_COUNTER)
            .manifest("a", COUNTER)
            .plugin("static", guests::GUEST_RULE_STATIC)
            .manifest(
                "static",
                "interval = \"100ms\"\nfor = \"300ms\"\n[config]\nfiring = true\n",
            )
            .plugin("threshold", guests::RULE_THRESHOLD)
            .manifest("threshold", threshold),
    );
    let doc = host.wait_until(WAIT, || {
        let v = host.get_json("/health");
        (v["statuses"]["static"] == "WARNING" && v["overall"] == "ALERT").then_some(v)
    });
    let key = "collected_high{plugin=\"a\"}";
    assert_eq!(doc["statuses"][key], "ALERT", "{doc}");
    assert_eq!(doc["statuses"]["overall"], "ALERT");
    assert_eq!(doc["metrics"]["static"], 1.0);
    assert!(doc["metrics"][key].as_f64().unwrap() >= 1.0);
    let updated = humantime::parse_rfc3339(doc["last_updated"].as_str().unwrap()).unwrap();
    assert!(updated.elapsed().unwrap_or_default() < WAIT);

    host.wait_for_log("RESOURCE WARNING: static: static fixture alert", WAIT);
    host.wait_for_log("RESOURCE ALERT: collected_high{plugin=\"a\"}", WAIT);
    // Many evaluations later, still one line each.
    let evaluations = |h: &Host| host_calls(h, "static");
    let seen = evaluations(&host);
    host.wait_until(WAIT, || (evaluations(&host) >= seen + 10).then_some(()));
    assert_eq!(count(&host, "RESOURCE WARNING"), 1, "{}", host.logs());
    assert_eq!(count(&host, "RESOURCE ALERT"), 1, "{}", host.logs());

    // The static alert resolves: one RESOLVED line, its status back to OK.
    let mark = host.log_mark();
    host.plugins().write_manifest(
        "static",
        "interval = \"100ms\"\nfor = \"300ms\"\n[config]\nfiring = false\n",
    );
    host.wait_for_log_since(mark, "RESOURCE RESOLVED: static", WAIT);
    let doc = host.wait_until(WAIT, || {
        let v = host.get_json("/health");
        (v["statuses"]["static"] == "OK").then_some(v)
    });
    assert_eq!(doc["metrics"]["static"], 0.0);
    assert_eq!(doc["overall"], "ALERT", "the threshold alert still fires");
    let seen = evaluations(&host);
    host.wait_until(WAIT, || (evaluations(&host) >= seen + 10).then_some(()));
    assert_eq!(count(&host, "RESOURCE RESOLVED"), 1, "{}", host.logs());
    assert_eq!(count(&host, "RESOURCE WARNING"), 1, "{}", host.logs());
}

/// Calls made to plugin `name` so far.
fn host_calls(host: &Host, name: &str) -> u64 {
    let v = host.get_json(&format!("/api/plugins/{name}"));
    v["calls"]
        .as_u64()
        .or_else(|| v["stats"]["calls"].as_u64())
        .unwrap_or_else(|| panic!("no call count: {v}"))
}

#[test]
fn health_without_rules_is_ok_and_never_updated() {
    let host = Host::start(HostOptions::new(BIN).config("[sampling]\nenabled = false\n"));
    let doc = host.get_json("/health");
    assert_eq!(doc["overall"], "OK");
    assert_eq!(doc["statuses"], serde_json::json!({ "overall": "OK" }));
    assert_eq!(doc["metrics"], serde_json::json!({}));
    assert_eq!(doc["last_updated"], Value::Null);
}

/// A loopback address nothing listens on.
fn dead_addr() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    addr.to_string()
}

fn summary(v: &Value) -> (u64, u64, u64) {
    let job = v["targets_summary"]
        .as_array()
        .unwrap()
        .iter()
        .find(|j| j["job"] == "wasmon")
        .cloned()
        .unwrap_or(Value::Null);
    (
        job["total"].as_u64().unwrap_or(0),
        job["up"].as_u64().unwrap_or(0),
        job["down"].as_u64().unwrap_or(0),
    )
}

#[test]
fn monitoring_routes_follow_the_targets_of_a_real_prometheus() {
    let prometheus = PrometheusServer::start::<&str>(&[]);
    let host = Host::start(
        HostOptions::new(BIN)
            .config("[sampling]\nenabled = false\n")
            .env("PROMETHEUS_URL", prometheus.url()),
    );
    let dead = dead_addr();
    let me = host.addr().to_string();
    let itself = format!("127.0.0.1:{}", prometheus.port());
    prometheus.set_targets(&[me.as_str(), itself.as_str(), dead.as_str()]);

    // Two up, one down: healthy by the majority rule.
    let health = host.wait_until(WAIT, || {
        let (status, body) = host.get("/api/system/monitoring/health");
        let v: Value = serde_json::from_str(&body).ok()?;
        (status == StatusCode::OK && summary(&v) == (3, 2, 1)).then_some(v)
    });
    assert_eq!(health["healthy"], true, "{health}");
    assert_eq!(health["prometheus_reachable"], true);
    assert_eq!(health["prometheus_url"], prometheus.url());
    assert_eq!(health["metrics_collection"]["collecting"], true);
    assert_eq!(health["metrics_collection"]["scrape_interval_seconds"], 1.0);
    assert!(
        health["metrics_collection"]["total_series"]
            .as_u64()
            .unwrap()
            > 0
    );
    let issues = health["issues"].as_array().unwrap();
    assert_eq!(issues.len(), 1, "{health}");
    assert!(issues[0].as_str().unwrap().contains(&dead), "{health}");

    let targets = host.get_json("/api/system/monitoring/targets");
    assert_eq!(
        (
            targets["total"].as_u64(),
            targets["up"].as_u64(),
            targets["down"].as_u64()
        ),
        (Some(3), Some(2), Some(1))
    );
    assert_eq!(targets["jobs"], serde_json::json!(["wasmon"]));
    let down: Vec<&Value> = targets["targets"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|t| t["health"] == "down")
        .collect();
    assert_eq!(down.len(), 1);
    assert_eq!(down[0]["instance"], dead.as_str());
    assert_eq!(down[0]["labels"]["job"], "wasmon");
    assert!(
        down[0]["last_error"]
            .as_str()
            .is_some_and(|e| !e.is_empty()),
        "{targets}"
    );
    let mine = targets["targets"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["instance"] == me.as_str())
        .unwrap();
    assert_eq!(mine["health"], "up");
    assert_eq!(mine["last_error"], Value::Null);

    // One up, one down: no longer a majority up.
    prometheus.set_targets(&[me.as_str(), dead.as_str()]);
    let health = host.wait_until(WAIT, || {
        let v = host.get_json("/api/system/monitoring/health");
        (summary(&v) == (2, 1, 1)).then_some(v)
    });
    assert_eq!(health["healthy"], false, "{health}");

    // Prometheus gone: 503 with a detail on both routes.
    let url = prometheus.url();
    drop(prometheus);
    let (status, body) = host.get("/api/system/monitoring/health");
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (v["healthy"].as_bool(), v["prometheus_reachable"].as_bool()),
        (Some(false), Some(false))
    );
    assert!(v["detail"].as_str().unwrap().contains(&url), "{v}");
    detail(
        &host,
        "/api/system/monitoring/targets",
        StatusCode::SERVICE_UNAVAILABLE,
        "unreachable",
    );
}

#[test]
fn monitoring_routes_are_404_when_prometheus_is_disabled() {
    let host = Host::start(
        HostOptions::new(BIN)
            .config("[sampling]\nenabled = false\n")
            .env("PROMETHEUS_ENABLED", "false"),
    );
    for path in [
        "/api/system/monitoring/health",
        "/api/system/monitoring/targets",
    ] {
        detail(
            &host,
            path,
            StatusCode::NOT_FOUND,
            "PROMETHEUS_ENABLED=false",
        );
    }
}
