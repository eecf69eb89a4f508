//! Assembly: builds the shared state ([`AppState`]) from the configuration,
//! serves HTTP over it, loads the plugins, and drives shutdown.

use crate::config::Config;
use crate::export;
use crate::plugins::Plugins;
use crate::shutdown::Shutdown;
use crate::state::AppState;
use anyhow::{Context, Result};
use std::net::SocketAddr;
use std::time::Instant;

/// Runs the host until `shutdown` fires, then stops it in order within
/// `server.shutdown_timeout`: stop accepting connections and let requests in
/// flight finish (what they recorded stays recorded), then stop the plugins,
/// letting each finish the call it has in flight (a sink delivers what the
/// event log holds for it), then return.
pub async fn run(
    config: Config,
    plugin_runtime: tokio::runtime::Handle,
    shutdown: Shutdown,
) -> Result<()> {
    // Compiles (every load of a new plugin file) yield to scrapes and calls.
    crate::plugins::lower_compile_priority();
    let addr = SocketAddr::new(config.server.host, config.server.port);
    let settings = export::server::Settings::from_config(&config.server);
    // The plugins stop only once HTTP has drained, so events accepted while
    // draining still reach the sinks.
    let plugins_shutdown = Shutdown::new();
    let state = AppState::new(config, plugin_runtime, plugins_shutdown.clone())?;
    // `[[ingest.amqp]]` consumers; a missing broker URL fails the start.
    let _amqp =
        crate::amqp::ingest::spawn_all(&state.config, &state.ingest, &state.telemetry, &shutdown)?;

    let (listener, local) = export::server::bind(addr).await?;
    tracing::info!(addr = %local, "listening");
    if export::admin_is_loopback_only(local.ip(), state.config.server.admin_token.as_deref()) {
        tracing::warn!(
            addr = %local,
            "no server.admin_token is set: admin routes (reload, reset, plugin state, forgetting a service) answer loopback clients only; set server.admin_token (WASMON_SERVER__ADMIN_TOKEN or MONITOR_ADMIN_TOKEN) to use them from elsewhere"
        );
    }
    // Plugins' HTTP may not reach the host's own API (known once bound).
    state.plugins.set_listening(local);
    let server = tokio::spawn(export::server::serve(
        listener,
        export::router(state.clone()),
        settings.clone(),
        state.telemetry.clone(),
        shutdown.clone(),
    ));

    crate::sampling::gpu::spawn(
        &state.config.gpu,
        state.config.sampling.interval,
        state.store.clone(),
        &state.samplers,
        shutdown.clone(),
    );
    crate::sampling::spawn(
        &state.config.sampling,
        state.store.clone(),
        &state.samplers,
        shutdown.clone(),
    );
    crate::ingest::spawn_watcher(
        state.ingest.clone(),
        &state.config.heartbeat,
        shutdown.clone(),
    );
    tokio::select! {
        started = state.plugins.start() => started?,
        () = shutdown.wait() => {}
    }
    spawn_sighup(state.plugins.clone(), shutdown.clone());

    shutdown.wait().await;
    state.events.live().close();
    let deadline = Instant::now() + settings.shutdown_timeout;
    tracing::info!(
        timeout_s = settings.shutdown_timeout.as_secs_f64(),
        "shutting down"
    );
    let open = server.await.context("the HTTP server task failed")?;
    plugins_shutdown.trigger();
    let plugins_stopped = tokio::time::timeout_at(deadline.into(), state.plugins.stopped())
        .await
        .is_ok();
    // Sinks have stopped: write what is queued and persist their cursors.
    state.events.close();
    if plugins_stopped {
        tracing::info!(open_connections = open, "stopped");
    } else {
        tracing::warn!(
            open_connections = open,
            "plugin calls still in flight after server.shutdown_timeout; stopping anyway"
        );
    }
    Ok(())
}

/// SIGHUP reloads what changed in the plugin directory.
fn spawn_sighup(plugins: Plugins, shutdown: Shutdown) {
    #[cfg(unix)]
    tokio::spawn(async move {
        let mut hup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
            Ok(s) => s,
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGHUP");
                return;
            }
        };
        loop {
            tokio::select! {
                _ = shutdown.wait() => return,
                got = hup.recv() => if got.is_none() { return },
            }
            tracing::info!("SIGHUP: reloading plugins");
            plugins.reload_all().await;
        }
    });
    #[cfg(not(unix))]
    let _ = (plugins, shutdown);
}
