//! What `wasmon plugin build` builds: the project's language, plugin name and
//! world, read from the project's own metadata, and where its inputs are.
//!
//! Generated projects carry their own `wit/` and SDK copy and need nothing
//! more. Projects that use the WIT and SDK in place (the repository's
//! examples) say where they are: Python `[tool.wasmon] wit = "DIR"`,
//! `python_path = ["DIR", ..]`; JavaScript `"wasmon": {"wit": "DIR", "root":
//! "DIR"}`, all relative to the project directory.

use crate::plugins::valid_name;
use anyhow::{Context, Result, bail};
use std::fmt;
use std::path::{Path, PathBuf};

/// A project's language.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Language {
    Rust,
    Python,
    Js,
}

impl fmt::Display for Language {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Language::Rust => "Rust",
            Language::Python => "Python",
            Language::Js => "JavaScript",
        })
    }
}

impl Language {
    /// How an author writes metadata key `key` in this language's project
    /// file, for messages: `[tool.wasmon] wit`, `"wasmon".root`.
    pub fn key(self, key: &str) -> String {
        match self {
            Language::Rust => format!("[package.metadata.wasmon] {key}"),
            Language::Python => format!("[tool.wasmon] {key}"),
            Language::Js => format!("\"wasmon\".{key}"),
        }
    }

    /// The project file that carries the metadata.
    pub fn file(self) -> &'static str {
        match self {
            Language::Rust => "Cargo.toml",
            Language::Python => "pyproject.toml",
            Language::Js => "package.json",
        }
    }
}

/// A plugin project found in a directory.
#[derive(Debug, Clone, PartialEq)]
pub struct Project {
    /// The project directory, absolute.
    pub dir: PathBuf,
    pub language: Language,
    /// The plugin name: the build writes `NAME.wasm`.
    pub name: String,
    /// `collector`, `rule` or `sink`; for Rust, what the SDK macro exports
    /// (shown as `component`).
    pub world: String,
    /// Python and JS: the WIT package directory as the metadata writes it,
    /// relative to `dir` (`wit` unless the `wit` key says otherwise).
    pub wit: PathBuf,
    /// Python: extra module directories for componentize-py (`-p`), as
    /// written, relative to `dir` (the `python_path` key).
    pub python_path: Vec<PathBuf>,
    /// JS: the directory componentize-js runs from, absolute: `dir`, or the
    /// `root` key's directory (the project directory or one above it).
    /// componentize-js loads no import outside it.
    pub root: PathBuf,
}

/// The wasmon metadata of a project file, not yet checked against the disk.
#[derive(Debug, Default)]
struct Meta {
    name: String,
    world: String,
    wit: Option<String>,
    python_path: Vec<String>,
    root: Option<String>,
}

impl Project {
    /// Reads the project in `dir`: the first of `Cargo.toml`
    /// (`[package.metadata.wasmon]`), `pyproject.toml` (`[tool.wasmon]`) and
    /// `package.json` (`"wasmon"`) that carries wasmon metadata.
    pub fn detect(dir: &Path) -> Result<Project> {
        if !dir.is_dir() {
            bail!(
                "{} is not a directory: pass a plugin project's directory",
                dir.display()
            );
        }
        let dir = dir
            .canonicalize()
            .with_context(|| format!("cannot resolve {}", dir.display()))?;
        let mut without = Vec::new();
        for language in [Language::Rust, Language::Python, Language::Js] {
            let file = language.file();
            let path = dir.join(file);
            let Ok(text) = std::fs::read_to_string(&path) else {
                continue;
            };
            let found = match language {
                Language::Rust => rust(&text),
                Language::Python => python(&text),
                Language::Js => js(&text),
            }
            .and_then(|meta| {
                meta.map(|meta| Project::at(dir.clone(), language, meta))
                    .transpose()
            })
            .with_context(|| format!("{}", path.display()))?;
            match found {
                Some(project) => return Ok(project),
                None => without.push(file),
            }
        }
        if without.is_empty() {
            bail!(
                "{} is not a wasmon plugin project: it has no Cargo.toml, pyproject.toml or \
                 package.json; create one with `wasmon plugin new collector NAME`",
                dir.display()
            );
        }
        bail!(
            "{} is not a wasmon plugin project: its {} carry no wasmon metadata (Cargo.toml: \
             [package.metadata.wasmon] name = \"NAME\"; pyproject.toml: [tool.wasmon] name = \
             \"NAME\", world = \"collector\"; package.json: \"wasmon\": {{\"name\": \"NAME\", \
             \"world\": \"collector\"}}); `wasmon plugin new` writes projects that have it",
            dir.display(),
            without.join(" and ")
        );
    }

    /// The project in `dir` (absolute) with its metadata's paths checked.
    fn at(dir: PathBuf, language: Language, meta: Meta) -> Result<Project> {
        let world = match language {
            Language::Rust => rust_world(&dir),
            _ => meta.world,
        };
        let wit = match &meta.wit {
            Some(wit) => existing_dir(&dir, wit, &language.key("wit"))?,
            None => PathBuf::from("wit"),
        };
        let python_path = meta
            .python_path
            .iter()
            .map(|p| existing_dir(&dir, p, &language.key("python_path")))
            .collect::<Result<Vec<_>>>()?;
        let root = match &meta.root {
            Some(root) => enclosing_root(&dir, root, &language.key("root"))?,
            None => dir.clone(),
        };
        Ok(Project {
            dir,
            language,
            name: meta.name,
            world,
            wit,
            python_path,
            root,
        })
    }
}

/// `value` (relative to `dir`) as written, once it is known to be a directory.
fn existing_dir(dir: &Path, value: &str, key: &str) -> Result<PathBuf> {
    let path = dir.join(value);
    match std::fs::metadata(&path) {
        Ok(meta) if meta.is_dir() => Ok(PathBuf::from(value)),
        Ok(_) => bail!(
            "{key} = {value:?}: {} is not a directory (paths are relative to the project \
             directory {})",
            path.display(),
            dir.display()
        ),
        Err(error) => bail!(
            "{key} = {value:?}: {} does not exist ({error}; paths are relative to the project \
             directory {})",
            path.display(),
            dir.display()
        ),
    }
}

/// The JS `root`: an existing directory that holds the project directory.
fn enclosing_root(dir: &Path, value: &str, key: &str) -> Result<PathBuf> {
    existing_dir(dir, value, key)?;
    let root = dir
        .join(value)
        .canonicalize()
        .with_context(|| format!("{key} = {value:?}: cannot resolve it"))?;
    if !dir.starts_with(&root) {
        bail!(
            "{key} = {value:?}: {} does not hold the project directory {}; componentize-js \
             runs from root, so root must be the project directory or one above it (\".\", \
             \"..\")",
            root.display(),
            dir.display()
        );
    }
    Ok(root)
}

/// The world a Rust crate exports, from its `src/lib.rs` (`export_rule!(..)`),
/// for messages only: `component` when it cannot tell.
fn rust_world(dir: &Path) -> String {
    let lib = std::fs::read_to_string(dir.join("src/lib.rs")).unwrap_or_default();
    ["collector", "rule", "sink"]
        .into_iter()
        .find(|world| lib.contains(&format!("export_{world}!")))
        .unwrap_or("component")
        .to_string()
}

/// `[package.metadata.wasmon] name`.
fn rust(text: &str) -> Result<Option<Meta>> {
    let table: toml::Table = toml::from_str(text).context("invalid TOML")?;
    let Some(wasmon) = table
        .get("package")
        .and_then(|p| p.get("metadata"))
        .and_then(|m| m.get("wasmon"))
    else {
        return Ok(None);
    };
    let name = name_of(
        wasmon.get("name").and_then(|n| n.as_str()),
        "[package.metadata.wasmon] name",
    )?;
    Ok(Some(Meta {
        name,
        world: "component".to_string(),
        ..Meta::default()
    }))
}

/// `[tool.wasmon] name, world`, optional `wit`, `python_path`.
fn python(text: &str) -> Result<Option<Meta>> {
    let table: toml::Table = toml::from_str(text).context("invalid TOML")?;
    let Some(wasmon) = table.get("tool").and_then(|t| t.get("wasmon")) else {
        return Ok(None);
    };
    let name = name_of(
        wasmon.get("name").and_then(|n| n.as_str()),
        "[tool.wasmon] name",
    )?;
    let world = world_of(
        wasmon.get("world").and_then(|w| w.as_str()),
        "[tool.wasmon] world",
    )?;
    let wit = match wasmon.get("wit") {
        None => None,
        Some(toml::Value::String(wit)) => Some(wit.clone()),
        Some(other) => bail!(
            "[tool.wasmon] wit = {other}: expected a string, the WIT directory relative to the \
             project, e.g. \"../../wit/0.2.0\""
        ),
    };
    let list_error = || {
        anyhow::anyhow!(
            "[tool.wasmon] python_path: expected a list of strings, directories relative to \
             the project, e.g. [\"../sdk-python\"]"
        )
    };
    let python_path = match wasmon.get("python_path") {
        None => Vec::new(),
        Some(toml::Value::Array(items)) => items
            .iter()
            .map(|item| item.as_str().map(str::to_string).ok_or_else(list_error))
            .collect::<Result<_>>()?,
        Some(_) => return Err(list_error()),
    };
    Ok(Some(Meta {
        name,
        world,
        wit,
        python_path,
        root: None,
    }))
}

/// `"wasmon": {"name", "world"}`, optional `"wit"`, `"root"`.
fn js(text: &str) -> Result<Option<Meta>> {
    let json: serde_json::Value = serde_json::from_str(text).context("invalid JSON")?;
    let Some(wasmon) = json.get("wasmon") else {
        return Ok(None);
    };
    let name = name_of(
        wasmon.get("name").and_then(|n| n.as_str()),
        "\"wasmon\".name",
    )?;
    let world = world_of(
        wasmon.get("world").and_then(|w| w.as_str()),
        "\"wasmon\".world",
    )?;
    let text_of = |key: &str, example: &str| match wasmon.get(key) {
        None => Ok(None),
        Some(serde_json::Value::String(value)) => Ok(Some(value.clone())),
        Some(other) => bail!(
            "\"wasmon\".{key} = {other}: expected a string, a directory relative to the \
             project, e.g. {example:?}"
        ),
    };
    Ok(Some(Meta {
        name,
        world,
        wit: text_of("wit", "../../wit/0.2.0")?,
        python_path: Vec::new(),
        root: text_of("root", "..")?,
    }))
}

fn name_of(value: Option<&str>, key: &str) -> Result<String> {
    match value {
        Some(name) if valid_name(name) => Ok(name.to_string()),
        Some(name) => bail!(
            "{key} = {name:?} is not a valid plugin name: letters, digits and `_`, starting \
             with a letter, at most 64 characters"
        ),
        None => bail!("{key} is missing: the plugin's name, e.g. \"disk_probe\""),
    }
}

fn world_of(value: Option<&str>, key: &str) -> Result<String> {
    match value {
        Some(world @ ("collector" | "rule" | "sink")) => Ok(world.to_string()),
        Some(world) => bail!("{key} = {world:?}: expected \"collector\", \"rule\" or \"sink\""),
        None => bail!("{key} is missing: \"collector\", \"rule\" or \"sink\""),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn project_dir(tag: &str, files: &[(&str, &str)]) -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "wasmon-project-{tag}-{}-{}",
            std::process::id(),
            fastrand::u64(..)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        for (name, text) in files {
            std::fs::write(dir.join(name), text).unwrap();
        }
        dir
    }

    fn detect(tag: &str, files: &[(&str, &str)]) -> Result<Project> {
        let dir = project_dir(tag, files);
        let found = Project::detect(&dir);
        let _ = std::fs::remove_dir_all(&dir);
        found
    }

    #[test]
    fn each_language_is_found_by_its_metadata() {
        let rust = detect(
            "rust",
            &[(
                "Cargo.toml",
                "[package]\nname = \"x\"\n[package.metadata.wasmon]\nname = \"disk\"\n",
            )],
        )
        .unwrap();
        assert_eq!(
            (rust.language, rust.name.as_str(), rust.world.as_str()),
            (Language::Rust, "disk", "component")
        );
        let python = detect(
            "py",
            &[(
                "pyproject.toml",
                "[tool.wasmon]\nname = \"cpu\"\nworld = \"rule\"\n",
            )],
        )
        .unwrap();
        assert_eq!(
            (python.language, python.name.as_str(), python.world.as_str()),
            (Language::Python, "cpu", "rule")
        );
        let js = detect(
            "js",
            &[
                // A Cargo.toml without wasmon metadata does not hide the JS project.
                ("Cargo.toml", "[package]\nname = \"other\"\n"),
                (
                    "package.json",
                    r#"{"name": "x", "wasmon": {"name": "web", "world": "sink"}}"#,
                ),
            ],
        )
        .unwrap();
        assert_eq!((js.language, js.world.as_str()), (Language::Js, "sink"));
        assert!(js.dir.is_absolute());
    }

    #[test]
    fn bad_metadata_names_the_file_and_key() {
        let bad_name = detect(
            "badname",
            &[(
                "pyproject.toml",
                "[tool.wasmon]\nname = \"my-probe\"\nworld = \"collector\"\n",
            )],
        )
        .unwrap_err();
        let text = format!("{bad_name:#}");
        assert!(
            text.contains("pyproject.toml") && text.contains("[tool.wasmon] name"),
            "{text}"
        );
        let bad_world = detect(
            "badworld",
            &[(
                "package.json",
                r#"{"wasmon": {"name": "a", "world": "exporter"}}"#,
            )],
        )
        .unwrap_err();
        let text = format!("{bad_world:#}");
        assert!(
            text.contains("\"wasmon\".world") && text.contains("\"exporter\""),
            "{text}"
        );
        let no_meta = detect("nometa", &[("Cargo.toml", "[package]\nname = \"x\"\n")]).unwrap_err();
        let text = format!("{no_meta:#}");
        assert!(
            text.contains("Cargo.toml carry no wasmon metadata"),
            "{text}"
        );
        assert!(text.contains("[package.metadata.wasmon]"), "{text}");
        let broken = detect("broken", &[("package.json", "{")]).unwrap_err();
        assert!(format!("{broken:#}").contains("invalid JSON"), "{broken:#}");
    }

    /// `root/wit/0.2.0`, `root/sdk-python`, `root/sdk-js/src`, `root/notes.txt`
    /// and the project `root/example/FILE` with `text`.
    fn in_place(tag: &str, file: &str, text: &str) -> (PathBuf, Result<Project>) {
        let root = project_dir(tag, &[("notes.txt", "")]);
        for sub in ["wit/0.2.0", "sdk-python", "sdk-js/src", "example"] {
            std::fs::create_dir_all(root.join(sub)).unwrap();
        }
        std::fs::write(root.join("example").join(file), text).unwrap();
        let found = Project::detect(&root.join("example"));
        (root, found)
    }

    #[test]
    fn python_wit_and_python_path_are_taken_as_written() {
        let (root, found) = in_place(
            "pypaths",
            "pyproject.toml",
            "[tool.wasmon]\nname = \"a\"\nworld = \"collector\"\nwit = \"../wit/0.2.0\"\n\
             python_path = [\"../sdk-python\", \".\"]\n",
        );
        let project = found.unwrap();
        assert_eq!(project.wit, PathBuf::from("../wit/0.2.0"));
        assert_eq!(
            project.python_path,
            [PathBuf::from("../sdk-python"), PathBuf::from(".")]
        );
        assert_eq!(project.root, project.dir);
        let _ = std::fs::remove_dir_all(&root);

        let plain = detect(
            "pyplain",
            &[(
                "pyproject.toml",
                "[tool.wasmon]\nname = \"a\"\nworld = \"rule\"\n",
            )],
        )
        .unwrap();
        assert_eq!(plain.wit, PathBuf::from("wit"));
        assert!(plain.python_path.is_empty());
    }

    #[test]
    fn python_paths_that_are_not_directories_name_the_key_and_file() {
        let head = "[tool.wasmon]\nname = \"a\"\nworld = \"collector\"\n";
        for (extra, expected) in [
            (
                "wit = \"../wit/0.3.0\"",
                "[tool.wasmon] wit = \"../wit/0.3.0\"",
            ),
            ("wit = \"../notes.txt\"", "is not a directory"),
            ("wit = 2", "[tool.wasmon] wit = 2: expected a string"),
            (
                "python_path = [\"../sdk-python\", \"../sdk\"]",
                "[tool.wasmon] python_path = \"../sdk\"",
            ),
            (
                "python_path = \"../sdk-python\"",
                "expected a list of strings",
            ),
        ] {
            let (root, found) = in_place("pybad", "pyproject.toml", &format!("{head}{extra}\n"));
            let text = format!("{:#}", found.unwrap_err());
            assert!(
                text.contains("pyproject.toml") && text.contains(expected),
                "{extra}: {text}"
            );
            let _ = std::fs::remove_dir_all(&root);
        }
        let (root, found) = in_place(
            "pymissing",
            "pyproject.toml",
            &format!("{head}wit = \"../wit/0.3.0\"\n"),
        );
        let text = format!("{:#}", found.unwrap_err());
        assert!(text.contains("does not exist"), "{text}");
        let _ = std::fs::remove_dir_all(&root);
    }

    #[test]
    fn a_js_root_must_hold_the_project() {
        let (root, found) = in_place(
            "jsroot",
            "package.json",
            r#"{"wasmon": {"name": "j", "world": "collector", "root": "..", "wit": "../wit/0.2.0"}}"#,
        );
        let project = found.unwrap();
        assert_eq!(project.root, root.canonicalize().unwrap());
        assert_eq!(project.wit, PathBuf::from("../wit/0.2.0"));
        let _ = std::fs::remove_dir_all(&root);

        for (json, expected) in [
            (
                r#"{"wasmon": {"name": "j", "world": "collector", "root": "../sdk-js"}}"#,
                "does not hold the project directory",
            ),
            (
                r#"{"wasmon": {"name": "j", "world": "collector", "root": "../nowhere"}}"#,
                "\"wasmon\".root = \"../nowhere\"",
            ),
            (
                r#"{"wasmon": {"name": "j", "world": "collector", "wit": ["wit"]}}"#,
                "\"wasmon\".wit = [\"wit\"]: expected a string",
            ),
        ] {
            let (root, found) = in_place("jsbad", "package.json", json);
            let text = format!("{:#}", found.unwrap_err());
            assert!(
                text.contains("package.json") && text.contains(expected),
                "{json}: {text}"
            );
            let _ = std::fs::remove_dir_all(&root);
        }
    }
}
