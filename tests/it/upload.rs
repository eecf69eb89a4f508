//! Plugin upload (issue 12): `PUT /api/plugins/{name}` exists only with an
//! admin token; bad uploads (corrupt, not a plugin, too large, a bad
//! manifest, grants beyond `[plugins.upload] max_grants`, an `init` that
//! traps) answer 4xx with a detail and leave the serving plugin, its samples
//! and its files untouched; a good upload replaces a running plugin (a new
//! generation, new samples) or adds a new one; and `wasmon plugin install`
//! does both through the route (`--host`) or by copying into a plugin
//! directory (`--to`, by default `plugins.d`).

use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;
use wasmon_test_support::{Host, HostOptions, StatusCode, guests, metric_value};

const BIN: &str = env!("CARGO_BIN_EXE_wasmon");
const WAIT: Duration = Duration::from_secs(30);
const TOKEN: &str = "upload-test-token";

const V1_MANIFEST: &str = "interval = \"100ms\"\n[config]\nversion = \"v1\"\n";
const V2_MANIFEST: &str = "interval = \"100ms\"\n[config]\nversion = \"v2\"\n";

fn config() -> String {
    format!(
        "[sampling]\nenabled = false\n[server]\nadmin_token = \"{TOKEN}\"\n[plugins.upload]\nmax_bytes = \"256KiB\"\n[plugins.upload.max_grants]\nhttp = [\"api.example.com\", \"10.0.0.5:8080\"]\n"
    )
}

/// A host serving `counter` (guest-counter, build 1), collecting.
fn start() -> Host {
    let host = Host::start(
        HostOptions::new(BIN)
            .config(&config())
            .plugin("counter", guests::GUEST_COUNTER)
            .manifest("counter", V1_MANIFEST),
    );
    host.wait_ready(WAIT);
    collected_past(&host, 2.0);
    host
}

fn read(path: &str) -> Vec<u8> {
    std::fs::read(path).unwrap()
}

/// A `multipart/form-data` body: (content type, body).
fn form(parts: &[(&str, &[u8])]) -> (String, Vec<u8>) {
    let boundary = "upload-test-boundary-7d1f0c";
    let mut body = Vec::new();
    for (name, bytes) in parts {
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{name}\"\r\nContent-Type: application/octet-stream\r\n\r\n").as_bytes(),
        );
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

fn put(
    host: &Host,
    name: &str,
    token: Option<&str>,
    content_type: &str,
    body: &[u8],
) -> (StatusCode, Value) {
    let auth = token.map(|t| format!("Bearer {t}"));
    let mut headers = vec![("content-type", content_type)];
    if let Some(auth) = &auth {
        headers.push(("authorization", auth.as_str()));
    }
    let r = host.request("PUT", &format!("/api/plugins/{name}"), &headers, Some(body));
    (
        r.status,
        serde_json::from_slice(&r.body).unwrap_or(Value::Null),
    )
}

/// Uploads `wasm` (and `manifest`) as `name` with the token.
fn upload(host: &Host, name: &str, wasm: &[u8], manifest: Option<&str>) -> (StatusCode, Value) {
    match manifest {
        Some(text) => {
            let (content_type, body) = form(&[("manifest", text.as_bytes()), ("wasm", wasm)]);
            put(host, name, Some(TOKEN), &content_type, &body)
        }
        None => put(host, name, Some(TOKEN), "application/wasm", wasm),
    }
}

fn detail(body: &Value) -> String {
    body["detail"].as_str().unwrap_or_default().to_string()
}

fn plugin(host: &Host, name: &str) -> Value {
    host.get_json(&format!("/api/plugins/{name}"))
}

fn metrics(host: &Host) -> String {
    host.get("/metrics").1
}

/// Waits until `counter`'s `fixture_collected` is past `count`; returns it.
fn collected_past(host: &Host, count: f64) -> f64 {
    host.wait_until(WAIT, || {
        metric_value(
            &metrics(host),
            "fixture_collected",
            &[("plugin", "counter")],
        )
        .filter(|v| *v > count)
    })
}

/// The plugin directory's files, sorted (hidden ones included).
fn listing(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    names
}

#[test]
fn uploads_are_off_without_an_admin_token() {
    let host = Host::start(
        HostOptions::new(BIN)
            .config("[sampling]\nenabled = false\n")
            .plugin("counter", guests::GUEST_COUNTER),
    );
    host.wait_ready(WAIT);
    for token in [None, Some("anything")] {
        let (status, body) = put(
            &host,
            "counter",
            token,
            "application/wasm",
            &read(guests::GUEST_COUNTER_V2),
        );
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
        let detail = detail(&body);
        assert!(detail.contains("server.admin_token"), "{detail}");
        assert!(detail.contains("WASMON_SERVER__ADMIN_TOKEN"), "{detail}");
        assert!(detail.contains("MONITOR_ADMIN_TOKEN"), "{detail}");
    }
    assert_eq!(plugin(&host, "counter")["generation"], 1);
}

#[test]
fn bad_uploads_answer_4xx_and_leave_the_serving_plugin_untouched() {
    let host = start();
    let dir = host.plugins().path().to_path_buf();
    let before = plugin(&host, "counter");
    assert_eq!(before["generation"], 1, "{before}");
    let files = listing(&dir);
    let v2 = read(guests::GUEST_COUNTER_V2);

    // Who may upload.
    let (status, body) = put(&host, "counter", None, "application/wasm", &v2);
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    let (status, body) = put(&host, "counter", Some("wrong"), "application/wasm", &v2);
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");

    let expect = |(status, body): (StatusCode, Value), code: StatusCode, needles: &[&str]| {
        assert_eq!(status, code, "{body}");
        let detail = detail(&body);
        for needle in needles {
            assert!(detail.contains(needle), "{needle:?} not in {detail:?}");
        }
    };
    // The request itself.
    expect(
        put(&host, "bad-name", Some(TOKEN), "application/wasm", &v2),
        StatusCode::BAD_REQUEST,
        &["invalid plugin name \"bad-name\""],
    );
    expect(
        put(&host, "counter", Some(TOKEN), "text/plain", &v2),
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        &["multipart/form-data", "application/wasm"],
    );
    let (content_type, body) = form(&[("manifest", V2_MANIFEST.as_bytes())]);
    expect(
        put(&host, "counter", Some(TOKEN), &content_type, &body),
        StatusCode::BAD_REQUEST,
        &["no `wasm` part"],
    );
    // The component.
    expect(
        upload(&host, "counter", b"this is not wasm at all", None),
        StatusCode::UNPROCESSABLE_ENTITY,
        &[
            "counter.wasm does not load",
            "not a valid WebAssembly component",
        ],
    );
    expect(
        upload(&host, "counter", &read(guests::GUEST_NOT_A_PLUGIN), None),
        StatusCode::UNPROCESSABLE_ENTITY,
        &["WASI command"],
    );
    // Too large: refused while the body is read, raw or as a part.
    let huge = vec![7u8; 300 * 1024];
    expect(
        upload(&host, "counter", &huge, None),
        StatusCode::PAYLOAD_TOO_LARGE,
        &["plugins.upload.max_bytes", "256KiB"],
    );
    expect(
        upload(&host, "counter", &huge, Some(V2_MANIFEST)),
        StatusCode::PAYLOAD_TOO_LARGE,
        &["plugins.upload.max_bytes"],
    );
    // The manifest: a bad value, a value above the host's ceiling.
    expect(
        upload(&host, "counter", &v2, Some("interval = \"soon\"\n")),
        StatusCode::UNPROCESSABLE_ENTITY,
        &["invalid manifest", "interval"],
    );
    expect(
        upload(&host, "counter", &v2, Some("memory_limit = \"4GiB\"\n")),
        StatusCode::UNPROCESSABLE_ENTITY,
        &["memory_limit", "max_memory_limit"],
    );
    // Grants beyond `[plugins.upload] max_grants`.
    let forbidden = read(guests::GUEST_FORBIDDEN_HTTP);
    expect(
        upload(
            &host,
            "counter",
            &forbidden,
            Some("[capabilities.http]\nallow = [\"api.example.com\", \"169.254.169.254\"]\n"),
        ),
        StatusCode::FORBIDDEN,
        &[
            "`capabilities.http.allow[1]` = \"169.254.169.254\"",
            "[api.example.com, 10.0.0.5:8080]",
        ],
    );
    expect(
        upload(
            &host,
            "counter",
            &forbidden,
            Some("[capabilities.redis]\nurl = \"redis://127.0.0.1:6379/0\"\n"),
        ),
        StatusCode::FORBIDDEN,
        &[
            "[capabilities.redis]",
            "max_grants.capabilities` allows none",
        ],
    );
    // Valid files whose `init` traps: the reload error, the files put back.
    expect(
        upload(&host, "counter", &read(guests::GUEST_TRAP_INIT), None),
        StatusCode::UNPROCESSABLE_ENTITY,
        &["deliberate panic in init", "generation 1 keeps serving"],
    );

    // Nothing changed: the generation, the component, the files, the samples.
    let after = plugin(&host, "counter");
    assert_eq!(after["generation"], 1, "{after}");
    assert_eq!(after["sha256"], before["sha256"]);
    assert_eq!(after["status"], "running", "{after}");
    assert!(
        after["last_reload_error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("deliberate panic in init")),
        "{after}"
    );
    assert_eq!(listing(&dir), files, "no file replaced, none left behind");
    assert_eq!(
        read(&dir.join("counter.wasm").to_string_lossy()),
        read(guests::GUEST_COUNTER)
    );
    let now = metric_value(
        &metrics(&host),
        "fixture_collected",
        &[("plugin", "counter")],
    )
    .unwrap();
    collected_past(&host, now);
    let m = metrics(&host);
    assert_eq!(
        metric_value(&m, "fixture_build", &[("build", "1")]),
        Some(1.0)
    );
    assert_eq!(metric_value(&m, "fixture_build", &[("build", "2")]), None);
    assert!(
        listing(&dir).iter().all(|f| !f.starts_with('.')),
        "{:?}",
        listing(&dir)
    );
}

#[test]
fn a_good_upload_replaces_a_running_plugin_or_adds_one() {
    let host = start();
    let dir = host.plugins().path().to_path_buf();
    let count = collected_past(&host, 2.0);
    let v2 = read(guests::GUEST_COUNTER_V2);

    let (status, body) = upload(&host, "counter", &v2, Some(V2_MANIFEST));
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["created"], false);
    assert_eq!(body["outcome"]["result"], "loaded", "{body}");
    assert_eq!(body["plugin"]["name"], "counter");
    assert_eq!(body["plugin"]["generation"], 2);
    assert_eq!(body["plugin"]["kind"], "collector");
    assert_eq!(body["plugin"]["wit"], "0.2.0");
    // New samples from the new build, its state carried over.
    host.wait_until(WAIT, || {
        let m = metrics(&host);
        (metric_value(
            &m,
            "fixture_build",
            &[("plugin", "counter"), ("build", "2")],
        ) == Some(1.0)
            && metric_value(&m, "fixture_version", &[("version", "v2")]) == Some(1.0))
        .then_some(())
    });
    assert!(collected_past(&host, count) > count);
    assert_eq!(read(&dir.join("counter.wasm").to_string_lossy()), v2);
    assert_eq!(
        std::fs::read_to_string(dir.join("counter.toml")).unwrap(),
        V2_MANIFEST
    );
    assert_eq!(listing(&dir), ["counter.toml", "counter.wasm"]);

    // The watcher's events for those files found them loaded already.
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(plugin(&host, "counter")["generation"], 2);
    // The same files again: nothing to do.
    let (status, body) = upload(&host, "counter", &v2, Some(V2_MANIFEST));
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["outcome"]["result"], "unchanged", "{body}");
    assert_eq!(body["plugin"]["generation"], 2);

    // A new plugin, component alone (the host's defaults apply).
    let (status, body) = upload(&host, "fresh", &read(guests::GUEST_COUNTER), None);
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["created"], true);
    assert_eq!(body["plugin"]["generation"], 1);
    assert_eq!(plugin(&host, "fresh")["status"], "running");
    // Grants within max_grants pass.
    let (status, body) = upload(
        &host,
        "probe",
        &read(guests::GUEST_FORBIDDEN_HTTP),
        Some("[capabilities.http]\nallow = [\"api.example.com:443\", \"10.0.0.5:8080\"]\n"),
    );
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(
        listing(&dir),
        [
            "counter.toml",
            "counter.wasm",
            "fresh.wasm",
            "probe.toml",
            "probe.wasm"
        ]
    );
}

fn install(cwd: &Path, args: &[&str]) -> Output {
    Command::new(BIN)
        .current_dir(cwd)
        .env_remove("WASMON_ADMIN_TOKEN")
        .env_remove("WASMON_CONFIG")
        .args(["plugin", "install"])
        .args(args)
        .output()
        .unwrap()
}

fn text(output: &Output) -> String {
    format!(
        "status {}\nstdout: {}\nstderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn plugin_install_uploads_to_a_host_or_copies_into_its_directory() {
    let host = start();
    let build = host.dir().join("build");
    std::fs::create_dir_all(&build).unwrap();
    std::fs::copy(guests::GUEST_COUNTER_V2, build.join("counter.wasm")).unwrap();
    std::fs::write(build.join("counter.toml"), V2_MANIFEST).unwrap();
    std::fs::copy(guests::GUEST_TRAP_INIT, build.join("trap.wasm")).unwrap();
    std::fs::copy(guests::GUEST_COUNTER, build.join("copied.wasm")).unwrap();
    std::fs::write(build.join("junk.wasm"), b"not a component").unwrap();
    let url = host.base_url();
    let file = |name: &str| build.join(name).to_string_lossy().into_owned();

    // --host: the token is needed, and said so.
    let out = install(host.dir(), &[&file("counter.wasm"), "--host", &url]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("401"), "{}", text(&out));
    assert!(text(&out).contains("WASMON_ADMIN_TOKEN"), "{}", text(&out));
    let out = install(
        host.dir(),
        &[&file("counter.wasm"), "--host", &url, "--token", "wrong"],
    );
    assert!(!out.status.success(), "{}", text(&out));
    // The sibling counter.toml goes with it; the new generation is printed.
    let out = install(
        host.dir(),
        &[&file("counter.wasm"), "--host", &url, "--token", TOKEN],
    );
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("installed counter on"),
        "{}",
        text(&out)
    );
    assert!(
        text(&out).contains("generation 2 (collector, wasmon:plugin@0.2.0), running"),
        "{}",
        text(&out)
    );
    host.wait_until(WAIT, || {
        metric_value(&metrics(&host), "fixture_version", &[("version", "v2")]).filter(|v| *v == 1.0)
    });
    // A reload error is printed and the exit status says it failed.
    let out = Command::new(BIN)
        .current_dir(host.dir())
        .env("WASMON_ADMIN_TOKEN", TOKEN)
        .args([
            "plugin",
            "install",
            &file("trap.wasm"),
            "--name",
            "counter",
            "--host",
            &url,
        ])
        .output()
        .unwrap();
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("422"), "{}", text(&out));
    assert!(
        text(&out).contains("deliberate panic in init"),
        "{}",
        text(&out)
    );
    assert_eq!(plugin(&host, "counter")["generation"], 2);

    // --to (by default ./plugins.d): checked here, then copied; the host loads it.
    let out = install(host.dir(), &[&file("copied.wasm")]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("installed copied (collector, wasmon:plugin@0.2.0)"),
        "{}",
        text(&out)
    );
    let loaded = host.wait_until(WAIT, || {
        let (status, body) = host.get("/api/plugins/copied");
        let view: Value = serde_json::from_str(&body).ok()?;
        (status == StatusCode::OK && view["generation"] == 1).then_some(view)
    });
    assert_eq!(loaded["kind"], "collector");
    // A component that does not load is refused here; nothing is copied.
    let dir = host.plugins().path().to_path_buf();
    let files = listing(&dir);
    let out = install(
        host.dir(),
        &[&file("junk.wasm"), "--to", &dir.to_string_lossy()],
    );
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("junk.wasm does not load"),
        "{}",
        text(&out)
    );
    assert!(
        text(&out).contains("not a valid WebAssembly component"),
        "{}",
        text(&out)
    );
    assert_eq!(listing(&dir), files);
    // A name that is not a plugin name.
    std::fs::copy(guests::GUEST_COUNTER, build.join("my-probe.wasm")).unwrap();
    let out = install(host.dir(), &[&file("my-probe.wasm")]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("pass --name"), "{}", text(&out));
}
