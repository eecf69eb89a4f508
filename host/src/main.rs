//! The `wasmon` binary: parses the command line, sets up logging and the two
//! tokio runtimes (HTTP and plugins), and calls [`wasmon::app::run`].

use anyhow::{Context, Result};
use clap::Parser;
use std::path::PathBuf;
use std::process::ExitCode;
use wasmon::config::{Config, LogFormat};
use wasmon::shutdown::Shutdown;

/// A monitoring host whose collectors, alert rules and sinks are sandboxed
/// WebAssembly plugins, hot-reloaded from a directory.
#[derive(Parser, Debug)]
#[command(version, about)]
struct Args {
    /// The configuration file (TOML); defaults apply when absent.
    #[arg(short, long, env = "WASMON_CONFIG")]
    config: Option<PathBuf>,
    /// The plugin directory (overrides `plugins.dir`).
    #[arg(long)]
    plugins_dir: Option<PathBuf>,
    /// The data directory (overrides `storage.data_dir`).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Check the configuration and exit.
    #[arg(long)]
    check_config: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(clap::Subcommand, Debug)]
enum Command {
    /// Write, build, check, run and install plugins (`wasmon plugin --help`).
    Plugin {
        #[command(subcommand)]
        command: wasmon::cli::PluginCommand,
    },
    /// The same as `wasmon plugin check` (kept for scripts written before it).
    #[command(hide = true)]
    PluginCheck(wasmon::cli::CheckArgs),
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("wasmon: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: Args) -> Result<()> {
    match args.command {
        Some(Command::Plugin { command }) => return command.run(),
        Some(Command::PluginCheck(mut check)) => {
            // It always printed JSON.
            check.json = true;
            return wasmon::cli::PluginCommand::Check(check).run();
        }
        None => {}
    }
    let mut config = Config::load(args.config.as_deref(), std::env::vars())?;
    if let Some(dir) = args.plugins_dir {
        config.plugins.dir = dir;
    }
    if let Some(dir) = args.data_dir {
        config.storage.data_dir = dir;
    }
    if args.check_config {
        println!("configuration OK");
        return Ok(());
    }
    init_logging(&config);
    raise_open_file_limit();
    let plugins = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("wasmon-plugins")
        .enable_all()
        .build()
        .context("failed to start the plugin runtime")?;
    let main = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("wasmon-http")
        .enable_all()
        .build()
        .context("failed to start the runtime")?;
    let shutdown = Shutdown::new();
    let result = main.block_on(async {
        let signals = shutdown.clone();
        tokio::spawn(async move {
            wait_for_signal().await;
            signals.trigger();
            // A second signal while draining: stop now.
            wait_for_signal().await;
            tracing::warn!("second signal: exiting without waiting for the drain");
            std::process::exit(1);
        });
        wasmon::app::run(config, plugins.handle().clone(), shutdown).await
    });
    main.shutdown_timeout(std::time::Duration::from_secs(1));
    plugins.shutdown_timeout(std::time::Duration::from_secs(1));
    result
}

fn init_logging(config: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(&config.log.level))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    match config.log.format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

/// Lets the server hold thousands of connections: the soft open-file limit
/// (often 1024) is raised to the hard one.
fn raise_open_file_limit() {
    use wasmon::export::server::{open_file_limit, raise_open_file_limit};
    match raise_open_file_limit() {
        Some((before, after)) => {
            tracing::info!(before, after, "raised the open-file limit");
        }
        None => {
            if let Some((soft, hard)) = open_file_limit() {
                tracing::info!(soft, hard, "open-file limit");
            }
        }
    }
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match (
            signal(SignalKind::interrupt()),
            signal(SignalKind::terminate()),
        ) {
            (Ok(mut int), Ok(mut term)) => {
                tokio::select! {
                    _ = int.recv() => {}
                    _ = term.recv() => {}
                }
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}
