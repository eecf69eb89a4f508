//! The client SDK's example (`client/examples/jobs.rs`) against the real
//! binary: a parent job with three sub-jobs, one failing, reported end to end
//! with an ingestion token.

use serde_json::Value;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;
use wasmon_test_support::{Host, HostOptions, metric_value};

const BIN: &str = env!("CARGO_BIN_EXE_wasmon");

/// `target/<profile>/examples/jobs`, built by `cargo test --workspace` (cargo
/// builds every member's examples with its tests).
fn example() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile_dir = exe.parent().and_then(|deps| deps.parent()).unwrap();
    let path = profile_dir.join("examples").join("jobs");
    assert!(
        path.exists(),
        "{} is missing: build it with `cargo test --workspace` or `cargo build -p wasmon-client --example jobs`",
        path.display()
    );
    path
}

#[test]
fn the_example_reports_a_parent_job_with_child_jobs() {
    let host = Host::start(
        HostOptions::new(BIN).config("[sampling]\nenabled = false\n[ingest]\ntoken = \"t0ken\"\n"),
    );
    host.wait_ready(Duration::from_secs(20));
    let output = Command::new(example())
        .arg(host.base_url())
        .env("SITE_ID", "fab7")
        .env("MONITOR_INGEST_TOKEN", "t0ken")
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    let parent = report["parent"].as_str().unwrap();
    let children: Vec<&str> = report["children"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert_eq!(children.len(), 3);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("0 dropped, 0 rejected"), "{stderr}");

    let events = host.get_json("/api/events?service=example-etl&limit=1000");
    let events = events["events"].as_array().unwrap();
    let of = |id: &str, event_type: &str| -> Vec<&Value> {
        events
            .iter()
            .filter(|e| e["attributes"]["entity.id"] == id && e["event_type"] == event_type)
            .collect()
    };
    assert_eq!(of(parent, "job.started").len(), 1);
    let finished = of(parent, "job.finished");
    assert_eq!(finished.len(), 1);
    let finished = finished[0];
    assert_eq!(finished["attributes"]["event.status"], "succeeded");
    assert_eq!(finished["attributes"]["site_id"], "fab7");
    assert_eq!(finished["attributes"]["entity.business_key"], "daily-batch");
    assert!(
        finished["attributes"]["event.metrics.duration_s"]
            .as_f64()
            .unwrap()
            > 0.0
    );
    assert!(
        finished["attributes"]["event.metrics.mem_max_mb"]
            .as_f64()
            .unwrap()
            > 0.0
    );
    assert!(
        finished["attributes"]["event.metrics.cpu_user_s"]
            .as_f64()
            .is_some()
    );
    assert_eq!(of(parent, "job.progress").len(), 3);
    for (i, child) in children.iter().enumerate() {
        let done = of(child, "subjob.finished");
        assert_eq!(done.len(), 1, "child {i}");
        assert_eq!(done[0]["attributes"]["entity.parent_id"], parent);
        assert_eq!(of(child, "subjob.progress").len(), 4);
        let status = done[0]["attributes"]["event.status"].as_str().unwrap();
        if i == 1 {
            assert_eq!(status, "failed");
            assert_eq!(done[0]["severity"], "critical");
            assert_eq!(done[0]["detail"], "checksum mismatch in part transform");
        } else {
            assert_eq!(status, "succeeded");
        }
    }
    let (_, metrics) = host.get("/metrics");
    let task = |name: &str, component: &str| {
        metric_value(
            &metrics,
            name,
            &[("service", "example-etl"), ("component", component)],
        )
    };
    assert_eq!(task("monitoring_task_success_total", "subjob"), Some(2.0));
    assert_eq!(task("monitoring_task_failures_total", "subjob"), Some(1.0));
    assert_eq!(task("monitoring_task_success_total", "job"), Some(1.0));
}
