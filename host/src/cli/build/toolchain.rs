//! Each language's toolchain: found (project-local first, then `PATH`),
//! checked, and run with its output streamed. Nothing is ever installed
//! here: a missing tool is an error with the exact command that installs it.

use super::project::Project;
use super::{COMPONENTIZE_JS_VERSION, COMPONENTIZE_PY_VERSION, JCO_VERSION, RUST_TARGET};
use anyhow::{Context, Result, bail};
use std::ffi::{OsStr, OsString};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Builds a Rust project with cargo and copies the component to `out`.
pub fn rust(project: &Project, release: bool, out: &Path, search: &Search) -> Result<()> {
    let cargo = find_on_path("cargo", search).with_context(|| {
        format!(
            "cargo not found on PATH: install Rust (https://rustup.rs), then run \
             `rustup target add {RUST_TARGET}`"
        )
    })?;
    check_rust_target(&project.dir, search)?;
    let mut command = Command::new(&cargo);
    command
        .args([
            "build",
            "--target",
            RUST_TARGET,
            "--message-format=json-render-diagnostics",
        ])
        .current_dir(&project.dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    if release {
        command.arg("--release");
    }
    let mut child = command
        .spawn()
        .with_context(|| format!("cannot run {}", cargo.display()))?;
    let mut artifact = None;
    if let Some(stdout) = child.stdout.take() {
        for line in BufReader::new(stdout).lines() {
            let line = line.context("cannot read cargo's output")?;
            if let Some(wasm) = wasm_artifact(&line) {
                artifact = Some(wasm);
            }
        }
    }
    let status = child.wait().context("cargo did not finish")?;
    if !status.success() {
        bail!("cargo build failed ({status}); its errors are above");
    }
    let Some(artifact) = artifact else {
        bail!(
            "cargo built no .wasm: the crate needs `[lib] crate-type = [\"cdylib\"]` in {}",
            project.dir.join("Cargo.toml").display()
        );
    };
    std::fs::copy(&artifact, out)
        .with_context(|| format!("cannot copy {} to {}", artifact.display(), out.display()))?;
    Ok(())
}

/// The `.wasm` file of a cargo `compiler-artifact` message (a cdylib), if any.
fn wasm_artifact(line: &str) -> Option<PathBuf> {
    let message: serde_json::Value = serde_json::from_str(line).ok()?;
    if message.get("reason")?.as_str()? != "compiler-artifact" {
        return None;
    }
    message
        .get("filenames")?
        .as_array()?
        .iter()
        .filter_map(|f| f.as_str())
        .find(|f| f.ends_with(".wasm"))
        .map(PathBuf::from)
}

/// The wasm32-wasip2 standard library is installed for the rustc that builds `dir`.
fn check_rust_target(dir: &Path, search: &Search) -> Result<()> {
    let fix = format!("rustup target add {RUST_TARGET}");
    let rustc = find_on_path("rustc", search).with_context(|| {
        format!("rustc not found on PATH: install Rust (https://rustup.rs), then `{fix}`")
    })?;
    let output = Command::new(&rustc)
        .args(["--print", "sysroot"])
        .current_dir(dir)
        .output()
        .with_context(|| format!("cannot run {}", rustc.display()))?;
    if !output.status.success() {
        bail!(
            "`rustc --print sysroot` failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let sysroot = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
    if !sysroot.join("lib/rustlib").join(RUST_TARGET).is_dir() {
        bail!(
            "the Rust target {RUST_TARGET} is not installed for this toolchain ({}): run `{fix}`",
            sysroot.display()
        );
    }
    Ok(())
}

/// Where tools are looked for besides the project: `PATH` and `VIRTUAL_ENV`.
#[derive(Debug, Clone, Default)]
pub struct Search {
    path: Option<OsString>,
    virtual_env: Option<PathBuf>,
}

impl Search {
    /// This process's `PATH` and `VIRTUAL_ENV`.
    pub fn from_env() -> Search {
        Search {
            path: std::env::var_os("PATH"),
            virtual_env: std::env::var_os("VIRTUAL_ENV").map(PathBuf::from),
        }
    }
}

/// Builds a Python project with componentize-py into `out`.
pub fn python(project: &Project, out: &Path, search: &Search) -> Result<()> {
    let install = format!(
        "python3 -m venv .venv && .venv/bin/pip install componentize-py=={COMPONENTIZE_PY_VERSION}"
    );
    let venv = search.virtual_env.as_ref().map(|v| v.join("bin"));
    let tool = find_tool(
        "componentize-py",
        &[Some(project.dir.join(".venv/bin")), venv],
        search,
    )
    .with_context(|| {
        format!(
            "componentize-py not found (looked in {}/.venv/bin, $VIRTUAL_ENV/bin and PATH); \
             install it in the project: cd {} && {install}",
            project.dir.display(),
            project.dir.display()
        )
    })?;
    warn_version(&tool, COMPONENTIZE_PY_VERSION, &install);
    if !project.dir.join("app.py").is_file() {
        bail!(
            "{} is missing: componentize-py builds the module `app` (a class `WitWorld`)",
            project.dir.join("app.py").display()
        );
    }
    require_wit(project)?;
    let mut command = Command::new(&tool);
    command.arg("-d").arg(&project.wit).args([
        "-w",
        &project.world,
        "componentize",
        "app",
        "-p",
        ".",
    ]);
    for dir in &project.python_path {
        command.arg("-p").arg(dir);
    }
    command.arg("-o").arg(out).current_dir(&project.dir);
    stream(command, &tool)
}

/// Builds a JavaScript project with componentize-js into `out`.
pub fn js(project: &Project, out: &Path, search: &Search) -> Result<()> {
    let install = format!(
        "npm i -D --save-exact @bytecodealliance/componentize-js@{COMPONENTIZE_JS_VERSION} \
         @bytecodealliance/jco@{JCO_VERSION}"
    );
    find_on_path("node", search).context(
        "node not found on PATH: install Node.js 18 or newer (`apt-get install nodejs npm`, or \
         https://nodejs.org)",
    )?;
    let tool = find_tool(
        "componentize-js",
        &[Some(project.dir.join("node_modules/.bin"))],
        search,
    )
    .with_context(|| {
        format!(
            "componentize-js not found (looked in {}/node_modules/.bin and PATH); install it in \
             the project: cd {} && {install}",
            project.dir.display(),
            project.dir.display()
        )
    })?;
    warn_version(&tool, COMPONENTIZE_JS_VERSION, &install);
    if !project.dir.join("plugin.js").is_file() {
        bail!(
            "{} is missing: componentize-js builds plugin.js",
            project.dir.join("plugin.js").display()
        );
    }
    require_wit(project)?;
    // componentize-js loads only imports inside the directory it runs from:
    // run it from `root`, the entry relative to it, the other paths absolute.
    let entry = project
        .dir
        .strip_prefix(&project.root)
        .with_context(|| {
            format!(
                "{} does not hold the project {}",
                project.root.display(),
                project.dir.display()
            )
        })?
        .join("plugin.js");
    let mut command = Command::new(&tool);
    command
        .arg(&entry)
        .arg("-w")
        .arg(project.dir.join(&project.wit))
        .args(["-n", &project.world, "-d", "http", "fetch-event", "-o"])
        .arg(out)
        .current_dir(&project.root)
        .stdin(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = command
        .spawn()
        .with_context(|| format!("cannot run {}", tool.display()))?;
    // Its errors still reach the terminal, line by line; an import that
    // leaves `root` gets a hint (componentize-js only says "No such file").
    let mut outside = false;
    if let Some(stderr) = child.stderr.take() {
        let mut reader = BufReader::new(stderr);
        let mut line = Vec::new();
        while reader.read_until(b'\n', &mut line).unwrap_or(0) > 0 {
            let _ = std::io::stderr().write_all(&line);
            outside |= String::from_utf8_lossy(&line).contains("Error loading module \"../");
            line.clear();
        }
    }
    let status = child
        .wait()
        .with_context(|| format!("{} did not finish", tool.display()))?;
    if status.success() {
        return Ok(());
    }
    if outside {
        bail!(
            "{} failed ({status}): plugin.js imports a module outside {}, the directory \
             componentize-js runs from, and it loads nothing outside it. Keep the imports inside \
             the project, or set {} in package.json to a directory that holds them (e.g. \"..\")",
            tool.display(),
            project.root.display(),
            project.language.key("root"),
        );
    }
    bail!("{} failed ({status}); its errors are above", tool.display())
}

/// Python and JS projects build against their `wit/` (or the `wit` key's directory).
fn require_wit(project: &Project) -> Result<()> {
    let wit = project.dir.join(&project.wit);
    if !wit.is_dir() {
        bail!(
            "{} is missing: the WIT the plugin is built against (`wasmon plugin new` writes it; \
             a project that uses the WIT in place sets {} in {})",
            wit.display(),
            project.language.key("wit"),
            project.language.file()
        );
    }
    Ok(())
}

/// Runs a tool with its output going to the terminal.
fn stream(mut command: Command, tool: &Path) -> Result<()> {
    let status = command
        .stdin(Stdio::null())
        .status()
        .with_context(|| format!("cannot run {}", tool.display()))?;
    if !status.success() {
        bail!("{} failed ({status}); its errors are above", tool.display());
    }
    Ok(())
}

/// Warns when `tool --version` does not print `pinned`.
fn warn_version(tool: &Path, pinned: &str, install: &str) {
    match version(tool) {
        Some(found) if found == pinned => {}
        Some(found) => eprintln!(
            "warning: {} is version {found}; wasmon is tested with {pinned} ({install})",
            tool.display()
        ),
        None => eprintln!(
            "warning: cannot read the version of {}; wasmon is tested with {pinned}",
            tool.display()
        ),
    }
}

/// The version `tool --version` prints: its last word (`componentize-py 0.25.1`, `0.23.0`).
fn version(tool: &Path) -> Option<String> {
    let output = Command::new(tool).arg("--version").output().ok()?;
    if !output.status.success() {
        return None;
    }
    parse_version(&String::from_utf8_lossy(&output.stdout))
}

fn parse_version(text: &str) -> Option<String> {
    let word = text.lines().next()?.split_whitespace().last()?;
    Some(word.trim_start_matches('v').to_string())
}

/// `name` in the first of `dirs` that has it, else on `PATH`.
fn find_tool(name: &str, dirs: &[Option<PathBuf>], search: &Search) -> Option<PathBuf> {
    dirs.iter()
        .flatten()
        .map(|dir| dir.join(name))
        .find(|path| is_executable(path))
        .or_else(|| find_on_path(name, search))
}

/// `name` on `PATH`.
fn find_on_path(name: impl AsRef<OsStr>, search: &Search) -> Option<PathBuf> {
    let path = search.path.as_ref()?;
    std::env::split_paths(path)
        .map(|dir| dir.join(name.as_ref()))
        .find(|path| is_executable(path))
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests;
