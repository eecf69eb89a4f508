//! `wasmon plugin new`: writes a plugin project that builds as generated.
//!
//! The project is rendered from the embedded templates ([`render`]) with the
//! plugin's name, kind and language, then written into `--dir` (or `./NAME`).
//! A Rust project depends on the wasmon SDK by path (`--sdk`, or this
//! repository's `plugins/sdk`); Python and JavaScript projects carry a copy
//! of their SDK and of the WIT, so they build without this repository.

mod render;

use super::{Kind, Lang};
use crate::plugins::valid_name;
use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};

/// The SDK crate of the repository this binary was built from, when it is
/// still there at run time.
const REPO_SDK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../plugins/sdk");

/// Names cargo refuses as a package or crate name.
const RUST_RESERVED: &[&str] = &[
    "as",
    "async",
    "await",
    "break",
    "const",
    "continue",
    "crate",
    "dyn",
    "else",
    "enum",
    "extern",
    "false",
    "fn",
    "for",
    "if",
    "impl",
    "in",
    "let",
    "loop",
    "match",
    "mod",
    "move",
    "mut",
    "pub",
    "ref",
    "return",
    "self",
    "static",
    "struct",
    "super",
    "trait",
    "true",
    "type",
    "unsafe",
    "use",
    "where",
    "while",
    "abstract",
    "become",
    "box",
    "do",
    "final",
    "gen",
    "macro",
    "override",
    "priv",
    "try",
    "typeof",
    "unsized",
    "virtual",
    "yield",
    "std",
    "core",
    "alloc",
    "test",
    "proc_macro",
];

/// `wasmon plugin new` arguments.
#[derive(clap::Args, Debug)]
#[command(after_help = "\
Every project has the plugin's code, its manifest NAME.toml, a README.md with
the build/check/run/install commands, a native unit test and a .gitignore.
Python and JavaScript projects also carry wit/plugin.wit and a copy of their
SDK (wasmon_sdk/, sdk/), so they build without the wasmon repository.

Examples:
  wasmon plugin new collector disk_probe
  wasmon plugin new rule cpu-high --lang python --dir rules/cpu-high
  wasmon plugin new sink audit_log --lang js
  wasmon plugin new collector probe --sdk ~/src/wasmon/plugins/sdk")]
pub struct NewArgs {
    /// What the plugin is: a collector (produces samples), a rule (turns
    /// samples into alerts) or a sink (delivers events elsewhere).
    #[arg(value_enum)]
    pub kind: Kind,
    /// The plugin's name: letters, digits and `_`, starting with a letter
    /// (dashes become `_`). It names NAME.wasm, its manifest NAME.toml and the
    /// `plugin` label of its samples.
    pub name: String,
    /// The language of the project.
    #[arg(long, value_enum, default_value = "rust")]
    pub lang: Lang,
    /// Where to write the project [default: ./NAME, as typed].
    #[arg(long, value_name = "DIR")]
    pub dir: Option<PathBuf>,
    /// Rust only: the wasmon-sdk crate the project depends on by path
    /// [default: plugins/sdk of the wasmon repository this binary was built from].
    #[arg(long, value_name = "PATH", env = "WASMON_SDK_PATH")]
    pub sdk: Option<PathBuf>,
    /// Write into DIR even when it is not empty (the template's files are
    /// overwritten, other files kept).
    #[arg(long)]
    pub force: bool,
}

pub fn run(args: NewArgs) -> Result<()> {
    let plan = Plan::new(&args)?;
    for note in &plan.notes {
        eprintln!("note: {note}");
    }
    let files = render::render(args.lang, args.kind, &plan.values)?;
    write(&plan.dir, &files, args.force)?;
    print_next(&args, &plan, files.len());
    Ok(())
}

/// What one `plugin new` writes, before anything is written.
#[derive(Debug)]
struct Plan {
    /// The plugin name (a valid one).
    name: String,
    /// The project directory, as typed.
    dir: PathBuf,
    values: render::Values,
    /// What the author should know (a renamed plugin, a metric name to fix).
    notes: Vec<String>,
}

impl Plan {
    fn new(args: &NewArgs) -> Result<Plan> {
        let mut notes = Vec::new();
        let name = plugin_name(&args.name, args.lang)?;
        if name != args.name {
            notes.push(format!(
                "the plugin is named `{name}` (`{}` has dashes, which plugin names cannot)",
                args.name
            ));
        }
        let dir = args
            .dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(&args.name));
        let project = project_name(&dir)?;
        let metric = name.to_ascii_lowercase();
        if let Some(problem) = metric_problem(&metric) {
            notes.push(format!(
                "the template's sample names start with `{metric}_`, which the host will refuse \
                 ({problem}); rename them in the generated code"
            ));
        }
        let mut values = render::Values::default()
            .set("name", name.as_str())
            .set("project", project)
            .set("world", render::world(args.kind))
            .set("wit_version", render::WIT_VERSION)
            .set("metric", metric);
        if args.lang == Lang::Rust {
            let sdk = sdk_path(args.sdk.as_deref())?;
            values = values.set("sdk_path", toml_escape(&sdk.to_string_lossy()));
        }
        Ok(Plan {
            name,
            dir,
            values,
            notes,
        })
    }
}

/// The plugin name from NAME as typed: dashes become `_`; then it must be a
/// valid plugin name (and, for Rust, a name cargo accepts).
fn plugin_name(typed: &str, lang: Lang) -> Result<String> {
    let name = typed.replace('-', "_");
    if !valid_name(&name) {
        bail!(
            "invalid plugin name {typed:?}: use letters, digits and `_`, starting with a letter, \
             at most 64 characters (dashes become `_`), e.g. `disk_probe`"
        );
    }
    if lang == Lang::Rust && RUST_RESERVED.contains(&name.to_ascii_lowercase().as_str()) {
        bail!(
            "invalid plugin name {typed:?} for a Rust project: `{name}` is reserved by Rust or \
             cargo; pick another, e.g. `{name}_plugin`"
        );
    }
    Ok(name)
}

/// The project's name: the directory's base name (`{{project}}`).
fn project_name(dir: &Path) -> Result<String> {
    let named = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .filter(|n| !n.is_empty());
    if let Some(name) = named {
        return Ok(name);
    }
    // `.`, `..` or `/`: the name of what it points to.
    let absolute = std::path::absolute(dir)
        .with_context(|| format!("cannot resolve the project directory {}", dir.display()))?;
    let resolved = absolute.canonicalize().unwrap_or(absolute);
    Ok(resolved
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "plugin".to_string()))
}

/// Why the host would refuse the template's sample names (`METRIC_uptime_seconds`).
fn metric_problem(metric: &str) -> Option<String> {
    use crate::store::{lint, validate};
    let sample = format!("{metric}_uptime_seconds");
    if let Some(prefix) = validate::RESERVED_PREFIXES
        .iter()
        .find(|p| sample.starts_with(*p))
    {
        return Some(format!("`{prefix}` is the host's own prefix"));
    }
    lint::check_name(&sample, crate::model::MetricKind::Gauge)
        .err()
        .map(|problem| problem.to_string())
}

/// The SDK crate a Rust project depends on, absolute: `--sdk`/`WASMON_SDK_PATH`,
/// else this repository's `plugins/sdk`.
fn sdk_path(given: Option<&Path>) -> Result<PathBuf> {
    let (path, from) = match given {
        Some(path) => (path.to_path_buf(), "--sdk (or WASMON_SDK_PATH)"),
        None => {
            let repo = PathBuf::from(REPO_SDK);
            if !repo.join("Cargo.toml").is_file() {
                bail!(
                    "cannot find the wasmon Rust SDK: this binary was built from {} and its \
                     plugins/sdk is gone; pass --sdk PATH (or set WASMON_SDK_PATH) to the \
                     folder of the wasmon-sdk crate (plugins/sdk in the wasmon repository)",
                    Path::new(env!("CARGO_MANIFEST_DIR"))
                        .parent()
                        .unwrap_or(Path::new("/"))
                        .display()
                );
            }
            (repo, "the repository")
        }
    };
    let manifest = path.join("Cargo.toml");
    let text = std::fs::read_to_string(&manifest).with_context(|| {
        format!(
            "{from}: {} is not the wasmon-sdk crate (cannot read {}); pass the folder of \
             plugins/sdk in the wasmon repository",
            path.display(),
            manifest.display()
        )
    })?;
    if !text.contains("name = \"wasmon-sdk\"") {
        bail!(
            "{from}: {} is not the wasmon-sdk crate ({} names another package); pass the folder \
             of plugins/sdk in the wasmon repository",
            path.display(),
            manifest.display()
        );
    }
    path.canonicalize()
        .with_context(|| format!("cannot resolve {}", path.display()))
}

/// `text` escaped for a TOML basic string (`"..."`).
fn toml_escape(text: &str) -> String {
    text.replace('\\', "\\\\").replace('"', "\\\"")
}

/// Writes the files into `dir`: refused when `dir` holds anything, unless `force`.
fn write(dir: &Path, files: &[render::File], force: bool) -> Result<()> {
    if dir.exists() {
        if !dir.is_dir() {
            bail!(
                "{} exists and is not a directory; pick another --dir",
                dir.display()
            );
        }
        let occupied = std::fs::read_dir(dir)
            .with_context(|| format!("cannot read {}", dir.display()))?
            .next()
            .is_some();
        if occupied && !force {
            bail!(
                "{} exists and is not empty; pick another --dir, or pass --force to write the \
                 project's files into it (overwriting those, keeping the others)",
                dir.display()
            );
        }
    }
    for file in files {
        let path = dir.join(&file.path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("cannot create {}", parent.display()))?;
        }
        std::fs::write(&path, &file.contents)
            .with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}

fn print_next(args: &NewArgs, plan: &Plan, count: usize) {
    let name = &plan.name;
    let dir = plan.dir.display();
    let lang = render::lang_dir(args.lang);
    let kind = render::world(args.kind);
    let mut steps: Vec<(String, String)> = vec![(format!("cd {dir}"), String::new())];
    match args.lang {
        Lang::Rust => {}
        Lang::Python => steps.push((
            "python3 -m venv .venv && .venv/bin/pip install -r requirements.txt".into(),
            "once: componentize-py".into(),
        )),
        Lang::Js => steps.push(("npm install".into(), "once: componentize-js, jco".into())),
    }
    steps.extend([
        ("wasmon plugin build".into(), format!("-> {name}.wasm")),
        (
            format!("wasmon plugin check {name}.wasm"),
            "loads it, calls init".into(),
        ),
        (
            format!("wasmon plugin run {name}.wasm"),
            "calls it once, prints the result".into(),
        ),
        (
            format!("wasmon plugin install {name}.wasm --to PLUGIN_DIR"),
            "or --host http://HOST:9400".into(),
        ),
    ]);
    let width = steps.iter().map(|(c, _)| c.len()).max().unwrap_or(0);
    println!("Created the {lang} {kind} `{name}` in {dir} ({count} files).");
    println!();
    println!("Next:");
    for (command, comment) in steps {
        if comment.is_empty() {
            println!("  {command}");
        } else {
            println!("  {command:width$}   # {comment}");
        }
    }
    let test = match args.lang {
        Lang::Rust => "cargo test",
        Lang::Python => "python3 -m unittest",
        Lang::Js => "node --test",
    };
    println!();
    println!("Unit tests: {test}. README.md says more.");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_dir(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "wasmon-new-{tag}-{}-{}",
            std::process::id(),
            fastrand::u64(..)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    fn args(kind: Kind, name: &str, lang: Lang, dir: &Path) -> NewArgs {
        NewArgs {
            kind,
            name: name.to_string(),
            lang,
            dir: Some(dir.to_path_buf()),
            sdk: None,
            force: false,
        }
    }

    #[test]
    fn names_are_checked_and_dashes_become_underscores() {
        assert_eq!(plugin_name("disk-probe", Lang::Rust).unwrap(), "disk_probe");
        assert_eq!(plugin_name("Disk2", Lang::Python).unwrap(), "Disk2");
        for bad in [
            "",
            "1disk",
            "_disk",
            "disk.probe",
            "disk probe",
            "dïsk",
            &"a".repeat(65),
        ] {
            let error = plugin_name(bad, Lang::Rust).unwrap_err().to_string();
            assert!(error.contains("invalid plugin name"), "{bad:?}: {error}");
        }
        let error = plugin_name("test", Lang::Rust).unwrap_err().to_string();
        assert!(error.contains("reserved"), "{error}");
        assert_eq!(plugin_name("test", Lang::Js).unwrap(), "test");
    }

    #[test]
    fn the_project_name_is_the_directory_as_typed() {
        assert_eq!(
            project_name(Path::new("my-collector")).unwrap(),
            "my-collector"
        );
        assert_eq!(project_name(Path::new("/tmp/a/b-c/")).unwrap(), "b-c");
        let here = std::env::current_dir().unwrap();
        let base = here.file_name().unwrap().to_string_lossy().into_owned();
        assert_eq!(project_name(Path::new(".")).unwrap(), base);
    }

    #[test]
    fn sample_name_problems_are_found() {
        assert_eq!(metric_problem("disk_probe"), None);
        assert!(metric_problem("wasmon_disk").unwrap().contains("wasmon_"));
        assert!(
            metric_problem("disk_s").is_some(),
            "`s` is an abbreviated unit"
        );
    }

    #[test]
    fn the_sdk_path_must_be_the_sdk_crate() {
        let default = sdk_path(None).unwrap();
        assert!(
            default.is_absolute() && default.ends_with("plugins/sdk"),
            "{default:?}"
        );
        let elsewhere = sdk_path(Some(Path::new(env!("CARGO_MANIFEST_DIR"))));
        assert!(
            elsewhere
                .unwrap_err()
                .to_string()
                .contains("not the wasmon-sdk crate")
        );
        let missing = sdk_path(Some(Path::new("/nonexistent/sdk")));
        assert!(missing.unwrap_err().to_string().contains("--sdk"));
        assert_eq!(toml_escape(r#"C:\a"b"#), r#"C:\\a\"b"#);
    }

    #[test]
    fn writes_a_project_and_refuses_a_non_empty_dir_without_force() {
        let dir = temp_dir("write").join("my-sink");
        run(args_for(&dir, false)).unwrap();
        for path in [
            "Cargo.toml",
            "src/lib.rs",
            "my_sink.toml",
            "README.md",
            ".gitignore",
        ] {
            assert!(dir.join(path).is_file(), "{path}");
        }
        let cargo = std::fs::read_to_string(dir.join("Cargo.toml")).unwrap();
        assert!(cargo.contains("name = \"my_sink\""), "{cargo}");
        let sdk = sdk_path(None).unwrap();
        assert!(
            cargo.contains(&format!("path = \"{}\"", sdk.display())),
            "{cargo}"
        );

        std::fs::write(dir.join("src/lib.rs"), "// edited").unwrap();
        std::fs::write(dir.join("notes.txt"), "mine").unwrap();
        let again = run(args_for(&dir, false)).unwrap_err().to_string();
        assert!(
            again.contains("not empty") && again.contains("--force"),
            "{again}"
        );
        assert_eq!(
            std::fs::read_to_string(dir.join("src/lib.rs")).unwrap(),
            "// edited"
        );

        run(args_for(&dir, true)).unwrap();
        let lib = std::fs::read_to_string(dir.join("src/lib.rs")).unwrap();
        assert!(lib.contains("export_sink!"), "overwritten");
        assert_eq!(
            std::fs::read_to_string(dir.join("notes.txt")).unwrap(),
            "mine"
        );
        let _ = std::fs::remove_dir_all(dir.parent().unwrap());

        fn args_for(dir: &Path, force: bool) -> NewArgs {
            NewArgs {
                force,
                ..args(Kind::Sink, "my-sink", Lang::Rust, dir)
            }
        }
    }

    #[test]
    fn an_invalid_name_writes_nothing() {
        let dir = temp_dir("invalid");
        let error = run(args(Kind::Collector, "9lives", Lang::Python, &dir)).unwrap_err();
        assert!(
            error.to_string().contains("invalid plugin name \"9lives\""),
            "{error}"
        );
        assert!(!dir.exists());
    }

    #[test]
    fn python_and_js_projects_are_written_with_wit_and_sdk() {
        for (lang, sdk_dir) in [(Lang::Python, "wasmon_sdk"), (Lang::Js, "sdk")] {
            let dir = temp_dir("vendored");
            run(args(Kind::Rule, "cpu_rule", lang, &dir)).unwrap();
            let wit = std::fs::read_to_string(dir.join("wit/plugin.wit")).unwrap();
            assert_eq!(wit, render::WIT);
            assert!(dir.join("cpu_rule.toml").is_file(), "{lang:?}");
            let vendored = std::fs::read_dir(dir.join(sdk_dir)).unwrap().count();
            assert!(vendored > 0, "{lang:?}: {sdk_dir}/ is empty");
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
}
