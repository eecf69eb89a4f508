//! `wasmon plugin ...`: the plugin author's commands. Each subcommand is one
//! module; none of them starts the host. They print for people (tables, plain
//! errors) unless `--json` is asked for.
//!
//! - `new`: writes a ready project from the templates in `host/templates/`.
//! - `build`: detects the project's language and runs its toolchain; never
//!   downloads anything, names the exact install command instead.
//! - `check`: loads one component outside the host, validates it, calls `init`.
//! - `run`: calls a component once with real inputs and prints the result.
//! - `install`: copies a component into a plugin directory atomically, or
//!   uploads it to a running host (`PUT /api/plugins/{name}`).

mod build;
mod check;
mod install;
mod new;
mod run;

use anyhow::Result;
use clap::Subcommand;

pub use check::CheckArgs;

/// A plugin's language.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lang {
    Rust,
    Python,
    #[value(alias = "javascript")]
    Js,
}

/// A plugin's kind (its WIT world).
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Collector,
    Rule,
    Sink,
}

/// `wasmon plugin <command>`.
#[derive(Subcommand, Debug)]
pub enum PluginCommand {
    /// Write a new plugin project that builds as generated.
    New(new::NewArgs),
    /// Build a plugin project (Rust, Python or JavaScript) into NAME.wasm.
    Build(build::BuildArgs),
    /// Validate a component (world, WIT version, manifest, size), instantiate
    /// it, call `init` and print the compile time and memory used.
    Check(check::CheckArgs),
    /// Call a component once with real inputs and print what it returned.
    Run(run::RunArgs),
    /// Install a component into a plugin directory or a running host.
    Install(install::InstallArgs),
}

impl PluginCommand {
    /// Runs the command; the error is what the author reads.
    pub fn run(self) -> Result<()> {
        match self {
            PluginCommand::New(args) => new::run(args),
            PluginCommand::Build(args) => build::run(args),
            PluginCommand::Check(args) => check::run(args),
            PluginCommand::Run(args) => run::run(args),
            PluginCommand::Install(args) => install::run(args),
        }
    }
}
