//! Issue 10, items 3 and 4: `[capabilities.files]` (a WASI preopened
//! directory, `/data` in the guest) and the `sink-file` plugin.
//!
//! - A hostile guest (`guest-files-escape`) tries `..`, absolute host paths,
//!   symlinks planted by the test and `/etc/passwd`: only `/data` works and
//!   nothing outside changes.
//! - `max_bytes`: the call after which the directory is over the cap is a
//!   `capability` fault, and the directory stops growing.
//! - `sink-file` writes every event (id included) as JSON lines or CSV,
//!   rotates by size and age, and keeps at most `max_files`.

use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;
use wasmon_test_support::{Host, HostOptions, guests};

const BIN: &str = env!("CARGO_BIN_EXE_wasmon");
const WAIT: Duration = Duration::from_secs(30);

/// A fresh directory under the system's temporary one, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> TempDir {
        let path = std::env::temp_dir().join(format!("wasmon-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn start(plugins: &[(&str, &Path, String)]) -> Host {
    let mut options = HostOptions::new(BIN).config(
        "[sampling]\nenabled = false\n[plugins.defaults]\nbackoff_initial = \"100ms\"\nbackoff_max = \"300ms\"\n",
    );
    for (name, wasm, manifest) in plugins {
        options = options.plugin(name, wasm).manifest(name, manifest);
    }
    let host = Host::start(options);
    host.wait_ready(WAIT);
    host
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn a_plugin_reaches_nothing_outside_its_files_directory() {
    let base = TempDir::new("files-escape");
    let data = base.0.join("data");
    std::fs::create_dir(&data).unwrap();
    let secret = base.0.join("secret.txt");
    std::fs::write(&secret, "secret").unwrap();
    // Symlinks planted inside the directory, pointing outside it.
    std::os::unix::fs::symlink(&base.0, data.join("link")).unwrap();
    std::os::unix::fs::symlink(&secret, data.join("linkfile")).unwrap();
    let outside = base.0.display();
    let cases = [
        ("inside", "/data/inside.txt".to_string()),
        ("dotdot", "/data/../escaped-dotdot.txt".to_string()),
        ("dotdot_secret", "/data/../secret.txt".to_string()),
        (
            "deep_dotdot",
            "/data/a/../../../../tmp/escaped.txt".to_string(),
        ),
        ("absolute", format!("{outside}/escaped-absolute.txt")),
        ("absolute_secret", format!("{outside}/secret.txt")),
        ("symlink_dir", "/data/link/escaped-link.txt".to_string()),
        ("symlink_secret", "/data/link/secret.txt".to_string()),
        ("symlink_file", "/data/linkfile".to_string()),
        ("etc_passwd", "/etc/passwd".to_string()),
        ("root", "/escaped-root.txt".to_string()),
    ];
    let mut manifest = format!(
        "interval = \"200ms\"\n[capabilities.files]\ndir = {:?}\n[config.cases]\n",
        data.display().to_string()
    );
    for (case, path) in &cases {
        manifest.push_str(&format!("{case} = {path:?}\n"));
    }
    let host = start(&[("escape", Path::new(guests::GUEST_FILES_ESCAPE), manifest)]);

    host.wait_until(WAIT, || {
        (host.metric("files_read", &[("case", "inside")]) == Some(1.0)).then_some(())
    });
    assert_eq!(host.metric("files_write", &[("case", "inside")]), Some(1.0));
    for (case, path) in &cases[1..] {
        assert_eq!(
            host.metric("files_write", &[("case", case)]),
            Some(0.0),
            "{case}: writing {path} worked"
        );
        assert_eq!(
            host.metric("files_read", &[("case", case)]),
            Some(0.0),
            "{case}: reading {path} worked"
        );
    }
    // Nothing outside changed; inside, the plugin's own file.
    assert_eq!(std::fs::read_to_string(&secret).unwrap(), "secret");
    assert_eq!(names(&base.0), ["data", "secret.txt"]);
    assert!(!Path::new("/escaped-root.txt").exists());
    assert!(!Path::new("/tmp/escaped.txt").exists());
    assert_eq!(
        std::fs::read_to_string(data.join("inside.txt")).unwrap(),
        "written by guest-files-escape\n"
    );
    assert_eq!(names(&data), ["inside.txt", "link", "linkfile"]);
    // The grant is shown, and the directory's bytes are measured.
    let view = host.get_json("/api/plugins/escape");
    assert_eq!(view["status"], "running", "{view}");
    let held = host
        .metric("wasmon_plugin_files_bytes", &[("plugin", "escape")])
        .unwrap();
    assert!(held > 0.0, "{held}");
}

#[test]
fn a_directory_over_max_bytes_faults_the_call_and_stops_growing() {
    let base = TempDir::new("files-quota");
    let manifest = format!(
        "interval = \"100ms\"\nmax_restarts = 1000\n[capabilities.files]\ndir = {:?}\nmax_bytes = \"10KiB\"\n[config]\nfill_bytes = 4000\n",
        base.0.display().to_string()
    );
    let host = start(&[("fill", Path::new(guests::GUEST_FILES_ESCAPE), manifest)]);
    let view = host.wait_until(WAIT, || {
        let view = host.get_json("/api/plugins/fill");
        (view["last_error"]["kind"] == "capability").then_some(view)
    });
    let message = view["last_error"]["message"].as_str().unwrap();
    assert!(
        message.contains("files: /data holds 12000 bytes, over max_bytes 10KiB"),
        "{message}"
    );
    // Restarted instances see the directory read-only: it stays at the
    // size of the call that crossed the cap.
    host.wait_until(WAIT, || {
        let faults = host.get_json("/api/plugins/fill")["faults"].as_u64()?;
        (faults >= 3).then_some(())
    });
    let size = std::fs::metadata(base.0.join("fill.bin")).unwrap().len();
    assert_eq!(size, 12_000);
    assert_eq!(
        host.metric("wasmon_plugin_files_bytes", &[("plugin", "fill")]),
        Some(12_000.0)
    );
    let denied = host
        .metric(
            "wasmon_plugin_capability_denied_total",
            &[("plugin", "fill"), ("capability", "files")],
        )
        .unwrap();
    assert!(denied >= 3.0, "{denied}");
    host.wait_for_log("the directory is read-only to this instance", WAIT);
}

/// Posts `count` events of `event_type`; returns their ids.
fn post(host: &Host, event_type: &str, from: u32, count: u32) -> Vec<String> {
    let events: Vec<Value> = (from..from + count)
        .map(|n| {
            json!({"service": "exporter", "event_type": event_type, "component": "db-1",
                   "detail": format!("n={n}, said \"hi\"\nsecond line")})
        })
        .collect();
    let (status, body) = host.post_json("/v1/events/batch", &json!(events));
    assert!(status.is_success(), "{status}: {body}");
    let body: Value = serde_json::from_str(&body).unwrap();
    body["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|id| id.as_str().unwrap().to_string())
        .collect()
}

fn sink_manifest(dir: &Path, config: &str) -> String {
    format!(
        "events = [\"export.*\"]\nbatch_size = 20\n[capabilities.files]\ndir = {:?}\n[config]\n{config}",
        dir.display().to_string()
    )
}

/// Every JSON line of every file in `dir`, oldest file first.
fn json_lines(dir: &Path) -> Vec<Value> {
    names(dir)
        .iter()
        .flat_map(|name| {
            std::fs::read_to_string(dir.join(name))
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str::<Value>(l).unwrap())
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn sink_file_writes_json_lines_rotates_by_size_and_keeps_max_files() {
    let base = TempDir::new("sink-file-jsonl");
    let dir = base.0.join("export");
    let host = start(&[(
        "export",
        Path::new(guests::SINK_FILE),
        sink_manifest(
            &base.0,
            "dir = \"/data/export\"\nmax_file_bytes = \"4KiB\"\nmax_files = 3\n",
        ),
    )]);
    // A small batch first: every field is there, the id included.
    let first = post(&host, "export.done", 0, 3);
    let lines = host.wait_until(WAIT, || {
        let lines = std::fs::read_dir(&dir).ok().map(|_| json_lines(&dir))?;
        (lines.len() == 3).then_some(lines)
    });
    for (line, id) in lines.iter().zip(&first) {
        assert_eq!(line["id"], id.as_str());
        assert_eq!(line["event_type"], "export.done");
        assert_eq!(line["service"], "exporter");
        assert_eq!(line["component"], "db-1");
        assert!(line["detail"].as_str().unwrap().starts_with("n="), "{line}");
        assert!(line["time_ms"].as_u64().unwrap() > 0);
        assert_eq!(line["source"], "ingest");
    }
    // Then enough for many files: only the newest 3 stay, none past 4 KiB.
    let mut ids = first;
    for round in 0..10 {
        ids.extend(post(&host, "export.done", 3 + round * 20, 20));
    }
    post(&host, "other.kind", 0, 5);
    let last = ids.last().unwrap().clone();
    let lines = host.wait_until(WAIT, || {
        let lines = json_lines(&dir);
        (lines.last().map(|l| l["id"] == last.as_str()) == Some(true)).then_some(lines)
    });
    let files = names(&dir);
    assert_eq!(files.len(), 3, "{files:?}");
    for name in &files {
        assert!(
            name.starts_with("events-") && name.ends_with(".jsonl"),
            "{name}"
        );
        let size = std::fs::metadata(dir.join(name)).unwrap().len();
        assert!(size <= 4096, "{name}: {size} bytes");
    }
    // What is kept is the newest events, in order, with no gap.
    let kept: Vec<&str> = lines.iter().map(|l| l["id"].as_str().unwrap()).collect();
    let start = ids.iter().position(|id| id == kept[0]).unwrap();
    assert!(start > 0, "nothing was rotated away");
    assert_eq!(
        kept,
        ids[start..].iter().map(String::as_str).collect::<Vec<_>>()
    );
    assert!(lines.iter().all(|l| l["event_type"] == "export.done"));
}

/// Parses RFC 4180 CSV text (quoted cells, doubled quotes, line breaks in quotes).
fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut cell = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                cell.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => cell.push(c),
            (false, '"') => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut cell)),
            (false, '\r') => {}
            (false, '\n') => {
                row.push(std::mem::take(&mut cell));
                rows.push(std::mem::take(&mut row));
            }
            (false, c) => cell.push(c),
        }
    }
    rows
}

#[test]
fn sink_file_writes_csv_and_rotates_by_age() {
    let base = TempDir::new("sink-file-csv");
    let host = start(&[(
        "csv",
        Path::new(guests::SINK_FILE),
        sink_manifest(
            &base.0,
            "format = \"csv\"\nprefix = \"audit\"\nrotate_every = \"1s\"\nmax_files = 50\n",
        ),
    )]);
    let mut ids = post(&host, "export.csv", 0, 2);
    host.wait_until(WAIT, || (names(&base.0).len() == 1).then_some(()));
    // Later deliveries go to a new file once the first is a second old.
    let started = std::time::Instant::now();
    while names(&base.0).len() < 2 {
        assert!(started.elapsed() < WAIT, "no age rotation");
        ids.extend(post(&host, "export.csv", ids.len() as u32, 1));
        std::thread::sleep(Duration::from_millis(200));
    }
    let want: BTreeSet<String> = ids.iter().cloned().collect();
    let rows = host.wait_until(WAIT, || {
        let mut rows = Vec::new();
        for name in names(&base.0) {
            assert!(
                name.starts_with("audit-") && name.ends_with(".csv"),
                "{name}"
            );
            let text = std::fs::read_to_string(base.0.join(&name)).unwrap();
            let mut parsed = parse_csv(&text);
            assert_eq!(
                parsed.remove(0),
                [
                    "id",
                    "time",
                    "time_ms",
                    "type",
                    "source",
                    "severity",
                    "service",
                    "component",
                    "detail",
                    "attributes",
                    "alert"
                ],
                "{name}"
            );
            rows.extend(parsed);
        }
        let got: BTreeSet<String> = rows.iter().map(|r| r[0].clone()).collect();
        (got == want).then_some(rows)
    });
    for row in &rows {
        assert_eq!(row.len(), 11, "{row:?}");
        assert_eq!(row[3], "export.csv");
        assert_eq!(row[6], "exporter");
        assert_eq!(row[7], "db-1");
        assert!(row[8].contains("said \"hi\"\nsecond line"), "{row:?}");
        assert!(row[1].ends_with('Z') && row[2].parse::<u64>().is_ok());
    }
}

#[test]
fn the_example_manifest_exports_json_lines() {
    let base = TempDir::new("sink-file-example");
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/plugins.d/file.toml");
    let example = std::fs::read_to_string(&path).unwrap().replace(
        "dir = \"data/export\"",
        &format!("dir = {:?}", base.0.display().to_string()),
    );
    assert!(example.contains(&base.0.display().to_string()));
    let host = start(&[("file", Path::new(guests::SINK_FILE), example)]);
    let ids = post(&host, "export.example", 0, 2);
    let lines = host.wait_until(WAIT, || {
        let lines = json_lines(&base.0);
        (lines.len() == 2).then_some(lines)
    });
    let got: Vec<&str> = lines.iter().map(|l| l["id"].as_str().unwrap()).collect();
    assert_eq!(got, ids);
}
