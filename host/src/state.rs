//! The host's shared state: every part built from the configuration and
//! wired together, what HTTP handlers and background tasks share. It sits
//! below the HTTP layer (`export` reads it; it knows nothing of HTTP), and
//! `app` assembles it with the server.

use crate::config::Config;
use crate::events::{EventLog, LogMetrics};
use crate::ingest::Ingest;
use crate::plugins::{Deps, Plugins};
use crate::rules::AlertManager;
use crate::shutdown::Shutdown;
use crate::store::Store;
use crate::telemetry::Telemetry;
use anyhow::{Context, Result};
use std::sync::Arc;

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
        if config.server.data_dir.is_some() {
            tracing::warn!(
                data_dir = %config.storage.data_dir.display(),
                "`server.data_dir` is deprecated: set `storage.data_dir` (read for one more release)"
            );
        }
        let data_dir = &config.storage.data_dir;
        std::fs::create_dir_all(data_dir).with_context(|| {
            format!(
                "failed to create the data directory {} (storage.data_dir)",
                data_dir.display()
            )
        })?;
        let events = Arc::new(
            EventLog::open(
                &config.storage,
                config.ingest.idempotency_window,
                config.ingest.idempotency_max_keys,
                LogMetrics {
                    dropped: Some(telemetry.event_log_dropped.clone()),
                    corrupt: Some(telemetry.event_log_corrupt.clone()),
                    bytes: Some(telemetry.event_log_bytes.clone()),
                },
                crate::live::Live::default(),
            )
            .context("failed to open the event log")?,
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
        let deps = Deps {
            store: store.clone(),
            telemetry: telemetry.clone(),
            alerts: alerts.clone(),
            events: events.clone(),
            services: Arc::new(move || services.service_states()),
            sinks: config.sinks.clone(),
            data_dir: Some(config.storage.data_dir.clone()),
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
