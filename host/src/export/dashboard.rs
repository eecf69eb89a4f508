//! The dashboard: `GET /` (one HTML page) and its assets `GET /ui/{asset}`:
//! plain HTML, CSS and ES modules with uPlot vendored (`dashboard/`, see its
//! README), embedded in the binary, so it needs neither internet access nor
//! a build step. The page reads the REST API and `/ws` of the same host.
//!
//! Every answer carries a `Content-Security-Policy` that allows only this
//! origin's scripts, styles and connections (plus WebSocket), and an `ETag`
//! (a digest of the bytes): the page and the dashboard's own modules are
//! `no-cache` (revalidated, a 304 when unchanged), the vendored files, whose
//! names carry their version, are cached for a day.

use super::error::ApiError;
use super::openapi::tag;
use crate::state::AppState;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::sync::{Arc, OnceLock};
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// Only this origin's scripts, styles, images and connections (WebSocket
/// included); no inline script, no frames, no plugins.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self' ws: wss:; font-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// Revalidated on every load (the `ETag` makes that a 304).
const NO_CACHE: &str = "no-cache";
/// Vendored files whose names carry their version.
const VERSIONED: &str = "public, max-age=86400, immutable";

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

/// One embedded file.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    cache: &'static str,
    body: &'static [u8],
}

/// The page.
const INDEX: Asset = Asset {
    name: "index.html",
    content_type: HTML,
    cache: NO_CACHE,
    body: include_bytes!("dashboard/index.html"),
};

/// Everything under `/ui/`.
const ASSETS: &[Asset] = &[
    Asset {
        name: "app.js",
        content_type: JS,
        cache: NO_CACHE,
        body: include_bytes!("dashboard/app.js"),
    },
    Asset {
        name: "api.js",
        content_type: JS,
        cache: NO_CACHE,
        body: include_bytes!("dashboard/api.js"),
    },
    Asset {
        name: "charts.js",
        content_type: JS,
        cache: NO_CACHE,
        body: include_bytes!("dashboard/charts.js"),
    },
    Asset {
        name: "panels.js",
        content_type: JS,
        cache: NO_CACHE,
        body: include_bytes!("dashboard/panels.js"),
    },
    Asset {
        name: "app.css",
        content_type: CSS,
        cache: NO_CACHE,
        body: include_bytes!("dashboard/app.css"),
    },
    Asset {
        name: "favicon.svg",
        content_type: "image/svg+xml",
        cache: NO_CACHE,
        body: include_bytes!("dashboard/favicon.svg"),
    },
    Asset {
        name: "uPlot-1.6.32.iife.min.js",
        content_type: JS,
        cache: VERSIONED,
        body: include_bytes!("dashboard/uPlot-1.6.32.iife.min.js"),
    },
    Asset {
        name: "uPlot-1.6.32.min.css",
        content_type: CSS,
        cache: VERSIONED,
        body: include_bytes!("dashboard/uPlot-1.6.32.min.css"),
    },
];

/// The routes of this file.
pub(super) fn routes() -> OpenApiRouter<Arc<AppState>> {
    OpenApiRouter::new()
        .routes(routes!(page))
        .routes(routes!(settings))
        .routes(routes!(asset))
}

/// `GET /ui/config.json`: what the page needs to know about this host
/// before it talks to it.
#[derive(Serialize, ToSchema)]
struct Settings {
    /// The host's version.
    version: &'static str,
    /// Whether `server.admin_token` is set: admin actions and `/ws` then
    /// need it (without one, admin routes answer loopback clients only).
    admin_token_required: bool,
    /// `store.history_window`: how far back the charts can go.
    history_window_seconds: f64,
    /// `store.history_resolution`: one history point per this.
    history_resolution_seconds: f64,
}

/// `GET /ui/config.json`.
#[utoipa::path(
    get,
    path = "/ui/config.json",
    tag = tag::SYSTEM,
    summary = "The dashboard's view of this host's settings",
    description = "Whether an admin token is configured (the page then opens `/ws` only once one is entered) and the history window and resolution its charts use. Reveals no secret.",
    responses((status = 200, description = "The settings", body = Settings))
)]
async fn settings(State(state): State<Arc<AppState>>) -> Response {
    let store = &state.config.store;
    let body = Settings {
        version: env!("CARGO_PKG_VERSION"),
        admin_token_required: state
            .config
            .server
            .admin_token
            .as_deref()
            .is_some_and(|t| !t.is_empty()),
        history_window_seconds: store.history_window.as_secs_f64(),
        history_resolution_seconds: store.history_resolution.as_secs_f64(),
    };
    (
        [
            (header::CACHE_CONTROL, HeaderValue::from_static(NO_CACHE)),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static(CSP),
            ),
        ],
        Json(body),
    )
        .into_response()
}

/// `GET /`.
#[utoipa::path(
    get,
    path = "/",
    tag = tag::SYSTEM,
    summary = "The dashboard",
    description = "Host health, live CPU/memory/GPU/plugin charts (`/api/history`, kept live over `/ws` or by polling), plugins with reload/reset (and stop/start where the supervisor offers it) when an admin token is entered, alerts, services and recent events. Embedded in the binary; it loads only this host's own `/ui/*` assets and talks only to this host.",
    responses(
        (status = 200, description = "The page", content_type = "text/html; charset=utf-8", body = String),
        (status = 304, description = "Unchanged since the `ETag` given in `If-None-Match`"),
    )
)]
async fn page(headers: HeaderMap) -> Response {
    serve(&INDEX, 0, &headers)
}

/// `GET /ui/{asset}`.
#[utoipa::path(
    get,
    path = "/ui/{asset}",
    tag = tag::SYSTEM,
    summary = "An asset of the dashboard",
    params(
        ("asset" = String, Path, description = "`app.js`, `api.js`, `charts.js`, `panels.js`, `app.css`, `favicon.svg`, or the vendored uPlot files `uPlot-1.6.32.iife.min.js` and `uPlot-1.6.32.min.css`"),
    ),
    responses(
        (status = 200, description = "The asset", content(
            (String = "text/javascript; charset=utf-8"),
            (String = "text/css; charset=utf-8"),
            (String = "image/svg+xml"),
        )),
        (status = 304, description = "Unchanged since the `ETag` given in `If-None-Match`"),
        (status = 404, description = "No such asset", body = ApiError),
    )
)]
async fn asset(Path(name): Path<String>, headers: HeaderMap) -> Result<Response, ApiError> {
    let (index, found) = ASSETS
        .iter()
        .enumerate()
        .find(|(_, a)| a.name == name)
        .ok_or_else(|| ApiError::not_found(format!("no dashboard asset {name:?}")))?;
    Ok(serve(found, index + 1, &headers))
}

/// The `ETag` of each file (index 0 is the page, then [`ASSETS`]), computed
/// once.
fn etag(slot: usize, asset: &Asset) -> HeaderValue {
    static TAGS: OnceLock<Vec<HeaderValue>> = OnceLock::new();
    let tags = TAGS.get_or_init(|| {
        std::iter::once(&INDEX)
            .chain(ASSETS)
            .map(|a| {
                let digest = Sha256::digest(a.body);
                let hex = hex::encode(&digest[..12]);
                HeaderValue::from_str(&format!("\"{hex}\""))
                    .unwrap_or_else(|_| HeaderValue::from_static("\"0\""))
            })
            .collect()
    });
    tags.get(slot).cloned().unwrap_or_else(|| {
        tracing::warn!(asset = asset.name, "no etag for a dashboard asset");
        HeaderValue::from_static("\"0\"")
    })
}

/// The file, or a 304 when the client holds this version.
fn serve(asset: &Asset, slot: usize, request: &HeaderMap) -> Response {
    let tag = etag(slot, asset);
    let fresh = request
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|v| {
            let v = v.trim();
            v == "*" || v.trim_start_matches("W/").as_bytes() == tag.as_bytes()
        });
    let common = [
        (
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CSP),
        ),
        (header::CACHE_CONTROL, HeaderValue::from_static(asset.cache)),
        (header::ETAG, tag),
        (
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        ),
        (
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        ),
    ];
    if fresh {
        return (StatusCode::NOT_MODIFIED, common).into_response();
    }
    (
        common,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static(asset.content_type),
        )],
        asset.body,
    )
        .into_response()
}
