//! Plugin authoring in tests and benches (issue 12): the pinned Python and
//! JavaScript toolchains CI installs, the shared target dir of generated Rust
//! plugins, and `wasmon plugin ...` run as a child with a time limit.
//!
//! The toolchains come from `scripts/lib.sh` `ensure_authoring_tools` (run by
//! `scripts/test.sh` and `scripts/bench.sh`), which exports:
//!
//! - `WASMON_TEST_PY_TOOLS`: the directory holding `componentize-py`;
//! - `WASMON_TEST_JS_TOOLS`: the directory holding `componentize-js`;
//! - `WASMON_TEST_CARGO_TARGET`: the `CARGO_TARGET_DIR` generated Rust plugins
//!   share, so the SDK and its dependencies build once.
//!
//! [`Toolchains::from_env`] panics when one is missing: a test that needs the
//! toolchains fails with the command that installs them, it never skips.

use std::ffi::{OsStr, OsString};
use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The languages `wasmon plugin new --lang` knows.
pub const LANGS: [&str; 3] = ["rust", "python", "js"];
/// The kinds (worlds) `wasmon plugin new` knows.
pub const KINDS: [&str; 3] = ["collector", "rule", "sink"];

/// Where `componentize-py` is (a directory).
pub const PY_TOOLS_VAR: &str = "WASMON_TEST_PY_TOOLS";
/// Where `componentize-js` is (a directory).
pub const JS_TOOLS_VAR: &str = "WASMON_TEST_JS_TOOLS";
/// The target dir generated Rust plugins share.
pub const CARGO_TARGET_VAR: &str = "WASMON_TEST_CARGO_TARGET";

/// How to get the toolchains when a variable is missing.
const INSTALL_HINT: &str = "run the tests with scripts/test.sh, or first: \
     `source scripts/lib.sh && ensure_authoring_tools` (installs componentize-py, \
     componentize-js and jco, pinned, under target/authoring-tools and exports \
     WASMON_TEST_PY_TOOLS, WASMON_TEST_JS_TOOLS and WASMON_TEST_CARGO_TARGET)";

/// The toolchains a test generates and builds plugins with.
#[derive(Debug, Clone)]
pub struct Toolchains {
    /// The directory holding `componentize-py`.
    pub py: PathBuf,
    /// The directory holding `componentize-js` (and `jco`).
    pub js: PathBuf,
    /// `CARGO_TARGET_DIR` for generated Rust plugins.
    pub cargo_target: PathBuf,
}

impl Toolchains {
    /// Reads the three variables; panics, naming the variable, what it lacks
    /// and how to install it, when one is unset or holds no tool.
    #[track_caller]
    pub fn from_env() -> Toolchains {
        Toolchains::from_vars(|var| std::env::var_os(var))
    }

    /// [`Toolchains::from_env`] with the variables read by `var`.
    #[track_caller]
    pub fn from_vars(var: impl Fn(&str) -> Option<OsString>) -> Toolchains {
        let dir = |name: &str, tool: Option<&str>| -> PathBuf {
            let value = var(name)
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| panic!("{name} is not set: {INSTALL_HINT}"));
            let path = PathBuf::from(value);
            if let Some(tool) = tool {
                let exe = path.join(tool);
                assert!(
                    exe.is_file(),
                    "{name}={} holds no {tool}: {INSTALL_HINT}",
                    path.display()
                );
            }
            path
        };
        let tools = Toolchains {
            py: dir(PY_TOOLS_VAR, Some("componentize-py")),
            js: dir(JS_TOOLS_VAR, Some("componentize-js")),
            cargo_target: dir(CARGO_TARGET_VAR, None),
        };
        std::fs::create_dir_all(&tools.cargo_target).unwrap_or_else(|e| {
            panic!(
                "cannot create {CARGO_TARGET_VAR}={}: {e}",
                tools.cargo_target.display()
            )
        });
        tools
    }

    /// `PATH` with the Python and JS tool directories first.
    pub fn path(&self) -> OsString {
        let rest = std::env::var_os("PATH").unwrap_or_default();
        let dirs = [self.py.clone(), self.js.clone()]
            .into_iter()
            .chain(std::env::split_paths(&rest));
        std::env::join_paths(dirs).expect("tool directories hold no ':'")
    }
}

/// What a finished `wasmon plugin ...` printed, and how long it took.
#[derive(Debug, Clone)]
pub struct CliOutput {
    /// The command line, for messages.
    pub command: String,
    /// Its exit status (`None`: killed after its time limit).
    pub status: Option<ExitStatus>,
    /// Its standard output.
    pub stdout: String,
    /// Its standard error.
    pub stderr: String,
    /// Its wall time.
    pub took: Duration,
}

impl CliOutput {
    /// Whether it exited 0.
    pub fn success(&self) -> bool {
        self.status.is_some_and(|s| s.success())
    }

    /// Its standard output parsed as JSON; panics with the output when it is not.
    #[track_caller]
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(self.stdout.trim()).unwrap_or_else(|e| {
            panic!(
                "`{}` printed no JSON ({e}):\n{}",
                self.command,
                self.describe()
            )
        })
    }

    /// The command, its status and everything it printed.
    pub fn describe(&self) -> String {
        let status = self
            .status
            .map_or("killed after its time limit".to_string(), |s| s.to_string());
        format!(
            "$ {}\n({status}, {:.1} s)\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.command,
            self.took.as_secs_f64(),
            self.stdout,
            self.stderr
        )
    }
}

/// The `wasmon` binary run as the plugin author's CLI: with the toolchains on
/// `PATH`, generated Rust plugins building into the shared target dir, and none
/// of the caller's `WASMON_*`/`MONITOR_*` settings, `VIRTUAL_ENV` or cargo
/// target overrides leaking in.
#[derive(Debug, Clone)]
pub struct PluginCli {
    binary: PathBuf,
    tools: Toolchains,
    timeout: Duration,
}

impl PluginCli {
    /// The CLI of `binary` (`env!("CARGO_BIN_EXE_wasmon")`), each command
    /// limited to 10 minutes.
    pub fn new(binary: impl Into<PathBuf>, tools: Toolchains) -> PluginCli {
        PluginCli {
            binary: binary.into(),
            tools,
            timeout: Duration::from_secs(600),
        }
    }

    /// The same CLI with another time limit per command.
    pub fn timeout(mut self, timeout: Duration) -> PluginCli {
        self.timeout = timeout;
        self
    }

    /// The toolchains it runs with.
    pub fn tools(&self) -> &Toolchains {
        &self.tools
    }

    /// `wasmon ARGS...` in `cwd`, not yet started, its environment set.
    pub fn command<S: AsRef<OsStr>>(&self, cwd: &Path, args: &[S]) -> Command {
        let mut cmd = Command::new(&self.binary);
        cmd.args(args).current_dir(cwd);
        for (key, _) in std::env::vars_os() {
            let leaks = key.to_str().is_some_and(|k| {
                (k.starts_with("WASMON_") && !k.starts_with("WASMON_TEST_"))
                    || k.starts_with("MONITOR_")
                    || matches!(
                        k,
                        "VIRTUAL_ENV"
                            | "CARGO_BUILD_TARGET"
                            | "CARGO_BUILD_TARGET_DIR"
                            | "RUSTFLAGS"
                            | "CARGO_ENCODED_RUSTFLAGS"
                    )
            });
            if leaks {
                cmd.env_remove(key);
            }
        }
        cmd.env("PATH", self.tools.path())
            .env("CARGO_TARGET_DIR", &self.tools.cargo_target)
            .env("NO_COLOR", "1");
        cmd
    }

    /// Runs `wasmon ARGS...` in `cwd` to its end (killed with its process group
    /// after the time limit) and returns what it printed.
    pub fn run<S: AsRef<OsStr>>(&self, cwd: &Path, args: &[S]) -> CliOutput {
        let command = std::iter::once(self.binary.as_os_str())
            .chain(args.iter().map(AsRef::as_ref))
            .map(|a| a.to_string_lossy().into_owned())
            .collect::<Vec<_>>()
            .join(" ");
        let mut cmd = self.command(cwd, args);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .env(
                crate::process::OWNER_VAR,
                crate::process::new_tag("wasmon-cli"),
            )
            .process_group(0);
        let started = Instant::now();
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start `{command}`: {e}"));
        let read_all = |stream: Option<Box<dyn Read + Send>>| {
            std::thread::spawn(move || {
                let mut text = Vec::new();
                if let Some(mut stream) = stream {
                    let _ = stream.read_to_end(&mut text);
                }
                String::from_utf8_lossy(&text).into_owned()
            })
        };
        let stdout = read_all(child.stdout.take().map(|s| Box::new(s) as _));
        let stderr = read_all(child.stderr.take().map(|s| Box::new(s) as _));
        let deadline = started + self.timeout;
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break Some(status),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                _ => {
                    // SAFETY: kill(2) has no memory-safety preconditions; the
                    // group is the child's own (process_group(0)), not yet reaped.
                    unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
                    let _ = child.wait();
                    break None;
                }
            }
        };
        let took = started.elapsed();
        CliOutput {
            command,
            status,
            stdout: stdout.join().unwrap_or_default(),
            stderr: stderr.join().unwrap_or_default(),
            took,
        }
    }

    /// [`PluginCli::run`], panicking with everything it printed unless it exits 0.
    #[track_caller]
    pub fn ok<S: AsRef<OsStr>>(&self, cwd: &Path, args: &[S]) -> CliOutput {
        let output = self.run(cwd, args);
        assert!(output.success(), "{}", output.describe());
        output
    }
}

/// A fresh temporary directory named `PREFIX...` for generated projects,
/// removed when dropped.
pub fn work_dir(prefix: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .expect("cannot create a temporary directory")
}

/// One job for [`parallel`].
pub type Job<'a, T> = Box<dyn FnOnce() -> T + Send + 'a>;

/// Runs `jobs` with at most `width` at once (in their order) and returns
/// their results in that order. A job's panic is re-raised after every job ran.
pub fn parallel<T: Send>(width: usize, jobs: Vec<Job<'_, T>>) -> Vec<T> {
    let count = jobs.len();
    let queue: Vec<Mutex<Option<Job<'_, T>>>> =
        jobs.into_iter().map(|j| Mutex::new(Some(j))).collect();
    let results: Vec<Mutex<Option<std::thread::Result<T>>>> =
        (0..count).map(|_| Mutex::new(None)).collect();
    let next = AtomicUsize::new(0);
    std::thread::scope(|scope| {
        for _ in 0..width.clamp(1, count.max(1)) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(slot) = queue.get(i) else { break };
                    let job = slot.lock().unwrap().take().expect("each job runs once");
                    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job));
                    *results[i].lock().unwrap() = Some(result);
                }
            });
        }
    });
    results
        .into_iter()
        .map(
            |r| match r.into_inner().unwrap().expect("every job ran to its end") {
                Ok(value) => value,
                Err(panic) => std::panic::resume_unwind(panic),
            },
        )
        .collect()
}

/// The metric names in a JSON document of samples, wherever they sit (an
/// array at the top, or under any key): every object with a string `name`
/// and a numeric `value`. What `wasmon plugin run --json` printed for a
/// collector, or `/api/samples`.
pub fn sample_names(json: &serde_json::Value) -> Vec<String> {
    let mut names = Vec::new();
    let mut stack = vec![json];
    while let Some(value) = stack.pop() {
        match value {
            serde_json::Value::Object(map) => {
                if let (Some(serde_json::Value::String(name)), Some(v)) =
                    (map.get("name"), map.get("value"))
                    && v.is_number()
                    && !names.contains(name)
                {
                    names.push(name.clone());
                }
                stack.extend(map.values());
            }
            serde_json::Value::Array(items) => stack.extend(items.iter().rev()),
            _ => {}
        }
    }
    names
}

/// Whether a Prometheus exposition has a series named `name` (a counter may
/// carry `_total`) with the label `label`=`value` when one is given.
pub fn has_series(metrics: &str, name: &str, label: Option<(&str, &str)>) -> bool {
    metrics
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit_once(' ').map(|(series, _)| series))
        .any(|series| {
            let (series_name, labels) = series.split_once('{').unwrap_or((series, ""));
            let named = series_name == name || series_name == format!("{name}_total");
            named
                && label.is_none_or(|(k, v)| {
                    labels
                        .trim_end_matches('}')
                        .split(',')
                        .any(|p| p == format!("{k}=\"{v}\""))
                })
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn finds_sample_names_anywhere_once() {
        let run = json!({"plugin": "demo", "kind": "collector", "ok": true,
            "output": [{"name": "demo_up", "value": 1.0, "labels": {}},
                       {"name": "demo_runs", "kind": "counter", "value": 3}],
            "nested": {"samples": [{"name": "demo_up", "value": 2}]},
            "not_a_sample": {"name": "x", "value": "text"}});
        assert_eq!(sample_names(&run), ["demo_up", "demo_runs"]);
        assert!(sample_names(&json!({"name": "only"})).is_empty());
    }

    #[test]
    fn finds_series_by_name_counter_suffix_and_label() {
        let m = "# HELP a_total x\na_total{sink=\"s\"} 1\nb{x=\"1\",plugin=\"p\"} 2\nc 3\n";
        assert!(has_series(m, "a", Some(("sink", "s"))));
        assert!(!has_series(m, "a", Some(("sink", "t"))));
        assert!(has_series(m, "b", Some(("plugin", "p"))));
        assert!(has_series(m, "c", None));
        assert!(!has_series(m, "d", None));
    }

    #[test]
    fn missing_toolchains_fail_naming_the_variable_and_the_fix() {
        let message = |vars: &'static [(&'static str, &'static str)]| {
            let panic = std::panic::catch_unwind(|| {
                Toolchains::from_vars(|k| {
                    vars.iter()
                        .find(|(n, _)| *n == k)
                        .map(|(_, v)| OsString::from(v))
                })
            })
            .expect_err("must panic");
            panic.downcast_ref::<String>().cloned().unwrap_or_default()
        };
        let unset = message(&[]);
        assert!(
            unset.contains("WASMON_TEST_PY_TOOLS is not set") && unset.contains("scripts/test.sh"),
            "{unset}"
        );
        let empty = message(&[("WASMON_TEST_PY_TOOLS", "/"), ("WASMON_TEST_JS_TOOLS", "/")]);
        assert!(
            empty.contains("WASMON_TEST_PY_TOOLS=/ holds no componentize-py"),
            "{empty}"
        );
    }

    #[test]
    fn parallel_keeps_order_and_bounds_width() {
        let running = AtomicUsize::new(0);
        let peak = AtomicUsize::new(0);
        let jobs: Vec<Job<'_, usize>> = (0..6_usize)
            .map(|i| {
                let (running, peak) = (&running, &peak);
                Box::new(move || {
                    let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                    peak.fetch_max(now, Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(30));
                    running.fetch_sub(1, Ordering::SeqCst);
                    i * 10
                }) as Job<'_, usize>
            })
            .collect();
        assert_eq!(parallel(2, jobs), [0, 10, 20, 30, 40, 50]);
        assert_eq!(peak.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn a_cli_command_that_overruns_is_killed() {
        let tools = Toolchains {
            py: "/nonexistent-py".into(),
            js: "/nonexistent-js".into(),
            cargo_target: std::env::temp_dir(),
        };
        let cli = PluginCli::new("/bin/sh", tools).timeout(Duration::from_millis(300));
        let out = cli.run(Path::new("/"), &["-c", "sleep 30"]);
        assert!(
            out.status.is_none() && out.took < Duration::from_secs(5),
            "{out:?}"
        );
        let out = cli.run(Path::new("/"), &["-c", "echo $PATH; echo err >&2"]);
        assert!(out.success());
        assert!(
            out.stdout.starts_with("/nonexistent-py:/nonexistent-js:"),
            "{out:?}"
        );
        assert_eq!(out.stderr.trim(), "err");
    }
}
