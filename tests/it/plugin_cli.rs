//! Issue 12, `wasmon plugin check` and `wasmon plugin run`: the real binary
//! on real components (the test guests and shipped plugins), each copied
//! into a project directory as `NAME.wasm` beside its `NAME.toml`, the way
//! `wasmon plugin build` leaves them. A rule also runs on a live host's
//! samples and services (`--from`), and a sink writes the built-in events to
//! a real directory through the `files` capability.

use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use wasmon_test_support::{Host, HostOptions, guests};

const BIN: &str = env!("CARGO_BIN_EXE_wasmon");

/// A project directory holding `NAME.wasm` and, when given, `NAME.toml`;
/// removed on drop.
struct Project {
    dir: PathBuf,
}

impl Project {
    fn new(name: &str, wasm: &str, manifest: Option<&str>) -> Project {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let dir = std::env::temp_dir().join(format!(
            "wasmon-plugin-cli-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::copy(wasm, dir.join(format!("{name}.wasm"))).unwrap();
        if let Some(toml) = manifest {
            std::fs::write(dir.join(format!("{name}.toml")), toml).unwrap();
        }
        Project { dir }
    }

    fn path(&self, file: &str) -> PathBuf {
        self.dir.join(file)
    }

    fn write(&self, file: &str, text: &str) -> PathBuf {
        let path = self.path(file);
        std::fs::write(&path, text).unwrap();
        path
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Runs `wasmon ARGS` without the test's own logging settings.
fn wasmon(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env_remove("RUST_LOG")
        .env_remove("WASMON_CONFIG")
        .output()
        .unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// The JSON object on stdout.
fn json_of(output: &Output) -> Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not one JSON object ({e}):\n{}\nstderr:\n{}",
            stdout(output),
            stderr(output)
        )
    })
}

#[track_caller]
fn assert_ok(output: &Output) {
    assert!(
        output.status.success(),
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        output.status.code(),
        stdout(output),
        stderr(output)
    );
}

#[track_caller]
fn assert_failed(output: &Output) {
    assert_eq!(
        output.status.code(),
        Some(1),
        "expected exit 1\nstdout:\n{}\nstderr:\n{}",
        stdout(output),
        stderr(output)
    );
}

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

/// The value of the one sample named `name` in a JSON list of samples.
fn sample_value(samples: &Value, name: &str) -> f64 {
    let found: Vec<&Value> = samples
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["name"] == name)
        .collect();
    assert_eq!(found.len(), 1, "{name} in {samples}");
    found[0]["value"].as_f64().unwrap()
}

const COUNTER_MANIFEST: &str =
    "interval = \"1s\"\nmemory_limit = \"16MiB\"\n[config]\nversion = \"v9\"\n";

#[test]
fn check_summarises_a_collector_for_people_and_as_json() {
    let project = Project::new("counter", guests::GUEST_COUNTER, Some(COUNTER_MANIFEST));
    let wasm = project.path("counter.wasm");
    let size = std::fs::metadata(&wasm).unwrap().len();

    let human = wasmon(&["plugin", "check", s(&wasm)]);
    assert_ok(&human);
    let text = stdout(&human);
    for expected in [
        "counter (collector)",
        "wasmon:plugin/collector@0.2.0",
        "this host supports 0.1.0, 0.2.0",
        // The manifest beside the component is found and used.
        &project.path("counter.toml").display().to_string(),
        "memory_limit 16.0 MiB",
        "wasmon:plugin/{types, host}",
        "grants    none",
        "3 samples",
    ] {
        assert!(text.contains(expected), "{expected:?} missing in:\n{text}");
    }
    assert!(
        text.contains("compile ") && text.contains("after init"),
        "{text}"
    );

    let output = wasmon(&[
        "plugin",
        "check",
        s(&wasm),
        "--json",
        "--compiler",
        "cranelift",
    ]);
    assert_ok(&output);
    let report = json_of(&output);
    assert_eq!(report["plugin"], "counter");
    assert_eq!(report["kind"], "collector");
    assert_eq!(report["ok"], true);
    assert_eq!(report["wit"], "0.2.0");
    assert_eq!(report["supported_wit"], json!(["0.1.0", "0.2.0"]));
    assert_eq!(report["compiler"], "cranelift");
    assert_eq!(report["file_bytes"], size);
    assert_eq!(report["memory_limit_bytes"], 16 * 1024 * 1024);
    assert!(report["compile_ms"].as_f64().unwrap() > 0.0, "{report}");
    assert!(report["init_ms"].as_f64().unwrap() > 0.0, "{report}");
    // A Rust guest holds at least one 64 KiB page of linear memory after init.
    let memory = report["memory_bytes"].as_u64().unwrap();
    assert!((65536..16 * 1024 * 1024).contains(&memory), "{report}");
    assert!(
        report["imports"]
            .as_array()
            .unwrap()
            .contains(&json!("wasmon:plugin/host@0.2.0")),
        "{report}"
    );
    assert_eq!(report["grants"], json!({}));
    assert_eq!(report["warnings"], json!([]));
    // `output`, as `plugin-check` printed it: one collect(), the manifest's
    // [config] applied.
    let version = report["output"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "fixture_version")
        .unwrap();
    assert_eq!(version["labels"], json!([["version", "v9"]]));

    // The old spelling still works and prints the keys it always printed.
    let alias = wasmon(&["plugin-check", s(&wasm), "--json"]);
    assert_ok(&alias);
    let old = json_of(&alias);
    assert_eq!(old["plugin"], "counter");
    assert_eq!(old["kind"], "collector");
    assert_eq!(old["ok"], true);
    assert_eq!(sample_value(&old["output"], "fixture_collected"), 1.0);
}

#[test]
fn check_names_a_frozen_wit_version_and_shows_the_plugins_log() {
    let project = Project::new("old", guests::GUEST_WIT_V010, None);
    let output = wasmon(&["plugin", "check", s(&project.path("old.wasm"))]);
    assert_ok(&output);
    let text = stdout(&output);
    assert!(text.contains("wasmon:plugin/collector@0.1.0"), "{text}");
    assert!(
        text.contains("0.1.0 is frozen, new plugins use 0.2.0"),
        "{text}"
    );
    // Its host.log line from init, on stderr.
    assert!(
        stderr(&output).contains("wit 0.1.0 fixture ready"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn check_reports_grants_and_warns_without_a_manifest() {
    let project = Project::new(
        "probe",
        guests::COLLECTOR_HTTP_PROBE,
        Some(
            "[capabilities.http]\nallow = [\"127.0.0.1:9\"]\n\
             [[config.targets]]\nname = \"local\"\nurl = \"http://127.0.0.1:9/health\"\n",
        ),
    );
    let output = wasmon(&["plugin", "check", s(&project.path("probe.wasm")), "--json"]);
    let report = json_of(&output);
    assert_eq!(
        report["grants"]["http"]["allow"],
        json!(["127.0.0.1:9"]),
        "{report}"
    );
    assert!(
        report["capabilities"]
            .as_array()
            .unwrap()
            .contains(&json!("http")),
        "{report}"
    );

    let bare = Project::new("counter", guests::GUEST_COUNTER, None);
    let output = wasmon(&["plugin", "check", s(&bare.path("counter.wasm"))]);
    assert_ok(&output);
    assert!(
        stdout(&output).contains("warning: no manifest"),
        "{}",
        stdout(&output)
    );
}

#[test]
fn check_fails_with_a_teaching_error_at_the_stage_that_broke() {
    // A WASI command, not a plugin.
    let project = Project::new("tool", guests::GUEST_NOT_A_PLUGIN, None);
    let output = wasmon(&["plugin", "check", s(&project.path("tool.wasm"))]);
    assert_failed(&output);
    let error = stderr(&output);
    assert!(error.contains("check failed (world)"), "{error}");
    assert!(error.contains("not a wasmon plugin"), "{error}");
    assert!(error.contains("tool.wasm"), "{error}");
    assert!(stdout(&output).is_empty(), "{}", stdout(&output));

    // A corrupt file.
    let corrupt = project.write("corrupt.wasm", "\0asm this is not a component");
    let output = wasmon(&["plugin", "check", s(&corrupt), "--json"]);
    assert_failed(&output);
    let report = json_of(&output);
    assert_eq!(report["ok"], false);
    assert_eq!(report["stage"], "compile");
    assert!(
        report["error"]
            .as_str()
            .unwrap()
            .contains("not a valid WebAssembly component"),
        "{report}"
    );

    // A manifest with a bad value: the error names the file and the key.
    let bad = Project::new(
        "counter",
        guests::GUEST_COUNTER,
        Some("interval = \"soon\"\n"),
    );
    let output = wasmon(&["plugin", "check", s(&bad.path("counter.wasm"))]);
    assert_failed(&output);
    let error = stderr(&output);
    assert!(error.contains("check failed (manifest)"), "{error}");
    assert!(
        error.contains("counter.toml") && error.contains("`interval`"),
        "{error}"
    );

    // A manifest for another world.
    let other = bad.write("rule.toml", "kind = \"rule\"\n");
    let output = wasmon(&[
        "plugin",
        "check",
        s(&bad.path("counter.wasm")),
        "--manifest",
        s(&other),
    ]);
    assert_failed(&output);
    assert!(
        stderr(&output)
            .contains("kind = \"rule\" but the component implements the collector world"),
        "{}",
        stderr(&output)
    );

    // A panic in init: the guest's own message.
    let trap = Project::new("trap", guests::GUEST_TRAP_INIT, None);
    let output = wasmon(&["plugin", "check", s(&trap.path("trap.wasm"))]);
    assert_failed(&output);
    let error = stderr(&output);
    assert!(error.contains("check failed (init)"), "{error}");
    assert!(error.contains("deliberate panic in init"), "{error}");
}

#[test]
fn run_calls_a_collector_and_prints_its_samples() {
    let project = Project::new("counter", guests::GUEST_COUNTER, Some(COUNTER_MANIFEST));
    let wasm = project.path("counter.wasm");
    let output = wasmon(&["plugin", "run", s(&wasm)]);
    assert_ok(&output);
    let text = stdout(&output);
    let header = text.lines().next().unwrap();
    assert_eq!(
        header.split_whitespace().collect::<Vec<_>>(),
        ["NAME", "LABELS", "VALUE", "KIND", "HELP"],
        "{text}"
    );
    let row = text
        .lines()
        .find(|l| l.starts_with("fixture_version"))
        .unwrap();
    assert_eq!(
        row.split_whitespace().collect::<Vec<_>>(),
        ["fixture_version", "{version=\"v9\"}", "1", "gauge"],
        "{text}"
    );
    assert!(
        stderr(&output).contains("loaded counter (collector"),
        "{}",
        stderr(&output)
    );

    // State carries over between calls, as in a host.
    let output = wasmon(&["plugin", "run", s(&wasm), "--times", "3", "--json"]);
    assert_ok(&output);
    let result = json_of(&output);
    assert_eq!(result["ok"], true);
    assert_eq!(result["calls"].as_array().unwrap().len(), 3);
    assert_eq!(
        sample_value(&result["calls"][0]["output"], "fixture_collected"),
        1.0
    );
    assert_eq!(sample_value(&result["samples"], "fixture_collected"), 3.0);
    assert_eq!(result["samples"][1]["labels"], json!({"version": "v9"}));

    // `--samples` is for rules.
    let output = wasmon(&["plugin", "run", s(&wasm), "--samples", "x.json"]);
    assert_failed(&output);
    assert!(
        stderr(&output).contains("--samples does not apply"),
        "{}",
        stderr(&output)
    );
}

const RULE_MANIFEST: &str = r#"
select = ["fixture_*"]
[config]
services_down = "critical"
[[config.checks]]
name = "collected"
metric = "fixture_collected"
warn = 2
alert = 5
"#;

#[test]
fn run_evaluates_a_rule_on_a_samples_file_selected_by_its_manifest() {
    let project = Project::new("threshold", guests::RULE_THRESHOLD, Some(RULE_MANIFEST));
    let wasm = project.path("threshold.wasm");
    // A collector's `run --json` is a samples file.
    let samples = project.write(
        "samples.json",
        &json!({"samples": [
            {"name": "fixture_collected", "value": 3, "labels": {"job": "a"}},
            {"name": "fixture_collected", "value": 7, "labels": [["job", "b"]], "kind": "gauge"},
            {"name": "unselected_metric", "value": 100},
        ]})
        .to_string(),
    );
    let output = wasmon(&["plugin", "run", s(&wasm), "--samples", s(&samples)]);
    assert_ok(&output);
    let text = stdout(&output);
    let severity_of = |job: &str| {
        let row = text
            .lines()
            .find(|l| l.contains(&format!("job=\"{job}\"")))
            .unwrap_or_else(|| panic!("no alert for job {job} in:\n{text}"));
        row.split_whitespace().nth(1).unwrap().to_string()
    };
    assert_eq!(severity_of("a"), "warning");
    assert_eq!(severity_of("b"), "critical");
    let log = stderr(&output);
    // The plugin's host.log line from init, and what the selection kept.
    assert!(log.contains("1 checks"), "{log}");
    assert!(log.contains("2 of 3 samples match"), "{log}");

    let output = wasmon(&[
        "plugin",
        "run",
        s(&wasm),
        "--samples",
        s(&samples),
        "--json",
    ]);
    assert_ok(&output);
    let result = json_of(&output);
    let alerts = result["alerts"].as_array().unwrap();
    assert_eq!(alerts.len(), 2, "{result}");
    assert_eq!(result["input"]["samples"].as_array().unwrap().len(), 2);

    // A broken file is named, with the key.
    let broken = project.write("broken.json", r#"[{"name": "x", "value": "high"}]"#);
    let output = wasmon(&["plugin", "run", s(&wasm), "--samples", s(&broken)]);
    assert_failed(&output);
    let error = stderr(&output);
    assert!(
        error.contains("broken.json") && error.contains("samples[0].value"),
        "{error}"
    );
}

#[test]
fn run_evaluates_a_rule_on_a_live_hosts_samples_and_services() {
    let host = Host::start(
        HostOptions::new(BIN)
            .plugin("counter", guests::GUEST_COUNTER)
            .manifest("counter", "interval = \"100ms\"\n"),
    );
    let (status, body) = host.post_json("/heartbeat", &json!({"service": "edge"}));
    assert!(status.is_success(), "{status} {body}");
    host.wait_until(Duration::from_secs(30), || {
        let samples = host.get_json("/api/samples?name=fixture_collected");
        let value = samples["samples"][0]["value"].as_f64()?;
        (value >= 5.0).then_some(())
    });
    let project = Project::new("threshold", guests::RULE_THRESHOLD, Some(RULE_MANIFEST));
    let output = wasmon(&[
        "plugin",
        "run",
        s(&project.path("threshold.wasm")),
        "--from",
        &host.base_url(),
        "--json",
    ]);
    assert_ok(&output);
    let result = json_of(&output);
    let alerts = result["alerts"].as_array().unwrap();
    let collected = alerts.iter().find(|a| a["name"] == "collected").unwrap();
    assert_eq!(collected["severity"], "critical", "{result}");
    assert!(collected["value"].as_f64().unwrap() >= 5.0, "{result}");
    let service = alerts.iter().find(|a| a["name"] == "service_down").unwrap();
    assert_eq!(service["labels"], json!({"service": "edge"}), "{result}");
    assert_eq!(service["severity"], "ok", "{result}");
    // Only the selected series came: the host's own wasmon_* did not.
    let names: Vec<&str> = result["input"]["samples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert!(
        !names.is_empty() && names.iter().all(|n| n.starts_with("fixture_")),
        "{names:?}"
    );

    // A host that is not there: the URL and a hint.
    let output = wasmon(&[
        "plugin",
        "run",
        s(&project.path("threshold.wasm")),
        "--from",
        "127.0.0.1:9",
    ]);
    assert_failed(&output);
    let error = stderr(&output);
    assert!(
        error.contains("cannot reach http://127.0.0.1:9/api/samples"),
        "{error}"
    );
}

#[test]
fn run_delivers_the_built_in_events_to_a_sink() {
    let project = Project::new("file", guests::SINK_FILE, None);
    let export = project.path("export");
    project.write(
        "file.toml",
        &format!(
            "[capabilities.files]\ndir = {:?}\n[config]\nprefix = \"events\"\nformat = \"jsonl\"\n",
            s(&export)
        ),
    );
    let output = wasmon(&["plugin", "run", s(&project.path("file.wasm"))]);
    assert_ok(&output);
    assert_eq!(stdout(&output), "ok: delivered 3 events in 1 batch\n");
    // The sink wrote them: the events reached the guest.
    let mut types = Vec::new();
    for entry in std::fs::read_dir(&export).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        for line in text.lines() {
            let event: Value = serde_json::from_str(line).unwrap();
            types.push(event["event_type"].as_str().unwrap().to_string());
        }
    }
    assert_eq!(types, ["service.down", "alert.firing", "job.failed"]);

    // Events from a file, filtered by the manifest's `events` like a host does.
    let events = project.write(
        "events.json",
        r#"{"events": [{"event_type": "deploy.done", "service": "api"}, {"event_type": "error"}]}"#,
    );
    let recorder = Project::new(
        "rec",
        guests::GUEST_SINK_RECORDER,
        Some("events = [\"deploy.*\"]\n"),
    );
    let output = wasmon(&[
        "plugin",
        "run",
        s(&recorder.path("rec.wasm")),
        "--events",
        s(&events),
        "--json",
    ]);
    assert_ok(&output);
    let result = json_of(&output);
    assert_eq!(result["output"], json!({"delivered": 1}), "{result}");
}

#[test]
fn run_reports_a_sinks_delivery_error_and_whether_a_host_retries() {
    let project = Project::new(
        "rec",
        guests::GUEST_SINK_RECORDER,
        Some("[config]\nfail_first = 1\n"),
    );
    let wasm = project.path("rec.wasm");
    // The first call fails (retryable), the second succeeds: state carries over.
    let output = wasmon(&["plugin", "run", s(&wasm), "--times", "2"]);
    assert_failed(&output);
    let text = stdout(&output);
    assert!(
        text.contains("FAILED: delivery failed (retryable): sink-recorder: failing call 1 of 1"),
        "{text}"
    );
    assert!(text.contains("a host retries the batch"), "{text}");
    assert!(text.contains("ok: delivered 3 events"), "{text}");
    assert!(
        stderr(&output).contains("1 of 2 deliver() calls failed"),
        "{}",
        stderr(&output)
    );

    project.write(
        "rec.toml",
        "[config]\nfail_first = 1\nfail_permanent = true\n",
    );
    let output = wasmon(&["plugin", "run", s(&wasm), "--json"]);
    assert_failed(&output);
    let result = json_of(&output);
    assert_eq!(result["ok"], false);
    assert_eq!(
        result["calls"][0]["error"],
        json!({"kind": "delivery", "retryable": false, "message": "sink-recorder: failing call 1 of 1"})
    );
}
