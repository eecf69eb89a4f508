//! `collector-rabbitmq-pipeline`: seed 001's `RMQCollector` and
//! `ActionCollector` as a wasmon plugin. The host consumes the queues of the
//! manifest's `[[capabilities.rabbitmq.consume]]` and hands each message to
//! `on_message`; the message is acked once it is counted.
//!
//! What a queue carries is read from its name (`[config] queues` overrides):
//!
//! - `*_pipeline_results` (`face_pipeline_results`, `phone_pipeline_results`):
//!   a pipeline result `{"pipeline"?, "request_id"?, "status": "success" |
//!   "failure" | "error", "ingest_ts", "process_ts"?}`. Timestamps are Unix
//!   seconds (a number, fractions allowed) or milliseconds (above 1e11);
//!   latency is `process_ts - ingest_ts` (`process_ts` missing: when the host
//!   received the message). The pipeline is `pipeline`, else read from the
//!   queue's name (`monitoring.face_pipeline_results`: `face`).
//! - `monitoring.gateway_events`: `{"gateway_id", "event", "clients"?, "timestamp"?}`.
//! - `saved_actions`: `{"action", "client_id"?, "outcome"?, "timestamp"?, ...}`;
//!   the newest `[config] history` actions are kept (plugin state
//!   `saved_actions`, `GET /api/plugins/NAME/state`).
//!
//! A message that is not JSON, or lacks a required field, is an error: the
//! host redelivers it and dead-letters it after `max_redeliveries`. The
//! counts live in the plugin's key-value state (read and written per
//! message), so they survive restarts and hot reloads and each acked message
//! is counted once.
//!
//! Samples (the host adds `plugin`):
//! - `fr_pipeline_requests_total{pipeline,status}` (status `success`/`failure`);
//! - `fr_pipeline_latency_sum_seconds_total{pipeline}`: the sum of latencies;
//! - `fr_pipeline_latency_observations_total{pipeline,upper_bound}`: the
//!   histogram's cumulative buckets, in seconds (`+Inf` is the count);
//! - `fr_pipeline_latency_seconds{pipeline,stat}`: `mean`, `max`, `last`;
//! - `fr_gateway_events_total{gateway,event}`, `fr_gateway_sessions{gateway}`
//!   (the last heartbeat's `clients`), `fr_gateway_last_event_timestamp_seconds{gateway}`;
//! - `fr_saved_actions_total{action,outcome}`, `fr_saved_actions_history_size`.
//!
//! Backlog: the host exports `wasmon_amqp_queue_messages{queue}` for every
//! consumed queue.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use wasmon_sdk::{Collector, Error, Message, Sample, state};

/// Default histogram bounds, in seconds.
const BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// State key of the counters.
const COUNTS: &str = "counts";
/// State key of the saved actions history.
const HISTORY: &str = "saved_actions";

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    /// Queue name -> `pipeline`, `gateway` or `actions` (else read from the name).
    #[serde(default)]
    queues: BTreeMap<String, Kind>,
    /// Histogram bounds in seconds, ascending.
    #[serde(default)]
    buckets: Option<Vec<f64>>,
    /// Saved actions kept.
    #[serde(default = "default_history")]
    history: usize,
}

fn default_history() -> usize {
    100
}

#[derive(Deserialize, Clone, Copy, PartialEq, Debug)]
#[serde(rename_all = "lowercase")]
enum Kind {
    Pipeline,
    Gateway,
    Actions,
}

/// Per pipeline.
#[derive(Serialize, Deserialize, Default, Clone)]
struct Pipeline {
    success: u64,
    failure: u64,
    /// Cumulative counts per bound (the last one is +Inf).
    buckets: Vec<u64>,
    sum: f64,
    max: f64,
    last: f64,
}

/// Per gateway.
#[derive(Serialize, Deserialize, Default, Clone)]
struct Gateway {
    events: BTreeMap<String, u64>,
    sessions: Option<f64>,
    last_event: f64,
}

/// Everything counted so far (plugin state `counts`).
#[derive(Serialize, Deserialize, Default)]
struct Counts {
    pipelines: BTreeMap<String, Pipeline>,
    gateways: BTreeMap<String, Gateway>,
    /// `action/outcome` -> count.
    actions: BTreeMap<String, u64>,
    history_size: usize,
}

/// The collector.
pub struct PipelineCollector {
    queues: BTreeMap<String, Kind>,
    buckets: Vec<f64>,
    history: usize,
}

impl Collector for PipelineCollector {
    fn init() -> Result<Self, Error> {
        let config: Config = wasmon_sdk::config::get()?;
        let buckets = config.buckets.unwrap_or_else(|| BUCKETS.to_vec());
        if buckets.is_empty() || buckets.windows(2).any(|w| w[0] >= w[1]) {
            return Err(Error::new("config.buckets must be ascending and not empty"));
        }
        Ok(PipelineCollector {
            queues: config.queues,
            buckets,
            history: config.history,
        })
    }

    fn collect(&mut self) -> Result<Vec<Sample>, Error> {
        Ok(self.samples(&load()))
    }

    fn on_message(&mut self, message: Message) -> Result<Vec<Sample>, Error> {
        let body: Value = message.json()?;
        let mut counts = load();
        match self.kind(&message.source)? {
            Kind::Pipeline => self.pipeline(&mut counts, &message, &body)?,
            Kind::Gateway => gateway(&mut counts, &body)?,
            Kind::Actions => self.action(&mut counts, &body)?,
        }
        state::set_json(COUNTS, &counts)?;
        Ok(self.samples(&counts))
    }
}

fn load() -> Counts {
    state::get_json(COUNTS).unwrap_or_default()
}

/// Unix seconds from a payload timestamp: seconds, or milliseconds above 1e11.
fn seconds(value: &Value) -> Option<f64> {
    let n = value.as_f64()?;
    Some(if n > 1e11 { n / 1000.0 } else { n })
}

fn text<'a>(body: &'a Value, key: &str) -> Result<&'a str, Error> {
    body.get(key)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| Error::new(format!("the message has no {key:?}")))
}

impl PipelineCollector {
    fn kind(&self, queue: &str) -> Result<Kind, Error> {
        if let Some(kind) = self.queues.get(queue) {
            return Ok(*kind);
        }
        if queue.ends_with("pipeline_results") {
            Ok(Kind::Pipeline)
        } else if queue.contains("gateway_events") {
            Ok(Kind::Gateway)
        } else if queue.contains("saved_actions") {
            Ok(Kind::Actions)
        } else {
            Err(Error::new(format!(
                "queue {queue:?}: unknown kind; name it in config.queues"
            )))
        }
    }

    fn pipeline(&self, counts: &mut Counts, message: &Message, body: &Value) -> Result<(), Error> {
        let name = match body.get("pipeline").and_then(Value::as_str) {
            Some(p) if !p.is_empty() => p.to_string(),
            _ => pipeline_of(&message.source),
        };
        let ok = match text(body, "status")? {
            "success" | "ok" | "done" => true,
            "failure" | "failed" | "error" => false,
            other => return Err(Error::new(format!("unknown status {other:?}"))),
        };
        let ingest = body
            .get("ingest_ts")
            .and_then(seconds)
            .ok_or_else(|| Error::new("the message has no numeric \"ingest_ts\""))?;
        let processed = body
            .get("process_ts")
            .and_then(seconds)
            .unwrap_or(message.received_ms as f64 / 1000.0);
        let latency = (processed - ingest).max(0.0);
        let entry = counts.pipelines.entry(name).or_default();
        entry.buckets.resize(self.buckets.len() + 1, 0);
        if ok {
            entry.success += 1;
        } else {
            entry.failure += 1;
        }
        for (i, bound) in self.buckets.iter().enumerate() {
            if latency <= *bound {
                entry.buckets[i] += 1;
            }
        }
        if let Some(inf) = entry.buckets.last_mut() {
            *inf += 1;
        }
        entry.sum += latency;
        entry.max = entry.max.max(latency);
        entry.last = latency;
        Ok(())
    }

    fn action(&self, counts: &mut Counts, body: &Value) -> Result<(), Error> {
        let action = text(body, "action")?.to_string();
        let outcome = body
            .get("outcome")
            .and_then(Value::as_str)
            .unwrap_or("saved")
            .to_string();
        *counts
            .actions
            .entry(format!("{action}/{outcome}"))
            .or_default() += 1;
        let mut history: Vec<Value> = state::get_json(HISTORY).unwrap_or_default();
        history.push(body.clone());
        if history.len() > self.history {
            let excess = history.len() - self.history;
            history.drain(..excess);
        }
        counts.history_size = history.len();
        state::set_json(HISTORY, &history)?;
        Ok(())
    }

    fn samples(&self, counts: &Counts) -> Vec<Sample> {
        let mut out = Vec::new();
        for (name, p) in &counts.pipelines {
            for (status, n) in [("success", p.success), ("failure", p.failure)] {
                out.push(
                    Sample::counter("fr_pipeline_requests", n as f64)
                        .with_label("pipeline", name)
                        .with_label("status", status),
                );
            }
            out.push(
                Sample::counter("fr_pipeline_latency_sum_seconds", p.sum)
                    .with_label("pipeline", name),
            );
            for (i, n) in p.buckets.iter().enumerate() {
                let bound = self
                    .buckets
                    .get(i)
                    .map_or_else(|| "+Inf".to_string(), |b| b.to_string());
                out.push(
                    Sample::counter("fr_pipeline_latency_observations", *n as f64)
                        .with_label("pipeline", name)
                        .with_label("upper_bound", bound),
                );
            }
            let count = (p.success + p.failure).max(1) as f64;
            for (stat, v) in [("mean", p.sum / count), ("max", p.max), ("last", p.last)] {
                out.push(
                    Sample::gauge("fr_pipeline_latency_seconds", v)
                        .with_label("pipeline", name)
                        .with_label("stat", stat),
                );
            }
        }
        for (name, g) in &counts.gateways {
            for (event, n) in &g.events {
                out.push(
                    Sample::counter("fr_gateway_events", *n as f64)
                        .with_label("gateway", name)
                        .with_label("event", event),
                );
            }
            if let Some(sessions) = g.sessions {
                out.push(
                    Sample::gauge("fr_gateway_sessions", sessions).with_label("gateway", name),
                );
            }
            out.push(
                Sample::gauge("fr_gateway_last_event_timestamp_seconds", g.last_event)
                    .with_label("gateway", name),
            );
        }
        for (key, n) in &counts.actions {
            let (action, outcome) = key.split_once('/').unwrap_or((key, ""));
            out.push(
                Sample::counter("fr_saved_actions", *n as f64)
                    .with_label("action", action)
                    .with_label("outcome", outcome),
            );
        }
        if !counts.actions.is_empty() {
            out.push(Sample::gauge(
                "fr_saved_actions_history_size",
                counts.history_size as f64,
            ));
        }
        out
    }
}

/// The pipeline a results queue is for: `monitoring.face_pipeline_results` -> `face`.
fn pipeline_of(queue: &str) -> String {
    let last = queue.rsplit('.').next().unwrap_or(queue);
    let name = last
        .trim_end_matches("pipeline_results")
        .trim_end_matches(['_', '-']);
    if name.is_empty() { last } else { name }.to_string()
}

fn gateway(counts: &mut Counts, body: &Value) -> Result<(), Error> {
    let id = text(body, "gateway_id")?.to_string();
    let event = text(body, "event")?.to_string();
    let entry = counts.gateways.entry(id).or_default();
    *entry.events.entry(event).or_default() += 1;
    if let Some(clients) = body.get("clients").and_then(Value::as_f64) {
        entry.sessions = Some(clients);
    }
    if let Some(at) = body.get("timestamp").and_then(seconds) {
        entry.last_event = entry.last_event.max(at);
    } else {
        entry.last_event = entry.last_event.max(wasmon_sdk::now_ms() as f64 / 1000.0);
    }
    Ok(())
}

wasmon_sdk::export_collector!(PipelineCollector);
