//! Issue 11 point 2: `GET /api/system/health/full` (seed 004's shape) and
//! `/readyz` over every component: a critical plugin that fails makes both
//! 503, naming it, until a good version replaces it; a plugin that is not
//! critical only degrades the host; an open circuit breaker shows in the
//! summary and, behind a critical plugin, makes the host unhealthy; a GPU
//! sampler that is down degrades the host, or makes it unhealthy with
//! `gpu.critical = true`; `/healthz` stays 200 throughout.

use serde_json::{Value, json};
use std::time::Duration;
use wasmon_test_support::fake_nvml::code;
use wasmon_test_support::{
    FakeDevice, FakeDriver, FakeNvml, Host, HostOptions, RedisServer, StatusCode, guests,
};

const BIN: &str = env!("CARGO_BIN_EXE_wasmon");
const WAIT: Duration = Duration::from_secs(30);
const ROUTE: &str = "/api/system/health/full";

/// Fast restarts, so a trapping plugin fails quickly.
const FAST: &str = "[plugins.defaults]\nbackoff_initial = \"100ms\"\nbackoff_max = \"200ms\"\n";

/// The full health: status code and document.
fn full(host: &Host) -> (StatusCode, Value) {
    let (status, body) = host.get(ROUTE);
    let doc = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
    (status, doc)
}

/// Waits until the document's `status` is `want`, and returns it.
#[track_caller]
fn wait_for_status(host: &Host, want: &str) -> (StatusCode, Value) {
    let found = wasmon_test_support::try_wait_until(WAIT, || {
        let (code, doc) = full(host);
        (doc["status"] == want).then_some((code, doc))
    });
    found.unwrap_or_else(|| panic!("health never became {want}: {}", full(host).1))
}

/// The entry named `name` in the document's `section`.
fn entry<'a>(doc: &'a Value, section: &str, name: &str) -> &'a Value {
    doc[section]
        .as_array()
        .unwrap_or_else(|| panic!("no {section} in {doc}"))
        .iter()
        .find(|e| e["name"] == name)
        .unwrap_or_else(|| panic!("no {name} in {section}: {doc}"))
}

fn plugin_status(host: &Host, name: &str) -> String {
    let (status, body) = host.get(&format!("/api/plugins/{name}"));
    if !status.is_success() {
        return String::new();
    }
    let view: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    view["status"].as_str().unwrap_or_default().to_string()
}

#[track_caller]
fn wait_for_plugin(host: &Host, name: &str, status: &str) {
    let found = wasmon_test_support::try_wait_until(WAIT, || {
        (plugin_status(host, name) == status).then_some(())
    });
    assert!(
        found.is_some(),
        "{name} never became {status}: {}",
        host.get_json("/api/plugins")
    );
}

#[test]
fn a_healthy_host_is_healthy_and_lists_every_component() {
    let redis = RedisServer::start();
    let probe = format!(
        "interval = \"200ms\"\n[capabilities.redis]\nurl = {:?}\n[config]\ncommands = [[\"PING\"]]\n",
        redis.url()
    );
    let host = Host::start(
        HostOptions::new(BIN)
            .config(&format!("[sampling]\ninterval = \"200ms\"\n{FAST}"))
            .plugin("counter", guests::GUEST_COUNTER)
            .manifest("counter", "interval = \"100ms\"\ncritical = true\n")
            .plugin("probe", guests::GUEST_REDIS_PROBE)
            .manifest("probe", &probe)
            // A sink that keeps failing (retryable: not a fault) so events wait.
            .plugin("recorder", guests::GUEST_SINK_RECORDER)
            .manifest(
                "recorder",
                "events = [\"test.*\"]\n[config]\nfail_first = 1000000\n",
            ),
    );
    host.wait_ready(WAIT);
    // Every part has reported: the system sampler ran, the probe's breaker exists.
    let (code, doc) = host.wait_until(WAIT, || {
        let (code, doc) = full(&host);
        let ran = entry(&doc, "samplers", "system")["status"] == "healthy";
        let breaker = doc["data_sources"]
            .as_array()
            .is_some_and(|d| d.iter().any(|d| d["name"] == "probe/redis"));
        (ran && breaker).then_some((code, doc))
    });
    assert_eq!(code, StatusCode::OK, "{doc}");
    assert_eq!(doc["status"], "healthy", "{doc}");
    assert_eq!(doc["ready"], true);
    assert_eq!(doc["message"], "All systems operational");
    assert!(doc.get("detail").is_none(), "{doc}");
    assert_eq!(doc["down"], json!([]));
    assert!(doc["timestamp"].is_string() && doc["version"].is_string());

    let system = entry(&doc, "samplers", "system");
    assert_eq!(
        system["critical"], false,
        "sampling.critical is false by default"
    );
    assert!(system["last_run"].is_string(), "{system}");
    // Without an NVIDIA driver `gpu.enabled = "auto"` is unavailable, not down.
    let gpu = &entry(&doc, "samplers", "gpu")["status"];
    assert!(gpu == "unavailable" || gpu == "healthy", "{doc}");
    for name in ["counter", "probe", "recorder"] {
        let p = entry(&doc, "plugins", name);
        assert_eq!(p["status"], "healthy", "{p}");
        assert_eq!(p["plugin_status"], "running", "{p}");
        assert_eq!(p["generation"], 1, "{p}");
        assert!(p["faults"].is_u64() && p.get("last_error").is_some(), "{p}");
    }
    assert_eq!(entry(&doc, "plugins", "counter")["critical"], true);
    assert_eq!(entry(&doc, "plugins", "probe")["critical"], false);
    let redis_source = entry(&doc, "data_sources", "probe/redis");
    assert_eq!(redis_source["circuit_state"], "closed", "{redis_source}");
    assert_eq!(redis_source["status"], "healthy");
    assert_eq!(doc["circuit_breakers"]["open"], 0);
    assert_eq!(doc["circuit_breakers"]["breakers"]["probe/redis"], "closed");
    assert_eq!(doc["event_log"]["status"], "healthy");
    assert!(doc["event_log"]["dropped_total"].is_u64());

    // Events the failing sink cannot take wait in its backlog, with their age.
    for i in 0..3 {
        let (status, body) = host.post_json(
            "/events",
            &json!({"service": "edge", "event_type": format!("test.{i}")}),
        );
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let sink = host.wait_until(WAIT, || {
        let (_, doc) = full(&host);
        let sink = entry(&doc, "sinks", "recorder").clone();
        (sink["backlog_events"].as_u64() >= Some(1) && sink["lag_seconds"].as_f64() > Some(0.0))
            .then_some(sink)
    });
    assert_eq!(sink["status"], "healthy", "a retrying sink is up: {sink}");
    assert_eq!(full(&host).1["status"], "healthy");
    assert_eq!(host.get("/readyz").0, StatusCode::OK);
    assert_eq!(host.get("/healthz").0, StatusCode::OK);
}

#[test]
fn a_critical_plugin_that_fails_is_503_on_full_health_and_readyz_until_a_good_version_replaces_it()
{
    let trap = "interval = \"100ms\"\nmax_restarts = 0\n";
    let host = Host::start(
        HostOptions::new(BIN)
            .config(&format!("[sampling]\nenabled = false\n{FAST}"))
            .plugin("vital", guests::GUEST_COUNTER)
            .manifest("vital", &format!("{trap}critical = true\n"))
            .plugin("minor", guests::GUEST_TRAP_CALL)
            .manifest("minor", trap),
    );
    host.wait_ready(WAIT);

    // A plugin that is not critical fails: degraded, still 200 and ready.
    wait_for_plugin(&host, "minor", "failed");
    let (code, doc) = wait_for_status(&host, "degraded");
    assert_eq!(code, StatusCode::OK, "{doc}");
    assert_eq!(doc["ready"], true);
    assert!(
        doc["message"]
            .as_str()
            .unwrap()
            .contains("plugin minor (failed)"),
        "{doc}"
    );
    assert_eq!(
        doc["down"],
        json!([{"kind": "plugin", "name": "minor", "critical": false, "reason": "failed"}])
    );
    let minor = entry(&doc, "plugins", "minor");
    assert_eq!(minor["status"], "unhealthy");
    assert_eq!(minor["plugin_status"], "failed");
    assert!(minor["faults"].as_u64() >= Some(1), "{minor}");
    assert!(
        minor["last_error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("deliberate panic in collect")),
        "{minor}"
    );
    assert_eq!(host.get("/readyz").0, StatusCode::OK);

    // The critical plugin's new version traps: unhealthy, 503 on both routes.
    host.plugins().install("vital", guests::GUEST_TRAP_CALL);
    wait_for_plugin(&host, "vital", "failed");
    let (code, doc) = wait_for_status(&host, "unhealthy");
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE, "{doc}");
    assert_eq!(doc["ready"], false);
    let detail = doc["detail"].as_str().unwrap();
    assert!(
        detail.contains("critical components down: plugin vital (failed)")
            && detail.contains("plugin minor (failed)"),
        "{detail}"
    );
    assert_eq!(doc["down"][0]["name"], "vital", "critical first: {doc}");
    assert_eq!(entry(&doc, "plugins", "vital")["critical"], true);
    let (code, body) = host.get("/readyz");
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    let detail: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        detail["detail"], "critical components are down: plugin vital (failed)",
        "{body}"
    );
    assert_eq!(host.get("/healthz").0, StatusCode::OK, "liveness only");

    // A good version: ready again, degraded by the other plugin only.
    host.plugins().install("vital", guests::GUEST_COUNTER);
    wait_for_plugin(&host, "vital", "running");
    let (code, doc) = wait_for_status(&host, "degraded");
    assert_eq!(code, StatusCode::OK, "{doc}");
    assert_eq!(doc["ready"], true);
    assert_eq!(entry(&doc, "plugins", "vital")["status"], "healthy");
    assert!(
        entry(&doc, "plugins", "vital")["generation"].as_u64() >= Some(3),
        "{doc}"
    );
    assert_eq!(host.get("/readyz").0, StatusCode::OK);
    // And the other one removed: healthy.
    host.plugins().remove("minor");
    let (code, doc) = wait_for_status(&host, "healthy");
    assert_eq!(code, StatusCode::OK, "{doc}");
}

#[test]
fn an_open_breaker_shows_in_the_summary_and_degrades_the_host() {
    let dead_port = wasmon_test_support::free_port();
    let manifest = format!(
        "interval = \"100ms\"\nbreaker_threshold = 2\nbreaker_backoff = \"5s\"\n\
         [capabilities.redis]\nurl = \"redis://127.0.0.1:{dead_port}\"\ntimeout = \"300ms\"\n\
         [config]\ncommands = [[\"PING\"]]\n"
    );
    let host = Host::start(
        HostOptions::new(BIN)
            .config(&format!("[sampling]\nenabled = false\n{FAST}"))
            .plugin("dead", guests::GUEST_REDIS_PROBE)
            .manifest("dead", &manifest),
    );
    host.wait_ready(WAIT);
    let (code, doc) = host.wait_until(WAIT, || {
        let (code, doc) = full(&host);
        (doc["circuit_breakers"]["open"].as_u64() >= Some(1)).then_some((code, doc))
    });
    assert_eq!(code, StatusCode::OK, "{doc}");
    assert_eq!(doc["status"], "degraded", "{doc}");
    let summary = &doc["circuit_breakers"];
    assert_eq!(summary["breakers"]["dead/redis"], "open", "{summary}");
    let total = summary["total"].as_u64().unwrap();
    let counted: u64 = ["open", "half_open", "closed"]
        .iter()
        .map(|k| summary[k].as_u64().unwrap())
        .sum();
    assert_eq!(total, counted, "{summary}");
    let source = entry(&doc, "data_sources", "dead/redis");
    assert_eq!(source["status"], "unhealthy", "{source}");
    assert_eq!(source["circuit_state"], "open");
    assert_eq!(source["plugin"], "dead");
    assert_eq!(source["source"], "redis");
    assert!(source["failure_count"].as_u64() >= Some(2), "{source}");
    assert!(
        source["error"]
            .as_str()
            .is_some_and(|e| e.contains(&dead_port.to_string())),
        "the error names the server: {source}"
    );
    assert!(
        doc["down"]
            .as_array()
            .unwrap()
            .iter()
            .any(|d| d["kind"] == "data_source" && d["name"] == "dead/redis"),
        "{doc}"
    );
    // The plugin itself keeps running: the error is its data source's.
    assert_eq!(entry(&doc, "plugins", "dead")["status"], "healthy");
    assert_eq!(host.get("/readyz").0, StatusCode::OK);
}

#[test]
fn a_critical_plugins_data_source_with_an_open_breaker_makes_the_host_unhealthy() {
    let dead_port = wasmon_test_support::free_port();
    let manifest = format!(
        "interval = \"100ms\"\ncritical = true\nbreaker_threshold = 2\nbreaker_backoff = \"5s\"\n\
         [capabilities.redis]\nurl = \"redis://127.0.0.1:{dead_port}\"\ntimeout = \"300ms\"\n\
         [config]\ncommands = [[\"PING\"]]\n"
    );
    let host = Host::start(
        HostOptions::new(BIN)
            .config(&format!("[sampling]\nenabled = false\n{FAST}"))
            .plugin("vitaldb", guests::GUEST_REDIS_PROBE)
            .manifest("vitaldb", &manifest),
    );
    let (code, doc) = wait_for_status(&host, "unhealthy");
    assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE, "{doc}");
    let source = entry(&doc, "data_sources", "vitaldb/redis");
    assert_eq!(
        source["critical"], true,
        "as critical as its plugin: {source}"
    );
    assert_ne!(source["circuit_state"], "closed", "{source}");
    assert_eq!(entry(&doc, "plugins", "vitaldb")["status"], "healthy");
    let (ready, body) = host.get("/readyz");
    assert_eq!(ready, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(body.contains("data source vitaldb/redis"), "{body}");
}

#[test]
fn a_gpu_sampler_that_is_down_degrades_the_host_or_makes_it_unhealthy_when_critical() {
    let fake = FakeNvml::new(&FakeDriver::new(vec![
        FakeDevice::new(0),
        FakeDevice::new(1).fail(code::GPU_IS_LOST),
    ]));
    for critical in [false, true] {
        let config = format!(
            "[sampling]\nenabled = false\n{}",
            fake.gpu_config(&format!(
                "interval = \"100ms\"\nretry_interval = \"200ms\"\ncritical = {critical}\n"
            ))
        );
        let host = Host::start(
            HostOptions::new(BIN)
                .env("FAKE_NVML_CONFIG", fake.control_file())
                .config(&config),
        );
        let want = if critical { "unhealthy" } else { "degraded" };
        let (code, doc) = wait_for_status(&host, want);
        let gpu = entry(&doc, "samplers", "gpu");
        assert_eq!(gpu["status"], "unhealthy", "{gpu}");
        assert_eq!(gpu["critical"], critical);
        assert!(
            gpu["error"].as_str().is_some_and(|e| e.contains("gpu 1")),
            "{gpu}"
        );
        assert!(gpu["last_run"].is_string(), "{gpu}");
        assert_eq!(entry(&doc, "samplers", "system")["status"], "disabled");
        let (ready, body) = host.get("/readyz");
        if critical {
            assert_eq!(code, StatusCode::SERVICE_UNAVAILABLE, "{doc}");
            assert_eq!(ready, StatusCode::SERVICE_UNAVAILABLE, "{body}");
            assert!(body.contains("sampler gpu"), "{body}");
        } else {
            assert_eq!(code, StatusCode::OK, "{doc}");
            assert_eq!(ready, StatusCode::OK, "{body}");
        }
        assert_eq!(host.get("/healthz").0, StatusCode::OK);
    }
}
