//! The shapes of the ingestion routes (`export::ingest`): the request
//! bodies as the seeds send them, documented here because `ingest::payload`
//! parses them with borrowing, validating deserializers rather than plain
//! structs, and the typed answers the handlers serialize.

use crate::export::ApiError;
use crate::model::Event;
use crate::plugins::{ErrorInfo, Status};
use serde::Serialize;
use std::collections::BTreeMap;
use utoipa::ToSchema;

/// Seed 000's heartbeat. Other fields are refused by no one and ignored.
#[derive(ToSchema)]
#[allow(
    dead_code,
    reason = "documentation only: ingest::payload parses the body"
)]
pub(in crate::export) struct HeartbeatBody {
    /// The service that is alive (1 to 128 bytes, no control characters).
    #[schema(min_length = 1, max_length = 128, example = "edge-cam01")]
    service: String,
    /// What it is doing now (at most 128 bytes).
    #[schema(max_length = 128, example = "edge_loop")]
    phase: Option<String>,
}

/// Seed 000's event. Fields beyond these are kept as the event's attributes.
#[derive(Serialize, ToSchema)]
#[allow(
    dead_code,
    reason = "documentation only: ingest::payload parses the body"
)]
pub(in crate::export) struct EventBody {
    /// The service it concerns (1 to 128 bytes).
    #[schema(min_length = 1, max_length = 128, example = "edge-cam01")]
    service: String,
    /// E.g. `error`, `task_success`, `task_failure` (1 to 128 bytes).
    #[schema(min_length = 1, max_length = 128, example = "task_failure")]
    event_type: String,
    /// Free text, at most `ingest.max_detail_bytes`.
    detail: Option<String>,
    /// The component within the service (at most 128 bytes).
    #[schema(max_length = 128)]
    component: Option<String>,
    /// `ok`, `info`, `warning`, `critical` or `error`; else derived from the type.
    #[schema(pattern = "^(ok|info|warning|critical|error)$")]
    severity: Option<String>,
}

/// Seed 002's job event (the SDK's). The event type is
/// `{entity.type}.{event.kind}`; every field is kept as an attribute.
#[derive(Serialize, ToSchema)]
#[allow(
    dead_code,
    reason = "documentation only: ingest::payload parses the body"
)]
pub(in crate::export) struct JobEventBody {
    /// The producer's key for deduplication.
    idempotency_key: Option<String>,
    /// The site.
    site_id: Option<String>,
    /// `{app_id, name, version}`: `name` (required) is the service.
    #[schema(value_type = Object)]
    app: (),
    /// `{type, id, parent_id, business_key, sub_key}`: `type` (required) is
    /// the component and the event type's first part; the ids are strings.
    #[schema(value_type = Object)]
    entity: (),
    /// `{kind, at, status, progress, metrics, metadata}`: `kind` (required)
    /// is the event type's second part; `progress` a number, `metrics`
    /// numbers; a string `metadata.error` is the event's detail.
    #[schema(value_type = Object)]
    event: (),
}

/// One event of either shape (an object with `event_type` is seed 000's).
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
#[allow(
    dead_code,
    reason = "documentation only: ingest::payload parses the body"
)]
pub(in crate::export) enum AnyEventBody {
    /// Seed 000's event.
    Simple(EventBody),
    /// Seed 002's job event.
    Job(JobEventBody),
}

/// A batch: a JSON array of events, or `{"events": [...]}`, at most
/// `ingest.max_batch` events; one bad item refuses the whole batch.
#[derive(Serialize, ToSchema)]
#[serde(untagged)]
#[allow(
    dead_code,
    reason = "documentation only: ingest::payload parses the body"
)]
pub(in crate::export) enum BatchBody {
    /// The events.
    Array(Vec<AnyEventBody>),
    /// The events, wrapped.
    Wrapped {
        /// The events.
        #[schema(min_items = 1)]
        events: Vec<AnyEventBody>,
    },
}

/// `POST /heartbeat`.
#[derive(Serialize, ToSchema)]
pub(in crate::export) struct HeartbeatAck<'a> {
    /// Always `ok`.
    pub status: &'static str,
    /// The service.
    pub service: &'a str,
}

/// `POST /events`.
#[derive(Serialize, ToSchema)]
pub(in crate::export) struct EventAck {
    /// Always `ok`.
    pub status: &'static str,
    /// The event's id (a UUIDv7); for a duplicate, the original's.
    pub id: String,
    /// When it was recorded (RFC 3339).
    pub time: String,
    /// Present and `true` when its `idempotency_key` was already recorded
    /// within `ingest.idempotency_window`: not recorded again.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub duplicate: bool,
}

/// `POST /v1/event`.
#[derive(Serialize, ToSchema)]
pub(in crate::export) struct SidecarAck {
    /// Always `true`.
    pub ok: bool,
    /// The event's id (a UUIDv7); for a duplicate, the original's.
    pub id: String,
    /// When it was recorded (RFC 3339).
    pub time: String,
    /// Present and `true` when its `idempotency_key` was already recorded
    /// within `ingest.idempotency_window`: not recorded again.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub duplicate: bool,
}

/// `POST /v1/events/batch`.
#[derive(Serialize, ToSchema)]
pub(in crate::export) struct BatchAck {
    /// Always `true`.
    pub ok: bool,
    /// Events recorded.
    pub total: usize,
    /// Their ids, in the batch's order (a duplicate's is the original's).
    pub ids: Vec<String>,
    /// When they were recorded (RFC 3339).
    pub time: String,
    /// Indices of the events whose `idempotency_key` was already recorded
    /// (not recorded again); absent when none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub duplicates: Vec<usize>,
}

/// One sink in `GET /v1/health`.
#[derive(Serialize, ToSchema)]
pub(in crate::export) struct SinkHealth {
    /// The sink plugin.
    pub name: String,
    /// Its status.
    pub status: Status,
    /// Whether it is running and not behind by more than `sinks.lag_degraded`.
    pub healthy: bool,
    /// Events logged that it has not delivered yet.
    pub backlog: u64,
    /// Age of the oldest of them; 0 when none waits.
    pub oldest_undelivered_age_seconds: f64,
    /// Its last fault or error.
    pub last_error: Option<ErrorInfo>,
}

/// Services by state in `GET /v1/health`.
#[derive(Serialize, ToSchema)]
pub(in crate::export) struct ServiceCounts {
    /// Services known.
    pub total: usize,
    /// Of which up.
    pub up: usize,
    /// Of which down.
    pub down: usize,
}

/// `GET /v1/health`: seed 002's sidecar health.
#[derive(Serialize, ToSchema)]
pub(in crate::export) struct SidecarHealth {
    /// `ok`, or `degraded` while a sink plugin is not running or is behind
    /// by more than `sinks.lag_degraded`.
    pub status: &'static str,
    /// Always `wasmon`.
    pub service: &'static str,
    /// The host's version.
    pub version: &'static str,
    /// Whether every plugin has loaded or failed.
    pub ready: bool,
    /// Since the host started.
    pub uptime_seconds: f64,
    /// Events logged since start.
    pub events_logged: u64,
    /// Services by state.
    pub services: ServiceCounts,
    /// Every sink plugin.
    pub sinks: Vec<SinkHealth>,
    /// Now (RFC 3339).
    pub timestamp: String,
}

/// One service as `GET /api/services` shows it: an owned copy, so the
/// table's lock (which heartbeats and `/metrics` need) is released before
/// the response is serialized.
#[derive(Serialize, ToSchema)]
pub(in crate::export) struct ServiceView {
    /// Its name.
    pub service: String,
    /// `up`, `down`, or `unknown` (known from events only).
    pub status: &'static str,
    /// The last heartbeat (RFC 3339).
    pub last_seen: Option<String>,
    /// The last heartbeat (Unix milliseconds).
    pub last_seen_ms: Option<u64>,
    /// Seconds since the last heartbeat.
    pub seconds_since_seen: Option<f64>,
    /// The phase of the last heartbeat.
    pub phase: Option<String>,
    /// When it went down, while down (RFC 3339).
    pub down_since: Option<String>,
    /// Heartbeats received.
    pub heartbeats: u64,
    /// Its last event (RFC 3339).
    pub last_event: Option<String>,
    /// Events by event type.
    pub events: BTreeMap<String, u64>,
}

impl ServiceView {
    /// The view of service `name` at `now_ms`.
    pub fn new(name: &str, s: &crate::ingest::Service, now_ms: u64) -> ServiceView {
        ServiceView {
            service: name.to_string(),
            status: match s.up {
                Some(true) => "up",
                Some(false) => "down",
                None => "unknown",
            },
            last_seen: s.last_seen_ms.map(crate::time::rfc3339),
            last_seen_ms: s.last_seen_ms,
            seconds_since_seen: s
                .last_seen_ms
                .map(|t| now_ms.saturating_sub(t) as f64 / 1000.0),
            phase: s.phase.clone(),
            down_since: s.down_since_ms.map(crate::time::rfc3339),
            heartbeats: s.heartbeats,
            last_event: s.last_event_ms.map(crate::time::rfc3339),
            events: s.events.clone(),
        }
    }
}

/// `GET /api/services`.
#[derive(Serialize, ToSchema)]
pub(in crate::export) struct ServiceList {
    /// Every service, by name.
    pub services: Vec<ServiceView>,
    /// Services.
    pub total: usize,
    /// Of which up.
    pub up: usize,
    /// Of which down.
    pub down: usize,
}

/// `DELETE /api/services/{name}`.
#[derive(Serialize, ToSchema)]
pub(in crate::export) struct Forgotten {
    /// Always `true`.
    pub success: bool,
    /// What was done.
    pub message: String,
}

/// An event with its time as RFC 3339 text.
#[derive(Serialize, ToSchema)]
pub(in crate::export) struct EventView<'a> {
    /// The event.
    #[serde(flatten)]
    pub event: &'a Event,
    /// Its time (RFC 3339).
    pub time: String,
}

/// `GET /api/events`.
#[derive(Serialize, ToSchema)]
pub(in crate::export) struct EventsPage<'a> {
    /// This page, newest first.
    pub events: Vec<EventView<'a>>,
    /// Events that match, on every page.
    pub total: usize,
    /// The query's offset.
    pub offset: usize,
    /// The query's limit.
    pub limit: usize,
    /// Whether a later page has more.
    pub has_more: bool,
}

/// How an ingestion `POST` is refused; every refusal is counted in
/// `wasmon_ingest_rejected_total{route,reason}`.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code, reason = "documentation only: the handlers answer ApiError")]
pub(in crate::export) enum IngestRefusals {
    /// Not UTF-8 JSON, a duplicate key, or nested deeper than `ingest.max_json_depth`.
    #[response(status = 400)]
    Malformed(ApiError),
    /// Missing or wrong ingest token.
    #[response(status = 401)]
    Unauthorized(ApiError),
    /// The body did not arrive whole within `server.body_read_timeout`.
    #[response(status = 408)]
    Timeout(ApiError),
    /// The body exceeds `server.max_body_bytes`, or the batch `ingest.max_batch`.
    #[response(status = 413)]
    TooLarge(ApiError),
    /// Not a JSON Content-Type.
    #[response(status = 415)]
    NotJson(ApiError),
    /// A field missing, of the wrong type or out of bounds; the detail names it.
    #[response(status = 422)]
    Invalid(ApiError),
    /// A new service beyond `ingest.max_services`.
    #[response(status = 429)]
    TooManyServices(ApiError),
    /// The event log cannot take the events now: full
    /// (`storage.when_full = "reject"`) or failing to write (a full disk).
    /// Nothing was recorded; retry after `Retry-After` seconds.
    #[response(status = 503, headers(("Retry-After" = u64, description = "Seconds to wait before retrying")))]
    Unavailable(ApiError),
}
