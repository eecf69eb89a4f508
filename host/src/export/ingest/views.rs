//! What arrived, as the API shows it: seed 002's sidecar health
//! (`GET /v1/health`), the service table (`GET`/`DELETE /api/services`) and
//! recent events (`GET /api/events`).

use super::*;

/// Seed 002's sidecar health: `ok`, or `degraded` while a sink plugin is not
/// running or is behind by more than `sinks.lag_degraded`; each sink with its
/// backlog and the age of its oldest undelivered event.
#[utoipa::path(
    get,
    path = "/v1/health",
    tag = tag::SYSTEM,
    summary = "Seed 002's sidecar health",
    description = "`ok`, or `degraded` while a sink plugin is not running or its oldest undelivered event is older than `sinks.lag_degraded`; each sink with its backlog and that age, and the services by state. Always 200.",
    responses((status = 200, description = "The sidecar's health", body = SidecarHealth))
)]
pub(super) async fn health(State(state): AppRef) -> Json<SidecarHealth> {
    let now_ms = crate::time::now_ms();
    let lag_degraded = state.config.sinks.lag_degraded.as_secs_f64();
    let sinks: Vec<_> = state
        .plugins
        .list()
        .into_iter()
        .filter(|p| p.kind == Some(PluginKind::Sink))
        .map(|p| {
            let (backlog, age) = state.plugins.sink_lag(&p.name, now_ms);
            SinkHealth {
                backlog,
                oldest_undelivered_age_seconds: age,
                healthy: p.status == Status::Running && age <= lag_degraded,
                name: p.name,
                status: p.status,
                last_error: p.last_error,
            }
        })
        .collect();
    let degraded = sinks.iter().any(|s| !s.healthy);
    let (total, up, down) = {
        let services = state.ingest.services();
        let up = services.iter().filter(|(_, s)| s.up == Some(true)).count();
        let down = services.iter().filter(|(_, s)| s.up == Some(false)).count();
        (services.len(), up, down)
    };
    Json(SidecarHealth {
        status: if degraded { "degraded" } else { "ok" },
        service: "wasmon",
        version: env!("CARGO_PKG_VERSION"),
        ready: state.plugins.is_ready(),
        uptime_seconds: now_ms.saturating_sub(state.started_ms) as f64 / 1000.0,
        events_logged: state.events.end(),
        services: ServiceCounts { total, up, down },
        sinks,
        timestamp: crate::time::rfc3339(now_ms),
    })
}

/// `GET /api/services`.
#[utoipa::path(
    get,
    path = "/api/services",
    tag = tag::SERVICES,
    summary = "The service table",
    description = "Each service: `status` (`up`, `down`, `unknown` when known from events only), last seen, phase, down since, heartbeats, events by type.",
    responses((status = 200, description = "Every service", body = ServiceList))
)]
pub(super) async fn list_services(State(state): AppRef) -> Json<ServiceList> {
    let now = crate::time::now_ms();
    let views: Vec<_> = {
        let services = state.ingest.services();
        services
            .iter()
            .map(|(name, s)| ServiceView::new(name, s, now))
            .collect()
    };
    let up = views.iter().filter(|v| v.status == "up").count();
    let down = views.iter().filter(|v| v.status == "down").count();
    Json(ServiceList {
        total: views.len(),
        services: views,
        up,
        down,
    })
}

fn checked_service(name: &str) -> Result<(), ApiError> {
    payload::check_name("service", name).map_err(|e| ApiError::bad_request(e.to_string()))
}

/// `GET /api/services/{name}`.
#[utoipa::path(
    get,
    path = "/api/services/{name}",
    tag = tag::SERVICES,
    summary = "One service",
    params(("name" = String, Path, description = "The service's name (1 to 128 bytes, no control characters)", min_length = 1, max_length = 128)),
    responses(
        (status = 200, description = "The service", body = ServiceView),
        (status = 400, description = "Invalid name", body = ApiError),
        (status = 404, description = "No such service", body = ApiError),
    )
)]
pub(super) async fn get_service(
    State(state): AppRef,
    Path(name): Path<String>,
) -> Result<Response, ApiError> {
    checked_service(&name)?;
    let view = state
        .ingest
        .services()
        .get(&name)
        .map(|service| ServiceView::new(&name, service, crate::time::now_ms()))
        .ok_or_else(|| ApiError::not_found(format!("service {name:?} not found")))?;
    Ok(Json(view).into_response())
}

/// `DELETE /api/services/{name}`.
#[utoipa::path(
    delete,
    path = "/api/services/{name}",
    tag = tag::SERVICES,
    summary = "Forget a decommissioned service",
    description = "Removes it from the table and from `/metrics`; a later heartbeat brings it back.",
    params(("name" = String, Path, description = "The service's name (1 to 128 bytes, no control characters)", min_length = 1, max_length = 128)),
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "Forgotten", body = Forgotten),
        (status = 400, description = "Invalid name", body = ApiError),
        (status = 401, description = "Missing or wrong admin token", body = ApiError),
        (status = 403, description = "No admin token is set and the client is not on loopback", body = ApiError),
        (status = 404, description = "No such service", body = ApiError),
    )
)]
pub(super) async fn forget_service(
    State(state): AppRef,
    Path(name): Path<String>,
) -> Result<Json<Forgotten>, ApiError> {
    checked_service(&name)?;
    if state.ingest.forget(&name) {
        tracing::info!(service = %name, "service forgotten");
        Ok(Json(Forgotten {
            success: true,
            message: format!("service {name:?} forgotten"),
        }))
    } else {
        Err(ApiError::not_found(format!("service {name:?} not found")))
    }
}

/// `GET /api/events` parameters.
#[derive(Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(super) struct EventsQuery {
    /// Only this service's events.
    service: Option<String>,
    /// Only this event type; `prefix*` matches a prefix (`service.*`).
    event_type: Option<String>,
    /// Only events recorded by this source (`ingest`, `heartbeat`, `rule`).
    source: Option<String>,
    /// Only this severity or worse (`ok`, `warning`, `critical`).
    severity: Option<crate::model::Severity>,
    /// Page size, 1 to 1000 (100).
    #[param(minimum = 1, maximum = 1000)]
    limit: Option<usize>,
    /// Matching events to skip, newest first (0).
    #[param(minimum = 0)]
    offset: Option<usize>,
}

/// `GET /api/events`.
#[utoipa::path(
    get,
    path = "/api/events",
    tag = tag::SERVICES,
    summary = "Recent events, newest first, filtered and paginated",
    description = "From the last `ingest.recent_events` events. Unknown parameters are refused.",
    params(EventsQuery),
    responses(
        (status = 200, description = "One page", body = EventsPage),
        (status = 400, description = "A bad or unknown parameter, or a limit out of range", body = ApiError),
    )
)]
pub(super) async fn list_events(
    State(state): AppRef,
    query: Result<Query<EventsQuery>, QueryRejection>,
) -> Result<Response, ApiError> {
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
    Ok(Json(EventsPage {
        events,
        total,
        offset,
        limit,
        has_more,
    })
    .into_response())
}
