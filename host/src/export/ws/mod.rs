//! Live push over WebSocket: `GET /ws` (and seed 001's alias `/ws/metrics`)
//! and the event registry `GET /api/system/websocket/events` (seed 004).
//!
//! # Protocol
//!
//! After the upgrade the client sends JSON requests:
//!
//! ```json
//! {"action": "subscribe", "channels": ["alerts", "plugins", "metrics"],
//!  "metrics": {"name": "wasmon_cpu_*,wasmon_memory_used_bytes", "labels": {"cpu": "0"}}}
//! {"action": "unsubscribe", "channels": ["metrics"]}
//! ```
//!
//! Channels: `metrics`, `events`, `alerts`, `services`, `plugins`, `system`.
//! Subscribing adds channels (giving `metrics` a selection, which then
//! replaces the previous one); each request is answered by
//! `system.subscribed` (or `system.error`). Every message is
//! `{"type": "{domain}.{action}", "channel", "ts" (Unix ms), "data"}`; the
//! registry lists each type with the JSON Schema of its `data`. The
//! `metrics` channel sends `metrics.snapshot` (the whole selection) on
//! subscribe, then every `server.ws_metrics_interval` a `metrics.update` with
//! the series that got a new sample and those that left, when anything did.
//!
//! # Bounds
//!
//! - At most `server.max_ws_clients` clients: one beyond gets 503 with a
//!   `{"detail"}` before the upgrade.
//! - When `server.admin_token` is set, the upgrade needs it: `Authorization:
//!   Bearer <token>`, or `?token=<token>` since browsers cannot set headers
//!   on a WebSocket (401 otherwise).
//! - Each client has a queue of `server.ws_queue` messages. Publishing never
//!   waits for a client: when its queue is full the client is sent
//!   `system.lagged` (if its socket takes it within a second) and closed,
//!   counted in `wasmon_ws_lagged_total`.
//! - The server pings every `server.ws_ping_interval`; a client not heard
//!   from within `server.ws_idle_timeout`, or whose socket does not take a
//!   message within it, is closed. Client messages are at most 64 KiB.

mod client;
mod health;
mod metrics;

use super::error::{ApiError, ApiResult};
use super::openapi::tag;
use crate::live::{Channel, registry};
use crate::state::AppState;
use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{Query, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use tokio::sync::Semaphore;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Largest message a client may send.
const MAX_CLIENT_MESSAGE: usize = 64 * 1024;

/// What the WebSocket routes share.
struct Ws {
    app: Arc<AppState>,
    /// One permit per client that may connect.
    slots: Arc<Semaphore>,
    /// The health watcher, started with the first client.
    health: OnceLock<()>,
    /// The registry's answer, built once.
    registry: OnceLock<serde_json::Value>,
}

/// The routes of this module, merged into the REST router.
pub(super) fn routes(app: Arc<AppState>) -> OpenApiRouter<Arc<AppState>> {
    let slots = Arc::new(Semaphore::new(app.config.server.max_ws_clients));
    let ws = Arc::new(Ws {
        app,
        slots,
        health: OnceLock::new(),
        registry: OnceLock::new(),
    });
    OpenApiRouter::new()
        .routes(routes!(upgrade))
        .routes(routes!(upgrade_alias))
        .routes(routes!(events))
        .with_state(ws)
}

/// `GET /ws`.
#[utoipa::path(
    get,
    path = "/ws",
    tag = tag::SYSTEM,
    summary = "Live push over WebSocket",
    description = "Upgrades to a WebSocket. Send `{\"action\": \"subscribe\", \"channels\": [\"alerts\", \"plugins\", \"metrics\"], \"metrics\": {\"name\": \"wasmon_cpu_*\", \"labels\": {}}}` (or `unsubscribe`); channels `metrics`, `events`, `alerts`, `services`, `plugins`, `system`. Messages are `{\"type\": \"{domain}.{action}\", \"channel\", \"ts\", \"data\"}`, listed with their schemas by `GET /api/system/websocket/events`. A client that lets more than `server.ws_queue` messages pile up gets `system.lagged` and is disconnected. When `server.admin_token` is set it is required, as a bearer token or `?token=`.",
    params(("token" = Option<String>, Query, description = "`server.admin_token`, for clients that cannot set headers (browsers)")),
    security((), ("admin_token" = [])),
    responses(
        (status = 101, description = "Switched to the WebSocket protocol"),
        (status = 400, description = "Not a WebSocket upgrade request", body = ApiError),
        (status = 401, description = "A token is set and was not given, or is wrong", body = ApiError),
        (status = 503, description = "`server.max_ws_clients` clients are connected", body = ApiError),
    )
)]
async fn upgrade(
    ws: State<Arc<Ws>>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
    request: Request,
) -> ApiResult<Response> {
    accept(ws, query, request).await
}

/// `GET /ws/metrics`: seed 001's path for the same thing.
#[utoipa::path(
    get,
    path = "/ws/metrics",
    tag = tag::SYSTEM,
    summary = "Live push over WebSocket (seed 001's path)",
    description = "The same as `GET /ws`.",
    params(("token" = Option<String>, Query, description = "`server.admin_token`, for clients that cannot set headers (browsers)")),
    security((), ("admin_token" = [])),
    responses(
        (status = 101, description = "Switched to the WebSocket protocol"),
        (status = 400, description = "Not a WebSocket upgrade request", body = ApiError),
        (status = 401, description = "A token is set and was not given, or is wrong", body = ApiError),
        (status = 503, description = "`server.max_ws_clients` clients are connected", body = ApiError),
    )
)]
async fn upgrade_alias(
    ws: State<Arc<Ws>>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
    request: Request,
) -> ApiResult<Response> {
    accept(ws, query, request).await
}

/// Checks the token and the client cap, then upgrades.
async fn accept(
    State(ws): State<Arc<Ws>>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
    request: Request,
) -> ApiResult<Response> {
    let Query(query) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    authorize(&ws.app, &request, query.get("token").map(String::as_str))?;
    let (mut parts, _) = request.into_parts();
    let upgrade = <WebSocketUpgrade as axum::extract::FromRequestParts<()>>::from_request_parts(
        &mut parts,
        &(),
    )
    .await
    .map_err(|e| ApiError::new(e.status(), e.body_text()))?;
    let max = ws.app.config.server.max_ws_clients;
    let permit = ws.slots.clone().try_acquire_owned().map_err(|_| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("too many WebSocket clients: {max} are connected (server.max_ws_clients); retry later"),
        )
    })?;
    ws.health.get_or_init(|| health::spawn(ws.app.clone()));
    let session = client::Session::new(&ws.app);
    Ok(upgrade
        .max_message_size(MAX_CLIENT_MESSAGE)
        .max_frame_size(MAX_CLIENT_MESSAGE)
        .on_upgrade(move |socket| async move {
            session.run(socket).await;
            drop(permit);
        })
        .into_response())
}

/// The admin token, when one is set: in the `Authorization` header or the
/// `token` query parameter.
fn authorize(app: &AppState, request: &Request, query: Option<&str>) -> ApiResult<()> {
    let Some(token) = app
        .config
        .server
        .admin_token
        .as_deref()
        .filter(|t| !t.is_empty())
    else {
        return Ok(());
    };
    if request.headers().contains_key(header::AUTHORIZATION) {
        return super::auth::check_bearer(request, Some(token));
    }
    match query {
        Some(given) if super::auth::constant_time_eq(given.as_bytes(), token.as_bytes()) => Ok(()),
        Some(_) => Err(ApiError::unauthorized("invalid token")),
        None => Err(ApiError::unauthorized(
            "missing token: send `Authorization: Bearer <server.admin_token>` or `?token=<server.admin_token>`",
        )),
    }
}

/// `GET /api/system/websocket/events`: every message type with its channel,
/// description and the JSON Schema of its `data` (seed 004's shape).
#[utoipa::path(
    get,
    path = "/api/system/websocket/events",
    tag = tag::SYSTEM,
    summary = "The WebSocket event registry (seed 004)",
    description = "Every message type `/ws` sends (`{domain}.{action}`) with its channel, description and the JSON Schema of its `data`, generated from the Rust types; `channels`, `total_count`, `deprecated_count`.",
    responses((status = 200, description = "The registry", body = Object))
)]
async fn events(State(ws): State<Arc<Ws>>) -> Json<serde_json::Value> {
    let body = ws.registry.get_or_init(|| {
        let types = registry();
        let channels: Vec<&str> = Channel::ALL.iter().map(|c| c.as_str()).collect();
        let descriptions: serde_json::Map<String, serde_json::Value> = Channel::ALL
            .iter()
            .map(|c| (c.as_str().to_string(), c.description().into()))
            .collect();
        serde_json::json!({
            "total_count": types.len(),
            "deprecated_count": 0,
            "event_types": types,
            "channels": channels,
            "channel_descriptions": descriptions,
        })
    });
    Json(body.clone())
}
