//! Builds the guest workspaces (`plugins/`, `tests/guests/`) for wasm32-wasip2 and
//! writes `$OUT_DIR/guests.rs`: one `pub const NAME: &str` per component built
//! (the absolute path of its `.wasm`) and `ALL`, the list of them.
//!
//! Builds the native fixtures (`tests/fake-nvml/`, the fake `libnvidia-ml.so`)
//! for the host, each a workspace of its own with its own target dir under
//! `target/`, and writes `$OUT_DIR/fixtures.rs` the same way (the path of each
//! cdylib's `.so`).
//!
//! Each workspace is built by a nested `cargo build --release` run in its own
//! directory, so its `.cargo/config.toml` (target, target dir) applies, with the
//! outer build's environment scrubbed: nothing of `cargo clippy`, `RUSTFLAGS` or
//! the outer profile reaches the guests.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use serde_json::Value;
use std::collections::BTreeMap;
use std::env;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The guest workspaces, relative to the repository root.
const WORKSPACES: &[&str] = &["plugins", "tests/guests"];

/// The target every guest is built for.
const WASM_TARGET: &str = "wasm32-wasip2";

/// Native fixture workspaces, built for the host: (directory relative to the
/// repository root, target dir relative to `target/`).
const NATIVE: &[(&str, &str)] = &[("tests/fake-nvml", "fake-nvml")];

/// Variables of the outer build that must not reach the nested one: build-script
/// inputs, clippy's wrapper, flags and profile overrides meant for the host.
/// Besides these: every `CARGO_*` but [`KEPT_CARGO_PREFIXES`], and every
/// `__CARGO*`, `DEP_*` and `CLIPPY_*`.
const SCRUBBED: &[&str] = &[
    "CARGO",
    "RUSTFLAGS",
    "RUSTDOCFLAGS",
    "RUSTC_WORKSPACE_WRAPPER",
    "MAKEFLAGS",
    "MFLAGS",
    "OUT_DIR",
    "TARGET",
    "HOST",
    "NUM_JOBS",
    "OPT_LEVEL",
    "DEBUG",
    "PROFILE",
    "RUSTC_LINKER",
    "RUSTDOC",
];

/// `CARGO_*` variables that configure cargo itself (network, registries,
/// output), not the build: these are kept.
const KEPT_CARGO_PREFIXES: &[&str] = &[
    "CARGO_HOME",
    "CARGO_NET_",
    "CARGO_HTTP_",
    "CARGO_REGISTRIES_",
    "CARGO_REGISTRY_",
    "CARGO_TERM_",
];

fn main() {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").unwrap());
    let root = manifest_dir.join("../..").canonicalize().unwrap();
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").unwrap());
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());

    rerun_if_changed(&root.join("wit"));

    let mut components = BTreeMap::new();
    let mut target_checked = false;
    for ws in WORKSPACES {
        let dir = root.join(ws);
        if !dir.join("Cargo.toml").is_file() {
            // Watch the parent so the workspace appearing is noticed; a missing
            // path would make cargo rerun this script on every build.
            rerun_if_changed(dir.parent().unwrap());
            continue;
        }
        let metadata = metadata(&cargo, &dir);
        for path in watched_paths(&dir, &metadata) {
            rerun_if_changed(&path);
        }
        if !has_component_targets(&metadata) {
            continue;
        }
        if !target_checked {
            check_wasm_target();
            target_checked = true;
        }
        for (name, wasm) in build(&cargo, &dir, ws, &metadata) {
            if let Some(previous) = components.insert(name.clone(), wasm.clone()) {
                panic!(
                    "two guest components map to the constant `{name}`: {} and {}; rename one",
                    previous.display(),
                    wasm.display()
                );
            }
        }
    }

    std::fs::write(out_dir.join("guests.rs"), generate(&components)).unwrap();

    let mut fixtures = BTreeMap::new();
    for (ws, target_dir) in NATIVE {
        let dir = root.join(ws);
        let metadata = metadata(&cargo, &dir);
        for path in watched_paths(&dir, &metadata) {
            rerun_if_changed(&path);
        }
        let target_dir = root.join("target").join(target_dir);
        for (name, path) in build_native(&cargo, &dir, ws, &target_dir, &metadata) {
            if let Some(previous) = fixtures.insert(name.clone(), path.clone()) {
                panic!(
                    "two native fixtures map to the constant `{name}`: {} and {}; rename one",
                    previous.display(),
                    path.display()
                );
            }
        }
    }
    std::fs::write(out_dir.join("fixtures.rs"), generate(&fixtures)).unwrap();
}

/// Builds the native workspace in `dir` for the host, in release, into
/// `target_dir`, and returns `(CONSTANT, path)` for every cdylib of a member.
fn build_native(
    cargo: &std::ffi::OsStr,
    dir: &Path,
    ws: &str,
    target_dir: &Path,
    metadata: &Value,
) -> Vec<(String, PathBuf)> {
    let members = metadata["workspace_members"].as_array().unwrap();
    let output = nested_cargo(cargo, dir)
        .args([
            "build",
            "--release",
            "--message-format=json-render-diagnostics",
            "--target-dir",
        ])
        .arg(target_dir)
        .stderr(Stdio::inherit())
        .output()
        .unwrap_or_else(|e| panic!("cannot run cargo build in {}: {e}", dir.display()));
    if !output.status.success() {
        panic!(
            "building the native fixture {ws}/ failed ({}); its cargo output is above",
            output.status
        );
    }
    let mut built = Vec::new();
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let Ok(message) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let cdylib = message["target"]["kind"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|kind| kind == "cdylib");
        if message["reason"] != "compiler-artifact"
            || !members.contains(&message["package_id"])
            || !cdylib
        {
            continue;
        }
        let target_name = message["target"]["name"].as_str().unwrap();
        for file in message["filenames"].as_array().into_iter().flatten() {
            let file = PathBuf::from(file.as_str().unwrap());
            if file.extension().is_some_and(|e| e == "so" || e == "dylib") {
                let file = file.canonicalize().unwrap_or(file);
                built.push((constant_name(target_name, ws), file));
            }
        }
    }
    if built.is_empty() {
        panic!("the native fixture {ws}/ built no cdylib");
    }
    built
}

fn rerun_if_changed(path: &Path) {
    println!("cargo::rerun-if-changed={}", path.display());
}

/// A command for the nested cargo, in `dir`, with the outer build scrubbed away.
fn nested_cargo(cargo: &std::ffi::OsStr, dir: &Path) -> Command {
    let mut cmd = Command::new(cargo);
    cmd.current_dir(dir).stdin(Stdio::null());
    for (key, _) in env::vars_os() {
        let Some(key) = key.to_str() else { continue };
        let cargo_build_var = key.starts_with("CARGO_")
            && !KEPT_CARGO_PREFIXES.iter().any(|kept| key.starts_with(kept));
        if cargo_build_var
            || key.starts_with("__CARGO")
            || key.starts_with("DEP_")
            || key.starts_with("CLIPPY_")
            || SCRUBBED.contains(&key)
        {
            cmd.env_remove(key);
        }
    }
    cmd
}

/// `cargo metadata --no-deps` of the workspace in `dir`.
fn metadata(cargo: &std::ffi::OsStr, dir: &Path) -> Value {
    let output = nested_cargo(cargo, dir)
        .args(["metadata", "--no-deps", "--format-version", "1"])
        .stderr(Stdio::inherit())
        .output()
        .unwrap_or_else(|e| panic!("cannot run cargo metadata in {}: {e}", dir.display()));
    if !output.status.success() {
        panic!(
            "cargo metadata failed in {} ({}); see the output above",
            dir.display(),
            output.status
        );
    }
    serde_json::from_slice(&output.stdout).unwrap()
}

fn packages(metadata: &Value) -> impl Iterator<Item = &Value> {
    metadata["packages"].as_array().into_iter().flatten()
}

fn is_component_target(target: &Value) -> bool {
    target["kind"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|kind| kind == "cdylib" || kind == "bin")
}

fn has_component_targets(metadata: &Value) -> bool {
    packages(metadata)
        .flat_map(|p| p["targets"].as_array().into_iter().flatten())
        .any(is_component_target)
}

/// The workspace's manifest, lock file and cargo config, and the directory of
/// every member and of every path dependency (its sources). Not the target dir:
/// it lives under the root `target/`.
fn watched_paths(dir: &Path, metadata: &Value) -> Vec<PathBuf> {
    let mut paths = vec![dir.join("Cargo.toml")];
    for extra in ["Cargo.lock", ".cargo"] {
        if dir.join(extra).exists() {
            paths.push(dir.join(extra));
        }
    }
    for package in packages(metadata) {
        if let Some(manifest) = package["manifest_path"].as_str() {
            paths.push(Path::new(manifest).parent().unwrap().to_path_buf());
        }
        for dep in package["dependencies"].as_array().into_iter().flatten() {
            if let Some(path) = dep["path"].as_str() {
                paths.push(PathBuf::from(path));
            }
        }
    }
    paths.sort();
    paths.dedup();
    paths
}

/// Fails with the fix when the toolchain lacks the wasm32-wasip2 standard library.
fn check_wasm_target() {
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let output = Command::new(&rustc)
        .args(["--print", "target-libdir", "--target", WASM_TARGET])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {rustc:?}: {e}"));
    let libdir = String::from_utf8_lossy(&output.stdout).trim().to_string();
    if !output.status.success() || libdir.is_empty() || !Path::new(&libdir).is_dir() {
        panic!(
            "\n\nthe {WASM_TARGET} target is not installed for this toolchain; the guest \
             components are built for it.\nRun `rustup target add {WASM_TARGET}` (or \
             `scripts/test.sh`, which installs everything the tests need).\n\n"
        );
    }
}

/// Builds the workspace in `dir` in release and returns `(CONSTANT, wasm path)`
/// for every cdylib or bin target of a workspace member that produced a `.wasm`.
fn build(
    cargo: &std::ffi::OsStr,
    dir: &Path,
    ws: &str,
    metadata: &Value,
) -> Vec<(String, PathBuf)> {
    let members = metadata["workspace_members"].as_array().unwrap();
    // Diagnostics are rendered on stderr, which cargo shows when this script fails;
    // stdout carries the JSON messages naming the artifacts.
    let output = nested_cargo(cargo, dir)
        .args([
            "build",
            "--release",
            "--message-format=json-render-diagnostics",
        ])
        .stderr(Stdio::inherit())
        .output()
        .unwrap_or_else(|e| panic!("cannot run cargo build in {}: {e}", dir.display()));
    if !output.status.success() {
        panic!(
            "building the guest workspace {ws}/ failed ({}); its cargo output is above",
            output.status
        );
    }
    let mut built = Vec::new();
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let Ok(message) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        if message["reason"] != "compiler-artifact"
            || !members.contains(&message["package_id"])
            || !is_component_target(&message["target"])
        {
            continue;
        }
        let target_name = message["target"]["name"].as_str().unwrap();
        for file in message["filenames"].as_array().into_iter().flatten() {
            let file = PathBuf::from(file.as_str().unwrap());
            if file.extension().is_some_and(|e| e == "wasm") {
                let file = file.canonicalize().unwrap_or(file);
                built.push((constant_name(target_name, ws), file));
            }
        }
    }
    built
}

/// `collector-http-probe` / `collector_http_probe` → `COLLECTOR_HTTP_PROBE`.
fn constant_name(target: &str, ws: &str) -> String {
    let name: String = target
        .chars()
        .map(|c| {
            if c == '-' {
                '_'
            } else {
                c.to_ascii_uppercase()
            }
        })
        .collect();
    let valid = name.starts_with(|c: char| c.is_ascii_alphabetic())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid {
        panic!("guest `{target}` in {ws}/ does not make a Rust constant name; rename it");
    }
    name
}

fn generate(components: &BTreeMap<String, PathBuf>) -> String {
    let mut out = String::from(
        "// Generated by wasmon-test-support's build.rs: one constant per built fixture.\n\n",
    );
    for (name, path) in components {
        let path = path.to_str().expect("fixture paths are UTF-8");
        writeln!(out, "/// `{path}`").unwrap();
        writeln!(out, "pub const {name}: &str = {path:?};").unwrap();
    }
    out.push_str("\n/// Every fixture above, as `(constant name, path)`.\n");
    out.push_str("pub const ALL: &[(&str, &str)] = &[\n");
    for name in components.keys() {
        writeln!(out, "    ({name:?}, {name}),").unwrap();
    }
    out.push_str("];\n");
    out
}
