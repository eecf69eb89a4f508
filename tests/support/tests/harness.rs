//! The harness itself, against `fake-wasmon` (the start-up contract of the real
//! binary without its features): start, HTTP helpers, logs, signals, restart,
//! stop; and the `Recorder`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::json;
use std::time::Duration;
use wasmon_test_support::{Host, HostOptions, Recorder, StatusCode, http, leftover_processes};

fn fake() -> HostOptions {
    HostOptions::new(env!("CARGO_BIN_EXE_fake-wasmon"))
}

#[test]
fn host_starts_serves_and_stops_cleanly() {
    let mut host = Host::start(
        fake()
            .config("[sampling]\ninterval = \"100ms\"\n")
            .env("WASMON_EXTRA", "yes")
            .plugin("early", env!("CARGO_BIN_EXE_fake-wasmon"))
            .manifest("early", "interval = \"1s\"\n"),
    );
    assert!(host.addr().ip().is_loopback() && host.addr().port() != 0);
    assert_eq!(host.get("/healthz"), (StatusCode::OK, "ok".to_string()));
    assert_eq!(host.get("/nope").0, StatusCode::NOT_FOUND);

    // The config file keeps the caller's keys and gains the plugin dir.
    let (_, config) = host.get("/config");
    let config: toml::Table = config.parse().unwrap();
    assert_eq!(config["sampling"]["interval"].as_str(), Some("100ms"));
    assert_eq!(
        config["plugins"]["dir"].as_str(),
        Some(host.plugins().path().to_str().unwrap())
    );

    // The port is the kernel's choice, extras pass, the rest is not inherited.
    let env = host.get_json("/env");
    assert_eq!(env["MONITOR_PORT"], "0");
    assert_eq!(env["MONITOR_HOST"], "127.0.0.1");
    assert_eq!(env["WASMON_EXTRA"], "yes");

    assert_eq!(host.get_json("/plugins"), json!(["early.wasm"]));
    host.plugins()
        .install("late", env!("CARGO_BIN_EXE_fake-wasmon"));
    assert_eq!(
        host.get_json("/plugins"),
        json!(["early.wasm", "late.wasm"])
    );

    let (status, body) = host.post_json("/echo", &json!({"a": 1}));
    assert_eq!((status, body.as_str()), (StatusCode::CREATED, r#"{"a":1}"#));
    assert_eq!(host.post("/echo"), (StatusCode::CREATED, String::new()));

    let mark = host.log_mark();
    host.signal(libc::SIGHUP);
    host.wait_for_log_since(mark, "reload requested", Duration::from_secs(5));
    assert!(host.logs().contains("listening addr="));

    // A restart keeps the directory, so the plugins are still there.
    let first_pid = host.pid();
    host.restart();
    assert_ne!(host.pid(), first_pid);
    assert_eq!(
        host.get_json("/plugins"),
        json!(["early.wasm", "late.wasm"])
    );

    let status = host.stop();
    assert!(status.success(), "fake-wasmon exited with {status}");
    // The log spans both runs and outlives the process.
    let logs = host.logs();
    assert_eq!(logs.matches("listening addr=").count(), 2, "{logs}");
    assert!(
        logs.contains("wasmon restarted") && logs.ends_with("shutting down"),
        "{logs}"
    );
    assert!(leftover_processes(host.tag()).is_empty());
}

#[test]
fn hosts_run_side_by_side_and_kill_is_immediate() {
    let mut a = Host::start(fake());
    let b = Host::start(fake());
    assert_ne!(a.addr(), b.addr());
    assert_ne!(a.dir(), b.dir());
    let status = a.kill();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(libc::SIGKILL)
    );
    assert_eq!(b.get("/healthz").0, StatusCode::OK);
}

#[test]
fn a_binary_that_never_listens_fails_start_with_its_output() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("broken-wasmon");
    std::fs::write(&script, "#!/bin/sh\necho booting\nexit 3\n").unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let result = std::panic::catch_unwind(|| Host::start(HostOptions::new(&script)));
    let message = *result.err().unwrap().downcast::<String>().unwrap();
    assert!(
        message.contains("exited during start-up (exit status: 3)"),
        "{message}"
    );
    assert!(message.contains("booting"), "{message}");
}

#[test]
fn recorder_records_requests_and_answers_what_it_is_told() {
    let recorder = Recorder::start();
    let response = http::request(
        "POST",
        &recorder.url("/hook?x=1"),
        &[
            ("content-type", "application/json"),
            ("authorization", "Bearer t"),
        ],
        Some(br#"{"event":"up"}"#),
    )
    .unwrap();
    assert_eq!(
        (response.status, response.text()),
        (StatusCode::OK, "ok".into())
    );

    recorder.set_status(503);
    assert_eq!(
        http::get(&recorder.url("/")).status,
        StatusCode::SERVICE_UNAVAILABLE
    );
    recorder.serve_metrics("up 1\n");
    let metrics = http::get(&recorder.url("/metrics"));
    assert_eq!(metrics.text(), "up 1\n");
    assert!(
        metrics
            .header("content-type")
            .unwrap()
            .starts_with("text/plain")
    );

    let requests = recorder.wait_for_requests(3, Duration::from_secs(5));
    assert_eq!(requests[0].method, "POST");
    assert_eq!(requests[0].path, "/hook?x=1");
    assert_eq!(requests[0].header("Authorization"), Some("Bearer t"));
    assert_eq!(requests[0].json(), json!({"event": "up"}));
    assert_eq!(requests[2].path, "/metrics");

    recorder.clear();
    recorder.set_delay(Duration::from_millis(300));
    let started = std::time::Instant::now();
    http::get(&recorder.url("/slow"));
    assert!(started.elapsed() >= Duration::from_millis(300));
    assert_eq!(recorder.requests().len(), 1);
}

#[test]
fn wait_for_requests_reports_what_arrived_on_timeout() {
    let recorder = Recorder::start();
    http::get(&recorder.url("/only-one"));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        recorder.wait_for_requests(2, Duration::from_millis(200))
    }));
    let message = *result.err().unwrap().downcast::<String>().unwrap();
    assert!(
        message.contains("1 of 2 requests") && message.contains("/only-one"),
        "{message}"
    );
}

#[test]
fn nothing_tagged_outlives_a_dropped_host() {
    let host = Host::start(fake());
    let tag = host.tag().to_string();
    assert_eq!(leftover_processes(&tag).len(), 1);
    drop(host);
    assert!(leftover_processes(&tag).is_empty());
}
