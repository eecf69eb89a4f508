//! Issue 13, the plugin side: a plugin cannot reach the host's own API
//! (except the read-only `self = "read"` grant), manifests cannot exceed the
//! host's ceilings, a hanging `init` blocks no other plugin nor `/readyz` for
//! good, and a guest blocked in a host call still times out on its budget.

use serde_json::Value;
use std::time::Duration;
use wasmon_test_support::{Host, HostOptions, Recorder, StatusCode, guests, metric_value};

const BIN: &str = env!("CARGO_BIN_EXE_wasmon");
const WAIT: Duration = Duration::from_secs(20);

fn plugin(host: &Host, name: &str) -> Value {
    host.get_json(&format!("/api/plugins/{name}"))
}

/// Waits until `name` has a `last_error` of `kind`, and returns the plugin.
fn wait_for_error(host: &Host, name: &str, kind: &str) -> Value {
    host.wait_until(WAIT, || {
        let view = plugin(host, name);
        (view["last_error"]["kind"] == kind).then_some(view)
    })
}

/// A manifest for `collector-http-probe` probing `targets` (TOML inline
/// tables), every `allow` entry granted, with `self` when given.
fn probe_manifest(allow: &[String], self_access: Option<&str>, targets: &[String]) -> String {
    let allow: Vec<String> = allow.iter().map(|a| format!("{a:?}")).collect();
    let self_line = self_access.map_or(String::new(), |s| format!("self = {s:?}\n"));
    let targets: Vec<String> = targets
        .iter()
        .map(|t| format!("[[config.targets]]\n{t}\n"))
        .collect();
    format!(
        "interval = \"200ms\"\nmax_restarts = 1000\n[capabilities.http]\nallow = [{}]\n{self_line}[config]\n{}",
        allow.join(", "),
        targets.concat()
    )
}

fn start(plugins: &[(&str, &str, &str)]) -> Host {
    let mut options = HostOptions::new(BIN).config(
        "[sampling]\ninterval = \"1s\"\n[plugins.defaults]\nbackoff_initial = \"100ms\"\nbackoff_max = \"200ms\"\n",
    );
    for (name, wasm, manifest) in plugins {
        options = options.plugin(name, wasm).manifest(name, manifest);
    }
    Host::start(options)
}

#[test]
fn a_plugin_allow_listed_for_the_hosts_port_cannot_call_its_api() {
    let host = start(&[]);
    let legit = Recorder::start();
    let port = host.addr().port();
    let allow = [
        format!("127.0.0.1:{port}"),
        format!("localhost:{port}"),
        format!("[::ffff:7f00:1]:{port}"),
        format!("127.0.0.1:{}", legit.addr().port()),
    ];
    let heartbeat = "method = \"POST\"\nheaders = { \"Content-Type\" = \"application/json\" }\nbody = '{\"service\": \"forged\"}'";
    let targets = [
        // A service of its own on loopback, another port: legitimate.
        format!("name = \"legit\"\nurl = \"{}\"", legit.url("/legit")),
        format!(
            "name = \"reset\"\nurl = \"http://127.0.0.1:{port}/api/plugins/attacker/reset\"\nmethod = \"POST\""
        ),
        format!("name = \"heartbeat\"\nurl = \"http://localhost:{port}/heartbeat\"\n{heartbeat}"),
        format!(
            "name = \"mapped\"\nurl = \"http://[::ffff:127.0.0.1]:{port}/api/plugins/reload\"\nmethod = \"POST\""
        ),
    ];
    host.plugins()
        .write_manifest("attacker", &probe_manifest(&allow, None, &targets));
    host.plugins()
        .install("attacker", guests::COLLECTOR_HTTP_PROBE);

    // Its call reaches the legitimate service, then faults on the host's own API.
    legit.wait_for_requests(1, WAIT);
    let view = wait_for_error(&host, "attacker", "capability");
    let message = view["last_error"]["message"].as_str().unwrap();
    assert!(message.contains("wasmon's own API"), "{message}");
    assert!(message.contains("self = \"read\""), "{message}");
    let metrics = host.wait_until(WAIT, || {
        let (_, metrics) = host.get("/metrics");
        let denied = metric_value(
            &metrics,
            "wasmon_plugin_capability_denied_total",
            &[("plugin", "attacker"), ("capability", "http")],
        );
        // Each of the three requests to the host is refused, every call.
        denied.is_some_and(|d| d >= 6.0).then_some(metrics)
    });
    assert!(
        metrics.contains("wasmon_plugin_faults_total{plugin=\"attacker\",reason=\"capability\"}"),
        "faults by reason: {metrics}"
    );
    let logs = host.logs();
    for refused in [
        format!("127.0.0.1:{port}: wasmon's own API"),
        "localhost resolves to ".to_string(),
        format!("[::ffff:127.0.0.1]:{port}: wasmon's own API"),
    ] {
        assert!(logs.contains(&refused), "no refusal {refused:?} logged");
    }

    // Nothing reached the host: no reset (it would show in the restart
    // history and clear the faults), no forged service, no reload.
    let view = plugin(&host, "attacker");
    let history = host.get_json("/api/plugins/attacker/restart-history")["items"].clone();
    assert!(
        history
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["status"] != "manual"),
        "the plugin reset itself: {history}"
    );
    assert!(view["faults"].as_u64().unwrap() >= 2, "{view}");
    let (status, body) = host.get("/api/services/forged");
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "a heartbeat was forged: {body}"
    );
    assert_eq!(view["generation"], 1, "the plugin was reloaded: {view}");
    assert_eq!(
        legit
            .requests()
            .iter()
            .filter(|r| r.path == "/legit")
            .count(),
        legit.requests().len(),
        "only the legitimate service was called"
    );
}

#[test]
fn the_self_read_grant_opens_health_and_metrics_reads_only() {
    let host = start(&[]);
    let port = host.addr().port();
    let allow = [format!("127.0.0.1:{port}"), format!("localhost:{port}")];
    let reads = [
        format!(
            "name = \"metrics\"\nurl = \"http://localhost:{port}/metrics\"\nbody_contains = \"wasmon_\""
        ),
        format!("name = \"healthz\"\nurl = \"http://127.0.0.1:{port}/healthz\""),
        format!(
            "name = \"readyz\"\nurl = \"http://127.0.0.1:{port}/readyz\"\nmethod = \"HEAD\"\nvalid_status_codes = [200, 503]"
        ),
    ];
    host.plugins()
        .write_manifest("reader", &probe_manifest(&allow, Some("read"), &reads));
    host.plugins()
        .install("reader", guests::COLLECTOR_HTTP_PROBE);
    let writes = [format!(
        "name = \"heartbeat\"\nurl = \"http://127.0.0.1:{port}/heartbeat\"\nmethod = \"POST\"\nheaders = {{ \"Content-Type\" = \"application/json\" }}\nbody = '{{\"service\": \"forged\"}}'"
    )];
    host.plugins()
        .write_manifest("writer", &probe_manifest(&allow, Some("read"), &writes));
    host.plugins()
        .install("writer", guests::COLLECTOR_HTTP_PROBE);
    let listing = [format!(
        "name = \"plugins\"\nurl = \"http://localhost:{port}/api/plugins\""
    )];
    host.plugins()
        .write_manifest("lister", &probe_manifest(&allow, Some("read"), &listing));
    host.plugins()
        .install("lister", guests::COLLECTOR_HTTP_PROBE);

    // The reads succeed: GET /metrics, GET /healthz, HEAD /readyz.
    let metrics = host.wait_until(WAIT, || {
        let (_, metrics) = host.get("/metrics");
        ["metrics", "healthz", "readyz"]
            .iter()
            .all(|t| {
                metric_value(
                    &metrics,
                    "probe_success",
                    &[("plugin", "reader"), ("target", t)],
                ) == Some(1.0)
            })
            .then_some(metrics)
    });
    assert_eq!(
        metric_value(
            &metrics,
            "probe_http_status_code",
            &[("plugin", "reader"), ("target", "metrics")]
        ),
        Some(200.0)
    );
    let reader = plugin(&host, "reader");
    assert_eq!(reader["status"], "running", "{reader}");
    assert_eq!(reader["faults"], 0, "{reader}");

    // A POST, and a GET of anything else, are refused even with the grant.
    for name in ["writer", "lister"] {
        let view = wait_for_error(&host, name, "capability");
        let message = view["last_error"]["message"].as_str().unwrap();
        assert!(message.contains("wasmon's own API"), "{name}: {message}");
    }
    let (status, body) = host.get("/api/services/forged");
    assert_eq!(
        status,
        StatusCode::NOT_FOUND,
        "a heartbeat was forged: {body}"
    );
}

#[test]
fn a_manifest_above_a_ceiling_is_invalid_and_a_reload_above_one_keeps_the_old_version() {
    let host = Host::start(
        HostOptions::new(BIN)
            .config("[plugins.limits]\nmax_series_per_plugin = 50\n")
            .plugin("counter", guests::GUEST_COUNTER)
            .manifest("counter", "interval = \"100ms\"\n")
            .plugin("bomb", guests::GUEST_COUNTER)
            .manifest("bomb", "memory_limit = \"100GiB\"\n")
            .plugin("wide", guests::GUEST_COUNTER)
            .manifest("wide", "max_series = 51\n"),
    );
    host.wait_ready(WAIT);

    let bomb = plugin(&host, "bomb");
    assert_eq!(bomb["status"], "invalid", "{bomb}");
    let message = bomb["last_error"]["message"].as_str().unwrap();
    assert!(
        message.contains(
            "`memory_limit`: 100GiB exceeds the host's ceiling `plugins.limits.max_memory_limit` (512MiB)"
        ),
        "{message}"
    );
    let wide = plugin(&host, "wide");
    assert_eq!(wide["status"], "invalid", "{wide}");
    let message = wide["last_error"]["message"].as_str().unwrap();
    assert!(
        message.contains("`max_series`: 51 exceeds the host's ceiling `plugins.limits.max_series_per_plugin` (50)"),
        "{message}"
    );
    // Without `max_series` a plugin gets the ceiling, not more.
    let counter = plugin(&host, "counter");
    assert_eq!(counter["status"], "running", "{counter}");
    assert_eq!(counter["manifest"]["max_series"], 50, "{counter}");
    assert_eq!(counter["manifest"]["init_timeout"], "10s", "{counter}");

    // A reload above a ceiling fails; the old version keeps serving.
    let mark = host.log_mark();
    host.plugins()
        .write_manifest("counter", "interval = \"100ms\"\ntimeout = \"1000h\"\n");
    host.wait_for_log_since(mark, "reload failed", WAIT);
    let counter = plugin(&host, "counter");
    assert_eq!(counter["status"], "running", "{counter}");
    assert_eq!(counter["generation"], 1, "{counter}");
    assert_eq!(counter["manifest"]["timeout"], "2s", "{counter}");
    let message = counter["last_reload_error"]["message"].as_str().unwrap();
    assert!(
        message.contains(
            "`timeout`: 1000h exceeds the host's ceiling `plugins.limits.max_timeout` (1m)"
        ),
        "{message}"
    );
    let before = counter["calls"].as_u64().unwrap();
    host.wait_until(WAIT, || {
        (plugin(&host, "counter")["calls"].as_u64().unwrap() > before + 2).then_some(())
    });
}

#[test]
fn a_hanging_init_blocks_no_other_plugin_nor_a_file_added_meanwhile() {
    let host = start(&[
        (
            "hung",
            guests::GUEST_HANG,
            "init_timeout = \"10s\"\nmax_restarts = 0\n[config]\ninit = \"spin\"\n",
        ),
        ("good", guests::GUEST_COUNTER, "interval = \"100ms\"\n"),
    ]);
    let hung_loading = |host: &Host| plugin(host, "hung")["status"] == "loading";

    // The good plugin collects while the hung one's init spins, and the host
    // says what it is waiting for.
    host.wait_until(WAIT, || {
        let (_, metrics) = host.get("/metrics");
        metric_value(&metrics, "fixture_collected", &[("plugin", "good")]).filter(|v| *v >= 3.0)
    });
    assert!(hung_loading(&host), "{}", plugin(&host, "hung"));
    let (status, body) = host.get("/readyz");
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(body.contains("hung"), "{body}");

    // A file added during the hang loads at once.
    host.plugins()
        .write_manifest("late", "interval = \"100ms\"\n");
    host.plugins().install("late", guests::GUEST_COUNTER);
    host.wait_until(WAIT, || {
        let (_, metrics) = host.get("/metrics");
        metric_value(&metrics, "fixture_collected", &[("plugin", "late")])
    });
    assert!(hung_loading(&host), "{}", plugin(&host, "hung"));
    assert_eq!(host.get("/readyz").0, StatusCode::SERVICE_UNAVAILABLE);

    // The hang ends at its init_timeout: failed, with why; then ready.
    host.wait_ready(Duration::from_secs(40));
    let hung = host.wait_until(WAIT, || {
        let view = plugin(&host, "hung");
        (view["status"] == "failed").then_some(view)
    });
    let message = hung["last_error"]["message"].as_str().unwrap();
    assert_eq!(hung["last_error"]["kind"], "timeout", "{hung}");
    assert!(
        message.contains("(budget 10s, the manifest's `init_timeout`)"),
        "{message}"
    );
    for name in ["good", "late"] {
        assert_eq!(plugin(&host, name)["status"], "running", "{name}");
    }
}

/// The seconds in `timed out after 1.234s (budget ...)`.
fn elapsed(message: &str) -> f64 {
    let rest = message
        .split("timed out after ")
        .nth(1)
        .unwrap_or_else(|| panic!("no elapsed time in {message:?}"));
    rest.split('s').next().unwrap().parse().unwrap()
}

#[test]
fn a_guest_sleeping_in_a_host_call_times_out_on_its_budget_with_the_real_elapsed_time() {
    let host = start(&[
        (
            "sleeper",
            guests::GUEST_HANG,
            "interval = \"100ms\"\ntimeout = \"1s\"\nmax_restarts = 0\n[config]\ncollect = \"sleep\"\n",
        ),
        (
            "sleepy_init",
            guests::GUEST_HANG,
            "init_timeout = \"1s\"\nmax_restarts = 0\n[config]\ninit = \"sleep\"\n",
        ),
    ]);
    host.wait_ready(WAIT);
    // Before the fix a call blocked in a host call ran budget + 500 ms; the
    // margin here is below that, and well above a loaded machine's wake-up delay.
    let margin = 0.4;
    for (name, key) in [("sleeper", "timeout"), ("sleepy_init", "init_timeout")] {
        let view = host.wait_until(WAIT, || {
            let view = plugin(&host, name);
            (view["status"] == "failed").then_some(view)
        });
        assert_eq!(view["last_error"]["kind"], "timeout", "{name}: {view}");
        let message = view["last_error"]["message"].as_str().unwrap();
        assert!(
            message.contains(&format!("(budget 1s, the manifest's `{key}`)")),
            "{name}: {message}"
        );
        let took = elapsed(message);
        assert!(
            (1.0..1.0 + margin).contains(&took),
            "{name}: the call ran {took}s against a 1s budget: {message}"
        );
    }
    let sleeper = plugin(&host, "sleeper");
    let max_us = sleeper["timings"]["max_us"].as_u64().unwrap();
    assert!(
        (1_000_000..1_400_000).contains(&max_us),
        "the call took {max_us} us: {sleeper}"
    );
    assert_eq!(host.get("/metrics").0, StatusCode::OK);
}
