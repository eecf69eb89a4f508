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
//! 413, a service beyond `ingest.max_services` 429, an event log that cannot
//! take the events (full, a write error) 503 with `Retry-After`, events larger
//! than the whole log (`storage.max_bytes`) 413. Every refusal
//! is `{"detail": "..."}` and counted in `wasmon_ingest_rejected_total{route,reason}`.
//! An event route answers `2xx` only once its events are durable
//! (`storage.durability`); a repeated `idempotency_key` answers `2xx` with the
//! original id and `"duplicate": true`.

mod views;

use super::auth::check_bearer;
use super::error::ApiError;
use super::openapi::ingest::{
    AnyEventBody, BatchAck, BatchBody, EventAck, EventBody, EventView, EventsPage, Forgotten,
    HeartbeatAck, HeartbeatBody, IngestRefusals, ServiceCounts, ServiceList, ServiceView,
    SidecarAck, SidecarHealth, SinkHealth,
};
use super::openapi::tag;
use crate::events::AppendError;
use crate::ingest::{IngestError, Receipt, RecordError, payload};
use crate::model::Event;
use crate::plugins::{PluginKind, Status};
use crate::state::AppState;
use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;
use serde::Deserialize;
use std::sync::Arc;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

type AppRef = State<Arc<AppState>>;

/// Most events one `GET /api/events` page holds.
const MAX_PAGE: usize = 1000;
/// Events per page when `limit` is not given.
const DEFAULT_PAGE: usize = 100;

/// The ingestion routes and the views of the service table and recent events.
pub(super) fn routes(state: Arc<AppState>) -> OpenApiRouter<Arc<AppState>> {
    // The token is checked inside `ingest`, not by a middleware layer: one
    // boxed service less on the hottest routes.
    let ingest = OpenApiRouter::new()
        .routes(routes!(heartbeat))
        .routes(routes!(event))
        .routes(routes!(sidecar_event))
        .routes(routes!(sdk_event))
        .routes(routes!(batch))
        .routes(routes!(sdk_batch));
    let admin = OpenApiRouter::new()
        .routes(routes!(views::forget_service))
        .route_layer(middleware::from_fn_with_state(
            state,
            super::auth::require_admin,
        ));
    OpenApiRouter::new()
        .routes(routes!(views::health))
        .routes(routes!(views::list_services))
        .routes(routes!(views::get_service))
        .routes(routes!(views::list_events))
        .merge(ingest)
        .merge(admin)
}

/// A refusal: the response, and its reason for `wasmon_ingest_rejected_total`.
struct Rejection {
    reason: &'static str,
    error: ApiError,
    /// Seconds for `Retry-After` (a 503).
    retry_after: Option<u64>,
}

impl Rejection {
    /// A refusal that a retry cannot fix (no `Retry-After`).
    fn new(reason: &'static str, status: StatusCode, detail: impl Into<String>) -> Self {
        Rejection {
            reason,
            error: ApiError::new(status, detail),
            retry_after: None,
        }
    }

    fn into_response(self) -> Response {
        let mut response = self.error.into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from(seconds));
        }
        response
    }
}

impl From<IngestError> for Rejection {
    fn from(error: IngestError) -> Self {
        let status = match &error {
            IngestError::Malformed(_) => StatusCode::BAD_REQUEST,
            IngestError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            IngestError::BatchTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            IngestError::TooManyServices(_) => StatusCode::TOO_MANY_REQUESTS,
        };
        Rejection::new(error.reason(), status, error.to_string())
    }
}

impl From<RecordError> for Rejection {
    fn from(error: RecordError) -> Self {
        let error = match error {
            RecordError::Refused(error) => return error.into(),
            RecordError::Log(error) => error,
        };
        // 503s may succeed later (`Retry-After`); a 413 never will.
        let (status, reason, retry_after) = match &error {
            AppendError::Full { retry_after } => (
                StatusCode::SERVICE_UNAVAILABLE,
                "log_full",
                Some(retry_after.as_secs().max(1)),
            ),
            AppendError::Io(_) => (StatusCode::SERVICE_UNAVAILABLE, "log_write", Some(1)),
            AppendError::Closed => (StatusCode::SERVICE_UNAVAILABLE, "log_closed", Some(1)),
            AppendError::TooLarge { .. } => (StatusCode::PAYLOAD_TOO_LARGE, "log_too_large", None),
        };
        Rejection {
            reason,
            error: ApiError::new(status, error.to_string()),
            retry_after,
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
    handle: impl AsyncFnOnce(&AppState, Bytes) -> Result<Response, RecordError>,
) -> Response {
    // `ingest.token`, when set, guards every ingestion `POST`; checked before the body is read.
    if let Err(error) = check_bearer(&request, state.config.ingest.token.as_deref()) {
        count_rejection(&state, route, "unauthorized");
        return error.into_response();
    }
    let result = match read_json_body(&state, route, request).await {
        Ok(body) => handle(&state, body).await.map_err(Rejection::from),
        Err(rejection) => Err(rejection),
    };
    result.unwrap_or_else(|rejection| {
        count_rejection(&state, route, rejection.reason);
        rejection.into_response()
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
        return Err(Rejection::new(
            "unsupported_media_type",
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            detail,
        ));
    }
    let limit = state.config.server.max_body_bytes.as_usize();
    let too_large = |size: &str| {
        Rejection::new(
            "body_too_large",
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "request body {size}exceeds the limit of {limit} bytes (server.max_body_bytes)"
            ),
        )
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
                Rejection::new(
                    "body_timeout",
                    StatusCode::REQUEST_TIMEOUT,
                    error.to_string(),
                )
            } else {
                Rejection::new(
                    "body_read",
                    StatusCode::BAD_REQUEST,
                    format!("failed to read the request body: {error}"),
                )
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

/// `POST /heartbeat`.
#[utoipa::path(
    post,
    path = "/heartbeat",
    tag = tag::INGESTION,
    summary = "A service is alive (seed 000)",
    description = "Marks the service up and records its phase; a service not heard from within `ingest.heartbeat_timeout` goes down (a `service.down` event).",
    request_body(content = HeartbeatBody, content_type = "application/json"),
    security((), ("ingest_token" = [])),
    responses(
        (status = 200, description = "Recorded", body = HeartbeatAck),
        IngestRefusals,
    )
)]
async fn heartbeat(State(state): AppRef, request: Request) -> Response {
    ingest(state, "/heartbeat", request, async |state, body| {
        let heartbeat = payload::heartbeat(&body, state.ingest.limits())?;
        let response = Json(HeartbeatAck {
            status: "ok",
            service: &heartbeat.service,
        })
        .into_response();
        state.ingest.heartbeat(heartbeat).await?;
        Ok(response)
    })
    .await
}

/// `POST /events`.
#[utoipa::path(
    post,
    path = "/events",
    tag = tag::INGESTION,
    summary = "One event (seed 000)",
    description = "Recorded in the event log (delivered to the sinks) and counted per service and type; fields beyond the modelled ones are kept as attributes.",
    request_body(content = EventBody, content_type = "application/json"),
    security((), ("ingest_token" = [])),
    responses(
        (status = 200, description = "Recorded", body = EventAck),
        IngestRefusals,
    )
)]
async fn event(State(state): AppRef, request: Request) -> Response {
    ingest(state, "/events", request, async |state, body| {
        let parsed = payload::event(&body, state.ingest.limits())?;
        let receipt = state.ingest.record(vec![parsed]).await?;
        let (id, time, duplicate) = single(receipt);
        Ok(Json(EventAck {
            status: "ok",
            id,
            time,
            duplicate,
        })
        .into_response())
    })
    .await
}

/// `POST /v1/event`.
#[utoipa::path(
    post,
    path = "/v1/event",
    tag = tag::INGESTION,
    summary = "One event of either shape (seed 002's sidecar)",
    description = "A seed 002 job event, or a seed 000 event (an object with `event_type`).",
    request_body(content = AnyEventBody, content_type = "application/json"),
    security((), ("ingest_token" = [])),
    responses(
        (status = 200, description = "Recorded", body = SidecarAck),
        IngestRefusals,
    )
)]
async fn sidecar_event(State(state): AppRef, request: Request) -> Response {
    one_event(state, request).await
}

/// `POST /v1/ingest/events`.
#[utoipa::path(
    post,
    path = "/v1/ingest/events",
    tag = tag::INGESTION,
    summary = "One event: seed 002's SDK path, the same as /v1/event",
    request_body(content = AnyEventBody, content_type = "application/json"),
    security((), ("ingest_token" = [])),
    responses(
        (status = 200, description = "Recorded", body = SidecarAck),
        IngestRefusals,
    )
)]
async fn sdk_event(State(state): AppRef, request: Request) -> Response {
    one_event(state, request).await
}

async fn one_event(state: Arc<AppState>, request: Request) -> Response {
    ingest(state, "/v1/event", request, async |state, body| {
        let parsed = payload::any_event(&body, state.ingest.limits())?;
        let receipt = state.ingest.record(vec![parsed]).await?;
        let (id, time, duplicate) = single(receipt);
        Ok(Json(SidecarAck {
            ok: true,
            id,
            time,
            duplicate,
        })
        .into_response())
    })
    .await
}

/// `POST /v1/events/batch`.
#[utoipa::path(
    post,
    path = "/v1/events/batch",
    tag = tag::INGESTION,
    summary = "A batch of events (seed 002's sidecar)",
    description = "A JSON array of events of either shape, or `{\"events\": [...]}`; at most `ingest.max_batch` (413 beyond). One bad item refuses the whole batch, naming its index.",
    request_body(content = BatchBody, content_type = "application/json"),
    security((), ("ingest_token" = [])),
    responses(
        (status = 200, description = "Every event recorded", body = BatchAck),
        IngestRefusals,
    )
)]
async fn batch(State(state): AppRef, request: Request) -> Response {
    many_events(state, request).await
}

/// `POST /v1/ingest/events:batch`.
#[utoipa::path(
    post,
    path = "/v1/ingest/events:batch",
    tag = tag::INGESTION,
    summary = "A batch of events: seed 002's SDK path, the same as /v1/events/batch",
    request_body(content = BatchBody, content_type = "application/json"),
    security((), ("ingest_token" = [])),
    responses(
        (status = 200, description = "Every event recorded", body = BatchAck),
        IngestRefusals,
    )
)]
async fn sdk_batch(State(state): AppRef, request: Request) -> Response {
    many_events(state, request).await
}

async fn many_events(state: Arc<AppState>, request: Request) -> Response {
    ingest(state, "/v1/events/batch", request, async |state, body| {
        let parsed = payload::batch(&body, state.ingest.limits())?;
        let receipt = state.ingest.record(parsed).await?;
        let duplicates = (receipt.duplicates.iter().enumerate())
            .filter_map(|(i, d)| d.then_some(i))
            .collect();
        Ok(Json(BatchAck {
            ok: true,
            total: receipt.ids.len(),
            ids: receipt.ids,
            time: crate::time::rfc3339(receipt.time_ms),
            duplicates,
        })
        .into_response())
    })
    .await
}

fn single(receipt: Receipt) -> (String, String, bool) {
    let time = crate::time::rfc3339(receipt.time_ms);
    let duplicate = receipt.duplicates.first().copied().unwrap_or(false);
    (
        receipt.ids.into_iter().next().unwrap_or_default(),
        time,
        duplicate,
    )
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
