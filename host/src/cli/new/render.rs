//! The templates of `wasmon plugin new`, embedded in the binary, and their
//! rendering into a list of files (nothing is written here).
//!
//! A project is `host/templates/<lang>/_shared/` plus `host/templates/<lang>/<kind>/`
//! (a kind's file replaces a shared one of the same path), with the
//! placeholders of [`Values`] substituted in file contents and file names.
//! Python and JavaScript projects also get `wit/plugin.wit` (the host's
//! current WIT) and a vendored copy of their language's SDK, copied verbatim,
//! so a generated project builds without this repository.

use super::super::{Kind, Lang};
use anyhow::{Result, bail};
use include_dir::{Dir, DirEntry, include_dir};
use std::path::{Path, PathBuf};

/// `host/templates/`.
static TEMPLATES: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/templates");
/// The Python SDK package, vendored into Python projects as `wasmon_sdk/`.
static SDK_PYTHON: Dir<'static> =
    include_dir!("$CARGO_MANIFEST_DIR/../plugins/sdk-python/wasmon_sdk");
/// The JavaScript SDK, vendored into JavaScript projects as `sdk/`.
static SDK_JS: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/../plugins/sdk-js/src");
/// The current WIT package, written as `wit/plugin.wit` into Python and JS projects.
pub const WIT: &str = include_str!("../../../../wit/0.2.0/plugin.wit");
/// The WIT package version the templates target.
pub const WIT_VERSION: &str = "0.2.0";

/// Every placeholder a template may use, `{{NAME}}` in contents and file names.
pub const PLACEHOLDERS: &[&str] = &[
    "name",
    "project",
    "world",
    "wit_version",
    "sdk_path",
    "metric",
];

/// One file of a rendered project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct File {
    /// Relative to the project directory.
    pub path: PathBuf,
    /// What it holds.
    pub contents: Vec<u8>,
}

/// The placeholders' values for one project.
#[derive(Debug, Clone, Default)]
pub struct Values {
    pairs: Vec<(&'static str, String)>,
}

impl Values {
    /// Sets one placeholder (one of [`PLACEHOLDERS`]).
    pub fn set(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.pairs.retain(|(n, _)| *n != name);
        self.pairs.push((name, value.into()));
        self
    }

    /// `text` with every placeholder that has a value substituted.
    pub fn substitute(&self, text: &str) -> String {
        let mut out = text.to_string();
        for (name, value) in &self.pairs {
            out = out.replace(&format!("{{{{{name}}}}}"), value);
        }
        out
    }

    /// The first known placeholder left in `text` (one without a value).
    fn missing(&self, text: &str) -> Option<&'static str> {
        PLACEHOLDERS
            .iter()
            .copied()
            .find(|name| text.contains(&format!("{{{{{name}}}}}")))
    }
}

/// The template folder name of a language.
pub fn lang_dir(lang: Lang) -> &'static str {
    match lang {
        Lang::Rust => "rust",
        Lang::Python => "python",
        Lang::Js => "js",
    }
}

/// The WIT world (and template folder) of a kind.
pub fn world(kind: Kind) -> &'static str {
    match kind {
        Kind::Collector => "collector",
        Kind::Rule => "rule",
        Kind::Sink => "sink",
    }
}

/// Renders the project of `lang` and `kind`: the template files (substituted)
/// and, for Python and JS, the WIT file and the vendored SDK (verbatim).
pub fn render(lang: Lang, kind: Kind, values: &Values) -> Result<Vec<File>> {
    let lang_name = lang_dir(lang);
    let Some(lang_root) = TEMPLATES.get_dir(lang_name) else {
        bail!("this wasmon build has no {lang_name} templates");
    };
    let mut files: Vec<File> = Vec::new();
    let shared = lang_root.get_dir(format!("{lang_name}/_shared"));
    let own = lang_root.get_dir(format!("{lang_name}/{}", world(kind)));
    let Some(own) = own else {
        bail!(
            "this wasmon build has no {lang_name} template for a {}",
            world(kind)
        );
    };
    for dir in shared.into_iter().chain([own]) {
        for (relative, contents) in walk(dir, dir.path()) {
            let path = values.substitute(&relative.to_string_lossy());
            let contents = match std::str::from_utf8(contents) {
                Ok(text) => values.substitute(text).into_bytes(),
                Err(_) => contents.to_vec(),
            };
            if let Some(name) = values
                .missing(&path)
                .or_else(|| values.missing(&String::from_utf8_lossy(&contents)))
            {
                bail!("template {lang_name}/{path} uses {{{{{name}}}}}, which has no value here");
            }
            add(
                &mut files,
                File {
                    path: PathBuf::from(path),
                    contents,
                },
            );
        }
    }
    let vendored: Option<(&Dir<'static>, &str)> = match lang {
        Lang::Rust => None,
        Lang::Python => Some((&SDK_PYTHON, "wasmon_sdk")),
        Lang::Js => Some((&SDK_JS, "sdk")),
    };
    if let Some((sdk, into)) = vendored {
        add(
            &mut files,
            File {
                path: PathBuf::from("wit/plugin.wit"),
                contents: WIT.as_bytes().to_vec(),
            },
        );
        for (relative, contents) in walk(sdk, sdk.path()) {
            add(
                &mut files,
                File {
                    path: Path::new(into).join(relative),
                    contents: contents.to_vec(),
                },
            );
        }
    }
    Ok(files)
}

/// Adds a file, replacing one of the same path.
fn add(files: &mut Vec<File>, file: File) {
    files.retain(|f| f.path != file.path);
    files.push(file);
}

/// Every file under `dir` with its path relative to `root`, skipping build
/// leftovers (`__pycache__`, `*.pyc`, `node_modules`).
fn walk<'a>(dir: &'a Dir<'a>, root: &Path) -> Vec<(PathBuf, &'a [u8])> {
    let mut out = Vec::new();
    for entry in dir.entries() {
        let path = entry.path();
        let skipped = path.file_name().is_some_and(|name| {
            name == "__pycache__"
                || name == "node_modules"
                || name.to_string_lossy().ends_with(".pyc")
        });
        if skipped {
            continue;
        }
        match entry {
            DirEntry::Dir(sub) => out.extend(walk(sub, root)),
            DirEntry::File(file) => {
                let relative = path.strip_prefix(root).unwrap_or(path).to_path_buf();
                out.push((relative, file.contents()));
            }
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const LANGS: [Lang; 3] = [Lang::Rust, Lang::Python, Lang::Js];
    const KINDS: [Kind; 3] = [Kind::Collector, Kind::Rule, Kind::Sink];

    fn values(kind: Kind) -> Values {
        Values::default()
            .set("name", "my_probe")
            .set("project", "my-probe")
            .set("world", world(kind))
            .set("wit_version", WIT_VERSION)
            .set("sdk_path", "/opt/wasmon/plugins/sdk")
            .set("metric", "my_probe")
    }

    fn text(file: &File) -> String {
        String::from_utf8_lossy(&file.contents).into_owned()
    }

    /// A `{{word}}` left in the text: a placeholder nobody substitutes (a typo).
    fn leftover(text: &str) -> Option<String> {
        let mut rest = text;
        while let Some(start) = rest.find("{{") {
            let after = &rest[start + 2..];
            if let Some(end) = after.find("}}") {
                let word = &after[..end];
                if !word.is_empty() && word.chars().all(|c| c.is_ascii_lowercase() || c == '_') {
                    return Some(word.to_string());
                }
            }
            rest = after;
        }
        None
    }

    #[test]
    fn substitute_replaces_every_occurrence_and_leaves_other_braces() {
        let values = Values::default().set("name", "demo").set("world", "rule");
        assert_eq!(
            values.substitute("{{name}}.toml: {{world}} {{name}} {{x}} {{ name }}"),
            "demo.toml: rule demo {{x}} {{ name }}"
        );
        assert_eq!(values.missing("a {{metric}}"), Some("metric"));
        assert_eq!(values.missing("a {{name}}"), Some("name"));
        assert_eq!(values.missing("nothing"), None);
    }

    #[test]
    fn every_language_and_kind_renders_with_no_placeholder_left() {
        for lang in LANGS {
            for kind in KINDS {
                let files = render(lang, kind, &values(kind))
                    .unwrap_or_else(|e| panic!("{lang:?} {kind:?}: {e:#}"));
                let paths: Vec<String> = files
                    .iter()
                    .map(|f| f.path.to_string_lossy().into_owned())
                    .collect();
                for must in ["my_probe.toml", "README.md", ".gitignore"] {
                    assert!(
                        paths.iter().any(|p| p == must),
                        "{lang:?} {kind:?}: no {must} in {paths:?}"
                    );
                }
                for file in &files {
                    let path = file.path.to_string_lossy();
                    assert!(!path.contains("{{"), "{lang:?} {kind:?}: file name {path}");
                    if let Some(word) = leftover(&text(file)) {
                        panic!("{lang:?} {kind:?}: {path} still has {{{{{word}}}}}");
                    }
                }
                let manifest = files
                    .iter()
                    .find(|f| f.path == Path::new("my_probe.toml"))
                    .map(text)
                    .unwrap_or_default();
                let manifest: toml::Table = toml::from_str(&manifest)
                    .unwrap_or_else(|e| panic!("{lang:?} {kind:?}: manifest: {e}"));
                assert_eq!(
                    manifest.get("kind").and_then(|k| k.as_str()),
                    Some(world(kind)),
                    "{lang:?} {kind:?}"
                );
            }
        }
    }

    #[test]
    fn rust_projects_are_standalone_crates_on_the_given_sdk() {
        for kind in KINDS {
            let files = render(Lang::Rust, kind, &values(kind)).unwrap();
            let cargo = files
                .iter()
                .find(|f| f.path == Path::new("Cargo.toml"))
                .map(text)
                .unwrap();
            let cargo: toml::Table = toml::from_str(&cargo).unwrap();
            assert!(cargo.contains_key("workspace"), "own [workspace]");
            let sdk = &cargo["dependencies"]["wasmon-sdk"]["path"];
            assert_eq!(sdk.as_str(), Some("/opt/wasmon/plugins/sdk"));
            let wasmon = &cargo["package"]["metadata"]["wasmon"]["name"];
            assert_eq!(wasmon.as_str(), Some("my_probe"));
            assert_eq!(cargo["profile"]["release"]["panic"].as_str(), Some("abort"));
            let lib = files
                .iter()
                .find(|f| f.path == Path::new("src/lib.rs"))
                .map(text)
                .unwrap();
            let export = format!("wasmon_sdk::export_{}!(Plugin);", world(kind));
            assert!(lib.contains(&export), "{kind:?}: {export}");
            assert!(lib.contains("#[cfg(test)]"), "{kind:?}: a native test");
        }
    }

    #[test]
    fn python_and_js_projects_carry_the_wit_and_the_vendored_sdk() {
        for (lang, sdk_dir, sdk) in [
            (Lang::Python, "wasmon_sdk", &SDK_PYTHON),
            (Lang::Js, "sdk", &SDK_JS),
        ] {
            let files = render(lang, Kind::Collector, &values(Kind::Collector)).unwrap();
            let wit = files
                .iter()
                .find(|f| f.path == Path::new("wit/plugin.wit"))
                .unwrap();
            assert_eq!(text(wit), WIT);
            assert!(WIT.contains("package wasmon:plugin@0.2.0;"));
            let vendored = walk(sdk, sdk.path());
            assert!(!vendored.is_empty(), "{lang:?}: the SDK is embedded");
            for (relative, contents) in vendored {
                let path = Path::new(sdk_dir).join(&relative);
                let file = files.iter().find(|f| f.path == path);
                assert_eq!(
                    file.map(|f| f.contents.as_slice()),
                    Some(contents),
                    "{lang:?}: {path:?}"
                );
            }
            assert!(
                files.iter().all(|f| {
                    let p = f.path.to_string_lossy();
                    !p.contains("__pycache__")
                        && !p.ends_with(".pyc")
                        && !p.contains("node_modules")
                }),
                "{lang:?}: no build leftovers"
            );
        }
    }

    #[test]
    fn the_templates_pin_the_toolchains_plugin_build_expects() {
        use crate::cli::build::{COMPONENTIZE_JS_VERSION, COMPONENTIZE_PY_VERSION, JCO_VERSION};
        for kind in KINDS {
            let python = render(Lang::Python, kind, &values(kind)).unwrap();
            let requirements = python
                .iter()
                .find(|f| f.path == Path::new("requirements.txt"))
                .map(text)
                .unwrap_or_default();
            let pin = format!("componentize-py=={COMPONENTIZE_PY_VERSION}");
            assert!(
                requirements.lines().any(|l| l.trim() == pin),
                "{kind:?}: {requirements}"
            );

            let js = render(Lang::Js, kind, &values(kind)).unwrap();
            let package = js
                .iter()
                .find(|f| f.path == Path::new("package.json"))
                .map(text)
                .unwrap_or_default();
            let package: serde_json::Value = serde_json::from_str(&package).unwrap();
            let dev = &package["devDependencies"];
            assert_eq!(
                dev["@bytecodealliance/componentize-js"],
                COMPONENTIZE_JS_VERSION
            );
            assert_eq!(dev["@bytecodealliance/jco"], JCO_VERSION);
            assert_eq!(package["wasmon"]["name"], "my_probe");
            assert_eq!(package["wasmon"]["world"], world(kind));
        }
    }

    #[test]
    fn a_template_placeholder_without_a_value_is_an_error() {
        let values = values(Kind::Collector);
        let without_sdk = Values {
            pairs: values
                .pairs
                .into_iter()
                .filter(|(n, _)| *n != "sdk_path")
                .collect(),
        };
        let error = render(Lang::Rust, Kind::Collector, &without_sdk).unwrap_err();
        assert!(format!("{error}").contains("{{sdk_path}}"), "{error}");
    }
}
