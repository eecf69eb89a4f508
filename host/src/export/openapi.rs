//! The API described: `GET /openapi.json` (OpenAPI 3.1, generated from the
//! handlers' `#[utoipa::path]` annotations and the Rust types they answer
//! with) and `GET /docs` (Swagger UI, vendored in `docs/` and embedded in the
//! binary, so it works without internet access).
//!
//! **Invariant:** every route is registered through `utoipa_axum`'s
//! `OpenApiRouter::routes(routes!(handler))`, which adds the handler to the
//! router and its operation to the document in one step: a route cannot be
//! served undocumented. The document is built with the router and kept as
//! JSON text, served as is.

use super::error::ApiError;
use crate::state::AppState;
use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::sync::{Arc, OnceLock};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub(super) mod ingest;

/// The security scheme of admin routes (`server.admin_token`).
pub(super) const ADMIN: &str = "admin_token";
/// The security scheme of ingestion routes (`ingest.token`).
pub(super) const INGEST: &str = "ingest_token";

/// Tags, one per area of the API.
pub(super) mod tag {
    /// Heartbeats and events in.
    pub const INGESTION: &str = "ingestion";
    /// Plugins: list, upload, reload, reset, state, restarts.
    pub const PLUGINS: &str = "plugins";
    /// Alerts and seed 003's status document.
    pub const ALERTS: &str = "alerts";
    /// The service table and recent events.
    pub const SERVICES: &str = "services";
    /// Trend data and seed 001's snapshots.
    pub const HISTORY: &str = "history";
    /// Health, samplers, the store, breakers, the Prometheus stack, these docs.
    pub const SYSTEM: &str = "system";
    /// The Prometheus exposition.
    pub const METRICS: &str = "metrics";
}

/// The document's fixed part: info, tags, security schemes.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "wasmon",
        description = "A monitoring host whose collectors, alert rules and sinks are sandboxed WebAssembly components. Every error is `{\"detail\": \"...\"}` (schema `ApiError`). Admin routes require `Authorization: Bearer <server.admin_token>` when a token is set, and answer loopback clients only (403 to others) when none is. Ingestion routes require `Authorization: Bearer <ingest.token>` when one is set.",
        license(name = "Apache-2.0")
    ),
    tags(
        (name = "ingestion", description = "Heartbeats and events, verbatim from seeds 000 and 002"),
        (name = "plugins", description = "Collector, rule and sink plugins: status, uploads (`PUT /api/plugins/{name}`, only while an admin token is set), reloads, resets, state"),
        (name = "alerts", description = "Alerts from the rule plugins, and seed 003's status document"),
        (name = "services", description = "The service table fed by heartbeats, and recent events"),
        (name = "history", description = "History of every series (seed 001): trend queries and snapshots"),
        (name = "system", description = "Health, readiness, native samplers, the store, circuit breakers, the Prometheus stack (seed 004), this documentation"),
        (name = "metrics", description = "The Prometheus text exposition"),
    ),
    components(schemas(ApiError)),
    modifiers(&SecuritySchemes)
)]
struct ApiDoc;

/// Adds the two bearer-token schemes.
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let bearer = |description: &str| {
            let mut http = Http::new(HttpAuthScheme::Bearer);
            http.description = Some(description.to_string());
            SecurityScheme::Http(http)
        };
        components.add_security_scheme(
            ADMIN,
            bearer(
                "`server.admin_token` (environment WASMON_SERVER__ADMIN_TOKEN or MONITOR_ADMIN_TOKEN). Without a token configured, admin routes answer loopback clients only.",
            ),
        );
        components.add_security_scheme(
            INGEST,
            bearer("`ingest.token`: guards every ingestion POST when set."),
        );
    }
}

/// An empty router holding the document's fixed part.
pub(super) fn base() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
}

/// The routes of this file: the document and the page.
pub(super) fn routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(openapi_json))
        .routes(routes!(docs_page))
        .routes(routes!(docs_asset))
}

/// The document as served, built once from the first router built (every
/// router describes the same routes).
static DOCUMENT: OnceLock<String> = OnceLock::new();

/// Keeps the document of the router just built for `GET /openapi.json`,
/// with every operation id made from its method and path
/// (`get_api_plugins_name`): unique by construction, where handler names
/// (`list`, `health`) repeat across files.
pub(super) fn publish(api: utoipa::openapi::OpenApi) {
    DOCUMENT.get_or_init(|| render(api));
}

fn render(mut api: utoipa::openapi::OpenApi) -> String {
    for (path, item) in api.paths.paths.iter_mut() {
        let slug: String = path
            .split(|c: char| !c.is_ascii_alphanumeric())
            .filter(|part| !part.is_empty())
            .collect::<Vec<_>>()
            .join("_");
        let operations = [
            ("get", &mut item.get),
            ("put", &mut item.put),
            ("post", &mut item.post),
            ("delete", &mut item.delete),
            ("options", &mut item.options),
            ("head", &mut item.head),
            ("patch", &mut item.patch),
            ("trace", &mut item.trace),
        ];
        for (method, operation) in operations {
            if let Some(operation) = operation {
                operation.operation_id = Some(format!("{method}_{slug}"));
            }
        }
    }
    match api.to_pretty_json() {
        Ok(text) => text,
        Err(error) => {
            tracing::error!(%error, "failed to serialize the OpenAPI document");
            serde_json::json!({ "detail": format!("failed to serialize the OpenAPI document: {error}") })
                .to_string()
        }
    }
}

/// `GET /openapi.json`.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = tag::SYSTEM,
    summary = "This API as an OpenAPI 3.1 document",
    description = "Generated from the handlers and the Rust types they answer with; every route the host serves is in it.",
    responses(
        (status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json", body = Object),
    )
)]
async fn openapi_json() -> Response {
    // Served from the static text as is: no copy per request.
    let text: &'static str = DOCUMENT.get().map_or("{}", String::as_str);
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        text,
    )
        .into_response()
}

/// The page and its assets, embedded.
const INDEX_HTML: &str = include_str!("docs/index.html");
const INIT_JS: &str = include_str!("docs/init.js");
const SWAGGER_CSS: &str = include_str!("docs/swagger-ui.css");
const SWAGGER_JS: &str = include_str!("docs/swagger-ui-bundle.js");

/// `GET /docs`.
#[utoipa::path(
    get,
    path = "/docs",
    tag = tag::SYSTEM,
    summary = "Interactive API documentation",
    description = "Swagger UI over `/openapi.json`, embedded in the binary: it loads nothing but this host's own `/docs/*` assets.",
    responses(
        (status = 200, description = "The page", content_type = "text/html; charset=utf-8", body = String),
    )
)]
async fn docs_page() -> Response {
    asset_response("text/html; charset=utf-8", INDEX_HTML)
}

/// `GET /docs/{asset}`.
#[utoipa::path(
    get,
    path = "/docs/{asset}",
    tag = tag::SYSTEM,
    summary = "An asset of the documentation page",
    params(
        ("asset" = String, Path, description = "`swagger-ui.css`, `swagger-ui-bundle.js` or `init.js`", pattern = r"^(swagger-ui\.css|swagger-ui-bundle\.js|init\.js)$"),
    ),
    responses(
        (status = 200, description = "The asset", content(
            (String = "text/css; charset=utf-8"),
            (String = "text/javascript; charset=utf-8"),
        )),
        (status = 404, description = "No such asset", body = ApiError),
    )
)]
async fn docs_asset(Path(asset): Path<String>) -> Result<Response, ApiError> {
    let (content_type, body) = match asset.as_str() {
        "swagger-ui.css" => ("text/css; charset=utf-8", SWAGGER_CSS),
        "swagger-ui-bundle.js" => ("text/javascript; charset=utf-8", SWAGGER_JS),
        "init.js" => ("text/javascript; charset=utf-8", INIT_JS),
        _ => {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                format!("no documentation asset {asset:?}"),
            ));
        }
    };
    Ok(asset_response(content_type, body))
}

fn asset_response(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("public, max-age=3600"),
            ),
        ],
        body,
    )
        .into_response()
}
