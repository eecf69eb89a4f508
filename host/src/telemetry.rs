//! The host's own metrics (`wasmon_*` self-metrics and the seed's
//! `monitoring_*` counters), kept in a `prometheus` crate registry.
//!
//! Series whose label sets come from data (plugin samples, system samples,
//! alerts) live in the [`store`](crate::store) instead; `export::prometheus`
//! renders both into one `/metrics` answer. Names here must not collide with
//! store families: host samplers use other names and plugins may not use the
//! `wasmon_` prefix at all.

use anyhow::{Context, Result};
use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry};

/// Buckets for plugin call durations: 10 µs to 10 s.
const CALL_BUCKETS: &[f64] = &[
    0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Every self-metric, registered once.
pub struct Telemetry {
    /// The registry `/metrics` gathers.
    pub registry: Registry,
    /// 1 while a plugin is running, 0 while crashed, failed or stopped.
    pub plugin_up: IntGaugeVec,
    /// Time per call into a plugin, by export.
    pub plugin_call_duration: HistogramVec,
    /// Calls into plugins by result: `ok`, `error` (the plugin returned an error) or `fault`.
    pub plugin_calls: IntCounterVec,
    /// Faults by reason: `timeout`, `memory`, `trap`, `output`, `capability`.
    pub plugin_faults: IntCounterVec,
    /// Restarts after a fault.
    pub plugin_restarts: IntCounterVec,
    /// Loads and reloads by result: `success`, `failure`, `unchanged`.
    pub plugin_reloads: IntCounterVec,
    /// The configured memory limit of each plugin instance.
    pub plugin_memory_limit: IntGaugeVec,
    /// The linear memory each plugin instance currently holds.
    pub plugin_memory: IntGaugeVec,
    /// The per-call time budget of each plugin, in milliseconds.
    pub plugin_timeout: prometheus::GaugeVec,
    /// Samples a plugin returned that were not stored, by reason.
    pub plugin_samples_dropped: IntCounterVec,
    /// Log lines a plugin wrote beyond its rate limit.
    pub plugin_log_dropped: IntCounterVec,
    /// Capability calls a plugin's manifest does not grant.
    pub plugin_capability_denied: IntCounterVec,
    /// Capability calls by capability and result (`ok`, `server`,
    /// `connection`, `timeout`, `forbidden`, `too_large`).
    pub plugin_capability_calls: IntCounterVec,
    /// Bytes held by a plugin's `[capabilities.files]` directory, measured
    /// after each call.
    pub plugin_files_bytes: IntGaugeVec,
    /// Circuit breaker state per plugin and source: 0 closed, 1 half-open, 2 open.
    pub circuit_breaker_state: IntGaugeVec,
    /// Circuit breaker transitions per plugin, source and new state.
    pub circuit_breaker_transitions: IntCounterVec,
    /// Events handed to a sink and acknowledged.
    pub sink_delivered: IntCounterVec,
    /// Failed deliveries by kind: `retryable` or `permanent`.
    pub sink_failures: IntCounterVec,
    /// Events given up on after a permanent failure.
    pub sink_dead_letter: IntCounterVec,
    /// Events waiting for a sink.
    pub sink_backlog: IntGaugeVec,
    /// Age of the oldest event a sink has yet to acknowledge; 0 when none.
    pub sink_oldest_age: prometheus::GaugeVec,
    /// Events dead-lettered per sink and reason (`permanent`).
    pub sink_dead_letters: IntCounterVec,
    /// Dead-lettered events dropped from a sink's full dead-letter store.
    pub sink_dead_letters_dropped: IntCounterVec,
    /// Retries that waited for a target's `Retry-After`.
    pub sink_retry_after: IntCounterVec,
    /// Events the event log lost before a sink read them, by sink and
    /// reason (`retention`, `full`).
    pub event_log_dropped: IntCounterVec,
    /// Damaged event log records skipped at recovery.
    pub event_log_corrupt: prometheus::IntCounter,
    /// Bytes of the event log's segments on disk.
    pub event_log_bytes: prometheus::IntGauge,
    /// Rule evaluations by result.
    pub rule_evaluations: IntCounterVec,
    /// Alerts dropped by rule: new conditions over the rule's `max_alerts`
    /// (or over the size bounds), resolved alerts over `alerts.max_resolved`.
    pub alerts_dropped: IntCounterVec,
    /// Whether a rule's shadow has a live instance (1) or is crashed/failed (0).
    pub rule_shadow_up: IntGaugeVec,
    /// Shadow evaluations by rule and result (ok, error, fault).
    pub rule_shadow_evaluations: IntCounterVec,
    /// Shadow faults by rule and reason.
    pub rule_shadow_faults: IntCounterVec,
    /// Alerts entering the shadow diff, by rule and kind (only_shadow,
    /// only_serving, different); each alert counted once per kind.
    pub rule_shadow_diff: IntCounterVec,
    /// Samples the store refused, by source, kind (`host`, `derived`,
    /// `plugin`) and reason (`global_limit`, `control_character`, ...).
    pub series_refused: IntCounterVec,
    /// Series in the store: `live` (exported) or `held` (live and stale).
    pub store_series: IntGaugeVec,
    /// Approximate bytes the store holds (series, labels, indexes, history).
    pub store_memory: prometheus::IntGauge,
    /// Heartbeats and events accepted, by kind (`heartbeat`, `event`).
    pub ingest_accepted: IntCounterVec,
    /// Ingestion requests refused, by route and reason.
    pub ingest_rejected: IntCounterVec,
    /// Request body bytes received on ingestion routes, by route.
    pub ingest_bytes: IntCounterVec,
    /// Services in the service table.
    pub ingest_services: prometheus::IntGauge,
    /// Event types and components counted under `_other` (per-service limit).
    pub ingest_label_overflow: prometheus::IntCounter,
    /// Services going `down` or back `up`, by the heartbeat watcher.
    pub heartbeat_transitions: IntCounterVec,
    /// Services evicted from the service table after `ingest.service_ttl` of silence.
    pub ingest_services_evicted: prometheus::IntCounter,
    /// HTTP connections open now.
    pub http_connections: prometheus::IntGauge,
    /// WebSocket clients connected now.
    pub ws_clients: prometheus::IntGauge,
    /// Messages sent to WebSocket clients, by channel.
    pub ws_messages: IntCounterVec,
    /// WebSocket clients disconnected because their queue overflowed.
    pub ws_lagged: prometheus::IntCounter,
    /// HTTP connections refused because `server.max_connections` were open.
    pub http_connections_refused: prometheus::IntCounter,
    /// HTTP connections closed by a server timeout, by phase: `header` (a
    /// request's headers too slow), `idle` (keep-alive), `body` (408).
    pub http_timeouts: IntCounterVec,
    /// The AMQP client's metrics (`wasmon_amqp_*`).
    pub amqp: crate::amqp::AmqpMetrics,
}

impl Telemetry {
    /// Creates and registers every metric.
    pub fn new() -> Result<Self> {
        let registry = Registry::new();
        let t = Telemetry {
            plugin_up: gauge_vec(
                &registry,
                "wasmon_plugin_up",
                "Whether a plugin is running (1) or not (0).",
                &["plugin", "kind"],
            )?,
            plugin_call_duration: {
                let opts = HistogramOpts::new(
                    "wasmon_plugin_call_duration_seconds",
                    "Time spent in one call into a plugin.",
                )
                .buckets(CALL_BUCKETS.to_vec());
                register(&registry, HistogramVec::new(opts, &["plugin", "call"])?)?
            },
            plugin_calls: counter_vec(
                &registry,
                "wasmon_plugin_calls_total",
                "Calls into plugins by result (ok, error, fault).",
                &["plugin", "result"],
            )?,
            plugin_faults: counter_vec(
                &registry,
                "wasmon_plugin_faults_total",
                "Plugin faults by reason (timeout, memory, trap, output, capability).",
                &["plugin", "reason"],
            )?,
            plugin_restarts: counter_vec(
                &registry,
                "wasmon_plugin_restarts_total",
                "Plugin restart attempts after a fault.",
                &["plugin"],
            )?,
            plugin_reloads: counter_vec(
                &registry,
                "wasmon_plugin_reloads_total",
                "Plugin loads and reloads by result (success, failure, unchanged).",
                &["plugin", "result"],
            )?,
            plugin_memory_limit: gauge_vec(
                &registry,
                "wasmon_plugin_memory_limit_bytes",
                "Memory limit of a plugin instance.",
                &["plugin"],
            )?,
            plugin_memory: gauge_vec(
                &registry,
                "wasmon_plugin_memory_bytes",
                "Linear memory held by a plugin instance.",
                &["plugin"],
            )?,
            plugin_timeout: register(
                &registry,
                prometheus::GaugeVec::new(
                    Opts::new(
                        "wasmon_plugin_timeout_seconds",
                        "Time budget of one call into a plugin.",
                    ),
                    &["plugin"],
                )?,
            )?,
            plugin_samples_dropped: counter_vec(
                &registry,
                "wasmon_plugin_samples_dropped_total",
                "Samples from plugins that were not stored, by reason.",
                &["plugin", "reason"],
            )?,
            plugin_log_dropped: counter_vec(
                &registry,
                "wasmon_plugin_log_lines_dropped_total",
                "Plugin log lines dropped by the rate limit.",
                &["plugin"],
            )?,
            plugin_capability_denied: counter_vec(
                &registry,
                "wasmon_plugin_capability_denied_total",
                "Plugin calls to capabilities their manifest does not grant.",
                &["plugin", "capability"],
            )?,
            plugin_capability_calls: counter_vec(
                &registry,
                "wasmon_plugin_capability_calls_total",
                "Plugin calls to a granted capability, by result.",
                &["plugin", "capability", "result"],
            )?,
            plugin_files_bytes: gauge_vec(
                &registry,
                "wasmon_plugin_files_bytes",
                "Bytes held by a plugin's [capabilities.files] directory, measured after each call.",
                &["plugin"],
            )?,
            circuit_breaker_state: gauge_vec(
                &registry,
                "wasmon_circuit_breaker_state",
                "Circuit breaker state per plugin and data source: 0 closed, 1 half-open, 2 open.",
                &["plugin", "source"],
            )?,
            circuit_breaker_transitions: counter_vec(
                &registry,
                "wasmon_circuit_breaker_transitions_total",
                "Circuit breaker transitions per plugin, data source and new state.",
                &["plugin", "source", "to"],
            )?,
            sink_delivered: counter_vec(
                &registry,
                "wasmon_sink_delivered_events_total",
                "Events a sink plugin acknowledged.",
                &["sink"],
            )?,
            sink_failures: counter_vec(
                &registry,
                "wasmon_sink_failures_total",
                "Failed sink deliveries by kind (retryable, permanent).",
                &["sink", "kind"],
            )?,
            sink_dead_letter: counter_vec(
                &registry,
                "wasmon_sink_dead_letter_events_total",
                "Events a sink permanently failed to deliver.",
                &["sink"],
            )?,
            sink_backlog: gauge_vec(
                &registry,
                "wasmon_sink_backlog_events",
                "Events waiting for a sink.",
                &["sink"],
            )?,
            sink_oldest_age: register(
                &registry,
                prometheus::GaugeVec::new(
                    Opts::new(
                        "wasmon_sink_oldest_undelivered_age_seconds",
                        "Age of the oldest event a sink has yet to acknowledge (0 when none waits).",
                    ),
                    &["sink"],
                )?,
            )?,
            sink_dead_letters: counter_vec(
                &registry,
                "wasmon_sink_dead_letters_total",
                "Events written to a sink's dead-letter store, by reason (permanent).",
                &["sink", "reason"],
            )?,
            sink_dead_letters_dropped: counter_vec(
                &registry,
                "wasmon_sink_dead_letters_dropped_total",
                "Dead-lettered events dropped because the sink's dead-letter store was full.",
                &["sink"],
            )?,
            sink_retry_after: counter_vec(
                &registry,
                "wasmon_sink_retry_after_waits_total",
                "Sink retries that waited for the target's Retry-After.",
                &["sink"],
            )?,
            event_log_dropped: counter_vec(
                &registry,
                "wasmon_event_log_dropped_total",
                "Events the event log lost before a sink read them, by sink and reason (retention, full).",
                &["sink", "reason"],
            )?,
            event_log_corrupt: register(
                &registry,
                prometheus::IntCounter::new(
                    "wasmon_event_log_corrupt_records_total",
                    "Damaged event log records skipped at recovery.",
                )?,
            )?,
            event_log_bytes: register(
                &registry,
                prometheus::IntGauge::new(
                    "wasmon_event_log_bytes",
                    "Bytes of the event log's segments on disk.",
                )?,
            )?,
            rule_evaluations: counter_vec(
                &registry,
                "wasmon_rule_evaluations_total",
                "Rule evaluations by result (ok, error, fault).",
                &["rule", "result"],
            )?,
            rule_shadow_up: gauge_vec(
                &registry,
                "wasmon_rule_shadow_up",
                "Whether a rule's shadow version has a live instance (1) or is crashed or failed (0).",
                &["rule"],
            )?,
            rule_shadow_evaluations: counter_vec(
                &registry,
                "wasmon_rule_shadow_evaluations_total",
                "Shadow rule evaluations by result (ok, error, fault; skipped while the previous one still runs).",
                &["rule", "result"],
            )?,
            rule_shadow_faults: counter_vec(
                &registry,
                "wasmon_rule_shadow_faults_total",
                "Shadow rule faults by reason; the serving version is unaffected.",
                &["rule", "reason"],
            )?,
            rule_shadow_diff: counter_vec(
                &registry,
                "wasmon_rule_shadow_diff_total",
                "Alerts entering a shadow's diff by kind (only_shadow, only_serving, different), each counted once per kind.",
                &["rule", "kind"],
            )?,
            alerts_dropped: counter_vec(
                &registry,
                "wasmon_alerts_dropped_total",
                "Alerts dropped by rule: new ones over its max_alerts, resolved ones over alerts.max_resolved.",
                &["rule"],
            )?,
            series_refused: counter_vec(
                &registry,
                "wasmon_series_refused_total",
                "Samples the store refused, by source, source kind and reason.",
                &["source", "kind", "reason"],
            )?,
            store_series: gauge_vec(
                &registry,
                "wasmon_store_series",
                "Series in the store, live (exported) or held (live and stale).",
                &["state"],
            )?,
            store_memory: register(
                &registry,
                prometheus::IntGauge::new(
                    "wasmon_store_memory_bytes",
                    "Approximate bytes the store holds for its series and history.",
                )?,
            )?,
            ingest_accepted: counter_vec(
                &registry,
                "wasmon_ingest_accepted_total",
                "Heartbeats and events accepted over HTTP, by kind.",
                &["kind"],
            )?,
            ingest_rejected: counter_vec(
                &registry,
                "wasmon_ingest_rejected_total",
                "Ingestion requests refused, by route and reason.",
                &["route", "reason"],
            )?,
            ingest_bytes: counter_vec(
                &registry,
                "wasmon_ingest_received_bytes_total",
                "Request body bytes received on ingestion routes.",
                &["route"],
            )?,
            ingest_services: register(
                &registry,
                prometheus::IntGauge::new(
                    "wasmon_ingest_services",
                    "Services known from heartbeats and events.",
                )?,
            )?,
            ingest_label_overflow: register(
                &registry,
                prometheus::IntCounter::new(
                    "wasmon_ingest_label_overflow_total",
                    "Event types and components counted under _other because a service has too many.",
                )?,
            )?,
            heartbeat_transitions: counter_vec(
                &registry,
                "wasmon_heartbeat_transitions_total",
                "Services marked down by the heartbeat watcher, or up again by a heartbeat.",
                &["to"],
            )?,
            ingest_services_evicted: register(
                &registry,
                prometheus::IntCounter::new(
                    "wasmon_ingest_services_evicted_total",
                    "Services evicted from the service table after ingest.service_ttl without a heartbeat or event.",
                )?,
            )?,
            http_connections: register(
                &registry,
                prometheus::IntGauge::new("wasmon_http_connections", "HTTP connections open now.")?,
            )?,
            ws_clients: register(
                &registry,
                prometheus::IntGauge::new("wasmon_ws_clients", "WebSocket clients connected now.")?,
            )?,
            ws_messages: counter_vec(
                &registry,
                "wasmon_ws_messages_total",
                "Messages sent to WebSocket clients, by channel.",
                &["channel"],
            )?,
            ws_lagged: register(
                &registry,
                prometheus::IntCounter::new(
                    "wasmon_ws_lagged_total",
                    "WebSocket clients disconnected because they read too slowly (server.ws_queue overflowed).",
                )?,
            )?,
            http_connections_refused: register(
                &registry,
                prometheus::IntCounter::new(
                    "wasmon_http_connections_refused_total",
                    "HTTP connections refused because server.max_connections were open.",
                )?,
            )?,
            http_timeouts: counter_vec(
                &registry,
                "wasmon_http_timeouts_total",
                "HTTP connections closed by a server timeout, by phase (header, idle, body).",
                &["phase"],
            )?,
            amqp: crate::amqp::AmqpMetrics::register(&registry)?,
            registry,
        };
        #[cfg(target_os = "linux")]
        t.registry
            .register(Box::new(
                prometheus::process_collector::ProcessCollector::for_self(),
            ))
            .context("failed to register the process collector")?;
        Ok(t)
    }

    /// Events the event log lost before a sink read them, all sinks and reasons.
    pub fn event_log_dropped_total(&self) -> u64 {
        use prometheus::core::Collector;
        self.event_log_dropped
            .collect()
            .iter()
            .flat_map(|family| family.get_metric())
            .map(|m| m.get_counter().value() as u64)
            .sum()
    }

    /// Forgets every series of a plugin that was unloaded.
    pub fn forget_plugin(&self, plugin: &str, kind: &str) {
        let _ = self.plugin_up.remove_label_values(&[plugin, kind]);
        for vec in [&self.plugin_memory_limit, &self.plugin_memory] {
            let _ = vec.remove_label_values(&[plugin]);
        }
        let _ = self.plugin_timeout.remove_label_values(&[plugin]);
        let _ = self.sink_backlog.remove_label_values(&[plugin]);
        let _ = self.sink_oldest_age.remove_label_values(&[plugin]);
    }
}

fn register<M: prometheus::core::Collector + Clone + 'static>(
    registry: &Registry,
    metric: M,
) -> Result<M> {
    registry
        .register(Box::new(metric.clone()))
        .context("failed to register a self-metric")?;
    Ok(metric)
}

fn counter_vec(
    registry: &Registry,
    name: &str,
    help: &str,
    labels: &[&str],
) -> Result<IntCounterVec> {
    register(registry, IntCounterVec::new(Opts::new(name, help), labels)?)
}

fn gauge_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> Result<IntGaugeVec> {
    register(registry, IntGaugeVec::new(Opts::new(name, help), labels)?)
}
