//! Issue 9, point 4 and 7: the `storage` capability and `collector-storage`
//! against a real S3-compatible server (moto, verifying SigV4 signatures):
//! buckets, objects and bytes the test created; a wrong secret is a clear
//! `storage` error and no secret reaches a log line or the API; a plugin
//! without the grant (or asking for a bucket outside its allow-list) gets
//! `not-granted` and a capability fault; a dead server opens the
//! `PLUGIN/storage` circuit breaker.

use serde_json::Value;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;
use wasmon_test_support::{Host, HostOptions, S3Server, guests, metric_value, promtool_check};

const BIN: &str = env!("CARGO_BIN_EXE_wasmon");
const WAIT: Duration = Duration::from_secs(30);
const ACCESS_VAR: &str = "WASMON_TEST_S3_ACCESS_KEY";
const SECRET_VAR: &str = "WASMON_TEST_S3_SECRET_KEY";

/// A bucket name no other test of this binary uses (the server is shared).
fn bucket(what: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "{what}-{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// A `collector-storage` manifest for `endpoint`, with `extra` lines in
/// `[capabilities.storage]` and `config` lines in `[config]`.
fn manifest(endpoint: &str, extra: &str, config: &str) -> String {
    format!(
        "interval = \"300ms\"\nmax_restarts = 1000\n\
         [capabilities.storage]\nendpoint = {endpoint:?}\n\
         access_key_env = {ACCESS_VAR:?}\nsecret_key_env = {SECRET_VAR:?}\n{extra}\n\
         [config]\n{config}\n"
    )
}

/// A host whose environment holds `secret` as the secret key (in our
/// variables and in seed 001's `MONITORING_MINIO_*`).
fn start(s3: &S3Server, secret: &str, plugins: &[(&str, &str)]) -> Host {
    let mut options = HostOptions::new(BIN)
        .config("[plugins.defaults]\nbackoff_initial = \"100ms\"\nbackoff_max = \"200ms\"\n")
        .env(ACCESS_VAR, s3.access_key())
        .env(SECRET_VAR, secret)
        // Seed 001's variables, for examples/plugins.d/storage.toml.
        .env(
            "MONITORING_MINIO_ENDPOINT",
            format!("127.0.0.1:{}", s3.port()),
        )
        .env("MONITORING_MINIO_ACCESS_KEY", s3.access_key())
        .env("MONITORING_MINIO_SECRET_KEY", secret);
    for (name, manifest) in plugins {
        options = options
            .plugin(name, guests::COLLECTOR_STORAGE)
            .manifest(name, manifest);
    }
    Host::start(options)
}

/// The plugin's view, or null while it is not loaded yet.
fn plugin(host: &Host, name: &str) -> Value {
    let (status, body) = host.get(&format!("/api/plugins/{name}"));
    if status.is_success() {
        serde_json::from_str(&body).unwrap_or(Value::Null)
    } else {
        Value::Null
    }
}

fn metrics(host: &Host) -> String {
    host.get("/metrics").1
}

#[test]
fn collector_storage_reports_the_buckets_objects_and_bytes_the_test_created() {
    let s3 = S3Server::shared();
    let [images, results, empty, other, big] =
        ["images", "results", "empty", "other", "big"].map(bucket);
    s3.fill(&[
        (
            &images,
            &[("a.jpg", 10), ("b.jpg", 20), ("dir/c d+e~f.jpg", 30)],
        ),
        (
            &results,
            &[("r1", 1000), ("r2", 1), ("r3", 2), ("r4", 3), ("r5", 4)],
        ),
        (&empty, &[]),
        (&other, &[("x", 7)]),
        (&big, &[("blob", 300_000)]),
    ]);
    let allowed = format!("buckets = [{images:?}, {results:?}, {empty:?}]");
    // Two watched objects (HEAD): one with a key that needs encoding, one missing.
    let all = manifest(
        &s3.endpoint(),
        &allowed,
        &format!("watch = [\"{images}/dir/c d+e~f.jpg\", \"{images}/missing\"]"),
    );
    // Pages of 2 objects: ListObjectsV2 continuation tokens are signed too.
    // It also watches an object larger than its max_response_bytes: a HEAD
    // has no body, whatever its Content-Length says.
    let paged = manifest(
        &s3.endpoint(),
        &format!(
            "buckets = [{results:?}, {big:?}]\npage_size = 2\nmax_response_bytes = \"100KiB\""
        ),
        &format!("buckets = [{results:?}]\nwatch = [\"{big}/blob\"]"),
    );
    let capped = manifest(
        &s3.endpoint(),
        &format!("{allowed}\nmax_objects = 2"),
        &format!("buckets = [{images:?}]"),
    );
    // Answers over max_response_bytes are `too-large`.
    let tiny = manifest(&s3.endpoint(), "max_response_bytes = \"64\"", "");
    // The example manifest as shipped, with seed 001's variables.
    let example = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/plugins.d/storage.toml"),
    )
    .unwrap();
    let host = start(
        s3,
        s3.secret_key(),
        &[
            ("storage", &all),
            ("paged", &paged),
            ("capped", &capped),
            ("example", &example),
            ("tiny", &tiny),
        ],
    );
    let value = |text: &str, plugin: &str, name: &str, bucket: &str| {
        metric_value(text, name, &[("plugin", plugin), ("bucket", bucket)])
    };
    let text = host.wait_until(WAIT, || {
        let text = metrics(&host);
        (value(&text, "storage", "storage_bucket_objects", &empty).is_some()
            && value(&text, "paged", "storage_bucket_objects", &results).is_some()
            && value(&text, "capped", "storage_bucket_objects", &images).is_some()
            && value(&text, "example", "storage_bucket_objects", &images).is_some())
        .then_some(text)
    });
    assert_eq!(
        metric_value(&text, "storage_up", &[("plugin", "storage")]),
        Some(1.0)
    );
    assert!(
        metric_value(
            &text,
            "storage_health_latency_seconds",
            &[("plugin", "storage")]
        )
        .is_some_and(|s| s > 0.0 && s < 10.0),
        "{text}"
    );
    // The allow-list hides `other` from the listing.
    assert_eq!(
        metric_value(&text, "storage_buckets", &[("plugin", "storage")]),
        Some(3.0)
    );
    assert_eq!(
        value(&text, "storage", "storage_bucket_objects", &other),
        None
    );
    for (bucket, objects, bytes) in [
        (&images, 3.0, 60.0),
        (&results, 5.0, 1010.0),
        (&empty, 0.0, 0.0),
    ] {
        assert_eq!(
            value(&text, "storage", "storage_bucket_objects", bucket),
            Some(objects),
            "{bucket}\n{text}"
        );
        assert_eq!(
            value(&text, "storage", "storage_bucket_bytes", bucket),
            Some(bytes),
            "{bucket}\n{text}"
        );
        assert_eq!(
            value(&text, "storage", "storage_bucket_truncated", bucket),
            Some(0.0),
            "{bucket}"
        );
    }
    assert_eq!(
        value(&text, "paged", "storage_bucket_objects", &results),
        Some(5.0)
    );
    assert_eq!(
        value(&text, "paged", "storage_bucket_bytes", &results),
        Some(1010.0)
    );
    assert_eq!(
        metric_value(
            &text,
            "storage_object_bytes",
            &[("plugin", "paged"), ("bucket", &big), ("key", "blob")]
        ),
        Some(300_000.0),
        "{text}"
    );
    assert_eq!(
        value(&text, "paged", "storage_bucket_truncated", &results),
        Some(0.0)
    );
    // max_objects = 2: the count stops there and says so.
    assert_eq!(
        value(&text, "capped", "storage_bucket_objects", &images),
        Some(2.0)
    );
    assert_eq!(
        value(&text, "capped", "storage_bucket_bytes", &images),
        Some(30.0)
    );
    assert_eq!(
        value(&text, "capped", "storage_bucket_truncated", &images),
        Some(1.0)
    );
    let object = |name: &str, key: &str| {
        metric_value(
            &text,
            name,
            &[("plugin", "storage"), ("bucket", &images), ("key", key)],
        )
    };
    assert_eq!(
        object("storage_object_present", "dir/c d+e~f.jpg"),
        Some(1.0)
    );
    assert_eq!(
        object("storage_object_bytes", "dir/c d+e~f.jpg"),
        Some(30.0)
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(
        object(
            "storage_object_modified_timestamp_seconds",
            "dir/c d+e~f.jpg"
        )
        .is_some_and(|t| (now - 600.0..now + 60.0).contains(&t)),
        "{text}"
    );
    assert_eq!(object("storage_object_present", "missing"), Some(0.0));
    assert_eq!(object("storage_object_bytes", "missing"), None);
    host.wait_for_log("storage: an answer exceeded 64 bytes", WAIT);
    host.wait_until(WAIT, || {
        metric_value(&metrics(&host), "storage_up", &[("plugin", "tiny")]).filter(|v| *v == 0.0)
    });
    // The example sees every bucket of the server (no allow-list).
    assert_eq!(
        value(&text, "example", "storage_bucket_objects", &other),
        Some(1.0)
    );
    assert_eq!(
        value(&text, "example", "storage_bucket_bytes", &images),
        Some(60.0)
    );
    assert_eq!(promtool_check(&text), Ok(()));
    assert!(
        metric_value(
            &text,
            "wasmon_plugin_capability_calls_total",
            &[
                ("plugin", "storage"),
                ("capability", "storage"),
                ("result", "ok")
            ]
        )
        .is_some_and(|n| n >= 5.0),
        "{text}"
    );
    for name in ["storage", "paged", "capped", "example", "tiny"] {
        let view = plugin(&host, name);
        assert_eq!(view["faults"], 0, "{view}");
        let shown = view.to_string();
        assert!(
            !shown.contains(s3.secret_key()),
            "the API shows the secret: {shown}"
        );
        // The grant shows (endpoint, variables' names), never the keys.
        assert!(shown.contains(SECRET_VAR) || name == "example", "{shown}");
        assert!(
            !shown.contains(s3.access_key()),
            "the API shows the access key: {shown}"
        );
    }
    assert!(
        !host.logs().contains(s3.secret_key()),
        "a log line holds the secret"
    );
}

#[test]
fn a_wrong_secret_is_a_clear_storage_error_and_no_secret_is_logged() {
    let s3 = S3Server::shared();
    let images = bucket("wrong");
    s3.fill(&[(&images, &[("a", 1)])]);
    let wrong_secret = "wR0ng-Secret-Value-4242";
    let host = start(
        s3,
        wrong_secret,
        &[("wrong", &manifest(&s3.endpoint(), "", ""))],
    );
    let line = host.wait_for_log("the server refused the credentials", WAIT);
    for part in [
        "plugin wrong",
        "storage",
        "403",
        "SignatureDoesNotMatch",
        &s3.endpoint(),
        ACCESS_VAR,
        SECRET_VAR,
    ] {
        assert!(line.contains(part), "the error names {part}: {line}");
    }
    host.wait_until(WAIT, || {
        metric_value(&metrics(&host), "storage_up", &[("plugin", "wrong")]).filter(|v| *v == 0.0)
    });
    host.wait_until(WAIT, || {
        metric_value(
            &metrics(&host),
            "wasmon_plugin_capability_calls_total",
            &[
                ("plugin", "wrong"),
                ("capability", "storage"),
                ("result", "auth"),
            ],
        )
        .filter(|n| *n >= 2.0)
    });
    // A refusal is an answer: the server is up, the breaker stays closed.
    let refused = breaker(&host, "wrong/storage");
    assert_eq!(refused["state"], "closed", "{refused}");
    assert_eq!(refused["failure_count"], 0, "{refused}");
    let view = plugin(&host, "wrong");
    assert_eq!(view["faults"], 0, "{view}");
    assert!(!view.to_string().contains(wrong_secret), "{view}");
    let logs = host.logs();
    assert!(
        !logs.contains(wrong_secret),
        "a log line holds the wrong secret"
    );
    assert!(
        !logs.contains(s3.secret_key()),
        "a log line holds the real secret"
    );
}

#[test]
fn without_the_grant_or_outside_the_allow_list_storage_is_not_granted_and_a_capability_fault() {
    let s3 = S3Server::shared();
    let [mine, theirs] = ["mine", "theirs"].map(bucket);
    s3.fill(&[(&mine, &[("a", 1)]), (&theirs, &[("b", 2)])]);
    let no_grant = "interval = \"300ms\"\nmax_restarts = 1000\n[config]\n";
    let outside = manifest(
        &s3.endpoint(),
        &format!("buckets = [{mine:?}]"),
        &format!("buckets = [{theirs:?}]"),
    );
    let host = start(
        s3,
        s3.secret_key(),
        &[("nogrant", no_grant), ("outside", &outside)],
    );
    for (name, why) in [
        ("nogrant", "no [capabilities.storage]".to_string()),
        (
            "outside",
            format!("bucket \\\"{theirs}\\\" is not in capabilities.storage.buckets"),
        ),
    ] {
        let view = host.wait_until(WAIT, || {
            let v = plugin(&host, name);
            (v["faults"].as_u64() >= Some(1)).then_some(v)
        });
        let error = view["last_error"].to_string();
        assert!(
            error.contains("capability") && error.contains(&why),
            "{name}: {error}"
        );
        let text = metrics(&host);
        assert!(
            metric_value(
                &text,
                "wasmon_plugin_faults_total",
                &[("plugin", name), ("reason", "capability")]
            )
            .is_some_and(|n| n >= 1.0),
            "{text}"
        );
        assert!(
            metric_value(
                &text,
                "wasmon_plugin_capability_denied_total",
                &[("plugin", name), ("capability", "storage")]
            )
            .is_some_and(|n| n >= 1.0),
            "{text}"
        );
    }
    host.wait_for_log("capability denied", WAIT);
}

fn breaker(host: &Host, name: &str) -> Value {
    let list = host.get_json("/api/system/circuit-breakers");
    list["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["name"] == name)
        .cloned()
        .unwrap_or(Value::Null)
}

#[test]
fn a_killed_server_opens_the_storage_breaker() {
    let s3 = S3Server::start();
    let images = bucket("kill");
    s3.fill(&[(&images, &[("a", 5)])]);
    let manifest = format!(
        "breaker_threshold = 3\nbreaker_backoff = \"30s\"\nbreaker_max_backoff = \"60s\"\n{}",
        manifest(&s3.endpoint(), "timeout = \"1s\"", "")
    );
    let host = start(&s3, s3.secret_key(), &[("dying", &manifest)]);
    host.wait_until(WAIT, || {
        metric_value(&metrics(&host), "storage_up", &[("plugin", "dying")]).filter(|v| *v == 1.0)
    });
    assert_eq!(breaker(&host, "dying/storage")["state"], "closed");
    let mark = host.log_mark();
    s3.kill();
    let open = host.wait_until(WAIT, || {
        let b = breaker(&host, "dying/storage");
        (b["state"] == "open").then_some(b)
    });
    assert!(open["failure_count"].as_u64() >= Some(3), "{open}");
    assert!(
        open["last_failure"]
            .to_string()
            .contains("cannot reach the server"),
        "{open}"
    );
    let line = host.wait_for_log_since(mark, "cannot reach the server", WAIT);
    assert!(
        line.contains("plugin dying") && line.contains(&s3.endpoint()),
        "{line}"
    );
    // One log line for the transition, naming the breaker and the cause.
    let opened = host.wait_for_log_since(mark, "circuit breaker opened", WAIT);
    assert!(
        opened.contains("dying/storage") && opened.contains("cannot reach the server"),
        "{opened}"
    );
    let text = host.wait_until(WAIT, || {
        let text = metrics(&host);
        metric_value(&text, "storage_up", &[("plugin", "dying")])
            .filter(|v| *v == 0.0)
            .map(|_| text)
    });
    assert_eq!(
        metric_value(
            &text,
            "wasmon_circuit_breaker_state",
            &[("plugin", "dying"), ("source", "storage")]
        ),
        Some(2.0),
        "{text}"
    );
    // While it is open the collector is not called (its interval backs off
    // to the breaker's next attempt, 30 s away): the host keeps serving.
    let calls = |text: &str| {
        metric_value(
            text,
            "wasmon_plugin_capability_calls_total",
            &[
                ("plugin", "dying"),
                ("capability", "storage"),
                ("result", "connection"),
            ],
        )
    };
    let before = calls(&text);
    assert!(before >= Some(3.0), "{text}");
    for _ in 0..5 {
        assert_eq!(host.get("/metrics").0, wasmon_test_support::StatusCode::OK);
        std::thread::sleep(Duration::from_millis(300));
    }
    assert_eq!(
        calls(&metrics(&host)),
        before,
        "no request while the breaker is open"
    );
    assert_eq!(plugin(&host, "dying")["faults"], 0);
}

/// Sends `signal` (`STOP`, `CONT`) to `pid`.
fn signal(pid: i32, signal: &str) {
    let status = std::process::Command::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -{signal} {pid}");
}

#[test]
fn a_stopped_server_times_out_opens_the_breaker_and_it_closes_when_the_server_returns() {
    let s3 = S3Server::start();
    let images = bucket("stop");
    s3.fill(&[(&images, &[("a", 5)])]);
    let manifest = format!(
        "breaker_threshold = 2\nbreaker_backoff = \"300ms\"\nbreaker_max_backoff = \"600ms\"\n{}",
        manifest(&s3.endpoint(), "timeout = \"500ms\"", "")
    );
    let host = start(&s3, s3.secret_key(), &[("paused", &manifest)]);
    host.wait_until(WAIT, || {
        metric_value(&metrics(&host), "storage_up", &[("plugin", "paused")]).filter(|v| *v == 1.0)
    });
    let mark = host.log_mark();
    signal(s3.pid(), "STOP");
    let open = host.wait_until(WAIT, || {
        let b = breaker(&host, "paused/storage");
        (b["state"] == "open").then_some(b)
    });
    assert!(
        open["last_failure"]
            .to_string()
            .contains("no answer within 500ms"),
        "{open}"
    );
    // The host keeps serving while the server hangs.
    assert_eq!(host.get("/metrics").0, wasmon_test_support::StatusCode::OK);
    signal(s3.pid(), "CONT");
    let closed = host.wait_for_log_since(mark, "to=\"closed\"", WAIT);
    assert!(closed.contains("paused/storage"), "{closed}");
    host.wait_until(WAIT, || {
        let b = breaker(&host, "paused/storage");
        let up = metric_value(&metrics(&host), "storage_up", &[("plugin", "paused")]);
        (b["state"] == "closed" && up == Some(1.0)).then_some(())
    });
    assert_eq!(plugin(&host, "paused")["faults"], 0);
}
