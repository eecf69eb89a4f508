//! Errors that teach: why a component cannot load as a wasmon plugin, said
//! in the plugin author's terms (WIT names, the version it was built for
//! against the versions this host supports, what to change), with wasmtime's
//! own error kept as the cause.
//!
//! Everything here reads names only: the component's imports and exports as
//! `Component::component_type()` lists them, and the chain of a linker or
//! binding error (wasmtime is pinned, and its texts are tested below).

use crate::plugins::manifest::PluginKind;
use std::collections::BTreeSet;
use wasmtime::Engine;
use wasmtime::component::Component;
use wasmtime::component::types::ComponentItem;

/// The `wasmon:plugin` versions this host loads, oldest first.
pub(crate) const SUPPORTED: [&str; 2] = ["0.1.0", "0.2.0"];

/// The supported versions for people: `0.1.0–0.2.0`.
fn supported_range() -> String {
    let [first, last] = SUPPORTED;
    format!("{first}–{last}")
}

/// How a plugin file is named in every load error: `plugin `probe` (/d/probe.wasm)`.
/// The registry, `wasmon plugin check` and the API use it, so the three say the same.
pub fn origin(name: &str, file: &std::path::Path) -> String {
    format!("plugin `{name}` ({})", file.display())
}

/// The hint for bytes that are a core module rather than a component.
pub(super) const CORE_MODULE: &str = "this is a core WebAssembly module, not a component: \
build it for wasm32-wasip2 (`cargo build --target wasm32-wasip2`, or `wasmon plugin build`), \
or with componentize-py / componentize-js for Python / JavaScript";

/// What a component imports and exports, by WIT name.
pub(super) struct Shape {
    /// Each import: its name and, for an instance, its functions.
    imports: Vec<(String, Vec<String>)>,
    /// The names it exports.
    pub(super) exports: Vec<String>,
}

impl Shape {
    pub(super) fn of(component: &Component, engine: &Engine) -> Shape {
        let ty = component.component_type();
        let imports = ty
            .imports(engine)
            .map(|(name, item)| {
                let funcs = match item.ty {
                    ComponentItem::ComponentInstance(instance) => instance
                        .exports(engine)
                        .filter(|(_, item)| matches!(item.ty, ComponentItem::ComponentFunc(_)))
                        .map(|(name, _)| name.to_string())
                        .collect(),
                    _ => Vec::new(),
                };
                (name.to_string(), funcs)
            })
            .collect();
        let exports = ty
            .exports(engine)
            .map(|(name, _)| name.to_string())
            .collect();
        Shape { imports, exports }
    }

    #[cfg(test)]
    fn new(imports: &[(&str, &[&str])], exports: &[&str]) -> Shape {
        Shape {
            imports: imports
                .iter()
                .map(|(n, f)| (n.to_string(), f.iter().map(|s| s.to_string()).collect()))
                .collect(),
            exports: exports.iter().map(|s| s.to_string()).collect(),
        }
    }

    /// The import names.
    pub(super) fn import_names(&self) -> impl Iterator<Item = &str> {
        self.imports.iter().map(|(n, _)| n.as_str())
    }

    /// The `wasmon:plugin` versions it imports (`0.2.0`, ...).
    fn versions(&self) -> BTreeSet<&str> {
        self.import_names()
            .filter_map(|n| n.strip_prefix("wasmon:plugin/"))
            .filter_map(|n| n.split_once('@').map(|(_, v)| v))
            .collect()
    }

    /// "built for wasmon:plugin@V; this host supports 0.1.0–0.2.0".
    fn built_for(&self) -> String {
        let versions: Vec<&str> = self.versions().into_iter().collect();
        let built = if versions.is_empty() {
            "built against no wasmon:plugin interface (it imports none)".to_string()
        } else {
            format!("built for wasmon:plugin@{}", versions.join(" and @"))
        };
        format!("{built}; this host supports {}", supported_range())
    }

    /// A version this host does not support, if it was built for one.
    pub(super) fn unsupported_version(&self) -> Option<String> {
        let unsupported: Vec<&str> = self
            .versions()
            .into_iter()
            .filter(|v| !SUPPORTED.contains(v))
            .collect();
        if unsupported.is_empty() {
            return None;
        }
        let newer = unsupported
            .iter()
            .any(|v| version_key(v) > version_key(SUPPORTED[1]));
        let hint = if newer {
            format!(
                "rebuild it against wasmon:plugin@{} (this host's `wit/{}/plugin.wit`, the SDK of this wasmon release), or upgrade wasmon",
                SUPPORTED[1], SUPPORTED[1]
            )
        } else {
            format!(
                "rebuild it against wasmon:plugin@{} (`wit/{}/plugin.wit`)",
                SUPPORTED[1], SUPPORTED[1]
            )
        };
        Some(format!("{}. hint: {hint}", self.built_for()))
    }

    /// The world its exports name; `Err` explains when they name none or several.
    pub(super) fn world(&self) -> Result<PluginKind, String> {
        let has = |name: &str| self.exports.iter().any(|e| e == name);
        let kinds: Vec<PluginKind> = [
            (has("collect"), PluginKind::Collector),
            (has("evaluate"), PluginKind::Rule),
            (has("deliver"), PluginKind::Sink),
        ]
        .into_iter()
        .filter_map(|(present, kind)| present.then_some(kind))
        .collect();
        let exports = if self.exports.is_empty() {
            "none".to_string()
        } else {
            self.exports
                .iter()
                .map(|e| format!("`{e}`"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        match kinds.as_slice() {
            [kind] => Ok(*kind),
            [] => {
                let hint = if self.exports.iter().any(|e| e.starts_with("wasi:cli/run@")) {
                    "it is a WASI command (a `main`): build a library instead (Rust: `crate-type = [\"cdylib\"]` and the SDK's `export_collector!`/`export_rule!`/`export_sink!`)"
                } else {
                    "implement one of the worlds collector, rule or sink of wit/0.2.0/plugin.wit (`wasmon plugin new` writes a project that does)"
                };
                Err(format!(
                    "not a wasmon plugin: it exports none of `collect` (world collector), `evaluate` (rule), `deliver` (sink); its exports: {exports}; {}. hint: {hint}",
                    self.built_for()
                ))
            }
            _ => Err(format!(
                "ambiguous plugin: it exports more than one of `collect`, `evaluate`, `deliver` (its exports: {exports}); {}. hint: a plugin implements exactly one world",
                self.built_for()
            )),
        }
    }

    /// Why the linker refused the component's imports, from its error.
    pub(super) fn link_error(&self, kind: PluginKind, error: &wasmtime::Error) -> String {
        let chain: Vec<String> = error.chain().map(|e| e.to_string()).collect();
        let instance = chain.iter().find_map(|m| {
            m.strip_prefix("component imports ")
                .and_then(|rest| between_ticks(rest))
        });
        // The innermost `instance export `x` has the wrong type` names the item.
        let item = chain
            .iter()
            .rev()
            .find_map(|m| m.strip_prefix("instance export ").and_then(between_ticks));
        let root = chain.last().map(String::as_str).unwrap_or_default();
        let missing = root.ends_with("implementation is missing");
        let Some(instance) = instance else {
            return format!("cannot link the {kind} plugin; {}", self.built_for());
        };
        let what = match item {
            Some(item) => {
                let noun = if self
                    .imports
                    .iter()
                    .any(|(n, f)| n == instance && f.iter().any(|f| f == item))
                {
                    "function"
                } else if root.contains("resource") {
                    "resource"
                } else {
                    "item"
                };
                format!("`{instance}` {noun} `{item}`")
            }
            None => format!("`{instance}`"),
        };
        let problem = if missing {
            "which this host does not provide"
        } else {
            "with a type that differs from this host's"
        };
        let hint = import_hint(instance);
        format!(
            "cannot link the {kind} plugin: it imports {what}, {problem}; {}. hint: {hint}",
            self.built_for()
        )
    }

    /// Why the component does not match its world's exports, from the
    /// bindings' error.
    pub(super) fn world_error(
        &self,
        kind: PluginKind,
        version: &str,
        error: &wasmtime::Error,
    ) -> String {
        let world = format!("wasmon:plugin/{kind}@{version}");
        let required = required_exports(kind);
        let missing: Vec<&str> = required
            .iter()
            .copied()
            .filter(|r| !self.exports.iter().any(|e| e == r))
            .collect();
        if !missing.is_empty() {
            let names = missing
                .iter()
                .map(|m| format!("`{m}`"))
                .collect::<Vec<_>>()
                .join(", ");
            return format!(
                "does not match the {world} world: it does not export {names}, which the world requires; {}. hint: implement every export of the world (`init` too), as the SDK's export macro does",
                self.built_for()
            );
        }
        let export = error.chain().find_map(|e| {
            let text = e.to_string();
            text.strip_prefix("type-checking export func ")
                .and_then(between_ticks)
                .map(str::to_string)
        });
        match export {
            Some(export) => format!(
                "does not match the {world} world: its export `{export}` has another type than the world declares; {}. hint: rebuild it against this host's wit/{version}/plugin.wit",
                self.built_for()
            ),
            None => format!("does not match the {world} world; {}", self.built_for()),
        }
    }
}

/// The exports every component of a world has (both versions alike).
fn required_exports(kind: PluginKind) -> &'static [&'static str] {
    match kind {
        PluginKind::Collector => &["init", "collect", "on-message"],
        PluginKind::Rule => &["init", "evaluate"],
        PluginKind::Sink => &["init", "deliver"],
    }
}

/// What to do about an import the host cannot satisfy.
fn import_hint(instance: &str) -> String {
    if instance.starts_with("wasi:http/") {
        return "this host does not give plugins `wasi:http`; use the `http` capability \
                (wasmon:plugin/http). A JavaScript plugin imports wasi:http when componentize-js \
                runs without `-d http fetch-event`: rebuild with \
                `componentize-js plugin.js -w wit -n WORLD -d http fetch-event -o NAME.wasm` \
                (`wasmon plugin build` passes it)"
            .to_string();
    }
    if let Some(rest) = instance.strip_prefix("wasmon:plugin/") {
        let version = rest.split_once('@').map_or("", |(_, v)| v);
        if SUPPORTED.contains(&version) {
            return format!(
                "it was built against another wit/{version}/plugin.wit than this host's (an edited or newer copy): rebuild it against the host's, from the SDK of this wasmon release"
            );
        }
        return format!(
            "rebuild it against wasmon:plugin@{} (this host's wit/{}/plugin.wit)",
            SUPPORTED[1], SUPPORTED[1]
        );
    }
    if instance.starts_with("wasi:") {
        return "this host provides WASI 0.2 (wasi:cli, clocks, filesystem, io, random, sockets) \
                and nothing else of WASI; build for wasm32-wasip2 and use the wasmon capabilities \
                for the rest"
            .to_string();
    }
    "a plugin may import only wasmon:plugin interfaces and WASI 0.2; remove the dependency \
     that brings this import in"
        .to_string()
}

/// The text between the first pair of backticks.
fn between_ticks(text: &str) -> Option<&str> {
    let start = text.find('`')? + 1;
    let len = text[start..].find('`')?;
    Some(&text[start..start + len])
}

/// `0.10.0` > `0.9.0`.
fn version_key(version: &str) -> Vec<u64> {
    version
        .split(['.', '-'])
        .map(|p| p.parse().unwrap_or(0))
        .collect()
}

/// What a trap's reason should quote of the guest's output tail: the last
/// lines, except that componentize-py's panic ("Python function threw an
/// unexpected exception") is replaced by what the guest printed before it
/// (the end of the traceback), which is where the author's message is.
pub(super) fn guest_said(output: &str) -> Option<String> {
    let lines: Vec<&str> = output.lines().filter(|l| !l.trim().is_empty()).collect();
    const PYTHON: &str = "Python function threw an unexpected exception";
    if let Some(at) = lines.iter().rposition(|l| l.contains(PYTHON)) {
        // componentize-py panics with `thread '...' panicked at ...:` on the line before.
        let panic_line = lines[..at]
            .iter()
            .rposition(|l| l.contains("panicked at"))
            .unwrap_or(at);
        let frames: Vec<&str> = lines[..panic_line]
            .iter()
            .filter(|l| !l.starts_with("Traceback (most recent call last)"))
            .map(|l| l.trim())
            .collect();
        let before = &frames[frames.len().saturating_sub(3)..];
        return Some(if before.is_empty() {
            format!(
                "{PYTHON} (it printed no traceback: catch exceptions in the plugin, as the wasmon_sdk export helpers do, to get the error and its traceback)"
            )
        } else {
            format!("Python exception: {}", before.join(" | "))
        });
    }
    let last: Vec<&str> = lines.iter().rev().take(3).rev().copied().collect();
    (!last.is_empty()).then(|| last.join(" | "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(chain: &[&str]) -> wasmtime::Error {
        let mut it = chain.iter().rev();
        let mut e = wasmtime::Error::msg(it.next().copied().unwrap_or_default().to_string());
        for m in it {
            e = e.context(m.to_string());
        }
        e
    }

    #[test]
    fn a_future_version_is_named_against_the_supported_range() {
        let shape = Shape::new(
            &[
                ("wasmon:plugin/types@0.3.0", &[]),
                ("wasmon:plugin/host@0.3.0", &["log"]),
            ],
            &["init", "collect", "on-message"],
        );
        let message = shape.unsupported_version().unwrap_or_default();
        assert!(
            message.starts_with("built for wasmon:plugin@0.3.0; this host supports 0.1.0–0.2.0. hint: rebuild it against wasmon:plugin@0.2.0"),
            "{message}"
        );
        assert!(message.contains("upgrade wasmon"), "{message}");
        let current = Shape::new(&[("wasmon:plugin/host@0.2.0", &["log"])], &["collect"]);
        assert_eq!(current.unsupported_version(), None);
    }

    #[test]
    fn a_missing_import_function_is_named_by_its_wit_name() {
        let shape = Shape::new(
            &[("wasmon:plugin/http@0.2.0", &["send", "send-many"])],
            &["init", "collect", "on-message"],
        );
        let e = err(&[
            "component imports instance `wasmon:plugin/http@0.2.0`, but a matching implementation was not found in the linker",
            "instance export `send-many` has the wrong type",
            "function implementation is missing",
        ]);
        let message = shape.link_error(PluginKind::Collector, &e);
        assert!(
            message.starts_with("cannot link the collector plugin: it imports `wasmon:plugin/http@0.2.0` function `send-many`, which this host does not provide; built for wasmon:plugin@0.2.0; this host supports 0.1.0–0.2.0. hint: it was built against another wit/0.2.0/plugin.wit"),
            "{message}"
        );
    }

    #[test]
    fn wasi_http_hints_at_componentize_js_fetch_event() {
        let shape = Shape::new(
            &[
                ("wasi:http/types@0.2.10", &[]),
                ("wasmon:plugin/host@0.2.0", &["log"]),
            ],
            &["init", "collect", "on-message"],
        );
        let e = err(&[
            "component imports instance `wasi:http/types@0.2.10`, but a matching implementation was not found in the linker",
            "instance export `fields` has the wrong type",
            "resource implementation is missing",
        ]);
        let message = shape.link_error(PluginKind::Collector, &e);
        assert!(
            message.contains("it imports `wasi:http/types@0.2.10` resource `fields`, which this host does not provide"),
            "{message}"
        );
        assert!(message.contains("-d http fetch-event"), "{message}");
    }

    #[test]
    fn missing_exports_are_named_with_the_world() {
        let shape = Shape::new(&[("wasmon:plugin/types@0.2.0", &[])], &["collect"]);
        let e = err(&["no export `init` found"]);
        let message = shape.world_error(PluginKind::Collector, "0.2.0", &e);
        assert!(
            message.starts_with("does not match the wasmon:plugin/collector@0.2.0 world: it does not export `init`, `on-message`, which the world requires"),
            "{message}"
        );
        let none = Shape::new(
            &[("wasi:cli/environment@0.2.6", &[])],
            &["wasi:cli/run@0.2.6"],
        );
        let message = none.world().err().unwrap_or_default();
        assert!(
            message.starts_with("not a wasmon plugin: it exports none of `collect`"),
            "{message}"
        );
        assert!(
            message.contains("built against no wasmon:plugin interface"),
            "{message}"
        );
        assert!(message.contains("WASI command"), "{message}");
    }

    #[test]
    fn a_python_exception_shows_the_traceback_not_the_runtime_panic() {
        let out = "Traceback (most recent call last):\n  File \"app.py\", line 27, in collect\nValueError: an uncaught Python exception\nthread '<unnamed>' (1) panicked at runtime/src/lib.rs:1293:29:\nPython function threw an unexpected exception\nnote: run with `RUST_BACKTRACE=1` environment variable to display a backtrace";
        assert_eq!(
            guest_said(out).as_deref(),
            Some(
                "Python exception: File \"app.py\", line 27, in collect | ValueError: an uncaught Python exception"
            )
        );
        let bare = "thread '<unnamed>' (1) panicked at runtime/src/lib.rs:1293:29:\nPython function threw an unexpected exception\nnote: run with `RUST_BACKTRACE=1`";
        assert!(
            guest_said(bare)
                .unwrap_or_default()
                .contains("printed no traceback")
        );
        let rust = "a\nb\nthread 'main' panicked at src/lib.rs:3:5:\nboom\nnote: run with `RUST_BACKTRACE=1`";
        assert_eq!(
            guest_said(rust).as_deref(),
            Some(
                "thread 'main' panicked at src/lib.rs:3:5: | boom | note: run with `RUST_BACKTRACE=1`"
            )
        );
        assert_eq!(guest_said("  \n"), None);
    }

    #[test]
    fn versions_compare_numerically() {
        assert!(version_key("0.10.0") > version_key("0.9.0"));
        assert!(version_key("0.3.0") > version_key("0.2.0"));
    }
}
