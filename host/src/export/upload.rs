//! `PUT /api/plugins/{name}`: install or replace a plugin by upload
//! (`wasmon plugin install --host`). The most dangerous route the host has,
//! so it exists only while `server.admin_token` is set (else 404, saying how
//! to enable it) and takes the bearer token; what an uploaded manifest may
//! grant is bounded by `[plugins.upload] max_grants`, the component's size
//! by `[plugins.upload] max_bytes` (counted while the body is read). The
//! checks, the atomic writes and the reload are `crate::plugins`' (`upload`),
//! on the plugin runtime.

use super::auth::check_bearer;
use super::error::{ApiError, ApiResult};
use super::openapi::tag;
use crate::plugins::upload::{UploadError, Uploaded};
use crate::state::AppState;
use axum::Json;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, FromRequest, Multipart, Path, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use utoipa::ToSchema;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

type AppRef = State<Arc<AppState>>;

/// The largest manifest part.
const MAX_MANIFEST: usize = 1024 * 1024;
/// Room for the multipart framing around the parts.
const FRAMING: usize = 64 * 1024;

/// The detail of the 404 while no admin token is set.
pub(super) const UPLOADS_OFF: &str = "plugin upload is off: `PUT /api/plugins/{name}` exists only while an admin token is set. Set `server.admin_token` (environment WASMON_SERVER__ADMIN_TOKEN or MONITOR_ADMIN_TOKEN), restart the host and send `Authorization: Bearer <token>`; or copy NAME.wasm and NAME.toml into the plugin directory (`wasmon plugin install FILE.wasm --to DIR`)";

/// The route of this file.
pub(super) fn routes(state: Arc<AppState>) -> OpenApiRouter<Arc<AppState>> {
    let max = state.config.plugins.upload.max_bytes.as_usize();
    OpenApiRouter::new()
        .routes(routes!(upload))
        .layer(DefaultBodyLimit::max(
            max.saturating_add(MAX_MANIFEST + FRAMING),
        ))
        .route_layer(middleware::from_fn_with_state(state, require_upload_token))
}

/// No token: the route does not exist (404 with how to enable it); with
/// one, the bearer token is checked before any of the body is read.
async fn require_upload_token(State(state): AppRef, request: Request, next: Next) -> Response {
    let token = state
        .config
        .server
        .admin_token
        .as_deref()
        .filter(|t| !t.is_empty());
    if token.is_none() {
        return ApiError::not_found(UPLOADS_OFF).into_response();
    }
    match check_bearer(&request, token) {
        Ok(()) => next.run(request).await,
        Err(error) => error.into_response(),
    }
}

impl From<UploadError> for ApiError {
    fn from(error: UploadError) -> Self {
        let status = match &error {
            UploadError::BadRequest(_) => StatusCode::BAD_REQUEST,
            UploadError::Invalid(_) | UploadError::Reload(_) => StatusCode::UNPROCESSABLE_ENTITY,
            UploadError::Forbidden(_) => StatusCode::FORBIDDEN,
            UploadError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, error.to_string())
    }
}

/// The `multipart/form-data` body.
#[derive(ToSchema)]
#[allow(dead_code, reason = "documentation only: the handler reads the parts")]
struct UploadForm {
    /// The component (`NAME.wasm`): at most `plugins.upload.max_bytes`.
    #[schema(value_type = String, format = Binary)]
    wasm: Vec<u8>,
    /// Its manifest (`NAME.toml`, TOML text, at most 1 MiB). Without it, the
    /// `NAME.toml` already in the plugin directory applies (and must be
    /// within `max_grants` too), else the host's defaults.
    manifest: Option<String>,
}

/// `PUT /api/plugins/{name}`.
#[utoipa::path(
    put,
    path = "/api/plugins/{name}",
    tag = tag::PLUGINS,
    summary = "Install or replace a plugin by upload",
    description = "Exists only while `server.admin_token` is set (otherwise 404, saying how to enable it). The body is `multipart/form-data` with a part `wasm` (the component) and optionally a part `manifest` (TOML), or the component alone as `application/wasm`. Everything is checked before anything is replaced: the name; the size against `[plugins.upload] max_bytes` (413 as soon as the body goes past it); the manifest the component will run under (the uploaded one, else the `NAME.toml` already there) against the host's defaults and ceilings (422 naming the key) and its grants against `[plugins.upload] max_grants` (403 naming the grant and the bound); the component compiled (off the HTTP runtime) and its world detected (422 with the loader's error). Then `NAME.toml` and `NAME.wasm` are written atomically into the plugin directory (temporary file and rename, manifest first) and the plugin reloads; the answer comes when the new generation serves (201 for a new plugin, 200 for a replaced one), or with the reload error (422: the files are put back, the previous generation keeps serving). A failed upload changes nothing and leaves no file behind.",
    params(("name" = String, Path, description = "The plugin's name: `^[a-zA-Z][a-zA-Z0-9_]*$` (400 otherwise)")),
    request_body(
        description = "The component and its manifest (`multipart/form-data`), or the component alone (`application/wasm`)",
        content(
            (UploadForm = "multipart/form-data"),
            (Vec<u8> = "application/wasm"),
        ),
    ),
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "The plugin was replaced: its new generation serves", body = Uploaded),
        (status = 201, description = "The plugin is new and serves", body = Uploaded),
        (status = 400, description = "Invalid name, an unknown or repeated part, no `wasm` part, an empty component, a manifest that is not UTF-8", body = ApiError),
        (status = 401, description = "Missing or wrong admin token", body = ApiError),
        (status = 403, description = "The manifest grants more than `[plugins.upload] max_grants`", body = ApiError),
        (status = 404, description = "No admin token is set: uploads are off", body = ApiError),
        (status = 413, description = "Larger than `[plugins.upload] max_bytes` (the manifest: 1 MiB)", body = ApiError),
        (status = 415, description = "Neither multipart/form-data nor application/wasm", body = ApiError),
        (status = 422, description = "The component or manifest does not load, or the reload failed; nothing was replaced", body = ApiError),
        (status = 504, description = "The new generation did not serve within `[plugins.upload] timeout`; its load goes on", body = ApiError),
    )
)]
async fn upload(
    State(state): AppRef,
    Path(name): Path<String>,
    request: Request,
) -> ApiResult<Response> {
    if !crate::plugins::valid_name(&name) {
        return Err(ApiError::bad_request(format!(
            "invalid plugin name {name:?}: it must match ^[a-zA-Z][a-zA-Z0-9_]*$ (at most 64 characters)"
        )));
    }
    let config = &state.config.plugins.upload;
    let max = config.max_bytes.as_usize();
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "the component is larger than `plugins.upload.max_bytes` ({})",
                config.max_bytes
            ),
        )
    };
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > max.saturating_add(MAX_MANIFEST + FRAMING)) {
        return Err(too_large());
    }
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .unwrap_or_default();
    let (wasm, manifest) = match content_type.as_str() {
        "multipart/form-data" => read_form(request, &state, max, too_large).await?,
        "application/wasm" => {
            let wasm = read_limited(request.into_body(), max, too_large).await?;
            (wasm, None)
        }
        other => {
            return Err(ApiError::new(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                format!(
                    "content type {other:?}: send multipart/form-data (parts `wasm` and optionally `manifest`) or application/wasm (the component alone)"
                ),
            ));
        }
    };
    if wasm.is_empty() {
        return Err(ApiError::bad_request(
            "the component is empty: send the plugin's .wasm",
        ));
    }
    let work = state.plugins.upload(&name, wasm, manifest);
    let uploaded = tokio::time::timeout(config.timeout, work)
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::GATEWAY_TIMEOUT,
                format!(
                    "plugin {name:?} did not serve within `plugins.upload.timeout` ({}); its load goes on: see GET /api/plugins/{name}",
                    humantime::format_duration(config.timeout)
                ),
            )
        })??;
    let status = if uploaded.created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(uploaded)).into_response())
}

/// The parts of a `multipart/form-data` upload: `wasm` (at most `max`
/// bytes, counted as it arrives) and optionally `manifest`.
async fn read_form(
    request: Request,
    state: &Arc<AppState>,
    max: usize,
    too_large: impl Fn() -> ApiError + Copy,
) -> ApiResult<(Vec<u8>, Option<String>)> {
    let part_error = |e: axum::extract::multipart::MultipartError| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            too_large()
        } else {
            ApiError::new(e.status(), format!("bad multipart body: {}", e.body_text()))
        }
    };
    let mut form = Multipart::from_request(request, state)
        .await
        .map_err(|e| ApiError::bad_request(format!("bad multipart body: {}", e.body_text())))?;
    let (mut wasm, mut manifest) = (None, None);
    while let Some(mut field) = form.next_field().await.map_err(part_error)? {
        let part = field.name().unwrap_or_default().to_string();
        let (slot, limit) = match part.as_str() {
            "wasm" => (&mut wasm, max),
            "manifest" => (&mut manifest, MAX_MANIFEST),
            other => {
                return Err(ApiError::bad_request(format!(
                    "unknown part {other:?}: send `wasm` (the component) and optionally `manifest` (TOML)"
                )));
            }
        };
        if slot.is_some() {
            return Err(ApiError::bad_request(format!(
                "the part `{part}` is given twice"
            )));
        }
        let mut bytes = Vec::new();
        while let Some(chunk) = field.chunk().await.map_err(part_error)? {
            if bytes.len() + chunk.len() > limit {
                return Err(if part == "wasm" {
                    too_large()
                } else {
                    ApiError::new(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "the manifest is larger than 1 MiB",
                    )
                });
            }
            bytes.extend_from_slice(&chunk);
        }
        *slot = Some(bytes);
    }
    let wasm = wasm.ok_or_else(|| {
        ApiError::bad_request("no `wasm` part: send the component as the part `wasm`")
    })?;
    let manifest = manifest
        .map(String::from_utf8)
        .transpose()
        .map_err(|e| ApiError::bad_request(format!("the manifest is not UTF-8: {e}")))?;
    Ok((wasm, manifest))
}

/// A raw body, refused as soon as it goes past `max` bytes.
async fn read_limited(
    mut body: Body,
    max: usize,
    too_large: impl Fn() -> ApiError,
) -> ApiResult<Vec<u8>> {
    use http_body_util::BodyExt;
    let mut bytes = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame =
            frame.map_err(|e| ApiError::bad_request(format!("cannot read the body: {e}")))?;
        if let Ok(data) = frame.into_data() {
            if bytes.len() + data.len() > max {
                return Err(too_large());
            }
            bytes.extend_from_slice(&data);
        }
    }
    Ok(bytes)
}
