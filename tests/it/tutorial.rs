//! The tutorials of `docs/plugins.md`, run verbatim: every fenced ```` ```sh ````
//! block marked `<!-- tutorial: LANG ... -->` is run, in the document's
//! order, by one `bash -euo pipefail` per language, against a real host
//! started by the test, with the built `wasmon` first on `PATH`. The only
//! change made to the text is the host's address: the document says
//! `http://127.0.0.1:9400`, the test's host listens on a port the kernel
//! picked. Unmarked blocks (installing a toolchain, starting a host) are the
//! reader's setup; the test stands in for them:
//!
//! - the host runs in a temporary directory with `server.admin_token` set,
//!   and the script runs in that directory (its `plugins.d` is the host's)
//!   with `WASMON_ADMIN_TOKEN` exported, as the "before you start" section
//!   leaves the reader's shell;
//! - Python and JavaScript toolchains come from the directories CI installs
//!   them in (`scripts/test.sh`): `WASMON_TEST_PY_TOOLS` (holding
//!   `componentize-py`) and `WASMON_TEST_JS_TOOLS` (holding
//!   `componentize-js`), put on `PATH`; without them the test fails, saying
//!   how to get them;
//! - Rust projects build into `WASMON_TEST_CARGO_TARGET` (default
//!   `target/authoring-rust`), one warm cache for every generated crate.
//!
//! Each block's commands are the assertions (`set -e`: a failing command, a
//! `grep` that finds nothing, fails the test, naming the block's line); the
//! test then checks the end state through the API. The wall time of each
//! block is printed (`--nocapture`), the newcomer's time to a live plugin.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use wasmon_test_support::authoring::{CARGO_TARGET_VAR, JS_TOOLS_VAR, PY_TOOLS_VAR};
use wasmon_test_support::{Host, HostOptions};

const BIN: &str = env!("CARGO_BIN_EXE_wasmon");
const DOC: &str = include_str!("../../docs/plugins.md");
const DOC_PATH: &str = "docs/plugins.md";
/// The host's address as the document writes it.
const DOC_URL: &str = "http://127.0.0.1:9400";
/// The longest one language's tutorial may take (cold builds on 2 cores).
const TUTORIAL_TIMEOUT: Duration = Duration::from_secs(900);
/// The marker before a block to run.
const MARKER: &str = "<!-- tutorial:";

/// One fenced block to run.
#[derive(Debug, Clone)]
struct Block {
    /// The line of its opening fence.
    line: usize,
    /// The tutorials it belongs to (`rust`, `python`, `js`).
    langs: Vec<String>,
    /// Its text, as written.
    text: String,
}

/// Every marked block of `doc`, in order. Panics (naming the line) on a
/// marker not followed by a ```` ```sh ```` block.
fn blocks(doc: &str) -> Vec<Block> {
    let lines: Vec<&str> = doc.lines().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let Some(langs) = lines[i]
            .trim()
            .strip_prefix(MARKER)
            .and_then(|rest| rest.strip_suffix("-->"))
        else {
            i += 1;
            continue;
        };
        let langs: Vec<String> = langs.split_whitespace().map(str::to_string).collect();
        let fence = i + 1;
        assert_eq!(
            lines.get(fence).map(|l| l.trim()),
            Some("```sh"),
            "{DOC_PATH}:{}: a tutorial marker must be followed by a ```sh block",
            i + 1
        );
        let body: Vec<&str> = lines[fence + 1..]
            .iter()
            .take_while(|l| l.trim() != "```")
            .copied()
            .collect();
        i = fence + 1 + body.len() + 1;
        out.push(Block {
            line: fence + 1,
            langs,
            text: body.join("\n"),
        });
    }
    out
}

/// The script of one language's tutorial: its blocks in order, each
/// announced with its line and the time (for the report and to name a
/// failing block), the address replaced by `base_url`.
fn script(lang: &str, base_url: &str) -> String {
    // One stream, in order, as a reader sees it in a terminal.
    let mut script = String::from("set -euo pipefail\nexec 2>&1\n");
    for block in blocks(DOC)
        .iter()
        .filter(|b| b.langs.iter().any(|l| l == lang))
    {
        script.push_str(&format!(
            "echo \"+++ {DOC_PATH}:{} $(date +%s.%N)\"\n",
            block.line
        ));
        script.push_str(&block.text.replace(DOC_URL, base_url));
        script.push('\n');
        if block.text.contains("/metrics | grep") {
            // The collector's samples are on /metrics: the newcomer's goal.
            script.push_str("echo \"+++ live $(date +%s.%N)\"\n");
        }
    }
    script.push_str("echo \"+++ end $(date +%s.%N)\"\n");
    script
}

/// The directory of a toolchain CI installs, from `var`; panics with how to
/// get it when it is missing.
fn tools(var: &str, program: &str) -> PathBuf {
    let dir = std::env::var_os(var).map(PathBuf::from).unwrap_or_else(|| {
        panic!(
            "{var} is not set: it names the directory holding `{program}` for this test. \
             Run the tests with scripts/test.sh (it installs the pinned toolchains and sets it), \
             or set it yourself"
        )
    });
    assert!(
        dir.join(program).is_file(),
        "{var}={}: no `{program}` in it (scripts/test.sh installs it)",
        dir.display()
    );
    dir
}

/// The repository's root.
fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("host/ has a parent")
        .to_path_buf()
}

/// A host as the tutorial's reader starts one: sampling on (the rule watches
/// the CPU), an admin token.
fn host(token: &str) -> Host {
    let host = Host::start(HostOptions::new(BIN).config(&format!(
        "[server]\nadmin_token = \"{token}\"\n[sampling]\ninterval = \"1s\""
    )));
    host.wait_ready(Duration::from_secs(30));
    host
}

/// The script's `+++ WHAT TIME` marks, in order. A mark may follow output
/// that did not end its line (`curl` prints JSON without a newline).
fn marks(output: &str) -> Vec<(String, f64)> {
    output
        .lines()
        .filter_map(|l| l.find("+++ ").map(|at| &l[at + 4..]))
        .filter(|l| l.starts_with(DOC_PATH) || l.starts_with("end ") || l.starts_with("live "))
        .filter_map(|l| {
            let (what, at) = l.rsplit_once(' ')?;
            Some((what.to_string(), at.parse().ok()?))
        })
        .collect()
}

/// Per-block wall times from the script's marks: (block, seconds).
fn block_times(output: &str) -> Vec<(String, f64)> {
    let blocks: Vec<(String, f64)> = marks(output)
        .into_iter()
        .filter(|(what, _)| what != "live")
        .collect();
    blocks
        .windows(2)
        .map(|w| (w[0].0.clone(), w[1].1 - w[0].1))
        .collect()
}

/// Runs one language's tutorial against a fresh host; returns the host for
/// the end-state checks.
fn run_tutorial(lang: &str, tool_dirs: &[PathBuf]) -> Host {
    let token = format!("tutorial-{}", std::process::id());
    let host = host(&token);
    let bin_dir = Path::new(BIN).parent().expect("the binary has a directory");
    let mut path = vec![bin_dir.to_path_buf()];
    path.extend(tool_dirs.iter().cloned());
    path.extend(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    ));
    let path = std::env::join_paths(path).expect("PATH entries without ':'");
    let target = std::env::var_os(CARGO_TARGET_VAR)
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join("target/authoring-rust"));
    let script_path = host.dir().join(format!("tutorial-{lang}.sh"));
    std::fs::write(&script_path, script(lang, &host.base_url())).unwrap();

    let started = Instant::now();
    let mut command = Command::new("timeout");
    // The reader's shell, not this test's: nothing of wasmon's or the host's
    // configuration, none of the variables `cargo test` sets for the outer
    // build (its own CARGO_HOME aside).
    for (key, _) in std::env::vars_os() {
        let leaks = key.to_str().is_some_and(|k| {
            (k.starts_with("WASMON_") && !k.starts_with("WASMON_TEST_"))
                || k.starts_with("MONITOR_")
                || (k.starts_with("CARGO_") && k != "CARGO_HOME")
                || matches!(k, "VIRTUAL_ENV" | "RUSTFLAGS" | "RUST_LOG")
        });
        if leaks {
            command.env_remove(key);
        }
    }
    let output = command
        .arg("--kill-after=10")
        .arg(TUTORIAL_TIMEOUT.as_secs().to_string())
        .arg("bash")
        .arg(&script_path)
        .current_dir(host.dir())
        .env("PATH", path)
        .env("WASMON_ADMIN_TOKEN", &token)
        .env("CARGO_TARGET_DIR", &target)
        .env("NO_COLOR", "1")
        .output()
        .expect("bash runs");
    let elapsed = started.elapsed();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    let times = block_times(&stdout);
    let all = marks(&stdout);
    let live = match (all.first(), all.iter().find(|(what, _)| what == "live")) {
        (Some((_, start)), Some((_, at))) => format!("{:.1} s", at - start),
        _ => "never".to_string(),
    };
    eprintln!(
        "tutorial {lang}: collector live after {live}, {:.1} s in all; per block: {}",
        elapsed.as_secs_f64(),
        times
            .iter()
            .map(|(what, s)| format!("{what} {s:.1} s"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    if !output.status.success() {
        let failed = marks(&stdout)
            .last()
            .map(|(what, _)| what.clone())
            .unwrap_or_else(|| "before the first block".to_string());
        panic!(
            "the {lang} tutorial failed ({}) in the block at {failed}\n\
             --- output (last 200 lines) ---\n{}\n--- stderr ---\n{stderr}",
            output.status,
            tail(&stdout, 200)
        );
    }
    host
}

/// The last `n` lines of `text`.
fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

fn plugin(host: &Host, name: &str) -> Value {
    host.get_json(&format!("/api/plugins/{name}"))
}

/// What every tutorial leaves behind: the collector running, its samples on
/// `/metrics`, and the rule on its second generation (the hot reload) with
/// the edited threshold, alerting.
fn check_end_state(host: &Host, collector: &str, rule: &str) {
    let view = plugin(host, collector);
    assert_eq!(view["status"], "running", "{view}");
    let (_, metrics) = host.get("/metrics");
    let label = format!("plugin=\"{collector}\"");
    assert!(
        metrics
            .lines()
            .any(|l| !l.starts_with('#') && l.contains(&label)),
        "no sample of {collector} on /metrics"
    );

    let view = plugin(host, rule);
    assert_eq!(view["status"], "running", "{view}");
    assert!(view["generation"].as_u64() >= Some(2), "{view}");
    assert_eq!(view["manifest"]["kind"], "rule", "{view}");
    // With the warning threshold at 0 the rule alerts whatever the load
    // (critical when the machine is busy: the test does not control it).
    let alerts = host.get_json(&format!("/api/alerts?rule={rule}"));
    let alerts = alerts["alerts"].as_array().cloned().unwrap_or_default();
    assert!(
        alerts
            .iter()
            .any(|a| a["severity"] == "warning" || a["severity"] == "critical"),
        "the edited rule alerts: {alerts:?}"
    );
}

#[test]
fn every_tutorial_runs_each_step_from_new_to_a_hot_reload() {
    // What the document must keep, whatever its wording: each language's
    // blocks create, build, check, run and install a collector (into a
    // directory and over HTTP), look at it live, and hot-reload an edited
    // rule. This needs no toolchain, so a broken document fails fast.
    let all = blocks(DOC);
    for lang in ["rust", "python", "js"] {
        let text: String = all
            .iter()
            .filter(|b| b.langs.iter().any(|l| l == lang))
            .map(|b| format!("{}\n", b.text))
            .collect();
        for step in [
            "wasmon plugin new collector ".to_string(),
            format!("--lang {lang}"),
            "wasmon plugin build ".to_string(),
            "wasmon plugin check ".to_string(),
            "wasmon plugin run ".to_string(),
            "--to plugins.d".to_string(),
            format!("--host {DOC_URL}"),
            format!("curl -s {DOC_URL}/metrics | grep '^hello"),
            "wasmon plugin new rule ".to_string(),
            "sed -i ".to_string(),
            "\"generation\"".to_string(),
            "/api/alerts?rule=".to_string(),
        ] {
            assert!(
                text.contains(&step),
                "the {lang} tutorial in {DOC_PATH} has no `{step}`"
            );
        }
        // Installing the rule twice (before and after the edit) is the hot reload.
        let rule = text
            .split("wasmon plugin new rule ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_default();
        assert!(
            text.matches(&format!("wasmon plugin install {rule}/"))
                .count()
                >= 2,
            "the {lang} tutorial installs its rule `{rule}` twice"
        );
    }
    // Every marked block is run by some tutorial the test knows.
    for block in &all {
        for lang in &block.langs {
            assert!(
                ["rust", "python", "js"].contains(&lang.as_str()),
                "{DOC_PATH}:{}: unknown tutorial `{lang}`",
                block.line
            );
        }
    }
}

#[test]
fn the_tutorial_installs_the_toolchains_ci_pins() {
    // The reader's install commands carry the pins CI installs
    // (scripts/authoring-tools, the same as `wasmon plugin build`'s).
    let tools = root().join("scripts/authoring-tools");
    let requirements = std::fs::read_to_string(tools.join("requirements.txt")).unwrap();
    let py = requirements
        .lines()
        .find(|l| l.starts_with("componentize-py=="))
        .expect("requirements.txt pins componentize-py");
    assert!(
        DOC.contains(&format!("pip install {py}")),
        "{DOC_PATH} does not install {py}"
    );
    let package: Value =
        serde_json::from_str(&std::fs::read_to_string(tools.join("package.json")).unwrap())
            .unwrap();
    for tool in ["@bytecodealliance/componentize-js", "@bytecodealliance/jco"] {
        let version = package["devDependencies"][tool]
            .as_str()
            .unwrap_or_else(|| panic!("package.json pins {tool}"));
        assert!(
            DOC.contains(&format!("{tool}@{version}")),
            "{DOC_PATH} does not install {tool}@{version}"
        );
    }
}

#[test]
fn the_block_extraction_sees_markers_and_fences() {
    let doc =
        "text\n<!-- tutorial: rust js -->\n```sh\necho a\necho b\n```\n\n```sh\nnot run\n```\n";
    let found = blocks(doc);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].langs, ["rust", "js"]);
    assert_eq!(found[0].text, "echo a\necho b");
    assert_eq!(found[0].line, 3);
    let output = format!("+++ {DOC_PATH}:1 10.0\nx\n{{}}+++ {DOC_PATH}:9 12.5\n+++ end 13.0\n");
    let times = block_times(&output);
    let lines: Vec<_> = times.iter().map(|(what, _)| what.as_str()).collect();
    assert_eq!(lines, [format!("{DOC_PATH}:1"), format!("{DOC_PATH}:9")]);
    assert_eq!(times.iter().map(|t| t.1).collect::<Vec<_>>(), [2.5, 0.5]);
}

#[test]
fn tutorial_rust_runs_verbatim() {
    let host = run_tutorial("rust", &[]);
    check_end_state(&host, "hello", "cpu_alert");
}

#[test]
fn tutorial_python_runs_verbatim() {
    let py = tools(PY_TOOLS_VAR, "componentize-py");
    let host = run_tutorial("python", &[py]);
    check_end_state(&host, "hello_py", "mem_alert_py");
}

#[test]
fn tutorial_javascript_runs_verbatim() {
    let js = tools(JS_TOOLS_VAR, "componentize-js");
    let host = run_tutorial("js", &[js]);
    check_end_state(&host, "hello_js", "mem_alert_js");
}
