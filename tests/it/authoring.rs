//! Plugin authoring end to end (issue 12's acceptance): every kind ×
//! language is generated with `wasmon plugin new`, built with `plugin build`
//! (the pinned toolchains `scripts/test.sh` installs), checked with `plugin
//! check`, called once with `plugin run`, uploaded into one running host with
//! `plugin install --host` (`PUT /api/plugins/{name}`, admin token set), and
//! seen live: `/api/plugins/NAME` running with a generation, and its samples
//! in `/metrics` (a collector's own metrics, a rule's evaluations, a sink's
//! delivered events after an event is posted). One project is also installed
//! with `--to DIR` into a second host's watched plugin directory.
//!
//! Wall time is kept low: the nine projects build at most two at a time,
//! generated Rust plugins share `WASMON_TEST_CARGO_TARGET`, one host takes
//! every upload. Each step's time is printed (`--nocapture`).

use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use wasmon_test_support::authoring::{
    CliOutput, Job, KINDS, LANGS, PluginCli, Toolchains, has_series, parallel, sample_names,
    work_dir,
};
use wasmon_test_support::{Host, HostOptions, StatusCode, metric_value};

const BIN: &str = env!("CARGO_BIN_EXE_wasmon");
const TOKEN: &str = "authoring-test-admin-token";
/// Loading a Python or JS component (Winch) takes seconds, a rule's first
/// evaluation may wait for its interval.
const LIVE: Duration = Duration::from_secs(90);
/// At most this many projects build at once (a 2-core CI machine).
const BUILD_WIDTH: usize = 2;

/// The host every upload goes to: admin token set (the upload route exists
/// only then), uploads as large as a Python component, system samplers on so
/// a rule has samples to read.
fn upload_host() -> Host {
    let host = Host::start(HostOptions::new(BIN).config(&format!(
        "[server]\nadmin_token = \"{TOKEN}\"\n[sampling]\ninterval = \"1s\"\n[plugins.upload]\nmax_bytes = \"64MiB\"\ntimeout = \"120s\"\n"
    )));
    host.wait_ready(LIVE);
    host
}

/// One generated project.
struct Project {
    lang: &'static str,
    kind: &'static str,
    name: String,
    dir: PathBuf,
}

impl Project {
    fn wasm(&self) -> PathBuf {
        self.dir.join(format!("{}.wasm", self.name))
    }

    fn label(&self) -> String {
        format!("{} {}", self.lang, self.kind)
    }
}

/// What one project's build, check and run took and printed.
struct Built {
    build: Duration,
    check: Duration,
    run: CliOutput,
    size: u64,
}

fn path_arg(path: &Path) -> String {
    path.to_string_lossy().into_owned()
}

/// `plugin build DIR`, `plugin check DIR/NAME.wasm` (human and `--json`),
/// `plugin run DIR/NAME.wasm --json` (a rule reads the host's live samples).
fn build_check_run(cli: &PluginCli, project: &Project, host_url: &str) -> Built {
    let cwd = project.dir.parent().expect("a project dir has a parent");
    let dir = path_arg(&project.dir);
    let wasm = path_arg(&project.wasm());
    let build = cli.ok(cwd, &["plugin", "build", &dir]);
    let size = std::fs::metadata(project.wasm())
        .unwrap_or_else(|e| {
            panic!(
                "`plugin build` of the {} project wrote no {wasm} ({e}):\n{}",
                project.label(),
                build.describe()
            )
        })
        .len();
    let check = cli.ok(cwd, &["plugin", "check", &wasm]);
    let check_json = cli.ok(cwd, &["plugin", "check", &wasm, "--json"]).json();
    assert_eq!(check_json["ok"], true, "{}: {check_json}", project.label());
    assert_eq!(
        check_json["kind"],
        project.kind,
        "{}: {check_json}",
        project.label()
    );
    let mut run_args = vec!["plugin", "run", &wasm, "--json"];
    if project.kind == "rule" {
        run_args.extend(["--from", host_url]);
    }
    let run = cli.ok(cwd, &run_args);
    Built {
        build: build.took,
        check: check.took,
        run,
        size,
    }
}

/// Waits until `/api/plugins/NAME` says running; that view.
fn wait_running(host: &Host, name: &str) -> Value {
    let path = format!("/api/plugins/{name}");
    host.wait_until(LIVE, || {
        let (status, body) = host.get(&path);
        let view: Value = serde_json::from_str(&body).ok()?;
        (status == StatusCode::OK && view["status"] == "running").then_some(view)
    })
}

/// Waits until `/metrics` shows what `project` produces, once it is live.
fn wait_samples(host: &Host, project: &Project, run: &CliOutput) -> String {
    let name = project.name.as_str();
    match project.kind {
        "collector" => {
            let names = sample_names(&run.json());
            assert!(
                !names.is_empty(),
                "`plugin run` of the {} printed no samples:\n{}",
                project.label(),
                run.describe()
            );
            host.wait_until(LIVE, || {
                let metrics = host.get("/metrics").1;
                names
                    .iter()
                    .all(|n| has_series(&metrics, n, None))
                    .then(|| names.join(", "))
            })
        }
        "rule" => host.wait_until(LIVE, || {
            let metrics = host.get("/metrics").1;
            metric_value(
                &metrics,
                "wasmon_rule_evaluations_total",
                &[("rule", name), ("result", "ok")],
            )
            .filter(|n| *n >= 1.0)
            .map(|n| format!("wasmon_rule_evaluations_total{{rule=\"{name}\",result=\"ok\"}} {n}"))
        }),
        _ => host.wait_until(LIVE, || {
            let metrics = host.get("/metrics").1;
            metric_value(
                &metrics,
                "wasmon_sink_delivered_events_total",
                &[("sink", name)],
            )
            .filter(|n| *n >= 1.0)
            .map(|n| format!("wasmon_sink_delivered_events_total{{sink=\"{name}\"}} {n}"))
        }),
    }
}

#[test]
fn every_kind_and_language_goes_from_new_to_live_in_a_running_host() {
    let started = Instant::now();
    let tools = Toolchains::from_env();
    let cli = PluginCli::new(BIN, tools);
    let work = work_dir("wasmon-authoring-");
    let host = upload_host();

    let mut projects = Vec::new();
    for kind in KINDS {
        for lang in LANGS {
            let name = format!("a12_{lang}_{kind}");
            let dir = work.path().join(&name);
            let args = [
                "plugin",
                "new",
                kind,
                &name,
                "--lang",
                lang,
                "--dir",
                &path_arg(&dir),
            ];
            let out = cli.ok(work.path(), &args);
            for file in [format!("{name}.toml"), "README.md".to_string()] {
                assert!(
                    dir.join(&file).is_file(),
                    "`plugin new` wrote no {file}:\n{}",
                    out.describe()
                );
            }
            projects.push(Project {
                lang,
                kind,
                name,
                dir,
            });
        }
    }
    let generated = started.elapsed();

    let url = host.base_url();
    let jobs: Vec<Job<'_, Built>> = projects
        .iter()
        .map(|p| {
            let (cli, url) = (&cli, url.as_str());
            Box::new(move || build_check_run(cli, p, url)) as Job<'_, Built>
        })
        .collect();
    let built = parallel(BUILD_WIDTH, jobs);
    let built_at = started.elapsed();

    let mut live = Vec::new();
    for project in &projects {
        let wasm = path_arg(&project.wasm());
        let install = cli.ok(
            work.path(),
            &["plugin", "install", &wasm, "--host", &url, "--token", TOKEN],
        );
        let view = wait_running(&host, &project.name);
        assert!(
            view["generation"].as_u64().is_some_and(|g| g >= 1),
            "{}: {view}",
            project.label()
        );
        assert_eq!(view["kind"], project.kind, "{}: {view}", project.label());
        live.push((install.took, view["generation"].clone()));
    }
    // Sinks deliver what is posted after they are live.
    let (status, body) = host.post_json(
        "/v1/events/batch",
        &json!([{"service": "authoring", "event_type": "task.done", "detail": "issue 12"}]),
    );
    assert_eq!(status, StatusCode::OK, "{body}");
    let mut seen = Vec::new();
    for (project, built) in projects.iter().zip(&built) {
        seen.push(wait_samples(&host, project, &built.run));
    }
    let list = host.get_json("/api/plugins");
    for project in &projects {
        let listed = list["plugins"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["name"] == project.name.as_str());
        assert!(
            listed.is_some_and(|p| p["status"] == "running" && p["generation"].as_u64() >= Some(1)),
            "{} is not running in /api/plugins: {list}",
            project.label()
        );
    }
    let live_at = started.elapsed();

    // `--to DIR`: validated locally, copied atomically into a watched directory.
    let watched = Host::start(HostOptions::new(BIN).config("[sampling]\nenabled = false\n"));
    watched.wait_ready(LIVE);
    let copied = &projects[0];
    cli.ok(
        work.path(),
        &[
            "plugin",
            "install",
            &path_arg(&copied.wasm()),
            "--to",
            &path_arg(watched.plugins().path()),
        ],
    );
    assert!(watched.plugins().manifest_path(&copied.name).is_file());
    wait_running(&watched, &copied.name);
    wait_samples(&watched, copied, &built[0].run);

    println!(
        "{:<18} {:>9} {:>8} {:>8} {:>9}  generation, live samples",
        "project", "build s", "check s", "size MB", "install s"
    );
    for ((project, built), ((install, generation), seen)) in
        projects.iter().zip(&built).zip(live.iter().zip(&seen))
    {
        println!(
            "{:<18} {:>9.1} {:>8.1} {:>8.1} {:>9.1}  {generation}, {seen}",
            project.label(),
            built.build.as_secs_f64(),
            built.check.as_secs_f64(),
            built.size as f64 / 1e6,
            install.as_secs_f64(),
        );
    }
    println!(
        "authoring: 9 projects generated in {:.1} s, built+checked+run by {:.1} s, all live by {:.1} s, total {:.1} s",
        generated.as_secs_f64(),
        built_at.as_secs_f64(),
        live_at.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
}
