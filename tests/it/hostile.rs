//! Hostile plugins against the real binary: an infinite loop, a memory bomb, a
//! trap in init, a trap in a call, a huge answer and an HTTP call to a host not
//! granted, all at once. Each is contained and reported with its reason,
//! restarted with backoff and `failed` after `max_restarts`, while `/metrics`
//! keeps answering and a well-behaved plugin beside them keeps collecting.

use serde_json::Value;
use std::time::{Duration, Instant, SystemTime};
use wasmon_test_support::{Host, HostOptions, StatusCode, guests, metric_value, promtool_check};

const BIN: &str = env!("CARGO_BIN_EXE_wasmon");

/// (plugin name, component, manifest, fault kind, words the reason must hold)
const HOSTILE: &[(&str, &str, &str, &str, &str)] = &[
    (
        "infinite_loop",
        guests::GUEST_INFINITE_LOOP,
        "timeout = \"200ms\"\n",
        "timeout",
        "(budget 200ms, the manifest's `timeout`)",
    ),
    (
        "memory_bomb",
        guests::GUEST_MEMORY_BOMB,
        "memory_limit = \"16MiB\"\n",
        "memory",
        "memory limit of 16MiB exceeded",
    ),
    (
        "trap_init",
        guests::GUEST_TRAP_INIT,
        "",
        "trap",
        "deliberate panic in init",
    ),
    (
        "trap_call",
        guests::GUEST_TRAP_CALL,
        "",
        "trap",
        "deliberate panic in collect",
    ),
    (
        "huge_output",
        guests::GUEST_HUGE_OUTPUT,
        "",
        "output",
        "output too large",
    ),
    (
        "forbidden_http",
        guests::GUEST_FORBIDDEN_HTTP,
        "",
        "capability",
        "169.254.169.254",
    ),
];

const MAX_RESTARTS: u64 = 2;

fn start() -> Host {
    let mut options = HostOptions::new(BIN)
        .config("[sampling]\ninterval = \"1s\"\n[plugins.defaults]\nbackoff_initial = \"100ms\"\nbackoff_max = \"400ms\"\n")
        .plugin("counter", guests::GUEST_COUNTER)
        .manifest("counter", "interval = \"100ms\"\n");
    for (name, wasm, manifest, _, _) in HOSTILE {
        options = options.plugin(name, wasm).manifest(
            name,
            &format!("interval = \"100ms\"\nmax_restarts = {MAX_RESTARTS}\n{manifest}"),
        );
    }
    let host = Host::start(options);
    host.wait_ready(Duration::from_secs(30));
    host
}

fn plugin(host: &Host, name: &str) -> Value {
    host.get_json(&format!("/api/plugins/{name}"))
}

fn counter(host: &Host) -> f64 {
    metric_value(&host.get("/metrics").1, "fixture_collected", &[]).unwrap_or(0.0)
}

fn millis(rfc3339: &Value) -> u128 {
    let t = humantime::parse_rfc3339(rfc3339.as_str().unwrap()).unwrap();
    t.duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_millis()
}

#[test]
fn hostile_plugins_are_contained_restarted_and_failed_while_the_rest_serves() {
    let host = start();
    let started = Instant::now();
    let counter_before = host.wait_until(Duration::from_secs(15), || {
        Some(counter(&host)).filter(|v| *v >= 1.0)
    });

    // Watch /metrics and the healthy plugin the whole time the hostile ones fail.
    let mut slowest = Duration::ZERO;
    let mut scrapes = 0;
    let all_failed = || {
        HOSTILE
            .iter()
            .all(|(name, ..)| plugin(&host, name)["status"] == "failed")
    };
    while !all_failed() {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "not all hostile plugins failed: {}",
            host.get_json("/api/plugins")
        );
        let t = Instant::now();
        let (status, metrics) = host.get("/metrics");
        slowest = slowest.max(t.elapsed());
        scrapes += 1;
        assert_eq!(status, StatusCode::OK);
        assert!(
            metrics.contains("fixture_collected"),
            "the healthy plugin's samples stay in /metrics"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let elapsed = started.elapsed();
    assert!(
        slowest < Duration::from_secs(1),
        "slowest of {scrapes} scrapes took {slowest:?}"
    );
    let counter_after = counter(&host);
    let expected = elapsed.as_secs_f64() / 0.1 / 3.0;
    assert!(
        counter_after - counter_before >= expected,
        "the healthy plugin collected {} times in {elapsed:?}",
        counter_after - counter_before
    );
    assert_eq!(plugin(&host, "counter")["status"], "running");
    assert_eq!(plugin(&host, "counter")["faults"], 0);

    for (name, _, _, kind, reason) in HOSTILE {
        let view = plugin(&host, name);
        let error = &view["last_error"];
        assert_eq!(error["kind"], *kind, "{name}: {view}");
        let message = error["message"].as_str().unwrap();
        assert!(
            message.contains(reason),
            "{name}: {message:?} lacks {reason:?}"
        );
        assert_eq!(view["restarts"], MAX_RESTARTS, "{name}: {view}");
        assert_eq!(
            view["consecutive_faults"],
            MAX_RESTARTS + 1,
            "{name}: {view}"
        );
        assert!(view["next_restart_in_ms"].is_null());

        // Restarts came with a growing delay (100 ms, then 200 ms, ±10 %).
        let history = host.get_json(&format!("/api/plugins/{name}/restart-history"))["items"]
            .as_array()
            .unwrap()
            .clone();
        let crashes: Vec<u128> = history
            .iter()
            .filter(|r| r["status"] == "crashed")
            .map(|r| millis(&r["timestamp"]))
            .collect();
        assert_eq!(crashes.len() as u64, MAX_RESTARTS, "{name}: {history:?}");
        assert_eq!(
            history.last().unwrap()["status"],
            "failed",
            "{name}: {history:?}"
        );
        let failed = millis(&history.last().unwrap()["timestamp"]);
        assert!(
            crashes[1] - crashes[0] >= 90,
            "{name}: first backoff too short: {history:?}"
        );
        assert!(
            failed - crashes[1] >= 180,
            "{name}: second backoff too short: {history:?}"
        );
    }

    let (_, metrics) = host.get("/metrics");
    promtool_check(&metrics).unwrap();
    for (name, _, _, kind, _) in HOSTILE {
        assert_eq!(
            metric_value(&metrics, "wasmon_plugin_up", &[("plugin", name)]),
            Some(0.0),
            "{name}"
        );
        assert_eq!(
            metric_value(
                &metrics,
                "wasmon_plugin_faults_total",
                &[("plugin", name), ("reason", kind)]
            ),
            Some((MAX_RESTARTS + 1) as f64),
            "{name}"
        );
        assert_eq!(
            metric_value(
                &metrics,
                "wasmon_plugin_restarts_total",
                &[("plugin", name)]
            ),
            Some(MAX_RESTARTS as f64),
            "{name}"
        );
    }
    assert!(
        metric_value(&metrics, "fixture_huge", &[]).is_none(),
        "nothing of the huge answer was stored"
    );
    assert_eq!(
        metric_value(
            &metrics,
            "wasmon_plugin_capability_denied_total",
            &[("plugin", "forbidden_http"), ("capability", "http")]
        ),
        Some((MAX_RESTARTS + 1) as f64)
    );
    let logs = host.logs();
    assert!(
        logs.contains("plugin failed: too many faults in a row"),
        "a failure is logged"
    );

    // A reset gives a failed plugin another round of restarts.
    let (status, body) = host.post("/api/plugins/trap_call/reset");
    assert_eq!(status, StatusCode::OK, "{body}");
    let view = host.wait_until(Duration::from_secs(15), || {
        let v = plugin(&host, "trap_call");
        (v["status"] == "failed" && v["faults"].as_u64() > Some(MAX_RESTARTS + 1)).then_some(v)
    });
    assert_eq!(view["restarts"], 2 * MAX_RESTARTS + 1);
    let history = host.get_json("/api/plugins/trap_call/restart-history")["items"]
        .as_array()
        .unwrap()
        .clone();
    assert!(
        history.iter().any(|r| r["status"] == "manual"),
        "{history:?}"
    );
}

#[test]
fn a_trap_in_init_of_a_new_version_keeps_the_old_one_serving() {
    let host = Host::start(
        HostOptions::new(BIN)
            .config("[sampling]\nenabled = false\n")
            .plugin("counter", guests::GUEST_COUNTER)
            .manifest("counter", "interval = \"100ms\"\n"),
    );
    host.wait_until(Duration::from_secs(15), || {
        Some(counter(&host)).filter(|v| *v >= 1.0)
    });
    host.plugins().install("counter", guests::GUEST_TRAP_INIT);
    let view = host.wait_until(Duration::from_secs(15), || {
        let v = plugin(&host, "counter");
        (!v["last_reload_error"].is_null()).then_some(v)
    });
    let message = view["last_reload_error"]["message"].as_str().unwrap();
    assert!(message.contains("deliberate panic in init"), "{message}");
    assert_eq!(view["status"], "running");
    assert_eq!(view["generation"], 1);
    let n = counter(&host);
    host.wait_until(Duration::from_secs(5), || {
        (counter(&host) > n).then_some(())
    });
}
