//! `wasmon plugin check FILE.wasm`: loads one component outside the host the
//! way a host would (same runtime, limits, manifest ceilings and
//! capabilities), calls `init`, and reports what a plugin author needs to
//! know before installing it: its world and WIT version, the file size
//! against the upload limit, compile and init times, guest memory after
//! `init`, the interfaces it imports and what its manifest grants.
//! Collectors and rules are also called once (`collect`, `evaluate` on no
//! input), as `wasmon plugin-check` always did.
//!
//! Also home of what `run` shares with it: the component arguments, loading,
//! logging and the runtime.

use super::run::table::{human_bytes, millis};
use crate::config::Compiler;
use crate::plugins::bindings::WitVersion;
use crate::plugins::{CallError, PluginKind, Standalone};
use anyhow::{Context, Result};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

/// The largest component `PUT /api/plugins/{name}` accepts by default
/// (`[plugins.upload] max_bytes`); `check` warns above it.
fn upload_max_bytes() -> u64 {
    crate::config::PluginsConfig::default().upload.max_bytes.0
}

/// Which compiler turns the component into machine code.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum CompilerArg {
    /// Winch on x86_64 (the host's default), Cranelift elsewhere.
    Auto,
    /// Baseline compiler: compiles several times faster, slower code.
    Winch,
    /// Optimising compiler: slower to compile, faster code.
    Cranelift,
}

impl From<CompilerArg> for Compiler {
    fn from(arg: CompilerArg) -> Compiler {
        match arg {
            CompilerArg::Auto => Compiler::Auto,
            CompilerArg::Winch => Compiler::Winch,
            CompilerArg::Cranelift => Compiler::Cranelift,
        }
    }
}

/// The component to load and how (shared by `check` and `run`).
#[derive(clap::Args, Debug, Clone)]
pub struct ComponentArgs {
    /// The component: `NAME.wasm`, as `wasmon plugin build` writes it.
    #[arg(value_name = "FILE.wasm")]
    pub wasm: PathBuf,
    /// Its manifest. Default: `NAME.toml` beside the component if it exists,
    /// else the host's defaults (no capabilities granted).
    #[arg(long, value_name = "M")]
    pub manifest: Option<PathBuf>,
    /// The plugin's name (what `plugin-name` answers and logs show).
    /// Default: the file name without `.wasm`.
    #[arg(long, value_name = "N")]
    pub name: Option<String>,
    /// The compiler, as `plugins.compiler` in the host's config.
    #[arg(long, value_enum, default_value_t = CompilerArg::Auto)]
    pub compiler: CompilerArg,
}

/// `wasmon plugin check` arguments.
#[derive(clap::Args, Debug)]
#[command(after_help = "\
Exits 0 when the plugin loads, `init` succeeds and its one call (collectors: \
`collect`, rules: `evaluate` on no input) does not fault; otherwise 1, with the \
reason on stderr (and in the JSON object with --json). An error the plugin \
returns from that call is a warning: `wasmon plugin run` shows it.

Examples:
  wasmon plugin check my_collector/my_collector.wasm
  wasmon plugin check build/probe.wasm --manifest probe.toml --compiler cranelift --json")]
pub struct CheckArgs {
    #[command(flatten)]
    pub component: ComponentArgs,
    /// Print one JSON object on stdout instead of the summary (keys
    /// `plugin`, `kind`, `ok`, `output` as `plugin-check` printed them,
    /// plus `wit`, `file_bytes`, `compile_ms`, `init_ms`, `memory_bytes`,
    /// `imports`, `grants`, `warnings`, and `stage`/`error` on failure).
    #[arg(long)]
    pub json: bool,
}

/// A loaded plugin and what was resolved to load it.
pub(super) struct Loaded {
    pub plugin: Standalone,
    /// Notes for the author (not failures).
    pub warnings: Vec<String>,
}

/// Sends the host's warnings and the plugin's `host.log` lines to stderr
/// (`RUST_LOG` overrides). Idempotent.
pub(super) fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn,wasmon::plugins::host=trace"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .without_time()
        .with_target(false)
        .with_ansi(false)
        .try_init();
}

/// A runtime for one command: plugin calls run on it, the epoch ticker on
/// its own thread.
pub(super) fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("failed to start the async runtime")
}

/// The plugin name for `args`: `--name`, else the file's stem.
fn plugin_name(args: &ComponentArgs) -> String {
    args.name.clone().unwrap_or_else(|| {
        args.wasm
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("plugin")
            .to_string()
    })
}

/// The manifest for `args`: `--manifest` (which must exist), else
/// `NAME.toml` beside the component when there is one.
fn manifest_path(args: &ComponentArgs) -> Option<PathBuf> {
    args.manifest
        .clone()
        .or_else(|| Some(args.wasm.with_extension("toml")).filter(|p| p.exists()))
}

/// Loads the component of `args`; the error keeps its stage.
pub(super) async fn load(args: &ComponentArgs) -> Result<Loaded, (String, anyhow::Error)> {
    let name = plugin_name(args);
    let mut warnings = Vec::new();
    if !crate::plugins::valid_name(&name) {
        warnings.push(format!(
            "{name:?} is not a valid plugin name (a letter, then letters, digits or `_`): a host ignores {name}.wasm; install it with `wasmon plugin install FILE --name NAME`"
        ));
    }
    let manifest = match manifest_path(args) {
        Some(path) => {
            let text = std::fs::read_to_string(&path).map_err(|e| {
                (
                    "manifest".to_string(),
                    anyhow::anyhow!(
                        "cannot read the manifest {}: {e}{}",
                        path.display(),
                        if args.manifest.is_some() {
                            ""
                        } else {
                            " (found beside the component)"
                        }
                    ),
                )
            })?;
            Some((text, path))
        }
        None => {
            warnings.push(format!(
                "no manifest: {} does not exist, so the host's defaults apply and no capability is granted (pass --manifest M or write NAME.toml beside the component)",
                args.wasm.with_extension("toml").display()
            ));
            None
        }
    };
    let manifest_ref = manifest.as_ref().map(|(t, p)| (t.as_str(), p.as_path()));
    let plugin = Standalone::open(&name, &args.wasm, manifest_ref, args.compiler.into())
        .await
        .map_err(|e| (e.stage.as_str().to_string(), anyhow::anyhow!(e.message)))?;
    let report = plugin.report();
    if report.file_bytes > upload_max_bytes() {
        warnings.push(format!(
            "the component is {} ({} bytes): above the default upload limit of {} (`[plugins.upload] max_bytes`), so `wasmon plugin install --host` is refused unless the host raises it",
            human_bytes(report.file_bytes),
            report.file_bytes,
            human_bytes(upload_max_bytes())
        ));
    }
    Ok(Loaded { plugin, warnings })
}

/// The `wasmon:plugin/...` interfaces a component imports, without the
/// package prefix and version (`host`, `http`, ...), and how many others
/// (WASI) it imports.
pub(super) fn capabilities(imports: &[String]) -> (Vec<String>, usize) {
    let mut ours = Vec::new();
    let mut others = 0;
    for import in imports {
        match import.strip_prefix("wasmon:plugin/") {
            Some(rest) => ours.push(rest.split('@').next().unwrap_or(rest).to_string()),
            None => others += 1,
        }
    }
    (ours, others)
}

/// The versions this host supports, for people: `0.1.0, 0.2.0`.
pub(super) fn supported_wit() -> String {
    Standalone::SUPPORTED_WIT
        .iter()
        .map(|v| v.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Prints what the guest wrote to stdout/stderr since the last look, on stderr.
pub(super) fn print_guest_output(plugin: &Standalone, when: &str) {
    let output = plugin.take_output();
    if !output.is_empty() {
        eprintln!("-- the plugin wrote ({when}):");
        for line in output.lines() {
            eprintln!("   | {line}");
        }
    }
}

pub fn run(args: CheckArgs) -> Result<()> {
    init_logging();
    runtime()?.block_on(check(args))
}

async fn check(args: CheckArgs) -> Result<()> {
    let name = plugin_name(&args.component);
    let Loaded {
        mut plugin,
        mut warnings,
    } = match load(&args.component).await {
        Ok(loaded) => loaded,
        Err((stage, error)) => {
            if args.json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&json!({
                        "plugin": name,
                        "file": args.component.wasm,
                        "ok": false,
                        "stage": stage,
                        "error": format!("{error:#}"),
                    }))?
                );
            }
            return Err(error.context(format!("check failed ({stage})")));
        }
    };
    print_guest_output(&plugin, "init");
    let kind = plugin.kind();
    // One call, as `plugin-check` always made: a fault fails the check; an
    // error the plugin returned depends on its environment and is a warning.
    let started = std::time::Instant::now();
    let called: Result<Value, CallError> = match kind {
        PluginKind::Collector => plugin
            .collect()
            .await
            .map(|samples| serde_json::to_value(samples).unwrap_or(Value::Null)),
        PluginKind::Rule => plugin.evaluate(Vec::new()).await.map(|alerts| {
            Value::Array(
                alerts
                    .into_iter()
                    .map(|a| {
                        json!({ "name": a.name, "labels": a.labels, "severity": a.severity,
                                "summary": a.summary, "value": a.value })
                    })
                    .collect(),
            )
        }),
        PluginKind::Sink => Ok(Value::Null),
    };
    let call_time = started.elapsed();
    print_guest_output(&plugin, kind.export());
    let (output, call_error) = match called {
        Ok(output) => (output, None),
        Err(CallError::Fault(fault)) => {
            let error = anyhow::anyhow!(
                "{}: {}() faulted: {fault}",
                args.component.wasm.display(),
                kind.export()
            );
            if args.json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&json!({
                        "plugin": name, "kind": kind, "ok": false,
                        "stage": kind.export(), "error": format!("{error:#}"),
                    }))?
                );
            }
            return Err(error);
        }
        Err(other) => {
            warnings.push(format!(
                "{}() returned an error (the plugin loads; `wasmon plugin run` shows more): {other}",
                kind.export()
            ));
            (Value::Null, Some(other.to_string()))
        }
    };
    let report = plugin.report();
    let grants = serde_json::to_value(&plugin.manifest().capabilities)
        .unwrap_or_else(|_| Value::Object(serde_json::Map::new()));
    let (ours, wasi) = capabilities(&report.imports);
    if args.json {
        let value = json!({
            "plugin": report.name,
            "kind": kind,
            "ok": true,
            "output": output,
            "call_error": call_error,
            "world": format!("wasmon:plugin/{kind}@{}", report.wit.as_str()),
            "wit": report.wit,
            "supported_wit": Standalone::SUPPORTED_WIT,
            "file": report.file,
            "file_bytes": report.file_bytes,
            "upload_max_bytes": upload_max_bytes(),
            "manifest": report.manifest,
            "compiler": report.compiler,
            "compile_ms": report.compile.as_secs_f64() * 1000.0,
            "init_ms": report.init.as_secs_f64() * 1000.0,
            "call_ms": call_time.as_secs_f64() * 1000.0,
            "memory_bytes": report.memory_bytes,
            "memory_limit_bytes": report.memory_limit,
            "capabilities": ours,
            "imports": report.imports,
            "exports": report.exports,
            "grants": grants,
            "warnings": warnings,
        });
        println!("{}", serde_json::to_string_pretty(&value)?);
        return Ok(());
    }
    let call_line = match (&kind, &output) {
        (PluginKind::Sink, _) => {
            "not called (`wasmon plugin run` delivers sample events)".to_string()
        }
        (_, Value::Array(items)) => format!(
            "{} {} in {} ({} on no input)",
            items.len(),
            if kind == PluginKind::Collector {
                "samples"
            } else {
                "alerts"
            },
            millis(call_time),
            if kind == PluginKind::Collector {
                "one call"
            } else {
                "one evaluation"
            },
        ),
        _ => "returned an error (see the warning below)".to_string(),
    };
    let rows = [
        ("plugin", format!("{} ({kind})", report.name)),
        (
            "world",
            format!("wasmon:plugin/{kind}@{}", report.wit.as_str()),
        ),
        (
            "WIT",
            format!(
                "{} (this host supports {}{})",
                report.wit.as_str(),
                supported_wit(),
                if report.wit == WitVersion::V0_1 {
                    "; 0.1.0 is frozen, new plugins use 0.2.0"
                } else {
                    ""
                }
            ),
        ),
        (
            "file",
            format!(
                "{} ({}; upload limit {})",
                report.file.display(),
                human_bytes(report.file_bytes),
                human_bytes(upload_max_bytes())
            ),
        ),
        (
            "manifest",
            report.manifest.as_deref().map_or_else(
                || "none (the host's defaults)".to_string(),
                |p: &Path| p.display().to_string(),
            ),
        ),
        (
            "compile",
            format!("{} ({})", millis(report.compile), report.compiler),
        ),
        (
            "init",
            format!("{} (instantiate + init)", millis(report.init)),
        ),
        (
            "memory",
            format!(
                "{} after init (memory_limit {})",
                human_bytes(report.memory_bytes),
                human_bytes(report.memory_limit)
            ),
        ),
        (
            "imports",
            format!(
                "{}{} WASI interface{}",
                if ours.is_empty() {
                    String::new()
                } else {
                    format!("wasmon:plugin/{{{}}}, ", ours.join(", "))
                },
                wasi,
                if wasi == 1 { "" } else { "s" }
            ),
        ),
        ("grants", grants_line(&grants)),
        (kind.export(), call_line),
    ];
    println!(
        "OK: {} loads and initialises",
        args.component.wasm.display()
    );
    for (key, value) in rows {
        println!("  {key:<9} {value}");
    }
    for warning in &warnings {
        println!("warning: {warning}");
    }
    Ok(())
}

/// The granted capabilities, one `name: grant` each, as compact JSON.
fn grants_line(grants: &Value) -> String {
    match grants.as_object() {
        Some(map) if !map.is_empty() => map
            .iter()
            .map(|(name, grant)| format!("{name}: {grant}"))
            .collect::<Vec<_>>()
            .join("; "),
        _ => "none (only logging, config and state)".to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capabilities_are_our_interfaces_without_version() {
        let imports = [
            "wasi:io/streams@0.2.6".to_string(),
            "wasmon:plugin/types@0.2.0".to_string(),
            "wasmon:plugin/http@0.2.0".to_string(),
            "wasi:cli/stderr@0.2.6".to_string(),
        ];
        let (ours, others) = capabilities(&imports);
        assert_eq!(ours, ["types", "http"]);
        assert_eq!(others, 2);
    }

    #[test]
    fn grants_line_names_each_grant_or_none() {
        assert_eq!(
            grants_line(&json!({})),
            "none (only logging, config and state)"
        );
        assert_eq!(
            grants_line(&json!({"http": {"allow": ["a.example"]}})),
            r#"http: {"allow":["a.example"]}"#
        );
    }
}
