//! `wasmon plugin build`: builds a plugin project into `NAME.wasm`, beside
//! its manifest `NAME.toml`.
//!
//! The language comes from the project's own metadata, no hidden files:
//! Rust `Cargo.toml` `[package.metadata.wasmon] name`, Python
//! `pyproject.toml` `[tool.wasmon] name, world`, JavaScript `package.json`
//! `"wasmon": {"name", "world"}`. The toolchain is looked up (project-local
//! first, then `PATH`) and run with its output streamed; wasmon never
//! downloads anything: a missing tool is an error with the exact command that
//! installs it.

mod project;
mod toolchain;

use anyhow::{Context, Result};
use project::{Language, Project};
use std::path::{Path, PathBuf};
use std::time::Instant;

// The pins, written once: as literals for `--help` (`concat!`), as consts for code.
macro_rules! componentize_py_version {
    () => {
        "0.25.1"
    };
}
macro_rules! componentize_js_version {
    () => {
        "0.23.0"
    };
}
macro_rules! jco_version {
    () => {
        "1.34.0"
    };
}

/// The componentize-py release the Python SDK and templates are built with.
pub const COMPONENTIZE_PY_VERSION: &str = componentize_py_version!();
/// The componentize-js release the JavaScript SDK and templates are built with.
pub const COMPONENTIZE_JS_VERSION: &str = componentize_js_version!();
/// The jco release installed beside componentize-js (1.35.0's type generation is broken).
pub const JCO_VERSION: &str = jco_version!();
/// The Rust target of a plugin component.
pub const RUST_TARGET: &str = "wasm32-wasip2";

/// `wasmon plugin build` arguments.
#[derive(clap::Args, Debug)]
#[command(after_help = concat!("\
What runs, in DIR:
  Rust:        cargo build --release --target wasm32-wasip2 (CARGO_TARGET_DIR is honoured)
  Python:      componentize-py -d WIT -w WORLD componentize app -p . [-p DIR]... -o NAME.wasm
  JavaScript:  componentize-js plugin.js -w WIT -n WORLD -d http fetch-event -o NAME.wasm

WIT is DIR/wit unless the metadata says otherwise (paths relative to DIR):
pyproject.toml [tool.wasmon] wit = \"../../wit/0.2.0\", python_path = [\"../sdk-python\"]
(the extra -p DIRs); package.json \"wasmon\": {\"wit\": ..., \"root\": \"..\"}.
componentize-js loads no import outside the directory it runs from: with
\"root\" it runs from DIR/ROOT (the project directory or one above it), with
plugin.js given relative to it.

Tools are looked up in the project first (.venv/bin, node_modules/.bin), then
$VIRTUAL_ENV/bin (Python) and PATH. Nothing is downloaded: a missing tool is
an error with the command that installs it. Pinned versions: componentize-py ",
    componentize_py_version!(),
    ", componentize-js ",
    componentize_js_version!(),
    ", jco ",
    jco_version!(),
    "."
))]
pub struct BuildArgs {
    /// The project directory (holding Cargo.toml, pyproject.toml or
    /// package.json with its wasmon metadata).
    #[arg(default_value = ".", value_name = "DIR")]
    pub dir: PathBuf,
    /// Rust only: build without optimisations (faster to build, larger and
    /// slower component). Release is the default.
    #[arg(long)]
    pub debug: bool,
}

pub fn run(args: BuildArgs) -> Result<()> {
    let project = Project::detect(&args.dir)?;
    let out = project.dir.join(format!("{}.wasm", project.name));
    let partial = project.dir.join(format!(".{}.wasm.partial", project.name));
    eprintln!(
        "building {} ({} {}) in {}",
        project.name,
        project.language,
        project.world,
        project.dir.display()
    );
    let started = Instant::now();
    let search = toolchain::Search::from_env();
    let built = match project.language {
        Language::Rust => toolchain::rust(&project, !args.debug, &partial, &search),
        Language::Python => toolchain::python(&project, &partial, &search),
        Language::Js => toolchain::js(&project, &partial, &search),
    };
    if let Err(error) = built {
        let _ = std::fs::remove_file(&partial);
        return Err(error);
    }
    std::fs::rename(&partial, &out)
        .with_context(|| format!("cannot move the build to {}", out.display()))?;
    let size = std::fs::metadata(&out)
        .with_context(|| format!("cannot read {}", out.display()))?
        .len();
    println!(
        "built {} ({}, {} bytes) in {:.1} s",
        shown(&args.dir, &out),
        human_size(size),
        size,
        started.elapsed().as_secs_f64()
    );
    let manifest = project.dir.join(format!("{}.toml", project.name));
    if !manifest.is_file() {
        eprintln!(
            "note: no manifest {} beside it: the host will load it with the defaults",
            manifest.display()
        );
    }
    println!("next: wasmon plugin check {}", shown(&args.dir, &out));
    Ok(())
}

/// `out` as the author would type it from where they ran the command.
fn shown(dir: &Path, out: &Path) -> String {
    match out.file_name() {
        Some(file) if dir == Path::new(".") => file.to_string_lossy().into_owned(),
        Some(file) => dir.join(file).display().to_string(),
        None => out.display().to_string(),
    }
}

/// `18.4 MB`, `200 KiB`-style: one decimal, binary units.
fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_like_people_write_them() {
        assert_eq!(human_size(512), "512 B");
        assert_eq!(human_size(204_800), "200.0 KiB");
        assert_eq!(human_size(18_442_779), "17.6 MiB");
    }

    #[test]
    fn the_output_is_shown_relative_to_what_was_typed() {
        let out = Path::new("/abs/proj/demo.wasm");
        assert_eq!(shown(Path::new("."), out), "demo.wasm");
        assert_eq!(shown(Path::new("proj"), out), "proj/demo.wasm");
    }

    #[test]
    fn a_directory_without_a_project_is_an_error_naming_the_fix() {
        let dir = std::env::temp_dir().join(format!("wasmon-build-none-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let error = run(BuildArgs {
            dir: dir.clone(),
            debug: false,
        })
        .unwrap_err();
        let text = format!("{error:#}");
        assert!(text.contains("not a wasmon plugin project"), "{text}");
        assert!(text.contains("wasmon plugin new"), "{text}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}
