//! Errors that teach (issue 12, item 6), against the real binary and real
//! components: a plugin that cannot load says which plugin and file, the WIT
//! version it was built for against the versions the host supports, the
//! import or export at fault by its WIT name, and what to do, the same in
//! `/api/plugins`, in the log and in `wasmon plugin check`; a guest panic
//! shows the guest's message; refused sample names are reported with the
//! plugin and the first refused name, once per reload.

use serde_json::Value;
use std::path::Path;
use std::process::Command;
use std::time::Duration;
use wasmon_test_support::{Host, HostOptions, StatusCode, guests, metric_value};

const BIN: &str = env!("CARGO_BIN_EXE_wasmon");
const WAIT: Duration = Duration::from_secs(20);

/// A host serving the `counter` fixture, so a bad install is a failed reload.
fn counter_host() -> Host {
    let host = Host::start(
        HostOptions::new(BIN)
            .config("[sampling]\nenabled = false\n")
            .plugin("counter", guests::GUEST_COUNTER)
            .manifest("counter", "interval = \"200ms\"\n"),
    );
    wait_plugin(&host, "counter", |p| p["status"] == "running");
    host
}

fn wait_plugin(host: &Host, name: &str, check: impl Fn(&Value) -> bool) -> Value {
    host.wait_until(WAIT, || {
        let (status, body) = host.get(&format!("/api/plugins/{name}"));
        let view: Value = serde_json::from_str(&body).ok()?;
        (status == StatusCode::OK && check(&view)).then_some(view)
    })
}

/// The message of `field` (`last_error` or `last_reload_error`) once set.
fn wait_error(host: &Host, name: &str, field: &str, needle: &str) -> String {
    let view = wait_plugin(host, name, |p| {
        p[field]["message"]
            .as_str()
            .is_some_and(|m| m.contains(needle))
    });
    view[field]["message"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// `wasmon plugin check FILE`: (exit success, stdout + stderr).
fn check(wasm: &Path) -> (bool, String) {
    let out = Command::new(BIN)
        .args(["plugin", "check"])
        .arg(wasm)
        .output()
        .expect("run wasmon plugin check");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// The part of a load error after `plugin `NAME` (FILE): `, which every
/// place must say alike.
fn after_origin<'a>(message: &'a str, host: &Host, name: &str) -> &'a str {
    let origin = format!(
        "plugin `{name}` ({}): ",
        host.plugins().wasm_path(name).display()
    );
    assert!(
        message.starts_with(&origin),
        "the error names the plugin and its file ({origin}): {message}"
    );
    &message[origin.len()..]
}

#[test]
fn a_plugin_built_for_a_future_wit_version_names_both_versions_everywhere() {
    let host = counter_host();
    let mark = host.log_mark();
    host.plugins().install("counter", guests::GUEST_WIT_V030);
    let message = wait_error(&host, "counter", "last_reload_error", "0.3.0");
    let teaching = after_origin(&message, &host, "counter");
    assert!(
        teaching.starts_with(
            "built for wasmon:plugin@0.3.0; this host supports 0.1.0–0.2.0. hint: rebuild it against wasmon:plugin@0.2.0"
        ),
        "{message}"
    );
    // wasmtime's own error stays as the cause.
    assert!(
        message.contains("component imports instance `wasmon:plugin/"),
        "{message}"
    );
    // The same text in the log line...
    let line = host.wait_for_log_since(mark, "reload failed", WAIT);
    assert!(line.contains(&message), "log: {line}\napi: {message}");
    // ...and from `wasmon plugin check`.
    let (ok, out) = check(Path::new(guests::GUEST_WIT_V030));
    assert!(!ok, "{out}");
    assert!(out.contains(teaching), "check: {out}\napi: {message}");
    // The old version keeps serving.
    let view = wait_plugin(&host, "counter", |p| p["status"] == "running");
    assert_eq!(view["generation"], 1);
}

#[test]
fn an_import_the_host_lacks_is_named_by_its_wit_name() {
    let host = counter_host();
    host.plugins().install("drift", guests::GUEST_WIT_DRIFT);
    let message = wait_error(&host, "drift", "last_error", "flush-logs");
    let teaching = after_origin(&message, &host, "drift");
    assert!(
        teaching.starts_with(
            "cannot link the collector plugin: it imports `wasmon:plugin/host@0.2.0` function `flush-logs`, which this host does not provide; built for wasmon:plugin@0.2.0; this host supports 0.1.0–0.2.0. hint: "
        ),
        "{message}"
    );
    assert!(
        message.contains("function implementation is missing"),
        "the raw cause is kept: {message}"
    );
    assert_eq!(wait_plugin(&host, "drift", |_| true)["status"], "invalid");
    let (ok, out) = check(Path::new(guests::GUEST_WIT_DRIFT));
    assert!(!ok, "{out}");
    assert!(out.contains(teaching), "check: {out}\napi: {message}");
}

#[test]
fn a_core_module_or_garbage_is_told_how_to_build_a_component() {
    let host = counter_host();
    // The smallest valid core module: magic and version, no sections.
    host.plugins().install_bytes("core", b"\0asm\x01\0\0\0");
    let message = wait_error(&host, "core", "last_error", "core");
    assert!(
        after_origin(&message, &host, "core").starts_with(
            "this is a core WebAssembly module, not a component: build it for wasm32-wasip2"
        ),
        "{message}"
    );
    host.plugins()
        .install_bytes("text", b"kind = \"collector\"\n");
    let message = wait_error(&host, "text", "last_error", "valid");
    assert!(
        after_origin(&message, &host, "text")
            .starts_with("not a valid WebAssembly component. hint: the file does not start with the WebAssembly magic bytes"),
        "{message}"
    );
    let core = host.dir().join("core.wasm");
    std::fs::write(&core, b"\0asm\x01\0\0\0").expect("write");
    let (ok, out) = check(&core);
    assert!(!ok, "{out}");
    assert!(
        out.contains("this is a core WebAssembly module, not a component"),
        "{out}"
    );
}

#[test]
fn a_guest_panic_shows_the_guest_message() {
    let host = counter_host();
    host.plugins().install("trappy", guests::GUEST_TRAP_CALL);
    host.plugins()
        .write_manifest("trappy", "interval = \"200ms\"\nmax_restarts = 100\n");
    let message = wait_error(&host, "trappy", "last_error", "deliberate");
    assert!(
        message.contains("guest-trap-call: deliberate panic in collect"),
        "{message}"
    );
}

#[test]
fn a_refused_sample_name_is_reported_once_per_reload() {
    let host = counter_host();
    let mark = host.log_mark();
    let manifest =
        |name: &str| format!("interval = \"100ms\"\n[config]\nname = \"{name}\"\nvalue = 1.0\n");
    host.plugins().write_manifest("replay", &manifest("0bad"));
    host.plugins()
        .install("replay", guests::GUEST_SERIES_REPLAY);
    let view = wait_plugin(&host, "replay", |p| {
        p["refused_samples"]["count"]
            .as_u64()
            .is_some_and(|n| n >= 5)
    });
    let refused = &view["refused_samples"];
    assert_eq!(refused["generation"], 1, "{refused}");
    assert_eq!(refused["reason"], "invalid_name", "{refused}");
    assert_eq!(
        refused["first"], "sample `0bad`: metric name starts with a digit",
        "{refused}"
    );
    let line = host.wait_for_log_since(mark, "samples refused by the store", WAIT);
    assert!(line.contains("replay") && line.contains("`0bad`"), "{line}");
    let dropped = |host: &Host| {
        metric_value(
            &host.get("/metrics").1,
            "wasmon_plugin_samples_dropped_total",
            &[("plugin", "replay"), ("reason", "invalid_name")],
        )
        .unwrap_or(0.0)
    };
    assert!(dropped(&host) >= 5.0);
    // Many calls, one line.
    let logs = host.logs();
    assert_eq!(
        logs.matches("samples refused by the store").count(),
        1,
        "{logs}"
    );

    // A reload with another bad name: one more line, for generation 2.
    let mark = host.log_mark();
    host.plugins().write_manifest("replay", &manifest("1worse"));
    let view = wait_plugin(&host, "replay", |p| {
        p["refused_samples"]["generation"] == 2
            && p["refused_samples"]["count"]
                .as_u64()
                .is_some_and(|n| n >= 5)
    });
    assert_eq!(
        view["refused_samples"]["first"],
        "sample `1worse`: metric name starts with a digit"
    );
    host.wait_for_log_since(mark, "`1worse`", WAIT);
    assert_eq!(
        host.logs().matches("samples refused by the store").count(),
        2
    );

    // A reload that fixes the name clears the report.
    host.plugins()
        .write_manifest("replay", &manifest("fixture_fine"));
    wait_plugin(&host, "replay", |p| {
        p["generation"] == 3 && p["refused_samples"].is_null() && p["series"] == 1
    });
}
