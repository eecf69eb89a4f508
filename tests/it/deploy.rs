//! The deployment files of `deploy/`, each checked with the real tool: the
//! systemd unit (`systemd-analyze verify`), the Prometheus config and alert
//! rules (`promtool check` and a `promtool test rules` case per alert), and
//! the Grafana dashboard (valid, every query accepted by a real Prometheus
//! scraping a real host, every metric one wasmon exports).

use serde_json::Value;
use std::collections::BTreeSet;
use std::time::Duration;
use wasmon_test_support::{
    FakeDevice, FakeDriver, FakeNvml, Host, HostOptions, PrometheusServer, guests,
};

const BIN: &str = env!("CARGO_BIN_EXE_wasmon");
const WAIT: Duration = Duration::from_secs(30);

fn deploy_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy")
}

fn run(cmd: &mut std::process::Command) -> (bool, String) {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn the_prometheus_config_and_alerts_pass_promtool_with_a_unit_test_per_alert() {
    let dir = deploy_dir().join("prometheus");
    let promtool = |args: &[&str]| {
        run(std::process::Command::new("promtool")
            .args(args)
            .current_dir(&dir))
    };
    let (ok, out) = promtool(&["check", "config", "prometheus.yml"]);
    assert!(ok && out.contains("1 rule files found"), "{out}");
    let (ok, out) = promtool(&["check", "rules", "wasmon-alerts.yml"]);
    assert!(ok, "{out}");
    let (ok, out) = promtool(&["test", "rules", "wasmon-alerts.test.yml"]);
    assert!(ok && out.contains("SUCCESS"), "{out}");
    // Every alert of the rules file has a unit test.
    let rules = std::fs::read_to_string(dir.join("wasmon-alerts.yml")).unwrap();
    let tests = std::fs::read_to_string(dir.join("wasmon-alerts.test.yml")).unwrap();
    let alerts: Vec<&str> = rules
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- alert: "))
        .collect();
    assert_eq!(alerts.len(), 5, "{alerts:?}");
    for alert in alerts {
        assert!(
            tests.contains(&format!("alertname: {alert}")),
            "no promtool test for {alert}"
        );
    }
}

#[test]
fn the_systemd_unit_is_read_only_but_its_state_dir_and_verifies() {
    let unit = std::fs::read_to_string(deploy_dir().join("wasmon.service")).unwrap();
    let keys: Vec<(&str, &str)> = unit
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .collect();
    let value = |k: &str| keys.iter().find(|(key, _)| *key == k).map(|(_, v)| *v);
    assert_eq!(value("DynamicUser"), Some("yes"));
    assert_eq!(value("ProtectSystem"), Some("strict"));
    assert_eq!(value("StateDirectory"), Some("wasmon"));
    let writable: Vec<&str> = keys
        .iter()
        .filter(|(k, _)| *k == "ReadWritePaths")
        .map(|(_, v)| *v)
        .collect();
    assert_eq!(writable, ["/var/lib/wasmon"]);
    // `systemd-analyze verify`, where it is installed, on the unit pointing at
    // this build's binary (it checks that ExecStart exists).
    let probe = std::process::Command::new("systemd-analyze")
        .arg("--version")
        .output();
    if probe.is_err() {
        eprintln!("systemd-analyze is not installed: only the keys were checked");
        return;
    }
    let dir = std::env::temp_dir().join(format!("wasmon-unit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("wasmon.service");
    std::fs::write(&path, unit.replace("/usr/local/bin/wasmon", BIN)).unwrap();
    let (ok, out) = run(std::process::Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path));
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(ok, "{out}");
    let complaints: Vec<&str> = out
        .lines()
        .filter(|l| l.contains("wasmon.service"))
        .collect();
    assert!(complaints.is_empty(), "systemd-analyze complains: {out}");
}

/// Every PromQL expression of the dashboard's panels and variables, with
/// the panel's title.
fn dashboard_queries(dashboard: &Value) -> Vec<(String, String)> {
    let mut queries = Vec::new();
    for panel in dashboard["panels"].as_array().unwrap() {
        let title = panel["title"].as_str().unwrap().to_string();
        for target in panel["targets"].as_array().into_iter().flatten() {
            queries.push((title.clone(), target["expr"].as_str().unwrap().to_string()));
        }
    }
    for var in dashboard["templating"]["list"].as_array().unwrap() {
        if var["type"] == "query" {
            // `label_values(EXPR, label)` is Grafana's; Prometheus gets EXPR.
            let q = var["query"]["query"].as_str().unwrap();
            let inner = q
                .strip_prefix("label_values(")
                .and_then(|s| s.rsplit_once(','))
                .map(|(expr, _)| expr.to_string())
                .unwrap_or_else(|| panic!("variable query {q}"));
            queries.push((format!("variable {}", var["name"]), inner));
        }
    }
    queries
}

/// Grafana's variables replaced as Grafana would for "All".
fn as_prometheus_sees_it(expr: &str) -> String {
    expr.replace("$__rate_interval", "5s")
        .replace("$instance", ".*")
        .replace("$job", ".*")
}

/// The metric names an expression reads (identifiers that are not PromQL
/// functions, keywords or label names).
fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut word = String::new();
    let mut in_braces = 0usize;
    let mut in_quotes = false;
    for c in expr.chars().chain(std::iter::once(' ')) {
        if c == '"' {
            in_quotes = !in_quotes;
        }
        if !in_quotes && (c.is_ascii_alphanumeric() || c == '_' || c == ':') {
            word.push(c);
            continue;
        }
        if !word.is_empty() && in_braces == 0 && !in_quotes && c != '(' {
            let is_metric =
                word.starts_with("wasmon_") || word.starts_with("process_") || word == "up";
            if is_metric {
                names.insert(std::mem::take(&mut word));
            }
        }
        word.clear();
        match c {
            '{' if !in_quotes => in_braces += 1,
            '}' if !in_quotes => in_braces -= 1,
            _ => {}
        }
    }
    names
}

#[test]
fn the_grafana_dashboard_is_valid_and_prometheus_accepts_every_query_over_real_metrics() {
    let text = std::fs::read_to_string(deploy_dir().join("grafana/wasmon.json")).unwrap();
    let dashboard: Value = serde_json::from_str(&text).expect("valid JSON");
    assert_eq!(dashboard["uid"], "wasmon-overview");
    // Grafana's shape: unique ids, a grid position each, a data source
    // variable every query goes through.
    let panels = dashboard["panels"].as_array().unwrap();
    let ids: BTreeSet<u64> = panels.iter().map(|p| p["id"].as_u64().unwrap()).collect();
    assert_eq!(ids.len(), panels.len(), "panel ids are unique");
    let vars: Vec<&str> = dashboard["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["name"].as_str().unwrap())
        .collect();
    assert_eq!(vars, ["datasource", "job", "instance"]);
    for panel in panels {
        for key in ["h", "w", "x", "y"] {
            assert!(panel["gridPos"][key].is_u64(), "gridPos.{key} of {panel}");
        }
        assert!(
            panel["gridPos"]["x"].as_u64().unwrap() + panel["gridPos"]["w"].as_u64().unwrap() <= 24
        );
        if panel["type"] == "row" {
            continue;
        }
        let targets = panel["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "{} has no query", panel["title"]);
        assert_eq!(panel["datasource"]["uid"], "${datasource}");
        for t in targets {
            assert_eq!(t["datasource"]["uid"], "${datasource}");
        }
    }
    let queries = dashboard_queries(&dashboard);
    assert!(queries.len() >= 40, "{} queries", queries.len());

    // A real host with every family it can export in use: system and GPU
    // sampling (the fake NVML), a collector, a firing rule, a sink, a
    // heartbeat; a real Prometheus scraping it every second.
    let fake = FakeNvml::new(&FakeDriver::new(vec![FakeDevice::new(0)]));
    let host = Host::start(
        HostOptions::new(BIN)
            .env("FAKE_NVML_CONFIG", fake.control_file())
            .config(&format!(
                "[sampling]\ninterval = \"500ms\"\n{}",
                fake.gpu_config("interval = \"500ms\"\n")
            ))
            .plugin("counter", guests::GUEST_COUNTER)
            .manifest("counter", "interval = \"200ms\"\n")
            .plugin("static", guests::GUEST_RULE_STATIC)
            .manifest("static", "interval = \"200ms\"\n[config]\nfiring = true\n")
            .plugin("recorder", guests::GUEST_SINK_RECORDER)
            // One failed delivery first, so the failure counter exists too.
            .manifest("recorder", "[config]\nfail_first = 1\n"),
    );
    host.wait_ready(WAIT);
    let (status, body) = host.post_json("/heartbeat", &serde_json::json!({"service": "edge"}));
    assert!(status.is_success(), "{body}");
    let prometheus = PrometheusServer::start(&[host.addr().to_string()]);
    prometheus.wait_for_target_up(&host.addr().to_string(), WAIT);

    // Every family the host exports (histograms by their series names).
    let exported: BTreeSet<String> = host.wait_until(WAIT, || {
        let (_, body) = host.get("/metrics");
        let names: BTreeSet<String> = body
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
            .filter_map(|l| l.split(['{', ' ']).next())
            .map(str::to_string)
            .collect();
        let all_there = [
            "wasmon_gpu_utilization_ratio",
            "wasmon_alert_active",
            "wasmon_sink_delivered_events_total",
            "wasmon_sink_failures_total",
            "wasmon_plugin_call_duration_seconds_bucket",
        ]
        .iter()
        .all(|n| names.contains(*n));
        all_there.then_some(names)
    });
    let docs: String = ["README.md", "ARCHITECTURE.md", "plugins/README.md"]
        .iter()
        .map(|f| std::fs::read_to_string(deploy_dir().join("..").join(f)).unwrap())
        .collect();

    let mut with_data = 0;
    for (title, expr) in &queries {
        let promql = as_prometheus_sees_it(expr);
        // Prometheus parses and runs it (the harness asserts `success`).
        prometheus.query(&promql);
        let names = metric_names(expr);
        assert!(!names.is_empty(), "{title}: no metric in {expr}");
        for name in &names {
            // A metric this host exports now, or one documented as exported
            // under conditions the test does not create (capabilities,
            // refusals).
            assert!(
                name == "up" || exported.contains(name) || docs.contains(name.as_str()),
                "{title}: `{name}` is neither exported by wasmon nor documented"
            );
        }
        // What the host exports now has data in Prometheus (rates after a
        // second scrape).
        if names.iter().all(|n| n == "up" || exported.contains(n)) {
            let result = host.wait_until(WAIT, || {
                let r = prometheus.query(&promql);
                (!r.is_empty()).then_some(r)
            });
            assert!(!result.is_empty());
            with_data += 1;
        }
    }
    assert!(with_data >= 30, "only {with_data} queries have data");
}
