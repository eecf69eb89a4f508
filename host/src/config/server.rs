//! `[server]`, `[log]`, `[heartbeat]` and `[ingest]`: the HTTP server, logging and ingestion.

use crate::units::{self, ByteSize};
use serde::Deserialize;
use std::net::IpAddr;
use std::time::Duration;

/// The HTTP server.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerConfig {
    /// Address to listen on (`MONITOR_HOST`).
    pub host: IpAddr,
    /// Port to listen on (`MONITOR_PORT`); 0 picks a free one.
    pub port: u16,
    /// How long a client may take to send a request's headers.
    #[serde(with = "units::duration")]
    pub header_read_timeout: Duration,
    /// Largest request body accepted, in bytes (413 above).
    pub max_body_bytes: ByteSize,
    /// Bearer token required by admin routes (`POST /api/...`, `DELETE
    /// /api/services/...`, plugin state); when none (or empty), those routes
    /// answer loopback clients only (403 to others).
    pub admin_token: Option<String>,
    /// How long a client may take to send a request's whole body, counted from
    /// its headers; 408 and the connection is closed after it.
    #[serde(with = "units::duration")]
    pub body_read_timeout: Duration,
    /// How long a connection may stay idle between requests (keep-alive)
    /// before the server closes it.
    #[serde(with = "units::duration")]
    pub keep_alive_timeout: Duration,
    /// Most connections open at once; a connection beyond is answered 503
    /// and closed, and counted (`wasmon_http_connections_refused_total`).
    /// Lowered to what the open-file limit allows.
    pub max_connections: usize,
    /// At SIGTERM/SIGINT: how long requests in flight, then sink deliveries in
    /// flight, may take to finish before the host exits anyway.
    #[serde(with = "units::duration")]
    pub shutdown_timeout: Duration,
    /// Most WebSocket clients (`GET /ws`) at once; one beyond gets 503
    /// before the upgrade.
    pub max_ws_clients: usize,
    /// Messages queued for one WebSocket client; a client that lets more
    /// pile up gets `system.lagged` and is disconnected
    /// (`wasmon_ws_lagged_total`).
    pub ws_queue: usize,
    /// How often the server pings each WebSocket client.
    #[serde(with = "units::duration")]
    pub ws_ping_interval: Duration,
    /// A WebSocket client heard from (a pong or any frame) less often than
    /// this, or that takes longer to accept one message, is closed as dead.
    #[serde(with = "units::duration")]
    pub ws_idle_timeout: Duration,
    /// How often the `metrics` channel sends each client what changed in
    /// the series it selected.
    #[serde(with = "units::duration")]
    pub ws_metrics_interval: Duration,
    /// Deprecated (moved to `storage.data_dir`; read for one release, with a
    /// warning, when `storage.data_dir` is left at its default).
    pub data_dir: Option<std::path::PathBuf>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            host: IpAddr::from([0, 0, 0, 0]),
            port: 9400,
            header_read_timeout: Duration::from_secs(10),
            max_body_bytes: ByteSize(1024 * 1024),
            admin_token: None,
            body_read_timeout: Duration::from_secs(10),
            keep_alive_timeout: Duration::from_secs(75),
            max_connections: 4096,
            shutdown_timeout: Duration::from_secs(10),
            max_ws_clients: 256,
            ws_queue: 256,
            ws_ping_interval: Duration::from_secs(15),
            ws_idle_timeout: Duration::from_secs(45),
            ws_metrics_interval: Duration::from_secs(1),
            data_dir: None,
        }
    }
}

/// Logging.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// A `tracing` filter such as `info` or `wasmon=debug` (`LOG_LEVEL`; `RUST_LOG` wins).
    pub level: String,
    /// `text` or `json`.
    pub format: LogFormat,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: "info".into(),
            format: LogFormat::Text,
        }
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The heartbeat watcher (seed 000).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HeartbeatConfig {
    /// Run the watcher (`MONITOR_HEARTBEAT_ENABLED`).
    #[serde(deserialize_with = "units::flag")]
    pub enabled: bool,
    /// Silence after which a service is down (`MONITOR_HEARTBEAT_TIMEOUT`, seconds).
    #[serde(with = "units::duration")]
    pub timeout: Duration,
    /// How often the watcher checks (`MONITOR_HEARTBEAT_CHECK_INTERVAL`, seconds).
    #[serde(with = "units::duration")]
    pub check_interval: Duration,
}

impl Default for HeartbeatConfig {
    fn default() -> Self {
        HeartbeatConfig {
            enabled: true,
            timeout: Duration::from_secs(30),
            check_interval: Duration::from_secs(5),
        }
    }
}

/// HTTP ingestion.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IngestConfig {
    /// Bearer token required on ingestion routes; none when absent (`MONITOR_INGEST_TOKEN`).
    pub token: Option<String>,
    /// How many of the newest events `GET /api/events` searches.
    pub recent_events: usize,
    /// Most distinct services tracked; heartbeats and events of more are
    /// rejected (429) and counted.
    pub max_services: usize,
    /// Most event types, and most components, counted per service in the
    /// `monitoring_*` series; more are counted under `_other`.
    pub max_label_values: usize,
    /// Most events in one batch (413 above).
    pub max_batch: usize,
    /// Deepest nesting of JSON arrays and objects in a payload (400 above).
    pub max_json_depth: usize,
    /// Largest `detail` of an event (422 above).
    pub max_detail_bytes: ByteSize,
    /// Largest JSON of one event, in a batch or alone (422 above): bounds
    /// what one event may keep as attributes.
    pub max_event_bytes: ByteSize,
    /// A service nothing was heard from (no heartbeat, no event) for this
    /// long, and not `up`, is evicted from the service table (its series leave
    /// `/metrics`), so a full table recovers room for new services.
    #[serde(with = "units::duration")]
    pub service_ttl: Duration,
    /// `[[ingest.amqp]]`: queues whose messages are recorded like the
    /// bodies of the HTTP ingestion routes (none by default).
    pub amqp: Vec<super::AmqpIngestConfig>,
    /// How long an `idempotency_key` is remembered: the same key again
    /// within it is answered with the original event's id, not recorded.
    #[serde(with = "units::duration")]
    pub idempotency_window: Duration,
    /// Most keys remembered (the oldest are forgotten first).
    pub idempotency_max_keys: usize,
}

impl Default for IngestConfig {
    fn default() -> Self {
        IngestConfig {
            token: None,
            recent_events: 10_000,
            max_services: 10_000,
            max_label_values: 100,
            max_batch: 1000,
            max_json_depth: 32,
            max_detail_bytes: ByteSize(8 * 1024),
            max_event_bytes: ByteSize(64 * 1024),
            service_ttl: Duration::from_secs(24 * 3600),
            amqp: Vec::new(),
            idempotency_window: Duration::from_secs(24 * 3600),
            idempotency_max_keys: 1_000_000,
        }
    }
}
