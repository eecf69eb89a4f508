//! Ingestion routes, verbatim from the seeds, and the views of what arrived:
//!
//! | route | seed | body |
//! |---|---|---|
//! | `POST /heartbeat` | 000 | `{service, phase?}` |
//! | `POST /events` | 000 | `{service, event_type, detail?, component?}` |
//! | `POST /v1/event` (and the SDK's own `/v1/ingest/events`) | 002 | one job event, or a seed 000 event |
//! | `POST /v1/events/batch` (and `/v1/ingest/events:batch`) | 002 | a JSON array of events, or `{"events": [...]}` |
//! | `GET /v1/health` | 002 | the sidecar's health: sinks and their backlog |
//! | `GET /api/services`, `GET /api/services/{name}` | | the service table |
//! | `DELETE /api/services/{name}` (admin) | | forget a decommissioned service |
//! | `GET /api/events` | | recent events, filtered and paginated |
//!
//! Every `POST` here requires `Authorization: Bearer <ingest.token>` when a
//! token is set, a JSON `Content-Type` (415), a body within
//! `server.max_body_bytes` (413) that arrives within `server.body_read_timeout`
//! (408), UTF-8 JSON without duplicate keys at any depth (400) nested at most
//! `ingest.max_json_depth` deep (400). Bad fields are 422, an oversized batch
//! 413, a service beyond `ingest.max_services` 429. Every refusal is
//! `{"detail": "..."}` and counted in `wasmon_ingest_rejected_total{route,reason}`.

use super::auth::check_bearer;
use super::error::ApiError;
use crate::app::AppState;
use crate::ingest::{IngestError, Receipt, payload};
use crate::model::Event;
use crate::plugins::{PluginKind, Status};
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use http_body_util::BodyExt;
use serde::{Deserialize, Serialize};
use serde_json::json;
use std::sync::Arc;

type AppRef = State<Arc<AppState>>;

/// Most events one `GET /api/events` page holds.
const MAX_PAGE: usize = 1000;
/// Events per page when `limit` is not given.
const DEFAULT_PAGE: usize = 100;

/// The ingestion routes and the views of the service table and recent events.
pub(super) fn routes(state: Arc<AppState>) -> Router<Arc<AppState>> {
    // The token is checked inside `ingest`, not by a middleware layer: one
    // boxed service less on the hottest routes.
    let ingest = Router::new()
        .route("/heartbeat", post(heartbeat))
        .route("/events", post(event))
        .route("/v1/event", post(sidecar_event))
        .route("/v1/ingest/events", post(sidecar_event))
        .route("/v1/events/batch", post(batch))
        .route("/v1/ingest/events:batch", post(batch));
    let admin = Router::new()
        .route(
            "/api/services/{name}",
            axum::routing::delete(forget_service),
        )
        .route_layer(middleware::from_fn_with_state(
            state,
            super::auth::require_admin,
        ));
    Router::new()
        .route("/v1/health", get(health))
        .route("/api/services", get(list_services))
        .route("/api/services/{name}", get(get_service))
        .route("/api/events", get(list_events))
        .merge(ingest)
        .merge(admin)
}

/// A refusal: the response, and its reason for `wasmon_ingest_rejected_total`.
struct Rejection {
    reason: &'static str,
    error: ApiError,
}

impl From<IngestError> for Rejection {
    fn from(error: IngestError) -> Self {
        let status = match &error {
            IngestError::Malformed(_) => StatusCode::BAD_REQUEST,
            IngestError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            IngestError::BatchTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            IngestError::TooManyServices(_) => StatusCode::TOO_MANY_REQUESTS,
        };
        Rejection {
            reason: error.reason(),
            error: ApiError::new(status, error.to_string()),
        }
    }
}

fn count_rejection(state: &AppState, route: &str, reason: &str) {
    state
        .telemetry
        .ingest_rejected
        .with_label_values(&[route, reason])
        .inc();
}

/// Reads a JSON body within `server.max_body_bytes`, then hands it to `handle`;
/// every refusal is counted under `route`.
async fn ingest(
    state: Arc<AppState>,
    route: &'static str,
    request: Request,
    handle: impl FnOnce(&AppState, Bytes) -> Result<Response, IngestError>,
) -> Response {
    // `ingest.token`, when set, guards every ingestion `POST`; checked before the body is read.
    if let Err(error) = check_bearer(&request, state.config.ingest.token.as_deref()) {
        count_rejection(&state, route, "unauthorized");
        return error.into_response();
    }
    let result = match read_json_body(&state, route, request).await {
        Ok(body) => handle(&state, body).map_err(Rejection::from),
        Err(rejection) => Err(rejection),
    };
    result.unwrap_or_else(|rejection| {
        count_rejection(&state, route, rejection.reason);
        rejection.error.into_response()
    })
}

async fn read_json_body(
    state: &AppState,
    route: &'static str,
    request: Request,
) -> Result<Bytes, Rejection> {
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| v.to_str().unwrap_or("(not text)"));
    if let Err(detail) = check_json_content_type(content_type) {
        return Err(Rejection {
            reason: "unsupported_media_type",
            error: ApiError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, detail),
        });
    }
    let limit = state.config.server.max_body_bytes.as_usize();
    let too_large = |size: &str| Rejection {
        reason: "body_too_large",
        error: ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "request body {size}exceeds the limit of {limit} bytes (server.max_body_bytes)"
            ),
        ),
    };
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if let Some(length) = declared
        && length > limit as u64
    {
        return Err(too_large(&format!("of {length} bytes ")));
    }
    let body = http_body_util::Limited::new(request.into_body(), limit)
        .collect()
        .await
        .map_err(|error| {
            if error.is::<http_body_util::LengthLimitError>() {
                too_large("")
            } else if super::server::is_body_timeout(&*error) {
                // The server answers 408 and closes the connection.
                Rejection {
                    reason: "body_timeout",
                    error: ApiError::new(StatusCode::REQUEST_TIMEOUT, error.to_string()),
                }
            } else {
                Rejection {
                    reason: "body_read",
                    error: ApiError::bad_request(format!(
                        "failed to read the request body: {error}"
                    )),
                }
            }
        })?
        .to_bytes();
    state
        .telemetry
        .ingest_bytes
        .with_label_values(&[route])
        .inc_by(body.len() as u64);
    Ok(body)
}

/// `application/json`, with parameters, or any `+json` type.
fn check_json_content_type(value: Option<&str>) -> Result<(), String> {
    let Some(value) = value else {
        return Err("missing Content-Type: expected application/json".into());
    };
    let mime = value.split(';').next().unwrap_or("").trim();
    let json = mime.eq_ignore_ascii_case("application/json")
        || mime.rsplit_once('+').is_some_and(|(ty, suffix)| {
            ty.starts_with("application/") && suffix.eq_ignore_ascii_case("json")
        });
    if json {
        Ok(())
    } else {
        Err(format!(
            "unsupported Content-Type {value:?}: expected application/json"
        ))
    }
}

async fn heartbeat(State(state): AppRef, request: Request) -> Response {
    ingest(state, "/heartbeat", request, |state, body| {
        #[derive(Serialize)]
        struct Ack<'a> {
            status: &'static str,
            service: &'a str,
        }
        let heartbeat = payload::heartbeat(&body, state.ingest.limits())?;
        let response = Json(Ack {
            status: "ok",
            service: &heartbeat.service,
        })
        .into_response();
        state.ingest.heartbeat(heartbeat)?;
        Ok(response)
    })
    .await
}

async fn event(State(state): AppRef, request: Request) -> Response {
    ingest(state, "/events", request, |state, body| {
        let parsed = payload::event(&body, state.ingest.limits())?;
        let receipt = state.ingest.record(vec![parsed])?;
        let (id, time) = single(receipt);
        Ok(Json(json!({ "status": "ok", "id": id, "time": time })).into_response())
    })
    .await
}

async fn sidecar_event(State(state): AppRef, request: Request) -> Response {
    ingest(state, "/v1/event", request, |state, body| {
        let parsed = payload::any_event(&body, state.ingest.limits())?;
        let receipt = state.ingest.record(vec![parsed])?;
        let (id, time) = single(receipt);
        Ok(Json(json!({ "ok": true, "id": id, "time": time })).into_response())
    })
    .await
}

async fn batch(State(state): AppRef, request: Request) -> Response {
    ingest(state, "/v1/events/batch", request, |state, body| {
        let parsed = payload::batch(&body, state.ingest.limits())?;
        let receipt = state.ingest.record(parsed)?;
        Ok(Json(json!({
            "ok": true,
            "total": receipt.ids.len(),
            "ids": receipt.ids,
            "time": crate::time::rfc3339(receipt.time_ms),
        }))
        .into_response())
    })
    .await
}

fn single(receipt: Receipt) -> (String, String) {
    let time = crate::time::rfc3339(receipt.time_ms);
    (receipt.ids.into_iter().next().unwrap_or_default(), time)
}

/// Seed 002's sidecar health: `ok`, or `degraded` while a sink plugin is not
/// running; each sink with its backlog.
async fn health(State(state): AppRef) -> Json<serde_json::Value> {
    let sinks: Vec<_> = state
        .plugins
        .list()
        .into_iter()
        .filter(|p| p.kind == Some(PluginKind::Sink))
        .map(|p| {
            json!({
                "name": p.name,
                "status": p.status,
                "healthy": p.status == Status::Running,
                "backlog": state.events.backlog(&p.name),
                "last_error": p.last_error,
            })
        })
        .collect();
    let degraded = sinks.iter().any(|s| s["healthy"] != true);
    let (total, up, down) = {
        let services = state.ingest.services();
        let up = services.iter().filter(|(_, s)| s.up == Some(true)).count();
        let down = services.iter().filter(|(_, s)| s.up == Some(false)).count();
        (services.len(), up, down)
    };
    let now = crate::time::now_ms();
    Json(json!({
        "status": if degraded { "degraded" } else { "ok" },
        "service": "wasmon",
        "version": env!("CARGO_PKG_VERSION"),
        "ready": state.plugins.is_ready(),
        "uptime_seconds": now.saturating_sub(state.started_ms) as f64 / 1000.0,
        "events_logged": state.events.end(),
        "services": { "total": total, "up": up, "down": down },
        "sinks": sinks,
        "timestamp": crate::time::rfc3339(now),
    }))
}

/// One service as `GET /api/services` shows it: an owned copy, so the
/// table's lock (which heartbeats and `/metrics` need) is released before
/// the response is serialized.
#[derive(Serialize)]
struct ServiceView {
    service: String,
    /// `up`, `down`, or `unknown` (known from events only).
    status: &'static str,
    last_seen: Option<String>,
    last_seen_ms: Option<u64>,
    seconds_since_seen: Option<f64>,
    phase: Option<String>,
    down_since: Option<String>,
    heartbeats: u64,
    last_event: Option<String>,
    events: std::collections::BTreeMap<String, u64>,
}

fn service_view(name: &str, s: &crate::ingest::Service, now_ms: u64) -> ServiceView {
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

async fn list_services(State(state): AppRef) -> Response {
    let now = crate::time::now_ms();
    let views: Vec<_> = {
        let services = state.ingest.services();
        services
            .iter()
            .map(|(name, s)| service_view(name, s, now))
            .collect()
    };
    let up = views.iter().filter(|v| v.status == "up").count();
    let down = views.iter().filter(|v| v.status == "down").count();
    Json(json!({ "services": views, "total": views.len(), "up": up, "down": down })).into_response()
}

fn checked_service(name: &str) -> Result<(), ApiError> {
    payload::check_name("service", name).map_err(|e| ApiError::bad_request(e.to_string()))
}

async fn get_service(State(state): AppRef, Path(name): Path<String>) -> Result<Response, ApiError> {
    checked_service(&name)?;
    let view = state
        .ingest
        .services()
        .get(&name)
        .map(|service| service_view(&name, service, crate::time::now_ms()))
        .ok_or_else(|| ApiError::not_found(format!("service {name:?} not found")))?;
    Ok(Json(view).into_response())
}

async fn forget_service(
    State(state): AppRef,
    Path(name): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    checked_service(&name)?;
    if state.ingest.forget(&name) {
        tracing::info!(service = %name, "service forgotten");
        Ok(Json(
            json!({ "success": true, "message": format!("service {name:?} forgotten") }),
        ))
    } else {
        Err(ApiError::not_found(format!("service {name:?} not found")))
    }
}

/// `GET /api/events` parameters.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct EventsQuery {
    /// Only this service's events.
    service: Option<String>,
    /// Only this event type; `prefix*` matches a prefix (`service.*`).
    event_type: Option<String>,
    /// Only events recorded by this source (`ingest`, `heartbeat`, `rule`).
    source: Option<String>,
    /// Only this severity or worse (`ok`, `warning`, `critical`).
    severity: Option<crate::model::Severity>,
    /// Page size, 1 to 1000 (100).
    limit: Option<usize>,
    /// Matching events to skip, newest first (0).
    offset: Option<usize>,
}

/// An event with its time as RFC 3339 text.
#[derive(Serialize)]
struct EventView<'a> {
    #[serde(flatten)]
    event: &'a Event,
    time: String,
}

async fn list_events(
    State(state): AppRef,
    query: Result<Query<EventsQuery>, QueryRejection>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let limit = query.limit.unwrap_or(DEFAULT_PAGE);
    if !(1..=MAX_PAGE).contains(&limit) {
        return Err(ApiError::bad_request(format!(
            "limit: must be between 1 and {MAX_PAGE}, got {limit}"
        )));
    }
    let offset = query.offset.unwrap_or(0);
    let type_matches = |t: &str| match query.event_type.as_deref() {
        None => true,
        Some(pattern) => match pattern.strip_suffix('*') {
            Some(prefix) => t.starts_with(prefix),
            None => t == pattern,
        },
    };
    let filter = |e: &Event| {
        query
            .service
            .as_deref()
            .is_none_or(|s| e.service.as_deref() == Some(s))
            && type_matches(&e.event_type)
            && query.source.as_deref().is_none_or(|s| e.source == s)
            && query.severity.is_none_or(|s| e.severity >= s)
    };
    let (page, total) =
        state
            .events
            .recent(state.config.ingest.recent_events, offset, limit, filter);
    let events: Vec<_> = page
        .iter()
        .map(|e| EventView {
            event: e,
            time: crate::time::rfc3339(e.time_ms),
        })
        .collect();
    let has_more = offset + events.len() < total;
    Ok(Json(json!({
        "events": events,
        "total": total,
        "offset": offset,
        "limit": limit,
        "has_more": has_more,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_content_types() {
        assert!(check_json_content_type(Some("application/json")).is_ok());
        assert!(check_json_content_type(Some("Application/JSON; charset=utf-8")).is_ok());
        assert!(check_json_content_type(Some("application/vnd.api+json")).is_ok());
        assert!(
            check_json_content_type(None)
                .unwrap_err()
                .contains("missing")
        );
        assert!(
            check_json_content_type(Some("application/x-www-form-urlencoded"))
                .unwrap_err()
                .contains("unsupported Content-Type")
        );
        assert!(check_json_content_type(Some("text/json+xml")).is_err());
    }
}
