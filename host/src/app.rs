//! Assembly: builds every part from the configuration, wires them together,
//! serves HTTP, loads the plugins, and drives shutdown.

use crate::config::Config;
use crate::export;
use crate::ingest::Ingest;
use crate::plugins::{Deps, Plugins};
use crate::rules::AlertManager;
use crate::shutdown::Shutdown;
use crate::sinks::EventLog;
use crate::store::Store;
use crate::telemetry::Telemetry;
use anyhow::{Context, Result};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

/// Most events the in-memory event log keeps for sinks.
const EVENT_LOG_CAPACITY: usize = 100_000;
/// Most bytes (approximately) the in-memory event log holds.
const EVENT_LOG_MAX_BYTES: usize = 64 * 1024 * 1024;

/// Everything HTTP handlers and background tasks share.
pub struct AppState {
    /// The configuration the host started with.
    pub config: Config,
    /// Samples and their history.
    pub store: Arc<Store>,
    /// Self-metrics.
    pub telemetry: Arc<Telemetry>,
    /// What each native sampler (system, gpu) says about itself.
    pub samplers: crate::sampling::SamplerStatuses,
    /// The plugin manager.
    pub plugins: Plugins,
    /// The alert state machine.
    pub alerts: Arc<AlertManager>,
    /// Events bound for sinks.
    pub events: Arc<EventLog>,
    /// Heartbeats, events and the service table.
    pub ingest: Arc<Ingest>,
    /// Unix milliseconds when the host started.
    pub started_ms: u64,
}

impl AppState {
    /// Builds every part; starts nothing. Plugin code will run on
    /// `plugin_runtime`, and the plugins stop when `shutdown` fires.
    pub fn new(
        config: Config,
        plugin_runtime: tokio::runtime::Handle,
        shutdown: Shutdown,
    ) -> Result<Arc<AppState>> {
        let telemetry = Arc::new(Telemetry::new()?);
        let store = Arc::new(
            Store::new(&config.store).with_refused_counter(telemetry.series_refused.clone()),
        );
        let events = Arc::new(
            EventLog::new(EVENT_LOG_CAPACITY)
                .with_max_bytes(EVENT_LOG_MAX_BYTES)
                .with_drop_counter(telemetry.event_log_dropped.clone())
                .with_live(crate::live::Live::default()),
        );
        let alerts = Arc::new(
            AlertManager::new(events.clone(), store.clone(), &config.alerts)
                .with_drop_counter(telemetry.alerts_dropped.clone()),
        );
        let ingest = Arc::new(Ingest::new(
            &config.ingest,
            &config.heartbeat,
            events.clone(),
            telemetry.clone(),
        ));
        let services = ingest.clone();
        let data_dir = &config.server.data_dir;
        std::fs::create_dir_all(data_dir).with_context(|| {
            format!(
                "failed to create the data directory {} (server.data_dir)",
                data_dir.display()
            )
        })?;
        let deps = Deps {
            store: store.clone(),
            telemetry: telemetry.clone(),
            alerts: alerts.clone(),
            events: events.clone(),
            services: Arc::new(move || services.service_states()),
            data_dir: Some(config.server.data_dir.clone()),
        };
        let plugins = Plugins::new(config.plugins.clone(), deps, plugin_runtime, shutdown)
            .context("failed to start the plugin runtime")?;
        Ok(Arc::new(AppState {
            config,
            store,
            telemetry,
            samplers: crate::sampling::SamplerStatuses::default(),
            plugins,
            alerts,
            events,
            ingest,
            started_ms: crate::time::now_ms(),
        }))
    }
}

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
