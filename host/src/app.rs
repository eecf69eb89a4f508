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
use std::time::Duration;

/// Most events the in-memory event log keeps for sinks.
const EVENT_LOG_CAPACITY: usize = 100_000;
/// Most bytes (approximately) the in-memory event log holds.
const EVENT_LOG_MAX_BYTES: usize = 64 * 1024 * 1024;

/// How long open requests may take to finish at shutdown.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

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
    /// Builds every part; starts nothing. Plugin code will run on `plugin_runtime`.
    pub fn new(
        config: Config,
        plugin_runtime: tokio::runtime::Handle,
        shutdown: Shutdown,
    ) -> Result<Arc<AppState>> {
        let telemetry = Arc::new(Telemetry::new()?);
        let store = Arc::new(Store::new(&config.store));
        let events = Arc::new(
            EventLog::new(EVENT_LOG_CAPACITY)
                .with_max_bytes(EVENT_LOG_MAX_BYTES)
                .with_drop_counter(telemetry.event_log_dropped.clone()),
        );
        let alerts = Arc::new(AlertManager::new(
            events.clone(),
            store.clone(),
            config.alerts.keep_resolved,
        ));
        let ingest = Arc::new(Ingest::new(
            &config.ingest,
            &config.heartbeat,
            events.clone(),
            telemetry.clone(),
        ));
        let services = ingest.clone();
        let deps = Deps {
            store: store.clone(),
            telemetry: telemetry.clone(),
            alerts: alerts.clone(),
            events: events.clone(),
            services: Arc::new(move || services.service_states()),
        };
        let plugins = Plugins::new(
            config.plugins.clone(),
            config.store.max_series_per_plugin,
            deps,
            plugin_runtime,
            shutdown,
        )
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

/// Runs the host until `shutdown` fires.
pub async fn run(
    config: Config,
    plugin_runtime: tokio::runtime::Handle,
    shutdown: Shutdown,
) -> Result<()> {
    let addr = SocketAddr::new(config.server.host, config.server.port);
    let header_timeout = config.server.header_read_timeout;
    let state = AppState::new(config, plugin_runtime, shutdown.clone())?;

    let (listener, local) = export::server::bind(addr).await?;
    tracing::info!(addr = %local, "listening");
    let server = tokio::spawn(export::server::serve(
        listener,
        export::router(state.clone()),
        header_timeout,
        shutdown.clone(),
        SHUTDOWN_GRACE,
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
    state.plugins.start().await?;
    spawn_sighup(state.plugins.clone(), shutdown.clone());

    shutdown.wait().await;
    tracing::info!("shutting down");
    server.await.context("the HTTP server task failed")?;
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
