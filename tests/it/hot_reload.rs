//! Hot reload against the real binary: a new component serves within a second
//! with a new sha256 and generation; a corrupt or wrong-world component leaves
//! the old version serving and says why; deleting unloads; a manifest change
//! reconfigures; state written before a reload is read after it; the reload
//! endpoint and SIGHUP take the same path.

use serde_json::Value;
use sha2::{Digest, Sha256};
use std::time::{Duration, Instant};
use wasmon_test_support::{Host, HostOptions, StatusCode, guests, metric_value};

const BIN: &str = env!("CARGO_BIN_EXE_wasmon");
const WAIT: Duration = Duration::from_secs(15);

fn sha256(path: &str) -> String {
    Sha256::digest(std::fs::read(path).unwrap())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn counter_host(extra_config: &str, manifest: &str) -> Host {
    let host = Host::start(
        HostOptions::new(BIN)
            .config(&format!("[sampling]\nenabled = false\n{extra_config}"))
            .plugin("counter", guests::GUEST_COUNTER)
            .manifest("counter", manifest),
    );
    wait_plugin(&host, "counter", |p| {
        p["status"] == "running" && p["generation"] == 1
    });
    host
}

fn plugin(host: &Host, name: &str) -> Value {
    host.get_json(&format!("/api/plugins/{name}"))
}

fn wait_plugin(host: &Host, name: &str, check: impl Fn(&Value) -> bool) -> Value {
    host.wait_until(WAIT, || {
        let (status, body) = host.get(&format!("/api/plugins/{name}"));
        let view: Value = serde_json::from_str(&body).ok()?;
        (status == StatusCode::OK && check(&view)).then_some(view)
    })
}

fn sample(host: &Host, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    metric_value(&host.get("/metrics").1, name, labels)
}

fn wait_sample(
    host: &Host,
    name: &str,
    labels: &[(&str, &str)],
    check: impl Fn(f64) -> bool,
) -> f64 {
    host.wait_until(WAIT, || sample(host, name, labels).filter(|v| check(*v)))
}

#[test]
fn a_new_component_serves_within_a_second_and_keeps_the_state() {
    let host = counter_host("", "interval = \"100ms\"\n");
    let v1 = plugin(&host, "counter");
    assert_eq!(v1["sha256"], sha256(guests::GUEST_COUNTER));
    assert_eq!(v1["kind"], "collector");
    wait_sample(&host, "fixture_build", &[("build", "1")], |v| v == 1.0);
    let before = wait_sample(&host, "fixture_collected", &[], |v| v >= 3.0);

    let written = Instant::now();
    host.plugins().install("counter", guests::GUEST_COUNTER_V2);
    let v2 = wait_plugin(&host, "counter", |p| p["generation"] == 2);
    let took = written.elapsed();
    assert!(
        took < Duration::from_secs(1),
        "the new version took {took:?} to serve"
    );
    assert_eq!(v2["sha256"], sha256(guests::GUEST_COUNTER_V2));
    assert_ne!(v2["sha256"], v1["sha256"]);
    assert_eq!(v2["status"], "running");

    wait_sample(&host, "fixture_build", &[("build", "2")], |v| v == 1.0);
    // The v2 instance continued the count v1 kept in the state: no reset to 1.
    let after = sample(&host, "fixture_collected", &[]).unwrap();
    assert!(
        after > before,
        "counter went from {before} to {after} across the reload"
    );
    assert!(
        sample(&host, "fixture_build", &[("build", "1")]).is_none(),
        "v1's series left with v1"
    );
    let (_, metrics) = host.get("/metrics");
    assert_eq!(
        metric_value(
            &metrics,
            "wasmon_plugin_reloads_total",
            &[("plugin", "counter"), ("result", "success")]
        ),
        Some(2.0)
    );
}

#[test]
fn a_corrupt_or_wrong_world_component_leaves_the_old_version_serving() {
    let host = counter_host("", "interval = \"100ms\"\n");
    let sha = plugin(&host, "counter")["sha256"].clone();

    host.plugins().install_corrupt("counter");
    let view = wait_plugin(&host, "counter", |p| !p["last_reload_error"].is_null());
    assert_eq!(view["generation"], 1);
    assert_eq!(view["sha256"], sha);
    assert_eq!(view["status"], "running");
    let error = view["last_reload_error"]["message"].as_str().unwrap();
    assert!(
        error.contains("not a valid WebAssembly component"),
        "{error}"
    );
    // Still collecting.
    let n = wait_sample(&host, "fixture_collected", &[], |_| true);
    wait_sample(&host, "fixture_collected", &[], |v| v > n);

    host.plugins()
        .install("counter", guests::GUEST_NOT_A_PLUGIN);
    let view = wait_plugin(&host, "counter", |p| {
        p["last_reload_error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("not a wasmon plugin"))
    });
    assert_eq!(view["generation"], 1);
    assert_eq!(view["sha256"], sha);
    let error = view["last_reload_error"]["message"].as_str().unwrap();
    assert!(
        error.contains("wasi:cli/run"),
        "the error lists what it exports: {error}"
    );
    let (_, metrics) = host.get("/metrics");
    assert_eq!(
        metric_value(
            &metrics,
            "wasmon_plugin_reloads_total",
            &[("plugin", "counter"), ("result", "failure")]
        ),
        Some(2.0)
    );
    assert_eq!(
        metric_value(&metrics, "wasmon_plugin_up", &[("plugin", "counter")]),
        Some(1.0)
    );

    // A good version after bad ones loads, and clears the error.
    host.plugins().install("counter", guests::GUEST_COUNTER_V2);
    let view = wait_plugin(&host, "counter", |p| p["generation"] == 2);
    assert!(view["last_reload_error"].is_null());
}

#[test]
fn a_bad_manifest_leaves_the_old_version_serving_and_names_the_key() {
    let host = counter_host("", "interval = \"100ms\"\n");
    host.plugins()
        .write_manifest("counter", "interval = \"100ms\"\nmemory_limit = \"lots\"\n");
    let view = wait_plugin(&host, "counter", |p| !p["last_reload_error"].is_null());
    let error = view["last_reload_error"]["message"].as_str().unwrap();
    assert!(error.contains("`memory_limit`"), "{error}");
    assert!(error.contains("counter.toml"), "{error}");
    assert_eq!(view["generation"], 1);
    assert_eq!(view["status"], "running");
}

#[test]
fn deleting_the_component_unloads_the_plugin() {
    let host = counter_host("", "interval = \"100ms\"\n");
    wait_sample(&host, "fixture_collected", &[], |_| true);
    host.plugins().remove("counter");
    host.wait_until(WAIT, || {
        (host.get("/api/plugins/counter").0 == StatusCode::NOT_FOUND).then_some(())
    });
    let (_, metrics) = host.get("/metrics");
    assert!(
        metric_value(&metrics, "fixture_collected", &[]).is_none(),
        "its series are gone"
    );
    assert!(metric_value(&metrics, "wasmon_plugin_up", &[("plugin", "counter")]).is_none());
    assert_eq!(
        host.get_json("/api/plugins")["plugins"],
        serde_json::json!([])
    );
    let (status, body) = host.get("/api/plugins/counter");
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body.contains("detail"), "{body}");
}

#[test]
fn a_manifest_change_reconfigures_the_plugin() {
    let host = counter_host("", "interval = \"100ms\"\n[config]\nversion = \"a\"\n");
    wait_sample(&host, "fixture_version", &[("version", "a")], |v| v == 1.0);
    let sha = plugin(&host, "counter")["sha256"].clone();
    host.plugins().write_manifest(
        "counter",
        "interval = \"100ms\"\ntimeout = \"750ms\"\n[config]\nversion = \"b\"\n",
    );
    let view = wait_plugin(&host, "counter", |p| p["generation"] == 2);
    assert_eq!(view["sha256"], sha, "same component");
    assert_eq!(view["manifest"]["timeout"], "750ms");
    wait_sample(&host, "fixture_version", &[("version", "b")], |v| v == 1.0);
    assert!(sample(&host, "fixture_version", &[("version", "a")]).is_none());
}

#[test]
fn the_reload_endpoint_and_sighup_take_the_same_path() {
    // With watching off, only the endpoint and SIGHUP reload.
    let host = counter_host("[plugins]\nwatch = false\n", "interval = \"100ms\"\n");

    let (status, body) = host.post("/api/plugins/counter/reload");
    assert_eq!(status, StatusCode::OK, "{body}");
    let answer: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(answer["outcome"]["result"], "loaded");
    assert_eq!(answer["plugin"]["generation"], 2);

    host.plugins().install("counter", guests::GUEST_COUNTER_V2);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        plugin(&host, "counter")["generation"],
        2,
        "not watching: no reload yet"
    );
    host.signal(libc::SIGHUP);
    let view = wait_plugin(&host, "counter", |p| p["generation"] == 3);
    assert_eq!(view["sha256"], sha256(guests::GUEST_COUNTER_V2));

    host.plugins().install_corrupt("counter");
    let (status, body) = host.post("/api/plugins/counter/reload");
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    let detail = serde_json::from_str::<Value>(&body).unwrap()["detail"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(detail.contains("generation 3 keeps serving"), "{detail}");

    let (status, body) = host.post("/api/plugins/nosuch/reload");
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, body) = host.post("/api/plugins/no-such/reload");
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
}

#[test]
fn plugins_dropped_into_the_directory_load_and_startup_takes_the_same_path() {
    let host = Host::start(HostOptions::new(BIN).config("[sampling]\nenabled = false\n"));
    host.wait_ready(WAIT);
    host.plugins()
        .write_manifest("late", "interval = \"100ms\"\n");
    host.plugins().install("late", guests::GUEST_COUNTER);
    wait_plugin(&host, "late", |p| {
        p["status"] == "running" && p["generation"] == 1
    });
    wait_sample(&host, "fixture_collected", &[("plugin", "late")], |v| {
        v >= 1.0
    });
}

#[test]
fn admin_routes_require_the_token_when_one_is_set() {
    let host = counter_host(
        "[server]\nadmin_token = \"s3cret\"\n",
        "interval = \"1s\"\n",
    );
    let (status, body) = host.post("/api/plugins/counter/reload");
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let r = host.request(
        "POST",
        "/api/plugins/counter/reload",
        &[("authorization", "Bearer wrong")],
        None,
    );
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let r = host.request(
        "POST",
        "/api/plugins/counter/reload",
        &[("authorization", "Bearer s3cret")],
        None,
    );
    assert_eq!(r.status, StatusCode::OK, "{}", r.text());
    // Reading needs no token.
    assert_eq!(host.get("/api/plugins").0, StatusCode::OK);
}

#[test]
fn a_call_in_flight_finishes_on_the_old_instance_while_the_new_one_is_swapped_in() {
    // Busy 92 % of the time: a reload nearly always lands during a call.
    let manifest = |version: &str| {
        format!(
            "interval = \"50ms\"\ntimeout = \"3s\"\n[config]\nbusy_ms = 600\nversion = \"{version}\"\n"
        )
    };
    let host = Host::start(
        HostOptions::new(BIN)
            .config("[sampling]\nenabled = false\n")
            .plugin("slow", guests::GUEST_SLOW)
            .manifest("slow", &manifest("v1")),
    );
    wait_sample(
        &host,
        "fixture_slow_busy_seconds",
        &[("version", "v1")],
        |v| v >= 0.6,
    );
    let mut generation = 1;
    let replaced_calls = || host.logs().matches("already replaced").count();
    let replaced = (2..6).any(|n| {
        let before = replaced_calls();
        let written = Instant::now();
        host.plugins()
            .write_manifest("slow", &manifest(&format!("v{n}")));
        generation += 1;
        let g = generation;
        wait_plugin(&host, "slow", |p| p["generation"] == g);
        // The swap did not wait for the call in flight (600 ms)...
        let swapped = written.elapsed();
        // ...which then finished on the old instance.
        let seen = wasmon_test_support::try_wait_until(Duration::from_secs(2), || {
            (replaced_calls() > before).then_some(())
        });
        seen.is_some() && swapped < Duration::from_millis(600)
    });
    assert!(replaced, "no reload landed during a call: {}", host.logs());
    let view = wait_sample(
        &host,
        "fixture_slow_busy_seconds",
        &[("version", &format!("v{generation}"))],
        |v| v >= 0.6,
    );
    assert!(view >= 0.6);
    let plugin = plugin(&host, "slow");
    assert_eq!(plugin["faults"], 0, "{plugin}");
    assert_eq!(plugin["errors"], 0, "{plugin}");
}

/// `wasm` with a custom section naming `n` appended: the same code, a new
/// binary (a new sha256, nothing for a cache to reuse).
fn variant(wasm: &[u8], n: u8) -> Vec<u8> {
    let name = b"fixture";
    let mut section = vec![name.len() as u8];
    section.extend_from_slice(name);
    section.push(n);
    let mut out = wasm.to_vec();
    out.push(0); // custom section id
    out.push(section.len() as u8); // LEB128 of a length below 128
    out.extend_from_slice(&section);
    out
}

#[test]
fn a_file_replaced_while_the_plugins_load_at_startup_is_not_missed() {
    // Eight more plugins to compile (no cache) keep the startup load busy
    // after the first one is up; the first is replaced meanwhile.
    let v1 = std::fs::read(guests::GUEST_COUNTER).unwrap();
    let dir = std::env::temp_dir().join(format!("wasmon-variants-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut options = HostOptions::new(BIN)
        .config("[sampling]\nenabled = false\n[plugins]\ncache = false\n")
        .plugin("a_counter", guests::GUEST_COUNTER)
        .manifest("a_counter", "interval = \"100ms\"");
    for n in 0..8u8 {
        let path = dir.join(format!("b{n}.wasm"));
        std::fs::write(&path, variant(&v1, n)).unwrap();
        options = options.plugin(&format!("b{n}"), &path);
    }
    let host = Host::start(options);
    let _ = std::fs::remove_dir_all(&dir);
    host.wait_for_log("plugin=a_counter generation=1", WAIT);
    host.plugins()
        .install("a_counter", guests::GUEST_COUNTER_V2);
    let loaded_all = host.wait_for_log("plugins loaded", Duration::from_secs(60));
    assert!(loaded_all.contains("loaded=9"), "{loaded_all}");
    let view = wait_plugin(&host, "a_counter", |p| p["generation"] == 2);
    assert_eq!(view["sha256"], sha256(guests::GUEST_COUNTER_V2));
}
